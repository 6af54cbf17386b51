/*
 * smtp_cmd: split an SMTP command line into verb and argument.
 *
 * The verb is looked up in a table; the table also says which verbs carry
 * a keyword ("FROM:", "TO:") that is part of the command rather than of
 * its argument. Nothing here judges whether an argument is allowed: that
 * is the caller's business (e.g. 501 for "DATA x").
 */
#include "smtp_cmd.h"

#include <string.h>
#include <strings.h>

struct smtp_cmd_def {
	enum smtp_verb	 verb;
	const char	*name;
	const char	*keyword;	/* required after "VERB ", or NULL */
};

static const struct smtp_cmd_def smtp_cmd_table[] = {
	{ SMTP_CMD_HELO,	"HELO",		NULL },
	{ SMTP_CMD_EHLO,	"EHLO",		NULL },
	{ SMTP_CMD_MAIL,	"MAIL",		"FROM:" },
	{ SMTP_CMD_RCPT,	"RCPT",		"TO:" },
	{ SMTP_CMD_DATA,	"DATA",		NULL },
	{ SMTP_CMD_RSET,	"RSET",		NULL },
	{ SMTP_CMD_NOOP,	"NOOP",		NULL },
	{ SMTP_CMD_QUIT,	"QUIT",		NULL },
	{ SMTP_CMD_VRFY,	"VRFY",		NULL },
	{ SMTP_CMD_HELP,	"HELP",		NULL },
	{ SMTP_CMD_STARTTLS,	"STARTTLS",	NULL },
	{ SMTP_CMD_EXPN,	"EXPN",		NULL },
	{ SMTP_CMD_BDAT,	"BDAT",		NULL },
	{ SMTP_CMD_AUTH,	"AUTH",		NULL },
	{ SMTP_CMD_XCLIENT,	"XCLIENT",	NULL },
	{ SMTP_CMD_XFORWARD,	"XFORWARD",	NULL },
	{ SMTP_CMD_ETRN,	"ETRN",		NULL },
};

#define SMTP_CMD_NDEFS	(sizeof(smtp_cmd_table) / sizeof(smtp_cmd_table[0]))

static const struct smtp_cmd_def *
smtp_cmd_lookup(const char *verb, size_t len)
{
	size_t i;

	for (i = 0; i < SMTP_CMD_NDEFS; i++) {
		const char *name = smtp_cmd_table[i].name;

		/* strncasecmp stops at a NUL in verb: compare lengths first */
		if (strlen(name) == len && strncasecmp(name, verb, len) == 0 &&
		    memchr(verb, '\0', len) == NULL)
			return &smtp_cmd_table[i];
	}
	return NULL;
}

static void
smtp_cmd_trim(const char *p, size_t len, struct smtp_cmd *cmd)
{
	while (len > 0 && *p == ' ') {
		p++;
		len--;
	}
	while (len > 0 && p[len - 1] == ' ')
		len--;
	cmd->arg = p;
	cmd->arglen = len;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const struct smtp_cmd_def *def;
	size_t vlen, klen, off;

	cmd->verb = SMTP_CMD_UNKNOWN;
	cmd->arg = line + len;
	cmd->arglen = 0;

	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	/* No name in the table is longer than 8: skip the lookup early. */
	if (vlen == 0 || vlen > 8 || (def = smtp_cmd_lookup(line, vlen)) == NULL)
		return 0;
	cmd->verb = def->verb;

	if (def->keyword == NULL) {
		smtp_cmd_trim(line + vlen, len - vlen, cmd);
		return 0;
	}

	/* "MAIL FROM:" / "RCPT TO:": exactly one space before the keyword. */
	klen = strlen(def->keyword);
	off = vlen + 1;
	if (len < off + klen || line[vlen] != ' ' ||
	    strncasecmp(line + off, def->keyword, klen) != 0 ||
	    memchr(line + off, '\0', klen) != NULL)
		return -1;
	off += klen;
	/*
	 * One space after the colon is common enough to accept; more than
	 * one is not something any real client sends.
	 */
	if (off < len && line[off] == ' ')
		off++;
	if (off < len && line[off] == ' ')
		return -1;
	smtp_cmd_trim(line + off, len - off, cmd);
	return 0;
}

const char *
smtp_cmd_name(enum smtp_verb verb)
{
	size_t i;

	for (i = 0; i < SMTP_CMD_NDEFS; i++)
		if (smtp_cmd_table[i].verb == verb)
			return smtp_cmd_table[i].name;
	return "UNKNOWN";
}
