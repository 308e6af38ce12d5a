/*
 * config.c - the typed configuration table and its INI reader (inih).
 *
 * Every key tern knows is one row of config_table: section, key, type,
 * where it goes in struct config, its default and its bounds.  The same
 * rows parse files, report errors as FILE:LINE, fill in defaults and print
 * the example file, so the three cannot drift apart.
 */
#include "core/config.h"
#include "core/util.h"
#include "proto/dnsbl.h"
#include "proto/milter.h"

#include <arpa/inet.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum config_type {
	CT_STR, CT_UINT, CT_SIZE, CT_DURATION, CT_BOOL,
	CT_LISTEN, CT_WORDS, CT_CIDRS, CT_ACCESS, CT_DMARC, CT_ZONES, CT_CHECK_AT,
	CT_MILTERS, CT_MILTER_ACTION,
};

struct config_row {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;
	const char *def;
	uint64_t min, max;
	const char *doc;
};

#define ROW(sec, key, type, field, def, min, max, doc) \
	{ sec, key, type, offsetof(struct config, field), def, min, max, doc }

static const struct config_row config_table[] = {
	ROW("server", "hostname", CT_STR, hostname, "localhost", 0, 0, "name in greetings, Received: and bounces"),
	ROW("server", "state_dir", CT_STR, state_dir, "/var/lib/tern", 0, 0, "queue/, mail/ and run/ live here"),
	ROW("server", "user", CT_STR, user, "", 0, 0, "drop privileges to this user when started as root"),
	ROW("server", "workers", CT_UINT, workers, "16", 1, 256, "threads for disk commits and local delivery"),
	ROW("server", "log_debug", CT_BOOL, log_debug, "no", 0, 0, "also log every session state change"),

	ROW("smtp", "listen", CT_LISTEN, smtp_listen, "", 0, 0, "MX service (port 25)"),
	ROW("smtp", "max_message_size", CT_SIZE, max_message_size, "35M", 1024, 1ULL << 34, "SIZE limit (RFC 1870)"),
	ROW("smtp", "max_recipients", CT_UINT, max_recipients, "100", 1, 100000, "RCPTs per message (RFC 5321 4.5.3.1.8)"),
	ROW("smtp", "max_errors", CT_UINT, max_errors, "10", 1, 1000, "errors per session before 421"),
	ROW("smtp", "max_connections", CT_UINT, max_connections, "1000", 1, 1000000, "SMTP connections in total"),
	ROW("smtp", "max_connections_per_ip", CT_UINT, max_connections_per_ip, "50", 1, 1000000, "SMTP connections per client address"),
	ROW("smtp", "max_received", CT_UINT, max_received, "100", 1, 1000, "Received: fields before a message is a loop (5.4.6)"),
	ROW("smtp", "command_timeout", CT_DURATION, command_timeout, "5m", 1, 86400, "wait for a command, and most one line may take (RFC 5321 4.5.3.2)"),
	ROW("smtp", "data_timeout", CT_DURATION, data_timeout, "3m", 1, 86400, "wait for each DATA block"),
	ROW("smtp", "max_connection_rate", CT_UINT, max_connection_rate, "0", 0, 1000000, "connections per client address per minute, then 421; 0 = no limit"),
	ROW("smtp", "max_message_rate", CT_UINT, max_message_rate, "0", 0, 1000000, "MAIL commands per client address per minute, then 451; 0 = no limit"),
	ROW("smtp", "vrfy", CT_ACCESS, vrfy, "off", 0, 0, "off | auth | on"),
	ROW("smtp", "expn", CT_ACCESS, expn, "off", 0, 0, "off | auth | on"),
	ROW("smtp", "milter", CT_BOOL, smtp_milter, "on", 0, 0, "pass messages through the [milter] servers"),

	ROW("submission", "listen", CT_LISTEN, submission_listen, "", 0, 0, "port 587: STARTTLS, then AUTH"),
	ROW("submission", "sender_any", CT_BOOL, sender_any, "no", 0, 0, "let users send as any address"),
	ROW("submission", "milter", CT_BOOL, submission_milter, "off", 0, 0, "pass messages (587 and 465) through the [milter] servers"),
	ROW("submissions", "listen", CT_LISTEN, submissions_listen, "", 0, 0, "port 465: implicit TLS, then AUTH"),

	ROW("pop3", "listen", CT_LISTEN, pop3_listen, "", 0, 0, "POP3 (port 110)"),
	ROW("pop3", "timeout", CT_DURATION, pop3_timeout, "10m", 1, 86400, "idle timeout (RFC 1939: at least 10m)"),
	ROW("pop3", "command_timeout", CT_DURATION, pop3_command_timeout, "1m", 1, 86400, "most one command line may take from its first octet"),
	ROW("pop3", "login_delay", CT_DURATION, login_delay, "0", 0, 86400, "LOGIN-DELAY (RFC 2449), 0 = none"),
	ROW("pop3s", "listen", CT_LISTEN, pop3s_listen, "", 0, 0, "POP3 over implicit TLS (port 995)"),

	ROW("imap", "listen", CT_LISTEN, imap_listen, "", 0, 0, "IMAP (port 143): STARTTLS, LOGINDISABLED before TLS"),
	ROW("imap", "timeout", CT_DURATION, imap_timeout, "30m", 60, 86400, "idle timeout, IDLE included (RFC 9051: at least 30m)"),
	ROW("imap", "command_timeout", CT_DURATION, imap_command_timeout, "5m", 1, 86400, "most one command line may take from its first octet"),
	ROW("imaps", "listen", CT_LISTEN, imaps_listen, "", 0, 0, "IMAP over implicit TLS (port 993)"),

	ROW("tls", "cert", CT_STR, tls_cert, "", 0, 0, "PEM certificate chain; default state_dir/tls/cert.pem"),
	ROW("tls", "key", CT_STR, tls_key, "", 0, 0, "PEM private key; default state_dir/tls/key.pem"),

	ROW("auth", "allow_plaintext", CT_BOOL, allow_plaintext, "no", 0, 0, "plaintext passwords without TLS"),
	ROW("auth", "max_failures", CT_UINT, max_auth_failures, "5", 1, 1000, "failed logins per address before a block"),
	ROW("auth", "block_time", CT_DURATION, auth_block_time, "15m", 1, 86400 * 7, "how long failures count and a block lasts"),

	ROW("domains", "local", CT_WORDS, local_domains, "localhost", 0, 0, "domains delivered into local Maildirs"),
	ROW("domains", "postmaster", CT_STR, postmaster, "", 0, 0, "postmaster@ without alias or user goes here; default: the domain's first user"),

	ROW("users", "file", CT_STR, users_file, "", 0, 0, "user@domain:{SCHEME}secret; default state_dir/users"),
	ROW("aliases", "file", CT_STR, aliases_file, "", 0, 0, "alias: target, target; empty = none"),

	ROW("relay", "trusted_networks", CT_CIDRS, trusted_networks, "127.0.0.0/8 ::1", 0, 0, "may relay without AUTH"),
	ROW("relay", "smarthost", CT_STR, smarthost, "", 0, 0, "[host]:port to relay all remote mail through"),
	ROW("relay", "smarthost_user", CT_STR, smarthost_user, "", 0, 0, "AUTH user for the smarthost"),
	ROW("relay", "smarthost_password", CT_STR, smarthost_password, "", 0, 0, "AUTH password for the smarthost"),

	ROW("queue", "retry", CT_DURATION, retry, "30m", 1, 86400 * 30, "first retry; later ones back off"),
	ROW("queue", "max_age", CT_DURATION, max_age, "5d", 1, 86400 * 365, "then bounce"),
	ROW("queue", "delay_warning", CT_DURATION, delay_warning, "4h", 1, 86400 * 365, "DSN delay notice (NOTIFY=DELAY)"),

	ROW("dns", "servers", CT_STR, dns_servers, "", 0, 0, "host[:port] list; default /etc/resolv.conf"),
	ROW("dns", "timeout", CT_DURATION, dns_timeout, "10s", 1, 300, "per query; SPF, DKIM and DMARC get temperror after it"),

	ROW("dkim", "keys", CT_WORDS, dkim_keys, "", 0, 0, "DOMAIN:SELECTOR:PEM_PATH, ...; keys of tern dkim keygen need no line"),
	ROW("checks", "spf", CT_BOOL, check_spf, "on", 0, 0, "SPF of MAIL FROM (HELO for <>) on the MX service"),
	ROW("checks", "dkim", CT_BOOL, check_dkim, "on", 0, 0, "verify DKIM signatures on the MX service"),
	ROW("checks", "dmarc", CT_DMARC, check_dmarc, "enforce", 0, 0, "enforce | report | off"),
	ROW("checks", "authserv_id", CT_STR, authserv_id, "", 0, 0, "Authentication-Results id; default [server] hostname"),
	ROW("checks", "dns_tempfail", CT_BOOL, check_dns_tempfail, "no", 0, 0, "451 4.4.3 instead of accepting when DNS trouble leaves a check temperror"),

	ROW("dnsbl", "zones", CT_ZONES, dnsbl_zones, "", 0, 0, "blocklists: ZONE or ZONE=127.0.0.2, ...; a listed client gets 554 5.7.1"),
	ROW("dnsbl", "allow", CT_ZONES, dnsbl_allow, "", 0, 0, "allow lists (DNSWL), same form: a listed client skips the blocklists and greylisting"),
	ROW("dnsbl", "check_at", CT_CHECK_AT, dnsbl_check_at, "connect", 0, 0, "connect (554 greeting) | rcpt (554 to each RCPT)"),
	ROW("dnsbl", "timeout", CT_DURATION, dnsbl_timeout, "5s", 1, 60, "wait for the lists this long, then let the client pass"),
	ROW("dnsbl", "cache_max", CT_UINT, dnsbl_cache_max, "10000", 0, 10000000, "answers kept for their TTL"),

	ROW("greylist", "enabled", CT_BOOL, greylist_enabled, "no", 0, 0, "451 4.7.1 to an unseen (client network, sender, recipient) at RCPT"),
	ROW("greylist", "delay", CT_DURATION, greylist_delay, "5m", 0, 86400, "a retry is accepted this long after the first try"),
	ROW("greylist", "expire", CT_DURATION, greylist_expire, "35d", 60, 86400 * 365, "entries unseen this long are forgotten"),
	ROW("greylist", "max_entries", CT_UINT, greylist_max_entries, "100000", 16, 100000000, "triplets and clients kept; the oldest go first"),

	ROW("delivery", "remote_port", CT_UINT, remote_port, "25", 1, 65535, "port used for MX hosts"),
	ROW("delivery", "max_connections", CT_UINT, max_remote_connections, "100", 1, 100000, "outbound connections in total"),
	ROW("delivery", "max_connections_per_destination", CT_UINT, max_connections_per_destination, "10", 1, 10000, "outbound connections per destination"),
	ROW("delivery", "tls_required", CT_WORDS, tls_required, "", 0, 0, "domains that must be reached over STARTTLS"),
	ROW("delivery", "reuse_idle", CT_DURATION, reuse_idle, "5s", 0, 3600, "keep an idle connection this long for the next message"),
	ROW("delivery", "client_timeout", CT_DURATION, client_timeout, "0", 0, 86400, "cap on every SMTP client timeout; 0 = RFC 5321 4.5.3.2"),
	ROW("milter", "servers", CT_MILTERS, milter_servers, "", 0, 0, "inet:HOST:PORT, unix:PATH (called in order)"),
	ROW("milter", "default_action", CT_MILTER_ACTION, milter_default_action, "tempfail", 0, 0, "milter unreachable: tempfail | accept | reject"),
	ROW("milter", "timeout", CT_DURATION, milter_timeout, "30s", 1, 3600, "each exchange with a milter"),
	ROW("milter", "spam_header", CT_STR, milter_spam_header, "", 0, 0, "NAME: VALUE a milter's spam mark; its mail goes into Junk"),

	ROW("http", "listen", CT_LISTEN, http_listen, "", 0, 0, "port 80: ACME http-01; everything else redirected to https"),
	ROW("https", "listen", CT_LISTEN, https_listen, "", 0, 0, "port 443: MTA-STS policy, autoconfig, autodiscover, /metrics"),
	ROW("mta_sts", "mode", CT_STR, mta_sts_mode, "testing", 0, 0, "none | testing | enforce (RFC 8461 3.2)"),
	ROW("mta_sts", "mx", CT_WORDS, mta_sts_mx, "", 0, 0, "MX names in the policy; default [server] hostname"),
	ROW("mta_sts", "max_age", CT_UINT, mta_sts_max_age, "604800", 1, 31557600, "seconds senders may cache the policy"),
	ROW("acme", "directory", CT_STR, acme_directory, "", 0, 0, "ACME directory URL (https); empty = ACME off"),
	ROW("acme", "email", CT_STR, acme_email, "", 0, 0, "account contact (mailto:), optional"),
	ROW("acme", "domains", CT_WORDS, acme_domains, "", 0, 0, "names in the certificate; default hostname, mta-sts.D, autoconfig.D"),
	ROW("acme", "challenge", CT_STR, acme_challenge, "tls-alpn-01", 0, 0, "tls-alpn-01 ([https] listener) | http-01 ([http] listener)"),
	ROW("acme", "ca_file", CT_STR, acme_ca_file, "", 0, 0, "CA certificates for the directory's TLS; default the system's"),
	ROW("acme", "renew_before", CT_DURATION, acme_renew_before, "30d", 3600, 31536000, "renew this long before the certificate expires"),
	ROW("acme", "retry", CT_DURATION, acme_retry, "10m", 1, 86400, "first retry after a failure; later ones wait twice as long, up to a day"),
};

