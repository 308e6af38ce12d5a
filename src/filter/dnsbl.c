/*
 * dnsbl.c - DNS blocklists and allow lists for the MX (RFC 5782): one
 * A query per zone for the client, all in parallel, bounded by a timer of
 * our own (the resolver's retries could take far longer than a client
 * should wait), and a cache of answers for their TTL, bounded in entries
 * with the oldest dropped first.
 */
#include "filter/dnsbl.h"
#include "core/listener.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/util.h"
#include "proto/dnsbl.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNSBL_NEG_TTL 300        /* not listed: no SOA at hand, five minutes */
#define DNSBL_MAX_TTL 86400      /* a list's TTL is trusted up to a day */

/* One answer: the query name, whether it listed, until when. */
struct dnsbl_entry {
	char *qname;
	bool listed;                 /* an answer that matches the zone's code */
	int64_t expires;
	struct dnsbl_entry *hnext;   /* hash chain */
	struct dnsbl_entry *older, *newer;   /* age order, for eviction */
};

enum zone_state { ZS_ASKING, ZS_LISTED, ZS_CLEAR, ZS_FAILED };

struct dnsbl_req;

struct dnsbl_query {
	struct dnsbl_req *req;
	size_t zone;
	uint64_t dns_id;             /* in flight, or 0 */
	/* The cache key: the zone's index (a zone may be named twice with
	 * different codes), then the query name, qname. */
	char key[DNSBL_QNAME_MAX + 8];
	char *qname;
	enum zone_state st;
};

struct dnsbl_req {
	struct dnsbl *b;
	uint64_t id, session;
	char ip[64];
	dnsbl_cb cb;
	void *arg;
	struct event *ev;            /* the time limit, or "all answered" */
	size_t pending;
	struct dnsbl_req *prev, *next;
	struct dnsbl_query q[];      /* one per zone: sized to the zones, while in flight only */
};

struct dnsbl {
	struct event_base *base;
	struct dns *dns;
	struct dnsbl_zone zones[DNSBL_ZONES_MAX];
	bool allow[DNSBL_ZONES_MAX]; /* an allow-list zone */
	size_t nzones;
	uint64_t timeout_ms;
	unsigned cache_max;
	size_t ncache, nbuckets;
	struct dnsbl_entry **buckets;
	struct dnsbl_entry *oldest, *newest;
	struct dnsbl_req *reqs;
	uint64_t next_id;
};

/* ---- log events ---- */

static void log_dnsbl_listed(const struct dnsbl_req *r, const char *zone)
{
	log_event("event=dnsbl_listed session=%016" PRIx64 " ip=%s zone=%s", r->session, r->ip, zone);
}

static void log_dnswl_listed(const struct dnsbl_req *r, const char *zone)
{
	log_event("event=dnswl_listed session=%016" PRIx64 " ip=%s zone=%s", r->session, r->ip, zone);
}

static void log_dnsbl_timeout(const struct dnsbl_req *r, const char *zone)
{
	log_event("event=dnsbl_timeout session=%016" PRIx64 " ip=%s zone=%s action=pass", r->session, r->ip, zone);
}

static void log_dnsbl_failed(const struct dnsbl_req *r, const char *zone)
{
	log_event("event=dnsbl_failed session=%016" PRIx64 " ip=%s zone=%s action=pass", r->session, r->ip, zone);
}

/* ---- the cache ---- */

static size_t hash_name(const char *s, size_t nb)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)(h % nb);
}

static void cache_unlink(struct dnsbl *b, struct dnsbl_entry *e)
{
	struct dnsbl_entry **pp = &b->buckets[hash_name(e->qname, b->nbuckets)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older) e->older->newer = e->newer; else b->oldest = e->newer;
	if (e->newer) e->newer->older = e->older; else b->newest = e->older;
	b->ncache--;
	free(e->qname);
	free(e);
}

static struct dnsbl_entry *cache_get(struct dnsbl *b, const char *qname, int64_t now)
{
	struct dnsbl_entry *e;

