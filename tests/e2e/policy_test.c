/*
 * policy_test: the policy responses end to end. bin/mailprevent runs Lua
 * policies (the shipped examples in lua/policies/, or files written into
 * the test's directory) in front of an mta-sim sink, and the tests check
 * what the sink got (byte for byte where it matters), what the upstream
 * client was told, the sink's events.log, the incident log (every line
 * read with the strict JSON checker of tests/json_check.h) and the proxy's
 * log.
 *
 * Responses (docs/lua-api.md): block, redirect, modify, notify, monitor;
 * precedence block > redirect > modify with the notifications of every
 * hit; trial mode; policies that fail (error, instruction and memory
 * limits) -> 451 4.3.0; --check and SIGHUP with bad policies; a 4xx at the
 * final dot writes no incident; notification retries.
 *
 * Every wait is for an event (a reply, a log line, a sink file); the
 * notification retries use notify.retry_delay: 1 (the smallest allowed),
 * which only decides when the event comes.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#include "../json_check.h"

#define NOTIFY_FROM	"dlp-notify@mailprevent.test"
#define CARD_REPLY	"Message refused: it contains payment card numbers. " \
			"Contact dlp@example.com"

/* Parsed JSON values are freed at teardown (the ASan runs check leaks). */
static struct jc_val	*kept_json[256];
static size_t		 nkept_json;

static void
json_teardown(void)
{
	while (nkept_json > 0)
		jc_free(kept_json[--nkept_json]);
}

struct rig {
	struct sink	*sink;
	struct proxy	*px;
	char		*dir;		/* policy files and the incident log */
	char		*incidents;
	unsigned	 retries;	/* notify.retries */
};

/* A shipped example, by absolute path (tests run from the top). */
static char *
shipped(const char *name)
{
	char cwd[PATH_MAX];

	H_CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd failed");
	return h_strf("%s/lua/policies/%s", cwd, name);
}

static struct rig *
rig_new(void)
{
	struct rig *r = h_keep(calloc(1, sizeof(*r)));

	H_CHECK(r != NULL, "out of memory");
	r->dir = h_tmpdir("policies");
	r->incidents = h_strf("%s/incidents.log", r->dir);
	r->retries = 2;
	return r;
}

/* Write a policy file into the rig's directory; returns its path. */
static char *
put_policy(struct rig *r, const char *name, const char *lua)
{
	char *path = h_strf("%s/%s", r->dir, name);

	h_write_file(path, lua, strlen(lua));
	return path;
}

/*
 * A policy that hits when the Subject contains TRIGGER, with the given
 * actions (a Lua table constructor body, may be "").
 */
static char *
trigger_policy(struct rig *r, const char *file, const char *name,
    const char *actions)
{
	return put_policy(r, file, h_strf(
	    "return {\n"
	    "  name = \"%s\",\n"
	    "  match = function(msg)\n"
	    "    local s = msg.subject\n"
	    "    return s ~= nil and s:find(\"TRIGGER\", 1, true) ~= nil\n"
	    "  end,\n"
	    "  actions = { %s },\n"
	    "}\n", name, actions));
}

/* The detection part of the configuration. */
static char *
policy_yaml(struct rig *r, const char *const *globs, const char *extra)
{
	char *y = "policies: [";
	size_t i;

	for (i = 0; globs[i] != NULL; i++)
		y = h_strf("%s%s\"%s\"", y, i ? ", " : "", globs[i]);
	return h_strf("%s]\n"
	    "incident_log: \"%s\"\n"
	    "notify:\n"
	    "  sender: \"" NOTIFY_FROM "\"\n"
	    "  retries: %u\n"
	    "  retry_delay: 1\n"
	    "%s", y, r->incidents, r->retries, extra != NULL ? extra : "");
}

/* Start the sink (extra args, NULL-terminated list or NULL) and proxy. */
static void
rig_up(struct rig *r, const char *const *globs, const char *extra,
    const char *const *sink_args)
{
	const char *a[9] = { NULL };
	size_t i;

	for (i = 0; sink_args != NULL && sink_args[i] != NULL && i < 8; i++)
		a[i] = sink_args[i];
	r->sink = sink_start(NULL, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
	    a[7], (char *)NULL);
	r->px = proxy_start(h_yaml(&r->sink->port, 1,
	    policy_yaml(r, globs, extra)));
}

/* The shipped examples, all of them. */
static struct rig *
rig_shipped(const char *extra, const char *const *sink_args)
{
	struct rig *r = rig_new();
	const char *globs[] = { shipped("*.lua"), NULL };

	rig_up(r, globs, extra, sink_args);
	return r;
}

/*
 * Messages. Each triggers one shipped example (docs/lua-api.md, the table
 * at the end); PLAIN triggers none.
 */
#define HDRS(subject, id)						\
	"From: Alice <alice@example.org>\r\n"				\
	"To: Bob <bob@example.net>\r\n"					\
	"Subject: " subject "\r\n"					\
	"Message-ID: <" id "@example.org>\r\n"				\
	"MIME-Version: 1.0\r\n"						\
	"Content-Type: text/plain; charset=utf-8\r\n"			\
	"\r\n"

static const char PLAIN[] = HDRS("hello", "plain")
    "Nothing to see here.\r\n"
    ".A line with a leading dot.\r\n";
static const char CARD[] = HDRS("order", "card")
    "My card is 4111 1111 1111 1111, exp 12/29.\r\n";
static const char IBAN[] = HDRS("payment", "iban")
    "Pay to IBAN DE89 3704 0044 0532 0130 00 please.\r\n";
static const char SSN[] = HDRS("form", "ssn")
    "My SSN is 536-22-8147.\r\n";
static const char CONFIDENTIAL[] = HDRS("Q3 numbers", "conf")
    "This is Confidential, do not forward.\r\n"
    "..two dots\r\n";
static const char CONTRACT[] = HDRS("sign please", "ctr")
    "Please sign CTR-2026-00417 today.\r\n";
static const char CODENAMES[] = HDRS("status", "code")
    "Project Nightingale is late.\r\n"
    "project\r\n"
    "nightingale needs budget.\r\n";
static const char CODENAME_ONCE[] = HDRS("status", "code1")
    "Project Nightingale is late.\r\n";
static const char EXE[] =
    "From: alice@example.org\r\n"
    "To: bob@example.net\r\n"
    "Subject: files\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"xx\"\r\n"
    "\r\n"
    "--xx\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "See attached.\r\n"
    ".\r\n"
    "--xx\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename=\"setup.EXE\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "TVqQAAMAAAAEAAAA\r\n"
    "--xx--\r\n";

/* content with its first "Subject: old" line replaced by "Subject: new". */
static char *
with_subject(const char *content, const char *old, const char *new_)
{
	char *from = h_strf("\r\nSubject: %s\r\n", old);
	const char *p = strstr(content, from);

	H_CHECK(p != NULL, "no \"Subject: %s\" in the test message", old);
	return h_strf("%.*s\r\nSubject: %s\r\n%s", (int)(p - content), content,
	    new_, p + strlen(from));
}

