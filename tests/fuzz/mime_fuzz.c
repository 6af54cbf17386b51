/*
 * mime_fuzz: the MIME parser (proxy/mime.h) under small limits, so that
 * every limit is reached by inputs of a few kilobytes.
 *
 * Input: a message as the proxy holds it after DATA. Every accessor is
 * called and every byte it hands out is read (ASan checks the bounds).
 * Checks: the limits hold; the accessors agree with each other; strings
 * are NUL-terminated where the header says so; content types are
 * lowercase; a malformation bit (bare LF aside) comes with
 * MIME_MALFORMED; the text is built once and cached.
 */
#include "fuzz.h"

#include "buf.h"
#include "mime.h"

#define MIME_FUZZ_DEPTH		4
#define MIME_FUZZ_PARTS		24
#define MIME_FUZZ_HEADERS	24
#define MIME_FUZZ_DECODED	8192

/* Read every byte, so a bad pointer or length shows up here. */
static unsigned
mime_fuzz_touch(const char *p, size_t len)
{
	unsigned sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum += (unsigned char)p[i];
	return sum;
}

static int
mime_fuzz_caseeq(const char *a, size_t alen, const char *b)
{
	size_t i;

	if (strlen(b) != alen)
		return 0;
	for (i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return 0;
	}
	return 1;
}

/* mime_header() and mime_header_count() against the field list. */
static void
mime_fuzz_lookup(const struct mime_msg *m, const char *name)
{
	const char *v, *fname, *w;
	size_t i, n = 0, len, wlen, fnl;

	for (i = 0; i < mime_nheaders(m); i++) {
		v = mime_header_at(m, i, &fname, &fnl, &len);
		if (!mime_fuzz_caseeq(fname, fnl, name))
			continue;
		w = mime_header(m, name, n, &wlen);
		FUZZ_CHECK(w == v && wlen == len, "mime_header(%s, %zu)", name,
		    n);
		n++;
	}
	FUZZ_CHECK(mime_header_count(m, name) == n, "count of %s", name);
	FUZZ_CHECK(mime_header(m, name, n, &len) == NULL, "past the end");
}

static void
mime_fuzz_headers(const struct mime_msg *m, unsigned *sum)
{
	static const char *const names[] = {
		"subject", "From", "TO", "content-type",
		"Content-Transfer-Encoding", "x-mailer", "received",
	};
	const char *v, *name;
	size_t i, n, len, namelen;

	n = mime_nheaders(m);
	FUZZ_CHECK(n <= MIME_FUZZ_HEADERS, "%zu headers kept", n);
	for (i = 0; i < n; i++) {
		v = mime_header_at(m, i, &name, &namelen, &len);
		FUZZ_CHECK(v != NULL && name != NULL, "header %zu missing", i);
		*sum += mime_fuzz_touch(name, namelen);
		*sum += mime_fuzz_touch(v, len);
	}
	FUZZ_CHECK(mime_header_at(m, n, &name, &namelen, &len) == NULL,
	    "header past the end");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		mime_fuzz_lookup(m, names[i]);
}

static void
mime_fuzz_attachments(const struct mime_msg *m, unsigned *sum)
{
	const struct mime_attachment *a;
	size_t i, n, k;

	n = mime_nattachments(m);
	for (i = 0; i < n; i++) {
		a = mime_attachment(m, i);
		FUZZ_CHECK(a != NULL, "attachment %zu missing", i);
		FUZZ_CHECK(a->depth <= MIME_FUZZ_DEPTH, "depth %u", a->depth);
		FUZZ_CHECK(a->size == 0 || a->content != NULL, "no content");
		*sum += mime_fuzz_touch(a->content, a->size);
		if (a->filename != NULL) {
			*sum += mime_fuzz_touch(a->filename, a->filename_len);
			FUZZ_CHECK(a->filename[a->filename_len] == '\0',
			    "filename not NUL-terminated");
		}
		FUZZ_CHECK(a->content_type != NULL, "no content type");
		for (k = 0; a->content_type[k] != '\0'; k++)
			FUZZ_CHECK(!(a->content_type[k] >= 'A' &&
			    a->content_type[k] <= 'Z'),
			    "content type not lowercase: %s", a->content_type);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_limits lim;
	struct mime_msg *m;
	struct buf dec = BUF_INIT;
	const char *text, *again, *subj;
	char fl[64], tiny[8];
	size_t tlen, alen, slen;
	unsigned flags, sum = 0;
	volatile unsigned sink;

	mime_limits_default(&lim);
	lim.max_depth = MIME_FUZZ_DEPTH;
	lim.max_parts = MIME_FUZZ_PARTS;
	lim.max_headers = MIME_FUZZ_HEADERS;
	lim.max_decoded = MIME_FUZZ_DECODED;
	if ((m = mime_parse((const char *)data, size, &lim)) == NULL)
		abort();

	/*
	 * At the limit, each open multipart keeps the rest of its body as
	 * one raw part (so nothing escapes scanning): at most one more per
	 * level, plus the top.
	 */
	FUZZ_CHECK(mime_nparts(m) <= MIME_FUZZ_PARTS + MIME_FUZZ_DEPTH + 1,
	    "%zu parts", mime_nparts(m));
	mime_fuzz_headers(m, &sum);
	if ((subj = mime_subject(m, &slen)) != NULL) {
		sum += mime_fuzz_touch(subj, slen);
		FUZZ_CHECK(subj[slen] == '\0', "subject not NUL-terminated");
	}
	text = mime_text(m, &tlen);
	FUZZ_CHECK(text != NULL, "mime_text failed");
	sum += mime_fuzz_touch(text, tlen);
	FUZZ_CHECK(text[tlen] == '\0', "text not NUL-terminated");
	again = mime_text(m, &alen);
	FUZZ_CHECK(again == text && alen == tlen, "text not cached");
	mime_fuzz_attachments(m, &sum);

	/* Bare LF is tolerated, not malformed (mime_test lf_only). */
	flags = mime_flags(m);
	if (flags & ~(unsigned)(MIME_TRUNCATED | MIME_DEPTH | MIME_PARTS |
	    MIME_HEADERS | MIME_MALFORMED | MIME_BARE_LF))
		FUZZ_CHECK(flags & MIME_MALFORMED, "flags %#x without MALFORMED",
		    flags);
	mime_strflags(flags, fl, sizeof(fl));
	mime_strflags(flags, tiny, sizeof(tiny));
	FUZZ_CHECK(strlen(tiny) < sizeof(tiny), "strflags overflow");

	FUZZ_CHECK(mime_decode_header(&dec, (const char *)data,
	    size < 4096 ? size : 4096) == 0, "decode_header failed");
	sum += mime_fuzz_touch(dec.data, dec.len);
	buf_free(&dec);
	mime_free(m);
	sink = sum;
	(void)sink;
	return 0;
}
