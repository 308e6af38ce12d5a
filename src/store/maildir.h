/*
 * maildir.h - delivery into state_dir/mail/DOMAIN/USER/Maildir
 * (tmp/ -> fsync -> new/, names per the Maildir spec with Dovecot's
 * ,S=<size>,W=<CRLF size> so POP3 never has to read a message to size it).
 */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* "STATE/mail/DOMAIN/LOCAL/Maildir" (xmalloc'd). */
char *maildir_path(const char *state_dir, const char *domain, const char *local);
/* Create Maildir/{tmp,new,cur} if needed. */
bool maildir_create(const char *path);

struct fs_commit;

/* One message on its way into a Maildir. */
struct maildir_file {
	int fd;                   /* open on tmp until finished */
	/* tmp: "" for an anonymous file (O_TMPFILE), linked into new/ by fd */
	char base[512];           /* the unique name, without tmp/ or new/ */
	char tmp[4096], dst[4096], newdir[4096];
	char path[4096];          /* the Maildir (streamed files) */
};

/*
 * Delivery in three steps, so that many files share one fs_commit()
 * round (tmp/ -> fsync -> new/ -> fsync new/).  prepare writes the file
 * in tmp/ (an anonymous one where the file system has O_TMPFILE): prefix
 * (prefix_lines header lines, LF ends), then len bytes
 * of src_fd from offset (msg_lines lines); false, with errno kept and
 * nothing left behind, on failure.  commit_item fills an fs_commit item
 * for it; finish closes it, removing tmp when not committed.
 */
bool maildir_prepare(struct maildir_file *mf, const char *path, const char *hostname,
		     const char *prefix, size_t prefix_len, uint64_t prefix_lines,
		     int src_fd, off_t offset, uint64_t len, uint64_t msg_lines);
void maildir_commit_item(struct maildir_file *mf, struct fs_commit *c);

/* A file written as the message arrives: an anonymous file in tmp/
 * (a named tmp/<unique> where the file system has no O_TMPFILE), opened
 * read-write in the existing Maildir path (false, errno kept, if it
 * cannot be: it is not created here); once its sizes are known,
 * maildir_stream_sized() gives it its name in new/, then commit_item and
 * finish as above.  Loop thread: it takes one of the spares made ahead
 * for path when there is one.  *fill true asks the caller to run
 * maildir_spares_fill(path) on a worker. */
bool maildir_open_stream(struct maildir_file *mf, const char *path, const char *hostname, bool *fill);
/* Worker thread: make path's spare files (see maildir.c). */
void maildir_spares_fill(const char *path);
/* At exit: close the spares (they have no names: nothing stays). */
void maildir_spares_drop(void);
/* A streamed file goes into the Maildir++ folder (".Junk") instead,
 * made (new/, cur/, tmp/) when missing; false with errno when it cannot be. */
bool maildir_stream_folder(struct maildir_file *mf, const char *folder);
void maildir_stream_sized(struct maildir_file *mf, uint64_t size, uint64_t vsize);
void maildir_finish(struct maildir_file *mf, bool committed);

#endif
