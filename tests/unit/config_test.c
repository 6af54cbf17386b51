/*
 * config_test: proxy/config.c.  Every case writes a YAML snippet to a
 * temporary file, loads it, and checks either every field of the result or
 * the exact "file:line: message" lines reported.
 */
#include <check.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

/* Two valid lines that most bad cases start with, so forward mode is happy. */
#define HOSTS	"next_hop:\n  hosts: [\"127.0.0.1:2525\"]\n"

static char *
tmp_write(const char *text, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char *path;
	size_t off = 0;
	ssize_t n;
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	ck_assert(asprintf(&path, "%s/mp-config-XXXXXX", dir) > 0);
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp: %s", strerror(errno));
	while (off < len) {
		n = write(fd, text + off, len - off);
		ck_assert_msg(n > 0, "write: %s", strerror(errno));
		off += (size_t)n;
	}
	ck_assert_int_eq(close(fd), 0);
	return path;
}

/* Load text that must be valid; a failure shows the errors. */
static struct config *
load_ok(const char *text)
{
	struct buf err = BUF_INIT;
	struct config *cf;
	char *path;

	path = tmp_write(text, strlen(text));
	cf = config_load(path, &err);
	unlink(path);		/* before any assertion can end the test */
	ck_assert_msg(cf != NULL, "config rejected:\n%s\n---\n%s", text,
	    err.len ? buf_cstr(&err) : "(no message)");
	ck_assert_uint_eq(err.len, 0);
	ck_assert_str_eq(cf->path, path);
	buf_free(&err);
	free(path);
	return cf;
}

/*
 * The errors for text[0..len), each line with its "path:" prefix checked
 * and removed, so that expectations read "3: limits.max_errors: ...".
 */
static char *
load_errors(const char *text, size_t len)
{
	struct buf err = BUF_INIT, out = BUF_INIT;
	struct config *cf;
	char *path, *line, *next, *res;
	size_t plen;

	path = tmp_write(text, len);
	plen = strlen(path);
	cf = config_load(path, &err);
	unlink(path);
	ck_assert_msg(cf == NULL, "config accepted:\n%s", text);
	ck_assert_msg(err.len > 0, "config rejected without a message");
	buf_cstr(&err);
	ck_assert_msg(err.data[err.len - 1] == '\n', "errors not newline-ended");
	for (line = err.data; *line != '\0'; line = next) {
		next = strchr(line, '\n') + 1;
		ck_assert_msg(strncmp(line, path, plen) == 0 && line[plen] == ':',
		    "error line without the file name: %.*s",
		    (int)(next - line), line);
		buf_append(&out, line + plen + 1, (size_t)(next - line) - plen - 1);
	}
	res = strdup(buf_cstr(&out));
	buf_free(&out);
	buf_free(&err);
	free(path);
	return res;
}

/*
 * Compare errors with want.  A want line ending in '*' only has to be a
 * prefix: the rest is netaddr's or libyaml's own wording.
 */
static void
expect_errors_named(const char *name, const char *text, size_t len,
    const char *want)
{
	char *got = load_errors(text, len);
	const char *g = got, *w = want;

	while (*w != '\0') {
		const char *wl = strchr(w, '\n'), *gl = strchr(g, '\n');
		size_t wn = (size_t)(wl - w);

		ck_assert_msg(gl != NULL, "[%s] missing error line: %.*s\n"
		    "got:\n%s", name, (int)wn, w, got);
		if (wn > 0 && w[wn - 1] == '*')
			ck_assert_msg(strncmp(g, w, wn - 1) == 0 &&
			    (size_t)(gl - g) >= wn - 1,
			    "[%s] want prefix: %.*s\ngot:\n%s", name,
			    (int)wn - 1, w, got);
		else
			ck_assert_msg((size_t)(gl - g) == wn &&
			    strncmp(g, w, wn) == 0,
			    "[%s] want: %.*s\ngot:\n%s", name, (int)wn, w, got);
		w = wl + 1;
		g = gl + 1;
	}
	ck_assert_msg(*g == '\0', "[%s] unexpected extra errors:\n%s", name, g);
	free(got);
}

#define expect_errors_len(text, len, want) \
	expect_errors_named(__func__, (text), (len), (want))
#define expect_errors(text, want) \
	expect_errors_named(__func__, (text), strlen(text), (want))

/* ---- valid configurations ---- */

static void
check_defaults(const struct config *cf)
{
	ck_assert_str_eq(cf->listen.host, "127.0.0.1");
	ck_assert_uint_eq(cf->listen.port, 10025);
	ck_assert_int_eq(cf->mode, MODE_FORWARD);
	ck_assert_uint_eq(cf->resubmit_port, 10026);
	ck_assert_int_eq(cf->mx_lookup, 0);
	ck_assert_uint_eq(cf->ndomains, 0);
	ck_assert_str_eq(cf->helo_name, "mailprevent.local");
	ck_assert_str_eq(cf->source_address, "");
	ck_assert_str_eq(cf->pass_header, "X-Filter-Loop: Reflected");
	ck_assert_int_eq(cf->trial_mode, 0);
	ck_assert_uint_eq(cf->max_message_size, 52428800);
	ck_assert_int_eq(cf->log_level, LOG_INFO);
	ck_assert_uint_eq(cf->limits.max_connections, 100);
	ck_assert_uint_eq(cf->limits.max_recipients, 1000);
	ck_assert_uint_eq(cf->limits.max_command_line, 512);
	ck_assert_uint_eq(cf->limits.max_data_line, 998);
	ck_assert_uint_eq(cf->limits.max_errors, 20);
	ck_assert_uint_eq(cf->limits.min_data_rate, 500);
	ck_assert_uint_eq(cf->timeouts.command, 300);
	ck_assert_uint_eq(cf->timeouts.data, 300);
	ck_assert_uint_eq(cf->timeouts.connect, 30);
	ck_assert_uint_eq(cf->timeouts.greeting, 300);
	ck_assert_uint_eq(cf->timeouts.reply, 300);
	ck_assert_uint_eq(cf->timeouts.data_init, 120);
	ck_assert_uint_eq(cf->timeouts.data_block, 180);
	ck_assert_uint_eq(cf->timeouts.data_done, 300);
	ck_assert_uint_eq(cf->timeouts.shutdown, 30);
}

