/*
 * store.c: keys, transactions and their retries, and upkeep, whatever the
 * engine.
 *
 * sg_store_run is the one place that decides what happens when a
 * transaction cannot go through.  A lock conflict (the engine never waits
 * for a lock) or a deadlock aborts it and runs it again after a short
 * random pause that grows with each try; a conflict that lasts
 * FAILCHK_AFTER_MS also runs the engine's failure check, since the lock
 * may belong to a dead process.  An environment that another process
 * recovered is closed and reopened, and the transaction runs again in
 * it.  Retries stop at RUN_BUDGET_MS or RUN_TRIES, which eight processes
 * writing the same keys never come near; the caller then gets 503.
 *
 * Upkeep (the failure check and a checkpoint when enough log has been
 * written) rides on commits: every UPKEEP_COMMITS commits that wrote, or
 * UPKEEP_SECONDS, of a process, whichever comes first.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "store_impl.h"

/* The engines; the first is the one used. */
static const struct sg_store_ops *const engines[] = {
	&sg_store_bdb_ops,
};

/* Retry budget of one sg_store_run call. */
#define RUN_BUDGET_MS 10000
#define RUN_TRIES 1000
/* Environment reopens within one call (each follows a recovery). */
#define RUN_REOPENS 3
/*
 * Retrying for this long runs a failure check: the conflict may be a
 * lock of a dead process, which nothing else would release.
 */
#define FAILCHK_AFTER_MS 200
/* Opening tries while other processes recover or create the tables. */
#define OPEN_TRIES 5
/* Pause before retry n: random, below 1 ms << min(n - 1, BACKOFF_SHIFT). */
#define BACKOFF_SHIFT 6
/*
 * Upkeep schedule of a process.  Not much more often: every checkpoint
 * attempt holds the engine's backup lock shared for a moment, and many
 * processes attempting all the time would keep a hot backup from ever
 * taking it.
 */
#define UPKEEP_COMMITS 1000
#define UPKEEP_SECONDS 10

struct sg_store {
	const struct sg_store_ops *ops;
	struct sg_store_env *env; /* NULL after a failed reopen */
	char *path;
	unsigned commits;  /* since the last upkeep */
	int64_t upkeep_at; /* monotonic ms of the last upkeep */
	uint64_t rnd;      /* backoff jitter */
};

/* Why a transaction cannot commit any more. */
enum doom {
	DOOM_NONE,
	DOOM_RETRY,  /* lock conflict or deadlock: run again */
	DOOM_REOPEN, /* environment recovered: reopen, run again */
	DOOM_UNKNOWN /* recovered during the commit: give up */
};

struct sg_txn {
	struct sg_store *st;
	struct sg_store_etxn *etxn;
	enum doom doom;
	int wrote;           /* a put or del went through */
	struct sg_error err; /* the first store failure inside fn */
};

