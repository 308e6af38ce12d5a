/*
 * metrics.c - see metrics.h.  Prometheus exposition format:
 * https://prometheus.io/docs/instrumenting/exposition_formats/ (HELP and
 * TYPE lines, one sample a line, histograms as cumulative _bucket{le=}
 * series plus _sum and _count).
 */
#include "core/metrics.h"
#include "core/listener.h"
#include "core/util.h"

#include <event2/buffer.h>
#include <string.h>

static const int64_t delay_bounds[] = { 1, 5, 30, 60, 300, 1800, 3600, 14400, 86400, 432000 };
#define NBOUNDS (sizeof(delay_bounds) / sizeof(delay_bounds[0]))

static struct {
	uint64_t counter[METRIC_COUNT];
	uint64_t connections[SERVICE_COUNT];
	uint64_t delay_bucket[NBOUNDS + 1];   /* not cumulative; the last is +Inf */
	uint64_t delay_sum, delay_count;
} metrics;

static void add(uint64_t *p, uint64_t n)
{
	__atomic_add_fetch(p, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void metrics_inc(enum metric m)
{
	if (m < METRIC_COUNT)
		add(&metrics.counter[m], 1);
}

void metrics_connection(enum service svc)
{
	if (svc < SERVICE_COUNT)
		add(&metrics.connections[svc], 1);
}

void metrics_delivery_delay(int64_t seconds)
{
	size_t i = 0;
	if (seconds < 0)
		seconds = 0;
	while (i < NBOUNDS && seconds > delay_bounds[i])
		i++;
	add(&metrics.delay_bucket[i], 1);
	add(&metrics.delay_sum, (uint64_t)seconds);
	add(&metrics.delay_count, 1);
}

static void head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct evbuffer *b, const char *name, const char *help, enum metric m)
{
	head(b, name, "counter", help);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)get(&metrics.counter[m]));
}

void metrics_format(struct evbuffer *b, const struct metrics_gauges *g)
{
	static const char *const rejected[] = { "mail", "rcpt", "data" };
	uint64_t cum = 0;

	head(b, "tern_connections_total", "counter", "Connections accepted, by service (config section).");
	for (int s = 0; s < SERVICE_COUNT; s++)
		evbuffer_add_printf(b, "tern_connections_total{service=\"%s\"} %llu\n", service_name((enum service)s),
				    (unsigned long long)get(&metrics.connections[s]));
	counter(b, "tern_messages_received_total", "Messages accepted and made durable.", METRIC_RECEIVED);
	counter(b, "tern_messages_delivered_total", "Recipients delivered (local or remote).", METRIC_DELIVERED);
	counter(b, "tern_messages_deferred_total", "Delivery attempts deferred, per recipient.", METRIC_DEFERRED);
	counter(b, "tern_messages_bounced_total", "Recipients bounced.", METRIC_BOUNCED);
	head(b, "tern_rejected_total", "counter", "4xx/5xx replies to MAIL, RCPT and DATA, by command.");
	for (int i = 0; i < 3; i++)
		evbuffer_add_printf(b, "tern_rejected_total{command=\"%s\"} %llu\n", rejected[i],
				    (unsigned long long)get(&metrics.counter[METRIC_REJECT_MAIL + i]));
	counter(b, "tern_auth_failures_total", "Failed logins (SMTP AUTH, POP3).", METRIC_AUTH_FAILED);
	head(b, "tern_tls_handshakes_total", "counter", "Server TLS handshakes, by result.");
	evbuffer_add_printf(b, "tern_tls_handshakes_total{result=\"ok\"} %llu\n",
			    (unsigned long long)get(&metrics.counter[METRIC_TLS_OK]));
	evbuffer_add_printf(b, "tern_tls_handshakes_total{result=\"failed\"} %llu\n",
			    (unsigned long long)get(&metrics.counter[METRIC_TLS_FAILED]));
	head(b, "tern_queue_messages", "gauge", "Messages in the queue.");
	evbuffer_add_printf(b, "tern_queue_messages %llu\n", (unsigned long long)g->queue_messages);
	head(b, "tern_open_sessions", "gauge", "Open inbound connections, every service.");
	evbuffer_add_printf(b, "tern_open_sessions %llu\n", (unsigned long long)g->open_sessions);
	head(b, "tern_delivery_delay_seconds", "histogram", "Arrival to successful delivery, per recipient.");
	for (size_t i = 0; i < NBOUNDS; i++) {
		cum += get(&metrics.delay_bucket[i]);
		evbuffer_add_printf(b, "tern_delivery_delay_seconds_bucket{le=\"%lld\"} %llu\n",
				    (long long)delay_bounds[i], (unsigned long long)cum);
	}
	cum += get(&metrics.delay_bucket[NBOUNDS]);
	evbuffer_add_printf(b, "tern_delivery_delay_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	evbuffer_add_printf(b, "tern_delivery_delay_seconds_sum %llu\n", (unsigned long long)get(&metrics.delay_sum));
	evbuffer_add_printf(b, "tern_delivery_delay_seconds_count %llu\n", (unsigned long long)cum);
}
