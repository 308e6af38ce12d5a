/*
 * imap_search.c - IMAP search keys (RFC 3501 section 6.4.4 and 9,
 * RFC 9051 section 6.4.4 and 9, RFC 7162 section 3.1.5 MODSEQ, RFC 5182
 * "$") from an argument list to an AST, bounded in nodes and depth so a
 * client cannot make the evaluator do unbounded work (NOT NOT NOT ...,
 * OR trees).  Declared in imap_parse.h.
 */
#include "proto/imap_parse.h"

#include <string.h>

#include "core/util.h"

enum key_arg {
	KA_NONE,
	KA_ASTRING,
	KA_FLAG,        /* flag-keyword: an atom */
	KA_DATE,
	KA_NUMBER64,
	KA_SEQSET,
	KA_HEADER,      /* header-fld-name SP astring */
	KA_NOT,
	KA_OR,
	KA_MODSEQ,
};

static const struct {
	const char *name;
	enum imap_search_key key;
	enum key_arg arg;
} keys[] = {
	{ "ALL", IMAP_SK_ALL, KA_NONE },
	{ "ANSWERED", IMAP_SK_ANSWERED, KA_NONE },
	{ "BCC", IMAP_SK_BCC, KA_ASTRING },
	{ "BEFORE", IMAP_SK_BEFORE, KA_DATE },
	{ "BODY", IMAP_SK_BODY, KA_ASTRING },
	{ "CC", IMAP_SK_CC, KA_ASTRING },
	{ "DELETED", IMAP_SK_DELETED, KA_NONE },
	{ "DRAFT", IMAP_SK_DRAFT, KA_NONE },
	{ "FLAGGED", IMAP_SK_FLAGGED, KA_NONE },
	{ "FROM", IMAP_SK_FROM, KA_ASTRING },
	{ "HEADER", IMAP_SK_HEADER, KA_HEADER },
	{ "KEYWORD", IMAP_SK_KEYWORD, KA_FLAG },
	{ "LARGER", IMAP_SK_LARGER, KA_NUMBER64 },
	{ "MODSEQ", IMAP_SK_MODSEQ, KA_MODSEQ },
	{ "NEW", IMAP_SK_NEW, KA_NONE },
	{ "NOT", IMAP_SK_NOT, KA_NOT },
	{ "OLD", IMAP_SK_OLD, KA_NONE },
	{ "ON", IMAP_SK_ON, KA_DATE },
	{ "OR", IMAP_SK_OR, KA_OR },
	{ "RECENT", IMAP_SK_RECENT, KA_NONE },
	{ "SEEN", IMAP_SK_SEEN, KA_NONE },
	{ "SENTBEFORE", IMAP_SK_SENTBEFORE, KA_DATE },
	{ "SENTON", IMAP_SK_SENTON, KA_DATE },
	{ "SENTSINCE", IMAP_SK_SENTSINCE, KA_DATE },
	{ "SINCE", IMAP_SK_SINCE, KA_DATE },
	{ "SMALLER", IMAP_SK_SMALLER, KA_NUMBER64 },
	{ "SUBJECT", IMAP_SK_SUBJECT, KA_ASTRING },
	{ "TEXT", IMAP_SK_TEXT, KA_ASTRING },
	{ "TO", IMAP_SK_TO, KA_ASTRING },
	{ "UID", IMAP_SK_UID, KA_SEQSET },
	{ "UNANSWERED", IMAP_SK_UNANSWERED, KA_NONE },
	{ "UNDELETED", IMAP_SK_UNDELETED, KA_NONE },
	{ "UNDRAFT", IMAP_SK_UNDRAFT, KA_NONE },
	{ "UNFLAGGED", IMAP_SK_UNFLAGGED, KA_NONE },
	{ "UNKEYWORD", IMAP_SK_UNKEYWORD, KA_FLAG },
	{ "UNSEEN", IMAP_SK_UNSEEN, KA_NONE },
};

struct search_ctx {
	struct imap_arena *a;
	unsigned nodes, max_nodes, max_depth;
};

static enum imap_search_err parse_keys(struct search_ctx *c, const struct imap_arg *first,
				       unsigned depth, struct imap_search_node **out);

