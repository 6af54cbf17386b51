/*
 * dnsmsg_test: mta-sim/dnsmsg.c. Names in text and wire form, messages
 * built and parsed back, and hostile messages: compression loops and
 * pointers out of range, truncated headers, questions and records,
 * oversized labels and names, counts larger than the data, bad record
 * lengths, trailing bytes, and deterministic random mutations of valid
 * messages (run under ASan by `make unit-asan`).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mta-sim/dnsmsg.h"

/*
 * Check's ck_assert() writes a checkpoint to a pipe even when it passes;
 * the helpers below run millions of times, so they only speak on failure.
 */
#define REQ(c) do {							\
	if (!(c))							\
		ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);	\
} while (0)
#define REQ_MSG(c, ...) do {						\
	if (!(c))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)

/* ---- helpers ---- */

static struct dnsmsg_name
name(const char *text)
{
	struct dnsmsg_name n;
	const char *err = NULL;

	ck_assert_msg(dnsmsg_name_from_text(&n, text, &err) == 0,
	    "name \"%s\": %s", text, err);
	return n;
}

static const char *
text(const struct dnsmsg_name *n)
{
	static char buf[4][DNSMSG_TEXT_MAX];
	static int i;

	i = (i + 1) % 4;
	ck_assert(dnsmsg_name_to_text(n, buf[i], sizeof(buf[i])) == 0);
	return buf[i];
}

/*
 * Parse in[0..len) from a heap copy of exactly that length (ASan sees a
 * read past it); expect failure with a message containing why.
 */
static void
parse_fails(const unsigned char *in, size_t len, const char *why)
{
	struct dnsmsg m;
	const char *err = NULL;
	unsigned char *p = NULL;
	int r;

	if (in != NULL) {
		ck_assert((p = malloc(len > 0 ? len : 1)) != NULL);
		memcpy(p, in, len);
	}
	r = dnsmsg_parse(&m, p, len, &err);
	free(p);
	ck_assert_msg(r == -1, "parsed, expected \"%s\"", why);
	ck_assert_msg(err != NULL && strstr(err, why) != NULL,
	    "error \"%s\", expected \"%s\"", err ? err : "(null)", why);
	ck_assert(m.qd == NULL && m.rr == NULL && m.nqd == 0 && m.nan == 0);
}

static void
parse_ok(struct dnsmsg *m, const unsigned char *p, size_t len)
{
	const char *err = NULL;

	REQ_MSG(dnsmsg_parse(m, p, len, &err) == 0, "parse: %s", err);
}

static void
rr_eq(const struct dnsmsg_rr *a, const struct dnsmsg_rr *b)
{
	REQ_MSG(a->name.len == b->name.len &&
	    memcmp(a->name.wire, b->name.wire, a->name.len) == 0,
	    "owner %s != %s", text(&a->name), text(&b->name));
	REQ((a->type) == (b->type));
	REQ((a->class) == (b->class));
	REQ((a->ttl) == (b->ttl));
	if (a->class != DNSMSG_C_IN)
		goto raw;
	switch (a->type) {
	case DNSMSG_T_A:
		REQ(memcmp(a->rd.a, b->rd.a, 4) == 0);
		return;
	case DNSMSG_T_AAAA:
		REQ(memcmp(a->rd.aaaa, b->rd.aaaa, 16) == 0);
		return;
	case DNSMSG_T_MX:
		REQ((a->rd.mx.pref) == (b->rd.mx.pref));
		REQ(a->rd.mx.host.len == b->rd.mx.host.len &&
		    memcmp(a->rd.mx.host.wire, b->rd.mx.host.wire,
		    a->rd.mx.host.len) == 0);
		return;
	case DNSMSG_T_PTR:
	case DNSMSG_T_NS:
	case DNSMSG_T_CNAME:
		REQ(a->rd.target.len == b->rd.target.len &&
		    memcmp(a->rd.target.wire, b->rd.target.wire,
		    a->rd.target.len) == 0);
		return;
	case DNSMSG_T_SOA:
		REQ(dnsmsg_name_eq(&a->rd.soa.mname, &b->rd.soa.mname));
		REQ(a->rd.soa.rname.len == b->rd.soa.rname.len &&
		    memcmp(a->rd.soa.rname.wire, b->rd.soa.rname.wire,
		    a->rd.soa.rname.len) == 0);
		REQ((a->rd.soa.serial) == (b->rd.soa.serial));
		REQ((a->rd.soa.refresh) == (b->rd.soa.refresh));
		REQ((a->rd.soa.retry) == (b->rd.soa.retry));
		REQ((a->rd.soa.expire) == (b->rd.soa.expire));
		REQ((a->rd.soa.minimum) == (b->rd.soa.minimum));
		return;
	default:
		break;
	}
raw:
	REQ((a->rd.raw.len) == (b->rd.raw.len));
	REQ(a->rd.raw.len == 0 ||
	    memcmp(a->rd.raw.data, b->rd.raw.data, a->rd.raw.len) == 0);
}

