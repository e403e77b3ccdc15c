/*
 * test_request.c: the request/response layer, driven in CGI mode.
 *
 * Each request runs through sg_request_serve as one-shot CGI: the
 * parameters are a test array put in environ, the body comes from a
 * temporary file on standard input, and standard output is redirected to
 * another temporary file whose bytes are compared with the exact response
 * expected.  Parsing helpers (query, cookie, loopback) are checked on a
 * request prepared with sg_request_begin alone.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "request.h"
#include "tap.h"

extern char **environ;

/* Largest captured response the tests expect. */
#define CAPTURE_MAX (64 * 1024)

/* Returns a temporary file's descriptor, already unlinked. */
static int
temp_fd(void)
{
	char path[] = "/tmp/test_request.XXXXXX";
	int fd;

	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	unlink(path);
	return fd;
}

/* Puts n bytes of body on standard input. */
static void
feed_stdin(const char *body, size_t n)
{
	int fd = temp_fd();

	if (n > 0 && write(fd, body, n) != (ssize_t)n) {
		perror("write");
		exit(1);
	}
	if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, STDIN_FILENO) < 0) {
		perror("stdin");
		exit(1);
	}
	close(fd);
}

/*
 * Serves one CGI request with envp as its environment and body (n bytes)
 * as its input.  Returns what was written to standard output, which the
 * caller frees.
 */
static char *
serve(char **envp, const char *body, size_t n, sg_handler_fn handler, void *ctx)
{
	char **saved_env = environ;
	char *out;
	int saved_fd, fd, rc;
	ssize_t got;

	feed_stdin(body, n);
	fflush(stdout);
	saved_fd = dup(STDOUT_FILENO);
	fd = temp_fd();
	if (saved_fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
		perror("stdout");
		exit(1);
	}
	environ = envp;
	rc = sg_request_serve(handler, ctx);
	environ = saved_env;
	fflush(stdout);
	dup2(saved_fd, STDOUT_FILENO);
	close(saved_fd);
	if (rc != 0)
		tap_is_int(rc, 0, "serve returns 0");

	out = calloc(1, CAPTURE_MAX + 1);
	if (out == NULL || lseek(fd, 0, SEEK_SET) != 0) {
		perror("capture");
		exit(1);
	}
	got = read(fd, out, CAPTURE_MAX);
	if (got < 0) {
		perror("read");
		exit(1);
	}
	close(fd);
	return out;
}

/* The exact bytes of a JSON response: status line, extra headers, body. */
static char *
json_response(const char *status, const char *extra, const char *body)
{
	struct sg_buf b;

	sg_buf_init(&b, CAPTURE_MAX);
	sg_buf_addf(&b,
		"Status: %s\r\n%sContent-Type: application/json\r\n"
		"Content-Length: %zu\r\n\r\n%s",
		status, extra, strlen(body), body);
	return sg_buf_take(&b);
}

/* Serves a request and compares the whole response with want (freed). */
static void
check(char **envp, const char *body, sg_handler_fn handler, void *ctx, char *want, const char *name)
{
	char *got;

	got = serve(envp, body, body != NULL ? strlen(body) : 0, handler, ctx);
	tap_is_str(got, want, name);
	free(got);
	free(want);
}

/* Handlers. */

static void
h_ok(struct sg_request *r, void *ctx)
{
	json_t *body = json_pack("{s:b}", "ok", 1);

	sg_response_json(r, 200, body);
	json_decref(body);
}

static void
h_nothing(struct sg_request *r, void *ctx)
{
}

static void
h_not_found(struct sg_request *r, void *ctx)
{
	sg_response_error(r, 404, "no such database");
}

static void
h_conflict(struct sg_request *r, void *ctx)
{
	struct sg_error err;

	sg_error_set(&err, 409, "User exists");
	sg_response_from_error(r, &err);
}

static void
h_unset_error(struct sg_request *r, void *ctx)
{
	struct sg_error err;

	sg_error_clear(&err);
	sg_response_from_error(r, &err);
}

static void
h_twice(struct sg_request *r, void *ctx)
{
	sg_response_error(r, 403, "first");
	sg_response_error(r, 400, "second");
	h_ok(r, ctx);
}

