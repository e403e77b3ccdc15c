/*
 * admin.c: the admin API for users, roles, GUEST and sessions.
 *
 * A request passes sg_auth_admin, names a configured database, and is
 * then dispatched on its path and method by the table at the end of this
 * file.  Each endpoint does all of its store work in one transaction: a
 * read-modify-write reads the record it changes with SG_GET_FOR_UPDATE
 * and writes nothing when a check fails, so a refused request leaves the
 * store as it was.  A password is hashed before the transaction starts:
 * bcrypt takes tens of milliseconds by design, and no lock is held
 * meanwhile.
 *
 * Every write request logs one line with the acting administrator and
 * its outcome.  Passwords and hashes are never logged; a session id only
 * as its sg_secure_tag.
 */
#include "autoconf.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin.h"
#include "app.h"
#include "auth.h"
#include "log.h"
#include "password.h"
#include "secure.h"
#include "session.h"
#include "user.h"

#define ADMIN_CHALLENGE "Basic realm=\"syncgate admin\""

/*
 * The result of a transaction function that refused the request after a
 * check: the status and reason are in its args, nothing was written.  Kept
 * apart from the store's own codes.
 */
#define TXN_REFUSED 100

/* Longest session an administrator may create: a year, as session_ttl. */
#define SESSION_TTL_MAX 31536000L

/* Room for an Authorization header we decode only to log the admin's name. */
#define BASIC_MAX 4096

/* Room for the acting administrator's name in a log line. */
#define ADMIN_NAME_MAX 256

/* One admin request. */
struct call {
	struct sg_app *app;
	struct sg_request *r;
	const struct sg_db_config *db;
	size_t n;                   /* path segments, a trailing empty one not counted */
	char admin[ADMIN_NAME_MAX]; /* acting administrator, "-" when unnamed */
};

/* Returns path segment i, or "" past the end. */
static const char *
seg(const struct sg_request *r, size_t i)
{
	return i < r->n_segs ? r->segs[i] : "";
}

/* Sends status with {"ok":true}. */
static void
send_ok(struct sg_request *r, int status)
{
	json_t *ok = json_pack("{s:b}", "ok", 1);

	sg_response_json(r, status, ok);
	json_decref(ok);
}

/* Sets err and returns TXN_REFUSED, for the checks of a transaction. */
static int
refuse(struct sg_error *err, int status, const char *reason)
{
	sg_error_set(err, status, "%s", reason);
	return TXN_REFUSED;
}

/*
 * Runs fn in a transaction.  Returns 0 once it committed, else -1 with
 * *out set: the refusal fn left in *refusal, or why the store failed.
 */
static int
run(struct call *c, unsigned flags, sg_txn_fn fn, void *arg, struct sg_error *refusal,
	struct sg_error *out)
{
	int rc;

	sg_error_clear(out);
	sg_error_clear(refusal);
	rc = sg_store_run(c->app->store, flags, fn, arg, out);
	if (rc == SG_STORE_OK)
		return 0;
	if (rc == TXN_REFUSED && refusal->status != 0)
		*out = *refusal;
	else if (out->status == 0)
		sg_error_set(out, 500, "Store failure");
	return -1;
}

/*
 * Sends the failure of a write request and logs it: one line per write,
 * whatever its outcome.
 */
static void
write_failed(struct call *c, const char *event, const char *subject, const struct sg_error *err)
{
	sg_log_event(err->status >= 500 ? SG_LOG_WARN : SG_LOG_INFO, c->db->name, c->admin, event,
		"refused (%d %s) %s", err->status, err->reason, subject);
	sg_response_from_error(c->r, err);
}

/*
 * Finds the acting administrator's name for the log: the user of the
 * Basic header that sg_auth_admin has just verified, or "-" when the
 * admin API is open to loopback clients and nobody is named.
 */
