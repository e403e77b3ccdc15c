/*
 * user.c: user and role records, their rules, and what they grant.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "secure.h"
#include "user.h"

/*
 * The principals generation of a database lives in the users table under
 * the key of the database name alone: every user key has a name part
 * after it, so no user can reach it, and list() passes over it.  Its
 * value is "<counter> <random hex>".
 */
#define GENERATION_RANDOM_BYTES 8

/* Bytes that may not appear in a user or role name (SPEC section 5). */
static const char name_forbidden[] = "/:,`";

int
sg_user_name_valid(const char *name)
{
	size_t n, i;
	int alnum = 0;
	unsigned char c;

	if (name == NULL)
		return 0;
	n = strlen(name);
	if (n < 1 || n > SG_NAME_MAX || !sg_utf8_valid(name, n))
		return 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f || strchr(name_forbidden, c) != NULL)
			return 0;
		/* Any non-ASCII character counts as a letter. */
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c >= 0x80)
			alnum = 1;
	}
	return alnum;
}

int
sg_channel_name_valid(const char *name)
{
	size_t n, i;
	unsigned char c;

	if (name == NULL)
		return 0;
	if (strcmp(name, "*") == 0)
		return 1;
	n = strlen(name);
	if (n < 1 || n > SG_NAME_MAX || !sg_utf8_valid(name, n))
		return 0;
	for (i = 0; i < n; i++) {
		c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c >= 0x80 || strchr("-+=/_.@", c) != NULL))
			return 0;
	}
	return 1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Returns a new array holding the strings of the given arrays (each may be
 * NULL or hold non-strings, which are skipped), sorted and without
 * repeats; extra, when non-NULL, is added too.
 */
