/*
 * remote.c - remote delivery (see remote.h).
 *
 * A "delivery" is one message for one destination: it owns a connection
 * slot while it resolves and tries hosts, and hands its connection on
 * (to a delivery waiting for the same destination, or to the idle list)
 * when its transaction is done.  DNS answers come back by request id; a
 * delivery cancels its request if it goes first.
 *
 * Loops (DESIGN.md): a destination is tern itself when the host name is
 * our [server] hostname or the address and port are one of our listeners;
 * such hosts are skipped, and mail that has nowhere else to go bounces
 * with 5.4.6 (RFC 5321 §5.1).
 *
 * When no host took the mail: a 5xx to the greeting, EHLO or HELO from
 * every address tried is permanent and the recipients bounce with that
 * reply; any 4xx, network failure or DNS lookup that failed temporarily
 * makes it a deferral (RFC 5321 §5.1: the next MX after a 5xx greeting;
 * §3.1, §4.2.5).
 *
 * STARTTLS is opportunistic unless [delivery] tls_required names the
 * destination: when the handshake breaks, the same address is tried once
 * more in plain text without STARTTLS (as Postfix does); a refused
 * STARTTLS goes on in plain text on the same connection (smtp_client.c).
 * An address whose handshake broke is remembered for TLS_MEMO_TTL, and
 * connections to it go without STARTTLS till then, rather than paying a
 * broken handshake and a second connection for every message.
 *
 * DSN (RFC 3461 §4.2): a next hop that supports DSN and was given our
 * NOTIFY takes over the notices for its recipients, so no "relayed"
 * notice comes from us; without DSN there, NOTIFY=SUCCESS gets one.
 */
#include "delivery/remote.h"
#include "core/listener.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "core/dns.h"
#include "delivery/delivery_log.h"
#include "delivery/mx.h"
#include "proto/smtp_parse.h"
#include "smtp/smtp_client.h"
#include "store/queue.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMARTHOST_KEY "[smarthost]"
#define TLS_MEMO_MAX 256		/* addresses remembered for a broken handshake */
#define TLS_MEMO_TTL 3600		/* seconds */

/* An address (and port) whose STARTTLS handshake broke, until when. */
struct tls_memo {
	struct sockaddr_storage addr;
	int64_t until;
};

struct rdest;
struct rdelivery;

/* One open connection, busy with a delivery or idle. */
struct rconn {
	struct rconn *next;		/* in dest->idle */
	struct rdest *dest;
	struct smtp_client *client;
	struct rdelivery *del;		/* NULL while idle */
	char host[256];
	char relay[320];		/* "host[ip]:port" for the logs */
	struct event *idle_timer;
	bool reused;
	bool tls_required;		/* [delivery] tls_required for this destination */
	bool plain;			/* made without STARTTLS (after a TLS failure) */
	struct sockaddr_storage addr;
};

struct rdest {
	struct rdest *next;
	struct remote *r;
	char key[256];			/* lower-case domain, or SMARTHOST_KEY */
	unsigned slots;			/* connections open or being made */
	struct rconn *idle;
	struct rdelivery *wait_head, *wait_tail;
};

struct rjob {
	struct remote *r;
	struct queue_env *env;
	int fd;
	size_t open;			/* deliveries not finished */
	remote_done_cb cb;
	void *arg;
};

struct rdelivery {
	struct rdelivery *next;		/* in dest->wait */
	struct rjob *job;
	struct rdest *dest;
	size_t *idx;			/* env->rcpt indexes */
	struct smtp_client_rcpt *rc;
	size_t n;
	struct smtp_client_msg msg;
	uint64_t dns_id;
	struct dns_host *hosts;
	size_t nhosts, host_i, addr_i;
	bool tried_any;			/* a connection was attempted */
	bool saw_loop;
	bool plain_next;		/* the next connection goes without STARTTLS */
	bool dns_partial;		/* some host's address lookup failed temporarily */
	size_t ntemp, nperm;		/* failed attempts: temporary, 5xx at HELLO */
	unsigned perm_code;		/* the last 5xx at HELLO */
	char perm_status[12];
	char perm_host[256];
	unsigned last_code;
	char last_error[SMTP_CLIENT_TEXT_MAX];
	struct rconn *conn;
};

