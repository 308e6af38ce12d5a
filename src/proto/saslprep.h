/*
 * saslprep.h - SASLprep (RFC 4013), the stringprep (RFC 3454) profile for
 * user names and passwords: SCRAM (RFC 5802 section 2.2) requires it, and
 * PLAIN (RFC 4616 section 2) recommends it for comparisons.
 *
 * Steps, over Unicode 3.2 as the RFCs require:
 *   1. map: non-ASCII spaces (C.1.2) to U+0020, "commonly mapped to
 *      nothing" (B.1) removed (RFC 4013 section 2.1)
 *   2. normalize with NFKC (section 2.2)
 *   3. refuse prohibited output: C.1.2, C.2.1, C.2.2, C.3 - C.9 (section
 *      2.3), i.e. spaces other than U+0020, control characters, private
 *      use, non-characters, surrogates, tagging and change-of-direction
 *      characters, ...
 *   4. bidi (RFC 3454 section 6): a string with a RandALCat character
 *      (D.1) must not contain an LCat character (D.2) and must begin and
 *      end with a RandALCat character
 *   5. unassigned code points (A.1, RFC 4013 section 2.5): refused for a
 *      stored string, allowed in a query (RFC 3454 section 7)
 *
 * How tern uses the two (the choice section 2.5 leaves to the protocol):
 * passwords are prepared as stored strings both when `tern user` hashes
 * them and when a client presents one, as RFC 5802 section 2.2 says for
 * SCRAM; a presented password with an unassigned code point could never
 * match a stored one, so refusing it early changes no outcome.  User names
 * are prepared as queries (RFC 5802 section 5.1): they are looked up, not
 * stored.
 *
 * Input is UTF-8; anything not well-formed (overlong forms, surrogates,
 * beyond U+10FFFF, truncated) is refused.  Pure ASCII takes a fast path
 * (only ASCII control characters are prohibited; everything else maps to
 * itself).  The tables cover all of Unicode 3.2, generated from Python's
 * copy of it by scripts/gen_saslprep_tables.py.
 */
#ifndef TERN_SASLPREP_H
#define TERN_SASLPREP_H

#include <stddef.h>

#define SASLPREP_INPUT_MAX 1024   /* octets; longer input is refused */

enum saslprep_mode {
	SASLPREP_STORED,   /* unassigned code points are an error */
	SASLPREP_QUERY,    /* unassigned code points pass through */
};

enum saslprep_result {
	SASLPREP_OK,
	SASLPREP_TOO_LONG,      /* more than SASLPREP_INPUT_MAX octets */
	SASLPREP_BAD_UTF8,      /* not well-formed UTF-8 */
	SASLPREP_UNASSIGNED,    /* stored string with an unassigned code point */
	SASLPREP_PROHIBITED,    /* a prohibited character after mapping and NFKC */
	SASLPREP_BIDI,          /* breaks the bidi rules */
};

/* Prepare in[0..len).  On SASLPREP_OK *out is an xmalloc'd NUL-terminated
 * UTF-8 string of *out_len octets (it may be empty: "\u00AD" maps to
 * nothing; callers decide whether empty is acceptable); otherwise *out is
 * NULL.  The output never contains NUL (U+0000 is prohibited). */
enum saslprep_result saslprep(const char *in, size_t len, enum saslprep_mode mode,
			      char **out, size_t *out_len);

/* "ok", "too long", "not UTF-8", "unassigned code point", "prohibited
 * character", "bidi rules". */
const char *saslprep_strerror(enum saslprep_result r);

#endif
