/*
 * sasl.c - server side of SASL (RFC 4422) as SMTP AUTH (RFC 4954) and POP3
 * AUTH (RFC 5034) use it: PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login-00), CRAM-MD5 (RFC 2195) and SCRAM-SHA-256
 * (RFC 5802 section 5, RFC 7677) without channel binding; and APOP
 * (RFC 1939 section 7).  Every mechanism is a step function over decoded
 * client messages; sasl_server_step() does the base64, bounds and "*"
 * handling once for all of them.  Authentication identities are prepared
 * with SASLprep as queries (RFC 4013; RFC 4616 section 2, RFC 5802
 * section 5.1) before they are looked up; passwords are prepared by
 * passwd_verify().
 */
#include "proto/sasl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/util.h"
#include "proto/base64.h"
#include "proto/saslprep.h"

enum sasl_state {
	SASL_ST_START,          /* nothing received yet */
	SASL_ST_PLAIN,          /* waiting for the PLAIN message */
	SASL_ST_LOGIN_USER,     /* sent "Username:" */
	SASL_ST_LOGIN_PASS,     /* sent "Password:" */
	SASL_ST_CRAM,           /* sent the CRAM-MD5 challenge */
	SASL_ST_SCRAM_FIRST,    /* waiting for client-first-message */
	SASL_ST_SCRAM_FINAL,    /* sent server-first-message */
	SASL_ST_SCRAM_ACK,      /* sent server-final-message, want "" */
	SASL_ST_DONE,           /* a final status was returned */
};

struct sasl_server {
	enum sasl_mech mech;
	enum sasl_state state;
	char *hostname;
	char *user;
	char *test_nonce;
	char *cram_challenge;
	/* SCRAM: what the AuthMessage and the final checks need. */
	char *gs2_header, *client_first_bare, *server_first, *nonce;
	bool known;             /* the user exists with a usable secret */
	bool user_unprepared;   /* SASLprep refused user (kept raw for logs) */
	unsigned char stored_key[PASSWD_KEY_LEN], server_key[PASSWD_KEY_LEN];
};

typedef enum sasl_status (*sasl_step_fn)(struct sasl_server *s, const char *msg, size_t len,
					 const struct sasl_lookup *lk, char **reply);

static enum sasl_status sasl_plain_step(struct sasl_server *, const char *, size_t,
					const struct sasl_lookup *, char **);
static enum sasl_status sasl_login_step(struct sasl_server *, const char *, size_t,
					const struct sasl_lookup *, char **);
static enum sasl_status sasl_cram_step(struct sasl_server *, const char *, size_t,
				       const struct sasl_lookup *, char **);
static enum sasl_status sasl_scram_step(struct sasl_server *, const char *, size_t,
					const struct sasl_lookup *, char **);

static const struct {
	const char *name;
	bool plaintext;
	sasl_step_fn step;
} sasl_mechs[] = {
	[SASL_PLAIN] = { "PLAIN", true, sasl_plain_step },
	[SASL_LOGIN] = { "LOGIN", true, sasl_login_step },
	[SASL_CRAM_MD5] = { "CRAM-MD5", false, sasl_cram_step },
	[SASL_SCRAM_SHA_256] = { "SCRAM-SHA-256", false, sasl_scram_step },
};

bool sasl_mech_parse(const char *name, size_t len, enum sasl_mech *m)
{
	for (size_t i = 0; i < ARRAY_LEN(sasl_mechs); i++) {
		if (strlen(sasl_mechs[i].name) == len && ascii_ieq(sasl_mechs[i].name, name, len)) {
			*m = (enum sasl_mech)i;
			return true;
		}
	}
	return false;
}

const char *sasl_mech_name(enum sasl_mech m)
{
	return (size_t)m < ARRAY_LEN(sasl_mechs) ? sasl_mechs[m].name : "?";
}

bool sasl_mech_plaintext(enum sasl_mech m)
{
	return (size_t)m < ARRAY_LEN(sasl_mechs) && sasl_mechs[m].plaintext;
}

struct sasl_server *sasl_server_new(enum sasl_mech mech, const char *hostname)
{
	struct sasl_server *s = xcalloc(1, sizeof *s);
	s->mech = mech;
	s->state = SASL_ST_START;
	s->hostname = xstrdup(hostname);
	return s;
}

