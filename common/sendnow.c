/* sendnow: see sendnow.h. */
#include <sys/socket.h>

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "sendnow.h"

int
sendnow(struct bufferevent *bev, const void *data, size_t len)
{
	const char *p = data;
	evutil_socket_t fd;
	ssize_t n;

	/* Order: a direct send may only go out when nothing waits before it. */
	if (len > 0 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
	    bufferevent_get_underlying(bev) == NULL &&
	    bufferevent_openssl_get_ssl(bev) == NULL &&
	    (bufferevent_get_enabled(bev) & EV_WRITE) &&
	    (fd = bufferevent_getfd(bev)) != -1) {
		do
			n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n == -1 && errno == EINTR);
		if (n > 0) {
			if ((size_t)n == len)
				return 1;
			p += n;
			len -= (size_t)n;
		}
	}
	return bufferevent_write(bev, p, len) == -1 ? -1 : 0;
}
