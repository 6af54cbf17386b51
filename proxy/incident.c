#include "incident.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t
incident_utf8(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* No overlong forms, surrogates or code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * A JSON string: quotes, backslash and control bytes escaped, valid UTF-8
 * kept, and every byte that is not valid UTF-8 (header values come from
 * the sender) replaced by U+FFFD, so each line is valid JSON.
 */
static int
incident_str(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), i = 0, k;

	if (buf_append(out, "\"", 1) == -1)
		return -1;
	while (i < n) {
		unsigned char c = p[i];
		char esc[6];

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
			if ((k = incident_utf8(p + i, n - i)) == 0) {
				if (buf_appends(out, "\\ufffd") == -1)
					return -1;
				i++;
				continue;
			}
			if (buf_append(out, p + i, k) == -1)
				return -1;
			i += k;
			continue;
		}
		esc[0] = '\\';
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			k = 2;
		} else {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			k = 6;
		}
		if (buf_append(out, esc, k) == -1)
			return -1;
		i++;
	}
	return buf_append(out, "\"", 1);
}

static int
incident_field(struct buf *out, const char *key, const char *val)
{
	if (buf_appendf(out, ",\"%s\":", key) == -1)
		return -1;
	return incident_str(out, val);
}

int
incident_format(struct buf *out, const struct incident *in, double now)
{
	const struct verdict *v = in->verdict;
	char ts[64];
	struct tm tm;
	time_t secs = (time_t)now;
	size_t i;
	int r = 0;

	gmtime_r(&secs, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)((now - (double)secs) * 1000));
	r |= buf_appendf(out, "{\"time\":\"%s\"", ts);
	r |= incident_field(out, "queue_id", in->queue_id);
	r |= incident_field(out, "message_id", in->message_id);
	r |= incident_field(out, "sender", in->sender);
	r |= buf_appends(out, ",\"recipients\":[");
	for (i = 0; i < in->nrecipients; i++) {
		if (i)
			r |= buf_append(out, ",", 1);
		r |= incident_str(out, in->recipients[i]);
	}
	r |= buf_append(out, "]", 1);
	r |= incident_field(out, "client_ip", in->client_ip);
	r |= incident_field(out, "helo", in->helo);
	r |= buf_appends(out, ",\"policies\":[");
	for (i = 0; v && i < v->nhits; i++) {
		r |= buf_appends(out, i ? ",{\"name\":" : "{\"name\":");
		r |= incident_str(out, v->hits[i].name);
		r |= buf_appendf(out, ",\"matches\":%llu",
		    (unsigned long long)v->hits[i].count);
		if (v->hits[i].sample[0] != '\0')
			r |= incident_field(out, "sample", v->hits[i].sample);
		r |= buf_append(out, "}", 1);
	}
	r |= buf_append(out, "]", 1);
	r |= incident_field(out, "action", in->action);
	r |= buf_appendf(out, ",\"trial\":%s", in->trial ? "true" : "false");
	if (in->would)
		r |= incident_field(out, "would", in->would);
	if (in->reply)
		r |= buf_appendf(out, ",\"reply\":%d", in->reply);
	if (in->redirect_to)
		r |= incident_field(out, "redirect_to", in->redirect_to);
	if (v && v->error) {
		r |= incident_field(out, "error_policy", v->error_policy);
		r |= incident_field(out, "error", v->error_msg);
	}
	r |= buf_appends(out, "}\n");
	return r ? -1 : 0;
}

int
incident_write(const char *path, const struct incident *in)
{
	struct buf line = BUF_INIT;
	struct timeval tv;
	ssize_t n;
	int fd, saved;

	gettimeofday(&tv, NULL);
	if (incident_format(&line, in, (double)tv.tv_sec +
	    (double)tv.tv_usec / 1e6) == -1) {
		buf_free(&line);
		errno = ENOMEM;
		return -1;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1) {
		buf_free(&line);
		return -1;
	}
	n = write(fd, line.data, line.len);
	saved = errno;
	close(fd);
	if (n != (ssize_t)line.len) {
		buf_free(&line);
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	buf_free(&line);
	return 0;
}
