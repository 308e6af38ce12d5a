/*
 * imap_utf7.c - modified UTF-7 <-> UTF-8 for mailbox names (RFC 3501
 * section 5.1.3), the name checks, and the Maildir++ directory mapping.
 * See imap_utf7.h for what "strict" refuses and why.
 */
#include "proto/imap_utf7.h"

#include <stdint.h>
#include <string.h>

#include "core/util.h"
#include "proto/base64.h"

/* Modified base64 (RFC 3501 5.1.3): base64's alphabet with ',' for '/',
 * no padding. */
#define UTF7_C63 ','

struct out {
	char *p;
	size_t cap, n;
	bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->overflow || n >= o->cap - o->n) {
		o->overflow = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void put_utf8(struct out *o, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18));
		b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	put(o, b, n);
}

static enum imap_utf7_err finish(struct out *o, size_t *olen)
{
	if (o->overflow || o->cap == 0)
		return IMAP_UTF7_TOO_LONG;
	o->p[o->n] = '\0';
	*olen = o->n;
	return IMAP_UTF7_OK;
}

/* Decode the base64 run in[i..e) (between '&' and '-') as UTF-16BE. */
static enum imap_utf7_err decode_run(const char *in, size_t i, size_t e, struct out *o)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	for (size_t k = i; k < e; k++) {
		int v = base64_digit_value((unsigned char)in[k], UTF7_C63);
		if (v < 0)
			return IMAP_UTF7_BAD_BASE64;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		if (high != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return IMAP_UTF7_SURROGATE;
			put_utf8(o, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return IMAP_UTF7_SURROGATE;
		} else if (u >= 0x20 && u <= 0x7e) {
			return IMAP_UTF7_NON_CANONICAL; /* would be written as itself */
		} else {
			put_utf8(o, u);
		}
	}
	if (high != 0)
		return IMAP_UTF7_SURROGATE;
	/* RFC 4648 section 3.5 applied to the 16-bit units: fewer than 6
	 * leftover bits, all zero. */
	if (nbits >= 6 || bits != 0)
		return IMAP_UTF7_NON_CANONICAL;
	if (e == i)
		return IMAP_UTF7_NON_CANONICAL;
	return IMAP_UTF7_OK;
}

enum imap_utf7_err imap_utf7_to_utf8(const char *in, size_t len, char *out, size_t cap,
				     size_t *olen)
{
	struct out o = { out, cap, 0, false };
	bool after_run = false;
	size_t i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c > 0x7e)
			return IMAP_UTF7_BAD_CHAR;
		if (c != '&') {
			put(&o, (const char *)&c, 1);
			after_run = false;
			i++;
			continue;
		}
		const char *dash = memchr(in + i + 1, '-', len - i - 1);
		if (dash == NULL)
			return IMAP_UTF7_BAD_BASE64;
		size_t e = (size_t)(dash - in);
		if (e == i + 1) {
			put(&o, "&", 1);
			after_run = false;
		} else {
			/* "&AOk-&AOk-" must have been "&AOkA6Q-" */
			if (after_run)
				return IMAP_UTF7_NON_CANONICAL;
			enum imap_utf7_err err = decode_run(in, i + 1, e, &o);
			if (err != IMAP_UTF7_OK)
				return err;
			after_run = true;
		}
		i = e + 1;
	}
	return finish(&o, olen);
}

bool imap_utf7_valid(const char *in, size_t len)
{
	char buf[4 * IMAP_MAILBOX_MAX + 1];
	size_t n;
	if (len > IMAP_MAILBOX_MAX)
		return false;
	return imap_utf7_to_utf8(in, len, buf, sizeof(buf), &n) == IMAP_UTF7_OK;
}

/* One code point from UTF-8 at in[*i] (strict, RFC 3629: no overlongs,
 * surrogates or values past U+10FFFF); *i moves past it. */
static bool utf8_next(const char *in, size_t len, size_t *i, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)in + *i;
	size_t n = len - *i, need;
	uint32_t v;
	if (s[0] < 0x80) {
		*cp = s[0];
		*i += 1;
		return true;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		v = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		v = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		v = s[0] & 0x07;
	} else {
		return false;
	}
	if (n < need)
		return false;
	for (size_t k = 1; k < need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return false;
		v = (v << 6) | (s[k] & 0x3f);
	}
	if ((need == 3 && v < 0x800) || (need == 4 && (v < 0x10000 || v > 0x10ffff)) ||
	    (v >= 0xd800 && v <= 0xdfff))
		return false;
	*cp = v;
	*i += need;
	return true;
}

static void put_b64_unit(struct out *o, uint32_t u, uint32_t *bits, unsigned *nbits)
{
	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		char d = base64_digit((*bits >> *nbits) & 0x3f, UTF7_C63);
		put(o, &d, 1);
	}
	*bits &= (1u << *nbits) - 1;
}

