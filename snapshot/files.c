/* Scans and diffs into files, committed as the command line does: see files.h. */
#include "files.h"
#include "diff.h"
#include "error.h"
#include "manifest.h"
#include "oci.h"
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
#include <time.h>

/* The outputs; those of an OCI layout (ls_files.oci) come after the first
 * three, so that only a caller built with a header that has it sees their
 * cleanup slots (layersnap.h: struct ls_cleanup). */
enum {
	OUT_LAYER, OUT_DESCRIPTOR, OUT_MANIFEST,
	OUT_BLOB, OUT_CONFIG, OUT_IMAGE, OUT_LAYOUT, OUT_INDEX, OUT_COPY,
	N_OUT
};
_Static_assert(2 * N_OUT <= LS_CLEANUP_SLOTS, "a cleanup slot for each output's temporary and lock");
_Static_assert(2 * OUT_BLOB <= 6, "the first version's outputs in its 6 cleanup slots");

static const char *const step_of[N_OUT] = {
	[OUT_LAYER] = "layer", [OUT_DESCRIPTOR] = "descriptor", [OUT_MANIFEST] = "manifest",
	[OUT_BLOB] = "blob", [OUT_INDEX] = "index",
};

/* The blobs' targets in blobs/sha256, until the commit names each by its
 * digest (and the next run removes their stale temporaries). */
static const char *const blob_target[N_OUT] = {
	[OUT_BLOB] = "layer", [OUT_CONFIG] = "config", [OUT_IMAGE] = "manifest", [OUT_COPY] = "copy",
};

