/*
 * greylist.h - greylisting at RCPT: a (client network, sender,
 * recipient) triplet seen for the first time is deferred with 451 4.7.1;
 * a retry once delay has passed is accepted, and so is everything after
 * it.  A client address that passed once has its new triplets accepted
 * at once (it has shown it retries).  The client network is the /24 of
 * an IPv4 address and the /64 of an IPv6 one, since big senders retry
 * from another host of the same farm.
 *
 * The exemptions that depend on the session (trusted networks, AUTH,
 * an allow-list zone) are the caller's.
 */
#ifndef TERN_FILTER_GREYLIST_H
#define TERN_FILTER_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct workers;
struct greylist;

enum greylist_verdict {
	GREYLIST_NEW,        /* first sighting: defer */
	GREYLIST_EARLY,      /* retried before the delay: defer */
	GREYLIST_PASSED,     /* the delay passed now: accept */
	GREYLIST_KNOWN,      /* passed before, or the client did: accept */
};

/* The store is state_dir/greylist.log.  NULL with *err set on failure. */
struct greylist *greylist_open(const char *state_dir, uint64_t delay, uint64_t expire, unsigned max_entries,
			       struct workers *workers, char **err);
void greylist_close(struct greylist *gl);

enum greylist_verdict greylist_check(struct greylist *gl, const struct sockaddr *client, const char *sender,
				     const char *rcpt, int64_t now);
static inline bool greylist_defers(enum greylist_verdict v)
{
	return v == GREYLIST_NEW || v == GREYLIST_EARLY;
}
const char *greylist_verdict_name(enum greylist_verdict v);

/* The network part of a triplet key: "192.0.2.0/24", "2001:db8:1:2::/64". */
void greylist_client_net(const struct sockaddr *sa, char *out, size_t cap);

/* Drop expired entries (the caller's timer). */
size_t greylist_prune(struct greylist *gl, int64_t now);

#endif
