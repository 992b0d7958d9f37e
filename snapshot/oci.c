/* OCI image layouts: reading an image back and building the next one (see oci.h). */
#include "oci.h"
#include "error.h"
#include "output.h"
#include "sized.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- documents ---------------------------------------------------------------- */

int ls_oci_parse(const char *what, const void *buf, size_t len, json_t **out, struct ls_error *err)
{
	*out = NULL;
	json_error_t je;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return ls_fail(err, EINVAL, "%s: line %d column %d: %s", what, je.line, je.column, je.text);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return ls_fail(err, EINVAL, "%s: not a JSON object", what);
	}
	*out = doc;
	return 0;
}

char *ls_oci_canonical(const json_t *doc, size_t *len)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (s)
		*len = strlen(s);
	return s;
}

static void digest_text(const unsigned char md[32], char out[72])
{
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

int ls_oci_sha256(const void *buf, size_t len, char out[72], struct ls_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return ls_fail(err, EIO, "sha256 failed");
	digest_text(md, out);
	return 0;
}

int ls_oci_check_digest(const char *digest, const char *what, struct ls_error *err)
{
	if (!digest)
		return ls_fail(err, EINVAL, "%s: no digest", what);
	const char *colon = strchr(digest, ':');
	if (colon && strncmp(digest, "sha256:", 7) != 0)
		return ls_fail(err, EINVAL, "%s: digest %.80s: only sha256 is supported", what, digest);
	bool ok = colon && strlen(digest) == 7 + 64;
	for (size_t i = 7; ok && i < 7 + 64; i++)
		ok = (digest[i] >= '0' && digest[i] <= '9') || (digest[i] >= 'a' && digest[i] <= 'f');
	if (!ok)
		return ls_fail(err, EINVAL, "%s: digest %.80s is not sha256: and 64 lowercase hex digits", what, digest);
	return 0;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int ls_oci_check_tag(const char *tag, struct ls_error *err)
{
	size_t n = strlen(tag);
	bool ok = n >= 1 && n <= 128 && is_alnum(tag[0]);
	for (size_t i = 1; ok && i < n; i++)
		ok = is_alnum(tag[i]) || tag[i] == '.' || tag[i] == '_' || tag[i] == '-';
	if (!ok)
		return ls_fail(err, EINVAL, "tag '%.140s': expected 1 to 128 letters, digits, '.', '_' or '-', "
			       "the first a letter or digit", tag);
	return 0;
}

void ls_oci_time(int64_t t, char out[40])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || strftime(out, 40, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strcpy(out, "1970-01-01T00:00:00Z");
}

/* Sets key to v (stolen) in o; false, with o freed, when o or v is NULL
 * (out of memory; a string that is not UTF-8) or the set fails.  Objects
 * are built with it rather than json_pack(): Debian's jansson 2.14 read an
 * integer argument as a string in "{s:s,s:s,s:i}" here, and crashed. */
static bool put(json_t **o, const char *key, json_t *v)
{
	if (*o && v && json_object_set_new(*o, key, v) == 0)
		return true;
	if (!*o || !v)
		json_decref(v);
	json_decref(*o);
	*o = NULL;
	return false;
}

/* {key: value}, a new object; NULL when out of memory or not UTF-8. */
static json_t *object1(const char *key, const char *value)
{
	json_t *o = json_object();
	put(&o, key, json_string(value));
	return o;
}

json_t *ls_oci_descriptor(const char *media_type, const char *digest, uint64_t size)
{
	json_t *o = json_object();
	(void)(put(&o, "mediaType", json_string(media_type)) && put(&o, "digest", json_string(digest)) &&
	       put(&o, "size", json_integer((json_int_t)size)));
	return o;
}

/* {schemaVersion: 2, mediaType, list: []} */
static json_t *doc_new(const char *media_type, const char *list)
{
	json_t *o = json_object();
	(void)(put(&o, "schemaVersion", json_integer(2)) && put(&o, "mediaType", json_string(media_type)) &&
	       put(&o, list, json_array()));
	return o;
}

json_t *ls_oci_index_new(void)
{
	return doc_new(LS_OCI_MEDIA_INDEX, "manifests");
}

json_t *ls_oci_manifest_new(void)
{
	return doc_new(LS_OCI_MEDIA_MANIFEST, "layers");
}

static json_t *rootfs_new(void)
{
	json_t *o = object1("type", "layers");
	put(&o, "diff_ids", json_array());
	return o;
}

json_t *ls_oci_config_new(void)
{
	json_t *o = json_object();
	(void)(put(&o, "rootfs", rootfs_new()) && put(&o, "history", json_array()) && put(&o, "config", json_object()));
	return o;
}

/* A descriptor read back: mediaType, a sha256 digest, a size. */
static int check_descriptor(const json_t *d, const char *what, struct ls_error *err)
{
	if (!json_is_object(d))
		return ls_fail(err, EINVAL, "%s: not a descriptor object", what);
	const json_t *mt = json_object_get(d, "mediaType"), *size = json_object_get(d, "size");
	if (!json_is_string(mt))
		return ls_fail(err, EINVAL, "%s: no mediaType", what);
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return ls_fail(err, EINVAL, "%s: no size", what);
	return ls_oci_check_digest(json_string_value(json_object_get(d, "digest")), what, err);
}

static bool schema_2(const json_t *doc)
{
	const json_t *v = json_object_get(doc, "schemaVersion");
	return json_is_integer(v) && json_integer_value(v) == 2;
}

int ls_oci_index_check(const json_t *index, const char *what, struct ls_error *err)
{
	if (!schema_2(index))
		return ls_fail(err, EINVAL, "%s: schemaVersion is not 2", what);
	const json_t *mt = json_object_get(index, "mediaType");
	if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), LS_OCI_MEDIA_INDEX) != 0))
		return ls_fail(err, EINVAL, "%s: mediaType is not %s", what, LS_OCI_MEDIA_INDEX);
	const json_t *ms = json_object_get(index, "manifests");
	if (!json_is_array(ms))
		return ls_fail(err, EINVAL, "%s: manifests is not an array", what);
	size_t i;
	const json_t *d;
	json_array_foreach(ms, i, d) {
		char w[256];
		snprintf(w, sizeof(w), "%.200s: manifests[%zu]", what, i);
		int rc = check_descriptor(d, w, err);
		if (rc)
			return rc;
		const json_t *ann = json_object_get(d, "annotations");
		if (ann && !json_is_object(ann))
			return ls_fail(err, EINVAL, "%s: annotations is not an object", w);
	}
	return 0;
}