static const char config_dev_text[] =
	"[server]\n"
	"hostname = localhost\n"
	"state_dir = ./tern-data\n"
	"[smtp]\n"
	"listen = 127.0.0.1:2525\n"
	"[submission]\n"
	"listen = 127.0.0.1:2587\n"
	"[submissions]\n"
	"listen = 127.0.0.1:2465\n"
	"[pop3]\n"
	"listen = 127.0.0.1:2110\n"
	"[pop3s]\n"
	"listen = 127.0.0.1:2995\n"
	"[imap]\n"
	"listen = 127.0.0.1:2143\n"
	"[imaps]\n"
	"listen = 127.0.0.1:2993\n"
	"[http]\n"
	"listen = 127.0.0.1:8080\n"
	"[https]\n"
	"listen = 127.0.0.1:8443\n"
	"[domains]\n"
	"local = localhost\n";

struct config_parse {
	struct config *cfg;
	const char *name;
	unsigned line;
	unsigned errors;
	bool seen[ARRAY_LEN(config_table)];
	const char *text;         /* reading from a string */
	FILE *fp;                 /* or from a file */
};

static void *field(struct config *c, const struct config_row *r)
{
	return (char *)c + r->offset;
}

bool listen_parse(const char *s, struct listen_addr *out)
{
	char host[64];
	const char *colon, *h = s;
	size_t hlen;
	uint64_t port;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return false;
		h = s + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return false;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	/* "::1:25" could be [::1]:25 or [::1:25] with no port: IPv6 needs [] */
	if (s[0] != '[' && strchr(host, ':') != NULL)
		return false;
	if (!parse_u64(colon + 1, strlen(colon + 1), 1, 65535, &port))
		return false;
	if (strcmp(host, "*") == 0)
		strcpy(host, "0.0.0.0");
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		snprintf(out->text, sizeof(out->text), "%s:%u", host, (unsigned)port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*sin6);
		snprintf(out->text, sizeof(out->text), "[%s]:%u", host, (unsigned)port);
	} else {
		return false;
	}
	return true;
}

