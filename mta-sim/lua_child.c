/*
 * lua_child: the part of t:proxy, t:postfix and t:haproxy that is about
 * a child process rather than about what the child is. See lua_child.h.
 */
#include <sys/wait.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_child.h"
#include "lua_sim.h"

const char *const lua_child_states[] = {
	"stopped", "checking", "starting", "running", "stopping", "failed"
};

void
lua_child_init(struct lua_child *c, const char *kind, const char *handle,
    const char *name, size_t lines_max, size_t tail)
{
	c->gen = runner_gen();
	c->kind = kind;
	c->handle = handle;
	c->state = CHILD_STOPPED;
	c->lines_max = lines_max;
	c->tail = tail;
	snprintf(c->name, sizeof(c->name), "%s", name);
}

void
lua_child_open_log(struct lua_child *c)
{
	if (c->logpath[0] != '\0')
		c->log = fopen(c->logpath, "ae");
}

struct lua_child *
lua_child_check(lua_State *L, int idx, const char *mt)
{
	struct lua_child *c = luaL_checkudata(L, idx, mt);

	runner_check_gen(L, c->gen, c->handle);
	return c;
}

void
lua_child_strstatus(int status, char *dst, size_t dstsz)
{
	if (WIFEXITED(status))
		snprintf(dst, dstsz, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(dst, dstsz, "killed by %s", strsignal(WTERMSIG(status)));
	else
		snprintf(dst, dstsz, "status 0x%x", (unsigned)status);
}

/* ---- the log ------------------------------------------------------------- */

const char *
lua_child_add_line(struct lua_child *c, const char *line, size_t len)
{
	char **v, *copy;

	if (c->log != NULL) {
		fwrite(line, 1, len, c->log);
		fputc('\n', c->log);
		if (c->flush)
			fflush(c->log);
	}
	if (runner_verbose())
		fprintf(stderr, "[%s] %.*s\n", c->name, (int)len, line);
	if (c->nlines >= c->lines_max)
		return NULL;
	if (c->nlines == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;

		if ((v = realloc(c->lines, cap * sizeof(*v))) == NULL)
			return NULL;
		c->lines = v;
		c->cap = cap;
	}
	if ((copy = strndup(line, len)) == NULL)
		return NULL;
	c->lines[c->nlines++] = copy;
	return copy;
}

char *
lua_child_tail(const struct lua_child *c, size_t n, size_t from)
{
	struct buf b = BUF_INIT;
	size_t i = c->nlines > n ? c->nlines - n : 0;

	if (i < from)
		i = from;
	for (; i < c->nlines; i++)
		buf_appendf(&b, "%s\n", c->lines[i]);
	if (b.len == 0)
		buf_appends(&b, "(no output)");
	return buf_cstr(&b);
}

void
lua_child_attach_tail(const struct lua_child *c)
{
	char title[128], *tail = lua_child_tail(c, c->tail, 0);

	snprintf(title, sizeof(title), "%s %s: last log lines", c->kind,
	    c->name);
	runner_attach(title, tail);
	free(tail);
}

/* ---- the process ---------------------------------------------------------- */

int
lua_child_spawn(struct lua_child *c, char *const argv[], proc_line_cb *line_cb,
    proc_exit_cb *exit_cb, void *arg, char *err, size_t errlen)
{
	c->exited = 0;
	c->start_line = c->nlines;
	c->state = CHILD_STARTING;
	c->proc = proc_start(runner_base(), argv, line_cb, exit_cb, arg, err,
	    errlen);
	if (c->proc == NULL) {
		c->state = CHILD_STOPPED;
		return -1;
	}
	return 0;
}

void
lua_child_exited(struct lua_child *c, int status, char *how, size_t howsz)
{
	c->proc = NULL;
	c->exited = 1;
	c->status = status;
	lua_child_strstatus(status, how, howsz);
}

void
lua_child_stopped(struct lua_child *c)
{
	c->state = CHILD_STOPPED;
	if (c->log != NULL)
		fflush(c->log);
	runner_poke();
}

void
lua_child_cleanup(struct lua_child *c)
{
	c->teardown = 1;
	if (c->proc != NULL) {
		c->state = CHILD_STOPPING;
		proc_signal(c->proc, SIGTERM);
	}
	if (runner_failed() && c->nlines > 0)
		lua_child_attach_tail(c);
}

void
lua_child_free(struct lua_child *c, int sig)
{
	size_t i;

	if (c->proc != NULL) {
		/* Not torn down (the runner is exiting): let proc.c reap it. */
		proc_detach(c->proc);
		proc_signal(c->proc, sig);
		c->proc = NULL;
	}
	for (i = 0; i < c->nlines; i++)
		free(c->lines[i]);
	free(c->lines);
	c->lines = NULL;
	c->nlines = c->cap = 0;
	if (c->log != NULL) {
		fclose(c->log);
		c->log = NULL;
	}
}

/* ---- waits ---------------------------------------------------------------- */

static void
lua_child_wait_free(void *arg)
{
	struct lua_child_wait *w = arg;

	luaL_unref(runner_lua(), LUA_REGISTRYINDEX, w->obj_ref);
	free(w);
}

int
lua_child_wait(lua_State *L, struct lua_child *c, runner_ready_fn *ready,
    int until, size_t extra, double seconds, const char *verb)
{
	struct lua_child_wait *cw;
	struct runner_wait w;
	char what[160];

	if ((cw = calloc(1, sizeof(*cw))) == NULL)
		return luaL_error(L, "out of memory");
	cw->c = c;
	cw->until = until;
	cw->extra = extra;
	lua_pushvalue(L, 1);
	cw->obj_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	memset(&w, 0, sizeof(w));
	w.ready = ready;
	w.arg = cw;
	w.free_arg = lua_child_wait_free;
	w.seconds = seconds;
	snprintf(what, sizeof(what), "%s %s to %s", c->kind, c->name, verb);
	w.what = what;
	lua_settop(L, 1);
	return runner_wait(L, &w);
}

void
lua_child_push_object(lua_State *L, const struct lua_child_wait *w)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, w->obj_ref);
}

