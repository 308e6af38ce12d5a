/*
 * aliasfile.h - one line of the aliases file, parsed: "name: target,
 * target" with '#' comments.  Pure: bytes in, the parts or an error out.
 *
 * name is a local part ("postmaster", any local domain) or an address
 * ("sales@example.org"); it is kept lower-case.  A target is an address
 * or a local part of the alias's domain, kept as written.  Pipes
 * ("|command"), files ("/path") and ":include:" are refused: nothing in
 * tern runs a command or writes a file for an address.  Lengths follow
 * RFC 5321 §4.5.3.1: local part 64, domain 255, address 256 octets.
 */
#ifndef TERN_ALIASFILE_H
#define TERN_ALIASFILE_H

#include <stddef.h>

#define ALIAS_TARGETS_MAX 1000    /* targets on one line */
#define ALIAS_LINE_MAX    65536   /* octets in one line */

enum alias_line_err {
	ALIAS_LINE_OK = 0,
	ALIAS_LINE_BLANK,             /* empty, blanks or a comment: nothing to do */
	ALIAS_LINE_NO_COLON,          /* "name: target" expected */
	ALIAS_LINE_BAD_NAME,          /* empty, or not a local part / address */
	ALIAS_LINE_NO_TARGET,         /* nothing after the colon */
	ALIAS_LINE_BAD_TARGET,        /* a target that is not an address */
	ALIAS_LINE_PROGRAM,           /* a pipe, a file or :include: */
	ALIAS_LINE_TOO_MANY,          /* over ALIAS_TARGETS_MAX targets */
	ALIAS_LINE_TOO_LONG,          /* over ALIAS_LINE_MAX octets */
	ALIAS_LINE_NUL,               /* a NUL octet */
};

struct alias_line {
	char *name;
	char **targets;
	size_t ntargets;
};

/* line[0..len) without its line end.  On ALIAS_LINE_OK *out holds the
 * parts (free with alias_line_free); otherwise *out is empty. */
enum alias_line_err alias_line_parse(const char *line, size_t len, struct alias_line *out);
void alias_line_free(struct alias_line *l);
/* The error in words, for the administrator. */
const char *alias_line_strerror(enum alias_line_err err);

#endif
