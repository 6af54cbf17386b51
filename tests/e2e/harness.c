/*
 * harness: processes, sinks, the proxy and a raw SMTP client for the
 * end-to-end tests. See harness.h for the rules it keeps (no sleeps,
 * deadlines only bound failures, nothing left running).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_PROCS	16
#define H_MAX_CLIS	64
#define H_MAX_SINKS	8
#define H_MAX_KEEP	4096
#define H_DUMP_TAIL	12000	/* bytes of each output shown on failure */
#define H_TR_CHUNK	600	/* bytes of each send/receive kept in transcripts */

struct proc {
	char		 name[32];
	char		 cmdline[1024];
	pid_t		 pid;
	int		 pidfd;		/* -1 if pidfd_open is missing */
	int		 fd[2];		/* stdout, stderr; -1 at EOF */
	struct buf	 out[2];
	size_t		 cursor[2];
	int		 exited;
	int		 status;
	int		 stopping;	/* teardown sent the signal */
	int		 killed;	/* the test killed it on purpose */
};

struct cli {
	int		 id;
	int		 fd;
	int		 port;
	int		 eof;
	struct buf	 rx;
	size_t		 rpos;
	struct buf	 tr;		/* transcript */
};

static char		 h_base[256];	/* set in the runner, inherited by tests */
static char		 h_testdir[300];	/* h_base/t-PID: this test's own */
static struct proc	*h_procs[H_MAX_PROCS];
static size_t		 h_nprocs;
static struct cli	*h_clis[H_MAX_CLIS];
static size_t		 h_nclis;
static struct sink	*h_sinks[H_MAX_SINKS];
static size_t		 h_nsinks;
static void		*h_kept[H_MAX_KEEP];
static size_t		 h_nkept;
static unsigned		 h_seq;
static int		 h_failing;	/* h_fail is running: no recursion */

static void	h_pump(int fd, short events, int ms, int *ready);
static void	h_kill_all(void);
static void	proc_reap(struct proc *);

/*
 * Small things.
 */

long long
h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
h_left(long long deadline)
{
	long long left = deadline - h_now_ms();

	return left < 0 ? 0 : (int)left;
}

void *
h_keep(void *p)
{
	if (p == NULL) {
		fprintf(stderr, "harness: out of memory\n");
		abort();
	}
	if (h_nkept < H_MAX_KEEP)
		h_kept[h_nkept++] = p;
	/* else: leaked until the test process exits, which is soon */
	return p;
}

char *
h_strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		s = NULL;
	return h_keep(s);
}

static void
h_vfail(const char *file, int line, const char *expr, const char *fmt,
    va_list ap)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (!h_failing) {
		h_failing = 1;
		fprintf(stderr, "\n==== e2e failure at %s:%d: %s%s%s\n", file,
		    line, msg, expr ? " -- " : "", expr ? expr : "");
		h_dump();
		fprintf(stderr, "==== end of failure dump\n");
		h_kill_all();
	}
	ck_abort_msg("%s:%d: %s%s%s", file, line, msg, expr ? " -- " : "",
	    expr ? expr : "");
	abort();	/* not reached: ck_abort_msg does not return */
}

void
h_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h_vfail(file, line, expr, fmt, ap);
	va_end(ap);
	abort();
}

/* Harness-internal failure: no expression to show. */
static void __attribute__((format(printf, 3, 4), noreturn))
h_die(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h_vfail(file, line, NULL, fmt, ap);
	va_end(ap);
	abort();
}

#define H_DIE(...)	h_die(__FILE__, __LINE__, __VA_ARGS__)

/* Printable rendering of bytes for messages and transcripts. */
static void
h_escape(struct buf *b, const char *p, size_t len, size_t max)
{
	size_t i, n = len < max ? len : max;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r')
			buf_appends(b, "\\r");
		else if (ch == '\n')
			buf_appends(b, "\\n\n");
		else if (ch == '\\')
			buf_appends(b, "\\\\");
		else if (ch >= 0x20 && ch < 0x7f)
			buf_append(b, p + i, 1);
		else
			buf_appendf(b, "\\x%02x", ch);
	}
	if (n < len)
		buf_appendf(b, "...(%zu more bytes)", len - n);
}

void
h_check_bytes(const char *file, int line, const char *got, size_t glen,
    const char *want, size_t wlen, const char *what)
{
	struct buf b = BUF_INIT;
	size_t i, from;
	char *s;

	if (got != NULL && glen == wlen && memcmp(got, want, wlen) == 0)
		return;
	if (got == NULL)
		h_die(file, line, "%s: missing", what);
	for (i = 0; i < glen && i < wlen && got[i] == want[i]; i++)
		;
	from = i > 80 ? i - 80 : 0;
	buf_appendf(&b, "%s differs at offset %zu (got %zu bytes, want %zu)"
	    "\n--- got from offset %zu:\n", what, i, glen, wlen, from);
	h_escape(&b, got + from, glen - from, 240);
	buf_appendf(&b, "\n--- want from offset %zu:\n", from);
	h_escape(&b, want + from, wlen - from, 240);
	s = h_keep(strdup(buf_cstr(&b)));
	buf_free(&b);
	h_die(file, line, "%s", s);
}

const char *
h_bindir(void)
{
	const char *d = getenv("MP_BINDIR");

	return d != NULL && *d != '\0' ? d : "bin";
}

char *
h_tmpdir(const char *tag)
{
	char *path;

	if (h_testdir[0] == '\0')
		H_DIE("no test directory: are the fixtures from h_tcase()?");
	path = h_strf("%s/%s-%u", h_testdir, tag, h_seq++);
	if (mkdir(path, 0700) == -1)
		H_DIE("mkdir %s: %s", path, strerror(errno));
	return path;
}

int
h_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		H_DIE("socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		H_DIE("bind: %s", strerror(errno));
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

char *
h_read_file(const char *path, size_t *len)
{
	struct buf b = BUF_INIT;
	char tmp[65536];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			H_DIE("read %s: %s", path, strerror(errno));
		}
		if (buf_append(&b, tmp, (size_t)n) == -1)
			H_DIE("out of memory");
	}
	close(fd);
	if (len != NULL)
		*len = b.len;
	buf_cstr(&b);
	if (b.data == NULL)
		H_DIE("out of memory");
	return h_keep(b.data);
}

