/*
 * mime_cte.c - Content-Transfer-Encoding decoding for IMAP BINARY (see
 * mime_cte.h).  One octet at a time through a small state machine: the
 * inputs are message parts read from disk in 64 KiB chunks, where this
 * costs little next to the read, and it keeps chunk boundaries invisible.
 */
#include "proto/mime_cte.h"

#include <string.h>
#include <strings.h>

enum mime_cte mime_cte_of(const char *value)
{
	static const struct { const char *name; enum mime_cte cte; } names[] = {
		{ "7bit", MIME_CTE_IDENTITY }, { "8bit", MIME_CTE_IDENTITY }, { "binary", MIME_CTE_IDENTITY },
		{ "base64", MIME_CTE_BASE64 }, { "quoted-printable", MIME_CTE_QP },
	};
	size_t len;

	if (value == NULL)
		return MIME_CTE_IDENTITY;
	while (*value == ' ' || *value == '\t')
		value++;
	len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0)
		return MIME_CTE_IDENTITY;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && strncasecmp(value, names[i].name, len) == 0)
			return names[i].cte;
	return MIME_CTE_UNKNOWN;
}

void mime_cte_init(struct mime_cte_dec *d, enum mime_cte kind)
{
	memset(d, 0, sizeof(*d));
	d->kind = kind;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static size_t b64_octet(struct mime_cte_dec *d, unsigned char c, char *out)
{
	int v;

	if (c == '=') {
		d->pad = true;
		return 0;
	}
	if (d->pad || (v = b64_value(c)) < 0)
		return 0;
	d->acc = (d->acc << 6) | (unsigned)v;
	if (++d->nacc < 4)
		return 0;
	out[0] = (char)(d->acc >> 16);
	out[1] = (char)(d->acc >> 8);
	out[2] = (char)d->acc;
	d->acc = 0;
	d->nacc = 0;
	return 3;
}

static size_t b64_finish(struct mime_cte_dec *d, char *out)
{
	size_t n = 0;
	/* 2 sextets carry one octet, 3 carry two; 1 carries none */
	if (d->nacc == 2) {
		out[n++] = (char)(d->acc >> 4);
	} else if (d->nacc == 3) {
		out[n++] = (char)(d->acc >> 10);
		out[n++] = (char)(d->acc >> 2);
	}
	d->nacc = 0;
	d->acc = 0;
	return n;
}

/* The held white space goes out: it was not before a line end. */
static size_t qp_flush_ws(struct mime_cte_dec *d, char *out)
{
	size_t n = d->nws;
	memcpy(out, d->ws, n);
	d->nws = 0;
	return n;
}

/* A pending "=" or "=X" that turned out not to be an escape: as it is. */
static size_t qp_flush_eq(struct mime_cte_dec *d, char *out)
{
	size_t n = d->nqp;
	memcpy(out, d->qp, n);
	d->nqp = 0;
	return n;
}

/* One octet of quoted-printable, line ends already taken out. */
static size_t qp_octet(struct mime_cte_dec *d, unsigned char c, char *out)
{
	size_t n = 0;

	if (d->nqp == 1) {
		if (c == ' ' || c == '\t') {
			/* "=" then white space: a soft break with padding,
			 * or nothing; keep waiting for the line end */
			return 0;
		}
		if (hex_value(c) >= 0) {
			d->qp[d->nqp++] = (char)c;
			return 0;
		}
		n += qp_flush_eq(d, out);
	} else if (d->nqp == 2) {
		if (hex_value(c) >= 0) {
			out[n++] = (char)(hex_value((unsigned char)d->qp[1]) * 16 + hex_value(c));
			d->nqp = 0;
			return n;
		}
		n += qp_flush_eq(d, out);
	}
	if (c == '=') {
		n += qp_flush_ws(d, out + n);
		d->qp[0] = '=';
		d->nqp = 1;
		return n;
	}
	if (c == ' ' || c == '\t') {
		if (d->nws == MIME_CTE_WS_MAX)
			n += qp_flush_ws(d, out + n);
		d->ws[d->nws++] = (char)c;
		return n;
	}
	n += qp_flush_ws(d, out + n);
	out[n++] = (char)c;
	return n;
}

/* A line end in quoted-printable: "=" before it makes it soft. */
static size_t qp_line_end(struct mime_cte_dec *d, char *out)
{
	size_t n = 0;
	d->nws = 0;                     /* transport padding */
	if (d->nqp == 1) {
		d->nqp = 0;             /* soft line break */
		return 0;
	}
	n += qp_flush_eq(d, out);
	out[n++] = '\r';
	out[n++] = '\n';
	return n;
}

/* Identity passes octets and makes line ends CRLF; quoted-printable
 * decodes them. */
static size_t emit_octet(struct mime_cte_dec *d, unsigned char c, char *out)
{
	if (d->kind == MIME_CTE_QP)
		return qp_octet(d, c, out);
	out[0] = (char)c;
	return 1;
}

static size_t emit_line_end(struct mime_cte_dec *d, char *out)
{
	if (d->kind == MIME_CTE_QP)
		return qp_line_end(d, out);
	out[0] = '\r';
	out[1] = '\n';
	return 2;
}

size_t mime_cte_feed(struct mime_cte_dec *d, const char *in, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (d->kind == MIME_CTE_BASE64) {
			n += b64_octet(d, c, out + n);
			continue;
		}
		/* LF, CRLF (and a lone CR, as it is) are line ends, sent as CRLF */
		if (d->cr) {
			d->cr = false;
			if (c == '\n') {
				n += emit_line_end(d, out + n);
				continue;
			}
			n += emit_octet(d, '\r', out + n);
		}
		if (c == '\r')
			d->cr = true;
		else if (c == '\n')
			n += emit_line_end(d, out + n);
		else
			n += emit_octet(d, c, out + n);
	}
	return n;
}

size_t mime_cte_finish(struct mime_cte_dec *d, char *out)
{
	size_t n = 0;

	if (d->kind == MIME_CTE_BASE64)
		return b64_finish(d, out);
	if (d->cr) {
		d->cr = false;
		n += emit_octet(d, '\r', out + n);
	}
	if (d->kind == MIME_CTE_QP) {
		/* at the very end white space is padding too, and a lone
		 * "=" a soft break */
		d->nws = 0;
		if (d->nqp == 2)
			n += qp_flush_eq(d, out + n);
		d->nqp = 0;
	}
	return n;
}
