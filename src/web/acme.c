/*
 * acme.c - the ACME client's protocol (see acme.h): RFC 8555 7 for the
 * exchanges, 8.3 http-01, RFC 8737 tls-alpn-01.
 *
 * One order at a time, as a sequence of states, each entered through
 * acme_set_state() (the only writer) and left when the CA's answer
 * decides the next:
 *
 *   DIRECTORY -> ACCOUNT -> ORDER -> AUTHZ (each authorization: fetch,
 *   CHALLENGE it, AUTHZ_POLL until valid) -> FINALIZE (a new key's CSR)
 *   -> ORDER_POLL until valid -> CERTIFICATE -> SAVE (on the worker pool:
 *   fsync and rename) -> IDLE (the renewal timer armed)
 *
 * Any failure goes to RETRY: logged, everything of the order dropped, and
 * the whole sequence started again after [acme] retry, doubled for each
 * failure in a row up to a day.  The certificate in use stays in use.
 *
 * Every request but the directory's and the nonce's is a JWS POST (RFC
 * 8555 6.2); a fetch is a POST-as-GET (6.3).  A badNonce error (6.5) is
 * answered by sending the same request again with the nonce it brought.
 */
#include "web/acme.h"
#include "web/acme_http.h"
#include "web/acme_jws.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/server.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"
#include "proto/acme_wire.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ACME_BAD_NONCE_TRIES 5
#define ACME_POLLS_MAX       60     /* per authorization or order */
#define ACME_POLL_DEFAULT_S  1      /* without Retry-After */
#define ACME_POLL_MAX_S      60
#define ACME_BACKOFF_MAX_S   86400
#define ACME_DOMAINS_MAX     100    /* Let's Encrypt's limit per certificate */
#define ACME_CERT_FILE_MAX   (1024 * 1024)

enum acme_state {
	ACME_OFF,
	ACME_DIRECTORY,
	ACME_ACCOUNT,
	ACME_ORDER,
	ACME_AUTHZ,
	ACME_CHALLENGE,
	ACME_AUTHZ_POLL,
	ACME_FINALIZE,
	ACME_ORDER_POLL,
	ACME_CERTIFICATE,
	ACME_SAVE,
	ACME_IDLE,
	ACME_RETRY,
};

static const char *const acme_state_names[] = {
	[ACME_OFF] = "off",
	[ACME_DIRECTORY] = "directory",
	[ACME_ACCOUNT] = "account",
	[ACME_ORDER] = "order",
	[ACME_AUTHZ] = "authz",
	[ACME_CHALLENGE] = "challenge",
	[ACME_AUTHZ_POLL] = "authz_poll",
	[ACME_FINALIZE] = "finalize",
	[ACME_ORDER_POLL] = "order_poll",
	[ACME_CERTIFICATE] = "certificate",
	[ACME_SAVE] = "save",
	[ACME_IDLE] = "idle",
	[ACME_RETRY] = "retry",
};

/* An http-01 token being validated, and what to answer for it. */
struct acme_token {
	char *token;
	char *name;                     /* the identifier it validates */
	char *key_authz;
};

/* One authorization of the order (RFC 8555 7.1.4). */
struct acme_authz {
	char *url;
	char *name;                     /* its identifier, lower case */
	char *challenge;                /* the URL of the challenge we answer */
	bool answered;                  /* a validation certificate is in the store */
	bool valid;
};

struct acme_save_job;

typedef void (*acme_reply_fn)(struct acme *a, const struct acme_http_reply *r, json_t *j);

struct acme {
	struct tern *t;
	const struct config *cfg;
	struct acme_http *http;
	struct event *timer;            /* polling, retry, renewal */
	enum acme_state state;
	bool http01;                    /* else tls-alpn-01 */
	char *dir;                      /* state_dir/acme */
	char *cert_path;                /* key and chain, one file */
	EVP_PKEY *account_key;
	EVP_PKEY *alpn_key;             /* of the validation certificates */
	char **domains;
	size_t ndomains;
	unsigned failures;              /* in a row, for the back-off */
	struct acme_save_job *saving;

	/* From the directory and the account. */
	char *url_nonce, *url_account, *url_order;
	char *kid;
	char *nonce;

	/* The request under way, kept for a badNonce retry. */
	char *req_url, *req_payload;
	acme_reply_fn req_fn;
	unsigned bad_nonces;

