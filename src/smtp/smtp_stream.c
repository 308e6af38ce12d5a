/*
 * smtp_stream.c - queue file -> DATA bytes (see smtp_stream.h).
 * RFC 5321 §4.5.2 (transparency), RFC 6152 §3 (downgrade), RFC 3030
 * (BDAT chunks, BINARYMIME).
 */
#include "smtp/smtp_stream.h"

#include "core/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum mime8_verdict smtp_stream_open(struct smtp_stream *st, int fd, uint64_t offset, uint64_t len,
				    bool convert, enum smtp_stream_mode mode, const char *front, size_t front_len)
{
	memset(st, 0, sizeof(*st));
	st->fd = fd;
	st->mode = mode;
	st->raw_bol = true;
	st->pos = offset;
	st->end = offset + len;
	st->convert = convert;
	if (mode != SMTP_STREAM_DATA)
		smtp_dot_init_chunks(&st->dot);
	else
		smtp_dot_init(&st->dot);
	mime8_qp_init(&st->qp);
	if (convert) {
		size_t n = len < SMTP_STREAM_HEADER_MAX ? (size_t)len : SMTP_STREAM_HEADER_MAX;
		char *buf = xmalloc(n + 1);
		ssize_t got = pread(fd, buf, n, (off_t)offset);
		size_t body_off = 0;
		enum mime8_verdict v = MIME8_NO_END;

		if (got == (ssize_t)n)
			v = mime8_header(buf, n, &st->hdr, &st->hdr_len, &body_off);
		free(buf);
		if (v != MIME8_OK)
			return v;
		st->pos += body_off;
		if (front_len > 0) {
			char *h = xmalloc(front_len + st->hdr_len);
			memcpy(h, front, front_len);
			memcpy(h + front_len, st->hdr, st->hdr_len);
			free(st->hdr);
			st->hdr = h;
			st->hdr_len += front_len;
		}
	}
	return MIME8_OK;
}

/* Pass bytes through the downgrade (if any) and the dot-stuffer. */
static void smtp_stream_emit(struct smtp_stream *st, const char *p, size_t n, bool body,
			     struct evbuffer *out)
{
	char *qp = NULL;
	char *dot;
	size_t dlen;

	if (st->mode == SMTP_STREAM_RAW) {
		/* The stored header section has LF ends like every message
		 * (tern's own fields are in it); the body is as it came. */
		size_t k = 0;
		while (!st->raw_body && k < n) {
			bool lf = p[k++] == '\n';
			st->raw_body = lf && st->raw_bol;
			st->raw_bol = lf;
		}
		if (k > 0) {
			dot = xmalloc(SMTP_DOT_OUT_MAX(k));
			dlen = smtp_dot_encode(&st->dot, p, k, dot);
			evbuffer_add(out, dot, dlen);
			free(dot);
		}
		evbuffer_add(out, p + k, n - k);
		return;
	}
	if (body && st->convert) {
		qp = xmalloc(MIME8_QP_OUT_MAX(n));
		n = mime8_qp_encode(&st->qp, p, n, qp);
		p = qp;
	}
	dot = xmalloc(SMTP_DOT_OUT_MAX(n));
	dlen = smtp_dot_encode(&st->dot, p, n, dot);
	evbuffer_add(out, dot, dlen);
	free(dot);
	free(qp);
}

int smtp_stream_fill(struct smtp_stream *st, struct evbuffer *out)
{
	char buf[SMTP_STREAM_CHUNK];

	if (st->done)
		return 0;
	if (st->convert && !st->hdr_sent) {
		smtp_stream_emit(st, st->hdr, st->hdr_len, false, out);
		st->hdr_sent = true;
		return 1;
	}
	if (st->pos < st->end) {
		size_t want = st->end - st->pos < sizeof(buf) ? (size_t)(st->end - st->pos) : sizeof(buf);
		ssize_t got = pread(st->fd, buf, want, (off_t)st->pos);

		if (got <= 0) {
			if (got == 0)
				errno = EIO;	/* the file is shorter than its trailer says */
			return -1;
		}
		st->pos += (uint64_t)got;
		smtp_stream_emit(st, buf, (size_t)got, true, out);
		return 1;
	}
	char tail[MIME8_QP_FINISH_MAX + SMTP_DOT_FINISH_MAX + SMTP_DOT_OUT_MAX(MIME8_QP_FINISH_MAX)];
	size_t n = 0;
	st->done = true;
	if (st->mode == SMTP_STREAM_RAW) {
		if (!st->raw_body)	/* all header: end its last line */
			evbuffer_add(out, tail, smtp_dot_finish(&st->dot, tail));
		return 0;
	}
	if (st->convert) {
		char q[MIME8_QP_FINISH_MAX];
		size_t qn = mime8_qp_finish(&st->qp, q);
		n = smtp_dot_encode(&st->dot, q, qn, tail);
	}
	n += smtp_dot_finish(&st->dot, tail + n);
	evbuffer_add(out, tail, n);
	return 0;
}

bool smtp_stream_at_end(const struct smtp_stream *st)
{
	return st->done || (st->pos >= st->end && (!st->convert || st->hdr_sent));
}

void smtp_stream_close(struct smtp_stream *st)
{
	free(st->hdr);
	st->hdr = NULL;
}