struct remote {
	struct tern *t;
	SSL_CTX *ssl_ctx;
	struct rdest *dests;
	unsigned slots;			/* all destinations */
	size_t deliveries;
	size_t quitting;		/* clients saying QUIT */
	bool stopping;
	char smarthost[256];
	unsigned smarthost_port;
	struct tls_memo tls_broken[TLS_MEMO_MAX];
};

static void del_try_next(struct rdelivery *d);
static void del_start(struct rdelivery *d);
static void del_resolve(struct rdelivery *d);
static void conn_release(struct rconn *c);

static void remote_quit_cb(struct smtp_client *client, enum smtp_client_event ev, void *arg)
{
	struct remote *r = arg;
	if (ev == SMTP_CLIENT_CLOSED)
		r->quitting--;
}

/* QUIT, and count the client until it is gone (shutdown waits for it). */
static void remote_quit(struct remote *r, struct smtp_client *client)
{
	r->quitting++;
	smtp_client_set_cb(client, remote_quit_cb, r);
	smtp_client_quit(client);
}

/* ---- logging ------------------------------------------------------------ */

static void log_remote_connect_out(const struct rdelivery *d, const struct rconn *c, uint64_t session_id,
				   bool skip_tls)
{
	log_event("event=connect_out session=%016" PRIx64 " queue=%s relay=%s%s", session_id, d->job->env->id,
		  c->relay, skip_tls ? " starttls=skipped reason=recent_handshake_failure" : "");
}

static void log_remote_config_error(const char *key, const char *error)
{
	log_event("event=config_error key=%s error=\"%s\"", key, error);
}

/* The next hop took over the DSN duty for this recipient (RFC 3461 §4.2). */
static void log_remote_notify_passed(const struct queue_env *env, const struct queue_rcpt *r, const char *relay)
{
	char to[600];

	log_event("event=notify_passed queue=%s to=%s relay=%s", env->id,
		  log_quote(to, sizeof(to), r->addr, strlen(r->addr)), relay);
}

/* ---- helpers ------------------------------------------------------------ */

bool remote_parse_smarthost(const char *s, char *host, size_t cap, unsigned *port)
{
	const char *h = s, *end, *colon = NULL;
	uint64_t p = 25;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL)
			return false;
		h = s + 1;
		if (end[1] == ':')
			colon = end + 1;
		else if (end[1] != '\0')
			return false;
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return false;	/* a bare IPv6 address needs brackets */
		end = colon ? colon : s + strlen(s);
	}
	if (end == h || (size_t)(end - h) >= cap)
		return false;
	if (colon && !parse_u64(colon + 1, strlen(colon + 1), 1, 65535, &p))
		return false;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	*port = (unsigned)p;
	return true;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool ss_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool ss_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* ---- addresses with a broken STARTTLS handshake ------------------------- */

static struct tls_memo *tls_memo_find(struct remote *r, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < TLS_MEMO_MAX; i++)
		if (r->tls_broken[i].until != 0 && ss_equal(&r->tls_broken[i].addr, ss))
			return &r->tls_broken[i];
	return NULL;
}

/* Remember ss; a full table gives up the entry that ends first. */
static void tls_memo_note(struct remote *r, const struct sockaddr_storage *ss, int64_t now)
{
	struct tls_memo *m = tls_memo_find(r, ss);

	for (size_t i = 0; m == NULL && i < TLS_MEMO_MAX; i++)
		if (r->tls_broken[i].until <= now)
			m = &r->tls_broken[i];
	for (size_t i = 0; m == NULL && i < TLS_MEMO_MAX; i++)
		if (i == 0 || r->tls_broken[i].until < m->until)
			m = &r->tls_broken[i];
	m->addr = *ss;
	m->until = now + TLS_MEMO_TTL;
}

