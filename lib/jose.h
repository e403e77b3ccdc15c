/*
 * jose.h: JSON Web Keys and the validation of ID tokens (SPEC section 7).
 *
 * One validation path serves the code-flow callback, refresh, Bearer
 * tokens and local_jwt issuers.  Every rule of SPEC section 7 is checked
 * here: the token's shape (at most SG_JOSE_TOKEN_MAX bytes, three
 * base64url segments without padding, JSON objects without duplicate
 * members), the algorithm (from the caller's allowed set only; never
 * "none", never HS*; a "crit" header refused; jku/x5u/jwk/x5c ignored and
 * never fetched), the key (by exact kid, or by type and algorithm when
 * the token has no kid; kty, alg and use must fit), the signature, and
 * the claims (iss, aud, azp, exp, iat, nbf, sub, nonce, typ).
 *
 * JWKs become GnuTLS public keys (RSA of at least 2048 bits; EC on P-256,
 * P-384, P-521) when a key set is built, and signatures are verified with
 * GnuTLS under the algorithm pinned from the allowed set and the key's
 * type, never under one the token alone chose.
 */
#ifndef SG_JOSE_H
#define SG_JOSE_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "error.h"

/* Largest ID token accepted (SPEC section 8). */
#define SG_JOSE_TOKEN_MAX (16 * 1024)

/* Allowed clock skew for exp, iat and nbf, in seconds. */
#define SG_JOSE_SKEW 60

/* Algorithms, as bits of an allowed set. */
#define SG_ALG_RS256 0x01u
#define SG_ALG_RS384 0x02u
#define SG_ALG_RS512 0x04u
#define SG_ALG_ES256 0x08u
#define SG_ALG_ES384 0x10u
#define SG_ALG_ES512 0x20u
#define SG_ALG_ALL 0x3fu

/* Returns the bit of an algorithm name ("RS256"...), or 0 for any other. */
unsigned sg_jose_alg_bit(const char *name);

/*
 * Returns the allowed set named by a JSON array of algorithm names
 * (discovery's id_token_signing_alg_values_supported, local_jwt's
 * algorithms), intersected with SG_ALG_ALL; unknown names are skipped.
 * A NULL or non-array value gives 0.
 */
unsigned sg_jose_alg_set(const json_t *names);

/* A set of verification keys (from a JWKS document or a JSON array of JWKs). */
struct sg_jose_keys;

/*
 * Builds a key set from a JSON array of JWKs (borrowed).  Keys that cannot
 * verify signatures are left out rather than refused: another kty, "use"
 * other than "sig", an "alg" that is not one of SG_ALG_ALL's, a curve
 * other than P-256/384/521, an RSA modulus under 2048 bits, malformed
 * numbers.
 * Returns 0 with a new set in *out (possibly holding no key; free with
 * sg_jose_keys_free), or -1 with err set (500) when memory ran out.
 */
int sg_jose_keys_new(const json_t *jwks, struct sg_jose_keys **out, struct sg_error *err);

/*
 * As sg_jose_keys_new from the text of a JWKS document ({"keys":[...]}).
 * Returns -1 with err set (502 "invalid JWKS: ...") when it is not such
 * a document.
 */
int sg_jose_keys_parse(const char *text, size_t n, struct sg_jose_keys **out, struct sg_error *err);

/* Returns the number of usable keys in ks. */
size_t sg_jose_keys_count(const struct sg_jose_keys *ks);

/* Frees ks; ks may be NULL. */
void sg_jose_keys_free(struct sg_jose_keys *ks);

/* What a token must satisfy; every string borrowed. */
struct sg_jose_rules {
	const char *issuer;    /* iss must equal it exactly */
	const char *client_id; /* aud must contain it; azp, when present, equal it */
	unsigned algs;         /* allowed algorithms (SG_ALG_*), never 0 */
	const char *nonce;     /* NULL: not checked; else the claim must equal it */
	time_t now;
};

/* Results of sg_jose_validate. */
#define SG_JOSE_OK 0
#define SG_JOSE_INVALID (-1)     /* refused; err says why (401) */
#define SG_JOSE_UNKNOWN_KEY (-2) /* well formed, but no key of ks fits its kid/alg */

/*
 * Validates token (n bytes, not NUL-terminated necessarily) against the
 * keys and rules.  On SG_JOSE_OK stores a new reference to the claims
 * object in *claims.  SG_JOSE_UNKNOWN_KEY tells the caller that fetching
 * the provider's keys again might help (key rotation); it is returned
 * only after every check that does not need the key passed.  err->reason
 * says which rule failed (for the log, never the token itself); the
 * caller answers 401 "Invalid login".
 */
int sg_jose_validate(const char *token, size_t n, const struct sg_jose_keys *ks,
	const struct sg_jose_rules *rules, json_t **claims, struct sg_error *err);

/*
 * Reads the claims of a token without verifying anything but its shape
 * (size, segments, base64url, JSON objects, no duplicate members), to
 * route a Bearer token to the provider named by its iss and aud.  Returns
 * 0 with a new reference in *claims, or -1 with err set (401).
 */
int sg_jose_peek(const char *token, size_t n, json_t **claims, struct sg_error *err);

/* Writes the PKCE S256 challenge of verifier (base64url of its SHA-256, 43
 * characters plus NUL) into out[44].  Returns 0 or -1. */
int sg_jose_pkce_challenge(const char *verifier, char *out);

#endif