START_TEST(defaults)
{
	struct config *cf = config_defaults();

	ck_assert_int_eq(cf->refcnt, 1);
	ck_assert_ptr_null(cf->path);
	ck_assert_uint_eq(cf->nhosts, 0);
	check_defaults(cf);
	config_unref(cf);
}
END_TEST

START_TEST(reflect_minimal)
{
	struct config *cf = load_ok("mode: reflect\n");

	ck_assert_int_eq(cf->mode, MODE_REFLECT);
	ck_assert_uint_eq(cf->nhosts, 0);
	ck_assert_ptr_null(cf->hosts);
	/* Everything else keeps its default. */
	cf->mode = MODE_FORWARD;
	check_defaults(cf);
	config_unref(cf);
}
END_TEST

START_TEST(forward_one_host)
{
	struct config *cf = load_ok(HOSTS);

	ck_assert_uint_eq(cf->nhosts, 1);
	ck_assert_str_eq(cf->hosts[0].host, "127.0.0.1");
	ck_assert_uint_eq(cf->hosts[0].port, 2525);
	check_defaults(cf);
	config_unref(cf);
}
END_TEST

START_TEST(every_key)
{
	struct config *cf = load_ok(
	    "# every key, none at its default\n"
	    "listen: \"127.0.0.2:2600\"\n"
	    "mode: forward\n"
	    "resubmit_port: 2601\n"
	    "next_hop:\n"
	    "  mx_lookup: false\n"
	    "  hosts:\n"
	    "    - \"127.0.0.3\"\n"
	    "    - 127.0.0.4:2602\n"
	    "    - \"[::1]:2603\"\n"
	    "    - relay.example.org\n"
	    "  domains: [example.com, mail.example.net]\n"
	    "helo_name: filter.example.com\n"
	    "source_address: \"127.0.0.5\"\n"
	    "pass_header: \"X-Checked:\tby mailprevent\"\n"
	    "trial_mode: true\n"
	    "max_message_size: 10485761\n"
	    "log_level: debug\n"
	    "limits:\n"
	    "  max_connections: 7\n"
	    "  max_recipients: 8\n"
	    "  max_command_line: 1000\n"
	    "  max_data_line: 2000\n"
	    "  max_errors: 9\n"
	    "  min_data_rate: 0\n"
	    "timeouts:\n"
	    "  command: 11\n"
	    "  data: 12\n"
	    "  connect: 13\n"
	    "  greeting: 14\n"
	    "  reply: 15\n"
	    "  data_init: 16\n"
	    "  data_block: 17\n"
	    "  data_done: 18\n"
	    "  shutdown: 19\n");

	ck_assert_int_eq(cf->refcnt, 1);
	ck_assert_str_eq(cf->listen.host, "127.0.0.2");
	ck_assert_uint_eq(cf->listen.port, 2600);
	ck_assert_int_eq(cf->mode, MODE_FORWARD);
	ck_assert_uint_eq(cf->resubmit_port, 2601);
	ck_assert_int_eq(cf->mx_lookup, 0);
	ck_assert_uint_eq(cf->nhosts, 4);
	/* A host without a port goes to resubmit_port. */
	ck_assert_str_eq(cf->hosts[0].host, "127.0.0.3");
	ck_assert_uint_eq(cf->hosts[0].port, 2601);
	ck_assert_str_eq(cf->hosts[1].host, "127.0.0.4");
	ck_assert_uint_eq(cf->hosts[1].port, 2602);
	ck_assert_str_eq(cf->hosts[2].host, "::1");
	ck_assert_uint_eq(cf->hosts[2].port, 2603);
	ck_assert_str_eq(cf->hosts[3].host, "relay.example.org");
	ck_assert_uint_eq(cf->hosts[3].port, 2601);
	ck_assert_uint_eq(cf->ndomains, 2);
	ck_assert_str_eq(cf->domains[0], "example.com");
	ck_assert_str_eq(cf->domains[1], "mail.example.net");
	ck_assert_str_eq(cf->helo_name, "filter.example.com");
	ck_assert_str_eq(cf->source_address, "127.0.0.5");
	ck_assert_str_eq(cf->pass_header, "X-Checked:\tby mailprevent");
	ck_assert_int_eq(cf->trial_mode, 1);
	ck_assert_uint_eq(cf->max_message_size, 10485761);
	ck_assert_int_eq(cf->log_level, LOG_DEBUG);
	ck_assert_uint_eq(cf->limits.max_connections, 7);
	ck_assert_uint_eq(cf->limits.max_recipients, 8);
	ck_assert_uint_eq(cf->limits.max_command_line, 1000);
	ck_assert_uint_eq(cf->limits.max_data_line, 2000);
	ck_assert_uint_eq(cf->limits.max_errors, 9);
	ck_assert_uint_eq(cf->limits.min_data_rate, 0);
	ck_assert_uint_eq(cf->timeouts.command, 11);
	ck_assert_uint_eq(cf->timeouts.data, 12);
	ck_assert_uint_eq(cf->timeouts.connect, 13);
	ck_assert_uint_eq(cf->timeouts.greeting, 14);
	ck_assert_uint_eq(cf->timeouts.reply, 15);
	ck_assert_uint_eq(cf->timeouts.data_init, 16);
	ck_assert_uint_eq(cf->timeouts.data_block, 17);
	ck_assert_uint_eq(cf->timeouts.data_done, 18);
	ck_assert_uint_eq(cf->timeouts.shutdown, 19);
	config_unref(cf);
}
END_TEST

