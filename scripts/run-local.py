"""Runs syncgate on this machine, on loopback: lighttpd with every program
(public side 127.0.0.1:4984, admin side 127.0.0.1:4985), a local OpenID
provider with a demo user (127.0.0.1:4986), and a replication backend, a
CouchDB-protocol server (express-pouchdb, in memory, 127.0.0.1:4987).
Started and stopped by scripts/run-local.sh.

The same stack can use a real provider and a real backend instead, from
the environment:
  SG_OIDC_ISSUER, SG_OIDC_CLIENT_ID, SG_OIDC_SECRET   a real provider (its
      client must allow http://127.0.0.1:4984/db/_oidc_callback)
  SG_BACKEND_PORT   a Sync Gateway or CouchDB listening on 127.0.0.1:PORT
      with a database "db", instead of the in-memory one
"""
import os
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import parties  # noqa: E402
import sgtest  # noqa: E402

PUBLIC, ADMIN, PROVIDER, BACKEND = 4984, 4985, 4986, 4987
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"
CLIENT_ID, CLIENT_SECRET = "syncgate-demo", "syncgate-demo-secret"
CALLBACK = "http://127.0.0.1:%d/db/_oidc_callback" % PUBLIC


def oidc_block(issuer, client_id, secret):
    return {"providers": {"demo": {
        "issuer": issuer, "client_id": client_id, "validation_key": secret,
        "callback_url": CALLBACK, "register": True, "username_claim": "sub",
        "channels_claim": "channels", "scope": ["openid", "email"]}}}


def main(ready_file):
    workdir = tempfile.mkdtemp(prefix="syncgate-local-")
    parts = []
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    try:
        issuer = os.environ.get("SG_OIDC_ISSUER")
        if issuer:
            oidc = oidc_block(issuer, os.environ.get("SG_OIDC_CLIENT_ID", ""),
                              os.environ.get("SG_OIDC_SECRET", ""))
        else:
            provider = parties.Provider({
                "port": PROVIDER,
                "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                             "redirect_uris": [CALLBACK]}],
                "accounts": {DEMO_USER: {"channels": ["demo"]}},
            }, tmpdir=workdir)
            parts.append(provider.start())
            oidc = oidc_block(provider.issuer, CLIENT_ID, CLIENT_SECRET)
        backend_port = int(os.environ.get("SG_BACKEND_PORT") or 0)
        if not backend_port:
            backend = parties.Backend({"port": BACKEND, "dbs": ["db"]}, tmpdir=workdir)
            parts.append(backend.start())
            backend_port = BACKEND
        config = {"logging": {"level": "info", "syslog": False},
                  "databases": {"db": {"session_cookie_secure": False,
                                       "guest": {"disabled": True}, "oidc": oidc}}}
        stack = sgtest.Stack(config, ports={"public": PUBLIC, "admin": ADMIN}, max_procs=2,
                             backend_port=backend_port)
        parts.append(stack.start())
        stack.request("PUT", "/db/_role/demo-team", port="admin",
                      body={"admin_channels": ["team"]})
        stack.request("PUT", "/db/_user/%s" % DEMO_USER, port="admin",
                      body={"password": DEMO_PASSWORD, "admin_channels": ["demo"],
                            "admin_roles": ["demo-team"]})
        with open(ready_file, "w") as f:
            f.write("%d\n%s\n%s\n" % (os.getpid(), stack.dir, issuer or provider.issuer))
        while not stopping:
            time.sleep(0.5)
    finally:
        for part in reversed(parts):
            part.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        try:
            os.unlink(ready_file)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    main(sys.argv[1])
