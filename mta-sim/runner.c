/*
 * runner: `mta-sim run [options] FILE.lua...`, see runner.h and
 * docs/scenarios.md.
 *
 * Each scenario's run(t) is a Lua coroutine on the libevent loop. A call
 * that waits (t:send, sink:wait, proxy:wait_log, ...) registers a wait and
 * yields; the loop resumes the coroutine when the wait's condition holds or
 * its deadline passes. Nothing ever sleeps: every wait is "until X, at most
 * N seconds", and the deadline only decides how long a failure takes.
 *
 * A scenario goes RUNNING -> TEARDOWN -> done. Teardown always happens,
 * whichever way run() ended (returned, failed a t:require, raised, timed
 * out, or the runner got SIGINT/SIGTERM): every role object's cleanup runs,
 * child processes get SIGTERM and, after a grace period, SIGKILL, and the
 * scenario's temp directory is removed (unless --keep). Only then is the
 * result reported and the next scenario started.
 */
#include "runner.h"

#include <sys/stat.h>

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>

#include "buf.h"
#include "log.h"
#include "lua_sim.h"
#include "proc.h"
#include "sim.h"

#define RUNNER_TIMEOUT_DEFAULT	60.0	/* seconds per scenario */
#define RUNNER_GRACE		5.0	/* SIGTERM -> SIGKILL at teardown */
#define RUNNER_REAP_MAX		5.0	/* after SIGKILL: give up waiting */
#define RUNNER_IP_BLOCK		32	/* addresses per scenario block */
#define RUNNER_IP_BLOCKS	8	/* blocks per run, reused in turn */
#define RUNNER_HOOK_STEP	100000	/* Lua instructions between clock checks */
#define RUNNER_EXIT_FAIL	1

enum runner_format { FORMAT_TAP, FORMAT_CHECKLIST };

enum scen_state {
	SCEN_PENDING,
	SCEN_RUNNING,		/* the coroutine exists */
	SCEN_TEARDOWN,		/* cleanups ran; waiting for children */
	SCEN_DONE
};

enum scen_status { STATUS_PASS, STATUS_FAIL, STATUS_FINDING, STATUS_SKIP };

static const char *const status_names[] = { "PASS", "FAIL", "FINDING", "SKIP" };

struct strv {
	char	**v;
	size_t	  n;
};

struct scen {
	size_t		 number;	/* 1.. among the selected */
	char		*file;
	char		*name;
	char		*check;
	char		*arch;
	char		*tags;
	double		 timeout;
	int		 run_ref;
	enum scen_state	 state;
	struct strv	 failures;	/* "file:line: message" */
	struct strv	 findings;
	struct strv	 notes;
	struct strv	 attach;	/* title, text, title, text, ... */
	char		*error;		/* Lua error with traceback */
	char		*skip;
	double		 secs;
};

struct cleanup {
	runner_cleanup_fn	*fn;
	void			*arg;
	struct cleanup		*next;
};

static struct runner {
	lua_State		*L;
	struct event_base	*base;
	/* options */
	enum runner_format	 format;
	const char		*junit;
	char		       **filters;
	size_t			 nfilters;
	double			 timeout;	/* --timeout, 0 = per scenario */
	int			 keep;
	int			 verbose;
	int			 list;
	int			 filter_error;
	const char		*bindir;
	/* scenarios */
	const char		*loading;	/* file being loaded */
	struct scen	       **all;
	size_t			 nall;
	struct scen	       **sel;
	size_t			 nsel;
	size_t			 next;		/* index into sel */
	/* the one running */
	struct scen		*cur;
	unsigned long		 gen;
	struct runner_def	 def;
	lua_State		*co;
	int			 co_ref;
	int			 anchor_ref;
	struct cleanup		*cleanups;
	double			 t0;		/* monotonic start */
	double			 deadline;	/* monotonic */
	char			 dir[PATH_MAX];
	char			 tmpbase[PATH_MAX];
	unsigned		 ip_x, ip_y, ip_next;
	int			 busy;		/* hook found the deadline passed */
	/* the wait */
	int			 waiting;
	struct runner_wait	 wait;
	char			 wait_what[256];
	int			 wait_raise;
	/* events */
	struct event		*ev_check;	/* runner_poke */
	struct event		*ev_wait;	/* the wait's deadline */
	struct event		*ev_timeout;	/* the scenario's deadline */
	struct event		*ev_grace;	/* teardown: SIGTERM -> SIGKILL */
	struct event		*ev_next;	/* start the next scenario */
	struct event		*ev_sig[2];
	int			 killed;	/* teardown sent SIGKILL */
	int			 interrupted;	/* signal number */
	int			 abort_key;	/* address: the abort sentinel */
	/* totals */
	size_t			 npass, nfail, nfinding, nskip;
	double			 t_start;
} R;

static void	runner_resume(int nargs);
static void	runner_scen_end(void);
static void	runner_teardown_step(void);

/* ---- small things ---------------------------------------------------- */

static double
runner_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
runner_strdup(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL) {
		fprintf(stderr, "mta-sim run: out of memory\n");
		exit(RUNNER_EXIT_FAIL);
	}
	return d;
}

static void
strv_add(struct strv *sv, const char *s)
{
	char **v = realloc(sv->v, (sv->n + 1) * sizeof(*v));

	if (v == NULL) {
		fprintf(stderr, "mta-sim run: out of memory\n");
		exit(RUNNER_EXIT_FAIL);
	}
	sv->v = v;
	sv->v[sv->n++] = runner_strdup(s);
}

