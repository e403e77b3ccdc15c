/*
 * secure.h: randomness, constant-time comparison, digests and wiping.
 *
 * All random values come from gnutls_rnd(GNUTLS_RND_KEY).  Secrets are
 * compared with sg_secure_streq, which takes the same time whatever the
 * content and never finds a missing (NULL) value equal to anything.
 */
#ifndef SG_SECURE_H
#define SG_SECURE_H

#include <stddef.h>

#define SG_SHA256_LEN 32
/* Length of sg_secure_tag's output, NUL included. */
#define SG_TAG_LEN 13

/* Fills n bytes with key-grade random bytes.  Returns 0 or -1. */
int sg_secure_random(void *out, size_t n);

/*
 * Writes nbytes random bytes as 2*nbytes lowercase hex characters plus a
 * NUL into out (which must hold 2*nbytes+1).  Returns 0 or -1.
 */
int sg_secure_random_hex(size_t nbytes, char *out);

/* Constant-time comparison of n bytes: 1 when equal. */
int sg_secure_memeq(const void *a, const void *b, size_t n);

/*
 * Compares two strings in time that depends only on their lengths.
 * Returns 1 when both are non-NULL and equal, else 0.
 */
int sg_secure_streq(const char *a, const char *b);

/* Overwrites n bytes with zeros in a way the compiler keeps. */
void sg_secure_wipe(void *p, size_t n);

/* SHA-256 of n bytes into out[SG_SHA256_LEN].  Returns 0 or -1. */
int sg_secure_sha256(const void *in, size_t n, unsigned char *out);

/*
 * HMAC-SHA-256 of n bytes under key into out[SG_SHA256_LEN].  Returns 0
 * or -1.
 */
int sg_secure_hmac(const void *key, size_t keylen, const void *in, size_t n, unsigned char *out);

/*
 * A keyed HMAC-SHA-256 fed in parts, for a key used many times: the key
 * is set up once, and each sg_secure_hmac_end puts the state back to
 * that keyed start, ready for the next message.  The handle holds
 * material derived from the key; sg_secure_hmac_free wipes and frees it.
 */
struct sg_hmac;

/* Stores a new handle keyed with key in *out.  Returns 0 or -1. */
int sg_secure_hmac_new(const void *key, size_t keylen, struct sg_hmac **out);

/* Feeds n bytes of the message.  Returns 0 or -1. */
int sg_secure_hmac_add(struct sg_hmac *h, const void *in, size_t n);

/* Writes the MAC of what was fed into out[SG_SHA256_LEN] and starts over. */
void sg_secure_hmac_end(struct sg_hmac *h, unsigned char *out);

/* Frees the handle; h may be NULL. */
void sg_secure_hmac_free(struct sg_hmac *h);

/*
 * Writes a short, non-reversible tag of a secret (the first 12 hex
 * characters of its SHA-256) into out[SG_TAG_LEN], for log lines that
 * must tell sessions apart without revealing them.
 */
void sg_secure_tag(const char *secret, char *out);

#endif
