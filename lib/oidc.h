/*
 * oidc.h: OpenID Connect logins (SPEC section 7).
 *
 * The authorization code flow (GET /{db}/_oidc and /_oidc_challenge start
 * it, /_oidc_callback ends it), the refresh grant (/_oidc_refresh), and
 * ID tokens sent as "Authorization: Bearer" (the implicit flow).  Every
 * path validates the ID token the same way (lib/provider.c, lib/jose.c),
 * derives the user name the same way and registers or updates the user
 * the same way.
 */
#ifndef SG_OIDC_H
#define SG_OIDC_H

#include <jansson.h>

#include "app.h"
#include "buf.h"
#include "provider.h"
#include "request.h"

/* Name of the cookie that carries the state of a pending login. */
#define SG_OIDC_STATE_COOKIE "sg-oidc-state"

/* Seconds a pending login (its state) stays valid. */
#define SG_OIDC_STATE_TTL 300

/*
 * Derives the user name from validated claims (SPEC section 7): the
 * username_claim (default "sub") escaped as Go's url.QueryEscape, with
 * user_prefix + "_" before it, or with neither configured the escaped
 * issuer host and path + "_".  Appends to out (cleared first).  Returns 0,
 * or -1 with err set (401) when the claim is missing or the result is not
 * a valid user name.
 */
int sg_oidc_username(const struct sg_idp *idp, const json_t *claims, struct sg_buf *out,
	struct sg_error *err);

/*
 * Identifies the user of a Bearer ID token for db: routes it to the
 * provider named by iss and aud, validates it (or finds it in this
 * process's cache of validated tokens, until its exp), registers or
 * updates the user on first validation, and copies the user name into
 * name[SG_NAME_MAX + 1].  Returns 0, or -1 with err set (401 "Invalid
 * login", 502/503/500).
 */
int sg_oidc_bearer(struct sg_app *app, const struct sg_db_config *db, const char *token, char *name,
	struct sg_error *err);

/* Handlers; ctx is the program's struct sg_app. */
void sg_oidc_handle_start(struct sg_request *r, void *ctx);    /* syncgate-oidc */
void sg_oidc_handle_callback(struct sg_request *r, void *ctx); /* syncgate-oidc-callback */
void sg_oidc_handle_refresh(struct sg_request *r, void *ctx);  /* syncgate-oidc-refresh */

#endif
