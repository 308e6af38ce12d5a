/*
 * tls.h - the server's TLS context (RFC 8446 TLS 1.3, RFC 5246 TLS 1.2
 * only), shared by SMTP STARTTLS (RFC 3207), SMTPS (RFC 8314) and POP3S /
 * STLS (RFC 2595), IMAP and HTTPS.  One SSL_CTX built from [tls] cert
 * and key, and a store of certificates (that one, slot "tls", and the
 * ACME one, slot "acme") from which every handshake takes its
 * certificate when its ClientHello arrives: by SNI (RFC 6066 3) among
 * the names each covers, the one for [server] hostname without SNI.  A
 * slot replaced on the loop thread is used from the next handshake on,
 * on every service, without a restart; handshakes under way keep the
 * certificate they chose (each SSL holds references).
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

struct config;
struct event_base;
struct tls_ctx;
struct workers;

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
/* Start the threads that server handshakes (core/tls_accept.c) run on,
 * one per CPU; without them a handshake runs on the loop. */
void tls_ctx_start_pool(struct tls_ctx *c, struct event_base *base);
/* The pool of the context ssl was made by, NULL if none. */
struct workers *tls_ssl_pool(SSL *ssl);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" without a session. */
void tls_describe(SSL *ssl, char *buf, size_t cap);
void tls_ctx_free(struct tls_ctx *c);

/* Install or replace slot's certificate: pem is the leaf and then its
 * chain, key its private key (a reference is taken).  False with *err
 * (xmalloc'd) when the text holds no certificate or the key does not
 * match; the slot is then unchanged. */
bool tls_ctx_set_cert(struct tls_ctx *c, const char *slot, EVP_PKEY *key, const char *pem, size_t len,
		      char **err);
/* The leaf of a slot, NULL when it is empty (the store keeps it). */
X509 *tls_ctx_get_cert(struct tls_ctx *c, const char *slot);
/* tls-alpn-01 (RFC 8737 3): a handshake for name offering ALPN
 * acme-tls/1 gets x (references taken); x NULL withdraws it.  False when
 * too many are outstanding. */
bool tls_ctx_set_challenge(struct tls_ctx *c, const char *name, X509 *x, EVP_PKEY *key);
/* After a handshake: was it an ACME tls-alpn-01 validation (nothing but
 * the handshake is owed to it)? */
bool tls_is_acme_validation(SSL *ssl);

#endif
