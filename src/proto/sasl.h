/*
 * sasl.h - the server side of SASL (RFC 4422) for SMTP AUTH (RFC 4954) and
 * POP3 AUTH (RFC 5034), plus POP3 APOP (RFC 1939 section 7).
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677) without
 * channel binding.  Pure: bytes in, a status and a challenge out.  The
 * session turns statuses into replies and owns the line reading.
 *
 * A session drives one exchange like this:
 *
 *   s = sasl_server_new(mech, hostname);
 *   st = sasl_server_step(s, ir, ir_len, &lookup, &ch);   ir: AUTH's initial
 *                                                         response, or NULL
 *   while (st == SASL_CONTINUE) { send "334 ch" / "+ ch"; free(ch);
 *                                 read a line; st = sasl_server_step(...); }
 *   map st to a reply; log sasl_server_user(s); sasl_server_free(s);
 *
 * SCRAM's server-final message (v=...) is sent the RFC 4954 way: the step
 * that verifies the client proof returns SASL_CONTINUE with the v= message
 * as the challenge, and the client's empty answer then yields SASL_OK.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/passwd.h"

#define SASL_DECODED_MAX 12288   /* octets of one decoded client message */
#define SASL_USER_MAX 320        /* octets of an authentication identity */

enum sasl_mech { SASL_PLAIN, SASL_LOGIN, SASL_CRAM_MD5, SASL_SCRAM_SHA_256 };

/* Case-insensitive: "plain", "LOGIN", "cram-md5", "SCRAM-SHA-256". */
bool sasl_mech_parse(const char *name, size_t len, enum sasl_mech *m);
/* The upper-case name, for EHLO's AUTH line and CAPA's SASL line. */
const char *sasl_mech_name(enum sasl_mech m);
/* Does the mechanism send the password in the clear (PLAIN, LOGIN)?
 * Offer those only over TLS. */
bool sasl_mech_plaintext(enum sasl_mech m);

struct sasl_lookup {
	/* The caller's user database; returns NULL for an unknown user.  The
	 * secret stays owned by the caller and must stay valid for the step. */
	const struct passwd_secret *(*secret)(void *ctx, const char *user);
	void *ctx;
};

enum sasl_status {
	SASL_CONTINUE,   /* send "334 <challenge>" (SMTP) / "+ <challenge>" (POP3) */
	SASL_OK,         /* authenticated as sasl_server_user() */
	SASL_FAIL,       /* bad credentials, unknown user, authzid != authcid,
			  * or a secret the mechanism cannot use: 535 5.7.8 / -ERR [AUTH] */
	SASL_BAD_INPUT,  /* bad base64, malformed message, over-long input,
			  * or a step after the end: 501 5.5.2 */
	SASL_CANCELLED,  /* client sent "*": 501 5.0.0 */
};

struct sasl_server;

/* hostname appears in the CRAM-MD5 challenge "<random.time@hostname>".
 * Randomness comes from OpenSSL's RAND_bytes. */
struct sasl_server *sasl_server_new(enum sasl_mech mech, const char *hostname);

/*
 * One step.  in is the client's base64 line without CRLF, or on the first
 * call the initial response from the AUTH command, where "=" means an empty
 * initial response ("=" is not accepted later).  in == NULL (first call
 * only) means "no initial response: give me the first challenge".
 *
 * On SASL_CONTINUE *challenge is an xmalloc'd base64 string (maybe "") to
 * send; otherwise *challenge is NULL and the exchange is over: any further
 * call returns SASL_BAD_INPUT.  Client lines longer than the base64 of
 * SASL_DECODED_MAX octets give SASL_BAD_INPUT.
 *
 * Unknown users do the same work as a wrong password (passwd_verify_dummy
 * for PLAIN/LOGIN, a dummy key for CRAM-MD5, a fake salt derived from the
 * name for SCRAM) and get SASL_FAIL.  CRAM-MD5 works only with {PLAIN}
 * secrets; SCRAM with {SCRAM-SHA-256} and {PLAIN} (keys derived per login
 * with a salt derived from hostname and user, 4096 iterations).
 */
enum sasl_status sasl_server_step(struct sasl_server *s, const char *in, size_t len,
				  const struct sasl_lookup *lk, char **challenge);

/* The name the lookup is asked for when a client presents user[0..len)
 * as its authentication identity: SASLprep'd as a query (RFC 4013), or
 * NULL if SASLprep refuses it, it prepares to nothing, or it breaks the
 * bounds (1..SASL_USER_MAX octets, no NUL); such a name is nobody.  For
 * callers that fetch the user's secret before the step runs. */
char *sasl_user_prepare(const char *user, size_t len);

/* The authentication identity after SASL_OK (as prepared); the attempted one after a
 * failure (for logs), or NULL if none was parsed. */
const char *sasl_server_user(const struct sasl_server *s);
void sasl_server_free(struct sasl_server *s);

/* TEST ONLY: fix the random part of the next challenge.  CRAM-MD5: the
 * whole challenge text, e.g. "<1896.697170952@postoffice.reston.mci.net>";
 * SCRAM-SHA-256: the server's part of the nonce.  Call before the step
 * that produces the challenge.  Never call this in the server. */
void sasl_server_set_nonce_for_test(struct sasl_server *s, const char *nonce);

/* APOP (RFC 1939 section 7): is digest_hex (len characters, 32 hex digits
 * in either case) MD5(timestamp || password)?  timestamp is the whole
 * "<...>" from the greeting.  Only {PLAIN} secrets can match; s may be
 * NULL for an unknown user.  The digest is compared in constant time. */
bool sasl_apop_verify(const struct passwd_secret *s, const char *timestamp,
		      const char *digest_hex, size_t len);

#endif
