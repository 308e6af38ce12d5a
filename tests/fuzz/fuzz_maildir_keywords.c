/*
 * fuzz_maildir_keywords.c - libFuzzer harness: maildir_kw_line_parse and
 * maildir_kw_letters on any bytes.  An accepted line has a slot below 26
 * and a non-empty name inside the line with no line end or NUL; the
 * letters are 26 bits at most.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/maildir_keywords.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data, *name;
	size_t nlen;
	unsigned slot;

	if (maildir_kw_line_parse(line, size, &slot, &name, &nlen)) {
		assert(slot < MAILDIR_KW_SLOTS);
		assert(nlen > 0 && name > line && name + nlen == line + size);
		assert(memchr(name, '\n', nlen) == NULL && memchr(name, '\0', nlen) == NULL);
	}
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	assert((maildir_kw_letters(s) >> MAILDIR_KW_SLOTS) == 0);
	free(s);
	return 0;
}