/* STARTTLS is not tried at ss now. */
static bool tls_memo_broken(struct remote *r, const struct sockaddr_storage *ss, int64_t now)
{
	struct tls_memo *m = tls_memo_find(r, ss);
	return m && m->until > now;
}

/* Is this address and port one of our own listeners?  A wildcard
 * listener matches any local address of its family on its port. */
static bool is_own_address(const struct tern *t, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < t->nown_addrs; i++) {
		const struct sockaddr_storage *o = &t->own_addrs[i];
		if (o->ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)o, *b = (const void *)ss;
			if (a->sin_port == b->sin_port &&
			    (a->sin_addr.s_addr == b->sin_addr.s_addr || a->sin_addr.s_addr == htonl(INADDR_ANY)))
				return true;
		} else {
			const struct sockaddr_in6 *a = (const void *)o, *b = (const void *)ss;
			if (a->sin6_port == b->sin6_port &&
			    (!memcmp(&a->sin6_addr, &b->sin6_addr, 16) || IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)))
				return true;
		}
	}
	return false;
}

static bool domain_tls_required(const struct config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->tls_required.n; i++)
		if (strcasecmp(cfg->tls_required.v[i], key) == 0)
			return true;
	return false;
}

static void format_relay(char *out, size_t cap, const char *host, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
							: ((const struct sockaddr_in *)ss)->sin_port);

	listener_format_ip((const struct sockaddr *)ss, ip, sizeof(ip));
	snprintf(out, cap, "%.250s[%s]:%u", host, ip, port);
}

/* ---- destinations --------------------------------------------------------- */

static struct rdest *dest_get(struct remote *r, const char *key)
{
	struct rdest *d;

