/*
 * proxy_test: mail through bin/mailprevent to an mta-sim sink. What the
 * next hop receives, how its replies come back, EHLO, PIPELINING and the
 * limits (size, command line, recipients).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

/* One proxy in front of one sink started with the given extra args. */
struct rig {
	struct sink	*sink;
	struct proxy	*px;
};

static struct rig
rig_start(const char *yaml_extra, const char *const *sink_args)
{
	struct rig r;
	const char *a[8] = { NULL };
	size_t i;

	for (i = 0; sink_args != NULL && sink_args[i] != NULL && i < 7; i++)
		a[i] = sink_args[i];
	r.sink = sink_start(NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
	    (char *)NULL);
	r.px = proxy_start(h_yaml(&r.sink->port, 1, yaml_extra));
	return r;
}

/*
 * The content the byte-identical test sends: the awkward cases. lead is
 * the first octet of the 998-octet line.
 */
static char *
awkward_content(char lead, size_t *len)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_appends(&b,
	    "From: =?utf-8?q?J=C3=BCrgen?= <a@x>\r\n"
	    "To: <b@y>\r\n"
	    "Subject: byte-identical\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n"
	    ".leading dot\r\n"
	    "..two leading dots\r\n"
	    ".\r\n"			/* a line that is only a dot */
	    "\r\n"
	    " .\r\n"
	    "trailing spaces   \r\n"
	    "tab\there\r\n"
	    "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln, \xe6\x97\xa5\xe6\x9c\xac"
	    "\xe8\xaa\x9e, \xf0\x9f\x93\xa7\r\n"
	    "\xc3\xa9.\r\n");
	/* 998 octets: the longest line RFC 5321 allows. */
	buf_append(&b, &lead, 1);
	for (i = 1; i < 998; i++)
		buf_append(&b, (i % 64) ? "x" : "\xc3", 1);
	buf_appends(&b, "\r\n"
	    "From the start of a line\r\n"
	    "last line.\r\n");
	*len = b.len;
	buf_cstr(&b);
	return h_keep(b.data);
}

/* Send content with BODY=8BITMIME; it must arrive byte-identical. */
static void
check_identical(const char *content, size_t len)
{
	struct rig r = rig_start("", NULL);
	struct cli_reply *rep;
	struct cli *c;
	size_t elen;
	char *want, *eml, *env, *mf;

	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", "BODY=8BITMIME", "b@y", content, len);
	H_CHECK(rep->code == 250, "reply to the final dot: %d %s %s",
	    rep->code, rep->enh, rep->text);

	/* 250 comes only after the sink's 250, so the file is there. */
	H_CHECK(sink_count(r.sink) == 1, "%zu messages at the sink",
	    sink_count(r.sink));
	want = h_strf("%s\r\n", H_PASS_HEADER);
	want = h_strf("%s%.*s", want, (int)len, content);
	eml = sink_eml(r.sink, 0, &elen);
	H_CHECK_BYTES(eml, elen, want, strlen(H_PASS_HEADER) + 2 + len,
	    "message at the sink");

	env = sink_env(r.sink, 0);
	mf = h_env_line(env, "mail-from ");
	H_CHECK(mf != NULL, "no mail-from line in .env:\n%s", env);
	H_CHECK(strncmp(mf, "mail-from <a@x>", 15) == 0, "%s", mf);
	H_CHECK(h_has_token(mf, "BODY=8BITMIME"), "%s", mf);
	H_CHECK(h_env_count(env, "rcpt ") == 1, "%s", env);
	H_CHECK(h_env_line(env, "rcpt <b@y>") != NULL, "%s", env);
	cli_quit(c);
}

START_TEST(test_byte_identical_8bit)
{
	size_t len;
	char *content = awkward_content('x', &len);

	check_identical(content, len);
}
END_TEST

/*
 * RFC 5321 4.5.3.1.6: 1000 octets per line with CRLF, "not counting the
 * leading dot duplicated for transparency". A 998-octet line that starts
 * with a dot is 999 octets on the wire and still legal.
 */
START_TEST(test_longest_line_with_leading_dot)
{
	size_t len;
	char *content = awkward_content('.', &len);

	check_identical(content, len);
}
END_TEST