bool cidr_parse(const char *s, struct cidr *out)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(buf))
		return false;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = 128;
	} else {
		return false;
	}
	if (slash) {
		if (!parse_u64(slash + 1, strlen(slash + 1), 0, out->bits, &bits))
			return false;
		out->bits = (unsigned)bits;
	}
	return true;
}

static bool prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	const unsigned char *addr;
	unsigned char mapped[4];
	int family = sa->sa_family;

	if (family == AF_INET) {
		addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		addr = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(mapped, a6->s6_addr + 12, 4);
			addr = mapped;
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].family == family && prefix_match(l->v[i].addr, addr, l->v[i].bits))
			return true;
	return false;
}

bool config_is_local_domain(const struct config *c, const char *domain)
{
	for (size_t i = 0; i < c->local_domains.n; i++)
		if (strcasecmp(c->local_domains.v[i], domain) == 0)
			return true;
	return false;
}

/* Split a value on commas and white space, calling fn on each item. */
static bool split_items(const char *v, bool (*fn)(const char *item, void *arg), void *arg)
{
	char *copy = xstrdup(v), *save = NULL, *tok;
	bool ok = true;
	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		if (!fn(tok, arg)) {
			ok = false;
			break;
		}
	free(copy);
	return ok;
}

static bool add_listen(const char *item, void *arg)
{
	struct listen_list *l = arg;
	struct listen_addr a;
	if (!listen_parse(item, &a))
		return false;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = a;
	return true;
}

