/* OCI image layouts (oci.h, and ls_diff_files() with ls_files.oci): the
 * canonical bytes of a document; steps appended to an image (diff_ids,
 * history, empty_layer, layer descriptors); a tag replaced in place with the
 * other tags kept; --config merged over the image's config; broken layouts
 * refused with one line; blobs committed by digest, an existing one kept;
 * and two runs over the same trees giving byte-identical layouts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layersnap.h"
#include "oci.h"
#include "output.h"

static const char *const D1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
static const char *const D2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
static const char *const D3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
static const char *const D4 = "sha256:4444444444444444444444444444444444444444444444444444444444444444";

static json_t *parse(const char *text)
{
	json_t *j = NULL;
	struct ls_error err = { 0 };
	assert_int_equal(ls_oci_parse("test", text, strlen(text), &j, &err), 0);
	return j;
}

/* doc's canonical bytes equal want; doc released. */
static void assert_canonical(json_t *doc, const char *want)
{
	size_t len = 0;
	char *s = ls_oci_canonical(doc, &len);
	assert_non_null(s);
	assert_string_equal(s, want);
	assert_int_equal(len, strlen(want));
	free(s);
	json_decref(doc);
}

static void assert_one_line(int rc, const struct ls_error *err, const char *part)
{
	assert_int_equal(rc, -EINVAL);
	assert_int_equal(err->code, EINVAL);
	assert_null(strchr(err->msg, '\n'));
	if (!strstr(err->msg, part))
		fail_msg("message '%s' lacks '%s'", err->msg, part);
}

