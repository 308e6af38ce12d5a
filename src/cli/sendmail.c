/*
 * sendmail.c - `tern sendmail` (also run as `sendmail` or `mailq`): the
 * interface user agents expect of /usr/sbin/sendmail.
 *
 *   sendmail [-t] [-i|-oi] [-f FROM] [-F NAME] [-N DSN] [-R RET] [-V ENVID] [RCPT...] < message
 *   sendmail -bs      SMTP on stdin/stdout          sendmail -bp, mailq   the queue
 *   sendmail -q[Rdomain]  try the queue (or a domain's mail) now
 *
 * The message is handed to the running server as a local trusted client
 * over SMTP (RFC 5321) at the first [smtp] listen address - the same path
 * every other message takes, so nothing here writes the queue itself.
 * Recipients are all accepted or the message is not sent.  With -t,
 * recipients given as arguments are added to those of the headers (as
 * Postfix does).  Exit codes are
 * sysexits(3): 0, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE,
 * EX_TEMPFAIL (the server is unreachable or answered 4xx), EX_PROTOCOL,
 * EX_CONFIG.  The config is -C FILE, $TERN_CONFIG, /etc/tern/tern.conf,
 * or the development default, in that order.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/addrlist.h"
#include "proto/smtp_parse.h"
#include "proto/smtp_reply.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#define SENDMAIL_HEADER_MAX (256 * 1024)   /* the header block we hold */
#define SENDMAIL_RCPT_MAX   1000
#define SENDMAIL_TIMEOUT_S  300            /* RFC 5321 4.5.3.2: 5 min a command */
#define SENDMAIL_SYS_CONFIG "/etc/tern/tern.conf"

enum sendmail_mode { MODE_SEND, MODE_SMTP, MODE_MAILQ, MODE_FLUSH };

struct sendmail_opts {
	enum sendmail_mode mode;
	bool from_headers;        /* -t */
	bool ignore_dots;         /* -i, -oi */
	const char *from;         /* -f */
	const char *full_name;    /* -F */
	const char *notify;       /* -N */
	const char *ret;          /* -R */
	const char *envid;        /* -V */
	const char *config;       /* -C */
	const char *flush_domain; /* -qR */
	char **rcpt_args;
	int nrcpt_args;
};

struct sendmail_msg {
	struct word_list rcpts;   /* envelope recipients, qualified */
	char *headers;            /* the header block, LF line ends, Bcc gone */
	size_t headers_len;
	bool has_from;
	bool eof;                 /* the input ended with the headers */
	bool body_first;          /* a non-header line ended the headers */
	char *first_body;         /* that line */
	int error;                /* EX_* when a header was unusable */
};

static void sendmail_usage(void)
{
	fputs("usage: sendmail [-t] [-i] [-f FROM] [-F NAME] [-N DSN] [-R RET] [-V ENVID] [-C FILE] [RCPT...]\n"
	      "       sendmail -bs | -bp | -q[Rdomain]    (mailq = sendmail -bp)\n", stderr);
}

/* The argument of an option: glued ("-fuser") or the next word. */
static const char *opt_value(int argc, char **argv, int *i, size_t skip)
{
	if (argv[*i][skip] != '\0')
		return argv[*i] + skip;
	if (*i + 1 < argc)
		return argv[++(*i)];
	return NULL;
}

static bool sendmail_option(struct sendmail_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char **slot = NULL;

	switch (a[1]) {
	case 't': o->from_headers = true; return a[2] == '\0';
	case 'i': o->ignore_dots = true; return a[2] == '\0';
	case 'o':   /* -oi; the other -oX of old sendmail mean nothing here */
		if (!strcmp(a, "-oi"))
			o->ignore_dots = true;
		return true;
	case 'v': case 'n': case 'U': case 'm':
		return true;
	case 'b':
		if (!strcmp(a, "-bs")) o->mode = MODE_SMTP;
		else if (!strcmp(a, "-bp")) o->mode = MODE_MAILQ;
		else if (!strcmp(a, "-bm")) o->mode = MODE_SEND;
		else return false;
		return true;
	case 'q':
		o->mode = MODE_FLUSH;
		if (a[2] == 'R')
			return (o->flush_domain = opt_value(argc, argv, i, 3)) != NULL;
		return true;   /* -q30m: interval of a queue daemon; we flush once */
	case 'f': slot = &o->from; break;
	case 'r': slot = &o->from; break;
	case 'F': slot = &o->full_name; break;
	case 'N': slot = &o->notify; break;
	case 'R': slot = &o->ret; break;
	case 'V': slot = &o->envid; break;
	case 'C': slot = &o->config; break;
	case 'B': case 'X': case 'L': case 'O': case 'h':
		return opt_value(argc, argv, i, 2) != NULL;   /* accepted, unused */
	default:
		return false;
	}
	*slot = opt_value(argc, argv, i, 2);
	return *slot != NULL;
}

