/*
 * buf.c: the capped byte buffer.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
sg_buf_init(struct sg_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->toobig = 0;
}

static int
grow(struct sg_buf *b, size_t need)
{
	size_t ncap;
	char *p;

	if (need + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need + 1)
		ncap *= 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
sg_buf_add(struct sg_buf *b, const void *p, size_t n)
{
	if (n > b->max - b->len) {
		b->toobig = 1;
		return -1;
	}
	if (grow(b, b->len + n) != 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
sg_buf_reserve(struct sg_buf *b, size_t n)
{
	if (n > b->max - b->len) {
		b->toobig = 1;
		return -1;
	}
	return grow(b, b->len + n);
}

int
sg_buf_adds(struct sg_buf *b, const char *s)
{
	return sg_buf_add(b, s, strlen(s));
}

int
sg_buf_addf(struct sg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > b->max - b->len) {
		b->toobig = 1;
		return -1;
	}
	if (grow(b, b->len + (size_t)n) != 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

const char *
sg_buf_str(const struct sg_buf *b)
{
	return b->data != NULL ? b->data : "";
}

void
sg_buf_reset(struct sg_buf *b)
{
	b->len = 0;
	b->toobig = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

char *
sg_buf_take(struct sg_buf *b)
{
	char *p = b->data;

	if (p == NULL)
		p = strdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->toobig = 0;
	return p;
}

void
sg_buf_free(struct sg_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->toobig = 0;
}