static bool add_cidr(const char *item, void *arg)
{
	struct cidr_list *l = arg;
	struct cidr c;
	if (!cidr_parse(item, &c))
		return false;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = c;
	return true;
}

static bool add_word(const char *item, void *arg)
{
	struct word_list *l = arg;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(item);
	return true;
}

/* A DNSBL zone spec: checked here so that a typo is a FILE:LINE error. */
static bool add_zone(const char *item, void *arg)
{
	struct dnsbl_zone z;

	if (dnsbl_zone_parse(item, strlen(item), &z) != DNSBL_ZONE_OK)
		return false;
	return add_word(item, arg);
}

static bool add_milter(const char *item, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return milter_addr_parse(item, &ss, &len) && add_word(item, arg);
}

static void free_value(struct config *c, const struct config_row *r)
{
	void *f = field(c, r);
	switch (r->type) {
	case CT_STR:
		free(*(char **)f);
		*(char **)f = NULL;
		break;
	case CT_LISTEN:
		free(((struct listen_list *)f)->v);
		memset(f, 0, sizeof(struct listen_list));
		break;
	case CT_CIDRS:
		free(((struct cidr_list *)f)->v);
		memset(f, 0, sizeof(struct cidr_list));
		break;
	case CT_WORDS:
	case CT_ZONES:
	case CT_MILTERS: {
		struct word_list *w = f;
		for (size_t i = 0; i < w->n; i++)
			free(w->v[i]);
		free(w->v);
		memset(w, 0, sizeof(*w));
		break;
	}
	default:
		break;
	}
}

