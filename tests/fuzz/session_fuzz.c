/*
 * session_fuzz: a whole inbound session. The input is what a client
 * sends, all of it, then EOF: it goes through the real server session
 * (command table, limits, DATA state machine, the transaction with its
 * outbound attempt) over a socketpair on a fresh event loop. The next hop
 * is a loopback port where nothing listens, so every MAIL meets the
 * "no next hop" path.
 *
 * Checks: no crash, no leak (ASan), the session ends by itself once the
 * input is exhausted, and everything the server wrote is well-formed
 * replies: lines of "ddd" + ' ' or '-', printable text, CRLF only.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "smtp_server.h"

static struct buf session_out;
static int session_done;

static void
session_fuzz_closed(void)
{
	session_done = 1;
}

/*
 * Drain what the server says, so it never blocks on a full socket. At
 * EOF the event goes: a level-triggered EOF would keep the loop busy.
 */
static void
session_fuzz_read(evutil_socket_t fd, short ev, void *arg)
{
	struct event *self = arg;
	char b[65536];
	ssize_t n;

	while ((n = read(fd, b, sizeof(b))) > 0)
		buf_append(&session_out, b, (size_t)n);
	if (n == 0 && self != NULL)
		event_del(self);
}

static void
session_fuzz_check_replies(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(p + i, '\n', len - i);
		size_t l;

		if (nl == NULL)
			break;		/* a last, unfinished write: cut by close */
		l = (size_t)(nl - (p + i));
		FUZZ_CHECK(l >= 4 && p[i + l - 1] == '\r', "reply line without "
		    "CRLF at %zu", i);
		for (size_t k = 0; k < 3; k++)
			FUZZ_CHECK(p[i + k] >= '0' && p[i + k] <= '9',
			    "reply code not digits at %zu", i);
		FUZZ_CHECK(p[i + 3] == ' ' || p[i + 3] == '-' || l == 4,
		    "bad separator at %zu", i);
		for (size_t k = 4; k + 1 < l; k++)
			FUZZ_CHECK(p[i + k] >= 0x20 && p[i + k] < 0x7f,
			    "unprintable byte in reply at %zu", i + k);
		i += l + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct event_base *base;
	struct event *rd;
	struct config *cfg;
	struct sockaddr_in peer;
	int sv[2];
	size_t off = 0;

	signal(SIGPIPE, SIG_IGN);
	log_init("session_fuzz", getenv("SESSION_FUZZ_LOG") ? LOG_DEBUG : LOG_ERR + 1);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 0;
	base = event_base_new();
	cfg = config_defaults();
	cfg->nhosts = 1;
	cfg->hosts = calloc(1, sizeof(*cfg->hosts));
	snprintf(cfg->hosts[0].host, sizeof(cfg->hosts[0].host), "127.0.0.1");
	cfg->hosts[0].port = 9;		/* discard: nothing listens in tests */
	cfg->limits.max_errors = 1000;
	cfg->max_message_size = 65536;
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_addr.s_addr = htonl(0x7f000001);
	peer.sin_port = htons(40000);

	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_nonblocking(sv[1]);
	buf_reset(&session_out);
	session_done = 0;
	smtp_server_on_close(session_fuzz_closed);
	if (smtp_server_start(base, cfg, NULL, sv[0], (struct sockaddr *)&peer,
	    sizeof(peer)) == -1) {
		close(sv[1]);
		config_unref(cfg);
		event_base_free(base);
		return 0;
	}
	rd = event_new(base, sv[1], EV_READ | EV_PERSIST, session_fuzz_read,
	    event_self_cbarg());
	event_add(rd, NULL);
	/* Feed the input as the socket takes it, then say EOF. */
	while (off < len && !session_done) {
		ssize_t n = write(sv[1], data + off, len - off);

		if (n > 0)
			off += (size_t)n;
		else if (errno != EAGAIN && errno != EINTR)
			break;		/* the server hung up (QUIT, 421) */
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	shutdown(sv[1], SHUT_WR);
	while (!session_done)
		event_base_loop(base, EVLOOP_ONCE);
	session_fuzz_read(sv[1], 0, NULL);
	session_fuzz_check_replies(session_out.data ? session_out.data : "",
	    session_out.len);
	FUZZ_CHECK(smtp_server_count() == 0, "a session outlived its client");
	event_free(rd);
	close(sv[1]);
	config_unref(cfg);
	event_base_free(base);
	return 0;
}
