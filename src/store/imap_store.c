/*
 * imap_store.c - the folders of one user's Maildir++ (see imap_folder.h):
 * listing, CREATE, DELETE, RENAME, the SPECIAL-USE folders (RFC 6154)
 * made at first login, subscriptions, and the directory for "deliver
 * into folder X".
 */
#include "store/imap_folder.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/imap_utf7.h"
#include "store/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAP_SUBSCRIPTIONS "subscriptions"
#define IMAP_SUBSCRIPTIONS_V2 "V\t2\n\n"   /* Dovecot's header of the version 2 form */

static const struct {
	const char *name, *use;
} imap_specials[] = {
	{ "Sent", "\\Sent" }, { "Drafts", "\\Drafts" }, { "Trash", "\\Trash" },
	{ "Junk", "\\Junk" }, { "Archive", "\\Archive" },
};

const char *imap_store_special_use(const char *mailbox)
{
	for (size_t i = 0; i < ARRAY_LEN(imap_specials); i++)
		if (strcmp(mailbox, imap_specials[i].name) == 0)
			return imap_specials[i].use;
	return NULL;
}

char *imap_store_folder_dir(const char *maildir, const char *mailbox)
{
	char dir[IMAP_MAILDIR_MAX + 1];
	size_t len;

	if (imap_maildir_from_mailbox(mailbox, strlen(mailbox), dir, sizeof(dir), &len) != IMAP_UTF7_OK)
		return NULL;
	return len == 0 ? xstrdup(maildir) : xasprintf("%s/%s", maildir, dir);
}

/* A Maildir++ folder: new/ cur/ tmp/ and the "maildirfolder" marker that
 * Maildir++ readers (Courier, Dovecot) expect in a subfolder. */
