/*
 * smtp_auth.c - STARTTLS (RFC 3207), implicit TLS (RFC 8314) and AUTH
 * (RFC 4954) for the SMTP server session.  Not built yet: TLS and AUTH
 * are announced nowhere and refused with the codes RFC 3207/4954 give.
 */
#include "smtp/smtp_session.h"

int smtp_tls_accept_hook(struct smtp_session *s)
{
	return 0;
}

size_t smtp_ehlo_extra(struct smtp_session *s, char *buf, size_t cap)
{
	return 0;
}

void smtp_tls_describe(struct smtp_session *s, char *buf, size_t cap)
{
	if (cap)
		buf[0] = '\0';
}

void smtp_cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "454 4.7.0 TLS not available");
}

void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "503 5.5.1 AUTH not available");
}

void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len)
{
	s->sasl_pending = false;
}
