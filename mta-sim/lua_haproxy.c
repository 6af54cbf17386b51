/*
 * lua_haproxy: t:haproxy{}, a real HAProxy in TCP mode as the IP load
 * balancer of the guide's chapter 4, in front of a cluster of proxies (or
 * of MTAs). The runner writes its configuration into the scenario's temp
 * directory and starts `haproxy -f CFG -db` (foreground, never a service)
 * through proc.c, so teardown always stops it and PR_SET_PDEATHSIG kills
 * it with the runner.
 *
 *   listen NAME
 *	bind IP:PORT			t:ip() (its own address), port 10025
 *	balance roundrobin
 *	source IP			connections to backends come from IP
 *	server p1 ADDR send-proxy	one per backend; send-proxy-v2 for "v2"
 *
 * HAProxy says nothing when it is ready, so the call waits, on a short
 * timer bounded by `timeout`, until the kernel lists its socket as
 * listening (/proc/net/tcp). That probes without connecting: a probe
 * connection would reach a backend, and the proxies would log it.
 *
 * Its log (tcplog, one line per connection: which backend took it) goes
 * to stderr, is kept in memory and copied to NAME.log in the temp
 * directory, and is attached to the report when the scenario fails.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "buf.h"
#include "lua_child.h"
#include "lua_sim.h"
#include "proc.h"
#include "runner.h"

#define LUA_HAPROXY_MT		"sim.haproxy"
#define LUA_HAPROXY_PORT	10025
#define LUA_HAPROXY_WAIT	10.0	/* seconds to listen */
#define LUA_HAPROXY_STOP_WAIT	10.0
#define LUA_HAPROXY_POLL_MS	20	/* /proc/net/tcp while starting */
#define LUA_HAPROXY_BACKENDS	32
#define LUA_HAPROXY_LINES_MAX	100000
#define LUA_HAPROXY_TAIL	30

static const char *const lua_haproxy_paths[] = { "/usr/sbin/haproxy",
    "/usr/local/sbin/haproxy", "/usr/bin/haproxy", NULL };

static const char *const lua_haproxy_balances[] = { "roundrobin",
    "leastconn", "source", "first", NULL };

struct lua_haproxy {
	struct lua_child	 c;		/* first: see lua_child.h */
	struct event		*poll;
	char			 ip[64];
	int			 port;
	char			 prog[PATH_MAX];
	char			 config[PATH_MAX];
};

static struct lua_haproxy *
lua_haproxy_check(lua_State *L, int idx)
{
	return (struct lua_haproxy *)lua_child_check(L, idx, LUA_HAPROXY_MT);
}

/* ---- readiness ------------------------------------------------------------ */

/*
 * Is ip:port a listening TCP socket? /proc/net/tcp shows each local
 * address as the in_addr's 32 bits in host order, then the port, in hex;
 * state 0A is LISTEN.
 */
