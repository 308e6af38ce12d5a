/*
 * imap_keywords.c - IMAP keywords shared with Dovecot on the same Maildir.
 *
 * Dovecot keeps a folder's keywords as lower-case letters after the
 * standard flags in the file name (":2,FSab"), the letter 'a' + N naming
 * the keyword on line "N name" of the folder's dovecot-keywords file
 * (N 0..25; a slot once given is never reused).  tern does the same for
 * the first 26 keywords of a folder, so a keyword set in tern shows in
 * Dovecot (and mutt's view of the name) and one set by Dovecot shows in
 * tern.  A folder may have up to IMAP_FOLDER_KW_MAX keywords in tern;
 * those that find no free letter are kept in tern's state file only, as
 * all keywords were before.
 *
 * tern's keyword numbers (the bits of imap_msg.kw) are its own and never
 * change; kw_slot[] maps them to Dovecot's letters.  The state file keeps
 * every bit, so a keyword that loses its letter (another program gave
 * the slot to another name: the file wins) keeps its messages.  For a
 * keyword with a letter the file names are the truth.  A keyword that
 * gains a letter (a state file from before letters, or a slot found
 * free) takes its bits from the state once and the scan writes them into
 * the names (kw_from_state).
 *
 * Writing dovecot-keywords follows Dovecot's own rules: under the
 * folder's dovecot-uidlist.lock (Dovecot changes keywords only while it
 * holds it), re-read and merged first, replaced atomically, its mtime
 * made to grow (Dovecot re-reads it only when the mtime changed), and
 * written before any name carries a new letter (Dovecot names a letter
 * it cannot resolve "unknown-N").
 */
#include "store/imap_folder.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/maildir_keywords.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAP_DK_LOCK_WAIT_MS 5000    /* Dovecot holds the uidlist lock for a sync */
#define IMAP_DK_LOCK_STALE_S 120     /* Dovecot's own stale timeout for it */

static int imap_kw_find(const struct imap_folder *f, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < f->nkw; i++)
		if (strlen(f->kw[i]) == len && ascii_ieq(f->kw[i], name, len))
			return (int)i;
	return -1;
}

/* Keyword i gets slot s (-1: none); whoever had s loses it. */
static void imap_kw_set_slot(struct imap_folder *f, int i, int s)
{
	if (s >= 0) {
		for (size_t j = 0; j < f->nkw; j++)
			if (f->kw_slot[j] == s && (int)j != i)
				f->kw_slot[j] = -1;   /* its bits stay in the state file */
	}
	if (s >= 0 && f->kw_slot[i] < 0)
		f->kw_from_state |= 1u << i;   /* the names learn its bits */
	f->kw_slot[i] = (int8_t)s;
}

uint32_t imap_kw_named(const struct imap_folder *f)
{
	uint32_t m = 0;
	for (size_t i = 0; i < f->nkw; i++)
		if (f->kw_slot[i] >= 0)
			m |= 1u << i;
	return m;
}

uint32_t imap_kw_of_name(const struct imap_folder *f, const char *name)
{
	uint32_t letters = maildir_kw_letters(name), kw = 0;

	if (letters == 0)
		return 0;
	for (size_t i = 0; i < f->nkw; i++)
		if (f->kw_slot[i] >= 0 && (letters & (1u << f->kw_slot[i])))
			kw |= 1u << i;
	return kw;
}

/* Letters for kw (sorted, as Dovecot writes them), and the letters of
 * old's info that name no keyword of tern's (Dovecot's, kept). */
size_t imap_kw_letters(const struct imap_folder *f, uint32_t kw, const char *old, char out[IMAP_DK_SLOTS + 1])
{
	uint32_t on = old ? maildir_kw_letters(old) : 0;
	size_t o = 0;

	for (size_t i = 0; i < f->nkw; i++) {
		if (f->kw_slot[i] < 0)
			continue;
		on &= ~(1u << f->kw_slot[i]);   /* ours: kw says */
		if (kw & (1u << i))
			on |= 1u << f->kw_slot[i];
	}
	for (int s = 0; s < IMAP_DK_SLOTS; s++)
		if (on & (1u << s))
			out[o++] = (char)('a' + s);
	out[o] = '\0';
	return o;
}

