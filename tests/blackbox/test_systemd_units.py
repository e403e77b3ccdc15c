"""etc/systemd/: the socket units that start the FastCGI programs for Apache.

Checked: one socket and one service per program; every ExecStart names a
program under @pkglibexecdir@; every socket listens on 127.0.0.1 on the
port the Apache example expects for that program, with Accept=no; every
service takes the socket as standard input and logs elsewhere (its
standard output would otherwise be the socket); the units made by make
have no placeholder left; systemd-analyze verify accepts them (with the
paths pointed at the built programs) when it can run here; and a program
started as systemd starts it, with the listening socket as standard
input, answers a FastCGI request on it.
"""
import configparser
import glob
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
import deploy  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, like, ok  # noqa: E402

sgtest.timeout(120)

UNITS = os.path.join(sgtest.srcdir(), "etc", "systemd")


def load(path):
    """A unit file as {section: {key: value}} (keys keep their case)."""
    cp = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    cp.optionxform = str
    with open(path) as f:
        cp.read_file(f)
    return {s: dict(cp[s]) for s in cp.sections()}


def apache_ports():
    """The default port of each program in the Apache example."""
    with open(os.path.join(deploy.examples_dir("apache"), "syncgate.conf")) as f:
        text = f.read()
    out = {}
    for define, prog in deploy.APACHE_PROGRAMS:
        m = re.search(r"<IfDefine !%s>[^<]*Define %s (\d+)\s" % (define, define), text)
        out[prog] = int(m.group(1)) if m else None
    return out


def substituted(text, libexec, sysconfdir, localstatedir):
    return (text.replace("@pkglibexecdir@", libexec).replace("@sysconfdir@", sysconfdir)
            .replace("@localstatedir@", localstatedir))


def fastcgi_request(addr, params, timeout=10):
    """One FastCGI request (no body) to addr: returns its standard output."""
    def record(rtype, content):
        return struct.pack(">BBHHBB", 1, rtype, 1, len(content), 0, 0) + content

    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)

    pairs = b"".join(length(len(k)) + length(len(v)) + k + v for k, v in
                     ((k.encode(), v.encode()) for k, v in params.items()))
    role = 2 if params.get("FCGI_ROLE") == "AUTHORIZER" else 1
    out = (record(1, struct.pack(">HB5x", role, 0)) + record(4, pairs) + record(4, b"")
           + record(5, b""))
    stdout = b""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(out)
        f = s.makefile("rb")
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            _v, rtype, _rid, clen, plen, _r = struct.unpack(">BBHHBB", head)
            content = f.read(clen)
            f.read(plen)
            if rtype == 6:
                stdout += content
            elif rtype == 3:
                break
    return stdout


# --- the sources
ins = sorted(os.path.basename(p) for p in glob.glob(os.path.join(UNITS, "*.in")))
want = sorted("%s.%s.in" % (p, kind) for p in sgtest.PROGRAMS for kind in ("service", "socket"))
is_(ins, want, "one socket and one service unit per program")
ports = apache_ports()
seen_ports = []
for prog in sgtest.PROGRAMS:
    svc = load(os.path.join(UNITS, prog + ".service.in"))
    sock = load(os.path.join(UNITS, prog + ".socket.in"))
    s = svc.get("Service", {})
    is_(s.get("ExecStart"), "@pkglibexecdir@/" + prog, "%s: ExecStart is the installed program" % prog)
    is_(s.get("StandardInput"), "socket", "%s: the socket is its standard input" % prog)
    ok(s.get("StandardOutput") not in (None, "inherit", "socket"),
       "%s: standard output is not the socket (%s)" % (prog, s.get("StandardOutput")))
    like(s.get("Environment"), r"^SYNCGATE_CONFIG=@sysconfdir@/syncgate/syncgate\.json$",
         "%s: reads @sysconfdir@/syncgate/syncgate.json" % prog)
    like(svc.get("Unit", {}).get("Requires"), r"(^| )%s\.socket( |$)" % re.escape(prog),
         "%s: the service requires its socket" % prog)
    k = sock.get("Socket", {})
    is_(k.get("ListenStream"), "127.0.0.1:%s" % ports.get(prog),
        "%s: socket on 127.0.0.1, the Apache example's port" % prog)
    is_(k.get("Accept", "no"), "no", "%s: Accept=no (one FastCGI server takes the socket)" % prog)
    seen_ports.append(k.get("ListenStream"))
is_(len(set(seen_ports)), len(sgtest.PROGRAMS), "every program on a port of its own")

# --- the units make built
built = os.path.join(sgtest.builddir(), "etc", "systemd")
if os.path.isdir(built):
    for name in (n[:-3] for n in ins):
        path = os.path.join(built, name)
        text = sgtest._read(path, "r") or ""
        ok(text and "@" not in text.replace("@.", ""),
           "built %s has its paths filled in" % name)
        if name.endswith(".service"):
            like(load(path)["Service"].get("ExecStart"), r"^/\S*/%s$" % re.escape(name[:-8]),
                 "built %s: ExecStart is an absolute path" % name)
else:
    ok(True, "# SKIP no built units in %s" % built)

# --- systemd-analyze verify, with the paths pointed at the built programs
tmp = tempfile.mkdtemp(prefix="sg-units-")
try:
    analyze = shutil.which("systemd-analyze")
    files = []
    for name in ins:
        with open(os.path.join(UNITS, name)) as f:
            text = substituted(f.read(), os.path.join(sgtest.builddir(), "cgi-bin"),
                               os.path.join(tmp, "etc"), os.path.join(tmp, "var"))
        files.append(os.path.join(tmp, name[:-3]))
        with open(files[-1], "w") as f:
            f.write(text)
    if analyze is None:
        ok(True, "# SKIP systemd-analyze not installed")
    else:
        proc = subprocess.run([analyze, "verify"] + files, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = proc.stdout.decode("utf-8", "replace")
        mine = [line for line in out.splitlines() if tmp in line or "syncgate" in line]
        if proc.returncode != 0 and not mine:
            ok(True, "# SKIP systemd-analyze cannot run here: %s" % out.strip()[:200])
        else:
            ok(proc.returncode == 0 and not mine, "systemd-analyze verify: no error or warning")
            if mine:
                diag(out)

    # --- StandardInput=socket, as systemd does it: the program gets the
    # listening socket on fd 0 and serves FastCGI on it.
    store = os.path.join(tmp, "store")
    os.mkdir(store)
    cfg = os.path.join(tmp, "syncgate.json")
    with open(cfg, "w") as f:
        json.dump({"store": {"path": store}, "logging": {"level": "info", "syslog": False},
                   "databases": {"db": {}}}, f)
    unit = load(files[ins.index("syncgate-session-check.service.in")])["Service"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    env = dict(os.environ)
    env["SYNCGATE_CONFIG"] = cfg
    err = open(os.path.join(tmp, "stderr"), "wb")
    proc = subprocess.Popen([unit["ExecStart"]], stdin=listener.fileno(), stdout=err, stderr=err,
                            env=env, close_fds=True)
    listener.close()
    try:
        params = {"FCGI_ROLE": "AUTHORIZER", "REQUEST_METHOD": "GET", "REQUEST_URI": "/db/doc",
                  "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1"}
        reply = fastcgi_request(("127.0.0.1", port), params)
        like(reply.decode("latin-1"), r"(?s)^Status: 401.*Login required",
             "the session check serves FastCGI on its standard input socket")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        err.close()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
done()
