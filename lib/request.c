/*
 * request.c: one HTTP request and its response, over FastCGI or CGI.
 *
 * Parameters are looked up with FCGX_GetParam in the request's own
 * environment (the FastCGI parameters, or environ for one-shot CGI) and are
 * never copied into environ.  The streams are libfcgi's for FastCGI; in CGI
 * mode fcgiapp.h has no request to hand out, so this file reads standard
 * input and writes standard output itself (r->fcgx is NULL then).
 *
 * The path is taken from REQUEST_URI, the raw request target, and each
 * segment is percent-decoded once here.  Dot segments are refused: the web
 * server routes on the normalized path, so "/a/../b/x" would be checked here
 * as database "a" while the backend serves database "b".
 *
 * A response is written in one go: the status line, the fixed headers of
 * its kind, the headers added with sg_response_header, Content-Type and
 * Content-Length, a blank line and the body.  A request gets one response;
 * any later attempt is logged and dropped.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "encode.h"
#include "log.h"
#include "request.h"

extern char **environ;

/*
 * Largest response head.  The longest lines syncgate sends are an OIDC
 * redirect, a Set-Cookie and the authorizer's channel list; 64 KiB holds
 * them many times and is what web servers accept from a backend.
 */
#define HEAD_MAX (64 * 1024)

/* Bytes read from the body stream at a time. */
#define READ_CHUNK 16384

/* The answer when a response cannot be built at all. */
#define FALLBACK_BODY                                                                              \
	"{\"error\":\"Internal Server Error\","                                                    \
	"\"reason\":\"Could not build the response\"}"

static const struct {
	int code;
	const char *text;
} status_texts[] = {
	{200, "OK"},
	{201, "Created"},
	{204, "No Content"},
	{302, "Found"},
	{304, "Not Modified"},
	{400, "Bad Request"},
	{401, "Unauthorized"},
	{403, "Forbidden"},
	{404, "Not Found"},
	{405, "Method Not Allowed"},
	{409, "Conflict"},
	{411, "Length Required"},
	{412, "Precondition Failed"},
	{413, "Payload Too Large"},
	{414, "URI Too Long"},
	{415, "Unsupported Media Type"},
	{429, "Too Many Requests"},
	{431, "Request Header Fields Too Large"},
	{500, "Internal Server Error"},
	{501, "Not Implemented"},
	{502, "Bad Gateway"},
	{503, "Service Unavailable"},
	{504, "Gateway Timeout"},
};

/* Request side. */

const char *
sg_request_param(const struct sg_request *r, const char *name)
{
	if (r->envp == NULL || name == NULL)
		return NULL;
	return FCGX_GetParam(name, r->envp);
}

static const char *
param_or_empty(const struct sg_request *r, const char *name)
{
	const char *v = sg_request_param(r, name);

	return v != NULL ? v : "";
}

static int
is_dot_segment(const char *s)
{
	return strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
}

/*
 * Splits the n bytes of path p into r->segs.  With decode, each segment is
 * percent-decoded; without it (SCRIPT_NAME and PATH_INFO, which the web
 * server has decoded already) segments are taken as they are, so that
 * nothing is decoded twice.
 */
static int
split_path(struct sg_request *r, const char *p, size_t n, int decode, struct sg_error *err)
{
	struct sg_buf seg;
	const char *slash;
	size_t len;
	int rc = -1;

	sg_buf_init(&seg, 0);
	if (n == 0 || p[0] != '/') {
		sg_error_set(err, 400, "Request path must start with '/'");
		goto out;
	}
	p++;
	n--;
	for (;;) {
		slash = memchr(p, '/', n);
		len = slash != NULL ? (size_t)(slash - p) : n;
		if (r->n_segs == SG_PATH_SEGS_MAX) {
			sg_error_set(err, 400, "Path has more than %d segments", SG_PATH_SEGS_MAX);
			goto out;
		}
		/* A decoded segment is never longer than its encoded form. */
		sg_buf_init(&seg, len);
		if (decode) {
			if (sg_percent_decode(p, len, 0, &seg) != 0) {
				sg_error_set(err, 400, "Invalid percent-encoding in path");
				goto out;
			}
		} else if (sg_buf_add(&seg, p, len) != 0) {
			sg_error_set(err, 500, "Out of memory");
			goto out;
		}
		if (!sg_utf8_valid(seg.data, seg.len)) {
			sg_error_set(err, 400, "Invalid UTF-8 in path");
			goto out;
		}
		if (is_dot_segment(seg.data)) {
			sg_error_set(err, 400, "Dot segment in path");
			goto out;
		}
		r->segs[r->n_segs] = sg_buf_take(&seg);
		if (r->segs[r->n_segs] == NULL) {
			sg_error_set(err, 500, "Out of memory");
			goto out;
		}
		r->n_segs++;
		if (slash == NULL)
			break;
		n -= len + 1;
		p = slash + 1;
	}
	rc = 0;
out:
	sg_buf_free(&seg);
	return rc;
}

