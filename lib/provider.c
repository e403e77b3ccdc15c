/*
 * provider.c: discovery documents and JWKS, fetched once and shared by
 * every process through the store; ID token validation with the keys.
 *
 * Each provider has one store record, PROVIDERS <db> <name> <kind>:
 *   {"discovery": {...}, "jwks": {...}, "fetched": T, "jwks_fetched": T,
 *    "jwks_serial": N, "failures": N, "retry_after": T, "kid_refetch": T}
 * A process keeps what it parsed from the record (endpoints, allowed
 * algorithms, keys) and goes back to the store only when that copy is
 * stale, missing, or lacks the key a token names.  Fetches happen outside
 * any transaction: a short transaction first claims the right to fetch
 * (retry_after, or kid_refetch for an unknown kid), another stores the
 * result.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "jose.h"
#include "log.h"
#include "provider.h"
#include "store.h"

/* Longest URL built here (discovery URL from an issuer). */
#define URL_MAX 2048

/* What one process knows of one provider. */
struct rt {
	struct rt *next;
	char *db, *name; /* owned; with kind, the key of this entry */
	int local;
	json_t *discovery;         /* owned; NULL for local JWT issuers */
	struct sg_jose_keys *keys; /* owned; NULL until loaded */
	unsigned algs;
	long long fetched;     /* the record's "fetched" this copy came from */
	long long jwks_serial; /* the record's "jwks_serial" likewise */
};

static struct rt *rts;

void
sg_idp_oidc(struct sg_idp *idp, const struct sg_db_config *db, const struct sg_oidc_provider *p)
{
	memset(idp, 0, sizeof(*idp));
	idp->db = db;
	idp->oidc = p;
	idp->name = p->name;
	idp->issuer = p->issuer;
	idp->client_id = p->client_id;
	idp->register_users = p->register_users;
	idp->username_claim = p->username_claim;
	idp->user_prefix = p->user_prefix;
	idp->roles_claim = p->roles_claim;
	idp->channels_claim = p->channels_claim;
}

void
sg_idp_local(struct sg_idp *idp, const struct sg_db_config *db, const struct sg_local_jwt *j)
{
	memset(idp, 0, sizeof(*idp));
	idp->db = db;
	idp->local = j;
	idp->name = j->name;
	idp->issuer = j->issuer;
	idp->client_id = j->client_id;
	idp->register_users = j->register_users;
	idp->username_claim = j->username_claim;
	idp->user_prefix = j->user_prefix;
	idp->roles_claim = j->roles_claim;
	idp->channels_claim = j->channels_claim;
}

/* Returns 1 when aud (string or array of strings) holds client_id. */
static int
aud_has(const json_t *aud, const char *client_id)
{
	const json_t *item;
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), client_id) == 0;
	json_array_foreach (aud, i, item)
		if (json_is_string(item) && strcmp(json_string_value(item), client_id) == 0)
			return 1;
	return 0;
}

int
sg_idp_route(const struct sg_db_config *db, const json_t *claims, struct sg_idp *idp)
{
	const char *iss = json_string_value(json_object_get(claims, "iss"));
	const json_t *aud = json_object_get(claims, "aud");
	size_t i;

	if (iss == NULL)
		return -1;
	for (i = 0; i < db->n_providers; i++)
		if (strcmp(db->providers[i].issuer, iss) == 0 &&
			aud_has(aud, db->providers[i].client_id)) {
			sg_idp_oidc(idp, db, &db->providers[i]);
			return 0;
		}
	for (i = 0; i < db->n_local_jwt; i++)
		if (strcmp(db->local_jwt[i].issuer, iss) == 0 &&
			aud_has(aud, db->local_jwt[i].client_id)) {
			sg_idp_local(idp, db, &db->local_jwt[i]);
			return 0;
		}
	return -1;
}

void
sg_provider_http_opts(const struct sg_app *app, struct sg_http_opts *opts)
{
	opts->timeout_ms = app->cfg->http_timeout_ms;
	opts->ca_file = app->cfg->ca_file;
}

