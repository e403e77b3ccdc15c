/*
 * store.h: the shared, transactional key/value store (SPEC section 4).
 *
 * One environment directory holds a table per kind of record.  Every key
 * is a sequence of NUL-terminated parts, the database name first, so a
 * prefix of parts selects a database, a user's sessions, and so on.
 * Values are opaque bytes (syncgate writes JSON text).
 *
 * All work happens inside sg_store_run, which begins a transaction, calls
 * a function with it, commits, and on a lock conflict or deadlock aborts
 * and calls the function again.  The store is safe for many processes of
 * several programs at once; a process killed at any point leaves it
 * usable, and a committed transaction is never lost.
 *
 * A process has at most one handle per store directory (Berkeley DB's
 * DB_REGISTER), opened after any fork and used by one thread.  The engine
 * reserves the real-time signal SIGRTMIN + 5 for its stall watchdog.
 *
 * The storage engine sits behind a small table of functions (struct
 * sg_store_ops in store.c); Berkeley DB 5.3 is the one engine.
 */
#ifndef SG_STORE_H
#define SG_STORE_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

/* Result codes of the store functions (and of sg_txn_fn). */
#define SG_STORE_OK 0
#define SG_STORE_NOTFOUND 1 /* get/del: no such key */
#define SG_STORE_FAIL (-1)  /* the store failed; err says why */
#define SG_STORE_RETRY (-2) /* deadlock or lock timeout: return it from fn */

/* Largest value stored (a user with many grants stays far below it). */
#define SG_STORE_VALUE_MAX (1024 * 1024)

enum sg_table {
	SG_TABLE_USERS,         /* <db> <name>            -> user JSON;
				   <db> alone             -> principals generation (user.h) */
	SG_TABLE_ROLES,         /* <db> <name>            -> role JSON */
	SG_TABLE_SESSIONS,      /* <db> <session id>      -> session JSON */
	SG_TABLE_USER_SESSIONS, /* <db> <user> <sid>      -> empty */
	SG_TABLE_STATES,        /* <db> <state>           -> pending OIDC login JSON */
	SG_TABLE_REFRESH,       /* <db> <token digest>    -> refresh binding JSON */
	SG_TABLE_PROVIDERS,     /* <db> <provider> <kind> -> discovery/JWKS JSON */
	SG_TABLE_EXPIRY,        /* <expiry> <db> <sid>    -> empty (purge order) */
	SG_TABLE_COUNT
};

/* Longest key: a database name, a user name and a session id fit easily. */
#define SG_KEY_MAX 1024

struct sg_key {
	char data[SG_KEY_MAX];
	size_t len;
};

/*
 * Builds a key from the NULL-terminated list of string parts, each stored
 * with its terminating NUL.  Returns 0, or -1 when the parts do not fit
 * (k is then empty, a key every store function refuses).
 */
int sg_key_make(struct sg_key *k, ...) __attribute__((sentinel));

struct sg_store;
struct sg_txn;

/*
 * Opens (creating when needed) the store in directory path.  On success
 * stores a new handle in *out and returns 0; on failure returns -1 with
 * err set (status 500, reason naming the path).  Runs recovery when a
 * process died while it had the store open.
 */
int sg_store_open(const char *path, struct sg_store **out, struct sg_error *err);

/* Closes the handle; st may be NULL. */
void sg_store_close(struct sg_store *st);

/* Flags of sg_store_run. */
#define SG_TXN_DURABLE 1 /* flush the log to disk at commit */

/*
 * A transaction body.  Returns SG_STORE_OK to commit, SG_STORE_RETRY
 * (after a store call returned it) to abort and run again, or any other
 * value to abort; arg is the caller's.
 */
typedef int (*sg_txn_fn)(struct sg_txn *txn, void *arg);

