/*
 * dns.c - c-ares inside the libevent loop: MX lookups (RFC 5321 §5.1,
 * RFC 7505; the caller orders the records), A/AAAA host lookups and
 * forward-confirmed PTR.
 *
 * c-ares tells us through its socket-state callback which sockets to watch;
 * each gets a persistent libevent event that calls ares_process_fd(), and
 * one timer follows ares_timeout() for retries and timeouts.  Each request
 * counts its outstanding c-ares queries; when the count reaches zero the
 * result is built and the request's own event is activated, so the user's
 * callback runs from the loop, outside any c-ares or dns_* call.
 */
#include "core/dns.h"

#include "core/util.h"

#include <ares.h>
#include <arpa/inet.h>
#include <assert.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct dns_sock {
	struct dns *d;
	ares_socket_t fd;
	struct event *ev;
	struct dns_sock *next;
};

enum dns_req_kind { DNS_REQ_MX, DNS_REQ_HOST, DNS_REQ_PTR, DNS_REQ_A, DNS_REQ_RR };

/* Lookup state of one host while its A and AAAA queries run. */
struct dns_hstate {
	bool tempfail, nxdomain, cname;
	size_t n4, n6;
	struct sockaddr_in a4[DNS_ADDRS_MAX];
	struct sockaddr_in6 a6[DNS_ADDRS_MAX];
};

struct dns_req {
	struct dns *d;
	uint64_t id;
	enum dns_req_kind kind;
	bool cancelled;
	unsigned pending;		/* outstanding c-ares queries */
	struct event *done_ev;
	dns_mx_cb mx_cb;
	dns_ptr_cb ptr_cb;
	dns_rr_cb rr_cb;
	struct dns_rr_result rr_res;	/* RR: built from the answer */
	struct dns_rr *rr;		/* its records, rr_cap allocated */
	size_t rr_cap;
	dns_a_cb a_cb;
	struct dns_a_result a_res;	/* A: the answer */
	void *arg;
	struct dns_mx_result res;	/* MX and host: built at the end */
	size_t nh;			/* hosts being looked up */
	struct dns_mx_record *mx;	/* their names and preferences */
	struct dns_hstate *hs;
	bool follow_cname;
	char *qname;			/* the domain or host asked for */
	dns_mx_order_fn order;		/* MX: the caller's ordering step, or NULL */
	char *self;			/* MX: our hostname, or NULL */
	uint32_t seed;
	struct sockaddr_storage ptr_addr;	/* PTR: the address asked */
	size_t nptr;
	char *ptr_names[DNS_PTR_NAMES_MAX];	/* its names, in the answer's order */
	bool ptr_ok[DNS_PTR_NAMES_MAX];		/* each one's forward confirmation */
	struct dns_req *prev, *next;
};

/* One c-ares query in flight. */
struct dns_query {
	struct dns_req *req;
	size_t host;
	int type;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct dns_sock *socks;
	struct dns_req *reqs;
	uint64_t next_id;
	bool destroying;
};

const char *dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK: return "ok";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_NULL_MX: return "null-mx";
	case DNS_NO_HOSTS: return "no-hosts";
	case DNS_TEMPFAIL: return "tempfail";
	}
	return "unknown";
}

/* ---- driving c-ares from libevent ---- */

static void dns_timer_update(struct dns *d)
{
	struct timeval tv;

	if (ares_timeout(d->channel, NULL, &tv) != NULL)
		evtimer_add(d->timer, &tv);
	else
		evtimer_del(d->timer);
}

static void dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(d);
}

static void dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(d);
}

static void dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp, *s;

	for (pp = &d->socks; *pp != NULL && (*pp)->fd != fd; pp = &(*pp)->next)
		;
	s = *pp;
	if (s != NULL) {
		event_free(s->ev);	/* safe even from inside its own callback */
		if (!readable && !writable) {
			*pp = s->next;
			free(s);
			return;
		}
	} else {
		if (!readable && !writable)
			return;
		s = xcalloc(1, sizeof(*s));
		s->d = d;
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	s->ev = event_new(d->base, fd, EV_PERSIST | (readable ? EV_READ : 0) |
			  (writable ? EV_WRITE : 0), dns_sock_cb, d);
	if (s->ev == NULL)
		die("event_new failed for a DNS socket");
	event_add(s->ev, NULL);
}

/* ---- server list ---- */

/* "addr", "addr:port", "[v6]", "[v6]:port" or a bare IPv6 -> "[a]:p" form
 * for ares_set_servers_ports_csv; false on anything else. */
