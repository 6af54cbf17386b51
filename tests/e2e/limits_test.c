/*
 * limits_test: the proxy's inbound limits and timeouts, end to end.
 * Connection cap, error limit, command and DATA timeouts (including
 * clients that trickle), recipient floods, over-long lines and oversized
 * content, and the SIGTERM drain. Limits and timeouts are set small in
 * the YAML so that each test takes about a second; slow clients are paced
 * with cli_poll(), which doubles as "stop as soon as the proxy speaks".
 */
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

/*
 * RSS: an absolute bound, and a bound on growth since just before the
 * flood (or the long line) that a copy of it would break. Under ASan freed memory sits in
 * the quarantine, so growth there only catches gross cases.
 */
#define RSS_MAX_KB	(64 * 1024)
#if defined(__SANITIZE_ADDRESS__)
#define H_ASAN		1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H_ASAN		1
#endif
#endif
#ifdef H_ASAN
#define FLOOD_GROW_KB	(16 * 1024L)
#define LINE_GROW_KB	(16 * 1024L)
#else
#define FLOOD_GROW_KB	(8 * 1024L)	/* the flood is 25 MB */
#define LINE_GROW_KB	768L		/* the line is 1024 kB */
#endif

struct rig {
	struct sink	*sink;
	struct proxy	*px;
};

static struct rig
rig_start(const char *yaml_extra)
{
	struct rig r;

	r.sink = sink_start(NULL, (char *)NULL);
	r.px = proxy_start(h_yaml(&r.sink->port, 1, yaml_extra));
	return r;
}

/* As h_yaml, with another max_message_size. */
static char *
yaml_sized(int port, const char *size, const char *extra)
{
	return h_strf("listen: \"127.0.0.1:0\"\n"
	    "mode: forward\n"
	    "next_hop:\n"
	    "  hosts: [\"127.0.0.1:%d\"]\n"
	    "helo_name: \"mailprevent.test\"\n"
	    "pass_header: \"%s\"\n"
	    "max_message_size: %s\n"
	    "%s", port, H_PASS_HEADER, size, extra);
}

/* One message through c; the sink must then hold it as message #i. */
static void
deliver(struct cli *c, struct sink *s, size_t i, const char *subject)
{
	struct cli_reply *rep;

	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subject),
	    strlen(h_msg(subject)));
	H_CHECK(rep->code == 250, "message \"%s\": %d %s %s", subject,
	    rep->code, rep->enh, rep->text);
	H_CHECK(sink_count(s) == i + 1, "%zu messages at the sink, want %zu",
	    sink_count(s), i + 1);
	H_CHECK(strstr(sink_eml(s, i, NULL), h_strf("Subject: %s\r\n",
	    subject)) != NULL, "message #%zu at the sink is not \"%s\"", i,
	    subject);
}

static long
rss(struct proxy *px)
{
	return h_rss_kb(proc_pid(px->proc));
}

static void
check_rss(struct proxy *px, long base, long grow_max, const char *after)
{
	long kb = rss(px);

	H_CHECK(kb > 0 && kb < RSS_MAX_KB, "proxy VmRSS %ld kB after %s "
	    "(limit %d kB)", kb, after, RSS_MAX_KB);
	H_CHECK(kb - base < grow_max, "proxy VmRSS grew by %ld kB (from %ld "
	    "to %ld) after %s; limit %ld kB", kb - base, base, kb, after,
	    grow_max);
}

/*
 * Connection cap.
 */

