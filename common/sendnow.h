/*
 * sendnow: write to a plain-socket bufferevent, straight to the kernel
 * when nothing is queued.
 *
 * bufferevent_write() always queues and arms the write event: two
 * epoll_ctl calls and a loop turn for every SMTP reply or command. When
 * the output buffer is empty, a send() that takes everything needs none
 * of that; only what the kernel refuses is queued. TLS bufferevents
 * always queue, so ciphertext framing stays libevent's.
 */
#ifndef MP_SENDNOW_H
#define MP_SENDNOW_H

#include <stddef.h>

struct bufferevent;

/*
 * Returns 1 when all of data went to the kernel (the bufferevent's write
 * callback will not run for it), 0 when some or all of it was queued, -1
 * when queueing failed. A send error queues too: libevent then meets the
 * error on its own write and reports it through the event callback.
 */
int	sendnow(struct bufferevent *, const void *data, size_t len);

#endif