static void
strv_free(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

static void
runner_vadd(struct strv *sv, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	if (buf_vappendf(&b, fmt, ap) == -1) {
		buf_free(&b);
		return;
	}
	strv_add(sv, buf_cstr(&b));
	buf_free(&b);
}

static void
runner_timer(struct event *ev, double secs)
{
	struct timeval tv;

	if (secs < 0)
		secs = 0;
	/* The loop's cached time is stale after a long stretch of Lua. */
	event_base_update_cache_time(R.base);
	tv.tv_sec = (time_t)secs;
	tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev, &tv);
}

static void
runner_oom(void)
{
	fprintf(stderr, "mta-sim run: out of memory\n");
	exit(RUNNER_EXIT_FAIL);
}

/* ---- what bindings use ------------------------------------------------ */

struct event_base *
runner_base(void)
{
	return R.base;
}

lua_State *
runner_lua(void)
{
	return R.L;
}

unsigned long
runner_gen(void)
{
	return R.gen;
}

const struct runner_def *
runner_def(void)
{
	return &R.def;
}

void
runner_check_gen(lua_State *L, unsigned long gen, const char *what)
{
	if (R.cur == NULL || R.cur->state != SCEN_RUNNING || gen != R.gen)
		luaL_error(L, "%s belongs to a scenario that has ended", what);
}

const char *
runner_dir(void)
{
	return R.dir;
}

const char *
runner_bindir(void)
{
	return R.bindir;
}

int
runner_verbose(void)
{
	return R.verbose;
}

double
runner_now(void)
{
	return runner_mono() - R.t0;
}

int
runner_ip(char *dst, size_t dstsz)
{
	unsigned block;
	int r;

	if (R.ip_next >= RUNNER_IP_BLOCK - 2)
		return -1;
	block = (unsigned)((R.cur->number - 1) % RUNNER_IP_BLOCKS);
	r = snprintf(dst, dstsz, "127.%u.%u.%u", R.ip_x, R.ip_y,
	    block * RUNNER_IP_BLOCK + 1 + R.ip_next);
	if (r < 0 || (size_t)r >= dstsz)
		return -1;
	R.ip_next++;
	return 0;
}

void
runner_own(lua_State *L, int idx, runner_cleanup_fn *fn, void *arg)
{
	struct cleanup *c;

	idx = lua_absindex(L, idx);
	lua_rawgeti(L, LUA_REGISTRYINDEX, R.anchor_ref);
	lua_pushvalue(L, idx);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	lua_pop(L, 1);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		runner_oom();
	c->fn = fn;
	c->arg = arg;
	c->next = R.cleanups;
	R.cleanups = c;
}

void
runner_fail(const char *fmt, ...)
{
	va_list ap;

	if (R.cur == NULL)
		return;
	va_start(ap, fmt);
	runner_vadd(&R.cur->failures, fmt, ap);
	va_end(ap);
}

void
runner_finding(const char *fmt, ...)
{
	va_list ap;

	if (R.cur == NULL)
		return;
	va_start(ap, fmt);
	runner_vadd(&R.cur->findings, fmt, ap);
	va_end(ap);
}

void
runner_note(const char *fmt, ...)
{
	va_list ap;

	if (R.cur == NULL) {
		/* print() while the files load: not into the TAP stream. */
		va_start(ap, fmt);
		fprintf(stderr, "# ");
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
		va_end(ap);
		return;
	}
	va_start(ap, fmt);
	runner_vadd(&R.cur->notes, fmt, ap);
	va_end(ap);
	if (R.verbose)
		fprintf(stderr, "# %s: %s\n", R.cur->name,
		    R.cur->notes.v[R.cur->notes.n - 1]);
}

int
runner_failed(void)
{
	return R.cur != NULL && (R.cur->failures.n > 0 || R.cur->error != NULL);
}

void
runner_attach(const char *title, const char *text)
{
	if (R.cur == NULL)
		return;
	strv_add(&R.cur->attach, title);
	strv_add(&R.cur->attach, text);
}

void
runner_set_skip(const char *reason)
{
	if (R.cur != NULL && R.cur->skip == NULL)
		R.cur->skip = runner_strdup(reason);
}

void
runner_push_abort(lua_State *L)
{
	lua_pushlightuserdata(L, &R.abort_key);
}

int
runner_register(lua_State *L, const struct runner_def *d)
{
	struct scen *s, **all;

	for (size_t i = 0; i < R.nall; i++)
		if (strcmp(R.all[i]->name, d->name) == 0) {
			lua_pushfstring(L, "scenario \"%s\" is defined twice "
			    "(first in %s)", d->name, R.all[i]->file);
			return -1;
		}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (all = realloc(R.all, (R.nall + 1) * sizeof(*all))) == NULL)
		runner_oom();
	R.all = all;
	s->file = runner_strdup(R.loading);
	s->name = runner_strdup(d->name);
	s->check = runner_strdup(d->check != NULL && *d->check ? d->check :
	    d->name);
	s->arch = runner_strdup(d->arch);
	s->tags = runner_strdup(d->tags);
	s->timeout = d->timeout;
	s->run_ref = d->run_ref;
	R.all[R.nall++] = s;
	return 0;
}

/* ---- waits -------------------------------------------------------------- */

void
runner_check_wait(lua_State *L, const char *fname)
{
	if (R.cur == NULL || R.cur->state != SCEN_RUNNING || L != R.co ||
	    !lua_isyieldable(L))
		luaL_error(L, "%s waits, so it can only be called from a "
		    "scenario's run() (not at load time, not in a predicate)",
		    fname);
}

