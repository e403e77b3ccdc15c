#!/bin/sh
# The manual pages (TAP): one for every program of cgi-bin/ and one for
# the configuration file, each built with this build's paths and no
# placeholder left, and, filled in with the packages' paths (/etc, /var,
# /usr/libexec; a build's own prefix may be too long to typeset, as make
# distcheck's is), read by man(1) and groff without a single warning (as
# lintian reads them), with a NAME section that lexgrog (mandb's parser)
# understands.
top="${top_srcdir:-.}"
build="${top_builddir:-.}"
n=0
failed=0
result() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}

for tool in man groff lexgrog; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "Bail out! $tool not found (Debian packages man-db and groff-base)"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sg-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
pages=""
for src in "$top"/cgi-bin/*.c; do
	pages="$pages $(basename "$src" .c).8"
done
pages="$pages syncgate.json.5"
for page in $pages; do
	f="$build/man/$page"
	if [ ! -f "$f" ]; then
		result 1 "$page exists"
		continue
	fi
	result 0 "$page exists"
	# No placeholder is left, and the files are named with this build's paths.
	! grep -n '@[a-zA-Z_]*@' "$f" >/dev/null
	result $? "$page: every placeholder is filled in"
	grep -q 'syncgate/syncgate.json' "$f"
	result $? "$page: names the configuration file"
	pkg="$tmp/$page"
	sed -e 's|@sysconfdir@|/etc|g' -e 's|@localstatedir@|/var|g' \
		-e 's|@pkglibexecdir@|/usr/libexec/syncgate|g' -e 's|@VERSION@|0.0.0|g' \
		"$top/man/$page.in" >"$pkg"
	# What lintian runs; any output on standard error is a warning.
	warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 \
		man --warnings -E UTF-8 -l -Tutf8 -Z "$pkg" 2>&1 >/dev/null)
	[ -z "$warnings" ]
	result $? "$page: man --warnings is silent"
	[ -z "$warnings" ] || printf '%s\n' "$warnings" | sed 's/^/#   /'
	warnings=$(groff -man -ww -z "$pkg" 2>&1)
	[ -z "$warnings" ]
	result $? "$page: groff -ww is silent"
	[ -z "$warnings" ] || printf '%s\n' "$warnings" | sed 's/^/#   /'
	name=$(lexgrog "$pkg" 2>&1)
	case "$name" in
	*": \"${page%.*} - "*) result 0 "$page: lexgrog reads its NAME line" ;;
	*) result 1 "$page: lexgrog reads its NAME line"; echo "#   $name" ;;
	esac
done
echo "1..$n"
exit $failed
