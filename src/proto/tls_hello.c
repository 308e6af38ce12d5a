/*
 * tls_hello.c - ClientHello server_name and ALPN extension data (see
 * tls_hello.h).
 *
 * server_name (RFC 6066 3):
 *   uint16 list_length; { uint8 name_type; uint16 len; opaque name[len]; }*
 * Only name_type 0 (host_name) exists; RFC 6066 forbids two of one type.
 * ALPN (RFC 7301 3.1):
 *   uint16 list_length; { uint8 len; opaque name[len]; }+  (len >= 1)
 */
#include "proto/tls_hello.h"

#include <string.h>

static size_t be16(const unsigned char *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

bool tls_hello_sni(const unsigned char *p, size_t n, char *out, size_t cap)
{
	size_t list, i;

	if (cap == 0)
		return false;
	out[0] = '\0';
	if (n < 2 || (list = be16(p)) != n - 2)
		return false;
	for (i = 2; i < n;) {
		size_t len;
		if (n - i < 3)
			return false;
		len = be16(p + i + 1);
		if (len > n - i - 3)
			return false;
		if (p[i] == 0) {
			const unsigned char *name = p + i + 3;
			size_t k;
			if (len && name[len - 1] == '.')
				len--;
			if (len == 0 || len > TLS_HELLO_NAME_MAX || len >= cap)
				return false;
			for (k = 0; k < len; k++) {
				unsigned char ch = name[k];
				if (ch >= 'A' && ch <= 'Z')
					ch = (unsigned char)(ch - 'A' + 'a');
				if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
				      ch == '.' || ch == '_' || ch == '*'))
					return false;
				out[k] = (char)ch;
			}
			out[len] = '\0';
			return true;
		}
		i += 3 + len;
	}
	return false;
}

int tls_hello_alpn_has(const unsigned char *p, size_t n, const char *proto)
{
	size_t want = strlen(proto), i;
	int found = 0;

	if (n < 2 || be16(p) != n - 2 || n == 2)
		return -1;
	for (i = 2; i < n;) {
		size_t len = p[i];
		if (len == 0 || len > n - i - 1)
			return -1;
		if (len == want && memcmp(p + i + 1, proto, len) == 0)
			found = 1;
		i += 1 + len;
	}
	return found;
}
