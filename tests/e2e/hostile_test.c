/*
 * hostile_test: the next hop as an adversary. The sink's raw: rules play a
 * server that breaks the protocol (huge, malformed, unsolicited or
 * unterminated replies, control bytes); drop and hang rules play one that
 * fails at each step. Whatever it does, the proxy must:
 *   - not crash: it serves a normal session afterwards;
 *   - give the upstream a 4xx where the next hop failed, never a 250, and a
 *     5xx only when the next hop said 5xx to that very command;
 *   - pass none of the hostile bytes on: the upstream receives printable
 *     ASCII lines only, and never the case's marker;
 *   - leave nothing accepted at the sink but the normal message.
 * The first tests check the raw: rules themselves, against the sink alone.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

/*
 * The raw: rules, sink only.
 */

/* A 100-octet "250-" line; 1000 of them make the 100 KB reply. */
#define LINE100	"250-HOSTILE-0123456789012345678901234567890123456789" \
		"0123456789012345678901234567890123456789012345\r\n"

START_TEST(test_sink_raw_rules)
{
	static const char rcpt_raw[] = "250 ok\0\x1b[31m\r\n250 extra\r\n";
	struct sink *s = sink_start(NULL,
	    "--rule", "mail#1=raw-repeat:1000:" LINE100,
	    "--rule", "rcpt#1=raw:250 ok\\0\\x1b[31m\\r\\n250 extra\\r\\n",
	    "--rule", "data#1=raw:250 not a 354\\r\\n",
	    "--rule", "dot#1=raw:250-unterminated\\r\\n",
	    (char *)NULL);
	struct cli *c = cli_open(s->port);
	const char *p;
	size_t got, i;
	char *msg;

	H_CHECK(strlen(LINE100) == 100, "LINE100: %zu", strlen(LINE100));
	/* raw-repeat: exactly 1000 copies, nothing added. */
	cli_sendf(c, "MAIL FROM:<a@x>\r\n");
	p = cli_read_raw(c, 100000, &got);
	H_CHECK(got == 100000, "got %zu of 100000 bytes", got);
	for (i = 0; i < 1000; i++)
		H_CHECK_BYTES(p + i * 100, 100, LINE100, 100, "repeated line");
	/* No effect: MAIL again is not a nested MAIL. */
	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");

	/* raw: escapes decoded, NUL included, nothing added or scrubbed. */
	cli_sendf(c, "RCPT TO:<b@y>\r\n");
	p = cli_read_raw(c, sizeof(rcpt_raw) - 1, &got);
	H_CHECK_BYTES(p, got, rcpt_raw, sizeof(rcpt_raw) - 1, "raw RCPT reply");
	/* The recipient was not added: DATA gets the raw bytes (its rule). */
	cli_sendf(c, "DATA\r\n");
	p = cli_read_raw(c, 15, &got);
	H_CHECK_BYTES(p, got, "250 not a 354\r\n", 15, "raw DATA reply");
	/* Nor did that DATA start the content. */
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("raw dot"), strlen(h_msg("raw dot")), &got);
	cli_send(c, msg, got);
	cli_sendf(c, "NOOP\r\n");
	p = cli_read_raw(c, 18, &got);
	H_CHECK_BYTES(p, got, "250-unterminated\r\n", 18, "raw dot reply");
	cli_expect(c, 250, "2.0.0");	/* NOOP */
	cli_quit(c);
	sink_wait_idle(s);

	/* A raw reply never accepts: the message is kept as rejected. */
	H_CHECK(sink_count(s) == 0, "%zu accepted", sink_count(s));
	H_CHECK(sink_count_rejected(s) == 1, "%zu rejected",
	    sink_count_rejected(s));
	H_CHECK(sink_events(s, "event=raw bytes=100000") == 1, "events.log");
	H_CHECK(sink_events(s, h_strf("event=raw bytes=%zu",
	    sizeof(rcpt_raw) - 1)) == 1, "events.log");
	H_CHECK(sink_events(s, "event=raw") == 4, "events.log");
	H_CHECK(sink_events(s, "event=rule when=dot action=raw") == 1,
	    "events.log");
}
END_TEST

