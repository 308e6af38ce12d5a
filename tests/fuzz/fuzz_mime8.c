/*
 * fuzz_mime8.c - libFuzzer harness for proto/mime8.c and proto/smtp_dot.c:
 * the input is a message; when its header is convertible, the body goes
 * through the quoted-printable encoder in chunks of a size taken from the
 * first byte, then through the dot-stuffer.  Checks: the encoded body is
 * 7-bit with lines of at most 76 characters, and the DATA bytes never
 * contain CRLF "." CRLF before the end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mime8.h"
#include "proto/smtp_dot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk, body_off, hdr_len, qlen = 0, dlen = 0, col = 0;
	char *hdr, *qp, *dot;
	struct mime8_qp q;
	struct smtp_dot d;
	const char *msg;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] % 64 + 1;
	msg = (const char *)data + 1;
	size--;
	(void)mime8_declares_8bit(msg, size);   /* no crash, no read past size */
	if (mime8_header(msg, size, &hdr, &hdr_len, &body_off) != MIME8_OK)
		return 0;
	if (body_off > size)
		__builtin_trap();
	qp = malloc(MIME8_QP_OUT_MAX(size) + MIME8_QP_FINISH_MAX + 64);
	mime8_qp_init(&q);
	for (size_t p = body_off; p < size; p += chunk) {
		size_t n = size - p < chunk ? size - p : chunk;
		qlen += mime8_qp_encode(&q, msg + p, n, qp + qlen);
	}
	qlen += mime8_qp_finish(&q, qp + qlen);
	for (size_t i = 0; i < qlen; i++) {
		if ((unsigned char)qp[i] >= 0x80)
			__builtin_trap();
		col = qp[i] == '\n' ? 0 : col + 1;
		if (col > MIME8_QP_LINE)
			__builtin_trap();
	}
	dot = malloc(SMTP_DOT_OUT_MAX(qlen) + SMTP_DOT_FINISH_MAX);
	smtp_dot_init(&d);
	dlen = smtp_dot_encode(&d, qp, qlen, dot);
	dlen += smtp_dot_finish(&d, dot + dlen);
	for (size_t i = 0; i + 5 <= dlen; i++)
		if (!memcmp(dot + i, "\r\n.\r\n", 5) && i + 5 != dlen)
			__builtin_trap();
	if (dlen < 3 || memcmp(dot + dlen - 3, ".\r\n", 3) != 0)
		__builtin_trap();
	free(dot);
	free(qp);
	free(hdr);
	return 0;
}
