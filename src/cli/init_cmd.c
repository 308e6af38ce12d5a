/*
 * init_cmd.c - `tern init --domain D --hostname H [--acme-email E]
 * [--state-dir DIR] [-c FILE] [--force]`: the first day of a domain.
 *
 * In order: a commented production config (every listener on its
 * standard port, D local, the TLS files, ACME when an email is given),
 * a DKIM key for D, a postmaster@D account with a random password, and
 * the DNS records D needs (those of `tern dns-records`).
 *
 * Idempotent: what exists is kept and said so.  --force rewrites the
 * config only; the DKIM key and the account are state that DNS and
 * people already rely on (a new key breaks the published record; a lost
 * password is `tern user passwd`'s job), so init never replaces them.
 *
 * Standard output carries only the DNS records, so that it can go
 * straight into a file; what init did, and the password (printed once,
 * never logged or written anywhere but the users file's hash), go to
 * standard error, the terminal of the person running it.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "store/users.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INIT_USAGE                                                                               \
	"usage: tern init --domain D --hostname H [--acme-email E] [--state-dir DIR]\n"           \
	"                 [-c FILE] [--force]\n"

#define INIT_DEFAULT_CONFIG    "/etc/tern/tern.conf"
#define INIT_DEFAULT_STATE_DIR "/var/lib/tern"
#define INIT_ACME_DIRECTORY    "https://acme-v02.api.letsencrypt.org/directory"
#define INIT_DKIM_SELECTOR     "tern"

struct init_opts {
	const char *config;
	char *domain;
	char *hostname;
	const char *acme_email;
	char *state_dir;
	bool force;
};

/* ---- arguments ------------------------------------------------------------ */

/* A host name of two or more labels (RFC 1123 2.1), lower-cased, final dot
 * dropped; NULL if it is not one.  It goes into the config file and zone
 * lines, so nothing else passes. */
static char *init_host_name(const char *s)
{
	size_t n = strlen(s), label = 0, dots = 0;
	char *d;

	if (n && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = ascii_lower(s[i]);
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return NULL;
			label = 0;
			dots++;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && label > 0)))
			return NULL;
		if (++label > 63)
			return NULL;
	}
	if (dots == 0 || s[n - 1] == '-')
		return NULL;
	d = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++)
		d[i] = ascii_lower(s[i]);
	d[n] = '\0';
	return d;
}

/* An address for the CA's account: printable, no space or comment
 * character (it becomes a config value), one "@" with text both sides. */
static bool init_email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') || strlen(s) > 254)
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == ';' || *p == '#' || *p == '"' || *p == '\\')
			return false;
	return true;
}

/* An absolute path without trailing slashes or characters that would end
 * a config value. */
static char *init_state_dir(const char *s)
{
	size_t n = strlen(s);
	if (s[0] != '/')
		return NULL;
	for (const char *p = s; *p; p++)
		if (*p < ' ' || *p == ';' || *p == '#')
			return NULL;
	while (n > 1 && s[n - 1] == '/')
		n--;
	return xstrndup(s, n);
}

static bool init_parse_args(int argc, char **argv, struct init_opts *o)
{
	const char *domain = NULL, *host = NULL, *state = INIT_DEFAULT_STATE_DIR;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		if (!strcmp(a, "--domain") && has)
			domain = argv[++i];
		else if (!strcmp(a, "--hostname") && has)
			host = argv[++i];
		else if (!strcmp(a, "--acme-email") && has)
			o->acme_email = argv[++i];
		else if (!strcmp(a, "--state-dir") && has)
			state = argv[++i];
		else if (!strcmp(a, "--force"))
			o->force = true;
		else
			return false;
	}
	if (domain == NULL || host == NULL)
		return false;
	if (!(o->domain = init_host_name(domain)))
		die("--domain %s is not a domain name (letters, digits, '-', two labels or more)", domain);
	if (!(o->hostname = init_host_name(host)))
		die("--hostname %s is not a fully qualified host name", host);
	if (o->acme_email && !init_email_ok(o->acme_email))
		die("--acme-email %s is not a usable address", o->acme_email);
	if (!(o->state_dir = init_state_dir(state)))
		die("--state-dir %s must be an absolute path", state);
	if (o->config == NULL)
		o->config = INIT_DEFAULT_CONFIG;
	return true;
}

/* ---- the config file ---------------------------------------------------------- */

/* The [acme] keys init writes, live when this build reads them all. */
static bool init_acme_known(void)
{
	return config_has_key("acme", "email") && config_has_key("acme", "directory") &&
	       config_has_key("acme", "challenge");
}

