/*
 * smuggling_test: SMTP smuggling through the proxy. The client ends its
 * data with a lookalike terminator (bare LF, bare CR, NUL) followed by a
 * second transaction, then the real <CRLF>.<CRLF>. Whatever the proxy
 * answers, the next hop must never see the hidden transaction as commands,
 * nor any bare CR or LF (docs/security.md; SMTP smuggling, CVE-2023-51764).
 */
#include <string.h>
#include <strings.h>

#include "harness.h"

struct variant {
	const char	*name;
	const char	*eod;		/* the fake end of data */
	size_t		 len;
};

#define V(name, s)	{ name, s, sizeof(s) - 1 }
static const struct variant variants[] = {
	V("LF.LF", "\n.\n"),
	V("CR.CR", "\r.\r"),
	V("CRLF.LF", "\r\n.\n"),
	V("LF.CRLF", "\n.\r\n"),
	V("CRLF NUL.CRLF", "\r\n\0.\r\n"),
	V("CR.CRLF", "\r.\r\n"),
	V("CRLF.CR", "\r\n.\r"),
};
#define NVARIANTS	(sizeof(variants) / sizeof(variants[0]))

static const char smuggled[] =
	"MAIL FROM:<evil@x>\r\n"
	"RCPT TO:<victim@y>\r\n"
	"DATA\r\n"
	"Subject: smuggled\r\n"
	"\r\n"
	"smuggled\r\n";

/*
 * Check what the next hop received on every connection: CRLF line endings
 * only, no NUL, and no command of the hidden transaction outside DATA.
 * Returns the number of terminators seen.
 */
static size_t
check_wires(struct sink *s, const char *what)
{
	size_t n, i, len, terms = 0, datas = 0, mails = 0;
	char **names = sink_wires(s, &n);

	for (i = 0; i < n; i++) {
		char *w = sink_read(s, names[i], &len);
		size_t k, start;
		int indata = 0;

		H_CHECK(w != NULL, "%s vanished", names[i]);
		for (k = 0; k < len; k++) {
			H_CHECK(w[k] != '\0', "%s: NUL at offset %zu of %s",
			    what, k, names[i]);
			H_CHECK(w[k] != '\r' || (k + 1 < len && w[k + 1] == '\n'),
			    "%s: bare CR at offset %zu of %s", what, k,
			    names[i]);
			H_CHECK(w[k] != '\n' || (k > 0 && w[k - 1] == '\r'),
			    "%s: bare LF at offset %zu of %s", what, k,
			    names[i]);
		}
		/* Lines, with the client side's view of DATA mode. */
		for (start = 0; start < len; ) {
			const char *nl = memchr(w + start, '\n', len - start);
			size_t ll = nl ? (size_t)(nl - (w + start)) - 1 :
			    len - start;
			const char *l = w + start;

			if (!indata) {
				H_CHECK(!(ll >= 18 && strncasecmp(l,
				    "MAIL FROM:<evil@x>", 18) == 0),
				    "%s: the hidden MAIL reached the next hop "
				    "as a command (%s)", what, names[i]);
				H_CHECK(!(ll >= 18 && strncasecmp(l,
				    "RCPT TO:<victim@y>", 18) == 0),
				    "%s: the hidden RCPT reached the next hop "
				    "as a command (%s)", what, names[i]);
				if (ll >= 10 && strncasecmp(l, "MAIL FROM:",
				    10) == 0)
					mails++;
				if (ll == 4 && strncasecmp(l, "DATA", 4) == 0) {
					indata = 1;
					datas++;
				}
			} else if (ll == 1 && l[0] == '.') {
				indata = 0;
				terms++;
			}
			if (nl == NULL)
				break;
			start = (size_t)(nl - w) + 1;
		}
	}
	H_CHECK(terms <= datas, "%s: %zu terminators for %zu DATA commands",
	    what, terms, datas);
	/*
	 * The next hop answered our MAIL (the proxy relays that reply), so
	 * the wire files must show it; otherwise this check looked at nothing.
	 */
	H_CHECK(mails > 0, "%s: no MAIL command in %zu wire files", what, n);
	return terms;
}

