/*
 * fcgi_echo.c: a FastCGI/CGI program that answers what the request layer
 * saw, for black-box tests under a real web server.
 *
 * As a responder it answers 200 with
 *   {"method","segs":[...],"q","c","body","role","loopback"}
 * where q is the query parameter "q", c the cookie "c" and body the JSON
 * request body (null when absent).  As an authorizer it refuses with 401
 * and WWW-Authenticate when q is "deny", and otherwise allows with the
 * variables ECHO_METHOD, ECHO_PATH (the segments joined by '/'), ECHO_Q
 * and ECHO_C.  Errors of the layer come back as its JSON errors.
 */
#include "autoconf.h"

#include <string.h>

#include <jansson.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "request.h"

/* Longest ECHO_PATH: every segment of the longest allowed request path. */
#define PATH_MAX_LEN (64 * 1024)

static void
authorize(struct sg_request *r, const char *q, const char *c)
{
	static const char *const names[] = {"ECHO_METHOD", "ECHO_PATH", "ECHO_Q", "ECHO_C"};
	const char *values[4];
	struct sg_buf path;
	size_t i;

	sg_buf_init(&path, PATH_MAX_LEN);
	if (q != NULL && strcmp(q, "deny") == 0) {
		sg_response_header(r, "WWW-Authenticate", "Basic realm=\"syncgate\"");
		sg_response_error(r, 401, "Login required");
		goto out;
	}
	for (i = 0; i < r->n_segs; i++) {
		if (sg_buf_addf(&path, "/%s", r->segs[i]) != 0) {
			sg_response_error(r, 500, "Path too long");
			goto out;
		}
	}
	values[0] = r->method;
	values[1] = sg_buf_str(&path);
	values[2] = q != NULL ? q : "";
	values[3] = c != NULL ? c : "";
	sg_response_authorize(r, names, values, 4);
out:
	sg_buf_free(&path);
}

static void
echo(struct sg_request *r, void *ctx)
{
	struct sg_error err;
	struct sg_buf q, c;
	json_t *out = NULL, *segs = NULL, *body = NULL;
	int has_q, has_c;
	size_t i;

	sg_error_clear(&err);
	sg_buf_init(&q, SG_QUERY_MAX);
	sg_buf_init(&c, SG_COOKIE_MAX);
	has_q = sg_request_query(r, "q", &q);
	if (has_q < 0) {
		sg_error_set(&err, 400, "Invalid percent-encoding in query");
		goto fail;
	}
	has_c = sg_request_cookie(r, "c", &c) == 1;
	if (r->role == SG_ROLE_AUTHORIZER) {
		authorize(r, has_q ? sg_buf_str(&q) : NULL, has_c ? sg_buf_str(&c) : NULL);
		goto out;
	}
	if (sg_request_read_body(r, &err) != 0)
		goto fail;
	if (r->body.len > 0 && sg_request_json_body(r, &body, &err) != 0)
		goto fail;
	segs = json_array();
	if (segs == NULL)
		goto fail;
	for (i = 0; i < r->n_segs; i++)
		if (json_array_append_new(segs, json_string(r->segs[i])) != 0)
			goto fail;
	out = json_pack("{s:s,s:O,s:o?,s:o?,s:O?,s:s,s:b}", "method", r->method, "segs", segs, "q",
		has_q ? json_string(sg_buf_str(&q)) : NULL, "c",
		has_c ? json_string(sg_buf_str(&c)) : NULL, "body", body, "role",
		r->role == SG_ROLE_AUTHORIZER ? "authorizer" : "responder", "loopback",
		sg_request_from_loopback(r));
	if (out == NULL)
		goto fail;
	sg_response_json(r, 200, out);
	goto out;
fail:
	sg_response_from_error(r, &err);
out:
	json_decref(out);
	json_decref(segs);
	json_decref(body);
	sg_buf_free(&q);
	sg_buf_free(&c);
}

int
main(void)
{
	sg_log_open("fcgi_echo", 0, SG_LOG_INFO);
	return sg_request_serve(echo, NULL);
}
