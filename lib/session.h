/*
 * session.h: login sessions (SPEC section 6).
 *
 * A session id is 160 random bits as 40 lowercase hex characters.  A
 * session stays valid until its ttl has passed since its last extension;
 * once a tenth of the ttl has passed since then, a use extends it, so a
 * busy session costs one store write per tenth of its ttl.  Sessions are
 * indexed by user so that all of a user's sessions can be ended at once.
 * All functions but sg_session_purge run inside sg_store_run and return
 * store result codes.
 */
#ifndef SG_SESSION_H
#define SG_SESSION_H

#include <time.h>

#include "store.h"
#include "user.h"

#define SG_SESSION_ID_LEN 40
/* Room for a Set-Cookie value: name, id and attributes. */
#define SG_SESSION_COOKIE_MAX 512

struct sg_session {
	char id[SG_SESSION_ID_LEN + 1];
	char user[SG_NAME_MAX + 1];
	long ttl;           /* seconds */
	long long expires;  /* Unix time it ends unless extended */
	long long extended; /* Unix time of creation or last extension */
};

/* Returns 1 when id has the form of a session id. */
int sg_session_id_valid(const char *id);

/* Creates a session for user in db, filling *out. */
int sg_session_create(struct sg_txn *txn, const char *db, const char *user, long ttl, time_t now,
	struct sg_session *out);

/*
 * Loads session id of db into *out.  SG_STORE_NOTFOUND when it does not
 * exist or id is malformed; expiry is the caller's to check.
 */
int sg_session_get(struct sg_txn *txn, const char *db, const char *id, unsigned flags,
	struct sg_session *out);

/* Returns 1 when s has not expired at now. */
int sg_session_live(const struct sg_session *s, time_t now);

/* Returns 1 when a use at now should extend s (a tenth of the ttl passed). */
int sg_session_due(const struct sg_session *s, time_t now);

/* Extends s to now + ttl and writes it. */
int sg_session_extend(struct sg_txn *txn, const char *db, struct sg_session *s, time_t now);

/* Ends session id of db (SG_STORE_NOTFOUND when there is none). */
int sg_session_delete(struct sg_txn *txn, const char *db, const char *id);

/*
 * Ends every session of user in db.  When only is non-NULL, ends just that
 * one, and only if it belongs to user (else SG_STORE_NOTFOUND).
 */
int sg_session_delete_user(struct sg_txn *txn, const char *db, const char *user, const char *only);

/*
 * Removes expired sessions, oldest first, through the expiry index: with
 * full, every one in the store; otherwise one small batch, cheap enough
 * to run now and then from a request.  Adds the count to *removed.
 * Returns 0 or -1 with err set.
 */
int sg_session_purge(struct sg_store *st, time_t now, int full, unsigned long *removed,
	struct sg_error *err);

/*
 * Appends the Set-Cookie value of session sid of db to out: the
 * database's cookie name and attributes, the same every time, and no
 * Expires (the server decides when a session ends).  With sid NULL it is
 * the cookie that clears it (Max-Age=0).  Returns 0 or -1.
 */
int sg_session_cookie(const struct sg_db_config *db, const char *sid, struct sg_buf *out);

/* Writes t as RFC 3339 UTC ("2026-11-23T10:00:00Z") into out[32]. */
void sg_session_time(long long t, char *out);

#endif
