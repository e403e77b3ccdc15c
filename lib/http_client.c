/*
 * http_client.c: GET and form POST to OpenID providers over libcurl.
 *
 * Each request uses a fresh easy handle set up the same way: no signals
 * (the programs have their own handlers), the configured timeout for the
 * connection and for the whole request, http and https only, no
 * redirects, TLS peer and host verification, no content encoding asked
 * for (so the body cap counts the bytes as they come), and no verbose or
 * debug output, which would print the form and the credentials.  The URL
 * is parsed once with libcurl's URL API, checked, and that very parse is
 * handed to the transfer, so what is checked is what is fetched.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <dlfcn.h>

#include "encode.h"
#include "http_client.h"
#include "log.h"
#include "secure.h"

/*
 * Longest client id plus client secret accepted for Basic authentication:
 * far above what providers issue, and it keeps the header bounded.
 */
#define CRED_MAX 4096

/* What the write callback appends into. */
struct sink {
	struct sg_buf *body;
	int toobig; /* the body passed SG_HTTP_BODY_MAX */
	int nomem;  /* memory ran out while growing the body */
};

void
sg_http_response_init(struct sg_http_response *resp)
{
	resp->status = 0;
	sg_buf_init(&resp->body, SG_HTTP_BODY_MAX);
}

/* Wipes and frees a buffer that may have held a secret (a token). */
static void
buf_wipe_free(struct sg_buf *b)
{
	if (b->data != NULL)
		sg_secure_wipe(b->data, b->cap);
	sg_buf_free(b);
}

void
sg_http_response_free(struct sg_http_response *resp)
{
	if (resp == NULL)
		return;
	buf_wipe_free(&resp->body);
	resp->status = 0;
}

/*
 * libcurl is loaded when the first URL is checked or fetched, not at
 * program start: most processes of a deployment never talk to a provider,
 * and libcurl with what it pulls in (Kerberos, LDAP, SSH, another TLS
 * library) would add some 3 MiB to the resident size of each.
 */
static struct {
	int state; /* 0 not tried, 1 loaded, -1 failed */
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	void (*free)(void *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLU *(*url)(void);
	void (*url_cleanup)(CURLU *);
	CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
	CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
} cu;

/* curl_free and curl_url_cleanup for values that may be NULL, libcurl loaded or not. */
static void
cfree(void *p)
{
	if (p != NULL)
		cu.free(p);
}

static void
url_free(CURLU *u)
{
	if (u != NULL)
		cu.url_cleanup(u);
}

/* Looks up name in handle into *fn; returns 0 or -1. */
static int
sym(void *handle, const char *name, void *fn)
{
	void *p = dlsym(handle, name);

	memcpy(fn, &p, sizeof(p));
	return p != NULL ? 0 : -1;
}

/* Loads and initializes libcurl once per process.  Returns 0 or -1. */
static int
curl_load(void)
{
	void *h;

	if (cu.state != 0)
		return cu.state > 0 ? 0 : -1;
	cu.state = -1;
	h = dlopen(SG_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		sg_log(SG_LOG_ERR, "cannot load %s: %s", SG_CURL_SONAME, dlerror());
		return -1;
	}
	if (sym(h, "curl_global_init", &cu.global_init) != 0 ||
		sym(h, "curl_easy_init", &cu.easy_init) != 0 ||
		sym(h, "curl_easy_setopt", &cu.easy_setopt) != 0 ||
		sym(h, "curl_easy_perform", &cu.easy_perform) != 0 ||
		sym(h, "curl_easy_getinfo", &cu.easy_getinfo) != 0 ||
		sym(h, "curl_easy_cleanup", &cu.easy_cleanup) != 0 ||
		sym(h, "curl_easy_strerror", &cu.easy_strerror) != 0 ||
		sym(h, "curl_free", &cu.free) != 0 ||
		sym(h, "curl_slist_append", &cu.slist_append) != 0 ||
		sym(h, "curl_slist_free_all", &cu.slist_free_all) != 0 ||
		sym(h, "curl_url", &cu.url) != 0 ||
		sym(h, "curl_url_cleanup", &cu.url_cleanup) != 0 ||
		sym(h, "curl_url_get", &cu.url_get) != 0 ||
		sym(h, "curl_url_set", &cu.url_set) != 0 ||
		cu.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		sg_log(SG_LOG_ERR, "%s lacks what syncgate needs", SG_CURL_SONAME);
		return -1;
	}
	cu.state = 1;
	return 0;
}

/*
 * Returns 1 when host, as libcurl's URL API gives it back, is loopback:
 * localhost, an IPv4 address in 127.0.0.0/8 (libcurl has already turned
 * numeric forms such as 127.1 into dotted quads, which is also what it
 * connects to), or [::1] in any spelling.
 */
static int
host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char inner[INET6_ADDRSTRLEN];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof(inner))
		return 0;
	memcpy(inner, host + 1, n - 2);
	inner[n - 2] = '\0';
	return inet_pton(AF_INET6, inner, &a6) == 1 &&
		memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
}

