/*
 * mime_cte.h - Content-Transfer-Encoding decoding (RFC 2045 6.7, 6.8) as a
 * pure, incremental decoder, for IMAP BINARY (RFC 3516): FETCH BINARY[n]
 * sends a part decoded, BINARY.SIZE[n] its decoded size.
 *
 * The input comes in chunks of any size (a message file read piece by
 * piece); the decoder keeps the few octets a chunk boundary splits (a
 * base64 quantum, a "=X" of quoted-printable, the white space before a
 * line end) in its state, so the result does not depend on how the input
 * was cut.  Identity encodings (7bit, 8bit, binary, none) only make line
 * ends CRLF, as IMAP sends text; base64 output is the octets as they are;
 * quoted-printable output has CRLF line ends, soft line breaks removed and
 * the white space before a line end dropped (rule 3: transport padding;
 * of a run longer than MIME_CTE_WS_MAX only the last part, so the state
 * stays bounded).
 * Malformed input is never an error: base64 skips characters outside its
 * alphabet, quoted-printable passes a "=" not followed by two hex digits
 * through as it is (RFC 2045 6.7 note 2, the robust reading).
 */
#ifndef TERN_MIME_CTE_H
#define TERN_MIME_CTE_H

#include <stdbool.h>
#include <stddef.h>

enum mime_cte {
	MIME_CTE_IDENTITY,        /* 7bit, 8bit, binary, or no header */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
	MIME_CTE_UNKNOWN,         /* x-uuencode and the like: IMAP's UNKNOWN-CTE */
};

/* The encoding named by a Content-Transfer-Encoding value (any case, white
 * space around ignored); NULL is identity. */
enum mime_cte mime_cte_of(const char *value);

#define MIME_CTE_WS_MAX 64        /* white space held back, waiting for the line end */

struct mime_cte_dec {
	enum mime_cte kind;
	unsigned acc, nacc;       /* base64: bits, sextets taken */
	bool pad;                 /* base64: "=" seen: the data is over */
	char qp[3];               /* qp: "=", "=X" pending */
	size_t nqp;
	char ws[MIME_CTE_WS_MAX]; /* qp: trailing white space held */
	size_t nws;
	bool cr;                  /* a CR was the last input octet (pending) */
};

void mime_cte_init(struct mime_cte_dec *d, enum mime_cte kind);
/* Decode len octets into out, which has room for MIME_CTE_OUT_MAX(len);
 * returns the octets written. */
#define MIME_CTE_OUT_MAX(len) (2 * (len) + MIME_CTE_WS_MAX + 8)
size_t mime_cte_feed(struct mime_cte_dec *d, const char *in, size_t len, char *out);
/* The end of the input: what is still held (room: MIME_CTE_OUT_MAX(0)). */
size_t mime_cte_finish(struct mime_cte_dec *d, char *out);

#endif
