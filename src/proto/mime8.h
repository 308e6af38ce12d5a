/*
 * mime8.h - 8-bit to 7-bit downgrade for a peer without 8BITMIME
 * (RFC 6152 §3): a simple (non-multipart) text message is rewritten as
 * quoted-printable (RFC 2045 §6.7) - the header section once, in memory
 * (it is bounded by the caller), the body streamed in chunks.  Anything
 * else (multipart, message types, non-text, 8-bit header fields, an encoding
 * other than 7bit/8bit) cannot be converted and is bounced with 5.6.3.
 * Pure: no I/O, LF line ends in and out.
 */
#ifndef TERN_MIME8_H
#define TERN_MIME8_H

#include <stdbool.h>
#include <stddef.h>

enum mime8_verdict {
	MIME8_OK,		/* convertible: header rewritten */
	MIME8_NO_END,		/* the header section does not end within the input */
	MIME8_HEADER_8BIT,	/* 8-bit bytes in a header field */
	MIME8_MULTIPART,	/* multipart/... or message/... */
	MIME8_NOT_TEXT,		/* a Content-Type other than text/... */
	MIME8_ENCODING,		/* Content-Transfer-Encoding not 7bit/8bit */
};

#define MIME8_QP_LINE 76	/* RFC 2045 §6.7 (5): encoded line length */
/* The header section a downgrade reads, at most: smtp_stream when it
 * sends, the DKIM signer when it signs the form that will be sent. */
#define MIME8_HEADER_MAX 65536

/*
 * Look at the header section at the start of msg (len bytes).  On
 * MIME8_OK, *hdr is a new header section (free it): every field but
 * Content-Transfer-Encoding, MIME-Version: 1.0 added when missing, then
 * "Content-Transfer-Encoding: quoted-printable" and the blank line;
 * *body_off is where the body starts in msg.
 */
enum mime8_verdict mime8_header(const char *msg, size_t len, char **hdr, size_t *hdr_len,
				size_t *body_off);
const char *mime8_verdict_str(enum mime8_verdict v);
/* Does the header section at the start of msg declare 8-bit content
 * ("Content-Transfer-Encoding: 8bit", RFC 2045 6.2)?  False when it does
 * not, or does not end within len. */
bool mime8_declares_8bit(const char *msg, size_t len);

struct mime8_qp {
	size_t col;		/* characters on the current output line */
	int held;		/* a space or tab not yet written, or -1 */
};

/* Output room for len input bytes in one mime8_qp_encode() call. */
#define MIME8_QP_OUT_MAX(len) (4 * (len) + 16)
#define MIME8_QP_FINISH_MAX 16

void mime8_qp_init(struct mime8_qp *q);
/* Encode len body bytes (LF = line end) into out; returns bytes written. */
size_t mime8_qp_encode(struct mime8_qp *q, const char *in, size_t len, char *out);
/* Write what is held back at the end of the body. */
size_t mime8_qp_finish(struct mime8_qp *q, char *out);

#endif