enum imap_utf7_err imap_utf8_to_utf7(const char *in, size_t len, char *out, size_t cap,
				     size_t *olen)
{
	struct out o = { out, cap, 0, false };
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		if (!utf8_next(in, len, &i, &cp))
			return IMAP_UTF7_BAD_UTF8;
		if (cp >= 0x20 && cp <= 0x7e) {
			char c = (char)cp;
			put(&o, c == '&' ? "&-" : &c, c == '&' ? 2 : 1);
			continue;
		}
		if (cp < 0x20 || cp == 0x7f)
			return IMAP_UTF7_BAD_UTF8;
		/* a run of characters that are not printable ASCII */
		uint32_t bits = 0;
		unsigned nbits = 0;
		put(&o, "&", 1);
		for (;;) {
			if (cp >= 0x10000) {
				put_b64_unit(&o, 0xd800 + ((cp - 0x10000) >> 10), &bits, &nbits);
				put_b64_unit(&o, 0xdc00 + ((cp - 0x10000) & 0x3ff), &bits, &nbits);
			} else {
				put_b64_unit(&o, cp, &bits, &nbits);
			}
			if (i >= len)
				break;
			size_t j = i;
			uint32_t next;
			if (!utf8_next(in, len, &j, &next))
				return IMAP_UTF7_BAD_UTF8;
			if ((next >= 0x20 && next <= 0x7e) || next < 0x20 || next == 0x7f)
				break;
			i = j;
			cp = next;
		}
		if (nbits > 0) {
			char d = base64_digit((bits << (6 - nbits)) & 0x3f, UTF7_C63);
			put(&o, &d, 1);
		}
		put(&o, "-", 1);
	}
	return finish(&o, olen);
}

bool imap_mailbox_is_inbox(const char *name, size_t len)
{
	return len == 5 && ascii_ieq(name, "INBOX", 5);
}

enum imap_utf7_err imap_mailbox_check(const char *utf8, size_t len)
{
	size_t i = 0, level_start = 0;
	unsigned levels = 1;
	if (len == 0)
		return IMAP_UTF7_BAD_NAME;
	while (i <= len) {
		if (i == len || utf8[i] == IMAP_MAILBOX_DELIM) {
			size_t n = i - level_start;
			if (n == 0 || (n == 1 && utf8[level_start] == '.') ||
			    (n == 2 && utf8[level_start] == '.' && utf8[level_start + 1] == '.'))
				return IMAP_UTF7_BAD_NAME;
			if (i == len)
				break;
			if (++levels > IMAP_MAILBOX_DEPTH)
				return IMAP_UTF7_BAD_NAME;
			level_start = ++i;
			continue;
		}
		uint32_t cp;
		if (!utf8_next(utf8, len, &i, &cp) || cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp < 0xa0))
			return IMAP_UTF7_BAD_UTF8;
	}
	return IMAP_UTF7_OK;
}

enum imap_utf7_err imap_maildir_from_mailbox(const char *mutf7, size_t len, char *out,
					     size_t cap, size_t *olen)
{
	char utf8[4 * IMAP_MAILBOX_MAX + 1];
	size_t ulen;
	struct out o = { out, cap, 0, false };
	if (len > IMAP_MAILBOX_MAX)
		return IMAP_UTF7_TOO_LONG;
	enum imap_utf7_err e = imap_utf7_to_utf8(mutf7, len, utf8, sizeof(utf8), &ulen);
	if (e != IMAP_UTF7_OK)
		return e;
	if ((e = imap_mailbox_check(utf8, ulen)) != IMAP_UTF7_OK)
		return e;
	if (imap_mailbox_is_inbox(mutf7, len))
		return finish(&o, olen);
	put(&o, ".", 1);
	for (size_t i = 0; i < len; i++) {
		if (mutf7[i] == IMAP_MAILBOX_DELIM)
			put(&o, ".", 1);
		else if (mutf7[i] == '.')
			put(&o, "&AC4-", 5);
		else
			put(&o, mutf7 + i, 1);
	}
	return finish(&o, olen);
}

enum imap_utf7_err imap_mailbox_from_maildir(const char *dir, size_t len, char *out,
					     size_t cap, size_t *olen)
{
	struct out o = { out, cap, 0, false };
	if (len < 2 || dir[0] != '.')
		return IMAP_UTF7_BAD_NAME;
	for (size_t i = 1; i < len; i++) {
		if (dir[i] == '/')
			return IMAP_UTF7_BAD_NAME;
		if (dir[i] == '.')
			put(&o, "/", 1);
		else if (len - i >= 5 && memcmp(dir + i, "&AC4-", 5) == 0) {
			put(&o, ".", 1);
			i += 4;
		} else
			put(&o, dir + i, 1);
	}
	enum imap_utf7_err e = finish(&o, olen);
	if (e != IMAP_UTF7_OK)
		return e;
	/* the result must be a name that maps back to this very directory */
	char back[IMAP_MAILDIR_MAX + 1];
	size_t blen;
	if (imap_maildir_from_mailbox(out, *olen, back, sizeof(back), &blen) != IMAP_UTF7_OK ||
	    blen != len || memcmp(back, dir, len) != 0)
		return IMAP_UTF7_BAD_NAME;
	return IMAP_UTF7_OK;
}

const char *imap_utf7_strerror(enum imap_utf7_err e)
{
	switch (e) {
	case IMAP_UTF7_OK: return "No error";
	case IMAP_UTF7_BAD_CHAR: return "Invalid character in mailbox name";
	case IMAP_UTF7_BAD_BASE64: return "Invalid modified UTF-7 in mailbox name";
	case IMAP_UTF7_NON_CANONICAL: return "Non-canonical modified UTF-7 in mailbox name";
	case IMAP_UTF7_SURROGATE: return "Unpaired surrogate in mailbox name";
	case IMAP_UTF7_BAD_UTF8: return "Invalid UTF-8 in mailbox name";
	case IMAP_UTF7_TOO_LONG: return "Mailbox name too long";
	case IMAP_UTF7_BAD_NAME: return "Invalid mailbox name";
	}
	return "Unknown error";
}
