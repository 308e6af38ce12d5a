/*
 * dmarc.h - DMARC (RFC 7489): organizational domains through the Public
 * Suffix List (libpsl), identifier alignment (3.1), and the policy result
 * (6.6) from the SPF and DKIM results.  The record lookups are the
 * caller's: dmarc_names() says which TXT names to ask, in order.
 */
#ifndef TERN_DMARC_H
#define TERN_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "msgauth/dkim.h"
#include "msgauth/spf.h"
#include "proto/dmarc_record.h"

enum dmarc_result { DMARC_NONE, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR, DMARC_PERMERROR };

const char *dmarc_result_name(enum dmarc_result r);

/* The organizational domain of domain (3.2): its registrable domain by the
 * PSL (the system's list, else libpsl's built-in one), or domain itself
 * when it is a public suffix or unknown.  Written to out (lower case). */
void dmarc_org_domain(const char *domain, char *out, size_t cap);

/* Identifier alignment (3.1.1, 3.1.2): strict needs the same name,
 * relaxed the same organizational domain. */
bool dmarc_aligned(const char *from_domain, const char *id_domain, bool strict);

/* The policy names to look up (6.6.3): "_dmarc.FROM", then
 * "_dmarc.ORG" when ORG differs.  Returns how many (1 or 2). */
#define DMARC_NAME_CAP 264 /* "_dmarc." and a name */
size_t dmarc_names(const char *from_domain, char names[2][DMARC_NAME_CAP]);

struct dmarc_dkim_id {
	enum dkim_result result;
	const char *d;
};

struct dmarc_input {
	const char *from_domain;        /* RFC5322.From */
	bool have_record;               /* a usable record was found */
	bool record_at_org;             /* ... at the organizational domain */
	bool dns_error;                 /* the lookup failed: temperror */
	struct dmarc_record rec;
	enum spf_result spf;
	const char *spf_domain;         /* RFC5321.MailFrom domain (or HELO) */
	const struct dmarc_dkim_id *dkim;
	size_t ndkim;
	unsigned sample;                /* 0..99, uniformly drawn by the caller (pct) */
};

struct dmarc_outcome {
	enum dmarc_result result;
	enum dmarc_policy policy;       /* the record's p or sp */
	enum dmarc_policy disposition;  /* what to do: after pct (6.6.4) */
	bool spf_aligned, dkim_aligned;
};

void dmarc_evaluate(const struct dmarc_input *in, struct dmarc_outcome *out);

#endif
