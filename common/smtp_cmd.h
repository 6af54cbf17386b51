/*
 * smtp_cmd: the SMTP command codec (RFC 5321 §4.1). Parsing only: it
 * knows nothing of sessions. The caller has already checked the line
 * length against its limit and removed the CRLF.
 */
#ifndef MP_SMTP_CMD_H
#define MP_SMTP_CMD_H

#include <stddef.h>

enum smtp_verb {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,		/* "MAIL FROM:" */
	SMTP_CMD_RCPT,		/* "RCPT TO:" */
	SMTP_CMD_DATA,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_HELP,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_EXPN,
	SMTP_CMD_BDAT,
	SMTP_CMD_AUTH,
	SMTP_CMD_XCLIENT,
	SMTP_CMD_XFORWARD,
	SMTP_CMD_ETRN,
	SMTP_CMD__COUNT
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;		/* points into the line; not NUL-terminated */
	size_t		 arglen;	/* leading/trailing spaces removed */
};

/*
 * Parse one command line (no CRLF). Verbs are case-insensitive. For MAIL
 * and RCPT the "FROM:"/"TO:" keyword is consumed and arg starts at the
 * path (one space after the colon is tolerated, as most MTAs do).
 * Returns 0 on success, -1 for a syntax error in the verb itself (e.g.
 * "MAIL" without "FROM:"), in which case verb is still set when known.
 * An unrecognised verb returns 0 with verb == SMTP_CMD_UNKNOWN.
 */
int		 smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *);
const char	*smtp_cmd_name(enum smtp_verb);

#endif
