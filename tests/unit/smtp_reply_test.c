/*
 * smtp_reply_test: common/smtp_reply.c. Well-formed replies, and next
 * hops that are broken or hostile: bad codes, codes that change between
 * lines, endless continuation, over-long lines, huge replies, control
 * bytes. Formatting is checked byte for byte.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_reply.h"

/* Feed lines separated by '\n' in s; returns the last status. */
static enum smtp_reply_status
feed_lines(struct smtp_reply *r, const char *s, const char **err)
{
	enum smtp_reply_status st = SMTP_REPLY_ERROR;
	const char *nl;
	size_t n;

	for (;;) {
		nl = strchr(s, '\n');
		n = nl ? (size_t)(nl - s) : strlen(s);
		st = smtp_reply_feed(r, s, n, err);
		if (nl == NULL || st != SMTP_REPLY_MORE)
			return st;
		s = nl + 1;
	}
}

static void
reply_ok(const char *lines, int code, const char *enh, int nlines,
    const char *text)
{
	struct smtp_reply r;
	const char *err = NULL;

	smtp_reply_init(&r);
	ck_assert_msg(feed_lines(&r, lines, &err) == SMTP_REPLY_DONE,
	    "\"%s\": %s", lines, err ? err : "not done");
	ck_assert_int_eq(r.code, code);
	ck_assert_str_eq(r.enh, enh);
	ck_assert_int_eq(r.nlines, nlines);
	ck_assert_str_eq(r.text.data, text);
	ck_assert_uint_eq(r.text.len, strlen(text));
	smtp_reply_free(&r);
}

static void
reply_bad(const char *lines, const char *why)
{
	struct smtp_reply r;
	const char *err = NULL;

	smtp_reply_init(&r);
	ck_assert_msg(feed_lines(&r, lines, &err) == SMTP_REPLY_ERROR,
	    "\"%s\" accepted", lines);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err, why);
	smtp_reply_free(&r);
}

START_TEST(reply_simple)
{
	reply_ok("250 OK", 250, "", 1, "OK");
	reply_ok("250", 250, "", 1, "");
	reply_ok("250 ", 250, "", 1, "");
	reply_ok("354 End data with <CR><LF>.<CR><LF>", 354, "", 1,
	    "End data with <CR><LF>.<CR><LF>");
	reply_ok("599 x", 599, "", 1, "x");
	reply_ok("200 x", 200, "", 1, "x");
	reply_ok("250 2.1.0 Sender ok", 250, "2.1.0", 1, "Sender ok");
	reply_ok("250 2.1.0", 250, "2.1.0", 1, "");
	reply_ok("550 5.7.1 Rejected", 550, "5.7.1", 1, "Rejected");
	reply_ok("451 4.3.0 Try later", 451, "4.3.0", 1, "Try later");
	reply_ok("250 2.0.0  two spaces", 250, "2.0.0", 1, " two spaces");
	/* not enhanced codes: class mismatch, bad shapes, no space after */
	reply_ok("250 5.1.1 odd", 250, "", 1, "5.1.1 odd");
	reply_ok("354 3.0.0 go", 354, "", 1, "3.0.0 go");
	reply_ok("250 2.1.0ok", 250, "", 1, "2.1.0ok");
	reply_ok("250 2.1234.0 x", 250, "", 1, "2.1234.0 x");
	reply_ok("250 22.1.0 x", 250, "", 1, "22.1.0 x");
	reply_ok("250 2.1 x", 250, "", 1, "2.1 x");
	reply_ok("250 2.999.999 x", 250, "2.999.999", 1, "x");
}
END_TEST

START_TEST(reply_multiline)
{
	reply_ok("250-mx.example\n250-PIPELINING\n250-SIZE 1000\n250 8BITMIME",
	    250, "", 4, "mx.example\nPIPELINING\nSIZE 1000\n8BITMIME");
	/* the same enhanced code on every line is stripped from each */
	reply_ok("550-5.7.1 first\n550-5.7.1 second\n550 5.7.1 third", 550,
	    "5.7.1", 3, "first\nsecond\nthird");
	reply_ok("550-5.7.1 first\n550-5.7.1\n550 5.7.1 third", 550,
	    "5.7.1", 3, "first\n\nthird");
	/* ...but not when a line lacks it */
	reply_ok("550-5.7.1 first\n550 second", 550, "5.7.1", 2,
	    "5.7.1 first\nsecond");
	reply_ok("550-5.7.1 first\n550 5.7.2 second", 550, "5.7.1", 2,
	    "5.7.1 first\n5.7.2 second");
	reply_ok("550-5.7.1 first\n550 5.7.10 second", 550, "5.7.1", 2,
	    "5.7.1 first\n5.7.10 second");
	reply_ok("250-\n250-\n250", 250, "", 3, "\n\n");
	reply_ok("250-a\n250", 250, "", 2, "a\n");
}
END_TEST