void
h_write_file(const char *path, const char *data, size_t len)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		H_DIE("open %s: %s", path, strerror(errno));
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			H_DIE("write %s: %s", path, strerror(errno));
		off += (size_t)n;
	}
	if (close(fd) == -1)
		H_DIE("close %s: %s", path, strerror(errno));
}

char *
h_stuff(const char *content, size_t len, size_t *outlen)
{
	struct buf b = BUF_INIT;
	size_t i;
	int bol = 1;

	for (i = 0; i < len; i++) {
		if (bol && content[i] == '.')
			buf_append(&b, ".", 1);
		buf_append(&b, content + i, 1);
		bol = content[i] == '\n';
	}
	if (len > 0 && !bol)
		buf_append(&b, "\r\n", 2);
	buf_append(&b, ".\r\n", 3);
	*outlen = b.len;
	buf_cstr(&b);
	return h_keep(b.data);
}

const char *
h_memmem(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle));
}

size_t
h_count(const char *hay, size_t len, const char *needle, size_t nlen)
{
	const char *p = hay, *end = hay + len, *q;
	size_t n = 0;

	if (nlen == 0)
		return 0;
	while (p < end && (q = memmem(p, (size_t)(end - p), needle, nlen))) {
		n++;
		p = q + nlen;
	}
	return n;
}

/* Start of the token "key=" in line, or NULL. */
static const char *
h_kv_find(const char *line, const char *key)
{
	size_t kl = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=')
			return p + kl + 1;
		p += kl;
	}
	return NULL;
}

char *
h_kv_get(const char *line, const char *key)
{
	const char *v = h_kv_find(line, key);
	struct buf b = BUF_INIT;

	if (v == NULL)
		return NULL;
	if (*v == '"') {
		for (v++; *v != '\0' && *v != '"'; v++) {
			if (*v == '\\' && v[1] != '\0')
				v++;
			buf_append(&b, v, 1);
		}
	} else {
		size_t n = strcspn(v, " ");

		buf_append(&b, v, n);
	}
	buf_cstr(&b);
	if (b.data == NULL)
		return h_keep(strdup(""));
	return h_keep(b.data);
}

int
h_kv_has(const char *line, const char *key, const char *value)
{
	char *v = h_kv_get(line, key);

	return v != NULL && strcmp(v, value) == 0;
}

char *
h_msg(const char *subject)
{
	return h_strf("From: <a@x>\r\nTo: <b@y>\r\nSubject: %s\r\n\r\n"
	    "body of %s\r\n", subject, subject);
}

char *
h_env_line(const char *env, const char *prefix)
{
	size_t pl = strlen(prefix);
	const char *p = env;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, pl) == 0)
			return h_keep(strndup(p, strcspn(p, "\r\n")));
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

size_t
h_env_count(const char *env, const char *prefix)
{
	size_t pl = strlen(prefix), n = 0;
	const char *p = env;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, pl) == 0)
			n++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

int
h_has_token(const char *line, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = line;

	while ((p = strstr(p, tok)) != NULL) {
		if ((p == line || p[-1] == ' ') &&
		    (p[tl] == '\0' || p[tl] == ' ' || p[tl] == '\r' ||
		    p[tl] == '\n'))
			return 1;
		p += tl;
	}
	return 0;
}

/*
 * Fixtures.
 */

void
h_suite_setup(void)
{
	const char *t = getenv("TMPDIR");
	char tmpl[200];

	snprintf(tmpl, sizeof(tmpl), "%s/mp-e2e.XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", tmpl,
		    strerror(errno));
		exit(2);
	}
	snprintf(h_base, sizeof(h_base), "%s", tmpl);
}

static int
h_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	/* Best effort: a leftover file only costs disk space. */
	if (flag == FTW_DP)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

void
h_suite_teardown(void)
{
	const char *keep = getenv("MP_E2E_KEEP");

	if (h_base[0] == '\0')
		return;
	if (keep != NULL && *keep != '\0' && strcmp(keep, "0") != 0)
		fprintf(stderr, "harness: kept %s\n", h_base);
	else
		nftw(h_base, h_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	h_base[0] = '\0';
}

void
h_setup(void)
{
	struct stat st;
	const char *progs[] = { "mailprevent", "mta-sim" };
	size_t i;

	/* A test writing to a socket the peer closed must fail, not die. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Each test is a fresh fork of the runner: counters start over, so
	 * the test's pid keeps its directories apart from earlier tests'.
	 */
	if (h_base[0] == '\0')
		H_DIE("no base directory: is h_suite_setup an unchecked fixture?");
	snprintf(h_testdir, sizeof(h_testdir), "%s/t-%ld", h_base,
	    (long)getpid());
	if (mkdir(h_testdir, 0700) == -1)
		H_DIE("mkdir %s: %s", h_testdir, strerror(errno));
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		char *p = h_strf("%s/%s", h_bindir(), progs[i]);

		if (stat(p, &st) == -1 || !(st.st_mode & S_IXUSR))
			H_DIE("%s is missing (build it, or set MP_BINDIR)", p);
	}
}

/* Why a child is a failure once stopped, or NULL. */
static const char *
h_stop_problem(struct proc *p, int timely)
{
	static const char *const marks[] = {
		"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
		"runtime error:", "WARNING: ThreadSanitizer", NULL
	};
	size_t i;
	const char *err = proc_output(p, H_STDERR, NULL);

	for (i = 0; marks[i] != NULL; i++)
		if (strstr(err, marks[i]) != NULL)
			return h_strf("%s reported \"%s\"", p->name, marks[i]);
	/* Only the proxy promises a clean exit on SIGTERM. */
	if (strcmp(p->name, "mailprevent") != 0 || p->killed)
		return NULL;
	if (!timely)
		return h_strf("%s did not exit within 5 s of SIGTERM with no "
		    "client connected", p->name);
	if (WIFSIGNALED(p->status) && WTERMSIG(p->status) != SIGTERM)
		return h_strf("%s died of signal %d after SIGTERM", p->name,
		    WTERMSIG(p->status));
	if (WIFEXITED(p->status) && WEXITSTATUS(p->status) != 0)
		return h_strf("%s exited with status %d after SIGTERM",
		    p->name, WEXITSTATUS(p->status));
	return NULL;
}

