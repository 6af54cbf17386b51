/*
 * sim_test: mta-sim itself. The sink is driven over a raw socket and judged
 * by its files (messages, envelopes, wire captures, events.log); the sender
 * is run against a sink and judged by its exit status, its report and what
 * the sink recorded. No proxy is involved. The TLS tests make their
 * certificates with bin/certs-gen.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/*
 * Processes that are meant to exit (send, --help) run here rather than
 * through proc_start(): the harness counts any child that exits by itself
 * as a crash. Same rules: poll() with a deadline, never a sleep, and the
 * child dies with the test.
 */
struct run {
	pid_t		 pid;
	int		 fd[2];		/* stdout, stderr */
	struct buf	 out[2];
};

static void
run_spawn(struct run *r, char *const argv[])
{
	int o[2], e[2], devnull;

	memset(r, 0, sizeof(*r));
	H_CHECK(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0, "pipe");
	H_CHECK((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) != -1,
	    "/dev/null");
	fflush(stdout);
	fflush(stderr);
	H_CHECK((r->pid = fork()) != -1, "fork");
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(devnull, STDIN_FILENO);
		dup2(o[1], STDOUT_FILENO);
		dup2(e[1], STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(devnull);
	close(o[1]);
	close(e[1]);
	r->fd[0] = o[0];
	r->fd[1] = e[0];
}

/*
 * Read the child's output until stdout holds `until` (NULL: until both
 * streams end). Returns 1 when it got there before the deadline.
 */
static int
run_read(struct run *r, const char *until, long long deadline)
{
	char tmp[16384];
	ssize_t n;
	int i;

	for (;;) {
		struct pollfd pfd[2];
		int nfd = 0, idx[2];

		if (until != NULL && r->out[0].len > 0 &&
		    memmem(r->out[0].data, r->out[0].len, until,
		    strlen(until)) != NULL)
			return 1;
		for (i = 0; i < 2; i++)
			if (r->fd[i] != -1) {
				pfd[nfd].fd = r->fd[i];
				pfd[nfd].events = POLLIN;
				idx[nfd++] = i;
			}
		if (nfd == 0)
			return until == NULL;
		if (h_now_ms() >= deadline ||
		    poll(pfd, (nfds_t)nfd, (int)(deadline - h_now_ms())) <= 0)
			return 0;
		for (i = 0; i < nfd; i++) {
			if (pfd[i].revents == 0)
				continue;
			n = read(pfd[i].fd, tmp, sizeof(tmp));
			if (n > 0)
				buf_append(&r->out[idx[i]], tmp, (size_t)n);
			else if (n == 0 || errno != EINTR) {
				close(r->fd[idx[i]]);
				r->fd[idx[i]] = -1;
			}
		}
	}
}

/* Wait for the child to close its output and exit; its exit status. */
static int
run_finish(struct run *r)
{
	int status, done;

	done = run_read(r, NULL, h_now_ms() + H_DEADLINE_MS);
	if (!done)
		kill(r->pid, SIGKILL);
	/* Both pipes ended (or it was just killed): this returns promptly. */
	H_CHECK(waitpid(r->pid, &status, 0) == r->pid, "waitpid");
	buf_cstr(&r->out[0]);
	buf_cstr(&r->out[1]);
	h_keep(r->out[0].data);
	h_keep(r->out[1].data);
	H_CHECK(done, "%s did not finish; stdout: %s stderr: %s", "mta-sim",
	    r->out[0].data ? r->out[0].data : "",
	    r->out[1].data ? r->out[1].data : "");
	H_CHECK(WIFEXITED(status), "mta-sim died (status %d)", status);
	return WEXITSTATUS(status);
}

/* Run "mta-sim send args..." to completion; returns its exit status. */
static int
run_send(char **out, ...)
{
	char *argv[64];
	const char *a;
	struct run r;
	size_t n = 0;
	va_list ap;
	int rc;

	argv[n++] = h_strf("%s/mta-sim", h_bindir());
	argv[n++] = "send";
	va_start(ap, out);
	while ((a = va_arg(ap, const char *)) != NULL && n < 63)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	run_spawn(&r, argv);
	rc = run_finish(&r);
	if (out != NULL)
		*out = r.out[0].data ? r.out[0].data : "";
	return rc;
}

/* The summary line of a send run. */
static const char *
summary(const char *out)
{
	const char *p = strstr(out, "sent=");

	H_CHECK(p != NULL, "no summary line in: %s", out);
	return h_keep(strndup(p, strcspn(p, "\n")));
}

/* The sink's events.log, whole. */
static char *
events(struct sink *s)
{
	char *log = sink_read(s, "events.log", NULL);

	H_CHECK(log != NULL, "no events.log");
	return log;
}

/*
 * One session by hand: every byte sent is known, so the wire capture and
 * the stored message can be compared byte for byte.
 */
START_TEST(test_sink_records_exactly)
{
	static const char content[] =
	    "From: <a@x>\r\nTo: <b@y>\r\nSubject: exact\r\n\r\n"
	    ".leading dot\r\n"
	    "..two dots\r\n"
	    ".\r\n"
	    "8bit \xc3\xa9t\xc3\xa9 and a tab\there\r\n"
	    "last line\r\n";
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct buf wire = BUF_INIT;
	char *stuffed, *eml, *env, *raw, *log;
	size_t slen, elen, rlen;
	struct cli *c;

#define SEND(str) do {							\
	cli_send(c, str, strlen(str));					\
	buf_appends(&wire, str);					\
} while (0)

	c = cli_connect(s->port);
	cli_expect(c, 220, NULL);
	SEND("EHLO client.test\r\n");
	cli_expect(c, 250, NULL);
	SEND("MAIL FROM:<a@x> SIZE=300 BODY=8BITMIME\r\n");
	cli_expect(c, 250, "2.1.0");
	SEND("RCPT TO:<b@y> NOTIFY=SUCCESS,FAILURE\r\n");
	cli_expect(c, 250, "2.1.5");
	SEND("RCPT TO:<c@y>\r\n");
	cli_expect(c, 250, "2.1.5");
	SEND("DATA\r\n");
	cli_expect(c, 354, NULL);
	stuffed = h_stuff(content, sizeof(content) - 1, &slen);
	cli_send(c, stuffed, slen);
	buf_append(&wire, stuffed, slen);
	cli_expect(c, 250, "2.0.0");

	/* Written before the 250: no waiting needed. */
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
	eml = sink_eml(s, 0, &elen);
	H_CHECK_BYTES(eml, elen, content, sizeof(content) - 1, "stored message");
	env = sink_env(s, 0);
	H_CHECK(h_env_line(env, "helo client.test") != NULL, "%s", env);
	H_CHECK(strcmp(h_env_line(env, "mail-from "),
	    "mail-from <a@x> SIZE=300 BODY=8BITMIME") == 0, "%s", env);
	H_CHECK(h_env_count(env, "rcpt ") == 2, "%s", env);
	H_CHECK(strcmp(h_env_line(env, "rcpt "),
	    "rcpt <b@y> NOTIFY=SUCCESS,FAILURE") == 0, "%s", env);
	H_CHECK(strstr(env, "\nrcpt <c@y>\n") != NULL, "%s", env);
	H_CHECK(h_env_line(env, "client 127.0.0.1:") != NULL, "%s", env);
	H_CHECK(h_env_line(env, "session 1") != NULL, "%s", env);
	H_CHECK(h_env_line(env, "flags") == NULL, "clean message flagged: %s",
	    env);

	SEND("QUIT\r\n");
	cli_expect(c, 221, "2.0.0");
	H_CHECK(cli_wait_closed(c), "sink kept the connection after QUIT");
	sink_wait_idle(s);

	raw = sink_read(s, "wire-000001.raw", &rlen);
	H_CHECK(raw != NULL, "no wire capture");
	H_CHECK_BYTES(raw, rlen, wire.data, wire.len, "wire capture");

	log = events(s);
	H_CHECK(strstr(log, "session=1 event=connect\n"
	    "session=1 event=reply code=220\n"
	    "session=1 event=cmd line=\"EHLO client.test\"\n"
	    "session=1 event=reply code=250\n"
	    "session=1 event=cmd line=\"MAIL FROM:<a@x> SIZE=300 BODY=8BITMIME\"\n"
	    "session=1 event=reply code=250\n") != NULL, "%s", log);
	H_CHECK(strstr(log, "session=1 event=message file=msg-000001\n"
	    "session=1 event=reply code=250\n"
	    "session=1 event=cmd line=\"QUIT\"\n"
	    "session=1 event=reply code=221\n"
	    "session=1 event=close\n") != NULL, "%s", log);
	buf_free(&wire);
#undef SEND
}
END_TEST