static bool dns_server_token(const char *tok, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN + 1], buf[sizeof(struct in6_addr)];
	const char *port = NULL, *colon = strchr(tok, ':');
	size_t hlen;
	uint64_t p = 53;

	if (tok[0] == '[') {
		const char *rb = strchr(tok, ']');
		if (rb == NULL)
			return false;
		hlen = (size_t)(rb - tok - 1);
		tok++;
		if (rb[1] == ':')
			port = rb + 2;
		else if (rb[1] != '\0')
			return false;
	} else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - tok);
		port = colon + 1;
	} else {
		hlen = strlen(tok);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, tok, hlen);
	host[hlen] = '\0';
	if (port != NULL && !parse_u64(port, strlen(port), 1, 65535, &p))
		return false;
	if (inet_pton(AF_INET, host, buf) == 1)
		snprintf(out, outlen, "%s:%u", host, (unsigned)p);
	else if (inet_pton(AF_INET6, host, buf) == 1)
		snprintf(out, outlen, "[%s]:%u", host, (unsigned)p);
	else
		return false;
	return true;
}

static bool dns_set_servers(struct dns *d, const char *servers, char **err)
{
	char *copy = xstrdup(servers), *tok, *save = NULL;
	size_t cap = strlen(servers) * 2 + 64, used = 0;
	char *csv = xcalloc(1, cap);
	bool ok = true;
	int rc;

	for (tok = strtok_r(copy, " \t,", &save); tok != NULL; tok = strtok_r(NULL, " \t,", &save)) {
		char one[INET6_ADDRSTRLEN + 16];

		if (!dns_server_token(tok, one, sizeof(one))) {
			*err = xasprintf("bad DNS server '%s' (want addr[:port] or [v6]:port)", tok);
			ok = false;
			break;
		}
		used += (size_t)snprintf(csv + used, cap - used, "%s%s", used ? "," : "", one);
	}
	if (ok) {
		rc = ares_set_servers_ports_csv(d->channel, csv);
		if (rc != ARES_SUCCESS) {
			*err = xasprintf("DNS servers '%s': %s", servers, ares_strerror(rc));
			ok = false;
		}
	}
	free(csv);
	free(copy);
	return ok;
}

struct dns *dns_new_opts(struct event_base *base, const struct dns_options *o, char **err)
{
	struct ares_options ao;
	struct dns *d;
	char lookups[] = "b";
	int rc;

