/*
 * addrcount.h - counters keyed by client IP address: connections per
 * address, failed logins per address (with the time of the last one so
 * that old failures are forgotten).
 */
#ifndef TERN_ADDRCOUNT_H
#define TERN_ADDRCOUNT_H

#include <stdint.h>
#include <sys/socket.h>

struct addr_count;

struct addr_count *addr_count_new(void);
void addr_count_free(struct addr_count *a);
/* Add delta (may be negative) and return the new value; entries that reach
 * zero are removed. */
unsigned addr_count_add(struct addr_count *a, const struct sockaddr *sa, int delta, int64_t now);
unsigned addr_count_get(struct addr_count *a, const struct sockaddr *sa, int64_t now, int64_t forget_after);

#endif
