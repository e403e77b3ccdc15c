"""A real browser logs in through the front and reads a document.

Debian's chromium, headless, driven by tests/parties/browser.mjs
(playwright-core), opens syncgate's /{db}/_oidc, is sent to a real
provider (oidc-provider, tests/parties/provider.mjs), types a login and a
password into the provider's own form, consents, comes back to syncgate's
callback with the code, is given the session cookie, and reads a document
through the front with it.  A second browser follows a callback link with
a forged state and must be refused.

Each front is one entry of fronts(): every case runs through each of them,
so that another web server is one more line there.  A failing case keeps
the page its browser ended the login at (or stopped at) as a PNG under
$top_builddir/tests/screenshots/ and names it in a diag line.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
import deploy  # noqa: E402
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.require_programs(*(sgtest.program(p) for p in (
    "syncgate-session-check", "syncgate-user-admin", "syncgate-oidc",
    "syncgate-oidc-callback")))
parties.require_parties()

CHROMIUM = os.environ.get("SG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not sgtest.is_executable(CHROMIUM):
    sgtest.bail_out("chromium not found: run scripts/install-deps.sh")
if not os.path.isfile(os.path.join(parties.node_modules(), "playwright-core", "package.json")):
    sgtest.bail_out("playwright-core missing: run scripts/install-deps.sh")

SECRET = "op-secret-" + "b4R8" * 6
# How long one browser run may take, and the limit given to browser.mjs
# itself (less, so that it reports its own timeout with a screenshot).
BROWSER_LIMIT = 45
SCREENSHOTS = os.path.join(sgtest.builddir(), "tests", "screenshots")


def lighttpd_front(config, public):
    """sgtest's Stack: lighttpd, every program, the echo backend."""
    return sgtest.Stack(config, ports={"public": public})


def apache_front(config, public):
    """httpd-examples/apache2/syncgate.conf as shipped, with the echo backend."""
    return deploy.Deployment("apache", config=config, ports={"public": public})


def fronts():
    """[(name, factory)]: factory(config, public) returns a context manager
    for a front serving config's database "db" on 127.0.0.1:public, with
    url(path) and the echo backend as .backend (requests, clear()).  The
    port comes first because the provider must know the callback URL."""
    return [
        ("lighttpd", lighttpd_front),
        ("apache", apache_front),
    ]


def browse(spec, workdir):
    """Runs browser.mjs with spec (dict); returns its JSON line as a dict
    ({"error": ...} when it printed none).  The browser and its helpers run
    with a new directory under workdir as TMPDIR (their profile lands
    there) and named in their environment, so that any of them still alive
    afterwards is found and killed; "leftover" counts them."""
    where = parties.script_dir(workdir)
    # A directory of the run's own: the provider's files are in workdir.
    rundir = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
    env = dict(os.environ, TMPDIR=rundir, SG_BROWSER_RUN=rundir, SG_CHROMIUM=CHROMIUM)
    out, err, code, left = b"", b"", None, []
    try:
        proc = subprocess.run(
            [parties.node_binary(), os.path.join(where, "browser.mjs"), json.dumps(spec)],
            cwd=where, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=BROWSER_LIMIT, start_new_session=True)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out, err = e.stdout or b"", e.stderr or b""
    finally:
        # chromium runs in a process group of its own, out of reach of
        # node's: it is found by the directory named in its environment.
        # Whatever is still there (the test's own time limit struck, or
        # node was killed) is killed and counted.
        left = sgtest.processes_referring(rundir + os.sep)
        for p in left:
            diag("killed what the browser left: %d %s" % (p["pid"], p["comm"]))
            sgtest._kill(p["pid"], signal.SIGKILL)
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.startswith("{")]
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        result = {}
    if not result:
        result = {"error": "browser.mjs printed no result (exit status %s)" % code}
    result["exit"] = code
    result["stderr"] = err.decode("utf-8", "replace")
    result["leftover"] = len(left)
    return result


class Case:
    """One browser run's checks: its screenshot is kept when a check
    failed (named in a diag line), removed otherwise."""

    def __init__(self, front, name):
        self.label = "%s %s" % (front, name)
        self.shot = os.path.join(SCREENSHOTS, "browser-%s-%s.png" % (front, name))

    def __enter__(self):
        os.makedirs(SCREENSHOTS, exist_ok=True)
        if os.path.exists(self.shot):
            os.unlink(self.shot)
        self.failed = sgtest._tap["failed"]
        self.result = {}
        return self

    def __exit__(self, *exc):
        res = self.result
        if sgtest._tap["failed"] == self.failed and exc[0] is None:
            if os.path.exists(self.shot):
                os.unlink(self.shot)
            return False
        if res.get("error"):
            diag("%s: %s" % (self.label, res["error"]))
        if res.get("url"):
            diag("  last page: %s" % res["url"])
        for line in res.get("stderr", "").splitlines()[-10:]:
            diag("  stderr: %s" % line)
        if os.path.exists(self.shot):
            diag("  screenshot: %s" % self.shot)
        else:
            diag("  no screenshot was saved")
        return False

    def browse(self, spec, workdir):
        spec = dict(spec, screenshot=self.shot, timeout_ms=(BROWSER_LIMIT - 5) * 1000)
        self.result = browse(spec, workdir)
        return self.result


def cookie(result, name):
    return next((c for c in result.get("cookies") or [] if c.get("name") == name), None)


