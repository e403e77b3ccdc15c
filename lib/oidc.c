/*
 * oidc.c: the OpenID Connect flows.
 *
 * A login starts at /_oidc: a state (160 random bits), a nonce and a PKCE
 * verifier are stored server-side for SG_OIDC_STATE_TTL seconds, the
 * state also goes into a cookie, and the browser is sent to the provider.
 * The callback takes the state once (it is deleted as it is read), checks
 * it against the cookie, exchanges the code with the client secret and the
 * verifier, validates the ID token with the stored nonce, and logs the
 * user in.  Refresh does the same with a refresh grant; a refresh token
 * handed out here is bound to its user.  Bearer tokens are validated the
 * same way and remembered per process until they expire.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "encode.h"
#include "jose.h"
#include "log.h"
#include "oidc.h"
#include "secure.h"
#include "session.h"
#include "store.h"
#include "user.h"

/* Longest URL built here: an authorization request with every parameter. */
#define URL_MAX 8192
/* Random bytes of a state (SPEC asks at least 128 bits), a nonce, a PKCE verifier. */
#define STATE_BYTES 20
#define NONCE_BYTES 16
#define VERIFIER_BYTES 32
/* Validated Bearer tokens remembered per process (SPEC section 8). */
#define BEARER_CACHE 256
/* Longest provider error code repeated in a reason. */
#define PROVIDER_ERROR_MAX 64
/* Longest error_description repeated in a reason, before escaping. */
#define DESCRIPTION_MAX 200

/* ---- user names and accounts ---- */

int
sg_oidc_username(const struct sg_idp *idp, const json_t *claims, struct sg_buf *out,
	struct sg_error *err)
{
	const char *claim = idp->username_claim != NULL ? idp->username_claim : "sub";
	const char *v = json_string_value(json_object_get(claims, claim));
	const char *host;
	struct sg_buf issuer;
	size_t n;
	int rc = -1;

	sg_buf_init(&issuer, 1024);
	sg_buf_reset(out);
	if (v == NULL || *v == '\0') {
		sg_error_set(err, 401, "Invalid login");
		sg_log_event(SG_LOG_INFO, idp->db->name, NULL, "auth.token",
			"refused by provider %s: no %s claim", idp->name, claim);
		goto out;
	}
	if (idp->user_prefix != NULL) {
		if (sg_buf_adds(out, idp->user_prefix) != 0 || sg_buf_add(out, "_", 1) != 0)
			goto bad;
	} else if (idp->username_claim == NULL) {
		host = strstr(idp->issuer, "://");
		host = host != NULL ? host + 3 : idp->issuer;
		n = strlen(host);
		while (n > 0 && host[n - 1] == '/')
			n--;
		if (sg_buf_add(&issuer, host, n) != 0 ||
			sg_query_escape(sg_buf_str(&issuer), out) != 0 ||
			sg_buf_add(out, "_", 1) != 0)
			goto bad;
	}
	if (sg_query_escape(v, out) != 0)
		goto bad;
	if (sg_user_name_valid(sg_buf_str(out)) && strcmp(sg_buf_str(out), SG_GUEST) != 0) {
		rc = 0;
		goto out;
	}
bad:
	sg_error_set(err, 401, "Invalid login");
	sg_log_event(SG_LOG_INFO, idp->db->name, NULL, "auth.token",
		"refused by provider %s: the %s claim makes no valid user name", idp->name, claim);
out:
	sg_buf_free(&issuer);
	return rc;
}

/*
 * Returns a new array of the valid names in the claim value v (a string
 * or an array of strings); an absent or other value gives [].
 */
static json_t *
claim_names(const json_t *v, int (*valid)(const char *))
{
	json_t *out = json_array(), *item;
	size_t i;

	if (out == NULL)
		return NULL;
	if (json_is_string(v) && valid(json_string_value(v)))
		json_array_append(out, (json_t *)v);
	json_array_foreach (v, i, item)
		if (json_is_string(item) && valid(json_string_value(item)))
			json_array_append(out, item);
	return out;
}

/* Sets user[key] = v (stolen) when it differs; returns 1 when it did. */
static int
update(json_t *user, const char *key, json_t *v)
{
	if (v == NULL || json_equal(json_object_get(user, key), v)) {
		json_decref(v);
		return 0;
	}
	json_object_set_new(user, key, v);
	return 1;
}

/* Copies what the token says of the user into its record; 1 when it changed. */
static int
apply_claims(json_t *user, const struct sg_idp *idp, const json_t *claims)
{
	const json_t *email = json_object_get(claims, "email");
	int changed = 0;

	if (json_is_string(email) && json_string_length(email) > 0 &&
		json_string_length(email) <= 254)
		changed |= update(user, "email", json_incref((json_t *)email));
	changed |= update(user, "jwt_issuer", json_string(idp->issuer));
	if (idp->roles_claim != NULL)
		changed |= update(user, "jwt_roles",
			claim_names(json_object_get(claims, idp->roles_claim), sg_user_name_valid));
	if (idp->channels_claim != NULL)
		changed |= update(user, "jwt_channels",
			claim_names(json_object_get(claims, idp->channels_claim),
				sg_channel_name_valid));
	return changed;
}

enum login_outcome { LOGIN_OK, LOGIN_NO_USER, LOGIN_DISABLED, LOGIN_OTHER_USER };

