/*
 * test_store.c: the store in one process: keys, records, scans, aborts,
 * limits, persistence, checkpoints, backup and verification.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "store.h"
#include "tap.h"
#include "testutil.h"

static char tmpdir[4096];
static char storedir[4200];

/* One record operation, run as a transaction body. */
enum op_kind { OP_PUT, OP_GET, OP_GET_FOR_UPDATE, OP_DEL };

struct op {
	enum op_kind kind;
	enum sg_table table;
	struct sg_key key;
	const void *val;
	size_t n;
	struct sg_buf out;
	int result;
};

static int
run_op(struct sg_txn *txn, void *arg)
{
	struct op *op = arg;

	switch (op->kind) {
	case OP_PUT:
		op->result = sg_store_put(txn, op->table, &op->key, op->val, op->n);
		break;
	case OP_GET:
		op->result = sg_store_get(txn, op->table, &op->key, 0, &op->out);
		break;
	case OP_GET_FOR_UPDATE:
		op->result = sg_store_get(txn, op->table, &op->key, SG_GET_FOR_UPDATE, &op->out);
		break;
	case OP_DEL:
		op->result = sg_store_del(txn, op->table, &op->key);
		break;
	}
	if (op->result == SG_STORE_RETRY || op->result == SG_STORE_FAIL)
		return op->result;
	return SG_STORE_OK;
}

static void
op_init(struct op *op, enum op_kind kind, enum sg_table t, const char *db, const char *name)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->table = t;
	sg_key_make(&op->key, db, name, (char *)NULL);
	sg_buf_init(&op->out, SG_STORE_VALUE_MAX);
}

/* Runs one operation in its own transaction; returns the operation's result. */
static int
do_op(struct sg_store *st, enum op_kind kind, enum sg_table t, const char *db, const char *name,
	const char *val, struct sg_buf *out)
{
	struct sg_error err;
	struct op op;
	int rc;

	op_init(&op, kind, t, db, name);
	if (val != NULL) {
		op.val = val;
		op.n = strlen(val);
	}
	sg_error_clear(&err);
	rc = sg_store_run(st, 0, run_op, &op, &err);
	if (rc != SG_STORE_OK && rc != op.result)
		op.result = 100 + rc;
	if (out != NULL) {
		sg_buf_reset(out);
		sg_buf_add(out, op.out.data != NULL ? op.out.data : "", op.out.len);
	}
	sg_buf_free(&op.out);
	return op.result;
}

static int
count_files(const char *dir, const char *prefix)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static void
test_keys(void)
{
	char big[SG_KEY_MAX + 8];
	struct sg_key k;

	tap_is_int(sg_key_make(&k, "db", "alice", (char *)NULL), 0, "key of two parts");
	tap_is_int((long long)k.len, 9, "each part keeps its NUL");
	tap_ok(memcmp(k.data, "db\0alice\0", 9) == 0, "parts in order");
	tap_is_int(sg_key_make(&k, (char *)NULL), 0, "key of no parts");
	tap_is_int((long long)k.len, 0, "is empty");

	memset(big, 'x', sizeof(big));
	big[SG_KEY_MAX - 1] = '\0';
	tap_is_int(sg_key_make(&k, big, (char *)NULL), 0, "part filling the key exactly");
	tap_is_int((long long)k.len, SG_KEY_MAX, "key at its maximum");
	tap_is_int(sg_key_make(&k, "a", big, (char *)NULL), -1, "one byte over refused");
	tap_is_int((long long)k.len, 0, "refused key left empty");
	memset(big, 'x', sizeof(big));
	big[SG_KEY_MAX + 7] = '\0';
	tap_is_int(sg_key_make(&k, big, (char *)NULL), -1, "long part refused");
}

