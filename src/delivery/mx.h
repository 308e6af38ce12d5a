/*
 * mx.h - pure MX record logic for outbound routing: ordering by
 * preference with a seeded shuffle of equal preferences (RFC 5321 §5.1),
 * dropping our own host and every less-preferred host (RFC 5321 §5.1),
 * and null MX detection (RFC 7505).  No I/O: mx_prepare is the ordering
 * step remote.c hands to dns_mx_lookup() (core/dns.h).
 */
#ifndef TERN_MX_H
#define TERN_MX_H

#include "core/dns.h"	/* struct dns_mx_record, enum dns_mx_order */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the set is exactly one MX "." (or "") of preference 0. */
bool mx_is_null(const struct dns_mx_record *r, size_t n);

/* Sort by ascending preference; records of equal preference are put in
 * an order drawn from seed (the same seed gives the same order). */
void mx_sort(struct dns_mx_record *r, size_t n, uint32_t seed);

/* Case-insensitive host name equality, ignoring one trailing dot. */
bool mx_name_eq(const char *a, const char *b);

/*
 * The whole routing step, in place: detect null MX, remove "." targets
 * found among other records, sort and shuffle, and when self (may be NULL
 * or "") is one of the hosts remove it and every host whose preference is
 * equal to or larger than its lowest preference.  *n_out is the number of
 * records left, in the order to try.
 */
enum dns_mx_order mx_prepare(struct dns_mx_record *r, size_t n, const char *self,
			     uint32_t seed, size_t *n_out);

#endif
