/*
 * incident_test: proxy/incident.c. incident_format renders one JSON line
 * per message; the line is read back with the strict checker in
 * tests/json_check.h (valid UTF-8, no raw control bytes, no duplicate
 * keys), so escaping is judged by what a JSON reader gets, not by how the
 * bytes look. One case pins the whole line byte for byte. incident_write
 * appends whole lines.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "incident.h"
#include "policy.h"

#include "../json_check.h"

/* 2026-01-01T00:00:00Z */
#define T2026	1767225600.0

static const char *const rcpts2[] = { "bob@example.net", "carol@example.org" };

struct fixture {
	struct policy_hit	hits[3];
	struct verdict		v;
	struct incident		in;
};

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->hits[0].name = "Payment card numbers";
	f->hits[0].count = 2;
	snprintf(f->hits[0].sample, sizeof(f->hits[0].sample),
	    "************1111");
	f->hits[1].name = "Monitor only";
	f->hits[1].count = 1;
	f->v.action = VERDICT_BLOCK;
	f->v.decider = &f->hits[0];
	f->v.hits = f->hits;
	f->v.nhits = 2;
	f->in.queue_id = "a1b2c3d4.1";
	f->in.message_id = "<m1@example.com>";
	f->in.sender = "alice@example.com";
	f->in.recipients = rcpts2;
	f->in.nrecipients = 2;
	f->in.client_ip = "127.0.0.1";
	f->in.helo = "client.test";
	f->in.verdict = &f->v;
	f->in.action = "block";
	f->in.reply = 550;
}

/* Format, check it is one line ending in LF, parse it. */
static struct jc_val *
format_parse(const struct incident *in, double now, struct buf *out)
{
	char err[128];
	struct jc_val *v;

	buf_reset(out);
	ck_assert_int_eq(incident_format(out, in, now), 0);
	ck_assert_uint_gt(out->len, 1);
	ck_assert_msg(out->data[out->len - 1] == '\n', "no final LF");
	ck_assert_msg(memchr(out->data, '\n', out->len - 1) == NULL,
	    "more than one line: %.*s", (int)out->len, out->data);
	ck_assert_msg(memchr(out->data, '\r', out->len) == NULL, "a CR");
	v = jc_parse(out->data, out->len, err, sizeof(err));
	ck_assert_msg(v != NULL, "not valid JSON (%s): %s", err,
	    jc_vis(out->data, out->len));
	ck_assert_int_eq(v->type, JC_OBJ);
	return v;
}

static void
expect_str(const struct jc_val *o, const char *key, const char *want)
{
	const char *got = jc_str(o, key);

	ck_assert_msg(got != NULL, "\"%s\" missing or not a string", key);
	ck_assert_msg(strcmp(got, want) == 0, "\"%s\": got \"%s\", want \"%s\"",
	    key, got, want);
}

/* The oracle itself: it must refuse what a strict reader refuses. */
START_TEST(checker_is_strict)
{
	static const char *const bad[] = {
		"{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc3(\"}",
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\\ud800\"}",
		"{\"a\":1,\"a\":2}", "{\"a\":1} x", "{\"a\":01}", "{'a':1}",
		"{\"a\":\"\\x41\"}", "[1,]", "{\"a\":\"\xc0\xaf\"}", NULL
	};
	static const char good[] = "{\"a\":\"J\xc3\xbcrgen \\ud83d\\udce7 "
	    "\\\"\\\\\\u0001\",\"b\":[true,false,null,-1.5e3]}\n";
	char err[128];
	struct jc_val *v;
	size_t i;

	for (i = 0; bad[i] != NULL; i++) {
		v = jc_parse(bad[i], strlen(bad[i]), err, sizeof(err));
		ck_assert_msg(v == NULL, "accepted %s", bad[i]);
	}
	v = jc_parse(good, strlen(good), err, sizeof(err));
	ck_assert_msg(v != NULL, "%s", err);
	ck_assert_str_eq(jc_str(v, "a"), "J\xc3\xbcrgen \xf0\x9f\x93\xa7 \"\\\x01");
	ck_assert_int_eq(jc_get(v, "b")->n, 4);
	jc_free(v);
}
END_TEST