START_TEST(test_sink_empty_and_flagged)
{
	static const char bad[] = "Subject: bare\r\n\r\nline\nwith LF\r\nnul\0here\r\n";
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct cli *c = cli_open(s->port);
	char *eml, *env;
	size_t elen;

	/* A "." right after 354 ends an empty message. */
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<>");
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<postmaster>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, ".\r\n", 3);
	cli_expect(c, 250, "2.0.0");
	eml = sink_eml(s, 0, &elen);
	H_CHECK(elen == 0, "empty message stored as %zu bytes", elen);
	H_CHECK(h_env_line(sink_env(s, 0), "mail-from <>") != NULL, "%s",
	    sink_env(s, 0));

	/* A sink records what it got, and says what was wrong with it. */
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, bad, sizeof(bad) - 1);
	cli_send(c, ".\r\n", 3);
	cli_expect(c, 250, "2.0.0");
	H_CHECK(sink_count(s) == 2, "%zu", sink_count(s));
	eml = sink_eml(s, 1, &elen);
	H_CHECK_BYTES(eml, elen, bad, sizeof(bad) - 1, "flagged message");
	env = sink_env(s, 1);
	H_CHECK(h_env_line(env, "flags BARE_LF,NUL") != NULL, "%s", env);
	cli_quit(c);
}
END_TEST

