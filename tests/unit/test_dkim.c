/*
 * test_dkim.c - DKIM signer and verifier: independent vectors (the RFC
 * 6376 example message as dkimpy's test suite signs it, Ed25519 with the
 * RFC 8463 key and RSA), sign/verify round trips fed in chunks, each kind
 * of tampering, key record trouble, and the zone-file line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "msgauth/dkim.h"

static const char vector[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; \n"
	" d=football.example.com; i=@football.example.com; \n"
	" q=dns/txt; s=brisbane; t=1518460054; h=from : to : \n"
	" subject : date : message-id : from : subject : date; \n"
	" bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \n"
	" b=9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YB\n"
	" o0wBLR++X5LqmsxXaOYLLJe46l10AQ==\n"
	"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; \n"
	" d=football.example.com; i=@football.example.com; \n"
	" q=dns/txt; s=test; t=1527915362; h=from : to : subject : \n"
	" date : message-id : from : subject : date; \n"
	" bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \n"
	" b=icKcLSEZYXJ95flvWE8FT6hl5iqd8MC/LEKYH0QjsqYy6MO/4pgVNCZH\n"
	" l/RAXAuADxE/40Fg7uTlxwwD1hjN2Ple6J//cJfslBdDOq6zTVbne1dqtl\n"
	" NOat7iamJ1AfRqyG+ja7a2AZsrpUuJ7VA6O+0zRYPqpwMEkEFIzI9i/Xk=\n"
	"From: Joe SixPack <joe@football.example.com>\n"
	"To: Suzie Q <suzie@shopping.example.net>\n"
	"Subject: Is dinner ready?\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
	"\n"
	"Hi.\n"
	"\n"
	"We lost the game.  Are you hungry yet?\n"
	"\n"
	"Joe.\n"
	"\n";

static const char key_ed[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char key_rsa[] =
	"v=DKIM1; g=*; k=rsa; "
	"p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/"
	"byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+"
	"2kryOTIKT+l/K4w3QIDAQAB";

/* Verify msg with chunk-sized feeds; rec_for(i) is signature i's record;
 * with cache (else NULL) for decoded keys. */
static struct dkim_verify *verify_cached(struct dkim_key_cache *cache, const char *msg, size_t len, size_t chunk,
					 const char *const *recs, size_t nrec)
{
	struct dkim_verify *v = dkim_verify_new();

	dkim_verify_set_key_cache(v, cache);

	for (size_t off = 0; off < len; off += chunk)
		dkim_verify_feed(v, msg + off, len - off < chunk ? len - off : chunk);
	dkim_verify_finish(v);
	for (size_t i = 0; i < dkim_verify_count(v) && i < nrec; i++)
		dkim_verify_key(v, i, recs[i], strlen(recs[i]), 1700000000);
	return v;
}

static struct dkim_verify *verify(const char *msg, size_t len, size_t chunk, const char *const *recs, size_t nrec)
{
	return verify_cached(NULL, msg, len, chunk, recs, nrec);
}

static void expect(struct dkim_verify *v, size_t i, enum dkim_result want, const char *reason)
{
	const char *got;
	enum dkim_result r = dkim_verify_result(v, i, &got);

	print_message("sig %zu: %s (%s)\n", i, dkim_result_name(r), got ? got : "");
	assert_int_equal(r, want);
	if (reason)
		assert_string_equal(got, reason);
}

static void test_vectors(void **state)
{
	const char *recs[] = { key_ed, key_rsa };
	static const size_t chunks[] = { sizeof vector, 1, 3, 64 };

	for (size_t c = 0; c < ARRAY_LEN(chunks); c++) {
		struct dkim_verify *v = verify(vector, strlen(vector), chunks[c], recs, 2);
		char *name;
		assert_int_equal(dkim_verify_count(v), 2);
		expect(v, 0, DKIM_PASS, NULL);
		expect(v, 1, DKIM_PASS, NULL);
		assert_non_null(dkim_verify_sig(v, 0));
		dkim_verify_free(v);
		v = verify(vector, strlen(vector), chunks[c], NULL, 0);
		name = dkim_verify_key_name(v, 1);
		assert_string_equal(name, "test._domainkey.football.example.com");
		free(name);
		dkim_verify_free(v);
	}
}

