/*
 * control_server.c - the server side of the control socket (see control.h).
 *
 * Served on the event loop like any session: one bounded request line,
 * then the answer.  Nothing waits: hold, release and delete are handed to
 * the scheduler, which answers when its worker has written the files,
 * and `list` is written a batch of
 * messages at a time, the next batch when the output has drained, so a
 * long queue neither stalls the loop nor piles up in memory; `show`
 * hands the message to the output buffer as a file segment.
 */
#include "cli/control.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "delivery/scheduler.h"
#include "store/queue.h"
#include "store/queue_report.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_MAX_CONNS   32
#define CONTROL_BATCH       64        /* messages formatted per output drain */
#define CONTROL_OUT_LOW     16384     /* refill the list below this */
#define CONTROL_TIMEOUT_S   30
#define CONTROL_LINGER_S    5

struct control_conn {
	struct control *c;
	struct control_conn *prev, *next;
	struct bufferevent *bev;
	bool json;
	bool answered;            /* the whole answer is in the output buffer */
	bool request_seen;
	bool peer_closed;         /* EOF seen: free once the answer has left */
	/* hold, release or delete handed to the scheduler */
	bool waiting;
	char op_id[QUEUE_ID_LEN + 1];
	const char *op_done;
	/* `list` in progress */
	char **ids;
	size_t nids, next_id, entries;
	bool first;
};

struct control {
	struct tern *t;
	struct evconnlistener *listener;
	char *path;
	struct control_conn *conns;
	size_t nconns;
};

struct control_verb {
	const char *name;
	void (*fn)(struct control_conn *cc, const char *arg);
	unsigned flags;
};

#define VERB_NEEDS_ID   0x01      /* ARG is a queue id */
#define VERB_OPT_ARG    0x02      /* ARG may be given (a domain) */

/* A request; a well-formed queue id argument is logged as queue= so that
 * grepping a message's id finds what was done to it by hand. */
static void log_control(const char *verb, const char *arg, bool arg_is_id, const char *result)
{
	char a[80];

	if (arg_is_id)
		log_event("event=control verb=%s queue=%s result=%s", verb, arg, result);
	else
		log_event("event=control verb=%s arg=%s result=%s", verb,
			  arg ? log_quote(a, sizeof(a), arg, strlen(arg)) : "-", result);
}

static void log_control_timeout(void)
{
	log_event("event=control_timeout");
}

static void log_control_refused(size_t conns)
{
	log_event("event=control_refused conns=%zu", conns);
}

static void log_control_error(const char *path, const char *error)
{
	log_event("event=control_error path=%s error=\"%s\"", path, error);
}

static void log_control_listening(const char *path)
{
	log_event("event=control_listening path=%s", path);
}

/* ---- connections ---------------------------------------------------------- */

static void control_conn_free(struct control_conn *cc)
{
	struct control *c = cc->c;
	if (cc->prev)
		cc->prev->next = cc->next;
	else
		c->conns = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	c->nconns--;
	if (cc->waiting)
		scheduler_forget(c->t->sched, cc);
	for (size_t i = cc->next_id; i < cc->nids; i++)
		free(cc->ids[i]);
	free(cc->ids);
	bufferevent_free(cc->bev);
	free(cc);
}

/* The answer has left: end our side, and free when the client closes
 * its side.  Input is read and dropped till then, since closing with
 * unread input would reset the connection and could lose the answer. */
static void control_linger(struct control_conn *cc)
{
	struct timeval tv = { CONTROL_LINGER_S, 0 };
	shutdown(bufferevent_getfd(cc->bev), SHUT_WR);
	bufferevent_set_timeouts(cc->bev, &tv, NULL);
}

/* The answer is complete (in the output buffer). */
static void control_finish(struct control_conn *cc)
{
	cc->answered = true;
	if (evbuffer_get_length(bufferevent_get_output(cc->bev)) == 0)
		control_linger(cc);
}

static void control_status(struct control_conn *cc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void control_status(struct control_conn *cc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(cc->bev), fmt, ap);
	va_end(ap);
}

static void control_error(struct control_conn *cc, const char *text)
{
	control_status(cc, "ERR %s\n", text);
	control_finish(cc);
}

/* Text for the output, formatted by a queue_report function. */
static FILE *control_mem(char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);
	if (f == NULL)
		die("open_memstream: %s", strerror(errno));
	return f;
}

/* Close f; what it holds (in *buf, set by fclose) goes to the output. */
static void control_add_mem(struct control_conn *cc, FILE *f, char **buf, size_t *len)
{
	fclose(f);
	evbuffer_add(bufferevent_get_output(cc->bev), *buf, *len);
	free(*buf);
}

/* ---- verbs ------------------------------------------------------------------ */