START_TEST(test_sink_rcpt_rule)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "rcpt:Bad@X=reply:550 5.1.1 no such user", (char *)NULL);
	struct cli *c = cli_open(s->port);
	struct cli_reply *r;
	char *env;

	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	r = cli_cmd(c, 550, "5.1.1", "RCPT TO:<bad@x>");
	H_CHECK(strcmp(r->text, "no such user") == 0, "%s", r->text);
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<good@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, "Subject: r\r\n\r\nx\r\n.\r\n", 20);
	cli_expect(c, 250, "2.0.0");
	env = sink_env(s, 0);
	H_CHECK(h_env_count(env, "rcpt ") == 1, "%s", env);
	H_CHECK(strcmp(h_env_line(env, "rcpt "), "rcpt <good@y>") == 0, "%s",
	    env);
	/* The rule holds for every occurrence, not only the first. */
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_cmd(c, 550, "5.1.1", "RCPT TO:<BAD@x>");
	cli_cmd(c, 554, "5.5.1", "DATA");
	cli_quit(c);
	H_CHECK(sink_events(s, "event=rule when=rcpt action=reply") == 2,
	    "%s", events(s));
}
END_TEST

START_TEST(test_sink_dot_rule_not_accepted)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "dot#1=reply:451 4.3.0 try again later", (char *)NULL);
	struct cli *c = cli_open(s->port);
	struct cli_reply *r;
	char *rej;
	size_t len;

	r = cli_mail(c, "a@x", NULL, "b@y", h_msg("first"),
	    strlen(h_msg("first")));
	H_CHECK(r->code == 451 && strcmp(r->enh, "4.3.0") == 0, "%d %s %s",
	    r->code, r->enh, r->text);
	H_CHECK(sink_count(s) == 0, "refused message recorded as accepted");
	H_CHECK(sink_count_rejected(s) == 1, "%zu", sink_count_rejected(s));
	rej = sink_read(s, "msg-000001.rejected.eml", &len);
	H_CHECK(rej != NULL, "no msg-000001.rejected.eml");
	H_CHECK_BYTES(rej, len, h_msg("first"), strlen(h_msg("first")),
	    "rejected message");
	H_CHECK(sink_read(s, "msg-000001.env", NULL) == NULL,
	    "envelope written for a refused message");

	/* #1 only: the next one goes through, in the same session. */
	r = cli_mail(c, "a@x", NULL, "b@y", h_msg("second"),
	    strlen(h_msg("second")));
	H_CHECK(r->code == 250, "%d %s %s", r->code, r->enh, r->text);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	H_CHECK(strstr(sink_eml(s, 0, NULL), "Subject: second\r\n") != NULL,
	    "wrong message accepted");
	cli_quit(c);
}
END_TEST

START_TEST(test_sink_drop_at_body)
{
	struct sink *s = sink_start(NULL, "--rule", "body=drop", (char *)NULL);
	struct cli *c = cli_open(s->port);
	char *raw;
	size_t len;

	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_sendf(c, "Subject: dropped\r\n\r\nbody\r\n");
	H_CHECK(cli_wait_closed(c), "the sink did not drop the connection");
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 0,
	    "a dropped message was recorded");
	H_CHECK(sink_events(s, "event=rule when=body action=drop") == 1, "%s",
	    events(s));
	/* No reply at all after the 354. */
	H_CHECK(strstr(events(s), "event=reply code=354\n"
	    "session=1 event=rule when=body action=drop") != NULL, "%s",
	    events(s));
	raw = sink_read(s, "wire-000001.raw", &len);
	H_CHECK(raw != NULL && h_memmem(raw, len, "DATA\r\nS") != NULL,
	    "the first content bytes are not in the wire capture");
}
END_TEST

