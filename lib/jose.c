/*
 * jose.c: JSON Web Keys and the validation of ID tokens (SPEC section 7).
 *
 * A token is taken apart here before anything trusts it: its size, its
 * three strict base64url segments, and its header and claims as JSON
 * objects without duplicate members.  The header's algorithm must come
 * from the caller's allowed set, and the claims must satisfy the rules,
 * before a key is looked for; only then is the signature checked, so
 * SG_JOSE_UNKNOWN_KEY (which may make the caller fetch the provider's keys
 * again) is never the answer to a token that is wrong for another reason.
 *
 * JWKs are turned into GnuTLS public keys when a key set is built, so
 * validation never parses key material, and every signature is verified
 * here with GnuTLS (gnutls_pubkey_verify_data2) under the signature
 * algorithm pinned from the allowed set and the key's type; ECDSA
 * signatures, r || s in JWS, are re-encoded as DER first.  libjwt 1.10 is
 * not used for this: its jwt_decode refuses every token whose typ header
 * is not "JWT" (such as "JOSE" or "application/jwt", which RFC 7515 and
 * RFC 7519 allow), and it lets the token's own header choose the
 * algorithm, which would have to be checked against the pinned one after
 * the fact.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "buf.h"
#include "encode.h"
#include "jose.h"
#include "secure.h"

/* Largest RSA modulus accepted in a JWK, in bytes (16384 bits). */
#define RSA_MAX_BYTES 2048
/*
 * Smallest RSA modulus accepted, in bits: shorter keys can be factored by
 * a well-funded attacker, and no provider has handed them out for years.
 */
#define RSA_MIN_BITS 2048
/* Largest RSA public exponent accepted, in bytes. */
#define RSA_EXP_MAX_BYTES 8

#define SG_ALG_RS (SG_ALG_RS256 | SG_ALG_RS384 | SG_ALG_RS512)

/* Each algorithm: its JOSE name, its bit and GnuTLS's signature algorithm. */
static const struct alg {
	const char *name;
	unsigned bit;
	gnutls_sign_algorithm_t sign;
	size_t half; /* ECDSA: bytes of r and of s in the JWS form; RSA: 0 */
} algs[] = {
	{"RS256", SG_ALG_RS256, GNUTLS_SIGN_RSA_SHA256, 0},
	{"RS384", SG_ALG_RS384, GNUTLS_SIGN_RSA_SHA384, 0},
	{"RS512", SG_ALG_RS512, GNUTLS_SIGN_RSA_SHA512, 0},
	{"ES256", SG_ALG_ES256, GNUTLS_SIGN_ECDSA_SHA256, 32},
	{"ES384", SG_ALG_ES384, GNUTLS_SIGN_ECDSA_SHA384, 48},
	{"ES512", SG_ALG_ES512, GNUTLS_SIGN_ECDSA_SHA512, 66},
};

/* The curves of EC keys: JWK name, GnuTLS curve, coordinate size, algorithm. */
static const struct curve {
	const char *crv;
	gnutls_ecc_curve_t id;
	size_t size;
	unsigned bit;
} curves[] = {
	{"P-256", GNUTLS_ECC_CURVE_SECP256R1, 32, SG_ALG_ES256},
	{"P-384", GNUTLS_ECC_CURVE_SECP384R1, 48, SG_ALG_ES384},
	{"P-521", GNUTLS_ECC_CURVE_SECP521R1, 66, SG_ALG_ES512},
};

/* One usable verification key. */
struct jkey {
	char *kid;           /* owned; NULL when the JWK has none */
	unsigned algs;       /* SG_ALG_* it may verify: its kty, curve and "alg" */
	size_t siglen;       /* bytes of its signatures: RSA's modulus, twice EC's curve */
	gnutls_pubkey_t pub; /* owned */
};

struct sg_jose_keys {
	struct jkey *keys; /* owned array of n keys */
	size_t n;
};

/* A token taken apart (parse_token); nothing in it is verified yet. */
struct parsed {
	json_t *header;        /* owned */
	json_t *claims;        /* owned */
	size_t signed_len;     /* bytes of the signing input (up to the second dot) */
	struct sg_buf sig;     /* the decoded signature */
	const struct alg *alg; /* set by check_header */
};