static void
msg_eq(const struct dnsmsg *a, const struct dnsmsg *b)
{
	size_t i;

	REQ((a->id) == (b->id));
	REQ((a->flags) == (b->flags));
	REQ((a->nqd) == (b->nqd));
	REQ((a->nan) == (b->nan));
	REQ((a->nns) == (b->nns));
	REQ((a->nar) == (b->nar));
	for (i = 0; i < a->nqd; i++) {
		REQ(a->qd[i].name.len == b->qd[i].name.len &&
		    memcmp(a->qd[i].name.wire, b->qd[i].name.wire,
		    a->qd[i].name.len) == 0);
		REQ((a->qd[i].type) == (b->qd[i].type));
		REQ((a->qd[i].class) == (b->qd[i].class));
	}
	for (i = 0; i < a->nan + a->nns + a->nar; i++)
		rr_eq(&a->rr[i], &b->rr[i]);
}

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* A header with the given counts at p[0..12). */
static void
hdr(unsigned char *p, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
	put16(p, 0x1234);
	put16(p + 2, 0x0100);
	put16(p + 4, qd);
	put16(p + 6, an);
	put16(p + 8, ns);
	put16(p + 10, ar);
}

/* ---- the message every round trip starts from ---- */

static const unsigned char sample_txt[] = { 5, 'h', 'e', 'l', 'l', 'o' };

static size_t
sample(struct dnsmsg *m, struct dnsmsg_question *q, struct dnsmsg_rr *rr)
{
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	memset(q, 0, sizeof(*q));
	m->id = 0xbeef;
	m->flags = DNSMSG_F_QR | DNSMSG_F_AA | DNSMSG_F_RD;
	q->name = name("Example.TEST");
	q->type = DNSMSG_T_MX;
	q->class = DNSMSG_C_IN;
	m->qd = q;
	m->nqd = 1;

	memset(rr, 0, 10 * sizeof(*rr));
	rr[n].name = q->name;
	rr[n].type = DNSMSG_T_MX;
	rr[n].class = DNSMSG_C_IN;
	rr[n].ttl = 300;
	rr[n].rd.mx.pref = 10;
	rr[n++].rd.mx.host = name("mx1.Example.TEST");
	rr[n] = rr[n - 1];
	rr[n].rd.mx.pref = 20;
	rr[n++].rd.mx.host = name("mx2.example.test");	/* other case */
	rr[n] = rr[n - 1];
	rr[n].rd.mx.pref = 0;
	rr[n++].rd.mx.host = name(".");
	rr[n].name = name("4.3.2.1.in-addr.arpa");
	rr[n].type = DNSMSG_T_PTR;
	rr[n].class = DNSMSG_C_IN;
	rr[n].ttl = 0x7fffffff;
	rr[n++].rd.target = name("mx1.Example.TEST");
	rr[n].name = name("txt.Example.TEST");
	rr[n].type = DNSMSG_T_TXT;
	rr[n].class = DNSMSG_C_IN;
	rr[n].rd.raw.data = sample_txt;
	rr[n++].rd.raw.len = sizeof(sample_txt);
	m->nan = n;

	rr[n].name = name("Example.TEST");
	rr[n].type = DNSMSG_T_SOA;
	rr[n].class = DNSMSG_C_IN;
	rr[n].ttl = 60;
	rr[n].rd.soa.mname = name("ns.Example.TEST");
	rr[n].rd.soa.rname = name("host\\.master.Example.TEST");
	rr[n].rd.soa.serial = 2026113001;
	rr[n].rd.soa.refresh = 3600;
	rr[n].rd.soa.retry = 600;
	rr[n].rd.soa.expire = 86400;
	rr[n++].rd.soa.minimum = 30;
	m->nns = 1;

	rr[n].name = name("mx1.Example.TEST");
	rr[n].type = DNSMSG_T_A;
	rr[n].class = DNSMSG_C_IN;
	rr[n].ttl = 300;
	memcpy(rr[n++].rd.a, "\x7f\x00\x00\x02", 4);
	rr[n].name = name("mx1.Example.TEST");
	rr[n].type = DNSMSG_T_AAAA;
	rr[n].class = DNSMSG_C_IN;
	rr[n].ttl = 300;
	rr[n++].rd.aaaa[15] = 1;
	rr[n].name = name(".");
	rr[n].type = DNSMSG_T_OPT;
	rr[n].class = 1232;			/* EDNS: payload size, raw */
	rr[n].rd.raw.data = NULL;
	rr[n++].rd.raw.len = 0;
	m->nar = 3;
	m->rr = rr;
	return n;
}

/* Length of sample() written without compression. */
static size_t
sample_uncompressed(const struct dnsmsg *m)
{
	size_t len = DNSMSG_HDR_LEN + m->qd[0].name.len + 4, i;

	for (i = 0; i < m->nan + m->nns + m->nar; i++) {
		const struct dnsmsg_rr *r = &m->rr[i];

		len += r->name.len + 10;
		if (r->class != DNSMSG_C_IN)
			len += r->rd.raw.len;
		else if (r->type == DNSMSG_T_MX)
			len += 2 + r->rd.mx.host.len;
		else if (r->type == DNSMSG_T_PTR)
			len += r->rd.target.len;
		else if (r->type == DNSMSG_T_SOA)
			len += r->rd.soa.mname.len + r->rd.soa.rname.len + 20;
		else if (r->type == DNSMSG_T_A)
			len += 4;
		else if (r->type == DNSMSG_T_AAAA)
			len += 16;
		else
			len += r->rd.raw.len;
	}
	return len;
}

