/*
 * message_test: proxy/message.c. Header look-ups (message_header_end,
 * message_find_header, message_header_value), header text
 * (message_header_text: ASCII, control bytes, RFC 2047 for UTF-8) and the
 * re-serialisation for the next hop (message_serialize), with and without
 * policy edits.
 *
 * What message_serialize writes is read back with a dot-unstuffer written
 * here (not the codec under test elsewhere): the wire must be CRLF lines
 * ending in exactly one ".", and the unstuffed content must equal the
 * original with only the pass header, the added headers and the subject
 * change. RFC 2047 output is decoded here as well, and through
 * mime_decode_header / mime_subject, which is what the policies of a
 * second proxy would see.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "message.h"
#include "mime.h"

#define PASS	"X-Filter-Loop: Reflected"

/*
 * Wire format -> content. Fails the test unless every line ends in CRLF,
 * there is no bare CR or LF, and the only "." line is the last one.
 */
static char *
unstuff(const char *w, size_t wlen, size_t *outlen)
{
	char *out = malloc(wlen + 1);
	size_t i = 0, o = 0;
	int ended = 0;

	ck_assert_ptr_nonnull(out);
	while (i < wlen) {
		const char *lf = memchr(w + i, '\n', wlen - i);
		size_t l;

		ck_assert_msg(!ended, "bytes after the final \".\": %.*s",
		    (int)(wlen - i), w + i);
		ck_assert_msg(lf != NULL, "last line has no LF: %.*s",
		    (int)(wlen - i), w + i);
		l = (size_t)(lf - (w + i));
		ck_assert_msg(l >= 1 && w[i + l - 1] == '\r',
		    "bare LF at %zu", i + l);
		ck_assert_msg(memchr(w + i, '\r', l - 1) == NULL,
		    "bare CR in line at %zu", i);
		if (l == 2 && w[i] == '.') {
			ended = 1;
			i += 3;
			continue;
		}
		if (w[i] == '.') {
			/* A stuffed line: the receiver drops the first dot. */
			memcpy(out + o, w + i + 1, l);
			o += l;
		} else {
			memcpy(out + o, w + i, l + 1);
			o += l + 1;
		}
		i += l + 1;
	}
	ck_assert_msg(ended, "no final \".\" line");
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Serialize, check the wire, compare the content with want. */
static void
check_serialize(const char *pass, const struct message_edit *e,
    const char *content, const char *want)
{
	struct buf w = BUF_INIT;
	size_t len;
	char *got;

	ck_assert_int_eq(message_serialize(&w, pass, e, content,
	    strlen(content)), 0);
	got = unstuff(w.data, w.len, &len);
	ck_assert_msg(len == strlen(want) && memcmp(got, want, len) == 0,
	    "serialized content\n--- got ---\n%s\n--- want ---\n%s", got, want);
	free(got);
	buf_free(&w);
}

static struct message_edit
edit_subject(enum policy_subject_op op, const char *text)
{
	struct message_edit e;

	memset(&e, 0, sizeof(e));
	e.subject_op = op;
	e.subject = text;
	return e;
}

/* message_header_end */

START_TEST(header_end)
{
	static const struct {
		const char	*c;
		size_t		 want;
	} cases[] = {
		{ "A: b\r\n\r\nbody\r\n", 8 },
		{ "A: b\r\nC: d\r\n e\r\n\r\nbody\r\n\r\nmore\r\n", 18 },
		{ "A: b\r\n\r\n", 8 },
		{ "\r\nbody only\r\n", 2 },	/* empty header */
		{ "\r\n", 2 },
		{ "A: b\r\nC: d\r\n", 12 },	/* no separator: all header */
		{ "A: b", 4 },
		{ "A: b\r\n\r", 7 },
		{ "", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(message_header_end(cases[i].c,
		    strlen(cases[i].c)) == cases[i].want, "case %zu: %zu != %zu",
		    i, message_header_end(cases[i].c, strlen(cases[i].c)),
		    cases[i].want);
}
END_TEST

/* message_find_header */

static void
find_ok(const char *c, const char *name, const char *field)
{
	size_t s = 999, e = 999;
	const char *p = strstr(c, field);

	ck_assert_ptr_nonnull(p);
	ck_assert_msg(message_find_header(c, strlen(c), name, &s, &e) == 0,
	    "%s not found in %s", name, c);
	ck_assert_msg(s == (size_t)(p - c) && e == s + strlen(field),
	    "%s: [%zu, %zu) instead of [%zu, %zu)", name, s, e,
	    (size_t)(p - c), (size_t)(p - c) + strlen(field));
}

static void
find_none(const char *c, const char *name)
{
	size_t s, e;

	ck_assert_msg(message_find_header(c, strlen(c), name, &s, &e) == -1,
	    "%s found in %s", name, c);
}

START_TEST(find_header)
{
	const char *c = "From: a@x\r\n"
	    "X-Subject: not this\r\n"
	    "Subject-Line: nor this\r\n"
	    "subject: first\r\n"
	    " folded\r\n"
	    "\tagain\r\n"
	    "Subject: second\r\n"
	    "To: b@y\r\n"
	    "\r\n"
	    "Cc: in the body\r\n"
	    " Subject: in the body\r\n";

	find_ok(c, "Subject", "subject: first\r\n folded\r\n\tagain\r\n");
	find_ok(c, "SUBJECT", "subject: first\r\n folded\r\n\tagain\r\n");
	find_ok(c, "From", "From: a@x\r\n");
	find_ok(c, "To", "To: b@y\r\n");
	find_ok(c, "x-subject", "X-Subject: not this\r\n");
	find_none(c, "Cc");		/* only in the body */
	find_none(c, "Subj");
	find_none(c, "Date");
	/* No separator: the last field runs to the end. */
	find_ok("A: 1\r\nSubject: end\r\n", "Subject", "Subject: end\r\n");
	find_ok("A: 1\r\nSubject: end\r\n more", "Subject",
	    "Subject: end\r\n more");
	/* Empty header: nothing is a field. */
	find_none("\r\nSubject: x\r\n", "Subject");
	find_ok("Subject:x\r\n\r\n", "Subject", "Subject:x\r\n");
}
END_TEST

/* message_header_value */

START_TEST(header_value)
{
	const char *c = "Subject:   lots   of\r\n   space \r\n\tand tabs  \r\n"
	    "Message-ID: <id@x>\r\n"
	    "Empty:\r\n"
	    "Blank:    \r\n"
	    "Tight:x\r\n"
	    "\r\n"
	    "Body: no\r\n";
	char dst[64];

	ck_assert_str_eq(message_header_value(c, strlen(c), "subject", dst,
	    sizeof(dst)), "lots of space and tabs");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Message-ID", dst,
	    sizeof(dst)), "<id@x>");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Empty", dst,
	    sizeof(dst)), "");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Blank", dst,
	    sizeof(dst)), "");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Tight", dst,
	    sizeof(dst)), "x");
	memcpy(dst, "junk", 5);
	ck_assert_str_eq(message_header_value(c, strlen(c), "Body", dst,
	    sizeof(dst)), "");
	/* Cut to dstsz - 1, always terminated. */
	ck_assert_str_eq(message_header_value(c, strlen(c), "Subject", dst, 5),
	    "lots");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Subject", dst, 6),
	    "lots ");
	ck_assert_str_eq(message_header_value(c, strlen(c), "Subject", dst, 1),
	    "");
}
END_TEST

