/*
 * mailbox.c - the POP3 view of a Maildir (see mailbox.h).  Maildir:
 * https://cr.yp.to/proto/maildir.html ("new/" is unseen mail, "cur/NAME:2,
 * FLAGS" is mail a reader has seen; S = Seen).  RFC 1939 sections 4-7
 * (snapshot, UPDATE, UIDL).
 */
#include "store/mailbox.h"
#include "core/util.h"
#include "proto/pop3_msg.h"
#include "store/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAILBOX_LOCK_NAME "tern-pop3.lock"

/* ",W=123" somewhere before the ':' info part. */
static const char *mailbox_field(const char *name, char key)
{
	const char *end = strchr(name, ':');
	size_t n = end ? (size_t)(end - name) : strlen(name);
	for (const char *p = name; (p = memchr(p, ',', n - (size_t)(p - name))) != NULL; p++)
		if ((size_t)(p - name) + 3 <= n && p[1] == key && p[2] == '=')
			return p + 3;
	return NULL;
}

bool mailbox_name_wsize(const char *name, uint64_t *out)
{
	const char *v = mailbox_field(name, 'W');
	size_t len = 0;
	if (v == NULL)
		return false;
	while (v[len] >= '0' && v[len] <= '9')
		len++;
	return parse_u64(v, len, 0, UINT64_MAX / 2, out);
}

void mailbox_uidl_of(const char *name, char out[MAILBOX_UIDL_MAX + 1])
{
	char base[512];
	size_t o = 0;
	bool ok = true;

	/* The unique name: up to ':', without the ,S= and ,W= fields. */
	for (const char *p = name; *p && *p != ':' && o < sizeof(base) - 1; p++) {
		if (*p == ',' && (p[1] == 'S' || p[1] == 'W') && p[2] == '=') {
			p += 3;
			while (*p >= '0' && *p <= '9')
				p++;
			p--;
			continue;
		}
		base[o++] = *p;
	}
	base[o] = '\0';
	for (size_t i = 0; i < o; i++)
		if ((unsigned char)base[i] < 0x21 || (unsigned char)base[i] > 0x7e)
			ok = false;
	if (ok && o >= 1 && o <= MAILBOX_UIDL_MAX) {
		memcpy(out, base, o + 1);
		return;
	}
	/* Too long or odd characters: a digest is stable and fits. */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(base, o, md, &mdlen, EVP_md5(), NULL);
	for (unsigned i = 0; i < mdlen && 2 * i + 2 <= MAILBOX_UIDL_MAX; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Read a message once to size it in CRLF form. */
static bool mailbox_measure(int dirfd, const char *name, uint64_t *octets, uint64_t *size)
{
	char buf[65536];
	struct pop3_msg_size z;
	ssize_t r;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	pop3_msg_size_init(&z);
	*octets = 0;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		pop3_msg_size_feed(&z, buf, (size_t)r);
		*octets += (uint64_t)r;
	}
	close(fd);
	if (r < 0)
		return false;
	*size = pop3_msg_size_finish(&z);
	return true;
}

/* A name without ,W=: measure it and add ",S=..,W=.." before the info
 * part so later logins read the size from the name.  If the rename fails
 * (read-only Maildir), the measured size still serves this session. */
static char *mailbox_size_and_tag(int dirfd, const char *name, uint64_t *size)
{
	uint64_t octets;
	const char *info = strchr(name, ':');
	size_t base_len = info ? (size_t)(info - name) : strlen(name);
	char *tagged;

	if (!mailbox_measure(dirfd, name, &octets, size))
		return NULL;
	if (mailbox_field(name, 'S'))
		return xstrdup(name);
	tagged = xasprintf("%.*s,S=%" PRIu64 ",W=%" PRIu64 "%s", (int)base_len, name, octets, *size,
			   info ? info : "");
	if (renameat(dirfd, name, dirfd, tagged) == 0)
		return tagged;
	free(tagged);
	return xstrdup(name);
}

static void mailbox_add(struct mailbox *m, size_t *cap, const char *sub, const char *name, uint64_t size)
{
	struct mailbox_msg *msg;
	if (m->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		m->v = xrealloc(m->v, *cap * sizeof(*m->v));
	}
	msg = &m->v[m->n++];
	memset(msg, 0, sizeof(*msg));
	msg->name = xasprintf("%s/%s", sub, name);
	msg->size = size;
	mailbox_uidl_of(name, msg->uidl);
}

/* Names first, then sizes: tagging renames files, and a rename during
 * readdir() may show the same message twice. */
static bool mailbox_scan(struct mailbox *m, const char *sub, size_t *cap)
{
	char *dir = xasprintf("%s/%s", m->path, sub);
	DIR *d = opendir(dir);
	struct dirent *de;
	char **untagged = NULL;
	size_t nu = 0;

	free(dir);
	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL) {
		uint64_t size;
		if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (mailbox_name_wsize(de->d_name, &size)) {
			mailbox_add(m, cap, sub, de->d_name, size);
			continue;
		}
		untagged = xrealloc(untagged, (nu + 1) * sizeof(*untagged));
		untagged[nu++] = xstrdup(de->d_name);
	}
	for (size_t i = 0; i < nu; i++) {
		uint64_t size;
		char *name = mailbox_size_and_tag(dirfd(d), untagged[i], &size);
		if (name)   /* else gone meanwhile, or unreadable: not offered */
			mailbox_add(m, cap, sub, name, size);
		free(name);
		free(untagged[i]);
	}
	free(untagged);
	closedir(d);
	return true;
}

