/*
 * store_bdb.c: the Berkeley DB 5.3 engine of the store.
 *
 * One transactional environment per store directory, one B-tree file per
 * table, shared by every process of every program.
 *
 * Nobody waits for a lock.  Transactions run with DB_TXN_NOWAIT: a lock
 * conflict returns at once and store.c retries the whole transaction
 * after a short random pause.  In 5.3 a lock timeout is enforced only
 * when some process runs deadlock detection, so a process blocked on a
 * lock that a killed process held would wait forever; without waits that
 * cannot happen, and no wait can deadlock either.
 *
 * Processes that die.  Each process registers in the environment
 * (DB_REGISTER).  A process that opens it and finds the slot of a dead
 * process runs a failure check (DB_FAILCHK with an is_alive function),
 * which aborts the dead process's transaction and releases its locks
 * while the others keep working.  When the process died inside the
 * library (in the middle of a call, where shared structures may be half
 * changed) the check fails and the opener falls back to recovery
 * (DB_RECOVER): it marks the old environment as panicked, waits
 * REGISTER_WAIT_US for the processes in it to notice, and recovers; every
 * live process then gets DB_RUNRECOVERY, and store.c closes and reopens
 * its handle (SG_STORE_REOPEN) and runs the transaction again.  A live
 * process that keeps meeting a lock runs the same failure check itself
 * (bdb_failchk), so a dead holder's locks go away without waiting for a
 * new opener.  Commits reach the log with write(2) at least
 * (DB_TXN_WRITE_NOSYNC), so recovery in another process finds them.
 *
 * A limit of 5.3 that remains: Debian builds it with POSIX mutexes, and a
 * live process that blocks on a region mutex held by a process killed in
 * the middle of a call stays blocked until it is restarted (a panic does
 * not wake it).  Those mutexes are held for short in-memory steps.
 *
 * Logs.  DB_LOG_AUTO_REMOVE drops log files once a checkpoint no longer
 * needs them, so the directory holds the tables, the region files and a
 * few LOG_FILE_BYTES log files.  A hot backup copies the table files and
 * then the logs, and needs every log written since its own checkpoint:
 * while it runs it holds BACKUP_LOCK, and every checkpoint (the only
 * thing that moves the point before which logs are removed) takes it
 * shared or is skipped.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#include "buf.h"
#include "log.h"
#include "store_impl.h"

/*
 * Sizes.  The cache, log buffer and lock tables live in shared region
 * files mapped by every process; what a process touches counts in its
 * resident size, which must stay well under 10 MiB per FastCGI process.
 * Berkeley DB adds 25% to caches this small.
 */
#define CACHE_BYTES (2U * 1024 * 1024)
#define LOG_BUFFER_BYTES (256U * 1024)
#define LOG_FILE_BYTES (4U * 1024 * 1024)       /* at least 4 log buffers */
/* Processes (single-threaded) that may use the environment at once. */
#define THREAD_COUNT 256
#define MAX_TXNS THREAD_COUNT
#define MAX_LOCKERS 2000
#define MAX_LOCKS 20000
#define MAX_OBJECTS 20000
/* How long a recovering opener lets live processes notice the panic. */
#define REGISTER_WAIT_US (200U * 1000)
/* Automatic checkpoints: after this much log or this much time. */
#define CHECKPOINT_KBYTES 1024
#define CHECKPOINT_MINUTES 5
/* Concurrent creation of a table may deadlock; tries before giving up. */
#define TABLE_OPEN_TRIES 50

#define DIR_MODE 0750
#define FILE_MODE 0640
/*
 * Lock files (flock(2), so held per open file, released when a process
 * dies).  OPEN_LOCK: every handle holds it shared for its lifetime, and
 * verification exclusively.  RECOVER_LOCK: held exclusively around opening
 * the environment (which may run a failure check or recovery) and around
 * every failure check, because two failure checks at once could abort the
 * same dead transaction twice.  BACKUP_LOCK: a backup holds it exclusively,
 * checkpoints shared.
 */