int
sg_key_make(struct sg_key *k, ...)
{
	const char *part;
	va_list ap;
	size_t n;
	int rc = 0;

	k->len = 0;
	va_start(ap, k);
	while ((part = va_arg(ap, const char *)) != NULL) {
		n = strlen(part) + 1;
		if (n > SG_KEY_MAX - k->len) {
			/* An empty key is refused by every store function. */
			k->len = 0;
			rc = -1;
			break;
		}
		memcpy(k->data + k->len, part, n);
		k->len += n;
	}
	va_end(ap);
	return rc;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: jitter only, nothing secret depends on it. */
static uint64_t
jitter(struct sg_store *st)
{
	st->rnd ^= st->rnd >> 12;
	st->rnd ^= st->rnd << 25;
	st->rnd ^= st->rnd >> 27;
	return st->rnd * 2685821657736338717ULL;
}

static void
backoff(struct sg_store *st, unsigned attempt)
{
	struct timespec ts;
	unsigned shift;
	uint64_t us;

	shift = attempt - 1 < BACKOFF_SHIFT ? attempt - 1 : BACKOFF_SHIFT;
	us = 50 + jitter(st) % (1000ULL << shift);
	ts.tv_sec = (time_t)(us / 1000000);
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

static int
env_open(struct sg_store *st, struct sg_error *err)
{
	unsigned tries;
	int rc;

	for (tries = 1;; tries++) {
		rc = st->ops->open(st->path, &st->env, err);
		if (rc == SG_STORE_OK)
			return 0;
		if (rc == SG_STORE_FAIL)
			return -1;
		if (tries == OPEN_TRIES)
			break;
		backoff(st, tries + BACKOFF_SHIFT);
	}
	if (rc == SG_STORE_RETRY) {
		sg_log(SG_LOG_WARN, "store %s: cannot open: busy", st->path);
		return sg_error_set(err, 503, "store busy");
	}
	/* Panicked, and no dead process in the registry for an opener to recover. */
	sg_log(SG_LOG_ERR, "store %s: cannot open: environment needs recovery", st->path);
	return sg_error_set(err, 500,
		"store %s: environment needs recovery (stop every program using it, then run "
		"db_recover)",
		st->path);
}

/* Drops the handle of an environment that was recovered, and opens it again. */
static int
env_reopen(struct sg_store *st, struct sg_error *err)
{
	sg_log(SG_LOG_WARN, "store %s: environment was recovered, reopening", st->path);
	st->ops->close(st->env);
	st->env = NULL;
	return env_open(st, err);
}

int
sg_store_open(const char *path, struct sg_store **out, struct sg_error *err)
{
	struct sg_store *st;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->path = strdup(path)) == NULL) {
		free(st);
		sg_log(SG_LOG_ERR, "store %s: out of memory", path);
		return sg_error_set(err, 500, "store %s: out of memory", path);
	}
	st->ops = engines[0];
	st->rnd = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)st;
	if (st->rnd == 0)
		st->rnd = 1;
	st->upkeep_at = now_ms();
	if (env_open(st, err) != 0) {
		sg_store_close(st);
		return -1;
	}
	*out = st;
	return 0;
}

void
sg_store_close(struct sg_store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st->env);
	free(st->path);
	free(st);
}

/* Failure check and an opportunistic checkpoint; problems are only logged. */
static void
upkeep(struct sg_store *st)
{
	struct sg_error err;
	int rc;

	st->commits = 0;
	st->upkeep_at = now_ms();
	sg_error_clear(&err);
	rc = st->ops->failchk(st->env, &err);
	if (rc == SG_STORE_OK)
		rc = st->ops->checkpoint(st->env, 0, &err);
	if (rc == SG_STORE_REOPEN)
		env_reopen(st, &err);
}

/*
 * Counts a commit and does the upkeep when it is due.  Only commits that
 * wrote count: the session check reads on every request, and the failure
 * check costs more the more processes there are.
 */
static void
committed(struct sg_store *st, unsigned tries, int wrote)
{
	if (tries > 1)
		sg_log(SG_LOG_DEBUG, "store %s: committed after %u tries", st->path, tries);
	if (wrote)
		st->commits++;
	if (st->commits >= UPKEEP_COMMITS || now_ms() - st->upkeep_at >= UPKEEP_SECONDS * 1000)
		upkeep(st);
}

/* Records what a store result means for the transaction; returns it for fn. */
static int
txn_note(struct sg_txn *txn, int rc)
{
	switch (rc) {
	case SG_STORE_RETRY:
		txn->doom = DOOM_RETRY;
		return SG_STORE_RETRY;
	case SG_STORE_REOPEN:
		txn->doom = DOOM_REOPEN;
		return SG_STORE_RETRY;
	}
	return rc;
}

/*
 * One attempt: begin, fn, commit.  Returns SG_STORE_OK once committed,
 * else fn's or the store's result; txn->doom says whether to run again.
 */
