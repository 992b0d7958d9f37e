#include "mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ls_mountinfo_unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
		    p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

int ls_mountinfo_parse(char *line, struct ls_mountinfo *m)
{
	m->mount_point = m->fstype = m->super_options = NULL;
	char *save = NULL, *field = strtok_r(line, " \n", &save);
	for (int k = 1; field && k < 5; k++)
		field = strtok_r(NULL, " \n", &save);
	if (!field)
		return -EINVAL;
	m->mount_point = field;
	/* The options, then optional tags up to the lone "-". */
	for (char *x = strtok_r(NULL, " \n", &save); x; x = strtok_r(NULL, " \n", &save)) {
		if (strcmp(x, "-") == 0) {
			m->fstype = strtok_r(NULL, " \n", &save);
			char *source = m->fstype ? strtok_r(NULL, " \n", &save) : NULL;
			m->super_options = source ? strtok_r(NULL, " \n", &save) : NULL;
			if (!m->super_options)
				m->fstype = NULL;
			break;
		}
	}
	ls_mountinfo_unescape(m->mount_point);
	return 0;
}

int ls_mountinfo_each(int (*fn)(const struct ls_mountinfo *m, void *ctx), void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	errno = 0;
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		struct ls_mountinfo m;
		if (ls_mountinfo_parse(line, &m) == 0)
			rc = fn(&m, ctx);
		errno = 0;
	}
	if (rc == 0 && ferror(f))
		rc = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	return rc;
}
