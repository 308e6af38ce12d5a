/*
 * queue.c - the durable queue (see queue.h for the file layout).
 *
 * Invariant 1 of DESIGN.md lives here: the SMTP server sends 250 after
 * end-of-data only when queue_writer_commit() has returned true.
 */
#include "store/queue.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define TRAILER_MAX QUEUEFILE_TRAILER_MAX

#define SCRATCH_MAX 256

struct scratch {
	int fd;
	char *path;
	uint64_t extent;          /* bytes a previous message left in it */
};

struct queue {
	char *dir, *tmp_dir, *msg_dir;
	pthread_mutex_t id_mu;    /* guards last_id and the scratch pool */
	uint64_t last_id;
	/* Emptied temp files kept for reuse.  Creating and deleting a file per
	 * message makes the file system search for free inodes past the
	 * recently deleted ones (ext4 without a journal spends a third of
	 * tern's CPU there); a message delivered straight into its Maildirs
	 * leaves its temp file here instead. */
	struct scratch pool[SCRATCH_MAX];
	size_t npool;
	uint64_t scratch_seq;
	/* Committed messages in msg/: counted at start (queue_recover), one
	 * up per commit, one down per removal, so /metrics reads a number
	 * instead of listing the directory on the loop.  Atomic: commits and
	 * removals run on worker threads. */
	uint64_t length;
};

struct queue_writer {
	struct queue *q;
	char id[QUEUE_ID_LEN + 1];
	char *env_id;             /* the caller's env->id, kept in step */
	const bool *env_junk;     /* the caller's env->junk and dkim_signed, read */
	const bool *env_signed;   /* at the commit */
	const struct queue_env *env;   /* its dkim8_len and dkim7, likewise */
	char *tmp_path, *final_path;
	int fd;
	uint64_t offset;          /* where the message starts */
	uint64_t written;         /* message bytes so far */
	uint64_t front_room;      /* padding just before offset, for fields in front */
	uint64_t extent;          /* file size when taken from the pool */
	bool failed;
	int err;                  /* errno of the write that failed */
};

/* ---- logging: one function per event ------------------------------------ */

/* A queue file operation failed; id is NULL when no message is concerned
 * (the queue's directories), path NULL when the id names the file. */
static void log_queue_error(const char *op, const char *id, const char *path, int err)
{
	errno = err;
	log_event("event=queue_error op=%s%s%s%s%s error=\"%m\"", op, id ? " queue=" : "", id ? id : "",
		  path ? " path=" : "", path ? path : "");
}

/* The id a message was to be committed under is taken: it gets a new one. */
static void log_queue_id_taken(const char *id)
{
	log_event("event=queue_id_taken queue=%s action=new_id", id);
}

/* A file left in tmp/ at start-up: "ID.N" (a message being received),
 * "ID.st" (a state update) or "retired.N". */
static void log_queue_remove_partial(const char *name)
{
	size_t n = strspn(name, "0123456789ABCDEFabcdef");

	if (n == QUEUE_ID_LEN && name[n] == '.')
		log_event("event=queue_recover action=remove_partial queue=%.*s file=%s", (int)n, name, name);
	else
		log_event("event=queue_recover action=remove_partial file=%s", name);
}

/* A committed file that cannot be read back is never delivered; say so,
 * with what was wrong (a parse error's name or errno's text). */
static void log_queue_unreadable(const char *id, const char *error)
{
	log_event("event=queue_unreadable queue=%s error=\"%s\"", id, error);
}

const char *rcpt_state_name(enum rcpt_state s)
{
	static const char *const names[] = { "pending", "deferred", "delivered", "failed" };
	return s <= RCPT_FAILED ? names[s] : "?";
}

static int hexval(int c);
static bool is_id(const char *s);

/* The greatest id in msg/ (messages and state files), 0 if none. */
static uint64_t queue_highest_id(const struct queue *q)
{
	DIR *d = opendir(q->msg_dir);
	struct dirent *de;
	uint64_t max = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char id[QUEUE_ID_LEN + 1];
		if (strlen(de->d_name) < QUEUE_ID_LEN)
			continue;
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (is_id(id)) {
			uint64_t v = strtoull(id, NULL, 16);
			if (v > max)
				max = v;
		}
	}
	closedir(d);
	return max;
}

