/*
 * fuzz_dkim_sign.c - libFuzzer harness for the DKIM signer on whole
 * messages (header split, From: domain, h= list, relaxed body hash), cut
 * in two at a point the input chooses, signed with RFC 8463's Ed25519
 * key.  No crash; and a message whose lines all end in CRLF and whose
 * header section ends is verified by tern's own verifier: what tern signs
 * must pass where it is checked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "msgauth/dkim.h"
#include "proto/base64.h"

static const char key_ed[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
/* RFC 8463 A.2: the private key's seed */
static const unsigned char seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
	0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

/* Only CRLF line ends, no NUL, and an end to the header section; not
 * starting with white space, which would continue the field put in
 * front (tern's own Received: always comes first). */
static bool well_formed(const uint8_t *d, size_t n)
{
	bool end = false;

	if (n > 0 && (d[0] == ' ' || d[0] == '\t'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (d[i] == 0 || (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n')) ||
		    (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')))
			return false;
		if (i >= 3 && !memcmp(d + i - 3, "\r\n\r\n", 4))
			end = true;
	}
	return end || (n >= 2 && !memcmp(d, "\r\n", 2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	struct dkim_signer *s;
	size_t cut = size ? data[0] % size : 0;
	const char *dom;
	char *sig;

	if (!key && !(key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed)))
		abort();
	s = dkim_signer_new(NULL, NULL, NULL);
	dkim_signer_feed(s, (const char *)data, cut);
	dkim_signer_feed(s, (const char *)data + cut, size - cut);
	dom = dkim_signer_from_domain(s);
	if (dom && (strlen(dom) > 255 || !*dom))
		abort();
	dkim_signer_add_key(s, key, "example.com", "brisbane");
	sig = dkim_signer_finish(s, "\r\n", 1700000000);
	if (sig && strncmp(sig, "DKIM-Signature: v=1; a=ed25519-sha256;", 38))
		abort();
	if (sig && well_formed(data, size)) {
		size_t sl = strlen(sig);
		char *msg = malloc(sl + size + 1);
		struct dkim_verify *v = dkim_verify_new();
		const char *reason = NULL;
		char *name;
		memcpy(msg, sig, sl);
		memcpy(msg + sl, data, size);
		dkim_verify_feed(v, msg, sl + size);
		dkim_verify_finish(v);
		if (dkim_verify_count(v) < 1 || !(name = dkim_verify_key_name(v, 0)))
			abort();
		free(name);
		dkim_verify_key(v, 0, key_ed, strlen(key_ed), 1700000001);
		if (dkim_verify_result(v, 0, &reason) != DKIM_PASS)
			abort();
		dkim_verify_free(v);
		free(msg);
	}
	free(sig);
	dkim_signer_free(s);
	return 0;
}
