/*
 * dkim_tags.c - DKIM tag lists (RFC 6376 3.2), the DKIM-Signature field
 * (3.5) and the DNS key record (3.6.1).  Algorithms as RFC 8301 and RFC
 * 8463 leave them: rsa-sha256 and ed25519-sha256; rsa-sha1 is refused.
 *
 * Folding whitespace is accepted with LF or CRLF line ends: tern's message
 * path carries LF, the wire CRLF.
 */
#include "proto/dkim_tags.h"

#include "core/util.h"
#include "proto/base64.h"

#include <stdlib.h>
#include <string.h>

static bool is_fws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* VALCHAR (3.2): printable ASCII except ";". */
static bool is_valchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

static size_t skip_fws(const char *in, size_t len, size_t i)
{
	while (i < len && is_fws((unsigned char)in[i]))
		i++;
	return i;
}

enum dkim_tags_err dkim_tags_parse(const char *in, size_t len, struct dkim_taglist *out)
{
	size_t i = 0;

	out->n = 0;
	for (;;) {
		struct dkim_tag t;
		size_t end;

		i = skip_fws(in, len, i);
		if (i == len)
			return DKIM_TAGS_OK; /* empty list, or a trailing ";" */
		if (!is_alpha((unsigned char)in[i]))
			return DKIM_TAGS_SYNTAX;
		t.name.p = in + i;
		while (i < len && (is_alpha((unsigned char)in[i]) || is_digit((unsigned char)in[i]) || in[i] == '_'))
			i++;
		t.name.len = (size_t)(in + i - t.name.p);
		i = skip_fws(in, len, i);
		if (i == len || in[i] != '=')
			return DKIM_TAGS_SYNTAX;
		i = skip_fws(in, len, i + 1);
		t.value.p = in + i;
		end = i;
		while (i < len && in[i] != ';') {
			unsigned char c = (unsigned char)in[i];
			if (is_valchar(c))
				end = i + 1;
			else if (!is_fws(c))
				return DKIM_TAGS_SYNTAX;
			i++;
		}
		t.value.len = end - (size_t)(t.value.p - in);
		for (size_t k = 0; k < out->n; k++)
			if (out->v[k].name.len == t.name.len && !memcmp(out->v[k].name.p, t.name.p, t.name.len))
				return DKIM_TAGS_DUPLICATE;
		if (out->n == DKIM_TAGS_MAX)
			return DKIM_TAGS_TOO_MANY;
		out->v[out->n++] = t;
		if (i == len)
			return DKIM_TAGS_OK;
		i++; /* the ";" */
	}
}

const struct dkim_tag *dkim_tags_get(const struct dkim_taglist *tl, const char *name)
{
	size_t n = strlen(name);

	for (size_t k = 0; k < tl->n; k++)
		if (tl->v[k].name.len == n && !memcmp(tl->v[k].name.p, name, n))
			return &tl->v[k];
	return NULL;
}

bool dkim_span_ieq(struct dkim_span a, const char *b, size_t blen)
{
	return a.len == blen && ascii_ieq(a.p, b, blen);
}

static bool span_eq(struct dkim_span a, const char *lit)
{
	return a.len == strlen(lit) && !memcmp(a.p, lit, a.len);
}

bool dkim_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
	char *tmp = xmalloc(len + 1);
	size_t n = 0;
	bool ok;

	for (size_t i = 0; i < len; i++)
		if (!is_fws((unsigned char)in[i]))
			tmp[n++] = in[i];
	ok = base64_decode(tmp, n, out, cap, out_len);
	free(tmp);
	return ok;
}

/* Split a colon-separated list (h=, key h=, s=, t=) into trimmed items.
 * Returns the count, or SIZE_MAX when there are more than max or an item
 * is empty. */
static size_t split_colon(struct dkim_span v, struct dkim_span *items, size_t max)
{
	size_t n = 0, i = 0;

	while (i <= v.len) {
		size_t start = skip_fws(v.p, v.len, i), end;
		i = start;
		while (i < v.len && v.p[i] != ':')
			i++;
		end = i;
		while (end > start && is_fws((unsigned char)v.p[end - 1]))
			end--;
		if (end == start || n == max)
			return SIZE_MAX;
		items[n].p = v.p + start;
		items[n].len = end - start;
		n++;
		i++; /* past ':' (or past the end) */
	}
	return n;
}

