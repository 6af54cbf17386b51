/*
 * message: the content of one message, held in memory for its
 * transaction only, and its re-serialisation for the next hop.
 */
#ifndef MP_MESSAGE_H
#define MP_MESSAGE_H

#include <stddef.h>

#include "buf.h"

/*
 * Build what goes on the wire after the next hop's 354: the pass header
 * (when not empty) as the first header line, then the content, dot-stuffed
 * and terminated by exactly one <CRLF>.<CRLF>. content must hold CRLF
 * line endings only (the session refuses anything else).
 */
int	message_serialize(struct buf *out, const char *pass_header,
	    const char *content, size_t len);

#endif