/* Send content from alice to bob on an open session; return the reply. */
static struct cli_reply *
send_msg(struct cli *c, const char *content)
{
	return cli_mail(c, "alice@example.org", NULL, "bob@example.net",
	    content, strlen(content));
}

static void
expect_250(struct cli_reply *rep, const char *what)
{
	H_CHECK(rep->code == 250, "%s: reply %d %s %s", what, rep->code,
	    rep->enh, rep->text);
}

/*
 * The sink's i-th message is exactly the pass header, then added (header
 * lines, may be ""), then content; its envelope is alice -> rcpt only.
 */
static void
check_delivered(struct sink *s, size_t i, const char *added,
    const char *content, const char *rcpt)
{
	char *want = h_strf("%s\r\n%s%s", H_PASS_HEADER, added, content);
	size_t elen;
	char *eml = sink_eml(s, i, &elen), *env = sink_env(s, i);

	H_CHECK_BYTES(eml, elen, want, strlen(want), "message at the sink");
	H_CHECK(h_env_line(env, "mail-from <alice@example.org>") != NULL,
	    "envelope sender:\n%s", env);
	H_CHECK(h_env_count(env, "rcpt ") == 1, "recipients:\n%s", env);
	H_CHECK(h_env_line(env, h_strf("rcpt <%s>", rcpt)) != NULL,
	    "recipient is not %s:\n%s", rcpt, env);
}

/* events.log as lines. */
static char **
sink_log_lines(struct sink *s, size_t *n)
{
	char *log = sink_read(s, "events.log", NULL), *p, *nl;
	char **v = h_keep(calloc(4096, sizeof(*v)));

	*n = 0;
	H_CHECK(log != NULL, "no events.log");
	for (p = log; (nl = strchr(p, '\n')) != NULL && *n < 4096; p = nl + 1) {
		*nl = '\0';
		v[(*n)++] = p;
	}
	return v;
}

/* First line at or after from containing every one of a and b; or -1. */
static long
log_find(char **v, size_t n, size_t from, const char *a, const char *b)
{
	size_t i;

	for (i = from; i < n; i++)
		if (strstr(v[i], a) != NULL && (b == NULL ||
		    strstr(v[i], b) != NULL))
			return (long)i;
	return -1;
}

/* Incident log lines, each parsed (and required to be valid JSON). */
static struct jc_val **
incidents(struct rig *r, size_t *n)
{
	struct jc_val **v = h_keep(calloc(64, sizeof(*v)));
	size_t len;
	char *data = h_read_file(r->incidents, &len), *p, *nl;
	char err[128];

	*n = 0;
	if (data == NULL)
		return v;
	for (p = data; p < data + len; p = nl + 1) {
		nl = memchr(p, '\n', len - (size_t)(p - data));
		H_CHECK(nl != NULL, "incident log: last line has no newline:\n%s",
		    p);
		H_CHECK(*n < 64 && nkept_json < 256, "too many incidents");
		v[*n] = jc_parse(p, (size_t)(nl - p), err, sizeof(err));
		H_CHECK(v[*n] != NULL, "incident line %zu is not valid JSON "
		    "(%s):\n%s", *n + 1, err, (char *)h_keep(jc_vis(p,
		    (size_t)(nl - p))));
		H_CHECK(v[*n]->type == JC_OBJ, "incident is not an object");
		kept_json[nkept_json++] = v[*n];
		(*n)++;
	}
	return v;
}

static const char *
inc_str(const struct jc_val *o, const char *key)
{
	const char *s = jc_str(o, key);

	H_CHECK(s != NULL, "incident has no string \"%s\"", key);
	return s;
}

/*
 * What every record carries: time, ids, envelope, client, policies with
 * name and matches, trial, action, reply. Returns nothing; fails.
 */
static void
check_incident(const struct jc_val *o, const char *msgid, const char *action,
    int reply, int trial, const char *would)
{
	const struct jc_val *v, *p;
	const char *t = inc_str(o, "time");
	size_t i;

	H_CHECK(strlen(t) == 24 && t[4] == '-' && t[10] == 'T' &&
	    t[19] == '.' && t[23] == 'Z', "time \"%s\"", t);
	H_CHECK(inc_str(o, "queue_id")[0] != '\0', "empty queue_id");
	H_CHECK(strcmp(inc_str(o, "message_id"), msgid) == 0,
	    "message_id \"%s\", want \"%s\"", inc_str(o, "message_id"), msgid);
	H_CHECK(strcmp(inc_str(o, "sender"), "alice@example.org") == 0,
	    "sender \"%s\"", inc_str(o, "sender"));
	v = jc_get(o, "recipients");
	H_CHECK(v != NULL && v->type == JC_ARR && v->n == 1 &&
	    v->items[0]->type == JC_STR &&
	    strcmp(v->items[0]->str, "bob@example.net") == 0,
	    "recipients are not [\"bob@example.net\"]");
	H_CHECK(strcmp(inc_str(o, "client_ip"), "127.0.0.1") == 0,
	    "client_ip \"%s\"", inc_str(o, "client_ip"));
	H_CHECK(strcmp(inc_str(o, "helo"), "client.test") == 0, "helo \"%s\"",
	    inc_str(o, "helo"));
	p = jc_get(o, "policies");
	H_CHECK(p != NULL && p->type == JC_ARR && p->n > 0, "no policies");
	for (i = 0; i < p->n; i++) {
		v = jc_get(p->items[i], "matches");
		H_CHECK(jc_str(p->items[i], "name") != NULL, "policy %zu has "
		    "no name", i);
		H_CHECK(v != NULL && v->type == JC_NUM && atoi(v->num) >= 1,
		    "policy %zu: matches", i);
	}
	H_CHECK(strcmp(inc_str(o, "action"), action) == 0, "action \"%s\", "
	    "want \"%s\"", inc_str(o, "action"), action);
	v = jc_get(o, "trial");
	H_CHECK(v != NULL && v->type == JC_BOOL && v->b == trial,
	    "trial is not %s", trial ? "true" : "false");
	v = jc_get(o, "reply");
	H_CHECK(v != NULL && v->type == JC_NUM && atoi(v->num) == reply,
	    "reply is not %d", reply);
	if (would == NULL)
		H_CHECK(jc_get(o, "would") == NULL, "\"would\" present");
	else
		H_CHECK(jc_str(o, "would") != NULL &&
		    strcmp(jc_str(o, "would"), would) == 0,
		    "would is not \"%s\"", would);
}