/* The vector with one substitution. */
static char *altered(const char *from, const char *to)
{
	const char *p = strstr(vector, from);
	assert_non_null(p);
	return xasprintf("%.*s%s%s", (int)(p - vector), vector, to, p + strlen(from));
}

static void test_tampered(void **state)
{
	static const struct {
		const char *from, *to;
		enum dkim_result want;
		const char *reason;
	} cases[] = {
		{ "hungry yet", "hungry now", DKIM_FAIL, "body hash did not verify" },
		{ "Is dinner ready?", "Is lunch ready?", DKIM_FAIL, "signature did not verify" },
		{ "From: Joe", "From: Bob", DKIM_FAIL, "signature did not verify" },
		/* a second From above the signed one: oversigned in h= */
		{ "From: Joe", "From: evil@example.net\nFrom: Joe", DKIM_FAIL, "signature did not verify" },
		/* trailing empty lines are not part of a simple body */
		{ "Joe.\n\n", "Joe.\n\n\n\n", DKIM_PASS, NULL },
	};
	const char *recs[] = { key_ed, key_rsa };

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *m = altered(cases[i].from, cases[i].to);
		struct dkim_verify *v = verify(m, strlen(m), 5, recs, 2);
		print_message("case %zu\n", i);
		expect(v, 0, cases[i].want, cases[i].reason);
		expect(v, 1, cases[i].want, cases[i].reason);
		dkim_verify_free(v);
		free(m);
	}
}

