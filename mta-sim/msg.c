/*
 * msg: messages as the roles see them. A sim_msg is one recorded message
 * (envelope, trace and content) owned by the role that recorded it;
 * sim_msg_build() writes the RFC 5322 messages that scenarios send.
 *
 * Content handed to us is untrusted: headers are found by walking lines
 * within the buffer's length, never by string functions that trust a NUL.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "sim.h"

#define MSG_LINE_WIDTH	76		/* base64 and padding lines */
#define MSG_WORD_BYTES	45		/* input bytes per RFC 2047 encoded word */

static const char msg_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static unsigned long msg_seq;

/* ---- recorded messages ----------------------------------------------- */

struct sim_msg *
sim_msg_new(void)
{
	struct sim_msg *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	buf_init(&m->content);
	return m;
}

void
sim_msg_free(struct sim_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	free((char *)m->role);
	free((char *)m->listener);
	free((char *)m->client_ip);
	free((char *)m->helo);
	free((char *)m->mail_from);
	free((char *)m->tls);
	for (i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	buf_free(&m->content);
	free(m);
}

/* Replace one of m's strings with a copy of s (NULL stays NULL). */
int
sim_msg_set(const char **field, const char *s)
{
	char *c = NULL;

	if (s != NULL && (c = strdup(s)) == NULL)
		return -1;
	free((char *)*field);
	*field = c;
	return 0;
}

int
sim_msg_add_rcpt(struct sim_msg *m, const char *addr)
{
	char **v, *c;

	if ((c = strdup(addr)) == NULL)
		return -1;
	if ((v = reallocarray(m->rcpts, m->nrcpts + 1, sizeof(*v))) == NULL) {
		free(c);
		return -1;
	}
	v[m->nrcpts++] = c;
	m->rcpts = v;
	return 0;
}

struct sim_msg *
sim_msg_dup(const struct sim_msg *src)
{
	struct sim_msg *m;
	size_t i;

	if ((m = sim_msg_new()) == NULL)
		return NULL;
	m->id = src->id;
	m->t = src->t;
	if (sim_msg_set(&m->role, src->role) == -1 ||
	    sim_msg_set(&m->listener, src->listener) == -1 ||
	    sim_msg_set(&m->client_ip, src->client_ip) == -1 ||
	    sim_msg_set(&m->helo, src->helo) == -1 ||
	    sim_msg_set(&m->mail_from, src->mail_from) == -1 ||
	    sim_msg_set(&m->tls, src->tls) == -1 ||
	    buf_append(&m->content, src->content.data, src->content.len) == -1)
		goto fail;
	for (i = 0; i < src->nrcpts; i++)
		if (sim_msg_add_rcpt(m, src->rcpts[i]) == -1)
			goto fail;
	return m;
fail:
	sim_msg_free(m);
	return NULL;
}

/* ---- headers ----------------------------------------------------------- */

/*
 * Length of the header block of c[0..len): up to and including the empty
 * line that ends it, or all of it when there is none.
 */
size_t
sim_msg_header_len(const char *c, size_t len)
{
	size_t i = 0;
	const char *nl;

	while (i < len) {
		if (c[i] == '\n')
			return i + 1;
		if (c[i] == '\r' && i + 1 < len && c[i + 1] == '\n')
			return i + 2;
		if ((nl = memchr(c + i, '\n', len - i)) == NULL)
			return len;
		i = (size_t)(nl - c) + 1;
	}
	return len;
}

/*
 * The next header field at *off in the header block: its name and its raw
 * value (after the colon, folding included). 0 when there is none left.
 */
static int
msg_next_field(const char *c, size_t hlen, size_t *off, const char **name,
    size_t *namelen, const char **val, size_t *vallen)
{
	size_t i = *off, start, colon, end;
	const char *nl;

	for (;;) {
		if (i >= hlen || c[i] == '\r' || c[i] == '\n')
			return 0;
		start = i;
		/* The field runs to the first line end not followed by WSP. */
		for (;;) {
			if ((nl = memchr(c + i, '\n', hlen - i)) == NULL) {
				end = hlen;
				i = hlen;
				break;
			}
			i = (size_t)(nl - c) + 1;
			if (i >= hlen || (c[i] != ' ' && c[i] != '\t')) {
				end = i;
				break;
			}
		}
		for (colon = start; colon < end && c[colon] != ':' &&
		    c[colon] != '\r' && c[colon] != '\n'; colon++)
			;
		if (colon < end && c[colon] == ':' && colon > start)
			break;
		/* Not a field (no colon): skip it, as a lenient reader does. */
	}
	*off = i;
	*name = c + start;
	*namelen = colon - start;
	while (*namelen > 0 && ((*name)[*namelen - 1] == ' ' ||
	    (*name)[*namelen - 1] == '\t'))
		(*namelen)--;
	*val = c + colon + 1;
	*vallen = end - colon - 1;
	return 1;
}

/* Unfold and trim a raw value into dst (truncated to fit, NUL-terminated). */
static size_t
msg_unfold(const char *v, size_t len, char *dst, size_t dstsz)
{
	size_t i, n = 0;

	for (i = 0; i < len && n + 1 < dstsz; i++) {
		if (v[i] == '\r' || v[i] == '\n')
			continue;
		/* Leading white space, folded or not, is not the value. */
		if (n == 0 && (v[i] == ' ' || v[i] == '\t'))
			continue;
		dst[n++] = v[i];
	}
	while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\t'))
		n--;
	if (dstsz > 0)
		dst[n] = '\0';
	return n;
}

const char *
sim_msg_header(const struct sim_msg *m, const char *name, char *dst,
    size_t dstsz)
{
	const char *c = m->content.data, *fn, *fv;
	size_t hlen, off = 0, fnl, fvl, nl = strlen(name);

	if (c == NULL || dstsz == 0)
		return NULL;
	hlen = sim_msg_header_len(c, m->content.len);
	while (msg_next_field(c, hlen, &off, &fn, &fnl, &fv, &fvl))
		if (fnl == nl && strncasecmp(fn, name, nl) == 0) {
			msg_unfold(fv, fvl, dst, dstsz);
			return dst;
		}
	return NULL;
}

int
sim_msg_header_is(const struct sim_msg *m, const char *name,
    const char *value)
{
	const char *c = m->content.data, *fn, *fv;
	size_t hlen, off = 0, fnl, fvl, nl = strlen(name);
	char v[1024];

	if (c == NULL)
		return 0;
	hlen = sim_msg_header_len(c, m->content.len);
	while (msg_next_field(c, hlen, &off, &fn, &fnl, &fv, &fvl)) {
		if (fnl != nl || strncasecmp(fn, name, nl) != 0)
			continue;
		/* A value too long for v cannot equal a configured one. */
		if (fvl < sizeof(v) && (msg_unfold(fv, fvl, v, sizeof(v)),
		    strcasecmp(v, value) == 0))
			return 1;
	}
	return 0;
}

int
sim_msg_split_header(const char *line, char *name, size_t namesz,
    const char **value)
{
	const char *colon = strchr(line, ':');
	size_t n;

	if (colon == NULL || colon == line)
		return -1;
	n = (size_t)(colon - line);
	if (n >= namesz)
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] <= 0x20 || line[i] == 0x7f)
			return -1;
	memcpy(name, line, n);
	name[n] = '\0';
	colon++;
	while (*colon == ' ' || *colon == '\t')
		colon++;
	for (const char *p = colon; *p != '\0'; p++)
		if (*p == '\r' || *p == '\n')
			return -1;
	*value = colon;
	return 0;
}

