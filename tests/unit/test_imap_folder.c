/*
 * test_imap_folder.c - the IMAP folder store: UIDs assigned in arrival
 * order and kept across reopen, new/ taken into cur/, flags in names
 * (sorted DFRST) and flag changes by other programs noticed, removed
 * files dropped, a lost state file rebuilt with a new UIDVALIDITY, a torn
 * one refused; folders: setup, list, create, delete, rename with
 * children, INBOX rename, subscriptions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/util.h"
#include "proto/imap_write.h"
#include "store/imap_folder.h"
#include "store/maildir.h"

struct fixture {
	char dir[64];
	char md[128];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-imapf-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->md, sizeof(f->md), "%s/Maildir", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void put(const char *md, const char *sub, const char *name, const char *text)
{
	char p[512];
	FILE *fp;
	snprintf(p, sizeof(p), "%s/%s/%s", md, sub, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static bool exists(const char *md, const char *sub, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s/%s", md, sub, name);
	return access(p, F_OK) == 0;
}

static void test_uids_and_flags(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f = imap_folder_open(fx->md);
	uint32_t validity;
	bool changed;

	assert_non_null(f);
	assert_int_equal(f->n, 0);
	assert_int_equal(f->uidnext, 1);
	validity = f->uidvalidity;
	put(fx->md, "new", "100.M1P1Q1.h,S=5,W=7", "a\nb\n\n");
	put(fx->md, "new", "200.M1P1Q2.h", "x\r\ny\n");
	put(fx->md, "cur", "50.M1P1Q3.h:2,S", "old\n");
	/* microseconds are not zero-padded: M99999 came before M100000 */
	put(fx->md, "new", "300.M100000P1Q1.h", "b\n");
	put(fx->md, "new", "300.M99999P1Q1.h", "a\n");
	assert_true(imap_folder_scan(f, &changed));
	assert_true(changed);
	assert_int_equal(f->n, 5);
	assert_string_equal(f->v[3].name, "300.M99999P1Q1.h:2,");
	assert_string_equal(f->v[4].name, "300.M100000P1Q1.h:2,");
	imap_folder_hold_cur(f);   /* unlinks relative to cur/ (MOVE) */
	assert_true(imap_folder_expunge(f, 4));
	assert_true(imap_folder_expunge(f, 3));
	imap_folder_release_cur(f);
	assert_false(exists(fx->md, "cur", "300.M99999P1Q1.h:2,"));
	/* arrival order: 50, 100, 200 */
	assert_int_equal(f->v[0].uid, 1);
	assert_string_equal(f->v[0].name, "50.M1P1Q3.h:2,S");
	assert_int_equal(f->v[0].flags, IMAP_FLAG_SEEN);
	assert_string_equal(f->v[1].name, "100.M1P1Q1.h,S=5,W=7:2,");
	assert_int_equal(f->v[1].size, 7);          /* from W=, without opening it */
	/* the scan reads names only: the file is looked at when asked */
	assert_false(imap_msg_known(&f->v[1]));
	assert_false(imap_msg_known(&f->v[2]));
	assert_int_equal(f->v[2].size, 0);
	assert_true(imap_folder_stat(f, 2));
	assert_true(imap_msg_known(&f->v[2]));
	assert_int_equal(f->v[2].size, 6);          /* read: x CRLF y LF -> 6 */
	assert_true(f->v[2].date > 0 && f->v[2].fsize == 5);
	assert_false(exists(fx->md, "new", "100.M1P1Q1.h,S=5,W=7"));
	assert_true(exists(fx->md, "cur", "100.M1P1Q1.h,S=5,W=7:2,"));

	/* flags into names, sorted */
	assert_true(imap_folder_set_flags(f, 1, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED | IMAP_FLAG_DELETED, 0));
	assert_true(exists(fx->md, "cur", "100.M1P1Q1.h,S=5,W=7:2,FST"));
	uint64_t ms = f->v[1].modseq;
	assert_true(ms > 0);
	/* the same relative to cur/ held open (STORE 1:*) */
	imap_folder_hold_cur(f);
	assert_true(f->curfd >= 0);
	assert_true(imap_folder_set_flags(f, 2, IMAP_FLAG_ANSWERED, 0));
	assert_true(exists(fx->md, "cur", "200.M1P1Q2.h:2,R"));
	assert_true(imap_folder_set_flags(f, 2, 0, 0));
	assert_true(exists(fx->md, "cur", "200.M1P1Q2.h:2,"));
	imap_folder_release_cur(f);
	assert_int_equal(f->curfd, -1);
	assert_true(imap_folder_save(f));
	imap_folder_free(f);

	/* reopen: same UIDs, UIDVALIDITY, flags; another program renames */
	assert_int_equal(rename("/dev/null/x", "/dev/null/y"), -1);
	char a[256], b[256];
	snprintf(a, sizeof(a), "%s/cur/50.M1P1Q3.h:2,S", fx->md);
	snprintf(b, sizeof(b), "%s/cur/50.M1P1Q3.h:2,RS", fx->md);
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->uidvalidity, validity);
	assert_int_equal(f->n, 3);
	assert_int_equal(f->v[2].uid, 3);
	assert_int_equal(f->v[1].flags, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED | IMAP_FLAG_DELETED);
	assert_int_equal(f->v[1].modseq, ms);
	assert_int_equal(rename(a, b), 0);
	assert_true(imap_folder_scan(f, &changed));
	assert_true(changed);
	assert_int_equal(f->v[0].flags, IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED);
	assert_true(f->v[0].modseq > ms);

	/* a removed file drops out; a new one gets UID 6, never 3 again */
	assert_true(imap_folder_expunge(f, 2));
	put(fx->md, "new", "300.M1P1Q4.h", "z\n");
	assert_true(imap_folder_scan(f, &changed));
	assert_int_equal(f->n, 3);
	assert_int_equal(f->v[2].uid, 6);
	snprintf(a, sizeof(a), "%s/cur/%s", fx->md, f->v[0].name);
	assert_int_equal(unlink(a), 0);
	assert_true(imap_folder_scan(f, &changed));
	assert_true(changed);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->v[0].uid, 2);
	assert_int_equal(imap_folder_find(f, 6), 1);
	assert_int_equal(imap_folder_find(f, 3), -1);

	/* keywords kept per folder */
	int k = imap_folder_keyword(f, "$Forwarded", 10, true);
	assert_int_equal(k, 0);
	assert_true(imap_folder_set_flags(f, 0, f->v[0].flags, 1u << k));
	assert_true(imap_folder_save(f));
	imap_folder_free(f);
	f = imap_folder_open(fx->md);
	assert_int_equal(f->nkw, 1);
	assert_string_equal(f->kw[0], "$Forwarded");
	assert_int_equal(f->v[0].kw, 1);
	assert_int_equal(f->uidnext, 7);
	imap_folder_free(f);

	/* a torn state file is refused: rebuilt with a new UIDVALIDITY */
	snprintf(a, sizeof(a), "%s/%s", fx->md, IMAP_FOLDER_STATE);
	assert_int_equal(truncate(a, 40), 0);
	sleep(1);
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_not_equal(f->uidvalidity, validity);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->v[0].uid, 1);
	imap_folder_free(f);
}

