/*
 * test_http_client.c: the HTTP client against a small server of its own.
 *
 * The test forks a plain HTTP/1.1 server on 127.0.0.1 (a port the kernel
 * picks) that answers by path: a JSON 200, a 404, a redirect, bodies of
 * exactly and just over 1 MiB (with and without Content-Length), a reply
 * slower than the client's timeout, and an echo of the request's headers
 * and body.  Anything that does not start like an HTTP request (a TLS
 * ClientHello) gets a plain-text 400, so a TLS client fails at once.
 * A second server speaks TLS with the certificate in tests/data/http, to
 * show that the peer and its name are verified.  The URL rules are cases
 * in tests/data/http/urls.txt.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "buf.h"
#include "encode.h"
#include "error.h"
#include "http_client.h"
#include "tap.h"

#define MIB (1024 * 1024)
#define REQ_MAX (64 * 1024)
/* A marker in query strings, forms and credentials that no reason may show. */
#define SECRET "Zq9secretXw"

static const char *srcdir;
static int port, tls_port;
static pid_t server_pid, tls_pid;

/* Server side. */

static int
send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Sends a response: status line, Content-Type, Content-Length unless
 * with_length is 0 (the body then ends with the connection), extra
 * header lines (each ending in CRLF) and the body.
 */
static void
reply(int fd, const char *status, const char *extra, const char *body, size_t n, int with_length)
{
	char head[512];
	int len;

	len = snprintf(head, sizeof(head),
		"HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n", status);
	if (with_length)
		len += snprintf(head + len, sizeof(head) - (size_t)len, "Content-Length: %zu\r\n",
			n);
	len += snprintf(head + len, sizeof(head) - (size_t)len, "%s\r\n", extra);
	if (send_all(fd, head, (size_t)len) == 0)
		send_all(fd, body, n);
}

