#!/usr/bin/env bash
# make demo, in two parts.
#
# 1. The proxy at work: an mta-sim sink and mailprevent with the shipped
#    example configuration (forward mode, every example policy). Clean mail
#    and mail that sets off each kind of policy go through it; then what
#    arrived and the incidents it recorded.
# 2. The integration checks: the scenario suites in scenarios/ (the guide's
#    functional, failover, loop and security checks for the four
#    reflecting-mode architectures and for forwarding mode), printed as a
#    checklist, then a short summary of what they showed.
#
# Exit status: non-zero only when a check failed (or part 1 broke).
# Findings are expected: they are what the reader must know, not failures.
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

# Read lines from fd $1 into file $4 until one contains $2 (event-driven:
# blocking reads on a FIFO, 10 s deadline for each line).
wait_line() {	# fd pattern what logfile
	local line
	while IFS= read -r -t 10 line <&"$1"; do
		printf '%s\n' "$line" >>"$4"
		case "$line" in *"$2"*) return 0 ;; esac
	done
	echo "demo: no \"$2\" from $3 (see $work)" >&2
	exit 1
}

# ---- part 1: the proxy at work ------------------------------------------------

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
wait_line 3 "listening" "the mta-sim sink on 127.0.0.1:2525" "$work/sink.out"

bin/mailprevent -c "$work/mailprevent.yaml" 2>"$work/proxy.fifo" &
proxy=$!
pids+=($proxy)
exec 4<"$work/proxy.fifo"
wait_line 4 "event=listening" "mailprevent on 127.0.0.1:10025" "$work/proxy.log"

echo "== Part 1: mailprevent at work"
echo "   forward mode (proxy/mailprevent.example.yaml) on 127.0.0.1:10025, every example"
echo "   policy loaded; next hop: an mta-sim sink on 127.0.0.1:2525"
echo
echo "-- clean mail: 3 messages in one session"
bin/mta-sim send --to 127.0.0.1:10025 --from alice@example.com \
	--rcpt bob@example.net --count 3 --subject "Quarterly numbers" --quiet |
	sed 's/^/   /'

msg() {	# name subject body
	printf 'From: alice@example.com\nTo: bob@example.net\nSubject: %s\nMessage-ID: <%s@demo.example>\n\n%s\n' \
		"$2" "$1" "$3" >"$work/$1.txt"
}
msg card "Order" "Please charge my card 4111 1111 1111 1111, thanks."
msg confidential "Confidential: board minutes" "Draft minutes attached."
msg iban "Supplier payment" "Pay to DE89 3704 0044 0532 0130 00 by Friday."
msg ssn "New hire" "Her SSN is 536-22-8147."

echo
echo "-- mail that sets off an example policy: the proxy's reply to the final dot"
for m in card confidential iban ssn; do
	printf '   %-13s ' "$m:"
	bin/mta-sim send --to 127.0.0.1:10025 --from alice@example.com \
		--rcpt bob@example.net --data "$work/$m.txt" |
		grep 'cmd=DOT' | sed 's/.*code=/code=/' || true
done

# The notification goes out after the SSN message's reply: wait for it,
# then stop the proxy so that its files are complete.
wait_line 4 "event=notify-sent" "mailprevent's notification" "$work/proxy.log"
kill -TERM "$proxy"
cat <&4 >>"$work/proxy.log"
wait "$proxy" || true

echo
echo "-- what arrived at the next hop"
for env in "$work"/sink/msg-*.env; do
	eml=${env%.env}.eml
	rcpts=$(sed -n 's/^rcpt <\(.*\)>.*/\1/p' "$env" | paste -sd, -)
	subj=$(grep -m1 -i '^Subject:' "$eml" | tr -d '\r' | cut -c10- || true)
	tags=$(grep -i '^X-CFilter:\|^Auto-Submitted:' "$eml" | tr -d '\r' | paste -sd' ' - || true)
	printf '   %-45s %-30s %s\n' "to=$rcpts" "\"$subj\"" "$tags"
done
echo
echo "-- incidents recorded ($work/incidents.jsonl)"
if [ -s "$work/incidents.jsonl" ]; then
	sed -E -e 's/.*"message_id":"<([^@"]*)@[^"]*".*"policies":\[\{"name":"([^"]*)"([^]]*)\].*"action":"([a-z]*)".*/\1|\4|\2|\3/' \
	       -e 's/\|[^|]*"sample":"([^"]*)".*$/|\1/' -e 's/\|,"matches":[0-9]*\}$/|/' \
	    "$work/incidents.jsonl" |
	awk -F'|' '{ printf "   %-13s %-9s %-28s %s\n", $1 ":", $2, $3, ($4 != "" ? "sample " $4 : "") }'