static const struct alg *
alg_by_name(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

unsigned
sg_jose_alg_bit(const char *name)
{
	const struct alg *a = alg_by_name(name);

	return a != NULL ? a->bit : 0;
}

unsigned
sg_jose_alg_set(const json_t *names)
{
	unsigned set = 0;
	size_t i;

	if (!json_is_array(names))
		return 0;
	for (i = 0; i < json_array_size(names); i++)
		set |= sg_jose_alg_bit(json_string_value(json_array_get(names, i)));
	return set & SG_ALG_ALL;
}

/*
 * Decodes the base64url string member name of jwk into out.  Returns 0,
 * or -1 when it is missing, not a string or not strict base64url.
 */
static int
b64_member(const json_t *jwk, const char *name, struct sg_buf *out)
{
	const json_t *v = json_object_get(jwk, name);

	if (!json_is_string(v))
		return -1;
	return sg_base64url_decode(json_string_value(v), json_string_length(v), out);
}

/*
 * Imports an RSA JWK's n and e into pub.  Returns the modulus size in
 * bytes, or 0 when the key is unusable.
 */
static size_t
import_rsa(const json_t *jwk, gnutls_pubkey_t pub)
{
	struct sg_buf n, e;
	gnutls_datum_t dn, de;
	const unsigned char *p;
	size_t len, bits;
	unsigned char top;
	size_t size = 0;

	sg_buf_init(&n, RSA_MAX_BYTES);
	sg_buf_init(&e, RSA_EXP_MAX_BYTES);
	if (b64_member(jwk, "n", &n) != 0 || b64_member(jwk, "e", &e) != 0)
		goto out;
	p = (const unsigned char *)n.data;
	len = n.len;
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	if (len == 0 || e.len == 0)
		goto out;
	bits = (len - 1) * 8;
	for (top = p[0]; top != 0; top >>= 1)
		bits++;
	if (bits < RSA_MIN_BITS)
		goto out;
	dn.data = (unsigned char *)n.data;
	dn.size = (unsigned)n.len;
	de.data = (unsigned char *)e.data;
	de.size = (unsigned)e.len;
	if (gnutls_pubkey_import_rsa_raw(pub, &dn, &de) < 0)
		goto out;
	size = len;
out:
	sg_buf_free(&n);
	sg_buf_free(&e);
	return size;
}

/*
 * Imports an EC JWK's crv, x and y into pub.  Returns the algorithm bit
 * of its curve with its coordinate size in *size, or 0 when unusable.
 */
static unsigned
import_ec(const json_t *jwk, gnutls_pubkey_t pub, size_t *size)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const struct curve *c = NULL;
	struct sg_buf x, y;
	gnutls_datum_t dx, dy;
	unsigned bit = 0;
	size_t i;

	sg_buf_init(&x, 128);
	sg_buf_init(&y, 128);
	for (i = 0; crv != NULL && i < sizeof(curves) / sizeof(curves[0]); i++)
		if (strcmp(curves[i].crv, crv) == 0)
			c = &curves[i];
	if (c == NULL)
		goto out;
	/* RFC 7518 section 6.2.1.2: the coordinates have the curve's full size. */
	if (b64_member(jwk, "x", &x) != 0 || x.len != c->size || b64_member(jwk, "y", &y) != 0 ||
		y.len != c->size)
		goto out;
	dx.data = (unsigned char *)x.data;
	dx.size = (unsigned)x.len;
	dy.data = (unsigned char *)y.data;
	dy.size = (unsigned)y.len;
	if (gnutls_pubkey_import_ecc_raw(pub, c->id, &dx, &dy) < 0)
		goto out;
	bit = c->bit;
	*size = c->size;
out:
	sg_buf_free(&x);
	sg_buf_free(&y);
	return bit;
}

static void
jkey_free(struct jkey *k)
{
	free(k->kid);
	if (k->pub != NULL)
		gnutls_pubkey_deinit(k->pub);
	memset(k, 0, sizeof(*k));
}

/*
 * Makes k from one JWK.  Returns 1 when the key is usable, 0 when it is
 * left out (k untouched), -1 when memory ran out.
 */
