/*
 * mime_tree.c - the streaming MIME structure parser (see mime_tree.h).
 *
 * The octets are taken a line at a time without holding the line: what is
 * kept is its first MIME_BOUNDARY_MAX + 8 octets (enough to recognise a
 * boundary line) and, while a part's header is read, the header section.
 * Counts of line ends (all, and those without a CR) let every part's body
 * size and line count be worked out at its end without re-reading it.
 */
#include "proto/mime_tree.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum part_state {
	PS_HEADER,      /* reading the part's header section */
	PS_BODY,        /* a leaf's body */
	PS_PREAMBLE,    /* multipart, before its first boundary */
	PS_PARTS,       /* multipart, between boundaries (a child is open or skipped) */
	PS_EPILOGUE,    /* multipart, after its close delimiter */
	PS_DONE,
};

static struct mime_part *top(struct mime_tree *t)
{
	return &t->parts[t->stack[t->depth - 1]];
}

/* ---- parts ---- */

static size_t new_part(struct mime_tree *t, size_t parent, uint64_t hdr_off)
{
	if (t->nparts >= t->opts.max_parts) {
		t->too_many = true;
		return MIME_NONE;
	}
	if (t->nparts == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 8;
		t->parts = xrealloc(t->parts, t->cap * sizeof(*t->parts));
	}
	size_t idx = t->nparts++;
	struct mime_part *p = &t->parts[idx];
	memset(p, 0, sizeof(*p));
	p->parent = parent;
	p->first_child = p->next_sibling = MIME_NONE;
	p->depth = parent == MIME_NONE ? 0 : t->parts[parent].depth + 1;
	p->hdr_off = hdr_off;
	p->state = PS_HEADER;
	p->hdr_bare = t->bare_lf;
	if (parent != MIME_NONE) {
		size_t *link = &t->parts[parent].first_child;
		while (*link != MIME_NONE)
			link = &t->parts[*link].next_sibling;
		*link = idx;
	}
	t->stack[t->depth++] = idx;
	t->hdr_len = 0;
	return idx;
}

/* ---- header fields ---- */

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static void skip_ws(const char *v, size_t len, size_t *i)
{
	while (*i < len) {
		if (v[*i] == ' ' || v[*i] == '\t' || v[*i] == '\r' || v[*i] == '\n') {
			(*i)++;
		} else if (v[*i] == '(') {
			/* a comment (RFC 2045 allows them in structured fields) */
			size_t depth = 0;
			while (*i < len) {
				if (v[*i] == '\\' && *i + 1 < len)
					(*i)++;
				else if (v[*i] == '(')
					depth++;
				else if (v[*i] == ')' && --depth == 0)
					break;
				(*i)++;
			}
			if (*i < len)
				(*i)++;
		} else {
			break;
		}
	}
}

static char *token(const char *v, size_t len, size_t *i)
{
	size_t s = *i;
	while (*i < len && (unsigned char)v[*i] > 0x20 && v[*i] != 0x7f && !is_tspecial(v[*i]))
		(*i)++;
	return *i > s ? xstrndup(v + s, *i - s) : NULL;
}

static char *quoted(const char *v, size_t len, size_t *i)
{
	char *out = xmalloc(len - *i + 1);
	size_t n = 0;
	(*i)++;
	while (*i < len && v[*i] != '"') {
		if (v[*i] == '\\' && *i + 1 < len)
			(*i)++;
		out[n++] = v[(*i)++];
	}
	if (*i < len)
		(*i)++;
	out[n] = '\0';
	return out;
}

/* ";" name "=" value ... from v[*i] (RFC 2045 5.1, RFC 2183 2). */
static void params(const char *v, size_t len, size_t i, struct mime_param **out, size_t *n)
{
	for (;;) {
		skip_ws(v, len, &i);
		if (i >= len)
			return;
		if (v[i] != ';') {
			/* junk: resynchronise at the next ';' */
			while (i < len && v[i] != ';')
				i++;
			continue;
		}
		i++;
		skip_ws(v, len, &i);
		char *name = token(v, len, &i);
		skip_ws(v, len, &i);
		if (name == NULL || i >= len || v[i] != '=') {
			free(name);
			continue;
		}
		i++;
		skip_ws(v, len, &i);
		char *value;
		if (i < len && v[i] == '"') {
			value = quoted(v, len, &i);
		} else {
			/* lenient: a value runs to ';' or white space (unquoted '/' etc.) */
			size_t s = i;
			while (i < len && v[i] != ';' && v[i] != ' ' && v[i] != '\t')
				i++;
			value = xstrndup(v + s, i - s);
		}
		if (*n >= MIME_PARAMS_MAX) {
			free(name);
			free(value);
			continue;
		}
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[*n].name = name;
		(*out)[*n].value = value;
		(*n)++;
	}
}

