/*
 * smtp_parse.h - pure parsers for the SMTP command line: verb splitting,
 * MAIL FROM / RCPT TO paths and their ESMTP parameters, HELO/EHLO
 * arguments and xtext.
 *
 * RFC 5321 §4.1.1 (commands), §4.1.2 (path grammar), §4.5.3.1 (size
 * limits); RFC 1870 (SIZE); RFC 6152 (BODY=8BITMIME); RFC 3461 §4 (xtext,
 * RET, ENVID, NOTIFY, ORCPT); RFC 4954 §5 (AUTH= on MAIL); RFC 6531
 * (SMTPUTF8: UTF-8 in paths, the SMTPUTF8 parameter); RFC 3030 (BDAT
 * arguments, BODY=BINARYMIME).
 */
#ifndef TERN_SMTP_PARSE_H
#define TERN_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256	/* the whole path incl. '<' '>' */

enum smtp_parse_err {
	SMTP_OK = 0,
	SMTP_ERR_SYNTAX,	/* malformed command arguments / address */
	SMTP_ERR_LOCAL_LEN,	/* local part > 64 octets (as written) */
	SMTP_ERR_DOMAIN_LEN,	/* domain > 255 octets */
	SMTP_ERR_PATH_LEN,	/* path > 256 octets */
	SMTP_ERR_PARAM_UNKNOWN,	/* unknown ESMTP parameter: 555 5.5.4 */
	SMTP_ERR_PARAM_VALUE,	/* known parameter, bad value: 501 5.5.4 */
	SMTP_ERR_PARAM_DUP,	/* parameter given twice: 501 5.5.4 */
};

struct smtp_token {
	const char *p;
	size_t len;
};

struct smtp_path {
	bool null;		/* "<>" */
	bool had_source_route;	/* "@a,@b:" prefix was present (dropped per §4.1.2 / App. C) */
	bool quoted_local;	/* local part was written as a quoted-string */
	bool domain_literal;	/* "[1.2.3.4]" or "[IPv6:...]" */
	bool utf8;		/* local part or domain holds UTF-8 (RFC 6531 §3.3) */
	char local[SMTP_LOCAL_MAX + 1];		/* local part with quotes/escapes removed */
	char domain[SMTP_DOMAIN_MAX + 1];	/* domain as written (a literal keeps its brackets) */
};

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_mail_params {
	bool has_size;
	uint64_t size;			/* SIZE=n (RFC 1870) */
	enum smtp_body body;		/* BODY= */
	enum smtp_ret ret;		/* RET= (RFC 3461) */
	char envid[101];		/* ENVID xtext-decoded, "" if absent, max 100 */
	bool has_auth;
	char auth[SMTP_PATH_MAX + 1];	/* AUTH=xtext (RFC 4954 §5), decoded, "<>" allowed */
	bool smtputf8;			/* SMTPUTF8 (RFC 6531 §3.4) */
};

enum {
	SMTP_NOTIFY_NEVER = 1,
	SMTP_NOTIFY_SUCCESS = 2,
	SMTP_NOTIFY_FAILURE = 4,
	SMTP_NOTIFY_DELAY = 8,
};

struct smtp_rcpt_params {
	unsigned notify;		/* SMTP_NOTIFY_* bits; 0 = NOTIFY absent */
	char orcpt_type[32];		/* e.g. "rfc822" as written, "" if absent */
	char orcpt_addr[501];		/* xtext-decoded address */
};

/* Split a command line (no CRLF) into the verb (first run of non-SP) and the
 * arguments (after the single SP that follows the verb; may be empty). */
void smtp_split_command(const char *line, size_t len, struct smtp_token *verb,
			struct smtp_token *args);

/* args = what follows "MAIL ", e.g. "FROM:<a@b> SIZE=10 BODY=8BITMIME".
 * "FROM:" is case-insensitive; SP after the colon is tolerated; a path
 * without angle brackets is a syntax error.  *path and *p are always reset. */
enum smtp_parse_err smtp_parse_mail(const char *args, size_t len, struct smtp_path *path,
				    struct smtp_mail_params *p);

/* args = what follows "RCPT ", e.g. "TO:<a@b> NOTIFY=SUCCESS,FAILURE
 * ORCPT=rfc822;a+40b".  "<>" is a syntax error; "<Postmaster>" (any case, no
 * domain) is accepted with local as written and domain "". */
enum smtp_parse_err smtp_parse_rcpt(const char *args, size_t len, struct smtp_path *path,
				    struct smtp_rcpt_params *p);

/* Parse "<...>" at s; *consumed = octets used.  allow_null: "<>" is ok. */
enum smtp_parse_err smtp_parse_path(const char *s, size_t len, bool allow_null,
				    struct smtp_path *path, size_t *consumed);

/* "local@domain" (just "local" when the domain is empty), quoting the local
 * part when it is not a dot-string; "" for the null path.  Returns the
 * length written (NUL-terminated); 0 with buf "" if cap is too small. */
size_t smtp_path_format(const struct smtp_path *path, char *buf, size_t cap);

/* Well-formed UTF-8 (RFC 3629 §4); *non_ascii (may be NULL) tells
 * whether any octet is >= 0x80. */
bool smtp_utf8_valid(const char *s, size_t n, bool *non_ascii);

/* A dot-string local part (RFC 5321 §4.1.2: atoms of RFC 5322 atext
 * joined by single dots, ASCII only); the length limit is the caller's. */
bool smtp_dot_string_valid(const char *s, size_t n);

/* HELO/EHLO argument: a domain (labels of letters/digits/hyphens, dots) or
 * an address literal. */
bool smtp_helo_valid(const char *s, size_t len);

/* RFC 3461 §4 xtext.  decode: false on malformed input (bad xchar, '+' not
 * followed by two hex digits) or when out (NUL-terminated) would need more
 * than cap octets; lower-case hex is accepted.  The decoded text may hold
 * any octet, NUL included: check *out_len.  encode: upper-case hex,
 * NUL-terminated; returns the length, 0 if cap is too small. */
bool smtp_xtext_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len);
size_t smtp_xtext_encode(const char *in, size_t len, char *out, size_t cap);

/* "BDAT" arguments (RFC 3030 §2): chunk-size [SP "LAST"], the size
 * 1*DIGIT up to SMTP_BDAT_MAX, LAST in any case.  False (size 0) on
 * anything else. */
#define SMTP_BDAT_MAX (UINT64_C(1) << 62)
bool smtp_parse_bdat(const char *args, size_t len, uint64_t *size, bool *last);

/* An HTTP request line ("GET /path HTTP/1.1": a method of RFC 9110 §9,
 * a request target, an HTTP version) or a "Host:" header line: what a
 * browser or proxy tricked into talking to an SMTP port sends.  line is
 * one line without its end. */
bool smtp_is_http_request(const char *line, size_t len);

/* A short fixed text for an error code, for logs and replies. */
const char *smtp_parse_strerror(enum smtp_parse_err err);

#endif
