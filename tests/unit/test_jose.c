/*
 * test_jose.c: JSON Web Keys and ID token validation.
 *
 * The provider's keys are made fresh at start: an RSA 2048 key (kid "k1")
 * and EC keys on P-256 ("e1"), P-384 ("e3") and P-521 ("e5"), with their
 * JWKs built from the raw public numbers.  Every case file in
 * tests/data/tokens/ (format in its README.md) is then turned into a
 * token here, signed with GnuTLS, and must validate or be refused as the
 * file says.  The checks after that cover what the case files cannot
 * express: other algorithms and allowed sets, keys left out of a set,
 * keys that do not fit a token, JWKS documents, peeking, and PKCE.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>

#include "buf.h"
#include "encode.h"
#include "error.h"
#include "jose.h"
#include "secure.h"
#include "tap.h"
#include "testutil.h"

#define ISSUER "http://127.0.0.1:9/op"
#define CLIENT_ID "syncgate-test"
#define NONCE "n-0S6_WzA2Mj"
#define SUB "carol"

/* Largest case file or token the test makes. */
#define FILE_MAX 65536
/* Fewest case files the data directory must hold. */
#define CASES_MIN 30

/* A key of the test provider. */
struct pkey {
	const char *kid;
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	size_t half; /* EC: coordinate (and r, s) size in bytes; RSA: 0 */
	json_t *jwk;
	char *pem; /* the public key in PEM, NUL-terminated */
};

static struct pkey rsa = {"k1", NULL, NULL, 0, NULL, NULL};
static struct pkey ec256 = {"e1", NULL, NULL, 32, NULL, NULL};
static struct pkey ec384 = {"e3", NULL, NULL, 48, NULL, NULL};
static struct pkey ec521 = {"e5", NULL, NULL, 66, NULL, NULL};

static time_t now;
static char jku_url[64];