static const char *ref_name(const json_t *entry)
{
	return json_string_value(json_object_get(json_object_get(entry, "annotations"), LS_OCI_REF_NAME));
}

json_t *ls_oci_index_find(const json_t *index, const char *tag)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(index, "manifests"), i, d) {
		const char *name = ref_name(d);
		if (name && strcmp(name, tag) == 0)
			return d;
	}
	return NULL;
}

int ls_oci_index_set(json_t *index, const char *tag, const json_t *desc, const json_t *platform,
		     struct ls_error *err)
{
	json_t *entry = json_deep_copy(desc);
	json_t *ann = object1(LS_OCI_REF_NAME, tag);
	if (!entry || !ann || json_object_set_new(entry, "annotations", ann) != 0 ||
	    (platform && json_object_set(entry, "platform", (json_t *)platform) != 0)) {
		json_decref(entry);
		return ls_fail(err, ENOMEM, "index.json: out of memory");
	}
	json_t *ms = json_object_get(index, "manifests");
	if (!json_is_array(ms)) {
		ms = json_array();
		if (!ms || json_object_set_new(index, "manifests", ms) != 0) {
			json_decref(entry);
			return ls_fail(err, ENOMEM, "index.json: out of memory");
		}
	}
	/* In place: the other tags' entries keep their order. */
	bool placed = false;
	for (size_t i = 0; i < json_array_size(ms);) {
		const char *name = ref_name(json_array_get(ms, i));
		if (!name || strcmp(name, tag) != 0) {
			i++;
		} else if (!placed) {
			json_array_set(ms, i++, entry);
			placed = true;
		} else {
			json_array_remove(ms, i);
		}
	}
	int rc = placed ? 0 : json_array_append(ms, entry);
	json_decref(entry);
	return rc ? ls_fail(err, ENOMEM, "index.json: out of memory") : 0;
}

const char *ls_oci_machine_platform(void)
{
#if defined(__x86_64__)
	return "linux/amd64";
#elif defined(__aarch64__)
	return "linux/arm64";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7
	return "linux/arm/v7";
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH == 6
	return "linux/arm/v6";
#elif defined(__arm__)
	return "linux/arm/v5";
#elif defined(__i386__)
	return "linux/386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "linux/ppc64le";
#elif defined(__powerpc64__)
	return "linux/ppc64";
#elif defined(__s390x__)
	return "linux/s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "linux/riscv64";
#elif defined(__loongarch64)
	return "linux/loong64";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "linux/mips64le";
#elif defined(__mips64)
	return "linux/mips64";
#elif defined(__mips__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "linux/mipsle";
#elif defined(__mips__)
	return "linux/mips";
#else
	return "linux/unknown";
#endif
}

int ls_oci_set_platform(json_t *config, const char *platform, struct ls_error *err)
{
	char part[3][64];
	int n = 0;
	const char *p = platform;
	bool ok = true;
	while (ok) {
		size_t len = strcspn(p, "/");
		ok = n < 3 && len >= 1 && len < sizeof(part[0]);
		for (size_t i = 0; ok && i < len; i++)
			ok = is_alnum(p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-';
		if (!ok)
			break;
		memcpy(part[n], p, len);
		part[n++][len] = '\0';
		if (!p[len])
			break;
		p += len + 1;
	}
	if (!ok || n < 2)
		return ls_fail(err, EINVAL, "platform '%.100s': expected OS/ARCH or OS/ARCH/VARIANT (linux/amd64, linux/arm/v7)",
			       platform);
	if (json_object_set_new(config, "os", json_string(part[0])) != 0 ||
	    json_object_set_new(config, "architecture", json_string(part[1])) != 0 ||
	    (n == 3 && json_object_set_new(config, "variant", json_string(part[2])) != 0))
		return ls_fail(err, ENOMEM, "config: out of memory");
	if (n == 2)
		json_object_del(config, "variant");
	return 0;
}

json_t *ls_oci_platform_of(const json_t *config)
{
	static const char *const keys[] = { "architecture", "os", "variant" };
	json_t *p = json_object();
	if (!p)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(config, keys[i]);
		if (json_is_string(v) && json_object_set(p, keys[i], v) != 0) {
			json_decref(p);
			return NULL;
		}
	}
	if (!json_object_get(p, "os") && !json_object_get(p, "architecture")) {
		json_decref(p);
		return NULL;
	}
	return p;
}

