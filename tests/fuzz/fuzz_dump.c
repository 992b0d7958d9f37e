/*
 * Fuzz target: the mtree and JSON writers (ls_manifest_dump_mtree,
 * ls_manifest_dump_json) on manifests built from the input through the
 * builder API, so that every byte goes into names, targets, xattrs and
 * fields rather than into getting past the reader's checks.
 *
 * Input (every field optional: a short input ends the manifest):
 *   u8 mode % 3, u8 xattrs policy % 3, u8 flags (bit 0: one-file-system,
 *   bits 1-2: number of excludes, bits 3-4: number of patterns),
 *   i64 start_sec, u32 start_nsec (% 10^9), the excludes and the patterns
 *   (u8 length + bytes each), then entries until the input ends:
 *     u8 kind (bits 0-2: type, 7 = bits no type has; bit 3: hashed; bit 4:
 *     mount point), u16 path length + path, u8 target length + target,
 *     u16 xattrs length + xattr blob (any bytes: malformed blobs too),
 *     then size, mtime, ctime, dev, ino, rdev (i64/u64), mode bits, uid,
 *     gid, nlink (u32), hash (16 bytes).
 * Entries the builder refuses (empty path, NUL in a target) are dropped.
 *
 * Checked on the output:
 *  mtree: "#mtree", ". type=dir", then one line per entry and nothing else;
 *    only printable ASCII; each line "./NAME key=value...", where NAME and
 *    link= decode (vis: \s \t \n \r \\ \ooo) to exactly the entry's path
 *    and target, and no raw space, '*', '?', '[', '#' or '=' is left in them;
 *  JSON: one valid document (strict grammar, valid UTF-8, no raw control
 *    characters); its "entries" list has one object per entry whose "path"
 *    decodes to exactly the entry's path (\u00XX standing for byte XX), and
 *    "link" to its target for a symlink.
 */
#include "fuzz.h"
#include "manifest.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* ---- reading the input ------------------------------------------------------ */

struct in {
	const uint8_t *p, *end;
};

static size_t avail(const struct in *in)
{
	return (size_t)(in->end - in->p);
}

/* Copies up to n bytes (zero-filled past the end of the input). */
static void take(struct in *in, void *out, size_t n)
{
	size_t k = avail(in) < n ? avail(in) : n;
	memcpy(out, in->p, k);
	memset((char *)out + k, 0, n - k);
	in->p += k;
}

static uint64_t take_uint(struct in *in, size_t n)
{
	uint64_t v = 0;
	uint8_t b[8];
	take(in, b, n);
	for (size_t i = n; i-- > 0;)
		v = (v << 8) | b[i];
	return v;
}

/* A length-prefixed byte string, pointing into the input. */
static const char *take_str(struct in *in, size_t len_bytes, size_t *len)
{
	size_t n = (size_t)take_uint(in, len_bytes);
	if (n > avail(in))
		n = avail(in);
	const char *s = (const char *)in->p;
	in->p += n;
	*len = n;
	return s;
}

/* ---- checking the mtree spec ---------------------------------------------------- */

/* Decodes one vis-encoded token into out (which holds at least len bytes);
 * returns the decoded length, or -1 for a malformed escape or a byte that
 * should have been escaped. */
static long unvis(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c != '\\') {
			if (c <= ' ' || c >= 0x7f || strchr("*?[#=", c))
				return -1;
			out[o++] = (char)c;
			continue;
		}
		if (++i >= len)
			return -1;
		switch (s[i]) {
		case 's': out[o++] = ' '; break;
		case 't': out[o++] = '\t'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case '\\': out[o++] = '\\'; break;
		default:
			if (i + 2 >= len || s[i] < '0' || s[i] > '3' || s[i + 1] < '0' || s[i + 1] > '7' ||
			    s[i + 2] < '0' || s[i + 2] > '7')
				return -1;
			out[o++] = (char)((s[i] - '0') * 64 + (s[i + 1] - '0') * 8 + (s[i + 2] - '0'));
			i += 2;
		}
	}
	return (long)o;
}