int
lua_child_ready_exited(lua_State *co, struct lua_child *c, int expired)
{
	if (c->exited) {
		lua_pushinteger(co, WIFEXITED(c->status) ?
		    WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status));
		return 1;
	}
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pushnil(co);
	lua_pushfstring(co, "timeout: %s %s has not exited", c->kind, c->name);
	return 2;
}

int
lua_child_stop(lua_State *L, struct lua_child *c, int sig, double seconds,
    runner_ready_fn *ready, int until, const char *fname)
{
	runner_check_wait(L, fname);
	if (c->proc == NULL)
		return luaL_error(L, "%s %s is not running", c->kind, c->name);
	c->state = CHILD_STOPPING;
	proc_signal(c->proc, sig);
	return lua_child_wait(L, c, ready, until, 0, seconds, "exit");
}

/* ---- shared methods -------------------------------------------------------- */

static struct lua_child *
lua_child_self(lua_State *L)
{
	return lua_child_check(L, 1, lua_tostring(L, lua_upvalueindex(1)));
}

/* x:log(): every line so far, oldest first. */
static int
lua_child_log(lua_State *L)
{
	struct lua_child *c = lua_child_self(L);
	size_t i;

	lua_createtable(L, (int)c->nlines, 0);
	for (i = 0; i < c->nlines; i++) {
		lua_pushstring(L, c->lines[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/* x:log_count(text): lines containing text (plain), over every run. */
static int
lua_child_log_count(lua_State *L)
{
	struct lua_child *c = lua_child_self(L);
	const char *sub = luaL_checkstring(L, 2);
	lua_Integer n = 0;
	size_t i;

	for (i = 0; i < c->nlines; i++)
		if (strstr(c->lines[i], sub) != NULL)
			n++;
	lua_pushinteger(L, n);
	return 1;
}

/* x:mark(): wait_log looks only at lines after this point. */
static int
lua_child_mark(lua_State *L)
{
	struct lua_child *c = lua_child_self(L);

	c->cursor = c->nlines;
	return 0;
}

static int
lua_child_running(lua_State *L)
{
	lua_pushboolean(L, lua_child_self(L)->state == CHILD_RUNNING);
	return 1;
}

struct lua_child_logwait {
	struct lua_child	*c;
	char			*sub;
};

static void
lua_child_logwait_free(void *arg)
{
	struct lua_child_logwait *w = arg;

	free(w->sub);
	free(w);
}

static int
lua_child_log_ready(lua_State *co, void *arg, int expired)
{
	struct lua_child_logwait *w = arg;
	struct lua_child *c = w->c;
	size_t i;

	for (i = c->cursor; i < c->nlines; i++)
		if (strstr(c->lines[i], w->sub) != NULL) {
			c->cursor = i + 1;
			lua_pushstring(co, c->lines[i]);
			return 1;
		}
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pushnil(co);
	lua_pushfstring(co, "timeout: %s %s logged no line with \"%s\"",
	    c->kind, c->name, w->sub);
	return 2;
}

/*
 * x:wait_log(text [, seconds]): the first line after the cursor that
 * contains text (plain); the cursor moves past it, so two calls find two
 * lines. nil and an error at the deadline.
 */
static int
lua_child_wait_log(lua_State *L)
{
	struct lua_child *c = lua_child_self(L);
	const char *sub = luaL_checkstring(L, 2);
	struct lua_child_logwait *lw;
	struct runner_wait w;
	char what[200], fname[64];

	snprintf(fname, sizeof(fname), "%s:wait_log", c->kind);
	runner_check_wait(L, fname);
	if ((lw = calloc(1, sizeof(*lw))) == NULL ||
	    (lw->sub = strdup(sub)) == NULL) {
		free(lw);
		return luaL_error(L, "out of memory");
	}
	lw->c = c;
	memset(&w, 0, sizeof(w));
	w.ready = lua_child_log_ready;
	w.arg = lw;
	w.free_arg = lua_child_logwait_free;
	w.seconds = luaL_optnumber(L, 3, LUA_SIM_WAIT_DEFAULT);
	snprintf(what, sizeof(what), "%s %s to log \"%.100s\"", c->kind,
	    c->name, sub);
	w.what = what;
	lua_settop(L, 1);
	return runner_wait(L, &w);
}

static const luaL_Reg lua_child_shared[] = {
	{ "log",	lua_child_log },
	{ "log_count",	lua_child_log_count },
	{ "mark",	lua_child_mark },
	{ "wait_log",	lua_child_wait_log },
	{ "running",	lua_child_running },
	{ NULL,		NULL }
};

void
lua_child_methods(lua_State *L, const char *mt, const char *const names[])
{
	size_t i, j;

	for (i = 0; names[i] != NULL; i++) {
		for (j = 0; lua_child_shared[j].name != NULL; j++)
			if (strcmp(names[i], lua_child_shared[j].name) == 0)
				break;
		if (lua_child_shared[j].name == NULL)
			luaL_error(L, "lua_child_methods: no method %s",
			    names[i]);
		lua_pushstring(L, mt);
		lua_pushcclosure(L, lua_child_shared[j].func, 1);
		lua_setfield(L, -2, names[i]);
	}
}

int
lua_child_index(lua_State *L, const struct lua_child *c, long pid,
    const char *const unset[])
{
	const char *k = luaL_checkstring(L, 2);
	size_t i;

	if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL) {
		if (lua_getfield(L, -1, k) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	}
	if (strcmp(k, "pid") == 0) {
		if (pid > 0)
			lua_pushinteger(L, pid);
		else
			lua_pushnil(L);
		return 1;
	}
	if (strcmp(k, "state") == 0) {
		lua_pushstring(L, lua_child_states[c->state]);
		return 1;
	}
	lua_getiuservalue(L, 1, 1);
	if (strcmp(k, "cfg") != 0 && lua_getfield(L, -1, k) != LUA_TNIL)
		return 1;
	/* Known but unset (no pass header, say): nil. */
	for (i = 0; unset != NULL && unset[i] != NULL; i++)
		if (strcmp(k, unset[i]) == 0) {
			lua_pushnil(L);
			return 1;
		}
	return luaL_error(L, "%s has no field '%s'", c->kind, k);
}

void
lua_child_metatable(lua_State *L, const char *mt, const luaL_Reg *methods,
    const char *const shared[], lua_CFunction index, lua_CFunction gc,
    lua_CFunction tostring)
{
	if (!luaL_newmetatable(L, mt)) {
		lua_pop(L, 1);
		return;
	}
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_child_methods(L, mt, shared);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushstring(L, mt);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