int ls_oci_manifest_check(const json_t *manifest, const char *what, struct ls_error *err)
{
	char w[256];
	if (!schema_2(manifest))
		return ls_fail(err, EINVAL, "%s: manifest: schemaVersion is not 2", what);
	const json_t *mt = json_object_get(manifest, "mediaType");
	if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), LS_OCI_MEDIA_MANIFEST) != 0))
		return ls_fail(err, EINVAL, "%s: manifest: mediaType %.100s is not %s", what,
			       json_is_string(mt) ? json_string_value(mt) : "(not a string)", LS_OCI_MEDIA_MANIFEST);
	snprintf(w, sizeof(w), "%.200s: manifest: config", what);
	int rc = check_descriptor(json_object_get(manifest, "config"), w, err);
	if (rc)
		return rc;
	const char *cmt = json_string_value(json_object_get(json_object_get(manifest, "config"), "mediaType"));
	if (strcmp(cmt, LS_OCI_MEDIA_CONFIG) != 0)
		return ls_fail(err, EINVAL, "%s: mediaType %.100s is not %s", w, cmt, LS_OCI_MEDIA_CONFIG);
	const json_t *layers = json_object_get(manifest, "layers");
	if (!json_is_array(layers))
		return ls_fail(err, EINVAL, "%s: manifest: layers is not an array", what);
	size_t i;
	const json_t *d;
	json_array_foreach(layers, i, d) {
		snprintf(w, sizeof(w), "%.200s: manifest: layers[%zu]", what, i);
		if ((rc = check_descriptor(d, w, err)))
			return rc;
	}
	return 0;
}

int ls_oci_image_check(const json_t *manifest, const json_t *config, const char *what, struct ls_error *err)
{
	char w[256];
	size_t i;
	const json_t *d, *layers = json_object_get(manifest, "layers");
	int rc = ls_oci_manifest_check(manifest, what, err);
	if (rc)
		return rc;
	const json_t *rootfs = json_object_get(config, "rootfs");
	const json_t *type = json_object_get(rootfs, "type"), *ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_string(type) || strcmp(json_string_value(type), "layers") != 0 || !json_is_array(ids))
		return ls_fail(err, EINVAL, "%s: config: rootfs is not of type layers with diff_ids", what);
	json_array_foreach(ids, i, d) {
		snprintf(w, sizeof(w), "%.200s: config: rootfs.diff_ids[%zu]", what, i);
		if ((rc = ls_oci_check_digest(json_string_value(d), w, err)))
			return rc;
	}
	if (json_array_size(ids) != json_array_size(layers))
		return ls_fail(err, EINVAL, "%s: the manifest has %zu layers and the config %zu diff_ids", what,
			       json_array_size(layers), json_array_size(ids));
	const json_t *h = json_object_get(config, "history"), *c = json_object_get(config, "config");
	if (h && !json_is_array(h))
		return ls_fail(err, EINVAL, "%s: config: history is not an array", what);
	if (c && !json_is_object(c))
		return ls_fail(err, EINVAL, "%s: config: config is not an object", what);
	return 0;
}

/* ---- --config FILE ------------------------------------------------------------ */

enum kind { K_STRING, K_STRINGS, K_BOOL, K_OBJECT, K_ENV, K_LABELS, K_SET };

