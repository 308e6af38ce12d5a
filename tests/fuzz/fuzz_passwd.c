/*
 * fuzz_passwd.c - libFuzzer harness for passwd_parse() with generated
 * input.  Raw bytes seldom get past "{SCHEME}" and base64, so the fuzz
 * input drives a generator that builds a plausible users-file line:
 * an address, a scheme name (right, wrong case, unknown), a secret of
 * that scheme (crypt strings of several methods, plain passwords with
 * UTF-8 that SASLprep maps or refuses, SCRAM fields in and out of range),
 * then a few mutations (flips, cuts, inserted NUL/CR/LF/','/'}',
 * repeats).  The line is split at its first ':' as the users file is.
 *
 * Checked: a refused secret leaves nothing allocated; an accepted one is
 * within the documented bounds; a {PLAIN} secret that SASLprep accepts
 * verifies against itself as typed and as prepared; a SCRAM secret made from a password (with
 * few iterations, so a run stays fast) and left unmutated parses and
 * verifies that password and no other.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "proto/saslprep.h"

#define LINE_MAX_LEN 4096

struct gen {
	const uint8_t *p, *end;
	char line[LINE_MAX_LEN];
	size_t len;
};

/* The next fuzz byte (0 once they run out: the generator stays total). */
static unsigned take(struct gen *g)
{
	return g->p < g->end ? *g->p++ : 0;
}

static unsigned pick(struct gen *g, unsigned n)
{
	return n ? take(g) % n : 0;
}

