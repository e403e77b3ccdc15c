"""sgtest: run syncgate's FastCGI programs under a real lighttpd, black-box.

The black-box tests (tests/blackbox/test_*.py) import this module, start a
Stack (lighttpd in front, syncgate's programs behind it as FastCGI
responders and authorizer, an echo backend behind mod_proxy), talk HTTP to it
and print TAP.  The benchmark builds its lighttpd configuration with the same
Stack, so what is measured is what is tested.

Python 3 standard library only.  Everything listens on loopback addresses,
lives in one temporary directory and is stopped at stop(), at the end of a
"with" block, or at exit (also when the test raised an exception).

Environment:
  top_builddir     where the programs were built (default ".")
  top_srcdir       the source tree (default: two levels above this file)
  LIGHTTPD         the lighttpd binary (default /usr/sbin/lighttpd)
  NOOP_AUTHORIZER  bench/noop-authorizer, if not <builddir>/bench/
  SG_KEEP          keep the temporary directory (its path is printed)
"""

import atexit
import base64
import collections
import http.client
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# --------------------------------------------------------------------------
# TAP

_tap = {"n": 0, "failed": 0, "done": False}


def _emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def diag(msg):
    """Print msg as TAP comment lines."""
    for line in str(msg).splitlines() or [""]:
        _emit("# " + line)


def ok(cond, name):
    """One test point: passes when cond is true.  Returns bool(cond)."""
    _tap["n"] += 1
    cond = bool(cond)
    if not cond:
        _tap["failed"] += 1
    _emit("%sok %d - %s" % ("" if cond else "not ", _tap["n"], name))
    return cond


def is_(got, want, name):
    """Passes when got == want; prints both otherwise."""
    same = got == want
    if not ok(same, name):
        diag("   got: %r" % (got,))
        diag("  want: %r" % (want,))
    return same


def isnt(got, unwanted, name):
    """Passes when got != unwanted."""
    differ = got != unwanted
    if not ok(differ, name):
        diag("   got: %r (must differ)" % (got,))
    return differ


def like(got, pattern, name):
    """Passes when the regular expression pattern is found in str(got)."""
    found = got is not None and re.search(pattern, str(got)) is not None
    if not ok(found, name):
        diag("   got: %r" % (got,))
        diag("  want: match for %r" % (pattern,))
    return found


def done():
    """Print the plan and exit: 0 when every test passed, 1 otherwise."""
    _tap["done"] = True
    _emit("1..%d" % _tap["n"])
    sys.exit(0 if _tap["failed"] == 0 and _tap["n"] > 0 else 1)


def bail_out(reason):
    """Stop the whole test script (TAP "Bail out!"), exit status 255."""
    _tap["done"] = True
    _emit("Bail out! %s" % reason)
    sys.exit(255)


def _excepthook(etype, value, tb):
    """An uncaught exception fails the script loudly (exit status 1)."""
    diag("".join(traceback.format_exception(etype, value, tb)).rstrip())
    if not _tap["done"]:
        ok(False, "uncaught %s: %s" % (etype.__name__, value))
        _tap["done"] = True
        _emit("Bail out! uncaught %s" % etype.__name__)


sys.excepthook = _excepthook


def _on_signal(signum, frame):
    # SystemExit runs the atexit handlers, which stop every Stack.
    if not _tap["done"]:
        _tap["done"] = True
        _emit("Bail out! killed by signal %d" % signum)
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_sig) == signal.SIG_DFL:
        signal.signal(_sig, _on_signal)


class Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise Timeout("test script ran out of time")


