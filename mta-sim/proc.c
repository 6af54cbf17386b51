/*
 * proc: start bin/mailprevent (or anything) as a child of the runner and
 * watch it from the event loop. See proc.h.
 *
 * Exit is learnt from SIGCHLD (a libevent signal event, so the handler
 * runs in the loop, not in signal context). A reaped child's pipes are
 * drained before its exit callback, so a scenario that waits for "the
 * proxy exited" has every line the proxy wrote by then.
 */
#include "proc.h"

#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"

#define PROC_READ_CHUNK		16384
#define PROC_LINE_MAX		65536	/* a longer "line" is delivered in pieces */

struct proc_stream_state {
	struct proc		*p;
	enum proc_stream	 which;
	int			 fd;
	struct event		*ev;
	struct buf		 partial;
};

struct proc {
	pid_t			 pid;
	int			 exited;
	int			 status;
	int			 detached;
	proc_line_cb		*line_cb;
	proc_exit_cb		*exit_cb;
	void			*arg;
	struct proc_stream_state out, err;
	struct proc		*prev, *next;
};

static struct proc	*proc_list;
static struct event	*proc_sigchld;

static void	proc_stream_close(struct proc_stream_state *);
static void	proc_reap(void);

static void
proc_deliver(struct proc_stream_state *st, const char *line, size_t len)
{
	struct proc *p = st->p;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (!p->detached && p->line_cb != NULL)
		p->line_cb(p->arg, st->which, line, len);
}

/* Hand over every complete line in partial; keep the rest. */
static void
proc_split(struct proc_stream_state *st, int eof)
{
	struct buf *b = &st->partial;
	size_t start = 0, i;

	for (i = 0; i < b->len; i++) {
		if (b->data[i] != '\n' && i - start < PROC_LINE_MAX)
			continue;
		proc_deliver(st, b->data + start, i - start);
		start = b->data[i] == '\n' ? i + 1 : i;
	}
	if (eof && start < b->len) {
		proc_deliver(st, b->data + start, b->len - start);
		start = b->len;
	}
	if (start > 0) {
		memmove(b->data, b->data + start, b->len - start);
		b->len -= start;
	}
}

/* Read what is there. Returns 1 at EOF or error, 0 otherwise. */
static int
proc_drain(struct proc_stream_state *st)
{
	char chunk[PROC_READ_CHUNK];
	ssize_t n;

	for (;;) {
		n = read(st->fd, chunk, sizeof(chunk));
		if (n > 0) {
			if (buf_append(&st->partial, chunk, (size_t)n) == -1)
				return 1;
			proc_split(st, 0);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return 1;
	}
}

static void
proc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proc_stream_state *st = arg;

	if (proc_drain(st)) {
		proc_split(st, 1);
		proc_stream_close(st);
	}
}

static void
proc_stream_close(struct proc_stream_state *st)
{
	if (st->ev != NULL) {
		event_free(st->ev);
		st->ev = NULL;
	}
	if (st->fd != -1) {
		close(st->fd);
		st->fd = -1;
	}
}

static void
proc_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	proc_reap();
}

