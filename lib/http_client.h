/*
 * http_client.h: the requests syncgate makes to OpenID providers.
 *
 * A thin layer over libcurl (GnuTLS) with the rules of SPEC section 8:
 * TLS verified (the system's CAs, or http_client.ca_file), the timeout
 * from http_client.timeout_ms for the whole request, https only except
 * http to a loopback host (SPEC section 3), no redirects followed, and a
 * response body capped at SG_HTTP_BODY_MAX.  Error reasons name the host
 * and what failed, never a query string, a form or a credential.
 */
#ifndef SG_HTTP_CLIENT_H
#define SG_HTTP_CLIENT_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

/* Largest provider response (SPEC section 8): JWKS and tokens are far smaller. */
#define SG_HTTP_BODY_MAX (1024 * 1024)

struct sg_http_opts {
	long timeout_ms;     /* whole request; > 0 */
	const char *ca_file; /* NULL: the system's CAs; borrowed */
};

struct sg_http_response {
	long status;        /* HTTP status of the final response */
	struct sg_buf body; /* owned; cap SG_HTTP_BODY_MAX */
};

/* Initializes resp (empty body with the cap). */
void sg_http_response_init(struct sg_http_response *resp);

/*
 * Wipes and frees what resp owns (a token response holds secrets); resp
 * may be NULL.  resp may be reused after sg_http_response_init.
 */
void sg_http_response_free(struct sg_http_response *resp);

/*
 * Returns 1 when url may be fetched: "https://host..." with a non-empty
 * host, or "http://" with host 127.0.0.0/8, [::1] or localhost; else 0.
 * A URL with userinfo ("user:pass@") or an IPv6 zone is refused, as is
 * anything libcurl's URL parser does not take.
 */
int sg_http_url_allowed(const char *url);

/*
 * GET url (Accept: application/json).  Returns 0 once any HTTP response
 * arrived (resp->status set, body filled, whatever the status), or -1
 * with err set (502) for a refused URL, a connection or TLS failure, a
 * timeout, or a body over SG_HTTP_BODY_MAX; then resp->status is 0 and
 * resp->body empty.  Whatever resp held before is wiped first, so one
 * response may serve several requests.  A 500 means a local failure
 * (no timeout in opts, out of memory).
 */
int sg_http_get(const struct sg_http_opts *opts, const char *url, struct sg_http_response *resp,
	struct sg_error *err);

/*
 * POST form (application/x-www-form-urlencoded, borrowed, already
 * encoded) to url.  When basic_user is non-NULL the request carries HTTP
 * Basic authentication with basic_user and basic_pass, each first
 * form-urlencoded as RFC 6749 section 2.3.1 asks (client_secret_basic).
 * Results as sg_http_get.
 */
int sg_http_post_form(const struct sg_http_opts *opts, const char *url, const char *form,
	const char *basic_user, const char *basic_pass, struct sg_http_response *resp,
	struct sg_error *err);

#endif