START_TEST(test_max_connections)
{
	struct rig r = rig_start("limits:\n  max_connections: 2\n");
	struct cli *c1, *c2, *c3;

	c1 = cli_open(r.px->port);
	c2 = cli_open(r.px->port);
	/* Both are counted: each has had its 220 and its EHLO reply. */
	c3 = cli_connect(r.px->port);
	cli_expect(c3, 421, "4.7.0");
	H_CHECK(cli_wait_closed(c3), "the third connection stayed open");
	proxy_wait_log(r.px, "reason=max_connections");

	/* The first two are unaffected. */
	deliver(c1, r.sink, 0, "first of two");
	deliver(c2, r.sink, 1, "second of two");

	/* A slot comes free when a session ends. */
	proc_mark(r.px->proc, H_STDERR);
	cli_quit(c1);
	proxy_wait_log(r.px, "event=disconnect");
	c3 = cli_open(r.px->port);
	deliver(c3, r.sink, 2, "after a slot came free");
	cli_quit(c3);
	cli_quit(c2);
}
END_TEST

/*
 * Client allow-list: a client outside allow_clients gets 554 5.7.1 and
 * nothing more; the default (loopback) lets the test's 127.0.0.1 in.
 */
START_TEST(test_allow_clients)
{
	struct rig r = rig_start("allow_clients: [\"10.0.0.0/8\", \"::1\"]\n");
	struct cli *c;
	char *line;

	c = cli_connect(r.px->port);
	cli_expect(c, 554, "5.7.1");
	H_CHECK(cli_wait_closed(c), "a refused client stayed connected");
	line = proxy_wait_log(r.px, "reason=not_allowed");
	H_CHECK(strstr(line, "client=127.0.0.1:") != NULL, "%s", line);
	H_CHECK(sink_count(r.sink) == 0, "mail reached the sink");
}
END_TEST

START_TEST(test_allow_clients_default)
{
	struct rig r = rig_start("");
	struct cli *c;

	c = cli_open(r.px->port);
	deliver(c, r.sink, 0, "loopback is allowed by default");
	cli_quit(c);
}
END_TEST

/*
 * user: the proxy binds as root, then runs as that user before serving.
 * Needs root (CI runs as root); elsewhere it says so and checks nothing.
 */
START_TEST(test_drop_privileges)
{
	struct rig r;
	struct passwd *pw = getpwnam("nobody");
	struct cli *c;
	char *st, *uid;

	if (geteuid() != 0 || pw == NULL) {
		fprintf(stderr, "SKIP test_drop_privileges: needs root and a "
		    "\"nobody\" user\n");
		return;
	}
	r = rig_start("user: nobody\n");
	proxy_wait_log(r.px, "event=privileges");
	st = h_read_file(h_strf("/proc/%ld/status", (long)proc_pid(r.px->proc)),
	    NULL);
	H_CHECK(st != NULL && (uid = strstr(st, "\nUid:")) != NULL,
	    "no Uid line in /proc/PID/status");
	H_CHECK(strtol(uid + 5, NULL, 10) == (long)pw->pw_uid,
	    "proxy runs as uid %ld, want %ld", strtol(uid + 5, NULL, 10),
	    (long)pw->pw_uid);
	c = cli_open(r.px->port);
	deliver(c, r.sink, 0, "served as nobody");
	cli_quit(c);
}
END_TEST

/*
 * Error limit: after max_errors bad commands, 421 and close. Pipelined,
 * so that the proxy's reply to what follows the limit is visible too.
 */
START_TEST(test_max_errors)
{
	struct rig r = rig_start("limits:\n  max_errors: 3\n");
	struct cli *c;
	char *line;

	c = cli_open(r.px->port);
	line = "FOO\r\nBAR baz\r\nMAIL\r\nNOOP\r\nQUIT\r\n";
	cli_try_send(c, line, strlen(line));
	cli_expect_class(c, 5);
	cli_expect_class(c, 5);
	cli_expect_class(c, 5);
	cli_expect(c, 421, "4.7.0");
	H_CHECK(cli_wait_closed(c), "connection open after the 421 (or the "
	    "NOOP/QUIT after the limit was answered)");
	line = proxy_wait_log(r.px, "event=disconnect");
	H_CHECK(h_kv_has(line, "reason", "errors"), "%s", line);

	/* The limit is per session. */
	c = cli_open(r.px->port);
	cli_cmd(c, 500, NULL, "FOO");
	cli_cmd(c, 500, NULL, "FOO");
	deliver(c, r.sink, 0, "after two errors");
	cli_quit(c);
}
END_TEST

