/*
 * test_sasl.c - SASL server mechanisms as dialogs: the seeds' LOGIN and
 * PLAIN exchanges, RFC 2195's CRAM-MD5 example, RFC 7677's SCRAM-SHA-256
 * example, and every failure: wrong password, unknown user, "*", bad
 * base64, malformed messages, over-long input, steps after the end.
 * Also APOP (RFC 1939 section 7) and the mechanism table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core/util.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "proto/sasl.h"

#define RFC7677_SECRET "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==," \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC7677_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC2195_CHALLENGE "<1896.697170952@postoffice.reston.mci.net>"

static const struct {
	const char *user, *secret;
} users[] = {
	{ "bhwang", "{PLAIN}mypassword!mypassword!!" },
	{ "tim", "{PLAIN}tanstaaftanstaaf" },
	{ "user", RFC7677_SECRET },
	{ "plain,user=", "{PLAIN}pencil" },
	{ "ix-user", "{PLAIN}\u2168" },     /* not prepared in the file: "IX" once parsed */
	{ "crypt", "{CRYPT}$6$ePnhFhzGkOd/B/L/$AXnzBfvEochUM.bbPkOXf5onerFZGuoapCQspJSYDn1seh4v9Mb/yJcISGvLXoMUZDg8Xcg5emKXB/.gAKxvE." },
};

struct db {
	struct passwd_secret secrets[sizeof users / sizeof users[0]];
};

static const struct passwd_secret *db_secret(void *ctx, const char *user)
{
	struct db *db = ctx;
	for (size_t i = 0; i < ARRAY_LEN(users); i++)
		if (strcmp(users[i].user, user) == 0)
			return &db->secrets[i];
	return NULL;
}

static struct db the_db;
static const struct sasl_lookup lookup = { db_secret, &the_db };

static int setup(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(users); i++)
		if (!passwd_parse(users[i].secret, strlen(users[i].secret), &the_db.secrets[i]))
			return -1;
	return 0;
}

static int teardown(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(users); i++)
		passwd_secret_free(&the_db.secrets[i]);
	return 0;
}

/* One client line: text to base64-encode (T), sent as is (RAW), or none. */
struct line {
	const char *s;
	size_t len;
	bool encode;
	enum sasl_status want;
	const char *challenge;   /* decoded challenge expected on CONTINUE, or NULL */
};

#define T(str, st, ch) { str, sizeof(str) - 1, true, st, ch }
#define RAW(str, st, ch) { str, sizeof(str) - 1, false, st, ch }
#define NONE(st, ch) { NULL, 0, false, st, ch }
#define END { NULL, 0, false, SASL_OK, (const char *)-1 }

struct dialog {
	const char *name;
	enum sasl_mech mech;
	const char *nonce;
	const char *user;        /* sasl_server_user() afterwards, or NULL */
	struct line lines[6];
};

static bool is_end(const struct line *l)
{
	return l->challenge == (const char *)-1;
}

