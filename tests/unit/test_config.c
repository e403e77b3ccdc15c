/*
 * test_config.c: loading and checking the configuration file.
 *
 * The edge cases are data: every .json file in tests/data/config/valid
 * must load, and every tests/data/config/invalid/NAME.json must fail with
 * exactly the line in NAME.err, where @FILE@ stands for the file name passed to
 * sg_config_load.  Two valid files (the full example and the minimal one)
 * are also checked value by value here.  Secret files are made at run time
 * in a temporary directory, since git does not keep file modes.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "tap.h"
#include "testutil.h"

/* Largest data file the test reads (an expected error line). */
#define FILE_MAX 4096

static const char *srcdir;

/* Writes s to path with the given mode (set explicitly, whatever the umask). */
static int
write_file(const char *path, const char *s, mode_t mode)
{
	size_t n = strlen(s);
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, s, n) != (ssize_t)n || fchmod(fd, mode) != 0)
		rc = -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Builds the expected line from a .err file: @FILE@ replaced, newline cut. */
static int
expected_line(const char *errpath, const char *file, struct sg_buf *out)
{
	struct sg_buf raw;
	const char *p, *at;
	int rc = -1;

	sg_buf_init(&raw, FILE_MAX);
	sg_buf_reset(out);
	if (test_read_file(errpath, &raw) != 0)
		goto out;
	while (raw.len > 0 && raw.data[raw.len - 1] == '\n')
		raw.data[--raw.len] = '\0';
	p = sg_buf_str(&raw);
	while ((at = strstr(p, "@FILE@")) != NULL) {
		if (sg_buf_add(out, p, (size_t)(at - p)) != 0 || sg_buf_adds(out, file) != 0)
			goto out;
		p = at + 6;
	}
	if (sg_buf_adds(out, p) != 0)
		goto out;
	rc = 0;
out:
	sg_buf_free(&raw);
	return rc;
}

static int
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int
json_only(const struct dirent *d)
{
	return has_suffix(d->d_name, ".json");
}

/* Every file in valid/ loads. */
static void
test_valid_dir(void)
{
	struct dirent **names = NULL;
	struct sg_config *cfg;
	struct sg_error err;
	struct sg_buf path, name;
	int i, n;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_init(&name, FILE_MAX);
	sg_buf_addf(&path, "%s/tests/data/config/valid", srcdir);
	n = scandir(sg_buf_str(&path), &names, json_only, alphasort);
	if (!tap_ok(n >= 4, "valid config cases found"))
		printf("#   %s: %s\n", sg_buf_str(&path), strerror(errno));
	for (i = 0; i < n; i++) {
		sg_buf_reset(&path);
		sg_buf_addf(&path, "%s/tests/data/config/valid/%s", srcdir, names[i]->d_name);
		sg_buf_reset(&name);
		sg_buf_addf(&name, "valid/%s loads", names[i]->d_name);
		sg_error_clear(&err);
		cfg = NULL;
		if (!tap_is_int(sg_config_load(sg_buf_str(&path), &cfg, &err), 0,
			    sg_buf_str(&name)))
			printf("#   %s\n", err.reason);
		sg_config_free(cfg);
		free(names[i]);
	}
	free(names);
	sg_buf_free(&path);
	sg_buf_free(&name);
}

/* Every NAME.json in invalid/ fails with the line in NAME.err. */
static void
test_invalid_dir(void)
{
	struct dirent **names = NULL;
	struct sg_config *cfg;
	struct sg_error err;
	struct sg_buf path, errpath, want, name;
	int i, n, rc;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_init(&errpath, FILE_MAX);
	sg_buf_init(&want, FILE_MAX);
	sg_buf_init(&name, FILE_MAX);
	sg_buf_addf(&path, "%s/tests/data/config/invalid", srcdir);
	n = scandir(sg_buf_str(&path), &names, json_only, alphasort);
	if (!tap_ok(n >= 20, "invalid config cases found"))
		printf("#   %s: %s\n", sg_buf_str(&path), strerror(errno));
	for (i = 0; i < n; i++) {
		sg_buf_reset(&path);
		sg_buf_addf(&path, "%s/tests/data/config/invalid/%s", srcdir, names[i]->d_name);
		sg_buf_reset(&errpath);
		sg_buf_add(&errpath, path.data, path.len - strlen(".json"));
		sg_buf_adds(&errpath, ".err");
		sg_buf_reset(&name);
		sg_buf_addf(&name, "invalid/%s is refused", names[i]->d_name);
		if (expected_line(sg_buf_str(&errpath), sg_buf_str(&path), &want) != 0) {
			tap_ok(0, sg_buf_str(&name));
			printf("#   cannot read %s\n", sg_buf_str(&errpath));
			free(names[i]);
			continue;
		}
		sg_error_clear(&err);
		cfg = NULL;
		rc = sg_config_load(sg_buf_str(&path), &cfg, &err);
		tap_is_int(rc, -1, sg_buf_str(&name));
		tap_ok(rc != 0 && cfg == NULL && err.status == 500, "  no config, status 500");
		tap_is_str(err.reason, sg_buf_str(&want), "  error line");
		sg_config_free(cfg);
		free(names[i]);
	}
	free(names);
	sg_buf_free(&path);
	sg_buf_free(&errpath);
	sg_buf_free(&want);
	sg_buf_free(&name);
}

