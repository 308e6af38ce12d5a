/*
 * test_rate.c - per-address event counts in one-minute windows
 * (filter/rate.c): counting, a new window, addresses apart, the bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "filter/rate.h"

static struct sockaddr_in v4(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static void test_window(void **state)
{
	struct rate *r = rate_new(100);
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };

	assert_int_equal(rate_hit(r, (struct sockaddr *)&a, 1000), 1);
	assert_int_equal(rate_hit(r, (struct sockaddr *)&a, 1030), 2);
	assert_int_equal(rate_hit(r, (struct sockaddr *)&a, 1059), 3);
	assert_int_equal(rate_hit(r, (struct sockaddr *)&b, 1059), 1);
	/* a's window began at 1000: at 1060 a new one begins */
	assert_int_equal(rate_hit(r, (struct sockaddr *)&a, 1060), 1);
	assert_int_equal(rate_hit(r, (struct sockaddr *)&a6, 1060), 1);   /* :: is not 0.0.0.0 */
	rate_free(r);
}

static void test_bound(void **state)
{
	struct rate *r = rate_new(4);
	char ip[32];

	for (int i = 0; i < 10; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		struct sockaddr_in a = v4(ip);
		assert_int_equal(rate_hit(r, (struct sockaddr *)&a, 1000 + i), 1);
	}
	/* the first address was dropped to make room: it counts from 1 again */
	struct sockaddr_in first = v4("198.51.100.0"), last = v4("198.51.100.9");
	assert_int_equal(rate_hit(r, (struct sockaddr *)&first, 1011), 1);
	assert_int_equal(rate_hit(r, (struct sockaddr *)&last, 1011), 2);
	rate_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
