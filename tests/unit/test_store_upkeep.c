/*
 * test_store_upkeep.c: the store stays bounded while sessions come and go.
 *
 * Two processes create SG_UPKEEP_SESSIONS sessions in all (default
 * 200,000), each in its own transaction, with a TTL of one second, and
 * after every creation call sg_app_upkeep, as the programs do after
 * each login: its sampled purge removes the sessions that have expired
 * meanwhile.  Nothing else tidies the store: checkpoints and the removal
 * of old log files ride on the commits (store.c's upkeep).  The parent
 * samples the size of the store directory throughout and prints it.
 *
 * The bound, STORE_BOUND_BYTES (32 MiB), is what the store may hold when
 * it works as designed, with room to spare (measured: about 15 MiB at the
 * largest, 11 MiB at the end):
 *   - region files: a 1 MiB cache (1.25 MiB as Berkeley DB counts it), a
 *     256 KiB log buffer, lock and transaction tables: about 7 MiB;
 *   - log files of 4 MiB each: a checkpoint is due after every 1 MiB of
 *     log (store.c looks every 1000 writing commits of a process), and
 *     Berkeley DB removes a log file once no checkpoint needs it, so one
 *     to three of them at a time, 12 MiB;
 *   - the tables: a few seconds' worth of live sessions (those created
 *     within the TTL plus what the purge has not reached yet) with their
 *     user and expiry index entries, a few MiB; the B-tree pages that
 *     purged sessions free are reused, not appended.
 * A store whose old log files were never removed, or whose purge fell
 * behind, would pass the bound well before the end: the test also checks
 * that the log written in all (log files are numbered) exceeds the bound.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "error.h"
#include "log.h"
#include "session.h"
#include "store.h"
#include "tap.h"
#include "testutil.h"

#define PROCS 2
#define SESSIONS_DEFAULT 200000L
#define STORE_BOUND_BYTES (32LL * 1024 * 1024)
/* Sampling period of the directory size, in milliseconds. */
#define SAMPLE_MS 200
#define DB_NAME "db"
/* Size of one log file (store_bdb.c's LOG_FILE_BYTES). */
#define LOG_FILE_BYTES (4LL * 1024 * 1024)

static char tmpdir[4096];
static char storedir[4200];

/*
 * Adds up the apparent sizes of the files of dir (region files may be
 * sparse, so this is the larger of the two usual measures); also counts
 * the log files.  Files removed while the directory is read are skipped.
 */
static long long
dir_size(const char *dir, int *logs, long *last_log)
{
	char path[8192];
	struct dirent *de;
	struct stat sb;
	long long total = 0;
	DIR *d;

	*logs = 0;
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &sb) != 0)
			continue;
		total += (long long)sb.st_size;
		if (strncmp(de->d_name, "log.", 4) == 0) {
			(*logs)++;
			if (strtol(de->d_name + 4, NULL, 10) > *last_log)
				*last_log = strtol(de->d_name + 4, NULL, 10);
		}
	}
	closedir(d);
	return total;
}

struct create_arg {
	char user[32];
	time_t now;
	struct sg_session s;
};

static int
create_txn(struct sg_txn *txn, void *arg)
{
	struct create_arg *a = arg;

	return sg_session_create(txn, DB_NAME, a->user, 1, a->now, &a->s);
}

/* A child: creates n sessions, with the programs' upkeep after each. */
static int
child(int id, long n)
{
	struct sg_app app;
	struct create_arg a;
	struct sg_error err;
	char logpath[4300];
	FILE *fp;
	long i;

	snprintf(logpath, sizeof(logpath), "%s/child%d.log", tmpdir, id);
	if ((fp = freopen(logpath, "a", stderr)) == NULL)
		return 2;
	sg_log_open("upkeep", 0, SG_LOG_WARN);
	memset(&app, 0, sizeof(app));
	app.program = "test_store_upkeep";
	sg_error_clear(&err);
	if (sg_store_open(storedir, &app.store, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.reason);
		return 3;
	}
	memset(&a, 0, sizeof(a));
	for (i = 0; i < n; i++) {
		/* A few hundred users, so the per-user index has some depth. */
		snprintf(a.user, sizeof(a.user), "user%d-%ld", id, i % 300);
		a.now = time(NULL);
		if (sg_store_run(app.store, 0, create_txn, &a, &err) != SG_STORE_OK) {
			fprintf(stderr, "session %ld: %s\n", i, err.reason);
			sg_store_close(app.store);
			return 4;
		}
		sg_app_upkeep(&app);
	}
	sg_store_close(app.store);
	return 0;
}

