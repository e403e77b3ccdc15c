"""syncgate-session-check through a real lighttpd: the authorizer in front
of a backend that reports the identity it received, and /{db}/_session.

Users and roles are written through syncgate-user-admin on the admin side,
as an app server would; every change must count on the very next request.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
import sgtest  # noqa: E402
from sgtest import done, is_, like, ok  # noqa: E402

sgtest.timeout(300)
sgtest.require_programs(sgtest.program("syncgate-session-check"),
                        sgtest.program("syncgate-user-admin"))

PASSWORD = "alice-Secret-42"
NEW_PASSWORD = "alice-Other-43"
CONFIG = {"databases": {"db": {"session_cookie_secure": True},
                        "short": {"session_ttl": 60}}}


def seen_by_backend(st, method="GET", path="/db/doc", **kw):
    """Sends a replication request; returns (status, identity headers)."""
    st.backend.clear()
    status, headers, body = st.request(method, path, **kw)
    reqs = st.backend.requests
    if status == 200 and reqs:
        return status, reqs[-1]["headers"], headers
    return status, None, headers


def admin(st, method, path, body=None):
    return st.request(method, path, port="admin", body=body)


def login(st, name, password, db="db"):
    status, headers, body = st.request("POST", "/%s/_session" % db,
                                       body={"name": name, "password": password})
    return status, headers, body, sgtest.set_cookie(headers, "SyncGatewaySession")


with sgtest.Stack(CONFIG) as st:
    # --- set up alice and her role through the admin API
    status, _, _ = admin(st, "PUT", "/db/_role/team", {"admin_channels": ["t1", "t2"]})
    is_(status, 201, "role created on the admin side")
    status, _, _ = admin(st, "PUT", "/db/_user/alice",
                         {"password": PASSWORD, "admin_channels": ["a2", "a1"],
                          "admin_roles": ["team"], "email": "alice@example.org"})
    is_(status, 201, "user created on the admin side")

    # --- no credentials, guest disabled by default
    status, ident, headers = seen_by_backend(st)
    is_(status, 401, "no credentials: 401")
    is_(headers.get("www-authenticate"), 'Basic realm="syncgate"', "401 carries WWW-Authenticate")
    ok(not st.backend.requests, "refused request never reaches the backend")

    # --- login with the password sets the cookie
    status, headers, body, sid = login(st, "alice", PASSWORD)
    is_(status, 200, "POST /db/_session with the password")
    ok(sid is not None and len(sid) == 40 and all(c in "0123456789abcdef" for c in sid),
       "session id is 40 lowercase hex characters")
    cookie = headers.get("set-cookie")
    cookie = cookie if isinstance(cookie, str) else (cookie or [""])[0]
    like(cookie, r"^SyncGatewaySession=[0-9a-f]{40}; Path=/db; HttpOnly; Secure; SameSite=Lax$",
         "cookie attributes per config, no Expires")
    is_(body.get("userCtx", {}).get("name"), "alice", "userCtx names alice")
    is_(sorted(body["userCtx"]["channels"]), ["!", "a1", "a2", "t1", "t2"],
        "userCtx channels: her own, her role's and !")
    is_(body.get("authentication_handlers"), ["default", "cookie"], "authentication handlers")

    # --- the cookie on a replication request
    cookies = {"SyncGatewaySession": sid}
    status, ident, _ = seen_by_backend(st, cookies=cookies)
    is_(status, 200, "replication request with the cookie passes")
    ident = ident or {}
    is_(ident.get("x-syncgate-user"), "alice", "backend sees the user")
    is_(ident.get("x-syncgate-channels"), "!,a1,a2,t1,t2", "backend sees her channels plus her role's")
    is_(ident.get("x-syncgate-roles"), "team", "backend sees her roles")
    is_(ident.get("x-syncgate-auth"), "session", "backend sees how she logged in")
    is_(ident.get("x-syncgate-db"), "db", "backend sees the database")

    # --- a client cannot claim an identity
    status, ident, _ = seen_by_backend(st, cookies=cookies, headers={
        "X-Syncgate-User": "admin", "X-Syncgate-Channels": "*", "X-Syncgate-Roles": "root"})
    is_((ident or {}).get("x-syncgate-user"), "alice", "client X-Syncgate-User replaced")
    is_((ident or {}).get("x-syncgate-channels"), "!,a1,a2,t1,t2", "client channels replaced")

    # --- a change to the role counts on the next request
    status, _, _ = admin(st, "PUT", "/db/_role/team", {"admin_channels": ["t3"]})
    is_(status, 200, "role channels replaced")
    status, ident, _ = seen_by_backend(st, cookies=cookies)
    is_((ident or {}).get("x-syncgate-channels"), "!,a1,a2,t3", "next request shows the new set")
    admin(st, "DELETE", "/db/_role/team")
    status, ident, _ = seen_by_backend(st, cookies=cookies)
    is_((ident or {}).get("x-syncgate-channels"), "!,a1,a2", "deleted role: its channels are gone")
    # lighttpd sends no header for an empty variable.
    is_((ident or {}).get("x-syncgate-roles"), None, "deleted role: no longer listed")
    admin(st, "PUT", "/db/_role/team", {"admin_channels": ["t1"]})

    # --- GET /_session and Basic
    status, _, body = st.request("GET", "/db/_session", cookies=cookies)
    is_((status, body.get("userCtx", {}).get("name")), (200, "alice"), "GET /db/_session with cookie")
    for i in range(3):
        status, ident, _ = seen_by_backend(st, auth=("alice", PASSWORD))
        is_((status, (ident or {}).get("x-syncgate-auth")), (200, "basic"),
            "Basic with the right password, request %d" % (i + 1))
    status, ident, headers = seen_by_backend(st, auth=("alice", "wrong-password"))
    is_(status, 401, "Basic with a wrong password: 401")
    status, _, body = st.request("GET", "/db/doc", headers={"Authorization": "Basic !!notbase64"})
    is_((status, body.get("reason") if isinstance(body, dict) else body),
        (400, "Invalid Basic authorization header: not base64"), "Basic that is not base64: 400")
    status, _, body = st.request("GET", "/db/doc", headers={"Authorization": "Basic YWxpY2U="})
    is_((status, body.get("reason") if isinstance(body, dict) else body),
        (400, "Invalid Basic authorization header: no colon"), "Basic without a colon: 400")
    status, _, body = st.request("GET", "/db/doc", cookies={"SyncGatewaySession": "0" * 40})
    is_((status, body.get("reason") if isinstance(body, dict) else body),
        (401, "Session Invalid"), "unknown session: 401 Session Invalid")

    # --- password change, disable, delete: the cookie dies at once
    status, _, _ = admin(st, "PUT", "/db/_user/alice", {"password": NEW_PASSWORD})
    is_(status, 200, "password changed")
    status, _, _ = seen_by_backend(st, cookies=cookies)
    is_(status, 401, "after a password change the old cookie gets 401")
    status, _, _ = seen_by_backend(st, auth=("alice", PASSWORD))
    is_(status, 401, "the old password no longer works (cache cleared by the change)")
    status, _, _, sid = login(st, "alice", NEW_PASSWORD)
    is_(status, 200, "login with the new password")
    cookies = {"SyncGatewaySession": sid}
    is_(seen_by_backend(st, cookies=cookies)[0], 200, "new cookie works")
    is_(seen_by_backend(st, auth=("alice", NEW_PASSWORD))[0], 200, "new password works with Basic")

    admin(st, "PUT", "/db/_user/alice", {"disabled": True})
    is_(seen_by_backend(st, cookies=cookies)[0], 401, "disabled: the cookie gets 401")
    is_(seen_by_backend(st, auth=("alice", NEW_PASSWORD))[0], 401, "disabled: Basic gets 401")
    status, _, body, _ = login(st, "alice", NEW_PASSWORD)
    is_((status, body.get("reason")), (400, "User is disabled"), "disabled: login gets 400")
    admin(st, "PUT", "/db/_user/alice", {"disabled": False})
    status, _, _, sid = login(st, "alice", NEW_PASSWORD)
    cookies = {"SyncGatewaySession": sid}
    is_(seen_by_backend(st, cookies=cookies)[0], 200, "enabled again: a new session works")
    status, _, _ = admin(st, "DELETE", "/db/_user/alice")
    is_(status, 200, "user deleted")
    is_(seen_by_backend(st, cookies=cookies)[0], 401, "deleted: the cookie gets 401")
    is_(seen_by_backend(st, auth=("alice", NEW_PASSWORD))[0], 401, "deleted: Basic gets 401")

    # --- DELETE /_session
    admin(st, "PUT", "/db/_user/bob", {"password": "bob-pw-1", "admin_channels": ["b"]})
    status, _, _, sid = login(st, "bob", "bob-pw-1")
    status, headers, _ = st.request("DELETE", "/db/_session", cookies={"SyncGatewaySession": sid})
    is_(status, 200, "DELETE /db/_session ends the session")
    cookie = headers.get("set-cookie")
    cookie = cookie if isinstance(cookie, str) else (cookie or [""])[0]
    like(cookie, r"^SyncGatewaySession=; Path=/db; Max-Age=0; HttpOnly; Secure; SameSite=Lax$",
         "and clears the cookie")
    is_(seen_by_backend(st, cookies={"SyncGatewaySession": sid})[0], 401, "ended session: 401")
    status, _, _ = st.request("DELETE", "/db/_session")
    is_(status, 404, "DELETE /db/_session without a cookie: 404")
    status, headers, _ = st.request("PUT", "/db/_session")
    is_((status, headers.get("allow")), (405, "GET, HEAD, POST, DELETE"), "wrong method: 405 with Allow")
    status, _, body = st.request("POST", "/db/_session", body={"name": "bob", "password": "x"})
    is_(status, 401, "login with a wrong password: 401")
    status, _, body = st.request("POST", "/db/_session", body=b"{not json",
                                 headers={"Content-Type": "application/json"})
    is_(status, 400, "login with malformed JSON: 400")

    # --- GUEST
    status, _, body = st.request("GET", "/db/_session")
    is_((status, body["userCtx"]["name"], body["userCtx"]["channels"]), (200, None, {}),
        "GET /db/_session without credentials: anonymous userCtx")
    status, _, _ = admin(st, "PUT", "/db/_user/GUEST", {"disabled": False, "admin_channels": ["public"]})
    is_(status, 200, "GUEST enabled")
    status, ident, _ = seen_by_backend(st)
    is_(status, 200, "enabled GUEST reaches the backend")
    is_((ident or {}).get("x-syncgate-channels"), "!,public", "with the guest's channels")
    is_((ident or {}).get("x-syncgate-auth"), "guest", "as guest")
    ok("x-syncgate-user" not in (ident or {}), "and no user name")
    status, _, _ = seen_by_backend(st, cookies={"SyncGatewaySession": "f" * 40})
    is_(status, 401, "a bad cookie is refused, not passed over to GUEST")

    # --- unknown database, bad path
    status, _, body = st.request("GET", "/nodb/doc", auth=("bob", "bob-pw-1"))
    is_((status, body.get("error") if isinstance(body, dict) else None), (404, "not_found"),
        "unknown database: 404 not_found")
    status, _, body = st.request("GET", "/db/_session%zz")
    is_(status, 400, "bad percent-encoding in the path: 400")

    # --- sliding sessions: ttl 60 s, a use after 6 s extends the session
    admin(st, "PUT", "/short/_user/carol", {"password": "carol-pw"})
    _, _, _, used = login(st, "carol", "carol-pw", db="short")
    _, _, _, idle = login(st, "carol", "carol-pw", db="short")
    time.sleep(8)
    is_(seen_by_backend(st, path="/short/doc", cookies={"SyncGatewaySession": used})[0], 200,
        "a use after a tenth of the ttl")
    time.sleep(55)
    is_(seen_by_backend(st, path="/short/doc", cookies={"SyncGatewaySession": used})[0], 200,
        "the used session was extended past its first expiry")
    is_(seen_by_backend(st, path="/short/doc", cookies={"SyncGatewaySession": idle})[0], 401,
        "the idle session expired after its ttl")

    # --- SIGTERM: a program closes the store and exits between requests
    checks = [p for p in st.processes()
              if any(a.endswith("syncgate-session-check") for a in p["cmdline"])]
    ok(checks, "a session-check process is running")
    if checks:
        with open("/proc/%d/maps" % checks[0]["pid"]) as f:
            maps = f.read()
        ok("libcurl" not in maps,
           "with no OpenID provider to fetch from, libcurl is not loaded (%d KiB resident)"
           % checks[0]["rss_kb"])
        os.kill(checks[0]["pid"], signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and sgtest.alive(checks[0]["pid"]):
            time.sleep(0.1)
        ok(not sgtest.alive(checks[0]["pid"]), "it exits on SIGTERM")
        like(st.logs(), r"syncgate-session-check: debug: stopping on SIGTERM",
             "and says so at debug level")

    logs = st.logs()
    for secret in (PASSWORD, NEW_PASSWORD, "bob-pw-1", "carol-pw", sid, used, idle):
        ok(secret not in logs, "no secret in the logs (%s...)" % secret[:3])
    ok("$2b$" not in logs, "no password hash in the logs")
done()