	*err = NULL;
	rc = ares_library_init(ARES_LIB_INIT_ALL);	/* counted; no-op on Linux */
	if (rc != ARES_SUCCESS) {
		*err = xasprintf("c-ares init: %s", ares_strerror(rc));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->next_id = 1;
	memset(&ao, 0, sizeof(ao));
	ao.sock_state_cb = dns_sock_state_cb;
	ao.sock_state_cb_data = d;
	ao.timeout = o->timeout_ms ? (int)o->timeout_ms : DNS_TIMEOUT_MS_DEFAULT;
	ao.tries = o->tries ? (int)o->tries : DNS_TRIES_DEFAULT;
	ao.lookups = lookups;	/* DNS only, never /etc/hosts */
	rc = ares_init_options(&d->channel, &ao, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
			       ARES_OPT_TRIES | ARES_OPT_LOOKUPS);
	if (rc != ARES_SUCCESS) {
		*err = xasprintf("c-ares init: %s", ares_strerror(rc));
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	if (o->servers != NULL && o->servers[0] != '\0' && !dns_set_servers(d, o->servers, err)) {
		ares_destroy(d->channel);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->timer = evtimer_new(base, dns_timer_cb, d);
	if (d->timer == NULL)
		die("evtimer_new failed");
	return d;
}

struct dns *dns_new(struct event_base *base, const char *servers, char **err)
{
	struct dns_options o = { .servers = servers };

	return dns_new_opts(base, &o, err);
}

static void dns_req_free(struct dns_req *r)
{
	size_t i;

	for (i = 0; i < r->res.nhosts; i++)
		free(r->res.hosts[i].addrs);
	free(r->res.hosts);
	free(r->mx);
	free(r->hs);
	for (i = 0; i < r->nptr; i++)
		free(r->ptr_names[i]);
	for (i = 0; i < r->rr_res.n; i++)
		free((char *)r->rr[i].text);
	free(r->rr);
	free(r->qname);
	free(r->self);
	event_free(r->done_ev);
	free(r);
}

static void dns_req_unlink(struct dns_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->d->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

void dns_free(struct dns *d)
{
	struct dns_req *r, *next;
	struct dns_sock *s, *sn;

	if (d == NULL)
		return;
	/* ares_destroy() runs every pending query callback with
	 * ARES_EDESTRUCTION; they see d->destroying and only free the query. */
	d->destroying = true;
	ares_destroy(d->channel);
	for (r = d->reqs; r != NULL; r = next) {
		next = r->next;
		dns_req_free(r);
	}
	for (s = d->socks; s != NULL; s = sn) {
		sn = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(d->timer);
	free(d);
	ares_library_cleanup();
}

/* ---- request lifecycle ---- */

/* The first PTR name that resolves forward to the address, or NULL. */
static const char *dns_ptr_confirmed(const struct dns_req *r)
{
	for (size_t i = 0; i < r->nptr; i++)
		if (r->ptr_ok[i])
			return r->ptr_names[i];
	return NULL;
}

static void dns_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *r = arg;

	/* Unlinked first, so the callback may cancel, start lookups or even
	 * dns_free() without meeting this request again. */
	dns_req_unlink(r);
	if (!r->cancelled) {
		if (r->kind == DNS_REQ_PTR)
			r->ptr_cb(dns_ptr_confirmed(r), r->arg);
		else if (r->kind == DNS_REQ_RR)
			r->rr_cb(&r->rr_res, r->arg);
		else if (r->kind == DNS_REQ_A)
			r->a_cb(&r->a_res, r->arg);
		else
			r->mx_cb(&r->res, r->arg);
	}
	dns_req_free(r);
}

static struct dns_req *dns_req_new(struct dns *d, enum dns_req_kind kind, void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof(*r));

	r->d = d;
	r->id = d->next_id++;
	r->kind = kind;
	r->arg = arg;
	r->done_ev = event_new(d->base, -1, 0, dns_done_cb, r);
	if (r->done_ev == NULL)
		die("event_new failed for a DNS request");
	r->next = d->reqs;
	if (d->reqs != NULL)
		d->reqs->prev = r;
	d->reqs = r;
	return r;
}

static void dns_set_detail(struct dns_req *r, enum dns_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void dns_set_detail(struct dns_req *r, enum dns_status st, const char *fmt, ...)
{
	va_list ap;

	r->res.status = st;
	va_start(ap, fmt);
	vsnprintf(r->res.detail, sizeof(r->res.detail), fmt, ap);
	va_end(ap);
}

static void dns_hosts_result(struct dns_req *r);

/* Called whenever a query ends; the last one completes the request. */
static void dns_req_maybe_done(struct dns_req *r)
{
	if (r->pending > 0)
		return;
	if (!r->cancelled && r->kind != DNS_REQ_PTR && r->kind != DNS_REQ_A && r->kind != DNS_REQ_RR &&
	    r->hs != NULL)
		dns_hosts_result(r);
	event_active(r->done_ev, 0, 0);
}

static void dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

static void dns_query(struct dns_req *r, const char *name, int type, size_t host)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->req = r;
	q->host = host;
	q->type = type;
	r->pending++;
	ares_query(r->d->channel, name, ns_c_in, type, dns_query_cb, q);
}

static bool dns_status_temporary(int status)
{
	return status != ARES_ENOTFOUND && status != ARES_ENODATA &&
	       status != ARES_EBADNAME && status != ARES_SUCCESS;
}

/* ---- A / AAAA of one host ---- */

static void dns_addr_answer(struct dns_req *r, struct dns_query *q, int status,
			    const unsigned char *abuf, int alen)
{
	struct dns_hstate *h = &r->hs[q->host];
	struct hostent *he = NULL;
	struct ares_addrttl t4[DNS_ADDRS_MAX];
	struct ares_addr6ttl t6[DNS_ADDRS_MAX];
	int n = DNS_ADDRS_MAX, i;

	if (status == ARES_SUCCESS) {
		if (q->type == ns_t_a)
			status = ares_parse_a_reply(abuf, alen, &he, t4, &n);
		else
			status = ares_parse_aaaa_reply(abuf, alen, &he, t6, &n);
	}
	if (status != ARES_SUCCESS) {
		h->tempfail |= dns_status_temporary(status);
		h->nxdomain |= status == ARES_ENOTFOUND;
		return;
	}
	/* An alias means a CNAME answered: not allowed for an MX target. */
	if (!r->follow_cname && he->h_aliases != NULL && he->h_aliases[0] != NULL) {
		h->cname = true;
		ares_free_hostent(he);
		return;
	}
	ares_free_hostent(he);
	for (i = 0; i < n; i++) {
		if (q->type == ns_t_a) {
			struct sockaddr_in *s = &h->a4[h->n4++];
			s->sin_family = AF_INET;
			s->sin_addr = t4[i].ipaddr;
		} else {
			struct sockaddr_in6 *s = &h->a6[h->n6++];
			s->sin6_family = AF_INET6;
			memcpy(&s->sin6_addr, &t6[i].ip6addr, sizeof(s->sin6_addr));
		}
	}
}

/* Start A and AAAA for every host in r->mx[0 .. nh). */
static void dns_hosts_start(struct dns_req *r, size_t nh)
{
	size_t i;

	r->nh = nh;
	r->hs = xcalloc(nh, sizeof(*r->hs));
	for (i = 0; i < nh; i++) {
		dns_query(r, r->mx[i].name, ns_t_a, i);
		dns_query(r, r->mx[i].name, ns_t_aaaa, i);
	}
}

static void dns_host_take(struct dns_host *out, const struct dns_mx_record *m,
			  const struct dns_hstate *h)
{
	size_t i;

	snprintf(out->name, sizeof(out->name), "%s", m->name);
	out->pref = m->pref;
	out->naddrs = h->n4 + h->n6;
	out->addrs = xcalloc(out->naddrs, sizeof(*out->addrs));
	for (i = 0; i < h->n4; i++)
		memcpy(&out->addrs[i], &h->a4[i], sizeof(h->a4[i]));
	for (i = 0; i < h->n6; i++)
		memcpy(&out->addrs[h->n4 + i], &h->a6[i], sizeof(h->a6[i]));
}

/* All host lookups are over: keep the hosts with addresses, in order. */
static void dns_hosts_result(struct dns_req *r)
{
	size_t i, ntemp = 0, ncname = 0, nnx = 0;

	r->res.hosts = xcalloc(r->nh, sizeof(*r->res.hosts));
	for (i = 0; i < r->nh; i++) {
		const struct dns_hstate *h = &r->hs[i];

		if (h->n4 + h->n6 > 0)
			dns_host_take(&r->res.hosts[r->res.nhosts++], &r->mx[i], h);
		else if (h->cname)
			ncname++;
		else if (h->tempfail)
			ntemp++;
		else if (h->nxdomain)
			nnx++;
	}
	r->res.partial = r->res.nhosts > 0 && ntemp > 0;
	if (r->res.nhosts > 0)
		dns_set_detail(r, DNS_OK, "%zu of %zu host(s) with addresses%s", r->res.nhosts,
			       r->nh, ntemp ? ", some lookups failed temporarily" : "");
	else if (ntemp > 0)
		dns_set_detail(r, DNS_TEMPFAIL, "address lookup of %s failed temporarily",
			       r->mx[0].name);
	else if (r->kind == DNS_REQ_HOST && nnx > 0)
		dns_set_detail(r, DNS_NXDOMAIN, "host %s not found", r->mx[0].name);
	else if (ncname > 0 && ncname == r->nh)
		dns_set_detail(r, DNS_NO_HOSTS, "MX host %s is a CNAME (RFC 5321 5.1)",
			       r->mx[0].name);
	else
		dns_set_detail(r, DNS_NO_HOSTS, "%s%s has no address", r->res.implicit ?
			       "domain " : "host ", r->mx[0].name);
}

/* ---- MX ---- */

/* One host to look up: the domain itself (implicit MX) or a smarthost. */
static void dns_single_host(struct dns_req *r, const char *name)
{
	r->mx = xcalloc(1, sizeof(*r->mx));
	snprintf(r->mx[0].name, sizeof(r->mx[0].name), "%s", name);
	r->follow_cname = true;
	dns_hosts_start(r, 1);
}

/* Copy the MX answer into r->mx and apply the caller's ordering step;
 * starts the address lookups, or sets the final status. */
static void dns_mx_records(struct dns_req *r, const struct ares_mx_reply *list)
{
	const struct ares_mx_reply *m;
	size_t n = 0, total = 0, left;
	enum dns_mx_order o;

	for (m = list; m != NULL; m = m->next)
		total++;
	r->mx = xcalloc(total, sizeof(*r->mx));
	for (m = list; m != NULL; m = m->next) {
		if (strlen(m->host) >= DNS_NAME_MAX)
			continue;
		snprintf(r->mx[n].name, DNS_NAME_MAX, "%s", m->host);
		r->mx[n++].pref = m->priority;
	}
	o = r->order(r->mx, n, r->self, r->seed, &left);
	switch (o) {
	case DNS_MX_ORDER_NULL:
		dns_set_detail(r, DNS_NULL_MX, "%s has a null MX (RFC 7505): it accepts no mail",
			       r->qname);
		return;
	case DNS_MX_ORDER_ONLY_SELF:
		r->res.loops_to_self = true;
		dns_set_detail(r, DNS_NO_HOSTS, "mail for %s loops back to myself", r->qname);
		return;
	case DNS_MX_ORDER_EMPTY:
		dns_set_detail(r, DNS_NO_HOSTS, "no usable MX host for %s", r->qname);
		return;
	case DNS_MX_ORDER_OK:
		break;
	}
	if (left > DNS_MX_HOSTS_MAX)
		left = DNS_MX_HOSTS_MAX;
	dns_hosts_start(r, left);
}

static void dns_mx_answer(struct dns_req *r, int status, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL;

	if (status == ARES_SUCCESS) {
		status = ares_parse_mx_reply(abuf, alen, &list);
		if (status == ARES_SUCCESS && list == NULL)
			status = ARES_ENODATA;	/* e.g. only a CNAME answered */
	}
	if (status == ARES_SUCCESS) {
		dns_mx_records(r, list);
		ares_free_data(list);
	} else if (status == ARES_ENODATA) {
		r->res.implicit = true;	/* RFC 5321 §5.1: the domain as its own MX */
		dns_single_host(r, r->qname);
	} else if (status == ARES_ENOTFOUND) {
		dns_set_detail(r, DNS_NXDOMAIN, "domain %s does not exist", r->qname);
	} else if (status == ARES_EBADNAME) {
		dns_set_detail(r, DNS_NXDOMAIN, "invalid domain name %s", r->qname);
	} else {
		dns_set_detail(r, DNS_TEMPFAIL, "MX lookup for %s: %s", r->qname,
			       ares_strerror(status));
	}
}

/* ---- PTR ---- */

static bool dns_ptr_listed(char *const *list, const char *name)
{
	for (size_t i = 0; list != NULL && name != NULL && list[i] != NULL; i++)
		if (strcasecmp(list[i], name) == 0)
			return true;
	return false;
}

/* A candidate name: not empty, not too long, not seen, and at most
 * DNS_PTR_NAMES_MAX of them, since each costs a forward lookup. */
static void dns_ptr_add(struct dns_req *r, const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) >= DNS_NAME_MAX || r->nptr >= DNS_PTR_NAMES_MAX)
		return;
	for (size_t i = 0; i < r->nptr; i++)
		if (strcasecmp(r->ptr_names[i], name) == 0)
			return;
	r->ptr_names[r->nptr++] = xstrdup(name);
}

static void dns_ptr_answer(struct dns_req *r, int status, const unsigned char *abuf, int alen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&r->ptr_addr;
	struct hostent *he = NULL;
	const void *addr;
	int len;

	if (sa->sa_family == AF_INET) {
		addr = &((const struct sockaddr_in *)sa)->sin_addr;
		len = sizeof(struct in_addr);
	} else {
		addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = sizeof(struct in6_addr);
	}
	if (status != ARES_SUCCESS ||
	    ares_parse_ptr_reply(abuf, alen, addr, len, sa->sa_family, &he) != ARES_SUCCESS)
		return;
	/* c-ares lists every PTR name in h_aliases, in the answer's order,
	 * and one of them again in h_name; keep the answer's order. */
	if (!dns_ptr_listed(he->h_aliases, he->h_name))
		dns_ptr_add(r, he->h_name);
	for (size_t i = 0; he->h_aliases != NULL && he->h_aliases[i] != NULL; i++)
		dns_ptr_add(r, he->h_aliases[i]);
	ares_free_hostent(he);
	for (size_t i = 0; i < r->nptr; i++)
		dns_query(r, r->ptr_names[i], sa->sa_family == AF_INET ? ns_t_a : ns_t_aaaa, i);
}

/* Forward confirmation: does the name's A/AAAA hold the address? */
static void dns_ptr_confirm(struct dns_req *r, const struct dns_query *q, int status,
			    const unsigned char *abuf, int alen)
{
	int type = q->type;
	bool *ok = &r->ptr_ok[q->host];
	const struct sockaddr *sa = (const struct sockaddr *)&r->ptr_addr;
	struct ares_addrttl t4[DNS_ADDRS_MAX];
	struct ares_addr6ttl t6[DNS_ADDRS_MAX];
	int n = DNS_ADDRS_MAX, i;

	if (status != ARES_SUCCESS)
		return;
	if (type == ns_t_a) {
		const struct in_addr *want = &((const struct sockaddr_in *)sa)->sin_addr;

		if (ares_parse_a_reply(abuf, alen, NULL, t4, &n) != ARES_SUCCESS)
			return;
		for (i = 0; i < n; i++)
			*ok |= memcmp(&t4[i].ipaddr, want, sizeof(*want)) == 0;
	} else {
		const struct in6_addr *want = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n) != ARES_SUCCESS)
			return;
		for (i = 0; i < n; i++)
			*ok |= memcmp(&t6[i].ip6addr, want, sizeof(*want)) == 0;
	}
}