START_TEST(test_sink_no_ehlo)
{
	struct sink *s = sink_start(NULL, "--no-ehlo", (char *)NULL);
	struct cli *c = cli_connect(s->port);
	struct cli_reply *r;

	cli_expect(c, 220, NULL);
	cli_cmd(c, 502, "5.5.1", "EHLO client.test");
	cli_cmd(c, 503, "5.5.1", "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "HELO old.client.test");
	r = cli_mail(c, "a@x", NULL, "b@y", h_msg("helo"),
	    strlen(h_msg("helo")));
	H_CHECK(r->code == 250, "%d %s", r->code, r->text);
	H_CHECK(h_env_line(sink_env(s, 0), "helo old.client.test") != NULL,
	    "%s", sink_env(s, 0));
	cli_quit(c);
}
END_TEST

START_TEST(test_sink_ehlo_extensions)
{
	struct sink *s = sink_start(NULL, "--no-ext", "dsn", "--no-ext",
	    "ENHANCEDSTATUSCODES", "--max-message-size", "2000", "--hostname",
	    "sink.test", (char *)NULL);
	struct cli *c = cli_connect(s->port);
	struct cli_reply *r;
	char *big;

	cli_expect(c, 220, NULL);
	r = cli_cmd(c, 250, NULL, "EHLO client.test");
	H_CHECK(strcmp(r->text, "sink.test\nPIPELINING\nSIZE 2000\n8BITMIME")
	    == 0, "EHLO said: %s", r->text);
	/* Without ENHANCEDSTATUSCODES the sink's replies carry none. */
	r = cli_cmd(c, 552, NULL, "MAIL FROM:<a@x> SIZE=2001");
	H_CHECK(r->enh[0] == '\0', "enhanced code %s", r->enh);
	cli_cmd(c, 250, "", "MAIL FROM:<a@x> SIZE=2000");
	cli_cmd(c, 250, "", "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	big = h_keep(malloc(3000));
	memset(big, 'x', 2998);
	memcpy(big + 2998, "\r\n", 2);
	cli_send(c, big, 3000);
	cli_send(c, ".\r\n", 3);
	cli_expect(c, 552, "");
	H_CHECK(sink_count(s) == 0, "an oversized message was accepted");
	cli_quit(c);
}
END_TEST

START_TEST(test_sink_pipelining_in_order)
{
	/* The first MAIL waits: its answer must still come first. */
	struct sink *s = sink_start(NULL, "--rule", "mail#1=delay:0.2",
	    "--rule", "rcpt:bad@x=reply:550 5.1.1 nope", (char *)NULL);
	struct cli *c = cli_open(s->port);
	char *env;

	cli_sendf(c, "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<bad@x>\r\n"
	    "RCPT TO:<c@y>\r\nDATA\r\n");
	cli_expect(c, 250, "2.1.0");
	cli_expect(c, 250, "2.1.5");
	cli_expect(c, 550, "5.1.1");
	cli_expect(c, 250, "2.1.5");
	cli_expect(c, 354, NULL);
	cli_sendf(c, "Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n");
	cli_expect(c, 250, "2.0.0");
	cli_expect(c, 250, "2.0.0");
	cli_expect(c, 250, "2.0.0");
	cli_expect(c, 221, "2.0.0");
	H_CHECK(cli_wait_closed(c), "not closed after QUIT");
	env = sink_env(s, 0);
	H_CHECK(h_env_count(env, "rcpt ") == 2, "%s", env);
	H_CHECK(sink_events(s, "event=rule when=mail action=delay") == 1,
	    "%s", events(s));
}
END_TEST

START_TEST(test_sink_greeting_and_occurrences)
{
	struct sink *s = sink_start(NULL, "--greeting", "554 5.3.2 not now",
	    (char *)NULL);
	struct sink *s2 = sink_start(NULL, "--rule",
	    "mail#2=reply:421 4.3.2 busy", (char *)NULL);
	struct cli *c = cli_connect(s->port);
	struct cli_reply *r;

	r = cli_expect(c, 554, "5.3.2");
	H_CHECK(strcmp(r->text, "not now") == 0, "%s", r->text);
	cli_cmd(c, 503, "5.5.1", "EHLO client.test");
	cli_quit(c);

	/* #2 counts over sessions: the second MAIL overall gets the 421. */
	c = cli_open(s2->port);
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_quit(c);
	c = cli_open(s2->port);
	cli_cmd(c, 421, "4.3.2", "MAIL FROM:<a@x>");
	H_CHECK(cli_wait_closed(c), "still open after 421");
	c = cli_open(s2->port);
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_quit(c);
}
END_TEST

START_TEST(test_sink_hang)
{
	struct sink *s = sink_start(NULL, "--rule", "mail=hang", (char *)NULL);
	struct cli *c = cli_open(s->port);

	cli_sendf(c, "MAIL FROM:<a@x>\r\nQUIT\r\n");
	sink_wait_events(s, "event=rule when=mail action=hang", 1);
	cli_close(c);
	sink_wait_idle(s);
	/* The greeting and the EHLO reply, then nothing. */
	H_CHECK(sink_events(s, "event=reply") == 2, "%s", events(s));
	H_CHECK(sink_events(s, "line=\"QUIT\"") == 0, "%s", events(s));
}
END_TEST

START_TEST(test_sink_sigterm)
{
	char *dir = h_tmpdir("term"), *line, *log;
	struct cli *c;
	struct run r;
	int port;

	run_spawn(&r, (char *[]){ h_strf("%s/mta-sim", h_bindir()), "sink",
	    "--listen", "127.0.0.1:0", "--dir", dir, NULL });
	H_CHECK(run_read(&r, "\n", h_now_ms() + H_DEADLINE_MS),
	    "no listening line");
	line = h_keep(strndup(r.out[0].data, r.out[0].len));
	H_CHECK(sscanf(line, "listening 127.0.0.1:%d\n", &port) == 1 &&
	    port > 0, "%s", line);
	c = cli_open(port);
	kill(r.pid, SIGTERM);
	H_CHECK(run_finish(&r) == 0, "exit status after SIGTERM");
	H_CHECK(cli_wait_closed(c), "session left open");
	log = h_read_file(h_strf("%s/events.log", dir), NULL);
	H_CHECK(log != NULL && strstr(log, "session=1 event=close\n"), "%s",
	    log ? log : "no events.log");
}
END_TEST

START_TEST(test_send_20_over_4)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	char *out, **msgs;
	size_t n, i, w;
	int seen[5] = { 0 };

	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--rcpt", "<c@y>", "--count", "20",
	    "--sessions", "4", "--size", "3000", "--quiet", (char *)NULL) == 0,
	    "exit status, output: %s", out);
	H_CHECK(strcmp(summary(out),
	    "sent=20 accepted=20 tempfail=0 permfail=0 errors=0") == 0, "%s",
	    out);
	H_CHECK(strstr(out, "cmd=") == NULL, "--quiet printed replies: %s", out);
	sink_wait_idle(s);
	msgs = sink_messages(s, &n);
	H_CHECK(n == 20, "%zu messages at the sink", n);
	sink_wires(s, &w);
	H_CHECK(w == 4, "%zu connections", w);
	for (i = 0; i < n; i++) {
		char *env = sink_env(s, i), *sess;
		size_t len;
		char *eml = sink_eml(s, i, &len);

		H_CHECK(h_env_count(env, "rcpt ") == 2, "%s: %s", msgs[i], env);
		sess = h_env_line(env, "session ");
		H_CHECK(sess != NULL && atoi(sess + 8) >= 1 &&
		    atoi(sess + 8) <= 4, "%s", env);
		seen[atoi(sess + 8)]++;
		H_CHECK(strstr(eml, "\r\nMessage-ID: <") != NULL &&
		    strncmp(eml, "Date: ", 6) == 0 &&
		    strstr(eml, "\r\nTo: b@y, c@y\r\n") != NULL, "%s", eml);
		H_CHECK(len >= 3000 && len < 4000, "%s: %zu bytes", msgs[i], len);
	}
	for (i = 1; i <= 4; i++)
		H_CHECK(seen[i] == 5, "session %zu sent %d messages", i, seen[i]);
}
END_TEST

