/*
 * imap_fetch.c - FETCH and UID FETCH (RFC 9051 6.4.5, 7.5.2): FLAGS,
 * UID, INTERNALDATE, RFC822.SIZE, MODSEQ, ENVELOPE, BODYSTRUCTURE, BODY,
 * BODY[section]<partial> and BODY.PEEK, RFC822, RFC822.HEADER,
 * RFC822.TEXT, and BINARY[part]<partial>, BINARY.PEEK and BINARY.SIZE
 * (RFC 3516): the part with its Content-Transfer-Encoding undone
 * (proto/mime_cte.c), as a literal8 when it holds a NUL; its size is
 * measured by decoding it once before the literal is announced, then it
 * is decoded again as it streams.
 *
 * The structure comes from proto/mime_tree.c, fed the file in chunks.
 * Sections are sent as literals whose size is known before the first
 * octet (the CRLF sizes the tree counts), and streamed: the octets are
 * read from the file, line ends made CRLF, as the output drains below
 * the low-water mark, so a 1 GiB message costs the mark, not a GiB.  If
 * the file changed under us the literal is still exactly its announced
 * size (cut, or padded with spaces) so the client never loses the frame.
 *
 * DESIGN.md invariant 2: a message file over IMAP_FETCH_LOOP_MAX is read
 * on a worker, never on the loop.  Before its first item a job parses its
 * structure, measures its BINARY parts and reads its HEADER.FIELDS (the
 * "prep"); its literals stream from a read-ahead buffer that a job fills
 * IMAP_FETCH_AHEAD octets at a time, when the output has drained below
 * the mark, so the FETCH stays in order and the output stays bounded.
 * Smaller files (most mail, and in the page cache when just delivered or
 * listed) are read on the loop: a worker handoff per 4 KiB message would
 * cost more than the read.  The open() and fstat() stay on the loop.
 */
#include "imap/imap_session.h"
#include "core/util.h"
#include "core/workers.h"
#include "proto/imap_write.h"
#include "proto/mime_cte.h"
#include "proto/mime_tree.h"

#include <errno.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_FETCH_CHUNK 65536
#define IMAP_FETCH_LOOP_MAX (64 * 1024)   /* bigger files are read on a worker */
#define IMAP_FETCH_AHEAD (256 * 1024)     /* octets per read job (SESSION_OUT_HIGH) */
#define IMAP_FIELDS_MAX 64

enum fitem_kind {
	FI_UID, FI_FLAGS, FI_INTERNALDATE, FI_SIZE, FI_MODSEQ, FI_ENVELOPE, FI_BODYSTRUCTURE, FI_BODY,
	FI_SECTION,
};

enum fsec_text { FS_NONE, FS_HEADER, FS_FIELDS, FS_FIELDS_NOT, FS_TEXT, FS_MIME };

struct fitem {
	enum fitem_kind kind;
	/* FI_SECTION */
	char part[64];            /* "1.2" or "" */
	enum fsec_text text;
	char *fields[IMAP_FIELDS_MAX];
	size_t nfields;
	bool peek;
	bool binary, binary_size; /* BINARY[...], BINARY.SIZE[...] (RFC 3516) */
	bool partial;
	uint64_t poff, plen;
	char *label;              /* "BODY[HEADER]", "RFC822", ... */
};

struct imap_fetch {
	struct fitem *items;
	size_t nitems;
	size_t *idx, n, pos;
	size_t item;              /* next item of message pos; SIZE_MAX: not begun */
	bool uid, want_flags, add_flags;
	struct imap_msg msg;      /* the current message as it began (the folder
				   * may be rescanned while output drains, so
				   * no index into it is kept) */
	int fd;
	struct mime_tree tree;
	bool have_tree;
	uint32_t *seen;           /* UIDs to get \Seen before the OK */
	size_t nseen;
	uint64_t changedsince;    /* CHANGEDSINCE: only messages above it */
	bool changedsince_set;
	/* a literal being streamed */
	bool streaming;
	uint64_t spos, send, sskip, sleft;
	bool sprev_cr;
	bool sdecode;             /* BINARY: octets go through dec */
	struct mime_cte_dec dec;
	bool unknown_cte;         /* a BINARY part we cannot decode: NO at the end */
	/* a big file (over IMAP_FETCH_LOOP_MAX): read by jobs */
	bool big, prepped;
	bool loading;             /* a job reads: the loop leaves fx alone until its done() */
	bool orphan;              /* the FETCH ended meanwhile: done() frees it */
	struct imap_session *owner;   /* its conn is referenced while loading */
	char *rbuf;               /* read ahead: the file's [roff, roff + rlen) */
	uint64_t roff, rnext;
	size_t rlen;
	bool reof;                /* rbuf ends at the end of the file */
	struct fetch_pre {        /* per item, from the prep job */
		bool set;
		uint64_t size;        /* BINARY: the decoded size */
		bool nul;
		struct evbuffer *fields;   /* HEADER.FIELDS (.NOT): the text */
	} *pre;
};

#define FETCH_BEGIN SIZE_MAX

/* ---- item parsing ------------------------------------------------------------------ */

static void fitem_free(struct fitem *it)
{
	for (size_t i = 0; i < it->nfields; i++)
		free(it->fields[i]);
	free(it->label);
}

static void fetch_pre_clear(struct imap_fetch *fx)
{
	if (fx->pre == NULL)
		return;
	for (size_t i = 0; i < fx->nitems; i++)
		if (fx->pre[i].fields)
			evbuffer_free(fx->pre[i].fields);
	free(fx->pre);
	fx->pre = NULL;
}

static void fetch_free(struct imap_fetch *fx)
{
	fetch_pre_clear(fx);
	for (size_t i = 0; i < fx->nitems; i++)
		fitem_free(&fx->items[i]);
	if (fx->have_tree)
		mime_tree_free(&fx->tree);
	if (fx->fd >= 0)
		close(fx->fd);
	free(fx->rbuf);
	free(fx->items);
	free(fx->idx);
	free(fx->seen);
	free(fx);
}

void imap_fetch_free(struct imap_session *s)
{
	struct imap_fetch *fx = s->fetch;
	if (fx == NULL)
		return;
	s->fetch = NULL;
	if (fx->loading)
		fx->orphan = true;   /* a worker has it: its done() frees it */
	else
		fetch_free(fx);
}