/* ---- one query, records as they came ---- */

/* Every record of the answer is kept, whole: a DNS message carries at
 * most 64 KiB (over TCP), so an answer's records and texts are bounded by
 * the reply itself, and cutting a TXT record (an SPF record, a DKIM key)
 * or dropping some of a name's records would change what it says. */
static void dns_rr_add(struct dns_req *r, const char *text, size_t len, const void *addr, size_t alen)
{
	struct dns_rr *rr;

	if (r->rr_res.n == r->rr_cap) {
		r->rr_cap = r->rr_cap ? r->rr_cap * 2 : 4;
		r->rr = xrealloc(r->rr, r->rr_cap * sizeof(*r->rr));
		r->rr_res.rr = r->rr;
	}
	rr = &r->rr[r->rr_res.n++];
	memset(rr, 0, sizeof(*rr));
	if (text != NULL) {
		char *t = xmalloc(len + 1);
		memcpy(t, text, len);
		t[len] = '\0';
		rr->text = t;
		rr->len = len;
	} else {
		rr->text = xstrdup("");
	}
	if (addr != NULL)
		memcpy(rr->addr, addr, alen);
}

/* TXT: a record's character-strings joined in order; record_start marks
 * where the next record begins.  The strings of one record are never
 * longer together than the reply (alen), so buf is that big. */