static void
acting_admin(struct call *c)
{
	const char *authz = sg_request_param(c->r, "HTTP_AUTHORIZATION");
	struct sg_buf user, password;
	struct sg_error err;
	size_t n;

	memcpy(c->admin, "-", 2);
	if (c->app->cfg->n_admins == 0 || authz == NULL || strncasecmp(authz, "Basic ", 6) != 0)
		return;
	sg_buf_init(&user, BASIC_MAX);
	sg_buf_init(&password, BASIC_MAX);
	if (sg_auth_basic_parse(authz + 6, &user, &password, &err) == 0 && user.len > 0) {
		n = user.len < sizeof(c->admin) - 1 ? user.len : sizeof(c->admin) - 1;
		memcpy(c->admin, user.data, n);
		c->admin[n] = '\0';
	}
	sg_secure_wipe(password.data, password.cap);
	sg_buf_free(&user);
	sg_buf_free(&password);
}

/*
 * Overwrites the password of a request body, parsed and raw, once the
 * request no longer needs it.
 */
static void
forget_password(struct sg_request *r, json_t *body)
{
	json_t *pw = json_object_get(body, "password");

	if (json_is_string(pw))
		sg_secure_wipe((char *)json_string_value(pw), json_string_length(pw));
	if (r->body.data != NULL)
		sg_secure_wipe(r->body.data, r->body.len);
}

/* Stores in *out a new public view of user (GET /{db}/_user/{name}). */
static int
user_shown(struct sg_txn *txn, const char *db, const json_t *user, json_t **out)
{
	json_t *channels, *roles;
	int rc;

	*out = NULL;
	rc = sg_user_grants(txn, db, user, &channels, &roles);
	if (rc != SG_STORE_OK)
		return rc;
	*out = sg_user_public(user, channels, roles);
	json_decref(channels);
	json_decref(roles);
	return *out != NULL ? SG_STORE_OK : SG_STORE_FAIL;
}

/* Ends every session of user (nothing to end is no error). */
static int
end_sessions(struct sg_txn *txn, const char *db, const char *user)
{
	int rc = sg_session_delete_user(txn, db, user, NULL);

	return rc == SG_STORE_NOTFOUND ? SG_STORE_OK : rc;
}

/* Lists: GET /{db}/_user/, GET /{db}/_role/. */

struct list_args {
	const struct sg_db_config *db;
	int roles;    /* list roles, not users */
	int detailed; /* ?name_only=false */
	json_t *out;  /* the answer */
};

static int
list_txn(struct sg_txn *txn, void *arg)
{
	struct list_args *a = arg;
	json_t *names = NULL, *user = NULL, *item, *email;
	size_t i;
	int rc;

	json_decref(a->out);
	a->out = json_array();
	if (a->out == NULL)
		return SG_STORE_FAIL;
	rc = a->roles ? sg_role_list(txn, a->db->name, a->out)
		      : sg_user_list(txn, a->db->name, a->out);
	if (rc != SG_STORE_OK || !a->detailed)
		return rc;
	names = a->out;
	a->out = json_array();
	if (a->out == NULL) {
		rc = SG_STORE_FAIL;
		goto out;
	}
	json_array_foreach (names, i, item) {
		rc = sg_user_load(txn, a->db, json_string_value(item), 0, &user);
		if (rc == SG_STORE_NOTFOUND)
			continue;
		if (rc != SG_STORE_OK)
			goto out;
		email = json_object_get(user, "email");
		item = json_pack("{s:O, s:b}", "name", item, "disabled", sg_user_disabled(user));
		if (item != NULL && json_is_string(email) && json_string_length(email) > 0)
			json_object_set(item, "email", email);
		json_decref(user);
		user = NULL;
		if (item == NULL || json_array_append_new(a->out, item) != 0) {
			rc = SG_STORE_FAIL;
			goto out;
		}
	}
	rc = SG_STORE_OK;
out:
	json_decref(names);
	return rc;
}

