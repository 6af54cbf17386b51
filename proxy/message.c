/*
 * message: header look-ups, policy edits and re-serialisation.
 */
#include "message.h"

#include <string.h>
#include <strings.h>

#include "smtp_data.h"

size_t
message_header_end(const char *c, size_t len)
{
	size_t i = 0;

	/* An empty line right at the start: no headers at all. */
	if (len >= 2 && c[0] == '\r' && c[1] == '\n')
		return 2;
	while (i < len) {
		const char *nl = memchr(c + i, '\n', len - i);

		if (nl == NULL)
			return len;
		i = (size_t)(nl - c) + 1;
		if (i + 1 < len && c[i] == '\r' && c[i + 1] == '\n')
			return i + 2;
	}
	return len;
}

int
message_find_header(const char *c, size_t len, const char *name,
    size_t *start, size_t *end)
{
	size_t hend = message_header_end(c, len), nlen = strlen(name), i = 0;

	while (i < hend) {
		const char *nl = memchr(c + i, '\n', hend - i);
		size_t next = nl ? (size_t)(nl - c) + 1 : hend;

		if (next - i > nlen && c[i + nlen] == ':' &&
		    strncasecmp(c + i, name, nlen) == 0) {
			*start = i;
			/* Continuation lines start with SP or HT. */
			while (next < hend && (c[next] == ' ' || c[next] == '\t')) {
				nl = memchr(c + next, '\n', hend - next);
				next = nl ? (size_t)(nl - c) + 1 : hend;
			}
			*end = next;
			return 0;
		}
		i = next;
	}
	return -1;
}

const char *
message_header_value(const char *c, size_t len, const char *name, char *dst,
    size_t dstsz)
{
	size_t s, e, o = 0, i;
	int space = 0;

	if (dstsz == 0)
		return dst;
	dst[0] = '\0';
	if (message_find_header(c, len, name, &s, &e) == -1)
		return dst;
	for (i = s + strlen(name) + 1; i < e && o + 1 < dstsz; i++) {
		char ch = c[i];

		if (ch == '\r' || ch == '\n' || ch == ' ' || ch == '\t') {
			space = o > 0;
			continue;
		}
		if (space) {
			dst[o++] = ' ';
			space = 0;
			if (o + 1 >= dstsz)
				break;
		}
		dst[o++] = ch;
	}
	dst[o] = '\0';
	return dst;
}

/* RFC 2047 B-encoding in words that keep folded lines under 76 columns. */
static int
message_encode_words(struct buf *out, const char *s, size_t len)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i = 0;

	while (i < len) {
		size_t n = len - i > 36 ? 36 : len - i;

		/* Do not split a UTF-8 sequence between words. */
		while (n < len - i && n > 1 &&
		    ((unsigned char)s[i + n] & 0xc0) == 0x80)
			n--;
		if (buf_appends(out, i ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?") == -1)
			return -1;
		for (size_t k = 0; k < n; k += 3) {
			unsigned char in[3] = { 0, 0, 0 };
			size_t m = n - k < 3 ? n - k : 3;
			char o[4];

			memcpy(in, s + i + k, m);
			for (size_t z = 0; z < m; z++)
				if (in[z] < 0x20 || in[z] == 0x7f)
					in[z] = ' ';
			o[0] = b64[in[0] >> 2];
			o[1] = b64[((in[0] & 3) << 4) | (in[1] >> 4)];
			o[2] = m > 1 ? b64[((in[1] & 15) << 2) | (in[2] >> 6)] : '=';
			o[3] = m > 2 ? b64[in[2] & 63] : '=';
			if (buf_append(out, o, 4) == -1)
				return -1;
		}
		if (buf_appends(out, "?=") == -1)
			return -1;
		i += n;
	}
	return 0;
}

/* Columns used on the last line of out. */
static size_t
message_column(const struct buf *out)
{
	size_t i = out->len;

	while (i > 0 && out->data[i - 1] != '\n')
		i--;
	return out->len - i;
}

/*
 * ASCII text, control bytes as spaces, folded at a space before a line
 * would pass 78 columns (never splitting a word, so a line can only pass
 * 998 if one word does).
 */
static int
message_ascii_words(struct buf *out, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t w = i;

		while (w < len && s[w] != ' ')
			w++;
		if (w < len)
			w++;		/* a word and the space after it */
		if (i > 0 && s[i - 1] == ' ' && message_column(out) + (w - i) > 78 &&
		    buf_appends(out, "\r\n ") == -1)
			return -1;
		for (; i < w; i++) {
			unsigned char c = (unsigned char)s[i];

			if (buf_append(out, (c < 0x20 || c == 0x7f) ? " " :
			    s + i, 1) == -1)
				return -1;
		}
	}
	return 0;
}

