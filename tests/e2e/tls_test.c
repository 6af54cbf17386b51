/*
 * tls_test: STARTTLS through mailprevent in forwarding mode, on both
 * sides, against certificates made by bin/certs-gen for each test.
 *
 *   upstream (mta-sim send, or the small TLS client below)
 *       -> mailprevent (tls.cert_file, tls.trust_file)
 *       -> next hop (mta-sim sink --tls-cert, or a bad variant of it)
 *
 * What each side did is read from the far end: the sink's .env says
 * whether a message came over TLS, its wire files show every command it
 * got, and the proxy logs one event=tls line per side. The client below
 * talks SMTP over a blocking socket with the harness deadline as its
 * receive timeout, so that the injection tests can look at the exact
 * bytes around the 220 to STARTTLS.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "tls.h"

#define DOWN_HOSTS	"downstream=downstream.mailprevent.test,localhost,127.0.0.1"
#define PASSPHRASE	"correct horse battery staple"

/* ---- running programs -------------------------------------------------- */

/* Run argv to its end; its stdout and stderr in *out; the exit status. */
static int
run(const char *name, char *const argv[], char **out)
{
	struct proc *p = proc_start(name, argv);
	int st = 0;

	H_CHECK(proc_wait_exit(p, H_DEADLINE_MS, &st), "%s hangs", name);
	H_CHECK(WIFEXITED(st), "%s died of signal %d", name, WTERMSIG(st));
	*out = h_strf("%s%s", proc_output(p, H_STDOUT, NULL),
	    proc_output(p, H_STDERR, NULL));
	return WEXITSTATUS(st);
}

/*
 * A test PKI in a fresh directory: certs-gen's four default leaves (each
 * valid for localhost and 127.0.0.1) and the bad variants of
 * "downstream". passfile: encrypt every key under it.
 */
static char *
pki(const char *passfile)
{
	char *dir = h_strf("%s/pki", h_tmpdir("certs"));
	char *gen = h_strf("%s/certs-gen", h_bindir()), *out;
	char *pkiv[] = { gen, "pki", "--out", dir, NULL, NULL, NULL };
	char *badv[] = { gen, "bad", "--out", dir, "--host", DOWN_HOSTS, NULL,
	    NULL, NULL };

	if (passfile != NULL) {
		pkiv[4] = badv[6] = "--passphrase-file";
		pkiv[5] = badv[7] = (char *)passfile;
	}
	H_CHECK(run("certs-gen-pki", pkiv, &out) == 0, "certs-gen pki: %s", out);
	H_CHECK(run("certs-gen-bad", badv, &out) == 0, "certs-gen bad: %s", out);
	return dir;
}

/* The proxy's tls: section; more lines inside it in extra. */
static char *
tls_yaml(const char *dir, const char *extra)
{
	return h_strf("tls:\n"
	    "  cert_file: \"%s/proxy.chain.pem\"\n"
	    "  key_file: \"%s/proxy.key\"\n"
	    "  trust_file: \"%s/trust.pem\"\n"
	    "%s", dir, dir, dir, extra ? extra : "");
}

static struct proxy *
tls_proxy(const int *ports, size_t n, const char *dir, const char *extra)
{
	return proxy_start(h_yaml(ports, n, tls_yaml(dir, extra)));
}

/* A next hop presenting DIR/LEAF.chain.pem; more sink options after it. */
#define tls_sink(dir, leaf, ...)					\
	sink_start(NULL, "--tls-cert", h_strf("%s/%s.chain.pem", dir, leaf), \
	    "--tls-key", h_strf("%s/%s.key", dir, leaf), __VA_ARGS__)

/*
 * "mta-sim send" one message to the proxy, with more options (NULL
 * ended); its output in *out, its exit status returned.
 */