/* Body and connect: bytes at once, no reply after the dot / only QUIT. */
START_TEST(test_sink_raw_body_connect)
{
	struct sink *s = sink_start(NULL,
	    "--rule", "body#1=raw:421 not closing\\r\\n",
	    "--rule", "connect#2=raw:\\x00\\xff\\\\ junk",
	    (char *)NULL);
	struct cli *c = cli_open(s->port);
	const char *p;
	size_t got;
	char *msg;

	cli_cmd(c, 250, "2.1.0", "MAIL FROM:<a@x>");
	cli_cmd(c, 250, "2.1.5", "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("raw body"), strlen(h_msg("raw body")), &got);
	cli_send(c, msg, got);
	/* The raw bytes and nothing for the dot: NOOP's 250 comes next. */
	cli_sendf(c, "NOOP\r\n");
	cli_expect(c, 421, NULL);
	cli_expect(c, 250, "2.0.0");
	cli_quit(c);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 1,
	    "%zu accepted, %zu rejected", sink_count(s),
	    sink_count_rejected(s));

	c = cli_connect(s->port);
	p = cli_read_raw(c, 8, &got);
	H_CHECK_BYTES(p, got, "\0\xff\\ junk", 8, "raw greeting");
	cli_cmd(c, 503, "5.5.1", "EHLO client.test");
	cli_quit(c);
}
END_TEST

/* Bad specs are command-line mistakes: exit status 2, and why. */
START_TEST(test_sink_raw_bad_specs)
{
	static const char *const bad[] = {
		"mail=raw:", "mail=raw:a\\q", "mail=raw:\\x4", "mail=raw:\\",
		"mail=raw-repeat:0:x", "mail=raw-repeat:x:y",
		"mail=raw-repeat:20000000:x", "mail=raw-repeat:3", NULL
	};
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		char *argv[] = { h_strf("%s/mta-sim", h_bindir()), "sink",
		    "--dir", h_tmpdir("bad"), "--rule", (char *)bad[i], NULL };
		struct proc *p = proc_start("mta-sim-bad-rule", argv);
		int st = 0;

		H_CHECK(proc_wait_exit(p, H_DEADLINE_MS, &st), "%s", bad[i]);
		H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2,
		    "--rule '%s': status 0x%x", bad[i], st);
		H_CHECK(strstr(proc_output(p, H_STDERR, NULL), "--rule") != NULL,
		    "--rule '%s': no message", bad[i]);
	}
}
END_TEST

/*
 * The proxy against a hostile next hop. Every case runs twice: with
 * next_hop.pipelining (the default), where MAIL leaves with the first
 * RCPT and a fault in MAIL's reply reaches the upstream at RCPT; and
 * without, where each command waits for its own reply.
 */

enum step { AT_MAIL, AT_RCPT, AT_DOT };

struct hcase {
	const char	*rule;		/* sink --rule; NULL: nothing listens */
	const char	*yaml;		/* extra YAML (timeouts) */
	enum step	 at;		/* where the upstream sees the failure,
					   without pipelining */
	int		 code;		/* that reply's code; 4: any 4xx */
	const char	*marker;	/* must never reach the upstream */
};

#define T1(k)	"timeouts:\n  " k ": 1\n"

