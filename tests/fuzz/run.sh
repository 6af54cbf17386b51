#!/usr/bin/env bash
# Run libFuzzer targets for a bounded time each (tests/fuzz/README.md).
#
#   tests/fuzz/run.sh [-f] SECONDS BUILD_DIR NAME...
#
# Each target starts from its seeds (tests/fuzz/corpus/NAME), copied to a
# work directory under BUILD_DIR so that nothing is written into the tree.
# Without -f the work corpus starts afresh from the seeds (smoke runs are
# alike every time); with -f it is kept and grows across runs.
# A crash, leak, timeout or broken invariant fails the run and the saved
# input is named, with the command that replays it.
set -u

fresh=1
if [ "${1:-}" = "-f" ]; then
	fresh=0
	shift
fi
if [ $# -lt 3 ]; then
	echo "usage: $0 [-f] SECONDS BUILD_DIR NAME..." >&2
	exit 2
fi
secs=$1
build=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)

# Longest input worth trying, per target: a little over each parser's own
# limits, so that "too long" paths are reached without slowing the run.
max_len() {
	case $1 in
	smtp_cmd)	echo 1100 ;;	# command lines: 512 octets, paths 256
	smtp_reply)	echo 8192 ;;	# reply lines: 2048 octets
	smtp_data)	echo 4096 ;;	# small limits are chosen by the input
	mime)		echo 16384 ;;
	config)		echo 8192 ;;
	message)	echo 8192 ;;
	session)	echo 8192 ;;	# a whole client conversation
	dns)		echo 1500 ;;	# one UDP answer
	*)		echo 4096 ;;
	esac
}

failed=()
for name in "$@"; do
	bin=$build/tests/fuzz/${name}_fuzz
	work=$build/fuzz-work/$name
	crashes=$build/fuzz-crashes/$name
	log=$work.log
	if [ ! -x "$bin" ]; then
		echo "fuzz: $name: $bin not built" >&2
		failed+=("$name")
		continue
	fi
	[ "$fresh" -eq 1 ] && rm -rf "$work"
	mkdir -p "$work" "$crashes"
	if [ -d "$src/corpus/$name" ]; then
		cp -R "$src/corpus/$name/." "$work/"
	fi
	dict=()
	[ -f "$src/$name.dict" ] && dict=("-dict=$src/$name.dict")
	start=$(date +%s)
	"$bin" -max_total_time="$secs" -max_len="$(max_len "$name")" \
	    -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$crashes/" "${dict[@]}" "$work" >"$log" 2>&1
	rc=$?
	took=$(( $(date +%s) - start ))
	stats=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
	cov=$(grep -E '^#[0-9]+.*(DONE|INITED).*cov:' "$log" | tail -n 1 |
	    sed -E 's/.*cov: ([0-9]+).*/\1/')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz: $name: ok in ${took}s, ${stats:-?} runs, cov ${cov:-?}," \
		    "corpus $(ls "$work" | wc -l) inputs"
		continue
	fi
	failed+=("$name")
	echo "fuzz: $name: FAILED (exit $rc) after ${took}s; from $log:"
	# The report from its first line, without libFuzzer's own frames and
	# the shadow-memory dump; the SUMMARY line always.
	awk '/invariant broken|ERROR: |runtime error/ { on = 1 }
	    /^SUMMARY: / && !seen[$0]++ { print; next }
	    !on || n >= 24 { next }
	    /^#[0-9]+ |^ *(=>)?0x[0-9a-f]+:|^Shadow|^  [A-Z][A-Za-z ]*: +[0-9a-f]/ { next }
	    /^stat::|^NOTE: |^ +Combine libFuzzer/ { next }
	    /in fuzzer::|__libc_start|in _start |in main |print_stack_trace/ { next }
	    /pthread_kill|in raise |in abort |libc\.so\.6\+|libstdc\+\+/ { next }
	    { print; n++ }' "$log" | sed 's/^/    /'
	artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 |
	    sed 's/Test unit written to //')
	if [ -n "$artifact" ]; then
		echo "fuzz: $name: input saved in $artifact"
		echo "fuzz: $name: replay with: $bin $artifact"
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz: $# targets, ${secs}s each: no crash"
