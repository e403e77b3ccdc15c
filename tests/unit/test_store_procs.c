/*
 * test_store_procs.c: the store shared by several processes.
 *
 * (a) Eight processes run read-modify-write transactions on a few shared
 *     counters, each with an insert of a unique key, for SG_STRESS_SECONDS
 *     (default 3); every commit is reported to the parent over a pipe.
 *     Afterwards each counter equals the number of reported increments,
 *     the unique keys are exactly the reported ones, and no process saw
 *     anything but retries.  A hot backup taken halfway verifies and is
 *     consistent (its counters add up to its keys).
 * (b) A writer is killed with SIGKILL at random moments, round after
 *     round, first alone and then beside a live process that keeps its
 *     handle open and keeps working.  A victim killed inside Berkeley DB
 *     can leave a region mutex held; a live process blocked on it is freed
 *     by the store's stall watchdog and reopens the environment.  After
 *     every kill the same live process commits again within
 *     PROGRESS_TIMEOUT_MS.  Afterwards a fresh open works, every commit
 *     reported before a kill is there, and the store verifies.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "store.h"
#include "tap.h"
#include "testutil.h"

#define STRESS_PROCS 8
#define COUNTERS 3
#define KILL_ROUNDS_ALONE 3
#define KILL_ROUNDS_BESIDE 8
/*
 * How long the live process may take to commit again after a kill: a
 * recovery, or the store's stall watchdog (a few seconds), fits in it.
 */
#define PROGRESS_TIMEOUT_MS 20000

static char tmpdir[4096];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes one report line to the parent; lines are short, so writes are atomic. */
static void
report(int fd, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) != n)
		_exit(90);
}

/* Sends a child's log lines to a file of the test directory. */
static void
log_to(const char *name)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600)) >= 0) {
		dup2(fd, 2);
		close(fd);
	}
	sg_log_open("child", 0, SG_LOG_INFO);
}

/* ---- the parent's view of the reports ---- */

struct strset {
	char **v;
	size_t n, cap;
};

static void
strset_add(struct strset *s, const char *str)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (s->v == NULL)
			abort();
	}
	if ((s->v[s->n++] = strdup(str)) == NULL)
		abort();
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
strset_sort(struct strset *s)
{
	if (s->n > 0)
		qsort(s->v, s->n, sizeof(*s->v), cmpstr);
}

static int
strset_has(const struct strset *s, const char *str)
{
	return s->n > 0 && bsearch(&str, s->v, s->n, sizeof(*s->v), cmpstr) != NULL;
}

static void
strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

struct tally {
	struct strset acked;       /* unique keys whose commit was reported */
	long increments[COUNTERS]; /* reported increments per counter */
	long shared;               /* reported increments of the shared counter */
	long unknown;              /* commits whose outcome was unknown */
	long failures;             /* anything else that failed */
	int done;                  /* children that finished cleanly */
	char first_failure[600];
};

/* Parses one report line: "A key counter", "U", "F reason", "D". */
static void
tally_line(struct tally *t, char *line)
{
	char *key, *num;
	long k;

	switch (line[0]) {
	case 'A':
		key = line + 2;
		if (line[1] != ' ' || (num = strchr(key, ' ')) == NULL)
			break;
		*num++ = '\0';
		strset_add(&t->acked, key);
		k = strtol(num, NULL, 10);
		if (k >= 0 && k < COUNTERS)
			t->increments[k]++;
		else if (k == COUNTERS)
			t->shared++;
		break;
	case 'U':
		t->unknown++;
		break;
	case 'F':
		if (t->failures++ == 0)
			snprintf(t->first_failure, sizeof(t->first_failure), "%.500s", line);
		break;
	case 'D':
		t->done++;
		break;
	}
}

struct reader {
	int fd; /* -1 once at end of file */
	char buf[8192];
	size_t len;
	long lines;
};

