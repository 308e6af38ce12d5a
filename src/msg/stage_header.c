/*
 * stage_header.c - header work on the way in: tern's Received: field in
 * front (RFC 5321 4.4), the header scan (a message with too many
 * Received: fields is a loop, RFC 5321 6.3; UTF-8 header fields need
 * SMTPUTF8, RFC 6531 3.4 / RFC 6532 3), and what tern adds as a
 * Message Submission Agent (RFC 6409 8): a Date: field (8.2) and a
 * Message-ID: field (8.3) when a submitted message lacks them.
 *
 * The MSA's fields go at the end of the header section, so for submitted
 * mail the header section is held back (in an evbuffer, at most
 * HEADER_HOLD_MAX octets) until its end is seen.  A longer header section
 * is passed on as it is and gets nothing added: memory stays bounded
 * (DESIGN.md invariant 3).
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/util.h"
#include "proto/header.h"
#include "store/queue.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEADER_HOLD_MAX 65536

struct stage_header {
	struct pipe_stage st;
	char *received;               /* not yet passed on, or NULL */
	struct header_scan scan;
	unsigned max_received;
	/* MSA */
	struct evbuffer *held;        /* the header section so far, or NULL */
	size_t line_start;            /* offset of the line being read in held */
	char *id, *hostname;
};

static void header_received_out(struct stage_header *h)
{
	if (h->received == NULL)
		return;
	pipe_emit(&h->st, h->received, strlen(h->received));
	free(h->received);
	h->received = NULL;
}

/* Pass the held octets on, with the missing fields inserted at offset at. */
static void header_release(struct stage_header *h, size_t at)
{
	char date[64], *fields, *rest;
	size_t len = evbuffer_get_length(h->held);
	struct tm tm;
	time_t now = time(NULL);
	uint32_t r = 0;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)now;
	fields = h->scan.has_date ? xstrdup("") : xasprintf("Date: %s\n", date);
	if (!h->scan.has_message_id) {
		char *both = xasprintf("%sMessage-ID: <%s.%08" PRIx32 "@%s>\n", fields, h->id, r, h->hostname);
		free(fields);
		fields = both;
	}
	rest = xmalloc(len + 1);
	evbuffer_remove(h->held, rest, len);
	pipe_emit(&h->st, rest, at);
	pipe_emit(&h->st, fields, strlen(fields));
	pipe_emit(&h->st, rest + at, len - at);
	free(rest);
	free(fields);
	evbuffer_free(h->held);
	h->held = NULL;
}

/* Give up holding (the header section is too long): pass it on as it is. */
static void header_unhold(struct stage_header *h)
{
	size_t n = evbuffer_get_length(h->held);
	char *all = xmalloc(n ? n : 1);

	evbuffer_remove(h->held, all, n);
	pipe_emit(&h->st, all, n);
	free(all);
	evbuffer_free(h->held);
	h->held = NULL;
}

/* Submitted mail, header section held back: line by line, to find the
 * line that ends it. */
static void header_hold_data(struct stage_header *h, const char *buf, size_t len)
{
	while (len > 0 && h->held) {
		const char *nl = memchr(buf, '\n', len);
		size_t seg = nl ? (size_t)(nl - buf) + 1 : len;

		evbuffer_add(h->held, buf, seg);
		header_scan_feed(&h->scan, buf, seg);
		buf += seg;
		len -= seg;
		if (!h->scan.in_headers) {
			/* the line that ended the header section starts at line_start */
			header_release(h, h->line_start);
			break;
		}
		if (nl)
			h->line_start = evbuffer_get_length(h->held);
		if (evbuffer_get_length(h->held) > HEADER_HOLD_MAX)
			header_unhold(h);
	}
	if (len > 0) {
		header_scan_feed(&h->scan, buf, len);
		pipe_emit(&h->st, buf, len);
	}
}

static void header_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_header *h = (struct stage_header *)st;

	header_received_out(h);
	if (h->held) {
		header_hold_data(h, buf, len);
		return;
	}
	header_scan_feed(&h->scan, buf, len);
	pipe_emit(st, buf, len);
}

static void header_end(struct pipe_stage *st)
{
	struct stage_header *h = (struct stage_header *)st;

	header_received_out(h);
	/* still held: the message is all header, the fields go at its end */
	if (h->held)
		header_release(h, evbuffer_get_length(h->held));
	if (h->scan.received > h->max_received)
		pipe_stage_refuse(st, false, "554 5.4.6 Too many Received: headers, mail loop detected");
	else if (header_scan_utf8(&h->scan) && !pipeline_env(st->p)->smtputf8)
		/* UTF-8 header fields (RFC 6532) belong to SMTPUTF8
		 * transactions only (RFC 6531 3.4: a client must not send them
		 * without it).  Refused, they are not relayed to a host that
		 * would mangle them; the sender can use SMTPUTF8, which tern
		 * offers, or RFC 2047 words.  Legacy 8-bit headers that are
		 * not UTF-8 (Latin-1 and the like) are no SMTPUTF8 matter and
		 * pass as before. */
		pipe_stage_refuse(st, false, "554 5.6.7 Message refused: UTF-8 header fields need SMTPUTF8 (RFC 6531, RFC 6532)");
	else
		pipe_stage_accept(st);
}

static void header_free(struct pipe_stage *st)
{
	struct stage_header *h = (struct stage_header *)st;

	if (h->held)
		evbuffer_free(h->held);
	free(h->received);
	free(h->id);
	free(h->hostname);
	free(h);
}

static const struct pipe_stage_ops stage_header_ops = {
	.name = "header",
	.data = header_data,
	.end = header_end,
	.free = header_free,
};

struct pipe_stage *stage_header_new(const char *received, bool msa, const char *id, const char *hostname,
				    unsigned max_received)
{
	struct stage_header *h = xcalloc(1, sizeof(*h));

	h->st.ops = &stage_header_ops;
	h->received = received ? xstrdup(received) : NULL;
	h->max_received = max_received;
	header_scan_init(&h->scan);
	if (msa) {
		h->held = evbuffer_new();
		h->id = xstrdup(id);
		h->hostname = xstrdup(hostname);
	}
	return &h->st;
}
