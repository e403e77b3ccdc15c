/*
 * jose-bench: how many ID token signatures syncgate verifies per second.
 *
 * A Bearer token that a process has not seen before costs one full
 * validation (lib/jose.c): its shape, its claims and, above all, its
 * signature.  This program makes an RSA 2048 key and a P-256 key with
 * GnuTLS, signs N distinct ID tokens with each (a different sub and jti
 * in every one), builds the key set from the keys' JWKs with
 * sg_jose_keys_new, as a local_jwt issuer's "keys" would be, and then
 * validates every token once with sg_jose_validate, timing RS256 and
 * ES256 apart.  Signing is not timed.
 *
 * Usage: jose-bench [N]  (N tokens per algorithm, 2000 unless given).
 * It prints one line per algorithm and exits 1 when any token is refused
 * or a key cannot be made.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "buf.h"
#include "encode.h"
#include "error.h"
#include "jose.h"

#define ISSUER "https://issuer.bench.invalid"
#define CLIENT_ID "syncgate-bench"
#define TOKENS_DEFAULT 2000
#define TOKENS_MAX 1000000
/* Largest token this program makes; its claims are short. */
#define TOKEN_BUF 2048
/* Largest JWK number in base64url (an RSA 2048 modulus is 342 characters). */
#define NUMBER_BUF 1024

/* A signing key and what the key set knows of it. */
struct key {
	const char *alg; /* "RS256" or "ES256" */
	const char *kid;
	gnutls_privkey_t priv;
	json_t *jwk;   /* owned */
	char **tokens; /* owned: N signed tokens */
};

/* Adds the base64url of d, cut or padded with leading zeros to size bytes
 * (0: as it is), as member name of jwk.  Returns 0 or -1. */
static int
jwk_number(json_t *jwk, const char *name, const gnutls_datum_t *d, size_t size)
{
	unsigned char tmp[NUMBER_BUF];
	const unsigned char *p = d->data;
	size_t n = d->size;
	struct sg_buf b;
	int rc = -1;

	sg_buf_init(&b, NUMBER_BUF);
	while (size > 0 && n > size && *p == 0) {
		p++;
		n--;
	}
	if (size == 0)
		size = n;
	if (n > size || size > sizeof(tmp))
		goto out;
	memset(tmp, 0, size - n);
	memcpy(tmp + size - n, p, n);
	if (sg_base64url_encode(tmp, size, &b) != 0 ||
		json_object_set_new(jwk, name, json_string(sg_buf_str(&b))) != 0)
		goto out;
	rc = 0;
out:
	sg_buf_free(&b);
	return rc;
}

/* Generates k's key (RSA 2048 for RS256, P-256 for ES256) and its JWK.
 * Returns 0 or -1. */
static int
make_key(struct key *k)
{
	gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
	gnutls_pubkey_t pub = NULL;
	gnutls_ecc_curve_t curve;
	int rsa = strcmp(k->alg, "RS256") == 0, rc = -1;

	if (gnutls_privkey_init(&k->priv) < 0 || gnutls_pubkey_init(&pub) < 0)
		goto out;
	if (gnutls_privkey_generate(k->priv, rsa ? GNUTLS_PK_RSA : GNUTLS_PK_ECDSA,
		    rsa ? 2048 : GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
		gnutls_pubkey_import_privkey(pub, k->priv, 0, 0) < 0)
		goto out;
	k->jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", rsa ? "RSA" : "EC", "kid", k->kid, "use",
		"sig", "alg", k->alg);
	if (k->jwk == NULL)
		goto out;
	if (rsa) {
		if (gnutls_pubkey_export_rsa_raw2(pub, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ) < 0 ||
			jwk_number(k->jwk, "n", &a, 0) != 0 || jwk_number(k->jwk, "e", &b, 0) != 0)
			goto out;
	} else if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &a, &b, GNUTLS_EXPORT_FLAG_NO_LZ) <
			0 ||
		json_object_set_new(k->jwk, "crv", json_string("P-256")) != 0 ||
		jwk_number(k->jwk, "x", &a, 32) != 0 || jwk_number(k->jwk, "y", &b, 32) != 0)
		goto out;
	rc = 0;
out:
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return rc;
}

/* Appends the JWS signature of the tok->len bytes of tok by k, base64url.
 * ES256 wants r || s of 32 bytes each where GnuTLS gives DER.  Returns 0
 * or -1. */
static int
add_signature(const struct key *k, struct sg_buf *tok)
{
	gnutls_datum_t data = {(unsigned char *)tok->data, (unsigned)tok->len};
	gnutls_datum_t sig = {NULL, 0}, r = {NULL, 0}, s = {NULL, 0};
	unsigned char raw[64];
	const gnutls_datum_t *part;
	const unsigned char *p;
	size_t n;
	int rsa = strcmp(k->alg, "RS256") == 0, i, rc = -1;

	if (gnutls_privkey_sign_data2(k->priv,
		    rsa ? GNUTLS_SIGN_RSA_SHA256 : GNUTLS_SIGN_ECDSA_SHA256, 0, &data, &sig) < 0 ||
		sg_buf_adds(tok, ".") != 0)
		goto out;
	if (rsa) {
		rc = sg_base64url_encode(sig.data, sig.size, tok);
		goto out;
	}
	if (gnutls_decode_rs_value(&sig, &r, &s) < 0)
		goto out;
	memset(raw, 0, sizeof(raw));
	for (i = 0; i < 2; i++) {
		part = i == 0 ? &r : &s;
		p = part->data;
		n = part->size;
		while (n > 32 && *p == 0) {
			p++;
			n--;
		}
		if (n > 32)
			goto out;
		memcpy(raw + 32 * i + 32 - n, p, n);
	}
	rc = sg_base64url_encode(raw, sizeof(raw), tok);
out:
	gnutls_free(sig.data);
	gnutls_free(r.data);
	gnutls_free(s.data);
	return rc;
}

