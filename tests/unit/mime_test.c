/*
 * mime_test: proxy/mime.c.
 *
 * Every message is built here, as C strings or generated with a buf, in
 * the shapes mail software produces: alternative and nested multiparts,
 * base64 and quoted-printable bodies, encoded-word subjects, legacy
 * charsets, forwarded messages, RFC 2231 names. Then the broken shapes:
 * cut messages, missing or absent boundaries, nesting and part bombs, LF
 * line endings, junk in header blocks. A last test mutates the corpus at
 * random (fixed seed) and parses every mutant, for the sanitizers.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mime.h"

/* Helpers */

static struct mime_msg *
parse_lim(const char *s, size_t n, const struct mime_limits *lim)
{
	struct mime_msg *m = mime_parse(s, n, lim);

	ck_assert_ptr_nonnull(m);
	return m;
}

static struct mime_msg *
parse(const char *s)
{
	return parse_lim(s, strlen(s), NULL);
}

static const char *
text(struct mime_msg *m)
{
	size_t len;
	const char *t = mime_text(m, &len);

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(strlen(t), len);	/* no NUL in our corpus */
	return t;
}

static int
has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

#define ck_has(h, n)	ck_assert_msg(has((h), (n)), \
			    "\"%s\" not found in \"%s\"", (n), (h))
#define ck_hasnt(h, n)	ck_assert_msg(!has((h), (n)), \
			    "\"%s\" found in \"%s\"", (n), (h))

/* An encoder of our own, 76 columns, CRLF, for building attachments. */
static void
b64(struct buf *out, const unsigned char *p, size_t n)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, col = 0;
	uint32_t v;

	for (i = 0; i < n; i += 3) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		buf_appendf(out, "%c%c%c%c", a[v >> 18 & 63], a[v >> 12 & 63],
		    i + 1 < n ? a[v >> 6 & 63] : '=', i + 2 < n ? a[v & 63] : '=');
		if ((col += 4) == 76 && i + 3 < n) {
			buf_appends(out, "\r\n");
			col = 0;
		}
	}
}

/* n bytes of every value, deterministic. */
static unsigned char *
blob(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed + (i >> 8));
	return p;
}

static void
ck_attachment(const struct mime_attachment *a, const char *filename,
    const char *ctype, const unsigned char *bytes, size_t size)
{
	ck_assert_ptr_nonnull(a);
	if (filename == NULL)
		ck_assert_ptr_null(a->filename);
	else {
		ck_assert_ptr_nonnull(a->filename);
		ck_assert_str_eq(a->filename, filename);
		ck_assert_uint_eq(a->filename_len, strlen(filename));
	}
	ck_assert_str_eq(a->content_type, ctype);
	ck_assert_uint_eq(a->size, size);
	if (bytes != NULL && size > 0)
		ck_assert_mem_eq(a->content, bytes, size);
}

/* Corpus */

static const char msg_alternative[] =
    "Return-Path: <alice@example.org>\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: Quarterly numbers\r\n"
    "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <1@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative;\r\n"
    "\tboundary=\"----=_Part_1_2026\"\r\n"
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "\r\n"
    "------=_Part_1_2026\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Plain: revenue is up 12%.\r\n"
    "------=_Part_1_2026\r\n"
    "Content-Type: text/html; charset=UTF-8\r\n"
    "\r\n"
    "<html><head><title>Q4</title><style>p { color: red; }</style>\r\n"
    "<script type=\"text/javascript\">var secret = 1;</script></head>\r\n"
    "<body><p>HTML: revenue&nbsp;is <b>up</b> 12&#37; &amp; costs &lt;\r\n"
    "down&gt;</p><!-- a comment --><p class='x'>caf&eacute; &#x263A;"
    "</p></body></html>\r\n"
    "------=_Part_1_2026--\r\n"
    "Epilogue text nobody sees.\r\n";

static const char msg_qp[] =
    "From: a@example.org\r\n"
    "Subject: qp\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "A long line that was wrapped by the encoder because it went past seven=\r\n"
    "ty-six columns, with an equals sign =3D and an accent: caf=C3=A9.   \r\n"
    "Trailing encoded space=20\r\n"
    "lowercase hex =c3=a9, a bad escape =ZZ and =4 stay.\r\n";

static const char msg_8bit[] =
    "From: a@example.org\r\n"
    "Subject: 8bit\r\n"
    "Content-Type: text/plain; charset=\"utf-8\"\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Gr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen, \xe2\x82\xac" "42.\r\n";

static const char msg_latin[] =
    "From: a@example.org\r\n"
    "Subject: charsets\r\n"
    "Content-Type: multipart/mixed; boundary=b1\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=ISO-8859-1\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Fran\xe7ois a pay\xe9 \xa3" "10.\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=windows-1252\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "=93Quoted=94 costs =80" "5 =96 ok.\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=koi8-r\r\n"
    "\r\n"
    "\xf0\xd2\xc9\xd7\xc5\xd4\r\n"
    "--b1--\r\n";

static const char msg_rfc2231[] =
    "From: a@example.org\r\n"
    "Subject: names\r\n"
    "Content-Type: multipart/mixed; boundary=\"nm\"\r\n"
    "\r\n"
    "--nm\r\n"
    "Content-Type: application/pdf\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*=UTF-8''%E2%82%AC%20rates%202026.pdf\r\n"
    "\r\n"
    "%PDF-1.4\r\n"
    "--nm\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*0*=iso-8859-1'fr'r%E9sum%E9;\r\n"
    " filename*2=\".txt\";\r\n"
    " filename*1=\"_long \\\"name\\\"\"\r\n"
    "\r\n"
    "x\r\n"
    "--nm\r\n"
    "Content-Type: image/png; name=\"=?UTF-8?Q?gr=C3=BC=C3=9Fe?=.png\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--nm\r\n"
    "Content-Type: text/plain; name=plain.txt\r\n"
    "Content-Disposition: inline; filename=\"notes.txt\"\r\n"
    "\r\n"
    "a text file is an attachment\r\n"
    "--nm\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Disposition: attachment\r\n"
    "\r\n"
    "attached without a name\r\n"
    "--nm\r\n"
    "Content-Type: text/csv\r\n"
    "\r\n"
    "a,b\r\n"
    "--nm--\r\n";