struct queue *queue_open(const char *state_dir)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->dir = xasprintf("%s/queue", state_dir);
	q->tmp_dir = xasprintf("%s/tmp", q->dir);
	q->msg_dir = xasprintf("%s/msg", q->dir);
	pthread_mutex_init(&q->id_mu, NULL);
	if (!mkdir_p(q->tmp_dir, 0700) || !mkdir_p(q->msg_dir, 0700)) {
		log_queue_error("mkdir", NULL, q->dir, errno);
		queue_close(q);
		return NULL;
	}
	q->last_id = queue_highest_id(q);
	return q;
}

void queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->npool; i++) {
		close(q->pool[i].fd);
		unlink(q->pool[i].path);
		free(q->pool[i].path);
	}
	free(q->dir);
	free(q->tmp_dir);
	free(q->msg_dir);
	pthread_mutex_destroy(&q->id_mu);
	free(q);
}

const char *queue_tmp_dir(const struct queue *q)
{
	return q->tmp_dir;
}

const char *queue_msg_dir(const struct queue *q)
{
	return q->msg_dir;
}

/* Ids are microseconds since the epoch in hex, made strictly increasing
 * and greater than every id in the queue at start (queue_open seeds
 * last_id), so they sort by arrival and a clock stepped back cannot hand
 * out an id that is queued already.  The commit never replaces a file
 * either (see queue_writer_commit): an id taken by someone else meanwhile
 * costs a new id, never a message.  Ids above `past` are given out. */
static void queue_new_id(struct queue *q, uint64_t past, char *out)
{
	struct timeval tv;
	uint64_t v;
	gettimeofday(&tv, NULL);
	v = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	pthread_mutex_lock(&q->id_mu);
	if (q->last_id < past)
		q->last_id = past;
	if (v <= q->last_id)
		v = q->last_id + 1;
	q->last_id = v;
	pthread_mutex_unlock(&q->id_mu);
	snprintf(out, QUEUE_ID_LEN + 1, "%016" PRIX64, v);
}

/* Values are written "=" + text with %XX for anything but printable
 * non-space ASCII; "-" stands for none. */
static void put_value(FILE *f, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	if (v == NULL) {
		fputc('-', f);
		return;
	}
	fputc('=', f);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p > 0x20 && *p < 0x7f && *p != '%') {
			fputc(*p, f);
		} else {
			fputc('%', f);
			fputc(hex[*p >> 4], f);
			fputc(hex[*p & 15], f);
		}
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void write_envelope(FILE *f, const struct queue_env *env)
{
	fprintf(f, "TERN-QUEUE 1\nid %s\narrival %" PRId64 "\nfrom ", env->id, env->arrival);
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
	if (env->smtputf8)   /* only when set: other queue files stay as they were */
		fputs("smtputf8 1\n", f);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		fprintf(f, "rcpt %c %u ", r->local ? 'L' : 'R', r->notify);
		put_value(f, r->addr);
		fputc(' ', f);
		put_value(f, r->orig);
		fputc(' ', f);
		put_value(f, r->orcpt);
		fputc('\n', f);
	}
	fputc('\n', f);
}