/* "HEADER.FIELDS (A B)" and friends after "BODY[": up to ']'. */
static bool fsec_parse(struct fitem *it, const char *p, const char **end)
{
	size_t o = 0;

	while ((*p >= '0' && *p <= '9') || *p == '.') {
		if (*p == '.' && !(p[1] >= '0' && p[1] <= '9'))
			break;
		if (o + 1 >= sizeof(it->part))
			return false;
		it->part[o++] = *p++;
	}
	it->part[o] = '\0';
	if (o > 0 && *p == '.')
		p++;
	else if (o > 0 && *p != ']')
		return false;
	if (strncasecmp(p, "HEADER.FIELDS.NOT", 17) == 0) {
		it->text = FS_FIELDS_NOT;
		p += 17;
	} else if (strncasecmp(p, "HEADER.FIELDS", 13) == 0) {
		it->text = FS_FIELDS;
		p += 13;
	} else if (strncasecmp(p, "HEADER", 6) == 0) {
		it->text = FS_HEADER;
		p += 6;
	} else if (strncasecmp(p, "TEXT", 4) == 0) {
		it->text = FS_TEXT;
		p += 4;
	} else if (strncasecmp(p, "MIME", 4) == 0 && o > 0) {
		it->text = FS_MIME;
		p += 4;
	}
	if (it->text == FS_FIELDS || it->text == FS_FIELDS_NOT) {
		if (*p++ != ' ' || *p++ != '(')
			return false;
		while (*p && *p != ')') {
			const char *w = p;
			bool q = *p == '"';
			if (q)
				w = ++p;
			while (*p && *p != ')' && (q ? *p != '"' : *p != ' '))
				p++;
			if (p == w || it->nfields == IMAP_FIELDS_MAX)
				return false;
			it->fields[it->nfields++] = xstrndup(w, (size_t)(p - w));
			if (q && *p == '"')
				p++;
			while (*p == ' ')
				p++;
		}
		if (*p++ != ')' || it->nfields == 0)
			return false;
	}
	if (*p != ']')
		return false;
	*end = p + 1;
	return true;
}

static bool fitem_parse(struct fitem *it, const char *s)
{
	static const struct { const char *n; enum fitem_kind k; } simple[] = {
		{ "UID", FI_UID }, { "FLAGS", FI_FLAGS }, { "INTERNALDATE", FI_INTERNALDATE },
		{ "RFC822.SIZE", FI_SIZE }, { "MODSEQ", FI_MODSEQ }, { "ENVELOPE", FI_ENVELOPE },
		{ "BODYSTRUCTURE", FI_BODYSTRUCTURE }, { "BODY", FI_BODY },
	};
	const char *p, *end;

	memset(it, 0, sizeof(*it));
	for (size_t i = 0; i < ARRAY_LEN(simple); i++)
		if (strcasecmp(s, simple[i].n) == 0) {
			it->kind = simple[i].k;
			return true;
		}
	it->kind = FI_SECTION;
	if (strcasecmp(s, "RFC822") == 0) {
		it->label = xstrdup("RFC822");
		return true;
	}
	if (strcasecmp(s, "RFC822.HEADER") == 0) {
		it->text = FS_HEADER;
		it->peek = true;
		it->label = xstrdup("RFC822.HEADER");
		return true;
	}
	if (strcasecmp(s, "RFC822.TEXT") == 0) {
		it->text = FS_TEXT;
		it->label = xstrdup("RFC822.TEXT");
		return true;
	}
	if (strncasecmp(s, "BODY.PEEK[", 10) == 0) {
		it->peek = true;
		p = s + 10;
	} else if (strncasecmp(s, "BODY[", 5) == 0) {
		p = s + 5;
	} else if (strncasecmp(s, "BINARY.PEEK[", 12) == 0) {
		it->binary = it->peek = true;
		p = s + 12;
	} else if (strncasecmp(s, "BINARY.SIZE[", 12) == 0) {
		it->binary = it->binary_size = it->peek = true;
		p = s + 12;
	} else if (strncasecmp(s, "BINARY[", 7) == 0) {
		it->binary = true;
		p = s + 7;
	} else {
		return false;
	}
	if (!fsec_parse(it, p, &end))
		return false;
	/* RFC 3516 section-binary: part numbers only */
	if (it->binary && (it->text != FS_NONE || (it->binary_size && *end != '\0')))
		return false;
	if (*end == '<') {
		char *e;
		unsigned long long o = strtoull(end + 1, &e, 10), l;
		if (e == end + 1 || *e != '.')
			return false;
		l = strtoull(e + 1, &e, 10);
		if (*e != '>' || e[1] != '\0' || l == 0)
			return false;
		it->partial = true;
		it->poff = o;
		it->plen = l;
	} else if (*end != '\0') {
		return false;
	}
	/* The label: "BODY[" + the section as asked, upper-cased + "]". */
	{
		size_t n = (size_t)(end - p);
		char *l = xasprintf("%s[%.*s", it->binary_size ? "BINARY.SIZE" : it->binary ? "BINARY" : "BODY",
				    (int)n, p);
		for (char *c = l; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 32);
		if (it->partial) {
			it->label = xasprintf("%s<%" PRIu64 ">", l, it->poff);
			free(l);
		} else {
			it->label = l;
		}
	}
	return true;
}

static bool fetch_add(struct imap_fetch *fx, const char *name)
{
	fx->items = xrealloc(fx->items, (fx->nitems + 1) * sizeof(*fx->items));
	if (!fitem_parse(&fx->items[fx->nitems], name)) {
		fitem_free(&fx->items[fx->nitems]);
		return false;
	}
	fx->nitems++;
	return true;
}

static bool fetch_items(struct imap_fetch *fx, const struct imap_arg *a)
{
	static const char *const all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" };
	if (a == NULL)
		return false;
	if (a->type == IMAP_ARG_ATOM) {
		size_t n = strcasecmp(a->s, "ALL") == 0 ? 4 : strcasecmp(a->s, "FAST") == 0 ? 3 :
			strcasecmp(a->s, "FULL") == 0 ? 4 : 0;
		if (n) {
			for (size_t i = 0; i < n; i++)
				fetch_add(fx, all[i]);
			if (strcasecmp(a->s, "FULL") == 0)
				fetch_add(fx, "BODY");
			return true;
		}
		return fetch_add(fx, a->s);
	}
	if (a->type != IMAP_ARG_LIST || a->child == NULL)
		return false;
	for (const struct imap_arg *e = a->child; e; e = e->next)
		if (e->type != IMAP_ARG_ATOM || !fetch_add(fx, e->s))
			return false;
	return true;
}

/* ---- structure writers ---------------------------------------------------------------- */

static void w_nstr(struct evbuffer *b, const char *s)
{
	imap_write_nstring(b, s, s ? strlen(s) : 0, false);
}

static void w_addrs(struct evbuffer *b, const struct mime_addr *a)
{
	if (a == NULL) {
		evbuffer_add(b, "NIL", 3);
		return;
	}
	evbuffer_add(b, "(", 1);
	for (; a; a = a->next) {
		evbuffer_add(b, "(", 1);
		w_nstr(b, a->name);
		evbuffer_add(b, " ", 1);
		w_nstr(b, a->adl);
		evbuffer_add(b, " ", 1);
		w_nstr(b, a->mailbox);
		evbuffer_add(b, " ", 1);
		w_nstr(b, a->host);
		evbuffer_add(b, ")", 1);
	}
	evbuffer_add(b, ")", 1);
}

