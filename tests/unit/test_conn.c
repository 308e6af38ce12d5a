/*
 * test_conn.c - core/conn.c over a socketpair and a real event_base:
 * flush-then-close delivers every octet (a reply far larger than the
 * socket takes at once included) before the session is freed, and a
 * reader that stopped is dropped at the write timeout; references keep a
 * closed session alive until the last one goes; a batch of output
 * leaves in one write (SOCK_SEQPACKET keeps write boundaries, so one
 * recv() is one write); the STARTTLS switch waits for the reply to leave
 * and is cancelled by a close; input lines are bounded; a command that
 * is in by the time its predecessor's reply has left is read in the same
 * callback, a few at most, and an error met that way still reaches the
 * session as an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "core/conn.h"
#include "core/log.h"
#include "core/util.h"

/* A session as the conn sees it: counts what it was told. */
struct owner {
	struct conn c;
	struct event_base *base;
	int peer;                 /* the client's end of the socketpair */
	int reads, drains, events, frees, tls_done, tls_ok;
	short last_what;
	bool reply_lines;         /* read: "ok N\r\n" for each line */
	bool close_on_read;       /* read: reply, then conn_close(flush) */
	bool starttls_on_read;    /* read: STARTTLS after the first line */
	bool hold_input;          /* read: leave the input alone */
	int peer_sends;           /* read: the client sends its next line at once, this many times */
	int reset_on_read;        /* this read: the client goes, its replies unread */
	size_t lines;
};

/* An SSL without certificate: enough to switch, never to finish. */
static SSL *new_ssl(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);   /* the SSL holds its own reference */
	return ssl;
}

static void owner_read(void *arg)
{
	struct owner *o = arg;
	struct evbuffer *in = bufferevent_get_input(o->c.bev);
	char *line;
	size_t n;

	o->reads++;
	if (o->hold_input)
		return;
	if (o->reads == o->reset_on_read) {
		evbuffer_drain(in, evbuffer_get_length(in));
		close(o->peer);   /* unread data: the socket reports ECONNRESET */
		o->peer = -1;
		return;
	}
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		char reply[64];
		int len = snprintf(reply, sizeof(reply), "ok %zu %s\r\n", ++o->lines, line);
		free(line);
		if (o->reply_lines)
			conn_write(&o->c, reply, (size_t)len);
		if (o->starttls_on_read) {
			conn_starttls(&o->c, new_ssl());
			return;
		}
	}
	if (o->close_on_read)
		conn_close(&o->c, true);
	if (o->peer_sends > 0) {
		o->peer_sends--;
		assert_int_equal(send(o->peer, "n\r\n", 3, 0), 3);
	}
}

static void owner_drained(void *arg)
{
	((struct owner *)arg)->drains++;
}

static void owner_event(void *arg, short what)
{
	struct owner *o = arg;
	o->events++;
	o->last_what = what;
	conn_close(&o->c, false);
}

static void owner_starttls_done(void *arg, bool ok)
{
	struct owner *o = arg;
	o->tls_done++;
	o->tls_ok += ok;
}

static void owner_free(void *arg)
{
	struct owner *o = arg;
	o->frees++;
	conn_release(&o->c);
}

static const struct conn_ops ops = {
	.read = owner_read,
	.drained = owner_drained,
	.event = owner_event,
	.starttls_done = owner_starttls_done,
	.free = owner_free,
};

static struct owner *owner_new(int type)
{
	struct owner *o = xcalloc(1, sizeof(*o));
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	o->base = event_base_new();
	assert_non_null(o->base);
	o->peer = sv[1];
	conn_init(&o->c, o->base, sv[0], &ops, o, 1, "local");
	conn_set_timeout(&o->c, 30);
	return o;
}

static void owner_free_all(struct owner *o)
{
	if (o->frees == 0) {
		conn_close(&o->c, false);
		assert_int_equal(o->frees, 1);
	}
	if (o->peer >= 0)
		close(o->peer);
	event_base_free(o->base);
	free(o);
}

