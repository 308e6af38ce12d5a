/*
 * delivery_log.h - the event=delivery line: one recipient's attempt, for
 * local and remote delivery alike, from one function so that the two
 * cannot drift apart (they had: the detail was clipped at different
 * lengths).
 */
#ifndef TERN_DELIVERY_LOG_H
#define TERN_DELIVERY_LOG_H

struct queue_env;
struct queue_rcpt;

/* relay is "local" or "host[ip]:port"; status is sent, deferred or
 * bounced; dsn the enhanced status; detail the reply or the Maildir file
 * (quoted here). */
void delivery_log_result(const struct queue_env *env, const struct queue_rcpt *r, const char *relay,
			 const char *status, const char *dsn, const char *detail);

#endif
