/*
 * mx.h - pure MX record logic for outbound routing: ordering by
 * preference with a seeded shuffle of equal preferences (RFC 5321 §5.1),
 * dropping our own host and every less-preferred host (RFC 5321 §5.1),
 * and null MX detection (RFC 7505).  No I/O; dns.c feeds it.
 */
#ifndef TERN_MX_H
#define TERN_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MX_NAME_MAX 256		/* a DNS name in text form, with its NUL */

struct mx_record {
	char name[MX_NAME_MAX];	/* target, no trailing dot ("" or "." = root) */
	unsigned pref;
};

enum mx_outcome {
	MX_OUTCOME_OK,		/* records hold the hosts to try, in order */
	MX_OUTCOME_NULL,	/* RFC 7505 null MX: the domain takes no mail */
	MX_OUTCOME_ONLY_SELF,	/* we are the best MX: nothing left to try */
	MX_OUTCOME_EMPTY,	/* no usable record at all */
};

/* True when the set is exactly one MX "." (or "") of preference 0. */
bool mx_is_null(const struct mx_record *r, size_t n);

/* Sort by ascending preference; records of equal preference are put in
 * an order drawn from seed (the same seed gives the same order). */
void mx_sort(struct mx_record *r, size_t n, uint32_t seed);

/* Case-insensitive host name equality, ignoring one trailing dot. */
bool mx_name_eq(const char *a, const char *b);

/*
 * The whole routing step, in place: detect null MX, remove "." targets
 * found among other records, sort and shuffle, and when self (may be NULL
 * or "") is one of the hosts remove it and every host whose preference is
 * equal to or larger than its lowest preference.  *n_out is the number of
 * records left, in the order to try.
 */
enum mx_outcome mx_prepare(struct mx_record *r, size_t n, const char *self,
			   uint32_t seed, size_t *n_out);

#endif
