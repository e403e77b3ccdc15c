#!/usr/bin/env python3
"""test_harness: the black-box harness itself, under a real lighttpd.

bench/noop-authorizer stands in for every syncgate program (authorizer and
responders), so this test needs nothing else of syncgate: it checks the
routing, the Lua header copy, the admin side, the static backend and that
nothing is left running afterwards.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
import sgtest  # noqa: E402
from sgtest import diag, done, is_, ok  # noqa: E402

sgtest.timeout(120)

NOOP = sgtest.noop_authorizer()
sgtest.require_programs(NOOP)
if sgtest.lighttpd_binary() is None:
    sgtest.bail_out("lighttpd not installed: run scripts/install-deps.sh")

SPOOFED = {
    "X-Syncgate-User": "admin",
    "x-syncgate-roles": "admin",
    "X-SYNCGATE-CHANNELS": "*",
    "X-Syncgate-Auth": "basic",
    "X_Syncgate_Db": "other",
}


def gone(pids):
    return [p for p in pids if sgtest.alive(p)]


# 1. The noop program as authorizer and as every responder.
st = sgtest.Stack(programs={"syncgate-session-check": NOOP, "syncgate-user-admin": NOOP},
                  max_procs=1)
with st:
    status, _h, body = st.request("GET", "/db/doc?rev=1")
    is_(status, 200, "a replication request passes the authorizer")
    is_(body.get("path") if isinstance(body, dict) else body, "/db/doc?rev=1",
        "it reaches the backend with its path and query")
    is_(body.get("headers") if isinstance(body, dict) else body, {"x-syncgate-user": "noop"},
        "the backend sees X-Syncgate-User from the authorizer's variable")

    status, _h, body = st.request("GET", "/db/doc", headers=SPOOFED)
    seen = body.get("headers", {}) if isinstance(body, dict) else {}
    is_(seen.get("x-syncgate-user"), "noop", "a client-sent X-Syncgate-User is replaced")
    ok("x-syncgate-roles" not in seen, "a client-sent x-syncgate-roles is dropped")
    ok("x-syncgate-channels" not in seen and "x-syncgate-auth" not in seen,
       "client-sent X-Syncgate-Channels and -Auth are dropped (upper case too)")
    ok("x_syncgate_db" not in seen, "a client-sent X_Syncgate_Db (underscores) is dropped")
    is_(seen, {"x-syncgate-user": "noop"}, "no other X-Syncgate-* header reaches the backend")

    status, _h, body = st.request("PUT", "/db/doc", body={"a": 1})
    is_((status, body.get("method"), body.get("body")) if isinstance(body, dict) else body,
        (200, "PUT", '{"a": 1}'), "method and body reach the backend")

    before = len(st.backend.requests)
    for path in ("/db/_user", "/db/_user/", "/db/_user/alice", "/db/_role/r1",
                 "/db/%5Fuser/alice", "/db/_user?name_only=false"):
        status, _h, _b = st.request("GET", path)
        ok(status in (403, 404), "public %s is refused (%d)" % (path, status))
    is_(len(st.backend.requests), before, "none of them reached the backend")

    status, headers, _b = st.request("POST", "/db/_session", body={"name": "a"})
    is_((status, headers.get("variable-syncgate_user")), (200, "noop"),
        "public /db/_session goes to the session-check responder")
    is_(len(st.backend.requests), before, "and not to the backend")

    status, headers, _b = st.request("GET", "/db/_user/", port="admin")
    is_((status, headers.get("variable-syncgate_user")), (200, "noop"),
        "admin /db/_user/ goes to the user-admin responder")
    status, _h, _b = st.request("GET", "/db/doc", port="admin")
    is_(status, 404, "the admin side does not proxy replication requests")
    is_(len(st.backend.requests), before, "nothing from the admin side reached the backend")

    try:
        sgtest.http_request(st.ports["admin"], "GET", "/db/_user/", host="127.0.0.2", timeout=3)
        refused = False
    except OSError:
        refused = True
    ok(refused, "the admin port does not answer on 127.0.0.2")
    ok(sgtest.port_open(st.ports["admin"], host="127.0.0.1"), "the admin port answers on 127.0.0.1")

    procs = st.processes()
    comms = sorted(p["comm"] for p in procs)
    diag("processes: %s" % comms)
    # lighttpd, the authorizer, and the session-check and user-admin responders.
    is_(comms.count("noop-authorizer"), 3, "three FastCGI pools of one process each")
    lighttpd_pid = st.lighttpd_pid()
    ok(lighttpd_pid in [p["pid"] for p in procs], "lighttpd is among the stack's processes")
    ok("server started" in st.logs(), "logs() holds lighttpd's error log")
    pids = [p["pid"] for p in procs]
    tmpdir = st.dir
is_(gone(pids), [], "lighttpd and every FastCGI process are gone after stop()")
is_(sgtest.processes_referring(tmpdir + os.sep), [], "no process refers to the temporary directory")
ok(os.environ.get("SG_KEEP") or not os.path.exists(tmpdir), "the temporary directory is removed")

# 2. Pools of several processes (min-procs matters in 1.4.69).
with sgtest.Stack(authorizer=NOOP, programs={"syncgate-session-check": None},
                  max_procs=3) as st:
    n = sum(1 for p in st.processes() if p["comm"] == "noop-authorizer")
    is_(n, 3, "max_procs=3 starts three authorizer processes")
    codes = [st.request("GET", "/db/d%d" % i)[0] for i in range(9)]
    is_(codes, [200] * 9, "they answer")
    is_(st.request("GET", "/db/_session")[0], 404, "a program not built answers 404")
    pids = [p["pid"] for p in st.processes()]
is_(gone(pids), [], "all of them are gone after stop()")

# 3. The benchmark's shapes: plain proxy, and lighttpd serving a static file.
NO_PROGRAMS = {name: None for name in sgtest.PROGRAMS}

with sgtest.Stack(authorizer=False, static_backend=True, programs=NO_PROGRAMS) as st:
    status, _h, body = st.request("GET", "/db/" + sgtest.STATIC_FILE,
                                  headers={"X-Syncgate-User": "admin"})
    is_((status, len(body)), (200, sgtest.STATIC_BYTES),
        "without authorizer the static file comes through the proxy")
    status, _h, body = st.request("GET", "/db/" + sgtest.STATIC_FILE, port="backend")
    is_((status, len(body)), (200, sgtest.STATIC_BYTES), "the static backend serves it directly")
    ok("mod_magnet" not in open(st.conf_path).read(), "no mod_magnet without authorizer")
    pids = [p["pid"] for p in st.processes()]
    is_(len(pids), 2, "two lighttpd processes (front and static backend)")
is_(gone(pids), [], "both are gone after stop()")

with sgtest.Stack(authorizer=NOOP, programs=NO_PROGRAMS, static_backend="front") as st:
    status, headers, body = st.request("GET", "/db/" + sgtest.STATIC_FILE)
    is_((status, len(body), headers.get("content-type")), (200, sgtest.STATIC_BYTES, "text/plain"),
        "static_backend=\"front\": the front serves the file after the authorizer")
    is_(sorted(p["comm"] for p in st.processes()), ["lighttpd", "noop-authorizer"],
        "with one lighttpd and the authorizer")

# 4. A test script that dies with a Stack running fails loudly and leaves
#    nothing behind.
child = r"""
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, %r)
import sgtest
st = sgtest.Stack(authorizer=%r, programs={"syncgate-session-check": None}).start()
sgtest.ok(True, "started")
print("DIR " + st.dir, flush=True)
raise RuntimeError("boom")
""" % (os.path.dirname(os.path.abspath(sgtest.__file__)), NOOP)
env = dict(os.environ)
env.pop("SG_KEEP", None)
res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60,
                     env=env)
ok(res.returncode != 0, "a script that raises exits non-zero (%d)" % res.returncode)
ok("not ok 2 " in res.stdout and "Bail out!" in res.stdout,
   "it prints \"not ok\" and \"Bail out!\"")
cdir = [line[4:] for line in res.stdout.splitlines() if line.startswith("DIR ")]
ok(cdir and not sgtest.processes_referring(cdir[0] + os.sep),
   "its lighttpd and authorizer are gone")
ok(cdir and not os.path.exists(cdir[0]), "its temporary directory is removed")
if res.returncode == 0 or "Bail out!" not in res.stdout:
    diag(res.stdout + res.stderr)

done()
