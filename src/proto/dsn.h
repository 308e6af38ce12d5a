/*
 * dsn.h - delivery status notifications: the bounce, delay and success
 * notices tern sends from MAILER-DAEMON with the null reverse path.
 * RFC 3464 (message/delivery-status), RFC 3462/6522 (multipart/report),
 * RFC 3461 (ENVID, ORCPT, RET), RFC 5322 (headers, dates), RFC 3834
 * (Auto-Submitted).  Pure text generation.
 *
 * Messages are streamed, never held in memory, so a notice is written in
 * three pieces: dsn_prefix() (every header and part up to where the
 * returned content begins), then the caller streams the original message
 * - all of it for message/rfc822, or only its header section for
 * text/rfc822-headers (see dsn_returns_headers_only()) - and then
 * dsn_suffix() (closing boundary).  Lines end with LF, as tern stores
 * messages; the SMTP client turns them into CRLF.
 *
 * Text that came from peers (addresses, diagnostics, host names, ENVID)
 * is made safe here: non-printable and non-ASCII bytes become '?', line
 * ends become spaces, and lengths are clipped, so no field can break the
 * structure or inject headers.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED };

enum dsn_ret {
	DSN_RET_DEFAULT,	/* no RET parameter: the full message */
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

struct dsn_rcpt {
	const char *orcpt;	/* ORCPT decoded, "rfc822;addr", or NULL */
	const char *address;	/* the final recipient, for Final-Recipient */
	enum dsn_action action;
	const char *status;	/* "x.y.z" (RFC 3463) */
	const char *remote_mta;	/* host name of the remote MTA, or NULL */
	const char *diagnostic;	/* the remote SMTP reply ("550 5.1.1 ..."), lines
				 * joined with '\n', or NULL */
	int64_t last_attempt;	/* unix time; 0 = none */
	int64_t retry_until;	/* unix time, written for DSN_DELAYED only */
};

struct dsn_report {
	const char *hostname;	/* our name: Reporting-MTA, From, Message-ID */
	const char *sender;	/* the original envelope sender: To */
	const char *unique;	/* [A-Za-z0-9._-]{1,64}, unique per notice;
				 * makes the Message-ID and the boundary */
	const char *envid;	/* ENVID decoded, or NULL */
	int64_t arrival;	/* when the original arrived (Arrival-Date) */
	int64_t now;		/* Date: */
	enum dsn_ret ret;
	bool eightbit;		/* the original has 8-bit content */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;		/* 1 .. DSN_RCPTS_MAX */
};

#define DSN_RCPTS_MAX 1000
#define DSN_FIELD_MAX 900	/* longest peer text kept in one field */

/* The notice up to the returned content; *len is set.  NULL when the
 * report is unusable (no recipients, bad unique, status not x.y.z, NULL
 * required strings). */
char *dsn_prefix(const struct dsn_report *r, size_t *len);

/* The end of the notice, after the returned content. */
char *dsn_suffix(const struct dsn_report *r, size_t *len);

/* True when only the header section of the original goes between. */
bool dsn_returns_headers_only(const struct dsn_report *r);

/* RFC 5322 date-time in UTC: "Sat, 21 Nov 2026 22:45:08 +0000". */
void dsn_format_date(int64_t t, char *out, size_t len);

const char *dsn_action_str(enum dsn_action a);

#endif