/* Arrival order: unique names start with the delivery time. */
static int mailbox_cmp(const void *a, const void *b)
{
	const struct mailbox_msg *x = a, *y = b;
	return strverscmp(x->name + 4, y->name + 4);
}

static int mailbox_open_dir(const char *path, const char *sub)
{
	char *dir = xasprintf("%s/%s", path, sub);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	return fd;
}

enum mailbox_status mailbox_open(const char *path, struct mailbox **out)
{
	struct mailbox *m;
	char *lock;
	size_t cap = 0;
	int fd;

	*out = NULL;
	if (!maildir_create(path))
		return MAILBOX_ERROR;
	lock = xasprintf("%s/" MAILBOX_LOCK_NAME, path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(lock);
	if (fd < 0)
		return MAILBOX_ERROR;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? MAILBOX_IN_USE : MAILBOX_ERROR;
	}
	m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(path);
	m->lock_fd = fd;
	m->dirs[0] = mailbox_open_dir(path, "new");
	m->dirs[1] = mailbox_open_dir(path, "cur");
	if (m->dirs[0] < 0 || m->dirs[1] < 0 || !mailbox_scan(m, "new", &cap) || !mailbox_scan(m, "cur", &cap)) {
		int e = errno;
		mailbox_close(m);
		errno = e;
		return MAILBOX_ERROR;
	}
	if (m->n > 1)   /* qsort(NULL, 0) is undefined */
		qsort(m->v, m->n, sizeof(*m->v), mailbox_cmp);
	*out = m;
	return MAILBOX_OK;
}

/* Another reader may have moved the message between new/ and cur/ (or
 * changed its flags): find it again by its UIDL. */
static bool mailbox_relocate(struct mailbox *m, struct mailbox_msg *msg)
{
	static const char *const subs[] = { "new", "cur" };
	char uidl[MAILBOX_UIDL_MAX + 1];
	bool found = false;

	for (size_t i = 0; i < ARRAY_LEN(subs) && !found; i++) {
		char *dir = xasprintf("%s/%s", m->path, subs[i]);
		DIR *d = opendir(dir);
		struct dirent *de;
		free(dir);
		while (d && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			mailbox_uidl_of(de->d_name, uidl);
			if (strcmp(uidl, msg->uidl) == 0) {
				free(msg->name);
				msg->name = xasprintf("%s/%s", subs[i], de->d_name);
				found = true;
				break;
			}
		}
		if (d)
			closedir(d);
	}
	return found;
}

/* dirs[0] is new/, dirs[1] is cur/. */
static int mailbox_dirfd(const int dirs[2], const struct mailbox_msg *msg)
{
	return strncmp(msg->name, "new/", 4) == 0 ? dirs[0] : dirs[1];
}

static int mailbox_open_path(struct mailbox *m, const struct mailbox_msg *msg)
{
	return openat(mailbox_dirfd(m->dirs, msg), msg->name + 4, O_RDONLY | O_CLOEXEC);
}

int mailbox_open_msg(struct mailbox *m, size_t i)
{
	struct mailbox_msg *msg = &m->v[i];
	int fd = mailbox_open_path(m, msg);
	if (fd < 0 && errno == ENOENT && mailbox_relocate(m, msg))
		fd = mailbox_open_path(m, msg);
	return fd;
}

static bool mailbox_unlink(struct mailbox *m, const int dirs[2], struct mailbox_msg *msg)
{
	if (unlinkat(mailbox_dirfd(dirs, msg), msg->name + 4, 0) == 0)
		return true;
	if (errno != ENOENT)
		return false;
	if (!mailbox_relocate(m, msg))
		return true;   /* someone else removed it: done */
	return unlinkat(mailbox_dirfd(dirs, msg), msg->name + 4, 0) == 0 || errno == ENOENT;
}

/* new/NAME -> cur/NAME:2,S (the Maildir way of saying "seen").  Best
 * effort: the message stays readable either way. */
static void mailbox_mark_seen(const int dirs[2], const struct mailbox_msg *msg)
{
	const char *name = msg->name + 4;
	char *to = strchr(name, ':') ? xstrdup(name) : xasprintf("%s:2,S", name);
	renameat(dirs[0], name, dirs[1], to);
	free(to);
}

size_t mailbox_commit(struct mailbox *m)
{
	size_t failed = 0;
	bool changed[2] = { false, false };
	const int *dirs = m->dirs;

	for (size_t i = 0; i < m->n; i++) {
		struct mailbox_msg *msg = &m->v[i];
		if (msg->deleted) {
			if (!mailbox_unlink(m, dirs, msg))
				failed++;
			changed[mailbox_dirfd(dirs, msg) == dirs[1]] = true;
		} else if (msg->retrieved && strncmp(msg->name, "new/", 4) == 0) {
			mailbox_mark_seen(dirs, msg);
			changed[0] = changed[1] = true;
		}
	}
	/* The client hears +OK only after this: removals survive a crash,
	 * so a deleted message never comes back. */
	for (int i = 0; i < 2; i++)
		if (changed[i])
			fsync(dirs[i]);
	return failed;
}

void mailbox_close(struct mailbox *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].name);
	free(m->v);
	for (int i = 0; i < 2; i++)
		if (m->dirs[i] >= 0)
			close(m->dirs[i]);
	if (m->lock_fd >= 0)
		close(m->lock_fd);   /* drops the flock */
	free(m->path);
	free(m);
}
