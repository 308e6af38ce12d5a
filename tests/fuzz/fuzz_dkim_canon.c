/*
 * fuzz_dkim_canon.c - libFuzzer harness for DKIM canonicalization: both
 * header forms, and both body forms fed whole and cut at a point the
 * input chooses, which must give the same octets (the streamed form does
 * not depend on chunking), with l= never exceeded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/dkim_canon.h"

struct out {
	char *buf;
	size_t len, cap;
};

static void collect(void *arg, const char *buf, size_t len)
{
	struct out *o = arg;

	if (len == 0)
		return;
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		o->buf = xrealloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
}

static void body(enum dkim_canon c, const char *in, size_t size, size_t cut, uint64_t limit, struct out *o)
{
	struct dkim_body b;

	dkim_body_init(&b, c, limit != UINT64_MAX, limit, collect, o);
	dkim_body_feed(&b, in, cut);
	dkim_body_feed(&b, in + cut, size - cut);
	dkim_body_finish(&b);
	if (o->len > b.total || (limit != UINT64_MAX && o->len > limit))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct out a = { 0 }, b = { 0 };
	size_t cut;

	if (size < 2)
		return 0;
	cut = data[0] % size;
	for (int c = DKIM_CANON_SIMPLE; c <= DKIM_CANON_RELAXED; c++) {
		dkim_canon_header((enum dkim_canon)c, in + 1, size - 1, true, collect, &a);
		a.len = 0;
		body((enum dkim_canon)c, in + 1, size - 1, 0, UINT64_MAX, &a);
		body((enum dkim_canon)c, in + 1, size - 1, cut, UINT64_MAX, &b);
		if (a.len != b.len || (a.len && memcmp(a.buf, b.buf, a.len)))
			abort();
		a.len = b.len = 0;
		body((enum dkim_canon)c, in + 1, size - 1, cut, data[1], &a);
		a.len = 0;
	}
	free(a.buf);
	free(b.buf);
	return 0;
}
