/*
 * smtp_probe: the measuring helpers bench/run.sh drives. Not a
 * benchmark on its own (hence not *_bench.c); plain POSIX, no libproxy.
 *
 *   smtp_probe latency -r RATE -t SECONDS -l LENGTH HOST:PORT
 *	Open-loop load: a new session starts every 1/RATE seconds whether
 *	or not the earlier ones are done, and sends one message of LENGTH
 *	payload octets. For every message it takes the time from the write
 *	that completes the final dot to the 250 reply. The first tenth of
 *	the run warms up and is not counted. Prints one key=value line.
 *   smtp_probe idle -n COUNT [-m] HOST:PORT
 *	Opens COUNT sessions and takes each through the greeting and EHLO
 *	(with -m, through one message too), prints "ready sessions=COUNT"
 *	and holds them, idle, until stdin reaches EOF.
 *   smtp_probe waitlog [-c COUNT] [-p PID] -t SECONDS FILE STRING
 *	Waits for COUNT lines of FILE that contain STRING and prints the
 *	last one. Woken by inotify and by the exit of PID (pidfd), never by
 *	a timer; exit status 1 on timeout or when PID is gone first.
 *   smtp_probe waitpid -t SECONDS PID
 *	Waits for any process (not only a child) to exit; status 1 when it
 *	is still there after SECONDS.
 *
 * Why our own pacing rather than smtp-source -w/-R: those delays are
 * whole seconds, so a steady rate would have to come from sessions that
 * all fire together once a second, and the probe would measure the
 * bursts rather than the proxy.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PROBE_MAX_INFLIGHT	2000
#define PROBE_REPLY_MAX		4096

enum probe_state {
	PS_CONNECTING,
	PS_GREETING,
	PS_EHLO,
	PS_MAIL,
	PS_RCPT,
	PS_DATA,
	PS_DOT,
	PS_QUIT,
	PS_IDLE,
	PS_CLOSED
};

struct probe_sess {
	int			 fd;
	enum probe_state	 state;
	size_t			 seq;		/* launch order, for warm-up */
	const char		*out;		/* pending write */
	size_t			 outlen;
	size_t			 outoff;
	double			 t_dot;		/* final dot written */
	size_t			 inlen;
	char			 in[PROBE_REPLY_MAX];
};

/* What a session does after its reply, per state: expected code, next. */
static const struct {
	enum probe_state	 state;
	int			 code;
	const char		*send;
	enum probe_state	 next;
} probe_steps[] = {
	{ PS_GREETING,	220, "EHLO probe.bench.example\r\n",	PS_EHLO },
	{ PS_EHLO,	250, "MAIL FROM:<probe@bench.example>\r\n", PS_MAIL },
	{ PS_MAIL,	250, "RCPT TO:<sink@bench.example>\r\n", PS_RCPT },
	{ PS_RCPT,	250, "DATA\r\n",			PS_DATA },
	{ PS_DATA,	354, NULL,	/* the message */	PS_DOT },
	{ PS_DOT,	250, "QUIT\r\n",			PS_QUIT },
	{ PS_QUIT,	221, NULL,				PS_CLOSED },
};

static struct {
	struct sockaddr_in	 addr;
	char			*msg;		/* message, dot-terminated */
	size_t			 msglen;
	int			 hold_after_ehlo;	/* idle mode */
	int			 hold_after_msg;	/* idle -m */
	double			*samples;
	size_t			 nsamples;
	size_t			 warmup;
	size_t			 active;
	size_t			 idle;
	size_t			 done;
	size_t			 errors;
	size_t			 dropped;
	char			 lasterr[160];
} probe;

static double
probe_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
probe_usage(void)
{
	fprintf(stderr,
	    "usage: smtp_probe latency -r RATE -t SECONDS -l LENGTH HOST:PORT\n"
	    "       smtp_probe idle -n COUNT [-m] HOST:PORT\n"
	    "       smtp_probe waitlog [-c COUNT] [-p PID] -t SECONDS FILE STRING\n"
	    "       smtp_probe waitpid -t SECONDS PID\n");
	exit(2);
}

