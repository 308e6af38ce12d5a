/*
 * addrlist.h - the mailboxes of an RFC 5322 address-list header value
 * (RFC 5322 3.4: To:, Cc:, Bcc:), as `sendmail -t` needs them: display
 * names, comments and group names dropped, "Name <addr>" and bare
 * addr-specs both yielding the address.  Pure: bytes in, callbacks out.
 */
#ifndef TERN_ADDRLIST_H
#define TERN_ADDRLIST_H

#include <stddef.h>

#define ADDRLIST_ADDR_MAX 256     /* RFC 5321 4.5.3.1.3 path, brackets excluded */
#define ADDRLIST_MAX      1000    /* mailboxes per header value */

enum addrlist_err {
	ADDRLIST_SYNTAX = -1,         /* unbalanced <>, () or quotes; words without @ */
	ADDRLIST_TOO_LONG = -2,       /* an address over ADDRLIST_ADDR_MAX */
	ADDRLIST_TOO_MANY = -3,       /* more than ADDRLIST_MAX mailboxes */
};

typedef void (*addrlist_fn)(const char *addr, void *arg);

/* Calls fn for each address in v[0..len) in order (a bare local part
 * such as "root" is passed as it is; the caller qualifies it).  Returns
 * the number of addresses, or an enum addrlist_err; fn may have been
 * called for the addresses before an error. */
int addrlist_parse(const char *v, size_t len, addrlist_fn fn, void *arg);

#endif
