/*
 * test_tls_accept.c - server handshakes on the TLS context's worker
 * threads: TLS 1.2 and 1.3 end with an SSL on the socket that reads what
 * the client sent right after its Finished (it stayed in the socket) and
 * writes the reply; a client that hangs up mid-handshake, or sends
 * garbage, ends it with no SSL; a cancel while a worker holds the SSL
 * frees it once the worker is done.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/tls_accept.h"
#include "core/util.h"

struct fixture {
	char dir[64];
	struct config *cfg;
	struct tls_ctx *tls;
	struct event_base *base;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char *err = NULL;
	strcpy(f->dir, "/tmp/tern-test-tlsacc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_set_quiet(1);
	f->cfg = config_dev_default();
	free(f->cfg->state_dir);
	free(f->cfg->tls_cert);
	free(f->cfg->tls_key);
	f->cfg->state_dir = xstrdup(f->dir);
	f->cfg->tls_cert = xasprintf("%s/tls/cert.pem", f->dir);
	f->cfg->tls_key = xasprintf("%s/tls/key.pem", f->dir);
	f->base = event_base_new();
	f->tls = tls_ctx_new(f->cfg, &err);
	assert_non_null(f->tls);
	tls_ctx_start_pool(f->tls, f->base);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	tls_ctx_free(f->tls);
	event_base_free(f->base);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	config_free(f->cfg);
	free(f);
	return 0;
}

/* The server's view of the end. */
struct result {
	struct event_base *base;
	bool called;
	SSL *ssl;
	unsigned long err;
};

static void accepted_cb(void *arg, SSL *ssl, unsigned long err)
{
	struct result *r = arg;
	r->called = true;
	r->ssl = ssl;
	r->err = err;
	event_base_loopbreak(r->base);
}

/* A blocking client on its own thread: handshake, then at once a line,
 * then the server's reply. */
struct client {
	int fd;
	int version;             /* TLS1_2_VERSION or TLS1_3_VERSION */
	bool ok;
	char reply[64];
};

static void *client_main(void *arg)
{
	struct client *cl = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	static const char line[] = "right after the Finished\n";
	int n;

	SSL_CTX_set_min_proto_version(ctx, cl->version);
	SSL_CTX_set_max_proto_version(ctx, cl->version);
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, cl->fd);
	cl->ok = SSL_connect(ssl) == 1 && SSL_write(ssl, line, (int)sizeof(line) - 1) == (int)sizeof(line) - 1 &&
		(n = SSL_read(ssl, cl->reply, sizeof(cl->reply) - 1)) > 0;
	if (cl->ok)
		cl->reply[n] = '\0';
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return NULL;
}

static void handshake_leaves_the_rest(struct fixture *f, int version)
{
	int sv[2];
	pthread_t th;
	struct result r = { .base = f->base };
	struct client cl = { .version = version };
	char buf[64];
	int n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cl.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
	SSL *ssl = tls_ctx_new_ssl(f->tls);
	assert_non_null(ssl);
	assert_non_null(tls_accept_start(f->base, sv[0], ssl, accepted_cb, &r));
	event_base_dispatch(f->base);
	assert_true(r.called);
	assert_non_null(r.ssl);
	assert_int_equal(SSL_version(r.ssl), version);
	/* The SSL reads the socket now; the line is there. */
	n = SSL_read(r.ssl, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "right after the Finished\n");
	assert_int_equal(SSL_write(r.ssl, "ok\n", 3), 3);
	pthread_join(th, NULL);
	assert_true(cl.ok);
	assert_string_equal(cl.reply, "ok\n");
	SSL_free(r.ssl);
	close(sv[0]);
	close(sv[1]);
}

static void test_tls13(void **state)
{
	handshake_leaves_the_rest(*state, TLS1_3_VERSION);
}

static void test_tls12(void **state)
{
	handshake_leaves_the_rest(*state, TLS1_2_VERSION);
}

static void test_hangup_and_garbage(void **state)
{
	struct fixture *f = *state;
	static const char *const sends[] = {
		"",                                  /* EOF before anything */
		"\x16\x03\x01\x00",                  /* half a record header, then EOF */
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n", /* not TLS at all */
	};
	for (size_t i = 0; i < sizeof(sends) / sizeof(sends[0]); i++) {
		int sv[2];
		struct result r = { .base = f->base };
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(write(sv[1], sends[i], strlen(sends[i])), (ssize_t)strlen(sends[i]));
		shutdown(sv[1], SHUT_WR);
		SSL *ssl = tls_ctx_new_ssl(f->tls);
		assert_non_null(tls_accept_start(f->base, sv[0], ssl, accepted_cb, &r));
		event_base_dispatch(f->base);
		assert_true(r.called);
		assert_null(r.ssl);
		assert_true(i == 2 ? r.err != 0 : r.err == 0);
		close(sv[0]);
		close(sv[1]);
	}
}

static void test_cancel_while_a_worker_holds_it(void **state)
{
	struct fixture *f = *state;
	int sv[2];
	pthread_t th;
	struct result r = { .base = f->base };
	struct client cl = { .version = TLS1_3_VERSION };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cl.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, client_main, &cl), 0);
	SSL *ssl = tls_ctx_new_ssl(f->tls);
	struct tls_accept *a = tls_accept_start(f->base, sv[0], ssl, accepted_cb, &r);
	assert_non_null(a);
	/* One turn: the ClientHello goes to a worker (or the turn ends
	 * first); either way the cancel must not call back or leak. */
	event_base_loop(f->base, EVLOOP_ONCE);
	tls_accept_cancel(a);
	close(sv[0]);                        /* the client's wait ends */
	pthread_join(th, NULL);
	tls_ctx_free(f->tls);                /* runs the job's done(), which frees */
	f->tls = NULL;
	assert_false(r.called);
	close(sv[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* the client writes to closed sockets */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tls13, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls12, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hangup_and_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_a_worker_holds_it, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
