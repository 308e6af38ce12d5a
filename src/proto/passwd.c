/*
 * passwd.c - parse, verify and create the password secrets of the users
 * file.  CRYPT goes through libxcrypt (crypt_rn, crypt_gensalt_rn), SCRAM
 * keys are derived as in RFC 5802 section 3 with SHA-256 (RFC 7677).
 * Every comparison uses CRYPTO_memcmp over fixed-size digests, so the time
 * taken does not reveal where a guess went wrong.  Passwords go through
 * SASLprep (RFC 4013; RFC 5802 section 2.2, RFC 4616 section 2) on the
 * way in, whether they are being stored or presented.
 */
#include "proto/passwd.h"

#include <crypt.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/util.h"
#include "proto/base64.h"
#include "proto/saslprep.h"

/* yescrypt of a random password nobody knows, at libxcrypt's default cost:
 * what passwd_verify_dummy() checks so unknown users take as long. */
static const char passwd_dummy_crypt[] =
	"$y$j9T$ijt0hgYl/NqXisXS1RSG8.$8mgcoNG2dWEKmjvdtNbyaLAVuq.dr94r10XvGSkiUvC";

static const struct {
	const char *name;
	enum passwd_scheme scheme;
} passwd_schemes[] = {
	{ "CRYPT", PASSWD_CRYPT },
	{ "PLAIN", PASSWD_PLAIN },
	{ "SCRAM-SHA-256", PASSWD_SCRAM_SHA_256 },
};

static bool passwd_text_ok(const char *s, size_t len)
{
	if (len == 0 || len > PASSWD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return false;
	return true;
}

/* Next comma-separated field of [*p, end); the last field ends at end. */
static bool passwd_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *c = memchr(*p, ',', (size_t)(end - *p));
	*f = *p;
	*flen = (size_t)((c ? c : end) - *p);
	*p = c ? c + 1 : end;
	return c != NULL;
}

static bool passwd_parse_key(const char *f, size_t flen, unsigned char key[PASSWD_KEY_LEN])
{
	size_t n;
	return base64_decode(f, flen, key, PASSWD_KEY_LEN, &n) && n == PASSWD_KEY_LEN;
}

/* "iterations,salt_b64,storedkey_b64,serverkey_b64" */
static bool passwd_parse_scram(const char *s, size_t len, struct passwd_secret *out)
{
	const char *p = s, *end = s + len, *f;
	size_t flen;
	uint64_t iter;

	if (!passwd_field(&p, end, &f, &flen) ||
	    !parse_u64(f, flen, 1, PASSWD_SCRAM_ITER_MAX, &iter))
		return false;
	out->iterations = (unsigned)iter;
	if (!passwd_field(&p, end, &f, &flen) ||
	    !base64_decode(f, flen, out->salt, sizeof out->salt, &out->salt_len) ||
	    out->salt_len == 0)
		return false;
	if (!passwd_field(&p, end, &f, &flen) || !passwd_parse_key(f, flen, out->stored_key))
		return false;
	if (passwd_field(&p, end, &f, &flen) || !passwd_parse_key(f, flen, out->server_key))
		return false;
	return true;
}

/* RFC 4616 section 2: the stored password is prepared like the presented
 * one.  One SASLprep refuses stays as written; no prepared password can
 * equal it, so it never matches PLAIN, LOGIN or SCRAM. */
static void passwd_prepare_plain(const char *s, size_t len, struct passwd_secret *out)
{
	size_t n;

	if (saslprep(s, len, SASLPREP_STORED, &out->value, &n) == SASLPREP_OK && n > 0)
		return;
	free(out->value);
	out->value = xstrndup(s, len);
}

bool passwd_parse(const char *s, size_t len, struct passwd_secret *out)
{
	const char *close;
	size_t name_len;

	memset(out, 0, sizeof *out);
	if (len < 2 || s[0] != '{' || (close = memchr(s, '}', len)) == NULL)
		return false;
	name_len = (size_t)(close - s - 1);
	s = close + 1;
	len -= name_len + 2;
	if (!passwd_text_ok(s, len))
		return false;
	for (size_t i = 0; i < ARRAY_LEN(passwd_schemes); i++) {
		const char *name = passwd_schemes[i].name;
		if (strlen(name) != name_len || !ascii_ieq(name, close - name_len, name_len))
			continue;
		out->scheme = passwd_schemes[i].scheme;
		if (out->scheme == PASSWD_PLAIN) {
			passwd_prepare_plain(s, len, out);
			return true;
		}
		if (out->scheme != PASSWD_SCRAM_SHA_256) {
			out->value = xstrndup(s, len);
			return true;
		}
		if (passwd_parse_scram(s, len, out))
			return true;
		passwd_secret_free(out);
		return false;
	}
	return false;
}

void passwd_secret_free(struct passwd_secret *s)
{
	if (s->value != NULL) {
		OPENSSL_cleanse(s->value, strlen(s->value));
		free(s->value);
	}
	OPENSSL_cleanse(s, sizeof *s);
	s->value = NULL;
}

bool passwd_scram_keys(const char *password, size_t len, const unsigned char *salt,
		       size_t salt_len, unsigned iterations,
		       unsigned char stored_key[PASSWD_KEY_LEN],
		       unsigned char server_key[PASSWD_KEY_LEN])
{
	unsigned char salted[PASSWD_KEY_LEN], client_key[PASSWD_KEY_LEN];
	bool ok;

	ok = len <= INT32_MAX && salt_len <= INT32_MAX && iterations <= INT32_MAX &&
	     PKCS5_PBKDF2_HMAC(password, (int)len, salt, (int)salt_len, (int)iterations,
			       EVP_sha256(), sizeof salted, salted) == 1 &&
	     HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Client Key", 10,
		  client_key, NULL) != NULL &&
	     HMAC(EVP_sha256(), salted, sizeof salted, (const unsigned char *)"Server Key", 10,
		  server_key, NULL) != NULL &&
	     SHA256(client_key, sizeof client_key, stored_key) != NULL;
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(client_key, sizeof client_key);
	return ok;
}

