/*
 * delivery_log.c - see delivery_log.h.
 */
#include "delivery/delivery_log.h"
#include "core/log.h"
#include "core/util.h"
#include "store/queue.h"

#include <inttypes.h>
#include <string.h>

void delivery_log_result(const struct queue_env *env, const struct queue_rcpt *r, const char *relay,
			 const char *status, const char *dsn, const char *detail)
{
	char to[600], text[600];

	log_event("event=delivery queue=%s to=%s relay=%s status=%s dsn=%s delay=%" PRId64 "s detail=%s",
		  env->id, log_quote(to, sizeof(to), r->addr, strlen(r->addr)), relay, status,
		  dsn ? dsn : "-", now_unix() - env->arrival,
		  log_quote(text, sizeof(text), detail ? detail : "", detail ? strlen(detail) : 0));
}
