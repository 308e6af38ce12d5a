/*
 * autoconfig.c - client self-configuration from an email address:
 * Thunderbird's autoconfig file (clientConfig version 1.1, asked of
 * autoconfig.DOMAIN) and Microsoft's Autodiscover POX answer ([MS-OXDSCLI],
 * POSTed to autodiscover.DOMAIN).  Both list exactly the services of
 * mail_services.c that have a listener, on their ports, with the [server]
 * hostname; only for local domains.
 */
#include "web/web.h"
#include "core/config.h"
#include "core/util.h"
#include "proto/autodiscover.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static void xml_text(struct evbuffer *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': evbuffer_add(b, "&amp;", 5); break;
		case '<': evbuffer_add(b, "&lt;", 4); break;
		case '>': evbuffer_add(b, "&gt;", 4); break;
		case '"': evbuffer_add(b, "&quot;", 6); break;
		case '\'': evbuffer_add(b, "&apos;", 6); break;
		default: evbuffer_add(b, s, 1);
		}
	}
}

/* <tag>escaped text</tag> */
static void xml_el(struct evbuffer *b, const char *indent, const char *tag, const char *text)
{
	evbuffer_add_printf(b, "%s<%s>", indent, tag);
	xml_text(b, text);
	evbuffer_add_printf(b, "</%s>\n", tag);
}

/* The domain of an address, when it is local. */
static const char *local_domain_of(const struct config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at && config_is_local_domain(cfg, at + 1) ? at + 1 : NULL;
}

static void autoconfig_server(struct evbuffer *b, const struct config *cfg, const struct web_mail_service *s,
			      unsigned port)
{
	bool out = strcmp(s->kind, "smtp") == 0;
	evbuffer_add_printf(b, "    <%s type=\"%s\">\n", out ? "outgoingServer" : "incomingServer", s->kind);
	xml_el(b, "      ", "hostname", cfg->hostname);
	evbuffer_add_printf(b, "      <port>%u</port>\n", port);
	xml_el(b, "      ", "socketType", s->socket);
	xml_el(b, "      ", "authentication", "password-cleartext");
	xml_el(b, "      ", "username", "%EMAILADDRESS%");
	evbuffer_add_printf(b, "    </%s>\n", out ? "outgoingServer" : "incomingServer");
}

void web_autoconfig(const struct web_request *req, struct web_reply *rep)
{
	const struct config *cfg = req->t->cfg;
	const char *domain = req->domain;
	char addr[320];

	/* Thunderbird sends the address it sets up; it must be of a local
	 * domain (not necessarily the one in Host: one server, many). */
	if (http_query_param(req->head->query, "emailaddress", addr, sizeof(addr)) &&
	    (domain = local_domain_of(cfg, addr)) == NULL) {
		rep->status = 404;
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n"
			       "  <emailProvider id=\"");
	xml_text(b, domain);
	evbuffer_add_printf(b, "\">\n");
	xml_el(b, "    ", "domain", domain);
	xml_el(b, "    ", "displayName", domain);
	xml_el(b, "    ", "displayShortName", domain);
	for (size_t i = 0; i < web_mail_services_n; i++) {
		unsigned port = web_mail_service_port(cfg, &web_mail_services[i]);
		if (port)
			autoconfig_server(b, cfg, &web_mail_services[i], port);
	}
	evbuffer_add_printf(b, "  </emailProvider>\n</clientConfig>\n");
	rep->status = 200;
	rep->content_type = "application/xml; charset=utf-8";
	rep->body = b;
}

static void autodiscover_protocol(struct evbuffer *b, const struct config *cfg, const char *addr,
				  const struct web_mail_service *s, unsigned port)
{
	char type[8];
	size_t i;
	for (i = 0; s->kind[i] && i + 1 < sizeof(type); i++)
		type[i] = s->kind[i] >= 'a' && s->kind[i] <= 'z' ? (char)(s->kind[i] - 32) : s->kind[i];
	type[i] = '\0';                           /* IMAP, POP3, SMTP */
	evbuffer_add_printf(b, "      <Protocol>\n");
	xml_el(b, "        ", "Type", type);
	xml_el(b, "        ", "Server", cfg->hostname);
	evbuffer_add_printf(b, "        <Port>%u</Port>\n", port);
	xml_el(b, "        ", "LoginName", addr);
	xml_el(b, "        ", "DomainRequired", "off");
	xml_el(b, "        ", "SPA", "off");
	xml_el(b, "        ", "SSL", "on");
	xml_el(b, "        ", "Encryption", strcmp(s->socket, "SSL") == 0 ? "SSL" : "TLS");
	xml_el(b, "        ", "AuthRequired", "on");
	evbuffer_add_printf(b, "      </Protocol>\n");
}

void web_autodiscover(const struct web_request *req, struct web_reply *rep)
{
	const struct config *cfg = req->t->cfg;
	char addr[320];

	if (!autodiscover_email(req->body, req->body_len, addr, sizeof(addr))) {
		rep->status = 400;
		return;
	}
	if (local_domain_of(cfg, addr) == NULL) {
		rep->status = 404;
		return;
	}
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_printf(b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n"
		"  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n"
		"    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n");
	for (size_t i = 0; i < web_mail_services_n; i++) {
		unsigned port = web_mail_service_port(cfg, &web_mail_services[i]);
		if (port)
			autodiscover_protocol(b, cfg, addr, &web_mail_services[i], port);
	}
	evbuffer_add_printf(b, "    </Account>\n  </Response>\n</Autodiscover>\n");
	rep->status = 200;
	rep->content_type = "application/xml; charset=utf-8";
	rep->body = b;
}
