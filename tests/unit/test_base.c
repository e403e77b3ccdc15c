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
	unsigned char raw[511];
	struct sg_buf b, enc, small;
	size_t i;

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

	/* Longer than the decoder's chunk: every byte value, twice over. */
	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 7 + 3);
	sg_buf_init(&enc, 1024);
	sg_buf_init(&b, sizeof(raw));
	sg_base64_encode(raw, sizeof(raw), &enc);
	tap_is_int(sg_base64_decode(sg_buf_str(&enc), enc.len, &b), 0, "long base64 decode");
	tap_ok(b.len == sizeof(raw) && memcmp(b.data, raw, sizeof(raw)) == 0,
		"long base64 round trip");
	sg_buf_init(&small, sizeof(raw) - 1);
	tap_is_int(sg_base64_decode(sg_buf_str(&enc), enc.len, &small), -1,
		"decoded bytes past the cap refused");
	tap_is_int(sg_base64_decode("", 0, &small), 0, "empty base64 decodes");
	tap_is_str(sg_buf_str(&small), "", "to an empty string");
	sg_buf_free(&enc);
	sg_buf_free(&b);
	sg_buf_free(&small);
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

/* The reusable keyed HMAC agrees with the one-shot one, message after message. */
static void
test_hmac(void)
{
	static const char key[] = "a key of thirty-two bytes, here.";
	unsigned char one[SG_SHA256_LEN], parts[SG_SHA256_LEN];
	char hex[2 * SG_SHA256_LEN + 1];
	struct sg_hmac *h;
	int i, same = 1;

	/* RFC 4231 test case 2: key "Jefe". */
	tap_is_int(sg_secure_hmac_new("Jefe", 4, &h), 0, "keyed handle");
	sg_secure_hmac_add(h, "what do ya want ", 16);
	sg_secure_hmac_add(h, "for nothing?", 12);
	sg_secure_hmac_end(h, parts);
	sg_hex_encode(parts, SG_SHA256_LEN, hex);
	tap_is_str(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		"HMAC-SHA-256 fed in parts: RFC 4231 case 2");
	sg_secure_hmac_free(h);
	sg_secure_hmac_new(key, sizeof(key) - 1, &h);
	for (i = 0; i < 3; i++) {
		sg_secure_hmac(key, sizeof(key) - 1, "user\0hash\0pw", 12, one);
		sg_secure_hmac_add(h, "user", 5);
		sg_secure_hmac_add(h, "hash\0", 5);
		sg_secure_hmac_add(h, "pw", 2);
		sg_secure_hmac_end(h, parts);
		same = same && memcmp(one, parts, sizeof(one)) == 0;
	}
	tap_ok(same, "each end starts the next message from the key");
	sg_secure_hmac_free(h);
	sg_secure_hmac_free(NULL);
}

int
main(void)
{
	test_buf();
	test_percent();
	test_base64();
	test_utf8();
	test_secure();
	test_hmac();
	return tap_done();
}
