#!/bin/bash
# bench/run.sh: what `make bench` runs (docs/performance.md explains the
# numbers). On loopback only, with the same load every time:
#
#   detection    the C micro-benchmarks given as arguments (bench/*_bench)
#   throughput   smtp-source -> [mailprevent] -> smtp-sink, paths direct,
#                proxy (no policies) and policies (lua/policies/*.lua);
#                1 KB and 100 KB, a connection per message and reused;
#                20 sessions; every run REPS times, the median reported
#   scaling      the proxy and policies paths with workers: 1 and 2
#   latency      smtp_probe at half the proxy's saturated rate: the time
#                from the final dot to the 250, direct and through the proxy
#   concurrency  5,000 idle sessions held open through the proxy
#
# It prints the tables and writes them to bench/results.md. Numbers only:
# nothing here passes or fails on timing; the exit status is non-zero only
# when a run could not be done (a tool failed, mail was lost).
#
# Environment: MP_BINDIR (bin), MP_BUILD (build), BENCH_REPS (3),
# BENCH_SCALE (1; divides the message counts, for a quick look),
# BENCH_IDLE (5000), BENCH_RESULTS (bench/results.md).

# The whole script is one { } block: bash reads it all before running it,
# so editing the file during a run cannot change the run.
{
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-1}
IDLE_N=${BENCH_IDLE:-5000}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results.md}
SESSIONS=20
LAT_SECONDS=5
HZ=$(getconf CLK_TCK)
BENCHES=("$@")

# name, smtp-source options, payload octets, messages (each direct run
# lasts 2-3 s on the reference 2-core machine; the proxy's runs longer).
LOADS=(
	"1k-conn||1024|15000"
	"1k-reuse|-d|1024|40000"
	"100k-conn||102400|5000"
	"100k-reuse|-d|102400|6000"
)
PATHS=(direct proxy policies)

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
raise_nofile
# smtp-source's own CPU time, when GNU time is there (Debian package time).
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f "%U %S" -o "$W/time.out")

WORKERS_OK=1
workers_supported() {
	write_config "$W/check.yaml" proxy 2
	"$MP" -c "$W/check.yaml" --check >/dev/null 2>"$W/check.err" && return 0
	grep -q workers "$W/check.err" || { cat "$W/check.err" >&2; die "--check failed"; }
	return 1
}

# ---- one throughput run --------------------------------------------------------
# Sets R_RATE (msg/s), R_HWM (kB), R_CPU (the proxy's CPU seconds per
# 1000 messages), R_ALL (the same for proxy, smtp-sink and smtp-source
# together), R_SIZE (octets per message, from the proxy's log).
run_once() {	# path, smtp-source options, length, messages, workers
	local path=$1 opts=$2 len=$3 n=$4 workers=$5 addr pids c0=0 c1=0 t0 t1 got
	local s0 s1 src
	R_HWM=- R_CPU=- R_SIZE='' R_ALL=-
	if [ "$path" = direct ]; then
		addr=127.0.0.1:$SINK_PORT
	else
		write_config "$W/run.yaml" "$path" "$workers"
		proxy_start "$W/run.yaml"
		addr=$P_ADDR
		pids=$(tree "$P_PID")
		c0=$(cpu_ticks $pids)
	fi
	s0=$(cpu_ticks "$SINK_PID")
	: >"$W/time.out"
	t0=$(now)
	# shellcheck disable=SC2086
	if ! timeout 300 "${TIMER[@]}" smtp-source -s $SESSIONS $opts -l "$len" -m "$n" \
	    -M bench.example -f sender@bench.example -t rcpt@bench.example \
	    "$addr" >"$W/source.log" 2>&1; then
		cat "$W/source.log" >&2
		[ -n "$P_LOG" ] && tail -5 "$P_LOG" >&2
		die "smtp-source failed: path=$path load=$opts/$len"
	fi
	t1=$(now)
	s1=$(cpu_ticks "$SINK_PID")
	R_RATE=$(calc "$n / ($t1 - $t0)")
	if [ "$path" != direct ]; then
		proxy_alive
		# Workers still alive at the end; a worker's ticks before were ~0.
		pids=$({ echo "$pids"; tree "$P_PID"; } | sort -u)
		c1=$(cpu_ticks $pids)
		R_HWM=$(status_kb VmHWM $pids)
		R_CPU=$(calc "($c1 - $c0) / $HZ / $n * 1000")
		proxy_stop
		got=$(grep -c 'event=relayed' "$P_LOG")
		[ "$got" = "$n" ] || die "path=$path: $got of $n messages relayed"
		R_SIZE=$(sed -n 's/.* event=relayed .* size=\([0-9]*\).*/\1/p' "$P_LOG" | head -1)
		rm -f "$P_LOG"
		P_LOG=
	fi
	src=$(awk 'NF == 2 { print $1 + $2 }' "$W/time.out")
	[ -n "$src" ] && R_ALL=$(calc "(($c1 - $c0 + $s1 - $s0) / $HZ + $src) / $n * 1000")
}