static bool has_item(struct dkim_span v, const char *want)
{
	struct dkim_span items[DKIM_H_MAX];
	size_t n = split_colon(v, items, DKIM_H_MAX);

	for (size_t k = 0; n != SIZE_MAX && k < n; k++)
		if (dkim_span_ieq(items[k], want, strlen(want)))
			return true;
	return false;
}

static bool parse_canon(struct dkim_span v, enum dkim_canon *h, enum dkim_canon *b)
{
	const char *slash = memchr(v.p, '/', v.len);
	struct dkim_span hs = { v.p, slash ? (size_t)(slash - v.p) : v.len };
	struct dkim_span bs = { slash ? slash + 1 : "simple", slash ? v.len - hs.len - 1 : 6 };

	if (span_eq(hs, "simple"))
		*h = DKIM_CANON_SIMPLE;
	else if (span_eq(hs, "relaxed"))
		*h = DKIM_CANON_RELAXED;
	else
		return false;
	if (span_eq(bs, "simple"))
		*b = DKIM_CANON_SIMPLE;
	else if (span_eq(bs, "relaxed"))
		*b = DKIM_CANON_RELAXED;
	else
		return false;
	return true;
}

static bool parse_num(struct dkim_span v, uint64_t max, uint64_t *out)
{
	return v.len > 0 && parse_u64(v.p, v.len, 0, max, out);
}

static bool fail(struct dkim_parse_err *err, const char *reason)
{
	err->reason = reason;
	return false;
}

/* i= (3.5): its domain is d= or a subdomain of it. */
static bool auid_in_domain(struct dkim_span i, struct dkim_span d)
{
	const char *at = memchr(i.p, '@', i.len);
	struct dkim_span dom;

	if (!at)
		return false;
	dom.p = at + 1;
	dom.len = i.len - (size_t)(dom.p - i.p);
	if (dom.len == d.len)
		return ascii_ieq(dom.p, d.p, d.len);
	return dom.len > d.len && dom.p[dom.len - d.len - 1] == '.' &&
	       ascii_ieq(dom.p + dom.len - d.len, d.p, d.len);
}

static bool sig_algorithm(const struct dkim_taglist *tl, struct dkim_sig *sig, struct dkim_parse_err *err)
{
	const struct dkim_tag *a = dkim_tags_get(tl, "a");

	if (!a)
		return fail(err, "no a= tag");
	if (span_eq(a->value, "rsa-sha256"))
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (span_eq(a->value, "ed25519-sha256"))
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else if (span_eq(a->value, "rsa-sha1"))
		return fail(err, "rsa-sha1 is not accepted (RFC 8301)");
	else
		return fail(err, "unknown algorithm");
	return true;
}

static bool sig_hashes(const struct dkim_taglist *tl, struct dkim_sig *sig, struct dkim_parse_err *err)
{
	const struct dkim_tag *b = dkim_tags_get(tl, "b"), *bh = dkim_tags_get(tl, "bh");

	if (!b || !bh)
		return fail(err, "no b= or bh= tag");
	sig->b_value = b->value;
	if (!dkim_base64_decode(b->value.p, b->value.len, sig->b, sizeof sig->b, &sig->b_len) || sig->b_len == 0)
		return fail(err, "b= is not base64");
	if (!dkim_base64_decode(bh->value.p, bh->value.len, sig->bh, sizeof sig->bh, &sig->bh_len) ||
	    sig->bh_len != 32)
		return fail(err, "bh= is not a base64 SHA-256 hash");
	return true;
}

