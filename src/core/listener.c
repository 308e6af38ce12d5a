/*
 * listener.c - listening sockets (see listener.h).  IPv6 sockets are
 * V6ONLY so that "0.0.0.0:25, [::]:25" binds both families.
 */
#include "core/listener.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct listener_ctx {
	struct tern *t;
	enum service svc;
	accept_fn fn;
};

const char *service_name(enum service svc)
{
	static const char *const names[] = { "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps",
					      "http", "https" };
	return svc < SERVICE_COUNT ? names[svc] : "?";
}

void listener_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, a->s6_addr + 12, out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)cap);
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	} else {
		snprintf(out, cap, "local");
	}
}

/* ---- logging: one function per event ------------------------------------ */

static void log_listen(enum service svc, const char *address)
{
	log_event("event=listen service=%s address=%s", service_name(svc), address);
}

static void log_listen_skipped(enum service svc, const char *reason)
{
	log_event("event=listen_skipped service=%s reason=%s", service_name(svc), reason);
}

static void log_accept_error(enum service svc, int err)
{
	log_event("event=accept_error service=%s error=\"%s\"", service_name(svc), evutil_socket_error_to_string(err));
}

static void listener_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct listener_ctx *ctx = arg;
	if (ctx->t->shutting_down) {
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	ctx->fn(ctx->t, fd, sa, (socklen_t)len, ctx->svc);
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
	struct listener_ctx *ctx = arg;
	int err = EVUTIL_SOCKET_ERROR();
	/* EMFILE/ENFILE and the like: logged, and accepting goes on.  The
	 * sessions refuse new connections with 421 well before the limit
	 * (tern->max_fds), so running out here means something else holds
	 * the descriptors. */
	log_accept_error(ctx->svc, err);
}

static const struct listen_list *service_listen(const struct config *c, enum service svc)
{
	switch (svc) {
	case SERVICE_SMTP: return &c->smtp_listen;
	case SERVICE_SUBMISSION: return &c->submission_listen;
	case SERVICE_SUBMISSIONS: return &c->submissions_listen;
	case SERVICE_POP3: return &c->pop3_listen;
	case SERVICE_POP3S: return &c->pop3s_listen;
	case SERVICE_IMAP: return &c->imap_listen;
	case SERVICE_IMAPS: return &c->imaps_listen;
	case SERVICE_HTTP: return &c->http_listen;
	case SERVICE_HTTPS: return &c->https_listen;
	default: return NULL;
	}
}

static evutil_socket_t bind_one(const struct listen_addr *a)
{
	int one = 1;
	evutil_socket_t fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 511) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool listeners_open(struct tern *t, const accept_fn accept_by_service[SERVICE_COUNT])
{
	for (int svc = 0; svc < SERVICE_COUNT; svc++) {
		const struct listen_list *l = service_listen(t->cfg, (enum service)svc);
		for (size_t i = 0; l && i < l->n; i++) {
			if (accept_by_service[svc] == NULL && t->cfg->dev_default) {
				log_listen_skipped((enum service)svc, "not_in_this_build");
				break;
			}
			if (accept_by_service[svc] == NULL) {
				fprintf(stderr, "tern: [%s] listen: this service is not available in this build\n",
					service_name((enum service)svc));
				return false;
			}
			evutil_socket_t fd = bind_one(&l->v[i]);
			if (fd < 0) {
				fprintf(stderr, "tern: cannot listen on %s for %s: %s\n", l->v[i].text,
					service_name((enum service)svc), strerror(errno));
				return false;
			}
			struct listener_ctx *ctx = xcalloc(1, sizeof(*ctx));
			ctx->t = t;
			ctx->svc = (enum service)svc;
			ctx->fn = accept_by_service[svc];
			struct evconnlistener *el = evconnlistener_new(t->base, listener_accept_cb, ctx,
				LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
			if (el == NULL)
				die("evconnlistener_new failed");
			evconnlistener_set_error_cb(el, listener_error_cb);
			t->listeners = xrealloc(t->listeners, (t->nlisteners + 1) * sizeof(*t->listeners));
			t->listener_ctx = xrealloc(t->listener_ctx, (t->nlisteners + 1) * sizeof(void *));
			t->listener_ctx[t->nlisteners] = ctx;
			t->listeners[t->nlisteners++] = el;
			t->own_addrs = xrealloc(t->own_addrs, (t->nown_addrs + 1) * sizeof(*t->own_addrs));
			t->own_addrs[t->nown_addrs++] = l->v[i].ss;
			log_listen((enum service)svc, l->v[i].text);
		}
	}
	return true;
}

void listeners_close(struct tern *t)
{
	for (size_t i = 0; i < t->nlisteners; i++) {
		evconnlistener_free(t->listeners[i]);
		free(t->listener_ctx[i]);
	}
	free(t->listeners);
	free(t->listener_ctx);
	t->listener_ctx = NULL;
	t->listeners = NULL;
	t->nlisteners = 0;
}