static const char msg_folding[] =
    "Received: from a by b;\r\n"
    "\tMon, 30 Nov 2026 10:00:00 +0000\r\n"
    "Received: from c by d; Mon, 30 Nov 2026 09:59:00 +0000\r\n"
    "X-Long:   first\r\n"
    "   second\r\n"
    "\tthird   \r\n"
    "x-CASE: mixed\r\n"
    "Empty:\r\n"
    "Obs-Name\t : obsolete syntax\r\n"
    "Subject: plain\r\n"
    "\r\n"
    "body\r\n";

static const char msg_lf[] =
    "From: a@example.org\n"
    "Subject: LF only\n"
    "Content-Type: multipart/mixed; boundary=lf\n"
    "\n"
    "--lf\n"
    "Content-Type: text/plain\n"
    "\n"
    "line one\n"
    "line two\n"
    "--lf\n"
    "Content-Type: application/octet-stream; name=a.bin\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAEC\n"
    "AwQF\n"
    "--lf--\n";

/* Alternative */

START_TEST(alternative)
{
	struct mime_msg *m = parse(msg_alternative);
	const char *t = text(m);

	ck_assert_uint_eq(mime_flags(m), 0);
	ck_assert_uint_eq(mime_nattachments(m), 0);
	/* container, preamble, plain, html, epilogue */
	ck_assert_uint_eq(mime_nparts(m), 5);
	ck_has(t, "Plain: revenue is up 12%.");
	/* Readers hide preamble and epilogue: policies must still see them. */
	ck_has(t, "This is a multi-part message in MIME format.");
	ck_has(t, "Epilogue text nobody sees.");
	ck_has(t, "HTML: revenue is up 12% & costs < down>\n");
	ck_has(t, "\xe2\x98\xba");		/* &#x263A; */
	ck_has(t, "caf&eacute;");		/* unknown entity: literal */
	ck_hasnt(t, "<p");
	ck_hasnt(t, "secret");			/* script content */
	ck_hasnt(t, "color");			/* style content */
	ck_hasnt(t, "comment");
	ck_hasnt(t, "\r");
	/* parts are joined with one newline; CRLF became LF */
	ck_has(t, "12%.\nQ4\n");
	mime_free(m);
}
END_TEST

/* Nested multipart/mixed with base64 attachments */

START_TEST(nested_attachments)
{
	struct buf b = BUF_INIT;
	unsigned char *png = blob(5000, 1), *zip = blob(1, 2),
	    *bin = blob(65536, 3);
	const struct mime_attachment *a;
	struct mime_msg *m;
	const char *t;

	buf_appends(&b,
	    "From: a@example.org\r\n"
	    "Subject: report\r\n"
	    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
	    "\r\n"
	    "--outer\r\n"
	    "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
	    "\r\n"
	    "--alt\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "See the attached chart.\r\n"
	    "--alt\r\n"
	    "Content-Type: text/html\r\n"
	    "\r\n"
	    "<div>See the <i>attached</i> chart.</div>\r\n"
	    "--alt--\r\n"
	    "--outer\r\n"
	    "Content-Type: image/png\r\n"
	    "Content-Disposition: attachment; filename=\"chart.png\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n");
	b64(&b, png, 5000);
	buf_appends(&b,
	    "\r\n--outer\r\n"
	    "Content-Type: multipart/mixed; boundary=\"inner\"\r\n"
	    "\r\n"
	    "--inner\r\n"
	    "Content-Type: application/zip; name=\"one.zip\"\r\n"
	    "Content-Transfer-Encoding: BASE64\r\n"
	    "\r\n");
	b64(&b, zip, 1);
	buf_appends(&b,
	    "\r\n--inner\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename=data.bin\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n");
	b64(&b, bin, 65536);
	buf_appends(&b,
	    "\r\n--inner--\r\n"
	    "--outer--\r\n");

	m = parse_lim(b.data, b.len, NULL);
	t = text(m);
	ck_assert_uint_eq(mime_flags(m), 0);
	ck_has(t, "See the attached chart.\nSee the attached chart.");
	ck_assert_uint_eq(mime_nattachments(m), 3);
	a = mime_attachment(m, 0);
	ck_attachment(a, "chart.png", "image/png", png, 5000);
	ck_assert_uint_eq(a->depth, 1);
	ck_assert_int_eq(a->message, 0);
	a = mime_attachment(m, 1);
	ck_attachment(a, "one.zip", "application/zip", zip, 1);
	ck_assert_uint_eq(a->depth, 2);
	ck_attachment(mime_attachment(m, 2), "data.bin",
	    "application/octet-stream", bin, 65536);
	ck_assert_ptr_null(mime_attachment(m, 3));
	ck_assert_uint_eq(mime_nparts(m), 8);
	mime_free(m);
	buf_free(&b);
	free(png);
	free(zip);
	free(bin);
}
END_TEST

/* Quoted-printable */

START_TEST(quoted_printable)
{
	struct mime_msg *m = parse(msg_qp);

	ck_assert_str_eq(text(m),
	    "A long line that was wrapped by the encoder because it went past "
	    "seventy-six columns, with an equals sign = and an accent: "
	    "caf\xc3\xa9.\n"
	    "Trailing encoded space \n"
	    "lowercase hex \xc3\xa9, a bad escape =ZZ and =4 stay.\n");
	ck_assert_uint_eq(mime_flags(m), MIME_BAD_QP | MIME_MALFORMED);
	mime_free(m);
}
END_TEST

/* RFC 2047 subjects */