void
h_teardown(void)
{
	const char *problem = NULL;
	long long deadline;
	size_t i;

	for (i = 0; i < h_nclis; i++)
		cli_close(h_clis[i]);

	/* A child that died on its own during the test is a failure. */
	h_pump(-1, 0, 0, NULL);
	for (i = 0; i < h_nprocs && problem == NULL; i++) {
		struct proc *p = h_procs[i];

		proc_reap(p);
		if (!p->exited || p->stopping)
			continue;
		if (WIFSIGNALED(p->status))
			problem = h_strf("%s died of signal %d during the test",
			    p->name, WTERMSIG(p->status));
		else
			problem = h_strf("%s exited with status %d during the "
			    "test", p->name, WEXITSTATUS(p->status));
	}

	for (i = 0; i < h_nprocs; i++)
		if (!h_procs[i]->exited) {
			h_procs[i]->stopping = 1;
			kill(h_procs[i]->pid, SIGTERM);
		}
	deadline = h_now_ms() + 5000;
	for (i = 0; i < h_nprocs; i++) {
		struct proc *p = h_procs[i];
		int st, timely;

		timely = proc_wait_exit(p, h_left(deadline), &st);
		if (!timely) {
			kill(p->pid, SIGKILL);
			proc_wait_exit(p, 2000, &st);
		}
		if (problem == NULL)
			problem = h_stop_problem(p, timely);
	}
	if (problem != NULL)
		H_DIE("%s", problem);

	for (i = 0; i < h_nsinks; i++)
		if (h_sinks[i]->ino != -1)
			close(h_sinks[i]->ino);
	for (i = 0; i < h_nprocs; i++) {
		buf_free(&h_procs[i]->out[0]);
		buf_free(&h_procs[i]->out[1]);
		if (h_procs[i]->fd[0] != -1)
			close(h_procs[i]->fd[0]);
		if (h_procs[i]->fd[1] != -1)
			close(h_procs[i]->fd[1]);
		if (h_procs[i]->pidfd != -1)
			close(h_procs[i]->pidfd);
		free(h_procs[i]);
	}
	for (i = 0; i < h_nclis; i++) {
		buf_free(&h_clis[i]->rx);
		buf_free(&h_clis[i]->tr);
		free(h_clis[i]);
	}
	for (i = 0; i < h_nsinks; i++)
		free(h_sinks[i]);
	for (i = 0; i < h_nkept; i++)
		free(h_kept[i]);
	h_nprocs = h_nclis = h_nsinks = h_nkept = 0;
}

TCase *
h_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, h_suite_setup, h_suite_teardown);
	tcase_add_checked_fixture(tc, h_setup, h_teardown);
	tcase_set_timeout(tc, H_TEST_TIMEOUT);
	return tc;
}

int
h_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

/*
 * Dump.
 */

static void
h_dump_tail(const char *title, const char *p, size_t len)
{
	size_t from = len > H_DUMP_TAIL ? len - H_DUMP_TAIL : 0;

	fprintf(stderr, "---- %s (%zu bytes%s)\n", title, len,
	    from ? ", tail only" : "");
	fwrite(p + from, 1, len - from, stderr);
	if (len > 0 && p[len - 1] != '\n')
		fputc('\n', stderr);
}

void
h_dump(void)
{
	size_t i;

	h_pump(-1, 0, 0, NULL);
	for (i = 0; i < h_nprocs; i++) {
		struct proc *p = h_procs[i];
		char title[1200];

		/* Pipes close a moment before the exit status is there. */
		if (p->fd[0] == -1 && p->fd[1] == -1)
			proc_wait_exit(p, 1000, NULL);
		proc_reap(p);
		fprintf(stderr, "---- process %s pid %ld: %s [%s]\n", p->name,
		    (long)p->pid, p->cmdline, !p->exited ? "running" :
		    WIFSIGNALED(p->status) ? "killed by signal" : "exited");
		if (p->exited && WIFSIGNALED(p->status))
			fprintf(stderr, "     signal %d\n", WTERMSIG(p->status));
		else if (p->exited)
			fprintf(stderr, "     status %d\n", WEXITSTATUS(p->status));
		snprintf(title, sizeof(title), "%s stdout", p->name);
		h_dump_tail(title, p->out[0].data ? p->out[0].data : "",
		    p->out[0].len);
		snprintf(title, sizeof(title), "%s stderr", p->name);
		h_dump_tail(title, p->out[1].data ? p->out[1].data : "",
		    p->out[1].len);
	}
	for (i = 0; i < h_nclis; i++) {
		struct cli *c = h_clis[i];
		char title[64];

		snprintf(title, sizeof(title), "client %d -> port %d", c->id,
		    c->port);
		h_dump_tail(title, c->tr.data ? c->tr.data : "", c->tr.len);
	}
	for (i = 0; i < h_nsinks; i++) {
		char *path = h_strf("%s/events.log", h_sinks[i]->dir);
		size_t len;
		char *log = h_read_file(path, &len);

		h_dump_tail(path, log ? log : "(absent)", log ? len : 8);
	}
	fflush(stderr);
}

/*
 * Processes.
 */

/*
 * On a failure Check _exit()s the test process without teardown: kill and
 * reap the children first, so they do not linger as zombies.
 */
static void
h_kill_all(void)
{
	size_t i;

	for (i = 0; i < h_nprocs; i++) {
		proc_reap(h_procs[i]);
		if (h_procs[i]->exited)
			continue;
		h_procs[i]->stopping = 1;
		kill(h_procs[i]->pid, SIGKILL);
		if (waitpid(h_procs[i]->pid, &h_procs[i]->status, 0) ==
		    h_procs[i]->pid)
			h_procs[i]->exited = 1;
	}
}