static const struct {
	const char *key;
	enum kind kind;
} config_keys[] = {
	{ "User", K_STRING }, { "WorkingDir", K_STRING }, { "StopSignal", K_STRING },
	{ "Cmd", K_STRINGS }, { "Entrypoint", K_STRINGS }, { "Shell", K_STRINGS }, { "OnBuild", K_STRINGS },
	{ "Env", K_ENV }, { "Labels", K_LABELS }, { "ExposedPorts", K_SET }, { "Volumes", K_SET },
	{ "Healthcheck", K_OBJECT }, { "ArgsEscaped", K_BOOL },
};
#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static bool all_strings(const json_t *a)
{
	size_t i;
	const json_t *v;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

/* Whether v fits kind (null always does: it removes). */
static const char *type_error(enum kind kind, const json_t *v)
{
	if (json_is_null(v))
		return NULL;
	const char *k;
	const json_t *x;
	switch (kind) {
	case K_STRING: return json_is_string(v) ? NULL : "a string";
	case K_BOOL: return json_is_boolean(v) ? NULL : "true or false";
	case K_OBJECT: return json_is_object(v) ? NULL : "an object";
	case K_STRINGS: return json_is_array(v) && all_strings(v) ? NULL : "an array of strings";
	case K_ENV: {
		if (!json_is_array(v) || !all_strings(v))
			return "an array of \"NAME=VALUE\" strings";
		size_t i;
		json_array_foreach(v, i, x) {
			const char *s = json_string_value(x), *eq = strchr(s, '=');
			if (!eq || eq == s)
				return "an array of \"NAME=VALUE\" strings";
		}
		return NULL;
	}
	case K_LABELS:
		if (!json_is_object(v))
			return "an object of strings (or null)";
		json_object_foreach((json_t *)v, k, x) if (!json_is_string(x) && !json_is_null(x))
			return "an object of strings (or null)";
		return NULL;
	case K_SET:
		if (!json_is_object(v))
			return "an object of {} (or null)";
		json_object_foreach((json_t *)v, k, x) if (!json_is_object(x) && !json_is_null(x))
			return "an object of {} (or null)";
		return NULL;
	}
	return "?";
}

/* Env: each NAME=VALUE replaces the entry of NAME in place, or is appended. */
static int merge_env(json_t *cfg, const json_t *env)
{
	json_t *old = json_object_get(cfg, "Env");
	if (!json_is_array(old) || !all_strings(old)) {
		old = json_array();
		if (!old || json_object_set_new(cfg, "Env", old) != 0)
			return -1;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(env, i, e) {
		const char *s = json_string_value(e);
		size_t name = (size_t)(strchr(s, '=') - s) + 1;
		size_t j, n = json_array_size(old);
		for (j = 0; j < n; j++)
			if (strncmp(json_string_value(json_array_get(old, j)), s, name) == 0)
				break;
		if ((j < n ? json_array_set(old, j, (json_t *)e) : json_array_append(old, (json_t *)e)) != 0)
			return -1;
	}
	return 0;
}

/* Labels, ExposedPorts, Volumes: key by key, null removing. */
static int merge_map(json_t *cfg, const char *key, const json_t *map)
{
	json_t *old = json_object_get(cfg, key);
	if (!json_is_object(old)) {
		old = json_object();
		if (!old || json_object_set_new(cfg, key, old) != 0)
			return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)map, k, v) {
		if (json_is_null(v))
			json_object_del(old, k);
		else if (json_object_set(old, k, v) != 0)
			return -1;
	}
	return 0;
}

int ls_oci_config_merge(json_t *config, const json_t *over, const char *what, struct ls_error *err)
{
	const char *key;
	json_t *v;
	/* Checked whole first: a refused file changes nothing. */
	json_object_foreach((json_t *)over, key, v) {
		size_t i;
		for (i = 0; i < N_CONFIG_KEYS && strcmp(config_keys[i].key, key) != 0; i++)
			;
		if (i == N_CONFIG_KEYS)
			return ls_fail(err, EINVAL, "%s: unknown key \"%.100s\" (expected User, WorkingDir, Env, Cmd, "
				       "Entrypoint, Labels, ExposedPorts, Volumes, StopSignal, Shell, Healthcheck, OnBuild or "
				       "ArgsEscaped)", what, key);
		const char *want = type_error(config_keys[i].kind, v);
		if (want)
			return ls_fail(err, EINVAL, "%s: \"%s\" must be %s", what, key, want);
	}
	json_t *cfg = json_object_get(config, "config");
	if (!json_is_object(cfg)) {
		cfg = json_object();
		if (!cfg || json_object_set_new(config, "config", cfg) != 0)
			return ls_fail(err, ENOMEM, "config: out of memory");
	}
	json_object_foreach((json_t *)over, key, v) {
		size_t i;
		for (i = 0; strcmp(config_keys[i].key, key) != 0; i++)
			;
		enum kind kind = config_keys[i].kind;
		int rc = 0;
		if (json_is_null(v))
			json_object_del(cfg, key);
		else if (kind == K_ENV)
			rc = merge_env(cfg, v);
		else if (kind == K_LABELS || kind == K_SET)
			rc = merge_map(cfg, key, v);
		else
			rc = json_object_set(cfg, key, v);
		if (rc)
			return ls_fail(err, ENOMEM, "config: out of memory");
	}
	return 0;
}

/* ---- a step ------------------------------------------------------------------ */

/* v stolen: a NULL (out of memory, or a string that is not UTF-8) fails. */
static int append_new(json_t *array, json_t *v)
{
	return v ? json_array_append_new(array, v) : -1;
}

int ls_oci_add_step(json_t *manifest, json_t *config, const struct ls_oci_step *s, struct ls_error *err)
{
	json_t *hist = json_object_get(config, "history");
	if (!json_is_array(hist)) {
		hist = json_array();
		if (!hist || json_object_set_new(config, "history", hist) != 0)
			return ls_fail(err, ENOMEM, "config: out of memory");
	}
	json_t *h = object1("created", s->created);
	if (!h)
		return ls_fail(err, ENOMEM, "config: out of memory");
	if (s->created_by) {
		json_t *by = json_string(s->created_by);
		if (!by) {
			json_decref(h);
			return ls_fail(err, EINVAL, "history: not valid UTF-8");
		}
		if (json_object_set_new(h, "created_by", by) != 0) {
			json_decref(h);
			return ls_fail(err, ENOMEM, "config: out of memory");
		}
	}
	if (s->empty && json_object_set_new(h, "empty_layer", json_true()) != 0) {
		json_decref(h);
		return ls_fail(err, ENOMEM, "config: out of memory");
	}
	if (!s->empty) {
		json_t *rootfs = json_object_get(config, "rootfs");
		if (!json_is_object(rootfs)) {
			rootfs = rootfs_new();
			if (!rootfs || json_object_set_new(config, "rootfs", rootfs) != 0) {
				json_decref(h);
				return ls_fail(err, ENOMEM, "config: out of memory");
			}
		}
		json_t *layers = json_object_get(manifest, "layers");
		if (!json_is_array(layers)) {
			layers = json_array();
			if (!layers || json_object_set_new(manifest, "layers", layers) != 0) {
				json_decref(h);
				return ls_fail(err, ENOMEM, "manifest: out of memory");
			}
		}
		if (append_new(json_object_get(rootfs, "diff_ids"), json_string(s->diff_id)) != 0 ||
		    append_new(layers, ls_oci_descriptor(s->media_type, s->digest, s->size)) != 0) {
			json_decref(h);
			return ls_fail(err, ENOMEM, "config: out of memory");
		}
	}
	if (json_array_append_new(hist, h) != 0 ||
	    json_object_set_new(config, "created", json_string(s->created)) != 0)
		return ls_fail(err, ENOMEM, "config: out of memory");
	return 0;
}

/* ---- a layout --------------------------------------------------------------- */

/* Reads all of path (at most max bytes) into *buf (malloc'ed,
 * NUL-terminated).  A layout's files must be regular (never wait on a FIFO
 * planted there); with stream, a pipe is read to its end too (--config
 * <(...)).  -ENOENT when absent, with err filled. */
static int read_file(const char *path, size_t max, bool stream, char **buf, size_t *len, struct ls_error *err)
{
	*buf = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC | (stream ? 0 : O_NONBLOCK));
	if (fd < 0)
		return ls_fail_errno(err, errno, "%s", path);
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0)
		rc = ls_fail_errno(err, errno, "%s", path);
	else if (S_ISDIR(st.st_mode) || (!S_ISREG(st.st_mode) && !stream))
		rc = ls_fail(err, EINVAL, "%s: not a regular file", path);
	else if ((uint64_t)st.st_size > max)
		rc = ls_fail(err, EFBIG, "%s: larger than %zu MiB", path, max >> 20);
	size_t cap = rc ? 0 : S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096, got = 0;
	char *b = rc ? NULL : malloc(cap);
	if (!rc && !b)
		rc = ls_fail(err, ENOMEM, "%s: out of memory", path);
	while (!rc && !(S_ISREG(st.st_mode) && got == (size_t)st.st_size)) {
		if (got + 1 == cap) {
			char *nb = cap <= max ? realloc(b, cap * 2) : NULL;
			if (!nb) {
				rc = cap <= max ? ls_fail(err, ENOMEM, "%s: out of memory", path)
						: ls_fail(err, EFBIG, "%s: larger than %zu MiB", path, max >> 20);
				break;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t n = read(fd, b + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = ls_fail_errno(err, errno, "%s", path);
		else if (n == 0)
			break;
		else
			got += (size_t)n;
	}
	close(fd);
	if (rc) {
		free(b);
		return rc;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	return 0;
}

static int read_json(const char *path, bool stream, json_t **out, struct ls_error *err)
{
	char *buf;
	size_t len;
	int rc = read_file(path, LS_OCI_MAX_JSON, stream, &buf, &len, err);
	if (rc == 0)
		rc = ls_oci_parse(path, buf, len, out, err);
	free(buf);
	return rc;
}

static char *join(const char *dir, const char *name)
{
	char *p;
	size_t dl = strlen(dir);
	return asprintf(&p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name) < 0 ? NULL : p;
}

static char *blob_path(const char *blobs, const char *digest)
{
	return join(blobs, digest + 7);
}

/* The blob desc names in blobs, read and checked against its size and
 * digest, parsed. */
static int read_blob_json(const char *blobs, const json_t *desc, const char *what, json_t **out,
			  struct ls_error *err)
{
	*out = NULL;
	const char *digest = json_string_value(json_object_get(desc, "digest"));
	json_int_t size = json_integer_value(json_object_get(desc, "size"));
	char *path = blob_path(blobs, digest), *buf = NULL;
	size_t len;
	char got[72];
	if (!path)
		return ls_fail(err, ENOMEM, "%s: out of memory", what);
	int rc = read_file(path, LS_OCI_MAX_JSON, false, &buf, &len, err);
	if (rc == -ENOENT)
		rc = ls_fail(err, EINVAL, "%s: blob %s is missing", what, digest);
	else if (rc == 0 && (json_int_t)len != size)
		rc = ls_fail(err, EINVAL, "%s: blob %s has %zu bytes, not %" JSON_INTEGER_FORMAT " as its descriptor says",
			     what, digest, len, size);
	else if (rc == 0 && (rc = ls_oci_sha256(buf, len, got, err)) == 0 && strcmp(got, digest) != 0)
		rc = ls_fail(err, EINVAL, "%s: blob %s does not have that digest (its bytes are %s)", what, digest, got);
	if (rc == 0)
		rc = ls_oci_parse(path, buf, len, out, err);
	free(buf);
	free(path);
	return rc;
}

static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int make_dir(const char *path, struct ls_error *err)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(path, &st) != 0)
			return ls_fail_errno(err, errno, "%s", path);
		if (!S_ISDIR(st.st_mode))
			return ls_fail(err, ENOTDIR, "%s: not a directory", path);
		return 0;
	}
	return ls_fail_errno(err, errno, "%s", path);
}

