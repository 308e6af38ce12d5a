/*
 * auth_results.c - see auth_results.h (RFC 8601 2.2, RFC 5322 3.2.2 and
 * 3.2.4 for CFWS and quoted strings, RFC 2045 5.1 for token).
 */
#include "proto/auth_results.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct cur {
	const char *p, *end;
};

/* SP, HTAB, and the CR / LF of a folded line. */
static bool is_fws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 5.1: any CHAR but SPACE, CTLs and tspecials; octets above
 * 127 are taken as well (an internationalized id, RFC 8601 2.5). */
static bool is_token(unsigned char c)
{
	return c > ' ' && c != 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* [CFWS]: 1 past it, -1 when the text ended inside a comment, 0 when
 * comments nest deeper than AUTH_RESULTS_NEST_MAX.  Line ends inside a
 * comment are folds, which the caller's field may hold. */
static int skip_cfws(struct cur *c)
{
	int depth = 0;

	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (depth == 0 && is_fws(ch)) {
			c->p++;
		} else if (ch == '(') {
			if (++depth > AUTH_RESULTS_NEST_MAX)
				return 0;
			c->p++;
		} else if (depth == 0) {
			return 1;
		} else if (ch == ')') {
			depth--;
			c->p++;
		} else if (ch == '\\') {
			if (c->end - c->p < 2)
				return -1;
			c->p += 2;
		} else {
			c->p++;
		}
	}
	return depth == 0 ? 1 : -1;
}

static enum auth_results_status put(struct auth_results_id *out, unsigned char ch)
{
	if (out->len >= AUTH_RESULTS_ID_MAX)
		return AUTH_RESULTS_MALFORMED;
	out->id[out->len++] = (char)ch;
	out->id[out->len] = '\0';
	return AUTH_RESULTS_OK;
}

/* quoted-string: DQUOTE *([FWS] qcontent) [FWS] DQUOTE; the FWS inside
 * is kept as the octets it is (a line fold inside an id is malformed). */
static enum auth_results_status quoted(struct cur *c, struct auth_results_id *out)
{
	c->p++;   /* the opening DQUOTE */
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch == '"')
			return out->len > 0 ? AUTH_RESULTS_OK : AUTH_RESULTS_MALFORMED;
		if (ch == '\r' || ch == '\n' || ch == 0)
			return AUTH_RESULTS_MALFORMED;
		if (ch == '\\') {
			if (c->p == c->end)
				break;
			ch = (unsigned char)*c->p++;
			if (ch == '\r' || ch == '\n' || ch == 0)
				return AUTH_RESULTS_MALFORMED;
		}
		if (put(out, ch) != AUTH_RESULTS_OK)
			return AUTH_RESULTS_MALFORMED;
	}
	return AUTH_RESULTS_TRUNCATED;
}

static enum auth_results_status token(struct cur *c, struct auth_results_id *out)
{
	while (c->p < c->end && is_token((unsigned char)*c->p))
		if (put(out, (unsigned char)*c->p++) != AUTH_RESULTS_OK)
			return AUTH_RESULTS_MALFORMED;
	/* the end of the text may be the middle of the token */
	return c->p == c->end ? AUTH_RESULTS_TRUNCATED : AUTH_RESULTS_OK;
}

/* After the id: [CFWS authres-version] then ";" (a resinfo or
 * no-result).  A version needs CFWS before it. */
static enum auth_results_status after_id(struct cur *c, struct auth_results_id *out)
{
	const char *before = c->p;
	int r = skip_cfws(c);

	if (r <= 0)
		return r < 0 ? AUTH_RESULTS_TRUNCATED : AUTH_RESULTS_MALFORMED;
	if (c->p == c->end)
		return AUTH_RESULTS_TRUNCATED;
	if (*c->p >= '0' && *c->p <= '9' && c->p > before) {
		int v = 0, digits = 0;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
			if (++digits > 9)
				return AUTH_RESULTS_MALFORMED;
			v = v * 10 + (*c->p++ - '0');
		}
		out->version = v;
		if (c->p == c->end)
			return AUTH_RESULTS_TRUNCATED;
		r = skip_cfws(c);
		if (r <= 0)
			return r < 0 ? AUTH_RESULTS_TRUNCATED : AUTH_RESULTS_MALFORMED;
		if (c->p == c->end)
			return AUTH_RESULTS_TRUNCATED;
	}
	return *c->p == ';' ? AUTH_RESULTS_OK : AUTH_RESULTS_MALFORMED;
}

enum auth_results_status auth_results_parse(const char *field, size_t len, struct auth_results_id *out)
{
	static const char name[] = "authentication-results";
	struct cur c = { field, field + len };
	enum auth_results_status st;
	int r;

	memset(out, 0, sizeof(*out));
	out->version = -1;
	if (len < sizeof(name) - 1 || strncasecmp(field, name, sizeof(name) - 1) != 0)
		return AUTH_RESULTS_OTHER;
	c.p += sizeof(name) - 1;
	while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))   /* obs-optional (RFC 5322 4.5.8) */
		c.p++;
	if (c.p == c.end)
		return AUTH_RESULTS_TRUNCATED;
	if (*c.p != ':')
		return AUTH_RESULTS_OTHER;   /* a longer name, or none at all */
	c.p++;
	r = skip_cfws(&c);
	if (r <= 0)
		return r < 0 ? AUTH_RESULTS_TRUNCATED : AUTH_RESULTS_MALFORMED;
	if (c.p == c.end)
		return AUTH_RESULTS_TRUNCATED;
	if (*c.p == '"')
		st = quoted(&c, out);
	else if (is_token((unsigned char)*c.p))
		st = token(&c, out);
	else
		return AUTH_RESULTS_MALFORMED;
	if (st != AUTH_RESULTS_OK) {
		out->len = 0;
		out->id[0] = '\0';
		return st;
	}
	return after_id(&c, out);
}