static void
runner_wait_clear(void)
{
	if (!R.waiting)
		return;
	R.waiting = 0;
	evtimer_del(R.ev_wait);
	if (R.wait.free_arg != NULL)
		R.wait.free_arg(R.wait.arg);
	memset(&R.wait, 0, sizeof(R.wait));
}

static int
runner_wait_k(lua_State *L, int status, lua_KContext ctx)
{
	if (R.wait_raise) {
		R.wait_raise = 0;
		return lua_error(L);
	}
	return lua_gettop(L) - (int)ctx;
}

int
runner_wait(lua_State *L, const struct runner_wait *w)
{
	runner_check_wait(L, "this function");
	if (R.waiting)
		return luaL_error(L, "already waiting");
	R.wait = *w;
	R.wait.what = NULL;
	snprintf(R.wait_what, sizeof(R.wait_what), "%s",
	    w->what != NULL ? w->what : "an event");
	R.waiting = 1;
	if (w->seconds > 0)
		runner_timer(R.ev_wait, w->seconds);
	return lua_yieldk(L, 0, (lua_KContext)lua_gettop(L), runner_wait_k);
}

void
runner_poke(void)
{
	if (R.ev_check != NULL)
		event_active(R.ev_check, EV_TIMEOUT, 0);
}

/* Ask the wait; resume the coroutine when it has its answer. */
static void
runner_wait_try(int expired)
{
	int n;

	if (!R.waiting || R.co == NULL)
		return;
	n = R.wait.ready(R.co, R.wait.arg, expired);
	if (n == RUNNER_NOT_YET) {
		if (!expired)
			return;
		lua_pushnil(R.co);
		lua_pushfstring(R.co, "timeout: %s", R.wait_what);
		n = 2;
	}
	if (n == RUNNER_RAISE) {
		R.wait_raise = 1;
		n = 1;
	}
	runner_wait_clear();
	runner_resume(n);
}

static void
runner_check_cb(evutil_socket_t fd, short what, void *arg)
{
	if (R.cur == NULL)
		return;
	if (R.cur->state == SCEN_RUNNING)
		runner_wait_try(0);
	else if (R.cur->state == SCEN_TEARDOWN)
		runner_teardown_step();
}

static void
runner_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	if (R.cur != NULL && R.cur->state == SCEN_RUNNING)
		runner_wait_try(1);
}

/* ---- running a scenario ---------------------------------------------- */

/* A Lua loop that never waits would never let the timer fire. */
static void
runner_hook(lua_State *L, lua_Debug *ar)
{
	if (R.busy || runner_mono() < R.deadline)
		return;
	R.busy = 1;
	luaL_error(L, "scenario timed out after %ds (busy in Lua, never "
	    "waiting)", (int)(R.deadline - R.t0 + 0.5));
}

static void
runner_resume(int nargs)
{
	lua_State *co = R.co;
	int st, nres;
	const char *msg;

	for (;;) {
		st = lua_resume(co, R.L, nargs, &nres);
		if (st == LUA_YIELD) {
			lua_pop(co, nres);
			if (!R.waiting) {
				runner_fail("run() yielded without waiting for "
				    "anything");
				runner_scen_end();
				return;
			}
			/* It may be true already. */
			nargs = R.wait.ready(co, R.wait.arg, 0);
			if (nargs == RUNNER_NOT_YET)
				return;
			if (nargs == RUNNER_RAISE) {
				R.wait_raise = 1;
				nargs = 1;
			}
			runner_wait_clear();
			continue;
		}
		if (st != LUA_OK) {
			if (lua_touserdata(co, -1) == &R.abort_key) {
				/* t:require or t:skip: already recorded */
			} else {
				msg = lua_tostring(co, -1);
				if (msg == NULL)
					msg = lua_pushfstring(co, "(error object "
					    "is a %s value)", luaL_typename(co, -1));
				luaL_traceback(R.L, co, msg, 0);
				free(R.cur->error);
				R.cur->error = runner_strdup(lua_tostring(R.L, -1));
				lua_pop(R.L, 1);
			}
		}
		runner_scen_end();
		return;
	}
}

static void
runner_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	if (R.cur == NULL || R.cur->state != SCEN_RUNNING)
		return;
	if (R.waiting)
		runner_fail("scenario timed out after %.0fs while waiting for %s",
		    R.deadline - R.t0, R.wait_what);
	else
		runner_fail("scenario timed out after %.0fs", R.deadline - R.t0);
	runner_scen_end();
}

static void
runner_slug(const char *name, char *dst, size_t dstsz)
{
	size_t i, j = 0;

	for (i = 0; name[i] != '\0' && j + 1 < dstsz && j < 40; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.')
			dst[j++] = c;
		else if (j > 0 && dst[j - 1] != '-')
			dst[j++] = '-';
	}
	dst[j] = '\0';
}

