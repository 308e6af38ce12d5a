/*
 * fuzz_smtp_data.c - libFuzzer harness: the DATA framer fed the input
 * whole, byte by byte and in a split chosen by the first input octet; all
 * must agree on output, errors, done and octets consumed.  The output then
 * goes through header_scan, whole and byte by byte, which must agree too.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/header.h"
#include "proto/smtp_data.h"

struct run {
	char *out;
	size_t out_len, consumed;
	bool done;
	unsigned errors;
	uint64_t octets;
};

/* step == 0: whole; otherwise chunks of step, step+1, ... (mod 7) */
static void frame(const char *in, size_t len, size_t max_line, size_t step, struct run *r)
{
	struct smtp_data d;
	char *buf = malloc(len + 2);
	size_t pos = 0;
	r->out = malloc(len + 2);
	r->out_len = 0;
	r->done = false;
	smtp_data_init(&d, max_line);
	while (pos < len && !r->done) {
		size_t chunk = step == 0 ? len - pos : step;
		if (chunk > len - pos)
			chunk = len - pos;
		size_t n;
		size_t used = smtp_data_feed(&d, in + pos, chunk, buf, &n, &r->done);
		assert(used <= chunk && n <= chunk + 2);
		assert(r->done || used == chunk);
		assert(r->out_len + n <= len);
		memcpy(r->out + r->out_len, buf, n);
		r->out_len += n;
		pos += used;
		if (step != 0)
			step = step % 7 + 1;
	}
	r->consumed = pos;
	r->errors = d.errors;
	r->octets = d.octets;
	assert(r->octets == r->out_len);
	free(buf);
}

static void same(const struct run *a, const struct run *b)
{
	assert(a->out_len == b->out_len);
	assert(memcmp(a->out, b->out, a->out_len) == 0);
	assert(a->done == b->done && a->consumed == b->consumed && a->errors == b->errors);
}

static void headers(const char *msg, size_t len)
{
	struct header_scan a, b;
	header_scan_init(&a);
	header_scan_feed(&a, msg, len);
	header_scan_init(&b);
	for (size_t i = 0; i < len; i++)
		header_scan_feed(&b, msg + i, 1);
	assert(a.in_headers == b.in_headers && a.received == b.received);
	assert(a.has_date == b.has_date && a.has_message_id == b.has_message_id);
	assert(a.has_from == b.has_from && a.eight_bit == b.eight_bit);

	char *out = malloc(len + 1);
	size_t n = header_unfold(msg, len, out, len + 1);
	assert(n <= len);
	assert((n == 0) == (len == 0));
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t max_line = data[0] & 0x3f;	/* small limits reach the boundary */
	size_t step = 1 + (data[0] >> 6);
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	struct run whole, bytes, mixed;

	frame(in, len, max_line, 0, &whole);
	frame(in, len, max_line, 1, &bytes);
	frame(in, len, max_line, step, &mixed);
	same(&whole, &bytes);
	same(&whole, &mixed);
	if (whole.done) {
		/* the data ended with CRLF.CRLF, or ".\r\n" at the very start */
		assert(whole.consumed >= 3);
		assert(memcmp(in + whole.consumed - 3, ".\r\n", 3) == 0);
		assert(whole.consumed == 3 || in[whole.consumed - 4] == '\n');
	}
	headers(whole.out, whole.out_len);
	free(whole.out);
	free(bytes.out);
	free(mixed.out);
	return 0;
}
