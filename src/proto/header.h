/*
 * header.h - streaming scan of an RFC 5322 header section (§2.2, §3.6):
 * where it ends, how many Received: fields it has, whether Date:,
 * Message-ID: and From: are present, and whether the message has 8-bit
 * octets; plus unfolding of a field body (§2.2.3).
 */
#ifndef TERN_HEADER_H
#define TERN_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#define HEADER_NAME_KEEP 32	/* field-name octets remembered */

struct header_scan {
	bool in_headers;	/* true until the empty line ending the header section */
	unsigned received;	/* Received: fields seen in the header section */
	bool has_date, has_message_id, has_from;
	bool eight_bit;		/* any octet >= 0x80 anywhere */
	bool eight_bit_headers;	/* ... in the header section */

	/* private */
	bool u8_bad;		/* header octets that are not well-formed UTF-8 */
	unsigned char u8_need, u8_lo, u8_hi;	/* a UTF-8 sequence under way */
	int state;		/* enum hs_state in header.c */
	bool have_field;	/* a field has been seen, so a continuation is valid */
	size_t name_len;
	char name[HEADER_NAME_KEEP];
};

void header_scan_init(struct header_scan *h);

/* Feed message bytes with LF line ends (output of smtp_data_feed), in any
 * split.  Continuation lines (starting with SP/HTAB) belong to the previous
 * field.  A line that is not a field and not a continuation ends the header
 * section too (as MTAs treat it); so does a continuation with no field
 * before it.  White space between a field name and its colon is accepted
 * (obsolete syntax, RFC 5322 §4.5). */
void header_scan_feed(struct header_scan *h, const char *buf, size_t len);

/* The header section holds UTF-8 header fields (RFC 6532 §3): 8-bit
 * octets, all of them well-formed UTF-8.  8-bit octets that are not
 * UTF-8 (legacy Latin-1 and the like) do not count. */
bool header_scan_utf8(const struct header_scan *h);

/* Unfold a field body: CRLF or LF followed by WSP becomes that WSP.  Writes
 * a NUL-terminated result; returns its length (0 if cap is too small). */
size_t header_unfold(const char *in, size_t len, char *out, size_t cap);

#endif
