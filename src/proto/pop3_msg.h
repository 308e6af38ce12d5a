/*
 * pop3_msg.h - a message file as POP3 sends it (RFC 1939 section 3):
 * every line ends in CRLF (a bare LF becomes CRLF; an existing CRLF is
 * kept), a line that starts with '.' gets another '.', and the end is
 * "CRLF.CRLF".  TOP (RFC 1939 section 7) stops after the header, the
 * blank line and n body lines.
 *
 * Pure and incremental: the session feeds file chunks as the output
 * drains, so a message of any size costs a few KiB.  The same code sizes
 * messages for LIST/STAT (pop3_msg_size_*) so that LIST == RETR octets.
 */
#ifndef TERN_POP3_MSG_H
#define TERN_POP3_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pop3_msg_enc {
	bool line_start;          /* next octet begins a line */
	bool prev_cr;             /* last octet was CR */
	bool in_body;             /* the empty line after the header was seen */
	bool line_empty;          /* the current line has no octets yet but CR */
	bool limit_lines;         /* TOP: stop after max_body_lines */
	uint64_t max_body_lines;
	uint64_t body_lines;      /* complete body lines sent */
	bool done;                /* TOP limit reached: ignore further input */
};

/* all: RETR (the whole message); otherwise TOP with body_lines lines. */
void pop3_msg_enc_init(struct pop3_msg_enc *e, bool all, uint64_t body_lines);

/* Encode up to in_len octets into out (capacity cap >= 2 * in_len + 3 is
 * always enough; less makes it stop early).  Returns the input octets
 * consumed; *out_len the octets written. */
size_t pop3_msg_enc_feed(struct pop3_msg_enc *e, const char *in, size_t in_len, char *out, size_t cap,
			 size_t *out_len);

/* After the last input: the CRLF a last line without one needs, then
 * ".CRLF".  out must hold 5 octets; returns the octets written. */
size_t pop3_msg_enc_finish(struct pop3_msg_enc *e, char *out);

/* Octets of the message in CRLF form without byte-stuffing and without
 * the terminating ".CRLF" (what LIST and STAT report, RFC 1939 5):
 * feed all chunks, then finish. */
struct pop3_msg_size {
	uint64_t octets;
	bool prev_cr;
	bool line_start;
};

void pop3_msg_size_init(struct pop3_msg_size *z);
void pop3_msg_size_feed(struct pop3_msg_size *z, const char *in, size_t len);
uint64_t pop3_msg_size_finish(struct pop3_msg_size *z);

#endif
