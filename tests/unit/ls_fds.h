/*
 * The unit tests' count of this process's open descriptors, for checks that
 * a call leaves none open.
 */
#ifndef LS_TEST_FDS_H
#define LS_TEST_FDS_H

#include <dirent.h>

/* Descriptors open now, the one listing them included (the same for every
 * call, so counts compare), or -1 when /proc/self/fd cannot be read. */
static inline int ls_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

#endif