static void
h_405(struct sg_request *r, void *ctx)
{
	sg_response_method_not_allowed(r, "GET, PUT");
}

static void
h_redirect(struct sg_request *r, void *ctx)
{
	sg_response_redirect(r, "https://idp.example/auth?state=abc");
}

static void
h_redirect_bad(struct sg_request *r, void *ctx)
{
	sg_response_redirect(r, "https://x/\r\nSet-Cookie: a=b");
}

static void
h_authorize(struct sg_request *r, void *ctx)
{
	static const char *const names[] = {"SYNCGATE_USER", "SYNCGATE_CHANNELS", "SYNCGATE_AUTH"};
	static const char *const values[] = {"", "a,b", "guest"};

	sg_response_header(r, "X-Extra", "1");
	sg_response_authorize(r, names, values, 3);
}

static void
h_authorize_crlf(struct sg_request *r, void *ctx)
{
	static const char *const names[] = {"SYNCGATE_USER"};
	static const char *const values[] = {"alice\r\nVariable-SYNCGATE_ADMIN: 1"};

	sg_response_authorize(r, names, values, 1);
}

static void
h_authorize_badname(struct sg_request *r, void *ctx)
{
	static const char *const names[] = {"SYNCGATE USER"};
	static const char *const values[] = {"alice"};

	sg_response_authorize(r, names, values, 1);
}

static void
h_www_authenticate(struct sg_request *r, void *ctx)
{
	sg_response_header(r, "WWW-Authenticate", "Basic realm=\"syncgate\"");
	sg_response_error(r, 401, "Login required");
}

static void
h_set_cookie(struct sg_request *r, void *ctx)
{
	sg_response_header(r, "Set-Cookie", "SyncGatewaySession=abc; Path=/db; HttpOnly");
	h_ok(r, ctx);
}

/* Counts in ctx[0] the refused headers, in ctx[1] the accepted one. */
static void
h_injection(struct sg_request *r, void *ctx)
{
	int *counts = ctx;
	int refused = 0;

	refused += sg_response_header(r, "X-A", "a\r\nSet-Cookie: evil=1") == -1;
	refused += sg_response_header(r, "X-A", "a\nSet-Cookie: evil=1") == -1;
	refused += sg_response_header(r, "X-A", "a\rb") == -1;
	refused += sg_response_header(r, "X-A", "a\001b") == -1;
	refused += sg_response_header(r, "X-A: b", "c") == -1;
	refused += sg_response_header(r, "X A", "c") == -1;
	refused += sg_response_header(r, "", "c") == -1;
	refused += sg_response_header(r, "X-A\r\nX-B", "c") == -1;
	refused += sg_response_header(r, "content-length", "0") == -1;
	refused += sg_response_header(r, "Status", "200 OK") == -1;
	counts[0] = refused;
	counts[1] = sg_response_header(r, "X-Ok", "tab\there") == 0;
	h_ok(r, ctx);
}

/* Answers {"len":<body length>} or the read error. */
static void
h_body_len(struct sg_request *r, void *ctx)
{
	struct sg_error err;
	json_t *body;

	sg_error_clear(&err);
	if (sg_request_read_body(r, &err) != 0) {
		sg_response_from_error(r, &err);
		return;
	}
	body = json_pack("{s:I}", "len", (json_int_t)r->body.len);
	sg_response_json(r, 200, body);
	json_decref(body);
}

/* Answers the JSON body back, or the parse error. */
static void
h_json_body(struct sg_request *r, void *ctx)
{
	struct sg_error err;
	json_t *body;

	sg_error_clear(&err);
	if (sg_request_json_body(r, &body, &err) != 0) {
		sg_response_from_error(r, &err);
		return;
	}
	sg_response_json(r, 200, body);
	json_decref(body);
}

/* Answers the path segments as a JSON array. */
static void
h_segs(struct sg_request *r, void *ctx)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < r->n_segs; i++)
		json_array_append_new(a, json_string(r->segs[i]));
	sg_response_json(r, 200, a);
	json_decref(a);
}