/* Signs n tokens with k into k->tokens, token i for subject "user-<alg>-<i>".
 * Returns 0 or -1. */
static int
sign_tokens(struct key *k, size_t n, time_t now)
{
	json_t *header = NULL, *claims = NULL;
	char *htext = NULL, *ctext = NULL;
	char jti[32];
	struct sg_buf tok;
	size_t i;
	int rc = -1;

	sg_buf_init(&tok, TOKEN_BUF);
	k->tokens = calloc(n, sizeof(*k->tokens));
	header = json_pack("{s:s, s:s, s:s}", "alg", k->alg, "typ", "JWT", "kid", k->kid);
	if (k->tokens == NULL || header == NULL ||
		(htext = json_dumps(header, JSON_COMPACT)) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		if (snprintf(jti, sizeof(jti), "%s-%zu", k->alg, i) >= (int)sizeof(jti))
			goto out;
		claims = json_pack("{s:s, s:s, s:s+, s:s, s:I, s:I}", "iss", ISSUER, "aud",
			CLIENT_ID, "sub", "user-", jti, "jti", jti, "iat", (json_int_t)now, "exp",
			(json_int_t)now + 3600);
		if (claims == NULL || (ctext = json_dumps(claims, JSON_COMPACT)) == NULL)
			goto out;
		sg_buf_reset(&tok);
		if (sg_base64url_encode(htext, strlen(htext), &tok) != 0 ||
			sg_buf_adds(&tok, ".") != 0 ||
			sg_base64url_encode(ctext, strlen(ctext), &tok) != 0 ||
			add_signature(k, &tok) != 0 || (k->tokens[i] = sg_buf_take(&tok)) == NULL)
			goto out;
		free(ctext);
		ctext = NULL;
		json_decref(claims);
		claims = NULL;
	}
	rc = 0;
out:
	free(htext);
	free(ctext);
	json_decref(header);
	json_decref(claims);
	sg_buf_free(&tok);
	return rc;
}

static double
seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Validates every token of k once and prints the rate.  Returns 0, or -1
 * when a token is refused. */
static int
measure(const struct key *k, size_t n, const struct sg_jose_keys *ks,
	const struct sg_jose_rules *rules)
{
	struct sg_error err;
	json_t *claims = NULL;
	double t0, c0, wall, cpu;
	size_t i;

	t0 = seconds(CLOCK_MONOTONIC);
	c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	for (i = 0; i < n; i++) {
		sg_error_clear(&err);
		if (sg_jose_validate(k->tokens[i], strlen(k->tokens[i]), ks, rules, &claims,
			    &err) != SG_JOSE_OK) {
			fprintf(stderr, "jose-bench: %s token %zu refused: %s\n", k->alg, i,
				err.reason);
			return -1;
		}
		json_decref(claims);
		claims = NULL;
	}
	wall = seconds(CLOCK_MONOTONIC) - t0;
	cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("%s: %zu verifications in %.3f s = %.0f/s (mean %.1f us per validation, %.1f us "
	       "of CPU)\n",
		k->alg, n, wall, (double)n / wall, wall * 1e6 / (double)n, cpu * 1e6 / (double)n);
	return 0;
}

int
main(int argc, char **argv)
{
	struct key keys[2] = {{"RS256", "bench-rsa", NULL, NULL, NULL},
		{"ES256", "bench-ec", NULL, NULL, NULL}};
	struct sg_jose_keys *ks = NULL;
	struct sg_jose_rules rules;
	struct sg_error err;
	json_t *jwks = NULL;
	time_t now = time(NULL);
	size_t n = TOKENS_DEFAULT, i, j;
	char *end;
	long v;
	int rc = 1;

	if (argc > 2)
		goto usage;
	if (argc == 2) {
		errno = 0;
		v = strtol(argv[1], &end, 10);
		if (errno != 0 || end == argv[1] || *end != '\0' || v < 1 || v > TOKENS_MAX)
			goto usage;
		n = (size_t)v;
	}
	jwks = json_array();
	if (jwks == NULL)
		goto out;
	for (i = 0; i < 2; i++) {
		if (make_key(&keys[i]) != 0 || sign_tokens(&keys[i], n, now) != 0 ||
			json_array_append(jwks, keys[i].jwk) != 0) {
			fprintf(stderr, "jose-bench: cannot make the %s key or tokens\n",
				keys[i].alg);
			goto out;
		}
	}
	sg_error_clear(&err);
	if (sg_jose_keys_new(jwks, &ks, &err) != 0 || sg_jose_keys_count(ks) != 2) {
		fprintf(stderr, "jose-bench: the key set does not hold both keys\n");
		goto out;
	}
	memset(&rules, 0, sizeof(rules));
	rules.issuer = ISSUER;
	rules.client_id = CLIENT_ID;
	rules.algs = SG_ALG_RS256 | SG_ALG_ES256;
	rules.now = now;
	for (i = 0; i < 2; i++)
		if (measure(&keys[i], n, ks, &rules) != 0)
			goto out;
	rc = 0;
out:
	for (i = 0; i < 2; i++) {
		if (keys[i].tokens != NULL)
			for (j = 0; j < n; j++)
				free(keys[i].tokens[j]);
		free(keys[i].tokens);
		json_decref(keys[i].jwk);
		gnutls_privkey_deinit(keys[i].priv);
	}
	sg_jose_keys_free(ks);
	json_decref(jwks);
	return rc;
usage:
	fprintf(stderr, "usage: jose-bench [N]  (1 <= N <= %d tokens per algorithm)\n", TOKENS_MAX);
	return 2;
}
