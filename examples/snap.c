#define _POSIX_C_SOURCE 200809L  /* open, close */
#include <fcntl.h>
#include <layersnap.h>
#include <stdio.h>
#include <unistd.h>

/* snap ROOT BASE|- LAYER NEW: the layer of what changed in ROOT since BASE
 * (all of ROOT with "-"), and ROOT's new manifest. */
int main(int argc, char **argv)
{
	if (argc != 5)
		return 2;
	struct ls_error err = { 0 };
	ls_manifest *base = NULL, *next = NULL;
	if (argv[2][0] != '-' && ls_manifest_load(argv[2], &base, &err) < 0)
		goto fail;
	struct ls_diff_options opts = { .walk = { .mode = LS_MODE_FULL }, .compress = LS_COMPRESS_GZIP };
	struct ls_diff_result res;
	int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ls_diff(argv[1], &opts, base, fd, &res, &next, &err) < 0 || close(fd) != 0 ||
	    ls_manifest_save(next, argv[4], false, &err) < 0)
		goto fail;
	printf("%llu added, %llu modified, %llu deleted: %s\n", (unsigned long long)res.added,
	       (unsigned long long)res.modified, (unsigned long long)res.deleted, res.digest);
	ls_manifest_free(base);
	ls_manifest_free(next);
	return 0;
fail:
	fprintf(stderr, "snap: %s\n", err.msg);
	ls_manifest_free(base);
	ls_manifest_free(next);
	return 2;
}