static void
proc_reap(struct proc *p)
{
	pid_t r;

	if (p->exited)
		return;
	r = waitpid(p->pid, &p->status, WNOHANG);
	if (r == p->pid)
		p->exited = 1;
}

static void
proc_drain(struct proc *p, int s)
{
	char tmp[16384];
	ssize_t n;

	while (p->fd[s] != -1) {
		n = read(p->fd[s], tmp, sizeof(tmp));
		if (n > 0) {
			if (buf_append(&p->out[s], tmp, (size_t)n) == -1)
				H_DIE("out of memory");
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close(p->fd[s]);	/* EOF or error */
		p->fd[s] = -1;
	}
}

/*
 * Wait up to ms for fd (if not -1) to be ready for events, reading every
 * child's pipes meanwhile. Returns as soon as fd is ready (*ready = 1),
 * something arrived on a pipe or a child exited (the caller rechecks its
 * condition), or ms passed.
 */
static void
h_pump(int fd, short events, int ms, int *ready)
{
	struct pollfd pfd[1 + 3 * H_MAX_PROCS + H_MAX_SINKS];
	struct proc *owner[1 + 3 * H_MAX_PROCS + H_MAX_SINKS];
	int stream[1 + 3 * H_MAX_PROCS + H_MAX_SINKS];
	nfds_t n = 0, k;
	size_t i;
	int s, r;

	if (ready != NULL)
		*ready = 0;
	if (fd != -1) {
		pfd[n].fd = fd;
		pfd[n].events = events;
		owner[n] = NULL;
		stream[n++] = -1;
	}
	for (i = 0; i < h_nprocs; i++) {
		struct proc *p = h_procs[i];

		for (s = 0; s < 2; s++)
			if (p->fd[s] != -1) {
				pfd[n].fd = p->fd[s];
				pfd[n].events = POLLIN;
				owner[n] = p;
				stream[n++] = s;
			}
		if (p->pidfd != -1 && !p->exited) {
			pfd[n].fd = p->pidfd;
			pfd[n].events = POLLIN;
			owner[n] = p;
			stream[n++] = 2;
		}
	}
	for (i = 0; i < h_nsinks; i++)
		if (h_sinks[i]->ino != -1) {
			pfd[n].fd = h_sinks[i]->ino;
			pfd[n].events = POLLIN;
			owner[n] = NULL;
			stream[n++] = 3;
		}
	r = poll(pfd, n, ms);
	if (r == -1 && errno != EINTR)
		H_DIE("poll: %s", strerror(errno));
	for (k = 0; r > 0 && k < n; k++) {
		if (pfd[k].revents == 0)
			continue;
		if (stream[k] == -1) {
			if (ready != NULL)
				*ready = 1;
		} else if (stream[k] == 2)
			proc_reap(owner[k]);
		else if (stream[k] == 3) {
			char tmp[4096];

			/* Only a wake-up: callers re-read the files. */
			while (read(pfd[k].fd, tmp, sizeof(tmp)) > 0)
				;
		} else
			proc_drain(owner[k], stream[k]);
	}
}

struct proc *
proc_start(const char *name, char *const argv[])
{
	struct proc *p;
	int outp[2], errp[2], devnull;
	pid_t parent = getpid();
	size_t i, off = 0;

	if (h_nprocs == H_MAX_PROCS)
		H_DIE("too many processes");
	if ((p = calloc(1, sizeof(*p))) == NULL)
		H_DIE("out of memory");
	snprintf(p->name, sizeof(p->name), "%s", name);
	for (i = 0; argv[i] != NULL && off < sizeof(p->cmdline); i++) {
		int r = snprintf(p->cmdline + off, sizeof(p->cmdline) - off,
		    "%s%s", i ? " " : "", argv[i]);

		off += r < 0 ? 0 : (size_t)r;
	}
	if (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1)
		H_DIE("pipe: %s", strerror(errno));
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		H_DIE("/dev/null: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	p->pid = fork();
	if (p->pid == -1)
		H_DIE("fork: %s", strerror(errno));
	if (p->pid == 0) {
		sigset_t all;

		/* Die with the test process, whatever way it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(devnull, STDIN_FILENO);
		dup2(outp[1], STDOUT_FILENO);
		dup2(errp[1], STDERR_FILENO);
		/* Children start with default signals, as from a shell. */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "harness: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(devnull);
	close(outp[1]);
	close(errp[1]);
	p->fd[0] = outp[0];
	p->fd[1] = errp[0];
	fcntl(p->fd[0], F_SETFL, O_NONBLOCK);
	fcntl(p->fd[1], F_SETFL, O_NONBLOCK);
	p->pidfd = -1;
#ifdef SYS_pidfd_open
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (p->pidfd != -1)
		fcntl(p->pidfd, F_SETFD, FD_CLOEXEC);
#endif
	h_procs[h_nprocs++] = p;
	return p;
}

/* A complete line after the cursor containing substr; moves the cursor. */
static char *
proc_find(struct proc *p, enum h_stream s, const char *substr)
{
	struct buf *b = &p->out[s];
	size_t pos = p->cursor[s];
	const char *nl;

	while (pos < b->len &&
	    (nl = memchr(b->data + pos, '\n', b->len - pos)) != NULL) {
		size_t len = (size_t)(nl - (b->data + pos));

		if (memmem(b->data + pos, len, substr, strlen(substr))) {
			char *line = h_keep(strndup(b->data + pos, len));

			p->cursor[s] = pos + len + 1;
			return line;
		}
		pos += len + 1;
	}
	return NULL;
}

char *
proc_wait_line(struct proc *p, enum h_stream s, const char *substr, int ms)
{
	long long deadline = h_now_ms() + ms;
	char *line;

	for (;;) {
		if ((line = proc_find(p, s, substr)) != NULL)
			return line;
		if (p->fd[s] == -1 || h_left(deadline) == 0)
			return NULL;
		h_pump(-1, 0, h_left(deadline), NULL);
	}
}

void
proc_mark(struct proc *p, enum h_stream s)
{
	h_pump(-1, 0, 0, NULL);
	p->cursor[s] = p->out[s].len;
}

const char *
proc_output(struct proc *p, enum h_stream s, size_t *len)
{
	h_pump(-1, 0, 0, NULL);
	if (len != NULL)
		*len = p->out[s].len;
	buf_cstr(&p->out[s]);
	return p->out[s].data ? p->out[s].data : "";
}

void
proc_signal(struct proc *p, int sig)
{
	proc_reap(p);
	if (p->exited)
		H_DIE("cannot signal %s: it has exited", p->name);
	if (kill(p->pid, sig) == -1)
		H_DIE("kill %s: %s", p->name, strerror(errno));
}

int
proc_kill9(struct proc *p)
{
	int st;

	p->killed = 1;
	proc_signal(p, SIGKILL);
	return proc_wait_exit(p, H_DEADLINE_MS, &st);
}

int
proc_wait_exit(struct proc *p, int ms, int *status)
{
	long long deadline = h_now_ms() + ms;

	/* A test that waits for an exit expects it: not a crash at teardown. */
	p->stopping = 1;
	for (;;) {
		proc_reap(p);
		if (p->exited) {
			/* Keep what it wrote last. */
			while (p->fd[0] != -1 || p->fd[1] != -1) {
				if (p->fd[0] != -1)
					proc_drain(p, 0);
				if (p->fd[1] != -1)
					proc_drain(p, 1);
				if (h_left(deadline) == 0)
					break;
				if (p->fd[0] != -1 || p->fd[1] != -1)
					h_pump(-1, 0, h_left(deadline), NULL);
			}
			if (status != NULL)
				*status = p->status;
			return 1;
		}
		if (h_left(deadline) == 0)
			return 0;
		/* Without a pidfd, nothing wakes us on exit: check often. */
		h_pump(-1, 0, p->pidfd != -1 ? h_left(deadline) :
		    (h_left(deadline) < 20 ? h_left(deadline) : 20), NULL);
	}
}

int
proc_running(struct proc *p)
{
	proc_reap(p);
	return !p->exited;
}

pid_t
proc_pid(struct proc *p)
{
	return p->pid;
}

/*
 * Sink.
 */

static int
h_parse_port(const char *s)
{
	const char *colon = s != NULL ? strrchr(s, ':') : NULL;
	char *end;
	long v;

	if (colon == NULL)
		return -1;
	v = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || v <= 0 || v > 65535)
		return -1;
	if (*end != '\0' && *end != ' ' && *end != '"' && *end != '\r')
		return -1;
	return (int)v;
}

struct sink *
sink_start(const char *dir, ...)
{
	char *argv[64];
	struct sink *s;
	const char *a;
	char *line;
	size_t n = 0;
	va_list ap;

	if (h_nsinks == H_MAX_SINKS)
		H_DIE("too many sinks");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		H_DIE("out of memory");
	s->dir = dir != NULL ? h_keep(strdup(dir)) : h_tmpdir("sink");
	s->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->ino == -1 || inotify_add_watch(s->ino, s->dir, IN_CREATE |
	    IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) == -1)
		H_DIE("inotify %s: %s", s->dir, strerror(errno));
	h_sinks[h_nsinks++] = s;

	argv[n++] = h_strf("%s/mta-sim", h_bindir());
	argv[n++] = "sink";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--dir";
	argv[n++] = s->dir;
	va_start(ap, dir);
	while ((a = va_arg(ap, const char *)) != NULL) {
		if (n == sizeof(argv) / sizeof(argv[0]) - 1)
			H_DIE("too many sink arguments");
		argv[n++] = (char *)a;
	}
	va_end(ap);
	argv[n] = NULL;

	s->proc = proc_start("mta-sim-sink", argv);
	line = proc_wait_line(s->proc, H_STDOUT, "listening ", H_DEADLINE_MS);
	if (line == NULL)
		H_DIE("mta-sim sink did not print \"listening 127.0.0.1:PORT\"");
	if ((s->port = h_parse_port(line)) == -1)
		H_DIE("cannot parse the sink's port from \"%s\"", line);
	return s;
}

static int
h_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir starting with prefix and ending with suffix. */
static char **
h_list(const char *dir, const char *prefix, const char *suffix,
    const char *exclude_suffix, size_t *np)
{
	char **v = NULL;
	size_t n = 0, cap = 0, pl = strlen(prefix), sl = strlen(suffix);
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		H_DIE("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < pl + sl || strncmp(de->d_name, prefix, pl) != 0 ||
		    strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		if (exclude_suffix != NULL && len >= strlen(exclude_suffix) &&
		    strcmp(de->d_name + len - strlen(exclude_suffix),
		    exclude_suffix) == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((v = realloc(v, (cap + 1) * sizeof(*v))) == NULL)
				H_DIE("out of memory");
		}
		v[n++] = h_keep(strdup(de->d_name));
	}
	closedir(d);
	if (v == NULL && (v = malloc(sizeof(*v))) == NULL)
		H_DIE("out of memory");
	qsort(v, n, sizeof(*v), h_cmp_names);
	v[n] = NULL;
	*np = n;
	return h_keep(v);
}

char **
sink_messages(struct sink *s, size_t *np)
{
	char **v = h_list(s->dir, "msg-", ".eml", ".rejected.eml", np);
	size_t i;

	for (i = 0; i < *np; i++)
		v[i][strlen(v[i]) - 4] = '\0';
	return v;
}

size_t
sink_count(struct sink *s)
{
	size_t n;

	sink_messages(s, &n);
	return n;
}

size_t
sink_count_rejected(struct sink *s)
{
	size_t n;

	h_list(s->dir, "msg-", ".rejected.eml", NULL, &n);
	return n;
}

char *
sink_read(struct sink *s, const char *name, size_t *len)
{
	return h_read_file(h_strf("%s/%s", s->dir, name), len);
}

char *
sink_eml(struct sink *s, size_t i, size_t *len)
{
	size_t n;
	char **v = sink_messages(s, &n);
	char *p;

	if (i >= n)
		H_DIE("sink has %zu messages, no message #%zu", n, i);
	if ((p = sink_read(s, h_strf("%s.eml", v[i]), len)) == NULL)
		H_DIE("%s/%s.eml vanished", s->dir, v[i]);
	return p;
}

char *
sink_env(struct sink *s, size_t i)
{
	size_t n;
	char **v = sink_messages(s, &n);
	char *p;

	if (i >= n)
		H_DIE("sink has %zu messages, no message #%zu", n, i);
	if ((p = sink_read(s, h_strf("%s.env", v[i]), NULL)) == NULL)
		H_DIE("%s/%s.env is missing", s->dir, v[i]);
	return p;
}

char **
sink_wires(struct sink *s, size_t *np)
{
	return h_list(s->dir, "wire-", ".raw", NULL, np);
}

size_t
sink_events(struct sink *s, const char *substr)
{
	size_t len, n = 0;
	char *log = sink_read(s, "events.log", &len);
	const char *p, *nl;

	if (log == NULL)
		return 0;
	/* Complete lines only: the sink may be writing the last one. */
	for (p = log; (nl = memchr(p, '\n', len - (size_t)(p - log))) != NULL;
	    p = nl + 1)
		if (memmem(p, (size_t)(nl - p), substr, strlen(substr)))
			n++;
	return n;
}

void
sink_wait_events(struct sink *s, const char *substr, size_t n)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	size_t got;

	/* inotify wakes h_pump when the sink writes anything in its dir. */
	while ((got = sink_events(s, substr)) < n) {
		if (h_left(deadline) == 0)
			H_DIE("sink events.log: %zu lines with \"%s\", waited "
			    "for %zu", got, substr, n);
		h_pump(-1, 0, h_left(deadline), NULL);
	}
}

