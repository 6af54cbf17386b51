/*
 * smtp_data_test: common/smtp_data.c.
 *
 * Every receive vector is checked against its expected result when fed
 * whole, split in two at every position, split in three at every pair of
 * positions (short vectors), and one byte at a time. A per-octet reference
 * decoder written here, with whole-buffer lookahead, is compared with the
 * streaming one on pseudo-random input built from the bytes that matter.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_data.h"

#define BARE_CR		SMTP_DATA_BARE_CR
#define BARE_LF		SMTP_DATA_BARE_LF
#define NUL		SMTP_DATA_NUL
#define LONG_LINE	SMTP_DATA_LONG_LINE
#define TOO_BIG		SMTP_DATA_TOO_BIG

struct rx_result {
	size_t		consumed;
	int		done;
	unsigned	flags;
	uint64_t	size;
	uint64_t	wire;
	unsigned	lines;
	struct buf	out;
};

static void
res_init(struct rx_result *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->out);
}

static char *
show(const char *p, size_t n)
{
	static char tmp[4][512];
	static int slot;
	char *d = tmp[slot++ % 4];
	size_t o = 0, i;

	for (i = 0; i < n && o + 8 < sizeof(tmp[0]); i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			d[o++] = (char)c;
		else
			o += (size_t)snprintf(d + o, 8, "\\x%02x", c);
	}
	if (i < n)
		o += (size_t)snprintf(d + o, 8, "...");
	d[o] = '\0';
	return d;
}

/*
 * Feed in[0..len) in chunks ending at cuts[] (and len). Every chunk must be
 * consumed whole unless it holds the end of data.
 */
static void
rx_chunks(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    size_t max_line, uint64_t max_size, struct rx_result *res)
{
	struct smtp_data_rx rx;
	size_t from = 0, to, k;
	long n;
	int done = 0;

	res_init(res);
	smtp_data_rx_init(&rx, max_line, max_size);
	for (k = 0; k <= ncuts && !done; k++) {
		to = k < ncuts ? cuts[k] : len;
		n = smtp_data_rx_feed(&rx, in + from, to - from, &res->out,
		    &done);
		ck_assert_int_ge(n, 0);
		ck_assert_uint_le((size_t)n, to - from);
		if (!done)
			ck_assert_msg((size_t)n == to - from,
			    "chunk not consumed whole: %ld of %zu",
			    n, to - from);
		res->consumed += (size_t)n;
		from = to;
	}
	res->done = done;
	res->flags = rx.flags;
	res->size = rx.size;
	res->wire = rx.wire;
	res->lines = rx.lines;
}

static void
res_eq(const struct rx_result *a, const struct rx_result *b, const char *what)
{
	ck_assert_msg(a->consumed == b->consumed && a->done == b->done &&
	    a->flags == b->flags && a->size == b->size && a->wire == b->wire &&
	    a->lines == b->lines && a->out.len == b->out.len &&
	    (a->out.len == 0 || memcmp(a->out.data, b->out.data,
	    a->out.len) == 0),
	    "%s: consumed %zu/%zu done %d/%d flags %#x/%#x size %ju/%ju "
	    "wire %ju/%ju lines %u/%u out \"%s\"/\"%s\"", what,
	    a->consumed, b->consumed, a->done, b->done, a->flags, b->flags,
	    (uintmax_t)a->size, (uintmax_t)b->size, (uintmax_t)a->wire,
	    (uintmax_t)b->wire, a->lines, b->lines,
	    show(a->out.data, a->out.len), show(b->out.data, b->out.len));
}

/* Whole, every 2-split, every 3-split (short input), one byte at a time. */
static void
rx_all_splits(const char *in, size_t len, size_t max_line, uint64_t max_size,
    struct rx_result *whole)
{
	struct rx_result r;
	size_t cuts[2], *bytes, i, j;
	char what[64];