static const struct {
	const char	*raw;
	const char	*want;
} subjects[] = {
	{ "=?UTF-8?B?w4dhIHZhIGJpZW4gPw==?=", "\xc3\x87" "a va bien ?" },
	{ "=?iso-8859-1?q?caf=E9_cr=E8me?=", "caf\xc3\xa9 cr\xc3\xa8me" },
	/* adjacent words: the whitespace between them goes */
	{ "=?UTF-8?Q?Hello?= =?UTF-8?Q?_World?=", "Hello World" },
	{ "=?UTF-8?B?SGVs?=\r\n =?UTF-8?B?bG8=?=", "Hello" },
	/* a character split across two words in one charset */
	{ "=?UTF-8?B?4oI=?= =?UTF-8?B?rA==?= 5", "\xe2\x82\xac 5" },
	/* mixed charsets, and plain text around words keeps its spaces */
	{ "Re: =?ISO-8859-1?Q?M=FCller?= and =?utf-8?b?w7xiZXI=?= now",
	    "Re: M\xc3\xbcller and \xc3\xbc" "ber now" },
	{ "=?windows-1252?Q?=93quoted=94?=", "\xe2\x80\x9cquoted\xe2\x80\x9d" },
	{ "=?UTF-8*en?Q?lang?=", "lang" },
	/* malformed words stay as they are */
	{ "=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=" },
	{ "=?UTF-8?Q?two words?=", "=?UTF-8?Q?two words?=" },
	{ "=?UTF-8?B?abc", "=?UTF-8?B?abc" },
	{ "100% =? sure", "100% =? sure" },
	/* unknown charset: the bytes */
	{ "=?x-nonesuch?Q?abc?=", "abc" },
	/* raw 8-bit: UTF-8 when valid, else read as windows-1252 */
	{ "caf\xc3\xa9", "caf\xc3\xa9" },
	{ "caf\xe9", "caf\xc3\xa9" },
	{ "", "" },
};

START_TEST(subject_2047)
{
	struct buf b = BUF_INIT;
	struct mime_msg *m;
	const char *s;
	size_t len;

	buf_appendf(&b, "From: a@example.org\r\nSubject: %s\r\n\r\nbody\r\n",
	    subjects[_i].raw);
	m = parse(b.data);
	s = mime_subject(m, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, subjects[_i].want);
	ck_assert_uint_eq(len, strlen(subjects[_i].want));
	/* cached: the same pointer again */
	ck_assert_ptr_eq(mime_subject(m, NULL), s);
	mime_free(m);

	buf_reset(&b);
	ck_assert_int_eq(mime_decode_header(&b, subjects[_i].raw,
	    strlen(subjects[_i].raw)), 0);
	ck_assert_uint_eq(b.len, strlen(subjects[_i].want));
	if (b.len)
		ck_assert_mem_eq(b.data, subjects[_i].want, b.len);
	buf_free(&b);
}
END_TEST

START_TEST(subject_absent)
{
	struct mime_msg *m = parse("From: a@example.org\r\n\r\nhi\r\n");

	ck_assert_ptr_null(mime_subject(m, NULL));
	ck_assert_ptr_null(mime_header(m, "Subject", 0, NULL));
	mime_free(m);
}
END_TEST

/* Bodies and charsets */

START_TEST(body_8bit)
{
	struct mime_msg *m = parse(msg_8bit);

	ck_assert_str_eq(text(m),
	    "Gr\xc3\xbc\xc3\x9f" "e aus M\xc3\xbcnchen, \xe2\x82\xac" "42.\n");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);
}
END_TEST

START_TEST(charsets)
{
	struct mime_msg *m = parse(msg_latin);

	ck_assert_str_eq(text(m),
	    "Fran\xc3\xa7ois a pay\xc3\xa9 \xc2\xa3" "10.\n"
	    "\xe2\x80\x9cQuoted\xe2\x80\x9d costs \xe2\x82\xac" "5 \xe2\x80\x93 ok.\n"
	    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);
}
END_TEST