/* ---- building messages --------------------------------------------------- */

int
sim_msg_base64(struct buf *out, const unsigned char *p, size_t len,
    size_t width)
{
	size_t i, col = 0;
	char q[4];

	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		q[0] = msg_b64[(v >> 18) & 63];
		q[1] = msg_b64[(v >> 12) & 63];
		q[2] = i + 1 < len ? msg_b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? msg_b64[v & 63] : '=';
		if (buf_append(out, q, 4) == -1)
			return -1;
		col += 4;
		if (width > 0 && col >= width && i + 3 < len) {
			if (buf_append(out, "\r\n", 2) == -1)
				return -1;
			col = 0;
		}
	}
	if (width > 0 && len > 0)
		return buf_append(out, "\r\n", 2);
	return 0;
}

/* A header value must stay on its line. */
static int
msg_clean(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

static int
msg_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* Subject: as is when ASCII, else RFC 2047 encoded words, whole characters each. */
static int
msg_subject(struct buf *out, const char *s)
{
	size_t len = strlen(s), i = 0, n;

	if (msg_ascii(s, len))
		return buf_appendf(out, "Subject: %s\r\n", s);
	if (buf_appends(out, "Subject:") == -1)
		return -1;
	while (i < len) {
		n = len - i < MSG_WORD_BYTES ? len - i : MSG_WORD_BYTES;
		/* Never split a UTF-8 sequence: back off continuation bytes. */
		while (i + n < len && n > 1 &&
		    ((unsigned char)s[i + n] & 0xc0) == 0x80)
			n--;
		if (buf_appends(out, i == 0 ? " =?UTF-8?B?" : "\r\n =?UTF-8?B?") == -1 ||
		    sim_msg_base64(out, (const unsigned char *)s + i, n, 0) == -1 ||
		    buf_appends(out, "?=") == -1)
			return -1;
		i += n;
	}
	return buf_append(out, "\r\n", 2);
}

/* Text with any line ending, as CRLF lines (a last line gets its CRLF). */
static int
msg_crlf(struct buf *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
				i++;
			if (buf_append(out, "\r\n", 2) == -1)
				return -1;
		} else if (buf_append(out, &s[i], 1) == -1)
			return -1;
	}
	if (len > 0 && s[len - 1] != '\n' && s[len - 1] != '\r')
		return buf_append(out, "\r\n", 2);
	return 0;
}

