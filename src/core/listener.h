/*
 * listener.h - bind the configured listening sockets and hand accepted
 * connections to the service that owns each one.
 */
#ifndef TERN_LISTENER_H
#define TERN_LISTENER_H

#include <event2/util.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "core/server.h"

typedef void (*accept_fn)(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			  enum service svc);

/* Bind every address of every service that has an accept function.
 * Errors are fatal at start-up and printed with the address. */
bool listeners_open(struct tern *t, const accept_fn accept_by_service[SERVICE_COUNT]);
void listeners_close(struct tern *t);
const char *service_name(enum service svc);
/* An accepted peer's address as text for logs and Received: (an
 * IPv4-mapped IPv6 address as IPv4; "local" for other families). */
void listener_format_ip(const struct sockaddr *sa, char *out, size_t cap);

#endif
