/*
 * test_oidc.c: user names from ID token claims and the routing of Bearer
 * tokens to a database's providers.  The name cases are data, one per
 * line of tests/data/oidc/usernames.txt.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc.h"
#include "provider.h"
#include "tap.h"
#include "user.h"

/* Splits line at '|' into at most n fields; returns the count. */
static size_t
split(char *line, char **f, size_t n)
{
	size_t i = 0;

	f[i++] = line;
	for (char *p = line; *p != '\0' && i < n; p++)
		if (*p == '|') {
			*p = '\0';
			f[i++] = p + 1;
		}
	return i;
}

static void
test_usernames(void)
{
	const char *top = getenv("top_srcdir");
	char path[4096], line[1024], name[1100];
	char *f[5];
	struct sg_db_config db;
	struct sg_oidc_provider p;
	struct sg_idp idp;
	struct sg_buf out;
	struct sg_error err;
	json_t *claims;
	size_t cases = 0;
	FILE *fp;
	int rc;

	snprintf(path, sizeof(path), "%s/tests/data/oidc/usernames.txt", top ? top : ".");
	fp = fopen(path, "r");
	if (!tap_ok(fp != NULL, "open tests/data/oidc/usernames.txt"))
		return;
	memset(&db, 0, sizeof(db));
	db.name = "db";
	sg_buf_init(&out, SG_NAME_MAX);
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!tap_ok(split(line, f, 5) == 5, "case has 5 fields"))
			continue;
		memset(&p, 0, sizeof(p));
		p.name = "op";
		p.issuer = f[0];
		p.username_claim = *f[1] != '\0' ? f[1] : NULL;
		p.user_prefix = *f[2] != '\0' ? f[2] : NULL;
		sg_idp_oidc(&idp, &db, &p);
		claims = json_loads(f[3], 0, NULL);
		sg_error_clear(&err);
		rc = sg_oidc_username(&idp, claims, &out, &err);
		snprintf(name, sizeof(name), "%s %s -> %s", f[0], f[3], f[4]);
		if (strcmp(f[4], "!") == 0) {
			tap_ok(rc == -1 && err.status == 401, name);
		} else {
			tap_ok(rc == 0, name);
			tap_is_str(sg_buf_str(&out), f[4], "  the name");
		}
		json_decref(claims);
		cases++;
	}
	fclose(fp);
	sg_buf_free(&out);
	tap_ok(cases >= 10, "at least 10 name cases read");
}

static void
test_route(void)
{
	struct sg_oidc_provider provs[2];
	struct sg_local_jwt local[1];
	struct sg_db_config db;
	struct sg_idp idp;
	json_t *c;

	memset(&db, 0, sizeof(db));
	memset(provs, 0, sizeof(provs));
	memset(local, 0, sizeof(local));
	db.name = "db";
	provs[0].name = "a";
	provs[0].issuer = "https://op.example";
	provs[0].client_id = "one";
	provs[1].name = "b";
	provs[1].issuer = "https://op.example";
	provs[1].client_id = "two";
	local[0].name = "app";
	local[0].issuer = "https://app.example";
	local[0].client_id = "one";
	db.providers = provs;
	db.n_providers = 2;
	db.local_jwt = local;
	db.n_local_jwt = 1;

	c = json_pack("{s:s, s:s}", "iss", "https://op.example", "aud", "two");
	tap_ok(sg_idp_route(&db, c, &idp) == 0 && idp.oidc == &provs[1],
		"same issuer: routed by aud to the second provider");
	json_decref(c);
	c = json_pack("{s:s, s:[s,s]}", "iss", "https://op.example", "aud", "x", "one");
	tap_ok(sg_idp_route(&db, c, &idp) == 0 && idp.oidc == &provs[0],
		"aud array holding the first client");
	json_decref(c);
	c = json_pack("{s:s, s:s}", "iss", "https://app.example", "aud", "one");
	tap_ok(sg_idp_route(&db, c, &idp) == 0 && idp.local == &local[0] &&
			strcmp(idp.name, "app") == 0,
		"local_jwt issuer");
	json_decref(c);
	c = json_pack("{s:s, s:s}", "iss", "https://op.example/", "aud", "one");
	tap_ok(sg_idp_route(&db, c, &idp) == -1, "issuer must match exactly");
	json_decref(c);
	c = json_pack("{s:s, s:s}", "iss", "https://op.example", "aud", "three");
	tap_ok(sg_idp_route(&db, c, &idp) == -1, "unknown audience");
	json_decref(c);
	c = json_pack("{s:s, s:i}", "iss", "https://op.example", "aud", 1);
	tap_ok(sg_idp_route(&db, c, &idp) == -1, "aud of the wrong type");
	json_decref(c);
	c = json_pack("{s:s}", "aud", "one");
	tap_ok(sg_idp_route(&db, c, &idp) == -1, "no iss");
	json_decref(c);
}

int
main(void)
{
	test_usernames();
	test_route();
	return tap_done();
}