/* The one policy of an incident: name and sample (NULL: none). */
static void
check_hit(const struct jc_val *o, size_t i, const char *name,
    const char *sample)
{
	const struct jc_val *p = jc_get(o, "policies");

	H_CHECK(p != NULL && p->n > i, "no policy #%zu", i);
	H_CHECK(strcmp(inc_str(p->items[i], "name"), name) == 0,
	    "policy #%zu is \"%s\", want \"%s\"", i,
	    inc_str(p->items[i], "name"), name);
	if (sample == NULL)
		H_CHECK(jc_get(p->items[i], "sample") == NULL, "a sample");
	else
		H_CHECK(strcmp(inc_str(p->items[i], "sample"), sample) == 0,
		    "sample \"%s\"", inc_str(p->items[i], "sample"));
}

/* A header field of a message (first, unfolded, trimmed) or NULL. */
static char *
hdr(const char *eml, const char *name)
{
	const char *end = strstr(eml, "\r\n\r\n"), *p = eml;
	size_t nl = strlen(name);
	struct buf v = BUF_INIT;

	while (end != NULL && p < end) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			for (;;) {
				const char *eol = strstr(p, "\r\n");

				buf_append(&v, p, (size_t)(eol - p));
				p = eol + 2;
				if (*p != ' ' && *p != '\t')
					break;
			}
			buf_cstr(&v);
			h_keep(v.data);
			while (v.len > 0 && (v.data[v.len - 1] == ' ' ||
			    v.data[v.len - 1] == '\t'))
				v.data[--v.len] = '\0';
			p = v.data;
			while (*p == ' ' || *p == '\t')
				p++;
			return (char *)p;
		}
		p = strstr(p, "\r\n") + 2;
	}
	return NULL;
}

/* Lines of the proxy's log so far that contain substr. */
static size_t
log_count(struct proxy *px, const char *substr)
{
	size_t len;
	const char *out = proc_output(px->proc, H_STDERR, &len);

	return h_count(out, len, substr, strlen(substr));
}

/* Wait until the proxy has logged at least n lines containing substr. */
static void
wait_log_count(struct proxy *px, const char *substr, size_t n)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS, left;

	while (log_count(px, substr) < n) {
		left = deadline - h_now_ms();
		H_CHECK(left > 0, "the proxy logged %zu lines with \"%s\", "
		    "waited for %zu", log_count(px, substr), substr, n);
		proc_wait_line(px->proc, H_STDERR, substr, (int)left);
	}
}

/* The session number ("session=N ") of an events.log line. */
static char *
session_of(const char *line)
{
	return h_strf("%.*s ", (int)strcspn(line, " "), line);
}

/* The sink's message whose .env has this rcpt line; fails if not one. */
static size_t
find_by_rcpt(struct sink *s, const char *rcpt)
{
	size_t n, i, found = (size_t)-1;

	sink_messages(s, &n);
	for (i = 0; i < n; i++)
		if (h_env_line(sink_env(s, i), h_strf("rcpt <%s>", rcpt))) {
			H_CHECK(found == (size_t)-1, "two messages for %s", rcpt);
			found = i;
		}
	H_CHECK(found != (size_t)-1, "no message for %s", rcpt);
	return found;
}

/* No message at the sink is for rcpt. */
static void
none_for(struct sink *s, const char *rcpt)
{
	size_t n, i;

	sink_messages(s, &n);
	for (i = 0; i < n; i++)
		H_CHECK(h_env_line(sink_env(s, i), h_strf("rcpt <%s>",
		    rcpt)) == NULL, "message #%zu went to %s", i, rcpt);
}

/* The body of a message (after the empty line). */
static const char *
body_of(const char *eml)
{
	const char *p = strstr(eml, "\r\n\r\n");

	H_CHECK(p != NULL, "no empty line in:\n%s", eml);
	return p + 4;
}

/* The reply to the final dot is exactly "code enh text" CRLF on the wire. */
static void
check_wire_reply(struct cli *c, const char *line)
{
	size_t len, wl = strlen(line) + 2;
	const char *raw = cli_received(c, &len);
	char *want = h_strf("%s\r\n", line);

	H_CHECK(len > wl && memcmp(raw + len - wl, want, wl) == 0 &&
	    raw[len - wl - 1] == '\n', "the last reply on the wire is not "
	    "exactly \"%s\":\n%.*s", line, (int)(len < 300 ? len : 300),
	    raw + (len < 300 ? 0 : len - 300));
}

/* events.log: no DATA at all; exactly n RSETs. */
static void
check_no_data(struct sink *s, size_t rsets)
{
	size_t n, i, data = 0, rset = 0;
	char **v = sink_log_lines(s, &n);

	for (i = 0; i < n; i++) {
		data += strstr(v[i], "event=cmd line=\"DATA\"") != NULL;
		rset += strstr(v[i], "event=cmd line=\"RSET\"") != NULL;
	}
	H_CHECK(data == 0, "the sink saw DATA %zu times", data);
	H_CHECK(rset == rsets, "the sink saw RSET %zu times, want %zu", rset,
	    rsets);
	H_CHECK(sink_count(s) == 0 && sink_count_rejected(s) == 0,
	    "the sink recorded a message");
}

/*
 * The shipped examples
 */

START_TEST(test_shipped_plain_passes)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	size_t n;

	H_CHECK(log_count(r->px, "event=policy_load policies=7") == 1,
	    "the 7 shipped policies were not loaded");
	expect_250(send_msg(c, PLAIN), "plain message");
	check_delivered(r->sink, 0, "", PLAIN, "bob@example.net");
	expect_250(send_msg(c, CODENAME_ONCE), "one code name");
	check_delivered(r->sink, 1, "", CODENAME_ONCE, "bob@example.net");
	cli_quit(c);
	incidents(r, &n);
	H_CHECK(n == 0, "%zu incidents for messages that match nothing", n);
}
END_TEST

/* The modifying examples: headers after the pass header, subject tag. */
static const struct modify_case {
	const char	*content;
	const char	*msgid;
	const char	*added;
	const char	*subject, *new_subject;	/* NULL: unchanged */
	const char	*policy;
} modify_cases[] = {
	{ CONFIDENTIAL, "<conf@example.org>", "X-CFilter: Encrypt\r\n",
	    NULL, NULL, "Encrypt confidential mail" },
	{ EXE, "", "X-CFilter: Quarantine\r\n", "files",
	    "[QUARANTINE] files", "Quarantine executable attachments" },
	{ CONTRACT, "<ctr@example.org>", "X-CFilter: Archive\r\n", NULL, NULL,
	    "Archive contract mail" },
	{ CODENAMES, "<code@example.org>",
	    "X-Restricted: code name mentioned\r\n", "status",
	    "[RESTRICTED] status", "Restricted project code names" },
};

START_TEST(test_shipped_modify)
{
	const struct modify_case *mc = &modify_cases[_i];
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	const char *want = mc->content;
	struct jc_val **inc;
	size_t n;

	expect_250(send_msg(c, mc->content), mc->policy);
	if (mc->subject != NULL)
		want = with_subject(mc->content, mc->subject, mc->new_subject);
	H_CHECK(sink_count(r->sink) == 1, "%zu messages at the sink",
	    sink_count(r->sink));
	check_delivered(r->sink, 0, mc->added, want, "bob@example.net");
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], mc->msgid, "modify", 250, 0, NULL);
	check_hit(inc[0], 0, mc->policy, jc_str(jc_get(inc[0],
	    "policies")->items[0], "sample"));
	H_CHECK(jc_get(inc[0], "policies")->n == 1, "more than one hit");
	H_CHECK(jc_get(inc[0], "redirect_to") == NULL, "redirect_to");
	cli_quit(c);
}
END_TEST

