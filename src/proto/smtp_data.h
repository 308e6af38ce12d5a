/*
 * smtp_data.h - streaming framer for the SMTP DATA phase: finds the end of
 * data, removes dot-stuffing, turns CRLF into LF and flags the line-ending
 * tricks used for SMTP smuggling.
 *
 * RFC 5321 §4.1.1.4 (end of data), §4.5.2 (transparency), §4.5.3.1.6
 * (text line length).
 */
#ifndef TERN_SMTP_DATA_H
#define TERN_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	SMTP_DATA_ERR_BARE_LF = 1,	/* LF not preceded by CR */
	SMTP_DATA_ERR_BARE_CR = 2,	/* CR not followed by LF */
	SMTP_DATA_ERR_NUL = 4,
	SMTP_DATA_ERR_LINE_LEN = 8,	/* a line longer than max_line */
};

struct smtp_data {
	/* private */
	int state;		/* enum data_state in smtp_data.c */
	size_t line_len;	/* octets of the current line as received */
	bool done;

	/* public */
	size_t max_line;	/* max octets per line INCLUDING CRLF (1000 per RFC 5321); 0 = unlimited */
	unsigned errors;	/* SMTP_DATA_ERR_* bits, sticky; parsing goes on to the real end */
	uint64_t octets;	/* message octets produced so far */
};

void smtp_data_init(struct smtp_data *d, size_t max_line);

/* Consume up to len input octets.  Appends the message (dot-unstuffed, CRLF
 * turned into LF) to out, which must have room for len + 2 octets; *out_len
 * is set to what was written.  Sets *done when the terminating CRLF.CRLF has
 * been consumed; then the return value is the number of input octets up to
 * and including that final LF, and the rest belongs to the next command.
 * Otherwise returns len.  Bare CR, bare LF and NUL are passed through to
 * out as they are (and flagged).  After done, returns 0 and writes nothing. */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len, char *out,
		      size_t *out_len, bool *done);

#endif
