/*
 * smtp_reply_fuzz: next-hop replies (common/smtp_reply.h).
 *
 * Input: what a next hop sends, split into lines at LF (a CR before the
 * LF is removed, as the client does). Lines are fed to one parser,
 * which is reset after each complete or broken reply. Checks:
 * - a complete reply has a code in 200..599, at most the line limit,
 *   text of printable ASCII and '\n' only, within the text limit, and an
 *   enhanced code that is valid for it or empty;
 * - formatting that reply for a client gives only CRLF-terminated lines
 *   of at most 512 octets, "code-" on all but the last, "code " last;
 * - the same holds when the raw input is formatted as reply text.
 */
#include "fuzz.h"

#include "buf.h"
#include "smtp_reply.h"

static void
reply_fuzz_check_format(const struct buf *out, int code)
{
	char want[4];
	size_t i = 0, ll;
	const char *nl;

	snprintf(want, sizeof(want), "%03d", code);
	FUZZ_CHECK(out->len >= 5, "formatted reply too short");
	while (i < out->len) {
		nl = memchr(out->data + i, '\n', out->len - i);
		FUZZ_CHECK(nl != NULL, "last line without LF");
		ll = (size_t)(nl - (out->data + i)) + 1;
		FUZZ_CHECK(ll >= 5 && out->data[i + ll - 2] == '\r',
		    "line without CRLF");
		FUZZ_CHECK(ll <= 512, "line of %zu octets", ll);
		FUZZ_CHECK(memcmp(out->data + i, want, 3) == 0, "wrong code");
		for (size_t k = 0; k < ll - 2; k++)
			FUZZ_CHECK(out->data[i + k] >= 0x20 &&
			    out->data[i + k] <= 0x7e, "byte %#x in a line",
			    (unsigned char)out->data[i + k]);
		i += ll;
		if (i < out->len)
			FUZZ_CHECK(out->data[i - ll + 3] == '-',
			    "continuation line without '-'");
		else
			FUZZ_CHECK(ll == 5 || out->data[i - ll + 3] == ' ',
			    "last line without ' '");
	}
}

static void
reply_fuzz_done(const struct smtp_reply *r)
{
	struct buf out = BUF_INIT;
	size_t i;

	FUZZ_CHECK(r->code >= 200 && r->code <= 599, "code %d", r->code);
	FUZZ_CHECK(r->nlines >= 1 && r->nlines <= SMTP_REPLY_LINES_MAX,
	    "%d lines", r->nlines);
	FUZZ_CHECK(r->text.len <= SMTP_REPLY_TEXT_MAX, "text of %zu",
	    r->text.len);
	FUZZ_CHECK(r->text.data != NULL && r->text.data[r->text.len] == '\0',
	    "text not NUL-terminated");
	for (i = 0; i < r->text.len; i++)
		FUZZ_CHECK(r->text.data[i] == '\n' || (r->text.data[i] >= 0x20 &&
		    r->text.data[i] <= 0x7e), "byte %#x in text",
		    (unsigned char)r->text.data[i]);
	FUZZ_CHECK(r->enh[0] == '\0' || smtp_enh_valid(r->enh, r->code) == 0,
	    "invalid enhanced code kept: %s", r->enh);

	FUZZ_CHECK(smtp_reply_format(&out, r->code, r->enh, r->text.data) == 0,
	    "a parsed reply does not format");
	reply_fuzz_check_format(&out, r->code);
	buf_free(&out);
}

/* The raw input as text of a reply we send: nothing of it may break out. */
static void
reply_fuzz_format_raw(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT;
	char *text, enh[16];
	int code;

	if (size < 3)
		return;
	code = 200 + (data[0] % 4) * 100 + data[1] % 100;
	/* RFC 3463 has classes 2, 4 and 5 only: no enhanced code on 3xx. */
	if (code / 100 == 3)
		enh[0] = '\0';
	else
		snprintf(enh, sizeof(enh), "%d.%u.%u", code / 100, data[2] % 8,
		    (unsigned)data[2] % 30);
	if ((text = malloc(size + 1)) == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	FUZZ_CHECK(smtp_reply_format(&out, code, enh, text) == 0,
	    "format refused valid code %d %s", code, enh);
	reply_fuzz_check_format(&out, code);
	buf_reset(&out);
	FUZZ_CHECK(smtp_reply_format(&out, code, NULL, text) == 0,
	    "format refused code %d", code);
	reply_fuzz_check_format(&out, code);
	buf_free(&out);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *nl, *err;
	struct smtp_reply r;
	enum smtp_reply_status st;
	size_t off = 0, ll;

	smtp_reply_init(&r);
	while (off < size) {
		nl = memchr(in + off, '\n', size - off);
		ll = nl ? (size_t)(nl - (in + off)) : size - off;
		err = NULL;
		st = smtp_reply_feed(&r, in + off,
		    ll > 0 && in[off + ll - 1] == '\r' ? ll - 1 : ll, &err);
		off += ll + (nl ? 1 : 0);
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st == SMTP_REPLY_DONE)
			reply_fuzz_done(&r);
		else
			FUZZ_CHECK(st == SMTP_REPLY_ERROR && err != NULL,
			    "status %d without a reason", (int)st);
		smtp_reply_reset(&r);
	}
	smtp_reply_free(&r);
	reply_fuzz_format_raw(data, size);
	return 0;
}