START_TEST(charset_unknown_and_invalid)
{
	struct mime_msg *m;

	m = parse("Content-Type: text/plain; charset=x-made-up\r\n\r\n"
	    "bytes \xff kept\r\n");
	ck_assert_str_eq(text(m), "bytes \xff kept\n");
	ck_assert_uint_eq(mime_flags(m), MIME_BAD_CHARSET | MIME_MALFORMED);
	mime_free(m);

	/* invalid sequences are skipped, never fatal */
	m = parse("Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "a\xc3(b\xed\xa0\x80" "c\xf0\x9f\x98\x80\xff\r\n");
	ck_assert_str_eq(text(m), "a(bc\xf0\x9f\x98\x80\n");
	ck_assert(mime_flags(m) & MIME_BAD_CHARSET);
	mime_free(m);

	/* a name that must not reach iconv */
	m = parse("Content-Type: text/plain; charset=\"utf-8//IGNORE\"\r\n\r\n"
	    "x\r\n");
	ck_assert_str_eq(text(m), "x\n");
	ck_assert(mime_flags(m) & MIME_BAD_CHARSET);
	mime_free(m);

	/* RFC 2045's own example, with a comment after the label */
	m = parse("Content-type: text/plain; charset=us-ascii (Plain text)\r\n"
	    "\r\nplain\r\n");
	ck_assert_str_eq(text(m), "plain\n");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);

	/* no charset, 8-bit bytes that are not UTF-8: windows-1252 */
	m = parse("Subject: x\r\n\r\nna\xefve\r\n");
	ck_assert_str_eq(text(m), "na\xc3\xafve\n");
	mime_free(m);
}
END_TEST

START_TEST(base64_text_and_bad_base64)
{
	struct mime_msg *m;

	m = parse("Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "SGVs bG8g\r\nd29y!!bGQ=\r\n");
	ck_assert_str_eq(text(m), "Hello world");
	ck_assert_uint_eq(mime_flags(m), MIME_BAD_BASE64 | MIME_MALFORMED);
	mime_free(m);

	/* every line padded on its own, as some encoders do */
	m = parse("Content-Type: application/x-a\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "QQ==\r\nQkM=\r\nREVG\r\n");
	ck_attachment(mime_attachment(m, 0), NULL, "application/x-a",
	    (const unsigned char *)"ABCDEF", 6);
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);
}
END_TEST

/* message/rfc822 */

static void
forwarded(struct buf *b, const char *cte, const unsigned char *att,
    size_t attlen)
{
	struct buf inner = BUF_INIT;

	buf_appends(&inner,
	    "From: carol@example.com\r\n"
	    "Subject: =?UTF-8?Q?inner_=E2=9C=93?=\r\n"
	    "Content-Type: multipart/mixed; boundary=\"in\"\r\n"
	    "\r\n"
	    "--in\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "Inner text: the merger is on.\r\n"
	    "--in\r\n"
	    "Content-Type: application/vnd.ms-excel; name=\"plan.xls\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n");
	b64(&inner, att, attlen);
	buf_appends(&inner, "\r\n--in--\r\n");

	buf_appendf(b,
	    "From: dave@example.org\r\n"
	    "Subject: Fwd: plan\r\n"
	    "Content-Type: multipart/mixed; boundary=\"out\"\r\n"
	    "\r\n"
	    "--out\r\n"
	    "Content-Type: text/plain\r\n"
	    "\r\n"
	    "Outer text: see below.\r\n"
	    "--out\r\n"
	    "Content-Type: message/rfc822; name=\"fwd.eml\"\r\n"
	    "Content-Transfer-Encoding: %s\r\n"
	    "\r\n", cte);
	if (strcmp(cte, "base64") == 0)
		b64(b, (const unsigned char *)inner.data, inner.len);
	else
		buf_append(b, inner.data, inner.len);
	buf_appends(b, "\r\n--out--\r\n");
	buf_free(&inner);
}

START_TEST(rfc822_attachment)
{
	static const char *ctes[] = { "7bit", "base64" };
	struct buf b = BUF_INIT;
	unsigned char *att = blob(3000, 9);
	const struct mime_attachment *a;
	struct mime_msg *m;
	const char *t;

	forwarded(&b, ctes[_i], att, 3000);
	m = parse_lim(b.data, b.len, NULL);
	t = text(m);
	ck_assert_uint_eq(mime_flags(m), 0);
	ck_assert_str_eq(t, "Outer text: see below.\nInner text: the merger is on.");
	ck_assert_uint_eq(mime_nattachments(m), 2);
	a = mime_attachment(m, 0);
	ck_assert_int_eq(a->message, 1);
	ck_assert_str_eq(a->content_type, "message/rfc822");
	ck_assert_str_eq(a->filename, "fwd.eml");
	ck_assert(a->size > 3000 * 4 / 3);
	ck_assert(memcmp(a->content, "From: carol@example.com\r\n", 25) == 0);
	a = mime_attachment(m, 1);
	ck_attachment(a, "plan.xls", "application/vnd.ms-excel", att, 3000);
	ck_assert_uint_eq(a->depth, 3);
	ck_assert_int_eq(a->message, 0);
	/* the inner header block is not the message's */
	ck_assert_str_eq(mime_subject(m, NULL), "Fwd: plan");
	ck_assert_uint_eq(mime_header_count(m, "From"), 1);
	mime_free(m);
	buf_free(&b);
	free(att);
}
END_TEST

/* RFC 2231 and friends */

START_TEST(filenames)
{
	struct mime_msg *m = parse(msg_rfc2231);
	const struct mime_attachment *a;

	ck_assert_uint_eq(mime_nattachments(m), 6);
	ck_attachment(mime_attachment(m, 0), "\xe2\x82\xac rates 2026.pdf",
	    "application/pdf", (const unsigned char *)"%PDF-1.4", 8);
	ck_attachment(mime_attachment(m, 1),
	    "r\xc3\xa9sum\xc3\xa9_long \"name\".txt",
	    "application/octet-stream", (const unsigned char *)"x", 1);
	ck_attachment(mime_attachment(m, 2), "gr\xc3\xbc\xc3\x9f" "e.png",
	    "image/png", (const unsigned char *)"\x89PNG\r\n\x1a\n", 8);
	/* a text part with a name is an attachment; disposition wins */
	ck_attachment(mime_attachment(m, 3), "notes.txt", "text/plain",
	    (const unsigned char *)"a text file is an attachment", 28);
	ck_attachment(mime_attachment(m, 4), NULL, "text/plain",
	    (const unsigned char *)"attached without a name", 23);
	/* a part of a type text() does not read is listed, not lost */
	a = mime_attachment(m, 5);
	ck_attachment(a, NULL, "text/csv", (const unsigned char *)"a,b", 3);
	ck_assert_str_eq(text(m), "");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);
}
END_TEST

/* Headers */

START_TEST(header_folding)
{
	struct mime_msg *m = parse(msg_folding);
	const char *v, *name;
	size_t len, nl;

	ck_assert_uint_eq(mime_header_count(m, "received"), 2);
	v = mime_header(m, "Received", 0, &len);
	ck_assert_str_eq(v, "from a by b;\tMon, 30 Nov 2026 10:00:00 +0000");
	ck_assert_uint_eq(len, strlen(v));
	ck_assert_str_eq(mime_header(m, "RECEIVED", 1, NULL),
	    "from c by d; Mon, 30 Nov 2026 09:59:00 +0000");
	ck_assert_ptr_null(mime_header(m, "Received", 2, NULL));
	ck_assert_str_eq(mime_header(m, "x-long", 0, NULL),
	    "first   second\tthird");
	ck_assert_str_eq(mime_header(m, "X-Case", 0, NULL), "mixed");
	ck_assert_str_eq(mime_header(m, "Empty", 0, &len), "");
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(mime_header(m, "obs-name", 0, NULL),
	    "obsolete syntax");
	ck_assert_ptr_null(mime_header(m, "Missing", 0, NULL));
	ck_assert_uint_eq(mime_header_count(m, "Missing"), 0);
	ck_assert_uint_eq(mime_nheaders(m), 7);
	v = mime_header_at(m, 2, &name, &nl, &len);
	ck_assert_uint_eq(nl, 6);
	ck_assert(memcmp(name, "X-Long", 6) == 0);
	ck_assert_str_eq(v, "first   second\tthird");
	ck_assert_ptr_null(mime_header_at(m, 7, NULL, NULL, NULL));
	ck_assert_str_eq(text(m), "body\n");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);
}
END_TEST