static void
runner_start(struct scen *s)
{
	char slug[64];
	double timeout;
	int r;

	R.cur = s;
	R.gen++;
	s->state = SCEN_RUNNING;
	R.ip_next = 0;
	R.busy = 0;
	R.killed = 0;
	R.def.name = s->name;
	R.def.check = s->check;
	R.def.arch = s->arch;
	R.def.tags = s->tags;
	R.def.timeout = s->timeout;
	R.def.run_ref = s->run_ref;
	R.t0 = runner_mono();
	timeout = R.timeout > 0 ? R.timeout :
	    s->timeout > 0 ? s->timeout : RUNNER_TIMEOUT_DEFAULT;
	R.deadline = R.t0 + timeout;

	runner_slug(s->name, slug, sizeof(slug));
	r = snprintf(R.dir, sizeof(R.dir), "%s/%03zu-%s", R.tmpbase,
	    s->number, slug);
	if (r < 0 || (size_t)r >= sizeof(R.dir) || mkdir(R.dir, 0700) == -1) {
		runner_fail("cannot create the scenario directory %s: %s",
		    R.dir, strerror(errno));
		R.dir[0] = '\0';
		s->state = SCEN_TEARDOWN;
		runner_teardown_step();
		return;
	}

	lua_newtable(R.L);
	R.anchor_ref = luaL_ref(R.L, LUA_REGISTRYINDEX);
	R.co = lua_newthread(R.L);
	R.co_ref = luaL_ref(R.L, LUA_REGISTRYINDEX);
	/* The main state too: t:wait_until conditions run there. */
	lua_sethook(R.co, runner_hook, LUA_MASKCOUNT, RUNNER_HOOK_STEP);
	lua_sethook(R.L, runner_hook, LUA_MASKCOUNT, RUNNER_HOOK_STEP);
	lua_rawgeti(R.co, LUA_REGISTRYINDEX, s->run_ref);
	lua_test_push(R.co);
	runner_timer(R.ev_timeout, timeout);
	runner_resume(1);
}

/* run() is over, one way or another: release everything. */
static void
runner_scen_end(void)
{
	struct cleanup *c;

	if (R.cur == NULL || R.cur->state != SCEN_RUNNING)
		return;
	runner_wait_clear();
	evtimer_del(R.ev_timeout);
	R.cur->state = SCEN_TEARDOWN;
	/*
	 * The coroutine is dropped, not closed: it may be suspended in the
	 * middle of a wait, and nothing on its stack needs closing. The
	 * collector takes it.
	 */
	luaL_unref(R.L, LUA_REGISTRYINDEX, R.co_ref);
	R.co = NULL;
	lua_sethook(R.L, NULL, 0, 0);
	while ((c = R.cleanups) != NULL) {
		R.cleanups = c->next;
		c->fn(c->arg);
		free(c);
	}
	if (proc_nrunning() > 0)
		runner_timer(R.ev_grace, RUNNER_GRACE);
	/* Not from here: we may be deep inside a callback. */
	runner_poke();
}

static int
runner_rm_cb(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	if (remove(path) == -1)
		fprintf(stderr, "mta-sim run: cannot remove %s: %s\n", path,
		    strerror(errno));
	return 0;
}

static void
runner_rmtree(const char *path)
{
	nftw(path, runner_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void runner_report(struct scen *);

static void
runner_teardown_step(void)
{
	struct scen *s = R.cur;

	if (proc_nrunning() > 0)
		return;
	evtimer_del(R.ev_grace);
	if (R.anchor_ref != LUA_NOREF) {
		luaL_unref(R.L, LUA_REGISTRYINDEX, R.anchor_ref);
		R.anchor_ref = LUA_NOREF;
	}
	lua_gc(R.L, LUA_GCCOLLECT);
	if (R.dir[0] != '\0') {
		if (R.keep)
			runner_note("kept %s", R.dir);
		else
			runner_rmtree(R.dir);
	}
	s->secs = runner_mono() - R.t0;
	s->state = SCEN_DONE;
	R.gen++;
	runner_report(s);
	R.cur = NULL;
	event_active(R.ev_next, EV_TIMEOUT, 0);
}

static void
runner_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	if (R.cur == NULL || R.cur->state != SCEN_TEARDOWN)
		return;
	/* Every child may be gone already (one detached and reaped). */
	if (proc_nrunning() == 0) {
		runner_teardown_step();
		return;
	}
	if (!R.killed) {
		R.killed = 1;
		runner_fail("a child process ignored SIGTERM for %.0fs; "
		    "killed", RUNNER_GRACE);
		proc_signal_all(SIGKILL);
		runner_timer(R.ev_grace, RUNNER_REAP_MAX);
		return;
	}
	/* Cannot happen short of a zombie we cannot reap; do not hang. */
	runner_fail("a child process could not be reaped");
	proc_kill_all();
	runner_teardown_step();
}

static void runner_finish(void);

static void
runner_next_cb(evutil_socket_t fd, short what, void *arg)
{
	if (R.interrupted || R.next >= R.nsel) {
		runner_finish();
		return;
	}
	runner_start(R.sel[R.next++]);
}

static const char *
runner_signame(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

static void
runner_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	if (R.interrupted) {
		/* Second time: no more patience. */
		proc_kill_all();
		if (R.dir[0] != '\0' && !R.keep)
			runner_rmtree(R.dir);
		if (!R.keep)
			runner_rmtree(R.tmpbase);
		fprintf(stdout, "Bail out! %s twice\n", runner_signame((int)sig));
		fflush(stdout);
		_exit(RUNNER_EXIT_FAIL);
	}
	R.interrupted = (int)sig;
	if (R.cur == NULL)
		return;
	if (R.cur->state == SCEN_RUNNING) {
		runner_fail("interrupted by %s", runner_signame((int)sig));
		runner_scen_end();
	} else if (R.cur->state == SCEN_TEARDOWN && !R.killed) {
		R.killed = 1;
		proc_signal_all(SIGKILL);
	}
}

/* ---- reports -------------------------------------------------------- */

static enum scen_status
runner_status(const struct scen *s)
{
	if (s->failures.n > 0 || s->error != NULL)
		return STATUS_FAIL;
	if (s->skip != NULL)
		return STATUS_SKIP;
	if (s->findings.n > 0)
		return STATUS_FINDING;
	return STATUS_PASS;
}

/* Text on one line: a line break must not start a new TAP line. */
static void
runner_oneline(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 ? ' ' : *s, fp);
}