START_TEST(mx_lookup_domains)
{
	struct config *cf = load_ok(
	    "next_hop:\n"
	    "  mx_lookup: yes\n"
	    "  domains:\n"
	    "    - example.com\n"
	    "    - a-b.example\n");

	ck_assert_int_eq(cf->mx_lookup, 1);
	ck_assert_uint_eq(cf->nhosts, 0);
	ck_assert_uint_eq(cf->ndomains, 2);
	ck_assert_str_eq(cf->domains[0], "example.com");
	ck_assert_str_eq(cf->domains[1], "a-b.example");
	config_unref(cf);
}
END_TEST

START_TEST(units_and_bounds)
{
	static const struct {
		const char	*size_text;
		uint64_t	 size;
		const char	*command_text;
		unsigned	 command;
		const char	*done_text;
		unsigned	 data_done;
	} cases[] = {
		{ "1K", 1024,			"1", 1,			"1s", 1 },
		{ "1k", 1024,			"1s", 1,		"599s", 599 },
		{ "512K", 524288,		"86400", 86400,		"599", 599 },
		{ "50M", 52428800,		"\"30s\"", 30,		"\"30\"", 30 },
		{ "1G", 1073741824,		"1m", 60,		"9m", 540 },
		{ "2G", 2147483648ULL,		"24h", 86400,		"2m", 120 },
		{ "2048M", 2147483648ULL,	"1h", 3600,		"1m", 60 },
		{ "1024", 1024,			"\"300\"", 300,		"300", 300 },
		{ "\"2147483648\"", 2147483648ULL, "1440m", 86400,	"5m", 300 },
	};
	char text[512];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cf;

		snprintf(text, sizeof(text), HOSTS "max_message_size: %s\n"
		    "timeouts:\n  command: %s\n  data_done: %s\n",
		    cases[i].size_text, cases[i].command_text,
		    cases[i].done_text);
		cf = load_ok(text);
		ck_assert_uint_eq(cf->max_message_size, cases[i].size);
		ck_assert_uint_eq(cf->timeouts.command, cases[i].command);
		ck_assert_uint_eq(cf->timeouts.data_done, cases[i].data_done);
		config_unref(cf);
	}
}
END_TEST

START_TEST(limit_bounds)
{
	struct config *cf;

	cf = load_ok(HOSTS "limits:\n"
	    "  max_connections: 1\n  max_recipients: 100000\n"
	    "  max_command_line: 512\n  max_data_line: 1048576\n"
	    "  max_errors: 1000\n  min_data_rate: 104857600\n");
	ck_assert_uint_eq(cf->limits.max_connections, 1);
	ck_assert_uint_eq(cf->limits.max_recipients, 100000);
	ck_assert_uint_eq(cf->limits.max_command_line, 512);
	ck_assert_uint_eq(cf->limits.max_data_line, 1048576);
	ck_assert_uint_eq(cf->limits.max_errors, 1000);
	ck_assert_uint_eq(cf->limits.min_data_rate, 104857600);
	config_unref(cf);

	cf = load_ok(HOSTS "limits:\n"
	    "  max_connections: 100000\n  max_recipients: 1\n"
	    "  max_command_line: \"65536\"\n  max_data_line: 998\n"
	    "  max_errors: 1\n" "resubmit_port: 65535\n");
	ck_assert_uint_eq(cf->limits.max_connections, 100000);
	ck_assert_uint_eq(cf->limits.max_recipients, 1);
	ck_assert_uint_eq(cf->limits.max_command_line, 65536);
	ck_assert_uint_eq(cf->limits.max_data_line, 998);
	ck_assert_uint_eq(cf->limits.max_errors, 1);
	ck_assert_uint_eq(cf->resubmit_port, 65535);
	config_unref(cf);
}
END_TEST

START_TEST(listen_forms)
{
	static const struct {
		const char	*text;
		const char	*host;
		unsigned	 port;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", 10025 },	/* default port */
		{ "\"127.0.0.1:0\"", "127.0.0.1", 0 },	/* ephemeral */
		{ "127.0.0.9:25", "127.0.0.9", 25 },
		{ "\"[::1]:2525\"", "::1", 2525 },
		{ "\"[::1]\"", "::1", 10025 },
		{ "\"[::1]:0\"", "::1", 0 },
		{ "\"::1\"", "::1", 10025 },	/* bare IPv6: no port */
		{ "\"0.0.0.0:10025\"", "0.0.0.0", 10025 },
	};
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cf;

		snprintf(text, sizeof(text), "mode: reflect\nlisten: %s\n",
		    cases[i].text);
		cf = load_ok(text);
		ck_assert_str_eq(cf->listen.host, cases[i].host);
		ck_assert_uint_eq(cf->listen.port, cases[i].port);
		config_unref(cf);
	}
}
END_TEST

