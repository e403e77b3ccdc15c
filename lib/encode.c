/*
 * encode.c: strict encoders and decoders.
 */
#include "autoconf.h"

#include <string.h>

#include "encode.h"
#include "secure.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
sg_percent_decode(const char *in, size_t n, int plus_space, struct sg_buf *out)
{
	size_t i;
	int hi, lo;
	char c;

	sg_buf_reset(out);
	for (i = 0; i < n; i++) {
		c = in[i];
		if (c == '%') {
			if (n - i < 3)
				return -1;
			hi = hexval((unsigned char)in[i + 1]);
			lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			if (c == '\0')
				return -1;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		} else if (c == '\0') {
			return -1;
		}
		if (sg_buf_add(out, &c, 1) != 0)
			return -1;
	}
	if (out->data == NULL && sg_buf_add(out, "", 0) != 0)
		return -1;
	return 0;
}

int
sg_query_escape(const char *s, struct sg_buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char esc[3];

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
			*p == '~') {
			if (sg_buf_add(out, p, 1) != 0)
				return -1;
		} else if (*p == ' ') {
			if (sg_buf_add(out, "+", 1) != 0)
				return -1;
		} else {
			esc[0] = '%';
			esc[1] = hex[*p >> 4];
			esc[2] = hex[*p & 15];
			if (sg_buf_add(out, esc, 3) != 0)
				return -1;
		}
	}
	return 0;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Both alphabets share their first 62 characters: A-Z, a-z, 0-9. */
static int
b64val(const char *alphabet, int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == alphabet[62])
		return 62;
	if (c == alphabet[63])
		return 63;
	return -1;
}

/*
 * Decodes n characters (no padding) of the given alphabet.  The bytes go
 * through a small chunk on the stack, wiped afterwards: they may be a
 * password.
 */
static int
b64_decode(const char *alphabet, const char *in, size_t n, struct sg_buf *out)
{
	unsigned char chunk[96];
	unsigned long acc = 0;
	size_t i, k = 0;
	int bits = 0, v, rc = -1;

	sg_buf_reset(out);
	/* Room for the n * 6 / 8 bytes decoded, at once. */
	if (n % 4 == 1 || sg_buf_reserve(out, n / 4 * 3 + n % 4 * 3 / 4) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		v = b64val(alphabet, (unsigned char)in[i]);
		if (v < 0)
			goto out;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			chunk[k++] = (unsigned char)(acc >> bits);
			acc &= (1UL << bits) - 1;
			if (k == sizeof(chunk)) {
				if (sg_buf_add(out, chunk, k) != 0)
					goto out;
				k = 0;
			}
		}
	}
	/* The bits left over must be zero: one encoding per byte string. */
	if (acc == 0 && sg_buf_add(out, chunk, k) == 0)
		rc = 0;
out:
	sg_secure_wipe(chunk, sizeof(chunk));
	return rc;
}

static int
b64_encode(const char *alphabet, int pad, const void *in, size_t n, struct sg_buf *out)
{
	const unsigned char *p = in;
	char q[4];
	size_t i;
	unsigned long v;

	for (i = 0; i + 2 < n; i += 3) {
		v = ((unsigned long)p[i] << 16) | ((unsigned long)p[i + 1] << 8) | p[i + 2];
		q[0] = alphabet[(v >> 18) & 63];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = alphabet[(v >> 6) & 63];
		q[3] = alphabet[v & 63];
		if (sg_buf_add(out, q, 4) != 0)
			return -1;
	}
	if (n - i == 1) {
		v = (unsigned long)p[i] << 16;
		q[0] = alphabet[(v >> 18) & 63];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = q[3] = '=';
		return sg_buf_add(out, q, pad ? 4 : 2);
	}
	if (n - i == 2) {
		v = ((unsigned long)p[i] << 16) | ((unsigned long)p[i + 1] << 8);
		q[0] = alphabet[(v >> 18) & 63];
		q[1] = alphabet[(v >> 12) & 63];
		q[2] = alphabet[(v >> 6) & 63];
		q[3] = '=';
		return sg_buf_add(out, q, pad ? 4 : 3);
	}
	if (out->data == NULL)
		return sg_buf_add(out, "", 0);
	return 0;
}

int
sg_base64_decode(const char *in, size_t n, struct sg_buf *out)
{
	size_t pad = 0;

	if (n % 4 != 0)
		return -1;
	while (pad < 2 && n > pad && in[n - 1 - pad] == '=')
		pad++;
	return b64_decode(b64std, in, n - pad, out);
}

int
sg_base64_encode(const void *in, size_t n, struct sg_buf *out)
{
	return b64_encode(b64std, 1, in, n, out);
}

int
sg_base64url_decode(const char *in, size_t n, struct sg_buf *out)
{
	return b64_decode(b64url, in, n, out);
}

int
sg_base64url_encode(const void *in, size_t n, struct sg_buf *out)
{
	return b64_encode(b64url, 0, in, n, out);
}

void
sg_hex_encode(const void *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int
sg_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, len;
	unsigned long cp, min;

	while (i < n) {
		if (p[i] == 0)
			return 0;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			len = 2;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			len = 3;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			len = 4;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}
