#!/bin/bash
# bench/profile.sh: where the proxy spends its time under one of the loads
# of bench/run.sh. Not part of `make bench`; see docs/performance.md.
#
#   bench/profile.sh [-t perf|callgrind] [-p proxy|policies] [-l LOAD] [-g]
#
# LOAD is 1k-conn (default), 1k-reuse, 100k-conn or 100k-reuse.
#   perf       perf record (cpu-clock) on the running proxy during the load;
#              prints the flat profile by symbol and by shared object. -g
#              adds DWARF call graphs and the inclusive ("children") view.
#   callgrind  the proxy under valgrind --tool=callgrind, with a tenth of
#              the messages (it runs some 50 times slower); prints
#              callgrind_annotate, exclusive and inclusive.
#   strace     strace -c on the running proxy, with a tenth of the
#              messages: system calls by count, and per message.
# Output files stay in build/bench/profile/ (perf.data or callgrind.out).

set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOL=perf PATHNAME=proxy LOAD=1k-conn CALLGRAPH=0
while getopts "t:p:l:g" o; do
	case $o in
	t) TOOL=$OPTARG ;;
	p) PATHNAME=$OPTARG ;;
	l) LOAD=$OPTARG ;;
	g) CALLGRAPH=1 ;;
	*) echo "usage: bench/profile.sh [-t perf|callgrind|strace] [-p proxy|policies] [-l LOAD] [-g]" >&2; exit 2 ;;
	esac
done
case $LOAD in
1k-conn) OPTS="" LEN=1024 N=15000 ;;
1k-reuse) OPTS=-d LEN=1024 N=40000 ;;
100k-conn) OPTS="" LEN=102400 N=5000 ;;
100k-reuse) OPTS=-d LEN=102400 N=6000 ;;
*) echo "bench/profile.sh: unknown load $LOAD" >&2; exit 2 ;;
esac
case $PATHNAME in proxy|policies) ;; *) echo "bench/profile.sh: path is proxy or policies" >&2; exit 2 ;; esac

IDLE_N=100
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
raise_nofile
OUT=$BUILDDIR/bench/profile
mkdir -p "$OUT"

sink_start
write_config "$W/p.yaml" "$PATHNAME" ""
case $TOOL in
perf)
	command -v perf >/dev/null || die "perf not installed"
	proxy_start "$W/p.yaml"
	g=(-F 2999)
	[ "$CALLGRAPH" = 1 ] && g=(--call-graph "dwarf,16384" -F 499)
	perf record -q -e cpu-clock "${g[@]}" -p "$P_PID" -o "$OUT/perf.data" \
	    2>"$W/perf.err" &
	PERF=$!
	PIDS+=("$PERF")
	# perf announces nothing when it is attached; its own startup is
	# a small share of a run lasting seconds.
	# shellcheck disable=SC2086
	smtp-source -s 20 $OPTS -l $LEN -m $N "$P_ADDR" || die "smtp-source failed"
	kill -INT "$PERF"
	wait "$PERF"
	forget "$PERF"
	proxy_stop
	echo "== $PATHNAME, $LOAD: by symbol (self)"
	perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol,dso \
	    --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | \
	    { [ "$CALLGRAPH" = 1 ] && grep -v '^ *[|-]' || cat; } | head -45
	echo "== by shared object"
	perf report -i "$OUT/perf.data" --stdio --no-children --sort dso \
	    2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
	if [ "$CALLGRAPH" = 1 ]; then
		echo "== inclusive (children)"
		perf report -i "$OUT/perf.data" --stdio --children --sort symbol \
		    --percent-limit 3 -g none 2>/dev/null | grep -v '^#' | \
		    grep -v '^$' | head -40
	fi
	;;
callgrind)
	command -v valgrind >/dev/null || die "valgrind not installed"
	P_WRAP=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out")
	proxy_start "$W/p.yaml"
	# shellcheck disable=SC2086
	smtp-source -s 20 $OPTS -l $LEN -m $((N / 10)) "$P_ADDR" || die "smtp-source failed"
	proxy_stop
	echo "== $PATHNAME, $LOAD: exclusive"
	callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | head -40
	echo "== inclusive"
	callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2>/dev/null | \
	    sed -n '/^Ir/,$p' | head -40
	;;
strace)
	command -v strace >/dev/null || die "strace not installed"
	proxy_start "$W/p.yaml"
	strace -c -f -q -p "$P_PID" -o "$OUT/strace.txt" &
	ST=$!
	PIDS+=("$ST")
	# Like perf, strace attaches silently; the first messages may go uncounted.
	M=$((N / 10))
	# shellcheck disable=SC2086
	smtp-source -s 20 $OPTS -l $LEN -m $M "$P_ADDR" || die "smtp-source failed"
	kill -INT "$ST"
	wait "$ST"
	forget "$ST"
	proxy_stop
	echo "== $PATHNAME, $LOAD: system calls ($M messages)"
	awk -v m="$M" 'NR <= 2 || /^-/ { print; next }
	    $4 ~ /^[0-9]+$/ { printf "%s  %6.2f/msg\n", $0, $4 / m; next }
	    { print }' "$OUT/strace.txt"
	;;
*)
	die "unknown tool $TOOL"
	;;
esac