/* One comment line per line of text. */
static void
runner_comment(FILE *fp, const char *prefix, const char *text)
{
	const char *p = text, *nl;

	do {
		nl = strchr(p, '\n');
		fprintf(fp, "# %s%.*s\n", prefix,
		    (int)(nl != NULL ? nl - p : (ptrdiff_t)strlen(p)), p);
		p = nl + 1;
	} while (nl != NULL && *p != '\0');
}

/* A YAML double-quoted scalar. */
static void
yaml_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", fp);
		else if (c == '\t')
			fputs("\\t", fp);
		else if (c < 0x20 || c == 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
	fputc('"', fp);
}

/* A YAML literal block, indented. */
static void
yaml_block(FILE *fp, const char *indent, const char *text)
{
	const char *p = text, *nl;

	fputs("|-\n", fp);
	for (;;) {
		nl = strchr(p, '\n');
		fprintf(fp, "%s", indent);
		for (const char *q = p; nl != NULL ? q < nl : *q != '\0'; q++) {
			unsigned char c = (unsigned char)*q;

			fputc(c < 0x20 && c != '\t' ? '?' : c, fp);
		}
		fputc('\n', fp);
		if (nl == NULL || nl[1] == '\0')
			break;
		p = nl + 1;
	}
}

static void
runner_report_tap(struct scen *s, enum scen_status st)
{
	FILE *fp = stdout;
	size_t i;

	for (i = 0; i < s->notes.n; i++)
		runner_comment(fp, "", s->notes.v[i]);
	for (i = 0; i < s->findings.n; i++)
		runner_comment(fp, "FINDING: ", s->findings.v[i]);
	if (st == STATUS_SKIP) {
		fprintf(fp, "ok %zu - %s # SKIP ", s->number, s->name);
		runner_oneline(fp, s->skip);
		fputc('\n', fp);
		return;
	}
	fprintf(fp, "%s %zu - %s # %.2fs\n", st == STATUS_FAIL ? "not ok" :
	    "ok", s->number, s->name, s->secs);
	if (st != STATUS_FAIL)
		return;
	fprintf(fp, "  ---\n  check: ");
	yaml_str(fp, s->check);
	if (*s->arch) {
		fprintf(fp, "\n  architecture: ");
		yaml_str(fp, s->arch);
	}
	fprintf(fp, "\n  file: ");
	yaml_str(fp, s->file);
	fputc('\n', fp);
	if (s->failures.n > 0) {
		fprintf(fp, "  failures:\n");
		for (i = 0; i < s->failures.n; i++) {
			fprintf(fp, "    - ");
			yaml_str(fp, s->failures.v[i]);
			fputc('\n', fp);
		}
	}
	if (s->error != NULL) {
		fprintf(fp, "  error: ");
		yaml_block(fp, "    ", s->error);
	}
	for (i = 0; i + 1 < s->attach.n; i += 2) {
		if (i == 0)
			fprintf(fp, "  diagnostics:\n");
		fprintf(fp, "    - title: ");
		yaml_str(fp, s->attach.v[i]);
		fprintf(fp, "\n      text: ");
		yaml_block(fp, "        ", s->attach.v[i + 1]);
	}
	fprintf(fp, "  ...\n");
}

static void
runner_report_checklist(struct scen *s, enum scen_status st)
{
	fprintf(stdout, "%-8s %-34.34s %-10.10s %7.2fs  %s\n", status_names[st],
	    s->check, *s->arch ? s->arch : "-", s->secs, s->name);
}

static void
runner_report(struct scen *s)
{
	enum scen_status st = runner_status(s);

	switch (st) {
	case STATUS_PASS:	R.npass++; break;
	case STATUS_FAIL:	R.nfail++; break;
	case STATUS_FINDING:	R.nfinding++; break;
	case STATUS_SKIP:	R.nskip++; break;
	}
	if (R.format == FORMAT_TAP)
		runner_report_tap(s, st);
	else
		runner_report_checklist(s, st);
	fflush(stdout);
}

/* "    label text", later lines of text under the first. */
static void
runner_indented(FILE *fp, const char *label, const char *text)
{
	const char *p = text, *nl;
	int first = 1;

	do {
		nl = strchr(p, '\n');
		fprintf(fp, "    %s%.*s\n", first ? label : "         ",
		    (int)(nl != NULL ? nl - p : (ptrdiff_t)strlen(p)), p);
		first = 0;
		p = nl + 1;
	} while (nl != NULL && *p != '\0');
}

static void
runner_checklist_details(void)
{
	size_t i, j;
	struct scen *s;
	int first = 1;

	for (i = 0; i < R.nsel; i++) {
		s = R.sel[i];
		if (s->state != SCEN_DONE)
			continue;
		if (s->failures.n == 0 && s->error == NULL &&
		    s->findings.n == 0 && s->skip == NULL)
			continue;
		if (first)
			fprintf(stdout, "\n");
		first = 0;
		fprintf(stdout, "%s  %s (%s)\n", status_names[runner_status(s)],
		    s->name, s->file);
		for (j = 0; j < s->failures.n; j++)
			runner_indented(stdout, "failed:  ", s->failures.v[j]);
		if (s->error != NULL)
			runner_indented(stdout, "error:   ", s->error);
		for (j = 0; j < s->findings.n; j++)
			runner_indented(stdout, "finding: ", s->findings.v[j]);
		if (s->skip != NULL)
			runner_indented(stdout, "skipped: ", s->skip);
	}
}