static json_t *
string_set(const json_t *a, const json_t *b, const char *extra)
{
	const char **v = NULL;
	size_t n = 0, cap, i;
	const json_t *arrays[2] = {a, b}, *item;
	json_t *out = NULL;
	size_t k, idx;

	cap = json_array_size(a) + json_array_size(b) + 1;
	v = calloc(cap, sizeof(*v));
	if (v == NULL)
		goto out;
	for (k = 0; k < 2; k++)
		json_array_foreach (arrays[k], idx, item)
			if (json_is_string(item))
				v[n++] = json_string_value(item);
	if (extra != NULL)
		v[n++] = extra;
	qsort(v, n, sizeof(*v), cmp_str);
	out = json_array();
	for (i = 0; out != NULL && i < n; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			json_array_append_new(out, json_string(v[i]));
out:
	free(v);
	return out;
}

static int
load(struct sg_txn *txn, enum sg_table t, const char *db, const char *name, unsigned flags,
	json_t **out)
{
	struct sg_key k;
	struct sg_buf val;
	int rc;

	*out = NULL;
	if (sg_key_make(&k, db, name, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	sg_buf_init(&val, SG_STORE_VALUE_MAX);
	rc = sg_store_get(txn, t, &k, flags, &val);
	if (rc == SG_STORE_OK) {
		*out = json_loadb(sg_buf_str(&val), val.len, 0, NULL);
		if (*out == NULL || !json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			rc = SG_STORE_FAIL;
		}
	}
	sg_buf_free(&val);
	return rc;
}

/*
 * Writes a new generation of db: the stored counter plus one and fresh
 * random bits.  When out is non-NULL, copies the value there (with its
 * NUL; out holds SG_GENERATION_MAX bytes) and its length to *len.
 */
static int
generation_bump(struct sg_txn *txn, const char *db, char *out, size_t *len)
{
	struct sg_key k;
	struct sg_buf val, text;
	char rnd[2 * GENERATION_RANDOM_BYTES + 1];
	unsigned long long n = 0;
	char *end;
	int rc;

	if (sg_key_make(&k, db, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	sg_buf_init(&val, SG_STORE_VALUE_MAX);
	sg_buf_init(&text, SG_GENERATION_MAX - 1);
	rc = sg_store_get(txn, SG_TABLE_USERS, &k, SG_GET_FOR_UPDATE, &val);
	if (rc == SG_STORE_OK) {
		/* A value that does not parse starts the counter again. */
		errno = 0;
		n = strtoull(sg_buf_str(&val), &end, 10);
		if (errno != 0 || end == sg_buf_str(&val) || *end != ' ')
			n = 0;
	} else if (rc != SG_STORE_NOTFOUND) {
		goto out;
	}
	if (sg_secure_random_hex(GENERATION_RANDOM_BYTES, rnd) != 0 ||
		sg_buf_addf(&text, "%llu %s", n + 1, rnd) != 0) {
		rc = SG_STORE_FAIL;
		goto out;
	}
	rc = sg_store_put(txn, SG_TABLE_USERS, &k, text.data, text.len);
	if (rc == SG_STORE_OK && out != NULL) {
		memcpy(out, text.data, text.len + 1);
		*len = text.len;
	}
out:
	sg_buf_free(&val);
	sg_buf_free(&text);
	return rc;
}

int
sg_principals_generation(struct sg_txn *txn, const char *db, char *out, size_t *len)
{
	struct sg_key k;
	struct sg_buf val;
	int rc;

	if (sg_key_make(&k, db, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	sg_buf_init(&val, SG_GENERATION_MAX - 1);
	rc = sg_store_get(txn, SG_TABLE_USERS, &k, 0, &val);
	if (rc == SG_STORE_OK) {
		memcpy(out, sg_buf_str(&val), val.len + 1);
		*len = val.len;
	}
	sg_buf_free(&val);
	if (rc == SG_STORE_NOTFOUND)
		rc = generation_bump(txn, db, out, len);
	return rc;
}

/* Writes the record under its name, and a new generation of db. */
static int
save(struct sg_txn *txn, enum sg_table t, const char *db, const json_t *rec)
{
	struct sg_key k;
	const char *name = json_string_value(json_object_get(rec, "name"));
	char *text;
	int rc;

	if (name == NULL || *name == '\0' || sg_key_make(&k, db, name, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	text = json_dumps(rec, JSON_COMPACT);
	if (text == NULL)
		return SG_STORE_FAIL;
	rc = sg_store_put(txn, t, &k, text, strlen(text));
	free(text);
	if (rc == SG_STORE_OK)
		rc = generation_bump(txn, db, NULL, NULL);
	return rc;
}

/* Deletes the record, and writes a new generation of db when it existed. */
static int
del(struct sg_txn *txn, enum sg_table t, const char *db, const char *name)
{
	struct sg_key k;
	int rc;

	if (sg_key_make(&k, db, name, (char *)NULL) != 0)
		return SG_STORE_NOTFOUND;
	rc = sg_store_del(txn, t, &k);
	if (rc == SG_STORE_OK)
		rc = generation_bump(txn, db, NULL, NULL);
	return rc;
}

int
sg_user_load(struct sg_txn *txn, const struct sg_db_config *db, const char *name, unsigned flags,
	json_t **out)
{
	json_t *chans;
	size_t i;
	int rc;

	rc = load(txn, SG_TABLE_USERS, db->name, name, flags, out);
	if (rc != SG_STORE_NOTFOUND || strcmp(name, SG_GUEST) != 0)
		return rc;
	chans = json_array();
	for (i = 0; i < db->guest_channels.n; i++)
		json_array_append_new(chans, json_string(db->guest_channels.v[i]));
	*out = json_pack("{s:s, s:b, s:o}", "name", SG_GUEST, "disabled", db->guest_disabled,
		"admin_channels", chans);
	return *out != NULL ? SG_STORE_OK : SG_STORE_FAIL;
}

int
sg_role_load(struct sg_txn *txn, const char *db, const char *name, unsigned flags, json_t **out)
{
	return load(txn, SG_TABLE_ROLES, db, name, flags, out);
}

int
sg_user_save(struct sg_txn *txn, const char *db, const json_t *user)
{
	return save(txn, SG_TABLE_USERS, db, user);
}

int
sg_role_save(struct sg_txn *txn, const char *db, const json_t *role)
{
	return save(txn, SG_TABLE_ROLES, db, role);
}

int
sg_user_delete(struct sg_txn *txn, const char *db, const char *name)
{
	return del(txn, SG_TABLE_USERS, db, name);
}

int
sg_role_delete(struct sg_txn *txn, const char *db, const char *name)
{
	return del(txn, SG_TABLE_ROLES, db, name);
}

struct list_arg {
	size_t skip; /* length of the "<db>\0" prefix */
	json_t *list;
};

static int
list_one(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct list_arg *la = arg;
	const char *name = key + la->skip;

	(void)val;
	(void)vlen;
	if (klen <= la->skip || memchr(name, '\0', klen - la->skip) == NULL)
		return 0;
	if (strcmp(name, SG_GUEST) != 0)
		json_array_append_new(la->list, json_string(name));
	return 0;
}

static int
list(struct sg_txn *txn, enum sg_table t, const char *db, json_t *out)
{
	struct sg_key prefix;
	struct list_arg la;

	if (sg_key_make(&prefix, db, (char *)NULL) != 0)
		return SG_STORE_FAIL;
	la.skip = prefix.len;
	la.list = out;
	json_array_clear(out);
	return sg_store_scan(txn, t, &prefix, list_one, &la);
}

int
sg_user_list(struct sg_txn *txn, const char *db, json_t *out)
{
	return list(txn, SG_TABLE_USERS, db, out);
}

int
sg_role_list(struct sg_txn *txn, const char *db, json_t *out)
{
	return list(txn, SG_TABLE_ROLES, db, out);
}

int
sg_user_grants(struct sg_txn *txn, const char *db, const json_t *user, json_t **channels,
	json_t **roles)
{
	json_t *wanted, *have = NULL, *chans = NULL, *role = NULL, *tmp, *item;
	size_t i;
	int rc;

	*channels = NULL;
	*roles = NULL;
	wanted = string_set(json_object_get(user, "admin_roles"),
		json_object_get(user, "jwt_roles"), NULL);
	chans = string_set(json_object_get(user, "admin_channels"),
		json_object_get(user, "jwt_channels"), "!");
	have = json_array();
	if (wanted == NULL || chans == NULL || have == NULL) {
		rc = SG_STORE_FAIL;
		goto fail;
	}
	json_array_foreach (wanted, i, item) {
		rc = sg_role_load(txn, db, json_string_value(item), 0, &role);
		if (rc == SG_STORE_NOTFOUND)
			continue;
		if (rc != SG_STORE_OK)
			goto fail;
		json_array_append(have, item);
		tmp = string_set(chans, json_object_get(role, "admin_channels"), NULL);
		json_decref(role);
		role = NULL;
		if (tmp == NULL) {
			rc = SG_STORE_FAIL;
			goto fail;
		}
		json_decref(chans);
		chans = tmp;
	}
	*channels = chans;
	*roles = have;
	json_decref(wanted);
	return SG_STORE_OK;
fail:
	json_decref(wanted);
	json_decref(have);
	json_decref(chans);
	return rc;
}

/* Checks that v is an array of strings each accepted by valid. */
static int
check_names(const json_t *v, int (*valid)(const char *), const char *field, struct sg_error *err)
{
	const json_t *item;
	size_t i;

	if (!json_is_array(v))
		return sg_error_set(err, 400, "%s must be an array of strings", field);
	json_array_foreach (v, i, item) {
		if (!json_is_string(item))
			return sg_error_set(err, 400, "%s must be an array of strings", field);
		if (!valid(json_string_value(item)))
			return sg_error_set(err, 400, "Invalid name in %s", field);
	}
	return 0;
}

/*
 * Compares a read-only field sent by a client with the current value:
 * equal, or both empty (an empty array is shown by leaving it out).
 */
static int
same_value(const json_t *sent, const json_t *current)
{
	if (current == NULL)
		return json_is_null(sent) || (json_is_array(sent) && json_array_size(sent) == 0);
	return json_equal((json_t *)sent, (json_t *)current);
}

/* A plausible e-mail address: one '@' with text on both sides, no spaces. */
static int
email_valid(const char *s)
{
	const char *at = strchr(s, '@');

	return at != NULL && at != s && at[1] != '\0' && strchr(at + 1, '@') == NULL &&
		strpbrk(s, " \t\r\n<>\"") == NULL && strlen(s) <= 254;
}

static const char *const user_readonly[] = {"all_channels", "roles", "jwt_issuer", "jwt_roles",
	"jwt_channels", "jwt_last_updated", NULL};
static const char *const role_readonly[] = {"all_channels", NULL};

static int
is_listed(const char *const *list, const char *key)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, key) == 0)
			return 1;
	return 0;
}

static int
check_name_field(const json_t *v, const char *name, struct sg_error *err)
{
	if (!json_is_string(v))
		return sg_error_set(err, 400, "name must be a string");
	if (strcmp(json_string_value(v), name) != 0)
		return sg_error_set(err, 400, "name in the body differs from the URL");
	return 0;
}

int
sg_user_check_doc(const json_t *body, const char *name, const json_t *current, struct sg_error *err)
{
	const char *key;
	const json_t *v;
	int guest = strcmp(name, SG_GUEST) == 0;
	size_t plen;

	if (!json_is_object(body))
		return sg_error_set(err, 400, "Request body must be a JSON object");
	json_object_foreach ((json_t *)body, key, v) {
		if (strcmp(key, "name") == 0) {
			if (check_name_field(v, name, err) != 0)
				return -1;
		} else if (strcmp(key, "password") == 0 && !guest) {
			if (!json_is_string(v))
				return sg_error_set(err, 400, "password must be a string");
			plen = json_string_length(v);
			if (plen < 3)
				return sg_error_set(err, 400,
					"Passwords must be at least three characters");
			if (memchr(json_string_value(v), '\0', plen) != NULL)
				return sg_error_set(err, 400,
					"password may not hold a NUL character");
		} else if (strcmp(key, "admin_channels") == 0) {
			if (check_names(v, sg_channel_name_valid, key, err) != 0)
				return -1;
		} else if (strcmp(key, "admin_roles") == 0) {
			if (check_names(v, sg_user_name_valid, key, err) != 0)
				return -1;
		} else if (strcmp(key, "email") == 0 && !guest) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v))
				return sg_error_set(err, 400, "email must be a string");
			if (json_string_length(v) > 0 && !email_valid(json_string_value(v)))
				return sg_error_set(err, 400, "Invalid email address");
		} else if (strcmp(key, "disabled") == 0) {
			if (!json_is_boolean(v))
				return sg_error_set(err, 400, "disabled must be a boolean");
		} else if (is_listed(user_readonly, key)) {
			if (!same_value(v, json_object_get(current, key)))
				return sg_error_set(err, 400, "%s is read-only", key);
		} else {
			return sg_error_set(err, 400,
				guest ? "Field %s is not allowed for GUEST" : "Unknown field %s",
				key);
		}
	}
	return 0;
}

int
sg_role_check_doc(const json_t *body, const char *name, const json_t *current, struct sg_error *err)
{
	const char *key;
	const json_t *v;

	if (!json_is_object(body))
		return sg_error_set(err, 400, "Request body must be a JSON object");
	json_object_foreach ((json_t *)body, key, v) {
		if (strcmp(key, "name") == 0) {
			if (check_name_field(v, name, err) != 0)
				return -1;
		} else if (strcmp(key, "admin_channels") == 0) {
			if (check_names(v, sg_channel_name_valid, key, err) != 0)
				return -1;
		} else if (is_listed(role_readonly, key)) {
			if (!same_value(v, json_object_get(current, key)))
				return sg_error_set(err, 400, "%s is read-only", key);
		} else {
			return sg_error_set(err, 400, "Unknown field %s", key);
		}
	}
	return 0;
}

static json_t *
base_record(const json_t *current, const char *name)
{
	json_t *rec = current != NULL ? json_deep_copy(current) : json_object();

	if (rec != NULL)
		json_object_set_new(rec, "name", json_string(name));
	return rec;
}

/* Sets rec[key] to the sorted set of body[key], when the body has it. */
static void
merge_set(json_t *rec, const json_t *body, const char *key)
{
	const json_t *v = json_object_get(body, key);

	if (v != NULL)
		json_object_set_new(rec, key, string_set(v, NULL, NULL));
}

json_t *
sg_user_merge(const json_t *current, const json_t *body, const char *name,
	const char *password_hash)
{
	json_t *rec = base_record(current, name), *v;

	if (rec == NULL)
		return NULL;
	merge_set(rec, body, "admin_channels");
	merge_set(rec, body, "admin_roles");
	v = json_object_get(body, "email");
	if (json_is_string(v) && json_string_length(v) > 0)
		json_object_set(rec, "email", v);
	else if (v != NULL)
		json_object_del(rec, "email");
	v = json_object_get(body, "disabled");
	if (json_is_boolean(v))
		json_object_set(rec, "disabled", v);
	if (password_hash != NULL)
		json_object_set_new(rec, "password_hash", json_string(password_hash));
	return rec;
}

json_t *
sg_role_merge(const json_t *current, const json_t *body, const char *name)
{
	json_t *rec = base_record(current, name);

	if (rec != NULL)
		merge_set(rec, body, "admin_channels");
	return rec;
}

/* Copies rec[key] into out when it is a non-empty array or a string. */
static void
copy_shown(json_t *out, const json_t *rec, const char *key)
{
	json_t *v = json_object_get(rec, key);

	if ((json_is_array(v) && json_array_size(v) > 0) || json_is_string(v))
		json_object_set(out, key, v);
}

json_t *
sg_user_public(const json_t *user, const json_t *channels, const json_t *roles)
{
	json_t *out = json_object();

	if (out == NULL)
		return NULL;
	copy_shown(out, user, "name");
	copy_shown(out, user, "admin_channels");
	copy_shown(out, user, "email");
	json_object_set_new(out, "disabled", json_boolean(sg_user_disabled(user)));
	copy_shown(out, user, "admin_roles");
	if (json_array_size(channels) > 0)
		json_object_set(out, "all_channels", (json_t *)channels);
	if (json_array_size(roles) > 0)
		json_object_set(out, "roles", (json_t *)roles);
	copy_shown(out, user, "jwt_issuer");
	copy_shown(out, user, "jwt_roles");
	copy_shown(out, user, "jwt_channels");
	copy_shown(out, user, "jwt_last_updated");
	return out;
}

json_t *
sg_role_public(const json_t *role)
{
	json_t *out = json_object();

	if (out == NULL)
		return NULL;
	copy_shown(out, role, "name");
	copy_shown(out, role, "admin_channels");
	if (json_object_get(out, "admin_channels") != NULL)
		json_object_set(out, "all_channels", json_object_get(out, "admin_channels"));
	return out;
}

int
sg_user_disabled(const json_t *user)
{
	return json_is_true(json_object_get(user, "disabled"));
}

const char *
sg_user_password_hash(const json_t *user)
{
	return json_string_value(json_object_get(user, "password_hash"));
}