static const struct hcase hcases[] = {
	/* Hostile replies. */
	{ "mail#1=raw-repeat:1000:" LINE100, "", AT_MAIL, 451, "HOSTILE" },
	{ "mail#1=raw-repeat:1000:HOSTILE-no-line-end-0123456789", "",
	  AT_MAIL, 451, "HOSTILE" },
	{ "dot#1=raw:250-HOSTILE unterminated\\r\\n", T1("data_done"), AT_DOT,
	  451, "HOSTILE" },
	{ "mail#1=raw:25 HOSTILE\\r\\n", "", AT_MAIL, 451, "HOSTILE" },
	{ "mail#1=raw:2500 HOSTILE\\r\\n", "", AT_MAIL, 451, "HOSTILE" },
	{ "mail#1=raw:abc\\r\\n", "", AT_MAIL, 451, "abc" },
	{ "mail#1=raw:600 HOSTILE\\r\\n", "", AT_MAIL, 451, "HOSTILE" },
	{ "mail#1=raw:250-ok\\r\\n550 HOSTILE\\r\\n", "", AT_MAIL, 451,
	  "HOSTILE" },
	{ "rcpt#1=raw:354 HOSTILE go ahead\\r\\n", "", AT_RCPT, 451,
	  "HOSTILE" },
	{ "data#1=raw:250 HOSTILE\\r\\n", "", AT_DOT, 451, "HOSTILE" },
	{ "rcpt#1=raw:250 2.1.5 ok\\r\\n250 HOSTILE extra\\r\\n", "", AT_RCPT,
	  451, "HOSTILE" },
	{ "connect#1=raw:220 hi\\r\\n250 HOSTILE\\r\\n", "", AT_MAIL, 4,
	  "HOSTILE" },
	/* Failures at every step. */
	{ NULL, "", AT_MAIL, 4, NULL },
	{ "connect#1=reply:421 4.3.2 HOSTILE busy", "", AT_MAIL, 4, "HOSTILE" },
	{ "connect#1=reply:554 5.3.2 HOSTILE no", "", AT_MAIL, 4, "HOSTILE" },
	{ "connect#1=drop", "", AT_MAIL, 4, NULL },
	{ "connect#1=hang", T1("greeting"), AT_MAIL, 4, NULL },
	{ "ehlo#1=drop", "", AT_MAIL, 4, NULL },
	{ "ehlo#1=reply:421 4.3.2 HOSTILE", "", AT_MAIL, 4, "HOSTILE" },
	{ "mail#1=drop", "", AT_MAIL, 451, NULL },
	{ "mail#1=hang", T1("reply"), AT_MAIL, 451, NULL },
	{ "mail#1=reply:421 4.3.2 closing", "", AT_MAIL, 451, NULL },
	{ "rcpt#1=drop", "", AT_RCPT, 451, NULL },
	{ "rcpt#1=hang", T1("reply"), AT_RCPT, 451, NULL },
	{ "data#1=drop", "", AT_DOT, 451, NULL },
	{ "data#1=hang", T1("data_init"), AT_DOT, 451, NULL },
	{ "body#1=drop", "", AT_DOT, 451, NULL },
	{ "dot#1=drop", "", AT_DOT, 451, NULL },
	{ "dot#1=hang", T1("data_done"), AT_DOT, 451, NULL },
	/* Control: a 5xx the next hop gave to MAIL itself is relayed. */
	{ "mail#1=reply:550 5.7.1 sender refused", "", AT_MAIL, 550, NULL },
};

#define NHCASES	((int)(sizeof(hcases) / sizeof(hcases[0])))

/* Only "NNN[- ]printable\r\n" lines. */
static void
check_clean(struct cli *c, const char *what, const char *marker)
{
	size_t len, i;
	const char *p = cli_received(c, &len);

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r' && i + 1 < len && p[i + 1] == '\n') {
			i++;
			continue;
		}
		H_CHECK(ch >= 0x20 && ch <= 0x7e, "%s: byte 0x%02x at offset "
		    "%zu of what the upstream received", what, ch, i);
	}
	H_CHECK(len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n',
	    "%s: the upstream's last line is unterminated", what);
	H_CHECK(marker == NULL || h_memmem(p, len, marker) == NULL,
	    "%s: \"%s\" reached the upstream", what, marker);
}

/* Where the upstream sees hc's failure, with pipelining on or off. */
static enum step
hostile_step(const struct hcase *hc, int pipelining)
{
	if (pipelining && hc->at == AT_MAIL && hc->rule != NULL &&
	    strncmp(hc->rule, "mail#", 5) == 0)
		return AT_RCPT;
	return hc->at;
}

static void
check_failure(const struct hcase *hc, const struct cli_reply *rep,
    const char *step)
{
	int ok = hc->code == 4 ? rep->code / 100 == 4 : rep->code == hc->code;

	H_CHECK(ok, "next hop \"%s\": the upstream's %s got %d %s %s, "
	    "want %d%s", hc->rule ? hc->rule : "(refused)", step, rep->code,
	    rep->enh, rep->text, hc->code, hc->code == 4 ? "xx" : "");
}

