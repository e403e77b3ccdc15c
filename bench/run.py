#!/usr/bin/env python3
"""bench/run.py: what the session check costs in front of a static file.

SPEC section 10, in one run and side by side: wrk on loopback with
keep-alive against the same small static file served by lighttpd, first
with no authorizer, then behind the do-nothing FastCGI authorizer
(bench/noop-authorizer), then behind syncgate-session-check with a session
cookie, with a Bearer ID token (the same one on every request, so the
process's cache of validated tokens answers), with Basic and as GUEST.
Every authorizer row runs with the same number of FastCGI processes.
Each figure is printed beside its ratio to the do-nothing authorizer and
to no authorizer from the same run, with the CPU time per request of the
authorizer, of lighttpd and of everything, and the resident memory of
every process is printed after the run.  When bench/jose-bench is built,
its signature verifications per second for fresh ID tokens (RS256,
ES256) are printed beside the rows.

This is not a test: a slow machine gets slow figures and the targets are
marked met or missed, never failed.  The exit status is 1 only when the
run itself is broken: a credential that should pass does not, a measured
row saw non-2xx answers, wrk failed, Basic ran bcrypt again after the
cache had the password, a tampered Bearer token was not refused, or
jose-bench refused one of its tokens.

The lighttpd configurations come from the black-box harness
(tests/blackbox/sgtest.py), so what is measured is what is tested.

Environment: top_builddir (where the programs were built), as for the
black-box tests; LIGHTTPD, NOOP_AUTHORIZER, JOSE_BENCH, WRK and OPENSSL
name other binaries.

Python 3 standard library, Debian's wrk and the openssl command (the
Bearer row's key and token).
"""

import argparse
import base64
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import sgtest  # noqa: E402

# sgtest speaks TAP when a test script dies; this is not a test script.
sgtest._tap["done"] = True
sys.excepthook = sys.__excepthook__


def _on_signal(signum, frame):
    # SystemExit runs sgtest's atexit handler, which stops every Stack.
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(_sig, _on_signal)

# --------------------------------------------------------------------------
# What is measured

ROWS = (
    # (key, label, stack, credential)
    ("static", "static file, no authorizer", "none", None),
    ("noop", "do-nothing FastCGI authorizer", "noop", None),
    ("session", "session-check, session cookie", "check", "session"),
    ("bearer", "session-check, Bearer ID token (cached)", "check", "bearer"),
    ("basic", "session-check, Basic (cached)", "check", "basic"),
    ("guest", "session-check, GUEST", "check", "guest"),
)
ROW_KEYS = [r[0] for r in ROWS]
STACK_NAMES = {"none": "no authorizer", "noop": "do-nothing", "check": "session-check"}

DB = "db"
URL_PATH = "/%s/%s" % (DB, sgtest.STATIC_FILE)
USER = "bench"
PASSWORD = "bench-Secret-42"
ROLE = "bench-role"
USER_CHANNELS = ["bench-a", "bench-b", "bench-c"]
ROLE_CHANNELS = ["bench-r1", "bench-r2"]
GUEST_CHANNELS = ["public"]

# Info, not debug: debug logs a line for every allowed request, which
# would measure the log writes.  Info logs each full bcrypt verification.
BENCH_CONFIG = {
    "logging": {"level": "info", "syslog": False},
    "databases": {DB: {"session_cookie_secure": False}},
}
# The Bearer row's issuer: a local_jwt entry with its key in the
# configuration (no network).  username_claim "sub" and sub = USER make
# the token name the same user as the other rows.
JWT_ISSUER = "https://issuer.bench.invalid"
JWT_CLIENT_ID = "syncgate-bench"
JWT_KID = "bench-1"
JWT_TTL = 86400
BCRYPT_MARK = "password.bcrypt"
# How long a process trusts a verified password (SG_PASSWORD_CACHE_SECONDS
# in lib/password.h): a longer run may see one more bcrypt per process for
# each of these periods.
PASSWORD_CACHE_SECONDS = 300

# Programs the benchmark does not use are left out of the stacks, so that
# their idle processes do not show in the memory table.
UNUSED = {"syncgate-oidc": None, "syncgate-oidc-callback": None,
          "syncgate-oidc-refresh": None}
NO_PROGRAMS = dict((name, None) for name in sgtest.PROGRAMS)

