/*
 * test_session.c: sessions, their expiry index and purge, grants, the
 * principals generation and the identification cache that rests on it,
 * against a real store in a temporary directory.  Changes that the cache
 * must notice are made by a child process with its own store handle, as
 * the admin API or syncgatectl would.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "auth.h"
#include "password.h"
#include "session.h"
#include "store.h"
#include "tap.h"
#include "user.h"

static struct sg_store *st;
static char storedir[] = "/tmp/sg-test-session-XXXXXX";

/* A transaction body calling one function pointer with a context. */
struct call {
	int (*fn)(struct sg_txn *, struct call *);
	const char *db, *user, *sid, *only;
	long ttl;
	time_t now;
	struct sg_session s;
	json_t *rec, *channels, *roles;
	char gen[SG_GENERATION_MAX];
	size_t genlen;
	int role;
};

static int
txn_dispatch(struct sg_txn *txn, void *arg)
{
	struct call *c = arg;

	return c->fn(txn, c);
}

static int
go(int (*fn)(struct sg_txn *, struct call *), struct call *c)
{
	struct sg_error err;

	c->fn = fn;
	return sg_store_run(st, 0, txn_dispatch, c, &err);
}

static int
do_create(struct sg_txn *txn, struct call *c)
{
	return sg_session_create(txn, c->db, c->user, c->ttl, c->now, &c->s);
}

static int
do_get(struct sg_txn *txn, struct call *c)
{
	return sg_session_get(txn, c->db, c->sid, 0, &c->s);
}

static int
do_extend(struct sg_txn *txn, struct call *c)
{
	return sg_session_extend(txn, c->db, &c->s, c->now);
}

static int
do_delete(struct sg_txn *txn, struct call *c)
{
	return sg_session_delete(txn, c->db, c->sid);
}

static int
do_delete_user(struct sg_txn *txn, struct call *c)
{
	return sg_session_delete_user(txn, c->db, c->user, c->only);
}

static int
do_save_user(struct sg_txn *txn, struct call *c)
{
	return sg_user_save(txn, c->db, c->rec);
}

static int
do_save_role(struct sg_txn *txn, struct call *c)
{
	return sg_role_save(txn, c->db, c->rec);
}

static int
do_delete_rec(struct sg_txn *txn, struct call *c)
{
	return c->role ? sg_role_delete(txn, c->db, c->user) : sg_user_delete(txn, c->db, c->user);
}

static int
do_generation(struct sg_txn *txn, struct call *c)
{
	return sg_principals_generation(txn, c->db, c->gen, &c->genlen);
}

static int
do_list_users(struct sg_txn *txn, struct call *c)
{
	return sg_user_list(txn, c->db, c->rec);
}

static int
do_grants(struct sg_txn *txn, struct call *c)
{
	json_decref(c->channels);
	json_decref(c->roles);
	return sg_user_grants(txn, c->db, c->rec, &c->channels, &c->roles);
}

static char *
create(const char *db, const char *user, long ttl, time_t now)
{
	static char id[SG_SESSION_ID_LEN + 1];
	struct call c;

	memset(&c, 0, sizeof(c));
	c.db = db;
	c.user = user;
	c.ttl = ttl;
	c.now = now;
	if (go(do_create, &c) != SG_STORE_OK)
		return NULL;
	memcpy(id, c.s.id, sizeof(id));
	return id;
}

static int
exists(const char *db, const char *sid)
{
	struct call c;

	memset(&c, 0, sizeof(c));
	c.db = db;
	c.sid = sid;
	return go(do_get, &c) == SG_STORE_OK;
}

