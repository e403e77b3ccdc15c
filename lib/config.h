/*
 * config.h: the configuration file (SPEC section 3), loaded once at start.
 *
 * sg_config_load reads and checks the whole schema, the OpenID Connect
 * and local_jwt blocks included: unknown keys, wrong types and impossible
 * combinations are refused with one line naming the file and the JSON
 * path.  Every string below is borrowed from the struct sg_config that
 * holds it and lives until sg_config_free.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stddef.h>

#include <jansson.h>

#include "error.h"

/* Longest database name (SPEC section 3). */
#define SG_DB_NAME_MAX 100

/* A list of strings from a JSON array. */
struct sg_strlist {
	const char **v;
	size_t n;
};

/* One OpenID Connect provider: databases.<db>.oidc.providers.<name>. */
struct sg_oidc_provider {
	const char *name;
	const char *issuer;
	const char *client_id;
	/* Client secret: validation_key, or the content of validation_key_file
	 * (read at load, trailing newline removed); NULL when neither is set.
	 * Owned by the config; wiped by sg_config_free. */
	char *client_secret;
	const char *validation_key_file; /* NULL when unset */
	const char *callback_url;        /* NULL when unset */
	int register_users;              /* "register", default 0 */
	const char *username_claim;      /* NULL when unset (SPEC 7: "sub") */
	const char *user_prefix;         /* NULL when unset */
	int disable_session;             /* default 0 */
	struct sg_strlist scope;         /* default ["openid","email"] */
	int include_access;              /* default 0 */
	const char *discovery_url;       /* NULL: {issuer}/.well-known/... */
	const char *roles_claim;         /* NULL when unset */
	const char *channels_claim;      /* NULL when unset */
};

/* One local JWT issuer: databases.<db>.local_jwt.<name>. */
struct sg_local_jwt {
	const char *name;
	const char *issuer;
	const char *client_id;
	struct sg_strlist algorithms; /* each one of RS/ES 256/384/512 */
	json_t *keys;                 /* borrowed JSON array of JWKs */
	const char *jwks_uri;         /* NULL when unset */
	int register_users;
	const char *username_claim;
	const char *user_prefix;
	const char *roles_claim;
	const char *channels_claim;
};

struct sg_db_config {
	const char *name;
	const char *cookie_name;            /* default "SyncGatewaySession" */
	int cookie_secure;                  /* default 1 */
	int cookie_http_only;               /* default 1 */
	const char *cookie_same_site;       /* "Lax" (default), "Strict", "None" */
	long session_ttl;                   /* seconds, default 86400 */
	int disable_password_auth;          /* default 0 */
	int send_www_authenticate;          /* default 1 */
	int guest_disabled;                 /* guest.disabled, default 1 */
	struct sg_strlist guest_channels;   /* guest.admin_channels, default [] */
	struct sg_oidc_provider *providers; /* in file order */
	size_t n_providers;
	size_t default_provider;        /* index into providers */
	struct sg_local_jwt *local_jwt; /* in file order */
	size_t n_local_jwt;
};

struct sg_admin_user {
	const char *name;
	const char *hash; /* crypt(3) hash */
};

struct sg_config {
	char *path;             /* owned copy of the file name */
	json_t *root;           /* owned; the strings above live here */
	const char *store_path; /* default "/var/lib/syncgate" */
	int log_level;          /* enum sg_log_level, default info */
	int log_syslog;         /* default 1 */
	long http_timeout_ms;   /* default 5000 */
	const char *ca_file;    /* NULL: the system's CAs */
	struct sg_admin_user *admins;
	size_t n_admins;
	struct sg_db_config *dbs; /* in file order */
	size_t n_dbs;
};

/*
 * Returns the file to load: $SYNCGATE_CONFIG when set and non-empty, else
 * SYSCONFDIR "/syncgate/syncgate.json".  Borrowed.
 */
const char *sg_config_default_path(void);

/*
 * Loads and checks the file at path.  On success stores a new config in
 * *out (free with sg_config_free) and returns 0.  On failure returns -1
 * and sets err->reason to one line "<file>: <json.path>: <what is wrong>"
 * (for a syntax error "<file>: line L, column C: <what>").
 */
int sg_config_load(const char *path, struct sg_config **out, struct sg_error *err);

/* Returns the database named name, or NULL.  Borrowed from cfg. */
const struct sg_db_config *sg_config_db(const struct sg_config *cfg, const char *name);

/* Returns the OIDC provider named name in db, or NULL.  Borrowed. */
const struct sg_oidc_provider *sg_config_provider(const struct sg_db_config *db, const char *name);

/* Frees cfg and wipes the secrets it held.  cfg may be NULL. */
void sg_config_free(struct sg_config *cfg);

#endif
