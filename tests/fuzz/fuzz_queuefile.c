/*
 * fuzz_queuefile.c - libFuzzer harness for proto/queuefile.c.  The input
 * is a queue file, then optionally 0x1E and a state file.  The trailer is
 * read from the file's last QUEUEFILE_TRAILER_MAX bytes as queue.c reads it, the envelope
 * from where the trailer says the message begins (or, without a trailer,
 * up to the first blank line, so the envelope parser is reached without
 * one), then the state file.  Whatever parses is written back in the
 * queue's format and must parse again to the same values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/queuefile.h"

static void put_value(FILE *f, const char *v)
{
	if (v == NULL) {
		fputc('-', f);
		return;
	}
	fputc('=', f);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p > 0x20 && *p < 0x7f && *p != '%')
			fputc(*p, f);
		else
			fprintf(f, "%%%02X", *p);
	}
}

/* The envelope and state as store/queue.c writes them. */
static char *write_back(const struct queue_env *env, size_t *elen, size_t *slen, char **state)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, elen);

	fprintf(f, "TERN-QUEUE 1\nid 0000000000000000\narrival %lld\nfrom ", (long long)env->arrival);
	put_value(f, env->from);
	fputs("\nhelo ", f);
	put_value(f, env->helo);
	fputs("\nip ", f);
	put_value(f, env->client_ip);
	fputs("\nauth ", f);
	put_value(f, env->auth_user);
	fprintf(f, "\nbody %u\nret %u\nenvid ", env->body, env->ret);
	put_value(f, env->envid);
	fputc('\n', f);
	if (env->smtputf8)
		fputs("smtputf8 1\n", f);
	for (size_t i = 0; i < env->nrcpt; i++) {
		fprintf(f, "rcpt %c %u ", env->rcpt[i].local ? 'L' : 'R', env->rcpt[i].notify);
		put_value(f, env->rcpt[i].addr);
		fputc(' ', f);
		put_value(f, env->rcpt[i].orig);
		fputc(' ', f);
		put_value(f, env->rcpt[i].orcpt);
		fputc('\n', f);
	}
	fputc('\n', f);
	fclose(f);

	f = open_memstream(state, slen);
	fprintf(f, "held %d\nwarned %d\n", env->held, env->delay_warned);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		fprintf(f, "rcpt %zu %d %u %lld ", i, (int)r->state, r->attempts, (long long)r->next_try);
		put_value(f, r->remote_mta);
		fputc(' ', f);
		put_value(f, r->status);
		fputc(' ', f);
		put_value(f, r->last_reply);
		fputc('\n', f);
		if (r->dsn_done)
			fprintf(f, "dsn %zu\n", i);
	}
	fclose(f);
	return text;
}

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_same(const struct queue_env *a, const struct queue_env *b)
{
	if (a->arrival != b->arrival || !same_str(a->from, b->from) || !same_str(a->helo, b->helo) ||
	    !same_str(a->client_ip, b->client_ip) || !same_str(a->auth_user, b->auth_user) ||
	    a->body != b->body || a->ret != b->ret || !same_str(a->envid, b->envid) ||
	    a->smtputf8 != b->smtputf8 ||
	    a->held != b->held || a->delay_warned != b->delay_warned || a->nrcpt != b->nrcpt)
		abort();
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct queue_rcpt *r = &a->rcpt[i], *s = &b->rcpt[i];
		if (!same_str(r->addr, s->addr) || !same_str(r->orig, s->orig) || !same_str(r->orcpt, s->orcpt) ||
		    r->local != s->local || r->notify != s->notify || r->state != s->state ||
		    r->attempts != s->attempts || r->next_try != s->next_try ||
		    !same_str(r->last_reply, s->last_reply) || !same_str(r->status, s->status) ||
		    !same_str(r->remote_mta, s->remote_mta) || r->dsn_done != s->dsn_done)
			abort();
	}
}

static void check_values(const struct queue_env *env)
{
	if (env->from == NULL || env->body > 3 || env->ret > 2)
		abort();
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].addr == NULL || env->rcpt[i].notify > 15 || env->rcpt[i].state > RCPT_FAILED)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *file = (const char *)data, *sep = memchr(data, 0x1e, size);
	size_t flen = sep ? (size_t)(sep - file) : size;
	const char *st = sep ? sep + 1 : NULL;
	size_t stlen = sep ? size - flen - 1 : 0;
	struct queue_env *env = xcalloc(1, sizeof(*env));
	size_t n = flen < QUEUEFILE_TRAILER_MAX ? flen : QUEUEFILE_TRAILER_MAX;
	size_t elen;

	if (queuefile_parse_trailer(file + flen - n, n, flen, env) == QUEUEFILE_OK) {
		if (env->msg_offset > flen || env->msg_len > flen - env->msg_offset)
			abort();
		elen = (size_t)env->msg_offset;
	} else {
		const char *blank = memmem(file, flen, "\n\n", 2);
		elen = blank ? (size_t)(blank - file) + 2 : flen;
	}
	if (queuefile_parse_envelope(file, elen, env) == QUEUEFILE_OK) {
		struct queue_env *again = xcalloc(1, sizeof(*again));
		char *state = NULL, *text;
		size_t tlen, slen;

		if (st)
			queuefile_parse_state(st, stlen, env);
		check_values(env);
		text = write_back(env, &tlen, &slen, &state);
		if (queuefile_parse_envelope(text, tlen, again) != QUEUEFILE_OK ||
		    queuefile_parse_state(state, slen, again) != 0)
			abort();
		check_same(env, again);
		free(text);
		free(state);
		queue_env_free(again);
	}
	queue_env_free(env);
	return 0;
}