/* ---- names ---- */

START_TEST(name_text_round_trip)
{
	static const char *const ok[] = {
		"example.com", "a", "xn--bcher-kva.example", "_dmarc.example.com",
		"*.example.com", "0/25.2.0.192.in-addr.arpa", "a\\.b.example",
		"\\000\\255\\032.x", "a\\\\b.c", "a\\#b.c", "."
	};
	struct dnsmsg_name n, back;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		n = name(ok[i]);
		ck_assert_str_eq(text(&n), ok[i]);
		back = name(text(&n));
		ck_assert(back.len == n.len &&
		    memcmp(back.wire, n.wire, n.len) == 0);
	}
	/* A trailing dot is optional; the text form has none. */
	n = name("Example.COM.");
	ck_assert_str_eq(text(&n), "Example.COM");
	ck_assert_uint_eq(n.len, 13);
	ck_assert(memcmp(n.wire, "\7Example\3COM\0", 13) == 0);
	/* Escapes decode to single octets. */
	n = name("a\\.b\\065");
	ck_assert_uint_eq(n.len, 6);
	ck_assert(memcmp(n.wire, "\4a.bA\0", 6) == 0);
	ck_assert_str_eq(text(&n), "a\\.bA");
	n = name(".");
	ck_assert_uint_eq(n.len, 1);
	ck_assert_uint_eq(dnsmsg_name_labels(&n), 0);
	n = name("a.b.c");
	ck_assert_uint_eq(dnsmsg_name_labels(&n), 3);
	(void)err;
}
END_TEST

START_TEST(name_text_bad)
{
	static const char *const bad[] = {
		"", "..", ".a", "a..b", "a b", "a\tb", "a\\", "a\\1", "a\\12",
		"a\\256", "a\\ b", "tab\x01.x", "\xc3\xa9t\xc3\xa9.fr"
	};
	struct dnsmsg_name n;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		ck_assert_msg(dnsmsg_name_from_text(&n, bad[i], &err) == -1,
		    "accepted \"%s\"", bad[i]);
		ck_assert(err != NULL);
	}
}
END_TEST

START_TEST(name_limits)
{
	char label[80], big[600];
	struct dnsmsg_name n;
	const char *err;
	size_t i;

	memset(label, 'a', 63);
	label[63] = '\0';
	n = name(label);
	ck_assert_uint_eq(n.len, 65);
	memset(label, 'a', 64);
	label[64] = '\0';
	ck_assert(dnsmsg_name_from_text(&n, label, &err) == -1);
	ck_assert(strstr(err, "63") != NULL);
	/* 63+1+63+1+63+1+61 = 253 text octets: 255 in wire form, the most. */
	snprintf(big, sizeof(big), "%.63s.%.63s.%.63s.%.61s", label, label,
	    label, label);
	n = name(big);
	ck_assert_uint_eq(n.len, 255);
	snprintf(big, sizeof(big), "%.63s.%.63s.%.63s.%.61s.", label, label,
	    label, label);
	n = name(big);
	ck_assert_uint_eq(n.len, 255);
	snprintf(big, sizeof(big), "%.63s.%.63s.%.63s.%.62s", label, label,
	    label, label);
	ck_assert(dnsmsg_name_from_text(&n, big, &err) == -1);
	ck_assert(strstr(err, "255") != NULL);
	/* 127 one-octet labels: 255 octets; one more label is too long. */
	for (i = 0; i < 127; i++)
		memcpy(big + 2 * i, "x.", 2);
	big[253] = '\0';
	n = name(big);
	ck_assert_uint_eq(n.len, 255);
	ck_assert_uint_eq(dnsmsg_name_labels(&n), 127);
	memcpy(big + 253, ".y", 3);
	ck_assert(dnsmsg_name_from_text(&n, big, &err) == -1);
	/* The longest text form still fits DNSMSG_TEXT_MAX: all escaped. */
	{
		struct dnsmsg_name w;
		char out[DNSMSG_TEXT_MAX];

		/* Four labels of 63 0xff octets minus a little: 252 octets. */
		w.len = 0;
		for (i = 0; i < 4; i++) {
			size_t l = i < 3 ? 63 : 60;

			w.wire[w.len++] = (unsigned char)l;
			memset(w.wire + w.len, 0xff, l);
			w.len += l;
		}
		w.wire[w.len++] = 0;
		ck_assert_uint_eq(w.len, 254);
		ck_assert(dnsmsg_name_to_text(&w, out, sizeof(out)) == 0);
		ck_assert_uint_eq(strlen(out), 249 * 4 + 3);
		n = name(out);
		ck_assert(n.len == w.len && memcmp(n.wire, w.wire, w.len) == 0);
		/* One octet short of room: refused, never cut. */
		ck_assert(dnsmsg_name_to_text(&w, out, strlen(out)) == -1);
		/* A hand-made name that is not well formed is refused. */
		w.wire[0] = 64;
		ck_assert(dnsmsg_name_to_text(&w, out, sizeof(out)) == -1);
		w.len = 0;
		ck_assert(dnsmsg_name_to_text(&w, out, sizeof(out)) == -1);
	}
}
END_TEST