	rx_chunks(in, len, NULL, 0, max_line, max_size, whole);
	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		rx_chunks(in, len, cuts, 1, max_line, max_size, &r);
		snprintf(what, sizeof(what), "split at %zu", i);
		res_eq(&r, whole, what);
		buf_free(&r.out);
	}
	if (len <= 48) {
		for (i = 0; i <= len; i++)
			for (j = i; j <= len; j++) {
				cuts[0] = i;
				cuts[1] = j;
				rx_chunks(in, len, cuts, 2, max_line, max_size,
				    &r);
				snprintf(what, sizeof(what),
				    "split at %zu,%zu", i, j);
				res_eq(&r, whole, what);
				buf_free(&r.out);
			}
	}
	bytes = calloc(len + 1, sizeof(*bytes));
	ck_assert_ptr_nonnull(bytes);
	for (i = 0; i < len; i++)
		bytes[i] = i + 1;
	rx_chunks(in, len, bytes, len, max_line, max_size, &r);
	res_eq(&r, whole, "byte at a time");
	buf_free(&r.out);
	free(bytes);
}

struct vec {
	const char	*name;
	const char	*in;
	size_t		 len;
	int		 done;
	size_t		 consumed;	/* SIZE_MAX: all of it */
	unsigned	 flags;
	const char	*content;	/* stored content */
	size_t		 clen;
	unsigned	 lines;
};

#define S(s)	s, sizeof(s) - 1
#define ALL	SIZE_MAX

/* Every vector starts right after the DATA command's CRLF. */
static const struct vec vecs[] = {
	/* clean ends */
	{ "empty message", S(".\r\n"), 1, 3, 0, S(""), 0 },
	{ "one line", S("a\r\n.\r\n"), 1, ALL, 0, S("a\r\n"), 1 },
	{ "empty line", S("\r\n.\r\n"), 1, ALL, 0, S("\r\n"), 1 },
	{ "next command not consumed", S("a\r\n.\r\nQUIT\r\n"), 1, 6, 0,
	    S("a\r\n"), 1 },
	{ "first end wins", S("a\r\n.\r\n.\r\n"), 1, 6, 0, S("a\r\n"), 1 },
	{ "pipelined garbage after end", S(".\r\n\n.\n\r"), 1, 3, 0, S(""), 0 },

	/* dot transparency */
	{ "double dot", S("..\r\n.\r\n"), 1, ALL, 0, S(".\r\n"), 1 },
	{ "dot x", S(".x\r\n.\r\n"), 1, ALL, 0, S("x\r\n"), 1 },
	{ "dot dot x", S("..x\r\n.\r\n"), 1, ALL, 0, S(".x\r\n"), 1 },
	{ "three dots", S("...\r\n.\r\n"), 1, ALL, 0, S("..\r\n"), 1 },
	{ "dot space", S(". \r\n.\r\n"), 1, ALL, 0, S(" \r\n"), 1 },
	{ "dot inside line", S("x.\r\n.y.\r\n.\r\n"), 1, ALL, 0,
	    S("x.\r\ny.\r\n"), 2 },
	{ "dot lines between", S("a\r\n..\r\nb\r\n.\r\n"), 1, ALL, 0,
	    S("a\r\n.\r\nb\r\n"), 3 },

	/* smuggling: none of these ends the data */
	{ "LF.LF", S("a\n.\nb\r\n.\r\n"), 1, ALL, BARE_LF, S("a"), 1 },
	{ "CR.CR", S("a\r.\rb\r\n.\r\n"), 1, ALL, BARE_CR, S("a"), 1 },
	{ "CRLF.LF", S("a\r\n.\nb\r\n.\r\n"), 1, ALL, BARE_LF, S("a\r\n"), 2 },
	{ "LF.CRLF", S("a\n.\r\nb\r\n.\r\n"), 1, ALL, BARE_LF, S("a"), 2 },
	{ "CRLF.CR CRLF", S("a\r\n.\r\r\nb\r\n.\r\n"), 1, ALL, BARE_CR,
	    S("a\r\n"), 3 },
	{ "CRLF NUL.CRLF", S("a\r\n\0.\r\nb\r\n.\r\n"), 1, ALL, NUL,
	    S("a\r\n"), 3 },
	{ "CRLF.CR x", S("a\r\n.\rb\r\n.\r\n"), 1, ALL, BARE_CR, S("a\r\n"), 2 },
	{ "CRLF.CR NUL", S("a\r\n.\r\0\r\n.\r\n"), 1, ALL, BARE_CR | NUL,
	    S("a\r\n"), 2 },
	{ "CRLF.LF.CRLF", S("a\r\n.\n.\r\n\r\n.\r\n"), 1, ALL, BARE_LF,
	    S("a\r\n"), 3 },
	{ "CR CRLF.CRLF", S("a\r\r\n.\r\n"), 1, ALL, BARE_CR, S("a"), 1 },
	{ "LF CRLF.CRLF", S("a\n\r\n.\r\n"), 1, ALL, BARE_LF, S("a"), 1 },
	{ "LF at start", S("\n.\r\nb\r\n.\r\n"), 1, ALL, BARE_LF, S(""), 2 },
	{ "CR at start", S("\r.\r\nb\r\n.\r\n"), 1, ALL, BARE_CR, S(""), 2 },
	{ "NUL at start", S("\0\r\n.\r\n"), 1, ALL, NUL, S(""), 1 },
	{ "space.CRLF", S("a\r\n .\r\nb\r\n.\r\n"), 1, ALL, 0,
	    S("a\r\n .\r\nb\r\n"), 3 },
	{ "CRLF..CRLF is a dot line", S("a\r\n..\r\n"), 0, ALL, 0,
	    S("a\r\n.\r\n"), 2 },

	/* no end at all: everything consumed, nothing pending decided */
	{ "LF.LF alone", S("a\n.\n"), 0, ALL, BARE_LF, S("a"), 0 },
	{ "CR.CR alone", S("a\r.\r"), 0, ALL, BARE_CR, S("a"), 0 },
	{ "LF.CRLF alone", S("a\n.\r\n"), 0, ALL, BARE_LF, S("a"), 1 },
	{ "CRLF.LF alone", S("a\r\n.\n"), 0, ALL, BARE_LF, S("a\r\n"), 1 },
	{ "CRLF.CR CRLF alone", S("a\r\n.\r\r\n"), 0, ALL, BARE_CR,
	    S("a\r\n"), 2 },
	{ "CRLF NUL.CRLF alone", S("a\r\n\0.\r\n"), 0, ALL, NUL, S("a\r\n"), 2 },
	{ "pending dot CR", S("a\r\n.\r"), 0, ALL, 0, S("a\r\n"), 1 },
	{ "pending CR", S("abc\r"), 0, ALL, 0, S("abc"), 0 },
	{ "pending dot", S("a\r\n."), 0, ALL, 0, S("a\r\n"), 1 },
	{ "nothing", S(""), 0, ALL, 0, S(""), 0 },
	{ "CR CR", S("\r\r"), 0, ALL, BARE_CR, S(""), 0 },
};