static void content_type(struct mime_part *p, const char *v, size_t len)
{
	size_t i = 0;
	skip_ws(v, len, &i);
	char *type = token(v, len, &i);
	skip_ws(v, len, &i);
	if (type == NULL || i >= len || v[i] != '/') {
		free(type);
		return;     /* invalid: the default applies (RFC 2045 5.2) */
	}
	i++;
	skip_ws(v, len, &i);
	char *sub = token(v, len, &i);
	if (sub == NULL) {
		free(type);
		return;
	}
	p->type = type;
	p->subtype = sub;
	params(v, len, i, &p->params, &p->nparams);
}

static void disposition(struct mime_part *p, const char *v, size_t len)
{
	size_t i = 0;
	skip_ws(v, len, &i);
	p->disposition = token(v, len, &i);
	if (p->disposition != NULL)
		params(v, len, i, &p->disp_params, &p->ndisp_params);
}

static void language(struct mime_part *p, const char *v, size_t len)
{
	size_t i = 0;
	while (i < len && p->nlanguage < MIME_PARAMS_MAX) {
		skip_ws(v, len, &i);
		size_t s = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != '(')
			i++;
		if (i > s) {
			p->language = xrealloc(p->language, (p->nlanguage + 1) * sizeof(char *));
			p->language[p->nlanguage++] = xstrndup(v + s, i - s);
		}
		if (i < len && v[i] == ',')
			i++;
	}
}

static const struct mime_param *param(const struct mime_param *ps, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(ps[i].name) == strlen(name) && ascii_ieq(ps[i].name, name, strlen(name)))
			return &ps[i];
	return NULL;
}

static bool ieq(const char *a, const char *b)
{
	return a != NULL && strlen(a) == strlen(b) && ascii_ieq(a, b, strlen(b));
}

/* The header section of p is complete in t->hdr: read its fields. */
static void parse_header(struct mime_tree *t, size_t idx)
{
	struct mime_part *p = &t->parts[idx];
	const char *name, *value;
	size_t nlen, vlen, pos = 0;
	static const struct {
		const char *name;
		size_t off;
	} plain[] = {
		{ "Content-ID", offsetof(struct mime_part, id) },
		{ "Content-Description", offsetof(struct mime_part, description) },
		{ "Content-Transfer-Encoding", offsetof(struct mime_part, encoding) },
		{ "Content-MD5", offsetof(struct mime_part, md5) },
		{ "Content-Location", offsetof(struct mime_part, location) },
	};
	while (mime_header_next(t->hdr, t->hdr_len, &pos, &name, &nlen, &value, &vlen)) {
		if (nlen < 8 || !ascii_ieq(name, "Content-", 8))
			continue;
		char *v = mime_header_value(value, vlen);
		size_t len = strlen(v);
		bool used = false;
		for (size_t i = 0; i < ARRAY_LEN(plain); i++) {
			char **f = (char **)((char *)p + plain[i].off);
			if (*f == NULL && strlen(plain[i].name) == nlen && ascii_ieq(name, plain[i].name, nlen)) {
				*f = v;
				used = true;
			}
		}
		if (!used && p->type == NULL && nlen == 12 && ascii_ieq(name, "Content-Type", 12))
			content_type(p, v, len);
		else if (!used && p->disposition == NULL && nlen == 19 &&
			 ascii_ieq(name, "Content-Disposition", 19))
			disposition(p, v, len);
		else if (!used && p->nlanguage == 0 && nlen == 16 && ascii_ieq(name, "Content-Language", 16))
			language(p, v, len);
		if (!used)
			free(v);
	}
	if (p->encoding != NULL) {
		/* the encoding is a token: drop a trailing comment or junk */
		size_t i = 0;
		char *tok = token(p->encoding, strlen(p->encoding), &i);
		free(p->encoding);
		p->encoding = tok;
	}
	if (p->type == NULL) {
		bool digest = p->parent != MIME_NONE && t->parts[p->parent].multipart &&
			      ieq(t->parts[p->parent].subtype, "digest");
		p->type = xstrdup(digest ? "message" : "text");
		p->subtype = xstrdup(digest ? "rfc822" : "plain");
		if (!digest && p->nparams == 0) {
			p->params = xmalloc(sizeof(*p->params));
			p->params[0].name = xstrdup("charset");
			p->params[0].value = xstrdup("us-ascii");
			p->nparams = 1;
		}
	}
	if (ieq(p->type, "multipart")) {
		const struct mime_param *b = param(p->params, p->nparams, "boundary");
		size_t blen = b ? strlen(b->value) : 0;
		if (blen > 0 && blen <= MIME_BOUNDARY_MAX) {
			p->multipart = true;
			p->boundary = xstrdup(b->value);
			p->boundary_len = blen;
		}
	} else if (ieq(p->type, "message") && (ieq(p->subtype, "rfc822") || ieq(p->subtype, "global"))) {
		/* an encoded message is opaque until decoded: a leaf */
		p->message = p->encoding == NULL || ieq(p->encoding, "7bit") ||
			     ieq(p->encoding, "8bit") || ieq(p->encoding, "binary");
	}
	if (idx == 0 || t->parts[p->parent].message)
		p->envelope = mime_envelope_build(t->hdr, t->hdr_len);
}