static void
free_segs(struct sg_request *r)
{
	size_t i;

	for (i = 0; i < r->n_segs; i++) {
		free(r->segs[i]);
		r->segs[i] = NULL;
	}
	r->n_segs = 0;
}

/*
 * On failure r is still fit for an error response and for sg_request_end;
 * it then owns no segments.  "/" gives one empty segment, like the empty
 * last segment of "/db/".  Without REQUEST_URI the path is SCRIPT_NAME
 * followed by PATH_INFO.
 */
int
sg_request_begin(struct sg_request *r, FCGX_Request *fcgx, char **envp, struct sg_error *err)
{
	struct sg_buf path;
	const char *uri, *qmark, *role, *script, *info;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	r->fcgx = fcgx;
	r->envp = envp;
	sg_buf_init(&r->body, SG_BODY_MAX);
	sg_buf_init(&r->out_headers, HEAD_MAX);
	sg_buf_init(&path, 0);

	r->method = param_or_empty(r, "REQUEST_METHOD");
	r->remote_addr = param_or_empty(r, "REMOTE_ADDR");
	r->query = param_or_empty(r, "QUERY_STRING");
	role = sg_request_param(r, "FCGI_ROLE");
	if (role != NULL && strcmp(role, "AUTHORIZER") == 0)
		r->role = SG_ROLE_AUTHORIZER;
	else
		r->role = SG_ROLE_RESPONDER;

	if (strlen(r->query) > SG_QUERY_MAX) {
		sg_error_set(err, 414, "Query string over %d bytes", SG_QUERY_MAX);
		goto out;
	}
	if (strlen(param_or_empty(r, "HTTP_COOKIE")) > SG_COOKIE_MAX) {
		sg_error_set(err, 431, "Cookie header over %d bytes", SG_COOKIE_MAX);
		goto out;
	}

	uri = sg_request_param(r, "REQUEST_URI");
	if (uri != NULL) {
		qmark = strchr(uri, '?');
		rc = split_path(r, uri, qmark != NULL ? (size_t)(qmark - uri) : strlen(uri), 1,
			err);
	} else {
		script = param_or_empty(r, "SCRIPT_NAME");
		info = param_or_empty(r, "PATH_INFO");
		sg_buf_init(&path, strlen(script) + strlen(info));
		if (sg_buf_adds(&path, script) != 0 || sg_buf_adds(&path, info) != 0) {
			sg_error_set(err, 500, "Out of memory");
			goto out;
		}
		rc = split_path(r, sg_buf_str(&path), path.len, 0, err);
	}
out:
	if (rc != 0)
		free_segs(r);
	sg_buf_free(&path);
	return rc;
}

void
sg_request_end(struct sg_request *r)
{
	if (r == NULL)
		return;
	free_segs(r);
	sg_buf_free(&r->body);
	sg_buf_free(&r->out_headers);
}

/*
 * Parses CONTENT_LENGTH: digits only, no sign or space.  Missing or empty
 * is 0, as HTTP/1.1 reads a request without a length (the web server
 * de-chunks and sets CONTENT_LENGTH for chunked ones).  Values past
 * SG_BODY_MAX are stored as SG_BODY_MAX + 1 so that any size, however
 * large, is answered with 413.
 */
static int
parse_length(const char *s, size_t *out)
{
	size_t v = 0;

	if (s == NULL)
		s = "";
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v <= SG_BODY_MAX)
			v = v * 10 + (size_t)(*s - '0');
	}
	*out = v > SG_BODY_MAX ? (size_t)SG_BODY_MAX + 1 : v;
	return 0;
}

/* Reads at most n bytes; returns the count, 0 at the end, -1 on error. */
static long
read_in(struct sg_request *r, char *p, size_t n)
{
	ssize_t got;

	if (r->fcgx != NULL)
		return FCGX_GetStr(p, (int)n, r->fcgx->in);
	do
		got = read(STDIN_FILENO, p, n);
	while (got < 0 && errno == EINTR);
	return (long)got;
}

