"""deploy: run the shipped web-server examples of httpd-examples/, black-box.

A Deployment starts lighttpd or Apache with the configuration files of
httpd-examples/ exactly as they are shipped: the only file written for the
test is the small top-level server configuration around them (paths in a
temporary directory, free loopback ports instead of 4984 and 4985, the
built programs instead of the installed ones), which sets the examples'
own variables (lighttpd var.syncgate_*, Apache Define) and includes them.
Behind the front runs sgtest.Backend, the echo backend that reports the
X-Syncgate-* headers it received, or any replication server the caller
runs on a loopback port (backend_port).

Apache does not start FastCGI programs for mod_authnz_fcgi, so for Apache
every program runs under spawn-fcgi on a loopback port of its own, as the
example's header says a host would run them.  lighttpd starts them itself.

Python 3 standard library only.  Everything listens on 127.0.0.1, lives in
one temporary directory and is stopped at stop(), at the end of a "with"
block, or at exit; stop() then kills whatever still refers to that
directory (spawn-fcgi's children included), so no process is left behind.

Environment, besides sgtest's (top_builddir, top_srcdir, LIGHTTPD, SG_KEEP):
  APACHE2         the apache2 binary (default /usr/sbin/apache2)
  APACHE_MODULES  Apache's module directory (default /usr/lib/apache2/modules)
  SPAWN_FCGI      the spawn-fcgi binary (default: from PATH)
  OPENSSL         the openssl binary (default: from PATH), for the TLS
                  variants' self-signed certificate
"""

import atexit
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
import sgtest  # noqa: E402

SERVERS = ("lighttpd", "apache")

# The programs Apache needs, each on the port its Define names.
APACHE_PROGRAMS = (
    ("SYNCGATE_SESSION_CHECK_PORT", "syncgate-session-check"),
    ("SYNCGATE_OIDC_PORT", "syncgate-oidc"),
    ("SYNCGATE_OIDC_CALLBACK_PORT", "syncgate-oidc-callback"),
    ("SYNCGATE_OIDC_REFRESH_PORT", "syncgate-oidc-refresh"),
    ("SYNCGATE_USER_ADMIN_PORT", "syncgate-user-admin"),
)

# The modules syncgate.conf uses; mpm_event so that a long replication
# request does not hold the only worker, as it would with "apache2 -X".
APACHE_MODULES = ("mpm_event", "authn_core", "authz_core", "authz_host", "authz_user", "headers",
                  "proxy", "proxy_http", "proxy_fcgi", "authnz_fcgi")

# lighttpd's FastCGI pools in syncgate.conf: the session check twice (as
# responder and as authorizer), each other program once.
LIGHTTPD_POOLS = 6


def examples_dir(server):
    """The shipped example directory for server ("lighttpd" or "apache")."""
    sub = "lighttpd" if server == "lighttpd" else "apache2"
    return os.path.join(sgtest.srcdir(), "httpd-examples", sub)


def _binary(env_name, *candidates):
    for cand in (os.environ.get(env_name),) + candidates:
        if not cand:
            continue
        path = cand if os.sep in cand else shutil.which(cand)
        if path and os.access(path, os.X_OK):
            return path
    return None


def apache_binary():
    return _binary("APACHE2", "/usr/sbin/apache2", "apache2")


def apache_modules_dir():
    return os.environ.get("APACHE_MODULES") or "/usr/lib/apache2/modules"


def spawn_fcgi_binary():
    return _binary("SPAWN_FCGI", "spawn-fcgi", "/usr/bin/spawn-fcgi")


def openssl_binary():
    return _binary("OPENSSL", "openssl", "/usr/bin/openssl")