static void
list_get(struct call *c, int roles)
{
	struct list_args a;
	struct sg_error refusal, err;
	struct sg_buf v;
	int found;

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	a.roles = roles;
	sg_buf_init(&v, 16);
	found = roles ? 0 : sg_request_query(c->r, "name_only", &v);
	if (found == 1 && strcmp(sg_buf_str(&v), "false") == 0) {
		a.detailed = 1;
	} else if (found != 0 && !(found == 1 && strcmp(sg_buf_str(&v), "true") == 0)) {
		sg_buf_free(&v);
		sg_response_error(c->r, 400, "name_only must be true or false");
		return;
	}
	sg_buf_free(&v);
	if (run(c, 0, list_txn, &a, &refusal, &err) != 0)
		sg_response_from_error(c->r, &err);
	else
		sg_response_json(c->r, 200, a.out);
	json_decref(a.out);
}

static void
user_list(struct call *c)
{
	list_get(c, 0);
}

static void
role_list(struct call *c)
{
	list_get(c, 1);
}

/* One user or role: GET. */

struct read_args {
	const struct sg_db_config *db;
	const char *name;
	int role;
	json_t *out; /* the answer; NULL when there is none */
};

static int
read_txn(struct sg_txn *txn, void *arg)
{
	struct read_args *a = arg;
	json_t *rec = NULL;
	int rc;

	json_decref(a->out);
	a->out = NULL;
	rc = a->role ? sg_role_load(txn, a->db->name, a->name, 0, &rec)
		     : sg_user_load(txn, a->db, a->name, 0, &rec);
	if (rc == SG_STORE_NOTFOUND)
		return SG_STORE_OK;
	if (rc != SG_STORE_OK)
		return rc;
	if (a->role) {
		a->out = sg_role_public(rec);
		rc = a->out != NULL ? SG_STORE_OK : SG_STORE_FAIL;
	} else {
		rc = user_shown(txn, a->db->name, rec, &a->out);
	}
	json_decref(rec);
	return rc;
}

static void
record_get(struct call *c, int role)
{
	struct read_args a;
	struct sg_error refusal, err;

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	a.name = seg(c->r, 2);
	a.role = role;
	if (!sg_user_name_valid(a.name))
		sg_response_error(c->r, 404, "missing");
	else if (run(c, 0, read_txn, &a, &refusal, &err) != 0)
		sg_response_from_error(c->r, &err);
	else if (a.out == NULL)
		sg_response_error(c->r, 404, "missing");
	else
		sg_response_json(c->r, 200, a.out);
	json_decref(a.out);
}

static void
user_get(struct call *c)
{
	record_get(c, 0);
}

static void
role_get(struct call *c)
{
	record_get(c, 1);
}

/* One user or role: PUT, and POST to the collection. */

struct write_args {
	const struct sg_db_config *db;
	const char *name;
	int role;
	int create_only;     /* POST: an existing record is a conflict */
	const json_t *body;  /* the document, checked inside */
	const char *hash;    /* the new password's hash, or NULL */
	int created;         /* out: no record existed */
	struct sg_error err; /* out: why the checks refused it */
};

/*
 * Checks the document against the current record's public view (so a
 * client may send back what GET showed it), merges and writes it.  A user
 * that ends up disabled or gets a new password loses its sessions.
 */