/* One loop turn without blocking, then what the peer can read. */
static void turn(struct owner *o, struct evbuffer *got)
{
	char buf[65536];
	ssize_t r;

	event_base_loop(o->base, EVLOOP_NONBLOCK);
	while (got && (r = read(o->peer, buf, sizeof(buf))) > 0)
		evbuffer_add(got, buf, (size_t)r);
}

/* One pass of the loop: the callbacks of one dispatch. */
static void turn_once(struct owner *o, struct evbuffer *got)
{
	char buf[65536];
	ssize_t r;

	event_base_loop(o->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	while (got && (r = read(o->peer, buf, sizeof(buf))) > 0)
		evbuffer_add(got, buf, (size_t)r);
}

/* One recv(): one record (one write) on a SOCK_SEQPACKET pair. */
static ssize_t recv_record(int fd, char *buf, size_t cap)
{
	ssize_t r = recv(fd, buf, cap - 1, 0);
	if (r >= 0)
		buf[r] = '\0';
	return r;
}

/* ---- flush-then-close ---------------------------------------------------- */

static void fill_pattern(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
}

/* Table: reply sizes up to far beyond what a socket takes at once. */
static void test_flush_then_close_delivers_all(void **state)
{
	static const size_t sizes[] = { 1, 512, 65536, 1 << 20, 4 << 20 };

	for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *got = evbuffer_new();
		char *big = xmalloc(sizes[k]), *back;
		int sndbuf = 16384;

		setsockopt(bufferevent_getfd(o->c.bev), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		fill_pattern(big, sizes[k]);
		conn_start(&o->c);
		conn_write(&o->c, big, sizes[k]);
		if (sizes[k] >= (1 << 20))
			assert_true(o->c.write_armed);   /* the socket did not take it all */
		conn_close(&o->c, true);
		assert_true(o->c.closing);
		for (int i = 0; i < 200000 && o->frees == 0; i++)
			turn(o, got);
		turn(o, got);
		assert_int_equal(o->frees, 1);
		assert_int_equal(evbuffer_get_length(got), sizes[k]);
		back = (char *)evbuffer_pullup(got, -1);
		assert_memory_equal(back, big, sizes[k]);
		assert_int_equal(read(o->peer, big, 1), 0);   /* and then EOF */
		free(big);
		evbuffer_free(got);
		owner_free_all(o);
	}
}

/* A session that closed with flush while a 4 MiB reply is still queued. */
static struct owner *owner_flushing(unsigned timeout)
{
	struct owner *o = owner_new(SOCK_STREAM);
	size_t n = 4 << 20;
	char *big = xmalloc(n);

	fill_pattern(big, n);
	if (timeout)
		conn_set_timeout(&o->c, timeout);
	conn_start(&o->c);
	conn_write(&o->c, big, n);
	free(big);
	conn_close(&o->c, true);
	assert_true(o->c.flush_ref);
	assert_int_equal(o->frees, 0);
	return o;
}

/* Closing again without flush gives the flush up: freed at once. */
static void test_close_without_flush_gives_up(void **state)
{
	struct owner *o = owner_flushing(0);

	conn_close(&o->c, false);
	assert_int_equal(o->frees, 1);
	owner_free_all(o);
}

/* The peer goes away while we flush: no event for the session, freed. */
static void test_peer_gone_while_flushing(void **state)
{
	struct owner *o = owner_flushing(0);

	close(o->peer);
	o->peer = -1;
	for (int i = 0; i < 1000 && o->frees == 0; i++)
		turn(o, NULL);
	assert_int_equal(o->frees, 1);
	assert_int_equal(o->events, 0);
	event_base_free(o->base);
	free(o);
}

/* A reader that stopped: the flush is given up at the write timeout. */
static void test_stalled_reader_dropped_at_timeout(void **state)
{
	struct owner *o = owner_flushing(1);

	for (int i = 0; i < 5 && o->frees == 0; i++)
		event_base_loop(o->base, EVLOOP_ONCE);   /* blocks until the timeout */
	assert_int_equal(o->frees, 1);
	assert_int_equal(o->events, 0);
	owner_free_all(o);
}

/* ---- references ------------------------------------------------------------ */

static void test_ref_keeps_session_alive(void **state)
{
	static const struct { int refs; bool flush; } cases[] = {
		{ 0, false }, { 1, false }, { 2, false }, { 1, true }, { 3, true },
	};

	for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *got = evbuffer_new();

		conn_start(&o->c);
		for (int i = 0; i < cases[k].refs; i++)
			conn_ref(&o->c);          /* a worker job out */
		conn_write(&o->c, "221 bye\r\n", 9);
		conn_close(&o->c, cases[k].flush);
		for (int i = 0; i < 10; i++)
			turn(o, got);
		for (int i = 0; i < cases[k].refs; i++) {
			assert_int_equal(o->frees, 0);
			conn_unref(&o->c);        /* the job comes back */
		}
		assert_int_equal(o->frees, 1);
		assert_int_equal(evbuffer_get_length(got), 9);
		evbuffer_free(got);
		owner_free_all(o);
	}
}

