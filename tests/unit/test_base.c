/*
 * test_base.c: the capped buffer, encodings and secure helpers.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "encode.h"
#include "error.h"
#include "secure.h"
#include "tap.h"

static void
test_buf(void)
{
	struct sg_buf b;
	char *s;

	sg_buf_init(&b, 8);
	tap_is_str(sg_buf_str(&b), "", "empty buffer reads as empty string");
	tap_is_int(sg_buf_adds(&b, "abcd"), 0, "add within cap");
	tap_is_int(sg_buf_addf(&b, "%d", 1234), 0, "printf up to the cap");
	tap_is_int(sg_buf_add(&b, "x", 1), -1, "add past the cap is refused");
	tap_ok(b.toobig, "toobig set");
	tap_is_str(sg_buf_str(&b), "abcd1234", "content kept after refusal");
	s = sg_buf_take(&b);
	tap_is_str(s, "abcd1234", "take hands over the string");
	tap_ok(b.data == NULL && b.len == 0, "buffer empty after take");
	free(s);
	sg_buf_free(&b);
	sg_buf_free(NULL);
}

static void
test_percent(void)
{
	struct sg_buf b;

	sg_buf_init(&b, 64);
	tap_is_int(sg_percent_decode("a%20b+c", 7, 0, &b), 0, "percent decode path");
	tap_is_str(sg_buf_str(&b), "a b+c", "path keeps plus");
	tap_is_int(sg_percent_decode("a%20b+c", 7, 1, &b), 0, "percent decode query");
	tap_is_str(sg_buf_str(&b), "a b c", "query plus is space");
	tap_is_int(sg_percent_decode("%4", 2, 0, &b), -1, "truncated escape refused");
	tap_is_int(sg_percent_decode("%zz", 3, 0, &b), -1, "non-hex escape refused");
	tap_is_int(sg_percent_decode("a%00", 4, 0, &b), -1, "encoded NUL refused");
	sg_buf_reset(&b);
	tap_is_int(sg_query_escape("a b/c~d_é", &b), 0, "query escape");
	tap_is_str(sg_buf_str(&b), "a+b%2Fc~d_%C3%A9", "Go QueryEscape form");
	sg_buf_free(&b);
}

static void
test_base64(void)
{
	struct sg_buf b;

	sg_buf_init(&b, 64);
	tap_is_int(sg_base64_decode("YWxpY2U6cHc=", 12, &b), 0, "base64 decode");
	tap_is_str(sg_buf_str(&b), "alice:pw", "base64 content");
	tap_is_int(sg_base64_decode("YWxpY2U6cHc", 11, &b), -1, "missing padding refused");
	tap_is_int(sg_base64_decode("YW*p", 4, &b), -1, "bad character refused");
	tap_is_int(sg_base64_decode("YR==", 4, &b), -1, "non-zero trailing bits refused");
	tap_is_int(sg_base64url_decode("_-8", 3, &b), 0, "base64url decode");
	tap_is_int(sg_base64url_decode("_-8=", 4, &b), -1, "base64url padding refused");
	tap_is_int(sg_base64url_decode("+/8", 3, &b), -1, "base64url std alphabet refused");
	sg_buf_reset(&b);
	tap_is_int(sg_base64url_encode("\xff\xef", 2, &b), 0, "base64url encode");
	tap_is_str(sg_buf_str(&b), "_-8", "base64url round trip");
	sg_buf_reset(&b);
	sg_base64_encode("alice:pw", 8, &b);
	tap_is_str(sg_buf_str(&b), "YWxpY2U6cHc=", "base64 encode pads");
	sg_buf_free(&b);
}

static void
test_utf8(void)
{
	tap_ok(sg_utf8_valid("h\xc3\xa9llo", 6), "valid UTF-8");
	tap_ok(!sg_utf8_valid("\xc0\xaf", 2), "overlong refused");
	tap_ok(!sg_utf8_valid("\xed\xa0\x80", 3), "surrogate refused");
	tap_ok(!sg_utf8_valid("\xe2\x82", 2), "truncated sequence refused");
	tap_ok(!sg_utf8_valid("\xff", 1), "invalid byte refused");
}

static void
test_secure(void)
{
	char hex[41], hex2[41], tag[SG_TAG_LEN];
	struct sg_error err;

	tap_is_int(sg_secure_random_hex(20, hex), 0, "random hex");
	tap_is_int((long long)strlen(hex), 40, "160 bits as 40 hex characters");
	sg_secure_random_hex(20, hex2);
	tap_ok(strcmp(hex, hex2) != 0, "two random values differ");
	tap_ok(sg_secure_streq("abc", "abc"), "equal strings");
	tap_ok(!sg_secure_streq("abc", "abd"), "different strings");
	tap_ok(!sg_secure_streq("abc", "abcd"), "different lengths");
	tap_ok(!sg_secure_streq(NULL, NULL), "missing never equals");
	sg_secure_tag("secret", tag);
	tap_is_int((long long)strlen(tag), 12, "tag is 12 characters");
	tap_ok(strstr(tag, "secret") == NULL, "tag does not hold the secret");
	sg_error_set(&err, 400, "line1\nline2");
	tap_is_str(err.reason, "line1 line2", "error reason stays one line");
}

int
main(void)
{
	test_buf();
	test_percent();
	test_base64();
	test_utf8();
	test_secure();
	return tap_done();
}
