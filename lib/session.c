/*
 * session.c: creating, finding, extending and ending sessions.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "secure.h"
#include "session.h"

/* Expired sessions removed by one purge transaction: bounded work per call. */
#define PURGE_BATCH 64

int
sg_session_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || strlen(id) != SG_SESSION_ID_LEN)
		return 0;
	for (i = 0; i < SG_SESSION_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * Makes the key of a session in the expiry index: the expiry as 16
 * zero-padded hex digits (so key order is time order), then db and id.
 */
static int
expiry_key(struct sg_key *k, const char *db, const struct sg_session *s)
{
	char when[17];
	unsigned long long t = s->expires > 0 ? (unsigned long long)s->expires : 0;
	int i;

	for (i = 15; i >= 0; i--, t >>= 4)
		when[i] = "0123456789abcdef"[t & 15];
	when[16] = '\0';
	return sg_key_make(k, when, db, s->id, (char *)NULL);
}

/* Adds (add = 1) or removes the session's entry in the expiry index. */
static int
expiry_entry(struct sg_txn *txn, const char *db, const struct sg_session *s, int add)
{
	struct sg_key k;
	int rc;

	if (expiry_key(&k, db, s) != 0)
		return SG_STORE_FAIL;
	if (add)
		return sg_store_put(txn, SG_TABLE_EXPIRY, &k, "", 0);
	rc = sg_store_del(txn, SG_TABLE_EXPIRY, &k);
	return rc == SG_STORE_NOTFOUND ? SG_STORE_OK : rc;
}

static int
write_session(struct sg_txn *txn, const char *db, const struct sg_session *s)
{
	struct sg_key k;
	json_t *v;
	char *text;
	int rc;

	if (sg_key_make(&k, db, s->id, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	v = json_pack("{s:s, s:I, s:I, s:I}", "user", s->user, "ttl", (json_int_t)s->ttl, "expires",
		(json_int_t)s->expires, "extended", (json_int_t)s->extended);
	text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	if (text == NULL)
		return SG_STORE_FAIL;
	rc = sg_store_put(txn, SG_TABLE_SESSIONS, &k, text, strlen(text));
	free(text);
	if (rc == SG_STORE_OK)
		rc = expiry_entry(txn, db, s, 1);
	return rc;
}

int
sg_session_create(struct sg_txn *txn, const char *db, const char *user, long ttl, time_t now,
	struct sg_session *out)
{
	struct sg_key k;
	int rc;

	if (strlen(user) > SG_NAME_MAX || sg_secure_random_hex(20, out->id) != 0)
		return SG_STORE_FAIL;
	memcpy(out->user, user, strlen(user) + 1);
	out->ttl = ttl;
	out->extended = now;
	out->expires = (long long)now + ttl;
	rc = write_session(txn, db, out);
	if (rc != SG_STORE_OK)
		return rc;
	if (sg_key_make(&k, db, user, out->id, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	return sg_store_put(txn, SG_TABLE_USER_SESSIONS, &k, "", 0);
}

/* Parses a stored session value into *s (id set by the caller). */
static int
parse_session(const char *text, size_t n, struct sg_session *s)
{
	json_t *v = json_loadb(text, n, 0, NULL);
	const char *user;
	json_int_t ttl, expires, extended;
	int rc = SG_STORE_FAIL;

	if (v == NULL ||
		json_unpack(v, "{s:s, s:I, s:I, s:I}", "user", &user, "ttl", &ttl, "expires",
			&expires, "extended", &extended) != 0 ||
		strlen(user) > SG_NAME_MAX)
		goto out;
	memcpy(s->user, user, strlen(user) + 1);
	s->ttl = (long)ttl;
	s->expires = expires;
	s->extended = extended;
	rc = SG_STORE_OK;
out:
	json_decref(v);
	return rc;
}

int
sg_session_get(struct sg_txn *txn, const char *db, const char *id, unsigned flags,
	struct sg_session *out)
{
	struct sg_key k;
	struct sg_buf val;
	int rc;

	if (!sg_session_id_valid(id) || sg_key_make(&k, db, id, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	sg_buf_init(&val, 4096);
	rc = sg_store_get(txn, SG_TABLE_SESSIONS, &k, flags, &val);
	if (rc == SG_STORE_OK) {
		memcpy(out->id, id, SG_SESSION_ID_LEN + 1);
		rc = parse_session(sg_buf_str(&val), val.len, out);
	}
	sg_buf_free(&val);
	return rc;
}

int
sg_session_live(const struct sg_session *s, time_t now)
{
	return (long long)now < s->expires;
}

int
sg_session_due(const struct sg_session *s, time_t now)
{
	return (long long)now - s->extended >= s->ttl / 10;
}

int
sg_session_extend(struct sg_txn *txn, const char *db, struct sg_session *s, time_t now)
{
	int rc = expiry_entry(txn, db, s, 0);

	if (rc != SG_STORE_OK)
		return rc;
	s->extended = now;
	s->expires = (long long)now + s->ttl;
	return write_session(txn, db, s);
}

/* Removes the session record and its entries in both indexes. */
static int
remove_session(struct sg_txn *txn, const char *db, const struct sg_session *s)
{
	struct sg_key k;
	int rc;

	if (sg_key_make(&k, db, s->id, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	rc = sg_store_del(txn, SG_TABLE_SESSIONS, &k);
	if (rc == SG_STORE_OK)
		rc = expiry_entry(txn, db, s, 0);
	if (rc != SG_STORE_OK)
		return rc;
	if (sg_key_make(&k, db, s->user, s->id, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	rc = sg_store_del(txn, SG_TABLE_USER_SESSIONS, &k);
	return rc == SG_STORE_NOTFOUND ? SG_STORE_OK : rc;
}

int
sg_session_delete(struct sg_txn *txn, const char *db, const char *id)
{
	struct sg_session s;
	int rc;

	rc = sg_session_get(txn, db, id, SG_GET_FOR_UPDATE, &s);
	if (rc != SG_STORE_OK)
		return rc;
	return remove_session(txn, db, &s);
}

struct id_list {
	size_t skip; /* length of the key prefix */
	char (*ids)[SG_SESSION_ID_LEN + 1];
	size_t n, cap;
};

static int
collect_id(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct id_list *l = arg;
	void *p;

	(void)val;
	(void)vlen;
	if (klen != l->skip + SG_SESSION_ID_LEN + 1)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		p = realloc(l->ids, l->cap * sizeof(*l->ids));
		if (p == NULL)
			return SG_STORE_FAIL;
		l->ids = p;
	}
	memcpy(l->ids[l->n], key + l->skip, SG_SESSION_ID_LEN + 1);
	l->n++;
	return 0;
}

int
sg_session_delete_user(struct sg_txn *txn, const char *db, const char *user, const char *only)
{
	struct sg_key prefix;
	struct id_list l = {0, NULL, 0, 0};
	struct sg_session s;
	size_t i;
	int rc, found = 0;

	if (sg_key_make(&prefix, db, user, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	l.skip = prefix.len;
	rc = sg_store_scan(txn, SG_TABLE_USER_SESSIONS, &prefix, collect_id, &l);
	for (i = 0; rc == SG_STORE_OK && i < l.n; i++) {
		if (only != NULL && strcmp(only, l.ids[i]) != 0)
			continue;
		found = 1;
		rc = sg_session_get(txn, db, l.ids[i], SG_GET_FOR_UPDATE, &s);
		if (rc == SG_STORE_OK)
			rc = remove_session(txn, db, &s);
		if (rc == SG_STORE_NOTFOUND)
			rc = SG_STORE_OK;
	}
	free(l.ids);
	if (rc == SG_STORE_OK && only != NULL && !found)
		return SG_STORE_NOTFOUND;
	return rc;
}

/* One expiry index key found by a purge scan: "<when>\0<db>\0<id>\0". */
struct expired {
	char key[SG_KEY_MAX];
	size_t klen;
};

struct purge_arg {
	time_t t;     /* the current time */
	char now[17]; /* the first expiry key still live at t */
	size_t limit; /* entries removed by one transaction */
	struct expired *found;
	size_t n;
};

static int
purge_one(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct purge_arg *pa = arg;

	(void)val;
	(void)vlen;
	/* The index is in time order: the first live entry ends the scan. */
	if (pa->n == pa->limit || strcmp(key, pa->now) >= 0)
		return 1;
	if (klen > SG_KEY_MAX)
		return 0;
	memcpy(pa->found[pa->n].key, key, klen);
	pa->found[pa->n].klen = klen;
	pa->n++;
	return 0;
}

/* Scans the expiry index, then deletes what the scan found. */
static int
purge_txn(struct sg_txn *txn, void *arg)
{
	struct purge_arg *pa = arg;
	struct sg_key prefix, k;
	struct sg_session s;
	const char *db, *id;
	size_t i;
	int rc;

	pa->n = 0;
	prefix.len = 0;
	rc = sg_store_scan(txn, SG_TABLE_EXPIRY, &prefix, purge_one, pa);
	for (i = 0; rc == SG_STORE_OK && i < pa->n; i++) {
		db = pa->found[i].key + strlen(pa->found[i].key) + 1;
		id = db + strlen(db) + 1;
		rc = sg_session_get(txn, db, id, SG_GET_FOR_UPDATE, &s);
		if (rc == SG_STORE_OK && !sg_session_live(&s, pa->t))
			rc = remove_session(txn, db, &s);
		if (rc == SG_STORE_NOTFOUND || rc == SG_STORE_OK) {
			/* A stale entry (the session was extended or is gone). */
			memcpy(k.data, pa->found[i].key, pa->found[i].klen);
			k.len = pa->found[i].klen;
			rc = sg_store_del(txn, SG_TABLE_EXPIRY, &k);
			if (rc == SG_STORE_NOTFOUND)
				rc = SG_STORE_OK;
		}
	}
	return rc;
}

int
sg_session_purge(struct sg_store *st, time_t now, int full, unsigned long *removed,
	struct sg_error *err)
{
	struct purge_arg pa;
	struct sg_session probe;
	struct sg_key k;
	int rc = SG_STORE_OK;

	memset(&pa, 0, sizeof(pa));
	pa.t = now;
	/* The expiry key of "now" gives the bound to compare keys with. */
	memset(&probe, 0, sizeof(probe));
	probe.expires = (long long)now + 1;
	if (expiry_key(&k, "", &probe) != 0)
		return sg_error_set(err, 500, "Cannot make a purge key");
	memcpy(pa.now, k.data, sizeof(pa.now));
	pa.now[16] = '\0';
	pa.limit = PURGE_BATCH;
	pa.found = calloc(pa.limit, sizeof(*pa.found));
	if (pa.found == NULL)
		return sg_error_set(err, 500, "Out of memory");
	do {
		rc = sg_store_run(st, 0, purge_txn, &pa, err);
		if (rc == SG_STORE_OK)
			*removed += pa.n;
	} while (rc == SG_STORE_OK && full && pa.n == pa.limit);
	free(pa.found);
	return rc == SG_STORE_OK ? 0 : -1;
}

int
sg_session_cookie(const struct sg_db_config *db, const char *sid, struct sg_buf *out)
{
	return sg_buf_addf(out, "%s=%s; Path=/%s%s%s%s; SameSite=%s", db->cookie_name,
		sid != NULL ? sid : "", db->name, sid == NULL ? "; Max-Age=0" : "",
		db->cookie_http_only ? "; HttpOnly" : "", db->cookie_secure ? "; Secure" : "",
		db->cookie_same_site);
}

void
sg_session_time(long long t, char *out)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		memcpy(out, "1970-01-01T00:00:00Z", 21);
}
