/*
 * tls.h - the server's TLS context (RFC 8446 TLS 1.3, RFC 5246 TLS 1.2
 * only), shared by SMTP STARTTLS (RFC 3207), SMTPS (RFC 8314) and POP3S /
 * STLS (RFC 2595).  One SSL_CTX built from [tls] cert and key; a reload
 * swaps in a new one for new sessions, while live sessions keep theirs
 * (each SSL holds a reference to the SSL_CTX it was made from).
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

struct config;
struct tls_ctx;

/* Loads [tls] cert/key.  If the files are missing and the paths are the
 * defaults under state_dir, makes a self-signed certificate (EC P-256,
 * CN and SAN DNS: the hostname, key mode 0600) and logs a warning.  If
 * explicitly configured files are missing or unusable, returns NULL with
 * an xmalloc'd message in *err (fatal at start-up). */
struct tls_ctx *tls_ctx_new(const struct config *cfg, char **err);
/* SIGHUP: re-read cert and key.  On failure the old context stays and
 * *err says why. */
bool tls_ctx_reload(struct tls_ctx *c, char **err);
/* A server-side SSL for one connection, or NULL if OpenSSL fails. */
SSL *tls_ctx_new_ssl(struct tls_ctx *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" without a session. */
void tls_describe(SSL *ssl, char *buf, size_t cap);
void tls_ctx_free(struct tls_ctx *c);

#endif