/* The whole line, byte for byte: field names, order and formats. */
START_TEST(format_exact)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	static const char want[] =
	    "{\"time\":\"2026-01-01T00:00:00.250Z\","
	    "\"queue_id\":\"a1b2c3d4.1\","
	    "\"message_id\":\"<m1@example.com>\","
	    "\"sender\":\"alice@example.com\","
	    "\"recipients\":[\"bob@example.net\",\"carol@example.org\"],"
	    "\"client_ip\":\"127.0.0.1\","
	    "\"helo\":\"client.test\","
	    "\"policies\":[{\"name\":\"Payment card numbers\",\"matches\":2,"
	    "\"sample\":\"************1111\"},"
	    "{\"name\":\"Monitor only\",\"matches\":1}],"
	    "\"action\":\"block\","
	    "\"trial\":false,"
	    "\"reply\":550}\n";

	fixture_init(&f);
	ck_assert_int_eq(incident_format(&out, &f.in, T2026 + 0.25), 0);
	ck_assert_str_eq(buf_cstr(&out), want);
	ck_assert_uint_eq(out.len, strlen(want));
	buf_free(&out);
}
END_TEST

/* Every field, read back through the parser. */
START_TEST(format_fields_block)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	const struct jc_val *r, *p, *h;
	struct jc_val *o;

	fixture_init(&f);
	o = format_parse(&f.in, T2026, &out);
	expect_str(o, "time", "2026-01-01T00:00:00.000Z");
	expect_str(o, "queue_id", "a1b2c3d4.1");
	expect_str(o, "message_id", "<m1@example.com>");
	expect_str(o, "sender", "alice@example.com");
	expect_str(o, "client_ip", "127.0.0.1");
	expect_str(o, "helo", "client.test");
	expect_str(o, "action", "block");
	r = jc_get(o, "recipients");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, JC_ARR);
	ck_assert_uint_eq(r->n, 2);
	ck_assert_str_eq(r->items[0]->str, "bob@example.net");
	ck_assert_str_eq(r->items[1]->str, "carol@example.org");
	p = jc_get(o, "policies");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->type, JC_ARR);
	ck_assert_uint_eq(p->n, 2);
	h = p->items[0];
	expect_str(h, "name", "Payment card numbers");
	ck_assert_str_eq(jc_get(h, "matches")->num, "2");
	expect_str(h, "sample", "************1111");
	h = p->items[1];
	expect_str(h, "name", "Monitor only");
	ck_assert_str_eq(jc_get(h, "matches")->num, "1");
	ck_assert_ptr_null(jc_get(h, "sample"));	/* none: left out */
	ck_assert_int_eq(jc_get(o, "trial")->type, JC_BOOL);
	ck_assert_int_eq(jc_get(o, "trial")->b, 0);
	ck_assert_str_eq(jc_get(o, "reply")->num, "550");
	/* Not a trial, not a redirect, no error: those keys are absent. */
	ck_assert_ptr_null(jc_get(o, "would"));
	ck_assert_ptr_null(jc_get(o, "redirect_to"));
	ck_assert_ptr_null(jc_get(o, "error"));
	jc_free(o);
	buf_free(&out);
}
END_TEST

START_TEST(format_fields_trial_and_redirect)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;

	fixture_init(&f);
	f.in.action = "monitor";
	f.in.trial = 1;
	f.in.would = "block";
	f.in.reply = 250;
	o = format_parse(&f.in, T2026, &out);
	expect_str(o, "action", "monitor");
	ck_assert_int_eq(jc_get(o, "trial")->type, JC_BOOL);
	ck_assert_int_eq(jc_get(o, "trial")->b, 1);
	expect_str(o, "would", "block");
	ck_assert_str_eq(jc_get(o, "reply")->num, "250");
	ck_assert_ptr_null(jc_get(o, "redirect_to"));
	jc_free(o);

	fixture_init(&f);
	f.v.action = VERDICT_REDIRECT;
	f.in.action = "redirect";
	f.in.redirect_to = "dlp-review@example.com";
	f.in.reply = 250;
	o = format_parse(&f.in, T2026, &out);
	expect_str(o, "action", "redirect");
	expect_str(o, "redirect_to", "dlp-review@example.com");
	ck_assert_ptr_null(jc_get(o, "would"));
	jc_free(o);
	buf_free(&out);
}
END_TEST

START_TEST(format_policy_error_fields)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;

	fixture_init(&f);
	f.v.error = 1;
	snprintf(f.v.error_policy, sizeof(f.v.error_policy), "Broken \"one\"");
	snprintf(f.v.error_msg, sizeof(f.v.error_msg),
	    "/p/x.lua:3: attempt to index a nil value (local 'm')\n"
	    "stack traceback:\n\t[C]: in ?");
	o = format_parse(&f.in, T2026, &out);
	expect_str(o, "error_policy", "Broken \"one\"");
	expect_str(o, "error", f.v.error_msg);
	jc_free(o);
	buf_free(&out);
}
END_TEST

