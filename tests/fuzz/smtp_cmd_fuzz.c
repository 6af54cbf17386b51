/*
 * smtp_cmd_fuzz: the command parser (common/smtp_cmd.h) and, for MAIL
 * and RCPT, the path and parameter parser (common/smtp_addr.h).
 *
 * Input: one command line as the server hands it over (CRLF removed,
 * anything else left in). Checks:
 * - the argument lies inside the line and has no leading/trailing space;
 * - what parses formats for a next hop (every extension set and none):
 *   exactly one CRLF, at the end, no other CR, LF or NUL, and no write
 *   past a buffer of exactly the needed size;
 * - the formatted line parses again to the same arguments.
 * The whole input is also tried as a bare MAIL and RCPT argument.
 */
#include "fuzz.h"

#include "smtp_addr.h"
#include "smtp_cmd.h"

#define CMD_FUZZ_EXT_ALL	(SMTP_EXT_SIZE | SMTP_EXT_8BITMIME | \
	SMTP_EXT_DSN | SMTP_EXT_PIPELINING | SMTP_EXT_ENHANCED | \
	SMTP_EXT_STARTTLS)

static void
cmd_fuzz_check_line(const char *line, int n, size_t dstsz)
{
	FUZZ_CHECK(n >= 2 && (size_t)n < dstsz, "length %d", n);
	FUZZ_CHECK(line[n] == '\0', "not NUL-terminated");
	FUZZ_CHECK(line[n - 2] == '\r' && line[n - 1] == '\n',
	    "no CRLF at the end");
	FUZZ_CHECK(strcspn(line, "\r\n") == (size_t)n - 2,
	    "CR or LF inside the line");
	FUZZ_CHECK(strlen(line) == (size_t)n, "NUL inside the line");
}

/* Parse the formatted line (without its CRLF) as a command again. */
static void
cmd_fuzz_reparse(const char *line, int n, enum smtp_verb verb,
    const char **arg, size_t *arglen)
{
	struct smtp_cmd cmd;

	FUZZ_CHECK(smtp_cmd_parse(line, (size_t)n - 2, &cmd) == 0 &&
	    cmd.verb == verb, "formatted line does not parse: %s", line);
	*arg = cmd.arg;
	*arglen = cmd.arglen;
}

/*
 * Format into a heap buffer of exactly the reported size, so ASan sees
 * any write past it, and check that one octet less is refused.
 */
static void
cmd_fuzz_mail(const struct smtp_mail_args *m)
{
	struct smtp_mail_args again;
	char line[1024], *exact;
	const char *arg, *err;
	size_t arglen;
	int n, code;

	n = smtp_format_mail(line, sizeof(line), m, 0, 0);
	cmd_fuzz_check_line(line, n, sizeof(line));
	n = smtp_format_mail(line, sizeof(line), m, CMD_FUZZ_EXT_ALL, 0);
	cmd_fuzz_check_line(line, n, sizeof(line));
	if ((exact = malloc((size_t)n + 1)) == NULL)
		abort();
	FUZZ_CHECK(smtp_format_mail(exact, (size_t)n + 1, m, CMD_FUZZ_EXT_ALL,
	    0) == n, "exact buffer refused");
	FUZZ_CHECK(smtp_format_mail(exact, (size_t)n, m, CMD_FUZZ_EXT_ALL,
	    0) == -1, "short buffer accepted");
	free(exact);

	cmd_fuzz_reparse(line, n, SMTP_CMD_MAIL, &arg, &arglen);
	FUZZ_CHECK(smtp_parse_mail(arg, arglen, &again, &code, &err) == 0,
	    "formatted MAIL refused: %s: %s", line, err);
	FUZZ_CHECK(strcmp(again.addr, m->addr) == 0 &&
	    again.has_size == m->has_size && again.size == m->size &&
	    again.body == m->body && again.ret == m->ret &&
	    strcmp(again.envid, m->envid) == 0,
	    "MAIL changed in a round trip: %s", line);

	n = smtp_format_mail(line, sizeof(line), m, SMTP_EXT_SIZE, 12345);
	cmd_fuzz_check_line(line, n, sizeof(line));
}

static void
cmd_fuzz_rcpt(const struct smtp_rcpt_args *r)
{
	struct smtp_rcpt_args again;
	char line[1024], *exact;
	const char *arg, *err;
	size_t arglen;
	int n, code;

	n = smtp_format_rcpt(line, sizeof(line), r, 0);
	cmd_fuzz_check_line(line, n, sizeof(line));
	n = smtp_format_rcpt(line, sizeof(line), r, CMD_FUZZ_EXT_ALL);
	cmd_fuzz_check_line(line, n, sizeof(line));
	if ((exact = malloc((size_t)n + 1)) == NULL)
		abort();
	FUZZ_CHECK(smtp_format_rcpt(exact, (size_t)n + 1, r,
	    CMD_FUZZ_EXT_ALL) == n, "exact buffer refused");
	FUZZ_CHECK(smtp_format_rcpt(exact, (size_t)n, r,
	    CMD_FUZZ_EXT_ALL) == -1, "short buffer accepted");
	free(exact);

	cmd_fuzz_reparse(line, n, SMTP_CMD_RCPT, &arg, &arglen);
	FUZZ_CHECK(smtp_parse_rcpt(arg, arglen, &again, &code, &err) == 0,
	    "formatted RCPT refused: %s: %s", line, err);
	FUZZ_CHECK(strcmp(again.addr, r->addr) == 0 &&
	    again.notify == r->notify && strcmp(again.orcpt, r->orcpt) == 0,
	    "RCPT changed in a round trip: %s", line);
}

static void
cmd_fuzz_args(const char *arg, size_t len)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *err;
	int code;

	err = NULL;
	if (smtp_parse_mail(arg, len, &m, &code, &err) == 0)
		cmd_fuzz_mail(&m);
	else
		FUZZ_CHECK((code == 501 || code == 555) && err != NULL &&
		    err[0] == '5', "MAIL error %d", code);
	err = NULL;
	if (smtp_parse_rcpt(arg, len, &r, &code, &err) == 0)
		cmd_fuzz_rcpt(&r);
	else
		FUZZ_CHECK((code == 501 || code == 555) && err != NULL &&
		    err[0] == '5', "RCPT error %d", code);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_cmd cmd;
	int r;

	r = smtp_cmd_parse(line, size, &cmd);
	FUZZ_CHECK(r == 0 || r == -1, "parse returned %d", r);
	FUZZ_CHECK(cmd.verb >= SMTP_CMD_UNKNOWN && cmd.verb < SMTP_CMD__COUNT,
	    "verb %d", (int)cmd.verb);
	FUZZ_CHECK(smtp_cmd_name(cmd.verb) != NULL, "no name");
	if (r == 0 && cmd.arglen > 0) {
		FUZZ_CHECK(cmd.arg >= line && cmd.arg + cmd.arglen <= line + size,
		    "argument outside the line");
		FUZZ_CHECK(cmd.arg[0] != ' ' && cmd.arg[cmd.arglen - 1] != ' ',
		    "argument not trimmed");
	}
	if (r == 0 && (cmd.verb == SMTP_CMD_MAIL || cmd.verb == SMTP_CMD_RCPT))
		cmd_fuzz_args(cmd.arg, cmd.arglen);
	cmd_fuzz_args(line, size);
	return 0;
}