START_TEST(rx_vectors)
{
	const struct vec *v = &vecs[_i];
	struct rx_result r;
	size_t want = v->consumed == ALL ? v->len : v->consumed;

	rx_all_splits(v->in, v->len, 998, 0, &r);
	ck_assert_msg(r.done == v->done, "%s: done %d", v->name, r.done);
	ck_assert_msg(r.consumed == want, "%s: consumed %zu, want %zu",
	    v->name, r.consumed, want);
	ck_assert_msg(r.wire == want, "%s: wire %ju", v->name,
	    (uintmax_t)r.wire);
	ck_assert_msg(r.flags == v->flags, "%s: flags %#x, want %#x",
	    v->name, r.flags, v->flags);
	ck_assert_msg(r.out.len == v->clen &&
	    (v->clen == 0 || memcmp(r.out.data, v->content, v->clen) == 0),
	    "%s: content \"%s\", want \"%s\"", v->name,
	    show(r.out.data, r.out.len), show(v->content, v->clen));
	ck_assert_msg(r.lines == v->lines, "%s: lines %u, want %u", v->name,
	    r.lines, v->lines);
	if (v->flags == 0)
		ck_assert_uint_eq(r.size, r.out.len);
	buf_free(&r.out);
}
END_TEST

/* A buffer of n 'x' with optional prefix and suffix. */
static char *
mk(const char *pre, size_t n, const char *suf, size_t *len)
{
	size_t pl = strlen(pre), sl = strlen(suf);
	char *p = malloc(pl + n + sl + 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, pre, pl);
	memset(p + pl, 'x', n);
	memcpy(p + pl + n, suf, sl + 1);
	*len = pl + n + sl;
	return p;
}

START_TEST(rx_line_998_ok)
{
	struct rx_result r;
	size_t len;
	char *in = mk("", 998, "\r\n.\r\n", &len);

	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.out.len, 1000);
	ck_assert_mem_eq(r.out.data, in, 1000);
	buf_free(&r.out);
	free(in);
}
END_TEST

