#!/bin/sh
# Installs, from Debian's packages, what building and testing syncgate
# needs.  Packages already present are left alone, so a second run is quick.
set -eu

PACKAGES="autoconf automake libtool pkg-config make gcc
libfcgi-dev libcurl4-gnutls-dev libgnutls28-dev libjansson-dev
libjwt-gnutls-dev libdb-dev db5.3-util libcrypt-dev
lighttpd lighttpd-modules-lua python3 curl wrk clang-format"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
