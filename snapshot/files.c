/* Scans and diffs into files, committed as the command line does: see files.h. */
#include "files.h"
#include "error.h"
#include "manifest.h"
#include "output.h"
#include "sized.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OUT_LAYER, OUT_DESCRIPTOR, OUT_MANIFEST, N_OUT };

static const char *const step_of[N_OUT] = { "layer", "descriptor", "manifest" };

/* At most three outputs, each with its name, temporary and lock inside ROOT. */
#define MAX_SKIP (3 * N_OUT)

struct run {
	struct ls_files f;
	struct ls_output out[N_OUT];
	char *own[MAX_SKIP];            /* our names inside ROOT, malloc'ed */
	size_t n_own;
	const char **skip_all;          /* the walk's: the caller's skip paths, then ours */
	size_t n_skip;
};

/* ---- signals and the cleanup list ------------------------------------------ */

static void block_cleanup_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void restore_signals(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void track_name(struct ls_cleanup *c, int slot, bool on, const char *name)
{
	c->set[slot] = 0;
	if (on && name && strlen(name) < sizeof(c->path[slot])) {
		strcpy(c->path[slot], name);
		c->set[slot] = 1;
	}
}

/* Output i's names in the cleanup list, from its state now; signals blocked. */
static void track(struct run *r, int i)
{
	struct ls_cleanup *c = r->f.cleanup;
	if (!c)
		return;
	const struct ls_output *o = &r->out[i];
	track_name(c, 2 * i, o->tmp_named, o->tmp_path);
	track_name(c, 2 * i + 1, o->locked, o->lock_path);
}

static int open_out(struct run *r, int i, const char *path, bool lock, ls_log_fn *log, void *log_ctx,
		    struct ls_error *err)
{
	struct ls_output_options oo = { .lock = lock, .no_tmpfile = r->f.no_tmpfile };
	sigset_t old;
	block_cleanup_signals(&old);
	int rc = ls_output_open_opts(&r->out[i], path, &oo, err);
	track(r, i);
	restore_signals(&old);
	if (rc == 0 && r->out[i].n_stale)
		ls_log(log, log_ctx, 1, "%s: removed %zu stale temporary file%s of earlier runs", r->out[i].path,
		       r->out[i].n_stale, r->out[i].n_stale == 1 ? "" : "s");
	return rc;
}

static int commit_out(struct run *r, int i, struct ls_error *err)
{
	if (r->out[i].fd < 0)
		return 0;  /* not asked for */
	if (r->f.on_step && r->f.on_step(r->f.step_ctx, step_of[i]) != 0)
		return ls_fail(err, ECANCELED, "cancelled at %s", step_of[i]);
	sigset_t old;
	block_cleanup_signals(&old);
	int rc = ls_output_commit(&r->out[i], r->f.fsync, err);
	track(r, i);
	restore_signals(&old);
	return rc;
}

static void run_free(struct run *r)
{
	for (int i = 0; i < N_OUT; i++) {
		sigset_t old;
		block_cleanup_signals(&old);
		ls_output_abort(&r->out[i]);
		track(r, i);
		restore_signals(&old);
	}
	for (size_t i = 0; i < r->n_own; i++)
		free(r->own[i]);
	free(r->skip_all);
}

static int run_init(struct run *r, const struct ls_files *files, struct ls_error *err)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < N_OUT; i++)
		r->out[i].fd = -1;
	if (!files)
		return ls_fail(err, EINVAL, "files: none given");
	return ls_sized_in(&r->f, sizeof(r->f), files, LS_SIZE_TO(struct ls_files, step_ctx), "files", err);
}

/* ---- outputs inside ROOT ----------------------------------------------------- */

/* path relative to root_real when it lies inside it (malloc'ed), else NULL. */
static char *relative_inside(const char *root_real, const char *path)
{
	char *copy = strdup(path), *copy2 = strdup(path);
	char *result = NULL;
	if (!copy || !copy2)
		goto out;
	char *dir = realpath(dirname(copy), NULL);
	if (!dir)
		goto out;
	const char *name = basename(copy2);
	size_t rl = strcmp(root_real, "/") == 0 ? 0 : strlen(root_real);
	if (strncmp(dir, root_real, rl) == 0 && (dir[rl] == '/' || dir[rl] == '\0')) {
		const char *rest = dir[rl] == '/' ? dir + rl + 1 : "";
		if (asprintf(&result, "%s%s%s", rest, *rest ? "/" : "", name) < 0)
			result = NULL;
	}
	free(dir);
out:
	free(copy);
	free(copy2);
	return result;
}

