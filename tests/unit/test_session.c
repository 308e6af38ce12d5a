/*
 * test_session.c - core/session.c, the line-session base, over a
 * socketpair and a real event_base with a toy protocol: lines and their
 * line ends, an over-long line, octets taken after a line (an IMAP
 * literal) in pieces as they arrive and then lines again, the error
 * limit and its fatal text, the output high-water mark holding back a
 * client that does not read (and every reply arriving in order once it
 * does), a pause keeping pipelined input in order, the command timeout
 * running from a line's first octet however slowly the rest comes, and
 * the lingering close after a fatal reply (EOF for the peer, its further
 * input dropped, the session freed once the peer closes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include "core/conn.h"
#include "core/log.h"
#include "core/session.h"
#include "core/util.h"

/* The toy protocol: "ok N <line> crlf|lf" for each line, "ERR" counts an
 * error, "LIT n" takes n octets, "PAUSE" pauses input. */
struct toy {
	struct conn c;
	struct session s;
	struct event_base *base;
	int peer;
	size_t lines, frees, pieces;
	char lit[64];
	size_t lit_len;
	bool closed;
	bool peer_eof;            /* the peer read EOF: tern shut its side */
};

static void toy_reply(struct toy *t, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	conn_write(&t->c, buf, (size_t)n);
}

static void toy_line(void *arg, char *line, size_t len, bool bare_lf)
{
	struct toy *t = arg;
	unsigned n;

	assert_int_equal(strlen(line), len);
	t->lines++;
	if (strcmp(line, "ERR") == 0) {
		session_error(&t->s);
		toy_reply(t, "err\r\n");
	} else if (sscanf(line, "LIT %u", &n) == 1) {
		t->lit_len = 0;
		session_take_octets(&t->s, n);
	} else if (strcmp(line, "PAUSE") == 0) {
		session_pause(&t->s);
		toy_reply(t, "paused\r\n");
	} else {
		toy_reply(t, "ok %zu %s %s\r\n", t->lines, line, bare_lf ? "lf" : "crlf");
	}
}

static void toy_octets(void *arg, const char *p, size_t len, bool last)
{
	struct toy *t = arg;

	assert_true(t->lit_len + len <= sizeof(t->lit));
	memcpy(t->lit + t->lit_len, p, len);
	t->lit_len += len;
	t->pieces++;
	if (last)
		toy_reply(t, "lit %zu %.*s\r\n", t->lit_len, (int)t->lit_len, t->lit);
}

static void toy_too_long(void *arg)
{
	toy_reply(arg, "too long\r\n");
}

static size_t toy_line_max(void *arg)
{
	return 16;
}

static void toy_close(void *arg, bool flush)
{
	struct toy *t = arg;
	t->closed = true;
	conn_close(&t->c, flush);
}

static void toy_event(void *arg, short what)
{
	toy_close(arg, false);
}

static void toy_starttls_done(void *arg, bool ok)
{
}

static void toy_free(void *arg)
{
	struct toy *t = arg;
	t->frees++;
	session_release(&t->s);
}

static const struct session_ops toy_ops = {
	.line = toy_line,
	.line_too_long = toy_too_long,
	.line_max = toy_line_max,
	.octets = toy_octets,
	.close = toy_close,
	.event = toy_event,
	.starttls_done = toy_starttls_done,
	.free = toy_free,
	.timeout_text = "BYE timeout",
	.errors_text = "BYE errors",
};

static struct toy *toy_new(uint64_t idle, uint64_t command)
{
	struct toy *t = xcalloc(1, sizeof(*t));
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	t->base = event_base_new();
	assert_non_null(t->base);
	t->peer = sv[1];
	session_init(&t->s, &t->c, t->base, sv[0], &toy_ops, t, 1, "local");
	session_set_timeouts(&t->s, idle, command);
	session_start(&t->s);
	return t;
}

static void toy_free_all(struct toy *t)
{
	if (t->frees == 0) {
		conn_close(&t->c, false);
		assert_int_equal(t->frees, 1);
	}
	close(t->peer);
	event_base_free(t->base);
	free(t);
}