/* Tests. */

static void
test_responses(void)
{
	char *get[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_session", NULL};
	char *head[] = {"REQUEST_METHOD=HEAD", "REQUEST_URI=/db/_session", NULL};
	char *post[] = {"REQUEST_METHOD=POST", "REQUEST_URI=/db/_session", NULL};
	int counts[2] = {0, 0};
	char *got;

	check(get, NULL, h_ok, NULL, json_response("200 OK", "", "{\"ok\":true}"),
		"200 with a JSON body");
	check(get, NULL, h_nothing, NULL,
		json_response("500 Internal Server Error", "",
			"{\"error\":\"Internal Server Error\","
			"\"reason\":\"The handler sent no response\"}"),
		"a handler that sends nothing gets a 500");
	check(get, NULL, h_not_found, NULL,
		json_response("404 Not Found", "",
			"{\"error\":\"not_found\",\"reason\":\"no such database\"}"),
		"404 error is not_found");
	check(get, NULL, h_conflict, NULL,
		json_response("409 Conflict", "",
			"{\"error\":\"conflict\",\"reason\":\"User exists\"}"),
		"409 from an sg_error is conflict");
	check(get, NULL, h_unset_error, NULL,
		json_response("500 Internal Server Error", "",
			"{\"error\":\"Internal Server Error\","
			"\"reason\":\"Internal Server Error\"}"),
		"an unset sg_error answers 500");
	check(get, NULL, h_twice, NULL,
		json_response("403 Forbidden", "",
			"{\"error\":\"Forbidden\",\"reason\":\"first\"}"),
		"only the first response is sent");
	check(post, NULL, h_405, NULL,
		json_response("405 Method Not Allowed", "Allow: GET, PUT\r\n",
			"{\"error\":\"Method Not Allowed\",\"reason\":\"Method POST not allowed\"}"),
		"405 with Allow");
	got = serve(get, NULL, 0, h_redirect, NULL);
	tap_is_str(got,
		"Status: 302 Found\r\n"
		"Location: https://idp.example/auth?state=abc\r\n"
		"Content-Length: 0\r\n\r\n",
		"302 redirect without a body");
	free(got);
	check(get, NULL, h_redirect_bad, NULL,
		json_response("500 Internal Server Error", "",
			"{\"error\":\"Internal Server Error\","
			"\"reason\":\"Could not build the response\"}"),
		"redirect to a location with CR/LF refused");
	got = serve(get, NULL, 0, h_authorize, NULL);
	tap_is_str(got,
		"Status: 200 OK\r\n"
		"Variable-SYNCGATE_USER: \r\n"
		"Variable-SYNCGATE_CHANNELS: a,b\r\n"
		"Variable-SYNCGATE_AUTH: guest\r\n"
		"X-Extra: 1\r\n\r\n",
		"authorizer answer with Variable- lines");
	free(got);
	check(get, NULL, h_authorize_crlf, NULL,
		json_response("500 Internal Server Error", "",
			"{\"error\":\"Internal Server Error\","
			"\"reason\":\"Could not build the response\"}"),
		"authorizer value with CR/LF answers 500");
	check(get, NULL, h_authorize_badname, NULL,
		json_response("500 Internal Server Error", "",
			"{\"error\":\"Internal Server Error\","
			"\"reason\":\"Could not build the response\"}"),
		"authorizer variable name with a space answers 500");
	check(get, NULL, h_www_authenticate, NULL,
		json_response("401 Unauthorized", "WWW-Authenticate: Basic realm=\"syncgate\"\r\n",
			"{\"error\":\"Unauthorized\",\"reason\":\"Login required\"}"),
		"401 carries WWW-Authenticate");
	check(post, NULL, h_set_cookie, NULL,
		json_response("200 OK",
			"Set-Cookie: SyncGatewaySession=abc; Path=/db; HttpOnly\r\n",
			"{\"ok\":true}"),
		"200 carries Set-Cookie");
	check(get, NULL, h_injection, counts,
		json_response("200 OK", "X-Ok: tab\there\r\n", "{\"ok\":true}"),
		"no injected header sent");
	tap_is_int(counts[0], 10, "bad header names and values refused");
	tap_is_int(counts[1], 1, "good header kept");
	got = serve(head, NULL, 0, h_ok, NULL);
	tap_is_str(got,
		"Status: 200 OK\r\nContent-Type: application/json\r\n"
		"Content-Length: 11\r\n\r\n",
		"HEAD gets the headers only");
	free(got);
	tap_is_str(sg_status_text(413), "Payload Too Large", "status text 413");
	tap_is_str(sg_status_text(431), "Request Header Fields Too Large", "status text 431");
	tap_is_str(sg_status_text(418), "Unknown", "unknown status text");
}

static void
test_limits(void)
{
	char query[16 + SG_QUERY_MAX + 2], cookie[16 + SG_COOKIE_MAX + 2];
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/", query, NULL};
	char *env2[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/", cookie, NULL};
	size_t off;

	off = (size_t)snprintf(query, sizeof(query), "QUERY_STRING=");
	memset(query + off, 'a', SG_QUERY_MAX);
	query[off + SG_QUERY_MAX] = '\0';
	check(env, NULL, h_ok, NULL, json_response("200 OK", "", "{\"ok\":true}"),
		"query string of exactly 8192 bytes accepted");
	query[off + SG_QUERY_MAX] = 'a';
	query[off + SG_QUERY_MAX + 1] = '\0';
	check(env, NULL, h_ok, NULL,
		json_response("414 URI Too Long", "",
			"{\"error\":\"URI Too Long\",\"reason\":\"Query string over 8192 bytes\"}"),
		"query string over 8192 bytes is 414");

	off = (size_t)snprintf(cookie, sizeof(cookie), "HTTP_COOKIE=");
	memset(cookie + off, 'c', SG_COOKIE_MAX);
	cookie[off + SG_COOKIE_MAX] = '\0';
	check(env2, NULL, h_ok, NULL, json_response("200 OK", "", "{\"ok\":true}"),
		"cookie header of exactly 8192 bytes accepted");
	cookie[off + SG_COOKIE_MAX] = 'c';
	cookie[off + SG_COOKIE_MAX + 1] = '\0';
	check(env2, NULL, h_ok, NULL,
		json_response("431 Request Header Fields Too Large", "",
			"{\"error\":\"Request Header Fields Too Large\","
			"\"reason\":\"Cookie header over 8192 bytes\"}"),
		"cookie header over 8192 bytes is 431");
}

static void
test_body(void)
{
	char *big;
	char *mib[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=1048576",
		NULL};
	char *over[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=1048577",
		NULL};
	char *huge[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a",
		"CONTENT_LENGTH=99999999999999999999999999", NULL};
	char *shortb[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=10",
		NULL};
	char *none[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_user/a", NULL};
	char *empty[] = {"REQUEST_METHOD=DELETE", "REQUEST_URI=/db/_user/a",
		"CONTENT_LENGTH=", NULL};
	char *bad1[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=12a",
		NULL};
	char *bad2[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=-1", NULL};
	char *bad3[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH= 5", NULL};
	char *bad4[] = {"REQUEST_METHOD=PUT", "REQUEST_URI=/db/_user/a", "CONTENT_LENGTH=+5", NULL};
	char *got, *want;
	const char *invalid_cl = "{\"error\":\"Bad Request\","
				 "\"reason\":\"Invalid Content-Length\"}";

	big = malloc(SG_BODY_MAX + 1);
	if (big == NULL)
		exit(1);
	memset(big, 'a', SG_BODY_MAX + 1);
	got = serve(mib, big, SG_BODY_MAX, h_body_len, NULL);
	want = json_response("200 OK", "", "{\"len\":1048576}");
	tap_is_str(got, want, "body of exactly 1 MiB accepted");
	free(got);
	free(want);
	got = serve(over, big, SG_BODY_MAX + 1, h_body_len, NULL);
	want = json_response("413 Payload Too Large", "",
		"{\"error\":"
		"\"Payload Too Large\",\"reason\":\"Request body over 1048576 bytes\"}");
	tap_is_str(got, want, "body of 1 MiB + 1 is 413");
	free(got);
	free(want);
	free(big);
	check(huge, "x", h_body_len, NULL,
		json_response("413 Payload Too Large", "",
			"{\"error\":\"Payload Too Large\","
			"\"reason\":\"Request body over 1048576 bytes\"}"),
		"an enormous Content-Length is 413, not an overflow");
	check(shortb, "abc", h_body_len, NULL,
		json_response("400 Bad Request", "",
			"{\"error\":\"Bad Request\","
			"\"reason\":\"Request body shorter than its Content-Length\"}"),
		"short body is 400");
	check(none, NULL, h_body_len, NULL, json_response("200 OK", "", "{\"len\":0}"),
		"missing Content-Length is an empty body");
	check(empty, NULL, h_body_len, NULL, json_response("200 OK", "", "{\"len\":0}"),
		"empty Content-Length is an empty body");
	check(bad1, "123456789012", h_body_len, NULL,
		json_response("400 Bad Request", "", invalid_cl), "Content-Length 12a");
	check(bad2, NULL, h_body_len, NULL, json_response("400 Bad Request", "", invalid_cl),
		"Content-Length -1");
	check(bad3, "12345", h_body_len, NULL, json_response("400 Bad Request", "", invalid_cl),
		"Content-Length ' 5'");
	check(bad4, "12345", h_body_len, NULL, json_response("400 Bad Request", "", invalid_cl),
		"Content-Length +5");
}

static void
test_json_body(void)
{
	char cl[48];
	char *env[] = {"REQUEST_METHOD=POST", "REQUEST_URI=/db/_user/", cl, NULL};
	char *none[] = {"REQUEST_METHOD=POST", "REQUEST_URI=/db/_user/", NULL};
	static const struct {
		const char *body, *want_body, *name;
	} cases[] = {
		{"{\"name\":\"al\\u00e9\", \"n\": [1, 2]}", "{\"name\":\"al\xc3\xa9\",\"n\":[1,2]}",
			"object echoed compact"},
		{"{\"a\":\"\xff\"}",
			"{\"error\":\"Bad Request\","
			"\"reason\":\"Invalid UTF-8 in request body\"}",
			"invalid UTF-8"},
		{"[1,2]",
			"{\"error\":\"Bad Request\","
			"\"reason\":\"Request body must be a JSON object\"}",
			"array refused"},
		{"\"str\"",
			"{\"error\":\"Bad Request\","
			"\"reason\":\"Request body must be a JSON object\"}",
			"string refused"},
		{"{\"a\":\"\\u0000\"}", NULL, "escaped NUL refused"},
	};
	size_t i;
	char *got, *want;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", strlen(cases[i].body));
		got = serve(env, cases[i].body, strlen(cases[i].body), h_json_body, NULL);
		if (cases[i].want_body != NULL) {
			want = json_response(strncmp(cases[i].want_body, "{\"error\"", 8) == 0
					? "400 Bad Request"
					: "200 OK",
				"", cases[i].want_body);
			tap_is_str(got, want, cases[i].name);
			free(want);
		} else {
			tap_ok(strncmp(got, "Status: 400 Bad Request\r\n", 25) == 0 &&
					strstr(got, "\"reason\":\"Invalid JSON: ") != NULL,
				cases[i].name);
		}
		free(got);
	}
	check(none, NULL, h_json_body, NULL,
		json_response("400 Bad Request", "",
			"{\"error\":\"Bad Request\",\"reason\":\"Missing request body\"}"),
		"empty body refused");

	snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", strlen("{\"a\":1,\"a\":2}"));
	got = serve(env, "{\"a\":1,\"a\":2}", strlen("{\"a\":1,\"a\":2}"), h_json_body, NULL);
	tap_ok(strstr(got, "Status: 400 Bad Request\r\n") == got &&
			strstr(got, "\"reason\":\"Invalid JSON: duplicate object key") != NULL,
		"duplicate keys refused");
	free(got);
	snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", strlen("{\"a\":"));
	got = serve(env, "{\"a\":", strlen("{\"a\":"), h_json_body, NULL);
	tap_ok(strstr(got, "Status: 400 Bad Request\r\n") == got &&
			strstr(got, "\"reason\":\"Invalid JSON: ") != NULL,
		"syntax error refused");
	free(got);
	snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%zu", strlen("{} x"));
	got = serve(env, "{} x", strlen("{} x"), h_json_body, NULL);
	tap_ok(strstr(got, "\"reason\":\"Invalid JSON: ") != NULL, "trailing garbage refused");
	free(got);
}

static void
test_path(void)
{
	static const struct {
		const char *uri, *want, *name;
	} cases[] = {
		{"REQUEST_URI=/db/_user/", "[\"db\",\"_user\",\"\"]", "trailing slash"},
		{"REQUEST_URI=/db", "[\"db\"]", "one segment"},
		{"REQUEST_URI=/", "[\"\"]", "root is one empty segment"},
		{"REQUEST_URI=/db/_oidc?x=/y/z&q=%zz", "[\"db\",\"_oidc\"]",
			"query not part of the path"},
		{"REQUEST_URI=/a%20b/c+d/%C3%A9", "[\"a b\",\"c+d\",\"\xc3\xa9\"]",
			"segments decoded once, plus kept"},
		{"REQUEST_URI=/db/a%2Fb", "[\"db\",\"a/b\"]", "encoded slash stays in its segment"},
		{"REQUEST_URI=/db/%2541", "[\"db\",\"%41\"]", "decoded only once"},
		{"REQUEST_URI=/1/2/3/4/5/6/7/8",
			"[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"]",
			"eight segments accepted"},
		{"REQUEST_URI=/1/2/3/4/5/6/7/8/9", "Path has more than 8 segments",
			"nine segments refused"},
		{"REQUEST_URI=/1/2/3/4/5/6/7/8/", "Path has more than 8 segments",
			"eight segments and a slash refused"},
		{"REQUEST_URI=/db/%zz", "Invalid percent-encoding in path", "bad escape"},
		{"REQUEST_URI=/db/%4", "Invalid percent-encoding in path", "truncated escape"},
		{"REQUEST_URI=/db/a%00b", "Invalid percent-encoding in path", "encoded NUL"},
		{"REQUEST_URI=/db/%ff", "Invalid UTF-8 in path", "invalid UTF-8"},
		{"REQUEST_URI=/db/%C0%AF", "Invalid UTF-8 in path", "overlong UTF-8"},
		{"REQUEST_URI=/db/../other/_user", "Dot segment in path", "dot-dot refused"},
		{"REQUEST_URI=/db/%2e%2E/x", "Dot segment in path", "encoded dot-dot refused"},
		{"REQUEST_URI=/./db", "Dot segment in path", "dot refused"},
		{"REQUEST_URI=db/x", "Request path must start with '/'", "relative path"},
		{"REQUEST_URI=http://h/db", "Request path must start with '/'", "absolute URI"},
		{"REQUEST_URI=", "Request path must start with '/'", "empty path"},
	};
	char *env[] = {"REQUEST_METHOD=GET", NULL, NULL};
	char *fallback[] = {"REQUEST_METHOD=GET", "SCRIPT_NAME=/db", "PATH_INFO=/_user/a%20b",
		NULL};
	char *nopath[] = {"REQUEST_METHOD=GET", NULL};
	char *got, *want, reason[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		env[1] = (char *)cases[i].uri;
		got = serve(env, NULL, 0, h_segs, NULL);
		if (cases[i].want[0] == '[') {
			want = json_response("200 OK", "", cases[i].want);
		} else {
			snprintf(reason, sizeof(reason),
				"{\"error\":\"Bad Request\",\"reason\":\"%s\"}", cases[i].want);
			want = json_response("400 Bad Request", "", reason);
		}
		tap_is_str(got, want, cases[i].name);
		free(got);
		free(want);
	}
	check(fallback, NULL, h_segs, NULL,
		json_response("200 OK", "", "[\"db\",\"_user\",\"a%20b\"]"),
		"SCRIPT_NAME + PATH_INFO without REQUEST_URI, not decoded again");
	check(nopath, NULL, h_segs, NULL,
		json_response("400 Bad Request", "",
			"{\"error\":\"Bad Request\",\"reason\":\"Request path must start with '/'\"}"),
		"no path at all refused");
}

static void
test_query(void)
{
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_oidc",
		"QUERY_STRING=q=a+b%21&x=1&q=second&empty&%70rovider=google&bad=%zz&"
		"eq=a=b",
		NULL};
	char *env2[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_oidc", "QUERY_STRING=&&%zz=1&q=2",
		NULL};
	char *env3[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_oidc", NULL};
	struct sg_request r;
	struct sg_error err;
	struct sg_buf v, small;

	sg_buf_init(&v, 256);
	sg_buf_init(&small, 2);
	tap_is_int(sg_request_begin(&r, NULL, env, &err), 0, "begin for query");
	tap_is_int(sg_request_query(&r, "q", &v), 1, "q found");
	tap_is_str(sg_buf_str(&v), "a b!", "plus and percent decoded, first match");
	tap_is_int(sg_request_query(&r, "x", &v), 1, "x found");
	tap_is_str(sg_buf_str(&v), "1", "x value");
	tap_is_int(sg_request_query(&r, "empty", &v), 1, "name without '=' found");
	tap_is_str(sg_buf_str(&v), "", "its value is empty");
	tap_is_int(sg_request_query(&r, "provider", &v), 1, "name compared decoded");
	tap_is_str(sg_buf_str(&v), "google", "decoded name's value");
	tap_is_int(sg_request_query(&r, "eq", &v), 1, "value holding '='");
	tap_is_str(sg_buf_str(&v), "a=b", "split at the first '='");
	tap_is_int(sg_request_query(&r, "missing", &v), 0, "missing parameter");
	tap_is_int(sg_request_query(&r, "bad", &v), -1, "bad value encoding");
	tap_is_int(sg_request_query(&r, "x", &small), 1, "fits a small buffer");
	tap_is_int(sg_request_query(&r, "provider", &small), -1,
		"value over the buffer cap refused");
	sg_request_end(&r);
	tap_is_int(sg_request_begin(&r, NULL, env2, &err), 0, "begin for bad name");
	tap_is_int(sg_request_query(&r, "q", &v), -1, "undecodable name before the match");
	sg_request_end(&r);
	tap_is_int(sg_request_begin(&r, NULL, env3, &err), 0, "begin without query");
	tap_is_str(r.query, "", "query empty when unset");
	tap_is_int(sg_request_query(&r, "q", &v), 0, "nothing found without query");
	sg_request_end(&r);
	sg_buf_free(&v);
	sg_buf_free(&small);
}

static void
test_cookie(void)
{
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_session",
		"HTTP_COOKIE=xSyncGatewaySession=evil; SyncGatewaySessionx=evil2;"
		"SyncGatewaySession=good;c=\"quoted\";  d = spaced ;e=;novalue;"
		"=anon;SyncGatewaySession=second; q=\"",
		NULL};
	char *env2[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_session", NULL};
	struct sg_request r;
	struct sg_error err;
	struct sg_buf v, small;

	sg_buf_init(&v, 256);
	sg_buf_init(&small, 3);
	tap_is_int(sg_request_begin(&r, NULL, env, &err), 0, "begin for cookies");
	tap_is_int(sg_request_cookie(&r, "SyncGatewaySession", &v), 1, "cookie found");
	tap_is_str(sg_buf_str(&v), "good", "exact name, first match");
	tap_is_int(sg_request_cookie(&r, "xSyncGatewaySession", &v), 1, "prefixed name");
	tap_is_str(sg_buf_str(&v), "evil", "prefixed name's own value");
	tap_is_int(sg_request_cookie(&r, "SyncGateway", &v), 0, "prefix alone not found");
	tap_is_int(sg_request_cookie(&r, "c", &v), 1, "quoted cookie");
	tap_is_str(sg_buf_str(&v), "quoted", "quotes removed");
	tap_is_int(sg_request_cookie(&r, "d", &v), 1, "spaced cookie");
	tap_is_str(sg_buf_str(&v), "spaced", "spaces trimmed");
	tap_is_int(sg_request_cookie(&r, "e", &v), 1, "empty cookie found");
	tap_is_str(sg_buf_str(&v), "", "empty value");
	tap_is_int(sg_request_cookie(&r, "q", &v), 1, "lone quote");
	tap_is_str(sg_buf_str(&v), "\"", "lone quote kept");
	tap_is_int(sg_request_cookie(&r, "novalue", &v), 0, "pair without '=' skipped");
	tap_is_int(sg_request_cookie(&r, "", &v), 0, "empty name never matches");
	tap_is_int(sg_request_cookie(&r, "c", &small), -1, "value over the cap refused");
	sg_request_end(&r);
	tap_is_int(sg_request_begin(&r, NULL, env2, &err), 0, "begin without cookies");
	tap_is_int(sg_request_cookie(&r, "SyncGatewaySession", &v), 0, "no cookie header");
	sg_request_end(&r);
	sg_buf_free(&v);
	sg_buf_free(&small);
}

static void
test_loopback(void)
{
	static const struct {
		const char *addr;
		int want;
	} cases[] = {
		{"REMOTE_ADDR=127.0.0.1", 1},
		{"REMOTE_ADDR=127.9.9.9", 1},
		{"REMOTE_ADDR=::1", 1},
		{"REMOTE_ADDR=::ffff:127.0.0.1", 1},
		{"REMOTE_ADDR=0:0:0:0:0:0:0:1", 1},
		{"REMOTE_ADDR=10.0.0.1", 0},
		{"REMOTE_ADDR=128.0.0.1", 0},
		{"REMOTE_ADDR=127.0.0.1x", 0},
		{"REMOTE_ADDR=127.0.0.1.5", 0},
		{"REMOTE_ADDR=127.1", 0},
		{"REMOTE_ADDR=::ffff:10.0.0.1", 0},
		{"REMOTE_ADDR=::2", 0},
		{"REMOTE_ADDR=", 0},
		{NULL, 0},
	};
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/_user/", NULL, NULL};
	struct sg_request r;
	struct sg_error err;
	char name[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		env[2] = (char *)cases[i].addr;
		snprintf(name, sizeof(name), "loopback %s",
			cases[i].addr != NULL ? cases[i].addr : "(unset)");
		sg_request_begin(&r, NULL, env, &err);
		tap_is_int(sg_request_from_loopback(&r), cases[i].want, name);
		sg_request_end(&r);
	}
}

static void
test_begin(void)
{
	char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/db/", "FCGI_ROLE=AUTHORIZER",
		"REMOTE_ADDR=10.1.2.3", NULL};
	char *env2[] = {"FCGI_ROLE=RESPONDER", "REQUEST_URI=/", NULL};
	struct sg_request r;
	struct sg_error err;

	tap_is_int(sg_request_begin(&r, NULL, env, &err), 0, "begin");
	tap_is_int(r.role, SG_ROLE_AUTHORIZER, "authorizer role");
	tap_is_str(r.method, "GET", "method");
	tap_is_str(r.remote_addr, "10.1.2.3", "remote address");
	tap_is_str(sg_request_param(&r, "FCGI_ROLE"), "AUTHORIZER", "param lookup");
	tap_ok(sg_request_param(&r, "HTTP_AUTHORIZATION") == NULL, "missing param is NULL");
	sg_request_end(&r);
	tap_is_int(sg_request_begin(&r, NULL, env2, &err), 0, "begin, few params");
	tap_is_int(r.role, SG_ROLE_RESPONDER, "responder role");
	tap_is_str(r.method, "", "method empty when unset");
	tap_is_str(r.remote_addr, "", "remote address empty when unset");
	tap_is_int((long long)r.n_segs, 1, "root has one segment");
	sg_request_end(&r);
}

int
main(void)
{
	sg_log_open("test_request", 0, SG_LOG_ERR);
	test_begin();
	test_responses();
	test_limits();
	test_body();
	test_json_body();
	test_path();
	test_query();
	test_cookie();
	test_loopback();
	return tap_done();
}
