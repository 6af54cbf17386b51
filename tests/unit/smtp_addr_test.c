/*
 * smtp_addr_test: common/smtp_addr.c. Paths and parameters are table
 * driven: each case gives the expected reply code and text on error, or
 * the stored address on success. Formatting is checked for exact output,
 * for every too-small destination size, and for refusing to emit a value
 * that could break the command line.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_addr.h"

#define MAIL	0
#define RCPT	1

#define E_SENDER	"5.1.7 Bad sender address syntax"
#define E_SENDER_LONG	"5.1.7 Sender address too long"
#define E_RCPT		"5.1.3 Bad recipient address syntax"
#define E_RCPT_LONG	"5.1.3 Recipient address too long"
#define E_SYNTAX	"5.5.4 Syntax error in parameters"
#define E_DUP		"5.5.4 Duplicate parameter"
#define E_UNKNOWN	"5.5.4 Unsupported parameter"

struct addr_case {
	int		 kind;
	const char	*arg;
	int		 code;		/* 0: must parse */
	const char	*err;		/* expected text on error */
	const char	*addr;		/* expected address on success */
};

static const struct addr_case cases[] = {
	/* paths that pass */
	{ MAIL, "<>", 0, NULL, "" },
	{ MAIL, "<a@b.example>", 0, NULL, "a@b.example" },
	{ MAIL, "<a@b.example>   ", 0, NULL, "a@b.example" },
	{ MAIL, "<First.Last+tag@sub.b-c.example>", 0, NULL,
	    "First.Last+tag@sub.b-c.example" },
	{ MAIL, "<!#$%&'*+-/=?^_`{|}~@b.example>", 0, NULL,
	    "!#$%&'*+-/=?^_`{|}~@b.example" },
	{ MAIL, "<\"quoted local\"@b.example>", 0, NULL,
	    "\"quoted local\"@b.example" },
	{ MAIL, "<\"a\\\"b\"@b.example>", 0, NULL, "\"a\\\"b\"@b.example" },
	{ MAIL, "<\"a>b\"@b.example>", 0, NULL, "\"a>b\"@b.example" },
	{ MAIL, "<\"\"@b.example>", 0, NULL, "\"\"@b.example" },
	{ MAIL, "<@r1.example,@r2.example:a@b.example>", 0, NULL,
	    "a@b.example" },
	{ MAIL, "<@[IPv6:::1]:a@b.example>", 0, NULL, "a@b.example" },
	{ MAIL, "<a@[127.0.0.1]>", 0, NULL, "a@[127.0.0.1]" },
	{ MAIL, "<a@[IPv6:::1]>", 0, NULL, "a@[IPv6:::1]" },
	{ MAIL, "<a@[ipv6:::1]>", 0, NULL, "a@[ipv6:::1]" },
	{ MAIL, "<a@localhost>", 0, NULL, "a@localhost" },
	{ MAIL, "<a@9.example>", 0, NULL, "a@9.example" },
	{ RCPT, "<c@d.example>", 0, NULL, "c@d.example" },
	{ RCPT, "<postmaster>", 0, NULL, "postmaster" },
	{ RCPT, "<PostMaster>", 0, NULL, "PostMaster" },
	{ RCPT, "<postmaster@d.example>", 0, NULL, "postmaster@d.example" },

	/* paths that do not */
	{ MAIL, "", 501, E_SENDER, NULL },
	{ MAIL, "a@b.example", 501, E_SENDER, NULL },
	{ MAIL, " <a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b.example", 501, E_SENDER, NULL },
	{ MAIL, "<a@b.example>x", 501, E_SENDER, NULL },
	{ MAIL, "<a@b.example>>", 501, E_SENDER, NULL },
	{ MAIL, "<<a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a b@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b.example.>", 501, E_SENDER, NULL },
	{ MAIL, "<.a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a.@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a..b@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@-b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b-.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b..example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@.b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b_c.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b@c.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@>", 501, E_SENDER, NULL },
	{ MAIL, "<@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a>", 501, E_SENDER, NULL },
	{ MAIL, "<postmaster>", 501, E_SENDER, NULL },
	{ MAIL, "<a@[1.2.3]>", 501, E_SENDER, NULL },
	{ MAIL, "<a@[1.2.3.4>", 501, E_SENDER, NULL },
	{ MAIL, "<a@[IPv6:zz]>", 501, E_SENDER, NULL },
	{ MAIL, "<a@[IPv6:1.2.3.4]>", 501, E_SENDER, NULL },
	{ MAIL, "<a@[tag:stuff]>", 501, E_SENDER, NULL },
	{ MAIL, "<\"open@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<\"a\x01\"@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<\"a\\\x01\"@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a\x01@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a\r\n@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<a@b.example\x7f>", 501, E_SENDER, NULL },
	{ MAIL, "<\xc3\xa9@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<@r1.example:>", 501, E_SENDER, NULL },
	{ MAIL, "<@r1.example a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<@r1.example,r2.example:a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<@:a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<@[127.0.0.1]x@r.example:a@b.example>", 501, E_SENDER, NULL },
	{ MAIL, "<@[127.0.0.1]:a@b.example>", 0, NULL, "a@b.example" },
	{ MAIL, "<@[127.0.0.1],@r.example:a@b.example>", 0, NULL,
	    "a@b.example" },
	{ RCPT, "<>", 501, E_RCPT, NULL },
	{ RCPT, "<c>", 501, E_RCPT, NULL },
	{ RCPT, "<\"postmaster\">", 501, E_RCPT, NULL },
	{ RCPT, "<postmaster.x>", 501, E_RCPT, NULL },
	{ RCPT, "c@d.example", 501, E_RCPT, NULL },

	/* MAIL parameters */
	{ MAIL, "<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x+2By",
	    0, NULL, "a@b.example" },
	{ MAIL, "<a@b.example>  size=1   body=7bit ret=full ", 0, NULL,
	    "a@b.example" },
	{ MAIL, "<> SIZE=18446744073709551615", 0, NULL, "" },
	{ MAIL, "<a@b.example> SIZE", 501, "5.5.4 Invalid SIZE parameter", NULL },
	{ MAIL, "<a@b.example> SIZE=", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> SIZE=abc", 501, "5.5.4 Invalid SIZE parameter",
	    NULL },
	{ MAIL, "<a@b.example> SIZE=-1", 501, "5.5.4 Invalid SIZE parameter",
	    NULL },
	{ MAIL, "<a@b.example> SIZE=18446744073709551616", 501,
	    "5.5.4 Invalid SIZE parameter", NULL },
	{ MAIL, "<a@b.example> SIZE=000000000000000000001", 501,
	    "5.5.4 Invalid SIZE parameter", NULL },
	{ MAIL, "<a@b.example> SIZE=1 SIZE=2", 501, E_DUP, NULL },
	{ MAIL, "<a@b.example> size=1 SIZE=1", 501, E_DUP, NULL },
	{ MAIL, "<a@b.example> BODY=BINARYMIME", 501,
	    "5.5.4 Invalid BODY parameter", NULL },
	{ MAIL, "<a@b.example> BODY=7BIT BODY=8BITMIME", 501, E_DUP, NULL },
	{ MAIL, "<a@b.example> RET=NONE", 501, "5.5.4 Invalid RET parameter",
	    NULL },
	{ MAIL, "<a@b.example> RET=FULL RET=FULL", 501, E_DUP, NULL },
	{ MAIL, "<a@b.example> ENVID=a=b", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> ENVID=a+2b", 501,
	    "5.5.4 Invalid ENVID parameter", NULL },
	{ MAIL, "<a@b.example> ENVID=a+2", 501,
	    "5.5.4 Invalid ENVID parameter", NULL },
	{ MAIL, "<a@b.example> ENVID=a+", 501,
	    "5.5.4 Invalid ENVID parameter", NULL },
	{ MAIL, "<a@b.example> ENVID=a+GG", 501,
	    "5.5.4 Invalid ENVID parameter", NULL },
	{ MAIL, "<a@b.example> ENVID=a ENVID=b", 501, E_DUP, NULL },
	{ MAIL, "<a@b.example> SIZE=1\x01", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> SIZE=1\xff", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> -X=1", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> =1", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> X_Y=1", 501, E_SYNTAX, NULL },
	{ MAIL, "<a@b.example> AUTH=<>", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> SMTPUTF8", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> X-FOO=bar", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> NOTIFY=NEVER", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> ORCPT=rfc822;x", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> SIZ=1", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> SIZEE=1", 555, E_UNKNOWN, NULL },
	/* the first error wins */
	{ MAIL, "<a@b.example> FOO=1 SIZE=x", 555, E_UNKNOWN, NULL },
	{ MAIL, "<a@b.example> SIZE=x FOO=1", 501,
	    "5.5.4 Invalid SIZE parameter", NULL },
	{ MAIL, "<a@b c.example> FOO=1", 501, E_SENDER, NULL },

	/* RCPT parameters */
	{ RCPT, "<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d",
	    0, NULL, "c@d.example" },
	{ RCPT, "<c@d.example> notify=never", 0, NULL, "c@d.example" },
	{ RCPT, "<c@d.example> ORCPT=rfc822;", 0, NULL, "c@d.example" },
	{ RCPT, "<c@d.example> ORCPT=utf-8;x", 0, NULL, "c@d.example" },
	{ RCPT, "<c@d.example> NOTIFY=NEVER,SUCCESS", 501,
	    "5.5.4 Invalid NOTIFY parameter", NULL },
	{ RCPT, "<c@d.example> NOTIFY=SUCCESS,", 501,
	    "5.5.4 Invalid NOTIFY parameter", NULL },
	{ RCPT, "<c@d.example> NOTIFY=,SUCCESS", 501,
	    "5.5.4 Invalid NOTIFY parameter", NULL },
	{ RCPT, "<c@d.example> NOTIFY=SOMETIMES", 501,
	    "5.5.4 Invalid NOTIFY parameter", NULL },
	{ RCPT, "<c@d.example> NOTIFY", 501,
	    "5.5.4 Invalid NOTIFY parameter", NULL },
	{ RCPT, "<c@d.example> NOTIFY=", 501, E_SYNTAX, NULL },
	{ RCPT, "<c@d.example> NOTIFY=DELAY NOTIFY=DELAY", 501, E_DUP, NULL },
	{ RCPT, "<c@d.example> ORCPT=rfc822", 501,
	    "5.5.4 Invalid ORCPT parameter", NULL },
	{ RCPT, "<c@d.example> ORCPT=;c@d", 501,
	    "5.5.4 Invalid ORCPT parameter", NULL },
	{ RCPT, "<c@d.example> ORCPT=rfc_822;c@d", 501,
	    "5.5.4 Invalid ORCPT parameter", NULL },
	{ RCPT, "<c@d.example> ORCPT=rfc822;c+4", 501,
	    "5.5.4 Invalid ORCPT parameter", NULL },
	{ RCPT, "<c@d.example> ORCPT=rfc822;a ORCPT=rfc822;b", 501, E_DUP,
	    NULL },
	{ RCPT, "<c@d.example> SIZE=1", 555, E_UNKNOWN, NULL },
	{ RCPT, "<c@d.example> ENVID=x", 555, E_UNKNOWN, NULL },
};