static bool sendmail_parse_args(struct sendmail_opts *o, int argc, char **argv)
{
	const char *prog = basename(argv[0]);
	int i = 1;

	if (!strcmp(prog, "mailq"))
		o->mode = MODE_MAILQ;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!sendmail_option(o, argc, argv, &i)) {
			fprintf(stderr, "sendmail: bad option %s\n", argv[i]);
			return false;
		}
	}
	o->rcpt_args = argv + i;
	o->nrcpt_args = argc - i;
	return true;
}

static struct config *sendmail_config(const char *path)
{
	if (path == NULL)
		path = getenv("TERN_CONFIG");
	if (path == NULL && access(SENDMAIL_SYS_CONFIG, F_OK) == 0)
		path = SENDMAIL_SYS_CONFIG;
	return path ? config_load(path) : config_dev_default();
}

/* ---- recipients -------------------------------------------------------- */

struct rcpt_ctx {
	const struct config *cfg;
	struct word_list *l;
	bool too_many;
};

static void rcpt_add_cb(const char *addr, void *arg)
{
	struct rcpt_ctx *c = arg;
	struct word_list *l = c->l;
	char *a = strchr(addr, '@') ? xstrdup(addr) : xasprintf("%s@%s", addr, c->cfg->local_domains.v[0]);

	for (size_t i = 0; i < l->n; i++)
		if (!strcasecmp(l->v[i], a)) {
			free(a);
			return;
		}
	if (l->n >= SENDMAIL_RCPT_MAX) {
		c->too_many = true;
		free(a);
		return;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = a;
}

/* Each argument or header value is an address list ("a, B <b@x>"). */
static int rcpt_add_list(const struct config *cfg, struct word_list *l, const char *v, size_t len)
{
	struct rcpt_ctx c = { .cfg = cfg, .l = l };
	int r = addrlist_parse(v, len, rcpt_add_cb, &c);
	if (r < 0) {
		fprintf(stderr, "sendmail: bad address list: %.*s\n", (int)(len > 200 ? 200 : len), v);
		return EX_DATAERR;
	}
	if (c.too_many) {
		fprintf(stderr, "sendmail: more than %d recipients\n", SENDMAIL_RCPT_MAX);
		return EX_DATAERR;
	}
	return 0;
}

/* ---- reading the message ------------------------------------------------ */

/* One input line without its line end; NULL at the end of input or, with
 * dots ending the input, at a lone ".". */
static char *read_line(FILE *in, const struct sendmail_opts *o, char **buf, size_t *cap, size_t *len)
{
	ssize_t n = getline(buf, cap, in);
	if (n < 0)
		return NULL;
	if (n > 0 && (*buf)[n - 1] == '\n')
		(*buf)[--n] = '\0';
	if (n > 0 && (*buf)[n - 1] == '\r')
		(*buf)[--n] = '\0';
	if (!o->ignore_dots && n == 1 && (*buf)[0] == '.')
		return NULL;
	*len = (size_t)n;
	return *buf;
}

static bool is_field_start(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
		i++;
	return i > 0 && i < len && line[i] == ':';
}

static bool field_is(const char *field, const char *name)
{
	size_t n = strlen(name);
	return strncasecmp(field, name, n) == 0 && field[n] == ':';
}

/* A complete (possibly folded) field: note From:, take -t recipients,
 * keep it unless it is Bcc:. */
static void header_field_done(struct sendmail_msg *m, const struct sendmail_opts *o, const struct config *cfg,
			      FILE *keep, const char *field, size_t len)
{
	bool bcc = field_is(field, "Bcc");
	if (field_is(field, "From"))
		m->has_from = true;
	if (o->from_headers && (bcc || field_is(field, "To") || field_is(field, "Cc"))) {
		const char *v = strchr(field, ':') + 1;
		int r = rcpt_add_list(cfg, &m->rcpts, v, len - (size_t)(v - field));
		if (r && !m->error)
			m->error = r;
	}
	if (!bcc)
		fwrite(field, 1, len, keep);
}

static void sendmail_read_headers(struct sendmail_msg *m, const struct sendmail_opts *o, const struct config *cfg,
				  FILE *in)
{
	char *buf = NULL, *field = NULL, *line;
	size_t cap = 0, len = 0, fcap = 0, total = 0;
	FILE *keep = open_memstream(&m->headers, &m->headers_len);
	FILE *cur = NULL;

	for (;;) {
		line = read_line(in, o, &buf, &cap, &len);
		if (line != NULL && (total += len + 1) > SENDMAIL_HEADER_MAX) {
			fprintf(stderr, "sendmail: header block over %d octets\n", SENDMAIL_HEADER_MAX);
			m->error = EX_DATAERR;
			break;
		}
		if (line != NULL && cur != NULL && (line[0] == ' ' || line[0] == '\t')) {
			fprintf(cur, "%s\n", line);   /* folded continuation */
			continue;
		}
		if (cur != NULL) {
			fclose(cur);
			cur = NULL;
			header_field_done(m, o, cfg, keep, field, fcap);
			free(field);
			field = NULL;
		}
		if (line == NULL || len == 0) {
			m->eof = line == NULL;
			break;
		}
		if (!is_field_start(line, len)) {
			m->body_first = true;
			m->first_body = xstrdup(line);
			break;
		}
		cur = open_memstream(&field, &fcap);
		fprintf(cur, "%s\n", line);
	}
	if (cur)
		fclose(cur);
	fclose(keep);
	free(field);
	free(buf);
}

/* ---- the SMTP dialog with the server ------------------------------------- */

struct smtp_conn {
	int fd;
	FILE *out;
	char buf[4096];
	size_t have;
	struct smtp_reply reply;
};

/* The first [smtp] listen address, a wildcard turned into loopback. */
static int sendmail_connect(const struct config *cfg)
{
	struct sockaddr_storage ss;
	struct timeval tv = { SENDMAIL_TIMEOUT_S, 0 };
	int fd;

	if (cfg->smtp_listen.n == 0) {
		fprintf(stderr, "sendmail: no [smtp] listen address in %s\n", cfg->path);
		return -1;
	}
	ss = cfg->smtp_listen.v[0].ss;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, cfg->smtp_listen.v[0].len) < 0) {
		fprintf(stderr, "sendmail: cannot reach the mail server at %s: %s\n", cfg->smtp_listen.v[0].text,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read one complete reply into c->reply; false when the server is gone
 * or broken. */
static bool smtp_read_reply(struct smtp_conn *c)
{
	smtp_reply_init(&c->reply);
	fflush(c->out);
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->have);
		if (nl != NULL) {
			size_t len = (size_t)(nl - c->buf);
			enum smtp_reply_status st;
			st = smtp_reply_feed(&c->reply, c->buf, len > 0 && c->buf[len - 1] == '\r' ? len - 1 : len);
			memmove(c->buf, nl + 1, c->have - len - 1);
			c->have -= len + 1;
			if (st == SMTP_REPLY_DONE)
				return true;
			if (st != SMTP_REPLY_MORE)
				return false;
			continue;
		}
		if (c->have == sizeof(c->buf))
			return false;
		ssize_t n = read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		c->have += (size_t)n;
	}
}