	for (d = r->dests; d; d = d->next)
		if (strcmp(d->key, key) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->r = r;
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->next = r->dests;
	r->dests = d;
	return d;
}

static bool dest_has_slot(const struct rdest *d)
{
	const struct config *cfg = d->r->t->cfg;
	return d->slots < cfg->max_connections_per_destination && d->r->slots < cfg->max_remote_connections;
}

static void slot_take(struct rdest *d)
{
	d->slots++;
	d->r->slots++;
}

static void slot_give(struct rdest *d)
{
	d->slots--;
	d->r->slots--;
}

/* A slot came free somewhere: start deliveries that wait for one. */
static void dests_kick(struct remote *r)
{
	for (struct rdest *d = r->dests; d; d = d->next) {
		while (d->wait_head && (d->idle || dest_has_slot(d))) {
			struct rdelivery *w = d->wait_head;
			d->wait_head = w->next;
			if (d->wait_head == NULL)
				d->wait_tail = NULL;
			w->next = NULL;
			del_start(w);
		}
	}
}

/* At the total limit, an idle connection elsewhere gives its slot up. */
static bool dests_close_one_idle(struct remote *r)
{
	for (struct rdest *d = r->dests; d; d = d->next)
		if (d->idle) {
			struct rconn *c = d->idle;
			d->idle = c->next;
			event_free(c->idle_timer);
			remote_quit(r, c->client);
			slot_give(d);
			free(c);
			return true;
		}
	return false;
}

/* ---- finishing a delivery ------------------------------------------------ */

static void job_finish_one(struct rjob *j)
{
	if (--j->open > 0)
		return;
	j->r->deliveries--;
	j->cb(j->arg);
	free(j);
}

static void del_free(struct rdelivery *d)
{
	if (d->dns_id)
		dns_cancel(d->job->r->t->dns, d->dns_id);
	for (size_t i = 0; i < d->nhosts; i++)
		free(d->hosts[i].addrs);
	free(d->hosts);
	free(d->idx);
	free(d->rc);
	free(d);
}

/* Write the client's per-recipient results into the envelope.
 * next_hop_dsn: the peer that accepted them advertised DSN. */
static void del_apply_results(struct rdelivery *d, const char *host, const char *relay, bool next_hop_dsn)
{
	struct queue_env *env = d->job->env;

	for (size_t i = 0; i < d->n; i++) {
		struct queue_rcpt *r = &env->rcpt[d->idx[i]];
		const struct smtp_client_rcpt *c = &d->rc[i];
		unsigned cls = c->code / 100;

		r->attempts++;
		r->state = cls == 2 ? RCPT_DONE : cls == 5 ? RCPT_FAILED : RCPT_DEFERRED;
		free(r->status);
		free(r->last_reply);
		free(r->remote_mta);
		r->status = xstrdup(c->status[0] ? c->status : "4.0.0");
		r->last_reply = xstrdup(c->reply[0] ? c->reply : "451 4.0.0 no result");
		r->remote_mta = host ? xstrdup(host) : NULL;
		delivery_log_result(env, r, relay, cls == 2 ? "sent" : cls == 5 ? "bounced" : "deferred",
				    r->status, r->last_reply);
		/* NOTIFY went along (smtp_client.c sends it whenever the peer
		 * has DSN and it is set): the notices are the next hop's. */
		if (cls == 2 && next_hop_dsn && r->notify != 0 && !r->dsn_done) {
			r->dsn_done = true;
			log_remote_notify_passed(env, r, relay);
		}
	}
}

/* Every recipient gets one result (DNS, routing, no host reachable). */
static void del_fail_all(struct rdelivery *d, unsigned code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void del_fail_all(struct rdelivery *d, unsigned code, const char *status, const char *fmt, ...)
{
	char text[SMTP_CLIENT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < d->n; i++) {
		d->rc[i].code = code;
		snprintf(d->rc[i].status, sizeof(d->rc[i].status), "%s", status);
		snprintf(d->rc[i].reply, sizeof(d->rc[i].reply), "%s", text);
	}
}

/* The delivery is over without a connection to hand on. */
static void del_done(struct rdelivery *d, const char *host, const char *relay)
{
	struct rjob *j = d->job;
	struct remote *r = j->r;

	del_apply_results(d, host, relay, false);
	del_free(d);
	job_finish_one(j);
	dests_kick(r);
}

/* ---- connections ------------------------------------------------------------ */

static void conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;
	struct rdest *d = c->dest;

	for (struct rconn **pp = &d->idle; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	event_free(c->idle_timer);
	remote_quit(d->r, c->client);
	slot_give(d);
	free(c);
	dests_kick(d->r);
}

static void conn_client_cb(struct smtp_client *client, enum smtp_client_event ev, void *arg);

/* Transaction finished on a healthy connection: the next delivery that
 * waits for this destination takes it, or it idles a little. */
static void conn_release(struct rconn *c)
{
	struct rdest *d = c->dest;
	struct remote *r = d->r;
	struct timeval tv = { (time_t)r->t->cfg->reuse_idle, 0 };

	c->del = NULL;
	if (d->wait_head && !r->stopping) {
		struct rdelivery *w = d->wait_head;
		d->wait_head = w->next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		w->next = NULL;
		w->conn = c;
		c->del = w;
		c->reused = true;
		smtp_client_send(c->client, &w->msg);
		return;
	}
	if (r->stopping || r->t->cfg->reuse_idle == 0) {
		remote_quit(r, c->client);
		slot_give(d);
		free(c);
		dests_kick(r);
		return;
	}
	c->idle_timer = evtimer_new(r->t->base, conn_idle_cb, c);
	evtimer_add(c->idle_timer, &tv);
	c->next = d->idle;
	d->idle = c;
}

static void conn_on_txn_done(struct rconn *c)
{
	struct rdelivery *d = c->del;
	bool broken = true;

	/* A connection that broke mid-transaction left 421 4.4.2 on every
	 * open recipient; on a reused connection that is no verdict on the
	 * message, so the delivery starts over on a fresh connection. */
	for (size_t i = 0; i < d->n; i++)
		if (d->rc[i].code != 421 || strcmp(d->rc[i].status, "4.4.2") != 0)
			broken = false;
	if (broken && c->reused) {
		smtp_client_free(c->client);
		d->conn = NULL;
		free(c);	/* the slot stays with the delivery */
		d->host_i = d->addr_i = 0;
		d->tried_any = d->plain_next = false;
		d->ntemp = d->nperm = 0;
		if (d->hosts)
			del_try_next(d);
		else
			del_resolve(d);
		return;
	}
	del_apply_results(d, c->host, c->relay, smtp_client_caps(c->client)->dsn);
	d->conn = NULL;
	{
		struct rjob *j = d->job;
		del_free(d);
		job_finish_one(j);
	}
	if (broken) {
		smtp_client_free(c->client);
		slot_give(c->dest);
		dests_kick(c->dest->r);
		free(c);
		return;
	}
	conn_release(c);
}

/* A failed set-up: is it a 5xx at HELLO (permanent for this host), a
 * broken TLS handshake worth one plain-text try, or temporary? */
static void del_count_failure(struct rdelivery *d, const struct rconn *c, const struct smtp_client *client)
{
	enum smtp_client_fail kind = smtp_client_fail_kind(client);
	unsigned code = d->last_code;

	if (kind == SMTP_CLIENT_FAIL_TLS && !c->plain && !c->tls_required) {
		smtp_client_log_tls_fallback(client, d->job->env->id, "reconnect_plaintext", d->last_error);
		tls_memo_note(d->job->r, &c->addr, now_unix());
		d->plain_next = true;
		d->addr_i--;		/* del_try_next() takes the same address again */
		return;
	}
	if (kind == SMTP_CLIENT_FAIL_HELLO && code >= 500 && code < 600) {
		d->nperm++;
		d->perm_code = code;
		snprintf(d->perm_status, sizeof(d->perm_status), "%s", smtp_client_error_status(client));
		if (d->perm_status[0] != '5')
			snprintf(d->perm_status, sizeof(d->perm_status), "5.0.0");
		snprintf(d->perm_host, sizeof(d->perm_host), "%s", c->host);
		return;
	}
	d->ntemp++;
}

static void conn_client_cb(struct smtp_client *client, enum smtp_client_event ev, void *arg)
{
	struct rconn *c = arg;
	struct rdelivery *d = c->del;
	const char *text;
	unsigned code;

	switch (ev) {
	case SMTP_CLIENT_READY:
		smtp_client_send(client, &d->msg);
		break;
	case SMTP_CLIENT_TXN_DONE:
		conn_on_txn_done(c);
		break;
	case SMTP_CLIENT_FAILED:
		code = smtp_client_error(client, &text);
		d->last_code = code;
		snprintf(d->last_error, sizeof(d->last_error), "%s", text);
		del_count_failure(d, c, client);
		smtp_client_free(client);
		d->conn = NULL;
		free(c);
		del_try_next(d);	/* the slot stays with the delivery */
		break;
	case SMTP_CLIENT_CLOSED:
		/* An idle connection went away. */
		if (d == NULL) {
			struct rdest *dst = c->dest;
			for (struct rconn **pp = &dst->idle; *pp; pp = &(*pp)->next)
				if (*pp == c) {
					*pp = c->next;
					break;
				}
			event_free(c->idle_timer);
			smtp_client_free(client);
			slot_give(dst);
			free(c);
			dests_kick(dst->r);
		}
		break;
	}
}

/* ---- trying hosts ------------------------------------------------------- */

static void del_connect(struct rdelivery *d, const struct dns_host *h, const struct sockaddr_storage *ss)
{
	struct remote *r = d->job->r;
	const struct config *cfg = r->t->cfg;
	bool smarthost = strcmp(d->dest->key, SMARTHOST_KEY) == 0;
	bool tls_required = domain_tls_required(cfg, smarthost ? r->smarthost : d->dest->key);
	bool skip_tls = !tls_required && !d->plain_next && r->ssl_ctx && tls_memo_broken(r, ss, now_unix());
	bool plain = d->plain_next || skip_tls;
	struct smtp_client_opts o = {
		.helo = cfg->hostname,
		.peer_name = h->name,
		.ssl_ctx = plain ? NULL : r->ssl_ctx,
		.tls_required = tls_required,
		.auth_user = smarthost && cfg->smarthost_user[0] ? cfg->smarthost_user : NULL,
		.auth_pass = cfg->smarthost_password,
		.auth_in_clear = ss_is_loopback(ss),
		.timeout_cap = cfg->client_timeout,
		.session_id = tern_session_id(r->t),
	};
	struct rconn *c = xcalloc(1, sizeof(*c));

	c->dest = d->dest;
	c->del = d;
	c->tls_required = o.tls_required;
	c->plain = plain;
	c->addr = *ss;
	d->plain_next = false;
	snprintf(c->host, sizeof(c->host), "%s", h->name);
	format_relay(c->relay, sizeof(c->relay), h->name, ss);
	d->conn = c;
	d->tried_any = true;
	log_remote_connect_out(d, c, o.session_id, skip_tls);
	c->client = smtp_client_new(r->t->base, (const struct sockaddr *)ss, ss_len(ss), &o, conn_client_cb, c);
	if (c->client == NULL) {
		d->conn = NULL;
		free(c);
		d->ntemp++;
		snprintf(d->last_error, sizeof(d->last_error), "cannot create a socket");
		del_try_next(d);
	}
}

/* The next address of this host, then the next host; when none is left,
 * the recipients are deferred (or bounced when only loops were found). */
static void del_try_next(struct rdelivery *d)
{
	struct remote *r = d->job->r;
	unsigned port = strcmp(d->dest->key, SMARTHOST_KEY) == 0 ? r->smarthost_port : r->t->cfg->remote_port;

	while (d->host_i < d->nhosts && !r->stopping) {
		struct dns_host *h = &d->hosts[d->host_i];

		if (d->addr_i >= h->naddrs || (h->name[0] && strcasecmp(h->name, r->t->cfg->hostname) == 0)) {
			if (d->addr_i < h->naddrs)
				d->saw_loop = true;
			d->host_i++;
			d->addr_i = 0;
			continue;
		}
		struct sockaddr_storage ss = h->addrs[d->addr_i++];
		set_port(&ss, port);
		if (is_own_address(r->t, &ss)) {
			d->saw_loop = true;
			continue;
		}
		del_connect(d, h, &ss);
		return;
	}
	slot_give(d->dest);
	if (r->stopping) {
		del_fail_all(d, 421, "4.3.2", "421 4.3.2 delivery interrupted by shutdown");
	} else if (!d->tried_any && d->saw_loop) {
		del_fail_all(d, 554, "5.4.6", "554 5.4.6 mail for %s loops back to myself", d->dest->key);
	} else if (d->nperm > 0 && d->ntemp == 0 && !d->dns_partial) {
		/* Every address tried refused us with 5xx at HELLO. */
		del_fail_all(d, d->perm_code, d->perm_status, "%s", d->last_error);
		del_done(d, d->perm_host, d->dest->key);
		return;
	} else if (d->last_code >= 500 && d->last_code < 600 && d->last_error[0]) {
		/* Refused outright by the last one, but not by every
		 * host at HELLO: temporary for the message. */
		del_fail_all(d, 451, "4.4.0", "451 4.4.0 %s", d->last_error);
	} else {
		del_fail_all(d, 451, "4.4.1", "%s", d->last_error[0] ? d->last_error :
			     "451 4.4.1 no host could be reached");
	}
	del_done(d, NULL, d->dest->key);
}

static void del_dns_cb(const struct dns_mx_result *res, void *arg)
{
	struct rdelivery *d = arg;
	const char *key = d->dest->key;

	d->dns_id = 0;
	switch (res->status) {
	case DNS_OK:
		d->dns_partial = res->partial;
		d->nhosts = res->nhosts;
		d->hosts = xcalloc(res->nhosts ? res->nhosts : 1, sizeof(*d->hosts));
		for (size_t i = 0; i < res->nhosts; i++) {
			d->hosts[i] = res->hosts[i];
			d->hosts[i].addrs = xmalloc((res->hosts[i].naddrs ? res->hosts[i].naddrs : 1) *
						    sizeof(*d->hosts[i].addrs));
			memcpy(d->hosts[i].addrs, res->hosts[i].addrs, res->hosts[i].naddrs * sizeof(*d->hosts[i].addrs));
		}
		del_try_next(d);
		return;
	case DNS_NXDOMAIN:
		del_fail_all(d, 550, "5.1.2", "550 5.1.2 domain %s does not exist (%s)", key, res->detail);
		break;
	case DNS_NULL_MX:
		del_fail_all(d, 556, "5.1.10", "556 5.1.10 domain %s accepts no mail (null MX)", key);
		break;
	case DNS_NO_HOSTS:
		if (res->loops_to_self)
			del_fail_all(d, 554, "5.4.6", "554 5.4.6 mail for %s loops back to myself", key);
		else
			del_fail_all(d, 554, "5.4.4", "554 5.4.4 no usable host for %s (%s)", key, res->detail);
		break;
	case DNS_TEMPFAIL:
	default:
		del_fail_all(d, 451, "4.4.3", "451 4.4.3 DNS lookup for %s failed temporarily (%s)", key, res->detail);
		break;
	}
	slot_give(d->dest);
	del_done(d, NULL, key);
}

/* Take an idle connection, or a slot and resolve, or wait for either. */
static void del_start(struct rdelivery *d)
{
	struct rdest *dst = d->dest;
	struct remote *r = dst->r;

	if (dst->idle && !r->stopping) {
		struct rconn *c = dst->idle;
		dst->idle = c->next;
		c->next = NULL;
		event_free(c->idle_timer);
		c->idle_timer = NULL;
		c->del = d;
		c->reused = true;
		d->conn = c;
		smtp_client_send(c->client, &d->msg);
		return;
	}
	if (!dest_has_slot(dst) && !r->stopping && !(dests_close_one_idle(r) && dest_has_slot(dst))) {
		d->next = NULL;
		if (dst->wait_tail)
			dst->wait_tail->next = d;
		else
			dst->wait_head = d;
		dst->wait_tail = d;
		return;
	}
	slot_take(dst);
	del_resolve(d);
}

static void del_resolve(struct rdelivery *d)
{
	struct rdest *dst = d->dest;
	struct remote *r = dst->r;

	if (strcmp(dst->key, SMARTHOST_KEY) == 0) {
		d->dns_id = dns_host_lookup(r->t->dns, r->smarthost, del_dns_cb, d);
	} else {
		uint32_t seed;
		RAND_bytes((unsigned char *)&seed, sizeof(seed));
		d->dns_id = dns_mx_lookup(r->t->dns, dst->key, mx_prepare, r->t->cfg->hostname,
					  seed, del_dns_cb, d);
	}
}

/* ---- the public side ---------------------------------------------------- */

static void remote_empty_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rjob *j = arg;
	j->open = 1;
	job_finish_one(j);
}

/* The destination of an address: its domain, lower-cased. */
static void rcpt_domain(const char *addr, char *out, size_t cap)
{
	const char *at = strrchr(addr, '@');
	size_t o = 0;

	for (const char *p = at ? at + 1 : ""; *p && o + 1 < cap; p++)
		out[o++] = ascii_lower(*p);
	out[o] = '\0';
}

static struct rdelivery *del_new(struct rjob *j, struct rdest *dst)
{
	struct rdelivery *d = xcalloc(1, sizeof(*d));
	struct queue_env *env = j->env;