/* Returns this process's entry for idp, creating it; NULL when out of memory. */
static struct rt *
rt_get(const struct sg_idp *idp)
{
	struct rt *rt;
	int local = idp->local != NULL;

	for (rt = rts; rt != NULL; rt = rt->next)
		if (rt->local == local && strcmp(rt->db, idp->db->name) == 0 &&
			strcmp(rt->name, idp->name) == 0)
			return rt;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return NULL;
	rt->db = strdup(idp->db->name);
	rt->name = strdup(idp->name);
	if (rt->db == NULL || rt->name == NULL) {
		free(rt->db);
		free(rt->name);
		free(rt);
		return NULL;
	}
	rt->local = local;
	rt->next = rts;
	rts = rt;
	return rt;
}

/* Does idp have keys to fetch (an OIDC provider, or a local_jwt jwks_uri)? */
static int
fetches_keys(const struct sg_idp *idp)
{
	return idp->oidc != NULL || idp->local->jwks_uri != NULL;
}

static unsigned
local_algs(const struct sg_local_jwt *j)
{
	unsigned algs = 0;
	size_t i;

	for (i = 0; i < j->algorithms.n; i++)
		algs |= sg_jose_alg_bit(j->algorithms.v[i]);
	return algs;
}

/*
 * Installs what the record rec holds into rt.  Returns 0 when rt is then
 * usable (keys, and for OIDC a discovery document), else -1.
 */
static int
rt_install(const struct sg_idp *idp, struct rt *rt, const json_t *rec)
{
	struct sg_jose_keys *keys = NULL;
	struct sg_error err;
	const json_t *jwks = json_object_get(rec, "jwks");
	const json_t *disc = json_object_get(rec, "discovery");

	if (!json_is_object(jwks) || (idp->oidc != NULL && !json_is_object(disc)))
		return -1;
	if (sg_jose_keys_new(json_object_get(jwks, "keys"), &keys, &err) != 0)
		return -1;
	sg_jose_keys_free(rt->keys);
	rt->keys = keys;
	json_decref(rt->discovery);
	rt->discovery = NULL;
	if (idp->oidc != NULL) {
		rt->discovery = json_incref((json_t *)disc);
		rt->algs = sg_jose_alg_set(
			json_object_get(disc, "id_token_signing_alg_values_supported"));
		if (json_object_get(disc, "id_token_signing_alg_values_supported") == NULL)
			rt->algs = SG_ALG_RS256; /* the default of OpenID Connect Discovery */
	} else {
		rt->algs = local_algs(idp->local);
	}
	rt->fetched = json_integer_value(json_object_get(rec, "fetched"));
	rt->jwks_serial = json_integer_value(json_object_get(rec, "jwks_serial"));
	return 0;
}

/* The store record of a provider. */
struct rec_args {
	const struct sg_idp *idp;
	long long now;
	int mode;     /* what the transaction does, see below */
	json_t *rec;  /* read: the record (new reference) */
	json_t *set;  /* write: members to set (borrowed) */
	int claimed;  /* claim: 1 when this process may fetch */
	int failures; /* failure: the count after this one */
};

enum { REC_READ, REC_CLAIM, REC_CLAIM_KID, REC_WRITE, REC_FAIL };

static int
rec_key(const struct sg_idp *idp, struct sg_key *k)
{
	return sg_key_make(k, idp->db->name, idp->name, idp->local != NULL ? "jwt" : "oidc",
		(char *)NULL);
}

static long long
backoff(int failures)
{
	long long s = 1;

	while (failures-- > 1 && s < SG_PROVIDER_BACKOFF_MAX)
		s *= 2;
	return s < SG_PROVIDER_BACKOFF_MAX ? s : SG_PROVIDER_BACKOFF_MAX;
}