def run_front(fname, factory, tmp):
    public = sgtest.free_port()
    callback = "http://127.0.0.1:%d/db/_oidc_callback" % public
    workdir = tempfile.mkdtemp(prefix="browser-", dir=tmp)
    op = parties.Provider({
        "clients": [{"client_id": "syncgate-db", "client_secret": SECRET,
                     "redirect_uris": [callback]}],
        "accounts": {"dana": {"channels": ["ch-d"]}},
    }, tmpdir=workdir)
    op.start()
    config = {"databases": {"db": {
        # The default (true), said out loud since a Deployment without TLS
        # would turn it off: chromium holds a Secure cookie set over
        # http://127.0.0.1, a secure context.
        "session_cookie_secure": True,
        "oidc": {"default_provider": "main", "providers": {
            "main": {"issuer": op.issuer, "client_id": "syncgate-db", "validation_key": SECRET,
                     "callback_url": callback, "register": True, "user_prefix": "op",
                     "channels_claim": "channels"},
        }}}}}
    try:
        with factory(config, public) as front:
            # --- the whole login, then a document through the front
            with Case(fname, "login") as case:
                front.backend.clear()
                t0 = time.monotonic()
                res = case.browse({"start": front.url("/db/_oidc"), "username": "dana",
                                   "password": "any-password",
                                   "doc_url": front.url("/db/doc")}, workdir)
                ok("error" not in res, "%s: the browser logs in and comes back" % fname)
                diag("%s: browser run %.1f s" % (fname, time.monotonic() - t0))
                is_(res.get("prompts"), ["login", "consent"],
                    "%s: the provider's login and consent pages were filled in" % fname)
                is_(res.get("callback_status"), 200, "%s: callback 200" % fname)
                body = res.get("callback_body")
                body = body if isinstance(body, dict) else {}
                is_(body.get("name"), "op_dana", "%s: the callback names the user" % fname)
                like(res.get("callback_text"), r'"name"\s*:\s*"op_dana"',
                     "%s: the page shows the callback's answer" % fname)
                sess = cookie(res, "SyncGatewaySession") or {}
                ok(sess, "%s: the browser holds SyncGatewaySession" % fname)
                is_(sess.get("value"), body.get("session_id"),
                    "%s: the cookie is the callback's session" % fname)
                is_(sess.get("path"), "/db", "%s: cookie Path=/db" % fname)
                is_(sess.get("httpOnly"), True, "%s: cookie HttpOnly" % fname)
                is_(sess.get("sameSite"), "Lax", "%s: cookie SameSite=Lax" % fname)
                is_(sess.get("secure"), True,
                    "%s: cookie Secure, kept over http://127.0.0.1" % fname)
                is_(sess.get("expires"), -1, "%s: a session cookie, no Expires" % fname)
                is_(cookie(res, "sg-oidc-state"), None,
                    "%s: the state cookie is gone after the callback" % fname)
                is_(res.get("doc_status"), 200,
                    "%s: the document is read through the front" % fname)
                doc = res.get("doc_body")
                doc = doc if isinstance(doc, dict) else {}
                is_(doc.get("path"), "/db/doc", "%s: the backend answered it" % fname)
                seen = [r for r in front.backend.requests if r["path"] == "/db/doc"]
                ident = seen[-1]["headers"] if seen else {}
                is_(ident.get("x-syncgate-user"), "op_dana",
                    "%s: the backend saw the user" % fname)
                is_(ident.get("x-syncgate-channels"), "!,ch-d",
                    "%s: and the channels from the provider's claim" % fname)
                is_(ident.get("x-syncgate-auth"), "session",
                    "%s: by the session cookie" % fname)
                is_(res.get("leftover"), 0, "%s: no browser process left" % fname)

            # --- a wrong turn: back at the callback with a state not ours
            with Case(fname, "forged-state") as case:
                front.backend.clear()
                posts = len(op.requests("POST", "/token"))
                res = case.browse({"start": front.url("/db/_oidc"), "username": "dana",
                                   "doc_url": front.url("/db/doc"),
                                   "forge_state": "f" * 40}, workdir)
                ok("error" not in res, "%s: forged state: the browser reaches the callback"
                   % fname)
                like(res.get("callback_url"), r"[?&]state=f{40}(&|$)",
                     "%s: at the callback with the forged state" % fname)
                is_(res.get("callback_status"), 400, "%s: forged state: 400" % fname)
                like(res.get("callback_text"), r'"reason"\s*:\s*"[^"]*[Ss]tate',
                     "%s: the page shows why" % fname)
                is_(len(op.requests("POST", "/token")), posts,
                    "%s: the code was not taken to the token endpoint" % fname)
                is_(cookie(res, "SyncGatewaySession"), None, "%s: no session cookie" % fname)
                is_(res.get("doc_status"), 401, "%s: the document is refused: 401" % fname)
                is_(len(front.backend.requests), 0, "%s: nothing reached the backend" % fname)
                is_(res.get("leftover"), 0, "%s: no browser process left" % fname)
    finally:
        op.stop()


# Two browser runs per front at most BROWSER_LIMIT each; a run takes about
# 4 s here.
sgtest.timeout(30 + 2 * BROWSER_LIMIT * len(fronts()))
tmp = tempfile.mkdtemp(prefix="sg-browser-")
try:
    for name, factory in fronts():
        run_front(name, factory, tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

done()
