/*
 * imap_write.c - strings, flags and sequence sets as IMAP responses write
 * them (RFC 9051 section 4.3 and 9).  The string form is chosen by
 * content: an atom when every octet is an ASTRING-CHAR, a quoted string
 * when every octet is a TEXT-CHAR (UTF-8 too once UTF8=ACCEPT is on,
 * RFC 6855 section 3), and a literal otherwise or past IMAP_QUOTED_MAX, so
 * no input can break the response syntax.
 */
#include "proto/imap_write.h"

#include <event2/buffer.h>
#include <string.h>

static bool is_astring_char(unsigned char c)
{
	/* ATOM-CHAR / resp-specials: no atom-specials but ']' allowed */
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

static bool is_atom_char(unsigned char c)
{
	return is_astring_char(c) && c != ']';
}

/* Well-formed UTF-8 (RFC 3629) of any length, for quoted strings. */
static bool utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		uint32_t v;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 2;
			v = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 3;
			v = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 4;
			v = c & 0x07;
		} else {
			return false;
		}
		if (len - i < need)
			return false;
		for (size_t k = 1; k < need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			v = (v << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 3 && v < 0x800) || (need == 4 && (v < 0x10000 || v > 0x10ffff)) ||
		    (v >= 0xd800 && v <= 0xdfff))
			return false;
		i += need;
	}
	return true;
}

enum imap_str_kind imap_str_kind(const char *s, size_t len, bool atom_ok, bool utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	bool atom = atom_ok && len > 0 && !(len == 3 && (s[0] | 0x20) == 'n' &&
					   (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l');
	bool eight = false;
	if (len > IMAP_QUOTED_MAX)
		return IMAP_STR_LITERAL;
	for (size_t i = 0; i < len; i++) {
		if (u[i] == '\0' || u[i] == '\r' || u[i] == '\n')
			return IMAP_STR_LITERAL;
		if (u[i] >= 0x80)
			eight = true;
		if (!is_astring_char(u[i]))
			atom = false;
	}
	if (atom)
		return IMAP_STR_ATOM;
	if (eight && (!utf8 || !utf8_ok(u, len)))
		return IMAP_STR_LITERAL;
	return IMAP_STR_QUOTED;
}

static void write_kind(struct evbuffer *b, const char *s, size_t len, enum imap_str_kind k)
{
	switch (k) {
	case IMAP_STR_ATOM:
		evbuffer_add(b, s, len);
		break;
	case IMAP_STR_QUOTED: {
		size_t start = 0;
		evbuffer_add(b, "\"", 1);
		for (size_t i = 0; i < len; i++) {
			if (s[i] != '"' && s[i] != '\\')
				continue;
			evbuffer_add(b, s + start, i - start);
			evbuffer_add(b, "\\", 1);
			start = i;
		}
		evbuffer_add(b, s + start, len - start);
		evbuffer_add(b, "\"", 1);
		break;
	}
	case IMAP_STR_LITERAL:
		evbuffer_add_printf(b, "{%zu}\r\n", len);
		evbuffer_add(b, s, len);
		break;
	}
}

void imap_write_astring(struct evbuffer *b, const char *s, size_t len, bool utf8)
{
	write_kind(b, s, len, imap_str_kind(s, len, true, utf8));
}

void imap_write_string(struct evbuffer *b, const char *s, size_t len, bool utf8)
{
	write_kind(b, s, len, imap_str_kind(s, len, false, utf8));
}

void imap_write_nstring(struct evbuffer *b, const char *s, size_t len, bool utf8)
{
	if (s == NULL)
		evbuffer_add(b, "NIL", 3);
	else
		imap_write_string(b, s, len, utf8);
}

bool imap_keyword_valid(const char *kw, size_t len)
{
	if (len == 0 || len > IMAP_KEYWORD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_atom_char((unsigned char)kw[i]))
			return false;
	return true;
}

void imap_write_flags(struct evbuffer *b, unsigned flags, const char *const *keywords,
		      size_t nkeywords)
{
	static const struct {
		unsigned bit;
		const char *name;
	} sys[] = {
		{ IMAP_FLAG_SEEN, "\\Seen" },       { IMAP_FLAG_ANSWERED, "\\Answered" },
		{ IMAP_FLAG_FLAGGED, "\\Flagged" }, { IMAP_FLAG_DELETED, "\\Deleted" },
		{ IMAP_FLAG_DRAFT, "\\Draft" },     { IMAP_FLAG_RECENT, "\\Recent" },
	};
	bool first = true;
	evbuffer_add(b, "(", 1);
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (!(flags & sys[i].bit))
			continue;
		evbuffer_add_printf(b, "%s%s", first ? "" : " ", sys[i].name);
		first = false;
	}
	for (size_t i = 0; i < nkeywords; i++) {
		size_t len = strlen(keywords[i]);
		if (!imap_keyword_valid(keywords[i], len))
			continue;
		if (!first)
			evbuffer_add(b, " ", 1);
		evbuffer_add(b, keywords[i], len);
		first = false;
	}
	evbuffer_add(b, ")", 1);
}

bool imap_write_seqset(struct evbuffer *b, const uint32_t *nums, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 1; i < n; i++)
		if (nums[i] < nums[i - 1])
			return false;
	size_t i = 0;
	bool first = true;
	while (i < n) {
		uint32_t lo = nums[i], hi = lo;
		i++;
		while (i < n && (nums[i] == hi || (hi < UINT32_MAX && nums[i] == hi + 1)))
			hi = nums[i++];
		if (lo == hi)
			evbuffer_add_printf(b, "%s%u", first ? "" : ",", lo);
		else
			evbuffer_add_printf(b, "%s%u:%u", first ? "" : ",", lo, hi);
		first = false;
	}
	return true;
}
