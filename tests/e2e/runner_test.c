/*
 * runner_test: `mta-sim run`, the Lua scenario runner, on the self-test
 * scenarios in scenarios/selftest/. Each test runs the runner to its exit
 * and judges its exit status, its TAP (or checklist, or JUnit) output, and
 * what it left behind: every run gets a TMPDIR of its own, which must be
 * empty afterwards, and no process may still name that directory.
 *
 * Paths are relative to the repository root, where `make e2e` runs.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define SELFTEST	"scenarios/selftest/"
#define RUN_DEADLINE_MS	60000

struct run {
	pid_t		 pid;
	int		 fd[2];		/* stdout, stderr */
	struct buf	 out[2];
	char		*tmpdir;	/* the runner's TMPDIR */
	int		 status;
	long long	 ms;		/* how long it took */
};

/* Start `mta-sim run args...` with TMPDIR (and MP_BINDIR if bindir). */
static void
run_start(struct run *r, const char *bindir, char *const args[])
{
	char *argv[32];
	int o[2], e[2], devnull;
	size_t n = 0, i;

	memset(r, 0, sizeof(*r));
	r->tmpdir = h_tmpdir("runner");
	argv[n++] = h_strf("%s/mta-sim", h_bindir());
	argv[n++] = "run";
	for (i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	H_CHECK(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0, "pipe");
	H_CHECK((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) != -1,
	    "/dev/null");
	fflush(stdout);
	fflush(stderr);
	r->ms = h_now_ms();
	H_CHECK((r->pid = fork()) != -1, "fork");
	if (r->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setenv("TMPDIR", r->tmpdir, 1);
		setenv("MP_BINDIR", bindir != NULL ? bindir : h_bindir(), 1);
		dup2(devnull, STDIN_FILENO);
		dup2(o[1], STDOUT_FILENO);
		dup2(e[1], STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(devnull);
	close(o[1]);
	close(e[1]);
	r->fd[0] = o[0];
	r->fd[1] = e[0];
}

/*
 * Read until stream (0 stdout, 1 stderr) holds `until`, or, with NULL,
 * until both streams end. 1 if it got there before the deadline.
 */
static int
run_read(struct run *r, int stream, const char *until, long long deadline)
{
	char tmp[16384];
	ssize_t n;
	int i;

	for (;;) {
		struct pollfd pfd[2];
		int nfd = 0, idx[2];

		if (until != NULL && r->out[stream].len > 0 &&
		    memmem(r->out[stream].data, r->out[stream].len, until,
		    strlen(until)) != NULL)
			return 1;
		for (i = 0; i < 2; i++)
			if (r->fd[i] != -1) {
				pfd[nfd].fd = r->fd[i];
				pfd[nfd].events = POLLIN;
				idx[nfd++] = i;
			}
		if (nfd == 0)
			return until == NULL;
		if (h_now_ms() >= deadline ||
		    poll(pfd, (nfds_t)nfd, (int)(deadline - h_now_ms())) <= 0)
			return 0;
		for (i = 0; i < nfd; i++) {
			if (pfd[i].revents == 0)
				continue;
			n = read(pfd[i].fd, tmp, sizeof(tmp));
			if (n > 0)
				buf_append(&r->out[idx[i]], tmp, (size_t)n);
			else if (n == 0 || errno != EINTR) {
				close(r->fd[idx[i]]);
				r->fd[idx[i]] = -1;
			}
		}
	}
}

static const char *
out(struct run *r)
{
	return r->out[0].len > 0 ? buf_cstr(&r->out[0]) : "";
}

static const char *
err(struct run *r)
{
	return r->out[1].len > 0 ? buf_cstr(&r->out[1]) : "";
}

static void
write_str(const char *path, const char *s)
{
	h_write_file(path, s, strlen(s));
}

/* Does any live process name path in its command line? Its pid, or 0. */
static pid_t
proc_naming(const char *path)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;
	char cmd[8192];
	ssize_t n, i;
	int fd;

	H_CHECK(d != NULL, "/proc");
	while (found == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		/* A process may go away while we look: that is no error. */
		fd = open(h_strf("/proc/%s/cmdline", de->d_name),
		    O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			continue;
		n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (i = 0; i < n; i++)
			if (cmd[i] == '\0')
				cmd[i] = ' ';
		cmd[n] = '\0';
		if (strstr(cmd, path) != NULL)
			found = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return found;
}

/* Wait for the exit; check that the run cleaned up after itself. */
static void
run_finish(struct run *r)
{
	DIR *d;
	struct dirent *de;
	int done, status;
	pid_t left;

	done = run_read(r, 0, NULL, h_now_ms() + RUN_DEADLINE_MS);
	if (!done)
		kill(r->pid, SIGKILL);
	H_CHECK(waitpid(r->pid, &status, 0) == r->pid, "waitpid");
	r->ms = h_now_ms() - r->ms;
	/* NUL-terminated before they are kept: no realloc after that. */
	h_keep(buf_cstr(&r->out[0]));
	h_keep(buf_cstr(&r->out[1]));
	H_CHECK(done, "mta-sim run did not finish\nstdout:\n%s\nstderr:\n%s",
	    out(r), err(r));
	H_CHECK(WIFEXITED(status), "mta-sim run died (status 0x%x)\nstdout:\n"
	    "%s\nstderr:\n%s", (unsigned)status, out(r), err(r));
	r->status = WEXITSTATUS(status);

	/* Teardown: temp directories removed, no child left behind. */
	H_CHECK((d = opendir(r->tmpdir)) != NULL, "%s", r->tmpdir);
	while ((de = readdir(d)) != NULL)
		H_CHECK(strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0, "left in TMPDIR: %s\n%s",
		    de->d_name, out(r));
	closedir(d);
	left = proc_naming(r->tmpdir);
	H_CHECK(left == 0, "process %d still names %s", (int)left, r->tmpdir);
}

/* Run to the end; returns the exit status. args end with NULL. */
static int
run(struct run *r, const char *bindir, ...)
{
	char *args[32];
	size_t n = 0;
	va_list ap;

	va_start(ap, bindir);
	while (n < 31 && (args[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	args[n] = NULL;
	run_start(r, bindir, args);
	run_finish(r);
	return r->status;
}

#define CHECK_STATUS(r, want) H_CHECK((r)->status == (want),		\
	"exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", (r)->status,	\
	(want), out(r), err(r))
#define CHECK_OUT(r, s) H_CHECK(strstr(out(r), (s)) != NULL,		\
	"stdout lacks \"%s\":\n%s\nstderr:\n%s", (s), out(r), err(r))
#define CHECK_NOT_OUT(r, s) H_CHECK(strstr(out(r), (s)) == NULL,	\
	"stdout has \"%s\":\n%s", (s), out(r))
#define CHECK_ERR(r, s) H_CHECK(strstr(err(r), (s)) != NULL,		\
	"stderr lacks \"%s\":\n%s", (s), err(r))

/* Lines of stdout that start with prefix. */
static size_t
count_lines(struct run *r, const char *prefix)
{
	const char *p = out(r);
	size_t n = 0, len = strlen(prefix);

	while (*p != '\0') {
		if (strncmp(p, prefix, len) == 0)
			n++;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return n;
}

START_TEST(test_runner_pass)
{
	struct run r;

	run(&r, NULL, SELFTEST "pass.lua", NULL);
	CHECK_STATUS(&r, 0);
	H_CHECK(strncmp(out(&r), "TAP version 13\n1..10\n", 21) == 0, "%s",
	    out(&r));
	H_CHECK(count_lines(&r, "ok ") == 10, "%s", out(&r));
	H_CHECK(count_lines(&r, "not ok") == 0, "%s", out(&r));
	CHECK_OUT(&r, "# print goes to the notes\t1\ttrue\n# a note\n"
	    "ok 1 - assertions that hold # ");
	CHECK_OUT(&r, "ok 10 - skipped when there is nothing to test # SKIP "
	    "no staging host configured\n");
	CHECK_OUT(&r, "# 9 passed, 0 failed, 0 findings, 1 skipped\n");
}
END_TEST

START_TEST(test_runner_failures)
{
	struct run r;

	run(&r, NULL, SELFTEST "must_fail.lua", NULL);
	CHECK_STATUS(&r, 1);
	CHECK_OUT(&r, "# still running after three failures\n"
	    "not ok 1 - failed assertions are recorded and run() goes on # ");
	CHECK_OUT(&r, "  ---\n"
	    "  check: \"Runner: failing assertions\"\n"
	    "  file: \"scenarios/selftest/must_fail.lua\"\n"
	    "  failures:\n"
	    "    - \"scenarios/selftest/must_fail.lua:9: one is two: got 1, "
	    "want 2\"\n"
	    "    - \"scenarios/selftest/must_fail.lua:10: false is true\"\n"
	    "    - \"scenarios/selftest/must_fail.lua:11: \\\"abc\\\" does not "
	    "contain \\\"x\\\"\"\n"
	    "  ...\n");
	CHECK_OUT(&r, "not ok 2 - t:require stops the scenario # ");
	CHECK_OUT(&r, "    - \"scenarios/selftest/must_fail.lua:19: needed a "
	    "value\"\n  ...\n");
	CHECK_NOT_OUT(&r, "NOT REACHED");
	CHECK_OUT(&r, "\nok 3 - a failure does not stop the run # ");
}
END_TEST

START_TEST(test_runner_lua_error)
{
	struct run r;

	run(&r, NULL, SELFTEST "must_error.lua", NULL);
	CHECK_STATUS(&r, 1);
	CHECK_OUT(&r, "not ok 1 - a Lua error # ");
	CHECK_OUT(&r, "  error: |-\n    scenarios/selftest/must_error.lua:4: "
	    "attempt to index a nil value");
	CHECK_OUT(&r, "    stack traceback:\n");
	CHECK_OUT(&r, "scenarios/selftest/must_error.lua:10: in function");
	CHECK_OUT(&r, "not ok 2 - misusing the API is an error too # ");
	CHECK_OUT(&r, "scenarios/selftest/must_error.lua:17: t:sink: unknown "
	    "option 'nmae'");
}
END_TEST

START_TEST(test_runner_timeout)
{
	struct run r;

	/* Each scenario asks for up to 600 s; --timeout 1 cuts all three. */
	run(&r, NULL, "--timeout", "1", SELFTEST "must_timeout.lua", NULL);
	CHECK_STATUS(&r, 1);
	H_CHECK(count_lines(&r, "not ok") == 3, "%s", out(&r));
	CHECK_OUT(&r, "scenario timed out after 1s while waiting for something "
	    "that never happens");
	CHECK_OUT(&r, "scenario timed out after 1s (busy in Lua, never "
	    "waiting)");
	CHECK_OUT(&r, "scenario timed out after 1s while waiting for an SMTP "
	    "session (t:send)");
	H_CHECK(r.ms < 30000, "took %lld ms", r.ms);
}
END_TEST

START_TEST(test_runner_finding)
{
	struct run r;

	run(&r, NULL, SELFTEST "finding.lua", NULL);
	CHECK_STATUS(&r, 0);
	CHECK_OUT(&r, "# FINDING: a forged pass header skips inspection\n"
	    "ok 1 - a finding # ");

	run(&r, NULL, "--format", "checklist", SELFTEST "finding.lua", NULL);
	CHECK_STATUS(&r, 0);
	CHECK_NOT_OUT(&r, "TAP version");
	/* STATUS, CHECK, ARCHITECTURE, TIME, SCENARIO */
	H_CHECK(count_lines(&r, h_strf("%-8s %-34s %-10s ", "FINDING",
	    "Pass header forgery", "header")) == 1, "%s", out(&r));
	CHECK_OUT(&r, "s  a finding\n");
	CHECK_OUT(&r, "    finding: a forged pass header skips inspection\n");
	CHECK_OUT(&r, "1 checks: 0 passed, 0 failed, 1 findings, 0 skipped");
}
END_TEST

START_TEST(test_runner_filter)
{
	struct run r;

	run(&r, NULL, "--filter", "alpha", SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 0);
	CHECK_OUT(&r, "1..1\nok 1 - alpha-one # ");

	/* "a.t": a substring of "beta.two", and as a pattern "gamma three". */
	run(&r, NULL, "--filter", "a.t", SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 0);
	CHECK_OUT(&r, "1..2\nok 1 - beta.two # ");
	CHECK_OUT(&r, "ok 2 - gamma three # ");

	/* Two filters: either. */
	run(&r, NULL, "--filter", "^gam", "--filter", "one$",
	    SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 0);
	CHECK_OUT(&r, "1..2\nok 1 - alpha-one # ");
	CHECK_OUT(&r, "ok 2 - gamma three # ");

	run(&r, NULL, "--filter", "zzz", SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "no scenario matches --filter zzz");

	run(&r, NULL, "--filter", "bad%", SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "--filter bad%");

	run(&r, NULL, "--list", "--filter", "beta", SELFTEST "filter.lua",
	    NULL);
	CHECK_STATUS(&r, 0);
	H_CHECK(strcmp(out(&r), "beta.two\tbeta.two\t-\tscenarios/selftest/"
	    "filter.lua\n") == 0, "%s", out(&r));
}
END_TEST

START_TEST(test_runner_junit)
{
	struct run r;
	static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<testsuites name=\"mta-sim run\" tests=\"13\" failures=\"2\" ";
	char *xml, *path = h_strf("%s/report.xml", h_tmpdir("junit"));
	size_t len;

	run(&r, NULL, "--junit", path, SELFTEST "pass.lua",
	    SELFTEST "must_fail.lua", NULL);
	CHECK_STATUS(&r, 1);
	xml = h_read_file(path, &len);
	H_CHECK(xml != NULL, "no %s", path);
	H_CHECK(strncmp(xml, head, strlen(head)) == 0, "%s", xml);
	H_CHECK(strstr(xml, "<testsuite name=\"scenarios/selftest/pass.lua\" "
	    "tests=\"10\" failures=\"0\" errors=\"0\" skipped=\"1\"") != NULL,
	    "%s", xml);
	H_CHECK(strstr(xml, "<testsuite name=\"scenarios/selftest/must_fail.lua"
	    "\" tests=\"3\" failures=\"2\" errors=\"0\" skipped=\"0\"") != NULL,
	    "%s", xml);
	H_CHECK(strstr(xml, "name=\"escapes &lt;&amp;&gt; and &quot;quotes&quot;"
	    " in names\"") != NULL, "%s", xml);
	H_CHECK(strstr(xml, "<skipped message=\"no staging host configured\"/>")
	    != NULL, "%s", xml);
	H_CHECK(strstr(xml, "<failure type=\"assertion\" message=\"scenarios/"
	    "selftest/must_fail.lua:11: &quot;abc&quot; does not contain "
	    "&quot;x&quot;\">") != NULL, "%s", xml);
	H_CHECK(h_count(xml, len, "<testcase ", 10) == 13, "%s", xml);
	H_CHECK(h_count(xml, len, "</testcase>", 11) == 13, "%s", xml);
	H_CHECK(strstr(xml, "</testsuites>\n") != NULL, "%s", xml);
}
END_TEST

START_TEST(test_runner_usage)
{
	char *dir = h_tmpdir("bad"), *f;
	struct run r;

	run(&r, NULL, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "usage: mta-sim run");
	run(&r, NULL, "--format", "xml", SELFTEST "filter.lua", NULL);
	CHECK_STATUS(&r, 2);
	run(&r, NULL, SELFTEST "no-such-file.lua", NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "no-such-file.lua");

	f = h_strf("%s/syntax.lua", dir);
	write_str(f, "scenario {\n  name = 'x',\n  run = function(t)\n");
	run(&r, NULL, f, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, h_strf("%s:4:", f));
	H_CHECK(strstr(out(&r), "TAP") == NULL, "%s", out(&r));

	f = h_strf("%s/dup.lua", dir);
	write_str(f, "scenario { name = 'a', run = function() end }\n"
	    "scenario { name = 'a', run = function() end }\n");
	run(&r, NULL, f, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "scenario \"a\" is defined twice");

	f = h_strf("%s/keys.lua", dir);
	write_str(f, "scenario { name = 'a', tiemout = 3, run = function() "
	    "end }\n");
	run(&r, NULL, f, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "scenario: unknown option 'tiemout'");

	f = h_strf("%s/norun.lua", dir);
	write_str(f, "scenario { name = 'a' }\n");
	run(&r, NULL, f, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "run must be a function");

	/* Binary chunks are refused: files load as text only. */
	f = h_strf("%s/binary.lua", dir);
	write_str(f, "\033Lua");
	run(&r, NULL, f, NULL);
	CHECK_STATUS(&r, 2);
	CHECK_ERR(&r, "binary");
}
END_TEST

START_TEST(test_runner_proxy)
{
	struct run r;

	run(&r, NULL, SELFTEST "proxy.lua", NULL);
	CHECK_STATUS(&r, 0);
	H_CHECK(count_lines(&r, "ok ") == 5, "%s", out(&r));
	CHECK_OUT(&r, "ok 1 - forward mode: a message reaches the sink through "
	    "the proxy # ");
}
END_TEST

/* A stand-in mailprevent: listens (says so), exits 4 on HUP, 3 on TERM. */
static char *
fake_bindir(void)
{
	static const char script[] =
	    "#!/bin/sh\n"
	    "trap 'exit 4' HUP\n"
	    "trap 'exit 3' TERM\n"
	    "ip=$(sed -n 's/^listen: \"\\(.*\\):0\"$/\\1/p' \"$2\")\n"
	    "echo \"2026-01-01T00:00:00.000Z mailprevent[$$] level=info "
	    "event=listening addr=$ip:1 mode=forward\" >&2\n"
	    "while :; do sleep 1 >/dev/null 2>&1 & wait $!; done\n";
	char *dir = h_tmpdir("fakebin"), *path = h_strf("%s/mailprevent", dir);

	h_write_file(path, script, sizeof(script) - 1);
	H_CHECK(chmod(path, 0755) == 0, "chmod %s", path);
	return dir;
}

START_TEST(test_runner_proxy_exits)
{
	struct run r;

	run(&r, fake_bindir(), SELFTEST "fake_proxy.lua", NULL);
	CHECK_STATUS(&r, 1);
	CHECK_OUT(&r, "not ok 1 - a proxy that dies unexpectedly fails the "
	    "scenario # ");
	CHECK_OUT(&r, "    - \"proxy proxy1 exited unexpectedly (exit status "
	    "4)\"\n");
	CHECK_OUT(&r, "not ok 2 - a proxy failing at teardown fails the "
	    "scenario # ");
	CHECK_OUT(&r, "    - \"proxy proxy1 ended with exit status 3 at "
	    "teardown\"\n");
	CHECK_OUT(&r, "    - title: \"proxy proxy1: last log lines\"\n");
}
END_TEST

START_TEST(test_runner_sigint)
{
	char *args[] = { "--verbose", SELFTEST "hang.lua", NULL };
	struct run r;

	run_start(&r, NULL, args);
	H_CHECK(run_read(&r, 1, "# waits until interrupted: ready\n",
	    h_now_ms() + H_DEADLINE_MS), "no ready note\nstdout:\n%s\n"
	    "stderr:\n%s", out(&r), err(&r));
	/* The proxy is up now, and its temp directory exists. */
	H_CHECK(proc_naming(r.tmpdir) != 0, "no proxy running");
	kill(r.pid, SIGINT);
	run_finish(&r);
	CHECK_STATUS(&r, 1);
	CHECK_OUT(&r, "not ok 1 - waits until interrupted # ");
	CHECK_OUT(&r, "    - \"interrupted by SIGINT\"\n");
	CHECK_OUT(&r, "Bail out! interrupted by SIGINT\n");
	CHECK_NOT_OUT(&r, "never runs");
	CHECK_NOT_OUT(&r, "ran after the interruption");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("runner");
	TCase *tc = h_tcase("runner");

	tcase_add_test(tc, test_runner_pass);
	tcase_add_test(tc, test_runner_failures);
	tcase_add_test(tc, test_runner_lua_error);
	tcase_add_test(tc, test_runner_timeout);
	tcase_add_test(tc, test_runner_finding);
	tcase_add_test(tc, test_runner_filter);
	tcase_add_test(tc, test_runner_junit);
	tcase_add_test(tc, test_runner_usage);
	tcase_add_test(tc, test_runner_proxy);
	tcase_add_test(tc, test_runner_proxy_exits);
	tcase_add_test(tc, test_runner_sigint);
	suite_add_tcase(s, tc);
	return h_run(s);
}
