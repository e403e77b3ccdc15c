#!/bin/sh
# Installs, from Debian's packages, what building and testing syncgate
# needs, then the test parties' npm packages (tests/parties, from its
# package-lock.json, no install scripts run).  What is already present is
# left alone, so a second run is quick.
set -eu

PACKAGES="autoconf automake libtool pkg-config make gcc
libfcgi-dev libcurl4-gnutls-dev libgnutls28-dev libjansson-dev
libdb-dev db5.3-util libcrypt-dev
lighttpd lighttpd-modules-lua lighttpd-mod-openssl apache2 spawn-fcgi openssl
python3 curl wrk clang-format faketime chromium
man-db groff-base debhelper lintian rpm fakeroot dpkg-dev"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
# node and npm may come from elsewhere than Debian: only when a command is
# missing are Debian's packages installed.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "installing:$missing"
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The test parties: npm ci again only when package-lock.json changed since
# the last install (a copy of it is kept in node_modules).
parties="$(cd "$(dirname "$0")/.." && pwd)/tests/parties"
stamp="$parties/node_modules/.syncgate-package-lock.json"
if ! cmp -s "$parties/package-lock.json" "$stamp"; then
	echo "installing: npm packages of tests/parties"
	(cd "$parties" && npm ci --ignore-scripts --no-audit --no-fund)
	cp "$parties/package-lock.json" "$stamp"
fi