static const char *type_name(uint32_t mode)
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

static void check_token_equals(const char *tok, size_t len, const char *want, size_t want_len,
			       const char *what, size_t entry)
{
	char *dec = malloc(len + 1);
	if (!dec)
		FUZZ_DIE("out of memory");
	long n = unvis(tok, len, dec);
	FUZZ_CHECK(n >= 0, "mtree: entry %zu: %s '%.*s' is not vis-encoded", entry, what, (int)len, tok);
	FUZZ_CHECK((size_t)n == want_len && memcmp(dec, want, want_len) == 0,
		   "mtree: entry %zu: %s '%.*s' does not decode to the entry's", entry, what, (int)len, tok);
	free(dec);
}

static void check_mtree(const ls_manifest *m, const char *text, size_t len)
{
	static const char head[] = "#mtree\n. type=dir\n";
	FUZZ_CHECK(len >= sizeof(head) - 1 && memcmp(text, head, sizeof(head) - 1) == 0, "mtree: header");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		FUZZ_CHECK(c == '\n' || (c >= ' ' && c < 0x7f), "mtree: byte 0x%02x at %zu", c, i);
	}
	const char *p = text + sizeof(head) - 1, *end = text + len;
	for (size_t i = 0; i < m->n; i++) {
		const struct ls_rec *r = &m->recs[i];
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		FUZZ_CHECK(nl, "mtree: entry %zu: no line", i);
		FUZZ_CHECK(nl - p > 2 && p[0] == '.' && p[1] == '/', "mtree: entry %zu: no ./", i);
		bool seen_type = false, seen_link = false;
		for (const char *t = p; t < nl;) {
			const char *sp = memchr(t, ' ', (size_t)(nl - t));
			if (!sp)
				sp = nl;
			size_t tl = (size_t)(sp - t);
			FUZZ_CHECK(tl > 0, "mtree: entry %zu: an empty field", i);
			if (t == p) {
				check_token_equals(t + 2, tl - 2, ls_rec_path(m, r), r->path_len, "name", i);
			} else if (tl > 5 && memcmp(t, "type=", 5) == 0) {
				const char *want = type_name(r->mode);
				FUZZ_CHECK(tl - 5 == strlen(want) && memcmp(t + 5, want, tl - 5) == 0,
					   "mtree: entry %zu: type", i);
				seen_type = true;
			} else if (tl >= 5 && memcmp(t, "link=", 5) == 0) {
				FUZZ_CHECK(S_ISLNK(r->mode), "mtree: entry %zu: link= on a %s", i, type_name(r->mode));
				check_token_equals(t + 5, tl - 5, ls_rec_link(m, r), ls_rec_link_len(m, r), "link", i);
				seen_link = true;
			} else {
				static const char *const keys[] = { "mode=", "uid=", "gid=", "nlink=", "size=",
								    "time=", "device=" };
				bool known = false;
				for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !known; k++)
					known = tl > strlen(keys[k]) && memcmp(t, keys[k], strlen(keys[k])) == 0;
				FUZZ_CHECK(known, "mtree: entry %zu: unknown field '%.*s'", i, (int)tl, t);
			}
			t = sp + (sp < nl);
		}
		FUZZ_CHECK(seen_type, "mtree: entry %zu: no type=", i);
		FUZZ_CHECK(seen_link == S_ISLNK(r->mode), "mtree: entry %zu: link= missing", i);
		p = nl + 1;
	}
	FUZZ_CHECK(p == end, "mtree: %zu bytes after the last entry", (size_t)(end - p));
}

/* ---- checking the JSON ----------------------------------------------------------- */

struct json {
	const char *p, *end;
	const ls_manifest *m;
	int depth;
	size_t entries;     /* entry objects seen in "entries" */
	bool in_entries;    /* inside the top-level "entries" array */
};

static const char *json_start;

