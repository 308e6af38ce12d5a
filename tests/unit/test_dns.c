/*
 * test_dns.c - core/dns.c against a private dnsmasq on 127.0.0.1 and
 * a free port (never real DNS): MX order and shuffle, several addresses,
 * implicit MX, CNAMEs, null MX (RFC 7505), NXDOMAIN, self among the MX
 * (RFC 5321 §5.1), PTR with forward confirmation, literals, timeouts,
 * cancellation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "core/dns.h"
#include "delivery/mx.h"

static const char *const zone[] = {
	"--local=/test/",	/* unknown names under test. are NXDOMAIN */
	"--mx-host=two.test,mx2.two.test,20",
	"--mx-host=two.test,mx1.two.test,10",
	"--host-record=mx1.two.test,127.0.0.11",
	"--host-record=mx2.two.test,127.0.0.12",
	"--mx-host=eq.test,a.eq.test,10",
	"--mx-host=eq.test,b.eq.test,10",
	"--mx-host=eq.test,c.eq.test,10",
	"--host-record=a.eq.test,127.0.0.21",
	"--host-record=b.eq.test,127.0.0.22",
	"--host-record=c.eq.test,127.0.0.23",
	"--mx-host=multi.test,mxm.multi.test,10",
	"--host-record=mxm.multi.test,127.0.0.2,::2",
	"--host-record=mxm.multi.test,127.0.0.3",
	"--host-record=implicit.test,127.0.0.31",
	"--cname=alias.test,implicit.test",
	"--mx-host=null.test,.,0",
	"--mx-host=self.test,mx1.two.test,10",
	"--mx-host=self.test,me.test,20",
	"--mx-host=self.test,mx2.two.test,30",
	"--host-record=me.test,127.0.0.40",
	"--mx-host=cn.test,mxalias.test,10",
	"--mx-host=cn2.test,mxalias.test,10",
	"--mx-host=cn2.test,mx2.two.test,20",
	"--cname=mxalias.test,mx1.two.test",
	"--mx-host=gone.test,nohost.test,10",
	"--ptr-record=1.0.0.127.in-addr.arpa,ptr.test",
	"--host-record=ptr.test,127.0.0.1",
	"--ptr-record=99.0.0.127.in-addr.arpa,liar.test",
	"--host-record=liar.test,127.0.0.98",
	/* Several PTR names: dnsmasq answers them in the reverse order of
	 * these lines.  .61 answers "right61, wrong61", .62 "wrong62,
	 * right62"; .63 four names of which the last confirms; .64 five of
	 * which only the fifth confirms (past DNS_PTR_NAMES_MAX); .65 two
	 * that both confirm. */
	"--ptr-record=61.0.0.127.in-addr.arpa,wrong61.test",
	"--ptr-record=61.0.0.127.in-addr.arpa,right61.test",
	"--host-record=wrong61.test,127.0.0.97",
	"--host-record=right61.test,127.0.0.61",
	"--ptr-record=62.0.0.127.in-addr.arpa,right62.test",
	"--ptr-record=62.0.0.127.in-addr.arpa,wrong62.test",
	"--host-record=wrong62.test,127.0.0.97",
	"--host-record=right62.test,127.0.0.62",
	"--ptr-record=63.0.0.127.in-addr.arpa,c4.test",
	"--ptr-record=63.0.0.127.in-addr.arpa,c3.test",
	"--ptr-record=63.0.0.127.in-addr.arpa,c2.test",
	"--ptr-record=63.0.0.127.in-addr.arpa,c1.test",
	"--host-record=c4.test,127.0.0.63",
	"--ptr-record=64.0.0.127.in-addr.arpa,d5.test",
	"--ptr-record=64.0.0.127.in-addr.arpa,d4.test",
	"--ptr-record=64.0.0.127.in-addr.arpa,d3.test",
	"--ptr-record=64.0.0.127.in-addr.arpa,d2.test",
	"--ptr-record=64.0.0.127.in-addr.arpa,d1.test",
	"--host-record=d5.test,127.0.0.64",
	"--ptr-record=65.0.0.127.in-addr.arpa,both2.test",
	"--ptr-record=65.0.0.127.in-addr.arpa,both1.test",
	"--host-record=both1.test,127.0.0.65",
	"--host-record=both2.test,127.0.0.65",
	/* dns_rr_lookup: one record of two strings (joined), a name with two
	 * records */
	"--txt-record=joined.txt.test,v=DKIM1; p=abc,def",
	"--txt-record=two.txt.test,first",
	"--txt-record=two.txt.test,second",
};

