/*
 * fuzz_smtp_reply.c - libFuzzer harness for proto/smtp_reply.c: the input
 * is split on '\n' and fed line by line; after each complete reply the
 * EHLO capability reader runs over it and the parser starts again.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_reply r;	/* 4 KiB: keep it off the stack */
	struct smtp_ehlo_caps caps;
	const char *p = (const char *)data, *end = p + size;

	smtp_reply_init(&r);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		enum smtp_reply_status st = smtp_reply_feed(&r, p, len);

		if (st == SMTP_REPLY_DONE) {
			smtp_ehlo_caps(&r, &caps);
			if (r.text_len != strlen(r.text) || r.code < 200 || r.code > 559)
				__builtin_trap();
			smtp_reply_init(&r);
		} else if (st != SMTP_REPLY_MORE) {
			smtp_ehlo_caps(&r, &caps);
			smtp_reply_init(&r);
		}
		p += len + 1;
	}
	smtp_ehlo_caps(&r, &caps);
	return 0;
}