START_TEST(no_blank_line)
{
	struct mime_msg *m;

	/* all headers */
	m = parse("From: a@example.org\r\nSubject: only headers\r\n"
	    "X-Last: cut");
	ck_assert_str_eq(mime_header(m, "x-last", 0, NULL), "cut");
	ck_assert_str_eq(mime_subject(m, NULL), "only headers");
	ck_assert_str_eq(text(m), "");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);

	/* a line that is no field starts the body */
	m = parse("From: a@example.org\r\nSubject: s\r\n"
	    "This line is text, not a header\r\nmore: text\r\n");
	ck_assert_str_eq(text(m), "This line is text, not a header\n"
	    "more: text\n");
	ck_assert_uint_eq(mime_header_count(m, "more"), 0);
	ck_assert_uint_eq(mime_flags(m), MIME_BAD_HEADER | MIME_MALFORMED);
	mime_free(m);

	/* nothing at all */
	m = parse_lim("", 0, NULL);
	ck_assert_str_eq(text(m), "");
	ck_assert_uint_eq(mime_nheaders(m), 0);
	mime_free(m);
}
END_TEST

START_TEST(lf_only)
{
	struct mime_msg *m = parse(msg_lf);

	ck_assert_str_eq(mime_header(m, "subject", 0, NULL), "LF only");
	ck_assert_str_eq(text(m), "line one\nline two");
	ck_assert_uint_eq(mime_nattachments(m), 1);
	ck_attachment(mime_attachment(m, 0), "a.bin",
	    "application/octet-stream",
	    (const unsigned char *)"\0\1\2\3\4\5", 6);
	ck_assert_uint_eq(mime_flags(m), MIME_BARE_LF);
	mime_free(m);
}
END_TEST

/* Broken structure */

START_TEST(truncated_in_base64)
{
	struct buf b = BUF_INIT;
	unsigned char *att = blob(4000, 5);
	const struct mime_attachment *a;
	struct mime_msg *m;
	const char *cut;
	size_t len;

	buf_appends(&b,
	    "Subject: cut\r\n"
	    "Content-Type: multipart/mixed; boundary=c\r\n"
	    "\r\n"
	    "--c\r\n"
	    "\r\n"
	    "before the attachment\r\n"
	    "--c\r\n"
	    "Content-Type: application/octet-stream; name=x.bin\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n");
	b64(&b, att, 4000);
	buf_appends(&b, "\r\n--c--\r\n");
	/* cut in the middle of a quantum, a little after half */
	cut = strstr(b.data, "base64\r\n\r\n") + 10;
	len = (size_t)(cut - b.data) + 2001;

	m = parse_lim(b.data, len, NULL);
	ck_assert_str_eq(text(m), "before the attachment");
	a = mime_attachment(m, 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->filename, "x.bin");
	ck_assert(a->size > 1400 && a->size < 1600);
	ck_assert_mem_eq(a->content, att, a->size);
	ck_assert_uint_eq(mime_flags(m),
	    MIME_UNCLOSED | MIME_BAD_BASE64 | MIME_MALFORMED);
	mime_free(m);
	buf_free(&b);
	free(att);
}
END_TEST

START_TEST(truncated_in_headers)
{
	static const char top[] =
	    "From: a@example.org\r\nSubject: cut here\r\nX-Half: val";
	static const char part[] =
	    "Subject: s\r\n"
	    "Content-Type: multipart/mixed; boundary=p\r\n"
	    "\r\n"
	    "--p\r\n"
	    "\r\n"
	    "first part\r\n"
	    "--p\r\n"
	    "Content-Type: application/pdf; na";
	struct mime_msg *m;

	m = parse(top);
	ck_assert_str_eq(mime_subject(m, NULL), "cut here");
	ck_assert_str_eq(mime_header(m, "X-Half", 0, NULL), "val");
	ck_assert_str_eq(text(m), "");
	mime_free(m);

	m = parse(part);
	ck_assert_str_eq(text(m), "first part");
	ck_assert_uint_eq(mime_nattachments(m), 1);
	ck_attachment(mime_attachment(m, 0), NULL, "application/pdf", NULL, 0);
	ck_assert(mime_flags(m) & MIME_UNCLOSED);
	mime_free(m);
}
END_TEST

START_TEST(missing_final_boundary)
{
	struct mime_msg *m;

	m = parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
	    "--zz\r\nContent-Type: text/plain\r\n\r\none\r\n"
	    "--zz\r\nContent-Type: text/plain\r\n\r\ntwo\r\n");
	ck_assert_str_eq(text(m), "one\ntwo\n");
	ck_assert_uint_eq(mime_flags(m), MIME_UNCLOSED | MIME_MALFORMED);
	mime_free(m);

	/* an outer delimiter ends an inner multipart left open */
	m = parse("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	    "--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
	    "--i\r\n\r\ninner\r\n"
	    "--o\r\n\r\nafter\r\n--o--\r\n");
	ck_assert_str_eq(text(m), "inner\nafter");
	ck_assert_uint_eq(mime_flags(m), MIME_UNCLOSED | MIME_MALFORMED);
	mime_free(m);
}
END_TEST