/* Sorted keys at every depth, no whitespace, UTF-8 as it is, no newline. */
static void test_canonical(void **state)
{
	assert_canonical(parse(" {\"b\" : 1,\n \"a\": [3, 1, {\"z\": true, \"y\": null}], \"c\": {\"\xc3\xa9\": \"x/y\", \"B\": \"\"}}\n"),
			 "{\"a\":[3,1,{\"y\":null,\"z\":true}],\"b\":1,\"c\":{\"B\":\"\",\"\xc3\xa9\":\"x/y\"}}");
	assert_canonical(ls_oci_index_new(),
			 "{\"manifests\":[],\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"schemaVersion\":2}");
	assert_canonical(ls_oci_descriptor(LS_OCI_MEDIA_CONFIG, D1, 123),
			 "{\"digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","
			 "\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"size\":123}");
	char t[40];
	ls_oci_time(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00Z");
	ls_oci_time(1700000000, t);
	assert_string_equal(t, "2023-11-14T22:13:20Z");
	char d[72];
	assert_int_equal(ls_oci_sha256("", 0, d, NULL), 0);
	assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Steps append: layers and diff_ids in order, one history entry each, an
 * empty step only in history; created follows the last step. */
static void test_steps(void **state)
{
	json_t *m = ls_oci_manifest_new(), *c = ls_oci_config_new();
	struct ls_error err = { 0 };
	assert_int_equal(ls_oci_set_platform(c, "linux/arm/v7", &err), 0);
	struct ls_oci_step s1 = { .media_type = "application/vnd.oci.image.layer.v1.tar+gzip", .digest = D1,
				  .size = 10, .diff_id = D2, .created = "1970-01-01T00:00:01Z", .created_by = "RUN one" };
	struct ls_oci_step s2 = { .empty = true, .created = "1970-01-01T00:00:02Z", .created_by = "ENV x" };
	struct ls_oci_step s3 = { .media_type = "application/vnd.oci.image.layer.v1.tar+zstd", .digest = D3,
				  .size = 30, .diff_id = D4, .created = "1970-01-01T00:00:03Z" };
	assert_int_equal(ls_oci_add_step(m, c, &s1, &err), 0);
	assert_int_equal(ls_oci_add_step(m, c, &s2, &err), 0);
	assert_int_equal(ls_oci_add_step(m, c, &s3, &err), 0);
	json_t *cd = ls_oci_descriptor(LS_OCI_MEDIA_CONFIG, D1, 1);
	assert_int_equal(ls_oci_image_check(m, c, "test", &err), -EINVAL);  /* no config descriptor yet */
	assert_int_equal(json_object_set_new(m, "config", cd), 0);
	assert_int_equal(ls_oci_image_check(m, c, "test", &err), 0);
	json_object_del(m, "config");
	char want[2048];
	snprintf(want, sizeof(want),
		 "{\"layers\":[{\"digest\":\"%s\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"size\":10},"
		 "{\"digest\":\"%s\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"size\":30}],"
		 "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"schemaVersion\":2}", D1, D3);
	assert_canonical(m, want);
	snprintf(want, sizeof(want),
		 "{\"architecture\":\"arm\",\"config\":{},\"created\":\"1970-01-01T00:00:03Z\",\"history\":["
		 "{\"created\":\"1970-01-01T00:00:01Z\",\"created_by\":\"RUN one\"},"
		 "{\"created\":\"1970-01-01T00:00:02Z\",\"created_by\":\"ENV x\",\"empty_layer\":true},"
		 "{\"created\":\"1970-01-01T00:00:03Z\"}],\"os\":\"linux\","
		 "\"rootfs\":{\"diff_ids\":[\"%s\",\"%s\"],\"type\":\"layers\"},\"variant\":\"v7\"}", D2, D4);
	json_t *p = ls_oci_platform_of(c);
	assert_canonical(c, want);
	assert_canonical(p, "{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}");

	/* not UTF-8: refused, not dropped */
	m = ls_oci_manifest_new();
	c = ls_oci_config_new();
	struct ls_oci_step bad = { .empty = true, .created = "1970-01-01T00:00:00Z", .created_by = "\xff" };
	assert_int_equal(ls_oci_add_step(m, c, &bad, &err), -EINVAL);
	json_decref(m);
	json_decref(c);

	/* platforms, tags, digests */
	c = ls_oci_config_new();
	assert_int_equal(ls_oci_set_platform(c, "linux/amd64", &err), 0);
	assert_canonical(ls_oci_platform_of(c), "{\"architecture\":\"amd64\",\"os\":\"linux\"}");
	assert_int_equal(ls_oci_set_platform(c, ls_oci_machine_platform(), &err), 0);
	static const char *const bad_platforms[] = { "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64", "" };
	for (size_t i = 0; i < sizeof(bad_platforms) / sizeof(bad_platforms[0]); i++)
		assert_one_line(ls_oci_set_platform(c, bad_platforms[i], &err), &err, "platform");
	json_decref(c);
	assert_int_equal(ls_oci_check_tag("latest", &err), 0);
	assert_int_equal(ls_oci_check_tag("v1.2_3-rc", &err), 0);
	static const char *const bad_tags[] = { "", "-x", ".x", "a:b", "a/b", "a b" };
	for (size_t i = 0; i < sizeof(bad_tags) / sizeof(bad_tags[0]); i++)
		assert_one_line(ls_oci_check_tag(bad_tags[i], &err), &err, "tag");
	char long_tag[200];
	memset(long_tag, 'a', sizeof(long_tag) - 1);
	long_tag[sizeof(long_tag) - 1] = '\0';
	assert_one_line(ls_oci_check_tag(long_tag, &err), &err, "tag");
	assert_int_equal(ls_oci_check_digest(D1, "x", &err), 0);
	assert_one_line(ls_oci_check_digest("sha512:11", "x", &err), &err, "only sha256");
	assert_one_line(ls_oci_check_digest("sha256:ABC", "x", &err), &err, "64 lowercase hex");
	assert_one_line(ls_oci_check_digest("sha256:../../etc/passwd", "x", &err), &err, "64 lowercase hex");
}

/* A tag's entry is replaced in place (a second entry of it removed); the
 * other tags' entries and their order stay. */
static void test_tags(void **state)
{
	struct ls_error err = { 0 };
	char text[2048];
	snprintf(text, sizeof(text),
		 "{\"schemaVersion\":2,\"manifests\":["
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"annotations\":{\"" LS_OCI_REF_NAME "\":\"a\"}},"
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":2,\"annotations\":{\"" LS_OCI_REF_NAME "\":\"b\"}},"
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":3},"
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":4,\"annotations\":{\"" LS_OCI_REF_NAME "\":\"a\"}}]}",
		 LS_OCI_MEDIA_MANIFEST, D1, LS_OCI_MEDIA_MANIFEST, D2, LS_OCI_MEDIA_MANIFEST, D3, LS_OCI_MEDIA_MANIFEST, D4);
	json_t *index = parse(text);
	assert_int_equal(ls_oci_index_check(index, "index.json", &err), 0);
	assert_int_equal(json_integer_value(json_object_get(ls_oci_index_find(index, "b"), "size")), 2);
	assert_int_equal(json_integer_value(json_object_get(ls_oci_index_find(index, "a"), "size")), 1);
	assert_null(ls_oci_index_find(index, "c"));

	json_t *desc = ls_oci_descriptor(LS_OCI_MEDIA_MANIFEST, D3, 33);
	json_t *platform = parse("{\"os\":\"linux\",\"architecture\":\"amd64\"}");
	assert_int_equal(ls_oci_index_set(index, "a", desc, platform, &err), 0);
	json_t *ms = json_object_get(index, "manifests");
	assert_int_equal(json_array_size(ms), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ms, 0), "size")), 33);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ms, 1), "size")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ms, 2), "size")), 3);
	/* a new tag goes last */
	assert_int_equal(ls_oci_index_set(index, "c", desc, NULL, &err), 0);
	assert_int_equal(json_array_size(ms), 4);
	snprintf(text, sizeof(text),
		 "{\"annotations\":{\"" LS_OCI_REF_NAME "\":\"c\"},\"digest\":\"%s\",\"mediaType\":\"%s\",\"size\":33}", D3,
		 LS_OCI_MEDIA_MANIFEST);
	assert_canonical(json_incref(json_array_get(ms, 3)), text);
	snprintf(text, sizeof(text),
		 "{\"annotations\":{\"" LS_OCI_REF_NAME "\":\"a\"},\"digest\":\"%s\",\"mediaType\":\"%s\","
		 "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"size\":33}", D3, LS_OCI_MEDIA_MANIFEST);
	assert_canonical(json_incref(json_array_get(ms, 0)), text);
	assert_int_equal(ls_oci_index_check(index, "index.json", &err), 0);
	json_decref(desc);
	json_decref(platform);
	json_decref(index);
}