struct queue_writer *queue_writer_new(struct queue *q, struct queue_env *env)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	char *text = NULL;
	size_t text_len = 0;
	FILE *mem;

	w->q = q;
	w->fd = -1;
	queue_new_id(q, 0, w->id);
	pthread_mutex_lock(&q->id_mu);
	if (q->npool > 0) {
		struct scratch sc = q->pool[--q->npool];
		w->fd = sc.fd;
		w->tmp_path = sc.path;
		w->extent = sc.extent;
	}
	pthread_mutex_unlock(&q->id_mu);
	for (int tries = 0; tries < 5 && w->fd < 0; tries++) {
		pthread_mutex_lock(&q->id_mu);
		uint64_t seq = ++q->scratch_seq;
		pthread_mutex_unlock(&q->id_mu);
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s.%" PRIu64, q->tmp_dir, w->id, seq);
		w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd < 0 && errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		int err = errno;
		log_queue_error("create", w->id, w->tmp_path, err);
		queue_writer_free(w);
		errno = err;
		return NULL;
	}
	memcpy(env->id, w->id, sizeof(env->id));
	w->env_id = env->id;
	w->env_junk = &env->junk;
	w->env_signed = &env->dkim_signed;
	w->env = env;
	w->final_path = xasprintf("%s/%s", q->msg_dir, w->id);
	mem = open_memstream(&text, &text_len);
	write_envelope(mem, env);
	fclose(mem);
	if (!write_all(w->fd, text, text_len)) {
		int err = errno;
		log_queue_error("write", w->id, NULL, err);
		free(text);
		queue_writer_abort(w);
		queue_writer_free(w);
		errno = err;
		return NULL;
	}
	w->offset = text_len;
	free(text);
	return w;
}

int queue_writer_fd(const struct queue_writer *w)
{
	return w->fd;
}

const char *queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

uint64_t queue_writer_offset(const struct queue_writer *w)
{
	return w->offset;
}

uint64_t queue_writer_size(const struct queue_writer *w)
{
	return w->written;
}

int queue_writer_error(const struct queue_writer *w)
{
	return !w->failed ? 0 : w->err ? w->err : EIO;
}

bool queue_writer_write(struct queue_writer *w, const void *buf, size_t len)
{
	if (w->failed) {
		errno = w->err;
		return false;
	}
	if (!write_all(w->fd, buf, len)) {
		w->err = errno;
		log_queue_error("write", w->id, NULL, w->err);
		w->failed = true;
		errno = w->err;       /* callers tell a full disk by it */
		return false;
	}
	w->written += len;
	return true;
}

bool queue_writer_reserve_front(struct queue_writer *w, size_t room)
{
	char *pad;
	bool ok;

	if (w->failed || w->written > 0)
		return false;
	pad = xmalloc(room);
	memset(pad, '\n', room);
	ok = write_all(w->fd, pad, room);
	free(pad);
	if (!ok) {
		w->err = errno;
		log_queue_error("write", w->id, NULL, w->err);
		w->failed = true;
		errno = w->err;
		return false;
	}
	w->offset += room;
	w->front_room += room;
	return true;
}

bool queue_writer_insert_front(struct queue_writer *w, const void *buf, size_t len)
{
	if (w->failed)
		return false;
	if (len <= w->front_room) {
		/* into the padding, just before the message: nothing moves */
		if (pwrite(w->fd, buf, len, (off_t)(w->offset - len)) != (ssize_t)len) {
			w->err = errno ? errno : EIO;
			log_queue_error("write", w->id, NULL, w->err);
			w->failed = true;
			errno = w->err;
			return false;
		}
		w->offset -= len;
		w->front_room -= len;
		w->written += len;
		return true;
	}
	if (!fs_insert(w->fd, (off_t)w->offset, w->written, buf, len)) {
		w->err = errno;
		log_queue_error("write", w->id, NULL, w->err);
		w->failed = true;
		errno = w->err;
		return false;
	}
	w->written += len;
	return true;
}

/*
 * The envelope changed after the file was started (a milter changed the
 * sender or the recipients): write it again, the octets of the message
 * written so far moved to follow it.  Called before the rest of the
 * message is written (the milter stage holds it back until its
 * verdict), so only what earlier stages put in front is moved.
 */
