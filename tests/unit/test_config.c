/*
 * test_config.c - the config value parsers (durations, sizes, listen
 * addresses, networks and matching) and config_load on good and bad files,
 * each bound crossed by one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/util.h"

static const struct {
	const char *in;
	bool ok;
	uint64_t out;
} durations[] = {
	{ "0", true, 0 },
	{ "90", true, 90 },
	{ "90s", true, 90 },
	{ "30m", true, 1800 },
	{ "30M", true, 1800 },
	{ "4h", true, 14400 },
	{ "5d", true, 432000 },
	{ "2w", true, 1209600 },
	{ "18446744073709551615", true, UINT64_MAX },
	{ "18446744073709551616", false, 0 },
	{ "30500568904943s", true, 30500568904943ULL },
	{ "30500568904944w", false, 0 },   /* * 604800 overflows */
	{ "", false, 0 },
	{ "s", false, 0 },
	{ "5x", false, 0 },
	{ "5 m", false, 0 },
	{ " 5m", false, 0 },
	{ "-5s", false, 0 },
	{ "5ms", false, 0 },
	{ "1.5h", false, 0 },
	{ "5 minutes", false, 0 },
};

static void test_parse_duration(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(durations); i++) {
		uint64_t v = 12345;
		bool ok = parse_duration(durations[i].in, &v);
		if (ok != durations[i].ok)
			fail_msg("parse_duration(\"%s\") = %d", durations[i].in, ok);
		if (ok)
			assert_int_equal(v, durations[i].out);
	}
}

static const struct {
	const char *in;
	bool ok;
	uint64_t out;
} sizes[] = {
	{ "0", true, 0 },
	{ "1024", true, 1024 },
	{ "1024b", true, 1024 },
	{ "512K", true, 524288 },
	{ "512k", true, 524288 },
	{ "35M", true, 36700160 },
	{ "1G", true, 1073741824 },
	{ "17179869183G", true, 17179869183ULL << 30 },
	{ "17179869184G", false, 0 },      /* 2^64 */
	{ "", false, 0 },
	{ "M", false, 0 },
	{ "35Q", false, 0 },
	{ "35MB", false, 0 },
	{ "-1", false, 0 },
	{ "3.5M", false, 0 },
	{ "35 M", false, 0 },
	{ "1T", false, 0 },
};

static void test_parse_size(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
		uint64_t v = 12345;
		bool ok = parse_size(sizes[i].in, &v);
		if (ok != sizes[i].ok)
			fail_msg("parse_size(\"%s\") = %d", sizes[i].in, ok);
		if (ok)
			assert_int_equal(v, sizes[i].out);
	}
}

static const struct {
	const char *in;
	bool ok;
	int family;
	unsigned port;
	const char *text;
} listens[] = {
	{ "127.0.0.1:25", true, AF_INET, 25, "127.0.0.1:25" },
	{ "0.0.0.0:2525", true, AF_INET, 2525, "0.0.0.0:2525" },
	{ "*:25", true, AF_INET, 25, "0.0.0.0:25" },
	{ "[::1]:587", true, AF_INET6, 587, "[::1]:587" },
	{ "[::]:25", true, AF_INET6, 25, "[::]:25" },
	{ "127.0.0.1:1", true, AF_INET, 1, "127.0.0.1:1" },
	{ "127.0.0.1:65535", true, AF_INET, 65535, "127.0.0.1:65535" },
	{ "127.0.0.1:0", false, 0, 0, NULL },
	{ "127.0.0.1:65536", false, 0, 0, NULL },
	{ "127.0.0.1", false, 0, 0, NULL },
	{ "127.0.0.1:", false, 0, 0, NULL },
	{ ":25", false, 0, 0, NULL },
	{ "999.0.0.1:25", false, 0, 0, NULL },
	{ "localhost:25", false, 0, 0, NULL },
	{ "[::1]", false, 0, 0, NULL },
	{ "[::1:25", false, 0, 0, NULL },
	{ "::1:25", false, 0, 0, NULL },
	{ "[]:25", false, 0, 0, NULL },
	{ "127.0.0.1:2x5", false, 0, 0, NULL },
	{ "127.0.0.1:-25", false, 0, 0, NULL },
};