static void dns_rr_txt(struct dns_req *r, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *list = NULL, *t;
	char *buf;
	size_t len = 0;
	bool open = false;

	if (ares_parse_txt_reply_ext(abuf, alen, &list) != ARES_SUCCESS) {
		r->rr_res.status = DNS_TEMPFAIL;
		return;
	}
	buf = xmalloc((size_t)alen + 1);
	for (t = list; t != NULL; t = t->next) {
		if (t->record_start && open) {
			dns_rr_add(r, buf, len, NULL, 0);
			len = 0;
		}
		open = true;
		if (t->length > (size_t)alen - len) {
			/* cannot be: the strings are inside the reply */
			r->rr_res.status = DNS_TEMPFAIL;
			break;
		}
		memcpy(buf + len, t->txt, t->length);
		len += t->length;
	}
	if (open && r->rr_res.status == DNS_OK)
		dns_rr_add(r, buf, len, NULL, 0);
	ares_free_data(list);
	free(buf);
}

static void dns_rr_answer(struct dns_req *r, int type, int status, const unsigned char *abuf, int alen)
{
	/* an A record takes at least 16 octets of the reply, AAAA 28: room
	 * for every address the answer can hold */
	int cap = alen / 16 + 1, n = cap, i;

	r->rr_res.status = DNS_OK;
	if (status == ARES_ENOTFOUND) {
		r->rr_res.status = DNS_NXDOMAIN;
		return;
	}
	if (status == ARES_ENODATA)
		return;
	if (status != ARES_SUCCESS) {
		r->rr_res.status = DNS_TEMPFAIL;
		return;
	}
	if (type == ns_t_txt) {
		dns_rr_txt(r, abuf, alen);
	} else if (type == ns_t_a) {
		struct ares_addrttl *t4 = xcalloc((size_t)cap, sizeof(*t4));
		if (ares_parse_a_reply(abuf, alen, NULL, t4, &n) == ARES_SUCCESS)
			for (i = 0; i < n; i++)
				dns_rr_add(r, NULL, 0, &t4[i].ipaddr, 4);
		free(t4);
	} else if (type == ns_t_aaaa) {
		struct ares_addr6ttl *t6 = xcalloc((size_t)cap, sizeof(*t6));
		if (ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n) == ARES_SUCCESS)
			for (i = 0; i < n; i++)
				dns_rr_add(r, NULL, 0, &t6[i].ip6addr, 16);
		free(t6);
	} else if (type == ns_t_mx) {
		struct ares_mx_reply *list = NULL, *m;
		if (ares_parse_mx_reply(abuf, alen, &list) == ARES_SUCCESS)
			for (m = list; m != NULL; m = m->next)
				dns_rr_add(r, m->host, strlen(m->host), NULL, 0);
		ares_free_data(list);
	} else if (type == ns_t_ptr) {
		struct hostent *he = NULL;
		unsigned char zero[16] = { 0 };
		if (ares_parse_ptr_reply(abuf, alen, zero, 4, AF_INET, &he) == ARES_SUCCESS) {
			/* c-ares lists every PTR name in h_aliases, the
			 * first one also in h_name */
			if (he->h_aliases != NULL && he->h_aliases[0] != NULL)
				for (i = 0; he->h_aliases[i] != NULL; i++)
					dns_rr_add(r, he->h_aliases[i], strlen(he->h_aliases[i]), NULL, 0);
			else if (he->h_name != NULL)
				dns_rr_add(r, he->h_name, strlen(he->h_name), NULL, 0);
			ares_free_hostent(he);
		}
	}
}

