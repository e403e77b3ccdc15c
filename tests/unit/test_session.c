/*
 * test_session.c: sessions, their expiry index and purge, and grants,
 * against a real store in a temporary directory.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "store.h"
#include "tap.h"
#include "user.h"

static struct sg_store *st;

/* A transaction body calling one function pointer with a context. */
struct call {
	int (*fn)(struct sg_txn *, struct call *);
	const char *db, *user, *sid, *only;
	long ttl;
	time_t now;
	struct sg_session s;
	json_t *rec, *channels, *roles;
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

int
main(void)
{
	char dir[] = "/tmp/sg-test-session-XXXXXX";
	char cmd[128];
	struct sg_error err;

	if (mkdtemp(dir) == NULL || sg_store_open(dir, &st, &err) != 0) {
		printf("Bail out! cannot open a store in %s\n", dir);
		return 1;
	}
	test_lifecycle();
	test_purge();
	test_grants();
	sg_store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_ok(0, "remove the temporary store");
	return tap_done();
}