struct count_arg {
	long n;
};

static int
count_fn(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	((struct count_arg *)arg)->n++;
	return 0;
}

static int
count_txn(struct sg_txn *txn, void *arg)
{
	struct sg_key prefix;

	sg_key_make(&prefix, DB_NAME, NULL);
	return sg_store_scan(txn, SG_TABLE_SESSIONS, &prefix, count_fn, arg);
}

static long
env_long(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 ? v : def;
}

int
main(void)
{
	struct timespec pause = {0, SAMPLE_MS * 1000000L};
	struct sg_store *st = NULL;
	struct sg_error err;
	struct count_arg ca;
	pid_t pids[PROCS];
	long sessions, per, last_log = 0;
	long long size, max_size = 0;
	int i, logs, max_logs = 0, running, status, failed_children = 0;
	unsigned long removed = 0;
	time_t start;

	sessions = env_long("SG_UPKEEP_SESSIONS", SESSIONS_DEFAULT);
	per = sessions / PROCS;
	snprintf(tmpdir, sizeof(tmpdir), "%s/sg-upkeep-XXXXXX",
		getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(storedir, sizeof(storedir), "%s/store", tmpdir);
	sg_log_open("test_store_upkeep", 0, SG_LOG_WARN);
	sg_error_clear(&err);

	/* Creates the store before the children race to. */
	tap_ok(sg_store_open(storedir, &st, &err) == 0, "store opens");
	sg_store_close(st);
	st = NULL;

	start = time(NULL);
	for (i = 0; i < PROCS; i++) {
		fflush(stdout);
		if ((pids[i] = fork()) == 0)
			_exit(child(i, per));
	}
	running = PROCS;
	while (running > 0) {
		nanosleep(&pause, NULL);
		size = dir_size(storedir, &logs, &last_log);
		if (size > max_size)
			max_size = size;
		if (logs > max_logs)
			max_logs = logs;
		for (i = 0; i < PROCS; i++) {
			if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					failed_children++;
				pids[i] = 0;
				running--;
			}
		}
	}
	size = dir_size(storedir, &logs, &last_log);
	printf("# %ld sessions created and expired in %lds by %d processes\n", per * PROCS,
		(long)(time(NULL) - start), PROCS);
	printf("# store directory: largest %lld bytes (%.1f MiB, up to %d log files), "
	       "at the end %lld bytes (%.1f MiB, %d log files); bound %lld MiB\n",
		max_size, max_size / 1048576.0, max_logs, size, size / 1048576.0, logs,
		STORE_BOUND_BYTES / 1048576);
	printf("# log written in all: about %lld MiB (%ld log files)\n",
		last_log * LOG_FILE_BYTES / 1048576, last_log);
	tap_is_int(failed_children, 0, "every process created its sessions");
	tap_ok(max_size > 0 && max_size < STORE_BOUND_BYTES,
		"the store directory stayed under the bound throughout");
	tap_ok(size < STORE_BOUND_BYTES, "the store directory is under the bound at the end");
	if (sessions >= SESSIONS_DEFAULT)
		tap_ok(last_log * LOG_FILE_BYTES > 2 * STORE_BOUND_BYTES,
			"the log written is more than twice the bound: its removal counted");

	/* What the sampled purge left is gone after a full purge. */
	sleep(2);
	tap_ok(sg_store_open(storedir, &st, &err) == 0, "store opens again");
	if (st != NULL) {
		tap_ok(sg_session_purge(st, time(NULL), 1, &removed, &err) == 0, "full purge");
		printf("# the full purge removed %lu sessions the sampled one had not\n", removed);
		ca.n = 0;
		tap_ok(sg_store_run(st, 0, count_txn, &ca, &err) == SG_STORE_OK,
			"sessions counted");
		tap_is_int(ca.n, 0, "no session is left");
		sg_store_close(st);
	}
	tap_ok(sg_store_verify(storedir, &err) == 0, "the store verifies");
	if (tap_failed == 0)
		test_remove_tree(tmpdir);
	else
		printf("# store kept in %s\n", tmpdir);
	return tap_done();
}
