/*
 * mktar: builds crafted tar layers for the tests, including entries no normal
 * tar tool writes (absolute paths, "..", duplicates, hard links out of the
 * tree, bare ".wh." names, ...).  Written with libarchive's pax_restricted
 * writer (a pax extended header only when needed; xattrs as SCHILY.xattr.*).
 *
 *   mktar [-z | -Z] [-o FILE] < SPEC
 *     -z  gzip the output     -Z  zstd the output     -o FILE  write FILE, not stdout
 *
 * SPEC: one entry per line, in archive order; blank lines and lines starting
 * with '#' are ignored.  Fields are separated by spaces or tabs:
 *
 *   file     PATH [CONTENT] [KEY=VALUE...]   regular file (CONTENT default empty)
 *   dir      PATH [KEY=VALUE...]
 *   symlink  PATH TARGET [KEY=VALUE...]
 *   hardlink PATH TARGET [KEY=VALUE...]      hard-link entry (typeflag 1) naming TARGET
 *   fifo     PATH [KEY=VALUE...]
 *   char     PATH MAJOR MINOR [KEY=VALUE...]
 *   block    PATH MAJOR MINOR [KEY=VALUE...]
 *
 * KEYs: mode=OCTAL (permission bits; defaults: dir 0755, symlink 0777, other
 * 0644), uid=N, gid=N (default 0), mtime=SEC[.NSEC] (default 1600000000),
 * data=CONTENT (same as the CONTENT field, for content that looks like a
 * KEY=VALUE), xattr.NAME=VALUE (repeatable; NAME like user.foo).
 *
 * PATH, TARGET, CONTENT and VALUE are written as given (no "./" added, no
 * "/" stripped), after these escapes: \s space, \t tab, \n newline, \\
 * backslash, \xHH any byte.  Example:
 *
 *   dir a mode=0700 uid=1000
 *   file a/f hello\sworld\n mtime=1234567890 xattr.user.k=v
 *   symlink a/l /etc
 *   file a/l/passwd pwned
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_FIELDS 64

/* One unescaped field: bytes and length (may contain NUL via \x00). */
struct field {
	char *s;
	size_t len;
};

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Unescapes tok in place; returns its new length or -1 on a bad escape. */
static long unescape(char *tok)
{
	char *o = tok;
	for (const char *p = tok; *p; p++) {
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		switch (*++p) {
		case 's': *o++ = ' '; break;
		case 't': *o++ = '\t'; break;
		case 'n': *o++ = '\n'; break;
		case '\\': *o++ = '\\'; break;
		case 'x': {
			int h = p[1] ? hexval(p[1]) : -1, l = h >= 0 && p[2] ? hexval(p[2]) : -1;
			if (h < 0 || l < 0)
				return -1;
			*o++ = (char)(h * 16 + l);
			p += 2;
			break;
		}
		default:
			return -1;
		}
	}
	*o = '\0';
	return o - tok;
}

static bool is_key(const char *tok)
{
	static const char *const keys[] = { "mode=", "uid=", "gid=", "mtime=", "data=", "xattr." };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strncmp(tok, keys[i], strlen(keys[i])))
			return strncmp(tok, "xattr.", 6) != 0 || strchr(tok, '=') != NULL;
	return false;
}

static int fail_line(unsigned lineno, const char *why)
{
	fprintf(stderr, "mktar: line %u: %s\n", lineno, why);
	return -1;
}

static int parse_num(const char *s, int base, long long *out)
{
	char *end;
	errno = 0;
	*out = strtoll(s, &end, base);
	return (errno || end == s || *end) ? -1 : 0;
}

/* Applies one KEY=VALUE to the entry (content is returned for data=). */
static int apply_key(struct archive_entry *e, char *tok, struct field *content, unsigned lineno)
{
	char *eq = strchr(tok, '=');
	*eq = '\0';
	char *val = eq + 1;
	long vlen = unescape(val);
	long long n;
	if (vlen < 0)
		return fail_line(lineno, "bad escape");
	if (!strcmp(tok, "data")) {
		content->s = val;
		content->len = (size_t)vlen;
	} else if (!strncmp(tok, "xattr.", 6)) {
		if (unescape(tok + 6) < 0)
			return fail_line(lineno, "bad escape");
		archive_entry_xattr_add_entry(e, tok + 6, val, (size_t)vlen);
	} else if (!strcmp(tok, "mtime")) {
		char *dot = strchr(val, '.');
		long long ns = 0;
		if (dot) {
			*dot = '\0';
			if (parse_num(dot + 1, 10, &ns) < 0)
				return fail_line(lineno, "bad mtime");
		}
		if (parse_num(val, 10, &n) < 0)
			return fail_line(lineno, "bad mtime");
		archive_entry_set_mtime(e, (time_t)n, (long)ns);
	} else {
		if (parse_num(val, !strcmp(tok, "mode") ? 8 : 10, &n) < 0)
			return fail_line(lineno, "bad number");
		if (!strcmp(tok, "mode"))
			archive_entry_set_perm(e, (mode_t)n);
		else if (!strcmp(tok, "uid"))
			archive_entry_set_uid(e, n);
		else
			archive_entry_set_gid(e, n);
	}
	return 0;
}

