/*
 * password.h: bcrypt password hashes and the per-process verification cache.
 *
 * Hashes are crypt(3) strings made by libxcrypt: new ones are bcrypt
 * ("$2b$", cost 10) salted from gnutls_rnd.  Verifying a bcrypt hash
 * costs tens of milliseconds by design, which would make Basic auth on
 * every replication request slow; so a verified (user, password, hash)
 * triple is remembered for SG_PASSWORD_CACHE_SECONDS, keyed by an HMAC
 * under a per-process random key (the cache never holds a password or a
 * plain digest of one).  The stored hash is part of the key, so a changed
 * password misses at once; callers check "disabled" on the fresh record.
 */
#ifndef SG_PASSWORD_H
#define SG_PASSWORD_H

#include <stddef.h>

#include "error.h"

#define SG_PASSWORD_COST 10
#define SG_PASSWORD_CACHE_SECONDS 300
/* Room for any crypt(3) hash libxcrypt makes. */
#define SG_PASSWORD_HASH_MAX 128

/*
 * Hashes password into out (at least SG_PASSWORD_HASH_MAX bytes).
 * Returns 0, or -1 with err set (500).
 */
int sg_password_hash(const char *password, char *out, size_t outsz, struct sg_error *err);

/*
 * Returns 1 when password matches hash for user, else 0 (a NULL or
 * malformed hash never matches).  Uses and fills the cache.
 */
int sg_password_verify(const char *user, const char *password, const char *hash);

/* Counts since the process started: full hash computations and cache hits. */
void sg_password_stats(unsigned long *computed, unsigned long *cached);

/* Forgets every cached verification. */
void sg_password_cache_clear(void);

#endif