static void test_listen_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(listens); i++) {
		struct listen_addr a;
		bool ok = listen_parse(listens[i].in, &a);
		if (ok != listens[i].ok)
			fail_msg("listen_parse(\"%s\") = %d", listens[i].in, ok);
		if (!ok)
			continue;
		assert_int_equal(a.ss.ss_family, listens[i].family);
		if (listens[i].family == AF_INET) {
			assert_int_equal(a.len, sizeof(struct sockaddr_in));
			assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), listens[i].port);
		} else {
			assert_int_equal(a.len, sizeof(struct sockaddr_in6));
			assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), listens[i].port);
		}
		assert_string_equal(a.text, listens[i].text);
	}
}

static const struct {
	const char *in;
	bool ok;
	int family;
	unsigned bits;
} cidrs[] = {
	{ "127.0.0.0/8", true, AF_INET, 8 },
	{ "10.1.2.3", true, AF_INET, 32 },
	{ "0.0.0.0/0", true, AF_INET, 0 },
	{ "192.0.2.1/32", true, AF_INET, 32 },
	{ "192.0.2.1/33", false, 0, 0 },
	{ "::1", true, AF_INET6, 128 },
	{ "2001:db8::/32", true, AF_INET6, 32 },
	{ "2001:db8::/128", true, AF_INET6, 128 },
	{ "2001:db8::/129", false, 0, 0 },
	{ "/8", false, 0, 0 },
	{ "10.0.0.0/", false, 0, 0 },
	{ "10.0.0.0/x", false, 0, 0 },
	{ "10.0.0.0/-1", false, 0, 0 },
	{ "10.0.0/8", false, 0, 0 },
	{ "example.test", false, 0, 0 },
	{ "", false, 0, 0 },
};

static void test_cidr_parse(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cidrs); i++) {
		struct cidr c;
		bool ok = cidr_parse(cidrs[i].in, &c);
		if (ok != cidrs[i].ok)
			fail_msg("cidr_parse(\"%s\") = %d", cidrs[i].in, ok);
		if (!ok)
			continue;
		assert_int_equal(c.family, cidrs[i].family);
		assert_int_equal(c.bits, cidrs[i].bits);
	}
}

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static const struct {
	const char *nets;         /* space separated */
	const char *ip;
	bool match;
} matches[] = {
	{ "127.0.0.0/8", "127.0.0.1", true },
	{ "127.0.0.0/8", "127.255.255.255", true },
	{ "127.0.0.0/8", "128.0.0.0", false },
	{ "127.0.0.0/8", "126.255.255.255", false },
	{ "192.0.2.1/32", "192.0.2.1", true },
	{ "192.0.2.1/32", "192.0.2.0", false },
	{ "192.0.2.1/32", "127.0.0.1", false },
	{ "10.0.0.0/9", "10.127.255.255", true },
	{ "10.0.0.0/9", "10.128.0.0", false },
	{ "10.0.0.0/15", "10.1.0.1", true },
	{ "10.0.0.0/15", "10.2.0.1", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "::1", "::1", true },
	{ "::1", "::2", false },
	{ "2001:db8::/33", "2001:db8:7fff::1", true },
	{ "2001:db8::/33", "2001:db8:8000::1", false },
	{ "127.0.0.0/8", "::ffff:127.0.0.1", true },   /* v4-mapped */
	{ "127.0.0.0/8", "::1", false },
	{ "::1", "127.0.0.1", false },
	{ "192.0.2.0/24 127.0.0.0/8", "127.0.0.1", true },
	{ "", "127.0.0.1", false },
};

static void test_cidr_list_match(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(matches); i++) {
		struct cidr_list l = { 0, NULL };
		char *copy = xstrdup(matches[i].nets), *save = NULL;
		for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			l.v = xrealloc(l.v, (l.n + 1) * sizeof(*l.v));
			assert_true(cidr_parse(tok, &l.v[l.n]));
			l.n++;
		}
		struct sockaddr_storage ss = sa_of(matches[i].ip);
		bool m = cidr_list_match(&l, (struct sockaddr *)&ss);
		if (m != matches[i].match)
			fail_msg("%s in [%s] = %d", matches[i].ip, matches[i].nets, m);
		free(l.v);
		free(copy);
	}
}

/* ---- whole files ---------------------------------------------------------- */

static struct config *load_text(const char *text)
{
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	/* errors go to stderr as FILE:LINE; the integration tests check them */
	struct config *c = config_load(path);
	unlink(path);
	return c;
}