/* dstsz 0: nothing may be written, not even a NUL. */
START_TEST(header_value_zero_size)
{
	char guard[2] = { 'G', 'H' };

	message_header_value("A: b\r\n\r\n", 8, "A", guard, 0);
	ck_assert_msg(guard[0] == 'G', "wrote into a 0-byte buffer");
}
END_TEST

/* message_header_text */

static const char *
header_text(const char *in)
{
	static struct buf b;

	buf_free(&b);
	ck_assert_int_eq(message_header_text(&b, in), 0);
	return buf_cstr(&b) ? b.data : "";
}

START_TEST(header_text_ascii)
{
	ck_assert_str_eq(header_text("[ENCRYPT] "), "[ENCRYPT] ");
	ck_assert_str_eq(header_text(""), "");
	ck_assert_str_eq(header_text("=?not-a-word?="), "=?not-a-word?=");
	/* Control bytes (CR and LF included) become spaces: never a new line. */
	ck_assert_str_eq(header_text("a\tb\x01" "c\x7f" "d\r\nBcc: x@y"),
	    "a b c d  Bcc: x@y");
}
END_TEST

static int
b64val(char c)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(t, c) : NULL;

	return p ? (int)(p - t) : -1;
}

/* Decode base64 text[0..n) into out; -1 if malformed. */
static int
b64dec(const char *t, size_t n, struct buf *out)
{
	size_t i;

	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		int v[4], k;
		unsigned char o[3];

		for (k = 0; k < 4; k++)
			v[k] = t[i + k] == '=' ? 0 : b64val(t[i + k]);
		if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
			return -1;
		o[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		o[1] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		o[2] = (unsigned char)((v[2] & 3) << 6 | v[3]);
		k = t[i + 2] == '=' ? 1 : t[i + 3] == '=' ? 2 : 3;
		buf_append(out, o, (size_t)k);
	}
	return 0;
}

