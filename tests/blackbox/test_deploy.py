"""The shipped web-server examples, run as shipped: lighttpd and Apache,
plain and TLS (httpd-examples/*/syncgate.conf and syncgate-tls.conf).

Each variant is a deploy.Deployment: the example file included unchanged
by a small host configuration, the built programs behind it, the echo
backend behind that.  Checked through every variant: users made on the
admin side, login with a session cookie (Secure with TLS), cookie and
Basic requests reaching the backend with the identity headers, the
refusals with their JSON body and WWW-Authenticate, a client's own
X-Syncgate-* headers never reaching the backend, the admin API only on
127.0.0.1, the OpenID Connect endpoints reaching their programs (a real
code-flow login at oidc-provider when node is there), GUEST.
"""
import os
import socket
import sys
import tempfile
import urllib.parse

sys.dont_write_bytecode = True
import deploy  # noqa: E402
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.timeout(540)

VARIANTS = [(server, tls) for server in deploy.SERVERS for tls in (False, True)]
PASSWORD = "alice-Secret-42"
COOKIE = "SyncGatewaySession"
OP_SECRET = "deploy-op-secret-" + "Zr8q" * 6

lacking = {v: deploy.missing(*v) for v in VARIANTS}
if all(lacking.values()):
    sgtest.bail_out("no variant can run: %s" % "; ".join(sorted({m for ms in lacking.values()
                                                                 for m in ms})))

# One public port per variant, chosen now: the provider must know each
# variant's callback URL before it starts, and the variants' configurations
# name the provider.
PUBLIC = dict(zip(VARIANTS, sgtest.free_ports(len(VARIANTS))))


def callback_url(variant):
    return "%s://127.0.0.1:%d/db/_oidc_callback" % ("https" if variant[1] else "http",
                                                    PUBLIC[variant])


def name(variant):
    return "%s%s" % (variant[0], " TLS" if variant[1] else "")


def seen(dep, method="GET", path="/db/doc", **kw):
    """A replication request: (response, what the backend got or None)."""
    dep.backend.clear()
    resp = dep.request(method, path, **kw)
    reqs = dep.backend.requests
    return resp, (reqs[-1] if reqs else None)


def folded(headers):
    """The X-Syncgate-* header names a backend request carried, lower case
    with "_" read as "-", as CGI backends read them."""
    return sorted(k.replace("_", "-") for k in headers
                  if k.lower().replace("_", "-").startswith("x-syncgate-"))


