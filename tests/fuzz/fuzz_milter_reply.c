/*
 * fuzz_milter_reply.c - libFuzzer harness for proto/milter.c's reply
 * parser: the input is read as a stream of replies, as the client reads
 * a filter's socket, until it is used up or garbage; every string the
 * parser hands out must lie inside the input and end with its NUL, and a
 * REPLYCODE text is checked as the client checks it.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/milter.h"

static void inside(const uint8_t *data, size_t size, const char *s, size_t n)
{
	if (s == NULL)
		return;
	if ((const uint8_t *)s < data || (const uint8_t *)s + n >= data + size || s[n] != '\0' ||
	    memchr(s, '\0', n) != NULL)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct milter_reply r;
		size_t used;
		enum milter_parse st = milter_reply_parse(data + off, size - off, 4096, &r, &used);

		if (st != MILTER_OK)
			break;
		if (used < 5 || used > size - off || r.len != used - 5)
			__builtin_trap();
		inside(data, size, r.s1, r.s1len);
		inside(data, size, r.s2, r.s2len);
		if (r.cmd == MILTER_R_REPLYCODE)
			(void)milter_replycode_valid(r.s1, r.s1len);
		(void)milter_reply_name(r.cmd);
		off += used;
	}
	return 0;
}
