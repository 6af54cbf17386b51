/*
 * smtp_data_fuzz: the DATA line state machine (common/smtp_data.h).
 *
 * Input: byte 0 picks where the stream is split, byte 1 the limits, the
 * rest is what a client sends after 354. Checks:
 * - fed whole, fed in two pieces at the split and fed one byte at a time,
 *   the receiver ends in the same state with the same content;
 * - bytes after the end of data are left for the next command;
 * - smtp_data_stuff() of that content (and of the raw stream) holds CR
 *   and LF only as CRLF pairs and exactly one terminator, and receiving
 *   it again gives back the content.
 */
#include "fuzz.h"

#include "buf.h"
#include "smtp_data.h"

struct data_fuzz_run {
	struct smtp_data_rx	 rx;
	struct buf		 out;
	size_t			 consumed;
	int			 done;
};

static void
data_fuzz_limits(uint8_t sel, size_t *max_line, uint64_t *max_size)
{
	/* None for a quarter of the values; else small, so limits are hit. */
	*max_line = (sel & 0x03) == 1 ? (size_t)(sel >> 2) : 0;
	*max_size = (sel & 0x03) == 2 ? (uint64_t)(sel >> 2) * 4 : 0;
	if ((sel & 0x03) == 3) {
		*max_line = 1 + (sel >> 5);
		*max_size = 1 + ((sel >> 2) & 0x07) * 3;
	}
}

/* Feed in at most two pieces (cut == len: one piece). */
static void
data_fuzz_feed(struct data_fuzz_run *run, const char *in, size_t len,
    size_t cut, size_t step, size_t max_line, uint64_t max_size)
{
	size_t off = 0, n;
	long r;
	int done = 0;

	smtp_data_rx_init(&run->rx, max_line, max_size);
	buf_init(&run->out);
	run->consumed = 0;
	run->done = 0;
	while (off < len) {
		n = step ? step : (off < cut ? cut - off : len - off);
		if (n > len - off)
			n = len - off;
		r = smtp_data_rx_feed(&run->rx, in + off, n, &run->out, &done);
		FUZZ_CHECK(r >= 0 && (size_t)r <= n, "feed returned %ld of %zu",
		    r, n);
		run->consumed += (size_t)r;
		if (done) {
			run->done = 1;
			off += (size_t)r;
			break;
		}
		FUZZ_CHECK((size_t)r == n, "stopped early without done");
		off += n;
	}
	if (run->done) {
		/* Whatever follows belongs to the next command. */
		r = smtp_data_rx_feed(&run->rx, in + off, len - off, &run->out,
		    &done);
		FUZZ_CHECK(r == 0 && done, "fed after the end: %ld", r);
	}
}

static void
data_fuzz_same(const struct data_fuzz_run *a, const struct data_fuzz_run *b,
    const char *how)
{
	FUZZ_CHECK(a->consumed == b->consumed, "%s: consumed %zu vs %zu", how,
	    a->consumed, b->consumed);
	FUZZ_CHECK(a->done == b->done, "%s: done differs", how);
	FUZZ_CHECK(a->rx.flags == b->rx.flags, "%s: flags %#x vs %#x", how,
	    a->rx.flags, b->rx.flags);
	FUZZ_CHECK(a->rx.size == b->rx.size && a->rx.wire == b->rx.wire &&
	    a->rx.lines == b->rx.lines, "%s: counters differ", how);
	FUZZ_CHECK(a->out.len == b->out.len && (a->out.len == 0 ||
	    memcmp(a->out.data, b->out.data, a->out.len) == 0),
	    "%s: stored content differs", how);
}