/* Text for XML: escaped, control bytes (not allowed in XML 1.0) as '?'. */
static void
xml_str(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '&':	fputs("&amp;", fp); break;
		case '<':	fputs("&lt;", fp); break;
		case '>':	fputs("&gt;", fp); break;
		case '"':	fputs("&quot;", fp); break;
		case '\'':	fputs("&apos;", fp); break;
		default:
			if (c < 0x20 && c != '\n' && c != '\t' && c != '\r')
				fputc('?', fp);
			else
				fputc(c, fp);
		}
	}
}

static void
runner_junit_case(FILE *fp, const struct scen *s)
{
	enum scen_status st = runner_status(s);
	size_t i;

	fprintf(fp, "    <testcase classname=\"");
	xml_str(fp, s->file);
	fprintf(fp, "\" name=\"");
	xml_str(fp, s->name);
	fprintf(fp, "\" time=\"%.3f\">\n", s->secs);
	if (s->state != SCEN_DONE) {
		fprintf(fp, "      <skipped message=\"not run: interrupted\"/>\n");
	} else if (st == STATUS_SKIP) {
		fprintf(fp, "      <skipped message=\"");
		xml_str(fp, s->skip);
		fprintf(fp, "\"/>\n");
	}
	for (i = 0; i < s->failures.n; i++) {
		fprintf(fp, "      <failure type=\"assertion\" message=\"");
		xml_str(fp, s->failures.v[i]);
		fprintf(fp, "\">");
		xml_str(fp, s->failures.v[i]);
		fprintf(fp, "</failure>\n");
	}
	if (s->error != NULL) {
		const char *nl = strchr(s->error, '\n');
		char *first = strndup(s->error, nl != NULL ?
		    (size_t)(nl - s->error) : strlen(s->error));

		fprintf(fp, "      <error type=\"lua\" message=\"");
		xml_str(fp, first != NULL ? first : "error");
		fprintf(fp, "\">");
		xml_str(fp, s->error);
		fprintf(fp, "</error>\n");
		free(first);
	}
	if (s->notes.n + s->findings.n + s->attach.n > 0) {
		fprintf(fp, "      <system-out>");
		for (i = 0; i < s->findings.n; i++) {
			fprintf(fp, "FINDING: ");
			xml_str(fp, s->findings.v[i]);
			fputc('\n', fp);
		}
		for (i = 0; i < s->notes.n; i++) {
			xml_str(fp, s->notes.v[i]);
			fputc('\n', fp);
		}
		for (i = 0; i + 1 < s->attach.n; i += 2) {
			fprintf(fp, "== ");
			xml_str(fp, s->attach.v[i]);
			fputc('\n', fp);
			xml_str(fp, s->attach.v[i + 1]);
			fputc('\n', fp);
		}
		fprintf(fp, "</system-out>\n");
	}
	fprintf(fp, "    </testcase>\n");
}