START_TEST(rx_line_999_long)
{
	struct rx_result r;
	size_t len;
	char *in = mk("", 999, "\r\n.\r\n", &len);

	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.flags, LONG_LINE);
	ck_assert_uint_eq(r.consumed, len);
	ck_assert_uint_eq(r.size, 1001);
	/* the octets within the limit are kept, nothing after */
	ck_assert_uint_eq(r.out.len, 998);
	buf_free(&r.out);
	free(in);
}
END_TEST

/* RFC 5321 4.5.3.1.6: the dot doubled for transparency does not count. */
START_TEST(rx_line_stuffed_dot_counts)
{
	struct rx_result r;
	size_t len;
	char *in;

	in = mk(".", 998, "\r\n.\r\n", &len);
	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.out.len, 1000);
	buf_free(&r.out);
	free(in);

	in = mk(".", 999, "\r\n.\r\n", &len);
	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_uint_eq(r.flags, LONG_LINE);
	ck_assert_int_eq(r.done, 1);
	buf_free(&r.out);
	free(in);
}
END_TEST

START_TEST(rx_dot_after_998_line)
{
	static const char tail[] = "\r\n.y\r\n..\r\n.\r\n";
	struct rx_result r;
	size_t len;
	char *in = mk("", 998, tail, &len);

	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.lines, 3);
	ck_assert_uint_eq(r.out.len, 998 + 2 + 3 + 3);
	ck_assert_mem_eq(r.out.data + 998, "\r\ny\r\n.\r\n", 8);
	buf_free(&r.out);
	free(in);
}
END_TEST

/* The count starts again on each line: two 998-octet lines are fine. */
START_TEST(rx_line_limit_resets)
{
	struct rx_result r;
	size_t len;
	char *in = mk("", 998 + 2 + 998, "\r\n.\r\n", &len);

	memcpy(in + 998, "\r\n", 2);
	rx_all_splits(in, len, 998, 0, &r);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.lines, 2);
	ck_assert_uint_eq(r.out.len, 2000);
	buf_free(&r.out);
	free(in);
}
END_TEST

START_TEST(rx_too_big)
{
	struct rx_result r;

	/* content "abc\r\n" is exactly 5 */
	rx_all_splits(S("abc\r\n.\r\n"), 998, 5, &r);
	ck_assert_uint_eq(r.flags, 0);
	ck_assert_uint_eq(r.size, 5);
	buf_free(&r.out);

	/* one more: the CRLF is not kept in halves */
	rx_all_splits(S("abcd\r\n.\r\n"), 998, 5, &r);
	ck_assert_uint_eq(r.flags, TOO_BIG);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.size, 6);
	ck_assert_uint_eq(r.out.len, 4);
	ck_assert_mem_eq(r.out.data, "abcd", 4);
	buf_free(&r.out);

	rx_all_splits(S("abcdefgh\r\nij\r\n.\r\nNOOP\r\n"), 998, 3, &r);
	ck_assert_uint_eq(r.flags, TOO_BIG);
	ck_assert_int_eq(r.done, 1);
	ck_assert_uint_eq(r.consumed, 17);
	ck_assert_uint_eq(r.size, 14);
	ck_assert_uint_eq(r.lines, 2);
	ck_assert_uint_eq(r.out.len, 3);
	buf_free(&r.out);
}
END_TEST

/* Once flagged, memory stays put however much arrives. */
START_TEST(rx_bounded_after_flag)
{
	struct smtp_data_rx rx;
	struct buf out = BUF_INIT;
	char chunk[4096];
	size_t kept;
	long n;
	int done, i;

	smtp_data_rx_init(&rx, 998, 0);
	n = smtp_data_rx_feed(&rx, S("hello\n"), &out, &done);
	ck_assert_int_eq(n, 6);
	ck_assert_uint_eq(rx.flags, BARE_LF);
	kept = out.len;
	memset(chunk, '\n', sizeof(chunk));
	for (i = 0; i < 1024; i++) {
		n = smtp_data_rx_feed(&rx, chunk, sizeof(chunk), &out, &done);
		ck_assert_int_eq(n, (long)sizeof(chunk));
	}
	ck_assert_uint_eq(out.len, kept);
	ck_assert_uint_eq(rx.size, 6 + 1024 * sizeof(chunk));
	n = smtp_data_rx_feed(&rx, S("\r\n.\r\n"), &out, &done);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(out.len, kept);
	buf_free(&out);

	/* clean but too big: never more than max_size kept */
	smtp_data_rx_init(&rx, 0, 1000);
	memset(chunk, 'a', sizeof(chunk));
	for (i = 0; i < 256; i++)
		ck_assert_int_eq(smtp_data_rx_feed(&rx, chunk, sizeof(chunk),
		    &out, &done), (long)sizeof(chunk));
	ck_assert_uint_eq(rx.flags, TOO_BIG);
	ck_assert_uint_le(out.len, 1000);
	ck_assert_uint_eq(rx.size, 256 * sizeof(chunk));
	buf_free(&out);
}
END_TEST

