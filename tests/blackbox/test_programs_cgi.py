"""The built FastCGI programs run as one-shot CGI: they refuse a bad
configuration at start with one line naming the file and the JSON path,
and refuse bad requests with a clear JSON 4xx before any work.
"""
import base64
import glob
import json
import os
import sys
import tempfile

sys.dont_write_bytecode = True
import sgtest  # noqa: E402
from sgtest import done, is_, ok  # noqa: E402

sgtest.timeout(300)
CHECK = sgtest.program("syncgate-session-check")
ADMIN = sgtest.program("syncgate-user-admin")
sgtest.require_programs(CHECK, ADMIN)

TMP = tempfile.mkdtemp(prefix="sg-programs-cgi.")
CONFIG = os.path.join(TMP, "syncgate.json")
with open(CONFIG, "w") as f:
    json.dump({"store": {"path": os.path.join(TMP, "store")},
               "logging": {"syslog": False, "level": "info"},
               "databases": {"db": {"guest": {"disabled": False, "admin_channels": ["pub"]}}}}, f)


def cgi(prog, method, path, **kw):
    proc, status, headers, raw = sgtest.run_cgi(prog, method, path, CONFIG, **kw)
    body = json.loads(raw) if raw else None
    return status, headers, body


def is_json_error(got, status, reason, name):
    st, headers, body = got
    is_((st, headers.get("content-type"), (body or {}).get("reason")),
        (status, "application/json", reason), name)


# --- configuration errors stop each program at start with one line
cases = sorted(glob.glob(os.path.join(sgtest.srcdir(), "tests", "data", "config", "invalid",
                                      "*.json")))
ok(len(cases) >= 50, "configuration error cases found (%d)" % len(cases))
for prog in (CHECK, ADMIN):
    name = os.path.basename(prog)
    for case in cases:
        want = open(case[:-5] + ".err").read().strip().replace("@FILE@", case)
        proc, status, _, _ = sgtest.run_cgi(prog, "GET", "/db/_session", case)
        lines = proc.stderr.decode("utf-8", "replace").splitlines()
        is_((proc.returncode != 0, status, lines), (True, None, ["%s: %s" % (name, want)]),
            "%s refuses %s with one line" % (name, os.path.basename(case)))
    missing = os.path.join(TMP, "nothing-here.json")
    proc, status, _, _ = sgtest.run_cgi(prog, "GET", "/db/_session", missing)
    is_((proc.returncode != 0, proc.stderr.decode().splitlines()),
        (True, ["%s: %s: cannot read: No such file or directory" % (name, missing)]),
        "%s refuses a missing configuration file with one line" % name)

# --- bad requests: a clear JSON 4xx
big_cookie = "SyncGatewaySession=" + "a" * 8200
is_json_error(cgi(CHECK, "GET", "/db/_session", env={"HTTP_COOKIE": big_cookie}), 431,
              "Cookie header over 8192 bytes", "a Cookie header over 8 KiB: 431")
is_json_error(cgi(CHECK, "GET", "/db/_session", query="q=" + "x" * 8200), 414,
              "Query string over 8192 bytes", "a query string over 8 KiB: 414")
is_json_error(cgi(CHECK, "GET", "/db/_session",
                  env={"HTTP_AUTHORIZATION": "Basic %%%notbase64"}), 400,
              "Invalid Basic authorization header: not base64", "Basic that is not base64: 400")
is_json_error(cgi(CHECK, "GET", "/db/_session", env={
    "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"alice").decode()}), 400,
    "Invalid Basic authorization header: no colon", "Basic without a colon: 400")
is_json_error(cgi(CHECK, "GET", "/db/_ses%zzsion"), 400, "Invalid percent-encoding in path",
              "bad percent-encoding in the path: 400")
is_json_error(cgi(CHECK, "GET", "/nodb/_session"), 404, "no such database",
              "unknown database: 404")
is_json_error(cgi(CHECK, "POST", "/db/_session", body="x" * (1024 * 1024 + 1)), 413,
              "Request body over 1048576 bytes", "a body over 1 MiB: 413")
is_json_error(cgi(CHECK, "POST", "/db/_session", body=b'{"name":"a\xff","password":"x"}'), 400,
              "Invalid UTF-8 in request body", "invalid UTF-8 in the body: 400")
is_json_error(cgi(CHECK, "POST", "/db/_session", body={"name": 1, "password": "x"}), 400,
              "name and password must be strings", "wrong JSON types: 400")
st, headers, body = cgi(CHECK, "PATCH", "/db/_session")
is_((st, headers.get("allow")), (405, "GET, HEAD, POST, DELETE"), "wrong method: 405 with Allow")

# --- the authorizer role through CGI variables: GUEST is enabled here
st, headers, body = cgi(CHECK, "GET", "/db/doc", env={"FCGI_ROLE": "AUTHORIZER"})
is_((st, headers.get("variable-syncgate_channels"), headers.get("variable-syncgate_auth")),
    (200, "!,pub", "guest"), "authorizer: GUEST allowed with its channels")
ok(body is None, "authorizer 200 has no body")
done()
