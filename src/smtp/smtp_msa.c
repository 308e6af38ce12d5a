/*
 * smtp_msa.c - what tern adds as a Message Submission Agent (RFC 6409 8):
 * a Date: field (8.2) and a Message-ID: field (8.3) when a message
 * submitted on port 587 or 465 lacks them.
 *
 * The fields go at the end of the header section, so the header section
 * is held back (in an evbuffer, at most MSA_HEADER_MAX octets) until its
 * end is seen.  A header section longer than that is streamed on as it is
 * and gets nothing added: memory stays bounded (DESIGN.md invariant 3).
 */
#include "smtp/smtp_session.h"
#include "core/config.h"
#include "core/util.h"
#include "store/queue.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSA_HEADER_MAX 65536

struct smtp_msa {
	struct evbuffer *held;        /* the header section so far */
	size_t line_start;            /* offset of the line being read in held */
	struct header_scan scan;
};

struct smtp_msa *smtp_msa_new(void)
{
	struct smtp_msa *m = xcalloc(1, sizeof(*m));
	m->held = evbuffer_new();
	header_scan_init(&m->scan);
	return m;
}

void smtp_msa_free(struct smtp_msa *m)
{
	if (m == NULL)
		return;
	evbuffer_free(m->held);
	free(m);
}

/* Write the held octets, with the missing fields inserted at offset at. */
static void msa_release(struct smtp_session *s, size_t at)
{
	struct smtp_msa *m = s->txn->msa;
	const struct queue_env *env = s->txn->env;
	char date[64], *date_field, *fields, *rest;
	size_t len = evbuffer_get_length(m->held);
	struct tm tm;
	time_t now = time(NULL);
	uint32_t r = 0;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)s->id;
	date_field = m->scan.has_date ? xstrdup("") : xasprintf("Date: %s\n", date);
	fields = m->scan.has_message_id ? xstrdup(date_field) :
		xasprintf("%sMessage-ID: <%s.%08" PRIx32 "@%s>\n", date_field, env->id, r,
			  s->t->cfg->hostname);
	free(date_field);
	rest = xmalloc(len + 1);
	evbuffer_remove(m->held, rest, len);
	smtp_data_write(s, rest, at);
	smtp_data_write(s, fields, strlen(fields));
	smtp_data_write(s, rest + at, len - at);
	free(rest);
	free(fields);
	smtp_msa_free(m);
	s->txn->msa = NULL;
}

/* Message bytes (LF line ends) while the header section is held back. */
void smtp_msa_feed(struct smtp_session *s, const char *buf, size_t len)
{
	struct smtp_msa *m = s->txn->msa;

	while (len > 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t seg = nl ? (size_t)(nl - buf) + 1 : len;

		evbuffer_add(m->held, buf, seg);
		header_scan_feed(&m->scan, buf, seg);
		buf += seg;
		len -= seg;
		if (!m->scan.in_headers) {
			/* the line that ended the header section starts at line_start */
			msa_release(s, m->line_start);
			smtp_data_write(s, buf, len);
			return;
		}
		if (nl)
			m->line_start = evbuffer_get_length(m->held);
		if (evbuffer_get_length(m->held) > MSA_HEADER_MAX) {
			size_t n = evbuffer_get_length(m->held);
			char *all = xmalloc(n);
			evbuffer_remove(m->held, all, n);
			smtp_data_write(s, all, n);
			free(all);
			smtp_msa_free(m);
			s->txn->msa = NULL;
			smtp_data_write(s, buf, len);
			return;
		}
	}
}

/* End of data with the header section still held: the message is all
 * header, so the fields go at its end. */
void smtp_msa_finish(struct smtp_session *s)
{
	if (s->txn && s->txn->msa)
		msa_release(s, evbuffer_get_length(s->txn->msa->held));
}