START_TEST(scalar_forms)
{
	static const char *const trues[] = { "true", "yes", "True", "YES",
	    "\"true\"" };
	static const char *const falses[] = { "false", "no", "False", "NO",
	    "'no'" };
	char text[256];
	struct config *cf;
	size_t i;

	for (i = 0; i < sizeof(trues) / sizeof(trues[0]); i++) {
		snprintf(text, sizeof(text), HOSTS "trial_mode: %s\n", trues[i]);
		cf = load_ok(text);
		ck_assert_int_eq(cf->trial_mode, 1);
		config_unref(cf);
		snprintf(text, sizeof(text), HOSTS "trial_mode: %s\n", falses[i]);
		cf = load_ok(text);
		ck_assert_int_eq(cf->trial_mode, 0);
		config_unref(cf);
	}

	/* YAML null or "" empties the optional strings; sections may be empty. */
	cf = load_ok(HOSTS "pass_header:\nsource_address: ~\nlimits:\n"
	    "timeouts: null\nlog_level: WARN\n");
	ck_assert_str_eq(cf->pass_header, "");
	ck_assert_str_eq(cf->source_address, "");
	ck_assert_int_eq(cf->log_level, LOG_WARN);
	ck_assert_uint_eq(cf->limits.max_errors, 20);
	config_unref(cf);

	cf = load_ok(HOSTS "pass_header: \"\"\nsource_address: \"::1\"\n"
	    "log_level: error\nhelo_name: \"[192.0.2.1]\"\n");
	ck_assert_str_eq(cf->pass_header, "");
	ck_assert_str_eq(cf->source_address, "::1");
	ck_assert_int_eq(cf->log_level, LOG_ERR);
	ck_assert_str_eq(cf->helo_name, "[192.0.2.1]");
	config_unref(cf);

	cf = load_ok("---\n" HOSTS "helo_name: \"[IPv6:2001:db8::1]\"\n"
	    "log_level: info\n...\n");
	ck_assert_str_eq(cf->helo_name, "[IPv6:2001:db8::1]");
	config_unref(cf);

	/* Reflect mode ignores next_hop but a null one is still fine. */
	cf = load_ok("mode: reflect\nnext_hop:\n");
	ck_assert_uint_eq(cf->nhosts, 0);
	config_unref(cf);
}
END_TEST

/* pass_header may use exactly 998 octets, as one header line can. */
START_TEST(pass_header_length)
{
	char text[1200], value[1000];
	struct config *cf;

	memset(value, 'a', 990);
	value[990] = '\0';
	snprintf(text, sizeof(text), HOSTS "pass_header: \"X-Long: %s\"\n",
	    value);				/* 8 + 990 = 998 */
	cf = load_ok(text);
	ck_assert_uint_eq(strlen(cf->pass_header), 998);
	config_unref(cf);

	snprintf(text, sizeof(text), HOSTS "pass_header: \"X-Long: %sa\"\n",
	    value);
	expect_errors(text, "3: pass_header: longer than 998 octets\n");
}
END_TEST

START_TEST(refcount)
{
	struct config *cf = load_ok(HOSTS);

	ck_assert_ptr_eq(config_ref(cf), cf);
	ck_assert_int_eq(cf->refcnt, 2);
	config_unref(cf);
	ck_assert_int_eq(cf->refcnt, 1);
	ck_assert_uint_eq(cf->hosts[0].port, 2525);	/* still alive */
	config_unref(cf);
	config_unref(NULL);
}
END_TEST

/* The shipped example must load and say what its comments promise. */
START_TEST(example_file)
{
	struct buf err = BUF_INIT;
	struct config *cf;

	cf = config_load("proxy/mailprevent.example.yaml", &err);
	ck_assert_msg(cf != NULL, "example rejected (run from the top of the "
	    "tree):\n%s", err.len ? buf_cstr(&err) : "");
	ck_assert_str_eq(cf->listen.host, "127.0.0.1");
	ck_assert_uint_eq(cf->listen.port, 10025);
	ck_assert_int_eq(cf->mode, MODE_FORWARD);
	ck_assert_int_eq(cf->mx_lookup, 0);
	ck_assert_uint_eq(cf->nhosts, 1);
	ck_assert_str_eq(cf->hosts[0].host, "127.0.0.1");
	ck_assert_uint_eq(cf->hosts[0].port, 2525);
	/* Apart from the next hop, the example shows the defaults. */
	check_defaults(cf);
	config_unref(cf);
	buf_free(&err);
}
END_TEST

/* ---- bad configurations ---- */

