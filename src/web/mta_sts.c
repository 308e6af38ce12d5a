/*
 * mta_sts.c - the MTA-STS policy file (RFC 8461 3.2): "key: value" lines
 * ending in CRLF, one mx line per MX name ([mta_sts] mx, or tern's own
 * hostname), max_age in seconds.
 */
#include "web/web.h"
#include "core/config.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *web_mta_sts_policy(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		die("out of memory");
	fprintf(f, "version: STSv1\r\nmode: %s\r\n", cfg->mta_sts_mode);
	if (cfg->mta_sts_mx.n == 0)
		fprintf(f, "mx: %s\r\n", cfg->hostname);
	for (size_t i = 0; i < cfg->mta_sts_mx.n; i++)
		fprintf(f, "mx: %s\r\n", cfg->mta_sts_mx.v[i]);
	fprintf(f, "max_age: %u\r\n", cfg->mta_sts_max_age);
	if (fclose(f) != 0)
		die("out of memory");
	return buf;
}
