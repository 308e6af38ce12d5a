/*
 * spf_record.c - RFC 7208 record syntax (4.5, 5, 6, 12) and macro
 * expansion (7), of domain-specs and of the explanation text an exp=
 * modifier points to (6.2).
 */
#include "proto/spf_record.h"

#include "core/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

bool spf_is_record(const char *txt, size_t len)
{
	return len >= 6 && ascii_ieq(txt, "v=spf1", 6) && (len == 6 || txt[6] == ' ');
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 7.1 macro-string: visible characters, '%' escapes checked. */
static bool macro_string_ok(struct spf_span s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c < 0x21 || c > 0x7e)
			return false;
		if (c != '%')
			continue;
		if (++i == s.len)
			return false;
		if (s.p[i] == '%' || s.p[i] == '_' || s.p[i] == '-')
			continue;
		if (s.p[i] != '{')
			return false;
		while (i < s.len && s.p[i] != '}')
			i++;
		if (i == s.len)
			return false;
	}
	return true;
}

static bool parse_cidr(const char **p, const char *end, unsigned max, unsigned *out)
{
	uint64_t v;
	const char *s = *p;

	while (*p < end && is_digit(**p))
		(*p)++;
	/* 4.6.1: no leading zeros */
	if (*p == s || (*p - s > 1 && *s == '0') || !parse_u64(s, (size_t)(*p - s), 0, max, &v))
		return false;
	*out = (unsigned)v;
	return true;
}

/* [ "/" ip4-cidr ] [ "//" ip6-cidr ] at the end of a domain-spec. */
static bool dual_cidr(struct spf_span *dom, struct spf_term *t)
{
	const char *end = dom->p + dom->len, *slash = NULL;

	for (const char *q = dom->p; q < end; q++)
		if (*q == '/') {
			slash = q;
			break;
		}
	if (!slash)
		return true;
	dom->len = (size_t)(slash - dom->p);
	if (slash + 1 < end && slash[1] != '/') {
		const char *q = slash + 1;
		if (!parse_cidr(&q, end, 32, &t->cidr4))
			return false;
		slash = q;
		if (slash == end)
			return true;
		if (*slash != '/')
			return false;
	}
	if (end - slash < 3 || slash[1] != '/')
		return false;
	{
		const char *q = slash + 2;
		return parse_cidr(&q, end, 128, &t->cidr6) && q == end;
	}
}

static bool parse_ip(struct spf_term *t, struct spf_span v, bool six)
{
	char buf[64];
	const char *slash = memchr(v.p, '/', v.len);
	size_t alen = slash ? (size_t)(slash - v.p) : v.len;

	if (alen == 0 || alen >= sizeof buf)
		return false;
	memcpy(buf, v.p, alen);
	buf[alen] = '\0';
	if (inet_pton(six ? AF_INET6 : AF_INET, buf, t->addr) != 1)
		return false;
	if (slash) {
		const char *q = slash + 1, *end = v.p + v.len;
		if (!parse_cidr(&q, end, six ? 128 : 32, six ? &t->cidr6 : &t->cidr4) || q != end)
			return false;
	}
	return true;
}

static const struct {
	const char *name;
	enum spf_mech mech;
	int domain; /* 0 none, 1 optional, 2 required */
	bool cidr;
} mechs[] = {
	{ "all", SPF_ALL, 0, false },        { "include", SPF_INCLUDE, 2, false }, { "a", SPF_A, 1, true },
	{ "mx", SPF_MX, 1, true },           { "ptr", SPF_PTR, 1, false },         { "ip4", SPF_IP4, 2, false },
	{ "ip6", SPF_IP6, 2, false },        { "exists", SPF_EXISTS, 2, false },
};

static bool parse_mech(struct spf_term *t, const char *p, size_t len, const char **reason)
{
	size_t nl = 0;
	struct spf_span arg = { NULL, 0 };

	while (nl < len && (is_alpha(p[nl]) || is_digit(p[nl])) && nl < 8)
		nl++;
	for (size_t k = 0; k < ARRAY_LEN(mechs); k++) {
		if (strlen(mechs[k].name) != nl || !ascii_ieq(p, mechs[k].name, nl))
			continue;
		t->mech = mechs[k].mech;
		t->cidr4 = 32;
		t->cidr6 = 128;
		if (nl < len && p[nl] == ':') {
			arg.p = p + nl + 1;
			arg.len = len - nl - 1;
			if (mechs[k].domain == 0 || arg.len == 0)
				return *reason = "bad mechanism argument", false;
		} else if (nl < len && p[nl] == '/' && mechs[k].cidr) {
			arg.p = p + nl;
			arg.len = len - nl;
		} else if (nl < len || mechs[k].domain == 2) {
			return *reason = "bad mechanism", false;
		}
		if (t->mech == SPF_IP4 || t->mech == SPF_IP6) {
			if (!parse_ip(t, arg, t->mech == SPF_IP6))
				return *reason = "bad ip4/ip6 address", false;
			return true;
		}
		if (mechs[k].cidr && arg.len && !dual_cidr(&arg, t))
			return *reason = "bad CIDR length", false;
		if (arg.p && arg.p[0] != '/' && (arg.len == 0 || !macro_string_ok(arg)))
			return *reason = "bad domain-spec", false;
		if (arg.p && arg.p[0] == '/')
			arg.len = 0;
		t->domain = arg;
		return true;
	}
	return *reason = "unknown mechanism", false;
}