void
sink_wait_idle_at(const char *file, int line, struct sink *s)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	size_t conn, closed;

	for (;;) {
		conn = sink_events(s, "event=connect");
		closed = sink_events(s, "event=close");
		if (closed >= conn)
			return;
		if (h_left(deadline) == 0)
			h_die(file, line, "sink: %zu connections, only %zu "
			    "closed (did the proxy keep its outbound session "
			    "open after the client left?)", conn, closed);
		h_pump(-1, 0, h_left(deadline), NULL);
	}
}

/*
 * Proxy.
 */

char *
h_yaml(const int *ports, size_t n, const char *extra)
{
	return h_yaml_hop(ports, n, "", extra);
}

char *
h_yaml_hop(const int *ports, size_t n, const char *hop_extra,
    const char *extra)
{
	struct buf b = BUF_INIT;
	size_t i;

	buf_appends(&b, "listen: \"127.0.0.1:0\"\n"
	    "mode: forward\n"
	    "next_hop:\n"
	    "  hosts: [");
	for (i = 0; i < n; i++)
		buf_appendf(&b, "%s\"127.0.0.1:%d\"", i ? ", " : "", ports[i]);
	buf_appendf(&b, "]\n%s"
	    "helo_name: \"mailprevent.test\"\n"
	    "pass_header: \"%s\"\n"
	    "max_message_size: %d\n"
	    "%s", hop_extra, H_PASS_HEADER, H_MAX_SIZE,
	    extra != NULL ? extra : "");
	buf_cstr(&b);
	if (b.data == NULL)
		H_DIE("out of memory");
	return h_keep(b.data);
}

