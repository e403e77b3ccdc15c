"""ID tokens gone wrong, served by a misbehaving provider of our own.

tests/parties/misbehave.mjs answers, at its token endpoint and at /mint,
the token that the current case file of tests/data/tokens/ describes.
Every case goes through the code flow (the callback) and as a Bearer token
through the authorizer: the invalid ones are refused with 401 and leave no
user and no session behind; the valid ones pass.  Also: key rotation
without a restart, at most one JWKS fetch per 60 s for unknown kids, a
discovery document naming another issuer, a provider that is down when
the programs start, client_secret_post, validation_key_file, token
endpoint misbehaviour, and logs free of secrets.
"""
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import done, is_, like, ok  # noqa: E402

sgtest.timeout(600)
sgtest.require_programs(*(sgtest.program(p) for p in (
    "syncgate-session-check", "syncgate-user-admin", "syncgate-oidc",
    "syncgate-oidc-callback")))
parties.require_parties()

tmp = tempfile.mkdtemp(prefix="sg-tokens-")
SECRET = "bad-secret-" + "Zq81" * 6
LATE_SECRET = "late-secret-" + "Hy72" * 6
LATE_PORT = sgtest.free_port()
PUBLIC = sgtest.free_port()
CALLBACK = "http://127.0.0.1:%d/db/_oidc_callback" % PUBLIC
secret_file = os.path.join(tmp, "late.secret")
with open(secret_file, "w") as f:
    f.write(LATE_SECRET + "\n")
os.chmod(secret_file, 0o600)

bad = parties.Misbehave({"client_id": "sg-bad", "client_secret": SECRET}, tmpdir=tmp)
bad.start()
liar = parties.Misbehave({"client_id": "sg-liar", "client_secret": SECRET,
                          "discovery_issuer": "http://127.0.0.1:1/other"}, tmpdir=tmp)
liar.start()
app = parties.Misbehave({"client_id": "sg-app"}, tmpdir=tmp)
app.start()
fixed = parties.Misbehave({"client_id": "sg-fixed"}, tmpdir=tmp)
fixed.start()
late = parties.Misbehave({"port": LATE_PORT, "client_id": "sg-late",
                          "client_secret": LATE_SECRET,
                          "auth_methods": ["client_secret_post"]}, tmpdir=tmp)


def provider(m, secret=SECRET, **extra):
    p = {"issuer": m.issuer, "client_id": m.client_id, "callback_url": CALLBACK,
         "register": True, "user_prefix": "t"}
    if secret is not None:
        p["validation_key"] = secret
    p.update(extra)
    return p


CONFIG = {"databases": {"db": {"session_cookie_secure": False, "oidc": {
    "default_provider": "bad", "providers": {
        "bad": provider(bad),
        "liar": provider(liar),
        "late": dict(provider(late, secret=None), validation_key_file=secret_file,
                     issuer="http://127.0.0.1:%d" % LATE_PORT),
    }},
    "local_jwt": {
        "app": {"issuer": app.issuer, "client_id": app.client_id, "algorithms": ["RS256"],
                "jwks_uri": app.url("/jwks"), "register": True, "user_prefix": "app"},
        "fixed": {"issuer": fixed.issuer, "client_id": fixed.client_id,
                  "algorithms": ["RS256", "ES256"], "keys": fixed.jwks()["keys"],
                  "register": False, "user_prefix": "fx"},
    }}}}

secrets = [SECRET, LATE_SECRET]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


def redirect_target(url):
    """The Location a GET of url answers (the provider's /authorize sends
    the browser straight back to the callback), or None."""
    try:
        resp = urllib.request.build_opener(_NoRedirect).open(url, timeout=10)
        return resp.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.headers.get("Location")


