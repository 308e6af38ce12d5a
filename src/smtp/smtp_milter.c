/*
 * smtp_milter.c - where the SMTP server session meets its milters
 * (filter/milter.h): the session's filter connections open when the
 * client connects, and each SMTP step the filters are shown gets their
 * verdict as its reply, at that step.
 *
 * A command first does all it does without the filters (checks, the
 * envelope), makes its own reply, then asks the filters; while they
 * think, input pauses (pipelined commands wait, in order).  If they go
 * on, the command's own reply goes out; if one refuses, its reply does
 * and what the command did is undone: a HELO's name and state, a MAIL's
 * transaction, a RCPT's recipients (an alias's expansions with it).
 *
 * CONNECT: the greeting waits for the verdict.  A 4xx refusal is the
 * greeting and the session closes; a 5xx one is the greeting and then,
 * as RFC 5321 3.1 has it, 503 to everything but QUIT.
 */
#include "smtp/smtp_session.h"
#include "core/config.h"
#include "core/util.h"
#include "filter/milter.h"
#include "store/queue.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

void smtp_milter_open(struct smtp_session *s)
{
	const struct config *cfg = s->t->cfg;
	bool on = s->svc == SERVICE_SMTP ? cfg->smtp_milter : cfg->submission_milter;
	struct milter_client c = {
		.session = s->id,
		.daemon_name = smtp_service_name(s->svc),
		.addr = s->ip,
		.family = s->peer.ss_family == AF_INET6 ? '6' : '4',
		.name = s->ptr_name,
	};

	if (!on || cfg->milter_servers.n == 0)
		return;
	if (s->peer.ss_family == AF_INET6)
		c.port = ntohs(((const struct sockaddr_in6 *)&s->peer)->sin6_port);
	else if (s->peer.ss_family == AF_INET)
		c.port = ntohs(((const struct sockaddr_in *)&s->peer)->sin_port);
	s->milter = milter_session_new(s->t, &c);
}

/* What the command did, undone: a filter refused it. */
static void smtp_milter_undo(struct smtp_session *s)
{
	struct smtp_milter_wait *w = &s->mw;

	switch (w->step) {
	case SMTP_MW_HELO:
		memcpy(s->helo, w->prev_helo, sizeof(s->helo));
		s->esmtp = w->prev_esmtp;
		if (w->prev_state == SMTP_S_GREETED)
			smtp_set_state(s, SMTP_S_GREETED);
		break;
	case SMTP_MW_MAIL:
		smtp_txn_reset(s);
		break;
	case SMTP_MW_DATA:
		smtp_txn_reset(s);   /* the message's pipeline and queue file go */
		break;
	case SMTP_MW_RCPT:
		if (s->txn == NULL)
			break;
		smtp_rcpt_rollback(s, w->nrcpt0);
		s->txn->nrcpt_cmds--;
		if (w->first_rcpt_new) {
			free(s->txn->first_rcpt);
			s->txn->first_rcpt = NULL;
		}
		if (s->txn->nrcpt_cmds == 0)
			smtp_set_state(s, SMTP_S_MAIL);
		break;
	default:
		break;
	}
}

static void smtp_milter_answer(struct smtp_session *s, const struct milter_answer *a)
{
	struct smtp_milter_wait *w = &s->mw;
	enum smtp_milter_step step = w->step;
	char *ok = w->ok;

	w->ok = NULL;
	if (step == SMTP_MW_CONNECT) {
		w->step = SMTP_MW_NONE;
		if (!a->refused) {
			smtp_greet_after_milter(s);
		} else if (a->reply[0] == '4') {
			smtp_reply_shutdown(s, a->reply);
		} else {
			s->milter_refused = true;
			s->no_error_count = true;
			smtp_reply(s, "%s", a->reply);
		}
		free(ok);
		return;
	}
	if (step == SMTP_MW_BDAT) {
		/* the chunk's octets are read next, then its reply */
		w->step = SMTP_MW_NONE;
		smtp_bdat_milter_answer(s, a->refused, a->own_fault, a->reply);
		free(ok);
		return;
	}
	if (a->refused) {
		smtp_milter_undo(s);
		s->no_error_count = a->own_fault;
		smtp_reply(s, "%s", a->reply);
	} else if (step == SMTP_MW_DATA) {
		smtp_data_go(s);
	} else {
		smtp_reply(s, "%s", ok);
	}
	w->step = SMTP_MW_NONE;
	free(ok);
}

