/*
 * test_tls.c - the server TLS context: the self-signed development
 * certificate (made once, EC P-256, CN and SAN = hostname, key 0600),
 * explicit files that are missing or do not match, reload keeping the
 * old context on failure, and the protocol settings of every SSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"

struct fixture {
	char dir[64];
	struct config *cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/tern-test-tls-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_set_quiet(1);
	f->cfg = config_dev_default();
	free(f->cfg->state_dir);
	free(f->cfg->hostname);
	free(f->cfg->tls_cert);
	free(f->cfg->tls_key);
	f->cfg->state_dir = xstrdup(f->dir);
	f->cfg->hostname = xstrdup("unit.test");
	f->cfg->tls_cert = xasprintf("%s/tls/cert.pem", f->dir);
	f->cfg->tls_key = xasprintf("%s/tls/key.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	config_free(f->cfg);
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = xcalloc(1, 65536);
	assert_non_null(fp);
	assert_true(fread(buf, 1, 65535, fp) > 0);
	fclose(fp);
	return buf;
}

static void test_self_signed_made_once(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *first, *again;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	struct stat st;
	X509 *x;
	FILE *fp;

	assert_non_null(c);
	assert_null(err);
	assert_int_equal(stat(f->cfg->tls_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fp = fopen(f->cfg->tls_cert, "r");
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	assert_int_equal(X509_check_host(x, "unit.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.test", 0, 0, NULL), 0);
	assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
	X509_free(x);
	first = slurp(f->cfg->tls_cert);
	tls_ctx_free(c);
	c = tls_ctx_new(f->cfg, &err);
	assert_non_null(c);
	again = slurp(f->cfg->tls_cert);
	assert_string_equal(first, again);
	free(first);
	free(again);
	tls_ctx_free(c);
}

static void test_explicit_missing(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	free(f->cfg->tls_cert);
	f->cfg->tls_cert = xasprintf("%s/elsewhere/cert.pem", f->dir);
	assert_null(tls_ctx_new(f->cfg, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "elsewhere/cert.pem"));
	free(err);
	/* nothing was made up */
	assert_int_not_equal(access(f->cfg->tls_cert, F_OK), 0);
	assert_int_not_equal(access(f->cfg->tls_key, F_OK), 0);
}

static void test_key_must_match(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *other = xasprintf("%s/b", f->dir);
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);   /* makes dir/tls/{cert,key}.pem */
	struct config *cfg2 = config_dev_default();

	assert_non_null(c);
	free(cfg2->state_dir);
	cfg2->state_dir = xstrdup(other);
	free(cfg2->tls_cert);
	free(cfg2->tls_key);
	cfg2->tls_cert = xasprintf("%s/tls/cert.pem", other);
	cfg2->tls_key = xasprintf("%s/tls/key.pem", other);
	tls_ctx_free(tls_ctx_new(cfg2, &err));            /* a second pair */
	free(cfg2->tls_key);
	cfg2->tls_key = xstrdup(f->cfg->tls_key);         /* cert of one, key of the other */
	assert_null(tls_ctx_new(cfg2, &err));
	assert_non_null(err);
	/* OpenSSL notices the mismatch while loading the key, or at the check */
	assert_true(strstr(err, "does not match") || strstr(err, "key values mismatch"));
	free(err);
	config_free(cfg2);
	free(other);
	tls_ctx_free(c);
}

static void test_reload_keeps_old_on_failure(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	FILE *fp;
	SSL *ssl;

	assert_non_null(c);
	assert_true(tls_ctx_reload(c, &err));
	fp = fopen(f->cfg->tls_cert, "w");
	fputs("not a certificate\n", fp);
	fclose(fp);
	assert_false(tls_ctx_reload(c, &err));
	assert_non_null(err);
	free(err);
	ssl = tls_ctx_new_ssl(c);
	assert_non_null(ssl);
	SSL_free(ssl);
	/* default paths: a missing pair is made again on reload */
	unlink(f->cfg->tls_cert);
	unlink(f->cfg->tls_key);
	assert_true(tls_ctx_reload(c, &err));
	assert_int_equal(access(f->cfg->tls_key, R_OK), 0);
	tls_ctx_free(c);
}

static void test_ssl_settings(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, buf[64];
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	SSL *ssl = tls_ctx_new_ssl(c);

	assert_non_null(ssl);
	assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_2_VERSION);
	assert_int_equal(SSL_get_max_proto_version(ssl), TLS1_3_VERSION);
	assert_true(SSL_get_options(ssl) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_get_options(ssl) & SSL_OP_NO_RENEGOTIATION);
	assert_false(SSL_is_server(ssl) == 0);
	tls_describe(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
	tls_describe(ssl, buf, 0);    /* cap 0 writes nothing */
	SSL_free(ssl);
	tls_ctx_free(c);
	tls_ctx_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_self_signed_made_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explicit_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_must_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_old_on_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssl_settings, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
