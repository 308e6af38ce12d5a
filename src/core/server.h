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
struct evconnlistener;
struct control;
struct login;

enum service {
	SERVICE_SMTP,             /* port 25: MX */
	SERVICE_SUBMISSION,       /* port 587: STARTTLS + AUTH */
	SERVICE_SUBMISSIONS,      /* port 465: implicit TLS + AUTH */
	SERVICE_POP3,
	SERVICE_POP3S,
	SERVICE_COUNT
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
	struct dns *dns;
	struct control *control;  /* the control socket (cli/control.h) */
	struct tls_ctx *tls;
	struct pop3_server *pop3;      /* POP3 state shared by sessions */
	struct addr_count *conn_per_ip;
	struct login *login;           /* authentication for every protocol */
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
