/*
 * mime: one pass over a whole message held in memory, producing what the
 * policies look at: the top-level header fields, the decoded Subject, the
 * text of the message (text parts decoded to UTF-8, HTML stripped) and the
 * attachments with their decoded bytes.
 *
 * The parser never rejects input. Broken MIME is parsed as far as it makes
 * sense and the rest is kept as text; what was wrong, and which limit was
 * hit, is told by mime_flags(). Work and memory are bounded by the input
 * size and struct mime_limits.
 *
 * The input buffer is not copied: it must stay valid and unchanged until
 * mime_free(). Attachment contents that needed no decoding point into it.
 */
#ifndef MP_MIME_H
#define MP_MIME_H

#include <stddef.h>

#include "buf.h"

struct mime_limits {
	unsigned	max_depth;	/* nesting of multiparts and messages */
	unsigned	max_parts;	/* entities in the whole message */
	unsigned	max_headers;	/* fields kept per header block */
	size_t		max_decoded;	/* bytes produced by decoding; 0: 4 x input */
};

#define MIME_DEF_DEPTH		16
#define MIME_DEF_PARTS		1000
#define MIME_DEF_HEADERS	1000
#define MIME_LIMITS_DEFAULT \
	{ MIME_DEF_DEPTH, MIME_DEF_PARTS, MIME_DEF_HEADERS, 0 }

/* What mime_flags() can report. Limits first, then malformations. */
#define MIME_TRUNCATED	0x0001	/* max_decoded reached: some content cut */
#define MIME_DEPTH	0x0002	/* max_depth reached: deeper MIME kept raw */
#define MIME_PARTS	0x0004	/* max_parts reached: the rest kept raw */
#define MIME_HEADERS	0x0008	/* max_headers reached: later fields dropped */
#define MIME_MALFORMED	0x0010	/* set with any of the bits below */
#define MIME_BAD_HEADER	0x0020	/* a header block ended on a non-field line */
#define MIME_NO_BOUNDARY 0x0040	/* multipart without a boundary parameter */
#define MIME_NO_DELIM	0x0080	/* multipart whose boundary never appears */
#define MIME_UNCLOSED	0x0100	/* multipart without its closing delimiter */
#define MIME_BAD_BASE64	0x0200	/* invalid characters or a cut quantum */
#define MIME_BAD_QP	0x0400	/* '=' not followed by two hex digits */
#define MIME_BAD_CHARSET 0x0800	/* unknown charset or invalid sequences */
#define MIME_BARE_LF	0x1000	/* header lines ending in LF alone */

struct mime_attachment {
	const char	*filename;	/* UTF-8, NUL-terminated, or NULL */
	size_t		 filename_len;	/* may hide a NUL: use this length */
	const char	*content_type;	/* lowercase "type/subtype" */
	size_t		 size;		/* decoded size */
	const char	*content;	/* size bytes, not NUL-terminated */
	unsigned	 depth;		/* 0 for a part of the top-level body */
	int		 message;	/* a message/rfc822 part, listed before
					   the attachments found inside it */
};

struct mime_msg;

void	mime_limits_default(struct mime_limits *);

/*
 * Parse data[0..len). lim may be NULL for the defaults. Returns NULL only
 * when memory runs out.
 */
struct mime_msg *mime_parse(const char *data, size_t len,
	    const struct mime_limits *lim);
void	mime_free(struct mime_msg *);

/*
 * Flags seen so far. mime_text() decodes the text parts and may add
 * MIME_TRUNCATED, MIME_BAD_BASE64, MIME_BAD_QP and MIME_BAD_CHARSET: read
 * the flags after it when those matter.
 */
unsigned mime_flags(const struct mime_msg *);
/* Render flags as "name,name" (or "none") for logs. Returns dst. */
const char *mime_strflags(unsigned flags, char *dst, size_t dstsz);

/*
 * Top-level header fields. Names compare without regard to case. Values
 * are unfolded and trimmed but not otherwise decoded; NULL when absent.
 */
size_t	 mime_header_count(const struct mime_msg *, const char *name);
const char *mime_header(const struct mime_msg *, const char *name,
	    size_t index, size_t *len);
/* All fields in order, for iteration. */
size_t	 mime_nheaders(const struct mime_msg *);
const char *mime_header_at(const struct mime_msg *, size_t i,
	    const char **name, size_t *namelen, size_t *len);

/* The first Subject, RFC 2047-decoded to UTF-8; NULL when absent. */
const char *mime_subject(struct mime_msg *, size_t *len);

/*
 * The text of every text part, decoded to UTF-8, HTML stripped, CRLF
 * turned to LF, parts joined with "\n". Built on the first call, then
 * cached. NUL-terminated (the text may hold NULs: use len). NULL only when
 * memory runs out.
 */
const char *mime_text(struct mime_msg *, size_t *len);

/* Attachments in document order (see struct mime_attachment). */
size_t	 mime_nattachments(const struct mime_msg *);
const struct mime_attachment *mime_attachment(const struct mime_msg *,
	    size_t i);

/* Entities found, containers included. */
size_t	 mime_nparts(const struct mime_msg *);

/*
 * Decode RFC 2047 encoded-words in a header value and append the result,
 * in UTF-8, to out. Malformed words are kept as they are. -1 on ENOMEM.
 */
int	 mime_decode_header(struct buf *out, const char *s, size_t len);

#endif
