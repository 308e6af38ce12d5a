/*
 * fuzz_imap_write.c - libFuzzer harness: any octets written as an astring
 * and as a string (with and without UTF8=ACCEPT) read back through the
 * command parser as the same octets; the input as a list of numbers,
 * sorted, written as a sequence set that contains exactly them.
 */
#include <assert.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap_parse.h"
#include "proto/imap_write.h"

static void round_trip(const char *s, size_t len, bool atom_ok, bool utf8)
{
	struct evbuffer *b = evbuffer_new();
	struct imap_parse_opts o = { .utf8 = utf8 };
	struct imap_parser p;
	const char *v;
	size_t vlen;
	evbuffer_add(b, "a X ", 4);
	if (atom_ok)
		imap_write_astring(b, s, len, utf8);
	else
		imap_write_string(b, s, len, utf8);
	size_t n = evbuffer_get_length(b);
	char *w = (char *)evbuffer_pullup(b, -1);
	imap_parse_init(&p, &o);
	const char *crlf = memmem(w, n, "\r\n", 2);
	if (crlf == NULL) {
		assert(imap_parse_line(&p, w, n) == IMAP_PARSE_DONE);
	} else {
		size_t l = (size_t)(crlf - w);
		assert(imap_parse_line(&p, w, l) == IMAP_PARSE_LITERAL);
		assert(p.lit.size == len && n == l + 2 + len);
		assert(imap_parse_literal(&p, crlf + 2, len) == IMAP_PARSE_NEED_LINE);
		assert(imap_parse_line(&p, "", 0) == IMAP_PARSE_DONE);
	}
	assert(p.nargs == 1);
	if (atom_ok)
		assert(imap_arg_astring(p.args, &v, &vlen));
	else
		assert(imap_arg_string(p.args, &v, &vlen));
	assert(vlen == len && memcmp(v, s, len) == 0);
	imap_parse_free(&p);
	evbuffer_free(b);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void seqset(const uint8_t *data, size_t size)
{
	size_t n = size / 2;
	if (n == 0)
		return;
	uint32_t *nums = malloc(n * sizeof(*nums));
	for (size_t i = 0; i < n; i++)
		nums[i] = (uint32_t)data[2 * i] << 4 | data[2 * i + 1] % 16;
	for (size_t i = 0; i < n; i++)
		if (nums[i] == 0)
			nums[i] = 1;
	qsort(nums, n, sizeof(*nums), cmp_u32);
	struct evbuffer *b = evbuffer_new();
	assert(imap_write_seqset(b, nums, n));
	size_t len = evbuffer_get_length(b);
	char *w = (char *)evbuffer_pullup(b, -1);
	struct imap_arena a;
	struct imap_seqset set;
	imap_arena_init(&a, 1 << 20);
	assert(imap_seqset_parse(w, len, &a, &set) == IMAP_SEQ_OK);
	/* The parsed ranges cover exactly the numbers (compared as bitmaps:
	 * O(ranges + 4096), where asking imap_seqset_contains for every
	 * value was O(ranges * 4096) and held the harness under 1000
	 * exec/s); imap_seqset_contains itself is asked about the numbers
	 * and their neighbours, a bounded sample. */
	static uint8_t want[4098], got[4098];
	memset(want, 0, sizeof(want));
	memset(got, 0, sizeof(got));
	for (size_t i = 0; i < n; i++)
		want[nums[i]] = 1;
	assert(!set.searchres && set.n >= 1);
	for (size_t i = 0; i < set.n; i++) {
		uint32_t lo = set.r[i].lo, hi = set.r[i].hi;
		assert(lo >= 1 && lo <= hi && hi <= 4095);
		assert(i == 0 || lo > set.r[i - 1].hi + 1);
		memset(got + lo, 1, hi - lo + 1);
	}
	assert(memcmp(want, got, sizeof(want)) == 0);
	for (size_t i = 0; i < n && i < 4; i++) {
		uint32_t v = nums[(i * 2654435761u) % n];
		assert(imap_seqset_contains(&set, v, 1));
		assert(imap_seqset_contains(&set, v - 1, 1) == (bool)want[v - 1]);
		assert(imap_seqset_contains(&set, v + 1, 1) == (bool)want[v + 1]);
	}
	assert(!imap_seqset_contains(&set, 0, 1) && !imap_seqset_contains(&set, 4096, 1));
	imap_arena_free(&a);
	evbuffer_free(b);
	free(nums);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	if (size > 8192)
		return 0;
	round_trip(s, size, true, false);
	round_trip(s, size, true, true);
	round_trip(s, size, false, false);
	round_trip(s, size, false, true);
	seqset(data, size);
	return 0;
}
