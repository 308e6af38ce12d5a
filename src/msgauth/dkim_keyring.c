/*
 * dkim_keyring.c - see dkim_keyring.h.  Reading a PEM file and parsing
 * an RSA key costs far more than signing a small message; doing it per
 * message on the loop, as the signing stage once did, put a directory
 * scan and a file read into every submission.
 */
#include "msgauth/dkim_keyring.h"

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct dkim_keyring {
	const struct config *cfg;
	struct dkim_keyring_key *k;
	size_t n;
	uint64_t stamp;          /* of the files as the last load saw them */
	struct event *watch;
};

static void log_dkim_keys_loaded(const char *why, size_t n)
{
	log_event("event=dkim_keys_loaded reason=%s keys=%zu", why, n);
}

static void log_dkim_key_error(const char *path, const char *err)
{
	char p[600], e[300];
	log_event("event=dkim_key_error level=error path=%s error=%s", log_quote(p, sizeof(p), path, strlen(path)),
		  log_quote(e, sizeof(e), err, strlen(err)));
}

static void keyring_clear(struct dkim_keyring *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->k[i].domain);
		free(r->k[i].selector);
		free(r->k[i].path);
		EVP_PKEY_free(r->k[i].pkey);
	}
	free(r->k);
	r->k = NULL;
	r->n = 0;
}

static void keyring_add(struct dkim_keyring *r, const char *domain, size_t dlen, const char *selector, size_t slen,
			const char *path)
{
	char err[200];
	EVP_PKEY *pkey = dkim_key_load(path, err, sizeof(err));
	struct dkim_keyring_key *k;

	if (pkey == NULL) {
		log_dkim_key_error(path, err);
		return;
	}
	r->k = xrealloc(r->k, (r->n + 1) * sizeof(*r->k));
	k = &r->k[r->n++];
	k->domain = xstrndup(domain, dlen);
	for (char *p = k->domain; *p; p++)
		*p = ascii_lower(*p);
	k->selector = xstrndup(selector, slen);
	k->path = xstrdup(path);
	k->pkey = pkey;
}

static char *keyring_dir(const struct dkim_keyring *r)
{
	return xasprintf("%s/dkim", r->cfg->state_dir);
}

/* Keys of tern dkim keygen: SELECTOR._domainkey.DOMAIN.pem. */
static void keyring_load_dir(struct dkim_keyring *r)
{
	static const char mid[] = "._domainkey.", end[] = ".pem";
	char *dir = keyring_dir(r);
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL) {
		const char *name = e->d_name, *m = strstr(name, mid);
		size_t len = strlen(name);
		if (name[0] == '.' || m == NULL || len <= sizeof(end) - 1 ||
		    strcmp(name + len - (sizeof(end) - 1), end) != 0)
			continue;
		const char *dom = m + sizeof(mid) - 1;
		size_t dlen = (size_t)(name + len - (sizeof(end) - 1) - dom);
		if (m == name || dom > name + len - (sizeof(end) - 1) || dlen == 0)
			continue;
		char *path = xasprintf("%s/%s", dir, name);
		keyring_add(r, dom, dlen, name, (size_t)(m - name), path);
		free(path);
	}
	if (d != NULL)
		closedir(d);
	free(dir);
}

/* [dkim] keys = DOMAIN:SELECTOR:PEM_PATH, ... */
static void keyring_load_config(struct dkim_keyring *r)
{
	for (size_t i = 0; i < r->cfg->dkim_keys.n; i++) {
		const char *k = r->cfg->dkim_keys.v[i];
		const char *c1 = strchr(k, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL)
			continue;   /* the config check refuses these */
		keyring_add(r, k, (size_t)(c1 - k), c1 + 1, (size_t)(c2 - c1 - 1), c2 + 1);
	}
}

static uint64_t stamp_mix(uint64_t h, const struct stat *st, bool ok)
{
	uint64_t v[4] = { ok, ok ? (uint64_t)st->st_ino : 0, ok ? (uint64_t)st->st_mtim.tv_sec : 0,
			  ok ? (uint64_t)st->st_mtim.tv_nsec ^ ((uint64_t)st->st_size << 32) : 0 };
	const unsigned char *p = (const unsigned char *)v;

	for (size_t i = 0; i < sizeof(v); i++)
		h = (h ^ p[i]) * 1099511628211ull;   /* FNV-1a */
	return h;
}

static uint64_t stamp_path(uint64_t h, const char *path)
{
	struct stat st;
	bool ok = stat(path, &st) == 0;

	return stamp_mix(h, &st, ok);
}

/* One number for the state of the files: the key directory (a key added,
 * removed or renamed changes its mtime), every configured key file, and
 * every file loaded (rewritten in place).  A hash rather than a list: a
 * false "unchanged" needs a 64-bit collision. */
static uint64_t keyring_stamp(const struct dkim_keyring *r)
{
	char *dir = keyring_dir(r);
	uint64_t h = stamp_path(14695981039346656037ull, dir);

	free(dir);
	for (size_t i = 0; i < r->cfg->dkim_keys.n; i++) {
		const char *c1 = strchr(r->cfg->dkim_keys.v[i], ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 != NULL)
			h = stamp_path(h, c2 + 1);
	}
	for (size_t i = 0; i < r->n; i++)
		h = stamp_path(h, r->k[i].path);
	return h;
}

void dkim_keyring_reload(struct dkim_keyring *r, const char *why)
{
	keyring_clear(r);
	keyring_load_dir(r);
	keyring_load_config(r);
	r->stamp = keyring_stamp(r);
	log_dkim_keys_loaded(why, r->n);
}

bool dkim_keyring_changed(struct dkim_keyring *r)
{
	return keyring_stamp(r) != r->stamp;
}

static void keyring_watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dkim_keyring *r = arg;

	if (dkim_keyring_changed(r))
		dkim_keyring_reload(r, "changed");
}

struct dkim_keyring *dkim_keyring_new(struct event_base *base, const struct config *cfg)
{
	struct dkim_keyring *r = xcalloc(1, sizeof(*r));
	struct timeval tv = { DKIM_KEYRING_CHECK_MS / 1000, (DKIM_KEYRING_CHECK_MS % 1000) * 1000 };

	r->cfg = cfg;
	dkim_keyring_reload(r, "start");
	if (base != NULL) {
		r->watch = event_new(base, -1, EV_PERSIST, keyring_watch_cb, r);
		if (r->watch == NULL)
			die("event_new failed");
		event_add(r->watch, &tv);
	}
	return r;
}

size_t dkim_keyring_count(const struct dkim_keyring *r)
{
	return r ? r->n : 0;
}

size_t dkim_keyring_find(const struct dkim_keyring *r, const char *domain, const struct dkim_keyring_key **out,
			 size_t max)
{
	size_t n = 0;

	for (size_t i = 0; r != NULL && i < r->n && n < max; i++)
		if (strcasecmp(r->k[i].domain, domain) == 0)
			out[n++] = &r->k[i];
	return n;
}

void dkim_keyring_free(struct dkim_keyring *r)
{
	if (r == NULL)
		return;
	if (r->watch != NULL)
		event_free(r->watch);
	keyring_clear(r);
	free(r);
}
