/*
 * smtp_policy.c - who may do what in an SMTP session.
 *
 * Port 25 takes mail for local domains from anyone (RFC 5321 as an MX);
 * relaying to other domains needs AUTH or a client in trusted_networks.
 * The submission ports (RFC 6409, RFC 8314) need AUTH before MAIL, and an
 * authenticated user may only send as an address of their own.
 */
#include "smtp/smtp_session.h"
#include "core/config.h"
#include "store/aliases.h"

#include <string.h>
#include <strings.h>

bool smtp_policy_may_proceed(struct smtp_session *s)
{
	if (s->svc == SERVICE_SMTP || s->auth_user != NULL)
		return true;
	smtp_reply(s, "530 5.7.0 Authentication required");
	return false;
}

bool smtp_policy_may_relay(const struct smtp_session *s)
{
	return s->auth_user != NULL || s->trusted;
}

/* True when addr is the user's own address or an alias that delivers to
 * the user. */
static bool sender_owned(const struct smtp_session *s, const char *addr)
{
	const struct word_list *targets;
	if (strcasecmp(addr, s->auth_user) == 0)
		return true;
	targets = aliases_lookup(s->t->aliases, addr);
	if (targets == NULL)
		return false;
	for (size_t i = 0; i < targets->n; i++)
		if (strcasecmp(targets->v[i], s->auth_user) == 0)
			return true;
	return false;
}

bool smtp_policy_sender_ok(struct smtp_session *s, const struct smtp_path *p, const char *addr)
{
	if (s->auth_user == NULL || s->t->cfg->sender_any || s->svc == SERVICE_SMTP)
		return true;
	if (!p->null && sender_owned(s, addr))
		return true;
	smtp_reply(s, "553 5.7.1 <%s>: Sender address not owned by user %s", p->null ? "" : addr, s->auth_user);
	return false;
}

/* The classic open-relay tricks: "user%other@local", "host!user@local"
 * and a quoted local part hiding an '@'.  Each asks a host to pass mail
 * on; only clients that may relay get that.  A source route "@a,@b:u@d"
 * is no trick: the parser has dropped it (RFC 5321 3.6.1 and appendix C
 * let a server ignore the route and deliver to the final mailbox), and
 * u@d goes through the relay rules like any other address. */
bool smtp_policy_rcpt_ok(struct smtp_session *s, const struct smtp_path *p, const char *addr)
{
	if (smtp_policy_may_relay(s))
		return true;
	if (strpbrk(p->local, "%!@") != NULL) {
		smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		return false;
	}
	return true;
}