static void send_str(struct toy *t, const char *s)
{
	assert_int_equal(write(t->peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* A few loop turns without blocking; what the peer got is appended. */
static void turns(struct toy *t, struct evbuffer *got, int n)
{
	char buf[65536];
	ssize_t r;

	for (int i = 0; i < n; i++) {
		event_base_loop(t->base, EVLOOP_NONBLOCK);
		while (got && (r = read(t->peer, buf, sizeof(buf))) > 0)
			evbuffer_add(got, buf, (size_t)r);
		if (got && r == 0)
			t->peer_eof = true;
	}
}

static void assert_got(struct evbuffer *got, const char *want)
{
	size_t n = evbuffer_get_length(got);
	char *s = xmalloc(n + 1);

	evbuffer_remove(got, s, n);
	s[n] = '\0';
	assert_string_equal(s, want);
	free(s);
}

static void test_lines(void **state)
{
	struct toy *t = toy_new(30, 30);
	struct evbuffer *got = evbuffer_new();

	send_str(t, "A\r\nB\nC");
	turns(t, got, 5);
	assert_got(got, "ok 1 A crlf\r\nok 2 B lf\r\n");
	send_str(t, "\r\n0123456789ABCDEF\r\nD\r\n");   /* 18 octets > 16 */
	turns(t, got, 5);
	assert_got(got, "ok 3 C crlf\r\ntoo long\r\nok 4 D crlf\r\n");
	evbuffer_free(got);
	toy_free_all(t);
}

/* n octets after a line, whatever they hold, in pieces as they come. */
static void test_octets_after_a_line(void **state)
{
	struct toy *t = toy_new(30, 30);
	struct evbuffer *got = evbuffer_new();

	send_str(t, "LIT 12\r\nhel");
	turns(t, got, 5);
	assert_int_equal(evbuffer_get_length(got), 0);
	send_str(t, "lo\r\nwor");
	turns(t, got, 5);
	send_str(t, "ldNEXT\r\n");
	turns(t, got, 5);
	assert_got(got, "lit 12 hello\r\nworld\r\nok 2 NEXT crlf\r\n");
	assert_int_equal(t->pieces, 3);
	assert_int_equal(t->lines, 2);   /* the literal's CRLF ended no line */
	evbuffer_free(got);
	toy_free_all(t);
}

static void test_error_limit(void **state)
{
	struct toy *t = toy_new(30, 30);
	struct evbuffer *got = evbuffer_new();

	t->s.max_errors = 3;
	send_str(t, "ERR\r\nA\r\nERR\r\nERR\r\nB\r\n");
	turns(t, got, 10);
	assert_got(got, "err\r\nok 2 A crlf\r\nerr\r\nerr\r\nBYE errors\r\n");
	assert_true(t->closed);
	/* Lingering: the peer has EOF, what it still sends is dropped
	 * unanswered, and the session goes once the peer closes. */
	assert_true(t->peer_eof);
	assert_int_equal(t->frees, 0);
	send_str(t, "B\r\nC\r\n");
	turns(t, got, 5);
	assert_int_equal(evbuffer_get_length(got), 0);
	assert_int_equal(t->frees, 0);
	shutdown(t->peer, SHUT_WR);
	turns(t, got, 5);
	assert_int_equal(t->frees, 1);
	evbuffer_free(got);
	toy_free_all(t);
}

/* Input pipelined behind a pause waits, and keeps its order. */
static void test_pause_keeps_order(void **state)
{
	struct toy *t = toy_new(30, 30);
	struct evbuffer *got = evbuffer_new();

	send_str(t, "PAUSE\r\nA\r\nB\r\n");
	turns(t, got, 5);
	assert_got(got, "paused\r\n");
	session_resume(&t->s);
	turns(t, got, 5);
	assert_got(got, "ok 2 A crlf\r\nok 3 B crlf\r\n");
	evbuffer_free(got);
	toy_free_all(t);
}

/* A client that writes without reading: the output stops near the mark
 * (and input with it); once it reads, every reply comes, in order. */
static void test_output_mark(void **state)
{
	struct toy *t = toy_new(30, 30);
	struct evbuffer *got = evbuffer_new();
	const size_t n = 100000;
	char line[32], *want;
	size_t sent = 0, peak = 0, i;
	int small = 16384;

	setsockopt(t->peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(bufferevent_getfd(t->c.bev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	/* Write lines while the socket takes them, without reading. */
	for (i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "L%zu\r\n", i);
		if (write(t->peer, line, (size_t)len) != len)
			break;
		sent++;
		if (i % 64 == 0) {
			turns(t, NULL, 1);
			if (conn_pending(&t->c) > peak)
				peak = conn_pending(&t->c);
		}
	}
	turns(t, NULL, 20);
	if (conn_pending(&t->c) > peak)
		peak = conn_pending(&t->c);
	assert_true(sent < n);   /* the session stopped taking input */
	assert_true(t->s.output_full);
	assert_true(peak < SESSION_OUT_HIGH + 64 * 1024);
	/* Now read everything: all replies, in order. */
	for (int k = 0; k < 100000 && t->lines < sent; k++)
		turns(t, got, 1);
	turns(t, got, 20);
	assert_int_equal(t->lines, sent);
	want = xmalloc(sent * 40);
	size_t o = 0;
	for (i = 0; i < sent; i++)
		o += (size_t)sprintf(want + o, "ok %zu L%zu crlf\r\n", i + 1, i);
	assert_int_equal(evbuffer_get_length(got), o);
	assert_memory_equal(evbuffer_pullup(got, -1), want, o);
	free(want);
	evbuffer_free(got);
	toy_free_all(t);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One byte every 0.3 s: dropped one command_timeout after the first. */
static void test_command_timeout_from_first_octet(void **state)
{
	struct toy *t = toy_new(30, 1);
	struct evbuffer *got = evbuffer_new();
	double t0 = now_s(), next = t0;

	while (!t->closed && now_s() - t0 < 5) {
		if (now_s() >= next) {
			send_str(t, "x");
			next += 0.3;
		}
		turns(t, got, 1);
		usleep(10000);
	}
	assert_true(t->closed);
	assert_true(now_s() - t0 >= 0.9);
	assert_true(now_s() - t0 < 1.6);
	turns(t, got, 2);
	assert_got(got, "BYE timeout\r\n");
	assert_true(t->peer_eof);
	evbuffer_free(got);
	toy_free_all(t);
}

/* Whole lines are activity: the idle timeout starts again after each. */
static void test_idle_timeout_restarts_per_line(void **state)
{
	struct toy *t = toy_new(1, 30);
	struct evbuffer *got = evbuffer_new();
	double t0 = now_s(), next = t0, quiet;

	while (now_s() - t0 < 2) {
		if (now_s() >= next) {
			send_str(t, "A\r\n");
			next += 0.4;
		}
		turns(t, got, 1);
		usleep(10000);
	}
	assert_int_equal(t->frees, 0);
	quiet = now_s();
	while (!t->closed && now_s() - quiet < 5) {
		turns(t, got, 1);
		usleep(10000);
	}
	assert_true(t->closed);
	assert_true(now_s() - quiet < 1.6);
	/* a peer that neither reads nor closes: the linger ends on its own */
	while (t->frees == 0 && now_s() - quiet < 8) {
		turns(t, NULL, 1);
		usleep(10000);
	}
	assert_int_equal(t->frees, 1);
	assert_true(now_s() - quiet >= 2.0);
	evbuffer_free(got);
	toy_free_all(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_octets_after_a_line),
		cmocka_unit_test(test_error_limit),
		cmocka_unit_test(test_pause_keeps_order),
		cmocka_unit_test(test_output_mark),
		cmocka_unit_test(test_command_timeout_from_first_octet),
		cmocka_unit_test(test_idle_timeout_restarts_per_line),
	};
	log_set_quiet(1);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