/* filename="x", or RFC 2231 filename*=UTF-8''%XX when it needs escaping. */
static int
msg_param(struct buf *out, const char *key, const char *v)
{
	const unsigned char *p;
	int plain = 1;

	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			plain = 0;
	if (plain)
		return buf_appendf(out, "; %s=\"%s\"", key, v);
	if (buf_appendf(out, "; %s*=UTF-8''", key) == -1)
		return -1;
	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		int r = isalnum(*p) || *p == '.' || *p == '-' || *p == '_' ?
		    buf_append(out, p, 1) : buf_appendf(out, "%%%02X", *p);

		if (r == -1)
			return -1;
	}
	return 0;
}

/* Filler lines of about MSG_LINE_WIDTH octets until n octets were added. */
static int
msg_pad(struct buf *out, size_t n)
{
	size_t start = out->len;
	unsigned long line = 0;

	while (out->len - start < n) {
		size_t ls = out->len;

		if (buf_appendf(out, "mta-sim padding line %06lu ", ++line) == -1)
			return -1;
		while (out->len - ls < MSG_LINE_WIDTH)
			if (buf_append(out, "x", 1) == -1)
				return -1;
		if (buf_append(out, "\r\n", 2) == -1)
			return -1;
	}
	return 0;
}

static int
msg_check_spec(const struct sim_msg_spec *sp)
{
	char name[256];
	const char *v;
	size_t i;

	if (!msg_clean(sp->from) || !msg_clean(sp->to) || !msg_clean(sp->subject))
		return -1;
	for (i = 0; i < sp->nheaders; i++)
		if (sp->headers[i] == NULL ||
		    sim_msg_split_header(sp->headers[i], name, sizeof(name),
		    &v) == -1)
			return -1;
	for (i = 0; i < sp->nattachments; i++) {
		const struct sim_attachment *a = &sp->attachments[i];

		if (a->filename == NULL || !msg_clean(a->filename) ||
		    !msg_clean(a->content_type) || (a->data == NULL && a->len > 0))
			return -1;
	}
	return 0;
}