static int
write_txn(struct sg_txn *txn, void *arg)
{
	struct write_args *a = arg;
	json_t *current = NULL, *shown = NULL, *rec = NULL;
	int rc;

	sg_error_clear(&a->err);
	rc = a->role ? sg_role_load(txn, a->db->name, a->name, SG_GET_FOR_UPDATE, &current)
		     : sg_user_load(txn, a->db, a->name, SG_GET_FOR_UPDATE, &current);
	if (rc != SG_STORE_OK && rc != SG_STORE_NOTFOUND)
		goto out;
	a->created = rc == SG_STORE_NOTFOUND;
	rc = SG_STORE_OK;
	if (!a->created && a->create_only) {
		rc = refuse(&a->err, 409, a->role ? "Role already exists" : "User already exists");
		goto out;
	}
	if (!a->created && a->role) {
		shown = sg_role_public(current);
		rc = shown != NULL ? SG_STORE_OK : SG_STORE_FAIL;
	} else if (!a->created) {
		rc = user_shown(txn, a->db->name, current, &shown);
	}
	if (rc != SG_STORE_OK)
		goto out;
	if (a->role ? sg_role_check_doc(a->body, a->name, shown, &a->err) != 0
		    : sg_user_check_doc(a->body, a->name, shown, &a->err) != 0) {
		rc = TXN_REFUSED;
		goto out;
	}
	rec = a->role ? sg_role_merge(current, a->body, a->name)
		      : sg_user_merge(current, a->body, a->name, a->hash);
	if (rec == NULL) {
		rc = SG_STORE_FAIL;
		goto out;
	}
	rc = a->role ? sg_role_save(txn, a->db->name, rec) : sg_user_save(txn, a->db->name, rec);
	if (rc == SG_STORE_OK && !a->role && (a->hash != NULL || sg_user_disabled(rec)))
		rc = end_sessions(txn, a->db->name, a->name);
out:
	json_decref(current);
	json_decref(shown);
	json_decref(rec);
	return rc;
}

/*
 * Hashes the body's password when it is one sg_user_check_doc will accept
 * (a string of at least 3 bytes, for a user other than GUEST); the check
 * inside the transaction refuses every other kind.  Returns 0 with *hashed
 * set, or -1 with err set.
 */
static int
hash_password(const json_t *body, const char *name, char *out, size_t outsz, int *hashed,
	struct sg_error *err)
{
	const json_t *pw = json_object_get(body, "password");

	*hashed = 0;
	if (strcmp(name, SG_GUEST) == 0 || !json_is_string(pw) || json_string_length(pw) < 3 ||
		memchr(json_string_value(pw), '\0', json_string_length(pw)) != NULL)
		return 0;
	if (sg_password_hash(json_string_value(pw), out, outsz, err) != 0)
		return -1;
	*hashed = 1;
	return 0;
}

/*
 * PUT /{db}/_{user,role}/{name} (create_only 0) and POST /{db}/_{user,
 * role}/ (create_only 1, name from the body).
 */
static void
record_write(struct call *c, int role, int create_only)
{
	const char *event = role ? (create_only ? "role.post" : "role.put")
				 : (create_only ? "user.post" : "user.put");
	struct write_args a;
	struct sg_error err;
	struct sg_buf subject;
	char hash[SG_PASSWORD_HASH_MAX];
	json_t *body = NULL, *jname;
	int hashed = 0;

	memset(&a, 0, sizeof(a));
	sg_error_clear(&err);
	sg_buf_init(&subject, 2 * SG_NAME_MAX);
	a.db = c->db;
	a.role = role;
	a.create_only = create_only;
	a.name = create_only ? NULL : seg(c->r, 2);
	if (!create_only && !sg_user_name_valid(a.name)) {
		sg_error_set(&err, 400, "Invalid name");
		goto fail;
	}
	if (sg_request_json_body(c->r, &body, &err) != 0)
		goto fail;
	if (create_only) {
		jname = json_object_get(body, "name");
		if (jname == NULL) {
			sg_error_set(&err, 400, "The name is missing from the body");
			goto fail;
		}
		if (!json_is_string(jname)) {
			sg_error_set(&err, 400, "name must be a string");
			goto fail;
		}
		a.name = json_string_value(jname);
		if (!sg_user_name_valid(a.name) || strlen(a.name) != json_string_length(jname)) {
			sg_error_set(&err, 400, "Invalid name");
			goto fail;
		}
	}
	sg_buf_addf(&subject, "name=%s", a.name);
	if (!role && hash_password(body, a.name, hash, sizeof(hash), &hashed, &err) != 0)
		goto fail;
	a.body = body;
	a.hash = hashed ? hash : NULL;
	if (run(c, SG_TXN_DURABLE, write_txn, &a, &a.err, &err) != 0)
		goto fail;
	sg_log_event(SG_LOG_INFO, c->db->name, c->admin, event, "%s %s%s",
		a.created ? "created" : "replaced", sg_buf_str(&subject),
		hashed ? ", password set" : "");
	send_ok(c->r, a.created ? 201 : 200);
	goto out;
fail:
	if (a.name != NULL && subject.len == 0)
		sg_buf_addf(&subject, "name=%s", a.name);
	write_failed(c, event, sg_buf_str(&subject), &err);
out:
	forget_password(c->r, body);
	sg_secure_wipe(hash, sizeof(hash));
	json_decref(body);
	sg_buf_free(&subject);
}

