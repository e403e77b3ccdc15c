"""Real replication through the front: a PouchDB client (replicate.mjs)
replicates with a CouchDB-protocol server (backend.mjs, express-pouchdb)
through a web server with syncgate-session-check as authorizer.

For each front: push and pull as an authorized user with Basic and with
the session cookie, every request of the replication (database info,
_local checkpoints, _revs_diff, _bulk_docs, _changes, _bulk_get) passing the
authorizer and reaching the backend with the user's identity; 401 without
credentials; a live replication that stops with 401 once its user is
deleted, and once its session is ended; the guest's anonymous
replication.  Every request carries a forged X-Syncgate-User: admin,
which must never reach the backend.  The backend's own HTTP API, not the
front, is used to put documents in and to look at what arrived.
"""
import sys
import time

sys.dont_write_bytecode = True
import deploy  # noqa: E402
import parties  # noqa: E402
import sgtest  # noqa: E402
from sgtest import diag, done, is_, ok  # noqa: E402

sgtest.timeout(600)
sgtest.require_programs(sgtest.program("syncgate-session-check"),
                        sgtest.program("syncgate-user-admin"))
parties.require_pouch()

PASSWORD = "alice-Secret-42"
CONFIG = {"databases": {"db": {}}}
COOKIE = "SyncGatewaySession"
# Sent by the client on every request: a front that let it through would
# let anyone be anyone.
FORGED = {"X-Syncgate-User": "admin", "X-Syncgate-Auth": "admin"}


def fronts():
    """The fronts to replicate through: [(name, make)], where make(config,
    backend_port) returns a front that starts in a "with" block, proxies
    /db/... to 127.0.0.1:backend_port, and has sgtest.Stack's url(path) and
    request(method, path, port="public"|"admin", **kw).  Another web server
    is one more entry here."""
    return [
        ("lighttpd", lambda config, port: sgtest.Stack(config, backend_port=port)),
        ("apache", lambda config, port: deploy.Deployment("apache", config=config,
                                                          backend_port=port)),
    ]


def admin(front, method, path, body=None):
    return front.request(method, path, port="admin", body=body)


def make_alice(front):
    r = admin(front, "PUT", "/db/_user/alice", {"password": PASSWORD, "admin_channels": ["a"]})
    return r.status


def login(front):
    """A new session for alice: its cookie as "Name=value", or None."""
    r = front.request("POST", "/db/_session", body={"name": "alice", "password": PASSWORD})
    sid = sgtest.set_cookie(r.headers, COOKIE)
    return "%s=%s" % (COOKIE, sid) if r.status == 200 and sid else None


def show(rep):
    """The replication's events and stderr, as TAP comments."""
    for e in rep.events():
        diag("  " + " ".join("%s=%s" % (k, v) for k, v in sorted(e.items())
                             if k not in ("_t", "local_docs")))
    if rep.stderr():
        diag(rep.stderr())


def through_front(rep, backend, since, user, auth, name):
    """Checks that every request the client sent to /db/ passed the
    authorizer and reached the backend as user (auth), and that the
    forged identity did not."""
    # PouchDB also asks GET / for the server's uuid, which is outside
    # /db/ and not the front's to pass on; PouchDB does without it.
    sent = [r for r in rep.requests() if r[1].startswith("/db/") or r[1] == "/db"]
    refused = [r for r in sent if r[2] in (401, 403)]
    got = backend.requests(since=since)
    ok(sent and not refused, "%s: the client's %d requests to /db/ all passed the authorizer"
       % (name, len(sent)))
    if refused:
        diag("refused: %r" % refused)
    is_(len(got), len(sent), "%s: each of them reached the backend" % name)
    is_(sorted(set((r.user, r.auth) for r in got)), [(user, auth)],
        "%s: the backend saw %s (%s) on every request, never the forged admin"
        % (name, user or "no user", auth))
    return sent


def kinds(requests):
    """The kinds of request ("_local", "_changes"...) among [(method, path,
    status)]: the path segment after /db/, "info" for /db/ itself."""
    out = set()
    for _method, path, _status in requests:
        rest = path[len("/db/"):] if path.startswith("/db/") else ""
        out.add(rest.split("/")[0] if rest else "info")
    return out


def spec(front, auth, mode, docs=None, **more):
    s = {"remote": front.url("/db"), "auth": auth, "mode": mode, "headers": FORGED,
         "docs": docs or [], "timeout_ms": 60000}
    s.update(more)
    return s