static const struct {
	const char *text;
	bool ok;
} files[] = {
	{ "", true },
	{ "[server]\nhostname = mx.test\n", true },
	{ "; comment\n[smtp]\nmax_message_size = 1K\n", true },      /* the minimum */
	{ "[smtp]\nmax_message_size = 1023\n", false },
	{ "[smtp]\nmax_message_size = 16G\n", true },                /* the maximum */
	{ "[smtp]\nmax_message_size = 17179869185\n", false },
	{ "[smtp]\nmax_recipients = 1\n", true },
	{ "[smtp]\nmax_recipients = 0\n", false },
	{ "[smtp]\nmax_recipients = 100000\n", true },
	{ "[smtp]\nmax_recipients = 100001\n", false },
	{ "[smtp]\ncommand_timeout = 1s\n", true },
	{ "[smtp]\ncommand_timeout = 0s\n", false },
	{ "[smtp]\ncommand_timeout = 1d\n", true },
	{ "[smtp]\ncommand_timeout = 86401\n", false },
	{ "[smtp]\nlisten = 127.0.0.1:25, [::1]:25\n", true },
	{ "[smtp]\nlisten = 127.0.0.1:25, nonsense\n", false },
	{ "[smtp]\nvrfy = on\nexpn = auth\n", true },
	{ "[smtp]\nvrfy = yes\n", false },
	{ "[smtp]\nbogus = 1\n", false },
	{ "[nosuch]\nkey = 1\n", false },
	{ "[smtp]\nmax_errors = 3\nmax_errors = 4\n", false },
	{ "[submission]\nsender_any = maybe\n", false },
	{ "[relay]\ntrusted_networks = 10.0.0.0/8 ::1\n", true },
	{ "[relay]\ntrusted_networks = 10.0.0.0/33\n", false },
	{ "[server]\nhostname =\n", false },
	{ "[domains]\nlocal =\n", false },
	{ "not ini at all\n", false },
	{ "[milter]\nservers = inet:127.0.0.1:11332, unix:/run/milter.sock, inet:[::1]:8891\n", true },
	{ "[milter]\nservers = inet:milter.example:11332\n", false },
	{ "[milter]\nservers = 127.0.0.1:11332\n", false },
	{ "[milter]\ndefault_action = reject\ntimeout = 5s\n", true },
	{ "[milter]\ndefault_action = discard\n", false },
	{ "[milter]\ntimeout = 0\n", false },
	{ "[smtp]\nmilter = off\n[submission]\nmilter = on\n", true },
};

static void test_config_load_files(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		struct config *c = load_text(files[i].text);
		if ((c != NULL) != files[i].ok)
			fail_msg("config_load(\"%s\") = %p", files[i].text, (void *)c);
		config_free(c);
	}
}

static void test_config_defaults(void **state)
{
	struct config *c = load_text("[server]\nstate_dir = /tmp/x\n[domains]\nlocal = a.test B.test\n");
	assert_non_null(c);
	assert_int_equal(c->max_message_size, 35 * 1024 * 1024);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->command_timeout, 300);
	assert_int_equal(c->data_timeout, 180);
	assert_int_equal(c->vrfy, ACCESS_OFF);
	assert_int_equal(c->expn, ACCESS_OFF);
	assert_int_equal(c->milter_servers.n, 0);
	assert_int_equal(c->milter_default_action, MILTER_DEFAULT_TEMPFAIL);
	assert_int_equal(c->milter_timeout, 30);
	assert_true(c->smtp_milter);
	assert_false(c->submission_milter);
	assert_string_equal(c->users_file, "/tmp/x/users");
	assert_true(config_is_local_domain(c, "b.TEST"));
	assert_true(config_is_local_domain(c, "a.test"));
	assert_false(config_is_local_domain(c, "c.test"));
	assert_false(config_is_local_domain(c, "a.tes"));
	config_free(c);

	c = config_dev_default();
	assert_true(c->dev_default);
	assert_int_equal(c->smtp_listen.n, 1);
	assert_string_equal(c->smtp_listen.v[0].text, "127.0.0.1:2525");
	assert_string_equal(c->state_dir, "./tern-data");
	assert_true(config_is_local_domain(c, "localhost"));
	config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_list_match),
		cmocka_unit_test(test_config_load_files),
		cmocka_unit_test(test_config_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
