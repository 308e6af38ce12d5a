/*
 * maildir_keywords.h - the two wire forms of IMAP keywords in a Maildir
 * as Dovecot keeps them: a line "N name" of a folder's dovecot-keywords
 * file (keyword name is letter 'a' + N, N 0..25), and the lower-case
 * letters after the flags of a file name's info (":2,FSab").  Pure: bytes
 * in, values out (store/imap_keywords.c does the files).
 */
#ifndef TERN_MAILDIR_KEYWORDS_H
#define TERN_MAILDIR_KEYWORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILDIR_KW_SLOTS 26
/* The longest keyword name kept (tern's IMAP keyword bound, IMAP_KEYWORD_MAX;
 * Dovecot's default mail_max_keyword_length is 50): a longer line is
 * skipped as unreadable. */
#define MAILDIR_KW_NAME_MAX 255

/* line[0..len) without its line end: "N name" with N in 0..25 (no sign,
 * no leading zeros past one digit's worth of sense: at most two digits)
 * and a non-empty name (everything after the first space, no CR, LF or
 * NUL).  False for anything else: Dovecot skips such lines, and so do we. */
bool maildir_kw_line_parse(const char *line, size_t len, unsigned *slot, const char **name, size_t *name_len);
/* The letters a-z of name's info part (after ":2,"): bit N for 'a' + N. */
uint32_t maildir_kw_letters(const char *name);

#endif
