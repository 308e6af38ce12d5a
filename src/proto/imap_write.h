/*
 * imap_write.h - response-side helpers for IMAP (RFC 9051 section 9):
 * a string written as an atom, a quoted string or a literal as its octets
 * allow, nstring, the FLAGS list, and a sequence set written compactly
 * from a sorted list of numbers (UIDPLUS COPYUID/APPENDUID, ESEARCH ALL).
 * They append to a libevent evbuffer and do no I/O.
 */
#ifndef TERN_IMAP_WRITE_H
#define TERN_IMAP_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define IMAP_QUOTED_MAX 1024     /* longer strings go out as literals */

enum imap_str_kind {
	IMAP_STR_ATOM,           /* 1*ASTRING-CHAR, not "NIL" */
	IMAP_STR_QUOTED,         /* TEXT-CHARs (UTF-8 too when utf8), \ and " escaped */
	IMAP_STR_LITERAL,        /* CR, LF, NUL, 8-bit without utf8, or long */
};

/* How s would be written as an astring (atom allowed) or a string. */
enum imap_str_kind imap_str_kind(const char *s, size_t len, bool atom_ok, bool utf8);

/* astring: atom, quoted or literal. utf8: UTF8=ACCEPT is on for the session. */
void imap_write_astring(struct evbuffer *b, const char *s, size_t len, bool utf8);
/* string: quoted or literal. */
void imap_write_string(struct evbuffer *b, const char *s, size_t len, bool utf8);
/* nstring: NIL when s is NULL. */
void imap_write_nstring(struct evbuffer *b, const char *s, size_t len, bool utf8);

enum imap_flag {
	IMAP_FLAG_SEEN = 1 << 0,
	IMAP_FLAG_ANSWERED = 1 << 1,
	IMAP_FLAG_FLAGGED = 1 << 2,
	IMAP_FLAG_DELETED = 1 << 3,
	IMAP_FLAG_DRAFT = 1 << 4,
	IMAP_FLAG_RECENT = 1 << 5,
};

/* "(\Seen \Answered ... kw1 kw2)": system flags in that order, then the
 * keywords as given; a keyword that is not a valid atom is left out. */
void imap_write_flags(struct evbuffer *b, unsigned flags, const char *const *keywords,
		      size_t nkeywords);
/* The longest keyword tern stores: a name goes into the folder's
 * dovecot-keywords file, whose reader skips longer lines. */
#define IMAP_KEYWORD_MAX 255
/* Is kw a flag-keyword (an atom, RFC 9051 section 9) of at most
 * IMAP_KEYWORD_MAX octets? */
bool imap_keyword_valid(const char *kw, size_t len);

/* "1:3,5,7:9" from n ascending numbers (duplicates allowed); false and
 * nothing written if n is 0 or the list is not ascending. */
bool imap_write_seqset(struct evbuffer *b, const uint32_t *nums, size_t n);

#endif
