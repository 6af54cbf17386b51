/* netaddr_test: common/netaddr.c. No name is ever resolved here. */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "netaddr.h"

struct hp_case {
	const char	*in;
	int		 ok;
	const char	*host;
	unsigned	 port;
};

static const struct hp_case hp_cases[] = {
	{ "127.0.0.1", 1, "127.0.0.1", 0 },
	{ "127.0.0.1:25", 1, "127.0.0.1", 25 },
	{ "127.0.0.1:65535", 1, "127.0.0.1", 65535 },
	{ "localhost", 1, "localhost", 0 },
	{ "localhost:10025", 1, "localhost", 10025 },
	{ "mx-1.example.com:2525", 1, "mx-1.example.com", 2525 },
	{ "MX.Example.COM", 1, "MX.Example.COM", 0 },
	{ "a.b", 1, "a.b", 0 },
	{ "9.example", 1, "9.example", 0 },
	{ "[::1]", 1, "::1", 0 },
	{ "[::1]:25", 1, "::1", 25 },
	{ "[2001:db8::1]:587", 1, "2001:db8::1", 587 },
	{ "[127.0.0.1]:25", 1, "127.0.0.1", 25 },
	{ "::1", 1, "::1", 0 },
	{ "2001:db8::25", 1, "2001:db8::25", 0 },
	{ "::ffff:127.0.0.1", 1, "::ffff:127.0.0.1", 0 },

	{ "", 0, NULL, 0 },
	{ ":25", 0, NULL, 0 },
	{ "localhost:", 0, NULL, 0 },
	{ "localhost:0", 0, NULL, 0 },
	{ "localhost:65536", 0, NULL, 0 },
	{ "localhost:123456", 0, NULL, 0 },
	{ "localhost:-1", 0, NULL, 0 },
	{ "localhost:+25", 0, NULL, 0 },
	{ "localhost:25x", 0, NULL, 0 },
	{ "localhost: 25", 0, NULL, 0 },
	{ "local_host", 0, NULL, 0 },
	{ "-a.example", 0, NULL, 0 },
	{ "a-.example", 0, NULL, 0 },
	{ "a..example", 0, NULL, 0 },
	{ ".example", 0, NULL, 0 },
	{ "example.", 0, NULL, 0 },
	{ "exa mple", 0, NULL, 0 },
	{ "ex\x01mple", 0, NULL, 0 },
	{ "caf\xc3\xa9.example", 0, NULL, 0 },
	{ "1.2.3", 0, NULL, 0 },
	{ "300.1.1.1", 0, NULL, 0 },
	{ "127.0.0.01", 0, NULL, 0 },
	{ "12345", 0, NULL, 0 },
	{ "[::1", 0, NULL, 0 },
	{ "[::1]25", 0, NULL, 0 },
	{ "[::1]:", 0, NULL, 0 },
	{ "[]:25", 0, NULL, 0 },
	{ "[localhost]:25", 0, NULL, 0 },
	{ "[::1]:25:26", 0, NULL, 0 },
	{ "::1:25:zz", 0, NULL, 0 },
	{ "fe80::1%lo", 0, NULL, 0 },
	{ "1:2", 0, NULL, 0 },
};

START_TEST(hostport_table)
{
	const struct hp_case *c = &hp_cases[_i];
	struct hostport hp;
	const char *err = NULL;
	int r;

	r = netaddr_parse_hostport(c->in, &hp, &err);
	if (c->ok) {
		ck_assert_msg(r == 0, "\"%s\" refused: %s", c->in,
		    err ? err : "(null)");
		ck_assert_str_eq(hp.host, c->host);
		ck_assert_uint_eq(hp.port, c->port);
	} else {
		ck_assert_msg(r == -1, "\"%s\" accepted as %s port %u", c->in,
		    hp.host, hp.port);
		ck_assert_ptr_nonnull(err);
	}
}
END_TEST