static int
runner_junit_write(const char *path)
{
	char tmp[PATH_MAX];
	FILE *fp;
	size_t i, j, tests, failures, errors, skipped;
	double secs;
	int r;

	r = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (r < 0 || (size_t)r >= sizeof(tmp) || (fp = fopen(tmp, "w")) == NULL) {
		fprintf(stderr, "mta-sim run: cannot write %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(fp, "<testsuites name=\"mta-sim run\" tests=\"%zu\" "
	    "failures=\"%zu\" time=\"%.3f\">\n", R.nsel, R.nfail,
	    runner_mono() - R.t_start);
	/* One testsuite per file, in the order the files were given. */
	for (i = 0; i < R.nsel; i++) {
		const char *file = R.sel[i]->file;
		int seen = 0;

		for (j = 0; j < i; j++)
			if (strcmp(R.sel[j]->file, file) == 0)
				seen = 1;
		if (seen)
			continue;
		tests = failures = errors = skipped = 0;
		secs = 0;
		for (j = i; j < R.nsel; j++) {
			const struct scen *s = R.sel[j];

			if (strcmp(s->file, file) != 0)
				continue;
			tests++;
			secs += s->secs;
			if (s->state != SCEN_DONE ||
			    runner_status(s) == STATUS_SKIP)
				skipped++;
			if (s->failures.n > 0)
				failures++;
			else if (s->error != NULL)
				errors++;
		}
		fprintf(fp, "  <testsuite name=\"");
		xml_str(fp, file);
		fprintf(fp, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" "
		    "skipped=\"%zu\" time=\"%.3f\">\n", tests, failures, errors,
		    skipped, secs);
		for (j = i; j < R.nsel; j++)
			if (strcmp(R.sel[j]->file, file) == 0)
				runner_junit_case(fp, R.sel[j]);
		fprintf(fp, "  </testsuite>\n");
	}
	fprintf(fp, "</testsuites>\n");
	if (fflush(fp) == EOF || ferror(fp)) {
		fclose(fp);
		fprintf(stderr, "mta-sim run: cannot write %s\n", tmp);
		return -1;
	}
	fclose(fp);
	if (rename(tmp, path) == -1) {
		fprintf(stderr, "mta-sim run: cannot rename %s: %s\n", tmp,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
runner_finish(void)
{
	if (R.interrupted) {
		if (R.format == FORMAT_TAP)
			fprintf(stdout, "Bail out! interrupted by %s\n",
			    runner_signame(R.interrupted));
		else
			fprintf(stdout, "interrupted by %s\n",
			    runner_signame(R.interrupted));
	}
	if (R.format == FORMAT_CHECKLIST) {
		runner_checklist_details();
		fprintf(stdout, "\n%zu checks: %zu passed, %zu failed, "
		    "%zu findings, %zu skipped (%.1fs)\n", R.nsel, R.npass,
		    R.nfail, R.nfinding, R.nskip, runner_mono() - R.t_start);
	} else
		fprintf(stdout, "# %zu passed, %zu failed, %zu findings, "
		    "%zu skipped\n", R.npass, R.nfail, R.nfinding, R.nskip);
	fflush(stdout);
	event_base_loopbreak(R.base);
}

/* ---- command line ----------------------------------------------------- */

void
runner_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-sim run [--format tap|checklist] [--junit FILE]\n"
	    "                   [--filter PATTERN]... [--timeout SECONDS]\n"
	    "                   [--keep] [--verbose] [--list] FILE.lua...\n"
	    "  Run the Lua scenarios in FILE.lua (see docs/scenarios.md).\n"
	    "  --format     tap (default): TAP version 13 on stdout;\n"
	    "               checklist: one line per guide check\n"
	    "  --junit      also write JUnit XML to FILE\n"
	    "  --filter     only scenarios whose name contains PATTERN or\n"
	    "               matches it as a Lua pattern (repeatable: any)\n"
	    "  --timeout    per scenario, overriding each scenario's own\n"
	    "  --keep       keep each scenario's temp directory\n"
	    "  --verbose    echo notes and child processes' logs to stderr\n"
	    "  --list       print the selected scenarios and exit\n"
	    "  Exit: 0 all passed (findings allowed), 1 a failure, 2 usage or\n"
	    "  load error. $MP_BINDIR (default bin) holds mailprevent.\n");
}

/* Substring, or failing that a Lua pattern (checked beforehand). */
static int
runner_filter_match(const char *name)
{
	size_t i;
	int m;

	if (R.nfilters == 0)
		return 1;
	for (i = 0; i < R.nfilters; i++) {
		if (strstr(name, R.filters[i]) != NULL)
			return 1;
		lua_getglobal(R.L, "string");
		lua_getfield(R.L, -1, "find");
		lua_pushstring(R.L, name);
		lua_pushstring(R.L, R.filters[i]);
		if (lua_pcall(R.L, 2, 1, 0) != LUA_OK) {
			/* Lua checks a pattern only as far as it matches. */
			if (!R.filter_error)
				fprintf(stderr, "mta-sim run: --filter %s: %s\n",
				    R.filters[i], lua_tostring(R.L, -1));
			R.filter_error = 1;
			m = 0;
		} else
			m = !lua_isnil(R.L, -1);
		lua_pop(R.L, 2);
		if (m)
			return 1;
	}
	return 0;
}

static int
runner_filter_valid(const char *pat)
{
	int ok;

	lua_getglobal(R.L, "string");
	lua_getfield(R.L, -1, "find");
	lua_pushliteral(R.L, "");
	lua_pushstring(R.L, pat);
	ok = lua_pcall(R.L, 2, 0, 0) == LUA_OK;
	if (!ok) {
		fprintf(stderr, "mta-sim run: --filter %s: %s\n", pat,
		    lua_tostring(R.L, -1));
		lua_pop(R.L, 1);
	}
	lua_pop(R.L, 1);
	return ok;
}

static int
runner_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format",	required_argument,	NULL, 'f' },
		{ "junit",	required_argument,	NULL, 'j' },
		{ "filter",	required_argument,	NULL, 'F' },
		{ "timeout",	required_argument,	NULL, 't' },
		{ "keep",	no_argument,		NULL, 'k' },
		{ "verbose",	no_argument,		NULL, 'v' },
		{ "list",	no_argument,		NULL, 'l' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	char **f;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:j:F:t:kvlh", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "tap") == 0)
				R.format = FORMAT_TAP;
			else if (strcmp(optarg, "checklist") == 0)
				R.format = FORMAT_CHECKLIST;
			else {
				fprintf(stderr, "mta-sim run: --format: tap or "
				    "checklist, not '%s'\n", optarg);
				return -1;
			}
			break;
		case 'j':
			R.junit = optarg;
			break;
		case 'F':
			if ((f = realloc(R.filters, (R.nfilters + 1) *
			    sizeof(*f))) == NULL)
				runner_oom();
			R.filters = f;
			R.filters[R.nfilters++] = optarg;
			break;
		case 't':
			if (sim_parse_seconds(optarg, &R.timeout, 0) == -1) {
				fprintf(stderr, "mta-sim run: --timeout: not a "
				    "number of seconds: '%s'\n", optarg);
				return -1;
			}
			break;
		case 'k':
			R.keep = 1;
			break;
		case 'v':
			R.verbose = 1;
			break;
		case 'l':
			R.list = 1;
			break;
		case 'h':
			runner_usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "mta-sim run: no scenario file given\n");
		return -1;
	}
	return 0;
}