static int
lua_haproxy_listening(const char *ip, int port)
{
	struct in_addr want, got;
	char line[512];
	unsigned long a;
	unsigned p, st;
	FILE *f;
	int found = 0;

	if (inet_pton(AF_INET, ip, &want) != 1 ||
	    (f = fopen("/proc/net/tcp", "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, " %*u: %lx:%x %*x:%*x %x", &a, &p, &st) != 3)
			continue;
		got.s_addr = (uint32_t)a;
		found = st == 0x0a && p == (unsigned)port &&
		    got.s_addr == want.s_addr;
	}
	fclose(f);
	return found;
}

static void
lua_haproxy_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lua_haproxy *h = arg;
	struct timeval tv = { 0, LUA_HAPROXY_POLL_MS * 1000 };

	if (h->c.state != CHILD_STARTING)
		return;
	if (lua_haproxy_listening(h->ip, h->port)) {
		h->c.state = CHILD_RUNNING;
		runner_poke();
		return;
	}
	evtimer_add(h->poll, &tv);
}

/* ---- the process ------------------------------------------------------------ */

static void
lua_haproxy_line(void *arg, enum proc_stream which, const char *line,
    size_t len)
{
	struct lua_haproxy *h = arg;

	if (lua_child_add_line(&h->c, line, len) != NULL)
		runner_poke();
}

static void
lua_haproxy_exit(void *arg, int status)
{
	struct lua_haproxy *h = arg;
	char how[64];

	lua_child_exited(&h->c, status, how, sizeof(how));
	if (h->c.state == CHILD_RUNNING) {
		runner_fail("haproxy %s exited unexpectedly (%s)", h->c.name,
		    how);
		lua_child_attach_tail(&h->c);
	}
	/* STARTING: the wait reports it; STOPPING: asked for. */
	lua_child_stopped(&h->c);
}

static void
lua_haproxy_spawn(lua_State *L, struct lua_haproxy *h)
{
	struct timeval tv = { 0, LUA_HAPROXY_POLL_MS * 1000 };
	char err[256];
	char *argv[5];

	argv[0] = h->prog;
	argv[1] = (char *)"-f";
	argv[2] = h->config;
	argv[3] = (char *)"-db";	/* foreground, no daemon */
	argv[4] = NULL;
	if (lua_child_spawn(&h->c, argv, lua_haproxy_line, lua_haproxy_exit,
	    h, err, sizeof(err)) == -1)
		luaL_error(L, "haproxy %s: %s", h->c.name, err);
	evtimer_add(h->poll, &tv);
}

enum lua_haproxy_until { UNTIL_LISTENING, UNTIL_EXITED };

static int
lua_haproxy_ready(lua_State *co, void *arg, int expired)
{
	struct lua_child_wait *w = arg;
	struct lua_haproxy *h = (struct lua_haproxy *)w->c;
	lua_State *L = runner_lua();
	char how[64];

	if (w->until == UNTIL_EXITED)
		return lua_child_ready_exited(co, &h->c, expired);
	if (h->c.state == CHILD_RUNNING) {
		lua_child_push_object(L, w);
		lua_xmove(L, co, 1);
		return 1;
	}
	if (!h->c.exited && !expired)
		return RUNNER_NOT_YET;
	lua_child_attach_tail(&h->c);
	if (h->c.exited) {
		lua_child_strstatus(h->c.status, how, sizeof(how));
		lua_pushfstring(co, "haproxy %s did not start (%s); its "
		    "configuration is %s", h->c.name, how, h->config);
	} else {
		h->c.state = CHILD_STOPPING;	/* teardown reaps it */
		lua_pushfstring(co, "haproxy %s is not listening on %s:%d "
		    "in time", h->c.name, h->ip, h->port);
	}
	return RUNNER_RAISE;
}

/* Wait on the object at index 1. */
static int
lua_haproxy_wait(lua_State *L, struct lua_haproxy *h,
    enum lua_haproxy_until until, double seconds)
{
	return lua_child_wait(L, &h->c, lua_haproxy_ready, until, 0, seconds,
	    until == UNTIL_LISTENING ? "listen" : "exit");
}

static void
lua_haproxy_cleanup(void *arg)
{
	struct lua_haproxy *h = arg;

	if (h->poll != NULL)
		evtimer_del(h->poll);
	lua_child_cleanup(&h->c);
}

static int
lua_haproxy_gc(lua_State *L)
{
	struct lua_haproxy *h = luaL_checkudata(L, 1, LUA_HAPROXY_MT);

	lua_child_free(&h->c, SIGKILL);
	if (h->poll != NULL) {
		event_free(h->poll);
		h->poll = NULL;
	}
	return 0;
}

/* ---- configuration ------------------------------------------------------------ */

/* A name HAProxy takes for a server: letters, digits, '-', '_', '.'. */
static int
lua_haproxy_good_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return i > 0 && i <= 40;
}

/* "IPv4:port" with a port 1..65535, nothing else (no names, no IPv6). */
static int
lua_haproxy_good_addr(const char *a)
{
	struct in_addr in;
	char ip[INET_ADDRSTRLEN];
	const char *c = strrchr(a, ':');
	char *end;
	long port;

	if (c == NULL || (size_t)(c - a) >= sizeof(ip))
		return 0;
	memcpy(ip, a, (size_t)(c - a));
	ip[c - a] = '\0';
	errno = 0;
	port = strtol(c + 1, &end, 10);
	return inet_pton(AF_INET, ip, &in) == 1 && *end == '\0' &&
	    end != c + 1 && errno == 0 && port >= 1 && port <= 65535;
}