START_TEST(hostport_lengths)
{
	struct hostport hp;
	const char *err;
	char s[600];
	size_t i;

	/* 63-octet labels pass, a 64-octet label does not */
	memset(s, 'a', 63);
	snprintf(s + 63, sizeof(s) - 63, ".example:25");
	ck_assert_int_eq(netaddr_parse_hostport(s, &hp, &err), 0);
	ck_assert_uint_eq(hp.port, 25);
	memset(s, 'a', 64);
	snprintf(s + 64, sizeof(s) - 64, ".example");
	ck_assert_int_eq(netaddr_parse_hostport(s, &hp, &err), -1);

	/* 255 octets of name pass, 256 do not */
	for (i = 0; i < 255; i++)
		s[i] = i % 50 == 49 ? '.' : 'h';
	s[255] = '\0';
	ck_assert_int_eq(netaddr_parse_hostport(s, &hp, &err), 0);
	ck_assert_uint_eq(strlen(hp.host), 255);
	snprintf(s + 255, sizeof(s) - 255, "h:25");
	ck_assert_int_eq(netaddr_parse_hostport(s, &hp, &err), -1);
	memset(s, 'h', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	ck_assert_int_eq(netaddr_parse_hostport(s, &hp, &err), -1);
	ck_assert_int_eq(netaddr_parse_hostport(NULL, &hp, &err), -1);
}
END_TEST

START_TEST(sockaddr_round_trip)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char buf[64];

	ck_assert_int_eq(netaddr_to_sockaddr("127.0.0.1", 2525, &ss, &sl), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_uint_eq(sl, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(netaddr_port((struct sockaddr *)&ss), 2525);
	ck_assert_str_eq(netaddr_ip((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "127.0.0.1");
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "127.0.0.1:2525");

	ck_assert_int_eq(netaddr_to_sockaddr("::1", 25, &ss, &sl), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(sl, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(netaddr_port((struct sockaddr *)&ss), 25);
	ck_assert_str_eq(netaddr_ip((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "::1");
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "[::1]:25");

	ck_assert_int_eq(netaddr_to_sockaddr("127.0.0.1", 0, &ss, &sl), 0);
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&ss, buf, sizeof(buf)),
	    "127.0.0.1:0");

	ck_assert_int_eq(netaddr_to_sockaddr("localhost", 25, &ss, &sl), -1);
	ck_assert_int_eq(netaddr_to_sockaddr("[::1]", 25, &ss, &sl), -1);
	ck_assert_int_eq(netaddr_to_sockaddr("", 25, &ss, &sl), -1);
	ck_assert_int_eq(netaddr_to_sockaddr("127.1", 25, &ss, &sl), -1);
}
END_TEST

START_TEST(sockaddr_short_and_odd)
{
	struct sockaddr_storage ss;
	struct sockaddr_un sun;
	socklen_t sl;
	char buf[64];
	size_t want = strlen("127.0.0.1:2525"), sz;

	ck_assert_int_eq(netaddr_to_sockaddr("127.0.0.1", 2525, &ss, &sl), 0);
	/* too short: "?" when it fits, never a cut-off address */
	for (sz = 1; sz <= want; sz++) {
		memset(buf, '#', sizeof(buf));
		netaddr_str((struct sockaddr *)&ss, buf, sz);
		ck_assert_str_eq(buf, sz >= 2 ? "?" : "");
		ck_assert_int_eq(buf[sz], '#');
	}
	memset(buf, '#', sizeof(buf));
	ck_assert_ptr_eq(netaddr_str((struct sockaddr *)&ss, buf, 0), buf);
	ck_assert_int_eq(buf[0], '#');
	netaddr_ip((struct sockaddr *)&ss, buf, 4);
	ck_assert_str_eq(buf, "?");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_str_eq(netaddr_str((struct sockaddr *)&sun, buf,
	    sizeof(buf)), "?");
	ck_assert_uint_eq(netaddr_port((struct sockaddr *)&sun), 0);
	ck_assert_str_eq(netaddr_str(NULL, buf, sizeof(buf)), "?");
	ck_assert_str_eq(netaddr_ip(NULL, buf, sizeof(buf)), "?");
	ck_assert_uint_eq(netaddr_port(NULL), 0);
}
END_TEST

static Suite *
netaddr_suite(void)
{
	Suite *s = suite_create("netaddr");
	TCase *tc = tcase_create("netaddr");

	tcase_add_loop_test(tc, hostport_table, 0,
	    (int)(sizeof(hp_cases) / sizeof(hp_cases[0])));
	tcase_add_test(tc, hostport_lengths);
	tcase_add_test(tc, sockaddr_round_trip);
	tcase_add_test(tc, sockaddr_short_and_odd);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(netaddr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
