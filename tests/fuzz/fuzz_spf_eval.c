/*
 * fuzz_spf_eval.c - libFuzzer harness for the SPF state machine: the input
 * is the DNS.  Lines separated by LF answer the questions in turn (TXT text,
 * MX and PTR names, A/AAAA from their first octets; a line starting with
 * "!" is a DNS failure, an empty one NXDOMAIN), wrapping around; the
 * evaluation must end within 500 questions whatever the answers, and an
 * explanation (asked for on every other input) only come with a fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "msgauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *end = in + size, *p = in;
	unsigned char ip[16] = { 203, 0, 113, 1 };
	struct spf *s = spf_new(size % 3 ? AF_INET : AF_INET6, ip, "ex.test", "a@ex.test", "h.test");
	struct spf_query q;
	int guard = 0;
	if (size % 2)
		spf_explain(s, "mx.receiver.test", 1700000000);
	while (spf_next(s, &q)) {
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		size_t len = p < end ? (nl ? (size_t)(nl - p) : (size_t)(end - p)) : 0;
		struct spf_rr rr[2];
		memset(rr, 0, sizeof rr);
		if (++guard > 500) abort();
		if (len == 0) spf_answer(s, SPF_DNS_NXDOMAIN, NULL, 0);
		else if (p[0] == '!') spf_answer(s, SPF_DNS_TEMPFAIL, NULL, 0);
		else {
			rr[0].text = p; rr[0].len = len;
			memcpy(rr[0].addr, p, len < 16 ? len : 16);
			rr[1] = rr[0];
			spf_answer(s, SPF_DNS_OK, rr, len % 3 == 0 ? 2 : 1);
		}
		p = nl ? nl + 1 : end;
		if (p >= end) p = in; /* wrap: answers repeat */
	}
	if (spf_explanation(s) && spf_result(s, NULL) != SPF_FAIL)
		abort();
	spf_free(s);
	return 0;
}
