/* Exclude patterns with gitignore's rules: see pattern.h. */
#include "pattern.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct pattern {
	const char *text;       /* as given */
	char *glob;             /* what is matched: no '!', no leading or trailing '/' */
	bool negate;
	bool dir_only;
	bool anchored;          /* matched against the whole path, else the name */
	atomic_bool used;
};

struct ls_patterns {
	struct pattern *p;
	size_t n;
};

/* ---- the glob ------------------------------------------------------------------ */

enum { MATCH, NO_MATCH, ABORT_ALL, ABORT_TO_STARSTAR };

static bool in_class(const unsigned char *name, size_t len, unsigned char c)
{
	static const struct {
		const char *name;
		int (*fn)(int);
	} classes[] = {
		{ "alnum", isalnum }, { "alpha", isalpha }, { "blank", isblank }, { "cntrl", iscntrl },
		{ "digit", isdigit }, { "graph", isgraph }, { "lower", islower }, { "print", isprint },
		{ "punct", ispunct }, { "space", isspace }, { "upper", isupper }, { "xdigit", isxdigit },
	};
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strlen(classes[i].name) == len && memcmp(classes[i].name, name, len) == 0)
			return c < 128 && classes[i].fn(c);
	return false;
}

/* One bracket expression at *pp (just past '['); advances *pp to its ']'.
 * Returns MATCH or NO_MATCH for byte t, or ABORT_ALL when unterminated. */
static int match_bracket(const unsigned char **pp, unsigned char t)
{
	const unsigned char *p = *pp;
	unsigned char c = *p;
	bool negated = c == '!' || c == '^';
	if (negated)
		c = *++p;
	bool matched = false;
	unsigned char prev = 0;
	/* The first byte is taken literally, so "[]]" is a set of ']'. */
	do {
		if (!c)
			return ABORT_ALL;
		if (c == '\\') {
			c = *++p;
			if (!c)
				return ABORT_ALL;
			if (t == c)
				matched = true;
		} else if (c == '-' && prev && p[1] && p[1] != ']') {
			c = *++p;
			if (c == '\\' && !(c = *++p))
				return ABORT_ALL;
			if (t >= prev && t <= c)
				matched = true;
			c = 0;  /* a range's end starts no other range */
		} else if (c == '[' && p[1] == ':') {
			const unsigned char *name = p + 2, *end = name;
			while (*end && !(end[0] == ':' && end[1] == ']'))
				end++;
			if (!*end) {
				if (t == '[')  /* no ":]": a literal '[' */
					matched = true;
			} else {
				if (in_class(name, (size_t)(end - name), t))
					matched = true;
				p = end + 1;
				c = 0;
			}
		} else if (t == c) {
			matched = true;
		}
		prev = c;
		c = *++p;
	} while (c != ']');
	*pp = p;
	return matched != negated ? MATCH : NO_MATCH;
}

/* git's wildmatch with WM_PATHNAME, from the same rules; start is the
 * pattern's first byte (a `**` must begin a component). */
static int dowild(const unsigned char *start, const unsigned char *p, const unsigned char *text)
{
	for (unsigned char pc; (pc = *p) != '\0'; text++, p++) {
		unsigned char t = *text;
		if (t == '\0' && pc != '*')
			return ABORT_ALL;
		switch (pc) {
		case '\\':
			pc = *++p;
			if (pc == '\0')
				return NO_MATCH;  /* a trailing backslash matches nothing */
			if (t != pc)
				return NO_MATCH;
			continue;
		case '?':
			if (t == '/')
				return NO_MATCH;
			continue;
		case '[': {
			if (t == '/')
				return NO_MATCH;
			p++;
			int m = match_bracket(&p, t);
			if (m != MATCH)
				return m;
			continue;
		}
		case '*': {
			bool match_slash = false;
			if (p[1] == '*') {
				const unsigned char *first = p;
				while (p[1] == '*')
					p++;
				/* Only a whole component "**" crosses slashes. */
				if ((first == start || first[-1] == '/') && (p[1] == '\0' || p[1] == '/')) {
					/* "**" + "/" also matches no directory at all. */
					if (p[1] == '/' && dowild(start, p + 2, text) == MATCH)
						return MATCH;
					match_slash = true;
				}
			}
			p++;
			if (*p == '\0') {
				if (!match_slash && strchr((const char *)text, '/'))
					return ABORT_TO_STARSTAR;
				return MATCH;
			}
			if (!match_slash && *p == '/') {
				/* "*" then "/": the '*' takes the rest of this component. */
				const char *slash = strchr((const char *)text, '/');
				if (!slash)
					return ABORT_ALL;
				text = (const unsigned char *)slash;
				/* the loop's increments step past the '/' on both sides */
				continue;
			}
			for (;; t = *++text) {
				if (t == '\0')
					return ABORT_ALL;
				int m = dowild(start, p, text);
				if (m != NO_MATCH && (!match_slash || m != ABORT_TO_STARSTAR))
					return m;
				if (!match_slash && t == '/')
					return ABORT_TO_STARSTAR;
			}
		}
		default:
			if (t != pc)
				return NO_MATCH;
			continue;
		}
	}
	return *text ? NO_MATCH : MATCH;
}