static int
utf8_valid(const unsigned char *p, size_t n)
{
	size_t i = 0, k, len;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		len = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
		if (len == 0 || i + len > n)
			return 0;
		for (k = 1; k < len; k++)
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/*
 * RFC 2047 with an independent decoder: the text is a series of
 * "=?UTF-8?B?...?=" words separated by CRLF SP; each at most 75
 * characters and an integral number of characters (section 5); together
 * they decode to the input.
 */
static void
check_words(const char *enc, const char *want)
{
	struct buf all = BUF_INIT, one = BUF_INIT;
	const char *p = enc;

	for (;;) {
		const char *q;
		size_t wl;

		ck_assert_msg(strncasecmp(p, "=?UTF-8?B?", 10) == 0,
		    "not an encoded-word at \"%s\"", p);
		q = strstr(p + 10, "?=");
		ck_assert_ptr_nonnull(q);
		wl = (size_t)(q + 2 - p);
		ck_assert_msg(wl <= 75, "encoded-word of %zu characters", wl);
		buf_reset(&one);
		ck_assert_int_eq(b64dec(p + 10, (size_t)(q - p - 10), &one), 0);
		ck_assert_msg(utf8_valid((unsigned char *)one.data, one.len),
		    "a word splits a character: %.*s", (int)wl, p);
		buf_append(&all, one.data, one.len);
		p = q + 2;
		if (*p == '\0')
			break;
		ck_assert_msg(strncmp(p, "\r\n ", 3) == 0,
		    "words not folded with CRLF SP: \"%s\"", p);
		p += 3;
	}
	buf_cstr(&all);
	ck_assert_msg(all.len == strlen(want) && memcmp(all.data, want,
	    all.len) == 0, "decodes to \"%s\"", all.data);
	buf_free(&all);
	buf_free(&one);
}

START_TEST(header_text_utf8)
{
	struct buf dec = BUF_INIT, in = BUF_INIT;
	const char *enc;
	int i;

	enc = header_text("Gr\xc3\xbc\xc3\x9f" "e");
	ck_assert_str_eq(enc, "=?UTF-8?B?R3LDvMOfZQ==?=");
	check_words(enc, "Gr\xc3\xbc\xc3\x9f" "e");

	/* Long: several words, none splitting a 2-, 3- or 4-octet character. */
	for (i = 0; i < 30; i++)
		buf_appends(&in, "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x93\xa7x");
	buf_cstr(&in);
	enc = header_text(in.data);
	ck_assert_msg(strstr(enc, "\r\n ") != NULL, "not folded: %s", enc);
	check_words(enc, in.data);
	ck_assert_int_eq(mime_decode_header(&dec, enc, strlen(enc)), 0);
	ck_assert_str_eq(buf_cstr(&dec), in.data);

	/* Control bytes in 8-bit text become spaces inside the word. */
	enc = header_text("\xc3\xa9\r\nBcc: x");
	check_words(enc, "\xc3\xa9  Bcc: x");
	buf_free(&dec);
	buf_free(&in);
}
END_TEST

/* message_serialize without edits */

START_TEST(serialize_plain_wire)
{
	const char *c = "A: b\r\n\r\n.x\r\n.\r\nend\r\n";
	const char *want = PASS "\r\nA: b\r\n\r\n..x\r\n..\r\nend\r\n.\r\n";
	struct buf w = BUF_INIT;

	ck_assert_int_eq(message_serialize(&w, PASS, NULL, c, strlen(c)), 0);
	ck_assert_uint_eq(w.len, strlen(want));
	ck_assert_int_eq(memcmp(w.data, want, w.len), 0);
	buf_free(&w);
}
END_TEST

START_TEST(serialize_plain)
{
	const char *c = "From: <a@x>\r\nSubject: hi\r\n\r\n.leading\r\n"
	    "..two\r\n.\r\n\r\n \r\nGr\xc3\xbc\xc3\x9f" "e\r\nlast\r\n";

	check_serialize(PASS, NULL, c, PASS "\r\n" "From: <a@x>\r\n"
	    "Subject: hi\r\n\r\n.leading\r\n..two\r\n.\r\n\r\n \r\n"
	    "Gr\xc3\xbc\xc3\x9f" "e\r\nlast\r\n");
	/* No pass header: nothing added. */
	check_serialize("", NULL, c, c);
	/* Content without a final CRLF gets one, then the terminator. */
	check_serialize(PASS, NULL, "Subject: x\r\n\r\nno end", PASS "\r\n"
	    "Subject: x\r\n\r\nno end\r\n");
	/* An edit with nothing in it changes nothing. */
	{
		struct message_edit e = edit_subject(SUBJECT_NONE, NULL);

		check_serialize(PASS, &e, c, PASS "\r\n" "From: <a@x>\r\n"
		    "Subject: hi\r\n\r\n.leading\r\n..two\r\n.\r\n\r\n \r\n"
		    "Gr\xc3\xbc\xc3\x9f" "e\r\nlast\r\n");
	}
}
END_TEST

/* Added headers: right after the pass header, in order; nothing else. */
START_TEST(serialize_added_headers)
{
	static const char *const h[] = {
		"X-CFilter: Encrypt", "X-Restricted: code name mentioned"
	};
	const char *c = "Subject: s\r\n\r\n.dot\r\n";
	struct message_edit e = edit_subject(SUBJECT_NONE, NULL);

	e.headers = h;
	e.nheaders = 2;
	check_serialize(PASS, &e, c, PASS "\r\n" "X-CFilter: Encrypt\r\n"
	    "X-Restricted: code name mentioned\r\n" "Subject: s\r\n\r\n.dot\r\n");
	check_serialize("", &e, c, "X-CFilter: Encrypt\r\n"
	    "X-Restricted: code name mentioned\r\n" "Subject: s\r\n\r\n.dot\r\n");
}
END_TEST

/* Subject edits: each operation on plain, folded and odd subjects. */
struct subj_case {
	const char		*content;
	enum policy_subject_op	 op;
	const char		*text;
	const char		*want;		/* after the pass header */
};

#define REST "To: b@y\r\n\r\n.body\r\nSubject: in body\r\n"

static const struct subj_case subj_cases[] = {
	/* 0-2: one line */
	{ "From: a@x\r\nSubject: hello\r\n" REST, SUBJECT_PREPEND, "[T] ",
	    "From: a@x\r\nSubject: [T] hello\r\n" REST },
	{ "From: a@x\r\nSubject: hello\r\n" REST, SUBJECT_APPEND, " [T]",
	    "From: a@x\r\nSubject: hello [T]\r\n" REST },
	{ "From: a@x\r\nSubject: hello\r\n" REST, SUBJECT_REPLACE, "new",
	    "From: a@x\r\nSubject: new\r\n" REST },
	/* 3-5: folded */
	{ "Subject: part one\r\n part two\r\n\tthree\r\n" REST,
	    SUBJECT_PREPEND, "[T] ",
	    "Subject: [T] part one\r\n part two\r\n\tthree\r\n" REST },
	{ "Subject: part one\r\n part two\r\n\tthree\r\n" REST,
	    SUBJECT_APPEND, " [T]",
	    "Subject: part one\r\n part two\r\n\tthree [T]\r\n" REST },
	{ "Subject: part one\r\n part two\r\n\tthree\r\n" REST,
	    SUBJECT_REPLACE, "new", "Subject: new\r\n" REST },
	/* 6-7: the name in any case; only the first Subject */
	{ "SUBJECT: hello\r\nSubject: other\r\n" REST, SUBJECT_PREPEND, "[T] ",
	    "SUBJECT: [T] hello\r\nSubject: other\r\n" REST },
	{ "subject: hello\r\n" REST, SUBJECT_REPLACE, "x",
	    "subject: x\r\n" REST },
	/* 8-9: no header/body separator: the whole content is header */
	{ "From: a@x\r\nSubject: s\r\n", SUBJECT_PREPEND, "[T] ",
	    "From: a@x\r\nSubject: [T] s\r\n" },
	{ "Subject: s\r\n more\r\n", SUBJECT_APPEND, "!",
	    "Subject: s\r\n more!\r\n" },
	/* 10: the value is an encoded-word: ASCII prepended before it */
	{ "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n" REST, SUBJECT_PREPEND,
	    "[T] ", "Subject: [T] =?UTF-8?B?R3LDvMOfZQ==?=\r\n" REST },
};

START_TEST(serialize_subject)
{
	const struct subj_case *sc = &subj_cases[_i];
	struct message_edit e = edit_subject(sc->op, sc->text);
	size_t wantsz = strlen(PASS) + 2 + strlen(sc->want) + 1;
	char *want = malloc(wantsz);
	int n;

	ck_assert_ptr_nonnull(want);
	n = snprintf(want, wantsz, "%s\r\n%s", PASS, sc->want);
	ck_assert(n > 0 && (size_t)n < wantsz);
	check_serialize(PASS, &e, sc->content, want);
	free(want);
}
END_TEST

/*
 * Content with an edit, read back: the Subject value (trimmed, unfolded)
 * and everything that is not the Subject field.
 */
static void
check_subject_result(const char *content, enum policy_subject_op op,
    const char *text, const char *want_value, const char *want_rest)
{
	struct message_edit e = edit_subject(op, text);
	struct buf w = BUF_INIT, rest = BUF_INIT;
	char val[256];
	size_t len, s, end, pl = strlen(PASS) + 2;
	char *got;

	ck_assert_int_eq(message_serialize(&w, PASS, &e, content,
	    strlen(content)), 0);
	got = unstuff(w.data, w.len, &len);
	ck_assert_msg(len > pl && memcmp(got, PASS "\r\n", pl) == 0,
	    "pass header not first: %s", got);
	ck_assert_msg(message_find_header(got + pl, len - pl, "Subject", &s,
	    &end) == 0, "no Subject in the header: %s", got);
	message_header_value(got + pl, len - pl, "Subject", val, sizeof(val));
	ck_assert_msg(strcmp(val, want_value) == 0, "Subject \"%s\", want "
	    "\"%s\" in:\n%s", val, want_value, got);
	buf_append(&rest, got + pl, s);
	buf_append(&rest, got + pl + end, len - pl - end);
	buf_cstr(&rest);
	ck_assert_msg(strcmp(rest.data, want_rest) == 0, "besides the Subject:"
	    "\n--- got ---\n%s\n--- want ---\n%s", rest.data, want_rest);
	free(got);
	buf_free(&w);
	buf_free(&rest);
}

/* No Subject: every operation makes one; the rest is unchanged. */
START_TEST(serialize_subject_missing)
{
	const char *c = "From: a@x\r\n\r\nSubject: only in the body\r\n.x\r\n";

	check_subject_result(c, SUBJECT_PREPEND, "[T] ", "[T]", c);
	check_subject_result(c, SUBJECT_APPEND, " [T]", "[T]", c);
	check_subject_result(c, SUBJECT_REPLACE, "new", "new", c);
	/* No header at all (the content starts with the empty line). */
	check_subject_result("\r\nbody\r\n", SUBJECT_REPLACE, "new", "new",
	    "\r\nbody\r\n");
	/* No separator and no Subject. */
	check_subject_result("From: a@x\r\n", SUBJECT_REPLACE, "new", "new",
	    "From: a@x\r\n");
}
END_TEST

/* "Subject:x" (no space) and "Subject:" (empty). */
START_TEST(serialize_subject_tight)
{
	const char *rest = "From: a@x\r\n\r\nb\r\n";

	check_subject_result("Subject:x\r\nFrom: a@x\r\n\r\nb\r\n",
	    SUBJECT_PREPEND, "[T] ", "[T] x", rest);
	check_subject_result("Subject:x\r\nFrom: a@x\r\n\r\nb\r\n",
	    SUBJECT_APPEND, " [T]", "x [T]", rest);
	check_subject_result("Subject:x\r\nFrom: a@x\r\n\r\nb\r\n",
	    SUBJECT_REPLACE, "new", "new", rest);
	check_subject_result("Subject:\r\nFrom: a@x\r\n\r\nb\r\n",
	    SUBJECT_PREPEND, "[T]", "[T]", rest);
	check_subject_result("Subject:\r\nFrom: a@x\r\n\r\nb\r\n",
	    SUBJECT_APPEND, "[T]", "[T]", rest);
}
END_TEST

/* Headers and subject together; dots and 8-bit bytes in the body kept. */
START_TEST(serialize_edit_and_stuffing)
{
	static const char *const h[] = { "X-CFilter: Quarantine" };
	const char *c = "Subject: files\r\nX-Other: 1\r\n\r\n.\r\n..\r\n"
	    ".x\r\n\xff\xfe\r\n\r\n";
	struct message_edit e = edit_subject(SUBJECT_PREPEND, "[QUARANTINE] ");
	struct buf w = BUF_INIT;

	e.headers = h;
	e.nheaders = 1;
	check_serialize(PASS, &e, c, PASS "\r\n" "X-CFilter: Quarantine\r\n"
	    "Subject: [QUARANTINE] files\r\nX-Other: 1\r\n\r\n.\r\n..\r\n"
	    ".x\r\n\xff\xfe\r\n\r\n");
	/* And on the wire the dots are doubled. */
	ck_assert_int_eq(message_serialize(&w, PASS, &e, c, strlen(c)), 0);
	buf_cstr(&w);
	ck_assert_ptr_nonnull(strstr(w.data, "\r\n\r\n..\r\n...\r\n..x\r\n"));
	ck_assert_int_eq(strcmp(w.data + w.len - 5, "\r\n.\r\n"), 0);
	buf_free(&w);
}
END_TEST

/*
 * A UTF-8 subject change, read back by a MIME decoder: the Subject must
 * decode to exactly the edited text. RFC 2047 section 5 (1): an
 * encoded-word in *text "MUST be separated from any adjacent
 * encoded-word or text by linear-white-space".
 */
static void
check_utf8_edit(const char *orig, enum policy_subject_op op,
    const char *text, const char *want)
{
	struct message_edit e = edit_subject(op, text);
	struct buf w = BUF_INIT;
	struct mime_msg *m;
	char val[512];
	const char *subj, *p;
	size_t len, slen;
	size_t csz = strlen(orig) + 64;
	char *got, *content;
	int n;

	content = malloc(csz);
	ck_assert_ptr_nonnull(content);
	n = snprintf(content, csz, "Subject: %s\r\nFrom: a@x\r\n\r\nbody\r\n",
	    orig);
	ck_assert(n > 0 && (size_t)n < csz);
	ck_assert_int_eq(message_serialize(&w, "", &e, content,
	    strlen(content)), 0);
	got = unstuff(w.data, w.len, &len);
	message_header_value(got, len, "Subject", val, sizeof(val));
	for (p = val; *p; p++)
		ck_assert_msg((unsigned char)*p < 0x80, "8-bit byte in the "
		    "header: %s", val);
	/* Every encoded-word stands apart from its neighbours. */
	for (p = val; (p = strstr(p, "=?")) != NULL; p += 2) {
		const char *q;

		/* "=?charset?B?text?=" has four '?': skip to the end. */
		q = strchr(p + 2, '?');
		q = q ? strchr(q + 1, '?') : NULL;
		q = q ? strstr(q + 1, "?=") : NULL;
		ck_assert_ptr_nonnull(q);
		ck_assert_msg(p == val || p[-1] == ' ', "encoded-word glued to "
		    "the text before it: \"%s\"", val);
		ck_assert_msg(q[2] == '\0' || q[2] == ' ', "encoded-word glued "
		    "to the text after it: \"%s\"", val);
		p = q;
	}
	m = mime_parse(got, len, NULL);
	ck_assert_ptr_nonnull(m);
	subj = mime_subject(m, &slen);
	ck_assert_ptr_nonnull(subj);
	ck_assert_msg(slen == strlen(want) && memcmp(subj, want, slen) == 0,
	    "Subject decodes to \"%.*s\", want \"%s\"", (int)slen, subj, want);
	mime_free(m);
	free(got);
	free(content);
	buf_free(&w);
}

START_TEST(serialize_subject_utf8_replace)
{
	check_utf8_edit("hello", SUBJECT_REPLACE,
	    "Vertraulich \xe2\x80\x93 nur intern",
	    "Vertraulich \xe2\x80\x93 nur intern");
}
END_TEST

START_TEST(serialize_subject_utf8_prepend)
{
	check_utf8_edit("hello", SUBJECT_PREPEND, "[VERTRAULICH \xc3\xa9] ",
	    "[VERTRAULICH \xc3\xa9] hello");
}
END_TEST

START_TEST(serialize_subject_utf8_append)
{
	check_utf8_edit("hello", SUBJECT_APPEND, " [\xc3\xa9]",
	    "hello [\xc3\xa9]");
}
END_TEST

/*
 * RFC 2047 section 2: "each line of a header field that contains one or
 * more 'encoded-word's is limited to 76 characters".
 */
START_TEST(serialize_subject_utf8_line_length)
{
	struct buf text = BUF_INIT, w = BUF_INIT;
	struct message_edit e;
	const char *p, *c = "Subject: s\r\n\r\nb\r\n", *hend;
	int i;

	for (i = 0; i < 40; i++)
		buf_appends(&text, "\xc3\xa9t");
	buf_cstr(&text);
	e = edit_subject(SUBJECT_REPLACE, text.data);
	ck_assert_int_eq(message_serialize(&w, "", &e, c, strlen(c)), 0);
	buf_cstr(&w);
	hend = strstr(w.data, "\r\n\r\n");
	ck_assert_ptr_nonnull(hend);
	for (p = w.data; p < hend; ) {
		const char *eol = strstr(p, "\r\n");

		ck_assert_msg(eol - p <= 76, "header line of %d characters: "
		    "%.*s", (int)(eol - p), (int)(eol - p), p);
		p = eol + 2;
	}
	buf_free(&text);
	buf_free(&w);
}
END_TEST

/*
 * RFC 5322 2.1.1: a line MUST be at most 998 characters. A policy may
 * prepend 900 octets (docs/lua-api.md) to a Subject that is already long.
 */
START_TEST(serialize_line_limit)
{
	struct buf c = BUF_INIT, text = BUF_INIT, w = BUF_INIT;
	struct message_edit e;
	size_t len, i, start;
	char *got;

	buf_appends(&c, "Subject: ");
	for (i = 0; i < 90; i++)
		buf_appends(&c, "word word ");
	buf_appends(&c, "\r\nFrom: a@x\r\n\r\nbody\r\n");
	for (i = 0; i < 90; i++)
		buf_appends(&text, "tag  tag  ");
	buf_cstr(&text);
	e = edit_subject(SUBJECT_PREPEND, text.data);
	ck_assert_int_eq(message_serialize(&w, PASS, &e, c.data, c.len), 0);
	got = unstuff(w.data, w.len, &len);
	for (start = 0, i = 0; i + 1 < len; i++)
		if (got[i] == '\r' && got[i + 1] == '\n') {
			ck_assert_msg(i - start <= 998, "a line of %zu octets",
			    i - start);
			start = i + 2;
		}
	free(got);
	buf_free(&c);
	buf_free(&text);
	buf_free(&w);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("message");
	TCase *tc = tcase_create("headers");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, header_end);
	tcase_add_test(tc, find_header);
	tcase_add_test(tc, header_value);
	tcase_add_test(tc, header_value_zero_size);
	tcase_add_test(tc, header_text_ascii);
	tcase_add_test(tc, header_text_utf8);
	suite_add_tcase(s, tc);

	tc = tcase_create("serialize");
	tcase_add_test(tc, serialize_plain_wire);
	tcase_add_test(tc, serialize_plain);
	tcase_add_test(tc, serialize_added_headers);
	tcase_add_loop_test(tc, serialize_subject, 0,
	    sizeof(subj_cases) / sizeof(subj_cases[0]));
	tcase_add_test(tc, serialize_subject_missing);
	tcase_add_test(tc, serialize_subject_tight);
	tcase_add_test(tc, serialize_edit_and_stuffing);
	tcase_add_test(tc, serialize_subject_utf8_replace);
	tcase_add_test(tc, serialize_subject_utf8_prepend);
	tcase_add_test(tc, serialize_subject_utf8_append);
	tcase_add_test(tc, serialize_subject_utf8_line_length);
	tcase_add_test(tc, serialize_line_limit);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