int ls_oci_prepare(struct ls_oci *o, const struct ls_oci_options *opts, const char *root, struct ls_error *err)
{
	memset(o, 0, sizeof(*o));
	int rc = ls_sized_in(&o->o, sizeof(o->o), LS_SIZE_TO(struct ls_oci_options, base_tag), opts,
			     LS_SIZE_TO(struct ls_oci_options, base_tag), "oci: options",
			     err);
	if (rc)
		return rc;
	if (!o->o.layout || !*o->o.layout)
		return ls_fail(err, EINVAL, "oci: no layout directory");
	o->tag = o->o.tag ? o->o.tag : "latest";
	if ((rc = ls_oci_check_tag(o->tag, err)) ||
	    (o->o.base_tag && (rc = ls_oci_check_tag(o->o.base_tag, err))))
		return rc;
	if (o->o.platform) {
		/* checked now, before any work */
		json_t *probe = json_object();
		if (!probe)
			return ls_fail(err, ENOMEM, "oci: out of memory");
		rc = ls_oci_set_platform(probe, o->o.platform, err);
		json_decref(probe);
		if (rc)
			return rc;
	}
	char *blobs = NULL;
	if (!(o->dir = strdup(o->o.layout)) || !(blobs = join(o->dir, "blobs")) ||
	    !(o->blobs = join(blobs, "sha256")) || !(o->index_path = join(o->dir, "index.json")) ||
	    !(o->layout_path = join(o->dir, "oci-layout"))) {
		free(blobs);
		return ls_fail(err, ENOMEM, "oci: out of memory");
	}
	/* A layout inside ROOT is left out of the walk; ROOT itself cannot be. */
	if (root && same_dir(root, o->dir)) {
		free(blobs);
		return ls_fail(err, EINVAL, "%s: the OCI layout cannot be ROOT itself", o->dir);
	}
	rc = make_dir(o->dir, err);
	if (rc == 0)
		rc = make_dir(blobs, err);
	if (rc == 0)
		rc = make_dir(o->blobs, err);
	free(blobs);
	return rc;
}