static void
test_records(struct sg_store *st)
{
	struct sg_buf v;

	sg_buf_init(&v, SG_STORE_VALUE_MAX);
	tap_is_int(do_op(st, OP_PUT, SG_TABLE_USERS, "db", "alice", "{\"name\":\"alice\"}", NULL),
		SG_STORE_OK, "put");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "alice", NULL, &v), SG_STORE_OK, "get");
	tap_is_str(sg_buf_str(&v), "{\"name\":\"alice\"}", "get returns the value");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_ROLES, "db", "alice", NULL, &v), SG_STORE_NOTFOUND,
		"tables are separate");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db2", "alice", NULL, &v), SG_STORE_NOTFOUND,
		"databases are separate");
	tap_is_int(do_op(st, OP_PUT, SG_TABLE_USERS, "db", "alice", "v2", NULL), SG_STORE_OK,
		"put replaces");
	do_op(st, OP_GET, SG_TABLE_USERS, "db", "alice", NULL, &v);
	tap_is_str(sg_buf_str(&v), "v2", "replaced value read back");
	tap_is_int(do_op(st, OP_GET_FOR_UPDATE, SG_TABLE_USERS, "db", "alice", NULL, &v),
		SG_STORE_OK, "get for update");
	tap_is_str(sg_buf_str(&v), "v2", "get for update reads the value");
	tap_is_int(do_op(st, OP_PUT, SG_TABLE_USERS, "db", "empty", "", NULL), SG_STORE_OK,
		"empty value stored");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "empty", NULL, &v), SG_STORE_OK,
		"empty value found");
	tap_is_int((long long)v.len, 0, "empty value is empty");
	tap_is_int(do_op(st, OP_DEL, SG_TABLE_USERS, "db", "empty", NULL, NULL), SG_STORE_OK,
		"del");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "empty", NULL, &v), SG_STORE_NOTFOUND,
		"deleted key not found");
	tap_is_int(do_op(st, OP_DEL, SG_TABLE_USERS, "db", "empty", NULL, NULL), SG_STORE_NOTFOUND,
		"del of a missing key");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_SESSIONS, "db", "nobody", NULL, &v),
		SG_STORE_NOTFOUND, "get of a missing key");
	sg_buf_free(&v);
}

/* Read-modify-write of a decimal counter. */
static int
increment(struct sg_txn *txn, void *arg)
{
	struct sg_buf v;
	struct sg_key k;
	char num[32];
	long n = 0;
	int rc;

	(void)arg;
	sg_key_make(&k, "db", "counter", (char *)NULL);
	sg_buf_init(&v, 64);
	rc = sg_store_get(txn, SG_TABLE_STATES, &k, SG_GET_FOR_UPDATE, &v);
	if (rc == SG_STORE_OK)
		n = strtol(sg_buf_str(&v), NULL, 10);
	else if (rc != SG_STORE_NOTFOUND)
		goto out;
	snprintf(num, sizeof(num), "%ld", n + 1);
	rc = sg_store_put(txn, SG_TABLE_STATES, &k, num, strlen(num));
out:
	sg_buf_free(&v);
	return rc;
}

static void
test_update(struct sg_store *st)
{
	struct sg_error err;
	struct sg_buf v;
	int i, ok = 0;

	sg_buf_init(&v, 64);
	for (i = 0; i < 25; i++)
		if (sg_store_run(st, i % 5 == 0 ? SG_TXN_DURABLE : 0, increment, NULL, &err) ==
			SG_STORE_OK)
			ok++;
	tap_is_int(ok, 25, "25 read-modify-write transactions commit");
	do_op(st, OP_GET, SG_TABLE_STATES, "db", "counter", NULL, &v);
	tap_is_str(sg_buf_str(&v), "25", "counter counted every one");
	sg_buf_free(&v);
}

struct scan_seen {
	struct sg_buf keys; /* "part/part|value;" for each record */
	int calls;
	int stop_after;     /* stop (1) after this many calls; 0: never */
	int fail_with;      /* return this negative value at the first call */
	int bad_terminator; /* a key or value was not NUL-terminated */
};

static int
on_record(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct scan_seen *s = arg;
	size_t i;

	s->calls++;
	if (s->fail_with < 0)
		return s->fail_with;
	if (key[klen] != '\0' || val[vlen] != '\0')
		s->bad_terminator = 1;
	for (i = 0; i < klen; i++)
		sg_buf_add(&s->keys, key[i] == '\0' ? "/" : &key[i], 1);
	sg_buf_addf(&s->keys, "|%s;", val);
	if (s->stop_after > 0 && s->calls >= s->stop_after)
		return 1;
	return 0;
}

struct scan_job {
	enum sg_table table;
	struct sg_key prefix;
	struct scan_seen seen;
	int result;
};

static int
run_scan(struct sg_txn *txn, void *arg)
{
	struct scan_job *job = arg;

	job->result = sg_store_scan(txn, job->table, &job->prefix, on_record, &job->seen);
	return job->result == SG_STORE_RETRY ? SG_STORE_RETRY : SG_STORE_OK;
}

