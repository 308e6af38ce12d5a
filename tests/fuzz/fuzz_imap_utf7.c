/*
 * fuzz_imap_utf7.c - libFuzzer harness: the input as modified UTF-7, as
 * UTF-8 and as a Maildir++ directory name, checking that strictness gives
 * one spelling per name: whatever decodes re-encodes to the same octets,
 * whatever encodes decodes back, and the directory mapping round-trips.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char a[4 * 1024 + 16], b[4 * 1024 + 16];
	size_t an, bn;

	if (size > 1024)
		return 0;
	if (imap_utf7_to_utf8(in, size, a, sizeof(a), &an) == IMAP_UTF7_OK) {
		assert(a[an] == '\0');
		enum imap_utf7_err e = imap_utf8_to_utf7(a, an, b, sizeof(b), &bn);
		/* controls decode (they are encodable) but never encode */
		if (e == IMAP_UTF7_OK)
			assert(bn == size && memcmp(b, in, size) == 0);
		else
			assert(e == IMAP_UTF7_BAD_UTF8);
	}
	if (imap_utf8_to_utf7(in, size, a, sizeof(a), &an) == IMAP_UTF7_OK) {
		assert(imap_utf7_valid(a, an) || an > IMAP_MAILBOX_MAX);
		assert(imap_utf7_to_utf8(a, an, b, sizeof(b), &bn) == IMAP_UTF7_OK);
		assert(bn == size && memcmp(b, in, size) == 0);
	}
	if (imap_maildir_from_mailbox(in, size, a, sizeof(a), &an) == IMAP_UTF7_OK && an > 0) {
		assert(a[0] == '.' && memchr(a, '/', an) == NULL);
		assert(imap_mailbox_from_maildir(a, an, b, sizeof(b), &bn) == IMAP_UTF7_OK);
		assert(bn == size && memcmp(b, in, size) == 0);
	}
	if (imap_mailbox_from_maildir(in, size, a, sizeof(a), &an) == IMAP_UTF7_OK) {
		assert(imap_maildir_from_mailbox(a, an, b, sizeof(b), &bn) == IMAP_UTF7_OK);
		assert(bn == size && memcmp(b, in, size) == 0);
	}
	(void)imap_mailbox_check(in, size);
	return 0;
}
