/*
 * remote.h - remote delivery on the loop thread: the due remote
 * recipients of a message are grouped by destination (their domain, or
 * the smarthost), the destination is resolved (MX with A/AAAA, or the
 * smarthost's address), and hosts are tried in order, every address of a
 * host before the next host, over the SMTP client.  Connections are
 * limited per destination and in total, and an idle one is kept a short
 * while for the next message to the same destination.
 * RFC 5321 §5.1 (routing), §4.5.4.1 (sending strategy).
 */
#ifndef TERN_REMOTE_H
#define TERN_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

struct tern;
struct remote;
struct queue_env;

struct remote *remote_new(struct tern *t);
void remote_free(struct remote *r);
/* Close idle connections and start nothing new. */
void remote_shutdown(struct remote *r);
/* No connection and no delivery in progress. */
bool remote_idle(const struct remote *r);

typedef void (*remote_done_cb)(void *arg);

/*
 * Deliver the recipients i of env with due[i] set.  Each one's result is
 * written into env->rcpt[i]: state DONE, DEFERRED or FAILED, attempts
 * incremented, status, last_reply and remote_mta; next_try is left to the
 * caller.  env, fd and due must stay valid until cb, which runs once,
 * from the loop, never inside this call.
 */
void remote_deliver(struct remote *r, struct queue_env *env, int fd, const bool *due,
		    remote_done_cb cb, void *arg);

/* "[host]:port", "host:port", "[host]" or "host" (port 25); false when
 * malformed.  host gets the name or address without brackets. */
bool remote_parse_smarthost(const char *s, char *host, size_t cap, unsigned *port);

#endif