/* Read the reply to `what` (a command line, or a label); the exit code
 * for an unexpected class (fail5 for a 5xx), or 0. */
static int smtp_check(struct smtp_conn *c, unsigned want, int fail5, const char *what)
{
	if (!smtp_read_reply(c)) {
		fprintf(stderr, "sendmail: the mail server closed the connection or sent a bad reply\n");
		return EX_TEMPFAIL;
	}
	if (c->reply.code / 100 == want)
		return 0;
	fprintf(stderr, "sendmail: %s: %u %s\n", what, c->reply.code, c->reply.text);
	return c->reply.code / 100 == 4 ? EX_TEMPFAIL : c->reply.code / 100 == 5 ? fail5 : EX_PROTOCOL;
}

static int smtp_cmd(struct smtp_conn *c, unsigned want, int fail5, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int smtp_cmd(struct smtp_conn *c, unsigned want, int fail5, const char *fmt, ...)
{
	va_list ap;
	char line[1100];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(c->out, "%s\r\n", line);
	return smtp_check(c, want, fail5, line);
}

/* A line of the message, dot-stuffed (RFC 5321 4.5.2), CRLF-ended. */
static void smtp_put_line(struct smtp_conn *c, const char *line, size_t len)
{
	if (len > 0 && line[0] == '.')
		fputc('.', c->out);
	fwrite(line, 1, len, c->out);
	fputs("\r\n", c->out);
}

static void smtp_put_text(struct smtp_conn *c, const char *text, size_t len)
{
	while (len > 0) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) : len;
		smtp_put_line(c, text, n);
		len -= nl ? n + 1 : n;
		text += nl ? n + 1 : n;
	}
}