static void
proc_unlink(struct proc *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		proc_list = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

static void
proc_free(struct proc *p)
{
	proc_stream_close(&p->out);
	proc_stream_close(&p->err);
	buf_free(&p->out.partial);
	buf_free(&p->err.partial);
	free(p);
}

/* The child is gone: the last lines, then the exit callback, then free. */
static void
proc_finish(struct proc *p)
{
	proc_unlink(p);
	if (p->out.fd != -1)
		proc_drain(&p->out);
	if (p->err.fd != -1)
		proc_drain(&p->err);
	proc_split(&p->out, 1);
	proc_split(&p->err, 1);
	if (!p->detached && p->exit_cb != NULL)
		p->exit_cb(p->arg, p->status);
	proc_free(p);
}

static void
proc_reap(void)
{
	struct proc *p;
	int st;

again:
	for (p = proc_list; p != NULL; p = p->next) {
		if (!p->exited && waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->exited = 1;
			p->status = st;
		}
		if (p->exited) {
			/* Callbacks may start or end other children. */
			proc_finish(p);
			goto again;
		}
	}
}

static int
proc_stream_init(struct event_base *base, struct proc *p,
    struct proc_stream_state *st, enum proc_stream which, int fd)
{
	st->p = p;
	st->which = which;
	st->fd = fd;
	buf_init(&st->partial);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	st->ev = event_new(base, fd, EV_READ | EV_PERSIST, proc_read_cb, st);
	if (st->ev == NULL || event_add(st->ev, NULL) == -1)
		return -1;
	return 0;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void
proc_child(char *const argv[], pid_t parent, int out, int err, int errpipe)
{
	sigset_t none;
	int e, fd, s;

	/* If the runner dies, so does the proxy (and its ports go free). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* mta-sim ignores SIGPIPE, and ignored signals survive exec. */
	for (s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setpgid(0, 0);	/* a ^C at the terminal is the runner's to handle */
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, 0);
		if (fd != 0)
			close(fd);
	}
	if (dup2(out, 1) == -1 || dup2(err, 2) == -1)
		_exit(127);
	execv(argv[0], argv);
	e = errno;
	if (write(errpipe, &e, sizeof(e)) == -1)
		_exit(127);
	_exit(127);
}

struct proc *
proc_start(struct event_base *base, char *const argv[], proc_line_cb *line_cb,
    proc_exit_cb *exit_cb, void *arg, char *err, size_t errlen)
{
	int out[2] = { -1, -1 }, er[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct proc *p;
	pid_t parent = getpid(), pid;
	ssize_t n;
	int e = 0;

	if (proc_sigchld == NULL) {
		proc_sigchld = evsignal_new(base, SIGCHLD, proc_sigchld_cb, NULL);
		if (proc_sigchld == NULL || event_add(proc_sigchld, NULL) == -1) {
			snprintf(err, errlen, "cannot watch SIGCHLD");
			return NULL;
		}
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->out.fd = p->err.fd = -1;
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(er, O_CLOEXEC) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		proc_child(argv, parent, out[1], er[1], ep[1]);

	close(out[1]);
	close(er[1]);
	close(ep[1]);
	out[1] = er[1] = ep[1] = -1;
	/* EOF on the CLOEXEC pipe: exec worked. Otherwise it holds errno. */
	do
		n = read(ep[0], &e, sizeof(e));
	while (n == -1 && errno == EINTR);
	close(ep[0]);
	ep[0] = -1;

	p->pid = pid;
	p->line_cb = line_cb;
	p->exit_cb = exit_cb;
	p->arg = arg;
	if ((p->next = proc_list) != NULL)
		proc_list->prev = p;
	proc_list = p;
	if (proc_stream_init(base, p, &p->out, PROC_STDOUT, out[0]) == -1 ||
	    proc_stream_init(base, p, &p->err, PROC_STDERR, er[0]) == -1) {
		/* Kill it: a child we cannot hear is no use to a test. */
		kill(pid, SIGKILL);
		p->detached = 1;
		snprintf(err, errlen, "cannot watch the child's output");
		return NULL;
	}
	if (n == (ssize_t)sizeof(e)) {
		/* It will exit 127 at once; proc_reap() frees it. */
		p->detached = 1;
		snprintf(err, errlen, "cannot execute %s: %s", argv[0],
		    strerror(e));
		return NULL;
	}
	return p;

fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] != -1)
			close(out[i]);
		if (er[i] != -1)
			close(er[i]);
		if (ep[i] != -1)
			close(ep[i]);
	}
	free(p);
	return NULL;
}

pid_t
proc_pid(const struct proc *p)
{
	return p->pid;
}

int
proc_signal(struct proc *p, int sig)
{
	if (p->exited)
		return -1;
	return kill(p->pid, sig);
}

void
proc_detach(struct proc *p)
{
	p->detached = 1;
}

size_t
proc_nrunning(void)
{
	struct proc *p;
	size_t n = 0;

	for (p = proc_list; p != NULL; p = p->next)
		n++;
	return n;
}

void
proc_signal_all(int sig)
{
	struct proc *p;

	for (p = proc_list; p != NULL; p = p->next)
		if (!p->exited)
			kill(p->pid, sig);
}

void
proc_kill_all(void)
{
	struct proc *p;
	int st;

	while ((p = proc_list) != NULL) {
		if (!p->exited) {
			kill(p->pid, SIGKILL);
			while (waitpid(p->pid, &st, 0) == -1 && errno == EINTR)
				;
		}
		proc_unlink(p);
		proc_free(p);
	}
	if (proc_sigchld != NULL) {
		event_free(proc_sigchld);
		proc_sigchld = NULL;
	}
}
