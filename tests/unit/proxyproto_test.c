/* Unit tests for common/proxyproto.c: PROXY protocol v1 and v2 headers. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "proxyproto.h"

static enum proxyproto_status
parse(const void *p, size_t len, struct proxyproto_result *r)
{
	const char *err;

	return proxyproto_parse(p, len, r, &err);
}

/* Every proper prefix of a valid header asks for more. */
static void
check_prefixes(const unsigned char *h, size_t len)
{
	struct proxyproto_result r;

	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(parse(h, i, &r), PROXYPROTO_MORE);
}

START_TEST(v1_tcp4)
{
	const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO x\r\n";
	size_t hl = strlen("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n");
	struct proxyproto_result r;
	char s[64];

	check_prefixes((const unsigned char *)h, hl);
	ck_assert_int_eq(parse(h, strlen(h), &r), PROXYPROTO_DONE);
	ck_assert_uint_eq(r.used, hl);
	ck_assert_int_eq(r.local, 0);
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&r.src, s, sizeof(s)),
	    "192.0.2.7:40000");
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&r.dst, s, sizeof(s)),
	    "198.51.100.1:25");
}
END_TEST

START_TEST(v1_tcp6_and_unknown)
{
	const char *h6 = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
	struct proxyproto_result r;
	char s[64];

	ck_assert_int_eq(parse(h6, strlen(h6), &r), PROXYPROTO_DONE);
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&r.src, s, sizeof(s)),
	    "[2001:db8::1]:1");
	ck_assert_int_eq(parse("PROXY UNKNOWN\r\n", 15, &r), PROXYPROTO_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.used, 15);
}
END_TEST

START_TEST(v1_bad)
{
	static const char *const bad[] = {
		"EHLO x\r\n",				/* no header at all */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",	/* bare LF */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",	/* bare CR */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",	/* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",	/* missing port */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",	/* extra field */
		"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",	/* bad address */
		"PROXY TCP4 ::1 ::1 1 2\r\n",		/* family mismatch */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",	/* port range */
		"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",	/* leading zero */
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n",	/* control byte */
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",	/* case matters */
	};
	struct proxyproto_result r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], strlen(bad[i]), &r) ==
		    PROXYPROTO_ERROR, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(v1_too_long)
{
	char h[200];
	struct proxyproto_result r;

	memset(h, '1', sizeof(h));
	memcpy(h, "PROXY TCP4 ", 11);
	ck_assert_int_eq(parse(h, PROXYPROTO_V1_MAX - 1, &r), PROXYPROTO_MORE);
	ck_assert_int_eq(parse(h, PROXYPROTO_V1_MAX, &r), PROXYPROTO_ERROR);
}
END_TEST

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static size_t
v2(unsigned char *h, unsigned cmd, unsigned fam, const void *addr,
    size_t alen, size_t tlvs)
{
	memcpy(h, sig, 12);
	h[12] = (unsigned char)(0x20 | cmd);
	h[13] = (unsigned char)fam;
	h[14] = (unsigned char)((alen + tlvs) >> 8);
	h[15] = (unsigned char)(alen + tlvs);
	memcpy(h + 16, addr, alen);
	memset(h + 16 + alen, 0xab, tlvs);
	return 16 + alen + tlvs;
}

START_TEST(v2_inet)
{
	unsigned char h[128], a[12];
	struct proxyproto_result r;
	size_t n;
	char s[64];

	inet_pton(AF_INET, "192.0.2.9", a);
	inet_pton(AF_INET, "127.0.0.1", a + 4);
	a[8] = 0x9c; a[9] = 0x40;		/* 40000 */
	a[10] = 0; a[11] = 25;
	n = v2(h, 1, 0x11, a, sizeof(a), 7);	/* with TLV bytes to skip */
	check_prefixes(h, n);
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_DONE);
	ck_assert_uint_eq(r.used, n);
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&r.src, s, sizeof(s)),
	    "192.0.2.9:40000");
}
END_TEST

START_TEST(v2_inet6_local_and_bad)
{
	unsigned char h[128], a[36];
	struct proxyproto_result r;
	size_t n;
	char s[64];

	memset(a, 0, sizeof(a));
	inet_pton(AF_INET6, "2001:db8::5", a);
	a[32] = 0; a[33] = 80;
	n = v2(h, 1, 0x21, a, sizeof(a), 0);
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_DONE);
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&r.src, s, sizeof(s)),
	    "[2001:db8::5]:80");

	n = v2(h, 0, 0x00, a, 0, 0);		/* LOCAL: health check */
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_DONE);
	ck_assert_int_eq(r.local, 1);

	n = v2(h, 1, 0x11, a, 8, 0);		/* address block too short */
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_ERROR);
	n = v2(h, 2, 0x11, a, 12, 0);		/* unknown command */
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_ERROR);
	n = v2(h, 1, 0x31, a, 12, 0);		/* AF_UNIX: not for SMTP */
	ck_assert_int_eq(parse(h, n, &r), PROXYPROTO_ERROR);
	h[12] = 0x11;				/* version 1 in a v2 signature */
	ck_assert_int_eq(parse(h, 16, &r), PROXYPROTO_ERROR);
	h[0] = 0x0d; h[1] = 0x0b;		/* not the signature */
	ck_assert_int_eq(parse(h, 2, &r), PROXYPROTO_ERROR);
}
END_TEST

/* Random bytes never crash the parser, and used never exceeds len. */
START_TEST(random_input)
{
	unsigned char buf[600];
	struct proxyproto_result r;
	unsigned x = 12345;

	for (int iter = 0; iter < 20000; iter++) {
		size_t n = (x = x * 1103515245 + 12345) % sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = (unsigned char)((x = x * 1103515245 + 12345) >> 16);
		if (iter % 3 == 0 && n >= 12)
			memcpy(buf, sig, 12);
		if (iter % 3 == 1 && n >= 6)
			memcpy(buf, "PROXY ", 6);
		if (parse(buf, n, &r) == PROXYPROTO_DONE)
			ck_assert_uint_le(r.used, n);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, v1_tcp4);
	tcase_add_test(tc, v1_tcp6_and_unknown);
	tcase_add_test(tc, v1_bad);
	tcase_add_test(tc, v1_too_long);
	tcase_add_test(tc, v2_inet);
	tcase_add_test(tc, v2_inet6_local_and_bad);
	tcase_add_test(tc, random_input);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