	/* The order under way. */
	char *order_url, *finalize_url, *cert_url;
	struct acme_authz *authz;
	size_t nauthz, authz_i;         /* authz_i: the pass's position */
	unsigned polls;                 /* rounds of AUTHZ_POLL, or order polls */
	uint64_t poll_delay;            /* the shortest Retry-After of a round */
	EVP_PKEY *cert_key;
	struct acme_token tokens[ACME_DOMAINS_MAX];
	size_t ntokens;
};

/* ---- logging: one function per event ------------------------------------ */

static void log_acme_state(const struct acme *a, enum acme_state from, enum acme_state to)
{
	if (log_debug_enabled())
		log_event("event=acme_state from=%s to=%s", acme_state_names[from], acme_state_names[to]);
}

static void log_acme_failed(const struct acme *a, const char *error, uint64_t retry_in)
{
	char e[400];
	log_event("event=acme_failed level=error step=%s error=%s failures=%u retry_in=%" PRIu64,
		  acme_state_names[a->state], log_quote(e, sizeof(e), error, strlen(error)), a->failures,
		  retry_in);
}

static void log_acme_account(const struct acme *a, int status)
{
	char k[300];
	log_event("event=acme_account kid=%s new=%s", log_quote(k, sizeof(k), a->kid, strlen(a->kid)),
		  status == 201 ? "yes" : "no");
}

static void log_acme_order(const struct acme *a)
{
	char u[300];
	log_event("event=acme_order order=%s names=%zu authorizations=%zu",
		  log_quote(u, sizeof(u), a->order_url, strlen(a->order_url)), a->ndomains, a->nauthz);
}

static void log_acme_challenge(const struct acme *a, const struct acme_authz *z, const char *type)
{
	log_event("event=acme_challenge name=%s type=%s", z->name, type);
}

static void log_acme_authorized(const struct acme *a, const struct acme_authz *z)
{
	log_event("event=acme_authorized name=%s", z->name);
}

static void log_acme_bad_nonce(const struct acme *a)
{
	log_event("event=acme_bad_nonce step=%s try=%u", acme_state_names[a->state], a->bad_nonces);
}

static void log_acme_issued(const struct acme *a, const char *issuer, int64_t not_after)
{
	char i[300];
	log_event("event=acme_issued names=%zu issuer=%s not_after=%" PRId64 " file=%s", a->ndomains,
		  log_quote(i, sizeof(i), issuer, strlen(issuer)), not_after, a->cert_path);
}

static void log_acme_loaded(const struct acme *a, int64_t not_after, bool covers)
{
	log_event("event=acme_loaded file=%s not_after=%" PRId64 " covers_names=%s", a->cert_path, not_after,
		  covers ? "yes" : "no");
}

static void log_acme_unreadable(const struct acme *a, const char *why)
{
	log_event("event=acme_unreadable level=warning file=%s error=\"%s\"", a->cert_path, why);
}

static void log_acme_renewal(const struct acme *a, uint64_t in)
{
	log_event("event=acme_renewal_scheduled in=%" PRIu64, in);
}

/* ---- state ---------------------------------------------------------------- */

static void acme_set_state(struct acme *a, enum acme_state s)
{
	if (a->state != s)
		log_acme_state(a, a->state, s);
	a->state = s;
}

static void acme_arm(struct acme *a, uint64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };
	evtimer_add(a->timer, &tv);
}

static void acme_tokens_clear(struct acme *a)
{
	for (size_t i = 0; i < a->ntokens; i++) {
		free(a->tokens[i].token);
		free(a->tokens[i].name);
		free(a->tokens[i].key_authz);
	}
	a->ntokens = 0;
}

static void acme_answers_clear(struct acme *a);

/* Everything of the order under way. */
static void acme_order_clear(struct acme *a)
{
	acme_answers_clear(a);
	for (size_t i = 0; i < a->nauthz; i++) {
		free(a->authz[i].url);
		free(a->authz[i].name);
		free(a->authz[i].challenge);
	}
	free(a->authz);
	a->authz = NULL;
	a->nauthz = a->authz_i = 0;
	free(a->order_url);
	free(a->finalize_url);
	free(a->cert_url);
	a->order_url = a->finalize_url = a->cert_url = NULL;
	EVP_PKEY_free(a->cert_key);
	a->cert_key = NULL;
	acme_tokens_clear(a);
	free(a->req_url);
	free(a->req_payload);
	a->req_url = a->req_payload = NULL;
}

