/*
 * smtp_chunk.h - the octets of BDAT chunks (RFC 3030 §2) as tern stores
 * a message: counted, not terminated, so no dot-unstuffing and no end
 * marker.  A text message (7BIT, 8BITMIME) must be in canonical form:
 * CRLF becomes LF; a bare CR or LF, a NUL or a line over max_line octets
 * is recorded (SMTP_DATA_ERR_*, as for DATA) and the message refused at
 * its end, since the store could not give it back as it was sent.  With
 * BODY=BINARYMIME (§3) only the header section is text; the body's
 * octets are kept exactly as they came.  Streaming and pure: any split.
 */
#ifndef TERN_SMTP_CHUNK_H
#define TERN_SMTP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>

struct smtp_chunk {
	bool binary;		/* BINARYMIME: the body is not text */
	bool in_body;		/* binary only: past the header section */
	bool cr;		/* a CR was seen, its LF may come next */
	size_t line_len;	/* octets of the current line so far */
	size_t max_line;	/* octets per line including CRLF; 0 = no limit */
	unsigned errors;	/* SMTP_DATA_ERR_* bits, sticky */
};

void smtp_chunk_init(struct smtp_chunk *c, bool binary, size_t max_line);
/* Decode len octets into out (room for len octets); returns the octets
 * written.  Every input octet is consumed. */
size_t smtp_chunk_decode(struct smtp_chunk *c, const char *in, size_t len, char *out);
/* The message is complete (after BDAT ... LAST): a CR left open is bare. */
void smtp_chunk_finish(struct smtp_chunk *c);

#endif
