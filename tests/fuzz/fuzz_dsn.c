/*
 * fuzz_dsn.c - libFuzzer harness for proto/dsn.c: the input, split on NUL,
 * gives the peer-controlled strings (address, ORCPT, remote MTA,
 * diagnostic, ENVID, sender, status); the output must never contain a
 * byte outside printable ASCII, TAB and LF.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[7], *p, *out;
	size_t i, n = 0, len;

	memcpy(buf, data, size);
	buf[size] = '\0';
	for (p = buf; n < 7; n++) {
		f[n] = p;
		p += strlen(p);
		if (p < buf + size)
			p++;
	}
	struct dsn_rcpt rc = { f[1], f[0], (enum dsn_action)(size % 4), f[6], f[2], f[3], 1, 2 };
	struct dsn_report r = { "h.test", f[5], "u1", f[4], 0, 0, (enum dsn_ret)(size % 3),
				false, &rc, 1 };

	out = dsn_prefix(&r, &len);
	if (out != NULL) {
		for (i = 0; i < len; i++) {
			unsigned char c = (unsigned char)out[i];
			if (c != '\n' && c != '\t' && (c < 0x20 || c > 0x7e))
				__builtin_trap();
		}
		free(out);
		out = dsn_suffix(&r, &len);
		free(out);
	}
	free(buf);
	return 0;
}
