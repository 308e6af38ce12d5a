/*
 * mime_tree.h - a streaming MIME structure parser (RFC 2045, RFC 2046
 * section 5, RFC 2183 disposition, RFC 3066 language, RFC 2557 location,
 * RFC 1864 md5) for IMAP's BODYSTRUCTURE, ENVELOPE and BODY[section]
 * (RFC 9051 section 7.5.2).  The message is fed in chunks of any size and
 * never held: only the header section of the part being read (bounded)
 * and the start of the current line are kept.
 *
 * Every part records where its header and body start and where it ends
 * (offsets in the octets fed), its body size with line ends counted as
 * CRLF (IMAP sizes are CRLF sizes, whatever the store keeps) and its line
 * count, and its MIME fields as they are written.  Parts are in document
 * order; part 0 is the message.  A message/rfc822 (or message/global)
 * part has one child, the encapsulated message, whose hdr_off is the
 * part's body_off and which carries that message's ENVELOPE.
 *
 * As RFC 2046 says, the line end before a boundary line belongs to the
 * boundary: a part's body ends before it.  What real mail gets wrong is
 * read the way common readers do: a missing close delimiter ends the
 * multipart at the end of its parent (or of the message); a boundary of
 * an outer multipart closes the inner ones; text before the first
 * boundary is preamble, after the close delimiter epilogue; a part whose
 * header never ends with an empty line has an empty body; a multipart
 * without a boundary parameter is a leaf (multipart is false).
 */
#ifndef TERN_MIME_TREE_H
#define TERN_MIME_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/mime_envelope.h"

#define MIME_DEPTH_DEFAULT 32       /* nesting of multiparts and messages */
#define MIME_PARTS_DEFAULT 1000
#define MIME_HEADER_MAX 65536       /* header octets kept per part */
#define MIME_BOUNDARY_MAX 200       /* RFC 2046 says 70; real mail is longer */
#define MIME_PARAMS_MAX 64          /* parameters kept per field */
#define MIME_NONE SIZE_MAX

struct mime_param {
	char *name, *value;         /* value unquoted */
};

struct mime_part {
	size_t parent, first_child, next_sibling;   /* indexes, MIME_NONE */
	unsigned depth;                             /* 0 for the message */

	uint64_t hdr_off, body_off, end_off;        /* offsets in the octets fed */
	uint64_t hdr_octets;                        /* header size, line ends as CRLF */
	uint64_t body_octets;                       /* body size, line ends as CRLF */
	uint64_t body_lines;

	char *type, *subtype;       /* as written; "text" "plain" by default */
	struct mime_param *params;  /* Content-Type parameters */
	size_t nparams;
	char *id, *description, *encoding, *md5, *location;   /* NULL if absent */
	char *disposition;          /* Content-Disposition type, NULL if absent */
	struct mime_param *disp_params;
	size_t ndisp_params;
	char **language;            /* Content-Language tags */
	size_t nlanguage;

	bool multipart;             /* multipart/... with a boundary: children are parts */
	bool message;               /* message/rfc822 or global, 7/8bit/binary: one child */
	struct mime_envelope *envelope;   /* part 0 and encapsulated messages */

	/* private */
	char *boundary;
	size_t boundary_len;
	int state;
	bool closed;                /* boundary seen closed: no longer matched */
	uint64_t lf_start, bare_start, hdr_bare;
};

struct mime_tree_opts {
	unsigned max_depth;         /* 0: MIME_DEPTH_DEFAULT */
	size_t max_parts;           /* 0: MIME_PARTS_DEFAULT */
};

struct mime_tree {
	struct mime_part *parts;
	size_t nparts;
	bool too_deep;              /* a part past max_depth was read as a leaf */
	bool too_many;              /* parts past max_parts were read as body */
	bool header_truncated;      /* a header section past MIME_HEADER_MAX */
	bool finished;

	/* private */
	struct mime_tree_opts opts;
	size_t cap;
	size_t *stack;              /* open parts, outermost first */
	size_t depth;
	uint64_t off;               /* octets fed so far */
	uint64_t lf, bare_lf;       /* line ends so far, and those without CR */
	uint64_t line_start;
	size_t line_len;            /* content octets of the current line */
	bool cr;                    /* the last octet was CR */
	char line[MIME_BOUNDARY_MAX + 8];   /* the start of the current line */
	size_t prev_line_len;       /* the previous line's content octets */
	size_t prev_eol_len;        /* its line end: 1 (LF) or 2 (CRLF) */
	size_t cur_eol_len;         /* the line end of the line being ended */
	char *hdr;                  /* the header section being read */
	size_t hdr_len, hdr_cap, hdr_line_mark;
};

void mime_tree_init(struct mime_tree *t, const struct mime_tree_opts *opts);
/* Any split; line ends LF or CRLF. */
void mime_tree_feed(struct mime_tree *t, const char *buf, size_t len);
/* The end of the message: closes every open part. */
void mime_tree_finish(struct mime_tree *t);
void mime_tree_free(struct mime_tree *t);

/* The part for an IMAP section number "1.2.3" (RFC 9051 6.4.5): for a
 * message/rfc822 part, its numbers go into the encapsulated message;
 * "" is the message.  MIME_NONE if there is no such part. */
size_t mime_tree_section(const struct mime_tree *t, const char *section);

#endif
