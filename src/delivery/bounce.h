/*
 * bounce.h - delivery status notifications queued as new messages: from
 * MAILER-DAEMON with the null reverse path, to the original sender, in
 * the RFC 3464 format of proto/dsn.h, the original streamed from its
 * queue file (whole, or only its header section for RET=HDRS).
 * Worker thread: it writes and fsyncs a queue file.
 */
#ifndef TERN_BOUNCE_H
#define TERN_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/dsn.h"
#include "store/queue.h"

struct config;

/* Notify env->from about the recipients idx[0..n) with actions act[].
 * new_id receives the notice's queue id.  False when it could not be
 * queued (logged).  Never call it for a message from "<>". */
bool bounce_queue(const struct config *cfg, struct queue *q, const struct queue_env *env, int fd,
		  const size_t *idx, const enum dsn_action *act, size_t n, char new_id[QUEUE_ID_LEN + 1]);

#endif