static unsigned long
probe_number(const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "smtp_probe: %s: not a number in %lu..%lu\n",
		    s, lo, hi);
		exit(2);
	}
	return v;
}

static void
probe_parse_addr(const char *hp)
{
	char host[64];
	const char *colon = strrchr(hp, ':');
	size_t n;

	if (colon == NULL || (n = (size_t)(colon - hp)) >= sizeof(host)) {
		fprintf(stderr, "smtp_probe: %s: want IPv4:PORT\n", hp);
		exit(2);
	}
	memcpy(host, hp, n);
	host[n] = '\0';
	memset(&probe.addr, 0, sizeof(probe.addr));
	probe.addr.sin_family = AF_INET;
	probe.addr.sin_port = htons((uint16_t)probe_number(colon + 1, 1, 65535));
	if (inet_pton(AF_INET, host, &probe.addr.sin_addr) != 1) {
		fprintf(stderr, "smtp_probe: %s: not an IPv4 address\n", host);
		exit(2);
	}
}

/* Headers, then lines of 76 letters up to len payload octets, then the dot. */
static void
probe_build_message(size_t len)
{
	static const char hdr[] =
	    "From: <probe@bench.example>\r\n"
	    "To: <sink@bench.example>\r\n"
	    "Subject: latency probe\r\n"
	    "\r\n";
	size_t cap = sizeof(hdr) + len + len / 76 * 2 + 16, n, col = 0;

	if ((probe.msg = malloc(cap)) == NULL) {
		perror("smtp_probe: malloc");
		exit(1);
	}
	memcpy(probe.msg, hdr, sizeof(hdr) - 1);
	n = sizeof(hdr) - 1;
	for (size_t i = 0; i < len; i++) {
		if (col == 76) {
			probe.msg[n++] = '\r';
			probe.msg[n++] = '\n';
			col = 0;
		}
		probe.msg[n++] = (char)('a' + i % 26);
		col++;
	}
	memcpy(probe.msg + n, "\r\n.\r\n", 5);
	probe.msglen = n + 5;
}

static void
probe_fail(struct probe_sess *s, const char *why)
{
	if (probe.errors++ == 0)
		snprintf(probe.lasterr, sizeof(probe.lasterr), "%s", why);
	if (s->state == PS_IDLE) {
		probe.idle--;
		probe.dropped++;
	}
	close(s->fd);
	s->state = PS_CLOSED;
	probe.active--;
}

static void
probe_close(struct probe_sess *s)
{
	close(s->fd);
	s->state = PS_CLOSED;
	probe.active--;
	probe.done++;
}

static int
probe_start(struct probe_sess *s, size_t seq)
{
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->seq = seq;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		snprintf(probe.lasterr, sizeof(probe.lasterr), "socket: %s",
		    strerror(errno));
		probe.errors++;
		s->state = PS_CLOSED;
		return -1;
	}
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	probe.active++;
	s->state = PS_CONNECTING;
	if (connect(s->fd, (struct sockaddr *)&probe.addr,
	    sizeof(probe.addr)) == -1 && errno != EINPROGRESS) {
		probe_fail(s, "connect failed");
		return -1;
	}
	return 0;
}

static void
probe_send(struct probe_sess *s, const char *data, size_t len)
{
	s->out = data;
	s->outlen = len;
	s->outoff = 0;
}

static void
probe_flush(struct probe_sess *s)
{
	ssize_t w;

	while (s->outoff < s->outlen) {
		w = write(s->fd, s->out + s->outoff, s->outlen - s->outoff);
		if (w == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			probe_fail(s, "write failed");
			return;
		}
		s->outoff += (size_t)w;
	}
	s->out = NULL;
	if (s->state == PS_DOT)
		s->t_dot = probe_now();
}