	d->job = j;
	d->dest = dst;
	d->idx = xcalloc(env->nrcpt, sizeof(*d->idx));
	d->rc = xcalloc(env->nrcpt, sizeof(*d->rc));
	d->msg.from = env->from;
	d->msg.ret = env->ret;
	d->msg.envid = env->envid;
	d->msg.fd = j->fd;
	d->msg.offset = env->msg_offset;
	d->msg.len = env->msg_len;
	d->msg.lines = env->msg_lines;
	d->msg.eight_bit = env->eight_bit;
	d->msg.dkim_signed = env->dkim_signed;
	d->msg.dkim8_len = env->dkim8_len;
	d->msg.dkim7_len = env->dkim7_len;
	d->msg.smtputf8 = env->smtputf8;
	d->msg.binary = env->body == SMTP_BODY_BINARYMIME;
	d->msg.rcpts = d->rc;
	return d;
}

static void del_add_rcpt(struct rdelivery *d, size_t i)
{
	const struct queue_rcpt *r = &d->job->env->rcpt[i];

	d->idx[d->n] = i;
	d->rc[d->n].addr = r->addr;
	d->rc[d->n].notify = r->notify;
	d->rc[d->n].orcpt = r->orcpt;
	d->n++;
	d->msg.nrcpts = d->n;
}

void remote_deliver(struct remote *r, struct queue_env *env, int fd, const bool *due,
		    remote_done_cb cb, void *arg)
{
	struct rjob *j = xcalloc(1, sizeof(*j));
	struct rdelivery **dels = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*dels));
	size_t ndels = 0;
	bool smarthost = r->smarthost[0] != '\0';

	j->r = r;
	j->env = env;
	j->fd = fd;
	j->cb = cb;
	j->arg = arg;
	r->deliveries++;
	/* All recipients for one destination go in one transaction. */
	for (size_t i = 0; i < env->nrcpt; i++) {
		char key[256];
		struct rdest *dst;
		size_t k;

		if (!due[i])
			continue;
		if (smarthost)
			snprintf(key, sizeof(key), "%s", SMARTHOST_KEY);
		else
			rcpt_domain(env->rcpt[i].addr, key, sizeof(key));
		dst = dest_get(r, key);
		for (k = 0; k < ndels && dels[k]->dest != dst; k++)
			;
		if (k == ndels)
			dels[ndels++] = del_new(j, dst);
		del_add_rcpt(dels[k], i);
	}
	j->open = ndels;
	if (ndels == 0) {
		event_base_once(r->t->base, -1, EV_TIMEOUT, remote_empty_cb, j, NULL);
		free(dels);
		return;
	}
	/* Start them only now: a delivery that fails at once must not
	 * finish the job while others are still being set up. */
	j->open++;
	for (size_t k = 0; k < ndels; k++) {
		if (dels[k]->dest->key[0] == '\0') {
			del_fail_all(dels[k], 550, "5.1.3", "550 5.1.3 recipient address has no domain");
			del_done(dels[k], NULL, "none");
		} else {
			del_start(dels[k]);
		}
	}
	free(dels);
	j->open--;
	if (j->open == 0)
		event_base_once(r->t->base, -1, EV_TIMEOUT, remote_empty_cb, j, NULL);
}