START_TEST(test_empty_body_and_relayed_log)
{
	struct rig r = rig_start("", NULL);
	const char *content = "Subject: no body\r\n";
	struct cli_reply *rep;
	struct cli *c;
	size_t elen;
	char *eml, *want, *line;

	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", content, strlen(content));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	want = h_strf("%s\r\n%s", H_PASS_HEADER, content);
	eml = sink_eml(r.sink, 0, &elen);
	H_CHECK_BYTES(eml, elen, want, strlen(want), "message at the sink");
	line = proxy_wait_log(r.px, "event=relayed");
	H_CHECK(h_kv_has(line, "hop", h_strf("127.0.0.1:%d", r.sink->port)),
	    "%s", line);
	cli_quit(c);
}
END_TEST

START_TEST(test_mixed_rcpt_replies)
{
	static const char *const args[] = {
		"--rule", "rcpt:bad@x=reply:550 5.1.1 <bad@x>: no such user",
		"--rule", "rcpt:later@x=reply:451 4.2.0 mailbox busy, try later",
		NULL
	};
	struct rig r = rig_start("", args);
	struct cli_reply *rep;
	struct cli *c;
	char *env, *msg;
	size_t wlen;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<good1@x>");
	rep = cli_cmd(c, 550, "5.1.1", "RCPT TO:<bad@x>");
	H_CHECK(strcmp(rep->text, "<bad@x>: no such user") == 0, "text \"%s\"",
	    rep->text);
	rep = cli_cmd(c, 451, "4.2.0", "RCPT TO:<later@x>");
	H_CHECK(strcmp(rep->text, "mailbox busy, try later") == 0,
	    "text \"%s\"", rep->text);
	cli_cmd(c, 250, NULL, "RCPT TO:<good2@x>");
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("mixed"), strlen(h_msg("mixed")), &wlen);
	cli_send(c, msg, wlen);
	cli_expect(c, 250, NULL);

	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	env = sink_env(r.sink, 0);
	H_CHECK(h_env_count(env, "rcpt ") == 2, "%s", env);
	H_CHECK(h_env_line(env, "rcpt <good1@x>") != NULL, "%s", env);
	H_CHECK(h_env_line(env, "rcpt <good2@x>") != NULL, "%s", env);
	H_CHECK(strstr(env, "bad@x") == NULL, "%s", env);
	H_CHECK(strstr(env, "later@x") == NULL, "%s", env);
	cli_quit(c);
}
END_TEST

