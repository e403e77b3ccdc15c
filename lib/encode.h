/*
 * encode.h: the text encodings syncgate reads and writes.
 *
 * Percent-encoding (request paths and queries, Go url.QueryEscape for
 * OIDC usernames), base64 (Basic auth), base64url (JOSE, PKCE), hex, and
 * UTF-8 validation.  Decoders are strict: any malformed input is refused
 * rather than repaired.
 */
#ifndef SG_ENCODE_H
#define SG_ENCODE_H

#include <stddef.h>

#include "buf.h"

/*
 * Percent-decodes n bytes of in into out (cleared first).  With plus_space,
 * '+' decodes to a space (query strings); otherwise it stays '+' (paths).
 * Returns -1 for a '%' not followed by two hex digits, for a decoded NUL
 * byte, or when out's cap is reached.
 */
int sg_percent_decode(const char *in, size_t n, int plus_space, struct sg_buf *out);

/*
 * Appends s escaped as Go's url.QueryEscape: [A-Za-z0-9-_.~] kept, space
 * as '+', every other byte as %XX (upper-case hex).
 */
int sg_query_escape(const char *s, struct sg_buf *out);

/*
 * Decodes standard base64 (RFC 4648 section 4, with '=' padding required
 * to a multiple of 4) into out (cleared first).  Returns -1 on any other
 * input, on non-zero trailing bits, or when out's cap is reached.
 */
int sg_base64_decode(const char *in, size_t n, struct sg_buf *out);

/* Appends n bytes as standard base64 with padding. */
int sg_base64_encode(const void *in, size_t n, struct sg_buf *out);

/*
 * Decodes base64url without padding (RFC 7515 section 2) into out (cleared
 * first).  Padding, the standard alphabet's '+' and '/', whitespace and
 * non-zero trailing bits are refused.
 */
int sg_base64url_decode(const char *in, size_t n, struct sg_buf *out);

/* Appends n bytes as base64url without padding. */
int sg_base64url_encode(const void *in, size_t n, struct sg_buf *out);

/* Writes n bytes as 2n lowercase hex characters plus a NUL into out. */
void sg_hex_encode(const void *in, size_t n, char *out);

/*
 * Returns 1 when the n bytes are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF, no NUL), else 0.
 */
int sg_utf8_valid(const char *s, size_t n);

#endif
