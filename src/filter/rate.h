/*
 * rate.h - events per client address per minute (connections, MAIL
 * commands), for the 421/451 rate limits of the MX.  A fixed window of
 * 60 seconds per address, started by its first event: simple, and a
 * client can at most double the rate across a window's edge.
 * Bounded: past max_addrs addresses, stale windows are swept; when none
 * is stale the oldest window goes.
 */
#ifndef TERN_FILTER_RATE_H
#define TERN_FILTER_RATE_H

#include <stdint.h>
#include <sys/socket.h>

#define RATE_WINDOW 60

struct rate;

struct rate *rate_new(unsigned max_addrs);
void rate_free(struct rate *r);
/* Count one event for sa at now; returns the events in its window,
 * this one included. */
unsigned rate_hit(struct rate *r, const struct sockaddr *sa, int64_t now);

#endif