/* A display name as a quoted-string unless it is plain words. */
static void put_from_header(struct smtp_conn *c, const char *name, const char *addr)
{
	bool plain = name && name[0];
	for (const char *p = name; plain && *p; p++)
		plain = strchr(" !#$%&'*+-/=?^_`{|}~", *p) || ((unsigned char)*p < 0x80 && isalnum((unsigned char)*p));
	if (name == NULL || name[0] == '\0') {
		fprintf(c->out, "From: %s\r\n", addr);
		return;
	}
	fputs(plain ? "From: " : "From: \"", c->out);
	for (const char *p = name; *p; p++) {
		if (!plain && (*p == '"' || *p == '\\'))
			fputc('\\', c->out);
		if (*p != '\r' && *p != '\n')
			fputc(*p, c->out);
	}
	fprintf(c->out, "%s <%s>\r\n", plain ? "" : "\"", addr);
}

/* MAIL, every RCPT (all must pass, else RSET and no message), DATA. */
static int sendmail_envelope(struct smtp_conn *c, const struct sendmail_opts *o, const char *sender,
			     const struct word_list *rcpts)
{
	char envid[256] = "";
	int rc, worst = 0;

	if (o->envid && smtp_xtext_encode(o->envid, strlen(o->envid), envid, sizeof(envid)) == 0) {
		fprintf(stderr, "sendmail: -V: envelope id too long\n");
		return EX_USAGE;
	}
	if ((rc = smtp_check(c, 2, EX_UNAVAILABLE, "greeting")) != 0
	    || (rc = smtp_cmd(c, 2, EX_UNAVAILABLE, "EHLO localhost")) != 0
	    || (rc = smtp_cmd(c, 2, EX_UNAVAILABLE, "MAIL FROM:<%s>%s%s%s%s", sender, o->ret ? " RET=" : "",
			      o->ret ? o->ret : "", envid[0] ? " ENVID=" : "", envid)) != 0)
		return rc;
	for (size_t i = 0; i < rcpts->n; i++) {
		rc = smtp_cmd(c, 2, EX_NOUSER, "RCPT TO:<%s>%s%s", rcpts->v[i], o->notify ? " NOTIFY=" : "",
			      o->notify ? o->notify : "");
		/* a temporary refusal outranks a permanent one: retry later */
		if (rc && (worst == 0 || rc == EX_TEMPFAIL))
			worst = rc;
	}
	if (worst) {
		fputs("RSET\r\nQUIT\r\n", c->out);
		fflush(c->out);
		return worst;
	}
	return smtp_cmd(c, 3, EX_UNAVAILABLE, "DATA");
}

/* The message: From: when missing, the kept headers, the rest of the
 * input as it comes, the final dot. */
static int sendmail_data(struct smtp_conn *c, const struct sendmail_opts *o, struct sendmail_msg *m,
			 const char *sender, FILE *in)
{
	char *buf = NULL, *line;
	size_t cap = 0, len = 0;
	int rc;

	if (!m->has_from)
		put_from_header(c, o->full_name, sender);
	smtp_put_text(c, m->headers, m->headers_len);
	fputs("\r\n", c->out);
	if (m->body_first)
		smtp_put_line(c, m->first_body, strlen(m->first_body));
	while (!m->eof && (line = read_line(in, o, &buf, &cap, &len)) != NULL)
		smtp_put_line(c, line, len);
	free(buf);
	fputs(".\r\n", c->out);
	if ((rc = smtp_check(c, 2, EX_DATAERR, "end of data")) != 0)
		return rc;
	fputs("QUIT\r\n", c->out);
	fflush(c->out);
	return EX_OK;
}

static char *sendmail_default_sender(const struct config *cfg)
{
	struct passwd *pw = getpwuid(getuid());
	return xasprintf("%s@%s", pw ? pw->pw_name : "nobody", cfg->local_domains.v[0]);
}