static void
user_put(struct call *c)
{
	record_write(c, 0, 0);
}

static void
user_post(struct call *c)
{
	record_write(c, 0, 1);
}

static void
role_put(struct call *c)
{
	record_write(c, 1, 0);
}

static void
role_post(struct call *c)
{
	record_write(c, 1, 1);
}

/* One user or role: DELETE. */

struct delete_args {
	const char *db;
	const char *name;
	int role;
	struct sg_error err;
};

static int
delete_txn(struct sg_txn *txn, void *arg)
{
	struct delete_args *a = arg;
	int rc;

	sg_error_clear(&a->err);
	rc = a->role ? sg_role_delete(txn, a->db, a->name) : sg_user_delete(txn, a->db, a->name);
	if (rc == SG_STORE_NOTFOUND)
		return refuse(&a->err, 404, "missing");
	if (rc == SG_STORE_OK && !a->role)
		rc = end_sessions(txn, a->db, a->name);
	return rc;
}

static void
record_delete(struct call *c, int role)
{
	const char *event = role ? "role.delete" : "user.delete";
	struct delete_args a;
	struct sg_error err;
	struct sg_buf subject;

	memset(&a, 0, sizeof(a));
	a.db = c->db->name;
	a.name = seg(c->r, 2);
	a.role = role;
	sg_buf_init(&subject, 2 * SG_NAME_MAX);
	sg_buf_addf(&subject, "name=%s", a.name);
	if (!role && strcmp(a.name, SG_GUEST) == 0) {
		/* GUEST always exists; it can only be disabled. */
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, event, "refused (405) %s",
			sg_buf_str(&subject));
		sg_response_method_not_allowed(c->r, "GET, HEAD, PUT");
	} else if (!sg_user_name_valid(a.name)) {
		sg_error_set(&err, 404, "missing");
		write_failed(c, event, sg_buf_str(&subject), &err);
	} else if (run(c, SG_TXN_DURABLE, delete_txn, &a, &a.err, &err) != 0) {
		write_failed(c, event, sg_buf_str(&subject), &err);
	} else {
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, event, "deleted %s",
			sg_buf_str(&subject));
		send_ok(c->r, 200);
	}
	sg_buf_free(&subject);
}

static void
user_delete(struct call *c)
{
	record_delete(c, 0);
}

static void
role_delete(struct call *c)
{
	record_delete(c, 1);
}

/* A user's sessions: DELETE /{db}/_user/{name}/_session[/{id}]. */

struct end_args {
	const struct sg_db_config *db;
	const char *name;
	const char *only; /* the one session to end, or NULL for all */
	struct sg_error err;
};

static int
end_txn(struct sg_txn *txn, void *arg)
{
	struct end_args *a = arg;
	json_t *user = NULL;
	int rc;

	sg_error_clear(&a->err);
	/* Locking the user orders this with a session being created for it. */
	rc = sg_user_load(txn, a->db, a->name, SG_GET_FOR_UPDATE, &user);
	json_decref(user);
	if (rc == SG_STORE_NOTFOUND)
		return refuse(&a->err, 404, "missing");
	if (rc != SG_STORE_OK)
		return rc;
	rc = sg_session_delete_user(txn, a->db->name, a->name, a->only);
	if (rc == SG_STORE_NOTFOUND)
		return a->only != NULL ? refuse(&a->err, 404, "no such session") : SG_STORE_OK;
	return rc;
}