static int
rec_txn(struct sg_txn *txn, void *arg)
{
	struct rec_args *a = arg;
	struct sg_key k;
	struct sg_buf val;
	json_t *rec = NULL;
	char *text = NULL;
	int rc;

	json_decref(a->rec);
	a->rec = NULL;
	a->claimed = 0;
	if (rec_key(a->idp, &k) != 0)
		return SG_STORE_FAIL;
	sg_buf_init(&val, SG_STORE_VALUE_MAX);
	rc = sg_store_get(txn, SG_TABLE_PROVIDERS, &k, a->mode == REC_READ ? 0 : SG_GET_FOR_UPDATE,
		&val);
	if (rc == SG_STORE_OK)
		rec = json_loadb(sg_buf_str(&val), val.len, 0, NULL);
	sg_buf_free(&val);
	if (rc != SG_STORE_OK && rc != SG_STORE_NOTFOUND)
		return rc;
	if (!json_is_object(rec)) {
		json_decref(rec);
		rec = json_object();
		if (rec == NULL)
			return SG_STORE_FAIL;
	}
	switch (a->mode) {
	case REC_READ:
		a->rec = rec;
		return SG_STORE_OK;
	case REC_CLAIM:
		/* Another process fetched meanwhile; or the provider failed and
		 * waits out its backoff; or another process is refreshing a copy
		 * still usable.  A first fetch is never waited for: several
		 * processes starting at once may each make it. */
		if (json_integer_value(json_object_get(rec, "fetched")) >
			a->now - SG_PROVIDER_FRESH)
			break;
		if (json_integer_value(json_object_get(rec, "retry_after")) > a->now &&
			(json_integer_value(json_object_get(rec, "failures")) > 0 ||
				json_object_get(rec, "jwks") != NULL))
			break;
		json_object_set_new(rec, "retry_after",
			json_integer(a->now +
				backoff((int)json_integer_value(json_object_get(rec, "failures")) +
					1)));
		a->claimed = 1;
		break;
	case REC_CLAIM_KID:
		if (json_integer_value(json_object_get(rec, "kid_refetch")) >
			a->now - SG_PROVIDER_KID_REFETCH)
			break;
		json_object_set_new(rec, "kid_refetch", json_integer(a->now));
		a->claimed = 1;
		break;
	case REC_WRITE:
		/* A serial number, not a time, tells processes the keys changed:
		 * two fetches may fall in the same second. */
		if (json_object_get(a->set, "jwks") != NULL)
			json_object_set_new(rec, "jwks_serial",
				json_integer(
					json_integer_value(json_object_get(rec, "jwks_serial")) +
					1));
		json_object_update(rec, a->set);
		break;
	case REC_FAIL:
		a->failures = (int)json_integer_value(json_object_get(rec, "failures")) + 1;
		json_object_set_new(rec, "failures", json_integer(a->failures));
		json_object_set_new(rec, "retry_after",
			json_integer(a->now + backoff(a->failures)));
		break;
	}
	if (a->mode == REC_WRITE || a->mode == REC_FAIL || a->claimed) {
		text = json_dumps(rec, JSON_COMPACT);
		rc = text != NULL ? sg_store_put(txn, SG_TABLE_PROVIDERS, &k, text, strlen(text))
				  : SG_STORE_FAIL;
		free(text);
	} else {
		rc = SG_STORE_OK;
	}
	a->rec = rec;
	return rc;
}

/* Runs one record transaction; returns 0 or -1 with err set. */
static int
rec_run(struct sg_app *app, struct rec_args *a, struct sg_error *err)
{
	a->now = time(NULL);
	if (sg_store_run(app->store, 0, rec_txn, a, err) != SG_STORE_OK) {
		json_decref(a->rec);
		a->rec = NULL;
		return -1;
	}
	return 0;
}

/* GETs url and parses a JSON object from a 200 answer. */
static int
get_json(struct sg_app *app, const char *what, const char *url, json_t **out, struct sg_error *err)
{
	struct sg_http_opts opts;
	struct sg_http_response resp;
	int rc = -1;

	*out = NULL;
	sg_provider_http_opts(app, &opts);
	sg_http_response_init(&resp);
	if (!sg_http_url_allowed(url)) {
		sg_error_set(err, 502, "%s URL not allowed", what);
		goto out;
	}
	if (sg_http_get(&opts, url, &resp, err) != 0)
		goto out;
	if (resp.status != 200) {
		sg_error_set(err, 502, "%s answered HTTP %ld", what, resp.status);
		goto out;
	}
	*out = json_loadb(sg_buf_str(&resp.body), resp.body.len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		sg_error_set(err, 502, "%s is not a JSON object", what);
		goto out;
	}
	rc = 0;
out:
	sg_http_response_free(&resp);
	return rc;
}

