/*
 * smtp_reply: parsing replies from a next hop (RFC 5321 §4.2), including
 * multiline replies, and formatting replies to send. A peer's reply is
 * untrusted: limits are enforced as lines arrive, and text kept for
 * relaying is scrubbed to printable ASCII.
 */
#ifndef MP_SMTP_REPLY_H
#define MP_SMTP_REPLY_H

#include <stddef.h>

#include "buf.h"

#define SMTP_REPLY_LINE_MAX	2048	/* longer reply line = protocol error */
#define SMTP_REPLY_LINES_MAX	64	/* more lines = protocol error */
#define SMTP_REPLY_TEXT_MAX	16384	/* total text kept */

struct smtp_reply {
	int	 code;		/* 200..599 */
	char	 enh[16];	/* "2.1.0" if the first line carried one, else "" */
	int	 nlines;
	struct buf text;	/* text of each line, enhanced code stripped when
				   every line has the same one, scrubbed, joined
				   by '\n' (no trailing newline) */
};

enum smtp_reply_status {
	SMTP_REPLY_MORE = 0,	/* a "xyz-" line: feed the next one */
	SMTP_REPLY_DONE = 1,	/* complete: reply is filled in */
	SMTP_REPLY_ERROR = -1	/* malformed or over a limit; *err says why */
};

void	smtp_reply_init(struct smtp_reply *);
void	smtp_reply_free(struct smtp_reply *);
void	smtp_reply_reset(struct smtp_reply *);

/*
 * Feed one reply line without its line ending (the caller accepts CRLF
 * and, leniently, bare LF from next hops). Each line must be 3 digits
 * followed by ' ', '-' or end of line; the code must be 2xx-5xx and the
 * same on every line. Text bytes outside 0x20-0x7e are replaced by '?'.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *, const char *line,
	    size_t len, const char **err);

/* The reply class digit (2, 3, 4 or 5). */
#define smtp_reply_class(r)	((r)->code / 100)

/*
 * Format a reply for a client: every line "code-enh text" / last
 * "code enh text", CRLF-terminated. enh may be NULL or "" to omit it.
 * text may hold several lines separated by '\n'. Bytes outside 0x20-0x7e
 * are dropped, so a reply can never carry CR/LF of its own.
 */
int	smtp_reply_format(struct buf *out, int code, const char *enh,
	    const char *text);

/*
 * Check an enhanced status code "c.sss.ddd" (RFC 3463) whose class
 * matches the reply code's class. Returns 0 if valid.
 */
int	smtp_enh_valid(const char *enh, int code);

#endif