START_TEST(test_shipped_block)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	struct cli_reply *rep;
	struct jc_val **inc;
	char *line, *log;
	size_t n;

	rep = send_msg(c, CARD);
	H_CHECK(rep->code == 550 && strcmp(rep->enh, "5.7.1") == 0 &&
	    strcmp(rep->text, CARD_REPLY) == 0, "reply %d %s %s", rep->code,
	    rep->enh, rep->text);
	check_wire_reply(c, "550 5.7.1 " CARD_REPLY);
	/* Nothing delivered: the sink got MAIL, RCPT, RSET and no DATA. */
	check_no_data(r->sink, 1);

	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<card@example.org>", "block", 550, 0, NULL);
	check_hit(inc[0], 0, "Payment card numbers", "************1111");
	line = proxy_wait_log(r->px, "event=blocked ");
	H_CHECK(h_kv_has(line, "msg", inc_str(inc[0], "queue_id")),
	    "the incident's queue_id is not the log's msg=: %s", line);
	log = h_read_file(r->incidents, NULL);
	H_CHECK(strstr(log, "4111 1111 1111 1111") == NULL &&
	    strstr(log, "4111111111111111") == NULL &&
	    strstr(log, "4111-1111") == NULL,
	    "the incident log holds the card number:\n%s", log);

	/* The session goes on; the next message is delivered. */
	expect_250(send_msg(c, PLAIN), "after the block");
	check_delivered(r->sink, 0, "", PLAIN, "bob@example.net");
	cli_quit(c);
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents after a plain message", n);
}
END_TEST

START_TEST(test_shipped_redirect)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	struct jc_val **inc;
	size_t n, i;
	long rset, mail, rcpt, data;
	char **v;

	expect_250(send_msg(c, IBAN), "redirected message");
	H_CHECK(sink_count(r->sink) == 1, "%zu messages at the sink",
	    sink_count(r->sink));
	check_delivered(r->sink, 0, "", IBAN, "dlp-review@example.com");

	/* RSET, then MAIL again, RCPT only to the reviewer, DATA once. */
	v = sink_log_lines(r->sink, &n);
	rset = log_find(v, n, 0, "line=\"RSET\"", NULL);
	mail = rset < 0 ? -1 : log_find(v, n, (size_t)rset,
	    "line=\"MAIL FROM:<alice@example.org>", NULL);
	rcpt = mail < 0 ? -1 : log_find(v, n, (size_t)mail, "line=\"RCPT TO:",
	    NULL);
	data = rcpt < 0 ? -1 : log_find(v, n, (size_t)rcpt, "line=\"DATA\"",
	    NULL);
	H_CHECK(data > 0, "no RSET, MAIL, RCPT, DATA sequence in events.log");
	H_CHECK(strstr(v[rcpt], "RCPT TO:<dlp-review@example.com>") != NULL,
	    "first RCPT after the RSET: %s", v[rcpt]);
	for (i = 0; i < n; i++)
		H_CHECK(strstr(v[i], "line=\"DATA\"") == NULL || (long)i == data,
		    "DATA sent twice");

	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<iban@example.org>", "redirect", 250, 0, NULL);
	H_CHECK(strcmp(inc_str(inc[0], "redirect_to"),
	    "dlp-review@example.com") == 0, "redirect_to");
	/* 22 characters, 4 kept (the docs' example has 24: a doc slip). */
	check_hit(inc[0], 0, "Bank details for review",
	    "DE****************3000");
	cli_quit(c);
}
END_TEST

/* Headers a notification must carry; returns the message. */
static char *
check_notification(struct sink *s, size_t i, const char *subject)
{
	char *eml = sink_eml(s, i, NULL), *v, *env = sink_env(s, i);
	struct tm tm;

	H_CHECK(strncmp(eml, H_PASS_HEADER "\r\n",
	    strlen(H_PASS_HEADER) + 2) == 0, "no pass header first:\n%s", eml);
	H_CHECK(h_env_line(env, "mail-from <" NOTIFY_FROM ">") != NULL,
	    "envelope sender is not notify.sender:\n%s", env);
	H_CHECK((v = hdr(eml, "From")) != NULL &&
	    strstr(v, "<" NOTIFY_FROM ">") != NULL, "From: %s", v ? v : "-");
	H_CHECK(hdr(eml, "Auto-Submitted") != NULL &&
	    strcmp(hdr(eml, "Auto-Submitted"), "auto-generated") == 0,
	    "Auto-Submitted missing or wrong:\n%s", eml);
	v = hdr(eml, "Message-ID");
	H_CHECK(v != NULL && v[0] == '<' && strchr(v, '@') != NULL &&
	    v[strlen(v) - 1] == '>', "Message-ID: %s", v ? v : "-");
	v = hdr(eml, "Date");
	memset(&tm, 0, sizeof(tm));
	H_CHECK(v != NULL && strptime(v, "%a, %d %b %Y %H:%M:%S", &tm) != NULL,
	    "Date: %s", v ? v : "-");
	H_CHECK(hdr(eml, "To") != NULL, "no To:\n%s", eml);
	H_CHECK(hdr(eml, "Subject") != NULL &&
	    strcmp(hdr(eml, "Subject"), subject) == 0, "Subject: %s",
	    hdr(eml, "Subject") ? hdr(eml, "Subject") : "-");
	return eml;
}