/* A complete reply: its last line is "NNN " (or bare "NNN"), CRLF-ended. */
static int
probe_reply(struct probe_sess *s, int *code)
{
	size_t start = 0, i;

	for (i = 0; i < s->inlen; i++) {
		if (s->in[i] != '\n')
			continue;
		if (i - start >= 3 && (i - start == 4 || s->in[start + 3] == ' ')) {
			char c[4] = { s->in[start], s->in[start + 1],
			    s->in[start + 2], '\0' };

			*code = atoi(c);
			memmove(s->in, s->in + i + 1, s->inlen - i - 1);
			s->inlen -= i + 1;
			return 1;
		}
		start = i + 1;
	}
	return 0;
}

static void
probe_advance(struct probe_sess *s, int code)
{
	double t1 = probe_now();
	size_t k;
	char why[64];

	for (k = 0; k < sizeof(probe_steps) / sizeof(probe_steps[0]); k++)
		if (probe_steps[k].state == s->state)
			break;
	if (k == sizeof(probe_steps) / sizeof(probe_steps[0]) ||
	    code != probe_steps[k].code) {
		snprintf(why, sizeof(why), "reply %d in state %d", code,
		    (int)s->state);
		probe_fail(s, why);
		return;
	}
	if (s->state == PS_DOT && s->seq >= probe.warmup &&
	    probe.samples != NULL)
		probe.samples[probe.nsamples++] = (t1 - s->t_dot) * 1e6;
	if ((s->state == PS_EHLO && probe.hold_after_ehlo) ||
	    (s->state == PS_DOT && probe.hold_after_msg)) {
		s->state = PS_IDLE;
		probe.idle++;
		return;
	}
	s->state = probe_steps[k].next;
	if (s->state == PS_CLOSED) {
		s->state = PS_QUIT;
		probe_close(s);
		return;
	}
	if (s->state == PS_DOT)
		probe_send(s, probe.msg, probe.msglen);
	else
		probe_send(s, probe_steps[k].send, strlen(probe_steps[k].send));
	probe_flush(s);
}

static void
probe_event(struct probe_sess *s, short rev)
{
	ssize_t r;
	int code, err = 0;
	socklen_t elen = sizeof(err);

	if (s->state == PS_CONNECTING) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1 ||
		    err != 0) {
			probe_fail(s, "connect refused");
			return;
		}
		s->state = PS_GREETING;
		return;
	}
	if ((rev & POLLOUT) && s->out != NULL) {
		probe_flush(s);
		if (s->state == PS_CLOSED)
			return;
	}
	if (!(rev & (POLLIN | POLLHUP | POLLERR)))
		return;
	r = read(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen);
	if (r == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		probe_fail(s, s->state == PS_IDLE ? "idle session closed by "
		    "the server" : "connection closed by the server");
		return;
	}
	s->inlen += (size_t)r;
	if (s->state == PS_IDLE) {
		probe_fail(s, "unexpected data on an idle session");
		return;
	}
	while (s->state != PS_CLOSED && s->out == NULL && probe_reply(s, &code))
		probe_advance(s, code);
	if (s->state != PS_CLOSED && s->inlen == sizeof(s->in))
		probe_fail(s, "reply too long");
}

static short
probe_events(const struct probe_sess *s)
{
	if (s->state == PS_CONNECTING || s->out != NULL)
		return POLLOUT;
	return POLLIN;
}

static int
probe_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ---- latency ---------------------------------------------------------- */