/*
 * Command timeout.
 */

START_TEST(test_command_timeout_idle)
{
	struct rig r = rig_start("timeouts:\n  command: 1\n");
	struct cli *c;
	long long t0, ms;

	c = cli_open(r.px->port);
	t0 = h_now_ms();
	cli_expect(c, 421, "4.4.2");
	ms = h_now_ms() - t0;
	H_CHECK(ms >= 900 && ms < 5000, "421 after %lld ms, timeout 1 s", ms);
	H_CHECK(cli_wait_closed(c), "connection open after the timeout");
}
END_TEST

/*
 * Partial input does not restart the command timer: a client sending a
 * byte every 300 ms never completes a command in time.
 */
START_TEST(test_command_timeout_trickle)
{
	static const char line[] =
	    "MAIL FROM:<a-rather-long-trickling-sender-address@example.org>\r\n";
	struct rig r = rig_start("timeouts:\n  command: 1\n");
	struct cli *c;
	long long t0, ms;
	size_t i;

	c = cli_open(r.px->port);
	t0 = h_now_ms();
	for (i = 0; i < sizeof(line) - 1; i++) {
		if (cli_poll(c, 300))	/* the proxy spoke: stop */
			break;
		if (cli_try_send(c, line + i, 1) != 1)
			break;
	}
	ms = h_now_ms() - t0;
	H_CHECK(i < sizeof(line) - 1, "the whole command went out in %lld ms "
	    "without a timeout: partial input reset the timer", ms);
	H_CHECK(i >= 2, "the proxy spoke after %zu bytes", i);
	cli_expect(c, 421, "4.4.2");
	ms = h_now_ms() - t0;
	H_CHECK(ms >= 900 && ms < 5000, "421 after %lld ms, timeout 1 s", ms);
	H_CHECK(cli_wait_closed(c), "connection open after the timeout");
}
END_TEST

/*
 * DATA timeout and minimum rate.
 */

#define RATE_YAML	\
	"timeouts:\n  data: 1\nlimits:\n  min_data_rate: 1000\n"

START_TEST(test_data_trickle)
{
	static const char body[] = "Subject: slow\r\n\r\nvery slow body\r\n";
	struct rig r = rig_start(RATE_YAML);
	struct cli *c;
	long long t0, ms;
	size_t i;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	t0 = h_now_ms();
	for (i = 0; i < sizeof(body) - 1; i++) {
		if (cli_poll(c, 300))
			break;
		if (cli_try_send(c, body + i, 1) != 1)
			break;
	}
	H_CHECK(i < sizeof(body) - 1, "a 3 bytes/s body was not cut off");
	cli_expect(c, 421, "4.4.2");
	ms = h_now_ms() - t0;
	H_CHECK(ms >= 900 && ms < 5000, "421 after %lld ms", ms);
	H_CHECK(cli_wait_closed(c), "connection open after the timeout");
	/* The outbound session goes too, with nothing delivered. */
	sink_wait_idle(r.sink);
	H_CHECK(sink_count(r.sink) == 0 && sink_count_rejected(r.sink) == 0,
	    "part of a timed-out message reached the sink");
}
END_TEST

/* 200 KB over about 2 s: longer than timeouts.data, far above the rate. */
/*
 * A burst earns time at min_data_rate, but silence is still bounded by
 * timeouts.data: a client that sends a lot and then nothing is cut off
 * after timeouts.data, not after the time its burst earned.
 */