/* Copies the value of header name in the request head into out ("" when absent). */
static void
header_value(const char *head, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *line, *end;
	size_t n;

	out[0] = '\0';
	for (line = strstr(head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
		if (strncasecmp(line + 2, name, nl) != 0 || line[2 + nl] != ':')
			continue;
		line += 2 + nl + 1;
		while (*line == ' ')
			line++;
		end = strstr(line, "\r\n");
		n = end != NULL ? (size_t)(end - line) : strlen(line);
		if (n >= outlen)
			n = outlen - 1;
		memcpy(out, line, n);
		out[n] = '\0';
		return;
	}
}

/* Sends a body of n bytes of 'x'. */
static void
reply_big(int fd, size_t n, int with_length)
{
	char *body = malloc(n);

	if (body == NULL)
		return;
	memset(body, 'x', n);
	reply(fd, "200 OK", "", body, n, with_length);
	free(body);
}

/* Answers the request on connection fd, in a process of its own. */
static void
handle(int fd)
{
	static char req[REQ_MAX + 1];
	char method[16], path[256], value[4096], extra[512];
	size_t got = 0, bodylen = 0, n;
	ssize_t r;
	char *head_end = NULL, *end, *q;
	const char *body;
	json_t *echo;
	char *text;
	struct timeval tv = {5, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		r = read(fd, req + got, REQ_MAX - got);
		if (r <= 0)
			return;
		got += (size_t)r;
		req[got] = '\0';
		if (req[0] < 'A' || req[0] > 'Z') {
			reply(fd, "400 Bad Request", "", "", 0, 1);
			return;
		}
		if (head_end == NULL && (head_end = strstr(req, "\r\n\r\n")) != NULL) {
			*head_end = '\0';
			header_value(req, "Content-Length", value, sizeof(value));
			if (value[0] != '\0') {
				errno = 0;
				bodylen = strtoul(value, &end, 10);
				if (errno != 0 || *end != '\0' || bodylen > REQ_MAX)
					return;
			}
		}
		if (head_end != NULL && got - (size_t)(head_end + 4 - req) >= bodylen)
			break;
		if (got == REQ_MAX)
			return;
	}
	body = head_end + 4;
	if (sscanf(req, "%15s %255s", method, path) != 2)
		return;
	if ((q = strchr(path, '?')) != NULL)
		*q = '\0';

	if (strcmp(path, "/ok") == 0) {
		reply(fd, "200 OK", "", "{\"ok\":true}", 11, 1);
	} else if (strcmp(path, "/status404") == 0) {
		reply(fd, "404 Not Found", "", "{\"error\":\"not_found\"}", 21, 1);
	} else if (strcmp(path, "/redirect") == 0) {
		snprintf(extra, sizeof(extra), "Location: http://127.0.0.1:%d/ok\r\n", port);
		reply(fd, "302 Found", extra, "{}", 2, 1);
	} else if (strcmp(path, "/big") == 0) {
		reply_big(fd, MIB + 1, 1);
	} else if (strcmp(path, "/bigstream") == 0) {
		reply_big(fd, MIB + 1, 0);
	} else if (strcmp(path, "/exact") == 0) {
		reply_big(fd, MIB, 1);
	} else if (strcmp(path, "/exactstream") == 0) {
		reply_big(fd, MIB, 0);
	} else if (strcmp(path, "/slow") == 0) {
		sleep(3);
		reply(fd, "200 OK", "", "{}", 2, 1);
	} else if (strcmp(path, "/echo") == 0) {
		echo = json_object();
		json_object_set_new(echo, "method", json_string(method));
		json_object_set_new(echo, "body", json_stringn(body, bodylen));
		header_value(req, "Authorization", value, sizeof(value));
		json_object_set_new(echo, "authorization", json_string(value));
		header_value(req, "Content-Type", value, sizeof(value));
		json_object_set_new(echo, "content_type", json_string(value));
		header_value(req, "Accept", value, sizeof(value));
		json_object_set_new(echo, "accept", json_string(value));
		header_value(req, "User-Agent", value, sizeof(value));
		json_object_set_new(echo, "user_agent", json_string(value));
		header_value(req, "Expect", value, sizeof(value));
		json_object_set_new(echo, "expect", json_string(value));
		text = json_dumps(echo, JSON_COMPACT);
		n = text != NULL ? strlen(text) : 0;
		reply(fd, "200 OK", "", text != NULL ? text : "", n, 1);
		free(text);
		json_decref(echo);
	} else {
		reply(fd, "404 Not Found", "", "{}", 2, 1);
	}
}

/*
 * Answers one TLS connection (the identity in tests/data/http) with the
 * /ok reply, whatever the path.
 */
static void
tls_handle(int fd, gnutls_certificate_credentials_t cred)
{
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				     "Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}";
	gnutls_session_t s;
	char req[4096];
	size_t got = 0;
	ssize_t r;
	int rc;
	struct timeval tv = {5, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	req[0] = '\0';
	if (gnutls_init(&s, GNUTLS_SERVER) != GNUTLS_E_SUCCESS)
		return;
	if (gnutls_set_default_priority(s) != GNUTLS_E_SUCCESS ||
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) != GNUTLS_E_SUCCESS)
		goto out;
	gnutls_transport_set_int(s, fd);
	do
		rc = gnutls_handshake(s);
	while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0)
		goto out;
	while (strstr(req, "\r\n\r\n") == NULL && got < sizeof(req) - 1) {
		r = gnutls_record_recv(s, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			goto out;
		got += (size_t)r;
		req[got] = '\0';
	}
	if (gnutls_record_send(s, answer, sizeof(answer) - 1) > 0)
		gnutls_bye(s, GNUTLS_SHUT_WR);
out:
	gnutls_deinit(s);
}

/*
 * Starts a server on 127.0.0.1: plain HTTP, or with tls the TLS one.
 * Sets *pid and returns the port, or -1.
 */
static int
server_start(int tls, pid_t *pid)
{
	gnutls_certificate_credentials_t cred = NULL;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char cert[1024], key[1024];
	int lfd, c, p;

	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
		getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		close(lfd);
		return -1;
	}
	p = ntohs(sa.sin_port);
	if (!tls)
		port = p;
	if (tls) {
		snprintf(cert, sizeof(cert), "%s/tests/data/http/test-cert.pem", srcdir);
		snprintf(key, sizeof(key), "%s/tests/data/http/test-key.pem", srcdir);
		if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS ||
			gnutls_certificate_set_x509_key_file(cred, cert, key,
				GNUTLS_X509_FMT_PEM) != GNUTLS_E_SUCCESS) {
			printf("# cannot load %s and %s\n", cert, key);
			close(lfd);
			return -1;
		}
	}
	*pid = fork();
	if (*pid < 0) {
		close(lfd);
		return -1;
	}
	if (*pid == 0) {
		/* Its own process group, so that one kill ends every handler. */
		setpgid(0, 0);
		signal(SIGCHLD, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		for (;;) {
			if ((c = accept(lfd, NULL, NULL)) < 0) {
				if (errno == EINTR)
					continue;
				_exit(1);
			}
			if (fork() == 0) {
				close(lfd);
				if (tls)
					tls_handle(c, cred);
				else
					handle(c);
				close(c);
				_exit(0);
			}
			close(c);
		}
	}
	setpgid(*pid, *pid);
	close(lfd);
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	return p;
}