START_TEST(boundary_problems)
{
	struct mime_msg *m;

	/* boundary never appears: the body is text */
	m = parse("Content-Type: multipart/mixed; boundary=nowhere\r\n\r\n"
	    "--elsewhere\r\nsecret text\r\n");
	ck_assert_str_eq(text(m), "--elsewhere\nsecret text\n");
	ck_assert_uint_eq(mime_flags(m), MIME_NO_DELIM | MIME_MALFORMED);
	mime_free(m);

	/* no boundary parameter: one text part */
	m = parse("Content-Type: multipart/mixed\r\n\r\n--x\r\nsecret\r\n");
	ck_assert_str_eq(text(m), "--x\nsecret\n");
	ck_assert_uint_eq(mime_flags(m), MIME_NO_BOUNDARY | MIME_MALFORMED);
	mime_free(m);

	/* a boundary that is a prefix of the next line is no delimiter */
	m = parse("Content-Type: multipart/mixed; boundary=ab\r\n\r\n"
	    "--ab\r\n\r\nx\r\n--abc\r\ny\r\n--ab--  \t\r\nepilogue\r\n");
	ck_assert_str_eq(text(m), "x\n--abc\ny\nepilogue\n");
	ck_assert_uint_eq(mime_flags(m), 0);
	mime_free(m);

	/* the part's header block cut short by the next delimiter */
	m = parse("Content-Type: multipart/mixed; boundary=q\r\n\r\n"
	    "--q\r\nContent-Type: text/plain\r\n--q\r\n\r\nnext\r\n--q--\r\n");
	ck_assert_str_eq(text(m), "\nnext");
	mime_free(m);
}
END_TEST

START_TEST(digest)
{
	struct mime_msg *m;

	m = parse("Content-Type: multipart/digest; boundary=d\r\n\r\n"
	    "--d\r\n\r\nFrom: x@example.org\r\nSubject: one\r\n\r\n"
	    "digest one\r\n--d--\r\n");
	ck_assert_str_eq(text(m), "digest one");
	ck_assert_uint_eq(mime_nattachments(m), 1);
	ck_assert_str_eq(mime_attachment(m, 0)->content_type,
	    "message/rfc822");
	ck_assert_int_eq(mime_attachment(m, 0)->message, 1);
	mime_free(m);
}
END_TEST

/* Limits */

START_TEST(depth_bomb)
{
	struct buf b = BUF_INIT;
	struct mime_msg *m;
	const char *t;
	int i;

	buf_appends(&b, "Subject: deep\r\n");
	for (i = 0; i < 100; i++)
		buf_appendf(&b, "Content-Type: multipart/mixed; boundary=\"L%d\""
		    "\r\n\r\n--L%d\r\n", i, i);
	buf_appends(&b, "Content-Type: text/plain\r\n\r\ndeepest secret\r\n");
	for (i = 99; i >= 0; i--)
		buf_appendf(&b, "--L%d--\r\n", i);

	m = parse_lim(b.data, b.len, NULL);
	t = text(m);
	ck_assert(mime_flags(m) & MIME_DEPTH);
	ck_assert_uint_eq(mime_nparts(m), MIME_DEF_DEPTH + 1);
	/* below the limit nothing is parsed, but it is all still text */
	ck_has(t, "deepest secret");
	ck_has(t, "--L99--");
	mime_free(m);

	/* message/rfc822 counts as a level too */
	buf_reset(&b);
	for (i = 0; i < 100; i++)
		buf_appends(&b, "Content-Type: message/rfc822\r\n\r\n");
	buf_appends(&b, "\r\nbottom\r\n");
	m = parse_lim(b.data, b.len, NULL);
	ck_assert(mime_flags(m) & MIME_DEPTH);
	ck_has(text(m), "bottom");
	ck_assert_uint_eq(mime_nattachments(m), MIME_DEF_DEPTH);
	mime_free(m);
	buf_free(&b);
}
END_TEST

START_TEST(part_bomb)
{
	struct buf b = BUF_INIT;
	struct mime_limits lim;
	struct mime_msg *m;
	const char *t;
	int i;

	buf_appends(&b, "Content-Type: multipart/mixed; boundary=pp\r\n\r\n");
	for (i = 0; i < 2000; i++)
		buf_appendf(&b, "--pp\r\nContent-Type: application/x-n%d\r\n"
		    "\r\npart %d\r\n", i, i);
	buf_appends(&b, "--pp\r\n\r\nlast words\r\n--pp--\r\n");

	m = parse_lim(b.data, b.len, NULL);
	t = text(m);
	ck_assert(mime_flags(m) & MIME_PARTS);
	/* the container, 999 parts, and one raw part for the rest */
	ck_assert_uint_eq(mime_nparts(m), MIME_DEF_PARTS + 1);
	ck_assert_uint_eq(mime_nattachments(m), MIME_DEF_PARTS - 1);
	ck_assert_str_eq(mime_attachment(m, 998)->content_type,
	    "application/x-n998");
	ck_has(t, "part 1999");
	ck_has(t, "last words");
	ck_hasnt(t, "part 998\n");
	mime_free(m);

	mime_limits_default(&lim);
	lim.max_parts = 5000;
	m = parse_lim(b.data, b.len, &lim);
	ck_assert_uint_eq(mime_flags(m), 0);
	ck_assert_uint_eq(mime_nattachments(m), 2000);
	ck_assert_str_eq(text(m), "last words");
	mime_free(m);
	buf_free(&b);
}
END_TEST