struct login_args {
	const struct sg_idp *idp;
	const json_t *claims;
	const char *name;
	int session;             /* create a session */
	const char *refresh_old; /* digest (hex) of the refresh token used, or NULL */
	const char *refresh_new; /* digest (hex) of the refresh token handed out, or NULL */
	time_t now;
	enum login_outcome outcome;
	int created;
	struct sg_session s;
};

/* Checks and moves the binding of a refresh token to its user. */
static int
rebind(struct sg_txn *txn, struct login_args *a)
{
	const char *db = a->idp->db->name;
	struct sg_key k;
	struct sg_buf val;
	json_t *bound = NULL;
	char *text = NULL;
	int rc = SG_STORE_OK;

	sg_buf_init(&val, SG_STORE_VALUE_MAX);
	if (a->refresh_old != NULL) {
		if (sg_key_make(&k, db, a->refresh_old, (char *)NULL) != 0) {
			rc = SG_STORE_FAIL;
			goto out;
		}
		rc = sg_store_get(txn, SG_TABLE_REFRESH, &k, SG_GET_FOR_UPDATE, &val);
		if (rc == SG_STORE_OK) {
			bound = json_loadb(sg_buf_str(&val), val.len, 0, NULL);
			if (!sg_secure_streq(json_string_value(json_object_get(bound, "user")),
				    a->name)) {
				a->outcome = LOGIN_OTHER_USER;
				goto out;
			}
			if (a->refresh_new != NULL && strcmp(a->refresh_new, a->refresh_old) != 0)
				rc = sg_store_del(txn, SG_TABLE_REFRESH, &k);
			json_decref(bound);
			bound = NULL;
		}
		if (rc == SG_STORE_NOTFOUND)
			rc = SG_STORE_OK;
		if (rc != SG_STORE_OK)
			goto out;
	}
	if (a->refresh_new != NULL) {
		bound = json_pack("{s:s, s:s, s:I}", "user", a->name, "provider", a->idp->name,
			"created", (json_int_t)a->now);
		text = bound != NULL ? json_dumps(bound, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		if (text == NULL || sg_key_make(&k, db, a->refresh_new, (char *)NULL) != 0) {
			rc = SG_STORE_FAIL;
			goto out;
		}
		rc = sg_store_put(txn, SG_TABLE_REFRESH, &k, text, strlen(text));
	}
out:
	free(text);
	json_decref(bound);
	sg_buf_free(&val);
	return rc;
}

/*
 * Loads the user, registers it when allowed, updates it from the token,
 * checks the refresh binding and creates the session, in one transaction.
 */
static int
login_txn(struct sg_txn *txn, void *arg)
{
	struct login_args *a = arg;
	const struct sg_db_config *db = a->idp->db;
	json_t *user = NULL;
	char when[32];
	int rc, changed;

	a->created = 0;
	a->outcome = LOGIN_OK;
	rc = sg_user_load(txn, db, a->name, SG_GET_FOR_UPDATE, &user);
	if (rc == SG_STORE_NOTFOUND) {
		if (!a->idp->register_users) {
			a->outcome = LOGIN_NO_USER;
			return SG_STORE_OK;
		}
		user = json_pack("{s:s, s:[], s:[]}", "name", a->name, "admin_channels",
			"admin_roles");
		if (user == NULL)
			return SG_STORE_FAIL;
		a->created = 1;
	} else if (rc != SG_STORE_OK) {
		return rc;
	}
	if (sg_user_disabled(user)) {
		a->outcome = LOGIN_DISABLED;
		goto done;
	}
	rc = rebind(txn, a);
	if (rc != SG_STORE_OK || a->outcome != LOGIN_OK)
		goto done;
	changed = apply_claims(user, a->idp, a->claims);
	if (changed || a->created) {
		sg_session_time(a->now, when);
		json_object_set_new(user, "jwt_last_updated", json_string(when));
		rc = sg_user_save(txn, db->name, user);
		if (rc != SG_STORE_OK)
			goto done;
	}
	if (a->session)
		rc = sg_session_create(txn, db->name, a->name, db->session_ttl, a->now, &a->s);
done:
	json_decref(user);
	return rc;
}

/* Runs the login; returns 0, or -1 with err set (401, store errors). */
static int
login(struct sg_app *app, struct login_args *a, struct sg_error *err)
{
	const char *db = a->idp->db->name;

	a->now = time(NULL);
	if (sg_store_run(app->store, SG_TXN_DURABLE, login_txn, a, err) != SG_STORE_OK)
		return -1;
	switch (a->outcome) {
	case LOGIN_OK:
		if (a->created)
			sg_log_event(SG_LOG_INFO, db, a->name, "user.register", "ok, provider %s",
				a->idp->name);
		return 0;
	case LOGIN_NO_USER:
		sg_log_event(SG_LOG_INFO, db, a->name, "auth.oidc",
			"refused: no such user and provider %s does not register", a->idp->name);
		break;
	case LOGIN_DISABLED:
		sg_log_event(SG_LOG_INFO, db, a->name, "auth.oidc", "refused: disabled");
		break;
	case LOGIN_OTHER_USER:
		sg_log_event(SG_LOG_WARN, db, a->name, "auth.oidc",
			"refused: the refresh token belongs to another user");
		break;
	}
	return sg_error_set(err, 401, "Invalid login");
}

/* ---- requests ---- */

/* Chooses the provider from ?provider= or the default; 400 when none fits. */
static int
pick_provider(const struct sg_request *r, const struct sg_db_config *db, struct sg_idp *idp,
	int *is_default, struct sg_error *err)
{
	const struct sg_oidc_provider *p;
	struct sg_buf name;
	int found, rc = -1;

	sg_buf_init(&name, 256);
	found = sg_request_query(r, "provider", &name);
	if (found < 0) {
		sg_error_set(err, 400, "Invalid provider parameter");
		goto out;
	}
	if (db->n_providers == 0) {
		sg_error_set(err, 400, "No OpenID Connect provider is configured");
		goto out;
	}
	p = found ? sg_config_provider(db, sg_buf_str(&name))
		  : &db->providers[db->default_provider];
	if (p == NULL) {
		sg_error_set(err, 400, "Unknown provider");
		goto out;
	}
	sg_idp_oidc(idp, db, p);
	*is_default = p == &db->providers[db->default_provider];
	rc = 0;
out:
	sg_buf_free(&name);
	return rc;
}

/* Returns 1 when s is usable as a Host header value in a URL. */
static int
host_valid(const char *s)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			    (*s >= '0' && *s <= '9') || strchr(".-:[]", *s) != NULL))
			return 0;
	return 1;
}