static int
attempt(struct sg_store *st, unsigned flags, sg_txn_fn fn, void *arg, struct sg_txn *txn)
{
	int rc;

	txn->st = st;
	txn->etxn = NULL;
	txn->doom = DOOM_NONE;
	txn->wrote = 0;
	sg_error_clear(&txn->err);
	rc = txn_note(txn, st->ops->begin(st->env, &txn->etxn, &txn->err));
	if (rc != SG_STORE_OK)
		return rc;
	rc = fn(txn, arg);
	if (rc != SG_STORE_OK || txn->doom != DOOM_NONE) {
		st->ops->abort(st->env, txn->etxn);
		if (rc == SG_STORE_RETRY && txn->doom == DOOM_NONE)
			txn->doom = DOOM_RETRY;
		return rc;
	}
	rc = st->ops->commit(st->env, txn->etxn, flags, &txn->err);
	if (rc == SG_STORE_REOPEN) {
		/*
		 * Recovery may or may not have found this commit in the log:
		 * running fn again could apply it twice.
		 */
		txn->doom = DOOM_UNKNOWN;
		return SG_STORE_FAIL;
	}
	return txn_note(txn, rc);
}

int
sg_store_run(struct sg_store *st, unsigned flags, sg_txn_fn fn, void *arg, struct sg_error *err)
{
	struct sg_txn txn;
	unsigned tries, reopens;
	int64_t start, checked;
	int rc;

	start = checked = now_ms();
	reopens = 0;
	for (tries = 1;; tries++) {
		if (st->env == NULL && env_open(st, err) != 0)
			return SG_STORE_FAIL;
		rc = attempt(st, flags, fn, arg, &txn);
		switch (txn.doom) {
		case DOOM_NONE:
			if (rc == SG_STORE_OK) {
				committed(st, tries, txn.wrote);
				return SG_STORE_OK;
			}
			/* fn's own decision, or a store failure it passed on. */
			if (rc == SG_STORE_FAIL && txn.err.status != 0)
				*err = txn.err;
			return rc;
		case DOOM_UNKNOWN:
			sg_log(SG_LOG_ERR, "store %s: recovered during a commit", st->path);
			env_reopen(st, err);
			return sg_error_set(err, 500,
				"store %s: recovered during a commit; its outcome is unknown",
				st->path);
		case DOOM_REOPEN:
			if (++reopens > RUN_REOPENS) {
				sg_log(SG_LOG_ERR,
					"store %s: recovered %u times in one transaction", st->path,
					RUN_REOPENS);
				return sg_error_set(err, 500, "store %s: keeps being recovered",
					st->path);
			}
			if (env_reopen(st, err) != 0)
				return SG_STORE_FAIL;
			break;
		case DOOM_RETRY:
			if (tries >= RUN_TRIES || now_ms() - start >= RUN_BUDGET_MS) {
				sg_log(SG_LOG_WARN, "store %s: busy after %u tries", st->path,
					tries);
				return sg_error_set(err, 503, "store busy");
			}
			/* A conflict that lasts may be a lock of a dead process. */
			if (now_ms() - checked >= FAILCHK_AFTER_MS) {
				checked = now_ms();
				rc = st->ops->failchk(st->env, err);
				if (rc == SG_STORE_FAIL)
					return SG_STORE_FAIL;
				if (rc == SG_STORE_REOPEN) {
					reopens++;
					if (env_reopen(st, err) != 0)
						return SG_STORE_FAIL;
				}
			}
			backoff(st, tries);
			break;
		}
	}
}

/*
 * Checks what every record operation needs.  Returns SG_STORE_OK, or the
 * result to hand to fn: SG_STORE_RETRY once the transaction is doomed
 * (nothing more can succeed in it), SG_STORE_FAIL for a bad argument.
 */
static int
txn_check(struct sg_txn *txn, enum sg_table t, const struct sg_key *k, int allow_empty)
{
	if (txn->doom != DOOM_NONE)
		return SG_STORE_RETRY;
	if ((unsigned)t >= SG_TABLE_COUNT) {
		sg_log(SG_LOG_ERR, "store %s: no table %d", txn->st->path, (int)t);
		return sg_error_set(&txn->err, 500, "store %s: no table %d", txn->st->path, (int)t);
	}
	if (k->len > SG_KEY_MAX || (k->len == 0 && !allow_empty)) {
		sg_log(SG_LOG_ERR, "store %s: key of %zu bytes refused", txn->st->path, k->len);
		return sg_error_set(&txn->err, 500, "store %s: key of %zu bytes refused",
			txn->st->path, k->len);
	}
	return SG_STORE_OK;
}

int
sg_store_get(struct sg_txn *txn, enum sg_table t, const struct sg_key *k, unsigned flags,
	struct sg_buf *val)
{
	int rc;