static void smtp_milter_cb(void *arg, const struct milter_answer *a)
{
	struct smtp_session *s = arg;

	smtp_milter_answer(s, a);
	smtp_resume_input(s);   /* may free s */
}

/* The filters answered at once, or input waits for them. */
static void smtp_milter_wait(struct smtp_session *s, bool now, const struct milter_answer *a)
{
	if (now)
		smtp_milter_answer(s, a);
	else
		smtp_pause_input(s);
}

bool smtp_milter_connect(struct smtp_session *s)
{
	struct milter_answer a;

	if (s->milter == NULL)
		return false;
	s->mw.step = SMTP_MW_CONNECT;
	smtp_milter_wait(s, milter_connect(s->milter, smtp_milter_cb, s, &a), &a);
	return true;
}

void smtp_milter_helo(struct smtp_session *s, enum smtp_state prev_state, const char *prev_helo, bool prev_esmtp,
		      const char *ok)
{
	SSL *ssl = s->conn.tls ? bufferevent_openssl_get_ssl(s->conn.bev) : NULL;
	struct smtp_milter_wait *w = &s->mw;
	struct milter_answer a;

	if (s->milter == NULL) {
		smtp_reply(s, "%s", ok);
		return;
	}
	milter_abort(s->milter);
	w->step = SMTP_MW_HELO;
	w->ok = xstrdup(ok);
	w->prev_state = prev_state;
	snprintf(w->prev_helo, sizeof(w->prev_helo), "%s", prev_helo);
	w->prev_esmtp = prev_esmtp;
	smtp_milter_wait(s, milter_helo(s->milter, s->helo, ssl ? SSL_get_version(ssl) : NULL,
					ssl ? SSL_get_cipher_name(ssl) : NULL, smtp_milter_cb, s, &a), &a);
}

void smtp_milter_mail(struct smtp_session *s, const char *ok)
{
	struct milter_answer a;

	if (s->milter == NULL) {
		smtp_reply(s, "%s", ok);
		return;
	}
	s->mw.step = SMTP_MW_MAIL;
	s->mw.ok = xstrdup(ok);
	smtp_milter_wait(s, milter_mail(s->milter, s->txn->env->from, s->auth_user, smtp_milter_cb, s, &a), &a);
}

void smtp_milter_rcpt(struct smtp_session *s, const char *addr, size_t nrcpt0, bool first_rcpt_new, const char *ok)
{
	struct milter_answer a;

	if (s->milter == NULL) {
		smtp_reply(s, "%s", ok);
		return;
	}
	s->mw.step = SMTP_MW_RCPT;
	s->mw.ok = xstrdup(ok);
	s->mw.nrcpt0 = nrcpt0;
	s->mw.first_rcpt_new = first_rcpt_new;
	smtp_milter_wait(s, milter_rcpt(s->milter, addr, smtp_milter_cb, s, &a), &a);
}

void smtp_milter_data(struct smtp_session *s)
{
	struct milter_answer a;

	if (s->milter == NULL) {
		smtp_data_go(s);
		return;
	}
	s->mw.step = SMTP_MW_DATA;
	smtp_milter_wait(s, milter_data_step(s->milter, smtp_milter_cb, s, &a), &a);
}

void smtp_milter_bdat(struct smtp_session *s)
{
	struct milter_answer a;

	if (s->milter == NULL)
		return;
	s->mw.step = SMTP_MW_BDAT;
	s->bdat.milter_wait = true;
	smtp_milter_wait(s, milter_data_step(s->milter, smtp_milter_cb, s, &a), &a);
}

bool smtp_milter_hold(struct smtp_session *s, const char *verb)
{
	if (!s->milter_refused || (verb && strcmp(verb, "QUIT") == 0))
		return false;
	s->no_error_count = true;
	smtp_reply(s, "503 5.7.1 Service unavailable, only QUIT");
	return true;
}

void smtp_milter_free(struct smtp_session *s)
{
	milter_session_free(s->milter);
	s->milter = NULL;
	free(s->mw.ok);
	s->mw.ok = NULL;
}