static void
server_stop(pid_t pid)
{
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* Client side. */

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
url(const char *path)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "http://127.0.0.1:%d%s", port, path);
	return buf;
}

/* Checks that a failure's reason names the host and shows no secret. */
static void
check_reason(const struct sg_error *err, const char *host, const char *what)
{
	char name[256];

	snprintf(name, sizeof(name), "%s: reason names the host", what);
	if (!tap_ok(host == NULL || strstr(err->reason, host) != NULL, name))
		printf("#   reason \"%s\"\n", err->reason);
	snprintf(name, sizeof(name), "%s: reason shows no secret, path or query", what);
	if (!tap_ok(strstr(err->reason, SECRET) == NULL && strchr(err->reason, '?') == NULL &&
			    strstr(err->reason, "/slow") == NULL &&
			    strstr(err->reason, "/big") == NULL &&
			    strstr(err->reason, "/echo") == NULL,
		    name))
		printf("#   reason \"%s\"\n", err->reason);
}

static void
test_url_table(void)
{
	char path[1024], line[1024], *sp;
	FILE *f;
	int cases = 0, want;
	size_t n;

	snprintf(path, sizeof(path), "%s/tests/data/http/urls.txt", srcdir);
	f = fopen(path, "r");
	if (!tap_ok(f != NULL, "tests/data/http/urls.txt opens")) {
		printf("#   %s\n", path);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		sp = strchr(line, ' ');
		if (sp == NULL ||
			(strncmp(line, "allowed ", 8) != 0 && strncmp(line, "refused ", 8) != 0)) {
			tap_ok(0, line);
			continue;
		}
		want = line[0] == 'a';
		tap_is_int(sg_http_url_allowed(sp + 1), want, line);
		cases++;
	}
	fclose(f);
	tap_ok(cases > 15, "URL table read");
	tap_is_int(sg_http_url_allowed(NULL), 0, "refused NULL");
	tap_is_int(sg_http_url_allowed(""), 0, "refused empty URL");
}