/* next_hop.pipelining off: each command waits for the next hop's reply. */
START_TEST(test_mail_reply_relayed)
{
	struct rig r;
	struct cli_reply *rep;
	struct cli *c;

	r.sink = sink_start(NULL, "--rule",
	    "mail#1=reply:550 5.7.1 sender refused by policy", (char *)NULL);
	r.px = proxy_start(h_yaml_hop(&r.sink->port, 1,
	    "  pipelining: false\n", ""));
	c = cli_open(r.px->port);
	rep = cli_cmd(c, 550, "5.7.1", "MAIL FROM:<a@x>");
	H_CHECK(strcmp(rep->text, "sender refused by policy") == 0,
	    "text \"%s\"", rep->text);
	/* The session goes on: the next transaction is the sink's 2nd MAIL. */
	rep = cli_mail(c, "a2@x", NULL, "b@y", h_msg("second"),
	    strlen(h_msg("second")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	H_CHECK(h_env_line(sink_env(r.sink, 0), "mail-from <a2@x>") != NULL,
	    "%s", sink_env(r.sink, 0));
	cli_quit(c);
}
END_TEST

/*
 * With pipelining (the default) MAIL goes out with the first RCPT: the
 * proxy answers MAIL itself, and the next hop's refusal of the sender is
 * the reply to RCPT. The next RCPT sends MAIL again.
 */
START_TEST(test_mail_refusal_at_rcpt)
{
	static const char *const args[] = {
		"--rule", "mail#1=reply:550 5.7.1 sender refused by policy", NULL
	};
	struct rig r = rig_start("", args);
	struct cli_reply *rep;
	const char *env;
	struct cli *c;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	rep = cli_cmd(c, 550, "5.7.1", "RCPT TO:<b@y>");
	H_CHECK(strcmp(rep->text, "sender refused by policy") == 0,
	    "text \"%s\"", rep->text);
	cli_cmd(c, 250, NULL, "RCPT TO:<c@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_sendf(c, "Subject: second try\r\n\r\nx\r\n.\r\n");
	cli_expect(c, 250, NULL);
	cli_quit(c);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	env = sink_env(r.sink, 0);
	H_CHECK(h_env_line(env, "mail-from <a@x>") != NULL, "%s", env);
	H_CHECK(h_env_count(env, "rcpt ") == 1 &&
	    h_env_line(env, "rcpt <c@y>") != NULL, "%s", env);
	/* Both times MAIL reached the sink with RCPT right behind it. */
	H_CHECK(sink_events(r.sink, "event=pipelined") == 2, "%zu pipelined "
	    "commands at the sink, want 2 (MAIL twice)",
	    sink_events(r.sink, "event=pipelined"));
}
END_TEST

/* A refused MAIL, then the next hop hangs up: the refusal still answers. */
START_TEST(test_mail_refusal_then_close)
{
	static const char *const args[] = {
		"--rule", "mail#1=reply:554 5.7.1 go away", "--rule",
		"rcpt#1=drop", NULL
	};
	struct rig r = rig_start("", args);
	struct cli *c;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 554, "5.7.1", "RCPT TO:<b@y>");
	cli_quit(c);
	H_CHECK(sink_count(r.sink) == 0, "%zu", sink_count(r.sink));
}
END_TEST

/*
 * A next hop that refuses MAIL and then takes the RCPT is out of step:
 * the refusal answers, and that session is never used again.
 */
START_TEST(test_mail_refusal_then_rcpt_taken)
{
	static const char *const args[] = {
		"--rule", "mail#1=reply:550 5.7.1 sender refused", "--rule",
		"rcpt#1=reply:250 2.1.5 ok anyway", NULL
	};
	struct rig r = rig_start("", args);
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 550, "5.7.1", "RCPT TO:<b@y>");
	cli_cmd(c, 451, NULL, "RCPT TO:<c@y>");
	cli_quit(c);
	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("fresh"),
	    strlen(h_msg("fresh")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	H_CHECK(sink_events(r.sink, "event=connect") == 2, "%zu connections "
	    "to the next hop, want 2: the out-of-step one was reused",
	    sink_events(r.sink, "event=connect"));
}
END_TEST

START_TEST(test_ehlo_keywords)
{
	struct rig r = rig_start("", NULL);
	static const char *const want[] = {
		"PIPELINING", "8BITMIME", "DSN", "ENHANCEDSTATUSCODES", NULL
	};
	static const char *const never[] = { "CHUNKING", "STARTTLS", NULL };
	struct cli_reply *rep;
	struct cli *c;
	char *kw[64];
	size_t n = 0, i, j;
	char *p, *save = NULL;
	int found;

	c = cli_connect(r.px->port);
	cli_expect(c, 220, NULL);
	rep = cli_cmd(c, 250, NULL, "EHLO client.test");
	/* First line: the server's name; then one keyword per line. */
	p = h_keep(strdup(rep->text));
	for (p = strtok_r(p, "\n", &save); p != NULL && n < 64;
	    p = strtok_r(NULL, "\n", &save))
		kw[n++] = p;
	H_CHECK(n >= 2, "EHLO reply has no keywords: %s", rep->text);
	for (i = 0; want[i] != NULL; i++) {
		for (found = 0, j = 1; j < n; j++)
			found |= strcasecmp(kw[j], want[i]) == 0;
		H_CHECK(found, "EHLO lacks %s:\n%s", want[i], rep->text);
	}
	for (found = 0, j = 1; j < n; j++)
		found |= strcasecmp(kw[j], h_strf("SIZE %d", H_MAX_SIZE)) == 0;
	H_CHECK(found, "EHLO lacks SIZE %d:\n%s", H_MAX_SIZE, rep->text);
	for (i = 0; never[i] != NULL; i++)
		for (j = 1; j < n; j++)
			H_CHECK(strncasecmp(kw[j], never[i],
			    strlen(never[i])) != 0, "EHLO offers %s:\n%s",
			    never[i], rep->text);
	cli_quit(c);
}
END_TEST

START_TEST(test_pipelining)
{
	struct rig r = rig_start("", NULL);
	struct cli *c;
	char *msg, *env;
	size_t wlen;

	c = cli_connect(r.px->port);
	cli_expect(c, 220, NULL);
	cli_sendf(c, "EHLO client.test\r\nMAIL FROM:<a@x>\r\n"
	    "RCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
	cli_expect(c, 250, NULL);	/* EHLO */
	cli_expect(c, 250, NULL);	/* MAIL */
	cli_expect(c, 250, NULL);	/* RCPT b */
	cli_expect(c, 250, NULL);	/* RCPT c */
	cli_expect(c, 354, NULL);
	msg = h_stuff(h_msg("pipelined 1"), strlen(h_msg("pipelined 1")), &wlen);
	cli_send(c, msg, wlen);
	cli_expect(c, 250, NULL);

	/* A second transaction in one write, QUIT included. */
	cli_sendf(c, "MAIL FROM:<a2@x>\r\nRCPT TO:<d@y>\r\nDATA\r\n");
	cli_expect(c, 250, NULL);
	cli_expect(c, 250, NULL);
	cli_expect(c, 354, NULL);
	msg = h_stuff(h_msg("pipelined 2"), strlen(h_msg("pipelined 2")), &wlen);
	msg = h_strf("%.*sQUIT\r\n", (int)wlen, msg);
	cli_send(c, msg, strlen(msg));
	cli_expect(c, 250, NULL);
	cli_expect(c, 221, NULL);
	H_CHECK(cli_wait_closed(c), "the proxy kept the connection after 221");

	H_CHECK(sink_count(r.sink) == 2, "%zu", sink_count(r.sink));
	env = sink_env(r.sink, 0);
	H_CHECK(h_env_line(env, "mail-from <a@x>") != NULL, "%s", env);
	H_CHECK(h_env_count(env, "rcpt ") == 2, "%s", env);
	H_CHECK(h_env_line(env, "rcpt <b@y>") != NULL, "%s", env);
	H_CHECK(h_env_line(env, "rcpt <c@y>") != NULL, "%s", env);
	env = sink_env(r.sink, 1);
	H_CHECK(h_env_line(env, "mail-from <a2@x>") != NULL, "%s", env);
	H_CHECK(h_env_count(env, "rcpt ") == 1, "%s", env);
	H_CHECK(strstr(sink_eml(r.sink, 1, NULL), "Subject: pipelined 2\r\n"),
	    "second message is not the second one sent");
}
END_TEST

START_TEST(test_size_declared_too_big)
{
	struct rig r = rig_start("", NULL);
	struct cli_reply *rep;
	struct cli *c;

	c = cli_open(r.px->port);
	cli_cmd(c, 552, "5.3.4", "MAIL FROM:<a@x> SIZE=%d", H_MAX_SIZE + 1);
	/* Exactly the limit is fine, and the session is still usable. */
	rep = cli_mail(c, "a@x", h_strf("SIZE=%d", H_MAX_SIZE), "b@y",
	    h_msg("after 552"), strlen(h_msg("after 552")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	H_CHECK(strstr(sink_eml(r.sink, 0, NULL), "Subject: after 552\r\n"),
	    "wrong message at the sink");
	cli_quit(c);
}
END_TEST

START_TEST(test_size_actual_too_big)
{
	struct rig r = rig_start("", NULL);
	struct cli_reply *rep;
	struct buf b = BUF_INIT;
	struct cli *c;
	size_t i;

	buf_appends(&b, "Subject: too big\r\n\r\n");
	/* 100-octet lines until just over the limit. */
	for (i = 0; b.len <= H_MAX_SIZE; i++)
		buf_appendf(&b, "%08zu%090d\r\n", i, 0);
	h_keep(b.data);

	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", b.data, b.len);
	H_CHECK(rep->code == 552 && strcmp(rep->enh, "5.3.4") == 0,
	    "reply to an oversized message: %d %s %s", rep->code, rep->enh,
	    rep->text);
	/* The proxy read to the end: the session goes on in step. */
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("small"),
	    strlen(h_msg("small")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	sink_wait_idle(r.sink);
	H_CHECK(sink_count(r.sink) == 1, "%zu messages at the sink",
	    sink_count(r.sink));
	H_CHECK(strstr(sink_eml(r.sink, 0, NULL), "Subject: small\r\n"),
	    "the oversized message reached the sink");
	H_CHECK(sink_count_rejected(r.sink) == 0, "oversized message sent");
}
END_TEST

START_TEST(test_size_forwarded)
{
	struct rig r = rig_start("", NULL);
	const char *content = h_msg("sized");
	size_t len = strlen(content);
	struct cli_reply *rep;
	struct cli *c;
	char *mf, *v = NULL;
	long n;

	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", h_strf("SIZE=%zu", len), "b@y", content, len);
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	mf = h_env_line(sink_env(r.sink, 0), "mail-from ");
	H_CHECK(mf != NULL && (v = strstr(mf, " SIZE=")) != NULL,
	    "no SIZE in \"%s\"", mf ? mf : "(none)");
	n = strtol(v + 6, NULL, 10);
	/* The proxy may count its pass header in; it may not shrink it. */
	H_CHECK(n >= (long)len, "SIZE=%ld forwarded, %zu declared", n, len);
	cli_quit(c);
}
END_TEST

START_TEST(test_size_not_sent_unless_offered)
{
	static const char *const args[] = { "--no-ext", "SIZE", NULL };
	struct rig r = rig_start("", args);
	const char *content = h_msg("sized");
	size_t len = strlen(content);
	struct cli_reply *rep;
	struct cli *c;
	char *mf;

	c = cli_open(r.px->port);
	rep = cli_mail(c, "a@x", h_strf("SIZE=%zu", len), "b@y", content, len);
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	mf = h_env_line(sink_env(r.sink, 0), "mail-from ");
	H_CHECK(mf != NULL && strstr(mf, "SIZE=") == NULL,
	    "SIZE sent to a next hop that did not offer it: \"%s\"",
	    mf ? mf : "(none)");
	cli_quit(c);
}
END_TEST

START_TEST(test_command_line_limit)
{
	struct rig r = rig_start("", NULL);
	struct cli_reply *rep;
	struct cli *c;
	char pad[700];

	c = cli_open(r.px->port);
	memset(pad, 'a', sizeof(pad));
	/* 512 octets with CRLF: the longest allowed line (RFC 5321 4.5.3.1.4). */
	cli_cmd(c, 250, NULL, "NOOP %.*s", 512 - 7, pad);
	cli_cmd(c, 500, "5.5.2", "NOOP %.*s", 513 - 7, pad);
	cli_cmd(c, 500, "5.5.2", "MAIL FROM:<%.*s@x>", 600, pad);
	/* The rest of the long line was not taken for a command. */
	cli_cmd(c, 250, NULL, "NOOP");
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("after long line"),
	    strlen(h_msg("after long line")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	H_CHECK(sink_count(r.sink) == 1, "%zu", sink_count(r.sink));
	cli_quit(c);
}
END_TEST

START_TEST(test_max_recipients)
{
	struct rig r = rig_start("limits:\n  max_recipients: 3\n", NULL);
	struct cli *c;
	char *msg, *env;
	size_t wlen;

	c = cli_open(r.px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<r1@y>");
	cli_cmd(c, 250, NULL, "RCPT TO:<r2@y>");
	cli_cmd(c, 250, NULL, "RCPT TO:<r3@y>");
	cli_cmd(c, 452, "4.5.3", "RCPT TO:<r4@y>");
	cli_cmd(c, 354, NULL, "DATA");
	msg = h_stuff(h_msg("three"), strlen(h_msg("three")), &wlen);
	cli_send(c, msg, wlen);
	cli_expect(c, 250, NULL);
	env = sink_env(r.sink, 0);
	H_CHECK(h_env_count(env, "rcpt ") == 3, "%s", env);
	H_CHECK(strstr(env, "r4@y") == NULL, "%s", env);
	cli_quit(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_proxy");
	TCase *tc = h_tcase("relay");

	tcase_add_test(tc, test_byte_identical_8bit);
	tcase_add_test(tc, test_longest_line_with_leading_dot);
	tcase_add_test(tc, test_empty_body_and_relayed_log);
	tcase_add_test(tc, test_mixed_rcpt_replies);
	tcase_add_test(tc, test_mail_reply_relayed);
	tcase_add_test(tc, test_mail_refusal_at_rcpt);
	tcase_add_test(tc, test_mail_refusal_then_close);
	tcase_add_test(tc, test_mail_refusal_then_rcpt_taken);
	tcase_add_test(tc, test_ehlo_keywords);
	tcase_add_test(tc, test_pipelining);
	suite_add_tcase(s, tc);

	tc = h_tcase("limits");
	tcase_add_test(tc, test_size_declared_too_big);
	tcase_add_test(tc, test_size_actual_too_big);
	tcase_add_test(tc, test_size_forwarded);
	tcase_add_test(tc, test_size_not_sent_unless_offered);
	tcase_add_test(tc, test_command_line_limit);
	tcase_add_test(tc, test_max_recipients);
	suite_add_tcase(s, tc);
	return h_run(s);
}