static void jfail(const struct json *j, const char *what)
{
	FUZZ_CHECK(0, "json: %s at offset %zu", what, (size_t)(j->p - json_start));
}

static void ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

static int hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of the valid UTF-8 sequence at s, or 0 (an independent copy of the
 * rules: shortest form, no surrogates, at most U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	size_t len;
	uint32_t cp, min;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2; cp = s[0] & 0x1f; min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3; cp = s[0] & 0x0f; min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4; cp = s[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Parses a string; with out, decodes it there (\u00XX, a control character,
 * and \udcXX, the surrogate escape of a byte that is not UTF-8, as byte XX:
 * the writer makes no other \u escape) and sets *out_len. */
static void jstring(struct json *j, char *out, size_t *out_len)
{
	if (j->p >= j->end || *j->p != '"')
		jfail(j, "string expected");
	j->p++;
	size_t o = 0;
	for (;;) {
		if (j->p >= j->end)
			jfail(j, "unterminated string");
		unsigned char c = (unsigned char)*j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			jfail(j, "raw control character in a string");
		if (c == '\\') {
			if (j->end - j->p < 2)
				jfail(j, "bad escape");
			char e = j->p[1];
			char d;
			j->p += 2;
			switch (e) {
			case '"': d = '"'; break;
			case '\\': d = '\\'; break;
			case '/': d = '/'; break;
			case 'b': d = '\b'; break;
			case 'f': d = '\f'; break;
			case 'n': d = '\n'; break;
			case 'r': d = '\r'; break;
			case 't': d = '\t'; break;
			case 'u': {
				if (j->end - j->p < 4)
					jfail(j, "short \\u escape");
				unsigned v = 0;
				for (int k = 0; k < 4; k++) {
					int h = hexdig(j->p[k]);
					if (h < 0)
						jfail(j, "bad \\u escape");
					v = v * 16 + (unsigned)h;
				}
				j->p += 4;
				if (v >= 0xdc80 && v <= 0xdcff)
					d = (char)(v & 0xff);
				else if (v < 0x20 || v == 0x7f)
					d = (char)v;
				else
					jfail(j, "\\u escape the writer never makes");
				break;
			}
			default:
				jfail(j, "bad escape");
				return;
			}
			if (out)
				out[o++] = d;
			continue;
		}
		size_t n = utf8_seq((const unsigned char *)j->p, (size_t)(j->end - j->p));
		if (!n)
			jfail(j, "invalid UTF-8 in a string");
		if (out)
			memcpy(out + o, j->p, n);
		o += n;
		j->p += n;
	}
	if (out_len)
		*out_len = o;
}

static void jnumber(struct json *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		jfail(j, "bad number");
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			jfail(j, "bad fraction");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E'))
		jfail(j, "an exponent (never written)");
}

static void jvalue(struct json *j);

/* The decoded value of an entry's string field, checked against want. */
static void jfield_equals(struct json *j, const char *want, size_t want_len, const char *what)
{
	size_t cap = (size_t)(j->end - j->p);
	char *dec = malloc(cap ? cap : 1);
	if (!dec)
		FUZZ_DIE("out of memory");
	size_t n = 0;
	jstring(j, dec, &n);
	FUZZ_CHECK(n == want_len && memcmp(dec, want, n) == 0, "json: entry %zu: %s does not decode to the entry's",
		   j->entries, what);
	free(dec);
}

static void jobject(struct json *j, bool is_entry)
{
	j->p++;
	ws(j);
	bool seen_path = false, seen_link = false;
	const struct ls_rec *r = NULL;
	if (is_entry) {
		FUZZ_CHECK(j->entries < j->m->n, "json: more entries than the manifest's %zu", j->m->n);
		r = &j->m->recs[j->entries];
	}
	if (j->p < j->end && *j->p == '}') {
		j->p++;
	} else {
		for (;;) {
			ws(j);
			char key[32];
			size_t kl = 0;
			const char *ks = j->p;
			jstring(j, NULL, NULL);
			kl = (size_t)(j->p - ks);
			if (kl < sizeof(key)) {
				memcpy(key, ks, kl);
				key[kl] = '\0';
			} else {
				key[0] = '\0';
			}
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				jfail(j, "':' expected");
			j->p++;
			ws(j);
			if (is_entry && strcmp(key, "\"path\"") == 0) {
				jfield_equals(j, ls_rec_path(j->m, r), r->path_len, "path");
				seen_path = true;
			} else if (is_entry && strcmp(key, "\"link\"") == 0) {
				FUZZ_CHECK(S_ISLNK(r->mode), "json: entry %zu: link on a non-symlink", j->entries);
				jfield_equals(j, ls_rec_link(j->m, r), ls_rec_link_len(j->m, r), "link");
				seen_link = true;
			} else if (j->depth == 1 && strcmp(key, "\"entries\"") == 0) {
				if (j->p >= j->end || *j->p != '[')
					jfail(j, "entries is not a list");
				j->in_entries = true;
				jvalue(j);
				j->in_entries = false;
			} else {
				jvalue(j);
			}
			ws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == '}') {
				j->p++;
				break;
			}
			jfail(j, "',' or '}' expected");
		}
	}
	if (is_entry) {
		FUZZ_CHECK(seen_path, "json: entry %zu has no path", j->entries);
		FUZZ_CHECK(seen_link == S_ISLNK(r->mode), "json: entry %zu: link missing", j->entries);
		j->entries++;
	}
}

static void jvalue(struct json *j)
{
	ws(j);
	if (j->p >= j->end)
		jfail(j, "value expected");
	if (++j->depth > 16)
		jfail(j, "nested too deep");
	char c = *j->p;
	if (c == '{') {
		jobject(j, j->in_entries && j->depth == 3);
	} else if (c == '[') {
		bool entries = j->in_entries && j->depth == 2;
		bool saved = j->in_entries;
		if (!entries)
			j->in_entries = false;
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == ']') {
			j->p++;
		} else {
			for (;;) {
				jvalue(j);
				ws(j);
				if (j->p < j->end && *j->p == ',') {
					j->p++;
					continue;
				}
				if (j->p < j->end && *j->p == ']') {
					j->p++;
					break;
				}
				jfail(j, "',' or ']' expected");
			}
		}
		j->in_entries = saved;
	} else if (c == '"') {
		jstring(j, NULL, NULL);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		jnumber(j);
	} else if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
		j->p += 4;
	} else if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
		j->p += 5;
	} else if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
		j->p += 4;
	} else {
		jfail(j, "unexpected character");
	}
	j->depth--;
}