	for (e = b->buckets[hash_name(qname, b->nbuckets)]; e; e = e->hnext)
		if (strcmp(e->qname, qname) == 0)
			break;
	if (e && e->expires <= now) {
		cache_unlink(b, e);
		return NULL;
	}
	return e;
}

static void cache_put(struct dnsbl *b, const char *qname, bool listed, unsigned ttl, int64_t now)
{
	struct dnsbl_entry *e = cache_get(b, qname, now);
	size_t h;

	if (b->cache_max == 0)
		return;
	if (e)
		cache_unlink(b, e);
	/* Expired ones first, then the oldest: the cache never grows past
	 * cache_max entries. */
	while (b->oldest && b->oldest->expires <= now)
		cache_unlink(b, b->oldest);
	while (b->ncache >= b->cache_max)
		cache_unlink(b, b->oldest);
	e = xcalloc(1, sizeof(*e));
	e->qname = xstrdup(qname);
	e->listed = listed;
	e->expires = now + (ttl > DNSBL_MAX_TTL ? DNSBL_MAX_TTL : ttl);
	h = hash_name(qname, b->nbuckets);
	e->hnext = b->buckets[h];
	b->buckets[h] = e;
	e->older = b->newest;
	if (b->newest) b->newest->newer = e; else b->oldest = e;
	b->newest = e;
	b->ncache++;
}

size_t dnsbl_cache_size(const struct dnsbl *b)
{
	return b ? b->ncache : 0;
}

/* ---- requests ---- */

struct dnsbl *dnsbl_new(struct event_base *base, struct dns *dns, const struct word_list *zones,
			const struct word_list *allow, uint64_t timeout_ms, unsigned cache_max)
{
	struct dnsbl *b;

	if (zones->n + allow->n == 0 || dns == NULL)
		return NULL;
	b = xcalloc(1, sizeof(*b));
	b->base = base;
	b->dns = dns;
	for (int k = 0; k < 2; k++) {
		const struct word_list *l = k ? allow : zones;
		for (size_t i = 0; i < l->n && b->nzones < DNSBL_ZONES_MAX; i++) {
			if (dnsbl_zone_parse(l->v[i], strlen(l->v[i]), &b->zones[b->nzones]) != DNSBL_ZONE_OK)
				continue;
			b->allow[b->nzones++] = k;
		}
	}
	b->timeout_ms = timeout_ms;
	b->cache_max = cache_max;
	b->nbuckets = cache_max / 2 + 17;
	b->buckets = xcalloc(b->nbuckets, sizeof(*b->buckets));
	b->next_id = 1;
	return b;
}

static void req_free(struct dnsbl_req *r)
{
	struct dnsbl *b = r->b;

	for (size_t i = 0; i < b->nzones; i++)
		if (r->q[i].dns_id)
			dns_cancel(b->dns, r->q[i].dns_id);
	if (r->prev) r->prev->next = r->next; else b->reqs = r->next;
	if (r->next) r->next->prev = r->prev;
	event_free(r->ev);
	free(r);
}

void dnsbl_free(struct dnsbl *b)
{
	if (b == NULL)
		return;
	while (b->reqs)
		req_free(b->reqs);
	while (b->oldest)
		cache_unlink(b, b->oldest);
	free(b->buckets);
	free(b);
}

