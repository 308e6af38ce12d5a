/*
 * dkim_canon.h - DKIM canonicalization (RFC 6376 3.4): "simple" and
 * "relaxed" for header fields and for the body.  The body is streamed: it
 * is fed in chunks of any size and the canonical octets go to a callback
 * as they are made (held back only where the canonical form depends on
 * what follows: trailing empty lines, whitespace at a line end).
 * Input may use LF or CRLF line ends; the output always has CRLF.
 */
#ifndef TERN_DKIM_CANON_H
#define TERN_DKIM_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/dkim_tags.h"

typedef void (*dkim_emit_fn)(void *arg, const char *buf, size_t len);

/* One header field, name to the end of its value, without its final line
 * end; crlf appends CRLF (every field but the DKIM-Signature being
 * hashed, 3.7). */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, bool crlf, dkim_emit_fn emit, void *arg);

struct dkim_body {
	enum dkim_canon c;
	dkim_emit_fn emit;
	void *arg;
	bool has_limit;
	uint64_t limit;   /* l=: octets passed to emit at most */
	uint64_t total;   /* canonical octets made, limit or not */
	uint64_t blank;   /* empty lines held back */
	bool content;     /* the current line has content */
	bool wsp;         /* relaxed: whitespace held back */
	bool cr;          /* a CR held back (CRLF split across chunks) */
	size_t out_len;
	char out[1024];
};

void dkim_body_init(struct dkim_body *b, enum dkim_canon c, bool has_limit, uint64_t limit, dkim_emit_fn emit,
		    void *arg);
void dkim_body_feed(struct dkim_body *b, const char *buf, size_t len);
/* End of the body: emits what the canonical form keeps of the held-back
 * part and flushes.  b->total is then the canonical body length. */
void dkim_body_finish(struct dkim_body *b);

#endif