static void
test_lifecycle(void)
{
	struct call c;
	char a[SG_SESSION_ID_LEN + 1], b[SG_SESSION_ID_LEN + 1];
	time_t t0 = 1700000000;

	memcpy(a, create("db", "alice", 1000, t0), sizeof(a));
	tap_ok(sg_session_id_valid(a), "id is 40 lowercase hex characters");
	memset(&c, 0, sizeof(c));
	c.db = "db";
	c.sid = a;
	tap_is_int(go(do_get, &c), SG_STORE_OK, "created session found");
	tap_is_str(c.s.user, "alice", "session user");
	tap_is_int(c.s.expires, t0 + 1000, "expires after ttl");
	tap_ok(sg_session_live(&c.s, t0 + 999), "live before expiry");
	tap_ok(!sg_session_live(&c.s, t0 + 1000), "dead at expiry");
	tap_ok(!sg_session_due(&c.s, t0 + 99), "not due before a tenth of the ttl");
	tap_ok(sg_session_due(&c.s, t0 + 100), "due at a tenth of the ttl");
	c.now = t0 + 500;
	tap_is_int(go(do_extend, &c), SG_STORE_OK, "extend");
	memset(&c.s, 0, sizeof(c.s));
	tap_is_int(go(do_get, &c), SG_STORE_OK, "extended session found");
	tap_is_int(c.s.expires, t0 + 1500, "extension moves expiry");
	tap_is_int(c.s.extended, t0 + 500, "extension time stored");
	tap_ok(!exists("other", a), "session not visible from another database");
	tap_ok(!exists("db", "ABCDEF0123456789ABCDEF0123456789ABCDEF01"), "malformed id not found");

	memcpy(b, create("db", "alice", 1000, t0), sizeof(b));
	create("db", "bob", 1000, t0);
	c.user = "alice";
	c.only = b;
	c.db = "db";
	tap_is_int(go(do_delete_user, &c), SG_STORE_OK, "end one of alice's sessions");
	tap_ok(exists("db", a) && !exists("db", b), "only that one ended");
	c.user = "bob";
	c.only = a;
	tap_is_int(go(do_delete_user, &c), SG_STORE_NOTFOUND, "cannot end another user's session");
	tap_ok(exists("db", a), "the other user's session survives");
	c.user = "alice";
	c.only = NULL;
	tap_is_int(go(do_delete_user, &c), SG_STORE_OK, "end all of alice's sessions");
	tap_ok(!exists("db", a), "all ended");
	c.sid = a;
	tap_is_int(go(do_delete, &c), SG_STORE_NOTFOUND, "deleting an ended session: not found");
}

static void
test_purge(void)
{
	struct sg_error err;
	unsigned long removed = 0;
	char live[SG_SESSION_ID_LEN + 1], dead[SG_SESSION_ID_LEN + 1];
	time_t now = 1800000000;
	int i;

	for (i = 0; i < 150; i++)
		create("pdb", "carol", 10, now - 100);
	memcpy(dead, create("pdb", "carol", 10, now - 100), sizeof(dead));
	memcpy(live, create("pdb", "carol", 1000, now), sizeof(live));
	tap_is_int(sg_session_purge(st, now, 0, &removed, &err), 0, "sampled purge");
	tap_is_int((long long)removed, 64, "one batch removed");
	tap_is_int(sg_session_purge(st, now, 1, &removed, &err), 0, "full purge");
	tap_ok(!exists("pdb", dead) && exists("pdb", live), "expired gone, live kept");
	tap_ok(removed >= 151, "every expired session removed");
	removed = 0;
	tap_is_int(sg_session_purge(st, now, 1, &removed, &err), 0, "purge again");
	tap_is_int((long long)removed, 0, "nothing left to remove");
	removed = 0;
	tap_is_int(sg_session_purge(st, now + 2000, 1, &removed, &err), 0, "purge later");
	tap_ok(!exists("pdb", live), "the live one expires in time");
}