/*
 * The configuration, from the checked options at opts. Everything in it
 * was checked (addresses, names, words), so nothing an option holds can
 * add a line of its own.
 */
static void
lua_haproxy_write_config(lua_State *L, struct lua_haproxy *h, int opts)
{
	struct buf *b;
	const char *send, *balance, *source, *addr, *sname, *opt;
	char defname[32];
	double inter;
	size_t i, n = 0;
	int check, backends;
	FILE *f;

	send = lua_sim_opt_string(L, opts, "send_proxy", NULL, "t:haproxy");
	if (send != NULL && strcmp(send, "v1") != 0 && strcmp(send, "v2") != 0)
		luaL_error(L, "t:haproxy: send_proxy must be \"v1\" or \"v2\", "
		    "not '%s'", send);
	opt = send == NULL ? "" : strcmp(send, "v1") == 0 ? " send-proxy" :
	    " send-proxy-v2";
	balance = lua_sim_opt_string(L, opts, "balance", "roundrobin",
	    "t:haproxy");
	for (i = 0; lua_haproxy_balances[i] != NULL; i++)
		if (strcmp(balance, lua_haproxy_balances[i]) == 0)
			break;
	if (lua_haproxy_balances[i] == NULL)
		luaL_error(L, "t:haproxy: balance must be roundrobin, "
		    "leastconn, source or first, not '%s'", balance);
	source = lua_sim_opt_string(L, opts, "source", h->ip, "t:haproxy");
	{
		struct in_addr in;

		if (inet_pton(AF_INET, source, &in) != 1)
			luaL_error(L, "t:haproxy: source must be an IPv4 "
			    "address, not '%s'", source);
	}
	check = lua_sim_opt_bool(L, opts, "check", 0, "t:haproxy");
	inter = lua_sim_opt_number(L, opts, "check_interval", 0.2, 0.01, 60,
	    "t:haproxy");

	b = lua_sim_buf(L);
	buf_appendf(b, "# written by mta-sim run for haproxy %s\n"
	    "global\n"
	    "\tlog stderr format raw local0 info\n"
	    "\tmaxconn 512\n"
	    "\tnbthread 1\n"
	    "\n"
	    "defaults\n"
	    "\tmode tcp\n"
	    "\tlog global\n"
	    "\toption tcplog\n"
	    "\ttimeout connect 2s\n"
	    "\ttimeout client 60s\n"
	    "\ttimeout server 60s\n"
	    "\tretries 2\n"
	    "\toption redispatch\n"
	    "\n"
	    "listen %s\n"
	    "\tbind %s:%d\n"
	    "\tbalance %s\n"
	    "\tsource %s\n", h->c.name, h->c.name, h->ip, h->port, balance, source);

	lua_getfield(L, opts, "backends");
	backends = lua_gettop(L);
	if (!lua_istable(L, backends) || lua_sim_addr_or_null(L, backends) !=
	    NULL || (n = lua_rawlen(L, backends)) == 0 ||
	    n > LUA_HAPROXY_BACKENDS)
		luaL_error(L, "t:haproxy: backends must be a list of 1 to %d "
		    "objects or \"ip:port\" strings", LUA_HAPROXY_BACKENDS);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, backends, (lua_Integer)i);
		addr = lua_sim_addr(L, -1, "t:haproxy backends");
		if (!lua_haproxy_good_addr(addr))
			luaL_error(L, "t:haproxy: backend %d: '%s' is not "
			    "IPv4:port (a proxy must have started)", (int)i,
			    addr);
		snprintf(defname, sizeof(defname), "b%d", (int)i);
		sname = defname;
		if (lua_type(L, -1) != LUA_TSTRING &&
		    lua_getfield(L, -1, "name") == LUA_TSTRING) {
			if (lua_haproxy_good_name(lua_tostring(L, -1)))
				sname = lua_tostring(L, -1);
		} else if (lua_type(L, -1) != LUA_TSTRING)
			lua_pop(L, 1);
		buf_appendf(b, "\tserver %s %s%s", sname, addr, opt);
		if (check)
			buf_appendf(b, " check inter %dms fall 1 rise 1%s",
			    (int)(inter * 1000), send != NULL ?
			    " check-send-proxy" : "");
		buf_appends(b, "\n");
		lua_settop(L, backends);
	}
	lua_pop(L, 1);
	if ((f = fopen(h->config, "we")) == NULL)
		luaL_error(L, "t:haproxy: cannot write %s: %s", h->config,
		    strerror(errno));
	if (fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0)
		luaL_error(L, "t:haproxy: cannot write %s", h->config);
	lua_pop(L, 1);		/* the buf */
}