static const struct bad_case {
	const char	*name;
	const char	*text;
	const char	*want;
} bad_cases[] = {
	/* unknown and duplicate keys */
	{ "unknown key, close to a known one",
	    HOSTS "lisen: 127.0.0.1\n",
	    "3: unknown key \"lisen\"; did you mean \"listen\"?\n" },
	{ "unknown key, nothing close",
	    HOSTS "frobnicate: 1\n",
	    "3: unknown key \"frobnicate\"\n" },
	{ "known key in the wrong section",
	    HOSTS "max_errors: 3\n",
	    "3: unknown key \"max_errors\"; did you mean \"limits.max_errors\"?\n" },
	{ "unknown key inside a section",
	    HOSTS "limits:\n  max_conections: 5\n",
	    "4: unknown key \"limits.max_conections\"; did you mean "
	    "\"limits.max_connections\"?\n" },
	{ "top-level key inside a section",
	    HOSTS "timeouts:\n  log_level: debug\n",
	    "4: unknown key \"timeouts.log_level\"; did you mean \"log_level\" "
	    "(at the top level)?\n" },
	{ "unknown key with control bytes is escaped",
	    HOSTS "\"bad\\ekey\": 1\n",
	    "3: unknown key \"bad\\x1bkey\"\n" },
	{ "duplicate top-level key",
	    HOSTS "trial_mode: yes\ntrial_mode: no\n",
	    "4: duplicate key \"trial_mode\" (first given at line 3)\n" },
	{ "duplicate key in a section",
	    HOSTS "timeouts:\n  connect: 10\n  reply: 5\n  connect: 20\n",
	    "6: duplicate key \"timeouts.connect\" (first given at line 4)\n" },
	{ "duplicate section",
	    "next_hop:\n  hosts: [127.0.0.1]\nnext_hop:\n  hosts: [127.0.0.2]\n",
	    "3: duplicate key \"next_hop\" (first given at line 1)\n" },
	{ "key that is not a scalar",
	    HOSTS "? [a, b]\n: c\n",
	    "3: keys must be plain names, got a list\n" },

	/* document shape */
	{ "top level is a list",
	    "- listen\n- mode\n",
	    "1: the top level must be a mapping of keys, got a list\n" },
	{ "top level is a scalar",
	    "\n\njust some text\n",
	    "3: the top level must be a mapping of keys, got a single value\n" },
	{ "two documents",
	    HOSTS "---\nmode: reflect\n",
	    "4: only one YAML document is allowed\n" },
	{ "section is a list",
	    HOSTS "limits: [1, 2]\n",
	    "3: limits: expected a mapping, got a list\n" },
	{ "section is a scalar",
	    HOSTS "timeouts: 30\n",
	    "3: timeouts: expected a mapping, got a single value\n" },

	/* YAML syntax; the wording after the line number is libyaml's */
	{ "bad indentation",
	    HOSTS "limits:\n  max_errors: 5\n bad: 1\n",
	    "5: did not find expected key (while parsing a block mapping at "
	    "line 1)\n" },
	{ "unterminated quote",
	    HOSTS "\nhelo_name: \"abc\n",
	    "5: found unexpected end of stream (while scanning a quoted scalar "
	    "at line 4)\n" },
	{ "tab indentation",
	    HOSTS "limits:\n\tmax_errors: 5\n",
	    "4: found character that cannot start any token*\n" },
	{ "undefined alias",
	    HOSTS "listen: *nowhere\n",
	    "3: found undefined alias*\n" },
	{ "control byte in the file",
	    HOSTS "mode: forward\nhelo_name: a\x01" "b\n",
	    "4: control characters are not allowed\n" },
	{ "invalid UTF-8",
	    HOSTS "\n\nhelo_name: caf\xe9\n",
	    "5: incomplete UTF-8 octet sequence\n" },

	/* listen, mode, ports */
	{ "listen on a host name",
	    HOSTS "listen: \"localhost:10025\"\n",
	    "3: listen: \"localhost:10025\": the address to listen on must be "
	    "an IP address\n" },
	{ "listen port out of range",
	    HOSTS "listen: \"127.0.0.1:65536\"\n",
	    "3: listen: \"127.0.0.1:65536\": *\n" },
	{ "listen is a list",
	    HOSTS "listen: [127.0.0.1]\n",
	    "3: listen: expected a single value, got a list\n" },
	{ "unknown mode",
	    HOSTS "mode: relay\n",
	    "3: mode: expected forward or reflect, got \"relay\"\n" },
	{ "resubmit_port 0",
	    HOSTS "resubmit_port: 0\n",
	    "3: resubmit_port: 0 is out of range 1..65535\n" },
	{ "resubmit_port too large",
	    HOSTS "resubmit_port: 65536\n",
	    "3: resubmit_port: 65536 is out of range 1..65535\n" },

	/* next_hop */
	{ "forward mode with an empty file",
	    "",
	    "1: next_hop.hosts: at least one host is required in forward mode\n" },
	{ "forward mode with only comments",
	    "# nothing here\n\n# still nothing\n",
	    "1: next_hop.hosts: at least one host is required in forward mode\n" },
	{ "forward mode, mode given, no next_hop",
	    "trial_mode: no\nmode: forward\n",
	    "2: next_hop.hosts: at least one host is required in forward mode\n" },
	{ "forward mode, next_hop without hosts",
	    "mode: forward\nnext_hop:\n  mx_lookup: no\n",
	    "2: next_hop.hosts: at least one host is required in forward mode\n" },
	{ "forward mode, empty host list",
	    "mode: forward\nnext_hop:\n  mx_lookup: no\n  hosts: []\n",
	    "4: next_hop.hosts: at least one host is required in forward mode\n" },
	{ "mx_lookup without domains",
	    "next_hop:\n  mx_lookup: true\n",
	    "2: next_hop.domains: at least one domain is required when "
	    "mx_lookup is true\n" },
	{ "mx_lookup with an empty domain list",
	    "next_hop:\n  domains: []\n  mx_lookup: true\n",
	    "2: next_hop.domains: at least one domain is required when "
	    "mx_lookup is true\n" },
	{ "mx_lookup not a boolean",
	    "next_hop:\n  mx_lookup: maybe\n  hosts: [127.0.0.1]\n",
	    "2: next_hop.mx_lookup: expected true, false, yes or no, got "
	    "\"maybe\"\n" },
	{ "hosts is a scalar",
	    "next_hop:\n  hosts: 127.0.0.1\n",
	    "2: next_hop.hosts: expected a list, got a single value\n" },
	{ "bad host entry",
	    "next_hop:\n  hosts:\n    - 127.0.0.1\n    - \"bad host!\"\n",
	    "4: next_hop.hosts[1]: \"bad host!\": *\n" },
	{ "host with port 0",
	    "next_hop:\n  hosts:\n    - \"127.0.0.1:0\"\n",
	    "3: next_hop.hosts[0]: \"127.0.0.1:0\": port 0 is not allowed\n" },
	{ "IPv6 host with port 0",
	    "next_hop:\n  hosts: [\"[::1]:0\", 127.0.0.1]\n",
	    "2: next_hop.hosts[0]: \"[::1]:0\": port 0 is not allowed\n" },
	{ "host entry is a mapping",
	    "next_hop:\n  hosts:\n    - {host: 127.0.0.1}\n",
	    "3: next_hop.hosts[0]: expected a single value, got a mapping\n" },
	{ "host entry with CRLF",
	    "next_hop:\n  hosts: [\"127.0.0.1\\r\\n\"]\n",
	    "2: next_hop.hosts[0]: value contains a CR, LF or NUL character\n" },
	{ "bad domain",
	    "next_hop:\n  mx_lookup: true\n  domains:\n    - example.com\n"
	    "    - -bad.example\n    - \"a..b\"\n    - 192.0.2.1\n",
	    "5: next_hop.domains[1]: \"-bad.example\" is not a valid domain name\n"
	    "6: next_hop.domains[2]: \"a..b\" is not a valid domain name\n"
	    "7: next_hop.domains[3]: \"192.0.2.1\" is not a valid domain name\n" },

	/* helo_name, source_address */
	{ "helo_name with a space",
	    HOSTS "helo_name: \"mail prevent\"\n",
	    "3: helo_name: \"mail prevent\" is not a valid host name or address "
	    "literal such as \"[192.0.2.1]\"\n" },
	{ "helo_name with CRLF injection",
	    HOSTS "helo_name: \"evil\\r\\nRCPT TO:<x@example.com>\"\n",
	    "3: helo_name: value contains a CR, LF or NUL character\n" },
	{ "helo_name as a block scalar keeps its newline",
	    HOSTS "helo_name: |\n  mail.example.com\n",
	    "3: helo_name: value contains a CR, LF or NUL character\n" },
	{ "helo_name with a bad address literal",
	    HOSTS "helo_name: \"[192.0.2]\"\n",
	    "3: helo_name: \"[192.0.2]\" is not a valid host name or address "
	    "literal such as \"[192.0.2.1]\"\n" },
	{ "helo_name is a bare IP address",
	    HOSTS "helo_name: 192.0.2.1\n",
	    "3: helo_name: \"192.0.2.1\" is not a valid host name or address "
	    "literal such as \"[192.0.2.1]\"\n" },
	{ "helo_name empty",
	    HOSTS "helo_name: \"\"\n",
	    "3: helo_name: \"\" is not a valid host name or address literal "
	    "such as \"[192.0.2.1]\"\n" },
	{ "source_address is a name",
	    HOSTS "source_address: localhost\n",
	    "3: source_address: \"localhost\" is not an IP address (use \"\" for "
	    "any)\n" },

	/* pass_header */
	{ "pass_header without a colon",
	    HOSTS "pass_header: X-Loop Reflected\n",
	    "3: pass_header: must be \"Name: value\"\n" },
	{ "pass_header with an empty name",
	    HOSTS "pass_header: \": value\"\n",
	    "3: pass_header: must be \"Name: value\"\n" },
	{ "pass_header name with a space",
	    HOSTS "pass_header: \"X Loop: yes\"\n",
	    "3: pass_header: field name must be printable ASCII without spaces "
	    "or ':'\n" },
	{ "pass_header with LF injection",
	    HOSTS "pass_header: \"X-Loop: a\\nBcc: x@example.com\"\n",
	    "3: pass_header: value contains a CR, LF or NUL character\n" },
	{ "pass_header with a lone CR",
	    HOSTS "pass_header: \"X-Loop: a\\rb\"\n",
	    "3: pass_header: value contains a CR, LF or NUL character\n" },
	{ "pass_header with NUL",
	    HOSTS "pass_header: \"X-Loop: a\\0b\"\n",
	    "3: pass_header: value contains a CR, LF or NUL character\n" },
	{ "pass_header with a control byte",
	    HOSTS "pass_header: \"X-Loop: a\\eb\"\n",
	    "3: pass_header: value must be printable ASCII (tabs allowed)\n" },
	{ "pass_header with 8-bit text",
	    HOSTS "pass_header: \"X-Loop: caf\\u00e9\"\n",
	    "3: pass_header: value must be printable ASCII (tabs allowed)\n" },
	{ "pass_header with an empty value",
	    HOSTS "pass_header: \"X-Loop: \\t \"\n",
	    "3: pass_header: value is empty\n" },

	/* booleans, sizes, log level */
	{ "boolean as a number",
	    HOSTS "trial_mode: 1\n",
	    "3: trial_mode: expected true, false, yes or no, got \"1\"\n" },
	{ "boolean as on",
	    HOSTS "trial_mode: on\n",
	    "3: trial_mode: expected true, false, yes or no, got \"on\"\n" },
	{ "boolean left empty",
	    HOSTS "trial_mode:\n",
	    "3: trial_mode: expected true, false, yes or no, got \"\"\n" },
	{ "size not a number",
	    HOSTS "max_message_size: abc\n",
	    "3: max_message_size: expected a size in bytes or with a unit "
	    "(\"512K\", \"50M\", \"1G\"), got \"abc\"\n" },
	{ "size with an unknown unit",
	    HOSTS "max_message_size: 50X\n",
	    "3: max_message_size: expected a size in bytes or with a unit "
	    "(\"512K\", \"50M\", \"1G\"), got \"50X\"\n" },
	{ "size with a two-letter unit",
	    HOSTS "max_message_size: 50MB\n",
	    "3: max_message_size: expected a size in bytes or with a unit "
	    "(\"512K\", \"50M\", \"1G\"), got \"50MB\"\n" },
	{ "size below 1K",
	    HOSTS "max_message_size: 1023\n",
	    "3: max_message_size: 1023 is out of range 1K..2G (1024..2147483648 "
	    "bytes)\n" },
	{ "size above 2G",
	    HOSTS "max_message_size: 2049M\n",
	    "3: max_message_size: 2049M is out of range 1K..2G "
	    "(1024..2147483648 bytes)\n" },
	{ "size that overflows 64 bits",
	    HOSTS "max_message_size: 99999999999999999999999G\n",
	    "3: max_message_size: 99999999999999999999999G is out of range "
	    "1K..2G (1024..2147483648 bytes)\n" },
	{ "unknown log level",
	    HOSTS "log_level: verbose\n",
	    "3: log_level: expected debug, info, warn or error, got \"verbose\"\n" },

	/* limits */
	{ "max_connections 0",
	    HOSTS "limits:\n  max_connections: 0\n",
	    "4: limits.max_connections: 0 is out of range 1..100000\n" },
	{ "max_connections too large",
	    HOSTS "limits:\n  max_connections: 100001\n",
	    "4: limits.max_connections: 100001 is out of range 1..100000\n" },
	{ "max_recipients a list",
	    HOSTS "limits:\n  max_recipients: [1, 2]\n",
	    "4: limits.max_recipients: expected a single value, got a list\n" },
	{ "max_command_line below the RFC minimum",
	    HOSTS "limits:\n  max_command_line: 511\n",
	    "4: limits.max_command_line: 511 is out of range 512..65536\n" },
	{ "max_data_line below the RFC line length",
	    HOSTS "limits:\n  max_data_line: 997\n",
	    "4: limits.max_data_line: 997 is out of range 998..1048576\n" },
	{ "max_errors not a number",
	    HOSTS "limits:\n  max_errors: abc\n",
	    "4: limits.max_errors: expected an integer, got \"abc\"\n" },
	{ "max_errors a boolean",
	    HOSTS "limits:\n  max_errors: true\n",
	    "4: limits.max_errors: expected an integer, got \"true\"\n" },
	{ "max_errors with leading zeros",
	    HOSTS "limits:\n  max_errors: 010\n",
	    "4: limits.max_errors: \"010\" has leading zeros (write it in plain "
	    "decimal)\n" },
	{ "min_data_rate negative",
	    HOSTS "limits:\n  min_data_rate: -1\n",
	    "4: limits.min_data_rate: expected an integer, got \"-1\"\n" },
	{ "min_data_rate with a unit",
	    HOSTS "limits:\n  min_data_rate: 5K\n",
	    "4: limits.min_data_rate: expected an integer, got \"5K\"\n" },

	/* timeouts */
	{ "timeout 0",
	    HOSTS "timeouts:\n  command: 0\n",
	    "4: timeouts.command: 0 is out of range 1..86400 seconds\n" },
	{ "timeout above a day",
	    HOSTS "timeouts:\n  data: 86401\n",
	    "4: timeouts.data: 86401 is out of range 1..86400 seconds\n" },
	{ "timeout in hours above a day",
	    HOSTS "timeouts:\n  greeting: 25h\n",
	    "4: timeouts.greeting: 25h is out of range 1..86400 seconds\n" },
	{ "timeout in days",
	    HOSTS "timeouts:\n  connect: 2d\n",
	    "4: timeouts.connect: expected seconds or a duration (\"30s\", "
	    "\"5m\", \"1h\"), got \"2d\"\n" },
	{ "timeout with a fraction",
	    HOSTS "timeouts:\n  reply: 1.5\n",
	    "4: timeouts.reply: expected seconds or a duration (\"30s\", "
	    "\"5m\", \"1h\"), got \"1.5\"\n" },
	{ "data_done of 600 seconds",
	    HOSTS "timeouts:\n  data_done: 600\n",
	    "4: timeouts.data_done: 600 must be less than 600 seconds (RFC 5321 "
	    "4.5.3.2.6: the upstream MTA waits 10 minutes for the reply to the "
	    "final dot)\n" },
	{ "data_done of 10 minutes",
	    HOSTS "timeouts:\n  data_done: 10m\n",
	    "4: timeouts.data_done: 10m must be less than 600 seconds (RFC 5321 "
	    "4.5.3.2.6: the upstream MTA waits 10 minutes for the reply to the "
	    "final dot)\n" },

	/* all problems, in file order, and no follow-on noise */
	{ "several problems at once",
	    "mode: reflekt\n"
	    "limits:\n"
	    "  max_errors: 0\n"
	    "  max_recipients: abc\n"
	    "timeouts:\n"
	    "  data_done: 15m\n"
	    "lisen: 127.0.0.1\n"
	    "helo_name: \"a\\nb\"\n",
	    "1: mode: expected forward or reflect, got \"reflekt\"\n"
	    "3: limits.max_errors: 0 is out of range 1..1000\n"
	    "4: limits.max_recipients: expected an integer, got \"abc\"\n"
	    "6: timeouts.data_done: 15m must be less than 600 seconds (RFC 5321 "
	    "4.5.3.2.6: the upstream MTA waits 10 minutes for the reply to the "
	    "final dot)\n"
	    "7: unknown key \"lisen\"; did you mean \"listen\"?\n"
	    "8: helo_name: value contains a CR, LF or NUL character\n" },
	/* who may connect */
	{ "allow_clients with a bad block",
	    HOSTS "allow_clients: [\"127.0.0.0/8\", \"10.0.0.0/33\", \"host\"]\n",
	    "3: allow_clients[1]: \"10.0.0.0/33\": bad prefix length\n"
	    "3: allow_clients[2]: \"host\": not an IP address\n" },
	{ "allow_clients empty",
	    HOSTS "allow_clients: []\n",
	    "3: allow_clients: the list is empty: no address would match\n" },
	{ "proxy_protocol without trusted balancers",
	    HOSTS "proxy_protocol:\n  enabled: true\n",
	    "3: proxy_protocol: enabled needs trusted, the balancers' addresses\n" },
	/* detection keys */
	{ "notify sender that is not a mailbox",
	    HOSTS "notify:\n  sender: \"not a mailbox\"\n",
	    "4: notify.sender: \"not a mailbox\" is not a mailbox (local@domain)\n" },
	{ "notify sender with an angle bracket",
	    HOSTS "notify:\n  sender: \"<a@example.com>\"\n",
	    "4: notify.sender: \"<a@example.com>\" is not a mailbox (local@domain)\n" },
	{ "notify retries out of range",
	    HOSTS "notify:\n  retries: 21\n",
	    "4: notify.retries: 21 is out of range 0..20\n" },
	{ "policy instruction budget too small",
	    HOSTS "policy_limits:\n  instructions: 5\n",
	    "4: policy_limits.instructions: 5 is out of range 100000..100000000000\n" },
	{ "policy memory too small",
	    HOSTS "policy_limits:\n  memory: 1K\n",
	    "4: policy_limits.memory: 1K is out of range 1K..2G (1024..2147483648 bytes)\n" },
	{ "policy glob that matches nothing",
	    HOSTS "policies: [\"/nonexistent-mailprevent/*.lua\"]\n",
	    "3: policies[0]: no file matches \"/nonexistent-mailprevent/*.lua\"\n" },
	{ "empty policy path",
	    HOSTS "policies: [\"\"]\n",
	    "3: policies[0]: empty path\n" },
	{ "incident log path with a newline",
	    HOSTS "incident_log: \"a\\nb\"\n",
	    "3: incident_log: value contains a CR, LF or NUL character\n" },
	{ "a value error and the missing hosts",
	    "limits:\n  max_errors: 0\n",
	    "2: limits.max_errors: 0 is out of range 1..1000\n"
	    "1: next_hop.hosts: at least one host is required in forward mode\n" },
};