/* crypt_rn(password, setting) == setting, compared in constant time. */
static bool passwd_verify_crypt(const char *setting, const char *password, size_t len)
{
	struct crypt_data *data = xcalloc(1, sizeof *data);
	char *phrase = xstrndup(password, len);
	bool ok = false;
	const char *out;

	out = crypt_rn(phrase, setting, data, sizeof *data);
	if (out != NULL && out[0] != '*' && memchr(password, '\0', len) == NULL) {
		size_t n = strlen(out);
		ok = n == strlen(setting) && CRYPTO_memcmp(out, setting, n) == 0;
	}
	OPENSSL_cleanse(phrase, len);
	OPENSSL_cleanse(data, sizeof *data);
	free(phrase);
	free(data);
	return ok;
}

/* Compare digests, not the strings, so the time does not depend on the
 * lengths or on the first differing octet. */
static bool passwd_verify_plain(const char *want, const char *password, size_t len)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)want, strlen(want), a);
	SHA256((const unsigned char *)password, len, b);
	return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

static bool passwd_verify_prepared(const struct passwd_secret *s, const char *password, size_t len)
{
	unsigned char stored[PASSWD_KEY_LEN], server[PASSWD_KEY_LEN];
	bool ok;

	switch (s->scheme) {
	case PASSWD_CRYPT:
		return passwd_verify_crypt(s->value, password, len);
	case PASSWD_PLAIN:
		return passwd_verify_plain(s->value, password, len);
	case PASSWD_SCRAM_SHA_256:
		ok = passwd_scram_keys(password, len, s->salt, s->salt_len, s->iterations,
				       stored, server) &&
		     CRYPTO_memcmp(stored, s->stored_key, sizeof stored) == 0;
		OPENSSL_cleanse(stored, sizeof stored);
		OPENSSL_cleanse(server, sizeof server);
		return ok;
	}
	return false;
}

bool passwd_verify(const struct passwd_secret *s, const char *password, size_t len)
{
	char *prepared;
	size_t n;
	bool ok;

	if (saslprep(password, len, SASLPREP_STORED, &prepared, &n) != SASLPREP_OK) {
		passwd_verify_dummy(password, len);
		return false;
	}
	ok = n > 0 && passwd_verify_prepared(s, prepared, n);
	/* A hash made before tern applied SASLprep holds the password as it
	 * was typed: when that differs from its prepared form, a second try. */
	if (!ok && s->scheme != PASSWD_PLAIN && (n != len || memcmp(prepared, password, n) != 0))
		ok = passwd_verify_prepared(s, password, len);
	OPENSSL_cleanse(prepared, n);
	free(prepared);
	return ok;
}

void passwd_verify_dummy(const char *password, size_t len)
{
	(void)passwd_verify_crypt(passwd_dummy_crypt, password, len);
}

static char *passwd_hash_crypt(const char *password)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data;
	char *ret = NULL;
	const char *out;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL)
		return NULL;
	data = xcalloc(1, sizeof *data);
	out = crypt_rn(password, setting, data, sizeof *data);
	if (out != NULL && out[0] != '*')
		ret = xasprintf("{CRYPT}%s", out);
	OPENSSL_cleanse(data, sizeof *data);
	free(data);
	return ret;
}

static char *passwd_hash_scram(const char *password)
{
	unsigned char salt[16], stored[PASSWD_KEY_LEN], server[PASSWD_KEY_LEN];
	char salt_b64[32], stored_b64[48], server_b64[48];

	if (RAND_bytes(salt, sizeof salt) != 1 ||
	    !passwd_scram_keys(password, strlen(password), salt, sizeof salt,
			       PASSWD_SCRAM_ITER_DEFAULT, stored, server))
		return NULL;
	base64_encode(salt, sizeof salt, salt_b64, sizeof salt_b64);
	base64_encode(stored, sizeof stored, stored_b64, sizeof stored_b64);
	base64_encode(server, sizeof server, server_b64, sizeof server_b64);
	OPENSSL_cleanse(stored, sizeof stored);
	OPENSSL_cleanse(server, sizeof server);
	return xasprintf("{SCRAM-SHA-256}%d,%s,%s,%s", PASSWD_SCRAM_ITER_DEFAULT,
			 salt_b64, stored_b64, server_b64);
}

char *passwd_hash(enum passwd_scheme scheme, const char *password)
{
	char *prepared, *ret = NULL;
	size_t n;

	if (saslprep(password, strlen(password), SASLPREP_STORED, &prepared, &n) != SASLPREP_OK)
		return NULL;
	if (passwd_text_ok(prepared, n)) {
		switch (scheme) {
		case PASSWD_CRYPT:
			ret = passwd_hash_crypt(prepared);
			break;
		case PASSWD_PLAIN:
			ret = xasprintf("{PLAIN}%s", prepared);
			break;
		case PASSWD_SCRAM_SHA_256:
			ret = passwd_hash_scram(prepared);
			break;
		}
	}
	OPENSSL_cleanse(prepared, n);
	free(prepared);
	return ret;
}
