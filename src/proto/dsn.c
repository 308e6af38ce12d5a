/*
 * dsn.c - RFC 3464 delivery status notifications in an RFC 6522 (ex-3462)
 * multipart/report, with RFC 5322 headers and dates.  See dsn.h for how
 * the prefix, the streamed original and the suffix fit together.
 */
#include "proto/dsn.h"

#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *dsn_action_str(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED: return "failed";
	case DSN_DELAYED: return "delayed";
	case DSN_DELIVERED: return "delivered";
	case DSN_RELAYED: return "relayed";
	}
	return "failed";
}

void dsn_format_date(int64_t t, char *out, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		tt = 0;	/* out of range: the epoch rather than garbage */
		gmtime_r(&tt, &tm);
	}
	snprintf(out, len, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Peer text made safe for a header-style field: printable ASCII only,
 * line ends as spaces, at most DSN_FIELD_MAX bytes. */
static void dsn_put_safe(FILE *f, const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0' && n < DSN_FIELD_MAX; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		else if (c < 0x20 || c > 0x7e)
			c = '?';
		fputc(c, f);
	}
}

static bool dsn_status_ok(const char *s)
{
	size_t i = 0, parts = 0, digits = 0;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
		return false;
	for (i = 0; ; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (++digits > 3)
				return false;
		} else if ((s[i] == '.' || s[i] == '\0') && digits > 0) {
			parts++;
			digits = 0;
			if (s[i] == '\0')
				break;
		} else {
			return false;
		}
	}
	return parts == 3 && s[1] == '.';
}