/* The file's lines as names by slot; false when it is missing. */
static bool imap_dk_read(const char *path, char *names[IMAP_DK_SLOTS], struct stat *st)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	FILE *fp = fopen(path, "r");

	memset(names, 0, IMAP_DK_SLOTS * sizeof(*names));
	if (fp == NULL)
		return false;
	if (fstat(fileno(fp), st) != 0)
		memset(st, 0, sizeof(*st));
	/* whole lines (a fixed buffer would cut a long one into a wrong
	 * name and a rest); names over MAILDIR_KW_NAME_MAX are skipped */
	while ((got = getline(&line, &cap, fp)) > 0) {
		size_t len = (size_t)got;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		const char *name;
		size_t nlen;
		unsigned n;

		/* Dovecot skips lines it cannot read; so does tern */
		if (!maildir_kw_line_parse(line, len, &n, &name, &nlen))
			continue;
		free(names[n]);
		names[n] = xstrndup(name, nlen);
	}
	free(line);
	fclose(fp);
	return true;
}

static void imap_dk_free_names(char *names[IMAP_DK_SLOTS])
{
	for (int s = 0; s < IMAP_DK_SLOTS; s++) {
		free(names[s]);
		names[s] = NULL;
	}
}

/* What the file says wins: each of its names has its slot (a keyword
 * tern does not know yet is added, when there is room). */
static void imap_dk_merge(struct imap_folder *f, char *names[IMAP_DK_SLOTS])
{
	for (int s = 0; s < IMAP_DK_SLOTS; s++) {
		if (names[s] == NULL)
			continue;
		int i = imap_kw_find(f, names[s]);
		if (i < 0 && f->nkw < IMAP_FOLDER_KW_MAX) {
			i = (int)f->nkw++;
			f->kw[i] = xstrdup(names[s]);
			f->kw_slot[i] = -1;
			f->dirty = true;
		}
		if (i >= 0 && f->kw_slot[i] != s) {
			imap_kw_set_slot(f, i, s);
			f->dirty = true;
		}
	}
	imap_dk_free_names(f->dk);
	memcpy(f->dk, names, sizeof(f->dk));
	memset(names, 0, IMAP_DK_SLOTS * sizeof(*names));
}

void imap_dk_assign(struct imap_folder *f)
{
	for (size_t i = 0; i < f->nkw; i++) {
		int s = f->kw_slot[i];
		/* a name the file could not carry (an older state's) keeps no
		 * letter: it stays in tern's state, and the file stays writable */
		if (s < 0 && strlen(f->kw[i]) > MAILDIR_KW_NAME_MAX)
			continue;
		if (s >= 0) {
			if (f->dk[s] == NULL) {
				f->dk[s] = xstrdup(f->kw[i]);
				f->dk_dirty = true;
			}
			continue;
		}
		for (s = 0; s < IMAP_DK_SLOTS; s++) {
			bool used = f->dk[s] != NULL;
			for (size_t j = 0; j < f->nkw && !used; j++)
				used = f->kw_slot[j] == s;
			if (!used)
				break;
		}
		if (s == IMAP_DK_SLOTS)
			return;   /* all 26 letters given: the rest stay in tern's state */
		imap_kw_set_slot(f, (int)i, s);
		f->dk[s] = xstrdup(f->kw[i]);
		f->dk_dirty = true;
		f->dirty = true;
	}
}

void imap_dk_sync(struct imap_folder *f)
{
	char *path = xasprintf("%s/%s", f->path, IMAP_FOLDER_DK);
	char *names[IMAP_DK_SLOTS];
	struct stat st;

	if (stat(path, &st) == 0) {
		if ((uint64_t)st.st_ino != f->dk_ino || (int64_t)st.st_mtime != f->dk_mtime ||
		    (uint64_t)st.st_size != f->dk_size) {
			if (imap_dk_read(path, names, &st)) {
				f->dk_ino = (uint64_t)st.st_ino;
				f->dk_mtime = (int64_t)st.st_mtime;
				f->dk_size = (uint64_t)st.st_size;
				imap_dk_merge(f, names);
			}
		}
	} else if (errno == ENOENT && f->dk_ino != 0) {
		/* removed: what tern knows goes back into a new one */
		imap_dk_free_names(f->dk);
		f->dk_ino = 0;
		f->dk_mtime = 0;
		f->dk_size = 0;
	}
	free(path);
	imap_dk_assign(f);
}

