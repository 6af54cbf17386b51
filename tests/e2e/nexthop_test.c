/*
 * nexthop_test: what the upstream sees when the next hop is down, busy,
 * silent or goes away mid-transaction; host lists tried in order.
 */
#include <string.h>

#include "harness.h"

START_TEST(test_next_hop_down)
{
	int dead = h_free_port();
	struct proxy *px = proxy_start(h_yaml(&dead, 1, ""));
	struct cli *c;

	c = cli_open(px->port);
	cli_cmd(c, 451, "4.4.1", "MAIL FROM:<a@x>");
	/* Still a working session that refuses mail for now. */
	cli_cmd(c, 250, NULL, "RSET");
	cli_cmd(c, 451, "4.4.1", "MAIL FROM:<a2@x>");
	cli_quit(c);
}
END_TEST

/* Deliver one message through px; expect the relayed log to name sink. */
static void
deliver_via(struct proxy *px, struct sink *want, const char *subject)
{
	struct cli_reply *rep;
	struct cli *c;
	char *line;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subject),
	    strlen(h_msg(subject)));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
	cli_quit(c);
	H_CHECK(sink_count(want) == 1, "%zu messages at the second host",
	    sink_count(want));
	H_CHECK(strstr(sink_eml(want, 0, NULL), h_strf("Subject: %s\r\n",
	    subject)) != NULL, "wrong message at the second host");
	line = proxy_wait_log(px, "event=relayed");
	H_CHECK(h_kv_has(line, "hop", h_strf("127.0.0.1:%d", want->port)),
	    "relayed log does not name the second host: %s", line);
}

START_TEST(test_first_host_refuses)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	int ports[2] = { h_free_port(), s->port };
	struct proxy *px = proxy_start(h_yaml(ports, 2, ""));

	deliver_via(px, s, "first host down");
}
END_TEST

START_TEST(test_first_host_greets_421)
{
	struct sink *busy = sink_start(NULL, "--greeting", "421 4.3.2 busy",
	    (char *)NULL);
	struct sink *s = sink_start(NULL, (char *)NULL);
	int ports[2] = { busy->port, s->port };
	struct proxy *px = proxy_start(h_yaml(ports, 2, ""));

	deliver_via(px, s, "first host busy");
	sink_wait_idle(busy);
	H_CHECK(sink_count(busy) == 0, "the busy host got a message");
}
END_TEST

START_TEST(test_first_host_greets_554)
{
	struct sink *busy = sink_start(NULL, "--greeting",
	    "554 5.3.2 no service here", (char *)NULL);
	struct sink *s = sink_start(NULL, (char *)NULL);
	int ports[2] = { busy->port, s->port };
	struct proxy *px = proxy_start(h_yaml(ports, 2, ""));

	deliver_via(px, s, "first host refuses service");
	sink_wait_idle(busy);
	H_CHECK(sink_count(busy) == 0, "the refusing host got a message");
}
END_TEST

START_TEST(test_first_host_silent)
{
	/* Accepts the connection and never greets: the greeting timeout. */
	struct sink *mute = sink_start(NULL, "--rule", "connect=hang",
	    (char *)NULL);
	struct sink *s = sink_start(NULL, (char *)NULL);
	int ports[2] = { mute->port, s->port };
	struct proxy *px = proxy_start(h_yaml(ports, 2,
	    "timeouts:\n  greeting: 1s\n"));

	deliver_via(px, s, "first host silent");
	H_CHECK(sink_count(mute) == 0, "the silent host got a message");
}
END_TEST

START_TEST(test_all_hosts_busy)
{
	struct sink *b1 = sink_start(NULL, "--greeting", "421 4.3.2 busy",
	    (char *)NULL);
	struct sink *b2 = sink_start(NULL, "--greeting", "421 4.3.2 busy too",
	    (char *)NULL);
	int ports[2] = { b1->port, b2->port };
	struct proxy *px = proxy_start(h_yaml(ports, 2, ""));
	struct cli *c;

	c = cli_open(px->port);
	cli_sendf(c, "MAIL FROM:<a@x>\r\n");
	cli_expect_class(c, 4);
	cli_quit(c);
	sink_wait_idle(b1);
	sink_wait_idle(b2);
	H_CHECK(sink_count(b1) + sink_count(b2) == 0, "a busy host got mail");
}
END_TEST