/* The haproxy program, or NULL: $MP_HAPROXY, else the usual places. */
static const char *
lua_haproxy_program(void)
{
	const char *env = getenv("MP_HAPROXY");
	size_t i;

	if (env != NULL && *env != '\0')
		return access(env, X_OK) == 0 ? env : NULL;
	for (i = 0; lua_haproxy_paths[i] != NULL; i++)
		if (access(lua_haproxy_paths[i], X_OK) == 0)
			return lua_haproxy_paths[i];
	return NULL;
}

/* ---- methods ---------------------------------------------------------------- */

/* lb:stop([seconds]): SIGTERM, then the exit code once it has exited. */
static int
lua_haproxy_stop(lua_State *L)
{
	struct lua_haproxy *h = lua_haproxy_check(L, 1);

	return lua_child_stop(L, &h->c, SIGTERM, luaL_optnumber(L, 2,
	    LUA_HAPROXY_STOP_WAIT), lua_haproxy_ready, UNTIL_EXITED, "lb:stop");
}

/* lb:start([seconds]): again, on the same address, after a stop. */
static int
lua_haproxy_start(lua_State *L)
{
	struct lua_haproxy *h = lua_haproxy_check(L, 1);
	double seconds = luaL_optnumber(L, 2, LUA_HAPROXY_WAIT);

	runner_check_wait(L, "lb:start");
	if (h->c.proc != NULL)
		return luaL_error(L, "haproxy %s is running", h->c.name);
	lua_haproxy_spawn(L, h);
	return lua_haproxy_wait(L, h, UNTIL_LISTENING, seconds);
}

static const luaL_Reg lua_haproxy_methods[] = {
	{ "stop",	lua_haproxy_stop },
	{ "start",	lua_haproxy_start },
	{ NULL,		NULL }
};

static const char *const lua_haproxy_shared[] = { "running", "log",
    "log_count", NULL };

static int
lua_haproxy_index(lua_State *L)
{
	struct lua_haproxy *h = luaL_checkudata(L, 1, LUA_HAPROXY_MT);

	return lua_child_index(L, &h->c, h->c.proc != NULL ?
	    (long)proc_pid(h->c.proc) : 0, NULL);
}

static int
lua_haproxy_tostring(lua_State *L)
{
	struct lua_haproxy *h = luaL_checkudata(L, 1, LUA_HAPROXY_MT);

	lua_pushfstring(L, "haproxy %s (%s:%d, %s)", h->c.name, h->ip, h->port,
	    lua_child_states[h->c.state]);
	return 1;
}

/* Made the first time t:haproxy is called, as t:pki does. */
static void
lua_haproxy_metatable(lua_State *L)
{
	lua_child_metatable(L, LUA_HAPROXY_MT, lua_haproxy_methods,
	    lua_haproxy_shared, lua_haproxy_index, lua_haproxy_gc,
	    lua_haproxy_tostring);
}

/*
 * t:haproxy{ name=, ip=, port=, mode="tcp", backends={...},
 *            send_proxy="v1"|"v2", balance=, source=, check=,
 *            check_interval=, timeout= }
 */