/* Absent values: NULL strings, no recipients, no policies. */
START_TEST(format_empty_values)
{
	struct incident in;
	struct buf out = BUF_INIT;
	const struct jc_val *r;
	struct jc_val *o;

	memset(&in, 0, sizeof(in));
	in.queue_id = "q.1";
	in.message_id = "";
	in.sender = "";		/* the null sender */
	in.action = "monitor";
	o = format_parse(&in, T2026, &out);
	expect_str(o, "message_id", "");
	expect_str(o, "sender", "");
	expect_str(o, "client_ip", "");
	expect_str(o, "helo", "");
	r = jc_get(o, "recipients");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, JC_ARR);
	ck_assert_uint_eq(r->n, 0);
	r = jc_get(o, "policies");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, JC_ARR);
	ck_assert_uint_eq(r->n, 0);
	jc_free(o);
	buf_free(&out);
}
END_TEST

/*
 * Quotes, backslashes, every control byte, DEL: escaped so that a JSON
 * reader gets back the very same bytes, in every string field.
 */
START_TEST(format_escaping)
{
	struct fixture f;
	struct buf out = BUF_INIT, nasty = BUF_INIT;
	const struct jc_val *p;
	struct jc_val *o;
	const char *rc[2];
	int c;

	buf_appends(&nasty, "q\"b\\s/");
	for (c = 1; c < 0x20; c++) {
		char ch = (char)c;

		buf_append(&nasty, &ch, 1);
	}
	buf_appends(&nasty, "\x7f" "end\"");
	buf_cstr(&nasty);

	fixture_init(&f);
	rc[0] = nasty.data;
	rc[1] = "\"";
	f.in.queue_id = nasty.data;
	f.in.message_id = nasty.data;
	f.in.sender = nasty.data;
	f.in.recipients = rc;
	f.in.client_ip = nasty.data;
	f.in.helo = nasty.data;
	f.in.action = nasty.data;
	f.in.would = nasty.data;
	f.in.redirect_to = nasty.data;
	f.hits[0].name = nasty.data;
	snprintf(f.hits[1].sample, sizeof(f.hits[1].sample), "\\\"\t");
	o = format_parse(&f.in, T2026, &out);
	/* No byte below 0x20 or DEL may appear raw in the line. */
	for (size_t i = 0; i + 1 < out.len; i++)
		ck_assert_msg((unsigned char)out.data[i] >= 0x20 &&
		    out.data[i] != 0x7f, "raw byte 0x%02x at %zu",
		    (unsigned char)out.data[i], i);
	expect_str(o, "queue_id", nasty.data);
	expect_str(o, "message_id", nasty.data);
	expect_str(o, "sender", nasty.data);
	expect_str(o, "client_ip", nasty.data);
	expect_str(o, "helo", nasty.data);
	expect_str(o, "action", nasty.data);
	expect_str(o, "would", nasty.data);
	expect_str(o, "redirect_to", nasty.data);
	ck_assert_str_eq(jc_get(o, "recipients")->items[0]->str, nasty.data);
	ck_assert_str_eq(jc_get(o, "recipients")->items[1]->str, "\"");
	p = jc_get(o, "policies");
	expect_str(p->items[0], "name", nasty.data);
	expect_str(p->items[1], "sample", "\\\"\t");
	jc_free(o);
	buf_free(&out);
	buf_free(&nasty);
}
END_TEST

/* Valid UTF-8 comes back unchanged (raw or \u-escaped: both are JSON). */
START_TEST(format_utf8)
{
	static const char u[] = "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac "
	    "\xf0\x9f\x93\xa7 <\xc3\xa9@b\xc3\xbc\x72o.example>";
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;

	fixture_init(&f);
	f.in.message_id = u;
	f.in.sender = u;
	f.in.helo = u;
	f.hits[0].name = u;
	o = format_parse(&f.in, T2026, &out);
	expect_str(o, "message_id", u);
	expect_str(o, "sender", u);
	expect_str(o, "helo", u);
	expect_str(jc_get(o, "policies")->items[0], "name", u);
	jc_free(o);
	buf_free(&out);
}
END_TEST

/*
 * Bytes that are not UTF-8 (a hostile Message-ID header, a HELO name) must
 * not make the line invalid JSON: RFC 8259 8.1 requires UTF-8, and strict
 * readers (Python's json on bytes, many log shippers) reject the whole
 * record otherwise. How they are shown (U+FFFD, \u00XX) is the proxy's
 * choice; that the line stays readable is not.
 */
