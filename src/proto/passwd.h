/*
 * passwd.h - password schemes of the users file, whose lines read
 * "user@domain:{SCHEME}secret".  Schemes (names case-insensitive):
 *
 *   {CRYPT}$y$...          a crypt(3) string: yescrypt, sha512-crypt ($6$),
 *                          bcrypt ($2b$) or anything else libxcrypt knows
 *   {PLAIN}password        the password itself (needed by CRAM-MD5, APOP)
 *   {SCRAM-SHA-256}i,s,k,K iterations, base64 salt, base64 StoredKey and
 *                          base64 ServerKey (RFC 5802 section 3, RFC 7677)
 *
 * Passwords are prepared with SASLprep (RFC 4013, as a stored string; see
 * saslprep.h) before they are hashed, stored as {PLAIN} or compared: a
 * password typed as "I<U+00AD>X" or "<U+2168>" is the password "IX".  For
 * ASCII passwords without control characters preparation changes nothing;
 * a password that SASLprep refuses can be neither stored nor presented.
 * A {PLAIN} secret is prepared when it is parsed (kept as written if it
 * cannot be), so CRAM-MD5, APOP and SCRAM see the prepared form too.
 */
#ifndef TERN_PASSWD_H
#define TERN_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

enum passwd_scheme { PASSWD_CRYPT, PASSWD_PLAIN, PASSWD_SCRAM_SHA_256 };

#define PASSWD_SALT_MAX 64
#define PASSWD_KEY_LEN 32                 /* SHA-256 output */
#define PASSWD_SCRAM_ITER_DEFAULT 4096    /* RFC 7677 section 4 minimum */
#define PASSWD_SCRAM_ITER_MAX 1000000     /* bounds the CPU one login costs */
#define PASSWD_MAX 1024                   /* longest secret text accepted */

struct passwd_secret {
	enum passwd_scheme scheme;
	char *value;            /* CRYPT: the crypt(3) string; PLAIN: the prepared
				 * password; SCRAM: NULL */
	/* SCRAM-SHA-256 only: */
	unsigned iterations;
	unsigned char salt[PASSWD_SALT_MAX];
	size_t salt_len;
	unsigned char stored_key[PASSWD_KEY_LEN], server_key[PASSWD_KEY_LEN];
};

/* Parse "{SCHEME}secret" (len bytes, no line end).  Returns false for an
 * unknown scheme, an empty secret, NUL/CR/LF anywhere, a secret longer
 * than PASSWD_MAX, or a malformed SCRAM secret (iterations outside
 * 1..PASSWD_SCRAM_ITER_MAX, salt of 1..64 octets, keys of exactly 32). */
bool passwd_parse(const char *s, size_t len, struct passwd_secret *out);
void passwd_secret_free(struct passwd_secret *s);

/* Does password (as presented, not yet prepared) match?  A password that
 * SASLprep refuses costs what a wrong one does and never matches.
 * Constant-time comparison for every scheme; the work done does not
 * depend on where a wrong password differs. */
bool passwd_verify(const struct passwd_secret *s, const char *password, size_t len);

/* Do the work of verifying against a fixed yescrypt secret and discard
 * the result: for unknown users, so they cost what a wrong password does. */
void passwd_verify_dummy(const char *password, size_t len);

/* Hash a NUL-terminated password, prepared with SASLprep first, for the
 * users file: "{CRYPT}$y$..." (yescrypt, default cost), "{PLAIN}..." or
 * "{SCRAM-SHA-256}4096,...".  Returns an xmalloc'd string, or NULL if
 * SASLprep refuses the password, it is empty after preparation, longer
 * than PASSWD_MAX, or the system's crypt fails. */
char *passwd_hash(enum passwd_scheme scheme, const char *password);

/* RFC 5802 section 3: SaltedPassword = PBKDF2-HMAC-SHA-256(password,
 * salt, i) with password already prepared (Normalize() there is SASLprep);
 * StoredKey = H(HMAC(SaltedPassword, "Client Key"));
 * ServerKey = HMAC(SaltedPassword, "Server Key").  False only if
 * OpenSSL fails. */
bool passwd_scram_keys(const char *password, size_t len, const unsigned char *salt,
		       size_t salt_len, unsigned iterations,
		       unsigned char stored_key[PASSWD_KEY_LEN],
		       unsigned char server_key[PASSWD_KEY_LEN]);

#endif