/* A close inside the session's own callback: freed only when it returns. */
static void test_close_inside_callback(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);
	char buf[64];

	o->reply_lines = o->close_on_read = true;
	conn_start(&o->c);
	assert_int_equal(write(o->peer, "QUIT\r\n", 6), 6);
	for (int i = 0; i < 10 && o->frees == 0; i++)
		turn(o, NULL);
	assert_int_equal(o->frees, 1);
	assert_int_equal(read(o->peer, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "ok 1 QUIT\r\n", 11);
	owner_free_all(o);
}

/* ---- direct writes ------------------------------------------------------------ */

/* Pipelined lines in one packet: the replies leave in one write. */
static void test_one_write_per_batch(void **state)
{
	static const size_t nlines[] = { 1, 2, 5, 50 };

	for (size_t k = 0; k < ARRAY_LEN(nlines); k++) {
		struct owner *o = owner_new(SOCK_SEQPACKET);
		char in[1024] = "", out[8192], want[8192] = "";
		size_t o_in = 0, o_want = 0;

		for (size_t i = 0; i < nlines[k]; i++) {
			o_in += (size_t)snprintf(in + o_in, sizeof(in) - o_in, "C%zu\r\n", i);
			o_want += (size_t)snprintf(want + o_want, sizeof(want) - o_want, "ok %zu C%zu\r\n", i + 1, i);
		}
		o->reply_lines = true;
		conn_start(&o->c);
		assert_int_equal(send(o->peer, in, o_in, 0), (ssize_t)o_in);
		for (int i = 0; i < 10 && o->reads == 0; i++)
			turn(o, NULL);
		assert_int_equal(o->reads, 1);
		assert_int_equal(recv_record(o->peer, out, sizeof(out)), (ssize_t)o_want);
		assert_string_equal(out, want);
		assert_int_equal(recv(o->peer, out, sizeof(out), 0), -1);   /* no second write */
		assert_int_equal(errno, EAGAIN);
		assert_false(o->c.write_armed);
		owner_free_all(o);
	}
}

/* Outside a batch every write goes at once; inside one it waits. */
static void test_batch_holds_output(void **state)
{
	struct owner *o = owner_new(SOCK_SEQPACKET);
	char out[256];

	conn_start(&o->c);
	conn_write(&o->c, "one\r\n", 5);
	assert_int_equal(recv_record(o->peer, out, sizeof(out)), 5);
	conn_batch_begin(&o->c);
	conn_write(&o->c, "two\r\n", 5);
	conn_batch_begin(&o->c);
	conn_write(&o->c, "three\r\n", 7);
	conn_batch_end(&o->c);
	assert_int_equal(recv(o->peer, out, sizeof(out), 0), -1);
	assert_int_equal(conn_pending(&o->c), 12);
	conn_batch_end(&o->c);
	assert_int_equal(recv_record(o->peer, out, sizeof(out)), 12);
	assert_string_equal(out, "two\r\nthree\r\n");
	assert_int_equal(conn_pending(&o->c), 0);
	owner_free_all(o);
}

