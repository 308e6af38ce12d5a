/*
 * fuzz_addrlist.c - libFuzzer harness: addrlist_parse on any bytes.  Every
 * address handed out is non-empty, within ADDRLIST_ADDR_MAX, without a
 * NUL before its end; the count agrees with the callbacks; and parsing
 * is deterministic (a second run gives the same result).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/addrlist.h"

struct seen {
	int n;
	size_t total;
};

static void seen_cb(const char *addr, void *arg)
{
	struct seen *s = arg;
	size_t len = strlen(addr);
	assert(len > 0 && len <= ADDRLIST_ADDR_MAX);
	s->n++;
	s->total += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen a = { 0, 0 }, b = { 0, 0 };
	int ra = addrlist_parse((const char *)data, size, seen_cb, &a);
	int rb = addrlist_parse((const char *)data, size, seen_cb, &b);

	assert(ra == rb && a.n == b.n && a.total == b.total);
	assert(ra >= ADDRLIST_TOO_MANY);
	if (ra >= 0)
		assert(ra == a.n && ra <= ADDRLIST_MAX);
	return 0;
}