/* Exits the test with a bail-out line: the fixture itself failed. */
static void
bail(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

/* Base64url of a datum at exactly size bytes (leading zeros cut or added). */
static json_t *
b64_fixed(const gnutls_datum_t *d, size_t size)
{
	unsigned char tmp[600];
	const unsigned char *p = d->data;
	size_t n = d->size;
	struct sg_buf b;
	json_t *v;

	if (size == 0)
		size = n;
	while (n > size && *p == 0) {
		p++;
		n--;
	}
	if (n > size || size > sizeof(tmp))
		bail("number too large");
	memset(tmp, 0, size - n);
	memcpy(tmp + size - n, p, n);
	sg_buf_init(&b, 1024);
	if (sg_base64url_encode(tmp, size, &b) != 0)
		bail("base64url");
	v = json_string(b.data);
	sg_buf_free(&b);
	return v;
}

/* Generates k (RSA 2048 when k->half is 0, else EC on the curve given). */
static void
make_key(struct pkey *k, gnutls_ecc_curve_t curve)
{
	gnutls_datum_t m = {NULL, 0}, e = {NULL, 0}, x = {NULL, 0}, y = {NULL, 0};
	gnutls_datum_t pem = {NULL, 0};
	gnutls_ecc_curve_t got;

	if (gnutls_privkey_init(&k->priv) < 0 || gnutls_pubkey_init(&k->pub) < 0)
		bail("gnutls init");
	if (k->half == 0) {
		if (gnutls_privkey_generate(k->priv, GNUTLS_PK_RSA, 2048, 0) < 0 ||
			gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0 ||
			gnutls_pubkey_export_rsa_raw2(k->pub, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ) < 0)
			bail("RSA key");
		k->jwk = json_pack("{s:s, s:s, s:s, s:o, s:o}", "kty", "RSA", "kid", k->kid, "use",
			"sig", "n", b64_fixed(&m, 0), "e", b64_fixed(&e, 0));
	} else {
		if (gnutls_privkey_generate(k->priv, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(curve),
			    0) < 0 ||
			gnutls_pubkey_import_privkey(k->pub, k->priv, 0, 0) < 0 ||
			gnutls_pubkey_export_ecc_raw2(k->pub, &got, &x, &y,
				GNUTLS_EXPORT_FLAG_NO_LZ) < 0)
			bail("EC key");
		k->jwk = json_pack("{s:s, s:s, s:s, s:o, s:o}", "kty", "EC", "kid", k->kid, "crv",
			k->half == 32           ? "P-256"
				: k->half == 48 ? "P-384"
						: "P-521",
			"x", b64_fixed(&x, k->half), "y", b64_fixed(&y, k->half));
	}
	if (k->jwk == NULL || gnutls_pubkey_export2(k->pub, GNUTLS_X509_FMT_PEM, &pem) < 0)
		bail("JWK");
	k->pem = strndup((const char *)pem.data, pem.size);
	gnutls_free(m.data);
	gnutls_free(e.data);
	gnutls_free(x.data);
	gnutls_free(y.data);
	gnutls_free(pem.data);
}

static void
free_key(struct pkey *k)
{
	gnutls_privkey_deinit(k->priv);
	gnutls_pubkey_deinit(k->pub);
	json_decref(k->jwk);
	free(k->pem);
}

/* Replaces the placeholders of the README in every string value of v. */
static json_t *
substitute(json_t *v)
{
	const char *s, *key;
	json_t *item;
	size_t i;
	char *end;
	long d;

	if (json_is_array(v)) {
		json_array_foreach (v, i, item)
			json_array_set_new(v, i, substitute(json_incref(item)));
		return v;
	}
	if (json_is_object(v)) {
		json_object_foreach (v, key, item)
			json_object_set_new(v, key, substitute(json_incref(item)));
		return v;
	}
	if (!json_is_string(v))
		return v;
	s = json_string_value(v);
	if (strcmp(s, "@issuer") == 0)
		item = json_string(ISSUER);
	else if (strcmp(s, "@client_id") == 0)
		item = json_string(CLIENT_ID);
	else if (strcmp(s, "@sub") == 0)
		item = json_string(SUB);
	else if (strcmp(s, "@nonce") == 0)
		item = json_string(NONCE);
	else if (strcmp(s, "@kid") == 0)
		item = json_string(rsa.kid);
	else if (strcmp(s, "@ec_kid") == 0)
		item = json_string(ec256.kid);
	else if (strcmp(s, "@jku") == 0)
		item = json_string(jku_url);
	else if (strcmp(s, "@now") == 0)
		item = json_integer((json_int_t)now);
	else if (strncmp(s, "@now", 4) == 0 && (s[4] == '+' || s[4] == '-')) {
		errno = 0;
		d = strtol(s + 5, &end, 10);
		if (errno != 0 || end == s + 5 || *end != '\0')
			return v;
		item = json_integer((json_int_t)now + (s[4] == '+' ? d : -d));
	} else
		return v;
	json_decref(v);
	return item;
}

/* Returns a new object: base with over's members merged in (null removes). */
static json_t *
merged(const char *base, const json_t *over)
{
	json_t *v = json_loads(base, 0, NULL), *item;
	const char *key;

	if (v == NULL)
		bail("default JSON");
	json_object_foreach ((json_t *)over, key, item) {
		if (json_is_null(item))
			json_object_del(v, key);
		else
			json_object_set(v, key, item);
	}
	return substitute(v);
}

static void
add_b64(struct sg_buf *out, const void *p, size_t n)
{
	if (sg_base64url_encode(p, n, out) != 0)
		bail("base64url");
}

/*
 * Signs input with k under the given digest into sig (cleared first): raw
 * r || s for EC (DER when der is set), PKCS#1 v1.5 for RSA.
 */
static void
sign(const struct pkey *k, gnutls_digest_algorithm_t dig, int der, const char *input, size_t n,
	struct sg_buf *sig)
{
	gnutls_datum_t data = {(unsigned char *)input, (unsigned)n}, s = {NULL, 0};
	gnutls_datum_t r = {NULL, 0}, ss = {NULL, 0};
	gnutls_sign_algorithm_t algo;

	sg_buf_reset(sig);
	algo = gnutls_pk_to_sign(k->half > 0 ? GNUTLS_PK_ECDSA : GNUTLS_PK_RSA, dig);
	if (gnutls_privkey_sign_data2(k->priv, algo, 0, &data, &s) < 0)
		bail("sign");
	if (k->half == 0 || der) {
		if (sg_buf_add(sig, s.data, s.size) != 0)
			bail("buffer");
	} else {
		unsigned char raw[132];
		const unsigned char *p;
		size_t len;
		int i;

		if (gnutls_decode_rs_value(&s, &r, &ss) < 0)
			bail("decode r, s");
		memset(raw, 0, sizeof(raw));
		for (i = 0; i < 2; i++) {
			p = i == 0 ? r.data : ss.data;
			len = i == 0 ? r.size : ss.size;
			while (len > k->half && *p == 0) {
				p++;
				len--;
			}
			if (len > k->half)
				bail("r or s too long");
			memcpy(raw + (size_t)i * k->half + k->half - len, p, len);
		}
		if (sg_buf_add(sig, raw, 2 * k->half) != 0)
			bail("buffer");
	}
	gnutls_free(s.data);
	gnutls_free(r.data);
	gnutls_free(ss.data);
}

static gnutls_digest_algorithm_t
digest_of(const char *alg)
{
	if (alg != NULL && strlen(alg) == 5 && strcmp(alg + 2, "384") == 0)
		return GNUTLS_DIG_SHA384;
	if (alg != NULL && strlen(alg) == 5 && strcmp(alg + 2, "512") == 0)
		return GNUTLS_DIG_SHA512;
	return GNUTLS_DIG_SHA256;
}

/*
 * Builds the token a case describes into tok (cleared first), as
 * tests/data/tokens/README.md says.  Beside the README's sign modes the
 * checks below use "es384", "es512" (the P-384 and P-521 keys) and
 * "es256-der" (a DER signature where JWS wants r || s), and a member
 * "flip": true that flips one bit of whatever signature was made.
 */
static void
build_token(const json_t *cas, struct sg_buf *tok)
{
	const char *mode = json_string_value(json_object_get(cas, "sign"));
	const char *shape = json_string_value(json_object_get(cas, "shape"));
	json_t *header, *claims, *dup, *item;
	struct sg_buf payload, sig, seg;
	char *htext, *ptext, *text;
	const char *key, *alg;
	unsigned char mac[SG_SHA256_LEN];
	size_t sigstart, n;

	header = merged("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"@kid\"}",
		json_object_get(cas, "header"));
	claims = merged("{\"iss\":\"@issuer\",\"aud\":\"@client_id\",\"sub\":\"@sub\","
			"\"iat\":\"@now\",\"exp\":\"@now+300\",\"nonce\":\"@nonce\"}",
		json_object_get(cas, "claims"));
	if (shape != NULL && strcmp(shape, "oversize") == 0) {
		char *filler = malloc(SG_JOSE_TOKEN_MAX + 1);

		if (filler == NULL)
			bail("memory");
		memset(filler, 'x', SG_JOSE_TOKEN_MAX);
		filler[SG_JOSE_TOKEN_MAX] = '\0';
		json_object_set_new(claims, "filler", json_string(filler));
		free(filler);
	}
	htext = json_dumps(header, JSON_COMPACT);
	ptext = json_dumps(claims, JSON_COMPACT);
	if (htext == NULL || ptext == NULL)
		bail("dump");
	sg_buf_init(&payload, FILE_MAX);
	sg_buf_init(&sig, 1024);
	sg_buf_init(&seg, FILE_MAX);
	if (sg_buf_add(&payload, ptext, strlen(ptext) - 1) != 0)
		bail("buffer");
	dup = json_object_get(cas, "duplicate");
	json_object_foreach (dup, key, item) {
		json_t *name = json_string(key), *val = substitute(json_deep_copy(item));

		text = json_dumps(name, JSON_ENCODE_ANY);
		if (text == NULL || sg_buf_addf(&payload, ",%s:", text) != 0)
			bail("duplicate");
		free(text);
		text = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
		if (text == NULL || sg_buf_adds(&payload, text) != 0)
			bail("duplicate");
		free(text);
		json_decref(name);
		json_decref(val);
	}
	if (sg_buf_adds(&payload, "}") != 0)
		bail("buffer");

	sg_buf_reset(tok);
	add_b64(tok, htext, strlen(htext));
	sg_buf_adds(tok, ".");
	add_b64(tok, payload.data, payload.len);
	alg = json_string_value(json_object_get(header, "alg"));
	if (mode == NULL || strcmp(mode, "rs256") == 0 || strcmp(mode, "bad-signature") == 0)
		sign(&rsa, digest_of(alg), 0, tok->data, tok->len, &sig);
	else if (strcmp(mode, "es256") == 0)
		sign(&ec256, GNUTLS_DIG_SHA256, 0, tok->data, tok->len, &sig);
	else if (strcmp(mode, "es256-der") == 0)
		sign(&ec256, GNUTLS_DIG_SHA256, 1, tok->data, tok->len, &sig);
	else if (strcmp(mode, "es384") == 0)
		sign(&ec384, GNUTLS_DIG_SHA384, 0, tok->data, tok->len, &sig);
	else if (strcmp(mode, "es512") == 0)
		sign(&ec521, GNUTLS_DIG_SHA512, 0, tok->data, tok->len, &sig);
	else if (strcmp(mode, "hs256-public-pem") == 0) {
		if (sg_secure_hmac(rsa.pem, strlen(rsa.pem), tok->data, tok->len, mac) != 0 ||
			sg_buf_add(&sig, mac, sizeof(mac)) != 0)
			bail("HMAC");
	} else if (strcmp(mode, "none") != 0)
		bail("unknown sign mode");
	if ((mode != NULL && strcmp(mode, "bad-signature") == 0) ||
		json_is_true(json_object_get(cas, "flip")))
		sig.data[sig.len / 2] ^= 0x10;
	sigstart = tok->len + 1;
	sg_buf_adds(tok, ".");
	add_b64(tok, sig.data, sig.len);

	/* An "oversize" token stands as signed: its filler made it too large. */
	if (shape == NULL || strcmp(shape, "oversize") == 0) {
		if (shape != NULL && tok->len <= SG_JOSE_TOKEN_MAX)
			bail("oversize token not over the limit");
	} else if (strcmp(shape, "two-segments") == 0) {
		tok->len = sigstart - 1;
		tok->data[tok->len] = '\0';
	} else if (strcmp(shape, "four-segments") == 0 || strcmp(shape, "five-segments") == 0) {
		n = tok->len - sigstart;
		sg_buf_reset(&seg);
		sg_buf_add(&seg, tok->data + sigstart - 1, n + 1);
		sg_buf_add(tok, seg.data, seg.len);
		if (strcmp(shape, "five-segments") == 0)
			sg_buf_add(tok, seg.data, seg.len);
	} else if (strcmp(shape, "padded") == 0) {
		if (payload.len % 3 == 0)
			sg_buf_adds(&payload, " ");
		sg_buf_reset(&seg);
		add_b64(&seg, htext, strlen(htext));
		sg_buf_adds(&seg, ".");
		add_b64(&seg, payload.data, payload.len);
		while (seg.len % 4 != 0)
			sg_buf_adds(&seg, "=");
		sg_buf_adds(&seg, tok->data + sigstart - 1);
		sg_buf_reset(tok);
		sg_buf_add(tok, seg.data, seg.len);
	} else
		bail("unknown shape");
	if (tok->toobig)
		bail("token buffer");
	free(htext);
	free(ptext);
	json_decref(header);
	json_decref(claims);
	sg_buf_free(&payload);
	sg_buf_free(&sig);
	sg_buf_free(&seg);
}

/* Builds a key set from the JWKs given (NULL-terminated, borrowed). */
static struct sg_jose_keys *
keyset(json_t *first, ...)
{
	struct sg_jose_keys *ks;
	struct sg_error err;
	json_t *arr = json_array(), *jwk;
	va_list ap;

	va_start(ap, first);
	for (jwk = first; jwk != NULL; jwk = va_arg(ap, json_t *))
		json_array_append(arr, jwk);
	va_end(ap);
	if (sg_jose_keys_new(arr, &ks, &err) != 0)
		bail("key set");
	json_decref(arr);
	return ks;
}

static struct sg_jose_rules
default_rules(void)
{
	struct sg_jose_rules r = {ISSUER, CLIENT_ID, SG_ALG_RS256 | SG_ALG_ES256, NONCE, 0};

	r.now = now;
	return r;
}

/* Returns 1 when claims are those of a token the generator made. */
static int
claims_ok(const json_t *claims)
{
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	const char *iss = json_string_value(json_object_get(claims, "iss"));

	return sub != NULL && strcmp(sub, SUB) == 0 && iss != NULL && strcmp(iss, ISSUER) == 0;
}

/* Validates the token of a case given as JSON text; returns the result. */
static int
run_case(const char *case_text, const struct sg_jose_keys *ks, const struct sg_jose_rules *rules,
	struct sg_error *err)
{
	json_t *cas = json_loads(case_text, 0, NULL), *claims = NULL;
	struct sg_buf tok;
	int rc;

	if (cas == NULL)
		bail("case text");
	sg_buf_init(&tok, FILE_MAX);
	build_token(cas, &tok);
	sg_error_clear(err);
	rc = sg_jose_validate(tok.data, tok.len, ks, rules, &claims, err);
	if (rc == SG_JOSE_OK && !claims_ok(claims))
		rc = 99;
	json_decref(claims);
	json_decref(cas);
	sg_buf_free(&tok);
	return rc;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The cases whose key is unknown: refused, but as SG_JOSE_UNKNOWN_KEY. */
static int
unknown_key_case(const char *name)
{
	return strcmp(name, "unknown-kid.json") == 0 || strcmp(name, "jku-header.json") == 0;
}

/*
 * Opens a loopback listener for @jku: a token's jku header names it, and
 * nothing may ever connect to it.  Returns the socket.
 */
static int
jku_listener(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
		getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
		fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
		bail("jku listener");
	snprintf(jku_url, sizeof(jku_url), "http://127.0.0.1:%u/jwks.json",
		(unsigned)ntohs(sa.sin_port));
	return fd;
}

/* Every case file of tests/data/tokens must come out as it says. */
static void
test_case_files(const char *srcdir)
{
	struct sg_jose_rules rules = default_rules();
	struct sg_jose_keys *ks = keyset(rsa.jwk, ec256.jwk, NULL);
	struct sg_buf path, text;
	struct sg_error err;
	struct dirent *de;
	char *names[256], label[320];
	size_t count = 0, i, nlen;
	int lfd, cfd, unknown = 0, rc, want;
	json_t *cas;
	DIR *dir;

	lfd = jku_listener();
	sg_buf_init(&path, 4096);
	sg_buf_init(&text, FILE_MAX);
	sg_buf_addf(&path, "%s/tests/data/tokens", srcdir);
	dir = opendir(path.data);
	tap_ok(dir != NULL, "tests/data/tokens can be read");
	while (dir != NULL && (de = readdir(dir)) != NULL && count < 256) {
		nlen = strlen(de->d_name);
		if (nlen > 5 && strcmp(de->d_name + nlen - 5, ".json") == 0)
			if ((names[count++] = strdup(de->d_name)) == NULL)
				bail("memory");
	}
	if (dir != NULL)
		closedir(dir);
	qsort(names, count, sizeof(names[0]), name_cmp);
	for (i = 0; i < count; i++) {
		sg_buf_reset(&path);
		sg_buf_addf(&path, "%s/tests/data/tokens/%s", srcdir, names[i]);
		cas = test_read_file(path.data, &text) == 0 ? json_loads(text.data, 0, NULL) : NULL;
		if (!tap_ok(json_is_object(cas), names[i])) {
			json_decref(cas);
			continue;
		}
		if (strcmp(json_string_value(json_object_get(cas, "expect")), "valid") == 0)
			want = SG_JOSE_OK;
		else
			want = unknown_key_case(names[i]) ? SG_JOSE_UNKNOWN_KEY : SG_JOSE_INVALID;
		unknown += want == SG_JOSE_UNKNOWN_KEY;
		rc = run_case(text.data, ks, &rules, &err);
		snprintf(label, sizeof(label), "%s: %s", names[i],
			json_string_value(json_object_get(cas, "about")));
		if (!tap_is_int(rc, want, label))
			printf("#   reason: %s\n", err.reason);
		if (want != SG_JOSE_OK) {
			printf("# %s refused: %s\n", names[i], err.reason);
			snprintf(label, sizeof(label), "%s: 401 with a reason free of claim values",
				names[i]);
			tap_ok(err.status == 401 && err.reason[0] != '\0' &&
					strstr(err.reason, NONCE) == NULL &&
					strstr(err.reason, SUB) == NULL &&
					strstr(err.reason, "eyJ") == NULL,
				label);
		}
		json_decref(cas);
	}
	tap_ok(count >= CASES_MIN, "at least 30 case files");
	printf("# %zu case files\n", count);
	tap_is_int(unknown, 2, "both unknown-key cases present");
	cfd = accept(lfd, NULL, NULL);
	tap_ok(cfd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "jku URL never called");
	if (cfd >= 0)
		close(cfd);
	close(lfd);
	for (i = 0; i < count; i++)
		free(names[i]);
	sg_buf_free(&path);
	sg_buf_free(&text);
	sg_jose_keys_free(ks);
}

/* Validates a case with the given allowed set and keys; checks the result. */
static void
expect(const char *case_text, const struct sg_jose_keys *ks, unsigned algs, int want,
	const char *name)
{
	struct sg_jose_rules rules = default_rules();
	struct sg_error err;
	int rc;

	rules.algs = algs;
	rc = run_case(case_text, ks, &rules, &err);
	if (!tap_is_int(rc, want, name))
		printf("#   reason: %s\n", err.reason);
}

/* The algorithms beside RS256 and ES256, each with its allowed set. */
static void
test_algorithms(void)
{
	struct sg_jose_keys *ks = keyset(rsa.jwk, ec256.jwk, ec384.jwk, ec521.jwk, NULL);
	struct sg_jose_rules rules = default_rules();
	struct sg_error err;
	int i, ok256 = 0, ok384 = 0, ok512 = 0;

	expect("{\"header\":{\"alg\":\"RS384\"}}", ks, SG_ALG_RS384, SG_JOSE_OK, "RS384 valid");
	expect("{\"header\":{\"alg\":\"RS512\"}}", ks, SG_ALG_RS512, SG_JOSE_OK, "RS512 valid");
	expect("{\"header\":{\"alg\":\"RS512\"}}", ks, SG_ALG_RS256, SG_JOSE_INVALID,
		"RS512 refused when only RS256 is allowed");
	expect("{\"header\":{\"alg\":\"RS512\"},\"flip\":true}", ks, SG_ALG_RS512, SG_JOSE_INVALID,
		"RS512 with a flipped bit refused");
	/* ECDSA signatures are random: many runs cover r and s of every shape. */
	for (i = 0; i < 24; i++) {
		rules.algs = SG_ALG_ES256;
		ok256 +=
			run_case(
				"{\"header\":{\"alg\":\"ES256\",\"kid\":\"e1\"},\"sign\":\"es256\"}",
				ks, &rules, &err) == SG_JOSE_OK;
		rules.algs = SG_ALG_ES384;
		ok384 +=
			run_case(
				"{\"header\":{\"alg\":\"ES384\",\"kid\":\"e3\"},\"sign\":\"es384\"}",
				ks, &rules, &err) == SG_JOSE_OK;
		rules.algs = SG_ALG_ES512;
		ok512 +=
			run_case(
				"{\"header\":{\"alg\":\"ES512\",\"kid\":\"e5\"},\"sign\":\"es512\"}",
				ks, &rules, &err) == SG_JOSE_OK;
	}
	tap_is_int(ok256, 24, "ES256 valid, 24 signatures");
	tap_is_int(ok384, 24, "ES384 valid, 24 signatures");
	if (!tap_is_int(ok512, 24, "ES512 valid, 24 signatures"))
		printf("#   reason: %s\n", err.reason);
	expect("{\"header\":{\"alg\":\"ES512\",\"kid\":null},\"sign\":\"es512\"}", ks, SG_ALG_ES512,
		SG_JOSE_OK, "ES512 without kid: key chosen by curve");
	expect("{\"header\":{\"alg\":\"ES384\",\"kid\":null},\"sign\":\"es384\"}", ks, SG_ALG_ES384,
		SG_JOSE_OK, "ES384 without kid: key chosen by curve");
	expect("{\"header\":{\"alg\":\"ES512\",\"kid\":\"e5\"},\"sign\":\"es512\",\"flip\":true}",
		ks, SG_ALG_ES512, SG_JOSE_INVALID, "ES512 with a flipped bit refused");
	expect("{\"header\":{\"alg\":\"ES384\",\"kid\":\"e3\"},\"sign\":\"es384\",\"flip\":true}",
		ks, SG_ALG_ES384, SG_JOSE_INVALID, "ES384 with a flipped bit refused");
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"e1\"},\"sign\":\"es256\",\"flip\":true}",
		ks, SG_ALG_ES256, SG_JOSE_INVALID, "ES256 with a flipped bit refused");
	expect("{\"header\":{\"alg\":\"ES512\",\"kid\":\"e5\"},\"sign\":\"es384\"}", ks,
		SG_ALG_ES512, SG_JOSE_INVALID, "ES512 with a signature of the wrong size refused");
	expect("{\"header\":{\"alg\":\"ES512\",\"kid\":\"e5\"},\"sign\":\"es512\"}", ks,
		SG_ALG_RS256 | SG_ALG_ES256, SG_JOSE_INVALID, "ES512 refused when not allowed");
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"e1\"},\"sign\":\"es256-der\"}", ks,
		SG_ALG_ES256, SG_JOSE_INVALID, "ES256 with a DER signature refused");
	expect("{\"header\":{\"alg\":\"HS256\"},\"sign\":\"hs256-public-pem\"}", ks, SG_ALG_ALL,
		SG_JOSE_INVALID, "HS256 keyed with the PEM refused with every algorithm allowed");
	expect("{\"header\":{\"alg\":\"HS256\",\"kid\":null},\"sign\":\"hs256-public-pem\"}", ks,
		SG_ALG_ALL, SG_JOSE_INVALID, "HS256 without kid refused");
	expect("{\"header\":{\"alg\":\"RS256\"},\"sign\":\"es256\"}", ks, SG_ALG_ALL,
		SG_JOSE_INVALID, "RS256 header over an ES256 signature refused");
	expect("{\"header\":{\"alg\":7}}", ks, SG_ALG_ALL, SG_JOSE_INVALID, "alg not a string");
	expect("{\"header\":{\"alg\":null}}", ks, SG_ALG_ALL, SG_JOSE_INVALID, "alg missing");
	expect("{\"header\":{\"alg\":\"rs256\"}}", ks, SG_ALG_ALL, SG_JOSE_INVALID,
		"alg compared case-sensitively");
	sg_jose_keys_free(ks);
}

