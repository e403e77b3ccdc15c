"""Runs syncgate on this machine: lighttpd on loopback with the programs,
the public side on 127.0.0.1:4984 and the admin side on 127.0.0.1:4985, and
a small demo backend that answers every replication request with the
identity it received.  Started and stopped by scripts/run-local.sh.
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))
import sgtest  # noqa: E402

PUBLIC, ADMIN = 4984, 4985
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def main(ready_file):
    config = {"logging": {"level": "info", "syslog": False},
              "databases": {"db": {"session_cookie_secure": False,
                                   "guest": {"disabled": True}}}}
    stack = sgtest.Stack(config, ports={"public": PUBLIC, "admin": ADMIN}, max_procs=2)
    stack.start()
    stack.request("PUT", "/db/_role/demo-team", port="admin",
                  body={"admin_channels": ["team"]})
    stack.request("PUT", "/db/_user/%s" % DEMO_USER, port="admin",
                  body={"password": DEMO_PASSWORD, "admin_channels": ["demo"],
                        "admin_roles": ["demo-team"]})
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    with open(ready_file, "w") as f:
        f.write("%d\n%s\n" % (os.getpid(), stack.dir))
    try:
        while not stopping:
            time.sleep(0.5)
    finally:
        stack.stop()
        try:
            os.unlink(ready_file)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    main(sys.argv[1])
