/*
 * test_passwd.c - users-file password schemes: parsing every scheme and
 * every malformed secret, verification for yescrypt, sha512-crypt, bcrypt,
 * PLAIN and SCRAM-SHA-256 (RFC 7677 example keys), and passwd_hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <crypt.h>

#include "proto/base64.h"
#include "proto/passwd.h"

/* RFC 7677 section 3: user "user", password "pencil". */
#define RFC7677_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC7677_STORED "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define RFC7677_SERVER "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define RFC7677_SECRET "{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER

static bool parse(const char *s, struct passwd_secret *out)
{
	return passwd_parse(s, strlen(s), out);
}

static const struct {
	const char *secret, *good, *bad;
	enum passwd_scheme scheme;
} verify_cases[] = {
	{ "{CRYPT}$y$j9T$1RJ9Xc074/S2eOI7h1ODQ.$pmL/k6bfpLlloDFJfECaJQHFSLdWAkdcZpf72vTeCM2",
	  "secret", "Secret", PASSWD_CRYPT },
	{ "{crypt}$6$ePnhFhzGkOd/B/L/$AXnzBfvEochUM.bbPkOXf5onerFZGuoapCQspJSYDn1seh4v9Mb/yJcISGvLXoMUZDg8Xcg5emKXB/.gAKxvE.",
	  "secret", "secret ", PASSWD_CRYPT },
	{ "{Crypt}$2b$04$oq1VGfFHTBY0ThpifEe.f.3I8sHWBpg2BeHunhC.bBpViyO1hv90K",
	  "secret", "secre", PASSWD_CRYPT },
	{ "{PLAIN}mypassword!mypassword!!", "mypassword!mypassword!!",
	  "mypassword!mypassword!", PASSWD_PLAIN },
	{ "{plain}a:b{c}", "a:b{c}", "a:b{c", PASSWD_PLAIN },
	{ RFC7677_SECRET, "pencil", "pencil2", PASSWD_SCRAM_SHA_256 },
	{ "{scram-sha-256}4096," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER,
	  "pencil", "Pencil", PASSWD_SCRAM_SHA_256 },
};

static void test_verify(void **state)
{
	for (size_t i = 0; i < sizeof verify_cases / sizeof verify_cases[0]; i++) {
		struct passwd_secret s;
		const char *good = verify_cases[i].good, *bad = verify_cases[i].bad;
		assert_true(parse(verify_cases[i].secret, &s));
		assert_int_equal(s.scheme, verify_cases[i].scheme);
		assert_true(passwd_verify(&s, good, strlen(good)));
		assert_false(passwd_verify(&s, bad, strlen(bad)));
		assert_false(passwd_verify(&s, "", 0));
		/* A NUL inside never matches, even with the right prefix. */
		char *nul = malloc(strlen(good) + 2);
		memcpy(nul, good, strlen(good));
		nul[strlen(good)] = '\0';
		nul[strlen(good) + 1] = 'x';
		assert_false(passwd_verify(&s, nul, strlen(good) + 2));
		free(nul);
		passwd_secret_free(&s);
		assert_null(s.value);
	}
}

static void test_parse_scram_fields(void **state)
{
	struct passwd_secret s;
	unsigned char salt[16];
	size_t n;

	assert_true(parse(RFC7677_SECRET, &s));
	assert_int_equal(s.iterations, 4096);
	assert_true(base64_decode(RFC7677_SALT, strlen(RFC7677_SALT), salt, sizeof salt, &n));
	assert_int_equal(s.salt_len, 16);
	assert_memory_equal(s.salt, salt, 16);
	assert_null(s.value);
	passwd_secret_free(&s);
}

static const char *const bad_secrets[] = {
	"", "{", "{}", "{}x", "PLAIN}x", "{PLAIN", "{PLAIN}", "{CRYPT}", "{SCRAM-SHA-256}",
	"{MD5}x", "{PLAINX}x", "{PLAI}x", "{ PLAIN}x", "{PLAIN}a\nb", "{PLAIN}a\r",
	/* SCRAM: field count, iterations, salt and key sizes. */
	"{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED,
	"{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER ",",
	"{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER ",x",
	"{SCRAM-SHA-256}0," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}1000001," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}-1," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}4096,," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6g===," RFC7677_STORED "," RFC7677_SERVER,
	"{SCRAM-SHA-256}4096," RFC7677_SALT ",WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g==,"
	RFC7677_SERVER,
	"{SCRAM-SHA-256}4096," RFC7677_SALT "," RFC7677_STORED ",AAAA" RFC7677_SERVER,
	/* A 65-octet salt (64 is the most). */
	"{SCRAM-SHA-256}4096,"
	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	"," RFC7677_STORED "," RFC7677_SERVER,
};

