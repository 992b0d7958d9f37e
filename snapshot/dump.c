/* Renders a manifest for people and other tools: mtree specs and JSON. */
#include "error.h"
#include "manifest.h"
#include "strfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static const char *mtree_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "file";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "link";
	case S_IFIFO: return "fifo";
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	case S_IFSOCK: return "socket";
	}
	return "unknown";
}

static void split_ns(int64_t ns, int64_t *sec, long *nsec)
{
	*sec = ns / 1000000000;
	*nsec = (long)(ns % 1000000000);
	if (*nsec < 0) {
		*nsec += 1000000000;
		(*sec)--;
	}
}

int ls_manifest_dump_mtree(const ls_manifest *m, FILE *out, struct ls_error *err)
{
	if (!m || !out)
		return ls_fail(err, EINVAL, "dump: no manifest or stream");
	fputs("#mtree\n. type=dir\n", out);
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		int64_t sec;
		long nsec;
		split_ns(r->mtime_ns, &sec, &nsec);
		fputs("./", out);
		ls_put_vis(out, ls_rec_path(m, r), r->path_len);
		fprintf(out, " type=%s mode=%04o uid=%" PRIu32 " gid=%" PRIu32 " nlink=%" PRIu32,
			mtree_type(r->mode), r->mode & 07777, r->uid, r->gid, r->nlink);
		if (S_ISREG(r->mode))
			fprintf(out, " size=%" PRIu64, r->size);
		/* mtree sets no times on symlinks and so cannot check them */
		if (!S_ISLNK(r->mode))
			fprintf(out, " time=%" PRId64 ".%09ld", sec, nsec);
		if (S_ISLNK(r->mode)) {
			fputs(" link=", out);
			ls_put_vis(out, ls_rec_link(m, r), ls_rec_link_len(m, r));
		}
		if (S_ISCHR(r->mode) || S_ISBLK(r->mode))
			fprintf(out, " device=native,%u,%u", major(r->rdev), minor(r->rdev));
		fputc('\n', out);
	}
	if (fflush(out) != 0 || ferror(out))
		return ls_fail_errno(err, errno ? errno : EIO, "dump: write");
	return 0;
}

static void put_hex(FILE *out, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		fprintf(out, "%02x", p[i]);
}

int ls_manifest_dump_json(const ls_manifest *m, FILE *out, struct ls_error *err)
{
	if (!m || !out)
		return ls_fail(err, EINVAL, "dump: no manifest or stream");
	static const char *const xp[] = { "capability", "all", "none" };
	fprintf(out, "{\"format_version\": %u, \"mode\": \"%s\", \"xattrs\": \"%s\", \"one_file_system\": %s, "
		"\"scan_start\": %" PRId64 ".%09u, \"excludes\": [",
		LS_MANIFEST_VERSION, ls_mode_name(m->mode), xp[m->xattrs], m->one_file_system ? "true" : "false",
		m->start_sec, m->start_nsec);
	for (size_t i = 0; i < m->n_excludes; i++) {
		const char *e = ls_manifest_exclude(m, i);
		if (i)
			fputs(", ", out);
		ls_put_json_string(out, e, strlen(e));
	}
	fputs("], \"patterns\": [", out);
	for (size_t i = 0; i < m->n_patterns; i++) {
		const char *e = ls_manifest_pattern(m, i);
		if (i)
			fputs(", ", out);
		ls_put_json_string(out, e, strlen(e));
	}
	fputs("], \"entries\": [\n", out);
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		fputs("  {\"path\": ", out);
		ls_put_json_string(out, ls_rec_path(m, r), r->path_len);
		fprintf(out, ", \"type\": \"%s\", \"mode\": \"%04o\", \"uid\": %" PRIu32 ", \"gid\": %" PRIu32
			", \"size\": %" PRIu64 ", \"mtime_ns\": %" PRId64 ", \"ctime_ns\": %" PRId64
			", \"dev\": %" PRIu64 ", \"ino\": %" PRIu64 ", \"nlink\": %" PRIu32,
			mtree_type(r->mode), r->mode & 07777, r->uid, r->gid, r->size, r->mtime_ns, r->ctime_ns,
			r->dev, r->ino, r->nlink);
		if (S_ISCHR(r->mode) || S_ISBLK(r->mode))
			fprintf(out, ", \"rdev\": [%u, %u]", major(r->rdev), minor(r->rdev));
		if (S_ISLNK(r->mode)) {
			fputs(", \"link\": ", out);
			ls_put_json_string(out, ls_rec_link(m, r), ls_rec_link_len(m, r));
		}
		if (r->mode & LS_REC_MOUNTPOINT)
			fputs(", \"mountpoint\": true", out);
		if (r->mode & LS_REC_HASHED) {
			fputs(", \"xxh3_128\": \"", out);
			put_hex(out, r->hash, sizeof(r->hash));
			fputc('"', out);
		}
		if (r->xattr_len) {
			fputs(", \"xattrs\": {", out);
			struct ls_xattr_it it = ls_xattr_iter(ls_rec_xattrs(m, r), r->xattr_len);
			struct ls_xattr_view v;
			for (bool first = true; ls_xattr_next(&it, &v) > 0; first = false) {
				if (!first)
					fputs(", ", out);
				ls_put_json_string(out, v.name, v.name_len);
				fputs(": \"", out);
				put_hex(out, v.value, v.value_len);
				fputc('"', out);
			}
			fputc('}', out);
		}
		fputs(i + 1 < m->n ? "},\n" : "}\n", out);
	}
	fputs("]}\n", out);
	if (fflush(out) != 0 || ferror(out))
		return ls_fail_errno(err, errno ? errno : EIO, "dump: write");
	return 0;
}