START_TEST(test_data_burst_then_silence)
{
	struct rig r = rig_start("timeouts:\n  data: 2\n"
	    "limits:\n  min_data_rate: 1000\n");
	struct buf b = BUF_INIT;
	struct cli *c;
	long long t0;
	size_t i;

	for (i = 0; b.len < 60 * 1024; i++)	/* earns a minute at 1000 B/s */
		buf_appendf(&b, "%08zu%090d\r\n", i, 0);
	h_keep(b.data);
	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, b.data, b.len);
	t0 = h_now_ms();
	cli_expect(c, 421, "4.4.2");
	H_CHECK(h_now_ms() - t0 < 6000, "cut off after %lld ms of silence, "
	    "want about 2 s", h_now_ms() - t0);
	H_CHECK(sink_count(r.sink) == 0, "a partial message was delivered");
}
END_TEST

START_TEST(test_data_fast_large)
{
	struct rig r = rig_start(RATE_YAML);
	struct buf b = BUF_INIT;
	struct cli *c;
	char *wire, *eml, *want;
	size_t i, wlen, elen, off, chunk;
	long long t0;

	buf_appends(&b, "Subject: fast and large\r\n\r\n");
	for (i = 0; b.len < 200 * 1024; i++)
		buf_appendf(&b, "line %06zu %080d\r\n", i, 0);
	h_keep(b.data);
	wire = h_stuff(b.data, b.len, &wlen);

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	t0 = h_now_ms();
	chunk = wlen / 10 + 1;
	for (off = 0; off < wlen; off += chunk) {
		/* Pacing; the proxy must not say anything meanwhile. */
		H_CHECK(!cli_poll(c, 200), "the proxy replied after %zu of %zu "
		    "bytes, %lld ms into DATA", off, wlen, h_now_ms() - t0);
		cli_send(c, wire + off,
		    off + chunk > wlen ? wlen - off : chunk);
	}
	cli_expect(c, 250, NULL);
	H_CHECK(h_now_ms() - t0 > 1000, "sent too fast (%lld ms) to prove "
	    "that data extends the timeout", h_now_ms() - t0);
	want = h_strf("%s\r\n%.*s", H_PASS_HEADER, (int)b.len, b.data);
	eml = sink_eml(r.sink, 0, &elen);
	H_CHECK_BYTES(eml, elen, want, strlen(want), "message at the sink");
	cli_quit(c);
}
END_TEST

/*
 * Recipient flood: 100k RCPT lines in big writes. 250 for the first
 * five, 452 4.5.3 for the next ones until the errors reach the limit, then
 * 421 4.7.0. The proxy may stop reading (and reset the connection)
 * whenever it likes after the 421.
 */
START_TEST(test_rcpt_flood)
{
	struct rig r = rig_start("limits:\n  max_recipients: 5\n"
	    "  max_errors: 10\n");
	const char *pad =
	    "padding-padding-padding-padding-padding-padding-padding";
	struct buf b = BUF_INIT;
	struct cli *c;
	size_t i, sent;
	long base;

	/* 25 MB: 250-octet paths, RFC 5321's labels and path length kept. */
	for (i = 0; i < 100000; i++)
		buf_appendf(&b, "RCPT TO:<flood-%06zu@%s.%s.%s.%s.example>\r\n",
		    i, pad, pad, pad, pad);
	h_keep(b.data);

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	base = rss(r.px);
	sent = cli_try_send(c, b.data, b.len);
	for (i = 0; i < 5; i++)
		cli_expect(c, 250, NULL);
	for (i = 0; i < 10; i++)
		cli_expect(c, 452, "4.5.3");
	cli_expect(c, 421, "4.7.0");
	H_CHECK(cli_wait_closed(c), "connection open after the 421 (%zu of "
	    "%zu bytes sent)", sent, b.len);
	check_rss(r.px, base, FLOOD_GROW_KB, h_strf("a RCPT flood (%zu of %zu "
	    "bytes went out)", sent, b.len));
	/* It half-closed and drained rather than reset the connection. */
	H_CHECK(strstr(proxy_wait_log(r.px, "reason=errors"), "linger=1") !=
	    NULL, "the session closed for errors without lingering");

	/* Still serving, and the flood left nothing behind. */
	c = cli_open(r.px->port);
	deliver(c, r.sink, 0, "after the flood");
	H_CHECK(h_env_count(sink_env(r.sink, 0), "rcpt ") == 1, "%s",
	    sink_env(r.sink, 0));
	cli_quit(c);
	check_rss(r.px, base, FLOOD_GROW_KB, "the session after the flood");
}
END_TEST

