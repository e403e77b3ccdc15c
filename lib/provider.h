/*
 * provider.h: the identity providers of a database and what syncgate
 * knows about them (SPEC section 7).
 *
 * An identity provider is an OpenID Connect provider (oidc.providers) or
 * a local JWT issuer (local_jwt).  For the former, the discovery document
 * and the JWKS it names are fetched over HTTP and kept in the store with
 * their fetch time, so that every process shares one copy; a local JWT
 * issuer has its keys in the configuration or at a jwks_uri.
 *
 * Fetching is lazy: the first request that needs a provider fetches what
 * the store lacks, and a stale copy (older than SG_PROVIDER_FRESH) is
 * refreshed the same way.  A failed fetch is retried after a backoff
 * shared through the store (1 s doubling up to SG_PROVIDER_BACKOFF_MAX),
 * so a provider that is down costs nothing to the others and works again
 * once it is back.  A discovery document whose issuer differs from the
 * configured one counts as a failure: the provider is unusable.
 *
 * An ID token whose kid no key knows makes the JWKS be fetched again, at
 * most once per SG_PROVIDER_KID_REFETCH seconds per provider across all
 * processes, so key rotation needs no restart and cannot be used to flood
 * the provider.
 */
#ifndef SG_PROVIDER_H
#define SG_PROVIDER_H

#include <time.h>

#include <jansson.h>

#include "app.h"
#include "config.h"
#include "error.h"
#include "http_client.h"

#define SG_PROVIDER_FRESH 3600     /* seconds a fetched copy is used without refetch */
#define SG_PROVIDER_BACKOFF_MAX 60 /* longest wait between failed fetches */
#define SG_PROVIDER_KID_REFETCH 60 /* least time between JWKS fetches for unknown kids */

/* One identity provider of a database; every pointer borrowed from the config. */
struct sg_idp {
	const struct sg_db_config *db;
	const struct sg_oidc_provider *oidc; /* exactly one of oidc and local is set */
	const struct sg_local_jwt *local;
	const char *name;
	const char *issuer;
	const char *client_id;
	int register_users;
	const char *username_claim; /* NULL: "sub" */
	const char *user_prefix;    /* NULL when unset */
	const char *roles_claim;    /* NULL when unset */
	const char *channels_claim; /* NULL when unset */
};

/* Fills idp for OIDC provider p of db. */
void
sg_idp_oidc(struct sg_idp *idp, const struct sg_db_config *db, const struct sg_oidc_provider *p);

/* Fills idp for local JWT issuer j of db. */
void sg_idp_local(struct sg_idp *idp, const struct sg_db_config *db, const struct sg_local_jwt *j);

/*
 * Finds the provider of db that accepts a token with these claims: the one
 * whose issuer equals "iss" and whose client_id is in "aud" (string or
 * array), OIDC providers first, then local_jwt.  Returns 0 with idp
 * filled, or -1 when none does.
 */
int sg_idp_route(const struct sg_db_config *db, const json_t *claims, struct sg_idp *idp);

/* The endpoints of an OIDC provider, from its discovery document. */
struct sg_idp_endpoints {
	char *authorization; /* owned */
	char *token;         /* owned; NULL when the document names none */
	int auth_post;       /* 1: client_secret_post, the only method it supports */
};

/*
 * Gets the endpoints of OIDC provider idp, fetching its metadata when
 * needed.  Returns 0 with *out filled (free with sg_idp_endpoints_free),
 * or -1 with err set (502 "Provider unavailable").
 */
int sg_provider_endpoints(struct sg_app *app, const struct sg_idp *idp,
	struct sg_idp_endpoints *out, struct sg_error *err);

void sg_idp_endpoints_free(struct sg_idp_endpoints *e);

/*
 * Validates an ID token (n bytes) issued by idp: every rule of
 * SPEC section 7, nonce included when nonce is non-NULL.  Fetches the
 * provider's keys when needed and once more (rate-limited) for an unknown
 * kid.  Returns 0 with a new reference to the claims in *claims, or -1
 * with err set: 401 "Invalid login" for a refused token (the rule that
 * failed is logged), 502 when the provider's keys cannot be had.
 */
int sg_provider_validate(struct sg_app *app, const struct sg_idp *idp, const char *token, size_t n,
	const char *nonce, json_t **claims, struct sg_error *err);

/*
 * Fetches, at a program's start, the metadata of every provider the store
 * has no fresh copy of, so the first login does not wait for it.  A
 * provider that cannot be reached is logged and left to the backoff; the
 * program starts all the same.
 */
void sg_provider_prefetch(struct sg_app *app);

/* The HTTP client options from the configuration. */
void sg_provider_http_opts(const struct sg_app *app, struct sg_http_opts *opts);

#endif