static int
probe_latency(double rate, double seconds, size_t len)
{
	size_t total = (size_t)(rate * seconds), launched = 0, nfd, i, late = 0;
	size_t hi = 0;
	struct probe_sess *sess;
	struct pollfd *pfd;
	size_t *map;
	double start, t, deadline, p99, med;

	probe_build_message(len);
	probe.warmup = total / 10;
	sess = calloc(PROBE_MAX_INFLIGHT, sizeof(*sess));
	pfd = calloc(PROBE_MAX_INFLIGHT, sizeof(*pfd));
	map = calloc(PROBE_MAX_INFLIGHT, sizeof(*map));
	probe.samples = calloc(total + 1, sizeof(double));
	if (sess == NULL || pfd == NULL || map == NULL || probe.samples == NULL) {
		perror("smtp_probe: calloc");
		return 1;
	}
	for (i = 0; i < PROBE_MAX_INFLIGHT; i++)
		sess[i].state = PS_CLOSED;
	start = probe_now();
	deadline = start + seconds + 30;
	for (;;) {
		struct timespec ts, *tsp = NULL;
		double wait;

		t = probe_now();
		while (launched < total && t >= start + (double)launched / rate) {
			for (i = 0; i < PROBE_MAX_INFLIGHT; i++)
				if (sess[i].state == PS_CLOSED)
					break;
			if (i == PROBE_MAX_INFLIGHT) {
				late++;		/* the server is that far behind */
				break;
			}
			(void)probe_start(&sess[i], launched++);
			if (i >= hi)
				hi = i + 1;
		}
		/* The lowest free slot is reused, so the live ones stay low. */
		while (hi > 0 && sess[hi - 1].state == PS_CLOSED)
			hi--;
		if (launched == total && probe.active == 0)
			break;
		if (t > deadline) {
			fprintf(stderr, "smtp_probe: deadline passed with %zu "
			    "sessions open\n", probe.active);
			return 1;
		}
		for (i = 0, nfd = 0; i < hi; i++) {
			if (sess[i].state == PS_CLOSED)
				continue;
			pfd[nfd].fd = sess[i].fd;
			pfd[nfd].events = probe_events(&sess[i]);
			map[nfd++] = i;
		}
		if (launched < total) {
			wait = start + (double)launched / rate - t;
			if (wait < 0)
				wait = 0;
			ts.tv_sec = (time_t)wait;
			ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
			tsp = &ts;
		} else {
			ts.tv_sec = 1;
			ts.tv_nsec = 0;
			tsp = &ts;
		}
		if (ppoll(pfd, nfd, tsp, NULL) == -1 && errno != EINTR) {
			perror("smtp_probe: ppoll");
			return 1;
		}
		for (i = 0; i < nfd; i++)
			if (pfd[i].revents)
				probe_event(&sess[map[i]], pfd[i].revents);
	}
	t = probe_now() - start;
	if (probe.nsamples == 0) {
		fprintf(stderr, "smtp_probe: no samples (errors=%zu: %s)\n",
		    probe.errors, probe.lasterr);
		return 1;
	}
	qsort(probe.samples, probe.nsamples, sizeof(double), probe_cmp);
	med = probe.samples[probe.nsamples / 2];
	p99 = probe.samples[(size_t)ceil(0.99 * (double)probe.nsamples) - 1];
	printf("samples=%zu rate=%.1f achieved=%.1f median_us=%.0f p99_us=%.0f "
	    "max_us=%.0f errors=%zu late=%zu\n", probe.nsamples, rate,
	    (double)probe.done / t, med, p99,
	    probe.samples[probe.nsamples - 1], probe.errors, late);
	if (probe.errors)
		fprintf(stderr, "smtp_probe: %zu errors, first: %s\n",
		    probe.errors, probe.lasterr);
	return probe.errors ? 1 : 0;
}

/* ---- idle ------------------------------------------------------------- */