static int
jkey_make(const json_t *jwk, struct jkey *k)
{
	const json_t *use, *alg, *kid;
	const char *kty;
	unsigned mask = SG_ALG_ALL;
	size_t size = 0;
	struct jkey nk;
	int rc = 0;

	memset(&nk, 0, sizeof(nk));
	if (!json_is_object(jwk))
		return 0;
	kty = json_string_value(json_object_get(jwk, "kty"));
	use = json_object_get(jwk, "use");
	alg = json_object_get(jwk, "alg");
	kid = json_object_get(jwk, "kid");
	if (kty == NULL ||
		(use != NULL &&
			!(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)))
		return 0;
	if (alg != NULL)
		mask = sg_jose_alg_bit(json_string_value(alg));
	if (mask == 0 || (kid != NULL && !json_is_string(kid)))
		return 0;
	if (gnutls_pubkey_init(&nk.pub) < 0)
		return -1;
	if (strcmp(kty, "RSA") == 0) {
		nk.siglen = import_rsa(jwk, nk.pub);
		mask &= nk.siglen > 0 ? SG_ALG_RS : 0;
	} else if (strcmp(kty, "EC") == 0) {
		mask &= import_ec(jwk, nk.pub, &size);
		nk.siglen = 2 * size;
	} else {
		mask = 0;
	}
	if (mask == 0)
		goto out;
	nk.algs = mask;
	nk.kid = kid != NULL ? strdup(json_string_value(kid)) : NULL;
	if (kid != NULL && nk.kid == NULL) {
		rc = -1;
		goto out;
	}
	*k = nk;
	memset(&nk, 0, sizeof(nk));
	rc = 1;
out:
	jkey_free(&nk);
	return rc;
}

int
sg_jose_keys_new(const json_t *jwks, struct sg_jose_keys **out, struct sg_error *err)
{
	struct sg_jose_keys *ks;
	size_t i, n = json_is_array(jwks) ? json_array_size(jwks) : 0;
	int rc;

	*out = NULL;
	ks = calloc(1, sizeof(*ks));
	if (ks == NULL)
		return sg_error_set(err, 500, "out of memory");
	if (n > 0 && (ks->keys = calloc(n, sizeof(*ks->keys))) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		rc = jkey_make(json_array_get(jwks, i), &ks->keys[ks->n]);
		if (rc < 0)
			goto fail;
		ks->n += (size_t)rc;
	}
	*out = ks;
	return 0;
fail:
	sg_jose_keys_free(ks);
	return sg_error_set(err, 500, "out of memory");
}

int
sg_jose_keys_parse(const char *text, size_t n, struct sg_jose_keys **out, struct sg_error *err)
{
	json_error_t jerr;
	json_t *doc;
	const json_t *keys;
	int rc;

	*out = NULL;
	if (text == NULL)
		return sg_error_set(err, 502, "invalid JWKS: empty");
	doc = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return sg_error_set(err, 502, "invalid JWKS: not a JSON object");
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys))
		rc = sg_error_set(err, 502, "invalid JWKS: no keys array");
	else
		rc = sg_jose_keys_new(keys, out, err);
	json_decref(doc);
	return rc;
}

size_t
sg_jose_keys_count(const struct sg_jose_keys *ks)
{
	return ks != NULL ? ks->n : 0;
}

void
sg_jose_keys_free(struct sg_jose_keys *ks)
{
	size_t i;

	if (ks == NULL)
		return;
	for (i = 0; i < ks->n; i++)
		jkey_free(&ks->keys[i]);
	free(ks->keys);
	free(ks);
}

/*
 * Parses one decoded segment as a JSON object without duplicate members.
 * Returns the new object, or NULL with err set; what names the segment.
 */
static json_t *
load_object(const struct sg_buf *b, const char *what, struct sg_error *err)
{
	json_error_t jerr;
	json_t *v;

	if (!sg_utf8_valid(b->data, b->len)) {
		sg_error_set(err, 401, "%s not UTF-8", what);
		return NULL;
	}
	v = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL && json_error_code(&jerr) == json_error_duplicate_key) {
		sg_error_set(err, 401, "duplicate member in %s", what);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		sg_error_set(err, 401, "%s not a JSON object", what);
		return NULL;
	}
	return v;
}

static void
parsed_free(struct parsed *p)
{
	json_decref(p->header);
	json_decref(p->claims);
	sg_buf_free(&p->sig);
	memset(p, 0, sizeof(*p));
}

/*
 * Checks the token's shape and takes it apart into p (which the caller
 * frees with parsed_free whatever the result).  Returns 0, or -1 with err
 * set (401).
 */