static int
scan(struct sg_store *st, struct scan_job *job)
{
	struct sg_error err;

	sg_buf_reset(&job->seen.keys);
	job->seen.calls = 0;
	job->seen.bad_terminator = 0;
	if (sg_store_run(st, 0, run_scan, job, &err) != SG_STORE_OK)
		return -100;
	return job->result;
}

struct put_keys {
	enum sg_table table;
	const char *const *parts; /* triples, NULL-padded, ended by a NULL triple */
};

static int
put_many(struct sg_txn *txn, void *arg)
{
	struct put_keys *pk = arg;
	const char *const *p;
	struct sg_key k;
	int rc;

	for (p = pk->parts; p[0] != NULL; p += 3) {
		sg_key_make(&k, p[0], p[1], p[2], (char *)NULL);
		if ((rc = sg_store_put(txn, pk->table, &k, p[1], strlen(p[1]))) != 0)
			return rc;
	}
	return SG_STORE_OK;
}

static void
test_scan(struct sg_store *st)
{
	static const char *const users[] = {
		"db",
		"carol",
		NULL,
		"db",
		"alice",
		NULL,
		"db2",
		"alice",
		NULL,
		"dbx",
		"zed",
		NULL,
		"d",
		"b",
		NULL,
		"db",
		"bob",
		NULL,
		NULL,
		NULL,
		NULL,
	};
	static const char *const sessions[] = {
		"db",
		"alice",
		"s2",
		"db",
		"alice",
		"s1",
		"db",
		"alicex",
		"s3",
		"db",
		"bob",
		"s4",
		"db2",
		"alice",
		"s5",
		NULL,
		NULL,
		NULL,
	};
	struct put_keys pk;
	struct scan_job job;
	struct sg_error err;

	pk.table = SG_TABLE_ROLES;
	pk.parts = users;
	tap_is_int(sg_store_run(st, 0, put_many, &pk, &err), SG_STORE_OK, "scan fixture: roles");
	pk.table = SG_TABLE_USER_SESSIONS;
	pk.parts = sessions;
	tap_is_int(sg_store_run(st, 0, put_many, &pk, &err), SG_STORE_OK,
		"scan fixture: user sessions");

	memset(&job, 0, sizeof(job));
	sg_buf_init(&job.seen.keys, 4096);
	job.table = SG_TABLE_ROLES;
	sg_key_make(&job.prefix, "db", (char *)NULL);
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan of a database");
	tap_is_str(sg_buf_str(&job.seen.keys), "db/alice/|alice;db/bob/|bob;db/carol/|carol;",
		"only that database, in key order (not db2, dbx or d)");
	tap_ok(!job.seen.bad_terminator, "scan keys and values are NUL-terminated");

	job.table = SG_TABLE_USER_SESSIONS;
	sg_key_make(&job.prefix, "db", "alice", (char *)NULL);
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan of a user's sessions");
	tap_is_str(sg_buf_str(&job.seen.keys), "db/alice/s1/|alice;db/alice/s2/|alice;",
		"two-part prefix selects that user only (not alicex)");

	sg_key_make(&job.prefix, "db", "nobody", (char *)NULL);
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan with no match");
	tap_is_int(job.seen.calls, 0, "calls nothing");

	sg_key_make(&job.prefix, "zzz", (char *)NULL);
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan past the last key");
	tap_is_int(job.seen.calls, 0, "calls nothing either");

	sg_key_make(&job.prefix, (char *)NULL);
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan with an empty prefix");
	tap_is_int(job.seen.calls, 5, "visits the whole table");

	sg_key_make(&job.prefix, "db", (char *)NULL);
	job.seen.stop_after = 2;
	tap_is_int(scan(st, &job), SG_STORE_OK, "scan stopped early");
	tap_is_int(job.seen.calls, 2, "stops when fn returns 1");
	tap_is_str(sg_buf_str(&job.seen.keys), "db/alice/s1/|alice;db/alice/s2/|alice;",
		"after the first two records");
	job.seen.stop_after = 0;
	job.seen.fail_with = -7;
	tap_is_int(scan(st, &job), -7, "fn's negative result is passed on");
	tap_is_int(job.seen.calls, 1, "after one call");
	sg_buf_free(&job.seen.keys);
}