/*
 * A 1 MiB line without CRLF inside DATA, then CRLF.CRLF: refused with a
 * clear 554 (max_message_size is 4M here so that the size is not what
 * refuses it), nothing reaches the sink, and memory stays bounded.
 */
START_TEST(test_data_line_1mib)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(yaml_sized(s->port, "4M", ""));
	struct cli_reply *rep;
	struct cli *c;
	char *line;
	size_t n = 1024 * 1024;
	long base;

	line = h_keep(malloc(n));
	memset(line, 'x', n);
	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	base = rss(px);
	cli_sendf(c, "Subject: one long line\r\n\r\n");
	cli_send(c, line, n);
	cli_send(c, "\r\n.\r\n", 5);
	rep = cli_expect(c, 554, "5.6.0");
	H_CHECK(strstr(rep->text, "line") != NULL, "554 text does not say "
	    "what is wrong: \"%s\"", rep->text);
	check_rss(px, base, LINE_GROW_KB, "a 1 MiB line");
	/* In step: the line was content, not commands. */
	cli_cmd(c, 250, NULL, "NOOP");
	deliver(c, s, 0, "after the long line");
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1 && sink_count_rejected(s) == 0,
	    "%zu accepted, %zu rejected at the sink", sink_count(s),
	    sink_count_rejected(s));
}
END_TEST

/* 1 MiB of content, no SIZE, limit 64K: 552 after the dot, not before. */
/*
 * In-flight budget: past limits.max_inflight (all sessions' held message
 * bytes) a message gets 452 4.3.1 (temporary: the sender retries), not
 * unbounded memory; its bytes are released, so the next message goes.
 */
START_TEST(test_inflight_budget)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    "limits:\n  max_inflight: 64K\n"));
	struct buf b = BUF_INIT;
	struct cli *c;
	char *wire;
	size_t i, wlen;

	buf_appends(&b, "Subject: over the budget\r\n\r\n");
	for (i = 0; b.len < 200 * 1024; i++)
		buf_appendf(&b, "%08zu%090d\r\n", i, 0);
	h_keep(b.data);
	wire = h_stuff(b.data, b.len, &wlen);

	c = cli_open(px->port);
	cli_cmd(c, 452, "4.3.1", "MAIL FROM:<a@x> SIZE=100000");
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, wire, wlen);
	cli_expect(c, 452, "4.3.1");
	proxy_wait_log(px, "event=busy");
	/* Released: a small message fits again. */
	deliver(c, s, 0, "within the budget");
	cli_quit(c);
	H_CHECK(sink_count(s) == 1, "%zu at the sink", sink_count(s));
}
END_TEST

START_TEST(test_oversized_without_size)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(yaml_sized(s->port, "65536", ""));
	struct buf b = BUF_INIT;
	struct cli *c;
	char *wire;
	size_t i, wlen;
	long base;

	buf_appends(&b, "Subject: too big\r\n\r\n");
	for (i = 0; b.len < 1024 * 1024; i++)
		buf_appendf(&b, "%08zu%090d\r\n", i, 0);
	h_keep(b.data);
	wire = h_stuff(b.data, b.len, &wlen);

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	base = rss(px);
	cli_send(c, wire, wlen - 3);
	H_CHECK(cli_idle(c), "the proxy replied before the final dot");
	cli_send(c, wire + wlen - 3, 3);
	cli_expect(c, 552, "5.3.4");
	check_rss(px, base, LINE_GROW_KB, "1 MiB over a 64K limit");
	cli_cmd(c, 250, NULL, "NOOP");
	deliver(c, s, 0, "small after big");
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1 && sink_count_rejected(s) == 0,
	    "%zu accepted, %zu rejected at the sink", sink_count(s),
	    sink_count_rejected(s));
}
END_TEST