/* Loads tests/data/config/valid/<file>, or returns NULL after a failed check. */
static struct sg_config *
load_valid(const char *file)
{
	struct sg_config *cfg = NULL;
	struct sg_error err;
	struct sg_buf path;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_addf(&path, "%s/tests/data/config/valid/%s", srcdir, file);
	if (sg_config_load(sg_buf_str(&path), &cfg, &err) != 0) {
		tap_ok(0, file);
		printf("#   %s\n", err.reason);
	}
	sg_buf_free(&path);
	return cfg;
}

/* The minimal file: every default of config.h. */
static void
test_minimal(void)
{
	struct sg_config *cfg = load_valid("minimal.json");
	const struct sg_db_config *db;

	if (cfg == NULL)
		return;
	tap_is_str(cfg->store_path, LOCALSTATEDIR "/lib/syncgate", "default store.path");
	tap_is_int(cfg->log_level, SG_LOG_INFO, "default logging.level");
	tap_is_int(cfg->log_syslog, 1, "default logging.syslog");
	tap_is_int(cfg->http_timeout_ms, 5000, "default http_client.timeout_ms");
	tap_ok(cfg->ca_file == NULL, "default ca_file is unset");
	tap_is_int((long long)cfg->n_admins, 0, "no admin users");
	tap_is_int((long long)cfg->n_dbs, 1, "one database");
	db = sg_config_db(cfg, "db");
	if (tap_ok(db != NULL, "database db found")) {
		tap_is_str(db->name, "db", "database name");
		tap_is_str(db->cookie_name, "SyncGatewaySession", "default cookie name");
		tap_is_int(db->cookie_secure, 1, "default cookie secure");
		tap_is_int(db->cookie_http_only, 1, "default cookie http only");
		tap_is_str(db->cookie_same_site, "Lax", "default SameSite");
		tap_is_int(db->session_ttl, 86400, "default session_ttl");
		tap_is_int(db->disable_password_auth, 0, "default disable_password_auth");
		tap_is_int(db->send_www_authenticate, 1, "default send_www_authenticate_header");
		tap_is_int(db->guest_disabled, 1, "default guest disabled");
		tap_is_int((long long)db->guest_channels.n, 0, "default guest channels empty");
		tap_is_int((long long)db->n_providers, 0, "no providers");
		tap_is_int((long long)db->n_local_jwt, 0, "no local_jwt");
		tap_ok(sg_config_provider(db, "google") == NULL, "no provider found");
	}
	tap_ok(sg_config_db(cfg, "other") == NULL, "unknown database not found");
	tap_ok(sg_config_db(cfg, NULL) == NULL, "NULL database name not found");
	tap_ok(sg_config_db(cfg, "DB") == NULL, "database lookup is exact");
	sg_config_free(cfg);
}