static int
probe_idle(size_t count)
{
	struct probe_sess *sess;
	struct pollfd *pfd;
	size_t *map, launched = 0, nfd, i, opening;
	double deadline = probe_now() + 120;
	int ready = 0, stdin_open = 1;
	char sink[256];

	if (probe.hold_after_msg)
		probe_build_message(1024);
	sess = calloc(count, sizeof(*sess));
	pfd = calloc(count + 1, sizeof(*pfd));
	map = calloc(count + 1, sizeof(*map));
	if (sess == NULL || pfd == NULL || map == NULL) {
		perror("smtp_probe: calloc");
		return 1;
	}
	for (;;) {
		/* A few hundred at a time: stay inside the listen backlog. */
		opening = probe.active - probe.idle;
		while (launched < count && opening < 200) {
			(void)probe_start(&sess[launched], launched);
			launched++;
			opening++;
		}
		if (probe.errors) {
			fprintf(stderr, "smtp_probe: %zu of %zu sessions open, "
			    "then: %s\n", probe.idle, count, probe.lasterr);
			return 1;
		}
		if (!ready && probe.idle == count) {
			printf("ready sessions=%zu\n", count);
			fflush(stdout);
			ready = 1;
		}
		if (!ready && probe_now() > deadline) {
			fprintf(stderr, "smtp_probe: only %zu of %zu sessions "
			    "after 120 s\n", probe.idle, count);
			return 1;
		}
		if (ready && !stdin_open)
			break;
		for (i = 0, nfd = 0; i < launched; i++) {
			if (sess[i].state == PS_CLOSED)
				continue;
			pfd[nfd].fd = sess[i].fd;
			pfd[nfd].events = probe_events(&sess[i]);
			map[nfd++] = i;
		}
		if (ready) {
			pfd[nfd].fd = STDIN_FILENO;
			pfd[nfd].events = POLLIN;
			map[nfd++] = count;
		}
		if (poll(pfd, nfd, ready ? -1 : 1000) == -1 && errno != EINTR) {
			perror("smtp_probe: poll");
			return 1;
		}
		for (i = 0; i < nfd; i++) {
			if (!pfd[i].revents)
				continue;
			if (map[i] == count) {
				if (read(STDIN_FILENO, sink, sizeof(sink)) <= 0)
					stdin_open = 0;
				continue;
			}
			probe_event(&sess[map[i]], pfd[i].revents);
		}
	}
	for (i = 0; i < launched; i++)
		if (sess[i].state != PS_CLOSED)
			close(sess[i].fd);
	printf("closed sessions=%zu dropped=%zu\n", count, probe.dropped);
	return probe.dropped ? 1 : 0;
}

/* ---- waitlog ---------------------------------------------------------- */

static int
probe_waitlog(const char *path, const char *needle, size_t want, long pid,
    double seconds)
{
	char buf[16384], last[4096] = "", ev[4096];
	size_t len = 0, found = 0, start, i;
	double deadline = probe_now() + seconds, left;
	struct pollfd pfd[2];
	int fd, ifd, pidfd = -1, gone = 0;
	ssize_t r;

	if ((ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) == -1 ||
	    inotify_add_watch(ifd, path, IN_MODIFY) == -1 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "smtp_probe: %s: %s\n", path, strerror(errno));
		return 1;
	}