/* Store value into the row's field; on error returns a static message. */
static const char *set_value(struct config *c, const struct config_row *r, const char *v)
{
	void *f = field(c, r);
	uint64_t n;

	free_value(c, r);
	switch (r->type) {
	case CT_STR:
		*(char **)f = xstrdup(v);
		return NULL;
	case CT_UINT:
		if (!parse_u64(v, strlen(v), r->min, r->max, &n))
			return "expects a whole number within its bounds";
		*(unsigned *)f = (unsigned)n;
		return NULL;
	case CT_SIZE:
		if (!parse_size(v, &n) || n < r->min || n > r->max)
			return "expects a size such as 35M, 512K or 1048576, within its bounds";
		*(uint64_t *)f = n;
		return NULL;
	case CT_DURATION:
		if (!parse_duration(v, &n) || n < r->min || n > r->max)
			return "expects a duration such as 90s, 30m, 4h or 5d, within its bounds";
		*(uint64_t *)f = n;
		return NULL;
	case CT_BOOL:
		if (!strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcmp(v, "1"))
			*(bool *)f = true;
		else if (!strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcmp(v, "0"))
			*(bool *)f = false;
		else
			return "expects yes or no";
		return NULL;
	case CT_ACCESS:
		if (!strcasecmp(v, "off"))
			*(unsigned *)f = ACCESS_OFF;
		else if (!strcasecmp(v, "auth"))
			*(unsigned *)f = ACCESS_AUTH;
		else if (!strcasecmp(v, "on"))
			*(unsigned *)f = ACCESS_ON;
		else
			return "expects off, auth or on";
		return NULL;
	case CT_DMARC:
		if (!strcasecmp(v, "off"))
			*(unsigned *)f = DMARC_MODE_OFF;
		else if (!strcasecmp(v, "report"))
			*(unsigned *)f = DMARC_MODE_REPORT;
		else if (!strcasecmp(v, "enforce"))
			*(unsigned *)f = DMARC_MODE_ENFORCE;
		else
			return "expects enforce, report or off";
		return NULL;
	case CT_LISTEN:
		return split_items(v, add_listen, f) ? NULL
			: "expects addresses such as 127.0.0.1:25 or [::1]:25, separated by commas";
	case CT_CIDRS:
		return split_items(v, add_cidr, f) ? NULL
			: "expects networks such as 127.0.0.0/8 or ::1";
	case CT_WORDS:
		split_items(v, add_word, f);
		return NULL;
	case CT_ZONES:
		return split_items(v, add_zone, f) ? NULL
			: "expects zones such as zen.example or zen.example=127.0.0.2, separated by commas";
	case CT_CHECK_AT:
		if (!strcasecmp(v, "connect"))
			*(unsigned *)f = CHECK_AT_CONNECT;
		else if (!strcasecmp(v, "rcpt"))
			*(unsigned *)f = CHECK_AT_RCPT;
		else
			return "expects connect or rcpt";
		return NULL;
	case CT_MILTERS:
		return split_items(v, add_milter, f) ? NULL
			: "expects inet:ADDRESS:PORT or unix:/PATH, separated by commas";
	case CT_MILTER_ACTION:
		if (!strcasecmp(v, "tempfail"))
			*(unsigned *)f = MILTER_DEFAULT_TEMPFAIL;
		else if (!strcasecmp(v, "accept"))
			*(unsigned *)f = MILTER_DEFAULT_ACCEPT;
		else if (!strcasecmp(v, "reject"))
			*(unsigned *)f = MILTER_DEFAULT_REJECT;
		else
			return "expects tempfail, accept or reject";
		return NULL;
	}
	return "unknown type";
}