static bool parse_modifier(struct spf_record *rec, const char *p, size_t len, size_t eq, const char **reason)
{
	struct spf_span v = { p + eq + 1, len - eq - 1 };

	for (size_t i = 1; i < eq; i++)
		if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '-' && p[i] != '_' && p[i] != '.')
			return *reason = "bad modifier name", false;
	if (!macro_string_ok(v))
		return *reason = "bad modifier value", false;
	if (eq == 8 && ascii_ieq(p, "redirect", 8)) {
		if (rec->has_redirect || v.len == 0)
			return *reason = "bad or repeated redirect=", false;
		rec->redirect = v;
		rec->has_redirect = true;
	} else if (eq == 3 && ascii_ieq(p, "exp", 3)) {
		if (rec->has_exp || v.len == 0)
			return *reason = "bad or repeated exp=", false;
		rec->exp = v;
		rec->has_exp = true;
	}
	return true; /* unknown modifiers are ignored (6) */
}

bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec, const char **reason)
{
	size_t i = 6;

	memset(rec, 0, sizeof *rec);
	if (!spf_is_record(txt, len))
		return *reason = "not an SPF record", false;
	while (i < len) {
		size_t start, tl, eq = 0;
		const char *p;
		struct spf_term *t;

		while (i < len && txt[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && txt[i] != ' ')
			i++;
		p = txt + start;
		tl = i - start;
		if (is_alpha(p[0])) {
			while (eq < tl && (is_alpha(p[eq]) || is_digit(p[eq]) || p[eq] == '-' || p[eq] == '_' ||
					   p[eq] == '.'))
				eq++;
			if (eq < tl && p[eq] == '=') {
				if (!parse_modifier(rec, p, tl, eq, reason))
					return false;
				continue;
			}
		}
		if (rec->n == SPF_TERMS_MAX)
			return *reason = "too many terms", false;
		t = &rec->terms[rec->n++];
		t->qual = SPF_Q_PASS;
		if (strchr("+-~?", p[0])) {
			t->qual = (enum spf_qual)p[0];
			p++;
			tl--;
		}
		if (!parse_mech(t, p, tl, reason))
			return false;
	}
	return true;
}

/* --- macros (7) --- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool overflow;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n >= b->cap) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void ip_text(const struct spf_macro_ctx *c, bool dotted, char *out, size_t cap)
{
	if (c->family == AF_INET) {
		snprintf(out, cap, "%u.%u.%u.%u", c->ip[0], c->ip[1], c->ip[2], c->ip[3]);
		return;
	}
	if (!dotted) {
		inet_ntop(AF_INET6, c->ip, out, (socklen_t)cap);
		return;
	}
	/* 7.3: %{i} of IPv6 is dot-separated nibbles, upper case as in
	 * 7.4's example (names do not care; an explanation shows it) */
	for (size_t k = 0, n = 0; k < 16 && n + 4 < cap; k++)
		n += (size_t)snprintf(out + n, cap - n, "%s%X.%X", k ? "." : "", c->ip[k] >> 4, c->ip[k] & 15);
}

/* One %{...} body: letter, digits, 'r', delimiters (7.1); c, r and t
 * only in an explanation. */