static void
test_get(const struct sg_http_opts *opts)
{
	struct sg_http_response resp;
	struct sg_error err;
	json_t *j;

	sg_http_response_init(&resp);
	tap_is_int(sg_http_get(opts, url("/ok"), &resp, &err), 0, "GET /ok");
	tap_is_int(resp.status, 200, "GET /ok status");
	tap_is_str(sg_buf_str(&resp.body), "{\"ok\":true}", "GET /ok body");

	tap_is_int(sg_http_get(opts, url("/status404"), &resp, &err), 0, "a 404 is a response");
	tap_is_int(resp.status, 404, "404 status returned");
	tap_is_str(sg_buf_str(&resp.body), "{\"error\":\"not_found\"}", "404 body kept");

	tap_is_int(sg_http_get(opts, url("/redirect"), &resp, &err), 0, "a 302 is a response");
	tap_is_int(resp.status, 302, "redirect returned, not followed");
	tap_is_str(sg_buf_str(&resp.body), "{}", "redirect body, not the target's");

	tap_is_int(sg_http_get(opts, url("/echo"), &resp, &err), 0, "GET /echo");
	j = json_loads(sg_buf_str(&resp.body), 0, NULL);
	tap_ok(j != NULL, "echo is JSON");
	tap_is_str(json_string_value(json_object_get(j, "method")), "GET", "method GET");
	tap_is_str(json_string_value(json_object_get(j, "accept")), "application/json",
		"GET sends Accept: application/json");
	tap_is_str(json_string_value(json_object_get(j, "user_agent")), "syncgate/" PACKAGE_VERSION,
		"User-Agent names syncgate and its version");
	tap_is_str(json_string_value(json_object_get(j, "authorization")), "",
		"GET sends no Authorization");
	json_decref(j);

	tap_is_int(sg_http_get(opts, url("/exact"), &resp, &err), 0, "body of exactly 1 MiB");
	tap_is_int((long long)resp.body.len, MIB, "1 MiB body kept whole");
	tap_ok(resp.body.len == MIB && resp.body.data[0] == 'x' && resp.body.data[MIB - 1] == 'x',
		"1 MiB body content");
	tap_is_int(sg_http_get(opts, url("/exactstream"), &resp, &err), 0,
		"1 MiB body without Content-Length");
	tap_is_int((long long)resp.body.len, MIB, "streamed 1 MiB body kept whole");

	tap_is_int(sg_http_get(opts, url("/big?q=" SECRET), &resp, &err), -1,
		"body over 1 MiB refused");
	tap_is_int(err.status, 502, "oversized body is 502");
	tap_ok(strstr(err.reason, "over 1 MiB") != NULL, "reason says over 1 MiB");
	tap_is_int((long long)resp.body.len, 0, "nothing kept of an oversized body");
	tap_is_int(resp.status, 0, "no status after a failure");
	check_reason(&err, "127.0.0.1", "oversized body");

	tap_is_int(sg_http_get(opts, url("/ok"), &resp, &err), 0, "GET /ok again");
	tap_is_int(sg_http_get(opts, url("/bigstream?q=" SECRET), &resp, &err), -1,
		"body over 1 MiB without Content-Length refused");
	tap_is_int(err.status, 502, "oversized streamed body is 502");
	tap_ok(strstr(err.reason, "over 1 MiB") != NULL, "streamed: reason says over 1 MiB");
	tap_is_int((long long)resp.body.len, 0, "nothing kept of an oversized streamed body");
	check_reason(&err, "127.0.0.1", "oversized streamed body");

	sg_http_response_free(&resp);
	sg_http_response_free(NULL);
}

static void
test_timeout(void)
{
	struct sg_http_opts fast = {300, NULL};
	struct sg_http_response resp;
	struct sg_error err;
	long t0, dt;

	sg_http_response_init(&resp);
	t0 = now_ms();
	tap_is_int(sg_http_get(&fast, url("/slow?q=" SECRET), &resp, &err), -1,
		"slow provider times out");
	dt = now_ms() - t0;
	tap_is_int(err.status, 502, "timeout is 502");
	if (!tap_ok(dt >= 250 && dt < 1200, "timeout after about 300 ms"))
		printf("#   took %ld ms\n", dt);
	check_reason(&err, "127.0.0.1", "timeout");

	fast.timeout_ms = 0;
	tap_is_int(sg_http_get(&fast, url("/ok"), &resp, &err), -1, "no timeout set: refused");
	tap_is_int(err.status, 500, "no timeout set is 500");
	sg_http_response_free(&resp);
}