static bool dsn_unique_ok(const char *u)
{
	size_t i;

	if (u == NULL || u[0] == '\0' || strlen(u) > 64)
		return false;
	for (i = 0; u[i]; i++) {
		unsigned char c = (unsigned char)u[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool dsn_report_ok(const struct dsn_report *r)
{
	size_t i;

	if (r->hostname == NULL || r->sender == NULL || !dsn_unique_ok(r->unique) ||
	    r->rcpts == NULL || r->nrcpts == 0 || r->nrcpts > DSN_RCPTS_MAX)
		return false;
	for (i = 0; i < r->nrcpts; i++)
		if (r->rcpts[i].address == NULL || !dsn_status_ok(r->rcpts[i].status) ||
		    (unsigned)r->rcpts[i].action > DSN_RELAYED)
			return false;
	return true;
}

bool dsn_returns_headers_only(const struct dsn_report *r)
{
	return r->ret == DSN_RET_HDRS;
}

/* The worst action decides the subject and the text: failed > delayed. */
static enum dsn_action dsn_overall(const struct dsn_report *r)
{
	enum dsn_action a = DSN_DELIVERED;
	size_t i;

	for (i = 0; i < r->nrcpts; i++) {
		if (r->rcpts[i].action == DSN_FAILED)
			return DSN_FAILED;
		if (r->rcpts[i].action == DSN_DELAYED)
			a = DSN_DELAYED;
	}
	return a;
}

static void dsn_top_headers(FILE *f, const struct dsn_report *r, enum dsn_action overall)
{
	char date[64];

	dsn_format_date(r->now, date, sizeof(date));
	fputs("From: Mail Delivery System <MAILER-DAEMON@", f);
	dsn_put_safe(f, r->hostname);
	fputs(">\nTo: <", f);
	dsn_put_safe(f, r->sender);
	fprintf(f, ">\nSubject: %s\nDate: %s\nMessage-ID: <%s.dsn@", overall == DSN_FAILED ?
		"Undelivered Mail Returned to Sender" : overall == DSN_DELAYED ?
		"Delayed Mail (still being retried)" : "Successful Mail Delivery Report",
		date, r->unique);
	dsn_put_safe(f, r->hostname);
	fprintf(f, ">\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
		"Content-Type: multipart/report; report-type=delivery-status;\n"
		"\tboundary=\"tern-dsn-%s\"\n", r->unique);
	if (r->eightbit)
		fputs("Content-Transfer-Encoding: 8bit\n", f);
	fputs("\nThis is a MIME-encapsulated message.\n\n", f);
}

static void dsn_human_part(FILE *f, const struct dsn_report *r, enum dsn_action overall)
{
	size_t i;

	fprintf(f, "--tern-dsn-%s\nContent-Description: Notification\n"
		"Content-Type: text/plain; charset=us-ascii\n\n"
		"This is the mail system at host ", r->unique);
	dsn_put_safe(f, r->hostname);
	fputs(".\n\n", f);
	if (overall == DSN_FAILED)
		fputs("I'm sorry to have to inform you that your message could not\n"
		      "be delivered to one or more recipients. It's attached below.\n", f);
	else if (overall == DSN_DELAYED)
		fputs("Your message could not be delivered yet. The mail system will\n"
		      "keep trying; you do not need to send it again.\n", f);
	else
		fputs("Your message was successfully delivered to the destination(s)\n"
		      "listed below.\n", f);
	for (i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];

		fputs("\n<", f);
		dsn_put_safe(f, rc->address);
		fprintf(f, ">: %s (%s)", dsn_action_str(rc->action), rc->status);
		if (rc->remote_mta != NULL) {
			fputs(", host ", f);
			dsn_put_safe(f, rc->remote_mta);
		}
		if (rc->diagnostic != NULL) {
			fputs(" said:\n    ", f);
			dsn_put_safe(f, rc->diagnostic);
		}
		fputc('\n', f);
	}
}

static void dsn_rcpt_fields(FILE *f, const struct dsn_rcpt *rc)
{
	char date[64];

	fputc('\n', f);
	if (rc->orcpt != NULL) {
		fputs("Original-Recipient: ", f);
		dsn_put_safe(f, rc->orcpt);
		fputc('\n', f);
	}
	fputs("Final-Recipient: rfc822; ", f);
	dsn_put_safe(f, rc->address);
	fprintf(f, "\nAction: %s\nStatus: %s\n", dsn_action_str(rc->action), rc->status);
	if (rc->remote_mta != NULL) {
		fputs("Remote-MTA: dns; ", f);
		dsn_put_safe(f, rc->remote_mta);
		fputc('\n', f);
	}
	if (rc->diagnostic != NULL) {
		fputs("Diagnostic-Code: smtp; ", f);
		dsn_put_safe(f, rc->diagnostic);
		fputc('\n', f);
	}
	if (rc->last_attempt != 0) {
		dsn_format_date(rc->last_attempt, date, sizeof(date));
		fprintf(f, "Last-Attempt-Date: %s\n", date);
	}
	if (rc->action == DSN_DELAYED && rc->retry_until != 0) {
		dsn_format_date(rc->retry_until, date, sizeof(date));
		fprintf(f, "Will-Retry-Until: %s\n", date);
	}
}

static void dsn_status_part(FILE *f, const struct dsn_report *r)
{
	char date[64];
	size_t i;

	fprintf(f, "\n--tern-dsn-%s\nContent-Description: Delivery report\n"
		"Content-Type: message/delivery-status\n\nReporting-MTA: dns; ", r->unique);
	dsn_put_safe(f, r->hostname);
	fputc('\n', f);
	if (r->envid != NULL) {
		fputs("Original-Envelope-Id: ", f);
		dsn_put_safe(f, r->envid);
		fputc('\n', f);
	}
	dsn_format_date(r->arrival, date, sizeof(date));
	fprintf(f, "Arrival-Date: %s\n", date);
	for (i = 0; i < r->nrcpts; i++)
		dsn_rcpt_fields(f, &r->rcpts[i]);
}

char *dsn_prefix(const struct dsn_report *r, size_t *len)
{
	enum dsn_action overall;
	char *out = NULL;
	FILE *f;

	*len = 0;
	if (!dsn_report_ok(r))
		return NULL;
	f = open_memstream(&out, len);
	if (f == NULL)
		die("open_memstream: out of memory");
	overall = dsn_overall(r);
	dsn_top_headers(f, r, overall);
	dsn_human_part(f, r, overall);
	dsn_status_part(f, r);
	fprintf(f, "\n--tern-dsn-%s\nContent-Description: %s\nContent-Type: %s\n",
		r->unique, dsn_returns_headers_only(r) ? "Message headers" :
		overall == DSN_FAILED ? "Undelivered Message" : "Message",
		dsn_returns_headers_only(r) ? "text/rfc822-headers" : "message/rfc822");
	if (r->eightbit && !dsn_returns_headers_only(r))
		fputs("Content-Transfer-Encoding: 8bit\n", f);
	fputc('\n', f);
	if (fclose(f) != 0 || out == NULL)
		die("open_memstream: out of memory");
	return out;
}

char *dsn_suffix(const struct dsn_report *r, size_t *len)
{
	/* The leading LF ends the original's last line if it had no end;
	 * otherwise it is the line end that belongs to the delimiter. */
	char *s = xasprintf("\n--tern-dsn-%s--\n", r->unique);

	*len = strlen(s);
	return s;
}
