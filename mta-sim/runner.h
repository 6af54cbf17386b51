/*
 * runner: `mta-sim run FILE.lua...`, the Lua scenario runner.
 *
 * runner.c owns the command line, the list of scenarios, the event loop,
 * the per-scenario timeout, teardown and the reports (TAP, checklist,
 * JUnit). The Lua classes live in lua_*.c, one file per class; this header
 * is what they need from the runner:
 *
 * - the running scenario: its loop, temp directory, addresses, results;
 * - waits: a binding that has to wait for something (a reply, a message,
 *   a log line) suspends the scenario's coroutine with runner_wait() and
 *   says, each time it is asked, whether the thing has happened yet;
 * - cleanups: what a binding created is released at teardown, whatever
 *   way the scenario ended.
 *
 * Only one scenario runs at a time, so "the scenario" is a singleton.
 */
#ifndef MTA_SIM_RUNNER_H
#define MTA_SIM_RUNNER_H

#include <stdio.h>

#include <lua.h>

struct event_base;

int	runner_main(int argc, char **argv);
void	runner_usage(FILE *);

/*
 * Called by scenario{} (lua_sim.c) with the definition table at idx,
 * already checked. Returns 0, or -1 with a message pushed.
 */
struct runner_def {
	const char	*name;
	const char	*check;		/* guide check; defaults to name */
	const char	*arch;		/* "" if none */
	const char	*tags;		/* comma-separated, "" if none */
	double		 timeout;	/* 0 = default */
	int		 run_ref;	/* registry reference to run() */
};
int	runner_register(lua_State *, const struct runner_def *);

/*
 * Waits. ready() is called on the scenario's coroutine whenever something
 * may have changed (runner_poke) and once more when the deadline passes
 * (expired = 1). It either pushes the results of the waiting call and
 * returns how many, returns RUNNER_NOT_YET (only when not expired), or
 * pushes one error value and returns RUNNER_RAISE to make the waiting
 * call raise it. The call that yields must `return runner_wait(...)`.
 */
#define RUNNER_NOT_YET	(-1)
#define RUNNER_RAISE	(-2)
typedef int runner_ready_fn(lua_State *co, void *arg, int expired);

struct runner_wait {
	runner_ready_fn	*ready;
	void		*arg;
	void		(*free_arg)(void *);	/* may be NULL */
	double		 seconds;		/* <= 0: until the scenario times out */
	const char	*what;			/* "sink downstream to hold 2 messages" */
};
int	runner_wait(lua_State *, const struct runner_wait *);
/* Something happened (a message, a log line, an exit): re-check the wait. */
void	runner_poke(void);
/* Raise "NAME: only inside a scenario's run()" unless L may wait. */
void	runner_check_wait(lua_State *, const char *fname);

/*
 * The running scenario. Every object a binding creates remembers the
 * scenario's generation; runner_check_gen() raises if that scenario has
 * ended (an object kept in a global and used by a later scenario).
 */
struct event_base *runner_base(void);
unsigned long	 runner_gen(void);
void		 runner_check_gen(lua_State *, unsigned long gen, const char *what);
const char	*runner_dir(void);		/* the scenario's temp directory */
const char	*runner_bindir(void);		/* $MP_BINDIR or "bin" */
int		 runner_verbose(void);
double		 runner_now(void);		/* seconds since the scenario started */
/* The next loopback address of the scenario's block; -1 when used up. */
int		 runner_ip(char *dst, size_t dstsz);

/*
 * The value at idx (a role object) belongs to the scenario: it is kept
 * alive until teardown, where cleanup(arg) releases what it holds. Cleanups
 * run last registered first.
 */
typedef void runner_cleanup_fn(void *arg);
void		 runner_own(lua_State *, int idx, runner_cleanup_fn *, void *arg);
/* The main Lua state (for calls made while the scenario is suspended). */
lua_State	*runner_lua(void);
/* The running scenario's definition. */
const struct runner_def *runner_def(void);

/*
 * Results. Each takes a finished message; fail and finding are prefixed
 * with where (chunk:line:) by the caller if it wants that.
 */
void	runner_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	runner_finding(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	runner_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Has the running scenario failed so far? */
int	runner_failed(void);
/* A diagnostic block shown with a failure (e.g. a proxy's last log lines). */
void	runner_attach(const char *title, const char *text);
/* Abort the scenario: skipped (reason) rather than failed. */
void	runner_set_skip(const char *reason);

/* The sentinel error value that t:require()/t:skip() raise to abort run(). */
void	runner_push_abort(lua_State *);

#endif