static void check_json(const ls_manifest *m, const char *text, size_t len)
{
	struct json j = { .p = text, .end = text + len, .m = m };
	json_start = text;
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		jfail(&j, "not an object");
	jvalue(&j);
	ws(&j);
	FUZZ_CHECK(j.p == j.end, "json: bytes after the document");
	FUZZ_CHECK(j.entries == m->n, "json: %zu entries for %zu", j.entries, m->n);
}

/* ---- the target ------------------------------------------------------------------- */

static const uint32_t types[] = { S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK,
				  0170000 };

/* The builder's refusals: a code and a message.  Not the one-line rule of
 * the public API's messages: these internal calls show paths raw, and a
 * path may hold a newline. */
#define CHECK_REFUSAL(rc, err) \
	FUZZ_CHECK((rc) < 0 && (err).code > 0 && (err).msg[0], "rc %d, code %d", (int)(rc), (err).code)

static ls_manifest *build(struct in *in)
{
	uint8_t mode = (uint8_t)take_uint(in, 1), xp = (uint8_t)take_uint(in, 1);
	uint8_t flags = (uint8_t)take_uint(in, 1);
	int64_t start_sec = (int64_t)take_uint(in, 8);
	uint32_t start_nsec = (uint32_t)(take_uint(in, 4) % 1000000000u);
	size_t n_ex = (flags >> 1) & 3, n_pat = (flags >> 3) & 3;
	char *ex[3] = { 0 }, *pat[3] = { 0 };
	for (size_t i = 0; i < n_ex; i++) {
		size_t l;
		const char *s = take_str(in, 1, &l);
		ex[i] = strndup(s, l);  /* up to a NUL, as the options are */
	}
	for (size_t i = 0; i < n_pat; i++) {
		size_t l;
		const char *s = take_str(in, 1, &l);
		pat[i] = strndup(s, l);
	}
	for (size_t i = 0; i < 3; i++)
		if ((i < n_ex && !ex[i]) || (i < n_pat && !pat[i]))
			FUZZ_DIE("out of memory");

	struct ls_error err = { 0 };
	ls_manifest *m = NULL;
	enum ls_mode md = (enum ls_mode)(mode % 3);
	enum ls_xattrs xa = (enum ls_xattrs)(xp % 3);
	if (ls_manifest_create(&m, md, xa, flags & 1, (const char *const *)ex, n_ex, &err) != 0) {
		CHECK_REFUSAL(-err.code, err);
		if (ls_manifest_create(&m, md, xa, flags & 1, NULL, 0, &err) != 0)
			FUZZ_DIE("%s", err.msg);
	}
	bool empty_pat = false;
	for (size_t i = 0; i < n_pat; i++)
		empty_pat |= !pat[i][0];
	int rc = ls_manifest_set_patterns(m, (const char *const *)pat, n_pat, &err);
	FUZZ_CHECK(rc == 0 || empty_pat, "set_patterns: %s", err.msg);
	for (size_t i = 0; i < 3; i++) {
		free(ex[i]);
		free(pat[i]);
	}
	m->start_sec = start_sec;
	m->start_nsec = start_nsec;

	while (avail(in) > 0) {
		uint8_t kind = (uint8_t)take_uint(in, 1);
		size_t path_len, link_len, xattr_len;
		const char *path = take_str(in, 2, &path_len);
		const char *link = take_str(in, 1, &link_len);
		const char *xattrs = take_str(in, 2, &xattr_len);
		struct ls_rec r;
		memset(&r, 0, sizeof(r));
		r.size = take_uint(in, 8);
		r.mtime_ns = (int64_t)take_uint(in, 8);
		r.ctime_ns = (int64_t)take_uint(in, 8);
		r.dev = take_uint(in, 8);
		r.ino = take_uint(in, 8);
		r.rdev = take_uint(in, 8);
		r.mode = types[kind & 7] | ((uint32_t)take_uint(in, 2) & 07777);
		if (kind & 8)
			r.mode |= LS_REC_HASHED;
		if (kind & 16)
			r.mode |= LS_REC_MOUNTPOINT;
		r.uid = (uint32_t)take_uint(in, 4);
		r.gid = (uint32_t)take_uint(in, 4);
		r.nlink = (uint32_t)take_uint(in, 4);
		take(in, r.hash, sizeof(r.hash));
		rc = ls_manifest_append(m, &r, path, path_len, link, link_len, xattrs, xattr_len, &err);
		if (rc) {
			CHECK_REFUSAL(rc, err);
			FUZZ_CHECK(path_len == 0 || memchr(link, '\0', link_len), "append refused: %s", err.msg);
		}
	}
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	struct in in = { data, data + size };
	ls_manifest *m = build(&in);
	struct ls_error err = { 0 };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		FUZZ_DIE("open_memstream: %s", strerror(errno));
	FUZZ_CHECK(ls_manifest_dump_mtree(m, f, &err) == 0, "dump mtree: %s", err.msg);
	fclose(f);
	check_mtree(m, text, len);
	free(text);

	text = NULL;
	f = open_memstream(&text, &len);
	if (!f)
		FUZZ_DIE("open_memstream: %s", strerror(errno));
	FUZZ_CHECK(ls_manifest_dump_json(m, f, &err) == 0, "dump json: %s", err.msg);
	fclose(f);
	check_json(m, text, len);
	free(text);
	ls_manifest_free(m);
	return 0;
}