/* Writes a key and then asks for an abort with the value in arg. */
static int
put_then_abort(struct sg_txn *txn, void *arg)
{
	struct sg_key k;
	int rc;

	sg_key_make(&k, "db", "aborted", (char *)NULL);
	if ((rc = sg_store_put(txn, SG_TABLE_USERS, &k, "x", 1)) != SG_STORE_OK)
		return rc;
	return *(int *)arg;
}

static void
test_abort(struct sg_store *st)
{
	struct sg_error err;
	int why;

	why = 42;
	sg_error_clear(&err);
	tap_is_int(sg_store_run(st, 0, put_then_abort, &why, &err), 42,
		"fn's own result is returned");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "aborted", NULL, NULL),
		SG_STORE_NOTFOUND, "and nothing was written");
	why = SG_STORE_NOTFOUND;
	tap_is_int(sg_store_run(st, 0, put_then_abort, &why, &err), SG_STORE_NOTFOUND,
		"abort with NOTFOUND");
	why = SG_STORE_FAIL;
	err.status = 418;
	tap_is_int(sg_store_run(st, 0, put_then_abort, &why, &err), SG_STORE_FAIL,
		"abort with FAIL");
	tap_is_int(err.status, 418, "fn's own failure leaves err to the caller");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "aborted", NULL, NULL),
		SG_STORE_NOTFOUND, "still nothing written");
}

struct big_put {
	size_t n;
	char *val;
	int put_result;
};

static int
put_big(struct sg_txn *txn, void *arg)
{
	struct big_put *bp = arg;
	struct sg_key k;

	sg_key_make(&k, "db", "big", (char *)NULL);
	bp->put_result = sg_store_put(txn, SG_TABLE_PROVIDERS, &k, bp->val, bp->n);
	return bp->put_result;
}

static int
bad_args(struct sg_txn *txn, void *arg)
{
	int *results = arg;
	struct sg_key k;
	struct sg_buf v;

	sg_buf_init(&v, 16);
	sg_key_make(&k, (char *)NULL);
	results[0] = sg_store_put(txn, SG_TABLE_USERS, &k, "x", 1);
	results[1] = sg_store_get(txn, SG_TABLE_USERS, &k, 0, &v);
	sg_key_make(&k, "db", "alice", (char *)NULL);
	results[2] = sg_store_get(txn, SG_TABLE_COUNT, &k, 0, &v);
	results[3] = sg_store_get(txn, SG_TABLE_USERS, &k, 0, &v);
	sg_buf_free(&v);
	return SG_STORE_OK;
}

static void
test_limits(struct sg_store *st)
{
	struct big_put bp;
	struct sg_error err;
	struct sg_buf v;
	int results[4];

	bp.val = malloc(SG_STORE_VALUE_MAX + 1);
	memset(bp.val, 'v', SG_STORE_VALUE_MAX + 1);
	bp.n = SG_STORE_VALUE_MAX + 1;
	sg_error_clear(&err);
	tap_is_int(sg_store_run(st, 0, put_big, &bp, &err), SG_STORE_FAIL,
		"value over the cap fails the transaction");
	tap_is_int(bp.put_result, SG_STORE_FAIL, "put refuses it");
	tap_is_int(err.status, 500, "with status 500");
	tap_ok(strstr(err.reason, storedir) != NULL, "reason names the store");
	bp.n = SG_STORE_VALUE_MAX;
	tap_is_int(sg_store_run(st, 0, put_big, &bp, &err), SG_STORE_OK,
		"value at the cap is stored");
	sg_buf_init(&v, SG_STORE_VALUE_MAX);
	tap_is_int(do_op(st, OP_GET, SG_TABLE_PROVIDERS, "db", "big", NULL, &v), SG_STORE_OK,
		"and read back");
	tap_is_int((long long)v.len, SG_STORE_VALUE_MAX, "whole");
	tap_ok(v.len > 0 && v.data[0] == 'v' && v.data[v.len - 1] == 'v', "intact");
	sg_buf_free(&v);
	free(bp.val);

	{
		struct op op;

		op_init(&op, OP_GET, SG_TABLE_PROVIDERS, "db", "big");
		sg_buf_free(&op.out);
		sg_buf_init(&op.out, 8);
		tap_is_int(sg_store_run(st, 0, run_op, &op, &err), SG_STORE_FAIL,
			"value larger than the caller's buffer fails");
		tap_is_int(op.result, SG_STORE_FAIL, "get refuses it");
		tap_is_int((long long)op.out.len, 0, "buffer left empty");
		sg_buf_free(&op.out);
	}

	tap_is_int(sg_store_run(st, 0, bad_args, results, &err), SG_STORE_OK,
		"bad arguments do not break the transaction");
	tap_is_int(results[0], SG_STORE_FAIL, "empty key refused by put");
	tap_is_int(results[1], SG_STORE_FAIL, "empty key refused by get");
	tap_is_int(results[2], SG_STORE_FAIL, "unknown table refused");
	tap_is_int(results[3], SG_STORE_OK, "the transaction goes on after them");
}

