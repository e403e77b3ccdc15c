/*
 * auth.c: credentials, in SPEC order, and what they grant.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "encode.h"
#include "log.h"
#include "oidc.h"
#include "password.h"
#include "secure.h"

/* Longest user name plus password in a Basic header that we decode. */
#define BASIC_MAX 4096

/*
 * Slots of the principal cache: direct-mapped by database and user name,
 * so a lookup that finds another user in its slot reads the store, as
 * any miss does.  64 cover the users one FastCGI process serves at once.
 */
#define CACHE_SLOTS 64

/* What the store says of one user. */
enum outcome { FOUND, NO_USER, NO_SESSION, DISABLED, CORRUPT };

/*
 * What one user's records grant, as the checks need it.  channels and
 * roles (FOUND only) are references; once cached, nothing modifies them.
 */
struct grants {
	enum outcome outcome; /* FOUND, NO_USER, DISABLED or CORRUPT */
	char name[SG_NAME_MAX + 1];
	char hash[SG_PASSWORD_HASH_MAX]; /* "" when none: matches no password */
	json_t *channels, *roles;
};

/*
 * The principal cache.  An entry holds the grants of a user of a database
 * computed under a principals generation, and serves only while the store
 * still holds that generation (user.h), which every user or role write
 * replaces: a change counts on the next request of every process.
 */
struct cache_entry {
	char db[SG_DB_NAME_MAX + 1];
	char gen[SG_GENERATION_MAX];
	size_t genlen; /* 0: empty slot */
	struct grants g;
};

static struct cache_entry cache[CACHE_SLOTS];

/* One identification transaction: its question and what it found. */
struct ident {
	const struct sg_db_config *db;
	const char *name; /* the user to load, or NULL with sid */
	const char *sid;  /* the session to follow, or NULL */
	time_t now;
	enum outcome outcome;
	struct grants g;
	char gen[SG_GENERATION_MAX];
	size_t genlen;
	int fresh; /* g was read from the store, not from the cache */
	struct sg_session session;
};

static void
grants_reset(struct grants *g)
{
	json_decref(g->channels);
	json_decref(g->roles);
	g->channels = g->roles = NULL;
}

/* Copies src into dst (whose references are dropped), taking references. */
static void
grants_copy(struct grants *dst, const struct grants *src)
{
	grants_reset(dst);
	*dst = *src;
	json_incref(dst->channels);
	json_incref(dst->roles);
}

static struct cache_entry *
cache_slot(const char *db, const char *name)
{
	/* FNV-1a over both names and the NUL between them. */
	uint32_t h = 2166136261u;
	const unsigned char *c;

	for (c = (const unsigned char *)db; *c != '\0'; c++)
		h = (h ^ *c) * 16777619u;
	h *= 16777619u;
	for (c = (const unsigned char *)name; *c != '\0'; c++)
		h = (h ^ *c) * 16777619u;
	return &cache[h % CACHE_SLOTS];
}

/* Copies the cached grants of (db, name) under gen into *g; 0 or -1 (none). */
static int
cache_get(const char *db, const char *name, const char *gen, size_t genlen, struct grants *g)
{
	struct cache_entry *e = cache_slot(db, name);

	if (e->genlen == 0 || e->genlen != genlen || memcmp(e->gen, gen, genlen) != 0 ||
		strcmp(e->g.name, name) != 0 || strcmp(e->db, db) != 0)
		return -1;
	grants_copy(g, &e->g);
	return 0;
}

/* Remembers g (references taken) as the grants of its user under gen. */
static void
cache_put(const char *db, const char *gen, size_t genlen, const struct grants *g)
{
	struct cache_entry *e = cache_slot(db, g->name);

	if (strlen(db) > SG_DB_NAME_MAX || genlen == 0 || genlen >= sizeof(e->gen))
		return;
	grants_copy(&e->g, g);
	memcpy(e->db, db, strlen(db) + 1);
	memcpy(e->gen, gen, genlen + 1);
	e->genlen = genlen;
}

