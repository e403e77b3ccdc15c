"""OpenID Connect through a real lighttpd against a real provider.

tests/parties/provider.mjs runs oidc-provider (a certified OpenID
provider) on loopback; parties.login() fills in its login and consent
forms as a user would.  Covered: /_oidc and its parameters, the callback,
registration, the session cookie through the authorizer, two providers in
one database, refresh with rotation, Bearer ID tokens, the callback's
refusals (which must never reach the token endpoint), and logs free of
secrets.
"""
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import done, is_, isnt, like, ok  # noqa: E402

sgtest.timeout(300)
sgtest.require_programs(*(sgtest.program(p) for p in (
    "syncgate-session-check", "syncgate-user-admin", "syncgate-oidc",
    "syncgate-oidc-callback", "syncgate-oidc-refresh")))
parties.require_parties()

SECRET = "op-secret-" + "x7Q2" * 6
SECRET2 = "op2-secret-" + "k9W1" * 6
PUBLIC = sgtest.free_port()
CALLBACK = "http://127.0.0.1:%d/db/_oidc_callback" % PUBLIC

tmp = tempfile.mkdtemp(prefix="sg-oidc-")
op = parties.Provider({
    "clients": [
        {"client_id": "syncgate-db", "client_secret": SECRET, "redirect_uris": [CALLBACK]},
        {"client_id": "syncgate-db2", "client_secret": SECRET2,
         "redirect_uris": [CALLBACK + "?provider=second"]},
    ],
    "rotate_refresh": True,
    "accounts": {"alice": {"roles": ["team"], "channels": ["ch-a", "bad,name"]}},
}, tmpdir=tmp)
op.start()

CONFIG = {"databases": {"db": {
    "session_cookie_secure": False,
    "oidc": {"default_provider": "main", "providers": {
        "main": {"issuer": op.issuer, "client_id": "syncgate-db", "validation_key": SECRET,
                 "callback_url": CALLBACK, "register": True, "user_prefix": "op",
                 "roles_claim": "roles", "channels_claim": "channels",
                 "scope": ["openid", "email"]},
        "second": {"issuer": op.issuer, "client_id": "syncgate-db2",
                   "validation_key": SECRET2, "callback_url": CALLBACK,
                   "register": False, "username_claim": "email", "include_access": True},
    }}}}}


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                       keep_blank_values=True))


def token_posts():
    return len(op.requests("POST", "/token"))


def seen_by_backend(st, path="/db/doc", **kw):
    st.backend.clear()
    status, headers, body = st.request("GET", path, **kw)
    reqs = st.backend.requests
    return status, (reqs[-1]["headers"] if status == 200 and reqs else None)


def callback(st, result, cookies=None):
    """GETs the callback URL a login ended at, with the state cookie."""
    status, headers, body = st.request("GET", result.path,
                                       cookies=result.cookies if cookies is None else cookies)
    return status, headers, body


secrets = [SECRET, SECRET2]