static int sendmail_send(const struct sendmail_opts *o, const struct config *cfg)
{
	struct sendmail_msg m = { .error = 0 };
	struct smtp_conn c = { .fd = -1 };
	char *sender;
	int rc = 0;

	for (int i = 0; i < o->nrcpt_args && rc == 0; i++)
		rc = rcpt_add_list(cfg, &m.rcpts, o->rcpt_args[i], strlen(o->rcpt_args[i]));
	if (rc == 0)
		sendmail_read_headers(&m, o, cfg, stdin);
	rc = rc ? rc : m.error;
	if (rc == 0 && m.rcpts.n == 0) {
		fprintf(stderr, "sendmail: no recipients (give them as arguments, or -t)\n");
		rc = EX_USAGE;
	}
	if (o->from == NULL)
		sender = sendmail_default_sender(cfg);
	else if (!strcmp(o->from, "<>"))
		sender = xstrdup("");
	else
		sender = xstrdup(o->from);
	if (rc == 0 && (strpbrk(sender, "<>\r\n \t") || strlen(sender) > ADDRLIST_ADDR_MAX)) {
		fprintf(stderr, "sendmail: bad sender address %s\n", sender);
		rc = EX_USAGE;
	}
	if (rc == 0 && (c.fd = sendmail_connect(cfg)) < 0)
		rc = EX_TEMPFAIL;
	if (rc == 0) {
		c.out = fdopen(dup(c.fd), "w");
		rc = sendmail_envelope(&c, o, sender, &m.rcpts);
		if (rc == 0)
			rc = sendmail_data(&c, o, &m, sender[0] ? sender : "MAILER-DAEMON", stdin);
		fclose(c.out);
		close(c.fd);
	}
	for (size_t i = 0; i < m.rcpts.n; i++)
		free(m.rcpts.v[i]);
	free(m.rcpts.v);
	free(m.headers);
	free(m.first_body);
	free(sender);
	return rc;
}

/* -bs: the server's own SMTP dialog on stdin/stdout.  Local programs
 * often end lines with a bare LF; it becomes CRLF on the way in. */
static int sendmail_smtp_stdio(const struct config *cfg)
{
	int fd = sendmail_connect(cfg);
	struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char in[4096], out[8192];
	bool prev_cr = false;

	if (fd < 0)
		return EX_TEMPFAIL;
	for (;;) {
		if (poll(p, 2, SENDMAIL_TIMEOUT_S * 1000) <= 0)
			break;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(fd, in, sizeof(in));
			if (n <= 0 || !write_all(STDOUT_FILENO, in, (size_t)n))
				break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(STDIN_FILENO, in, sizeof(in));
			size_t o = 0;
			if (n <= 0) {
				shutdown(fd, SHUT_WR);   /* the server still answers */
				p[0].fd = -1;
				continue;
			}
			for (ssize_t i = 0; i < n; i++) {
				if (in[i] == '\n' && !prev_cr)
					out[o++] = '\r';
				prev_cr = in[i] == '\r';
				out[o++] = in[i];
			}
			if (!write_all(fd, out, o))
				break;
		}
	}
	close(fd);
	return EX_OK;
}

int cmd_sendmail(int argc, char **argv)
{
	struct sendmail_opts o = { .mode = MODE_SEND };
	struct config *cfg;
	int rc = EX_OK;

	/* A server that goes away mid-dialog is EX_TEMPFAIL, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (!sendmail_parse_args(&o, argc, argv)) {
		sendmail_usage();
		return EX_USAGE;
	}
	cfg = sendmail_config(o.config);
	if (cfg == NULL)
		return EX_CONFIG;
	switch (o.mode) {
	case MODE_MAILQ:
		rc = queue_mailq(cfg) == 0 ? EX_OK : EX_UNAVAILABLE;
		break;
	case MODE_FLUSH: {
		char *req = xasprintf("flush%s%s", o.flush_domain ? " " : "", o.flush_domain ? o.flush_domain : "");
		int r = strpbrk(req, "\r\n") ? 1 : control_request(cfg, req, stdout);
		rc = r == 0 ? EX_OK : r < 0 ? EX_TEMPFAIL : EX_USAGE;
		free(req);
		break;
	}
	case MODE_SMTP:
		rc = sendmail_smtp_stdio(cfg);
		break;
	case MODE_SEND:
		rc = sendmail_send(&o, cfg);
		break;
	}
	config_free(cfg);
	return rc;
}
