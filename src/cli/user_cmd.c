/*
 * user_cmd.c - `tern user add|passwd|del|list`.  Passwords come from
 * standard input or a no-echo prompt, never from argv (it shows in ps).
 * Changes touch only the user's own line of the users file; lines it
 * cannot use are reported as FILE:LINE and kept as they are.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"
#include "proto/passwd.h"
#include "proto/saslprep.h"
#include "store/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static char *read_password(const char *prompt)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO);

	if (tty) {
		fputs(prompt, stderr);
		tcgetattr(STDIN_FILENO, &old);
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
	}
	n = getline(&line, &cap, stdin);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void user_warn_cb(void *ctx, const char *path, size_t line, const char *what)
{
	if (line == 0)
		fprintf(stderr, "tern: warning: %s: %s\n", path, what);
	else
		fprintf(stderr, "tern: warning: %s:%zu: %s (line kept as it is)\n", path, line, what);
}

/* Secrets the server will refuse (unknown scheme, malformed SCRAM keys):
 * worth a warning while the administrator is looking at the file. */
static void user_check_secrets(const struct users *u)
{
	for (size_t i = 0; i < u->n; i++) {
		struct passwd_secret sec;
		if (passwd_parse(u->v[i].secret, strlen(u->v[i].secret), &sec)) {
			passwd_secret_free(&sec);
			continue;
		}
		user_warn_cb(NULL, u->path, u->v[i].line, "unknown scheme or malformed secret");
	}
}

static void user_write(const char *path, const char *addr, const char *secret)
{
	switch (users_update(path, addr, secret)) {
	case USERS_UPDATE_OK:
		return;
	case USERS_UPDATE_BAD_ADDR:
		die("%s is not a usable address (letters, digits, . _ - + only)", addr);
	case USERS_UPDATE_MISSING:
		die("%s does not exist", addr);
	case USERS_UPDATE_IO:
		die("cannot write %s: %m", path);
	}
}

/* Say why SASLprep refuses a password, rather than "cannot hash". */
static void user_check_password(const char *pw)
{
	char *prepared;
	size_t n;
	enum saslprep_result r = saslprep(pw, strlen(pw), SASLPREP_STORED, &prepared, &n);

	if (r != SASLPREP_OK)
		die("the password is not usable: %s (SASLprep, RFC 4013)", saslprep_strerror(r));
	explicit_bzero(prepared, n);
	free(prepared);
	if (n == 0)
		die("the password is empty once prepared (SASLprep, RFC 4013)");
}

static enum passwd_scheme scheme_arg(int *argc, char **argv)
{
	enum passwd_scheme s = PASSWD_CRYPT;
	int o = 1;
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--scheme") && i + 1 < *argc) {
			const char *v = argv[++i];
			if (!strcasecmp(v, "plain"))
				s = PASSWD_PLAIN;
			else if (!strcasecmp(v, "scram-sha-256") || !strcasecmp(v, "scram"))
				s = PASSWD_SCRAM_SHA_256;
			else if (!strcasecmp(v, "crypt"))
				s = PASSWD_CRYPT;
			else
				die("unknown scheme %s (crypt, plain, scram-sha-256)", v);
			continue;
		}
		argv[o++] = argv[i];
	}
	*argc = o;
	return s;
}

int cmd_user(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	enum passwd_scheme scheme = scheme_arg(&argc, argv);
	struct config *cfg = cli_load_config(path);
	struct users *u = users_load(cfg->users_file, user_warn_cb, NULL);
	const char *verb = argc > 1 ? argv[1] : "";
	const char *addr = argc > 2 ? argv[2] : NULL;
	int rc = 0;

	user_check_secrets(u);
	if (!strcmp(verb, "list")) {
		for (size_t i = 0; i < u->n; i++)
			printf("%s\n", u->v[i].addr);
	} else if ((!strcmp(verb, "add") || !strcmp(verb, "passwd")) && addr) {
		bool exists = users_find(u, addr) != NULL;
		if (!strcmp(verb, "add") && exists)
			die("%s already exists (use tern user passwd)", addr);
		if (!strcmp(verb, "passwd") && !exists)
			die("%s does not exist (use tern user add)", addr);
		const char *at = strchr(addr, '@');
		if (at == NULL || !config_is_local_domain(cfg, at + 1))
			fprintf(stderr, "tern: warning: %s is not in a local domain ([domains] local)\n", addr);
		char *pw = read_password("Password: ");
		if (pw == NULL || pw[0] == '\0')
			die("no password given on standard input");
		user_check_password(pw);
		char *secret = passwd_hash(scheme, pw);
		memset(pw, 0, strlen(pw));
		free(pw);
		if (secret == NULL)
			die("cannot hash the password");
		user_write(cfg->users_file, addr, secret);
		free(secret);
	} else if (!strcmp(verb, "del") && addr) {
		if (users_find(u, addr) == NULL)
			die("%s does not exist", addr);
		user_write(cfg->users_file, addr, NULL);
	} else {
		fprintf(stderr, "usage: tern user add|passwd|del ADDRESS [--scheme crypt|plain|scram-sha-256] [-c FILE]\n"
			"       tern user list [-c FILE]\n");
		rc = 2;
	}
	users_free(u);
	config_free(cfg);
	return rc;
}
