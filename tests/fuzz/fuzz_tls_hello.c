/*
 * fuzz_tls_hello.c - libFuzzer harness: the server_name and ALPN readers
 * on any bytes.  A name handed out is a non-empty lower-case host name
 * within TLS_HELLO_NAME_MAX; ALPN answers -1, 0 or 1, the same twice.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/tls_hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[TLS_HELLO_NAME_MAX + 1];
	if (tls_hello_sni(data, size, out, sizeof(out))) {
		size_t n = strlen(out);
		assert(n > 0 && n <= TLS_HELLO_NAME_MAX);
		for (size_t i = 0; i < n; i++)
			assert(!(out[i] >= 'A' && out[i] <= 'Z'));
	}
	int a = tls_hello_alpn_has(data, size, "acme-tls/1");
	assert(a >= -1 && a <= 1);
	assert(a == tls_hello_alpn_has(data, size, "acme-tls/1"));
	return 0;
}
