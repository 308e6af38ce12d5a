/*
 * addrlist.c - see addrlist.h.  RFC 5322 3.4 (address, mailbox, group,
 * angle-addr, display-name), 3.2.2 (comments), 3.2.4 (quoted strings);
 * the obsolete route of RFC 5322 4.4 ("<@a,@b:user@c>") is dropped.
 */
#include "proto/addrlist.h"

#include <stdbool.h>
#include <string.h>

struct addrlist_state {
	char bare[ADDRLIST_ADDR_MAX + 1];  /* text outside <>: an addr-spec */
	size_t nbare;
	bool bare_gap;            /* whitespace or a comment after bare text */
	bool bare_bad;            /* two words without <>: a display name */
	char angle[ADDRLIST_ADDR_MAX + 1];
	size_t nangle;
	bool have_angle;
	int count;
};

static bool addrlist_put(char *buf, size_t *n, char c)
{
	if (*n >= ADDRLIST_ADDR_MAX)
		return false;
	buf[(*n)++] = c;
	return true;
}

/* Text of a bare addr-spec; a second word after a gap is not one. */
static bool addrlist_bare(struct addrlist_state *st, char c)
{
	if (st->bare_gap && st->nbare > 0 && c != '.' && st->bare[st->nbare - 1] != '.' && c != '@'
	    && st->bare[st->nbare - 1] != '@')
		st->bare_bad = true;
	st->bare_gap = false;
	return addrlist_put(st->bare, &st->nbare, c);
}

/* End of one mailbox (',' ';' or the end): hand its address over. */
static int addrlist_emit(struct addrlist_state *st, addrlist_fn fn, void *arg)
{
	const char *a = NULL;
	if (st->have_angle) {
		st->angle[st->nangle] = '\0';
		a = st->angle;
		/* obs-route: "@a,@b:user@c" */
		if (a[0] == '@' && strchr(a, ':'))
			a = strchr(a, ':') + 1;
	} else if (st->nbare > 0) {
		if (st->bare_bad)
			return ADDRLIST_SYNTAX;
		st->bare[st->nbare] = '\0';
		a = st->bare;
	}
	if (a && a[0]) {
		if (++st->count > ADDRLIST_MAX)
			return ADDRLIST_TOO_MANY;
		fn(a, arg);
	}
	st->nbare = st->nangle = 0;
	st->have_angle = st->bare_gap = st->bare_bad = false;
	return 0;
}

/* A comment, nested, from v[*i] == '('; false when unbalanced. */
static bool addrlist_skip_comment(const char *v, size_t len, size_t *i)
{
	unsigned depth = 0;
	for (; *i < len; (*i)++) {
		if (v[*i] == '\\')
			(*i)++;
		else if (v[*i] == '(')
			depth++;
		else if (v[*i] == ')' && --depth == 0)
			return true;
	}
	return false;
}

/* A quoted string from v[*i] == '"', kept with its quotes in buf. */
static int addrlist_quoted(const char *v, size_t len, size_t *i, char *buf, size_t *n)
{
	if (!addrlist_put(buf, n, '"'))
		return ADDRLIST_TOO_LONG;
	for ((*i)++; *i < len; (*i)++) {
		if (v[*i] == '\\' && *i + 1 < len) {
			if (!addrlist_put(buf, n, '\\') || !addrlist_put(buf, n, v[++(*i)]))
				return ADDRLIST_TOO_LONG;
		} else if (v[*i] == '"') {
			return addrlist_put(buf, n, '"') ? 0 : ADDRLIST_TOO_LONG;
		} else if (!addrlist_put(buf, n, v[*i])) {
			return ADDRLIST_TOO_LONG;
		}
	}
	return ADDRLIST_SYNTAX;
}

/* One character outside <> and quotes. */
static int addrlist_step(struct addrlist_state *st, const char *v, size_t len, size_t *i, addrlist_fn fn,
			 void *arg)
{
	char c = v[*i];
	switch (c) {
	case '(':
		st->bare_gap = true;
		return addrlist_skip_comment(v, len, i) ? 0 : ADDRLIST_SYNTAX;
	case ',':
	case ';':
		return addrlist_emit(st, fn, arg);
	case ':':
		/* a group's display name: what came before is not an address */
		st->nbare = 0;
		st->bare_gap = st->bare_bad = false;
		return 0;
	case ' ': case '\t': case '\r': case '\n':
		st->bare_gap = true;
		return 0;
	case '"':
		if (st->bare_gap && st->nbare > 0)
			st->bare_bad = true;
		st->bare_gap = false;
		return addrlist_quoted(v, len, i, st->bare, &st->nbare);
	case '>':
	case ')':
		return ADDRLIST_SYNTAX;
	default:
		if ((unsigned char)c < 0x20)
			return ADDRLIST_SYNTAX;
		return addrlist_bare(st, c) ? 0 : ADDRLIST_TOO_LONG;
	}
}

/* An angle-addr from v[*i] == '<' to its '>'. */
static int addrlist_angle(struct addrlist_state *st, const char *v, size_t len, size_t *i)
{
	if (st->have_angle)
		return ADDRLIST_SYNTAX;
	st->have_angle = true;
	for ((*i)++; *i < len; (*i)++) {
		char c = v[*i];
		int r;
		if (c == '>')
			return 0;
		if (c == '"') {
			if ((r = addrlist_quoted(v, len, i, st->angle, &st->nangle)) < 0)
				return r;
		} else if (c == '(') {
			if (!addrlist_skip_comment(v, len, i))
				return ADDRLIST_SYNTAX;
		} else if (c == '<' || (unsigned char)c < 0x20) {
			if (c == '\t' || c == '\r' || c == '\n')
				continue;
			return ADDRLIST_SYNTAX;
		} else if (c != ' ' && !addrlist_put(st->angle, &st->nangle, c)) {
			return ADDRLIST_TOO_LONG;
		}
	}
	return ADDRLIST_SYNTAX;
}

int addrlist_parse(const char *v, size_t len, addrlist_fn fn, void *arg)
{
	struct addrlist_state st = { .nbare = 0 };
	int r;

	for (size_t i = 0; i < len; i++) {
		if (v[i] == '<')
			r = addrlist_angle(&st, v, len, &i);
		else
			r = addrlist_step(&st, v, len, &i, fn, arg);
		if (r < 0)
			return r;
	}
	r = addrlist_emit(&st, fn, arg);
	return r < 0 ? r : st.count;
}