/* ---- A of one name (blocklists) ---- */

static void dns_a_answer(struct dns_req *r, int status, const unsigned char *abuf, int alen)
{
	struct ares_addrttl t4[DNS_ADDRS_MAX];
	int n = DNS_ADDRS_MAX;

	if (status == ARES_SUCCESS)
		status = ares_parse_a_reply(abuf, alen, NULL, t4, &n);
	if (status != ARES_SUCCESS || n <= 0) {
		r->a_res.status = status == ARES_SUCCESS || !dns_status_temporary(status)
			? DNS_NXDOMAIN : DNS_TEMPFAIL;
		return;
	}
	r->a_res.status = DNS_OK;
	r->a_res.ttl = UINT32_MAX;
	for (int i = 0; i < n; i++) {
		r->a_res.addrs[r->a_res.n++] = t4[i].ipaddr;
		if ((unsigned)t4[i].ttl < r->a_res.ttl)
			r->a_res.ttl = t4[i].ttl < 0 ? 0 : (unsigned)t4[i].ttl;
	}
}

static void dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct dns_req *r = q->req;

	if (r->d->destroying) {
		free(q);
		return;
	}
	r->pending--;
	if (!r->cancelled) {
		/* A guard count, so that a query failing at once inside
		 * ares_query() cannot complete the request half-built. */
		r->pending++;
		if (r->kind == DNS_REQ_RR)
			dns_rr_answer(r, q->type, status, abuf, alen);
		else if (q->type == ns_t_mx)
			dns_mx_answer(r, status, abuf, alen);
		else if (q->type == ns_t_ptr)
			dns_ptr_answer(r, status, abuf, alen);
		else if (r->kind == DNS_REQ_PTR)
			dns_ptr_confirm(r, q, status, abuf, alen);
		else if (r->kind == DNS_REQ_A)
			dns_a_answer(r, status, abuf, alen);
		else
			dns_addr_answer(r, q, status, abuf, alen);
		r->pending--;
	}
	free(q);
	dns_req_maybe_done(r);
}