/* Dovecot's dotlock on the folder: "PID:HOST" in dovecot-uidlist.lock,
 * made with O_EXCL; one older than its stale timeout is broken. */
static char *imap_dk_lock(const struct imap_folder *f)
{
	char *lock = xasprintf("%s/dovecot-uidlist.lock", f->path);
	char host[256], who[300];
	int waited = 0;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (;;) {
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			int n = snprintf(who, sizeof(who), "%d:%s", (int)getpid(), host);
			bool ok = write_all(fd, who, (size_t)n);
			close(fd);
			if (ok)
				return lock;
			unlink(lock);
			break;
		}
		struct stat st;
		if (errno != EEXIST)
			break;
		if (stat(lock, &st) == 0 && now_unix() - (int64_t)st.st_mtime > IMAP_DK_LOCK_STALE_S) {
			unlink(lock);
			continue;
		}
		if (waited >= IMAP_DK_LOCK_WAIT_MS) {
			errno = EWOULDBLOCK;
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		waited += 10;
	}
	int e = errno;
	free(lock);
	errno = e;
	return NULL;
}

/* The new file in tmp/, its owner and mode those of the old one, or of
 * the folder for the first (as Dovecot makes its files: another program
 * reads it), its mtime past the old one's. */
static bool imap_dk_write(struct imap_folder *f, const char *tmp, const struct stat *old, bool had_old)
{
	struct stat dir, st;
	const struct stat *like = had_old ? old : stat(f->path, &dir) == 0 ? &dir : NULL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, like ? (like->st_mode & 0666) : 0600);
	bool ok = fd >= 0;

	for (int s = 0; ok && s < IMAP_DK_SLOTS; s++) {
		if (f->dk[s] == NULL)
			continue;
		char line[1100];
		int n = snprintf(line, sizeof(line), "%d %s\n", s, f->dk[s]);
		ok = n > 0 && (size_t)n < sizeof(line) && write_all(fd, line, (size_t)n);
	}
	if (ok && like && geteuid() == 0 && fchown(fd, like->st_uid, like->st_gid) != 0)
		ok = false;
	if (ok && fstat(fd, &st) == 0 && had_old && st.st_mtime <= old->st_mtime) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_NOW }, { .tv_sec = old->st_mtime + 1 } };
		ok = futimens(fd, ts) == 0;
	}
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	return ok;
}

bool imap_dk_flush(struct imap_folder *f)
{
	char *lock, *path, *tmp;
	char *names[IMAP_DK_SLOTS];
	struct stat st;
	bool had, ok;

	if (!f->dk_dirty)
		return true;
	lock = imap_dk_lock(f);
	if (lock == NULL)
		return false;
	path = xasprintf("%s/%s", f->path, IMAP_FOLDER_DK);
	tmp = xasprintf("%s/tmp/%s.%d", f->path, IMAP_FOLDER_DK, (int)getpid());
	/* Dovecot may have given slots since the last look: its file first */
	memset(&st, 0, sizeof(st));
	had = imap_dk_read(path, names, &st);
	if (had)
		imap_dk_merge(f, names);
	else
		imap_dk_free_names(f->dk);
	f->dk_dirty = false;
	imap_dk_assign(f);
	ok = imap_dk_write(f, tmp, &st, had) && rename(tmp, path) == 0 && dir_sync(f->path);
	int e = errno;
	if (ok && stat(path, &st) == 0) {
		f->dk_ino = (uint64_t)st.st_ino;
		f->dk_mtime = (int64_t)st.st_mtime;
		f->dk_size = (uint64_t)st.st_size;
		f->dk_dirty = false;
	} else {
		unlink(tmp);
		f->dk_dirty = true;
	}
	unlink(lock);
	free(lock);
	free(path);
	free(tmp);
	errno = e;
	return ok;
}

void imap_dk_free(struct imap_folder *f)
{
	imap_dk_free_names(f->dk);
}
