/*
 * dns.h - asynchronous DNS: MX lookups with A/AAAA of every target
 * (RFC 5321 §5.1, RFC 7505 null MX; the ordering step is delivery's),
 * host lookups for a smarthost, and forward-confirmed PTR for SMTP.  Built on c-ares, driven by the
 * libevent loop; nothing here ever blocks.
 *
 * Requests are by id (STYLE.md 7): every lookup returns an id > 0 and its
 * callback runs exactly once, later, from the event loop - never inside
 * the call that started it - unless dns_cancel() was called for the id or
 * dns_free() ran first, in which case it never runs.  Result memory is
 * owned by this module and valid only during the callback: copy what you
 * keep.  dns_free() may be called from inside a callback.
 *
 * Addresses come back with port 0: the caller sets 25 (or the smarthost
 * port).  Within a host, IPv4 addresses come before IPv6 ones, each family
 * in the order the server gave.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct event_base;
struct dns;

#define DNS_TIMEOUT_MS_DEFAULT 5000	/* first try; c-ares backs off later tries */
#define DNS_TRIES_DEFAULT      2
#define DNS_MX_HOSTS_MAX       32	/* MX targets looked up per domain */
#define DNS_ADDRS_MAX          16	/* addresses kept per host and family */
#define DNS_PTR_NAMES_MAX      4	/* PTR names confirmed per address */
#define DNS_NAME_MAX         256	/* a name in text form, with its NUL */

struct dns_options {
	/* Name servers, "addr[:port]" separated by spaces or commas, IPv6 as
	 * "[addr]:port" (or a bare "addr" without port).  NULL or "" reads
	 * /etc/resolv.conf. */
	const char *servers;
	unsigned timeout_ms;		/* per try, 0 = DNS_TIMEOUT_MS_DEFAULT */
	unsigned tries;			/* 0 = DNS_TRIES_DEFAULT */
};

/* NULL with *err set (free it) on a bad server list or c-ares failure. */
struct dns *dns_new_opts(struct event_base *base, const struct dns_options *opts, char **err);
/* dns_new_opts() with default timeouts. */
struct dns *dns_new(struct event_base *base, const char *servers, char **err);
/* Cancels every request (no callback runs) and frees everything. */
void dns_free(struct dns *d);

/*
 * What to do with the mail, by status:
 *   DNS_OK        deliver to hosts[] in order.
 *   DNS_NXDOMAIN  the domain does not exist: bounce, 5.1.2.
 *   DNS_NULL_MX   RFC 7505: bounce with 556 5.1.10.
 *   DNS_NO_HOSTS  no MX target (or, without MX, the domain itself) has an
 *                 address, every target is ourselves or less preferred
 *                 (loops_to_self, 5.4.6), or a bad domain literal: a
 *                 permanent routing failure, bounce with 5.4.4 (5.4.6).
 *   DNS_TEMPFAIL  SERVFAIL, REFUSED, timeout, or every host's lookup failed
 *                 temporarily: defer, 4.4.3.
 * A host whose lookup failed temporarily is left out while others have
 * addresses (detail says so); a host that is a CNAME (as an MX target) or
 * has no address is left out.
 */
enum dns_status { DNS_OK, DNS_NXDOMAIN, DNS_NULL_MX, DNS_NO_HOSTS, DNS_TEMPFAIL };

struct dns_host {
	char name[256];			/* no trailing dot */
	unsigned pref;			/* MX preference; 0 when implicit/host */
	size_t naddrs;
	struct sockaddr_storage *addrs;	/* port 0 */
};

struct dns_mx_result {
	enum dns_status status;
	bool implicit;			/* no MX: the domain's own A/AAAA, CNAME followed */
	bool loops_to_self;		/* NO_HOSTS because we are the best MX */
	bool partial;			/* OK, but some host's lookup failed temporarily */
	size_t nhosts;
	struct dns_host *hosts;		/* in the order to try */
	char detail[160];		/* for logs and DSN diagnostics */
};

typedef void (*dns_mx_cb)(const struct dns_mx_result *r, void *arg);

/* One record of an MX answer, as it is handed to the ordering step. */
struct dns_mx_record {
	char name[DNS_NAME_MAX];	/* target, no trailing dot ("" or "." = root) */
	unsigned pref;
};

