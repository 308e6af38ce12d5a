/*
 * notice.h - the notice (DSN) step that every path of delivery ends with:
 * the scheduler after each attempt, and the direct path for all-local
 * mail (handoff.c).  RFC 3461 NOTIFY, RFC 3464.  Worker thread.
 */
#ifndef TERN_NOTICE_H
#define TERN_NOTICE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/queue.h"

struct config;

/* The notices a step queued, to be scheduled. */
struct notice_ids {
	char (*id)[QUEUE_ID_LEN + 1];
	size_t n;
};
void notice_ids_free(struct notice_ids *ids);

/*
 * Queue the notices owed for env (its message open on fd): one for the
 * recipients that failed, one for those late past [queue] delay_warning,
 * one for those delivered or relayed, each notice covering every
 * recipient of its kind (RFC 3464 allows many per report; past
 * DSN_RCPTS_MAX recipients, one notice per that many).  A recipient's
 * notice is settled (dsn_done; delay_warned for the delay) only once the
 * notice carrying it is committed to the queue, so a notice that could
 * not be written is owed still and tried again.  True when no notice is
 * owed any more for the final recipients; the message may then go.
 */
bool notice_step(const struct config *cfg, struct queue *q, struct queue_env *env, int fd, int64_t now,
		 struct notice_ids *out);

#endif
