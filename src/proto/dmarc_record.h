/*
 * dmarc_record.h - DMARC policy records (RFC 7489 6.3, 6.4), written in
 * DKIM's tag-list syntax.  Pure: the TXT text in, the policy out.
 */
#ifndef TERN_DMARC_RECORD_H
#define TERN_DMARC_RECORD_H

#include <stdbool.h>
#include <stddef.h>

enum dmarc_policy { DMARC_P_NONE, DMARC_P_QUARANTINE, DMARC_P_REJECT };

struct dmarc_record {
	enum dmarc_policy p, sp;
	bool adkim_strict, aspf_strict;
	unsigned pct;        /* 0..100 */
	bool has_rua;
};

/* True when txt starts a DMARC record ("v=DMARC1" first, 6.4). */
bool dmarc_is_record(const char *txt, size_t len);
/* Parse a record; false (with *reason) when it is not usable, so that no
 * DMARC processing applies (6.6.3).  A missing or bad p= with a rua= is
 * p=none (6.6.3 step 6); sp= defaults to p=; pct=, adkim=, aspf= out of
 * their range take their defaults. */
bool dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec, const char **reason);

const char *dmarc_policy_name(enum dmarc_policy p);

#endif