static struct imap_search_node *node(struct search_ctx *c, enum imap_search_key k)
{
	if (c->nodes >= c->max_nodes)
		return NULL;
	struct imap_search_node *n = imap_arena_alloc(c->a, sizeof(*n));
	if (n == NULL)
		return NULL;
	c->nodes++;
	n->key = k;
	return n;
}

static bool is_seqset_start(const struct imap_arg *a)
{
	char c = a->s[0];
	return (c >= '0' && c <= '9') || c == '*' || c == '$';
}

/* A flag-keyword (RFC 9051: atom): ATOM-CHARs only. */
static bool flag_keyword(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	for (size_t i = 0; i < a->len; i++) {
		unsigned char ch = (unsigned char)a->s[i];
		if (strchr("%*\\]", ch) != NULL || ch == '[')
			return false;
	}
	return true;
}

static bool date_arg(const struct imap_arg *a, struct imap_date *d)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_QUOTED)
		return false;
	return imap_parse_date(a->s, a->len, d);
}

/* One key at *ap; *ap moves past its arguments. */
static enum imap_search_err parse_key(struct search_ctx *c, const struct imap_arg **ap,
				      unsigned depth, struct imap_search_node **out)
{
	const struct imap_arg *a = *ap;
	struct imap_search_node *n;
	enum imap_search_err e;

	if (depth > c->max_depth)
		return IMAP_SEARCH_COMPLEX;
	if (a->type == IMAP_ARG_LIST) {
		if ((n = node(c, IMAP_SK_AND)) == NULL)
			return IMAP_SEARCH_COMPLEX;
		if (a->child == NULL)
			return IMAP_SEARCH_EMPTY;
		if ((e = parse_keys(c, a->child, depth + 1, &n->child)) != IMAP_SEARCH_OK)
			return e;
		*ap = a->next;
		*out = n;
		return IMAP_SEARCH_OK;
	}
	if (a->type != IMAP_ARG_ATOM)
		return IMAP_SEARCH_UNKNOWN_KEY;
	if (is_seqset_start(a)) {
		if ((n = node(c, IMAP_SK_SEQSET)) == NULL)
			return IMAP_SEARCH_COMPLEX;
		if (imap_seqset_parse(a->s, a->len, c->a, &n->seq) != IMAP_SEQ_OK)
			return IMAP_SEARCH_BAD_SEQSET;
		*ap = a->next;
		*out = n;
		return IMAP_SEARCH_OK;
	}
	size_t k;
	for (k = 0; k < ARRAY_LEN(keys); k++)
		if (imap_arg_is_atom(a, keys[k].name))
			break;
	if (k == ARRAY_LEN(keys))
		return IMAP_SEARCH_UNKNOWN_KEY;
	if ((n = node(c, keys[k].key)) == NULL)
		return IMAP_SEARCH_COMPLEX;
	const struct imap_arg *v = a->next;
	if (keys[k].arg != KA_NONE && v == NULL)
		return IMAP_SEARCH_MISSING_ARG;
	switch (keys[k].arg) {
	case KA_NONE:
		break;
	case KA_ASTRING:
		if (!imap_arg_astring(v, &n->str, &n->str_len))
			return IMAP_SEARCH_BAD_ARG;
		v = v->next;
		break;
	case KA_FLAG:
		if (!flag_keyword(v))
			return IMAP_SEARCH_BAD_ARG;
		n->str = v->s;
		n->str_len = v->len;
		v = v->next;
		break;
	case KA_DATE:
		if (!date_arg(v, &n->date))
			return IMAP_SEARCH_BAD_ARG;
		v = v->next;
		break;
	case KA_NUMBER64:
		if (!imap_arg_number64(v, &n->num))
			return IMAP_SEARCH_BAD_ARG;
		v = v->next;
		break;
	case KA_SEQSET:
		if (v->type != IMAP_ARG_ATOM)
			return IMAP_SEARCH_BAD_ARG;
		if (imap_seqset_parse(v->s, v->len, c->a, &n->seq) != IMAP_SEQ_OK)
			return IMAP_SEARCH_BAD_SEQSET;
		v = v->next;
		break;
	case KA_HEADER:
		if (!imap_arg_astring(v, &n->str, &n->str_len) || v->next == NULL)
			return v->next == NULL ? IMAP_SEARCH_MISSING_ARG : IMAP_SEARCH_BAD_ARG;
		v = v->next;
		if (!imap_arg_astring(v, &n->str2, &n->str2_len))
			return IMAP_SEARCH_BAD_ARG;
		v = v->next;
		break;
	case KA_NOT:
		if ((e = parse_key(c, &v, depth + 1, &n->child)) != IMAP_SEARCH_OK)
			return e;
		break;
	case KA_OR:
		if ((e = parse_key(c, &v, depth + 1, &n->child)) != IMAP_SEARCH_OK)
			return e;
		if (v == NULL)
			return IMAP_SEARCH_MISSING_ARG;
		if ((e = parse_key(c, &v, depth + 1, &n->child->next)) != IMAP_SEARCH_OK)
			return e;
		break;
	case KA_MODSEQ:
		/* MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
		if (v->type == IMAP_ARG_QUOTED) {
			const struct imap_arg *t = v->next;
			if (t == NULL || t->next == NULL)
				return IMAP_SEARCH_MISSING_ARG;
			if (!imap_arg_is_atom(t, "priv") && !imap_arg_is_atom(t, "shared") &&
			    !imap_arg_is_atom(t, "all"))
				return IMAP_SEARCH_BAD_ARG;
			n->str = v->s;
			n->str_len = v->len;
			v = t->next;
		}
		if (!imap_arg_number64(v, &n->num))
			return IMAP_SEARCH_BAD_ARG;
		v = v->next;
		break;
	}
	*ap = v;
	*out = n;
	return IMAP_SEARCH_OK;
}

static enum imap_search_err parse_keys(struct search_ctx *c, const struct imap_arg *first,
				       unsigned depth, struct imap_search_node **out)
{
	struct imap_search_node **tail = out;
	const struct imap_arg *a = first;
	if (a == NULL)
		return IMAP_SEARCH_EMPTY;
	while (a != NULL) {
		enum imap_search_err e = parse_key(c, &a, depth, tail);
		if (e != IMAP_SEARCH_OK)
			return e;
		tail = &(*tail)->next;
	}
	return IMAP_SEARCH_OK;
}

enum imap_search_err imap_search_parse(const struct imap_arg *first, struct imap_arena *a,
				       unsigned max_nodes, unsigned max_depth,
				       struct imap_search_node **out)
{
	struct search_ctx c = {
		.a = a,
		.max_nodes = max_nodes ? max_nodes : IMAP_SEARCH_NODES_DEFAULT,
		.max_depth = max_depth ? max_depth : IMAP_SEARCH_DEPTH_DEFAULT,
	};
	/* the depth is also the C recursion depth: keep it small */
	if (c.max_depth > 4 * IMAP_SEARCH_DEPTH_DEFAULT)
		c.max_depth = 4 * IMAP_SEARCH_DEPTH_DEFAULT;
	struct imap_search_node *root = node(&c, IMAP_SK_AND);
	if (root == NULL)
		return IMAP_SEARCH_COMPLEX;
	enum imap_search_err e = parse_keys(&c, first, 0, &root->child);
	if (e != IMAP_SEARCH_OK)
		return e;
	*out = root;
	return IMAP_SEARCH_OK;
}

const char *imap_search_strerror(enum imap_search_err e)
{
	switch (e) {
	case IMAP_SEARCH_OK: return "No error";
	case IMAP_SEARCH_UNKNOWN_KEY: return "Unknown search key";
	case IMAP_SEARCH_MISSING_ARG: return "Missing argument to search key";
	case IMAP_SEARCH_BAD_ARG: return "Invalid argument to search key";
	case IMAP_SEARCH_BAD_SEQSET: return "Invalid sequence set";
	case IMAP_SEARCH_COMPLEX: return "Search too complex";
	case IMAP_SEARCH_EMPTY: return "Empty search";
	}
	return "Unknown error";
}

const char *imap_search_key_name(enum imap_search_key k)
{
	switch (k) {
	case IMAP_SK_AND: return "AND";
	case IMAP_SK_SEQSET: return "SEQSET";
	default:
		for (size_t i = 0; i < ARRAY_LEN(keys); i++)
			if (keys[i].key == k)
				return keys[i].name;
	}
	return "?";
}
