/*
 * fuzz_auth_results.c - libFuzzer harness for the authserv-id parser of
 * Authentication-Results fields: no crash, the id within its bound and
 * free of NUL, and a field that parses OK keeps its result whatever
 * follows its ";".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/auth_results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_results_id id, again;
	enum auth_results_status st = auth_results_parse((const char *)data, size, &id);

	if (id.len > AUTH_RESULTS_ID_MAX || strlen(id.id) != id.len)
		abort();
	if (st == AUTH_RESULTS_OTHER && id.len != 0)
		abort();
	if (st != AUTH_RESULTS_OTHER && (size < 22 || strncasecmp((const char *)data, "authentication-results", 22)))
		abort();
	if (st == AUTH_RESULTS_OK) {
		char *more = malloc(size + 3);
		if (id.len == 0)
			abort();
		memcpy(more, data, size);
		memcpy(more + size, "x\n(", 3);
		if (auth_results_parse(more, size + 3, &again) != AUTH_RESULTS_OK || strcmp(again.id, id.id) != 0 ||
		    again.version != id.version)
			abort();
		free(more);
	}
	return 0;
}
