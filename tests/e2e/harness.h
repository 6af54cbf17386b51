/*
 * harness: what the end-to-end tests (tests/e2e/NAME_test.c) share.
 *
 * Every test runs in its own process (Check's fork mode). The harness starts
 * bin/mta-sim and bin/mailprevent as children of that process, talks to them
 * over loopback sockets and reads what they write (pipes, the sink's files).
 * Nothing here sleeps to let something happen: every wait is a poll() for an
 * event (a line, a reply, a file change) bounded by a deadline, and the
 * deadline only decides how long a failing test takes to say so.
 *
 * Cleanup holds on every path: h_teardown() (checked fixture) stops children
 * and closes sockets; when an assertion fails, Check _exit()s the test
 * process and the children die with it (PR_SET_PDEATHSIG, and Check kills
 * the test's process group); temporary directories live under one base
 * directory that h_suite_teardown() (unchecked fixture, in the runner
 * process) removes. MP_E2E_KEEP=1 keeps them for a post-mortem.
 *
 * A failure (H_CHECK, the cli_* and sink_* expectations) first dumps every
 * child's output, every SMTP transcript and each sink's events.log to
 * stderr, then fails the test.
 *
 * Environment: MP_BINDIR (default "bin") names the directory holding
 * mailprevent and mta-sim.
 */
#ifndef MP_E2E_HARNESS_H
#define MP_E2E_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>

#include "buf.h"

#define H_DEADLINE_MS	10000	/* bounds every wait; never a synchronisation */
#define H_TEST_TIMEOUT	90	/* seconds, per test, for Check */

/*
 * Assertions.
 */
#define H_CHECK(cond, ...) do {						\
	if (!(cond))							\
		h_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);		\
} while (0)

void	h_fail(const char *file, int line, const char *expr,
	    const char *fmt, ...)
	    __attribute__((format(printf, 4, 5), noreturn));
/* Write every child's output, transcript and sink log to stderr. */
void	h_dump(void);
/* Fail unless got[0..glen) == want[0..wlen); shows the first difference. */
#define H_CHECK_BYTES(got, glen, want, wlen, what)			\
	h_check_bytes(__FILE__, __LINE__, got, glen, want, wlen, what)
void	h_check_bytes(const char *file, int line, const char *got,
	    size_t glen, const char *want, size_t wlen, const char *what);

/*
 * Fixtures. h_tcase() returns a TCase with all of them and the timeout set.
 */
void	h_suite_setup(void);		/* unchecked: base temp directory */
void	h_suite_teardown(void);		/* unchecked: removes it */
void	h_setup(void);			/* checked */
void	h_teardown(void);		/* checked: stops children, closes sockets */
TCase	*h_tcase(const char *name);
/* A main() body: runs suite s, returns the process exit status. */
int	h_run(Suite *s);

/*
 * Small things. Memory returned by h_* and sink_* functions belongs to the
 * test and is released at h_teardown().
 */
char	*h_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	*h_keep(void *);		/* release at teardown */
char	*h_tmpdir(const char *tag);
/* A loopback port with nothing listening on it (bound then closed). */
int	 h_free_port(void);
const char *h_bindir(void);
/* Whole file, NUL-terminated (not counted in *len); NULL if absent. */
char	*h_read_file(const char *path, size_t *len);
void	 h_write_file(const char *path, const char *data, size_t len);
/* Dot-stuff content (CRLF lines) and add ".\r\n". */
char	*h_stuff(const char *content, size_t len, size_t *outlen);
/* Count non-overlapping occurrences of needle in hay[0..len). */
size_t	 h_count(const char *hay, size_t len, const char *needle, size_t nlen);
/* Find needle in hay[0..len) (binary safe); NULL if absent. */
const char *h_memmem(const char *hay, size_t len, const char *needle);
/* Does the key=value line carry key=value exactly (a whole token)? */
int	 h_kv_has(const char *line, const char *key, const char *value);
/* The value of key in a key=value line, unquoted, or NULL. */
char	*h_kv_get(const char *line, const char *key);
/* A small message: From/To/Subject headers and one body line. */
char	*h_msg(const char *subject);
/*
 * .env files: the first line starting with prefix ("mail-from ", "rcpt ")
 * or NULL, and how many lines start with it.
 */
