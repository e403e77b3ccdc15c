#!/usr/bin/env python3
"""check_installed: the .deb installed on this machine, black-box (TAP).

Run as root on a Debian 12 machine (CI), after check-packages.sh has left
syncgate_<version>_<arch>.deb in $SG_PACKAGES_DIR (default:
$top_builddir/packages).  It:

  - purges syncgate first if an earlier run left it installed, so that it
    can run again and again;
  - installs the .deb with dpkg -i (apt-get -f install only when dpkg
    reports missing dependencies) and checks the installed paths, their
    owners and modes, and the conffiles;
  - writes a test configuration into the installed /etc/syncgate/
    syncgate.json (database "db", GUEST disabled, admin API trusted from
    loopback only), keeping the file's owner and mode;
  - starts the installed programs as the installed systemd units say
    (ExecStart, Environment, User, Group, ListenStream), with spawn-fcgi
    in systemd's place: like a socket unit with StandardInput=socket, it
    hands the program the listening socket as standard input;
  - enables the modules the packaged Apache configuration names (a2enmod)
    and the configuration itself (a2enconf syncgate), checks that Debian's
    whole Apache configuration accepts it (apache2ctl configtest), and
    runs Debian's apache2 in the foreground from /etc/apache2, with a copy
    of Debian's apache2.conf that leaves out ports.conf and sites-enabled
    (the default site's port 80 on every address) and sets two of the
    configuration's Defines: the public side on 127.0.0.1 and the
    backend, an express-pouchdb server started here;
  - through Apache on 4984 and 4985: a user made through the admin API, a
    session from POST /db/_session, a PouchDB push and pull with its
    cookie, 401 without credentials;
  - stops everything, runs dpkg --purge syncgate, and checks that nothing
    of syncgate is left: no file the package installed, no file with
    "syncgate" in its name under /etc, /var, /opt, /srv and /usr/local
    (the store, the configuration directory, a2enconf's link and state,
    systemd's enablement links), no process, no listening port; Apache's
    modules are put back as they were.

Policy lets the record of the installation stay (dpkg's and apt's logs
under /var/log, which this test does not look at); the web server's user
www-data is Debian's (base-passwd), not the package's, and stays.  Files
an administrator adds to /etc/syncgate would stay too (postrm removes the
directory only when empty); this test adds none.

Environment: top_srcdir, top_builddir (as for the black-box tests),
SG_PACKAGES_DIR, SG_DEB (the .deb itself), SG_PARTIES_NODE_MODULES.
"""

import glob
import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "blackbox"))
import deploy  # noqa: E402
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, ok  # noqa: E402

sgtest.timeout(900)

PACKAGE = "syncgate"
LIBEXEC = "/usr/libexec/syncgate"
CONFIG = "/etc/syncgate/syncgate.json"
STORE = "/var/lib/syncgate"
CONF_AVAILABLE = "/etc/apache2/conf-available/syncgate.conf"
CONF_ENABLED = "/etc/apache2/conf-enabled/syncgate.conf"
UNIT_DIR = "/lib/systemd/system"
APACHE_ROOT = "/etc/apache2"
PUBLIC_PORT = 4984
ADMIN_PORT = 4985
PASSWORD = "alice-Secret-42"
COOKIE = "SyncGatewaySession"
# Where a file with "syncgate" in its name could be left by the package or
# its maintainer scripts besides the files it lists (dpkg -L).  Logs are
# allowed to keep the record of the installation.
LEFTOVER_ROOTS = ("/etc", "/var", "/opt", "/srv", "/usr/local")
LEFTOVER_PRUNE = ("/var/tmp", "/var/log", "/var/cache/apt")