def missing(server="lighttpd", tls=False):
    """What a Deployment(server, tls) lacks on this machine: a list of
    short descriptions, empty when it can run."""
    out = []
    if server == "lighttpd":
        if sgtest.lighttpd_binary() is None:
            out.append("lighttpd (Debian package lighttpd)")
        elif not os.path.exists("/usr/lib/lighttpd/mod_magnet.so"):
            out.append("mod_magnet (Debian package lighttpd-modules-lua)")
        if tls and not os.path.exists("/usr/lib/lighttpd/mod_openssl.so"):
            out.append("mod_openssl (Debian package lighttpd-mod-openssl)")
    elif server == "apache":
        if apache_binary() is None:
            out.append("apache2 (Debian package apache2)")
        mods = APACHE_MODULES + (("ssl",) if tls else ())
        for m in mods:
            if not os.path.exists(os.path.join(apache_modules_dir(), "mod_%s.so" % m)):
                out.append("Apache module mod_%s" % m)
        if spawn_fcgi_binary() is None:
            out.append("spawn-fcgi (Debian package spawn-fcgi)")
    else:
        out.append("server %r (one of %s)" % (server, ", ".join(SERVERS)))
    if tls and openssl_binary() is None:
        out.append("openssl (Debian package openssl)")
    for name in sgtest.PROGRAMS:
        if not sgtest.is_executable(sgtest.program(name)):
            out.append("built program %s" % sgtest.program(name))
    return out


class DeploymentError(Exception):
    pass


def _q(s):
    return sgtest._q(s)


def _apache_value(s):
    """An Apache configuration argument in double quotes."""
    s = str(s)
    if '"' in s or "\\" in s or "\n" in s:
        raise DeploymentError("unusable in an Apache configuration: %r" % s)
    return '"%s"' % s


_live = []


