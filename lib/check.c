/*
 * check.c: the session check.
 *
 * As authorizer it answers 200 with the user's identity in Variable-*
 * headers, which the web server hands to the replication backend, or a
 * 401.  As responder it serves GET, POST and DELETE /{db}/_session.  This
 * is the hot path: one store transaction per request, and a store write
 * only when a session is due for extension.
 */
#include "autoconf.h"

#include <string.h>
#include <time.h>

#include "app.h"
#include "auth.h"
#include "check.h"
#include "log.h"
#include "secure.h"

/* Joins the strings of arr with commas into out (cleared first). */
static int
join(const json_t *arr, struct sg_buf *out)
{
	const json_t *item;
	size_t i;

	sg_buf_reset(out);
	json_array_foreach (arr, i, item) {
		if ((i > 0 && sg_buf_add(out, ",", 1) != 0) ||
			sg_buf_adds(out, json_string_value(item)) != 0)
			return -1;
	}
	return sg_buf_add(out, "", 0);
}

static void
authorize(struct sg_app *app, const struct sg_db_config *db, struct sg_request *r)
{
	static const char *const names[] = {"SYNCGATE_DB", "SYNCGATE_USER", "SYNCGATE_CHANNELS",
		"SYNCGATE_ROLES", "SYNCGATE_AUTH", "REMOTE_USER"};
	const char *values[6];
	struct sg_principal p;
	struct sg_error err;
	struct sg_buf chans, roles;

	sg_error_clear(&err);
	if (sg_auth_identify(app, db, r, SG_AUTH_ALL, &p, &err) != 0) {
		sg_auth_refuse(r, db, &err);
		return;
	}
	sg_buf_init(&chans, SG_BODY_MAX);
	sg_buf_init(&roles, SG_BODY_MAX);
	if (join(p.channels, &chans) != 0 || join(p.roles, &roles) != 0) {
		sg_response_error(r, 500, "Grants too large");
	} else {
		values[0] = db->name;
		values[1] = p.name;
		values[2] = sg_buf_str(&chans);
		values[3] = sg_buf_str(&roles);
		values[4] = sg_auth_kind_name(p.kind);
		values[5] = p.name;
		sg_response_authorize(r, names, values, 6);
		sg_log_event(SG_LOG_DEBUG, db->name, p.name, "authorize", "allowed by %s",
			values[4]);
	}
	sg_buf_free(&chans);
	sg_buf_free(&roles);
	sg_principal_free(&p);
}

/* Adds the session cookie (sid NULL: the one that clears it). */
static void
set_cookie(struct sg_request *r, const struct sg_db_config *db, const char *sid)
{
	struct sg_buf c;

	sg_buf_init(&c, SG_SESSION_COOKIE_MAX);
	if (sg_session_cookie(db, sid, &c) == 0)
		sg_response_header(r, "Set-Cookie", sg_buf_str(&c));
	sg_buf_free(&c);
}

struct create_args {
	const struct sg_db_config *db;
	const char *user;
	struct sg_session session;
};

static int
create_txn(struct sg_txn *txn, void *arg)
{
	struct create_args *a = arg;

	return sg_session_create(txn, a->db->name, a->user, a->db->session_ttl, time(NULL),
		&a->session);
}

/* Reads {"name","password"} from the body; 400 for anything else. */
static int
login_body(struct sg_request *r, json_t **body, const char **name, const char **password,
	struct sg_error *err)
{
	const char *key;
	json_t *v;

	if (sg_request_json_body(r, body, err) != 0)
		return -1;
	json_object_foreach (*body, key, v)
		if (strcmp(key, "name") != 0 && strcmp(key, "password") != 0)
			return sg_error_set(err, 400, "Unknown field %s", key);
	*name = json_string_value(json_object_get(*body, "name"));
	*password = json_string_value(json_object_get(*body, "password"));
	if (*name == NULL || *password == NULL)
		return sg_error_set(err, 400, "name and password must be strings");
	return 0;
}

