/*
 * smtp_filter.c - where the SMTP server session meets the MX checks of
 * src/filter/: DNS blocklists and allow lists (RFC 5782), greylisting,
 * and connection and message rates per client address.  The checks
 * themselves know nothing of sessions; this file maps their verdicts to
 * replies and pauses the session's input while an answer is awaited.
 *
 * Who is checked: clients of the MX service (port 25) that are neither
 * in trusted_networks nor authenticated.  The submission ports need
 * AUTH for mail and are never checked.
 *
 * DNSBL at connect: the greeting waits for the lists (at most [dnsbl]
 * timeout); a listed client gets a 554 greeting and then, as RFC 5321
 * 3.1 asks, 503 to everything but QUIT.  At rcpt: the lists are asked at
 * connect all the same, without waiting, and a RCPT that arrives before
 * the answer waits for it; then every RCPT of a listed client gets 554.
 */
#include "smtp/smtp_session.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "filter/dnsbl.h"
#include "filter/greylist.h"
#include "filter/rate.h"
#include "store/queue.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void log_dnsbl_verdict(const struct smtp_session *s, const char *verdict, const char *zone,
			      const struct dnsbl_result *r)
{
	log_event("event=dnsbl session=%016" PRIx64 " ip=%s verdict=%s zone=%s timed_out=%u failed=%u",
		  s->id, s->ip, verdict, zone ? zone : "-", r->timed_out, r->failed);
}

static void log_greylist(const struct smtp_session *s, enum greylist_verdict v, const char *from,
			 const char *rcpt)
{
	char qf[300], qr[300];
	log_event("event=greylist session=%016" PRIx64 " ip=%s verdict=%s action=%s from=%s rcpt=%s",
		  s->id, s->ip, greylist_verdict_name(v), greylist_defers(v) ? "defer" : "accept",
		  log_quote(qf, sizeof(qf), from, strlen(from)), log_quote(qr, sizeof(qr), rcpt, strlen(rcpt)));
}

static void log_rate_limited(const struct smtp_session *s, const char *what, unsigned n, unsigned limit)
{
	log_event("event=rate_limited session=%016" PRIx64 " ip=%s what=%s count=%u limit=%u",
		  s->id, s->ip, what, n, limit);
}

static bool smtp_filter_exempt(const struct smtp_session *s)
{
	return s->svc != SERVICE_SMTP || s->trusted || s->auth_user != NULL;
}

static void smtp_filter_dnsbl_cb(const struct dnsbl_result *r, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_mxcheck *m = &s->mx;
	char *line;

	m->dnsbl_req = 0;
	if (r->verdict == DNSBL_LISTED) {
		m->dnsbl = SMTP_DNSBL_LISTED;
		m->zone = xstrdup(r->zone);
	} else {
		m->dnsbl = r->verdict == DNSBL_ALLOWED ? SMTP_DNSBL_ALLOWED : SMTP_DNSBL_CLEAR;
	}
	log_dnsbl_verdict(s, r->verdict == DNSBL_LISTED ? "listed" : r->verdict == DNSBL_ALLOWED ? "allowed" : "pass",
			  r->zone, r);
	if (m->greet_waits) {
		m->greet_waits = false;
		if (s->state != SMTP_S_CLOSING && m->dnsbl == SMTP_DNSBL_LISTED) {
			m->refused = true;
			smtp_reply(s, "554 5.7.1 Service unavailable; client [%s] listed in %s", s->ip, m->zone);
		} else if (s->state != SMTP_S_CLOSING) {
			smtp_greet(s);
		}
		smtp_resume_input(s);   /* may free s */
		return;
	}
	if (m->held_line) {
		line = m->held_line;
		m->held_line = NULL;
		if (s->state != SMTP_S_CLOSING)
			smtp_dispatch(s, line, strlen(line));
		free(line);
		smtp_resume_input(s);   /* may free s */
	}
}

/* Connections per client address per minute, on every SMTP port: a
 * flood on the submission ports (AUTH guessing) is as much one as on the
 * MX.  Counted together; trusted networks are not counted. */
