#!/usr/bin/env python3
"""test_admin_cgi: syncgate-user-admin run as one-shot CGI (SPEC section 5).

Every request runs the built program once, with the CGI environment
(REQUEST_METHOD, REQUEST_URI, QUERY_STRING, CONTENT_LENGTH, REMOTE_ADDR,
HTTP_AUTHORIZATION, SYNCGATE_CONFIG) and the body on standard input, and
parses its "Status:" line, headers and JSON body.  Each refused request is
followed by a look at the store through GET, which must show no change.
The program's standard error (its log) is kept and checked at the end: no
password, hash or session id may appear in it.

Environment: top_builddir (default ".") holds cgi-bin/syncgate-user-admin;
syncgate-session-check, when built there too, is used to check passwords.
"""
import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.timeout(600)

PROG = sgtest.program("syncgate-user-admin")
CHECK = sgtest.program("syncgate-session-check")
sgtest.require_programs(PROG)

# Every secret the tests send or receive, for the log check at the end.
SECRETS = set()
LOG = []

TMP = tempfile.mkdtemp(prefix="sg-admin-cgi.")


class Resp:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def __repr__(self):
        return "Resp(%r, %r, %r)" % (self.status, self.headers, self.body)


class Site:
    """One configuration file and store, in its own directory under TMP."""

    def __init__(self, name, config):
        self.dir = os.path.join(TMP, name)
        os.mkdir(self.dir)
        cfg = {"store": {"path": os.path.join(self.dir, "store")},
               "logging": {"syslog": False, "level": "debug"}}
        cfg.update(config)
        self.config = os.path.join(self.dir, "syncgate.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def run(self, prog, method, path, body=None, query="", auth=None, remote="127.0.0.1",
            authz=None):
        """Runs prog once.  body: dict/list (JSON), str or bytes."""
        if auth is not None:
            cred = ("%s:%s" % auth).encode("utf-8")
            authz = "Basic " + base64.b64encode(cred).decode("ascii")
        proc, status, headers, raw = sgtest.run_cgi(
            prog, method, path, self.config, body=body, query=query, remote=remote,
            env={"HTTP_AUTHORIZATION": authz} if authz is not None else None)
        LOG.append(proc.stderr.decode("utf-8", "replace"))
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw.decode("utf-8"))
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
            SECRETS.add(parsed["session_id"])
        return Resp(status, headers, parsed, raw)

    def req(self, method, path, body=None, **kw):
        return self.run(PROG, method, path, body, **kw)


def hash_password(password):
    """A bcrypt hash made by the built syncgatectl hash-password."""
    out = subprocess.run([sgtest.program("syncgatectl"), "hash-password", "--stdin"],
                         input=password.encode(), capture_output=True, timeout=60)
    h = out.stdout.decode().strip()
    return h if out.returncode == 0 and h.startswith("$2b$") else None


def is_error(r, status, name=None):
    """True when r is a JSON error {"error","reason"} with status."""
    b = r.body
    good = (r.status == status and isinstance(b, dict) and isinstance(b.get("error"), str)
            and isinstance(b.get("reason"), str)
            and r.headers.get("content-type", "").startswith("application/json"))
    if good and name is not None:
        good = b["error"] == name
    return good


def check_error(r, status, label, name=None):
    if not ok(is_error(r, status, name), label):
        diag("   got: %r" % (r,))


def check_ok(r, status, label):
    if not ok(r.status == status and r.body == {"ok": True}, label):
        diag("   got: %r" % (r,))


# --------------------------------------------------------------------------
# The main site: no admin_users (loopback only), database "db" with
# defaults and "other" with an open GUEST.

site = Site("main", {"databases": {
    "db": {},
    "other": {"guest": {"disabled": False, "admin_channels": ["g1", "g2"]},
              "session_cookie_name": "OtherSession", "session_ttl": 600},
}})
R = site.req


def state(db="db"):
    """Everything GET shows of a database: user and role lists and records."""
    users = R("GET", "/%s/_user/" % db).body
    roles = R("GET", "/%s/_role/" % db).body
    out = {"users": users, "roles": roles, "GUEST": R("GET", "/%s/_user/GUEST" % db).body}
    for u in users if isinstance(users, list) else []:
        out["user " + u] = R("GET", "/%s/_user/%s" % (db, u)).body
    for ro in roles if isinstance(roles, list) else []:
        out["role " + ro] = R("GET", "/%s/_role/%s" % (db, ro)).body
    return out


