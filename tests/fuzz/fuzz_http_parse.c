/*
 * fuzz_http_parse.c - libFuzzer harness for the HTTP request-head reader
 * and the query decoder: every piece it returns lies inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_parse.h"

static void inside(struct http_str s, const uint8_t *data, size_t size)
{
	if (s.n && (s.p < (const char *)data || s.p + s.n > (const char *)data + size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head h;
	char out[256];
	if (http_parse_head((const char *)data, size, &h) == 0) {
		inside(h.method, data, size);
		inside(h.target, data, size);
		inside(h.path, data, size);
		inside(h.query, data, size);
		inside(h.host, data, size);
		if (h.target.n == 0 || h.target.p[0] != '/')
			abort();
	}
	struct http_str q = { (const char *)data, size };
	if (http_query_param(q, "emailaddress", out, sizeof(out)) && strlen(out) >= sizeof(out))
		abort();
	return 0;
}