def code_flow(st, prov="bad"):
    """Runs /_oidc → the provider's /authorize → the callback; returns
    (status, body, headers) of the callback."""
    path = "/db/_oidc" + ("" if prov == "bad" else "?provider=" + prov)
    status, headers, body = st.request("GET", path)
    if status != 302:
        return status, body, headers
    state = sgtest.set_cookie(headers, "sg-oidc-state")
    cb = redirect_target(headers["location"])
    u = urllib.parse.urlsplit(cb or "")
    q = dict(urllib.parse.parse_qsl(u.query))
    if "code" in q:
        secrets.append(q["code"])
    status, headers, body = st.request("GET", u.path + "?" + u.query,
                                       cookies={"sg-oidc-state": state})
    if isinstance(body, dict):
        secrets.extend(v for k, v in body.items()
                       if k in ("id_token", "refresh_token", "session_id", "access_token"))
    return status, body, headers


def users(st):
    status, _, body = st.request("GET", "/db/_user/", port="admin")
    return sorted(body) if isinstance(body, list) else None


def bearer(st, token):
    status, _, _ = st.request("GET", "/db/doc", headers={"Authorization": "Bearer " + token})
    return status


try:
    with sgtest.Stack(CONFIG, ports={"public": PUBLIC}) as st:
        # --- a provider down at start: the others work meanwhile
        status, _, _ = st.request("GET", "/db/_oidc?provider=late")
        is_(status, 502, "provider down: /_oidc?provider=late answers 502")
        status, body, _ = code_flow(st)
        is_(status, 200, "the default provider works while another is down")
        is_(body.get("name") if isinstance(body, dict) else None, "t_carol",
            "valid login: t_carol")

        # --- key rotation: accepted after one JWKS fetch, without a restart
        before = bad.jwks_fetches()
        kid = bad.rotate()
        token = bad.mint("valid-rs256", sub="rotated")
        secrets.append(token)
        is_(bearer(st, token), 200, "a token signed with the new key (%s) passes" % kid)
        is_(bad.jwks_fetches(), before + 1, "after exactly one JWKS fetch")
        is_(bearer(st, token), 200, "and again, without another fetch")
        is_(bad.jwks_fetches(), before + 1, "still one fetch")

        # --- every case file, through the callback and as a Bearer token
        for name in parties.case_names():
            case = parties.load_case(name)
            expect = case["expect"]
            sub = "c-" + name
            before_users = users(st)
            bad.set_case(name, sub=sub)
            status, body, headers = code_flow(st)
            if expect == "valid":
                is_(status, 200, "%s: callback accepts it" % name)
                ok(("t_" + sub) in (users(st) or []), "%s: user registered" % name)
            else:
                is_(status, 401, "%s: callback refuses it (%s)" % (name, case["about"]))
                is_(users(st), before_users, "%s: no user created" % name)
                ok(sgtest.set_cookie(headers, "SyncGatewaySession") is None,
                   "%s: no session cookie" % name)
            if name == "nonce-mismatch":
                continue  # Bearer tokens carry no nonce of ours
            token = bad.mint(name, sub=sub + "-b")
            secrets.append(token)
            if len(token) > 8000:
                # Past what lighttpd takes in one header: straight to the program.
                _, status, _, _ = sgtest.run_cgi(
                    sgtest.program("syncgate-session-check"), "GET", "/db/_session",
                    st.config_path, env={"HTTP_AUTHORIZATION": "Bearer " + token})
            else:
                status = bearer(st, token)
            if expect == "valid":
                is_(status, 200, "%s: Bearer passes" % name)
            else:
                is_(status, 401, "%s: Bearer refused" % name)
                ok(("t_" + sub + "-b") not in (users(st) or []), "%s: Bearer made no user" % name)
        is_(bad.jku_hits(), 0, "the jku listener saw no request")

        # --- a refresh token is bound to the user it was handed out for
        bad.set_case("valid-rs256", sub="rita")
        status, body, _ = code_flow(st)
        refresh = body.get("refresh_token", "") if isinstance(body, dict) else ""
        is_(status, 200, "rita logs in")
        ok(refresh, "and gets a refresh token")
        status, _, body = st.request("GET", "/db/_oidc_refresh?refresh_token=" +
                                     urllib.parse.quote(refresh, ""))
        is_(status, 200, "her refresh token gives her a new session")
        if isinstance(body, dict):
            secrets.extend(body.get(k) for k in ("id_token", "refresh_token", "session_id"))
            refresh = body.get("refresh_token", refresh)
        bad.set_case("valid-rs256", sub="mallory")
        status, headers, body = st.request("GET", "/db/_oidc_refresh?refresh_token=" +
                                           urllib.parse.quote(refresh, ""))
        is_(status, 401, "an ID token for another user on her refresh token: 401")
        ok(sgtest.set_cookie(headers, "SyncGatewaySession") is None, "no session for it")
        ok("t_mallory" not in (users(st) or []), "and no user mallory")

        # --- the token endpoint misbehaving
        for name, want in (("token-error", 502), ("token-oversize", 502)):
            bad.set_case(name)
            status, body, _ = code_flow(st)
            is_(status, want, "%s: callback answers %d" % (name, want))
        bad.set_case("valid-rs256")

        # --- a flood of unknown kids: at most one JWKS fetch per 60 s
        before = bad.jwks_fetches()
        flood = [bad.mint("unknown-kid", sub="flood%d" % i) for i in range(40)]
        statuses = [bearer(st, t) for t in flood]
        is_(sorted(set(statuses)), [401], "40 tokens with an unknown kid: all 401")
        ok(bad.jwks_fetches() - before <= 1,
           "they caused %d JWKS fetch(es), at most one" % (bad.jwks_fetches() - before))

        # --- discovery naming another issuer: the provider is unusable
        status, headers, _ = st.request("GET", "/db/_oidc?provider=liar")
        is_(status, 502, "discovery issuer mismatch: 502")
        ok("location" not in headers, "no redirect to that provider")
        ok(not liar.stats().get("/jwks"), "its JWKS is never fetched")

        # --- local_jwt issuers: keys at a jwks_uri, or in the configuration
        token = app.mint("valid-rs256", sub="dora")
        secrets.append(token)
        is_(bearer(st, token), 200, "local_jwt with jwks_uri: a valid token passes")
        ok("app_dora" in (users(st) or []), "and registers app_dora")
        is_(bearer(st, app.mint("valid-es256", sub="eve")), 401,
            "local_jwt: an algorithm outside its list is refused")
        is_(bearer(st, app.mint("exp-past", sub="eve")), 401, "local_jwt: an expired token")
        token = fixed.mint("valid-es256", sub="finn")
        is_(bearer(st, token), 401, "local_jwt with fixed keys, register false: no user, 401")
        status, _, _ = st.request("PUT", "/db/_user/fx_finn", port="admin",
                                  body={"admin_channels": ["f1"]})
        is_(status, 201, "fx_finn created by the admin")
        is_(bearer(st, token), 200, "then the same token passes (ES256 with a configured key)")
        is_(fixed.stats().get("/jwks", 0), 1, "keys in the configuration are never fetched")

        # --- the provider that was down comes back: works without a restart
        late.start()
        deadline = time.time() + 90
        status = None
        while time.time() < deadline:
            status, _, _ = st.request("GET", "/db/_oidc?provider=late")
            if status == 302:
                break
            time.sleep(1)
        is_(status, 302, "once it is up, /_oidc?provider=late redirects")
        late.set_case("valid-rs256", sub="latecomer")
        status, body, _ = code_flow(st, "late")
        is_(status, 200, "login through it (client_secret_post, validation_key_file)")
        last = late.last().get("token") or {}
        is_(last.get("basic"), False, "the secret went by client_secret_post")
        status, body, _ = code_flow(st, "bad")
        last = bad.last().get("token") or {}
        is_(last.get("basic"), True, "client_secret_basic where the provider supports it")

        # --- no secret in any log line
        logs = st.logs()
        leaked = [s for s in secrets if s and len(s) > 8 and s in logs]
        is_(len(leaked), 0, "no secret, token, code or session id in the logs")
        for s in leaked[:5]:
            sgtest.diag("found in the logs: %s..." % s[:12])
        like(logs, r"auth\.token: refused by provider bad: ", "refusals are logged with why")
finally:
    for m in (bad, liar, late, app, fixed):
        m.stop()
    shutil.rmtree(tmp, ignore_errors=True)

done()
