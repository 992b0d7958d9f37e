/* layersnap command line: a thin layer over the library (layersnap.h). */
#include "layersnap.h"
#include "ioq.h"
#include "manifest.h"
#include "output.h"
#include "strfmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_TROUBLE 2

/* ---- interrupted runs leave no temporary file behind ---------------------- */

/* What SIGINT/SIGTERM/SIGHUP must remove: the named temporaries (the
 * O_TMPFILE fallback; an O_TMPFILE has no name, the kernel frees it with the
 * process) and lock files of the outputs, kept current by ls_scan_files and
 * ls_diff_files with these signals blocked.  A SIGKILL leaves at most a lock
 * file, which blocks nobody (an OFD lock dies with its process), and a named
 * temporary, which the next run writing that output removes. */
static struct ls_cleanup cleanup;

static void on_signal(int sig)
{
	for (int i = 0; i < LS_CLEANUP_SLOTS; i++)
		if (cleanup.slot[i].set)
			unlink(cleanup.slot[i].path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout pipe must surface as EPIPE, cleaned up normally. */
	signal(SIGPIPE, SIG_IGN);
	/* Likewise a file size limit: EFBIG is reported and cleaned up, where
	 * SIGXFSZ would kill the run with its temporaries. */
	signal(SIGXFSZ, SIG_IGN);
}

/* The walker and the layer writer keep many files open at once; the usual
 * soft limit of 1024 is far below what the hard limit allows. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The descriptor table is grown to this before any thread starts
 * (ls_fd_table_reserve says why): more than a command holds at once (the
 * walker's budget is a few hundred, the read-ahead's and the layer's files
 * and the outputs a few dozen). */
#define CLI_FDS 1024

/* ---- messages ------------------------------------------------------------ */

#define MAX_ARGS 256

struct cli {
	const char *cmd;
	struct ls_walk_options walk;
	bool mode_given;
	const char **excludes;
	size_t n_excludes;
	const char **patterns;  /* --exclude-pattern and --exclude-from's lines, in order */
	size_t n_patterns;
	char **owned;           /* --exclude-from's lines, freed at exit */
	size_t n_owned;
	const char *upper;      /* diff --upper */
	bool upper_unchecked;
	const char **only;      /* diff --only, and --only-from's paths */
	size_t n_only;
	const char *only_from;
	const char *output, *base, *manifest_out, *descriptor, *format;
	const char *oci_layout, *history, *platform, *config_file, *base_image;  /* diff --oci-layout ... */
	bool keep_empty;
	enum ls_compress compress;
	int level;
	bool have_epoch;
	int64_t epoch;
	bool opaque, exit_code, json, do_fsync, mtime_seconds, nul, keep_setid;
	bool no_tmpfile;        /* LAYERSNAP_TEST_NO_TMPFILE=1: test the named fallback */
	bool stat;              /* compare --stat: the counts, not the list */
	int verbose, quiet;
	int progress;           /* -1 off, 1 on, 0 when stderr is a terminal */
	struct timespec phase_start;  /* progress: for the rate and the time left */
	const char *args[MAX_ARGS];  /* apply: the layers, then ROOT */
	int n_args;
};

static int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die(const char *fmt, ...)
{
	va_list ap;
	fputs("layersnap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_TROUBLE;
}

/* Exit status of a command whose stdout lost its reader, as if SIGPIPE had
 * ended it (it is ignored so that outputs are cleaned up first). */
#define EXIT_BROKEN_PIPE (128 + SIGPIPE)

/* Whether error code e is stdout's reader gone (`layersnap dump | head`):
 * not worth a message.  EPIPE from another pipe (a --descriptor FIFO) is. */
static bool stdout_gone(int e)
{
	if (e != EPIPE)
		return false;
	struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

static int fail_err(const struct ls_error *err)
{
	if (stdout_gone(err->code))
		return EXIT_BROKEN_PIPE;
	return die("%s", err->msg[0] ? err->msg : "unknown error");
}

/* A failed write or flush of stdout (errno set). */
static int stdout_failed(void)
{
	int e = errno ? errno : EIO;
	if (stdout_gone(e))
		return EXIT_BROKEN_PIPE;
	return die("stdout: %s", strerror(e));
}

static double seconds_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* One line on stderr, rewritten in place: the phase, entries, and while a
 * layer is written the share of its contents copied, the rate and the time
 * left.  Cleared when the run's last phase is done. */
static int progress_cb(void *ctx, const struct ls_progress *p)
{
	struct cli *c = ctx;
	bool diff = strcmp(c->cmd, "diff") == 0;
	if (!p->done && p->entries == 0 && p->bytes_read == 0)
		clock_gettime(CLOCK_MONOTONIC, &c->phase_start);
	if (p->done && (p->phase == LS_PHASE_LAYER || !diff)) {
		fputs("\r\033[K", stderr);
	} else if (p->phase == LS_PHASE_WALK) {
		fprintf(stderr, "\r\033[Klayersnap: walking: %" PRIu64 " entries%s", p->entries,
			p->done ? ", done" : "");
	} else {
		double t = seconds_since(&c->phase_start);
		double rate = t > 0.05 ? (double)p->bytes_read / t : 0;
		double share = p->bytes_total ? (double)p->bytes_read / (double)p->bytes_total : 1;
		fprintf(stderr, "\r\033[Klayersnap: writing the layer: %3.0f%%, %" PRIu64 " entries, %.1f of %.1f MB read, "
			"%.1f MB written", 100 * share, p->entries, (double)p->bytes_read / 1e6,
			(double)p->bytes_total / 1e6, (double)p->bytes_written / 1e6);
		if (rate > 0)
			fprintf(stderr, ", %.0f MB/s, %.0f s left", rate / 1e6,
				(double)(p->bytes_total > p->bytes_read ? p->bytes_total - p->bytes_read : 0) / rate);
	}
	fflush(stderr);
	return 0;
}

static void log_cb(void *ctx, int verbose, const char *msg)
{
	const struct cli *c = ctx;
	if (verbose ? c->verbose > 0 : !c->quiet)
		fprintf(stderr, "layersnap: %s%s\n", verbose ? "" : "warning: ", msg);
}

/* ---- option parsing --------------------------------------------------------- */

enum {
	OPT_MODE = 256, OPT_ONE_FS, OPT_XATTRS, OPT_IO, OPT_IGNORE_ERRORS, OPT_FSYNC, OPT_JSON,
	OPT_PROGRESS, OPT_NO_PROGRESS, OPT_BASE, OPT_MANIFEST_OUT, OPT_COMPRESS,
	OPT_LEVEL, OPT_EPOCH, OPT_OPAQUE, OPT_DESCRIPTOR, OPT_EXIT_CODE, OPT_REHASH,
	OPT_MTIME_SECONDS, OPT_FORMAT, OPT_KEEP_SETID,
	OPT_EXCLUDE_PATTERN, OPT_EXCLUDE_FROM, OPT_DEFAULT_EXCLUDES, OPT_NO_DEFAULT_EXCLUDES,
	OPT_ONLY, OPT_ONLY_FROM, OPT_UPPER, OPT_UPPER_UNCHECKED,
	OPT_STAT,
	OPT_OCI_LAYOUT, OPT_HISTORY, OPT_KEEP_EMPTY, OPT_PLATFORM, OPT_CONFIG, OPT_BASE_IMAGE,
};

/* ---- the option table: parsing, per-command help and completion ------------- */

/* The commands, as bits of an option's commands. */
enum { C_SCAN = 1u, C_DIFF = 2u, C_COMPARE = 4u, C_APPLY = 8u, C_DUMP = 16u };
#define C_WALK (C_SCAN | C_DIFF | C_COMPARE)
#define C_ANY  (C_WALK | C_APPLY | C_DUMP)

static const struct command {
	const char *name;
	unsigned bit;
	const char *synopsis;
	const char *what;
} commands[] = {
	{ "scan", C_SCAN, "[OPTIONS] ROOT -o MANIFEST",
	  "record ROOT's entries (and, in full mode, content hashes) in a manifest" },
	{ "diff", C_DIFF, "[OPTIONS] ROOT [--base MANIFEST] -o LAYER|-",
	  "write the OCI layer of what changed in ROOT since the base (all of ROOT without one)" },
	{ "compare", C_COMPARE, "[OPTIONS] OLD_MANIFEST NEW_MANIFEST|ROOT",
	  "list what changed, a line per path: A added, M modified, D deleted, T type changed" },
	{ "apply", C_APPLY, "[OPTIONS] LAYER|-... ROOT", "extract layers into ROOT in order, whiteouts included" },
	{ "dump", C_DUMP, "[OPTIONS] MANIFEST", "print a manifest as mtree(5) or JSON" },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* One option: getopt's table, the check that a command takes it, its line in
 * that command's --help and its completion are all made from this. */
static const struct opt_spec {
	const char *name;       /* long name */
	int val;                /* the short letter, or OPT_* */
	const char *arg;        /* its value's placeholder; NULL for a flag */
	const char *values;     /* completion: the values it takes ("" none: a number), NULL file names */
	unsigned cmds;
	const char *help;
} opt_table[] = {
	{ "output", 'o', "FILE", NULL, C_SCAN | C_DIFF, "write the manifest (scan) or the layer (diff, - for stdout) to FILE" },
	{ "base", OPT_BASE, "MANIFEST", NULL, C_SCAN | C_DIFF, "the previous snapshot: diff against it; scan reuses its hashes" },
	{ "manifest-out", OPT_MANIFEST_OUT, "MANIFEST", NULL, C_DIFF | C_APPLY, "also write the tree's new manifest (diff: it may be the base's own file)" },
	{ "mode", OPT_MODE, "MODE", "full redo time", C_WALK | C_APPLY,
	  "what is recorded and compared: full (contents), redo or time (default full)" },
	{ "exclude", 'x', "PATH", NULL, C_WALK | C_APPLY, "leave PATH (relative to ROOT) and all below it out; repeatable" },
	{ "exclude-pattern", OPT_EXCLUDE_PATTERN, "PATTERN", "", C_WALK | C_APPLY,
	  "leave out what a gitignore pattern matches (*, **, ?, [..], /, !); repeatable, the last match wins" },
	{ "exclude-from", OPT_EXCLUDE_FROM, "FILE", NULL, C_WALK | C_APPLY,
	  "the patterns of FILE, one a line, gitignore-style (# comments, blank lines)" },
	{ "default-excludes", OPT_DEFAULT_EXCLUDES, NULL, NULL, C_WALK | C_APPLY,
	  "do not descend /proc, /sys, /dev, /run or mount points (default when ROOT is /)" },
	{ "no-default-excludes", OPT_NO_DEFAULT_EXCLUDES, NULL, NULL, C_WALK | C_APPLY, "walk those as any directory" },
	{ "one-file-system", OPT_ONE_FS, NULL, NULL, C_WALK | C_APPLY, "do not descend into other file systems" },
	{ "xattrs", OPT_XATTRS, "POLICY", "capability all none", C_WALK | C_APPLY,
	  "xattrs recorded: capability (files' security.capability, default), all or none" },
	{ "io", OPT_IO, "ENGINE", "auto uring sync", C_WALK | C_APPLY, "I/O engine: auto (default), uring or sync" },
	{ "jobs", 'j', "N", "", C_WALK | C_APPLY, "threads, 1 to 256 (default: one per CPU)" },
	{ "ignore-errors", OPT_IGNORE_ERRORS, NULL, NULL, C_WALK,
	  "skip what cannot be read, with a warning (its base entries are kept)" },
	{ "compress", OPT_COMPRESS, "ALGO", "none gzip zstd", C_DIFF, "layer compression: none (default), gzip or zstd" },
	{ "level", OPT_LEVEL, "N", "", C_DIFF, "compression level (gzip 1-9, default 6; zstd 1-22, default 3)" },
	{ "source-date-epoch", OPT_EPOCH, "SECONDS", "", C_DIFF | C_COMPARE,
	  "clamp mtimes to SECONDS since 1970: the layer's (diff), both sides' in whole seconds (compare)" },
	{ "opaque", OPT_OPAQUE, NULL, NULL, C_DIFF, "an opaque whiteout for a directory whose contents were all replaced" },
	{ "only", OPT_ONLY, "PATH", NULL, C_DIFF,
	  "compare just PATH (a file or subtree) against --base, carry the rest over; repeatable" },
	{ "upper", OPT_UPPER, "DIR", NULL, C_DIFF,
	  "ROOT is an overlay mount and DIR its upper directory: look only at what DIR holds" },
	{ "upper-unchecked", OPT_UPPER_UNCHECKED, NULL, NULL, C_DIFF,
	  "do not check that DIR is ROOT's upperdir (a copied upper directory)" },
	{ "only-from", OPT_ONLY_FROM, "FILE", NULL, C_DIFF, "the --only paths of FILE, one a line (with -z: NUL-separated)" },
	{ "descriptor", OPT_DESCRIPTOR, "FILE", NULL, C_DIFF, "write the layer's OCI descriptor (JSON) to FILE" },
	{ "oci-layout", OPT_OCI_LAYOUT, "DIR[:TAG]", NULL, C_DIFF,
	  "add the layer to the image TAG (default latest) of the OCI layout DIR, made when absent; -o: an extra copy" },
	{ "history", OPT_HISTORY, "TEXT", "", C_DIFF, "--oci-layout: the history entry's created_by" },
	{ "keep-empty", OPT_KEEP_EMPTY, NULL, NULL, C_DIFF,
	  "--oci-layout: an empty diff is a layer too (default: an empty_layer history entry, no blob)" },
	{ "platform", OPT_PLATFORM, "OS/ARCH",
	  "linux/amd64 linux/arm64 linux/arm/v7 linux/386 linux/ppc64le linux/s390x linux/riscv64", C_DIFF,
	  "--oci-layout: the image's platform (default: the image's, or this machine's)" },
	{ "config", OPT_CONFIG, "FILE", NULL, C_DIFF,
	  "--oci-layout: a JSON object of config fields (Env, Cmd, Entrypoint, User, WorkingDir, Labels, ...) to merge" },
	{ "base-image", OPT_BASE_IMAGE, "DIR[:TAG]", NULL, C_DIFF,
	  "--oci-layout: start from this image's config and layers (default: the image at TAG, or an empty one)" },
	{ "exit-code", OPT_EXIT_CODE, NULL, NULL, C_DIFF, "exit with status 1 when anything changed" },
	{ "rehash", OPT_REHASH, NULL, NULL, C_DIFF | C_COMPARE, "read every file again (no stat cache)" },
	{ "mtime-seconds", OPT_MTIME_SECONDS, NULL, NULL, C_COMPARE,
	  "compare mtimes in whole seconds (a tree restored from a layer)" },
	{ "null", 'z', NULL, NULL, C_COMPARE | C_DIFF,
	  "paths end with NUL: compare prints them so (unquoted), diff reads its list of paths so" },
	{ "stat", OPT_STAT, NULL, NULL, C_COMPARE, "print the counts of A, M, D and T instead of the list" },
	{ "format", OPT_FORMAT, "FORMAT", "mtree json", C_DUMP, "mtree (default) or json" },
	{ "keep-setid", OPT_KEEP_SETID, NULL, NULL, C_APPLY, "not root: keep setuid and setgid bits (dropped by default)" },
	{ "fsync", OPT_FSYNC, NULL, NULL, C_WALK, "fsync outputs before they replace the old ones" },
	{ "json", OPT_JSON, NULL, NULL, C_WALK | C_APPLY | C_DUMP, "report as JSON (dump: the JSON format)" },
	{ "progress", OPT_PROGRESS, NULL, NULL, C_WALK, "show progress on stderr (default: when it is a terminal)" },
	{ "no-progress", OPT_NO_PROGRESS, NULL, NULL, C_WALK, "never show progress" },
	{ "verbose", 'v', NULL, NULL, C_ANY, "say more (diff: each change, apply: each entry, on stderr); repeatable" },
	{ "quiet", 'q', NULL, NULL, C_ANY, "say only errors (compare: nothing, only the exit status)" },
	{ "help", 'h', NULL, NULL, C_ANY, "this help" },
	{ "version", 'V', NULL, NULL, C_ANY, "print the version" },
};
#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static const struct opt_spec *spec_of(int val)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (opt_table[i].val == val)
			return &opt_table[i];
	return NULL;
}

static const struct command *command_named(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static bool allowed(const char *cmd, int val)
{
	const struct command *k = command_named(cmd);
	const struct opt_spec *o = spec_of(val);
	return k && o && (o->cmds & k->bit);
}

static const char *opt_name(int c)
{
	const struct opt_spec *o = spec_of(c);
	return o ? o->name : "?";
}

/* getopt_long's tables, from opt_table. */
static void getopt_tables(struct option *longs, char *shorts)
{
	char *sp = shorts;
	*sp++ = ':';
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_spec *o = &opt_table[i];
		longs[i] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL, o->val };
		if (o->val < 128) {
			*sp++ = (char)o->val;
			if (o->arg)
				*sp++ = ':';
		}
	}
	longs[N_OPTS] = (struct option){ NULL, 0, NULL, 0 };
	*sp = '\0';
}

static void print_usage(FILE *f)
{
	fputs("usage: layersnap COMMAND [OPTIONS] ...\n\n", f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
	fputs("\n'layersnap COMMAND --help' (or 'layersnap help COMMAND') lists a command's options;\n"
	      "'layersnap completion bash' prints a bash completion script.\n"
	      "Exit status: 0 success (compare, diff --exit-code: no differences), 1 differences,\n"
	      "2 trouble, 141 stdout's reader gone.\n", f);
}

static void print_command_help(FILE *f, const struct command *k)
{
	fprintf(f, "usage: layersnap %s %s\n\n%s.\n\noptions:\n", k->name, k->synopsis, k->what);
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_spec *o = &opt_table[i];
		if (!(o->cmds & k->bit))
			continue;
		char left[64];
		int n = o->val < 128 ? snprintf(left, sizeof(left), "-%c, --%s", o->val, o->name)
				     : snprintf(left, sizeof(left), "    --%s", o->name);
		if (o->arg && n > 0 && (size_t)n < sizeof(left))
			snprintf(left + n, sizeof(left) - (size_t)n, " %s", o->arg);
		fprintf(f, "  %-32s %s\n", left, o->help);
	}
}

/* A bash completion script: commands, each command's options, and the
 * values of the options that take a fixed set (file names otherwise). */
static void print_completion(FILE *f)
{
	fputs("# bash completion for layersnap; generated by 'layersnap completion bash'\n"
	      "_layersnap() {\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} opts=\n"
	      "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"", f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "%s ", commands[i].name);
	fputs("help completion --help --version\" -- \"$cur\"))\n"
	      "\t\treturn\n"
	      "\tfi\n"
	      "\tcase $prev in\n", f);
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_spec *o = &opt_table[i];
		if (!o->arg)
			continue;
		if (o->val < 128)
			fprintf(f, "\t-%c|", o->val);
		else
			fputc('\t', f);
		if (o->values)
			fprintf(f, "--%s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return ;;\n", o->name, o->values);
		else
			fprintf(f, "--%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", o->name);
	}
	fputs("\tesac\n"
	      "\tcase ${COMP_WORDS[1]} in\n", f);
	for (size_t k = 0; k < N_COMMANDS; k++) {
		fprintf(f, "\t%s) opts=\"", commands[k].name);
		for (size_t i = 0; i < N_OPTS; i++)
			if (opt_table[i].cmds & commands[k].bit)
				fprintf(f, "--%s ", opt_table[i].name);
		fputs("\" ;;\n", f);
	}
	fputs("\thelp) COMPREPLY=($(compgen -W \"", f);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "%s ", commands[i].name);
	fputs("\" -- \"$cur\")); return ;;\n"
	      "\tcompletion) COMPREPLY=($(compgen -W \"bash\" -- \"$cur\")); return ;;\n"
	      "\tesac\n"
	      "\tif [[ $cur == -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
	      "\telse\n"
	      "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	      "\tfi\n"
	      "}\n"
	      "complete -o filenames -F _layersnap layersnap\n", f);
}

/* How the user spelt option c: "-x" for the short ones, else "--name"
 * (argv holds the value, not the option, after one that takes a value). */
static const char *option_spelling(int c)
{
	static char buf[64];
	if (c > 0 && c < 128)
		snprintf(buf, sizeof(buf), "-%c", c);
	else
		snprintf(buf, sizeof(buf), "--%s", opt_name(c));
	return buf;
}

static int parse_int64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static int add_pattern(struct cli *c, const char *p)
{
	const char **n = realloc(c->patterns, (c->n_patterns + 1) * sizeof(*n));
	if (!n)
		return -1;
	c->patterns = n;
	c->patterns[c->n_patterns++] = p;
	return 0;
}

static int add_only(struct cli *c, const char *p)
{
	const char **n = realloc(c->only, (c->n_only + 1) * sizeof(*n));
	if (!n)
		return -1;
	c->only = n;
	c->only[c->n_only++] = p;
	return 0;
}

/* Keeps a string read from a file until exit. */
static char *own(struct cli *c, const char *s, size_t len)
{
	char **o = realloc(c->owned, (c->n_owned + 1) * sizeof(*o));
	if (!o)
		return NULL;
	c->owned = o;
	char *copy = strndup(s, len);
	if (copy)
		c->owned[c->n_owned++] = copy;
	return copy;
}

/* --only-from FILE: a path a line, or with -z NUL-separated (for paths with
 * newlines in them); empty lines are skipped. */
static int read_only_from(struct cli *c)
{
	const char *file = c->only_from;
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
	if (!f)
		return die("--only-from %s: %s", file, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	int delim = c->nul ? '\0' : '\n';
	while (rc == 0 && (n = getdelim(&line, &cap, delim, f)) >= 0) {
		if (n > 0 && line[n - 1] == delim)
			n--;
		if (n == 0)
			continue;
		if (!c->nul && memchr(line, '\0', (size_t)n)) {
			rc = die("--only-from %s: a NUL byte in a line (use -z for NUL-separated paths)", file);
			break;
		}
		char *p = own(c, line, (size_t)n);
		if (!p || add_only(c, p))
			rc = die("out of memory");
	}
	if (rc == 0 && ferror(f))
		rc = die("--only-from %s: %s", file, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
	if (rc == 0 && c->n_only == 0)
		rc = die("--only-from %s: no paths in it", file);
	return rc;
}

/* --exclude-from FILE: one pattern a line, as a .gitignore holds them;
 * blank lines and '#' comments are skipped, a CR before the newline goes. */
static int read_patterns(struct cli *c, const char *file)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "re");
	if (!f)
		return die("--exclude-from %s: %s", file, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if ((size_t)n != strlen(line)) {
			rc = die("--exclude-from %s: a NUL byte in a line", file);
			break;
		}
		size_t k = (size_t)n;
		while (k > 0 && line[k - 1] == ' ' && !(k >= 2 && line[k - 2] == '\\'))
			k--;
		if (k == 0 || line[0] == '#')
			continue;
		char *copy = own(c, line, (size_t)n);
		if (!copy || add_pattern(c, copy)) {
			rc = die("out of memory");
			break;
		}
	}
	if (rc == 0 && ferror(f))
		rc = die("--exclude-from %s: %s", file, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static int parse_args(struct cli *c, int argc, char **argv)
{
	optind = 1;
	opterr = 0;
	struct option longs[N_OPTS + 1];
	char shorts[2 * N_OPTS + 2];
	getopt_tables(longs, shorts);
	int ch;
	while ((ch = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (ch == '?')
			return die("%s: unknown option '%s' (see --help)", c->cmd, argv[optind - 1]);
		if (ch == ':')
			return die("%s: option '%s' needs a value", c->cmd, argv[optind - 1]);
		if (!allowed(c->cmd, ch))
			return die("%s: option %s does not apply to this command", c->cmd, option_spelling(ch));
		int64_t v;
		switch (ch) {
		case OPT_MODE:
			if (ls_mode_parse(optarg, &c->walk.mode))
				return die("--mode %s: expected full, redo or time", optarg);
			c->mode_given = true;
			break;
		case 'x': {
			const char **n = realloc(c->excludes, (c->n_excludes + 1) * sizeof(*n));
			if (!n)
				return die("out of memory");
			c->excludes = n;
			c->excludes[c->n_excludes++] = optarg;
			break;
		}
		case OPT_EXCLUDE_PATTERN:
			if (add_pattern(c, optarg))
				return die("out of memory");
			break;
		case OPT_EXCLUDE_FROM: {
			int rc = read_patterns(c, optarg);
			if (rc)
				return rc;
			break;
		}
		case OPT_ONLY:
			if (add_only(c, optarg))
				return die("out of memory");
			break;
		case OPT_ONLY_FROM: c->only_from = optarg; break;
		case OPT_UPPER: c->upper = optarg; break;
		case OPT_UPPER_UNCHECKED: c->upper_unchecked = true; break;
		case OPT_DEFAULT_EXCLUDES: c->walk.default_excludes = LS_DEFAULT_EXCLUDES_ON; break;
		case OPT_NO_DEFAULT_EXCLUDES: c->walk.default_excludes = LS_DEFAULT_EXCLUDES_OFF; break;
		case OPT_ONE_FS: c->walk.one_file_system = true; break;
		case OPT_XATTRS:
			if (strcmp(optarg, "capability") == 0) c->walk.xattrs = LS_XATTRS_CAPABILITY;
			else if (strcmp(optarg, "all") == 0) c->walk.xattrs = LS_XATTRS_ALL;
			else if (strcmp(optarg, "none") == 0) c->walk.xattrs = LS_XATTRS_NONE;
			else return die("--xattrs %s: expected capability, all or none", optarg);
			break;
		case OPT_IO:
			if (strcmp(optarg, "auto") == 0) c->walk.io = LS_IO_AUTO;
			else if (strcmp(optarg, "uring") == 0) c->walk.io = LS_IO_URING;
			else if (strcmp(optarg, "sync") == 0) c->walk.io = LS_IO_SYNC;
			else return die("--io %s: expected auto, uring or sync", optarg);
			break;
		case 'j':
			if (parse_int64(optarg, &v) || v < 1 || v > 256)
				return die("--jobs %s: expected a number from 1 to 256", optarg);
			c->walk.jobs = (int)v;
			break;
		case OPT_IGNORE_ERRORS: c->walk.ignore_errors = true; break;
		case OPT_FSYNC: c->do_fsync = true; break;
		case OPT_JSON: c->json = true; break;
		case 'v': c->verbose++; break;
		case 'q': c->quiet++; break;
		case OPT_PROGRESS: c->progress = 1; break;
		case OPT_NO_PROGRESS: c->progress = -1; break;
		case 'h': print_command_help(stdout, command_named(c->cmd)); exit(0);
		case 'V': printf("layersnap %s\n", LAYERSNAP_VERSION); exit(0);
		case 'o': c->output = optarg; break;
		case OPT_BASE: c->base = optarg; break;
		case OPT_MANIFEST_OUT: c->manifest_out = optarg; break;
		case OPT_COMPRESS:
			if (strcmp(optarg, "none") == 0) c->compress = LS_COMPRESS_NONE;
			else if (strcmp(optarg, "gzip") == 0) c->compress = LS_COMPRESS_GZIP;
			else if (strcmp(optarg, "zstd") == 0) c->compress = LS_COMPRESS_ZSTD;
			else return die("--compress %s: expected none, gzip or zstd", optarg);
			break;
		case OPT_LEVEL:
			if (parse_int64(optarg, &v) || v < 1 || v > 22)
				return die("--level %s: expected a number from 1 to 22", optarg);
			c->level = (int)v;
			break;
		case OPT_EPOCH:
			if (parse_int64(optarg, &v) || v < 0)
				return die("--source-date-epoch %s: expected seconds since 1970", optarg);
			c->have_epoch = true;
			c->epoch = v;
			break;
		case OPT_OPAQUE: c->opaque = true; break;
		case OPT_DESCRIPTOR: c->descriptor = optarg; break;
		case OPT_OCI_LAYOUT: c->oci_layout = optarg; break;
		case OPT_HISTORY: c->history = optarg; break;
		case OPT_KEEP_EMPTY: c->keep_empty = true; break;
		case OPT_PLATFORM: c->platform = optarg; break;
		case OPT_CONFIG: c->config_file = optarg; break;
		case OPT_BASE_IMAGE: c->base_image = optarg; break;
		case OPT_EXIT_CODE: c->exit_code = true; break;
		case OPT_REHASH: c->walk.rehash = true; break;
		case OPT_MTIME_SECONDS: c->mtime_seconds = true; break;
		case 'z': c->nul = true; break;
		case OPT_STAT: c->stat = true; break;
		case OPT_FORMAT: c->format = optarg; break;
		case OPT_KEEP_SETID: c->keep_setid = true; break;
		}
	}
	if (c->level && c->compress == LS_COMPRESS_NONE)
		return die("%s: --level needs --compress gzip or zstd", c->cmd);
	for (int i = optind; i < argc; i++) {
		if (c->n_args == MAX_ARGS)
			return die("%s: too many arguments (see --help)", c->cmd);
		c->args[c->n_args++] = argv[i];
	}
	c->walk.excludes = c->excludes;
	c->walk.exclude_patterns = c->patterns;
	c->walk.n_exclude_patterns = c->n_patterns;
	c->walk.n_excludes = c->n_excludes;
	c->walk.log = log_cb;
	c->walk.log_ctx = c;
	if (c->progress > 0 || (c->progress == 0 && !c->quiet && isatty(STDERR_FILENO)))
		c->walk.progress = progress_cb;
	return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static int check_root(const char *root)
{
	struct stat st;
	if (stat(root, &st) != 0)
		return die("%s: %s", root, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return die("%s: not a directory", root);
	return 0;
}

/* Loads a manifest; option: the option that named it (NULL for an argument),
 * for the message. */
static int load_manifest(const char *path, ls_manifest **m, const char *option)
{
	struct ls_error err = { 0 };
	if (ls_manifest_load(path, m, &err))
		return option ? die("%s %s", option, err.msg) : fail_err(&err);
	return 0;
}

/* ---- the test fault hook: LS_TEST_FAIL_AT ------------------------------------ */

/* LS_TEST_FAIL_AT=STEP makes the run fail at STEP (one line, exit 2, through
 * the normal failure path); STEP:SIG raises SIG (TERM, INT, HUP or KILL) on
 * itself there instead.  Tests then hit an exact moment rather than guess it
 * with sleep.  Test machinery of the CLI: the library reads no environment.
 * A run that never reaches STEP fails too, so that a step that does not
 * apply (a typo is refused at once) cannot silently test nothing.  A new
 * step is a line here and a fault_fire() where it happens. */
static const char *const fault_steps[] = {
	"write",       /* diff: the layer's first FAULT_WRITE_BYTES are in its temporary */
	"layer",       /* diff: every output written, the layer not yet committed */
	"descriptor",  /* diff: the layer committed, the descriptor not yet */
	"blob",        /* diff --oci-layout: every output written, the layer's blob not yet committed */
	"index",       /* diff --oci-layout: the image's blobs committed, index.json not yet */
	"manifest",    /* scan, diff: the manifest not yet committed (the others are) */
	"apply",       /* apply: the first file with data written, not yet in place */
};
#define N_FAULT_STEPS (sizeof(fault_steps) / sizeof(fault_steps[0]))
#define FAULT_WRITE_BYTES ((size_t)1 << 20)

static const struct {
	const char *name;
	int sig;
} fault_sigs[] = { { "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP }, { "KILL", SIGKILL } };

static struct {
	const char *spec;   /* the variable's value; NULL: no fault asked */
	const char *step;
	int sig;            /* 0: fail instead */
	bool reached;       /* set by one thread, read after it is joined */
} fault;

static int parse_fault(const char *spec)
{
	if (!spec || !*spec)
		return 0;
	size_t n = strcspn(spec, ":");
	const char *step = NULL;
	char names[128] = "";
	for (size_t i = 0; i < N_FAULT_STEPS; i++) {
		if (strlen(fault_steps[i]) == n && strncmp(spec, fault_steps[i], n) == 0)
			step = fault_steps[i];
		size_t l = strlen(names);
		snprintf(names + l, sizeof(names) - l, "%s%s", i ? ", " : "", fault_steps[i]);
	}
	if (!step)
		return die("LS_TEST_FAIL_AT=%s: unknown step (expected one of %s, then optionally "
			   ":TERM, :INT, :HUP or :KILL)", spec, names);
	int sig = 0;
	if (spec[n] == ':') {
		for (size_t i = 0; i < sizeof(fault_sigs) / sizeof(fault_sigs[0]); i++)
			if (strcmp(spec + n + 1, fault_sigs[i].name) == 0)
				sig = fault_sigs[i].sig;
		if (!sig)
			return die("LS_TEST_FAIL_AT=%s: unknown signal (expected TERM, INT, HUP or KILL)", spec);
	}
	fault.spec = spec;
	fault.step = step;
	fault.sig = sig;
	return 0;
}

static bool fault_is(const char *step)
{
	return fault.spec && strcmp(fault.step, step) == 0;
}

/* At STEP: whether the run is to fail here (the caller takes its failure
 * path and reports fault_failure()).  With :SIG, raises SIG instead: its
 * handler ends the run (or SIGKILL does) from wherever this thread is. */
static bool fault_fire(const char *step)
{
	if (!fault_is(step) || fault.reached)
		return false;
	fault.reached = true;
	if (fault.sig)
		raise(fault.sig);
	return true;
}

static int fault_failure(void)
{
	return die("LS_TEST_FAIL_AT=%s: injected failure", fault.spec);
}

static int fault_unreached(void)
{
	return die("LS_TEST_FAIL_AT=%s: the run never reached that step", fault.spec);
}

/* The library's steps (ls_step_fn), where LS_TEST_FAIL_AT's fire.  A layer
 * smaller than the "write" step's MiB never reaches it: nothing is then
 * committed either. */
static int fault_step(void *ctx, const char *step)
{
	(void)ctx;
	if (fault_fire(step))
		return 1;
	return fault_is("write") && !fault.reached && (strcmp(step, "layer") == 0 || strcmp(step, "blob") == 0);
}

/* A failure of ls_scan_files or ls_diff_files, told as the fault hook's
 * when it made it. */
static int files_failed(int rc, const struct ls_error *err)
{
	if (rc == -ECANCELED && fault.spec)
		return fault.reached ? fault_failure() : fault_unreached();
	return fail_err(err);
}

static void fill_files(const struct cli *c, struct ls_files *f)
{
	*f = (struct ls_files)LS_FILES_INIT;
	f->fsync = c->do_fsync;
	f->no_tmpfile = c->no_tmpfile;
	f->cleanup = &cleanup;
	if (fault.spec)
		f->on_step = fault_step;
}

/* Starts the thread that serves the apply feed's pipe p; on failure both
 * ends are closed. */
static int fault_thread(pthread_t *t, void *(*fn)(void *), void *arg, const int p[2])
{
	int e = pthread_create(t, NULL, fn, arg);
	if (e) {
		close(p[0]);
		close(p[1]);
		return die("LS_TEST_FAIL_AT=%s: thread: %s", fault.spec, strerror(e));
	}
	return 0;
}

/* LS_TEST_FAIL_AT=apply.  The library has no callback between writing a file
 * and putting it in place, so the layer reaches it through a pipe fed by this
 * thread, which reads the (uncompressed) tar's headers.  Of the first regular
 * file with data, it feeds the data but not the padding after it (or, when
 * there is none, not the last byte: the library reads the padding before it
 * puts a file in place), waits until a temporary of ours holds the bytes fed,
 * and fires: the library is then waiting for input, the file written and not
 * in place.  To fail, the thread closes the pipe: the layer ends mid-entry. */
struct apply_feed {
	int src, wr;        /* the layer; the pipe's write end */
	bool not_tar;       /* a header that is not ustar's: stopped there */
	pthread_t thread;
};

/* Reads len bytes, fewer only at the end of the input; -1 on an error. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Feeds n bytes of the layer on (UINT64_MAX: the rest of it).  False when
 * the layer ends first, or it or the pipe fails. */
static bool feed_copy(struct apply_feed *f, uint64_t n)
{
	char buf[1 << 16];
	while (n > 0) {
		ssize_t got = read_full(f->src, buf, n < sizeof(buf) ? (size_t)n : sizeof(buf));
		if (got <= 0)
			return got == 0 && n == UINT64_MAX;
		if (ls_write_all(f->wr, buf, (size_t)got) < 0)
			return false;
		if (n != UINT64_MAX)
			n -= (uint64_t)got;
	}
	return true;
}

/* Whether this process holds a temporary of exactly size bytes: an
 * O_TMPFILE (it has no link) or a named `.NAME.layersnap-tmp.*`. */
static bool holds_temp_of(off_t size)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		struct stat st;
		char link[PATH_MAX];
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_size != size)
			continue;
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		const char *base = strrchr(link, '/');
		base = base ? base + 1 : link;
		found = st.st_nlink == 0 || ls_output_is_temp_name(base, strlen(base));
	}
	closedir(d);
	return found;
}

/* Until the library has written the first size bytes of the held file (at
 * most 20 s).  False when it stopped reading (the pipe's read end is
 * closed: POLLERR) or never got there. */
static bool feed_wait(struct apply_feed *f, off_t size)
{
	for (int ms = 0; ms < 20000; ms++) {
		if (holds_temp_of(size))
			return true;
		struct pollfd p = { .fd = f->wr, .events = 0 };
		if (poll(&p, 1, 1) > 0 && (p.revents & POLLERR))
			return false;
	}
	return false;
}

static void *feed_run(void *arg)
{
	struct apply_feed *f = arg;
	unsigned char h[512];
	bool held = false;
	for (;;) {
		ssize_t n = read_full(f->src, h, sizeof(h));
		if (n <= 0)
			break;
		static const unsigned char zero[512];
		if ((size_t)n < sizeof(h) || memcmp(h, zero, sizeof(h)) == 0) {
			/* a short layer, or its end blocks: the rest as it is */
			if (ls_write_all(f->wr, h, (size_t)n) == 0)
				feed_copy(f, UINT64_MAX);
			break;
		}
		/* the size field in octal (base-256, over 8 GiB, is not read here) */
		char field[13];
		memcpy(field, h + 124, 12);
		field[12] = '\0';
		char *end;
		errno = 0;
		unsigned long long size = strtoull(field, &end, 8);
		if (memcmp(h + 257, "ustar", 5) != 0 || errno || end == field || (*end && *end != ' ')) {
			f->not_tar = true;
			break;
		}
		if (ls_write_all(f->wr, h, sizeof(h)) < 0)
			break;
		uint64_t stored = (size + 511) / 512 * 512, fed = 0;
		char type = (char)h[156];
		if (!held && size > 0 && (type == '0' || type == '\0' || type == '7')) {
			held = true;
			fed = size % 512 ? size : size - 1;
			if (!feed_copy(f, fed))
				break;
			if (feed_wait(f, (off_t)fed) && fault_fire("apply"))
				break;
		}
		if (!feed_copy(f, stored - fed))
			break;
	}
	close(f->wr);
	return NULL;
}

/* Starts feeding src; *rd is then the fd to read the layer from. */
static int feed_start(struct apply_feed *f, int src, int *rd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return die("LS_TEST_FAIL_AT=%s: pipe: %s", fault.spec, strerror(errno));
	*f = (struct apply_feed){ .src = src, .wr = p[1] };
	*rd = p[0];
	return fault_thread(&f->thread, feed_run, f, p);
}

/* Once the library is done with rd: 0, or the feed's failure (reported). */
static int feed_finish(struct apply_feed *f, int rd)
{
	close(rd);  /* a feed still writing gets EPIPE */
	pthread_join(f->thread, NULL);
	if (fault.reached)
		return fault_failure();
	if (f->not_tar)
		return die("LS_TEST_FAIL_AT=%s: the layer is not an uncompressed tar", fault.spec);
	return 0;
}

/* ---- commands ------------------------------------------------------------ */

static int cmd_scan(struct cli *c)
{
	if (c->n_args != 1 || !c->output)
		return die("scan: usage: layersnap scan [options] ROOT -o MANIFEST [--base MANIFEST]");
	const char *root = c->args[0];
	int rc = check_root(root);
	if (rc)
		return rc;
	if (strcmp(c->output, "-") == 0)
		return die("scan: -o -: a manifest is written to a file");
	ls_manifest *base = NULL;
	if (c->base && (rc = load_manifest(c->base, &base, "--base")))
		return rc;
	struct ls_files files;
	fill_files(c, &files);
	files.manifest = c->output;
	struct ls_error err = { 0 };
	size_t n = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = ls_scan_files(root, &c->walk, base, &files, &n, &err);
	double ms = seconds_since(&t0) * 1e3;
	ls_manifest_free(base);
	if (rc)
		return files_failed(rc, &err);
	if (c->json)
		printf("{\"mode\": \"%s\", \"entries\": %zu, \"elapsed_ms\": %.1f}\n", ls_mode_name(c->walk.mode), n, ms);
	else if (c->verbose)
		fprintf(stderr, "layersnap: scanned %zu entries (%s) in %.0f ms\n", n, ls_mode_name(c->walk.mode), ms);
	return fflush(stdout) != 0 ? stdout_failed() : 0;
}

/* diff -v: each change on stderr as the layer takes it, as compare prints
 * them (stdout may be the layer). */
static int tell_change(void *ctx, enum ls_change ch, const char *path, size_t len)
{
	(void)ctx;
	fprintf(stderr, "%c\t", (char)ch);
	ls_put_c_quoted(stderr, path, len);
	fputc('\n', stderr);
	return 0;
}

/* SOURCE_DATE_EPOCH, the reproducible-builds variable, when
 * --source-date-epoch is not given (diff, compare). */
static int epoch_from_env(struct cli *c)
{
	const char *env = getenv("SOURCE_DATE_EPOCH");
	if (c->have_epoch || !env || !*env)
		return 0;
	int64_t v;
	if (parse_int64(env, &v) || v < 0)
		return die("SOURCE_DATE_EPOCH=%s: expected seconds since 1970", env);
	c->have_epoch = true;
	c->epoch = v;
	return 0;
}

/* --oci-layout and --base-image's DIR[:TAG]: TAG is what follows the last
 * ':' when it holds no '/' (a directory's name may hold a ':' too, then
 * DIR:latest says which); *dir malloc'ed, *tag NULL for the default. */
static int split_image(const char *arg, const char *option, char **dir, const char **tag)
{
	const char *colon = strrchr(arg, ':');
	*tag = NULL;
	if (colon && !strchr(colon, '/')) {
		if (!colon[1] || colon == arg)
			return die("%s %s: expected DIR or DIR:TAG", option, arg);
		*tag = colon + 1;
	}
	*dir = colon && *tag ? strndup(arg, (size_t)(colon - arg)) : strdup(arg);
	return *dir ? 0 : die("out of memory");
}

static int cmd_diff(struct cli *c)
{
	if (c->n_args != 1 || (!c->output && !c->oci_layout))
		return die("diff: usage: layersnap diff [options] ROOT [--base MANIFEST] -o LAYER|- | --oci-layout DIR[:TAG] "
			   "[--manifest-out MANIFEST]");
	const char *root = c->args[0];
	int rc = check_root(root);
	if (rc)
		return rc;
	const char *needs_oci = c->history ? "--history" : c->keep_empty ? "--keep-empty" : c->platform ? "--platform"
				: c->config_file ? "--config" : c->base_image ? "--base-image" : NULL;
	if (needs_oci && !c->oci_layout)
		return die("diff: %s needs --oci-layout", needs_oci);
	bool to_stdout = c->output && strcmp(c->output, "-") == 0;
	if (to_stdout && isatty(STDOUT_FILENO))
		return die("diff: refusing to write a layer to a terminal (redirect stdout or use -o FILE)");
	if (c->manifest_out && strcmp(c->manifest_out, "-") == 0)
		return die("diff: --manifest-out -: a manifest is written to a file");
	if (c->descriptor && to_stdout && strcmp(c->descriptor, "-") == 0)
		return die("diff: --descriptor - and -o - cannot share stdout");
	if ((rc = epoch_from_env(c)))
		return rc;
	if (c->only_from && (rc = read_only_from(c)))
		return rc;
	if (c->n_only && !c->base)
		return die("diff: --only needs --base: the manifest the listed paths are compared against");
	if (c->upper && !c->base)
		return die("diff: --upper needs --base: the manifest of the tree before the step");
	if (c->upper_unchecked && !c->upper)
		return die("diff: --upper-unchecked needs --upper");
	ls_manifest *base = NULL;
	struct ls_error err = { 0 };
	/* --upper: the library loads the base while it lists the upper
	 * directory, with the same messages. */
	bool base_in_lib = c->base && c->upper;
	if (c->base && !base_in_lib) {
		if ((rc = load_manifest(c->base, &base, "--base")))
			return rc;
		if (ls_check_base(base, c->walk.mode, &c->walk, &err)) {
			ls_manifest_free(base);
			return die("%s: %s", c->base, err.msg);
		}
	}
	struct ls_oci_options oopts = LS_OCI_OPTIONS_INIT;
	char *oci_dir = NULL, *base_dir = NULL;
	if (c->oci_layout && ((rc = split_image(c->oci_layout, "--oci-layout", &oci_dir, &oopts.tag)) ||
			      (c->base_image && (rc = split_image(c->base_image, "--base-image", &base_dir, &oopts.base_tag))))) {
		free(oci_dir);
		ls_manifest_free(base);
		return rc;
	}
	oopts.layout = oci_dir;
	oopts.history = c->history;
	oopts.keep_empty = c->keep_empty;
	oopts.platform = c->platform;
	oopts.config_file = c->config_file;
	oopts.base_layout = base_dir;
	struct ls_files files;
	fill_files(c, &files);
	files.layer = c->output;
	files.descriptor = c->descriptor;
	files.manifest = c->manifest_out;
	files.oci = c->oci_layout ? &oopts : NULL;
	files.base = base_in_lib ? c->base : NULL;
	struct ls_diff_options dopts = {
		.struct_size = sizeof(dopts), .walk = &c->walk, .compress = c->compress, .level = c->level,
		.have_epoch = c->have_epoch, .source_date_epoch = c->epoch, .opaque = c->opaque,
		.on_change = c->verbose ? tell_change : NULL, .change_ctx = c,
		.only_paths = c->only, .n_only_paths = c->n_only,
		.upper_dir = c->upper, .upper_unchecked = c->upper_unchecked,
	};
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	rc = ls_diff_files(root, &dopts, base, &files, &res, &err);
	ls_manifest_free(base);
	free(oci_dir);
	free(base_dir);
	if (rc)
		return files_failed(rc, &err);

	FILE *sf = c->json && !to_stdout ? stdout : stderr;
	if (c->json) {
		fprintf(sf, "{\"mode\": \"%s\", \"added\": %" PRIu64 ", \"modified\": %" PRIu64
			", \"deleted\": %" PRIu64 ", \"entries\": %" PRIu64 ", \"bytes\": %" PRIu64
			", \"diff_id\": \"%s\", \"digest\": \"%s\", \"size\": %" PRIu64
			", \"media_type\": \"%s\", \"elapsed_ms\": %.1f%s%s%s}\n",
			ls_mode_name(res.mode), res.added, res.modified, res.deleted, res.entries, res.bytes,
			res.diff_id, res.digest, res.size, res.media_type, res.elapsed_ms,
			c->oci_layout ? ", \"image_digest\": \"" : "", c->oci_layout ? res.image_digest : "",
			c->oci_layout ? "\"" : "");
	} else if (!c->quiet) {
		uint64_t changes = res.added + res.modified + res.deleted;
		fprintf(sf, "layersnap: %s diff: %" PRIu64 " added, %" PRIu64 " modified, %" PRIu64
			" deleted; %" PRIu64 " entries, %" PRIu64 " bytes%s; %s; %.0f ms%s%s\n",
			ls_mode_name(res.mode), res.added, res.modified, res.deleted, res.entries, res.bytes,
			changes ? "" : " (no changes: empty layer)", res.diff_id, res.elapsed_ms,
			c->oci_layout ? "; image " : "", c->oci_layout ? res.image_digest : "");
	}
	if (fflush(stdout) != 0)
		return stdout_failed();
	return (c->exit_code && res.added + res.modified + res.deleted) ? 1 : 0;
}

struct compare_out {
	const struct cli *c;
	long n;
	uint64_t added, modified, deleted, type;  /* --stat */
};

static int print_change(void *ctx, enum ls_change ch, const char *path, size_t len)
{
	struct compare_out *o = ctx;
	if (o->c->stat) {
		switch (ch) {
		case LS_ADDED: o->added++; break;
		case LS_MODIFIED: o->modified++; break;
		case LS_DELETED: o->deleted++; break;
		case LS_TYPE: o->type++; break;
		}
	} else if (o->c->json) {
		fprintf(stdout, "%s{\"status\": \"%c\", \"path\": ", o->n ? ",\n " : "", (char)ch);
		ls_put_json_string(stdout, path, len);
		fputc('}', stdout);
	} else if (o->c->nul) {
		fprintf(stdout, "%c\t", (char)ch);
		fwrite(path, 1, len, stdout);
		fputc('\0', stdout);
	} else {
		fprintf(stdout, "%c\t", (char)ch);
		ls_put_c_quoted(stdout, path, len);
		fputc('\n', stdout);
	}
	o->n++;
	return 0;
}

/* The mode that records what both do: time records less than redo, which
 * records less than full. */
static enum ls_mode weaker_mode(enum ls_mode a, enum ls_mode b)
{
	if (a == LS_MODE_TIME || b == LS_MODE_TIME)
		return LS_MODE_TIME;
	if (a == LS_MODE_REDO || b == LS_MODE_REDO)
		return LS_MODE_REDO;
	return LS_MODE_FULL;
}

static int cmd_compare(struct cli *c)
{
	if (c->n_args != 2)
		return die("compare: usage: layersnap compare [options] OLD_MANIFEST NEW_MANIFEST|ROOT");
	if (c->stat && c->nul)
		return die("compare: --stat and -z: choose one");
	int rc = epoch_from_env(c);
	if (rc)
		return rc;
	ls_manifest *a = NULL, *b = NULL;
	if ((rc = load_manifest(c->args[0], &a, NULL)))
		return rc;
	struct ls_error err = { 0 };
	struct stat st;
	if (stat(c->args[1], &st) == 0 && S_ISDIR(st.st_mode)) {
		if (ls_check_base(a, c->walk.mode, &c->walk, &err)) {
			rc = die("%s: %s", c->args[0], err.msg);
			goto done;
		}
		if (ls_scan(c->args[1], &c->walk, a, &b, &err)) {
			rc = fail_err(&err);
			goto done;
		}
	} else {
		if ((rc = load_manifest(c->args[1], &b, NULL)))
			goto done;
		if (!c->mode_given)
			/* Two recorded manifests: compare what both recorded. */
			c->walk.mode = weaker_mode(a->mode, b->mode);
		else if (c->walk.mode == LS_MODE_FULL && (a->mode != LS_MODE_FULL || b->mode != LS_MODE_FULL)) {
			rc = die("compare: --mode full needs two full manifests (%s is %s)",
				 a->mode != LS_MODE_FULL ? c->args[0] : c->args[1],
				 ls_mode_name(a->mode != LS_MODE_FULL ? a->mode : b->mode));
			goto done;
		}
	}
	struct ls_compare_options copts = LS_COMPARE_OPTIONS_INIT;
	copts.mode = c->walk.mode;
	copts.mtime_seconds = c->mtime_seconds;
	copts.have_epoch = c->have_epoch;
	copts.source_date_epoch = c->epoch;
	/* -q: the exit status only, so the changes are just counted */
	struct compare_out o = { .c = c };
	bool list = !c->quiet && !c->stat;
	if (list && c->json)
		fputc('[', stdout);
	long n = ls_compare_opts(a, b, &copts, c->quiet ? NULL : print_change, &o, &err);
	if (n < 0) {
		rc = fail_err(&err);
		goto done;
	}
	if (list && c->json)
		fputs("]\n", stdout);
	else if (!c->quiet && c->stat && c->json)
		printf("{\"added\": %" PRIu64 ", \"modified\": %" PRIu64 ", \"deleted\": %" PRIu64
		       ", \"type_changed\": %" PRIu64 "}\n", o.added, o.modified, o.deleted, o.type);
	else if (!c->quiet && c->stat)
		printf("%" PRIu64 " added, %" PRIu64 " modified, %" PRIu64 " deleted, %" PRIu64 " type changed\n",
		       o.added, o.modified, o.deleted, o.type);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		rc = stdout_failed();
		goto done;
	}
	rc = n > 0 ? 1 : 0;
done:
	ls_manifest_free(a);
	ls_manifest_free(b);
	return rc;
}

static int cmd_dump(struct cli *c)
{
	if (c->n_args != 1)
		return die("dump: usage: layersnap dump MANIFEST [--format mtree|json]");
	if (c->json && c->format && strcmp(c->format, "json") != 0)
		return die("dump: --json and --format %s: choose one", c->format);
	const char *fmt = c->format ? c->format : c->json ? "json" : "mtree";
	if (strcmp(fmt, "mtree") != 0 && strcmp(fmt, "json") != 0)
		return die("--format %s: expected mtree or json", fmt);
	ls_manifest *m = NULL;
	int rc = load_manifest(c->args[0], &m, NULL);
	if (rc)
		return rc;
	struct ls_error err = { 0 };
	if (strcmp(fmt, "mtree") == 0)
		rc = ls_manifest_dump_mtree(m, stdout, &err);
	else
		rc = ls_manifest_dump_json(m, stdout, &err);
	ls_manifest_free(m);
	return rc ? fail_err(&err) : 0;
}

/* Applies one layer (a file or "-") onto root, adding to *total. */
static int apply_one(struct cli *c, const char *layer, const char *root, const struct ls_apply_options *opts,
		     struct ls_apply_stats *total)
{
	int fd = STDIN_FILENO;
	if (strcmp(layer, "-") != 0) {
		fd = open(layer, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return die("%s: %s", layer, strerror(errno));
	}
	struct ls_apply_stats stats = LS_APPLY_STATS_INIT;
	struct ls_error err = { 0 };
	struct apply_feed feed;
	int layer_fd = fd, rc = 0;
	bool fed = fault_is("apply") && !fault.reached;
	if (fed && (rc = feed_start(&feed, fd, &layer_fd))) {
		if (fd != STDIN_FILENO)
			close(fd);
		return rc;
	}
	rc = ls_apply(layer_fd, root, opts, &stats, &err);
	int frc = fed ? feed_finish(&feed, layer_fd) : 0;
	if (fd != STDIN_FILENO)
		close(fd);
	total->entries += stats.entries;
	total->whiteouts += stats.whiteouts;
	total->skipped += stats.skipped;
	if (frc || rc)
		return frc ? frc : fail_err(&err);
	return 0;
}

static int cmd_apply(struct cli *c)
{
	if (c->n_args < 2)
		return die("apply: usage: layersnap apply [-v] [-q] [--keep-setid] LAYER|-... ROOT [--manifest-out MANIFEST]");
	const char *root = c->args[c->n_args - 1];
	int rc = check_root(root);
	if (rc)
		return rc;
	int stdin_layers = 0;
	for (int i = 0; i + 1 < c->n_args; i++)
		stdin_layers += strcmp(c->args[i], "-") == 0;
	if (stdin_layers > 1)
		return die("apply: '-' (standard input) can be one layer only");
	if (c->manifest_out && strcmp(c->manifest_out, "-") == 0)
		return die("apply: --manifest-out -: a manifest is written to a file");
	ls_apply_record *rec = NULL;
	struct ls_error err = { 0 };
	/* The manifest's hashes come from the bytes as they are written. */
	if (c->manifest_out && c->walk.mode == LS_MODE_FULL && ls_apply_record_new(&rec, &err))
		return fail_err(&err);
	/* -v: each entry as applied, in diff -v's form (stdout stays clean) */
	struct ls_apply_options opts = { .struct_size = sizeof(opts), .log = log_cb, .log_ctx = c,
					 .keep_setid = c->keep_setid, .no_tmpfile = c->no_tmpfile,
					 .on_entry = c->verbose ? tell_change : NULL, .entry_ctx = c, .record = rec };
	struct ls_apply_stats stats = LS_APPLY_STATS_INIT;
	for (int i = 0; i + 1 < c->n_args && rc == 0; i++)
		rc = apply_one(c, c->args[i], root, &opts, &stats);
	size_t n = 0;
	if (rc == 0 && c->manifest_out) {
		ls_manifest *base = NULL;
		if (rec && ls_apply_record_base(rec, root, &c->walk, &base, &err))
			rc = fail_err(&err);
		struct ls_files files;
		fill_files(c, &files);
		files.manifest = c->manifest_out;
		if (rc == 0 && (rc = ls_scan_files(root, &c->walk, base, &files, &n, &err)))
			rc = files_failed(rc, &err);
		ls_manifest_free(base);
	}
	ls_apply_record_free(rec);
	if (rc)
		return rc;
	if (c->json) {
		printf("{\"entries\": %" PRIu64 ", \"whiteouts\": %" PRIu64 ", \"skipped\": %" PRIu64 "}\n",
		       stats.entries, stats.whiteouts, stats.skipped);
		if (fflush(stdout) != 0)
			return stdout_failed();
	} else if (c->verbose) {
		fprintf(stderr, "layersnap: applied %" PRIu64 " entries, %" PRIu64 " whiteouts, %" PRIu64 " skipped\n",
			stats.entries, stats.whiteouts, stats.skipped);
		if (c->manifest_out)
			fprintf(stderr, "layersnap: %s: %zu entries (%s)\n", c->manifest_out, n, ls_mode_name(c->walk.mode));
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* One fixed locale: nothing in a layer may depend on the caller's.  A
	 * process starts in "C"; only the character type (libarchive's UTF-8
	 * names) becomes C.UTF-8, so that one category is loaded, not twelve. */
	setlocale(LC_CTYPE, "C.UTF-8");
	install_signals();
	raise_nofile_limit();
	ls_fd_table_reserve(CLI_FDS);
	if (argc < 2)
		return die("missing command (see --help)");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		const struct command *k = strcmp(cmd, "help") == 0 && argc > 2 ? command_named(argv[2]) : NULL;
		if (strcmp(cmd, "help") == 0 && argc > 2 && !k)
			return die("help: unknown command '%s' (see --help)", argv[2]);
		if (k)
			print_command_help(stdout, k);
		else
			print_usage(stdout);
		return fflush(stdout) == 0 ? 0 : stdout_failed();
	}
	if (strcmp(cmd, "completion") == 0) {
		if (argc != 3 || strcmp(argv[2], "bash") != 0)
			return die("completion: usage: layersnap completion bash");
		print_completion(stdout);
		return fflush(stdout) == 0 ? 0 : stdout_failed();
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("layersnap %s\n", LAYERSNAP_VERSION);
		return 0;
	}
	struct cli c;
	memset(&c, 0, sizeof(c));
	c.cmd = cmd;
	c.walk = (struct ls_walk_options)LS_WALK_OPTIONS_INIT;
	/* The library takes no input from the environment: read here. */
	const char *nt = getenv("LAYERSNAP_TEST_NO_TMPFILE");
	c.no_tmpfile = nt && strcmp(nt, "1") == 0;
	int rc = parse_fault(getenv("LS_TEST_FAIL_AT"));
	if (rc)
		return rc;
	int (*run)(struct cli *) = NULL;
	if (strcmp(cmd, "scan") == 0) run = cmd_scan;
	else if (strcmp(cmd, "diff") == 0) run = cmd_diff;
	else if (strcmp(cmd, "compare") == 0) run = cmd_compare;
	else if (strcmp(cmd, "apply") == 0) run = cmd_apply;
	else if (strcmp(cmd, "dump") == 0) run = cmd_dump;
	else return die("unknown command '%s' (see --help)", cmd);
	rc = parse_args(&c, argc - 1, argv + 1);
	if (rc == 0)
		rc = run(&c);
	if (fault.spec && !fault.reached && rc != EXIT_TROUBLE)
		rc = fault_unreached();
	free(c.excludes);
	free(c.patterns);
	free(c.only);
	for (size_t i = 0; i < c.n_owned; i++)
		free(c.owned[i]);
	free(c.owned);
	return rc;
}