START_TEST(name_compare)
{
	struct dnsmsg_name a = name("MX1.Example.Test"), b = name("mx1.example.test");
	struct dnsmsg_name z = name("example.test"), root = name(".");
	struct dnsmsg_name x = name("xexample.test"), e = name("e\\.example.test");

	ck_assert(dnsmsg_name_eq(&a, &b));
	ck_assert(!dnsmsg_name_eq(&a, &z));
	ck_assert(dnsmsg_name_under(&a, &z));
	ck_assert(dnsmsg_name_under(&z, &z));
	ck_assert(dnsmsg_name_under(&a, &root));
	ck_assert(dnsmsg_name_under(&root, &root));
	ck_assert(!dnsmsg_name_under(&z, &a));
	ck_assert(!dnsmsg_name_under(&x, &z));
	ck_assert(!dnsmsg_name_under(&root, &z));
	/* A dot inside a label is no label boundary. */
	ck_assert_uint_eq(dnsmsg_name_labels(&e), 2);
	ck_assert(!dnsmsg_name_under(&e, &z));
	ck_assert(!dnsmsg_name_eq(&e, &a));
}
END_TEST

START_TEST(types)
{
	uint16_t t;

	ck_assert(dnsmsg_type_parse("mx", &t) == 0 && t == DNSMSG_T_MX);
	ck_assert(dnsmsg_type_parse("AAAA", &t) == 0 && t == DNSMSG_T_AAAA);
	ck_assert(dnsmsg_type_parse("TYPE65535", &t) == 0 && t == 65535);
	ck_assert(dnsmsg_type_parse("type99", &t) == 0 && t == 99);
	ck_assert(dnsmsg_type_parse("TYPE65536", &t) == -1);
	ck_assert(dnsmsg_type_parse("TYPE", &t) == -1);
	ck_assert(dnsmsg_type_parse("TYPE-1", &t) == -1);
	ck_assert(dnsmsg_type_parse("MXX", &t) == -1);
	ck_assert_str_eq(dnsmsg_type_name(DNSMSG_T_PTR), "PTR");
	ck_assert(dnsmsg_type_name(999) == NULL);
	ck_assert_str_eq(dnsmsg_rcode_name(3), "NXDOMAIN");
	ck_assert_str_eq(dnsmsg_rcode_name(15), "RCODE?");
}
END_TEST

/* ---- round trips ---- */

START_TEST(build_parse_round_trip)
{
	struct dnsmsg m, back;
	struct dnsmsg_question q;
	struct dnsmsg_rr rr[10];
	unsigned char out[DNSMSG_MSG_MAX];
	const char *err = NULL;
	size_t len, plain;
	uint16_t id, flags;

	sample(&m, &q, rr);
	ck_assert_msg(dnsmsg_build(&m, out, sizeof(out), &len, &err) == 0,
	    "%s", err);
	plain = sample_uncompressed(&m);
	/* Compression took effect, and only on exact spellings. */
	ck_assert_msg(len < plain - 40, "len %zu, uncompressed %zu", len,
	    plain);
	parse_ok(&back, out, len);
	ck_assert(back.owned);
	msg_eq(&m, &back);
	ck_assert_str_eq(text(&back.rr[1].rd.mx.host), "mx2.example.test");
	ck_assert_str_eq(text(&back.rr[2].rd.mx.host), ".");
	ck_assert_str_eq(text(&back.rr[5].rd.soa.rname),
	    "host\\.master.Example.TEST");
	ck_assert(dnsmsg_peek(out, len, &id, &flags) == 0);
	ck_assert_uint_eq(id, 0xbeef);
	ck_assert_uint_eq(flags, m.flags);

	/* Built again from the parsed form: the same octets. */
	{
		unsigned char again[DNSMSG_MSG_MAX];
		size_t len2;

		ck_assert(dnsmsg_build(&back, again, sizeof(again), &len2,
		    &err) == 0);
		ck_assert_uint_eq(len2, len);
		ck_assert(memcmp(again, out, len) == 0);
	}
	dnsmsg_clear(&back);
	ck_assert(back.rr == NULL && back.qd == NULL && !back.owned);

	/* Exactly enough room works; one octet less does not. */
	ck_assert(dnsmsg_build(&m, out, len, &len, &err) == 0);
	ck_assert(dnsmsg_build(&m, out, len - 1, &len, &err) == -1);
	ck_assert_str_eq(err, "message too long");
	ck_assert(dnsmsg_build(&m, out, DNSMSG_HDR_LEN - 1, &len, &err) == -1);
}
END_TEST