/* f's first message into g, not yet committed */
static bool copy_first(struct imap_folder *f, struct imap_folder *g, uint32_t *uid)
{
	char *from = imap_folder_msg_path(f, 0);
	bool ok = imap_folder_copy_file(g, from, f->v[0].flags, NULL, 0, f->v[0].date, f->v[0].size, uid);
	free(from);
	return ok;
}

static void test_add_and_copy(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f = imap_folder_open(fx->md), *g;
	uint32_t uid;
	char sent[256];

	assert_non_null(f);
	put(fx->md, "tmp", "77.M1P1Q1.h,W=4", "ab\n");
	assert_true(imap_folder_add(f, "77.M1P1Q1.h,W=4", IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT, 0, 1000000, 4, &uid));
	assert_int_equal(uid, 1);
	assert_true(exists(fx->md, "cur", "77.M1P1Q1.h,W=4:2,DS"));
	assert_int_equal(f->v[0].date, 1000000);
	assert_true(imap_store_setup(fx->md));
	snprintf(sent, sizeof(sent), "%s/.Sent", fx->md);
	g = imap_folder_open(sent);
	assert_non_null(g);
	char *from = imap_folder_msg_path(f, 0);
	assert_true(imap_folder_copy_file(g, from, f->v[0].flags, NULL, 0, f->v[0].date, f->v[0].size, &uid));
	free(from);
	assert_true(imap_folder_commit(g));
	assert_int_equal(uid, 1);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->v[0].flags, IMAP_FLAG_SEEN | IMAP_FLAG_DRAFT);
	assert_int_equal(g->v[0].size, 4);
	assert_int_equal(g->v[0].date, 1000000);
	imap_folder_free(g);

	/* a batch: the state file is written at the commit, once */
	char state_path[300];
	struct stat st0, st1;
	snprintf(state_path, sizeof(state_path), "%s/%s", sent, IMAP_FOLDER_STATE);
	g = imap_folder_open(sent);
	assert_non_null(g);
	assert_int_equal(stat(state_path, &st0), 0);
	imap_folder_batch_begin(g);
	assert_true(copy_first(f, g, &uid));
	assert_int_equal(uid, 2);
	assert_true(copy_first(f, g, &uid));
	assert_int_equal(uid, 3);
	assert_int_equal(stat(state_path, &st1), 0);
	assert_int_equal(st0.st_ino, st1.st_ino);   /* not replaced yet */
	assert_true(imap_folder_batch_commit(g));
	assert_int_equal(stat(state_path, &st1), 0);
	assert_int_not_equal(st0.st_ino, st1.st_ino);
	imap_folder_free(g);
	g = imap_folder_open(sent);   /* what a restart sees */
	assert_non_null(g);
	assert_int_equal(g->n, 3);
	assert_int_equal(g->v[2].uid, 3);
	assert_int_equal(g->uidnext, 4);
	imap_folder_free(g);
	imap_folder_free(f);
}

