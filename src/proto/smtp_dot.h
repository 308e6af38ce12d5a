/*
 * smtp_dot.h - the message as it goes out after DATA: tern stores lines
 * with LF ends; the wire wants CRLF ends and a '.' doubled at the start of
 * a line (RFC 5321 §4.5.2), then CRLF "." CRLF (§4.1.1.4); BDAT chunks
 * (RFC 3030) want the CRLF ends only.  Streaming and
 * pure: chunks in, bytes out, state carried between chunks.
 */
#ifndef TERN_SMTP_DOT_H
#define TERN_SMTP_DOT_H

#include <stdbool.h>
#include <stddef.h>

struct smtp_dot {
	bool chunks;		/* BDAT (RFC 3030): line ends only, no '.' added */
	bool bol;		/* the next byte starts a line */
	bool cr;		/* a CR was held back (it may start CRLF) */
	bool any;		/* some byte was encoded */
};

/* Room the output needs for len input bytes (every LF -> CRLF, a '.' at
 * the start of a line doubled, a held CR released). */
#define SMTP_DOT_OUT_MAX(len) (2 * (len) + 2)
/* Room for smtp_dot_finish(). */
#define SMTP_DOT_FINISH_MAX 8

void smtp_dot_init(struct smtp_dot *d);
/* The same for BDAT chunks (RFC 3030 §2): the octets are counted, not
 * terminated, so LF -> CRLF only, without dot-stuffing, and
 * smtp_dot_finish() only ends an open last line. */
void smtp_dot_init_chunks(struct smtp_dot *d);
/* Encode len bytes into out (at least SMTP_DOT_OUT_MAX(len) bytes);
 * returns the bytes written.  A CRLF in the input stays one line end. */
size_t smtp_dot_encode(struct smtp_dot *d, const char *in, size_t len, char *out);
/* End the last line if it was open and write the terminating ".";
 * returns the bytes written (at most SMTP_DOT_FINISH_MAX). */
size_t smtp_dot_finish(struct smtp_dot *d, char *out);

#endif