static void
session_post(struct sg_app *app, const struct sg_db_config *db, struct sg_request *r)
{
	struct sg_principal p;
	struct sg_error err;
	struct create_args a;
	const char *name = NULL, *password = NULL;
	json_t *body = NULL, *info;
	char tag[SG_TAG_LEN];
	int rc;

	sg_error_clear(&err);
	memset(&p, 0, sizeof(p));
	if (sg_request_read_body(r, &err) != 0) {
		sg_response_from_error(r, &err);
		return;
	}
	if (r->body.len > 0) {
		rc = login_body(r, &body, &name, &password, &err);
		if (rc == 0)
			rc = sg_auth_password(app, db, name, password, 1, &p, &err);
	} else {
		rc = sg_auth_identify(app, db, r, (1u << SG_AUTH_BEARER) | (1u << SG_AUTH_BASIC),
			&p, &err);
	}
	json_decref(body);
	if (rc != 0) {
		sg_auth_refuse(r, db, &err);
		return;
	}
	a.db = db;
	a.user = p.name;
	if (sg_store_run(app->store, 0, create_txn, &a, &err) != SG_STORE_OK) {
		sg_response_from_error(r, &err);
		sg_principal_free(&p);
		return;
	}
	sg_secure_tag(a.session.id, tag);
	sg_log_event(SG_LOG_INFO, db->name, p.name, "session.create", "ok, session %s", tag);
	set_cookie(r, db, a.session.id);
	info = sg_auth_session_info(&p);
	sg_response_json(r, 200, info);
	json_decref(info);
	sg_principal_free(&p);
	sg_app_upkeep(app);
}

static void
session_get(struct sg_app *app, const struct sg_db_config *db, struct sg_request *r)
{
	struct sg_principal p;
	struct sg_error err;
	json_t *info;

	sg_error_clear(&err);
	if (sg_auth_identify(app, db, r, SG_AUTH_ALL, &p, &err) == 0) {
		info = sg_auth_session_info(&p);
		sg_principal_free(&p);
	} else if (err.status == 401 && strcmp(err.reason, "Login required") == 0) {
		/* Asking who one is without credentials is not an error. */
		info = sg_auth_session_info(NULL);
	} else {
		sg_auth_refuse(r, db, &err);
		return;
	}
	sg_response_json(r, 200, info);
	json_decref(info);
}

struct delete_args {
	const char *db;
	const char *sid;
};

static int
delete_txn(struct sg_txn *txn, void *arg)
{
	struct delete_args *a = arg;

	return sg_session_delete(txn, a->db, a->sid);
}

static void
session_delete(struct sg_app *app, const struct sg_db_config *db, struct sg_request *r)
{
	struct sg_buf sid;
	struct sg_error err;
	struct delete_args a;
	json_t *ok;
	char tag[SG_TAG_LEN];
	int rc = SG_STORE_NOTFOUND;

	sg_error_clear(&err);
	sg_buf_init(&sid, 256);
	if (sg_request_cookie(r, db->cookie_name, &sid) == 1) {
		a.db = db->name;
		a.sid = sg_buf_str(&sid);
		rc = sg_store_run(app->store, 0, delete_txn, &a, &err);
		sg_secure_tag(a.sid, tag);
	}
	if (rc == SG_STORE_OK) {
		sg_log_event(SG_LOG_INFO, db->name, NULL, "session.delete", "ok, session %s", tag);
		set_cookie(r, db, NULL);
		ok = json_pack("{s:b}", "ok", 1);
		sg_response_json(r, 200, ok);
		json_decref(ok);
	} else if (rc == SG_STORE_NOTFOUND) {
		sg_response_error(r, 404, "no session");
	} else {
		sg_response_from_error(r, &err);
	}
	sg_secure_wipe(sid.data, sid.cap);
	sg_buf_free(&sid);
}

void
sg_check_handle(struct sg_request *r, void *ctx)
{
	struct sg_app *app = ctx;
	const struct sg_db_config *db = sg_app_db(app, r);

	if (db == NULL)
		return;
	if (r->role == SG_ROLE_AUTHORIZER) {
		authorize(app, db, r);
		return;
	}
	if (r->n_segs != 2 || strcmp(r->segs[1], "_session") != 0) {
		sg_response_error(r, 404, "missing");
		return;
	}
	if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
		session_get(app, db, r);
	else if (strcmp(r->method, "POST") == 0)
		session_post(app, db, r);
	else if (strcmp(r->method, "DELETE") == 0)
		session_delete(app, db, r);
	else
		sg_response_method_not_allowed(r, "GET, HEAD, POST, DELETE");
}
