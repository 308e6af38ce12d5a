/*
 * mime_envelope.h - the IMAP ENVELOPE of a header section (RFC 9051
 * section 7.5.2, RFC 3501 section 7.4.2): date, subject, from, sender,
 * reply-to, to, cc, bcc, in-reply-to and message-id, with the addresses
 * parsed into (name adl mailbox host) per RFC 5322 section 3.4 (display
 * names, groups, obsolete routes, comments).  Values are raw and
 * unfolded: IMAP sends encoded-words (RFC 2047) as they are and lets the
 * client decode them, so nothing here decodes them; a display name is the
 * phrase with quoting removed and its words joined by one space, an
 * encoded-word staying one word.  Plus the header field iterator that
 * mime_tree uses.  Pure: bytes in, xmalloc'd data out.
 */
#ifndef TERN_MIME_ENVELOPE_H
#define TERN_MIME_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_ENVELOPE_ADDRS_MAX 1000    /* addresses kept per field */

/* One ENVELOPE address.  Group syntax as RFC 9051 7.5.2: a group start is
 * mailbox = group name with host NULL, the end is all four NULL.  A
 * missing local part or domain is "MISSING_MAILBOX" / "MISSING_DOMAIN"
 * (what Dovecot sends), so a host of NULL only ever means a group. */
struct mime_addr {
	char *name, *adl, *mailbox, *host;   /* NULL = NIL */
	struct mime_addr *next;
};

struct mime_envelope {
	char *date, *subject, *in_reply_to, *message_id;   /* NULL = NIL */
	struct mime_addr *from, *sender, *reply_to, *to, *cc, *bcc;
};

/* Build from a header section (fields up to, and maybe including, the
 * empty line; LF or CRLF).  The first of each field counts.  Sender and
 * Reply-To default to From when absent or empty (RFC 3501 7.4.2). */
struct mime_envelope *mime_envelope_build(const char *hdr, size_t len);
void mime_envelope_free(struct mime_envelope *e);

/* Parse one address-list value (unfolded); NULL for none. */
struct mime_addr *mime_addr_parse(const char *v, size_t len);
void mime_addr_free(struct mime_addr *a);

/* Header fields one by one: from *pos, the next field's name and its raw
 * value (after the colon, folds included, the final line end excluded).
 * Stops (false) at the empty line or the end.  Lines that are not fields
 * are skipped. */
bool mime_header_next(const char *hdr, size_t len, size_t *pos, const char **name,
		      size_t *name_len, const char **value, size_t *value_len);
/* The value unfolded and trimmed of white space at both ends (xmalloc). */
char *mime_header_value(const char *value, size_t len);

#endif