static int
runner_init_loop(void)
{
	const char *tmp = getenv("TMPDIR");
	int r;

	if ((R.base = event_base_new()) == NULL)
		return -1;
	R.ev_check = event_new(R.base, -1, 0, runner_check_cb, NULL);
	R.ev_wait = evtimer_new(R.base, runner_wait_cb, NULL);
	R.ev_timeout = evtimer_new(R.base, runner_timeout_cb, NULL);
	R.ev_grace = evtimer_new(R.base, runner_grace_cb, NULL);
	R.ev_next = event_new(R.base, -1, 0, runner_next_cb, NULL);
	R.ev_sig[0] = evsignal_new(R.base, SIGINT, runner_signal_cb, NULL);
	R.ev_sig[1] = evsignal_new(R.base, SIGTERM, runner_signal_cb, NULL);
	if (R.ev_check == NULL || R.ev_wait == NULL || R.ev_timeout == NULL ||
	    R.ev_grace == NULL || R.ev_next == NULL || R.ev_sig[0] == NULL ||
	    R.ev_sig[1] == NULL || event_add(R.ev_sig[0], NULL) == -1 ||
	    event_add(R.ev_sig[1], NULL) == -1)
		return -1;
	r = snprintf(R.tmpbase, sizeof(R.tmpbase), "%s/mta-sim-run.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (r < 0 || (size_t)r >= sizeof(R.tmpbase) || mkdtemp(R.tmpbase) == NULL) {
		fprintf(stderr, "mta-sim run: cannot create a temp directory "
		    "in %s: %s\n", tmp != NULL ? tmp : "/tmp", strerror(errno));
		R.tmpbase[0] = '\0';
		return -1;
	}
	return 0;
}

static void
runner_free_all(void)
{
	size_t i;

	for (i = 0; i < R.nall; i++) {
		struct scen *s = R.all[i];

		free(s->file);
		free(s->name);
		free(s->check);
		free(s->arch);
		free(s->tags);
		strv_free(&s->failures);
		strv_free(&s->findings);
		strv_free(&s->notes);
		strv_free(&s->attach);
		free(s->error);
		free(s->skip);
		free(s);
	}
	free(R.all);
	free(R.sel);
	free(R.filters);
	if (R.L != NULL)
		lua_close(R.L);
	proc_kill_all();
	if (R.base != NULL) {
		struct event *evs[] = { R.ev_check, R.ev_wait, R.ev_timeout,
		    R.ev_grace, R.ev_next, R.ev_sig[0], R.ev_sig[1] };

		for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
			if (evs[i] != NULL)
				event_free(evs[i]);
		event_base_free(R.base);
	}
	if (R.tmpbase[0] != '\0' && !R.keep)
		runner_rmtree(R.tmpbase);
}

int
runner_main(int argc, char **argv)
{
	char err[1024];
	const char *bindir = getenv("MP_BINDIR");
	unsigned long pid = (unsigned long)getpid();
	int i, status;

	memset(&R, 0, sizeof(R));
	R.anchor_ref = R.co_ref = LUA_NOREF;
	R.bindir = bindir != NULL && *bindir != '\0' ? bindir : "bin";
	if (runner_options(argc, argv) == -1) {
		runner_usage(stderr);
		return SIM_EXIT_USAGE;
	}
	/* The roles log to stderr; only problems, unless asked. */
	log_set_level(R.verbose ? LOG_INFO : LOG_WARN);
	if ((R.L = lua_sim_open()) == NULL)
		runner_oom();
	for (size_t k = 0; k < R.nfilters; k++)
		if (!runner_filter_valid(R.filters[k])) {
			runner_free_all();
			return SIM_EXIT_USAGE;
		}
	for (i = optind; i < argc; i++) {
		R.loading = argv[i];
		if (lua_sim_load(R.L, argv[i], err, sizeof(err)) == -1) {
			fprintf(stderr, "mta-sim run: %s\n", err);
			runner_free_all();
			return SIM_EXIT_USAGE;
		}
	}
	R.loading = NULL;
	if ((R.sel = calloc(R.nall + 1, sizeof(*R.sel))) == NULL)
		runner_oom();
	for (size_t k = 0; k < R.nall; k++)
		if (runner_filter_match(R.all[k]->name)) {
			R.sel[R.nsel] = R.all[k];
			R.sel[R.nsel]->number = R.nsel + 1;
			R.nsel++;
		}
	if (R.nsel == 0 || R.filter_error) {
		if (R.nall == 0)
			fprintf(stderr, "mta-sim run: no scenario in the files "
			    "given\n");
		else if (R.nsel == 0) {
			fprintf(stderr, "mta-sim run: no scenario matches");
			for (size_t k = 0; k < R.nfilters; k++)
				fprintf(stderr, " --filter %s", R.filters[k]);
			fprintf(stderr, "\n");
		}
		runner_free_all();
		return SIM_EXIT_USAGE;
	}
	if (R.list) {
		for (size_t k = 0; k < R.nsel; k++)
			fprintf(stdout, "%s\t%s\t%s\t%s\n", R.sel[k]->name,
			    R.sel[k]->check, *R.sel[k]->arch ? R.sel[k]->arch :
			    "-", R.sel[k]->file);
		runner_free_all();
		return 0;
	}
	if (runner_init_loop() == -1) {
		fprintf(stderr, "mta-sim run: cannot set up the event loop\n");
		runner_free_all();
		return RUNNER_EXIT_FAIL;
	}
	/* 127.X.Y.0/24 for this run, from the pid: parallel runs differ. */
	R.ip_x = 1 + (unsigned)((pid >> 8) % 254);
	R.ip_y = (unsigned)(pid & 0xff);
	R.t_start = runner_mono();

	if (R.format == FORMAT_TAP)
		fprintf(stdout, "TAP version 13\n1..%zu\n", R.nsel);
	else
		fprintf(stdout, "%-8s %-34s %-10s %8s  %s\n", "STATUS",
		    "CHECK", "ARCH", "TIME", "SCENARIO");
	fflush(stdout);
	event_active(R.ev_next, EV_TIMEOUT, 0);
	event_base_dispatch(R.base);

	if (R.junit != NULL && runner_junit_write(R.junit) == -1)
		R.nfail++;
	status = R.nfail > 0 || R.interrupted ? RUNNER_EXIT_FAIL : 0;
	runner_free_all();
	return status;
}
