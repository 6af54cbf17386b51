/*
 * log: one key=value line per event on stderr.
 *   2026-11-30T11:22:33.123Z mailprevent[123] level=info sid=0000a1 event=connect client=127.0.0.1:5000
 * Values that need it are quoted with log_quote(); the whole line is
 * scrubbed of control bytes before it is written, so nothing a peer sends
 * can forge a log line.
 */
#ifndef MP_LOG_H
#define MP_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR };

void	log_init(const char *prog, enum log_level min);
void	log_set_level(enum log_level);
int	log_level_parse(const char *, enum log_level *);
/* sid may be NULL (process-wide events). fmt gives the rest: "k=v k2=%s". */
void	log_msg(enum log_level, const char *sid, const char *event,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A bad environment (configuration, permissions): log and exit(1). */
#define log_fatal(...)	log_fatal_at(__func__, __VA_ARGS__)
/* An internal inconsistency (a bug): log and abort(). */
#define log_panic(...)	log_panic_at(__func__, __VA_ARGS__)
void	log_fatal_at(const char *fn, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));
void	log_panic_at(const char *fn, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));

/*
 * Render s[0..len) as a log value into dst: bare when it is made of safe
 * characters, otherwise in double quotes with \" \\ and \xNN escapes.
 * Always NUL-terminates; truncates (ending in "...") when dst is short.
 */
const char *log_quote(char *dst, size_t dstsz, const char *s, size_t len);

#endif
