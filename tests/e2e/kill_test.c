/*
 * End-to-end: kill -9 of the proxy at the worst moments. The sending side
 * must see a failure, never a 250, unless the next hop really has the
 * message; the next hop never keeps a truncated copy.
 */
#include <signal.h>
#include <string.h>

#include "harness.h"

static const char body[] =
    "Subject: killed in flight\r\n\r\nline one\r\nline two\r\n";

/* Stopped by SIGKILL, as the test meant. */
static void
killed(struct proxy *px)
{
	H_CHECK(proc_kill9(px->proc), "no exit after SIGKILL");
}

/* The client must not have been told 250 to its final dot. */
static void
no_250(struct cli *c)
{
	struct cli_reply rep;

	if (cli_reply(c, &rep) == 0)
		H_CHECK(rep.code != 250, "the sender got 250 from a dead proxy");
	H_CHECK(cli_wait_closed(c), "the connection stayed open");
}

START_TEST(test_kill_mid_data)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli *c;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, body, strlen(body));	/* no final dot yet */
	proxy_wait_log(px, "event=connect");
	killed(px);
	no_250(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 0,
	    "the next hop kept %zu + %zu messages", sink_count(s),
	    sink_count_rejected(s));
}
END_TEST

/* The final dot went downstream; the next hop has not answered yet. */
START_TEST(test_kill_after_dot_relayed)
{
	struct sink *s = sink_start(NULL, "--rule", "dot=hang", (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli *c;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, body, strlen(body));
	cli_send(c, ".\r\n", 3);
	/* The sink has the whole message and holds its reply. */
	sink_wait_events(s, "event=rule", 1);
	killed(px);
	no_250(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0, "the next hop accepted a message the "
	    "sender was not told about");
}
END_TEST

/*
 * The next hop accepted: whether the sender hears 250 depends on when
 * the kill lands, but the next hop holds exactly one complete copy.
 */
START_TEST(test_kill_after_next_hop_250)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli *c;
	char *eml;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, body, strlen(body));
	cli_send(c, ".\r\n", 3);
	sink_wait_events(s, "event=message", 1);
	killed(px);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "%zu copies at the next hop", sink_count(s));
	eml = sink_eml(s, 0, NULL);
	H_CHECK(strstr(eml, "line two\r\n") != NULL, "truncated copy: %s", eml);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_kill");
	TCase *tc = h_tcase("kill");

	tcase_add_test(tc, test_kill_mid_data);
	tcase_add_test(tc, test_kill_after_dot_relayed);
	tcase_add_test(tc, test_kill_after_next_hop_250);
	suite_add_tcase(s, tc);
	return h_run(s);
}