/* Returns 1 when part of u is present (even empty), else 0. */
static int
has_part(CURLU *u, CURLUPart part)
{
	char *v = NULL;
	CURLUcode rc = cu.url_get(u, part, &v, 0);

	cfree(v);
	return rc == CURLUE_OK;
}

/*
 * Parses url and decides whether it may be fetched.  Returns 1 (allowed)
 * or 0.  On return *out holds the parse (or NULL) and *host its host (or
 * NULL, a libcurl string for curl_free), whatever the answer, so that a
 * refusal can still name the host.  *loopback tells whether the host is
 * loopback.
 *
 * libcurl reads "http:/h" and "http:///h" as "http://h"; those spellings,
 * and any userinfo (which would hide the real host from a reader, as in
 * http://127.0.0.1@evil.example/), are refused.
 */
static int
url_parse(const char *url, CURLU **out, char **host, int *loopback)
{
	CURLU *u = NULL;
	char *scheme = NULL;
	size_t skip;
	int https, allowed = 0;

	*out = NULL;
	*host = NULL;
	*loopback = 0;
	if (url == NULL)
		return 0;
	if (strncasecmp(url, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		skip = 7;
	else
		return 0;
	if (url[skip] == '\0' || url[skip] == '/' || url[skip] == '\\')
		return 0;
	if (curl_load() != 0 || (u = cu.url()) == NULL)
		return 0;
	*out = u;
	if (cu.url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		cu.url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		cu.url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK)
		goto out;
	if (**host == '\0' || has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD) ||
		has_part(u, CURLUPART_ZONEID))
		goto out;
	*loopback = host_is_loopback(*host);
	https = strcmp(scheme, "https") == 0;
	if (https || (strcmp(scheme, "http") == 0 && *loopback))
		allowed = 1;
out:
	cfree(scheme);
	return allowed;
}

int
sg_http_url_allowed(const char *url)
{
	CURLU *u;
	char *host;
	int loopback, allowed;

	allowed = url_parse(url, &u, &host, &loopback);
	cfree(host);
	url_free(u);
	return allowed;
}

/*
 * Allocates all of b's cap at once, so that a secret written into it is
 * never left behind in memory given back by a growing realloc.
 */
static int
reserve(struct sg_buf *b)
{
	if (sg_buf_addf(b, "%*s", (int)b->max, "") != 0)
		return -1;
	sg_buf_reset(b);
	return 0;
}

/*
 * Writes "Authorization: Basic <base64(user:pass)>" into hdr (initialized
 * here; the caller wipes and frees it), each of user and pass first
 * form-urlencoded as RFC 6749 section 2.3.1 asks.  user and pass
 * together are at most CRED_MAX bytes.  Returns 0, or -1 when memory ran
 * out.
 */
static int
basic_header(const char *user, const char *pass, struct sg_buf *hdr)
{
	static const char prefix[] = "Authorization: Basic ";
	struct sg_buf cred;
	size_t n = strlen(user) + strlen(pass);
	int rc = -1;

	sg_buf_init(hdr, 0);
	/* Form-urlencoding at most triples a byte; base64 turns 3 bytes into 4. */
	sg_buf_init(&cred, 3 * n + 1);
	if (reserve(&cred) != 0 || sg_query_escape(user, &cred) != 0 ||
		sg_buf_add(&cred, ":", 1) != 0 || sg_query_escape(pass, &cred) != 0)
		goto out;
	sg_buf_init(hdr, sizeof(prefix) - 1 + 4 * ((cred.len + 2) / 3));
	if (reserve(hdr) != 0 || sg_buf_adds(hdr, prefix) != 0 ||
		sg_base64_encode(cred.data, cred.len, hdr) != 0)
		goto out;
	rc = 0;
out:
	buf_wipe_free(&cred);
	return rc;
}

/* Wipes every header line (one carries the credentials), then frees them. */
static void
headers_free(struct curl_slist *list)
{
	struct curl_slist *l;

	for (l = list; l != NULL; l = l->next)
		sg_secure_wipe(l->data, strlen(l->data));
	if (list != NULL)
		cu.slist_free_all(list);
}

/* Appends line to *list; returns 0 or -1 (the list is kept either way). */
static int
header_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = cu.slist_append(*list, line);

	if (l == NULL)
		return -1;
	*list = l;
	return 0;
}

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	(void)size; /* always 1 */
	if (sg_buf_add(s->body, p, n) != 0) {
		if (s->body->toobig)
			s->toobig = 1;
		else
			s->nomem = 1;
		return 0; /* not n: libcurl aborts the transfer */
	}
	return n;
}

/*
 * The one request function: a GET when form is NULL, else a form POST,
 * with Basic authentication when user is non-NULL.
 */