/* Reads the grants of user name from the store into *g. */
static int
grants_load(struct sg_txn *txn, const struct sg_db_config *db, const char *name, struct grants *g)
{
	const char *stored, *hash;
	json_t *user = NULL;
	int rc;

	grants_reset(g);
	memset(g, 0, sizeof(*g));
	memcpy(g->name, name, strlen(name) + 1);
	rc = sg_user_load(txn, db, name, 0, &user);
	if (rc == SG_STORE_NOTFOUND) {
		g->outcome = NO_USER;
		return SG_STORE_OK;
	}
	if (rc != SG_STORE_OK)
		return rc;
	stored = json_string_value(json_object_get(user, "name"));
	hash = sg_user_password_hash(user);
	if (stored == NULL || strcmp(stored, name) != 0) {
		g->outcome = CORRUPT;
	} else if (sg_user_disabled(user)) {
		g->outcome = DISABLED;
	} else {
		g->outcome = FOUND;
		rc = sg_user_grants(txn, db->name, user, &g->channels, &g->roles);
	}
	/* A hash too long for any crypt(3) method is kept as none. */
	if (hash != NULL && strlen(hash) < sizeof(g->hash))
		memcpy(g->hash, hash, strlen(hash) + 1);
	json_decref(user);
	return rc;
}

/*
 * Reads the session (if any), the principals generation and, unless the
 * cache holds them for that generation, the user and its grants, in one
 * transaction; extends the session when a tenth of its ttl has passed.
 */
static int
ident_txn(struct sg_txn *txn, void *arg)
{
	struct ident *id = arg;
	const char *name = id->name;
	int rc;

	grants_reset(&id->g);
	id->fresh = 0;
	if (id->sid != NULL) {
		rc = sg_session_get(txn, id->db->name, id->sid, 0, &id->session);
		if (rc == SG_STORE_OK && !sg_session_live(&id->session, id->now))
			rc = SG_STORE_NOTFOUND;
		if (rc == SG_STORE_NOTFOUND) {
			id->outcome = NO_SESSION;
			return SG_STORE_OK;
		}
		if (rc != SG_STORE_OK)
			return rc;
		name = id->session.user;
	}
	rc = sg_principals_generation(txn, id->db->name, id->gen, &id->genlen);
	if (rc != SG_STORE_OK)
		return rc;
	if (cache_get(id->db->name, name, id->gen, id->genlen, &id->g) != 0) {
		rc = grants_load(txn, id->db, name, &id->g);
		if (rc != SG_STORE_OK)
			return rc;
		id->fresh = 1;
	}
	id->outcome = id->g.outcome;
	if (id->outcome == NO_USER && id->sid != NULL)
		id->outcome = NO_SESSION;
	if (id->outcome == FOUND && id->sid != NULL && sg_session_due(&id->session, id->now)) {
		rc = sg_session_extend(txn, id->db->name, &id->session, id->now);
		if (rc != SG_STORE_OK)
			return rc;
	}
	return SG_STORE_OK;
}

/*
 * Runs the identification; when the user was found, fills *p with
 * references to the grants.  id->g stays for the caller (the password
 * hash) until ident_done.
 */
static int
identify(struct sg_app *app, struct ident *id, enum sg_auth_kind kind, struct sg_principal *p,
	struct sg_error *err)
{
	const char *name;

	id->now = time(NULL);
	if (sg_store_run(app->store, 0, ident_txn, id, err) != SG_STORE_OK) {
		grants_reset(&id->g);
		if (err->status == 0)
			sg_error_set(err, 500, "Store failure");
		return -1;
	}
	if (id->fresh)
		cache_put(id->db->name, id->gen, id->genlen, &id->g);
	if (id->outcome == CORRUPT) {
		grants_reset(&id->g);
		return sg_error_set(err, 500, "Corrupt user record");
	}
	if (id->outcome != FOUND)
		return 0;
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	name = kind == SG_AUTH_GUEST ? "" : id->g.name;
	memcpy(p->name, name, strlen(name) + 1);
	p->channels = json_incref(id->g.channels);
	p->roles = json_incref(id->g.roles);
	if (kind == SG_AUTH_SESSION)
		p->session = id->session;
	return 0;
}

