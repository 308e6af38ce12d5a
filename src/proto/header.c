/*
 * header.c - RFC 5322 header section scanning and unfolding (§2.2, §2.2.3,
 * §3.6, obsolete field syntax of §4.5).
 *
 * The scan is a byte-at-a-time state machine that keeps only the first
 * HEADER_NAME_KEEP octets of a field name, so it runs in constant memory
 * over input split anywhere.
 */
#include "proto/header.h"

#include "core/util.h"

#include <stdint.h>
#include <string.h>

enum hs_state {
	HS_LINE_START,	/* at the start of a header line */
	HS_NAME,	/* in a field name */
	HS_NAME_WSP,	/* white space after the field name, before ':' */
	HS_VALUE,	/* in a field body (or continuation line) */
	HS_BODY,	/* past the header section */
};

void header_scan_init(struct header_scan *h)
{
	memset(h, 0, sizeof(*h));
	h->in_headers = true;
	h->state = HS_LINE_START;
}

static bool is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static bool name_is(const struct header_scan *h, const char *want)
{
	size_t n = strlen(want);
	return h->name_len == n && ascii_ieq(h->name, want, n);
}

static void header_field_done(struct header_scan *h)
{
	h->have_field = true;
	if (name_is(h, "Received"))
		h->received++;
	else if (name_is(h, "Date"))
		h->has_date = true;
	else if (name_is(h, "Message-ID"))
		h->has_message_id = true;
	else if (name_is(h, "From"))
		h->has_from = true;
}

static void header_end(struct header_scan *h)
{
	h->in_headers = false;
	h->state = HS_BODY;
}

static void header_step(struct header_scan *h, unsigned char c)
{
	switch (h->state) {
	case HS_LINE_START:
		if (c == ' ' || c == '\t') {
			if (h->have_field)
				h->state = HS_VALUE;
			else
				header_end(h);
		} else if (is_ftext(c)) {
			h->state = HS_NAME;
			h->name_len = 0;
			h->name[h->name_len++] = (char)c;
		} else {
			header_end(h);	/* the empty line, or not a field */
		}
		break;
	case HS_NAME:
		if (c == ':') {
			header_field_done(h);
			h->state = HS_VALUE;
		} else if (c == ' ' || c == '\t') {
			h->state = HS_NAME_WSP;
		} else if (is_ftext(c)) {
			if (h->name_len < HEADER_NAME_KEEP)
				h->name[h->name_len] = (char)c;
			if (h->name_len <= HEADER_NAME_KEEP)
				h->name_len++;	/* > KEEP: matches no known name */
		} else {
			header_end(h);
		}
		break;
	case HS_NAME_WSP:
		if (c == ':') {
			header_field_done(h);
			h->state = HS_VALUE;
		} else if (c != ' ' && c != '\t') {
			header_end(h);
		}
		break;
	case HS_VALUE:
		if (c == '\n')
			h->state = HS_LINE_START;
		break;
	default:
		break;
	}
}

/* Well-formedness of the header section's 8-bit octets, one octet at a
 * time (RFC 3629 §4, the table of smtp_parse's utf8_char_len). */
static void header_utf8_step(struct header_scan *h, unsigned char c)
{
	if (h->u8_need > 0) {
		if (c >= h->u8_lo && c <= h->u8_hi) {
			h->u8_need--;
			h->u8_lo = 0x80;
			h->u8_hi = 0xBF;
			return;
		}
		h->u8_bad = true;
		h->u8_need = 0;
	}
	if (c < 0x80)
		return;
	h->u8_lo = 0x80;
	h->u8_hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		h->u8_need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		h->u8_need = 2;
		if (c == 0xE0)
			h->u8_lo = 0xA0;
		else if (c == 0xED)
			h->u8_hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		h->u8_need = 3;
		if (c == 0xF0)
			h->u8_lo = 0x90;
		else if (c == 0xF4)
			h->u8_hi = 0x8F;
	} else {
		h->u8_bad = true;
	}
}

bool header_scan_utf8(const struct header_scan *h)
{
	return h->eight_bit_headers && !h->u8_bad && h->u8_need == 0;
}

/* Whether any octet of p[0..len) has its high bit set, a word at a time. */
static bool any_8bit(const char *p, size_t len)
{
	const uint64_t high = 0x8080808080808080u;
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= (unsigned char)p[i];
	return (acc & high) != 0;
}

void header_scan_feed(struct header_scan *h, const char *buf, size_t len)
{
	size_t i = 0;

	for (; i < len && h->state != HS_BODY; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c >= 0x80)
			h->eight_bit = h->eight_bit_headers = true;
		header_utf8_step(h, c);
		header_step(h, c);
	}
	/* In the body only an 8-bit octet matters, and only the first. */
	if (i < len && !h->eight_bit)
		h->eight_bit = any_8bit(buf + i, len - i);
}

size_t header_unfold(const char *in, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		size_t eol = 0;
		if (in[i] == '\n')
			eol = 1;
		else if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			eol = 2;
		if (eol > 0 && i + eol < len && (in[i + eol] == ' ' || in[i + eol] == '\t'))
			i += eol;	/* the fold goes; the WSP stays */
		if (n + 1 >= cap) {
			if (cap > 0)
				out[0] = '\0';
			return 0;
		}
		out[n++] = in[i];
	}
	if (cap == 0)
		return 0;
	out[n] = '\0';
	return n;
}
