#!/usr/bin/env bash
# make demo: start an mta-sim sink and mailprevent with the shipped example
# configuration, send a few messages through, and show what arrived.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=proxy/mailprevent.example.yaml
work=$(mktemp -d /tmp/mailprevent-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# Wait (event-driven: blocking reads on a FIFO, 10 s deadline) for a line.
wait_line() {	# fifo pattern what
	local line
	while IFS= read -r -t 10 line <&"$1"; do
		case "$line" in *"$2"*) return 0 ;; esac
	done
	echo "demo: $3 did not start (see $work)" >&2
	exit 1
}

mkfifo "$work/sink.fifo" "$work/proxy.fifo"

bin/mta-sim sink --listen 127.0.0.1:2525 --dir "$work/sink" \
	>"$work/sink.fifo" 2>"$work/sink.log" &
pids+=($!)
exec 3<"$work/sink.fifo"
wait_line 3 "listening" "the mta-sim sink on 127.0.0.1:2525"

bin/mailprevent -c "$CONFIG" 2>"$work/proxy.fifo" &
pids+=($!)
exec 4<"$work/proxy.fifo"
wait_line 4 "event=listening" "mailprevent on 127.0.0.1:10025"
# Keep draining the proxy's log into a file for the summary below.
cat <&4 >"$work/proxy.log" &
pids+=($!)

echo "== mailprevent (forward mode, $CONFIG) listening on 127.0.0.1:10025; sink on 127.0.0.1:2525"
echo "== sending 5 messages over 2 sessions"
bin/mta-sim send --to 127.0.0.1:10025 --from alice@example.com \
	--rcpt bob@example.net --rcpt carol@example.org \
	--count 5 --sessions 2 --subject "Quarterly numbers" --quiet
echo
echo "== what arrived at the sink ($work/sink):"
ls "$work/sink" | grep -E '\.(eml|env)$' | sed 's/^/   /'
first=$(ls "$work/sink"/msg-*.eml | head -n 1)
echo
echo "== envelope of ${first##*/} (as the next hop saw it):"
sed 's/^/   /' "${first%.eml}.env"
echo
echo "== headers of ${first##*/} (note the pass header on top):"
sed -n '1,/^\r\{0,1\}$/p' "$first" | sed 's/^/   /'
echo
echo "== proxy log, one line per relayed message:"
kill -TERM "${pids[1]}"
wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
grep -E 'event=(relayed|refused)' "$work/proxy.log" | sed 's/^/   /' || true
echo
echo "Done. Logs and messages are in $work"