START_TEST(rx_after_done)
{
	struct smtp_data_rx rx;
	struct buf out = BUF_INIT;
	long n;
	int done = 0;

	smtp_data_rx_init(&rx, 998, 0);
	n = smtp_data_rx_feed(&rx, S("x\r\n.\r\n"), &out, &done);
	ck_assert_int_eq(n, 6);
	ck_assert_int_eq(done, 1);
	done = 0;
	n = smtp_data_rx_feed(&rx, S("more\r\n.\r\n"), &out, &done);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(out.len, 3);
	ck_assert_uint_eq(rx.wire, 6);
	buf_free(&out);
}
END_TEST

/* --- a per-octet reference decoder, for the differential test --- */

struct ref {
	size_t		 max_line, line_len;
	uint64_t	 max_size;
	struct rx_result *res;
};

static void
ref_octets(struct ref *rf, const char *p, size_t n, int crlf)
{
	struct rx_result *r = rf->res;
	size_t i;

	if (crlf) {
		r->size += 2;
		if (rf->max_size && r->size > rf->max_size)
			r->flags |= TOO_BIG;
		if (r->flags == 0)
			ck_assert_int_eq(buf_append(&r->out, "\r\n", 2), 0);
		return;
	}
	for (i = 0; i < n; i++) {
		if (rf->max_line && ++rf->line_len > rf->max_line)
			r->flags |= LONG_LINE;
		if (++r->size > rf->max_size && rf->max_size)
			r->flags |= TOO_BIG;
		if (r->flags == 0)
			ck_assert_int_eq(buf_append(&r->out, p + i, 1), 0);
	}
}

static void
ref_rx(const char *in, size_t len, size_t max_line, uint64_t max_size,
    struct rx_result *r)
{
	struct ref rf = { max_line, 0, max_size, r };
	size_t i = 0;
	int bol = 1;

	res_init(r);
	while (i < len) {
		if (bol) {
			bol = 0;
			if (in[i] == '.') {
				i++;	/* stuffing dot: not counted */
				if (i + 1 < len && in[i] == '\r' &&
				    in[i + 1] == '\n') {
					i += 2;
					r->done = 1;
					break;
				}
				if (i + 1 == len && in[i] == '\r') {
					i++;	/* undecided */
					break;
				}
				continue;
			}
		}
		if (in[i] == '\r') {
			if (i + 1 == len) {
				i++;	/* undecided */
				break;
			}
			if (in[i + 1] == '\n') {
				ref_octets(&rf, NULL, 2, 1);
				r->lines++;
				rf.line_len = 0;
				bol = 1;
				i += 2;
				continue;
			}
			r->flags |= BARE_CR;
		} else if (in[i] == '\n')
			r->flags |= BARE_LF;
		else if (in[i] == '\0')
			r->flags |= NUL;
		ref_octets(&rf, in + i, 1, 0);
		i++;
	}
	r->consumed = r->wire = i;
}

/* xorshift: fixed seed, so a failure reproduces. */
static uint32_t rng_state = 0x2545f491;

