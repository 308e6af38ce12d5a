/*
 * pop3_msg.c - CRLF conversion, byte-stuffing and TOP's line limit for
 * POP3 multi-line responses (RFC 1939 sections 3 and 7); see pop3_msg.h.
 */
#include "proto/pop3_msg.h"

#include <string.h>

void pop3_msg_enc_init(struct pop3_msg_enc *e, bool all, uint64_t body_lines)
{
	memset(e, 0, sizeof(*e));
	e->line_start = true;
	e->line_empty = true;
	e->limit_lines = !all;
	e->max_body_lines = body_lines;
}

/* A line just ended: the first empty one ends the header; TOP counts
 * body lines after it. */
static void pop3_msg_line_end(struct pop3_msg_enc *e)
{
	if (e->in_body)
		e->body_lines++;
	else if (e->line_empty)
		e->in_body = true;
	if (e->limit_lines && e->in_body && e->body_lines >= e->max_body_lines)
		e->done = true;
	e->line_start = true;
	e->line_empty = true;
}

/*
 * RETR with room for any output (the session's case): one step per line,
 * the run before its LF copied whole, then the line end.  TOP needs the
 * header/body bookkeeping of the general loop below; RETR does not, and
 * the general loop takes two turns per line (the run, then its LF).
 */
static size_t pop3_msg_enc_lines(struct pop3_msg_enc *e, const char *in, size_t in_len, char *out)
{
	size_t i = 0, o = 0;

	while (i < in_len) {
		const char *nl = memchr(in + i, '\n', in_len - i);
		size_t run = nl ? (size_t)(nl - (in + i)) : in_len - i;

		if (e->line_start && in[i] == '.')
			out[o++] = '.';
		memcpy(out + o, in + i, run);
		o += run;
		if (nl == NULL) {   /* the chunk ends inside a line */
			e->line_start = false;
			e->prev_cr = in[in_len - 1] == '\r';
			break;
		}
		/* A CR before the LF (in this run, or ending the last chunk)
		 * is kept; a bare LF gets one. */
		if (!(run > 0 ? in[i + run - 1] == '\r' : e->prev_cr))
			out[o++] = '\r';
		out[o++] = '\n';
		e->line_start = true;
		e->prev_cr = false;
		i += run + 1;
	}
	return o;
}

size_t pop3_msg_enc_feed(struct pop3_msg_enc *e, const char *in, size_t in_len, char *out, size_t cap,
			 size_t *out_len)
{
	size_t i = 0, o = 0;

	if (!e->limit_lines && in_len > 0 && cap / 2 >= in_len) {   /* at most 2 octets out per octet in */
		*out_len = pop3_msg_enc_lines(e, in, in_len, out);
		return in_len;
	}

	while (i < in_len && !e->done) {
		const char *nl;
		size_t run;

		if (cap - o < 3)
			break;
		if (e->line_start && in[i] == '.')
			out[o++] = '.';
		e->line_start = false;
		if (in[i] == '\n') {
			if (!e->prev_cr)
				out[o++] = '\r';
			out[o++] = '\n';
			e->prev_cr = false;
			i++;
			pop3_msg_line_end(e);
			continue;
		}
		/* A run of octets up to the next LF goes out as it is. */
		nl = memchr(in + i, '\n', in_len - i);
		run = nl ? (size_t)(nl - (in + i)) : in_len - i;
		if (run > cap - o)
			run = cap - o;
		/* A line is still empty while it holds at most one CR. */
		e->line_empty = e->line_empty && !e->prev_cr && run == 1 && in[i] == '\r';
		e->prev_cr = in[i + run - 1] == '\r';
		memcpy(out + o, in + i, run);
		o += run;
		i += run;
	}
	if (e->done)
		i = in_len;   /* the rest is not sent */
	*out_len = o;
	return i;
}

size_t pop3_msg_enc_finish(struct pop3_msg_enc *e, char *out)
{
	size_t o = 0;
	if (!e->line_start) {
		if (!e->prev_cr)
			out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

void pop3_msg_size_init(struct pop3_msg_size *z)
{
	memset(z, 0, sizeof(*z));
	z->line_start = true;
}

void pop3_msg_size_feed(struct pop3_msg_size *z, const char *in, size_t len)
{
	const char *p = in, *end = in + len, *nl;

	if (len == 0)
		return;
	z->octets += len;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		bool cr = nl > p ? nl[-1] == '\r' : z->prev_cr;
		if (!cr)
			z->octets++;
		p = nl + 1;
		z->prev_cr = false;
	}
	if (p < end)
		z->prev_cr = end[-1] == '\r';
	z->line_start = end[-1] == '\n';
}

uint64_t pop3_msg_size_finish(struct pop3_msg_size *z)
{
	if (!z->line_start)
		z->octets += z->prev_cr ? 1 : 2;
	return z->octets;
}
