/*
 * smtp_server.h - the SMTP server session (RFC 5321) for the MX port and,
 * with AUTH required, the submission ports (RFC 6409, RFC 8314).
 */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

#include "core/server.h"

/* Take over an accepted connection on a listener of service svc. */
void smtp_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc);

#endif