/* Two files with one unique part (another program's copy half made):
 * one message, the name first in arrival order, whatever order the
 * directory lists them in. */
static void test_same_base_twice(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	bool changed;

	assert_true(maildir_create(fx->md));
	put(fx->md, "cur", "5.M1P1.h:2,S", "a\n");
	put(fx->md, "cur", "6.M1P1.h:2,", "b\n");
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->n, 2);
	put(fx->md, "cur", "5.M1P1.h:2,", "a\n");
	put(fx->md, "cur", "5.M1P1.h,W=3:2,FS", "a\n");
	for (int k = 0; k < 2; k++) {
		assert_true(imap_folder_scan(f, &changed));
		assert_int_equal(f->n, 2);
		/* ',' sorts before ':' */
		assert_string_equal(f->v[0].name, "5.M1P1.h,W=3:2,FS");
		assert_int_equal(f->v[0].flags, IMAP_FLAG_FLAGGED | IMAP_FLAG_SEEN);
		assert_string_equal(f->v[1].name, "6.M1P1.h:2,");
	}
	imap_folder_free(f);
}

/* A message the scan has not looked at (its size and date unknown) is
 * copied: the copy's name gets no ",W=0", its size is measured, its date
 * is the source's mtime. */
static void test_copy_unknown(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f, *g;
	char sent[256], p[512];
	uint32_t uid;

	assert_true(imap_store_setup(fx->md));
	put(fx->md, "cur", "10.M1P1Q1.h:2,", "ab\ncd\n");
	snprintf(p, sizeof(p), "%s/cur/10.M1P1Q1.h:2,", fx->md);
	struct timespec ts[2] = { { .tv_sec = 1000000 }, { .tv_sec = 1000000 } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->n, 1);
	assert_false(imap_msg_known(&f->v[0]));
	snprintf(sent, sizeof(sent), "%s/.Sent", fx->md);
	g = imap_folder_open(sent);
	assert_non_null(g);
	assert_true(copy_first(f, g, &uid));
	assert_true(imap_folder_commit(g));
	assert_int_equal(g->n, 1);
	assert_null(strstr(g->v[0].name, ",W=0"));
	assert_int_equal(g->v[0].size, 8);
	assert_int_equal(g->v[0].date, 1000000);
	imap_folder_free(g);
	imap_folder_free(f);
}