START_TEST(test_smuggling)
{
	const struct variant *v = &variants[_i];
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct buf b = BUF_INIT;
	struct cli *c;
	size_t n, i;

	buf_appends(&b, "From: <a@x>\r\nTo: <b@y>\r\nSubject: cover\r\n\r\n"
	    "cover");
	buf_append(&b, v->eod, v->len);
	buf_appends(&b, smuggled);
	buf_appends(&b, "\r\n.\r\n");
	h_keep(b.data);

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_cmd(c, 354, NULL, "DATA");
	cli_send(c, b.data, b.len);
	rep = cli_expect(c, 554, "5.6.0");
	(void)rep;
	/*
	 * Exactly one reply for the whole of it: had the proxy taken the
	 * hidden lines for commands, their replies would come before this.
	 */
	cli_cmd(c, 250, NULL, "NOOP");
	cli_quit(c);
	sink_wait_idle(s);

	/* Zero or one message, never the hidden one. */
	n = sink_count(s);
	H_CHECK(n <= 1, "%s: %zu messages at the sink", v->name, n);
	for (i = 0; i < n; i++) {
		char *env = sink_env(s, i);

		H_CHECK(strstr(env, "evil@x") == NULL &&
		    strstr(env, "victim@y") == NULL,
		    "%s: the hidden transaction was delivered:\n%s", v->name,
		    env);
	}
	check_wires(s, v->name);
}
END_TEST

/*
 * The same bytes, but the whole transaction in one write (PIPELINING):
 * DATA's 354 must not be assumed. Content sent before the 354 is refused.
 */
START_TEST(test_content_before_354)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply rep;
	struct cli *c;
	size_t n, i, len;
	char **wires;

	c = cli_open(px->port);
	cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
	cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
	cli_sendf(c, "DATA\r\nSubject: early bird\r\n\r\nearly\r\n.\r\n");
	H_CHECK(cli_reply(c, &rep) == 0, "no reply: %s", rep.text);
	if (rep.code == 354)
		H_CHECK(cli_reply(c, &rep) == 0, "no reply: %s", rep.text);
	H_CHECK(rep.code == 554 && strcmp(rep.enh, "5.5.0") == 0,
	    "content before 354: %d %s %s", rep.code, rep.enh, rep.text);
	cli_close(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0, "%zu messages at the sink", sink_count(s));
	wires = sink_wires(s, &n);
	for (i = 0; i < n; i++) {
		char *w = sink_read(s, wires[i], &len);

		H_CHECK(w == NULL || h_memmem(w, len, "early bird") == NULL,
		    "content sent before 354 reached the next hop (%s)",
		    wires[i]);
	}
}
END_TEST

/*
 * XCLIENT and XFORWARD from a client are never honoured nor passed on: a
 * sender must not be able to tell the next hop it is someone else.
 */
START_TEST(test_no_xclient_xforward)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli_reply *rep;
	struct cli *c;
	size_t n, i, len;
	char **wires;

	c = cli_open(px->port);
	cli_cmd(c, 502, "5.5.1", "XCLIENT ADDR=192.0.2.66 NAME=trusted.example");
	cli_cmd(c, 502, "5.5.1", "XFORWARD ADDR=192.0.2.66");
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg("after xclient"),
	    strlen(h_msg("after xclient")));
	H_CHECK(rep->code == 250, "%d %s", rep->code, rep->text);
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(strstr(sink_env(s, 0), "client 127.0.0.1:") != NULL,
	    "the next hop saw another client: %s", sink_env(s, 0));
	wires = sink_wires(s, &n);
	for (i = 0; i < n; i++) {
		char *w = sink_read(s, wires[i], &len);

		H_CHECK(w == NULL || (h_memmem(w, len, "XCLIENT") == NULL &&
		    h_memmem(w, len, "XFORWARD") == NULL && h_memmem(w, len,
		    "192.0.2.66") == NULL), "XCLIENT/XFORWARD reached the next "
		    "hop (%s)", wires[i]);
	}
}
END_TEST

/* A NUL, bare CR or bare LF inside an otherwise normal message. */
START_TEST(test_bad_bytes_rejected)
{
	static const struct variant bad[] = {
		V("NUL", "a\0b\r\n"), V("bare LF", "a\nb\r\n"),
		V("bare CR", "a\rb\r\n"),
	};
	struct sink *s = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s->port, 1, ""));
	struct cli *c;
	size_t i;

	c = cli_open(px->port);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cli_cmd(c, 250, NULL, "MAIL FROM:<a@x>");
		cli_cmd(c, 250, NULL, "RCPT TO:<b@y>");
		cli_cmd(c, 354, NULL, "DATA");
		cli_send(c, "Subject: bad\r\n\r\n", 16);
		cli_send(c, bad[i].eod, bad[i].len);
		cli_send(c, ".\r\n", 3);
		cli_expect(c, 554, "5.6.0");
	}
	cli_quit(c);
	sink_wait_idle(s);
	H_CHECK(sink_count(s) == 0, "%zu messages at the sink", sink_count(s));
	check_wires(s, "bad bytes");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_smuggling");
	TCase *tc = h_tcase("smuggling");

	tcase_add_loop_test(tc, test_smuggling, 0, (int)NVARIANTS);
	tcase_add_test(tc, test_content_before_354);
	tcase_add_test(tc, test_bad_bytes_rejected);
	tcase_add_test(tc, test_no_xclient_xforward);
	suite_add_tcase(s, tc);
	return h_run(s);
}