def timeout(seconds):
    """Fail the script (through an exception) after seconds; 0 disarms."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(seconds))


# --------------------------------------------------------------------------
# Paths

PROGRAMS = (
    "syncgate-session-check",
    "syncgate-user-admin",
    "syncgate-oidc",
    "syncgate-oidc-callback",
    "syncgate-oidc-refresh",
)


def builddir():
    return os.path.abspath(os.environ.get("top_builddir") or ".")


def srcdir():
    d = os.environ.get("top_srcdir")
    if d:
        return os.path.abspath(d)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def program(name):
    """Path of the built program cgi-bin/<name> (it may not exist)."""
    return os.path.join(builddir(), "cgi-bin", name)


def noop_authorizer():
    """Path of bench/noop-authorizer (env NOOP_AUTHORIZER overrides)."""
    return os.environ.get("NOOP_AUTHORIZER") or os.path.join(builddir(), "bench", "noop-authorizer")


def lua_script():
    return os.path.join(srcdir(), "httpd-examples", "lighttpd", "syncgate-headers.lua")


def lighttpd_binary():
    for cand in (os.environ.get("LIGHTTPD"), "/usr/sbin/lighttpd", shutil.which("lighttpd")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def is_executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def require_programs(*paths):
    """Bail out unless every path is an executable file."""
    missing = [p for p in paths if not is_executable(p)]
    if missing:
        bail_out("not built: %s" % ", ".join(missing))


# --------------------------------------------------------------------------
# One-shot CGI runs of a built program


def parse_cgi(out):
    """Splits a CGI response into (status, {lower-case name: value}, body bytes)."""
    sep = out.find(b"\r\n\r\n")
    if sep < 0:
        raise ValueError("no end of headers in CGI output: %r" % out[:200])
    head, body = out[:sep].decode("latin-1"), out[sep + 4:]
    status, headers = 200, {}
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "status":
            status = int(value.split()[0])
        else:
            headers[name] = value
    return status, headers, body


def run_cgi(prog, method, path, config, body=None, query="", remote="127.0.0.1", env=None,
            timeout=60, wrapper=None):
    """Runs prog once as CGI with SYNCGATE_CONFIG=config.  body: dict/list
    (sent as JSON), str or bytes; env: extra variables (HTTP_COOKIE...);
    wrapper: argv run in front of prog (e.g. faketime).
    Returns (CompletedProcess, status, headers, body bytes); status is None
    when the program wrote no CGI response (e.g. it refused its config)."""
    e = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": path + ("?" + query if query else ""),
        "QUERY_STRING": query,
        "REMOTE_ADDR": remote,
        "SYNCGATE_CONFIG": config,
    }
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode("utf-8")
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = body
    if data is not None:
        e["CONTENT_LENGTH"] = str(len(data))
        e["CONTENT_TYPE"] = "application/json"
    e.update(env or {})
    proc = subprocess.run(list(wrapper or []) + [prog], input=data or b"", env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)
    if not proc.stdout:
        return proc, None, {}, b""
    status, headers, raw = parse_cgi(proc.stdout)
    return proc, status, headers, raw


# --------------------------------------------------------------------------
# Ports


def free_ports(n=1):
    """n distinct free TCP ports on 127.0.0.1 (free now, not reserved)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# HTTP client

Response = collections.namedtuple("Response", "status headers body")


def http_request(port, method, path, headers=None, body=None, auth=None, cookies=None,
                 host="127.0.0.1", timeout=10, context=None):
    """One request on a fresh connection (HTTPS when context, an
    ssl.SSLContext, is given).

    body: dict or list (sent as JSON), str, bytes or None.  auth: (user,
    password) for Basic.  cookies: dict or a ready "a=b; c=d" string.
    Returns Response(status, headers, body): header names lower-case, a
    repeated header as a list of its values; body parsed as JSON when the
    answer says it is JSON and it parses, else text.
    """
    hdrs = {}
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode("utf-8")
        hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode("utf-8")
    else:
        data = body
    if auth is not None:
        cred = ("%s:%s" % auth).encode("utf-8")
        hdrs["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
    if cookies:
        if isinstance(cookies, dict):
            cookies = "; ".join("%s=%s" % kv for kv in cookies.items())
        hdrs["Cookie"] = cookies
    hdrs.update(headers or {})
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        rheaders = {}
        for name, value in resp.getheaders():
            name = name.lower()
            if name in rheaders:
                if not isinstance(rheaders[name], list):
                    rheaders[name] = [rheaders[name]]
                rheaders[name].append(value)
            else:
                rheaders[name] = value
        text = raw.decode("utf-8", "replace")
        result = text
        ctype = rheaders.get("content-type", "")
        if isinstance(ctype, list):
            ctype = ctype[-1]
        if "json" in ctype.lower() and text:
            try:
                result = json.loads(text)
            except ValueError:
                result = text
        return Response(resp.status, rheaders, result)
    finally:
        conn.close()


def set_cookie(headers, name):
    """The value of cookie name in the Set-Cookie header(s), or None."""
    values = headers.get("set-cookie", [])
    if not isinstance(values, list):
        values = [values]
    for v in values:
        first = v.split(";", 1)[0]
        k, _, val = first.partition("=")
        if k.strip() == name:
            return val.strip()
    return None


# --------------------------------------------------------------------------
# The echo backend


def _is_syncgate_header(name):
    return name.lower().replace("_", "-").startswith("x-syncgate-")


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    server_version = "sgtest-backend"

    def _body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _answer(self):
        body = self._body().decode("utf-8", "replace")
        allh = {}
        for name, value in self.headers.items():
            key = name.lower()
            allh[key] = value if key not in allh else allh[key] + ", " + value
        seen = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in allh.items() if _is_syncgate_header(k)},
            "all_headers": allh,
            "body": body,
        }
        self.server.record(seen)
        out = json.dumps(seen).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)
        self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer

    def log_message(self, fmt, *args):
        pass