static void test_uidvalidity_never_repeats(void **state)
{
	struct fixture *fx = *state;
	char st[300];
	uint32_t seen[5];

	snprintf(st, sizeof(st), "%s/%s", fx->md, IMAP_FOLDER_STATE);
	for (size_t i = 0; i < 5; i++) {
		/* the state file lost again and again within one second */
		struct imap_folder *f = imap_folder_open(fx->md);
		assert_non_null(f);
		assert_true(imap_folder_save(f));
		seen[i] = f->uidvalidity;
		imap_folder_free(f);
		assert_int_equal(unlink(st), 0);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(seen[i], seen[j]);
	}
}

static void test_folders(void **state)
{
	struct fixture *fx = *state;
	struct imap_store_list l;

	assert_true(imap_store_setup(fx->md));
	assert_true(imap_store_list(fx->md, &l));
	assert_int_equal(l.n, 6);
	assert_string_equal(l.names[0], "INBOX");
	assert_string_equal(l.names[1], "Archive");
	assert_string_equal(l.names[5], "Trash");
	imap_store_list_free(&l);
	assert_true(exists(fx->md, ".Junk", "maildirfolder"));
	assert_string_equal(imap_store_special_use("Junk"), "\\Junk");

	assert_int_equal(imap_store_create(fx->md, "A/B"), IMAP_STORE_OK);
	assert_int_equal(imap_store_create(fx->md, "A"), IMAP_STORE_OK);
	assert_int_equal(imap_store_create(fx->md, "A"), IMAP_STORE_EXISTS);
	assert_int_equal(imap_store_create(fx->md, "inbox"), IMAP_STORE_EXISTS);
	assert_int_equal(imap_store_create(fx->md, "a//b"), IMAP_STORE_BAD_NAME);
	assert_true(exists(fx->md, ".A.B", "cur"));
	assert_true(imap_store_subscribe(fx->md, "A/B", true));
	{
		/* Dovecot's version 2 form: header, levels split by tabs */
		char path[512], buf[256];
		snprintf(path, sizeof(path), "%s/subscriptions", fx->md);
		FILE *fp = fopen(path, "r");
		assert_non_null(fp);
		size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
		buf[n] = '\0';
		fclose(fp);
		assert_memory_equal(buf, "V\t2\n\n", 5);
		assert_non_null(strstr(buf, "\nA\tB\n"));
		assert_null(strchr(buf, '/'));
	}
	assert_int_equal(imap_store_rename(fx->md, "A", "C"), IMAP_STORE_OK);
	assert_true(exists(fx->md, ".C.B", "cur"));
	assert_false(exists(fx->md, ".A.B", "cur"));
	assert_true(imap_store_subscriptions(fx->md, &l));
	bool cb = false, ab = false;
	for (size_t i = 0; i < l.n; i++) {
		cb |= strcmp(l.names[i], "C/B") == 0;
		ab |= strcmp(l.names[i], "A/B") == 0;
	}
	assert_true(cb);
	assert_false(ab);
	imap_store_list_free(&l);
	assert_int_equal(imap_store_rename(fx->md, "Nope", "X"), IMAP_STORE_NONEXISTENT);
	assert_int_equal(imap_store_rename(fx->md, "C", "Sent"), IMAP_STORE_EXISTS);
	assert_int_equal(imap_store_delete(fx->md, "C"), IMAP_STORE_OK);
	assert_false(exists(fx->md, ".C", "cur"));
	assert_true(exists(fx->md, ".C.B", "cur"));   /* children stay */
	assert_int_equal(imap_store_delete(fx->md, "C"), IMAP_STORE_NONEXISTENT);
	assert_int_equal(imap_store_delete(fx->md, "INBOX"), IMAP_STORE_BAD_NAME);

	/* INBOX rename: messages move, INBOX stays */
	put(fx->md, "cur", "1.M1P1Q1.h:2,S", "m\n");
	put(fx->md, "new", "2.M1P1Q1.h", "n\n");
	assert_int_equal(imap_store_rename(fx->md, "INBOX", "Old"), IMAP_STORE_OK);
	assert_true(exists(fx->md, ".Old/cur", "1.M1P1Q1.h:2,S"));
	assert_true(exists(fx->md, ".Old/new", "2.M1P1Q1.h"));
	assert_false(exists(fx->md, "cur", "1.M1P1Q1.h:2,S"));

	char *junk = imap_store_delivery_dir(fx->md, "Junk");
	assert_non_null(junk);
	assert_true(strstr(junk, "/.Junk") != NULL);
	free(junk);
	assert_null(imap_store_delivery_dir(fx->md, "a//b"));
}

