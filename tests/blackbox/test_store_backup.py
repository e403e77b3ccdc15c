#!/usr/bin/env python3
"""test_store_backup: syncgatectl store backup under load, restore, verify.

  - WRITERS processes add users one after the other with `syncgatectl user
    add` (each a process of its own, as an administrator's script would);
    while they run, `syncgatectl store backup` copies the store.  Every user
    whose `user add` had returned before the backup started must be in the
    backup, and the backup must hold no user nobody added.
  - `store restore BACKUP NEWPATH` builds a store where there was none;
    `store verify` accepts it and `user list` shows the same users.
  - `store restore` refuses while a program has the store open (a real
    syncgate-session-check waiting for FastCGI requests on a socket) and
    leaves the store as it was; once the program is gone it replaces the
    live store, which keeps its directory's owner and mode (as root, the
    store is given to another user first, as the packages give it to the
    web server's user), and leaves nothing beside it.
    Run as root, syncgatectl acts as the store's owner, so every file in
    the store keeps that owner whatever command ran.
  - a directory that is not a backup is refused, and the store is untouched.

Environment: top_builddir (default ".") holds cgi-bin/.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sgtest  # noqa: E402
from sgtest import diag, done, is_, ok  # noqa: E402

sgtest.timeout(300)

CTL = sgtest.program("syncgatectl")
CHECK = sgtest.program("syncgate-session-check")
sgtest.require_programs(CTL, CHECK)

WRITERS = 4
# Writing before the backup starts, and after it, in seconds.
BEFORE = 3.0
AFTER = 2.0

TMP = tempfile.mkdtemp(prefix="sg-backup.")


def write_config(path, store):
    with open(path, "w") as f:
        json.dump({"store": {"path": store},
                   "logging": {"syslog": False, "level": "warn"},
                   "databases": {"db": {}}}, f)
    return path


STORE = os.path.join(TMP, "store")
CONFIG = write_config(os.path.join(TMP, "syncgate.json"), STORE)


def ctl(*args, config=CONFIG):
    argv = [CTL] + (["-c", config] if config else []) + list(args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def users(config):
    rc, out, err = ctl("user", "list", "db", config=config)
    if rc != 0:
        diag("user list: " + err.strip())
        return None
    return set(out.split())


def tree(path):
    """{name: (mode, uid, gid)} of path and the files in it."""
    out = {}
    for name in ["."] + sorted(os.listdir(path)):
        st = os.lstat(os.path.join(path, name))
        out[name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


class Writers:
    """WRITERS threads, each running `syncgatectl user add` in a loop."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = {}       # name -> monotonic time its user add returned 0
        self.started = set()  # every name whose user add was started
        self.failures = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(WRITERS)]

    def run(self, k):
        i = 0
        while not self.stop.is_set():
            name = "w%d-%05d" % (k, i)
            i += 1
            with self.lock:
                self.started.add(name)
            rc, _out, err = ctl("user", "add", "db", name, "--channel", "c%d" % k)
            with self.lock:
                if rc == 0:
                    self.done[name] = time.monotonic()
                else:
                    self.failures.append((name, err.strip()))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def holder():
    """A syncgate-session-check with the store open, waiting on a FastCGI
    socket (as a FastCGI manager starts it)."""
    path = os.path.join(TMP, "check.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(8)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SYNCGATE_CONFIG": CONFIG}
    p = subprocess.Popen([CHECK], stdin=sock.fileno(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    sock.close()
    return p


try:
    rc, _out, err = ctl("user", "add", "db", "first")
    ok(rc == 0, "the store is created with a first user")

    backup = os.path.join(TMP, "backup")
    with Writers() as w:
        time.sleep(BEFORE)
        start = time.monotonic()
        rc, out, err = ctl("store", "backup", backup)
        finished = time.monotonic()
        time.sleep(AFTER)
    with w.lock:
        before = {n for n, t in w.done.items() if t < start}
        during = {n for n, t in w.done.items() if start <= t < finished}
        after = {n for n, t in w.done.items() if t >= finished}
    diag("%d users added before the backup, %d while it ran (%.2fs), %d after"
         % (len(before), len(during), finished - start, len(after)))
    is_(w.failures, [], "every user add went through beside the backup")
    is_((rc, out), (0, "backed up %s to %s\n" % (STORE, backup)), "store backup under load")
    ok(len(before) >= WRITERS and len(after) >= WRITERS, "writers ran before and after the backup")

    rc, out, err = ctl("store", "verify", backup, config=None)
    is_((rc, out), (0, backup + ": OK\n"), "the backup verifies")

    restored = os.path.join(TMP, "restored")
    rc, out, err = ctl("store", "restore", backup, restored, config=None)
    is_((rc, out), (0, "restored %s from %s\n" % (restored, backup)),
        "store restore into a new directory prints one line")
    rc, out, err = ctl("store", "verify", restored, config=None)
    is_((rc, out), (0, restored + ": OK\n"), "the restored store verifies")
    got = users(write_config(os.path.join(TMP, "restored.json"), restored))
    ok(got is not None and (before | {"first"}) <= got,
       "every user added before the backup started is in the restored store")
    if got is not None:
        missing = sorted((before | {"first"}) - got)
        if missing:
            diag("missing: %s" % missing[:20])
        is_(sorted(got - w.started - {"first"}), [], "the restored store holds no unknown user")
    is_(users(write_config(os.path.join(TMP, "backup.json"), backup)), got,
        "the backup and the store restored from it hold the same users")

    # The live store: refused while a program has it open.
    live_before = users(CONFIG)
    if os.geteuid() == 0:
        # As the packages do: the store belongs to the web server's user
        # (here nobody), and syncgatectl run as root acts as that user.
        os.chmod(TMP, 0o755)
        os.chmod(CONFIG, 0o644)
        for name in [""] + os.listdir(STORE):
            os.chown(os.path.join(STORE, name), 65534, 65534)
    os.chmod(STORE, 0o750)
    want = tree(STORE)["."]
    p = holder()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not sgtest.processes_referring(STORE):
            time.sleep(0.1)
        ok(p.poll() is None, "syncgate-session-check runs with the store open")
        rc, out, err = ctl("store", "restore", backup)
        ok(rc == 1 and out == "" and "in use" in err and err.count("\n") == 1,
           "store restore refuses a store in use, in one line")
        diag(err.strip())
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    is_(users(CONFIG), live_before, "the refused restore left the store as it was")

    rc, out, err = ctl("store", "restore", backup)
    is_((rc, out), (0, "restored %s from %s\n" % (STORE, backup)),
        "store restore replaces the live store once nobody uses it")
    is_(users(CONFIG), got, "the live store now holds the backup's users")
    rc, out, err = ctl("store", "verify")
    is_((rc, out), (0, STORE + ": OK\n"), "the restored live store verifies")
    tr = tree(STORE)
    is_(tr["."], want, "the store directory kept its mode and owner")
    is_(sorted(n for n, v in tr.items() if v[1:] != want[1:]), [],
        "every restored file has the store's owner")
    is_(sorted(n for n in os.listdir(TMP) if n.startswith("store.")), [],
        "nothing is left beside the store")
    backup2 = os.path.join(TMP, "backup2")
    rc, out, err = ctl("store", "backup", backup2)
    t2 = tree(backup2)
    ok(rc == 0 and all(v[1:] == want[1:] for v in t2.values()),
       "a backup of that store belongs to the store's owner too")
    rc, _out, err = ctl("user", "add", "db", "after-restore")
    ok(rc == 0 and "after-restore" in (users(CONFIG) or set()), "the restored store takes writes")

    # Not a backup: refused, store untouched.
    empty = os.path.join(TMP, "empty")
    os.mkdir(empty)
    live_before = users(CONFIG)
    rc, out, err = ctl("store", "restore", empty)
    ok(rc == 1 and "not a store backup" in err and err.count("\n") == 1,
       "a directory that is not a backup is refused")
    is_(users(CONFIG), live_before, "and the store is untouched")
    rc, out, err = ctl("store", "restore")
    is_(rc, 2, "store restore without a directory is a usage error")
finally:
    shutil.rmtree(TMP, ignore_errors=True)

done()