START_TEST(addr_table)
{
	const struct addr_case *c = &cases[_i];
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *err = NULL, *addr;
	int code = 0, ret;

	if (c->kind == MAIL) {
		ret = smtp_parse_mail(c->arg, strlen(c->arg), &m, &code, &err);
		addr = m.addr;
	} else {
		ret = smtp_parse_rcpt(c->arg, strlen(c->arg), &r, &code, &err);
		addr = r.addr;
	}
	if (c->code == 0) {
		ck_assert_msg(ret == 0, "\"%s\": refused %d %s", c->arg, code,
		    err ? err : "(null)");
		ck_assert_str_eq(addr, c->addr);
	} else {
		ck_assert_msg(ret == -1, "\"%s\": accepted", c->arg);
		ck_assert_msg(code == c->code && err != NULL &&
		    strcmp(err, c->err) == 0, "\"%s\": %d %s, want %d %s",
		    c->arg, code, err ? err : "(null)", c->code, c->err);
	}
}
END_TEST

/* Fill args through the parser, so the formatter sees real input. */
static void
mail_args(const char *arg, struct smtp_mail_args *m)
{
	const char *err;
	int code;

	ck_assert_int_eq(smtp_parse_mail(arg, strlen(arg), m, &code, &err), 0);
}

static void
rcpt_args(const char *arg, struct smtp_rcpt_args *r)
{
	const char *err;
	int code;

	ck_assert_int_eq(smtp_parse_rcpt(arg, strlen(arg), r, &code, &err), 0);
}

