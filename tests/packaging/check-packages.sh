#!/bin/sh
# Builds the packages from the `make dist` tarball and checks them (TAP):
#   - make dist passes its version check (debian/changelog and the spec
#     carry configure.ac's version);
#   - dpkg-buildpackage -us -uc -b builds the .deb in a copy of the
#     sources, with the expected paths, the configuration as a conffile,
#     and no lintian error (warnings are shown, not counted);
#   - rpmbuild -bb --nodeps builds the RPM in a temporary _topdir and
#     rpm -qlp lists the expected Fedora paths.
# Nothing is installed on this machine.  The packages are left in
# $SG_PACKAGES_DIR (default: $top_builddir/packages) for a later step
# that installs them.  Needs a configured build tree (top_builddir) and
# Debian's debhelper, lintian, rpm, fakeroot.
# DEB_BUILD_OPTIONS defaults to nocheck: make check has already run.
set -u
build=$(cd "${top_builddir:-.}" && pwd)
out="${SG_PACKAGES_DIR:-$build/packages}"
n=0
failed=0
result() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
diag() { sed 's/^/# /'; }

for tool in dpkg-buildpackage lintian rpmbuild rpm make; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "Bail out! $tool not found (scripts/install-deps.sh installs it)"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-packages.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

version=$(sed -n 's/^PACKAGE_VERSION = //p' "$build/Makefile")
# make dist runs check-package-versions (dist-hook).
(cd "$build" && make -s dist) >"$tmp/dist.log" 2>&1
result $? "make dist (versions agree: $version)"
tarball="$build/syncgate-$version.tar.gz"
[ -f "$tarball" ] || { diag <"$tmp/dist.log"; echo "Bail out! no $tarball"; exit 1; }

# ---- .deb ----
mkdir -p "$tmp/deb" && tar -C "$tmp/deb" -xzf "$tarball"
(cd "$tmp/deb/syncgate-$version" &&
	DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck}" dpkg-buildpackage -us -uc -b) \
	>"$tmp/deb.log" 2>&1
rc=$?
result $rc "dpkg-buildpackage -us -uc -b"
[ $rc -eq 0 ] || tail -30 "$tmp/deb.log" | diag
deb=$(ls "$tmp"/deb/syncgate_"$version"_*.deb 2>/dev/null | head -1)
changes=$(ls "$tmp"/deb/syncgate_"$version"_*.changes 2>/dev/null | head -1)
if [ -n "$deb" ]; then
	dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$tmp/deb.list"
	missing=""
	for p in /usr/libexec/syncgate/syncgate-session-check /usr/libexec/syncgate/syncgate-user-admin \
		/usr/libexec/syncgate/syncgate-oidc /usr/libexec/syncgate/syncgate-oidc-callback \
		/usr/libexec/syncgate/syncgate-oidc-refresh /usr/sbin/syncgatectl \
		/etc/syncgate/syncgate.json /etc/apache2/conf-available/syncgate.conf \
		/etc/lighttpd/conf-available/50-syncgate.conf \
		/etc/lighttpd/syncgate/syncgate-headers.lua \
		/usr/share/man/man5/syncgate.json.5.gz /usr/share/man/man8/syncgatectl.8.gz \
		/usr/share/man/man8/syncgate-session-check.8.gz; do
		grep -qx "$p" "$tmp/deb.list" || missing="$missing $p"
	done
	[ -z "$missing" ]
	result $? "the .deb holds the expected files"
	[ -z "$missing" ] || echo "missing:$missing" | diag
	dpkg-deb --info "$deb" conffiles >"$tmp/conffiles" 2>&1
	grep -qx /etc/syncgate/syncgate.json "$tmp/conffiles"
	result $? "/etc/syncgate/syncgate.json is a conffile"
	dpkg-deb --info "$deb" postinst | grep -q 'chmod 0640 /etc/syncgate/syncgate.json'
	result $? "postinst makes the configuration readable by the web server's group only"
	lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian.log" 2>&1
	rc=$?
	result $rc "lintian reports no error"
	diag <"$tmp/lintian.log"
	mkdir -p "$out" && cp "$deb" "$out/"
else
	result 1 "the .deb was built"
fi

