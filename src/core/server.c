/*
 * server.c - small pieces of the server context shared by the services.
 */
#include "core/server.h"

void session_list_add(struct tern *t, struct session_link *l)
{
	l->prev = NULL;
	l->next = t->sessions.head;
	if (l->next)
		l->next->prev = l;
	t->sessions.head = l;
	t->nsessions++;
}

void session_list_del(struct tern *t, struct session_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		t->sessions.head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	t->nsessions--;
}

uint64_t tern_session_id(struct tern *t)
{
	return ++t->next_session_id;
}
