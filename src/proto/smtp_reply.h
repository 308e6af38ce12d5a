/*
 * smtp_reply.h - the SMTP client's reply parser and EHLO capability
 * reader.  Pure: lines in, a reply or an error out.
 * RFC 5321 §4.2 (reply lines, multi-line replies), RFC 2034 / RFC 3463
 * (enhanced status codes), RFC 5321 §4.1.1.1 + the ESMTP extensions for
 * the EHLO keywords.
 *
 * Usage: smtp_reply_init(), then smtp_reply_feed() once per line with the
 * CRLF removed, until it returns SMTP_REPLY_DONE (the reply is complete)
 * or an error (the peer is broken or hostile: end the session).  Feed
 * again only after smtp_reply_init().
 */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX  512	/* one line, code included, no CRLF */
#define SMTP_REPLY_LINES_MAX 100	/* lines in one reply */
#define SMTP_REPLY_TEXT_MAX  4096	/* joined text, '\n' separators included */

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,		/* a "xyz-" line: feed the next one */
	SMTP_REPLY_DONE,		/* the last line: the reply is in struct */
	SMTP_REPLY_ERR_SYNTAX,		/* bad code or separator, CR/NUL/LF */
	SMTP_REPLY_ERR_MISMATCH,	/* code differs from the first line's */
	SMTP_REPLY_ERR_LINE_TOO_LONG,
	SMTP_REPLY_ERR_TOO_MANY_LINES,
	SMTP_REPLY_ERR_TOO_LONG,	/* joined text past SMTP_REPLY_TEXT_MAX */
	SMTP_REPLY_ERR_STATE,		/* fed after DONE or an error */
};

struct smtp_reply {
	unsigned code;			/* 200..599 */
	char enhanced[12];		/* "x.y.z" from the first line, or "" */
	size_t nlines;
	size_t text_len;
	/* The text after "xyz " / "xyz-" of every line, joined with '\n';
	 * an enhanced code stays in the text (lossless for diagnostics). */
	char text[SMTP_REPLY_TEXT_MAX + 1];
	enum smtp_reply_status state;	/* last result of smtp_reply_feed */
};

void smtp_reply_init(struct smtp_reply *r);
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);
const char *smtp_reply_status_str(enum smtp_reply_status st);

/* The class digit: 2 (ok), 3 (go on), 4 (temporary), 5 (permanent). */
static inline unsigned smtp_reply_class(const struct smtp_reply *r)
{
	return r->code / 100;
}

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN    = 1u << 0,
	SMTP_AUTH_LOGIN    = 1u << 1,
	SMTP_AUTH_CRAM_MD5 = 1u << 2,
	SMTP_AUTH_OTHER    = 1u << 3,	/* any mechanism not listed above */
};

struct smtp_ehlo_caps {
	bool pipelining;		/* RFC 2920 */
	bool size;			/* RFC 1870 */
	uint64_t size_max;		/* SIZE n; 0 when absent or "SIZE" alone */
	bool eightbitmime;		/* RFC 6152 */
	bool starttls;			/* RFC 3207 */
	bool dsn;			/* RFC 3461 */
	bool enhancedstatuscodes;	/* RFC 2034 */
	bool smtputf8;			/* RFC 6531 */
	bool chunking;			/* RFC 3030 */
	bool binarymime;		/* RFC 3030 §3 */
	bool auth;			/* RFC 4954, also the legacy "AUTH=" */
	unsigned auth_mechs;		/* enum smtp_auth_mech bits */
};

/*
 * Read the capabilities from a complete 250 reply to EHLO (the first line,
 * the greeting, is skipped).  Keywords are case-insensitive; unknown
 * keywords and bad parameters are ignored.  Returns false (caps zeroed)
 * when the reply is not a complete 250.
 */
bool smtp_ehlo_caps(const struct smtp_reply *r, struct smtp_ehlo_caps *caps);

#endif
