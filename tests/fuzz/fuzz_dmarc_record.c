/*
 * fuzz_dmarc_record.c - libFuzzer harness for DMARC policy records: no
 * crash, and what parses is within range.
 */
#include <stdint.h>
#include <stdlib.h>

#include "proto/dmarc_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record r;
	const char *reason = NULL;

	if (dmarc_record_parse((const char *)data, size, &r, &reason)) {
		if (r.pct > 100 || r.p > DMARC_P_REJECT || r.sp > DMARC_P_REJECT)
			abort();
		if (!dmarc_is_record((const char *)data, size))
			abort();
	} else if (!reason) {
		abort();
	}
	return 0;
}
