/*
 * server.h - the context of one running tern: the loop, the config, the
 * stores and the services.  Passed to every part; no part reaches for a
 * global.
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct event;
struct config;
struct users;
struct aliases;
struct queue;
struct workers;
struct scheduler;
struct addr_count;
struct dns;
struct tls_ctx;
struct pop3_server;
struct imap_server;
struct evconnlistener;
struct control;
struct queue_env;
struct intake;
struct tern;
struct login;
struct dkim_keyring;
struct dkim_key_cache;
struct acme;

enum service {
	SERVICE_SMTP,             /* port 25: MX */
	SERVICE_SUBMISSION,       /* port 587: STARTTLS + AUTH */
	SERVICE_SUBMISSIONS,      /* port 465: implicit TLS + AUTH */
	SERVICE_POP3,
	SERVICE_POP3S,
	SERVICE_IMAP,             /* port 143: STARTTLS */
	SERVICE_IMAPS,            /* port 993: implicit TLS */
	SERVICE_HTTP,             /* port 80: redirect to https, ACME http-01 */
	SERVICE_HTTPS,            /* port 443: MTA-STS, autoconfig, /metrics */
	SERVICE_COUNT
};

/* Told on the loop thread once a handed-over message is durable (err 0;
 * in the queue, or delivered to every mailbox: direct) or could not be
 * made so (err: the errno, ENOSPC or EDQUOT for a full disk). */
typedef void (*tern_accepted_fn)(void *arg, int err, bool direct);

/*
 * Delivery's hook for a message a session receives (delivery/handoff.c
 * installs it): the session's sink opens an intake at DATA, writes the
 * message into it as it arrives (loop thread, page-cache writes) and at
 * the end commits it; delivery makes it durable off the loop - in the
 * queue, or straight in the mailboxes - and calls done.  The caller keeps
 * env, untouched, until then, and frees the intake afterwards (or
 * instead, which drops the message).
 */
struct intake_ops {
	struct intake *(*open)(struct tern *t, struct queue_env *env);   /* sets env->id; NULL: errno */
	bool (*write)(struct intake *in, const void *buf, size_t len);
	bool (*insert_front)(struct intake *in, const void *buf, size_t len);
	/* Before the message: fields will be put in front at its end (a
	 * check's verdict), so hold room for them rather than move it then. */
	void (*hold_front)(struct intake *in);
	bool (*envelope)(struct intake *in);   /* env changed (a milter), before the rest is written */
	int (*error)(const struct intake *in);                           /* errno of a failed write, or 0 */
	void (*commit)(struct intake *in, uint64_t lines, bool eight_bit, tern_accepted_fn done, void *arg);
	void (*free)(struct intake *in);
};

struct session_list {
	struct session_link *head;
};

struct session_link {
	struct session_link *prev, *next;
	void (*shutdown)(struct session_link *l);  /* "421 shutting down" */
};

struct tern {
	struct event_base *base;
	struct config *cfg;
	struct users *users;
	struct aliases *aliases;
	struct queue *queue;
	struct workers *commit_pool;   /* queue commits: fsync + rename */
	struct workers *delivery_pool; /* local delivery into Maildirs */
	struct scheduler *sched;
	const struct intake_ops *intake;   /* delivery's hook (see above) */
	struct dns *dns;
	struct control *control;  /* the control socket (cli/control.h) */
	struct tls_ctx *tls;
	struct pop3_server *pop3;      /* POP3 state shared by sessions */
	struct imap_server *imap;      /* IMAP: open folders, inotify */
	struct addr_count *conn_per_ip;
	/* The MX checks (src/filter/), NULL when not configured. */
	struct dnsbl *dnsbl;
	struct greylist *greylist;
	struct rate *conn_rate, *msg_rate;
	struct login *login;           /* authentication for every protocol */
	struct dkim_keyring *dkim_keys; /* signing keys, loaded once (msgauth/dkim_keyring.h) */
	struct dkim_key_cache *dkim_pubkeys; /* verification keys decoded before (msgauth/dkim.h) */
	struct acme *acme;             /* the ACME client, NULL when off */
	struct session_list sessions;
	size_t nsessions;
	size_t nsessions_peak;    /* since the heap was last trimmed */
	struct event *trim_ev;    /* the trim after a crowd has gone */
	/* Descriptors a session may use: the limit less a reserve for the
	 * rest of tern (tern_fd_setup); each session holds one. */
	size_t max_fds;
	uint64_t next_session_id;
	bool shutting_down;
	struct evconnlistener **listeners;
	void **listener_ctx;
	size_t nlisteners;
	/* Addresses tern listens on, to recognise a route back to itself. */
	struct sockaddr_storage *own_addrs;
	size_t nown_addrs;
};

/* The allocator's policy for a long-running server (see server.c). */
void tern_heap_setup(void);
/* Raise RLIMIT_NOFILE to its hard limit and set max_fds from it. */
void tern_fd_setup(struct tern *t);
/* May a session just accepted on fd stay?  False: refuse it (421) while
 * there are still descriptors to do that with. */
bool tern_fd_room(const struct tern *t, int fd);

void session_list_add(struct tern *t, struct session_link *l);
void session_list_del(struct tern *t, struct session_link *l);
/* A new session id, printed as 16 hex digits in logs. */
uint64_t tern_session_id(struct tern *t);

#endif