/*
 * The next hop goes away in DATA: while content arrives (body) or after
 * the final dot, before replying (dot). Only the first time (#1), so the
 * same session then shows it recovered.
 */
static void
drop_case(const char *rule)
{
	struct sink *s = sink_start(NULL, "--rule", rule, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("dropped"),
	    strlen(h_msg("dropped")));
	H_CHECK(rep->code / 100 == 4, "after the next hop dropped (%s): %d "
	    "%s %s", rule, rep->code, rep->enh, rep->text);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("after drop"),
	    strlen(h_msg("after drop")));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu messages at the sink", sink_count(s));
	H_CHECK(strstr(sink_eml(s, 0, NULL), "Subject: after drop\r\n"),
	    "the dropped message was recorded as accepted");
}

START_TEST(test_drop_during_data)
{
	drop_case("body#1=drop");
}
END_TEST

START_TEST(test_drop_after_dot)
{
	drop_case("dot#1=drop");
}
END_TEST

START_TEST(test_drop_at_data_command)
{
	drop_case("data#1=drop");
}
END_TEST

START_TEST(test_silent_after_dot)
{
	/* No reply to the final dot: the proxy's data_done timeout, then 4xx. */
	struct sink *s = sink_start(NULL, "--rule", "dot#1=hang", (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    "timeouts:\n  data_done: 1s\n"));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("unanswered"),
	    strlen(h_msg("unanswered")));
	H_CHECK(rep->code / 100 == 4, "%d %s %s", rep->code, rep->enh,
	    rep->text);
	cli_quit(c);
}
END_TEST

/*
 * A refusal of DATA itself leaves the next hop inside a transaction: the
 * proxy must not send the next MAIL on that session (it would get "503
 * nested MAIL" and bounce a good message).
 */
START_TEST(test_data_refused_then_next_message)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "data#1=reply:451 4.3.0 not now", (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("deferred at DATA"),
	    strlen(h_msg("deferred at DATA")));
	H_CHECK(rep->code == 451, "%d %s %s", rep->code, rep->enh, rep->text);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("the next one"),
	    strlen(h_msg("the next one")));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
	cli_quit(c);
	H_CHECK(sink_count(s) == 1, "%zu at the sink", sink_count(s));
}
END_TEST

/*
 * next_hop.reuse_time: a second inbound session right after the first
 * reuses its idle next-hop session; with 0 it connects afresh.
 */
static void
two_sessions(struct proxy *px, struct sink *s)
{
	struct cli_reply *rep;
	struct cli *c;
	int i;

	for (i = 0; i < 2; i++) {
		c = cli_open(px->port);
		rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("pooled"),
		    strlen(h_msg("pooled")));
		H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
		cli_quit(c);
		proxy_wait_log(px, "event=disconnect");
	}
	H_CHECK(sink_count(s) == 2, "%zu at the sink", sink_count(s));
}

START_TEST(test_next_hop_session_reused)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));

	two_sessions(px, s);
	H_CHECK(strstr(proc_output(px->proc, H_STDERR, NULL),
	    "event=nexthop-reused") != NULL, "no event=nexthop-reused logged");
	H_CHECK(sink_events(s, "event=connect") == 1, "%zu connections to the "
	    "next hop, want 1", sink_events(s, "event=connect"));
}
END_TEST

START_TEST(test_next_hop_reuse_off)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_strf("listen: \"127.0.0.1:0\"\n"
	    "next_hop:\n  hosts: [\"127.0.0.1:%d\"]\n  reuse_time: 0\n",
	    s->port));

	two_sessions(px, s);
	H_CHECK(sink_events(s, "event=connect") == 2, "%zu connections to the "
	    "next hop, want 2", sink_events(s, "event=connect"));
}
END_TEST

/*
 * A kept session that the next hop drops at the next transaction's
 * first command: the proxy connects afresh, once, and the upstream sees
 * only success. With pipelining the drop comes at MAIL+RCPT, so RCPT
 * waits for the new session; without, at MAIL.
 */
