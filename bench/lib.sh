# shellcheck shell=bash disable=SC2034
# bench/lib.sh: the parts bench/run.sh and bench/profile.sh share: a work
# directory torn down on exit, smtp-sink and the proxy started and
# stopped (readiness from the proxy's "event=listening" log line), and
# /proc accounting over the proxy's processes. Sourced, not run.
#
# Expects ROOT; sets MP, PROBE, W. IDLE_N sizes the sink's concurrency.

export LC_ALL=C
BINDIR=${MP_BINDIR:-bin}
BUILDDIR=${MP_BUILD:-build}
case $BINDIR in /*) ;; *) BINDIR=$ROOT/$BINDIR ;; esac
case $BUILDDIR in /*) ;; *) BUILDDIR=$ROOT/$BUILDDIR ;; esac
MP=$BINDIR/mailprevent
PROBE=$BUILDDIR/bench/smtp_probe
IDLE_N=${IDLE_N:-5000}

die() { echo "bench: $*" >&2; exit 1; }

for t in smtp-source smtp-sink; do
	command -v $t >/dev/null || die "$t not found (Debian package postfix)"
done
[ -x "$MP" ] || die "$MP not built (make)"
[ -x "$PROBE" ] || die "$PROBE not built (make $BUILDDIR/bench/smtp_probe)"

W=$(mktemp -d /tmp/bench-mailprevent.XXXXXX) || die "mktemp failed"
PIDS=()		# everything started here, stopped by the trap
MAIN_PID=$BASHPID

# A subshell that gets a signal before it has reset the inherited traps
# would run this too: only the main shell may tear down.
cleanup() {
	local rc=$? p
	[ "$BASHPID" = "$MAIN_PID" ] || return 0
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if [ "$rc" = 0 ]; then
		rm -rf "$W"
	else
		echo "bench: logs kept in $W" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {	# drop $1 from PIDS once it has been stopped
	local p keep=()
	for p in "${PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# Stop a child: TERM, then KILL if it is still there after 10 s. The
# waiting is smtp_probe's (a pidfd), not a watchdog subshell: a subshell
# killed right after its fork can run the parent's traps.
stop() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null
	if ! "$PROBE" waitpid -t 10 "$pid"; then
		echo "bench: pid $pid ignored SIGTERM for 10 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	STOP_RC=$?
	forget "$pid"
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%s\", $* }" </dev/null; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Raise the descriptor limit: an idle session costs the proxy one or two.
raise_nofile() {
	local hard want
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && hard=1048576
	want=$((IDLE_N * 2 + 1000))
	[ "$want" -lt 4096 ] && want=4096
	if [ "$hard" -lt "$want" ]; then
		want=$hard
		IDLE_N=$(((hard - 1000) / 2))
		echo "bench: descriptor limit $hard; holding $IDLE_N idle sessions" >&2
	fi
	ulimit -n "$want" || die "ulimit -n $want refused"
}

# ---- /proc accounting over the proxy's process tree (master + workers) -----
tree() {
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
		tree "$c"
	done
}
cpu_ticks() {	# utime + stime of the listed processes, in clock ticks
	local p sum=0 t
	for p in "$@"; do
		t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$p"/stat 2>/dev/null) || t=0
		sum=$((sum + ${t:-0}))
	done
	echo $sum
}
status_kb() {	# sum of a /proc/PID/status field (VmHWM, VmRSS) in kB
	local f=$1 p sum=0 v
	shift
	for p in "$@"; do
		v=$(awk -v f="$f:" '$1 == f { print $2 }' /proc/"$p"/status 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}

# ---- smtp-sink: on a free port below the ephemeral range ----------------------
SINK_PID='' SINK_PORT=''
sink_start() {
	local port u=()
	[ "$(id -u)" = 0 ] && u=(-u nobody)
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 12000))
		# -m: room for the idle sessions that keep their next-hop connection
		smtp-sink "${u[@]}" -m $((IDLE_N + 500)) 127.0.0.1:$port 4096 \
		    >"$W/sink.log" 2>&1 &
		SINK_PID=$!
		PIDS+=("$SINK_PID")
		# Readiness: a bounded number of connection attempts.
		for _ in $(seq 100); do
			kill -0 "$SINK_PID" 2>/dev/null || break
			if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
				SINK_PORT=$port
				return 0
			fi
			sleep 0.05
		done
		stop "$SINK_PID"
	done
	cat "$W/sink.log" >&2
	die "smtp-sink did not start"
}

# ---- the proxy ---------------------------------------------------------------
write_config() {	# file, path (proxy|policies), workers ("" = default)
	{
		echo 'listen: "127.0.0.1:0"'
		echo 'mode: forward'
		echo 'log_level: info'
		echo 'next_hop:'
		echo "  hosts: [\"127.0.0.1:$SINK_PORT\"]"
		echo 'limits:'
		echo "  max_connections: $((IDLE_N + 1000))"
		[ -n "$3" ] && echo "workers: $3"
		[ "$2" = policies ] && echo "policies: [\"$ROOT/lua/policies/*.lua\"]"
	} >"$1"
}

# Sets P_PID, P_ADDR (host:port), P_WORKERS, P_LOG. Any command words
# before the binary (valgrind ...) go in P_WRAP.
P_PID='' P_ADDR='' P_WORKERS='' P_LOG='' P_N=0 P_WRAP=() STOP_RC=0
proxy_start() {		# config file
	local line
	# A fresh file per start, made here: the child opens its redirection
	# only after the fork, and waitlog must not race it.
	P_N=$((P_N + 1))
	P_LOG=$W/proxy-$P_N.log
	: >"$P_LOG"
	"${P_WRAP[@]}" "$MP" -c "$1" 2>>"$P_LOG" &
	P_PID=$!
	PIDS+=("$P_PID")
	line=$("$PROBE" waitlog -p "$P_PID" -t 60 "$P_LOG" "event=listening") || {
		cat "$P_LOG" >&2
		die "the proxy did not start"
	}
	P_ADDR=$(sed -n 's/.* addr=\([^ ]*\).*/\1/p' <<<"$line")
	P_WORKERS=$(sed -n 's/.* workers=\([0-9]*\).*/\1/p' <<<"$line")
	P_WORKERS=${P_WORKERS:-1}
	# Workers are forked after "listening"; wait until the master has them.
	if [ "$P_WORKERS" -gt 1 ]; then
		"$PROBE" waitlog -p "$P_PID" -c "$P_WORKERS" -t 30 "$P_LOG" \
		    "event=worker " >/dev/null || die "the proxy's workers did not start"
	fi
}
# A proxy that dies under load is a finding, not noise: say so and stop.
proxy_alive() {
	kill -0 "$P_PID" 2>/dev/null && return 0
	wait "$P_PID" 2>/dev/null
	echo "bench: the proxy (pid $P_PID) exited on its own, status $?; last log lines:" >&2
	tail -5 "$P_LOG" >&2
	die "proxy died"
}
proxy_stop() {
	proxy_alive
	stop "$P_PID"
	[ "$STOP_RC" = 0 ] || echo "bench: the proxy exited with status $STOP_RC on SIGTERM" >&2
	P_PID=
}