static int
parse_token(const char *token, size_t n, struct parsed *p, struct sg_error *err)
{
	const char *d1, *d2;
	struct sg_buf seg;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	sg_buf_init(&p->sig, SG_JOSE_TOKEN_MAX);
	sg_buf_init(&seg, SG_JOSE_TOKEN_MAX);
	if (token == NULL || n == 0) {
		sg_error_set(err, 401, "no token");
		goto out;
	}
	if (n > SG_JOSE_TOKEN_MAX) {
		sg_error_set(err, 401, "token too large");
		goto out;
	}
	d1 = memchr(token, '.', n);
	d2 = d1 != NULL ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
	if (d2 == NULL || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)) != NULL) {
		sg_error_set(err, 401, "token not three segments");
		goto out;
	}
	if (d1 == token || d2 == d1 + 1 || d2 + 1 == token + n) {
		sg_error_set(err, 401, "empty token segment");
		goto out;
	}
	if (sg_base64url_decode(token, (size_t)(d1 - token), &seg) != 0) {
		sg_error_set(err, 401, "header not base64url");
		goto out;
	}
	if ((p->header = load_object(&seg, "header", err)) == NULL)
		goto out;
	if (sg_base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &seg) != 0) {
		sg_error_set(err, 401, "claims not base64url");
		goto out;
	}
	if ((p->claims = load_object(&seg, "claims", err)) == NULL)
		goto out;
	if (sg_base64url_decode(d2 + 1, n - (size_t)(d2 + 1 - token), &p->sig) != 0 ||
		p->sig.len == 0) {
		sg_error_set(err, 401, "signature not base64url");
		goto out;
	}
	p->signed_len = (size_t)(d2 - token);
	rc = 0;
out:
	sg_buf_free(&seg);
	return rc;
}

/* Returns 1 when typ names a token that is not an ID token. */
static int
typ_refused(const char *typ)
{
	if (strncasecmp(typ, "application/", 12) == 0)
		typ += 12;
	return strcasecmp(typ, "logout+jwt") == 0 || strcasecmp(typ, "at+jwt") == 0;
}

/* Checks the header's rules and pins p->alg.  Returns 0, or -1 with err set. */
static int
check_header(struct parsed *p, const struct sg_jose_rules *rules, struct sg_error *err)
{
	const json_t *typ = json_object_get(p->header, "typ");
	const json_t *kid = json_object_get(p->header, "kid");
	const struct alg *a;

	a = alg_by_name(json_string_value(json_object_get(p->header, "alg")));
	if (a == NULL || (a->bit & rules->algs) == 0)
		return sg_error_set(err, 401, "alg not allowed");
	/* No extension is understood, so every critical one is refused. */
	if (json_object_get(p->header, "crit") != NULL)
		return sg_error_set(err, 401, "crit header refused");
	if (typ != NULL && (!json_is_string(typ) || typ_refused(json_string_value(typ))))
		return sg_error_set(err, 401, "typ refused");
	if (kid != NULL && !json_is_string(kid))
		return sg_error_set(err, 401, "kid not a string");
	p->alg = a;
	return 0;
}

