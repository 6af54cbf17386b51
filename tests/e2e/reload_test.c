/*
 * reload_test: SIGHUP re-reads the configuration. A bad file is refused
 * and the proxy goes on with the old one; a good one applies to sessions
 * that start after it (config.h: a session keeps the config it began with).
 */
#include <signal.h>
#include <string.h>

#include "harness.h"

#define NEW_HEADER	"X-Filter-Loop: Changed"

/* yaml with the first "from" replaced by "to". */
static char *
replace(const char *yaml, const char *from, const char *to)
{
	const char *p = strstr(yaml, from);

	H_CHECK(p != NULL, "no \"%s\" in the test config", from);
	return h_strf("%.*s%s%s", (int)(p - yaml), yaml, to, p + strlen(from));
}

#define with_header(yaml, h)	replace(yaml, H_PASS_HEADER, h)

/* SIGHUP and return the reload line that follows. */
static char *
reload(struct proxy *px)
{
	proc_mark(px->proc, H_STDERR);
	proc_signal(px->proc, SIGHUP);
	return proxy_wait_log(px, "event=reload");
}

/* Send one message on an open session; expect 250. */
static void
send_on(struct cli *c, const char *subject)
{
	struct cli_reply *rep;

	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subject),
	    strlen(h_msg(subject)));
	H_CHECK(rep->code == 250, "%d %s %s", rep->code, rep->enh, rep->text);
}

/* The accepted message with this subject starts with header + CRLF. */
static void
check_header(struct sink *s, const char *subject, const char *header)
{
	size_t n, i, len;
	char **names = sink_messages(s, &n);
	char *eml, *want = h_strf("%s\r\n", header);

	for (i = 0; i < n; i++) {
		eml = sink_read(s, h_strf("%s.eml", names[i]), &len);
		if (eml == NULL || strstr(eml, h_strf("Subject: %s\r\n",
		    subject)) == NULL)
			continue;
		H_CHECK(len >= strlen(want) && memcmp(eml, want,
		    strlen(want)) == 0, "message \"%s\" does not start with "
		    "\"%s\":\n%.200s", subject, header, eml);
		return;
	}
	H_CHECK(0, "no message \"%s\" at the sink", subject);
}

START_TEST(test_reload_broken_config_refused)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	char *yaml = h_yaml(&s->port, 1, "");
	struct proxy *px = proxy_start(yaml);
	struct cli *c;
	char *line;

	/* Not YAML at all. */
	proxy_write_config(px, "listen: [\"127.0.0.1:0\"\nmode: {forward\n");
	line = reload(px);
	H_CHECK(h_kv_has(line, "status", "refused"), "%s", line);

	/* YAML, but not a valid configuration: refused as well. */
	proxy_write_config(px, with_header(replace(yaml, "mode: forward",
	    "mode: sideways"), NEW_HEADER));
	line = reload(px);
	H_CHECK(h_kv_has(line, "status", "refused"), "%s", line);

	/* Still serving, with the old configuration. */
	H_CHECK(proc_running(px->proc), "the proxy exited on a bad reload");
	c = cli_open(px->port);
	send_on(c, "after refused reload");
	cli_quit(c);
	check_header(s, "after refused reload", H_PASS_HEADER);
}
END_TEST

START_TEST(test_reload_applies_to_new_sessions)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	char *yaml = h_yaml(&s->port, 1, "");
	struct proxy *px = proxy_start(yaml);
	struct cli *c;
	char *line;

	c = cli_open(px->port);
	send_on(c, "before reload");
	cli_quit(c);

	proxy_write_config(px, with_header(yaml, NEW_HEADER));
	line = reload(px);
	H_CHECK(h_kv_has(line, "status", "ok"), "%s", line);

	c = cli_open(px->port);
	send_on(c, "after reload");
	cli_quit(c);
	check_header(s, "before reload", H_PASS_HEADER);
	check_header(s, "after reload", NEW_HEADER);
}
END_TEST

START_TEST(test_reload_open_session_keeps_config)
{
	struct sink *s = sink_start(NULL, (char *)NULL);
	char *yaml = h_yaml(&s->port, 1, "");
	struct proxy *px = proxy_start(yaml);
	struct cli *old, *c;
	char *line;

	old = cli_open(px->port);	/* greeted and EHLO done before the HUP */
	proxy_write_config(px, with_header(yaml, NEW_HEADER));
	line = reload(px);
	H_CHECK(h_kv_has(line, "status", "ok"), "%s", line);

	c = cli_open(px->port);
	send_on(c, "new session");
	send_on(old, "old session");
	cli_quit(c);
	cli_quit(old);
	check_header(s, "new session", NEW_HEADER);
	check_header(s, "old session", H_PASS_HEADER);
}
END_TEST

START_TEST(test_reload_next_hop_change)
{
	struct sink *s1 = sink_start(NULL, (char *)NULL);
	struct sink *s2 = sink_start(NULL, (char *)NULL);
	struct proxy *px = proxy_start(h_yaml(&s1->port, 1, ""));
	struct cli *c;
	char *line;

	proxy_write_config(px, h_yaml(&s2->port, 1, ""));
	line = reload(px);
	H_CHECK(h_kv_has(line, "status", "ok"), "%s", line);
	c = cli_open(px->port);
	send_on(c, "to the new host");
	cli_quit(c);
	H_CHECK(sink_count(s2) == 1, "%zu at the new host", sink_count(s2));
	H_CHECK(sink_count(s1) == 0, "%zu at the old host", sink_count(s1));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_reload");
	TCase *tc = h_tcase("reload");

	tcase_add_test(tc, test_reload_broken_config_refused);
	tcase_add_test(tc, test_reload_applies_to_new_sessions);
	tcase_add_test(tc, test_reload_open_session_keeps_config);
	tcase_add_test(tc, test_reload_next_hop_change);
	suite_add_tcase(s, tc);
	return h_run(s);
}
