#!/usr/bin/env python3
"""test_ctl: syncgatectl, the administrator's command line, black-box.

Runs the built cgi-bin/syncgatectl with a configuration in a temporary
directory (store inside it, logging to standard error) and checks its exit
status, standard output and standard error:
  - check-config on a good file, on every tests/data/config/invalid/NAME.json
    (standard error must be exactly "syncgatectl: " + the line in NAME.err,
    @FILE@ standing for the file), and on a missing file;
  - hash-password: a bcrypt hash that crypt(3) verifies; short passwords
    refused;
  - users and roles: add, list, delete, with the admin API's rules; a refused
    command leaves the store as it was;
  - session purge, on sessions made through syncgate-user-admin run as CGI
    (POST /{db}/_session with a ttl of one second);
  - store verify, backup (then verify and read the backup) and checkpoint.
Every output is kept: no password or password hash may appear in any of
it, except the hash hash-password prints on standard output.

Environment: top_builddir (default ".") holds cgi-bin/syncgatectl and
cgi-bin/syncgate-user-admin; top_srcdir holds tests/data.
"""
import ctypes
import ctypes.util
import glob
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.timeout(300)

CTL = sgtest.program("syncgatectl")
ADMIN = sgtest.program("syncgate-user-admin")
sgtest.require_programs(CTL, ADMIN)

TMP = tempfile.mkdtemp(prefix="sg-ctl.")
PASSWORDS = []     # every password sent: none may appear in any output
HASHES = []        # every hash printed: only hash-password's stdout may hold one
OUTPUTS = []       # (what, text) of every run