# ---- RPM ----
top="$tmp/rpm"
mkdir -p "$top/SOURCES" "$top/BUILD" "$top/RPMS" "$top/SPECS" "$top/SRPMS"
cp "$tarball" "$top/SOURCES/"
tar -C "$top/SPECS" -xzf "$tarball" "syncgate-$version/syncgate.spec"
grep -q "^Version: *$version\$" "$top/SPECS/syncgate-$version/syncgate.spec"
result $? "the spec in the tarball has version $version"
# Debian has none of Fedora's -devel packages (--nodeps) nor its debuginfo tools.
rpmbuild -bb --nodeps --nocheck --define "_topdir $top" --define 'debug_package %{nil}' \
	"$top/SPECS/syncgate-$version/syncgate.spec" >"$tmp/rpm.log" 2>&1
rc=$?
result $rc "rpmbuild -bb --nodeps syncgate.spec"
[ $rc -eq 0 ] || tail -30 "$tmp/rpm.log" | diag
rpmfile=$(find "$top/RPMS" -name "syncgate-$version-*.rpm" | head -1)
if [ -n "$rpmfile" ]; then
	rpm -qlp "$rpmfile" 2>/dev/null >"$tmp/rpm.list"
	missing=""
	for p in /usr/libexec/syncgate/syncgate-session-check /usr/libexec/syncgate/syncgate-user-admin \
		/usr/libexec/syncgate/syncgate-oidc /usr/libexec/syncgate/syncgate-oidc-callback \
		/usr/libexec/syncgate/syncgate-oidc-refresh /usr/sbin/syncgatectl \
		/etc/syncgate/syncgate.json /var/lib/syncgate /etc/httpd/conf.d/syncgate.conf \
		/etc/lighttpd/syncgate/syncgate-headers.lua; do
		grep -qx "$p" "$tmp/rpm.list" || missing="$missing $p"
	done
	for page in man5/syncgate.json.5 man8/syncgatectl.8 man8/syncgate-session-check.8 \
		man8/syncgate-user-admin.8 man8/syncgate-oidc.8 man8/syncgate-oidc-callback.8 \
		man8/syncgate-oidc-refresh.8; do
		grep -q "^/usr/share/man/$page" "$tmp/rpm.list" || missing="$missing $page"
	done
	[ -z "$missing" ]
	result $? "rpm -qlp lists the expected paths"
	[ -z "$missing" ] || echo "missing:$missing" | diag
	diag <"$tmp/rpm.list"
	rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' \
		"$rpmfile" 2>/dev/null | grep -E ' /etc/syncgate/syncgate.json$| /var/lib/syncgate$' >"$tmp/rpm.modes"
	diag <"$tmp/rpm.modes"
	grep -q '^-rw-r----- root:apache /etc/syncgate/syncgate.json$' "$tmp/rpm.modes" &&
		grep -q '^drwxr-x--- apache:apache /var/lib/syncgate$' "$tmp/rpm.modes"
	result $? "the RPM gives the configuration and the store to the web server (apache)"
	mkdir -p "$out" && cp "$rpmfile" "$out/"
else
	result 1 "the RPM was built"
fi

# ---- the version check itself ----
# make dist (and so make distcheck) must stop when debian/changelog or the
# spec disagree with configure.ac: tried on a copy with each one changed.
mkdir -p "$tmp/ver" && tar -C "$tmp/ver" -xzf "$tarball"
src="$tmp/ver/syncgate-$version"
mkdir -p "$src/b" && (cd "$src/b" && ../configure -q) >"$tmp/ver.log" 2>&1
sed -i "1s/($version)/(9.9.9)/" "$src/debian/changelog"
(cd "$src/b" && make -s dist) >>"$tmp/ver.log" 2>&1
rc=$?
grep -q "debian/changelog has version '9.9.9', configure.ac $version" "$tmp/ver.log"
said=$?
[ $rc -ne 0 ] && [ $said -eq 0 ]
result $? "make dist refuses a debian/changelog of another version"
sed -i "1s/(9.9.9)/($version)/" "$src/debian/changelog"
sed -i "s/^Version:.*/Version: 9.9.8/" "$src/b/syncgate.spec"
(cd "$src/b" && make -s dist) >>"$tmp/ver.log" 2>&1
rc=$?
grep -q "syncgate.spec has version '9.9.8', configure.ac $version" "$tmp/ver.log"
said=$?
[ $rc -ne 0 ] && [ $said -eq 0 ]
result $? "make dist refuses a spec of another version"

echo "1..$n"
exit $failed
