/*
 * fuzz_aliasfile.c - libFuzzer harness: alias_line_parse on any bytes.
 * An accepted line has a non-empty lower-case name and 1..ALIAS_TARGETS_MAX
 * targets, none empty, none a pipe or a file, none over an address's 256
 * octets; a refused line leaves nothing allocated; the error has words.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/aliasfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct alias_line l;
	enum alias_line_err err = alias_line_parse((const char *)data, size, &l);

	assert(alias_line_strerror(err)[0] != '\0');
	if (err != ALIAS_LINE_OK) {
		assert(l.name == NULL && l.targets == NULL && l.ntargets == 0);
		return 0;
	}
	assert(l.name[0] != '\0' && strlen(l.name) <= 254);
	for (const char *c = l.name; *c; c++)
		assert(!(*c >= 'A' && *c <= 'Z'));
	assert(l.ntargets >= 1 && l.ntargets <= ALIAS_TARGETS_MAX);
	for (size_t i = 0; i < l.ntargets; i++) {
		size_t n = strlen(l.targets[i]);
		assert(n > 0 && n <= 254);
		assert(strchr("|/:", l.targets[i][0]) == NULL);
		assert(strpbrk(l.targets[i], " \t,#") == NULL);
	}
	alias_line_free(&l);
	return 0;
}