static int config_handler(void *user, const char *section, const char *key, const char *value)
{
	struct config_parse *p = user;
	const char *err;

	for (size_t i = 0; i < ARRAY_LEN(config_table); i++) {
		const struct config_row *r = &config_table[i];
		if (strcasecmp(r->section, section) != 0 || strcasecmp(r->key, key) != 0)
			continue;
		if (p->seen[i]) {
			fprintf(stderr, "%s:%u: [%s] %s is set twice\n", p->name, p->line, section, key);
			p->errors++;
			return 1;
		}
		p->seen[i] = true;
		err = set_value(p->cfg, r, value);
		if (err) {
			fprintf(stderr, "%s:%u: [%s] %s = %s: %s\n", p->name, p->line, section, key, value, err);
			p->errors++;
		}
		return 1;
	}
	bool known_section = false;
	for (size_t i = 0; i < ARRAY_LEN(config_table); i++)
		if (strcasecmp(config_table[i].section, section) == 0)
			known_section = true;
	if (!known_section)
		fprintf(stderr, "%s:%u: unknown section [%s]\n", p->name, p->line, section);
	else
		fprintf(stderr, "%s:%u: unknown key '%s' in [%s]\n", p->name, p->line, key, section);
	p->errors++;
	return 1;
}

/* inih reads one line per call; counting calls gives handlers the line. */
static char *config_reader(char *buf, int size, void *stream)
{
	struct config_parse *p = stream;
	char *r;

	if (p->fp) {
		r = fgets(buf, size, p->fp);
	} else {
		size_t n = 0;
		if (*p->text == '\0')
			return NULL;
		while (p->text[n] && p->text[n] != '\n' && n + 2 < (size_t)size)
			n++;
		if (p->text[n] == '\n')
			n++;
		memcpy(buf, p->text, n);
		buf[n] = '\0';
		p->text += n;
		r = buf;
	}
	if (r)
		p->line++;
	return r;
}

static void apply_defaults(struct config *c)
{
	for (size_t i = 0; i < ARRAY_LEN(config_table); i++) {
		const char *err = set_value(c, &config_table[i], config_table[i].def);
		if (err)
			die("internal: default for %s.%s: %s", config_table[i].section, config_table[i].key, err);
	}
}

