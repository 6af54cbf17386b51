/*
 * proxyproto: the PROXY protocol header (HAProxy's, versions 1 and 2) that
 * a load balancer puts in front of a connection to say who the real client
 * is. Parsing only; the listener decides whom to believe.
 */
#ifndef MP_PROXYPROTO_H
#define MP_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXYPROTO_V1_MAX	107	/* "PROXY ... \r\n", spec section 2.1 */
#define PROXYPROTO_V2_MAX	(16 + 65535)

enum proxyproto_status {
	PROXYPROTO_MORE = 0,	/* a valid prefix: read more */
	PROXYPROTO_DONE = 1,	/* complete: *used bytes belong to the header */
	PROXYPROTO_ERROR = -1	/* not a valid header */
};

struct proxyproto_result {
	int			 local;		/* v2 LOCAL or v1 UNKNOWN: keep the TCP peer */
	struct sockaddr_storage	 src;		/* the real client */
	struct sockaddr_storage	 dst;
	size_t			 used;		/* header length */
};

/*
 * Look at the first len bytes of a connection. Decided on what is there:
 * an invalid byte is an error at once; a valid but incomplete header asks
 * for more (never more than the limits above). v2 TLVs are skipped.
 */
enum proxyproto_status proxyproto_parse(const unsigned char *p, size_t len,
	    struct proxyproto_result *, const char **err);

#endif