/* RFC 7162: the expunged UIDs kept with their modseq, adjacent ones as
 * one range, across a reopen; the modseq only grows. */
static void test_vanished(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	uint64_t before;

	assert_true(imap_store_setup(fx->md));
	for (int i = 0; i < 5; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%d.M%dP1.h", 100 + i, i);
		put(fx->md, "new", name, "Subject: a\n\nx\n");
	}
	f = imap_folder_open(fx->md);
	assert_int_equal(f->n, 5);
	before = f->modseq;
	assert_true(imap_folder_expunge(f, 1));   /* UID 2 */
	assert_true(imap_folder_expunge(f, 1));   /* UID 3: joins 2 */
	assert_true(imap_folder_expunge(f, 2));   /* UID 5: 4 is alive between */
	assert_int_equal(f->nvan, 2);
	assert_int_equal(f->van[0].lo, 2);
	assert_int_equal(f->van[0].hi, 3);
	assert_int_equal(f->van[0].modseq, before + 2);
	assert_int_equal(f->van[1].lo, 5);
	assert_int_equal(f->van[1].modseq, before + 3);
	assert_int_equal(f->modseq, before + 3);
	assert_true(imap_folder_save(f));
	imap_folder_free(f);
	f = imap_folder_open(fx->md);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->nvan, 2);
	assert_int_equal(f->van[1].hi, 5);
	assert_int_equal(f->modseq, before + 3);
	imap_folder_free(f);
}


static char *slurp(const char *md, const char *name)
{
	char p[512], *buf = xcalloc(1, 8192);
	FILE *fp;
	snprintf(p, sizeof(p), "%s/%s", md, name);
	fp = fopen(p, "r");
	if (fp == NULL) {
		free(buf);
		return NULL;
	}
	buf[fread(buf, 1, 8191, fp)] = '\0';
	fclose(fp);
	return buf;
}

/* The expunge log is bounded; a client from before its start is told
 * every UID that is not there (never less than went), less what its
 * sequence match data shows it knows. */
static void test_vanished_bounded(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	struct imap_seq_range *r;
	struct imap_seq_range one = { 1, 10 };
	struct imap_seqset set = { false, 1, &one };
	uint64_t h0, h1;
	size_t n;

	assert_true(maildir_create(fx->md));
	for (int i = 0; i < 2600; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%d.M%dP1.h", 1000 + i, i);
		put(fx->md, "new", name, "x\n");
	}
	f = imap_folder_open(fx->md);
	assert_int_equal(f->n, 2600);
	h0 = f->modseq;
	for (size_t i = 0; i < f->n;) {
		if (f->v[i].uid % 2)
			assert_true(imap_folder_expunge(f, i));
		else
			i++;
	}
	assert_int_equal(f->n, 1300);
	assert_true(f->nvan <= IMAP_FOLDER_VANISHED_MAX + IMAP_FOLDER_VANISHED_MAX / 4);
	assert_true(f->van_floor > h0);
	/* before the log's start: all that is not there */
	n = imap_folder_vanished(f, h0, NULL, 0, &r);
	assert_int_equal(n, 1300);
	assert_int_equal(r[0].lo, 1);
	assert_int_equal(r[0].hi, 1);
	assert_int_equal(r[1299].lo, 2599);
	free(r);
	n = imap_folder_vanished(f, h0, &set, 0, &r);
	assert_int_equal(n, 5);
	assert_int_equal(r[0].lo, 1);
	assert_int_equal(r[4].lo, 9);
	free(r);
	/* the client knows UID 1002's place: nothing up to it */
	n = imap_folder_vanished(f, h0, NULL, 1002, &r);
	assert_int_equal(n, 799);
	assert_int_equal(r[0].lo, 1003);
	free(r);
	/* within the log: exactly what went */
	h1 = f->modseq;
	assert_true(imap_folder_expunge(f, 0));   /* UID 2 */
	assert_true(imap_folder_expunge(f, 0));   /* UID 4 */
	/* (one range: 3 between them went before, and may be told again) */
	n = imap_folder_vanished(f, h1, NULL, 0, &r);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].lo, 2);
	assert_int_equal(r[0].hi, 4);
	free(r);
	n = imap_folder_vanished(f, h1, NULL, 1002, &r);   /* the match data changes nothing here */
	assert_int_equal(n, 1);
	free(r);
	n = imap_folder_vanished(f, f->van_floor, &set, 0, &r);
	assert_true(n >= 1);
	free(r);
	uint64_t floor = f->van_floor;
	assert_true(imap_folder_save(f));
	imap_folder_free(f);
	f = imap_folder_open(fx->md);
	assert_int_equal(f->van_floor, floor);
	n = imap_folder_vanished(f, h1, NULL, 0, &r);
	assert_int_equal(n, 1);
	free(r);
	imap_folder_free(f);
}