int
message_header_text(struct buf *out, const char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return message_encode_words(out, s, len);
	return message_ascii_words(out, s, len);
}

/*
 * A subject edit with 8-bit text: encoded words must stand apart from the
 * rest by white space (RFC 2047 5), so the space goes outside the word.
 */
static int
message_subject_text(struct buf *out, const char *s, enum policy_subject_op op)
{
	size_t len = strlen(s);
	int ascii = 1;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			ascii = 0;
	if (ascii)
		return message_ascii_words(out, s, len);
	if (op == SUBJECT_APPEND) {
		while (len > 0 && *s == ' ') {
			s++;
			len--;
		}
		if (buf_append(out, " ", 1) == -1)
			return -1;
		return message_encode_words(out, s, len);
	}
	while (len > 0 && s[len - 1] == ' ')
		len--;
	if (message_encode_words(out, s, len) == -1)
		return -1;
	return op == SUBJECT_PREPEND ? buf_append(out, " ", 1) : 0;
}

/* Octets up to the first CRLF. */
static size_t
message_line_len(const char *p, size_t len)
{
	const char *nl = memchr(p, '\r', len);

	return nl ? (size_t)(nl - p) : len;
}

/* The content with its Subject edited, into out (not stuffed). */
static int
message_edit_subject(struct buf *out, const struct message_edit *e,
    const char *c, size_t len)
{
	size_t s, end, vs, ve;
	int r = 0;

	if (message_find_header(c, len, "Subject", &s, &end) == -1) {
		/* No Subject: every operation creates one, at the top. */
		r |= buf_appends(out, "Subject: ");
		r |= message_subject_text(out, e->subject, SUBJECT_REPLACE);
		r |= buf_append(out, "\r\n", 2);
		r |= buf_append(out, c, len);
		return r ? -1 : 0;
	}
	vs = s + strlen("Subject:");
	if (vs < end && c[vs] == ' ')
		vs++;
	/* Before the final CRLF (a field without one ends at its end). */
	ve = end >= vs + 2 && c[end - 2] == '\r' && c[end - 1] == '\n' ?
	    end - 2 : end;
	r |= buf_append(out, c, vs);
	switch (e->subject_op) {
	case SUBJECT_PREPEND:
		r |= message_subject_text(out, e->subject, SUBJECT_PREPEND);
		/* Keep the first original line under 998 octets. */
		if (message_column(out) + message_line_len(c + vs, len - vs) > 998)
			r |= buf_appends(out, "\r\n ");
		r |= buf_append(out, c + vs, len - vs);
		break;
	case SUBJECT_APPEND:
		r |= buf_append(out, c + vs, ve - vs);
		r |= message_subject_text(out, e->subject, SUBJECT_APPEND);
		r |= buf_append(out, c + ve, len - ve);
		break;
	case SUBJECT_REPLACE:
		r |= message_subject_text(out, e->subject, SUBJECT_REPLACE);
		r |= buf_append(out, c + ve, len - ve);
		break;
	case SUBJECT_NONE:
		r |= buf_append(out, c + vs, len - vs);
		break;
	}
	return r ? -1 : 0;
}

int
message_serialize(struct buf *out, const char *pass_header,
    const struct message_edit *e, const char *content, size_t len)
{
	struct buf edited = BUF_INIT;
	size_t hl = strlen(pass_header), i;
	int r;

	/* Reserve once: content plus a little for stuffing and terminator. */
	if (buf_reserve(out, hl + 2 + len + len / 64 + 1024) == -1)
		return -1;
	/* A field name may start with a dot: such a line is stuffed too. */
	if (hl > 0 && ((pass_header[0] == '.' && buf_append(out, ".", 1) == -1) ||
	    buf_append(out, pass_header, hl) == -1 ||
	    buf_append(out, "\r\n", 2) == -1))
		return -1;
	for (i = 0; e != NULL && i < e->nheaders; i++)
		if ((e->headers[i][0] == '.' && buf_append(out, ".", 1) == -1) ||
		    buf_appends(out, e->headers[i]) == -1 ||
		    buf_append(out, "\r\n", 2) == -1)
			return -1;
	if (e == NULL || e->subject_op == SUBJECT_NONE)
		return smtp_data_stuff(out, content, len);
	if (message_edit_subject(&edited, e, content, len) == -1) {
		buf_free(&edited);
		return -1;
	}
	r = smtp_data_stuff(out, edited.data, edited.len);
	buf_free(&edited);
	return r;
}