#define OPEN_LOCK "open.lock"
#define RECOVER_LOCK "recover.lock"
#define BACKUP_LOCK "backup.lock"

#define ENV_FLAGS (DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | \
	DB_INIT_MPOOL | DB_REGISTER | DB_RECOVER | DB_FAILCHK)

static const char *const table_files[] = {
	[SG_TABLE_USERS] = "users.db",
	[SG_TABLE_ROLES] = "roles.db",
	[SG_TABLE_SESSIONS] = "sessions.db",
	[SG_TABLE_USER_SESSIONS] = "user_sessions.db",
	[SG_TABLE_STATES] = "states.db",
	[SG_TABLE_REFRESH] = "refresh.db",
	[SG_TABLE_PROVIDERS] = "providers.db",
	[SG_TABLE_EXPIRY] = "expiry.db",
};
_Static_assert(sizeof(table_files) / sizeof(table_files[0]) == SG_TABLE_COUNT,
    "every table needs a file");

struct sg_store_env {
	DB_ENV *env;
	DB *db[SG_TABLE_COUNT];
	char *path;
	int openfd;             /* OPEN_LOCK, held shared (or -1) */
	int recoverfd;          /* RECOVER_LOCK */
	int backupfd;           /* BACKUP_LOCK */
	DBT scratch;            /* get's DB_DBT_REALLOC buffer, kept between calls */
};

static DB_TXN *
txn_of(struct sg_store_etxn *t)
{
	return (DB_TXN *)(void *)t;
}

/*
 * Maps a Berkeley DB error to a store result; for real failures, logs and
 * fills err with the path and the library's message (never a key or a
 * value).
 */
static int
result(const char *path, int ret, const char *what, struct sg_error *err)
{
	switch (ret) {
	case 0:
		return SG_STORE_OK;
	case DB_LOCK_DEADLOCK:
	case DB_LOCK_NOTGRANTED:
		return SG_STORE_RETRY;
	case DB_RUNRECOVERY:
		sg_log(SG_LOG_WARN, "store %s: %s: %s", path, what, db_strerror(ret));
		return SG_STORE_REOPEN;
	default:
		sg_log(SG_LOG_ERR, "store %s: %s: %s", path, what, db_strerror(ret));
		sg_error_set(err, 500, "store %s: %s: %s", path, what, db_strerror(ret));
		return SG_STORE_FAIL;
	}
}

static int
sys_fail(const char *path, const char *what, struct sg_error *err)
{
	int e = errno;

	sg_log(SG_LOG_ERR, "store %s: %s: %s", path, what, strerror(e));
	return sg_error_set(err, 500, "store %s: %s: %s", path, what, strerror(e));
}

static void
on_error(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	sg_log(SG_LOG_WARN, "store: %s", msg);
}

static void
on_message(const DB_ENV *env, const char *msg)
{
	(void)env;
	sg_log(SG_LOG_INFO, "store: %s", msg);
}

/*
 * Tells the failure check whether a process that used the environment is
 * still alive.  Wrongly calling a live process dead would abort its
 * transaction under it, so every doubt answers "alive".  A zombie is
 * dead: kill(2) still finds it, but it holds nothing any more.
 */
static int
is_alive(DB_ENV *env, pid_t pid, db_threadid_t tid, u_int32_t flags)
{
	char path[64], stat[512];
	const char *p;
	ssize_t n;
	int fd;

	(void)env;
	(void)tid;
	(void)flags;
	if (pid == getpid())
		return 1;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 1;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	stat[n] = '\0';
	/* "pid (comm) S ...": the state follows the last parenthesis. */
	if ((p = strrchr(stat, ')')) == NULL || p[1] != ' ')
		return 1;
	return p[2] != 'Z' && p[2] != 'X';
}

/* Joins dir and name into out (cleared first).  Returns 0 or -1. */
static int
path_join(struct sg_buf *out, const char *dir, const char *name)
{
	sg_buf_reset(out);
	return sg_buf_addf(out, "%s/%s", dir, name);
}