/*
 * The body is read once: afterwards r->body.data is not NULL (even for an
 * empty body), and a second call returns at once.  A body over the limit
 * is refused from CONTENT_LENGTH alone, before any of it is read.
 */
int
sg_request_read_body(struct sg_request *r, struct sg_error *err)
{
	char chunk[READ_CHUNK];
	size_t want, got, n;
	long k;
	int rc = -1;

	if (r->body.data != NULL)
		return 0;
	if (parse_length(sg_request_param(r, "CONTENT_LENGTH"), &want) != 0) {
		sg_error_set(err, 400, "Invalid Content-Length");
		goto out;
	}
	if (want > SG_BODY_MAX) {
		sg_error_set(err, 413, "Request body over %d bytes", SG_BODY_MAX);
		goto out;
	}
	for (got = 0; got < want; got += (size_t)k) {
		n = want - got < sizeof(chunk) ? want - got : sizeof(chunk);
		k = read_in(r, chunk, n);
		if (k < 0) {
			sg_error_set(err, 400, "Could not read the request body");
			goto out;
		}
		if (k == 0) {
			sg_error_set(err, 400, "Request body shorter than its Content-Length");
			goto out;
		}
		if (sg_buf_add(&r->body, chunk, (size_t)k) != 0) {
			sg_error_set(err, 500, "Out of memory");
			goto out;
		}
	}
	if (sg_buf_add(&r->body, "", 0) != 0) {
		sg_error_set(err, 500, "Out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		sg_buf_free(&r->body);
	return rc;
}

int
sg_request_json_body(struct sg_request *r, json_t **out, struct sg_error *err)
{
	json_error_t jerr;
	json_t *doc = NULL;
	int rc = -1;

	*out = NULL;
	if (sg_request_read_body(r, err) != 0)
		goto out;
	if (r->body.len == 0) {
		sg_error_set(err, 400, "Missing request body");
		goto out;
	}
	if (!sg_utf8_valid(r->body.data, r->body.len)) {
		sg_error_set(err, 400, "Invalid UTF-8 in request body");
		goto out;
	}
	doc = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
		&jerr);
	if (doc == NULL) {
		sg_error_set(err, 400, "Invalid JSON: %s", jerr.text);
		goto out;
	}
	if (!json_is_object(doc)) {
		sg_error_set(err, 400, "Request body must be a JSON object");
		goto out;
	}
	*out = doc;
	doc = NULL;
	rc = 0;
out:
	json_decref(doc);
	return rc;
}

/*
 * Names are compared after decoding, so "%71=1" is parameter "q".  A name
 * that cannot be decoded before the match makes the whole lookup fail:
 * it might have been the parameter asked for.
 */
int
sg_request_query(const struct sg_request *r, const char *name, struct sg_buf *out)
{
	struct sg_buf key;
	const char *p, *amp, *end, *eq, *nend, *val;
	int rc = 0;

	sg_buf_init(&key, SG_QUERY_MAX);
	if (name == NULL || r->query == NULL)
		goto out;
	p = r->query;
	while (*p != '\0') {
		amp = strchr(p, '&');
		end = amp != NULL ? amp : p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		nend = eq != NULL ? eq : end;
		if (end > p) {
			if (sg_percent_decode(p, (size_t)(nend - p), 1, &key) != 0) {
				rc = -1;
				goto out;
			}
			if (strcmp(sg_buf_str(&key), name) == 0) {
				val = eq != NULL ? eq + 1 : end;
				if (sg_percent_decode(val, (size_t)(end - val), 1, out) != 0)
					rc = -1;
				else
					rc = 1;
				goto out;
			}
		}
		p = amp != NULL ? amp + 1 : end;
	}
out:
	sg_buf_free(&key);
	return rc;
}

static int
is_cookie_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 6265 section 5.4 form, "a=b; c=d", read leniently as section 5.2
 * does: spaces around names and values and after ';' are optional, a
 * pair without '=' or with an empty name is skipped, and one pair of
 * double quotes around a value is removed.  Returns -1 (with out empty)
 * when the value does not fit out's cap.
 */
int
sg_request_cookie(const struct sg_request *r, const char *name, struct sg_buf *out)
{
	const char *p, *end, *s, *e, *eq, *ne, *v;
	size_t namelen;

	p = sg_request_param(r, "HTTP_COOKIE");
	if (p == NULL || name == NULL || *name == '\0')
		return 0;
	namelen = strlen(name);
	while (*p != '\0') {
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		s = p;
		while (s < end && is_cookie_space(*s))
			s++;
		e = end;
		while (e > s && is_cookie_space(e[-1]))
			e--;
		eq = memchr(s, '=', (size_t)(e - s));
		if (eq != NULL) {
			ne = eq;
			while (ne > s && is_cookie_space(ne[-1]))
				ne--;
			if ((size_t)(ne - s) == namelen && memcmp(s, name, namelen) == 0) {
				v = eq + 1;
				while (v < e && is_cookie_space(*v))
					v++;
				if (e - v >= 2 && *v == '"' && e[-1] == '"') {
					v++;
					e--;
				}
				sg_buf_reset(out);
				return sg_buf_add(out, v, (size_t)(e - v)) == 0 ? 1 : -1;
			}
		}
		p = *end != '\0' ? end + 1 : end;
	}
	return 0;
}

int
sg_request_from_loopback(const struct sg_request *r)
{
	struct in_addr a4;
	struct in6_addr a6;
	const char *addr = r->remote_addr;

	if (addr == NULL || *addr == '\0')
		return 0;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return 0;
}

/* Response side. */

const char *
sg_status_text(int code)
{
	size_t i;

	for (i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++)
		if (status_texts[i].code == code)
			return status_texts[i].text;
	return "Unknown";
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static int
is_token(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0')
		return 0;
	for (; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || strchr("!#$%&'*+-.^_`|~", *p) != NULL))
			return 0;
	return 1;
}

/*
 * A header value may hold any byte but the control characters (tab
 * aside): CR and LF would start a new header, the others have no place in
 * HTTP/1.1 and web servers refuse or mangle them.
 */
static int
is_header_value(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

/*
 * Writes all n bytes to the response stream.  SIGPIPE is ignored, so a
 * client that went away shows up here as an error, which is only logged.
 */
static int
write_out(struct sg_request *r, const char *p, size_t n)
{
	ssize_t w;
	int k;

	while (n > 0) {
		if (r->fcgx != NULL) {
			k = n > INT_MAX ? INT_MAX : (int)n;
			if (FCGX_PutStr(p, k, r->fcgx->out) != k)
				return -1;
			w = k;
		} else {
			w = write(STDOUT_FILENO, p, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Appends "Status: <code> <text>\r\n" (code already checked: 100-599). */
static int
add_status(struct sg_buf *b, int status)
{
	char code[5] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
		(char)('0' + status % 10), ' ', '\0'};

	return sg_buf_adds(b, "Status: ") != 0 || sg_buf_adds(b, code) != 0 ||
			sg_buf_adds(b, sg_status_text(status)) != 0 || sg_buf_adds(b, "\r\n") != 0
		? -1
		: 0;
}

static int
is_head(const struct sg_request *r)
{
	return r->method != NULL && strcmp(r->method, "HEAD") == 0;
}

/*
 * Sends one response: status, the lines of its kind in extra (may be
 * NULL), the added headers and, with body_type, Content-Type and
 * Content-Length (not sent to HEAD).  An authorizer's 200 passes
 * body_type NULL and has_length 0: it has no body to describe.
 */
static void
send_response(struct sg_request *r, int status, const char *extra, const char *body,
	size_t body_len, int has_length)
{
	static const char fallback_head[] = "Status: 500 Internal Server Error\r\n"
					    "Content-Type: application/json\r\n";
	struct sg_buf head;
	int failed = 0;

	sg_buf_init(&head, HEAD_MAX);
	r->responded = 1;
	if (status < 100 || status > 599) {
		sg_log(SG_LOG_ERR, "response status %d out of range", status);
		goto fallback;
	}
	if (sg_buf_reserve(&head, 32 + (extra != NULL ? strlen(extra) : 0) + r->out_headers.len) !=
			0 ||
		add_status(&head, status) != 0 ||
		(extra != NULL && sg_buf_adds(&head, extra) != 0) ||
		sg_buf_add(&head, r->out_headers.data, r->out_headers.len) != 0 ||
		(body != NULL && sg_buf_adds(&head, "Content-Type: application/json\r\n") != 0) ||
		(has_length && sg_buf_addf(&head, "Content-Length: %zu\r\n", body_len) != 0) ||
		sg_buf_adds(&head, "\r\n") != 0) {
		sg_log(SG_LOG_ERR, "response head over %d bytes", HEAD_MAX);
		goto fallback;
	}
	if (write_out(r, head.data, head.len) != 0 ||
		(body != NULL && !is_head(r) && write_out(r, body, body_len) != 0))
		failed = 1;
	goto out;

fallback:
	sg_buf_reset(&head);
	if (sg_buf_adds(&head, fallback_head) != 0 ||
		sg_buf_addf(&head, "Content-Length: %zu\r\n\r\n", sizeof(FALLBACK_BODY) - 1) != 0 ||
		write_out(r, head.data, head.len) != 0 ||
		(!is_head(r) && write_out(r, FALLBACK_BODY, sizeof(FALLBACK_BODY) - 1) != 0))
		failed = 1;
out:
	if (failed)
		sg_log(SG_LOG_WARN, "could not write the response (%d): %s", status,
			strerror(errno));
	sg_buf_free(&head);
}

/* Returns 1 (and logs) when r already has its response. */
static int
already_responded(const struct sg_request *r, int status)
{
	if (!r->responded)
		return 0;
	sg_log(SG_LOG_WARN, "second response (%d) to one request ignored", status);
	return 1;
}

/*
 * The names the layer writes itself are refused, so that a response never
 * carries two of them.
 */
int
sg_response_header(struct sg_request *r, const char *name, const char *value)
{
	if (name == NULL || value == NULL || !is_token(name) || !is_header_value(value) ||
		strcasecmp(name, "Status") == 0 || strcasecmp(name, "Content-Type") == 0 ||
		strcasecmp(name, "Content-Length") == 0) {
		sg_log(SG_LOG_WARN, "response header refused");
		return -1;
	}
	return sg_buf_addf(&r->out_headers, "%s: %s\r\n", name, value);
}

static void
send_json(struct sg_request *r, int status, const char *extra, json_t *body)
{
	char *text = NULL;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text == NULL) {
			sg_log(SG_LOG_ERR, "could not serialize the response body");
			send_response(r, 500, NULL, FALLBACK_BODY, sizeof(FALLBACK_BODY) - 1, 1);
			goto out;
		}
	}
	send_response(r, status, extra, text, text != NULL ? strlen(text) : 0, 1);
out:
	free(text);
}

void
sg_response_json(struct sg_request *r, int status, json_t *body)
{
	if (already_responded(r, status))
		return;
	send_json(r, status, NULL, body);
}

/*
 * Returns s as a JSON string; bytes that are not valid UTF-8 (a reason
 * may quote client input) become '?' rather than losing the reason.
 */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy;
	size_t i, n = strlen(s);

	if (sg_utf8_valid(s, n))
		return json_stringn(s, n);
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	j = json_stringn(copy, n);
	free(copy);
	return j;
}

static void
send_error(struct sg_request *r, int status, const char *extra, const char *reason)
{
	const char *name;
	json_t *body = NULL, *jreason;

	if (status == 404)
		name = "not_found";
	else if (status == 409)
		name = "conflict";
	else
		name = sg_status_text(status);
	jreason = json_text(reason != NULL ? reason : sg_status_text(status));
	if (jreason != NULL)
		body = json_pack("{s:s,s:o}", "error", name, "reason", jreason);
	if (body == NULL) {
		send_response(r, 500, NULL, FALLBACK_BODY, sizeof(FALLBACK_BODY) - 1, 1);
		goto out;
	}
	send_json(r, status, extra, body);
out:
	json_decref(body);
}

void
sg_response_error(struct sg_request *r, int status, const char *reason)
{
	if (already_responded(r, status))
		return;
	send_error(r, status, NULL, reason);
}

void
sg_response_from_error(struct sg_request *r, const struct sg_error *err)
{
	int status = err != NULL && err->status != 0 ? err->status : 500;

	sg_response_error(r, status, err != NULL && err->reason[0] != '\0' ? err->reason : NULL);
}

void
sg_response_method_not_allowed(struct sg_request *r, const char *allow)
{
	struct sg_buf extra;
	struct sg_error err;

	sg_buf_init(&extra, HEAD_MAX);
	if (already_responded(r, 405))
		goto out;
	if (allow == NULL || !is_header_value(allow) ||
		sg_buf_addf(&extra, "Allow: %s\r\n", allow) != 0) {
		sg_log(SG_LOG_ERR, "bad Allow header value");
		send_error(r, 500, NULL, "Could not build the response");
		goto out;
	}
	sg_error_set(&err, 405, "Method %s not allowed", r->method);
	send_error(r, 405, sg_buf_str(&extra), err.reason);
out:
	sg_buf_free(&extra);
}

void
sg_response_redirect(struct sg_request *r, const char *location)
{
	struct sg_buf extra;

	sg_buf_init(&extra, HEAD_MAX);
	if (already_responded(r, 302))
		goto out;
	if (location == NULL || *location == '\0' || !is_header_value(location) ||
		sg_buf_addf(&extra, "Location: %s\r\n", location) != 0) {
		sg_log(SG_LOG_ERR, "bad redirect location refused");
		send_error(r, 500, NULL, "Could not build the response");
		goto out;
	}
	send_response(r, 302, sg_buf_str(&extra), NULL, 0, 1);
out:
	sg_buf_free(&extra);
}

/* Variable names become environment variable names in the web server. */
static int
is_variable_name(const char *s)
{
	const char *p;

	if (s == NULL || *s == '\0')
		return 0;
	for (p = s; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

/*
 * No Content-Length either: an authorizer's 200 never has a body, and a
 * web server that copies the authorizer's other headers must not find one
 * that describes the backend's answer wrongly.
 */
void
sg_response_authorize(struct sg_request *r, const char *const *names, const char *const *values,
	size_t n)
{
	struct sg_buf extra;
	size_t i, need = 0;

	sg_buf_init(&extra, HEAD_MAX);
	if (already_responded(r, 200))
		goto out;
	/* Check every line and size them all, then copy them in one buffer. */
	for (i = 0; i < n; i++) {
		if (!is_variable_name(names[i]) || values[i] == NULL ||
			!is_header_value(values[i])) {
			sg_log(SG_LOG_ERR, "authorizer variable %zu refused", i);
			send_error(r, 500, NULL, "Could not build the response");
			goto out;
		}
		need += sizeof("Variable-: \r\n") - 1 + strlen(names[i]) + strlen(values[i]);
	}
	if (sg_buf_reserve(&extra, need) != 0) {
		sg_log(SG_LOG_ERR, "authorizer variables over %d bytes", HEAD_MAX);
		send_error(r, 500, NULL, "Could not build the response");
		goto out;
	}
	for (i = 0; i < n; i++) {
		sg_buf_add(&extra, "Variable-", 9);
		sg_buf_adds(&extra, names[i]);
		sg_buf_add(&extra, ": ", 2);
		sg_buf_adds(&extra, values[i]);
		sg_buf_add(&extra, "\r\n", 2);
	}
	send_response(r, 200, sg_buf_str(&extra), NULL, 0, 0);
out:
	sg_buf_free(&extra);
}

/* Serving. */

static void
serve_one(sg_handler_fn handler, void *ctx, FCGX_Request *fcgx, char **envp)
{
	struct sg_request r;
	struct sg_error err;

	sg_error_clear(&err);
	if (sg_request_begin(&r, fcgx, envp, &err) != 0)
		sg_response_from_error(&r, &err);
	else
		handler(&r, ctx);
	if (!r.responded) {
		sg_log(SG_LOG_ERR, "%s request answered nothing", r.method);
		sg_response_error(&r, 500, "The handler sent no response");
	}
	sg_request_end(&r);
}

static volatile sig_atomic_t terminating;

static void
on_term(int signo)
{
	(void)signo;
	terminating = 1;
}

int
sg_request_serve(sg_handler_fn handler, void *ctx)
{
	struct sigaction sa;
	FCGX_Request req;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) != 0) {
		sg_log(SG_LOG_ERR, "cannot ignore SIGPIPE: %s", strerror(errno));
		return 1;
	}
	if (FCGX_Init() != 0) {
		sg_log(SG_LOG_ERR, "FastCGI library initialization failed");
		return 1;
	}
	if (FCGX_IsCGI()) {
		serve_one(handler, ctx, NULL, environ);
		return 0;
	}
	/* SIGTERM (a web server stopping its FastCGI processes) ends the loop
	 * between requests, so the program closes the store cleanly instead of
	 * leaving it to the other processes' recovery. */
	sa.sa_handler = on_term;
	sa.sa_flags = 0; /* no SA_RESTART: accept() must return */
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
		FCGX_InitRequest(&req, 0, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		sg_log(SG_LOG_ERR, "FastCGI request initialization failed");
		return 1;
	}
	while (!terminating) {
		rc = FCGX_Accept_r(&req);
		if (rc == -EINTR)
			continue; /* another signal, or SIGTERM: the loop decides */
		if (rc < 0)
			break;
		serve_one(handler, ctx, &req, req.envp);
		FCGX_Finish_r(&req);
	}
	if (terminating)
		sg_log(SG_LOG_DEBUG, "stopping on SIGTERM");
	return 0;
}