/* Header and claim rules beyond the case files. */
static void
test_rules(void)
{
	struct sg_jose_keys *ks = keyset(rsa.jwk, ec256.jwk, NULL);
	const unsigned a = SG_ALG_RS256 | SG_ALG_ES256;

	expect("{\"header\":{\"typ\":null}}", ks, a, SG_JOSE_OK, "no typ valid");
	expect("{\"header\":{\"typ\":\"jwt\"}}", ks, a, SG_JOSE_OK, "typ jwt valid");
	expect("{\"header\":{\"typ\":\"JOSE\"}}", ks, a, SG_JOSE_OK, "typ JOSE valid");
	expect("{\"header\":{\"typ\":\"application/jwt\"}}", ks, a, SG_JOSE_OK,
		"typ application/jwt valid");
	expect("{\"header\":{\"typ\":\"application/AT+JWT\"}}", ks, a, SG_JOSE_INVALID,
		"typ application/AT+JWT refused");
	expect("{\"header\":{\"typ\":\"Logout+JWT\"}}", ks, a, SG_JOSE_INVALID,
		"typ Logout+JWT refused");
	expect("{\"header\":{\"typ\":7}}", ks, a, SG_JOSE_INVALID, "typ not a string refused");
	expect("{\"header\":{\"kid\":7}}", ks, a, SG_JOSE_INVALID, "kid not a string refused");
	expect("{\"header\":{\"x5u\":\"http://127.0.0.1:9/x\",\"jwk\":{\"kty\":\"oct\"},"
	       "\"x5c\":[\"AAAA\"]}}",
		ks, a, SG_JOSE_OK, "x5u, jwk and x5c headers ignored");
	expect("{\"claims\":{\"exp\":\"@now-59\"}}", ks, a, SG_JOSE_OK, "exp 59 s ago valid");
	expect("{\"claims\":{\"exp\":\"@now-60\"}}", ks, a, SG_JOSE_INVALID,
		"exp 60 s ago refused");
	expect("{\"claims\":{\"exp\":1e300}}", ks, a, SG_JOSE_OK, "exp as a real number valid");
	expect("{\"claims\":{\"iat\":\"@now+60\"}}", ks, a, SG_JOSE_OK, "iat 60 s ahead valid");
	expect("{\"claims\":{\"iat\":\"@now+61\"}}", ks, a, SG_JOSE_INVALID,
		"iat 61 s ahead refused");
	expect("{\"claims\":{\"iat\":true}}", ks, a, SG_JOSE_INVALID, "iat not a number refused");
	expect("{\"claims\":{\"nbf\":\"@now+60\"}}", ks, a, SG_JOSE_OK, "nbf 60 s ahead valid");
	expect("{\"claims\":{\"nbf\":\"@now\"}}", ks, a, SG_JOSE_OK, "nbf now valid");
	expect("{\"claims\":{\"nbf\":\"1\"}}", ks, a, SG_JOSE_INVALID, "nbf as a string refused");
	expect("{\"claims\":{\"aud\":[\"@client_id\"]}}", ks, a, SG_JOSE_OK,
		"one audience in an array without azp valid");
	expect("{\"claims\":{\"aud\":[\"@client_id\",7],\"azp\":\"@client_id\"}}", ks, a,
		SG_JOSE_INVALID, "aud array with a number refused");
	expect("{\"claims\":{\"aud\":[]}}", ks, a, SG_JOSE_INVALID, "empty aud array refused");
	expect("{\"claims\":{\"aud\":null}}", ks, a, SG_JOSE_INVALID, "no aud refused");
	expect("{\"claims\":{\"aud\":\"syncgate-test \"}}", ks, a, SG_JOSE_INVALID,
		"aud with a trailing space refused");
	expect("{\"claims\":{\"azp\":\"@client_id\"}}", ks, a, SG_JOSE_OK,
		"azp equal to the client with one audience valid");
	expect("{\"claims\":{\"azp\":7}}", ks, a, SG_JOSE_INVALID, "azp not a string refused");
	expect("{\"claims\":{\"iss\":null}}", ks, a, SG_JOSE_INVALID, "no iss refused");
	expect("{\"claims\":{\"iss\":\"HTTP://127.0.0.1:9/op\"}}", ks, a, SG_JOSE_INVALID,
		"iss compared byte for byte");
	expect("{\"claims\":{\"iss\":\"" ISSUER "/\"}}", ks, a, SG_JOSE_INVALID,
		"iss with a trailing slash refused");
	expect("{\"claims\":{\"sub\":7}}", ks, a, SG_JOSE_INVALID, "sub not a string refused");
	expect("{\"claims\":{\"nonce\":null}}", ks, a, SG_JOSE_INVALID,
		"no nonce refused when one is expected");
	expect("{\"claims\":{\"nonce\":\"n-0S6_WzA2M\"}}", ks, a, SG_JOSE_INVALID,
		"nonce one character short refused");
	expect("{\"claims\":{\"exp\":\"@now-600\",\"iat\":\"@now-900\"},\"header\":{\"kid\":\"gone\"}}",
		ks, a, SG_JOSE_INVALID,
		"expired token with an unknown kid: invalid, not unknown key");
	sg_jose_keys_free(ks);
}