static uint32_t
rng(void)
{
	uint32_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

START_TEST(rx_differential)
{
	static const char alpha[] = { '\r', '\n', '.', '\0', 'a', 'b' };
	static const size_t lines[] = { 0, 2, 3, 5, 998 };
	static const uint64_t sizes[] = { 0, 4, 9, 1000 };
	char in[64];
	struct rx_result a, b;
	size_t len, i, cuts[3], max_line;
	uint64_t max_size;
	int iter;

	for (iter = 0; iter < 40000; iter++) {
		len = rng() % sizeof(in);
		for (i = 0; i < len; i++) {
			/* CRLF pairs often, so that dots reach line starts */
			if (i + 1 < len && rng() % 4 == 0) {
				in[i++] = '\r';
				in[i] = '\n';
			} else
				in[i] = alpha[rng() % sizeof(alpha)];
		}
		max_line = lines[rng() % 5];
		max_size = sizes[rng() % 4];
		ref_rx(in, len, max_line, max_size, &a);
		for (i = 0; i < 3; i++)
			cuts[i] = len ? rng() % (len + 1) : 0;
		if (cuts[0] > cuts[1]) {
			size_t t = cuts[0];

			cuts[0] = cuts[1];
			cuts[1] = t;
		}
		if (cuts[1] > cuts[2]) {
			size_t t = cuts[1];

			cuts[1] = cuts[2];
			cuts[2] = t;
		}
		if (cuts[0] > cuts[1]) {
			size_t t = cuts[0];

			cuts[0] = cuts[1];
			cuts[1] = t;
		}
		rx_chunks(in, len, cuts, 3, max_line, max_size, &b);
		if (a.flags != b.flags || a.consumed != b.consumed)
			fprintf(stderr, "iter %d in \"%s\" max_line %zu "
			    "max_size %ju\n", iter, show(in, len), max_line,
			    (uintmax_t)max_size);
		res_eq(&b, &a, "streaming vs reference");
		buf_free(&a.out);
		buf_free(&b.out);
	}
}
END_TEST

/* --- sending --- */

static void
stuff_is(const char *in, size_t len, const char *want, size_t wlen)
{
	struct buf out = BUF_INIT;

	ck_assert_int_eq(buf_append(&out, "X", 1), 0);	/* appends, keeps */
	ck_assert_int_eq(smtp_data_stuff(&out, in, len), 0);
	ck_assert_msg(out.len == wlen + 1 && memcmp(out.data + 1, want,
	    wlen) == 0, "stuff(\"%s\") = \"%s\", want \"%s\"", show(in, len),
	    show(out.data + 1, out.len - 1), show(want, wlen));
	ck_assert_int_eq(out.data[0], 'X');
	buf_free(&out);
}

START_TEST(stuff_vectors)
{
	stuff_is(S(""), S(".\r\n"));
	stuff_is(S("a"), S("a\r\n.\r\n"));
	stuff_is(S("a\r\n"), S("a\r\n.\r\n"));
	stuff_is(S("\r\n"), S("\r\n.\r\n"));
	stuff_is(S("."), S("..\r\n.\r\n"));
	stuff_is(S(".\r\n"), S("..\r\n.\r\n"));
	stuff_is(S(".\r\n..\r\nx.\r\n.y"), S("..\r\n...\r\nx.\r\n..y\r\n.\r\n"));
	/* bare line ends are sent as CRLF, and what follows is a line start */
	stuff_is(S("a\n.\n"), S("a\r\n..\r\n.\r\n"));
	stuff_is(S("a\r.\r"), S("a\r\n..\r\n.\r\n"));
	stuff_is(S("a\r\r\n.\r\n"), S("a\r\n\r\n..\r\n.\r\n"));
	stuff_is(S("a\n\r\n"), S("a\r\n\r\n.\r\n"));
	stuff_is(S("\n"), S("\r\n.\r\n"));
	stuff_is(S("\r"), S("\r\n.\r\n"));
	stuff_is(S("a\0b\r\n"), S("a\0b\r\n.\r\n"));
}
END_TEST

/* CR and LF only as CRLF pairs; "\r\n.\r\n" (or a leading ".\r\n") once, at the end. */
static void
check_wire_form(const char *w, size_t n)
{
	size_t i, ends = 0;

	ck_assert_uint_ge(n, 3);
	for (i = 0; i < n; i++) {
		if (w[i] == '\r')
			ck_assert_msg(i + 1 < n && w[i + 1] == '\n',
			    "bare CR at %zu in \"%s\"", i, show(w, n));
		if (w[i] == '\n')
			ck_assert_msg(i > 0 && w[i - 1] == '\r',
			    "bare LF at %zu in \"%s\"", i, show(w, n));
		if ((i == 0 || (i >= 2 && w[i - 2] == '\r' &&
		    w[i - 1] == '\n')) && i + 3 <= n &&
		    memcmp(w + i, ".\r\n", 3) == 0)
			ends++;
	}
	ck_assert_uint_eq(ends, 1);
	ck_assert_mem_eq(w + n - 3, ".\r\n", 3);
}

START_TEST(stuff_random_dirty)
{
	static const char alpha[] = { '\r', '\n', '.', '\0', 'a', ' ' };
	struct buf out = BUF_INIT;
	struct rx_result r;
	char in[80];
	size_t len, i;
	int iter, has_nul;

	for (iter = 0; iter < 20000; iter++) {
		len = rng() % sizeof(in);
		has_nul = 0;
		for (i = 0; i < len; i++) {
			in[i] = alpha[rng() % sizeof(alpha)];
			has_nul |= in[i] == '\0';
		}
		buf_reset(&out);
		ck_assert_int_eq(smtp_data_stuff(&out, in, len), 0);
		check_wire_form(out.data, out.len);
		/* our receiver agrees: one end, exactly at the end */
		rx_chunks(out.data, out.len, NULL, 0, 0, 0, &r);
		ck_assert_int_eq(r.done, 1);
		ck_assert_uint_eq(r.consumed, out.len);
		ck_assert_uint_eq(r.flags, has_nul ? NUL : 0);
		buf_free(&r.out);
	}
	buf_free(&out);
}
END_TEST

/*
 * Clean content (CRLF lines) c and its wire form x, the latter built here
 * independently: rx(x) == c and stuff(c) == x.
 */
START_TEST(stuff_round_trip)
{
	static const char alpha[] = { '.', '.', 'a', ' ', 'z', '\t' };
	struct buf c = BUF_INIT, x = BUF_INIT, s = BUF_INIT;
	struct rx_result r;
	size_t nlines, l, ll, i;
	int iter;
	char ch;

	for (iter = 0; iter < 5000; iter++) {
		buf_reset(&c);
		buf_reset(&x);
		buf_reset(&s);
		nlines = rng() % 6;
		for (l = 0; l < nlines; l++) {
			ll = rng() % 5;
			for (i = 0; i < ll; i++) {
				ch = alpha[rng() % sizeof(alpha)];
				if (i == 0 && ch == '.')
					ck_assert_int_eq(buf_append(&x, ".", 1), 0);
				ck_assert_int_eq(buf_append(&c, &ch, 1), 0);
				ck_assert_int_eq(buf_append(&x, &ch, 1), 0);
			}
			ck_assert_int_eq(buf_append(&c, "\r\n", 2), 0);
			ck_assert_int_eq(buf_append(&x, "\r\n", 2), 0);
		}
		ck_assert_int_eq(buf_append(&x, ".\r\n", 3), 0);

		rx_chunks(x.data, x.len, NULL, 0, 998, 0, &r);
		ck_assert_int_eq(r.done, 1);
		ck_assert_uint_eq(r.consumed, x.len);
		ck_assert_uint_eq(r.flags, 0);
		ck_assert_uint_eq(r.lines, nlines);
		ck_assert_uint_eq(r.out.len, c.len);
		if (c.len)
			ck_assert_mem_eq(r.out.data, c.data, c.len);

		ck_assert_int_eq(smtp_data_stuff(&s, r.out.data, r.out.len), 0);
		ck_assert_uint_eq(s.len, x.len);
		ck_assert_mem_eq(s.data, x.data, x.len);
		buf_free(&r.out);
	}
	buf_free(&c);
	buf_free(&x);
	buf_free(&s);
}
END_TEST

static Suite *
data_suite(void)
{
	Suite *s = suite_create("smtp_data");
	TCase *tc;

	tc = tcase_create("rx");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, rx_vectors, 0,
	    (int)(sizeof(vecs) / sizeof(vecs[0])));
	tcase_add_test(tc, rx_line_998_ok);
	tcase_add_test(tc, rx_line_999_long);
	tcase_add_test(tc, rx_line_stuffed_dot_counts);
	tcase_add_test(tc, rx_dot_after_998_line);
	tcase_add_test(tc, rx_line_limit_resets);
	tcase_add_test(tc, rx_too_big);
	tcase_add_test(tc, rx_bounded_after_flag);
	tcase_add_test(tc, rx_after_done);
	tcase_add_test(tc, rx_differential);
	suite_add_tcase(s, tc);

	tc = tcase_create("stuff");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stuff_vectors);
	tcase_add_test(tc, stuff_random_dirty);
	tcase_add_test(tc, stuff_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(data_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