def run(argv, env=None, timeout=300):
    """Runs argv; returns (exit status, output with stderr)."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def show(text, limit=40):
    lines = text.rstrip().splitlines()
    for line in lines[-limit:]:
        diag("  " + line)


def package_status():
    """dpkg's status word for the package ("installed", "config-files"...),
    or None when dpkg does not know it."""
    rc, out = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE])
    return out.strip() if rc == 0 and out.strip() not in ("", "not-installed") else None


def purge(label):
    """dpkg --purge the package; returns (exit status, output)."""
    rc, out = run(["dpkg", "--purge", PACKAGE])
    if rc != 0:
        diag("%s: dpkg --purge %s failed:" % (label, PACKAGE))
        show(out)
    return rc, out


def find_deb():
    if os.environ.get("SG_DEB"):
        return os.environ["SG_DEB"]
    where = os.environ.get("SG_PACKAGES_DIR") or os.path.join(sgtest.builddir(), "packages")
    _rc, arch = run(["dpkg", "--print-architecture"])
    debs = sorted(glob.glob(os.path.join(where, "%s_*_%s.deb" % (PACKAGE, arch.strip()))),
                  key=os.path.getmtime)
    return debs[-1] if debs else None


def named_files():
    """Every path with "syncgate" in its name under LEFTOVER_ROOTS."""
    argv = ["find"] + [r for r in LEFTOVER_ROOTS if os.path.isdir(r)] + ["-xdev", "("]
    for i, p in enumerate(LEFTOVER_PRUNE):
        argv += (["-o"] if i else []) + ["-path", p]
    argv += [")", "-prune", "-o", "-name", "*syncgate*", "-print"]
    _rc, out = run(argv)
    return set(out.split("\n")) - {""}


def owner(path):
    st = os.lstat(path)
    return "%s:%s %04o" % (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
                           stat.S_IMODE(st.st_mode))


def enabled(kind):
    """The names enabled in mods-enabled ("mod", by their .load) or
    conf-enabled ("conf")."""
    if kind == "mod":
        pattern, suffix = os.path.join(APACHE_ROOT, "mods-enabled", "*.load"), ".load"
    else:
        pattern, suffix = os.path.join(APACHE_ROOT, "conf-enabled", "*.conf"), ".conf"
    return set(os.path.basename(p)[:-len(suffix)] for p in glob.glob(pattern))


def a2_state():
    """a2enmod's and a2enconf's memory of who enabled and disabled what:
    /var/lib/apache2/*/*_by_*/ and the files in them."""
    return set(glob.glob("/var/lib/apache2/*/*_by_*") + glob.glob("/var/lib/apache2/*/*_by_*/*"))


def unit(path):
    """The settings of a systemd unit file: {key: [values]}."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def listening(port):
    return sgtest.port_open(port)


def uid_of(pid):
    for line in (sgtest._read("/proc/%d/status" % pid) or b"").decode().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