/* Every zone answered, or the time is up: the verdict, then the callback. */
static void req_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnsbl_req *r = arg;
	struct dnsbl *b = r->b;
	struct dnsbl_result res = { .verdict = DNSBL_PASS };
	char zone[DNSBL_ZONE_MAX + 1] = "";

	for (size_t i = 0; i < b->nzones; i++) {
		const struct dnsbl_query *q = &r->q[i];
		if (q->st == ZS_ASKING) {
			res.timed_out++;
			log_dnsbl_timeout(r, b->zones[i].name);
		} else if (q->st == ZS_FAILED) {
			res.failed++;
			log_dnsbl_failed(r, b->zones[i].name);
		} else if (q->st == ZS_LISTED) {
			if (b->allow[i])
				log_dnswl_listed(r, b->zones[i].name);
			else
				log_dnsbl_listed(r, b->zones[i].name);
			if (b->allow[i] && res.verdict != DNSBL_ALLOWED) {
				res.verdict = DNSBL_ALLOWED;
				snprintf(zone, sizeof(zone), "%s", b->zones[i].name);
			} else if (!b->allow[i] && res.verdict == DNSBL_PASS) {
				res.verdict = DNSBL_LISTED;
				snprintf(zone, sizeof(zone), "%s", b->zones[i].name);
			}
		}
	}
	res.zone = zone[0] ? zone : NULL;
	dnsbl_cb cb = r->cb;
	void *cb_arg = r->arg;
	req_free(r);   /* first: the callback may start or cancel checks */
	cb(&res, cb_arg);
}

static void query_done(struct dnsbl_query *q, enum zone_state st)
{
	struct dnsbl_req *r = q->req;

	q->st = st;
	q->dns_id = 0;
	if (--r->pending == 0)
		event_active(r->ev, EV_TIMEOUT, 0);
}

static void dnsbl_a_cb(const struct dns_a_result *a, void *arg)
{
	struct dnsbl_query *q = arg;
	struct dnsbl *b = q->req->b;
	const struct dnsbl_zone *z = &b->zones[q->zone];
	int64_t now = now_unix();
	bool listed;

	if (a->status == DNS_TEMPFAIL) {
		query_done(q, ZS_FAILED);
		return;
	}
	listed = a->status == DNS_OK && dnsbl_answer_matches(z, a->addrs, a->n);
	cache_put(b, q->key, listed, a->status == DNS_OK ? a->ttl : DNSBL_NEG_TTL, now);
	query_done(q, listed ? ZS_LISTED : ZS_CLEAR);
}

uint64_t dnsbl_check(struct dnsbl *b, const struct sockaddr *sa, uint64_t session, dnsbl_cb cb, void *arg)
{
	struct dnsbl_req *r = xcalloc(1, sizeof(*r) + b->nzones * sizeof(r->q[0]));
	int64_t now = now_unix();
	struct timeval tv = { (time_t)(b->timeout_ms / 1000), (suseconds_t)(b->timeout_ms % 1000) * 1000 };

	r->b = b;
	r->id = b->next_id++;
	r->session = session;
	r->cb = cb;
	r->arg = arg;
	listener_format_ip(sa, r->ip, sizeof(r->ip));
	r->ev = event_new(b->base, -1, 0, req_done_cb, r);
	if (r->ev == NULL)
		die("event_new failed for a DNSBL check");
	r->next = b->reqs;
	if (b->reqs) b->reqs->prev = r;
	b->reqs = r;
	r->pending = 1;   /* a guard while the queries start */
	for (size_t i = 0; i < b->nzones; i++) {
		struct dnsbl_query *q = &r->q[i];
		struct dnsbl_entry *e;

		q->req = r;
		q->zone = i;
		q->qname = q->key + snprintf(q->key, 8, "%zu/", i);
		if (dnsbl_query_name(sa, b->zones[i].name, q->qname, DNSBL_QNAME_MAX) == 0) {
			q->st = ZS_CLEAR;   /* not an address a list can name */
			continue;
		}
		e = cache_get(b, q->key, now);
		if (e) {
			q->st = e->listed ? ZS_LISTED : ZS_CLEAR;
			continue;
		}
		q->st = ZS_ASKING;
		r->pending++;
		q->dns_id = dns_a_lookup(b->dns, q->qname, dnsbl_a_cb, q);
	}
	if (--r->pending == 0)
		event_active(r->ev, EV_TIMEOUT, 0);
	else
		event_add(r->ev, &tv);
	return r->id;
}

void dnsbl_cancel(struct dnsbl *b, uint64_t id)
{
	for (struct dnsbl_req *r = b ? b->reqs : NULL; r; r = r->next)
		if (r->id == id) {
			req_free(r);
			return;
		}
}