static void w_envelope(struct evbuffer *b, const struct mime_envelope *e)
{
	static const struct mime_envelope none;
	if (e == NULL)
		e = &none;
	evbuffer_add(b, "(", 1);
	w_nstr(b, e->date);
	evbuffer_add(b, " ", 1);
	w_nstr(b, e->subject);
	const struct mime_addr *lists[] = { e->from, e->sender, e->reply_to, e->to, e->cc, e->bcc };
	for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
		evbuffer_add(b, " ", 1);
		w_addrs(b, lists[i]);
	}
	evbuffer_add(b, " ", 1);
	w_nstr(b, e->in_reply_to);
	evbuffer_add(b, " ", 1);
	w_nstr(b, e->message_id);
	evbuffer_add(b, ")", 1);
}

static void w_params(struct evbuffer *b, const struct mime_param *p, size_t n)
{
	if (n == 0) {
		evbuffer_add(b, "NIL", 3);
		return;
	}
	evbuffer_add(b, "(", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			evbuffer_add(b, " ", 1);
		w_nstr(b, p[i].name);
		evbuffer_add(b, " ", 1);
		w_nstr(b, p[i].value);
	}
	evbuffer_add(b, ")", 1);
}

/* disposition, language, location (the extension data both kinds share) */
static void w_ext_tail(struct evbuffer *b, const struct mime_part *p)
{
	evbuffer_add(b, " ", 1);
	if (p->disposition) {
		evbuffer_add(b, "(", 1);
		w_nstr(b, p->disposition);
		evbuffer_add(b, " ", 1);
		w_params(b, p->disp_params, p->ndisp_params);
		evbuffer_add(b, ")", 1);
	} else {
		evbuffer_add(b, "NIL", 3);
	}
	evbuffer_add(b, " ", 1);
	if (p->nlanguage == 0) {
		evbuffer_add(b, "NIL", 3);
	} else if (p->nlanguage == 1) {
		w_nstr(b, p->language[0]);
	} else {
		evbuffer_add(b, "(", 1);
		for (size_t i = 0; i < p->nlanguage; i++) {
			if (i)
				evbuffer_add(b, " ", 1);
			w_nstr(b, p->language[i]);
		}
		evbuffer_add(b, ")", 1);
	}
	evbuffer_add(b, " ", 1);
	w_nstr(b, p->location);
}

static void w_body(struct evbuffer *b, const struct mime_tree *t, size_t i, bool ext)
{
	const struct mime_part *p = &t->parts[i];

	evbuffer_add(b, "(", 1);
	if (p->multipart && p->first_child != MIME_NONE) {
		for (size_t c = p->first_child; c != MIME_NONE; c = t->parts[c].next_sibling)
			w_body(b, t, c, ext);
		evbuffer_add(b, " ", 1);
		w_nstr(b, p->subtype);
		if (ext) {
			evbuffer_add(b, " ", 1);
			w_params(b, p->params, p->nparams);
			w_ext_tail(b, p);
		}
		evbuffer_add(b, ")", 1);
		return;
	}
	bool text = p->type && strcasecmp(p->type, "text") == 0;
	w_nstr(b, p->type ? p->type : "text");
	evbuffer_add(b, " ", 1);
	w_nstr(b, p->subtype ? p->subtype : "plain");
	evbuffer_add(b, " ", 1);
	if (p->nparams == 0 && text) {
		evbuffer_add_printf(b, "(\"charset\" \"us-ascii\")");
	} else {
		w_params(b, p->params, p->nparams);
	}
	evbuffer_add(b, " ", 1);
	w_nstr(b, p->id);
	evbuffer_add(b, " ", 1);
	w_nstr(b, p->description);
	evbuffer_add(b, " ", 1);
	w_nstr(b, p->encoding ? p->encoding : "7bit");
	evbuffer_add_printf(b, " %" PRIu64, p->body_octets);
	if (p->message && p->first_child != MIME_NONE) {
		evbuffer_add(b, " ", 1);
		w_envelope(b, t->parts[p->first_child].envelope);
		evbuffer_add(b, " ", 1);
		w_body(b, t, p->first_child, ext);
		evbuffer_add_printf(b, " %" PRIu64, p->body_lines);
	} else if (text) {
		evbuffer_add_printf(b, " %" PRIu64, p->body_lines);
	}
	if (ext) {
		evbuffer_add(b, " ", 1);
		w_nstr(b, p->md5);
		w_ext_tail(b, p);
	}
	evbuffer_add(b, ")", 1);
}

/* ---- per message ------------------------------------------------------------------------- */

static bool fetch_tree(struct imap_fetch *fx)
{
	char buf[IMAP_FETCH_CHUNK];
	ssize_t r;
	off_t off = 0;

	if (fx->have_tree)
		return true;
	mime_tree_init(&fx->tree, NULL);
	fx->have_tree = true;
	while ((r = pread(fx->fd, buf, sizeof(buf), off)) > 0) {
		mime_tree_feed(&fx->tree, buf, (size_t)r);
		off += r;
	}
	mime_tree_finish(&fx->tree);
	return r == 0;
}

/* Octets of the file at off for a literal: pread for a small file, the
 * read-ahead buffer for a big one; -2 when the buffer does not hold off
 * (a job must read it: fetch_needs_read, fetch_load). */
/* Must a job read for off (a big file whose buffer does not hold it)? */
static bool fetch_needs_read(const struct imap_fetch *fx, uint64_t off)
{
	if (!fx->big || (fx->rbuf && off >= fx->roff && off < fx->roff + fx->rlen))
		return false;
	return !(fx->rbuf && fx->reof && off >= fx->roff + fx->rlen);
}

static ssize_t fetch_pread(struct imap_fetch *fx, char *buf, size_t want, uint64_t off)
{
	if (!fx->big)
		return pread(fx->fd, buf, want, (off_t)off);
	if (fx->rbuf && off >= fx->roff && off < fx->roff + fx->rlen) {
		size_t have = (size_t)(fx->roff + fx->rlen - off);
		size_t n = want < have ? want : have;
		memcpy(buf, fx->rbuf + (off - fx->roff), n);
		return (ssize_t)n;
	}
	if (fx->rbuf && fx->reof && off >= fx->roff + fx->rlen)
		return 0;
	return -2;
}

static void fetch_internaldate(struct evbuffer *b, int64_t t)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)(t < 0 ? 0 : t);
	struct tm tm;
	gmtime_r(&tt, &tm);
	evbuffer_add_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon],
			    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Start a literal of the CRLF octets [from, to) of the file (size crlf). */
