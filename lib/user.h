/*
 * user.h: users, roles and GUEST (SPEC section 5).
 *
 * A user is stored as a JSON object: name, password_hash, admin_channels,
 * admin_roles, email, disabled, and the jwt_* fields an OpenID Connect
 * login fills in.  A role is {name, admin_channels}.  GUEST is the user
 * named "GUEST": until an administrator writes it, it is what the
 * database's "guest" configuration block says.
 *
 * The functions taking a struct sg_txn run inside sg_store_run and pass
 * on SG_STORE_RETRY; the others do no store access.
 */
#ifndef SG_USER_H
#define SG_USER_H

#include <jansson.h>

#include "config.h"
#include "error.h"
#include "store.h"

#define SG_NAME_MAX 239
#define SG_GUEST "GUEST"

/* Returns 1 when name follows the user and role name rules. */
int sg_user_name_valid(const char *name);

/* Returns 1 when name is a valid channel name ("*" included). */
int sg_channel_name_valid(const char *name);

/*
 * Loads the user or role name of db.  Returns SG_STORE_OK with a new
 * reference in *out, SG_STORE_NOTFOUND, SG_STORE_RETRY or SG_STORE_FAIL.
 * For GUEST a missing record yields the configured default (SG_STORE_OK).
 */
int sg_user_load(struct sg_txn *txn, const struct sg_db_config *db, const char *name,
	unsigned flags, json_t **out);
int
sg_role_load(struct sg_txn *txn, const char *db, const char *name, unsigned flags, json_t **out);

/*
 * Writes the record (borrowed) under its "name", and a new principals
 * generation of db.  Store result codes.
 */
int sg_user_save(struct sg_txn *txn, const char *db, const json_t *user);
int sg_role_save(struct sg_txn *txn, const char *db, const json_t *role);

/*
 * Deletes the record and writes a new principals generation of db; store
 * result codes (SG_STORE_NOTFOUND, nothing written, included).
 */
int sg_user_delete(struct sg_txn *txn, const char *db, const char *name);
int sg_role_delete(struct sg_txn *txn, const char *db, const char *name);

/* Room for a principals generation, NUL included. */
#define SG_GENERATION_MAX 64

/*
 * The principals generation of db: a short value that every save and
 * delete above replaces, in the same transaction as the record, and
 * nothing else writes.  Whatever is computed from the users and roles of
 * db stays true while the generation it was read with is the stored one;
 * a per-process cache checks it instead of reading the records again.
 * Each value is a counter and random bits, so a value is never written
 * twice, and one comes back (a store restored from a backup) only with
 * the records it was written with.
 *
 * Reads it into out (SG_GENERATION_MAX bytes, NUL-terminated, length in
 * *len); a database without one yet (a new store, or one written before
 * generations) gets its first here, so the transaction may write.  Store
 * result codes.
 */
int sg_principals_generation(struct sg_txn *txn, const char *db, char *out, size_t *len);

/*
 * Appends the names of every user (GUEST excluded) or role of db to the
 * array list (borrowed), in name order.  Store result codes.
 */
int sg_user_list(struct sg_txn *txn, const char *db, json_t *list);
int sg_role_list(struct sg_txn *txn, const char *db, json_t *list);

/*
 * Computes what a user may see: *channels gets a new sorted array of its
 * own channels (admin and jwt), its roles' channels and "!"; *roles a new
 * sorted array of its roles (admin and jwt).  Roles that do not exist are
 * left out of both.  Store result codes.
 */
int sg_user_grants(struct sg_txn *txn, const char *db, const json_t *user, json_t **channels,
	json_t **roles);

/*
 * Checks an administrator's user document for a PUT or POST (body is
 * borrowed): only writable fields, each of the right type and form; a
 * read-only field is allowed only when current (may be NULL) holds the
 * same value.  name is the user the request is about.  Returns 0 or -1
 * with err set (400).
 */
int sg_user_check_doc(const json_t *body, const char *name, const json_t *current,
	struct sg_error *err);

/* As sg_user_check_doc for a role document. */
int sg_role_check_doc(const json_t *body, const char *name, const json_t *current,
	struct sg_error *err);

/*
 * Returns a new user record: current (may be NULL) with the writable
 * fields of the checked body applied; password_hash replaces the stored
 * hash when non-NULL.  Fields left out of the body keep their value.
 */
json_t *sg_user_merge(const json_t *current, const json_t *body, const char *name,
	const char *password_hash);

/* As sg_user_merge for roles. */
json_t *sg_role_merge(const json_t *current, const json_t *body, const char *name);

/*
 * Returns a new JSON object: the user as GET /{db}/_user/{name} shows it
 * (no password hash; empty arrays left out; channels and roles given).
 */
json_t *sg_user_public(const json_t *user, const json_t *channels, const json_t *roles);

/* Returns a new JSON object: the role as GET /{db}/_role/{name} shows it. */
json_t *sg_role_public(const json_t *role);

/* Returns the user's "disabled" flag (0 when absent). */
int sg_user_disabled(const json_t *user);

/* Returns the stored password hash, or NULL; borrowed from user. */
const char *sg_user_password_hash(const json_t *user);

#endif
