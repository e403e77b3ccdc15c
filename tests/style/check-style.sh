#!/bin/sh
# Style checked by machines (TAP): every C file as clang-format writes it
# (.clang-format at the top), and none of the banned calls in lib/ and
# cgi-bin/: unbounded copies and formats, number parsers without error
# checks, and strtok's hidden state.
top="${top_srcdir:-.}"
n=0
failed=0
result() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}

command -v clang-format >/dev/null 2>&1 || { echo "Bail out! clang-format not found (Debian package clang-format)"; exit 1; }
cd "$top" || exit 1
for f in lib/*.c lib/*.h cgi-bin/*.c bench/*.c tests/unit/*.c tests/unit/*.h; do
	clang-format --dry-run -Werror "$f" >/dev/null 2>&1
	result $? "clang-format: $f"
done

banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok)[[:space:]]*\('
for f in lib/*.c lib/*.h cgi-bin/*.c; do
	hits=$(grep -nE "$banned" "$f" | grep -vE '^\s*[0-9]+:\s*(/?\*|//)')
	[ -z "$hits" ]
	result $? "no banned function in $f"
	[ -z "$hits" ] || printf '%s\n' "$hits" | sed 's/^/#   /'
	# strtol and friends only with an end pointer that is then checked.
	hits=$(grep -nE '\bstrto(l|ul|ll|ull|d)[[:space:]]*\([^,]*,[[:space:]]*NULL' "$f")
	[ -z "$hits" ]
	result $? "no unchecked number parsing in $f"
done
echo "1..$n"
exit $failed