bool queue_writer_set_envelope(struct queue_writer *w, const struct queue_env *env)
{
	char *text = NULL, block[65536];
	size_t text_len = 0;
	FILE *mem;
	uint64_t left = w->written, done = 0, old_end = w->offset + w->written;
	bool ok = true;

	if (w->failed)
		return false;
	mem = open_memstream(&text, &text_len);
	write_envelope(mem, env);
	fclose(mem);
	errno = 0;
	if (text_len > w->offset) {
		/* back to front, so that nothing is overwritten before it moved */
		while (ok && left > 0) {
			size_t k = left < sizeof(block) ? (size_t)left : sizeof(block);
			off_t from = (off_t)(w->offset + left - k);
			ok = pread(w->fd, block, k, from) == (ssize_t)k &&
			     pwrite(w->fd, block, k, from + (off_t)(text_len - w->offset)) == (ssize_t)k;
			left -= k;
		}
	} else if (text_len < w->offset) {
		while (ok && done < w->written) {
			size_t k = w->written - done < sizeof(block) ? (size_t)(w->written - done) : sizeof(block);
			ok = pread(w->fd, block, k, (off_t)(w->offset + done)) == (ssize_t)k &&
			     pwrite(w->fd, block, k, (off_t)(text_len + done)) == (ssize_t)k;
			done += k;
		}
	}
	ok = ok && pwrite(w->fd, text, text_len, 0) == (ssize_t)text_len &&
	     lseek(w->fd, (off_t)(text_len + w->written), SEEK_SET) >= 0;
	free(text);
	if (!ok) {
		w->err = errno ? errno : EIO;
		log_queue_error("write", w->id, NULL, w->err);
		w->failed = true;
		errno = w->err;
		return false;
	}
	/* a shorter envelope leaves a tail that the commit cuts off */
	if (old_end > w->extent)
		w->extent = old_end;
	w->offset = text_len;
	w->front_room = 0;   /* the padding went with the move */
	return true;
}

/* write_envelope() starts every file with "TERN-QUEUE 1\nid " and the id. */
#define ENV_ID_AT (sizeof("TERN-QUEUE 1\nid ") - 1)
#define COMMIT_TRIES 8

/* The id w was to be committed under is taken (a file of an earlier run,
 * or of another process on the same state directory): move the message
 * to a new id, in the file's envelope and in the caller's env. */
static bool writer_take_new_id(struct queue_writer *w)
{
	char id[QUEUE_ID_LEN + 1];

	log_queue_id_taken(w->id);
	queue_new_id(w->q, strtoull(w->id, NULL, 16), id);
	if (pwrite(w->fd, id, QUEUE_ID_LEN, (off_t)ENV_ID_AT) != QUEUE_ID_LEN)
		return false;
	memcpy(w->id, id, sizeof(w->id));
	memcpy(w->env_id, id, sizeof(w->id));
	free(w->final_path);
	w->final_path = xasprintf("%s/%s", w->q->msg_dir, w->id);
	return true;
}

/*
 * The commit, in the order that makes a crash at any point safe:
 *  1. append the trailer: recovery and readers check it, so a file cut
 *     short is recognised even if something else went wrong;
 *  2. sync the file: its data and size are on disk before it gets its
 *     final name, so the name can never point at missing data;
 *  3. rename tmp/ID -> msg/ID, never over an existing file: atomic, the
 *     message is either queued whole or not at all (start-up removes
 *     whatever is left in tmp/), and a queued message cannot be replaced
 *     by a new one that was given its id;
 *  4. fsync msg/: the new name itself is durable.  Only now may the
 *     session answer 250.
 * Steps 2-4 are fs_commit(), which shares them with concurrent commits.
 * When the id is taken (step 3 fails with EEXIST), the message gets a new
 * id and steps 2-4 run again (the envelope changed).
 */