START_TEST(reply_statuses)
{
	struct smtp_reply r;
	const char *err;

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, "220-hello", 9, &err),
	    SMTP_REPLY_MORE);
	ck_assert_int_eq(r.nlines, 1);
	ck_assert_int_eq(smtp_reply_feed(&r, "220-", 4, &err),
	    SMTP_REPLY_MORE);
	ck_assert_int_eq(smtp_reply_feed(&r, "220 ready", 9, &err),
	    SMTP_REPLY_DONE);
	ck_assert_int_eq(smtp_reply_class(&r), 2);
	ck_assert_str_eq(r.text.data, "hello\n\nready");

	/* reset is enough to parse the next reply */
	smtp_reply_reset(&r);
	ck_assert_int_eq(r.nlines, 0);
	ck_assert_int_eq(smtp_reply_feed(&r, "421 4.4.2 bye", 13, &err),
	    SMTP_REPLY_DONE);
	ck_assert_int_eq(smtp_reply_class(&r), 4);
	ck_assert_str_eq(r.enh, "4.4.2");
	ck_assert_str_eq(r.text.data, "bye");
	smtp_reply_free(&r);
	ck_assert_ptr_null(r.text.data);
}
END_TEST

START_TEST(reply_malformed)
{
	reply_bad("", "malformed reply code");
	reply_bad("25", "malformed reply code");
	reply_bad("2", "malformed reply code");
	reply_bad("2500", "malformed reply code");
	reply_bad("2500 OK", "malformed reply code");
	reply_bad("250OK", "malformed reply code");
	reply_bad("250\tOK", "malformed reply code");
	reply_bad("abc", "malformed reply code");
	reply_bad("abc OK", "malformed reply code");
	reply_bad(" 250 OK", "malformed reply code");
	reply_bad("25a OK", "malformed reply code");
	reply_bad("-250 OK", "malformed reply code");
	reply_bad("600 OK", "reply code out of range");
	reply_bad("999 OK", "reply code out of range");
	reply_bad("199 OK", "reply code out of range");
	reply_bad("000 OK", "reply code out of range");
	reply_bad("100 OK", "reply code out of range");
	reply_bad("250-a\n251 b", "reply code changed within a multiline reply");
	reply_bad("250-a\n550 b", "reply code changed within a multiline reply");
	reply_bad("250-a\n250-b\n25", "malformed reply code");
	reply_bad("250-a\n2500", "malformed reply code");
}
END_TEST

START_TEST(reply_nul_esc)
{
	static const char line[] = "250 a\0b\x1b[31mc\x7f\xff\r";
	struct smtp_reply r;
	const char *err;

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, sizeof(line) - 1, &err),
	    SMTP_REPLY_DONE);
	ck_assert_uint_eq(r.text.len, 12);
	ck_assert_str_eq(r.text.data, "a?b?[31mc???");
	smtp_reply_free(&r);

	/* a NUL in the code itself */
	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, "25\0 x", 5, &err),
	    SMTP_REPLY_ERROR);
	smtp_reply_free(&r);
}
END_TEST

START_TEST(reply_line_limit)
{
	struct smtp_reply r;
	const char *err;
	char *line = malloc(SMTP_REPLY_LINE_MAX + 2);

	ck_assert_ptr_nonnull(line);
	memset(line, 'x', SMTP_REPLY_LINE_MAX + 1);
	memcpy(line, "250 ", 4);

	smtp_reply_init(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX, &err),
	    SMTP_REPLY_DONE);
	ck_assert_uint_eq(r.text.len, SMTP_REPLY_LINE_MAX - 4);
	smtp_reply_reset(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX + 1,
	    &err), SMTP_REPLY_ERROR);
	ck_assert_str_eq(err, "reply line too long");

	/* decided on the length alone: junk that long is still "too long" */
	memset(line, '\0', SMTP_REPLY_LINE_MAX + 1);
	smtp_reply_reset(&r);
	ck_assert_int_eq(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX + 1,
	    &err), SMTP_REPLY_ERROR);
	ck_assert_str_eq(err, "reply line too long");
	smtp_reply_free(&r);
	free(line);
}
END_TEST

