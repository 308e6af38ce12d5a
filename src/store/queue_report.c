/*
 * queue_report.c - see queue_report.h.  The mailq layout follows the one
 * Sendmail and Postfix print (id, size, arrival, sender, then the
 * recipients with the reason they wait), so scripts written for them
 * keep working.
 */
#include "store/queue_report.h"
#include "store/queue.h"

#include <inttypes.h>
#include <time.h>

void queue_report_json_str(FILE *f, const char *s)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static const char *rcpt_shown_state(const struct queue_env *env, const struct queue_rcpt *r)
{
	return env->held ? "held" : rcpt_state_name(r->state);
}

size_t queue_report_list(FILE *f, const struct queue_env *env, bool json, bool *first)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		const char *state = rcpt_shown_state(env, r);
		if (!json) {
			fprintf(f, "%s %-9s %s%s%s\n", env->id, state, r->addr, r->last_reply ? "  " : "",
				r->last_reply ? r->last_reply : "");
			continue;
		}
		fprintf(f, "%s\n  {\"id\": \"%s\", \"recipient\": ", *first ? "" : ",", env->id);
		queue_report_json_str(f, r->addr);
		fputs(", \"sender\": ", f);
		queue_report_json_str(f, env->from);
		fprintf(f, ", \"state\": \"%s\", \"local\": %s, \"arrival\": %" PRId64 ", \"size\": %" PRIu64
			", \"attempts\": %u, \"next_try\": %" PRId64 ", \"last_reply\": ",
			state, r->local ? "true" : "false", env->arrival, env->msg_len, r->attempts, r->next_try);
		queue_report_json_str(f, r->last_reply);
		fputc('}', f);
		*first = false;
	}
	return env->nrcpt;
}

void queue_report_list_open(FILE *f, bool json)
{
	if (json)
		fputc('[', f);
}

void queue_report_list_close(FILE *f, bool json, size_t n)
{
	if (json)
		fprintf(f, "%s]\n", n ? "\n" : "");
}

void queue_report_show(FILE *f, const struct queue_env *env)
{
	fprintf(f, "id: %s\nfrom: <%s>\narrival: %" PRId64 "\nsize: %" PRIu64 "\nclient: %s (%s)\n", env->id,
		env->from, env->arrival, env->msg_len, env->client_ip ? env->client_ip : "-",
		env->helo ? env->helo : "-");
	if (env->held)
		fputs("held: yes\n", f);
	for (size_t i = 0; i < env->nrcpt; i++)
		fprintf(f, "rcpt: %s %s attempts=%u%s%s\n", env->rcpt[i].addr, rcpt_state_name(env->rcpt[i].state),
			env->rcpt[i].attempts, env->rcpt[i].last_reply ? " last=" : "",
			env->rcpt[i].last_reply ? env->rcpt[i].last_reply : "");
	fputc('\n', f);
}

void queue_report_show_json(FILE *f, const struct queue_env *env)
{
	fprintf(f, "{\"id\": \"%s\", \"sender\": ", env->id);
	queue_report_json_str(f, env->from);
	fprintf(f, ", \"arrival\": %" PRId64 ", \"size\": %" PRIu64 ", \"held\": %s, \"client_ip\": ", env->arrival,
		env->msg_len, env->held ? "true" : "false");
	queue_report_json_str(f, env->client_ip);
	fputs(", \"helo\": ", f);
	queue_report_json_str(f, env->helo);
	fputs(", \"recipients\": [", f);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		fprintf(f, "%s{\"recipient\": ", i ? ", " : "");
		queue_report_json_str(f, r->addr);
		fprintf(f, ", \"state\": \"%s\", \"local\": %s, \"attempts\": %u, \"next_try\": %" PRId64
			", \"last_reply\": ", rcpt_state_name(r->state), r->local ? "true" : "false", r->attempts,
			r->next_try);
		queue_report_json_str(f, r->last_reply);
		fputc('}', f);
	}
	fputs("]}\n", f);
}

void queue_report_mailq_head(FILE *f)
{
	fputs("-Queue ID-       --Size-- ----Arrival Time---- -Sender/Recipient-------\n", f);
}

/* "!" after the id marks a held message, as in Postfix's mailq. */
void queue_report_mailq(FILE *f, const struct queue_env *env)
{
	char when[32];
	time_t t = (time_t)env->arrival;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	fprintf(f, "%s%c %8" PRIu64 " %-20s  %s\n", env->id, env->held ? '!' : ' ', env->msg_len, when,
		env->from[0] ? env->from : "MAILER-DAEMON");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		if (r->state == RCPT_DONE || r->state == RCPT_FAILED)
			continue;
		if (r->last_reply)
			fprintf(f, "%48s(%s)\n", "", r->last_reply);
		fprintf(f, "%48s%s\n", "", r->addr);
	}
	fputc('\n', f);
}

void queue_report_mailq_tail(FILE *f, size_t nmsgs, uint64_t bytes)
{
	if (nmsgs == 0) {
		fputs("Mail queue is empty\n", f);
		return;
	}
	fprintf(f, "-- %" PRIu64 " Kbytes in %zu Request%s.\n", (bytes + 1023) / 1024, nmsgs, nmsgs == 1 ? "" : "s");
}