static void fetch_stream_start(struct imap_session *s, struct imap_fetch *fx, const struct fitem *it,
			       uint64_t from, uint64_t to, uint64_t crlf)
{
	uint64_t skip = 0, len = crlf;
	if (it->partial) {
		skip = it->poff < crlf ? it->poff : crlf;
		len = crlf - skip < it->plen ? crlf - skip : it->plen;
	}
	evbuffer_add_printf(imap_out(s), "{%" PRIu64 "}\r\n", len);
	fx->sdecode = false;
	fx->streaming = len > 0;
	fx->spos = from;
	fx->send = to;
	fx->sskip = skip;
	fx->sleft = len;
	fx->sprev_cr = false;
}

/* Decoded octets [sskip, sskip + sleft) of the raw range [spos, send):
 * one chunk of it.  A file shorter than measured is padded with spaces
 * so that the literal keeps its announced size. */
static bool fetch_decode_fill(struct imap_session *s, struct imap_fetch *fx)
{
	enum { RAW = IMAP_FETCH_CHUNK / 2 };
	char in[RAW], o[MIME_CTE_OUT_MAX(RAW)];
	size_t want = fx->send - fx->spos < RAW ? (size_t)(fx->send - fx->spos) : RAW, n, off = 0;
	ssize_t r = want ? fetch_pread(fx, in, want, fx->spos) : 0;

	if (r == -2)
		return false;

	if (r > 0) {
		fx->spos += (uint64_t)r;
		n = mime_cte_feed(&fx->dec, in, (size_t)r, o);
	} else if (want == 0) {
		n = mime_cte_finish(&fx->dec, o);
	} else {
		n = 0;
	}
	if (n == 0 && r <= 0) {
		n = fx->sleft < sizeof(o) ? (size_t)fx->sleft : sizeof(o);
		memset(o, ' ', n);
	}
	if (fx->sskip) {
		off = fx->sskip < n ? (size_t)fx->sskip : n;
		fx->sskip -= off;
	}
	n -= off;
	if (n > fx->sleft)
		n = (size_t)fx->sleft;
	evbuffer_add(imap_out(s), o + off, n);
	fx->sleft -= n;
	return true;
}

/* The decoded size of the raw range [from, to), and whether it holds a NUL. */
static uint64_t fetch_decoded_size(struct imap_fetch *fx, enum mime_cte kind, uint64_t from, uint64_t to,
				   bool *nul)
{
	enum { RAW = IMAP_FETCH_CHUNK / 2 };
	char in[RAW], o[MIME_CTE_OUT_MAX(RAW)];
	struct mime_cte_dec d;
	uint64_t total = 0;
	size_t n;
	ssize_t r;

	*nul = false;
	mime_cte_init(&d, kind);
	while (from < to && (r = pread(fx->fd, in, to - from < RAW ? (size_t)(to - from) : RAW, (off_t)from)) > 0) {
		from += (uint64_t)r;
		n = mime_cte_feed(&d, in, (size_t)r, o);
		*nul = *nul || memchr(o, '\0', n) != NULL;
		total += n;
	}
	n = mime_cte_finish(&d, o);
	*nul = *nul || memchr(o, '\0', n) != NULL;
	return total + n;
}

/* BINARY[part] / BINARY.SIZE[part]: the part decoded.  The whole message,
 * a multipart and a message/rfc822 part are not decoded (RFC 3516 4.1:
 * only leaf parts carry a transfer encoding); their line ends become
 * CRLF as in BODY[]. */
/* The raw range and encoding of a BINARY item; false: no such part. */
static bool fetch_binary_range(struct imap_fetch *fx, const struct fitem *it, enum mime_cte *kind, uint64_t *from,
			       uint64_t *to)
{
	*kind = MIME_CTE_IDENTITY;
	*from = 0;
	if (it->part[0] == '\0') {
		off_t end = lseek(fx->fd, 0, SEEK_END);
		*to = end > 0 ? (uint64_t)end : 0;
		return true;
	}
	size_t i;
	if (!fetch_tree(fx) || (i = mime_tree_section(&fx->tree, it->part)) == MIME_NONE)
		return false;
	const struct mime_part *p = &fx->tree.parts[i];
	if (!p->multipart && !p->message)
		*kind = mime_cte_of(p->encoding);
	*from = p->body_off;
	*to = p->end_off;
	return true;
}

static void fetch_binary(struct imap_session *s, struct imap_fetch *fx, const struct fitem *it)
{
	const struct fetch_pre *pre = fx->pre ? &fx->pre[it - fx->items] : NULL;
	enum mime_cte kind;
	uint64_t from, to, size, skip = 0, len;
	bool nul;

	evbuffer_add_printf(imap_out(s), "%s ", it->label);
	if (!fetch_binary_range(fx, it, &kind, &from, &to)) {
		evbuffer_add(imap_out(s), it->binary_size ? "0" : "NIL", it->binary_size ? 1 : 3);
		return;
	}
	if (kind == MIME_CTE_UNKNOWN) {
		fx->unknown_cte = true;
		evbuffer_add(imap_out(s), it->binary_size ? "0" : "NIL", it->binary_size ? 1 : 3);
		return;
	}
	if (pre && pre->set) {
		size = pre->size;   /* measured on the worker */
		nul = pre->nul;
	} else {
		size = fetch_decoded_size(fx, kind, from, to, &nul);
	}
	if (it->binary_size) {
		evbuffer_add_printf(imap_out(s), "%" PRIu64, size);
		return;
	}
	len = size;
	if (it->partial) {
		skip = it->poff < size ? it->poff : size;
		len = size - skip < it->plen ? size - skip : it->plen;
	}
	/* RFC 3516 4.2: a NUL can only travel in a literal8 */
	evbuffer_add_printf(imap_out(s), "%s{%" PRIu64 "}\r\n", nul ? "~" : "", len);
	mime_cte_init(&fx->dec, kind);
	fx->sdecode = true;
	fx->streaming = len > 0;
	fx->spos = from;
	fx->send = to;
	fx->sskip = skip;
	fx->sleft = len;
}

/* n octets of the CRLF form: the first sskip of the literal are dropped
 * (a partial fetch), past sleft nothing is taken. */
static void fetch_emit(struct imap_fetch *fx, char *o, size_t *olen, const char *p, size_t n)
{
	if (fx->sskip) {
		size_t k = fx->sskip < n ? (size_t)fx->sskip : n;
		fx->sskip -= k;
		p += k;
		n -= k;
	}
	if (n > fx->sleft)
		n = (size_t)fx->sleft;
	memcpy(o + *olen, p, n);
	*olen += n;
	fx->sleft -= n;
}