START_TEST(test_send_data_file_and_report)
{
	static const char file[] = "Subject: from a file\n\n.dot line\nplain\n";
	static const char want[] = "Subject: from a file\r\n\r\n.dot line\r\n"
	    "plain\r\n";
	struct sink *s = sink_start(NULL, "--no-ext", "PIPELINING",
	    (char *)NULL);
	char *path = h_strf("%s/msg.txt", h_tmpdir("data"));
	char *out, *eml;
	size_t len;

	h_write_file(path, file, sizeof(file) - 1);
	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--data", path, "--helo",
	    "sender.test", "--mail-param", "SIZE=100", "--rcpt-param",
	    "NOTIFY=NEVER", (char *)NULL) == 0, "%s", out);
	eml = sink_eml(s, 0, &len);
	H_CHECK_BYTES(eml, len, want, sizeof(want) - 1, "message from --data");
	H_CHECK(h_env_line(sink_env(s, 0), "mail-from <a@x> SIZE=100"), "%s",
	    sink_env(s, 0));
	H_CHECK(h_env_line(sink_env(s, 0), "rcpt <b@y> NOTIFY=NEVER"), "%s",
	    sink_env(s, 0));
	H_CHECK(h_env_line(sink_env(s, 0), "helo sender.test"), "%s",
	    sink_env(s, 0));
	H_CHECK(strstr(out, "session=1 msg=1 cmd=RCPT code=250 "
	    "text=\"2.1.5 Ok\"\n") != NULL, "%s", out);
	H_CHECK(strstr(out, "session=1 msg=1 cmd=DOT code=250 ") != NULL, "%s",
	    out);
	H_CHECK(strcmp(summary(out),
	    "sent=1 accepted=1 tempfail=0 permfail=0 errors=0") == 0, "%s", out);
}
END_TEST

START_TEST(test_send_helo_fallback)
{
	struct sink *s = sink_start(NULL, "--no-ehlo", (char *)NULL);
	char *out;

	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--count", "2", (char *)NULL) == 0,
	    "%s", out);
	H_CHECK(strstr(out, "cmd=EHLO code=502") != NULL &&
	    strstr(out, "cmd=HELO code=250") != NULL, "%s", out);
	H_CHECK(sink_count(s) == 2, "%zu", sink_count(s));
}
END_TEST

START_TEST(test_send_failures_counted)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "mail#1=reply:451 4.3.0 later", "--rule",
	    "rcpt:no@y=reply:550 5.1.1 unknown", "--rule",
	    "dot#2=reply:554 5.7.1 refused", (char *)NULL);
	char *to = h_strf("127.0.0.1:%d", s->port);
	char *out;

	/* 1: MAIL 451; 2: dot 554; 3: accepted. */
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--count", "3", (char *)NULL) == 1, "%s", out);
	H_CHECK(strcmp(summary(out),
	    "sent=3 accepted=1 tempfail=1 permfail=1 errors=0") == 0, "%s", out);
	/* Every recipient refused, pipelined: no content, RSET, permfail. */
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "no@y",
	    (char *)NULL) == 1, "%s", out);
	H_CHECK(strcmp(summary(out),
	    "sent=1 accepted=0 tempfail=0 permfail=1 errors=0") == 0, "%s", out);
	H_CHECK(strstr(out, "cmd=DATA code=554") != NULL &&
	    strstr(out, "cmd=RSET code=250") != NULL, "%s", out);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	/* Nobody listening: errors. */
	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", h_free_port()),
	    "--from", "a@x", "--rcpt", "b@y", "--count", "3", "--sessions", "2",
	    (char *)NULL) == 1, "%s", out);
	H_CHECK(strcmp(summary(out),
	    "sent=0 accepted=0 tempfail=0 permfail=0 errors=3") == 0, "%s", out);
}
END_TEST