/* A layout's oci-layout: 0 with *have, or -EINVAL when it is not 1.0.0's. */
static int check_layout_file(const char *dir, bool *have, struct ls_error *err)
{
	*have = false;
	char *path = join(dir, "oci-layout");
	if (!path)
		return ls_fail(err, ENOMEM, "oci: out of memory");
	json_t *doc = NULL;
	int rc = read_json(path, false, &doc, err);
	if (rc == -ENOENT) {
		rc = 0;
	} else if (rc == 0) {
		const char *v = json_string_value(json_object_get(doc, "imageLayoutVersion"));
		if (!v || strcmp(v, LS_OCI_LAYOUT_VERSION) != 0)
			rc = ls_fail(err, EINVAL, "%s: imageLayoutVersion is %.40s, not " LS_OCI_LAYOUT_VERSION, path,
				     v ? v : "missing");
		*have = rc == 0;
	}
	json_decref(doc);
	free(path);
	return rc;
}

/* A layout's index.json, checked: *index NULL when absent (-ENOENT then). */
static int load_index(const char *dir, bool have_layout, json_t **index, struct ls_error *err)
{
	*index = NULL;
	char *path = join(dir, "index.json");
	if (!path)
		return ls_fail(err, ENOMEM, "oci: out of memory");
	int rc = read_json(path, false, index, err);
	if (rc == 0 && !have_layout)
		rc = ls_fail(err, EINVAL, "%s: an index.json but no oci-layout: not an OCI image layout", dir);
	if (rc == 0)
		rc = ls_oci_index_check(*index, path, err);
	if (rc && rc != -ENOENT) {
		json_decref(*index);
		*index = NULL;
	}
	free(path);
	return rc;
}

/* The image entry of index at tag into manifest and config, checked; blobs
 * the layout's blobs/sha256. */
static int load_image(const char *blobs, const json_t *entry, const char *what, json_t **manifest,
		      json_t **config, struct ls_error *err)
{
	*manifest = *config = NULL;
	const char *mt = json_string_value(json_object_get(entry, "mediaType"));
	if (strcmp(mt, LS_OCI_MEDIA_MANIFEST) != 0)
		return ls_fail(err, EINVAL, "%s: %.100s is not an OCI image manifest (%s)", what, mt,
			       strcmp(mt, LS_OCI_MEDIA_INDEX) == 0 ? "an image index: pick one of its images" : "unsupported");
	int rc = read_blob_json(blobs, entry, what, manifest, err);
	if (rc == 0)
		rc = ls_oci_manifest_check(*manifest, what, err);
	if (rc == 0)
		rc = read_blob_json(blobs, json_object_get(*manifest, "config"), what, config, err);
	if (rc == 0)
		rc = ls_oci_image_check(*manifest, *config, what, err);
	if (rc) {
		json_decref(*manifest);
		json_decref(*config);
		*manifest = *config = NULL;
	}
	return rc;
}