class Run:
    """The processes this test starts (programs, Apache): each gets the
    marker (the test's directory) in its environment, so that whatever is
    left of them, forked children included, can be found and stopped."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def env(self, **more):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "SG_INSTALLED_RUN": self.tmp}
        env.update(more)
        return env

    def spawn(self, name, argv, env):
        log = open(os.path.join(self.tmp, "log", name + ".stderr"), "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                 start_new_session=True, close_fds=True)
        finally:
            log.close()
        self.procs.append((name, p))
        return p

    def logs(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.tmp, "log", "*"))):
            out.append("==> %s <==" % os.path.basename(f))
            out.append((sgtest._read(f) or b"").decode("utf-8", "replace").rstrip())
        return "\n".join(out)

    def left(self):
        return sgtest.processes_referring(self.tmp)

    def stop(self):
        procs, self.procs = self.procs, []
        for _name, p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sgtest._killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        deadline, sig = time.monotonic() + 5, signal.SIGTERM
        while self.left():
            for q in self.left():
                sgtest._kill(q["pid"], sig)
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    break
                deadline, sig = time.monotonic() + 5, signal.SIGKILL
            time.sleep(0.05)


def wait_ports(run_, ports, timeout=20):
    deadline = time.monotonic() + timeout
    while not all(listening(p) for p in ports):
        dead = [n for n, p in run_.procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def apache_conf(tmp, defines):
    """Debian's apache2.conf, without the default listener and site, with
    defines (name, value) set first."""
    with open(os.path.join(APACHE_ROOT, "apache2.conf")) as f:
        text = f.read()
    kept = []
    for line in text.splitlines():
        s = line.strip()
        if s == "Include ports.conf" or s.startswith("IncludeOptional sites-enabled/"):
            kept.append("# left out by check_installed.py: " + s)
        else:
            kept.append(line)
    head = ["# Debian's apache2.conf, as check_installed.py runs it.", "ServerName 127.0.0.1"]
    head += ['Define %s "%s"' % kv for kv in defines]
    path = os.path.join(tmp, "apache2.conf")
    with open(path, "w") as f:
        f.write("\n".join(head + kept) + "\n")
    return path


def spec(auth, mode, docs=None):
    return {"remote": "http://127.0.0.1:%d/db" % PUBLIC_PORT, "auth": auth, "mode": mode,
            "docs": docs or [], "timeout_ms": 60000}


def replication_checks(backend):
    def admin(method, path, body=None):
        return sgtest.http_request(ADMIN_PORT, method, path, body=body)

    def public(method, path, **kw):
        return sgtest.http_request(PUBLIC_PORT, method, path, **kw)

    r = public("GET", "/db/")
    is_(r.status, 401, "GET /db/ without credentials: 401 from the installed session check")
    ok("www-authenticate" in r.headers, "... with WWW-Authenticate")
    is_(admin("PUT", "/db/_user/alice", {"password": PASSWORD, "admin_channels": ["a"]}).status,
        201, "PUT /db/_user/alice on the admin port (127.0.0.1:%d): 201" % ADMIN_PORT)
    is_(public("GET", "/db/_user/alice").status, 403,
        "the admin API is refused on the public port (403)")
    r = public("POST", "/db/_session", body={"name": "alice", "password": PASSWORD})
    sid = sgtest.set_cookie(r.headers, COOKIE)
    if not ok(r.status == 200 and sid, "POST /db/_session: 200 with a %s cookie" % COOKIE):
        diag("got %s %r" % (r.status, r.body))
        return
    cookie = "%s=%s" % (COOKIE, sid)
    r = public("GET", "/db/_session", cookies=cookie)
    is_((r.status, isinstance(r.body, dict) and (r.body.get("userCtx") or {}).get("name")),
        (200, "alice"), "GET /db/_session with the cookie names alice")

    docs = [{"_id": "installed-push-%d" % i, "n": i} for i in range(3)]
    mark = backend.mark()
    rep = parties.replicate(spec({"cookie": cookie}, "push", docs))
    if not ok(rep.ok, "PouchDB push through Apache with the cookie completes"):
        show(rep.stderr() + "\n" + json.dumps(rep.final))
    is_([(backend.get_doc(d["_id"]) or {}).get("n") for d in docs], [0, 1, 2],
        "the pushed documents are at the backend")
    seen = sorted(set((q.user, q.auth) for q in backend.requests(since=mark)))
    is_(seen, [("alice", "session")], "the backend saw alice (session) on every pushed request")

    for i in range(2):
        backend.put_doc("installed-pull-%d" % i, {"n": i})
    mark = backend.mark()
    rep = parties.replicate(spec({"cookie": cookie}, "pull"))
    if not ok(rep.ok, "PouchDB pull through Apache with the cookie completes"):
        show(rep.stderr() + "\n" + json.dumps(rep.final))
    want = ["installed-pull-0", "installed-pull-1"] + [d["_id"] for d in docs]
    ok(set(want) <= set(rep.local_ids()), "the pull brought the backend's documents")
    seen = sorted(set((q.user, q.auth) for q in backend.requests(since=mark)))
    is_(seen, [("alice", "session")], "the backend saw alice (session) on every pulled request")

    for mode in ("pull", "push"):
        mark = backend.mark()
        rep = parties.replicate(spec(None, mode, [{"_id": "refused"}]))
        is_((rep.returncode, rep.status), (1, 401), "%s without credentials fails with 401" % mode)
        is_(backend.requests(since=mark), [], "%s without credentials: nothing reached the backend"
            % mode)
    files = os.listdir(STORE)
    ok(files and all(owner(os.path.join(STORE, f)).startswith("www-data:")
                     for f in files),
       "the store in %s was written by www-data (%d files)" % (STORE, len(files)))


def exercise(deb, tmp, run_, st):
    """Installs, checks, runs, and exercises the package; returns early
    (after a failed test point) when the next steps cannot run."""
    mods_before = st["mods_before"]
    # ---- installation
    rc, out = run(["dpkg", "-i", deb])
    if rc != 0 and "dependency problems" in out:
        diag("dpkg -i left dependencies to resolve: apt-get -f install")
        rc, out2 = run(["apt-get", "-y", "-f", "install"], timeout=600)
        out += out2
    st["installed"] = package_status() == "installed"
    if not ok(rc == 0 and st["installed"], "dpkg -i %s" % os.path.basename(deb)):
        show(out)
        return
    _rc, out = run(["dpkg", "-L", PACKAGE])
    st["listed"] = [p for p in out.splitlines() if p.startswith("/")]

    # ---- what it installed
    programs = [name for _define, name in deploy.APACHE_PROGRAMS]
    bad = [p for p in [os.path.join(LIBEXEC, n) for n in programs] + ["/usr/sbin/syncgatectl"]
           if not (os.path.isfile(p) and os.access(p, os.X_OK)
                   and owner(p) == "root:root 0755")]
    is_(bad, [], "the programs are in %s and syncgatectl in /usr/sbin (root:root 0755)"
        % LIBEXEC)
    is_(owner(CONFIG), "root:www-data 0640",
        "%s belongs to root, readable by the group www-data only" % CONFIG)
    is_(owner(STORE), "www-data:www-data 0750", "%s belongs to www-data" % STORE)
    with open(CONF_AVAILABLE, "rb") as a, \
            open(os.path.join(sgtest.srcdir(), "httpd-examples", "apache2", "syncgate.conf"),
                 "rb") as b:
        ok(a.read() == b.read(), "%s is the shipped httpd-examples/apache2/syncgate.conf"
           % CONF_AVAILABLE)
    ok(not os.path.lexists(CONF_ENABLED), "the package does not enable it by itself")
    _rc, out = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE])
    conffiles = set(line.split()[0] for line in out.splitlines() if line.strip())
    ok({CONFIG, CONF_AVAILABLE} <= conffiles, "%s and %s are conffiles" % (CONFIG,
                                                                          CONF_AVAILABLE))

    # ---- the units say how each program runs
    with open(CONF_AVAILABLE) as f:
        defaults = dict(re.findall(r"^\s*Define\s+(\S+)\s+(\S+)\s*$", f.read(), re.M))
    services = {}
    for define, name in deploy.APACHE_PROGRAMS:
        svc = os.path.join(UNIT_DIR, name + ".service")
        sock = os.path.join(UNIT_DIR, name + ".socket")
        if not ok(os.path.isfile(svc) and os.path.isfile(sock),
                  "%s.service and .socket in %s" % (name, UNIT_DIR)):
            continue
        u, s = unit(svc), unit(sock)
        env = dict(e.split("=", 1) for v in u.get("Environment", []) for e in v.split())
        listen = (s.get("ListenStream") or [""])[0]
        host, _, port = listen.rpartition(":")
        is_((u.get("ExecStart"), env.get("SYNCGATE_CONFIG"), u.get("User"), u.get("Group")),
            ([os.path.join(LIBEXEC, name)], CONFIG, ["www-data"], ["www-data"]),
            "%s.service runs %s/%s as www-data with SYNCGATE_CONFIG=%s"
            % (name, LIBEXEC, name, CONFIG))
        is_("%s:%s" % (host, port), "%s:%s" % (defaults.get("SYNCGATE_FCGI_HOST"),
                                               defaults.get(define)),
            "%s.socket listens where the Apache configuration looks for it" % name)
        services[name] = (u, env, host, int(port or 0))

    # ---- the test configuration, in the installed file
    with open(CONFIG) as f:
        cfg = json.load(f)
    cfg["logging"] = {"level": "debug", "syslog": False}
    cfg["admin_users"] = {}
    cfg["databases"] = {"db": dict(cfg.get("databases", {}).get("db", {}),
                                   session_cookie_secure=False,
                                   guest={"disabled": True, "admin_channels": []})}
    cfg["store"] = {"path": STORE}
    with open(CONFIG, "r+") as f:
        f.truncate()
        json.dump(cfg, f, indent=2)
    is_(owner(CONFIG), "root:www-data 0640", "the test configuration keeps its owner and mode")

    with parties.Backend() as backend:
        # ---- the programs, as their units would run them
        for name, (u, env, host, port) in sorted(services.items()):
            argv = ["spawn-fcgi", "-n", "-a", host, "-p", str(port), "-u", u["User"][0],
                    "-g", u["Group"][0], "--", u["ExecStart"][0]]
            run_.spawn(name, argv, run_.env(**env))
        ports = [port for (_u, _e, _h, port) in services.values()]
        if not ok(wait_ports(run_, ports), "the programs listen on %s" % ports):
            show(run_.logs())
            return
        www = pwd.getpwnam("www-data").pw_uid
        uids = [uid_of(p.pid) for _n, p in run_.procs]
        is_(uids, [www] * len(uids), "every program runs as www-data")

        # ---- Apache, with the packaged configuration enabled
        with open(CONF_AVAILABLE) as f:
            m = re.search(r"^#\s+a2enmod\s+(.+)$", f.read(), re.M)
        wanted = m.group(1).split() if m else []
        ok(wanted, "the configuration names its modules: %s" % " ".join(wanted))
        rc, out = run(["a2enmod", "-q"] + wanted)
        if not ok(rc == 0 and set(wanted) <= enabled("mod"), "a2enmod %s" % " ".join(wanted)):
            show(out)
        # What a2enmod enabled, dependencies included, goes again at the end.
        st["mods_added"] = sorted(enabled("mod") - mods_before)
        rc, out = run(["a2enconf", "-q", PACKAGE])
        ok(rc == 0 and os.path.realpath(CONF_ENABLED) == CONF_AVAILABLE,
           "a2enconf %s links it into conf-enabled" % PACKAGE)
        rc, out = run(["apache2ctl", "configtest"])
        if not ok(rc == 0, "apache2ctl configtest: Debian's whole Apache configuration "
                  "accepts it"):
            show(out)
        conf = apache_conf(tmp, [("SYNCGATE_PUBLIC_ADDR", "127.0.0.1"),
                                 ("SYNCGATE_BACKEND", "http://127.0.0.1:%d" % backend.port)])
        aenv = run_.env(APACHE_RUN_USER="www-data", APACHE_RUN_GROUP="www-data",
                        APACHE_RUN_DIR=os.path.join(tmp, "run"),
                        APACHE_PID_FILE=os.path.join(tmp, "run", "apache2.pid"),
                        APACHE_LOCK_DIR=os.path.join(tmp, "lock"),
                        APACHE_LOG_DIR=os.path.join(tmp, "apache-log"))
        argv = ["apache2", "-d", APACHE_ROOT, "-f", conf]
        rc, out = run(argv + ["-t"], env=aenv)
        if not ok(rc == 0, "apache2 -t with the test's copy of apache2.conf"):
            show(out)
        run_.spawn("apache2", argv + ["-DFOREGROUND"], aenv)
        if not ok(wait_ports(run_, [PUBLIC_PORT, ADMIN_PORT]),
                  "Apache listens on 127.0.0.1:%d and :%d" % (PUBLIC_PORT, ADMIN_PORT)):
            show(run_.logs())
            show("\n".join((sgtest._read(f) or b"").decode("utf-8", "replace")
                           for f in glob.glob(os.path.join(tmp, "apache-log", "*"))))
            return

        # ---- login and replication through it
        replication_checks(backend)
        if not _all_passed():
            show(run_.logs())


def main():
    if os.geteuid() != 0:
        sgtest.bail_out("must run as root: it installs and purges the package")
    for tool in ("dpkg", "dpkg-query", "apache2", "apache2ctl", "a2enmod", "a2enconf",
                 "a2dismod", "spawn-fcgi", "find"):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            sgtest.bail_out("%s not found (scripts/install-deps.sh installs it)" % tool)
    parties.require_pouch()
    deb = find_deb()
    if not deb or not os.path.isfile(deb):
        sgtest.bail_out("no %s .deb: run tests/packaging/check-packages.sh first" % PACKAGE)
    diag("package: %s" % deb)

    # An earlier run that was cut short may have left the package.
    status = package_status()
    if status:
        diag("%s is already here (%s): purging it first" % (PACKAGE, status))
        if purge("cleanup")[0] != 0 or package_status():
            sgtest.bail_out("could not purge the %s left by an earlier run" % PACKAGE)
    busy = [p for p in (PUBLIC_PORT, ADMIN_PORT, 4990, 4991, 4992, 4993, 4994) if listening(p)]
    if busy:
        sgtest.bail_out("ports %s of 127.0.0.1 are in use: is something of syncgate running?"
                        % busy)

    before_files = named_files()
    if before_files:
        diag("files named syncgate before the installation: %s" % sorted(before_files))
    mods_before, confs_before, state_before = enabled("mod"), enabled("conf"), a2_state()
    tmp = tempfile.mkdtemp(prefix="sg-installed-", dir="/tmp")
    os.chmod(tmp, 0o755)
    os.mkdir(os.path.join(tmp, "log"))
    for d in ("run", "lock", "apache-log"):
        os.mkdir(os.path.join(tmp, d))
    run_ = Run(tmp)
    st = {"installed": False, "listed": [], "mods_added": [],
          "mods_before": mods_before}
    try:
        exercise(deb, tmp, run_, st)
    finally:
        # ---- stop, purge, put Apache back
        run_.stop()
        is_(run_.left(), [], "no process of this run is left")
        if st["installed"] or package_status():
            rc, _out = purge("purge")
            ok(rc == 0 and package_status() is None,
               "dpkg --purge %s: dpkg forgets it" % PACKAGE)
        for mod in reversed(st["mods_added"]):
            run(["a2dismod", "-q", "-f", mod])
        # a2enmod and a2dismod remember what the administrator did: forget
        # what this test did.
        for marker in sorted(a2_state() - state_before, reverse=True):
            if os.path.isdir(marker):
                os.rmdir(marker)
            else:
                os.remove(marker)
        shutil.rmtree(tmp, ignore_errors=True)

    left = [p for p in st["listed"] if PACKAGE in p and os.path.lexists(p)]
    is_(left, [], "no file the package installed is left")
    for path in (LIBEXEC, "/usr/sbin/syncgatectl", "/etc/syncgate", STORE, CONF_AVAILABLE,
                 CONF_ENABLED):
        ok(not os.path.lexists(path), "%s is gone" % path)
    units = glob.glob(os.path.join(UNIT_DIR, "syncgate-*"))
    is_(units, [], "the systemd units are gone")
    is_(sorted(named_files() - before_files), [],
        "no file named syncgate is left under %s" % ", ".join(LEFTOVER_ROOTS))
    is_((sorted(enabled("mod")), sorted(enabled("conf")), sorted(a2_state())),
        (sorted(mods_before), sorted(confs_before), sorted(state_before)),
        "Apache's modules and configurations are as before (a2dismod %s)"
        % (" ".join(st["mods_added"]) or "nothing"))
    rc, out = run(["apache2ctl", "configtest"])
    if not ok(rc == 0, "apache2ctl configtest passes after the purge"):
        show(out)
    busy = [p for p in (PUBLIC_PORT, ADMIN_PORT, 4990, 4991, 4992, 4993, 4994) if listening(p)]
    is_(busy, [], "nothing listens on the ports any more")
    mine = [q for q in sgtest.processes_referring(LIBEXEC + "/")]
    is_(mine, [], "no syncgate program is running")
    done()


def _all_passed():
    return sgtest._tap["failed"] == 0


main()