static void
test_post(const struct sg_http_opts *opts)
{
	/* Each of these characters must be form-urlencoded before base64. */
	static const char user[] = "my client:1/x+y%";
	static const char pass[] = "p@ss word:%2F+/~" SECRET;
	static const char cred[] = "my+client%3A1%2Fx%2By%25:p%40ss+word%3A%252F%2B%2F~" SECRET;
	static const char form[] =
		"grant_type=authorization_code&code=abc%2Fdef&redirect_uri=https%3A%2F%2Fh%2Fcb";
	struct sg_http_response resp;
	struct sg_error err;
	struct sg_buf dec, big;
	const char *auth;
	json_t *j;
	long t0, dt;

	sg_http_response_init(&resp);
	sg_buf_init(&dec, 1024);
	tap_is_int(sg_http_post_form(opts, url("/echo"), form, user, pass, &resp, &err), 0,
		"POST /echo with Basic");
	tap_is_int(resp.status, 200, "POST status");
	j = json_loads(sg_buf_str(&resp.body), 0, NULL);
	tap_ok(j != NULL, "POST echo is JSON");
	tap_is_str(json_string_value(json_object_get(j, "method")), "POST", "method POST");
	tap_is_str(json_string_value(json_object_get(j, "content_type")),
		"application/x-www-form-urlencoded", "form Content-Type");
	tap_is_str(json_string_value(json_object_get(j, "accept")), "application/json",
		"POST sends Accept: application/json");
	tap_is_str(json_string_value(json_object_get(j, "body")), form, "form sent as given");
	auth = json_string_value(json_object_get(j, "authorization"));
	tap_ok(auth != NULL && strncmp(auth, "Basic ", 6) == 0, "Authorization: Basic");
	tap_is_int(auth != NULL ? sg_base64_decode(auth + 6, strlen(auth + 6), &dec) : -1, 0,
		"Basic credentials are base64");
	tap_is_str(sg_buf_str(&dec), cred, "id and secret form-urlencoded, then joined by ':'");
	json_decref(j);

	tap_is_int(sg_http_post_form(opts, url("/echo"), "a=1", NULL, NULL, &resp, &err), 0,
		"POST /echo without Basic");
	j = json_loads(sg_buf_str(&resp.body), 0, NULL);
	tap_is_str(json_string_value(json_object_get(j, "authorization")), "",
		"no Authorization without a user");
	tap_is_str(json_string_value(json_object_get(j, "body")), "a=1", "short form sent");
	json_decref(j);

	/* A larger form: sent whole, without waiting for a 100 Continue. */
	sg_buf_init(&big, 64 * 1024);
	sg_buf_adds(&big, "x=");
	while (big.len < 40000)
		sg_buf_adds(&big, "0123456789");
	t0 = now_ms();
	tap_is_int(sg_http_post_form(opts, url("/echo"), sg_buf_str(&big), user, pass, &resp, &err),
		0, "POST a 40 kB form");
	dt = now_ms() - t0;
	j = json_loads(sg_buf_str(&resp.body), 0, NULL);
	tap_is_str(json_string_value(json_object_get(j, "body")), sg_buf_str(&big),
		"40 kB form sent whole");
	tap_is_str(json_string_value(json_object_get(j, "expect")), "", "no Expect header");
	if (!tap_ok(dt < 900, "40 kB form without a 100-continue wait"))
		printf("#   took %ld ms\n", dt);
	json_decref(j);
	sg_buf_free(&big);

	tap_is_int(sg_http_post_form(opts, url("/big?q=" SECRET), "code=" SECRET, user, pass, &resp,
			   &err),
		-1, "POST with an oversized answer fails");
	tap_is_int(err.status, 502, "POST oversized answer is 502");
	check_reason(&err, "127.0.0.1", "POST oversized answer");

	sg_buf_free(&dec);
	sg_http_response_free(&resp);
}

