/*
 * fuzz_imap_parse.c - libFuzzer harness: the input's first octet picks the
 * parser options, the rest is a client's byte stream, split into lines at
 * LF (a CR before it removed) and fed to imap_parse_line; announced
 * literals take their octets from the stream (streamed when the parser
 * says they would not fit), as a session does.  Each parsed command's tree
 * is checked (list counts, NUL-terminated copies, upper-case name) and
 * read as search keys, sequence sets, numbers and dates.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap_parse.h"

static size_t check_args(const struct imap_arg *a, struct imap_arena *arena, unsigned depth)
{
	size_t n = 0;
	assert(depth <= IMAP_DEPTH_MAX);
	for (; a != NULL; a = a->next, n++) {
		uint32_t v;
		uint64_t v64;
		const char *s;
		size_t len;
		struct imap_seqset set;
		struct imap_date d;
		int64_t t;
		switch (a->type) {
		case IMAP_ARG_LIST:
			assert(check_args(a->child, arena, depth + 1) == a->count);
			break;
		case IMAP_ARG_LITERAL:
			if (a->s == NULL)
				break;
			/* fall through */
		case IMAP_ARG_ATOM:
		case IMAP_ARG_QUOTED:
		case IMAP_ARG_NIL:
			assert(a->s[a->len] == '\0');
			if (imap_arg_number(a, &v))
				assert(a->type == IMAP_ARG_ATOM);
			if (imap_arg_nz_number(a, &v))
				assert(v > 0);
			if (imap_arg_number64(a, &v64))
				assert(v64 <= INT64_MAX);
			if (imap_arg_astring(a, &s, &len))
				assert(len == a->len);
			if (imap_seqset_parse(a->s, a->len, arena, &set) == IMAP_SEQ_OK) {
				for (size_t i = 0; i < set.n; i++)
					assert(imap_seqset_contains(&set, set.r[i].lo ? set.r[i].lo : 7, 7));
			}
			if (imap_parse_date(a->s, a->len, &d))
				assert(d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= 31);
			(void)imap_parse_datetime(a->s, a->len, &t);
			break;
		}
	}
	return n;
}

static void check_command(struct imap_parser *p)
{
	struct imap_search_node *root;
	assert(strlen(p->tag) <= IMAP_TAG_MAX);
	for (const char *c = p->name; *c; c++)
		assert(!(*c >= 'a' && *c <= 'z'));
	assert(check_args(p->args, &p->arena, 0) == p->nargs);
	if (imap_search_parse(p->args, &p->arena, 50, 8, &root) == IMAP_SEARCH_OK)
		assert(root->key == IMAP_SK_AND && root->child != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct imap_parse_opts o = {
		.literal_plus = data[0] & 1,
		.literal_minus = data[0] & 2,
		.utf8 = data[0] & 4,
		.max_literal = (data[0] & 8) ? 100 : 0,
		.max_depth = (data[0] >> 4) & 7,
		.max_text = (data[0] & 0x80) ? 300 : 0,
	};
	struct imap_parser p;
	const char *in = (const char *)data + 1;
	size_t len = size - 1, i = 0;
	imap_parse_init(&p, &o);
	while (i < len) {
		const char *lf = memchr(in + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (in + i)) : len - i;
		size_t line = n;
		if (line > 0 && in[i + line - 1] == '\r')
			line--;
		enum imap_parse_result r = imap_parse_line(&p, in + i, line);
		i += n + (lf ? 1 : 0);
		while (r == IMAP_PARSE_LITERAL) {
			if (p.lit.size > len - i)
				goto out;
			if (p.lit_fits) {
				r = imap_parse_literal(&p, in + i, p.lit.size);
				/* lit_fits promised room for it */
				assert(r != IMAP_PARSE_ERROR || p.err != IMAP_ERR_TOO_LONG);
			} else
				r = imap_parse_literal_streamed(&p);
			i += p.lit.size;
			if (r == IMAP_PARSE_NEED_LINE)
				break;
		}
		if (r == IMAP_PARSE_NEED_LINE)
			continue;
		if (r == IMAP_PARSE_DONE)
			check_command(&p);
		else
			assert(p.err != IMAP_ERR_NONE && imap_parse_strerror(p.err) != NULL);
		imap_parse_reset(&p);
	}
out:
	imap_parse_free(&p);
	return 0;
}