START_TEST(test_send_timeout)
{
	struct sink *s = sink_start(NULL, "--rule", "dot=hang", (char *)NULL);
	char *out;

	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--count", "2", "--timeout",
	    "0.5", (char *)NULL) == 1, "%s", out);
	H_CHECK(strstr(out, "cmd=DOT error=timeout") != NULL, "%s", out);
	H_CHECK(strcmp(summary(out),
	    "sent=1 accepted=0 tempfail=0 permfail=0 errors=2") == 0, "%s", out);
	/* Hung at the dot: kept aside, never accepted. */
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 1, "%zu %zu",
	    sink_count(s), sink_count_rejected(s));
}
END_TEST

START_TEST(test_usage)
{
	char *sim = h_strf("%s/mta-sim", h_bindir());
	struct run r;

	run_spawn(&r, (char *[]){ sim, "--help", NULL });
	H_CHECK(run_finish(&r) == 0, "--help failed");
	H_CHECK(strstr(r.out[0].data, "mta-sim sink") &&
	    strstr(r.out[0].data, "mta-sim send"), "%s", r.out[0].data);

	run_spawn(&r, (char *[]){ sim, "sink", "--help", NULL });
	H_CHECK(run_finish(&r) == 0, "sink --help failed");
	H_CHECK(strstr(r.out[0].data, "--rule"), "%s", r.out[0].data);

	H_CHECK(run_send(NULL, "--to", "127.0.0.1:25", (char *)NULL) == 2,
	    "send without --from/--rcpt");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--rule", "mail=explode", NULL });
	H_CHECK(run_finish(&r) == 2, "a bad rule was accepted");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--no-ext", "TURBO", NULL });
	H_CHECK(run_finish(&r) == 2, "an unknown extension was accepted");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--greeting", "99 hello", NULL });
	H_CHECK(run_finish(&r) == 2, "a bad greeting was accepted");
	/* A mistake in the environment, not in the command line: status 1. */
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--listen", h_strf("127.0.0.1:%d", sink_start(NULL,
	    (char *)NULL)->port), NULL });
	H_CHECK(run_finish(&r) == 1, "listening on a port in use");
	H_CHECK(strstr(r.out[1].data, "cannot listen on") != NULL, "%s",
	    r.out[1].data);
	run_spawn(&r, (char *[]){ sim, "nosuchrole", NULL });
	H_CHECK(run_finish(&r) == 2, "an unknown role was accepted");
}
END_TEST

/* ---- TLS ---------------------------------------------------------------- */

/* certs-gen's default PKI (each leaf names 127.0.0.1) in a fresh directory. */
static char *
pki(void)
{
	char *dir = h_strf("%s/pki", h_tmpdir("certs"));
	struct run r;

	run_spawn(&r, (char *[]){ h_strf("%s/certs-gen", h_bindir()), "pki",
	    "--out", dir, NULL });
	H_CHECK(run_finish(&r) == 0, "certs-gen: %s", r.out[1].data);
	return dir;
}

#define tls_sink(dir, ...)						\
	sink_start(NULL, "--tls-cert", h_strf("%s/downstream.chain.pem", dir), \
	    "--tls-key", h_strf("%s/downstream.key", dir), __VA_ARGS__)

/* No wire file of the sink holds a MAIL command. */
static void
no_mail_on_wire(struct sink *s)
{
	size_t n, i, len;
	char **w = sink_wires(s, &n), *raw;

	H_CHECK(n >= 1, "no session at all");
	for (i = 0; i < n; i++) {
		raw = sink_read(s, w[i], &len);
		H_CHECK(raw != NULL && h_memmem(raw, len, "MAIL FROM") == NULL,
		    "%s: %s", w[i], raw ? raw : "");
	}
}

START_TEST(test_sink_tls_records)
{
	char *dir = pki(), *out, *env;
	struct sink *s = tls_sink(dir, (char *)NULL);
	const char *to = h_strf("127.0.0.1:%d", s->port);

	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls", "--tls-trust", h_strf("%s/trust.pem", dir),
	    (char *)NULL) == 0, "%s", out);
	H_CHECK(strcmp(summary(out), "sent=1 accepted=1 tempfail=0 permfail=0 "
	    "errors=0 tls=1") == 0, "%s", out);
	H_CHECK(strstr(out, "session=1 msg=0 cmd=TLS proto=TLSv1.") != NULL &&
	    strstr(out, " verify=ok peer=downstream.mailprevent.test\n") != NULL,
	    "%s", out);
	/* The second EHLO, over TLS, no longer offers it. */
	H_CHECK(h_count(out, strlen(out), "STARTTLS\"", 9) == 1, "%s", out);

	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    (char *)NULL) == 0, "%s", out);
	H_CHECK(strcmp(summary(out), "sent=1 accepted=1 tempfail=0 permfail=0 "
	    "errors=0") == 0, "%s", out);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 2, "%zu messages", sink_count(s));
	env = sink_env(s, 0);
	H_CHECK(strncmp(h_env_line(env, "tls "), "tls TLSv1.", 10) == 0 &&
	    strcmp(h_env_line(env, "session "), "session 1") == 0, "%s", env);
	env = sink_env(s, 1);
	H_CHECK(strcmp(h_env_line(env, "tls "), "tls none") == 0, "%s", env);
	H_CHECK(sink_events(s, "session=1 event=tls proto=TLSv1.") == 1 &&
	    sink_events(s, "event=tls ") == 1, "%s", events(s));
}
END_TEST