bool queue_writer_commit(struct queue_writer *w, uint64_t lines, bool eight_bit)
{
	char trailer[TRAILER_MAX];
	struct fs_commit c;
	int n;

	if (w->failed) {
		errno = w->err;
		goto fail;
	}
	/* junk=1 and signed=1 only when set (they are known only at the end
	 * of DATA, after the envelope): other trailers stay as they were,
	 * and older readers, which scan the first four fields, accept them */
	n = snprintf(trailer, sizeof(trailer), "TERN-END off=%" PRIu64 " len=%" PRIu64 " lines=%" PRIu64 " 8bit=%d%s%s\n",
		     w->offset, w->written, lines, eight_bit ? 1 : 0, *w->env_junk ? " junk=1" : "",
		     *w->env_signed ? " signed=1" : "");
	/* the 7-bit form's signatures go between the message and the
	 * trailer, which says how long they are (queuefile.h) */
	size_t sig7 = *w->env_signed && w->env->dkim7 ? strlen(w->env->dkim7) : 0;
	if (sig7 > 0) {
		n--;   /* the line end */
		n += snprintf(trailer + n, sizeof(trailer) - (size_t)n, " sig8=%" PRIu64 " sig7=%zu\n",
			      w->env->dkim8_len, sig7);
		if (!write_all(w->fd, w->env->dkim7, sig7))
			goto fail;
	}
	if (!write_all(w->fd, trailer, (size_t)n))
		goto fail;
	/* A recycled scratch file may hold the tail of a longer message. */
	uint64_t end = w->offset + w->written + sig7 + (uint64_t)n;
	if (w->extent > end && ftruncate(w->fd, (off_t)end) < 0)
		goto fail;
	for (int tries = 0; ; tries++) {
		c = (struct fs_commit){ .fd = w->fd, .tmp = w->tmp_path, .dst = w->final_path, .dir = w->q->msg_dir };
		if (fs_commit(&c, 1))
			break;
		errno = c.err;
		if (c.err == EEXIST && tries + 1 < COMMIT_TRIES) {
			if (!writer_take_new_id(w))
				goto fail;
			continue;
		}
		if (c.err != EEXIST && access(w->final_path, F_OK) == 0) {
			/* Renamed, but the name may not be durable: the
			 * message must not be acknowledged.  Take it back so
			 * it is not delivered twice. */
			int err = errno;
			log_queue_error("commit", w->id, NULL, err);
			unlink(w->final_path);
			queue_writer_abort(w);
			errno = err;
			return false;
		}
		goto fail;
	}
	close(w->fd);
	w->fd = -1;
	__atomic_add_fetch(&w->q->length, 1, __ATOMIC_RELAXED);
	return true;
fail:
	n = errno;
	log_queue_error("commit", w->id, NULL, n);
	queue_writer_abort(w);
	errno = n;
	return false;
}

void queue_writer_abort(struct queue_writer *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->tmp_path)
		unlink(w->tmp_path);
}

/* Give an open, rewound file to the scratch pool.  True when the pool
 * took it (fd and path are the pool's now); false when it is full. */
static bool pool_put(struct queue *q, int fd, char *path, uint64_t extent)
{
	bool taken = false;

	pthread_mutex_lock(&q->id_mu);
	if (q->npool < SCRATCH_MAX) {
		q->pool[q->npool++] = (struct scratch){ .fd = fd, .path = path, .extent = extent };
		taken = true;
	}
	pthread_mutex_unlock(&q->id_mu);
	return taken;
}

void queue_writer_recycle(struct queue_writer *w, bool delivered)
{
	struct queue *q = w->q;
	uint64_t end = w->offset + w->written;

	if (w->fd < 0)
		return;
	if (w->failed) {
		queue_writer_abort(w);
		return;
	}
	/* After a direct delivery the file is not truncated: freeing its
	 * blocks only for the next message to allocate them again costs
	 * more than the occasional ftruncate at commit (see w->extent). */
	if (!delivered) {
		if (ftruncate(w->fd, 0) < 0) {
			queue_writer_abort(w);
			return;
		}
		end = 0;
	}
	if (delivered && w->extent > end)
		end = w->extent;
	if (lseek(w->fd, 0, SEEK_SET) == 0 && pool_put(q, w->fd, w->tmp_path, end)) {
		w->fd = -1;
		w->tmp_path = NULL;
	}
	queue_writer_abort(w);
}

void queue_writer_free(struct queue_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free(w->tmp_path);
	free(w->final_path);
	free(w);
}