else
	echo "   (none)"
fi
echo "   (logs, messages and incidents stay in $work)"

# ---- part 2: the integration checks ----------------------------------------------

echo
echo "== Part 2: the integration checks (bin/mta-sim run --format checklist scenarios/*.lua)"
echo "   each line is one check of the integration guide, run on loopback against a real"
echo "   bin/mailprevent and the simulated Prevent-integrated MTA"
echo

# The guide's order: most secure architecture first, then loops and
# forwarding; any other suite after them.
files=()
for f in listener client_ip helo header loop forwarding; do
	[ -f "scenarios/$f.lua" ] && files+=("scenarios/$f.lua")
done
for f in scenarios/*.lua; do
	case " ${files[*]} " in *" $f "*) ;; *) files+=("$f") ;; esac
done

status=0
bin/mta-sim run --format checklist "${files[@]}" | tee "$work/checklist.txt" ||
	status=$?

# The table is the block from the STATUS header to the first empty line;
# its columns are fixed (mta-sim's checklist format).
awk '
/^STATUS +CHECK/ { table = 1; next }
table && /^$/    { exit }
table {
	st = $1; check = substr($0, 10, 34); arch = substr($0, 45, 10)
	sub(/ +$/, "", check); sub(/ +$/, "", arch)
	kind = check ~ /^Security/ ? "security" : check ~ /^Loop/ ? "loop" : \
	    check ~ /^Basic failover/ ? "failover" : \
	    check ~ /^(No policy|Block SMTP|Send email|Modify SMTP|Forwarding)/ ? \
	    "functional" : "other"
	if (!(arch in seen)) { seen[arch] = 1; order[++n] = arch }
	total[arch, kind]++
	if (st == "PASS" || st == "FINDING") ok[arch, kind]++
	if (st == "FAIL") { failed[arch] = failed[arch] "\n      FAILED: " check; nfail++ }
	if (kind == "security") {
		what = check; sub(/^Security: */, "", what)
		if (st == "FINDING") bypass[arch] = bypass[arch] (bypass[arch] ? ", " : "") what
		else if (st == "PASS") held[arch] = held[arch] (held[arch] ? ", " : "") what
	}
	if (kind == "loop" && st == "FINDING") loopf++
}
function part(arch, kind,   s) {
	if (!total[arch, kind]) return ""
	return sprintf("%s %d/%d  ", kind, ok[arch, kind], total[arch, kind])
}
END {
	print ""
	print "== What this showed"
	print "   Per architecture: checks that held (passed or passed with a finding) of those run."
	for (i = 1; i <= n; i++) {
		a = order[i]
		printf "   %-11s %s%s%s%s%s%s\n", a, part(a, "functional"), part(a, "failover"),
		    part(a, "loop"), part(a, "security"), part(a, "other"), failed[a]
		if (bypass[a] != "") printf "      bypassed by: %s\n", bypass[a]
		if (held[a] != "") printf "      not fooled by: %s\n", held[a]
	}
	print ""
	print "   - Functional (guide chapter 5): clean mail delivered once and only once (one"
	print "     pass through the proxy, two through the MTA); a card number refused, with an NDR"
	print "     quoting the policy to the sender; an IBAN to the review address only; an SSN"
	print "     notifying security and the sender; \"confidential\" tagged X-CFilter: Encrypt and"
	print "     routed to the encryption hop; an .exe quarantined with a changed subject."
	print "   - Failover: with a bypass route mail keeps flowing while the proxy is down, and"
	print "     goes through it again once it is back; with block on failure it waits."
	print "   - Security ranking (listener > client IP > HELO > header): \"bypassed by\" is what"
	print "     got a card number past the proxy. Header routing falls to any mail client that"
	print "     adds the pass header, HELO routing to any SMTP client that says the proxy'\''s"
	print "     name; listener and client-IP routing need network access the sender lacks."
	if (loopf) {
		print "   - The loop findings show what breaks without the sender exceptions the guide"
		print "     asks for: <> (the MTA'\''s NDRs) and every redirect address."
	}
	print ""
	if (nfail)
		printf "   %d check(s) FAILED: see the details under the table.\n", nfail
	else
		print "   Every check held. Findings are expected: read them above."
}' "$work/checklist.txt"

exit "$status"