/* Keywords shared with Dovecot: letters a-z after the flags, named by
 * dovecot-keywords ("N name", letter 'a' + N); past 26, tern's state. */
static void test_keywords_shared(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	bool changed;
	char a[512], b[512], *text;

	assert_true(maildir_create(fx->md));
	put(fx->md, "new", "100.M1P1Q1.h", "a\n");
	put(fx->md, "new", "101.M1P1Q1.h", "b\n");
	f = imap_folder_open(fx->md);
	assert_int_equal(f->n, 2);
	int k = imap_folder_keyword(f, "$Forwarded", 10, true);
	assert_int_equal(k, 0);
	assert_true(imap_folder_set_flags(f, 0, IMAP_FLAG_SEEN, 1u << k));
	assert_string_equal(f->v[0].name, "100.M1P1Q1.h:2,Sa");
	text = slurp(fx->md, "dovecot-keywords");
	assert_non_null(text);
	assert_string_equal(text, "0 $Forwarded\n");
	free(text);

	/* Dovecot gives slot 1 to $Dove and sets it on message 2 */
	put(fx->md, "", "dovecot-keywords", "0 $Forwarded\n1 $Dove\n");
	snprintf(a, sizeof(a), "%s/cur/%s", fx->md, f->v[1].name);
	snprintf(b, sizeof(b), "%s/cur/101.M1P1Q1.h:2,Fab", fx->md);
	assert_int_equal(rename(a, b), 0);
	uint64_t ms = f->modseq;
	assert_true(imap_folder_scan(f, &changed));
	assert_true(changed);
	assert_int_equal(f->nkw, 2);
	assert_string_equal(f->kw[1], "$Dove");
	assert_int_equal(f->v[1].kw, 3);
	assert_int_equal(f->v[1].flags, IMAP_FLAG_FLAGGED);
	assert_true(f->v[1].modseq > ms);
	/* tern takes $Forwarded off: the letter goes, Dovecot's stays */
	assert_true(imap_folder_set_flags(f, 1, IMAP_FLAG_FLAGGED, 2));
	assert_string_equal(f->v[1].name, "101.M1P1Q1.h:2,Fb");

	/* 26 letters; the 27th keyword and beyond live in tern's state */
	for (int i = 2; i < 30; i++) {
		char name[16];
		snprintf(name, sizeof(name), "kw%d", i);
		assert_int_equal(imap_folder_keyword(f, name, strlen(name), true), i);
	}
	assert_int_equal(f->kw_slot[25], 25);
	assert_int_equal(f->kw_slot[26], -1);
	assert_true(imap_folder_set_flags(f, 0, IMAP_FLAG_SEEN, (1u << 25) | (1u << 26) | 1u));
	assert_string_equal(f->v[0].name, "100.M1P1Q1.h:2,Saz");
	assert_true(imap_folder_save(f));
	imap_folder_free(f);
	f = imap_folder_open(fx->md);
	assert_int_equal(f->nkw, 30);
	assert_int_equal(f->v[0].kw, (1u << 25) | (1u << 26) | 1u);
	assert_int_equal(f->v[1].kw, 2);
	text = slurp(fx->md, "dovecot-keywords");
	assert_non_null(strstr(text, "\n25 kw25\n"));
	assert_null(strstr(text, "kw26"));
	free(text);
	imap_folder_free(f);
}

