/*
 * store_bdb.c: the Berkeley DB 5.3 engine of the store.
 *
 * One transactional environment per store directory, one B-tree file per
 * table, shared by every process of every program.
 *
 * Nobody waits for a lock.  Transactions run with DB_TXN_NOWAIT: a lock
 * conflict returns at once and store.c retries the whole transaction
 * after a short random pause.  In 5.3 a lock timeout fires only when some
 * process runs deadlock detection, so a process waiting for a lock that a
 * killed process held would wait forever; without waits that cannot
 * happen, and no wait can deadlock either.
 *
 * Processes that die.  Each process registers in the environment
 * (DB_REGISTER).  A process that opens it and finds the slot of a dead
 * process runs recovery (DB_RECOVER): it marks the old environment as
 * panicked, waits REGISTER_WAIT_US for the processes in it to notice, and
 * recovers; every live process then gets DB_RUNRECOVERY, and store.c
 * closes and reopens its handle (SG_STORE_REOPEN) and runs the
 * transaction again.  A live process that keeps meeting a lock runs the
 * failure check (bdb_failchk, with an is_alive function), which aborts a
 * dead process's transaction and frees its locks while the others keep
 * working, or, when that process died inside the library, panics the
 * environment so that the next opener recovers it.  Commits reach the log
 * with write(2) at least (DB_TXN_WRITE_NOSYNC), so recovery in another
 * process finds them.
 *
 * Mutexes of dead processes.  5.3 (built with POSIX mutexes on Debian)
 * never takes back a mutex or latch from a process killed while holding
 * it, and a panic does not wake the processes blocked on it.  Every
 * library call on an open environment therefore runs under a watchdog
 * (see "The stall watchdog" below): a call blocked for STALL_FIRST_MS,
 * using no CPU, while the registry shows a dead process or the
 * environment has already been recovered, is left with siglongjmp and the
 * handle abandoned to that recovery.  Durable commits keep the longest
 * such hold out of the library: the log is flushed by log_sync, not by
 * Berkeley DB under its flush mutex.
 *
 * Logs.  DB_LOG_AUTO_REMOVE drops log files once a checkpoint no longer
 * needs them, so the directory holds the tables, the region files and a
 * few LOG_FILE_BYTES log files.  A hot backup copies the table files and
 * then the logs, and needs every log written since its own checkpoint:
 * while it runs it holds BACKUP_LOCK, and every checkpoint (the only
 * thing that moves the point before which logs are removed) takes it
 * shared or is skipped.
 *
 * Restore.  A backup is copied into a new directory beside the store,
 * recovered there by itself (catastrophic recovery over its logs, as
 * after a backup), verified, given the store directory's owner and mode,
 * and only then exchanged with the store directory in one rename, so the
 * store path holds either the old store or the whole restored one, never
 * a half-copied directory.  Like verification it needs a store nobody
 * uses, and holds OPEN_LOCK exclusively while it works.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
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
#define CACHE_BYTES (1U * 1024 * 1024)
#define LOG_BUFFER_BYTES (256U * 1024)
#define LOG_FILE_BYTES (4U * 1024 * 1024) /* at least 4 log buffers */
/* Processes (single-threaded) that may use the environment at once. */
#define THREAD_COUNT 256
#define MAX_TXNS THREAD_COUNT
#define MAX_LOCKERS 1000
#define MAX_LOCKS 10000
#define MAX_OBJECTS 10000
/* How long a recovering opener lets live processes notice the panic. */
#define REGISTER_WAIT_US (200U * 1000)
/* Automatic checkpoints: after this much log or this much time. */
#define CHECKPOINT_KBYTES 1024
#define CHECKPOINT_MINUTES 5
/* Concurrent creation of a table conflicts; tries before giving up. */
#define TABLE_OPEN_TRIES 50
/*
 * The stall watchdog wakes every STALL_TICK_MS; a call still running after
 * STALL_FIRST_MS gets a look at each tick, and one that used less than
 * STALL_CPU_NS of CPU between two looks is blocked, not working.
 */
#define STALL_TICK_MS 500
#define STALL_FIRST_MS 2000
#define STALL_CPU_NS (5 * 1000 * 1000)
#define STALL_SIGNAL (SIGRTMIN + 5)

#define DIR_MODE 0750
#define FILE_MODE 0640
/*
 * Lock files (flock(2): held per open file, released when a process
 * dies).  OPEN_LOCK: every handle holds it shared for its lifetime, and
 * verification exclusively.  RECOVER_LOCK: held around every failure
 * check, because two at once could abort the same dead transaction twice.
 * BACKUP_LOCK: a backup holds it exclusively, checkpoints shared.
 */
#define OPEN_LOCK "open.lock"
#define RECOVER_LOCK "recover.lock"
#define BACKUP_LOCK "backup.lock"
/*
 * What the watchdog reads of Berkeley DB 5.3's own files: the first
 * region file, which recovery replaces, and the DB_REGISTER registry, one
 * REGISTRY_SLOT-byte line per process ("%24lu\n" of its pid, "X..." when
 * free) whose first byte the process keeps locked with fcntl(2).
 */
#define REGION_FILE "__db.001"
#define REGISTRY_FILE "__db.register"
#define REGISTRY_SLOT 25