static void init_write_listen(FILE *f, const char *section, unsigned port, const char *what)
{
	fprintf(f, "\n[%s]\nlisten = 0.0.0.0:%u, [::]:%u\t; %s\n", section, port, port, what);
}

static void init_write_acme(FILE *f, const struct init_opts *o)
{
	/* Commented out: either no email was given, or this build has no
	 * [acme] section yet (check-config would refuse its keys). */
	const char *c = o->acme_email && init_acme_known() ? "" : ";";

	fputs("\n; Certificates from Let's Encrypt (ACME, RFC 8555) for the hostname and\n"
	      "; mta-sts. / autoconfig. of each local domain, renewed 30 days before they\n"
	      "; expire; tls-alpn-01 (RFC 8737) is answered on the [https] listener.\n", f);
	if (o->acme_email == NULL)
		fputs("; Off: give an email address (tern init --acme-email, or below) to turn it on.\n", f);
	else if (!init_acme_known())
		fputs("; This tern does not read an [acme] section yet: uncomment it once\n"
		      "; `tern example-config` lists [acme] email, directory and challenge.\n", f);
	fprintf(f, "%s[acme]\n%semail = %s\n%sdirectory = %s\n%schallenge = tls-alpn-01\n", c, c,
		o->acme_email ? o->acme_email : "postmaster@example.org", c, INIT_ACME_DIRECTORY, c);
}

static void init_write_config_text(FILE *f, const struct init_opts *o)
{
	char date[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	fprintf(f, "; tern.conf for %s, written by `tern init` on %s.\n"
		   "; Every key with its default and meaning: `tern example-config`, tern.conf(5).\n"
		   "; After an edit: tern check-config -c %s\n",
		o->domain, date, o->config);
	fprintf(f, "\n[server]\n"
		   "hostname = %s\t; in greetings and Received:; its A/AAAA and PTR records name this host\n"
		   "state_dir = %s\t; queue/, mail/, dkim/, tls/ and the users file\n"
		   "; user = tern\t; drop root once the ports are bound (create the user first)\n",
		o->hostname, o->state_dir);
	fprintf(f, "\n[domains]\nlocal = %s\t; mail for these is delivered here; add more, comma-separated\n",
		o->domain);

	init_write_listen(f, "smtp", 25, "MX: mail from the Internet, STARTTLS offered");
	init_write_listen(f, "submission", 587, "your users' mail programs: STARTTLS, then AUTH");
	init_write_listen(f, "submissions", 465, "the same over implicit TLS (RFC 8314)");
	init_write_listen(f, "pop3", 110, "POP3, STLS before login");
	init_write_listen(f, "pop3s", 995, "POP3 over implicit TLS");
	init_write_listen(f, "imap", 143, "IMAP, STARTTLS before login");
	init_write_listen(f, "imaps", 993, "IMAP over implicit TLS");
	init_write_listen(f, "http", 80, "redirects to https; ACME http-01");
	init_write_listen(f, "https", 443, "MTA-STS policy, autoconfig, autodiscover, /metrics");

	fprintf(f, "\n[tls]\n"
		   "; Until a real certificate is here, tern makes a self-signed one.\n"
		   "cert = %s/tls/cert.pem\n"
		   "key = %s/tls/key.pem\n",
		o->state_dir, o->state_dir);
	fputs("\n[mta_sts]\n"
	      "mode = testing\t; enforce once mail has flowed with a trusted certificate for a while\n", f);
	init_write_acme(f, o);
}

/* Written as a temporary file and synced before it takes the name, so the
 * config is whole or absent; with force an existing file is replaced in
 * one rename, else never (fs_commit refuses an existing name). */
static void init_store_file(const char *path, const char *text, size_t len, mode_t mode, bool force)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd;

	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	if (!mkdir_p(dir, 0755))
		die("cannot create %s: %s", dir, strerror(errno));
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		die("cannot create %s: %s", tmp, strerror(errno));
	if (!write_all(fd, text, len) || fchmod(fd, mode) != 0) {
		unlink(tmp);
		die("cannot write %s: %s", tmp, strerror(errno));
	}
	if (force) {
		if (fsync(fd) != 0 || rename(tmp, path) != 0 || !dir_sync(dir)) {
			unlink(tmp);
			die("cannot store %s: %s", path, strerror(errno));
		}
	} else {
		struct fs_commit c = { .fd = fd, .tmp = tmp, .dst = path, .dir = dir };
		if (!fs_commit(&c, 1)) {
			unlink(tmp);
			die("cannot store %s: %s", path, strerror(c.err));
		}
	}
	close(fd);
	free(tmp);
	free(dir);
}

