/*
 * End-to-end: worker processes. With workers: 2 the master binds the port
 * twice (SO_REUSEPORT), the kernel spreads connections over both workers,
 * a worker that dies is replaced, and SIGHUP/SIGTERM reach every worker.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The pids of the workers, from the master's event=worker lines. */
static void
worker_pids(struct proxy *px, long pids[2])
{
	const char *log = proc_output(px->proc, H_STDERR, NULL);
	const char *p = log;
	int n = 0;

	while (n < 2 && (p = strstr(p, "event=worker ")) != NULL) {
		const char *q = strstr(p, " pid=");

		H_CHECK(q != NULL, "no pid in a worker line");
		pids[n++] = strtol(q + 5, NULL, 10);
		p = q;
	}
	H_CHECK(n == 2, "%d worker lines in the log", n);
}

/* Lines of the proxy's log that say "event=relayed" and come from pid. */
static size_t
relayed_by(struct proxy *px, long pid)
{
	const char *log = proc_output(px->proc, H_STDERR, NULL);
	const char *tag = h_strf(" mailprevent[%ld] ", pid), *line, *nl;
	size_t n = 0;

	for (line = log; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			break;
		if (h_memmem(line, (size_t)(nl - line), tag) != NULL &&
		    h_memmem(line, (size_t)(nl - line), " event=relayed ") != NULL)
			n++;
	}
	return n;
}

static void
one_message(struct proxy *px, struct sink *s, size_t want, const char *subj)
{
	struct cli *c = cli_open(px->port);
	struct cli_reply *rep;

	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subj), strlen(h_msg(subj)));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	H_CHECK(sink_count(s) == want, "%zu at the sink, want %zu",
	    sink_count(s), want);
}

START_TEST(test_spread_over_workers)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, "workers: 2\n"));
	long pids[2];
	size_t i, by0, by1;

	proxy_wait_log(px, "event=worker worker=1");
	worker_pids(px, pids);
	/* 40 connections from 40 source ports: P(all on one worker) = 2^-39. */
	for (i = 0; i < 40; i++)
		one_message(px, s, i + 1, h_strf("spread %zu", i));
	by0 = relayed_by(px, pids[0]);
	by1 = relayed_by(px, pids[1]);
	H_CHECK(by0 + by1 == 40, "%zu + %zu relayed lines, want 40", by0, by1);
	H_CHECK(by0 > 0 && by1 > 0, "one worker took everything (%zu / %zu)",
	    by0, by1);
}
END_TEST

START_TEST(test_worker_replaced)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, "workers: 2\n"));
	long pids[2];
	size_t i;

	proxy_wait_log(px, "event=worker worker=1");
	worker_pids(px, pids);
	kill((pid_t)pids[0], SIGKILL);
	proxy_wait_log(px, "event=worker-died worker=0");
	proxy_wait_log(px, "event=worker worker=0");
	/* Every connection is served, whichever socket it lands on. */
	for (i = 0; i < 10; i++)
		one_message(px, s, i + 1, h_strf("after a restart %zu", i));
}
END_TEST

START_TEST(test_reload_reaches_workers)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, "workers: 2\n"));
	const char *log;
	size_t len;

	proxy_wait_log(px, "event=worker worker=1");
	proc_signal(px->proc, SIGHUP);
	proxy_wait_log(px, "event=reload status=ok");
	proxy_wait_log(px, "event=reload status=ok");
	log = proc_output(px->proc, H_STDERR, &len);
	H_CHECK(h_count(log, len, "event=reload status=ok", 22) == 2,
	    "%zu workers reloaded, want 2",
	    h_count(log, len, "event=reload status=ok", 22));
	one_message(px, s, 1, "after reload");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_workers");
	TCase *tc = h_tcase("workers");

	tcase_add_test(tc, test_spread_over_workers);
	tcase_add_test(tc, test_worker_replaced);
	tcase_add_test(tc, test_reload_reaches_workers);
	suite_add_tcase(s, tc);
	return h_run(s);
}