/* A nonce rule of NULL skips the nonce check. */
static void
test_nonce_skipped(void)
{
	struct sg_jose_keys *ks = keyset(rsa.jwk, NULL);
	struct sg_jose_rules rules = default_rules();
	struct sg_error err;

	rules.nonce = NULL;
	tap_is_int(run_case("{\"claims\":{\"nonce\":\"other\"}}", ks, &rules, &err), SG_JOSE_OK,
		"nonce rule NULL: another nonce accepted");
	tap_is_int(run_case("{\"claims\":{\"nonce\":null}}", ks, &rules, &err), SG_JOSE_OK,
		"nonce rule NULL: no nonce accepted");
	rules.issuer = NULL;
	tap_is_int(run_case("{}", ks, &rules, &err), SG_JOSE_INVALID,
		"issuer rule NULL: nothing matches");
	sg_jose_keys_free(ks);
}

/* Returns a copy of jwk with the members of the JSON text over set. */
static json_t *
jwk_with(const json_t *jwk, const char *over)
{
	json_t *v = json_deep_copy(jwk), *o = json_loads(over, 0, NULL);

	if (v == NULL || o == NULL || json_object_update(v, o) != 0)
		bail("JWK copy");
	json_decref(o);
	return v;
}

/* Keys left out of a set, and keys that do not fit a token. */
static void
test_key_choice(void)
{
	json_t *enc = jwk_with(rsa.jwk, "{\"kid\":\"enc1\",\"use\":\"enc\"}");
	json_t *rs512 = jwk_with(rsa.jwk, "{\"kid\":\"k1-512\",\"alg\":\"RS512\"}");
	json_t *es = jwk_with(ec256.jwk, "{\"kid\":\"e1-alg\",\"alg\":\"ES256\",\"use\":\"sig\"}");
	json_t *bad =
		json_loads("[5, {\"kty\":\"oct\",\"k\":\"AAAA\"}, {\"kty\":\"RSA\"},"
			   "{\"n\":\"AQAB\",\"e\":\"AQAB\"}, {\"kty\":\"EC\",\"crv\":\"P-192\","
			   "\"x\":\"AAAA\",\"y\":\"AAAA\"}]",
			0, NULL);
	json_t *all = json_array(), *arr;
	struct sg_jose_keys *ks;
	struct sg_error err;
	gnutls_privkey_t small;
	gnutls_pubkey_t smallpub;
	gnutls_datum_t m = {NULL, 0}, e = {NULL, 0};

	ks = keyset(enc, NULL);
	tap_is_int((long long)sg_jose_keys_count(ks), 0, "key with use enc left out");
	expect("{\"header\":{\"kid\":\"enc1\"}}", ks, SG_ALG_RS256, SG_JOSE_UNKNOWN_KEY,
		"token naming the enc key: unknown key");
	sg_jose_keys_free(ks);

	ks = keyset(rs512, es, NULL);
	tap_is_int((long long)sg_jose_keys_count(ks), 2, "keys with alg members kept");
	expect("{\"header\":{\"kid\":\"k1-512\"}}", ks, SG_ALG_RS256 | SG_ALG_RS512,
		SG_JOSE_INVALID, "RS256 token on a key whose alg is RS512 refused");
	expect("{\"header\":{\"kid\":\"k1-512\",\"alg\":\"RS512\"}}", ks, SG_ALG_RS512, SG_JOSE_OK,
		"RS512 token on a key whose alg is RS512 valid");
	expect("{\"header\":{\"kid\":null}}", ks, SG_ALG_RS256, SG_JOSE_UNKNOWN_KEY,
		"RS256 token without kid and only an RS512 key: unknown key");
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"e1-alg\"},\"sign\":\"es256\"}", ks,
		SG_ALG_ES256, SG_JOSE_OK, "ES256 key with alg ES256 and use sig valid");
	sg_jose_keys_free(ks);

	ks = keyset(rsa.jwk, ec256.jwk, ec384.jwk, NULL);
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"e3\"},\"sign\":\"es256\"}", ks,
		SG_ALG_ES256, SG_JOSE_INVALID, "ES256 token on a P-384 key refused");
	expect("{\"header\":{\"alg\":\"ES384\",\"kid\":\"e1\"},\"sign\":\"es384\"}", ks,
		SG_ALG_ES384, SG_JOSE_INVALID, "ES384 token on a P-256 key refused");
	expect("{\"header\":{\"kid\":\"e1\"}}", ks, SG_ALG_RS256, SG_JOSE_INVALID,
		"RS256 token naming an EC key: invalid, not unknown key");
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"k1\"},\"sign\":\"es256\"}", ks,
		SG_ALG_ES256, SG_JOSE_INVALID, "ES256 token naming the RSA key refused");
	sg_jose_keys_free(ks);

	ks = keyset(ec256.jwk, ec384.jwk, NULL);
	expect("{\"header\":{\"kid\":null}}", ks, SG_ALG_RS256, SG_JOSE_UNKNOWN_KEY,
		"RS256 token without kid and no RSA key: unknown key");
	sg_jose_keys_free(ks);
	tap_is_int(run_case("{}", NULL,
			   &(struct sg_jose_rules){ISSUER, CLIENT_ID, SG_ALG_RS256, NONCE, now},
			   &err),
		SG_JOSE_UNKNOWN_KEY, "no key set: unknown key");

	/* A 1024-bit RSA key is too weak to be used. */
	if (gnutls_privkey_init(&small) < 0 || gnutls_pubkey_init(&smallpub) < 0 ||
		gnutls_privkey_generate(small, GNUTLS_PK_RSA, 1024, 0) < 0 ||
		gnutls_pubkey_import_privkey(smallpub, small, 0, 0) < 0 ||
		gnutls_pubkey_export_rsa_raw2(smallpub, &m, &e, GNUTLS_EXPORT_FLAG_NO_LZ) < 0)
		bail("RSA 1024 key");
	json_array_append_new(all,
		json_pack("{s:s, s:s, s:o, s:o}", "kty", "RSA", "kid", "weak", "n",
			b64_fixed(&m, 0), "e", b64_fixed(&e, 0)));
	gnutls_free(m.data);
	gnutls_free(e.data);
	gnutls_privkey_deinit(small);
	gnutls_pubkey_deinit(smallpub);

	json_array_extend(all, bad);
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":\"padded\",\"e\":\"AQAB=\"}"));
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":\"hs\",\"alg\":\"HS256\"}"));
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":\"k-ps\",\"alg\":\"PS256\"}"));
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":\"k-es\",\"alg\":\"ES256\"}"));
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":7}"));
	json_array_append_new(all, jwk_with(rsa.jwk, "{\"kid\":\"u\",\"use\":1}"));
	json_array_append_new(all, jwk_with(ec256.jwk, "{\"kid\":\"short\",\"x\":\"AAAA\"}"));
	json_array_append_new(all, jwk_with(ec256.jwk, "{\"kid\":\"crv\",\"crv\":\"P-384\"}"));
	if (sg_jose_keys_new(all, &ks, &err) != 0)
		bail("key set");
	tap_is_int((long long)sg_jose_keys_count(ks), 0, "unusable keys all left out");
	sg_jose_keys_free(ks);

	arr = json_array();
	json_array_append(arr, enc);
	json_array_append(arr, rsa.jwk);
	json_array_extend(arr, all);
	json_array_append(arr, ec521.jwk);
	if (sg_jose_keys_new(arr, &ks, &err) != 0)
		bail("key set");
	tap_is_int((long long)sg_jose_keys_count(ks), 2, "usable keys among unusable ones counted");
	expect("{}", ks, SG_ALG_RS256, SG_JOSE_OK, "token valid with the usable key");
	sg_jose_keys_free(ks);
	json_decref(arr);

	if (sg_jose_keys_new(json_object_get(rsa.jwk, "kid"), &ks, &err) != 0)
		bail("key set");
	tap_is_int((long long)sg_jose_keys_count(ks), 0, "keys from a non-array: none");
	sg_jose_keys_free(ks);
	tap_is_int((long long)sg_jose_keys_count(NULL), 0, "count of no set");
	sg_jose_keys_free(NULL);

	json_decref(all);
	json_decref(bad);
	json_decref(enc);
	json_decref(rs512);
	json_decref(es);
}