bool ls_oci_has_blob(const struct ls_oci *o, const char *digest)
{
	char *path = blob_path(o->blobs, digest);
	struct stat st;
	bool has = path && lstat(path, &st) == 0 && S_ISREG(st.st_mode);
	free(path);
	return has;
}

/* Every layer of the image in this layout, or in the list to copy from
 * src_blobs (another layout's blobs/sha256; NULL: this one). */
static int need_layers(struct ls_oci *o, const char *src_blobs, const char *what, struct ls_error *err)
{
	const json_t *layers = json_object_get(o->manifest, "layers");
	size_t i;
	const json_t *d;
	json_array_foreach(layers, i, d) {
		const char *digest = json_string_value(json_object_get(d, "digest"));
		json_int_t size = json_integer_value(json_object_get(d, "size"));
		bool listed = false;
		for (size_t k = 0; k < o->n_copy && !listed; k++)
			listed = strcmp(o->copy[k].digest, digest) == 0;
		if (listed || ls_oci_has_blob(o, digest))
			continue;
		if (!src_blobs)
			return ls_fail(err, EINVAL, "%s: layer blob %s is missing", what, digest);
		char *src = blob_path(src_blobs, digest);
		struct stat st;
		if (!src)
			return ls_fail(err, ENOMEM, "oci: out of memory");
		if (stat(src, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)size) {
			int rc = ls_fail(err, EINVAL, "%s: layer blob %s is %s", what, digest,
					 stat(src, &st) != 0 ? "missing" : !S_ISREG(st.st_mode) ? "not a file"
					 : "not of its descriptor's size");
			free(src);
			return rc;
		}
		struct ls_oci_copy *c = realloc(o->copy, (o->n_copy + 1) * sizeof(*c));
		if (!c) {
			free(src);
			return ls_fail(err, ENOMEM, "oci: out of memory");
		}
		o->copy = c;
		c[o->n_copy].src = src;
		snprintf(c[o->n_copy].digest, sizeof(c[o->n_copy].digest), "%s", digest);
		c[o->n_copy++].size = (uint64_t)size;
	}
	return 0;
}

static int load_config_file(struct ls_oci *o, struct ls_error *err)
{
	json_t *over = NULL;
	int rc = read_json(o->o.config_file, true, &over, err);
	if (rc == 0)
		rc = ls_oci_config_merge(o->config, over, o->o.config_file, err);
	json_decref(over);
	return rc;
}

int ls_oci_load(struct ls_oci *o, struct ls_error *err)
{
	char what[512];
	int rc = check_layout_file(o->dir, &o->have_layout, err);
	if (rc)
		return rc;
	rc = load_index(o->dir, o->have_layout, &o->index, err);
	if (rc == -ENOENT)
		o->index = ls_oci_index_new();
	else if (rc)
		return rc;
	if (!o->index)
		return ls_fail(err, ENOMEM, "oci: out of memory");

	if (o->o.base_layout) {
		const char *btag = o->o.base_tag ? o->o.base_tag : "latest";
		bool have = false;
		json_t *bindex = NULL;
		char *bblobs = NULL, *b1 = join(o->o.base_layout, "blobs");
		bblobs = b1 ? join(b1, "sha256") : NULL;
		free(b1);
		snprintf(what, sizeof(what), "%.400s:%s", o->o.base_layout, btag);
		if (!bblobs)
			return ls_fail(err, ENOMEM, "oci: out of memory");
		rc = check_layout_file(o->o.base_layout, &have, err);
		if (rc == 0 && !have)
			rc = ls_fail(err, EINVAL, "%s: not an OCI image layout (no oci-layout)", o->o.base_layout);
		if (rc == 0)
			rc = load_index(o->o.base_layout, have, &bindex, err);
		const json_t *entry = rc ? NULL : ls_oci_index_find(bindex, btag);
		if (rc == 0 && !entry)
			rc = ls_fail(err, EINVAL, "%s: no image tagged %s", o->o.base_layout, btag);
		if (rc == 0)
			rc = load_image(bblobs, entry, what, &o->manifest, &o->config, err);
		if (rc == 0)
			rc = need_layers(o, same_dir(bblobs, o->blobs) ? NULL : bblobs, what, err);
		json_decref(bindex);
		free(bblobs);
		if (rc)
			return rc;
	} else {
		const json_t *entry = ls_oci_index_find(o->index, o->tag);
		snprintf(what, sizeof(what), "%.400s:%s", o->dir, o->tag);
		if (entry && ((rc = load_image(o->blobs, entry, what, &o->manifest, &o->config, err)) ||
			      (rc = need_layers(o, NULL, what, err))))
			return rc;
	}
	if (!o->manifest)
		o->manifest = ls_oci_manifest_new();
	if (!o->config && (o->config = ls_oci_config_new()) &&
	    (rc = ls_oci_set_platform(o->config, o->o.platform ? o->o.platform : ls_oci_machine_platform(), err)))
		return rc;
	if (!o->manifest || !o->config)
		return ls_fail(err, ENOMEM, "oci: out of memory");
	if (o->o.platform && (rc = ls_oci_set_platform(o->config, o->o.platform, err)))
		return rc;
	if (o->o.config_file && (rc = load_config_file(o, err)))
		return rc;
	return 0;
}