# Results by key "load/path": every run's numbers, then their medians.
declare -A RUNS_RATE RUNS_HWM RUNS_CPU RUNS_ALL RATE RATES HWM CPU ALL SIZE
record() {	# key, path, opts, len, n, workers
	local key=$1
	run_once "$2" "$3" "$4" "$5" "$6"
	RUNS_RATE[$key]="${RUNS_RATE[$key]:-} $R_RATE"
	RUNS_HWM[$key]="${RUNS_HWM[$key]:-} $R_HWM"
	RUNS_CPU[$key]="${RUNS_CPU[$key]:-} $R_CPU"
	RUNS_ALL[$key]="${RUNS_ALL[$key]:-} $R_ALL"
	[ -n "$R_SIZE" ] && SIZE[${key%%/*}]=$R_SIZE
	printf '  %-20s %9.1f msg/s\n' "$key" "$R_RATE"
}
summarise() {	# key
	local key=$1
	# shellcheck disable=SC2086
	RATE[$key]=$(median ${RUNS_RATE[$key]})
	# shellcheck disable=SC2086
	RATES[$key]=$(printf '%.0f ' ${RUNS_RATE[$key]})
	case ${RUNS_HWM[$key]} in
	*-*) HWM[$key]=- CPU[$key]=- ;;
	*)	# shellcheck disable=SC2086
		HWM[$key]=$(median ${RUNS_HWM[$key]})
		# shellcheck disable=SC2086
		CPU[$key]=$(median ${RUNS_CPU[$key]}) ;;
	esac
	case ${RUNS_ALL[$key]} in
	*-*) ALL[$key]=- ;;
	*)	# shellcheck disable=SC2086
		ALL[$key]=$(median ${RUNS_ALL[$key]}) ;;
	esac
}

# ==== run everything ===========================================================
T_START=$(now)
CORES=$(nproc)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$ROOT" status --porcelain -- proxy common 2>/dev/null)" ] && REV="$REV+local changes"
LOADAVG=$(cut -d' ' -f1 /proc/loadavg)
POSTFIX_V=$(dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo unknown)

echo "mailprevent bench: $DATE, $CORES cores ($CPU_MODEL), revision $REV"
[ "$SCALE" != 1 ] && echo "BENCH_SCALE=$SCALE: message counts divided by $SCALE"
awk "BEGIN { exit !($LOADAVG > 0.5) }" </dev/null &&
    echo "bench: load average $LOADAVG before starting: other work shares the cores, expect noise" >&2

# ---- detection -------------------------------------------------------------------
: >"$W/detect.txt"
for b in "${BENCHES[@]}"; do
	echo "== $b"
	"$b" 2>&1 | tee -a "$W/detect.txt"
	[ "${PIPESTATUS[0]}" = 0 ] || die "$b failed"
done
POLICY_MBS=$(sed -n 's/^shipped policies, one core *\([0-9.]*\) MB\/s.*/\1/p' "$W/detect.txt")

sink_start
echo "smtp-sink on 127.0.0.1:$SINK_PORT"

# ---- throughput ------------------------------------------------------------------
echo "== throughput: $SESSIONS sessions, $REPS runs of each, interleaved"
for l in "${LOADS[@]}"; do
	IFS='|' read -r name opts len n <<<"$l"
	n=$((n / SCALE))
	for ((r = 1; r <= REPS; r++)); do
		for p in "${PATHS[@]}"; do
			record "$name/$p" "$p" "$opts" "$len" "$n" ""
		done
	done
	for p in "${PATHS[@]}"; do
		summarise "$name/$p"
	done
done
DEFAULT_WORKERS=$P_WORKERS

# ---- scaling -----------------------------------------------------------------------
if workers_supported; then
	echo "== scaling: 1k-conn with workers: 1 and 2"
	IFS='|' read -r name opts len n <<<"${LOADS[0]}"
	n=$((n / SCALE))
	# direct again, in the same stretch of time as the runs it is compared to
	for ((r = 1; r <= REPS; r++)); do
		record "w/direct" direct "$opts" "$len" "$n" ""
		for p in proxy policies; do
			for w in 1 2; do
				record "w$w/$p" "$p" "$opts" "$len" "$n" "$w"
			done
		done
	done
	summarise "w/direct"
	for p in proxy policies; do
		for w in 1 2; do
			summarise "w$w/$p"
		done
	done
else
	WORKERS_OK=0
	echo "== scaling: workers: not supported yet"
fi

# ---- latency -------------------------------------------------------------------------
LAT_RATE=$(calc "int(${RATE[1k-conn/proxy]} / 2)")
echo "== latency: $LAT_RATE msg/s (half the proxy's 1k-conn rate), ${LAT_SECONDS} s per run"
declare -A LAT_MEDS LAT_P99S LAT_N LAT_ERR LAT_MED LAT_P99
for ((r = 1; r <= REPS; r++)); do
	for p in "${PATHS[@]}"; do
		if [ "$p" = direct ]; then
			addr=127.0.0.1:$SINK_PORT
		else
			write_config "$W/lat.yaml" "$p" ""
			proxy_start "$W/lat.yaml"
			addr=$P_ADDR
		fi
		# Errors (a 421 when sessions pile up) are counted in the table.
		line=$("$PROBE" latency -r "$LAT_RATE" -t "$LAT_SECONDS" -l 1024 "$addr")
		case $line in samples=*) ;; *) die "latency probe failed on path $p" ;; esac
		[ "$p" != direct ] && proxy_stop
		LAT_MEDS[$p]="${LAT_MEDS[$p]:-} $(sed -n 's/.* median_us=\([0-9]*\).*/\1/p' <<<"$line")"
		LAT_P99S[$p]="${LAT_P99S[$p]:-} $(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line")"
		LAT_N[$p]=$(( ${LAT_N[$p]:-0} + $(sed -n 's/^samples=\([0-9]*\).*/\1/p' <<<"$line") ))
		LAT_ERR[$p]=$(( ${LAT_ERR[$p]:-0} + $(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line") ))
		printf '  %-9s %s\n' "$p" "$line"
	done
done
for p in "${PATHS[@]}"; do
	# shellcheck disable=SC2086
	LAT_MED[$p]=$(median ${LAT_MEDS[$p]})
	# shellcheck disable=SC2086
	LAT_P99[$p]=$(median ${LAT_P99S[$p]})
done

# ---- concurrency: idle sessions -------------------------------------------------------
echo "== concurrency: $IDLE_N idle sessions through the proxy"
declare -A IDLE_BASE IDLE_HELD
hold() {	# mode: ehlo | msg
	local flag=() line pids
	[ "$1" = msg ] && flag=(-m)
	write_config "$W/idle.yaml" proxy ""
	proxy_start "$W/idle.yaml"
	pids=$(tree "$P_PID")
	IDLE_BASE[$1]=$(status_kb VmRSS $pids)
	coproc HOLDER { exec "$PROBE" idle "${flag[@]}" -n "$IDLE_N" "$P_ADDR"; }
	PIDS+=("$HOLDER_PID")
	local hpid=$HOLDER_PID
	if ! read -r -t 150 -u "${HOLDER[0]}" line || [ "${line%% *}" != ready ]; then
		tail -3 "$P_LOG" >&2
		die "could not hold $IDLE_N sessions ($1)"
	fi
	IDLE_HELD[$1]=$(status_kb VmRSS $pids)
	eval "exec ${HOLDER[1]}>&-"	# EOF on its stdin: it closes them all
	wait "$hpid"
	forget "$hpid"
	proxy_stop
	printf '  after %-4s %6d kB idle, %7d kB with %d sessions: %.1f kB each\n' \
	    "$1:" "${IDLE_BASE[$1]}" "${IDLE_HELD[$1]}" "$IDLE_N" \
	    "$(calc "(${IDLE_HELD[$1]} - ${IDLE_BASE[$1]}) / $IDLE_N")"
}
hold ehlo
hold msg

stop "$SINK_PID"
T_END=$(now)

# ==== the report ====================================================================
fmt_load() {
	case $1 in
	1k-conn) echo "1 KB, new connection" ;;
	1k-reuse) echo "1 KB, reused connections" ;;
	100k-conn) echo "100 KB, new connection" ;;
	100k-reuse) echo "100 KB, reused connections" ;;
	esac
}
verdict() { awk "BEGIN { exit !($1) }" </dev/null && echo met || echo "not met"; }

