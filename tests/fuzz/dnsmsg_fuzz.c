/*
 * dnsmsg_fuzz: DNS messages on both sides of the proxy's MX lookup.
 *
 * - mta-sim's side (mta-sim/dnsmsg.h), which reads the queries the proxy
 *   sends to `mta-sim dns`: the input is parsed as a message; whatever
 *   parses must build again (into a buffer of exactly the size that
 *   takes, and one octet less must be refused), and the built form must
 *   parse to the same message, octet for octet in every name. Every
 *   name goes to text form and back unchanged, and the text fits
 *   DNSMSG_TEXT_MAX.
 * - the proxy's side, which reads answers with c-ares (proxy/dns.c calls
 *   ares_parse_mx_reply and ares_getaddrinfo's A/AAAA parsers): the same
 *   input is handed to ares_parse_mx_reply, ares_parse_a_reply and
 *   ares_parse_aaaa_reply, which must not crash or leak, and an MX list
 *   they accept holds only NUL-terminated hosts.
 *
 * The input is the message as it would arrive over UDP (no TCP length
 * prefix).
 */
#include "fuzz.h"

#include <netdb.h>

#include <ares.h>

#include "../../mta-sim/dnsmsg.h"

static int
dnsmsg_fuzz_name_same(const struct dnsmsg_name *a, const struct dnsmsg_name *b)
{
	return a->len == b->len && memcmp(a->wire, b->wire, a->len) == 0;
}

static void
dnsmsg_fuzz_text(const struct dnsmsg_name *n)
{
	char t[DNSMSG_TEXT_MAX];
	struct dnsmsg_name back;
	const char *err = NULL;

	FUZZ_CHECK(dnsmsg_name_to_text(n, t, sizeof(t)) == 0,
	    "a parsed name has no text form");
	FUZZ_CHECK(strlen(t) < sizeof(t), "text form too long");
	FUZZ_CHECK(dnsmsg_name_from_text(&back, t, &err) == 0,
	    "text form \"%s\" does not parse: %s", t, err);
	FUZZ_CHECK(dnsmsg_fuzz_name_same(n, &back), "text form \"%s\" changes "
	    "the name", t);
}

static void
dnsmsg_fuzz_rr_same(const struct dnsmsg_rr *a, const struct dnsmsg_rr *b)
{
	FUZZ_CHECK(dnsmsg_fuzz_name_same(&a->name, &b->name) &&
	    a->type == b->type && a->class == b->class && a->ttl == b->ttl,
	    "record header changed");
	if (a->class == DNSMSG_C_IN)
		switch (a->type) {
		case DNSMSG_T_A:
			FUZZ_CHECK(memcmp(a->rd.a, b->rd.a, 4) == 0, "A changed");
			return;
		case DNSMSG_T_AAAA:
			FUZZ_CHECK(memcmp(a->rd.aaaa, b->rd.aaaa, 16) == 0,
			    "AAAA changed");
			return;
		case DNSMSG_T_MX:
			FUZZ_CHECK(a->rd.mx.pref == b->rd.mx.pref &&
			    dnsmsg_fuzz_name_same(&a->rd.mx.host, &b->rd.mx.host),
			    "MX changed");
			dnsmsg_fuzz_text(&a->rd.mx.host);
			return;
		case DNSMSG_T_PTR:
		case DNSMSG_T_NS:
		case DNSMSG_T_CNAME:
			FUZZ_CHECK(dnsmsg_fuzz_name_same(&a->rd.target,
			    &b->rd.target), "target changed");
			dnsmsg_fuzz_text(&a->rd.target);
			return;
		case DNSMSG_T_SOA:
			FUZZ_CHECK(dnsmsg_fuzz_name_same(&a->rd.soa.mname,
			    &b->rd.soa.mname) &&
			    dnsmsg_fuzz_name_same(&a->rd.soa.rname,
			    &b->rd.soa.rname) &&
			    a->rd.soa.serial == b->rd.soa.serial &&
			    a->rd.soa.minimum == b->rd.soa.minimum &&
			    a->rd.soa.expire == b->rd.soa.expire,
			    "SOA changed");
			return;
		default:
			break;
		}
	FUZZ_CHECK(a->rd.raw.len == b->rd.raw.len && (a->rd.raw.len == 0 ||
	    memcmp(a->rd.raw.data, b->rd.raw.data, a->rd.raw.len) == 0),
	    "raw data changed");
}