/* Drops what the identification left in id. */
static void
ident_done(struct ident *id)
{
	grants_reset(&id->g);
	sg_secure_wipe(id->g.hash, sizeof(id->g.hash));
}

const char *
sg_auth_kind_name(enum sg_auth_kind kind)
{
	static const char *const names[] = {"bearer", "basic", "session", "guest"};

	return names[kind];
}

int
sg_auth_basic_parse(const char *b64, struct sg_buf *user, struct sg_buf *password,
	struct sg_error *err)
{
	struct sg_buf raw;
	const char *colon;
	int rc = -1;

	sg_buf_init(&raw, BASIC_MAX);
	sg_buf_reset(user);
	sg_buf_reset(password);
	while (*b64 == ' ')
		b64++;
	if (sg_base64_decode(b64, strlen(b64), &raw) != 0) {
		sg_error_set(err, 400, "Invalid Basic authorization header: not base64");
		goto out;
	}
	colon = memchr(sg_buf_str(&raw), ':', raw.len);
	if (colon == NULL) {
		sg_error_set(err, 400, "Invalid Basic authorization header: no colon");
		goto out;
	}
	if (memchr(sg_buf_str(&raw), '\0', raw.len) != NULL ||
		!sg_utf8_valid(sg_buf_str(&raw), raw.len)) {
		sg_error_set(err, 400, "Invalid Basic authorization header: not UTF-8 text");
		goto out;
	}
	if (sg_buf_add(user, raw.data, (size_t)(colon - raw.data)) != 0 ||
		sg_buf_adds(password, colon + 1) != 0) {
		sg_error_set(err, 400, "Invalid Basic authorization header: too long");
		goto out;
	}
	rc = 0;
out:
	sg_secure_wipe(raw.data, raw.cap);
	sg_buf_free(&raw);
	return rc;
}

int
sg_auth_password(struct sg_app *app, const struct sg_db_config *db, const char *name,
	const char *password, int disabled_is_400, struct sg_principal *p, struct sg_error *err)
{
	struct ident id;
	const char *hash;
	int ok;

	memset(&id, 0, sizeof(id));
	id.db = db;
	id.name = name;
	if (db->disable_password_auth || !sg_user_name_valid(name) || strcmp(name, SG_GUEST) == 0) {
		sg_log_event(SG_LOG_INFO, db->name, NULL, "auth.password", "refused");
		return sg_error_set(err, 401, "Invalid login");
	}
	if (identify(app, &id, SG_AUTH_BASIC, p, err) != 0)
		return -1;
	hash = id.outcome != NO_USER ? id.g.hash : NULL;
	ok = sg_password_verify(name, password, hash);
	ident_done(&id);
	if (!ok || id.outcome == NO_USER) {
		if (id.outcome == FOUND)
			sg_principal_free(p);
		sg_log_event(SG_LOG_INFO, db->name, name, "auth.password",
			"refused: invalid login");
		return sg_error_set(err, 401, "Invalid login");
	}
	if (id.outcome == DISABLED) {
		sg_log_event(SG_LOG_INFO, db->name, name, "auth.password", "refused: disabled");
		return disabled_is_400 ? sg_error_set(err, 400, "User is disabled")
				       : sg_error_set(err, 401, "Invalid login");
	}
	return 0;
}

int
sg_auth_principal(struct sg_app *app, const struct sg_db_config *db, const char *name,
	struct sg_principal *p, struct sg_error *err)
{
	struct ident id;