/* Each output's name, temporary and lock inside ROOT, and the layout. */
#define MAX_SKIP (3 * N_OUT + 1)

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
	struct ls_cleanup_slot *sl = &c->slot[slot];
	sl->set = 0;
	if (on && name && strlen(name) < sizeof(sl->path)) {
		strcpy(sl->path, name);
		sl->set = 1;
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

/* Commits output i: to its target, or with digest (a blob) under the
 * digest's hex in its directory, an existing blob of that name kept. */
static int commit_to(struct run *r, int i, const char *digest, struct ls_error *err)
{
	if (r->out[i].fd < 0)
		return 0;  /* not asked for */
	if (step_of[i] && r->f.on_step && r->f.on_step(r->f.step_ctx, step_of[i]) != 0)
		return ls_fail(err, ECANCELED, "cancelled at %s", step_of[i]);
	sigset_t old;
	block_cleanup_signals(&old);
	int rc = digest ? ls_output_commit_as(&r->out[i], digest + 7, NULL, r->f.fsync, err)
			: ls_output_commit(&r->out[i], r->f.fsync, err);
	track(r, i);
	restore_signals(&old);
	return rc;
}

static int commit_out(struct run *r, int i, struct ls_error *err)
{
	return commit_to(r, i, NULL, err);
}

/* Drops output i (not committed), e.g. the blob of an empty layer. */
static void abort_out(struct run *r, int i)
{
	sigset_t old;
	block_cleanup_signals(&old);
	ls_output_abort(&r->out[i]);
	track(r, i);
	restore_signals(&old);
}

static void run_free(struct run *r)
{
	for (int i = 0; i < N_OUT; i++)
		abort_out(r, i);
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
	return ls_sized_in(&r->f, sizeof(r->f), LS_SIZE_TO(struct ls_files, base), files, LS_SIZE_TO(struct ls_files, step_ctx),
			   "files", err);
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

/* The walk's skip list: the caller's, and every name of ours inside ROOT
 * (with dir, an OCI layout, all of it).  The O_TMPFILE's tmp_path is the
 * name it gets at commit, after the walk; walks skip the temporaries' name
 * pattern besides. */
static int skip_outputs(struct run *r, const char *root, const char *dir, const char *const *caller,
			size_t n_caller, struct ls_error *err)
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
	char *rel = dir ? relative_inside(root_real, dir) : NULL;
	if (rel)
		r->own[r->n_own++] = rel;
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

/* The manifest output: m, or a diff's *nm (written as a stream) when m is
 * NULL. */
static int write_manifest(struct run *r, const ls_manifest *m, const struct ls_diff_manifest *nm,
			  struct ls_error *err)
{
	struct ls_error e = { 0 };
	int fd = r->out[OUT_MANIFEST].fd;
	int rc = m ? ls_manifest_write_fd(m, fd, &e) : ls_diff_manifest_write_fd(nm, fd, &e);
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
		rc = ls_walk_options_in(&w, opts, "scan: options", err);
	if (rc)
		goto done;
	if (!root || !r.f.manifest || strcmp(r.f.manifest, "-") == 0 || r.f.base) {
		rc = ls_fail(err, EINVAL, "scan: %s", !root ? "no root"
				 : r.f.base ? "files->base is for a diff (a scan's base is an argument)"
				 : "a manifest is written to a file, not stdout");
		goto done;
	}
	if ((rc = open_out(&r, OUT_MANIFEST, r.f.manifest, true, w.log, w.log_ctx, err)) ||
	    (rc = skip_outputs(&r, root, NULL, w.skip_paths, w.n_skip, err)))
		goto done;
	w.skip_paths = r.skip_all;
	w.n_skip = r.n_skip;
	if ((rc = ls_scan(root, &w, base, &m, err)) || (rc = write_manifest(&r, m, NULL, err)) ||
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

/* The layer's sink when there is an on_step (the "write" step once the
 * first LS_STEP_WRITE_BYTES are in the temporary) or two copies of it (an
 * OCI layout's blob and a layer file). */
struct tap {
	struct run *r;
	uint64_t written;
	bool stepped, cancelled;
};

static int tap_put(struct tap *t, const char *p, size_t len)
{
	static const int outs[] = { OUT_BLOB, OUT_LAYER };
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		int fd = t->r->out[outs[i]].fd, rc;
		if (fd >= 0 && (rc = ls_write_all(fd, p, len)))
			return rc;
	}
	return 0;
}

static int tap_write(void *ctx, const void *buf, size_t len)
{
	struct tap *t = ctx;
	const char *p = buf;
	if (!t->r->f.on_step)
		return tap_put(t, p, len);
	if (!t->stepped && t->written + len >= LS_STEP_WRITE_BYTES) {
		size_t first = (size_t)(LS_STEP_WRITE_BYTES - t->written);
		int rc = tap_put(t, p, first);
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
	return tap_put(t, p, len);
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

/* ---- an OCI image layout ------------------------------------------------------ */

/* Opens blob output i at its target in the layout's blobs/sha256: there,
 * not through a symlink of that name, as it is committed beside it. */
static int open_blob(struct run *r, int i, const struct ls_oci *oci, ls_log_fn *log, void *log_ctx,
		     struct ls_error *err)
{
	char *path;
	if (asprintf(&path, "%s/%s", oci->blobs, blob_target[i]) < 0)
		return ls_fail(err, ENOMEM, "%s: out of memory", oci->blobs);
	int rc = open_out(r, i, path, false, log, log_ctx, err);
	if (rc == 0 && (!r->out[i].atomic || !r->out[i].path || strcmp(r->out[i].path, path) != 0))
		rc = ls_fail(err, EINVAL, "%s: not a regular file or absent: refusing to write a blob through it", path);
	free(path);
	return rc;
}

static int write_out(struct run *r, int i, const char *buf, size_t len, struct ls_error *err)
{
	int rc = ls_write_all(r->out[i].fd, buf, len);
	return rc ? ls_fail_errno(err, -rc, "%s", r->out[i].path) : 0;
}

/* A document of the image into blob output i, unless the layout has it
 * (opened all the same: the open removes dead runs' temporaries). */
static int write_doc(struct run *r, int i, const struct ls_oci *oci, const char *digest, const char *buf,
		     size_t len, const struct ls_walk_options *w, struct ls_error *err)
{
	int rc = open_blob(r, i, oci, w->log, w->log_ctx, err);
	if (rc == 0 && ls_oci_has_blob(oci, digest))
		abort_out(r, i);
	else if (rc == 0)
		rc = write_out(r, i, buf, len, err);
	return rc;
}

/* Everything of the image written once the layer is: config, image
 * manifest, oci-layout when missing, index.json (whose output, locked, is
 * open since before the layout was read). */
static int write_image(struct run *r, struct ls_oci *oci, const struct ls_diff_options *d,
		       const struct ls_diff_result *res, bool empty, const struct ls_walk_options *w,
		       struct ls_error *err)
{
	char created[40];
	ls_oci_time(d->have_epoch ? d->source_date_epoch : (int64_t)time(NULL), created);
	struct ls_oci_step step = {
		.media_type = res->media_type, .digest = res->digest, .size = res->size,
		.diff_id = res->diff_id, .empty = empty, .created = created, .created_by = oci->o.history,
	};
	int rc = ls_oci_finish(oci, &step, err);
	if (rc || (rc = write_doc(r, OUT_CONFIG, oci, oci->config_digest, oci->config_json, oci->config_len, w, err)) ||
	    (rc = write_doc(r, OUT_IMAGE, oci, oci->manifest_digest, oci->manifest_json, oci->manifest_len, w, err)))
		return rc;
	if (oci->layout_json && ((rc = open_out(r, OUT_LAYOUT, oci->layout_path, false, w->log, w->log_ctx, err)) ||
				 (rc = write_out(r, OUT_LAYOUT, oci->layout_json, oci->layout_len, err))))
		return rc;
	return write_out(r, OUT_INDEX, oci->index_json, oci->index_len, err);
}

/* The base image's blobs that this layout lacks, each committed as it is
 * copied: content-addressed, nothing refers to them before index.json. */
static int copy_blobs(struct run *r, const struct ls_oci *oci, const struct ls_walk_options *w, struct ls_error *err)
{
	for (size_t i = 0; i < oci->n_copy; i++) {
		int rc = open_blob(r, OUT_COPY, oci, w->log, w->log_ctx, err);
		if (rc || (rc = ls_oci_copy_blob(oci, i, r->out[OUT_COPY].fd, err)) ||
		    (rc = commit_to(r, OUT_COPY, oci->copy[i].digest, err)))
			return rc;
	}
	return 0;
}

/* ---- diff -------------------------------------------------------------------- */

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
	struct ls_oci oci;
	memset(&oci, 0, sizeof(oci));
	struct ls_diff_manifest nm = { 0 };
	struct ls_diff_base pending = { 0 };
	rc = run_init(&r, files, err);
	if (rc == 0)
		rc = ls_diff_options_in(&d, opts, "diff: options", err);
	if (rc == 0)
		rc = ls_walk_options_in(&w, d.walk, "diff: walk options", err);
	if (rc)
		goto done;
	const bool with_oci = r.f.oci != NULL;
	const char *why = !root ? "no root"
			  : !r.f.layer && !with_oci ? "no layer file"
			  : d.write ? "a write callback and a layer file"
			  : r.f.manifest && strcmp(r.f.manifest, "-") == 0 ? "a manifest is written to a file, not stdout"
			  : r.f.descriptor && strcmp(r.f.descriptor, "-") == 0 && r.f.layer && strcmp(r.f.layer, "-") == 0
				  ? "the layer and the descriptor cannot both go to stdout"
			  : r.f.base && base ? "a base manifest and a base manifest file"
				  : NULL;
	if (why) {
		rc = ls_fail(err, EINVAL, "diff: %s", why);
		goto done;
	}
	/* The base loads meanwhile: the outputs set up here, an upper
	 * directory's listing in ls_diff_parts. */
	pending.path = r.f.base;
	if (r.f.base && ls_manifest_load_start(&pending.loading, r.f.base)) {
		rc = ls_fail(err, ENOMEM, "diff: out of memory");
		goto done;
	}
	/* The manifest's lock first: a concurrent run fails before any work;
	 * then index.json's, before the layout is read. */
	if ((r.f.manifest && (rc = open_out(&r, OUT_MANIFEST, r.f.manifest, true, w.log, w.log_ctx, err))) ||
	    (with_oci && ((rc = ls_oci_prepare(&oci, r.f.oci, root, err)) ||
			  (rc = open_out(&r, OUT_INDEX, oci.index_path, true, w.log, w.log_ctx, err)) ||
			  (rc = ls_oci_load(&oci, err)) || (rc = open_blob(&r, OUT_BLOB, &oci, w.log, w.log_ctx, err)))) ||
	    (r.f.layer && (rc = open_out(&r, OUT_LAYER, r.f.layer, false, w.log, w.log_ctx, err))) ||
	    (r.f.descriptor && (rc = open_out(&r, OUT_DESCRIPTOR, r.f.descriptor, false, w.log, w.log_ctx, err))) ||
	    (rc = skip_outputs(&r, root, with_oci ? oci.dir : NULL, w.skip_paths, w.n_skip, err)))
		goto done;
	w.skip_paths = r.skip_all;
	w.n_skip = r.n_skip;
	d.walk = &w;
	struct tap tap = { .r = &r };
	if (r.f.on_step || (with_oci && r.f.layer)) {
		d.write = tap_write;
		d.write_ctx = &tap;
	}
	rc = ls_diff_parts(root, &d, base, r.f.base ? &pending : NULL,
			   d.write ? -1 : r.out[with_oci ? OUT_BLOB : OUT_LAYER].fd, &out, r.f.manifest ? &nm : NULL, err);
	if (rc && tap.cancelled)
		rc = ls_fail(err, ECANCELED, "cancelled at write");
	if (rc)
		goto done;
	/* An empty diff adds no blob unless asked: history says empty_layer. */
	bool empty = with_oci && !oci.o.keep_empty && out.added + out.modified + out.deleted == 0;
	/* Everything is written before anything is committed, so that a
	 * failure (a full disk, a bad descriptor target) leaves every previous
	 * file untouched; in an OCI layout, blobs (content-addressed, unused
	 * until index.json names them) come first, index.json last of it. */
	if ((with_oci && (rc = write_image(&r, &oci, &d, &out, empty, &w, err))) ||
	    (r.f.descriptor && (rc = write_descriptor(&r, &out, err))) || (r.f.manifest && (rc = write_manifest(&r, NULL, &nm, err))))
		goto done;
	if (empty)
		abort_out(&r, OUT_BLOB);
	if ((with_oci && (rc = copy_blobs(&r, &oci, &w, err))) || (rc = commit_to(&r, OUT_BLOB, out.digest, err)) ||
	    (rc = commit_out(&r, OUT_LAYER, err)) || (rc = commit_to(&r, OUT_CONFIG, oci.config_digest, err)) ||
	    (rc = commit_to(&r, OUT_IMAGE, oci.manifest_digest, err)) || (rc = commit_out(&r, OUT_LAYOUT, err)) ||
	    (rc = commit_out(&r, OUT_INDEX, err)) || (rc = commit_out(&r, OUT_DESCRIPTOR, err)) ||
	    (rc = commit_out(&r, OUT_MANIFEST, err)))
		goto done;
	if (with_oci)
		memcpy(out.image_digest, oci.manifest_digest, sizeof(out.image_digest));
	ls_sized_out(res, &out, sizeof(out));
done:
	if (pending.loading) {
		/* Not taken: a failure before it was needed. */
		ls_manifest *m = NULL;
		ls_manifest_load_finish(pending.loading, &m, NULL);
		ls_manifest_free(m);
	}
	ls_diff_manifest_free(&nm);
	ls_manifest_free(pending.m);  /* after nm, which borrowed it */
	ls_oci_free(&oci);
	run_free(&r);
	return rc;
}
