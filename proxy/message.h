/*
 * message: the content of one message, held in memory for its
 * transaction only, the few header look-ups the proxy itself needs, and
 * the re-serialisation for the next hop (with the pass header and any
 * policy modifications).
 */
#ifndef MP_MESSAGE_H
#define MP_MESSAGE_H

#include <stddef.h>

#include "buf.h"
#include "policy.h"

/* A policy's modification: subject change and added header lines. */
struct message_edit {
	enum policy_subject_op	  subject_op;
	const char		 *subject;
	const char *const	 *headers;	/* "Name: value", validated */
	size_t			  nheaders;
};

/* Offset where the body starts (after the empty line), or len if none. */
size_t	message_header_end(const char *content, size_t len);
/*
 * The first header field called name (case-insensitive) in the header
 * block: *start is its first octet, *end one past its last CRLF (all
 * continuation lines included). Returns 0 if found, -1 if not.
 */
int	message_find_header(const char *content, size_t len, const char *name,
	    size_t *start, size_t *end);
/* Its value, unfolded and trimmed, cut to dstsz - 1; "" if absent. */
const char *message_header_value(const char *content, size_t len,
	    const char *name, char *dst, size_t dstsz);

/*
 * Header text: printable ASCII as is (control bytes become spaces);
 * anything with 8-bit bytes as RFC 2047 UTF-8 encoded-words, folded.
 */
int	message_header_text(struct buf *out, const char *text);

/*
 * Build what goes on the wire after the next hop's 354: the pass header
 * (when not empty) and any added headers as the first lines, then the
 * content with the subject edit applied, dot-stuffed and terminated by
 * exactly one <CRLF>.<CRLF>. Every other byte is unchanged. edit may be
 * NULL. content must hold CRLF line endings only.
 */
int	message_serialize(struct buf *out, const char *pass_header,
	    const struct message_edit *edit, const char *content, size_t len);

#endif
