#include "message.h"

#include <string.h>

#include "smtp_data.h"

int
message_serialize(struct buf *out, const char *pass_header,
    const char *content, size_t len)
{
	size_t hl = strlen(pass_header);

	/* Reserve once: content plus a little for stuffing and terminator. */
	if (buf_reserve(out, hl + 2 + len + len / 64 + 8) == -1)
		return -1;
	if (hl > 0 && (buf_append(out, pass_header, hl) == -1 ||
	    buf_append(out, "\r\n", 2) == -1))
		return -1;
	return smtp_data_stuff(out, content, len);
}
