/*
 * error.c: filling in struct sg_error.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

void
sg_error_clear(struct sg_error *err)
{
	if (err == NULL)
		return;
	err->status = 0;
	err->reason[0] = '\0';
}

int
sg_error_set(struct sg_error *err, int status, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	if (err == NULL)
		return -1;
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	for (i = 0; err->reason[i] != '\0'; i++)
		if ((unsigned char)err->reason[i] < 0x20 || err->reason[i] == 0x7f)
			err->reason[i] = ' ';
	return -1;
}