static int
request(const struct sg_http_opts *opts, const char *url, const char *form, const char *user,
	const char *pass, struct sg_http_response *resp, struct sg_error *err)
{
	CURL *h = NULL;
	CURLU *u = NULL;
	CURLcode rc;
	struct curl_slist *headers = NULL;
	struct sg_buf auth;
	struct sink sink;
	char *host = NULL;
	const char *where;
	long status = 0;
	int loopback, ret = -1;

	sg_buf_init(&auth, 0);
	buf_wipe_free(&resp->body);
	sg_buf_init(&resp->body, SG_HTTP_BODY_MAX);
	resp->status = 0;
	sink.body = &resp->body;
	sink.toobig = 0;
	sink.nomem = 0;

	if (!url_parse(url, &u, &host, &loopback)) {
		if (host != NULL && *host != '\0')
			sg_error_set(err, 502,
				"refused URL for %s: only https, or http to a loopback host", host);
		else
			sg_error_set(err, 502,
				"refused URL: only https, or http to a loopback host");
		goto out;
	}
	where = host;
	if (opts == NULL || opts->timeout_ms <= 0) {
		sg_error_set(err, 500, "no timeout set for requests to %s", where);
		goto out;
	}
	if (curl_load() != 0 || (h = cu.easy_init()) == NULL) {
		sg_error_set(err, 500, "cannot start libcurl for %s", where);
		goto out;
	}
	if (header_add(&headers, "Accept: application/json") != 0)
		goto nomem;
	if (form != NULL) {
		/* No "Expect: 100-continue" round trip for larger forms. */
		if (header_add(&headers, "Content-Type: application/x-www-form-urlencoded") != 0 ||
			header_add(&headers, "Expect:") != 0)
			goto nomem;
		if (user != NULL) {
			if (pass == NULL)
				pass = "";
			if (strlen(user) + strlen(pass) > CRED_MAX) {
				sg_error_set(err, 500, "client credentials for %s over %d bytes",
					where, CRED_MAX);
				goto out;
			}
			if (basic_header(user, pass, &auth) != 0 ||
				header_add(&headers, auth.data) != 0)
				goto nomem;
		}
	}

	/*
	 * An empty proxy keeps loopback requests off any proxy named in the
	 * environment; other hosts go through one as libcurl finds it.
	 */
	if (cu.easy_setopt(h, CURLOPT_CURLU, u) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_VERBOSE, 0L) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_TIMEOUT_MS, opts->timeout_ms) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts->timeout_ms) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
		(opts->ca_file != NULL &&
			cu.easy_setopt(h, CURLOPT_CAINFO, opts->ca_file) != CURLE_OK) ||
		(loopback && cu.easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK) ||
		cu.easy_setopt(h, CURLOPT_USERAGENT, "syncgate/" PACKAGE_VERSION) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SG_HTTP_BODY_MAX) !=
			CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
		cu.easy_setopt(h, CURLOPT_WRITEDATA, &sink) != CURLE_OK) {
		sg_error_set(err, 500, "cannot set up the request to %s", where);
		goto out;
	}
	if (form != NULL) {
		if (cu.easy_setopt(h, CURLOPT_POSTFIELDS, form) != CURLE_OK ||
			cu.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(form)) !=
				CURLE_OK) {
			sg_error_set(err, 500, "cannot set up the request to %s", where);
			goto out;
		}
	} else if (cu.easy_setopt(h, CURLOPT_HTTPGET, 1L) != CURLE_OK) {
		sg_error_set(err, 500, "cannot set up the request to %s", where);
		goto out;
	}

	rc = cu.easy_perform(h);
	if (sink.toobig || rc == CURLE_FILESIZE_EXCEEDED) {
		sg_error_set(err, 502, "response from %s over %d MiB", where,
			SG_HTTP_BODY_MAX / (1024 * 1024));
		goto out;
	}
	if (sink.nomem)
		goto nomem;
	if (rc != CURLE_OK) {
		sg_error_set(err, 502, "cannot reach %s: %s", where, cu.easy_strerror(rc));
		goto out;
	}
	if (cu.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status <= 0) {
		sg_error_set(err, 502, "no HTTP status from %s", where);
		goto out;
	}
	resp->status = status;
	ret = 0;
	goto out;
nomem:
	sg_error_set(err, 500, "out of memory for the request to %s", where);
out:
	if (ret != 0)
		buf_wipe_free(&resp->body);
	if (h != NULL)
		cu.easy_cleanup(h);
	headers_free(headers);
	buf_wipe_free(&auth);
	cfree(host);
	url_free(u);
	return ret;
}

int
sg_http_get(const struct sg_http_opts *opts, const char *url, struct sg_http_response *resp,
	struct sg_error *err)
{
	return request(opts, url, NULL, NULL, NULL, resp, err);
}

int
sg_http_post_form(const struct sg_http_opts *opts, const char *url, const char *form,
	const char *basic_user, const char *basic_pass, struct sg_http_response *resp,
	struct sg_error *err)
{
	return request(opts, url, form != NULL ? form : "", basic_user, basic_pass, resp, err);
}