static int
env_configure(DB_ENV *env, const char **what)
{
	int ret;

	env->set_errcall(env, on_error);
	env->set_msgcall(env, on_message);
	*what = "cache size";
	if ((ret = env->set_cachesize(env, 0, CACHE_BYTES, 1)) != 0)
		return ret;
	*what = "log buffer size";
	if ((ret = env->set_lg_bsize(env, LOG_BUFFER_BYTES)) != 0)
		return ret;
	*what = "log file size";
	if ((ret = env->set_lg_max(env, LOG_FILE_BYTES)) != 0)
		return ret;
	*what = "log auto-removal";
	if ((ret = env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1)) != 0)
		return ret;
	*what = "lock limits";
	if ((ret = env->set_lk_max_lockers(env, MAX_LOCKERS)) != 0 ||
	    (ret = env->set_lk_max_locks(env, MAX_LOCKS)) != 0 ||
	    (ret = env->set_lk_max_objects(env, MAX_OBJECTS)) != 0)
		return ret;
	*what = "transaction limit";
	if ((ret = env->set_tx_max(env, MAX_TXNS)) != 0)
		return ret;
	*what = "deadlock detection";
	if ((ret = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0)
		return ret;
	*what = "register timeout";
	if ((ret = env->set_timeout(env, REGISTER_WAIT_US, DB_SET_REG_TIMEOUT)) != 0)
		return ret;
	*what = "failure checking";
	if ((ret = env->set_thread_count(env, THREAD_COUNT)) != 0 ||
	    (ret = env->set_isalive(env, is_alive)) != 0)
		return ret;
	return 0;
}

/*
 * Opens a table in a transaction of its own that does not wait: while
 * another process creates the file, opening it conflicts and is retried.
 */
static int
table_open(struct sg_store_env *e, enum sg_table t, struct sg_error *err)
{
	struct timespec pause = {0, 2 * 1000 * 1000};
	DB_TXN *txn;
	DB *db;
	int ret, tries;

	if (table_files[t] == NULL)
		return sg_error_set(err, 500, "store %s: table %d has no file",
		    e->path, (int)t);
	for (tries = 1;; tries++) {
		db = NULL;
		txn = NULL;
		if ((ret = e->env->txn_begin(e->env, NULL, &txn, DB_TXN_NOWAIT)) == 0 &&
		    (ret = db_create(&db, e->env, 0)) == 0 &&
		    (ret = db->open(db, txn, table_files[t], NULL, DB_BTREE,
		    DB_CREATE, FILE_MODE)) == 0) {
			ret = txn->commit(txn, 0);
			txn = NULL;
			if (ret == 0)
				break;
		}
		if (db != NULL) {
			db->close(db, 0);
			db = NULL;
		}
		if (txn != NULL)
			txn->abort(txn);
		if ((ret != DB_LOCK_DEADLOCK && ret != DB_LOCK_NOTGRANTED) ||
		    tries == TABLE_OPEN_TRIES)
			return result(e->path, ret, table_files[t], err);
		nanosleep(&pause, NULL);
	}
	e->db[t] = db;
	return SG_STORE_OK;
}

/* Opens (creating) the lock file name in dir; returns the descriptor or -1. */
static int
lock_open(const char *dir, const char *name, struct sg_error *err)
{
	struct sg_buf file;
	int fd = -1;

	sg_buf_init(&file, 4096);
	if (path_join(&file, dir, name) != 0)
		sg_error_set(err, 500, "store %s: path too long", dir);
	else if ((fd = open(sg_buf_str(&file), O_RDWR | O_CREAT | O_CLOEXEC,
	    FILE_MODE)) < 0)
		sys_fail(dir, name, err);
	sg_buf_free(&file);
	return fd;
}

/* flock(2) that waits through signals. */
static int
lock_take(int fd, int how)
{
	int rc;

	while ((rc = flock(fd, how)) != 0 && errno == EINTR)
		continue;
	return rc;
}