/*
 * Appends the redirect_uri: callback_url, or this server's own
 * /{db}/_oidc_callback, with ?provider=NAME for a non-default provider.
 */
static int
redirect_uri(const struct sg_request *r, const struct sg_idp *idp, int is_default,
	struct sg_buf *out, struct sg_error *err)
{
	const char *host = sg_request_param(r, "HTTP_HOST");
	const char *https = sg_request_param(r, "HTTPS");
	const char *base = idp->oidc->callback_url;

	if (base != NULL) {
		if (sg_buf_adds(out, base) != 0)
			return sg_error_set(err, 500, "callback_url too long");
	} else if (!host_valid(host)) {
		return sg_error_set(err, 400,
			"No callback_url is configured and the Host is invalid");
	} else if (sg_buf_addf(out, "%s://%s/%s/_oidc_callback",
			   https != NULL && strcmp(https, "on") == 0 ? "https" : "http", host,
			   idp->db->name) != 0) {
		return sg_error_set(err, 400, "Host too long");
	}
	if (!is_default &&
		(sg_buf_adds(out,
			 strchr(sg_buf_str(out), '?') != NULL ? "&provider=" : "?provider=") != 0 ||
			sg_query_escape(idp->name, out) != 0))
		return sg_error_set(err, 500, "callback_url too long");
	return 0;
}

/* Appends "&name=value" (value escaped); the first one without '&'. */
static int
param(struct sg_buf *b, const char *name, const char *value)
{
	if ((b->len > 0 && b->data[b->len - 1] != '?' && sg_buf_add(b, "&", 1) != 0) ||
		sg_buf_adds(b, name) != 0 || sg_buf_add(b, "=", 1) != 0 ||
		sg_query_escape(value, b) != 0)
		return -1;
	return 0;
}

/* Adds the state cookie (value NULL: the one that clears it). */
static void
state_cookie(struct sg_request *r, const struct sg_db_config *db, const char *value)
{
	struct sg_buf c;

	sg_buf_init(&c, SG_SESSION_COOKIE_MAX);
	if (sg_buf_addf(&c, "%s=%s; Path=/%s; HttpOnly; Max-Age=%d; SameSite=Lax%s",
		    SG_OIDC_STATE_COOKIE, value != NULL ? value : "", db->name,
		    value != NULL ? SG_OIDC_STATE_TTL : 0,
		    db->cookie_secure ? "; Secure" : "") == 0)
		sg_response_header(r, "Set-Cookie", sg_buf_str(&c));
	sg_buf_free(&c);
}

/* Adds the session cookie of a new session. */
static void
session_cookie(struct sg_request *r, const struct sg_db_config *db, const char *sid)
{
	struct sg_buf c;

	sg_buf_init(&c, SG_SESSION_COOKIE_MAX);
	if (sg_session_cookie(db, sid, &c) == 0)
		sg_response_header(r, "Set-Cookie", sg_buf_str(&c));
	sg_buf_free(&c);
}

/* Checks the path is /{db}/<endpoint> and the method GET or HEAD. */
static int
route(struct sg_request *r, const char *endpoint)
{
	if (r->n_segs != 2 || strcmp(r->segs[1], endpoint) != 0) {
		sg_response_error(r, 404, "missing");
		return -1;
	}
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
		sg_response_method_not_allowed(r, "GET, HEAD");
		return -1;
	}
	return 0;
}

/* ---- /_oidc and /_oidc_challenge ---- */

struct state_args {
	const char *db;
	const char *state;
	json_t *rec; /* put: the record (borrowed); take: the record read (new) */
};

static int
state_put_txn(struct sg_txn *txn, void *arg)
{
	struct state_args *a = arg;
	struct sg_key k;
	char *text = json_dumps(a->rec, JSON_COMPACT);
	int rc = SG_STORE_FAIL;

	if (text != NULL && sg_key_make(&k, a->db, a->state, (char *)NULL) == 0)
		rc = sg_store_put(txn, SG_TABLE_STATES, &k, text, strlen(text));
	if (text != NULL)
		sg_secure_wipe(text, strlen(text));
	free(text);
	return rc;
}