/* A state file from before letters (version 1) still loads: its
 * keywords get letters and their messages' names carry them. */
static void test_keywords_from_v1_state(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	char p[512];
	FILE *fp;

	assert_true(maildir_create(fx->md));
	put(fx->md, "cur", "100.M1P1Q1.h:2,Sb", "a\n");   /* b: a letter of Dovecot's */
	put(fx->md, "cur", "200.M1P1Q1.h:2,", "c\n");
	put(fx->md, "", "dovecot-keywords", "1 Dovecots\n");
	snprintf(p, sizeof(p), "%s/%s", fx->md, IMAP_FOLDER_STATE);
	fp = fopen(p, "w");
	fputs("tern-imap 1\nuidvalidity 1700000000\nuidnext 3\nmodseq 9\nrecent 3\n"
	      "keyword $Work\nkeyword $Later\n"
	      "m 1 5 1 2 100.M1P1Q1.h\nm 2 6 3 2 200.M1P1Q1.h\nend\n", fp);
	fclose(fp);
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->uidvalidity, 1700000000);   /* the same UIDs */
	assert_int_equal(f->nkw, 3);
	assert_string_equal(f->kw[2], "Dovecots");
	assert_int_equal(f->kw_slot[2], 1);
	assert_int_equal(f->v[0].kw, 1u | 4u);          /* $Work, and Dovecot's */
	assert_int_equal(f->v[1].kw, 3);
	/* slots 0 and 2 were free: $Work is a, $Later c */
	assert_string_equal(f->v[0].name, "100.M1P1Q1.h:2,Sab");
	assert_string_equal(f->v[1].name, "200.M1P1Q1.h:2,ac");
	char *text = slurp(fx->md, "dovecot-keywords");
	assert_string_equal(text, "0 $Work\n1 Dovecots\n2 $Later\n");
	free(text);
	imap_folder_free(f);
	f = imap_folder_open(fx->md);
	assert_int_equal(f->v[0].kw, 5);
	assert_int_equal(f->v[1].kw, 3);
	text = slurp(fx->md, IMAP_FOLDER_STATE);
	assert_non_null(strstr(text, "tern-imap 2\n"));
	assert_non_null(strstr(text, "kw 2 $Later\n"));
	free(text);
	imap_folder_free(f);
}

/* The FETCH cache: written, taken back for the same files only, a bad
 * file ignored. */