void
proxy_write_config(struct proxy *px, const char *yaml)
{
	char *tmp = h_strf("%s.new", px->cfg);

	h_write_file(tmp, yaml, strlen(yaml));
	if (rename(tmp, px->cfg) == -1)
		H_DIE("rename %s: %s", tmp, strerror(errno));
}

struct proxy *
proxy_start(const char *yaml)
{
	struct proxy *px = h_keep(calloc(1, sizeof(*px)));
	char *dir = h_tmpdir("proxy");
	char *argv[4];
	char *line, *addr;

	px->cfg = h_strf("%s/mailprevent.yaml", dir);
	h_write_file(px->cfg, yaml, strlen(yaml));
	argv[0] = h_strf("%s/mailprevent", h_bindir());
	argv[1] = "-c";
	argv[2] = px->cfg;
	argv[3] = NULL;
	px->proc = proc_start("mailprevent", argv);
	line = proc_wait_line(px->proc, H_STDERR, "event=listening",
	    H_DEADLINE_MS);
	if (line == NULL)
		H_DIE("mailprevent did not log event=listening");
	addr = h_kv_get(line, "addr");
	if (addr == NULL || strncmp(addr, "127.0.0.1:", 10) != 0 ||
	    (px->port = h_parse_port(addr)) == -1)
		H_DIE("no addr=127.0.0.1:PORT in \"%s\"", line);
	return px;
}

char *
proxy_wait_log_at(const char *file, int line_, struct proxy *px,
    const char *substr)
{
	char *line = proc_wait_line(px->proc, H_STDERR, substr, H_DEADLINE_MS);

	if (line == NULL && px->proc->fd[H_STDERR] == -1) {
		int st = 0;

		if (proc_wait_exit(px->proc, 1000, &st) && WIFSIGNALED(st))
			h_die(file, line_, "mailprevent died of signal %d before "
			    "logging \"%s\"", WTERMSIG(st), substr);
		h_die(file, line_, "mailprevent closed its stderr (exit status "
		    "%d) before logging \"%s\"", WEXITSTATUS(st), substr);
	}
	if (line == NULL)
		h_die(file, line_, "mailprevent did not log a line containing "
		    "\"%s\"", substr);
	return line;
}

/*
 * SMTP client.
 */

static void
cli_record(struct cli *c, const char *dir, const char *p, size_t len)
{
	buf_appends(&c->tr, dir);
	h_escape(&c->tr, p, len, H_TR_CHUNK);
	if (c->tr.len > 0 && c->tr.data[c->tr.len - 1] != '\n')
		buf_appends(&c->tr, "\n");
}