bool ls_glob_match(const char *pattern, const char *text)
{
	const unsigned char *p = (const unsigned char *)pattern;
	return dowild(p, p, (const unsigned char *)text) == MATCH;
}

/* ---- gitignore lines -------------------------------------------------------------- */

/* Fills pat from one line; false when it is empty or a comment. */
static bool parse_line(struct pattern *pat, const char *line)
{
	size_t len = strlen(line);
	/* Trailing spaces go, unless escaped: "a\ " keeps one. */
	while (len > 0 && line[len - 1] == ' ' && !(len >= 2 && line[len - 2] == '\\'))
		len--;
	if (len == 0 || line[0] == '#')
		return false;
	const char *s = line;
	if (*s == '!') {
		pat->negate = true;
		s++;
		len--;
	}
	if (len > 0 && s[len - 1] == '/') {
		pat->dir_only = true;
		len--;
	}
	if (len == 0)
		return false;
	/* A '/' before the end anchors; a leading one is then dropped. */
	pat->anchored = memchr(s, '/', len) != NULL;
	if (*s == '/') {
		s++;
		len--;
	}
	if (len == 0)
		return false;
	pat->glob = strndup(s, len);
	return true;
}

int ls_patterns_compile(const char *const *patterns, size_t n, struct ls_patterns **out,
			struct ls_error *err)
{
	*out = NULL;
	if (n == 0)
		return 0;
	struct ls_patterns *ps = calloc(1, sizeof(*ps));
	if (!ps || !(ps->p = calloc(n, sizeof(*ps->p)))) {
		free(ps);
		return ls_fail(err, ENOMEM, "patterns: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct pattern *pat = &ps->p[ps->n];
		pat->text = patterns[i];
		if (!patterns[i] || !parse_line(pat, patterns[i])) {
			ls_patterns_free(ps);
			return ls_fail(err, EINVAL, "exclude pattern '%s' is empty or a comment",
				       patterns[i] ? patterns[i] : "");
		}
		if (!pat->glob) {
			ls_patterns_free(ps);
			return ls_fail(err, ENOMEM, "patterns: out of memory");
		}
		atomic_init(&pat->used, false);
		ps->n++;
	}
	*out = ps;
	return 0;
}

bool ls_patterns_exclude(struct ls_patterns *ps, const char *path, size_t len, bool is_dir)
{
	if (!ps)
		return false;
	const char *slash = memrchr(path, '/', len);
	const char *name = slash ? slash + 1 : path;
	for (size_t i = ps->n; i-- > 0;) {
		struct pattern *pat = &ps->p[i];
		if (pat->dir_only && !is_dir)
			continue;
		if (ls_glob_match(pat->glob, pat->anchored ? path : name)) {
			if (!atomic_load_explicit(&pat->used, memory_order_relaxed))
				atomic_store_explicit(&pat->used, true, memory_order_relaxed);
			return !pat->negate;
		}
	}
	return false;
}

size_t ls_patterns_count(const struct ls_patterns *ps)
{
	return ps ? ps->n : 0;
}

bool ls_patterns_used(const struct ls_patterns *ps, size_t i)
{
	return atomic_load(&ps->p[i].used);
}

const char *ls_patterns_text(const struct ls_patterns *ps, size_t i)
{
	return ps->p[i].text;
}

void ls_patterns_free(struct ls_patterns *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++)
		free(ps->p[i].glob);
	free(ps->p);
	free(ps);
}