/* Fetches the JWKS at url and checks it holds a usable key. */
static int
fetch_jwks(struct sg_app *app, const char *url, json_t **jwks, struct sg_error *err)
{
	struct sg_jose_keys *keys = NULL;
	size_t n;

	if (get_json(app, "JWKS", url, jwks, err) != 0)
		return -1;
	if (sg_jose_keys_new(json_object_get(*jwks, "keys"), &keys, err) != 0)
		goto fail;
	n = sg_jose_keys_count(keys);
	sg_jose_keys_free(keys);
	if (n == 0) {
		sg_error_set(err, 502, "JWKS holds no usable key");
		goto fail;
	}
	return 0;
fail:
	json_decref(*jwks);
	*jwks = NULL;
	return -1;
}

/* Fetches discovery (OIDC) and keys; on success *set holds the record members. */
static int
fetch_all(struct sg_app *app, const struct sg_idp *idp, json_t **set, struct sg_error *err)
{
	char url[URL_MAX];
	json_t *disc = NULL, *jwks = NULL;
	const char *jwks_uri, *iss;
	size_t n;

	*set = NULL;
	if (idp->oidc != NULL) {
		if (idp->oidc->discovery_url != NULL) {
			n = strlen(idp->oidc->discovery_url);
			if (n >= sizeof(url))
				return sg_error_set(err, 502, "discovery URL too long");
			memcpy(url, idp->oidc->discovery_url, n + 1);
		} else {
			n = strlen(idp->issuer);
			while (n > 0 && idp->issuer[n - 1] == '/')
				n--;
			if (n + 40 >= sizeof(url))
				return sg_error_set(err, 502, "issuer too long");
			memcpy(url, idp->issuer, n);
			memcpy(url + n, "/.well-known/openid-configuration", 34);
		}
		if (get_json(app, "discovery document", url, &disc, err) != 0)
			return -1;
		iss = json_string_value(json_object_get(disc, "issuer"));
		if (iss == NULL || strcmp(iss, idp->issuer) != 0) {
			sg_error_set(err, 502, "discovery document names another issuer");
			goto fail;
		}
		if (!json_is_string(json_object_get(disc, "authorization_endpoint"))) {
			sg_error_set(err, 502, "discovery document has no authorization_endpoint");
			goto fail;
		}
		jwks_uri = json_string_value(json_object_get(disc, "jwks_uri"));
	} else {
		jwks_uri = idp->local->jwks_uri;
	}
	if (jwks_uri == NULL) {
		sg_error_set(err, 502, "no jwks_uri");
		goto fail;
	}
	if (fetch_jwks(app, jwks_uri, &jwks, err) != 0)
		goto fail;
	*set = json_object();
	if (*set == NULL)
		goto fail;
	if (disc != NULL)
		json_object_set_new(*set, "discovery", disc);
	json_object_set_new(*set, "jwks", jwks);
	return 0;
fail:
	json_decref(disc);
	json_decref(jwks);
	return -1;
}

/* Records a failed fetch (for the shared backoff) and logs it. */
static void
record_failure(struct sg_app *app, const struct sg_idp *idp, const struct sg_error *why)
{
	struct rec_args a;
	struct sg_error err;

	memset(&a, 0, sizeof(a));
	a.idp = idp;
	a.mode = REC_FAIL;
	if (rec_run(app, &a, &err) == 0)
		sg_log_event(SG_LOG_WARN, idp->db->name, NULL, "provider.fetch",
			"provider %s failed (%d in a row, next try in %llds): %s", idp->name,
			a.failures, backoff(a.failures), why->reason);
	json_decref(a.rec);
}

/* Stores fetched members (set, borrowed) with the fetch times and installs them. */
static int
store_fetched(struct sg_app *app, const struct sg_idp *idp, struct rt *rt, json_t *set, int all,
	struct sg_error *err)
{
	struct rec_args a;
	long long now = time(NULL);
	int rc;

	json_object_set_new(set, "jwks_fetched", json_integer(now));
	if (all) {
		json_object_set_new(set, "fetched", json_integer(now));
		json_object_set_new(set, "failures", json_integer(0));
		json_object_set_new(set, "retry_after", json_integer(0));
	}
	memset(&a, 0, sizeof(a));
	a.idp = idp;
	a.mode = REC_WRITE;
	a.set = set;
	if (rec_run(app, &a, err) != 0)
		return -1;
	rc = rt_install(idp, rt, a.rec);
	json_decref(a.rec);
	if (rc != 0)
		return sg_error_set(err, 502, "Provider unavailable");
	sg_log_event(SG_LOG_INFO, idp->db->name, NULL, "provider.fetch", "provider %s: %s fetched",
		idp->name, all ? "metadata and keys" : "keys");
	return 0;
}