static void
dnsmsg_fuzz_ours(const uint8_t *data, size_t size)
{
	struct dnsmsg m, back;
	unsigned char *out, *exact;
	const char *err = NULL;
	size_t len, len2, i, nrr;

	if (dnsmsg_parse(&m, data, size, &err) == -1) {
		FUZZ_CHECK(err != NULL && err[0] != '\0', "failure without a "
		    "reason");
		FUZZ_CHECK(m.qd == NULL && m.rr == NULL && m.nqd == 0 &&
		    m.nan + m.nns + m.nar == 0, "failure leaves entries");
		return;
	}
	nrr = m.nan + m.nns + m.nar;
	FUZZ_CHECK(m.nqd <= DNSMSG_QD_MAX && nrr <= DNSMSG_RR_MAX,
	    "%zu questions, %zu records", m.nqd, nrr);
	if ((out = malloc(DNSMSG_MSG_MAX)) == NULL)
		abort();
	FUZZ_CHECK(dnsmsg_build(&m, out, DNSMSG_MSG_MAX, &len, &err) == 0,
	    "parsed but does not build: %s", err);
	FUZZ_CHECK(len >= DNSMSG_HDR_LEN && len <= DNSMSG_MSG_MAX,
	    "built %zu octets", len);
	/* Exactly the room it takes; one octet less is refused. */
	if ((exact = malloc(len)) == NULL)
		abort();
	FUZZ_CHECK(dnsmsg_build(&m, exact, len, &len2, &err) == 0 &&
	    len2 == len && memcmp(exact, out, len) == 0,
	    "build into an exact buffer differs");
	FUZZ_CHECK(dnsmsg_build(&m, exact, len - 1, &len2, &err) == -1,
	    "build into a short buffer succeeded");
	free(exact);

	FUZZ_CHECK(dnsmsg_parse(&back, out, len, &err) == 0,
	    "built form does not parse: %s", err);
	FUZZ_CHECK(back.id == m.id && back.flags == m.flags &&
	    back.nqd == m.nqd && back.nan == m.nan && back.nns == m.nns &&
	    back.nar == m.nar, "header changed");
	for (i = 0; i < m.nqd; i++) {
		FUZZ_CHECK(dnsmsg_fuzz_name_same(&m.qd[i].name,
		    &back.qd[i].name) && m.qd[i].type == back.qd[i].type &&
		    m.qd[i].class == back.qd[i].class, "question changed");
		dnsmsg_fuzz_text(&m.qd[i].name);
	}
	for (i = 0; i < nrr; i++) {
		dnsmsg_fuzz_rr_same(&m.rr[i], &back.rr[i]);
		dnsmsg_fuzz_text(&m.rr[i].name);
	}
	dnsmsg_clear(&back);
	dnsmsg_clear(&m);
	free(out);
}

static void
dnsmsg_fuzz_cares(const uint8_t *data, size_t size)
{
	struct ares_mx_reply *mx = NULL, *r;
	struct ares_addrttl a[8];
	struct ares_addr6ttl a6[8];
	struct hostent *he = NULL;
	int n;

	if (size > INT32_MAX)
		return;
	if (ares_parse_mx_reply(data, (int)size, &mx) == ARES_SUCCESS)
		for (r = mx; r != NULL; r = r->next)
			FUZZ_CHECK(r->host != NULL && strlen(r->host) < 65536,
			    "MX host");
	if (mx != NULL)
		ares_free_data(mx);
	n = 8;
	if (ares_parse_a_reply(data, (int)size, &he, a, &n) == ARES_SUCCESS)
		FUZZ_CHECK(n >= 0 && n <= 8, "%d A addresses", n);
	if (he != NULL)
		ares_free_hostent(he);
	he = NULL;
	n = 8;
	if (ares_parse_aaaa_reply(data, (int)size, &he, a6, &n) == ARES_SUCCESS)
		FUZZ_CHECK(n >= 0 && n <= 8, "%d AAAA addresses", n);
	if (he != NULL)
		ares_free_hostent(he);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dnsmsg_fuzz_ours(data, size);
	dnsmsg_fuzz_cares(data, size);
	return 0;
}
