/*
 * mail_services.c - which mail services tern offers, and on which port:
 * the one list that autoconfig, autodiscover and `tern dns-records` SRV
 * records describe, so they cannot disagree with the listeners.
 */
#include "web/web.h"
#include "core/config.h"

#include <netinet/in.h>
#include <string.h>

const struct web_mail_service web_mail_services[] = {
	{ "imap", "SSL", "_imaps._tcp", 993, "imaps" },
	{ "imap", "STARTTLS", "_imap._tcp", 143, "imap" },
	{ "pop3", "SSL", "_pop3s._tcp", 995, "pop3s" },
	{ "pop3", "STARTTLS", "_pop3._tcp", 110, "pop3" },
	{ "smtp", "SSL", "_submissions._tcp", 465, "submissions" },
	{ "smtp", "STARTTLS", "_submission._tcp", 587, "submission" },
};
const size_t web_mail_services_n = sizeof(web_mail_services) / sizeof(web_mail_services[0]);

static const struct listen_list *service_listen(const struct config *cfg, const char *section)
{
	if (strcmp(section, "imaps") == 0)
		return &cfg->imaps_listen;
	if (strcmp(section, "imap") == 0)
		return &cfg->imap_listen;
	if (strcmp(section, "pop3s") == 0)
		return &cfg->pop3s_listen;
	if (strcmp(section, "pop3") == 0)
		return &cfg->pop3_listen;
	if (strcmp(section, "submissions") == 0)
		return &cfg->submissions_listen;
	if (strcmp(section, "submission") == 0)
		return &cfg->submission_listen;
	return NULL;
}

unsigned web_mail_service_port(const struct config *cfg, const struct web_mail_service *s)
{
	const struct listen_list *l = service_listen(cfg, s->section);
	if (l == NULL || l->n == 0)
		return 0;
	const struct sockaddr_storage *ss = &l->v[0].ss;
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}