/*
 * Makes rt usable: this process's copy while fresh, else the store's,
 * else a fetch.  A stale copy is still used while a refetch fails.
 */
static int
ensure(struct sg_app *app, const struct sg_idp *idp, struct rt *rt, struct sg_error *err)
{
	struct rec_args a;
	struct sg_error why;
	json_t *set = NULL;
	long long now = time(NULL);
	int usable, rc = -1;

	if (!fetches_keys(idp)) {
		if (rt->keys != NULL)
			return 0;
		rt->algs = local_algs(idp->local);
		return sg_jose_keys_new(idp->local->keys, &rt->keys, err);
	}
	if (rt->keys != NULL && rt->fetched > now - SG_PROVIDER_FRESH)
		return 0;
	memset(&a, 0, sizeof(a));
	a.idp = idp;
	a.mode = REC_CLAIM;
	if (rec_run(app, &a, err) != 0)
		return -1;
	usable = rt_install(idp, rt, a.rec) == 0 || rt->keys != NULL;
	json_decref(a.rec);
	if (!a.claimed) {
		if (usable)
			return 0;
		return sg_error_set(err, 502, "Provider unavailable");
	}
	sg_error_clear(&why);
	if (fetch_all(app, idp, &set, &why) == 0) {
		rc = store_fetched(app, idp, rt, set, 1, err);
	} else {
		record_failure(app, idp, &why);
		rc = usable ? 0 : sg_error_set(err, 502, "Provider unavailable");
	}
	json_decref(set);
	return rc;
}

/*
 * An unknown kid, first step: takes the copy in the store when another
 * process stored newer keys.  Returns 1 when rt changed, else 0.
 */
static int
reload_keys(struct sg_app *app, const struct sg_idp *idp, struct rt *rt)
{
	struct rec_args a;
	struct sg_error err;
	int rc = 0;

	if (!fetches_keys(idp))
		return 0;
	memset(&a, 0, sizeof(a));
	a.idp = idp;
	a.mode = REC_READ;
	if (rec_run(app, &a, &err) != 0)
		return 0;
	if (json_integer_value(json_object_get(a.rec, "jwks_serial")) != rt->jwks_serial)
		rc = rt_install(idp, rt, a.rec) == 0;
	json_decref(a.rec);
	return rc;
}

/*
 * An unknown kid, second step: fetches the JWKS again, unless a process
 * did so for an unknown kid within SG_PROVIDER_KID_REFETCH.  Returns 1
 * when rt has new keys worth a second try, else 0.
 */
static int
refetch_keys(struct sg_app *app, const struct sg_idp *idp, struct rt *rt)
{
	struct rec_args a;
	struct sg_error err;
	json_t *jwks = NULL, *set = NULL;
	const char *uri;
	int rc = 0;

	if (!fetches_keys(idp))
		return 0;
	memset(&a, 0, sizeof(a));
	a.idp = idp;
	a.mode = REC_CLAIM_KID;
	if (rec_run(app, &a, &err) != 0)
		return 0;
	json_decref(a.rec);
	if (!a.claimed)
		return 0;
	uri = idp->oidc != NULL ? json_string_value(json_object_get(rt->discovery, "jwks_uri"))
				: idp->local->jwks_uri;
	if (uri == NULL || fetch_jwks(app, uri, &jwks, &err) != 0) {
		sg_log_event(SG_LOG_WARN, idp->db->name, NULL, "provider.fetch",
			"provider %s: keys refetch failed: %s", idp->name,
			uri == NULL ? "no jwks_uri" : err.reason);
		return 0;
	}
	set = json_pack("{s:o}", "jwks", jwks);
	if (set != NULL && store_fetched(app, idp, rt, set, 0, &err) == 0)
		rc = 1;
	json_decref(set);
	return rc;
}