/* Read len bytes at offset off; NULL when the file is shorter. */
static char *read_at(int fd, size_t len, off_t off)
{
	char *buf = xmalloc(len ? len : 1);
	if (pread(fd, buf, len, off) != (ssize_t)len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The trailer first: it says where the envelope ends and the message
 * begins, so only the envelope is read (proto/queuefile.c parses). */
static enum queuefile_err load_envelope(struct queue_env *env, int fd, off_t size)
{
	char tail[QUEUEFILE_TRAILER_MAX];
	size_t n = size < QUEUEFILE_TRAILER_MAX ? (size_t)size : QUEUEFILE_TRAILER_MAX;
	enum queuefile_err e;
	char *head;

	if (pread(fd, tail, n, size - (off_t)n) != (ssize_t)n)
		return QUEUEFILE_NO_TRAILER;
	if ((e = queuefile_parse_trailer(tail, n, (uint64_t)size, env)) != QUEUEFILE_OK)
		return e;
	if ((head = read_at(fd, (size_t)env->msg_offset, 0)) == NULL)
		return QUEUEFILE_NO_END;
	e = queuefile_parse_envelope(head, (size_t)env->msg_offset, env);
	free(head);
	return e;
}

static void load_state(struct queue *q, struct queue_env *env)
{
	char *path = xasprintf("%s/%s.st", q->msg_dir, env->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text;

	free(path);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && (text = read_at(fd, (size_t)st.st_size, 0)) != NULL) {
		queuefile_parse_state(text, (size_t)st.st_size, env);
		free(text);
	}
	close(fd);
}

struct queue_env *queue_load(struct queue *q, const char *id, int *fdp)
{
	char *path = xasprintf("%s/%s", q->msg_dir, id);
	struct queue_env *env = xcalloc(1, sizeof(*env));
	enum queuefile_err e = QUEUEFILE_OK;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	snprintf(env->id, sizeof(env->id), "%s", id);
	if (fd < 0 || fstat(fd, &st) < 0 || (e = load_envelope(env, fd, st.st_size)) != QUEUEFILE_OK) {
		/* gone meanwhile (delivered, deleted) is no error */
		if (e != QUEUEFILE_OK)
			log_queue_unreadable(id, queuefile_err_name(e));
		else if (errno != ENOENT)
			log_queue_unreadable(id, strerror(errno));
		if (fd >= 0)
			close(fd);
		queue_env_free(env);
		return NULL;
	}
	load_state(q, env);
	if (fdp)
		*fdp = fd;
	else
		close(fd);
	return env;
}

/* Same discipline as the commit: temp file, fsync, rename, dir fsync. */
bool queue_save_state(struct queue *q, const struct queue_env *env)
{
	char *tmp = xasprintf("%s/%s.st", q->tmp_dir, env->id);
	char *dst = xasprintf("%s/%s.st", q->msg_dir, env->id);
	char *text = NULL;
	size_t len = 0;
	bool ok = false;
	FILE *mem = open_memstream(&text, &len);
	int fd;

	fprintf(mem, "held %d\nwarned %d\n", env->held ? 1 : 0, env->delay_warned ? 1 : 0);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		fprintf(mem, "rcpt %zu %d %u %" PRId64 " ", i, (int)r->state, r->attempts, r->next_try);
		put_value(mem, r->remote_mta);
		fputc(' ', mem);
		put_value(mem, r->status);
		fputc(' ', mem);
		put_value(mem, r->last_reply);
		fputc('\n', mem);
		if (r->dsn_done)
			fprintf(mem, "dsn %zu\n", i);
	}
	fclose(mem);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && write_all(fd, text, len) && fsync(fd) == 0 && close(fd) == 0) {
		fd = -1;
		ok = rename(tmp, dst) == 0 && dir_sync(q->msg_dir);
	}
	if (!ok) {
		/* A full disk lands here (write or fsync: ENOSPC); the
		 * previous state file stays, so at worst a delivery is
		 * repeated, never skipped. */
		int err = errno;
		if (fd >= 0)
			close(fd);
		log_queue_error("save_state", env->id, NULL, err);
		unlink(tmp);
		errno = err;
	}
	free(text);
	free(tmp);
	free(dst);
	return ok;
}

