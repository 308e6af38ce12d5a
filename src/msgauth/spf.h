/*
 * spf.h - SPF evaluation (RFC 7208 4, 5), check_host() as a state
 * machine that does no I/O: it asks its caller for one DNS lookup at a
 * time (spf_next) and is given the answer (spf_answer), so the caller can
 * use the asynchronous resolver and bound the time it takes.  The limits
 * of 4.6.4 hold: 10 terms that query DNS, 2 void lookups, 10 MX and PTR
 * names.  On a fail, the explanation an exp= names is fetched (6.2) when
 * asked for with spf_explain(); that lookup counts toward no limit.
 */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Explanations longer than this once expanded are not used. */
#define SPF_EXPLAIN_MAX 400

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

const char *spf_result_name(enum spf_result r);

enum spf_qtype { SPF_QTXT, SPF_QA, SPF_QAAAA, SPF_QMX, SPF_QPTR };

struct spf_query {
	enum spf_qtype type;
	char name[256];
};

enum spf_rcode {
	SPF_DNS_OK,        /* answers given (possibly none: NODATA) */
	SPF_DNS_NXDOMAIN,
	SPF_DNS_TEMPFAIL,  /* timeout, SERVFAIL */
};

/* One answer record: TXT (its strings joined), A / AAAA (4 / 16 octets in
 * addr), MX (the exchange name), PTR (the name). */
struct spf_rr {
	const char *text;
	size_t len;
	unsigned char addr[16];
};

struct spf;

/* check_host(ip, domain, sender) (4.1); family AF_INET or AF_INET6, ip
 * its 4 or 16 octets; sender local-part@domain (postmaster@helo when the
 * MAIL FROM is empty, 2.4). */
struct spf *spf_new(int family, const unsigned char *ip, const char *domain, const char *sender, const char *helo);
/* Before the first spf_next(): on a fail, fetch and expand the
 * explanation of the record that failed (6.2); receiver is %{r} (our
 * host name), now %{t}. */
void spf_explain(struct spf *s, const char *receiver, uint64_t now);
/* True and *q set: answer that lookup with spf_answer().  False: done. */
bool spf_next(struct spf *s, struct spf_query *q);
void spf_answer(struct spf *s, enum spf_rcode rc, const struct spf_rr *rr, size_t n);
enum spf_result spf_result(const struct spf *s, const char **reason);
/* The explanation of a fail, or NULL: none asked for, no exp=, or its
 * lookup or text unusable (6.2: then as if there were no exp=). */
const char *spf_explanation(const struct spf *s);
/* Waiting for the explanation's lookup: the result is known already, and
 * an unanswered lookup leaves it without explanation. */
bool spf_explaining(const struct spf *s);
void spf_free(struct spf *s);

#endif