def refused(method, path, body, status, label, query="", **kw):
    """A bad request: a JSON error with status, and no change in the store."""
    before = state()
    r = R(method, path, body, query=query, **kw)
    if isinstance(status, tuple):
        good = any(is_error(r, s) for s in status)
    else:
        good = is_error(r, status)
    if not ok(good, "%s -> %s" % (label, status)):
        diag("   got: %r" % (r,))
    after = state()
    if not ok(after == before, "%s: store unchanged" % label):
        diag("before: %r" % (before,))
        diag(" after: %r" % (after,))
    return r


def password_works(db, name, password):
    """Checks a password through syncgate-session-check's Basic login, when built."""
    r = site.run(CHECK, "GET", "/%s/_session" % db, auth=(name, password))
    return r.status == 200 and (r.body or {}).get("userCtx", {}).get("name") == name


sgtest.require_programs(CHECK, sgtest.program("syncgatectl"))

# --------------------------------------------------------------------------
# Admin access without admin_users: loopback only.

r = R("GET", "/db/_user/", remote="10.1.2.3")
check_error(r, 403, "without admin_users, a non-loopback client gets 403")
r = R("PUT", "/db/_user/mallory", {"password": "mallory-pw"}, remote="10.1.2.3")
check_error(r, 403, "without admin_users, a non-loopback write gets 403")
SECRETS.add("mallory-pw")
is_(R("GET", "/db/_user/mallory").status, 404, "the refused write stored nothing")
r = R("GET", "/db/_user/")
is_((r.status, r.body), (200, []), "127.0.0.1 is admitted; no users yet")
is_(r.headers.get("content-type"), "application/json", "answers are application/json")
is_(R("GET", "/db/_user/", remote="::1").status, 200, "::1 is admitted")

# --------------------------------------------------------------------------
# Databases and URLs.

r = R("GET", "/nosuchdb/_user/")
check_error(r, 404, "an unknown database is 404", "not_found")
is_((r.body or {}).get("reason"), "no such database", "its reason is 'no such database'")
check_error(R("PUT", "/nosuchdb/_user/alice", {"password": "abc"}), 404,
            "PUT in an unknown database is 404")
for path in ("/db", "/db/", "/db/_foo", "/db/_users/", "/db/_user/alice/x",
             "/db/_user/alice/_session/0123/x", "/db/_role/r/_session", "/db/_session/a/b"):
    check_error(R("GET", path), 404, "GET %s is 404 not_found" % path, "not_found")

# --------------------------------------------------------------------------
# Users.

PW_ALICE = "alice-secret-1"
PW_BOB = "bob-secret-1"
SECRETS.update([PW_ALICE, PW_BOB])

r = R("PUT", "/db/_user/alice", {"name": "alice", "password": PW_ALICE,
                                 "admin_channels": ["b", "a"], "email": "alice@example.com"})
check_ok(r, 201, "PUT a new user -> 201 {ok:true}")
r = R("GET", "/db/_user/alice")
is_(r.status, 200, "GET the user -> 200")
is_(r.body, {"name": "alice", "admin_channels": ["a", "b"], "email": "alice@example.com",
             "disabled": False, "all_channels": ["!", "a", "b"]},
    "GET shows name, sorted admin_channels, email, disabled, all_channels with '!'")
ok(not any("password" in k or "hash" in k for k in (r.body or {})),
   "GET shows neither password nor hash")
r = R("HEAD", "/db/_user/alice")
is_((r.status, r.raw), (200, b""), "HEAD of a user -> 200 without a body")
ok(password_works("db", "alice", PW_ALICE), "the password set by PUT logs in")

check_ok(R("PUT", "/db/_user/alice", {"admin_channels": ["a", "b"]}), 200,
         "PUT an existing user -> 200")
r = R("GET", "/db/_user/alice")
is_((r.body or {}).get("email"), "alice@example.com", "a field left out keeps its value")
ok(password_works("db", "alice", PW_ALICE), "the password left out keeps its value")

shown = R("GET", "/db/_user/alice").body
check_ok(R("PUT", "/db/_user/alice", shown), 200,
         "PUT back what GET showed (read-only all_channels equal) -> 200")
is_(R("GET", "/db/_user/alice").body, shown, "echoing GET changes nothing")

