/*
 * dnsbl.h - DNS blocklist and allow-list checks of a client address
 * (RFC 5782), asynchronous on the event loop, time-bounded, with the
 * answers cached for their TTL.
 *
 * A check asks every block zone and every allow zone at once.  The
 * verdict: ALLOWED when an allow zone lists the client (it outweighs any
 * block zone), else LISTED naming the first block zone (in the
 * configured order) that lists it, else PASS.  A zone that has not
 * answered when the time is up, or that failed, counts as not listing
 * the client (mail is not refused for a blocklist's trouble), and the
 * result says so.
 *
 * Requests are by id (STYLE.md 7): dnsbl_check() returns an id > 0 and
 * the callback runs exactly once, later, from the loop, unless
 * dnsbl_cancel() was called for it.
 */
#ifndef TERN_FILTER_DNSBL_H
#define TERN_FILTER_DNSBL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dnsbl;
struct word_list;

enum dnsbl_verdict { DNSBL_PASS, DNSBL_LISTED, DNSBL_ALLOWED };

struct dnsbl_result {
	enum dnsbl_verdict verdict;
	const char *zone;       /* LISTED / ALLOWED: the zone; valid in the callback */
	unsigned timed_out;     /* zones that did not answer in time */
	unsigned failed;        /* zones whose lookup failed */
};

typedef void (*dnsbl_cb)(const struct dnsbl_result *r, void *arg);

/* zones and allow hold specs that dnsbl_zone_parse() accepts (the config
 * checked them).  NULL when both are empty: nothing to check. */
struct dnsbl *dnsbl_new(struct event_base *base, struct dns *dns, const struct word_list *zones,
			const struct word_list *allow, uint64_t timeout_ms, unsigned cache_max);
void dnsbl_free(struct dnsbl *b);

/* session is for the log lines. */
uint64_t dnsbl_check(struct dnsbl *b, const struct sockaddr *sa, uint64_t session, dnsbl_cb cb, void *arg);
void dnsbl_cancel(struct dnsbl *b, uint64_t id);

/* Cached answers now (for tests and the log). */
size_t dnsbl_cache_size(const struct dnsbl *b);

#endif
