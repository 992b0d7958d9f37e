#define _POSIX_C_SOURCE 200809L
#include <layersnap.h>
#include <errno.h>
#include <stdio.h>

/* The layer sink: here a file, as it could be a registry upload. */
static int put(void *ctx, const void *buf, size_t len)
{
	return fwrite(buf, 1, len, ctx) == len ? 0 : -EIO;
}

/* Each change as the layer takes it: "A path", "M path", "D path". */
static int show(void *ctx, enum ls_change change, const char *path, size_t len)
{
	(void)ctx;
	printf("%c %.*s\n", (char)change, (int)len, path);
	return 0;
}

/* snap ROOT BASE|- LAYER NEW: streams the layer of what changed in ROOT
 * since BASE (all of ROOT with "-") into LAYER, lists the changes, and saves
 * ROOT's new manifest as NEW. */
int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	struct ls_error err = { 0 };
	ls_manifest *base = NULL, *next = NULL;
	FILE *layer = NULL;
	if (argv[2][0] != '-' && ls_manifest_load(argv[2], &base, &err) < 0)
		goto fail;
	if (!(layer = fopen(argv[3], "wb"))) {
		perror(argv[3]);
		goto fail;
	}
	struct ls_walk_options walk = LS_WALK_OPTIONS_INIT;  /* full mode */
	struct ls_diff_options opts = LS_DIFF_OPTIONS_INIT;
	opts.walk = &walk;
	opts.compress = LS_COMPRESS_GZIP;
	opts.write = put;
	opts.write_ctx = layer;
	opts.on_change = show;
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	if (ls_diff(argv[1], &opts, base, -1, &res, &next, &err) < 0)
		goto fail;
	if (fclose(layer) != 0) {
		layer = NULL;
		perror(argv[3]);
		goto fail;
	}
	layer = NULL;
	if (ls_manifest_save(next, argv[4], false, &err) < 0)
		goto fail;
	printf("%llu added, %llu modified, %llu deleted: %s\n", (unsigned long long)res.added,
	       (unsigned long long)res.modified, (unsigned long long)res.deleted, res.digest);
	ls_manifest_free(base);
	ls_manifest_free(next);
	return 0;
fail:
	if (err.msg[0])
		fprintf(stderr, "snap: %s\n", err.msg);
	if (layer)
		fclose(layer);
	ls_manifest_free(base);
	ls_manifest_free(next);
	return 2;
}
