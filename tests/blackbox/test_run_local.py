"""scripts/run-local.sh, the README's "run it" command: it starts lighttpd
with every program, a local OpenID provider with a demo user and a
replication backend on loopback, prints how to log in, refuses to start
twice, and its "stop" leaves no process behind.

It uses the fixed ports of the demo (4984 to 4987); the packages and the
build are already there when make check runs it (SG_SKIP_SETUP).
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import done, is_, like, ok  # noqa: E402

sgtest.timeout(300)
sgtest.require_programs(sgtest.program("syncgate-session-check"))
parties.require_parties()
parties.require_pouch()

PORTS = (4984, 4985, 4986, 4987)
busy = [p for p in PORTS if sgtest.port_open(p)]
if busy:
    sgtest.bail_out("ports %s are in use (is a syncgate demo running?)" % busy)

script = os.path.join(sgtest.srcdir(), "scripts", "run-local.sh")
rundir = tempfile.mkdtemp(prefix="sg-run-local-")
env = dict(os.environ, SG_RUN_DIR=rundir, SG_BUILD_DIR=sgtest.builddir(), SG_SKIP_SETUP="1")


def run(*args):
    p = subprocess.run(["sh", script] + list(args), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


stackdir = None
try:
    code, out = run()
    is_(code, 0, "run-local.sh starts")
    like(out, r"http://127\.0\.0\.1:4984/db/_oidc", "it prints the login URL")
    like(out, r'user "demo", password "demo-password"', "and the demo credentials")
    like(out, r"Stop it with: .*run-local\.sh stop", "and how to stop")
    with open(os.path.join(rundir, "ready")) as f:
        stackdir = f.read().splitlines()[1]

    res = parties.login("http://127.0.0.1:4984/db/_oidc", "demo")
    r = sgtest.http_request(4984, "GET", res.path, cookies=res.cookies)
    is_(r.status, 200, "the demo user logs in at the local provider")
    is_(r.body.get("name") if isinstance(r.body, dict) else None, "demo", "as demo")
    cookie = sgtest.set_cookie(r.headers, "SyncGatewaySession")
    r = sgtest.http_request(4984, "PUT", "/db/hello", body={"from": "test"},
                            cookies={"SyncGatewaySession": cookie})
    is_(r.status, 201, "a document written through the front with the session cookie")
    r = sgtest.http_request(4987, "GET", "/db/hello", headers={"Accept": "application/json"})
    is_(r.status, 200, "it is in the replication backend")
    r = sgtest.http_request(4984, "GET", "/db/hello")
    is_(r.status, 401, "without credentials: 401")
    r = sgtest.http_request(4984, "GET", "/db/hello", auth=("demo", "demo-password"))
    is_(r.status, 200, "with the demo password (Basic)")

    code, out = run()
    is_(code, 0, "a second run exits cleanly")
    like(out, r"already running", "and says it is already running")
finally:
    code, out = run("stop")
is_(code, 0, "stop exits cleanly")
like(out, r"syncgate stopped", "and says so")
left = sgtest.processes_referring(stackdir) if stackdir else []
left += sgtest.processes_referring(rundir + os.sep)
is_(left, [], "no process is left")
is_([p for p in PORTS if sgtest.port_open(p)], [], "the ports are free again")
code, out = run("stop")
like(out, r"not running", "stopping again says it is not running")
shutil.rmtree(rundir, ignore_errors=True)
done()