int
lua_haproxy_new(lua_State *L)
{
	static const char *const keys[] = { "name", "ip", "port", "mode",
	    "backends", "send_proxy", "balance", "source", "check",
	    "check_interval", "timeout", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct lua_haproxy *h;
	const char *name, *ip, *mode, *prog;
	char defname[32], ipbuf[64];
	double seconds;
	int obj, r;

	lua_test_arg(L);
	runner_check_wait(L, "t:haproxy");
	lua_haproxy_metatable(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	lua_sim_check_opts(L, 2, "t:haproxy", keys);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	snprintf(defname, sizeof(defname), "lb%u", ++count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:haproxy");
	if (!lua_haproxy_good_name(name) || strchr(name, '.') != NULL)
		return luaL_error(L, "t:haproxy: name '%s' must be 1 to 40 "
		    "letters, digits, '-' and '_'", name);
	mode = lua_sim_opt_string(L, 2, "mode", "tcp", "t:haproxy");
	if (strcmp(mode, "tcp") != 0)
		return luaL_error(L, "t:haproxy: only mode \"tcp\" (SMTP is "
		    "balanced per connection), not '%s'", mode);
	seconds = lua_sim_opt_number(L, 2, "timeout", LUA_HAPROXY_WAIT, 0.1,
	    600, "t:haproxy");
	if ((prog = lua_haproxy_program()) == NULL) {
		/* Like a Postfix scenario without Postfix: nothing to test. */
		runner_set_skip("haproxy is not installed (the Debian package "
		    "haproxy; or set MP_HAPROXY)");
		runner_push_abort(L);
		return lua_error(L);
	}
	if ((ip = lua_sim_opt_string(L, 2, "ip", NULL, "t:haproxy")) == NULL) {
		if (runner_ip(ipbuf, sizeof(ipbuf)) == -1)
			return luaL_error(L, "t:haproxy: out of loopback "
			    "addresses");
		ip = ipbuf;
	}

	h = lua_newuserdatauv(L, sizeof(*h), 1);
	memset(h, 0, sizeof(*h));
	luaL_setmetatable(L, LUA_HAPROXY_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, obj, 1);
	lua_child_init(&h->c, "haproxy", "this load balancer", name,
	    LUA_HAPROXY_LINES_MAX, LUA_HAPROXY_TAIL);
	snprintf(h->prog, sizeof(h->prog), "%s", prog);
	r = snprintf(h->ip, sizeof(h->ip), "%s", ip);
	{
		struct in_addr in;

		if (r < 0 || (size_t)r >= sizeof(h->ip) ||
		    inet_pton(AF_INET, h->ip, &in) != 1)
			return luaL_error(L, "t:haproxy: ip must be an IPv4 "
			    "address, not '%s'", ip);
	}
	h->port = (int)lua_sim_opt_number(L, 2, "port", LUA_HAPROXY_PORT, 1,
	    65535, "t:haproxy");
	r = snprintf(h->config, sizeof(h->config), "%s/%s.haproxy.cfg",
	    runner_dir(), h->c.name);
	if (r < 0 || (size_t)r >= sizeof(h->config))
		return luaL_error(L, "t:haproxy: path too long");
	snprintf(h->c.logpath, sizeof(h->c.logpath), "%s/%s.log", runner_dir(),
	    h->c.name);
	if ((h->poll = evtimer_new(runner_base(), lua_haproxy_poll_cb,
	    h)) == NULL)
		return luaL_error(L, "out of memory");
	lua_haproxy_write_config(L, h, 2);
	lua_child_open_log(&h->c);
	runner_own(L, obj, lua_haproxy_cleanup, h);

	lua_getiuservalue(L, obj, 1);
	lua_pushfstring(L, "%s:%d", h->ip, h->port);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "addr");
	lua_pop(L, 1);
	lua_pushstring(L, h->c.name);
	lua_setfield(L, -2, "name");
	lua_pushstring(L, h->ip);
	lua_setfield(L, -2, "ip");
	lua_pushinteger(L, h->port);
	lua_setfield(L, -2, "port");
	lua_pushstring(L, h->config);
	lua_setfield(L, -2, "config");
	lua_pushstring(L, h->c.logpath);
	lua_setfield(L, -2, "log_file");
	lua_pop(L, 1);

	lua_haproxy_spawn(L, h);
	lua_settop(L, obj);
	lua_replace(L, 1);
	lua_settop(L, 1);
	return lua_haproxy_wait(L, h, UNTIL_LISTENING, seconds);
}
