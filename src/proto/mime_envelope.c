/*
 * mime_envelope.c - ENVELOPE from a header section, and the RFC 5322
 * address parser it needs (proto/addrlist.c only yields addresses for
 * `sendmail -t`; ENVELOPE also needs display names, routes and groups).
 * Lenient like the readers mail clients expect: a broken address is kept
 * as far as it goes rather than losing the whole field.
 */
#include "proto/mime_envelope.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/header.h"

/* ---- header fields ---- */

bool mime_header_next(const char *hdr, size_t len, size_t *pos, const char **name,
		      size_t *name_len, const char **value, size_t *value_len)
{
	size_t i = *pos;
	while (i < len) {
		/* the empty line ends the header section */
		if (hdr[i] == '\n' || (hdr[i] == '\r' && i + 1 < len && hdr[i + 1] == '\n'))
			return false;
		size_t start = i, colon = SIZE_MAX;
		/* the field runs to a line end not followed by WSP */
		for (;;) {
			while (i < len && hdr[i] != '\n') {
				if (hdr[i] == ':' && colon == SIZE_MAX)
					colon = i;
				i++;
			}
			if (i >= len || i + 1 >= len || (hdr[i + 1] != ' ' && hdr[i + 1] != '\t'))
				break;
			i++;
		}
		size_t end = i;     /* at the LF or len */
		if (i < len)
			i++;
		if (end > start && hdr[end - 1] == '\r' && end < len)
			end--;
		if (hdr[start] == ' ' || hdr[start] == '\t' || colon == SIZE_MAX || colon == start)
			continue;   /* a continuation with no field, or not a field */
		size_t n = colon;
		while (n > start && (hdr[n - 1] == ' ' || hdr[n - 1] == '\t'))
			n--;    /* obsolete WSP before the colon (RFC 5322 4.5) */
		bool ok = n > start;
		for (size_t k = start; k < n; k++)
			if ((unsigned char)hdr[k] <= 0x20 || (unsigned char)hdr[k] >= 0x7f)
				ok = false;
		if (!ok)
			continue;
		*name = hdr + start;
		*name_len = n - start;
		*value = hdr + colon + 1;
		*value_len = end - colon - 1;
		*pos = i;
		return true;
	}
	*pos = i;
	return false;
}

char *mime_header_value(const char *value, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t n = header_unfold(value, len, out, len + 1);
	size_t s = 0;
	while (s < n && (out[s] == ' ' || out[s] == '\t' || out[s] == '\r' || out[s] == '\n'))
		s++;
	while (n > s && (out[n - 1] == ' ' || out[n - 1] == '\t' || out[n - 1] == '\r' ||
			 out[n - 1] == '\n'))
		n--;
	memmove(out, out + s, n - s);
	out[n - s] = '\0';
	return out;
}

/* ---- RFC 5322 address lists ---- */

enum tok_kind { T_END, T_WORD, T_DOT, T_SPECIAL, T_DOMLIT };

struct tok {
	enum tok_kind kind;
	char c;                /* T_SPECIAL */
	const char *p;         /* T_WORD: raw text (quotes included), T_DOMLIT */
	size_t len;
	bool quoted;
	bool space_before;     /* white space or a comment before it */
};

struct lexer {
	const char *v;
	size_t len, i;
	const char *comment;   /* the last comment's text, for "addr (Name)" */
	size_t comment_len;
};