START_TEST(addr_mail_values)
{
	static const char arg[] =
	    "<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=x+2By";
	struct smtp_mail_args m;
	const char *err;
	int code;

	ck_assert_int_eq(smtp_parse_mail(arg, strlen(arg), &m, &code, &err), 0);
	ck_assert_int_eq(m.has_size, 1);
	ck_assert_uint_eq(m.size, 1000);
	ck_assert_int_eq(m.body, SMTP_BODY_8BITMIME);
	ck_assert_int_eq(m.ret, SMTP_RET_HDRS);
	ck_assert_str_eq(m.envid, "x+2By");

	ck_assert_int_eq(smtp_parse_mail("<>", 2, &m, &code, &err), 0);
	ck_assert_int_eq(m.has_size, 0);
	ck_assert_int_eq(m.body, SMTP_BODY_NONE);
	ck_assert_int_eq(m.ret, SMTP_RET_NONE);
	ck_assert_str_eq(m.envid, "");

	mail_args("<> SIZE=18446744073709551615 BODY=7bit RET=full", &m);
	ck_assert_uint_eq(m.size, UINT64_MAX);
	ck_assert_int_eq(m.body, SMTP_BODY_7BIT);
	ck_assert_int_eq(m.ret, SMTP_RET_FULL);
}
END_TEST

