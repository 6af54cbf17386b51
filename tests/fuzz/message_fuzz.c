/*
 * message_fuzz: re-serialisation for the next hop (proxy/message.h), with
 * the edits a policy can ask for.
 *
 * Input: a first line "OPH<subject text>", where O picks the subject
 * operation (byte % 4: none, prepend, append, replace), P the pass header
 * (byte % 3: none, the default, one whose name starts with a dot) and H
 * how many of the next lines are offered as added headers (byte % 4;
 * those policy_check_header() refuses are left out, as a policy load
 * would). The rest is the message content; it is brought to the form the
 * DATA receiver stores (CRLF line endings, no NUL) first. Checks:
 * - the wire form holds CR and LF only as CRLF pairs and exactly one
 *   terminator, every dot line stuffed;
 * - receiving it back gives the pass header and added headers first,
 *   then the content: unchanged when there is no subject edit, with the
 *   body unchanged when there is one;
 * - header text built from the subject can only break a line as a fold.
 */
#include "fuzz.h"

#include "buf.h"
#include "message.h"
#include "policy.h"
#include "smtp_data.h"

#define MESSAGE_FUZZ_NHDR	3

/* Only "\r\n " or "\r\n\t" (a fold) may break a header text. */
static void
message_fuzz_check_text(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		FUZZ_CHECK(b->data[i] != '\0', "NUL in header text");
		if (b->data[i] == '\r')
			FUZZ_CHECK(i + 2 < b->len && b->data[i + 1] == '\n' &&
			    (b->data[i + 2] == ' ' || b->data[i + 2] == '\t'),
			    "CR not starting a fold at %zu", i);
		if (b->data[i] == '\n')
			FUZZ_CHECK(i > 0 && b->data[i - 1] == '\r',
			    "bare LF in header text at %zu", i);
	}
}

/* Take one line (up to LF, a CR before it dropped) as a C string. */
static char *
message_fuzz_line(const char **p, const char *end, int keep_cr)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s;

	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	/* Bytes after a NUL are simply not part of the C string. */
	if (!keep_cr && n > 0 && s[n - 1] == '\r')
		s[n - 1] = '\0';
	*p += n + (nl ? 1 : 0);
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const pass_headers[] = {
		"", "X-Filter-Loop: Reflected", ".X-Dotted: first line",
	};
	const char *p, *end = (const char *)data + size, *pass;
	char *subject, *lines[MESSAGE_FUZZ_NHDR], *raw, *content, hv[16];
	const char *headers[MESSAGE_FUZZ_NHDR];
	struct message_edit edit;
	struct buf out = BUF_INIT, text = BUF_INIT, expect = BUF_INIT;
	struct smtp_data_rx rx;
	struct buf back = BUF_INIT;
	size_t i, n = 0, nl = 0, rawlen = 0, clen, hend, blen;
	long r;
	int done;

	if (size < 3)
		return 0;
	memset(&edit, 0, sizeof(edit));
	edit.subject_op = (enum policy_subject_op)(data[0] % 4);
	pass = pass_headers[data[1] % 3];
	n = data[2] % 4;
	p = (const char *)data + 3;
	subject = message_fuzz_line(&p, end, 1);
	edit.subject = subject;
	for (i = 0; i < n; i++) {
		lines[nl] = message_fuzz_line(&p, end, 0);
		if (policy_check_header(lines[nl]) == NULL)
			headers[edit.nheaders++] = lines[nl];
		nl++;
	}
	edit.headers = headers;

	/* What the DATA receiver would have stored: CRLF only, no NUL. */
	if ((raw = malloc((size_t)(end - p) + 1)) == NULL)
		abort();
	for (; p < end; p++)
		if (*p != '\0')
			raw[rawlen++] = *p;
	content = fuzz_normalize(raw, rawlen, &clen);

	FUZZ_CHECK(message_serialize(&out, pass, &edit, content, clen) == 0,
	    "serialize failed");
	fuzz_check_wire(out.data, out.len);

	smtp_data_rx_init(&rx, 0, 0);
	r = smtp_data_rx_feed(&rx, out.data, out.len, &back, &done);
	FUZZ_CHECK(done && r == (long)out.len && rx.flags == 0,
	    "wire form not received back cleanly (flags %#x)", rx.flags);

	if (*pass != '\0')
		buf_appendf(&expect, "%s\r\n", pass);
	for (i = 0; i < edit.nheaders; i++)
		buf_appendf(&expect, "%s\r\n", headers[i]);
	FUZZ_CHECK(back.len >= expect.len && (expect.len == 0 ||
	    memcmp(back.data, expect.data, expect.len) == 0),
	    "pass header or added headers not first");
	if (edit.subject_op == SUBJECT_NONE)
		FUZZ_CHECK(back.len == expect.len + clen && (clen == 0 ||
		    memcmp(back.data + expect.len, content, clen) == 0),
		    "content changed without an edit");
	else {
		hend = message_header_end(content, clen);
		blen = clen - hend;
		FUZZ_CHECK(back.len >= blen && (blen == 0 ||
		    memcmp(back.data + back.len - blen, content + hend,
		    blen) == 0), "body changed by a subject edit");
	}

	/* The look-ups the proxy uses, with a short destination. */
	message_header_value(content, clen, "Subject", hv, sizeof(hv));
	FUZZ_CHECK(strlen(hv) < sizeof(hv), "header value overflow");
	FUZZ_CHECK(message_header_text(&text, subject) == 0,
	    "header text failed");
	message_fuzz_check_text(&text);

	buf_free(&back);
	buf_free(&expect);
	buf_free(&text);
	buf_free(&out);
	free(content);
	free(raw);
	for (i = 0; i < nl; i++)
		free(lines[i]);
	free(subject);
	return 0;
}
