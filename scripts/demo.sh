#!/usr/bin/env bash
# make demo: start an mta-sim sink and mailprevent with the shipped example
# configuration (its policies included), send clean mail and mail that sets
# off each kind of policy, and show what arrived and what was recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

work=$(mktemp -d /tmp/mailprevent-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# Wait (event-driven: blocking reads on a FIFO, 10 s deadline) for a line.
wait_line() {	# fd pattern what
	local line
	while IFS= read -r -t 10 line <&"$1"; do
		case "$line" in *"$2"*) return 0 ;; esac
	done
	echo "demo: $3 did not start (see $work)" >&2
	exit 1
}

# The shipped example, with its policy paths made absolute and an incident
# log in the demo's folder.
sed -e "s|\"\\.\\./lua/policies/\\*\\.lua\"|\"$top/lua/policies/*.lua\"|" \
    -e "s|^incident_log: \"\"|incident_log: \"$work/incidents.jsonl\"|" \
    proxy/mailprevent.example.yaml >"$work/mailprevent.yaml"

mkfifo "$work/sink.fifo" "$work/proxy.fifo"
bin/mta-sim sink --listen 127.0.0.1:2525 --dir "$work/sink" \
	>"$work/sink.fifo" 2>"$work/sink.log" &
pids+=($!)
exec 3<"$work/sink.fifo"
wait_line 3 "listening" "the mta-sim sink on 127.0.0.1:2525"

bin/mailprevent -c "$work/mailprevent.yaml" 2>"$work/proxy.fifo" &
pids+=($!)
exec 4<"$work/proxy.fifo"
wait_line 4 "event=listening" "mailprevent on 127.0.0.1:10025"
cat <&4 >"$work/proxy.log" &
pids+=($!)

echo "== mailprevent (forward mode, proxy/mailprevent.example.yaml) on 127.0.0.1:10025"
echo "   next hop: an mta-sim sink on 127.0.0.1:2525; work folder: $work"
echo
echo "== 1. clean mail: 5 messages over 2 sessions"
bin/mta-sim send --to 127.0.0.1:10025 --from alice@example.com \
	--rcpt bob@example.net --rcpt carol@example.org \
	--count 5 --sessions 2 --subject "Quarterly numbers" --quiet

msg() {	# name subject body
	printf 'From: alice@example.com\nTo: bob@example.net\nSubject: %s\nMessage-ID: <%s@demo.example>\n\n%s\n' \
		"$2" "$1" "$3" >"$work/$1.txt"
}
msg card "Order" "Please charge my card 4111 1111 1111 1111, thanks."
msg confidential "Confidential: board minutes" "Draft minutes attached."
msg iban "Supplier payment" "Pay to DE89 3704 0044 0532 0130 00 by Friday."
msg ssn "New hire" "Her SSN is 536-22-8147."

echo
echo "== 2. mail that sets off the example policies (reply to the final dot):"
for m in card confidential iban ssn; do
	printf '   %-13s ' "$m:"
	bin/mta-sim send --to 127.0.0.1:10025 --from alice@example.com \
		--rcpt bob@example.net --data "$work/$m.txt" |
		grep 'cmd=DOT' | sed 's/.*code=/code=/' || true
done

# Let the proxy finish (notifications go out after the message's reply).
kill -TERM "${pids[1]}"
wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true

echo
echo "== what arrived at the sink: envelope recipients and the first headers"
for env in "$work"/sink/msg-*.env; do
	eml=${env%.env}.eml
	rcpts=$(sed -n 's/^rcpt <\(.*\)>.*/\1/p' "$env" | paste -sd, -)
	subj=$(grep -m1 -i '^Subject:' "$eml" | tr -d '\r' || true)
	tags=$(grep -i '^X-CFilter:\|^Auto-Submitted:' "$eml" | tr -d '\r' | paste -sd' ' - || true)
	printf '   %s  to=%s  %s %s\n' "${eml##*/}" "$rcpts" "$subj" "$tags"
done
echo
echo "== incidents ($work/incidents.jsonl):"
sed 's/^/   /' "$work/incidents.jsonl" 2>/dev/null || echo "   (none)"
echo
echo "== proxy log, one line per message handed on, blocked or redirected:"
grep -E 'event=(relayed|refused|blocked|redirect|notify-sent)' "$work/proxy.log" |
	sed -e 's/^[^ ]* //' -e 's/^/   /' || true
echo
echo "Done. Logs, messages and incidents are in $work"
