/*
 * addrcount.c - a chained hash of IP address -> counter (see addrcount.h).
 */
#include "core/addrcount.h"
#include "core/util.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define AC_BUCKETS 4096

struct ac_entry {
	unsigned char key[17];    /* family byte + address */
	unsigned value;
	int64_t last;
	struct ac_entry *next;
};

struct addr_count {
	struct ac_entry *b[AC_BUCKETS];
};

struct addr_count *addr_count_new(void)
{
	return xcalloc(1, sizeof(struct addr_count));
}

void addr_count_free(struct addr_count *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < AC_BUCKETS; i++)
		for (struct ac_entry *e = a->b[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(a);
}

static unsigned make_key(const struct sockaddr *sa, unsigned char key[17])
{
	uint32_t h = 2166136261u;
	memset(key, 0, 17);
	if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		key[0] = 6;
		memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % AC_BUCKETS;
}

static struct ac_entry **find(struct addr_count *a, const struct sockaddr *sa, unsigned char key[17])
{
	struct ac_entry **pp = &a->b[make_key(sa, key)];
	for (; *pp; pp = &(*pp)->next)
		if (memcmp((*pp)->key, key, 17) == 0)
			break;
	return pp;
}

unsigned addr_count_add(struct addr_count *a, const struct sockaddr *sa, int delta, int64_t now)
{
	unsigned char key[17];
	struct ac_entry **pp = find(a, sa, key), *e = *pp;

	if (e == NULL) {
		if (delta <= 0)
			return 0;
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 17);
		*pp = e;
	}
	if (delta < 0 && (unsigned)-delta >= e->value) {
		*pp = e->next;
		free(e);
		return 0;
	}
	e->value = (unsigned)((int)e->value + delta);
	e->last = now;
	return e->value;
}

unsigned addr_count_get(struct addr_count *a, const struct sockaddr *sa, int64_t now, int64_t forget_after)
{
	unsigned char key[17];
	struct ac_entry **pp = find(a, sa, key), *e = *pp;
	if (e == NULL)
		return 0;
	if (forget_after > 0 && now - e->last > forget_after) {
		*pp = e->next;
		free(e);
		return 0;
	}
	return e->value;
}