report() {
	local l name opts len n p key d mbs ratio size
	echo "# Benchmark results"
	echo
	echo "Generated by \`make bench\` (bench/run.sh); see docs/performance.md for what"
	echo "each number means and how to reproduce it."
	echo
	echo "- date: $DATE"
	echo "- machine: $CORES cores, $CPU_MODEL; Linux $(uname -r)"
	echo "- revision: $REV; Postfix smtp-source/smtp-sink $POSTFIX_V"
	echo "- proxy: log_level info to a file, default workers ($DEFAULT_WORKERS)"
	echo "- $SESSIONS parallel sessions, $REPS runs per row, median shown (all runs in the last column)"
	[ "$SCALE" != 1 ] && echo "- **BENCH_SCALE=$SCALE: message counts divided by $SCALE**"
	echo "- load average before the start: $LOADAVG (other work on the machine makes every number noisy)"
	echo "- wall time: $(calc "int($T_END - $T_START)") s"
	echo
	echo "## Throughput"
	echo
	echo "| load | path | msg/s | MB/s | × direct | proxy peak RSS | proxy CPU s / 1000 msg | all CPU s / 1000 msg | × direct by CPU | runs (msg/s) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	for l in "${LOADS[@]}"; do
		IFS='|' read -r name opts len n <<<"$l"
		size=${SIZE[$name]:-$len}
		d=${RATE[$name/direct]}
		for p in "${PATHS[@]}"; do
			key=$name/$p
			mbs=$(calc "${RATE[$key]} * $size / 1048576")
			ratio=$(calc "${RATE[$key]} / $d")
			printf '| %s | %s | %.0f | %.1f | %.2f | %s | %s | %s | %s | %s |\n' \
			    "$(fmt_load "$name")" "$p" "${RATE[$key]}" "$mbs" "$ratio" \
			    "$([ "${HWM[$key]}" = - ] && echo - || calc "${HWM[$key]} / 1024" | xargs printf '%.1f MB')" \
			    "$([ "${CPU[$key]}" = - ] && echo - || printf '%.3f' "${CPU[$key]}")" \
			    "$([ "${ALL[$key]}" = - ] && echo - || printf '%.3f' "${ALL[$key]}")" \
			    "$([ "${ALL[$key]}" = - ] && echo - || calc "${ALL[$name/direct]} / ${ALL[$key]}" | xargs printf '%.2f')" \
			    "${RATES[$key]% }"
		done
	done
	echo
	echo "MB/s counts whole messages (headers and body, ${SIZE[1k-conn]:-?} and ${SIZE[100k-conn]:-?} octets) in units of 2^20 octets."
	echo "\"All CPU\" adds smtp-source's and smtp-sink's CPU time to the proxy's; \"× direct by CPU\""
	echo "is the direct path's all-CPU cost over this path's: the ratio to expect when the cores"
	echo "are the limit, and far less sensitive than msg/s to other work on the machine."
	echo
	echo "## Scaling (1 KB, new connection per message)"
	echo
	if [ "$WORKERS_OK" = 1 ]; then
		echo "| path | workers | msg/s | × direct | × 1 worker | proxy CPU s / 1000 msg | runs (msg/s) |"
		echo "|---|---:|---:|---:|---:|---:|---|"
		printf '| direct | - | %.0f | 1.00 | - | - | %s |\n' "${RATE[w/direct]}" "${RATES[w/direct]% }"
		for p in proxy policies; do
			for w in 1 2; do
				key=w$w/$p
				printf '| %s | %d | %.0f | %.2f | %.2f | %.3f | %s |\n' "$p" "$w" \
				    "${RATE[$key]}" "$(calc "${RATE[$key]} / ${RATE[w/direct]}")" \
				    "$(calc "${RATE[$key]} / ${RATE[w1/$p]}")" "${CPU[$key]}" "${RATES[$key]% }"
			done
		done
	else
		echo "workers: not supported yet (\`mailprevent --check\` refuses the key)."
	fi
	echo
	echo "## Latency added by the proxy"
	echo
	echo "$LAT_RATE msg/s (half the proxy path's saturated 1 KB new-connection rate), a new"
	echo "connection per 1 KB message; $REPS runs of ${LAT_SECONDS} s per path, interleaved (the first"
	echo "tenth of each not counted). Latency: from writing the final dot to reading the 250,"
	echo "at the client. Median of the runs' medians and of their p99s."
	echo
	echo "| path | median | p99 | added median | added p99 | p99 of each run | samples / errors |"
	echo "|---|---:|---:|---:|---:|---|---|"
	for p in "${PATHS[@]}"; do
		printf '| %s | %.2f ms | %.2f ms | %s | %s | %s | %s / %s |\n' "$p" \
		    "$(calc "${LAT_MED[$p]} / 1000")" "$(calc "${LAT_P99[$p]} / 1000")" \
		    "$([ $p = direct ] && echo - || calc "(${LAT_MED[$p]} - ${LAT_MED[direct]}) / 1000" | xargs printf '%.2f ms')" \
		    "$([ $p = direct ] && echo - || calc "(${LAT_P99[$p]} - ${LAT_P99[direct]}) / 1000" | xargs printf '%.2f ms')" \
		    "$(for v in ${LAT_P99S[$p]}; do printf '%.2f ' "$(calc "$v / 1000")"; done | sed 's/ $//')" \
		    "${LAT_N[$p]}" "${LAT_ERR[$p]}"
	done
	echo
	echo "## Concurrency: $IDLE_N idle sessions"
	echo
	echo "| idle sessions held after | proxy RSS idle | RSS with $IDLE_N | per session |"
	echo "|---|---:|---:|---:|"
	printf '| EHLO (no next-hop connection) | %.1f MB | %.1f MB | %.1f KB |\n' \
	    "$(calc "${IDLE_BASE[ehlo]} / 1024")" "$(calc "${IDLE_HELD[ehlo]} / 1024")" \
	    "$(calc "(${IDLE_HELD[ehlo]} - ${IDLE_BASE[ehlo]}) / $IDLE_N")"
	printf '| one 1 KB message (next-hop connection kept) | %.1f MB | %.1f MB | %.1f KB |\n' \
	    "$(calc "${IDLE_BASE[msg]} / 1024")" "$(calc "${IDLE_HELD[msg]} / 1024")" \
	    "$(calc "(${IDLE_HELD[msg]} - ${IDLE_BASE[msg]}) / $IDLE_N")"
	echo
	echo "## Detection (one core)"
	echo
	if [ -s "$W/detect.txt" ]; then
		echo '```'
		cat "$W/detect.txt"
		echo '```'
	else
		echo "(not run: no C benchmarks were given to bench/run.sh)"
	fi
	echo
	echo "## Targets (issue 7)"
	echo
	echo "Judged on the measured msg/s ratio; the CPU-cost ratio is given beside it."
	echo
	echo "| target | measured | by CPU | |"
	echo "|---|---:|---:|---|"
	ratio_row() {	# label, load, path, threshold
		local r c=-
		r=$(calc "${RATE[$2/$3]} / ${RATE[$2/direct]}")
		[ "${ALL[$2/$3]}" != - ] && c=$(calc "${ALL[$2/direct]} / ${ALL[$2/$3]}" | xargs printf '%.2f')
		printf '| %s ≥ %s × direct, %s | %.2f | %s | %s |\n' "$1" "$4" \
		    "$(fmt_load "$2")" "$r" "$c" "$(verdict "$r >= $4")"
	}
	ratio_row proxy 1k-conn proxy 0.6
	for name in 1k-reuse 100k-conn 100k-reuse; do
		ratio_row proxy "$name" proxy 0.5
	done
	for name in 1k-conn 1k-reuse; do
		ratio_row policies "$name" policies 0.5
	done
	if [ -n "$POLICY_MBS" ]; then
		printf '| shipped policy set ≥ 300 MB/s on one core | %s MB/s | | %s |\n' "$POLICY_MBS" "$(verdict "$POLICY_MBS >= 300")"
	fi
	r=$(calc "(${LAT_P99[proxy]} - ${LAT_P99[direct]}) / 1000")
	printf '| added p99 < 5 ms at half the saturated rate | %.2f ms | | %s |\n' "$r" "$(verdict "$r < 5")"
	r=$(calc "(${IDLE_HELD[ehlo]} - ${IDLE_BASE[ehlo]}) / $IDLE_N")
	printf '| idle session ≤ 32 KB | %.1f KB | | %s |\n' "$r" "$(verdict "$r <= 32")"
	if [ "$WORKERS_OK" = 1 ]; then
		r=$(calc "${RATE[w2/proxy]} / ${RATE[w1/proxy]}")
		printf '| msg/s from 1 to 2 workers, proxy path (shown; no threshold) | × %.2f | | shown |\n' "$r"
	else
		echo "| msg/s from 1 to 2 workers | workers: not supported yet | | not shown |"
	fi
}

report >"$W/results.md" || die "writing the report failed"
echo
cat "$W/results.md"
cp "$W/results.md" "$RESULTS" && echo && echo "written to ${RESULTS#"$ROOT"/}"
exit 0
}