static void
test_grants(void)
{
	struct call c;
	char *s;

	memset(&c, 0, sizeof(c));
	c.db = "gdb";
	c.rec = json_loads("{\"name\":\"team\",\"admin_channels\":[\"t2\",\"t1\"]}", 0, NULL);
	tap_is_int(go(do_save_role, &c), SG_STORE_OK, "save role");
	json_decref(c.rec);
	c.rec = json_loads("{\"name\":\"dave\",\"admin_channels\":[\"d\",\"t1\"],"
			   "\"admin_roles\":[\"team\",\"ghost\"],\"jwt_channels\":[\"j\"]}",
		0, NULL);
	tap_is_int(go(do_save_user, &c), SG_STORE_OK, "save user");
	tap_is_int(go(do_grants, &c), SG_STORE_OK, "grants");
	s = json_dumps(c.channels, JSON_COMPACT);
	tap_is_str(s, "[\"!\",\"d\",\"j\",\"t1\",\"t2\"]",
		"own, jwt and role channels, sorted, with !");
	free(s);
	s = json_dumps(c.roles, JSON_COMPACT);
	tap_is_str(s, "[\"team\"]", "a role that does not exist is left out");
	free(s);
	json_decref(c.rec);
	json_decref(c.channels);
	json_decref(c.roles);
}

/* Returns the generation of db (static buffer), or "" when it cannot be read. */
static const char *
generation(const char *db)
{
	static char out[SG_GENERATION_MAX];
	struct call c;

	memset(&c, 0, sizeof(c));
	c.db = db;
	if (go(do_generation, &c) != SG_STORE_OK)
		return "";
	memcpy(out, c.gen, sizeof(out));
	return out;
}

/* The counter part of a generation value, or 0. */
static unsigned long long
counter(const char *gen)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(gen, &end, 10);
	return errno == 0 && *end == ' ' ? n : 0;
}

/* Saves a user (role = 0) or role from JSON text; returns the store result. */
static int
save_json(const char *db, int role, const char *json)
{
	struct call c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.db = db;
	c.rec = json_loads(json, 0, NULL);
	if (c.rec == NULL)
		return SG_STORE_FAIL;
	rc = go(role ? do_save_role : do_save_user, &c);
	json_decref(c.rec);
	return rc;
}

static int
delete_rec(const char *db, int role, const char *name)
{
	struct call c;

	memset(&c, 0, sizeof(c));
	c.db = db;
	c.role = role;
	c.user = name;
	return go(do_delete_rec, &c);
}

/* Checks that the generation moved on by one step; remembers the new one in prev. */
static void
check_bumped(const char *db, char *prev, const char *what)
{
	const char *now = generation(db);
	char name[160];

	snprintf(name, sizeof(name), "%s: a new generation", what);
	tap_ok(*now != '\0' && strcmp(now, prev) != 0, name);
	snprintf(name, sizeof(name), "%s: its counter went up by one", what);
	tap_is_int((long long)counter(now), (long long)counter(prev) + 1, name);
	memcpy(prev, now, SG_GENERATION_MAX);
}

