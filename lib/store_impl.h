/*
 * store_impl.h: what a storage engine provides to store.c.
 *
 * store.c owns everything that does not depend on the engine: keys, the
 * transaction retry loop, the retry budget and the upkeep schedule.  An
 * engine is a table of functions over two opaque types, its environment
 * handle and its transaction handle, and reports results with the
 * SG_STORE_* codes of store.h plus the internal code below, which
 * store.c turns into a reopen and a retry and never shows to callers.
 *
 * Private to lib/store*.c.
 */
#ifndef SG_STORE_IMPL_H
#define SG_STORE_IMPL_H

#include <stddef.h>

#include "error.h"
#include "store.h"

/*
 * The environment is unusable in this process (another process ran
 * recovery, or a failure check found a process that died inside the
 * engine): every handle must be closed and the environment reopened.
 */
#define SG_STORE_REOPEN (-3)

struct sg_store_env;  /* an open environment, engine-defined */
struct sg_store_etxn; /* a running transaction, engine-defined */

struct sg_store_ops {
	const char *name;

	/*
	 * Opens (creating when needed) the environment in directory path and
	 * every table; returns SG_STORE_OK with a new handle in *out, or
	 * SG_STORE_FAIL with err set.
	 */
	int (*open)(const char *path, struct sg_store_env **out, struct sg_error *err);
	/* Closes every handle; e may be NULL.  Never fails. */
	void (*close)(struct sg_store_env *e);

	/*
	 * Begins a transaction.  Returns SG_STORE_OK, SG_STORE_RETRY,
	 * SG_STORE_REOPEN or SG_STORE_FAIL.
	 */
	int (*begin)(struct sg_store_env *e, struct sg_store_etxn **out, struct sg_error *err);
	/*
	 * Commits t (durably with SG_TXN_DURABLE); t is gone afterwards,
	 * whatever the result.  Returns as begin.
	 */
	int (*commit)(struct sg_store_env *e, struct sg_store_etxn *t, unsigned flags,
		struct sg_error *err);
	/* Aborts t; t is gone afterwards.  Never fails (errors are logged). */
	void (*abort)(struct sg_store_env *e, struct sg_store_etxn *t);

	/* The record operations of store.h; they also return SG_STORE_REOPEN. */
	int (*get)(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
		const struct sg_key *k, unsigned flags, struct sg_buf *val, struct sg_error *err);
	int (*put)(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
		const struct sg_key *k, const void *val, size_t n, struct sg_error *err);
	int (*del)(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
		const struct sg_key *k, struct sg_error *err);
	/*
	 * scan returns SG_STORE_OK also when fn stopped it; *stop is then
	 * fn's negative result, else 0.
	 */
	int (*scan)(struct sg_store_env *e, struct sg_store_etxn *t, enum sg_table tab,
		const struct sg_key *prefix, sg_scan_fn fn, void *arg, int *stop,
		struct sg_error *err);

	/*
	 * Releases the locks and aborts the transactions of processes that
	 * died while using the environment.  Returns SG_STORE_OK,
	 * SG_STORE_REOPEN (a process died inside the engine: recovery is
	 * needed) or SG_STORE_FAIL.
	 */
	int (*failchk)(struct sg_store_env *e, struct sg_error *err);
	/*
	 * Checkpoints and removes unneeded log files: with force, now;
	 * without, only when enough has happened since the last checkpoint
	 * (cheap otherwise).  Returns SG_STORE_OK, SG_STORE_REOPEN or
	 * SG_STORE_FAIL (503 while a backup runs).
	 */
	int (*checkpoint)(struct sg_store_env *e, int force, struct sg_error *err);
	/* Hot backup into the new or empty directory dir. */
	int (*backup)(struct sg_store_env *e, const char *dir, struct sg_error *err);
	/* Structure check of the tables of the store at path (not open here). */
	int (*verify)(const char *path, struct sg_error *err);
	/*
	 * Replaces the store at path (unused, or absent) with a recovered,
	 * verified copy of the backup directory backup.
	 */
	int (*restore)(const char *backup, const char *path, struct sg_error *err);
};

/* Berkeley DB 5.3 (store_bdb.c). */
extern const struct sg_store_ops sg_store_bdb_ops;

#endif