check_ok(R("POST", "/db/_user/", {"name": "bob", "password": PW_BOB}), 201,
         "POST /db/_user/ with a name -> 201")
refused("POST", "/db/_user/", {"name": "bob", "password": "other-pw"}, 409,
        "POST an existing user")
SECRETS.add("other-pw")
is_(R("POST", "/db/_user/", {"name": "bob"}).body.get("error"), "conflict",
    "409 says error 'conflict'")
refused("POST", "/db/_user/", {"password": "abcdef"}, 400, "POST without a name")
refused("POST", "/db/_user/", {"name": 7}, 400, "POST with a name that is not a string")
refused("POST", "/db/_user/", {"name": ""}, 400, "POST with an empty name")
refused("POST", "/db/_user/", {"name": "a/b"}, 400, "POST with a name holding '/'")
refused("POST", "/db/_user/", {"name": "x\u0000y"}, 400, "POST with a name holding NUL")
refused("POST", "/db/_role/", {"name": "r,s"}, 400, "POST a role with a name holding ','")

r = R("GET", "/db/_user/")
is_((r.status, r.body), (200, ["alice", "bob"]), "GET /db/_user/ -> sorted names")
is_(R("GET", "/db/_user").body, ["alice", "bob"], "GET /db/_user (no slash) is the same")
is_(R("GET", "/db/_user/", query="name_only=true").body, ["alice", "bob"],
    "?name_only=true -> names")
is_(R("GET", "/db/_user/", query="name_only=false").body,
    [{"name": "alice", "email": "alice@example.com", "disabled": False},
     {"name": "bob", "disabled": False}],
    "?name_only=false -> name, email (when set), disabled")
check_error(R("GET", "/db/_user/", query="name_only=maybe"), 400,
            "?name_only=maybe -> 400")
r = R("HEAD", "/db/_user/")
is_((r.status, r.raw), (200, b""), "HEAD of the user list -> 200 without a body")

r = R("GET", "/db/_user/nobody")
check_error(r, 404, "GET an unknown user -> 404 not_found", "not_found")
is_((r.body or {}).get("reason"), "missing", "its reason is 'missing'")

# Read-only and unknown fields, wrong types.
refused("PUT", "/db/_user/alice", {"all_channels": ["x"]}, 400,
        "PUT a read-only all_channels with another value")
refused("PUT", "/db/_user/alice", {"roles": ["r"]}, 400, "PUT a read-only roles field")
refused("PUT", "/db/_user/alice", {"jwt_issuer": "https://evil"}, 400,
        "PUT a read-only jwt_issuer")
refused("PUT", "/db/_user/alice", {"email": "a@b.c", "foo": 1}, 400, "PUT an unknown field")
refused("PUT", "/db/_user/alice", {"password_hash": "$2b$10$abc"}, 400,
        "PUT a password_hash field")
refused("PUT", "/db/_user/alice", {"name": "bob"}, 400, "PUT a body name unlike the URL's")
for body, what in (({"admin_channels": "a"}, "admin_channels a string"),
                   ({"admin_channels": [1]}, "admin_channels holding a number"),
                   ({"admin_channels": ["bad channel"]}, "admin_channels with a bad name"),
                   ({"admin_roles": {"r": 1}}, "admin_roles an object"),
                   ({"disabled": "yes"}, "disabled a string"),
                   ({"disabled": 1}, "disabled a number"),
                   ({"email": 5}, "email a number"),
                   ({"email": "not-an-address"}, "email not an address"),
                   ({"password": 12345}, "password a number"),
                   ({"password": None}, "password null")):
    refused("PUT", "/db/_user/alice", body, 400, "PUT %s" % what)

refused("PUT", "/db/_user/alice", {"password": "ab"}, 400, "PUT a 2-character password")
refused("PUT", "/db/_user/carol", {"password": "ab"}, 400,
        "PUT a new user with a 2-character password")
is_(R("GET", "/db/_user/carol").status, 404, "the refused new user does not exist")
ok(password_works("db", "alice", PW_ALICE), "the refused PUTs left the password alone")

# Malformed bodies.
refused("PUT", "/db/_user/alice", '{"email": "a@b.c"', 400, "PUT malformed JSON")
refused("PUT", "/db/_user/alice", '["email"]', 400, "PUT a JSON array")
refused("PUT", "/db/_user/alice", '"alice"', 400, "PUT a JSON string")
refused("PUT", "/db/_user/alice", "", 400, "PUT an empty body")
refused("PUT", "/db/_user/alice", '{"email":"a@b.c","email":"c@d.e"}', 400,
        "PUT duplicate member names")
