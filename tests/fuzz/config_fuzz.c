/*
 * config_fuzz: the YAML configuration loader (proxy/config.h).
 *
 * Input: the text of a configuration file. It is written to one fixed
 * file per process and loaded from there, as the proxy does. Checks:
 * - a refused file gets at least one "file:line: message" line, and the
 *   messages hold no control bytes (a hostile value cannot forge lines);
 * - an accepted file yields texts that the proxy sends on the wire or
 *   logs (helo_name, pass_header, notify.sender, user, group) free of
 *   control bytes (pass_header may hold tabs, as any header value), and
 *   host ports filled in;
 * - nothing leaks, on either path (LeakSanitizer).
 *
 * The loader's leaves that read other files are replaced at link time
 * (-Wl,--wrap, see the Makefile): glob() matches without looking,
 * policy_load() fails, and the TLS contexts are built without reading
 * keys or the system store. So an input that names /dev/stdin or a huge
 * tree costs nothing, and the run stays hermetic and fast.
 */
#include "fuzz.h"

#include <glob.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "config.h"
#include "policy.h"

static char config_fuzz_path[64];

int	LLVMFuzzerInitialize(int *, char ***);
int	__wrap_glob(const char *, int, int (*)(const char *, int), glob_t *);
struct policy_set *__wrap_policy_load(const char *const *, size_t,
	    const struct policy_limits *, struct buf *);
struct ssl_ctx_st *__wrap_tls_server_ctx(const char *, const char *,
	    const char *, char *, size_t);
struct ssl_ctx_st *__wrap_tls_client_ctx(const char *, int, char *, size_t);
int	__wrap_tls_read_passphrase(const char *, char *, size_t, char *,
	    size_t);

int
__wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int),
    glob_t *g)
{
	return 0;
}

struct policy_set *
__wrap_policy_load(const char *const *globs, size_t nglobs,
    const struct policy_limits *lim, struct buf *errors)
{
	buf_appendf(errors, "%s:1: policies are not loaded in the fuzzer\n",
	    config_fuzz_path);
	return NULL;
}

struct ssl_ctx_st *
__wrap_tls_server_ctx(const char *cert_file, const char *key_file,
    const char *passphrase, char *err, size_t errlen)
{
	return SSL_CTX_new(TLS_server_method());
}

struct ssl_ctx_st *
__wrap_tls_client_ctx(const char *trust_file, int verify, char *err,
    size_t errlen)
{
	return SSL_CTX_new(TLS_client_method());
}

int
__wrap_tls_read_passphrase(const char *path, char *dst, size_t dstsz,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "not read in the fuzzer");
	return -1;
}

static void
config_fuzz_cleanup(void)
{
	unlink(config_fuzz_path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(config_fuzz_path, sizeof(config_fuzz_path),
	    "/tmp/mp-fuzz-config.%ld.yaml", (long)getpid());
	atexit(config_fuzz_cleanup);
	return 0;
}

static void
config_fuzz_write(const uint8_t *data, size_t size)
{
	FILE *fp;

	if ((fp = fopen(config_fuzz_path, "w")) == NULL) {
		perror(config_fuzz_path);
		abort();
	}
	if (size > 0 && fwrite(data, 1, size, fp) != size) {
		perror(config_fuzz_path);
		abort();
	}
	if (fclose(fp) != 0) {
		perror(config_fuzz_path);
		abort();
	}
}

/* Every line "path:N: message", printable ASCII only. */
static void
config_fuzz_errors(const struct buf *errors)
{
	size_t plen = strlen(config_fuzz_path), i = 0, k;
	const char *nl, *line;

	FUZZ_CHECK(errors->len > 0, "refused without a message");
	while (i < errors->len) {
		line = errors->data + i;
		nl = memchr(line, '\n', errors->len - i);
		FUZZ_CHECK(nl != NULL, "message without a newline");
		FUZZ_CHECK((size_t)(nl - line) > plen + 2 &&
		    memcmp(line, config_fuzz_path, plen) == 0 &&
		    line[plen] == ':', "message without the file: %.*s",
		    (int)(nl - line), line);
		for (k = plen + 1; line[k] >= '0' && line[k] <= '9'; k++)
			;
		FUZZ_CHECK(k > plen + 1 && line[k] == ':',
		    "message without a line number: %.*s", (int)(nl - line),
		    line);
		for (; line + k < nl; k++)
			FUZZ_CHECK(line[k] >= 0x20 && line[k] <= 0x7e,
			    "byte %#x in a message: %.*s",
			    (unsigned char)line[k], (int)(nl - line), line);
		i += (size_t)(nl - line) + 1;
	}
}

/* A text that goes on the wire or into a log line (tab: header values). */
static void
config_fuzz_text(const char *what, const char *s, size_t sz, int tab)
{
	size_t i, len = strnlen(s, sz);

	FUZZ_CHECK(len < sz, "%s not NUL-terminated", what);
	for (i = 0; i < len; i++)
		FUZZ_CHECK(((unsigned char)s[i] >= 0x20 && s[i] != 0x7f) ||
		    (tab && s[i] == '\t'), "%s holds byte %#x", what,
		    (unsigned char)s[i]);
}

static void
config_fuzz_accepted(struct config *cf)
{
	size_t i;

	config_fuzz_text("helo_name", cf->helo_name, sizeof(cf->helo_name), 0);
	config_fuzz_text("pass_header", cf->pass_header,
	    sizeof(cf->pass_header), 1);
	FUZZ_CHECK(cf->pass_header[0] == '\0' ||
	    policy_check_header(cf->pass_header) == NULL,
	    "pass_header is not a header line: %s", cf->pass_header);
	config_fuzz_text("notify.sender", cf->notify.sender,
	    sizeof(cf->notify.sender), 0);
	config_fuzz_text("user", cf->user, sizeof(cf->user), 0);
	config_fuzz_text("group", cf->group, sizeof(cf->group), 0);
	for (i = 0; i < cf->nhosts; i++)
		FUZZ_CHECK(cf->hosts[i].port != 0, "host %zu without port", i);
	FUZZ_CHECK(cf->mode != MODE_FORWARD || cf->mx_lookup ||
	    cf->nhosts > 0, "forward mode without a next hop");
	FUZZ_CHECK(config_ref(cf) == cf, "config_ref");
	config_unref(cf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf errors = BUF_INIT;
	struct config *cf;

	config_fuzz_write(data, size);
	cf = config_load(config_fuzz_path, &errors);
	if (cf != NULL) {
		FUZZ_CHECK(errors.len == 0, "accepted with messages: %.*s",
		    (int)errors.len, errors.data);
		config_fuzz_accepted(cf);
		config_unref(cf);
	} else
		config_fuzz_errors(&errors);
	buf_free(&errors);
	return 0;
}