static void sasl_free_str(char **p)
{
	if (*p != NULL)
		OPENSSL_cleanse(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

void sasl_server_free(struct sasl_server *s)
{
	if (s == NULL)
		return;
	sasl_free_str(&s->hostname);
	sasl_free_str(&s->user);
	sasl_free_str(&s->test_nonce);
	sasl_free_str(&s->cram_challenge);
	sasl_free_str(&s->gs2_header);
	sasl_free_str(&s->client_first_bare);
	sasl_free_str(&s->server_first);
	sasl_free_str(&s->nonce);
	OPENSSL_cleanse(s, sizeof *s);
	free(s);
}

const char *sasl_server_user(const struct sasl_server *s)
{
	return s->user;
}

void sasl_server_set_nonce_for_test(struct sasl_server *s, const char *nonce)
{
	sasl_free_str(&s->test_nonce);
	s->test_nonce = xstrdup(nonce);
}

/* Decode one client line into a fresh NUL-terminated buffer. */
static enum sasl_status sasl_decode(const struct sasl_server *s, const char *in, size_t len,
				    char **msg, size_t *msg_len)
{
	size_t cap;

	if (len == 1 && in[0] == '*')
		return SASL_CANCELLED;
	if (s->state == SASL_ST_START && len == 1 && in[0] == '=')
		len = 0;        /* RFC 4954 section 4: "=" is an empty initial response */
	if (len > base64_encoded_len(SASL_DECODED_MAX))
		return SASL_BAD_INPUT;
	cap = base64_decoded_max(len);
	*msg = xmalloc(cap + 1);
	if (!base64_decode(in, len, (unsigned char *)*msg, cap, msg_len)) {
		free(*msg);
		*msg = NULL;
		return SASL_BAD_INPUT;
	}
	(*msg)[*msg_len] = '\0';
	return SASL_CONTINUE;
}

enum sasl_status sasl_server_step(struct sasl_server *s, const char *in, size_t len,
				  const struct sasl_lookup *lk, char **challenge)
{
	enum sasl_status st;
	char *msg = NULL, *reply = NULL;
	size_t msg_len = 0;

	*challenge = NULL;
	if (s->state == SASL_ST_DONE || (size_t)s->mech >= ARRAY_LEN(sasl_mechs))
		return SASL_BAD_INPUT;
	if (in == NULL && s->state != SASL_ST_START)
		st = SASL_BAD_INPUT;
	else if (in != NULL)
		st = sasl_decode(s, in, len, &msg, &msg_len);
	else
		st = SASL_CONTINUE;
	if (st == SASL_CONTINUE)
		st = sasl_mechs[s->mech].step(s, msg, msg_len, lk, &reply);
	if (msg != NULL) {
		OPENSSL_cleanse(msg, msg_len);
		free(msg);
	}
	if (st == SASL_CONTINUE)
		*challenge = base64_encode_alloc(reply, strlen(reply));
	else
		s->state = SASL_ST_DONE;
	free(reply);
	return st;
}

char *sasl_user_prepare(const char *user, size_t len)
{
	char *out;
	size_t n;

	if (len == 0 || len > SASL_USER_MAX || memchr(user, '\0', len) != NULL)
		return NULL;
	if (saslprep(user, len, SASLPREP_QUERY, &out, &n) != SASLPREP_OK)
		return NULL;
	if (n == 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* An authentication identity: 1..SASL_USER_MAX octets, no NUL.  It is
 * kept prepared; one SASLprep refuses (or maps to nothing) is kept as sent,
 * for the log, and is then nobody: the exchange goes on as for an unknown
 * user and fails the same way. */
static bool sasl_set_user(struct sasl_server *s, const char *user, size_t len)
{
	if (len == 0 || len > SASL_USER_MAX || memchr(user, '\0', len) != NULL)
		return false;
	sasl_free_str(&s->user);
	s->user = sasl_user_prepare(user, len);
	s->user_unprepared = s->user == NULL;
	if (s->user_unprepared)
		s->user = xstrndup(user, len);
	return true;
}

static const struct passwd_secret *sasl_lookup_user(const struct sasl_server *s,
						    const struct sasl_lookup *lk)
{
	if (lk == NULL || lk->secret == NULL || s->user_unprepared)
		return NULL;
	return lk->secret(lk->ctx, s->user);
}

static enum sasl_status sasl_check_password(struct sasl_server *s, const struct sasl_lookup *lk,
					    const char *password, size_t len)
{
	const struct passwd_secret *secret = sasl_lookup_user(s, lk);

	if (secret == NULL) {
		passwd_verify_dummy(password, len);
		return SASL_FAIL;
	}
	return passwd_verify(secret, password, len) ? SASL_OK : SASL_FAIL;
}

/* RFC 4616 section 2: [authzid] NUL authcid NUL passwd */
static enum sasl_status sasl_plain_step(struct sasl_server *s, const char *msg, size_t len,
					const struct sasl_lookup *lk, char **reply)
{
	const char *nul1, *nul2, *pass;
	size_t authzid_len, authcid_len, pass_len;

	if (msg == NULL) {
		s->state = SASL_ST_PLAIN;
		*reply = xstrdup("");
		return SASL_CONTINUE;
	}
	if ((nul1 = memchr(msg, '\0', len)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg))) == NULL)
		return SASL_BAD_INPUT;
	authzid_len = (size_t)(nul1 - msg);
	authcid_len = (size_t)(nul2 - nul1 - 1);
	pass = nul2 + 1;
	pass_len = len - (size_t)(pass - msg);
	if (pass_len == 0 || memchr(pass, '\0', pass_len) != NULL ||
	    !sasl_set_user(s, nul1 + 1, authcid_len))
		return SASL_BAD_INPUT;
	if (authzid_len != 0 &&
	    (authzid_len != authcid_len || memcmp(msg, nul1 + 1, authcid_len) != 0))
		return SASL_FAIL;
	return sasl_check_password(s, lk, pass, pass_len);
}

/* draft-murchison-sasl-login-00: "Username:", then "Password:". */
static enum sasl_status sasl_login_step(struct sasl_server *s, const char *msg, size_t len,
					const struct sasl_lookup *lk, char **reply)
{
	switch (s->state) {
	case SASL_ST_START:
		if (msg == NULL) {
			s->state = SASL_ST_LOGIN_USER;
			*reply = xstrdup("Username:");
			return SASL_CONTINUE;
		}
		/* The initial response is the user name. */
		__attribute__((fallthrough));
	case SASL_ST_LOGIN_USER:
		if (!sasl_set_user(s, msg, len))
			return SASL_BAD_INPUT;
		s->state = SASL_ST_LOGIN_PASS;
		*reply = xstrdup("Password:");
		return SASL_CONTINUE;
	case SASL_ST_LOGIN_PASS:
		return sasl_check_password(s, lk, msg, len);
	default:
		return SASL_BAD_INPUT;
	}
}

static int sasl_hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)ascii_lower((char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 32 hex digits (either case) -> 16 octets. */
static bool sasl_hex16(const char *hex, size_t len, unsigned char out[16])
{
	if (len != 32)
		return false;
	for (size_t i = 0; i < 16; i++) {
		int hi = sasl_hex_digit((unsigned char)hex[2 * i]);
		int lo = sasl_hex_digit((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static char *sasl_cram_make_challenge(const struct sasl_server *s)
{
	uint64_t r;

	if (s->test_nonce != NULL)
		return xstrdup(s->test_nonce);
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		return NULL;
	return xasprintf("<%" PRIu64 ".%" PRId64 "@%s>", r, now_unix(), s->hostname);
}

/* RFC 2195 section 2: the client answers "user SP hex(HMAC-MD5(pw, challenge))". */
static enum sasl_status sasl_cram_step(struct sasl_server *s, const char *msg, size_t len,
				       const struct sasl_lookup *lk, char **reply)
{
	const struct passwd_secret *secret;
	unsigned char want[EVP_MAX_MD_SIZE], got[16];
	const char *sp, *key = "";
	bool ok;

	if (s->state == SASL_ST_START) {
		if (msg != NULL)
			return SASL_BAD_INPUT;  /* server speaks first */
		if ((s->cram_challenge = sasl_cram_make_challenge(s)) == NULL)
			return SASL_FAIL;
		s->state = SASL_ST_CRAM;
		*reply = xstrdup(s->cram_challenge);
		return SASL_CONTINUE;
	}
	if ((sp = memrchr(msg, ' ', len)) == NULL || !sasl_set_user(s, msg, (size_t)(sp - msg)) ||
	    !sasl_hex16(sp + 1, len - (size_t)(sp + 1 - msg), got))
		return SASL_BAD_INPUT;
	secret = sasl_lookup_user(s, lk);
	ok = secret != NULL && secret->scheme == PASSWD_PLAIN;
	if (ok)
		key = secret->value;
	/* Unknown users and unusable secrets cost one HMAC like the rest. */
	if (HMAC(EVP_md5(), key, (int)strlen(key), (const unsigned char *)s->cram_challenge,
		 strlen(s->cram_challenge), want, NULL) == NULL)
		return SASL_FAIL;
	ok = CRYPTO_memcmp(want, got, sizeof got) == 0 && ok;
	OPENSSL_cleanse(want, sizeof want);
	return ok ? SASL_OK : SASL_FAIL;
}

bool sasl_apop_verify(const struct passwd_secret *s, const char *timestamp,
		      const char *digest_hex, size_t len)
{
	unsigned char want[EVP_MAX_MD_SIZE], got[16];
	const char *pw = (s != NULL && s->scheme == PASSWD_PLAIN) ? s->value : "";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	     EVP_DigestUpdate(ctx, pw, strlen(pw)) == 1 &&
	     EVP_DigestFinal_ex(ctx, want, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	ok = sasl_hex16(digest_hex, len, got) && CRYPTO_memcmp(want, got, sizeof got) == 0 &&
	     ok && s != NULL && s->scheme == PASSWD_PLAIN;
	OPENSSL_cleanse(want, sizeof want);
	return ok;
}

/*
 * SCRAM-SHA-256 (RFC 5802 section 5, RFC 7677).  Without channel binding:
 * gs2 flags "n" and "y" are accepted, "p=" is refused.  The exchange:
 *
 *   C: n,,n=user,r=cnonce               (client-first-message)
 *   S: r=cnonce+snonce,s=salt,i=4096    (server-first-message)
 *   C: c=biws,r=cnonce+snonce,p=proof   (client-final-message)
 *   S: v=signature                      (server-final-message, as a 334)
 *   C: (empty)
 */

/* saslname (RFC 5802 section 5.1): "=2C" is ',', "=3D" is '=', any other
 * '=' is an error.  Decodes [p, end) up to the next ',' in place into out. */
static bool sasl_scram_name(const char **p, const char *end, char *out, size_t *out_len)
{
	size_t n = 0;

	while (*p < end && **p != ',') {
		char c = **p;
		if (c == '=') {
			if (end - *p < 3)
				return false;
			if ((*p)[1] == '2' && ((*p)[2] == 'C' || (*p)[2] == 'c'))
				c = ',';
			else if ((*p)[1] == '3' && ((*p)[2] == 'D' || (*p)[2] == 'd'))
				c = '=';
			else
				return false;
			*p += 2;
		}
		out[n++] = c;
		(*p)++;
	}
	*out_len = n;
	return true;
}

/* printable = %x21-2B / %x2D-7E, at least one. */
static bool sasl_scram_nonce(const char **p, const char *end, size_t *len)
{
	const char *start = *p;

	while (*p < end && **p != ',') {
		unsigned char c = (unsigned char)**p;
		if (c < 0x21 || c > 0x7e)
			return false;
		(*p)++;
	}
	*len = (size_t)(*p - start);
	return *len > 0;
}

static bool sasl_scram_expect(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* A salt for users without SCRAM keys of their own ({PLAIN}, or unknown,
 * so that their absence does not show): the same for the same name. */
static void sasl_scram_fake_salt(const struct sasl_server *s, unsigned char salt[16])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(d, 0, sizeof d);
	if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, "tern-scram-salt", 16) == 1 &&
	    EVP_DigestUpdate(ctx, s->hostname, strlen(s->hostname) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, s->user, strlen(s->user)) == 1)
		EVP_DigestFinal_ex(ctx, d, NULL);
	EVP_MD_CTX_free(ctx);
	memcpy(salt, d, 16);
}

/* Fill salt, iterations and keys from the user's secret; s->known says
 * whether a proof can succeed at all. */
static void sasl_scram_keys(struct sasl_server *s, const struct sasl_lookup *lk,
			    unsigned char *salt, size_t *salt_len, unsigned *iter)
{
	const struct passwd_secret *secret = sasl_lookup_user(s, lk);

	if (secret != NULL && secret->scheme == PASSWD_SCRAM_SHA_256) {
		memcpy(salt, secret->salt, secret->salt_len);
		*salt_len = secret->salt_len;
		*iter = secret->iterations;
		memcpy(s->stored_key, secret->stored_key, PASSWD_KEY_LEN);
		memcpy(s->server_key, secret->server_key, PASSWD_KEY_LEN);
		s->known = true;
		return;
	}
	sasl_scram_fake_salt(s, salt);
	*salt_len = 16;
	*iter = PASSWD_SCRAM_ITER_DEFAULT;
	s->known = secret != NULL && secret->scheme == PASSWD_PLAIN &&
		   passwd_scram_keys(secret->value, strlen(secret->value), salt, *salt_len,
				     *iter, s->stored_key, s->server_key);
	if (!s->known && RAND_bytes(s->stored_key, PASSWD_KEY_LEN) != 1)
		memset(s->stored_key, 0, PASSWD_KEY_LEN);
}

static char *sasl_scram_server_nonce(const struct sasl_server *s)
{
	unsigned char r[18];

	if (s->test_nonce != NULL)
		return xstrdup(s->test_nonce);
	if (RAND_bytes(r, sizeof r) != 1)
		return NULL;
	return base64_encode_alloc(r, sizeof r);
}

/* gs2-header: ("n" / "y") "," [ "a=" saslname ] "," ; leaves *p after it. */
static enum sasl_status sasl_scram_gs2(struct sasl_server *s, const char **p, const char *end,
				       char *authzid, size_t *authzid_len)
{
	const char *start = *p;

	*authzid_len = 0;
	if (!sasl_scram_expect(p, end, "n,") && !sasl_scram_expect(p, end, "y,"))
		return SASL_BAD_INPUT;  /* "p=..." asks for channel binding */
	if (sasl_scram_expect(p, end, "a=") &&
	    (!sasl_scram_name(p, end, authzid, authzid_len) || *authzid_len == 0))
		return SASL_BAD_INPUT;
	if (!sasl_scram_expect(p, end, ","))
		return SASL_BAD_INPUT;
	s->gs2_header = xstrndup(start, (size_t)(*p - start));
	return SASL_CONTINUE;
}

static enum sasl_status sasl_scram_first(struct sasl_server *s, const char *msg, size_t len,
					 const struct sasl_lookup *lk, char **reply)
{
	const char *p = msg, *end = msg + len, *bare, *cnonce;
	char *name = xmalloc(len + 1), *authzid = xmalloc(len + 1), *snonce, *salt_b64;
	size_t name_len, authzid_len, cnonce_len, salt_len;
	unsigned char salt[PASSWD_SALT_MAX];
	unsigned iter;
	enum sasl_status st;

	st = sasl_scram_gs2(s, &p, end, authzid, &authzid_len);
	bare = p;
	if (st == SASL_CONTINUE &&
	    (!sasl_scram_expect(&p, end, "n=") || !sasl_scram_name(&p, end, name, &name_len) ||
	     !sasl_set_user(s, name, name_len) || !sasl_scram_expect(&p, end, ",r=")))
		st = SASL_BAD_INPUT;
	cnonce = p;
	if (st == SASL_CONTINUE && (!sasl_scram_nonce(&p, end, &cnonce_len) ||
				    (p < end && *p != ',')))
		st = SASL_BAD_INPUT;
	if (st == SASL_CONTINUE && authzid_len != 0 &&
	    (authzid_len != name_len || memcmp(authzid, name, name_len) != 0))
		st = SASL_FAIL;
	free(name);
	free(authzid);
	if (st != SASL_CONTINUE)
		return st;
	sasl_scram_keys(s, lk, salt, &salt_len, &iter);
	if ((snonce = sasl_scram_server_nonce(s)) == NULL)
		return SASL_FAIL;
	salt_b64 = base64_encode_alloc(salt, salt_len);
	s->client_first_bare = xstrndup(bare, (size_t)(end - bare));
	s->nonce = xasprintf("%.*s%s", (int)cnonce_len, cnonce, snonce);
	s->server_first = xasprintf("r=%s,s=%s,i=%u", s->nonce, salt_b64, iter);
	free(snonce);
	free(salt_b64);
	s->state = SASL_ST_SCRAM_FINAL;
	*reply = xstrdup(s->server_first);
	return SASL_CONTINUE;
}

/* client-final-message-without-proof "," "p=" proof, where the former is
 * "c=" base64(gs2-header) ",r=" nonce ["," extensions].  Checks the
 * binding and nonce; returns the length of the part without the proof. */
static enum sasl_status sasl_scram_final_parse(const struct sasl_server *s, const char *msg,
					       size_t len, unsigned char proof[PASSWD_KEY_LEN],
					       size_t *without_proof)
{
	const char *p = msg, *end, *cb, *pf = NULL;
	unsigned char gs2[SASL_DECODED_MAX];
	size_t n, nonce_len = strlen(s->nonce);

	for (const char *q = msg; (q = memmem(q, len - (size_t)(q - msg), ",p=", 3)) != NULL; q++)
		pf = q;
	if (pf == NULL)
		return SASL_BAD_INPUT;
	end = pf;
	if (!base64_decode(pf + 3, len - (size_t)(pf + 3 - msg), proof, PASSWD_KEY_LEN, &n) ||
	    n != PASSWD_KEY_LEN || !sasl_scram_expect(&p, end, "c="))
		return SASL_BAD_INPUT;
	cb = p;
	while (p < end && *p != ',')
		p++;
	if (!base64_decode(cb, (size_t)(p - cb), gs2, sizeof gs2, &n) ||
	    n != strlen(s->gs2_header) || memcmp(gs2, s->gs2_header, n) != 0)
		return SASL_BAD_INPUT;
	if (!sasl_scram_expect(&p, end, ",r=") || (size_t)(end - p) < nonce_len ||
	    memcmp(p, s->nonce, nonce_len) != 0)
		return SASL_BAD_INPUT;
	p += nonce_len;
	if (p < end && *p != ',')
		return SASL_BAD_INPUT;
	*without_proof = (size_t)(end - msg);
	return SASL_CONTINUE;
}

/* RFC 5802 section 3: ClientKey = ClientProof XOR HMAC(StoredKey,
 * AuthMessage) must hash to StoredKey. */
static enum sasl_status sasl_scram_final(struct sasl_server *s, const char *msg, size_t len,
					 char **reply)
{
	unsigned char proof[PASSWD_KEY_LEN], sig[EVP_MAX_MD_SIZE], key[PASSWD_KEY_LEN];
	unsigned char stored[SHA256_DIGEST_LENGTH];
	size_t wp_len;
	char *auth, *sig_b64;
	enum sasl_status st;
	bool ok;

	if ((st = sasl_scram_final_parse(s, msg, len, proof, &wp_len)) != SASL_CONTINUE)
		return st;
	auth = xasprintf("%s,%s,%.*s", s->client_first_bare, s->server_first, (int)wp_len, msg);
	ok = HMAC(EVP_sha256(), s->stored_key, PASSWD_KEY_LEN, (unsigned char *)auth,
		  strlen(auth), sig, NULL) != NULL;
	for (size_t i = 0; i < PASSWD_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	ok = ok && SHA256(key, sizeof key, stored) != NULL &&
	     CRYPTO_memcmp(stored, s->stored_key, sizeof stored) == 0 && s->known;
	if (ok)
		ok = HMAC(EVP_sha256(), s->server_key, PASSWD_KEY_LEN, (unsigned char *)auth,
			  strlen(auth), sig, NULL) != NULL;
	free(auth);
	OPENSSL_cleanse(key, sizeof key);
	if (!ok)
		return SASL_FAIL;
	sig_b64 = base64_encode_alloc(sig, PASSWD_KEY_LEN);
	*reply = xasprintf("v=%s", sig_b64);
	free(sig_b64);
	s->state = SASL_ST_SCRAM_ACK;
	return SASL_CONTINUE;
}

static enum sasl_status sasl_scram_step(struct sasl_server *s, const char *msg, size_t len,
					const struct sasl_lookup *lk, char **reply)
{
	if (msg == NULL) {
		s->state = SASL_ST_SCRAM_FIRST;
		*reply = xstrdup("");
		return SASL_CONTINUE;
	}
	if (memchr(msg, '\0', len) != NULL)
		return SASL_BAD_INPUT;
	switch (s->state) {
	case SASL_ST_START:
	case SASL_ST_SCRAM_FIRST:
		return sasl_scram_first(s, msg, len, lk, reply);
	case SASL_ST_SCRAM_FINAL:
		return sasl_scram_final(s, msg, len, reply);
	case SASL_ST_SCRAM_ACK:
		return len == 0 ? SASL_OK : SASL_BAD_INPUT;
	default:
		return SASL_BAD_INPUT;
	}
}