/* A failure at any step: drop the order, wait, start again. */
static void acme_fail(struct acme *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void acme_fail(struct acme *a, const char *fmt, ...)
{
	char error[600];
	va_list ap;
	uint64_t wait = a->cfg->acme_retry;

	va_start(ap, fmt);
	vsnprintf(error, sizeof(error), fmt, ap);
	va_end(ap);
	a->failures++;
	for (unsigned i = 1; i < a->failures && wait < ACME_BACKOFF_MAX_S; i++)
		wait *= 2;
	if (wait > ACME_BACKOFF_MAX_S)
		wait = ACME_BACKOFF_MAX_S;
	log_acme_failed(a, error, wait);
	acme_http_cancel(a->http);
	acme_order_clear(a);
	acme_set_state(a, ACME_RETRY);
	acme_arm(a, wait);
}

/* The "type" and "detail" of a problem document (RFC 8555 6.7, RFC 7807). */
static void acme_problem(json_t *j, char *out, size_t cap)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *detail = json_string_value(json_object_get(j, "detail"));
	snprintf(out, cap, "%s: %s", type ? type : "?", detail ? detail : "?");
}

static bool acme_is_bad_nonce(json_t *j)
{
	const char *type = json_string_value(json_object_get(j, "type"));
	return type && strcmp(type, "urn:ietf:params:acme:error:badNonce") == 0;
}

static const char *jstr(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* ---- requests --------------------------------------------------------------- */

static void acme_send(struct acme *a);

static void acme_nonce_cb(const struct acme_http_reply *r, void *arg)
{
	struct acme *a = arg;
	if (r->nonce == NULL) {
		acme_fail(a, "newNonce: %s", r->status ? "no Replay-Nonce" : r->error);
		return;
	}
	free(a->nonce);
	a->nonce = xstrdup(r->nonce);
	acme_send(a);
}

static void acme_post_cb(const struct acme_http_reply *r, void *arg)
{
	struct acme *a = arg;
	json_t *j = NULL;

	if (r->status == 0) {
		acme_fail(a, "%s", r->error);
		return;
	}
	free(a->nonce);
	a->nonce = r->nonce ? xstrdup(r->nonce) : NULL;
	if (r->content_type && (strncmp(r->content_type, "application/json", 16) == 0 ||
				strncmp(r->content_type, "application/problem+json", 24) == 0))
		j = json_loadb(r->body, r->len, 0, NULL);
	if (r->status == 400 && j && acme_is_bad_nonce(j) && a->bad_nonces < ACME_BAD_NONCE_TRIES) {
		a->bad_nonces++;
		log_acme_bad_nonce(a);
		json_decref(j);
		acme_send(a);
		return;
	}
	if (r->status >= 300) {
		char p[400];
		if (j)
			acme_problem(j, p, sizeof(p));
		else
			snprintf(p, sizeof(p), "HTTP %d", r->status);
		json_decref(j);
		acme_fail(a, "%s", p);
		return;
	}
	a->req_fn(a, r, j);
	json_decref(j);
}

/* Sign and send the request kept in a->req_*; a nonce first when there
 * is none left (each is good for one request). */
static void acme_send(struct acme *a)
{
	char *jws;
	bool ok;

	if (a->nonce == NULL) {
		if (!acme_http_request(a->http, "HEAD", a->url_nonce, NULL, NULL, 0, acme_nonce_cb, a))
			acme_fail(a, "newNonce URL %s is not https", a->url_nonce);
		return;
	}
	jws = acme_jws(a->account_key, a->kid, a->nonce, a->req_url, a->req_payload);
	free(a->nonce);
	a->nonce = NULL;
	if (jws == NULL) {
		acme_fail(a, "cannot sign the request");
		return;
	}
	ok = acme_http_request(a->http, "POST", a->req_url, "application/jose+json", jws, strlen(jws), acme_post_cb,
			       a);
	free(jws);
	if (!ok)
		acme_fail(a, "URL %s is not https", a->req_url);
}

/* A JWS POST of payload (NULL: POST-as-GET) to url; fn gets the answer
 * when it is a success. */
static void acme_post(struct acme *a, const char *url, json_t *payload, acme_reply_fn fn)
{
	char *p = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	free(a->req_url);
	free(a->req_payload);
	a->req_url = xstrdup(url);
	a->req_payload = xstrdup(p ? p : "");
	free(p);
	a->req_fn = fn;
	a->bad_nonces = 0;
	acme_send(a);
}

/* ---- the sequence ------------------------------------------------------------ */

static void acme_begin(struct acme *a);
static void acme_finalize(struct acme *a);

/* A delay from Retry-After (RFC 8555 7.5.1), or the default. */
static uint64_t acme_poll_delay(const struct acme_http_reply *r)
{
	uint64_t s = ACME_POLL_DEFAULT_S;
	if (r->retry_after && !acme_retry_after(r->retry_after, strlen(r->retry_after), now_unix(), ACME_POLL_MAX_S, &s))
		s = ACME_POLL_DEFAULT_S;
	return s;
}

static void acme_certificate_cb(struct acme *a, const struct acme_http_reply *r, json_t *j);

static void acme_order_state(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	const char *status = jstr(j, "status");
	const char *cert = jstr(j, "certificate");

	if (status && strcmp(status, "valid") == 0 && cert) {
		a->cert_url = xstrdup(cert);
		acme_set_state(a, ACME_CERTIFICATE);
		acme_post(a, a->cert_url, NULL, acme_certificate_cb);
		return;
	}
	if (status == NULL || strcmp(status, "invalid") == 0) {
		acme_fail(a, "the order is %s", status ? status : "without status");
		return;
	}
	if (++a->polls > ACME_POLLS_MAX) {
		acme_fail(a, "the order is still %s after %u polls", status, ACME_POLLS_MAX);
		return;
	}
	acme_set_state(a, ACME_ORDER_POLL);
	acme_arm(a, acme_poll_delay(r));
}

static void acme_finalize_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	if (j == NULL) {
		acme_fail(a, "finalize: no JSON");
		return;
	}
	a->polls = 0;
	acme_order_state(a, r, j);
}