START_TEST(addr_rcpt_values)
{
	static const char arg[] =
	    "<c@d.example> NOTIFY=delay,Success ORCPT=rfc822;c+40d.example";
	struct smtp_rcpt_args r;
	const char *err;
	int code;

	ck_assert_int_eq(smtp_parse_rcpt(arg, strlen(arg), &r, &code, &err), 0);
	ck_assert_uint_eq(r.notify, SMTP_NOTIFY_DELAY | SMTP_NOTIFY_SUCCESS);
	ck_assert_str_eq(r.orcpt, "rfc822;c+40d.example");
	ck_assert_int_eq(smtp_parse_rcpt("<c@d.example> NOTIFY=NEVER", 26, &r,
	    &code, &err), 0);
	ck_assert_uint_eq(r.notify, SMTP_NOTIFY_NEVER);
	ck_assert_str_eq(r.orcpt, "");
}
END_TEST

/* "<" + local + "@" + domain + ">" of exactly total octets. */
static char *
mkpath(size_t total, const char *params)
{
	size_t pl = strlen(params), dl, i;
	char *s = malloc(total + pl + 1);

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_ge(total, 10);
	/* local part "a", then domain labels of 'b' separated by dots */
	s[0] = '<';
	s[1] = 'a';
	s[2] = '@';
	dl = total - 4;
	for (i = 0; i < dl; i++)
		s[3 + i] = (i % 60 == 59) ? '.' : 'b';
	if (s[3 + dl - 1] == '.')
		s[3 + dl - 1] = 'c';
	s[total - 1] = '>';
	memcpy(s + total, params, pl + 1);
	return s;
}

START_TEST(addr_lengths)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *err;
	char *s, big[400], label[65];
	int code;

	memset(label, 'b', 64);
	label[64] = '\0';

	s = mkpath(SMTP_PATH_MAX, " SIZE=1");
	ck_assert_int_eq(smtp_parse_mail(s, strlen(s), &m, &code, &err), 0);
	ck_assert_uint_eq(strlen(m.addr), SMTP_ADDR_MAX);
	ck_assert_int_eq(smtp_parse_rcpt(s, strlen(s) - 7, &r, &code, &err), 0);
	free(s);

	s = mkpath(SMTP_PATH_MAX + 1, "");
	ck_assert_int_eq(smtp_parse_mail(s, strlen(s), &m, &code, &err), -1);
	ck_assert_int_eq(code, 501);
	ck_assert_str_eq(err, E_SENDER_LONG);
	ck_assert_int_eq(smtp_parse_rcpt(s, strlen(s), &r, &code, &err), -1);
	ck_assert_str_eq(err, E_RCPT_LONG);
	free(s);

	/* no '>' at all, and longer than any path: too long, not garbage */
	memset(big, 'a', sizeof(big));
	big[0] = '<';
	ck_assert_int_eq(smtp_parse_mail(big, sizeof(big), &m, &code, &err),
	    -1);
	ck_assert_str_eq(err, E_SENDER_LONG);

	/* labels: 63 octets pass, 64 do not */
	snprintf(big, sizeof(big), "<a@%.63s.example>", label);
	ck_assert_int_eq(smtp_parse_mail(big, strlen(big), &m, &code, &err), 0);
	snprintf(big, sizeof(big), "<a@%.64s.example>", label);
	ck_assert_int_eq(smtp_parse_mail(big, strlen(big), &m, &code, &err),
	    -1);
	ck_assert_str_eq(err, E_SENDER);
}
END_TEST

