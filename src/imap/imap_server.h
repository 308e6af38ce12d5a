/*
 * imap_server.h - the IMAP server (RFC 9051, RFC 3501) for the [imap]
 * (STARTTLS) and [imaps] (implicit TLS) listeners, over the Maildir++
 * folders of store/imap_folder.h.
 */
#ifndef TERN_IMAP_SERVER_H
#define TERN_IMAP_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

#include "core/server.h"

/* State shared by the sessions of one tern: the open folders (so that
 * sessions on one folder see each other's changes) and the inotify
 * watches that announce deliveries. */
struct imap_server *imap_server_new(struct tern *t);
void imap_server_free(struct imap_server *s);

/* Take over an accepted connection (SERVICE_IMAP or SERVICE_IMAPS). */
void imap_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc);

#endif
