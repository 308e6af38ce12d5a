/*
 * stage_dot.c - DATA's framer as the pipeline's first stage: raw client
 * octets through proto/smtp_data.c (which stays the pure framer), the
 * message octets on to the next stage, and the framing and size rules as
 * the verdict at the end (RFC 5321 2.3.8, 4.5.3.1.6, 4.5.3.1.10).
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/util.h"
#include "proto/smtp_data.h"

#include <stdlib.h>

#define STAGE_DOT_CHUNK 16384

struct stage_dot {
	struct pipe_stage st;
	struct smtp_data framer;
	uint64_t size, max_size;
	bool too_big;
};

static size_t dot_feed(struct pipe_stage *st, const char *in, size_t len, bool *done)
{
	struct stage_dot *d = (struct stage_dot *)st;
	char out[STAGE_DOT_CHUNK + 2];
	size_t out_len, used;

	if (len > STAGE_DOT_CHUNK)
		len = STAGE_DOT_CHUNK;
	used = smtp_data_feed(&d->framer, in, len, out, &out_len, done);
	if (d->too_big || out_len == 0)
		return used;
	if (d->size + out_len > d->max_size) {
		/* Read on to the end, as RFC 5321 4.5.3.1.10 asks, but pass
		 * nothing more on: the message will be refused. */
		d->too_big = true;
		return used;
	}
	d->size += out_len;
	pipe_emit(st, out, out_len);
	return used;
}

static void dot_end(struct pipe_stage *st)
{
	struct stage_dot *d = (struct stage_dot *)st;
	unsigned e = d->framer.errors;

	if (e & (SMTP_DATA_ERR_BARE_LF | SMTP_DATA_ERR_BARE_CR))
		pipe_stage_refuse(st, false, "550 5.6.0 Message refused: bare CR or LF in the data (RFC 5321 2.3.8)");
	else if (e & SMTP_DATA_ERR_NUL)
		pipe_stage_refuse(st, false, "550 5.6.0 Message refused: NUL octet in the data");
	else if (e & SMTP_DATA_ERR_LINE_LEN)
		pipe_stage_refuse(st, false, "500 5.5.2 Message refused: line longer than 1000 octets (RFC 5321 4.5.3.1.6)");
	else if (d->too_big)
		pipe_stage_refuse(st, false, "552 5.3.4 Message size exceeds fixed maximum message size");
	else
		pipe_stage_accept(st);
}

static void dot_free(struct pipe_stage *st)
{
	free(st);
}

static const struct pipe_stage_ops stage_dot_ops = {
	.name = "dot",
	.feed = dot_feed,
	.end = dot_end,
	.free = dot_free,
};

struct pipe_stage *stage_dot_new(size_t max_line, uint64_t max_size)
{
	struct stage_dot *d = xcalloc(1, sizeof(*d));

	d->st.ops = &stage_dot_ops;
	smtp_data_init(&d->framer, max_line);
	d->max_size = max_size;
	return &d->st;
}