static void
test_full_provider(const struct sg_db_config *db)
{
	const struct sg_oidc_provider *g, *k;

	tap_is_int((long long)db->n_providers, 2, "two providers");
	tap_is_int((long long)db->default_provider, 1, "default_provider names the second");
	g = sg_config_provider(db, "google");
	k = sg_config_provider(db, "keycloak");
	tap_ok(g == &db->providers[0] && k == &db->providers[1], "providers in file order");
	tap_ok(sg_config_provider(db, "Google") == NULL, "provider lookup is exact");
	if (g == NULL || k == NULL)
		return;
	tap_is_str(g->issuer, "https://accounts.google.com", "google issuer");
	tap_is_str(g->client_id, "google-client", "google client_id");
	tap_is_str(g->client_secret, "google-secret", "validation_key is the secret");
	tap_ok(g->validation_key_file == NULL, "null validation_key_file is unset");
	tap_is_str(g->callback_url, "https://sync.example.com/db/_oidc_callback", "callback_url");
	tap_is_int(g->register_users, 1, "register");
	tap_is_str(g->username_claim, "email", "username_claim");
	tap_ok(g->user_prefix == NULL, "null user_prefix is unset");
	tap_is_int(g->disable_session, 0, "disable_session false");
	tap_is_int((long long)g->scope.n, 3, "three scopes");
	if (g->scope.n == 3)
		tap_is_str(g->scope.v[2], "profile", "scope in order");
	tap_is_int(g->include_access, 1, "include_access");
	tap_ok(g->discovery_url == NULL && g->roles_claim == NULL && g->channels_claim == NULL,
		"null discovery_url and claims are unset");

	tap_ok(k->client_secret == NULL, "no secret without validation_key");
	tap_is_str(k->issuer, "https://idp.example.com:8443/realms/sync", "issuer with port");
	tap_is_str(k->callback_url, "http://sync.example.com/db/_oidc_callback",
		"http callback_url allowed");
	tap_is_int(k->register_users, 0, "register false");
	tap_is_str(k->user_prefix, "kc", "user_prefix");
	tap_is_int(k->disable_session, 1, "disable_session");
	tap_is_int((long long)k->scope.n, 1, "one scope");
	tap_is_int(k->include_access, 0, "include_access false");
	tap_is_str(k->discovery_url,
		"https://idp.example.com:8443/realms/sync/.well-known/openid-configuration",
		"discovery_url");
	tap_is_str(k->roles_claim, "roles", "roles_claim");
	tap_is_str(k->channels_claim, "channels", "channels_claim");
}

static void
test_full_local_jwt(const struct sg_db_config *db)
{
	const struct sg_local_jwt *a, *r;

	if (!tap_is_int((long long)db->n_local_jwt, 2, "two local_jwt issuers"))
		return;
	a = &db->local_jwt[0];
	r = &db->local_jwt[1];
	tap_is_str(a->name, "app", "local_jwt in file order");
	tap_is_str(a->issuer, "https://app.example.com", "local_jwt issuer");
	tap_is_str(a->client_id, "app-client", "local_jwt client_id");
	tap_is_int((long long)a->algorithms.n, 2, "two algorithms");
	if (a->algorithms.n == 2)
		tap_is_str(a->algorithms.v[1], "ES256", "algorithms in order");
	tap_is_int((long long)json_array_size(a->keys), 1, "one key");
	tap_is_str(json_string_value(json_object_get(json_array_get(a->keys, 0), "kid")), "k1",
		"key kept as JSON");
	tap_ok(a->jwks_uri == NULL, "null jwks_uri is unset");
	tap_is_int(a->register_users, 1, "local_jwt register");
	tap_is_str(a->username_claim, "sub", "local_jwt username_claim");
	tap_is_str(a->user_prefix, "app", "local_jwt user_prefix");
	tap_is_str(a->roles_claim, "r", "local_jwt roles_claim");
	tap_is_str(a->channels_claim, "c", "local_jwt channels_claim");
	tap_is_str(r->name, "remote", "second local_jwt");
	tap_is_str(r->jwks_uri, "https://jwt.example.com/jwks.json", "jwks_uri");
	tap_is_int((long long)json_array_size(r->keys), 0, "empty keys with jwks_uri");
	tap_ok(r->username_claim == NULL && r->user_prefix == NULL, "nulls are unset");
}

