/*
 * buf.h: a growable byte buffer with a hard size cap.
 *
 * Every piece of outside input (request bodies, provider responses,
 * store values) is collected in a struct sg_buf whose cap is the limit of
 * SPEC section 8, so an oversized input is refused rather than grown into.
 * The data is always NUL-terminated (the terminator is not counted in len
 * and not counted against max).
 */
#ifndef SG_BUF_H
#define SG_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct sg_buf {
	char *data; /* owned; NULL until the first add */
	size_t len; /* bytes used, not counting the terminator */
	size_t cap; /* bytes allocated */
	size_t max; /* largest len allowed */
	int toobig; /* set once an add was refused for the cap */
};

/* Initializes an empty buffer that may hold at most max bytes. */
void sg_buf_init(struct sg_buf *b, size_t max);

/*
 * Appends n bytes.  Returns 0, or -1 when the cap would be passed (toobig
 * is then set and the buffer keeps its old content) or memory ran out.
 */
int sg_buf_add(struct sg_buf *b, const void *p, size_t n);

/*
 * Makes room for n more bytes, so that adds up to that size do not
 * allocate.  Returns 0, or -1 as sg_buf_add would for n bytes.
 */
int sg_buf_reserve(struct sg_buf *b, size_t n);

/* Appends a NUL-terminated string; as sg_buf_add. */
int sg_buf_adds(struct sg_buf *b, const char *s);

/* Appends printf-style text; as sg_buf_add. */
int sg_buf_addf(struct sg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the content as a string: never NULL ("" when empty), borrowed. */
const char *sg_buf_str(const struct sg_buf *b);

/* Empties the buffer, keeping its memory and cap. */
void sg_buf_reset(struct sg_buf *b);

/*
 * Takes ownership of the content: returns a NUL-terminated malloc'd string
 * (never NULL unless memory ran out) that the caller frees; the buffer is
 * left empty and may be reused.
 */
char *sg_buf_take(struct sg_buf *b);

/* Frees the content; b may be NULL. The buffer may be reused afterwards. */
void sg_buf_free(struct sg_buf *b);

#endif