/* ---- public entry points ---- */

/* "1.2.3.4", "::1", "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 §4.1.3) into
 * sa; bracketed says whether brackets are required. */
static bool dns_parse_literal(const char *s, bool bracketed, struct sockaddr_storage *sa)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);
	bool v6only = false;

	memset(sa, 0, sizeof(*sa));
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(buf))
			return false;
		s++;
		len -= 2;
		if (len > 5 && ascii_ieq(s, "IPv6:", 5)) {
			s += 5;
			len -= 5;
			v6only = true;
		}
	} else if (bracketed || len >= sizeof(buf)) {
		return false;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!v6only && inet_pton(AF_INET, buf, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
		sa->ss_family = AF_INET;
		return true;
	}
	/* A bare IPv6 inside brackets is accepted too, as many MUAs write it. */
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
		sa->ss_family = AF_INET6;
		return true;
	}
	return false;
}

static void dns_literal_result(struct dns_req *r, const char *name,
			       const struct sockaddr_storage *sa)
{
	struct dns_host *h;

	r->res.hosts = h = xcalloc(1, sizeof(*h));
	r->res.nhosts = 1;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->naddrs = 1;
	h->addrs = xmalloc(sizeof(*h->addrs));
	*h->addrs = *sa;
	dns_set_detail(r, DNS_OK, "address literal, no DNS");
}