/* Never below zero: a file put in msg/ behind tern's back and removed
 * by it must not wrap the gauge. */
static void queue_length_drop(struct queue *q)
{
	uint64_t n = __atomic_load_n(&q->length, __ATOMIC_RELAXED);
	while (n > 0 && !__atomic_compare_exchange_n(&q->length, &n, n - 1, true, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

uint64_t queue_length(const struct queue *q)
{
	return __atomic_load_n(&q->length, __ATOMIC_RELAXED);
}

/* The message goes first: a crash in between leaves a state file without
 * a message, which queue_scan() cleans up, never the reverse. */
bool queue_remove(struct queue *q, const char *id)
{
	char *path = xasprintf("%s/%s", q->msg_dir, id);
	char *st = xasprintf("%s/%s.st", q->msg_dir, id);
	bool gone = unlink(path) == 0;
	bool ok = gone || errno == ENOENT;
	if (gone)
		queue_length_drop(q);
	unlink(st);
	free(path);
	free(st);
	return ok;
}

/* Move a finished queue file into tmp/ and the scratch pool.  False when
 * it could not be moved (the caller deletes it). */
static bool queue_pool_file(struct queue *q, const char *path)
{
	struct stat st;
	bool room;
	uint64_t seq;
	char *tmp;
	int fd;

	pthread_mutex_lock(&q->id_mu);
	room = q->npool < SCRATCH_MAX;
	seq = ++q->scratch_seq;
	pthread_mutex_unlock(&q->id_mu);
	if (!room)
		return false;
	tmp = xasprintf("%s/retired.%" PRIu64, q->tmp_dir, seq);
	if (rename(path, tmp) < 0) {
		free(tmp);
		return false;
	}
	fd = open(tmp, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) != 0) {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		free(tmp);
		return true;
	}
	if (!pool_put(q, fd, tmp, (uint64_t)st.st_size)) {
		close(fd);
		unlink(tmp);
		free(tmp);
	}
	return true;
}

bool queue_retire(struct queue *q, const char *id)
{
	char *path = xasprintf("%s/%s", q->msg_dir, id);
	bool pooled = queue_pool_file(q, path);

	free(path);
	if (!pooled)
		return queue_remove(q, id);
	queue_length_drop(q);
	path = xasprintf("%s/%s.st", q->msg_dir, id);
	unlink(path);
	free(path);
	return true;
}

static bool is_id(const char *s)
{
	size_t n = strlen(s);
	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Start-up only: nothing in tmp/ was ever acknowledged, so it goes; a
 * state file whose message is gone is a leftover of queue_remove(). */
void queue_recover(struct queue *q)
{
	DIR *d;
	struct dirent *de;
	uint64_t length = 0;

	if ((d = opendir(q->tmp_dir)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.') {
				log_queue_remove_partial(de->d_name);
				unlinkat(dirfd(d), de->d_name, 0);
			}
		closedir(d);
	}
	if ((d = opendir(q->msg_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (is_id(de->d_name))
			length++;
		if (strlen(de->d_name) == QUEUE_ID_LEN + 3 && !strcmp(de->d_name + QUEUE_ID_LEN, ".st")) {
			char id[QUEUE_ID_LEN + 1];
			memcpy(id, de->d_name, QUEUE_ID_LEN);
			id[QUEUE_ID_LEN] = '\0';
			if (faccessat(dirfd(d), id, F_OK, 0) < 0)
				unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	closedir(d);
	__atomic_store_n(&q->length, length, __ATOMIC_RELAXED);
}

size_t queue_scan(struct queue *q, void (*fn)(const char *id, void *arg), void *arg)
{
	DIR *d;
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0;

	if ((d = opendir(q->msg_dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (is_id(de->d_name)) {
			ids = xrealloc(ids, (n + 1) * sizeof(*ids));
			ids[n++] = xstrdup(de->d_name);
		}
	}
	closedir(d);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), cmp_str);
	for (size_t i = 0; i < n; i++) {
		fn(ids[i], arg);
		free(ids[i]);
	}
	free(ids);
	return n;
}