char	*h_env_line(const char *env, const char *prefix);
size_t	 h_env_count(const char *env, const char *prefix);
/* Does the space-separated line contain the token tok exactly? */
int	 h_has_token(const char *line, const char *tok);
/* Monotonic milliseconds. */
long long h_now_ms(void);

/*
 * Processes. stdout and stderr go to separate pipes that the harness drains
 * whenever it waits for anything, so a child never blocks on a full pipe.
 */
enum h_stream { H_STDOUT = 0, H_STDERR = 1 };

struct proc;

/* argv[0] is the program path; argv ends with NULL. */
struct proc *proc_start(const char *name, char *const argv[]);
/*
 * Wait until a complete line after the stream's cursor contains substr;
 * the cursor moves past that line. Returns the line (without newline), or
 * NULL if the deadline passed or the stream ended first.
 */
char	*proc_wait_line(struct proc *, enum h_stream, const char *substr,
	    int ms);
/* Move the cursor to the end of what has been read so far. */
void	 proc_mark(struct proc *, enum h_stream);
/* Everything read so far from the stream (NUL-terminated). */
const char *proc_output(struct proc *, enum h_stream, size_t *len);
void	 proc_signal(struct proc *, int sig);
/* 1 if it exited within ms (status in *status), 0 if still running. */
int	 proc_wait_exit(struct proc *, int ms, int *status);
/* SIGKILL on purpose and reap it: teardown will not call it a crash. */
int	 proc_kill9(struct proc *);
int	 proc_running(struct proc *);
pid_t	 proc_pid(struct proc *);

/*
 * mta-sim sink.
 */
struct sink {
	struct proc	*proc;
	int		 port;
	char		*dir;
	int		 ino;		/* inotify on dir: wakes waits on files */
};

/*
 * Start "mta-sim sink --listen 127.0.0.1:0 --dir DIR extra..." (extras end
 * with NULL). dir NULL: a fresh temporary directory.
 */
struct sink *sink_start(const char *dir, ...) __attribute__((sentinel));
/* Accepted messages ("msg-NNNNNN", no extension), sorted; n set. */
char	**sink_messages(struct sink *, size_t *n);
size_t	 sink_count(struct sink *);
/* Rejected messages (msg-*.rejected.eml). */
size_t	 sink_count_rejected(struct sink *);
/* DIR/name; NULL if absent. */
char	*sink_read(struct sink *, const char *name, size_t *len);
/* The i-th accepted message's .eml / .env. Fails the test if absent. */
char	*sink_eml(struct sink *, size_t i, size_t *len);
char	*sink_env(struct sink *, size_t i);
/* wire-*.raw names, sorted. */
char	**sink_wires(struct sink *, size_t *n);
/*
 * Wait until every connection the sink accepted has been closed
 * (events.log: as many "event=close" as "event=connect"), so that its
 * files are final. Fails the test at the deadline.
 */
#define sink_wait_idle(s)	sink_wait_idle_at(__FILE__, __LINE__, s)
void	 sink_wait_idle_at(const char *file, int line, struct sink *);
/* Wait until events.log holds at least n lines containing substr. */
void	 sink_wait_events(struct sink *, const char *substr, size_t n);
size_t	 sink_events(struct sink *, const char *substr);

/*
 * mailprevent.
 */
struct proxy {
	struct proc	*proc;
	int		 port;
	char		*cfg;		/* path of the YAML file */
};

/* Write yaml to a temp file, start "mailprevent -c FILE", wait for
 * event=listening. Fails the test if it does not come up. */
struct proxy *proxy_start(const char *yaml);
/* Replace the config file (atomically: write + rename). */
void	 proxy_write_config(struct proxy *, const char *yaml);
/* Wait for a stderr line containing substr after the cursor; fails the
 * test at the deadline. proc_mark(px->proc, H_STDERR) sets the cursor. */
#define proxy_wait_log(px, substr)					\
	proxy_wait_log_at(__FILE__, __LINE__, px, substr)
char	*proxy_wait_log_at(const char *file, int line, struct proxy *,
	    const char *substr);
/*
 * The tests' usual configuration: forward mode, next_hop.hosts from
 * ports[0..n), helo_name mailprevent.test, pass header
 * "X-Filter-Loop: Reflected", max_message_size 1048576, then extra
 * (more YAML, may be "").
 */