class _EchoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.requests = []
        self.lock = threading.Lock()

    def record(self, seen):
        with self.lock:
            self.requests.append(seen)


class Backend:
    """The replication backend stand-in: answers every request with 200
    {"method","path","headers","all_headers","body"}, where "headers" holds
    the X-Syncgate-* headers it received (names lower-case).  requests lists
    what reached it, in order."""

    def __init__(self):
        self._srv = _EchoServer()
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever, name="sgtest-backend",
                                        daemon=True)
        self._thread.start()

    @property
    def requests(self):
        with self._srv.lock:
            return list(self._srv.requests)

    def clear(self):
        with self._srv.lock:
            del self._srv.requests[:]

    def stop(self):
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None


# --------------------------------------------------------------------------
# Processes


def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _proc_state(pid):
    stat = _read("/proc/%d/stat" % pid)
    if stat is None:
        return None
    # The command name in parentheses may hold spaces: split after the last ")".
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3].decode()


def alive(pid):
    """True while pid exists and is not a zombie."""
    state = _proc_state(pid)
    return state is not None and state != "Z"


def processes_referring(marker):
    """Live processes (not zombies) whose command line or environment holds
    marker: [{"pid", "comm", "cmdline", "rss_kb"}]."""
    mark = marker.encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        cmdline = _read("/proc/%d/cmdline" % pid) or b""
        environ = _read("/proc/%d/environ" % pid) or b""
        if mark not in cmdline and mark not in environ:
            continue
        if not alive(pid):
            continue
        status = (_read("/proc/%d/status" % pid) or b"").decode("utf-8", "replace")
        rss = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        found.append({
            "pid": pid,
            "comm": (_read("/proc/%d/comm" % pid) or b"").decode().strip(),
            "cmdline": [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a],
            "rss_kb": rss,
        })
    return found


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def terminate(proc, timeout=5):
    """Stops a child started with start_new_session=True: SIGTERM, then,
    if it is still there after timeout seconds, SIGKILL to its process
    group (its own session, so nothing else)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=5)


# --------------------------------------------------------------------------
# The lighttpd configuration


def _q(s):
    """A lighttpd configuration string literal."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# Routing, as Sync Gateway lays it out.  $HTTP["url"] is the decoded path
# without the query string in lighttpd 1.4.69.  No backslashes: _q() would
# double them and lighttpd would hand the regex a literal "\\".
PUBLIC_ROUTES = (
    # (pool, program, URL regex, mode)
    ("session-check", "syncgate-session-check", r"^/[^/]+/_session", "responder"),
    ("oidc", "syncgate-oidc", r"^/[^/]+/_oidc(_challenge)?$", "responder"),
    ("oidc-callback", "syncgate-oidc-callback", r"^/[^/]+/_oidc_callback$", "responder"),
    ("oidc-refresh", "syncgate-oidc-refresh", r"^/[^/]+/_oidc_refresh$", "responder"),
)
ADMIN_ONLY_URL = r"^/[^/]+/_(user|role)(/|$)"
REPLICATION_URL = r"^/[^/]+(/|$)"
ADMIN_URL = r"^/[^/]+/_(user|role|session)"

STATIC_FILE = "small.txt"
STATIC_BYTES = 100


class StackError(Exception):
    pass