/*
 * SIGTERM.
 */

/* A connection attempt that must not get a session: refused, or closed. */
static void
check_refused(int port)
{
	struct cli_reply rep;
	struct cli *c;

	if ((c = cli_try_connect(port)) == NULL)
		return;
	/* Caught in the backlog as the listener closed: no 220 allowed. */
	cli_reply(c, &rep);
	H_CHECK(rep.code == -1 || rep.code == 421, "a connection after "
	    "SIGTERM got %d %s", rep.code, rep.text);
	cli_close(c);
}

START_TEST(test_sigterm_drain)
{
	struct rig r = rig_start("");
	struct cli *c;
	char *msg;
	size_t wlen;
	int st = 0;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	proc_mark(r.px->proc, H_STDERR);
	proc_signal(r.px->proc, SIGTERM);
	proxy_wait_log(r.px, "event=shutdown");
	check_refused(r.px->port);
	/* A reload while draining (there is no listener any more) is harmless. */
	proc_signal(r.px->proc, SIGHUP);
	proxy_wait_log(r.px, "event=reload status=ok");

	/* The transaction in flight finishes. */
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("drained"), strlen(h_msg("drained")), &wlen);
	cli_send(c, msg, wlen);
	cli_expect(c, 250, NULL);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	H_CHECK(strstr(sink_eml(r.sink, 0, NULL), "Subject: drained\r\n"),
	    "wrong message at the sink");
	cli_quit(c);
	check_refused(r.px->port);

	H_CHECK(proc_wait_exit(r.px->proc, H_DEADLINE_MS, &st),
	    "the proxy did not exit after its last session ended");
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
}
END_TEST

START_TEST(test_sigterm_grace_expires)
{
	struct rig r = rig_start("timeouts:\n  shutdown: 1\n");
	struct cli *c;
	long long t0, ms;
	int st = 0;

	c = cli_open(r.px->port);
	proc_mark(r.px->proc, H_STDERR);
	proc_signal(r.px->proc, SIGTERM);
	proxy_wait_log(r.px, "event=shutdown");
	t0 = h_now_ms();
	cli_expect(c, 421, NULL);
	ms = h_now_ms() - t0;
	H_CHECK(ms >= 800 && ms < 5000, "421 after %lld ms, grace 1 s", ms);
	H_CHECK(cli_wait_closed(c), "connection open after the 421");
	H_CHECK(proc_wait_exit(r.px->proc, H_DEADLINE_MS, &st),
	    "the proxy did not exit after the grace period");
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
	sink_wait_idle(r.sink);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_limits");
	TCase *tc = h_tcase("limits");

	tcase_add_test(tc, test_max_connections);
	tcase_add_test(tc, test_allow_clients);
	tcase_add_test(tc, test_allow_clients_default);
	tcase_add_test(tc, test_drop_privileges);
	tcase_add_test(tc, test_max_errors);
	tcase_add_test(tc, test_rcpt_flood);
	tcase_add_test(tc, test_data_line_1mib);
	tcase_add_test(tc, test_oversized_without_size);
	tcase_add_test(tc, test_inflight_budget);
	suite_add_tcase(s, tc);

	tc = h_tcase("timeouts");
	tcase_add_test(tc, test_command_timeout_idle);
	tcase_add_test(tc, test_command_timeout_trickle);
	tcase_add_test(tc, test_data_trickle);
	tcase_add_test(tc, test_data_fast_large);
	tcase_add_test(tc, test_data_burst_then_silence);
	suite_add_tcase(s, tc);

	tc = h_tcase("shutdown");
	tcase_add_test(tc, test_sigterm_drain);
	tcase_add_test(tc, test_sigterm_grace_expires);
	suite_add_tcase(s, tc);
	return h_run(s);
}