static bool expand_one(struct sbuf *b, const char *m, size_t len, const struct spf_macro_ctx *c, bool explain)
{
	char val[1200], ipbuf[80];
	const char *v, *at;
	char letter = ascii_lower(m[0]);
	bool upper = m[0] >= 'A' && m[0] <= 'Z', rev = false;
	uint64_t keep = 0;
	size_t i = 1, ds;
	char delims[8] = "";
	const char *parts[128];
	size_t plen[128], np = 0;

	switch (letter) {
	case 's': v = c->sender; break;
	case 'l':
		at = strrchr(c->sender, '@');
		snprintf(val, sizeof val, "%.*s", at ? (int)(at - c->sender) : 0, c->sender);
		v = val[0] ? val : "postmaster";
		break;
	case 'o':
		at = strrchr(c->sender, '@');
		v = at ? at + 1 : c->sender;
		break;
	case 'd': v = c->domain; break;
	case 'i': ip_text(c, true, ipbuf, sizeof ipbuf); v = ipbuf; break;
	case 'p': v = "unknown"; break; /* 7.3: validation not done */
	case 'v': v = c->family == AF_INET ? "in-addr" : "ip6"; break;
	case 'h': v = c->helo; break;
	case 'c':
		if (!explain)
			return false;
		ip_text(c, false, ipbuf, sizeof ipbuf);
		v = ipbuf;
		break;
	case 'r':
		if (!explain)
			return false;
		v = c->receiver && c->receiver[0] ? c->receiver : "unknown";
		break;
	case 't':
		if (!explain)
			return false;
		snprintf(ipbuf, sizeof ipbuf, "%llu", (unsigned long long)c->now);
		v = ipbuf;
		break;
	default: return false;
	}
	if (v != val) {
		snprintf(val, sizeof val, "%s", v);
		v = val;
	}
	ds = i;
	while (i < len && is_digit(m[i]))
		i++;
	if (i > ds && (!parse_u64(m + ds, i - ds, 1, 128, &keep)))
		return false;
	if (i < len && (m[i] == 'r' || m[i] == 'R')) {
		rev = true;
		i++;
	}
	for (size_t k = 0; i < len; i++) {
		if (!strchr(".-+,/_=", m[i]) || k == sizeof delims - 1)
			return false;
		delims[k++] = m[i];
		delims[k] = '\0';
	}
	if (!delims[0])
		strcpy(delims, ".");
	/* split on the delimiters */
	for (const char *s = val;;) {
		size_t n = strcspn(s, delims);
		if (np == ARRAY_LEN(parts))
			return false;
		parts[np] = s;
		plen[np++] = n;
		if (!s[n])
			break;
		s += n + 1;
	}
	{
		size_t first = 0, count = np;
		if (keep && keep < np)
			count = (size_t)keep;
		for (size_t k = 0; k < count; k++) {
			/* rightmost `count` parts, after reversing if asked */
			size_t idx = rev ? np - 1 - (np - count + k) : np - count + k;
			const char *s = parts[idx];
			(void)first;
			if (k)
				put(b, ".", 1);
			for (size_t j = 0; j < plen[idx]; j++) {
				unsigned char ch = (unsigned char)s[j];
				if (upper && !(is_alpha((char)ch) || is_digit((char)ch) || strchr("-._~", ch))) {
					char enc[4];
					snprintf(enc, sizeof enc, "%%%02X", ch);
					put(b, enc, 3);
				} else {
					put(b, (const char *)&ch, 1);
				}
			}
		}
	}
	return true;
}

static bool expand(const char *in, size_t len, const struct spf_macro_ctx *ctx, struct sbuf *b, bool explain)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch != '%') {
			/* macro-literal: visible ASCII; an explanation has SP too */
			if (ch > 0x7e || ch < 0x20 || (ch == ' ' && !explain))
				return false;
			put(b, in + i, 1);
			continue;
		}
		if (++i == len)
			return false;
		if (in[i] == '%')
			put(b, "%", 1);
		else if (in[i] == '_')
			put(b, " ", 1);
		else if (in[i] == '-')
			put(b, "%20", 3);
		else if (in[i] == '{') {
			const char *close = memchr(in + i, '}', len - i);
			if (!close || close == in + i + 1 ||
			    !expand_one(b, in + i + 1, (size_t)(close - in - i - 1), ctx, explain))
				return false;
			i = (size_t)(close - in);
		} else
			return false;
	}
	if (b->overflow)
		return false;
	b->p[b->len] = '\0';
	return true;
}

bool spf_macro_expand(const char *in, size_t len, const struct spf_macro_ctx *ctx, char *out, size_t cap)
{
	struct sbuf b = { out, 0, cap, false };

	if (cap == 0 || !expand(in, len, ctx, &b, false))
		return false;
	/* 7.3: over 253 octets, drop labels on the left */
	while (b.len > SPF_NAME_MAX) {
		char *dot = memchr(out, '.', b.len);
		if (!dot)
			return false;
		b.len -= (size_t)(dot + 1 - out);
		memmove(out, dot + 1, b.len + 1);
	}
	return true;
}

bool spf_explain_expand(const char *in, size_t len, const struct spf_macro_ctx *ctx, char *out, size_t cap)
{
	struct sbuf b = { out, 0, cap, false };

	return cap > 0 && expand(in, len, ctx, &b, true);
}