static void
test_generation(void)
{
	char prev[SG_GENERATION_MAX], other[SG_GENERATION_MAX];
	struct call c;
	char *s;

	memcpy(prev, generation("ndb"), sizeof(prev));
	tap_is_int((long long)counter(prev), 1, "a database without one gets its first generation");
	tap_is_str(generation("ndb"), prev, "reading it again does not change it");
	memcpy(other, generation("ndb2"), sizeof(other));
	tap_ok(strcmp(other, prev) != 0, "another database has a generation of its own");

	tap_is_int(save_json("ndb", 1, "{\"name\":\"crew\",\"admin_channels\":[\"c\"]}"),
		SG_STORE_OK, "save a new role");
	check_bumped("ndb", prev, "role created");
	tap_is_int(save_json("ndb", 1, "{\"name\":\"crew\",\"admin_channels\":[\"d\"]}"),
		SG_STORE_OK, "replace the role");
	check_bumped("ndb", prev, "role changed");
	tap_is_int(save_json("ndb", 0, "{\"name\":\"zed\",\"admin_roles\":[\"crew\"]}"),
		SG_STORE_OK, "save a new user");
	check_bumped("ndb", prev, "user created");
	tap_is_int(save_json("ndb", 0, "{\"name\":\"zed\",\"disabled\":true}"), SG_STORE_OK,
		"disable the user");
	check_bumped("ndb", prev, "user changed");
	tap_is_int(save_json("ndb", 0, "{\"name\":\"GUEST\",\"disabled\":false}"), SG_STORE_OK,
		"save GUEST");
	check_bumped("ndb", prev, "GUEST written");
	tap_is_int(delete_rec("ndb", 1, "crew"), SG_STORE_OK, "delete the role");
	check_bumped("ndb", prev, "role deleted");
	tap_is_int(save_json("ndb", 0, "{\"name\":\"yan\"}"), SG_STORE_OK, "save another user");
	check_bumped("ndb", prev, "second user created");
	tap_is_int(delete_rec("ndb", 0, "yan"), SG_STORE_OK, "delete that user");
	check_bumped("ndb", prev, "user deleted");

	tap_is_int(delete_rec("ndb", 0, "nobody"), SG_STORE_NOTFOUND, "delete a missing user");
	tap_is_str(generation("ndb"), prev, "nothing deleted: the generation stays");
	tap_is_int(save_json("ndb", 0, "{\"admin_channels\":[\"x\"]}"), SG_STORE_FAIL,
		"a record without a name is refused");
	tap_is_str(generation("ndb"), prev, "and leaves the generation alone");
	tap_is_str(generation("ndb2"), other, "the other database's generation never moved");

	memset(&c, 0, sizeof(c));
	c.db = "ndb";
	c.rec = json_array();
	tap_is_int(go(do_list_users, &c), SG_STORE_OK, "list users");
	s = json_dumps(c.rec, JSON_COMPACT);
	tap_is_str(s, "[\"zed\"]", "the generation is not listed as a user (nor GUEST)");
	free(s);
	json_decref(c.rec);
}

/*
 * Runs a change in a child process with a store handle of its own.
 * kind: 'u' save user, 'r' save role, 'U' delete user, 'R' delete role;
 * arg: the JSON record or the name.  Returns 1 when the child succeeded.
 */
static int
change_elsewhere(const char *db, int kind, const char *arg)
{
	struct sg_store *own;
	struct sg_error err;
	pid_t pid;
	int status, rc;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		if (sg_store_open(storedir, &own, &err) != 0)
			_exit(2);
		st = own;
		if (kind == 'u' || kind == 'r') {
			rc = save_json(db, kind == 'r', arg);
		} else {
			rc = delete_rec(db, kind == 'R', arg);
		}
		sg_store_close(own);
		_exit(rc == SG_STORE_OK ? 0 : 1);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		WEXITSTATUS(status) == 0;
}

/* The result of one identification, as text for comparisons. */
struct seen {
	int rc, status;
	char kind[16];
	char name[SG_NAME_MAX + 1];
	char channels[256], roles[256];
};

static void
joined(const json_t *arr, char *out, size_t n)
{
	char *s = json_dumps(arr, JSON_COMPACT);

	snprintf(out, n, "%s", s != NULL ? s : "-");
	free(s);
}

/* Identifies a request with env as its parameters, as the authorizer does. */
static struct seen
identify_env(struct sg_app *app, const struct sg_db_config *db, char **env)
{
	struct sg_request r;
	struct sg_principal p;
	struct sg_error err;
	struct seen out;

	memset(&out, 0, sizeof(out));
	sg_error_clear(&err);
	if (sg_request_begin(&r, NULL, env, &err) != 0) {
		out.rc = -2;
		return out;
	}
	out.rc = sg_auth_identify(app, db, &r, SG_AUTH_ALL, &p, &err);
	out.status = err.status;
	if (out.rc == 0) {
		snprintf(out.kind, sizeof(out.kind), "%s", sg_auth_kind_name(p.kind));
		snprintf(out.name, sizeof(out.name), "%s", p.name);
		joined(p.channels, out.channels, sizeof(out.channels));
		joined(p.roles, out.roles, sizeof(out.roles));
		sg_principal_free(&p);
	}
	sg_request_end(&r);
	return out;
}