/* Parses a JWKS text; returns the result and the key count in *count. */
static int
parse_jwks(const char *text, size_t *count, int *status)
{
	struct sg_jose_keys *ks = NULL;
	struct sg_error err;
	int rc;

	sg_error_clear(&err);
	rc = sg_jose_keys_parse(text, strlen(text), &ks, &err);
	*count = sg_jose_keys_count(ks);
	*status = err.status;
	sg_jose_keys_free(ks);
	return rc;
}

static void
test_jwks(void)
{
	static const char *bad[] = {"", "not json", "[]", "{}", "{\"keys\":{}}", "{\"keys\":null}",
		"{\"keys\":[],\"keys\":[]}", "\"keys\"", "{\"keys\":[]} x"};
	struct sg_jose_keys *ks;
	struct sg_error err;
	json_t *doc;
	char *text, label[96];
	size_t i, count;
	int status;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(label, sizeof(label), "JWKS refused: %s", bad[i]);
		tap_ok(parse_jwks(bad[i], &count, &status) == -1 && status == 502, label);
	}
	tap_ok(parse_jwks("{\"keys\":[]}", &count, &status) == 0 && count == 0,
		"JWKS with no key: empty set");
	doc = json_pack("{s:[O,O,O,{s:s}]}", "keys", rsa.jwk, ec256.jwk, ec521.jwk, "kty", "OKP");
	text = json_dumps(doc, JSON_COMPACT);
	tap_ok(parse_jwks(text, &count, &status) == 0 && count == 3,
		"JWKS of RSA, P-256, P-521 and an OKP key: three keys");
	if (sg_jose_keys_parse(text, strlen(text), &ks, &err) != 0)
		bail("JWKS");
	expect("{\"header\":{\"alg\":\"ES256\",\"kid\":\"e1\"},\"sign\":\"es256\"}", ks,
		SG_ALG_ES256, SG_JOSE_OK, "token valid with keys from a JWKS document");
	sg_jose_keys_free(ks);
	free(text);
	json_decref(doc);
}