static void test_parse_bad(void **state)
{
	struct passwd_secret s;

	for (size_t i = 0; i < sizeof bad_secrets / sizeof bad_secrets[0]; i++) {
		if (parse(bad_secrets[i], &s))
			fail_msg("accepted \"%s\"", bad_secrets[i]);
		assert_null(s.value);
	}
	assert_false(passwd_parse("{PLAIN}a\0b", 10, &s));
	assert_false(passwd_parse("{PLAIN}ab", 1, &s));
}

static void test_parse_bounds(void **state)
{
	struct passwd_secret s;
	char buf[7 + PASSWD_MAX + 2];

	memcpy(buf, "{PLAIN}", 7);
	memset(buf + 7, 'x', PASSWD_MAX + 1);
	assert_true(passwd_parse(buf, 7 + PASSWD_MAX, &s));
	passwd_secret_free(&s);
	assert_false(passwd_parse(buf, 7 + PASSWD_MAX + 1, &s));
	/* Iterations 1 and the maximum; a 64-octet salt. */
	assert_true(parse("{SCRAM-SHA-256}1," RFC7677_SALT "," RFC7677_STORED "," RFC7677_SERVER, &s));
	passwd_secret_free(&s);
	assert_true(parse("{SCRAM-SHA-256}1000000," RFC7677_SALT "," RFC7677_STORED ","
			  RFC7677_SERVER, &s));
	passwd_secret_free(&s);
	assert_true(parse("{SCRAM-SHA-256}4096,"
			  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
			  "," RFC7677_STORED "," RFC7677_SERVER, &s));
	assert_int_equal(s.salt_len, 64);
	passwd_secret_free(&s);
}

static void test_scram_keys(void **state)
{
	unsigned char salt[16], stored[32], server[32], want[32];
	size_t n;

	assert_true(base64_decode(RFC7677_SALT, strlen(RFC7677_SALT), salt, sizeof salt, &n));
	assert_true(passwd_scram_keys("pencil", 6, salt, n, 4096, stored, server));
	assert_true(base64_decode(RFC7677_STORED, 44, want, sizeof want, &n));
	assert_memory_equal(stored, want, 32);
	assert_true(base64_decode(RFC7677_SERVER, 44, want, sizeof want, &n));
	assert_memory_equal(server, want, 32);
}

static void test_hash(void **state)
{
	static const enum passwd_scheme schemes[] = {
		PASSWD_CRYPT, PASSWD_PLAIN, PASSWD_SCRAM_SHA_256,
	};
	static const char *const prefixes[] = {
		"{CRYPT}$y$", "{PLAIN}hunter2", "{SCRAM-SHA-256}4096,",
	};

	for (size_t i = 0; i < 3; i++) {
		struct passwd_secret s;
		char *h = passwd_hash(schemes[i], "hunter2");
		char *h2 = passwd_hash(schemes[i], "hunter2");
		assert_non_null(h);
		assert_memory_equal(h, prefixes[i], strlen(prefixes[i]));
		if (schemes[i] != PASSWD_PLAIN)
			assert_string_not_equal(h, h2);     /* fresh salt */
		assert_true(parse(h, &s));
		assert_int_equal(s.scheme, schemes[i]);
		assert_true(passwd_verify(&s, "hunter2", 7));
		assert_false(passwd_verify(&s, "hunter3", 7));
		passwd_secret_free(&s);
		free(h);
		free(h2);
		assert_null(passwd_hash(schemes[i], ""));
		assert_null(passwd_hash(schemes[i], "a\nb"));
		assert_null(passwd_hash(schemes[i], "a\rb"));
	}
}