const char *smtp_filter_conn_rate(struct smtp_session *s)
{
	struct tern *t = s->t;
	unsigned n, limit = t->cfg->max_connection_rate;

	if (limit == 0 || t->conn_rate == NULL || s->trusted)
		return NULL;
	n = rate_hit(t->conn_rate, (struct sockaddr *)&s->peer, now_unix());
	if (n <= limit)
		return NULL;
	log_rate_limited(s, "connections", n, limit);
	return "421 4.7.0 Too many connections from your address per minute, try again later";
}

bool smtp_filter_connect(struct smtp_session *s)
{
	struct tern *t = s->t;
	const struct config *cfg = t->cfg;

	if (smtp_filter_exempt(s))
		return false;
	if (t->dnsbl == NULL)
		return false;
	s->mx.dnsbl = SMTP_DNSBL_ASKING;
	if (cfg->dnsbl_check_at == CHECK_AT_CONNECT) {
		s->mx.greet_waits = true;
		smtp_pause_input(s);
	}
	s->mx.dnsbl_req = dnsbl_check(t->dnsbl, (struct sockaddr *)&s->peer, s->id, smtp_filter_dnsbl_cb, s);
	return s->mx.greet_waits;
}

bool smtp_filter_hold(struct smtp_session *s, const char *verb, const char *line, size_t len)
{
	const struct config *cfg = s->t->cfg;
	unsigned n;

	if (s->mx.refused) {
		if (verb && strcmp(verb, "QUIT") == 0)
			return false;
		smtp_reply(s, "503 5.7.1 Service unavailable; client [%s] listed in %s, only QUIT", s->ip, s->mx.zone);
		return true;
	}
	if (smtp_filter_exempt(s) || verb == NULL)
		return false;
	if (strcmp(verb, "MAIL") == 0 && cfg->max_message_rate && s->t->msg_rate &&
	    (n = rate_hit(s->t->msg_rate, (struct sockaddr *)&s->peer, now_unix())) > cfg->max_message_rate) {
		log_rate_limited(s, "messages", n, cfg->max_message_rate);
		s->no_error_count = true;
		smtp_reply(s, "451 4.7.0 Too many messages from your address per minute, try again later");
		return true;
	}
	if (strcmp(verb, "RCPT") == 0 && s->mx.dnsbl == SMTP_DNSBL_ASKING && s->mx.dnsbl_req) {
		/* The answer is due within [dnsbl] timeout: this RCPT, and
		 * what is pipelined behind it, waits. */
		s->mx.held_line = xstrndup(line, len);
		smtp_pause_input(s);
		return true;
	}
	return false;
}

bool smtp_filter_rcpt(struct smtp_session *s, const char *addr)
{
	struct tern *t = s->t;
	const char *from;
	enum greylist_verdict v;

	if (smtp_filter_exempt(s))
		return true;
	if (s->mx.dnsbl == SMTP_DNSBL_LISTED) {
		s->no_error_count = true;
		smtp_reply(s, "554 5.7.1 <%s>: Service unavailable; client [%s] listed in %s", addr, s->ip, s->mx.zone);
		return false;
	}
	if (t->greylist == NULL || s->mx.dnsbl == SMTP_DNSBL_ALLOWED || s->txn == NULL || s->txn->env == NULL)
		return true;
	from = s->txn->env->from ? s->txn->env->from : "";
	v = greylist_check(t->greylist, (struct sockaddr *)&s->peer, from, addr, now_unix());
	log_greylist(s, v, from, addr);
	if (!greylist_defers(v))
		return true;
	s->no_error_count = true;
	smtp_reply(s, "451 4.7.1 <%s>: Greylisted, please try again later", addr);
	return false;
}

void smtp_filter_free(struct smtp_session *s)
{
	if (s->mx.dnsbl_req)
		dnsbl_cancel(s->t->dnsbl, s->mx.dnsbl_req);
	free(s->mx.zone);
	free(s->mx.held_line);
}