enum dns_mx_order {
	DNS_MX_ORDER_OK,	/* records hold the hosts to try, in order */
	DNS_MX_ORDER_NULL,	/* RFC 7505 null MX: the domain takes no mail */
	DNS_MX_ORDER_ONLY_SELF,	/* we are the best MX: nothing left to try */
	DNS_MX_ORDER_EMPTY,	/* no usable record at all */
};

/*
 * The routing step between the MX answer and the address lookups, which
 * belongs to delivery (delivery/mx.c's mx_prepare): it reorders r[0 .. n)
 * in place, keeping the first *n_out, given our own hostname self (NULL or
 * "" for none) and a seed for shuffling equal preferences.
 */
typedef enum dns_mx_order (*dns_mx_order_fn)(struct dns_mx_record *r, size_t n, const char *self,
					     uint32_t seed, size_t *n_out);

/*
 * MX for domain, then A and AAAA of each target that order (called with
 * self_hostname and shuffle_seed) keeps, at most DNS_MX_HOSTS_MAX, all in
 * parallel.
 * CNAMEs are followed for the domain itself but an MX target that is a
 * CNAME is a lookup failure for that host only (RFC 5321 §5.1).  A domain
 * literal "[1.2.3.4]" or "[IPv6:...]" resolves to that address without DNS.
 */
uint64_t dns_mx_lookup(struct dns *d, const char *domain, dns_mx_order_fn order,
		       const char *self_hostname, uint32_t shuffle_seed, dns_mx_cb cb, void *arg);

/* A and AAAA of a smarthost (CNAME followed); an IP address, bare or in
 * brackets, needs no DNS.  The result has one host when DNS_OK. */
uint64_t dns_host_lookup(struct dns *d, const char *host, dns_mx_cb cb, void *arg);

/* PTR of the address, then forward confirmation (RFC 5321 §4.4 asks only
 * for the name; confirming it makes Received: trustworthy): the A (or
 * AAAA) records of each PTR name, up to DNS_PTR_NAMES_MAX of them, are
 * looked up, and cb gets the first name, in the answer's order, whose
 * records contain the address, or NULL when there is none, none confirms
 * or the lookups failed. */
typedef void (*dns_ptr_cb)(const char *name, void *arg);
uint64_t dns_ptr_lookup(struct dns *d, const struct sockaddr *sa, dns_ptr_cb cb, void *arg);

/*
 * One query of a given type, its records as they came (for SPF, DKIM and
 * DMARC, which do their own logic): TXT (each record's strings joined,
 * RFC 7208 3.3, RFC 6376 3.6.2.2), A / AAAA (addr), MX (the exchange
 * name), PTR (the name).  status is DNS_OK (n may be 0: NODATA),
 * DNS_NXDOMAIN or DNS_TEMPFAIL (timeout, SERVFAIL, REFUSED).  Every
 * record of the answer is there, each text whole: a reply too big for
 * UDP comes again over TCP (c-ares follows the TC bit), up to the 64 KiB
 * a DNS message can carry.
 */
enum dns_rr_type { DNS_RR_TXT, DNS_RR_A, DNS_RR_AAAA, DNS_RR_MX, DNS_RR_PTR };

struct dns_rr {
	const char *text;		/* TXT, MX, PTR; NUL-terminated */
	size_t len;
	unsigned char addr[16];		/* A: 4 octets, AAAA: 16 */
};

struct dns_rr_result {
	enum dns_status status;
	size_t n;
	const struct dns_rr *rr;
};

typedef void (*dns_rr_cb)(const struct dns_rr_result *r, void *arg);
uint64_t dns_rr_lookup(struct dns *d, const char *name, enum dns_rr_type type, dns_rr_cb cb, void *arg);
/* A records of one name, as asked, for DNS blocklists (RFC 5782): no
 * search domains, CNAMEs followed by the server.  status is DNS_OK with
 * n > 0 addresses, DNS_NXDOMAIN for no such name or no A record, or
 * DNS_TEMPFAIL; ttl is the smallest TTL of the answer (DNS_OK only). */
struct dns_a_result {
	enum dns_status status;
	size_t n;
	struct in_addr addrs[DNS_ADDRS_MAX];
	unsigned ttl;
};
typedef void (*dns_a_cb)(const struct dns_a_result *r, void *arg);
uint64_t dns_a_lookup(struct dns *d, const char *name, dns_a_cb cb, void *arg);

/* The callback of this request will never run (the requester went away).
 * Unknown or finished ids are ignored. */
void dns_cancel(struct dns *d, uint64_t id);

const char *dns_status_str(enum dns_status st);

#endif