START_TEST(build_refuses_bad_input)
{
	struct dnsmsg m;
	struct dnsmsg_question q;
	struct dnsmsg_rr rr[10];
	unsigned char out[1024];
	const char *err = NULL;
	size_t len;

	sample(&m, &q, rr);
	rr[0].rd.mx.host.wire[0] = 70;		/* label over 63 */
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
	ck_assert_str_eq(err, "malformed name");
	sample(&m, &q, rr);
	q.name.len = 0;
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
	sample(&m, &q, rr);
	q.name.wire[q.name.len - 1] = 1;	/* no root label */
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
	sample(&m, &q, rr);
	m.nan = 70000;
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
	sample(&m, &q, rr);
	m.rr = NULL;
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
	sample(&m, &q, rr);
	rr[4].rd.raw.data = NULL;		/* TXT with a length, no data */
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == -1);
}
END_TEST

/* A name at its limits, compressed many times, survives. */
START_TEST(round_trip_long_names)
{
	char label[64], big[300];
	struct dnsmsg m, back;
	struct dnsmsg_question q;
	struct dnsmsg_rr rr[40];
	unsigned char out[DNSMSG_MSG_MAX];
	const char *err;
	size_t len, i;

	memset(label, 'q', 63);
	label[63] = '\0';
	snprintf(big, sizeof(big), "%s.%s.%s.%.61s", label, label, label,
	    label);
	memset(&m, 0, sizeof(m));
	memset(&q, 0, sizeof(q));
	memset(rr, 0, sizeof(rr));
	q.name = name(big);
	q.type = DNSMSG_T_MX;
	q.class = DNSMSG_C_IN;
	m.qd = &q;
	m.nqd = 1;
	for (i = 0; i < 40; i++) {
		rr[i].name = q.name;
		rr[i].type = DNSMSG_T_MX;
		rr[i].class = DNSMSG_C_IN;
		rr[i].rd.mx.pref = (uint16_t)i;
		rr[i].rd.mx.host = q.name;
	}
	m.rr = rr;
	m.nan = 40;
	ck_assert(dnsmsg_build(&m, out, sizeof(out), &len, &err) == 0);
	/* Every later copy of the name is a 2-octet pointer. */
	ck_assert_uint_eq(len, DNSMSG_HDR_LEN + 255 + 4 + 40 * (2 + 10 + 2 + 2));
	parse_ok(&back, out, len);
	msg_eq(&m, &back);
	dnsmsg_clear(&back);
}
END_TEST

/* ---- hostile messages ---- */

START_TEST(hostile_short)
{
	unsigned char p[64];

	memset(p, 0, sizeof(p));
	parse_fails(p, 0, "shorter than its header");
	parse_fails(NULL, 0, "shorter than its header");
	parse_fails(p, 11, "shorter than its header");
	hdr(p, 0, 0, 0, 0);
	{
		struct dnsmsg m;

		parse_ok(&m, p, 12);		/* a bare header is a message */
		ck_assert_uint_eq(m.nqd + m.nan + m.nns + m.nar, 0);
		dnsmsg_clear(&m);
	}
	parse_fails(p, 13, "after the last record");
	hdr(p, 1, 0, 0, 0);
	parse_fails(p, 12, "counts larger");
	/* A root question without its type and class. */
	parse_fails(p, 12 + 5 - 1, "counts larger");
	p[12] = 0;
	hdr(p, 1, 0, 0, 0);
	{
		struct dnsmsg m;

		parse_ok(&m, p, 17);
		ck_assert_uint_eq(m.nqd, 1);
		ck_assert_uint_eq(m.qd[0].name.len, 1);
		dnsmsg_clear(&m);
	}
	/* Name present, type and class cut short. */
	memcpy(p + 12, "\1a\0\0\17", 5);
	parse_fails(p, 17, "truncated question");
	ck_assert(dnsmsg_peek(p, 11, &(uint16_t){ 0 }, &(uint16_t){ 0 }) == -1);
}
END_TEST

START_TEST(hostile_counts)
{
	unsigned char p[1024];

	memset(p, 0, sizeof(p));
	hdr(p, 65535, 0, 0, 0);
	parse_fails(p, sizeof(p), "too many questions");
	hdr(p, 1, 65535, 65535, 65535);
	parse_fails(p, sizeof(p), "too many records");
	hdr(p, 0, DNSMSG_RR_MAX, 1, 0);
	parse_fails(p, sizeof(p), "too many records");
	/* Within the limits, but more than the octets can hold. */
	hdr(p, 16, 0, 0, 0);
	parse_fails(p, 12 + 16 * 5 - 1, "counts larger");
	hdr(p, 0, 46, 0, 0);
	parse_fails(p, 12 + 46 * 11 - 1, "counts larger");
	/* Counts that fit the length, records that do not: A without data. */
	hdr(p, 0, 2, 0, 0);
	memset(p + 12, 0, 22);
	put16(p + 13, DNSMSG_T_A);
	put16(p + 15, DNSMSG_C_IN);
	parse_fails(p, 34, "does not fit its type");
	{
		struct dnsmsg m;

		/* Two empty records of a type kept raw: 11 octets each. */
		memset(p + 12, 0, 22);
		put16(p + 13, 99);
		put16(p + 24, 99);
		parse_ok(&m, p, 34);
		ck_assert_uint_eq(m.nan, 2);
		ck_assert_uint_eq(m.rr[1].rd.raw.len, 0);
		dnsmsg_clear(&m);
	}
	/* A message longer than TCP can carry. */
	{
		unsigned char *big = calloc(1, DNSMSG_MSG_MAX + 1);

		ck_assert(big != NULL);
		hdr(big, 0, 0, 0, 0);
		parse_fails(big, DNSMSG_MSG_MAX + 1, "longer than 65535");
		free(big);
	}
}
END_TEST