/* SASLprep (RFC 4013) on both sides: what is stored, what is presented. */
static const struct {
	const char *secret, *good, *bad;
} prep_verify_cases[] = {
	{ "{PLAIN}IX", "I\u00ADX", "I X" },
	{ "{PLAIN}IX", "\u2168", "\u2169" },
	{ "{PLAIN}\u2168", "IX", "ix" },                /* a hand-written file is prepared too */
	{ "{PLAIN}I\u00ADX", "IX", "I" },
	{ "{PLAIN}a b", "a\u00A0b", "a\u200Bb" },       /* space maps to space, ZWSP to nothing */
	{ "{PLAIN}\u00E9", "e\u0301", "e" },
	/* RFC 7677's keys for "pencil": a soft hyphen inside changes nothing. */
	{ RFC7677_SECRET, "pen\u00ADcil", "pen cil" },
	/* Refused by SASLprep when presented: never a match. */
	{ "{PLAIN}a\tb", "", "a\tb" },
	{ "{PLAIN}caf\xE9", "", "caf\xE9" },
};

static void test_verify_saslprep(void **state)
{
	for (size_t i = 0; i < sizeof prep_verify_cases / sizeof prep_verify_cases[0]; i++) {
		struct passwd_secret s;
		const char *good = prep_verify_cases[i].good, *bad = prep_verify_cases[i].bad;
		print_message("%zu\n", i);
		assert_true(parse(prep_verify_cases[i].secret, &s));
		if (good[0] != '\0')
			assert_true(passwd_verify(&s, good, strlen(good)));
		assert_false(passwd_verify(&s, bad, strlen(bad)));
		passwd_secret_free(&s);
	}
}

static void test_hash_saslprep(void **state)
{
	static const enum passwd_scheme schemes[] = {
		PASSWD_CRYPT, PASSWD_PLAIN, PASSWD_SCRAM_SHA_256,
	};
	struct passwd_secret s;
	char *h;

	h = passwd_hash(PASSWD_PLAIN, "I\u00ADX");
	assert_string_equal(h, "{PLAIN}IX");
	free(h);
	h = passwd_hash(PASSWD_PLAIN, "\u2168");
	assert_string_equal(h, "{PLAIN}IX");
	free(h);
	for (size_t i = 0; i < 3; i++) {
		h = passwd_hash(schemes[i], "\u2168");
		assert_non_null(h);
		assert_true(parse(h, &s));
		assert_true(passwd_verify(&s, "IX", 2));
		assert_true(passwd_verify(&s, "I\u00ADX", 4));
		assert_false(passwd_verify(&s, "ix", 2));
		passwd_secret_free(&s);
		free(h);
		assert_null(passwd_hash(schemes[i], "\a"));            /* prohibited */
		assert_null(passwd_hash(schemes[i], "a\tb"));
		assert_null(passwd_hash(schemes[i], "\u00AD"));        /* empty once prepared */
		assert_null(passwd_hash(schemes[i], "a\u0221"));       /* unassigned: stored string */
		assert_null(passwd_hash(schemes[i], "\u0627" "1"));    /* bidi */
		assert_null(passwd_hash(schemes[i], "caf\xE9"));       /* not UTF-8 */
	}
}

/* A hash of a password as typed, made before SASLprep was applied. */
static char *raw_crypt(const char *password)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE], *ret;
	struct crypt_data *data = calloc(1, sizeof *data);
	const char *out;

	assert_non_null(data);
	assert_non_null(crypt_gensalt_rn("$6$", 0, NULL, 0, setting, sizeof setting));
	out = crypt_rn(password, setting, data, sizeof *data);
	assert_non_null(out);
	ret = malloc(strlen(out) + 8);
	assert_non_null(ret);
	strcpy(ret, "{CRYPT}");
	strcat(ret, out);
	free(data);
	return ret;
}

static void test_verify_unprepared_hash(void **state)
{
	/* NO-BREAK SPACE maps to a space, SOFT HYPHEN to nothing. */
	static const char *const typed[] = { "pass\u00A0word", "I\u00ADX", "\u2168" };
	struct passwd_secret s;

	for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) {
		char *secret = raw_crypt(typed[i]);
		assert_true(parse(secret, &s));
		assert_true(passwd_verify(&s, typed[i], strlen(typed[i])));
		assert_false(passwd_verify(&s, "pass word", 9));
		assert_false(passwd_verify(&s, "IX", 2));
		passwd_secret_free(&s);
		free(secret);
	}
	/* {PLAIN} values are prepared when read: no second try there. */
	assert_true(parse("{PLAIN}pass word", &s));
	assert_true(passwd_verify(&s, "pass\u00A0word", strlen("pass\u00A0word")));
	passwd_secret_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_parse_scram_fields),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_scram_keys),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_verify_saslprep),
		cmocka_unit_test(test_hash_saslprep),
		cmocka_unit_test(test_verify_unprepared_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
