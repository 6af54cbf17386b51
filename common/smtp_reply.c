/*
 * smtp_reply: next-hop replies in, our replies out.
 *
 * A reply is fed one line at a time. The line length is checked before
 * anything else, the line count as each line arrives, and the text kept
 * is capped: a next hop that talks forever costs at most
 * SMTP_REPLY_TEXT_MAX bytes before it is cut off at SMTP_REPLY_LINES_MAX.
 *
 * The struct has no room for a parser state, so after DONE or ERROR the
 * caller must smtp_reply_reset() before feeding the next reply.
 */
#include "smtp_reply.h"

#include <string.h>

/* RFC 5321 §4.5.3.1.5: 512 octets with CRLF; we never send longer. */
#define SMTP_REPLY_SEND_MAX	510

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->enh[0] = '\0';
	r->nlines = 0;
	buf_init(&r->text);
}

void
smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	smtp_reply_init(r);
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->enh[0] = '\0';
	r->nlines = 0;
	buf_reset(&r->text);
}

static int
reply_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of an enhanced status code at the start of s (1 digit, 1-3
 * digits, 1-3 digits, dot-separated), or 0.
 */
static size_t
reply_enh_len(const char *s, size_t len)
{
	size_t i = 0, part, n;

	for (part = 0; part < 3; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
		for (n = 0; i < len && reply_digit(s[i]); i++)
			n++;
		if (n == 0 || n > (part == 0 ? 1u : 3u))
			return 0;
	}
	return i;
}

int
smtp_enh_valid(const char *enh, int code)
{
	size_t len;

	if (enh == NULL)
		return -1;
	len = strlen(enh);
	if (reply_enh_len(enh, len) != len || len == 0)
		return -1;
	if (enh[0] != '2' && enh[0] != '4' && enh[0] != '5')
		return -1;
	if (enh[0] - '0' != code / 100)
		return -1;
	return 0;
}

/*
 * When every kept line starts with the first line's enhanced code, strip
 * it (and the space after it) from each line, in place.
 */
static void
reply_strip_enh(struct smtp_reply *r)
{
	size_t el = strlen(r->enh), i, o, ll;
	char *d = r->text.data;
	const char *nl;

	if (el == 0)
		return;
	for (i = 0; i < r->text.len; i += ll + 1) {
		nl = memchr(d + i, '\n', r->text.len - i);
		ll = nl ? (size_t)(nl - (d + i)) : r->text.len - i;
		if (ll < el || memcmp(d + i, r->enh, el) != 0 ||
		    (ll > el && d[i + el] != ' '))
			return;
	}
	for (i = 0, o = 0; i < r->text.len; i += ll + 1) {
		nl = memchr(d + i, '\n', r->text.len - i);
		ll = nl ? (size_t)(nl - (d + i)) : r->text.len - i;
		if (o > 0)
			d[o++] = '\n';
		if (ll > el) {
			memmove(d + o, d + i + el + 1, ll - el - 1);
			o += ll - el - 1;
		}
	}
	r->text.len = o;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
    const char **err)
{
	const char *text;
	size_t tl, el, i, need;
	int code, last;

	if (len > SMTP_REPLY_LINE_MAX) {
		*err = "reply line too long";
		return SMTP_REPLY_ERROR;
	}
	if (r->nlines >= SMTP_REPLY_LINES_MAX) {
		*err = "too many reply lines";
		return SMTP_REPLY_ERROR;
	}
	if (len < 3 || !reply_digit(line[0]) || !reply_digit(line[1]) ||
	    !reply_digit(line[2])) {
		*err = "malformed reply code";
		return SMTP_REPLY_ERROR;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*err = "malformed reply code";
		return SMTP_REPLY_ERROR;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599) {
		*err = "reply code out of range";
		return SMTP_REPLY_ERROR;
	}
	if (r->nlines > 0 && code != r->code) {
		*err = "reply code changed within a multiline reply";
		return SMTP_REPLY_ERROR;
	}
	last = len == 3 || line[3] == ' ';
	text = len > 4 ? line + 4 : line + len;
	tl = len > 4 ? len - 4 : 0;

	if (r->nlines == 0) {
		r->code = code;
		el = reply_enh_len(text, tl);
		if (el > 0 && el < sizeof(r->enh) && (el == tl || text[el] == ' ')) {
			memcpy(r->enh, text, el);
			r->enh[el] = '\0';
			if (smtp_enh_valid(r->enh, code) == -1)
				r->enh[0] = '\0';
		}
	}
	r->nlines++;

	/*
	 * text is the joined text cut at SMTP_REPLY_TEXT_MAX: once it is
	 * full, even the '\n' of a further line no longer fits.
	 */
	need = tl + (r->nlines > 1 ? 1 : 0);
	if (need > SMTP_REPLY_TEXT_MAX - r->text.len)
		need = SMTP_REPLY_TEXT_MAX - r->text.len;
	if (need > 0) {
		if (buf_reserve(&r->text, need) == -1) {
			*err = "out of memory";
			return SMTP_REPLY_ERROR;
		}
		if (r->nlines > 1) {
			r->text.data[r->text.len++] = '\n';
			need--;
		}
		for (i = 0; i < need; i++) {
			unsigned char c = (unsigned char)text[i];

			r->text.data[r->text.len++] =
			    c >= 0x20 && c <= 0x7e ? (char)c : '?';
		}
	}
	if (!last)
		return SMTP_REPLY_MORE;
	reply_strip_enh(r);
	if (buf_cstr(&r->text) == NULL) {
		*err = "out of memory";
		return SMTP_REPLY_ERROR;
	}
	return SMTP_REPLY_DONE;
}

static int
reply_printable(unsigned char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Append one reply line, dropping bytes that are not printable ASCII. */
static int
reply_format_line(struct buf *out, int code, char sep, const char *enh,
    const char *text, size_t tl)
{
	size_t room, i, np = 0;

	for (i = 0; i < tl; i++)
		np += reply_printable((unsigned char)text[i]);
	if (buf_appendf(out, "%03d", code) == -1)
		return -1;
	if ((sep == '-' || *enh != '\0' || np > 0) &&
	    buf_appendf(out, "%c%s", sep, enh) == -1)
		return -1;
	if (*enh != '\0' && np > 0 && buf_append(out, " ", 1) == -1)
		return -1;
	room = SMTP_REPLY_SEND_MAX - 5 - strlen(enh);
	for (i = 0; i < tl && room > 0; i++) {
		if (!reply_printable((unsigned char)text[i]))
			continue;
		if (buf_append(out, &text[i], 1) == -1)
			return -1;
		room--;
	}
	return buf_append(out, "\r\n", 2);
}

int
smtp_reply_format(struct buf *out, int code, const char *enh,
    const char *text)
{
	const char *nl;
	size_t n, len, start = out->len;

	if (code < 200 || code > 599)
		return -1;
	if (enh == NULL)
		enh = "";
	if (*enh != '\0' && smtp_enh_valid(enh, code) == -1)
		return -1;
	if (text == NULL)
		text = "";
	len = strlen(text);
	if (len > 0 && text[len - 1] == '\n')
		len--;		/* a trailing newline ends the last line */
	for (;;) {
		nl = memchr(text, '\n', len);
		n = nl ? (size_t)(nl - text) : len;
		if (reply_format_line(out, code, nl ? '-' : ' ', enh,
		    text, n) == -1) {
			out->len = start;
			return -1;
		}
		if (nl == NULL)
			return 0;
		len -= n + 1;
		text = nl + 1;
	}
}