static int
send_via(int port, char **out, ...)
{
	char *argv[32];
	const char *a;
	size_t n = 0;
	va_list ap;

	argv[n++] = h_strf("%s/mta-sim", h_bindir());
	argv[n++] = "send";
	argv[n++] = "--to";
	argv[n++] = h_strf("127.0.0.1:%d", port);
	argv[n++] = "--from";
	argv[n++] = "alice@corp.test";
	argv[n++] = "--rcpt";
	argv[n++] = "bob@ext.test";
	argv[n++] = "--timeout";
	argv[n++] = "10";
	va_start(ap, out);
	while ((a = va_arg(ap, const char *)) != NULL) {
		H_CHECK(n < sizeof(argv) / sizeof(argv[0]) - 1, "too many args");
		argv[n++] = (char *)a;
	}
	va_end(ap);
	argv[n] = NULL;
	return run("mta-sim-send", argv, out);
}

/* The line of out that contains s (without its newline), or NULL. */
static char *
line_with(const char *out, const char *s)
{
	const char *p = strstr(out, s), *b, *e;

	if (p == NULL)
		return NULL;
	for (b = p; b > out && b[-1] != '\n'; b--)
		;
	e = strchr(p, '\n');
	return h_strf("%.*s", (int)(e ? e - b : (long)strlen(b)), b);
}

/* ---- what the far ends saw ------------------------------------------- */

/* The i-th message at the sink came over TLS (1.2 or later). */
static void
check_sink_tls(struct sink *s, size_t i)
{
	char *line = h_env_line(sink_env(s, i), "tls ");

	H_CHECK(line != NULL && (strncmp(line, "tls TLSv1.3 ", 12) == 0 ||
	    strncmp(line, "tls TLSv1.2 ", 12) == 0), "message %zu at the sink: "
	    "%s", i, line ? line : "no tls line");
}

static void
check_sink_plain(struct sink *s, size_t i)
{
	char *line = h_env_line(sink_env(s, i), "tls ");

	H_CHECK(line != NULL && strcmp(line, "tls none") == 0,
	    "message %zu at the sink: %s", i, line ? line : "no tls line");
	H_CHECK(sink_events(s, "line=\"STARTTLS\"") == 0,
	    "the proxy said STARTTLS to the sink");
}

/* A next hop that must have got nothing: no message, no MAIL on the wire. */
static void
check_sink_untouched(struct sink *s)
{
	char **w;
	size_t n, i, len;
	char *raw;

	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 0,
	    "%zu messages at a next hop that must get none", sink_count(s));
	w = sink_wires(s, &n);
	H_CHECK(n >= 1, "the proxy never tried this next hop");
	for (i = 0; i < n; i++) {
		raw = sink_read(s, w[i], &len);
		H_CHECK(raw != NULL && h_count(raw, len, "MAIL FROM", 9) == 0 &&
		    h_count(raw, len, "mail from", 9) == 0, "%s holds a MAIL "
		    "command", w[i]);
	}
}

/* The proxy's event=tls line for a side, checked for protocol and cipher. */
static char *
check_proxy_tls(struct proxy *px, const char *side)
{
	char *line = proxy_wait_log(px, h_strf("event=tls side=%s", side));
	char *proto = h_kv_get(line, "proto"), *cipher = h_kv_get(line, "cipher");

	H_CHECK(proto != NULL && strncmp(proto, "TLSv1.", 6) == 0 &&
	    strcmp(proto, "TLSv1.1") != 0 && cipher != NULL && *cipher != '\0',
	    "%s", line);
	return line;
}

/* ---- a small SMTP client that can do TLS ----------------------------- */

struct tc {
	int	 fd;
	SSL_CTX	*ctx;
	SSL	*ssl;
	char	 in[65536];
	size_t	 len;		/* bytes in in[] not yet consumed */
};

static struct tc *tcs[8];
static size_t ntcs;

