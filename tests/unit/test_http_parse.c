/*
 * test_http_parse.c - the HTTP/1.1 request-head reader: what it accepts,
 * the status it gives for each thing it refuses, and query decoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/http_parse.h"

static int parse(const char *s, struct http_head *h)
{
	return http_parse_head(s, strlen(s), h);
}

static void test_accepts(void **state)
{
	struct http_head h;
	assert_int_equal(parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: mta-sts.example.test\r\n"
			       "Content-Length: 12\r\nX-Other:  v  \r\n\r\n", &h), 0);
	assert_true(http_str_eq(h.method, "GET"));
	assert_true(http_str_eq(h.target, "/a/b?x=1&y=2"));
	assert_true(http_str_eq(h.path, "/a/b"));
	assert_true(http_str_eq(h.query, "x=1&y=2"));
	assert_true(http_str_eq(h.host, "mta-sts.example.test"));
	assert_int_equal(h.minor, 1);
	assert_true(h.has_length);
	assert_int_equal(h.content_length, 12);
	assert_false(h.has_transfer_encoding);

	/* HTTP/1.0 may omit Host; header names are case-insensitive. */
	assert_int_equal(parse("HEAD / HTTP/1.0\r\n\r\n", &h), 0);
	assert_int_equal(h.host.n, 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nhOsT:x\r\ncontent-length: 0\r\n\r\n", &h), 0);
	assert_true(http_str_eq(h.host, "x"));
	/* The same Content-Length twice is allowed (RFC 9112 6.3). */
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h), 0);
}

static void test_refuses(void **state)
{
	static const struct {
		const char *in;
		int status;
	} cases[] = {
		{ "", 400 },
		{ "\r\n", 400 },
		{ "GET / HTTP/1.1\r\n\r\n", 400 },                          /* no Host */
		{ "GET / HTTP/1.1\nHost: x\r\n\r\n", 400 },                 /* bare LF */
		{ "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400 },             /* bare CR */
		{ "GET / HTTP/1.1\r\nHost: x\r\n", 400 },                   /* no empty line */
		{ "GET / HTTP/1.1\r\nHost: x\r\n\r\nextra", 400 },          /* bytes after it */
		{ "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400 },
		{ "GET /\r\nHost: x\r\n\r\n", 400 },                        /* HTTP/0.9 */
		{ "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
		{ "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
		{ "GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400 },
		{ "GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400 },
	};
	struct http_head h;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].in, &h);
		if (rc != cases[i].status)
			fail_msg("case %zu: got %d, want %d", i, rc, cases[i].status);
	}
	/* A NUL inside the head. */
	assert_int_equal(http_parse_head("GET / HTTP/1.1\r\nHost: \0x\r\n\r\n", 26, &h), 400);
}

static void test_transfer_encoding_is_reported(void **state)
{
	struct http_head h;
	assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &h), 0);
	assert_true(h.has_transfer_encoding);
}

static void test_connection_options(void **state)
{
	struct http_head h;
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &h), 0);
	assert_false(h.conn_close);
	assert_false(h.conn_keep_alive);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n", &h), 0);
	assert_true(h.conn_close);
	assert_false(h.conn_keep_alive);
	assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h), 0);
	assert_true(h.conn_keep_alive);
	assert_false(h.conn_close);
	assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed,keep-alivex\r\n\r\n", &h), 0);
	assert_false(h.conn_close);
	assert_false(h.conn_keep_alive);
}

static void test_query_param(void **state)
{
	char out[64];
	struct http_str q = { "a=1&emailaddress=j%2Bdoe%40Example.test&b=+x+", 0 };
	q.n = strlen(q.p);
	assert_true(http_query_param(q, "emailaddress", out, sizeof(out)));
	assert_string_equal(out, "j+doe@Example.test");
	assert_true(http_query_param(q, "b", out, sizeof(out)));
	assert_string_equal(out, " x ");
	assert_true(http_query_param(q, "a", out, sizeof(out)));
	assert_string_equal(out, "1");
	assert_false(http_query_param(q, "email", out, sizeof(out)));
	assert_false(http_query_param(q, "emailaddress", out, 5));        /* too long */

	struct http_str bad[] = { { "e=%4", 4 }, { "e=%zz", 5 }, { "e=a%00b", 7 }, { "e=%", 3 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(http_query_param(bad[i], "e", out, sizeof(out)));
	struct http_str empty = { "", 0 }, bare = { "e", 1 };
	assert_false(http_query_param(empty, "e", out, sizeof(out)));
	assert_true(http_query_param(bare, "e", out, sizeof(out)));
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_transfer_encoding_is_reported),
		cmocka_unit_test(test_connection_options),
		cmocka_unit_test(test_query_param),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