class Stack:
    """lighttpd + syncgate programs + backend, in one temporary directory.

    config: the syncgate configuration (dict).  "store" and "logging"
      default to <dir>/store and debug logging to stderr; without
      "databases" the database "db" is configured with defaults.
    programs: {name: path or None} overriding the defaults
      <builddir>/cgi-bin/<name> for the names in PROGRAMS.  A program that
      is None or not an executable file is left out; its URLs answer 404.
    authorizer: True (the syncgate-session-check in programs), a path (e.g.
      noop_authorizer()), or False/None for a plain proxy.  start() raises
      StackError when the authorizer is not an executable file.
    magnet: copy the authorizer's variables into X-Syncgate-* headers with
      the Lua script (default: when there is an authorizer).
    max_procs: processes per FastCGI pool (min-procs is set to the same).
    static_backend: True: the backend is a second lighttpd serving a
      directory with <db>/small.txt (STATIC_BYTES bytes) instead of the echo
      Backend; "front": the front lighttpd serves that directory itself
      after the authorizer, with no proxy hop (the cost of mod_proxy's new
      backend connection per request left out).
    env: extra environment for the programs (bin-environment).
    exec_prefix: argv run in front of every program, e.g. ["valgrind", "-q"].
    extra_conf: text appended to the front lighttpd.conf.
    check_programs: start() raises StackError when a program exits right
      after it started (False lets a test look at lighttpd's 503s).
    ports: fixed ports by name ("public", "admin") instead of free ones.
    start_timeout: seconds to wait for the ports and the programs.
    backend_port: proxy to 127.0.0.1:backend_port, a backend the caller
      runs (e.g. parties.Backend), instead of starting the echo Backend;
      self.backend is then None.
    """

    def __init__(self, config=None, programs=None, authorizer=True, magnet=None, max_procs=1,
                 static_backend=False, env=None, exec_prefix=None, extra_conf="",
                 fastcgi_debug=False, lua=None, start_timeout=15, check_programs=True,
                 ports=None, backend_port=None):
        self.user_config = dict(config or {})
        self.programs = {name: program(name) for name in PROGRAMS}
        self.programs.update(programs or {})
        if authorizer is True:
            authorizer = self.programs.get("syncgate-session-check") or program(
                "syncgate-session-check")
        self.authorizer = authorizer or None
        self.magnet = bool(self.authorizer) if magnet is None else bool(magnet)
        self.max_procs = int(max_procs)
        if static_backend not in (False, None, True, "front"):
            raise ValueError("static_backend: False, True or \"front\"")
        self.static_backend = static_backend or False
        if backend_port is not None and self.static_backend:
            raise ValueError("backend_port and static_backend exclude each other")
        self.backend_port = backend_port
        self.env = dict(env or {})
        self.exec_prefix = list(exec_prefix or [])
        self.extra_conf = extra_conf
        self.fastcgi_debug = fastcgi_debug
        self.lua = lua or lua_script()
        self.start_timeout = start_timeout
        self.check_programs = check_programs
        self.dir = None
        self.ports = {}
        self.fixed_ports = dict(ports or {})
        self.backend = None
        self.config = None
        self._procs = []          # [(name, Popen)]
        self._sockdir = None
        self._started = False

    # -- paths inside the temporary directory
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def config_path(self):
        return self.path("syncgate.json")

    @property
    def conf_path(self):
        return self.path("lighttpd.conf")

    # -- life cycle
    def __enter__(self):
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Write everything and start the servers; returns self."""
        if self._started:
            return self
        if lighttpd_binary() is None:
            raise StackError("lighttpd not found: set LIGHTTPD or install the Debian "
                             "package lighttpd")
        if self.authorizer and not is_executable(self.authorizer):
            # Never fall back to a plain proxy: that would let every request in.
            raise StackError("authorizer %s is not built (authorizer=False for a plain proxy)"
                             % self.authorizer)
        self.dir = tempfile.mkdtemp(prefix="sgtest-", dir=os.environ.get("TMPDIR") or "/tmp")
        _live.append(self)
        self._started = True
        for d in ("store", "log", "run", "htdocs", "upload"):
            os.mkdir(self.path(d))
        # Unix socket paths are limited to 108 bytes; lighttpd adds "-N".
        if len(self.path("s", "user-admin.sock-99")) < 100:
            self._sockdir = self.path("s")
            os.mkdir(self._sockdir)
        else:
            self._sockdir = tempfile.mkdtemp(prefix="sg-", dir="/tmp")
        self._write_config()
        self._write_wrappers()
        if self.static_backend:
            self._write_static()
        elif self.backend_port is None:
            self.backend = Backend()
        last = None
        for _attempt in range(3):
            names = ["public", "admin"] + (["backend"] if self.static_backend is True else [])
            self.ports = dict(zip(names, free_ports(len(names))))
            self.ports.update(self.fixed_ports)
            if self.backend is not None:
                self.ports["backend"] = self.backend.port
            elif self.backend_port is not None:
                self.ports["backend"] = int(self.backend_port)
            try:
                self._start_servers()
                return self
            except StackError as e:
                last = e
                self._stop_servers()
                if "in use" not in str(e):
                    break
        self.stop()
        raise last

    def restart(self):
        """Stop lighttpd and the programs, then start them again with the
        same directory, store and ports."""
        self._stop_servers()
        self._start_servers()

    def stop(self):
        """Stop everything, check nothing is left, remove the directory
        (kept when SG_KEEP is set).  Safe to call more than once."""
        if not self._started:
            return
        try:
            self._stop_servers()
        finally:
            # Only now: a signal in the middle leaves the work to atexit.
            self._started = False
            if self.backend is not None:
                self.backend.stop()
                self.backend = None
            if self in _live:
                _live.remove(self)
            if os.environ.get("SG_KEEP"):
                sys.stderr.write("sgtest: kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                if self._sockdir and not self._sockdir.startswith(self.dir + os.sep):
                    shutil.rmtree(self._sockdir, ignore_errors=True)

    # -- files
    def _write_config(self):
        base = {
            "store": {"path": self.path("store")},
            "logging": {"level": "debug", "syslog": False},
        }
        cfg = _deep_merge(base, self.user_config)
        if "databases" not in cfg:
            cfg["databases"] = {"db": {}}
        self.config = cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def _pools(self):
        """[(pool, program path, mode)] of the FastCGI pools to run."""
        pools = []
        for pool, name, _url, mode in PUBLIC_ROUTES:
            if is_executable(self.programs.get(name)):
                pools.append((pool, self.programs[name], mode))
        if self.authorizer:
            pools.append(("authorizer", self.authorizer, "authorizer"))
        if is_executable(self.programs.get("syncgate-user-admin")):
            pools.append(("user-admin", self.programs["syncgate-user-admin"], "responder"))
        return pools

    def _write_wrappers(self):
        # Each pool starts through a small shell script that records the pid
        # (exec keeps it) and sends the program's stderr to its own log file.
        # exec keeps fd 0, the FastCGI listening socket lighttpd passes.
        for pool, prog, _mode in self._pools():
            argv = self.exec_prefix + [prog]
            text = ("#!/bin/sh\n"
                    "echo $$ > %s.$$.pid\n"
                    "exec 2>>%s\n"
                    "exec %s\n") % (shlex.quote(self.path("run", pool)),
                                    shlex.quote(self.path("log", pool + ".stderr")),
                                    " ".join(shlex.quote(a) for a in argv))
            w = self.path("run", pool + ".sh")
            with open(w, "w") as f:
                f.write(text)
            os.chmod(w, 0o755)

    def _write_static(self):
        os.mkdir(self.path("static"))
        content = ("syncgate static backend file " + "x" * STATIC_BYTES)[:STATIC_BYTES - 1] + "\n"
        for db in set(self.config.get("databases", {})) | {"db"}:
            os.makedirs(self.path("static", db), exist_ok=True)
            with open(self.path("static", db, STATIC_FILE), "w") as f:
                f.write(content)

    def _fastcgi(self, pool, mode):
        env = {"SYNCGATE_CONFIG": self.config_path}
        env.update(self.env)
        opts = [
            ("bin-path", _q(self.path("run", pool + ".sh"))),
            ("socket", _q(os.path.join(self._sockdir, pool + ".sock"))),
            ("check-local", _q("disable")),
            # 1.4.69 starts only min-procs processes (default 1 when set, else
            # max-procs); both are set so that the pool size is exact.
            ("min-procs", str(self.max_procs)),
            ("max-procs", str(self.max_procs)),
            ("bin-environment", "( %s )" % ", ".join(
                "%s => %s" % (_q(k), _q(v)) for k, v in sorted(env.items()))),
        ]
        if mode == "authorizer":
            opts.append(("mode", _q("authorizer")))
        body = ",\n".join("            %s => %s" % (_q(k), v) for k, v in opts)
        return ("        fastcgi.server = ( \"/\" => ( %s => (\n%s\n        ) ) )\n"
                % (_q(pool), body))

    def _lighttpd_conf(self):
        p = self.ports
        modules = ["mod_access"]
        if self.magnet:
            modules.append("mod_magnet")  # before mod_fastcgi and mod_proxy
        modules += ["mod_fastcgi", "mod_proxy"]
        pools = {pool: mode for pool, _prog, mode in self._pools()}
        out = []
        out.append("# Generated by tests/blackbox/sgtest.py.\n")
        out.append("server.modules = ( %s )\n" % ", ".join(_q(m) for m in modules))
        out.append("server.bind = \"127.0.0.1\"\n")
        out.append("server.port = %d\n" % p["public"])
        out.append("server.document-root = %s\n" % _q(self.path("htdocs")))
        out.append("server.errorlog = %s\n" % _q(self.path("log", "lighttpd-error.log")))
        out.append("server.upload-dirs = ( %s )\n" % _q(self.path("upload")))
        out.append("server.tag = \"lighttpd\"\n")
        out.append("mimetype.assign = ( \".txt\" => \"text/plain\" )\n")
        if self.fastcgi_debug:
            out.append("fastcgi.debug = 1\n")
        out.append("\n# Public side (Sync Gateway's 4984).\n")
        out.append("$SERVER[\"socket\"] == \"127.0.0.1:%d\" {\n" % p["public"])
        first = True
        for pool, _name, url, _mode in PUBLIC_ROUTES:
            out.append("    %s$HTTP[\"url\"] =~ %s {\n" % ("" if first else "else ", _q(url)))
            first = False
            if pool in pools:
                out.append(self._fastcgi(pool, "responder"))
            else:
                out.append("        # program not built: 404 from the empty document root\n")
                out.append("        server.document-root = %s\n" % _q(self.path("htdocs")))
            out.append("    }\n")
        out.append("    else $HTTP[\"url\"] =~ %s {\n" % _q(ADMIN_ONLY_URL))
        out.append("        url.access-deny = ( \"\" )  # admin side only\n")
        out.append("    }\n")
        out.append("    else $HTTP[\"url\"] =~ %s {\n" % _q(REPLICATION_URL))
        if "authorizer" in pools:
            out.append(self._fastcgi("authorizer", "authorizer"))
        if self.magnet:
            out.append("        magnet.attract-raw-url-to = ( %s )\n" % _q(self.lua))
        if self.static_backend == "front":
            out.append("        server.document-root = %s\n" % _q(self.path("static")))
        else:
            out.append("        proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", "
                       "\"port\" => %d ) ) )\n" % p["backend"])
        out.append("    }\n")
        out.append("}\n")
        out.append("\n# Admin side (Sync Gateway's 4985), loopback only.\n")
        out.append("$SERVER[\"socket\"] == \"127.0.0.1:%d\" {\n" % p["admin"])
        out.append("    $HTTP[\"url\"] =~ %s {\n" % _q(ADMIN_URL))
        if "user-admin" in pools:
            out.append(self._fastcgi("user-admin", "responder"))
        else:
            out.append("        server.document-root = %s\n" % _q(self.path("htdocs")))
        out.append("    }\n")
        out.append("}\n")
        if self.extra_conf:
            out.append("\n" + self.extra_conf + "\n")
        return "".join(out)

    def _static_conf(self):
        return "".join([
            "# Generated by tests/blackbox/sgtest.py: the static backend.\n",
            "server.modules = ( )\n",
            "server.bind = \"127.0.0.1\"\n",
            "server.port = %d\n" % self.ports["backend"],
            "server.document-root = %s\n" % _q(self.path("static")),
            "server.errorlog = %s\n" % _q(self.path("log", "static-error.log")),
            "server.tag = \"lighttpd\"\n",
            "mimetype.assign = ( \".txt\" => \"text/plain\" )\n",
        ])

    # -- servers
    def _spawn(self, name, conf_text, conf_file, ports):
        with open(conf_file, "w") as f:
            f.write(conf_text)
        errfile = open(self.path("log", name + ".stderr"), "ab")
        try:
            proc = subprocess.Popen(
                [lighttpd_binary(), "-D", "-f", conf_file],
                stdin=subprocess.DEVNULL, stdout=errfile, stderr=errfile,
                start_new_session=True, close_fds=True)
        finally:
            errfile.close()
        self._procs.append((name, proc))
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.poll() is not None:
                raise StackError("%s exited with status %s at start:\n%s"
                                 % (name, proc.returncode, self.logs()))
            if all(port_open(port) for port in ports):
                return
            if time.monotonic() > deadline:
                raise StackError("%s did not open ports %s in %ss:\n%s"
                                 % (name, ports, self.start_timeout, self.logs()))
            time.sleep(0.05)

    def _start_servers(self):
        if self.static_backend is True:
            self._spawn("static-lighttpd", self._static_conf(), self.path("static.conf"),
                        [self.ports["backend"]])
        self._spawn("lighttpd", self._lighttpd_conf(), self.conf_path,
                    [self.ports["public"], self.ports["admin"]])
        self._wait_programs()

    def _wait_programs(self):
        # lighttpd listens before its FastCGI children are through their
        # wrapper: wait until every one has exec'd its program (or died), so
        # that processes() sees the programs and not the shell.
        pools = [pool for pool, _prog, _mode in self._pools()]
        expected = len(pools) * self.max_procs
        wrappers = [self.path("run", pool + ".sh").encode() for pool in pools]
        deadline = time.monotonic() + self.start_timeout
        while True:
            pids = self._pidfile_pids()
            pending = [pid for pid in pids if alive(pid)
                       and any(w in (_read("/proc/%d/cmdline" % pid) or b"") for w in wrappers)]
            if len(pids) >= expected and not pending:
                break
            if time.monotonic() > deadline:
                raise StackError("%d of %d FastCGI processes started in %ss:\n%s"
                                 % (len(pids) - len(pending), expected, self.start_timeout,
                                    self.logs()))
            time.sleep(0.02)
        if not self.check_programs:
            return
        # A program that cannot start (bad configuration) exits right after
        # exec; lighttpd would answer 503 and respawn it.  Say so now.
        time.sleep(0.1)
        dead = [pid for pid in self._pidfile_pids() if not alive(pid)]
        if dead:
            raise StackError("a FastCGI program exited at start (pids %s):\n%s"
                             % (dead, self.logs()))

    def _pidfile_pids(self):
        pids = []
        for f in os.listdir(self.path("run")):
            if f.endswith(".pid"):
                txt = _read(self.path("run", f), "r")
                if txt and txt.strip().isdigit():
                    pids.append(int(txt.strip()))
        return pids

    def _stop_servers(self):
        procs, self._procs = self._procs, []
        # lighttpd stops its FastCGI children itself on SIGTERM.
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # Still there, so its process group (lighttpd and the
                # programs, by start_new_session) is still its own.
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Programs still running (lighttpd killed, or one that ignored
        # SIGTERM), by pid file and by the directory named in their
        # command line or environment (SYNCGATE_CONFIG).
        marker = self.dir + os.sep
        for pid in self._pidfile_pids():
            env = _read("/proc/%d/environ" % pid) or b""
            if marker.encode() in env:
                _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:
            left = processes_referring(marker)
            if not left:
                break
            for p in left:
                _kill(p["pid"], signal.SIGKILL)
            if time.monotonic() > deadline:
                sys.stderr.write("sgtest: processes left: %r\n" % left)
                break
            time.sleep(0.05)
        for f in os.listdir(self.path("run")):
            if f.endswith(".pid"):
                os.unlink(self.path("run", f))

    # -- looking at it
    def processes(self):
        """The live processes of this stack (lighttpd and the programs):
        [{"pid", "comm", "cmdline", "rss_kb"}]."""
        if not self.dir:
            return []
        return processes_referring(self.dir + os.sep)

    def lighttpd_pid(self):
        for name, proc in self._procs:
            if name == "lighttpd":
                return proc.pid
        return None

    def log_files(self):
        d = self.path("log")
        return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []

    def logs(self):
        """The text of every log: lighttpd's error log and stderr, and each
        program pool's stderr, each after a "==> name <==" line."""
        parts = []
        for f in self.log_files():
            parts.append("==> %s <==\n" % os.path.basename(f))
            parts.append((_read(f) or b"").decode("utf-8", "replace"))
        return "".join(parts)

    def port(self, which="public"):
        return which if isinstance(which, int) else self.ports[which]

    def url(self, path="/", port="public"):
        return "http://127.0.0.1:%d%s" % (self.port(port), path)

    def request(self, method, path, port="public", **kw):
        """http_request() against this stack; port is "public", "admin",
        "backend" or a number."""
        return http_request(self.port(port), method, path, **kw)


_live = []


@atexit.register
def _stop_all():
    for st in list(_live):
        try:
            st.stop()
        except Exception:  # keep stopping the others
            traceback.print_exc()