class Deployment:
    """A shipped example configuration, running, with syncgate behind it.

    server: "lighttpd" or "apache".
    tls: the TLS variant (syncgate-tls.conf): the public side speaks HTTPS
      with a self-signed certificate for 127.0.0.1 made at start
      (cert_file, which ssl_context() trusts); the admin side stays HTTP.
    config: the syncgate configuration (dict), or a function taking the
      Deployment and returning it, called once the ports are known (so
      that a callback_url can name url("/db/_oidc_callback")).  "store"
      and "logging" default to <dir>/store and debug logging to stderr;
      without "databases" the database "db" is configured; every database
      whose session_cookie_secure is not given gets it equal to tls.
    backend_port: a replication server already listening on
      127.0.0.1:backend_port to proxy to; None starts sgtest.Backend
      (the echo backend, as .backend).
    ports: fixed ports by name ("public", "admin") instead of free ones.
    procs: processes per program (lighttpd pools; spawn-fcgi -F for
      Apache).
    env: extra environment for the web server and the programs.
    """

    def __init__(self, server="lighttpd", tls=False, config=None, backend_port=None, ports=None,
                 procs=1, env=None, start_timeout=20):
        if server not in SERVERS:
            raise ValueError("server: one of %s" % ", ".join(SERVERS))
        self.server = server
        self.tls = bool(tls)
        self.user_config = config if callable(config) else dict(config or {})
        self.backend_port = backend_port
        self.fixed_ports = dict(ports or {})
        self.procs = int(procs)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.programs = {name: sgtest.program(name) for name in sgtest.PROGRAMS}
        self.dir = None
        self.ports = {}
        self.backend = None
        self.config = None
        self.cert_file = None
        self.key_file = None
        self._procs = []          # [(name, Popen)] started here, in order
        self._pidfiles = []       # spawn-fcgi -P files (procs > 1)
        self._sockdir = None
        self._context = None
        self._started = False

    # -- paths
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def config_path(self):
        """The syncgate.json the programs read."""
        return self.path("syncgate.json")

    @property
    def conf_path(self):
        """The top-level server configuration written around the example."""
        return self.path("lighttpd.conf" if self.server == "lighttpd" else "apache2.conf")

    @property
    def example(self):
        """The shipped file that the server includes."""
        name = "syncgate-tls.conf" if self.tls else "syncgate.conf"
        return os.path.join(examples_dir(self.server), name)

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    # -- life cycle
    def __enter__(self):
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        """Write everything and start the servers; returns self.  Raises
        DeploymentError (with the logs) when something does not start."""
        if self._started:
            return self
        lack = missing(self.server, self.tls)
        if lack:
            raise DeploymentError("missing: %s" % ", ".join(lack))
        self.dir = tempfile.mkdtemp(prefix="sgdeploy-", dir=os.environ.get("TMPDIR") or "/tmp")
        _live.append(self)
        self._started = True
        for d in ("store", "log", "run", "htdocs", "upload"):
            os.mkdir(self.path(d))
        # Apache's workers run as another user when this runs as root, and
        # look up the document root for the requests the programs answer.
        os.chmod(self.dir, 0o711)
        os.chmod(self.path("htdocs"), 0o755)
        # Unix socket paths are limited to 108 bytes; lighttpd adds "-N".
        if len(self.path("s", "syncgate-oidc-callback.sock-99")) < 100:
            self._sockdir = self.path("s")
            os.mkdir(self._sockdir)
        else:
            self._sockdir = tempfile.mkdtemp(prefix="sgd-", dir="/tmp")
        if self.tls:
            self._make_cert()
        if self.backend_port is None:
            self.backend = sgtest.Backend()
        last = None
        for _attempt in range(3):
            self._choose_ports()
            self._write_config()
            try:
                if self.server == "apache":
                    self._start_apache()
                else:
                    self._start_lighttpd()
                return self
            except DeploymentError as e:
                last = e
                self._stop_processes()
                if "in use" not in str(e):
                    break
        self.stop()
        raise last

    def _choose_ports(self):
        names = ["public", "admin"]
        if self.server == "apache":
            names += [prog for _define, prog in APACHE_PROGRAMS]
        self.ports = dict(zip(names, sgtest.free_ports(len(names))))
        self.ports.update(self.fixed_ports)
        self.ports["backend"] = self.backend.port if self.backend else int(self.backend_port)

    def stop(self):
        """Stop everything, check nothing is left, remove the directory
        (kept when SG_KEEP is set).  Safe to call more than once."""
        if not self._started:
            return
        try:
            self._stop_processes()
        finally:
            self._started = False
            if self.backend is not None:
                self.backend.stop()
                self.backend = None
            if self in _live:
                _live.remove(self)
            if os.environ.get("SG_KEEP"):
                sys.stderr.write("deploy: kept %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                if self._sockdir and not self._sockdir.startswith(self.dir + os.sep):
                    shutil.rmtree(self._sockdir, ignore_errors=True)

    # -- files
    def _write_config(self):
        user = self.user_config(self) if callable(self.user_config) else self.user_config
        base = {
            "store": {"path": self.path("store")},
            "logging": {"level": "debug", "syslog": False},
        }
        cfg = sgtest._deep_merge(base, user or {})
        if "databases" not in cfg:
            cfg["databases"] = {"db": {}}
        for db in cfg["databases"].values():
            if isinstance(db, dict):
                db.setdefault("session_cookie_secure", self.tls)
        self.config = cfg
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def _make_cert(self):
        self.cert_file = self.path("tls-cert.pem")
        self.key_file = self.path("tls-key.pem")
        argv = [openssl_binary(), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", self.key_file, "-out", self.cert_file]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode != 0:
            raise DeploymentError("openssl could not make a certificate:\n%s"
                                  % proc.stdout.decode("utf-8", "replace"))
        os.chmod(self.key_file, 0o600)

    def _program_env(self):
        env = dict(os.environ)
        env["SYNCGATE_CONFIG"] = self.config_path
        env.update(self.env)
        return env

    # -- lighttpd
    def _lighttpd_conf(self):
        ex = examples_dir("lighttpd")
        p = self.ports
        settings = [
            ("syncgate_public_socket", _q("127.0.0.1:%d" % p["public"])),
            ("syncgate_admin_socket", _q("127.0.0.1:%d" % p["admin"])),
            ("syncgate_backend_host", _q("127.0.0.1")),
            ("syncgate_backend_port", str(p["backend"])),
            ("syncgate_libexec", _q(os.path.join(sgtest.builddir(), "cgi-bin"))),
            ("syncgate_config", _q(self.config_path)),
            ("syncgate_headers_lua", _q(os.path.join(ex, "syncgate-headers.lua"))),
            ("syncgate_socket_dir", _q(self._sockdir)),
            ("syncgate_check_procs", str(self.procs)),
            ("syncgate_procs", str(self.procs)),
            ("syncgate_conf_dir", _q(ex)),
        ]
        if self.tls:
            settings += [("syncgate_tls_pemfile", _q(self.cert_file)),
                         ("syncgate_tls_privkey", _q(self.key_file))]
        out = [
            "# Written by tests/blackbox/deploy.py: the host around the shipped example.\n",
            "server.document-root = %s\n" % _q(self.path("htdocs")),
            "server.errorlog = %s\n" % _q(self.path("log", "lighttpd-error.log")),
            "server.upload-dirs = ( %s )\n" % _q(self.path("upload")),
            "server.bind = \"127.0.0.1\"\n",
            "server.port = %d\n" % p["public"],
            "server.tag = \"lighttpd\"\n",
            "include %s\n" % _q(os.path.join(ex, "syncgate-settings.conf")),
        ]
        out += ["var.%s := %s\n" % kv for kv in settings]
        out.append("include %s\n" % _q(self.example))
        return "".join(out)

    def _start_lighttpd(self):
        with open(self.conf_path, "w") as f:
            f.write(self._lighttpd_conf())
        self._spawn("lighttpd", [sgtest.lighttpd_binary(), "-D", "-f", self.conf_path],
                    self.path("log", "lighttpd.stderr"))
        self._wait_ports("lighttpd", ["public", "admin"])
        self._wait_lighttpd_programs()

    def _program_pids(self):
        paths = {self.programs[n].encode() for n in sgtest.PROGRAMS}
        pids = []
        for p in sgtest.processes_referring(self.dir + os.sep):
            cmd = (sgtest._read("/proc/%d/cmdline" % p["pid"]) or b"").split(b"\0")[0]
            if cmd in paths:
                pids.append(p["pid"])
        return pids

    def _wait_lighttpd_programs(self):
        # lighttpd listens before its FastCGI children have started: wait
        # for every one, then make sure none exited at once (a program
        # that refuses its configuration does, and lighttpd answers 503).
        expected = LIGHTTPD_POOLS * self.procs
        deadline = time.monotonic() + self.start_timeout
        while len(self._program_pids()) < expected:
            if time.monotonic() > deadline:
                raise DeploymentError("%d of %d FastCGI processes started in %ss:\n%s"
                                      % (len(self._program_pids()), expected, self.start_timeout,
                                         self.logs()))
            self._check_alive()
            time.sleep(0.02)
        time.sleep(0.1)
        if len(self._program_pids()) < expected:
            raise DeploymentError("a FastCGI program exited at start:\n%s" % self.logs())

    # -- Apache
    def _apache_conf(self):
        mods = APACHE_MODULES + (("ssl",) if self.tls else ())
        p = self.ports
        defines = [
            ("SYNCGATE_PUBLIC_ADDR", "127.0.0.1"),
            ("SYNCGATE_PUBLIC_PORT", p["public"]),
            ("SYNCGATE_ADMIN_PORT", p["admin"]),
            ("SYNCGATE_BACKEND", "http://127.0.0.1:%d" % p["backend"]),
            ("SYNCGATE_FCGI_HOST", "127.0.0.1"),
        ]
        defines += [(define, p[prog]) for define, prog in APACHE_PROGRAMS]
        if self.tls:
            defines += [("SYNCGATE_TLS_CERT", self.cert_file),
                        ("SYNCGATE_TLS_KEY", self.key_file),
                        ("SYNCGATE_CONF_DIR", examples_dir("apache"))]
        out = [
            "# Written by tests/blackbox/deploy.py: the host around the shipped example.\n",
            "ServerRoot %s\n" % _apache_value(self.dir),
            "DefaultRuntimeDir %s\n" % _apache_value(self.path("run")),
            "PidFile %s\n" % _apache_value(self.path("run", "apache2.pid")),
            "ErrorLog %s\n" % _apache_value(self.path("log", "apache-error.log")),
            "LogLevel %s\n" % (os.environ.get("SG_APACHE_LOGLEVEL") or "warn"),
            "ServerName 127.0.0.1\n",
            "DocumentRoot %s\n" % _apache_value(self.path("htdocs")),
            # As Debian's apache2.conf: nothing on disk is served unless a
            # section allows it, and no .htaccess is read.
            "<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n",
            # A small event MPM: one child to start, room for long requests.
            "StartServers 1\nServerLimit 2\nThreadsPerChild 16\nMaxRequestWorkers 32\n",
            "MinSpareThreads 4\nMaxSpareThreads 32\n",
        ]
        # As root Apache must hand its workers to another user; it only
        # talks TCP to the programs and the backend, so any user will do.
        if os.geteuid() == 0:
            out.append("User www-data\nGroup www-data\n")
        for m in mods:
            out.append("LoadModule %s_module %s\n"
                       % (m, _apache_value(os.path.join(apache_modules_dir(), "mod_%s.so" % m))))
        out.append('LogFormat "%h %u \\"%r\\" %>s %b" syncgate\n')
        out.append("CustomLog %s syncgate\n" % _apache_value(self.path("log", "apache-access.log")))
        for name, value in defines:
            out.append("Define %s %s\n" % (name, _apache_value(value)))
        out.append("Include %s\n" % _apache_value(self.example))
        return "".join(out)

    def _start_spawn_fcgi(self):
        env = self._program_env()
        for _define, prog in APACHE_PROGRAMS:
            argv = [spawn_fcgi_binary(), "-a", "127.0.0.1", "-p", str(self.ports[prog])]
            if self.procs == 1:
                # No fork: spawn-fcgi binds the port and becomes the
                # program, a child of this process that stop() can wait for.
                argv.append("-n")
            else:
                pidfile = self.path("run", prog + ".pids")
                self._pidfiles.append(pidfile)
                argv += ["-F", str(self.procs), "-P", pidfile]
            argv += ["--", self.programs[prog]]
            proc = self._spawn(prog, argv, self.path("log", prog + ".stderr"), env=env)
            if self.procs > 1:
                # spawn-fcgi forks the children, writes their pids and exits.
                try:
                    rc = proc.wait(timeout=self.start_timeout)
                except subprocess.TimeoutExpired:
                    rc = None
                self._procs.remove((prog, proc))
                if rc != 0:
                    raise DeploymentError("spawn-fcgi for %s failed (%s):\n%s"
                                          % (prog, rc, self.logs()))
        for _define, prog in APACHE_PROGRAMS:
            self._wait_ports(prog, [prog])
        # A program that refuses its configuration exits right after exec.
        time.sleep(0.1)
        self._check_alive()
        if self.procs > 1 and len(self._program_pids()) < len(APACHE_PROGRAMS) * self.procs:
            raise DeploymentError("a FastCGI program exited at start:\n%s" % self.logs())

    def _start_apache(self):
        self._start_spawn_fcgi()
        with open(self.conf_path, "w") as f:
            f.write(self._apache_conf())
        self._spawn("apache2", [apache_binary(), "-f", self.conf_path, "-DFOREGROUND"],
                    self.path("log", "apache2.stderr"))
        self._wait_ports("apache2", ["public", "admin"])

    # -- processes
    def _spawn(self, name, argv, logfile, env=None):
        errfile = open(logfile, "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errfile,
                                    stderr=errfile, env=env or self._program_env(),
                                    start_new_session=True, close_fds=True)
        finally:
            errfile.close()
        self._procs.append((name, proc))
        return proc

    def _check_alive(self):
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise DeploymentError("%s exited with status %s at start:\n%s"
                                      % (name, proc.returncode, self.logs()))

    def _wait_ports(self, name, which):
        deadline = time.monotonic() + self.start_timeout
        while not all(sgtest.port_open(self.ports[w]) for w in which):
            self._check_alive()
            if time.monotonic() > deadline:
                raise DeploymentError("%s did not open ports %s in %ss:\n%s"
                                      % (name, [self.ports[w] for w in which],
                                         self.start_timeout, self.logs()))
            time.sleep(0.05)

    def _stop_processes(self):
        procs, self._procs = self._procs, []
        # The web server first (lighttpd stops its FastCGI children itself),
        # then the programs spawn-fcgi started.
        for _name, proc in reversed(procs):
            sgtest.terminate(proc, timeout=10)
        for pidfile in self._pidfiles:
            for line in (sgtest._read(pidfile, "r") or "").split():
                if line.isdigit():
                    sgtest._kill(int(line), signal.SIGTERM)
        self._pidfiles = []
        # Whatever still refers to the directory (a program that ignored
        # SIGTERM, an Apache worker, a forked spawn-fcgi child).
        marker = self.dir + os.sep
        deadline = time.monotonic() + 5
        sig = signal.SIGTERM
        while True:
            left = sgtest.processes_referring(marker)
            if not left:
                break
            for p in left:
                sgtest._kill(p["pid"], sig)
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    sys.stderr.write("deploy: processes left: %r\n" % left)
                    break
                sig, deadline = signal.SIGKILL, time.monotonic() + 5
            time.sleep(0.05)

    # -- looking at it
    def processes(self):
        """The live processes of this deployment: [{"pid", "comm",
        "cmdline", "rss_kb"}]."""
        if not self.dir:
            return []
        return sgtest.processes_referring(self.dir + os.sep)

    def server_pid(self):
        for name, proc in self._procs:
            if name in ("lighttpd", "apache2"):
                return proc.pid
        return None

    def log_files(self):
        d = self.path("log")
        return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []

    def logs(self):
        """The text of every log (the server's error log and stderr, the
        programs' stderr), each after a "==> name <==" line."""
        parts = []
        for f in self.log_files():
            parts.append("==> %s <==\n" % os.path.basename(f))
            parts.append((sgtest._read(f) or b"").decode("utf-8", "replace"))
        return "".join(parts)

    def ssl_context(self):
        """An SSLContext that trusts this deployment's certificate (TLS
        variant), None otherwise."""
        if not self.tls:
            return None
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.cert_file)
        return self._context

    def port(self, which="public"):
        return which if isinstance(which, int) else self.ports[which]

    def url(self, path="/", port="public"):
        """The URL of path on the public side (https in the TLS variant),
        the admin side or the backend."""
        scheme = self.scheme if port == "public" else "http"
        return "%s://127.0.0.1:%d%s" % (scheme, self.port(port), path)

    def request(self, method, path, port="public", **kw):
        """sgtest.http_request() against this deployment: port is
        "public" (HTTPS in the TLS variant), "admin", "backend" or a
        number."""
        if port == "public" and self.tls:
            kw.setdefault("context", self.ssl_context())
        return sgtest.http_request(self.port(port), method, path, **kw)


@atexit.register
def _stop_all():
    for dep in list(_live):
        try:
            dep.stop()
        except Exception:  # keep stopping the others
            traceback.print_exc()