START_TEST(test_shipped_notify)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	struct jc_val **inc;
	size_t n;
	long orig, ok, note, conn;
	char *eml, *env, *to, **v;

	expect_250(send_msg(c, SSN), "message with an SSN");
	sink_wait_events(r->sink, "event=message ", 2);
	wait_log_count(r->px, "event=notify-sent ", 1);
	H_CHECK(sink_count(r->sink) == 2, "%zu messages at the sink",
	    sink_count(r->sink));
	/* The original, unchanged, to its recipient. */
	check_delivered(r->sink, 0, "", SSN, "bob@example.net");

	/* The notification, to security@ and to the sender. */
	eml = check_notification(r->sink, 1,
	    "Your message matched the policy: Social Security numbers");
	env = sink_env(r->sink, 1);
	H_CHECK(h_env_count(env, "rcpt ") == 2 &&
	    h_env_line(env, "rcpt <security@example.com>") != NULL &&
	    h_env_line(env, "rcpt <alice@example.org>") != NULL,
	    "notification recipients:\n%s", env);
	to = hdr(eml, "To");
	H_CHECK(strstr(to, "security@example.com") != NULL &&
	    strstr(to, "alice@example.org") != NULL, "To: %s", to);
	H_CHECK(strcmp(hdr(eml, "Message-ID"), "<ssn@example.org>") != 0,
	    "the notification reuses the original's Message-ID");
	H_CHECK(strstr(body_of(eml), "Your message to bob@example.net "
	    "contains what looks like a\r\nUS Social Security number "
	    "(***-**-8147).\r\n") != NULL, "body:\n%s", body_of(eml));
	H_CHECK(strstr(eml, "536-22-8147") == NULL && strstr(eml, "536 22 8147")
	    == NULL, "the notification holds the number");

	/* Only after the original's 250: the notification's connection
	   starts after the sink answered the original's final dot. */
	v = sink_log_lines(r->sink, &n);
	orig = log_find(v, n, 0, "event=message ", "file=msg-000001");
	ok = orig < 0 ? -1 : log_find(v, n, (size_t)orig, session_of(v[orig]),
	    "event=reply code=250");
	note = log_find(v, n, 0, "event=message ", "file=msg-000002");
	H_CHECK(ok > 0 && note > 0, "messages missing from events.log");
	conn = log_find(v, n, 0, session_of(v[note]), "event=connect");
	H_CHECK(conn > ok, "the notification's session began (line %ld) "
	    "before the original's 250 (line %ld)", conn + 1, ok + 1);

	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<ssn@example.org>", "monitor", 250, 0, NULL);
	check_hit(inc[0], 0, "Social Security numbers", "***-**-8147");
	cli_quit(c);
}
END_TEST

/*
 * Precedence, with policies written for the test. All hit on a Subject
 * containing TRIGGER; files load in path order (a-, b-, c-, ...).
 */
#define MODIFY_A	"modify = { subject = { prepend = \"[A] \" }, " \
			"headers = { \"X-A: 1\", \"X-Both: yes\" } }"
#define MODIFY_B	"modify = { subject = { replace = \"B subject\" }, " \
			"headers = { \"X-B: 2\", \"X-Both: yes\" } }"

static const char TRIGGERED[] = HDRS("TRIGGER here", "trig")
    "Some text.\r\n"
    ".\r\n";

static void
check_policy_names(const struct jc_val *o, const char *const *names)
{
	const struct jc_val *p = jc_get(o, "policies");
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		check_hit(o, i, names[i], NULL);
	H_CHECK(p->n == i, "%zu policies in the incident, want %zu", p->n, i);
}

START_TEST(test_precedence_block_wins)
{
	static const char *const names[] = {
		"A modify", "B redirect", "C block", "D block", "E monitor", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	struct cli_reply *rep;
	struct jc_val **inc;
	struct cli *c;
	size_t n;

	trigger_policy(r, "a.lua", "A modify", MODIFY_A);
	trigger_policy(r, "b.lua", "B redirect",
	    "redirect = \"review-b@example.com\"");
	trigger_policy(r, "c.lua", "C block",
	    "block = { reply = \"554 5.7.0 C blocks\" }");
	trigger_policy(r, "d.lua", "D block",
	    "block = { reply = \"550 5.7.1 D blocks\" }");
	trigger_policy(r, "e.lua", "E monitor", "");
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	rep = send_msg(c, TRIGGERED);
	H_CHECK(rep->code == 554 && strcmp(rep->enh, "5.7.0") == 0 &&
	    strcmp(rep->text, "C blocks") == 0, "reply %d %s %s", rep->code,
	    rep->enh, rep->text);
	check_wire_reply(c, "554 5.7.0 C blocks");
	check_no_data(r->sink, 1);
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<trig@example.org>", "block", 554, 0, NULL);
	check_policy_names(inc[0], names);
	cli_quit(c);
}
END_TEST

START_TEST(test_precedence_redirect_over_modify)
{
	static const char *const names[] = {
		"A modify", "B redirect", "C redirect", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	struct jc_val **inc;
	struct cli *c;
	size_t n;

	trigger_policy(r, "a.lua", "A modify", MODIFY_A);
	trigger_policy(r, "b.lua", "B redirect",
	    "redirect = \"review-b@example.com\"");
	trigger_policy(r, "c.lua", "C redirect",
	    "redirect = \"review-c@example.com\"");
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, TRIGGERED), "redirected message");
	/* Once, to the first redirecting policy's address, unmodified. */
	H_CHECK(sink_count(r->sink) == 1, "%zu messages at the sink",
	    sink_count(r->sink));
	check_delivered(r->sink, 0, "", TRIGGERED, "review-b@example.com");
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<trig@example.org>", "redirect", 250, 0, NULL);
	H_CHECK(strcmp(inc_str(inc[0], "redirect_to"),
	    "review-b@example.com") == 0, "redirect_to");
	check_policy_names(inc[0], names);
	cli_quit(c);
}
END_TEST

START_TEST(test_precedence_modify_merge)
{
	static const char *const names[] = {
		"A modify", "B modify", "C monitor", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	struct jc_val **inc;
	struct cli *c;
	size_t n;

	trigger_policy(r, "a.lua", "A modify", MODIFY_A);
	trigger_policy(r, "b.lua", "B modify", MODIFY_B);
	trigger_policy(r, "c.lua", "C monitor", "");
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, TRIGGERED), "modified message");
	/* The first subject change; every distinct header line once. */
	check_delivered(r->sink, 0, "X-A: 1\r\nX-Both: yes\r\nX-B: 2\r\n",
	    with_subject(TRIGGERED, "TRIGGER here", "[A] TRIGGER here"),
	    "bob@example.net");
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	check_incident(inc[0], "<trig@example.org>", "modify", 250, 0, NULL);
	check_policy_names(inc[0], names);
	cli_quit(c);
}
END_TEST

/* A block wins, and the notifications of every hit still go out. */
START_TEST(test_notify_every_hit_when_blocked)
{
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	struct cli_reply *rep;
	struct cli *c;
	char *eml, *env;
	size_t i;

	trigger_policy(r, "a.lua", "A block",
	    "block = { reply = \"550 5.7.1 A blocks\" }");
	trigger_policy(r, "b.lua", "B notify",
	    "notify = { to = \"sec-b@example.com\", "
	    "subject = \"B: {policy} {action}\", "
	    "body = \"action={action}\\n.\\n..\\nfrom={sender}\\r\\nend\" }");
	trigger_policy(r, "c.lua", "C notify",
	    "notify = { to = { \"sec-c@example.com\" }, sender = true }");
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	rep = send_msg(c, TRIGGERED);
	H_CHECK(rep->code == 550, "reply %d %s", rep->code, rep->text);
	sink_wait_events(r->sink, "event=message ", 2);
	wait_log_count(r->px, "event=notify-sent ", 2);
	H_CHECK(sink_count(r->sink) == 2, "%zu messages at the sink",
	    sink_count(r->sink));
	none_for(r->sink, "bob@example.net");

	i = find_by_rcpt(r->sink, "sec-b@example.com");
	eml = check_notification(r->sink, i, "B: B notify block");
	env = sink_env(r->sink, i);
	H_CHECK(h_env_count(env, "rcpt ") == 1, "%s", env);
	/* Dot lines in the body survive the trip (stuffed on the wire). */
	H_CHECK(strcmp(body_of(eml), "action=block\r\n.\r\n..\r\n"
	    "from=alice@example.org\r\nend\r\n") == 0, "body:\n%s",
	    body_of(eml));

	i = find_by_rcpt(r->sink, "sec-c@example.com");
	check_notification(r->sink, i, "Policy violation: C notify");
	env = sink_env(r->sink, i);
	H_CHECK(h_env_count(env, "rcpt ") == 2 &&
	    h_env_line(env, "rcpt <alice@example.org>") != NULL, "%s", env);
	cli_quit(c);
}
END_TEST

