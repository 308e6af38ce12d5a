/*
 * serve.c - `tern serve`: load the config, prepare the state directory,
 * bind the listeners, drop privileges, recover the queue and run the loop
 * until SIGTERM/SIGINT.  SIGHUP re-reads the users and aliases files (and
 * the TLS certificate); the users file is also re-read when it changes.
 */
#include "cli/cli.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "core/tls.h"
#include "core/workers.h"
#include "delivery/scheduler.h"
#include "login/login.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "smtp/smtp_server.h"
#include "store/aliases.h"
#include "store/maildir.h"
#include "store/queue.h"
#include "store/users.h"
#include "cli/serve_hooks.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <grp.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHUTDOWN_GRACE_MS 10000

/* ---- logging: one function per event ------------------------------------ */

static void log_privileges_dropped(const char *user, uid_t uid)
{
	log_event("event=privileges_dropped user=%s uid=%u", user, (unsigned)uid);
}

static void log_users_bad_line(const char *path, size_t line, const char *what)
{
	log_event("event=users_bad_line level=warning file=%s line=%zu error=\"%s\"", path, line, what);
}

static void log_aliases_unreadable(const char *path, const char *what)
{
	log_event("event=aliases_unreadable level=warning file=%s error=\"%s\"", path, what);
}

static void log_aliases_bad_line(const char *path, size_t line, const char *what)
{
	log_event("event=aliases_bad_line level=warning file=%s line=%zu error=\"%s\"", path, line, what);
}

static void log_reload(const char *why, size_t users, size_t aliases)
{
	log_event("event=reload reason=%s users=%zu aliases=%zu", why, users, aliases);
}

static void log_shutdown(int sig, size_t sessions)
{
	log_event("event=shutdown signal=%d sessions=%zu", sig, sessions);
}

static void log_shutdown_forced(size_t sessions)
{
	log_event("event=shutdown_forced sessions=%zu", sessions);
}

static void log_start(const struct config *cfg)
{
	log_event("event=start version=%s config=%s hostname=%s state_dir=%s", TERN_VERSION, cfg->path,
		  cfg->hostname, cfg->state_dir);
}

static void log_stop(void)
{
	log_event("event=stop");
}

const char *cli_take_config(int *argc, char **argv)
{
	const char *path = NULL;
	int o = 1;
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "-c") && i + 1 < *argc) {
			path = argv[++i];
			continue;
		}
		if (!strncmp(argv[i], "--config=", 9)) {
			path = argv[i] + 9;
			continue;
		}
		argv[o++] = argv[i];
	}
	*argc = o;
	argv[o] = NULL;
	return path;
}

struct config *cli_load_config(const char *path)
{
	struct config *c = path ? config_load(path) : config_dev_default();
	if (c == NULL)
		exit(1);
	return c;
}

int cmd_check_config(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	struct config *c;
	if (path == NULL && argc > 1)
		path = argv[1];
	if (path == NULL) {
		fprintf(stderr, "usage: tern check-config -c FILE\n");
		return 2;
	}
	c = config_load(path);
	if (c == NULL)
		return 1;
	printf("%s: ok\n", path);
	config_free(c);
	return 0;
}

/* First start of the development default: a demo user whose password is
 * printed once, so `make run` + swaks works out of the box. */
static void dev_first_start(struct config *cfg)
{
	unsigned char raw[9];
	char pw[16], *secret;

	if (access(cfg->users_file, F_OK) == 0)
		return;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		die("no randomness for the demo password");
	base64_encode(raw, sizeof(raw), pw, sizeof(pw));
	for (char *p = pw; *p; p++)
		if (*p == '+' || *p == '/')
			*p = 'x';
	secret = passwd_hash(PASSWD_CRYPT, pw);
	if (secret == NULL || users_update(cfg->users_file, "demo@localhost", secret) != USERS_UPDATE_OK)
		die("cannot create %s", cfg->users_file);
	fprintf(stderr, "tern: first start: created user demo@localhost with password %s\n"
		"tern: its mail arrives in %s/mail/localhost/demo/Maildir/new/\n", pw, cfg->state_dir);
	free(secret);
}

static void prepare_state_dir(struct config *cfg, uid_t uid, gid_t gid, bool chown_dirs)
{
	const char *subs[] = { "", "/queue", "/queue/tmp", "/queue/msg", "/mail", "/run" };
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char *p = xasprintf("%s%s", cfg->state_dir, subs[i]);
		if (!mkdir_p(p, 0700))
			die("cannot create %s: %s", p, strerror(errno));
		if (chown_dirs && chown(p, uid, gid) < 0)
			die("cannot chown %s: %s", p, strerror(errno));
		free(p);
	}
}

static void drop_privileges(const struct config *cfg, struct passwd *pw)
{
	if (pw == NULL)
		return;
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		die("cannot drop privileges to %s: %s", cfg->user, strerror(errno));
	if (setuid(0) == 0)
		die("privileges were not dropped");
	log_privileges_dropped(cfg->user, pw->pw_uid);
}

/* A users file line the server skips: logged, never fatal. */
static void users_warn_log_cb(void *ctx, const char *path, size_t line, const char *what)
{
	log_users_bad_line(path, line, what);
}

/* An aliases file line the server skips (line 0: the file itself). */
static void aliases_warn_log_cb(void *ctx, const char *path, size_t line, const char *what)
{
	if (line == 0)
		log_aliases_unreadable(path, what);
	else
		log_aliases_bad_line(path, line, what);
}

