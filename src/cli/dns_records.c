/*
 * dns_records.c - `tern dns-records DOMAIN [-c FILE]`: every record a
 * local domain needs, as zone-file lines (RFC 1035 5) with absolute names,
 * to paste into the domain's existing zone: MX, SPF (RFC 7208), DKIM
 * (RFC 6376 3.6.1; RFC 8463 for Ed25519) for each key under
 * state_dir/dkim/, DMARC (RFC 7489), MTA-STS (RFC 8461 3.1) with an id
 * that is a hash of the policy text, TLS-RPT (RFC 8460), SRV records for
 * the mail services (RFC 6186, RFC 8314 5.1: port 0 and target "." for a
 * service not offered), and the host names of the HTTP service.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"
#include "msgauth/dkim.h"
#include "web/web.h"

#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TTL 3600

static char *lower_name(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; *p; p++)
		*p = ascii_lower(*p);
	size_t n = strlen(d);
	if (n && d[n - 1] == '.')
		d[n - 1] = '\0';
	return d;
}

static void rr(const char *name, const char *type, const char *data)
{
	printf("%-40s %d IN %-5s %s\n", name, TTL, type, data);
}

/* A TXT record of any length: strings of at most 255 octets (RFC 1035
 * 3.3.14), in parentheses when there are several. */
static void rr_txt(const char *name, const char *text)
{
	size_t n = strlen(text);
	if (n <= 255) {
		char *q = xasprintf("\"%s\"", text);
		rr(name, "TXT", q);
		free(q);
		return;
	}
	printf("%-40s %d IN %-5s (", name, TTL, "TXT");
	for (size_t i = 0; i < n; i += 255)
		printf("\n\t\"%.*s\"", (int)(n - i < 255 ? n - i : 255), text + i);
	printf(" )\n");
}

/* "v=DKIM1; k=...; p=..." for the private key in path, or NULL. */
static char *dkim_record(const char *path)
{
	char err[200];
	EVP_PKEY *key = dkim_key_load(path, err, sizeof(err));
	char *rec;
	if (key == NULL)
		return NULL;
	rec = dkim_key_record(key);
	EVP_PKEY_free(key);
	return rec;
}

/* Keys `tern dkim keygen` made: state_dir/dkim/SELECTOR._domainkey.DOMAIN.pem;
 * their records printed when print is set. */
static size_t scan_dkim(const struct config *cfg, const char *domain, bool print)
{
	char *dir = xasprintf("%s/dkim", cfg->state_dir);
	char *suffix = xasprintf("._domainkey.%s.pem", domain);
	size_t slen = strlen(suffix), found = 0;
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		const char *fn = names[i]->d_name;
		size_t len = strlen(fn);
		if (len > slen && strcmp(fn + len - slen, suffix) == 0 && fn[0] != '.') {
			char *path = xasprintf("%s/%s", dir, fn);
			char *rec = dkim_record(path);
			char *name = xasprintf("%.*s._domainkey.%s.", (int)(len - slen), fn, domain);
			if (rec) {
				if (print)
					rr_txt(name, rec);
				found++;
			} else if (print) {
				printf("; %s: not a usable private key, skipped\n", path);
			}
			free(rec);
			free(name);
			free(path);
		}
		free(names[i]);
	}
	free(names);
	free(dir);
	free(suffix);
	return found;
}

/* RFC 8461 3.1: id is 1-32 alphanumerics; a hash of the policy changes
 * exactly when the policy does. */
static void mta_sts_id(const struct config *cfg, char out[33])
{
	char *policy = web_mta_sts_policy(cfg);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(policy, strlen(policy), md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	free(policy);
}

static void print_srv(const struct config *cfg, const char *domain, const char *host)
{
	for (size_t i = 0; i < web_mail_services_n; i++) {
		const struct web_mail_service *s = &web_mail_services[i];
		unsigned port = web_mail_service_port(cfg, s);
		char *name = xasprintf("%s.%s.", s->srv, domain);
		char *data = port ? xasprintf("%zu 1 %u %s.", i, port, host) : xstrdup("0 0 0 .");
		rr(name, "SRV", data);
		free(name);
		free(data);
	}
	if (cfg->https_listen.n) {
		const struct sockaddr_storage *ss = &cfg->https_listen.v[0].ss;
		unsigned port = ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
							       : ((const struct sockaddr_in *)ss)->sin_port);
		char *name = xasprintf("_autodiscover._tcp.%s.", domain);
		char *data = xasprintf("0 1 %u %s.", port, host);
		rr(name, "SRV", data);
		free(name);
		free(data);
	}
}

static void print_records(const struct config *cfg, const char *domain, const char *host)
{
	char id[33], *name, *data;

	printf("; DNS records for %s from tern (%s); paste into the zone of %s.\n", domain, cfg->path, domain);
	name = xasprintf("%s.", domain);
	data = xasprintf("10 %s.", host);
	rr(name, "MX", data);
	rr_txt(name, "v=spf1 mx -all");
	free(data);

	if (scan_dkim(cfg, domain, true) == 0)
		printf("; no DKIM key for %s under %s/dkim/: run `tern dkim keygen %s` and print these again\n",
		       domain, cfg->state_dir, domain);
	free(name);
	name = xasprintf("_dmarc.%s.", domain);
	rr_txt(name, "v=DMARC1; p=quarantine");
	free(name);

	mta_sts_id(cfg, id);
	name = xasprintf("_mta-sts.%s.", domain);
	data = xasprintf("v=STSv1; id=%s", id);
	rr_txt(name, data);
	free(name);
	free(data);
	name = xasprintf("_smtp._tls.%s.", domain);
	data = xasprintf("v=TLSRPTv1; rua=mailto:postmaster@%s", domain);
	rr_txt(name, data);
	free(name);
	free(data);

	/* The HTTP service's names point at the mail host (unless it is
	 * one of them: a CNAME cannot sit beside other records). */
	data = xasprintf("%s.", host);
	static const char *const labels[] = { "mta-sts", "autoconfig", "autodiscover" };
	for (size_t i = 0; i < ARRAY_LEN(labels); i++) {
		name = xasprintf("%s.%s", labels[i], domain);
		if (strcmp(name, host) != 0) {
			char *fq = xasprintf("%s.", name);
			rr(fq, "CNAME", data);
			free(fq);
		}
		free(name);
	}
	free(data);
	print_srv(cfg, domain, host);
	if (cfg->https_listen.n == 0)
		printf("; [https] listen is not set: the MTA-STS policy and autoconfig are not served yet\n");
}

size_t dns_records_dkim_keys(const struct config *cfg, const char *domain)
{
	return scan_dkim(cfg, domain, false);
}

void dns_records_print(const struct config *cfg, const char *domain)
{
	char *host = lower_name(cfg->hostname);
	print_records(cfg, domain, host);
	free(host);
}

int cmd_dns_records(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	struct config *cfg;
	char *domain, *host;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tern dns-records DOMAIN [-c FILE]\n");
		return 2;
	}
	cfg = cli_load_config(path);
	domain = lower_name(argv[1]);
	host = lower_name(cfg->hostname);
	if (!config_is_local_domain(cfg, domain)) {
		fprintf(stderr, "tern: %s is not a local domain ([domains] local)\n", domain);
		free(domain);
		free(host);
		config_free(cfg);
		return 1;
	}
	if (strchr(host, '.') == NULL)
		fprintf(stderr, "tern: warning: [server] hostname %s is not a fully qualified name\n", host);
	print_records(cfg, domain, host);
	free(domain);
	free(host);
	config_free(cfg);
	return 0;
}