static bool imap_store_make(const char *dir)
{
	char *marker;
	int fd;

	if (!maildir_create(dir))
		return false;
	marker = xasprintf("%s/maildirfolder", dir);
	fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	free(marker);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

char *imap_store_delivery_dir(const char *maildir, const char *mailbox)
{
	char *dir = imap_store_folder_dir(maildir, mailbox);
	if (dir && !imap_store_make(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

bool imap_store_setup(const char *maildir)
{
	char *flag = xasprintf("%s/tern-imap.setup", maildir);
	bool ok = true;
	int fd;

	if (access(flag, F_OK) == 0) {
		free(flag);
		return true;
	}
	if (!maildir_create(maildir)) {
		free(flag);
		return false;
	}
	for (size_t i = 0; ok && i < ARRAY_LEN(imap_specials); i++) {
		char *dir = imap_store_folder_dir(maildir, imap_specials[i].name);
		ok = dir && imap_store_make(dir);
		free(dir);
		if (ok)
			ok = imap_store_subscribe(maildir, imap_specials[i].name, true);
	}
	/* Done once: a user who deletes Junk does not get it back at the
	 * next login. */
	if (ok && (fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	free(flag);
	return ok;
}

static int imap_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void imap_list_add(struct imap_store_list *l, const char *name)
{
	l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
	l->names[l->n++] = xstrdup(name);
}

bool imap_store_list(const char *maildir, struct imap_store_list *out)
{
	DIR *d = opendir(maildir);
	struct dirent *de;

	memset(out, 0, sizeof(*out));
	imap_list_add(out, "INBOX");
	if (d == NULL)
		return errno == ENOENT;
	while ((de = readdir(d)) != NULL) {
		char name[IMAP_MAILBOX_MAX + 1];
		size_t len;
		if (de->d_name[0] != '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if (imap_mailbox_from_maildir(de->d_name, strlen(de->d_name), name, sizeof(name), &len) !=
		    IMAP_UTF7_OK)
			continue;
		if (imap_mailbox_is_inbox(name, len))
			continue;
		imap_list_add(out, name);
	}
	closedir(d);
	qsort(out->names + 1, out->n - 1, sizeof(*out->names), imap_str_cmp);
	return true;
}

void imap_store_list_free(struct imap_store_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

bool imap_store_has_children(const struct imap_store_list *l, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->names[i], name, n) == 0 && l->names[i][n] == '/')
			return true;
	return false;
}

static bool imap_store_valid(const char *mailbox)
{
	char dir[IMAP_MAILDIR_MAX + 1];
	size_t len;
	return imap_maildir_from_mailbox(mailbox, strlen(mailbox), dir, sizeof(dir), &len) == IMAP_UTF7_OK;
}

enum imap_store_err imap_store_create(const char *maildir, const char *mailbox)
{
	char *dir;
	struct stat st;
	enum imap_store_err r = IMAP_STORE_OK;

	if (imap_mailbox_is_inbox(mailbox, strlen(mailbox)))
		return IMAP_STORE_EXISTS;
	if ((dir = imap_store_folder_dir(maildir, mailbox)) == NULL)
		return IMAP_STORE_BAD_NAME;
	if (stat(dir, &st) == 0)
		r = IMAP_STORE_EXISTS;
	else if (!imap_store_make(dir) || !dir_sync(maildir))
		r = IMAP_STORE_ERROR;
	free(dir);
	return r;
}

static bool imap_rm_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool ok = true;

	if (d == NULL)
		return errno == ENOENT;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		if (unlink(p) != 0 && errno != ENOENT)
			ok = false;
		free(p);
	}
	closedir(d);
	return ok;
}

enum imap_store_err imap_store_delete(const char *maildir, const char *mailbox)
{
	static const char *const subs[] = { "new", "cur", "tmp" };
	char *dir;
	struct stat st;
	bool ok = true;

	if (imap_mailbox_is_inbox(mailbox, strlen(mailbox)))
		return IMAP_STORE_BAD_NAME;
	if ((dir = imap_store_folder_dir(maildir, mailbox)) == NULL)
		return IMAP_STORE_BAD_NAME;
	if (stat(dir, &st) != 0) {
		free(dir);
		return IMAP_STORE_NONEXISTENT;
	}
	/* Children stay (RFC 9051 6.3.4): a Maildir++ child is a sibling
	 * directory, so removing the parent leaves them as they are. */
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char *p = xasprintf("%s/%s", dir, subs[i]);
		ok = imap_rm_files(p) && (rmdir(p) == 0 || errno == ENOENT) && ok;
		free(p);
	}
	ok = ok && imap_rm_files(dir) && rmdir(dir) == 0 && dir_sync(maildir);
	free(dir);
	imap_store_subscribe(maildir, mailbox, false);
	return ok ? IMAP_STORE_OK : IMAP_STORE_ERROR;
}

/* INBOX renamed: its messages move into a new folder, INBOX stays. */
static enum imap_store_err imap_store_rename_inbox(const char *maildir, const char *to)
{
	static const char *const subs[] = { "cur", "new" };
	enum imap_store_err r = imap_store_create(maildir, to);
	char *dst;

	if (r != IMAP_STORE_OK)
		return r;
	dst = imap_store_folder_dir(maildir, to);
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char *from_dir = xasprintf("%s/%s", maildir, subs[i]);
		DIR *d = opendir(from_dir);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char *a = xasprintf("%s/%s", from_dir, de->d_name);
			char *b = xasprintf("%s/%s/%s", dst, subs[i], de->d_name);
			if (rename(a, b) != 0)
				r = IMAP_STORE_ERROR;
			free(a);
			free(b);
		}
		if (d)
			closedir(d);
		dir_sync(from_dir);
		free(from_dir);
		char *to_dir = xasprintf("%s/%s", dst, subs[i]);
		dir_sync(to_dir);
		free(to_dir);
	}
	/* INBOX's state goes stale: rebuilt (new UIDVALIDITY) when next opened. */
	char *state = xasprintf("%s/%s", maildir, IMAP_FOLDER_STATE);
	unlink(state);
	free(state);
	free(dst);
	return r;
}

enum imap_store_err imap_store_rename(const char *maildir, const char *from, const char *to)
{
	struct imap_store_list l;
	enum imap_store_err r = IMAP_STORE_OK;
	size_t flen = strlen(from);
	struct stat st;
	char *src, *dst;

