/*
 * stage_bdat.c - BDAT's framer as the pipeline's first stage (RFC 3030):
 * the session counts each chunk's octets and hands them over; this stage
 * turns them into message octets (proto/smtp_chunk.c: CRLF -> LF, no
 * dot-unstuffing; a BINARYMIME body as it came) and gives the framing
 * rules as the verdict at the end.  The size limit is the session's: it
 * knows each chunk's size before its octets arrive.
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/util.h"
#include "proto/smtp_chunk.h"
#include "proto/smtp_data.h"

#include <stdlib.h>

#define STAGE_BDAT_CHUNK 16384

struct stage_bdat {
	struct pipe_stage st;
	struct smtp_chunk dec;
};

/* Every octet given is the message's: the session never passes more than
 * the chunk holds, and the end is BDAT ... LAST, not in the octets. */
static size_t bdat_feed(struct pipe_stage *st, const char *in, size_t len, bool *done)
{
	struct stage_bdat *b = (struct stage_bdat *)st;
	char out[STAGE_BDAT_CHUNK];

	*done = false;
	if (len > sizeof(out))
		len = sizeof(out);
	size_t n = smtp_chunk_decode(&b->dec, in, len, out);
	if (n > 0)
		pipe_emit(st, out, n);
	return len;
}

static void bdat_end(struct pipe_stage *st)
{
	struct stage_bdat *b = (struct stage_bdat *)st;
	unsigned e;

	smtp_chunk_finish(&b->dec);
	e = b->dec.errors;
	if (e & (SMTP_DATA_ERR_BARE_LF | SMTP_DATA_ERR_BARE_CR))
		pipe_stage_refuse(st, false, "550 5.6.0 Message refused: bare CR or LF in a text message"
				  " (RFC 3030 2, RFC 5321 2.3.8); use BODY=BINARYMIME");
	else if (e & SMTP_DATA_ERR_NUL)
		pipe_stage_refuse(st, false, "550 5.6.0 Message refused: NUL octet in a text message;"
				  " use BODY=BINARYMIME");
	else if (e & SMTP_DATA_ERR_LINE_LEN)
		pipe_stage_refuse(st, false, "500 5.5.2 Message refused: line longer than 1000 octets"
				  " (RFC 5321 4.5.3.1.6)");
	else
		pipe_stage_accept(st);
}

static void bdat_free(struct pipe_stage *st)
{
	free(st);
}

static const struct pipe_stage_ops stage_bdat_ops = {
	.name = "bdat",
	.feed = bdat_feed,
	.end = bdat_end,
	.free = bdat_free,
};

struct pipe_stage *stage_bdat_new(bool binary, size_t max_line)
{
	struct stage_bdat *b = xcalloc(1, sizeof(*b));

	b->st.ops = &stage_bdat_ops;
	smtp_chunk_init(&b->dec, binary, max_line);
	return &b->st;
}