START_TEST(hostile_compression)
{
	unsigned char p[1024];
	struct dnsmsg m;
	size_t n, i;

	memset(p, 0, sizeof(p));
	/* A pointer to itself. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\xc0\x0c\0\1\0\1", 6);
	parse_fails(p, 18, "too many compression pointers");
	/* Two pointers to each other: the question points to the answer's
	 * name, which points back. */
	hdr(p, 1, 1, 0, 0);
	memcpy(p + 12, "\xc0\x12\0\1\0\1", 6);
	memcpy(p + 18, "\xc0\x0c\0\1\0\1\0\0\0\0\0\4\1\2\3\4", 16);
	parse_fails(p, 34, "too many compression pointers");
	/* Into the header, and past the end. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\xc0\x0b\0\1\0\1", 6);
	parse_fails(p, 18, "out of range");
	memcpy(p + 12, "\xc0\x00\0\1\0\1", 6);
	parse_fails(p, 18, "out of range");
	memcpy(p + 12, "\xc0\x12\0\1\0\1", 6);
	parse_fails(p, 18, "out of range");
	memcpy(p + 12, "\xff\xff\0\1\0\1", 6);
	parse_fails(p, 18, "out of range");
	/* A pointer cut in half at the end of the message. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\1a\xc0", 3);
	parse_fails(p, 15, "counts larger");
	/* Other label types. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\x41\0\0\1\0\1", 6);
	parse_fails(p, 18, "unsupported label type");
	memcpy(p + 12, "\x80\0\0\1\0\1", 6);
	parse_fails(p, 18, "unsupported label type");

	/* A forward pointer is followed (no backward-only assumption). */
	hdr(p, 1, 1, 0, 0);
	memcpy(p + 12, "\xc0\x12\0\17\0\1", 6);
	memcpy(p + 18, "\7example\4test\0", 14);
	memcpy(p + 32, "\0\17\0\1\0\0\0\74\0\4\0\12\xc0\x12", 14);
	parse_ok(&m, p, 46);
	ck_assert_str_eq(text(&m.qd[0].name), "example.test");
	ck_assert_str_eq(text(&m.rr[0].rd.mx.host), "example.test");
	ck_assert_uint_eq(m.rr[0].ttl, 60);
	dnsmsg_clear(&m);

	/*
	 * A chain of n pointers in a raw record's data, reached from the
	 * question: 1 + n hops. DNSMSG_PTR_MAX is allowed, one more is not.
	 */
	for (n = DNSMSG_PTR_MAX - 1; n <= DNSMSG_PTR_MAX; n++) {
		size_t rd = 29, len = rd + 2 * n + 1;

		memset(p, 0, sizeof(p));
		hdr(p, 1, 1, 0, 0);
		memcpy(p + 12, "\xc0\x1d\0\1\0\1", 6);	/* -> 29 */
		p[18] = 0;				/* owner: root */
		put16(p + 19, 999);			/* a type kept raw */
		put16(p + 21, 1);
		put16(p + 27, 2 * n + 1);
		for (i = 0; i < n; i++)
			put16(p + rd + 2 * i, 0xc000 | (rd + 2 * (i + 1)));
		p[rd + 2 * n] = 0;
		if (n == DNSMSG_PTR_MAX - 1) {
			parse_ok(&m, p, len);
			ck_assert_uint_eq(m.qd[0].name.len, 1);
			dnsmsg_clear(&m);
		} else
			parse_fails(p, len, "too many compression pointers");
	}

	/*
	 * Pointers that make a name grow past 255 octets: five labels of
	 * 63, each followed by a pointer to the one before, all inside a
	 * raw record's data; the question points at the last.
	 */
	{
		size_t prev = 0, at;

		memset(p, 0, sizeof(p));
		hdr(p, 1, 1, 0, 0);
		n = 29;
		for (i = 0; i < 5; i++) {
			at = n;
			p[n] = 63;
			memset(p + n + 1, 'z', 63);
			if (i == 0) {
				p[n + 64] = 0;
				n += 65;
			} else {
				put16(p + n + 64, 0xc000 | prev);
				n += 66;
			}
			prev = at;
		}
		put16(p + 12, 0xc000 | prev);
		memcpy(p + 14, "\0\1\0\1", 4);
		put16(p + 19, 999);
		put16(p + 21, 1);
		put16(p + 27, n - 29);
		parse_fails(p, n, "longer than 255");
		/* Three of them make 193 octets: fine. */
		put16(p + 12, 0xc000 | (29 + 65 + 66));
		parse_ok(&m, p, n);
		ck_assert_uint_eq(m.qd[0].name.len, 3 * 64 + 1);
		dnsmsg_clear(&m);
	}
}
END_TEST