	if (!imap_store_valid(from) || !imap_store_valid(to) || imap_mailbox_is_inbox(to, strlen(to)))
		return imap_mailbox_is_inbox(to, strlen(to)) ? IMAP_STORE_EXISTS : IMAP_STORE_BAD_NAME;
	if (imap_mailbox_is_inbox(from, flen))
		return imap_store_rename_inbox(maildir, to);
	src = imap_store_folder_dir(maildir, from);
	dst = imap_store_folder_dir(maildir, to);
	if (stat(src, &st) != 0)
		r = IMAP_STORE_NONEXISTENT;
	else if (stat(dst, &st) == 0)
		r = IMAP_STORE_EXISTS;
	else if (strncmp(to, from, flen) == 0 && to[flen] == '/')
		r = IMAP_STORE_BAD_NAME;   /* into itself */
	free(src);
	free(dst);
	if (r != IMAP_STORE_OK || !imap_store_list(maildir, &l))
		return r != IMAP_STORE_OK ? r : IMAP_STORE_ERROR;
	/* The folder and its children ("A" and "A/..."): each directory
	 * renamed on its own, as Maildir++ keeps them side by side. */
	for (size_t i = 1; i < l.n && r == IMAP_STORE_OK; i++) {
		const char *n = l.names[i];
		if (strcmp(n, from) != 0 && !(strncmp(n, from, flen) == 0 && n[flen] == '/'))
			continue;
		char *newname = xasprintf("%s%s", to, n + flen);
		char *a = imap_store_folder_dir(maildir, n);
		char *b = imap_store_folder_dir(maildir, newname);
		if (a == NULL || b == NULL)
			r = IMAP_STORE_BAD_NAME;
		else if (rename(a, b) != 0)
			r = IMAP_STORE_ERROR;
		else {
			imap_store_subscribe(maildir, n, false);
			imap_store_subscribe(maildir, newname, true);
		}
		free(a);
		free(b);
		free(newname);
	}
	imap_store_list_free(&l);
	dir_sync(maildir);
	return r;
}

bool imap_store_subscriptions(const char *maildir, struct imap_store_list *out)
{
	char *p = xasprintf("%s/%s", maildir, IMAP_SUBSCRIPTIONS);
	FILE *fp = fopen(p, "r");
	char line[IMAP_MAILBOX_MAX + 2];
	bool first = true, v2 = false;

	free(p);
	memset(out, 0, sizeof(*out));
	if (fp == NULL)
		return errno == ENOENT;
	while (fgets(line, sizeof(line), fp)) {
		size_t len = strcspn(line, "\r\n");
		line[len] = '\0';
		if (first && strcmp(line, "V\t2") == 0) {
			v2 = true;   /* Dovecot's version 2: levels split by tabs */
			first = false;
			continue;
		}
		first = false;
		if (v2)
			for (char *c = line; *c; c++)
				if (*c == '\t')
					*c = '/';
		if (len > 0)
			imap_list_add(out, line);
	}
	fclose(fp);
	return true;
}

/* One name of the subscriptions file in Dovecot's version 2 form: the
 * hierarchy levels split by tabs, so that Dovecot, whatever its own
 * separator ('.' on Maildir++ storage), reads the same folder.  In its
 * version 1 (no header) the names are storage names, and a '/' in them
 * makes Dovecot drop the line as invalid.  Wire names are modified
 * UTF-7, printable ASCII: nothing needs Dovecot's tab-escaping. */
static void imap_subscription_write(FILE *fp, const char *name)
{
	for (const char *c = name; *c; c++)
		fputc(*c == '/' ? '\t' : *c, fp);
	fputc('\n', fp);
}

bool imap_store_subscribe(const char *maildir, const char *mailbox, bool on)
{
	struct imap_store_list l;
	char *tmp, *dst;
	FILE *fp;
	bool ok, found = false;
	int fd;

	if (!imap_store_subscriptions(maildir, &l))
		return false;
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.names[i], mailbox) == 0)
			found = true;
	if (found == on) {
		imap_store_list_free(&l);
		return true;
	}
	tmp = xasprintf("%s/tmp/%s.%d", maildir, IMAP_SUBSCRIPTIONS, (int)getpid());
	dst = xasprintf("%s/%s", maildir, IMAP_SUBSCRIPTIONS);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fp = fd >= 0 ? fdopen(fd, "w") : NULL;
	ok = fp != NULL;
	if (ok)
		fputs(IMAP_SUBSCRIPTIONS_V2, fp);
	for (size_t i = 0; ok && i < l.n; i++)
		if (on || strcmp(l.names[i], mailbox) != 0)
			imap_subscription_write(fp, l.names[i]);
	if (ok && on)
		imap_subscription_write(fp, mailbox);
	if (fp) {
		ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0 && ok;
		ok = fclose(fp) == 0 && ok;
	} else if (fd >= 0) {
		close(fd);
	}
	ok = ok && rename(tmp, dst) == 0 && dir_sync(maildir);
	if (!ok)
		unlink(tmp);
	free(tmp);
	free(dst);
	imap_store_list_free(&l);
	return ok;
}
