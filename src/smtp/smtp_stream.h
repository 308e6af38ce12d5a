/*
 * smtp_stream.h - the message body of an outgoing DATA, produced from
 * the queue file in chunks as the connection's output drains: optional
 * 8-bit -> quoted-printable downgrade (proto/mime8), then CRLF and
 * dot-stuffing (proto/smtp_dot), or only CRLF for BDAT chunks, or the
 * octets as they are for BINARYMIME.  Never more than a few chunks in memory.
 */
#ifndef TERN_SMTP_STREAM_H
#define TERN_SMTP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/mime8.h"
#include "proto/smtp_dot.h"

#define SMTP_STREAM_CHUNK 16384
#define SMTP_STREAM_HEADER_MAX MIME8_HEADER_MAX	/* header section read for a downgrade */

struct evbuffer;

/* How the queue file's octets go on the wire. */
enum smtp_stream_mode {
	SMTP_STREAM_DATA,	/* CRLF line ends, dot-stuffed, "." at the end */
	SMTP_STREAM_BDAT,	/* CRLF line ends only (RFC 3030 chunks) */
	SMTP_STREAM_RAW,	/* BODY=BINARYMIME (RFC 3030 §3): the header
				 * section as BDAT, the body as stored */
};

struct smtp_stream {
	int fd;
	enum smtp_stream_mode mode;
	uint64_t pos, end;	/* file offsets still to send */
	bool convert;		/* downgrade to quoted-printable */
	char *hdr;		/* rewritten header (convert), sent first */
	size_t hdr_len;
	bool hdr_sent;
	struct mime8_qp qp;
	struct smtp_dot dot;
	bool done;		/* the final "." is in the output */
	bool raw_body;		/* RAW: past the header section */
	bool raw_bol;		/* RAW: the last header octet was a line end */
};

/* Prepare to send len bytes at offset of fd.  With convert, reads the
 * header section and returns its verdict (not MIME8_OK: cannot be sent
 * to this peer); a read error is MIME8_NO_END too.  front (front_len
 * octets, LF line ends, 7-bit) goes before the converted header: the
 * signatures of the 7-bit form (queue_env.dkim7). */
enum mime8_verdict smtp_stream_open(struct smtp_stream *st, int fd, uint64_t offset, uint64_t len,
				    bool convert, enum smtp_stream_mode mode, const char *front, size_t front_len);
/* Add up to about one chunk to out.  1: more to come; 0: finished (in
 * DATA mode the terminating "." is written; out may get nothing more in
 * the others); -1: read error (errno). */
int smtp_stream_fill(struct smtp_stream *st, struct evbuffer *out);
/* True when the next smtp_stream_fill() only finishes (returns 0). */
bool smtp_stream_at_end(const struct smtp_stream *st);
void smtp_stream_close(struct smtp_stream *st);

#endif