/* What the socket does not take drains through the write event, after
 * which direct writes resume; conn_await_drain() reports the drain. */
static void test_rest_drains_then_direct_again(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);
	struct evbuffer *got = evbuffer_new();
	size_t n = 2 << 20;
	char *big = xmalloc(n);

	fill_pattern(big, n);
	conn_start(&o->c);
	conn_write(&o->c, big, n);
	assert_true(o->c.write_armed);
	conn_write(&o->c, "tail\r\n", 6);   /* queues behind the rest */
	for (int i = 0; i < 100000 && o->c.write_armed; i++)
		turn(o, got);
	assert_false(o->c.write_armed);
	assert_true(o->drains >= 1);
	assert_int_equal(evbuffer_get_length(got), n + 6);
	assert_memory_equal(evbuffer_pullup(got, -1) + n, "tail\r\n", 6);
	conn_write(&o->c, "next\r\n", 6);
	assert_int_equal(conn_pending(&o->c), 0);   /* written at once */
	o->drains = 0;
	conn_batch_begin(&o->c);
	conn_write(&o->c, "x\r\n", 3);
	conn_await_drain(&o->c);
	conn_batch_end(&o->c);
	assert_true(o->c.write_armed);
	for (int i = 0; i < 10 && o->drains == 0; i++)
		turn(o, got);
	assert_int_equal(o->drains, 1);
	free(big);
	evbuffer_free(got);
	owner_free_all(o);
}

/* EOF from the peer reaches the session's event callback. */
static void test_eof_event(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);

	conn_start(&o->c);
	shutdown(o->peer, SHUT_WR);
	for (int i = 0; i < 10 && o->events == 0; i++)
		turn(o, NULL);
	assert_int_equal(o->events, 1);
	assert_true(o->last_what & BEV_EVENT_EOF);
	assert_int_equal(o->frees, 1);   /* owner_event closed it */
	owner_free_all(o);
}

/* ---- reading ------------------------------------------------------------- */

/* libevent 2.1 reads 4096 octets per wakeup; a plain connection takes up
 * to 64 KiB of what is waiting in one read callback.  Each row: octets
 * waiting, then what the input holds after the first callback (0: more
 * than one callback's worth; only checked to arrive whole). */
static void test_read_takes_more_per_wakeup(void **state)
{
	static const struct {
		size_t waiting, after_first;
	} rows[] = {
		{ 100, 100 },
		{ 4096, 4096 },
		{ 4097, 4097 },
		{ 48 * 1024, 48 * 1024 },
		{ 64 * 1024, 64 * 1024 },
		{ 100 * 1024, 0 },
	};
	static char data[100 * 1024];

	fill_pattern(data, sizeof(data));
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *in = bufferevent_get_input(o->c.bev);

		o->hold_input = true;
		assert_int_equal(write(o->peer, data, rows[i].waiting), (ssize_t)rows[i].waiting);
		conn_start(&o->c);
		turn(o, NULL);
		if (rows[i].after_first) {
			assert_int_equal(o->reads, 1);
			assert_int_equal(evbuffer_get_length(in), rows[i].after_first);
		}
		for (int k = 0; k < 10 && evbuffer_get_length(in) < rows[i].waiting; k++)
			turn(o, NULL);
		assert_int_equal(evbuffer_get_length(in), rows[i].waiting);
		assert_memory_equal(evbuffer_pullup(in, -1), data, rows[i].waiting);
		/* the end of the stream still reaches the owner, once */
		shutdown(o->peer, SHUT_WR);
		for (int k = 0; k < 10 && o->events == 0; k++)
			turn(o, NULL);
		assert_int_equal(o->events, 1);
		assert_true(o->last_what & BEV_EVENT_EOF);
		owner_free_all(o);
	}
}

