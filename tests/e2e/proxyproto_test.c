/*
 * End-to-end: the PROXY protocol on the listener. A trusted balancer's
 * header names the real client: allow_clients, logs and reflect mode use
 * it. Anyone else is an ordinary SMTP client whose "PROXY" line is just an
 * unknown command.
 */
#include <arpa/inet.h>
#include <string.h>

#include "harness.h"

#define PP_ON(trusted, allow)						\
	"proxy_protocol:\n  enabled: true\n  trusted: [\"" trusted "\"]\n" \
	"allow_clients: [\"" allow "\"]\n"

static void
send_mail(struct cli *c, const char *subject)
{
	struct cli_reply *rep;

	cli_cmd(c, 250, NULL, "EHLO balanced.example");
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subject),
	    strlen(h_msg(subject)));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
}

START_TEST(test_v1_real_client)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    PP_ON("127.0.0.1", "192.0.2.0/24")));
	struct cli *c;
	char *line;

	c = cli_connect(px->port);
	cli_sendf(c, "PROXY TCP4 192.0.2.7 127.0.0.1 40000 %d\r\n", px->port);
	cli_expect(c, 220, NULL);
	line = proxy_wait_log(px, "event=proxy-protocol");
	H_CHECK(h_kv_has(line, "client", "192.0.2.7:40000"), "%s", line);
	send_mail(c, "through a balancer");
	cli_quit(c);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
}
END_TEST

START_TEST(test_v2_real_client)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    PP_ON("127.0.0.1", "198.51.100.0/24")));
	unsigned char h[28] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c
	};
	struct cli *c;
	char *line;

	inet_pton(AF_INET, "198.51.100.23", h + 16);
	inet_pton(AF_INET, "127.0.0.1", h + 20);
	h[24] = 0x30; h[25] = 0x39;		/* 12345 */
	h[26] = 0x00; h[27] = 25;
	c = cli_connect(px->port);
	cli_send(c, h, sizeof(h));
	cli_expect(c, 220, NULL);
	line = proxy_wait_log(px, "event=proxy-protocol");
	H_CHECK(h_kv_has(line, "client", "198.51.100.23:12345"), "%s", line);
	send_mail(c, "v2 header");
	cli_quit(c);
}
END_TEST

/* The real client is checked against allow_clients, not the balancer. */
START_TEST(test_real_client_not_allowed)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    PP_ON("127.0.0.1", "192.0.2.0/24")));
	struct cli *c;

	c = cli_connect(px->port);
	cli_sendf(c, "PROXY TCP4 203.0.113.5 127.0.0.1 1000 25\r\n");
	cli_expect(c, 554, "5.7.1");
	H_CHECK(cli_wait_closed(c), "still connected");
	proxy_wait_log(px, "reason=not_allowed");
}
END_TEST

/* A trusted balancer that sends garbage: closed without a greeting. */
START_TEST(test_bad_header)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    PP_ON("127.0.0.1", "127.0.0.0/8")));
	struct cli *c;
	size_t len;

	c = cli_connect(px->port);
	cli_sendf(c, "EHLO not-a-header\r\n");
	H_CHECK(cli_wait_closed(c), "still connected after a bad header");
	cli_received(c, &len);
	H_CHECK(len == 0, "the proxy said something to a bad header");
	proxy_wait_log(px, "error=\"no PROXY protocol header\"");
}
END_TEST

/* From an untrusted peer a PROXY line is only an unknown command. */
START_TEST(test_untrusted_peer)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1,
	    PP_ON("127.0.0.2", "127.0.0.0/8")));
	struct cli *c;

	c = cli_connect(px->port);
	cli_expect(c, 220, NULL);
	cli_cmd(c, 500, NULL, "PROXY TCP4 192.0.2.7 127.0.0.1 40000 25");
	send_mail(c, "no spoofing");
	cli_quit(c);
	H_CHECK(sink_count(s) == 1, "%zu messages", sink_count(s));
}
END_TEST

/* Reflect mode sends the message back to the real client, not the balancer. */
START_TEST(test_reflect_to_real_client)
{
	int port = h_free_port();
	struct sink *mta = sink_start(NULL, "--listen",
	    h_strf("127.0.0.9:%d", port), (char *)NULL);
	struct proxy *px = proxy_start(h_strf("listen: \"127.0.0.1:0\"\n"
	    "mode: reflect\nresubmit_port: %d\n"
	    "helo_name: \"mailprevent.test\"\n"
	    PP_ON("127.0.0.1", "127.0.0.9"), port));
	struct cli *c;
	char *env;

	c = cli_connect(px->port);
	cli_sendf(c, "PROXY TCP4 127.0.0.9 127.0.0.1 40000 %d\r\n", px->port);
	cli_expect(c, 220, NULL);
	send_mail(c, "reflected to the real MTA");
	cli_quit(c);
	H_CHECK(sink_count(mta) == 1, "the real client's resubmit port got "
	    "%zu messages", sink_count(mta));
	env = sink_env(mta, 0);
	H_CHECK(strstr(env, "mail-from <a@x>") != NULL, "%s", env);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_proxyproto");
	TCase *tc = h_tcase("proxyproto");

	tcase_add_test(tc, test_v1_real_client);
	tcase_add_test(tc, test_v2_real_client);
	tcase_add_test(tc, test_real_client_not_allowed);
	tcase_add_test(tc, test_bad_header);
	tcase_add_test(tc, test_untrusted_peer);
	tcase_add_test(tc, test_reflect_to_real_client);
	suite_add_tcase(s, tc);
	return h_run(s);
}