/* Literal octets until the output is full; true when the literal is done. */
static bool fetch_stream_fill(struct imap_session *s, struct imap_fetch *fx)
{
	char in[IMAP_FETCH_CHUNK];
	struct evbuffer *out = imap_out(s);

	while (fx->sleft > 0 && conn_pending(&s->conn) < SESSION_OUT_HIGH) {
		char o[2 * IMAP_FETCH_CHUNK];
		if (fx->sdecode) {
			if (!fetch_decode_fill(s, fx))
				return false;   /* a job reads on */
			continue;
		}
		size_t olen = 0;
		size_t want = fx->send - fx->spos < sizeof(in) ? (size_t)(fx->send - fx->spos) : sizeof(in);
		ssize_t r = want ? fetch_pread(fx, in, want, fx->spos) : 0;
		if (r == -2)
			return false;
		if (r <= 0) {
			/* The file is shorter than its structure said: keep
			 * the frame with spaces. */
			size_t n = fx->sleft < sizeof(o) ? (size_t)fx->sleft : sizeof(o);
			memset(o, ' ', n);
			evbuffer_add(out, o, n);
			fx->sleft -= n;
			continue;
		}
		fx->spos += (uint64_t)r;
		/* Runs between line ends are copied whole (memchr finds the
		 * LFs); a bare LF gets its CR. */
		for (const char *p = in, *end = in + r; p < end && fx->sleft > 0;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t run = (size_t)((nl ? nl : end) - p);
			if (run) {
				fetch_emit(fx, o, &olen, p, run);
				fx->sprev_cr = p[run - 1] == '\r';
				p += run;
			}
			if (nl) {
				if (!fx->sprev_cr)
					fetch_emit(fx, o, &olen, "\r", 1);
				fetch_emit(fx, o, &olen, "\n", 1);
				fx->sprev_cr = false;
				p++;
			}
		}
		evbuffer_add(out, o, olen);
	}
	if (fx->sleft == 0)
		fx->streaming = false;
	return !fx->streaming;
}

/* HEADER.FIELDS (.NOT): the chosen fields of the header at [from, to),
 * CRLF line ends, the empty line after them. */
static struct evbuffer *fetch_fields_text(struct imap_fetch *fx, const struct fitem *it, uint64_t from, uint64_t to)
{
	size_t len = to - from > 262144 ? 262144 : (size_t)(to - from);
	char *h = xmalloc(len + 1);
	ssize_t r = pread(fx->fd, h, len, (off_t)from);
	struct evbuffer *b = evbuffer_new();
	size_t pos = 0, nlen, vlen;
	const char *name, *value;

	len = r > 0 ? (size_t)r : 0;
	h[len] = '\0';
	while (mime_header_next(h, len, &pos, &name, &nlen, &value, &vlen)) {
		bool listed = false;
		for (size_t i = 0; i < it->nfields; i++)
			if (strlen(it->fields[i]) == nlen && ascii_ieq(it->fields[i], name, nlen))
				listed = true;
		if (listed != (it->text == FS_FIELDS))
			continue;
		/* name ":" value with its folds, line ends made CRLF */
		const char *line = name;
		size_t flen = (size_t)(value + vlen - name);
		for (size_t i = 0; i < flen; i++) {
			if (line[i] == '\n' && (i == 0 || line[i - 1] != '\r'))
				evbuffer_add(b, "\r", 1);
			evbuffer_add(b, &line[i], 1);
		}
		evbuffer_add(b, "\r\n", 2);
	}
	evbuffer_add(b, "\r\n", 2);
	free(h);
	return b;
}

static void fetch_fields(struct imap_session *s, struct imap_fetch *fx, const struct fitem *it, uint64_t from,
			 uint64_t to)
{
	struct fetch_pre *pre = fx->pre ? &fx->pre[it - fx->items] : NULL;
	struct evbuffer *b;

	if (pre && pre->fields) {
		b = pre->fields;   /* read on the worker */
		pre->fields = NULL;
	} else {
		b = fetch_fields_text(fx, it, from, to);
	}
	size_t total = evbuffer_get_length(b);
	uint64_t skip = 0, n = total;
	if (it->partial) {
		skip = it->poff < total ? it->poff : total;
		n = total - skip < it->plen ? total - skip : it->plen;
	}
	evbuffer_drain(b, (size_t)skip);
	evbuffer_add_printf(imap_out(s), "{%" PRIu64 "}\r\n", n);
	evbuffer_remove_buffer(b, imap_out(s), (size_t)n);
	evbuffer_free(b);
}

/* The part a BODY[section] (not the whole message) names, or NULL. */
static const struct mime_part *fetch_section_part(struct imap_fetch *fx, const struct fitem *it)
{
	const struct mime_part *p;
	size_t i;

	if (!fetch_tree(fx) || (i = mime_tree_section(&fx->tree, it->part)) == MIME_NONE)
		return NULL;
	p = &fx->tree.parts[i];
	if ((it->text == FS_HEADER || it->text == FS_TEXT || it->text == FS_FIELDS || it->text == FS_FIELDS_NOT) &&
	    it->part[0] != '\0') {
		if (!p->message || p->first_child == MIME_NONE)
			return NULL;
		p = &fx->tree.parts[p->first_child];
	}
	return p;
}

/* One BODY[...] item: the range, then a literal. */
static void fetch_section(struct imap_session *s, struct imap_fetch *fx, const struct fitem *it,
			  const struct imap_msg *m)
{
	const struct mime_part *p;

	evbuffer_add_printf(imap_out(s), "%s ", it->label);
	if (it->part[0] == '\0' && it->text == FS_NONE) {
		off_t end = lseek(fx->fd, 0, SEEK_END);
		fetch_stream_start(s, fx, it, 0, end > 0 ? (uint64_t)end : 0, m->size);
		return;
	}
	if ((p = fetch_section_part(fx, it)) == NULL) {
		evbuffer_add(imap_out(s), "NIL", 3);
		return;
	}
	switch (it->text) {
	case FS_HEADER:
	case FS_MIME:
		fetch_stream_start(s, fx, it, p->hdr_off, p->body_off, p->hdr_octets);
		break;
	case FS_FIELDS:
	case FS_FIELDS_NOT:
		fetch_fields(s, fx, it, p->hdr_off, p->body_off);
		break;
	case FS_TEXT:
	case FS_NONE:
		fetch_stream_start(s, fx, it, p->body_off, p->end_off, p->body_octets);
		break;
	}
}