/* Hand-made tokens the generator cannot make. */
static void
test_shapes(void)
{
	struct sg_jose_keys *ks = keyset(rsa.jwk, NULL);
	struct sg_jose_rules rules = default_rules();
	static const char *toks[] = {"", ".", "..", "a.b.c", "eyJ+.eyJ9.AA",
		/* [] . {} . AA: header an array */
		"W10.e30.AA",
		/* "x" . {} . AA: header a string */
		"Ing.e30.AA",
		/* {} . {"a":"\xff"} . AA: claims not UTF-8 */
		"e30.eyJhIjoi_yJ9.AA",
		/* {} . {"a":1,"a":2} . AA */
		"e30.eyJhIjoxLCJhIjoyfQ.AA",
		/* {} . {} . A (one character is no byte string) */
		"e30.e30.A",
		/* {} . {"a":"\u0000"} . AA */
		"e30.eyJhIjoiXHUwMDAwIn0.AA"};
	struct sg_error err;
	json_t *claims = NULL;
	char label[96];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
		snprintf(label, sizeof(label), "malformed token refused: \"%s\"", toks[i]);
		rc = sg_jose_validate(toks[i], strlen(toks[i]), ks, &rules, &claims, &err);
		tap_ok(rc == SG_JOSE_INVALID && claims == NULL && err.status == 401, label);
		snprintf(label, sizeof(label), "peek refuses: \"%s\"", toks[i]);
		tap_ok(sg_jose_peek(toks[i], strlen(toks[i]), &claims, &err) == -1 &&
				claims == NULL,
			label);
	}
	rc = sg_jose_validate(NULL, 0, ks, &rules, &claims, &err);
	tap_ok(rc == SG_JOSE_INVALID && claims == NULL, "NULL token refused");
	sg_jose_keys_free(ks);
}