START_TEST(addr_xtext_lengths)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *err;
	char arg[700], x600[601];
	int code, n;

	memset(x600, 'x', 600);
	x600[600] = '\0';

	n = snprintf(arg, sizeof(arg), "<> ENVID=%.100s", x600);
	ck_assert_int_eq(smtp_parse_mail(arg, (size_t)n, &m, &code, &err), 0);
	ck_assert_uint_eq(strlen(m.envid), SMTP_ENVID_MAX);
	n = snprintf(arg, sizeof(arg), "<> ENVID=%.101s", x600);
	ck_assert_int_eq(smtp_parse_mail(arg, (size_t)n, &m, &code, &err), -1);
	ck_assert_str_eq(err, "5.5.4 Invalid ENVID parameter");

	/* ORCPT: 500 octets in all, "rfc822;" included */
	n = snprintf(arg, sizeof(arg), "<c@d.example> ORCPT=rfc822;%.493s",
	    x600);
	ck_assert_int_eq(smtp_parse_rcpt(arg, (size_t)n, &r, &code, &err), 0);
	ck_assert_uint_eq(strlen(r.orcpt), SMTP_XTEXT_MAX);
	n = snprintf(arg, sizeof(arg), "<c@d.example> ORCPT=rfc822;%.494s",
	    x600);
	ck_assert_int_eq(smtp_parse_rcpt(arg, (size_t)n, &r, &code, &err), -1);
	ck_assert_str_eq(err, "5.5.4 Invalid ORCPT parameter");
}
END_TEST

#define EXT_ALL	(SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | SMTP_EXT_DSN | \
		 SMTP_EXT_PIPELINING | SMTP_EXT_ENHANCED | SMTP_EXT_STARTTLS)

static void
fmt_mail_is(const char *arg, unsigned ext, uint64_t ov, const char *want)
{
	struct smtp_mail_args m;
	char dst[1024];
	int n;

	mail_args(arg, &m);
	n = smtp_format_mail(dst, sizeof(dst), &m, ext, ov);
	ck_assert_int_eq(n, (int)strlen(want));
	ck_assert_str_eq(dst, want);
}

static void
fmt_rcpt_is(const char *arg, unsigned ext, const char *want)
{
	struct smtp_rcpt_args r;
	char dst[1024];
	int n;

	rcpt_args(arg, &r);
	n = smtp_format_rcpt(dst, sizeof(dst), &r, ext);
	ck_assert_int_eq(n, (int)strlen(want));
	ck_assert_str_eq(dst, want);
}

START_TEST(addr_format)
{
	static const char full[] =
	    "<a@b.example> size=1000 body=8bitmime ret=hdrs ENVID=x+2By";

	fmt_mail_is(full, EXT_ALL, 0, "MAIL FROM:<a@b.example> SIZE=1000 "
	    "BODY=8BITMIME RET=HDRS ENVID=x+2By\r\n");
	fmt_mail_is(full, 0, 0, "MAIL FROM:<a@b.example>\r\n");
	fmt_mail_is(full, SMTP_EXT_SIZE, 0, "MAIL FROM:<a@b.example> "
	    "SIZE=1000\r\n");
	fmt_mail_is(full, SMTP_EXT_SIZE, 5000, "MAIL FROM:<a@b.example> "
	    "SIZE=5000\r\n");
	fmt_mail_is(full, SMTP_EXT_8BITMIME, 0, "MAIL FROM:<a@b.example> "
	    "BODY=8BITMIME\r\n");
	fmt_mail_is(full, SMTP_EXT_DSN, 0, "MAIL FROM:<a@b.example> "
	    "RET=HDRS ENVID=x+2By\r\n");
	fmt_mail_is("<>", EXT_ALL, 0, "MAIL FROM:<>\r\n");
	fmt_mail_is("<>", EXT_ALL, 42, "MAIL FROM:<> SIZE=42\r\n");
	fmt_mail_is("<> BODY=7BIT RET=FULL", EXT_ALL, 0,
	    "MAIL FROM:<> BODY=7BIT RET=FULL\r\n");
	fmt_mail_is("<@r.example:\"q x\"@[127.0.0.1]>", EXT_ALL, 0,
	    "MAIL FROM:<\"q x\"@[127.0.0.1]>\r\n");

	fmt_rcpt_is("<c@d.example> NOTIFY=delay,failure,success "
	    "ORCPT=rfc822;c+40d", EXT_ALL, "RCPT TO:<c@d.example> "
	    "NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;c+40d\r\n");
	fmt_rcpt_is("<c@d.example> NOTIFY=delay,failure,success "
	    "ORCPT=rfc822;c+40d", EXT_ALL & ~SMTP_EXT_DSN,
	    "RCPT TO:<c@d.example>\r\n");
	fmt_rcpt_is("<c@d.example> NOTIFY=NEVER", EXT_ALL,
	    "RCPT TO:<c@d.example> NOTIFY=NEVER\r\n");
	fmt_rcpt_is("<c@d.example> ORCPT=rfc822;", EXT_ALL,
	    "RCPT TO:<c@d.example> ORCPT=rfc822;\r\n");
	fmt_rcpt_is("<postmaster>", EXT_ALL, "RCPT TO:<postmaster>\r\n");
}
END_TEST

