/*
 * fuzz_autodiscover.c - libFuzzer harness for the Autodiscover
 * EMailAddress reader: what it returns is bounded, printable ASCII with
 * one "@".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/autodiscover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[64];
	if (autodiscover_email((const char *)data, size, out, sizeof(out))) {
		size_t n = strlen(out), at = 0;
		if (n == 0 || n >= sizeof(out))
			abort();
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f)
				abort();
			at += out[i] == '@';
		}
		if (at != 1)
			abort();
	}
	return 0;
}