/* Values derived from others, and checks that span keys. */
static unsigned finish(struct config *c, const char *name)
{
	unsigned errors = 0;
	if (c->users_file[0] == '\0') {
		free(c->users_file);
		c->users_file = xasprintf("%s/users", c->state_dir);
	}
	if (c->tls_cert[0] == '\0') {
		free(c->tls_cert);
		c->tls_cert = xasprintf("%s/tls/cert.pem", c->state_dir);
	}
	if (c->tls_key[0] == '\0') {
		free(c->tls_key);
		c->tls_key = xasprintf("%s/tls/key.pem", c->state_dir);
	}
	if (c->hostname[0] == '\0') {
		fprintf(stderr, "%s: [server] hostname must not be empty\n", name);
		errors++;
	}
	if (c->state_dir[0] == '\0') {
		fprintf(stderr, "%s: [server] state_dir must not be empty\n", name);
		errors++;
	}
	if (strcmp(c->acme_challenge, "tls-alpn-01") != 0 && strcmp(c->acme_challenge, "http-01") != 0) {
		fprintf(stderr, "%s: [acme] challenge must be tls-alpn-01 or http-01\n", name);
		errors++;
	}
	if (c->acme_directory[0] && strncmp(c->acme_directory, "https://", 8) != 0) {
		fprintf(stderr, "%s: [acme] directory must be an https:// URL (RFC 8555 6.1)\n", name);
		errors++;
	}
	/* The CA validates on the listener of the challenge (RFC 8555 8.3, RFC 8737 3). */
	if (c->acme_directory[0] && strcmp(c->acme_challenge, "http-01") == 0 && c->http_listen.n == 0) {
		fprintf(stderr, "%s: [acme] challenge http-01 needs an [http] listen\n", name);
		errors++;
	}
	if (c->acme_directory[0] && strcmp(c->acme_challenge, "tls-alpn-01") == 0 && c->https_listen.n == 0) {
		fprintf(stderr, "%s: [acme] challenge tls-alpn-01 needs an [https] listen\n", name);
		errors++;
	}
	if (strcmp(c->mta_sts_mode, "none") != 0 && strcmp(c->mta_sts_mode, "testing") != 0 &&
	    strcmp(c->mta_sts_mode, "enforce") != 0) {
		fprintf(stderr, "%s: [mta_sts] mode must be none, testing or enforce\n", name);
		errors++;
	}
	if (c->dnsbl_zones.n + c->dnsbl_allow.n > DNSBL_ZONES_MAX) {
		fprintf(stderr, "%s: [dnsbl] zones and allow name more than %d zones together\n", name, DNSBL_ZONES_MAX);
		errors++;
	}
	if (c->local_domains.n == 0) {
		fprintf(stderr, "%s: [domains] local must name at least one domain\n", name);
		errors++;
	}
	return errors;
}

static struct config *config_parse_any(struct config_parse *p)
{
	struct config *c = xcalloc(1, sizeof(*c));
	int r;

	p->cfg = c;
	apply_defaults(c);
	r = ini_parse_stream(config_reader, p, config_handler, p);
	if (r < 0) {
		fprintf(stderr, "%s: cannot read the file\n", p->name);
		p->errors++;
	} else if (r > 0 && p->errors == 0) {
		fprintf(stderr, "%s:%d: syntax error (expected [section] or key = value)\n", p->name, r);
		p->errors++;
	}
	p->errors += finish(c, p->name);
	c->path = xstrdup(p->name);
	if (p->errors) {
		config_free(c);
		return NULL;
	}
	return c;
}

struct config *config_load(const char *path)
{
	struct config_parse p = { .name = path };
	struct config *c;

	p.fp = fopen(path, "r");
	if (p.fp == NULL) {
		fprintf(stderr, "%s: cannot open: %m\n", path);
		return NULL;
	}
	c = config_parse_any(&p);
	fclose(p.fp);
	return c;
}

struct config *config_dev_default(void)
{
	struct config_parse p = { .name = "(built-in)", .text = config_dev_text };
	struct config *c = config_parse_any(&p);
	if (c == NULL)
		die("internal: the built-in configuration does not parse");
	c->dev_default = true;
	return c;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < ARRAY_LEN(config_table); i++)
		free_value(c, &config_table[i]);
	free(c->path);
	free(c);
}

bool config_has_key(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(config_table); i++)
		if (!strcmp(config_table[i].section, section) && !strcmp(config_table[i].key, key))
			return true;
	return false;
}

void config_print_example(void *file)
{
	FILE *f = file;
	const char *section = "";
	fputs("; tern.conf - generated by `tern example-config` from the config table.\n"
	      "; Durations: 90s 30m 4h 5d.  Sizes: 512K 35M 1G.  Lists: comma or space.\n", f);
	for (size_t i = 0; i < ARRAY_LEN(config_table); i++) {
		const struct config_row *r = &config_table[i];
		if (strcmp(section, r->section) != 0) {
			fprintf(f, "\n[%s]\n", r->section);
			section = r->section;
		}
		fprintf(f, "%-20s = %-20s ; %s\n", r->key, r->def, r->doc);
	}
}