/* A client that answers each reply at once (on loopback it runs while
 * the reply is written): its next command is taken in the same read
 * callback, without a loop turn, CONN_READ_AGAIN_TURNS (8) at most. */
static void test_read_again_after_reply(void **state)
{
	static const struct {
		int sends, reads;
	} rows[] = { { 0, 1 }, { 1, 2 }, { 3, 4 }, { 7, 8 }, { 20, 8 } };

	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *got = evbuffer_new();

		o->reply_lines = true;
		o->peer_sends = rows[i].sends;
		conn_start(&o->c);
		assert_int_equal(send(o->peer, "c\r\n", 3, 0), 3);
		turn_once(o, got);
		assert_int_equal(o->reads, rows[i].reads);
		assert_int_equal(o->lines, (size_t)rows[i].reads);
		/* what is left comes on later turns, every line answered */
		for (int k = 0; k < 20 && o->lines < (size_t)rows[i].sends + 1; k++)
			turn(o, got);
		assert_int_equal(o->lines, (size_t)rows[i].sends + 1);
		assert_int_equal(evbuffer_get_length(got) > 0, 1);
		evbuffer_free(got);
		owner_free_all(o);
	}
}

/* Output that has not left (the client does not read): the next command
 * waits for the loop, as the output high-water mark expects. */
static void test_no_read_again_while_output_waits(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);
	size_t n = 2 << 20;
	char *big = xmalloc(n);

	fill_pattern(big, n);
	o->peer_sends = 1;
	conn_start(&o->c);
	conn_write(&o->c, big, n);   /* more than the socket takes */
	assert_true(o->c.write_armed);
	assert_int_equal(send(o->peer, "c\r\n", 3, 0), 3);
	turn_once(o, NULL);
	assert_int_equal(o->reads, 1);
	free(big);
	owner_free_all(o);
}

/* The client sends its next command at once and goes away without
 * reading the reply: the error the extra read meets after that command
 * reaches the session as an error (as the bufferevent reports it), not
 * as an EOF. */
static void test_read_again_reports_reset(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);

	o->reply_lines = true;
	o->peer_sends = 1;
	o->reset_on_read = 2;
	conn_start(&o->c);
	assert_int_equal(send(o->peer, "c\r\n", 3, 0), 3);
	for (int i = 0; i < 10 && o->events == 0; i++)
		turn(o, NULL);
	assert_int_equal(o->events, 1);
	assert_true(o->last_what & BEV_EVENT_ERROR);
	assert_true(o->last_what & BEV_EVENT_READING);
	assert_int_equal(o->frees, 1);   /* owner_event closed it */
	owner_free_all(o);
}

/* ---- input lines ------------------------------------------------------------- */

/* Each row: max and cap, then steps: what arrives (or nothing), what
 * conn_take_line() returns, and the line's length when OK. */
struct line_step {
	const char *arrives;
	enum conn_line want;
	size_t len;
};