static void test_cache(void **state)
{
	struct fixture *fx = *state;
	struct imap_folder *f;
	const char *p;
	size_t len;
	char path[256];

	assert_true(imap_store_setup(fx->md));
	put(fx->md, "new", "100.M1P1.h", "Subject: a\n\nx\n");
	put(fx->md, "new", "101.M2P1.h", "Subject: b\n\ny\n");
	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->n, 2);
	assert_false(imap_cache_get(&f->v[0], IMAP_CACHE_ENVELOPE, &p, &len));
	imap_cache_set(f, 0, "ENV0", 4, "B0", 2, "BS0", 3);
	imap_cache_set(f, 1, "ENV1", 4, "", 0, "BS1", 3);
	assert_true(f->cache_dirty);
	assert_true(imap_cache_save(f));
	assert_false(f->cache_dirty);
	imap_folder_free(f);

	f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_true(imap_cache_get(&f->v[0], IMAP_CACHE_BODYSTRUCTURE, &p, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(p, "BS0", 3);
	assert_true(imap_cache_get(&f->v[1], IMAP_CACHE_BODY, &p, &len));
	assert_int_equal(len, 0);
	assert_false(f->cache_dirty);
	/* another file under the same name (other size): not taken */
	snprintf(path, sizeof(path), "%s/cur/%s", fx->md, f->v[1].name);
	imap_folder_free(f);
	put(fx->md, "cur", strrchr(path, '/') + 1, "Subject: changed\n\nlonger body\n");
	f = imap_folder_open(fx->md);
	assert_true(imap_cache_get(&f->v[0], IMAP_CACHE_ENVELOPE, &p, &len));
	assert_false(imap_cache_get(&f->v[1], IMAP_CACHE_ENVELOPE, &p, &len));
	imap_folder_free(f);

	/* one octet changed: the checksum refuses the whole file */
	snprintf(path, sizeof(path), "%s/%s", fx->md, IMAP_FOLDER_CACHE);
	FILE *fp = fopen(path, "r+");
	assert_non_null(fp);
	fseek(fp, 40, SEEK_SET);
	fputc('#', fp);
	fclose(fp);
	f = imap_folder_open(fx->md);
	assert_false(imap_cache_get(&f->v[0], IMAP_CACHE_ENVELOPE, &p, &len));
	assert_true(f->cache_dirty);
	imap_folder_free(f);
}

/* The CRLF size counted a buffer at a time: a CR at the end of one read
 * and its LF at the start of the next is one line end, not a bare LF. */
static void test_crlf_len(void **state)
{
	(void)state;
	const char *text = "a\nb\r\nc\n\nd\r";
	size_t n = strlen(text);
	char prev = 0;
	assert_int_equal(imap_crlf_len(text, n, &prev), n + 3);
	assert_int_equal(prev, '\r');
	/* every split point gives the same total */
	for (size_t cut = 0; cut <= n; cut++) {
		prev = 0;
		uint64_t a = imap_crlf_len(text, cut, &prev);
		a += imap_crlf_len(text + cut, n - cut, &prev);
		assert_int_equal(a, n + 3);
	}
	prev = 0;
	uint64_t x = imap_crlf_len("x\r", 2, &prev);
	x += imap_crlf_len("\ny\n", 3, &prev);
	assert_int_equal(x, 6);   /* x CRLF y CRLF */
	prev = 0;
	assert_int_equal(imap_crlf_len("\n", 1, &prev), 2);
	assert_int_equal(imap_crlf_len("", 0, &prev), 0);
}

/* Arrival order: numeric seconds, then numeric (unpadded) microseconds,
 * then the whole name. */
static void test_name_order(void **state)
{
	(void)state;
	assert_true(imap_folder_name_order("9.M5P1.h", "10.M1P1.h") < 0);
	assert_true(imap_folder_name_order("10.M9P1.h", "10.M10P1.h") < 0);
	assert_true(imap_folder_name_order("10.M10P1.h", "10.M9P1.h") > 0);
	assert_true(imap_folder_name_order("10.M9P2.h", "10.M9P1.h") > 0);
	assert_true(imap_folder_name_order("10.a", "10.b") < 0);
	assert_true(imap_folder_name_order("x", "10.M1") < 0);   /* no digits: 0 s */
	assert_int_equal(imap_folder_name_order("10.M9P1.h", "10.M9P1.h"), 0);
}

/* A file without ,W= is sized by reading it, several reads for a big
 * one, with a CRLF split across two reads; its size is the same as the
 * one a ,W= name of the same text gives. */
static void test_size_read(void **state)
{
	struct fixture *fx = *state;
	size_t n = 200000, lf = 0;
	char *text = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		text[i] = i % 61 == 60 ? '\n' : 'a';
	text[65535] = '\r';   /* the end of the first 64 KiB read */
	text[65536] = '\n';
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
			lf++;
	assert_true(maildir_create(fx->md));
	put(fx->md, "cur", "10.M1P1Q1.h:2,", text);
	char w[128];
	snprintf(w, sizeof(w), "20.M1P1Q1.h,W=%zu:2,", n + lf);
	put(fx->md, "cur", w, "x");   /* its W= is believed, not its octets */
	struct imap_folder *f = imap_folder_open(fx->md);
	assert_non_null(f);
	assert_int_equal(f->n, 2);
	imap_folder_stat_all(f);
	assert_int_equal(f->v[0].size, n + lf);
	assert_int_equal(f->v[1].size, n + lf);
	assert_int_equal(f->v[0].fsize, n);
	assert_true(f->v[0].date > 0 && f->v[0].ino != 0);
	imap_folder_free(f);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf_len),
		cmocka_unit_test(test_name_order),
		cmocka_unit_test_setup_teardown(test_size_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uids_and_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_and_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_base_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keywords_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keywords_from_v1_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uidvalidity_never_repeats, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