/*
 * Trial mode: everything delivered as it came, nothing notified; the
 * incidents say what would have been done.
 */
START_TEST(test_trial_mode)
{
	static const struct {
		const char	*content, *msgid, *would;
	} cases[] = {
		{ CARD, "<card@example.org>", "block" },
		{ IBAN, "<iban@example.org>", "redirect" },
		{ CONFIDENTIAL, "<conf@example.org>", "modify" },
		{ SSN, "<ssn@example.org>", NULL },
		{ EXE, "", "modify" },
	};
	struct rig *r = rig_shipped("trial_mode: true\n", NULL);
	struct cli *c = cli_open(r->px->port);
	struct jc_val **inc;
	size_t n, i, ncases = sizeof(cases) / sizeof(cases[0]);

	for (i = 0; i < ncases; i++)
		expect_250(send_msg(c, cases[i].content), cases[i].msgid);
	cli_quit(c);
	/* Every line logged before the session ended has been read. */
	proxy_wait_log(r->px, "event=disconnect ");
	sink_wait_idle(r->sink);
	H_CHECK(log_count(r->px, "event=notify-queued") == 0,
	    "a notification was queued in trial mode");
	H_CHECK(sink_count(r->sink) == ncases, "%zu messages at the sink, "
	    "want %zu", sink_count(r->sink), ncases);
	for (i = 0; i < ncases; i++)
		check_delivered(r->sink, i, "", cases[i].content,
		    "bob@example.net");
	inc = incidents(r, &n);
	H_CHECK(n == ncases, "%zu incidents, want %zu", n, ncases);
	for (i = 0; i < ncases; i++) {
		check_incident(inc[i], cases[i].msgid, "monitor", 250, 1,
		    cases[i].would);
		H_CHECK(jc_get(inc[i], "redirect_to") == NULL, "redirect_to "
		    "in trial mode");
	}
	H_CHECK(strstr(h_read_file(r->incidents, NULL), "4111 1111") == NULL,
	    "the incident log holds the card number");
}
END_TEST

/*
 * Policies that fail: 451 4.3.0, nothing delivered, no incident, and the
 * next message is judged normally.
 */
static void
check_failing_policy(const char *lua, const char *extra, const char *logged)
{
	struct rig *r = rig_new();
	const char *globs[] = { put_policy(r, "fail.lua", lua), NULL };
	struct cli_reply *rep;
	struct cli *c;
	char *line;
	size_t n;

	rig_up(r, globs, extra, NULL);
	c = cli_open(r->px->port);
	rep = send_msg(c, HDRS("bad", "bad") "text\r\n");
	H_CHECK(rep->code == 451 && strcmp(rep->enh, "4.3.0") == 0,
	    "reply %d %s %s", rep->code, rep->enh, rep->text);
	line = proxy_wait_log(r->px, "event=policy_error");
	H_CHECK(strstr(line, logged) != NULL, "policy_error line without "
	    "\"%s\": %s", logged, line);
	H_CHECK(strstr(line, "Fails on bad") != NULL, "no policy name: %s",
	    line);
	check_no_data(r->sink, 1);
	expect_250(send_msg(c, PLAIN), "the next message");
	check_delivered(r->sink, 0, "", PLAIN, "bob@example.net");
	/* Fails again, and again is answered. */
	rep = send_msg(c, HDRS("bad", "bad2") "text\r\n");
	H_CHECK(rep->code == 451, "reply %d %s", rep->code, rep->text);
	expect_250(send_msg(c, PLAIN), "the message after that");
	cli_quit(c);
	incidents(r, &n);
	H_CHECK(n == 0, "%zu incidents for deferred messages", n);
}

#define FAILING(body)							\
	"return {\n"							\
	"  name = \"Fails on bad\",\n"					\
	"  match = function(msg)\n"					\
	"    if msg.subject == \"bad\" then\n"				\
	"      " body "\n"						\
	"    end\n"							\
	"    return false\n"						\
	"  end,\n"							\
	"  actions = { block = true },\n"				\
	"}\n"

START_TEST(test_policy_endless_loop)
{
	check_failing_policy(FAILING("while true do end"),
	    "policy_limits:\n  instructions: 100000\n", "instruction limit");
}
END_TEST

START_TEST(test_policy_memory_cap)
{
	check_failing_policy(FAILING("local s = string.rep(\"x\", 8 * 1024 * "
	    "1024); return #s"), "policy_limits:\n  memory: 2M\n", "memory");
}
END_TEST

START_TEST(test_policy_runtime_error)
{
	check_failing_policy(FAILING("error(\"deliberate failure\")"), "",
	    "deliberate failure");
}
END_TEST

/* --check: a bad block reply is reported as file:line and fails. */
static int
run_check(const char *cfg, char **out)
{
	char *argv[] = { h_strf("%s/mailprevent", h_bindir()), "-c",
	    (char *)cfg, "--check", NULL };
	struct proc *p = proc_start("mailprevent-check", argv);
	int st = 0;

	H_CHECK(proc_wait_exit(p, H_DEADLINE_MS, &st), "--check hangs");
	H_CHECK(WIFEXITED(st), "--check died of signal %d", WTERMSIG(st));
	*out = h_strf("%s%s", proc_output(p, H_STDOUT, NULL),
	    proc_output(p, H_STDERR, NULL));
	return WEXITSTATUS(st);
}

START_TEST(test_check_bad_block_reply)
{
	struct rig *r = rig_new();
	const char *path = put_policy(r, "bad.lua",
	    "-- a block reply must be 5xx\n"
	    "return {\n"
	    "  name = \"Bad reply\",\n"
	    "  match = function(msg) return false end,\n"
	    "  actions = {\n"
	    "    block = { reply = \"450 4.7.1 come back later\" },\n"
	    "  },\n"
	    "}\n");
	const char *globs[] = { path, NULL };
	char *cfg = h_strf("%s/mailprevent.yaml", r->dir), *out;
	int port = h_free_port();
	int st;

	h_write_file(cfg, h_yaml(&port, 1, policy_yaml(r, globs, "")),
	    strlen(h_yaml(&port, 1, policy_yaml(r, globs, ""))));
	st = run_check(cfg, &out);
	H_CHECK(st != 0, "--check accepted a 4xx block reply:\n%s", out);
	H_CHECK(strstr(out, h_strf("%s:6: actions.block.reply", path)) != NULL,
	    "no \"%s:6: actions.block.reply\" in:\n%s", path, out);

	/* The shipped set passes the same check. */
	globs[0] = shipped("*.lua");
	h_write_file(cfg, h_yaml(&port, 1, policy_yaml(r, globs, "")),
	    strlen(h_yaml(&port, 1, policy_yaml(r, globs, ""))));
	st = run_check(cfg, &out);
	H_CHECK(st == 0, "--check refused the shipped policies:\n%s", out);
}
END_TEST