/*
 * Runs fn in a transaction until it commits or fails for another reason
 * than a deadlock.  Returns SG_STORE_OK once committed, fn's own result
 * when fn asked to abort (err untouched, unless fn passed on the
 * SG_STORE_FAIL of a store call), or SG_STORE_FAIL with err set (503 when
 * the store stayed busy past the retry budget, 500 otherwise, also when
 * another process recovered the store during the commit, whose outcome
 * is then unknown).  Without SG_TXN_DURABLE a commit reaches the
 * operating system but not the disk: it survives the death of any
 * process, not a power cut.
 */
int
sg_store_run(struct sg_store *st, unsigned flags, sg_txn_fn fn, void *arg, struct sg_error *err);

/* Flags of sg_store_get. */
#define SG_GET_FOR_UPDATE 1 /* take a write lock (read-modify-write) */

/*
 * Reads the value of k into val (cleared first).  Returns SG_STORE_OK,
 * SG_STORE_NOTFOUND, SG_STORE_RETRY or SG_STORE_FAIL.
 */
int sg_store_get(struct sg_txn *txn, enum sg_table t, const struct sg_key *k, unsigned flags,
	struct sg_buf *val);

/* Writes k = val.  Returns SG_STORE_OK, SG_STORE_RETRY or SG_STORE_FAIL. */
int sg_store_put(struct sg_txn *txn, enum sg_table t, const struct sg_key *k, const void *val,
	size_t n);

/*
 * Deletes k.  Returns SG_STORE_OK, SG_STORE_NOTFOUND, SG_STORE_RETRY or
 * SG_STORE_FAIL.
 */
int sg_store_del(struct sg_txn *txn, enum sg_table t, const struct sg_key *k);

/*
 * A scan callback: key and value are borrowed for the call, and each is
 * followed by a NUL (not counted in klen and vlen).  Returns 0 to go on,
 * 1 to stop early, or a negative value (passed on by sg_store_scan).
 */
typedef int (*sg_scan_fn)(const char *key, size_t klen, const char *val, size_t vlen, void *arg);

/*
 * Calls fn for every key of t that starts with prefix, in key order.
 * Returns SG_STORE_OK, SG_STORE_RETRY, SG_STORE_FAIL, or fn's negative
 * result.  fn must not write to the table being scanned.
 */
int sg_store_scan(struct sg_txn *txn, enum sg_table t, const struct sg_key *prefix, sg_scan_fn fn,
	void *arg);

/* Maintenance (syncgatectl, and opportunistic upkeep in the programs). */

/*
 * Writes a checkpoint and removes log files no longer needed.  Returns 0,
 * or -1 with err set (503 while a backup runs).
 */
int sg_store_checkpoint(struct sg_store *st, struct sg_error *err);

/*
 * Copies a consistent snapshot of the store into the empty or new
 * directory dir (created 0750), while other processes keep working; the
 * copy opens as a store and passes sg_store_verify.  Returns 0 or -1.
 */
int sg_store_backup(struct sg_store *st, const char *dir, struct sg_error *err);

/*
 * Checks the structure of every table of the store in directory path.
 * Berkeley DB's verification takes no locks, so it is only sound on a
 * store nobody uses: it refuses (409) a store that any process, this one
 * included, has open, and makes processes that open it meanwhile wait.
 * To check a live store, back it up and verify the copy.  It recovers the
 * store first if a process died in it.  Returns 0 when it is sound, else
 * -1 with err set.
 */
int sg_store_verify(const char *path, struct sg_error *err);

/*
 * Replaces the store in directory path with the backup in directory
 * backup (made by sg_store_backup, or a copy of it).  Like verification
 * it refuses (409) a store that any process has open.  The backup is
 * copied into a new directory beside path, recovered and verified there,
 * given the owner and mode of the store directory, and then exchanged
 * with it in one rename; the replaced contents are removed.  path need
 * not exist.  The backup itself is only read.  Returns 0, or -1 with err
 * set (the store is then untouched).
 */
int sg_store_restore(const char *backup, const char *path, struct sg_error *err);

#endif