/* Connect; a refused connection is NULL when may_refuse, else a failure. */
static struct cli *
cli_connect_how(int port, int may_refuse)
{
	struct sockaddr_in sin;
	struct cli *c;
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	int ready, err = 0;
	socklen_t el = sizeof(err);

	if (h_nclis == H_MAX_CLIS)
		H_DIE("too many client connections");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		H_DIE("out of memory");
	c->id = (int)h_nclis;
	c->port = port;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd == -1)
		H_DIE("socket: %s", strerror(errno));
	h_clis[h_nclis++] = c;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		if (errno == ECONNREFUSED && may_refuse) {
			err = errno;
			goto done;
		}
		if (errno != EINPROGRESS)
			H_DIE("connect 127.0.0.1:%d: %s", port,
			    strerror(errno));
		do {
			if (h_left(deadline) == 0)
				H_DIE("connect 127.0.0.1:%d: timeout", port);
			h_pump(c->fd, POLLOUT, h_left(deadline), &ready);
		} while (!ready);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
			H_DIE("getsockopt: %s", strerror(errno));
	} else
		err = 0;
done:
	if (err == ECONNREFUSED && may_refuse) {
		buf_appendf(&c->tr, "-- connection to 127.0.0.1:%d refused\n",
		    port);
		close(c->fd);
		c->fd = -1;
		return NULL;
	}
	if (err != 0)
		H_DIE("connect 127.0.0.1:%d: %s", port, strerror(err));
	buf_appendf(&c->tr, "-- connected to 127.0.0.1:%d\n", port);
	return c;
}

struct cli *
cli_connect(int port)
{
	return cli_connect_how(port, 0);
}

struct cli *
cli_try_connect(int port)
{
	return cli_connect_how(port, 1);
}

void
cli_send(struct cli *c, const void *data, size_t len)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	const char *p = data;
	size_t off = 0;
	ssize_t n;
	int ready;

	if (c->fd == -1)
		H_DIE("client %d: send on a closed connection", c->id);
	cli_record(c, "C: ", p, len);
	while (off < len) {
		n = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			deadline = h_now_ms() + H_DEADLINE_MS;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			H_DIE("client %d: send after %zu of %zu bytes: %s",
			    c->id, off, len, strerror(errno));
		if (h_left(deadline) == 0)
			H_DIE("client %d: send stalled after %zu of %zu bytes",
			    c->id, off, len);
		h_pump(c->fd, POLLOUT, h_left(deadline), &ready);
	}
}

void
cli_sendf(struct cli *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		H_DIE("out of memory");
	cli_send(c, s, (size_t)r);
	free(s);
}

/* Read more bytes into rx; 0 on progress, -1 on EOF or deadline. */
static int
cli_fill(struct cli *c, long long deadline)
{
	char tmp[16384];
	ssize_t n;
	int ready;

	for (;;) {
		if (c->eof)
			return -1;
		n = recv(c->fd, tmp, sizeof(tmp), 0);
		if (n > 0) {
			if (buf_append(&c->rx, tmp, (size_t)n) == -1)
				H_DIE("out of memory");
			return 0;
		}
		if (n == 0 || (n == -1 && errno == ECONNRESET)) {
			c->eof = 1;
			buf_appends(&c->tr, n == 0 ? "-- closed by server\n" :
			    "-- reset by server\n");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			H_DIE("client %d: recv: %s", c->id, strerror(errno));
		if (h_left(deadline) == 0)
			return -1;
		h_pump(c->fd, POLLIN, h_left(deadline), &ready);
	}
}

static int
h_isenh(const char *p, int code, size_t *len)
{
	size_t i = 0, j;
	int part;

	/* class "." 1*3digit "." 1*3digit, class equal to the reply's */
	if (p[0] < '2' || p[0] > '5' || p[0] - '0' != code / 100 || p[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (j = 0; j < 3 && isdigit((unsigned char)p[i]); j++)
			i++;
		if (j == 0)
			return 0;
		if (part == 0 && p[i++] != '.')
			return 0;
	}
	if (p[i] != ' ' && p[i] != '\0')
		return 0;
	*len = i;
	return 1;
}

int
cli_reply(struct cli *c, struct cli_reply *r)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	size_t tlen = 0;

	memset(r, 0, sizeof(*r));
	r->code = -1;
	for (;;) {
		char *start = c->rx.data + c->rpos, *nl, line[2048];
		size_t len, el;
		int code;

		nl = c->rx.len > c->rpos ?
		    memchr(start, '\n', c->rx.len - c->rpos) : NULL;
		if (nl == NULL) {
			if (cli_fill(c, deadline) == -1) {
				snprintf(r->text, sizeof(r->text), "%s after "
				    "%d reply lines", c->eof ? "connection "
				    "closed" : "timeout", r->nlines);
				r->code = -1;
				return -1;
			}
			continue;
		}
		len = (size_t)(nl - start) + 1;
		cli_record(c, "S: ", start, len);
		c->rpos += len;
		if (len < 2 || start[len - 2] != '\r') {
			snprintf(r->text, sizeof(r->text), "reply line not "
			    "ending in CRLF");
			r->code = -1;
			return -1;
		}
		len -= 2;
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, start, len);
		line[len] = '\0';
		if (len < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			snprintf(r->text, sizeof(r->text), "malformed reply "
			    "line \"%.200s\"", line);
			r->code = -1;
			return -1;
		}
		code = atoi(line);	/* three digits, checked above */
		if (r->nlines > 0 && code != r->code) {
			snprintf(r->text, sizeof(r->text), "reply code changed "
			    "from %d to %d within a reply", r->code, code);
			r->code = -1;
			return -1;
		}
		r->code = code;
		{
			const char *t = len > 4 ? line + 4 : "";

			if (h_isenh(t, code, &el)) {
				if (r->nlines == 0)
					snprintf(r->enh, sizeof(r->enh), "%.*s",
					    (int)el, t);
				if (strncmp(t, r->enh, el) == 0 &&
				    r->enh[el] == '\0')
					t += el + (t[el] == ' ');
			}
			tlen += (size_t)snprintf(r->text + tlen,
			    tlen < sizeof(r->text) ? sizeof(r->text) - tlen : 0,
			    "%s%s", r->nlines ? "\n" : "", t);
			if (tlen >= sizeof(r->text))
				tlen = sizeof(r->text) - 1;
		}
		r->nlines++;
		if (len <= 3 || line[3] == ' ')
			return 0;
	}
}