/* SIGHUP with a broken policy file keeps the old policies. */
START_TEST(test_reload_broken_policy_keeps_old)
{
	struct rig *r = rig_new();
	const char *path = trigger_policy(r, "a.lua", "Old block",
	    "block = { reply = \"550 5.7.1 old set\" }");
	const char *globs[] = { path, NULL };
	struct cli_reply *rep;
	struct cli *c;
	char *line;

	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	rep = send_msg(c, TRIGGERED);
	H_CHECK(rep->code == 550 && strcmp(rep->text, "old set") == 0,
	    "reply %d %s", rep->code, rep->text);
	cli_quit(c);

	/* A syntax error: refused, and the error names the file. */
	put_policy(r, "a.lua", "return {\n  name = \"New block\",\n  match = "
	    "function(msg) return true end\n  actions = {}\n}\n");
	proc_mark(r->px->proc, H_STDERR);
	proc_signal(r->px->proc, SIGHUP);
	line = proxy_wait_log(r->px, "event=reload ");
	H_CHECK(h_kv_has(line, "status", "refused"), "%s", line);
	H_CHECK(strstr(proc_output(r->px->proc, H_STDERR, NULL), path) != NULL,
	    "the refused reload does not name %s", path);

	c = cli_open(r->px->port);
	rep = send_msg(c, TRIGGERED);
	H_CHECK(rep->code == 550 && strcmp(rep->text, "old set") == 0,
	    "after a refused reload: %d %s", rep->code, rep->text);
	expect_250(send_msg(c, PLAIN), "plain after a refused reload");
	cli_quit(c);

	/* A good file is taken: the test can tell old from new. */
	trigger_policy(r, "a.lua", "New block",
	    "block = { reply = \"550 5.7.1 new set\" }");
	proc_mark(r->px->proc, H_STDERR);
	proc_signal(r->px->proc, SIGHUP);
	line = proxy_wait_log(r->px, "event=reload ");
	H_CHECK(h_kv_has(line, "status", "ok"), "%s", line);
	c = cli_open(r->px->port);
	rep = send_msg(c, TRIGGERED);
	H_CHECK(rep->code == 550 && strcmp(rep->text, "new set") == 0,
	    "after a good reload: %d %s", rep->code, rep->text);
	cli_quit(c);
}
END_TEST

/*
 * A 4xx from the next hop at the final dot: not final, so no incident and
 * no notification for that attempt; the retry gets both, once.
 */
START_TEST(test_dot_4xx_no_incident)
{
	static const char *const sink_args[] = {
		"--rule", "dot#1=reply:451 4.3.0 try again later", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { shipped("notify-sender.lua"), NULL };
	struct cli_reply *rep;
	struct jc_val **inc;
	struct cli *c;
	size_t n;

	rig_up(r, globs, "", sink_args);
	c = cli_open(r->px->port);
	rep = send_msg(c, SSN);
	H_CHECK(rep->code == 451 && strcmp(rep->enh, "4.3.0") == 0,
	    "reply %d %s %s", rep->code, rep->enh, rep->text);
	H_CHECK(h_read_file(r->incidents, NULL) == NULL,
	    "an incident was written for a 4xx:\n%s",
	    h_read_file(r->incidents, NULL));

	expect_250(send_msg(c, SSN), "the retry");
	sink_wait_events(r->sink, "event=message ", 2);
	wait_log_count(r->px, "event=notify-sent ", 1);
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents, want 1 (for the 250)", n);
	check_incident(inc[0], "<ssn@example.org>", "monitor", 250, 0, NULL);
	H_CHECK(log_count(r->px, "event=notify-queued") == 1,
	    "%zu notifications queued, want 1",
	    log_count(r->px, "event=notify-queued"));
	H_CHECK(sink_count_rejected(r->sink) == 1 && sink_count(r->sink) == 2,
	    "%zu rejected, %zu accepted", sink_count_rejected(r->sink),
	    sink_count(r->sink));
	cli_quit(c);
}
END_TEST

/* A notification the next hop defers is sent again, the same message. */
START_TEST(test_notify_retry)
{
	static const char *const sink_args[] = {
		"--rule", "dot#2=reply:451 4.3.0 not now", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { shipped("notify-sender.lua"), NULL };
	size_t l1, l2;
	char *line, *first, *again;
	struct cli *c;

	rig_up(r, globs, "", sink_args);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, SSN), "message with an SSN");
	line = proxy_wait_log(r->px, "event=notify-deferred ");
	H_CHECK(h_kv_has(line, "attempt", "1") && h_kv_has(line, "retry_in",
	    "1"), "%s", line);
	sink_wait_events(r->sink, "event=message ", 2);
	wait_log_count(r->px, "event=notify-sent ", 1);
	/* msg-000001 the original, 000002 the deferred try, 000003 the retry. */
	first = sink_read(r->sink, "msg-000002.rejected.eml", &l1);
	again = sink_read(r->sink, "msg-000003.eml", &l2);
	H_CHECK(first != NULL && again != NULL, "sink files missing");
	H_CHECK_BYTES(again, l2, first, l1, "the retried notification");
	check_notification(r->sink, 1,
	    "Your message matched the policy: Social Security numbers");
	cli_quit(c);
}
END_TEST

/* notify.retries further attempts, then it is given up. */
START_TEST(test_notify_retries_exhausted)
{
	static const char *const sink_args[] = {
		"--rule", "dot#2=reply:451 4.3.0 not now",
		"--rule", "dot#3=reply:452 4.3.1 still not", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { shipped("notify-sender.lua"), NULL };
	struct cli *c;

	r->retries = 1;
	rig_up(r, globs, "", sink_args);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, SSN), "message with an SSN");
	proxy_wait_log(r->px, "event=notify-failed ");
	H_CHECK(log_count(r->px, "event=notify-deferred ") == 1,
	    "%zu deferrals, want 1", log_count(r->px, "event=notify-deferred "));
	H_CHECK(log_count(r->px, "event=notify-sent ") == 0, "sent");
	H_CHECK(sink_count_rejected(r->sink) == 2 && sink_count(r->sink) == 1,
	    "%zu rejected, %zu accepted", sink_count_rejected(r->sink),
	    sink_count(r->sink));
	cli_quit(c);
}
END_TEST