static void
bdb_close(struct sg_store_env *e)
{
	u_int32_t flags;
	int t, panicked;

	if (e == NULL)
		return;
	/*
	 * A panicked environment is closed without writing anything: its
	 * recovery is someone else's, and flushing could wait for good on
	 * what a dead process held.  Berkeley DB then only closes the files
	 * and leaves the handles' memory behind, a small leak per recovery.
	 */
	flags = 0;
	panicked = e->env != NULL && e->env->get_flags(e->env, &flags) == 0 &&
	    (flags & DB_PANIC_ENVIRONMENT) != 0;
	for (t = 0; t < SG_TABLE_COUNT; t++)
		if (e->db[t] != NULL)
			e->db[t]->close(e->db[t], panicked ? DB_NOSYNC : 0);
	if (e->env != NULL)
		e->env->close(e->env, 0);
	if (e->openfd >= 0)
		close(e->openfd);
	if (e->recoverfd >= 0)
		close(e->recoverfd);
	if (e->backupfd >= 0)
		close(e->backupfd);
	free(e->scratch.data);
	free(e->path);
	free(e);
}

/*
 * Opens the environment and its tables.  With hold_open, the handle holds
 * OPEN_LOCK shared for its lifetime (waiting while a verification runs);
 * without, the caller holds it exclusively.
 */
static int
env_open(const char *path, int hold_open, struct sg_store_env **out,
    struct sg_error *err)
{
	struct sg_store_env *e;
	struct stat sb;
	const char *what;
	int rc, ret, t;

	*out = NULL;
	rc = SG_STORE_FAIL;
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		sys_fail(path, "open", err);
		return SG_STORE_FAIL;
	}
	e->openfd = e->recoverfd = e->backupfd = -1;
	if ((e->path = strdup(path)) == NULL) {
		sys_fail(path, "open", err);
		goto fail;
	}
	if (mkdir(path, DIR_MODE) != 0 && errno != EEXIST) {
		sys_fail(path, "mkdir", err);
		goto fail;
	}
	if (stat(path, &sb) != 0) {
		sys_fail(path, "stat", err);
		goto fail;
	}
	if (!S_ISDIR(sb.st_mode)) {
		sg_error_set(err, 500, "store %s: not a directory", path);
		goto fail;
	}
	if ((hold_open && (e->openfd = lock_open(path, OPEN_LOCK, err)) < 0) ||
	    (e->recoverfd = lock_open(path, RECOVER_LOCK, err)) < 0 ||
	    (e->backupfd = lock_open(path, BACKUP_LOCK, err)) < 0)
		goto fail;
	if (hold_open && lock_take(e->openfd, LOCK_SH) != 0) {
		sys_fail(path, OPEN_LOCK, err);
		goto fail;
	}
	if ((ret = db_env_create(&e->env, 0)) != 0) {
		rc = result(path, ret, "environment", err);
		goto fail;
	}
	if ((ret = env_configure(e->env, &what)) != 0) {
		rc = result(path, ret, what, err);
		goto fail;
	}
	if (lock_take(e->recoverfd, LOCK_EX) != 0) {
		sys_fail(path, RECOVER_LOCK, err);
		goto fail;
	}
	ret = e->env->open(e->env, path, ENV_FLAGS, FILE_MODE);
	flock(e->recoverfd, LOCK_UN);
	if (ret != 0) {
		rc = result(path, ret, "open environment", err);
		goto fail;
	}
	for (t = 0; t < SG_TABLE_COUNT; t++)
		if ((rc = table_open(e, t, err)) != SG_STORE_OK)
			goto fail;
	*out = e;
	return SG_STORE_OK;
fail:
	bdb_close(e);
	return rc;
}

static int
bdb_open(const char *path, struct sg_store_env **out, struct sg_error *err)
{
	return env_open(path, 1, out, err);
}

static int
bdb_begin(struct sg_store_env *e, struct sg_store_etxn **out,
    struct sg_error *err)
{
	DB_TXN *txn;
	int ret;

	*out = NULL;
	if ((ret = e->env->txn_begin(e->env, NULL, &txn, DB_TXN_NOWAIT)) != 0)
		return result(e->path, ret, "begin", err);
	*out = (struct sg_store_etxn *)(void *)txn;
	return SG_STORE_OK;
}