#define ENV_FLAGS                                                                                  \
	(DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL | DB_REGISTER |      \
		DB_RECOVER)

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
	char *realdir;                /* path made absolute, as /proc/self/maps names it */
	int openfd;                   /* OPEN_LOCK, held shared (or -1) */
	int recoverfd;                /* RECOVER_LOCK */
	int backupfd;                 /* BACKUP_LOCK */
	int regionfd;                 /* REGION_FILE as opened, for the watchdog (or -1) */
	int regfd;                    /* REGISTRY_FILE, for the watchdog (or -1) */
	char self[REGISTRY_SLOT + 1]; /* this process's registry line */
	int panicked;                 /* the library answered DB_RUNRECOVERY */
	int abandoned;                /* the watchdog left a call: touch nothing more */
	DBT scratch;                  /* get's DB_DBT_REALLOC buffer, kept between calls */
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

/* As result, for a call on e: remembers that e needs recovery. */
static int
eresult(struct sg_store_env *e, int ret, const char *what, struct sg_error *err)
{
	if (ret == DB_RUNRECOVERY)
		e->panicked = 1;
	return result(e->path, ret, what, err);
}

static int
sys_fail(const char *path, const char *what, struct sg_error *err)
{
	int e = errno;

	sg_log(SG_LOG_ERR, "store %s: %s: %s", path, what, strerror(e));
	return sg_error_set(err, 500, "store %s: %s: %s", path, what, strerror(e));
}

/*
 * The library's own messages.  Every call on a panicked environment says
 * so; store.c logs the reopen that follows once, so these are only info.
 */
static void
on_error(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	if (strstr(msg, "PANIC") != NULL || strstr(msg, "DB_RUNRECOVERY") != NULL)
		sg_log(SG_LOG_INFO, "store: %s", msg);
	else
		sg_log(SG_LOG_WARN, "store: %s", msg);
}

/* Closing a panicked environment lists every file it closes: debug only. */
static void
on_error_closing(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	sg_log(SG_LOG_DEBUG, "store: %s", msg);
}

static void
on_message(const DB_ENV *env, const char *msg)
{
	(void)env;
	sg_log(SG_LOG_INFO, "store: %s", msg);
}

/*
 * The stall watchdog.
 *
 * A library call costs the watchdog two stores and a sigsetjmp: CALL
 * marks the call as running and numbers it.  A thread of the store's own
 * (started once per process, with every signal blocked) wakes every
 * STALL_TICK_MS; when one call has been running for STALL_FIRST_MS it
 * sends STALL_SIGNAL (SIGRTMIN + 5, reserved by the store) to the calling
 * thread at each tick.  on_stall, in that thread, leaves the call with
 * siglongjmp only when three things hold: the call is blocked (it used no
 * CPU since the last look, so it sleeps in a futex, not in malloc), and
 * either the registry shows a dead process (whose recovery is due, and
 * this process's own reopen runs it) or the environment's region file is
 * gone (recovery already replaced the environment).  Otherwise the call
 * may be waiting for a live, slow process, and the watchdog looks again
 * later, never giving up: that wait is Berkeley DB's to end.
 *
 * What the jump skips belongs to the abandoned environment: its shared
 * regions are panicked and then discarded by recovery, and the handle is
 * closed through the library's panic path, which takes no mutex.  Every
 * check in on_stall uses only async-signal-safe calls.
 */
static struct {
	pid_t pid;                         /* the process whose thread watches */
	pthread_t owner;                   /* the thread making the calls */
	sigjmp_buf jump;                   /* where a left call lands */
	struct sg_store_env *volatile env; /* whose call runs */
	volatile sig_atomic_t inside;      /* a call runs */
	volatile sig_atomic_t seq;         /* numbers the calls */
	volatile sig_atomic_t looks;       /* on_stall calls during this one */
	struct timespec cpu;               /* thread CPU time at the last look */
} stall;