	memset(&id, 0, sizeof(id));
	id.db = db;
	id.name = name;
	if (!sg_user_name_valid(name))
		return sg_error_set(err, 404, "missing");
	if (identify(app, &id, SG_AUTH_SESSION, p, err) != 0)
		return -1;
	ident_done(&id);
	if (id.outcome == NO_USER)
		return sg_error_set(err, 404, "missing");
	if (id.outcome == DISABLED)
		return sg_error_set(err, 400, "User is disabled");
	return 0;
}

/* Returns the value after "<scheme> " when header uses scheme, else NULL. */
static const char *
scheme_value(const char *header, const char *scheme)
{
	size_t n = strlen(scheme);

	if (strncasecmp(header, scheme, n) == 0 && header[n] == ' ')
		return header + n + 1;
	return NULL;
}

static int
identify_basic(struct sg_app *app, const struct sg_db_config *db, const char *b64,
	struct sg_principal *p, struct sg_error *err)
{
	struct sg_buf user, password;
	int rc;

	sg_buf_init(&user, BASIC_MAX);
	sg_buf_init(&password, BASIC_MAX);
	rc = sg_auth_basic_parse(b64, &user, &password, err);
	if (rc == 0)
		rc = sg_auth_password(app, db, sg_buf_str(&user), sg_buf_str(&password), 0, p, err);
	sg_secure_wipe(password.data, password.cap);
	sg_buf_free(&user);
	sg_buf_free(&password);
	return rc;
}

static int
identify_bearer(struct sg_app *app, const struct sg_db_config *db, const char *token,
	struct sg_principal *p, struct sg_error *err)
{
	struct ident id;
	char name[SG_NAME_MAX + 1];

	while (*token == ' ')
		token++;
	if (sg_oidc_bearer(app, db, token, name, err) != 0)
		return -1;
	memset(&id, 0, sizeof(id));
	id.db = db;
	id.name = name;
	if (identify(app, &id, SG_AUTH_BEARER, p, err) != 0)
		return -1;
	ident_done(&id);
	if (id.outcome == FOUND)
		return 0;
	sg_log_event(SG_LOG_INFO, db->name, name, "auth.bearer", "refused: %s",
		id.outcome == DISABLED ? "disabled" : "no such user");
	return sg_error_set(err, 401, "Invalid login");
}

static int
identify_session(struct sg_app *app, const struct sg_db_config *db, const char *sid,
	struct sg_principal *p, struct sg_error *err)
{
	struct ident id;
	char tag[SG_TAG_LEN];

	memset(&id, 0, sizeof(id));
	id.db = db;
	id.sid = sid;
	if (identify(app, &id, SG_AUTH_SESSION, p, err) != 0)
		return -1;
	ident_done(&id);
	if (id.outcome == FOUND)
		return 0;
	sg_secure_tag(sid, tag);
	sg_log_event(SG_LOG_INFO, db->name, id.outcome == DISABLED ? id.session.user : NULL,
		"auth.session", "refused: %s session %s",
		id.outcome == DISABLED ? "disabled user," : "invalid", tag);
	return sg_error_set(err, 401, id.outcome == DISABLED ? "Invalid login" : "Session Invalid");
}

static int
identify_guest(struct sg_app *app, const struct sg_db_config *db, struct sg_principal *p,
	struct sg_error *err)
{
	struct ident id;

	memset(&id, 0, sizeof(id));
	id.db = db;
	id.name = SG_GUEST;
	if (identify(app, &id, SG_AUTH_GUEST, p, err) != 0)
		return -1;
	ident_done(&id);
	if (id.outcome != FOUND)
		return sg_error_set(err, 401, "Login required");
	return 0;
}