static void
user_sessions_delete(struct call *c)
{
	struct end_args a;
	struct sg_error err;
	struct sg_buf subject;
	char tag[SG_TAG_LEN];

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	a.name = seg(c->r, 2);
	a.only = c->n > 4 ? seg(c->r, 4) : NULL;
	sg_buf_init(&subject, 2 * SG_NAME_MAX + 64);
	sg_buf_addf(&subject, "name=%s", a.name);
	if (a.only != NULL) {
		sg_secure_tag(a.only, tag);
		sg_buf_addf(&subject, " session=%s", tag);
	}
	if (!sg_user_name_valid(a.name) || (a.only != NULL && !sg_session_id_valid(a.only))) {
		sg_error_set(&err, 404, a.only != NULL ? "no such session" : "missing");
		write_failed(c, "user.session.delete", sg_buf_str(&subject), &err);
	} else if (run(c, 0, end_txn, &a, &a.err, &err) != 0) {
		write_failed(c, "user.session.delete", sg_buf_str(&subject), &err);
	} else {
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, "user.session.delete",
			"deleted %s%s", a.only != NULL ? "" : "all sessions of ",
			sg_buf_str(&subject));
		send_ok(c->r, 200);
	}
	sg_buf_free(&subject);
}

/* Admin sessions: POST /{db}/_session, GET|DELETE /{db}/_session/{id}. */

struct session_args {
	const struct sg_db_config *db;
	const char *name;
	long ttl;
	time_t now;
	struct sg_session s;
	int expired; /* out (DELETE): it had already ended */
	struct sg_error err;
};

static int
session_create_txn(struct sg_txn *txn, void *arg)
{
	struct session_args *a = arg;
	json_t *user = NULL;
	int rc;

	sg_error_clear(&a->err);
	/* Locked, so that a concurrent disable or delete cannot slip between. */
	rc = sg_user_load(txn, a->db, a->name, SG_GET_FOR_UPDATE, &user);
	if (rc == SG_STORE_NOTFOUND)
		return refuse(&a->err, 404, "missing");
	if (rc != SG_STORE_OK)
		return rc;
	if (sg_user_disabled(user))
		rc = refuse(&a->err, 400, "User is disabled");
	else
		rc = sg_session_create(txn, a->db->name, a->name, a->ttl, a->now, &a->s);
	json_decref(user);
	return rc;
}

/* Reads {"name", "ttl"} from the body into a; 400 for anything else. */
static int
session_body(json_t *body, struct session_args *a, struct sg_error *err)
{
	const char *key;
	json_t *v;
	json_int_t ttl;

	a->ttl = a->db->session_ttl;
	json_object_foreach (body, key, v) {
		if (strcmp(key, "name") == 0) {
			if (!json_is_string(v))
				return sg_error_set(err, 400, "name must be a string");
			a->name = json_string_value(v);
			if (!sg_user_name_valid(a->name) ||
				strlen(a->name) != json_string_length(v))
				return sg_error_set(err, 400, "Invalid name");
		} else if (strcmp(key, "ttl") == 0) {
			ttl = json_is_integer(v) ? json_integer_value(v) : 0;
			if (ttl < 1 || ttl > SESSION_TTL_MAX)
				return sg_error_set(err, 400,
					"ttl must be an integer from 1 to %ld seconds",
					SESSION_TTL_MAX);
			a->ttl = (long)ttl;
		} else {
			return sg_error_set(err, 400, "Unknown field %s", key);
		}
	}
	if (a->name == NULL)
		return sg_error_set(err, 400, "The name is missing from the body");
	/* GUEST is who has no session; as Sync Gateway, there is no such user. */
	if (strcmp(a->name, SG_GUEST) == 0)
		return sg_error_set(err, 404, "GUEST cannot have a session");
	return 0;
}