/* Every destination too small by one or more: -1 and nothing past dstsz. */
START_TEST(addr_format_short)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	char dst[256];
	size_t want, sz;

	mail_args("<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=xyz",
	    &m);
	want = strlen("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME "
	    "RET=HDRS ENVID=xyz\r\n");
	for (sz = 0; sz <= want + 1; sz++) {
		memset(dst, '#', sizeof(dst));
		ck_assert_int_eq(smtp_format_mail(dst, sz, &m, EXT_ALL, 0),
		    sz > want ? (int)want : -1);
		ck_assert_int_eq(dst[sz], '#');
	}

	rcpt_args("<c@d.example> NOTIFY=SUCCESS ORCPT=rfc822;c", &r);
	want = strlen("RCPT TO:<c@d.example> NOTIFY=SUCCESS ORCPT=rfc822;c"
	    "\r\n");
	for (sz = 0; sz <= want + 1; sz++) {
		memset(dst, '#', sizeof(dst));
		ck_assert_int_eq(smtp_format_rcpt(dst, sz, &r, EXT_ALL),
		    sz > want ? (int)want : -1);
		ck_assert_int_eq(dst[sz], '#');
	}
}
END_TEST

/* Args changed behind the parser's back never become a broken command. */
/* Put s into a fixed field; the test is wrong if it does not fit. */
static void
set_field(char *dst, size_t dstsz, const char *s)
{
	int n = snprintf(dst, dstsz, "%s", s);

	ck_assert(n >= 0 && (size_t)n < dstsz);
}

START_TEST(addr_format_refuses)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	char dst[1024];

	mail_args("<a@b.example>", &m);
	set_field(m.addr, sizeof(m.addr), "a@b.example>\r\nRCPT TO:<x@y.example");
	ck_assert_int_eq(smtp_format_mail(dst, sizeof(dst), &m, EXT_ALL, 0),
	    -1);
	mail_args("<a@b.example>", &m);
	set_field(m.envid, sizeof(m.envid), "a b");
	ck_assert_int_eq(smtp_format_mail(dst, sizeof(dst), &m, EXT_ALL, 0),
	    -1);
	mail_args("<a@b.example>", &m);
	memset(m.addr, 'a', sizeof(m.addr));	/* not terminated */
	ck_assert_int_eq(smtp_format_mail(dst, sizeof(dst), &m, EXT_ALL, 0),
	    -1);
	mail_args("<a@b.example>", &m);
	set_field(m.addr, sizeof(m.addr), "postmaster");
	ck_assert_int_eq(smtp_format_mail(dst, sizeof(dst), &m, EXT_ALL, 0),
	    -1);

	rcpt_args("<c@d.example>", &r);
	r.addr[0] = '\0';
	ck_assert_int_eq(smtp_format_rcpt(dst, sizeof(dst), &r, EXT_ALL), -1);
	rcpt_args("<c@d.example>", &r);
	r.notify = SMTP_NOTIFY_NEVER | SMTP_NOTIFY_DELAY;
	ck_assert_int_eq(smtp_format_rcpt(dst, sizeof(dst), &r, EXT_ALL), -1);
	rcpt_args("<c@d.example>", &r);
	r.notify = 0x40;
	ck_assert_int_eq(smtp_format_rcpt(dst, sizeof(dst), &r, EXT_ALL), -1);
	rcpt_args("<c@d.example>", &r);
	set_field(r.orcpt, sizeof(r.orcpt), "rfc822;a\r\nDATA");
	ck_assert_int_eq(smtp_format_rcpt(dst, sizeof(dst), &r, EXT_ALL), -1);
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("smtp_addr");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, addr_table, 0,
	    (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, addr_mail_values);
	tcase_add_test(tc, addr_rcpt_values);
	tcase_add_test(tc, addr_lengths);
	tcase_add_test(tc, addr_xtext_lengths);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, addr_format);
	tcase_add_test(tc, addr_format_short);
	tcase_add_test(tc, addr_format_refuses);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(addr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
