/*
 * error.h: the error detail every lib/ layer fills in.
 *
 * A function that can fail returns an int (0 on success, -1 on failure,
 * or one of the SG_* codes of the layer) and, on failure, writes an HTTP
 * status and a one-line reason into a caller-owned struct sg_error.  The
 * reason becomes the JSON "reason" of the response or the message a
 * program prints before it exits, so it must never hold a secret.
 */
#ifndef SG_ERROR_H
#define SG_ERROR_H

#include <stddef.h>

#define SG_ERROR_REASON_MAX 512

struct sg_error {
	int status;                       /* HTTP status; 0 when unset */
	char reason[SG_ERROR_REASON_MAX]; /* NUL-terminated, one line */
};

/* Clears err (status 0, empty reason).  err may be NULL. */
void sg_error_clear(struct sg_error *err);

/*
 * Sets status and a printf-style reason, cut to fit.  Newlines and other
 * control characters in the result are replaced by spaces so the reason
 * stays one line.  Returns -1 so that callers can write
 * "return sg_error_set(err, 400, ...)".  err may be NULL.
 */
int sg_error_set(struct sg_error *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