/* --config FILE over the image's config. */
static void test_config_merge(void **state)
{
	struct ls_error err = { 0 };
	json_t *c = parse("{\"config\":{\"Env\":[\"PATH=/bin\",\"A=1\",\"B=2\"],\"Cmd\":[\"sh\"],\"User\":\"0\","
			  "\"Labels\":{\"keep\":\"1\",\"drop\":\"2\",\"change\":\"3\"},\"ExposedPorts\":{\"80/tcp\":{}}}}");
	json_t *over = parse("{\"Env\":[\"A=one\",\"C=3\",\"PATH=/usr/bin:/bin\"],\"Cmd\":[\"/app\",\"--x\"],"
			     "\"Entrypoint\":[\"/init\"],\"WorkingDir\":\"/w\",\"User\":null,"
			     "\"Labels\":{\"drop\":null,\"change\":\"three\",\"new\":\"4\"},"
			     "\"ExposedPorts\":{\"443/tcp\":{}},\"Volumes\":{\"/data\":{}},\"StopSignal\":\"SIGTERM\"}");
	assert_int_equal(ls_oci_config_merge(c, over, "cfg.json", &err), 0);
	assert_canonical(c, "{\"config\":{\"Cmd\":[\"/app\",\"--x\"],\"Entrypoint\":[\"/init\"],"
			    "\"Env\":[\"PATH=/usr/bin:/bin\",\"A=one\",\"B=2\",\"C=3\"],"
			    "\"ExposedPorts\":{\"443/tcp\":{},\"80/tcp\":{}},"
			    "\"Labels\":{\"change\":\"three\",\"keep\":\"1\",\"new\":\"4\"},"
			    "\"StopSignal\":\"SIGTERM\",\"Volumes\":{\"/data\":{}},\"WorkingDir\":\"/w\"}}");
	json_decref(over);

	/* a new config gets its object; refused files change nothing */
	c = ls_oci_config_new();
	static const struct {
		const char *text, *part;
	} refused[] = {
		{ "{\"cmd\":[\"sh\"]}", "unknown key \"cmd\"" },
		{ "{\"Cmd\":\"sh\"}", "\"Cmd\" must be an array of strings" },
		{ "{\"Env\":[\"NOEQUALS\"]}", "\"Env\" must be an array of \"NAME=VALUE\" strings" },
		{ "{\"Env\":[\"=x\"]}", "\"Env\"" },
		{ "{\"Labels\":{\"a\":1}}", "\"Labels\" must be an object of strings" },
		{ "{\"ExposedPorts\":[\"80\"]}", "\"ExposedPorts\" must be an object" },
		{ "{\"User\":0}", "\"User\" must be a string" },
		{ "{\"WorkingDir\":\"/ok\",\"ArgsEscaped\":\"yes\"}", "\"ArgsEscaped\" must be true or false" },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		over = parse(refused[i].text);
		assert_one_line(ls_oci_config_merge(c, over, "cfg.json", &err), &err, refused[i].part);
		assert_non_null(strstr(err.msg, "cfg.json: "));
		json_decref(over);
	}
	over = parse("{\"Env\":[\"X=1\"]}");
	assert_int_equal(ls_oci_config_merge(c, over, "cfg.json", &err), 0);
	json_decref(over);
	assert_canonical(c, "{\"config\":{\"Env\":[\"X=1\"]},\"history\":[],\"rootfs\":{\"diff_ids\":[],\"type\":\"layers\"}}");
}