static void test_key_trouble(void **state)
{
	static const struct {
		const char *rec;
		const char *reason;
	} cases[] = {
		{ "v=DKIM1; k=ed25519; p=", "key revoked" },
		{ "v=DKIM1; k=rsa; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "key type does not match a=" },
		{ "v=DKIM1; k=ed25519; p=AAAA", "p= is not an Ed25519 key" },
		{ "v=DKIM1; k=ed25519; p=!!!!", "p= is not base64" },
		{ "v=DKIM1; k=ed25519; h=sha1; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "key does not allow sha256" },
		{ "v=DKIM1; k=ed25519; t=s; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", NULL },
		{ "garbage", "bad key record" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *recs[] = { cases[i].rec };
		struct dkim_verify *v = verify(vector, strlen(vector), 4096, recs, 1);
		print_message("case %zu\n", i);
		/* t=s holds: i= is @football.example.com, d= itself */
		expect(v, 0, cases[i].reason ? DKIM_PERMERROR : DKIM_PASS, cases[i].reason);
		dkim_verify_free(v);
	}
}

static void test_lookup_failed(void **state)
{
	struct dkim_verify *v = verify(vector, strlen(vector), 4096, NULL, 0);

	dkim_verify_key_failed(v, 0, DKIM_TEMPERROR, "DNS timeout");
	expect(v, 0, DKIM_TEMPERROR, "DNS timeout");
	assert_null(dkim_verify_key_name(v, 0)); /* decided: no lookup needed */
	dkim_verify_free(v);
}

/* The time tags against the verifier's clock, and a key in testing mode. */
static void test_time_and_testing(void **state)
{
	static const char ed_testing[] = "v=DKIM1; k=ed25519; t=y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	const int64_t t = 1518460054; /* the Ed25519 signature's t= */
	static const struct {
		int64_t now;
		enum dkim_result want;
		const char *reason;
	} clocks[] = {
		{ t - 3600, DKIM_PERMERROR, "t= is in the future" },
		{ t - 60, DKIM_PASS, NULL }, /* clocks a minute apart */
		{ t + 86400 * 3650, DKIM_PASS, NULL },
	};
	struct dkim_verify *v;
	char *m;

	for (size_t i = 0; i < ARRAY_LEN(clocks); i++) {
		v = verify(vector, strlen(vector), 4096, NULL, 0);
		dkim_verify_key(v, 0, key_ed, strlen(key_ed), clocks[i].now);
		print_message("clock %zu\n", i);
		expect(v, 0, clocks[i].want, clocks[i].reason);
		dkim_verify_free(v);
	}
	/* x= past: expired whatever else holds */
	m = altered("t=1518460054;", "t=1518460054; x=1600000000;");
	v = verify(m, strlen(m), 4096, NULL, 0);
	dkim_verify_key(v, 0, key_ed, strlen(key_ed), 1600000001);
	expect(v, 0, DKIM_PERMERROR, "signature expired");
	dkim_verify_free(v);
	v = verify(m, strlen(m), 4096, NULL, 0);
	dkim_verify_key(v, 0, key_ed, strlen(key_ed), 1599999999);
	expect(v, 0, DKIM_FAIL, "signature did not verify"); /* x= is signed too */
	dkim_verify_free(v);
	free(m);
	/* t=y (RFC 6376 3.6.1): a failure counts as no signature, a pass stays */
	m = altered("hungry yet", "hungry now");
	v = verify(m, strlen(m), 4096, (const char *const[]){ ed_testing }, 1);
	expect(v, 0, DKIM_NEUTRAL, "key in testing mode (t=y)");
	dkim_verify_free(v);
	free(m);
	v = verify(vector, strlen(vector), 4096, (const char *const[]){ ed_testing }, 1);
	expect(v, 0, DKIM_PASS, NULL);
	dkim_verify_free(v);
}

static const char plain[] = "From: Alice <alice@example.com>\n"
			    "To: bob@example.org\n"
			    "Subject: a  test\n"
			    "  folded\n"
			    "Date: Fri, 04 Dec 2026 18:00:00 +0000\n"
			    "\n"
			    "Body line  \n"
			    "\n"
			    "last\n\n\n";

/* Sign plain (fed chunk by chunk), return the signed message. */
static char *sign(EVP_PKEY *key, const char *msg, const char *eol, size_t chunk)
{
	struct dkim_signer *s = dkim_signer_new(key, "example.com", "sel");
	size_t len = strlen(msg);
	char *field, *out;

	for (size_t off = 0; off < len; off += chunk)
		dkim_signer_feed(s, msg + off, len - off < chunk ? len - off : chunk);
	field = dkim_signer_finish(s, eol, 1700000000);
	assert_non_null(field);
	out = xasprintf("%s%s", field, msg);
	free(field);
	dkim_signer_free(s);
	return out;
}

static void roundtrip(EVP_PKEY *key)
{
	char *rec = dkim_key_record(key), *m, *bad;
	const char *recs[] = { rec };
	struct dkim_verify *v;

	for (size_t chunk = 1; chunk < 40; chunk += 13) {
		m = sign(key, plain, "\n", chunk);
		assert_non_null(strstr(m, "h=from:from:to:subject:date;"));
		v = verify(m, strlen(m), 7, recs, 1);
		expect(v, 0, DKIM_PASS, NULL);
		dkim_verify_free(v);
		/* relaxed/relaxed: whitespace changes do not matter */
		bad = xasprintf("%.*sSubject:   a test folded\n%s", (int)(strstr(m, "Subject:") - m), m,
				strstr(m, "Date:"));
		v = verify(bad, strlen(bad), 4096, recs, 1);
		expect(v, 0, DKIM_PASS, NULL);
		dkim_verify_free(v);
		free(bad);
		/* From added on top: oversigned */
		bad = xasprintf("From: mallory@example.net\n%s", m);
		v = verify(bad, strlen(bad), 4096, recs, 1);
		expect(v, 0, DKIM_FAIL, "signature did not verify");
		dkim_verify_free(v);
		free(bad);
		/* body text appended */
		bad = xasprintf("%smore\n", m);
		v = verify(bad, strlen(bad), 4096, recs, 1);
		expect(v, 0, DKIM_FAIL, "body hash did not verify");
		dkim_verify_free(v);
		free(bad);
		free(m);
	}
	/* CRLF in, CRLF out */
	{
		char *crlf = xmalloc(2 * sizeof plain), *p = crlf;
		for (const char *q = plain; *q; q++) {
			if (*q == '\n')
				*p++ = '\r';
			*p++ = *q;
		}
		*p = '\0';
		m = sign(key, crlf, "\r\n", 10);
		assert_true(strstr(m, "\n\t")[-1] == '\r');
		v = verify(m, strlen(m), 3, recs, 1);
		expect(v, 0, DKIM_PASS, NULL);
		dkim_verify_free(v);
		free(m);
		free(crlf);
	}
	free(rec);
}

static void test_roundtrip(void **state)
{
	EVP_PKEY *rsa = dkim_key_generate(false, 2048), *ed = dkim_key_generate(true, 0);

	assert_non_null(rsa);
	assert_non_null(ed);
	assert_null(dkim_key_generate(false, 1024)); /* RFC 8301: make 2048 */
	roundtrip(rsa);
	roundtrip(ed);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* Decoded keys come from the cache by their octets: the results are
 * those without it (a tampered message still fails, a key record that
 * no longer fits the signature is still refused), and past
 * DKIM_KEY_CACHE_MAX keys the least recently used one is decoded again. */
static void test_key_cache(void **state)
{
	struct dkim_key_cache *c = dkim_key_cache_new();
	const char *recs[] = { key_ed, key_rsa };
	const char *swapped[] = { key_rsa, key_ed };
	uint64_t hits, misses;
	char *bad = altered("hungry yet", "hungry now");
	EVP_PKEY *keys[DKIM_KEY_CACHE_MAX + 1];
	char *msgs[DKIM_KEY_CACHE_MAX + 1], *krecs[DKIM_KEY_CACHE_MAX + 1];
	struct dkim_verify *v;

	for (int round = 0; round < 3; round++) {
		v = verify_cached(c, vector, strlen(vector), 64, recs, 2);
		expect(v, 0, DKIM_PASS, NULL);
		expect(v, 1, DKIM_PASS, NULL);
		dkim_verify_free(v);
	}
	dkim_key_cache_stats(c, &hits, &misses);
	assert_int_equal(misses, 2);
	assert_int_equal(hits, 4);
	v = verify_cached(c, bad, strlen(bad), 64, recs, 2);
	expect(v, 0, DKIM_FAIL, "body hash did not verify");
	expect(v, 1, DKIM_FAIL, "body hash did not verify");
	dkim_verify_free(v);
	v = verify_cached(c, vector, strlen(vector), 64, swapped, 2);
	expect(v, 0, DKIM_PERMERROR, "key type does not match a=");
	expect(v, 1, DKIM_PERMERROR, "key type does not match a=");
	dkim_verify_free(v);
	free(bad);

	/* one key more than the cache holds, each used once, in order */
	for (size_t k = 0; k <= DKIM_KEY_CACHE_MAX; k++) {
		keys[k] = dkim_key_generate(true, 0);
		krecs[k] = dkim_key_record(keys[k]);
		msgs[k] = sign(keys[k], plain, "\n", 4096);
		v = verify_cached(c, msgs[k], strlen(msgs[k]), 4096, (const char *const *)&krecs[k], 1);
		expect(v, 0, DKIM_PASS, NULL);
		dkim_verify_free(v);
	}
	dkim_key_cache_stats(c, &hits, &misses);
	assert_int_equal(misses, 2 + DKIM_KEY_CACHE_MAX + 1);
	/* the newest is still there, the first one went */
	v = verify_cached(c, msgs[DKIM_KEY_CACHE_MAX], strlen(msgs[DKIM_KEY_CACHE_MAX]), 4096,
			  (const char *const *)&krecs[DKIM_KEY_CACHE_MAX], 1);
	expect(v, 0, DKIM_PASS, NULL);
	dkim_verify_free(v);
	dkim_key_cache_stats(c, &hits, &misses);
	assert_int_equal(misses, 2 + DKIM_KEY_CACHE_MAX + 1);
	v = verify_cached(c, msgs[0], strlen(msgs[0]), 4096, (const char *const *)&krecs[0], 1);
	expect(v, 0, DKIM_PASS, NULL);
	dkim_verify_free(v);
	dkim_key_cache_stats(c, &hits, &misses);
	assert_int_equal(misses, 2 + DKIM_KEY_CACHE_MAX + 2);
	for (size_t k = 0; k <= DKIM_KEY_CACHE_MAX; k++) {
		EVP_PKEY_free(keys[k]);
		free(krecs[k]);
		free(msgs[k]);
	}
	dkim_key_cache_free(c);
}

/* Keys chosen at the end by the From domain: two signatures over one
 * body hash, both verified, the first key's lowest. */
static void test_several_keys(void **state)
{
	EVP_PKEY *rsa = dkim_key_generate(false, 2048), *ed = dkim_key_generate(true, 0);
	char *rrec = dkim_key_record(rsa), *erec = dkim_key_record(ed), *field, *m;
	const char *recs[] = { erec, rrec };
	struct dkim_signer *s = dkim_signer_new(NULL, NULL, NULL);
	struct dkim_verify *v;
	char doms[4][256];

	assert_null(dkim_signer_from_domain(s)); /* header not complete yet */
	for (const char *p = plain; *p; p++) {
		/* header_done turns true with the empty line, not before */
		assert_int_equal(dkim_signer_header_done(s), strstr(plain, "\n\n") + 2 <= p);
		dkim_signer_feed(s, p, 1);
	}
	assert_true(dkim_signer_header_done(s));
	assert_string_equal(dkim_signer_from_domain(s), "example.com");
	assert_int_equal(dkim_signer_feed_header(s, plain, strlen(plain)), 0); /* done: takes nothing */
	assert_null(dkim_signer_finish(s, "\n", 0)); /* no key */
	dkim_signer_free(s);

	s = dkim_signer_new(NULL, NULL, NULL);
	{   /* the header first, the keys, then the body: as stage_sign does */
		size_t hl = (size_t)(strstr(plain, "\n\n") + 2 - plain);
		assert_int_equal(dkim_signer_feed_header(s, plain, strlen(plain)), hl);
		assert_true(dkim_signer_header_done(s));
		dkim_signer_feed(s, plain + hl, strlen(plain) - hl);
	}
	assert_true(dkim_signer_add_key(s, rsa, "example.com", "r"));
	assert_true(dkim_signer_add_key(s, ed, "example.com", "e"));
	field = dkim_signer_finish(s, "\n", 1700000000);
	assert_non_null(field);
	assert_true(strstr(field, "a=ed25519-sha256") < strstr(field, "a=rsa-sha256"));
	m = xasprintf("%s%s", field, plain);
	v = verify(m, strlen(m), 11, recs, 2);
	assert_int_equal(dkim_verify_count(v), 2);
	expect(v, 0, DKIM_PASS, NULL);
	expect(v, 1, DKIM_PASS, NULL);
	assert_int_equal(dkim_verify_from_domains(v, doms, 4), 1);
	assert_string_equal(doms[0], "example.com");
	dkim_verify_free(v);
	free(m);
	free(field);
	dkim_signer_free(s);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	free(rrec);
	free(erec);
}

static void test_from_domains(void **state)
{
	static const struct {
		const char *msg;
		size_t want;
		const char *first, *second;
	} cases[] = {
		{ "From: A <a@Example.COM>\n\nx\n", 1, "example.com", NULL },
		{ "From: a@x.example, b@y.example\n\nx\n", 2, "x.example", "y.example" },
		{ "From: a@x.example, b@X.example\n\nx\n", 1, "x.example", NULL },
		{ "From: a@x.example\nFrom: b@y.example\n\nx\n", 2, "x.example", "y.example" },
		{ "To: a@x.example\n\nx\n", 0, NULL, NULL },
		{ "From: nobody\n\nx\n", SIZE_MAX, NULL, NULL },
		{ "From: <unbalanced\n\nx\n", SIZE_MAX, NULL, NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct dkim_verify *v = verify(cases[i].msg, strlen(cases[i].msg), 4096, NULL, 0);
		struct dkim_signer *s = dkim_signer_new(NULL, NULL, NULL);
		char doms[4][256];
		size_t n = dkim_verify_from_domains(v, doms, 4);
		const char *one;
		print_message("case %zu: %zu\n", i, n);
		assert_int_equal(n, cases[i].want);
		if (cases[i].first)
			assert_string_equal(doms[0], cases[i].first);
		if (cases[i].second)
			assert_string_equal(doms[1], cases[i].second);
		dkim_signer_feed(s, cases[i].msg, strlen(cases[i].msg));
		one = dkim_signer_from_domain(s);
		if (cases[i].want == 1)
			assert_string_equal(one, cases[i].first);
		else
			assert_null(one);
		dkim_signer_free(s);
		dkim_verify_free(v);
	}
}

static void test_short_rsa(void **state)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	char *rec = dkim_key_record(key), *m = sign(key, plain, "\n", 4096);
	const char *recs[] = { rec };
	struct dkim_verify *v = verify(m, strlen(m), 4096, recs, 1);

	expect(v, 0, DKIM_PERMERROR, "RSA key shorter than 1024 bits (RFC 8301)");
	dkim_verify_free(v);
	free(m);
	free(rec);
	EVP_PKEY_free(key);
}

static void test_unusable_sigs(void **state)
{
	static const char *const msgs[] = {
		"DKIM-Signature: v=1; a=rsa-sha1; d=e.com; s=s; h=from; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; "
		"b=dGVzdA==\nFrom: a@e.com\n\nhi\n",
		"DKIM-Signature: garbage\nFrom: a@e.com\n\nhi\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(msgs); i++) {
		struct dkim_verify *v = verify(msgs[i], strlen(msgs[i]), 4096, NULL, 0);
		assert_int_equal(dkim_verify_count(v), 1);
		assert_null(dkim_verify_sig(v, 0));
		assert_null(dkim_verify_key_name(v, 0));
		expect(v, 0, DKIM_PERMERROR, i == 0 ? "rsa-sha1 is not accepted (RFC 8301)" : "bad tag list");
		dkim_verify_free(v);
	}
	{
		struct dkim_verify *v = verify(plain, strlen(plain), 4096, NULL, 0);
		assert_int_equal(dkim_verify_count(v), 0);
		dkim_verify_free(v);
	}
}

static void test_bounds(void **state)
{
	/* a header section past DKIM_HEADER_MAX: nothing checked */
	struct dkim_verify *v = dkim_verify_new();
	struct dkim_signer *s;
	EVP_PKEY *ed = dkim_key_generate(true, 0);
	char line[1000];

	memset(line, 'x', sizeof line);
	memcpy(line, "X-Pad: ", 7);
	line[sizeof line - 1] = '\n';
	s = dkim_signer_new(ed, "example.com", "sel");
	dkim_verify_feed(v, vector, 400);
	for (int i = 0; i < 300; i++) {
		dkim_verify_feed(v, line, sizeof line);
		dkim_signer_feed(s, line, sizeof line);
	}
	dkim_verify_feed(v, "\nbody\n", 6);
	dkim_signer_feed(s, "\nbody\n", 6);
	dkim_verify_finish(v);
	assert_true(dkim_verify_overflow(v));
	assert_int_equal(dkim_verify_count(v), 0);
	assert_null(dkim_signer_finish(s, "\n", 0));
	dkim_signer_free(s);
	dkim_verify_free(v);
	EVP_PKEY_free(ed);
}

/* Twenty signatures: only the first DKIM_VERIFY_MAX are looked at, so a
 * message cannot make the MX fetch keys and hash bodies without end. */
static void test_signature_bound(void **state)
{
	const char *end = strstr(vector, "DKIM-Signature: v=1; a=rsa-sha256");
	size_t one = (size_t)(end - vector), len = 0;
	char *m = xmalloc(20 * one + strlen(vector) + 1);
	const char *recs[DKIM_VERIFY_MAX];
	struct dkim_verify *v;

	for (int i = 0; i < 20; i++, len += one)
		memcpy(m + len, vector, one);
	strcpy(m + len, end);
	for (size_t i = 0; i < DKIM_VERIFY_MAX; i++)
		recs[i] = key_ed;
	v = verify(m, strlen(m), 4096, recs, DKIM_VERIFY_MAX);
	assert_int_equal(dkim_verify_count(v), DKIM_VERIFY_MAX);
	for (size_t i = 0; i < DKIM_VERIFY_MAX; i++)
		expect(v, i, DKIM_PASS, NULL);
	dkim_verify_free(v);
	free(m);
}

static void test_zone_line(void **state)
{
	char rec[601], *line;

	memset(rec, 'A', 600);
	rec[600] = '\0';
	memcpy(rec, "v=DKIM1; k=rsa; p=", 18);
	line = dkim_zone_line("sel", "example.com.", rec);
	assert_non_null(strstr(line, "sel._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p="));
	/* 600 octets: strings of 255, 255 and 90 */
	{
		const char *p = strchr(line, '"');
		size_t lens[3], n = 0;
		while (p && n < 3) {
			const char *e = strchr(p + 1, '"');
			lens[n++] = (size_t)(e - p - 1);
			p = strchr(e + 1, '"');
		}
		assert_int_equal(n, 3);
		assert_int_equal(lens[0], 255);
		assert_int_equal(lens[1], 255);
		assert_int_equal(lens[2], 90);
		assert_null(p);
	}
	assert_null(strchr(line, '\n'));
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),       cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_key_trouble),   cmocka_unit_test(test_lookup_failed),
		cmocka_unit_test(test_roundtrip),     cmocka_unit_test(test_short_rsa),
		cmocka_unit_test(test_unusable_sigs), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_zone_line),     cmocka_unit_test(test_several_keys),
		cmocka_unit_test(test_from_domains),  cmocka_unit_test(test_time_and_testing),
		cmocka_unit_test(test_signature_bound), cmocka_unit_test(test_key_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