static bool sig_times(const struct dkim_taglist *tl, struct dkim_sig *sig, struct dkim_parse_err *err)
{
	const struct dkim_tag *t = dkim_tags_get(tl, "t"), *x = dkim_tags_get(tl, "x"), *l = dkim_tags_get(tl, "l");
	uint64_t n;

	/* 3.5: t= and x= are at most 12 digits (good until AD 200000). */
	if (t) {
		if (!parse_num(t->value, 999999999999ULL, &n))
			return fail(err, "t= is not a timestamp");
		sig->has_t = true;
		sig->t = (int64_t)n;
	}
	if (x) {
		if (!parse_num(x->value, 999999999999ULL, &n))
			return fail(err, "x= is not a timestamp");
		sig->has_x = true;
		sig->x = (int64_t)n;
		if (sig->has_t && sig->x < sig->t)
			return fail(err, "x= is before t=");
	}
	if (l) {
		if (!parse_num(l->value, UINT64_MAX, &sig->l))
			return fail(err, "l= is not a number");
		sig->has_l = true;
	}
	return true;
}

bool dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig, struct dkim_parse_err *err)
{
	struct dkim_taglist tl;
	const struct dkim_tag *t;

	memset(sig, 0, sizeof *sig);
	if (dkim_tags_parse(value, len, &tl) != DKIM_TAGS_OK)
		return fail(err, "bad tag list");
	if (!(t = dkim_tags_get(&tl, "v")) || !span_eq(t->value, "1"))
		return fail(err, "v= is not 1");
	if (!sig_algorithm(&tl, sig, err) || !sig_hashes(&tl, sig, err) || !sig_times(&tl, sig, err))
		return false;
	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if ((t = dkim_tags_get(&tl, "c")) && !parse_canon(t->value, &sig->hcanon, &sig->bcanon))
		return fail(err, "unknown canonicalization");
	if (!(t = dkim_tags_get(&tl, "d")) || t->value.len == 0)
		return fail(err, "no d= tag");
	sig->d = t->value;
	if (!(t = dkim_tags_get(&tl, "s")) || t->value.len == 0)
		return fail(err, "no s= tag");
	sig->s = t->value;
	if (!(t = dkim_tags_get(&tl, "h")) || (sig->h_n = split_colon(t->value, sig->h, DKIM_H_MAX)) == SIZE_MAX)
		return fail(err, "h= is missing or malformed");
	for (size_t k = 0; k < sig->h_n; k++)
		if (memchr(sig->h[k].p, ' ', sig->h[k].len) || memchr(sig->h[k].p, '\t', sig->h[k].len))
			return fail(err, "h= is malformed");
	if (!has_item(t->value, "from"))
		return fail(err, "From is not signed");
	if ((t = dkim_tags_get(&tl, "i"))) {
		if (!auid_in_domain(t->value, sig->d))
			return fail(err, "i= is not in d=");
		sig->i = t->value;
	}
	if ((t = dkim_tags_get(&tl, "q")) && !has_item(t->value, "dns/txt"))
		return fail(err, "q= has no dns/txt");
	return true;
}

bool dkim_key_parse(const char *rec, size_t len, struct dkim_key *key, struct dkim_parse_err *err)
{
	struct dkim_taglist tl;
	const struct dkim_tag *t;

	memset(key, 0, sizeof *key);
	if (dkim_tags_parse(rec, len, &tl) != DKIM_TAGS_OK)
		return fail(err, "bad key record");
	/* 3.6.1: v=, when present, is first and DKIM1. */
	if ((t = dkim_tags_get(&tl, "v")) && (t != &tl.v[0] || !span_eq(t->value, "DKIM1")))
		return fail(err, "key record v= is not DKIM1");
	if ((t = dkim_tags_get(&tl, "h")) && !has_item(t->value, "sha256"))
		return fail(err, "key does not allow sha256");
	key->type = DKIM_KEY_RSA;
	if ((t = dkim_tags_get(&tl, "k"))) {
		if (span_eq(t->value, "rsa"))
			key->type = DKIM_KEY_RSA;
		else if (span_eq(t->value, "ed25519"))
			key->type = DKIM_KEY_ED25519;
		else
			return fail(err, "unknown key type");
	}
	if ((t = dkim_tags_get(&tl, "s")) && !has_item(t->value, "*") && !has_item(t->value, "email"))
		return fail(err, "key is not for email");
	if ((t = dkim_tags_get(&tl, "t"))) {
		key->testing = has_item(t->value, "y");
		key->strict_i = has_item(t->value, "s");
	}
	if (!(t = dkim_tags_get(&tl, "p")))
		return fail(err, "key record has no p=");
	key->p = t->value;
	return true;
}
