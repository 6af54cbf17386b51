/* buf: a growable byte buffer with an optional hard cap. */
#ifndef MP_BUF_H
#define MP_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

#define BUF_INIT { NULL, 0, 0 }

void	buf_init(struct buf *);
void	buf_free(struct buf *);
void	buf_reset(struct buf *);		/* len = 0, memory kept */
int	buf_reserve(struct buf *, size_t extra);	/* -1 on overflow/ENOMEM */
int	buf_append(struct buf *, const void *, size_t);
int	buf_appends(struct buf *, const char *);
int	buf_appendf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	buf_vappendf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
/* NUL-terminates without counting the NUL in len; returns data. */
char	*buf_cstr(struct buf *);

#endif