START_TEST(bad_config)
{
	const struct bad_case *c = &bad_cases[_i];

	expect_errors_named(c->name, c->text, strlen(c->text), c->want);
}
END_TEST

START_TEST(missing_file)
{
	struct buf err = BUF_INIT;
	const char *dir = getenv("TMPDIR");
	char path[512], want[600];

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/mp-config-does-not-exist-%ld.yaml",
	    dir, (long)getpid());
	ck_assert_ptr_null(config_load(path, &err));
	snprintf(want, sizeof(want), "%s:0: cannot open: No such file or "
	    "directory\n", path);
	ck_assert_str_eq(buf_cstr(&err), want);
	buf_free(&err);

	/* errors may be NULL: the caller only wants yes or no. */
	ck_assert_ptr_null(config_load(path, NULL));
}
END_TEST

START_TEST(directory)
{
	struct buf err = BUF_INIT;
	char want[600];
	const char *dir = getenv("TMPDIR");

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	ck_assert_ptr_null(config_load(dir, &err));
	snprintf(want, sizeof(want), "%s:0: is a directory\n", dir);
	ck_assert_str_eq(buf_cstr(&err), want);
	buf_free(&err);
}
END_TEST

/* A file anyone can write (the config, or a policy) is refused. */
START_TEST(world_writable)
{
	struct buf err = BUF_INIT;
	const char *dir = getenv("TMPDIR");
	char path[512], pol[512], want[2200], text[1200];
	FILE *f;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	snprintf(pol, sizeof(pol), "%s/mp-ww-%ld.lua", dir, (long)getpid());
	f = fopen(pol, "w");
	ck_assert_ptr_nonnull(f);
	fputs("return { name = \"x\", match = function() return false end }\n", f);
	fclose(f);
	chmod(pol, 0666);
	snprintf(path, sizeof(path), "%s/mp-ww-%ld.yaml", dir, (long)getpid());
	snprintf(text, sizeof(text), HOSTS "policies: [\"%s\"]\n", pol);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0666);
	ck_assert_ptr_null(config_load(path, &err));
	snprintf(want, sizeof(want), "%s:0: writable by every user (mode 0666); "
	    "chmod o-w it\n%s:3: policies[0]: %s is writable by every user "
	    "(mode 0666); chmod o-w it\n", path, path, pol);
	ck_assert_str_eq(buf_cstr(&err), want);
	buf_free(&err);
	unlink(path);
	unlink(pol);
}
END_TEST