static void acme_order_poll_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	if (j == NULL) {
		acme_fail(a, "order: no JSON");
		return;
	}
	acme_order_state(a, r, j);
}

static void acme_finalize(struct acme *a)
{
	char *csr;
	a->cert_key = acme_key_new();
	csr = a->cert_key ? acme_csr(a->cert_key, a->domains, a->ndomains) : NULL;
	if (csr == NULL) {
		acme_fail(a, "cannot make the CSR");
		return;
	}
	acme_set_state(a, ACME_FINALIZE);
	acme_post(a, a->finalize_url, json_pack("{s:s}", "csr", csr), acme_finalize_cb);
	free(csr);
}

/*
 * The authorizations of an order are worked on together, in three
 * passes over them: AUTHZ fetches each and makes its answer ready (a
 * token for http-01, a validation certificate for tls-alpn-01);
 * CHALLENGE tells the CA to look at each pending one; AUTHZ_POLL fetches
 * those not yet valid, again after Retry-After while any is pending.  So
 * the CA validates every name at once instead of one after the other.
 */

/* Withdraw every answer: the CA is done with them, or the order failed. */
static void acme_answers_clear(struct acme *a)
{
	for (size_t i = 0; i < a->nauthz; i++)
		if (!a->http01 && a->authz[i].name && a->authz[i].answered)
			tls_ctx_set_challenge(a->t->tls, a->authz[i].name, NULL, NULL);
	acme_tokens_clear(a);
}

/* Make the answer to one challenge ready before telling the CA to look. */
static bool acme_challenge_ready(struct acme *a, struct acme_authz *z, const char *token)
{
	char *ka = acme_key_authorization(token, a->account_key);
	if (ka == NULL)
		return false;
	z->answered = true;
	if (a->http01) {
		if (a->ntokens == ACME_DOMAINS_MAX) {
			free(ka);
			return false;
		}
		a->tokens[a->ntokens].token = xstrdup(token);
		a->tokens[a->ntokens].name = xstrdup(z->name);
		a->tokens[a->ntokens++].key_authz = ka;
		return true;
	}
	X509 *x = acme_alpn_cert(a->alpn_key, z->name, ka);
	free(ka);
	bool ok = x && tls_ctx_set_challenge(a->t->tls, z->name, x, a->alpn_key);
	X509_free(x);
	return ok;
}

static void acme_authz_pass(struct acme *a);

/* An authorization's status: true when the pass may go on. */
static bool acme_authz_status(struct acme *a, struct acme_authz *z, json_t *j)
{
	const char *status = jstr(j, "status");

	if (status && strcmp(status, "valid") == 0) {
		z->valid = true;
		log_acme_authorized(a, z);
		return true;
	}
	if (status && (strcmp(status, "pending") == 0 || strcmp(status, "processing") == 0))
		return true;
	/* The challenge's error says why (RFC 8555 7.1.4, 8.2). */
	char p[400] = "";
	size_t i;
	json_t *ch, *chs = json_object_get(j, "challenges");
	json_array_foreach(chs, i, ch) {
		if (json_object_get(ch, "error"))
			acme_problem(json_object_get(ch, "error"), p, sizeof(p));
	}
	acme_fail(a, "authorization for %s is %s %s", z->name, status ? status : "without status", p);
	return false;
}