refused("PUT", "/db/_user/alice", b'{"email": "\xff@example.com"}', 400,
        "PUT invalid UTF-8 in the body")
refused("PUT", "/db/_user/alice", b'{"admin_channels": ["\xc3\x28"]}', 400,
        "PUT invalid UTF-8 in a channel name")
big = '{"admin_channels": ["%s"]}' % ("a" * (1024 * 1024 + 16))
refused("PUT", "/db/_user/alice", big, 413, "PUT a body over 1 MiB")
refused("POST", "/db/_user/", '{"name": "huge", "email": "%s"}' % ("x" * (1024 * 1024)), 413,
        "POST a body over 1 MiB")

# Names that break the rules, in the path.
BAD_NAMES = (
    ("%21%21", "only punctuation"),
    ("-._", "only punctuation, unescaped"),
    ("a%2Fb", "'/' (escaped)"),
    ("a:b", "':'"),
    ("a%2Cb", "','"),
    ("a%60b", "'`'"),
    ("a%0Ab", "a newline"),
    ("%20", "only a space"),
    ("x" * 240, "240 bytes"),
)
for enc, what in BAD_NAMES:
    refused("PUT", "/db/_user/%s" % enc, {"email": "x@example.com"}, 400,
            "PUT a user name with %s" % what)
    check_error(R("GET", "/db/_user/%s" % enc), 404, "GET a user name with %s -> 404" % what)
    check_error(R("DELETE", "/db/_user/%s" % enc), 404,
                "DELETE a user name with %s -> 404" % what)
refused("PUT", "/db/_role/a%3Ab", {}, 400, "PUT a role name with ':'")
check_error(R("GET", "/db/_role/%21"), 404, "GET a role name of punctuation -> 404")
ok(R("PUT", "/db/_user/" + "x" * 239, {}).status == 201, "a 239-byte name is accepted")
check_ok(R("DELETE", "/db/_user/" + "x" * 239), 200, "and deleted")
check_ok(R("PUT", "/db/_user/%C3%A9mile", {}), 201, "a percent-encoded UTF-8 name is accepted")
is_(R("GET", "/db/_user/%C3%A9mile").body.get("name"), "\u00e9mile",
    "its name is decoded once")
check_ok(R("DELETE", "/db/_user/%C3%A9mile"), 200, "and deleted")
is_(R("GET", "/db/_user/a%2520b").status, 404, "a path segment is decoded only once")

# Bad encodings in the path: refused before any handler runs.
refused("PUT", "/db/_user/%FF", {"email": "x@example.com"}, 400,
        "PUT a name with invalid UTF-8 (%FF)")
refused("PUT", "/db/_user/a%C3", {}, 400, "PUT a name with a truncated UTF-8 sequence")
refused("PUT", "/db/_user/%zz", {}, 400, "PUT a name with bad percent-encoding (%zz)")
refused("PUT", "/db/_user/a%2", {}, 400, "PUT a name with a cut percent-escape")
refused("PUT", "/db/_user/a%00b", {}, 400, "PUT a name with %00")
check_error(R("GET", "/db/_user/%FF"), 400, "GET a name with %FF -> 400")
check_error(R("GET", "/db/_user/%zz"), 400, "GET a name with %zz -> 400")

# Wrong methods: 405 with Allow.
for method, path, allow in (
        ("PUT", "/db/_user/", "GET, HEAD, POST"),
        ("DELETE", "/db/_user/", "GET, HEAD, POST"),
        ("POST", "/db/_user/alice", "GET, HEAD, PUT, DELETE"),
        ("PATCH", "/db/_user/alice", "GET, HEAD, PUT, DELETE"),
        ("GET", "/db/_user/alice/_session", "DELETE"),
        ("PUT", "/db/_user/alice/_session/" + "0" * 40, "DELETE"),
        ("PUT", "/db/_role/", "GET, HEAD, POST"),
        ("POST", "/db/_role/r", "GET, HEAD, PUT, DELETE"),
        ("GET", "/db/_session", "POST"),
        ("DELETE", "/db/_session", "POST"),
        ("PUT", "/db/_session/" + "0" * 40, "GET, HEAD, DELETE"),
        ("OPTIONS", "/db/_user/", "GET, HEAD, POST")):
    before = state()
    r = R(method, path, {"name": "zed"} if method in ("PUT", "POST", "PATCH") else None)
    ok(is_error(r, 405) and r.headers.get("allow") == allow,
       "%s %s -> 405 with Allow: %s" % (method, path, allow)) or diag("   got: %r" % (r,))
    ok(state() == before, "%s %s: store unchanged" % (method, path))