START_TEST(nul_byte_in_file)
{
	static const char text[] = HOSTS "helo_name: a\0b\n";

	expect_errors_len(text, sizeof(text) - 1,
	    "3: control characters are not allowed\n");
}
END_TEST

START_TEST(file_too_large)
{
	size_t len = 1024 * 1024 + 1;
	char *text = malloc(len);

	ck_assert_ptr_nonnull(text);
	memset(text, '#', len);
	expect_errors_len(text, len, "0: larger than 1048576 bytes\n");
	free(text);
}
END_TEST

/* A file full of mistakes gives the first 100 and a count of the rest. */
START_TEST(error_cap)
{
	struct buf text = BUF_INIT, want = BUF_INIT;
	int i;

	buf_appends(&text, HOSTS);
	for (i = 0; i < 130; i++) {
		buf_appendf(&text, "zz%d: 1\n", i);
		if (i < 100)
			buf_appendf(&want, "%d: unknown key \"zz%d\"\n", i + 3, i);
	}
	buf_appends(&want, "0: 30 more errors not shown\n");
	expect_errors(buf_cstr(&text), buf_cstr(&want));
	buf_free(&text);
	buf_free(&want);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("valid");
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, reflect_minimal);
	tcase_add_test(tc, forward_one_host);
	tcase_add_test(tc, every_key);
	tcase_add_test(tc, mx_lookup_domains);
	tcase_add_test(tc, units_and_bounds);
	tcase_add_test(tc, limit_bounds);
	tcase_add_test(tc, listen_forms);
	tcase_add_test(tc, scalar_forms);
	tcase_add_test(tc, pass_header_length);
	tcase_add_test(tc, refcount);
	tcase_add_test(tc, example_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("invalid");
	tcase_add_loop_test(tc, bad_config, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, directory);
	tcase_add_test(tc, world_writable);
	tcase_add_test(tc, nul_byte_in_file);
	tcase_add_test(tc, file_too_large);
	tcase_add_test(tc, error_cap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