static void test_take_line_bounds(void **state)
{
	static const struct {
		size_t max, cap;
		struct line_step steps[4];
		size_t nsteps;
	} cases[] = {
		{ 8, 64, { { "NOOP\r\n", CONN_LINE_OK, 6 }, { NULL, CONN_LINE_MORE, 0 } }, 2 },
		{ 8, 64, { { "NOOP\n", CONN_LINE_OK, 5 } }, 1 },
		{ 8, 64, { { NULL, CONN_LINE_MORE, 0 } }, 1 },
		{ 8, 64, { { "ABCDEF\r\n", CONN_LINE_OK, 8 } }, 1 },            /* max exactly */
		{ 8, 64, { { "ABCDEFG\r\n", CONN_LINE_TOO_LONG, 0 }, { NULL, CONN_LINE_MORE, 0 } }, 2 },
		{ 64, 8, { { "ABCDEF\r\n", CONN_LINE_OK, 8 } }, 1 },            /* cap exactly */
		{ 64, 8, { { "ABCDEFG\r\n", CONN_LINE_TOO_LONG, 0 } }, 1 },      /* cap + 1 */
		{ 8, 64, { { "ABCDEFGH", CONN_LINE_MORE, 0 }, { "\n", CONN_LINE_TOO_LONG, 0 } }, 2 },
		/* past max without LF: dropped as it comes, reported at its
		 * end, and the next line is whole again */
		{ 8, 64, { { "ABCDEFGHI", CONN_LINE_MORE, 0 }, { "JK\r\n", CONN_LINE_TOO_LONG, 0 },
			   { "OK\r\n", CONN_LINE_OK, 4 }, { NULL, CONN_LINE_MORE, 0 } }, 4 },
		{ 8, 64, { { "A\r\nBC\r\n", CONN_LINE_OK, 3 }, { NULL, CONN_LINE_OK, 4 },
			   { NULL, CONN_LINE_MORE, 0 } }, 3 },
	};

	for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *in = bufferevent_get_input(o->c.bev);
		char buf[64];

		o->hold_input = true;   /* the test takes the lines itself */
		conn_start(&o->c);
		for (size_t i = 0; i < cases[k].nsteps; i++) {
			const struct line_step *st = &cases[k].steps[i];
			size_t len = 0;
			if (st->arrives) {
				size_t before = evbuffer_get_length(in), n = strlen(st->arrives);
				assert_int_equal(write(o->peer, st->arrives, n), (ssize_t)n);
				for (int t = 0; t < 10 && evbuffer_get_length(in) < before + n; t++)
					turn(o, NULL);
				assert_int_equal(evbuffer_get_length(in), before + n);
			}
			assert_int_equal(conn_take_line(&o->c, buf, cases[k].cap, cases[k].max, &len), st->want);
			if (st->want == CONN_LINE_OK) {
				assert_int_equal(len, st->len);
				assert_int_equal(buf[len - 1], '\n');
			}
		}
		owner_free_all(o);
	}
}

/* The CRLF-only variant (SMTP): a bare LF stays inside the line; a line
 * dropped for length keeps its last octet, which may be the CR of the
 * CRLF that ends it. */
static void test_take_crlf_line(void **state)
{
	static const struct {
		size_t max, cap;
		struct line_step steps[4];
		size_t nsteps;
	} cases[] = {
		{ 16, 64, { { "NOOP\r\n", CONN_LINE_OK, 6 }, { NULL, CONN_LINE_MORE, 0 } }, 2 },
		{ 16, 64, { { "NOOP\n", CONN_LINE_MORE, 0 }, { "RSET\r\n", CONN_LINE_OK, 11 } }, 2 },
		{ 16, 64, { { "A\nB\r\nC\r\n", CONN_LINE_OK, 5 }, { NULL, CONN_LINE_OK, 3 } }, 2 },
		{ 16, 64, { { "NOOP\r", CONN_LINE_MORE, 0 }, { "\n", CONN_LINE_OK, 6 } }, 2 },
		{ 8, 64, { { "ABCDEF\r\n", CONN_LINE_OK, 8 } }, 1 },            /* max exactly */
		{ 8, 64, { { "ABCDEFG\r\n", CONN_LINE_TOO_LONG, 0 } }, 1 },
		/* past max: dropped as it comes; the CR at the end of one
		 * read and the LF of the next still end it */
		{ 8, 64, { { "ABCDEFGH\r", CONN_LINE_MORE, 0 }, { "\nOK\r\n", CONN_LINE_TOO_LONG, 0 },
			   { NULL, CONN_LINE_OK, 4 }, { NULL, CONN_LINE_MORE, 0 } }, 4 },
		{ 8, 64, { { "A\nBCDEFGHIJ", CONN_LINE_MORE, 0 }, { "K\nL\r\n", CONN_LINE_TOO_LONG, 0 },
			   { NULL, CONN_LINE_MORE, 0 } }, 3 },
	};

	for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
		struct owner *o = owner_new(SOCK_STREAM);
		struct evbuffer *in = bufferevent_get_input(o->c.bev);
		char buf[64];

		o->hold_input = true;
		conn_start(&o->c);
		for (size_t i = 0; i < cases[k].nsteps; i++) {
			const struct line_step *st = &cases[k].steps[i];
			size_t len = 0;
			if (st->arrives) {
				size_t before = evbuffer_get_length(in), n = strlen(st->arrives);
				assert_int_equal(write(o->peer, st->arrives, n), (ssize_t)n);
				for (int t = 0; t < 10 && evbuffer_get_length(in) < before + n; t++)
					turn(o, NULL);
				assert_int_equal(evbuffer_get_length(in), before + n);
			}
			enum conn_line r = conn_take_crlf_line(&o->c, buf, cases[k].cap, cases[k].max, &len);
			if (r != st->want)
				fail_msg("case %zu step %zu: %d, want %d", k, i, r, st->want);
			if (st->want == CONN_LINE_OK) {
				assert_int_equal(len, st->len);
				assert_memory_equal(buf + len - 2, "\r\n", 2);
			}
		}
		owner_free_all(o);
	}
}