/* AUTHZ: the authorization, its name, and the answer to its challenge. */
static void acme_authz_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	struct acme_authz *z = &a->authz[a->authz_i];
	const char *want = a->http01 ? "http-01" : "tls-alpn-01";
	const char *name = jstr(json_object_get(j, "identifier"), "value");
	const char *status = jstr(j, "status");
	json_t *ch, *chs = json_object_get(j, "challenges");
	size_t i;

	if (name == NULL || status == NULL) {
		acme_fail(a, "authorization without identifier or status");
		return;
	}
	z->name = xstrdup(name);
	for (char *p = z->name; *p; p++)
		*p = ascii_lower(*p);
	if (strcmp(status, "pending") != 0) {
		if (acme_authz_status(a, z, j)) {   /* valid already */
			a->authz_i++;
			acme_authz_pass(a);
		}
		return;
	}
	json_array_foreach(chs, i, ch) {
		const char *type = jstr(ch, "type"), *url = jstr(ch, "url"), *token = jstr(ch, "token");
		if (type == NULL || strcmp(type, want) != 0 || url == NULL || token == NULL)
			continue;
		if (!acme_challenge_ready(a, z, token)) {
			acme_fail(a, "cannot prepare the %s answer for %s", want, z->name);
			return;
		}
		z->challenge = xstrdup(url);
		a->authz_i++;
		acme_authz_pass(a);
		return;
	}
	acme_fail(a, "the CA offers no %s challenge for %s", want, z->name);
}

/* CHALLENGE: the challenge object came back; the authorization tells. */
static void acme_challenge_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	a->authz_i++;
	acme_authz_pass(a);
}

/* AUTHZ_POLL */
static void acme_authz_poll_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	if (j == NULL) {
		acme_fail(a, "authorization: no JSON");
		return;
	}
	if (a->poll_delay == 0 || acme_poll_delay(r) < a->poll_delay)
		a->poll_delay = acme_poll_delay(r);
	if (!acme_authz_status(a, &a->authz[a->authz_i], j))
		return;
	a->authz_i++;
	acme_authz_pass(a);
}

/* The next request of the pass under way, or the next pass. */
static void acme_authz_pass(struct acme *a)
{
	const char *want = a->http01 ? "http-01" : "tls-alpn-01";

	switch (a->state) {
	case ACME_AUTHZ:
		if (a->authz_i < a->nauthz) {
			acme_post(a, a->authz[a->authz_i].url, NULL, acme_authz_cb);
			return;
		}
		acme_set_state(a, ACME_CHALLENGE);
		a->authz_i = 0;
		/* fall through */
	case ACME_CHALLENGE:
		while (a->authz_i < a->nauthz && a->authz[a->authz_i].challenge == NULL)
			a->authz_i++;
		if (a->authz_i < a->nauthz) {
			struct acme_authz *z = &a->authz[a->authz_i];
			log_acme_challenge(a, z, want);
			acme_post(a, z->challenge, json_object(), acme_challenge_cb);
			return;
		}
		/* The CA looks now; the first round of polls after a while. */
		acme_set_state(a, ACME_AUTHZ_POLL);
		a->authz_i = 0;
		a->polls = 0;
		a->poll_delay = 0;
		acme_arm(a, ACME_POLL_DEFAULT_S);
		return;
	case ACME_AUTHZ_POLL:
		/* A round: each authorization not yet valid, once. */
		while (a->authz_i < a->nauthz && a->authz[a->authz_i].valid)
			a->authz_i++;
		if (a->authz_i < a->nauthz) {
			acme_post(a, a->authz[a->authz_i].url, NULL, acme_authz_poll_cb);
			return;
		}
		for (size_t i = 0; i < a->nauthz; i++) {
			if (a->authz[i].valid)
				continue;
			if (++a->polls > ACME_POLLS_MAX) {
				acme_fail(a, "authorization for %s still not valid after %u polls", a->authz[i].name,
					  ACME_POLLS_MAX);
				return;
			}
			/* Another round after the shortest Retry-After of this one. */
			a->authz_i = 0;
			acme_arm(a, a->poll_delay ? a->poll_delay : ACME_POLL_DEFAULT_S);
			a->poll_delay = 0;
			return;
		}
		break;
	default:
		return;
	}
	acme_answers_clear(a);
	acme_finalize(a);
}