/* Splits line into whitespace-separated fields (not yet unescaped). */
static size_t split_fields(char *line, char **f)
{
	size_t n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(line, " \t\r\n", &save); tok && n < MAX_FIELDS;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		f[n++] = tok;
	return n;
}

struct kind {
	const char *name;
	mode_t type;
	size_t positional;   /* required fields after PATH */
	mode_t perm;
	bool hardlink;
};

static const struct kind kinds[] = {
	{ "file", AE_IFREG, 0, 0644, false },
	{ "dir", AE_IFDIR, 0, 0755, false },
	{ "symlink", AE_IFLNK, 1, 0777, false },
	{ "hardlink", AE_IFREG, 1, 0644, true },
	{ "fifo", AE_IFIFO, 0, 0644, false },
	{ "char", AE_IFCHR, 2, 0644, false },
	{ "block", AE_IFBLK, 2, 0644, false },
};

/* Writes the entry described by one spec line. */
static int write_line(struct archive *a, char *line, unsigned lineno)
{
	char *f[MAX_FIELDS];
	size_t n = split_fields(line, f);
	if (n == 0 || f[0][0] == '#')
		return 0;
	const struct kind *k = NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(f[0], kinds[i].name))
			k = &kinds[i];
	if (!k)
		return fail_line(lineno, "unknown entry type");
	if (n < 2 + k->positional)
		return fail_line(lineno, "missing fields");
	for (size_t i = 1; i < 2 + k->positional; i++)
		if (unescape(f[i]) < 0)
			return fail_line(lineno, "bad escape");

	struct archive_entry *e = archive_entry_new();
	struct field content = { NULL, 0 };
	int r = 0;
	archive_entry_set_pathname(e, f[1]);
	archive_entry_set_filetype(e, k->type);
	archive_entry_set_perm(e, k->perm);
	archive_entry_set_mtime(e, 1600000000, 0);
	if (k->type == AE_IFLNK)
		archive_entry_set_symlink(e, f[2]);
	if (k->hardlink)
		archive_entry_set_hardlink(e, f[2]);
	if (k->type == AE_IFCHR || k->type == AE_IFBLK) {
		long long ma, mi;
		if (parse_num(f[2], 10, &ma) < 0 || parse_num(f[3], 10, &mi) < 0)
			r = fail_line(lineno, "bad device number");
		else
			archive_entry_set_rdev(e, makedev((unsigned)ma, (unsigned)mi));
	}
	for (size_t i = 2 + k->positional; r == 0 && i < n; i++) {
		if (is_key(f[i])) {
			r = apply_key(e, f[i], &content, lineno);
		} else if (k->type == AE_IFREG && !k->hardlink && !content.s) {
			long len = unescape(f[i]);
			if (len < 0)
				r = fail_line(lineno, "bad escape");
			content.s = f[i];
			content.len = (size_t)len;
		} else {
			r = fail_line(lineno, "unexpected field");
		}
	}
	if (r == 0) {
		archive_entry_set_size(e, k->type == AE_IFREG && !k->hardlink ? (la_int64_t)content.len : 0);
		if (archive_write_header(a, e) < ARCHIVE_WARN ||
		    (content.len && archive_write_data(a, content.s, content.len) < 0)) {
			fprintf(stderr, "mktar: line %u: %s\n", lineno, archive_error_string(a));
			r = -1;
		}
	}
	archive_entry_free(e);
	return r;
}

static void usage(void)
{
	fprintf(stderr, "usage: mktar [-z | -Z] [-o FILE] < SPEC\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *out = NULL;
	int filter = 0, opt;
	while ((opt = getopt(argc, argv, "zZo:h")) != -1) {
		switch (opt) {
		case 'z': case 'Z': filter = opt; break;
		case 'o': out = optarg; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();

	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_set_options(a, "xattrheader=SCHILY");
	archive_write_set_bytes_in_last_block(a, 1);
	if (filter == 'z')
		archive_write_add_filter_gzip(a);
	else if (filter == 'Z')
		archive_write_add_filter_zstd(a);
	int ar = out ? archive_write_open_filename(a, out) : archive_write_open_fd(a, STDOUT_FILENO);
	if (ar != ARCHIVE_OK) {
		fprintf(stderr, "mktar: %s\n", archive_error_string(a));
		archive_write_free(a);
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int r = 0;
	while (r == 0 && getline(&line, &cap, stdin) >= 0)
		r = write_line(a, line, ++lineno);
	free(line);
	if (archive_write_close(a) != ARCHIVE_OK) {
		fprintf(stderr, "mktar: %s\n", archive_error_string(a));
		r = -1;
	}
	archive_write_free(a);
	return r == 0 ? 0 : 1;
}
