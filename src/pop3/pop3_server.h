/*
 * pop3_server.h - the POP3 server session (RFC 1939, RFC 2449 CAPA and
 * response codes, RFC 2595 STLS, RFC 5034 AUTH) for the [pop3] and
 * [pop3s] listeners, over the Maildirs of store/mailbox.h.
 */
#ifndef TERN_POP3_SERVER_H
#define TERN_POP3_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

#include "core/server.h"

/* State shared by the POP3 sessions of one tern: the last login time of
 * each user, for LOGIN-DELAY (RFC 2449 6.8). */
struct pop3_server *pop3_server_new(void);
void pop3_server_free(struct pop3_server *p);

/* Take over an accepted connection on a listener of service svc
 * (SERVICE_POP3 or SERVICE_POP3S). */
void pop3_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc);

#endif