int
cli_wait_closed(struct cli *c)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;

	while (!c->eof) {
		size_t had = c->rx.len;

		if (cli_fill(c, deadline) == -1)
			break;
		if (c->rx.len > had) {
			cli_record(c, "S(unexpected): ", c->rx.data + had,
			    c->rx.len - had);
			return 0;
		}
	}
	return c->eof && c->rx.len == c->rpos;
}

int
cli_idle(struct cli *c)
{
	char tmp[4096];
	ssize_t n;

	if (c->rx.len > c->rpos)
		return 0;
	n = recv(c->fd, tmp, sizeof(tmp), MSG_PEEK);
	return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

int
cli_poll(struct cli *c, int ms)
{
	long long deadline = h_now_ms() + ms;
	char tmp[1];
	ssize_t n;
	int ready;

	for (;;) {
		if (c->rx.len > c->rpos || c->eof)
			return 1;
		n = recv(c->fd, tmp, sizeof(tmp), MSG_PEEK);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR))
			return 1;	/* bytes, EOF or an error to read */
		if (h_left(deadline) == 0)
			return 0;
		h_pump(c->fd, POLLIN, h_left(deadline), &ready);
	}
}

size_t
cli_try_send(struct cli *c, const void *data, size_t len)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	const char *p = data;
	size_t off = 0;
	ssize_t n;
	int ready;

	if (c->fd == -1)
		H_DIE("client %d: send on a closed connection", c->id);
	while (off < len) {
		n = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			deadline = h_now_ms() + H_DEADLINE_MS;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
			buf_appendf(&c->tr, "-- send: %s after %zu of %zu "
			    "bytes\n", strerror(errno), off, len);
			break;
		}
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			H_DIE("client %d: send after %zu of %zu bytes: %s",
			    c->id, off, len, strerror(errno));
		if (h_left(deadline) == 0)
			H_DIE("client %d: send stalled after %zu of %zu bytes",
			    c->id, off, len);
		h_pump(c->fd, POLLOUT, h_left(deadline), &ready);
	}
	cli_record(c, "C: ", p, off);
	return off;
}

const char *
cli_received(struct cli *c, size_t *len)
{
	*len = c->rx.len;
	return c->rx.data != NULL ? c->rx.data : "";
}

const char *
cli_read_raw(struct cli *c, size_t n, size_t *got)
{
	long long deadline = h_now_ms() + H_DEADLINE_MS;
	const char *p;

	while (c->rx.len - c->rpos < n && cli_fill(c, deadline) == 0)
		;
	*got = c->rx.len - c->rpos < n ? c->rx.len - c->rpos : n;
	p = c->rx.data != NULL ? c->rx.data + c->rpos : "";
	cli_record(c, "S(raw): ", p, *got);
	c->rpos += *got;
	return p;
}

long
h_rss_kb(pid_t pid)
{
	char *st = h_read_file(h_strf("/proc/%ld/status", (long)pid), NULL);
	const char *p;

	if (st == NULL || (p = strstr(st, "\nVmRSS:")) == NULL)
		H_DIE("no VmRSS in /proc/%ld/status", (long)pid);
	return strtol(p + 8, NULL, 10);
}

void
cli_close(struct cli *c)
{
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
		buf_appends(&c->tr, "-- closed by client\n");
	}
}

static const char *
cli_show(const struct cli_reply *r)
{
	if (r->code == -1)
		return h_strf("no reply (%s)", r->text);
	return h_strf("%d %s%s%s", r->code, r->enh, r->enh[0] ? " " : "",
	    r->text);
}

struct cli_reply *
cli_expect_at(const char *file, int line, struct cli *c, int code,
    const char *enh)
{
	struct cli_reply *r = h_keep(malloc(sizeof(*r)));

	cli_reply(c, r);
	if (r->code != code || (enh != NULL && strcmp(r->enh, enh) != 0))
		h_die(file, line, "client %d: expected %d%s%s, got %s", c->id,
		    code, enh ? " " : "", enh ? enh : "", cli_show(r));
	return r;
}

struct cli_reply *
cli_expect_class_at(const char *file, int line, struct cli *c, int cls)
{
	struct cli_reply *r = h_keep(malloc(sizeof(*r)));

	cli_reply(c, r);
	if (r->code / 100 != cls)
		h_die(file, line, "client %d: expected a %dxx reply, got %s",
		    c->id, cls, cli_show(r));
	return r;
}

struct cli_reply *
cli_cmd_at(const char *file, int line, struct cli *c, int code,
    const char *enh, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		H_DIE("out of memory");
	h_keep(s);
	cli_sendf(c, "%s\r\n", s);
	return cli_expect_at(file, line, c, code, enh);
}

struct cli *
cli_open_at(const char *file, int line, int port)
{
	struct cli *c = cli_connect(port);

	cli_expect_at(file, line, c, 220, NULL);
	cli_cmd_at(file, line, c, 250, NULL, "EHLO client.test");
	return c;
}

struct cli_reply *
cli_mail_at(const char *file, int line, struct cli *c, const char *from,
    const char *params, const char *rcpt, const char *content, size_t len)
{
	struct cli_reply *r = h_keep(malloc(sizeof(*r)));
	size_t wlen;
	char *wire;

	cli_cmd_at(file, line, c, 250, NULL, "MAIL FROM:<%s>%s%s", from,
	    params != NULL && *params ? " " : "", params ? params : "");
	cli_cmd_at(file, line, c, 250, NULL, "RCPT TO:<%s>", rcpt);
	cli_cmd_at(file, line, c, 354, NULL, "DATA");
	wire = h_stuff(content, len, &wlen);
	cli_send(c, wire, wlen);
	cli_reply(c, r);
	return r;
}

void
cli_quit_at(const char *file, int line, struct cli *c)
{
	cli_cmd_at(file, line, c, 221, NULL, "QUIT");
	cli_close(c);
}