def one_shot(front, backend, auth, label, auth_kind):
    """Push, then pull, as alice with auth."""
    tag = label.replace(" ", "-")
    docs = [{"_id": "%s-push-%d" % (tag, i), "n": i, "by": label} for i in range(3)]
    mark = backend.mark()
    rep = parties.replicate(spec(front, auth, "push", docs))
    if not ok(rep.ok, "%s: push completes" % label):
        show(rep)
    is_(rep.final and rep.final.get("docs_written"), 3, "%s: push wrote 3 documents" % label)
    arrived = [backend.get_doc(d["_id"]) for d in docs]
    is_([(d or {}).get("n") for d in arrived], [0, 1, 2],
        "%s: the pushed documents are at the backend" % label)
    sent = through_front(rep, backend, mark, "alice", auth_kind, label + " push")
    want = {"info", "_local", "_revs_diff", "_bulk_docs"}
    ok(want <= kinds(sent), "%s push: %s all went through" % (label, ", ".join(sorted(want))))

    ids = ["%s-pull-%d" % (tag, i) for i in range(2)]
    for i, doc_id in enumerate(ids):
        backend.put_doc(doc_id, {"n": i, "from": "backend"})
    mark = backend.mark()
    rep = parties.replicate(spec(front, auth, "pull"))
    if not ok(rep.ok, "%s: pull completes" % label):
        show(rep)
    local = rep.local_ids()
    ok(set(ids) <= set(local), "%s: the backend's documents arrived in the client" % label)
    ok(set(d["_id"] for d in docs) <= set(local),
       "%s: so did the documents pushed before" % label)
    sent = through_front(rep, backend, mark, "alice", auth_kind, label + " pull")
    want = {"info", "_local", "_changes", "_bulk_get"}
    ok(want <= kinds(sent), "%s pull: %s all went through" % (label, ", ".join(sorted(want))))


