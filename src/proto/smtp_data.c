/*
 * smtp_data.c - the DATA phase framer (RFC 5321 §4.1.1.4, §4.5.2).
 *
 * Only <CRLF>.<CRLF> ends the data.  A bare LF or a bare CR never ends a
 * line, so none of the smuggling variants ("\n.\n", "\r\n.\n", "\r.\r",
 * "\n.\r\n", ...) can end the message early here while a downstream MTA
 * would see an end: they are flagged instead, and the session decides.
 *
 * The framer is a byte-at-a-time state machine whose only memory between
 * calls is the state below (a held CR or a held line-start dot), so any
 * split of the input gives the same output; inside a line, a run of
 * octets that are not CR, LF or NUL is copied at once.
 */
#include "proto/smtp_data.h"

#include <string.h>

enum data_state {
	DS_LINE_START,	/* at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* inside a line, a CR held back */
	DS_DOT,		/* a line-start dot held back */
	DS_DOT_CR,	/* a line-start dot, then a CR held back */
};

void smtp_data_init(struct smtp_data *d, size_t max_line)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_LINE_START;
	d->max_line = max_line;
}

/* A byte inside a line (not a held CR or dot). */
static size_t data_text(struct smtp_data *d, unsigned char c, char *out)
{
	if (c == '\r') {
		d->state = DS_CR;
		return 0;
	}
	if (c == '\n')
		d->errors |= SMTP_DATA_ERR_BARE_LF;
	else if (c == '\0')
		d->errors |= SMTP_DATA_ERR_NUL;
	d->state = DS_TEXT;
	out[0] = (char)c;
	return 1;
}

/* One input octet; returns the octets written to out (0..2). */
static size_t data_step(struct smtp_data *d, unsigned char c, char *out)
{
	switch (d->state) {
	case DS_LINE_START:
		if (c == '.') {
			d->state = DS_DOT;
			return 0;
		}
		return data_text(d, c, out);
	case DS_DOT:
		if (c == '\r') {
			d->state = DS_DOT_CR;
			return 0;
		}
		/* The line has more than the dot: drop the stuffed dot. */
		return data_text(d, c, out);
	case DS_DOT_CR:
		if (c == '\n') {
			d->done = true;
			return 0;
		}
		/* ".<CR>x": the dot was stuffing, the CR is bare. */
		d->errors |= SMTP_DATA_ERR_BARE_CR;
		out[0] = '\r';
		return 1 + data_text(d, c, out + 1);
	case DS_CR:
		if (c == '\n') {
			d->state = DS_LINE_START;
			out[0] = '\n';
			return 1;
		}
		d->errors |= SMTP_DATA_ERR_BARE_CR;
		out[0] = '\r';
		return 1 + data_text(d, c, out + 1);
	default:	/* DS_TEXT */
		return data_text(d, c, out);
	}
}

/* Octets before the first CR, LF or NUL in p[0..len). */
static size_t plain_run(const char *p, size_t len)
{
	const char *e = memchr(p, '\r', len);
	size_t run = e ? (size_t)(e - p) : len;
	if ((e = memchr(p, '\n', run)) != NULL)
		run = (size_t)(e - p);
	if ((e = memchr(p, '\0', run)) != NULL)
		run = (size_t)(e - p);
	return run;
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
		      size_t *out_len, bool *done)
{
	size_t n = 0, i = 0;
	*out_len = 0;
	*done = d->done;
	if (d->done)
		return 0;
	while (i < len && !d->done) {
		if (d->state == DS_TEXT) {
			/* Inside a line, octets up to the next CR, LF or NUL go
			 * out as they are: found with memchr and copied, not
			 * stepped through one by one (that was a sixth of tern's
			 * CPU for a 100 KiB message). */
			size_t run = plain_run(in + i, len - i);
			if (run > 0) {
				size_t cap = d->max_line + 1;
				memcpy(out + n, in + i, run);
				n += run;
				i += run;
				d->line_len = d->line_len + run > cap ? cap : d->line_len + run;
				if (d->max_line != 0 && d->line_len > d->max_line)
					d->errors |= SMTP_DATA_ERR_LINE_LEN;
				continue;
			}
		}
		unsigned char c = (unsigned char)in[i++];
		if (d->line_len <= d->max_line)	/* saturates at max_line + 1 */
			d->line_len++;
		if (d->max_line != 0 && d->line_len > d->max_line)
			d->errors |= SMTP_DATA_ERR_LINE_LEN;
		n += data_step(d, c, out + n);
		if (d->state == DS_LINE_START)
			d->line_len = 0;
	}
	d->octets += n;
	*out_len = n;
	*done = d->done;
	return i;
}
