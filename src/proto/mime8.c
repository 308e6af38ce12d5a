/*
 * mime8.c - quoted-printable downgrade of 8-bit text messages
 * (RFC 6152 §3, RFC 2045 §6.7, RFC 2045 §5.2 defaults).  See mime8.h.
 */
#include "proto/mime8.h"

#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mime8_verdict_str(enum mime8_verdict v)
{
	switch (v) {
	case MIME8_OK: return "convertible";
	case MIME8_NO_END: return "header section too long";
	case MIME8_HEADER_8BIT: return "8-bit header field";
	case MIME8_MULTIPART: return "multipart or message body";
	case MIME8_NOT_TEXT: return "not a text body";
	case MIME8_ENCODING: return "unsupported transfer encoding";
	}
	return "?";
}

/* Does field (one unfolded-or-not header field, name included) have the
 * name `name`?  Returns the value start or NULL. */
static const char *mime8_field(const char *f, size_t len, const char *name)
{
	size_t n = strlen(name);
	size_t i = n;

	if (len <= n || !ascii_ieq(f, name, n))
		return NULL;
	while (i < len && (f[i] == ' ' || f[i] == '\t'))
		i++;
	if (i >= len || f[i] != ':')
		return NULL;
	return f + i + 1;
}

/* The first token of a value (after white space and folding), lowered
 * into out; stops at ';', white space or a comment. */
static void mime8_token(const char *v, const char *end, char *out, size_t cap)
{
	size_t o = 0;

	while (v < end && (*v == ' ' || *v == '\t' || *v == '\n'))
		v++;
	while (v < end && *v != ';' && *v != ' ' && *v != '\t' && *v != '\n' && *v != '(' && o + 1 < cap)
		out[o++] = ascii_lower(*v++);
	out[o] = '\0';
}

static enum mime8_verdict mime8_judge(const char *f, size_t flen, bool *has_version)
{
	const char *v;
	char tok[64];

	if ((v = mime8_field(f, flen, "Content-Type")) != NULL) {
		mime8_token(v, f + flen, tok, sizeof(tok));
		if (!strncmp(tok, "multipart/", 10) || !strncmp(tok, "message/", 8))
			return MIME8_MULTIPART;
		if (tok[0] != '\0' && strncmp(tok, "text/", 5) != 0)
			return MIME8_NOT_TEXT;
	} else if ((v = mime8_field(f, flen, "Content-Transfer-Encoding")) != NULL) {
		mime8_token(v, f + flen, tok, sizeof(tok));
		if (strcmp(tok, "7bit") != 0 && strcmp(tok, "8bit") != 0)
			return MIME8_ENCODING;
	} else if (mime8_field(f, flen, "MIME-Version") != NULL) {
		*has_version = true;
	}
	return MIME8_OK;
}

/* Length of the field starting at p (through its last continuation's LF),
 * or 0 when the header section does not end before `end`. */
static size_t mime8_field_len(const char *p, const char *end)
{
	const char *q = p;

	for (;;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		if (nl == NULL || nl + 1 >= end)
			return 0;
		q = nl + 1;
		if (*q != ' ' && *q != '\t')
			return (size_t)(q - p);
	}
}

bool mime8_declares_8bit(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len, *v;
	bool eight = false;
	char tok[64];

	while (p < end && *p != '\n') {
		size_t flen = mime8_field_len(p, end);
		if (flen == 0)
			return false;
		if ((v = mime8_field(p, flen, "Content-Transfer-Encoding")) != NULL) {
			mime8_token(v, p + flen, tok, sizeof(tok));
			eight = strcmp(tok, "8bit") == 0;
		}
		p += flen;
	}
	return p < end && eight;
}

enum mime8_verdict mime8_header(const char *msg, size_t len, char **hdr, size_t *hdr_len,
				size_t *body_off)
{
	const char *p = msg, *end = msg + len;
	bool has_version = false;
	enum mime8_verdict v = MIME8_OK;
	char *out = NULL;
	size_t out_len = 0;
	FILE *f;

	*hdr = NULL;
	*hdr_len = 0;
	*body_off = 0;
	f = open_memstream(&out, &out_len);
	if (f == NULL)
		die("open_memstream: out of memory");
	while (v == MIME8_OK) {
		size_t flen;

		if (p < end && *p == '\n') {
			p++;
			break;
		}
		flen = mime8_field_len(p, end);
		if (flen == 0) {
			v = MIME8_NO_END;
			break;
		}
		for (size_t i = 0; i < flen; i++)
			if ((unsigned char)p[i] >= 0x80)
				v = MIME8_HEADER_8BIT;
		if (v == MIME8_OK)
			v = mime8_judge(p, flen, &has_version);
		if (mime8_field(p, flen, "Content-Transfer-Encoding") == NULL)
			fwrite(p, 1, flen, f);
		p += flen;
	}
	if (v == MIME8_OK) {
		if (!has_version)
			fputs("MIME-Version: 1.0\n", f);
		fputs("Content-Transfer-Encoding: quoted-printable\n\n", f);
	}
	if (fclose(f) != 0 || out == NULL)
		die("open_memstream: out of memory");
	if (v != MIME8_OK) {
		free(out);
		return v;
	}
	*hdr = out;
	*hdr_len = out_len;
	*body_off = (size_t)(p - msg);
	return MIME8_OK;
}

void mime8_qp_init(struct mime8_qp *q)
{
	q->col = 0;
	q->held = -1;
}

/* Write one token (1 or 3 characters), breaking the line softly first
 * when it would pass MIME8_QP_LINE - 1 (the '=' needs the last column). */
static size_t mime8_put(struct mime8_qp *q, const char *tok, size_t n, char *out)
{
	size_t o = 0;

	if (q->col + n > MIME8_QP_LINE - 1) {
		out[o++] = '=';
		out[o++] = '\n';
		q->col = 0;
	}
	memcpy(out + o, tok, n);
	q->col += n;
	return o + n;
}

static size_t mime8_put_byte(struct mime8_qp *q, unsigned char c, bool literal, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char tok[3];

	if (literal) {
		tok[0] = (char)c;
		return mime8_put(q, tok, 1, out);
	}
	tok[0] = '=';
	tok[1] = hex[c >> 4];
	tok[2] = hex[c & 15];
	return mime8_put(q, tok, 3, out);
}

size_t mime8_qp_encode(struct mime8_qp *q, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '\n') {
			/* White space before a line end must be encoded. */
			if (q->held >= 0)
				o += mime8_put_byte(q, (unsigned char)q->held, false, out + o);
			q->held = -1;
			out[o++] = '\n';
			q->col = 0;
			continue;
		}
		if (q->held >= 0)
			o += mime8_put_byte(q, (unsigned char)q->held, true, out + o);
		q->held = -1;
		if (c == ' ' || c == '\t')
			q->held = c;
		else
			o += mime8_put_byte(q, c, c >= 33 && c <= 126 && c != '=', out + o);
	}
	return o;
}

size_t mime8_qp_finish(struct mime8_qp *q, char *out)
{
	size_t o = 0;

	if (q->held >= 0)
		o += mime8_put_byte(q, (unsigned char)q->held, false, out);
	q->held = -1;
	return o;
}