/* ---- STARTTLS ------------------------------------------------------------------ */

/* The reply leaves in the clear, pipelined input is dropped, then TLS. */
static void test_starttls_waits_for_reply(void **state)
{
	struct owner *o = owner_new(SOCK_STREAM);
	char out[256];

	o->reply_lines = o->starttls_on_read = true;
	conn_start(&o->c);
	assert_int_equal(write(o->peer, "STARTTLS\r\nRSET\r\n", 16), 16);
	for (int i = 0; i < 20 && o->tls_done == 0; i++)
		turn(o, NULL);
	assert_int_equal(o->tls_done, 1);
	assert_int_equal(o->tls_ok, 1);
	assert_true(o->c.tls);
	assert_false(o->c.direct_out);
	assert_int_equal(o->lines, 1);      /* RSET was not acted on */
	assert_int_equal(read(o->peer, out, sizeof(out)), 15);
	assert_memory_equal(out, "ok 1 STARTTLS\r\n", 15);
	owner_free_all(o);
}

/* Closed before the reply left: no switch, the session is told. */
static void test_starttls_cancelled_by_close(void **state)
{
	static const bool flush[] = { false, true };

	for (size_t k = 0; k < ARRAY_LEN(flush); k++) {
		struct owner *o = owner_new(SOCK_STREAM);

		conn_start(&o->c);
		conn_starttls(&o->c, new_ssl());
		conn_write(&o->c, "220 go\r\n", 8);
		assert_int_equal(conn_pending(&o->c), 8);   /* through the events */
		conn_close(&o->c, flush[k]);
		for (int i = 0; i < 10 && o->frees == 0; i++)
			turn(o, NULL);
		assert_int_equal(o->tls_done, 1);
		assert_int_equal(o->tls_ok, 0);
		assert_int_equal(o->frees, 1);
		owner_free_all(o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_then_close_delivers_all),
		cmocka_unit_test(test_close_without_flush_gives_up),
		cmocka_unit_test(test_peer_gone_while_flushing),
		cmocka_unit_test(test_stalled_reader_dropped_at_timeout),
		cmocka_unit_test(test_ref_keeps_session_alive),
		cmocka_unit_test(test_close_inside_callback),
		cmocka_unit_test(test_one_write_per_batch),
		cmocka_unit_test(test_batch_holds_output),
		cmocka_unit_test(test_rest_drains_then_direct_again),
		cmocka_unit_test(test_eof_event),
		cmocka_unit_test(test_read_takes_more_per_wakeup),
		cmocka_unit_test(test_read_again_after_reply),
		cmocka_unit_test(test_no_read_again_while_output_waits),
		cmocka_unit_test(test_read_again_reports_reset),
		cmocka_unit_test(test_take_line_bounds),
		cmocka_unit_test(test_take_crlf_line),
		cmocka_unit_test(test_starttls_waits_for_reply),
		cmocka_unit_test(test_starttls_cancelled_by_close),
	};
	log_set_quiet(1);
	signal(SIGPIPE, SIG_IGN);   /* as tern serve does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