def live(front, backend, cookie, label):
    """Starts a continuous replication with cookie and waits until it is
    idle with one document each way; returns it (running)."""
    tag = label.replace(" ", "-")
    backend.put_doc(tag + "-seed", {"from": "backend"})
    rep = parties.Replication(spec(front, {"cookie": cookie}, "continuous",
                                   [{"_id": tag + "-local"}], timeout_ms=180000))
    rep.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
            tag + "-seed" in pulled(rep) and backend.get_doc(tag + "-local") is not None):
        time.sleep(0.05)
    ok(tag + "-seed" in pulled(rep) and backend.get_doc(tag + "-local") is not None,
       "%s: the live replication moved a document each way" % label)
    # A document written at the backend while it runs arrives too: the
    # long poll of _changes through the front works.
    backend.put_doc(tag + "-while-live", {"from": "backend"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and tag + "-while-live" not in pulled(rep):
        time.sleep(0.05)
    if not ok(tag + "-while-live" in pulled(rep) and rep.alive(),
              "%s: a document written at the backend later arrives while it runs" % label):
        show(rep)
    settle(backend)
    return rep


def settle(backend, quiet=0.3, timeout=10):
    """Waits until no request has reached the backend for quiet seconds:
    the checkpoints are written and only the long poll of _changes is
    open, so that what comes after is the replication's next move."""
    deadline = time.monotonic() + timeout
    last, since = backend.mark(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = backend.mark()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def pulled(rep):
    ids = set()
    for e in rep.events("change"):
        if e.get("direction") == "pull":
            ids.update(e.get("ids") or [])
    return ids


def cut_off(front, backend, rep, label, cut):
    """Runs cut() (which ends alice's right to replicate), writes a
    document at the backend so that the live replication has something
    to ask for, and checks it stops with 401.  Returns the seconds from
    the start of cut() to the client's first 401.

    The authorizer judges a request when it starts: the long poll of
    _changes that is open at the cut was allowed before it and stays open
    until the backend answers it.  express-pouchdb answers a long poll only
    when a change comes (CouchDB and Sync Gateway also at their timeout),
    hence the document: the change ends the poll, and the client's next
    request, for that document, is the one refused."""
    tag = label.replace(" ", "-")
    t0 = time.monotonic()
    cut()
    t_cut = time.monotonic()
    mark = backend.mark()
    backend.put_doc(tag + "-after", {"from": "backend"})
    err = rep.wait_for(401, event="error", timeout=60)
    if not ok(err is not None, "%s: the live replication stops with 401" % label):
        show(rep)
        return None
    first_401 = next((e for e in rep.events("request") if e.get("status") == 401), err)
    elapsed = first_401["_t"] - t0
    diag("%s: first 401 (%s %s) %.3f s after the cut began (the cut itself took %.3f s), "
         "error event after %.3f s" % (label, first_401.get("method"), first_401.get("path"),
                                       elapsed, t_cut - t0, err["_t"] - t0))
    status = rep.wait(timeout=15)
    is_(status, 1, "%s: the client exits with a failure" % label)
    is_(rep.status, 401, "%s: its final status is 401" % label)
    ok(tag + "-after" not in rep.local_ids(),
       "%s: the document written after the cut never reached the client" % label)
    # The long poll that was open before the cut may still be answered;
    # nothing else of alice's reaches the backend after it.
    late = [r for r in backend.requests(since=mark) if r.path != "/db/_changes"]
    is_(late, [], "%s: no request of hers reached the backend after the cut" % label)
    rep.stop()
    return elapsed


timings = {}
for front_name, make in fronts():
    with parties.Backend() as backend, make(CONFIG, backend.port) as front:
        diag("front %s, backend on port %d" % (front_name, backend.port))
        is_(make_alice(front), 201, "%s: alice created through the admin API" % front_name)

        one_shot(front, backend, {"basic": ["alice", PASSWORD]}, front_name + " Basic", "basic")
        cookie = login(front)
        ok(cookie, "%s: POST /db/_session gives alice a session cookie" % front_name)
        one_shot(front, backend, {"cookie": cookie}, front_name + " cookie", "session")

        # --- refused
        for label, auth in (("no credentials", None),
                            ("a wrong password", {"basic": ["alice", "wrong-password"]}),
                            ("an unknown session", {"cookie": COOKIE + "=" + "0" * 40})):
            for mode in ("pull", "push"):
                mark = backend.mark()
                rep = parties.replicate(spec(front, auth, mode, [{"_id": "refused-doc"}]))
                if not is_((rep.returncode, rep.status), (1, 401),
                           "%s: %s with %s fails with 401" % (front_name, mode, label)):
                    show(rep)
                is_(backend.requests(since=mark), [],
                    "%s: %s with %s: nothing reached the backend" % (front_name, mode, label))
        is_(backend.get_doc("refused-doc"), None, "%s: no refused push wrote anything"
            % front_name)

        # --- a live replication ends when the user is deleted
        name = front_name + " user deleted"
        rep = live(front, backend, cookie, name)
        timings[name] = cut_off(front, backend, rep, name, lambda: is_(
            admin(front, "DELETE", "/db/_user/alice").status, 200,
            "%s: alice deleted through the admin API" % front_name))

        # --- ... and when the session is ended, by the client or the admin
        is_(make_alice(front), 201, "%s: alice created again" % front_name)
        cookie = login(front)
        name = front_name + " session ended by DELETE /db/_session"
        rep = live(front, backend, cookie, name)
        timings[name] = cut_off(front, backend, rep, name, lambda: is_(
            front.request("DELETE", "/db/_session", cookies=cookie).status, 200,
            "%s: DELETE /db/_session with her cookie" % front_name))

        cookie = login(front)
        sid = cookie.split("=", 1)[1]
        name = front_name + " session ended by the admin API"
        rep = live(front, backend, cookie, name)
        timings[name] = cut_off(front, backend, rep, name, lambda: is_(
            admin(front, "DELETE", "/db/_session/" + sid).status, 200,
            "%s: the admin API's DELETE /db/_session/{id}" % front_name))
        r = front.request("GET", "/db/_session", cookies=cookie)
        is_((r.status, isinstance(r.body, dict) and r.body.get("reason")), (401, "Session Invalid"),
            "%s: GET /db/_session with the ended session: 401 Session Invalid" % front_name)

        # --- the guest, once enabled, replicates anonymously
        is_(admin(front, "PUT", "/db/_user/GUEST",
                  {"disabled": False, "admin_channels": ["public"]}).status, 200,
            "%s: guest enabled" % front_name)
        mark = backend.mark()
        rep = parties.replicate(spec(front, None, "pull"))
        if not ok(rep.ok, "%s: anonymous pull completes with the guest enabled" % front_name):
            show(rep)
        ok(rep.local_ids(), "%s: the guest got the documents" % front_name)
        through_front(rep, backend, mark, None, "guest", front_name + " guest")

        # --- over the whole run
        users = sorted(set(r.user or "" for r in backend.requests()))
        is_(users, ["", "alice"], "%s: the backend only ever saw alice and the guest" % front_name)
        forged = [r for r in backend.requests(direct=None)
                  if "admin" in (r.user or "") or "admin" in (r.auth or "")]
        is_(forged, [], "%s: the forged X-Syncgate-User: admin never reached the backend"
            % front_name)

for name, secs in timings.items():
    diag("%s: 401 after %s" % (name, "%.3f s" % secs if secs is not None else "(never)"))
done()
