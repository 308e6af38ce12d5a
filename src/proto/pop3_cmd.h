/*
 * pop3_cmd.h - pure parsers for POP3 command lines (RFC 1939 section 3,
 * RFC 2449 section 4): the keyword and its arguments, message numbers
 * with bounds, and non-negative counts (TOP's line count).
 *
 * The session reads one line (CRLF removed, at most POP3_LINE_MAX octets
 * with the CRLF) and hands it here; nothing in this file does I/O.
 */
#ifndef TERN_POP3_CMD_H
#define TERN_POP3_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POP3_LINE_MAX 255        /* RFC 2449 4: a command line, CRLF included */
#define POP3_KEYWORD_MAX 4       /* RFC 1939 3: keywords are 3 or 4 characters */
#define POP3_ARGS_MAX 8          /* more words than any command takes */

enum pop3_cmd_err {
	POP3_CMD_OK = 0,
	POP3_CMD_EMPTY,          /* empty line or only spaces */
	POP3_CMD_BAD_KEYWORD,    /* keyword not 1..4 ASCII letters */
	POP3_CMD_BAD_CHAR,       /* NUL, CR, LF or another control character */
	POP3_CMD_TOO_MANY_ARGS,  /* more words than the caller allows */
	POP3_CMD_BAD_NUMBER,     /* not a plain decimal number ("", "-1", "x", "+1") */
	POP3_CMD_NO_SUCH_MSG,    /* a number, but 0 or above the mailbox size */
};

struct pop3_word {
	const char *p;
	size_t len;
};

struct pop3_cmd {
	char keyword[POP3_KEYWORD_MAX + 1];  /* upper-cased */
	const char *args;        /* the rest of the line after one space, maybe "" */
	size_t args_len;
};

/* Split "KEYWORD[ args]".  The keyword is upper-cased into cmd->keyword;
 * the arguments are the rest of the line as written (PASS needs spaces). */
enum pop3_cmd_err pop3_cmd_split(const char *line, size_t len, struct pop3_cmd *cmd);

/* Split arguments at runs of spaces into at most max words (max <=
 * POP3_ARGS_MAX).  *n is the number found; more than max is an error. */
enum pop3_cmd_err pop3_cmd_words(const char *args, size_t len, struct pop3_word *w, size_t max,
				 size_t *n);

/* A message number in 1..count (RFC 1939: "msg" is a decimal number).
 * Leading zeros are accepted; signs, spaces and overflow are not. */
enum pop3_cmd_err pop3_cmd_msgnum(const char *s, size_t len, size_t count, size_t *out);

/* A non-negative decimal up to max (TOP's line count). */
enum pop3_cmd_err pop3_cmd_number(const char *s, size_t len, uint64_t max, uint64_t *out);

/* A short text for the error, to put after "-ERR ". */
const char *pop3_cmd_strerror(enum pop3_cmd_err e);

#endif