/* Reads and deletes a state: each one serves at most one callback. */
static int
state_take_txn(struct sg_txn *txn, void *arg)
{
	struct state_args *a = arg;
	struct sg_key k;
	struct sg_buf val;
	int rc;

	json_decref(a->rec);
	a->rec = NULL;
	if (sg_key_make(&k, a->db, a->state, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	sg_buf_init(&val, SG_STORE_VALUE_MAX);
	rc = sg_store_get(txn, SG_TABLE_STATES, &k, SG_GET_FOR_UPDATE, &val);
	if (rc == SG_STORE_OK)
		rc = sg_store_del(txn, SG_TABLE_STATES, &k);
	if (rc == SG_STORE_OK)
		a->rec = json_loadb(sg_buf_str(&val), val.len, 0, NULL);
	sg_secure_wipe(val.data, val.cap);
	sg_buf_free(&val);
	return rc;
}

/* Deletes up to a batch of expired states of every database. */
struct purge_args {
	long long now;
	size_t n;
	struct sg_key keys[16];
};

static int
state_scan(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct purge_args *a = arg;
	json_t *rec = json_loadb(val, vlen, 0, NULL);
	json_int_t expires = json_integer_value(json_object_get(rec, "expires"));

	json_decref(rec);
	if (expires >= a->now || klen > SG_KEY_MAX)
		return 0;
	memcpy(a->keys[a->n].data, key, klen);
	a->keys[a->n].len = klen;
	return ++a->n == sizeof(a->keys) / sizeof(a->keys[0]);
}

static int
state_purge_txn(struct sg_txn *txn, void *arg)
{
	struct purge_args *a = arg;
	struct sg_key all;
	size_t i;
	int rc;

	a->n = 0;
	all.len = 0;
	rc = sg_store_scan(txn, SG_TABLE_STATES, &all, state_scan, a);
	for (i = 0; rc == SG_STORE_OK && i < a->n; i++) {
		rc = sg_store_del(txn, SG_TABLE_STATES, &a->keys[i]);
		if (rc == SG_STORE_NOTFOUND)
			rc = SG_STORE_OK;
	}
	return rc;
}

/* Now and then, removes states of logins that were never finished. */
static void
state_upkeep(struct sg_app *app)
{
	static unsigned calls;
	struct purge_args a;
	struct sg_error err;

	if (++calls % 32 != 0)
		return;
	a.now = time(NULL);
	if (sg_store_run(app->store, 0, state_purge_txn, &a, &err) != SG_STORE_OK)
		sg_log(SG_LOG_WARN, "state purge failed: %s", err.reason);
}

/* Builds the authorization URL of a new login and stores its state. */
static int
start_login(struct sg_app *app, struct sg_request *r, const struct sg_idp *idp, int is_default,
	struct sg_buf *url, char *state, struct sg_error *err)
{
	struct sg_idp_endpoints ep;
	struct sg_buf redirect, scope, verifier_b64;
	struct state_args sa;
	unsigned char verifier[VERIFIER_BYTES];
	char nonce[2 * NONCE_BYTES + 1], challenge[44];
	struct sg_buf offline;
	int is_offline, rc = -1;
	size_t i;

	memset(&ep, 0, sizeof(ep));
	sg_buf_init(&redirect, URL_MAX);
	sg_buf_init(&scope, URL_MAX);
	sg_buf_init(&verifier_b64, 128);
	sg_buf_init(&offline, 16);
	sa.rec = NULL;
	is_offline = sg_request_query(r, "offline", &offline) == 1 &&
		strcmp(sg_buf_str(&offline), "true") == 0;
	if (redirect_uri(r, idp, is_default, &redirect, err) != 0)
		goto out;
	if (sg_provider_endpoints(app, idp, &ep, err) != 0)
		goto out;
	if (sg_secure_random_hex(STATE_BYTES, state) != 0 ||
		sg_secure_random_hex(NONCE_BYTES, nonce) != 0 ||
		sg_secure_random(verifier, sizeof(verifier)) != 0 ||
		sg_base64url_encode(verifier, sizeof(verifier), &verifier_b64) != 0 ||
		sg_jose_pkce_challenge(sg_buf_str(&verifier_b64), challenge) != 0) {
		sg_error_set(err, 500, "No randomness");
		goto out;
	}
	for (i = 0; i < idp->oidc->scope.n; i++)
		if (sg_buf_adds(&scope, i > 0 ? " " : "") != 0 ||
			sg_buf_adds(&scope, idp->oidc->scope.v[i]) != 0)
			goto too_long;
	if (is_offline && strstr(sg_buf_str(&scope), "offline_access") == NULL &&
		sg_buf_adds(&scope, scope.len > 0 ? " offline_access" : "offline_access") != 0)
		goto too_long;
	if (sg_buf_adds(url, ep.authorization) != 0 ||
		sg_buf_adds(url, strchr(ep.authorization, '?') != NULL ? "&" : "?") != 0 ||
		param(url, "response_type", "code") != 0 ||
		param(url, "client_id", idp->client_id) != 0 ||
		param(url, "redirect_uri", sg_buf_str(&redirect)) != 0 ||
		param(url, "scope", sg_buf_str(&scope)) != 0 || param(url, "state", state) != 0 ||
		param(url, "nonce", nonce) != 0 || param(url, "code_challenge", challenge) != 0 ||
		param(url, "code_challenge_method", "S256") != 0 ||
		(is_offline && param(url, "prompt", "consent") != 0))
		goto too_long;
	sa.db = idp->db->name;
	sa.state = state;
	sa.rec = json_pack("{s:s, s:s, s:s, s:s, s:I}", "provider", idp->name, "nonce", nonce,
		"verifier", sg_buf_str(&verifier_b64), "redirect_uri", sg_buf_str(&redirect),
		"expires", (json_int_t)time(NULL) + SG_OIDC_STATE_TTL);
	if (sa.rec == NULL || sg_store_run(app->store, 0, state_put_txn, &sa, err) != SG_STORE_OK) {
		if (err->status == 0)
			sg_error_set(err, 500, "Out of memory");
		goto out;
	}
	rc = 0;
	goto out;
too_long:
	sg_error_set(err, 500, "Authorization request too long");
out:
	json_decref(sa.rec);
	sg_secure_wipe(verifier, sizeof(verifier));
	sg_secure_wipe(nonce, sizeof(nonce));
	if (verifier_b64.data != NULL)
		sg_secure_wipe(verifier_b64.data, verifier_b64.cap);
	sg_buf_free(&verifier_b64);
	sg_buf_free(&redirect);
	sg_buf_free(&scope);
	sg_buf_free(&offline);
	sg_idp_endpoints_free(&ep);
	return rc;
}

void
sg_oidc_handle_start(struct sg_request *r, void *ctx)
{
	struct sg_app *app = ctx;
	const struct sg_db_config *db = sg_app_db(app, r);
	struct sg_idp idp;
	struct sg_error err;
	struct sg_buf url, header;
	char state[2 * STATE_BYTES + 1], tag[SG_TAG_LEN];
	int challenge, is_default;

	if (db == NULL)
		return;
	challenge = r->n_segs == 2 && strcmp(r->segs[1], "_oidc_challenge") == 0;
	if (route(r, challenge ? "_oidc_challenge" : "_oidc") != 0)
		return;
	sg_error_clear(&err);
	sg_buf_init(&url, URL_MAX);
	sg_buf_init(&header, URL_MAX + 32);
	if (pick_provider(r, db, &idp, &is_default, &err) != 0 ||
		start_login(app, r, &idp, is_default, &url, state, &err) != 0) {
		sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.start", "refused: %s", err.reason);
		sg_response_from_error(r, &err);
		goto out;
	}
	sg_secure_tag(state, tag);
	sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.start", "provider %s, state %s", idp.name,
		tag);
	state_cookie(r, db, state);
	if (!challenge) {
		sg_response_redirect(r, sg_buf_str(&url));
	} else if (sg_buf_addf(&header, "OIDC login=\"%s\"", sg_buf_str(&url)) == 0) {
		sg_response_header(r, "WWW-Authenticate", sg_buf_str(&header));
		sg_response_error(r, 401, "Login required");
	} else {
		sg_response_error(r, 500, "Authorization request too long");
	}
	sg_secure_wipe(state, sizeof(state));
	state_upkeep(app);
out:
	sg_buf_free(&url);
	sg_buf_free(&header);
}

/* ---- the token endpoint ---- */

/* Keeps a provider's error code printable and short for a reason. */
static void
provider_error(const json_t *resp, char *out, size_t outsz)
{
	const char *e = json_string_value(json_object_get(resp, "error"));
	size_t i = 0;

	if (e == NULL)
		e = "no error code";
	for (; *e != '\0' && i + 1 < outsz && i < PROVIDER_ERROR_MAX; e++)
		if ((*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') ||
			(*e >= '0' && *e <= '9') || *e == '_' || *e == '-' || *e == '.')
			out[i++] = *e;
	out[i] = '\0';
}

/*
 * POSTs the grant in form (parameters already encoded) to the token
 * endpoint with the client's authentication.  Returns 0 with *resp the
 * JSON object answered and *status its HTTP status, or -1 with err set
 * (502).
 */
static int
token_request(struct sg_app *app, const struct sg_idp *idp, struct sg_buf *form, json_t **resp,
	long *status, struct sg_error *err)
{
	struct sg_idp_endpoints ep;
	struct sg_http_opts opts;
	struct sg_http_response hr;
	const char *secret = idp->oidc->client_secret;
	int basic, rc = -1;

	*resp = NULL;
	sg_http_response_init(&hr);
	if (sg_provider_endpoints(app, idp, &ep, err) != 0)
		goto out;
	if (ep.token == NULL || !sg_http_url_allowed(ep.token)) {
		sg_error_set(err, 502, "The provider has no usable token endpoint");
		goto out;
	}
	basic = secret != NULL && !ep.auth_post;
	if (!basic &&
		(param(form, "client_id", idp->client_id) != 0 ||
			(secret != NULL && param(form, "client_secret", secret) != 0))) {
		sg_error_set(err, 500, "Token request too long");
		goto out;
	}
	sg_provider_http_opts(app, &opts);
	if (sg_http_post_form(&opts, ep.token, sg_buf_str(form), basic ? idp->client_id : NULL,
		    basic ? secret : NULL, &hr, err) != 0)
		goto out;
	*status = hr.status;
	*resp = json_loadb(sg_buf_str(&hr.body), hr.body.len, 0, NULL);
	if (!json_is_object(*resp)) {
		json_decref(*resp);
		*resp = NULL;
		sg_error_set(err, 502, "The token endpoint answered HTTP %ld without JSON",
			hr.status);
		goto out;
	}
	rc = 0;
out:
	if (form->data != NULL)
		sg_secure_wipe(form->data, form->cap);
	if (hr.body.data != NULL)
		sg_secure_wipe(hr.body.data, hr.body.cap);
	sg_http_response_free(&hr);
	sg_idp_endpoints_free(&ep);
	return rc;
}

/* Writes the hex SHA-256 of a refresh token into out[65]. */
static int
refresh_digest(const char *token, char *out)
{
	unsigned char d[SG_SHA256_LEN];

	if (sg_secure_sha256(token, strlen(token), d) != 0)
		return -1;
	sg_hex_encode(d, sizeof(d), out);
	return 0;
}

/* Sets key to the string v in o when v is a non-empty string. */
static void
set_nonempty(json_t *o, const char *key, const json_t *v)
{
	if ((json_is_string(v) && json_string_length(v) > 0) || json_is_integer(v))
		json_object_set(o, key, (json_t *)v);
}

/*
 * Finishes a login from the token endpoint's answer tr: validates the ID
 * token (with nonce when non-NULL), logs the user in (checking the refresh
 * token's binding when refresh_used is non-NULL) and answers 200.
 */
static void
finish_login(struct sg_app *app, struct sg_request *r, const struct sg_idp *idp, json_t *tr,
	const char *nonce, const char *refresh_used, const char *event)
{
	const struct sg_db_config *db = idp->db;
	const char *id_token = json_string_value(json_object_get(tr, "id_token"));
	const char *refresh = json_string_value(json_object_get(tr, "refresh_token"));
	struct sg_error err;
	struct sg_buf name;
	struct login_args a;
	json_t *claims = NULL, *body = NULL;
	char old_digest[2 * SG_SHA256_LEN + 1], new_digest[2 * SG_SHA256_LEN + 1];
	char tag[SG_TAG_LEN];

	sg_error_clear(&err);
	sg_buf_init(&name, SG_NAME_MAX);
	memset(&a, 0, sizeof(a));
	if (refresh == NULL || *refresh == '\0')
		refresh = refresh_used;
	if (id_token == NULL) {
		sg_error_set(&err, 502, "The provider sent no ID token");
		goto fail;
	}
	if (sg_provider_validate(app, idp, id_token, strlen(id_token), nonce, &claims, &err) != 0 ||
		sg_oidc_username(idp, claims, &name, &err) != 0)
		goto fail;
	a.idp = idp;
	a.claims = claims;
	a.name = sg_buf_str(&name);
	a.session = !idp->oidc->disable_session;
	if (refresh_used != NULL && refresh_digest(refresh_used, old_digest) == 0)
		a.refresh_old = old_digest;
	if (refresh != NULL && refresh_digest(refresh, new_digest) == 0)
		a.refresh_new = new_digest;
	if (login(app, &a, &err) != 0)
		goto fail;
	body = json_object();
	if (body == NULL) {
		sg_error_set(&err, 500, "Out of memory");
		goto fail;
	}
	json_object_set_new(body, "id_token", json_string(id_token));
	if (refresh != NULL)
		json_object_set_new(body, "refresh_token", json_string(refresh));
	if (a.session) {
		json_object_set_new(body, "session_id", json_string(a.s.id));
		session_cookie(r, db, a.s.id);
	}
	json_object_set_new(body, "name", json_string(a.name));
	if (idp->oidc->include_access) {
		set_nonempty(body, "access_token", json_object_get(tr, "access_token"));
		set_nonempty(body, "token_type", json_object_get(tr, "token_type"));
		set_nonempty(body, "expires_in", json_object_get(tr, "expires_in"));
	}
	if (a.session) {
		sg_secure_tag(a.s.id, tag);
		sg_log_event(SG_LOG_INFO, db->name, a.name, event, "ok, provider %s, session %s",
			idp->name, tag);
	} else {
		sg_log_event(SG_LOG_INFO, db->name, a.name, event, "ok, provider %s, no session",
			idp->name);
	}
	sg_response_json(r, 200, body);
	json_decref(body);
	json_decref(claims);
	sg_buf_free(&name);
	sg_app_upkeep(app);
	return;
fail:
	sg_log_event(SG_LOG_INFO, db->name, name.len > 0 ? sg_buf_str(&name) : NULL, event,
		"refused: %s", err.reason);
	json_decref(claims);
	sg_buf_free(&name);
	sg_auth_refuse(r, db, &err);
}

/* ---- /_oidc_callback ---- */

/* Appends s with HTML's special characters escaped, cut at max bytes of input. */
static int
html_escape(const char *s, size_t max, struct sg_buf *out)
{
	size_t i;
	int rc = 0;

	for (i = 0; s[i] != '\0' && i < max && rc == 0; i++) {
		switch (s[i]) {
		case '<':
			rc = sg_buf_adds(out, "&lt;");
			break;
		case '>':
			rc = sg_buf_adds(out, "&gt;");
			break;
		case '&':
			rc = sg_buf_adds(out, "&amp;");
			break;
		case '"':
			rc = sg_buf_adds(out, "&quot;");
			break;
		case '\'':
			rc = sg_buf_adds(out, "&#39;");
			break;
		default:
			rc = sg_buf_add(out, &s[i], 1);
		}
	}
	return rc;
}

/* The provider sent the user back with an error: 401 with it escaped. */
static void
callback_error(struct sg_request *r, const struct sg_db_config *db, const char *error)
{
	struct sg_buf desc, reason;
	struct sg_error err;

	sg_buf_init(&desc, SG_QUERY_MAX);
	sg_buf_init(&reason, SG_ERROR_REASON_MAX);
	sg_buf_adds(&reason, "Login failed at the provider: ");
	html_escape(error, PROVIDER_ERROR_MAX, &reason);
	if (sg_request_query(r, "error_description", &desc) == 1) {
		sg_buf_adds(&reason, ": ");
		html_escape(sg_buf_str(&desc), DESCRIPTION_MAX, &reason);
	}
	sg_error_set(&err, 401, "%s", sg_buf_str(&reason));
	sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.callback", "refused: %s", err.reason);
	sg_auth_refuse(r, db, &err);
	sg_buf_free(&desc);
	sg_buf_free(&reason);
}

/*
 * Checks the state of a callback: the query's, the cookie's and the
 * stored one must agree, and the stored one is used up.  On success *rec
 * holds the stored record (new reference).
 */
static int
take_state(struct sg_app *app, struct sg_request *r, const struct sg_idp *idp, json_t **rec,
	struct sg_error *err)
{
	struct sg_buf q, c;
	struct state_args sa;
	char tag[SG_TAG_LEN] = "-";
	int rc = -1, src;

	*rec = NULL;
	sg_buf_init(&q, 256);
	sg_buf_init(&c, 256);
	sa.rec = NULL;
	if (sg_request_query(r, "state", &q) != 1 || q.len == 0) {
		sg_error_set(err, 400, "Missing state");
		goto out;
	}
	if (sg_request_cookie(r, SG_OIDC_STATE_COOKIE, &c) != 1) {
		sg_error_set(err, 400, "Missing state cookie");
		goto out;
	}
	if (!sg_secure_streq(sg_buf_str(&q), sg_buf_str(&c))) {
		sg_error_set(err, 400, "State does not match");
		goto out;
	}
	sa.db = idp->db->name;
	sa.state = sg_buf_str(&q);
	sg_secure_tag(sa.state, tag);
	src = sg_store_run(app->store, 0, state_take_txn, &sa, err);
	if (src == SG_STORE_NOTFOUND) {
		sg_error_set(err, 400, "Unknown or used state");
		goto out;
	}
	if (src != SG_STORE_OK)
		goto out;
	if (json_integer_value(json_object_get(sa.rec, "expires")) < (json_int_t)time(NULL)) {
		sg_error_set(err, 400, "Expired state");
		goto out;
	}
	if (!sg_secure_streq(json_string_value(json_object_get(sa.rec, "provider")), idp->name)) {
		sg_error_set(err, 400, "State of another provider");
		goto out;
	}
	*rec = sa.rec;
	sa.rec = NULL;
	rc = 0;
out:
	if (rc != 0 && q.len > 0)
		sg_log_event(SG_LOG_DEBUG, idp->db->name, NULL, "oidc.callback", "state %s: %s",
			tag, err->reason);
	json_decref(sa.rec);
	sg_secure_wipe(q.data, q.cap);
	sg_secure_wipe(c.data, c.cap);
	sg_buf_free(&q);
	sg_buf_free(&c);
	return rc;
}

void
sg_oidc_handle_callback(struct sg_request *r, void *ctx)
{
	struct sg_app *app = ctx;
	const struct sg_db_config *db = sg_app_db(app, r);
	struct sg_idp idp;
	struct sg_error err;
	struct sg_buf error, code, form;
	json_t *state = NULL, *tr = NULL;
	char perr[PROVIDER_ERROR_MAX + 1];
	long status = 0;
	int is_default;

	if (db == NULL || route(r, "_oidc_callback") != 0)
		return;
	sg_error_clear(&err);
	sg_buf_init(&error, SG_QUERY_MAX);
	sg_buf_init(&code, SG_QUERY_MAX);
	sg_buf_init(&form, 4 * SG_QUERY_MAX);
	if (sg_request_query(r, "error", &error) != 0) {
		callback_error(r, db, sg_buf_str(&error));
		goto out;
	}
	if (sg_request_query(r, "code", &code) != 1 || code.len == 0) {
		sg_error_set(&err, 400, "Missing code");
		goto fail;
	}
	if (pick_provider(r, db, &idp, &is_default, &err) != 0 ||
		take_state(app, r, &idp, &state, &err) != 0)
		goto fail;
	state_cookie(r, db, NULL);
	if (param(&form, "grant_type", "authorization_code") != 0 ||
		param(&form, "code", sg_buf_str(&code)) != 0 ||
		param(&form, "redirect_uri",
			json_string_value(json_object_get(state, "redirect_uri"))) != 0 ||
		param(&form, "code_verifier",
			json_string_value(json_object_get(state, "verifier"))) != 0) {
		sg_error_set(&err, 400, "Code too long");
		goto fail;
	}
	if (token_request(app, &idp, &form, &tr, &status, &err) != 0)
		goto fail;
	if (status != 200) {
		provider_error(tr, perr, sizeof(perr));
		sg_error_set(&err, 502, "The provider refused the code: %s", perr);
		goto fail;
	}
	finish_login(app, r, &idp, tr, json_string_value(json_object_get(state, "nonce")), NULL,
		"oidc.callback");
	goto out;
fail:
	sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.callback", "refused: %s", err.reason);
	sg_auth_refuse(r, db, &err);
out:
	json_decref(state);
	json_decref(tr);
	sg_secure_wipe(code.data, code.cap);
	sg_buf_free(&error);
	sg_buf_free(&code);
	sg_buf_free(&form);
}

/* ---- /_oidc_refresh ---- */

void
sg_oidc_handle_refresh(struct sg_request *r, void *ctx)
{
	struct sg_app *app = ctx;
	const struct sg_db_config *db = sg_app_db(app, r);
	struct sg_idp idp;
	struct sg_error err;
	struct sg_buf token, form;
	json_t *tr = NULL;
	char perr[PROVIDER_ERROR_MAX + 1];
	long status = 0;
	int is_default;

	if (db == NULL || route(r, "_oidc_refresh") != 0)
		return;
	sg_error_clear(&err);
	sg_buf_init(&token, SG_QUERY_MAX);
	sg_buf_init(&form, 4 * SG_QUERY_MAX);
	if (sg_request_query(r, "refresh_token", &token) != 1 || token.len == 0) {
		sg_error_set(&err, 400, "Missing refresh_token");
		goto fail;
	}
	if (pick_provider(r, db, &idp, &is_default, &err) != 0)
		goto fail;
	if (param(&form, "grant_type", "refresh_token") != 0 ||
		param(&form, "refresh_token", sg_buf_str(&token)) != 0) {
		sg_error_set(&err, 400, "Refresh token too long");
		goto fail;
	}
	if (token_request(app, &idp, &form, &tr, &status, &err) != 0)
		goto fail;
	if (status != 200) {
		provider_error(tr, perr, sizeof(perr));
		sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.refresh",
			"refused by provider %s: %s", idp.name, perr);
		sg_error_set(&err, 401, "Invalid login");
		goto fail;
	}
	finish_login(app, r, &idp, tr, NULL, sg_buf_str(&token), "oidc.refresh");
	goto out;
fail:
	sg_log_event(SG_LOG_INFO, db->name, NULL, "oidc.refresh", "refused: %s", err.reason);
	sg_auth_refuse(r, db, &err);
out:
	json_decref(tr);
	sg_secure_wipe(token.data, token.cap);
	sg_buf_free(&token);
	sg_buf_free(&form);
}

/* ---- Bearer ID tokens ---- */

/* A validated token: its digest, database, user and expiry. */
struct bearer_entry {
	unsigned char digest[SG_SHA256_LEN];
	char db[SG_DB_NAME_MAX + 1];
	char name[SG_NAME_MAX + 1];
	long long exp;
};

static struct bearer_entry bearer_cache[BEARER_CACHE];

/* The slot of a digest: its first bytes spread over the table. */
static struct bearer_entry *
bearer_slot(const unsigned char *digest)
{
	return &bearer_cache[((unsigned)digest[0] << 8 | digest[1]) % BEARER_CACHE];
}

int
sg_oidc_bearer(struct sg_app *app, const struct sg_db_config *db, const char *token, char *name,
	struct sg_error *err)
{
	unsigned char digest[SG_SHA256_LEN];
	struct bearer_entry *e;
	struct sg_idp idp;
	struct sg_buf user;
	struct login_args a;
	json_t *claims = NULL;
	size_t n = strlen(token);
	long long now = time(NULL);
	int rc = -1;

	sg_buf_init(&user, SG_NAME_MAX);
	if (n > SG_JOSE_TOKEN_MAX || sg_secure_sha256(token, n, digest) != 0) {
		sg_log_event(SG_LOG_INFO, db->name, NULL, "auth.bearer", "refused: token too long");
		sg_error_set(err, 401, "Invalid login");
		goto out;
	}
	e = bearer_slot(digest);
	if (e->exp > now && sg_secure_memeq(e->digest, digest, sizeof(digest)) &&
		strcmp(e->db, db->name) == 0) {
		memcpy(name, e->name, strlen(e->name) + 1);
		rc = 0;
		goto out;
	}
	if (sg_jose_peek(token, n, &claims, err) != 0 || sg_idp_route(db, claims, &idp) != 0) {
		sg_log_event(SG_LOG_INFO, db->name, NULL, "auth.bearer",
			"refused: no provider of this database issued the token");
		sg_error_set(err, 401, "Invalid login");
		goto out;
	}
	json_decref(claims);
	claims = NULL;
	if (sg_provider_validate(app, &idp, token, n, NULL, &claims, err) != 0 ||
		sg_oidc_username(&idp, claims, &user, err) != 0)
		goto out;
	memset(&a, 0, sizeof(a));
	a.idp = &idp;
	a.claims = claims;
	a.name = sg_buf_str(&user);
	if (login(app, &a, err) != 0)
		goto out;
	memcpy(name, a.name, user.len + 1);
	memcpy(e->digest, digest, sizeof(digest));
	memcpy(e->db, db->name, strlen(db->name) + 1);
	memcpy(e->name, a.name, user.len + 1);
	e->exp = (long long)json_number_value(json_object_get(claims, "exp"));
	rc = 0;
out:
	json_decref(claims);
	sg_buf_free(&user);
	return rc;
}