/* Reads what is there; returns 0 at end of file, 1 otherwise. */
static int
reader_pump(struct reader *r, struct tally *t)
{
	ssize_t n;
	char *nl, *p;

	if (r->fd < 0)
		return 0;
	n = read(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0) {
		close(r->fd);
		r->fd = -1;
		return 0;
	}
	r->len += (size_t)n;
	r->buf[r->len] = '\0';
	p = r->buf;
	while ((nl = strchr(p, '\n')) != NULL) {
		*nl = '\0';
		tally_line(t, p);
		r->lines++;
		p = nl + 1;
	}
	r->len -= (size_t)(p - r->buf);
	memmove(r->buf, p, r->len);
	return 1;
}

/* Reads from every open reader until deadline (monotonic ms) or until all end. */
static void
pump_until(struct reader **rs, int n, struct tally *t, int64_t deadline)
{
	struct pollfd pfd[16];
	int i, m, wait;

	for (;;) {
		for (i = m = 0; i < n; i++)
			if (rs[i]->fd >= 0) {
				pfd[m].fd = rs[i]->fd;
				pfd[m].events = POLLIN;
				m++;
			}
		wait = (int)(deadline - now_ms());
		if (m == 0 || wait < 0)
			return;
		if (poll(pfd, (nfds_t)m, wait) <= 0)
			continue;
		for (i = 0; i < n; i++)
			if (rs[i]->fd >= 0)
				reader_pump(rs[i], t);
	}
}

/* Starts a child running fn(arg, write end); returns its pid and the read end. */
static pid_t
spawn(void (*fn)(void *, int), void *arg, struct reader *r)
{
	int p[2];
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == 0) {
		close(p[0]);
		fn(arg, p[1]);
		_exit(0);
	}
	close(p[1]);
	memset(r, 0, sizeof(*r));
	r->fd = p[0];
	if (pid < 0) {
		close(p[0]);
		r->fd = -1;
	}
	return pid;
}

/* ---- transaction bodies ---- */

struct work {
	const char *unique; /* key part of the unique record */
	int counter;        /* which counter (COUNTERS: the shared one) */
	int order;          /* 0: counter first, 1: insert first */
	int plain_read;     /* read the counter without FOR_UPDATE */
};

static int
bump(struct sg_txn *txn, const struct work *w)
{
	struct sg_buf v;
	struct sg_key k;
	char name[32], num[32];
	long n = 0;
	int rc;

	snprintf(name, sizeof(name), "counter%d", w->counter);
	sg_key_make(&k, "db", name, (char *)NULL);
	sg_buf_init(&v, 64);
	rc = sg_store_get(txn, SG_TABLE_STATES, &k, w->plain_read ? 0 : SG_GET_FOR_UPDATE, &v);
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

static int
insert(struct sg_txn *txn, const struct work *w)
{
	struct sg_key k;
	char val[32];

	snprintf(val, sizeof(val), "%d", w->counter);
	sg_key_make(&k, "db", w->unique, (char *)NULL);
	return sg_store_put(txn, SG_TABLE_SESSIONS, &k, val, strlen(val));
}

static int
work_fn(struct sg_txn *txn, void *arg)
{
	const struct work *w = arg;
	int rc;

	if (w->order == 0) {
		if ((rc = bump(txn, w)) != SG_STORE_OK)
			return rc;
		return insert(txn, w);
	}
	if ((rc = insert(txn, w)) != SG_STORE_OK)
		return rc;
	return bump(txn, w);
}

static int
count_record(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(long *)arg)++;
	return 0;
}

static int
scan_fn(struct sg_txn *txn, void *arg)
{
	struct sg_key k;

	*(long *)arg = 0;
	sg_key_make(&k, "db", (char *)NULL);
	return sg_store_scan(txn, SG_TABLE_STATES, &k, count_record, arg);
}

/*
 * Runs one unit of work and reports it: "A key counter" once committed,
 * "U" when the outcome is unknown, "F ..." for any other failure.
 */