/* Writes n records of size bytes each under "fill". */
struct fill {
	int first, n;
	size_t size;
};

static int
fill_fn(struct sg_txn *txn, void *arg)
{
	struct fill *f = arg;
	struct sg_key k;
	char name[32], *val;
	int i, rc = SG_STORE_OK;

	if ((val = malloc(f->size)) == NULL)
		return SG_STORE_FAIL;
	for (i = f->first; i < f->first + f->n && rc == SG_STORE_OK; i++) {
		snprintf(name, sizeof(name), "fill%06d", i);
		memset(val, 'a' + i % 26, f->size);
		sg_key_make(&k, "db", name, (char *)NULL);
		rc = sg_store_put(txn, SG_TABLE_SESSIONS, &k, val, f->size);
	}
	free(val);
	return rc;
}

static void
test_checkpoint(struct sg_store *st)
{
	struct sg_error err;
	struct fill f;
	int i, ok = 1, before, after;

	/* About 12 MiB of log: several log files. */
	for (i = 0; i < 24; i++) {
		f.first = i * 4;
		f.n = 4;
		f.size = 128 * 1024;
		if (sg_store_run(st, 0, fill_fn, &f, &err) != SG_STORE_OK)
			ok = 0;
	}
	tap_ok(ok, "12 MiB written");
	before = count_files(storedir, "log.");
	tap_ok(before >= 3, "several log files before the checkpoint");
	sg_error_clear(&err);
	tap_is_int(sg_store_checkpoint(st, &err), 0, "checkpoint");
	after = count_files(storedir, "log.");
	tap_ok(after >= 1 && after < before, "log files no longer needed are removed");
	if (after >= before)
		printf("#   %d log files before, %d after\n", before, after);
	tap_is_int(sg_store_checkpoint(st, &err), 0, "second checkpoint");
}

static void
test_reopen(struct sg_store **stp)
{
	struct sg_error err;
	struct sg_buf v;

	sg_store_close(*stp);
	*stp = NULL;
	sg_buf_init(&v, 1024);
	tap_is_int(sg_store_open(storedir, stp, &err), 0, "reopen");
	do_op(*stp, OP_GET, SG_TABLE_USERS, "db", "alice", NULL, &v);
	tap_is_str(sg_buf_str(&v), "v2", "record persists across close");
	do_op(*stp, OP_GET, SG_TABLE_STATES, "db", "counter", NULL, &v);
	tap_is_str(sg_buf_str(&v), "25", "counter persists across close");
	sg_buf_free(&v);
}