# Deleting.
check_ok(R("DELETE", "/db/_user/bob"), 200, "DELETE a user -> 200")
is_(R("GET", "/db/_user/bob").status, 404, "the deleted user is gone")
is_(R("GET", "/db/_user/").body, ["alice"], "and out of the list")
refused("DELETE", "/db/_user/bob", None, 404, "DELETE it again")
ok(not password_works("db", "bob", PW_BOB), "the deleted user cannot log in")

# --------------------------------------------------------------------------
# GUEST.

r = R("GET", "/db/_user/GUEST")
is_((r.status, r.body), (200, {"name": "GUEST", "disabled": True, "all_channels": ["!"]}),
    "GUEST exists by default: disabled, no channels")
r = R("GET", "/other/_user/GUEST")
is_((r.status, (r.body or {}).get("disabled"), (r.body or {}).get("admin_channels")),
    (200, False, ["g1", "g2"]), "GUEST follows the database's guest configuration")
ok("GUEST" not in R("GET", "/db/_user/").body, "GUEST is not in the user list")
check_ok(R("PUT", "/db/_user/GUEST", {"disabled": False, "admin_channels": ["public"]}), 200,
         "PUT GUEST -> 200 (it always exists)")
r = R("GET", "/db/_user/GUEST")
is_(((r.body or {}).get("disabled"), (r.body or {}).get("admin_channels")),
    (False, ["public"]), "PUT GUEST enables it with channels")
ok("GUEST" not in R("GET", "/db/_user/").body, "a written GUEST is still not listed")
refused("PUT", "/db/_user/GUEST", {"password": "guest-pw"}, 400, "PUT a password for GUEST")
SECRETS.add("guest-pw")
refused("PUT", "/db/_user/GUEST", {"email": "g@example.com"}, 400, "PUT an email for GUEST")
before = state()
r = R("DELETE", "/db/_user/GUEST")
ok(is_error(r, 405) and r.headers.get("allow") == "GET, HEAD, PUT",
   "DELETE GUEST -> 405 with Allow: GET, HEAD, PUT") or diag("   got: %r" % (r,))
ok(state() == before, "DELETE GUEST: store unchanged")
refused("POST", "/db/_user/", {"name": "GUEST"}, 409, "POST GUEST (it exists)")

# --------------------------------------------------------------------------
# Roles.

is_(R("GET", "/db/_role/").body, [], "no roles yet")
check_ok(R("PUT", "/db/_role/editors", {"admin_channels": ["e2", "e1"]}), 201,
         "PUT a new role -> 201")
check_ok(R("PUT", "/db/_role/editors", {"name": "editors", "admin_channels": ["e1", "e2"]}),
         200, "PUT an existing role -> 200")
r = R("GET", "/db/_role/editors")
is_((r.status, r.body), (200, {"name": "editors", "admin_channels": ["e1", "e2"],
                               "all_channels": ["e1", "e2"]}), "GET the role")
r = R("HEAD", "/db/_role/editors")
is_((r.status, r.raw), (200, b""), "HEAD of a role -> 200 without a body")
check_ok(R("POST", "/db/_role/", {"name": "viewers"}), 201, "POST /db/_role/ -> 201")
refused("POST", "/db/_role/", {"name": "viewers", "admin_channels": ["v"]}, 409,
        "POST an existing role")
refused("POST", "/db/_role/", {}, 400, "POST a role without a name")
is_(R("GET", "/db/_role/").body, ["editors", "viewers"], "GET /db/_role/ -> sorted names")
is_(R("GET", "/db/_role").body, ["editors", "viewers"], "GET /db/_role is the same")
check_error(R("GET", "/db/_role/nobody"), 404, "GET an unknown role -> 404", "not_found")
check_ok(R("PUT", "/db/_role/editors", R("GET", "/db/_role/editors").body), 200,
         "PUT back what GET showed of a role -> 200")
refused("PUT", "/db/_role/editors", {"all_channels": ["zz"]}, 400,
        "PUT a role's read-only all_channels with another value")