static bool is_special(char c)
{
	return strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static void skip_cfws(struct lexer *l, bool *space)
{
	while (l->i < l->len) {
		char c = l->v[l->i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			*space = true;
			l->i++;
		} else if (c == '(') {
			size_t depth = 0, start = l->i + 1;
			while (l->i < l->len) {
				char d = l->v[l->i];
				if (d == '\\' && l->i + 1 < l->len)
					l->i++;
				else if (d == '(')
					depth++;
				else if (d == ')' && --depth == 0)
					break;
				l->i++;
			}
			l->comment = l->v + start;
			l->comment_len = (l->i < l->len ? l->i : l->len) - start;
			if (l->i < l->len)
				l->i++;
			*space = true;
		} else {
			break;
		}
	}
}

static struct tok next_tok(struct lexer *l)
{
	struct tok t = { 0 };
	skip_cfws(l, &t.space_before);
	if (l->i >= l->len) {
		t.kind = T_END;
		return t;
	}
	size_t start = l->i;
	char c = l->v[l->i];
	t.p = l->v + start;
	if (c == '"') {
		l->i++;
		while (l->i < l->len && l->v[l->i] != '"') {
			if (l->v[l->i] == '\\' && l->i + 1 < l->len)
				l->i++;
			l->i++;
		}
		if (l->i < l->len)
			l->i++;
		t.kind = T_WORD;
		t.quoted = true;
	} else if (c == '[') {
		while (l->i < l->len && l->v[l->i] != ']')
			l->i++;
		if (l->i < l->len)
			l->i++;
		t.kind = T_DOMLIT;
	} else if (c == '.') {
		l->i++;
		t.kind = T_DOT;
	} else if (is_special(c)) {
		l->i++;
		t.kind = T_SPECIAL;
		t.c = c;
	} else {
		while (l->i < l->len && !is_special(l->v[l->i]) && l->v[l->i] != ' ' &&
		       l->v[l->i] != '\t' && l->v[l->i] != '\r' && l->v[l->i] != '\n')
			l->i++;
		t.kind = T_WORD;
	}
	t.len = l->i - start;
	return t;
}

/* A growing string; words are appended unquoted. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->cap - b->n <= n) {
		b->cap = (b->n + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_word(struct sbuf *b, const struct tok *t)
{
	if (!t->quoted) {
		sb_add(b, t->p, t->len);
		return;
	}
	size_t end = t->len >= 2 && t->p[t->len - 1] == '"' ? t->len - 1 : t->len;
	for (size_t i = 1; i < end; i++) {
		if (t->p[i] == '\\' && i + 1 < end)
			i++;
		sb_add(b, t->p + i, 1);
	}
	if (b->p == NULL)
		sb_add(b, "", 0);
}

static char *sb_take(struct sbuf *b)
{
	char *p = b->p;
	b->p = NULL;
	b->n = b->cap = 0;
	return p;
}

static struct mime_addr *new_addr(struct mime_addr ***tail, unsigned *count)
{
	if (*count >= MIME_ENVELOPE_ADDRS_MAX)
		return NULL;
	struct mime_addr *a = xcalloc(1, sizeof(*a));
	**tail = a;
	*tail = &a->next;
	(*count)++;
	return a;
}

/* local-part "@" domain from *t on; *t ends at the token after it. */
static void addr_spec(struct lexer *l, struct tok *t, struct sbuf *local, struct mime_addr *a)
{
	struct sbuf dom = { 0 };
	while (t->kind == T_WORD || t->kind == T_DOT) {
		sb_word(local, t);
		*t = next_tok(l);
	}
	a->mailbox = local->n > 0 ? sb_take(local) : xstrdup("MISSING_MAILBOX");
	free(local->p);
	local->p = NULL;
	local->n = local->cap = 0;
	if (t->kind == T_SPECIAL && t->c == '@') {
		*t = next_tok(l);
		while (t->kind == T_WORD || t->kind == T_DOT || t->kind == T_DOMLIT) {
			sb_add(&dom, t->p, t->len);
			*t = next_tok(l);
		}
	}
	a->host = dom.n > 0 ? sb_take(&dom) : xstrdup("MISSING_DOMAIN");
	free(dom.p);
}

struct mime_addr *mime_addr_parse(const char *v, size_t len)
{
	struct lexer l = { .v = v, .len = len };
	struct mime_addr *head = NULL, **tail = &head, *a;
	unsigned count = 0;
	bool in_group = false;
	struct tok t = next_tok(&l);

	while (t.kind != T_END) {
		struct sbuf phrase = { 0 }, local = { 0 };
		bool first = true;
		l.comment = NULL;
		/* words: a display name, a group name or a local part */
		while (t.kind == T_WORD || t.kind == T_DOT) {
			if (!first && t.space_before)
				sb_add(&phrase, " ", 1);
			sb_word(&phrase, &t);
			sb_word(&local, &t);
			first = false;
			t = next_tok(&l);
		}
		if (t.kind == T_SPECIAL && t.c == '<') {
			free(local.p);
			local = (struct sbuf){ 0 };
			if ((a = new_addr(&tail, &count)) == NULL) {
				free(phrase.p);
				break;
			}
			a->name = phrase.n > 0 ? sb_take(&phrase) : NULL;
			t = next_tok(&l);
			/* obsolete route: "@a,@b:" */
			if (t.kind == T_SPECIAL && t.c == '@') {
				struct sbuf adl = { 0 };
				while (t.kind != T_END && !(t.kind == T_SPECIAL && (t.c == ':' || t.c == '>'))) {
					sb_add(&adl, t.p, t.len);
					t = next_tok(&l);
				}
				a->adl = sb_take(&adl);
				if (t.kind == T_SPECIAL && t.c == ':')
					t = next_tok(&l);
			}
			addr_spec(&l, &t, &local, a);
			if (t.kind == T_SPECIAL && t.c == '>')
				t = next_tok(&l);
		} else if (t.kind == T_SPECIAL && t.c == ':' && !in_group && phrase.n > 0) {
			free(local.p);
			if ((a = new_addr(&tail, &count)) == NULL) {
				free(phrase.p);
				break;
			}
			a->mailbox = sb_take(&phrase);
			in_group = true;
			t = next_tok(&l);
			continue;
		} else if (t.kind == T_SPECIAL && t.c == '@' && local.n > 0) {
			free(phrase.p);
			phrase = (struct sbuf){ 0 };
			if ((a = new_addr(&tail, &count)) == NULL) {
				free(local.p);
				break;
			}
			addr_spec(&l, &t, &local, a);
			if (l.comment != NULL && l.comment_len > 0)
				a->name = mime_header_value(l.comment, l.comment_len);
		} else if (local.n > 0) {
			/* a local part with no domain ("undisclosed-recipients") */
			free(phrase.p);
			phrase = (struct sbuf){ 0 };
			if ((a = new_addr(&tail, &count)) == NULL) {
				free(local.p);
				break;
			}
			a->mailbox = sb_take(&local);
			a->host = xstrdup("MISSING_DOMAIN");
		}
		free(phrase.p);
		free(local.p);
		/* separators and whatever cannot start an address */
		if (t.kind == T_SPECIAL && t.c == ';' && in_group) {
			if (new_addr(&tail, &count) == NULL)
				break;
			in_group = false;
			t = next_tok(&l);
		} else if (t.kind == T_SPECIAL && t.c == ',') {
			t = next_tok(&l);
		} else if (t.kind != T_END && t.kind != T_WORD && t.kind != T_DOT) {
			t = next_tok(&l);   /* junk: skip one token */
		}
	}
	/* an unterminated group still ends */
	if (in_group)
		(void)new_addr(&tail, &count);
	return head;
}

void mime_addr_free(struct mime_addr *a)
{
	while (a != NULL) {
		struct mime_addr *next = a->next;
		free(a->name);
		free(a->adl);
		free(a->mailbox);
		free(a->host);
		free(a);
		a = next;
	}
}

static struct mime_addr *addr_copy(const struct mime_addr *a)
{
	struct mime_addr *head = NULL, **tail = &head;
	for (; a != NULL; a = a->next) {
		struct mime_addr *c = xcalloc(1, sizeof(*c));
		c->name = a->name ? xstrdup(a->name) : NULL;
		c->adl = a->adl ? xstrdup(a->adl) : NULL;
		c->mailbox = a->mailbox ? xstrdup(a->mailbox) : NULL;
		c->host = a->host ? xstrdup(a->host) : NULL;
		*tail = c;
		tail = &c->next;
	}
	return head;
}

/* ---- ENVELOPE ---- */

struct mime_envelope *mime_envelope_build(const char *hdr, size_t len)
{
	struct mime_envelope *e = xcalloc(1, sizeof(*e));
	bool have_from = false, have_sender = false, have_reply_to = false, have_to = false,
	     have_cc = false, have_bcc = false;
	const char *name, *value;
	size_t nlen, vlen, pos = 0;
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
		{ "Date", offsetof(struct mime_envelope, date) },
		{ "Subject", offsetof(struct mime_envelope, subject) },
		{ "In-Reply-To", offsetof(struct mime_envelope, in_reply_to) },
		{ "Message-ID", offsetof(struct mime_envelope, message_id) },
	};
	const struct {
		const char *name;
		struct mime_addr **field;
		bool *seen;
	} addrs[] = {
		{ "From", &e->from, &have_from },       { "Sender", &e->sender, &have_sender },
		{ "Reply-To", &e->reply_to, &have_reply_to }, { "To", &e->to, &have_to },
		{ "Cc", &e->cc, &have_cc },             { "Bcc", &e->bcc, &have_bcc },
	};

	while (mime_header_next(hdr, len, &pos, &name, &nlen, &value, &vlen)) {
		for (size_t i = 0; i < ARRAY_LEN(strs); i++) {
			char **f = (char **)((char *)e + strs[i].off);
			if (*f == NULL && strlen(strs[i].name) == nlen && ascii_ieq(name, strs[i].name, nlen))
				*f = mime_header_value(value, vlen);
		}
		for (size_t i = 0; i < ARRAY_LEN(addrs); i++) {
			if (*addrs[i].seen || strlen(addrs[i].name) != nlen ||
			    !ascii_ieq(name, addrs[i].name, nlen))
				continue;
			char *v = mime_header_value(value, vlen);
			*addrs[i].field = mime_addr_parse(v, strlen(v));
			*addrs[i].seen = true;
			free(v);
		}
	}
	if (e->sender == NULL)
		e->sender = addr_copy(e->from);
	if (e->reply_to == NULL)
		e->reply_to = addr_copy(e->from);
	return e;
}

void mime_envelope_free(struct mime_envelope *e)
{
	if (e == NULL)
		return;
	free(e->date);
	free(e->subject);
	free(e->in_reply_to);
	free(e->message_id);
	mime_addr_free(e->from);
	mime_addr_free(e->sender);
	mime_addr_free(e->reply_to);
	mime_addr_free(e->to);
	mime_addr_free(e->cc);
	mime_addr_free(e->bcc);
	free(e);
}
