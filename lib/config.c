/*
 * config.c: loading and checking the configuration file (SPEC section 3).
 *
 * The file is parsed once with Jansson, which keeps object members in
 * file order (since 2.8) and refuses duplicate keys on request.  The
 * parsed tree stays in struct sg_config so that every string handed out
 * is borrowed from it; only the arrays of structs and string pointers and
 * the client secrets are allocated here.
 *
 * Checking is strict: every object is first checked for unknown keys,
 * then each known key for its type and value, in a fixed order, so that
 * one bad file always gives the same single error line.  Every error has
 * status 500: a program with a bad configuration cannot serve anything.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "encode.h"
#include "log.h"
#include "secure.h"
#include "user.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

/*
 * Longest JSON path kept for an error line.  Longer paths (a hostile or
 * mistaken key of many kilobytes) are cut: the reason is cut to
 * SG_ERROR_REASON_MAX anyway.
 */
#define PATH_LEN SG_ERROR_REASON_MAX

/*
 * Largest client secret file.  Secrets are tens of bytes; a bigger file is
 * the wrong file, and reading it whole into memory is not worth allowing.
 */
#define SECRET_MAX 4096

/* Longest host name in a URL (RFC 1035 section 2.3.4). */
#define HOST_MAX 253

/* Flags of get_string. */
#define REQUIRED 1 /* absent is an error */
#define NULLABLE 2 /* null means unset */

/* Kinds of URL, each with its own rule (see check_url). */
enum url_kind {
	URL_ISSUER,  /* https, or http to loopback; no query */
	URL_FETCH,   /* discovery_url, jwks_uri: https, or http to loopback */
	URL_CALLBACK /* callback_url: http or https, any host */
};

/* What every check needs: the file name for the error line and the error. */
struct ctx {
	const char *file;
	struct sg_error *err;
};

static const char *const top_keys[] = {"store", "logging", "http_client", "admin_users",
	"databases", NULL};
static const char *const store_keys[] = {"path", NULL};
static const char *const logging_keys[] = {"level", "syslog", NULL};
static const char *const http_keys[] = {"timeout_ms", "ca_file", NULL};
static const char *const db_keys[] = {"session_cookie_name", "session_cookie_secure",
	"session_cookie_http_only", "session_cookie_same_site", "session_ttl",
	"disable_password_auth", "send_www_authenticate_header", "guest", "oidc", "local_jwt",
	NULL};
static const char *const guest_keys[] = {"disabled", "admin_channels", NULL};
static const char *const oidc_keys[] = {"default_provider", "providers", NULL};
static const char *const provider_keys[] = {"issuer", "client_id", "validation_key",
	"validation_key_file", "callback_url", "register", "username_claim", "user_prefix",
	"disable_session", "scope", "include_access", "discovery_url", "roles_claim",
	"channels_claim", NULL};
static const char *const local_jwt_keys[] = {"issuer", "client_id", "algorithms", "keys",
	"jwks_uri", "register", "username_claim", "user_prefix", "roles_claim", "channels_claim",
	NULL};

/* The signature algorithms SPEC section 7 allows: never none, never HS*. */
static const char *const algorithms[] = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
	NULL};
static const char *const same_site_values[] = {"Lax", "Strict", "None", NULL};
static const char *const default_scope[] = {"openid", "email"};

/*
 * Sets the error line "<file>: <path>: <what>" and returns -1.  The empty
 * path is the top-level value, named "(root)".
 */