struct fixture {
	pid_t pid;
	int port;
	char servers[64];
	struct event_base *base;
	struct dns *dns;
};

struct got {
	int calls;
	enum dns_status status;
	bool implicit, loops;
	size_t nhosts;
	char names[8][256];
	char addrs[8][4][INET6_ADDRSTRLEN];
	size_t naddrs[8];
	char detail[160];
};

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static bool tcp_ready(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Records bigger than a UDP reply: long.txt.test one TXT record of
 * LONG_TXT_STRINGS strings of 250 octets (the reply comes over TCP),
 * huge.txt.test one of HUGE_TXT_STRINGS (near the 64 KiB a DNS message
 * can hold), many.txt.test MANY_TXT records. */
#define LONG_TXT_STRINGS 40
#define HUGE_TXT_STRINGS 250
#define MANY_TXT         40

/* The text of string k of a long record: 250 octets, k in it. */
static void long_string(char *out, int k)
{
	int n = snprintf(out, 251, "s%03d-", k);
	memset(out + n, 'a' + k % 26, (size_t)(250 - n));
	out[250] = '\0';
}

static char *long_txt_arg(const char *name, int strings)
{
	size_t cap = strlen(name) + 32 + (size_t)strings * 251, at;
	char *arg = xmalloc(cap), one[251];

	at = (size_t)snprintf(arg, cap, "--txt-record=%s", name);
	for (int k = 0; k < strings; k++) {
		long_string(one, k);
		at += (size_t)snprintf(arg + at, cap - at, ",%s", one);
	}
	return arg;
}

static pid_t start_dnsmasq(int port)
{
	char *argv[96 + MANY_TXT + 2], *made[MANY_TXT + 3];
	size_t n = 0, i, nmade = 0;
	pid_t pid;

	argv[n++] = "/usr/sbin/dnsmasq";
	argv[n++] = "--keep-in-foreground";
	argv[n++] = "--no-resolv";
	argv[n++] = "--no-hosts";
	argv[n++] = "--listen-address=127.0.0.1";
	argv[n++] = "--bind-interfaces";
	argv[n++] = "--pid-file=";
	argv[n++] = "--user=";	/* stay who we are */
	argv[n++] = xasprintf("--port=%d", port);
	for (i = 0; i < ARRAY_LEN(zone); i++)
		argv[n++] = (char *)zone[i];
	made[nmade++] = long_txt_arg("long.txt.test", LONG_TXT_STRINGS);
	made[nmade++] = long_txt_arg("huge.txt.test", HUGE_TXT_STRINGS);
	for (i = 0; i < MANY_TXT; i++)
		made[nmade++] = xasprintf("--txt-record=many.txt.test,record %zu", i);
	for (i = 0; i < nmade; i++)
		argv[n++] = made[i];
	assert_true(n < ARRAY_LEN(argv));
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	free(argv[8]);
	for (i = 0; i < nmade; i++)
		free(made[i]);
	return pid;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char *err = NULL;
	int i;

	for (i = 0; i < 5 && f->pid == 0; i++) {
		f->port = free_port();
		f->pid = start_dnsmasq(f->port);
		for (int w = 0; w < 100 && !tcp_ready(f->port); w++)
			usleep(20000);
		if (!tcp_ready(f->port)) {
			kill(f->pid, SIGTERM);
			waitpid(f->pid, NULL, 0);
			f->pid = 0;
		}
	}
	assert_true(f->pid > 0);
	snprintf(f->servers, sizeof(f->servers), "127.0.0.1:%d", f->port);
	f->base = event_base_new();
	f->dns = dns_new(f->base, f->servers, &err);
	assert_non_null(f->dns);
	assert_null(err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	dns_free(f->dns);
	event_base_free(f->base);
	kill(f->pid, SIGTERM);
	waitpid(f->pid, NULL, 0);
	free(f);
	return 0;
}

static void mx_cb(const struct dns_mx_result *r, void *arg)
{
	struct got *g = arg;
	size_t i, j;

	g->calls++;
	g->status = r->status;
	g->implicit = r->implicit;
	g->loops = r->loops_to_self;
	g->nhosts = r->nhosts;
	snprintf(g->detail, sizeof(g->detail), "%s", r->detail);
	for (i = 0; i < r->nhosts && i < 8; i++) {
		snprintf(g->names[i], sizeof(g->names[i]), "%s", r->hosts[i].name);
		g->naddrs[i] = r->hosts[i].naddrs;
		for (j = 0; j < r->hosts[i].naddrs && j < 4; j++) {
			const struct sockaddr_storage *ss = &r->hosts[i].addrs[j];
			const void *a = ss->ss_family == AF_INET ?
				(const void *)&((const struct sockaddr_in *)ss)->sin_addr :
				(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
			inet_ntop(ss->ss_family, a, g->addrs[i][j], sizeof(g->addrs[i][j]));
		}
	}
}

/* Run the loop until *calls is nonzero (or 5 s pass). */
static void run_until(struct event_base *base, const int *calls)
{
	uint64_t end = now_ms_monotonic() + 5000;

	while (*calls == 0 && now_ms_monotonic() < end) {
		struct timeval tv = { 0, 50000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static void mx(struct fixture *f, const char *domain, const char *self, uint32_t seed,
	       struct got *g)
{
	uint64_t id;

	memset(g, 0, sizeof(*g));
	id = dns_mx_lookup(f->dns, domain, mx_prepare, self, seed, mx_cb, g);
	assert_true(id > 0);
	assert_int_equal(g->calls, 0);	/* never from inside the call */
	run_until(f->base, &g->calls);
	assert_int_equal(g->calls, 1);
}

static void test_two_prefs(void **state)
{
	struct got g;

	mx(*state, "two.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_false(g.implicit);
	assert_int_equal(g.nhosts, 2);
	assert_string_equal(g.names[0], "mx1.two.test");
	assert_string_equal(g.addrs[0][0], "127.0.0.11");
	assert_string_equal(g.names[1], "mx2.two.test");
	assert_string_equal(g.addrs[1][0], "127.0.0.12");
}

static void test_equal_prefs(void **state)
{
	char first[4][256];
	size_t nfirst = 0, k;
	uint32_t seed;
	struct got g;

	for (seed = 0; seed < 24; seed++) {
		mx(*state, "eq.test", NULL, seed, &g);
		assert_int_equal(g.status, DNS_OK);
		assert_int_equal(g.nhosts, 3);
		for (k = 0; k < nfirst; k++)
			if (strcmp(first[k], g.names[0]) == 0)
				break;
		if (k == nfirst)
			snprintf(first[nfirst++], sizeof(first[0]), "%s", g.names[0]);
	}
	assert_int_equal(nfirst, 3);	/* each host led at least once */
}

static void test_multi_addr(void **state)
{
	struct got g;

	mx(*state, "multi.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_int_equal(g.naddrs[0], 3);
	/* IPv4 first (either order), then IPv6. */
	assert_true((strcmp(g.addrs[0][0], "127.0.0.2") == 0 && strcmp(g.addrs[0][1], "127.0.0.3") == 0) ||
		    (strcmp(g.addrs[0][0], "127.0.0.3") == 0 && strcmp(g.addrs[0][1], "127.0.0.2") == 0));
	assert_string_equal(g.addrs[0][2], "::2");
}

static void test_implicit_and_cname(void **state)
{
	struct got g;

	mx(*state, "implicit.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.names[0], "implicit.test");
	assert_string_equal(g.addrs[0][0], "127.0.0.31");

	mx(*state, "alias.test", NULL, 1, &g);	/* CNAME followed for the domain */
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_string_equal(g.names[0], "alias.test");
	assert_string_equal(g.addrs[0][0], "127.0.0.31");
}

static void test_mx_target_cname(void **state)
{
	struct got g;

	mx(*state, "cn.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NO_HOSTS);
	assert_non_null(strstr(g.detail, "CNAME"));

	mx(*state, "cn2.test", NULL, 1, &g);	/* the CNAME host only is dropped */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.names[0], "mx2.two.test");

	mx(*state, "gone.test", NULL, 1, &g);	/* target NXDOMAIN */
	assert_int_equal(g.status, DNS_NO_HOSTS);
}

static void test_null_nx_self(void **state)
{
	struct got g;

	mx(*state, "null.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NULL_MX);
	assert_int_equal(g.nhosts, 0);

	mx(*state, "nosuch.test", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);

	mx(*state, "self.test", "ME.test.", 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.names[0], "mx1.two.test");

	mx(*state, "self.test", "mx1.two.test", 1, &g);
	assert_int_equal(g.status, DNS_NO_HOSTS);
	assert_true(g.loops);

	mx(*state, "bad..name", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
}

static void test_literals(void **state)
{
	struct got g;

	mx(*state, "[127.0.0.9]", "x", 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.addrs[0][0], "127.0.0.9");

	mx(*state, "[IPv6:::1]", NULL, 1, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_string_equal(g.addrs[0][0], "::1");

	mx(*state, "[IPv6:127.0.0.1]", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NO_HOSTS);
	mx(*state, "[foo]", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NO_HOSTS);
	mx(*state, "[]", NULL, 1, &g);
	assert_int_equal(g.status, DNS_NO_HOSTS);
}

static void host(struct fixture *f, const char *name, struct got *g)
{
	memset(g, 0, sizeof(*g));
	assert_true(dns_host_lookup(f->dns, name, mx_cb, g) > 0);
	assert_int_equal(g->calls, 0);
	run_until(f->base, &g->calls);
	assert_int_equal(g->calls, 1);
}

static void test_host_lookup(void **state)
{
	struct got g;

	host(*state, "mx1.two.test", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.nhosts, 1);
	assert_string_equal(g.addrs[0][0], "127.0.0.11");

	host(*state, "mxalias.test", &g);	/* smarthost: CNAME followed */
	assert_int_equal(g.status, DNS_OK);
	assert_string_equal(g.addrs[0][0], "127.0.0.11");

	host(*state, "nosuch.test", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	host(*state, "two.test", &g);	/* exists, no address */
	assert_int_equal(g.status, DNS_NO_HOSTS);
	host(*state, "127.0.0.5", &g);
	assert_int_equal(g.status, DNS_OK);
	assert_string_equal(g.addrs[0][0], "127.0.0.5");
	host(*state, "[::1]", &g);
	assert_string_equal(g.addrs[0][0], "::1");
	host(*state, "[x", &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
}

struct ptr_got {
	int calls;
	char name[256];
};

static void ptr_cb(const char *name, void *arg)
{
	struct ptr_got *p = arg;

	p->calls++;
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "(null)");
}

static void ptr(struct fixture *f, const char *ip, struct ptr_got *p)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	memset(p, 0, sizeof(*p));
	if (strchr(ip, ':')) {
		ss.ss_family = AF_INET6;
		inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr);
	} else {
		ss.ss_family = AF_INET;
		inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr);
	}
	assert_true(dns_ptr_lookup(f->dns, (struct sockaddr *)&ss, ptr_cb, p) > 0);
	assert_int_equal(p->calls, 0);
	run_until(f->base, &p->calls);
	assert_int_equal(p->calls, 1);
}

static void test_ptr(void **state)
{
	struct ptr_got p;

	ptr(*state, "127.0.0.1", &p);
	assert_string_equal(p.name, "ptr.test");
	ptr(*state, "127.0.0.99", &p);	/* forward does not confirm */
	assert_string_equal(p.name, "(null)");
	ptr(*state, "127.0.0.200", &p);	/* no PTR */
	assert_string_equal(p.name, "(null)");
	ptr(*state, "::2", &p);	/* host-record makes the ip6.arpa PTR */
	assert_string_equal(p.name, "mxm.multi.test");
}

/* Several PTR names: the first in the answer's order that confirms, among
 * at most DNS_PTR_NAMES_MAX. */
static void test_ptr_several(void **state)
{
	static const struct {
		const char *ip, *want;
	} cases[] = {
		{ "127.0.0.61", "right61.test" },	/* the first confirms */
		{ "127.0.0.62", "right62.test" },	/* only the second confirms */
		{ "127.0.0.63", "c4.test" },		/* the fourth: at the limit */
		{ "127.0.0.64", "(null)" },		/* the fifth: past it */
		{ "127.0.0.65", "both1.test" },		/* both: the first */
	};
	struct ptr_got p;

	assert_int_equal(DNS_PTR_NAMES_MAX, 4);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ptr(*state, cases[i].ip, &p);
		assert_string_equal(p.name, cases[i].want);
	}
}

struct free_in_cb {
	struct dns *d;
	int calls;
};

static void free_dns_cb(const struct dns_mx_result *r, void *arg)
{
	struct free_in_cb *x = arg;

	x->calls++;
	dns_free(x->d);	/* allowed from inside a callback */
	x->d = NULL;
}

static void test_free_inside_callback(void **state)
{
	struct fixture *f = *state;
	struct free_in_cb x = { 0 };
	struct got other;
	char *err = NULL;

	memset(&other, 0, sizeof(other));
	x.d = dns_new(f->base, f->servers, &err);
	assert_non_null(x.d);
	dns_mx_lookup(x.d, "[127.0.0.1]", mx_prepare, NULL, 1, free_dns_cb, &x);
	dns_mx_lookup(x.d, "two.test", mx_prepare, NULL, 1, mx_cb, &other);
	run_until(f->base, &x.calls);
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(x.calls, 1);
	assert_int_equal(other.calls, 0);
	assert_null(x.d);
}

static void test_cancel_and_free(void **state)
{
	struct fixture *f = *state;
	struct got a, b, c;
	uint64_t ida, idb;
	char *err = NULL;
	struct dns *d2;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	ida = dns_mx_lookup(f->dns, "two.test", mx_prepare, NULL, 1, mx_cb, &a);
	idb = dns_mx_lookup(f->dns, "[127.0.0.1]", mx_prepare, NULL, 1, mx_cb, &b);
	assert_true(idb > ida);
	dns_cancel(f->dns, ida);
	dns_cancel(f->dns, idb);
	dns_cancel(f->dns, 999999);	/* unknown: ignored */
	dns_mx_lookup(f->dns, "multi.test", mx_prepare, NULL, 1, mx_cb, &c);
	run_until(f->base, &c.calls);
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(c.calls, 1);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);

	/* Freeing with requests in flight runs no callback. */
	d2 = dns_new(f->base, f->servers, &err);
	assert_non_null(d2);
	memset(&a, 0, sizeof(a));
	dns_mx_lookup(d2, "two.test", mx_prepare, NULL, 1, mx_cb, &a);
	dns_mx_lookup(d2, "[127.0.0.1]", mx_prepare, NULL, 1, mx_cb, &a);
	dns_free(d2);
	for (int i = 0; i < 5; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls, 0);
}

/* A UDP socket that never answers: every query times out. */
static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct dns_options o = { .timeout_ms = 200, .tries = 1 };
	char servers[64], *err = NULL;
	struct dns *d;
	struct got g;
	uint64_t t0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", ntohs(sa.sin_port));
	o.servers = servers;
	d = dns_new_opts(f->base, &o, &err);
	assert_non_null(d);
	memset(&g, 0, sizeof(g));
	t0 = now_ms_monotonic();
	dns_mx_lookup(d, "two.test", mx_prepare, NULL, 1, mx_cb, &g);
	run_until(f->base, &g.calls);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_true(now_ms_monotonic() - t0 >= 150);
	assert_true(now_ms_monotonic() - t0 < 2000);
	dns_free(d);
	close(fd);

	/* Nothing bound at all: refused or timed out, still TEMPFAIL. */
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", free_port());
	d = dns_new_opts(f->base, &o, &err);
	assert_non_null(d);
	memset(&g, 0, sizeof(g));
	dns_host_lookup(d, "mx1.two.test", mx_cb, &g);
	run_until(f->base, &g.calls);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	dns_free(d);
}

struct rr_got {
	int calls;
	enum dns_status status;
	size_t n;
	char text[4][64];
	unsigned char addr[4][16];
	size_t len0;		/* the first record's text, whole */
	char *text0;
	bool seen[MANY_TXT];	/* many.txt.test: "record N" for each N */
};

static void rr_cb(const struct dns_rr_result *r, void *arg)
{
	struct rr_got *g = arg;

	g->calls++;
	g->status = r->status;
	g->n = r->n;
	if (r->n > 0) {
		g->len0 = r->rr[0].len;
		g->text0 = xmalloc(r->rr[0].len + 1);
		memcpy(g->text0, r->rr[0].text, r->rr[0].len + 1);
	}
	for (size_t i = 0; i < r->n; i++) {
		unsigned k;
		if (sscanf(r->rr[i].text, "record %u", &k) == 1 && k < MANY_TXT)
			g->seen[k] = true;
	}
	for (size_t i = 0; i < r->n && i < 4; i++) {
		snprintf(g->text[i], sizeof(g->text[i]), "%s", r->rr[i].text);
		memcpy(g->addr[i], r->rr[i].addr, 16);
	}
}

static void rr(struct fixture *f, const char *name, enum dns_rr_type type, struct rr_got *g)
{
	free(g->text0);
	memset(g, 0, sizeof(*g));
	assert_true(dns_rr_lookup(f->dns, name, type, rr_cb, g) > 0);
	assert_int_equal(g->calls, 0);	/* never from inside the call */
	run_until(f->base, &g->calls);
	assert_int_equal(g->calls, 1);
}

static void test_rr_lookup(void **state)
{
	struct fixture *f = *state;
	struct rr_got g = { 0 };

	rr(f, "joined.txt.test", DNS_RR_TXT, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0], "v=DKIM1; p=abcdef");
	rr(f, "two.txt.test", DNS_RR_TXT, &g);
	assert_int_equal(g.n, 2);
	assert_true((!strcmp(g.text[0], "first") && !strcmp(g.text[1], "second")) ||
		    (!strcmp(g.text[0], "second") && !strcmp(g.text[1], "first")));
	rr(f, "nothere.test", DNS_RR_TXT, &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.n, 0);
	rr(f, "implicit.test", DNS_RR_TXT, &g);   /* the name exists: NODATA */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 0);
	rr(f, "implicit.test", DNS_RR_A, &g);
	assert_int_equal(g.n, 1);
	assert_memory_equal(g.addr[0], "\x7f\x00\x00\x1f", 4);
	rr(f, "mxm.multi.test", DNS_RR_AAAA, &g);
	assert_int_equal(g.n, 1);
	assert_memory_equal(g.addr[0], "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02", 16);
	rr(f, "two.test", DNS_RR_MX, &g);
	assert_int_equal(g.n, 2);
	rr(f, "1.0.0.127.in-addr.arpa", DNS_RR_PTR, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0], "ptr.test");
	rr(f, "bad..name", DNS_RR_TXT, &g);
	assert_int_equal(g.status, DNS_NXDOMAIN);
	free(g.text0);
}

/* A record's text is never cut: the one over 8 KiB that used to be
 * (and the 5000-octet SPF records), one near the 64 KiB a reply
 * can carry over TCP, and a name with more records than the old bound of
 * 32 - every one of them is there. */
static void want_long(const struct rr_got *g, int strings)
{
	char one[251];

	assert_int_equal(g->status, DNS_OK);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->len0, (size_t)strings * 250);
	assert_int_equal(strlen(g->text0), g->len0);
	for (int k = 0; k < strings; k++) {
		long_string(one, k);
		assert_memory_equal(g->text0 + (size_t)k * 250, one, 250);
	}
}

static void test_rr_long_txt(void **state)
{
	struct fixture *f = *state;
	struct rr_got g = { 0 };

	rr(f, "long.txt.test", DNS_RR_TXT, &g);
	want_long(&g, LONG_TXT_STRINGS);
	rr(f, "huge.txt.test", DNS_RR_TXT, &g);
	want_long(&g, HUGE_TXT_STRINGS);
	rr(f, "many.txt.test", DNS_RR_TXT, &g);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, MANY_TXT);
	for (size_t i = 0; i < MANY_TXT; i++)
		assert_true(g.seen[i]);
	free(g.text0);
}

static void test_server_lists(void **state)
{
	struct fixture *f = *state;
	static const struct { const char *s; bool ok; } t[] = {
		{ "127.0.0.1", true }, { "127.0.0.1:53 ::1", true },
		{ "[::1]:5353, 127.0.0.2:1", true }, { "::1", true },
		{ "127.0.0.1:0", false }, { "127.0.0.1:65536", false },
		{ "localhost", false }, { "[::1", false }, { "[::1]x", false },
		{ "1.2.3.4:x", false }, { "127.0.0.1 bogus", false },
	};
	size_t i;

	for (i = 0; i < ARRAY_LEN(t); i++) {
		char *err = NULL;
		struct dns *d = dns_new(f->base, t[i].s, &err);

		if ((d != NULL) != t[i].ok)
			fail_msg("server list '%s': %s", t[i].s, err ? err : "accepted");
		if (d == NULL)
			assert_non_null(err);
		free(err);
		dns_free(d);
	}
	assert_string_equal(dns_status_str(DNS_NULL_MX), "null-mx");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_prefs),
		cmocka_unit_test(test_equal_prefs),
		cmocka_unit_test(test_multi_addr),
		cmocka_unit_test(test_implicit_and_cname),
		cmocka_unit_test(test_mx_target_cname),
		cmocka_unit_test(test_null_nx_self),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_host_lookup),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_ptr_several),
		cmocka_unit_test(test_cancel_and_free),
		cmocka_unit_test(test_free_inside_callback),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_server_lists),
		cmocka_unit_test(test_rr_lookup),
		cmocka_unit_test(test_rr_long_txt),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