static void
session_post(struct call *c)
{
	struct session_args a;
	struct sg_error err;
	struct sg_buf subject;
	json_t *body = NULL, *out;
	char tag[SG_TAG_LEN], expires[32];

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	sg_buf_init(&subject, 2 * SG_NAME_MAX);
	if (sg_request_json_body(c->r, &body, &err) != 0 || session_body(body, &a, &err) != 0) {
		if (a.name != NULL)
			sg_buf_addf(&subject, "name=%s", a.name);
		write_failed(c, "session.create", sg_buf_str(&subject), &err);
		goto out;
	}
	sg_buf_addf(&subject, "name=%s", a.name);
	a.now = time(NULL);
	if (run(c, 0, session_create_txn, &a, &a.err, &err) != 0) {
		write_failed(c, "session.create", sg_buf_str(&subject), &err);
		goto out;
	}
	sg_secure_tag(a.s.id, tag);
	sg_session_time(a.s.expires, expires);
	sg_log_event(SG_LOG_INFO, c->db->name, c->admin, "session.create",
		"created %s session=%s ttl=%ld", sg_buf_str(&subject), tag, a.ttl);
	out = json_pack("{s:s, s:s, s:s}", "session_id", a.s.id, "expires", expires, "cookie_name",
		c->db->cookie_name);
	if (out == NULL)
		sg_response_error(c->r, 500, "Out of memory");
	else
		sg_response_json(c->r, 200, out);
	json_decref(out);
	sg_secure_wipe(a.s.id, sizeof(a.s.id));
	sg_app_upkeep(c->app);
out:
	json_decref(body);
	sg_buf_free(&subject);
}

static int
session_read_txn(struct sg_txn *txn, void *arg)
{
	struct session_args *a = arg;
	int rc;

	sg_error_clear(&a->err);
	rc = sg_session_get(txn, a->db->name, a->name, 0, &a->s);
	if (rc == SG_STORE_OK && !sg_session_live(&a->s, a->now))
		rc = SG_STORE_NOTFOUND;
	if (rc == SG_STORE_NOTFOUND)
		return refuse(&a->err, 404, "no such session");
	return rc;
}

static void
session_get(struct call *c)
{
	struct session_args a;
	struct sg_principal p;
	struct sg_error err;
	json_t *info;

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	a.name = seg(c->r, 2); /* the session id */
	a.now = time(NULL);
	if (run(c, 0, session_read_txn, &a, &a.err, &err) != 0) {
		sg_response_from_error(c->r, &err);
		return;
	}
	if (sg_auth_principal(c->app, c->db, a.s.user, &p, &err) != 0) {
		sg_response_from_error(c->r, &err);
		return;
	}
	info = sg_auth_session_info(&p);
	sg_principal_free(&p);
	if (info == NULL)
		sg_response_error(c->r, 500, "Out of memory");
	else
		sg_response_json(c->r, 200, info);
	json_decref(info);
}

/* Ends a session; one that had already expired is removed but reported missing. */
static int
session_delete_txn(struct sg_txn *txn, void *arg)
{
	struct session_args *a = arg;
	int rc;

	sg_error_clear(&a->err);
	rc = sg_session_get(txn, a->db->name, a->name, SG_GET_FOR_UPDATE, &a->s);
	if (rc == SG_STORE_NOTFOUND)
		return refuse(&a->err, 404, "no such session");
	if (rc != SG_STORE_OK)
		return rc;
	a->expired = !sg_session_live(&a->s, a->now);
	return sg_session_delete(txn, a->db->name, a->name);
}

