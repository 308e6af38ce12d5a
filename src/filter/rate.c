/*
 * rate.c - per-address event counts in one-minute windows (rate.h).
 */
#include "filter/rate.h"
#include "core/util.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct rentry {
	unsigned char key[17];    /* family byte + address */
	int64_t start;            /* the window's first event */
	unsigned count;
	struct rentry *next;
};

struct rate {
	unsigned max_addrs, n;
	size_t nb;
	struct rentry **b;
};

struct rate *rate_new(unsigned max_addrs)
{
	struct rate *r = xcalloc(1, sizeof(*r));
	r->max_addrs = max_addrs ? max_addrs : 1;
	r->nb = max_addrs / 4 + 17;
	r->b = xcalloc(r->nb, sizeof(*r->b));
	return r;
}

void rate_free(struct rate *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nb; i++)
		for (struct rentry *e = r->b[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(r->b);
	free(r);
}

static size_t make_key(const struct rate *r, const struct sockaddr *sa, unsigned char key[17])
{
	uint64_t h = 1469598103934665603ULL;

	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)(h % r->nb);
}

/* Drop windows that have ended; if none had, the oldest one. */
static void sweep(struct rate *r, int64_t now)
{
	struct rentry **oldest = NULL;

	for (size_t i = 0; i < r->nb; i++)
		for (struct rentry **pp = &r->b[i]; *pp;) {
			if (now - (*pp)->start >= RATE_WINDOW) {
				struct rentry *e = *pp;
				*pp = e->next;
				free(e);
				r->n--;
				continue;
			}
			if (oldest == NULL || (*pp)->start < (*oldest)->start)
				oldest = pp;
			pp = &(*pp)->next;
		}
	if (r->n >= r->max_addrs && oldest) {
		struct rentry *e = *oldest;
		*oldest = e->next;
		free(e);
		r->n--;
	}
}

unsigned rate_hit(struct rate *r, const struct sockaddr *sa, int64_t now)
{
	unsigned char key[17];
	size_t h = make_key(r, sa, key);
	struct rentry *e;

	for (e = r->b[h]; e; e = e->next)
		if (memcmp(e->key, key, 17) == 0)
			break;
	if (e == NULL) {
		if (r->n >= r->max_addrs) {
			sweep(r, now);
			h = make_key(r, sa, key);
		}
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 17);
		e->start = now;
		e->next = r->b[h];
		r->b[h] = e;
		r->n++;
	}
	if (now - e->start >= RATE_WINDOW) {
		e->start = now;
		e->count = 0;
	}
	return ++e->count;
}