/* The full example: every key of SPEC section 3, none at its default. */
static void
test_full(void)
{
	struct sg_config *cfg = load_valid("full.json");
	const struct sg_db_config *db;

	if (cfg == NULL)
		return;
	tap_is_str(cfg->store_path, "/srv/syncgate/store", "store.path");
	tap_is_int(cfg->log_level, SG_LOG_DEBUG, "logging.level");
	tap_is_int(cfg->log_syslog, 0, "logging.syslog");
	tap_is_int(cfg->http_timeout_ms, 12000, "http_client.timeout_ms");
	tap_is_str(cfg->ca_file, "/etc/ssl/certs/ca-certificates.crt", "ca_file");
	if (tap_is_int((long long)cfg->n_admins, 2, "two admin users")) {
		tap_is_str(cfg->admins[0].name, "admin", "admin user in file order");
		tap_ok(strncmp(cfg->admins[0].hash, "$2b$10$", 7) == 0, "admin hash");
		tap_is_str(cfg->admins[1].name, "ops", "second admin user");
	}
	tap_is_int((long long)cfg->n_dbs, 2, "two databases");
	tap_ok(sg_config_db(cfg, "second_db(1)") == &cfg->dbs[1], "second database");
	db = sg_config_db(cfg, "db");
	if (!tap_ok(db == &cfg->dbs[0], "database db first"))
		goto out;
	tap_is_str(db->cookie_name, "SGSession", "session_cookie_name");
	tap_is_int(db->cookie_secure, 1, "session_cookie_secure");
	tap_is_int(db->cookie_http_only, 0, "session_cookie_http_only");
	tap_is_str(db->cookie_same_site, "Strict", "session_cookie_same_site");
	tap_is_int(db->session_ttl, 3600, "session_ttl");
	tap_is_int(db->disable_password_auth, 1, "disable_password_auth");
	tap_is_int(db->send_www_authenticate, 0, "send_www_authenticate_header");
	tap_is_int(db->guest_disabled, 0, "guest.disabled");
	if (tap_is_int((long long)db->guest_channels.n, 4, "guest.admin_channels")) {
		tap_is_str(db->guest_channels.v[2], "*", "star channel");
		tap_is_str(db->guest_channels.v[3], "caf\xc3\xa9", "UTF-8 letters in a channel");
	}
	test_full_provider(db);
	test_full_local_jwt(db);
out:
	sg_config_free(cfg);
}

static void
test_first_provider_default(void)
{
	struct sg_config *cfg = load_valid("first_provider_default.json");

	if (cfg == NULL)
		return;
	tap_is_str(cfg->dbs[0].providers[cfg->dbs[0].default_provider].name, "zeta",
		"first provider in the file is the default");
	sg_config_free(cfg);
}

static void
test_missing_file(void)
{
	struct sg_config *cfg = NULL;
	struct sg_error err;
	struct sg_buf path, want;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_init(&want, FILE_MAX);
	sg_buf_addf(&path, "%s/tests/data/config/no-such-file.json", srcdir);
	sg_buf_addf(&want, "%s: cannot read: %s", sg_buf_str(&path), strerror(ENOENT));
	tap_is_int(sg_config_load(sg_buf_str(&path), &cfg, &err), -1, "missing file refused");
	tap_is_str(err.reason, sg_buf_str(&want), "missing file error line");
	tap_ok(cfg == NULL, "no config for a missing file");
	sg_buf_free(&path);
	sg_buf_free(&want);
}

static void
test_default_path(void)
{
	setenv("SYNCGATE_CONFIG", "/tmp/x.json", 1);
	tap_is_str(sg_config_default_path(), "/tmp/x.json", "SYNCGATE_CONFIG wins");
	setenv("SYNCGATE_CONFIG", "", 1);
	tap_is_str(sg_config_default_path(), SYSCONFDIR "/syncgate/syncgate.json",
		"empty SYNCGATE_CONFIG ignored");
	unsetenv("SYNCGATE_CONFIG");
	tap_is_str(sg_config_default_path(), SYSCONFDIR "/syncgate/syncgate.json",
		"default path under sysconfdir");
	sg_config_free(NULL);
}

/*
 * Writes a config whose provider takes its secret from secretfile (and
 * adds extra members to the provider), loads it, and returns what
 * sg_config_load returned; *cfg and err are filled in.
 */
static int
load_with_secret(const char *dir, const char *secretfile, const char *extra, struct sg_config **cfg,
	struct sg_error *err)
{
	struct sg_buf path, json;
	int rc = -1;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_init(&json, FILE_MAX);
	sg_buf_addf(&path, "%s/syncgate.json", dir);
	sg_buf_addf(&json,
		"{\"databases\": {\"db\": {\"oidc\": {\"providers\": {\"p\": "
		"{\"issuer\": \"https://p.example.com\", \"client_id\": \"c\", "
		"\"validation_key_file\": \"%s\"%s}}}}}}",
		secretfile, extra);
	*cfg = NULL;
	sg_error_clear(err);
	if (write_file(sg_buf_str(&path), sg_buf_str(&json), 0600) != 0) {
		sg_error_set(err, 0, "cannot write %s", sg_buf_str(&path));
		goto out;
	}
	rc = sg_config_load(sg_buf_str(&path), cfg, err);
out:
	sg_buf_free(&path);
	sg_buf_free(&json);
	return rc;
}

