/*
 * notify_test: notify_build (proxy/notify.c), the RFC 5322 message a
 * notification carries. Header fields present once each (Date, From, To,
 * Subject, Message-ID, Auto-Submitted, MIME), CRLF only, body line endings
 * normalised, nothing in the subject able to add a header line.
 * Delivery (retries, ordering) is covered end to end in
 * tests/e2e/policy_test.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "config.h"
#include "mime.h"
#include "notify.h"

static struct config *cfg;

static void
setup(void)
{
	cfg = config_defaults();
	snprintf(cfg->helo_name, sizeof(cfg->helo_name), "mailprevent.test");
	snprintf(cfg->notify.sender, sizeof(cfg->notify.sender),
	    "dlp@example.com");
}

static void
teardown(void)
{
	config_unref(cfg);
}

struct built {
	struct buf	 msg;
	size_t		 hlen;		/* header, up to and with the empty line */
	const char	*body;
	size_t		 blen;
};

static void
build(struct built *b, const char *const *to, size_t nto, const char *subject,
    const char *body)
{
	struct notify_request rq;
	const char *sep;
	size_t i;

	memset(&rq, 0, sizeof(rq));
	rq.to = to;
	rq.nto = nto;
	rq.subject = subject;
	rq.body = body;
	rq.queue_id = "abc123.1";
	buf_init(&b->msg);
	ck_assert_int_eq(notify_build(&b->msg, cfg, &rq,
	    "abc123.1.n1@mailprevent.test"), 0);
	buf_cstr(&b->msg);
	/* CRLF only: every CR is followed by LF, every LF preceded by CR. */
	for (i = 0; i < b->msg.len; i++) {
		if (b->msg.data[i] == '\r')
			ck_assert_msg(i + 1 < b->msg.len &&
			    b->msg.data[i + 1] == '\n', "bare CR at %zu", i);
		if (b->msg.data[i] == '\n')
			ck_assert_msg(i > 0 && b->msg.data[i - 1] == '\r',
			    "bare LF at %zu", i);
		ck_assert_msg(b->msg.data[i] != '\0', "NUL at %zu", i);
	}
	ck_assert_msg(b->msg.len >= 2 && memcmp(b->msg.data + b->msg.len - 2,
	    "\r\n", 2) == 0, "does not end in CRLF");
	sep = strstr(b->msg.data, "\r\n\r\n");
	ck_assert_msg(sep != NULL, "no empty line after the header");
	b->hlen = (size_t)(sep - b->msg.data) + 4;
	b->body = sep + 4;
	b->blen = b->msg.len - b->hlen;
}

/* How many header fields are called name. */
static size_t
field_count(const struct built *b, const char *name)
{
	size_t n = 0, nl = strlen(name);
	const char *p = b->msg.data, *end = b->msg.data + b->hlen;

	while (p < end) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			n++;
		p = strstr(p, "\r\n") + 2;
	}
	return n;
}

/* The field's value, unfolded (CRLF removed) and trimmed. */
static char *
field(const struct built *b, const char *name)
{
	static char v[4096];
	size_t nl = strlen(name), o = 0;
	const char *p = b->msg.data, *end = b->msg.data + b->hlen;

	v[0] = '\0';
	while (p < end) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			for (;;) {
				const char *eol = strstr(p, "\r\n");

				while (p < eol && o + 1 < sizeof(v))
					v[o++] = *p++;
				p = eol + 2;
				if (*p != ' ' && *p != '\t')
					break;
			}
			while (o > 0 && v[o - 1] == ' ')
				o--;
			v[o] = '\0';
			return v;
		}
		p = strstr(p, "\r\n") + 2;
	}
	ck_abort_msg("no %s field in:\n%s", name, b->msg.data);
	return NULL;
}

START_TEST(build_headers)
{
	static const char *const to[] = {
		"security@example.com", "alice@example.org"
	};
	static const char *const once[] = {
		"Date", "From", "To", "Subject", "Message-ID", "Auto-Submitted",
		"MIME-Version", "Content-Type", NULL
	};
	struct built b;
	struct tm tm;
	const char *v, *rest;
	time_t when, now = time(NULL);
	size_t i;

	build(&b, to, 2, "Policy violation: Payment card numbers",
	    "Body.\n");
	for (i = 0; once[i] != NULL; i++)
		ck_assert_msg(field_count(&b, once[i]) == 1, "%zu %s fields in:\n"
		    "%s", field_count(&b, once[i]), once[i], b.msg.data);
	/* Date: RFC 5322 3.3, and now. */
	v = field(&b, "Date");
	memset(&tm, 0, sizeof(tm));
	rest = strptime(v, "%a, %d %b %Y %H:%M:%S", &tm);
	ck_assert_msg(rest != NULL, "Date \"%s\"", v);
	ck_assert_msg(strcmp(rest, " +0000") == 0 || strcmp(rest, " -0000") == 0
	    || (strlen(rest) == 6 && rest[0] == ' ' && (rest[1] == '+' ||
	    rest[1] == '-')), "Date zone \"%s\"", rest);
	if (strcmp(rest, " +0000") == 0) {
		when = timegm(&tm);
		ck_assert_msg(when >= now - 5 && when <= now + 5,
		    "Date \"%s\" is not now", v);
	}
	ck_assert_str_eq(field(&b, "From"), "<dlp@example.com>");
	v = field(&b, "To");
	ck_assert_msg(strstr(v, "<security@example.com>") != NULL &&
	    strstr(v, "<alice@example.org>") != NULL, "To: %s", v);
	ck_assert_str_eq(field(&b, "Subject"),
	    "Policy violation: Payment card numbers");
	ck_assert_str_eq(field(&b, "Message-ID"),
	    "<abc123.1.n1@mailprevent.test>");
	ck_assert_str_eq(field(&b, "Auto-Submitted"), "auto-generated");
	ck_assert_str_eq(field(&b, "MIME-Version"), "1.0");
	v = field(&b, "Content-Type");
	ck_assert_msg(strncasecmp(v, "text/plain", 10) == 0 &&
	    strcasestr(v, "charset=utf-8") != NULL, "Content-Type: %s", v);
	buf_free(&b.msg);
}
END_TEST

