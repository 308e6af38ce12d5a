/*
 * fuzz_dkim_verify.c - libFuzzer harness for the DKIM verifier on whole
 * messages, cut in two at a point the input chooses; every signature found
 * is checked against one Ed25519 key record (RFC 8463's), and the From
 * domains are read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/dkim.h"

static const char key_ed[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_verify *v = dkim_verify_new();
	size_t cut = size ? data[0] % size : 0;
	dkim_verify_feed(v, (const char *)data, cut);
	dkim_verify_feed(v, (const char *)data + cut, size - cut);
	dkim_verify_finish(v);
	{
		char doms[4][256];
		size_t n = dkim_verify_from_domains(v, doms, 4);
		if (n != SIZE_MAX && n > 4)
			abort();
		for (size_t i = 0; n != SIZE_MAX && i < n; i++)
			if (strlen(doms[i]) > 255)
				abort();
	}
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		char *n = dkim_verify_key_name(v, i);
		if (n) dkim_verify_key(v, i, key_ed, strlen(key_ed), 1700000000);
		free(n);
		dkim_verify_result(v, i, NULL);
	}
	dkim_verify_free(v);
	return 0;
}
