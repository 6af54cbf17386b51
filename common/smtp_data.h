/*
 * smtp_data: the DATA phase on both sides.
 *
 * Receiving (smtp_data_rx): a byte-stream state machine that removes dot
 * stuffing and finds the end of data. Only <CRLF>.<CRLF> ends the data
 * (the CRLF that starts it may be the one ending the DATA command: a "."
 * line right after 354 ends an empty message). Bare CR, bare LF and NUL
 * never end anything; they are recorded in flags and the session rejects
 * the message (docs/security.md). This is what makes SMTP smuggling
 * impossible through the proxy: a next hop only ever sees the re-serialised
 * form below.
 *
 * Limits: max_line counts the octets of a line excluding its CRLF and the
 * dot doubled for transparency, as RFC 5321 4.5.3.1.6 does (998 + CRLF);
 * a bare CR/LF or NUL inside a line counts. max_size counts content octets: after
 * unstuffing, CRLFs included, final ".\r\n" excluded. 0 means no limit
 * for either.
 *
 * Sending (smtp_data_stuff): CRLF-only content is dot-stuffed and given
 * exactly one terminating ".\r\n".
 */
#ifndef MP_SMTP_DATA_H
#define MP_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SMTP_DATA_BARE_CR	0x01
#define SMTP_DATA_BARE_LF	0x02
#define SMTP_DATA_NUL		0x04
#define SMTP_DATA_LONG_LINE	0x08	/* a line exceeded max_line */
#define SMTP_DATA_TOO_BIG	0x10	/* content exceeded max_size */

struct smtp_data_rx {
	int		 state;		/* private */
	size_t		 line_len;	/* octets in the current line so far */
	size_t		 max_line;	/* octets excluding CRLF and stuffing dot, before LONG_LINE */
	uint64_t	 max_size;	/* content octets before TOO_BIG */
	uint64_t	 size;		/* content octets seen (stored or not) */
	uint64_t	 wire;		/* raw octets consumed */
	unsigned	 flags;
	unsigned	 lines;
};

void	smtp_data_rx_init(struct smtp_data_rx *, size_t max_line, uint64_t max_size);

/*
 * Consume up to len bytes. Unstuffed content (with its CRLFs, without the
 * final ".\r\n") is appended to out while no flag is set; once any flag is
 * set, content is only counted, so memory stays bounded by max_size.
 * Returns the number of bytes consumed; *done is set to 1 when the end of
 * data was consumed (bytes after it are not consumed: they belong to the
 * next command). Returns -1 only if appending to out fails (ENOMEM).
 */
long	smtp_data_rx_feed(struct smtp_data_rx *, const char *in, size_t len,
	    struct buf *out, int *done);

/*
 * Append the dot-stuffed form of content (CRLF line endings expected)
 * to out, followed by exactly one ".\r\n". Content that does not end in
 * CRLF gets one added first, so the terminator is always <CRLF>.<CRLF>.
 * A bare CR or bare LF in content is sent as CRLF: the output holds CR
 * and LF only as CRLF pairs. Returns 0, or -1 on ENOMEM (out unchanged).
 */
int	smtp_data_stuff(struct buf *out, const char *content, size_t len);

#endif