try:
    with sgtest.Stack(CONFIG, ports={"public": PUBLIC}) as st:
        status, _, _ = st.request("PUT", "/db/_role/team", port="admin",
                                  body={"admin_channels": ["t1"]})
        is_(status, 201, "role team created")

        # --- /_oidc: the redirect and every parameter of SPEC 7
        status, headers, body = st.request("GET", "/db/_oidc")
        is_(status, 302, "/db/_oidc redirects")
        loc = headers.get("location", "")
        ok(loc.startswith(op.authorization_endpoint + "?"), "to the authorization endpoint")
        q = query_of(loc)
        is_(q.get("response_type"), "code", "response_type=code")
        is_(q.get("client_id"), "syncgate-db", "client_id")
        is_(q.get("redirect_uri"), CALLBACK, "redirect_uri is callback_url")
        is_(q.get("scope"), "openid email", "scope space-joined")
        like(q.get("state", ""), r"^[0-9a-f]{40}$", "state: 160 random bits")
        ok(len(q.get("nonce", "")) >= 22, "nonce present")
        like(q.get("code_challenge", ""), r"^[A-Za-z0-9_-]{43}$", "PKCE challenge")
        is_(q.get("code_challenge_method"), "S256", "code_challenge_method=S256")
        ok("prompt" not in q, "no prompt without offline")
        cookie = headers.get("set-cookie", "")
        cookie = cookie if isinstance(cookie, str) else " ".join(cookie)
        like(cookie, r"sg-oidc-state=%s; Path=/db; HttpOnly; Max-Age=300; SameSite=Lax" %
             q.get("state"), "state cookie with its attributes")
        ok("Secure" not in cookie, "state cookie Secure per config (off here)")

        status, headers, body = st.request("GET", "/db/_oidc?offline=true")
        q = query_of(headers.get("location", ""))
        is_(q.get("scope"), "openid email offline_access", "offline=true adds offline_access")
        is_(q.get("prompt"), "consent", "offline=true adds prompt=consent")

        status, headers, body = st.request("GET", "/db/_oidc?provider=second")
        q = query_of(headers.get("location", ""))
        is_(q.get("client_id"), "syncgate-db2", "?provider= selects the other provider")
        is_(q.get("redirect_uri"), CALLBACK + "?provider=second",
            "its callback URL carries the provider")

        status, headers, body = st.request("GET", "/db/_oidc?provider=nope")
        is_(status, 400, "unknown provider: 400")
        status, headers, body = st.request("GET", "/db/_oidc_challenge")
        is_(status, 401, "/_oidc_challenge: 401")
        is_(body.get("reason") if isinstance(body, dict) else None, "Login required",
            "challenge reason")
        like(headers.get("www-authenticate", ""),
             r'^OIDC login="%s\?' % op.authorization_endpoint.replace(".", r"\."),
             "challenge names the login URL")
        status, headers, body = st.request("POST", "/db/_oidc")
        is_(status, 405, "POST /_oidc: 405")
        ok("GET" in headers.get("allow", ""), "405 with Allow")

        # --- the code flow, registering a new user
        posts = token_posts()
        res = parties.login(st.url("/db/_oidc"), "alice")
        ok(res.path.startswith("/db/_oidc_callback?"), "provider sends the user to the callback")
        ok("code" in res.params and "state" in res.params, "with code and state")
        status, headers, body = callback(st, res)
        is_(status, 200, "callback: 200")
        body = body if isinstance(body, dict) else {}
        is_(sorted(body), ["id_token", "name", "refresh_token", "session_id"],
            "callback answers id_token, refresh_token, session_id, name")
        is_(body.get("name"), "op_alice", "user name: prefix _ sub")
        is_(token_posts(), posts + 1, "one code exchange")
        sid = sgtest.set_cookie(headers, "SyncGatewaySession")
        is_(sid, body.get("session_id"), "session cookie set to the session id")
        is_(sgtest.set_cookie(headers, "sg-oidc-state"), "", "state cookie cleared")
        secrets += [body.get("id_token"), body.get("refresh_token"), sid, res.params["code"]]
        id_token = body.get("id_token")
        refresh = body.get("refresh_token")
        claims = parties.decode_jwt(id_token)[1] if id_token else {}
        is_(claims.get("nonce"), query_of(res.url).get("nonce") or claims.get("nonce"),
            "ID token carries a nonce")

        status, ident = seen_by_backend(st, cookies={"SyncGatewaySession": sid})
        is_(status, 200, "session cookie passes the authorizer")
        ident = ident or {}
        is_(ident.get("x-syncgate-user"), "op_alice", "backend sees the OIDC user")
        is_(ident.get("x-syncgate-channels"), "!,ch-a,t1",
            "channels from the token's claim and its role, invalid names dropped")
        is_(ident.get("x-syncgate-roles"), "team", "roles from the token's claim")
        is_(ident.get("x-syncgate-auth"), "session", "auth kind session")

        status, _, user = st.request("GET", "/db/_user/op_alice", port="admin")
        is_(status, 200, "registered user exists")
        user = user if isinstance(user, dict) else {}
        ok(not user.get("admin_channels") and not user.get("admin_roles"),
           "registered with no admin grants")
        is_(user.get("email"), "alice@example.com", "email from the token")
        is_(user.get("jwt_issuer"), op.issuer, "jwt_issuer set")
        is_(user.get("jwt_channels"), ["ch-a"], "jwt_channels set")

        # --- a user the admin created beforehand keeps its channels
        status, _, _ = st.request("PUT", "/db/_user/op_bob", port="admin",
                                  body={"admin_channels": ["b1"]})
        is_(status, 201, "op_bob created by the admin")
        res = parties.login(st.url("/db/_oidc"), "bob")  # a browser of his own
        status, headers, body = callback(st, res)
        is_(status, 200, "bob logs in")
        sid_b = sgtest.set_cookie(headers, "SyncGatewaySession")
        status, ident = seen_by_backend(st, cookies={"SyncGatewaySession": sid_b})
        is_((ident or {}).get("x-syncgate-channels"), "!,b1", "bob keeps his admin channel")
        status, _, user = st.request("GET", "/db/_user/op_bob", port="admin")
        is_(user.get("admin_channels") if isinstance(user, dict) else None, ["b1"],
            "bob's record keeps admin_channels")

        # --- second provider: register false, username from email
        res = parties.login(st.url("/db/_oidc?provider=second"), "carol")
        is_(res.params.get("provider"), "second", "callback URL carries provider=second")
        posts = token_posts()
        status, headers, body = callback(st, res)
        is_(status, 401, "register false and unknown user: 401")
        is_(body.get("reason") if isinstance(body, dict) else None, "Invalid login",
            "reason Invalid login")
        status, _, users = st.request("GET", "/db/_user/", port="admin")
        ok(isinstance(users, list) and not any("carol" in u for u in users),
           "no user created")
        status, _, _ = st.request("PUT", "/db/_user/carol%2540example.com", port="admin",
                                  body={"admin_channels": ["c1"]})
        is_(status, 201, "admin creates carol%40example.com")
        res = parties.login(st.url("/db/_oidc?provider=second"), "carol", jar=res.jar)
        status, headers, body = callback(st, res)
        is_(status, 200, "carol logs in through the second provider")
        is_(body.get("name") if isinstance(body, dict) else None, "carol%40example.com",
            "name from the email claim, QueryEscape'd")
        body = body if isinstance(body, dict) else {}
        is_(sorted(body), ["access_token", "expires_in", "id_token", "name", "refresh_token",
                           "session_id", "token_type"],
            "include_access adds access_token, token_type, expires_in")
        secrets += [body.get("id_token"), body.get("refresh_token"), body.get("session_id"),
                    body.get("access_token")]
        carol_token = body.get("id_token", "")

        # --- Bearer tokens are routed by iss and aud: same issuer, other client
        status, ident = seen_by_backend(st, headers={"Authorization": "Bearer " + carol_token})
        is_(status, 200, "the second provider's ID token passes as Bearer")
        is_((ident or {}).get("x-syncgate-user"), "carol%40example.com",
            "routed by aud to the second provider (name from email)")
        is_((ident or {}).get("x-syncgate-channels"), "!,c1", "with carol's channels")

        # --- refresh, with the provider rotating refresh tokens
        time.sleep(1.1)  # so that the new ID token's iat differs
        status, headers, body = st.request(
            "GET", "/db/_oidc_refresh?refresh_token=" + urllib.parse.quote(refresh or "", ""))
        is_(status, 200, "refresh: 200")
        body = body if isinstance(body, dict) else {}
        is_(sorted(body), ["id_token", "name", "refresh_token", "session_id"], "refresh fields")
        isnt(body.get("id_token"), id_token, "a new ID token")
        isnt(body.get("session_id"), sid, "a new session")
        isnt(body.get("refresh_token"), refresh, "the rotated refresh token")
        is_(body.get("name"), "op_alice", "same user")
        secrets += [body.get("id_token"), body.get("refresh_token"), body.get("session_id")]
        status, ident = seen_by_backend(st, cookies={"SyncGatewaySession":
                                                     body.get("session_id", "")})
        is_(status, 200, "the refreshed session passes")
        status, _, _ = st.request("GET", "/db/_oidc_refresh?refresh_token=" +
                                  urllib.parse.quote(refresh or "", ""))
        is_(status, 401, "the used refresh token is refused by the provider: 401")
        status, _, _ = st.request("GET", "/db/_oidc_refresh")
        is_(status, 400, "no refresh_token: 400")

        # --- Bearer: the ID token on a replication request
        status, ident = seen_by_backend(st, headers={"Authorization": "Bearer " + id_token})
        is_(status, 200, "Bearer ID token passes the authorizer")
        ident = ident or {}
        is_(ident.get("x-syncgate-user"), "op_alice", "Bearer: the token's user")
        is_(ident.get("x-syncgate-channels"), "!,ch-a,t1", "Bearer: the user's channels")
        is_(ident.get("x-syncgate-auth"), "bearer", "auth kind bearer")
        status, ident = seen_by_backend(st, headers={"Authorization": "Bearer " + id_token})
        is_(status, 200, "the same token again (cached)")
        status, headers, body = st.request("POST", "/db/_session",
                                           headers={"Authorization": "Bearer " + id_token})
        is_(status, 200, "POST /_session with a Bearer token")
        sid_c = sgtest.set_cookie(headers, "SyncGatewaySession")
        ok(sid_c, "it sets a session cookie")
        secrets.append(sid_c)
        status, _ = seen_by_backend(st, headers={"Authorization": "Bearer " + id_token[:-4] +
                                                 "AAAA"})
        is_(status, 401, "a tampered Bearer token: 401")
        status, _, _ = st.request("DELETE", "/db/_user/op_bob", port="admin")
        status, ident = seen_by_backend(st, cookies={"SyncGatewaySession": sid_b})
        is_(status, 401, "deleted user: the session cookie is refused at once")

        # --- the callback's refusals never reach the token endpoint
        res = parties.login(st.url("/db/_oidc"), "alice", jar=res.jar)
        posts = token_posts()
        status, _, body = callback(st, res, cookies={})
        is_(status, 400, "no state cookie: 400")
        status, _, body = callback(st, res, cookies={"sg-oidc-state": "0" * 40})
        is_(status, 400, "state not matching the cookie: 400")
        status, _, body = st.request("GET", "/db/_oidc_callback?code=abc&state=" + "1" * 40,
                                     cookies={"sg-oidc-state": "1" * 40})
        is_(status, 400, "unknown state: 400")
        status, _, body = st.request("GET", "/db/_oidc_callback?state=" + "1" * 40)
        is_(status, 400, "no code: 400")
        status, _, body = st.request("GET", "/db/_oidc_callback?error=access_denied")
        is_(status, 401, "error=access_denied: 401")
        like(body.get("reason", "") if isinstance(body, dict) else "", "access_denied",
             "the reason names the error")
        status, _, body = st.request(
            "GET", "/db/_oidc_callback?error=access_denied&error_description=" +
            urllib.parse.quote("<script>alert(1)</script>"))
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        ok("<script>" not in reason and "&lt;script&gt;" in reason,
           "HTML in error_description comes back escaped")
        is_(token_posts(), posts, "none of these reached the token endpoint")
        status, _, body = callback(st, res)
        is_(status, 200, "the pending login still works once")
        if isinstance(body, dict):
            secrets += [body.get("id_token"), body.get("refresh_token"), body.get("session_id")]
        posts = token_posts()
        status, _, body = callback(st, res)
        is_(status, 400, "the same callback URL a second time: 400")
        is_(token_posts(), posts, "the replay did not reach the token endpoint")

        # --- an expired state: the callback run five minutes and a bit later
        res = parties.login(st.url("/db/_oidc"), "alice", jar=res.jar)
        posts = token_posts()
        faketime = shutil.which("faketime")
        ok(faketime is not None, "faketime is installed")
        if faketime:
            _, cstatus, _, raw = sgtest.run_cgi(
                sgtest.program("syncgate-oidc-callback"), "GET", "/db/_oidc_callback",
                st.config_path, query=urllib.parse.urlsplit(res.url).query,
                env={"HTTP_COOKIE": "sg-oidc-state=" + res.params["state"]},
                wrapper=[faketime, "-f", "+310s"])
            is_(cstatus, 400, "expired state: 400")
            like(raw.decode("utf-8", "replace"), "Expired state", "reason says it expired")
        is_(token_posts(), posts, "the expired state did not reach the token endpoint")

        # --- no secret in any log line
        logs = st.logs()
        leaked = [s for s in secrets if s and s in logs]
        is_(len(leaked), 0, "no secret, token, code or session id in the logs")
        for s in leaked[:5]:
            sgtest.diag("found in the logs: %s..." % s[:12])
        like(logs, r"oidc\.callback: ok, provider main, session [0-9a-f]{12}",
             "logins are logged with a session tag")
finally:
    op.stop()
    shutil.rmtree(tmp, ignore_errors=True)

done()