/*
 * STARTTLS and EHLO in one write: the sink answers the STARTTLS only,
 * throws the EHLO away and wants a new one over TLS (the sender's probe
 * gets 503 to MAIL).
 */
START_TEST(test_sink_tls_discards_and_resets)
{
	char *dir = pki(), *out;
	struct sink *s = tls_sink(dir, (char *)NULL);

	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--starttls-inject",
	    (char *)NULL) == 0, "%s", out);
	H_CHECK(strstr(out, "session=1 msg=0 cmd=MAIL code=503 ") != NULL &&
	    strstr(out, "accepted=1") != NULL, "%s", out);
	/* The probe's MAIL left nothing behind either: one message. */
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	H_CHECK(sink_events(s, "event=tls-discard bytes=15") == 1 &&
	    sink_events(s, "EHLO injected") == 0, "%s", events(s));
}
END_TEST

START_TEST(test_sink_tls_commands)
{
	char *dir = pki();
	struct sink *req = tls_sink(dir, "--tls-required", (char *)NULL);
	struct sink *tls = tls_sink(dir, (char *)NULL);
	struct sink *hidden = tls_sink(dir, "--no-ext", "starttls", (char *)NULL);
	struct sink *plain = sink_start(NULL, (char *)NULL);
	struct cli_reply *r;
	struct cli *c;

	c = cli_open(req->port);
	cli_cmd(c, 530, "5.7.0", "MAIL FROM:<a@x>");
	cli_cmd(c, 530, "5.7.0", "RCPT TO:<b@y>");
	cli_quit(c);

	c = cli_connect(tls->port);
	cli_expect(c, 220, NULL);
	r = cli_cmd(c, 250, NULL, "EHLO client.test");
	H_CHECK(strstr(r->text, "\nSTARTTLS") != NULL, "%s", r->text);
	cli_cmd(c, 501, "5.5.4", "STARTTLS now");
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 503, "5.5.1", "STARTTLS");
	cli_quit(c);

	c = cli_connect(hidden->port);
	cli_expect(c, 220, NULL);
	r = cli_cmd(c, 250, NULL, "EHLO client.test");
	H_CHECK(strstr(r->text, "STARTTLS") == NULL, "%s", r->text);
	cli_cmd(c, 502, "5.5.1", "STARTTLS");
	cli_quit(c);

	c = cli_connect(plain->port);
	cli_expect(c, 220, NULL);
	r = cli_cmd(c, 250, NULL, "EHLO client.test");
	H_CHECK(strstr(r->text, "STARTTLS") == NULL, "%s", r->text);
	cli_cmd(c, 502, "5.5.1", "STARTTLS");
	cli_quit(c);
}
END_TEST

/* A starttls rule refuses it: a sender that needs TLS sends no mail. */
START_TEST(test_sink_tls_rule)
{
	char *dir = pki(), *out;
	struct sink *s = tls_sink(dir, "--rule",
	    "starttls=reply:454 4.7.0 TLS not available now", (char *)NULL);

	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", s->port),
	    "--from", "a@x", "--rcpt", "b@y", "--starttls", (char *)NULL) == 1,
	    "%s", out);
	H_CHECK(strstr(out, "cmd=STARTTLS code=454 ") != NULL &&
	    strcmp(summary(out), "sent=0 accepted=0 tempfail=1 permfail=0 "
	    "errors=0 tls=0") == 0, "%s", out);
	sink_wait_idle(s);
	no_mail_on_wire(s);
}
END_TEST

START_TEST(test_send_tls_failures)
{
	char *dir = pki(), *other = pki(), *out;
	struct sink *plain = sink_start(NULL, (char *)NULL);
	struct sink *s = tls_sink(dir, (char *)NULL);
	const char *to = h_strf("127.0.0.1:%d", s->port);

	/* Not offered. */
	H_CHECK(run_send(&out, "--to", h_strf("127.0.0.1:%d", plain->port),
	    "--from", "a@x", "--rcpt", "b@y", "--starttls", (char *)NULL) == 1,
	    "%s", out);
	H_CHECK(strstr(out, "error=starttls-not-offered") != NULL &&
	    strcmp(summary(out), "sent=0 accepted=0 tempfail=0 permfail=0 "
	    "errors=1 tls=0") == 0, "%s", out);
	/* A name the certificate does not carry. */
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls", "--tls-trust", h_strf("%s/trust.pem", dir),
	    "--tls-verify-name", "elsewhere.test", (char *)NULL) == 1, "%s",
	    out);
	H_CHECK(strstr(out, "error=tls-failed reason=\"certificate "
	    "verification failed: hostname mismatch\"") != NULL, "%s", out);
	/* The right name, by name rather than by address. */
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls", "--tls-trust", h_strf("%s/trust.pem", dir),
	    "--tls-verify-name", "downstream.mailprevent.test", (char *)NULL) ==
	    0, "%s", out);
	/* Another PKI's root does not vouch for it. */
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls", "--tls-trust", h_strf("%s/trust.pem", other),
	    (char *)NULL) == 1, "%s", out);
	H_CHECK(strstr(out, "error=tls-failed reason=\"certificate "
	    "verification failed: unable to get local issuer certificate\"") !=
	    NULL, "%s", out);
	sink_wait_idle(plain);
	no_mail_on_wire(plain);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	H_CHECK(sink_events(s, "event=tls-failed") == 2, "%s", events(s));
}
END_TEST

