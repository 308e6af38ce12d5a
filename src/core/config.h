/*
 * config.h - tern's configuration: one typed table (section, key, type,
 * default, bounds) drives parsing, `tern check-config` and the example
 * file.  Without -c, tern runs an embedded development default.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64];            /* "127.0.0.1:25", "[::1]:25" */
};

struct listen_list {
	size_t n;
	struct listen_addr *v;
};

struct cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

struct cidr_list {
	size_t n;
	struct cidr *v;
};

struct word_list {
	size_t n;
	char **v;
};

enum access_mode { ACCESS_OFF, ACCESS_AUTH, ACCESS_ON };
enum dmarc_mode { DMARC_MODE_OFF, DMARC_MODE_REPORT, DMARC_MODE_ENFORCE };
enum check_at { CHECK_AT_CONNECT, CHECK_AT_RCPT };   /* [dnsbl] check_at */
/* [milter] default_action */
enum milter_default { MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_ACCEPT, MILTER_DEFAULT_REJECT };

struct config {
	char *path;               /* file read, or "(built-in)" */
	bool dev_default;

	/* [server] */
	char *hostname;
	char *state_dir;
	char *user;
	unsigned workers;
	bool log_debug;           /* event=state lines too */

	/* [smtp] */
	struct listen_list smtp_listen;
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	unsigned max_connection_rate;   /* per client address per minute, 0 = none */
	unsigned max_message_rate;      /* MAIL per client address per minute, 0 = none */
	unsigned max_received;
	uint64_t command_timeout;
	uint64_t data_timeout;
	unsigned vrfy;            /* enum access_mode */
	unsigned expn;
	bool smtp_milter;         /* the MX service through [milter] */

	/* [submission], [submissions] */
	struct listen_list submission_listen;
	struct listen_list submissions_listen;
	bool sender_any;          /* authenticated users may use any MAIL FROM */
	bool submission_milter;   /* 587 and 465 through [milter] */

	/* [milter] */
	struct word_list milter_servers;   /* checked by milter_addr_parse() */
	unsigned milter_default_action;    /* enum milter_default */
	uint64_t milter_timeout;
	char *milter_spam_header;         /* "X-Spam: Yes"; "" = none */

	/* [pop3], [pop3s] */
	struct listen_list pop3_listen;
	struct listen_list pop3s_listen;
	uint64_t pop3_timeout;
	uint64_t pop3_command_timeout;   /* first octet of a line to its end */
	/* [imap], [imaps] */
	struct listen_list imap_listen;
	struct listen_list imaps_listen;
	uint64_t imap_timeout;
	uint64_t imap_command_timeout;
	uint64_t login_delay;

	/* [tls] */
	char *tls_cert;
	char *tls_key;

	/* [auth] */
	bool allow_plaintext;     /* plaintext AUTH/USER without TLS, from anywhere */
	unsigned max_auth_failures;
	uint64_t auth_block_time;  /* seconds failures are remembered / a block lasts */

	/* [domains] */
	struct word_list local_domains;
	char *postmaster;         /* [domains] postmaster, "" = the domain's first user */

	/* [users], [aliases] */
	char *users_file;
	char *aliases_file;

	/* [relay] */
	struct cidr_list trusted_networks;
	char *smarthost;
	char *smarthost_user;
	char *smarthost_password;

	/* [queue] */
	uint64_t retry;
	uint64_t max_age;
	uint64_t delay_warning;

	/* [dns] */
	char *dns_servers;
	uint64_t dns_timeout;           /* per query (s) */

	/* [dkim], [checks] */
	struct word_list dkim_keys;     /* DOMAIN:SELECTOR:PEM_PATH */
	bool check_spf, check_dkim;
	unsigned check_dmarc;           /* enum dmarc_mode */
	char *authserv_id;              /* "" = hostname */
	bool check_dns_tempfail;        /* temperror: 451 instead of accept */

	/* [dnsbl] */
	struct word_list dnsbl_zones;   /* "ZONE" or "ZONE=127.0.0.x", checked */
	struct word_list dnsbl_allow;
	unsigned dnsbl_check_at;        /* enum check_at */
	uint64_t dnsbl_timeout;         /* seconds */
	unsigned dnsbl_cache_max;

	/* [greylist] */
	bool greylist_enabled;
	uint64_t greylist_delay, greylist_expire;   /* seconds */
	unsigned greylist_max_entries;

	/* [delivery] */
	unsigned remote_port;
	unsigned max_remote_connections;
	unsigned max_connections_per_destination;
	struct word_list tls_required;  /* destination domains that must use STARTTLS */
	uint64_t reuse_idle;            /* idle outbound connection kept (s) */
	uint64_t client_timeout;        /* cap on client timeouts, 0 = RFC values */

	/* [http], [https], [mta_sts] */
	struct listen_list http_listen;
	struct listen_list https_listen;
	char *mta_sts_mode;             /* none | testing | enforce */
	struct word_list mta_sts_mx;    /* empty: the hostname */
	unsigned mta_sts_max_age;

	/* [acme] (web/acme.c) */
	char *acme_directory;           /* "": ACME off */
	char *acme_email;
	struct word_list acme_domains;  /* empty: hostname, mta-sts.D, autoconfig.D */
	char *acme_challenge;           /* tls-alpn-01 | http-01 */
	char *acme_ca_file;             /* "": the system's trust store */
	uint64_t acme_renew_before;     /* seconds */
	uint64_t acme_retry;            /* seconds; doubles per failure */
};

/* Load a config file; errors are printed as "FILE:LINE: message" to stderr.
 * Returns NULL when there was any error. */
struct config *config_load(const char *path);
/* The embedded development default of DESIGN.md. */
struct config *config_dev_default(void);
void config_free(struct config *c);

/* Print the documented example configuration generated from the table. */
void config_print_example(void *file);
/* Does the table know section.key?  (`tern init` writes a section's keys
 * live only when this build reads them.) */
bool config_has_key(const char *section, const char *key);

/* Helpers used by the sessions. */
bool config_is_local_domain(const struct config *c, const char *domain);
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);
bool cidr_parse(const char *s, struct cidr *out);
bool listen_parse(const char *s, struct listen_addr *out);

#endif