/* Returns 1 when v is a string equal, byte for byte, to s (non-NULL). */
static int
string_is(const json_t *v, const char *s)
{
	size_t n;

	if (!json_is_string(v) || s == NULL)
		return 0;
	n = strlen(s);
	return json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* Checks the claims' rules.  Returns 0, or -1 with err set. */
static int
check_claims(const json_t *c, const struct sg_jose_rules *rules, struct sg_error *err)
{
	const json_t *aud = json_object_get(c, "aud");
	const json_t *azp = json_object_get(c, "azp");
	const json_t *exp = json_object_get(c, "exp");
	const json_t *iat = json_object_get(c, "iat");
	const json_t *nbf = json_object_get(c, "nbf");
	const json_t *sub = json_object_get(c, "sub");
	double now = (double)rules->now;
	int found = 0;
	size_t i;

	if (!string_is(json_object_get(c, "iss"), rules->issuer))
		return sg_error_set(err, 401, "iss mismatch");
	if (json_is_array(aud)) {
		for (i = 0; i < json_array_size(aud); i++) {
			if (!json_is_string(json_array_get(aud, i)))
				return sg_error_set(err, 401, "aud not strings");
			found |= string_is(json_array_get(aud, i), rules->client_id);
		}
		if (json_array_size(aud) > 1 && azp == NULL)
			return sg_error_set(err, 401, "azp missing with several audiences");
	} else {
		found = string_is(aud, rules->client_id);
	}
	if (!found)
		return sg_error_set(err, 401, "aud mismatch");
	if (azp != NULL && !string_is(azp, rules->client_id))
		return sg_error_set(err, 401, "azp mismatch");
	if (!json_is_number(exp))
		return sg_error_set(err, 401, "exp missing or not a number");
	if (!json_is_number(iat))
		return sg_error_set(err, 401, "iat missing or not a number");
	if (!(json_number_value(exp) > now - SG_JOSE_SKEW))
		return sg_error_set(err, 401, "token expired");
	if (!(json_number_value(iat) <= now + SG_JOSE_SKEW))
		return sg_error_set(err, 401, "iat in the future");
	if (nbf != NULL && !json_is_number(nbf))
		return sg_error_set(err, 401, "nbf not a number");
	if (nbf != NULL && !(json_number_value(nbf) <= now + SG_JOSE_SKEW))
		return sg_error_set(err, 401, "token not yet valid");
	if (!json_is_string(sub) || json_string_length(sub) == 0)
		return sg_error_set(err, 401, "sub missing or empty");
	if (rules->nonce != NULL &&
		!sg_secure_streq(json_string_value(json_object_get(c, "nonce")), rules->nonce))
		return sg_error_set(err, 401, "nonce mismatch");
	return 0;
}

/*
 * Verifies the token's signature with key k under the pinned algorithm.
 * Returns 1 when it holds.
 */
static int
verify(const struct jkey *k, const char *token, const struct parsed *p)
{
	const struct alg *a = p->alg;
	gnutls_datum_t data, sig, r, s, der = {NULL, 0};
	int ok;

	/*
	 * A signature has exactly the key's size (RFC 7518 sections 3.3 and
	 * 3.4): one encoding per signature, and no ECDSA split out of place.
	 */
	if ((k->algs & a->bit) == 0 || p->sig.len != k->siglen)
		return 0;
	data.data = (unsigned char *)token;
	data.size = (unsigned)p->signed_len;
	sig.data = (unsigned char *)p->sig.data;
	sig.size = (unsigned)p->sig.len;
	if (a->half > 0) {
		/* JWS carries r || s (RFC 7518 section 3.4); GnuTLS wants DER. */
		r.data = sig.data;
		r.size = (unsigned)a->half;
		s.data = sig.data + a->half;
		s.size = (unsigned)a->half;
		if (gnutls_encode_rs_value(&der, &r, &s) < 0)
			return 0;
		sig = der;
	}
	ok = gnutls_pubkey_verify_data2(k->pub, a->sign, 0, &data, &sig) >= 0;
	gnutls_free(der.data);
	return ok;
}

int
sg_jose_validate(const char *token, size_t n, const struct sg_jose_keys *ks,
	const struct sg_jose_rules *rules, json_t **claims, struct sg_error *err)
{
	struct parsed p;
	const char *kid;
	size_t i, nkid = 0, nfit = 0;
	int rc = SG_JOSE_INVALID;

	*claims = NULL;
	if (parse_token(token, n, &p, err) != 0 || check_header(&p, rules, err) != 0 ||
		check_claims(p.claims, rules, err) != 0)
		goto out;
	kid = json_string_value(json_object_get(p.header, "kid"));
	for (i = 0; ks != NULL && i < ks->n; i++) {
		const struct jkey *k = &ks->keys[i];

		if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
			continue;
		nkid++;
		if ((k->algs & p.alg->bit) == 0)
			continue;
		nfit++;
		if (verify(k, token, &p)) {
			*claims = json_incref(p.claims);
			rc = SG_JOSE_OK;
			goto out;
		}
	}
	if (nfit > 0)
		sg_error_set(err, 401, "bad signature");
	else if (kid != NULL && nkid > 0)
		sg_error_set(err, 401, "key does not fit alg");
	else {
		sg_error_set(err, 401, kid != NULL ? "unknown kid" : "no key for alg");
		rc = SG_JOSE_UNKNOWN_KEY;
	}
out:
	parsed_free(&p);
	return rc;
}

int
sg_jose_peek(const char *token, size_t n, json_t **claims, struct sg_error *err)
{
	struct parsed p;
	int rc = -1;

	*claims = NULL;
	if (parse_token(token, n, &p, err) == 0) {
		*claims = json_incref(p.claims);
		rc = 0;
	}
	parsed_free(&p);
	return rc;
}

int
sg_jose_pkce_challenge(const char *verifier, char *out)
{
	unsigned char digest[SG_SHA256_LEN];
	struct sg_buf b;
	int rc = -1;

	sg_buf_init(&b, 64);
	if (verifier == NULL || sg_secure_sha256(verifier, strlen(verifier), digest) != 0 ||
		sg_base64url_encode(digest, sizeof(digest), &b) != 0 || b.len != 43)
		goto out;
	memcpy(out, b.data, 44);
	rc = 0;
out:
	sg_buf_free(&b);
	return rc;
}