static unsigned long
bcrypt_runs(void)
{
	unsigned long computed, cached;

	sg_password_stats(&computed, &cached);
	return computed;
}

static void
test_auth_cache(void)
{
	/* "erin:pw-erin" and "erin:pw-new" in base64. */
	char *basic_old[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/adb/doc",
		"HTTP_AUTHORIZATION=Basic ZXJpbjpwdy1lcmlu", NULL};
	char *basic_new[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/adb/doc",
		"HTTP_AUTHORIZATION=Basic ZXJpbjpwdy1uZXc=", NULL};
	char *anonymous[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/adb/doc", NULL};
	char cookie[128],
		*with_cookie[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/adb/doc", cookie, NULL};
	const char *guest_channels[] = {"pub"};
	char hash_old[SG_PASSWORD_HASH_MAX], hash_new[SG_PASSWORD_HASH_MAX], rec[512];
	struct sg_db_config db, gdb;
	struct sg_app app;
	struct sg_error err;
	struct seen w;
	unsigned long runs;
	char *sid;

	memset(&app, 0, sizeof(app));
	app.program = "test_session";
	app.store = st;
	memset(&db, 0, sizeof(db));
	db.name = "adb";
	db.cookie_name = "SyncGatewaySession";
	db.session_ttl = 86400;
	db.send_www_authenticate = 1;
	db.guest_disabled = 1;
	db.guest_channels.v = guest_channels;
	db.guest_channels.n = 1;
	if (sg_password_hash("pw-erin", hash_old, sizeof(hash_old), &err) != 0 ||
		sg_password_hash("pw-new", hash_new, sizeof(hash_new), &err) != 0) {
		tap_ok(0, "hash the test passwords");
		return;
	}
	save_json("adb", 1, "{\"name\":\"crew\",\"admin_channels\":[\"r1\"]}");
	snprintf(rec, sizeof(rec),
		"{\"name\":\"erin\",\"password_hash\":\"%s\",\"admin_channels\":[\"e1\"],"
		"\"admin_roles\":[\"crew\"]}",
		hash_old);
	save_json("adb", 0, rec);
	sid = create("adb", "erin", 86400, time(NULL));
	snprintf(cookie, sizeof(cookie), "HTTP_COOKIE=SyncGatewaySession=%s", sid);

	runs = bcrypt_runs();
	w = identify_env(&app, &db, basic_old);
	tap_is_int(w.rc, 0, "Basic: allowed");
	tap_is_str(w.kind, "basic", "Basic: kind");
	tap_is_str(w.name, "erin", "Basic: the user");
	tap_is_str(w.channels, "[\"!\",\"e1\",\"r1\"]", "Basic: own and role channels");
	tap_is_str(w.roles, "[\"crew\"]", "Basic: roles");
	w = identify_env(&app, &db, basic_old);
	tap_is_str(w.channels, "[\"!\",\"e1\",\"r1\"]", "Basic again: the same grants");
	w = identify_env(&app, &db, with_cookie);
	tap_is_str(w.kind, "session", "cookie: kind");
	tap_is_str(w.channels, "[\"!\",\"e1\",\"r1\"]", "cookie: the same grants");
	tap_is_int((long long)(bcrypt_runs() - runs), 1, "bcrypt ran once for both Basic requests");

	tap_ok(change_elsewhere("adb", 'r', "{\"name\":\"crew\",\"admin_channels\":[\"r2\"]}"),
		"another process changes the role's channels");
	w = identify_env(&app, &db, basic_old);
	tap_is_str(w.channels, "[\"!\",\"e1\",\"r2\"]", "Basic: the next request has them");
	w = identify_env(&app, &db, with_cookie);
	tap_is_str(w.channels, "[\"!\",\"e1\",\"r2\"]", "cookie: the next request has them");
	tap_is_int((long long)(bcrypt_runs() - runs), 1, "a role change runs no bcrypt");

	tap_ok(change_elsewhere("adb", 'R', "crew"), "another process deletes the role");
	w = identify_env(&app, &db, with_cookie);
	tap_is_str(w.channels, "[\"!\",\"e1\"]", "cookie: the role's channels are gone");
	tap_is_str(w.roles, "[]", "cookie: and the role");

	snprintf(rec, sizeof(rec),
		"{\"name\":\"erin\",\"password_hash\":\"%s\",\"admin_channels\":[\"e1\"],"
		"\"disabled\":true}",
		hash_old);
	tap_ok(change_elsewhere("adb", 'u', rec), "another process disables the user");
	w = identify_env(&app, &db, basic_old);
	tap_ok(w.rc == -1 && w.status == 401, "Basic: a disabled user is refused");
	w = identify_env(&app, &db, with_cookie);
	tap_ok(w.rc == -1 && w.status == 401, "cookie: a disabled user is refused");

	snprintf(rec, sizeof(rec),
		"{\"name\":\"erin\",\"password_hash\":\"%s\",\"admin_channels\":[\"e2\"]}",
		hash_new);
	tap_ok(change_elsewhere("adb", 'u', rec), "another process enables it, new password");
	runs = bcrypt_runs();
	w = identify_env(&app, &db, basic_old);
	tap_ok(w.rc == -1 && w.status == 401, "Basic: the old password is refused at once");
	w = identify_env(&app, &db, basic_new);
	tap_is_str(w.channels, "[\"!\",\"e2\"]", "Basic: the new password, the new channels");
	w = identify_env(&app, &db, basic_new);
	tap_is_int(w.rc, 0, "Basic: the new password again");
	tap_is_int((long long)(bcrypt_runs() - runs), 2,
		"bcrypt ran for the old password once and the new one once");

	tap_ok(change_elsewhere("adb", 'U', "erin"), "another process deletes the user");
	w = identify_env(&app, &db, basic_new);
	tap_ok(w.rc == -1 && w.status == 401, "Basic: a deleted user is refused");
	w = identify_env(&app, &db, with_cookie);
	tap_ok(w.rc == -1 && w.status == 401, "cookie: a deleted user's session is refused");

	w = identify_env(&app, &db, anonymous);
	tap_ok(w.rc == -1 && w.status == 401, "GUEST disabled by configuration: refused");
	/* The configuration is fixed for a process's life: another database. */
	gdb = db;
	gdb.name = "gdb";
	gdb.guest_disabled = 0;
	w = identify_env(&app, &gdb, anonymous);
	tap_is_str(w.kind, "guest", "GUEST enabled by configuration");
	tap_is_str(w.channels, "[\"!\",\"pub\"]", "GUEST: the configured channels");
	tap_ok(change_elsewhere("gdb", 'u', "{\"name\":\"GUEST\",\"admin_channels\":[\"g2\"]}"),
		"another process writes GUEST");
	w = identify_env(&app, &gdb, anonymous);
	tap_is_str(w.channels, "[\"!\",\"g2\"]", "GUEST: the stored channels, next request");
	tap_ok(change_elsewhere("gdb", 'u', "{\"name\":\"GUEST\",\"disabled\":true}"),
		"another process disables GUEST");
	w = identify_env(&app, &gdb, anonymous);
	tap_ok(w.rc == -1 && w.status == 401, "GUEST: refused on the next request");
}

int
main(void)
{
	char cmd[128];
	struct sg_error err;

	if (mkdtemp(storedir) == NULL || sg_store_open(storedir, &st, &err) != 0) {
		printf("Bail out! cannot open a store in %s\n", storedir);
		return 1;
	}
	test_lifecycle();
	test_purge();
	test_grants();
	test_generation();
	test_auth_cache();
	sg_store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", storedir);
	if (system(cmd) != 0)
		tap_ok(0, "remove the temporary store");
	return tap_done();
}
