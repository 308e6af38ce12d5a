/*
 * metrics.h - counters for /metrics (Prometheus text format 0.0.4), each
 * moved by the log-event function of what it counts, so the counts and
 * the log cannot disagree.  Atomic (relaxed): local delivery logs its
 * results from worker threads, everything else from the loop.
 */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stdint.h>

#include "core/server.h"

struct evbuffer;

enum metric {
	METRIC_RECEIVED,          /* messages accepted (250 to DATA) */
	METRIC_DELIVERED,         /* per recipient: sent */
	METRIC_DEFERRED,
	METRIC_BOUNCED,
	METRIC_REJECT_MAIL,       /* 4xx/5xx replies to MAIL, RCPT, DATA */
	METRIC_REJECT_RCPT,
	METRIC_REJECT_DATA,
	METRIC_AUTH_FAILED,
	METRIC_TLS_OK,
	METRIC_TLS_FAILED,
	METRIC_COUNT
};

void metrics_inc(enum metric m);
void metrics_connection(enum service svc);
/* A recipient reached its final delivery (sent) after this many seconds. */
void metrics_delivery_delay(int64_t seconds);

/* What only the caller knows at the time of asking. */
struct metrics_gauges {
	uint64_t queue_messages;
	uint64_t open_sessions;
};

void metrics_format(struct evbuffer *out, const struct metrics_gauges *g);

#endif