/*
 * A query for "a" MX and one answer record (owner: a pointer to the
 * question) with the given type, class, RDLENGTH and data.
 */
static size_t
one_rr(unsigned char *p, unsigned type, unsigned class, unsigned rdlen,
    const void *rd, size_t rdn)
{
	hdr(p, 1, 1, 0, 0);
	memcpy(p + 12, "\1a\0\0\17\0\1", 7);
	put16(p + 19, 0xc00c);
	put16(p + 21, type);
	put16(p + 23, class);
	memcpy(p + 25, "\0\0\0\1", 4);
	put16(p + 29, rdlen);
	memcpy(p + 31, rd, rdn);
	return 31 + rdn;
}

START_TEST(hostile_records)
{
	unsigned char p[256], zero[32];
	struct dnsmsg m;
	size_t len;

	memset(zero, 0, sizeof(zero));
	len = one_rr(p, DNSMSG_T_A, DNSMSG_C_IN, 4, "\1\2\3\4", 4);
	parse_ok(&m, p, len);
	ck_assert_str_eq(text(&m.rr[0].name), "a");
	ck_assert(memcmp(m.rr[0].rd.a, "\1\2\3\4", 4) == 0);
	dnsmsg_clear(&m);
	/* The record's fixed part cut short. */
	parse_fails(p, 19 + 2 + 9, "truncated record");
	/* RDLENGTH past the end. */
	len = one_rr(p, DNSMSG_T_A, DNSMSG_C_IN, 4, "\1\2\3", 3);
	parse_fails(p, len, "runs past the end of the message");
	/* A and AAAA with the wrong length. */
	len = one_rr(p, DNSMSG_T_A, DNSMSG_C_IN, 5, "\1\2\3\4\5", 5);
	parse_fails(p, len, "does not fit its type");
	len = one_rr(p, DNSMSG_T_AAAA, DNSMSG_C_IN, 4, "\1\2\3\4", 4);
	parse_fails(p, len, "does not fit its type");
	/* MX: too short; its name running out of RDATA (not of the message). */
	len = one_rr(p, DNSMSG_T_MX, DNSMSG_C_IN, 2, "\0\1", 2);
	parse_fails(p, len, "does not fit its type");
	len = one_rr(p, DNSMSG_T_MX, DNSMSG_C_IN, 4, "\0\1\3abc\0", 7);
	parse_fails(p, len, "label runs past the end of its data");
	len = one_rr(p, DNSMSG_T_MX, DNSMSG_C_IN, 4, "\0\1\1a\0\0", 6);
	parse_fails(p, len, "name runs past the end of its data");
	/* MX: octets left after its name; a pointer cut by RDLENGTH. */
	len = one_rr(p, DNSMSG_T_MX, DNSMSG_C_IN, 5, "\0\1\0\0\0", 5);
	parse_fails(p, len, "does not fit its type");
	len = one_rr(p, DNSMSG_T_MX, DNSMSG_C_IN, 3, "\0\1\xc0\x0c", 4);
	parse_fails(p, len, "truncated compression pointer");
	/* SOA: two root names and 19, 21 or 20 octets. */
	len = one_rr(p, DNSMSG_T_SOA, DNSMSG_C_IN, 21, zero, 21);
	parse_fails(p, len, "does not fit its type");
	len = one_rr(p, DNSMSG_T_SOA, DNSMSG_C_IN, 23, zero, 23);
	parse_fails(p, len, "does not fit its type");
	len = one_rr(p, DNSMSG_T_SOA, DNSMSG_C_IN, 22, zero, 22);
	parse_ok(&m, p, len);
	dnsmsg_clear(&m);
	/* A name in PTR data that runs out of it. */
	len = one_rr(p, DNSMSG_T_PTR, DNSMSG_C_IN, 2, "\3ab\0", 4);
	parse_fails(p, len, "label runs past the end of its data");
	/* Another class: A data kept raw, whatever its length. */
	len = one_rr(p, DNSMSG_T_A, 3, 3, "xyz", 3);
	parse_ok(&m, p, len);
	ck_assert_uint_eq(m.rr[0].class, 3);
	ck_assert_uint_eq(m.rr[0].rd.raw.len, 3);
	ck_assert(m.rr[0].rd.raw.data == p + 31);
	dnsmsg_clear(&m);
	/* A label longer than the message. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\77abc\0\0\1\0\1", 10);
	parse_fails(p, 22, "label runs past");
	/* Octets after the last record. */
	hdr(p, 1, 0, 0, 0);
	memcpy(p + 12, "\1a\0\0\17\0\1\0", 8);
	parse_fails(p, 20, "after the last record");
}
END_TEST

/* ---- random mutations ---- */

static uint64_t rng_state;

