/*
 * dkim_cmd.c - `tern dkim keygen|sign|verify`.
 *
 * keygen makes a key under state_dir/dkim/ as SELECTOR._domainkey.DOMAIN.pem
 * (the name says what it signs for, so the server can find it without a
 * config line) and prints the TXT record as one zone-file line.
 * sign and verify run tern's signer and verifier over standard input;
 * they are for tests and scripts.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "msgauth/dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DKIM_USAGE                                                                              \
	"usage: tern dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [-c FILE]\n"      \
	"       tern dkim sign --key PEM --domain D --selector S < MESSAGE   (testing)\n"         \
	"       tern dkim verify [--record NAME=TXT]... < MESSAGE             (testing)\n"

/* A DNS label sequence that is also a safe file name part. */
static bool dns_name_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || strstr(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *p = d; *p; p++)
		*p = ascii_lower(*p);
	if (*d && d[strlen(d) - 1] == '.')
		d[strlen(d) - 1] = '\0';
	return d;
}

/* Written as tmp (mode 0600 from the start: a private key is never
 * readable by others, not even briefly), then fs_commit: data synced,
 * renamed without replacing an existing key, directory synced. */
static void keygen_write(const char *dir, const char *path, EVP_PKEY *key)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	FILE *f;
	struct fs_commit c;

	if (fd < 0)
		die("cannot create %s: %s", tmp, strerror(errno));
	f = fdopen(dup(fd), "w");
	if (!f || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) || fclose(f) != 0) {
		unlink(tmp);
		die("cannot write %s", tmp);
	}
	c = (struct fs_commit){ .fd = fd, .tmp = tmp, .dst = path, .dir = dir };
	if (!fs_commit(&c, 1)) {
		unlink(tmp);
		if (c.err == EEXIST)
			die("%s exists already (choose another --selector)", path);
		die("cannot store %s: %s", path, strerror(c.err));
	}
	close(fd);
	free(tmp);
}

struct evp_pkey_st *dkim_keygen_store(const struct config *cfg, const char *domain, const char *selector,
				      bool ed25519, char **path_out)
{
	char *dir, *path;
	EVP_PKEY *key;

	if (!dns_name_ok(domain) || !dns_name_ok(selector))
		die("domain and selector are letters, digits, '-', '_' and '.'");
	dir = xasprintf("%s/dkim", cfg->state_dir);
	if (!mkdir_p(dir, 0700))
		die("cannot create %s: %s", dir, strerror(errno));
	path = xasprintf("%s/%s._domainkey.%s.pem", dir, selector, domain);
	if (!(key = dkim_key_generate(ed25519, 2048)))
		die("key generation failed");
	keygen_write(dir, path, key);
	free(dir);
	*path_out = path;
	return key;
}

static int dkim_keygen(int argc, char **argv, const char *cfg_path)
{
	const char *domain_arg = NULL, *selector = "tern", *alg = "rsa";
	char *domain, *path, *rec, *line;
	struct config *cfg;
	EVP_PKEY *key;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--selector") && i + 1 < argc)
			selector = argv[++i];
		else if (!strcmp(argv[i], "--algorithm") && i + 1 < argc)
			alg = argv[++i];
		else if (argv[i][0] != '-' && !domain_arg)
			domain_arg = argv[i];
		else {
			fputs(DKIM_USAGE, stderr);
			return 2;
		}
	}
	if (!domain_arg || (strcmp(alg, "rsa") && strcmp(alg, "ed25519"))) {
		fputs(DKIM_USAGE, stderr);
		return 2;
	}
	if (!dns_name_ok(domain_arg) || !dns_name_ok(selector))
		die("domain and selector are letters, digits, '-', '_' and '.'");
	cfg = cli_load_config(cfg_path);
	domain = lower_dup(domain_arg);
	key = dkim_keygen_store(cfg, domain, selector, !strcmp(alg, "ed25519"), &path);
	rec = dkim_key_record(key);
	line = dkim_zone_line(selector, domain, rec);
	printf("%s\n", line);
	fprintf(stderr, "tern: key written to %s\n", path);
	free(line);
	free(rec);
	free(path);
	free(domain);
	EVP_PKEY_free(key);
	config_free(cfg);
	return 0;
}