static bool dns_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= 253 && strstr(name, "..") == NULL && name[0] != '.';
}

/* Ends a public call: drop the guard count taken at the start. */
static uint64_t dns_started(struct dns_req *r)
{
	uint64_t id = r->id;

	r->pending--;
	dns_req_maybe_done(r);
	dns_timer_update(r->d);
	return id;
}

uint64_t dns_mx_lookup(struct dns *d, const char *domain, dns_mx_order_fn order,
		       const char *self_hostname, uint32_t shuffle_seed, dns_mx_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_MX, arg);
	struct sockaddr_storage sa;

	r->mx_cb = cb;
	r->qname = xstrdup(domain);
	assert(order != NULL);
	r->order = order;
	r->self = self_hostname && self_hostname[0] ? xstrdup(self_hostname) : NULL;
	r->seed = shuffle_seed;
	r->pending++;
	if (domain[0] == '[') {
		if (dns_parse_literal(domain, true, &sa))
			dns_literal_result(r, domain, &sa);
		else
			dns_set_detail(r, DNS_NO_HOSTS, "bad address literal %.100s", domain);
	} else if (!dns_name_ok(domain)) {
		dns_set_detail(r, DNS_NXDOMAIN, "invalid domain name %.100s", domain);
	} else {
		dns_query(r, domain, ns_t_mx, 0);
	}
	return dns_started(r);
}

uint64_t dns_host_lookup(struct dns *d, const char *host, dns_mx_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_HOST, arg);
	struct sockaddr_storage sa;

	r->mx_cb = cb;
	r->qname = xstrdup(host);
	r->pending++;
	if (dns_parse_literal(host, false, &sa))
		dns_literal_result(r, host, &sa);
	else if (host[0] == '[' || !dns_name_ok(host))
		dns_set_detail(r, DNS_NXDOMAIN, "invalid host name %.100s", host);
	else
		dns_single_host(r, host);
	return dns_started(r);
}

/* "4.3.2.1.in-addr.arpa" or the 32 nibbles of ip6.arpa (RFC 3596 §2.5). */
static void dns_reverse_name(const struct sockaddr *sa, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	if (sa->sa_family == AF_INET) {
		const unsigned char *b = (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
	} else {
		const unsigned char *b = (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		size_t o = 0;
		int i;

		for (i = 15; i >= 0; i--) {
			out[o++] = hex[b[i] & 0xf];
			out[o++] = '.';
			out[o++] = hex[b[i] >> 4];
			out[o++] = '.';
		}
		snprintf(out + o, len - o, "ip6.arpa");
	}
}

uint64_t dns_ptr_lookup(struct dns *d, const struct sockaddr *sa, dns_ptr_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_PTR, arg);
	char name[80];

	r->ptr_cb = cb;
	r->pending++;
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		memcpy(&r->ptr_addr, sa, sa->sa_family == AF_INET ?
		       sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		dns_reverse_name(sa, name, sizeof(name));
		dns_query(r, name, ns_t_ptr, 0);
	}
	return dns_started(r);
}

uint64_t dns_rr_lookup(struct dns *d, const char *name, enum dns_rr_type type, dns_rr_cb cb, void *arg)
{
	static const int types[] = {
		[DNS_RR_TXT] = ns_t_txt, [DNS_RR_A] = ns_t_a, [DNS_RR_AAAA] = ns_t_aaaa,
		[DNS_RR_MX] = ns_t_mx, [DNS_RR_PTR] = ns_t_ptr,
	};
	struct dns_req *r = dns_req_new(d, DNS_REQ_RR, arg);

	r->rr_cb = cb;
	r->rr_res.rr = r->rr;
	r->pending++;
	if (!dns_name_ok(name))
		r->rr_res.status = DNS_NXDOMAIN;
	else
		dns_query(r, name, types[type], 0);
	return dns_started(r);
}

uint64_t dns_a_lookup(struct dns *d, const char *name, dns_a_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(d, DNS_REQ_A, arg);

	r->a_cb = cb;
	r->a_res.status = DNS_TEMPFAIL;
	r->pending++;
	if (dns_name_ok(name))
		dns_query(r, name, ns_t_a, 0);
	else
		r->a_res.status = DNS_NXDOMAIN;
	return dns_started(r);
}

void dns_cancel(struct dns *d, uint64_t id)
{
	struct dns_req *r;

	for (r = d->reqs; r != NULL; r = r->next) {
		if (r->id == id) {
			r->cancelled = true;
			return;
		}
	}
}