static void
test_failures(const struct sg_http_opts *opts)
{
	struct sg_http_opts nocas = {5000, "/nonexistent/ca.pem"};
	struct sg_http_response resp;
	struct sg_error err;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char u[256];
	int fd, closed_port = 0;
	long t0, dt;

	sg_http_response_init(&resp);

	/* A port that was just free: nothing listens there. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		closed_port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/echo?q=" SECRET, closed_port);
	tap_is_int(sg_http_get(opts, u, &resp, &err), -1, "connection refused fails");
	tap_is_int(err.status, 502, "connection refused is 502");
	tap_ok(strncmp(err.reason, "cannot reach 127.0.0.1", 22) == 0,
		"reason: cannot reach the host");
	check_reason(&err, "127.0.0.1", "connection refused");
	tap_is_int(sg_http_post_form(opts, u, "code=" SECRET, "client", SECRET, &resp, &err), -1,
		"POST to a closed port fails");
	check_reason(&err, "127.0.0.1", "POST to a closed port");

	snprintf(u, sizeof(u), "https://127.0.0.1:%d/ok?q=" SECRET, port);
	t0 = now_ms();
	tap_is_int(sg_http_get(opts, u, &resp, &err), -1, "https to a plain HTTP server fails");
	dt = now_ms() - t0;
	tap_is_int(err.status, 502, "TLS failure is 502");
	if (!tap_ok(dt < 2000, "TLS failure is quick, not the 5 s timeout"))
		printf("#   took %ld ms\n", dt);
	check_reason(&err, "127.0.0.1", "TLS failure");
	tap_is_int(sg_http_post_form(opts, u, "code=" SECRET, "client", SECRET, &resp, &err), -1,
		"POST over https to a plain HTTP server fails");
	check_reason(&err, "127.0.0.1", "POST TLS failure");

	tap_is_int(sg_http_get(&nocas, u, &resp, &err), -1, "https with a missing CA file fails");
	tap_is_int(err.status, 502, "missing CA file is 502");

	tap_is_int(sg_http_get(opts, "http://example.com/x?q=" SECRET, &resp, &err), -1,
		"plain http to a remote host refused");
	tap_is_int(err.status, 502, "refused URL is 502");
	check_reason(&err, "example.com", "refused URL");
	tap_is_int(sg_http_post_form(opts, "http://127.0.0.1@evil.example/t?q=" SECRET,
			   "code=" SECRET, "client", SECRET, &resp, &err),
		-1, "userinfo trick refused");
	check_reason(&err, NULL, "userinfo trick");
	tap_is_int(sg_http_get(opts, "ftp://127.0.0.1/" SECRET, &resp, &err), -1, "ftp refused");
	check_reason(&err, NULL, "ftp");
	tap_is_int((long long)resp.body.len, 0, "no body after a refusal");

	sg_http_response_free(&resp);
}

/*
 * Against the TLS server, whose certificate names localhost only: trusted
 * through ca_file, refused with the system's CAs, refused for another name.
 */
static void
test_tls(void)
{
	struct sg_http_opts system_cas = {5000, NULL}, own_ca = {5000, NULL};
	struct sg_http_response resp;
	struct sg_error err;
	char ca[1024], u[256];
	long t0, dt;

	snprintf(ca, sizeof(ca), "%s/tests/data/http/test-cert.pem", srcdir);
	own_ca.ca_file = ca;
	sg_http_response_init(&resp);

	snprintf(u, sizeof(u), "https://localhost:%d/ok", tls_port);
	if (!tap_is_int(sg_http_get(&own_ca, u, &resp, &err), 0,
		    "https with ca_file trusting the server"))
		printf("#   %s\n", err.reason);
	tap_is_int(resp.status, 200, "https status");
	tap_is_str(sg_buf_str(&resp.body), "{\"ok\":true}", "https body");

	snprintf(u, sizeof(u), "https://localhost:%d/ok?q=" SECRET, tls_port);
	t0 = now_ms();
	tap_is_int(sg_http_get(&system_cas, u, &resp, &err), -1,
		"self-signed certificate refused with the system's CAs");
	dt = now_ms() - t0;
	tap_is_int(err.status, 502, "untrusted certificate is 502");
	tap_ok(dt < 2000, "untrusted certificate refused at once");
	tap_is_int((long long)resp.body.len, 0, "no body from an untrusted server");
	check_reason(&err, "localhost", "untrusted certificate");

	snprintf(u, sizeof(u), "https://127.0.0.1:%d/ok?q=" SECRET, tls_port);
	tap_is_int(sg_http_get(&own_ca, u, &resp, &err), -1,
		"certificate for another name refused (host checked)");
	tap_is_int(err.status, 502, "name mismatch is 502");
	check_reason(&err, "127.0.0.1", "name mismatch");

	tap_is_int(sg_http_post_form(&system_cas, u, "code=" SECRET, "client", SECRET, &resp, &err),
		-1, "POST to an untrusted server refused");
	check_reason(&err, "127.0.0.1", "POST to an untrusted server");
	sg_http_response_free(&resp);
}

int
main(void)
{
	struct sg_http_opts opts = {5000, NULL};

	srcdir = getenv("top_srcdir");
	if (srcdir == NULL || *srcdir == '\0')
		srcdir = ".";
	/* libcurl writes nothing to a closed peer with MSG_NOSIGNAL, but be sure. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A proxy in the environment that does not exist: requests to the
	 * loopback servers below must not go through it.
	 */
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("https_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTPS_PROXY", "http://127.0.0.1:9/", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9/", 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	test_url_table();
	if (!tap_ok(server_start(0, &server_pid) > 0, "test server starts"))
		return tap_done();
	if (!tap_ok((tls_port = server_start(1, &tls_pid)) > 0, "TLS test server starts")) {
		server_stop(server_pid);
		return tap_done();
	}
	test_get(&opts);
	test_timeout();
	test_post(&opts);
	test_failures(&opts);
	test_tls();
	server_stop(tls_pid);
	server_stop(server_pid);
	return tap_done();
}
