/*
 * base64.c - strict base64 encoder and decoder, RFC 4648 section 4
 * (the standard alphabet, with padding).  Section 3.5 allows rejecting
 * non-zero pad bits, and we do: every octet string has exactly one
 * accepted encoding, so nothing can smuggle extra bits past a comparison.
 */
#include "proto/base64.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/util.h"

static const char base64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	size_t groups = n / 3 + (n % 3 != 0);
	if (groups > SIZE_MAX / 4)
		return SIZE_MAX;
	return groups * 4;
}

size_t base64_decoded_max(size_t len)
{
	return len / 4 * 3 + 3;
}

size_t base64_encode(const void *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = in;
	size_t need = base64_encoded_len(len), o = 0;

	if (need == SIZE_MAX || cap == 0 || need > cap - 1)
		return 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = len - i;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[o++] = base64_alphabet[(v >> 18) & 63];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = left > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = left > 2 ? base64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

char *base64_encode_alloc(const void *in, size_t len)
{
	size_t need = base64_encoded_len(len);
	char *out;

	if (need == SIZE_MAX)
		abort();
	out = xmalloc(need + 1);
	base64_encode(in, len, out, need + 1);
	return out;
}

char base64_digit(unsigned v, char c63)
{
	v &= 63;
	return v == 63 ? c63 : base64_alphabet[v];
}

int base64_digit_value(unsigned char c, char c63)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == (unsigned char)c63)
		return 63;
	return -1;
}

bool base64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
	size_t o = 0, pad = 0;

	if (len % 4 != 0)
		return false;
	if (len > 0 && in[len - 1] == '=')
		pad = (in[len - 2] == '=') ? 2 : 1;
	if (len / 4 * 3 - pad > cap)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		bool last = (i + 4 == len);
		size_t chars = last ? 4 - pad : 4;
		uint32_t v = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = 0;
			if (j < chars) {
				d = base64_digit_value((unsigned char)in[i + j], '/');
				if (d < 0)
					return false;
			}
			v = v << 6 | (uint32_t)d;
		}
		/* Pad bits must be zero (RFC 4648 section 3.5). */
		if ((chars == 2 && (v & 0xffff)) || (chars == 3 && (v & 0xff)))
			return false;
		out[o++] = (unsigned char)(v >> 16);
		if (chars > 2)
			out[o++] = (unsigned char)(v >> 8);
		if (chars > 3)
			out[o++] = (unsigned char)v;
	}
	*out_len = o;
	return true;
}