/* The empty line ending p's header ends at body_off. */
static void header_end(struct mime_tree *t, uint64_t body_off)
{
	size_t idx = t->stack[t->depth - 1];
	struct mime_part *p = &t->parts[idx];
	p->body_off = body_off;
	p->hdr_octets = body_off - p->hdr_off + (t->bare_lf - p->hdr_bare);
	p->lf_start = t->lf;
	p->bare_start = t->bare_lf;
	parse_header(t, idx);
	p = &t->parts[idx];
	if ((p->multipart || p->message) && p->depth + 1 > t->opts.max_depth) {
		t->too_deep = true;
		p->multipart = p->message = false;
	}
	if (p->multipart) {
		p->state = PS_PREAMBLE;
	} else if (p->message) {
		p->state = PS_PARTS;
		if (new_part(t, idx, body_off) == MIME_NONE) {
			t->parts[idx].message = false;
			t->parts[idx].state = PS_BODY;
		}
	} else {
		p->state = PS_BODY;
	}
}

/*
 * Close the innermost open part.  The line starting at line_off ends it;
 * the line end before that line (prev_eol_len octets, if any) belongs to
 * whatever follows (RFC 2046 5.1.1), so the body stops before it.
 */
static void close_top(struct mime_tree *t, uint64_t line_off, bool at_eof)
{
	size_t idx = t->stack[t->depth - 1];
	struct mime_part *p = &t->parts[idx];
	uint64_t eol = at_eof ? 0 : t->prev_eol_len;
	uint64_t e = line_off - eol;     /* where the body would end */
	/* the counters include the current line's end and the one before */
	uint64_t lf_end = t->lf - (t->cur_eol_len ? 1 : 0) - (eol ? 1 : 0);
	uint64_t bare_end = t->bare_lf - (t->cur_eol_len == 1 ? 1 : 0) - (eol == 1 ? 1 : 0);
	/* does the body's last line lack its line end? (at the end, the
	 * last line was passed to end_line with eol_len 0 if it had content) */
	bool partial = t->prev_line_len > 0 && (!at_eof || t->prev_eol_len == 0);

	if (p->state == PS_HEADER) {
		/* no empty line: the header runs to here, the body is empty */
		uint64_t end = e > p->hdr_off ? e : p->hdr_off;
		p->body_off = end;
		p->hdr_octets = end - p->hdr_off + (bare_end - p->hdr_bare);
		p->lf_start = lf_end;
		p->bare_start = bare_end;
		parse_header(t, idx);
		p = &t->parts[idx];
		p->multipart = p->message = false;
	}
	/* A child that ends after e - its empty header or body sits right
	 * before the boundary line, so the line end before that line is also
	 * its header's last - ends where the line starts; so does its parent,
	 * which has to contain it. */
	uint64_t child_end = 0;
	for (size_t c = p->first_child; c != MIME_NONE; c = t->parts[c].next_sibling)
		child_end = t->parts[c].end_off;
	if (!at_eof && p->first_child != MIME_NONE && child_end > e) {
		e = line_off;
		lf_end += eol ? 1 : 0;
		bare_end += eol == 1 ? 1 : 0;
		partial = false;
	}
	if (e >= p->body_off && (line_off > p->body_off || at_eof)) {
		p->end_off = e;
		p->body_octets = (e - p->body_off) + (bare_end - p->bare_start);
		p->body_lines = (lf_end - p->lf_start) + (partial && e > p->body_off ? 1 : 0);
	} else {
		p->end_off = p->body_off;
		p->body_octets = 0;
		p->body_lines = 0;
	}
	p->state = PS_DONE;
	t->depth--;
}

