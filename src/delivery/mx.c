/*
 * mx.c - MX ordering, self-pruning and null MX detection.
 * RFC 5321 §5.1 (order by preference, randomise equal preferences, try
 * only hosts more preferred than ourselves), RFC 7505 (null MX).
 */
#include "delivery/mx.h"

#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static bool mx_is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, ".") == 0;
}

bool mx_is_null(const struct dns_mx_record *r, size_t n)
{
	return n == 1 && r[0].pref == 0 && mx_is_root(r[0].name);
}

bool mx_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && ascii_ieq(a, b, la);
}

/* splitmix32-style step: small, good enough to spread equal preferences. */
static uint32_t mx_rand_next(uint32_t *state)
{
	uint32_t z = (*state += 0x9e3779b9u);

	z = (z ^ (z >> 16)) * 0x85ebca6bu;
	z = (z ^ (z >> 13)) * 0xc2b2ae35u;
	return z ^ (z >> 16);
}

void mx_sort(struct dns_mx_record *r, size_t n, uint32_t seed)
{
	uint32_t state = seed;
	uint32_t *key;
	size_t i, j;

	if (n < 2)
		return;
	key = xmalloc(n * sizeof(*key));
	for (i = 0; i < n; i++)
		key[i] = mx_rand_next(&state);
	/* Insertion sort on (pref, random key): n is small (a few MX). */
	for (i = 1; i < n; i++) {
		struct dns_mx_record tmp = r[i];
		uint32_t k = key[i];

		for (j = i; j > 0 && (r[j - 1].pref > tmp.pref ||
			(r[j - 1].pref == tmp.pref && key[j - 1] > k)); j--) {
			r[j] = r[j - 1];
			key[j] = key[j - 1];
		}
		r[j] = tmp;
		key[j] = k;
	}
	free(key);
}

static size_t mx_drop_root(struct dns_mx_record *r, size_t n)
{
	size_t i, m = 0;

	for (i = 0; i < n; i++)
		if (!mx_is_root(r[i].name))
			r[m++] = r[i];
	return m;
}

enum dns_mx_order mx_prepare(struct dns_mx_record *r, size_t n, const char *self,
			     uint32_t seed, size_t *n_out)
{
	size_t i;

	*n_out = 0;
	if (mx_is_null(r, n))
		return DNS_MX_ORDER_NULL;
	n = mx_drop_root(r, n);
	if (n == 0)
		return DNS_MX_ORDER_EMPTY;
	mx_sort(r, n, seed);
	if (self != NULL && self[0] != '\0') {
		/* Sorted, so the first match has our lowest preference and
		 * everything from the first record of that preference on
		 * goes (RFC 5321 §5.1). */
		for (i = 0; i < n; i++) {
			if (mx_name_eq(r[i].name, self)) {
				unsigned p = r[i].pref;

				while (i > 0 && r[i - 1].pref == p)
					i--;
				if (i == 0)
					return DNS_MX_ORDER_ONLY_SELF;
				n = i;
				break;
			}
		}
	}
	*n_out = n;
	return DNS_MX_ORDER_OK;
}