/* "250-" forever: fine up to the cap, an error on the line after it. */
START_TEST(reply_endless_continuation)
{
	struct smtp_reply r;
	const char *err;
	int i;

	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		ck_assert_int_eq(smtp_reply_feed(&r, "250-more", 8, &err),
		    SMTP_REPLY_MORE);
	ck_assert_int_eq(smtp_reply_feed(&r, "250-more", 8, &err),
	    SMTP_REPLY_ERROR);
	ck_assert_str_eq(err, "too many reply lines");
	/* and it stays an error */
	ck_assert_int_eq(smtp_reply_feed(&r, "250 end", 7, &err),
	    SMTP_REPLY_ERROR);

	/* exactly the cap, ending properly, is a reply */
	smtp_reply_reset(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		ck_assert_int_eq(smtp_reply_feed(&r, "250-more", 8, &err),
		    SMTP_REPLY_MORE);
	ck_assert_int_eq(smtp_reply_feed(&r, "250 end", 7, &err),
	    SMTP_REPLY_DONE);
	ck_assert_int_eq(r.nlines, SMTP_REPLY_LINES_MAX);
	smtp_reply_free(&r);
}
END_TEST

/* 100 KB in lines that are each within limits: the text kept is capped. */
START_TEST(reply_huge)
{
	struct smtp_reply r;
	const char *err;
	char line[2000];
	int i;
	enum smtp_reply_status st;

	memset(line, 'y', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_init(&r);
	for (i = 0; i < 50; i++) {
		if (i == 49)
			line[3] = ' ';
		st = smtp_reply_feed(&r, line, sizeof(line), &err);
		ck_assert_int_eq(st, i == 49 ? SMTP_REPLY_DONE : SMTP_REPLY_MORE);
		ck_assert_uint_le(r.text.len, SMTP_REPLY_TEXT_MAX);
	}
	ck_assert_int_eq(r.nlines, 50);
	ck_assert_uint_eq(r.text.len, SMTP_REPLY_TEXT_MAX);
	ck_assert_uint_eq(strlen(r.text.data), SMTP_REPLY_TEXT_MAX);
	/* what is kept is the start of the text, lines joined by '\n' */
	ck_assert_int_eq(r.text.data[sizeof(line) - 4], '\n');
	ck_assert_int_eq(r.text.data[0], 'y');
	smtp_reply_free(&r);

	/* 100 KB on one line is simply too long */
	{
		char *big = malloc(100 * 1024);

		ck_assert_ptr_nonnull(big);
		memset(big, 'z', 100 * 1024);
		memcpy(big, "250 ", 4);
		smtp_reply_init(&r);
		ck_assert_int_eq(smtp_reply_feed(&r, big, 100 * 1024, &err),
		    SMTP_REPLY_ERROR);
		ck_assert_str_eq(err, "reply line too long");
		ck_assert_uint_eq(r.text.len, 0);
		smtp_reply_free(&r);
		free(big);
	}
}
END_TEST

START_TEST(enh_valid)
{
	ck_assert_int_eq(smtp_enh_valid("2.0.0", 250), 0);
	ck_assert_int_eq(smtp_enh_valid("2.1.5", 250), 0);
	ck_assert_int_eq(smtp_enh_valid("4.7.0", 421), 0);
	ck_assert_int_eq(smtp_enh_valid("5.7.1", 554), 0);
	ck_assert_int_eq(smtp_enh_valid("5.123.456", 554), 0);
	ck_assert_int_eq(smtp_enh_valid("2.0.0", 550), -1);
	ck_assert_int_eq(smtp_enh_valid("5.0.0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("3.0.0", 354), -1);
	ck_assert_int_eq(smtp_enh_valid("1.0.0", 150), -1);
	ck_assert_int_eq(smtp_enh_valid("", 250), -1);
	ck_assert_int_eq(smtp_enh_valid(NULL, 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.0.", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2..0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.0.0.", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.0.0 ", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.1000.0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.0.1000", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("22.0.0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("2.a.0", 250), -1);
	ck_assert_int_eq(smtp_enh_valid("+2.0.0", 250), -1);
}
END_TEST

static void
format_is(int code, const char *enh, const char *text, const char *want)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_append(&b, "X", 1), 0);
	ck_assert_int_eq(smtp_reply_format(&b, code, enh, text), 0);
	ck_assert_msg(b.len == strlen(want) + 1 &&
	    memcmp(b.data + 1, want, b.len - 1) == 0,
	    "format %d %s \"%s\": \"%.*s\"", code, enh ? enh : "NULL",
	    text ? text : "NULL", (int)b.len - 1, b.data + 1);
	buf_free(&b);
}

START_TEST(reply_format)
{
	format_is(250, "2.0.0", "OK", "250 2.0.0 OK\r\n");
	format_is(250, NULL, "OK", "250 OK\r\n");
	format_is(250, "", "OK", "250 OK\r\n");
	format_is(354, NULL, "End data with <CR><LF>.<CR><LF>",
	    "354 End data with <CR><LF>.<CR><LF>\r\n");
	format_is(250, "2.0.0", "", "250 2.0.0\r\n");
	format_is(250, NULL, "", "250\r\n");
	format_is(250, NULL, NULL, "250\r\n");
	format_is(250, NULL, "mx.example\nPIPELINING\n8BITMIME",
	    "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
	format_is(550, "5.7.1", "Message rejected\nby policy",
	    "550-5.7.1 Message rejected\r\n550 5.7.1 by policy\r\n");
	format_is(250, NULL, "a\n", "250 a\r\n");
	format_is(250, NULL, "a\n\nb", "250-a\r\n250-\r\n250 b\r\n");
	/* nothing in text can end a line early or smuggle a reply */
	format_is(250, NULL, "ok\r\n250 fake", "250-ok\r\n250 250 fake\r\n");
	format_is(550, "5.7.1", "bad\rx\0ignored", "550 5.7.1 badx\r\n");
	format_is(550, "5.7.1", "\x1b[2J\x01", "550 5.7.1 [2J\r\n");
	format_is(550, "5.7.1", "\x1b\x01\x7f", "550 5.7.1\r\n");
	format_is(250, NULL, "caf\xc3\xa9", "250 caf\r\n");
}
END_TEST

START_TEST(reply_format_bad)
{
	struct buf b = BUF_INIT;

	ck_assert_int_eq(buf_append(&b, "keep", 4), 0);
	ck_assert_int_eq(smtp_reply_format(&b, 199, NULL, "x"), -1);
	ck_assert_int_eq(smtp_reply_format(&b, 600, NULL, "x"), -1);
	ck_assert_int_eq(smtp_reply_format(&b, 250, "5.0.0", "x"), -1);
	ck_assert_int_eq(smtp_reply_format(&b, 250, "2.0.0\r\n", "x"), -1);
	ck_assert_int_eq(smtp_reply_format(&b, 354, "3.0.0", "x"), -1);
	ck_assert_uint_eq(b.len, 4);
	buf_free(&b);
}
END_TEST

/* Every line we send fits RFC 5321's 512 octets, CRLF included. */
START_TEST(reply_format_long)
{
	struct buf b = BUF_INIT;
	char text[3000];
	const char *p, *nl;
	int lines = 0;

	memset(text, 'w', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	text[1500] = '\n';
	ck_assert_int_eq(smtp_reply_format(&b, 550, "5.7.1", text), 0);
	ck_assert_ptr_nonnull(buf_cstr(&b));
	for (p = b.data; (nl = strstr(p, "\r\n")) != NULL; p = nl + 2) {
		ck_assert_uint_le((size_t)(nl - p) + 2, 512);
		ck_assert_uint_eq((size_t)(nl - p) + 2, 512);
		lines++;
	}
	ck_assert_int_eq(lines, 2);
	ck_assert_int_eq(memcmp(b.data, "550-5.7.1 www", 13), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\r\n550 5.7.1 www"));
	buf_free(&b);
}
END_TEST

/* What we format, we parse back to the same thing. */
START_TEST(reply_round_trip)
{
	static const struct {
		int		 code;
		const char	*enh, *text;
	} rt[] = {
		{ 250, "2.1.0", "Sender ok" },
		{ 550, "5.7.1", "line one\nline two\nline three" },
		{ 221, NULL, "bye" },
		{ 250, NULL, "mx\nSIZE 10\nDSN" },
	};
	struct buf b = BUF_INIT;
	struct smtp_reply r;
	const char *err, *p, *nl;
	enum smtp_reply_status st = SMTP_REPLY_ERROR;
	size_t i;

	smtp_reply_init(&r);
	for (i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		buf_reset(&b);
		smtp_reply_reset(&r);
		ck_assert_int_eq(smtp_reply_format(&b, rt[i].code, rt[i].enh,
		    rt[i].text), 0);
		ck_assert_ptr_nonnull(buf_cstr(&b));
		for (p = b.data; (nl = strstr(p, "\r\n")) != NULL; p = nl + 2)
			st = smtp_reply_feed(&r, p, (size_t)(nl - p), &err);
		ck_assert_int_eq(st, SMTP_REPLY_DONE);
		ck_assert_int_eq(r.code, rt[i].code);
		ck_assert_str_eq(r.enh, rt[i].enh ? rt[i].enh : "");
		ck_assert_str_eq(r.text.data, rt[i].text);
	}
	smtp_reply_free(&r);
	buf_free(&b);
}
END_TEST

static Suite *
reply_suite(void)
{
	Suite *s = suite_create("smtp_reply");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, reply_simple);
	tcase_add_test(tc, reply_multiline);
	tcase_add_test(tc, reply_statuses);
	tcase_add_test(tc, reply_malformed);
	tcase_add_test(tc, reply_nul_esc);
	tcase_add_test(tc, reply_line_limit);
	tcase_add_test(tc, reply_endless_continuation);
	tcase_add_test(tc, reply_huge);
	tcase_add_test(tc, enh_valid);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, reply_format);
	tcase_add_test(tc, reply_format_bad);
	tcase_add_test(tc, reply_format_long);
	tcase_add_test(tc, reply_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reply_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