static void put(struct gen *g, const void *s, size_t n)
{
	if (n > sizeof(g->line) - g->len)
		n = sizeof(g->line) - g->len;
	memcpy(g->line + g->len, s, n);
	g->len += n;
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void put_one_of(struct gen *g, const char *const *list, size_t n)
{
	puts_(g, list[pick(g, (unsigned)n)]);
}

/* n fuzz bytes taken as they are */
static void put_raw(struct gen *g, size_t n)
{
	while (n-- > 0 && g->p < g->end) {
		char c = (char)take(g);
		put(g, &c, 1);
	}
}

/* n characters from alphabet a */
static void put_from(struct gen *g, const char *a, size_t n)
{
	size_t al = strlen(a);
	while (n-- > 0) {
		char c = a[pick(g, (unsigned)al)];
		put(g, &c, 1);
	}
}

static void put_base64(struct gen *g, const unsigned char *bytes, size_t n)
{
	char out[256];
	size_t len = base64_encode(bytes, n, out, sizeof out);
	put(g, out, len);
}

static void gen_address(struct gen *g)
{
	static const char *const locals[] = { "alice", "bob.smith", "a+tag", "\"q u\"", "", "x", "UPPER",
					      "ü", "a..b", "-" };
	static const char *const domains[] = { "example.test", "EXAMPLE.test", "[127.0.0.1]", "", "a",
					       "xn--bcher-kva.test", "b\xc3\xbc" "cher.test" };
	if (pick(g, 8) == 0) {
		put_raw(g, pick(g, 40));
		return;
	}
	put_one_of(g, locals, ARRAY_LEN(locals));
	if (pick(g, 8) != 0)
		puts_(g, "@");
	put_one_of(g, domains, ARRAY_LEN(domains));
}

static void gen_crypt(struct gen *g)
{
	static const char *const methods[] = { "$y$j9T$", "$y$jFT$", "$6$", "$6$rounds=1000$", "$5$", "$2b$10$",
					       "$2y$04$", "$1$", "$gy$j9T$", "$7$", "", "*", "!", "$", "$$", "_" };
	static const char b64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	put_one_of(g, methods, ARRAY_LEN(methods));
	put_from(g, b64, pick(g, 32));
	if (pick(g, 2))
		puts_(g, "$");
	put_from(g, b64, pick(g, 90));
}

/* Printable ASCII and UTF-8 that SASLprep maps (soft hyphen, NBSP,
 * compatibility forms), keeps, or refuses (controls, bidi mixes,
 * unassigned code points, broken sequences). */
static void gen_password(struct gen *g, size_t n)
{
	static const char *const pieces[] = {
		"\xc2\xad", "\xc2\xa0", "\xe2\x85\xa8", "\xc3\x9f", "\xef\xac\x81", "\xe2\x80\x8b",
		"\xd7\x90", "\xd8\xa7", "\xcc\x81", "\x01", "\x7f", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
		"\xc3", "\xe0\x80\xaf", "\xed\xa0\x80", "\xe1\xbe\xbe", " ", "\\", ":", ",", "}", "{",
	};
	static const char ascii[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&*+-./=?^_~";
	while (n-- > 0) {
		if (pick(g, 4) == 0)
			put_one_of(g, pieces, ARRAY_LEN(pieces));
		else
			put_from(g, ascii, 1);
	}
}

static void gen_scram_field_number(struct gen *g)
{
	static const char *const iters[] = { "4096", "1", "0", "1000000", "1000001", "", "-1", "01", "+5",
					     "18446744073709551616", "4096 ", "99999999999999999999" };
	put_one_of(g, iters, ARRAY_LEN(iters));
}

/* A base64 field of about n octets, or something base64 would refuse. */
static void gen_scram_field_b64(struct gen *g, size_t n)
{
	unsigned char bytes[80];
	static const char *const junk[] = { "", "=", "====", "A", "AA", "AAA=", "A===", "*AAA", "AA==AA==",
					    "AAAA\n", "AA AA" };
	if (pick(g, 6) == 0) {
		put_one_of(g, junk, ARRAY_LEN(junk));
		return;
	}
	for (size_t i = 0; i < n && i < sizeof bytes; i++)
		bytes[i] = (unsigned char)take(g);
	put_base64(g, bytes, n < sizeof bytes ? n : sizeof bytes);
}

static void gen_scram_loose(struct gen *g)
{
	static const size_t key_lens[] = { 32, 32, 32, 31, 33, 0, 64 };
	size_t fields = 3 + pick(g, 3);
	for (size_t i = 0; i < fields; i++) {
		if (i > 0)
			puts_(g, ",");
		if (i == 0)
			gen_scram_field_number(g);
		else if (i == 1)
			gen_scram_field_b64(g, pick(g, 70));
		else
			gen_scram_field_b64(g, key_lens[pick(g, ARRAY_LEN(key_lens))]);
	}
}

/* A real secret for password: iterations kept small so verifying is cheap. */
static void gen_scram_real(struct gen *g, char *password, size_t cap)
{
	unsigned char salt[PASSWD_SALT_MAX], stored[PASSWD_KEY_LEN], server[PASSWD_KEY_LEN];
	size_t salt_len = 1 + pick(g, PASSWD_SALT_MAX), plen = 1 + pick(g, 24);
	unsigned iters = 1 + pick(g, 4);
	static const char ascii[] = "abcdefghijklmnopqrstuvwxyz0123456789!#%&*+-./=?^_~";
	char num[16];

	for (size_t i = 0; i < plen && i + 1 < cap; i++)
		password[i] = ascii[pick(g, sizeof ascii - 1)];
	password[plen < cap ? plen : cap - 1] = '\0';
	for (size_t i = 0; i < salt_len; i++)
		salt[i] = (unsigned char)take(g);
	if (!passwd_scram_keys(password, strlen(password), salt, salt_len, iters, stored, server))
		abort();
	num[0] = (char)('0' + iters);
	num[1] = '\0';
	puts_(g, num);
	puts_(g, ",");
	put_base64(g, salt, salt_len);
	puts_(g, ",");
	put_base64(g, stored, sizeof stored);
	puts_(g, ",");
	put_base64(g, server, sizeof server);
}

static void mutate(struct gen *g)
{
	static const char inserts[] = { '\0', '\r', '\n', ',', '}', '{', ':', '=', ' ', '\xff' };
	size_t at = g->len ? take(g) % g->len : 0;

	switch (pick(g, 6)) {
	case 0:
		if (g->len)
			g->line[at] ^= (char)(1u << pick(g, 8));
		break;
	case 1:
		g->len = at;
		break;
	case 2:
		if (g->len) {
			memmove(g->line + at, g->line + at + 1, g->len - at - 1);
			g->len--;
		}
		break;
	case 3:
		if (g->len < sizeof g->line) {
			memmove(g->line + at + 1, g->line + at, g->len - at);
			g->line[at] = inserts[pick(g, sizeof inserts)];
			g->len++;
		}
		break;
	case 4: {
		/* repeat the tail: long secrets and repeated fields */
		size_t n = g->len - at;
		for (unsigned r = 1 + pick(g, 4); r > 0; r--)
			put(g, g->line + at, n);
		break;
	}
	default:
		if (g->len && g->line[at] >= 'a' && g->line[at] <= 'z')
			g->line[at] = (char)(g->line[at] - 32);
		break;
	}
}

static void check_plain(const struct passwd_secret *s, const char *text, size_t len)
{
	char *prep;
	size_t n;

	if (s->value == NULL)
		abort();
	if (saslprep(text, len, SASLPREP_STORED, &prep, &n) != SASLPREP_OK)
		return;
	/* stored prepared: the password as typed matches it, and so does its
	 * prepared form (SASLprep is stable on its own output) */
	if (n > 0 && (strlen(s->value) != n || memcmp(s->value, prep, n) != 0 || !passwd_verify(s, text, len) ||
		      !passwd_verify(s, prep, n)))
		abort();
	free(prep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "CRYPT", "PLAIN", "SCRAM-SHA-256", "crypt", "Plain",
					     "scram-sha-256", "SCRAM-SHA-1", "MD5", "", "PLAIN ", "SHA512-CRYPT" };
	struct gen g = { .p = data, .end = data + size };
	struct passwd_secret s;
	char password[32] = "";
	const char *colon, *secret;
	size_t slen, nmut, secret_start;
	unsigned kind, name;
	bool real_scram = false, pristine;

	gen_address(&g);
	puts_(&g, ":");
	secret_start = g.len;
	name = pick(&g, ARRAY_LEN(names) + 1);
	puts_(&g, "{");
	if (name < ARRAY_LEN(names))
		puts_(&g, names[name]);
	else
		put_raw(&g, pick(&g, 16));
	puts_(&g, "}");
	kind = pick(&g, 4);
	if (kind == 0)
		gen_crypt(&g);
	else if (kind == 1)
		gen_password(&g, pick(&g, 48));
	else if (kind == 2)
		gen_scram_loose(&g);
	else {
		gen_scram_real(&g, password, sizeof password);
		real_scram = name == 2 || name == 5;
	}
	nmut = pick(&g, 4);
	for (size_t i = 0; i < nmut; i++)
		mutate(&g);
	pristine = nmut == 0;
	if (pick(&g, 16) == 0) {
		pristine = false;
		put_raw(&g, (size_t)(g.end - g.p));
	}

	colon = memchr(g.line, ':', g.len);
	secret = colon ? colon + 1 : g.line;
	slen = g.len - (size_t)(secret - g.line);
	/* the line as generated, split where the generator put the colon */
	pristine = pristine && secret == g.line + secret_start;
	if (!passwd_parse(secret, slen, &s)) {
		if (s.value != NULL)
			abort();
		if (real_scram && pristine)
			abort();
		return 0;
	}
	if (slen > PASSWD_MAX + 2 + 13 || memchr(secret, '\0', slen) || memchr(secret, '\n', slen) ||
	    memchr(secret, '\r', slen))
		abort();
	switch (s.scheme) {
	case PASSWD_CRYPT: {
		const char *text = memchr(secret, '}', slen) + 1;
		size_t tl = slen - (size_t)(text - secret);
		if (s.value == NULL || strlen(s.value) != tl || memcmp(s.value, text, tl) != 0)
			abort();
		break;
	}
	case PASSWD_PLAIN: {
		const char *text = memchr(secret, '}', slen) + 1;
		check_plain(&s, text, slen - (size_t)(text - secret));
		break;
	}
	case PASSWD_SCRAM_SHA_256:
		if (s.value != NULL || s.iterations < 1 || s.iterations > PASSWD_SCRAM_ITER_MAX ||
		    s.salt_len < 1 || s.salt_len > PASSWD_SALT_MAX)
			abort();
		/* PBKDF2 at up to a million iterations: only the generated
		 * secrets, whose count is small, are verified. */
		if (real_scram && pristine) {
			size_t pl = strlen(password);
			if (s.iterations > 4 || !passwd_verify(&s, password, pl))
				abort();
			password[pl] = 'x';
			password[pl + 1] = '\0';
			if (passwd_verify(&s, password, pl + 1))
				abort();
		}
		break;
	}
	passwd_secret_free(&s);
	return 0;
}