def refused(dep, host, port):
    """True when a TCP connection to host:port is refused."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


def config_for(variant, op):
    db = {}
    if op is not None:
        db["oidc"] = {"providers": {"op": {
            "issuer": op.issuer, "client_id": "syncgate-deploy", "validation_key": OP_SECRET,
            "callback_url": callback_url(variant), "register": True, "user_prefix": "op"}}}
    return {"databases": {"db": db}}


def check_variant(variant, op):
    server, tls = variant
    pre = name(variant) + ": "
    with deploy.Deployment(server, tls=tls, config=config_for(variant, op),
                           ports={"public": PUBLIC[variant]}) as dep:
        diag("%s%s, ports %s" % (pre, dep.example, dep.ports))
        like(dep.url("/db/"), r"^%s://127\.0\.0\.1:%d/db/$" % (dep.scheme, PUBLIC[variant]),
             pre + "url() names the public side")

        # --- users and roles on the admin side
        r = dep.request("PUT", "/db/_role/team", port="admin", body={"admin_channels": ["t1"]})
        is_(r.status, 201, pre + "role created on the admin side")
        r = dep.request("PUT", "/db/_user/alice", port="admin",
                        body={"password": PASSWORD, "admin_channels": ["a2", "a1"],
                              "admin_roles": ["team"]})
        is_(r.status, 201, pre + "user created on the admin side")
        r = dep.request("GET", "/db/_user/alice", port="admin")
        is_((r.status, r.body.get("name") if isinstance(r.body, dict) else None), (200, "alice"),
            pre + "admin side reads the user back")

        # --- login: the session cookie, Secure only with TLS
        r = dep.request("POST", "/db/_session", body={"name": "alice", "password": PASSWORD})
        is_(r.status, 200, pre + "POST /db/_session with the password")
        cookie = r.headers.get("set-cookie")
        cookie = cookie if isinstance(cookie, str) else (cookie or [""])[0]
        like(cookie, r"^%s=[0-9a-f]{40}; Path=/db; HttpOnly; %sSameSite=Lax$"
             % (COOKIE, "Secure; " if tls else ""),
             pre + "session cookie %s Secure" % ("is" if tls else "is not"))
        sid = sgtest.set_cookie(r.headers, COOKIE)

        # --- the cookie on a replication request, with forged headers
        forged = {"X-Syncgate-User": "admin", "X_Syncgate_User": "admin",
                  "X-Syncgate_Roles": "admin", "x_syncgate-channels": "*",
                  "X-Syncgate-Auth": "basic", "X-SYNCGATE-DB": "other"}
        r, got = seen(dep, cookies={COOKIE: sid}, headers=forged)
        is_(r.status, 200, pre + "replication request with the cookie reaches the backend")
        got = got or {"headers": {}, "all_headers": {}}
        h = got["headers"]
        is_(h.get("x-syncgate-user"), "alice", pre + "backend sees the user, not the forged one")
        is_(h.get("x-syncgate-channels"), "!,a1,a2,t1", pre + "backend sees her channels")
        is_(h.get("x-syncgate-roles"), "team", pre + "backend sees her roles")
        is_(h.get("x-syncgate-auth"), "session", pre + "backend sees the auth kind")
        is_(h.get("x-syncgate-db"), "db", pre + "backend sees the database")
        is_(folded(got["all_headers"]), ["x-syncgate-auth", "x-syncgate-channels",
                                         "x-syncgate-db", "x-syncgate-roles", "x-syncgate-user"],
            pre + "no forged spelling reaches the backend, only one header per name")

        # --- Basic
        r, got = seen(dep, auth=("alice", PASSWORD), headers={"X-Syncgate-User": "admin"})
        is_((r.status, (got or {}).get("headers", {}).get("x-syncgate-user"),
             (got or {}).get("headers", {}).get("x-syncgate-auth")), (200, "alice", "basic"),
            pre + "Basic reaches the backend as alice, auth basic")
        r, got = seen(dep, auth=("alice", "wrong-password"))
        is_((r.status, r.body, got), (401, {"error": "Unauthorized", "reason": "Invalid login"},
                                      None), pre + "wrong password: 401 Invalid login")

        # --- no credentials
        r, got = seen(dep, headers={"X-Syncgate-User": "admin", "X_Syncgate_User": "admin"})
        is_(r.status, 401, pre + "no credentials (only forged headers): 401")
        is_(r.body, {"error": "Unauthorized", "reason": "Login required"},
            pre + "401 keeps the check's JSON body")
        like(r.headers.get("content-type"), r"^application/json", pre + "401 is labelled JSON")
        is_(r.headers.get("www-authenticate"), 'Basic realm="syncgate"',
            pre + "401 keeps WWW-Authenticate")
        ok(got is None, pre + "refused request never reaches the backend")
        r, got = seen(dep, path="/db/_oidcx")
        ok(r.status == 401 and got is None,
           pre + "a path next to syncgate's own (/db/_oidcx) still passes the check")

        # --- an encoded slash in a document ID reaches the backend as sent
        r, got = seen(dep, path="/db/a%2Fb?rev=1", auth=("alice", PASSWORD))
        is_((r.status, (got or {}).get("path")), (200, "/db/a%2Fb?rev=1"),
            pre + "an encoded / and the query reach the backend unchanged")

        # --- the admin API is on the admin side only
        for path in ("/db/_user/alice", "/db/_user/", "/db/_role/team", "/db/%5Fuser/alice",
                     "/db/x/../_user/alice"):
            r, got = seen(dep, path=path, auth=("alice", PASSWORD))
            ok(r.status in (403, 404) and got is None and "alice" not in str(r.body).replace(
                "Admin", ""), pre + "public side refuses %s (%s)" % (path, r.status))
        ok(refused(dep, "127.0.0.2", dep.ports["admin"]),
           pre + "admin port is bound to 127.0.0.1 only (127.0.0.2 refused)")
        r = dep.request("GET", "/db/_user/alice", port="admin")
        is_(r.status, 200, pre + "admin port answers on 127.0.0.1")

        # --- the OpenID Connect endpoints reach their programs
        r = dep.request("GET", "/db/_oidc_callback")
        is_((r.status, isinstance(r.body, dict) and "reason" in r.body), (400, True),
            pre + "/db/_oidc_callback without code: 400 from syncgate-oidc-callback")
        r = dep.request("GET", "/db/_oidc_refresh")
        is_((r.status, isinstance(r.body, dict) and "reason" in r.body), (400, True),
            pre + "/db/_oidc_refresh without token: 400 from syncgate-oidc-refresh")
        if op is None:
            r = dep.request("GET", "/db/_oidc")
            is_((r.status, (r.body or {}).get("reason") if isinstance(r.body, dict) else r.body),
                (400, "No OpenID Connect provider is configured"),
                pre + "/db/_oidc: 400 from syncgate-oidc")
        else:
            oidc_login(dep, op, pre)

        # --- ending the session
        r = dep.request("DELETE", "/db/_session", cookies={COOKIE: sid})
        is_(r.status, 200, pre + "DELETE /db/_session ends it")
        r, got = seen(dep, cookies={COOKIE: sid})
        is_((r.status, got), (401, None), pre + "the ended session's cookie is refused")

        # --- GUEST
        r = dep.request("PUT", "/db/_user/GUEST", port="admin",
                        body={"disabled": False, "admin_channels": ["public"]})
        ok(r.status in (200, 201), pre + "GUEST enabled on the admin side")
        r, got = seen(dep, headers={"X-Syncgate-User": "admin"})
        is_(r.status, 200, pre + "GUEST: a request without credentials reaches the backend")
        h = (got or {}).get("headers", {})
        is_((h.get("x-syncgate-user"), h.get("x-syncgate-channels"), h.get("x-syncgate-auth")),
            (None, "!,public", "guest"),
            pre + "GUEST: backend sees the guest's channels, auth guest and no user")

        workdir = dep.dir
    left = sgtest.processes_referring(workdir + os.sep)
    is_(left, [], pre + "no process left after stop")


def oidc_login(dep, op, pre):
    """The code flow through the front: /db/_oidc, the provider's login
    form, the callback, and the cookie on a replication request."""
    r = dep.request("GET", "/db/_oidc")
    location = r.headers.get("location") or ""
    is_(r.status, 302, pre + "/db/_oidc: 302 from syncgate-oidc")
    ok(location.startswith(op.authorization_endpoint + "?"), pre + "to the provider")
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    is_(q.get("redirect_uri"), dep.url("/db/_oidc_callback"),
        pre + "redirect_uri is the front's callback")
    state_cookie = r.headers.get("set-cookie")
    state_cookie = state_cookie if isinstance(state_cookie, str) else " ".join(state_cookie or [])
    ok(("; Secure" in state_cookie) == dep.tls,
       pre + "state cookie %s Secure" % ("is" if dep.tls else "is not"))
    state = sgtest.set_cookie(r.headers, "sg-oidc-state")
    try:
        res = parties.login(location, "carol")
    except parties.LoginError as e:
        ok(False, pre + "login at the provider: %s" % e)
        return
    ok(res.path.startswith("/db/_oidc_callback?"), pre + "provider sends the user to the callback")
    r = dep.request("GET", res.path, cookies={"sg-oidc-state": state})
    is_((r.status, r.body.get("name") if isinstance(r.body, dict) else r.body), (200, "op_carol"),
        pre + "callback through the front: 200, user op_carol")
    sid = sgtest.set_cookie(r.headers, COOKIE)
    r, got = seen(dep, cookies={COOKIE: sid or ""})
    h = (got or {}).get("headers", {})
    is_((r.status, h.get("x-syncgate-user"), h.get("x-syncgate-auth")), (200, "op_carol", "session"),
        pre + "the OIDC session's cookie reaches the backend as op_carol")


# --------------------------------------------------------------------------

# The shipped defaults: the admin side on loopback in both examples.
with open(os.path.join(deploy.examples_dir("lighttpd"), "syncgate-settings.conf")) as f:
    like(f.read(), r'(?m)^var\.syncgate_admin_socket = "127\.0\.0\.1:4985"$',
         "lighttpd example: admin socket 127.0.0.1:4985 by default")
with open(os.path.join(deploy.examples_dir("apache"), "syncgate.conf")) as f:
    text = f.read()
like(text, r"(?m)^Listen 127\.0\.0\.1:\$\{SYNCGATE_ADMIN_PORT\}$",
     "Apache example: admin side listens on 127.0.0.1 only")
like(text, r"(?s)<IfDefine !SYNCGATE_PUBLIC_PORT>[^<]*Define SYNCGATE_PUBLIC_PORT 4984\s",
     "Apache example: public port 4984 by default")
like(text, r"(?s)<IfDefine !SYNCGATE_ADMIN_PORT>[^<]*Define SYNCGATE_ADMIN_PORT 4985\s",
     "Apache example: admin port 4985 by default")

op = None
why = parties.missing()
if why:
    diag("no OpenID provider (%s): /db/_oidc is checked without one" % why)
else:
    tmp = tempfile.mkdtemp(prefix="sg-deploy-op-")
    op = parties.Provider({
        "clients": [{"client_id": "syncgate-deploy", "client_secret": OP_SECRET,
                     "redirect_uris": [callback_url(v) for v in VARIANTS]}],
        "accounts": {"carol": {}},
    }, tmpdir=tmp)
    op.start()

try:
    for variant in VARIANTS:
        if lacking[variant]:
            ok(True, "# SKIP %s: missing %s" % (name(variant), ", ".join(lacking[variant])))
            continue
        check_variant(variant, op)
finally:
    if op is not None:
        op.stop()
done()
