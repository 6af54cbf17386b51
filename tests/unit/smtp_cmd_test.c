/* smtp_cmd_test: common/smtp_cmd.c, table-driven. */
#include <check.h>
#include <string.h>

#include "smtp_cmd.h"

struct cmd_case {
	const char	*line;
	size_t		 len;		/* 0: strlen(line) */
	int		 ret;
	enum smtp_verb	 verb;
	const char	*arg;		/* expected argument, exact */
};

static const struct cmd_case cases[] = {
	{ "HELO client.example", 0, 0, SMTP_CMD_HELO, "client.example" },
	{ "ehlo client.example", 0, 0, SMTP_CMD_EHLO, "client.example" },
	{ "EhLo   client.example   ", 0, 0, SMTP_CMD_EHLO, "client.example" },
	{ "EHLO", 0, 0, SMTP_CMD_EHLO, "" },
	{ "EHLO ", 0, 0, SMTP_CMD_EHLO, "" },
	{ "DATA", 0, 0, SMTP_CMD_DATA, "" },
	{ "data", 0, 0, SMTP_CMD_DATA, "" },
	{ "DATA x", 0, 0, SMTP_CMD_DATA, "x" },
	{ "RSET", 0, 0, SMTP_CMD_RSET, "" },
	{ "NOOP anything at all", 0, 0, SMTP_CMD_NOOP, "anything at all" },
	{ "QUIT", 0, 0, SMTP_CMD_QUIT, "" },
	{ "VRFY <a@b.example>", 0, 0, SMTP_CMD_VRFY, "<a@b.example>" },
	{ "HELP", 0, 0, SMTP_CMD_HELP, "" },
	{ "STARTTLS", 0, 0, SMTP_CMD_STARTTLS, "" },
	{ "starttls", 0, 0, SMTP_CMD_STARTTLS, "" },
	{ "EXPN list", 0, 0, SMTP_CMD_EXPN, "list" },
	{ "BDAT 100 LAST", 0, 0, SMTP_CMD_BDAT, "100 LAST" },
	{ "AUTH PLAIN", 0, 0, SMTP_CMD_AUTH, "PLAIN" },
	{ "XCLIENT ADDR=127.0.0.1", 0, 0, SMTP_CMD_XCLIENT, "ADDR=127.0.0.1" },
	{ "XFORWARD NAME=x", 0, 0, SMTP_CMD_XFORWARD, "NAME=x" },
	{ "ETRN example.com", 0, 0, SMTP_CMD_ETRN, "example.com" },

	{ "MAIL FROM:<a@b.example>", 0, 0, SMTP_CMD_MAIL, "<a@b.example>" },
	{ "mail from:<>", 0, 0, SMTP_CMD_MAIL, "<>" },
	{ "Mail From:<a@b.example> SIZE=10", 0, 0, SMTP_CMD_MAIL,
	    "<a@b.example> SIZE=10" },
	{ "MAIL FROM: <a@b.example>", 0, 0, SMTP_CMD_MAIL, "<a@b.example>" },
	{ "MAIL FROM:<a@b.example>   ", 0, 0, SMTP_CMD_MAIL, "<a@b.example>" },
	{ "MAIL FROM:", 0, 0, SMTP_CMD_MAIL, "" },
	{ "RCPT TO:<c@d.example>", 0, 0, SMTP_CMD_RCPT, "<c@d.example>" },
	{ "rcpt to: <postmaster>", 0, 0, SMTP_CMD_RCPT, "<postmaster>" },

	/* verb known, keyword wrong: -1 with the verb set */
	{ "MAIL", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL ", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL FROM", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL TO:<a@b.example>", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL  FROM:<a@b.example>", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL FROM:  <a@b.example>", 0, -1, SMTP_CMD_MAIL, "" },
	{ "MAIL FROM <a@b.example>", 0, -1, SMTP_CMD_MAIL, "" },
	{ "RCPT FROM:<a@b.example>", 0, -1, SMTP_CMD_RCPT, "" },
	{ "RCPT", 0, -1, SMTP_CMD_RCPT, "" },
	{ "RCPT TO", 0, -1, SMTP_CMD_RCPT, "" },

	/* unknown verbs */
	{ "", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ " HELO x", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "HELOX x", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "HEL", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "MAILFROM:<a@b.example>", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "DATA\tx", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "STARTTLSX", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "GET / HTTP/1.1", 0, 0, SMTP_CMD_UNKNOWN, "" },
	{ "QUIT\0", 5, 0, SMTP_CMD_UNKNOWN, "" },
	{ "QU\0T", 4, 0, SMTP_CMD_UNKNOWN, "" },
	{ "\xc4\xb0HLO", 0, 0, SMTP_CMD_UNKNOWN, "" },
};

START_TEST(cmd_table)
{
	const struct cmd_case *c = &cases[_i];
	struct smtp_cmd cmd;
	size_t len = c->len ? c->len : strlen(c->line);
	int r;

	memset(&cmd, 0xa5, sizeof(cmd));
	r = smtp_cmd_parse(c->line, len, &cmd);
	ck_assert_msg(r == c->ret, "\"%s\": ret %d, want %d", c->line, r,
	    c->ret);
	ck_assert_msg(cmd.verb == c->verb, "\"%s\": verb %d, want %d",
	    c->line, cmd.verb, c->verb);
	if (r == 0 && c->verb != SMTP_CMD_UNKNOWN) {
		ck_assert_msg(cmd.arglen == strlen(c->arg) &&
		    memcmp(cmd.arg, c->arg, cmd.arglen) == 0,
		    "\"%s\": arg \"%.*s\", want \"%s\"", c->line,
		    (int)cmd.arglen, cmd.arg, c->arg);
		/* arg points into the line */
		ck_assert(cmd.arg >= c->line && cmd.arg + cmd.arglen <=
		    c->line + len);
	}
}
END_TEST

/* A line that is not NUL-terminated: only len bytes are looked at. */
START_TEST(cmd_not_terminated)
{
	char line[] = { 'D', 'A', 'T', 'A', 'X' };
	struct smtp_cmd cmd;

	ck_assert_int_eq(smtp_cmd_parse(line, 4, &cmd), 0);
	ck_assert_int_eq(cmd.verb, SMTP_CMD_DATA);
	ck_assert_uint_eq(cmd.arglen, 0);
	ck_assert_int_eq(smtp_cmd_parse(line, 5, &cmd), 0);
	ck_assert_int_eq(cmd.verb, SMTP_CMD_UNKNOWN);
}
END_TEST

START_TEST(cmd_names)
{
	static const struct {
		enum smtp_verb	 v;
		const char	*name;
	} names[] = {
		{ SMTP_CMD_HELO, "HELO" }, { SMTP_CMD_EHLO, "EHLO" },
		{ SMTP_CMD_MAIL, "MAIL" }, { SMTP_CMD_RCPT, "RCPT" },
		{ SMTP_CMD_DATA, "DATA" }, { SMTP_CMD_RSET, "RSET" },
		{ SMTP_CMD_NOOP, "NOOP" }, { SMTP_CMD_QUIT, "QUIT" },
		{ SMTP_CMD_VRFY, "VRFY" }, { SMTP_CMD_HELP, "HELP" },
		{ SMTP_CMD_STARTTLS, "STARTTLS" }, { SMTP_CMD_EXPN, "EXPN" },
		{ SMTP_CMD_BDAT, "BDAT" }, { SMTP_CMD_AUTH, "AUTH" },
		{ SMTP_CMD_XCLIENT, "XCLIENT" },
		{ SMTP_CMD_XFORWARD, "XFORWARD" }, { SMTP_CMD_ETRN, "ETRN" },
	};
	struct smtp_cmd cmd;
	size_t i;
	int v;

	ck_assert_uint_eq(sizeof(names) / sizeof(names[0]),
	    SMTP_CMD__COUNT - 1);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_str_eq(smtp_cmd_name(names[i].v), names[i].name);
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD__COUNT), "UNKNOWN");

	/* every known verb parses back from its own name */
	for (v = 1; v < SMTP_CMD__COUNT; v++) {
		const char *n = smtp_cmd_name((enum smtp_verb)v);

		if (v == SMTP_CMD_MAIL || v == SMTP_CMD_RCPT)
			continue;
		ck_assert_int_eq(smtp_cmd_parse(n, strlen(n), &cmd), 0);
		ck_assert_int_eq(cmd.verb, v);
	}
}
END_TEST

static Suite *
cmd_suite(void)
{
	Suite *s = suite_create("smtp_cmd");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, cmd_table, 0,
	    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, cmd_not_terminated);
	tcase_add_test(tc, cmd_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cmd_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