static struct tc *
tc_connect(int port)
{
	struct tc *t = calloc(1, sizeof(*t));
	struct timeval tv = { H_DEADLINE_MS / 1000, 0 };
	struct sockaddr_in sin;

	H_CHECK(t != NULL && ntcs < sizeof(tcs) / sizeof(tcs[0]), "tc");
	tcs[ntcs++] = t;
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	H_CHECK(t->fd != -1, "socket: %s", strerror(errno));
	/* Every read and write is bounded by the deadline, never a sleep. */
	setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	H_CHECK(connect(t->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect 127.0.0.1:%d: %s", port, strerror(errno));
	return t;
}

static void
tc_free(struct tc *t)
{
	if (t->ssl != NULL)
		SSL_free(t->ssl);
	SSL_CTX_free(t->ctx);
	if (t->fd != -1)
		close(t->fd);
	free(t);
}

static void
tc_teardown(void)
{
	while (ntcs > 0)
		tc_free(tcs[--ntcs]);
}

static void
tc_send(struct tc *t, const char *s)
{
	size_t len = strlen(s);
	ssize_t n;

	if (t->ssl != NULL) {
		H_CHECK(SSL_write(t->ssl, s, (int)len) == (int)len,
		    "SSL_write failed");
		return;
	}
	while (len > 0) {
		n = send(t->fd, s, len, MSG_NOSIGNAL);
		H_CHECK(n > 0, "send: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

/* More bytes into in[]: 0 on EOF, -1 on an error or the deadline. */
static int
tc_fill(struct tc *t)
{
	size_t room = sizeof(t->in) - t->len;
	long n;

	H_CHECK(room > 0, "reply too long");
	if (t->ssl != NULL)
		n = SSL_read(t->ssl, t->in + t->len, (int)room);
	else
		n = (long)recv(t->fd, t->in + t->len, room, 0);
	if (n <= 0)
		return n == 0 ? 0 : -1;
	t->len += (size_t)n;
	return 1;
}

/*
 * One whole reply (every line up to "NNN "), consumed from in[]; its code,
 * and its text (lines joined by '\n') in *text. Bytes after it stay.
 */
static int
tc_reply(struct tc *t, char **text)
{
	struct buf b = BUF_INIT;
	size_t off = 0;
	char *nl;
	int code = -1;

	for (;;) {
		while ((nl = memchr(t->in + off, '\n', t->len - off)) == NULL)
			H_CHECK(tc_fill(t) == 1, "no complete reply (have %.*s)",
			    (int)t->len, t->in);
		buf_append(&b, t->in + off, (size_t)(nl - (t->in + off)) + 1);
		if (nl - (t->in + off) >= 4 && t->in[off + 3] == ' ') {
			code = atoi(t->in + off);
			off = (size_t)(nl - t->in) + 1;
			break;
		}
		off = (size_t)(nl - t->in) + 1;
	}
	memmove(t->in, t->in + off, t->len - off);
	t->len -= off;
	buf_cstr(&b);
	*text = h_keep(b.data);
	return code;
}

static char *
tc_cmd(struct tc *t, int want, const char *cmd)
{
	char *text;
	int code;

	tc_send(t, h_strf("%s\r\n", cmd));
	code = tc_reply(t, &text);
	H_CHECK(code == want, "%s: wanted %d, got %d: %s", cmd, want, code, text);
	return text;
}

/* The handshake over the same socket, verifying the proxy's certificate. */
static void
tc_handshake(struct tc *t, const char *trust)
{
	char err[512];
	int r;

	t->ctx = tls_client_ctx(trust, 1, err, sizeof(err));
	H_CHECK(t->ctx != NULL, "%s", err);
	t->ssl = tls_client_ssl(t->ctx, "127.0.0.1");
	H_CHECK(t->ssl != NULL && SSL_set_fd(t->ssl, t->fd) == 1, "SSL_new");
	r = SSL_connect(t->ssl);
	H_CHECK(r == 1, "handshake: %s", tls_error(t->ssl, 0, err,
	    sizeof(err)));
}

/* ---- both sides verified ---------------------------------------------- */

START_TEST(test_tls_both_sides)
{
	char *dir = pki(NULL), *out, *line;
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);

	H_CHECK(send_via(px->port, &out, "--starttls", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 0, "%s", out);
	line = line_with(out, "cmd=TLS ");
	H_CHECK(line != NULL && h_kv_has(line, "verify", "ok") &&
	    h_kv_has(line, "peer", "proxy.mailprevent.test"), "%s", out);
	H_CHECK(strstr(out, "accepted=1") != NULL && strstr(out, " tls=1"),
	    "%s", out);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages at the sink", sink_count(s));
	check_sink_tls(s, 0);
	check_proxy_tls(px, "inbound");
	line = check_proxy_tls(px, "outbound");
	H_CHECK(h_kv_has(line, "verify", "ok") &&
	    h_kv_has(line, "peer", "downstream.mailprevent.test") &&
	    h_kv_has(line, "hop", h_strf("127.0.0.1:%d", s->port)), "%s", line);
}
END_TEST

/* ---- when the proxy uses TLS outbound ----------------------------------- */

START_TEST(test_plain_upstream_plain_downstream)
{
	char *dir = pki(NULL);
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);
	struct cli_reply *rep;
	struct cli *c;

	c = cli_connect(px->port);
	cli_expect(c, 220, NULL);
	rep = cli_cmd(c, 250, NULL, "EHLO client.test");
	H_CHECK(strstr(rep->text, "STARTTLS") != NULL, "not offered: %s",
	    rep->text);
	rep = cli_mail(c, "alice@corp.test", NULL, "bob@ext.test",
	    h_msg("in clear"), strlen(h_msg("in clear")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_plain(s, 0);
}
END_TEST

START_TEST(test_outbound_always)
{
	char *dir = pki(NULL);
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, "  outbound: always\n");
	struct cli_reply *rep;
	struct cli *c;
	char *line;

	c = cli_open(px->port);
	rep = cli_mail(c, "alice@corp.test", NULL, "bob@ext.test",
	    h_msg("clear in, TLS out"), strlen(h_msg("clear in, TLS out")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_tls(s, 0);
	line = check_proxy_tls(px, "outbound");
	H_CHECK(h_kv_has(line, "verify", "ok"), "%s", line);
}
END_TEST

START_TEST(test_outbound_never)
{
	char *dir = pki(NULL), *out;
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, "  outbound: never\n");

	H_CHECK(send_via(px->port, &out, "--starttls", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 0, "%s", out);
	H_CHECK(strstr(out, " tls=1") != NULL, "%s", out);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_plain(s, 0);
}
END_TEST

/* ---- next hops that must get nothing -------------------------------------- */

static const struct bad_hop {
	const char	*leaf;		/* NULL: a sink without STARTTLS */
	const char	*why;		/* in the proxy's nexthop-failed reason */
} bad_hops[] = {
	{ "downstream-untrusted", "unable to get local issuer certificate" },
	{ "downstream-expired", "certificate has expired" },
	{ "downstream-notyet", "certificate is not yet valid" },
	{ "downstream-wronghost", "IP address mismatch" },
	{ "downstream-selfsigned", "self" },
	{ NULL, "does not offer STARTTLS" },
};

START_TEST(test_bad_next_hop)
{
	const struct bad_hop *b = &bad_hops[_i];
	char *dir = pki(NULL), *out, *line;
	struct sink *s = b->leaf ? tls_sink(dir, b->leaf, (char *)NULL) :
	    sink_start(NULL, (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);

	H_CHECK(send_via(px->port, &out, "--starttls", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 1, "%s", out);
	line = line_with(out, "cmd=MAIL code=");
	H_CHECK(line != NULL && strstr(line, "code=454") != NULL &&
	    strstr(line, "4.7.0") != NULL, "%s: %s", b->leaf ? b->leaf :
	    "no STARTTLS", out);
	H_CHECK(strstr(out, "tempfail=1") != NULL, "%s", out);
	line = proxy_wait_log(px, "event=nexthop-failed");
	H_CHECK(strstr(line, b->why) != NULL, "%s", line);
	check_sink_untouched(s);
}
END_TEST

START_TEST(test_second_hop_after_bad_certificate)
{
	char *dir = pki(NULL), *out, *line;
	struct sink *bad = tls_sink(dir, "downstream-untrusted", (char *)NULL);
	struct sink *good = tls_sink(dir, "downstream", (char *)NULL);
	int ports[2] = { bad->port, good->port };
	struct proxy *px = tls_proxy(ports, 2, dir, NULL);

	H_CHECK(send_via(px->port, &out, "--starttls", (char *)NULL) == 0, "%s",
	    out);
	sink_wait_idle(good);
	H_CHECK(sink_count(good) == 1, "%zu at the good hop", sink_count(good));
	check_sink_tls(good, 0);
	check_sink_untouched(bad);
	line = proxy_wait_log(px, "event=relayed");
	H_CHECK(h_kv_has(line, "hop", h_strf("127.0.0.1:%d", good->port)),
	    "%s", line);
}
END_TEST

/* ---- plaintext injection ------------------------------------------------- */

/*
 * The client pipelines STARTTLS and EHLO in one write. The proxy must
 * answer only the STARTTLS, throw the EHLO away, and after the handshake
 * want a fresh EHLO: MAIL straight away is a bad sequence.
 */
START_TEST(test_inject_inbound)
{
	char *dir = pki(NULL), *text, *line;
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);
	struct tc *t = tc_connect(px->port);
	size_t len;

	H_CHECK(tc_reply(t, &text) == 220, "%s", text);
	tc_cmd(t, 250, "EHLO client.test");
	tc_send(t, "STARTTLS\r\nEHLO x\r\n");
	H_CHECK(tc_reply(t, &text) == 220, "%s", text);
	/* Nothing else in clear: the EHLO was not answered. */
	H_CHECK(t->len == 0, "%zu bytes in clear after the 220: %.*s", t->len,
	    (int)t->len, t->in);
	line = proxy_wait_log(px, "event=tls-discard");
	H_CHECK(h_kv_has(line, "bytes", "8"), "%s", line);
	/* A reply to the EHLO in clear would break the handshake. */
	tc_handshake(t, h_strf("%s/trust.pem", dir));
	check_proxy_tls(px, "inbound");
	/* The injected EHLO did not count, nor did the one before TLS. */
	tc_cmd(t, 503, "MAIL FROM:<alice@corp.test>");
	text = tc_cmd(t, 250, "EHLO client.test");
	H_CHECK(strstr(text, "STARTTLS") == NULL, "STARTTLS offered twice: %s",
	    text);
	tc_cmd(t, 250, "MAIL FROM:<alice@corp.test>");
	tc_cmd(t, 250, "RCPT TO:<bob@ext.test>");
	tc_cmd(t, 354, "DATA");
	tc_send(t, h_stuff(h_msg("after injection"),
	    strlen(h_msg("after injection")), &len));
	H_CHECK(tc_reply(t, &text) == 250, "%s", text);
	tc_cmd(t, 221, "QUIT");
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_tls(s, 0);
	H_CHECK(strcmp(h_env_line(sink_env(s, 0), "helo "),
	    "helo mailprevent.test") == 0, "%s", sink_env(s, 0));
}
END_TEST

/* The same through mta-sim send's hostile option, to the far end. */
START_TEST(test_inject_inbound_sender)
{
	char *dir = pki(NULL), *out, *line;
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);

	H_CHECK(send_via(px->port, &out, "--starttls-inject", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 0, "%s", out);
	line = line_with(out, "msg=0 cmd=MAIL ");
	H_CHECK(line != NULL && strstr(line, "code=503") != NULL, "%s", out);
	/* "EHLO injected\r\n" */
	line = proxy_wait_log(px, "event=tls-discard");
	H_CHECK(h_kv_has(line, "bytes", "15"), "%s", line);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_tls(s, 0);
}
END_TEST

/*
 * The next hop writes a fake reply in clear right after its 220 to
 * STARTTLS. The proxy must throw it away, not read it as the answer to
 * its next command, and still deliver over TLS.
 */
START_TEST(test_inject_from_next_hop)
{
	char *dir = pki(NULL), *out, *line;
	struct sink *s = tls_sink(dir, "downstream", "--tls-inject",
	    "250 fake\\r\\n", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir, NULL);

	H_CHECK(send_via(px->port, &out, "--starttls", (char *)NULL) == 0, "%s",
	    out);
	sink_wait_idle(s);
	H_CHECK(sink_events(s, "event=tls-inject bytes=10") == 1,
	    "the sink did not inject");
	line = proxy_wait_log(px, "event=tls-discard");
	H_CHECK(h_kv_has(line, "bytes", "10") &&
	    h_kv_has(line, "hop", h_strf("127.0.0.1:%d", s->port)), "%s", line);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	check_sink_tls(s, 0);
	check_proxy_tls(px, "outbound");
}
END_TEST

/* ---- required_inbound ------------------------------------------------------ */

START_TEST(test_required_inbound)
{
	char *dir = pki(NULL), *text;
	struct sink *s = tls_sink(dir, "downstream", (char *)NULL);
	struct proxy *px = tls_proxy(&s->port, 1, dir,
	    "  required_inbound: true\n");
	struct cli *c;
	struct tc *t;

	c = cli_open(px->port);
	cli_cmd(c, 530, "5.7.0", "MAIL FROM:<alice@corp.test>");
	cli_quit(c);

	/* Over TLS the same MAIL is fine. */
	t = tc_connect(px->port);
	H_CHECK(tc_reply(t, &text) == 220, "%s", text);
	tc_cmd(t, 250, "EHLO client.test");
	tc_cmd(t, 220, "STARTTLS");
	tc_handshake(t, h_strf("%s/trust.pem", dir));
	tc_cmd(t, 250, "EHLO client.test");
	tc_cmd(t, 250, "MAIL FROM:<alice@corp.test>");
	tc_cmd(t, 221, "QUIT");
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0, "%zu messages", sink_count(s));
}
END_TEST

/* ---- the proxy's own key -------------------------------------------------- */

/* A passphrase file next to the PKI. */
static char *
passfile(const char *pass)
{
	char *path = h_strf("%s/pass", h_tmpdir("pass"));

	h_write_file(path, h_strf("%s\n", pass), strlen(pass) + 1);
	return path;
}

/* The configuration file for --check, and the line key_file is on. */
static char *
check_config(const char *tls, int *key_line)
{
	int port = h_free_port();
	char *yaml = h_yaml(&port, 1, tls);
	char *path = h_strf("%s/mailprevent.yaml", h_tmpdir("check"));
	const char *p = strstr(yaml, "\n  key_file:");

	H_CHECK(p != NULL, "no key_file in %s", yaml);
	*key_line = (int)h_count(yaml, (size_t)(p - yaml) + 1, "\n", 1) + 1;
	h_write_file(path, yaml, strlen(yaml));
	return path;
}

/*
 * --check must fail, naming the key_file line and saying why: why, or
 * alt (not NULL) for a problem OpenSSL words in another way.
 */
static void
check_refused(const char *tls, const char *why, const char *alt)
{
	char *argv[] = { h_strf("%s/mailprevent", h_bindir()), "-c", NULL,
	    "--check", NULL };
	char *out, *cfg;
	int line;

	argv[2] = cfg = check_config(tls, &line);
	H_CHECK(run("mailprevent-check", argv, &out) != 0, "--check passed: "
	    "%s", out);
	H_CHECK(strstr(out, h_strf("%s:%d: ", cfg, line)) != NULL,
	    "no %s:%d in: %s", cfg, line, out);
	H_CHECK(strstr(out, why) != NULL || (alt && strstr(out, alt) != NULL),
	    "no \"%s\" in: %s", why, out);
}

static void
check_encrypted_key(const char *dir)
{
	size_t len;
	char *key = h_read_file(h_strf("%s/proxy.key", dir), &len);

	H_CHECK(key != NULL && strstr(key, "BEGIN ENCRYPTED PRIVATE KEY"),
	    "the proxy's key is not encrypted");
}

/* The sink takes no passphrase: decrypt its key (certs-gen passwd). */
static void
decrypt_key(const char *dir, const char *leaf, const char *pf)
{
	char *argv[] = { h_strf("%s/certs-gen", h_bindir()), "passwd",
	    "--key", h_strf("%s/%s.key", dir, leaf), "--passphrase-file",
	    (char *)pf, "--no-passphrase", NULL };
	char *out;

	H_CHECK(run("certs-gen-passwd", argv, &out) == 0, "%s", out);
}

START_TEST(test_passphrase_file)
{
	char *pf = passfile(PASSPHRASE), *dir = pki(pf), *out;
	struct sink *s;
	struct proxy *px;

	check_encrypted_key(dir);
	decrypt_key(dir, "downstream", pf);
	s = tls_sink(dir, "downstream", (char *)NULL);
	px = tls_proxy(&s->port, 1, dir, h_strf("  key_passphrase_file: "
	    "\"%s\"\n", pf));
	H_CHECK(send_via(px->port, &out, "--starttls", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 0, "%s", out);
	sink_wait_idle(s);
	check_sink_tls(s, 0);
}
END_TEST

START_TEST(test_passphrase_env)
{
	char *pf = passfile(PASSPHRASE), *dir = pki(pf), *out;
	struct sink *s;
	struct proxy *px;

	check_encrypted_key(dir);
	decrypt_key(dir, "downstream", pf);
	s = tls_sink(dir, "downstream", (char *)NULL);
	/* The proxy is our child: it inherits the variable. */
	H_CHECK(setenv("MP_TEST_KEY_PASS", PASSPHRASE, 1) == 0, "setenv");
	px = tls_proxy(&s->port, 1, dir,
	    "  key_passphrase_env: MP_TEST_KEY_PASS\n");
	H_CHECK(send_via(px->port, &out, "--starttls", "--tls-trust",
	    h_strf("%s/trust.pem", dir), (char *)NULL) == 0, "%s", out);
	sink_wait_idle(s);
	check_sink_tls(s, 0);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	char *dir = pki(passfile(PASSPHRASE));

	check_refused(tls_yaml(dir, h_strf("  key_passphrase_file: \"%s\"\n",
	    passfile("not the passphrase"))), "cannot load key", NULL);
	/* No passphrase at all for an encrypted key. */
	check_refused(tls_yaml(dir, NULL), "cannot load key", NULL);
}
END_TEST

START_TEST(test_key_does_not_match)
{
	char *dir = pki(NULL);

	check_refused(h_strf("tls:\n"
	    "  cert_file: \"%s/downstream-wrongkey.chain.pem\"\n"
	    "  key_file: \"%s/downstream-wrongkey.key\"\n"
	    "  trust_file: \"%s/trust.pem\"\n", dir, dir, dir),
	    "does not match", "key values mismatch");
}
END_TEST

START_TEST(test_key_world_readable)
{
	char *dir = pki(NULL);

	H_CHECK(chmod(h_strf("%s/proxy.key", dir), 0644) == 0, "chmod");
	check_refused(tls_yaml(dir, NULL), "readable by every user", NULL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_tls");
	TCase *tc = h_tcase("forward");

	tcase_add_checked_fixture(tc, NULL, tc_teardown);
	tcase_add_test(tc, test_tls_both_sides);
	tcase_add_test(tc, test_plain_upstream_plain_downstream);
	tcase_add_test(tc, test_outbound_always);
	tcase_add_test(tc, test_outbound_never);
	suite_add_tcase(s, tc);

	tc = h_tcase("bad_hops");
	tcase_add_checked_fixture(tc, NULL, tc_teardown);
	tcase_add_loop_test(tc, test_bad_next_hop, 0,
	    (int)(sizeof(bad_hops) / sizeof(bad_hops[0])));
	tcase_add_test(tc, test_second_hop_after_bad_certificate);
	suite_add_tcase(s, tc);

	tc = h_tcase("injection");
	tcase_add_checked_fixture(tc, NULL, tc_teardown);
	tcase_add_test(tc, test_inject_inbound);
	tcase_add_test(tc, test_inject_inbound_sender);
	tcase_add_test(tc, test_inject_from_next_hop);
	tcase_add_test(tc, test_required_inbound);
	suite_add_tcase(s, tc);

	tc = h_tcase("keys");
	tcase_add_checked_fixture(tc, NULL, tc_teardown);
	tcase_add_test(tc, test_passphrase_file);
	tcase_add_test(tc, test_passphrase_env);
	tcase_add_test(tc, test_wrong_passphrase);
	tcase_add_test(tc, test_key_does_not_match);
	tcase_add_test(tc, test_key_world_readable);
	suite_add_tcase(s, tc);
	return h_run(s);
}