refused("PUT", "/db/_role/editors", {"password": "role-pw"}, 400, "PUT a role with a password")
refused("PUT", "/db/_role/editors", {"admin_channels": "e1"}, 400,
        "PUT a role's admin_channels as a string")
refused("PUT", "/db/_role/editors", "{", 400, "PUT a role with malformed JSON")

check_ok(R("PUT", "/db/_user/alice", {"admin_roles": ["editors", "ghost"]}), 200,
         "give alice a role (and one that does not exist)")
r = R("GET", "/db/_user/alice").body
is_((r.get("admin_roles"), r.get("roles"), r.get("all_channels")),
    (["editors", "ghost"], ["editors"], ["!", "a", "b", "e1", "e2"]),
    "all_channels adds the roles' channels; roles lists only existing roles")
check_ok(R("DELETE", "/db/_role/editors"), 200, "DELETE a role -> 200")
is_(R("GET", "/db/_role/editors").status, 404, "the deleted role is gone")
refused("DELETE", "/db/_role/editors", None, 404, "DELETE the role again")
is_(R("GET", "/db/_user/alice").body.get("all_channels"), ["!", "a", "b"],
    "the deleted role's channels are gone from the user")
check_ok(R("PUT", "/db/_user/alice", {"admin_roles": []}), 200, "take the roles away")
check_ok(R("DELETE", "/db/_role/viewers"), 200, "DELETE the other role")

