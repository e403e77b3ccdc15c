/*
 * testutil.h: file helpers shared by the unit tests (not by lib/, which
 * has no use for them): reading a small data file, and removing a
 * temporary directory tree.
 */
#ifndef SG_TESTUTIL_H
#define SG_TESTUTIL_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

/* Reads a small file into out (cleared first).  Returns 0 or -1. */
static inline int
test_read_file(const char *path, struct sg_buf *out)
{
	char chunk[512];
	size_t n;
	FILE *fp;
	int rc = 0;

	sg_buf_reset(out);
	fp = fopen(path, "r");
	if (fp == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (sg_buf_add(out, chunk, n) != 0) {
			rc = -1;
			break;
		}
	if (ferror(fp))
		rc = -1;
	fclose(fp);
	return rc;
}

/* Removes dir and everything below it, as far as it can. */
static inline void
test_remove_tree(const char *dir)
{
	char path[8192];
	struct dirent *de;
	struct stat sb;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
			test_remove_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

#endif