/* "--boundary" or "--boundary--", then only white space. */
static int boundary_match(const struct mime_tree *t, size_t content_len, const struct mime_part *p)
{
	size_t n = p->boundary_len;
	if (content_len < 2 + n || memcmp(t->line + 2, p->boundary, n) != 0)
		return 0;
	size_t i = 2 + n;
	int kind = 1;
	if (content_len >= i + 2 && t->line[i] == '-' && t->line[i + 1] == '-') {
		kind = 2;
		i += 2;
	}
	for (; i < content_len; i++)
		if (t->line[i] != ' ' && t->line[i] != '\t')
			return 0;
	return kind;
}

/* A line ended: content_len octets, then eol_len (0 at the end). */
static void end_line(struct mime_tree *t, size_t content_len, size_t eol_len, bool at_eof)
{
	uint64_t line_off = t->line_start;
	if (content_len >= 2 && content_len <= sizeof(t->line) && t->line[0] == '-' &&
	    t->line[1] == '-') {
		for (size_t k = t->depth; k-- > 0;) {
			struct mime_part *m = &t->parts[t->stack[k]];
			int kind;
			if (!m->multipart || m->closed || m->state == PS_HEADER ||
			    (kind = boundary_match(t, content_len, m)) == 0)
				continue;
			/* the boundary line is no part of an open header */
			if (top(t)->state == PS_HEADER)
				t->hdr_len = t->hdr_line_mark;
			while (t->depth > k + 1)
				close_top(t, line_off, false);
			m = &t->parts[t->stack[k]];
			if (kind == 2) {
				m->closed = true;
				m->state = PS_EPILOGUE;
			} else {
				m->state = PS_PARTS;
				(void)new_part(t, t->stack[k], line_off + content_len + eol_len);
			}
			goto done;
		}
	}
	if (top(t)->state == PS_HEADER && content_len == 0 && !at_eof)
		header_end(t, line_off + eol_len);
done:
	t->prev_line_len = content_len;
	t->prev_eol_len = eol_len;
	t->line_start = line_off + content_len + eol_len;
	t->line_len = 0;
	t->hdr_line_mark = t->hdr_len;
}

void mime_tree_init(struct mime_tree *t, const struct mime_tree_opts *opts)
{
	memset(t, 0, sizeof(*t));
	if (opts != NULL)
		t->opts = *opts;
	if (t->opts.max_depth == 0)
		t->opts.max_depth = MIME_DEPTH_DEFAULT;
	if (t->opts.max_parts == 0)
		t->opts.max_parts = MIME_PARTS_DEFAULT;
	t->stack = xmalloc((t->opts.max_depth + 2) * sizeof(*t->stack));
	(void)new_part(t, MIME_NONE, 0);
}