/* Runs a child that opens the store and then dies (kill) or closes it. */
static int
child_open(int die)
{
	struct sg_store *st;
	struct sg_error err;
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		if (sg_store_open(storedir, &st, &err) != 0)
			_exit(1);
		if (die)
			kill(getpid(), SIGKILL);
		sg_store_close(st);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return WTERMSIG(status) == SIGKILL ? 9 : -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static ino_t
region_inode(void)
{
	char path[4400];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/__db.001", storedir);
	return stat(path, &sb) == 0 ? sb.st_ino : 0;
}

/*
 * Another process dies with the store open; the next opener recovers it,
 * which panics this process's environment: the next transaction here
 * reopens it without the caller noticing.
 */
static void
test_recovered_elsewhere(struct sg_store *st)
{
	struct sg_buf v;
	ino_t before;

	sg_buf_init(&v, 1024);
	before = region_inode();
	tap_is_int(child_open(1), 9, "a process dies with the store open");
	tap_is_int(child_open(0), 0, "the next opener works");
	tap_ok(region_inode() != before, "and recovered the environment");
	tap_is_int(do_op(st, OP_GET, SG_TABLE_USERS, "db", "alice", NULL, &v), SG_STORE_OK,
		"this handle reads after the recovery");
	tap_is_str(sg_buf_str(&v), "v2", "the committed record");
	tap_is_int(do_op(st, OP_PUT, SG_TABLE_USERS, "db", "after", "1", NULL), SG_STORE_OK,
		"and writes");
	sg_buf_free(&v);
}

/* Runs sg_store_verify(path) in a child; returns its err.status, or 0 on success. */
static int
verify_in_child(const char *path)
{
	struct sg_error err;
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		sg_error_clear(&err);
		if (sg_store_verify(path, &err) == 0)
			_exit(0);
		_exit(err.status == 409 ? 9 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void
test_backup(struct sg_store *st)
{
	char backup[4300], full[4400];
	struct sg_store *bst;
	struct sg_error err;
	struct sg_buf v;
	int fd;

	snprintf(backup, sizeof(backup), "%s/backup", tmpdir);
	sg_error_clear(&err);
	tap_is_int(sg_store_backup(st, backup, &err), 0, "hot backup");
	if (err.status != 0)
		printf("#   %s\n", err.reason);
	tap_is_int(count_files(backup, "users.db"), 1, "backup holds the tables");
	tap_ok(count_files(backup, "log.") >= 1, "and the log");
	tap_is_int(count_files(backup, "__db.register"), 0, "but no registry");
	tap_is_int(sg_store_backup(st, backup, &err), -1,
		"backup into a non-empty directory refused");
	tap_is_int(verify_in_child(storedir), 9, "verify refuses a store another process uses");
	sg_error_clear(&err);
	tap_is_int(sg_store_verify(storedir, &err), -1, "and one this process has open");
	tap_is_int(err.status, 409, "as in use");

	sg_error_clear(&err);
	tap_is_int(sg_store_verify(backup, &err), 0, "backup verifies");
	if (err.status != 0)
		printf("#   %s\n", err.reason);
	bst = NULL;
	tap_is_int(sg_store_open(backup, &bst, &err), 0, "backup opens as a store");
	sg_buf_init(&v, SG_STORE_VALUE_MAX);
	if (bst != NULL) {
		do_op(bst, OP_GET, SG_TABLE_USERS, "db", "alice", NULL, &v);
		tap_is_str(sg_buf_str(&v), "v2", "backup holds the records");
		do_op(bst, OP_GET, SG_TABLE_STATES, "db", "counter", NULL, &v);
		tap_is_str(sg_buf_str(&v), "25", "backup holds the counter");
		tap_is_int(do_op(bst, OP_GET, SG_TABLE_SESSIONS, "db", "fill000095", NULL, &v),
			SG_STORE_OK, "backup holds the last large record");
		tap_is_int((long long)v.len, 128 * 1024, "whole");
		tap_is_int(do_op(bst, OP_PUT, SG_TABLE_USERS, "db", "new", "n", NULL), SG_STORE_OK,
			"backup is writable");
	}
	sg_store_close(bst);
	tap_is_int(verify_in_child(backup), 0, "backup verifies after use");

	/* Damage a table file of the closed backup: verify must see it. */
	snprintf(full, sizeof(full), "%s/users.db", backup);
	fd = open(full, O_WRONLY);
	if (fd >= 0) {
		char junk[512];

		memset(junk, 0x5a, sizeof(junk));
		if (pwrite(fd, junk, sizeof(junk), 4096 + 16) != (ssize_t)sizeof(junk))
			printf("# short write\n");
		close(fd);
	}
	tap_is_int(verify_in_child(backup), 1, "damaged table fails verification");
	sg_buf_free(&v);
}

int
main(void)
{
	struct sg_store *st;
	struct sg_error err;
	const char *base;

	sg_log_open("test_store", 0, SG_LOG_ERR);
	base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/sgstore.XXXXXX",
		base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);

	test_keys();
	st = NULL;
	sg_error_clear(&err);
	tap_is_int(sg_store_open(storedir, &st, &err), 0, "open a new store");
	if (st == NULL) {
		printf("# %s\n", err.reason);
		test_remove_tree(tmpdir);
		return tap_done();
	}
	tap_is_int(count_files(storedir, "sessions.db"), 1, "table files created");
	test_records(st);
	test_update(st);
	test_scan(st);
	test_abort(st);
	test_limits(st);
	test_reopen(&st);
	test_recovered_elsewhere(st);
	test_checkpoint(st);
	test_backup(st);
	sg_store_close(st);
	tap_is_int(verify_in_child(storedir), 0, "closed store verifies");
	test_remove_tree(tmpdir);
	return tap_done();
}