/* Peeking reads the claims of a well-formed token, signature unchecked. */
static void
test_peek(void)
{
	json_t *cas =
		json_loads("{\"sign\":\"bad-signature\",\"claims\":{\"iss\":\"x\"}}", 0, NULL);
	json_t *padded = json_loads("{\"shape\":\"padded\"}", 0, NULL), *claims = NULL;
	struct sg_buf tok;
	struct sg_error err;

	sg_buf_init(&tok, FILE_MAX);
	build_token(cas, &tok);
	tap_is_int(sg_jose_peek(tok.data, tok.len, &claims, &err), 0,
		"peek at a badly signed token");
	tap_is_str(json_string_value(json_object_get(claims, "iss")), "x", "peek gives its iss");
	json_decref(claims);
	build_token(padded, &tok);
	claims = NULL;
	tap_is_int(sg_jose_peek(tok.data, tok.len, &claims, &err), -1, "peek refuses padding");
	tap_is_int(err.status, 401, "peek refuses with 401");
	sg_buf_free(&tok);
	json_decref(cas);
	json_decref(padded);
}

static void
test_misc(void)
{
	json_t *names = json_loads("[\"RS256\",\"HS256\",\"ES512\",\"none\",7,\"PS256\"]", 0, NULL);
	char out[44];

	tap_is_int(sg_jose_alg_set(names), SG_ALG_RS256 | SG_ALG_ES512, "alg set from names");
	tap_is_int(sg_jose_alg_set(NULL), 0, "alg set of nothing");
	tap_is_int(sg_jose_alg_set(json_object_get(names, "x")), 0, "alg set of a non-array");
	tap_is_int(sg_jose_alg_bit("RS384"), SG_ALG_RS384, "alg bit RS384");
	tap_is_int(sg_jose_alg_bit("none"), 0, "alg bit of none");
	tap_is_int(sg_jose_alg_bit("HS256"), 0, "alg bit of HS256");
	tap_is_int(sg_jose_alg_bit(NULL), 0, "alg bit of NULL");
	json_decref(names);
	tap_is_int(sg_jose_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", out), 0,
		"PKCE challenge made");
	tap_is_str(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		"PKCE challenge of RFC 7636 appendix B");
	tap_is_int(sg_jose_pkce_challenge(NULL, out), -1, "PKCE challenge of NULL");
}

int
main(void)
{
	const char *srcdir = getenv("top_srcdir");

	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	now = time(NULL);
	make_key(&rsa, GNUTLS_ECC_CURVE_INVALID);
	make_key(&ec256, GNUTLS_ECC_CURVE_SECP256R1);
	make_key(&ec384, GNUTLS_ECC_CURVE_SECP384R1);
	make_key(&ec521, GNUTLS_ECC_CURVE_SECP521R1);
	test_case_files(srcdir);
	test_algorithms();
	test_rules();
	test_nonce_skipped();
	test_key_choice();
	test_jwks();
	test_shapes();
	test_peek();
	test_misc();
	free_key(&rsa);
	free_key(&ec256);
	free_key(&ec384);
	free_key(&ec521);
	return tap_done();
}