int
sg_auth_identify(struct sg_app *app, const struct sg_db_config *db, const struct sg_request *r,
	unsigned mask, struct sg_principal *p, struct sg_error *err)
{
	const char *authz = sg_request_param(r, "HTTP_AUTHORIZATION");
	const char *v;
	struct sg_buf sid;
	int rc, found;

	memset(p, 0, sizeof(*p));
	if (authz != NULL && *authz != '\0') {
		if ((v = scheme_value(authz, "Bearer")) != NULL && (mask & (1u << SG_AUTH_BEARER)))
			return identify_bearer(app, db, v, p, err);
		if ((v = scheme_value(authz, "Basic")) != NULL && (mask & (1u << SG_AUTH_BASIC)))
			return identify_basic(app, db, v, p, err);
		return sg_error_set(err, 401, "Invalid login");
	}
	if (mask & (1u << SG_AUTH_SESSION)) {
		sg_buf_init(&sid, 256);
		found = sg_request_cookie(r, db->cookie_name, &sid);
		if (found == 1)
			rc = identify_session(app, db, sg_buf_str(&sid), p, err);
		else if (found < 0) /* longer than any session id */
			rc = sg_error_set(err, 401, "Session Invalid");
		else
			rc = 0;
		sg_secure_wipe(sid.data, sid.cap);
		sg_buf_free(&sid);
		if (found != 0)
			return rc;
	}
	if (mask & (1u << SG_AUTH_GUEST))
		return identify_guest(app, db, p, err);
	return sg_error_set(err, 401, "Login required");
}

int
sg_auth_admin(struct sg_app *app, const struct sg_request *r, struct sg_error *err)
{
	const char *authz = sg_request_param(r, "HTTP_AUTHORIZATION");
	const char *v = authz != NULL ? scheme_value(authz, "Basic") : NULL;
	struct sg_buf user, password;
	size_t i;
	int rc = -1;

	if (app->cfg->n_admins == 0) {
		if (sg_request_from_loopback(r))
			return 0;
		return sg_error_set(err, 403, "The admin API answers loopback clients only");
	}
	if (v == NULL)
		return sg_error_set(err, 401, "Login required");
	sg_buf_init(&user, BASIC_MAX);
	sg_buf_init(&password, BASIC_MAX);
	if (sg_auth_basic_parse(v, &user, &password, err) != 0)
		goto out;
	sg_error_set(err, 401, "Invalid login");
	for (i = 0; i < app->cfg->n_admins; i++)
		if (strcmp(app->cfg->admins[i].name, sg_buf_str(&user)) == 0 &&
			sg_password_verify(sg_buf_str(&user), sg_buf_str(&password),
				app->cfg->admins[i].hash))
			rc = 0;
	if (rc != 0)
		sg_log_event(SG_LOG_INFO, NULL, sg_buf_str(&user), "auth.admin", "refused");
out:
	sg_secure_wipe(password.data, password.cap);
	sg_buf_free(&user);
	sg_buf_free(&password);
	if (rc == 0)
		sg_error_clear(err);
	return rc;
}

void
sg_auth_refuse(struct sg_request *r, const struct sg_db_config *db, const struct sg_error *err)
{
	if (err->status == 401 && (db == NULL || db->send_www_authenticate))
		sg_response_header(r, "WWW-Authenticate", "Basic realm=\"syncgate\"");
	sg_response_from_error(r, err);
}

json_t *
sg_auth_session_info(const struct sg_principal *p)
{
	json_t *chans = json_object(), *item;
	size_t i;

	if (p != NULL)
		json_array_foreach (p->channels, i, item)
			json_object_set_new(chans, json_string_value(item), json_integer(1));
	return json_pack("{s:[s,s], s:b, s:{s:o, s:s?}}", "authentication_handlers", "default",
		"cookie", "ok", 1, "userCtx", "channels", chans, "name",
		p != NULL && p->name[0] != '\0' ? p->name : NULL);
}

void
sg_principal_free(struct sg_principal *p)
{
	if (p == NULL)
		return;
	json_decref(p->channels);
	json_decref(p->roles);
	p->channels = p->roles = NULL;
}