static uint32_t
rng(void)
{
	/* xorshift64*: deterministic, so a failure repeats. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

/*
 * Whatever parses must build, parse back to the same message, and its
 * names must go to text and back unchanged. The input is copied to a
 * heap block of exactly its length, so ASan sees any read past its end.
 * Returns whether it parsed.
 */
static int
check_parsed(const unsigned char *in, size_t len)
{
	static unsigned char out[DNSMSG_MSG_MAX];
	struct dnsmsg m, back;
	const char *err = NULL;
	size_t olen, i;
	char t[DNSMSG_TEXT_MAX];
	struct dnsmsg_name n;
	unsigned char *p = malloc(len > 0 ? len : 1);

	REQ(p != NULL);
	memcpy(p, in, len);
	if (dnsmsg_parse(&m, p, len, &err) == -1) {
		REQ(err != NULL && *err != '\0');
		free(p);
		return 0;
	}
	REQ_MSG(dnsmsg_build(&m, out, sizeof(out), &olen, &err) == 0,
	    "parsed but does not build: %s", err);
	parse_ok(&back, out, olen);
	msg_eq(&m, &back);
	for (i = 0; i < m.nqd; i++) {
		REQ(dnsmsg_name_to_text(&m.qd[i].name, t, sizeof(t)) == 0);
		REQ_MSG(dnsmsg_name_from_text(&n, t, &err) == 0, "%s: %s",
		    t, err);
		REQ(n.len == m.qd[i].name.len &&
		    memcmp(n.wire, m.qd[i].name.wire, n.len) == 0);
	}
	for (i = 0; i < m.nan + m.nns + m.nar; i++) {
		REQ(dnsmsg_name_to_text(&m.rr[i].name, t, sizeof(t)) == 0);
		REQ(dnsmsg_name_from_text(&n, t, &err) == 0);
		REQ(n.len == m.rr[i].name.len &&
		    memcmp(n.wire, m.rr[i].name.wire, n.len) == 0);
	}
	dnsmsg_clear(&back);
	dnsmsg_clear(&m);
	free(p);
	return 1;
}

START_TEST(random_mutations)
{
	struct dnsmsg m;
	struct dnsmsg_question q;
	struct dnsmsg_rr rr[10];
	unsigned char base[2048], p[2048];
	const char *err;
	size_t blen, len, k, nmut, at;
	unsigned iter;
	int parsed = 0;

	rng_state = 0x9e3779b97f4a7c15ULL;
	sample(&m, &q, rr);
	ck_assert(dnsmsg_build(&m, base, sizeof(base), &blen, &err) == 0);
	for (iter = 0; iter < 200000; iter++) {
		memcpy(p, base, blen);
		len = blen;
		nmut = 1 + rng() % 4;
		for (k = 0; k < nmut; k++) {
			at = rng() % len;
			switch (rng() % 6) {
			case 0:		/* flip a bit */
				p[at] ^= (unsigned char)(1u << (rng() % 8));
				break;
			case 1:		/* any octet */
				p[at] = (unsigned char)rng();
				break;
			case 2:		/* an interesting octet */
				p[at] = (const unsigned char[]){ 0, 1, 0x3f, 0x40,
				    0x7f, 0x80, 0xc0, 0xff }[rng() % 8];
				break;
			case 3:		/* cut */
				len = at + 1;
				break;
			case 4:		/* a pointer somewhere */
				if (at + 1 < len) {
					unsigned v = rng() % (len + 16);

					p[at] = (unsigned char)(0xc0 | (v >> 8));
					p[at + 1] = (unsigned char)v;
				}
				break;
			default:	/* grow with random octets */
				if (len < sizeof(p) - 8) {
					size_t g = 1 + rng() % 8, j;

					for (j = 0; j < g; j++)
						p[len + j] = (unsigned char)rng();
					len += g;
				}
				break;
			}
		}
		/* Once in a while, the counts too. */
		if (rng() % 8 == 0)
			put16(p + 4 + 2 * (rng() % 4), rng() % 20);
		parsed += check_parsed(p, len);
	}
	/* Some mutants must still parse, or the test checks nothing. */
	ck_assert_msg(parsed > 1000, "only %d mutants parsed", parsed);

	/* Pure noise behind a plausible header. */
	for (iter = 0; iter < 50000; iter++) {
		len = 12 + rng() % 200;
		for (k = 0; k < len; k++)
			p[k] = (unsigned char)rng();
		hdr(p, rng() % 3, rng() % 4, rng() % 2, rng() % 2);
		check_parsed(p, len);
	}
}
END_TEST

static Suite *
dnsmsg_suite(void)
{
	Suite *s = suite_create("dnsmsg");
	TCase *tc;

	tc = tcase_create("names");
	tcase_add_test(tc, name_text_round_trip);
	tcase_add_test(tc, name_text_bad);
	tcase_add_test(tc, name_limits);
	tcase_add_test(tc, name_compare);
	tcase_add_test(tc, types);
	suite_add_tcase(s, tc);

	tc = tcase_create("round_trip");
	tcase_add_test(tc, build_parse_round_trip);
	tcase_add_test(tc, build_refuses_bad_input);
	tcase_add_test(tc, round_trip_long_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, hostile_short);
	tcase_add_test(tc, hostile_counts);
	tcase_add_test(tc, hostile_compression);
	tcase_add_test(tc, hostile_records);
	tcase_add_test(tc, random_mutations);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dnsmsg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
