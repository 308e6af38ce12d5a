/*
 * dkim_canon.c - RFC 6376 3.4.1 to 3.4.4: header and body
 * canonicalization, simple and relaxed; the body form streamed.
 */
#include "proto/dkim_canon.h"

#include "core/util.h"

#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* 3.4.1: the field unchanged, but with CRLF line ends. */
static void header_simple(const char *f, size_t len, dkim_emit_fn emit, void *arg)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		if (f[i] != '\n' || (i > 0 && f[i - 1] == '\r'))
			continue;
		emit(arg, f + start, i - start);
		emit(arg, "\r\n", 2);
		start = i + 1;
	}
	emit(arg, f + start, len - start);
}

/* 3.4.2: name in lower case, no WSP around the colon, value unfolded,
 * WSP runs as one SP, none at either end of the value. */
static void header_relaxed(const char *f, size_t len, dkim_emit_fn emit, void *arg)
{
	char buf[256];
	size_t n = 0, i = 0, name_end;
	bool wsp = false, any = false;
	const char *colon = memchr(f, ':', len);

	name_end = colon ? (size_t)(colon - f) : len;
	while (name_end > 0 && is_wsp(f[name_end - 1]))
		name_end--;
	for (; i < name_end; i++) {
		if (n == sizeof buf) {
			emit(arg, buf, n);
			n = 0;
		}
		buf[n++] = ascii_lower(f[i]);
	}
	if (!colon) {
		emit(arg, buf, n);
		return;
	}
	if (n == sizeof buf) {
		emit(arg, buf, n);
		n = 0;
	}
	buf[n++] = ':';
	for (i = (size_t)(colon - f) + 1; i < len; i++) {
		char c = f[i];
		if (c == '\r' || c == '\n')
			continue; /* unfolding */
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (n + 2 > sizeof buf) {
			emit(arg, buf, n);
			n = 0;
		}
		if (wsp && any)
			buf[n++] = ' ';
		wsp = false;
		any = true;
		buf[n++] = c;
	}
	emit(arg, buf, n);
}

void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool crlf, dkim_emit_fn emit, void *arg)
{
	if (c == DKIM_CANON_SIMPLE)
		header_simple(field, len, emit, arg);
	else
		header_relaxed(field, len, emit, arg);
	if (crlf)
		emit(arg, "\r\n", 2);
}

void dkim_body_init(struct dkim_body *b, enum dkim_canon c, bool has_limit, uint64_t limit, dkim_emit_fn emit,
		    void *arg)
{
	memset(b, 0, sizeof *b);
	b->c = c;
	b->has_limit = has_limit;
	b->limit = limit;
	b->emit = emit;
	b->arg = arg;
}

static void body_flush(struct dkim_body *b)
{
	size_t n = b->out_len;

	b->out_len = 0;
	if (b->has_limit) {
		uint64_t before = b->total - n, room = before < b->limit ? b->limit - before : 0;
		if (n > room)
			n = (size_t)room;
	}
	if (n > 0)
		b->emit(b->arg, b->out, n);
}

static void body_put(struct dkim_body *b, const char *p, size_t n)
{
	while (n > 0) {
		size_t k;
		if (b->out_len == sizeof b->out)
			body_flush(b);
		k = sizeof b->out - b->out_len < n ? sizeof b->out - b->out_len : n;
		memcpy(b->out + b->out_len, p, k);
		b->out_len += k;
		b->total += k;
		p += k;
		n -= k;
	}
}

/* Line content (n octets, none of them CR, LF or - relaxed - white
 * space, except a bare CR alone): the empty lines held back were not
 * trailing after all. */
static void body_content(struct dkim_body *b, const char *p, size_t n)
{
	if (!b->content) {
		for (; b->blank > 0; b->blank--)
			body_put(b, "\r\n", 2);
		b->content = true;
	}
	if (b->wsp)
		body_put(b, " ", 1);
	b->wsp = false;
	body_put(b, p, n);
}

/* How many octets from p on are plain content: the run that goes out
 * as it is, in one piece rather than one call per octet. */
static size_t body_plain_run(const struct dkim_body *b, const char *p, size_t n)
{
	size_t i = 0;

	if (b->c == DKIM_CANON_RELAXED)
		while (i < n && p[i] != '\r' && p[i] != '\n' && !is_wsp(p[i]))
			i++;
	else
		while (i < n && p[i] != '\r' && p[i] != '\n')
			i++;
	return i;
}

static void body_eol(struct dkim_body *b)
{
	if (b->content)
		body_put(b, "\r\n", 2);
	else
		b->blank++;
	b->content = b->wsp = false;
}

void dkim_body_feed(struct dkim_body *b, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				body_eol(b);
				continue;
			}
			body_content(b, "\r", 1); /* a bare CR is line content */
		}
		if (c == '\r') {
			b->cr = true;
		} else if (c == '\n') {
			body_eol(b);
		} else if (b->c == DKIM_CANON_RELAXED && is_wsp(c)) {
			b->wsp = true;
		} else {
			size_t run = body_plain_run(b, buf + i, len - i);
			body_content(b, buf + i, run);
			i += run - 1;
		}
	}
}

void dkim_body_finish(struct dkim_body *b)
{
	if (b->cr) {
		b->cr = false;
		body_content(b, "\r", 1);
	}
	/* 3.4.3 and 3.4.4: a last line without its CRLF gets one; simple
	 * makes an empty body a single CRLF, relaxed leaves it empty. */
	if (b->content)
		body_eol(b);
	else if (b->c == DKIM_CANON_SIMPLE && b->total == 0)
		body_put(b, "\r\n", 2);
	body_flush(b);
}
