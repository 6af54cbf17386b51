#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "mailprevent";
static pid_t log_pid;			/* glibc no longer caches getpid() */
static enum log_level log_min = LOG_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void
log_init(const char *prog, enum log_level min)
{
	log_prog = prog;
	log_min = min;
	log_pid = getpid();	/* called again in each forked worker */
}

void
log_set_level(enum log_level l)
{
	log_min = l;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

static void
log_vwrite(enum log_level, const char *, const char *, const char *, va_list)
    __attribute__((format(printf, 4, 0)));

static void
log_vwrite(enum log_level lvl, const char *sid, const char *event,
    const char *fmt, va_list ap)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int r;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	r = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] level=%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000), log_prog,
	    (long)(log_pid ? log_pid : getpid()), log_names[lvl]);
	n = r < 0 ? 0 : (size_t)r;
	if (sid != NULL && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, " sid=%s", sid);
		n += r < 0 ? 0 : (size_t)r;
	}
	if (event != NULL && n < sizeof(line)) {
		r = snprintf(line + n, sizeof(line) - n, " event=%s", event);
		n += r < 0 ? 0 : (size_t)r;
	}
	if (fmt != NULL && *fmt != '\0' && n + 1 < sizeof(line)) {
		line[n++] = ' ';
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		n += r < 0 ? 0 : (size_t)r;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;	/* truncated */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
log_msg(enum log_level lvl, const char *sid, const char *event,
    const char *fmt, ...)
{
	va_list ap;

	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	log_vwrite(lvl, sid, event, fmt, ap);
	va_end(ap);
}

void
log_fatal_at(const char *fn, const char *fmt, ...)
{
	char msg[1024], q[1100], fnq[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_ERR, NULL, "fatal", "in=%s msg=%s",
	    log_quote(fnq, sizeof(fnq), fn, strlen(fn)),
	    log_quote(q, sizeof(q), msg, strlen(msg)));
	exit(1);
}

void
log_panic_at(const char *fn, const char *fmt, ...)
{
	char msg[1024], q[1100], fnq[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_ERR, NULL, "panic", "in=%s msg=%s",
	    log_quote(fnq, sizeof(fnq), fn, strlen(fn)),
	    log_quote(q, sizeof(q), msg, strlen(msg)));
	abort();
}

static int
log_safe(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/* The escaped form of c into tmp[4]; returns its length. */
static size_t
log_esc(unsigned char c, char *tmp)
{
	static const char hex[] = "0123456789abcdef";

	if (c == '"' || c == '\\') {
		tmp[0] = '\\';
		tmp[1] = (char)c;
		return 2;
	}
	if (c < 0x20 || c >= 0x7f) {
		tmp[0] = '\\';
		tmp[1] = 'x';
		tmp[2] = hex[c >> 4];
		tmp[3] = hex[c & 0xf];
		return 4;
	}
	tmp[0] = (char)c;
	return 1;
}

const char *
log_quote(char *dst, size_t dstsz, const char *s, size_t len)
{
	char tmp[4];
	size_t i, o = 0, tl, need;
	int bare = len > 0, fits;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < len && bare; i++)
		bare = log_safe((unsigned char)s[i]);
	if (bare && len < dstsz) {
		memcpy(dst, s, len);
		dst[len] = '\0';
		return dst;
	}
	/*
	 * Truncate only what does not fit: the "..." reserve below applies
	 * when the whole quoted form plus its NUL is longer than dst.
	 */
	for (i = 0, need = 2; i < len; i++)
		need += log_esc((unsigned char)s[i], tmp);
	fits = need < dstsz;
	if (!fits && dstsz < 8) {	/* no room for even "..." */
		dst[0] = '\0';
		return dst;
	}
	dst[o++] = '"';
	for (i = 0; i < len; i++) {
		tl = log_esc((unsigned char)s[i], tmp);
		if (!fits && o + tl + 5 > dstsz) {	/* room for ...", NUL */
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, tmp, tl);
		o += tl;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}