static void list_collect_cb(const char *id, void *arg)
{
	struct control_conn *cc = arg;
	cc->ids = xrealloc(cc->ids, (cc->nids + 1) * sizeof(*cc->ids));
	cc->ids[cc->nids++] = xstrdup(id);
}

/* Next batch of `list`, called again from the write callback. */
static void list_fill(struct control_conn *cc)
{
	struct queue *q = cc->c->t->queue;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = control_mem(&buf, &len);

	for (size_t n = 0; n < CONTROL_BATCH && cc->next_id < cc->nids; n++) {
		char *id = cc->ids[cc->next_id++];
		struct queue_env *env = queue_load(q, id, NULL);
		if (env)   /* delivered and removed since the scan: skip */
			cc->entries += queue_report_list(f, env, cc->json, &cc->first);
		queue_env_free(env);
		free(id);
	}
	if (cc->next_id == cc->nids)
		queue_report_list_close(f, cc->json, cc->entries);
	control_add_mem(cc, f, &buf, &len);
	if (cc->next_id == cc->nids)
		control_finish(cc);
}

static void verb_list(struct control_conn *cc, const char *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	queue_scan(cc->c->t->queue, list_collect_cb, cc);
	f = control_mem(&buf, &len);
	fputs("OK\n", f);
	queue_report_list_open(f, cc->json);
	cc->first = true;
	control_add_mem(cc, f, &buf, &len);
	list_fill(cc);
}

static void verb_show(struct control_conn *cc, const char *id)
{
	int fd = -1;
	struct queue_env *env = queue_load(cc->c->t->queue, id, &fd);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (env == NULL) {
		control_error(cc, "no such message");
		return;
	}
	f = control_mem(&buf, &len);
	fputs("OK\n", f);
	if (cc->json)
		queue_report_show_json(f, env);
	else
		queue_report_show(f, env);
	control_add_mem(cc, f, &buf, &len);
	/* The message itself leaves straight from the queue file. */
	if (!cc->json && env->msg_len > 0)
		evbuffer_add_file(bufferevent_get_output(cc->bev), fd, (ev_off_t)env->msg_offset,
				  (ev_off_t)env->msg_len);
	else
		close(fd);
	queue_env_free(env);
	control_finish(cc);
}

static void verb_flush(struct control_conn *cc, const char *domain)
{
	size_t n = scheduler_flush(cc->c->t->sched, domain);
	if (cc->json)
		control_status(cc, "OK\n{\"flushed\": %zu}\n", n);
	else
		control_status(cc, "OK\nflushed %zu message%s\n", n, n == 1 ? "" : "s");
	control_finish(cc);
}

static void verb_result(struct control_conn *cc, const char *id, bool ok, const char *done)
{
	if (!ok) {
		control_error(cc, "no such message");
		return;
	}
	if (cc->json)
		control_status(cc, "OK\n{\"id\": \"%s\", \"result\": \"%s\"}\n", id, done);
	else
		control_status(cc, "OK\n%s %s\n", id, done);
	control_finish(cc);
}

static void verb_request_done(void *arg, bool ok)
{
	struct control_conn *cc = arg;

	cc->waiting = false;
	verb_result(cc, cc->op_id, ok, cc->op_done);
}

static void verb_request(struct control_conn *cc, const char *id, enum scheduler_request req, const char *done)
{
	snprintf(cc->op_id, sizeof(cc->op_id), "%s", id);
	cc->op_done = done;
	cc->waiting = true;
	scheduler_request(cc->c->t->sched, id, req, verb_request_done, cc);
}

static void verb_hold(struct control_conn *cc, const char *id)
{
	verb_request(cc, id, SCHEDULER_HOLD, "held");
}

static void verb_release(struct control_conn *cc, const char *id)
{
	verb_request(cc, id, SCHEDULER_RELEASE, "released");
}

static void verb_delete(struct control_conn *cc, const char *id)
{
	verb_request(cc, id, SCHEDULER_DELETE, "deleted");
}

static const struct control_verb control_verbs[] = {
	{ "list", verb_list, 0 },
	{ "show", verb_show, VERB_NEEDS_ID },
	{ "flush", verb_flush, VERB_OPT_ARG },
	{ "hold", verb_hold, VERB_NEEDS_ID },
	{ "release", verb_release, VERB_NEEDS_ID },
	{ "delete", verb_delete, VERB_NEEDS_ID },
};

static bool control_valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