char	*h_yaml(const int *ports, size_t n, const char *extra);
/* The same, with hop_extra ("  key: value\n" lines) under next_hop. */
char	*h_yaml_hop(const int *ports, size_t n, const char *hop_extra,
	    const char *extra);
#define H_PASS_HEADER	"X-Filter-Loop: Reflected"
#define H_MAX_SIZE	1048576

/*
 * A raw SMTP client.
 */
struct cli_reply {
	int	code;		/* -1: no complete reply (see text) */
	char	enh[16];	/* enhanced code of the first line, or "" */
	int	nlines;
	char	text[8192];	/* each line's text (code and enhanced code
				   removed), joined by '\n' */
};

struct cli;

struct cli *cli_connect(int port);
/* The same, but NULL (not a failure) when the connection is refused. */
struct cli *cli_try_connect(int port);
void	 cli_send(struct cli *, const void *, size_t);
void	 cli_sendf(struct cli *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Read one reply. Returns 0, or -1 (EOF, timeout, malformed: r->text says). */
int	 cli_reply(struct cli *, struct cli_reply *);
/* 1 if the server closed the connection (with no more bytes) in time. */
int	 cli_wait_closed(struct cli *);
void	 cli_close(struct cli *);
/* Nothing is pending from the server right now (no unread bytes). */
int	 cli_idle(struct cli *);
/*
 * Wait up to ms for the server to say something: 1 as soon as bytes (or
 * EOF) are there to read, 0 when ms passed in silence. For pacing a slow
 * client; nothing is consumed.
 */
int	 cli_poll(struct cli *, int ms);
/*
 * Like cli_send, but a server that closes or resets the connection is not
 * a failure: returns how many bytes went out before it did (len if all).
 */
size_t	 cli_try_send(struct cli *, const void *, size_t);
/* Every byte received from the server so far, as received. */
const char *cli_received(struct cli *, size_t *len);
/*
 * Raw bytes rather than a reply: wait until n unread bytes are there (or
 * EOF, or the deadline), consume up to n of them and return them (valid
 * until the next read on this client); *got says how many.
 */
const char *cli_read_raw(struct cli *, size_t n, size_t *got);

/* VmRSS of a live process, in KiB, from /proc/PID/status. */
long	 h_rss_kb(pid_t);

/*
 * Expectations: read a reply and fail unless its code is code and, when
 * enh is not NULL, its enhanced code is enh. Returns the reply (kept
 * until teardown).
 */
#define cli_expect(c, code, enh)					\
	cli_expect_at(__FILE__, __LINE__, c, code, enh)
/* Send one command line (CRLF added) and expect a reply. */
#define cli_cmd(c, code, enh, ...)					\
	cli_cmd_at(__FILE__, __LINE__, c, code, enh, __VA_ARGS__)
/* Expect a reply of class cls (2, 3, 4, 5). */
#define cli_expect_class(c, cls)					\
	cli_expect_class_at(__FILE__, __LINE__, c, cls)
struct cli_reply *cli_expect_at(const char *file, int line, struct cli *,
	    int code, const char *enh);
struct cli_reply *cli_cmd_at(const char *file, int line, struct cli *,
	    int code, const char *enh, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
struct cli_reply *cli_expect_class_at(const char *file, int line,
	    struct cli *, int cls);

/*
 * Connect, expect 220, EHLO (250). The usual start of a session.
 */
#define cli_open(port)	cli_open_at(__FILE__, __LINE__, port)
struct cli *cli_open_at(const char *file, int line, int port);
/*
 * MAIL FROM:<from> params, RCPT TO:<rcpt> (each expecting 250), DATA
 * (354), then content (CRLF lines, stuffed by the harness). Returns the
 * reply to the final dot without judging it.
 */
#define cli_mail(c, from, params, rcpt, content, len)			\
	cli_mail_at(__FILE__, __LINE__, c, from, params, rcpt, content, len)
struct cli_reply *cli_mail_at(const char *file, int line, struct cli *,
	    const char *from, const char *params, const char *rcpt,
	    const char *content, size_t len);
/* QUIT, expect 221, close. */
#define cli_quit(c)	cli_quit_at(__FILE__, __LINE__, c)
void	 cli_quit_at(const char *file, int line, struct cli *);

#endif
