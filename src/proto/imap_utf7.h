/*
 * imap_utf7.h - mailbox names: modified UTF-7 (RFC 3501 section 5.1.3,
 * RFC 9051 section 5.1) to and from UTF-8, strict both ways; the checks a
 * name must pass before it reaches the file system; and the Maildir++
 * mapping between a wire name and a folder directory.
 *
 * Strict means: one spelling per name.  The decoder refuses what an
 * encoder would never write - printable ASCII inside &...-, "&" not closed
 * by "-", two adjacent &...- sections, leftover base64 bits that are not
 * zero or a whole 16-bit unit's worth, unpaired surrogates, octets outside
 * 0x20..0x7e - so a name compares equal to another only if it is the same.
 *
 * Maildir++ (the layout Dovecot, Courier and mutt read): the hierarchy
 * delimiter on the wire is '/', on disk '.'; a folder "A/B" is the
 * directory ".A.B" under the Maildir, its name kept in modified UTF-7 as
 * Dovecot keeps it, and INBOX (any case) is the Maildir itself.  A '.'
 * inside a wire name cannot be written as itself, so it is written as
 * "&AC4-" - the modified UTF-7 spelling of U+002E, which no canonical name
 * contains, so the mapping is reversible; names without '.' map exactly as
 * Dovecot's Maildir++ layout maps them.
 */
#ifndef TERN_IMAP_UTF7_H
#define TERN_IMAP_UTF7_H

#include <stdbool.h>
#include <stddef.h>

#define IMAP_MAILBOX_DELIM '/'
#define IMAP_MAILBOX_MAX 512      /* octets of a wire name (modified UTF-7) */
#define IMAP_MAILBOX_DEPTH 16     /* hierarchy levels */
#define IMAP_MAILDIR_MAX (5 * IMAP_MAILBOX_MAX + 1) /* directory name: each '.' is 5 octets */

enum imap_utf7_err {
	IMAP_UTF7_OK = 0,
	IMAP_UTF7_BAD_CHAR,       /* an octet outside 0x20..0x7e in modified UTF-7 */
	IMAP_UTF7_BAD_BASE64,     /* "&" unclosed, a character outside the alphabet */
	IMAP_UTF7_NON_CANONICAL,  /* encodable otherwise: ASCII in &...-, &..-&..-, padding bits */
	IMAP_UTF7_SURROGATE,      /* an unpaired UTF-16 surrogate */
	IMAP_UTF7_BAD_UTF8,       /* not well-formed UTF-8 (RFC 3629), or a control character */
	IMAP_UTF7_TOO_LONG,       /* the output does not fit */
	IMAP_UTF7_BAD_NAME,       /* empty, an empty level ("A//B", "/A", "A/"),
				   * a level "." or "..", too many levels */
};

/* Each writes a NUL-terminated result of *olen octets into out[cap]. */
enum imap_utf7_err imap_utf7_to_utf8(const char *in, size_t len, char *out, size_t cap,
				     size_t *olen);
enum imap_utf7_err imap_utf8_to_utf7(const char *in, size_t len, char *out, size_t cap,
				     size_t *olen);
/* Is in[0..len) canonical modified UTF-7? */
bool imap_utf7_valid(const char *in, size_t len);

/* A UTF-8 mailbox name fit for the store: well-formed UTF-8 without
 * control characters, levels neither empty nor "." / "..", at most
 * IMAP_MAILBOX_DEPTH levels. */
enum imap_utf7_err imap_mailbox_check(const char *utf8, size_t len);
/* INBOX in any case (RFC 9051 section 5.1). */
bool imap_mailbox_is_inbox(const char *name, size_t len);

/* Wire name (canonical modified UTF-7, checked as above) to its Maildir++
 * directory name: "" for INBOX, ".A.B" for "A/B", '.' as "&AC4-". */
enum imap_utf7_err imap_maildir_from_mailbox(const char *mutf7, size_t len, char *out,
					     size_t cap, size_t *olen);
/* A Maildir++ directory name (".A.B") back to the wire name ("A/B");
 * IMAP_UTF7_BAD_NAME for what is not a folder directory (no leading '.',
 * ".", "..", empty levels). */
enum imap_utf7_err imap_mailbox_from_maildir(const char *dir, size_t len, char *out,
					     size_t cap, size_t *olen);

const char *imap_utf7_strerror(enum imap_utf7_err e);

#endif