static int
bad(struct ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
bad(struct ctx *c, const char *path, const char *fmt, ...)
{
	char what[SG_ERROR_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return sg_error_set(c->err, 500, "%s: %s: %s", c->file, *path != '\0' ? path : "(root)",
		what);
}

static int
no_memory(struct ctx *c)
{
	return sg_error_set(c->err, 500, "%s: out of memory", c->file);
}

/* Ends a path that snprintf cut with "...", so the cut shows. */
static void
mark_cut(char *out, size_t size, int n)
{
	if ((n < 0 || (size_t)n >= size) && size > 4)
		memcpy(out + size - 4, "...", 4);
}

/* Writes "parent.key" (or "key" at the top) into out. */
static void
join(char *out, size_t size, const char *parent, const char *key)
{
	mark_cut(out, size, snprintf(out, size, "%s%s%s", parent, *parent != '\0' ? "." : "", key));
}

/* Writes "parent[i]" into out. */
static void
join_index(char *out, size_t size, const char *parent, size_t i)
{
	mark_cut(out, size, snprintf(out, size, "%s[%zu]", parent, i));
}

static int
in_list(const char *s, const char *const *list)
{
	size_t i;

	for (i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return 1;
	return 0;
}

/*
 * Checks that obj (at path) is an object holding no key outside allowed.
 * The first unknown key in file order is the one reported.
 */
static int
check_object(struct ctx *c, json_t *obj, const char *path, const char *const *allowed)
{
	char kpath[PATH_LEN];
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return bad(c, path, "must be an object");
	json_object_foreach (obj, key, v) {
		if (!in_list(key, allowed)) {
			join(kpath, sizeof(kpath), path, key);
			return bad(c, kpath, "unknown key");
		}
	}
	return 0;
}

/*
 * Reads the optional member key of obj as an object: *out is NULL when it
 * is absent, and the object (borrowed) otherwise.
 */
static int
get_object(struct ctx *c, json_t *obj, const char *parent, const char *key,
	const char *const *allowed, json_t **out)
{
	char path[PATH_LEN];

	*out = json_object_get(obj, key);
	if (*out == NULL)
		return 0;
	join(path, sizeof(path), parent, key);
	return check_object(c, *out, path, allowed);
}

/*
 * Reads a string member.  Absent leaves *out alone (the default) unless
 * REQUIRED; null stores NULL when NULLABLE.  Empty strings are refused:
 * no key of the schema has a use for one.
 */
static int
get_string(struct ctx *c, json_t *obj, const char *parent, const char *key, int flags,
	const char **out)
{
	char path[PATH_LEN];
	json_t *v = json_object_get(obj, key);

	join(path, sizeof(path), parent, key);
	if (v == NULL) {
		if (flags & REQUIRED)
			return bad(c, path, "is required");
		return 0;
	}
	if (json_is_null(v) && (flags & NULLABLE)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return bad(c, path, "%s",
			(flags & NULLABLE) ? "must be a string or null" : "must be a string");
	if (json_string_length(v) == 0)
		return bad(c, path, "must not be empty");
	*out = json_string_value(v);
	return 0;
}

/* Reads a boolean member; absent leaves *out alone. */
static int
get_bool(struct ctx *c, json_t *obj, const char *parent, const char *key, int *out)
{
	char path[PATH_LEN];
	json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v)) {
		join(path, sizeof(path), parent, key);
		return bad(c, path, "must be a boolean");
	}
	*out = json_is_true(v);
	return 0;
}

/*
 * Reads an integer member in [min, max]; absent leaves *out alone.  A
 * number with a fraction or exponent (5000.0, 5e3) is not an integer.
 */
static int
get_int(struct ctx *c, json_t *obj, const char *parent, const char *key, long min, long max,
	long *out)
{
	char path[PATH_LEN];
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (v == NULL)
		return 0;
	join(path, sizeof(path), parent, key);
	if (!json_is_integer(v))
		return bad(c, path, "must be an integer");
	n = json_integer_value(v);
	if (n < min || n > max)
		return bad(c, path, "must be between %ld and %ld", min, max);
	*out = (long)n;
	return 0;
}

/*
 * Fills out with a new array of n borrowed strings (NULL when n is 0).
 */
static int
strlist_alloc(struct ctx *c, struct sg_strlist *out, size_t n)
{
	out->v = NULL;
	out->n = 0;
	if (n == 0)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (out->v == NULL)
		return no_memory(c);
	out->n = n;
	return 0;
}

/*
 * Reads an array of strings into out (which must be empty: out->v is
 * replaced, not freed).  When the member is absent, out holds a copy of
 * the ndef strings of def.  The strings are borrowed from the tree or from
 * def; the array of pointers is owned by out.
 */
static int
get_strlist(struct ctx *c, json_t *obj, const char *parent, const char *key, const char *const *def,
	size_t ndef, struct sg_strlist *out)
{
	char path[PATH_LEN];
	json_t *v = json_object_get(obj, key), *e;
	size_t i;

	if (v == NULL) {
		if (strlist_alloc(c, out, ndef) != 0)
			return -1;
		for (i = 0; i < ndef; i++)
			out->v[i] = def[i];
		return 0;
	}
	join(path, sizeof(path), parent, key);
	if (!json_is_array(v))
		return bad(c, path, "must be an array of strings");
	json_array_foreach (v, i, e) {
		if (!json_is_string(e))
			return bad(c, path, "must be an array of strings");
	}
	if (strlist_alloc(c, out, json_array_size(v)) != 0)
		return -1;
	json_array_foreach (v, i, e)
		out->v[i] = json_string_value(e);
	return 0;
}

/* Database names: [a-z][a-z0-9_$()+-]*, at most SG_DB_NAME_MAX bytes. */
static int
valid_db_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > SG_DB_NAME_MAX || s[0] < 'a' || s[0] > 'z')
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))
			continue;
		if (strchr("_$()+-", s[i]) == NULL)
			return 0;
	}
	return 1;
}

