/*
 * smtp_bdat.c - BDAT (RFC 3030): the message in counted chunks instead of
 * DATA's dot-terminated stream, and BODY=BINARYMIME on top of it.
 *
 *   BDAT n         n octets of the message follow; 250 once they are in
 *   BDAT n LAST    the last chunk (n may be 0); the reply is the verdict
 *                  on the whole message, as after DATA's final dot
 *
 * The first chunk builds the transaction's pipeline with BDAT's framer
 * (msg/stage_bdat.c) in place of DATA's; each chunk's octets are fed to
 * it as they arrive, so nothing holds the message.  A chunk's octets are
 * read to their end whatever its fate, and the reply comes after them
 * (§2): a chunk refused up front (no MAIL, no recipient, over the size
 * limit) is read and dropped, and then answered.  Over the size limit
 * the transaction is reset (552 5.3.4), so the chunks a pipelining client
 * sent after it get 503 and are dropped the same way, until its RSET.
 * DATA and RCPT after the first BDAT get 503 5.5.1 (§2, §4.2).
 */
#include "smtp/smtp_session.h"
#include "core/config.h"
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "proto/smtp_parse.h"
#include "store/queue.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SMTP_BDAT_LINE_MAX 1000   /* RFC 5321 4.5.3.1.6, for text messages */

static void bdat_refuse(struct smtp_session *s, bool own_fault, bool reset, const char *text)
{
	snprintf(s->bdat.refusal, sizeof(s->bdat.refusal), "%s", text);
	s->bdat.refusal_own_fault = own_fault;
	s->bdat.reset_after = reset;
}

/* Decide a chunk's fate before its octets come; the first chunk of a
 * message starts its pipeline. */
static void bdat_admit(struct smtp_session *s, uint64_t n)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = s->t->cfg;

	if (t == NULL) {
		bdat_refuse(s, false, false, "503 5.5.1 Need MAIL command");
		return;
	}
	if (t->env->nrcpt == 0) {
		bdat_refuse(s, false, false, "554 5.5.1 No valid recipients");
		return;
	}
	if (n > cfg->max_message_size || t->bdat_size + n > cfg->max_message_size) {
		bdat_refuse(s, false, true, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if (s->state != SMTP_S_CHUNKS) {
		bool binary = t->env->body == SMTP_BODY_BINARYMIME;
		if (!smtp_txn_start(s, stage_bdat_new(binary, SMTP_BDAT_LINE_MAX))) {
			bdat_refuse(s, true, true, "451 4.3.0 Queue file write error, try again later");
			return;
		}
		smtp_set_state(s, SMTP_S_CHUNKS);
		t->bdat_size += n;
		smtp_milter_bdat(s);   /* may pause input until the filters answer */
		return;
	}
	t->bdat_size += n;
}

/* A refusal makes the chunk one read only to be dropped, and fails the
 * transaction: the chunks pipelined after it get 503 (§2). */
void smtp_bdat_milter_answer(struct smtp_session *s, bool refused, bool own_fault, const char *reply)
{
	s->bdat.milter_wait = false;
	if (refused)
		bdat_refuse(s, own_fault, true, reply);
}

/* The chunk's octets are all in: its reply, or the end of the message. */
static bool bdat_chunk_done(struct smtp_session *s)
{
	s->bdat.reading = false;
	s->cur_verb = "BDAT";
	s->no_error_count = false;
	session_set_timeouts(&s->sess, s->t->cfg->command_timeout, s->t->cfg->command_timeout);
	if (s->bdat.refusal[0] != '\0') {
		s->no_error_count = s->bdat.refusal_own_fault;
		smtp_reply(s, "%s", s->bdat.refusal);
		if (s->bdat.reset_after)
			smtp_txn_reset(s);
		return true;
	}
	if (!s->bdat.last) {
		smtp_reply(s, "250 2.0.0 %" PRIu64 " octets received", s->bdat.size);
		return true;
	}
	smtp_end_of_data(s);
	return s->state != SMTP_S_COMMIT;
}

void smtp_cmd_bdat(struct smtp_session *s, const char *args, size_t len)
{
	uint64_t n;
	bool last;

	if (!smtp_parse_bdat(args, len, &n, &last)) {
		/* no size, so nothing can be skipped: what follows is read
		 * as commands (and fails as such) */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	memset(&s->bdat, 0, sizeof(s->bdat));
	s->bdat.reading = true;
	s->bdat.left = s->bdat.size = n;
	s->bdat.last = last;
	bdat_admit(s, n);
	/* the chunk's octets get the DATA block timeout (RFC 5321 4.5.3.2.6) */
	session_set_timeouts(&s->sess, s->t->cfg->data_timeout, s->t->cfg->command_timeout);
	if (n == 0 && !s->bdat.milter_wait)
		bdat_chunk_done(s);   /* else when input resumes (smtp_bdat_input) */
}

bool smtp_bdat_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn.bev);
	struct evbuffer_iovec v;

	if (s->bdat.left > 0) {
		size_t take;
		bool done;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return false;
		take = v.iov_len < s->bdat.left ? v.iov_len : (size_t)s->bdat.left;
		if (s->bdat.refusal[0] == '\0')
			take = pipeline_feed(s->txn->pipe, v.iov_base, take, &done);
		evbuffer_drain(in, take);
		s->bdat.left -= take;
		if (s->bdat.left > 0)
			return true;
	}
	return bdat_chunk_done(s);
}
