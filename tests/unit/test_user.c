/*
 * test_user.c: user and role rules, documents, grants, and passwords.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "password.h"
#include "store.h"
#include "tap.h"
#include "user.h"

static void
test_names(void)
{
	char longname[SG_NAME_MAX + 2];

	tap_ok(sg_user_name_valid("alice"), "plain name");
	tap_ok(sg_user_name_valid("al ice.o'neil@x"), "name with punctuation and a letter");
	tap_ok(sg_user_name_valid("\xc3\xa9t\xc3\xa9"), "UTF-8 name");
	tap_ok(!sg_user_name_valid(""), "empty name refused");
	tap_ok(!sg_user_name_valid("..."), "name without letter or digit refused");
	tap_ok(!sg_user_name_valid("a/b"), "slash refused");
	tap_ok(!sg_user_name_valid("a:b"), "colon refused");
	tap_ok(!sg_user_name_valid("a,b"), "comma refused");
	tap_ok(!sg_user_name_valid("a`b"), "backtick refused");
	tap_ok(!sg_user_name_valid("a\nb"), "control character refused");
	tap_ok(!sg_user_name_valid("\xff"
				   "a"),
		"invalid UTF-8 refused");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[SG_NAME_MAX + 1] = '\0';
	tap_ok(!sg_user_name_valid(longname), "240 bytes refused");
	longname[SG_NAME_MAX] = '\0';
	tap_ok(sg_user_name_valid(longname), "239 bytes allowed");
	tap_ok(sg_channel_name_valid("a-b+c=d/e_f.g@h"), "channel punctuation");
	tap_ok(sg_channel_name_valid("*"), "star channel");
	tap_ok(!sg_channel_name_valid("a*"), "star inside refused");
	tap_ok(!sg_channel_name_valid("a b"), "space in channel refused");
	tap_ok(!sg_channel_name_valid("a,b"), "comma in channel refused");
	tap_ok(!sg_channel_name_valid(""), "empty channel refused");
}

static json_t *
parse(const char *text)
{
	return json_loads(text, JSON_REJECT_DUPLICATES, NULL);
}

static void
check_doc(const char *body, const json_t *current, int want, const char *want_reason,
	const char *name)
{
	struct sg_error err;
	json_t *b = parse(body);
	int rc;

	sg_error_clear(&err);
	rc = sg_user_check_doc(b, "alice", current, &err);
	tap_is_int(rc, want, name);
	if (want_reason != NULL)
		tap_is_str(err.reason, want_reason, name);
	json_decref(b);
}

static void
test_docs(void)
{
	json_t *cur, *merged, *body, *pub, *chans, *roles;
	struct sg_error err;
	char *s;

	check_doc("{\"name\":\"alice\",\"password\":\"pw1\",\"admin_channels\":[\"a\"],"
		  "\"admin_roles\":[\"r\"],\"email\":\"a@b.c\",\"disabled\":false}",
		NULL, 0, NULL, "every writable field accepted");
	check_doc("{\"name\":\"bob\"}", NULL, -1, "name in the body differs from the URL",
		"name must match the URL");
	check_doc("{\"password\":\"pw\"}", NULL, -1, "Passwords must be at least three characters",
		"short password refused");
	check_doc("{\"password\":12}", NULL, -1, "password must be a string", "password type");
	check_doc("{\"admin_channels\":\"a\"}", NULL, -1,
		"admin_channels must be an array of strings", "channels type");
	check_doc("{\"admin_channels\":[\"a b\"]}", NULL, -1, "Invalid name in admin_channels",
		"bad channel name");
	check_doc("{\"admin_roles\":[\"a/b\"]}", NULL, -1, "Invalid name in admin_roles",
		"bad role name");
	check_doc("{\"disabled\":\"yes\"}", NULL, -1, "disabled must be a boolean",
		"disabled type");
	check_doc("{\"email\":\"nobody\"}", NULL, -1, "Invalid email address", "bad email");
	check_doc("{\"colour\":\"red\"}", NULL, -1, "Unknown field colour", "unknown field");

	cur = parse("{\"name\":\"alice\",\"all_channels\":[\"!\",\"a\"]}");
	check_doc("{\"all_channels\":[\"!\",\"a\"]}", cur, 0, NULL,
		"read-only field with the same value accepted");
	check_doc("{\"all_channels\":[\"b\"]}", cur, -1, "all_channels is read-only",
		"read-only field with another value refused");
	check_doc("{\"jwt_roles\":[]}", cur, 0, NULL, "empty read-only array equals absent");
	json_decref(cur);

	cur = parse("{\"name\":\"alice\",\"password_hash\":\"$2b$x\",\"admin_channels\":[\"a\"],"
		    "\"email\":\"a@b.c\"}");
	body = parse("{\"admin_channels\":[\"z\",\"b\",\"z\"],\"disabled\":true}");
	merged = sg_user_merge(cur, body, "alice", NULL);
	s = json_dumps(merged, JSON_SORT_KEYS | JSON_COMPACT);
	tap_is_str(s,
		"{\"admin_channels\":[\"b\",\"z\"],\"disabled\":true,\"email\":\"a@b.c\","
		"\"name\":\"alice\",\"password_hash\":\"$2b$x\"}",
		"merge sorts channels and keeps fields left out");
	free(s);
	json_decref(body);
	body = parse("{\"email\":null}");
	json_decref(cur);
	cur = merged;
	merged = sg_user_merge(cur, body, "alice", "$2b$new");
	tap_ok(json_object_get(merged, "email") == NULL, "null email clears it");
	tap_is_str(sg_user_password_hash(merged), "$2b$new", "new hash replaces the old");
	tap_ok(sg_user_disabled(merged), "disabled kept");

	chans = parse("[\"!\",\"b\",\"z\"]");
	roles = parse("[]");
	pub = sg_user_public(merged, chans, roles);
	s = json_dumps(pub, JSON_SORT_KEYS | JSON_COMPACT);
	tap_is_str(s,
		"{\"admin_channels\":[\"b\",\"z\"],\"all_channels\":[\"!\",\"b\",\"z\"],"
		"\"disabled\":true,\"name\":\"alice\"}",
		"public view: no hash, empty arrays left out");
	free(s);
	json_decref(pub);
	json_decref(chans);
	json_decref(roles);
	json_decref(body);
	json_decref(cur);
	json_decref(merged);

	sg_error_clear(&err);
	body = parse("{\"password\":\"abc\"}");
	tap_is_int(sg_user_check_doc(body, "GUEST", NULL, &err), -1, "GUEST takes no password");
	json_decref(body);
	body = parse("{\"admin_channels\":[\"x\"],\"nope\":1}");
	tap_is_int(sg_role_check_doc(body, "team", NULL, &err), -1, "role: unknown field refused");
	tap_is_str(err.reason, "Unknown field nope", "role: reason names the field");
	json_decref(body);
}

static void
test_passwords(void)
{
	char hash[SG_PASSWORD_HASH_MAX];
	struct sg_error err;
	unsigned long computed, cached, c0, k0;

	tap_is_int(sg_password_hash("correct horse", hash, sizeof(hash), &err), 0, "hash");
	tap_ok(strncmp(hash, "$2b$10$", 7) == 0, "bcrypt, cost 10");
	sg_password_stats(&c0, &k0);
	tap_ok(sg_password_verify("alice", "correct horse", hash), "right password");
	tap_ok(sg_password_verify("alice", "correct horse", hash), "right password again");
	sg_password_stats(&computed, &cached);
	tap_is_int((long long)(computed - c0), 1, "bcrypt ran once for two verifications");
	tap_is_int((long long)(cached - k0), 1, "second verification came from the cache");
	tap_ok(!sg_password_verify("alice", "wrong", hash), "wrong password");
	tap_ok(!sg_password_verify("bob", "correct horse", "$2b$10$abc"), "other hash misses");
	tap_ok(!sg_password_verify("alice", "correct horse", NULL), "missing hash never matches");
	tap_ok(!sg_password_verify("alice", "correct horse", ""), "empty hash never matches");
	sg_password_cache_clear();
	sg_password_stats(&c0, &k0);
	tap_ok(sg_password_verify("alice", "correct horse", hash), "after clear");
	sg_password_stats(&computed, &cached);
	tap_is_int((long long)(computed - c0), 1, "a cleared cache runs bcrypt again");
}

int
main(void)
{
	test_names();
	test_docs();
	test_passwords();
	return tap_done();
}
