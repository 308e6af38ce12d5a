/*
 * smtp_etrn.c - ETRN (RFC 1985): a client asks that the mail waiting for
 * a domain be tried now.  Only trusted or authenticated clients may, as
 * the queue is ours to pace.
 *
 *   ETRN domain      that domain's deferred mail
 *   ETRN @domain     the domain and its subdomains (tern queues by
 *                    recipient domain: the domain itself is flushed)
 *   ETRN #queue      a named queue: tern has one, all of it is flushed
 *
 * Replies (RFC 1985 section 5): 250 queuing started, 251 nothing waiting,
 * 253 n messages started, 458 cannot queue, 459 not allowed, 500/501
 * syntax; with RFC 3463 enhanced codes as ENHANCEDSTATUSCODES promises.
 */
#include "smtp/smtp_session.h"
#include "core/log.h"
#include "delivery/scheduler.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define ETRN_NODE_MAX 255

/* A host name (letters, digits, '-', '.'), or a queue name after '#'. */
static bool etrn_node_valid(const char *s, size_t len, bool queue_name)
{
	if (len == 0 || len > ETRN_NODE_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok = c == '.' || c == '-' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
			  || (queue_name && c == '_');
		if (!ok)
			return false;
	}
	return true;
}

static void log_etrn(const struct smtp_session *s, bool queue_name, const char *node, size_t started)
{
	log_event("event=etrn session=%016" PRIx64 " ip=%s node=%s%s messages=%zu", s->id, s->ip,
		  queue_name ? "#" : "", node, started);
}

void smtp_cmd_etrn(struct smtp_session *s, const char *args, size_t len)
{
	char node[ETRN_NODE_MAX + 1];
	const char *p = args;
	size_t n = len;
	bool queue_name = false;
	size_t started;

	if (s->state == SMTP_S_GREETED) {
		smtp_reply(s, "503 5.5.1 Send HELO or EHLO first");
		return;
	}
	if (s->txn != NULL) {
		smtp_reply(s, "503 5.5.1 ETRN not allowed during a mail transaction");
		return;
	}
	if (n > 0 && (p[0] == '@' || p[0] == '#')) {
		queue_name = p[0] == '#';
		p++;
		n--;
	}
	if (len == 0 || !etrn_node_valid(p, n, queue_name)) {
		smtp_reply(s, "501 5.5.4 Syntax: ETRN domain | @domain | #queue");
		return;
	}
	memcpy(node, p, n);
	node[n] = '\0';
	if (!s->trusted && s->auth_user == NULL) {
		smtp_reply(s, "459 4.7.1 <%s>: ETRN not allowed from your address", node);
		return;
	}
	started = scheduler_flush(s->t->sched, queue_name ? NULL : node);
	log_etrn(s, queue_name, node, started);
	if (started == 0)
		smtp_reply(s, "251 2.0.0 OK no messages waiting for node %s%s", queue_name ? "#" : "", node);
	else
		smtp_reply(s, "253 2.0.0 OK %zu pending message%s for node %s%s started", started,
			   started == 1 ? "" : "s", queue_name ? "#" : "", node);
}
