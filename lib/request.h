/*
 * request.h: one HTTP request and its response, over FastCGI or CGI.
 *
 * The same code serves a FastCGI manager (lighttpd bin-path, spawn-fcgi,
 * mod_fcgid, a systemd socket) and one-shot CGI (FCGX_IsCGI()).  It uses
 * fcgiapp.h only: parameters are looked up in the request's own
 * environment and never copied into environ.
 *
 * sg_request_begin checks the limits of SPEC section 8 that apply to
 * every request (query string 8 KiB, cookie header 8 KiB) and splits the
 * path; the body (1 MiB) is read on demand.  Every response is JSON
 * except redirects; errors are {"error":"<Status Text>","reason":"..."}.
 */
#ifndef SG_REQUEST_H
#define SG_REQUEST_H

#include <stddef.h>

#include <fcgiapp.h>
#include <jansson.h>

#include "buf.h"
#include "error.h"

/* Limits of SPEC section 8, and why. */
#define SG_BODY_MAX (1024 * 1024) /* no admin document comes near it */
#define SG_QUERY_MAX 8192         /* OIDC codes and states fit many times */
#define SG_COOKIE_MAX 8192        /* what web servers allow for one header */
#define SG_PATH_SEGS_MAX 8        /* /{db}/_user/{name}/_session/{id} is 5 */

enum sg_role { SG_ROLE_RESPONDER, SG_ROLE_AUTHORIZER };

struct sg_request {
	/* Set by sg_request_begin; borrowed from the FastCGI request or the
	 * process environment, valid until sg_request_end. */
	const char *method;      /* REQUEST_METHOD, "" when unset */
	const char *remote_addr; /* REMOTE_ADDR, "" when unset */
	const char *query;       /* QUERY_STRING, "" when unset */
	enum sg_role role;       /* from FCGI_ROLE */

	/* The path of REQUEST_URI (before '?') split on '/', each segment
	 * percent-decoded once; owned.  "/db/_user/" gives "db", "_user", "";
	 * "/" gives one empty segment. */
	char *segs[SG_PATH_SEGS_MAX];
	size_t n_segs;

	struct sg_buf body; /* filled by sg_request_read_body */

	/* Private to request.c. */
	FCGX_Request *fcgx; /* NULL in CGI mode */
	char **envp;
	struct sg_buf out_headers; /* header lines added for the response */
	int responded;
};

/*
 * Serves requests: FastCGI until the manager closes the socket, or the one
 * CGI request.  For each request calls handler(r, ctx) after a successful
 * sg_request_begin (or answers the begin error itself); a handler that
 * sends nothing gets a 500.  Returns the process exit status.
 */
typedef void (*sg_handler_fn)(struct sg_request *r, void *ctx);
int sg_request_serve(sg_handler_fn handler, void *ctx);

/*
 * Prepares r for one request whose parameters are envp (and streams, for
 * FastCGI, in fcgx; NULL for CGI, which uses stdin/stdout).  Returns 0, or
 * -1 with err set: 414 for a query string over SG_QUERY_MAX, 431 for a
 * cookie header over SG_COOKIE_MAX, 400 for a path that is not valid
 * percent-encoding, has a NUL, is not UTF-8, or has too many segments.
 */
int sg_request_begin(struct sg_request *r, FCGX_Request *fcgx, char **envp, struct sg_error *err);

/* Frees what r owns. */
void sg_request_end(struct sg_request *r);

/* Returns the CGI parameter name (e.g. "HTTP_AUTHORIZATION") or NULL; borrowed. */
const char *sg_request_param(const struct sg_request *r, const char *name);

/*
 * Reads the body (CONTENT_LENGTH bytes) into r->body.  Returns 0, or -1
 * with err set: 413 past SG_BODY_MAX, 400 for a bad CONTENT_LENGTH or a
 * short body.
 */
int sg_request_read_body(struct sg_request *r, struct sg_error *err);

/*
 * Reads the body and parses it as one JSON object (valid UTF-8, duplicate
 * member names refused).  On success stores a new reference in *out.
 * Returns 0 or -1 with err set (400 "Invalid JSON: ...", 413).
 */
int sg_request_json_body(struct sg_request *r, json_t **out, struct sg_error *err);

/*
 * Finds the first query parameter called name and percent-decodes its
 * value ('+' as space) into out.  Returns 1 when found, 0 when absent, -1
 * for bad encoding.
 */
int sg_request_query(const struct sg_request *r, const char *name, struct sg_buf *out);

/*
 * Finds cookie name in the Cookie header and copies its value into out.
 * Returns 1 when found, 0 when absent, -1 when the value does not fit
 * out's cap.
 */
int sg_request_cookie(const struct sg_request *r, const char *name, struct sg_buf *out);

/* Returns 1 when REMOTE_ADDR is a loopback address (127.0.0.0/8, ::1). */
int sg_request_from_loopback(const struct sg_request *r);

/* The response. */

/* Returns the status text for code ("Not Found"), "Unknown" otherwise. */
const char *sg_status_text(int code);

/*
 * Adds a response header.  Refuses (returns -1) a name or value holding
 * CR, LF or NUL.  Headers are sent with the next sg_response_* call.
 */
int sg_response_header(struct sg_request *r, const char *name, const char *value);

/* Sends status and body (borrowed; NULL for no body) as application/json. */
void sg_response_json(struct sg_request *r, int status, json_t *body);

/* Sends {"error":<status text or not_found/conflict>,"reason":reason}. */
void sg_response_error(struct sg_request *r, int status, const char *reason);

/* Sends the error in err (500 when its status is unset). */
void sg_response_from_error(struct sg_request *r, const struct sg_error *err);

/* Sends 405 with an Allow header listing allow (e.g. "GET, PUT"). */
void sg_response_method_not_allowed(struct sg_request *r, const char *allow);

/* Sends a 302 redirect to location, with no body. */
void sg_response_redirect(struct sg_request *r, const char *location);

/*
 * Authorizer answer: status 200 with the given Variable-NAME headers
 * (names[i] = values[i], n of them), no body.
 */
void sg_response_authorize(struct sg_request *r, const char *const *names,
	const char *const *values, size_t n);

#endif
