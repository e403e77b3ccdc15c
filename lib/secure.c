/*
 * secure.c: the few primitives every security decision rests on.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "encode.h"
#include "secure.h"

int
sg_secure_random(void *out, size_t n)
{
	return gnutls_rnd(GNUTLS_RND_KEY, out, n) == 0 ? 0 : -1;
}

int
sg_secure_random_hex(size_t nbytes, char *out)
{
	unsigned char raw[64];

	if (nbytes > sizeof(raw) || sg_secure_random(raw, nbytes) != 0)
		return -1;
	sg_hex_encode(raw, nbytes, out);
	sg_secure_wipe(raw, sizeof(raw));
	return 0;
}

int
sg_secure_memeq(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

int
sg_secure_streq(const char *a, const char *b)
{
	size_t la, lb;

	if (a == NULL || b == NULL)
		return 0;
	la = strlen(a);
	lb = strlen(b);
	/* Compare against itself on a length mismatch so the time is the same. */
	if (la != lb)
		return sg_secure_memeq(a, a, la) && 0;
	return sg_secure_memeq(a, b, la);
}

void
sg_secure_wipe(void *p, size_t n)
{
	if (p == NULL || n == 0)
		return;
	memset(p, 0, n);
	/* The compiler must assume the zeros are read: it keeps the memset. */
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

int
sg_secure_sha256(const void *in, size_t n, unsigned char *out)
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, in, n, out) == 0 ? 0 : -1;
}

int
sg_secure_hmac(const void *key, size_t keylen, const void *in, size_t n, unsigned char *out)
{
	return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, in, n, out) == 0 ? 0 : -1;
}

struct sg_hmac {
	gnutls_hmac_hd_t hd;
};

int
sg_secure_hmac_new(const void *key, size_t keylen, struct sg_hmac **out)
{
	struct sg_hmac *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (h == NULL)
		return -1;
	if (gnutls_hmac_init(&h->hd, GNUTLS_MAC_SHA256, key, keylen) != 0) {
		free(h);
		return -1;
	}
	*out = h;
	return 0;
}

int
sg_secure_hmac_add(struct sg_hmac *h, const void *in, size_t n)
{
	return gnutls_hmac(h->hd, in, n) == 0 ? 0 : -1;
}

void
sg_secure_hmac_end(struct sg_hmac *h, unsigned char *out)
{
	/* GnuTLS resets the state to the keyed start after the output. */
	gnutls_hmac_output(h->hd, out);
}

void
sg_secure_hmac_free(struct sg_hmac *h)
{
	unsigned char scratch[SG_SHA256_LEN];

	if (h == NULL)
		return;
	/* Drop whatever part of a message was fed, then let GnuTLS wipe the key. */
	gnutls_hmac_output(h->hd, scratch);
	sg_secure_wipe(scratch, sizeof(scratch));
	gnutls_hmac_deinit(h->hd, NULL);
	free(h);
}

void
sg_secure_tag(const char *secret, char *out)
{
	unsigned char d[SG_SHA256_LEN];

	if (secret == NULL || sg_secure_sha256(secret, strlen(secret), d) != 0) {
		memcpy(out, "-", 2);
		return;
	}
	sg_hex_encode(d, 6, out);
}