static char *read_stdin(size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *buf = xmalloc(cap);

	while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	*len = n;
	return buf;
}

static int dkim_sign(int argc, char **argv)
{
	const char *keyf = NULL, *domain = NULL, *selector = NULL;
	char err[512], *msg, *field;
	size_t len;
	EVP_PKEY *key;
	struct dkim_signer *s;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--key"))
			keyf = argv[i + 1];
		else if (!strcmp(argv[i], "--domain"))
			domain = argv[i + 1];
		else if (!strcmp(argv[i], "--selector"))
			selector = argv[i + 1];
	}
	if (!keyf || !domain || !selector || argc % 2 == 0) {
		fputs(DKIM_USAGE, stderr);
		return 2;
	}
	if (!(key = dkim_key_load(keyf, err, sizeof err)))
		die("%s", err);
	msg = read_stdin(&len);
	s = dkim_signer_new(key, domain, selector);
	/* Fed in small pieces, as the message path does. */
	for (size_t off = 0; off < len; off += 4096)
		dkim_signer_feed(s, msg + off, len - off < 4096 ? len - off : 4096);
	{
		const char *nl = memchr(msg, '\n', len);
		field = dkim_signer_finish(s, nl && nl > msg && nl[-1] == '\r' ? "\r\n" : "\n", now_unix());
	}
	if (!field)
		die("signing failed");
	fputs(field, stdout);
	fwrite(msg, 1, len, stdout);
	free(field);
	free(msg);
	dkim_signer_free(s);
	EVP_PKEY_free(key);
	return 0;
}

/* Prints one line per signature, "dkim=RESULT header.d=D header.s=S
 * (reason)"; exits 0 when one passed. */
static int dkim_verify(int argc, char **argv)
{
	char *msg;
	size_t len;
	struct dkim_verify *v = dkim_verify_new();
	int rc = 1;

	msg = read_stdin(&len);
	for (size_t off = 0; off < len; off += 4096)
		dkim_verify_feed(v, msg + off, len - off < 4096 ? len - off : 4096);
	dkim_verify_finish(v);
	for (size_t i = 0; i < dkim_verify_count(v); i++) {
		char *name = dkim_verify_key_name(v, i);
		const struct dkim_sig *sig = dkim_verify_sig(v, i);
		const char *reason;
		enum dkim_result r;
		bool found = false;

		for (int a = 1; name && a + 1 < argc; a++) {
			size_t nl = strlen(name);
			if (strcmp(argv[a], "--record") || strncasecmp(argv[a + 1], name, nl) || argv[a + 1][nl] != '=')
				continue;
			dkim_verify_key(v, i, argv[a + 1] + nl + 1, strlen(argv[a + 1] + nl + 1), now_unix());
			found = true;
			break;
		}
		if (name && !found)
			dkim_verify_key_failed(v, i, DKIM_PERMERROR, "no key record");
		r = dkim_verify_result(v, i, &reason);
		if (sig)
			printf("dkim=%s header.d=%.*s header.s=%.*s", dkim_result_name(r), (int)sig->d.len, sig->d.p,
			       (int)sig->s.len, sig->s.p);
		else
			printf("dkim=%s", dkim_result_name(r));
		printf(reason ? " (%s)\n" : "\n", reason);
		if (r == DKIM_PASS)
			rc = 0;
		free(name);
	}
	if (dkim_verify_count(v) == 0)
		puts("dkim=none");
	dkim_verify_free(v);
	free(msg);
	return rc;
}

int cmd_dkim(int argc, char **argv)
{
	const char *cfg_path = cli_take_config(&argc, argv);

	if (argc >= 2 && !strcmp(argv[1], "keygen"))
		return dkim_keygen(argc - 1, argv + 1, cfg_path);
	if (argc >= 2 && !strcmp(argv[1], "sign"))
		return dkim_sign(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return dkim_verify(argc - 1, argv + 1);
	fputs(DKIM_USAGE, stderr);
	return 2;
}
