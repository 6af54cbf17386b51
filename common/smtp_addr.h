/*
 * smtp_addr: reverse/forward paths and the ESMTP parameters mailprevent
 * understands on MAIL (SIZE, BODY, RET, ENVID) and RCPT (NOTIFY, ORCPT).
 * Everything is validated here; what passes can be re-serialised to a
 * next hop without further checks.
 */
#ifndef MP_SMTP_ADDR_H
#define MP_SMTP_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_PATH_MAX		256	/* RFC 5321 §4.5.3.1.3, incl. <> */
#define SMTP_ADDR_MAX		(SMTP_PATH_MAX - 2)
#define SMTP_XTEXT_MAX		500	/* ORCPT limit, RFC 3461 §4.2 */
#define SMTP_ENVID_MAX		100	/* RFC 3461 §4.4 */

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER	0x01
#define SMTP_NOTIFY_SUCCESS	0x02
#define SMTP_NOTIFY_FAILURE	0x04
#define SMTP_NOTIFY_DELAY	0x08

struct smtp_mail_args {
	char		addr[SMTP_ADDR_MAX + 1];	/* "" = null path <> */
	int		has_size;
	uint64_t	size;
	enum smtp_body	body;
	enum smtp_ret	ret;
	char		envid[SMTP_ENVID_MAX + 1];	/* xtext as received; "" = none */
};

struct smtp_rcpt_args {
	char		addr[SMTP_ADDR_MAX + 1];
	unsigned	notify;				/* 0 = absent */
	char		orcpt[SMTP_XTEXT_MAX + 1];	/* "rfc822;xtext"; "" = none */
};

/*
 * Parse the argument of MAIL FROM: / RCPT TO: (as left by smtp_cmd_parse).
 * The path must be in angle brackets; a source route (@a,@b:) is accepted
 * and dropped. The local part may be a quoted string. Control bytes,
 * spaces outside quotes and over-long paths are refused. On error returns
 * -1 and sets *code (an SMTP reply code, 501 or 555) and *err to a static
 * reply text with enhanced code, e.g. "5.1.7 Bad sender address syntax".
 * RCPT TO:<postmaster> (no domain) is accepted.
 */
int	smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *,
	    int *code, const char **err);
int	smtp_parse_rcpt(const char *arg, size_t len, struct smtp_rcpt_args *,
	    int *code, const char **err);

/* Next-hop capabilities relevant to parameter forwarding. */
#define SMTP_EXT_SIZE		0x01
#define SMTP_EXT_8BITMIME	0x02
#define SMTP_EXT_DSN		0x04
#define SMTP_EXT_PIPELINING	0x08
#define SMTP_EXT_ENHANCED	0x10
#define SMTP_EXT_STARTTLS	0x20

/*
 * Format "MAIL FROM:<addr> [params]\r\n" / "RCPT TO:<addr> [params]\r\n"
 * into dst, emitting only the parameters the next hop supports (ext).
 * size_override, when non-zero, replaces SIZE (the proxy knows the real
 * size of what it sends). Returns the length, or -1 if dst is too small.
 */
int	smtp_format_mail(char *dst, size_t dstsz, const struct smtp_mail_args *,
	    unsigned ext, uint64_t size_override);
int	smtp_format_rcpt(char *dst, size_t dstsz, const struct smtp_rcpt_args *,
	    unsigned ext);

#endif
