/*
 * auth_results.h - the authserv-id of an Authentication-Results header
 * field (RFC 8601 2.2), which decides whether an arriving field claims
 * to come from us (RFC 8601 5: such fields are forged and removed).
 * Pure: the field's text in, the id out.
 *
 *   authres-header-field = "Authentication-Results:" authres-payload
 *   authres-payload = [CFWS] authserv-id [ CFWS authres-version ]
 *                     ( no-result / 1*resinfo ) [CFWS] CRLF
 *   authserv-id     = value            ; token or quoted-string (RFC 2045)
 *   authres-version = 1*DIGIT [CFWS]
 *
 * CFWS is RFC 5322's: folding white space and nested comments with
 * quoted-pairs.  Parsing stops at the ";" that starts the first resinfo
 * (or no-result): what follows is not needed to know who wrote the field.
 */
#ifndef TERN_AUTH_RESULTS_H
#define TERN_AUTH_RESULTS_H

#include <stddef.h>

#define AUTH_RESULTS_ID_MAX   255   /* octets of an authserv-id (a domain) */
#define AUTH_RESULTS_NEST_MAX 32    /* comment nesting */

enum auth_results_status {
	AUTH_RESULTS_OTHER,      /* not an Authentication-Results field */
	AUTH_RESULTS_OK,         /* the id (and version) read, then ";" */
	AUTH_RESULTS_TRUNCATED,  /* the text ended before the id's end was seen */
	AUTH_RESULTS_MALFORMED,  /* an Authentication-Results field against the grammar */
};

struct auth_results_id {
	char id[AUTH_RESULTS_ID_MAX + 1];   /* unquoted, NUL-terminated */
	size_t len;
	int version;                        /* -1: none given */
};

/* field: the whole header field from its name on, folded lines and line
 * ends included.  out->id is set for OK, and for MALFORMED or TRUNCATED
 * when the id itself was read (what is wrong or missing comes after it);
 * empty otherwise.  The text after the ";" is never looked at: appending
 * to a field that parses OK does not change the result. */
enum auth_results_status auth_results_parse(const char *field, size_t len, struct auth_results_id *out);

#endif