static void
work_once(struct sg_store *st, int fd, struct work *w, unsigned flags)
{
	struct sg_error err;
	int rc;

	sg_error_clear(&err);
	rc = sg_store_run(st, flags, work_fn, w, &err);
	if (rc == SG_STORE_OK)
		report(fd, "A %s %d\n", w->unique, w->counter);
	else if (rc == SG_STORE_FAIL && strstr(err.reason, "outcome is unknown") != NULL)
		report(fd, "U\n");
	else
		report(fd, "F %s rc=%d status=%d %s\n", w->unique, rc, err.status, err.reason);
}

static long
count_lines(const char *name, const char *needle)
{
	char path[4200], line[2048];
	long n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

/* The largest N of the "committed after N tries" lines of a log. */
static long
most_tries(const char *name)
{
	char path[4200], line[2048];
	const char *p;
	long n, most = 1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if ((p = strstr(line, "committed after ")) != NULL &&
			(n = strtol(p + 16, NULL, 10)) > most)
			most = n;
	fclose(f);
	return most;
}

/* ---- (a) eight processes on the same keys ---- */

struct stress_arg {
	const char *path;
	int id;
	int64_t until;
};

static void
stress_child(void *argp, int fd)
{
	struct stress_arg *a = argp;
	struct sg_store *st;
	struct sg_error err;
	struct work w;
	char unique[64];
	long seq, rows;
	unsigned r;

	log_to("stress.log");
	/* Debug lines say how many tries each contended commit took. */
	sg_log_open("child", 0, SG_LOG_DEBUG);
	r = (unsigned)getpid() * 2654435761U;
	if (sg_store_open(a->path, &st, &err) != 0) {
		report(fd, "F open %s\n", err.reason);
		_exit(1);
	}
	for (seq = 0; now_ms() < a->until; seq++) {
		r = r * 1103515245U + 12345U;
		snprintf(unique, sizeof(unique), "u-%d-%06ld", a->id, seq);
		w.unique = unique;
		w.counter = (int)((r >> 8) % COUNTERS);
		w.order = (int)(seq & 1);
		w.plain_read = seq % 7 == 3;
		work_once(st, fd, &w, seq % 10 == 0 ? SG_TXN_DURABLE : 0);
		if (seq % 50 == 25) {
			sg_error_clear(&err);
			if (sg_store_run(st, 0, scan_fn, &rows, &err) != SG_STORE_OK)
				report(fd, "F scan %s\n", err.reason);
		}
	}
	sg_store_close(st);
	report(fd, "D\n");
	_exit(0);
}

/* Reads the whole store: unique keys into keys, counters into counters[]. */
struct snapshot {
	struct strset keys;
	long counters[COUNTERS + 1];
};

static int
snap_key(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct strset *keys = arg;

	(void)val;
	(void)vlen;
	/* "db\0<unique>\0" */
	if (klen > 3)
		strset_add(keys, key + 3);
	return 0;
}

static int
snap_counter(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct snapshot *s = arg;
	long k;

	(void)vlen;
	if (klen < 3 + 8 || strncmp(key + 3, "counter", 7) != 0)
		return 0;
	k = strtol(key + 3 + 7, NULL, 10);
	if (k >= 0 && k <= COUNTERS)
		s->counters[k] = strtol(val, NULL, 10);
	return 0;
}

static int
snapshot_fn(struct sg_txn *txn, void *arg)
{
	struct snapshot *s = arg;
	struct sg_key k;
	int rc;

	strset_free(&s->keys);
	memset(s->counters, 0, sizeof(s->counters));
	sg_key_make(&k, "db", (char *)NULL);
	if ((rc = sg_store_scan(txn, SG_TABLE_SESSIONS, &k, snap_key, &s->keys)) != 0)
		return rc;
	return sg_store_scan(txn, SG_TABLE_STATES, &k, snap_counter, s);
}

static int
take_snapshot(const char *path, struct snapshot *s)
{
	struct sg_store *st;
	struct sg_error err;
	int rc;

	sg_error_clear(&err);
	if (sg_store_open(path, &st, &err) != 0) {
		printf("#   open: %s\n", err.reason);
		return -1;
	}
	rc = sg_store_run(st, 0, snapshot_fn, s, &err);
	if (rc != SG_STORE_OK)
		printf("#   snapshot: %s\n", err.reason);
	sg_store_close(st);
	strset_sort(&s->keys);
	return rc;
}

/* Counts the acked keys missing from the snapshot (printing the first few). */
static long
missing_keys(const struct tally *t, const struct snapshot *s)
{
	long missing = 0;
	size_t i;

	for (i = 0; i < t->acked.n; i++)
		if (!strset_has(&s->keys, t->acked.v[i]) && missing++ < 5)
			printf("#   acknowledged key %s is missing\n", t->acked.v[i]);
	return missing;
}

static void
test_stress(int seconds)
{
	struct stress_arg args[STRESS_PROCS];
	struct reader readers[STRESS_PROCS], *rs[STRESS_PROCS];
	pid_t pids[STRESS_PROCS];
	struct snapshot snap, bsnap;
	struct sg_store *bst;
	struct sg_error err;
	struct tally t;
	char path[4200], backup[4200];
	int i, status, clean, backed_up = 0;
	long total;
	size_t k;

	memset(&t, 0, sizeof(t));
	memset(&snap, 0, sizeof(snap));
	memset(&bsnap, 0, sizeof(bsnap));
	snprintf(path, sizeof(path), "%s/stress", tmpdir);
	for (i = 0; i < STRESS_PROCS; i++) {
		args[i].path = path;
		args[i].id = i;
		args[i].until = now_ms() + seconds * 1000;
		pids[i] = spawn(stress_child, &args[i], &readers[i]);
		rs[i] = &readers[i];
	}
	/* A hot backup in the middle of the run. */
	snprintf(backup, sizeof(backup), "%s/stress-backup", tmpdir);
	pump_until(rs, STRESS_PROCS, &t, now_ms() + seconds * 1000 / 3);
	sg_error_clear(&err);
	bst = NULL;
	if (sg_store_open(path, &bst, &err) == 0)
		backed_up = sg_store_backup(bst, backup, &err) == 0;
	if (err.status != 0)
		printf("#   backup: %s\n", err.reason);
	sg_store_close(bst);
	pump_until(rs, STRESS_PROCS, &t, now_ms() + seconds * 1000 + 60000);
	clean = 1;
	for (i = 0; i < STRESS_PROCS; i++)
		if (pids[i] < 0 || waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
			WEXITSTATUS(status) != 0)
			clean = 0;
	tap_ok(clean, "eight processes ran and exited cleanly");
	tap_is_int(t.done, STRESS_PROCS, "every process finished its run");
	if (!tap_is_int(t.failures, 0, "no failure other than retries"))
		printf("#   first: %s\n", t.first_failure);
	tap_is_int(t.unknown, 0, "no commit of unknown outcome");
	tap_ok(t.acked.n > STRESS_PROCS * 10, "many transactions committed");
	printf("# %zu transactions committed by %d processes in %d s; the most tries one "
	       "took: %ld\n",
		t.acked.n, STRESS_PROCS, seconds, most_tries("stress.log"));

	tap_is_int(take_snapshot(path, &snap), SG_STORE_OK, "store reads after the run");
	strset_sort(&t.acked);
	tap_is_int(missing_keys(&t, &snap), 0, "every acknowledged insert is present");
	tap_is_int((long long)snap.keys.n, (long long)t.acked.n, "and nothing else was committed");
	total = 0;
	for (i = 0; i < COUNTERS; i++) {
		char name[64];

		snprintf(name, sizeof(name), "counter %d equals its committed increments", i);
		tap_is_int(snap.counters[i], t.increments[i], name);
		total += snap.counters[i];
	}
	tap_is_int(total, (long long)t.acked.n, "increments add up to the commits");

	/*
	 * Every transaction bumped one counter and inserted one key: a
	 * consistent copy holds as many keys as the counters add up to, all
	 * of them committed in the end.
	 */
	tap_ok(backed_up, "hot backup while eight processes write");
	sg_error_clear(&err);
	tap_is_int(sg_store_verify(backup, &err), 0, "the backup verifies");
	if (err.status != 0)
		printf("#   %s\n", err.reason);
	tap_is_int(take_snapshot(backup, &bsnap), SG_STORE_OK, "the backup opens as a store");
	total = 0;
	for (i = 0; i < COUNTERS; i++)
		total += bsnap.counters[i];
	/* It holds what was committed when its copy of the log ended. */
	tap_ok(bsnap.keys.n > 0 && bsnap.keys.n <= snap.keys.n, "it holds records of the run");
	printf("# the backup holds %zu of the %zu records\n", bsnap.keys.n, snap.keys.n);
	tap_is_int(total, (long long)bsnap.keys.n, "and is transactionally consistent");
	for (k = 0; k < bsnap.keys.n && strset_has(&snap.keys, bsnap.keys.v[k]); k++)
		continue;
	tap_is_int((long long)k, (long long)bsnap.keys.n, "every key in it was committed");
	strset_free(&bsnap.keys);
	strset_free(&snap.keys);
	strset_free(&t.acked);
}

/* ---- (b) SIGKILL ---- */

static volatile sig_atomic_t stop_live;

static void
on_usr1(int sig)
{
	(void)sig;
	stop_live = 1;
}

struct kill_arg {
	const char *path;
	const char *prefix; /* of the unique keys */
	unsigned flags;
};

/* Writes unique keys and bumps the shared counter until killed or told to stop. */
static void
writer_child(void *argp, int fd)
{
	struct kill_arg *a = argp;
	struct sg_store *st;
	struct sg_error err;
	struct work w;
	char unique[64];
	long seq;

	log_to(a->flags & SG_TXN_DURABLE ? "victims.log" : "live.log");
	if (sg_store_open(a->path, &st, &err) != 0) {
		report(fd, "F open %s\n", err.reason);
		_exit(1);
	}
	for (seq = 0; !stop_live; seq++) {
		snprintf(unique, sizeof(unique), "%s-%06ld", a->prefix, seq);
		w.unique = unique;
		w.counter = COUNTERS;
		w.order = (int)(seq & 1);
		w.plain_read = 0;
		work_once(st, fd, &w, a->flags | (seq % 4 == 0 ? SG_TXN_DURABLE : 0));
	}
	sg_store_close(st);
	report(fd, "D\n");
	_exit(0);
}

static void
test_kill(void)
{
	struct reader live_r, victim_r, *rs[2];
	struct kill_arg live, victim;
	struct snapshot snap;
	struct tally t;
	char path[4200], prefix[32];
	pid_t live_pid, pid;
	long before, working_rounds, progress_ok, extra;
	int round, rounds, status, live_clean;
	unsigned r;
	struct sg_error err;

	memset(&t, 0, sizeof(t));
	memset(&snap, 0, sizeof(snap));
	snprintf(path, sizeof(path), "%s/kill", tmpdir);
	signal(SIGUSR1, on_usr1);
	r = (unsigned)getpid() * 2654435761U;
	rounds = KILL_ROUNDS_ALONE + KILL_ROUNDS_BESIDE;
	live_pid = -1;
	live_r.fd = -1;
	working_rounds = 0;
	progress_ok = 1;
	for (round = 0; round < rounds; round++) {
		if (round == KILL_ROUNDS_ALONE) {
			live.path = path;
			live.prefix = "live";
			live.flags = 0;
			live_pid = spawn(writer_child, &live, &live_r);
			/* Let it open and get going before the next victim. */
			rs[0] = &live_r;
			pump_until(rs, 1, &t, now_ms() + 300);
		}
		snprintf(prefix, sizeof(prefix), "v%02d", round);
		victim.path = path;
		victim.prefix = prefix;
		victim.flags = SG_TXN_DURABLE;
		pid = spawn(writer_child, &victim, &victim_r);
		rs[0] = &victim_r;
		rs[1] = &live_r;
		r = r * 1103515245U + 12345U;
		/* Some kills land while the victim opens (and recovers), most later. */
		pump_until(rs, 2, &t, now_ms() + (round % 4 == 1 ? 5 : 30) + (int)((r >> 8) % 250));
		if (victim_r.lines > 0)
			working_rounds++;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		rs[0] = &victim_r;
		pump_until(rs, 1, &t, now_ms() + 5000);
		if (live_pid > 0) {
			/* The live process must commit again, without a new opener. */
			int64_t until = now_ms() + PROGRESS_TIMEOUT_MS;

			before = live_r.lines;
			rs[0] = &live_r;
			while (live_r.fd >= 0 && live_r.lines < before + 3 && now_ms() < until)
				pump_until(rs, 1, &t, now_ms() + 50);
			if (live_r.lines < before + 3) {
				progress_ok = 0;
				printf("#   live process stalled after kill round %d\n", round);
			}
		}
	}
	tap_ok(working_rounds >= rounds / 2, "most victims were killed while committing");
	tap_ok(progress_ok, "the live process kept committing after every kill");

	/* A fresh open while the live process still works. */
	{
		struct sg_store *st = NULL;

		sg_error_clear(&err);
		tap_is_int(sg_store_open(path, &st, &err), 0, "fresh open after the kills");
		if (err.status != 0)
			printf("#   %s\n", err.reason);
		sg_store_close(st);
	}
	before = live_r.lines;
	rs[0] = &live_r;
	pump_until(rs, 1, &t, now_ms() + 500);
	tap_ok(live_r.lines > before, "live process still committing after the fresh open");

	live_clean = 0;
	if (live_pid > 0) {
		kill(live_pid, SIGUSR1);
		pump_until(rs, 1, &t, now_ms() + 30000);
		live_clean = waitpid(live_pid, &status, 0) == live_pid && WIFEXITED(status) &&
			WEXITSTATUS(status) == 0;
	}
	tap_ok(live_clean, "live process stopped cleanly");
	tap_is_int(t.done, 1, "it finished its run");
	if (!tap_is_int(t.failures, 0, "no failure other than retries"))
		printf("#   first: %s\n", t.first_failure);
	printf("# %zu commits acknowledged, %ld of unknown outcome; the live process "
	       "reopened the environment %ld times, %ld after the watchdog freed it\n",
		t.acked.n, t.unknown, count_lines("live.log", "reopening"),
		count_lines("live.log", "blocked in Berkeley DB"));

	tap_is_int(take_snapshot(path, &snap), SG_STORE_OK, "store reads after the kills");
	strset_sort(&t.acked);
	tap_is_int(missing_keys(&t, &snap), 0, "every acknowledged commit is present");
	/* At most one commit per kill (made, not yet reported) and the unknown ones. */
	extra = (long)snap.keys.n - (long)t.acked.n;
	tap_ok(extra >= 0 && extra <= rounds + t.unknown, "no more than in-flight commits besides");
	if (!(extra >= 0 && extra <= rounds + t.unknown))
		printf("#   %ld unacknowledged records\n", extra);
	tap_ok(snap.counters[COUNTERS] >= t.shared &&
			snap.counters[COUNTERS] <= t.shared + rounds + t.unknown,
		"shared counter between acknowledged and attempted increments");
	printf("# shared counter %ld, %ld increments acknowledged\n", snap.counters[COUNTERS],
		t.shared);
	sg_error_clear(&err);
	tap_is_int(sg_store_verify(path, &err), 0, "store verifies after the kills");
	if (err.status != 0)
		printf("#   %s\n", err.reason);
	strset_free(&snap.keys);
	strset_free(&t.acked);
}

/* ---- (c) the failure check frees what a dead process held ---- */

struct failchk_arg {
	const char *path;
	int go; /* read end: the waiter starts when a byte arrives */
};

/* Writes two records and then sits, inside the transaction, until killed. */
static int
hold_fn(struct sg_txn *txn, void *arg)
{
	struct sg_key k;
	int fd = *(int *)arg, rc;

	sg_key_make(&k, "db", "held", (char *)NULL);
	if ((rc = sg_store_put(txn, SG_TABLE_STATES, &k, "holder", 6)) != SG_STORE_OK)
		return rc;
	sg_key_make(&k, "db", "holder-extra", (char *)NULL);
	if ((rc = sg_store_put(txn, SG_TABLE_SESSIONS, &k, "x", 1)) != SG_STORE_OK)
		return rc;
	report(fd, "R\n");
	for (;;)
		pause();
}

static void
holder_child(void *argp, int fd)
{
	struct failchk_arg *a = argp;
	struct sg_store *st;
	struct sg_error err;

	log_to("holder.log");
	if (sg_store_open(a->path, &st, &err) != 0) {
		report(fd, "F open %s\n", err.reason);
		_exit(1);
	}
	sg_store_run(st, 0, hold_fn, &fd, &err);
	report(fd, "F holder went on\n");
	_exit(1);
}

static int
take_fn(struct sg_txn *txn, void *arg)
{
	struct sg_buf v;
	struct sg_key k;
	int rc;

	(void)arg;
	sg_key_make(&k, "db", "held", (char *)NULL);
	sg_buf_init(&v, 64);
	rc = sg_store_get(txn, SG_TABLE_STATES, &k, SG_GET_FOR_UPDATE, &v);
	sg_buf_free(&v);
	if (rc != SG_STORE_OK && rc != SG_STORE_NOTFOUND)
		return rc;
	return sg_store_put(txn, SG_TABLE_STATES, &k, "waiter", 6);
}

/* Opens, says so, waits for the go, then writes the record the holder locked. */
static void
waiter_child(void *argp, int fd)
{
	struct failchk_arg *a = argp;
	struct sg_store *st;
	struct sg_error err;
	char c;

	log_to("waiter.log");
	if (sg_store_open(a->path, &st, &err) != 0) {
		report(fd, "F open %s\n", err.reason);
		_exit(1);
	}
	report(fd, "O\n");
	if (read(a->go, &c, 1) != 1)
		_exit(1);
	sg_error_clear(&err);
	if (sg_store_run(st, 0, take_fn, NULL, &err) == SG_STORE_OK)
		report(fd, "A waiter 0\n");
	else
		report(fd, "F waiter %s\n", err.reason);
	sg_store_close(st);
	report(fd, "D\n");
	_exit(0);
}

static int
read_held(struct sg_txn *txn, void *arg)
{
	struct sg_buf *out = arg;
	struct sg_buf v;
	struct sg_key k;
	int rc;

	sg_buf_reset(&out[0]);
	sg_buf_reset(&out[1]);
	sg_key_make(&k, "db", "held", (char *)NULL);
	if ((rc = sg_store_get(txn, SG_TABLE_STATES, &k, 0, &out[0])) < 0)
		return rc;
	sg_key_make(&k, "db", "holder-extra", (char *)NULL);
	sg_buf_init(&v, 16);
	rc = sg_store_get(txn, SG_TABLE_SESSIONS, &k, 0, &v);
	sg_buf_free(&v);
	if (rc < 0)
		return rc;
	sg_buf_adds(&out[1], rc == SG_STORE_NOTFOUND ? "absent" : "present");
	return SG_STORE_OK;
}

/*
 * A process killed in the middle of a transaction, outside any library
 * call, leaves locks that a live process meets.  The live process's own
 * failure check aborts the dead transaction: no recovery, no reopen.
 */
static void
test_failchk(void)
{
	struct reader wr, hr, *rs[2];
	struct failchk_arg a;
	struct sg_store *st;
	struct sg_error err;
	struct sg_buf got[2];
	struct tally t;
	char path[4200];
	pid_t waiter, holder;
	int go[2], status, clean;
	int64_t killed, took;

	memset(&t, 0, sizeof(t));
	snprintf(path, sizeof(path), "%s/failchk", tmpdir);
	st = NULL;
	tap_is_int(sg_store_open(path, &st, &err), 0, "failure check: store created");
	sg_store_close(st);
	if (pipe(go) != 0)
		return;
	a.path = path;
	a.go = go[0];
	waiter = spawn(waiter_child, &a, &wr);
	close(go[0]);
	rs[0] = &wr;
	while (wr.fd >= 0 && wr.lines < 1)
		pump_until(rs, 1, &t, now_ms() + 100);
	holder = spawn(holder_child, &a, &hr);
	rs[0] = &hr;
	while (hr.fd >= 0 && hr.lines < 1)
		pump_until(rs, 1, &t, now_ms() + 100);
	tap_is_int(t.failures, 0, "holder locked the record, waiter opened");
	/* The waiter meets the holder's lock and retries; the holder is alive. */
	if (write(go[1], "g", 1) != 1)
		return;
	rs[0] = &wr;
	pump_until(rs, 1, &t, now_ms() + 400);
	tap_is_int((long long)t.acked.n, 0, "waiter waits while the holder lives");
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
	killed = now_ms();
	rs[1] = &hr;
	while (wr.fd >= 0 && t.acked.n == 0 && now_ms() - killed < 15000)
		pump_until(rs, 2, &t, now_ms() + 20);
	took = now_ms() - killed;
	tap_is_int((long long)t.acked.n, 1, "waiter commits after the holder dies");
	tap_ok(took < 3000, "soon after");
	if (took >= 3000)
		printf("#   after %lld ms\n", (long long)took);
	pump_until(rs, 2, &t, now_ms() + 10000);
	clean = waitpid(waiter, &status, 0) == waiter && WIFEXITED(status) &&
		WEXITSTATUS(status) == 0;
	close(go[1]);
	tap_ok(clean && t.done == 1 && t.failures == 0, "waiter finished cleanly");
	tap_ok(count_lines("waiter.log", "Aborting txn") >= 1,
		"its failure check aborted the dead transaction");
	tap_is_int(count_lines("waiter.log", "reopening"), 0, "without a recovery");

	sg_buf_init(&got[0], 64);
	sg_buf_init(&got[1], 64);
	st = NULL;
	sg_error_clear(&err);
	if (sg_store_open(path, &st, &err) == 0 &&
		sg_store_run(st, 0, read_held, got, &err) == SG_STORE_OK) {
		tap_is_str(sg_buf_str(&got[0]), "waiter", "the waiter's write is there");
		tap_is_str(sg_buf_str(&got[1]), "absent", "none of the dead transaction is");
	} else
		tap_ok(0, "store reads after the failure check");
	sg_store_close(st);
	sg_buf_free(&got[0]);
	sg_buf_free(&got[1]);
	strset_free(&t.acked);
}

int
main(void)
{
	const char *base, *s;
	int seconds;
	char *end;

	sg_log_open("test_store_procs", 0, SG_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	seconds = 3;
	if ((s = getenv("SG_STRESS_SECONDS")) != NULL && *s != '\0') {
		long v = strtol(s, &end, 10);

		if (*end == '\0' && v > 0 && v <= 3600)
			seconds = (int)v;
	}
	base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/sgprocs.XXXXXX",
		base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_stress(seconds);
	test_failchk();
	test_kill();
	if (getenv("SG_KEEP_TMP") == NULL)
		test_remove_tree(tmpdir);
	else
		printf("# kept %s\n", tmpdir);
	return tap_done();
}