int
sim_msg_build(struct buf *out, const struct sim_msg_spec *sp)
{
	struct buf head = BUF_INIT, text = BUF_INIT, tail = BUF_INIT;
	const char *body = sp->body != NULL ? sp->body : "";
	char date[64], host[128], boundary[96];
	time_t now = time(NULL);
	size_t blen = strlen(body), i, total, start = out->len;
	int r = -1, multi = sp->nattachments > 0, ascii;

	if (msg_check_spec(sp) == -1)
		return -1;
	msg_seq++;
	sim_date(date, sizeof(date));
	if (gethostname(host, sizeof(host)) != 0 || !msg_clean(host) ||
	    host[0] == '\0')
		snprintf(host, sizeof(host), "mta-sim.localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(boundary, sizeof(boundary), "=_mta-sim_%ld_%lu_%lld",
	    (long)getpid(), msg_seq, (long long)now);
	ascii = msg_ascii(body, blen);

	if (buf_appendf(&head, "Date: %s\r\n", date) == -1 ||
	    (sp->from != NULL && buf_appendf(&head, "From: %s\r\n", sp->from) == -1) ||
	    (sp->to != NULL && buf_appendf(&head, "To: %s\r\n", sp->to) == -1) ||
	    (sp->subject != NULL && msg_subject(&head, sp->subject) == -1) ||
	    buf_appendf(&head, "Message-ID: <mta-sim.%ld.%lu.%lld@%s>\r\n",
	    (long)getpid(), msg_seq, (long long)now, host) == -1)
		goto out;
	for (i = 0; i < sp->nheaders; i++)
		if (buf_appendf(&head, "%s\r\n", sp->headers[i]) == -1)
			goto out;
	if (buf_appends(&head, "MIME-Version: 1.0\r\n") == -1)
		goto out;
	if (multi) {
		if (buf_appendf(&head, "Content-Type: multipart/mixed; "
		    "boundary=\"%s\"\r\n\r\nThis is a multi-part message in "
		    "MIME format.\r\n\r\n--%s\r\n", boundary, boundary) == -1)
			goto out;
	}
	if (buf_appendf(&head, "Content-Type: text/plain; charset=%s\r\n"
	    "Content-Transfer-Encoding: %s\r\n\r\n", ascii ? "us-ascii" :
	    "utf-8", ascii ? "7bit" : "8bit") == -1)
		goto out;
	if (msg_crlf(&text, body, blen) == -1)
		goto out;

	for (i = 0; i < sp->nattachments; i++) {
		const struct sim_attachment *a = &sp->attachments[i];
		const char *ct = a->content_type != NULL ? a->content_type :
		    "application/octet-stream";

		if (buf_appendf(&tail, "\r\n--%s\r\nContent-Type: %s", boundary,
		    ct) == -1 || msg_param(&tail, "name", a->filename) == -1 ||
		    buf_appends(&tail, "\r\nContent-Transfer-Encoding: base64\r\n"
		    "Content-Disposition: attachment") == -1 ||
		    msg_param(&tail, "filename", a->filename) == -1 ||
		    buf_appends(&tail, "\r\n\r\n") == -1 ||
		    sim_msg_base64(&tail, (const unsigned char *)a->data, a->len,
		    MSG_LINE_WIDTH) == -1)
			goto out;
	}
	if (multi && buf_appendf(&tail, "\r\n--%s--\r\n", boundary) == -1)
		goto out;

	total = head.len + text.len + tail.len;
	if (sp->pad_to > total && msg_pad(&text, sp->pad_to - total) == -1)
		goto out;
	if (buf_append(out, head.data, head.len) == -1 ||
	    buf_append(out, text.data, text.len) == -1 ||
	    buf_append(out, tail.data, tail.len) == -1)
		goto out;
	r = 0;
out:
	if (r == -1)
		out->len = start;
	buf_free(&head);
	buf_free(&text);
	buf_free(&tail);
	return r;
}