	sg_buf_reset(val);
	if ((rc = txn_check(txn, t, k, 0)) != SG_STORE_OK)
		return rc;
	rc = txn->st->ops->get(txn->st->env, txn->etxn, t, k, flags, val, &txn->err);
	return txn_note(txn, rc);
}

int
sg_store_put(struct sg_txn *txn, enum sg_table t, const struct sg_key *k, const void *val, size_t n)
{
	int rc;

	if ((rc = txn_check(txn, t, k, 0)) != SG_STORE_OK)
		return rc;
	if (n > SG_STORE_VALUE_MAX) {
		sg_log(SG_LOG_ERR, "store %s: value of %zu bytes refused", txn->st->path, n);
		return sg_error_set(&txn->err, 500, "store %s: value larger than %d bytes",
			txn->st->path, SG_STORE_VALUE_MAX);
	}
	rc = txn->st->ops->put(txn->st->env, txn->etxn, t, k, val, n, &txn->err);
	if (rc == SG_STORE_OK)
		txn->wrote = 1;
	return txn_note(txn, rc);
}

int
sg_store_del(struct sg_txn *txn, enum sg_table t, const struct sg_key *k)
{
	int rc;

	if ((rc = txn_check(txn, t, k, 0)) != SG_STORE_OK)
		return rc;
	rc = txn->st->ops->del(txn->st->env, txn->etxn, t, k, &txn->err);
	if (rc == SG_STORE_OK)
		txn->wrote = 1;
	return txn_note(txn, rc);
}

int
sg_store_scan(struct sg_txn *txn, enum sg_table t, const struct sg_key *prefix, sg_scan_fn fn,
	void *arg)
{
	int rc, stop;

	if ((rc = txn_check(txn, t, prefix, 1)) != SG_STORE_OK)
		return rc;
	rc = txn->st->ops->scan(txn->st->env, txn->etxn, t, prefix, fn, arg, &stop, &txn->err);
	rc = txn_note(txn, rc);
	return rc == SG_STORE_OK && stop < 0 ? stop : rc;
}

int
sg_store_checkpoint(struct sg_store *st, struct sg_error *err)
{
	int rc;

	if (st->env == NULL && env_open(st, err) != 0)
		return -1;
	rc = st->ops->failchk(st->env, err);
	if (rc == SG_STORE_OK)
		rc = st->ops->checkpoint(st->env, 1, err);
	if (rc == SG_STORE_REOPEN) {
		if (env_reopen(st, err) != 0)
			return -1;
		rc = st->ops->checkpoint(st->env, 1, err);
	}
	if (rc == SG_STORE_RETRY || rc == SG_STORE_REOPEN)
		return sg_error_set(err, 503, "store busy");
	return rc == SG_STORE_OK ? 0 : -1;
}

int
sg_store_backup(struct sg_store *st, const char *dir, struct sg_error *err)
{
	int rc;

	if (st->env == NULL && env_open(st, err) != 0)
		return -1;
	rc = st->ops->backup(st->env, dir, err);
	if (rc == SG_STORE_REOPEN) {
		if (env_reopen(st, err) != 0)
			return -1;
		rc = st->ops->backup(st->env, dir, err);
	}
	if (rc != SG_STORE_OK && err != NULL && err->status == 0)
		sg_error_set(err, 500, "store %s: backup failed", st->path);
	return rc == SG_STORE_OK ? 0 : -1;
}

int
sg_store_verify(const char *path, struct sg_error *err)
{
	int rc;

	rc = engines[0]->verify(path, err);
	if (rc != SG_STORE_OK && err != NULL && err->status == 0)
		sg_error_set(err, 500, "store %s: verification failed", path);
	return rc == SG_STORE_OK ? 0 : -1;
}

int
sg_store_restore(const char *backup, const char *path, struct sg_error *err)
{
	int rc;

	rc = engines[0]->restore(backup, path, err);
	if (rc != SG_STORE_OK && err != NULL && err->status == 0)
		sg_error_set(err, 500, "store %s: restore failed", path);
	return rc == SG_STORE_OK ? 0 : -1;
}