struct remote *remote_new(struct tern *t)
{
	struct remote *r = xcalloc(1, sizeof(*r));

	r->t = t;
	r->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (r->ssl_ctx) {
		/* Opportunistic TLS (RFC 3207 §4.1 allows it; RFC 7435): a
		 * certificate is not checked, so any TLS beats plain text. */
		SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION);
	}
	if (t->cfg->smarthost[0] &&
	    !remote_parse_smarthost(t->cfg->smarthost, r->smarthost, sizeof(r->smarthost), &r->smarthost_port)) {
		log_remote_config_error("relay.smarthost", "malformed, expected [host]:port");
		r->smarthost[0] = '\0';
	}
	return r;
}

void remote_shutdown(struct remote *r)
{
	r->stopping = true;
	for (struct rdest *d = r->dests; d; d = d->next)
		while (d->idle) {
			struct rconn *c = d->idle;
			d->idle = c->next;
			event_free(c->idle_timer);
			remote_quit(r, c->client);
			slot_give(d);
			free(c);
		}
}

bool remote_idle(const struct remote *r)
{
	return r->deliveries == 0 && r->quitting == 0;
}

void remote_free(struct remote *r)
{
	if (r == NULL)
		return;
	remote_shutdown(r);
	while (r->dests) {
		struct rdest *d = r->dests;
		r->dests = d->next;
		free(d);
	}
	if (r->ssl_ctx)
		SSL_CTX_free(r->ssl_ctx);
	free(r);
}