/* Without notify.sender: mailprevent@ + helo_name. */
START_TEST(build_default_sender)
{
	static const char *const to[] = { "x@example.com" };
	struct built b;

	cfg->notify.sender[0] = '\0';
	build(&b, to, 1, "s", "b");
	ck_assert_str_eq(field(&b, "From"), "<mailprevent@mailprevent.test>");
	buf_free(&b.msg);
}
END_TEST

/* LF, CRLF, lone CR all become CRLF; a final line break is added. */
START_TEST(build_body_line_endings)
{
	static const char *const to[] = { "x@example.com" };
	static const struct {
		const char	*in, *want;
	} cases[] = {
		{ "one\ntwo\r\nthree\rfour\n", "one\r\ntwo\r\nthree\r\nfour\r\n" },
		{ "no final break", "no final break\r\n" },
		{ "a\r\r\nb\n\nc", "a\r\n\r\nb\r\n\r\nc\r\n" },
		{ "\n", "\r\n" },
		/* Not stuffed here: the sender stuffs what goes on the wire. */
		{ ".\n..\n.x\n", ".\r\n..\r\n.x\r\n" },
		{ "Gr\xc3\xbc\xc3\x9f" "e\n", "Gr\xc3\xbc\xc3\x9f" "e\r\n" },
	};
	struct built b;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build(&b, to, 1, "s", cases[i].in);
		ck_assert_msg(b.blen == strlen(cases[i].want) &&
		    memcmp(b.body, cases[i].want, b.blen) == 0,
		    "case %zu: body \"%s\"", i, b.body);
		buf_free(&b.msg);
	}
}
END_TEST

/* A subject can never add a header line; 8-bit text is RFC 2047. */
START_TEST(build_subject_safe)
{
	static const char *const to[] = { "x@example.com" };
	struct built b;
	struct buf dec = BUF_INIT;
	const char *v;

	build(&b, to, 1, "hi\r\nBcc: evil@example.net\nX-Evil: 1", "b\n");
	ck_assert_uint_eq(field_count(&b, "Bcc"), 0);
	ck_assert_uint_eq(field_count(&b, "X-Evil"), 0);
	ck_assert_uint_eq(field_count(&b, "Subject"), 1);
	buf_free(&b.msg);

	build(&b, to, 1, "Versto\xc3\x9f gegen Richtlinie", "b\n");
	v = field(&b, "Subject");
	for (const char *p = b.msg.data; p < b.msg.data + b.hlen; p++)
		ck_assert_msg((unsigned char)*p < 0x80, "8-bit byte in the "
		    "header: %s", v);
	ck_assert_int_eq(mime_decode_header(&dec, v, strlen(v)), 0);
	ck_assert_str_eq(buf_cstr(&dec), "Versto\xc3\x9f gegen Richtlinie");
	buf_free(&dec);
	buf_free(&b.msg);
}
END_TEST

/* Many recipients: every one in To. */
START_TEST(build_many_recipients)
{
	const char *to[100];
	char addrs[100][32];
	struct built b;
	const char *v;
	size_t i;

	for (i = 0; i < 100; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "user%zu@example.com", i);
		to[i] = addrs[i];
	}
	build(&b, to, 100, "s", "b\n");
	v = field(&b, "To");
	for (i = 0; i < 100; i++)
		ck_assert_msg(strstr(v, addrs[i]) != NULL, "%s not in To",
		    addrs[i]);
	buf_free(&b.msg);
}
END_TEST

/*
 * RFC 5322 2.1.1 (and 8bit transfer encoding, RFC 2045 2.8): lines of at
 * most 998 octets. A body line grows past that easily once {recipients}
 * is expanded for a message with many recipients.
 */
START_TEST(build_long_body_line)
{
	static const char *const to[] = { "x@example.com" };
	struct buf body = BUF_INIT;
	struct built b;
	size_t i, start;

	buf_appends(&body, "Your message to ");
	for (i = 0; i < 60; i++)
		buf_appendf(&body, "%srecipient%02zu@example.com", i ? ", " : "",
		    i);
	buf_appends(&body, " matched.\n");
	buf_cstr(&body);
	build(&b, to, 1, "s", body.data);
	for (start = 0, i = 0; i + 1 < b.msg.len; i++)
		if (b.msg.data[i] == '\r') {
			ck_assert_msg(i - start <= 998, "a line of %zu octets",
			    i - start);
			start = i + 2;
		}
	buf_free(&body);
	buf_free(&b.msg);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("build");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, build_headers);
	tcase_add_test(tc, build_default_sender);
	tcase_add_test(tc, build_body_line_endings);
	tcase_add_test(tc, build_subject_safe);
	tcase_add_test(tc, build_many_recipients);
	tcase_add_test(tc, build_long_body_line);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