/* A permanent refusal is not retried. */
START_TEST(test_notify_permanent_failure)
{
	static const char *const sink_args[] = {
		"--rule", "dot#2=reply:554 5.7.1 no thanks", NULL
	};
	struct rig *r = rig_new();
	const char *globs[] = { shipped("notify-sender.lua"), NULL };
	struct cli *c;
	char *line;

	rig_up(r, globs, "", sink_args);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, SSN), "message with an SSN");
	line = proxy_wait_log(r->px, "event=notify-failed ");
	H_CHECK(h_kv_has(line, "permanent", "yes"), "%s", line);
	H_CHECK(log_count(r->px, "event=notify-deferred ") == 0, "deferred");
	H_CHECK(sink_count_rejected(r->sink) == 1 && sink_count(r->sink) == 1,
	    "%zu rejected, %zu accepted", sink_count_rejected(r->sink),
	    sink_count(r->sink));
	cli_quit(c);
}
END_TEST

/* notify.to may list up to 100 addresses (docs/lua-api.md): all get it. */
START_TEST(test_notify_many_recipients)
{
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	char *list = "", *env;
	struct cli *c;
	size_t i, n;

	for (i = 0; i < 70; i++)
		list = h_strf("%s%s\"sec%02zu@example.com\"", list, i ? ", " : "",
		    i);
	trigger_policy(r, "a.lua", "Tell many",
	    h_strf("notify = { to = { %s } }", list));
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, TRIGGERED), "message");
	sink_wait_events(r->sink, "event=message ", 2);
	wait_log_count(r->px, "event=notify-sent ", 1);
	i = find_by_rcpt(r->sink, "sec00@example.com");
	env = sink_env(r->sink, i);
	n = h_env_count(env, "rcpt ");
	H_CHECK(n == 70, "the notification went to %zu of 70 addresses "
	    "(last: sec69 %s)", n, h_env_line(env, "rcpt <sec69@") ? "in" :
	    "missing");
	cli_quit(c);
}
END_TEST

/*
 * A header a policy adds that starts with a dot (".X-Dot" is a legal
 * field name) either is refused when the policy loads, or arrives as
 * written: the receiver removes one leading dot from a line.
 */
START_TEST(test_modify_header_leading_dot)
{
	struct rig *r = rig_new();
	const char *globs[] = { h_strf("%s/*.lua", r->dir), NULL };
	char *cfg = h_strf("%s/check.yaml", r->dir), *out, *y;
	struct cli *c;
	int port = h_free_port();

	trigger_policy(r, "a.lua", "Dotted",
	    "modify = { headers = { \".X-Dot: yes\" } }");
	y = h_yaml(&port, 1, policy_yaml(r, globs, ""));
	h_write_file(cfg, y, strlen(y));
	if (run_check(cfg, &out) != 0)
		return;		/* refused at load: fine */
	rig_up(r, globs, "", NULL);
	c = cli_open(r->px->port);
	expect_250(send_msg(c, TRIGGERED), "message");
	check_delivered(r->sink, 0, ".X-Dot: yes\r\n", TRIGGERED,
	    "bob@example.net");
	cli_quit(c);
}
END_TEST

/* Header values with quotes, backslashes, control bytes: escaped. */
START_TEST(test_incident_escaping)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	const char *msg = "Subject: order\r\n"
	    "Message-ID: <\"q\\\\u\"\x01\x1b[31m@x>\r\n"
	    "\r\n"
	    "4111 1111 1111 1111\r\n";
	struct cli_reply *rep;
	struct jc_val **inc;
	size_t n;

	rep = send_msg(c, msg);
	H_CHECK(rep->code == 550, "reply %d %s", rep->code, rep->text);
	inc = incidents(r, &n);
	H_CHECK(n == 1, "%zu incidents", n);
	H_CHECK(strcmp(inc_str(inc[0], "message_id"),
	    "<\"q\\\\u\"\x01\x1b[31m@x>") == 0, "message_id \"%s\"",
	    inc_str(inc[0], "message_id"));
	cli_quit(c);
}
END_TEST

/*
 * A Message-ID with bytes that are not UTF-8: the incident line must stay
 * valid JSON (RFC 8259 8.1), or log readers drop the record.
 */
START_TEST(test_incident_invalid_utf8)
{
	struct rig *r = rig_shipped("", NULL);
	struct cli *c = cli_open(r->px->port);
	const char *msg = "Subject: order\r\n"
	    "Message-ID: <\xff\xfe\xc3(@x>\r\n"
	    "\r\n"
	    "4111 1111 1111 1111\r\n";
	struct cli_reply *rep;
	size_t n;

	rep = send_msg(c, msg);
	H_CHECK(rep->code == 550, "reply %d %s", rep->code, rep->text);
	incidents(r, &n);		/* fails unless every line is JSON */
	H_CHECK(n == 1, "%zu incidents", n);
	cli_quit(c);
}
END_TEST

static TCase *
tcase(const char *name)
{
	TCase *tc = h_tcase(name);

	tcase_add_checked_fixture(tc, NULL, json_teardown);
	return tc;
}

int
main(void)
{
	Suite *s = suite_create("e2e_policy");
	TCase *tc = tcase("shipped");

	tcase_add_test(tc, test_shipped_plain_passes);
	tcase_add_loop_test(tc, test_shipped_modify, 0,
	    sizeof(modify_cases) / sizeof(modify_cases[0]));
	tcase_add_test(tc, test_shipped_block);
	tcase_add_test(tc, test_shipped_redirect);
	tcase_add_test(tc, test_shipped_notify);
	tcase_add_test(tc, test_trial_mode);
	suite_add_tcase(s, tc);

	tc = tcase("precedence");
	tcase_add_test(tc, test_precedence_block_wins);
	tcase_add_test(tc, test_precedence_redirect_over_modify);
	tcase_add_test(tc, test_precedence_modify_merge);
	tcase_add_test(tc, test_notify_every_hit_when_blocked);
	tcase_add_test(tc, test_modify_header_leading_dot);
	suite_add_tcase(s, tc);

	tc = tcase("failures");
	tcase_add_test(tc, test_policy_endless_loop);
	tcase_add_test(tc, test_policy_memory_cap);
	tcase_add_test(tc, test_policy_runtime_error);
	tcase_add_test(tc, test_check_bad_block_reply);
	tcase_add_test(tc, test_reload_broken_policy_keeps_old);
	suite_add_tcase(s, tc);

	tc = tcase("outcome");
	tcase_add_test(tc, test_dot_4xx_no_incident);
	tcase_add_test(tc, test_notify_retry);
	tcase_add_test(tc, test_notify_retries_exhausted);
	tcase_add_test(tc, test_notify_permanent_failure);
	tcase_add_test(tc, test_notify_many_recipients);
	tcase_add_test(tc, test_incident_escaping);
	tcase_add_test(tc, test_incident_invalid_utf8);
	suite_add_tcase(s, tc);
	return h_run(s);
}