/*
 * Flushes to disk the log files that may hold a commit just written.
 * Berkeley DB would fsync holding its log flush mutex, and a process
 * killed there leaves every other process that flushes waiting for good
 * (5.3 cannot take a mutex back from a dead process); so commits only
 * write the log (DB_TXN_WRITE_NOSYNC) and durable ones then flush the
 * current log file, and the one before in case the log just moved on,
 * holding nothing.
 */
static int
log_sync(struct sg_store_env *e, struct sg_error *err)
{
	char name[4096];
	DB_LOG_STAT *ls;
	DB_LSN lsn;
	u_int32_t cur;
	int fd, ret;

	if ((ret = e->env->log_stat(e->env, &ls, 0)) != 0)
		return result(e->path, ret, "log state", err);
	cur = ls->st_cur_file;
	free(ls);
	for (lsn.file = cur > 1 ? cur - 1 : cur; lsn.file <= cur; lsn.file++) {
		lsn.offset = 0;
		if ((ret = e->env->log_file(e->env, &lsn, name, sizeof(name))) != 0)
			return result(e->path, ret, "log file name", err);
		if ((fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
			/* Removed: it was no longer needed, so it was flushed. */
			if (errno == ENOENT)
				continue;
			return sys_fail(e->path, "log sync", err);
		}
		if (fdatasync(fd) != 0) {
			close(fd);
			return sys_fail(e->path, "log sync", err);
		}
		close(fd);
	}
	return SG_STORE_OK;
}

static int
bdb_commit(struct sg_store_env *e, struct sg_store_etxn *t, unsigned flags,
    struct sg_error *err)
{
	int ret;

	if ((ret = txn_of(t)->commit(txn_of(t), DB_TXN_WRITE_NOSYNC)) != 0)
		return result(e->path, ret, "commit", err);
	if (flags & SG_TXN_DURABLE)
		return log_sync(e, err);
	return SG_STORE_OK;
}

static void
bdb_abort(struct sg_store_env *e, struct sg_store_etxn *t)
{
	int ret;

	if ((ret = txn_of(t)->abort(txn_of(t))) != 0 && ret != DB_RUNRECOVERY)
		sg_log(SG_LOG_ERR, "store %s: abort: %s", e->path, db_strerror(ret));
}

static void
key_dbt(DBT *d, const struct sg_key *k)
{
	memset(d, 0, sizeof(*d));
	d->data = (void *)k->data;
	d->size = (u_int32_t)k->len;
}

static int
bdb_get(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
    const struct sg_key *k, unsigned flags, struct sg_buf *val,
    struct sg_error *err)
{
	DBT key;
	int ret;

	key_dbt(&key, k);
	e->scratch.flags = DB_DBT_REALLOC;
	ret = e->db[tab]->get(e->db[tab], txn_of(t), &key, &e->scratch,
	    (flags & SG_GET_FOR_UPDATE) ? DB_RMW : 0);
	if (ret == DB_NOTFOUND || ret == DB_KEYEMPTY)
		return SG_STORE_NOTFOUND;
	if (ret != 0)
		return result(e->path, ret, table_files[tab], err);
	if (sg_buf_add(val, e->scratch.data, e->scratch.size) != 0) {
		sg_log(SG_LOG_ERR, "store %s: %s: value of %lu bytes does not fit",
		    e->path, table_files[tab], (unsigned long)e->scratch.size);
		return sg_error_set(err, 500, "store %s: %s: value larger than %zu "
		    "bytes", e->path, table_files[tab], val->max);
	}
	return SG_STORE_OK;
}

static int
bdb_put(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
    const struct sg_key *k, const void *val, size_t n, struct sg_error *err)
{
	DBT key, data;
	int ret;

	key_dbt(&key, k);
	memset(&data, 0, sizeof(data));
	data.data = (void *)val;
	data.size = (u_int32_t)n;
	ret = e->db[tab]->put(e->db[tab], txn_of(t), &key, &data, 0);
	return result(e->path, ret, table_files[tab], err);
}

static int
bdb_del(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
    const struct sg_key *k, struct sg_error *err)
{
	DBT key;
	int ret;

	key_dbt(&key, k);
	ret = e->db[tab]->del(e->db[tab], txn_of(t), &key, 0);
	if (ret == DB_NOTFOUND || ret == DB_KEYEMPTY)
		return SG_STORE_NOTFOUND;
	return result(e->path, ret, table_files[tab], err);
}

/*
 * Walks the keys that start with prefix.  Each key and value is copied
 * into a NUL-terminated buffer before fn sees it, so fn may treat them as
 * strings and may call other store functions (which reuse e->scratch).
 */
static int
bdb_scan(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
    const struct sg_key *prefix, sg_scan_fn fn, void *arg, int *stop,
    struct sg_error *err)
{
	struct sg_buf kb, vb;
	DBC *cur;
	DBT key, data;
	u_int32_t how;
	int rc, ret;

	cur = NULL;
	*stop = 0;
	sg_buf_init(&kb, SG_KEY_MAX);
	sg_buf_init(&vb, SG_STORE_VALUE_MAX);
	memset(&key, 0, sizeof(key));
	memset(&data, 0, sizeof(data));
	key.flags = DB_DBT_REALLOC;
	data.flags = DB_DBT_REALLOC;
	rc = SG_STORE_FAIL;
	if (prefix->len > 0) {
		if ((key.data = malloc(prefix->len)) == NULL) {
			sys_fail(e->path, "scan", err);
			goto out;
		}
		memcpy(key.data, prefix->data, prefix->len);
		key.size = (u_int32_t)prefix->len;
	}
	if ((ret = e->db[tab]->cursor(e->db[tab], txn_of(t), &cur, 0)) != 0) {
		rc = result(e->path, ret, table_files[tab], err);
		goto out;
	}
	how = prefix->len > 0 ? DB_SET_RANGE : DB_FIRST;
	for (;;) {
		ret = cur->get(cur, &key, &data, how);
		how = DB_NEXT;
		if (ret == DB_NOTFOUND)
			break;
		if (ret != 0) {
			rc = result(e->path, ret, table_files[tab], err);
			goto out;
		}
		if (key.size < prefix->len ||
		    memcmp(key.data, prefix->data, prefix->len) != 0)
			break;
		sg_buf_reset(&kb);
		sg_buf_reset(&vb);
		if (sg_buf_add(&kb, key.data, key.size) != 0 ||
		    sg_buf_add(&vb, data.data, data.size) != 0) {
			sg_log(SG_LOG_ERR, "store %s: %s: record too large", e->path,
			    table_files[tab]);
			sg_error_set(err, 500, "store %s: %s: record too large",
			    e->path, table_files[tab]);
			rc = SG_STORE_FAIL;
			goto out;
		}
		rc = fn(sg_buf_str(&kb), kb.len, sg_buf_str(&vb), vb.len, arg);
		if (rc < 0)
			*stop = rc;
		if (rc != 0)
			break;
	}
	rc = SG_STORE_OK;
out:
	if (cur != NULL && (ret = cur->close(cur)) != 0 && rc == SG_STORE_OK)
		rc = result(e->path, ret, table_files[tab], err);
	free(key.data);
	free(data.data);
	sg_buf_free(&kb);
	sg_buf_free(&vb);
	return rc;
}

static int
bdb_failchk(struct sg_store_env *e, struct sg_error *err)
{
	int ret;

	if (lock_take(e->recoverfd, LOCK_EX) != 0)
		return sys_fail(e->path, RECOVER_LOCK, err);
	ret = e->env->failchk(e->env, 0);
	/*
	 * A process died inside the library: the environment needs
	 * recovery.  Marking it panicked tells every process at once, and
	 * makes closing it here skip everything that could wait for what the
	 * dead process held.
	 */
	if (ret == DB_RUNRECOVERY)
		e->env->set_flags(e->env, DB_PANIC_ENVIRONMENT, 1);
	flock(e->recoverfd, LOCK_UN);
	return result(e->path, ret, "failure check", err);
}

static int
bdb_checkpoint(struct sg_store_env *e, int force, struct sg_error *err)
{
	int rc, ret;

	if (flock(e->backupfd, LOCK_SH | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sys_fail(e->path, BACKUP_LOCK, err);
		if (!force)
			return SG_STORE_OK;
		return sg_error_set(err, 503, "store %s: a backup is running", e->path);
	}
	if (force)
		ret = e->env->txn_checkpoint(e->env, 0, 0, DB_FORCE);
	else
		ret = e->env->txn_checkpoint(e->env, CHECKPOINT_KBYTES,
		    CHECKPOINT_MINUTES, 0);
	if (ret == 0 && force)
		ret = e->env->log_archive(e->env, NULL, DB_ARCH_REMOVE);
	rc = result(e->path, ret, "checkpoint", err);
	flock(e->backupfd, LOCK_UN);
	return rc;
}

/* Returns 1 when dir holds nothing but "." and "..", 0 when it holds more, -1. */
static int
dir_is_empty(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int empty = 1;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* Flushes every file of dir, and dir itself, to disk. */
static int
dir_sync(const char *dir, struct sg_error *err)
{
	struct sg_buf file;
	struct dirent *de;
	DIR *d;
	int fd, rc = -1;

	sg_buf_init(&file, 4096);
	if ((d = opendir(dir)) == NULL) {
		sys_fail(dir, "backup", err);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (path_join(&file, dir, de->d_name) != 0) {
			sg_error_set(err, 500, "store %s: path too long", dir);
			goto out;
		}
		if ((fd = open(sg_buf_str(&file), O_RDONLY | O_CLOEXEC)) < 0 ||
		    fsync(fd) != 0) {
			sys_fail(dir, "backup sync", err);
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
		sys_fail(dir, "backup sync", err);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	sg_buf_free(&file);
	return rc;
}

/*
 * Makes the copied files and logs of a backup consistent by themselves,
 * as db_hotbackup does: catastrophic recovery over every copied log, in a
 * private environment (no region files are left behind), then a
 * checkpoint and the removal of the logs it made unnecessary.
 */
static int
backup_recover(const char *dir, struct sg_error *err)
{
	DB_ENV *env;
	const char *what;
	int ret;

	if ((ret = db_env_create(&env, 0)) != 0)
		return result(dir, ret, "backup environment", err);
	env->set_errcall(env, on_error);
	env->set_msgcall(env, on_message);
	what = "backup cache size";
	if ((ret = env->set_cachesize(env, 0, CACHE_BYTES, 1)) != 0)
		goto out;
	what = "backup log size";
	if ((ret = env->set_lg_bsize(env, LOG_BUFFER_BYTES)) != 0 ||
	    (ret = env->set_lg_max(env, LOG_FILE_BYTES)) != 0)
		goto out;
	what = "backup recovery";
	if ((ret = env->open(env, dir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK |
	    DB_INIT_LOG | DB_INIT_MPOOL | DB_PRIVATE | DB_RECOVER_FATAL,
	    FILE_MODE)) != 0)
		goto out;
	what = "backup checkpoint";
	if ((ret = env->txn_checkpoint(env, 0, 0, DB_FORCE)) != 0 ||
	    (ret = env->log_archive(env, NULL, DB_ARCH_REMOVE)) != 0)
		goto out;
out:
	if (env->close(env, 0) != 0 && ret == 0) {
		what = "backup close";
		ret = EIO;
	}
	return result(dir, ret, what, err);
}

static int
bdb_backup(struct sg_store_env *e, const char *dir, struct sg_error *err)
{
	int empty, locked, rc, ret;

	locked = 0;
	rc = SG_STORE_FAIL;
	if (mkdir(dir, DIR_MODE) != 0) {
		if (errno != EEXIST) {
			sys_fail(dir, "backup mkdir", err);
			goto out;
		}
		if ((empty = dir_is_empty(dir)) < 0) {
			sys_fail(dir, "backup", err);
			goto out;
		}
		if (!empty) {
			sg_error_set(err, 500, "store %s: backup directory is not empty", dir);
			goto out;
		}
	}
	if (lock_take(e->backupfd, LOCK_EX) != 0) {
		sys_fail(e->path, BACKUP_LOCK, err);
		goto out;
	}
	locked = 1;
	if ((ret = e->env->txn_checkpoint(e->env, 0, 0, DB_FORCE)) != 0) {
		rc = result(e->path, ret, "backup checkpoint", err);
		goto out;
	}
	if ((ret = e->env->backup(e->env, dir, 0)) != 0) {
		rc = result(dir, ret, "backup", err);
		goto out;
	}
	flock(e->backupfd, LOCK_UN);
	locked = 0;
	if ((rc = backup_recover(dir, err)) != SG_STORE_OK)
		goto out;
	if (dir_sync(dir, err) != 0) {
		rc = SG_STORE_FAIL;
		goto out;
	}
	rc = SG_STORE_OK;
out:
	if (locked)
		flock(e->backupfd, LOCK_UN);
	return rc;
}

/*
 * Checks the tables of a store that nobody uses.  It holds OPEN_LOCK
 * exclusively throughout, so it refuses a store in use and makes later
 * openers wait.  It first opens and closes the environment, which
 * recovers it if a process died in it, with a forced checkpoint that
 * writes every page to the table files; then it checks the files alone.
 */
static int
bdb_verify(const char *path, struct sg_error *err)
{
	struct sg_store_env *e;
	struct sg_buf file;
	struct stat sb;
	DB *db;
	int fd, rc, ret, t;

	e = NULL;
	fd = -1;
	rc = SG_STORE_FAIL;
	sg_buf_init(&file, 4096);
	for (t = 0; t < SG_TABLE_COUNT; t++) {
		if (path_join(&file, path, table_files[t]) != 0) {
			sg_error_set(err, 500, "store %s: path too long", path);
			goto out;
		}
		if (stat(sg_buf_str(&file), &sb) != 0) {
			sys_fail(path, table_files[t], err);
			goto out;
		}
	}
	if ((fd = lock_open(path, OPEN_LOCK, err)) < 0)
		goto out;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			sg_error_set(err, 409, "store %s: in use (verify a backup "
			    "of it instead)", path);
		else
			sys_fail(path, OPEN_LOCK, err);
		goto out;
	}
	if ((rc = env_open(path, 0, &e, err)) != SG_STORE_OK)
		goto out;
	if ((rc = bdb_checkpoint(e, 1, err)) != SG_STORE_OK)
		goto out;
	bdb_close(e);
	e = NULL;
	rc = SG_STORE_FAIL;
	for (t = 0; t < SG_TABLE_COUNT; t++) {
		path_join(&file, path, table_files[t]);
		if ((ret = db_create(&db, NULL, 0)) != 0) {
			rc = result(path, ret, table_files[t], err);
			goto out;
		}
		db->set_errcall(db, on_error);
		/* verify destroys the handle whatever it returns. */
		if ((ret = db->verify(db, sg_buf_str(&file), NULL, NULL, 0)) != 0) {
			sg_log(SG_LOG_ERR, "store %s: verify %s: %s", path,
			    table_files[t], db_strerror(ret));
			sg_error_set(err, 500, "store %s: verify %s: %s", path,
			    table_files[t], db_strerror(ret));
			goto out;
		}
	}
	rc = SG_STORE_OK;
out:
	bdb_close(e);
	if (fd >= 0)
		close(fd);
	sg_buf_free(&file);
	return rc;
}

const struct sg_store_ops sg_store_bdb_ops = {
	.name = "bdb",
	.open = bdb_open,
	.close = bdb_close,
	.begin = bdb_begin,
	.commit = bdb_commit,
	.abort = bdb_abort,
	.get = bdb_get,
	.put = bdb_put,
	.del = bdb_del,
	.scan = bdb_scan,
	.failchk = bdb_failchk,
	.checkpoint = bdb_checkpoint,
	.backup = bdb_backup,
	.verify = bdb_verify,
};