# Targets (SPEC section 10): marked met or missed, never failed.
TARGET_RATIO = 0.85             # of the do-nothing authorizer's requests/s
TARGET_RSS_KB = 10 * 1024       # per syncgate process

WRK = os.environ.get("WRK") or shutil.which("wrk") or "/usr/bin/wrk"
OPENSSL = os.environ.get("OPENSSL") or shutil.which("openssl") or "/usr/bin/openssl"


def jose_bench():
    """Path of bench/jose-bench (env JOSE_BENCH overrides)."""
    return os.environ.get("JOSE_BENCH") or os.path.join(sgtest.builddir(), "bench",
                                                        "jose-bench")


class Broken(Exception):
    """The run cannot give meaningful figures."""


# --------------------------------------------------------------------------
# wrk and CPU time

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.match(r"^([0-9.]+)(us|ms|s|m|h)$", text)
    if not m:
        raise Broken("wrk printed a latency I cannot read: %r" % text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    """The figures of one wrk run: {"rps", "requests", "p50", "p99",
    "non2xx", "errors"}, latencies in ms.  wrk counts 3xx as success; no
    row here can get one."""
    res = {"non2xx": 0, "errors": 0}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", out, re.M)
    if not m:
        raise Broken("no Requests/sec in wrk's output:\n" + out)
    res["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    res["requests"] = int(m.group(1)) if m else 0
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+(\S+)" % pct, out, re.M)
        if not m:
            raise Broken("no %s%% latency in wrk's output:\n%s" % (pct, out))
        res[key] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    return res


def _busy_seconds():
    """CPU time the whole machine has spent busy (user, nice, system, irq,
    softirq), in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / float(os.sysconf("SC_CLK_TCK"))


def _cpu_seconds(pid):
    """CPU time pid has run (schedstat, nanosecond resolution); 0 when it
    is gone."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _children_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_by_group(stacks, measured):
    """{"stacks": seconds of every stack's processes, "authorizer": of the
    measured stack's authorizer pool, "lighttpd": of its front lighttpd}."""
    out = {"stacks": 0.0, "authorizer": 0.0, "lighttpd": 0.0}
    for st in stacks:
        pools = pool_of(st) if st is measured else {}
        lpid = st.lighttpd_pid() if st is measured else None
        for p in st.processes():
            sec = _cpu_seconds(p["pid"])
            out["stacks"] += sec
            if pools.get(p["pid"]) == "authorizer":
                out["authorizer"] += sec
            elif p["pid"] == lpid:
                out["lighttpd"] += sec
    return out


def run_wrk(args, url, headers, seconds, stacks=(), measured=None):
    """Runs wrk.  Returns its figures (parse_wrk) and, from CPU time:
    "auth_us", "lighttpd_us", "total_us": CPU microseconds per request of
    the measured stack's authorizer pool, of its front lighttpd and of
    everything the row ran (every stack and wrk); "other_cpu": CPUs' worth
    of time that other processes used meanwhile (other work on the machine,
    which lowers requests/s)."""
    cmd = [args.wrk, "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % seconds,
           "--latency"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    busy0, own0, wrk0 = _busy_seconds(), _cpu_by_group(stacks, measured), _children_seconds()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=seconds + 60)
    elapsed = time.monotonic() - t0
    busy1, own1, wrk1 = _busy_seconds(), _cpu_by_group(stacks, measured), _children_seconds()
    if proc.returncode != 0:
        raise Broken("%s exited with %d:\n%s" % (" ".join(cmd), proc.returncode, proc.stdout))
    res = parse_wrk(proc.stdout)
    ours = (own1["stacks"] - own0["stacks"]) + (wrk1 - wrk0)
    res["other_cpu"] = max(0.0, ((busy1 - busy0) - ours) / elapsed)
    n = float(max(1, res["requests"]))
    res["auth_us"] = (own1["authorizer"] - own0["authorizer"]) * 1e6 / n
    res["lighttpd_us"] = (own1["lighttpd"] - own0["lighttpd"]) * 1e6 / n
    res["total_us"] = ours * 1e6 / n
    return res


# --------------------------------------------------------------------------
# The Bearer row's key and token


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _openssl(args, data=None):
    proc = subprocess.run([OPENSSL] + args, input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise Broken("openssl %s: %s" % (" ".join(args), proc.stderr.decode(errors="replace")))
    return proc.stdout


def make_bearer():
    """An RSA 2048 key made by openssl, its public JWK and an RS256 ID token
    for USER signed with it, valid for JWT_TTL seconds.  Returns (jwk, token);
    the private key is removed."""
    tmp = tempfile.mkdtemp(prefix="sgbench-")
    try:
        key = os.path.join(tmp, "key.pem")
        _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", key])
        text = _openssl(["rsa", "-in", key, "-noout", "-text"]).decode()
        m = re.search(r"^publicExponent: (\d+)", text, re.M)
        mod = re.search(r"^Modulus=([0-9A-Fa-f]+)$",
                        _openssl(["rsa", "-in", key, "-noout", "-modulus"]).decode(), re.M)
        if not m or not mod:
            raise Broken("openssl printed no modulus or exponent for the Bearer key")
        e, n = int(m.group(1)), mod.group(1)
        jwk = {"kty": "RSA", "kid": JWT_KID, "use": "sig", "alg": "RS256",
               "n": _b64url(bytes.fromhex(n if len(n) % 2 == 0 else "0" + n)),
               "e": _b64url(e.to_bytes((e.bit_length() + 7) // 8, "big"))}
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": JWT_KID}
        claims = {"iss": JWT_ISSUER, "aud": JWT_CLIENT_ID, "sub": USER, "iat": now,
                  "exp": now + JWT_TTL, "jti": _b64url(os.urandom(12))}
        signing_input = "%s.%s" % (_b64url(json.dumps(header, separators=(",", ":")).encode()),
                                   _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = _openssl(["dgst", "-sha256", "-sign", key], signing_input.encode())
        return jwk, "%s.%s" % (signing_input, _b64url(sig))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tampered(token):
    """token with one character of its signature changed."""
    head, _, sig = token.rpartition(".")
    i = len(sig) // 2
    return "%s.%s%s%s" % (head, sig[:i], "A" if sig[i] != "A" else "B", sig[i + 1:])


def bench_config(jwk):
    """BENCH_CONFIG with the Bearer row's issuer (when jwk is not None)."""
    cfg = json.loads(json.dumps(BENCH_CONFIG))
    if jwk is not None:
        cfg["databases"][DB]["local_jwt"] = {"bench": {
            "issuer": JWT_ISSUER, "client_id": JWT_CLIENT_ID, "algorithms": ["RS256"],
            "keys": [jwk], "register": True, "username_claim": "sub"}}
    return cfg


# --------------------------------------------------------------------------
# Stacks and credentials


def start_stack(kind, layout, args, jwk=None):
    """kind: "none", "noop" or "check"; layout: "front" or "proxied"; jwk:
    the Bearer row's public key, or None."""
    magnet = layout == "proxied" or args.magnet
    common = dict(config=bench_config(jwk), max_procs=args.procs,
                  static_backend="front" if layout == "front" else True)
    if kind == "none":
        st = sgtest.Stack(programs=NO_PROGRAMS, authorizer=None, magnet=False, **common)
    elif kind == "noop":
        st = sgtest.Stack(programs=NO_PROGRAMS, authorizer=sgtest.noop_authorizer(),
                          magnet=magnet, **common)
    else:
        st = sgtest.Stack(programs=UNUSED, authorizer=True, magnet=magnet, **common)
    return st.start()


def pool_of(st):
    """{pid: pool} from the harness's pid files (run/<pool>.<pid>.pid)."""
    out = {}
    for f in os.listdir(st.path("run")):
        m = re.match(r"^(.+)\.(\d+)\.pid$", f)
        if m:
            out[int(m.group(2))] = m.group(1)
    return out


def expect(cond, what, st):
    if not cond:
        raise Broken(what + "\n" + st.logs()[-4000:])


def header_dict(headers):
    out = {}
    for h in headers:
        k, _, v = h.partition(":")
        out[k.strip()] = v.strip()
    return out


def basic_header():
    cred = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
    return "Authorization: Basic " + cred


def setup_user(st):
    """Creates the role and the user on the admin side and logs in with the
    password; returns the session cookie header."""
    r = st.request("PUT", "/%s/_role/%s" % (DB, ROLE), port="admin",
                   body={"admin_channels": ROLE_CHANNELS})
    expect(r.status in (200, 201), "PUT _role: %s %r" % (r.status, r.body), st)
    r = st.request("PUT", "/%s/_user/%s" % (DB, USER), port="admin",
                   body={"password": PASSWORD, "admin_channels": USER_CHANNELS,
                         "admin_roles": [ROLE]})
    expect(r.status in (200, 201), "PUT _user: %s %r" % (r.status, r.body), st)
    r = st.request("POST", "/%s/_session" % DB, body={"name": USER, "password": PASSWORD})
    expect(r.status == 200, "POST /%s/_session: %s %r" % (DB, r.status, r.body), st)
    cookie_name = st.config["databases"][DB].get("session_cookie_name", "SyncGatewaySession")
    sid = sgtest.set_cookie(r.headers, cookie_name)
    expect(sid, "POST /%s/_session set no %s cookie" % (DB, cookie_name), st)
    return "Cookie: %s=%s" % (cookie_name, sid)


def enable_guest(st):
    r = st.request("PUT", "/%s/_user/GUEST" % DB, port="admin",
                   body={"disabled": False, "admin_channels": GUEST_CHANNELS})
    expect(r.status in (200, 201), "PUT _user/GUEST: %s %r" % (r.status, r.body), st)


def precheck(st, key, headers):
    """One request must pass and get the file itself.  With no echo backend
    the file in the body is how we know the authorizer said 200: lighttpd
    hands any other answer of an authorizer to the client."""
    with open(st.path("static", DB, sgtest.STATIC_FILE)) as f:
        content = f.read()
    r = st.request("GET", URL_PATH, headers=header_dict(headers))
    expect(r.status == 200, "%s: a single request got %s, not 200: %r"
           % (key, r.status, r.body), st)
    expect(r.body == content, "%s: a single request got %r, not the static file"
           % (key, r.body), st)


def negative_control(st, key, headers=None):
    """Without the credential (or with the one given) the same request must
    be refused, or the row would measure a pass-through."""
    r = st.request("GET", URL_PATH, headers=header_dict(headers or []))
    expect(r.status == 401, "%s: %s the request got %s, not 401"
           % (key, "with a tampered credential" if headers else "without credentials",
              r.status), st)


def responder_identity(st, headers, want_name):
    """GET /db/_session with the credential names the expected user."""
    r = st.request("GET", "/%s/_session" % DB, headers=header_dict(headers))
    name = r.body.get("userCtx", {}).get("name") if isinstance(r.body, dict) else None
    expect(r.status == 200 and name == want_name, "GET /%s/_session says %s %r, not %r"
           % (DB, r.status, r.body, want_name), st)


def bcrypt_lines(st):
    return st.logs().count(BCRYPT_MARK)


# --------------------------------------------------------------------------
# Memory


def _smaps(pid):
    """(private kB, shared kB, Berkeley DB region kB) of pid's resident
    pages; (None, None, None) when /proc/<pid>/smaps cannot be read."""
    try:
        with open("/proc/%d/smaps" % pid) as f:
            text = f.read()
    except OSError:
        return None, None, None
    private = shared = regions = 0
    mapping = ""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            mapping = parts[5] if len(parts) > 5 else ""
        elif parts[0] in ("Private_Clean:", "Private_Dirty:"):
            private += int(parts[1])
        elif parts[0] in ("Shared_Clean:", "Shared_Dirty:"):
            shared += int(parts[1])
        elif parts[0] == "Rss:" and os.path.basename(mapping).startswith("__db."):
            regions += int(parts[1])
    return private, shared, regions


def memory(st, stack_name):
    """[(stack, pool, pid, program, rss, private, shared, regions)], kB."""
    pools = pool_of(st)
    lpid = st.lighttpd_pid()
    rows = []
    for p in sorted(st.processes(), key=lambda p: p["pid"]):
        if p["pid"] in pools:
            pool = pools[p["pid"]]
            if pool == "session-check":
                pool = "session-check (responder)"
        elif p["pid"] == lpid:
            pool = "lighttpd (front)"
        elif "lighttpd" in p["comm"]:
            pool = "lighttpd (backend)"
        else:
            pool = "?"
        prog = os.path.basename(p["cmdline"][0]) if p["cmdline"] else p["comm"]
        rows.append((stack_name, pool, p["pid"], prog, p["rss_kb"]) + _smaps(p["pid"]))
    return rows


# --------------------------------------------------------------------------
# The run


def measure(args, st, key, headers, stacks, results):
    """Warm-up, then the measured wrk run; keeps the best round of the row
    in results[key].  Returns the measured run's figures."""
    url = st.url(URL_PATH)
    warm = run_wrk(args, url, headers, args.warmup) if args.warmup > 0 else None
    res = run_wrk(args, url, headers, args.duration, stacks, st)
    res["warmup_requests"] = warm["requests"] if warm else 0
    bad = res["non2xx"] + (warm["non2xx"] if warm else 0)
    if bad:
        raise Broken("%s: %d answers were not 2xx (wrk's count): the row would measure "
                     "refusals\n%s" % (key, bad, st.logs()[-4000:]))
    if res["requests"] == 0:
        raise Broken("%s: wrk completed no request" % key)
    if key not in results or res["rps"] > results[key]["rps"]:
        results[key] = res
    sys.stderr.write("  %-8s %9.0f req/s  p50 %.2f ms  p99 %.2f ms  CPU us/req: authorizer "
                     "%.1f, all %.1f  (%d requests, %d socket errors, other load %.2f)\n"
                     % (key, res["rps"], res["p50"], res["p99"], res["auth_us"],
                        res["total_us"], res["requests"], res["errors"], res["other_cpu"]))
    return res


def run_layout(args, layout, keys, bearer):
    """Runs the chosen rows in one layout, all stacks up at once and the
    rows in turn, args.repeat rounds; bearer is make_bearer()'s (jwk,
    token).  Returns (results, memory rows, bcrypt count or None)."""
    results, mem, stacks = {}, [], {}
    bcrypt = {"n": 0, "requests": 0, "first": None, "last": None}
    jwk, token = bearer
    try:
        for key, _label, stack, _cred in ROWS:
            if key in keys and stack not in stacks:
                stacks[stack] = start_stack(stack, layout, args, jwk)
        creds = {"session": [], "basic": [basic_header()], "guest": [],
                 "bearer": ["Authorization: Bearer " + token] if token else []}
        if "check" in stacks:
            st = stacks["check"]
            creds["session"] = [setup_user(st)]
            responder_identity(st, creds["session"], USER)
            responder_identity(st, creds["basic"], USER)
            if token:
                responder_identity(st, creds["bearer"], USER)
        guest_on = False
        for _round in range(args.repeat):
            for key, _label, stack, cred in ROWS:
                if key not in keys:
                    continue
                st = stacks[stack]
                headers = creds.get(cred, [])
                if stack == "check" and not guest_on:
                    negative_control(st, key)
                if cred == "bearer":
                    negative_control(st, key, ["Authorization: Bearer " + tampered(token)])
                if cred == "guest" and not guest_on:
                    enable_guest(st)
                    guest_on = True
                before = bcrypt_lines(st) if cred == "basic" else 0
                if cred == "basic" and bcrypt["first"] is None:
                    bcrypt["first"] = time.monotonic()
                precheck(st, key, headers)
                res = measure(args, st, key, headers, list(stacks.values()), results)
                if cred == "basic":
                    # stderr is unbuffered: the lines are in the files now.
                    bcrypt["n"] += bcrypt_lines(st) - before
                    bcrypt["requests"] += res["requests"] + res["warmup_requests"]
                    bcrypt["last"] = time.monotonic()
        for stack, st in stacks.items():
            mem += memory(st, STACK_NAMES[stack])
    finally:
        for st in stacks.values():
            st.stop()
    return results, mem, (bcrypt if "basic" in keys else None)


# --------------------------------------------------------------------------
# Output


def run_jose_bench(args):
    """Runs bench/jose-bench with args.jose_tokens tokens per algorithm.
    Returns its lines, or None when it is not built."""
    prog = jose_bench()
    if not sgtest.is_executable(prog):
        return None
    sys.stderr.write("bench: %s %d\n" % (prog, args.jose_tokens))
    proc = subprocess.run([prog, str(args.jose_tokens)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    if proc.returncode != 0:
        raise Broken("%s exited with %d:\n%s" % (prog, proc.returncode, proc.stdout))
    return proc.stdout.strip().splitlines()


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lv = subprocess.run([sgtest.lighttpd_binary(), "-v"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, universal_newlines=True).stdout.strip()
    wv = subprocess.run([WRK, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        universal_newlines=True).stdout.splitlines()
    return "%d CPUs, %s, Linux %s; %s; %s" % (
        os.cpu_count(), model, platform.release(), lv.split(" - ")[0],
        wv[0].split(" [")[0] if wv else "wrk ?")


def ratio(a, b):
    return "%.2f" % (a / b) if b else "-"


def print_table(title, results, keys):
    print()
    print(title)
    print()
    print("| # | row | requests/s | p50 ms | p99 ms | vs do-nothing | vs no authorizer "
          "| requests | non-2xx | CPU us/req: authorizer | lighttpd | all, wrk too "
          "| other load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    noop = results.get("noop", {}).get("rps")
    static = results.get("static", {}).get("rps")
    for i, (key, label, _stack, _cred) in enumerate(ROWS, 1):
        if key not in results:
            continue
        r = results[key]
        print("| %d | %s | %.0f | %.2f | %.2f | %s | %s | %d | %d | %s | %.1f | %.1f | %.2f |"
              % (i, label, r["rps"], r["p50"], r["p99"], ratio(r["rps"], noop),
                 ratio(r["rps"], static), r["requests"], r["non2xx"],
                 "%.1f" % r["auth_us"] if key != "static" else "-", r["lighttpd_us"],
                 r["total_us"], r["other_cpu"]))
    print()
    print("CPU us/req: CPU time per request of the authorizer's processes, of the front "
          "lighttpd and of\neverything the row ran, wrk included (schedstat, rusage).  other "
          "load: CPUs' worth of time that\nother processes used during the row; well above 0, "
          "requests/s are lower than this machine can\ndo, and the CPU times higher (shared "
          "caches), though less so.")


def print_memory(rows):
    print()
    print("Resident memory after the run (kB; RSS = private + shared; db regions: the part "
          "of RSS in\nBerkeley DB's shared __db.* files):")
    print()
    print("| stack | pool | program | pid | RSS | private | shared | db regions |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for stack, pool, pid, prog, rss, priv, shared, regions in rows:
        print("| %s | %s | %s | %d | %d | %s | %s | %s |"
              % (stack, pool, prog, pid, rss, "-" if priv is None else priv,
                 "-" if shared is None else shared, "-" if regions is None else regions))


def print_targets(results, mem):
    print()
    print("Targets (marked, not enforced):")
    noop = results.get("noop", {}).get("rps")
    for key, label, stack, _cred in ROWS:
        if stack != "check" or key not in results:
            continue
        if not noop:
            print("  [?     ] %s: no do-nothing row to compare with" % label)
            continue
        r = results[key]["rps"] / noop
        print("  [%s] %s: %.0f%% of the do-nothing authorizer (target >= %.0f%%)"
              % ("met   " if r >= TARGET_RATIO else "MISSED", label, 100 * r,
                 100 * TARGET_RATIO))
    for _stack, pool, pid, prog, rss, _p, _s, _r in mem:
        if prog.startswith("syncgate-"):
            print("  [%s] %s (%s, pid %d): %.1f MiB resident (target <= %.0f MiB)"
                  % ("met   " if rss <= TARGET_RSS_KB else "MISSED", prog, pool, pid,
                     rss / 1024.0, TARGET_RSS_KB / 1024.0))


def main():
    ap = argparse.ArgumentParser(
        description="Measure syncgate-session-check against a static file and a do-nothing "
                    "FastCGI authorizer (SPEC section 10).  Set top_builddir to the build.")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured row (10)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="seconds of warm-up before each row, not measured (2)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--procs", type=int, default=2,
                    help="FastCGI processes per pool, the same in every row (2)")
    ap.add_argument("--rows", default=",".join(ROW_KEYS),
                    help="comma-separated subset of: %s" % ",".join(ROW_KEYS))
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over the rows; each row shows its best round (1)")
    ap.add_argument("--proxied", action="store_true",
                    help="also measure with the file behind mod_proxy on a second lighttpd "
                         "and mod_magnet, as deployed")
    ap.add_argument("--magnet", action="store_true",
                    help="run the mod_magnet header script in the main layout too")
    ap.add_argument("--jose-tokens", type=int, default=2000,
                    help="fresh ID tokens per algorithm for bench/jose-bench, 0 to skip it "
                         "(2000)")
    ap.add_argument("--builddir", help="where the programs were built (else $top_builddir)")
    args = ap.parse_args()

    if args.builddir:
        os.environ["top_builddir"] = os.path.abspath(args.builddir)
    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROW_KEYS]
    if unknown or not keys:
        ap.error("--rows: unknown %s (choose from %s)"
                 % (",".join(unknown) or "(none)", ",".join(ROW_KEYS)))
    if min(args.duration, args.connections, args.threads, args.procs, args.repeat) < 1 or \
            min(args.warmup, args.jose_tokens) < 0:
        ap.error("--duration, --connections, --threads, --procs and --repeat must be "
                 "positive, --warmup and --jose-tokens at least 0")
    args.wrk = WRK
    if not sgtest.is_executable(WRK):
        sys.exit("bench: wrk not found (apt-get install wrk, or set WRK)")
    if sgtest.lighttpd_binary() is None:
        sys.exit("bench: lighttpd not found (apt-get install lighttpd, or set LIGHTTPD)")
    need = [sgtest.noop_authorizer()] if "noop" in keys else []
    if set(keys) & {"session", "bearer", "basic", "guest"}:
        need += [sgtest.program("syncgate-session-check"),
                 sgtest.program("syncgate-user-admin")]
    missing = [p for p in need if not sgtest.is_executable(p)]
    if missing:
        sys.exit("bench: not built: %s (set top_builddir)" % ", ".join(missing))
    if "bearer" in keys and not sgtest.is_executable(OPENSSL):
        sys.exit("bench: openssl not found (apt-get install openssl, or set OPENSSL)")

    print("syncgate benchmark (bench/run.py)")
    print()
    print("machine: %s" % machine())
    print("load: wrk -t%d -c%d -d%ds --latency, keep-alive, GET %s (%d bytes), %ds warm-up "
          "per row;\n%d FastCGI process(es) per pool; %d round(s)%s; user with %d channels and "
          "a role with %d; logging at info"
          % (args.threads, args.connections, args.duration, URL_PATH, sgtest.STATIC_BYTES,
             args.warmup, args.procs, args.repeat, ", best shown" if args.repeat > 1 else "",
             len(USER_CHANNELS), len(ROLE_CHANNELS)))
    sys.stdout.flush()

    layouts = [("front", "Main table, \"front\" layout: the front lighttpd runs the authorizer, "
                         "then serves the file itself\n(no proxy hop, %s)."
                % ("mod_magnet on" if args.magnet else "no mod_magnet"))]
    if args.proxied:
        layouts.append(("proxied", "Proxied layout, as deployed: the authorizer, mod_magnet "
                                   "copies its variables into headers,\nmod_proxy to a second "
                                   "lighttpd serving the file (a new backend connection per "
                                   "request)."))
    status = 0
    main_results, main_mem = {}, []
    try:
        bearer = make_bearer() if "bearer" in keys else (None, None)
    except Broken as e:
        print()
        print("BROKEN: %s" % e)
        return 1
    for layout, title in layouts:
        sys.stderr.write("bench: %s layout\n" % layout)
        try:
            results, mem, bcrypt = run_layout(args, layout, keys, bearer)
        except Broken as e:
            print()
            print("BROKEN (%s layout): %s" % (layout, e))
            return 1
        print_table(title, results, keys)
        if bcrypt is not None:
            print()
            print("bcrypt verifications during the Basic row: %d (requests: %d)"
                  % (bcrypt["n"], bcrypt["requests"]))
            span = bcrypt["last"] - bcrypt["first"]
            allowed = args.procs * (1 + int(span // PASSWORD_CACHE_SECONDS))
            if bcrypt["n"] > allowed:
                print("BROKEN: more than %d (one per authorizer process per %d s): the Basic "
                      "cache did not hold" % (allowed, PASSWORD_CACHE_SECONDS))
                status = 1
        if layout == "front":
            main_results, main_mem = results, mem
        sys.stdout.flush()
    if args.jose_tokens > 0:
        try:
            lines = run_jose_bench(args)
        except (Broken, subprocess.TimeoutExpired) as e:
            print()
            print("BROKEN (jose-bench): %s" % e)
            return 1
        print()
        if lines is None:
            print("Signature verifications per second for fresh tokens: bench/jose-bench "
                  "is not built.")
        else:
            print("Signature verifications per second for fresh tokens (bench/jose-bench, "
                  "%d distinct ID tokens\nper algorithm, each validated once by "
                  "sg_jose_validate; one process, one thread):" % args.jose_tokens)
            print()
            for line in lines:
                print("    " + line)
    print_memory(main_mem)
    print_targets(main_results, main_mem)
    return status


if __name__ == "__main__":
    sys.exit(main())