static bool control_valid_domain(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!(ch == '.' || ch == '-' || (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')))
			return false;
	}
	return true;
}

/* "VERB [ARG] [--json]": state, then syntax, then act. */
static void control_dispatch(struct control_conn *cc, char *line)
{
	char *word[4], *save = NULL, *arg = NULL;
	size_t n = 0;
	const struct control_verb *v = NULL;

	for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (!strcmp(w, "--json"))
			cc->json = true;
		else if (n < ARRAY_LEN(word))
			word[n++] = w;
		else
			n = ARRAY_LEN(word) + 1;
	}
	for (size_t i = 0; n > 0 && i < ARRAY_LEN(control_verbs); i++)
		if (!strcmp(control_verbs[i].name, word[0]))
			v = &control_verbs[i];
	if (v == NULL) {
		log_control(n ? "unknown" : "empty", NULL, false, "error");
		control_error(cc, "unknown verb (list, show, flush, hold, release, delete)");
		return;
	}
	arg = n > 1 ? word[1] : NULL;
	if (n > 2 || ((v->flags & VERB_NEEDS_ID) && (arg == NULL || !control_valid_id(arg)))
	    || (!(v->flags & (VERB_NEEDS_ID | VERB_OPT_ARG)) && arg != NULL)
	    || ((v->flags & VERB_OPT_ARG) && arg != NULL && !control_valid_domain(arg))) {
		log_control(v->name, arg, false, "syntax");
		control_error(cc, (v->flags & VERB_NEEDS_ID) ? "usage: VERB QUEUE-ID (16 hex digits)"
			      : (v->flags & VERB_OPT_ARG) ? "usage: flush [DOMAIN]" : "usage: list");
		return;
	}
	log_control(v->name, arg, (v->flags & VERB_NEEDS_ID) != 0, "ok");
	v->fn(cc, arg);
}

static void control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	if (cc->answered) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) >= CONTROL_LINE_MAX) {
			evbuffer_drain(in, evbuffer_get_length(in));
			control_error(cc, "request too long");
		}
		return;
	}
	cc->request_seen = true;
	if (len >= CONTROL_LINE_MAX || memchr(line, '\0', len))
		control_error(cc, len >= CONTROL_LINE_MAX ? "request too long" : "NUL in request");
	else
		control_dispatch(cc, line);
	free(line);
}

static void control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;
	if (cc->answered) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
			return;
		if (cc->peer_closed)
			control_conn_free(cc);
		else
			control_linger(cc);
	} else if (cc->ids) {
		list_fill(cc);
	}
}

static void control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn *cc = arg;
	/* A client that sent its request and shut its side still gets the
	 * rest of the answer: free when that has left. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && cc->request_seen
	    && (!cc->answered || evbuffer_get_length(bufferevent_get_output(bev)) > 0)) {
		cc->peer_closed = true;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_control_timeout();
	control_conn_free(cc);
}

/* Only the run user (or root) may steer the queue; the socket's mode
 * says the same, this holds even if someone loosens it. */
static bool control_peer_ok(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void control_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct control *c = arg;
	struct control_conn *cc;
	struct timeval tv = { CONTROL_TIMEOUT_S, 0 };

	if (c->t->shutting_down || c->nconns >= CONTROL_MAX_CONNS || !control_peer_ok(fd)) {
		log_control_refused(c->nconns);
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	cc = xcalloc(1, sizeof(*cc));
	cc->c = c;
	cc->bev = bufferevent_socket_new(c->t->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(cc->bev, control_read_cb, control_write_cb, control_event_cb, cc);
	bufferevent_setwatermark(cc->bev, EV_WRITE, CONTROL_OUT_LOW, 0);
	bufferevent_set_timeouts(cc->bev, &tv, &tv);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
	cc->next = c->conns;
	if (c->conns)
		c->conns->prev = cc;
	c->conns = cc;
	c->nconns++;
}

/* ---- the socket ----------------------------------------------------------- */

static int control_bind(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_control_error(path, "socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_control_error(path, strerror(errno));
		return -1;
	}
	/* A socket left by a server that died; the listeners are already
	 * bound, so no other tern is running on this state directory. */
	unlink(path);
	/* Linux gives the socket file the socket's mode (less umask): set
	 * 0600 before bind so there is no moment when others may connect. */
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0
	    || listen(fd, 16) < 0) {
		log_control_error(path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct control *control_start(struct tern *t)
{
	struct control *c = xcalloc(1, sizeof(*c));
	int fd;

	c->t = t;
	c->path = xasprintf("%s/%s", t->cfg->state_dir, CONTROL_SOCKET);
	fd = control_bind(c->path);
	if (fd >= 0)
		c->listener = evconnlistener_new(t->base, control_accept_cb, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (c->listener == NULL) {
		if (fd >= 0)
			close(fd);
		free(c->path);
		free(c);
		return NULL;
	}
	log_control_listening(c->path);
	return c;
}

void control_free(struct control *c)
{
	if (c == NULL)
		return;
	while (c->conns)
		control_conn_free(c->conns);
	evconnlistener_free(c->listener);
	unlink(c->path);
	free(c->path);
	free(c);
}