/* Whether a process registered in e's environment has died. */
static int
registry_has_dead(const struct sg_store_env *e)
{
	char buf[REGISTRY_SLOT * 64];
	struct flock fl;
	ssize_t n, i;
	off_t off;

	if (e->regfd < 0)
		return 0;
	for (off = 0;; off += n) {
		if ((n = pread(e->regfd, buf, sizeof(buf), off)) < REGISTRY_SLOT)
			return 0;
		n -= n % REGISTRY_SLOT;
		for (i = 0; i < n; i += REGISTRY_SLOT) {
			if (buf[i] == 'X' || memcmp(buf + i, e->self, REGISTRY_SLOT) == 0)
				continue;
			memset(&fl, 0, sizeof(fl));
			fl.l_type = F_WRLCK;
			fl.l_whence = SEEK_SET;
			fl.l_start = off + i;
			fl.l_len = 1;
			if (fcntl(e->regfd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK)
				return 1;
		}
	}
}

/* Whether recovery has removed the environment e belongs to. */
static int
region_removed(const struct sg_store_env *e)
{
	struct stat sb;

	return e->regionfd >= 0 && fstat(e->regionfd, &sb) == 0 && sb.st_nlink == 0;
}

static void
on_stall(int sig)
{
	struct sg_store_env *e = stall.env;
	struct timespec now;
	long long used;

	(void)sig;
	if (!stall.inside || e == NULL)
		return;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
	used = (long long)(now.tv_sec - stall.cpu.tv_sec) * 1000000000LL +
		(now.tv_nsec - stall.cpu.tv_nsec);
	stall.cpu = now;
	if (stall.looks++ > 0 && used < STALL_CPU_NS &&
		(region_removed(e) || registry_has_dead(e))) {
		stall.inside = 0;
		siglongjmp(stall.jump, 1);
	}
}

/* The watching thread: signals a call that has run for STALL_FIRST_MS. */
static void *
stall_watch(void *arg)
{
	struct timespec tick = {0, STALL_TICK_MS * 1000000L};
	sig_atomic_t seen = 0;
	int ticks = 0;

	(void)arg;
	for (;;) {
		nanosleep(&tick, NULL);
		if (!__atomic_load_n(&stall.inside, __ATOMIC_RELAXED) ||
			__atomic_load_n(&stall.seq, __ATOMIC_RELAXED) != seen) {
			seen = __atomic_load_n(&stall.seq, __ATOMIC_RELAXED);
			ticks = 0;
		} else if (++ticks >= STALL_FIRST_MS / STALL_TICK_MS)
			pthread_kill(stall.owner, STALL_SIGNAL);
	}
	return NULL;
}

/* Sets the watchdog up once per process (again in a forked child). */
static void
stall_init(void)
{
	struct sigaction sa;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	if (stall.pid == getpid())
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stall;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(STALL_SIGNAL, &sa, NULL) != 0) {
		sg_log(SG_LOG_WARN, "store: no stall watchdog: %s", strerror(errno));
		return;
	}
	/* The thread inherits a mask that keeps every signal for the others. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, stall_watch, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		sg_log(SG_LOG_WARN, "store: no stall watchdog: %s", strerror(rc));
		return;
	}
	stall.pid = getpid();
}

static void
stall_enter(struct sg_store_env *e)
{
	stall.env = e;
	stall.owner = pthread_self();
	stall.looks = 0;
	stall.seq++;
	stall.inside = 1;
}

static void
stall_leave(void)
{
	stall.inside = 0;
}

/* After the watchdog left a call of e: e is given up to recovery. */
static int
stall_escaped(struct sg_store_env *e)
{
	sigset_t set;

	/* The handler ran with its signal blocked; the jump did not restore it. */
	sigemptyset(&set);
	sigaddset(&set, STALL_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	e->abandoned = 1;
	e->panicked = 1;
	sg_log(SG_LOG_ERR,
		"store %s: blocked in Berkeley DB behind a dead process; "
		"leaving the environment to its recovery",
		e->path);
	return DB_RUNRECOVERY;
}

/*
 * Runs one library call on e under the watchdog: ret gets the call's
 * result, or DB_RUNRECOVERY once e is abandoned.  The enclosing function
 * must not rely on its other local variables after an escape.
 */
#define CALL(e, ret, call)                                                                         \
	do {                                                                                       \
		if ((e)->abandoned)                                                                \
			(ret) = DB_RUNRECOVERY;                                                    \
		else if (sigsetjmp(stall.jump, 0) == 0) {                                          \
			stall_enter(e);                                                            \
			(ret) = (call);                                                            \
			stall_leave();                                                             \
		} else                                                                             \
			(ret) = stall_escaped(e);                                                  \
	} while (0)

/*
 * The failure check asks is_alive about every locker of every process,
 * and each answer costs a kill(2) and a read of /proc: during one check
 * (bdb_failchk turns alive_memo on) the answers are remembered.
 */
static struct {
	int on;
	pid_t self;
	int n;
	pid_t pid[64];
	char alive[64];
} alive_memo;

/* Whether process pid is alive; every doubt answers "alive". */
static int
pid_alive(pid_t pid)
{
	char path[64], stat[512];
	const char *p;
	ssize_t n;
	int fd;

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

/*
 * Tells the failure check whether a process that used the environment is
 * still alive.  Wrongly calling a live process dead would abort its
 * transaction under it, so every doubt answers "alive".  A zombie is
 * dead: kill(2) still finds it, but it holds nothing any more.
 */
static int
is_alive(DB_ENV *env, pid_t pid, db_threadid_t tid, u_int32_t flags)
{
	int i, alive;

	(void)env;
	(void)tid;
	(void)flags;
	if (pid == (alive_memo.on ? alive_memo.self : getpid()))
		return 1;
	for (i = 0; alive_memo.on && i < alive_memo.n; i++)
		if (alive_memo.pid[i] == pid)
			return alive_memo.alive[i];
	alive = pid_alive(pid);
	if (alive_memo.on && alive_memo.n < (int)(sizeof(alive_memo.pid) / sizeof(pid_t))) {
		alive_memo.pid[alive_memo.n] = pid;
		alive_memo.alive[alive_memo.n++] = (char)alive;
	}
	return alive;
}

/* Joins dir and name into out (cleared first).  Returns 0 or -1. */
static int
path_join(struct sg_buf *out, const char *dir, const char *name)
{
	sg_buf_reset(out);
	return sg_buf_addf(out, "%s/%s", dir, name);
}

/* Opens dir/name with flags (mode FILE_MODE); returns the descriptor or -1. */
static int
file_open(const char *dir, const char *name, int flags)
{
	struct sg_buf file;
	int fd = -1;

	sg_buf_init(&file, 4096);
	if (path_join(&file, dir, name) == 0)
		fd = open(sg_buf_str(&file), flags | O_CLOEXEC, FILE_MODE);
	else
		errno = ENAMETOOLONG;
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
	/* Only table creation can wait for a lock; a deadlock there is retried. */
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

/* Creates and configures e's environment handle; returns a DB error. */
static int
env_handle(struct sg_store_env *e, const char **what)
{
	int ret;

	*what = "environment";
	if ((ret = db_env_create(&e->env, 0)) != 0) {
		e->env = NULL;
		return ret;
	}
	return env_configure(e->env, what);
}

/* Closes a table handle that failed to open and aborts its transaction. */
static void
table_discard(struct sg_store_env *e, DB *db, DB_TXN *txn)
{
	int ret = 0;

	if (db != NULL)
		CALL(e, ret, db->close(db, 0));
	if (txn != NULL)
		CALL(e, ret, txn->abort(txn));
	(void)ret;
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
		return sg_error_set(err, 500, "store %s: table %d has no file", e->path, (int)t);
	for (tries = 1;; tries++) {
		db = NULL;
		txn = NULL;
		CALL(e, ret, e->env->txn_begin(e->env, NULL, &txn, DB_TXN_NOWAIT));
		if (ret == 0)
			CALL(e, ret, db_create(&db, e->env, 0));
		if (ret == 0)
			CALL(e, ret,
				db->open(db, txn, table_files[t], NULL, DB_BTREE, DB_CREATE,
					FILE_MODE));
		if (ret == 0) {
			CALL(e, ret, txn->commit(txn, 0));
			txn = NULL;
			if (ret == 0)
				break;
		}
		table_discard(e, db, txn);
		if ((ret != DB_LOCK_DEADLOCK && ret != DB_LOCK_NOTGRANTED) ||
			tries == TABLE_OPEN_TRIES)
			return eresult(e, ret, table_files[t], err);
		nanosleep(&pause, NULL);
	}
	e->db[t] = db;
	return SG_STORE_OK;
}

/*
 * Unmaps the region files of dir that this process still maps.  Closing a
 * panicked environment leaves its regions mapped, and their pages, which
 * recovery has already unlinked, would stay resident for good: several
 * MiB per recovery.  Nothing uses them any more (the handle is never
 * touched again, and a process has one handle per directory), so they
 * are unmapped here, as listed in /proc/self/maps.
 */
static void
regions_unmap(const char *dir)
{
	char line[4096 + 128], *p, *end;
	unsigned long long lo, hi;
	size_t dlen;
	FILE *maps;

	if (dir == NULL || (maps = fopen("/proc/self/maps", "re")) == NULL)
		return;
	dlen = strlen(dir);
	while (fgets(line, sizeof(line), maps) != NULL) {
		/* "lo-hi perms offset dev inode   path[ (deleted)]" */
		if ((p = strchr(line, '/')) == NULL || strncmp(p, dir, dlen) != 0 ||
			strncmp(p + dlen, "/__db.", 6) != 0)
			continue;
		errno = 0;
		lo = strtoull(line, &end, 16);
		if (errno != 0 || *end != '-')
			continue;
		hi = strtoull(end + 1, &end, 16);
		if (errno != 0 || *end != ' ' || hi <= lo)
			continue;
		munmap((void *)(uintptr_t)lo, (size_t)(hi - lo));
	}
	fclose(maps);
}

/* Closes a table of a healthy environment (the watchdog may find it is not). */
static void
table_close(struct sg_store_env *e, DB *db)
{
	int ret;

	CALL(e, ret, db->close(db, 0));
	(void)ret;
}

static void
bdb_close(struct sg_store_env *e)
{
	int t;

	if (e == NULL)
		return;
	for (t = 0; t < SG_TABLE_COUNT && !e->panicked; t++)
		if (e->db[t] != NULL) {
			table_close(e, e->db[t]);
			e->db[t] = NULL;
		}
	/*
	 * An environment that needs recovery is closed through the library's
	 * panic path, which writes nothing and takes no mutex (a dead process
	 * may hold one): it closes the files, leaves the registry, and leaves
	 * the handles' memory and mappings behind, a small leak per recovery.
	 */
	if (e->panicked && e->env != NULL) {
		e->env->set_errcall(e->env, on_error_closing);
		e->env->set_flags(e->env, DB_PANIC_ENVIRONMENT, 1);
		for (t = 0; t < SG_TABLE_COUNT; t++)
			if (e->db[t] != NULL)
				e->db[t]->close(e->db[t], DB_NOSYNC);
	}
	if (e->env != NULL)
		e->env->close(e->env, 0);
	if (e->panicked)
		regions_unmap(e->realdir);
	if (e->regfd >= 0)
		close(e->regfd);
	if (e->regionfd >= 0)
		close(e->regionfd);
	if (e->openfd >= 0)
		close(e->openfd);
	if (e->recoverfd >= 0)
		close(e->recoverfd);
	if (e->backupfd >= 0)
		close(e->backupfd);
	free(e->scratch.data);
	free(e->realdir);
	free(e->path);
	free(e);
}

/*
 * Opens the environment and its tables.  With hold_open, the handle holds
 * OPEN_LOCK shared for its lifetime (waiting while a verification runs);
 * without, the caller holds it exclusively.
 */
static int
env_open(const char *path, int hold_open, struct sg_store_env **out, struct sg_error *err)
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
	e->openfd = e->recoverfd = e->backupfd = e->regionfd = e->regfd = -1;
	snprintf(e->self, sizeof(e->self), "%24lu\n", (unsigned long)getpid());
	stall_init();
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
	if ((e->realdir = realpath(path, NULL)) == NULL) {
		sys_fail(path, "realpath", err);
		goto fail;
	}
	if (hold_open && (e->openfd = file_open(path, OPEN_LOCK, O_RDWR | O_CREAT)) < 0) {
		sys_fail(path, OPEN_LOCK, err);
		goto fail;
	}
	if ((e->recoverfd = file_open(path, RECOVER_LOCK, O_RDWR | O_CREAT)) < 0) {
		sys_fail(path, RECOVER_LOCK, err);
		goto fail;
	}
	if ((e->backupfd = file_open(path, BACKUP_LOCK, O_RDWR | O_CREAT)) < 0) {
		sys_fail(path, BACKUP_LOCK, err);
		goto fail;
	}
	if (hold_open && lock_take(e->openfd, LOCK_SH) != 0) {
		sys_fail(path, OPEN_LOCK, err);
		goto fail;
	}
	/*
	 * Not under the watchdog: leaving the open half done would leave this
	 * process registered for good.  It takes no mutex of a dead process:
	 * when the registry shows one, the open recovers instead of joining.
	 */
	if ((ret = env_handle(e, &what)) == 0) {
		what = "open environment";
		ret = e->env->open(e->env, path, ENV_FLAGS, FILE_MODE);
	}
	if (ret != 0) {
		rc = eresult(e, ret, what, err);
		goto fail;
	}
	if ((e->regionfd = file_open(path, REGION_FILE, O_RDONLY)) < 0 ||
		(e->regfd = file_open(path, REGISTRY_FILE, O_RDONLY)) < 0)
		sg_log(SG_LOG_WARN, "store %s: stall watchdog without evidence: %s", path,
			strerror(errno));
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
bdb_begin(struct sg_store_env *e, struct sg_store_etxn **out, struct sg_error *err)
{
	DB_TXN *txn;
	int ret;

	*out = NULL;
	txn = NULL;
	CALL(e, ret, e->env->txn_begin(e->env, NULL, &txn, DB_TXN_NOWAIT));
	if (ret != 0)
		return eresult(e, ret, "begin", err);
	*out = (struct sg_store_etxn *)(void *)txn;
	return SG_STORE_OK;
}

/*
 * Flushes to disk the log files that may hold a commit just written.
 * Berkeley DB would fsync holding its log flush mutex, the longest hold
 * of all, and a process killed there leaves every process that flushes
 * waiting; so commits only write the log (DB_TXN_WRITE_NOSYNC) and
 * durable ones then flush the current log file, and the one before in
 * case the log just moved on, holding nothing.
 */
static int
log_sync(struct sg_store_env *e, struct sg_error *err)
{
	char name[4096];
	DB_LOG_STAT *ls;
	DB_LSN lsn;
	u_int32_t cur;
	int fd, ret;

	ls = NULL;
	CALL(e, ret, e->env->log_stat(e->env, &ls, 0));
	if (ret != 0)
		return eresult(e, ret, "log state", err);
	cur = ls->st_cur_file;
	free(ls);
	for (lsn.file = cur > 1 ? cur - 1 : cur; lsn.file <= cur; lsn.file++) {
		lsn.offset = 0;
		CALL(e, ret, e->env->log_file(e->env, &lsn, name, sizeof(name)));
		if (ret != 0)
			return eresult(e, ret, "log file name", err);
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
bdb_commit(struct sg_store_env *e, struct sg_store_etxn *t, unsigned flags, struct sg_error *err)
{
	int ret;

	CALL(e, ret, txn_of(t)->commit(txn_of(t), DB_TXN_WRITE_NOSYNC));
	if (ret != 0)
		return eresult(e, ret, "commit", err);
	if (flags & SG_TXN_DURABLE)
		return log_sync(e, err);
	return SG_STORE_OK;
}

static void
bdb_abort(struct sg_store_env *e, struct sg_store_etxn *t)
{
	int ret;

	CALL(e, ret, txn_of(t)->abort(txn_of(t)));
	if (ret == DB_RUNRECOVERY)
		e->panicked = 1;
	else if (ret != 0)
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
bdb_get(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab, const struct sg_key *k,
	unsigned flags, struct sg_buf *val, struct sg_error *err)
{
	DBT key;
	int ret;

	key_dbt(&key, k);
	e->scratch.flags = DB_DBT_REALLOC;
	CALL(e, ret,
		e->db[tab]->get(e->db[tab], txn_of(t), &key, &e->scratch,
			(flags & SG_GET_FOR_UPDATE) ? DB_RMW : 0));
	if (ret == DB_NOTFOUND || ret == DB_KEYEMPTY)
		return SG_STORE_NOTFOUND;
	if (ret != 0)
		return eresult(e, ret, table_files[tab], err);
	if (sg_buf_add(val, e->scratch.data, e->scratch.size) != 0) {
		sg_log(SG_LOG_ERR, "store %s: %s: value of %lu bytes does not fit", e->path,
			table_files[tab], (unsigned long)e->scratch.size);
		return sg_error_set(err, 500, "store %s: %s: value larger than %zu bytes", e->path,
			table_files[tab], val->max);
	}
	return SG_STORE_OK;
}

static int
bdb_put(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab, const struct sg_key *k,
	const void *val, size_t n, struct sg_error *err)
{
	DBT key, data;
	int ret;

	key_dbt(&key, k);
	memset(&data, 0, sizeof(data));
	data.data = (void *)val;
	data.size = (u_int32_t)n;
	CALL(e, ret, e->db[tab]->put(e->db[tab], txn_of(t), &key, &data, 0));
	return eresult(e, ret, table_files[tab], err);
}

static int
bdb_del(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab, const struct sg_key *k,
	struct sg_error *err)
{
	DBT key;
	int ret;

	key_dbt(&key, k);
	CALL(e, ret, e->db[tab]->del(e->db[tab], txn_of(t), &key, 0));
	if (ret == DB_NOTFOUND || ret == DB_KEYEMPTY)
		return SG_STORE_NOTFOUND;
	return eresult(e, ret, table_files[tab], err);
}

/* The cursor state of a scan, kept in memory that a watchdog escape leaves intact. */
struct scan {
	DBC *cur;
	DBT key, data;
	struct sg_buf kb, vb;
};

/* Moves the cursor of s; the watchdog's jump lands here, not in the loop. */
static int
scan_step(struct sg_store_env *e, struct scan *s, u_int32_t how)
{
	int ret;

	CALL(e, ret, s->cur->get(s->cur, &s->key, &s->data, how));
	return ret;
}

/*
 * Walks the keys that start with prefix.  Each key and value is copied
 * into a NUL-terminated buffer before fn sees it, so fn may treat them as
 * strings and may call other store functions (which reuse e->scratch).
 */
static int
bdb_scan(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
	const struct sg_key *prefix, sg_scan_fn fn, void *arg, int *stop, struct sg_error *err)
{
	struct scan s;
	u_int32_t how;
	int rc, ret;

	memset(&s, 0, sizeof(s));
	*stop = 0;
	sg_buf_init(&s.kb, SG_KEY_MAX);
	sg_buf_init(&s.vb, SG_STORE_VALUE_MAX);
	s.key.flags = DB_DBT_REALLOC;
	s.data.flags = DB_DBT_REALLOC;
	rc = SG_STORE_FAIL;
	if (prefix->len > 0) {
		if ((s.key.data = malloc(prefix->len)) == NULL) {
			sys_fail(e->path, "scan", err);
			goto out;
		}
		memcpy(s.key.data, prefix->data, prefix->len);
		s.key.size = (u_int32_t)prefix->len;
	}
	CALL(e, ret, e->db[tab]->cursor(e->db[tab], txn_of(t), &s.cur, 0));
	if (ret != 0) {
		s.cur = NULL;
		rc = eresult(e, ret, table_files[tab], err);
		goto out;
	}
	how = prefix->len > 0 ? DB_SET_RANGE : DB_FIRST;
	for (;;) {
		ret = scan_step(e, &s, how);
		how = DB_NEXT;
		if (ret == DB_NOTFOUND)
			break;
		if (ret != 0) {
			rc = eresult(e, ret, table_files[tab], err);
			goto out;
		}
		if (s.key.size < prefix->len || memcmp(s.key.data, prefix->data, prefix->len) != 0)
			break;
		sg_buf_reset(&s.kb);
		sg_buf_reset(&s.vb);
		if (sg_buf_add(&s.kb, s.key.data, s.key.size) != 0 ||
			sg_buf_add(&s.vb, s.data.data, s.data.size) != 0) {
			sg_log(SG_LOG_ERR, "store %s: %s: record too large", e->path,
				table_files[tab]);
			sg_error_set(err, 500, "store %s: %s: record too large", e->path,
				table_files[tab]);
			rc = SG_STORE_FAIL;
			goto out;
		}
		rc = fn(sg_buf_str(&s.kb), s.kb.len, sg_buf_str(&s.vb), s.vb.len, arg);
		if (rc < 0)
			*stop = rc;
		if (rc != 0)
			break;
	}
	rc = SG_STORE_OK;
out:
	if (s.cur != NULL) {
		CALL(e, ret, s.cur->close(s.cur));
		if (ret != 0 && rc == SG_STORE_OK)
			rc = eresult(e, ret, table_files[tab], err);
	}
	free(s.key.data);
	free(s.data.data);
	sg_buf_free(&s.kb);
	sg_buf_free(&s.vb);
	return rc;
}

static int
bdb_failchk(struct sg_store_env *e, struct sg_error *err)
{
	int ret;

	/* Another process is checking: that is as good. */
	if (flock(e->recoverfd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK || errno == EINTR
			? SG_STORE_OK
			: sys_fail(e->path, RECOVER_LOCK, err);
	alive_memo.self = getpid();
	alive_memo.n = 0;
	alive_memo.on = 1;
	CALL(e, ret, e->env->failchk(e->env, 0));
	alive_memo.on = 0;
	/*
	 * A process died inside the library: the environment needs recovery.
	 * Marking it panicked tells every process at once; the next opener
	 * finds the dead process in the registry and recovers.
	 */
	if (ret == DB_RUNRECOVERY)
		e->env->set_flags(e->env, DB_PANIC_ENVIRONMENT, 1);
	flock(e->recoverfd, LOCK_UN);
	return eresult(e, ret, "failure check", err);
}

/* A checkpoint: forced, with the removal of unneeded logs, or when due. */
static int
checkpoint(struct sg_store_env *e, int force)
{
	int ret;

	if (force)
		CALL(e, ret, e->env->txn_checkpoint(e->env, 0, 0, DB_FORCE));
	else
		CALL(e, ret,
			e->env->txn_checkpoint(e->env, CHECKPOINT_KBYTES, CHECKPOINT_MINUTES, 0));
	if (ret == 0 && force)
		CALL(e, ret, e->env->log_archive(e->env, NULL, DB_ARCH_REMOVE));
	return ret;
}

static int
bdb_checkpoint(struct sg_store_env *e, int force, struct sg_error *err)
{
	int rc;

	if (flock(e->backupfd, LOCK_SH | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return sys_fail(e->path, BACKUP_LOCK, err);
		if (!force)
			return SG_STORE_OK;
		return sg_error_set(err, 503, "store %s: a backup is running", e->path);
	}
	rc = eresult(e, checkpoint(e, force), "checkpoint", err);
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
	struct dirent *de;
	DIR *d;
	int fd, rc = -1;

	if ((d = opendir(dir)) == NULL) {
		sys_fail(dir, "backup", err);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((fd = file_open(dir, de->d_name, O_RDONLY)) < 0 || fsync(fd) != 0) {
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
	closedir(d);
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
	if ((ret = env->open(env, dir,
		     DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL |
			     DB_PRIVATE | DB_RECOVER_FATAL,
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

/*
 * The copy itself is not under the watchdog: it may take long, and it
 * holds no mutex while it reads files.
 */
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
	if ((ret = checkpoint(e, 1)) != 0) {
		rc = eresult(e, ret, "backup checkpoint", err);
		goto out;
	}
	if ((ret = e->env->backup(e->env, dir, 0)) != 0) {
		rc = eresult(e, ret, "backup", err);
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
 * Checks the structure of every table file of path, whose environment
 * nobody has open and whose pages are all in the files.  Returns
 * SG_STORE_OK or SG_STORE_FAIL with err set.
 */
static int
verify_tables(const char *path, struct sg_error *err)
{
	struct sg_buf file;
	DB *db;
	int rc = SG_STORE_FAIL, ret, t;

	sg_buf_init(&file, 4096);
	for (t = 0; t < SG_TABLE_COUNT; t++) {
		if (path_join(&file, path, table_files[t]) != 0) {
			sg_error_set(err, 500, "store %s: path too long", path);
			goto out;
		}
		if ((ret = db_create(&db, NULL, 0)) != 0) {
			rc = result(path, ret, table_files[t], err);
			goto out;
		}
		db->set_errcall(db, on_error);
		/* verify destroys the handle whatever it returns. */
		if ((ret = db->verify(db, sg_buf_str(&file), NULL, NULL, 0)) != 0) {
			sg_log(SG_LOG_ERR, "store %s: verify %s: %s", path, table_files[t],
				db_strerror(ret));
			sg_error_set(err, 500, "store %s: verify %s: %s", path, table_files[t],
				db_strerror(ret));
			goto out;
		}
	}
	rc = SG_STORE_OK;
out:
	sg_buf_free(&file);
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
	int fd, rc, t;

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
	if ((fd = file_open(path, OPEN_LOCK, O_RDWR | O_CREAT)) < 0) {
		sys_fail(path, OPEN_LOCK, err);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			sg_error_set(err, 409, "store %s: in use (verify a backup of it instead)",
				path);
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
	rc = verify_tables(path, err);
out:
	bdb_close(e);
	if (fd >= 0)
		close(fd);
	sg_buf_free(&file);
	return rc;
}

/* Whether name is a file a restored store takes from a backup: a table or a log file. */
static int
restore_wanted(const char *name)
{
	int t;

	if (strncmp(name, "log.", 4) == 0)
		return 1;
	for (t = 0; t < SG_TABLE_COUNT; t++)
		if (strcmp(name, table_files[t]) == 0)
			return 1;
	return 0;
}

/* Copies the regular file dir/name into todir (a new file, FILE_MODE). */
static int
copy_file(const char *dir, const char *todir, const char *name, struct sg_error *err)
{
	char buf[65536];
	struct stat sb;
	ssize_t n, w, off;
	int in, out = -1, rc = -1;

	if ((in = file_open(dir, name, O_RDONLY)) < 0) {
		sys_fail(dir, name, err);
		return -1;
	}
	if (fstat(in, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		sg_error_set(err, 400, "store %s: %s is not a regular file", dir, name);
		goto out;
	}
	if ((out = file_open(todir, name, O_WRONLY | O_CREAT | O_EXCL)) < 0) {
		sys_fail(todir, name, err);
		goto out;
	}
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sys_fail(dir, name, err);
			goto out;
		}
		if (n == 0)
			break;
		for (off = 0; off < n; off += w) {
			w = write(out, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				w = 0;
			else if (w < 0) {
				sys_fail(todir, name, err);
				goto out;
			}
		}
	}
	rc = 0;
out:
	if (out >= 0 && close(out) != 0 && rc == 0)
		rc = sys_fail(todir, name, err);
	close(in);
	return rc;
}

/*
 * Copies the tables and log files of the store backup into todir;
 * refuses a directory that lacks a table.
 */
static int
restore_copy(const char *backup, const char *todir, struct sg_error *err)
{
	struct dirent *de;
	struct sg_buf file;
	struct stat sb;
	DIR *d;
	int t, rc = -1;

	sg_buf_init(&file, 4096);
	for (t = 0; t < SG_TABLE_COUNT; t++) {
		if (path_join(&file, backup, table_files[t]) != 0 ||
			stat(sg_buf_str(&file), &sb) != 0) {
			sg_error_set(err, 400, "%s: not a store backup (no %s)", backup,
				table_files[t]);
			goto out;
		}
	}
	if ((d = opendir(backup)) == NULL) {
		sys_fail(backup, "restore", err);
		goto out;
	}
	while ((de = readdir(d)) != NULL)
		if (restore_wanted(de->d_name) && copy_file(backup, todir, de->d_name, err) != 0) {
			closedir(d);
			goto out;
		}
	closedir(d);
	rc = 0;
out:
	sg_buf_free(&file);
	return rc;
}

/* Removes dir and the files in it (a store directory has no subdirectory). */
static void
remove_flat(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(fd, de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

/* Gives dir and every file in it the owner of want, and dir its mode. */
static int
restore_owner(const char *dir, const struct stat *want, struct sg_error *err)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = -1;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sys_fail(dir, "restore", err);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return sys_fail(dir, "restore", err);
	}
	if (want->st_uid != geteuid() || want->st_gid != getegid()) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (fchownat(fd, de->d_name, want->st_uid, want->st_gid,
				    AT_SYMLINK_NOFOLLOW) != 0)
				goto fail;
		}
		if (fchown(fd, want->st_uid, want->st_gid) != 0)
			goto fail;
	}
	if (fchmod(fd, want->st_mode & 07777) != 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	sg_error_set(err, 500,
		"store %s: cannot give the restored files the store's owner (%lu:%lu): %s "
		"(run as root or as that user)",
		dir, (unsigned long)want->st_uid, (unsigned long)want->st_gid, strerror(errno));
out:
	closedir(d);
	return rc;
}

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/*
 * Puts the directory from in place of the directory to, and to's old
 * contents at from: one atomic exchange where the file system offers it,
 * else two renames.
 */
static int
exchange_dirs(const char *from, const char *to, struct sg_error *err)
{
	struct sg_buf aside;
	int rc = -1;

	if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return sys_fail(to, "restore rename", err);
	sg_buf_init(&aside, 4096);
	if (sg_buf_addf(&aside, "%s.old", from) != 0) {
		sg_error_set(err, 500, "store %s: path too long", to);
		goto out;
	}
	if (rename(to, sg_buf_str(&aside)) != 0) {
		sys_fail(to, "restore rename", err);
		goto out;
	}
	if (rename(from, to) != 0) {
		sys_fail(to, "restore rename", err);
		rename(sg_buf_str(&aside), to);
		goto out;
	}
	if (rename(sg_buf_str(&aside), from) != 0) {
		sys_fail(from, "restore rename", err);
		goto out;
	}
	rc = 0;
out:
	sg_buf_free(&aside);
	return rc;
}

/* Flushes the directory entry changes of the parent of path. */
static void
parent_sync(const char *path)
{
	struct sg_buf dir;
	char *slash;
	int fd;

	sg_buf_init(&dir, 4096);
	if (sg_buf_add(&dir, path, strlen(path)) == 0) {
		slash = strrchr(dir.data, '/');
		if (slash == dir.data)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
		if ((fd = open(slash != NULL ? sg_buf_str(&dir) : ".",
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	sg_buf_free(&dir);
}

/*
 * Restores the store at path from the backup directory backup.  The
 * current store, when there is one, must be unused; its contents are
 * discarded once the restored store is in place.
 */
static int
bdb_restore(const char *backup, const char *path, struct sg_error *err)
{
	struct sg_buf tmp;
	struct stat sb, want;
	int fd = -1, have_store, made = 0, rc = SG_STORE_FAIL;

	sg_buf_init(&tmp, 4096);
	if (stat(path, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode)) {
			sg_error_set(err, 500, "store %s: not a directory", path);
			goto out;
		}
		have_store = 1;
		want = sb;
		if ((fd = file_open(path, OPEN_LOCK, O_RDWR | O_CREAT)) < 0) {
			sys_fail(path, OPEN_LOCK, err);
			goto out;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno == EWOULDBLOCK)
				sg_error_set(err, 409,
					"store %s: in use (stop every program using it first)",
					path);
			else
				sys_fail(path, OPEN_LOCK, err);
			goto out;
		}
	} else if (errno == ENOENT) {
		have_store = 0;
		memset(&want, 0, sizeof(want));
		want.st_uid = geteuid();
		want.st_gid = getegid();
		want.st_mode = S_IFDIR | DIR_MODE;
	} else {
		sys_fail(path, "stat", err);
		goto out;
	}
	/* Beside the store, so that the final rename stays on one file system. */
	if (sg_buf_addf(&tmp, "%s.restore-XXXXXX", path) != 0) {
		sg_error_set(err, 500, "store %s: path too long", path);
		goto out;
	}
	if (mkdtemp(tmp.data) == NULL) {
		sys_fail(path, "restore mkdtemp", err);
		goto out;
	}
	made = 1;
	if (restore_copy(backup, sg_buf_str(&tmp), err) != 0 ||
		backup_recover(sg_buf_str(&tmp), err) != SG_STORE_OK ||
		verify_tables(sg_buf_str(&tmp), err) != SG_STORE_OK ||
		restore_owner(sg_buf_str(&tmp), &want, err) != 0 ||
		dir_sync(sg_buf_str(&tmp), err) != 0)
		goto out;
	if (have_store) {
		if (exchange_dirs(sg_buf_str(&tmp), path, err) != 0)
			goto out;
	} else if (rename(sg_buf_str(&tmp), path) != 0) {
		sys_fail(path, "restore rename", err);
		goto out;
	}
	parent_sync(path);
	/* tmp now holds the replaced store (or nothing). */
	rc = SG_STORE_OK;
out:
	if (made)
		remove_flat(sg_buf_str(&tmp));
	if (fd >= 0)
		close(fd);
	sg_buf_free(&tmp);
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
	.restore = bdb_restore,
};