void
sg_provider_prefetch(struct sg_app *app)
{
	struct sg_error err;
	struct sg_idp idp;
	struct rt *rt;
	size_t d, i, n;

	for (d = 0; d < app->cfg->n_dbs; d++) {
		const struct sg_db_config *db = &app->cfg->dbs[d];

		n = db->n_providers + db->n_local_jwt;
		for (i = 0; i < n; i++) {
			if (i < db->n_providers)
				sg_idp_oidc(&idp, db, &db->providers[i]);
			else
				sg_idp_local(&idp, db, &db->local_jwt[i - db->n_providers]);
			rt = rt_get(&idp);
			sg_error_clear(&err);
			if (rt != NULL && fetches_keys(&idp) && ensure(app, &idp, rt, &err) != 0)
				sg_log_event(SG_LOG_INFO, db->name, NULL, "provider.fetch",
					"provider %s not ready at start: %s", idp.name, err.reason);
		}
	}
}

int
sg_provider_endpoints(struct sg_app *app, const struct sg_idp *idp, struct sg_idp_endpoints *out,
	struct sg_error *err)
{
	struct rt *rt = rt_get(idp);
	const json_t *methods, *m;
	const char *authz, *token;
	size_t i;
	int basic = 0, post = 0;

	memset(out, 0, sizeof(*out));
	if (rt == NULL)
		return sg_error_set(err, 500, "Out of memory");
	if (idp->oidc == NULL || ensure(app, idp, rt, err) != 0)
		return sg_error_set(err, 502, "Provider unavailable");
	authz = json_string_value(json_object_get(rt->discovery, "authorization_endpoint"));
	token = json_string_value(json_object_get(rt->discovery, "token_endpoint"));
	out->authorization = authz != NULL ? strdup(authz) : NULL;
	out->token = token != NULL ? strdup(token) : NULL;
	if (out->authorization == NULL || (token != NULL && out->token == NULL)) {
		sg_idp_endpoints_free(out);
		return sg_error_set(err, 500, "Out of memory");
	}
	methods = json_object_get(rt->discovery, "token_endpoint_auth_methods_supported");
	json_array_foreach (methods, i, m) {
		if (json_is_string(m) && strcmp(json_string_value(m), "client_secret_basic") == 0)
			basic = 1;
		if (json_is_string(m) && strcmp(json_string_value(m), "client_secret_post") == 0)
			post = 1;
	}
	out->auth_post = post && !basic;
	return 0;
}

void
sg_idp_endpoints_free(struct sg_idp_endpoints *e)
{
	if (e == NULL)
		return;
	free(e->authorization);
	free(e->token);
	e->authorization = e->token = NULL;
}

int
sg_provider_validate(struct sg_app *app, const struct sg_idp *idp, const char *token, size_t n,
	const char *nonce, json_t **claims, struct sg_error *err)
{
	struct rt *rt = rt_get(idp);
	struct sg_jose_rules rules;
	struct sg_error why;
	int rc, step;

	*claims = NULL;
	if (rt == NULL)
		return sg_error_set(err, 500, "Out of memory");
	if (ensure(app, idp, rt, err) != 0)
		return -1;
	memset(&rules, 0, sizeof(rules));
	rules.issuer = idp->issuer;
	rules.client_id = idp->client_id;
	rules.algs = rt->algs;
	rules.nonce = nonce;
	rules.now = time(NULL);
	sg_error_clear(&why);
	rc = sg_jose_validate(token, n, rt->keys, &rules, claims, &why);
	/* An unknown key: newer keys another process stored, else a refetch. */
	for (step = 0; rc == SG_JOSE_UNKNOWN_KEY && step < 2; step++) {
		if (!(step == 0 ? reload_keys : refetch_keys)(app, idp, rt))
			continue;
		sg_error_clear(&why);
		rules.algs = rt->algs;
		rc = sg_jose_validate(token, n, rt->keys, &rules, claims, &why);
	}
	if (rc == SG_JOSE_OK)
		return 0;
	sg_log_event(SG_LOG_INFO, idp->db->name, NULL, "auth.token", "refused by provider %s: %s",
		idp->name, rc == SG_JOSE_UNKNOWN_KEY ? "no key for the token" : why.reason);
	return sg_error_set(err, 401, "Invalid login");
}