START_TEST(decoded_limit)
{
	struct buf b = BUF_INIT;
	unsigned char *att = blob(10000, 4);
	struct mime_limits lim;
	struct mime_msg *m;

	buf_appends(&b, "Content-Type: multipart/mixed; boundary=dl\r\n\r\n"
	    "--dl\r\nContent-Type: application/x-a\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n");
	b64(&b, att, 10000);
	buf_appends(&b, "\r\n--dl\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "text after the attachment\r\n--dl--\r\n");

	mime_limits_default(&lim);
	lim.max_decoded = 4096;
	m = parse_lim(b.data, b.len, &lim);
	ck_attachment(mime_attachment(m, 0), NULL, "application/x-a", att,
	    4095);
	ck_assert(mime_flags(m) & MIME_TRUNCATED);
	/* one byte of budget left for the text */
	ck_assert_str_eq(text(m), "t");
	mime_free(m);

	lim.max_decoded = 10000 + 10;
	m = parse_lim(b.data, b.len, &lim);
	ck_attachment(mime_attachment(m, 0), NULL, "application/x-a", att,
	    10000);
	ck_assert_uint_eq(mime_flags(m), 0);
	ck_assert_str_eq(text(m), "text after");
	ck_assert_uint_eq(mime_flags(m), MIME_TRUNCATED);
	mime_free(m);
	buf_free(&b);
	free(att);
}
END_TEST

START_TEST(header_limit)
{
	struct buf b = BUF_INIT;
	struct mime_msg *m;
	int i;

	for (i = 0; i < 1500; i++)
		buf_appendf(&b, "X-N: %d\r\n", i);
	buf_appends(&b, "Subject: late\r\n\r\nbody\r\n");
	m = parse_lim(b.data, b.len, NULL);
	ck_assert_uint_eq(mime_nheaders(m), MIME_DEF_HEADERS);
	ck_assert_str_eq(mime_header(m, "x-n", 999, NULL), "999");
	ck_assert_ptr_null(mime_subject(m, NULL));
	ck_assert_str_eq(text(m), "body\n");
	ck_assert_uint_eq(mime_flags(m), MIME_HEADERS);
	mime_free(m);
	buf_free(&b);
}
END_TEST

START_TEST(flag_names)
{
	char s[64];

	ck_assert_str_eq(mime_strflags(0, s, sizeof(s)), "none");
	ck_assert_str_eq(mime_strflags(MIME_DEPTH | MIME_UNCLOSED |
	    MIME_MALFORMED, s, sizeof(s)), "depth,malformed,unclosed");
	ck_assert_str_eq(mime_strflags(MIME_TRUNCATED | MIME_PARTS, s, 16),
	    "truncated,parts");
	ck_assert_str_eq(mime_strflags(MIME_TRUNCATED | MIME_PARTS, s, 12),
	    "truncated");
}
END_TEST

/*
 * Inputs that would take quadratic time in a careless parser. Each is a
 * few megabytes; the test case timeout is the bound.
 */
START_TEST(linear_work)
{
	struct buf b = BUF_INIT;
	struct mime_msg *m;
	size_t i;

	/* lines that almost match a deep stack of boundaries */
	for (i = 0; i < 16; i++)
		buf_appendf(&b, "Content-Type: multipart/mixed; "
		    "boundary=\"%060zu\"\r\n\r\n--%060zu\r\n", i, i);
	for (i = 0; i < 40000; i++)
		buf_appendf(&b, "--%059zux\r\n", (size_t)0);
	m = parse_lim(b.data, b.len, NULL);
	ck_assert(mime_text(m, NULL) != NULL);
	mime_free(m);

	/* an encoded-word start on every few bytes of a long subject */
	buf_reset(&b);
	buf_appends(&b, "Subject: ");
	for (i = 0; i < 400000; i++)
		buf_appends(&b, "=?a?q?=?");
	buf_appends(&b, "\r\n\r\n");
	m = parse_lim(b.data, b.len, NULL);
	ck_assert(mime_subject(m, NULL) != NULL);
	mime_free(m);

	/* HTML of unfinished constructs */
	buf_reset(&b);
	buf_appends(&b, "Content-Type: text/html\r\n\r\n");
	for (i = 0; i < 300000; i++)
		buf_appends(&b, "<a x='<!--&#<");
	m = parse_lim(b.data, b.len, NULL);
	ck_assert(mime_text(m, NULL) != NULL);
	mime_free(m);
	buf_free(&b);
}
END_TEST

/* Random mutations of the corpus */

#ifndef MIME_MUTATIONS
#define MIME_MUTATIONS	4000
#endif
#ifndef MIME_SEED
#define MIME_SEED	0x9e3779b97f4a7c15ULL
#endif

static uint64_t rng = MIME_SEED;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const tokens[] = {
	"--", "\r\n", "\n", "\r\n\r\n", "--b1", "--b1--", "--outer\r\n",
	"--in--", "=?utf-8?b?", "=?iso-8859-1?q?", "?=", "=", "=\r\n", "=C3",
	"Content-Type: multipart/mixed; boundary=b1\r\n",
	"Content-Type: message/rfc822\r\n",
	"Content-Transfer-Encoding: base64\r\n",
	"Content-Transfer-Encoding: quoted-printable\r\n",
	"Content-Disposition: attachment; filename*0*=utf-8''%E2; "
	    "filename*1=x\r\n",
	"charset=koi8-r", "charset=utf-16", "<", ">", "<!--", "<script>", "&#",
	"&#x110000;", "\"", "'", ";", ":", " ", "\t", "\xff", "\xc3", "\0",
};

static void
mutate(struct buf *b)
{
	size_t n = 1 + rnd() % 8, k, at, len;
	const char *t;
	struct buf tmp = BUF_INIT;

	while (n-- > 0) {
		at = b->len ? rnd() % b->len : 0;
		switch (rnd() % 6) {
		case 0:				/* one byte */
			if (b->len)
				b->data[at] = (char)rnd();
			break;
		case 1:				/* a token */
			t = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
			len = *t ? strlen(t) : 1;
			buf_reset(&tmp);
			buf_append(&tmp, b->data + at, b->len - at);
			b->len = at;
			buf_append(b, t, len);
			buf_append(b, tmp.data, tmp.len);
			break;
		case 2:				/* a hole */
			len = rnd() % 64;
			if (len > b->len - at)
				len = b->len - at;
			memmove(b->data + at, b->data + at + len,
			    b->len - at - len);
			b->len -= len;
			break;
		case 3:				/* a repeat */
			len = rnd() % 256;
			if (len > b->len - at)
				len = b->len - at;
			buf_reset(&tmp);
			buf_append(&tmp, b->data + at, len);
			buf_append(&tmp, b->data + at, b->len - at);
			b->len = at;
			buf_append(b, tmp.data, tmp.len);
			break;
		case 4:				/* cut */
			b->len = at;
			break;
		default:			/* CRLF to LF */
			for (k = at; k + 1 < b->len; k++)
				if (b->data[k] == '\r' && b->data[k + 1] == '\n') {
					memmove(b->data + k, b->data + k + 1,
					    b->len - k - 1);
					b->len--;
					break;
				}
			break;
		}
	}
	buf_free(&tmp);
}

/* Read everything the parser hands out, so the sanitizers see it. */
static void
consume(struct mime_msg *m, size_t inlen, const struct mime_limits *lim)
{
	const struct mime_attachment *a;
	const char *s, *name;
	size_t i, j, len, nl;
	unsigned sum = 0;

	for (i = 0; i < mime_nheaders(m); i++) {
		s = mime_header_at(m, i, &name, &nl, &len);
		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(s[len], '\0');
		for (j = 0; j < nl; j++)
			sum += (unsigned char)name[j];
	}
	if ((s = mime_subject(m, &len)) != NULL)
		ck_assert_int_eq(s[len], '\0');
	ck_assert_ptr_nonnull(s = mime_text(m, &len));
	ck_assert_int_eq(s[len], '\0');
	for (j = 0; j < len; j++)
		sum += (unsigned char)s[j];
	for (i = 0; i < mime_nattachments(m); i++) {
		a = mime_attachment(m, i);
		ck_assert_ptr_nonnull(a->content_type);
		ck_assert_ptr_nonnull(a->content);
		if (a->filename)
			ck_assert_int_eq(a->filename[a->filename_len], '\0');
		for (j = 0; j < a->size; j++)
			sum += (unsigned char)a->content[j];
	}
	/* at most one raw part per open multipart past the limit */
	ck_assert_uint_le(mime_nparts(m),
	    (size_t)(lim->max_parts ? lim->max_parts : 1) + lim->max_depth);
	ck_assert_uint_le(len, lim->max_decoded ? lim->max_decoded : 4 * inlen);
	(void)sum;
}

START_TEST(mutations)
{
	struct buf corpus[12], b = BUF_INIT;
	struct mime_limits lim;
	struct mime_msg *m;
	unsigned char *att = blob(700, 7);
	size_t nc = 0, i;
	int iter;

	for (i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
		buf_init(&corpus[i]);
	buf_appends(&corpus[nc++], msg_alternative);
	buf_appends(&corpus[nc++], msg_qp);
	buf_appends(&corpus[nc++], msg_8bit);
	buf_appends(&corpus[nc++], msg_latin);
	buf_appends(&corpus[nc++], msg_rfc2231);
	buf_appends(&corpus[nc++], msg_folding);
	buf_appends(&corpus[nc++], msg_lf);
	forwarded(&corpus[nc++], "7bit", att, 700);
	forwarded(&corpus[nc++], "base64", att, 700);
	forwarded(&corpus[nc++], "quoted-printable", att, 300);

	for (iter = 0; iter < MIME_MUTATIONS; iter++) {
		i = rnd() % nc;
		buf_reset(&b);
		buf_append(&b, corpus[i].data, corpus[i].len);
		mutate(&b);
		mime_limits_default(&lim);
		if (iter % 4 == 1) {
			lim.max_depth = (unsigned)(rnd() % 4);
			lim.max_parts = (unsigned)(rnd() % 6);
			lim.max_headers = (unsigned)(rnd() % 8);
			lim.max_decoded = rnd() % 2000;
		}
		/* an exact-size copy, so ASan sees any read past the end */
		{
			char *exact = malloc(b.len ? b.len : 1);

			ck_assert_ptr_nonnull(exact);
			if (b.len)
				memcpy(exact, b.data, b.len);
			m = parse_lim(exact, b.len, &lim);
			consume(m, b.len, &lim);
			mime_free(m);
			free(exact);
		}
	}
	for (i = 0; i < nc; i++)
		buf_free(&corpus[i]);
	buf_free(&b);
	free(att);
}
END_TEST

static Suite *
mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, alternative);
	tcase_add_test(tc, nested_attachments);
	tcase_add_test(tc, quoted_printable);
	tcase_add_loop_test(tc, subject_2047, 0,
	    (int)(sizeof(subjects) / sizeof(subjects[0])));
	tcase_add_test(tc, subject_absent);
	tcase_add_test(tc, body_8bit);
	tcase_add_test(tc, charsets);
	tcase_add_test(tc, charset_unknown_and_invalid);
	tcase_add_test(tc, base64_text_and_bad_base64);
	tcase_add_loop_test(tc, rfc822_attachment, 0, 2);
	tcase_add_test(tc, filenames);
	tcase_add_test(tc, header_folding);
	tcase_add_test(tc, no_blank_line);
	tcase_add_test(tc, lf_only);
	suite_add_tcase(s, tc);

	tc = tcase_create("broken");
	tcase_add_test(tc, truncated_in_base64);
	tcase_add_test(tc, truncated_in_headers);
	tcase_add_test(tc, missing_final_boundary);
	tcase_add_test(tc, boundary_problems);
	tcase_add_test(tc, digest);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, depth_bomb);
	tcase_add_test(tc, part_bomb);
	tcase_add_test(tc, decoded_limit);
	tcase_add_test(tc, header_limit);
	tcase_add_test(tc, flag_names);
	tcase_add_test(tc, linear_work);
	suite_add_tcase(s, tc);

	tc = tcase_create("mutations");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, mutations);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mime_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