#ifdef SYS_pidfd_open
	if (pid > 0)
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#endif
	for (;;) {
		/* Read to EOF first: the watch was set before the open. */
		while ((r = read(fd, buf + len, sizeof(buf) - len)) > 0) {
			len += (size_t)r;
			for (start = 0, i = 0; i < len; i++) {
				if (buf[i] != '\n')
					continue;
				if (memmem(buf + start, i - start, needle,
				    strlen(needle)) != NULL) {
					size_t n = i - start < sizeof(last) - 1 ?
					    i - start : sizeof(last) - 1;

					memcpy(last, buf + start, n);
					last[n] = '\0';
					if (++found == want) {
						printf("%s\n", last);
						return 0;
					}
				}
				start = i + 1;
			}
			memmove(buf, buf + start, len - start);
			len -= start;
			if (len == sizeof(buf))
				len = 0;	/* a line too long to matter */
		}
		if (pid > 0 && pidfd == -1 && kill((pid_t)pid, 0) == -1) {
			fprintf(stderr, "smtp_probe: process %ld is gone\n", pid);
			return 1;
		}
		if (gone) {
			fprintf(stderr, "smtp_probe: process %ld exited before "
			    "\"%s\" appeared in %s\n", pid, needle, path);
			return 1;
		}
		pfd[0].fd = ifd;
		pfd[0].events = POLLIN;
		pfd[1].fd = pidfd;
		pfd[1].events = POLLIN;
		left = deadline - probe_now();
		if (left <= 0) {
			fprintf(stderr, "smtp_probe: %s: %zu of %zu lines with "
			    "\"%s\" after %.0f s\n", path, found, want, needle,
			    seconds);
			return 1;
		}
		if (poll(pfd, pidfd == -1 ? 1 : 2, (int)(left * 1000) + 1) == -1 &&
		    errno != EINTR)
			return 1;
		if (pidfd != -1 && (pfd[1].revents & POLLIN)) {
			/* It exited: one more pass reads what it wrote last. */
			close(pidfd);
			pidfd = -1;
			gone = 1;
		}
		while (read(ifd, ev, sizeof(ev)) > 0)
			;
	}
}

/* ---- waitpid ------------------------------------------------------------ */

/* Any process, not only a child: pidfd_open, polled; kill(0) if absent. */
static int
probe_waitpid(long pid, double seconds)
{
	struct pollfd pfd;
	double deadline = probe_now() + seconds;
	int fd = -1;

#ifdef SYS_pidfd_open
	fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#endif
	if (fd == -1) {
		if (errno == ESRCH)
			return 0;
		/* No pidfd: a bounded check every 10 ms is the fallback. */
		while (kill((pid_t)pid, 0) == 0) {
			if (probe_now() > deadline)
				return 1;
			usleep(10000);
		}
		return 0;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		double left = deadline - probe_now();

		if (left <= 0)
			return 1;
		if (poll(&pfd, 1, (int)(left * 1000) + 1) == 1)
			return 0;
	}
}

int
main(int argc, char *argv[])
{
	double rate = 0, seconds = 0;
	size_t len = 1024, count = 0, want = 1;
	long pid = -1;
	const char *mode;
	int ch;

	if (argc < 2)
		probe_usage();
	mode = argv[1];
	argv++;
	argc--;
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "c:l:mn:p:r:t:")) != -1) {
		switch (ch) {
		case 'c': want = probe_number(optarg, 1, 100000); break;
		case 'l': len = probe_number(optarg, 1, 64u << 20); break;
		case 'm': probe.hold_after_msg = 1; break;
		case 'n': count = probe_number(optarg, 1, 1000000); break;
		case 'p': pid = (long)probe_number(optarg, 1, 1u << 30); break;
		case 'r': rate = (double)probe_number(optarg, 1, 1000000); break;
		case 't': seconds = (double)probe_number(optarg, 1, 3600); break;
		default: probe_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (strcmp(mode, "latency") == 0 && argc == 1 && rate > 0 &&
	    seconds > 0) {
		probe_parse_addr(argv[0]);
		return probe_latency(rate, seconds, len);
	}
	if (strcmp(mode, "idle") == 0 && argc == 1 && count > 0) {
		probe_parse_addr(argv[0]);
		probe.hold_after_ehlo = !probe.hold_after_msg;
		return probe_idle(count);
	}
	if (strcmp(mode, "waitpid") == 0 && argc == 1 && seconds > 0)
		return probe_waitpid((long)probe_number(argv[0], 1, 1u << 30),
		    seconds);
	if (strcmp(mode, "waitlog") == 0 && argc == 2 && seconds > 0)
		return probe_waitlog(argv[0], argv[1], want, pid, seconds);
	probe_usage();
	return 2;
}