int ls_oci_copy_blob(const struct ls_oci *o, size_t i, int fd, struct ls_error *err)
{
	const struct ls_oci_copy *c = &o->copy[i];
	int in = open(c->src, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (in < 0)
		return ls_fail_errno(err, errno, "%s", c->src);
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	char *buf = malloc(1 << 20);
	int rc = 0;
	uint64_t total = 0;
	if (!sha || !buf || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
		rc = ls_fail(err, ENOMEM, "%s: out of memory", c->src);
	while (rc == 0) {
		ssize_t n = read(in, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ls_fail_errno(err, errno, "%s", c->src);
			break;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (EVP_DigestUpdate(sha, buf, (size_t)n) != 1)
			rc = ls_fail(err, EIO, "sha256 failed");
		else if ((rc = ls_write_all(fd, buf, (size_t)n)) != 0)
			rc = ls_fail_errno(err, -rc, "%s: copy of %s", o->blobs, c->digest);
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char got[72] = "";
	if (rc == 0 && (EVP_DigestFinal_ex(sha, md, &n) != 1 || n != 32))
		rc = ls_fail(err, EIO, "sha256 failed");
	if (rc == 0) {
		digest_text(md, got);
		if (total != c->size || strcmp(got, c->digest) != 0)
			rc = ls_fail(err, EINVAL, "%s: its bytes (%" PRIu64 ", %s) are not those of its name", c->src,
				     total, got);
	}
	EVP_MD_CTX_free(sha);
	free(buf);
	close(in);
	return rc;
}

static int canonical(const json_t *doc, char **out, size_t *len, struct ls_error *err)
{
	*out = ls_oci_canonical(doc, len);
	return *out ? 0 : ls_fail(err, ENOMEM, "oci: out of memory");
}

int ls_oci_finish(struct ls_oci *o, const struct ls_oci_step *step, struct ls_error *err)
{
	int rc = ls_oci_add_step(o->manifest, o->config, step, err);
	if (rc || (rc = canonical(o->config, &o->config_json, &o->config_len, err)) ||
	    (rc = ls_oci_sha256(o->config_json, o->config_len, o->config_digest, err)))
		return rc;
	json_t *cd = ls_oci_descriptor(LS_OCI_MEDIA_CONFIG, o->config_digest, o->config_len);
	if (!cd || json_object_set_new(o->manifest, "config", cd) != 0 ||
	    json_object_set_new(o->manifest, "schemaVersion", json_integer(2)) != 0 ||
	    json_object_set_new(o->manifest, "mediaType", json_string(LS_OCI_MEDIA_MANIFEST)) != 0)
		return ls_fail(err, ENOMEM, "oci: out of memory");
	if ((rc = canonical(o->manifest, &o->manifest_json, &o->manifest_len, err)) ||
	    (rc = ls_oci_sha256(o->manifest_json, o->manifest_len, o->manifest_digest, err)))
		return rc;
	json_t *md = ls_oci_descriptor(LS_OCI_MEDIA_MANIFEST, o->manifest_digest, o->manifest_len);
	json_t *platform = ls_oci_platform_of(o->config);
	rc = md ? ls_oci_index_set(o->index, o->tag, md, platform, err) : ls_fail(err, ENOMEM, "oci: out of memory");
	json_decref(md);
	json_decref(platform);
	if (rc)
		return rc;
	if (json_object_set_new(o->index, "schemaVersion", json_integer(2)) != 0 ||
	    json_object_set_new(o->index, "mediaType", json_string(LS_OCI_MEDIA_INDEX)) != 0)
		return ls_fail(err, ENOMEM, "oci: out of memory");
	if ((rc = canonical(o->index, &o->index_json, &o->index_len, err)))
		return rc;
	if (!o->have_layout) {
		json_t *l = object1("imageLayoutVersion", LS_OCI_LAYOUT_VERSION);
		rc = l ? canonical(l, &o->layout_json, &o->layout_len, err) : ls_fail(err, ENOMEM, "oci: out of memory");
		json_decref(l);
	}
	return rc;
}

void ls_oci_free(struct ls_oci *o)
{
	free(o->dir);
	free(o->blobs);
	free(o->index_path);
	free(o->layout_path);
	json_decref(o->index);
	json_decref(o->manifest);
	json_decref(o->config);
	for (size_t i = 0; i < o->n_copy; i++)
		free(o->copy[i].src);
	free(o->copy);
	free(o->config_json);
	free(o->manifest_json);
	free(o->index_json);
	free(o->layout_json);
	memset(o, 0, sizeof(*o));
}
