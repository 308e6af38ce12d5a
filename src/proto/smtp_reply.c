/*
 * smtp_reply.c - SMTP reply lines (RFC 5321 §4.2, §4.5.3.1.5), enhanced
 * status codes (RFC 2034, RFC 3463 §2) and EHLO keywords (RFC 5321
 * §4.1.1.1, RFC 1870 SIZE, RFC 4954 AUTH).  Everything a peer sends is
 * bounded here; a bad line is an error result, never a crash.
 */
#include "proto/smtp_reply.h"

#include "core/util.h"

#include <ctype.h>
#include <string.h>

void smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->state = SMTP_REPLY_MORE;
}

const char *smtp_reply_status_str(enum smtp_reply_status st)
{
	switch (st) {
	case SMTP_REPLY_MORE: return "more";
	case SMTP_REPLY_DONE: return "done";
	case SMTP_REPLY_ERR_SYNTAX: return "malformed reply line";
	case SMTP_REPLY_ERR_MISMATCH: return "reply codes differ between lines";
	case SMTP_REPLY_ERR_LINE_TOO_LONG: return "reply line too long";
	case SMTP_REPLY_ERR_TOO_MANY_LINES: return "too many reply lines";
	case SMTP_REPLY_ERR_TOO_LONG: return "reply text too long";
	case SMTP_REPLY_ERR_STATE: return "reply parser used after the end";
	}
	return "unknown";
}

/* 1-3 digits, no leading garbage; returns the count or 0. */
static size_t smtp_reply_digits(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && i < 4 && isdigit((unsigned char)s[i]))
		i++;
	return (i >= 1 && i <= 3) ? i : 0;
}

/* RFC 3463: class "." subject "." detail, class 2/4/5 agreeing with the
 * reply code, followed by SP or the end of the line. */
static void smtp_reply_enhanced(struct smtp_reply *r, const char *t, size_t len)
{
	size_t n, pos = 0;
	int part;

	if (len < 5 || t[0] != '0' + (char)(r->code / 100) ||
	    (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return;
	pos = 2;
	for (part = 0; part < 2; part++) {
		n = smtp_reply_digits(t + pos, len - pos);
		if (n == 0)
			return;
		pos += n;
		if (part == 0) {
			if (pos >= len || t[pos] != '.')
				return;
			pos++;
		}
	}
	if (pos < len && t[pos] != ' ')
		return;
	memcpy(r->enhanced, t, pos);
	r->enhanced[pos] = '\0';
}

static enum smtp_reply_status smtp_reply_fail(struct smtp_reply *r, enum smtp_reply_status st)
{
	r->state = st;
	return st;
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	unsigned code;
	const char *text;
	size_t tlen, need, i;
	bool last;

	if (r->state != SMTP_REPLY_MORE)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_STATE);
	if (len > SMTP_REPLY_LINE_MAX)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_LINE_TOO_LONG);
	if (r->nlines >= SMTP_REPLY_LINES_MAX)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_TOO_MANY_LINES);
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || line[2] < '0' || line[2] > '9')
		return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);
	code = (unsigned)(line[0] - '0') * 100 + (unsigned)(line[1] - '0') * 10 +
	       (unsigned)(line[2] - '0');
	if (len == 3)
		last = true;	/* "250" alone: text is optional */
	else if (line[3] == ' ' || line[3] == '-')
		last = line[3] == ' ';
	else
		return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	for (i = 0; i < tlen; i++)
		if (text[i] == '\r' || text[i] == '\n' || text[i] == '\0')
			return smtp_reply_fail(r, SMTP_REPLY_ERR_SYNTAX);
	if (r->nlines > 0 && code != r->code)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_MISMATCH);
	need = tlen + (r->nlines > 0 ? 1 : 0);
	if (need > SMTP_REPLY_TEXT_MAX - r->text_len)
		return smtp_reply_fail(r, SMTP_REPLY_ERR_TOO_LONG);
	if (r->nlines == 0) {
		r->code = code;
		smtp_reply_enhanced(r, text, tlen);
	} else {
		r->text[r->text_len++] = '\n';
	}
	memcpy(r->text + r->text_len, text, tlen);
	r->text_len += tlen;
	r->text[r->text_len] = '\0';
	r->nlines++;
	r->state = last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
	return r->state;
}

static bool smtp_word_is(const char *w, size_t len, const char *kw)
{
	return strlen(kw) == len && ascii_ieq(w, kw, len);
}

static unsigned smtp_auth_mech_bit(const char *w, size_t len)
{
	if (smtp_word_is(w, len, "PLAIN"))
		return SMTP_AUTH_PLAIN;
	if (smtp_word_is(w, len, "LOGIN"))
		return SMTP_AUTH_LOGIN;
	if (smtp_word_is(w, len, "CRAM-MD5"))
		return SMTP_AUTH_CRAM_MD5;
	return SMTP_AUTH_OTHER;
}

/* One EHLO line "KEYWORD[ params]" or the legacy "AUTH=mech ...". */
static void smtp_ehlo_line(struct smtp_ehlo_caps *c, const char *s, size_t len)
{
	size_t kw = 0, p;

	while (kw < len && s[kw] != ' ' && s[kw] != '=')
		kw++;
	p = kw < len ? kw + 1 : len;
	if (smtp_word_is(s, kw, "PIPELINING")) {
		c->pipelining = true;
	} else if (smtp_word_is(s, kw, "SIZE")) {
		uint64_t v;

		c->size = true;
		if (p < len && parse_u64(s + p, len - p, 0, UINT64_MAX, &v))
			c->size_max = v;
	} else if (smtp_word_is(s, kw, "8BITMIME")) {
		c->eightbitmime = true;
	} else if (smtp_word_is(s, kw, "STARTTLS")) {
		c->starttls = true;
	} else if (smtp_word_is(s, kw, "DSN")) {
		c->dsn = true;
	} else if (smtp_word_is(s, kw, "ENHANCEDSTATUSCODES")) {
		c->enhancedstatuscodes = true;
	} else if (smtp_word_is(s, kw, "SMTPUTF8")) {
		c->smtputf8 = true;
	} else if (smtp_word_is(s, kw, "CHUNKING")) {
		c->chunking = true;
	} else if (smtp_word_is(s, kw, "BINARYMIME")) {
		c->binarymime = true;
	} else if (smtp_word_is(s, kw, "AUTH")) {
		c->auth = true;
		while (p < len) {
			size_t e = p;

			while (e < len && s[e] != ' ')
				e++;
			if (e > p)
				c->auth_mechs |= smtp_auth_mech_bit(s + p, e - p);
			p = e + 1;
		}
	}
}

bool smtp_ehlo_caps(const struct smtp_reply *r, struct smtp_ehlo_caps *caps)
{
	const char *s, *end, *nl;

	memset(caps, 0, sizeof(*caps));
	if (r->state != SMTP_REPLY_DONE || r->code != 250)
		return false;
	s = memchr(r->text, '\n', r->text_len);
	if (s == NULL)
		return true;	/* greeting only: plain ESMTP, no extensions */
	end = r->text + r->text_len;
	for (s++; s < end; s = nl + 1) {
		nl = memchr(s, '\n', (size_t)(end - s));
		if (nl == NULL)
			nl = end;
		smtp_ehlo_line(caps, s, (size_t)(nl - s));
	}
	return true;
}