/* ENVELOPE, BODY or BODYSTRUCTURE (IMAP_CACHE_*) from the parsed tree. */
static void fetch_render(struct imap_fetch *fx, unsigned which, struct evbuffer *b)
{
	if (which == IMAP_CACHE_ENVELOPE)
		w_envelope(b, fx->tree.nparts ? fx->tree.parts[0].envelope : NULL);
	else if (fx->tree.nparts)
		w_body(b, &fx->tree, 0, which == IMAP_CACHE_BODYSTRUCTURE);
	else
		evbuffer_add_printf(b, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
}

/* The current message's file, opened when first needed. */
static bool fetch_open(struct imap_session *s, struct imap_fetch *fx)
{
	long k;

	if (fx->fd >= 0)
		return true;
	if ((k = imap_folder_find(s->sel->f, fx->msg.uid)) < 0)
		return false;
	fx->fd = imap_folder_open_msg(s->sel->f, (size_t)k);
	return fx->fd >= 0;
}

/* From the folder's cache (no file read), or parsed once and cached:
 * the three texts are made together, as a client that asks for one
 * asks for the others too. */
static void fetch_structure(struct imap_session *s, struct imap_fetch *fx, unsigned which, struct evbuffer *b)
{
	struct imap_folder *f = s->sel->f;
	long k = imap_folder_find(f, fx->msg.uid);
	const char *p;
	size_t len;

	if (k >= 0 && imap_cache_get(&f->v[k], which, &p, &len)) {
		evbuffer_add(b, p, len);
		return;
	}
	if (!fetch_open(s, fx)) {
		fx->tree.nparts = 0;
		fetch_render(fx, which, b);
		return;
	}
	fetch_tree(fx);
	if (k < 0) {
		fetch_render(fx, which, b);
		return;
	}
	struct evbuffer *t[3];
	for (unsigned i = 0; i < 3; i++) {
		t[i] = evbuffer_new();
		fetch_render(fx, i, t[i]);
	}
	size_t l0 = evbuffer_get_length(t[0]), l1 = evbuffer_get_length(t[1]), l2 = evbuffer_get_length(t[2]);
	imap_cache_set(f, (size_t)k, (const char *)evbuffer_pullup(t[0], -1), l0,
		       (const char *)evbuffer_pullup(t[1], -1), l1, (const char *)evbuffer_pullup(t[2], -1), l2);
	for (unsigned i = 0; i < 3; i++)
		evbuffer_free(t[i]);
	imap_cache_get(&f->v[k], which, &p, &len);
	evbuffer_add(b, p, len);
}

/* Item j of the current message. */
static void fetch_item(struct imap_session *s, struct imap_fetch *fx, const struct fitem *it)
{
	const struct imap_msg *m = &fx->msg;
	struct evbuffer *b = imap_out(s);

	switch (it->kind) {
	case FI_UID:
		evbuffer_add_printf(b, "UID %" PRIu32, m->uid);
		break;
	case FI_FLAGS:
		evbuffer_add_printf(b, "FLAGS ");
		imap_write_msg_flags(s, b, m->flags, m->kw);
		break;
	case FI_INTERNALDATE:
		evbuffer_add_printf(b, "INTERNALDATE ");
		fetch_internaldate(b, m->date);
		break;
	case FI_SIZE:
		evbuffer_add_printf(b, "RFC822.SIZE %" PRIu64, m->size);
		break;
	case FI_MODSEQ:
		evbuffer_add_printf(b, "MODSEQ (%" PRIu64 ")", m->modseq);
		break;
	case FI_ENVELOPE:
		evbuffer_add_printf(b, "ENVELOPE ");
		fetch_structure(s, fx, IMAP_CACHE_ENVELOPE, b);
		break;
	case FI_BODYSTRUCTURE:
	case FI_BODY:
		evbuffer_add_printf(b, it->kind == FI_BODY ? "BODY " : "BODYSTRUCTURE ");
		fetch_structure(s, fx, it->kind == FI_BODY ? IMAP_CACHE_BODY : IMAP_CACHE_BODYSTRUCTURE, b);
		break;
	case FI_SECTION:
		if (it->binary)
			fetch_binary(s, fx, it);
		else
			fetch_section(s, fx, it, m);
		break;
	}
}

/* The message at fx->pos begins: false when it is gone (skipped). */
static bool fetch_begin(struct imap_session *s, struct imap_fetch *fx)
{
	struct imap_folder *f = s->sel->f;
	size_t v = fx->idx[fx->pos];
	bool seen = false;
	long k = imap_view_index(s, v);

	if (k < 0 || (fx->changedsince_set && f->v[k].modseq <= fx->changedsince))
		return false;
	/* The file only when an item needs it: sections, or a structure
	 * the cache does not have. */
	bool need_file = false;
	for (size_t i = 0; i < fx->nitems; i++) {
		enum fitem_kind kind = fx->items[i].kind;
		if (kind == FI_SECTION && !fx->items[i].peek)
			seen = true;
		if (kind == FI_SECTION || ((kind == FI_ENVELOPE || kind == FI_BODY || kind == FI_BODYSTRUCTURE) &&
					   f->v[k].cache == NULL))
			need_file = true;
	}
	fx->fd = need_file ? imap_folder_open_msg(f, (size_t)k) : -1;
	if (need_file && fx->fd < 0) {
		/* gone from the disk meanwhile: the next sync says so */
		s->sel->dirty = true;
		return false;
	}
	struct stat st;
	fx->big = fx->fd >= 0 && fstat(fx->fd, &st) == 0 && st.st_size > IMAP_FETCH_LOOP_MAX;
	fx->prepped = false;
	fx->rlen = 0;
	fx->reof = false;
	fx->add_flags = false;
	fx->msg = f->v[k];
	fx->msg.name = NULL;
	fx->msg.cache = NULL;
	if (s->view[v].recent)
		fx->msg.flags |= IMAP_FLAG_RECENT;   /* this session's, not the file's */
	if (seen && !s->readonly && !(f->v[k].flags & IMAP_FLAG_SEEN)) {
		/* RFC 9051 6.4.5: BODY[] sets \Seen; the client hears of it
		 * now, the file is renamed by a job before the tagged OK. */
		fx->seen = xrealloc(fx->seen, (fx->nseen + 1) * sizeof(*fx->seen));
		fx->seen[fx->nseen++] = fx->msg.uid;
		fx->msg.flags |= IMAP_FLAG_SEEN;
		s->view[v].flags = fx->msg.flags & ~(unsigned)IMAP_FLAG_RECENT;
		fx->add_flags = !fx->want_flags;
	}
	evbuffer_add_printf(imap_out(s), "* %zu FETCH (", v + 1);
	s->nfetch++;
	return true;
}

static void fetch_end(struct imap_session *s, struct imap_fetch *fx)
{
	if (fx->add_flags) {
		const struct imap_msg *m = &fx->msg;
		evbuffer_add_printf(imap_out(s), " FLAGS ");
		imap_write_msg_flags(s, imap_out(s), m->flags, m->kw);
	}
	evbuffer_add(imap_out(s), ")\r\n", 3);
	if (fx->have_tree)
		mime_tree_free(&fx->tree);
	fx->have_tree = false;
	if (fx->fd >= 0)
		close(fx->fd);
	fx->fd = -1;
	fetch_pre_clear(fx);
	fx->big = false;
}

/* ---- a big file's reads, on a worker ----------------------------------------------------- */

/* Does the message need its file read before its first item (the
 * structure, a BINARY size, header fields)?  The literals read later. */
static bool fetch_needs_prep(const struct imap_fetch *fx, const struct imap_folder *f)
{
	long k = imap_folder_find(f, fx->msg.uid);
	for (size_t i = 0; i < fx->nitems; i++) {
		const struct fitem *it = &fx->items[i];
		if (it->kind == FI_SECTION && (it->binary || it->part[0] != '\0' || it->text != FS_NONE))
			return true;
		if ((it->kind == FI_ENVELOPE || it->kind == FI_BODY || it->kind == FI_BODYSTRUCTURE) &&
		    (k < 0 || f->v[k].cache == NULL))
			return true;
	}
	return false;
}

/* On the worker: fx is the job's until done() (the loop leaves it). */
static void fetch_prep_work(void *arg)
{
	struct imap_fetch *fx = arg;

	fx->pre = xcalloc(fx->nitems, sizeof(*fx->pre));
	for (size_t i = 0; i < fx->nitems; i++) {
		const struct fitem *it = &fx->items[i];
		struct fetch_pre *pre = &fx->pre[i];
		enum mime_cte kind;
		uint64_t from, to;
		const struct mime_part *p;

		if (it->kind == FI_ENVELOPE || it->kind == FI_BODY || it->kind == FI_BODYSTRUCTURE) {
			fetch_tree(fx);
		} else if (it->kind == FI_SECTION && it->binary) {
			if (fetch_binary_range(fx, it, &kind, &from, &to) && kind != MIME_CTE_UNKNOWN) {
				pre->size = fetch_decoded_size(fx, kind, from, to, &pre->nul);
				pre->set = true;
			}
		} else if (it->kind == FI_SECTION && (it->part[0] != '\0' || it->text != FS_NONE)) {
			p = fetch_section_part(fx, it);
			if (p && (it->text == FS_FIELDS || it->text == FS_FIELDS_NOT))
				pre->fields = fetch_fields_text(fx, it, p->hdr_off, p->body_off);
		}
	}
}

/* On the worker: the next IMAP_FETCH_AHEAD octets from rnext. */
static void fetch_read_work(void *arg)
{
	struct imap_fetch *fx = arg;
	size_t got = 0;
	ssize_t r = 0;

	if (fx->rbuf == NULL)
		fx->rbuf = xmalloc(IMAP_FETCH_AHEAD);
	while (got < IMAP_FETCH_AHEAD &&
	       (r = pread(fx->fd, fx->rbuf + got, IMAP_FETCH_AHEAD - got, (off_t)(fx->rnext + got))) > 0)
		got += (size_t)r;
	fx->roff = fx->rnext;
	fx->rlen = got;
	fx->reof = r <= 0;   /* the end, or an error: the literal is padded */
}

/* Back on the loop: the FETCH goes on (or, ended meanwhile, is freed). */
static void fetch_load_done(void *arg)
{
	struct imap_fetch *fx = arg;
	struct imap_session *s = fx->owner;

	fx->loading = false;
	fx->owner = NULL;
	if (fx->orphan) {
		fetch_free(fx);
	} else if (s->fetch == fx) {
		fx->prepped = true;
		if (imap_fetch_continue(s))
			imap_resume(s);
	}
	conn_unref(&s->conn);   /* may free s */
}

/* Hand fx to a worker for work; the FETCH waits for done. */
static void fetch_load(struct imap_session *s, struct imap_fetch *fx, worker_fn work)
{
	fx->loading = true;
	fx->owner = s;
	conn_ref(&s->conn);
	workers_submit(s->t->delivery_pool, work, fetch_load_done, fx);
}

/* The \Seen that BODY[] set, made durable (renames, state) by a job. */
struct fetch_seen {
	uint32_t *v;
	size_t n;
	bool unknown_cte;
};

/* The tagged reply of a FETCH. */
static void fetch_reply(struct imap_session *s, bool unknown_cte)
{
	if (unknown_cte)
		imap_no(s, "[UNKNOWN-CTE] A part has an encoding the server cannot decode");
	else
		imap_ok(s, "FETCH completed");
}

static void fetch_seen_work(struct imap_job *j)
{
	struct fetch_seen *x = j->arg;
	bool any = false;

	if (j->f == NULL)
		return;
	for (size_t i = 0; i < x->n; i++) {
		long k = imap_folder_find(j->f, x->v[i]);
		if (k < 0 || (j->f->v[k].flags & IMAP_FLAG_SEEN))
			continue;
		if (!imap_folder_set_flags(j->f, (size_t)k, j->f->v[k].flags | IMAP_FLAG_SEEN, j->f->v[k].kw))
			j->err = errno;
		else
			any = true;
	}
	if (any && !imap_folder_save(j->f))
		j->err = errno;
}

static void fetch_seen_done(struct imap_job *j)
{
	struct fetch_seen *x = j->arg;

	if (!j->gone) {
		if (j->err)
			imap_log_error(j->s, "store", j->err);
		fetch_reply(j->s, x->unknown_cte);
	}
	free(x->v);
	free(x);
}

static void fetch_finish(struct imap_session *s, struct imap_fetch *fx)
{
	struct fetch_seen *x;
	struct imap_job *j;

	if (s->sel->f->cache_dirty)
		imap_cache_save_later(s);
	if (fx->nseen == 0) {
		bool unknown = fx->unknown_cte;
		imap_fetch_free(s);
		fetch_reply(s, unknown);
		return;
	}
	x = xcalloc(1, sizeof(*x));
	x->unknown_cte = fx->unknown_cte;
	x->v = fx->seen;
	x->n = fx->nseen;
	fx->seen = NULL;
	imap_fetch_free(s);
	j = imap_job_new(s, s->sel->path, "fetch_seen", fetch_seen_work, fetch_seen_done);
	j->arg = x;
	imap_job_submit(j);
}

/* Does an item need the messages' dates or sizes: INTERNALDATE,
 * RFC822.SIZE, or BODY[] (its literal is the whole message)? */
static bool fetch_wants_stat(const struct imap_fetch *fx)
{
	for (size_t i = 0; i < fx->nitems; i++) {
		const struct fitem *it = &fx->items[i];
		if (it->kind == FI_SIZE || it->kind == FI_INTERNALDATE ||
		    (it->kind == FI_SECTION && !it->binary && it->part[0] == '\0' && it->text == FS_NONE))
			return true;
	}
	return false;
}

/* The messages of the set whose files the scan has not looked at yet
 * (it reads names only): a job stats them first, then the FETCH goes
 * on when the folder is free again (imap_shared_wake). */
struct fetch_stat {
	uint32_t *uids;
	size_t n;
};

static void fetch_stat_work(struct imap_job *j)
{
	struct fetch_stat *x = j->arg;

	if (j->f == NULL)
		return;
	for (size_t i = 0; i < x->n; i++) {
		long k = imap_folder_find(j->f, x->uids[i]);
		if (k >= 0)
			imap_folder_stat(j->f, (size_t)k);
	}
}

static void fetch_stat_done(struct imap_job *j)
{
	struct fetch_stat *x = j->arg;
	free(x->uids);
	free(x);
}

/* True when a job was started for the set's unknown messages. */
static bool fetch_stat_first(struct imap_session *s, struct imap_fetch *fx)
{
	struct imap_folder *f = s->sel->f;
	struct fetch_stat *x;
	struct imap_job *j;

	if (!fetch_wants_stat(fx))
		return false;
	x = xcalloc(1, sizeof(*x));
	for (size_t i = 0; i < fx->n; i++) {
		long k = imap_view_index(s, fx->idx[i]);
		if (k < 0 || imap_msg_known(&f->v[k]))
			continue;
		if (x->uids == NULL)
			x->uids = xcalloc(fx->n - i, sizeof(*x->uids));
		x->uids[x->n++] = f->v[k].uid;
	}
	if (x->n == 0) {
		free(x);
		return false;
	}
	j = imap_job_new(s, s->sel->path, "fetch_stat", fetch_stat_work, fetch_stat_done);
	j->arg = x;
	imap_job_submit(j);
	return true;
}

bool imap_fetch_continue(struct imap_session *s)
{
	struct imap_fetch *fx = s->fetch;

	while (fx) {
		if (fx->loading)
			return false;   /* a worker reads for it: its done() goes on */
		if (s->state != IMAP_S_SELECTED || s->sel == NULL) {
			imap_fetch_free(s);
			return true;
		}
		if (s->sel->busy)
			return false;   /* a job has the folder: its end wakes us */
		if (fx->streaming && !fetch_stream_fill(s, fx)) {
			if (fx->streaming && fetch_needs_read(fx, fx->spos)) {
				fx->rnext = fx->spos;   /* the buffer ran out: a job reads on */
				fetch_load(s, fx, fetch_read_work);
			} else {
				conn_await_drain(&s->conn);
			}
			return false;
		}
		if (conn_pending(&s->conn) >= SESSION_OUT_HIGH) {
			conn_await_drain(&s->conn);
			return false;
		}
		if (fx->item == FETCH_BEGIN) {
			if (fx->pos == fx->n) {
				fetch_finish(s, fx);
				return true;
			}
			if (!fetch_begin(s, fx)) {
				fx->pos++;
				continue;
			}
			fx->item = 0;
			if (fx->big && fetch_needs_prep(fx, s->sel->f)) {
				fetch_load(s, fx, fetch_prep_work);
				return false;
			}
			continue;
		}
		if (fx->item == fx->nitems) {
			fetch_end(s, fx);
			fx->pos++;
			fx->item = FETCH_BEGIN;
			continue;
		}
		if (fx->item > 0)
			evbuffer_add(imap_out(s), " ", 1);
		fetch_item(s, fx, &fx->items[fx->item++]);
	}
	return true;
}

/* RFC 7162 3.1.4.1 and 3.2.6: "(CHANGEDSINCE modseq [VANISHED])" after
 * the items.  VANISHED (UID FETCH, QRESYNC enabled) answers at once with
 * the UIDs of the set that went after modseq.  False: BAD sent. */
static bool fetch_modifiers(struct imap_session *s, struct imap_fetch *fx, const struct imap_arg *set,
			    const struct imap_arg *m)
{
	bool vanished = false;

	for (const struct imap_arg *e = m->child; e; e = e->next) {
		if (imap_arg_is_atom(e, "CHANGEDSINCE") && e->next && e->next->type == IMAP_ARG_ATOM &&
		    parse_u64(e->next->s, e->next->len, 0, INT64_MAX, &fx->changedsince)) {
			fx->changedsince_set = true;
			e = e->next;
		} else if (imap_arg_is_atom(e, "VANISHED")) {
			vanished = true;
		} else {
			imap_fetch_free(s);
			imap_bad(s, "Invalid FETCH modifier");
			return false;
		}
	}
	if (vanished && (!fx->uid || !s->qresync || !fx->changedsince_set)) {
		imap_fetch_free(s);
		imap_bad(s, "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled");
		return false;
	}
	s->condstore = true;   /* CHANGEDSINCE enables CONDSTORE */
	if (vanished) {
		struct imap_seqset uids;
		if (imap_seqset_parse(set->s, set->len, &s->parser.arena, &uids) == IMAP_SEQ_OK && !uids.searchres)
			imap_vanished_earlier(s, s->sel->f, fx->changedsince, &uids, 0);
	}
	return true;
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_fetch *fx;
	size_t *idx, n;
	bool has_uid = false;

	if (!imap_seq_resolve(s, a, uid, &idx, &n))
		return;
	fx = xcalloc(1, sizeof(*fx));
	fx->fd = -1;
	fx->idx = idx;
	fx->n = n;
	fx->uid = uid;
	fx->item = FETCH_BEGIN;
	s->fetch = fx;
	/* UID FETCH always says UID (RFC 9051 6.4.9); it goes first. */
	if (uid)
		fetch_add(fx, "UID");
	if (!fetch_items(fx, a->next) || (a->next && a->next->next && a->next->next->type != IMAP_ARG_LIST)) {
		imap_fetch_free(s);
		imap_bad(s, "Invalid FETCH items");
		return;
	}
	if (a->next && a->next->next && !fetch_modifiers(s, fx, a, a->next->next))
		return;
	bool has_modseq = false;
	for (size_t i = 0; i < fx->nitems; i++)
		has_modseq |= fx->items[i].kind == FI_MODSEQ;
	if (has_modseq)
		s->condstore = true;   /* RFC 7162 3.1: FETCH MODSEQ enables CONDSTORE */
	else if (fx->changedsince_set)
		fetch_add(fx, "MODSEQ");   /* 3.1.4.1: CHANGEDSINCE implies MODSEQ */
	for (size_t i = 0; i < fx->nitems; i++) {
		if (fx->items[i].kind == FI_UID && has_uid) {
			/* the one added above: drop the client's duplicate */
			fitem_free(&fx->items[i]);
			memmove(&fx->items[i], &fx->items[i + 1], (fx->nitems - i - 1) * sizeof(fx->items[0]));
			fx->nitems--;
			i--;
			continue;
		}
		has_uid |= fx->items[i].kind == FI_UID;
		fx->want_flags |= fx->items[i].kind == FI_FLAGS;
	}
	if (!fetch_stat_first(s, fx))
		imap_fetch_continue(s);
}