/* Documents that are not what a layout holds: one line each. */
static void test_broken_documents(void **state)
{
	struct ls_error err = { 0 };
	json_t *j = NULL;
	static const struct {
		const char *text, *part;
	} unparsable[] = {
		{ "", "line 1" },
		{ "{\"schemaVersion\":2,", "line 1 column" },
		{ "{\"a\":1,\n\"a\":2}", "line 2" },
		{ "[1,2]", "not a JSON object" },
		{ "{} {}", "line 1" },
	};
	for (size_t i = 0; i < sizeof(unparsable) / sizeof(unparsable[0]); i++) {
		assert_one_line(ls_oci_parse("index.json", unparsable[i].text, strlen(unparsable[i].text), &j, &err), &err,
				unparsable[i].part);
		assert_null(j);
		assert_non_null(strstr(err.msg, "index.json: "));
	}
	char d[200];
	snprintf(d, sizeof(d), "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1}", LS_OCI_MEDIA_MANIFEST, D1);
	char text[512];
	static const struct {
		const char *fmt, *part;
	} bad_index[] = {
		{ "{\"schemaVersion\":1,\"manifests\":[%s]}", "schemaVersion is not 2" },
		{ "{\"schemaVersion\":\"2\",\"manifests\":[%s]}", "schemaVersion is not 2" },
		{ "{\"schemaVersion\":2,\"manifests\":{\"d\":%s}}", "manifests is not an array" },
		{ "{\"schemaVersion\":2,\"mediaType\":\"x\",\"manifests\":[%s]}", "mediaType is not" },
		{ "{\"schemaVersion\":2,\"manifests\":[%s,{\"mediaType\":\"x\",\"size\":1}]}", "manifests[1]: no digest" },
		{ "{\"schemaVersion\":2,\"manifests\":[%s,{\"digest\":\"sha256:1\",\"mediaType\":\"x\",\"size\":1}]}",
		  "manifests[1]: digest" },
		{ "{\"schemaVersion\":2,\"manifests\":[%s,{\"digest\":\"sha256:1\",\"mediaType\":\"x\"}]}", "no size" },
		{ "{\"schemaVersion\":2,\"manifests\":[%s,3]}", "not a descriptor" },
	};
	for (size_t i = 0; i < sizeof(bad_index) / sizeof(bad_index[0]); i++) {
		snprintf(text, sizeof(text), bad_index[i].fmt, d);
		j = parse(text);
		assert_one_line(ls_oci_index_check(j, "img/index.json", &err), &err, bad_index[i].part);
		json_decref(j);
	}
	/* an image whose manifest and config disagree */
	json_t *m = ls_oci_manifest_new(), *c = ls_oci_config_new();
	json_object_set_new(m, "config", ls_oci_descriptor(LS_OCI_MEDIA_CONFIG, D1, 5));
	assert_int_equal(ls_oci_image_check(m, c, "img:t", &err), 0);
	json_array_append_new(json_object_get(m, "layers"), ls_oci_descriptor("x", D2, 5));
	assert_one_line(ls_oci_image_check(m, c, "img:t", &err), &err, "1 layers and the config 0 diff_ids");
	json_object_set_new(m, "mediaType", json_string("application/vnd.docker.distribution.manifest.v2+json"));
	assert_one_line(ls_oci_image_check(m, c, "img:t", &err), &err, "is not " LS_OCI_MEDIA_MANIFEST);
	json_decref(m);
	json_decref(c);
}