static void hdr_add(struct mime_tree *t, const char *s, size_t n)
{
	if (n > MIME_HEADER_MAX - t->hdr_len) {
		t->header_truncated = true;
		n = MIME_HEADER_MAX - t->hdr_len;
	}
	if (n == 0)
		return;
	if (t->hdr_cap - t->hdr_len < n) {
		t->hdr_cap = t->hdr_len + n < 4096 ? 4096 : 2 * (t->hdr_len + n);
		if (t->hdr_cap > MIME_HEADER_MAX)
			t->hdr_cap = MIME_HEADER_MAX;
		t->hdr = xrealloc(t->hdr, t->hdr_cap);
	}
	memcpy(t->hdr + t->hdr_len, s, n);
	t->hdr_len += n;
}

/* Content octets of the current line (no LF among them). */
static void add_content(struct mime_tree *t, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (t->depth > 0 && top(t)->state == PS_HEADER)
		hdr_add(t, s, n);
	if (t->line_len < sizeof(t->line)) {
		size_t keep = sizeof(t->line) - t->line_len;
		memcpy(t->line + t->line_len, s, n < keep ? n : keep);
	}
	t->line_len += n;
	t->cr = s[n - 1] == '\r';
	t->off += n;
}

void mime_tree_feed(struct mime_tree *t, const char *buf, size_t len)
{
	size_t i = 0;
	if (t->finished)
		return;
	while (i < len) {
		const char *lf = memchr(buf + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (buf + i)) : len - i;
		add_content(t, buf + i, n);
		i += n;
		if (lf == NULL)
			break;
		if (t->depth > 0 && top(t)->state == PS_HEADER)
			hdr_add(t, "\n", 1);
		bool cr = t->line_len > 0 && t->cr;
		t->lf++;
		if (!cr)
			t->bare_lf++;
		t->off++;
		i++;
		t->cur_eol_len = cr ? 2 : 1;
		end_line(t, t->line_len - (cr ? 1 : 0), cr ? 2 : 1, false);
	}
}

void mime_tree_finish(struct mime_tree *t)
{
	if (t->finished)
		return;
	t->cur_eol_len = 0;
	/* an unterminated last line may still be a boundary */
	if (t->line_len > 0)
		end_line(t, t->line_len, 0, true);
	while (t->depth > 0)
		close_top(t, t->off, true);
	t->finished = true;
}

static void params_free(struct mime_param *ps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ps[i].name);
		free(ps[i].value);
	}
	free(ps);
}

void mime_tree_free(struct mime_tree *t)
{
	for (size_t i = 0; i < t->nparts; i++) {
		struct mime_part *p = &t->parts[i];
		free(p->type);
		free(p->subtype);
		params_free(p->params, p->nparams);
		free(p->id);
		free(p->description);
		free(p->encoding);
		free(p->md5);
		free(p->location);
		free(p->disposition);
		params_free(p->disp_params, p->ndisp_params);
		for (size_t k = 0; k < p->nlanguage; k++)
			free(p->language[k]);
		free(p->language);
		mime_envelope_free(p->envelope);
		free(p->boundary);
	}
	free(t->parts);
	free(t->stack);
	free(t->hdr);
	memset(t, 0, sizeof(*t));
}

size_t mime_tree_section(const struct mime_tree *t, const char *section)
{
	size_t cur = 0;
	const char *s = section;
	if (t->nparts == 0)
		return MIME_NONE;
	while (*s != '\0') {
		uint64_t n = 0;
		const char *d = s;
		while (*s >= '0' && *s <= '9' && n < 100000)
			n = n * 10 + (uint64_t)(*s++ - '0');
		if (s == d || n == 0 || (*s != '\0' && *s != '.'))
			return MIME_NONE;
		const struct mime_part *p = &t->parts[cur];
		bool message_node = cur == 0 || t->parts[p->parent].message;
		if (p->multipart) {
			size_t c = p->first_child;
			while (c != MIME_NONE && --n > 0)
				c = t->parts[c].next_sibling;
			if (c == MIME_NONE)
				return MIME_NONE;
			cur = c;
		} else if (!(message_node && n == 1)) {
			return MIME_NONE;
		}
		if (*s == '.') {
			s++;
			if (*s == '\0')
				return MIME_NONE;
			if (t->parts[cur].message && t->parts[cur].first_child != MIME_NONE)
				cur = t->parts[cur].first_child;
		}
	}
	return cur;
}