static void
reused_dropped(int pipelining, const char *second_connect, int want_rcpt)
{
	struct sink *s = sink_start(NULL, "--rule", "mail#2=drop",
	    second_connect ? "--rule" : NULL, second_connect, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml_hop(&s->port, 1, pipelining ?
	    "" : "  pipelining: false\n", ""));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("first"),
	    strlen(h_msg("first")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	proxy_wait_log(px, "event=disconnect");

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, want_rcpt, NULL, "RCPT TO:<b@y>");
	if (want_rcpt == 250) {
		cli_cmd(c, 354, NULL, "DATA");
		cli_sendf(c, "Subject: second\r\n\r\nx\r\n.\r\n");
		cli_expect(c, 250, NULL);
	}
	cli_quit(c);
	H_CHECK(strstr(proc_output(px->proc, H_STDERR, NULL),
	    "event=nexthop-retry") != NULL, "no event=nexthop-retry logged");
	H_CHECK(sink_events(s, "event=connect") == 2, "%zu connections to "
	    "the next hop, want 2 (the kept one, one retry)",
	    sink_events(s, "event=connect"));
	H_CHECK(sink_count(s) == (want_rcpt == 250 ? 2u : 1u), "%zu at the "
	    "sink", sink_count(s));
}

START_TEST(test_reused_session_dropped_pipelined)
{
	reused_dropped(1, NULL, 250);
}
END_TEST

START_TEST(test_reused_session_dropped_unpipelined)
{
	reused_dropped(0, NULL, 250);
}
END_TEST

/* The fresh session fails too: a temporary failure, and no third try. */
START_TEST(test_reused_session_retry_fails)
{
	reused_dropped(1, "connect#2=reply:421 4.3.2 busy", 451);
}
END_TEST

/* The next hop's refusals are not the client's errors (limits.max_errors). */
START_TEST(test_refused_recipients_not_errors)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "rcpt:gone@y=reply:550 5.1.1 no such user", (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    "limits:\n  max_errors: 5\n"));
	struct cli *c;
	int i;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	for (i = 0; i < 12; i++)
		cli_cmd(c, 550, "5.1.1", "RCPT TO:<gone@y>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_sendf(c, "Subject: many stale recipients\r\n\r\nx\r\n.\r\n");
	cli_expect(c, 250, NULL);
	cli_quit(c);
}
END_TEST

START_TEST(test_dot_rejected_relayed)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "dot#1=reply:554 5.7.1 content refused", "--rule",
	    "dot#2=reply:452 4.3.1 out of space", (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("refused"),
	    strlen(h_msg("refused")));
	H_CHECK(rep->code == 554 && strcmp(rep->enh, "5.7.1") == 0,
	    "%d %s %s", rep->code, rep->enh, rep->text);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("deferred"),
	    strlen(h_msg("deferred")));
	H_CHECK(rep->code == 452 && strcmp(rep->enh, "4.3.1") == 0,
	    "%d %s %s", rep->code, rep->enh, rep->text);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("accepted"),
	    strlen(h_msg("accepted")));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
	cli_quit(c);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	H_CHECK(sink_count_rejected(s) == 2, "%zu", sink_count_rejected(s));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_nexthop");
	TCase *tc = h_tcase("hosts");

	tcase_add_test(tc, test_next_hop_down);
	tcase_add_test(tc, test_first_host_refuses);
	tcase_add_test(tc, test_first_host_greets_421);
	tcase_add_test(tc, test_first_host_greets_554);
	tcase_add_test(tc, test_first_host_silent);
	tcase_add_test(tc, test_all_hosts_busy);
	suite_add_tcase(s, tc);

	tc = h_tcase("data");
	tcase_add_test(tc, test_drop_during_data);
	tcase_add_test(tc, test_drop_after_dot);
	tcase_add_test(tc, test_drop_at_data_command);
	tcase_add_test(tc, test_silent_after_dot);
	tcase_add_test(tc, test_dot_rejected_relayed);
	tcase_add_test(tc, test_data_refused_then_next_message);
	tcase_add_test(tc, test_refused_recipients_not_errors);
	tcase_add_test(tc, test_next_hop_session_reused);
	tcase_add_test(tc, test_next_hop_reuse_off);
	tcase_add_test(tc, test_reused_session_dropped_pipelined);
	tcase_add_test(tc, test_reused_session_dropped_unpipelined);
	tcase_add_test(tc, test_reused_session_retry_fails);
	suite_add_tcase(s, tc);
	return h_run(s);
}
