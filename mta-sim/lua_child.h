/*
 * lua_child: what the classes that run a real program as the runner's
 * child (t:proxy, t:postfix, t:haproxy) share: the child's state, its log
 * (kept in memory, copied to a file, shown with a failure), the waits for
 * a log line or an exit, stop and teardown.
 *
 * Each class embeds a struct lua_child as the FIRST member of its
 * userdata, so the shared methods (lua_child_methods) can find it from the
 * object, and a class's ready function can go from the wait's child back
 * to its own struct.
 */
#ifndef MTA_SIM_LUA_CHILD_H
#define MTA_SIM_LUA_CHILD_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>

#include "proc.h"
#include "runner.h"

enum lua_child_state {
	CHILD_STOPPED,
	CHILD_CHECKING,		/* a pre-start check runs (postfix check) */
	CHILD_STARTING,		/* started, not ready yet */
	CHILD_RUNNING,
	CHILD_STOPPING,		/* we sent a signal and expect it to exit */
	CHILD_FAILED		/* it did not start (the class says why) */
};

struct lua_child {
	unsigned long		 gen;
	const char		*kind;		/* "proxy": messages, method names */
	const char		*handle;	/* "this proxy": runner_check_gen */
	enum lua_child_state	 state;
	struct proc		*proc;
	int			 teardown;
	int			 exited;	/* since the last start */
	int			 status;
	char			 name[64];
	char			 logpath[PATH_MAX];
	FILE			*log;
	int			 flush;		/* fflush the copy every line */
	size_t			 lines_max;
	size_t			 tail;		/* lines attached to a failure */
	char		       **lines;
	size_t			 nlines, cap;
	size_t			 cursor;	/* wait_log looks from here */
	size_t			 start_line;	/* first line of this start */
};

/* A wait of a class: ready functions get it as their arg. */
struct lua_child_wait {
	struct lua_child	*c;
	int			 until;		/* the class's own enum */
	int			 obj_ref;	/* to return the object */
	size_t			 extra;		/* the class's own */
};

extern const char *const lua_child_states[];

/* kind and handle must be static strings. */
void	 lua_child_init(struct lua_child *, const char *kind,
	    const char *handle, const char *name, size_t lines_max,
	    size_t tail);
void	 lua_child_open_log(struct lua_child *);
struct lua_child *lua_child_check(lua_State *, int idx, const char *mt);
/* "exit status 1", "killed by Killed" */
void	 lua_child_strstatus(int status, char *dst, size_t dstsz);

/* Keep a line (file, memory, -v echo); the kept copy, or NULL. */
const char *lua_child_add_line(struct lua_child *, const char *line,
	    size_t len);
/* The last n lines from line `from` on, as one text (free it). */
char	*lua_child_tail(const struct lua_child *, size_t n, size_t from);
void	 lua_child_attach_tail(const struct lua_child *);

/* Start argv: state STARTING, or -1 with state STOPPED and err set. */
int	 lua_child_spawn(struct lua_child *, char *const argv[],
	    proc_line_cb *, proc_exit_cb *, void *arg, char *err,
	    size_t errlen);
/* From the exit callback: note the exit; how says it in words. */
void	 lua_child_exited(struct lua_child *, int status, char *how,
	    size_t howsz);
/* The end of an exit callback: STOPPED, log flushed, wait re-checked. */
void	 lua_child_stopped(struct lua_child *);

/*
 * Wait on the object at index 1 of L: "KIND NAME to VERB". ready gets a
 * struct lua_child_wait.
 */
int	 lua_child_wait(lua_State *, struct lua_child *, runner_ready_fn *,
	    int until, size_t extra, double seconds, const char *verb);
/* Push the waited-on object onto L (the main state). */
void	 lua_child_push_object(lua_State *, const struct lua_child_wait *);
/* Until it exited: its exit code (128 + signal), or nil and a timeout. */
int	 lua_child_ready_exited(lua_State *co, struct lua_child *,
	    int expired);
/* Send sig to a running child (state STOPPING) and wait for its exit. */
int	 lua_child_stop(lua_State *, struct lua_child *, int sig,
	    double seconds, runner_ready_fn *, int until, const char *fname);

/* Teardown: SIGTERM, and the log's tail if the scenario failed. */
void	 lua_child_cleanup(struct lua_child *);
/* __gc: let proc.c reap a child never torn down (sent sig); free. */
void	 lua_child_free(struct lua_child *, int sig);

/*
 * __index: methods, then pid (nil unless > 0) and state, then the user
 * value's fields (never "cfg"); a name in unset (NULL-terminated, may be
 * NULL) is nil, anything else raises.
 */
int	 lua_child_index(lua_State *, const struct lua_child *, long pid,
	    const char *const unset[]);
/*
 * The class's metatable mt (once): methods, plus the shared ones named
 * in shared (as lua_child_methods), __index, __gc and __tostring.
 */
void	 lua_child_metatable(lua_State *, const char *mt, const luaL_Reg *,
	    const char *const shared[], lua_CFunction index, lua_CFunction gc,
	    lua_CFunction tostring);

/*
 * Add the shared methods named (log, log_count, mark, wait_log, running)
 * to the table at the top of the stack, for the class mt.
 */
void	 lua_child_methods(lua_State *, const char *mt,
	    const char *const names[]);

#endif
