/*
 * dmarc.c - RFC 7489 3.1 (alignment), 3.2 (organizational domain), 6.6
 * (the policy and its disposition).
 */
#include "msgauth/dmarc.h"

#include "core/util.h"

#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

const char *dmarc_result_name(enum dmarc_result r)
{
	static const char *const names[] = { [DMARC_NONE] = "none", [DMARC_PASS] = "pass", [DMARC_FAIL] = "fail",
					     [DMARC_TEMPERROR] = "temperror", [DMARC_PERMERROR] = "permerror" };
	return names[r];
}

/* The list is read once per process and never changes after: a PSL
 * update takes a restart, as it does for Postfix and OpenDMARC. */
static const psl_ctx_t *psl;
static pthread_once_t psl_once = PTHREAD_ONCE_INIT;

static void psl_load(void)
{
	psl_ctx_t *latest = psl_latest(NULL);

	psl = latest ? latest : psl_builtin();
}

void dmarc_org_domain(const char *domain, char *out, size_t cap)
{
	char lower[256];
	size_t n = 0;
	const char *reg;

	pthread_once(&psl_once, psl_load);
	for (; domain[n] && n < sizeof lower - 1; n++)
		lower[n] = ascii_lower(domain[n]);
	while (n > 0 && lower[n - 1] == '.')
		n--;
	lower[n] = '\0';
	reg = psl ? psl_registrable_domain(psl, lower) : NULL;
	snprintf(out, cap, "%s", reg ? reg : lower);
}

bool dmarc_aligned(const char *from_domain, const char *id_domain, bool strict)
{
	char a[256], b[256];

	if (!from_domain || !id_domain || !*from_domain || !*id_domain)
		return false;
	if (strict) {
		size_t la = strlen(from_domain), lb = strlen(id_domain);
		while (la && from_domain[la - 1] == '.')
			la--;
		while (lb && id_domain[lb - 1] == '.')
			lb--;
		return la == lb && ascii_ieq(from_domain, id_domain, la);
	}
	dmarc_org_domain(from_domain, a, sizeof a);
	dmarc_org_domain(id_domain, b, sizeof b);
	return strcmp(a, b) == 0;
}

size_t dmarc_names(const char *from_domain, char names[2][DMARC_NAME_CAP])
{
	char org[256];

	dmarc_org_domain(from_domain, org, sizeof org);
	snprintf(names[0], DMARC_NAME_CAP, "_dmarc.%s", from_domain);
	for (char *p = names[0]; *p; p++)
		*p = ascii_lower(*p);
	for (size_t n = strlen(names[0]); n > 7 && names[0][n - 1] == '.'; n--)
		names[0][n - 1] = '\0';
	if (strcmp(names[0] + 7, org) == 0)
		return 1;
	snprintf(names[1], DMARC_NAME_CAP, "_dmarc.%s", org);
	return 2;
}

/* 6.6.4: a message outside pct gets the next weaker policy. */
static enum dmarc_policy sampled(enum dmarc_policy p, unsigned pct, unsigned sample)
{
	if (sample < pct)
		return p;
	return p == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

void dmarc_evaluate(const struct dmarc_input *in, struct dmarc_outcome *out)
{
	memset(out, 0, sizeof *out);
	if (in->dns_error) {
		out->result = DMARC_TEMPERROR;
		return;
	}
	if (!in->have_record) {
		out->result = DMARC_NONE;
		return;
	}
	out->spf_aligned = in->spf == SPF_PASS && dmarc_aligned(in->from_domain, in->spf_domain, in->rec.aspf_strict);
	for (size_t i = 0; i < in->ndkim && !out->dkim_aligned; i++)
		out->dkim_aligned = in->dkim[i].result == DKIM_PASS &&
				    dmarc_aligned(in->from_domain, in->dkim[i].d, in->rec.adkim_strict);
	/* sp= is for subdomains: the record was found above the From domain */
	out->policy = in->record_at_org ? in->rec.sp : in->rec.p;
	if (out->spf_aligned || out->dkim_aligned) {
		out->result = DMARC_PASS;
		out->disposition = DMARC_P_NONE;
		return;
	}
	/* No pass, but an aligned identifier could not be checked for DNS
	 * trouble: the result is not known, and a DNS failure must never
	 * turn into a p=reject refusal (RFC 7489 6.6.2 leaves this to the
	 * receiver; temperror lets the sender try again). */
	bool unknown = in->spf == SPF_TEMPERROR && in->spf_domain && dmarc_aligned(in->from_domain, in->spf_domain, in->rec.aspf_strict);
	for (size_t i = 0; i < in->ndkim && !unknown; i++)
		unknown = in->dkim[i].result == DKIM_TEMPERROR &&
			  dmarc_aligned(in->from_domain, in->dkim[i].d, in->rec.adkim_strict);
	if (unknown) {
		out->result = DMARC_TEMPERROR;
		out->disposition = DMARC_P_NONE;
		return;
	}
	out->result = DMARC_FAIL;
	out->disposition = sampled(out->policy, in->rec.pct, in->sample);
}