static void
test_secret_file(void)
{
	char tmpl[] = "/tmp/sgconfigXXXXXX";
	const char *secret = "s3cret-VALUE-42", *dir;
	struct sg_config *cfg;
	struct sg_error err;
	struct sg_buf sfile, cfile, want;

	dir = mkdtemp(tmpl);
	if (!tap_ok(dir != NULL, "temporary directory"))
		return;
	sg_buf_init(&sfile, FILE_MAX);
	sg_buf_init(&cfile, FILE_MAX);
	sg_buf_init(&want, FILE_MAX);
	sg_buf_addf(&sfile, "%s/client.secret", dir);
	sg_buf_addf(&cfile, "%s/syncgate.json", dir);

	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42\n", 0600);
	if (!tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), 0,
		    "secret file with mode 0600 loads"))
		printf("#   %s\n", err.reason);
	if (cfg != NULL) {
		tap_is_str(cfg->dbs[0].providers[0].client_secret, secret,
			"secret read, trailing newline removed");
		tap_is_str(cfg->dbs[0].providers[0].validation_key_file, sg_buf_str(&sfile),
			"validation_key_file kept");
	}
	sg_config_free(cfg);

	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42", 0640);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), 0,
		"secret file without newline, group-readable, loads");
	if (cfg != NULL)
		tap_is_str(cfg->dbs[0].providers[0].client_secret, secret, "secret as is");
	sg_config_free(cfg);

	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42\n", 0644);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), -1,
		"world-readable secret file refused");
	sg_buf_addf(&want,
		"%s: databases.db.oidc.providers.p.validation_key_file: "
		"%s is readable by others (mode 0644)",
		sg_buf_str(&cfile), sg_buf_str(&sfile));
	tap_is_str(err.reason, sg_buf_str(&want), "readable-by-others error line");
	tap_ok(strstr(err.reason, secret) == NULL, "error line does not hold the secret");

	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42\n", 0602);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), -1,
		"world-writable secret file refused");
	tap_ok(strstr(err.reason, "is writable by others") != NULL, "writable-by-others error");

	write_file(sg_buf_str(&sfile), "\n", 0600);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), -1,
		"empty secret file refused");
	tap_ok(strstr(err.reason, "is empty") != NULL, "empty secret error");

	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42\nsecond line\n", 0600);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), -1,
		"two-line secret file refused");
	tap_ok(strstr(err.reason, secret) == NULL && strstr(err.reason, "second") == NULL,
		"two-line error does not hold the secret");

	/* A later error in the same provider must not echo the secret either. */
	write_file(sg_buf_str(&sfile), "s3cret-VALUE-42\n", 0600);
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile),
			   ", \"validation_key\": \"s3cret-VALUE-42\"", &cfg, &err),
		-1, "validation_key with validation_key_file refused");
	tap_ok(strstr(err.reason, secret) == NULL, "both-set error does not hold the secret");
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), ", \"scope\": [\"s3cret-VALUE-42\"]",
			   &cfg, &err),
		-1, "another error in a provider with a secret file");
	tap_ok(strstr(err.reason, "scope") != NULL && strstr(err.reason, secret) == NULL,
		"that error does not hold the secret");

	unlink(sg_buf_str(&sfile));
	tap_is_int(load_with_secret(dir, sg_buf_str(&sfile), "", &cfg, &err), -1,
		"missing secret file refused");
	sg_buf_reset(&want);
	sg_buf_addf(&want,
		"%s: databases.db.oidc.providers.p.validation_key_file: "
		"cannot read %s: %s",
		sg_buf_str(&cfile), sg_buf_str(&sfile), strerror(ENOENT));
	tap_is_str(err.reason, sg_buf_str(&want), "missing secret file error line");

	unlink(sg_buf_str(&cfile));
	rmdir(dir);
	sg_buf_free(&sfile);
	sg_buf_free(&cfile);
	sg_buf_free(&want);
}

/* The sample shipped in etc/ loads as it is. */
static void
test_sample(void)
{
	struct sg_config *cfg = NULL;
	struct sg_error err;
	struct sg_buf path;

	sg_buf_init(&path, FILE_MAX);
	sg_buf_addf(&path, "%s/etc/syncgate.json", srcdir);
	if (!tap_is_int(sg_config_load(sg_buf_str(&path), &cfg, &err), 0,
		    "etc/syncgate.json loads"))
		printf("#   %s\n", err.reason);
	sg_config_free(cfg);
	sg_buf_free(&path);
}

int
main(void)
{
	srcdir = getenv("top_srcdir");
	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	test_valid_dir();
	test_invalid_dir();
	test_minimal();
	test_full();
	test_first_provider_default();
	test_missing_file();
	test_default_path();
	test_secret_file();
	test_sample();
	return tap_done();
}