/* The walk's skip list: the caller's, and every name of ours inside ROOT.
 * The O_TMPFILE's tmp_path is the name it gets at commit, after the walk;
 * walks skip the temporaries' name pattern besides. */
static int skip_outputs(struct run *r, const char *root, const char *const *caller, size_t n_caller,
			struct ls_error *err)
{
	char *root_real = realpath(root, NULL);
	if (!root_real)
		return ls_fail_errno(err, errno, "%s", root);
	for (int i = 0; i < N_OUT; i++) {
		const char *names[3] = { r->out[i].path, r->out[i].tmp_path, r->out[i].lock_path };
		for (int k = 0; k < 3; k++) {
			if (!names[k])
				continue;
			char *rel = relative_inside(root_real, names[k]);
			if (rel)
				r->own[r->n_own++] = rel;
		}
	}
	free(root_real);
	r->skip_all = malloc((n_caller + r->n_own + 1) * sizeof(*r->skip_all));
	if (!r->skip_all)
		return ls_fail(err, ENOMEM, "files: out of memory");
	for (size_t i = 0; i < n_caller; i++)
		r->skip_all[i] = caller[i];
	for (size_t i = 0; i < r->n_own; i++)
		r->skip_all[n_caller + i] = r->own[i];
	r->n_skip = n_caller + r->n_own;
	return 0;
}

/* ---- scan -------------------------------------------------------------------- */

static int write_manifest(struct run *r, const ls_manifest *m, struct ls_error *err)
{
	struct ls_error e = { 0 };
	int rc = ls_manifest_write_fd(m, r->out[OUT_MANIFEST].fd, &e);
	if (rc)
		return ls_fail(err, -rc, "%s: %s", r->out[OUT_MANIFEST].path, e.msg);
	return 0;
}

int ls_scan_files(const char *root, const struct ls_walk_options *opts, const ls_manifest *base,
		  const struct ls_files *files, size_t *entries, struct ls_error *err)
{
	if (entries)
		*entries = 0;
	struct run r;
	struct ls_walk_options w;
	ls_manifest *m = NULL;
	int rc = run_init(&r, files, err);
	if (rc == 0)
		rc = ls_sized_in(&w, sizeof(w), opts, LS_SIZE_TO(struct ls_walk_options, progress), "scan: options",
				 err);
	if (rc)
		goto done;
	if (!root || !r.f.manifest || strcmp(r.f.manifest, "-") == 0) {
		rc = ls_fail(err, EINVAL, "scan: %s", !root ? "no root" : "a manifest is written to a file, not stdout");
		goto done;
	}
	if ((rc = open_out(&r, OUT_MANIFEST, r.f.manifest, true, w.log, w.log_ctx, err)) ||
	    (rc = skip_outputs(&r, root, w.skip_paths, w.n_skip, err)))
		goto done;
	w.skip_paths = r.skip_all;
	w.n_skip = r.n_skip;
	if ((rc = ls_scan(root, &w, base, &m, err)) || (rc = write_manifest(&r, m, err)) ||
	    (rc = commit_out(&r, OUT_MANIFEST, err)))
		goto done;
	if (entries)
		*entries = ls_manifest_count(m);
done:
	ls_manifest_free(m);
	run_free(&r);
	return rc;
}

/* ---- diff -------------------------------------------------------------------- */

/* The layer's sink when there is an on_step: the "write" step once the
 * first LS_STEP_WRITE_BYTES are in the temporary. */
struct tap {
	struct run *r;
	uint64_t written;
	bool stepped, cancelled;
};

static int tap_write(void *ctx, const void *buf, size_t len)
{
	struct tap *t = ctx;
	int fd = t->r->out[OUT_LAYER].fd;
	const char *p = buf;
	if (!t->stepped && t->written + len >= LS_STEP_WRITE_BYTES) {
		size_t first = (size_t)(LS_STEP_WRITE_BYTES - t->written);
		int rc = ls_write_all(fd, p, first);
		if (rc)
			return rc;
		t->written += first;
		p += first;
		len -= first;
		t->stepped = true;
		if (t->r->f.on_step(t->r->f.step_ctx, "write") != 0) {
			t->cancelled = true;
			return -ECANCELED;
		}
	}
	t->written += len;
	return ls_write_all(fd, p, len);
}

