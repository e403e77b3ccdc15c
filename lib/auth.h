/*
 * auth.h: who made a request (SPEC section 6).
 *
 * Credentials are tried in the order Bearer ID token, Basic, session
 * cookie, GUEST.  The first one present decides: bad credentials are
 * refused, never passed over for the next kind.  A disabled or deleted
 * user is refused on every path.  What a user's records grant is kept in
 * a per-process cache that every request checks against the database's
 * principals generation (user.h), read in the same transaction as the
 * session: any user or role write replaces the generation, so a change
 * counts on the very next request.
 */
#ifndef SG_AUTH_H
#define SG_AUTH_H

#include <jansson.h>

#include "app.h"
#include "buf.h"
#include "request.h"
#include "session.h"

enum sg_auth_kind { SG_AUTH_BEARER, SG_AUTH_BASIC, SG_AUTH_SESSION, SG_AUTH_GUEST };

struct sg_principal {
	enum sg_auth_kind kind;
	char name[SG_NAME_MAX + 1]; /* "" for GUEST */
	json_t *channels;           /* a reference: sorted channel names, "!" included */
	json_t *roles;              /* a reference: sorted role names */
	struct sg_session session;  /* the session used (kind SG_AUTH_SESSION) */
};

/* Returns "bearer", "basic", "session" or "guest". */
const char *sg_auth_kind_name(enum sg_auth_kind kind);

/*
 * Identifies the request's user.  mask selects the kinds of credential
 * looked at (1 << SG_AUTH_*; GUEST only when nothing else was sent).
 * Returns 0 with *p filled (free with sg_principal_free), or -1 with err
 * set: 401 "Login required" (no credentials, guest disabled), 401 "Invalid
 * login", 401 "Session Invalid", 400 for a malformed Authorization header,
 * 503/500 for store failures.
 */
int sg_auth_identify(struct sg_app *app, const struct sg_db_config *db, const struct sg_request *r,
	unsigned mask, struct sg_principal *p, struct sg_error *err);

#define SG_AUTH_ALL                                                                                \
	((1u << SG_AUTH_BEARER) | (1u << SG_AUTH_BASIC) | (1u << SG_AUTH_SESSION) |                \
		(1u << SG_AUTH_GUEST))

/*
 * Checks a name and password (POST /_session, Basic).  Returns 0 with *p
 * filled, or -1 with err set: 401 "Invalid login", 400 "User is disabled"
 * when disabled_is_400 (else 401 "Invalid login").
 */
int sg_auth_password(struct sg_app *app, const struct sg_db_config *db, const char *name,
	const char *password, int disabled_is_400, struct sg_principal *p, struct sg_error *err);

/*
 * Fills *p for user name of db (already authenticated, e.g. by an admin
 * session request), refusing a missing (404) or disabled (400) user.
 */
int sg_auth_principal(struct sg_app *app, const struct sg_db_config *db, const char *name,
	struct sg_principal *p, struct sg_error *err);

/*
 * Splits an "Authorization: Basic" header value (after "Basic ") into
 * user and password (both cleared first).  Returns 0, or -1 with err set
 * (400) when it is not base64 or has no colon.
 */
int sg_auth_basic_parse(const char *b64, struct sg_buf *user, struct sg_buf *password,
	struct sg_error *err);

/*
 * Admits a request to the admin API: with admin_users configured, a Basic
 * header naming one of them with the right password; without, only a
 * loopback REMOTE_ADDR.  Returns 0, or -1 with err set (401 or 403).
 */
int sg_auth_admin(struct sg_app *app, const struct sg_request *r, struct sg_error *err);

/*
 * Sends a refusal: err's status and reason, with WWW-Authenticate on a
 * 401 unless the database turned it off (db may be NULL: header sent).
 */
void
sg_auth_refuse(struct sg_request *r, const struct sg_db_config *db, const struct sg_error *err);

/*
 * Returns a new userCtx answer: {"authentication_handlers":["default",
 * "cookie"],"ok":true,"userCtx":{"channels":{"<c>":1,...},"name":<name or
 * null>}}; p may be NULL for an anonymous caller with no channels.
 */
json_t *sg_auth_session_info(const struct sg_principal *p);

/*
 * Drops p's references; p may be NULL.  The arrays may be shared with the
 * cache: read them, never modify them.
 */
void sg_principal_free(struct sg_principal *p);

#endif