/* Stuff content, check the wire form, receive it back. */
static void
data_fuzz_roundtrip(const char *content, size_t len, const char *expect,
    size_t elen)
{
	struct buf wire = BUF_INIT;
	struct data_fuzz_run back;

	FUZZ_CHECK(smtp_data_stuff(&wire, content, len) == 0, "stuff failed");
	fuzz_check_wire(wire.data, wire.len);
	data_fuzz_feed(&back, wire.data, wire.len, wire.len, 0, 0, 0);
	FUZZ_CHECK(back.done && back.consumed == wire.len,
	    "end of data not found exactly at the end of the stuffed form");
	if (memchr(content, '\0', len) == NULL) {
		FUZZ_CHECK(back.rx.flags == 0, "flags %#x on stuffed form",
		    back.rx.flags);
		FUZZ_CHECK(back.out.len == elen && (elen == 0 ||
		    memcmp(back.out.data, expect, elen) == 0),
		    "unstuffing does not give back the content");
	} else
		FUZZ_CHECK(back.rx.flags == SMTP_DATA_NUL, "flags %#x with NUL",
		    back.rx.flags);
	buf_free(&back.out);
	buf_free(&wire);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_fuzz_run whole, split, bytes;
	const char *in;
	char *norm;
	size_t len, cut, max_line, nlen;
	uint64_t max_size;

	if (size < 2)
		return 0;
	in = (const char *)data + 2;
	len = size - 2;
	cut = len ? data[0] % (len + 1) : 0;
	data_fuzz_limits(data[1], &max_line, &max_size);

	data_fuzz_feed(&whole, in, len, len, 0, max_line, max_size);
	data_fuzz_feed(&split, in, len, cut, 0, max_line, max_size);
	data_fuzz_feed(&bytes, in, len, len, 1, max_line, max_size);
	data_fuzz_same(&whole, &split, "split");
	data_fuzz_same(&whole, &bytes, "byte by byte");

	FUZZ_CHECK(whole.rx.wire == whole.consumed, "wire counter");
	/* Only <CRLF>.<CRLF> ends data (or "." right after the 354). */
	if (whole.done)
		FUZZ_CHECK(whole.consumed >= 3 &&
		    memcmp(in + whole.consumed - 3, ".\r\n", 3) == 0 &&
		    (whole.consumed == 3 || (whole.consumed >= 5 &&
		    memcmp(in + whole.consumed - 5, "\r\n", 2) == 0)),
		    "data ended at offset %zu without CRLF.CRLF",
		    whole.consumed);
	FUZZ_CHECK(whole.out.len <= whole.rx.size, "stored more than counted");
	if (max_size != 0)
		FUZZ_CHECK(whole.out.len <= max_size, "stored over max_size");
	/* Whatever the flags, what was stored has no NUL and no bare CR/LF. */
	for (size_t i = 0; i < whole.out.len; i++) {
		FUZZ_CHECK(whole.out.data[i] != '\0', "NUL stored at %zu", i);
		if (whole.out.data[i] == '\r')
			FUZZ_CHECK(i + 1 < whole.out.len &&
			    whole.out.data[i + 1] == '\n', "bare CR stored at %zu",
			    i);
		if (whole.out.data[i] == '\n')
			FUZZ_CHECK(i > 0 && whole.out.data[i - 1] == '\r',
			    "bare LF stored at %zu", i);
	}
	if (whole.rx.flags == 0) {
		FUZZ_CHECK(whole.out.len == whole.rx.size, "size counter");
		/* Stored content is CRLF-clean, so stuffing changes no line. */
		norm = fuzz_normalize(whole.out.data ? whole.out.data : "",
		    whole.out.len, &nlen);
		FUZZ_CHECK(!whole.done || nlen == whole.out.len,
		    "complete content is not CRLF-clean");
		data_fuzz_roundtrip(whole.out.data ? whole.out.data : "",
		    whole.out.len, norm, nlen);
		free(norm);
	}

	/* Whatever a client sent, stuffing it yields a clean wire form. */
	norm = fuzz_normalize(in, len, &nlen);
	data_fuzz_roundtrip(in, len, norm, nlen);
	free(norm);

	buf_free(&whole.out);
	buf_free(&split.out);
	buf_free(&bytes.out);
	return 0;
}