static const struct dialog dialogs[] = {
	{ "login seed", SASL_LOGIN, NULL, "bhwang", {
		NONE(SASL_CONTINUE, "Username:"),
		RAW("Ymh3YW5n", SASL_CONTINUE, "Password:"),
		RAW("bXlwYXNzd29yZCFteXBhc3N3b3JkISE=", SASL_OK, NULL), END } },
	{ "login initial response", SASL_LOGIN, NULL, "bhwang", {
		RAW("Ymh3YW5n", SASL_CONTINUE, "Password:"),
		T("mypassword!mypassword!!", SASL_OK, NULL), END } },
	{ "login wrong password", SASL_LOGIN, NULL, "bhwang", {
		T("bhwang", SASL_CONTINUE, "Password:"),
		T("mypassword!mypassword!", SASL_FAIL, NULL),
		T("", SASL_BAD_INPUT, NULL), END } },
	{ "login unknown user", SASL_LOGIN, NULL, "nobody", {
		NONE(SASL_CONTINUE, "Username:"),
		T("nobody", SASL_CONTINUE, "Password:"),
		T("mypassword!mypassword!!", SASL_FAIL, NULL), END } },
	{ "login empty password", SASL_LOGIN, NULL, "bhwang", {
		T("bhwang", SASL_CONTINUE, "Password:"), T("", SASL_FAIL, NULL), END } },
	{ "login cancel", SASL_LOGIN, NULL, NULL, {
		NONE(SASL_CONTINUE, "Username:"), RAW("*", SASL_CANCELLED, NULL),
		RAW("*", SASL_BAD_INPUT, NULL), END } },
	{ "login cancel at password", SASL_LOGIN, NULL, "bhwang", {
		T("bhwang", SASL_CONTINUE, "Password:"), RAW("*", SASL_CANCELLED, NULL), END } },
	{ "login bad base64", SASL_LOGIN, NULL, NULL, {
		NONE(SASL_CONTINUE, "Username:"), RAW("Ymh3YW5", SASL_BAD_INPUT, NULL), END } },
	{ "login nul in user", SASL_LOGIN, NULL, NULL, {
		T("bh\0wang", SASL_BAD_INPUT, NULL), END } },
	{ "login empty user", SASL_LOGIN, NULL, NULL, {
		RAW("=", SASL_BAD_INPUT, NULL), END } },
	{ "login no input after start", SASL_LOGIN, NULL, NULL, {
		NONE(SASL_CONTINUE, "Username:"), NONE(SASL_BAD_INPUT, NULL), END } },
	{ "login = not empty later", SASL_LOGIN, NULL, "bhwang", {
		T("bhwang", SASL_CONTINUE, "Password:"), RAW("=", SASL_BAD_INPUT, NULL), END } },

	{ "plain seed", SASL_PLAIN, NULL, "bhwang", {
		RAW("AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ==", SASL_OK, NULL), END } },
	{ "plain empty challenge", SASL_PLAIN, NULL, "bhwang", {
		NONE(SASL_CONTINUE, ""),
		RAW("AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ==", SASL_OK, NULL),
		RAW("", SASL_BAD_INPUT, NULL), END } },
	{ "plain authzid equal", SASL_PLAIN, NULL, "bhwang", {
		T("bhwang\0bhwang\0mypassword!mypassword!!", SASL_OK, NULL), END } },
	{ "plain authzid other", SASL_PLAIN, NULL, "bhwang", {
		T("tim\0bhwang\0mypassword!mypassword!!", SASL_FAIL, NULL), END } },
	{ "plain authzid prefix", SASL_PLAIN, NULL, "bhwang", {
		T("bhwan\0bhwang\0mypassword!mypassword!!", SASL_FAIL, NULL), END } },
	{ "plain wrong password", SASL_PLAIN, NULL, "bhwang", {
		T("\0bhwang\0mypassword", SASL_FAIL, NULL), END } },
	{ "plain unknown user", SASL_PLAIN, NULL, "nobody", {
		T("\0nobody\0mypassword!mypassword!!", SASL_FAIL, NULL), END } },
	{ "plain crypt secret", SASL_PLAIN, NULL, "crypt", {
		T("\0crypt\0secret", SASL_OK, NULL), END } },
	{ "plain scram secret", SASL_PLAIN, NULL, "user", {
		T("\0user\0pencil", SASL_OK, NULL), END } },
	{ "plain one nul", SASL_PLAIN, NULL, NULL, {
		T("bhwang\0mypassword!mypassword!!", SASL_BAD_INPUT, NULL), END } },
	{ "plain three nuls", SASL_PLAIN, NULL, NULL, {
		T("\0bhwang\0mypassword!\0mypassword!!", SASL_BAD_INPUT, NULL), END } },
	{ "plain empty authcid", SASL_PLAIN, NULL, NULL, {
		T("\0\0mypassword!mypassword!!", SASL_BAD_INPUT, NULL), END } },
	{ "plain empty password", SASL_PLAIN, NULL, NULL, {
		T("\0bhwang\0", SASL_BAD_INPUT, NULL), END } },
	{ "plain empty initial response", SASL_PLAIN, NULL, NULL, {
		RAW("=", SASL_BAD_INPUT, NULL), END } },
	{ "plain cancel", SASL_PLAIN, NULL, NULL, {
		NONE(SASL_CONTINUE, ""), RAW("*", SASL_CANCELLED, NULL), END } },
	{ "plain bad base64", SASL_PLAIN, NULL, NULL, {
		RAW("AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ=", SASL_BAD_INPUT, NULL), END } },
	{ "plain whitespace", SASL_PLAIN, NULL, NULL, {
		RAW("AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ== ", SASL_BAD_INPUT, NULL), END } },

	{ "cram-md5 rfc 2195", SASL_CRAM_MD5, RFC2195_CHALLENGE, "tim", {
		NONE(SASL_CONTINUE, RFC2195_CHALLENGE),
		RAW("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", SASL_OK, NULL), END } },
	{ "cram-md5 upper-case hex", SASL_CRAM_MD5, RFC2195_CHALLENGE, "tim", {
		NONE(SASL_CONTINUE, RFC2195_CHALLENGE),
		T("tim B913A602C7EDA7A495B4E6E7334D3890", SASL_OK, NULL), END } },
	{ "cram-md5 wrong digest", SASL_CRAM_MD5, RFC2195_CHALLENGE, "tim", {
		NONE(SASL_CONTINUE, RFC2195_CHALLENGE),
		T("tim b913a602c7eda7a495b4e6e7334d3891", SASL_FAIL, NULL), END } },
	{ "cram-md5 other challenge", SASL_CRAM_MD5, "<1.2@x>", "tim", {
		NONE(SASL_CONTINUE, "<1.2@x>"),
		T("tim b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL, NULL), END } },
	{ "cram-md5 unknown user", SASL_CRAM_MD5, RFC2195_CHALLENGE, "tom", {
		NONE(SASL_CONTINUE, NULL),
		T("tom b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL, NULL), END } },
	{ "cram-md5 crypt secret", SASL_CRAM_MD5, NULL, "crypt", {
		NONE(SASL_CONTINUE, NULL),
		T("crypt b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL, NULL), END } },
	{ "cram-md5 scram secret", SASL_CRAM_MD5, NULL, "user", {
		NONE(SASL_CONTINUE, NULL),
		T("user b913a602c7eda7a495b4e6e7334d3890", SASL_FAIL, NULL), END } },
	{ "cram-md5 initial response", SASL_CRAM_MD5, NULL, NULL, {
		T("tim b913a602c7eda7a495b4e6e7334d3890", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 short digest", SASL_CRAM_MD5, NULL, "tim", {
		NONE(SASL_CONTINUE, NULL),
		T("tim b913a602c7eda7a495b4e6e7334d389", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 long digest", SASL_CRAM_MD5, NULL, "tim", {
		NONE(SASL_CONTINUE, NULL),
		T("tim b913a602c7eda7a495b4e6e7334d38900", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 non-hex digest", SASL_CRAM_MD5, NULL, "tim", {
		NONE(SASL_CONTINUE, NULL),
		T("tim g913a602c7eda7a495b4e6e7334d3890", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 no space", SASL_CRAM_MD5, NULL, NULL, {
		NONE(SASL_CONTINUE, NULL),
		T("timb913a602c7eda7a495b4e6e7334d3890", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 empty user", SASL_CRAM_MD5, NULL, NULL, {
		NONE(SASL_CONTINUE, NULL),
		T(" b913a602c7eda7a495b4e6e7334d3890", SASL_BAD_INPUT, NULL), END } },
	{ "cram-md5 cancel", SASL_CRAM_MD5, NULL, NULL, {
		NONE(SASL_CONTINUE, NULL), RAW("*", SASL_CANCELLED, NULL), END } },

	{ "scram rfc 7677", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE,
		  "r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_CONTINUE,
		  "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
		RAW("", SASL_OK, NULL), RAW("", SASL_BAD_INPUT, NULL), END } },
	{ "scram empty first challenge", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		NONE(SASL_CONTINUE, ""),
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_CONTINUE, NULL),
		RAW("*", SASL_CANCELLED, NULL), END } },
	{ "scram wrong proof", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=", SASL_FAIL, NULL), END } },
	{ "scram ack not empty", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_CONTINUE, NULL),
		T("x", SASL_BAD_INPUT, NULL), END } },
	{ "scram wrong nonce", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1"
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_BAD_INPUT, NULL), END } },
	{ "scram nonce extended", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE "x"
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_BAD_INPUT, NULL), END } },
	{ "scram wrong binding", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=eSws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE
		  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_BAD_INPUT, NULL), END } },
	{ "scram short proof", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE ",p=dHzbZapWIk4jUhN+", SASL_BAD_INPUT,
		  NULL), END } },
	{ "scram no proof", SASL_SCRAM_SHA_256, RFC7677_SNONCE, "user", {
		T("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_CONTINUE, NULL),
		T("c=biws,r=rOprNGfwEbeRWgbNEkqO" RFC7677_SNONCE, SASL_BAD_INPUT, NULL), END } },
	{ "scram y flag", SASL_SCRAM_SHA_256, "S", "user", {
		T("y,,n=user,r=C", SASL_CONTINUE, "r=CS,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
		T("c=eSws,r=CS,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_FAIL, NULL),
		END } },
	{ "scram channel binding", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("p=tls-unique,,n=user,r=rOprNGfwEbeRWgbNEkqO", SASL_BAD_INPUT, NULL), END } },
	{ "scram authzid other", SASL_SCRAM_SHA_256, NULL, "user", {
		T("n,a=tim,n=user,r=abc", SASL_FAIL, NULL), END } },
	{ "scram authzid same", SASL_SCRAM_SHA_256, "S", "user", {
		T("n,a=user,n=user,r=abc", SASL_CONTINUE, NULL), END } },
	{ "scram escaped name", SASL_SCRAM_SHA_256, "S", "plain,user=", {
		T("n,,n=plain=2Cuser=3D,r=abc", SASL_CONTINUE, NULL), END } },
	{ "scram bad escape", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n,,n=plain=2Xuser,r=abc", SASL_BAD_INPUT, NULL), END } },
	{ "scram short escape", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n,,n=a=2", SASL_BAD_INPUT, NULL), END } },
	{ "scram reserved m", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n,,m=x,n=user,r=abc", SASL_BAD_INPUT, NULL), END } },
	{ "scram empty user", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n,,n=,r=abc", SASL_BAD_INPUT, NULL), END } },
	{ "scram empty nonce", SASL_SCRAM_SHA_256, NULL, "user", {
		T("n,,n=user,r=", SASL_BAD_INPUT, NULL), END } },
	{ "scram nonce with space", SASL_SCRAM_SHA_256, NULL, "user", {
		T("n,,n=user,r=a b", SASL_BAD_INPUT, NULL), END } },
	{ "scram nul", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n,,n=us\0er,r=abc", SASL_BAD_INPUT, NULL), END } },
	{ "scram no gs2", SASL_SCRAM_SHA_256, NULL, NULL, {
		T("n=user,r=abc", SASL_BAD_INPUT, NULL), END } },
	{ "scram empty", SASL_SCRAM_SHA_256, NULL, NULL, {
		RAW("=", SASL_BAD_INPUT, NULL), END } },
	{ "scram cancel", SASL_SCRAM_SHA_256, NULL, NULL, {
		NONE(SASL_CONTINUE, ""), RAW("*", SASL_CANCELLED, NULL), END } },
	{ "scram crypt secret", SASL_SCRAM_SHA_256, "S", "crypt", {
		T("n,,n=crypt,r=C", SASL_CONTINUE, NULL),
		T("c=biws,r=CS,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_FAIL, NULL),
		END } },
	{ "scram unknown user", SASL_SCRAM_SHA_256, "S", "nobody", {
		T("n,,n=nobody,r=C", SASL_CONTINUE, NULL),
		T("c=biws,r=CS,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", SASL_FAIL, NULL),
		END } },
};

static void run_dialog(const struct dialog *d)
{
	struct sasl_server *s = sasl_server_new(d->mech, "mx.example.org");

	if (d->nonce != NULL)
		sasl_server_set_nonce_for_test(s, d->nonce);
	for (const struct line *l = d->lines; !is_end(l); l++) {
		char *ch = (char *)"unset", *in = NULL;
		enum sasl_status st;

		if (l->s != NULL)
			in = l->encode ? base64_encode_alloc(l->s, l->len) : xstrndup(l->s, l->len);
		st = sasl_server_step(s, in, in ? strlen(in) : 0, &lookup, &ch);
		if (st != l->want)
			fail_msg("%s: line %zu: status %d, want %d", d->name,
				 (size_t)(l - d->lines), st, l->want);
		if (st != SASL_CONTINUE) {
			assert_null(ch);
		} else {
			unsigned char dec[512];
			size_t n;
			assert_non_null(ch);
			assert_true(base64_decode(ch, strlen(ch), dec, sizeof dec - 1, &n));
			dec[n] = '\0';
			if (l->challenge != NULL && strcmp((char *)dec, l->challenge) != 0)
				fail_msg("%s: challenge \"%s\", want \"%s\"", d->name, dec, l->challenge);
			free(ch);
		}
		free(in);
	}
	const char *user = sasl_server_user(s);
	if ((d->user == NULL) != (user == NULL) ||
	    (user != NULL && strcmp(user, d->user) != 0))
		fail_msg("%s: user \"%s\", want \"%s\"", d->name, user ? user : "(null)",
			 d->user ? d->user : "(null)");
	sasl_server_free(s);
}

static void test_dialogs(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(dialogs); i++)
		run_dialog(&dialogs[i]);
}

/* The literal 334 lines of the seeds' LOGIN dialog. */
static void test_login_literal(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_LOGIN, "h");
	char *ch;

	assert_int_equal(sasl_server_step(s, NULL, 0, &lookup, &ch), SASL_CONTINUE);
	assert_string_equal(ch, "VXNlcm5hbWU6");
	free(ch);
	assert_int_equal(sasl_server_step(s, "Ymh3YW5n", 8, &lookup, &ch), SASL_CONTINUE);
	assert_string_equal(ch, "UGFzc3dvcmQ6");
	free(ch);
	sasl_server_free(s);
}

static void test_cram_challenge_format(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_CRAM_MD5, "mx.example.org");
	char *ch, *c2;
	unsigned char dec[256];
	size_t n;
	unsigned long long r, t;
	char host[64];

	assert_int_equal(sasl_server_step(s, NULL, 0, &lookup, &ch), SASL_CONTINUE);
	assert_true(base64_decode(ch, strlen(ch), dec, sizeof dec - 1, &n));
	dec[n] = '\0';
	assert_int_equal(sscanf((char *)dec, "<%llu.%llu@%63[^>]>", &r, &t, host), 3);
	assert_string_equal(host, "mx.example.org");
	assert_int_equal(dec[n - 1], '>');
	sasl_server_free(s);
	s = sasl_server_new(SASL_CRAM_MD5, "mx.example.org");
	assert_int_equal(sasl_server_step(s, NULL, 0, &lookup, &c2), SASL_CONTINUE);
	assert_string_not_equal(ch, c2);
	free(ch);
	free(c2);
	sasl_server_free(s);
}

/* A SCRAM client, to log in as a {PLAIN} user whose salt the server makes.
 * name is the n= field as sent, password the client's prepared password. */
static void scram_login(const char *name, const char *password, const char *want_user)
{
	struct sasl_server *s = sasl_server_new(SASL_SCRAM_SHA_256, "mx.example.org");
	unsigned char dec[256], salt[64], stored[32], server[32], ck[32], sig[32], proof[32];
	char *ch, *in, *first_bare = xasprintf("n=%s,r=cnonce", name), *msg, *auth, *proof_b64;
	char *first = xasprintf("n,,%s", first_bare);
	const char *nonce, *s_at, *i_at;
	char salt_b64[128];
	size_t n, salt_len, pw_len = strlen(password);
	unsigned iter;

	in = base64_encode_alloc(first, strlen(first));
	free(first);
	assert_int_equal(sasl_server_step(s, in, strlen(in), &lookup, &ch), SASL_CONTINUE);
	free(in);
	assert_true(base64_decode(ch, strlen(ch), dec, sizeof dec - 1, &n));
	free(ch);
	dec[n] = '\0';
	nonce = (char *)dec + 2;
	assert_memory_equal(nonce, "cnonce", 6);
	s_at = strstr((char *)dec, ",s=");
	i_at = strstr((char *)dec, ",i=");
	assert_non_null(s_at);
	assert_non_null(i_at);
	memcpy(salt_b64, s_at + 3, (size_t)(i_at - s_at - 3));
	salt_b64[i_at - s_at - 3] = '\0';
	assert_true(base64_decode(salt_b64, strlen(salt_b64), salt, sizeof salt, &salt_len));
	iter = (unsigned)atoi(i_at + 3);
	assert_int_equal(iter, 4096);
	assert_true(passwd_scram_keys(password, pw_len, salt, salt_len, iter, stored, server));

	msg = xasprintf("c=biws,r=%.*s", (int)(s_at - nonce), nonce);
	auth = xasprintf("%s,%s,%s", first_bare, (char *)dec, msg);
	/* ClientKey is HMAC(SaltedPassword, "Client Key"); recover it from
	 * StoredKey's preimage by recomputing it the client's way. */
	{
		unsigned char salted[32];
		PKCS5_PBKDF2_HMAC(password, (int)pw_len, salt, (int)salt_len, (int)iter, EVP_sha256(), 32, salted);
		HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ck, NULL);
	}
	HMAC(EVP_sha256(), stored, 32, (unsigned char *)auth, strlen(auth), sig, NULL);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	proof_b64 = base64_encode_alloc(proof, 32);
	free(auth);
	auth = xasprintf("%s,p=%s", msg, proof_b64);
	in = base64_encode_alloc(auth, strlen(auth));
	assert_int_equal(sasl_server_step(s, in, strlen(in), &lookup, &ch), SASL_CONTINUE);
	assert_true(base64_decode(ch, strlen(ch), dec, sizeof dec - 1, &n));
	assert_memory_equal(dec, "v=", 2);
	free(ch);
	assert_int_equal(sasl_server_step(s, "", 0, &lookup, &ch), SASL_OK);
	assert_string_equal(sasl_server_user(s), want_user);
	free(first_bare);
	free(in);
	free(auth);
	free(msg);
	free(proof_b64);
	sasl_server_free(s);
}

static void test_scram_plain_secret(void **state)
{
	scram_login("plain=2Cuser=3D", "pencil", "plain,user=");
}

/* RFC 5802 section 5.1: the name is prepared (U+00AD maps to nothing);
 * the stored {PLAIN} "\u2168" is prepared to "IX", which is what a client
 * derives its keys from. */
static void test_scram_saslprep(void **state)
{
	scram_login("ix\u00AD-user", "IX", "ix-user");
}

/* PLAIN: the authcid and the password are prepared before they are
 * compared; what SASLprep refuses fails like a wrong password. */
static const struct {
	const char *authcid, *password;
	enum sasl_status want;
	const char *user;               /* sasl_server_user() afterwards */
} plain_prep_cases[] = {
	{ "us\u00ADer", "pencil", SASL_OK, "user" },
	{ "bhwang", "mypassword!mypassword!\u00AD!", SASL_OK, "bhwang" },
	{ "bhwang", "mypassword!mypassword!\u2000!", SASL_FAIL, "bhwang" },  /* -> "! !" */
	{ "ix-user", "\u2168", SASL_OK, "ix-user" },
	{ "ix-user", "I\u00ADX", SASL_OK, "ix-user" },
	{ "ix-user", "ix", SASL_FAIL, "ix-user" },
	{ "bhwang", "mypassword!mypassword!!\a", SASL_FAIL, "bhwang" },
	{ "bhwang", "mypassword!mypassword!!\xC0\x80", SASL_FAIL, "bhwang" },
	{ "us\aer", "pencil", SASL_FAIL, "us\aer" },           /* kept raw, for the log */
	{ "\u00AD", "pencil", SASL_FAIL, "\u00AD" },            /* prepares to nothing */
	{ "\u0627" "1", "pencil", SASL_FAIL, "\u0627" "1" },      /* bidi */
};

static void test_user_prepare(void **state)
{
	static const struct {
		const char *in, *out;           /* out NULL: nobody */
	} cases[] = {
		{ "user", "user" }, { "us\u00ADer", "user" }, { "\u2168", "IX" },
		{ "a\u0221", "a\u0221" },       /* a query: unassigned passes */
		{ "", NULL }, { "\u00AD", NULL }, { "us\aer", NULL }, { "\u0627" "1", NULL },
		{ "caf\xE9", NULL },
	};
	char big[SASL_USER_MAX + 1], *p;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		p = sasl_user_prepare(cases[i].in, strlen(cases[i].in));
		if (cases[i].out == NULL) {
			assert_null(p);
			continue;
		}
		assert_string_equal(p, cases[i].out);
		free(p);
	}
	assert_null(sasl_user_prepare("a\0b", 3));
	memset(big, 'u', sizeof big);
	p = sasl_user_prepare(big, SASL_USER_MAX);
	assert_non_null(p);
	assert_int_equal(strlen(p), SASL_USER_MAX);
	free(p);
	assert_null(sasl_user_prepare(big, SASL_USER_MAX + 1));
}

static void test_plain_saslprep(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(plain_prep_cases); i++) {
		const char *u = plain_prep_cases[i].authcid, *p = plain_prep_cases[i].password;
		struct sasl_server *s = sasl_server_new(SASL_PLAIN, "h");
		char *msg = xasprintf("%c%s%c%s", 0, u, 0, p), *in, *ch;
		size_t len = strlen(u) + strlen(p) + 2;

		in = base64_encode_alloc(msg, len);
		print_message("%zu\n", i);
		assert_int_equal(sasl_server_step(s, in, strlen(in), &lookup, &ch),
				 plain_prep_cases[i].want);
		assert_null(ch);
		assert_string_equal(sasl_server_user(s), plain_prep_cases[i].user);
		free(in);
		free(msg);
		sasl_server_free(s);
	}
}

/* The salt for users without SCRAM keys is stable per name, so it does not
 * tell unknown users from {PLAIN} ones across attempts. */
static void test_scram_fake_salt_stable(void **state)
{
	char *first[2];

	for (int i = 0; i < 2; i++) {
		struct sasl_server *s = sasl_server_new(SASL_SCRAM_SHA_256, "h");
		char *in = base64_encode_alloc("n,,n=ghost,r=abc", 16);
		sasl_server_set_nonce_for_test(s, "S");
		assert_int_equal(sasl_server_step(s, in, strlen(in), &lookup, &first[i]),
				 SASL_CONTINUE);
		free(in);
		sasl_server_free(s);
	}
	assert_string_equal(first[0], first[1]);
	free(first[0]);
	free(first[1]);
}

/* Bounds: the base64 of SASL_DECODED_MAX octets is accepted, one more
 * group is not. */
static void test_input_bounds(void **state)
{
	size_t max_len = base64_encoded_len(SASL_DECODED_MAX);
	char *in = xmalloc(max_len + 5), *ch;
	struct sasl_server *s;

	memset(in, 'A', max_len + 4);
	in[max_len + 4] = '\0';
	s = sasl_server_new(SASL_LOGIN, "h");
	assert_int_equal(sasl_server_step(s, in, max_len + 4, &lookup, &ch), SASL_BAD_INPUT);
	assert_null(ch);
	sasl_server_free(s);
	/* At the limit the line decodes; 12288 NULs are no user name. */
	s = sasl_server_new(SASL_LOGIN, "h");
	assert_int_equal(sasl_server_step(s, in, max_len, &lookup, &ch), SASL_BAD_INPUT);
	sasl_server_free(s);
	/* The same at the limit for a password: decoded and checked. */
	s = sasl_server_new(SASL_LOGIN, "h");
	assert_int_equal(sasl_server_step(s, "Ymh3YW5n", 8, &lookup, &ch), SASL_CONTINUE);
	free(ch);
	memset(in, 'Q', max_len);
	assert_int_equal(sasl_server_step(s, in, max_len, &lookup, &ch), SASL_FAIL);
	sasl_server_free(s);
	free(in);
}

static void test_user_bounds(void **state)
{
	char user[SASL_USER_MAX + 2], *in, *ch;

	for (size_t len = SASL_USER_MAX; len <= SASL_USER_MAX + 1; len++) {
		struct sasl_server *s = sasl_server_new(SASL_LOGIN, "h");
		memset(user, 'u', len);
		in = base64_encode_alloc(user, len);
		enum sasl_status st = sasl_server_step(s, in, strlen(in), &lookup, &ch);
		assert_int_equal(st, len == SASL_USER_MAX ? SASL_CONTINUE : SASL_BAD_INPUT);
		if (st == SASL_CONTINUE)
			free(ch);
		free(in);
		sasl_server_free(s);
	}
}

static void test_no_lookup(void **state)
{
	struct sasl_server *s = sasl_server_new(SASL_PLAIN, "h");
	char *ch;

	assert_int_equal(sasl_server_step(s, "AGJod2FuZwBteXBhc3N3b3JkIW15cGFzc3dvcmQhIQ==", 44,
					  NULL, &ch), SASL_FAIL);
	sasl_server_free(s);
}

static void test_mech_table(void **state)
{
	static const struct {
		const char *name;
		bool ok;
		enum sasl_mech m;
		bool plaintext;
	} cases[] = {
		{ "PLAIN", true, SASL_PLAIN, true }, { "plain", true, SASL_PLAIN, true },
		{ "Login", true, SASL_LOGIN, true }, { "CRAM-MD5", true, SASL_CRAM_MD5, false },
		{ "scram-sha-256", true, SASL_SCRAM_SHA_256, false },
		{ "SCRAM-SHA-256-PLUS", false, 0, false }, { "SCRAM-SHA-1", false, 0, false },
		{ "PLAI", false, 0, false }, { "PLAINX", false, 0, false }, { "", false, 0, false },
		{ "GSSAPI", false, 0, false },
	};
	enum sasl_mech m;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		assert_int_equal(sasl_mech_parse(cases[i].name, strlen(cases[i].name), &m), cases[i].ok);
		if (!cases[i].ok)
			continue;
		assert_int_equal(m, cases[i].m);
		assert_true(ascii_ieq(sasl_mech_name(m), cases[i].name, strlen(cases[i].name)));
		assert_int_equal(sasl_mech_plaintext(m), cases[i].plaintext);
	}
	assert_false(sasl_mech_parse("PLAIN", 4, &m));
}

static void test_apop(void **state)
{
	static const char ts[] = "<1896.697170952@dbc.mtview.ca.us>";
	static const char dig[] = "c4c9334bac560ecc979e58001b3e22fb";
	struct passwd_secret plain, scram;

	assert_true(passwd_parse("{PLAIN}tanstaaf", 15, &plain));
	assert_true(passwd_parse(RFC7677_SECRET, strlen(RFC7677_SECRET), &scram));
	assert_true(sasl_apop_verify(&plain, ts, dig, 32));
	assert_true(sasl_apop_verify(&plain, ts, "C4C9334BAC560ECC979E58001B3E22FB", 32));
	assert_false(sasl_apop_verify(&plain, ts, "c4c9334bac560ecc979e58001b3e22fc", 32));
	assert_false(sasl_apop_verify(&plain, ts, dig, 31));
	assert_false(sasl_apop_verify(&plain, ts, "c4c9334bac560ecc979e58001b3e22fbb", 33));
	assert_false(sasl_apop_verify(&plain, ts, "x4c9334bac560ecc979e58001b3e22fb", 32));
	assert_false(sasl_apop_verify(&plain, "<1897.697170952@dbc.mtview.ca.us>", dig, 32));
	assert_false(sasl_apop_verify(&scram, ts, dig, 32));
	assert_false(sasl_apop_verify(NULL, ts, dig, 32));
	passwd_secret_free(&plain);
	passwd_secret_free(&scram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialogs),
		cmocka_unit_test(test_login_literal),
		cmocka_unit_test(test_cram_challenge_format),
		cmocka_unit_test(test_scram_plain_secret),
		cmocka_unit_test(test_scram_fake_salt_stable),
		cmocka_unit_test(test_input_bounds),
		cmocka_unit_test(test_user_bounds),
		cmocka_unit_test(test_no_lookup),
		cmocka_unit_test(test_scram_saslprep),
		cmocka_unit_test(test_plain_saslprep),
		cmocka_unit_test(test_user_prepare),
		cmocka_unit_test(test_mech_table),
		cmocka_unit_test(test_apop),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
