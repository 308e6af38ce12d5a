/*
 * greylist.c - the greylisting decision (see greylist.h) over the
 * triplet store of src/store/greylist_store.c.
 *
 * Keys: "t:NET SENDER RCPT" for a triplet (addresses lower-cased) and
 * "c:ADDR" for a client address that passed.  A sighting of something
 * already accepted is written back at most once an hour: enough to keep
 * it from expiring, without a record per message.
 */
#include "filter/greylist.h"
#include "core/listener.h"
#include "core/util.h"
#include "store/greylist_store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GREYLIST_TOUCH_EVERY 3600
#define GREYLIST_PRUNE_EVERY 60   /* a sweep costs only the expired entries */

struct greylist {
	struct grey_store *store;
	uint64_t delay;
	int64_t pruned_at;        /* the last sweep of expired entries */
};

const char *greylist_verdict_name(enum greylist_verdict v)
{
	switch (v) {
	case GREYLIST_NEW: return "new";
	case GREYLIST_EARLY: return "early";
	case GREYLIST_PASSED: return "passed";
	case GREYLIST_KNOWN: return "known";
	}
	return "unknown";
}

struct greylist *greylist_open(const char *state_dir, uint64_t delay, uint64_t expire, unsigned max_entries,
			       struct workers *workers, char **err)
{
	char *path = xasprintf("%s/greylist.log", state_dir);
	struct grey_store *st = grey_store_open(path, max_entries, expire, now_unix(), workers, err);
	struct greylist *gl;

	free(path);
	if (st == NULL)
		return NULL;
	gl = xcalloc(1, sizeof(*gl));
	gl->store = st;
	gl->delay = delay;
	return gl;
}

void greylist_close(struct greylist *gl)
{
	if (gl == NULL)
		return;
	grey_store_close(gl->store);
	free(gl);
}

static void client_addr(const struct sockaddr *sa, unsigned char *a, int *family)
{
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			*family = AF_INET;
			memcpy(a, a6->s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(a, a6->s6_addr, 16);
		}
	} else if (sa->sa_family == AF_INET) {
		*family = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else {
		*family = 0;
	}
}

void greylist_client_net(const struct sockaddr *sa, char *out, size_t cap)
{
	unsigned char a[16] = { 0 };
	char buf[INET6_ADDRSTRLEN];
	int fam;

	client_addr(sa, a, &fam);
	if (fam == AF_INET) {
		a[3] = 0;
		inet_ntop(AF_INET, a, buf, sizeof(buf));
		snprintf(out, cap, "%s/24", buf);
	} else if (fam == AF_INET6) {
		memset(a + 8, 0, 8);
		inet_ntop(AF_INET6, a, buf, sizeof(buf));
		snprintf(out, cap, "%s/64", buf);
	} else {
		snprintf(out, cap, "local");
	}
}

static void client_key(const struct sockaddr *sa, char *out, size_t cap)
{
	char buf[INET6_ADDRSTRLEN];

	listener_format_ip(sa, buf, sizeof(buf));
	snprintf(out, cap, "c:%s", buf);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void touch(struct greylist *gl, const char *key, struct grey_entry *e, int64_t now)
{
	if (now - e->last >= GREYLIST_TOUCH_EVERY) {
		e->last = now;
		grey_store_put(gl->store, key, e, now);
	}
}

enum greylist_verdict greylist_check(struct greylist *gl, const struct sockaddr *client, const char *sender,
				     const char *rcpt, int64_t now)
{
	char net[64], raw[GREY_KEY_MAX], key[GREY_KEY_MAX], ckey[80];
	struct grey_entry e, c;

	if (now - gl->pruned_at >= GREYLIST_PRUNE_EVERY) {
		gl->pruned_at = now;
		grey_store_prune(gl->store, now);
	}
	client_key(client, ckey, sizeof(ckey));
	greylist_client_net(client, net, sizeof(net));
	/* Addresses are at most 256 octets each (RFC 5321 4.5.3.1.3), so
	 * the escaped key (3 octets per odd one) fits. */
	snprintf(raw, sizeof(raw), "%s %.256s %.256s", net, sender, rcpt);
	lower(raw);
	/* The escape turns the separating spaces into %20 as well: the key
	 * stays one token of the file, and unambiguous (a '%' is escaped). */
	memcpy(key, "t:", 2);
	grey_store_key_escape(raw, key + 2, sizeof(key) - 2);
	if (grey_store_get(gl->store, ckey, &c) && c.passed) {
		touch(gl, ckey, &c, now);
		return GREYLIST_KNOWN;
	}
	if (!grey_store_get(gl->store, key, &e)) {
		e = (struct grey_entry){ .first = now, .last = now, .passed = false };
		grey_store_put(gl->store, key, &e, now);
		return GREYLIST_NEW;
	}
	if (e.passed) {
		touch(gl, key, &e, now);
		return GREYLIST_KNOWN;
	}
	if (now - e.first < (int64_t)gl->delay)
		return GREYLIST_EARLY;
	e.passed = true;
	e.last = now;
	grey_store_put(gl->store, key, &e, now);
	c = (struct grey_entry){ .first = now, .last = now, .passed = true };
	grey_store_put(gl->store, ckey, &c, now);
	return GREYLIST_PASSED;
}

size_t greylist_prune(struct greylist *gl, int64_t now)
{
	return grey_store_prune(gl->store, now);
}