/* Provider and local_jwt names: [A-Za-z0-9-]+ (no '_', SPEC section 3). */
static int
valid_provider_name(const char *s)
{
	size_t i;

	if (*s == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '-')
			continue;
		return 0;
	}
	return 1;
}

/* A cookie name is an RFC 7230 token. */
static int
valid_cookie_name(const char *s)
{
	size_t i;

	if (*s == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= '0' && s[i] <= '9'))
			continue;
		if (strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
			return 0;
	}
	return 1;
}

/*
 * A scope value is an RFC 6749 scope-token (printable ASCII but space,
 * '"' and '\'): scopes are joined with spaces in the authorization
 * request, so a space inside one would forge a second scope.
 */
static int
valid_scope(const char *s)
{
	size_t i;

	if (*s == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

/* Printable ASCII only: for crypt hashes, which are in a fixed alphabet. */
static int
printable_ascii(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Returns 1 when any byte of s is a control character. */
static int
has_control(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return 0;
}

/*
 * Returns 1 when host (without brackets for IPv6) is loopback: a literal
 * address in 127.0.0.0/8, the literal ::1 (in any spelling inet_pton
 * accepts), or the name "localhost".  Names that merely resolve to
 * loopback do not count: what they resolve to can change.
 */
static int
loopback_host(const char *host, int bracketed)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (bracketed)
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return 0;
}

/*
 * Checks a URL of the given kind (SPEC section 3 and 8): "https://" or
 * "http://" (lowercase), an authority without user information, a host
 * that is a DNS name, an IPv4 literal or a bracketed IPv6 literal, an
 * optional port 1-65535, no fragment, no spaces or control characters.
 * Issuers and fetched URLs may use http only for a loopback host.
 */
static int
check_url(struct ctx *c, const char *path, const char *url, enum url_kind kind)
{
	char host[HOST_MAX + 1];
	struct in6_addr a6;
	const char *auth, *p, *port = NULL;
	size_t alen, hlen, i;
	int https, bracketed = 0;
	unsigned long portnum = 0;

	if (strncmp(url, "https://", 8) == 0) {
		https = 1;
		auth = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		https = 0;
		auth = url + 7;
	} else {
		return bad(c, path, "%s",
			kind == URL_CALLBACK ? "must be an http or https URL"
					     : "must be an https URL");
	}
	for (p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return bad(c, path,
				"must be a URL without spaces, control or "
				"non-ASCII characters");
	if (strchr(url, '#') != NULL)
		return bad(c, path, "must not have a fragment");
	if (kind == URL_ISSUER && strchr(url, '?') != NULL)
		return bad(c, path, "must not have a query");

	alen = strcspn(auth, "/?");
	if (memchr(auth, '@', alen) != NULL)
		return bad(c, path, "must not contain user information");
	if (auth[0] == '[') {
		p = memchr(auth, ']', alen);
		if (p == NULL)
			return bad(c, path, "has an invalid host");
		hlen = (size_t)(p - auth) - 1;
		if (hlen == 0 || hlen > HOST_MAX)
			return bad(c, path, "has an invalid host");
		memcpy(host, auth + 1, hlen);
		host[hlen] = '\0';
		bracketed = 1;
		p++;
		if (p < auth + alen) {
			if (*p != ':')
				return bad(c, path, "has an invalid host");
			port = p + 1;
		}
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return bad(c, path, "has an invalid host");
	} else {
		p = memchr(auth, ':', alen);
		hlen = p != NULL ? (size_t)(p - auth) : alen;
		if (hlen == 0 || hlen > HOST_MAX)
			return bad(c, path, "has an invalid host");
		memcpy(host, auth, hlen);
		host[hlen] = '\0';
		for (i = 0; i < hlen; i++) {
			if ((host[i] >= 'a' && host[i] <= 'z') ||
				(host[i] >= 'A' && host[i] <= 'Z') ||
				(host[i] >= '0' && host[i] <= '9') || host[i] == '.' ||
				host[i] == '-' || host[i] == '_')
				continue;
			return bad(c, path, "has an invalid host");
		}
		if (p != NULL)
			port = p + 1;
	}
	if (port != NULL) {
		/* Digits only, up to the end of the authority, 1-65535. */
		if (port == auth + alen || auth + alen - port > 5)
			return bad(c, path, "has an invalid port");
		for (p = port; p < auth + alen; p++) {
			if (*p < '0' || *p > '9')
				return bad(c, path, "has an invalid port");
			portnum = portnum * 10 + (unsigned long)(*p - '0');
		}
		if (portnum == 0 || portnum > 65535)
			return bad(c, path, "has an invalid port");
	}
	if (!https && kind != URL_CALLBACK && !loopback_host(host, bracketed))
		return bad(c, path, "http is allowed only for a loopback host");
	return 0;
}

/* Reads a string member that must be a URL of kind, if present. */
static int
get_url(struct ctx *c, json_t *obj, const char *parent, const char *key, int flags,
	enum url_kind kind, const char **out)
{
	char path[PATH_LEN];

	if (get_string(c, obj, parent, key, flags, out) != 0)
		return -1;
	if (*out == NULL)
		return 0;
	join(path, sizeof(path), parent, key);
	return check_url(c, path, *out, kind);
}

/*
 * Reads the client secret from the file fname (for the key at path) into
 * a new string in *out.  The file must be a regular file that others can
 * neither read nor write (a secret anyone on the host can read is not a
 * secret), hold at most SECRET_MAX bytes, and one non-empty line; one
 * trailing newline is removed.  The bytes read are wiped from the stack;
 * no error names the content.
 */
static int
read_secret_file(struct ctx *c, const char *path, const char *fname, char **out)
{
	char tmp[SECRET_MAX + 1];
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd = -1, rc = -1;

	*out = NULL;
	fd = open(fname, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		bad(c, path, "cannot read %s: %s", fname, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		bad(c, path, "cannot read %s: %s", fname, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		bad(c, path, "%s is not a regular file", fname);
		goto out;
	}
	if (st.st_mode & S_IROTH) {
		bad(c, path, "%s is readable by others (mode %04o)", fname,
			(unsigned int)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_mode & S_IRWXO) {
		bad(c, path, "%s is writable by others (mode %04o)", fname,
			(unsigned int)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(tmp)) {
		n = read(fd, tmp + len, sizeof(tmp) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			bad(c, path, "cannot read %s: %s", fname, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > SECRET_MAX) {
		bad(c, path, "%s is larger than %d bytes", fname, SECRET_MAX);
		goto out;
	}
	if (len > 0 && tmp[len - 1] == '\n') {
		len--;
		if (len > 0 && tmp[len - 1] == '\r')
			len--;
	}
	if (len == 0) {
		bad(c, path, "%s is empty", fname);
		goto out;
	}
	if (has_control(tmp, len) || memchr(tmp, '\0', len) != NULL) {
		bad(c, path, "%s must hold one line without control characters", fname);
		goto out;
	}
	*out = malloc(len + 1);
	if (*out == NULL) {
		no_memory(c);
		goto out;
	}
	memcpy(*out, tmp, len);
	(*out)[len] = '\0';
	rc = 0;
out:
	sg_secure_wipe(tmp, sizeof(tmp));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Reads the scope array of a provider: scope tokens, "openid" among them. */
static int
parse_scope(struct ctx *c, json_t *obj, const char *parent, struct sg_strlist *out)
{
	char path[PATH_LEN], epath[PATH_LEN];
	size_t i;
	int openid = 0;

	if (get_strlist(c, obj, parent, "scope", default_scope,
		    sizeof(default_scope) / sizeof(default_scope[0]), out) != 0)
		return -1;
	join(path, sizeof(path), parent, "scope");
	for (i = 0; i < out->n; i++) {
		if (!valid_scope(out->v[i])) {
			join_index(epath, sizeof(epath), path, i);
			return bad(c, epath, "invalid scope value");
		}
		if (strcmp(out->v[i], "openid") == 0)
			openid = 1;
	}
	if (!openid)
		return bad(c, path, "must contain \"openid\"");
	return 0;
}

/* Reads databases.<db>.oidc.providers.<name> (at path) into p. */
static int
parse_provider(struct ctx *c, json_t *obj, const char *path, const char *name,
	struct sg_oidc_provider *p)
{
	char kpath[PATH_LEN];
	const char *key = NULL;

	p->name = name;
	if (!valid_provider_name(name))
		return bad(c, path, "invalid provider name");
	if (check_object(c, obj, path, provider_keys) != 0)
		return -1;
	if (get_url(c, obj, path, "issuer", REQUIRED, URL_ISSUER, &p->issuer) != 0 ||
		get_string(c, obj, path, "client_id", REQUIRED, &p->client_id) != 0 ||
		get_string(c, obj, path, "validation_key", NULLABLE, &key) != 0 ||
		get_string(c, obj, path, "validation_key_file", NULLABLE,
			&p->validation_key_file) != 0 ||
		get_url(c, obj, path, "callback_url", NULLABLE, URL_CALLBACK, &p->callback_url) !=
			0 ||
		get_bool(c, obj, path, "register", &p->register_users) != 0 ||
		get_string(c, obj, path, "username_claim", NULLABLE, &p->username_claim) != 0 ||
		get_string(c, obj, path, "user_prefix", NULLABLE, &p->user_prefix) != 0 ||
		get_bool(c, obj, path, "disable_session", &p->disable_session) != 0 ||
		parse_scope(c, obj, path, &p->scope) != 0 ||
		get_bool(c, obj, path, "include_access", &p->include_access) != 0 ||
		get_url(c, obj, path, "discovery_url", NULLABLE, URL_FETCH, &p->discovery_url) !=
			0 ||
		get_string(c, obj, path, "roles_claim", NULLABLE, &p->roles_claim) != 0 ||
		get_string(c, obj, path, "channels_claim", NULLABLE, &p->channels_claim) != 0)
		return -1;

	if (key != NULL && p->validation_key_file != NULL)
		return bad(c, path, "validation_key and validation_key_file cannot both be set");
	if (key != NULL) {
		join(kpath, sizeof(kpath), path, "validation_key");
		if (has_control(key, strlen(key)))
			return bad(c, kpath, "must not contain control characters");
		p->client_secret = strdup(key);
		if (p->client_secret == NULL)
			return no_memory(c);
	} else if (p->validation_key_file != NULL) {
		join(kpath, sizeof(kpath), path, "validation_key_file");
		if (read_secret_file(c, kpath, p->validation_key_file, &p->client_secret) != 0)
			return -1;
	}
	return 0;
}

/* Reads databases.<db>.oidc (at path) into db. */
static int
parse_oidc(struct ctx *c, json_t *oidc, const char *path, struct sg_db_config *db)
{
	char ppath[PATH_LEN], kpath[PATH_LEN];
	const char *def = NULL, *name;
	json_t *providers, *v;
	size_t i;

	if (get_string(c, oidc, path, "default_provider", 0, &def) != 0)
		return -1;
	join(ppath, sizeof(ppath), path, "providers");
	providers = json_object_get(oidc, "providers");
	if (providers == NULL)
		return bad(c, ppath, "is required");
	if (!json_is_object(providers))
		return bad(c, ppath, "must be an object");
	if (json_object_size(providers) == 0)
		return bad(c, ppath, "must name at least one provider");

	db->providers = calloc(json_object_size(providers), sizeof(*db->providers));
	if (db->providers == NULL)
		return no_memory(c);
	db->n_providers = json_object_size(providers);
	i = 0;
	json_object_foreach (providers, name, v) {
		join(kpath, sizeof(kpath), ppath, name);
		if (parse_provider(c, v, kpath, name, &db->providers[i]) != 0)
			return -1;
		i++;
	}

	/* Without default_provider the first provider in the file is the default. */
	db->default_provider = 0;
	if (def != NULL) {
		for (i = 0; i < db->n_providers; i++)
			if (strcmp(db->providers[i].name, def) == 0)
				break;
		if (i == db->n_providers) {
			join(kpath, sizeof(kpath), path, "default_provider");
			return bad(c, kpath, "no provider named \"%s\"", def);
		}
		db->default_provider = i;
	}
	return 0;
}

/* Reads databases.<db>.local_jwt.<name> (at path) into j. */
static int
parse_local_jwt(struct ctx *c, json_t *obj, const char *path, const char *name,
	struct sg_local_jwt *j)
{
	char kpath[PATH_LEN], epath[PATH_LEN];
	json_t *keys, *e, *kty;
	size_t i;

	j->name = name;
	if (!valid_provider_name(name))
		return bad(c, path, "invalid local_jwt name");
	if (check_object(c, obj, path, local_jwt_keys) != 0)
		return -1;
	if (get_url(c, obj, path, "issuer", REQUIRED, URL_ISSUER, &j->issuer) != 0 ||
		get_string(c, obj, path, "client_id", REQUIRED, &j->client_id) != 0)
		return -1;

	join(kpath, sizeof(kpath), path, "algorithms");
	if (json_object_get(obj, "algorithms") == NULL)
		return bad(c, kpath, "is required");
	if (get_strlist(c, obj, path, "algorithms", NULL, 0, &j->algorithms) != 0)
		return -1;
	if (j->algorithms.n == 0)
		return bad(c, kpath, "must name at least one algorithm");
	for (i = 0; i < j->algorithms.n; i++) {
		if (!in_list(j->algorithms.v[i], algorithms)) {
			join_index(epath, sizeof(epath), kpath, i);
			return bad(c, epath,
				"must be one of RS256, RS384, RS512, "
				"ES256, ES384, ES512");
		}
	}

	join(kpath, sizeof(kpath), path, "keys");
	keys = json_object_get(obj, "keys");
	if (keys != NULL) {
		if (!json_is_array(keys))
			return bad(c, kpath, "must be an array of JWK objects");
		json_array_foreach (keys, i, e) {
			join_index(epath, sizeof(epath), kpath, i);
			if (!json_is_object(e))
				return bad(c, epath, "must be a JWK object");
			kty = json_object_get(e, "kty");
			if (!json_is_string(kty) ||
				(strcmp(json_string_value(kty), "RSA") != 0 &&
					strcmp(json_string_value(kty), "EC") != 0))
				return bad(c, epath, "kty must be \"RSA\" or \"EC\"");
		}
		j->keys = keys;
	}

	if (get_url(c, obj, path, "jwks_uri", NULLABLE, URL_FETCH, &j->jwks_uri) != 0 ||
		get_bool(c, obj, path, "register", &j->register_users) != 0 ||
		get_string(c, obj, path, "username_claim", NULLABLE, &j->username_claim) != 0 ||
		get_string(c, obj, path, "user_prefix", NULLABLE, &j->user_prefix) != 0 ||
		get_string(c, obj, path, "roles_claim", NULLABLE, &j->roles_claim) != 0 ||
		get_string(c, obj, path, "channels_claim", NULLABLE, &j->channels_claim) != 0)
		return -1;
	if (json_array_size(j->keys) == 0 && j->jwks_uri == NULL)
		return bad(c, path, "keys or jwks_uri is required");
	return 0;
}

/* Reads databases.<db>.local_jwt (at path) into db. */
static int
parse_local_jwts(struct ctx *c, json_t *obj, const char *path, struct sg_db_config *db)
{
	char kpath[PATH_LEN];
	const char *name;
	json_t *v;
	size_t i = 0;

	if (json_object_size(obj) == 0)
		return 0;
	db->local_jwt = calloc(json_object_size(obj), sizeof(*db->local_jwt));
	if (db->local_jwt == NULL)
		return no_memory(c);
	db->n_local_jwt = json_object_size(obj);
	json_object_foreach (obj, name, v) {
		join(kpath, sizeof(kpath), path, name);
		if (parse_local_jwt(c, v, kpath, name, &db->local_jwt[i]) != 0)
			return -1;
		i++;
	}
	return 0;
}

/* Reads databases.<db>.guest (at path) into db. */
static int
parse_guest(struct ctx *c, json_t *guest, const char *path, struct sg_db_config *db)
{
	char kpath[PATH_LEN], epath[PATH_LEN];
	size_t i;

	if (get_bool(c, guest, path, "disabled", &db->guest_disabled) != 0 ||
		get_strlist(c, guest, path, "admin_channels", NULL, 0, &db->guest_channels) != 0)
		return -1;
	join(kpath, sizeof(kpath), path, "admin_channels");
	for (i = 0; i < db->guest_channels.n; i++) {
		if (!sg_channel_name_valid(db->guest_channels.v[i])) {
			join_index(epath, sizeof(epath), kpath, i);
			return bad(c, epath, "invalid channel name");
		}
	}
	return 0;
}

/* Reads databases.<name> (at path) into db. */
static int
parse_db(struct ctx *c, json_t *obj, const char *path, const char *name, struct sg_db_config *db)
{
	char kpath[PATH_LEN];
	json_t *sub;

	db->name = name;
	db->cookie_name = "SyncGatewaySession";
	db->cookie_secure = 1;
	db->cookie_http_only = 1;
	db->cookie_same_site = "Lax";
	db->session_ttl = 86400;
	db->send_www_authenticate = 1;
	db->guest_disabled = 1;

	if (!valid_db_name(name))
		return bad(c, path, "invalid database name");
	if (check_object(c, obj, path, db_keys) != 0)
		return -1;

	if (get_string(c, obj, path, "session_cookie_name", 0, &db->cookie_name) != 0)
		return -1;
	if (!valid_cookie_name(db->cookie_name)) {
		join(kpath, sizeof(kpath), path, "session_cookie_name");
		return bad(c, kpath,
			"must be a cookie name "
			"(letters, digits and !#$%%&'*+-.^_`|~)");
	}
	if (get_bool(c, obj, path, "session_cookie_secure", &db->cookie_secure) != 0 ||
		get_bool(c, obj, path, "session_cookie_http_only", &db->cookie_http_only) != 0 ||
		get_string(c, obj, path, "session_cookie_same_site", 0, &db->cookie_same_site) != 0)
		return -1;
	join(kpath, sizeof(kpath), path, "session_cookie_same_site");
	if (!in_list(db->cookie_same_site, same_site_values))
		return bad(c, kpath, "must be one of Lax, Strict, None");
	/* Browsers drop a SameSite=None cookie that is not Secure. */
	if (strcmp(db->cookie_same_site, "None") == 0 && !db->cookie_secure)
		return bad(c, kpath, "None requires session_cookie_secure");
	/* A minute to a year: shorter sessions expire mid-request, longer ones never. */
	if (get_int(c, obj, path, "session_ttl", 60, 31536000, &db->session_ttl) != 0 ||
		get_bool(c, obj, path, "disable_password_auth", &db->disable_password_auth) != 0 ||
		get_bool(c, obj, path, "send_www_authenticate_header",
			&db->send_www_authenticate) != 0)
		return -1;

	if (get_object(c, obj, path, "guest", guest_keys, &sub) != 0)
		return -1;
	join(kpath, sizeof(kpath), path, "guest");
	if (sub != NULL && parse_guest(c, sub, kpath, db) != 0)
		return -1;

	if (get_object(c, obj, path, "oidc", oidc_keys, &sub) != 0)
		return -1;
	join(kpath, sizeof(kpath), path, "oidc");
	if (sub != NULL && parse_oidc(c, sub, kpath, db) != 0)
		return -1;

	join(kpath, sizeof(kpath), path, "local_jwt");
	sub = json_object_get(obj, "local_jwt");
	if (sub != NULL && !json_is_object(sub))
		return bad(c, kpath, "must be an object");
	if (sub != NULL && parse_local_jwts(c, sub, kpath, db) != 0)
		return -1;
	return 0;
}

/* Reads admin_users into cfg. */
static int
parse_admins(struct ctx *c, json_t *obj, struct sg_config *cfg)
{
	char kpath[PATH_LEN];
	const char *name;
	json_t *v;
	size_t i = 0;

	if (!json_is_object(obj))
		return bad(c, "admin_users", "must be an object");
	if (json_object_size(obj) == 0)
		return 0;
	cfg->admins = calloc(json_object_size(obj), sizeof(*cfg->admins));
	if (cfg->admins == NULL)
		return no_memory(c);
	cfg->n_admins = json_object_size(obj);
	json_object_foreach (obj, name, v) {
		join(kpath, sizeof(kpath), "admin_users", name);
		/* Basic auth splits at the first ':', so such a name could never log in. */
		if (*name == '\0' || strchr(name, ':') != NULL || has_control(name, strlen(name)))
			return bad(c, kpath, "invalid admin user name");
		if (!json_is_string(v))
			return bad(c, kpath, "must be a string");
		if (json_string_value(v)[0] != '$' || json_string_length(v) < 4 ||
			!printable_ascii(json_string_value(v)))
			return bad(c, kpath, "must be a crypt(3) hash (syncgatectl hash-password)");
		cfg->admins[i].name = name;
		cfg->admins[i].hash = json_string_value(v);
		i++;
	}
	return 0;
}

/* Reads the top-level object into cfg. */
static int
parse_root(struct ctx *c, json_t *root, struct sg_config *cfg)
{
	char kpath[PATH_LEN];
	const char *level = "info", *name;
	json_t *sub, *v;
	size_t i;

	if (check_object(c, root, "", top_keys) != 0)
		return -1;

	if (get_object(c, root, "", "store", store_keys, &sub) != 0 ||
		get_string(c, sub, "store", "path", 0, &cfg->store_path) != 0)
		return -1;

	if (get_object(c, root, "", "logging", logging_keys, &sub) != 0 ||
		get_string(c, sub, "logging", "level", 0, &level) != 0 ||
		get_bool(c, sub, "logging", "syslog", &cfg->log_syslog) != 0)
		return -1;
	cfg->log_level = sg_log_level_parse(level);
	if (cfg->log_level < 0)
		return bad(c, "logging.level", "must be one of error, warn, info, debug");

	/* Up to ten minutes: a provider slower than that is down. */
	if (get_object(c, root, "", "http_client", http_keys, &sub) != 0 ||
		get_int(c, sub, "http_client", "timeout_ms", 1, 600000, &cfg->http_timeout_ms) !=
			0 ||
		get_string(c, sub, "http_client", "ca_file", NULLABLE, &cfg->ca_file) != 0)
		return -1;

	sub = json_object_get(root, "admin_users");
	if (sub != NULL && parse_admins(c, sub, cfg) != 0)
		return -1;

	sub = json_object_get(root, "databases");
	if (sub == NULL)
		return bad(c, "databases", "is required");
	if (!json_is_object(sub))
		return bad(c, "databases", "must be an object");
	if (json_object_size(sub) == 0)
		return bad(c, "databases", "must name at least one database");
	cfg->dbs = calloc(json_object_size(sub), sizeof(*cfg->dbs));
	if (cfg->dbs == NULL)
		return no_memory(c);
	cfg->n_dbs = json_object_size(sub);
	i = 0;
	json_object_foreach (sub, name, v) {
		join(kpath, sizeof(kpath), "databases", name);
		if (parse_db(c, v, kpath, name, &cfg->dbs[i]) != 0)
			return -1;
		i++;
	}
	return 0;
}

const char *
sg_config_default_path(void)
{
	const char *p = getenv("SYNCGATE_CONFIG");

	if (p != NULL && *p != '\0')
		return p;
	return SYSCONFDIR "/syncgate/syncgate.json";
}

int
sg_config_load(const char *path, struct sg_config **out, struct sg_error *err)
{
	struct ctx c;
	struct sg_config *cfg = NULL;
	json_error_t jerr;
	FILE *fp = NULL;
	char *near;

	*out = NULL;
	c.file = path;
	c.err = err;
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		no_memory(&c);
		goto fail;
	}
	cfg->store_path = LOCALSTATEDIR "/lib/syncgate";
	cfg->log_level = SG_LOG_INFO;
	cfg->log_syslog = 1;
	cfg->http_timeout_ms = 5000;
	cfg->path = strdup(path);
	if (cfg->path == NULL) {
		no_memory(&c);
		goto fail;
	}

	fp = fopen(path, "re");
	if (fp == NULL) {
		sg_error_set(err, 500, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	cfg->root = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
	if (cfg->root == NULL) {
		if (ferror(fp)) {
			sg_error_set(err, 500, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		/*
		 * Jansson ends its text with "near '<token>'", and the token may
		 * be part of a secret (a bad escape inside validation_key): the
		 * line and column say where, without the content.
		 */
		near = strstr(jerr.text, " near '");
		if (near != NULL)
			*near = '\0';
		sg_error_set(err, 500, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
			jerr.text);
		goto fail;
	}
	if (parse_root(&c, cfg->root, cfg) != 0)
		goto fail;
	fclose(fp);
	*out = cfg;
	return 0;
fail:
	if (fp != NULL)
		fclose(fp);
	sg_config_free(cfg);
	return -1;
}

const struct sg_db_config *
sg_config_db(const struct sg_config *cfg, const char *name)
{
	size_t i;

	if (cfg == NULL || name == NULL)
		return NULL;
	for (i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i].name, name) == 0)
			return &cfg->dbs[i];
	return NULL;
}

const struct sg_oidc_provider *
sg_config_provider(const struct sg_db_config *db, const char *name)
{
	size_t i;

	if (db == NULL || name == NULL)
		return NULL;
	for (i = 0; i < db->n_providers; i++)
		if (strcmp(db->providers[i].name, name) == 0)
			return &db->providers[i];
	return NULL;
}

/*
 * Wipes every validation_key string in the tree before it is freed.  The
 * strings Jansson hands out are its own heap copies, so writing over them
 * is safe just before json_decref.
 */
static void
wipe_tree_secrets(json_t *root)
{
	const char *dname, *pname;
	json_t *db, *prov, *key;

	json_object_foreach (json_object_get(root, "databases"), dname, db) {
		json_object_foreach (json_object_get(json_object_get(db, "oidc"), "providers"),
			pname, prov) {
			key = json_object_get(prov, "validation_key");
			if (json_is_string(key))
				sg_secure_wipe((char *)json_string_value(key),
					json_string_length(key));
		}
	}
}

void
sg_config_free(struct sg_config *cfg)
{
	struct sg_db_config *db;
	struct sg_oidc_provider *p;
	size_t i, k;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_dbs; i++) {
		db = &cfg->dbs[i];
		for (k = 0; k < db->n_providers; k++) {
			p = &db->providers[k];
			if (p->client_secret != NULL) {
				sg_secure_wipe(p->client_secret, strlen(p->client_secret));
				free(p->client_secret);
			}
			free(p->scope.v);
		}
		free(db->providers);
		for (k = 0; k < db->n_local_jwt; k++)
			free(db->local_jwt[k].algorithms.v);
		free(db->local_jwt);
		free(db->guest_channels.v);
	}
	free(cfg->dbs);
	free(cfg->admins);
	if (cfg->root != NULL) {
		wipe_tree_secrets(cfg->root);
		json_decref(cfg->root);
	}
	free(cfg->path);
	free(cfg);
}
