/*
 * imap_parse.c - IMAP command lines to a tag, a name and an argument tree
 * (RFC 9051 section 9 / RFC 3501 section 9: tag, atom, quoted, literal,
 * literal8, parenthesized lists), incrementally across literals.
 *
 * The grammar is lexed, not interpreted: an atom stays an atom until a
 * command's handler reads it as a number, a sequence set or a flag with the
 * readers below, because the same characters mean different things per
 * command.  The one exception is the fetch section "BODY[...]": after
 * BODY, BODY.PEEK, BINARY, BINARY.PEEK or BINARY.SIZE, a '[' opens a
 * section in which spaces and parentheses belong to the atom (RFC 9051
 * section 9 "section", e.g. BODY[HEADER.FIELDS (From To)]<0.512>).
 */
#include "proto/imap_parse.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum parse_state {
	ST_START,           /* next line starts a command */
	ST_ARGS,            /* next line continues after a literal */
	ST_LITERAL,         /* the announced literal is awaited */
	ST_DONE,
	ST_ERROR,
};

/* ---- arena ---- */

struct imap_arena_chunk {
	struct imap_arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK 4096

void imap_arena_init(struct imap_arena *a, size_t limit)
{
	a->head = NULL;
	a->used = 0;
	a->limit = limit;
}

void *imap_arena_alloc(struct imap_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (n > a->limit - a->used || a->used > a->limit)
		return NULL;
	struct imap_arena_chunk *c = a->head;
	if (c == NULL || c->size - c->used < n) {
		size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = xmalloc(sizeof(*c) + size);
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->used += n;
	memset(p, 0, n);
	return p;
}

void imap_arena_free(struct imap_arena *a)
{
	struct imap_arena_chunk *c = a->head;
	while (c != NULL) {
		struct imap_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}

static char *arena_strndup(struct imap_arena *a, const char *s, size_t len)
{
	if (len == SIZE_MAX)
		return NULL;
	char *d = imap_arena_alloc(a, len + 1);
	if (d == NULL)
		return NULL;
	if (len > 0)
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* ---- parser life cycle ---- */

void imap_parse_init(struct imap_parser *p, const struct imap_parse_opts *opts)
{
	memset(p, 0, sizeof(*p));
	if (opts != NULL)
		p->opts = *opts;
	if (p->opts.max_depth == 0)
		p->opts.max_depth = IMAP_DEPTH_DEFAULT;
	if (p->opts.max_depth > IMAP_DEPTH_MAX)
		p->opts.max_depth = IMAP_DEPTH_MAX;
	if (p->opts.max_args == 0)
		p->opts.max_args = IMAP_ARGS_DEFAULT;
	if (p->opts.max_text == 0)
		p->opts.max_text = IMAP_TEXT_DEFAULT;
	imap_arena_init(&p->arena, p->opts.max_text);
	imap_parse_reset(p);
}

void imap_parse_reset(struct imap_parser *p)
{
	imap_arena_free(&p->arena);
	p->tag[0] = '\0';
	p->have_tag = false;
	p->name[0] = '\0';
	p->have_name = false;
	p->args = NULL;
	p->nargs = 0;
	memset(&p->lit, 0, sizeof(p->lit));
	p->lit_fits = false;
	p->err = IMAP_ERR_NONE;
	p->err_pos = 0;
	p->state = ST_START;
	p->depth = 0;
	p->total_args = 0;
	p->tail = &p->args;
}

void imap_parse_free(struct imap_parser *p)
{
	imap_arena_free(&p->arena);
}

static enum imap_parse_result fail(struct imap_parser *p, enum imap_parse_err e, size_t pos)
{
	p->err = e;
	p->err_pos = pos;
	p->state = ST_ERROR;
	return IMAP_PARSE_ERROR;
}

/* ---- character classes (RFC 9051 section 9) ---- */

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* What may appear in an atom as we lex it: ATOM-CHAR plus ']' (astring),
 * '%' and '*' (list-mailbox, sequence sets) and '\' (flags).  The readers
 * narrow it per use. */
static bool is_lex_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '"';
}

/* ATOM-CHAR proper, for command names. */
static bool is_atom_char(unsigned char c)
{
	return is_lex_atom_char(c) && c != '%' && c != '*' && c != '\\' && c != ']';
}

static bool is_tag_char(unsigned char c)
{
	/* 1*<any ASTRING-CHAR except "+"> */
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* Length of a well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* ---- arguments ---- */

static struct imap_arg *new_arg(struct imap_parser *p, enum imap_arg_type type, size_t pos,
				enum imap_parse_result *r)
{
	if (p->total_args >= p->opts.max_args) {
		*r = fail(p, IMAP_ERR_TOO_MANY, pos);
		return NULL;
	}
	struct imap_arg *a = imap_arena_alloc(&p->arena, sizeof(*a));
	if (a == NULL) {
		*r = fail(p, IMAP_ERR_TOO_LONG, pos);
		return NULL;
	}
	a->type = type;
	*p->tail = a;
	p->tail = &a->next;
	p->total_args++;
	if (p->depth > 0)
		p->open[p->depth - 1]->count++;
	else
		p->nargs++;
	return a;
}

/* Is the atom text so far a fetch item that takes a [section]? */
static bool takes_section(const char *s, size_t len)
{
	static const char *const items[] = { "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK",
					     "BINARY.SIZE" };
	for (size_t i = 0; i < ARRAY_LEN(items); i++)
		if (strlen(items[i]) == len && ascii_ieq(s, items[i], len))
			return true;
	return false;
}

/* An atom from line[*i]; *i ends after it. */
static enum imap_parse_result lex_atom(struct imap_parser *p, const char *line, size_t len,
				       size_t *i)
{
	size_t start = *i, k = *i;
	bool in_section = false;
	enum imap_parse_result r;
	while (k < len) {
		unsigned char c = (unsigned char)line[k];
		if (c >= 0x80)
			return fail(p, IMAP_ERR_8BIT, k);
		if (in_section) {
			if (is_ctl(c) || c == '{' || c == '[')
				return fail(p, IMAP_ERR_SYNTAX, k);
			if (c == ']')
				in_section = false;
			k++;
			continue;
		}
		if (c == '[' && takes_section(line + start, k - start)) {
			in_section = true;
			k++;
			continue;
		}
		if (!is_lex_atom_char(c))
			break;
		k++;
	}
	if (in_section)
		return fail(p, IMAP_ERR_SYNTAX, k);
	if (k == start)
		return fail(p, IMAP_ERR_SYNTAX, k);
	bool nil = k - start == 3 && ascii_ieq(line + start, "NIL", 3);
	struct imap_arg *a = new_arg(p, nil ? IMAP_ARG_NIL : IMAP_ARG_ATOM, start, &r);
	if (a == NULL)
		return r;
	a->s = arena_strndup(&p->arena, line + start, k - start);
	if (a->s == NULL)
		return fail(p, IMAP_ERR_TOO_LONG, start);
	a->len = k - start;
	*i = k;
	return IMAP_PARSE_DONE;
}

/* A quoted string from line[*i] == '"'. */
static enum imap_parse_result lex_quoted(struct imap_parser *p, const char *line, size_t len,
					 size_t *i)
{
	size_t start = *i, k = *i + 1, n = 0;
	enum imap_parse_result r;
	/* First pass: validate and measure; second: copy without escapes. */
	for (;;) {
		if (k >= len)
			return fail(p, IMAP_ERR_QUOTED, k);
		unsigned char c = (unsigned char)line[k];
		if (c == '"')
			break;
		if (c == '\\') {
			if (k + 1 >= len || (line[k + 1] != '\\' && line[k + 1] != '"'))
				return fail(p, IMAP_ERR_QUOTED, k);
			k += 2;
			n++;
			continue;
		}
		if (c >= 0x80) {
			size_t s = p->opts.utf8 ? utf8_seq((const unsigned char *)line + k, len - k) : 0;
			if (s == 0)
				return fail(p, IMAP_ERR_8BIT, k);
			k += s;
			n += s;
			continue;
		}
		/* QUOTED-CHAR is a TEXT-CHAR: any CHAR (%x01-7F) but CR and LF */
		if (c == '\0' || c == '\r' || c == '\n')
			return fail(p, IMAP_ERR_QUOTED, k);
		k++;
		n++;
	}
	struct imap_arg *a = new_arg(p, IMAP_ARG_QUOTED, start, &r);
	if (a == NULL)
		return r;
	char *d = imap_arena_alloc(&p->arena, n + 1);
	if (d == NULL)
		return fail(p, IMAP_ERR_TOO_LONG, start);
	size_t o = 0;
	for (size_t j = start + 1; j < k; j++) {
		if (line[j] == '\\')
			j++;
		d[o++] = line[j];
	}
	d[o] = '\0';
	a->s = d;
	a->len = o;
	*i = k + 1;
	return IMAP_PARSE_DONE;
}

/* "{" number ["+"] "}" at line[*i] (after "~" for literal8), which must
 * end the line. */
static enum imap_parse_result lex_literal(struct imap_parser *p, const char *line, size_t len,
					  size_t i, bool literal8)
{
	size_t k = i + 1, digits = k;
	uint64_t v = 0;
	while (k < len && line[k] >= '0' && line[k] <= '9') {
		v = v * 10 + (uint64_t)(line[k] - '0');
		if (v > UINT32_MAX)
			return fail(p, IMAP_ERR_LITERAL_SYNTAX, k);
		k++;
	}
	if (k == digits || k >= len)
		return fail(p, IMAP_ERR_LITERAL_SYNTAX, k);
	bool nonsync = false;
	if (line[k] == '+') {
		nonsync = true;
		k++;
	}
	if (k >= len || line[k] != '}' || k + 1 != len)
		return fail(p, IMAP_ERR_LITERAL_SYNTAX, k);
	p->lit.size = (uint32_t)v;
	p->lit.sync = !nonsync;
	p->lit.literal8 = literal8;
	/* the argument, the octets and a NUL, each rounded up by the arena */
	p->lit_fits = p->arena.used <= p->arena.limit &&
		      (size_t)v + sizeof(struct imap_arg) + 48 <= p->arena.limit - p->arena.used;
	if (nonsync && !p->opts.literal_plus && !p->opts.literal_minus)
		return fail(p, IMAP_ERR_NONSYNC, i);
	if (nonsync && !p->opts.literal_plus && v > IMAP_LITERAL_MINUS_MAX)
		return fail(p, IMAP_ERR_LITERAL_MINUS, i);
	if (p->opts.max_literal != 0 && v > p->opts.max_literal)
		return fail(p, IMAP_ERR_LITERAL_TOO_BIG, i);
	p->state = ST_LITERAL;
	return IMAP_PARSE_LITERAL;
}

/* Arguments from line[i]; after_token says a token (or a literal) ends
 * right before i, so a separator or the end must follow. */
static enum imap_parse_result lex_args(struct imap_parser *p, const char *line, size_t len,
				       size_t i, bool after_token)
{
	enum imap_parse_result r;
	for (;;) {
		if (after_token) {
			if (i == len)
				break;
			if (line[i] == ')') {
				if (p->depth == 0)
					return fail(p, IMAP_ERR_PAREN, i);
				p->depth--;
				p->tail = &p->open[p->depth]->next;
				i++;
				continue;
			}
			if (line[i] != ' ')
				return fail(p, IMAP_ERR_SYNTAX, i);
			i++;
		}
		/* a token must start here */
		if (i == len)
			return fail(p, IMAP_ERR_SYNTAX, i);
		unsigned char c = (unsigned char)line[i];
		if (c == '(') {
			if (p->depth >= p->opts.max_depth)
				return fail(p, IMAP_ERR_DEPTH, i);
			struct imap_arg *a = new_arg(p, IMAP_ARG_LIST, i, &r);
			if (a == NULL)
				return r;
			p->open[p->depth++] = a;
			p->tail = &a->child;
			i++;
			/* "()" is an empty list; "( x" is not allowed */
			if (i < len && line[i] == ')') {
				after_token = true;
				continue;
			}
			after_token = false;
			continue;
		}
		if (c == ')') {
			/* only right after "(" or a token, handled above */
			return fail(p, IMAP_ERR_SYNTAX, i);
		}
		if (c == '"') {
			r = lex_quoted(p, line, len, &i);
		} else if (c == '{') {
			return lex_literal(p, line, len, i, false);
		} else if (c == '~' && i + 1 < len && line[i + 1] == '{') {
			return lex_literal(p, line, len, i + 1, true);
		} else if (c >= 0x80) {
			return fail(p, IMAP_ERR_8BIT, i);
		} else if (!is_lex_atom_char(c)) {
			return fail(p, IMAP_ERR_SYNTAX, i);
		} else {
			r = lex_atom(p, line, len, &i);
		}
		if (r != IMAP_PARSE_DONE)
			return r;
		after_token = true;
	}
	if (p->depth > 0)
		return fail(p, IMAP_ERR_PAREN, len);
	p->state = ST_DONE;
	return IMAP_PARSE_DONE;
}

static enum imap_parse_result lex_command(struct imap_parser *p, const char *line, size_t len)
{
	size_t i = 0;
	if (len == 0)
		return fail(p, IMAP_ERR_EMPTY, 0);
	while (i < len && is_tag_char((unsigned char)line[i]))
		i++;
	if (i == 0 || i > IMAP_TAG_MAX || (i < len && line[i] != ' '))
		return fail(p, (i < len && (unsigned char)line[i] >= 0x80) ? IMAP_ERR_8BIT : IMAP_ERR_TAG,
			    i);
	memcpy(p->tag, line, i);
	p->tag[i] = '\0';
	p->have_tag = true;
	if (i == len)
		return fail(p, IMAP_ERR_NAME, i);
	size_t n0 = ++i;
	while (i < len && is_atom_char((unsigned char)line[i]))
		i++;
	if (i == n0 || i - n0 > IMAP_NAME_MAX || (i < len && line[i] != ' '))
		return fail(p, (i < len && (unsigned char)line[i] >= 0x80) ? IMAP_ERR_8BIT : IMAP_ERR_NAME,
			    i);
	for (size_t k = n0; k < i; k++) {
		char ch = line[k];
		p->name[k - n0] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
	}
	p->name[i - n0] = '\0';
	p->have_name = true;
	if (i == len) {
		p->state = ST_DONE;
		return IMAP_PARSE_DONE;
	}
	return lex_args(p, line, len, i, true);
}

enum imap_parse_result imap_parse_line(struct imap_parser *p, const char *line, size_t len)
{
	/* NUL, CR and LF are control characters, refused by every lexer below. */
	if (p->state == ST_START)
		return lex_command(p, line, len);
	if (p->state == ST_ARGS)
		return lex_args(p, line, len, 0, true);
	return fail(p, IMAP_ERR_STATE, 0);
}

static enum imap_parse_result literal_arg(struct imap_parser *p, const void *data, size_t len)
{
	enum imap_parse_result r;
	if (p->state != ST_LITERAL)
		return fail(p, IMAP_ERR_STATE, 0);
	struct imap_arg *a = new_arg(p, IMAP_ARG_LITERAL, 0, &r);
	if (a == NULL)
		return r;
	a->literal8 = p->lit.literal8;
	a->len = p->lit.size;
	if (data != NULL) {
		if (len != p->lit.size)
			return fail(p, IMAP_ERR_STATE, 0);
		a->s = arena_strndup(&p->arena, data, len);
		if (a->s == NULL)
			return fail(p, IMAP_ERR_TOO_LONG, 0);
	}
	p->state = ST_ARGS;
	/* The literal is an argument; what follows comes with the next line. */
	return IMAP_PARSE_LITERAL;
}

enum imap_parse_result imap_parse_literal(struct imap_parser *p, const void *data, size_t len)
{
	enum imap_parse_result r = literal_arg(p, data == NULL && len == 0 ? "" : data, len);
	return r == IMAP_PARSE_ERROR ? r : IMAP_PARSE_NEED_LINE;
}

enum imap_parse_result imap_parse_literal_streamed(struct imap_parser *p)
{
	enum imap_parse_result r = literal_arg(p, NULL, 0);
	return r == IMAP_PARSE_ERROR ? r : IMAP_PARSE_NEED_LINE;
}

const char *imap_parse_strerror(enum imap_parse_err e)
{
	switch (e) {
	case IMAP_ERR_NONE: return "No error";
	case IMAP_ERR_EMPTY: return "Empty command line";
	case IMAP_ERR_TAG: return "Missing or invalid tag";
	case IMAP_ERR_NAME: return "Missing or invalid command name";
	case IMAP_ERR_SYNTAX: return "Syntax error in arguments";
	case IMAP_ERR_8BIT: return "8-bit octets are only allowed in literals";
	case IMAP_ERR_QUOTED: return "Invalid quoted string";
	case IMAP_ERR_LITERAL_SYNTAX: return "Invalid literal announcement";
	case IMAP_ERR_LITERAL_TOO_BIG: return "Literal too big";
	case IMAP_ERR_LITERAL_MINUS: return "Non-synchronizing literal over 4096 octets";
	case IMAP_ERR_NONSYNC: return "Non-synchronizing literals are not supported";
	case IMAP_ERR_PAREN: return "Unbalanced parentheses";
	case IMAP_ERR_DEPTH: return "Lists nested too deeply";
	case IMAP_ERR_TOO_MANY: return "Too many arguments";
	case IMAP_ERR_TOO_LONG: return "Command too long";
	case IMAP_ERR_STATE: return "Internal parser state error";
	}
	return "Unknown error";
}

/* ---- typed readers ---- */

const struct imap_arg *imap_arg_nth(const struct imap_arg *first, size_t n)
{
	while (first != NULL && n-- > 0)
		first = first->next;
	return first;
}

static bool digits_value(const struct imap_arg *a, uint64_t max, uint64_t *out)
{
	if (a == NULL || a->type != IMAP_ARG_ATOM)
		return false;
	return parse_u64(a->s, a->len, 0, max, out);
}

bool imap_arg_number(const struct imap_arg *a, uint32_t *out)
{
	uint64_t v;
	if (!digits_value(a, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

bool imap_arg_nz_number(const struct imap_arg *a, uint32_t *out)
{
	uint32_t v;
	if (!imap_arg_number(a, &v) || v == 0)
		return false;
	*out = v;
	return true;
}

bool imap_arg_number64(const struct imap_arg *a, uint64_t *out)
{
	return digits_value(a, INT64_MAX, out);
}

bool imap_arg_string(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a == NULL || (a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL) || a->s == NULL)
		return false;
	*s = a->s;
	*len = a->len;
	return true;
}

bool imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a != NULL && a->type == IMAP_ARG_ATOM) {
		for (size_t i = 0; i < a->len; i++) {
			unsigned char c = (unsigned char)a->s[i];
			if (!is_atom_char(c) && c != ']')
				return false;
		}
		*s = a->s;
		*len = a->len;
		return true;
	}
	if (a != NULL && a->type == IMAP_ARG_NIL) {
		/* "NIL" is a valid astring (a mailbox may be called NIL) */
		*s = a->s;
		*len = a->len;
		return true;
	}
	return imap_arg_string(a, s, len);
}

bool imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a != NULL && a->type == IMAP_ARG_NIL) {
		*s = NULL;
		*len = 0;
		return true;
	}
	return imap_arg_string(a, s, len);
}

bool imap_arg_is_atom(const struct imap_arg *a, const char *word)
{
	size_t n = strlen(word);
	return a != NULL && (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL) && a->len == n &&
	       ascii_ieq(a->s, word, n);
}

/* ---- sequence sets ---- */

/* seq-number = nz-number / "*" */
static bool seq_number(const char *s, size_t len, uint32_t *out)
{
	uint64_t v;
	if (len == 1 && s[0] == '*') {
		*out = IMAP_SEQ_STAR;
		return true;
	}
	if (len == 0 || s[0] == '0' || !parse_u64(s, len, 1, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

enum imap_seq_err imap_seqset_parse(const char *s, size_t len, struct imap_arena *a,
				    struct imap_seqset *out)
{
	memset(out, 0, sizeof(*out));
	if (len == 1 && s[0] == '$') {
		out->searchres = true;
		return IMAP_SEQ_OK;
	}
	if (len == 0)
		return IMAP_SEQ_SYNTAX;
	size_t n = 1;
	for (size_t i = 0; i < len; i++)
		if (s[i] == ',')
			n++;
	if (n > SIZE_MAX / sizeof(*out->r))
		return IMAP_SEQ_TOO_MANY;
	out->r = imap_arena_alloc(a, n * sizeof(*out->r));
	if (out->r == NULL)
		return IMAP_SEQ_TOO_MANY;
	size_t i = 0;
	while (i <= len) {
		size_t e = i;
		while (e < len && s[e] != ',')
			e++;
		const char *colon = memchr(s + i, ':', e - i);
		struct imap_seq_range *r = &out->r[out->n];
		if (colon == NULL) {
			if (!seq_number(s + i, e - i, &r->lo))
				return IMAP_SEQ_SYNTAX;
			r->hi = r->lo;
		} else {
			size_t c = (size_t)(colon - s);
			if (!seq_number(s + i, c - i, &r->lo) ||
			    !seq_number(s + c + 1, e - c - 1, &r->hi))
				return IMAP_SEQ_SYNTAX;
		}
		out->n++;
		i = e + 1;
	}
	return IMAP_SEQ_OK;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == IMAP_SEQ_STAR ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == IMAP_SEQ_STAR ? star : set->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

/* ---- dates ---- */

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static bool leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned month_days(unsigned y, unsigned m)
{
	static const unsigned char d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : d[m - 1];
}

static bool digits(const char *s, size_t n, unsigned *v)
{
	uint64_t x;
	if (!parse_u64(s, n, 0, 9999, &x))
		return false;
	*v = (unsigned)x;
	return true;
}

/* day-month-year from s, where the day is dlen digits (1 or 2) or, when
 * sp_day, " d" (date-day-fixed). */
static bool date_parts(const char *s, size_t len, size_t dlen, struct imap_date *d)
{
	unsigned day, year;
	if (len != dlen + 1 + 3 + 1 + 4 || s[dlen] != '-' || s[dlen + 4] != '-')
		return false;
	const char *ds = s;
	size_t dn = dlen;
	if (dlen == 2 && s[0] == ' ') {
		ds++;
		dn = 1;
	}
	if (!digits(ds, dn, &day) || !digits(s + dlen + 5, 4, &year))
		return false;
	unsigned m = 0;
	for (unsigned k = 0; k < 12; k++)
		if (ascii_ieq(s + dlen + 1, months[k], 3))
			m = k + 1;
	if (m == 0 || year == 0 || day == 0 || day > month_days(year, m))
		return false;
	d->year = (uint16_t)year;
	d->month = (uint8_t)m;
	d->day = (uint8_t)day;
	return true;
}

bool imap_parse_date(const char *s, size_t len, struct imap_date *d)
{
	if (len >= 1 && s[0] == ' ')
		return false;
	return date_parts(s, len, len == 10 ? 1 : 2, d);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

bool imap_parse_datetime(const char *s, size_t len, int64_t *unix_time)
{
	/* "dd-Mon-yyyy hh:mm:ss +zzzz": 26 octets, the day may be " d" */
	struct imap_date d;
	unsigned hh, mm, ss, zh, zm;
	if (len != 26 || !date_parts(s, 11, 2, &d) || s[11] != ' ' || s[14] != ':' ||
	    s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
		return false;
	if (!digits(s + 12, 2, &hh) || !digits(s + 15, 2, &mm) || !digits(s + 18, 2, &ss) ||
	    !digits(s + 22, 2, &zh) || !digits(s + 24, 2, &zm))
		return false;
	if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
		return false;
	int64_t t = days_from_civil(d.year, d.month, d.day) * 86400 + hh * 3600 + mm * 60 + ss;
	int64_t zone = (int64_t)(zh * 3600 + zm * 60);
	*unix_time = s[21] == '+' ? t - zone : t + zone;
	return true;
}
