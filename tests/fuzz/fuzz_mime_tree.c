/*
 * fuzz_mime_tree.c - libFuzzer harness: the input as a message, parsed
 * whole and in chunks of a size taken from its first octet; both trees
 * must be the same, and every part must lie inside its parent with
 * hdr_off <= body_off <= end_off <= the message size, within the depth and
 * part bounds.  The input also goes through the ENVELOPE builder and the
 * address parser.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/mime_tree.h"

static void check(const struct mime_tree *t, size_t size, unsigned max_depth, size_t max_parts)
{
	assert(t->nparts >= 1 && t->nparts <= max_parts);
	for (size_t i = 0; i < t->nparts; i++) {
		const struct mime_part *p = &t->parts[i];
		assert(p->hdr_off <= p->body_off && p->body_off <= p->end_off && p->end_off <= size);
		assert(p->body_octets >= p->end_off - p->body_off);
		assert(p->body_octets <= 2 * (p->end_off - p->body_off));
		assert(p->body_lines <= p->end_off - p->body_off + 1);
		assert(p->depth <= max_depth);
		assert(p->type != NULL && p->subtype != NULL);
		if (i == 0) {
			assert(p->parent == MIME_NONE && p->envelope != NULL);
			continue;
		}
		const struct mime_part *up = &t->parts[p->parent];
		assert(p->parent < i && p->depth == up->depth + 1);
		assert(up->multipart || up->message);
		assert(p->hdr_off >= up->body_off && p->end_off <= up->end_off);
		if (p->next_sibling != MIME_NONE)
			assert(t->parts[p->next_sibling].hdr_off >= p->end_off);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = data[0] % 17 + 1;
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;
	struct mime_tree_opts o = { .max_depth = 8, .max_parts = 50 };
	struct mime_tree a, b;

	mime_tree_init(&a, &o);
	mime_tree_feed(&a, msg, len);
	mime_tree_finish(&a);
	check(&a, len, 8, 50);

	mime_tree_init(&b, &o);
	for (size_t i = 0; i < len; i += step)
		mime_tree_feed(&b, msg + i, len - i < step ? len - i : step);
	mime_tree_finish(&b);
	assert(a.nparts == b.nparts);
	for (size_t i = 0; i < a.nparts; i++) {
		const struct mime_part *x = &a.parts[i], *y = &b.parts[i];
		assert(x->hdr_off == y->hdr_off && x->body_off == y->body_off &&
		       x->end_off == y->end_off && x->body_octets == y->body_octets &&
		       x->body_lines == y->body_lines && x->hdr_octets == y->hdr_octets &&
		       x->parent == y->parent && strcmp(x->type, y->type) == 0 &&
		       strcmp(x->subtype, y->subtype) == 0);
	}
	static const char *const sections[] = { "", "1", "1.1", "2.1.1", "3.2", "1.1.1.1" };
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		size_t s = mime_tree_section(&a, sections[i]);
		assert(s == MIME_NONE || s < a.nparts);
	}
	mime_tree_free(&a);
	mime_tree_free(&b);

	mime_addr_free(mime_addr_parse(msg, len));
	return 0;
}
