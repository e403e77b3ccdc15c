#!/bin/sh
# Runs syncgate for real on this machine, on loopback:
#   scripts/run-local.sh        install what is missing, build, start
#   scripts/run-local.sh stop   stop it, leaving no process behind
# What runs is described in scripts/run-local.py (and how to put a real
# OpenID provider or a real Sync Gateway/CouchDB in place of the demo ones).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build="${SG_BUILD_DIR:-$top/_build}"
state="${SG_RUN_DIR:-/tmp/syncgate-local}"
ready="$state/ready"

running() {
	[ -f "$ready" ] && kill -0 "$(head -n 1 "$ready")" 2>/dev/null
}

if [ "${1:-}" = "stop" ]; then
	if ! running; then
		echo "syncgate is not running"
		exit 0
	fi
	pid=$(head -n 1 "$ready")
	kill "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	echo "syncgate stopped"
	exit 0
fi

if running; then
	echo "syncgate is already running (pid $(head -n 1 "$ready")): http://127.0.0.1:4984/db/"
	echo "stop it with: $0 stop"
	exit 0
fi

# SG_SKIP_SETUP=1: the packages are installed and the build is done (the
# test of this script runs it from inside `make check`).
if [ -z "${SG_SKIP_SETUP:-}" ]; then
	"$top/scripts/install-deps.sh"
	(cd "$top" && [ -x configure ] || autoreconf -fi >/dev/null 2>&1)
	mkdir -p "$build"
	(cd "$build" && { [ -f Makefile ] || "$top/configure" -q; } && make -j2 >/dev/null)
fi

mkdir -p "$state"
rm -f "$ready"
top_builddir="$build" top_srcdir="$top" nohup python3 "$top/scripts/run-local.py" "$ready" \
	>"$state/run.log" 2>&1 &
i=0
while [ ! -f "$ready" ] && [ $i -lt 300 ]; do
	if ! kill -0 $! 2>/dev/null; then
		echo "syncgate did not start:"; tail -20 "$state/run.log"; exit 1
	fi
	sleep 0.1; i=$((i + 1))
done
[ -f "$ready" ] || { echo "syncgate did not start in time: see $state/run.log"; exit 1; }

cat <<TXT
syncgate is running on loopback (logs: $(sed -n 2p "$ready")/log/).

  public side   http://127.0.0.1:4984/db/       replication requests pass the session check
  admin side    http://127.0.0.1:4985/db/_user/ loopback only
  provider      $(sed -n 3p "$ready")           OpenID provider (local demo unless SG_OIDC_ISSUER is set)
  backend       http://127.0.0.1:${SG_BACKEND_PORT:-4987}/db      the replication server behind the front

  log in with OpenID Connect: open http://127.0.0.1:4984/db/_oidc in a browser,
  sign in at the provider as "demo" (any password), and consent; the callback
  answers with your session and sets the cookie.

  or with a password: user "demo", password "demo-password"
  (channels: demo, and team through the role demo-team)

Try:
  curl -i -c /tmp/sg.cookies -H 'Content-Type: application/json' \\
       -d '{"name":"demo","password":"demo-password"}' http://127.0.0.1:4984/db/_session
  curl -b /tmp/sg.cookies http://127.0.0.1:4984/db/_all_docs
  curl -u demo:demo-password -X PUT -d '{"hello":"world"}' http://127.0.0.1:4984/db/doc1
  curl http://127.0.0.1:4984/db/_all_docs          # 401: no credentials
  curl http://127.0.0.1:4985/db/_user/demo

Stop it with: $0 stop
TXT
