/*
 * password.c: bcrypt through libxcrypt, and the verification cache.
 */
#include "autoconf.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "password.h"
#include "secure.h"

/*
 * A direct-mapped table: a verification evicts whatever shared its slot,
 * which at worst costs one more bcrypt run.  64 slots cover the users of
 * one FastCGI process's working set.
 */
#define CACHE_SLOTS 64

struct cache_entry {
	unsigned char key[SG_SHA256_LEN]; /* HMAC of user, password and hash */
	time_t until;                     /* 0: empty */
};

static struct cache_entry cache[CACHE_SLOTS];
static struct sg_hmac *cache_hmac; /* keyed with a random per-process secret */
static unsigned long n_computed, n_cached;

int
sg_password_hash(const char *password, char *out, size_t outsz, struct sg_error *err)
{
	unsigned char salt[16];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = NULL;
	const char *h;
	int rc = -1;

	if (sg_secure_random(salt, sizeof(salt)) != 0 ||
		crypt_gensalt_rn("$2b$", SG_PASSWORD_COST, (const char *)salt, sizeof(salt),
			setting, sizeof(setting)) == NULL) {
		sg_error_set(err, 500, "Cannot make a password salt");
		goto out;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		sg_error_set(err, 500, "Out of memory");
		goto out;
	}
	h = crypt_rn(password, setting, cd, sizeof(*cd));
	if (h == NULL || h[0] == '*' || strlen(h) >= outsz) {
		sg_error_set(err, 500, "Cannot hash the password");
		goto out;
	}
	memcpy(out, h, strlen(h) + 1);
	rc = 0;
out:
	if (cd != NULL) {
		sg_secure_wipe(cd, sizeof(*cd));
		free(cd);
	}
	sg_secure_wipe(salt, sizeof(salt));
	return rc;
}

/*
 * Computes the cache key of (user, password, hash) into key: the HMAC of
 * user NUL hash NUL password, fed in place (nothing copied) to a handle
 * keyed once per process.  Returns 0 or -1.
 */
static int
cache_key(const char *user, const char *password, const char *hash, unsigned char *key)
{
	unsigned char secret[32];
	int rc;

	if (cache_hmac == NULL) {
		rc = sg_secure_random(secret, sizeof(secret)) == 0
			? sg_secure_hmac_new(secret, sizeof(secret), &cache_hmac)
			: -1;
		sg_secure_wipe(secret, sizeof(secret));
		if (rc != 0)
			return -1;
	}
	if (sg_secure_hmac_add(cache_hmac, user, strlen(user) + 1) != 0 ||
		sg_secure_hmac_add(cache_hmac, hash, strlen(hash) + 1) != 0 ||
		sg_secure_hmac_add(cache_hmac, password, strlen(password)) != 0) {
		/* Start over: the handle may hold part of the message. */
		sg_secure_hmac_free(cache_hmac);
		cache_hmac = NULL;
		return -1;
	}
	sg_secure_hmac_end(cache_hmac, key);
	return 0;
}

int
sg_password_verify(const char *user, const char *password, const char *hash)
{
	unsigned char key[SG_SHA256_LEN];
	struct cache_entry *e;
	struct crypt_data *cd;
	const char *h;
	time_t now = time(NULL);
	int ok;

	if (user == NULL || password == NULL || hash == NULL || hash[0] != '$')
		return 0;
	e = cache_key(user, password, hash, key) == 0 ? &cache[key[0] % CACHE_SLOTS] : NULL;
	if (e != NULL && e->until > now && sg_secure_memeq(e->key, key, sizeof(key))) {
		n_cached++;
		return 1;
	}
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return 0;
	h = crypt_rn(password, hash, cd, sizeof(*cd));
	n_computed++;
	/* Rare by design (once per user per cache lifetime): worth a line. */
	sg_log_event(SG_LOG_INFO, NULL, user, "password.bcrypt", "full verification");
	ok = h != NULL && h[0] != '*' && sg_secure_streq(h, hash);
	sg_secure_wipe(cd, sizeof(*cd));
	free(cd);
	if (ok && e != NULL) {
		memcpy(e->key, key, sizeof(key));
		e->until = now + SG_PASSWORD_CACHE_SECONDS;
	}
	return ok;
}

void
sg_password_stats(unsigned long *computed, unsigned long *cached)
{
	*computed = n_computed;
	*cached = n_cached;
}

void
sg_password_cache_clear(void)
{
	sg_secure_wipe(cache, sizeof(cache));
	sg_secure_hmac_free(cache_hmac);
	cache_hmac = NULL;
}