static void acme_order_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	json_t *authz = json_object_get(j, "authorizations");
	const char *fin = jstr(j, "finalize");
	size_t i;
	json_t *v;

	if (r->location == NULL || fin == NULL || !json_is_array(authz) || json_array_size(authz) > ACME_DOMAINS_MAX) {
		acme_fail(a, "newOrder: no Location, finalize or authorizations");
		return;
	}
	a->order_url = xstrdup(r->location);
	a->finalize_url = xstrdup(fin);
	a->authz = xcalloc(json_array_size(authz) + 1, sizeof(*a->authz));
	json_array_foreach(authz, i, v) {
		if (!json_is_string(v)) {
			acme_fail(a, "newOrder: an authorization that is not a URL");
			return;
		}
		a->authz[a->nauthz++].url = xstrdup(json_string_value(v));
	}
	log_acme_order(a);
	a->authz_i = 0;
	acme_set_state(a, ACME_AUTHZ);
	acme_authz_pass(a);
}

static void acme_account_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	if (r->location == NULL) {
		acme_fail(a, "newAccount: no Location");
		return;
	}
	free(a->kid);
	a->kid = xstrdup(r->location);
	log_acme_account(a, r->status);
	json_t *ids = json_array();
	for (size_t i = 0; i < a->ndomains; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type", "dns", "value", a->domains[i]));
	acme_set_state(a, ACME_ORDER);
	acme_post(a, a->url_order, json_pack("{s:o}", "identifiers", ids), acme_order_cb);
}

static void acme_directory_cb(const struct acme_http_reply *r, void *arg)
{
	struct acme *a = arg;
	json_t *j;

	if (r->status != 200) {
		acme_fail(a, "directory %s: %s", a->cfg->acme_directory, r->status ? "not 200" : r->error);
		return;
	}
	j = json_loadb(r->body, r->len, 0, NULL);
	const char *nonce = jstr(j, "newNonce"), *account = jstr(j, "newAccount"), *order = jstr(j, "newOrder");
	if (nonce == NULL || account == NULL || order == NULL) {
		json_decref(j);
		acme_fail(a, "directory %s lacks newNonce, newAccount or newOrder", a->cfg->acme_directory);
		return;
	}
	free(a->url_nonce);
	free(a->url_account);
	free(a->url_order);
	a->url_nonce = xstrdup(nonce);
	a->url_account = xstrdup(account);
	a->url_order = xstrdup(order);
	json_decref(j);

	/* RFC 8555 7.3: the same key finds the existing account (200). */
	json_t *p = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (a->cfg->acme_email[0]) {
		char *mailto = xasprintf("mailto:%s", a->cfg->acme_email);
		json_object_set_new(p, "contact", json_pack("[s]", mailto));
		free(mailto);
	}
	free(a->kid);
	a->kid = NULL;   /* newAccount is signed with the jwk */
	acme_set_state(a, ACME_ACCOUNT);
	acme_post(a, a->url_account, p, acme_account_cb);
}

static void acme_begin(struct acme *a)
{
	acme_order_clear(a);
	free(a->nonce);
	a->nonce = NULL;
	acme_set_state(a, ACME_DIRECTORY);
	if (!acme_http_request(a->http, "GET", a->cfg->acme_directory, NULL, NULL, 0, acme_directory_cb, a))
		acme_fail(a, "directory %s is not an https URL", a->cfg->acme_directory);
}

/* ---- the certificate: saved, installed, renewed -------------------------------- */

/* notAfter as Unix time. */
static int64_t acme_not_after(X509 *x)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* Does x cover every name we want? */
static bool acme_covers(const struct acme *a, X509 *x)
{
	for (size_t i = 0; i < a->ndomains; i++)
		if (X509_check_host(x, a->domains[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) != 1)
			return false;
	return true;
}

/* The renewal timer, or an order now when it is due. */
static void acme_schedule(struct acme *a, int64_t not_after)
{
	int64_t due = not_after - (int64_t)a->cfg->acme_renew_before - now_unix();
	if (due <= 0) {
		acme_begin(a);
		return;
	}
	acme_set_state(a, ACME_IDLE);
	log_acme_renewal(a, (uint64_t)due);
	acme_arm(a, (uint64_t)due);
}

struct acme_save_job {
	struct acme *a;                 /* NULL once acme_free ran */
	char *path, *tmp, *dir;
	char *data;
	int err;
};

/* Worker thread: temporary file 0600, fsync, rename, directory fsync, so
 * that a crash leaves the old file or the whole new one, and the key is
 * never readable by others. */
static void acme_save_work(void *arg)
{
	struct acme_save_job *j = arg;
	size_t n = strlen(j->data);
	int fd;

	unlink(j->tmp);
	fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !write_all(fd, j->data, n) || fsync(fd) != 0) {
		j->err = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
		unlink(j->tmp);
		return;
	}
	if (close(fd) != 0 || rename(j->tmp, j->path) != 0 || !dir_sync(j->dir)) {
		j->err = errno ? errno : EIO;
		unlink(j->tmp);
	}
}