/*
 * A hostile server writes a reply in clear after its 220 to STARTTLS: a
 * client throws it away; the injecting sender takes it for the answer to
 * its own slipped-in EHLO and fails.
 */
START_TEST(test_send_tls_server_injects)
{
	char *dir = pki(), *out;
	struct sink *s = tls_sink(dir, "--tls-inject", "250 fake\\r\\n",
	    (char *)NULL);
	const char *to = h_strf("127.0.0.1:%d", s->port);

	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls", (char *)NULL) == 0, "%s", out);
	H_CHECK(strstr(out, "fake") == NULL && strstr(out, " tls=1") != NULL,
	    "%s", out);
	H_CHECK(run_send(&out, "--to", to, "--from", "a@x", "--rcpt", "b@y",
	    "--starttls-inject", (char *)NULL) == 1, "%s", out);
	H_CHECK(strstr(out, "error=injection-answered-in-clear") != NULL, "%s",
	    out);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1 &&
	    sink_events(s, "event=tls-inject bytes=10") == 2, "%s", events(s));
}
END_TEST

START_TEST(test_tls_usage)
{
	char *sim = h_strf("%s/mta-sim", h_bindir()), *dir = pki();
	struct run r;

	H_CHECK(run_send(NULL, "--to", "127.0.0.1:25", "--from", "a@x",
	    "--rcpt", "b@y", "--tls-trust", "x.pem", (char *)NULL) == 2,
	    "--tls-trust without --starttls");
	H_CHECK(run_send(NULL, "--to", "127.0.0.1:25", "--from", "a@x",
	    "--rcpt", "b@y", "--starttls", "--tls-verify-name", "a.test",
	    (char *)NULL) == 2, "--tls-verify-name without --tls-trust");
	H_CHECK(run_send(NULL, "--to", "127.0.0.1:25", "--from", "a@x",
	    "--rcpt", "b@y", "--starttls", "--tls-trust", h_strf("%s/none.pem",
	    dir), (char *)NULL) == 2, "a missing trust file");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--tls-required", NULL });
	H_CHECK(run_finish(&r) == 2, "--tls-required without a certificate");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--tls-cert", h_strf("%s/downstream.chain.pem", dir), NULL });
	H_CHECK(run_finish(&r) == 2, "--tls-cert without --tls-key");
	run_spawn(&r, (char *[]){ sim, "sink", "--dir", h_tmpdir("bad"),
	    "--tls-cert", h_strf("%s/downstream.chain.pem", dir), "--tls-key",
	    h_strf("%s/upstream.key", dir), NULL });
	H_CHECK(run_finish(&r) == 1, "a key that is not the certificate's");
	H_CHECK(strstr(r.out[1].data, "tls:") != NULL, "%s", r.out[1].data);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_sim");
	TCase *tc = h_tcase("sink");

	tcase_add_test(tc, test_sink_records_exactly);
	tcase_add_test(tc, test_sink_empty_and_flagged);
	tcase_add_test(tc, test_sink_rcpt_rule);
	tcase_add_test(tc, test_sink_dot_rule_not_accepted);
	tcase_add_test(tc, test_sink_drop_at_body);
	tcase_add_test(tc, test_sink_no_ehlo);
	tcase_add_test(tc, test_sink_ehlo_extensions);
	tcase_add_test(tc, test_sink_pipelining_in_order);
	tcase_add_test(tc, test_sink_greeting_and_occurrences);
	tcase_add_test(tc, test_sink_hang);
	tcase_add_test(tc, test_sink_sigterm);
	suite_add_tcase(s, tc);

	tc = h_tcase("send");
	tcase_add_test(tc, test_send_20_over_4);
	tcase_add_test(tc, test_send_data_file_and_report);
	tcase_add_test(tc, test_send_helo_fallback);
	tcase_add_test(tc, test_send_failures_counted);
	tcase_add_test(tc, test_send_timeout);
	tcase_add_test(tc, test_usage);
	suite_add_tcase(s, tc);

	tc = h_tcase("tls");
	tcase_add_test(tc, test_sink_tls_records);
	tcase_add_test(tc, test_sink_tls_discards_and_resets);
	tcase_add_test(tc, test_sink_tls_commands);
	tcase_add_test(tc, test_sink_tls_rule);
	tcase_add_test(tc, test_send_tls_failures);
	tcase_add_test(tc, test_send_tls_server_injects);
	tcase_add_test(tc, test_tls_usage);
	suite_add_tcase(s, tc);
	return h_run(s);
}