static int write_descriptor(struct run *r, const struct ls_diff_result *res, struct ls_error *err)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "{\"descriptor\": {\"mediaType\": \"%s\", \"digest\": \"%s\", \"size\": %" PRIu64
			 "}, \"diffID\": \"%s\"}\n", res->media_type, res->digest, res->size, res->diff_id);
	int rc = n > 0 && (size_t)n < sizeof(buf) ? ls_write_all(r->out[OUT_DESCRIPTOR].fd, buf, (size_t)n) : -EIO;
	if (rc)
		return ls_fail_errno(err, -rc, "%s", r->out[OUT_DESCRIPTOR].path ? r->out[OUT_DESCRIPTOR].path : "stdout");
	return 0;
}

int ls_diff_files(const char *root, const struct ls_diff_options *opts, const ls_manifest *base,
		  const struct ls_files *files, struct ls_diff_result *res, struct ls_error *err)
{
	struct ls_diff_result out = { .struct_size = sizeof(out) };
	int rc = ls_sized_check_out(res, LS_SIZE_TO(struct ls_diff_result, elapsed_ms), "diff: result", err);
	if (rc)
		return rc;
	ls_sized_out(res, &out, sizeof(out));
	struct run r;
	struct ls_diff_options d;
	struct ls_walk_options w;
	ls_manifest *m = NULL;
	rc = run_init(&r, files, err);
	if (rc == 0)
		rc = ls_sized_in(&d, sizeof(d), opts, LS_SIZE_TO(struct ls_diff_options, write_ctx), "diff: options",
				 err);
	if (rc == 0)
		rc = ls_sized_in(&w, sizeof(w), d.walk, LS_SIZE_TO(struct ls_walk_options, progress),
				 "diff: walk options", err);
	if (rc)
		goto done;
	const char *why = !root ? "no root"
			  : !r.f.layer ? "no layer file"
			  : d.write ? "a write callback and a layer file"
			  : r.f.manifest && strcmp(r.f.manifest, "-") == 0 ? "a manifest is written to a file, not stdout"
			  : r.f.descriptor && strcmp(r.f.descriptor, "-") == 0 && strcmp(r.f.layer, "-") == 0
				  ? "the layer and the descriptor cannot both go to stdout"
				  : NULL;
	if (why) {
		rc = ls_fail(err, EINVAL, "diff: %s", why);
		goto done;
	}
	/* The manifest's lock first: a concurrent run fails before any work. */
	if ((r.f.manifest && (rc = open_out(&r, OUT_MANIFEST, r.f.manifest, true, w.log, w.log_ctx, err))) ||
	    (rc = open_out(&r, OUT_LAYER, r.f.layer, false, w.log, w.log_ctx, err)) ||
	    (r.f.descriptor && (rc = open_out(&r, OUT_DESCRIPTOR, r.f.descriptor, false, w.log, w.log_ctx, err))) ||
	    (rc = skip_outputs(&r, root, w.skip_paths, w.n_skip, err)))
		goto done;
	w.skip_paths = r.skip_all;
	w.n_skip = r.n_skip;
	d.walk = &w;
	struct tap tap = { .r = &r };
	if (r.f.on_step) {
		d.write = tap_write;
		d.write_ctx = &tap;
	}
	rc = ls_diff(root, &d, base, d.write ? -1 : r.out[OUT_LAYER].fd, &out, r.f.manifest ? &m : NULL, err);
	if (rc && tap.cancelled)
		rc = ls_fail(err, ECANCELED, "cancelled at write");
	if (rc)
		goto done;
	/* Everything is written before anything is committed, so that a
	 * failure (a full disk, a bad descriptor target) leaves every previous
	 * file untouched. */
	if ((r.f.descriptor && (rc = write_descriptor(&r, &out, err))) || (m && (rc = write_manifest(&r, m, err))) ||
	    (rc = commit_out(&r, OUT_LAYER, err)) || (rc = commit_out(&r, OUT_DESCRIPTOR, err)) ||
	    (rc = commit_out(&r, OUT_MANIFEST, err)))
		goto done;
	ls_sized_out(res, &out, sizeof(out));
done:
	ls_manifest_free(m);
	run_free(&r);
	return rc;
}