/* Put key + chain into the TLS store; the not-after, or 0 on failure
 * (*err set). */
static int64_t acme_install(struct acme *a, EVP_PKEY *key, const char *pem, size_t len, char **err)
{
	if (!tls_ctx_set_cert(a->t->tls, "acme", key, pem, len, err))
		return 0;
	return acme_not_after(tls_ctx_get_cert(a->t->tls, "acme"));
}

static void acme_save_done(void *arg)
{
	struct acme_save_job *j = arg;
	struct acme *a = j->a;

	if (a) {
		a->saving = NULL;
		if (j->err) {
			acme_fail(a, "cannot write %s: %s", j->path, strerror(j->err));
		} else {
			/* The file holds the key, then the chain. */
			EVP_PKEY *key = acme_key_from_pem(j->data, strlen(j->data));
			char *err = NULL;
			int64_t na = key ? acme_install(a, key, j->data, strlen(j->data), &err) : 0;
			EVP_PKEY_free(key);
			if (na == 0) {
				acme_fail(a, "the new certificate: %s", err ? err : "unreadable");
			} else {
				char issuer[256] = "";
				X509_NAME_oneline(X509_get_issuer_name(tls_ctx_get_cert(a->t->tls, "acme")), issuer,
						  sizeof(issuer));
				log_acme_issued(a, issuer, na);
				a->failures = 0;
				acme_order_clear(a);
				acme_schedule(a, na);
			}
			free(err);
		}
	}
	free(j->path);
	free(j->tmp);
	free(j->dir);
	free(j->data);
	free(j);
}

static void acme_certificate_cb(struct acme *a, const struct acme_http_reply *r, json_t *j)
{
	char *key_pem;
	struct acme_save_job *job;

	if (r->len == 0 || strstr(r->body, "-----BEGIN CERTIFICATE-----") == NULL) {
		acme_fail(a, "the certificate download is not a PEM chain");
		return;
	}
	key_pem = acme_key_pem(a->cert_key);
	job = xcalloc(1, sizeof(*job));
	job->a = a;
	job->path = xstrdup(a->cert_path);
	job->tmp = xasprintf("%s.tmp", a->cert_path);
	job->dir = xstrdup(a->dir);
	job->data = xasprintf("%s%s", key_pem, r->body);
	free(key_pem);
	a->saving = job;
	acme_set_state(a, ACME_SAVE);
	workers_submit(a->t->commit_pool, acme_save_work, acme_save_done, job);
}

static void acme_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme *a = arg;
	switch (a->state) {
	case ACME_AUTHZ_POLL:
		acme_authz_pass(a);
		break;
	case ACME_ORDER_POLL:
		acme_post(a, a->order_url, NULL, acme_order_poll_cb);
		break;
	case ACME_IDLE:
	case ACME_RETRY:
		acme_begin(a);
		break;
	default:
		break;
	}
}

/* ---- start and stop -------------------------------------------------------- */

/* [acme] domains, or the hostname and mta-sts.D, autoconfig.D of every
 * local domain (the names tern serves over HTTPS and TLS). */
static void acme_domains(struct acme *a)
{
	const struct config *c = a->cfg;
	size_t cap = c->acme_domains.n ? c->acme_domains.n : 1 + 2 * c->local_domains.n;

	a->domains = xcalloc(cap, sizeof(char *));
	if (c->acme_domains.n) {
		for (size_t i = 0; i < c->acme_domains.n; i++)
			a->domains[a->ndomains++] = xstrdup(c->acme_domains.v[i]);
	} else {
		a->domains[a->ndomains++] = xstrdup(c->hostname);
		for (size_t i = 0; i < c->local_domains.n; i++) {
			a->domains[a->ndomains++] = xasprintf("mta-sts.%s", c->local_domains.v[i]);
			a->domains[a->ndomains++] = xasprintf("autoconfig.%s", c->local_domains.v[i]);
		}
	}
	for (size_t i = 0; i < a->ndomains; i++)
		for (char *p = a->domains[i]; *p; p++)
			*p = ascii_lower(*p);
	/* Duplicates (the hostname is also autoconfig.D, say) go. */
	for (size_t i = 1; i < a->ndomains; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(a->domains[i], a->domains[k]) == 0) {
				free(a->domains[i]);
				a->domains[i--] = a->domains[--a->ndomains];
				break;
			}
}