static void
session_delete(struct call *c)
{
	struct session_args a;
	struct sg_error err;
	char tag[SG_TAG_LEN];

	memset(&a, 0, sizeof(a));
	a.db = c->db;
	a.name = seg(c->r, 2); /* the session id */
	a.now = time(NULL);
	sg_secure_tag(a.name, tag);
	if (run(c, 0, session_delete_txn, &a, &a.err, &err) != 0) {
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, "session.delete",
			"refused (%d %s) session=%s", err.status, err.reason, tag);
		sg_response_from_error(c->r, &err);
	} else if (a.expired) {
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, "session.delete",
			"removed expired name=%s session=%s", a.s.user, tag);
		sg_response_error(c->r, 404, "no such session");
	} else {
		sg_log_event(SG_LOG_INFO, c->db->name, c->admin, "session.delete",
			"deleted name=%s session=%s", a.s.user, tag);
		send_ok(c->r, 200);
	}
}

/* Dispatch. */

typedef void (*endpoint_fn)(struct call *c);

/*
 * An endpoint: the path /{db}/{kind}[/{name}[/{sub}[/{id}]]] with n
 * segments (a trailing empty one not counted), and a function per method.
 * HEAD is served as GET (request.c leaves out the body).
 */
struct route {
	const char *kind;
	size_t n;
	const char *sub; /* segment 3, when n > 3 */
	const char *allow;
	endpoint_fn get, put, post, del;
};

static const struct route routes[] = {
	{"_user", 2, NULL, "GET, HEAD, POST", user_list, NULL, user_post, NULL},
	{"_user", 3, NULL, "GET, HEAD, PUT, DELETE", user_get, user_put, NULL, user_delete},
	{"_user", 4, "_session", "DELETE", NULL, NULL, NULL, user_sessions_delete},
	{"_user", 5, "_session", "DELETE", NULL, NULL, NULL, user_sessions_delete},
	{"_role", 2, NULL, "GET, HEAD, POST", role_list, NULL, role_post, NULL},
	{"_role", 3, NULL, "GET, HEAD, PUT, DELETE", role_get, role_put, NULL, role_delete},
	{"_session", 2, NULL, "POST", NULL, NULL, session_post, NULL},
	{"_session", 3, NULL, "GET, HEAD, DELETE", session_get, NULL, NULL, session_delete},
};

/*
 * Counts the path segments, leaving out a trailing empty one: "/db/_user/"
 * and "/db/_user" are the same collection.
 */
static size_t
path_length(const struct sg_request *r)
{
	size_t n = r->n_segs;

	if (n > 2 && r->segs[n - 1][0] == '\0')
		n--;
	return n;
}

static const struct route *
find_route(const struct sg_request *r, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].n == n && strcmp(seg(r, 1), routes[i].kind) == 0 &&
			(routes[i].sub == NULL || strcmp(seg(r, 3), routes[i].sub) == 0))
			return &routes[i];
	return NULL;
}

static endpoint_fn
find_endpoint(const struct route *rt, const char *method)
{
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
		return rt->get;
	if (strcmp(method, "PUT") == 0)
		return rt->put;
	if (strcmp(method, "POST") == 0)
		return rt->post;
	if (strcmp(method, "DELETE") == 0)
		return rt->del;
	return NULL;
}

void
sg_admin_handle(struct sg_request *r, void *ctx)
{
	struct call c;
	struct sg_error err;
	const struct route *rt;
	endpoint_fn fn;

	memset(&c, 0, sizeof(c));
	c.app = ctx;
	c.r = r;
	sg_error_clear(&err);
	if (sg_auth_admin(c.app, r, &err) != 0) {
		if (err.status == 401)
			sg_response_header(r, "WWW-Authenticate", ADMIN_CHALLENGE);
		sg_response_from_error(r, &err);
		return;
	}
	c.db = sg_app_db(c.app, r);
	if (c.db == NULL)
		return;
	acting_admin(&c);
	c.n = path_length(r);
	rt = find_route(r, c.n);
	if (rt == NULL) {
		sg_response_error(r, 404, "unknown URL");
		return;
	}
	fn = find_endpoint(rt, r->method);
	if (fn == NULL)
		sg_response_method_not_allowed(r, rt->allow);
	else
		fn(&c);
}