START_TEST(format_invalid_utf8_stays_json)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;

	fixture_init(&f);
	f.in.message_id = "<\xff\xfe\xc3(\xed\xa0\x80\xc0\xaf@x>";
	f.in.helo = "h\x80lo";
	o = format_parse(&f.in, T2026, &out);
	/* The ASCII around the bad bytes survives. */
	ck_assert_msg(strncmp(jc_str(o, "message_id"), "<", 1) == 0 &&
	    strstr(jc_str(o, "message_id"), "@x>") != NULL, "%s",
	    jc_str(o, "message_id"));
	jc_free(o);
	buf_free(&out);
}
END_TEST

START_TEST(format_matches_range)
{
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;

	fixture_init(&f);
	f.hits[0].count = UINT64_MAX;
	f.hits[1].count = 0;
	o = format_parse(&f.in, T2026, &out);
	ck_assert_str_eq(jc_get(jc_get(o, "policies")->items[0], "matches")->num,
	    "18446744073709551615");
	ck_assert_str_eq(jc_get(jc_get(o, "policies")->items[1], "matches")->num,
	    "0");
	jc_free(o);
	buf_free(&out);
}
END_TEST

/* UTC, milliseconds cut (never rounded up to ".1000"). */
START_TEST(format_time)
{
	static const struct {
		double		 now;
		const char	*want;
	} cases[] = {
		{ 0.0, "1970-01-01T00:00:00.000Z" },
		{ T2026 + 0.9999, "2026-01-01T00:00:00.999Z" },
		{ T2026 - 0.5, "2025-12-31T23:59:59.500Z" },
		{ 1709210096.042, "2024-02-29T12:34:56.042Z" },
	};
	struct fixture f;
	struct buf out = BUF_INIT;
	struct jc_val *o;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fixture_init(&f);
		o = format_parse(&f.in, cases[i].now, &out);
		expect_str(o, "time", cases[i].want);
		jc_free(o);
	}
	buf_free(&out);
}
END_TEST

static char tdir[256];

static void
tdir_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/mp-incident-XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	ck_assert_msg(mkdtemp(tdir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void
tdir_teardown(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/incidents.log", tdir);
	unlink(path);
	rmdir(tdir);
}

/* Appends: two records, two whole lines, each valid JSON; 0640. */
START_TEST(write_appends)
{
	struct fixture f;
	char path[512], err[128];
	char data[8192];
	struct stat st;
	struct jc_val *o;
	ssize_t n;
	char *nl;
	int fd;

	snprintf(path, sizeof(path), "%s/incidents.log", tdir);
	fixture_init(&f);
	ck_assert_int_eq(incident_write(path, &f.in), 0);
	f.in.queue_id = "second.2";
	ck_assert_int_eq(incident_write(path, &f.in), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777 & ~0640u, 0);	/* umask may clear more */
	ck_assert_int_ge(fd = open(path, O_RDONLY), 0);
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	data[n] = '\0';
	ck_assert_ptr_nonnull(nl = strchr(data, '\n'));
	o = jc_parse(data, (size_t)(nl - data), err, sizeof(err));
	ck_assert_msg(o != NULL, "%s", err);
	expect_str(o, "queue_id", "a1b2c3d4.1");
	jc_free(o);
	ck_assert_msg(strchr(nl + 1, '\n') == data + n - 1, "not two lines");
	o = jc_parse(nl + 1, (size_t)(data + n - nl - 1), err, sizeof(err));
	ck_assert_msg(o != NULL, "%s", err);
	expect_str(o, "queue_id", "second.2");
	jc_free(o);
}
END_TEST

START_TEST(write_error)
{
	struct fixture f;
	char path[512];

	fixture_init(&f);
	snprintf(path, sizeof(path), "%s/no/such/dir/incidents.log", tdir);
	errno = 0;
	ck_assert_int_eq(incident_write(path, &f.in), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("incident");
	TCase *tc = tcase_create("format");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, checker_is_strict);
	tcase_add_test(tc, format_exact);
	tcase_add_test(tc, format_fields_block);
	tcase_add_test(tc, format_fields_trial_and_redirect);
	tcase_add_test(tc, format_policy_error_fields);
	tcase_add_test(tc, format_empty_values);
	tcase_add_test(tc, format_escaping);
	tcase_add_test(tc, format_utf8);
	tcase_add_test(tc, format_invalid_utf8_stays_json);
	tcase_add_test(tc, format_matches_range);
	tcase_add_test(tc, format_time);
	suite_add_tcase(s, tc);

	tc = tcase_create("write");
	tcase_add_checked_fixture(tc, tdir_setup, tdir_teardown);
	tcase_add_test(tc, write_appends);
	tcase_add_test(tc, write_error);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