struct acme *acme_new(struct tern *t, char **err)
{
	const struct config *c = t->cfg;
	struct acme *a;
	char *path;

	*err = NULL;
	if (c->acme_directory[0] == '\0' || t->tls == NULL)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->t = t;
	a->cfg = c;
	a->http01 = strcmp(c->acme_challenge, "http-01") == 0;
	a->dir = xasprintf("%s/acme", c->state_dir);
	a->cert_path = xasprintf("%s/cert.pem", a->dir);
	acme_domains(a);
	if (a->ndomains > ACME_DOMAINS_MAX) {
		*err = xasprintf("[acme] %zu names, more than %d", a->ndomains, ACME_DOMAINS_MAX);
		goto fail;
	}
	if (!mkdir_p(a->dir, 0700)) {
		*err = xasprintf("cannot create %s: %s", a->dir, strerror(errno));
		goto fail;
	}
	path = xasprintf("%s/account.key", a->dir);
	a->account_key = acme_key_load_or_make(path, err);
	free(path);
	if (a->account_key == NULL)
		goto fail;
	a->alpn_key = acme_key_new();
	a->http = acme_http_new(t->base, t->dns, c->acme_ca_file, err);
	if (a->alpn_key == NULL || a->http == NULL)
		goto fail;
	a->timer = evtimer_new(t->base, acme_timer_cb, a);
	return a;
fail:
	if (*err == NULL)
		*err = xstrdup("cannot set up ACME");
	acme_free(a);
	return NULL;
}

/* The saved certificate, into the store; its not-after, 0 when there is
 * none usable. */
static int64_t acme_load(struct acme *a)
{
	FILE *f = fopen(a->cert_path, "re");
	char *buf, *err = NULL;
	size_t n;
	EVP_PKEY *key;
	int64_t na;

	if (f == NULL) {
		if (errno != ENOENT)
			log_acme_unreadable(a, strerror(errno));
		return 0;
	}
	buf = xmalloc(ACME_CERT_FILE_MAX + 1);
	n = fread(buf, 1, ACME_CERT_FILE_MAX, f);
	fclose(f);
	buf[n] = '\0';
	key = acme_key_from_pem(buf, n);
	na = key ? acme_install(a, key, buf, n, &err) : 0;
	if (na == 0)
		log_acme_unreadable(a, err ? err : "no private key");
	EVP_PKEY_free(key);
	free(err);
	free(buf);
	return na;
}

void acme_start(struct acme *a)
{
	int64_t na;
	bool covers;

	if (a == NULL)
		return;
	na = acme_load(a);
	if (na == 0) {
		acme_begin(a);
		return;
	}
	covers = acme_covers(a, tls_ctx_get_cert(a->t->tls, "acme"));
	log_acme_loaded(a, na, covers);
	if (!covers) {
		acme_begin(a);
		return;
	}
	acme_schedule(a, na);
}

void acme_free(struct acme *a)
{
	if (a == NULL)
		return;
	if (a->saving)
		a->saving->a = NULL;
	acme_http_free(a->http);
	acme_order_clear(a);
	if (a->timer)
		event_free(a->timer);
	for (size_t i = 0; i < a->ndomains; i++)
		free(a->domains[i]);
	free(a->domains);
	EVP_PKEY_free(a->account_key);
	EVP_PKEY_free(a->alpn_key);
	free(a->url_nonce);
	free(a->url_account);
	free(a->url_order);
	free(a->kid);
	free(a->nonce);
	free(a->dir);
	free(a->cert_path);
	free(a);
}

const char *acme_http01_answer(const struct acme *a, const char *host, const char *token, size_t len)
{
	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < a->ntokens; i++)
		if (strlen(a->tokens[i].token) == len && memcmp(a->tokens[i].token, token, len) == 0 &&
		    strcmp(a->tokens[i].name, host) == 0)
			return a->tokens[i].key_authz;
	return NULL;
}

bool acme_orders_name(const struct acme *a, const char *name)
{
	if (a == NULL)
		return false;
	for (size_t i = 0; i < a->ndomains; i++)
		if (strcmp(a->domains[i], name) == 0)
			return true;
	return false;
}