static void init_config(const struct init_opts *o)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	bool exists = access(o->config, F_OK) == 0;

	if (exists && !o->force) {
		fprintf(stderr, "tern: kept %s (it exists; --force rewrites it)\n", o->config);
		return;
	}
	f = open_memstream(&text, &len);
	if (f == NULL)
		die("out of memory");
	init_write_config_text(f, o);
	fclose(f);
	init_store_file(o->config, text, len, 0644, o->force);
	free(text);
	fprintf(stderr, "tern: %s %s\n", exists ? "rewrote" : "wrote", o->config);
	if (o->acme_email && !init_acme_known())
		fprintf(stderr, "tern: note: this build has no [acme] section; it is in %s, commented out\n",
			o->config);
}

/* ---- the DKIM key and the postmaster ------------------------------------------ */

static void init_dkim(const struct config *cfg, const char *domain)
{
	size_t n = dns_records_dkim_keys(cfg, domain);
	char *path;
	EVP_PKEY *key;

	if (n) {
		fprintf(stderr, "tern: kept the DKIM key%s of %s under %s/dkim/\n", n > 1 ? "s" : "", domain,
			cfg->state_dir);
		return;
	}
	key = dkim_keygen_store(cfg, domain, INIT_DKIM_SELECTOR, false, &path);
	fprintf(stderr, "tern: wrote the DKIM key %s\n", path);
	EVP_PKEY_free(key);
	free(path);
}

static void init_users_warn_cb(void *ctx, const char *path, size_t line, const char *what)
{
	(void)ctx;
	fprintf(stderr, "tern: warning: %s:%zu: %s\n", path, line, what);
}

/* 15 random octets: 20 characters of base64 with '+' and '/' replaced,
 * 120 bits, easy to copy from a terminal. */
static void init_password(char out[21])
{
	unsigned char raw[15];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		die("no randomness for the postmaster password");
	base64_encode(raw, sizeof(raw), out, 21);
	explicit_bzero(raw, sizeof(raw));
	for (char *p = out; *p; p++)
		if (*p == '+' || *p == '/')
			*p = *p == '+' ? 'x' : 'z';
}

static void init_postmaster(const struct config *cfg, const char *domain)
{
	char *addr = xasprintf("postmaster@%s", domain), *secret, pw[21];
	struct users *u = users_load(cfg->users_file, init_users_warn_cb, NULL);
	bool exists = users_find(u, addr) != NULL;

	users_free(u);
	if (exists) {
		fprintf(stderr, "tern: kept the account %s in %s\n", addr, cfg->users_file);
		free(addr);
		return;
	}
	init_password(pw);
	secret = passwd_hash(PASSWD_CRYPT, pw);
	if (secret == NULL)
		die("cannot hash the password");
	switch (users_update(cfg->users_file, addr, secret)) {
	case USERS_UPDATE_OK:
		break;
	case USERS_UPDATE_IO:
		die("cannot write %s: %s", cfg->users_file, strerror(errno));
	default:
		die("cannot add %s to %s", addr, cfg->users_file);
	}
	fprintf(stderr, "tern: added %s to %s; its password, shown only now: %s\n", addr, cfg->users_file, pw);
	explicit_bzero(pw, sizeof(pw));
	free(secret);
	free(addr);
}

int cmd_init(int argc, char **argv)
{
	struct init_opts o = { .config = cli_take_config(&argc, argv) };
	struct config *cfg;

	if (!init_parse_args(argc, argv, &o)) {
		fputs(INIT_USAGE, stderr);
		return 2;
	}
	init_config(&o);
	/* From here on the file is the truth (a kept one may differ from the
	 * arguments): it must load, as check-config would have it. */
	cfg = config_load(o.config);
	if (cfg == NULL)
		die("%s does not load (see above); fix it or rewrite it with --force", o.config);
	if (!config_is_local_domain(cfg, o.domain))
		die("%s is not in [domains] local of %s; add it or rewrite the file with --force", o.domain,
		    o.config);
	if (!mkdir_p(cfg->state_dir, 0700))
		die("cannot create %s: %s", cfg->state_dir, strerror(errno));
	init_dkim(cfg, o.domain);
	init_postmaster(cfg, o.domain);
	fprintf(stderr, "tern: the DNS records of %s follow on standard output; then: tern serve -c %s\n",
		o.domain, o.config);
	fflush(stderr);
	dns_records_print(cfg, o.domain);
	config_free(cfg);
	free(o.domain);
	free(o.hostname);
	free(o.state_dir);
	return 0;
}