/* ---- layouts on disk ----------------------------------------------------------- */

static void put_file(const char *dir, const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ls_oci_load on dir: its return, err filled. */
static int load(const char *dir, const char *tag, struct ls_error *err)
{
	struct ls_oci_options oo = LS_OCI_OPTIONS_INIT;
	oo.layout = dir;
	oo.tag = tag;
	struct ls_oci o;
	int rc = ls_oci_prepare(&o, &oo, NULL, err);
	if (rc == 0)
		rc = ls_oci_load(&o, err);
	ls_oci_free(&o);
	return rc;
}

/* A layout that is broken is refused when it is read, with one line. */
static void test_broken_layouts(void **state)
{
	char dir[] = "/tmp/test_oci.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct ls_error err = { 0 };
	/* an empty directory is a new layout: nothing to read yet */
	assert_int_equal(load(dir, NULL, &err), 0);
	put_file(dir, "index.json", "{\"schemaVersion\":2,\"manifests\":[]}");
	assert_one_line(load(dir, NULL, &err), &err, "an index.json but no oci-layout");
	put_file(dir, "oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}");
	assert_one_line(load(dir, NULL, &err), &err, "imageLayoutVersion is 2.0.0");
	put_file(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	assert_int_equal(load(dir, NULL, &err), 0);
	put_file(dir, "index.json", "{\"schemaVersion\":2,\"manifests\":[");
	assert_one_line(load(dir, NULL, &err), &err, "/index.json: line 1 column");
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":2,"
		 "\"annotations\":{\"" LS_OCI_REF_NAME "\":\"t\"}}]}", LS_OCI_MEDIA_MANIFEST, D1);
	put_file(dir, "index.json", text);
	/* another tag is not read; t's manifest is missing, then wrong */
	assert_int_equal(load(dir, "other", &err), 0);
	assert_one_line(load(dir, "t", &err), &err, ":t: blob sha256:1111");
	assert_non_null(strstr(err.msg, "is missing"));
	put_file(dir, "blobs/sha256/1111111111111111111111111111111111111111111111111111111111111111", "{}");
	assert_one_line(load(dir, "t", &err), &err, "does not have that digest");
	put_file(dir, "blobs/sha256/1111111111111111111111111111111111111111111111111111111111111111", "{}\n");
	assert_one_line(load(dir, "t", &err), &err, "has 3 bytes, not 2");
	/* an index's entry pointing at an image index */
	snprintf(text, sizeof(text),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":2,"
		 "\"annotations\":{\"" LS_OCI_REF_NAME "\":\"t\"}}]}", LS_OCI_MEDIA_INDEX, D1);
	put_file(dir, "index.json", text);
	assert_one_line(load(dir, "t", &err), &err, "an image index");
	/* a base image that is not there */
	struct ls_oci_options oo = LS_OCI_OPTIONS_INIT;
	char other[600];
	snprintf(other, sizeof(other), "%s/new", dir);
	oo.layout = other;
	oo.base_layout = dir;
	oo.base_tag = "nope";
	struct ls_oci o;
	int rc = ls_oci_prepare(&o, &oo, NULL, &err);
	if (rc == 0)
		rc = ls_oci_load(&o, &err);
	ls_oci_free(&o);
	assert_one_line(rc, &err, "no image tagged nope");
	/* options refused before anything is made */
	oo = (struct ls_oci_options)LS_OCI_OPTIONS_INIT;
	snprintf(other, sizeof(other), "%s/never", dir);
	oo.layout = other;
	oo.tag = "a:b";
	assert_one_line(ls_oci_prepare(&o, &oo, NULL, &err), &err, "tag 'a:b'");
	ls_oci_free(&o);
	oo.tag = NULL;
	oo.platform = "amd64";
	assert_one_line(ls_oci_prepare(&o, &oo, NULL, &err), &err, "platform 'amd64'");
	ls_oci_free(&o);
	assert_int_equal(access(other, F_OK), -1);
	rm_rf(dir);
}

/* ls_output_commit_as: a blob's name is its digest; one already there is
 * kept, the temporary removed. */
static void test_commit_as(void **state)
{
	char dir[] = "/tmp/test_oci.XXXXXX";
	assert_non_null(mkdtemp(dir));
	for (int no_tmpfile = 0; no_tmpfile < 2; no_tmpfile++) {
		char target[600], named[600];
		snprintf(target, sizeof(target), "%s/layer", dir);
		snprintf(named, sizeof(named), "%s/blob", dir);
		struct ls_error err = { 0 };
		struct ls_output_options oo = { .no_tmpfile = no_tmpfile };
		for (int round = 0; round < 2; round++) {
			struct ls_output out;
			assert_int_equal(ls_output_open_opts(&out, target, &oo, &err), 0);
			const char *text = round ? "second" : "first";
			assert_int_equal(ls_write_all(out.fd, text, strlen(text)), 0);
			bool kept = true;
			assert_int_equal(ls_output_commit_as(&out, "blob", &kept, false, &err), 0);
			assert_int_equal(kept, round == 1);
			ls_output_abort(&out);
			size_t len;
			char *got = slurp(named, &len);
			assert_string_equal(got, "first");
			free(got);
			assert_int_equal(access(target, F_OK), -1);
		}
		/* nothing else left: no temporary */
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = blob", dir);
		assert_int_equal(system(cmd), 0);
		unlink(named);
	}
	rm_rf(dir);
}

/* A tree for ls_diff_files: f, d/g. */
static void make_tree(const char *root)
{
	char p[700];
	assert_int_equal(mkdir(root, 0755), 0);
	snprintf(p, sizeof(p), "%s/d", root);
	assert_int_equal(mkdir(p, 0755), 0);
	put_file(root, "f", "one\n");
	put_file(root, "d/g", "gee\n");
}

static int diff_into(const char *root, const char *layout, const ls_manifest *base, ls_manifest **next,
		     const char *manifest, bool keep_empty, struct ls_diff_result *res, struct ls_error *err)
{
	struct ls_walk_options w = LS_WALK_OPTIONS_INIT;
	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	d.walk = &w;
	d.compress = LS_COMPRESS_GZIP;
	d.have_epoch = true;
	d.source_date_epoch = 1600000000;
	struct ls_oci_options oo = LS_OCI_OPTIONS_INIT;
	oo.layout = layout;
	oo.tag = "t";
	oo.history = "a step";
	oo.platform = "linux/riscv64";
	oo.keep_empty = keep_empty;
	struct ls_files f = LS_FILES_INIT;
	f.manifest = manifest;
	f.oci = &oo;
	int rc = ls_diff_files(root, &d, base, &f, res, err);
	if (rc == 0 && next)
		rc = ls_manifest_load(manifest, next, err);
	return rc;
}

/* Through the public API: two layouts built by the same steps (on two
 * copies of a tree, one with its layout inside it, which is not walked)
 * are byte for byte the same; the image grows by a layer per step and by a
 * history entry only for an empty step. */
static void test_diff_files(void **state)
{
	char dir[] = "/tmp/test_oci.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char r1[600], r2[600], m1[600], m2[600], a[600], b[600];
	snprintf(r1, sizeof(r1), "%s/r1", dir);
	snprintf(r2, sizeof(r2), "%s/r2", dir);
	snprintf(m1, sizeof(m1), "%s/m1", dir);
	snprintf(m2, sizeof(m2), "%s/m2", dir);
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/r2/b", dir);  /* inside r2 */
	make_tree(r1);
	make_tree(r2);
	struct ls_error err = { 0 };
	struct ls_diff_result ra = LS_DIFF_RESULT_INIT, rb = LS_DIFF_RESULT_INIT;
	ls_manifest *b1 = NULL, *b2 = NULL, *n1 = NULL, *n2 = NULL;
	for (int step = 0; step < 3; step++) {
		if (step == 1) {
			put_file(r1, "f", "two\n");
			put_file(r2, "f", "two\n");
		}
		/* step 2: nothing changed */
		if (diff_into(r1, a, b1, &n1, m1, false, &ra, &err) || diff_into(r2, b, b2, &n2, m2, false, &rb, &err))
			fail_msg("step %d: %s", step, err.msg);
		if (strcmp(ra.diff_id, rb.diff_id) != 0 || strcmp(ra.image_digest, rb.image_digest) != 0)
			fail_msg("step %d: %s %s, %s %s", step, ra.diff_id, ra.image_digest, rb.diff_id, rb.image_digest);
		assert_int_equal(strlen(ra.image_digest), 71);
		ls_manifest_free(b1);
		ls_manifest_free(b2);
		b1 = n1;
		b2 = n2;
		n1 = n2 = NULL;
		/* the layout in ROOT is no part of the tree */
		assert_int_equal(ls_manifest_find(b2, "b", 1), -1);
	}
	ls_manifest_free(b1);
	ls_manifest_free(b2);
	size_t la, lb;
	char pa[700], pb[700];
	snprintf(pa, sizeof(pa), "%s/index.json", a);
	snprintf(pb, sizeof(pb), "%s/index.json", b);
	char *ia = slurp(pa, &la), *ib = slurp(pb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(ia, ib, la);
	json_t *index = parse(ia);
	free(ia);
	free(ib);
	const json_t *entry = ls_oci_index_find(index, "t");
	assert_non_null(entry);
	assert_string_equal(json_string_value(json_object_get(entry, "digest")), ra.image_digest);
	assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "platform"), "architecture")),
			    "riscv64");
	json_decref(index);
	/* the image: two layers, three history entries, the last empty */
	struct ls_oci_options oo = LS_OCI_OPTIONS_INIT;
	oo.layout = a;
	oo.tag = "t";
	struct ls_oci o;
	assert_int_equal(ls_oci_prepare(&o, &oo, NULL, &err), 0);
	assert_int_equal(ls_oci_load(&o, &err), 0);
	assert_int_equal(json_array_size(json_object_get(o.manifest, "layers")), 2);
	const json_t *hist = json_object_get(o.config, "history");
	assert_int_equal(json_array_size(hist), 3);
	assert_true(json_is_true(json_object_get(json_array_get(hist, 2), "empty_layer")));
	assert_null(json_object_get(json_array_get(hist, 1), "empty_layer"));
	assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "created")),
			    "2020-09-13T12:26:40Z");
	assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "created_by")), "a step");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(o.manifest, "layers"), 1),
								 "mediaType")),
			    "application/vnd.oci.image.layer.v1.tar+gzip");
	ls_oci_free(&o);
	/* with keep_empty, the empty step is a layer */
	assert_int_equal(ls_manifest_load(m1, &b1, &err), 0);
	assert_int_equal(diff_into(r1, a, b1, NULL, m1, true, &ra, &err), 0);
	ls_manifest_free(b1);
	assert_int_equal(ls_oci_prepare(&o, &oo, NULL, &err), 0);
	assert_int_equal(ls_oci_load(&o, &err), 0);
	assert_int_equal(json_array_size(json_object_get(o.manifest, "layers")), 3);
	assert_int_equal(json_array_size(json_object_get(o.config, "history")), 4);
	ls_oci_free(&o);
	/* a struct ls_files of the first version has no oci: a layer is needed */
	struct ls_files old = LS_FILES_INIT;
	old.struct_size = offsetof(struct ls_files, step_ctx) + sizeof(old.step_ctx);
	struct ls_diff_result r = LS_DIFF_RESULT_INIT;
	assert_int_equal(ls_diff_files(r1, NULL, NULL, &old, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no layer file"));
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_steps),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_config_merge),
		cmocka_unit_test(test_broken_documents),
		cmocka_unit_test(test_broken_layouts),
		cmocka_unit_test(test_commit_as),
		cmocka_unit_test(test_diff_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