def crypt(password, setting):
    """crypt(3) through Python's crypt module, or libcrypt when it is gone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as cryptmod
        return cryptmod.crypt(password, setting)
    except ImportError:
        lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        out = lib.crypt(password.encode("utf-8"), setting.encode("utf-8"))
        return out.decode("utf-8") if out is not None else None


class Run:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    def __repr__(self):
        return "Run(rc=%r, out=%r, err=%r)" % (self.rc, self.out, self.err)


def write_config(path, store, databases=None):
    cfg = {"store": {"path": store},
           "logging": {"syslog": False, "level": "info"},
           "databases": databases or {"db": {}, "other": {}}}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


CONFIG = write_config(os.path.join(TMP, "syncgate.json"), os.path.join(TMP, "store"))


def ctl(*args, stdin=b"", config=CONFIG, env=None, hash_output=False):
    """Runs syncgatectl [-c config] args; returns Run (text)."""
    argv = [CTL] + (["-c", config] if config else []) + list(args)
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    p = subprocess.run(argv, input=stdin, env=e, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    r = Run(p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))
    name = "syncgatectl " + " ".join(args)
    # hash-password's stdout is the one place a hash belongs.
    if not hash_output:
        OUTPUTS.append((name + " (stdout)", r.out))
    OUTPUTS.append((name + " (stderr)", r.err))
    return r


def ctl_tty(args, line, config=CONFIG):
    """Runs syncgatectl on a pseudo-terminal, types line; returns (what the
    terminal showed, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(CTL, [CTL, "-c", config] + list(args))
        finally:
            os._exit(127)
    seen = b""

    def read_until(finished, seconds):
        """Collects what the terminal shows until finished(seen), the end
        of the child's output, or seconds."""
        nonlocal seen
        end = time.monotonic() + seconds
        while time.monotonic() < end and not finished(seen):
            ready, _w, _x = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            seen += data

    read_until(lambda s: b"Password:" in s, 10)
    os.write(fd, line.encode("utf-8") + b"\n")
    read_until(lambda s: False, 30)
    _pid, st = os.waitpid(pid, 0)
    os.close(fd)
    text = seen.decode("utf-8", "replace")
    return text, os.waitstatus_to_exitcode(st)


def lines(text):
    return text.splitlines()


LOG_LINE = re.compile(r"^syncgatectl: (error|warn|info|debug): ")


def one_error(r, want_rc=1):
    """True when r failed with status want_rc and one "syncgatectl: " line
    besides log lines (the store logs its own failures too)."""
    errs = [x for x in lines(r.err) if not LOG_LINE.match(x)]
    good = r.rc == want_rc and len(errs) == 1 and errs[0].startswith("syncgatectl: ")
    if not good:
        diag("   got: %r" % (r,))
    return good


def parse_cgi(out):
    sep = out.find(b"\r\n\r\n")
    if sep < 0:
        raise ValueError("no end of headers in CGI output: %r" % out[:200])
    head, body = out[:sep].decode("latin-1"), out[sep + 4:]
    status = 200
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
    try:
        parsed = json.loads(body.decode("utf-8")) if body else None
    except ValueError:
        parsed = body
    return status, parsed


def admin(method, path, body=None, config=CONFIG):
    """Runs syncgate-user-admin once as CGI from loopback; (status, JSON)."""
    data = json.dumps(body).encode("utf-8") if body is not None else b""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
        "SYNCGATE_CONFIG": config,
    }
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(data))
        env["CONTENT_TYPE"] = "application/json"
    p = subprocess.run([ADMIN], input=data, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    OUTPUTS.append(("syncgate-user-admin %s %s (stderr)" % (method, path),
                    p.stderr.decode("utf-8", "replace")))
    return parse_cgi(p.stdout)


def expected_line(errfile, file):
    with open(errfile, encoding="utf-8") as f:
        return f.read().rstrip("\n").replace("@FILE@", file)


# --------------------------------------------------------------------------
# Usage

r = ctl(config=None)
ok(r.rc == 2 and "usage: syncgatectl" in r.err and r.out == "", "no arguments: usage on stderr, status 2")
r = ctl("--help", config=None)
ok(r.rc == 0 and "usage: syncgatectl" in r.out and "hash-password" in r.out,
   "--help: usage on stdout, status 0")
r = ctl("frobnicate")
ok(r.rc == 2 and r.err.startswith("syncgatectl: unknown command: frobnicate\n")
   and "usage: syncgatectl" in r.err, "unknown command: usage on stderr, status 2")
r = ctl("user", "list")
ok(r.rc == 2 and len(lines(r.err)) == 1 and "missing operand" in r.err,
   "missing operand: one line, status 2")
r = ctl("user", "list", "db", "--channel", "x")
ok(r.rc == 2 and len(lines(r.err)) == 1 and "--channel" in r.err,
   "an option the command does not take: one line, status 2")
r = ctl("hash-password", "--bogus")
ok(r.rc == 2 and "unknown option: --bogus" in r.err, "unknown option: status 2")

# --------------------------------------------------------------------------
# check-config

r = ctl("check-config")
is_((r.rc, r.out, r.err), (0, CONFIG + ": OK\n", ""), "check-config: OK on a good file")
r = ctl("check-config", config=None, env={"SYNCGATE_CONFIG": CONFIG})
is_((r.rc, r.out), (0, CONFIG + ": OK\n"), "check-config: $SYNCGATE_CONFIG without -c")
r = ctl("--config=" + CONFIG, "check-config", config=None)
is_((r.rc, r.out), (0, CONFIG + ": OK\n"), "check-config: --config=FILE")

invalid_dir = os.path.join(sgtest.srcdir(), "tests", "data", "config", "invalid")
cases = sorted(glob.glob(os.path.join(invalid_dir, "*.json")))
ok(len(cases) >= 20, "invalid configuration cases found (%d)" % len(cases))
for case in cases:
    errfile = case[:-len(".json")] + ".err"
    want = "syncgatectl: " + expected_line(errfile, case) + "\n"
    r = ctl("check-config", config=case)
    if not ok(r.rc == 1 and r.out == "" and r.err == want,
              "check-config refuses invalid/%s with its line" % os.path.basename(case)):
        diag("   got: %r" % (r,))
        diag("  want: %r" % (want,))

missing = os.path.join(TMP, "no-such.json")
r = ctl("check-config", config=missing)
ok(one_error(r) and r.err.startswith("syncgatectl: " + missing + ": ") and r.out == "",
   "check-config: a missing file is one line naming it")
r = ctl("user", "list", "db", config=missing)
ok(one_error(r) and missing in r.err, "other commands refuse a missing file the same way")

# --------------------------------------------------------------------------
# hash-password

PW_ADMIN = "Adm1n-pass phrase"
PASSWORDS.append(PW_ADMIN)
r = ctl("hash-password", stdin=PW_ADMIN + "\n", hash_output=True)
h = r.out.rstrip("\n")
HASHES.append(h)
ok(r.rc == 0 and r.out.count("\n") == 1 and h.startswith("$2b$10$") and len(h) == 60,
   "hash-password prints one bcrypt hash, cost 10")
is_(crypt(PW_ADMIN, h), h, "the hash verifies with crypt(3)")
ok(crypt("wrong", h) != h, "another password does not verify")
r2 = ctl("hash-password", "--stdin", stdin=PW_ADMIN, hash_output=True)
h2 = r2.out.rstrip("\n")
HASHES.append(h2)
ok(r2.rc == 0 and h2 != h and crypt(PW_ADMIN, h2) == h2,
   "--stdin, no final newline: a new salt, still verifies")
# On a terminal: a prompt on it, the typing not echoed.
PW_TTY = "tty-typed-secret"
PASSWORDS.append(PW_TTY)
seen, status = ctl_tty(["hash-password"], PW_TTY)
h3 = seen.strip().splitlines()[-1] if seen.strip() else ""
HASHES.append(h3)
ok(status == 0 and "Password:" in seen and PW_TTY not in seen and crypt(PW_TTY, h3) == h3,
   "hash-password on a terminal prompts and does not echo")
if status != 0 or PW_TTY in seen:
    diag("terminal saw: %r, status %r" % (seen, status))
r = ctl("hash-password", stdin="ab\n", hash_output=True)
ok(one_error(r) and r.out == "" and "three characters" in r.err, "a 2-character password is refused")
r = ctl("hash-password", stdin="", hash_output=True)
ok(one_error(r) and r.out == "", "no password at all is refused")
r = ctl("hash-password", stdin="\n", hash_output=True)
ok(one_error(r) and r.out == "", "an empty line is refused")

# --------------------------------------------------------------------------
# Users

PW_ALICE = "alice-secret-pw"
PASSWORDS.append(PW_ALICE)
r = ctl("user", "add", "db", "alice", "--password-stdin", "--channel", "news",
        "--channel=sports", "--role", "editor", "--email", "alice@example.com",
        stdin=PW_ALICE + "\n")
ok(r.rc == 0 and r.out == "" and "user.add" in r.err, "user add alice (password, channels, role, email)")
r = ctl("user", "add", "db", "bob", "--disabled")
ok(r.rc == 0, "user add bob --disabled (no password)")
r = ctl("user", "list", "db")
is_((r.rc, r.out), (0, "alice\nbob\n"), "user list: sorted, one per line")
r = ctl("user", "list", "other")
is_((r.rc, r.out), (0, ""), "user list of another database is empty")

status, doc = admin("GET", "/db/_user/alice")
ok(status == 200 and isinstance(doc, dict) and doc.get("admin_channels") == ["news", "sports"]
   and doc.get("admin_roles") == ["editor"] and doc.get("email") == "alice@example.com"
   and not doc.get("disabled"), "the admin API shows alice as added")
if status != 200:
    diag("GET alice: %r %r" % (status, doc))
status, doc = admin("GET", "/db/_user/bob")
ok(status == 200 and doc.get("disabled") is True, "the admin API shows bob disabled")

# The stored password is the one read on stdin: a session login succeeds.
CHECK = sgtest.program("syncgate-session-check")
if sgtest.is_executable(CHECK):
    data = json.dumps({"name": "alice", "password": PW_ALICE}).encode("utf-8")
    p = subprocess.run([CHECK], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, env={
                           "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                           "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
                           "REQUEST_METHOD": "POST", "REQUEST_URI": "/db/_session",
                           "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1",
                           "CONTENT_LENGTH": str(len(data)),
                           "CONTENT_TYPE": "application/json", "SYNCGATE_CONFIG": CONFIG})
    OUTPUTS.append(("syncgate-session-check POST /db/_session (stderr)",
                    p.stderr.decode("utf-8", "replace")))
    status, doc = parse_cgi(p.stdout)
    is_(status, 200, "alice logs in with the password given on stdin")

r = ctl("user", "add", "db", "alice")
ok(one_error(r) and r.err == "syncgatectl: user already exists: alice\n",
   "user add of an existing user: error, status 1")
r = ctl("user", "add", "db", "GUEST")
ok(one_error(r) and "GUEST" in r.err, "user add GUEST is refused")
r = ctl("user", "add", "db", "a/b")
ok(one_error(r) and "Invalid user name" in r.err, "an invalid user name is refused, named")
r = ctl("user", "add", "db", "carol", "--channel", "bad channel")
ok(one_error(r) and "Invalid name in admin_channels" in r.err,
   "an invalid channel name is refused, named")
r = ctl("user", "add", "db", "carol", "--role", "a,b")
ok(one_error(r) and "Invalid name in admin_roles" in r.err, "an invalid role name is refused")
r = ctl("user", "add", "db", "carol", "--email", "not-an-address")
ok(one_error(r) and "email" in r.err, "an invalid email address is refused")
PASSWORDS.append("zq")
r = ctl("user", "add", "db", "carol", "--password-stdin", stdin="zq\n")
ok(one_error(r) and "three characters" in r.err, "a short password is refused")
r = ctl("user", "add", "nope", "carol")
is_((r.rc, r.err), (1, "syncgatectl: no such database: nope\n"), "an unknown database is named")
r = ctl("user", "list", "db")
is_(r.out, "alice\nbob\n", "the refused commands left the users as they were")

r = ctl("user", "delete", "db", "bob")
ok(r.rc == 0 and "user.delete" in r.err, "user delete bob")
r = ctl("user", "list", "db")
is_(r.out, "alice\n", "bob is gone from the list")
r = ctl("user", "delete", "db", "bob")
is_((r.rc, r.err), (1, "syncgatectl: no such user: bob\n"), "deleting a missing user: error")

# Deleting a user ends its sessions.
r = ctl("user", "add", "db", "frank")
status, sess = admin("POST", "/db/_session", {"name": "frank", "ttl": 3600})
ok(r.rc == 0 and status == 200 and isinstance(sess, dict) and "session_id" in sess,
   "a session for frank (admin API)")
frank_sid = sess.get("session_id") if isinstance(sess, dict) else "0" * 40
r = ctl("user", "delete", "db", "frank")
ok(r.rc == 0, "user delete frank")
status, _doc = admin("GET", "/db/_session/%s" % frank_sid)
is_(status, 404, "frank's session ended with him")
r = ctl("user", "delete", "db", "GUEST")
ok(one_error(r) and "GUEST" in r.err, "GUEST cannot be deleted")

# --------------------------------------------------------------------------
# Roles

r = ctl("role", "add", "db", "editor", "--channel", "drafts")
ok(r.rc == 0 and "role.add" in r.err, "role add editor")
r = ctl("role", "add", "db", "admins")
ok(r.rc == 0, "role add admins (no channels)")
r = ctl("role", "list", "db")
is_((r.rc, r.out), (0, "admins\neditor\n"), "role list: sorted")
status, doc = admin("GET", "/db/_user/alice")
ok(status == 200 and "drafts" in (doc.get("all_channels") or []),
   "alice gets the role's channel")
r = ctl("role", "add", "db", "editor")
is_((r.rc, r.err), (1, "syncgatectl: role already exists: editor\n"), "role add of an existing role")
r = ctl("role", "add", "db", "x:y")
ok(one_error(r) and "Invalid role name" in r.err, "an invalid role name is refused")
r = ctl("role", "add", "db", "viewers", "--channel", "no spaces")
ok(one_error(r) and "Invalid name in admin_channels" in r.err, "an invalid role channel is refused")
r = ctl("role", "add", "db", "viewers", "--role", "x")
ok(r.rc == 2, "role add does not take --role")
r = ctl("role", "delete", "db", "admins")
ok(r.rc == 0 and "role.delete" in r.err, "role delete admins")
r = ctl("role", "list", "db")
is_(r.out, "editor\n", "admins is gone")
r = ctl("role", "delete", "db", "admins")
is_((r.rc, r.err), (1, "syncgatectl: no such role: admins\n"), "deleting a missing role: error")

# --------------------------------------------------------------------------
# Sessions

r = ctl("user", "add", "db", "dave")
ids = []
for ttl in (1, 1, 3600):
    status, sess = admin("POST", "/db/_session", {"name": "dave", "ttl": ttl})
    ids.append(sess.get("session_id") if status == 200 and isinstance(sess, dict) else None)
ok(all(ids), "three sessions for dave, two with a ttl of one second")
time.sleep(2.5)
r = ctl("session", "purge")
is_((r.rc, r.out), (0, "removed 2 expired sessions\n"), "session purge removes the two expired ones")
r = ctl("session", "purge")
is_((r.rc, r.out), (0, "removed 0 expired sessions\n"), "a second purge finds nothing")
status, _doc = admin("GET", "/db/_session/%s" % ids[2])
is_(status, 200, "the live session is still there")

# --------------------------------------------------------------------------
# Store

store = os.path.join(TMP, "store")
r = ctl("store", "verify")
is_((r.rc, r.out), (0, store + ": OK\n"), "store verify of the live store")
r = ctl("store", "checkpoint")
ok(r.rc == 0 and store in r.out, "store checkpoint")

backup = os.path.join(TMP, "backup")
r = ctl("store", "backup", backup)
ok(r.rc == 0 and backup in r.out and os.path.isdir(backup), "store backup into a new directory")
r = ctl("user", "add", "db", "erin")
ok(r.rc == 0, "a user added after the backup")
r = ctl("store", "verify", backup, config=None)
is_((r.rc, r.out), (0, backup + ": OK\n"), "store verify PATH of the backup (no config needed)")
bconfig = write_config(os.path.join(TMP, "backup.json"), backup)
r = ctl("user", "list", "db", config=bconfig)
is_((r.rc, r.out), (0, "alice\ndave\n"), "the backup holds the users of its time")
r = ctl("role", "list", "db", config=bconfig)
is_(r.out, "editor\n", "the backup holds the roles")
r = ctl("store", "backup", backup)
ok(one_error(r) and "not empty" in r.err, "store backup into a non-empty directory is refused")
r = ctl("store", "verify", os.path.join(TMP, "nowhere"), config=None)
ok(one_error(r) and os.path.join(TMP, "nowhere") in r.err, "store verify of a missing store fails")

# --------------------------------------------------------------------------
# No secret in any output

leaks = []
for what, text in OUTPUTS:
    for pw in PASSWORDS:
        if pw in text:
            leaks.append((what, "password"))
    for h in HASHES:
        if h and h in text:
            leaks.append((what, "hash"))
    if "$2b$" in text:
        leaks.append((what, "a bcrypt hash"))
if not ok(not leaks, "no password or hash in any output (%d outputs)" % len(OUTPUTS)):
    diag(repr(leaks))

shutil.rmtree(TMP, ignore_errors=True)
done()