static void reload_tables(struct tern *t, const char *why)
{
	struct users *u = users_load(t->cfg->users_file, users_warn_log_cb, NULL);
	struct aliases *a = aliases_load(t->cfg->aliases_file, aliases_warn_log_cb, NULL);
	/* Worker threads never read these tables (they only see the queue
	 * and the config), so swapping them on the loop thread is safe; the
	 * login workers read the users table they hold a reference to. */
	if (t->login)
		login_set_users(t->login, u);
	users_free(t->users);
	aliases_free(t->aliases);
	t->users = u;
	t->aliases = a;
	log_reload(why, u->n, aliases_count(a));
}

struct serve_state {
	struct tern *t;
	struct event *sig_term, *sig_int, *sig_hup, *tick, *drain;
	uint64_t shutdown_started;
};

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_state *st = arg;
	struct tern *t = st->t;
	bool idle = t->nsessions == 0 && workers_busy(t->commit_pool) == 0 && serve_hooks_idle(t);
	if (idle || now_ms_monotonic() - st->shutdown_started > SHUTDOWN_GRACE_MS) {
		if (!idle)
			log_shutdown_forced(t->nsessions);
		event_base_loopexit(t->base, NULL);
	}
}

static void shutdown_cb(evutil_socket_t sig, short what, void *arg)
{
	struct serve_state *st = arg;
	struct tern *t = st->t;
	struct timeval tv = { 0, 50000 };

	if (t->shutting_down)
		return;
	log_shutdown((int)sig, t->nsessions);
	t->shutting_down = true;
	listeners_close(t);
	scheduler_stop(t->sched);
	serve_hooks_shutdown(t);
	for (struct session_link *l = t->sessions.head, *next; l; l = next) {
		next = l->next;
		l->shutdown(l);
	}
	st->shutdown_started = now_ms_monotonic();
	st->drain = event_new(t->base, -1, EV_PERSIST, drain_cb, st);
	event_add(st->drain, &tv);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct serve_state *st = arg;
	reload_tables(st->t, "sighup");
	serve_hooks_reload(st->t);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct serve_state *st = arg;
	if (users_changed(st->t->users))
		reload_tables(st->t, "users_file_changed");
	else if (aliases_changed(st->t->aliases))
		reload_tables(st->t, "aliases_file_changed");
}

int cmd_serve(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	struct config *cfg = cli_load_config(path);
	struct tern t = { .cfg = cfg };
	struct serve_state st = { .t = &t };
	struct passwd *pw = NULL;
	accept_fn accept_by_service[SERVICE_COUNT] = {
		[SERVICE_SMTP] = smtp_server_accept,
		[SERVICE_SUBMISSION] = smtp_server_accept,
		[SERVICE_SUBMISSIONS] = smtp_server_accept,
	};
	struct timeval second = { 2, 0 };
	struct login_options lo;

	signal(SIGPIPE, SIG_IGN);
	if (cfg->user[0] && getuid() == 0) {
		pw = getpwnam(cfg->user);
		if (pw == NULL)
			die("[server] user %s does not exist", cfg->user);
	}
	prepare_state_dir(cfg, pw ? pw->pw_uid : 0, pw ? pw->pw_gid : 0, pw != NULL);
	if (cfg->dev_default)
		dev_first_start(cfg);
	evthread_use_pthreads();
	t.base = event_base_new();
	if (t.base == NULL)
		die("event_base_new failed");
	/* Signals first: a SIGTERM that arrives while we start up must
	 * still be a clean shutdown (the loop handles it once it runs). */
	st.sig_term = evsignal_new(t.base, SIGTERM, shutdown_cb, &st);
	st.sig_int = evsignal_new(t.base, SIGINT, shutdown_cb, &st);
	st.sig_hup = evsignal_new(t.base, SIGHUP, hup_cb, &st);
	st.tick = event_new(t.base, -1, EV_PERSIST, tick_cb, &st);
	event_add(st.sig_term, NULL);
	event_add(st.sig_int, NULL);
	event_add(st.sig_hup, NULL);
	t.next_session_id = (uint64_t)now_unix() << 20;
	tern_heap_setup();
	tern_fd_setup(&t);
	t.conn_per_ip = addr_count_new();
	t.queue = queue_open(cfg->state_dir);
	if (t.queue == NULL)
		die("cannot open the queue in %s/queue", cfg->state_dir);
	if (!serve_hooks_init(&t, accept_by_service))
		return 1;
	if (!listeners_open(&t, accept_by_service))
		return 1;
	drop_privileges(cfg, pw);
	reload_tables(&t, "start");
	queue_recover(t.queue);
	log_set_debug(cfg->log_debug);
	t.commit_pool = workers_new(t.base, cfg->workers);
	t.delivery_pool = workers_new(t.base, cfg->workers);
	if (t.tls)
		tls_ctx_start_pool(t.tls, t.base);   /* TLS handshakes off the loop */
	login_options_from_config(&lo, cfg);
	t.login = login_new(t.base, &lo);
	login_set_users(t.login, t.users);
	t.sched = scheduler_new(&t);
	serve_hooks_start(&t);

	event_add(st.tick, &second);
	log_start(cfg);
	scheduler_recover(t.sched);

	event_base_dispatch(t.base);

	workers_free(t.commit_pool);
	workers_free(t.delivery_pool);
	maildir_spares_drop();
	login_free(t.login);
	serve_hooks_free(&t);
	scheduler_free(t.sched);
	if (st.drain)
		event_free(st.drain);
	event_free(st.sig_term);
	event_free(st.sig_int);
	event_free(st.sig_hup);
	event_free(st.tick);
	listeners_close(&t);
	if (t.trim_ev)
		event_free(t.trim_ev);
	queue_close(t.queue);
	users_free(t.users);
	aliases_free(t.aliases);
	addr_count_free(t.conn_per_ip);
	free(t.own_addrs);
	event_base_free(t.base);
	log_stop();
	config_free(cfg);
	return 0;
}