/* MAIL, RCPT, DATA, content: the failure where hc says, 250s before it. */
static void
hostile_session(struct proxy *px, const struct hcase *hc, enum step at)
{
	const char *what = hc->rule ? hc->rule : "(refused)";
	int cls = hc->code == 4 ? 4 : hc->code / 100;
	struct cli_reply *rep;
	struct cli *c;
	char *msg;
	size_t len;

	c = cli_open(px->port);
	cli_sendf(c, "MAIL FROM:<a@x>\r\n");
	rep = cli_expect_class(c, at == AT_MAIL ? cls : 2);
	if (at == AT_MAIL) {
		check_failure(hc, rep, "MAIL");
		goto out;
	}
	H_CHECK(rep->code == 250, "%s: MAIL got %d", what, rep->code);
	cli_sendf(c, "RCPT TO:<b@y>\r\n");
	rep = cli_expect_class(c, at == AT_RCPT ? cls : 2);
	if (at == AT_RCPT) {
		check_failure(hc, rep, "RCPT");
		goto out;
	}
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("hostile"), strlen(h_msg("hostile")), &len);
	cli_send(c, msg, len);
	rep = cli_expect_class(c, 4);
	check_failure(hc, rep, "final dot");
out:
	cli_cmd(c, 221, NULL, "QUIT");
	H_CHECK(cli_wait_closed(c), "%s: open after QUIT", what);
	check_clean(c, what, hc->marker);
}

START_TEST(test_hostile_next_hop)
{
	const struct hcase *hc = &hcases[_i % NHCASES];
	int pipelining = _i < NHCASES;
	struct sink *s = NULL;
	struct proxy *px;
	struct cli_reply *rep;
	struct cli *c;
	int port;

	if (hc->rule != NULL) {
		s = sink_start(NULL, "--rule", hc->rule, (char *)NULL);
		port = s->port;
	} else
		port = h_free_port();
	px = proxy_start(h_yaml_hop(&port, 1, pipelining ? "" :
	    "  pipelining: false\n", hc->yaml));

	hostile_session(px, hc, hostile_step(hc, pipelining));

	/* The proxy is alive and the next hop (#2 onwards) is normal now. */
	c = cli_open(px->port);
	if (s == NULL) {
		cli_cmd(c, 451, "4.4.1", "MAIL FROM:<a@x>");
		cli_quit(c);
		return;
	}
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("normal"),
	    strlen(h_msg("normal")));
	H_CHECK(rep->code == 250, "after \"%s\": %d %s %s", hc->rule,
	    rep->code, rep->enh, rep->text);
	cli_quit(c);
	check_clean(c, "the normal session", NULL);
	/* The hostile connection was closed, not left behind. */
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 1, "after \"%s\": %zu messages accepted at "
	    "the sink", hc->rule, sink_count(s));
	H_CHECK(strstr(sink_eml(s, 0, NULL), "Subject: normal\r\n") != NULL,
	    "after \"%s\": the hostile message was accepted", hc->rule);
}
END_TEST

/*
 * NUL, ESC and other control bytes in a 250 to RCPT: that one may be
 * relayed as a 250, but scrubbed to printable ASCII.
 */
START_TEST(test_control_bytes_scrubbed)
{
	struct sink *s = sink_start(NULL, "--rule",
	    "rcpt#1=raw:250 2.1.5 ok\\0\\x1b[31mred\\x07\\x7f\\xff\\x1b]0;t\\r\\n",
	    (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	rep = cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	H_CHECK(strncmp(rep->text, "ok", 2) == 0 &&
	    strstr(rep->text, "[31mred") != NULL, "RCPT reply text \"%s\"",
	    rep->text);
	check_clean(c, "RCPT reply with control bytes", NULL);
	/* The sink took the raw reply as a refusal: start over. */
	cli_cmd(c, 250, NULL, "RSET");
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("normal"),
	    strlen(h_msg("normal")));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
	cli_quit(c);
	check_clean(c, "the session", NULL);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_hostile");
	TCase *tc = h_tcase("sink-raw");

	tcase_add_test(tc, test_sink_raw_rules);
	tcase_add_test(tc, test_sink_raw_body_connect);
	tcase_add_test(tc, test_sink_raw_bad_specs);
	suite_add_tcase(s, tc);

	tc = h_tcase("next-hop");
	tcase_add_loop_test(tc, test_hostile_next_hop, 0, 2 * NHCASES);
	tcase_add_test(tc, test_control_bytes_scrubbed);
	suite_add_tcase(s, tc);
	return h_run(s);
}