# --------------------------------------------------------------------------
# Admin sessions.

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def rfc3339(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def new_session(name, db="db", ttl=None):
    body = {"name": name}
    if ttl is not None:
        body["ttl"] = ttl
    r = R("POST", "/%s/_session" % db, body)
    return r, (r.body or {}).get("session_id")


def session_alive(sid, db="db"):
    return R("GET", "/%s/_session/%s" % (db, sid)).status == 200


t0 = time.time()
r, s1 = new_session("alice")
is_(r.status, 200, "POST /db/_session {name} -> 200")
is_(sorted((r.body or {}).keys()), ["cookie_name", "expires", "session_id"],
    "it answers session_id, expires and cookie_name")
ok(HEX40.match(s1 or ""), "the session id is 40 lowercase hex characters")
is_((r.body or {}).get("cookie_name"), "SyncGatewaySession", "cookie_name is the database's")
exp = rfc3339((r.body or {}).get("expires", "1970-01-01T00:00:00Z"))
ok(abs(exp - (t0 + 86400)) < 120, "expires is now + session_ttl (RFC 3339)")
r, s60 = new_session("alice", ttl=60)
ok(r.status == 200 and abs(rfc3339(r.body["expires"]) - (t0 + 60)) < 120,
   "a ttl in the body sets expires")

r = R("GET", "/db/_session/%s" % s1)
is_(r.status, 200, "GET /db/_session/{id} -> 200")
is_((r.body or {}).get("userCtx"), {"name": "alice", "channels": {"!": 1, "a": 1, "b": 1}},
    "it shows the session's user and channels")
is_((r.body or {}).get("ok"), True, "with ok: true")
r = R("HEAD", "/db/_session/%s" % s1)
is_((r.status, r.raw), (200, b""), "HEAD of a session -> 200 without a body")
check_error(R("GET", "/db/_session/" + "0" * 40), 404, "GET an unknown session -> 404")
check_error(R("GET", "/db/_session/not-a-session"), 404, "GET a malformed session id -> 404")
check_error(R("GET", "/other/_session/%s" % s1), 404,
            "a session of one database is unknown in another")

for body, what in (({"name": "alice", "ttl": 0}, "ttl 0"),
                   ({"name": "alice", "ttl": -5}, "a negative ttl"),
                   ({"name": "alice", "ttl": 31536001}, "a ttl over a year"),
                   ({"name": "alice", "ttl": "60"}, "a ttl string"),
                   ({"name": "alice", "ttl": 1.5}, "a fractional ttl"),
                   ({"name": "alice", "password": PW_ALICE}, "an unknown field"),
                   ({"ttl": 60}, "no name"),
                   ({"name": ["alice"]}, "a name that is not a string"),
                   ({"name": "a:b"}, "a name breaking the rules")):
    r = R("POST", "/db/_session", body)
    check_error(r, 400, "POST /db/_session with %s -> 400" % what)
refused("POST", "/db/_session", "{", 400, "POST /db/_session with malformed JSON")
check_error(R("POST", "/db/_session", {"name": "nobody"}), 404,
            "POST /db/_session for an unknown user -> 404")
check_error(R("POST", "/db/_session", {"name": "GUEST"}), 404,
            "POST /db/_session for GUEST -> 404")
r = R("POST", "/other/_session", {"name": "alice"})
check_error(r, 404, "a user of one database has no session in another")

# Ending one session, and a user's sessions.
check_ok(R("DELETE", "/db/_session/%s" % s60), 200, "DELETE /db/_session/{id} -> 200")
ok(not session_alive(s60), "the deleted session is gone")
ok(session_alive(s1), "the user's other session lives on")
check_error(R("DELETE", "/db/_session/%s" % s60), 404, "DELETE it again -> 404")
check_error(R("DELETE", "/db/_session/" + "f" * 40), 404, "DELETE an unknown session -> 404")

check_ok(R("PUT", "/db/_user/bob", {"password": PW_BOB}), 201, "a second user, bob")
_, sb = new_session("bob")
check_error(R("DELETE", "/db/_user/alice/_session/%s" % sb), 404,
            "DELETE /_user/alice/_session/{bob's id} -> 404")
ok(session_alive(sb), "bob's session survives that")
_, s2 = new_session("alice")
check_ok(R("DELETE", "/db/_user/alice/_session/%s" % s2), 200,
         "DELETE /_user/alice/_session/{her id} -> 200")
ok(not session_alive(s2) and session_alive(s1), "only that session ended")
check_error(R("DELETE", "/db/_user/alice/_session/%s" % s2), 404, "and again -> 404")
_, s3 = new_session("alice")
check_ok(R("DELETE", "/db/_user/alice/_session"), 200, "DELETE /_user/alice/_session -> 200")
ok(not session_alive(s1) and not session_alive(s3), "all of alice's sessions ended")
ok(session_alive(sb), "bob's session was not touched")
check_ok(R("DELETE", "/db/_user/alice/_session/"), 200,
         "DELETE /_user/alice/_session/ (none left) -> 200")
check_error(R("DELETE", "/db/_user/nobody/_session"), 404,
            "DELETE /_user/nobody/_session -> 404")
check_error(R("DELETE", "/db/_user/a%3Ab/_session"), 404,
            "DELETE the sessions of an invalid name -> 404")

# What ends sessions, and what does not.
_, s4 = new_session("alice")
check_ok(R("PUT", "/db/_user/alice", {"email": "alice2@example.com", "admin_channels": ["c"]}),
         200, "change alice's email and channels")
ok(session_alive(s4), "a change without password or disabling keeps her sessions")
is_(R("GET", "/db/_session/%s" % s4).body.get("userCtx", {}).get("channels"),
    {"!": 1, "c": 1}, "the session shows the new channels at once")

PW_ALICE2 = "alice-secret-2"
SECRETS.add(PW_ALICE2)
check_ok(R("PUT", "/db/_user/alice", {"password": PW_ALICE2}), 200, "change alice's password")
ok(not session_alive(s4), "a password change ends her sessions")
ok(password_works("db", "alice", PW_ALICE2) and not password_works("db", "alice", PW_ALICE),
   "the new password works, the old one not")

_, s5 = new_session("alice")
check_ok(R("PUT", "/db/_user/alice", {"disabled": True}), 200, "disable alice")
ok(not session_alive(s5), "disabling ends her sessions")
is_(R("GET", "/db/_user/alice").body.get("disabled"), True, "GET shows her disabled")
r = R("POST", "/db/_session", {"name": "alice"})
check_error(r, 400, "POST /db/_session for a disabled user -> 400")
is_(R("GET", "/db/_user/alice").body.get("email"), "alice2@example.com",
    "disabling kept the other fields")
check_ok(R("PUT", "/db/_user/alice", {"disabled": False}), 200, "enable alice again")
r, s6 = new_session("alice")
is_(r.status, 200, "an enabled user gets sessions again")

_, sb2 = new_session("bob")
check_ok(R("DELETE", "/db/_user/bob"), 200, "delete bob")
ok(not session_alive(sb) and not session_alive(sb2), "deleting a user ends its sessions")
check_ok(R("PUT", "/db/_user/bob", {"password": PW_BOB}), 201, "bob again, new")
ok(not session_alive(sb), "an old session does not come back with the name")
check_error(R("DELETE", "/db/_user/bob/_session/%s" % sb), 404,
            "DELETE the old session through the new bob -> 404")

# A session in another database with its own cookie name and ttl.
check_ok(R("PUT", "/other/_user/olga", {"password": "olga-pw-1"}), 201, "a user in 'other'")
SECRETS.add("olga-pw-1")
t0 = time.time()
r, so = new_session("olga", db="other")
ok(r.status == 200 and r.body.get("cookie_name") == "OtherSession"
   and abs(rfc3339(r.body["expires"]) - (t0 + 600)) < 120,
   "the session follows 'other''s cookie name and session_ttl")
is_(R("GET", "/db/_user/olga").status, 404, "databases do not share users")
ok(not session_alive(so, "db") and session_alive(so, "other"),
   "nor sessions")

# Several processes creating the same user at once: one wins, the others
# see the conflict (the read-modify-write is one transaction).
results = []
threads = [threading.Thread(target=lambda: results.append(
    R("POST", "/db/_user/", {"name": "racer", "password": "racer-pw"}).status))
    for _ in range(6)]
SECRETS.add("racer-pw")
for t in threads:
    t.start()
for t in threads:
    t.join()
is_(sorted(results), [201] + [409] * 5, "6 concurrent POSTs of one user: one 201, five 409")

# --------------------------------------------------------------------------
# admin_users: Basic authentication.

ADMIN_PW = "admin-pw-xyz"
admin_hash = hash_password(ADMIN_PW)
if admin_hash is None:
    sgtest.bail_out("syncgatectl hash-password made no hash")
else:
    SECRETS.update([ADMIN_PW, admin_hash])
    site2 = Site("admins", {"admin_users": {"admin": admin_hash},
                            "databases": {"db": {}}})
    A = site2.req
    r = A("GET", "/db/_user/")
    check_error(r, 401, "admin_users: no Authorization -> 401")
    is_(r.headers.get("www-authenticate"), 'Basic realm="syncgate admin"',
        "with WWW-Authenticate: Basic realm=\"syncgate admin\"")
    r = A("GET", "/db/_user/", auth=("admin", "wrong-pw"))
    check_error(r, 401, "admin_users: a wrong password -> 401")
    is_(r.headers.get("www-authenticate"), 'Basic realm="syncgate admin"',
        "with WWW-Authenticate")
    r = A("GET", "/db/_user/", auth=("root", ADMIN_PW))
    check_error(r, 401, "admin_users: an unknown admin -> 401")
    r = A("PUT", "/db/_user/zoe", {"password": "zoe-pw-1"}, auth=("admin", "wrong-pw"))
    SECRETS.add("zoe-pw-1")
    check_error(r, 401, "admin_users: a write with a wrong password -> 401")
    r = A("GET", "/db/_user/", authz="Bearer abc.def.ghi")
    check_error(r, 401, "admin_users: a Bearer header -> 401")
    r = A("GET", "/db/_user/zoe", auth=("admin", ADMIN_PW))
    is_(r.status, 404, "the refused write stored nothing")
    is_(A("GET", "/db/_user/", auth=("admin", ADMIN_PW), remote="10.1.2.3").status, 200,
        "admin_users: the right password -> 200, from any address")
    check_ok(A("PUT", "/db/_user/zoe", {"password": "zoe-pw-1"}, auth=("admin", ADMIN_PW)),
             201, "admin_users: an admin's write -> 201")
    ok(any(re.search(r"user=admin .*user\.put.*created", line)
           for line in LOG[-1].splitlines()),
       "the write is logged with the acting admin") or diag(LOG[-1])

# --------------------------------------------------------------------------
# The log.

text = "".join(LOG)
ok(re.search(r"user\.put: created", text) is not None, "writes are logged (user.put created)")
ok(re.search(r"user\.delete: deleted", text) is not None, "deletes are logged")
ok(re.search(r"session\.create: created", text) is not None, "session creation is logged")
leaks = sorted(s for s in SECRETS if s and s in text)
is_(leaks, [], "no password, hash or session id in the log")
ok(re.search(r"\$2[aby]\$\d\d\$", text) is None, "no bcrypt hash in the log")
ok(re.search(r"[0-9a-f]{40}", text) is None, "no 40-hex-digit string (session id) in the log")

shutil.rmtree(TMP, ignore_errors=True)
done()
