#!/usr/bin/env bash
# Run Check test binaries; print one summary line that CI can read.
set -u
pass=0; fail=0
for t in "$@"; do
	if out=$("$t" 2>&1); then
		pass=$((pass + 1))
		printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks' | sed "s|^|$(basename "$t"): |"
	else
		fail=$((fail + 1))
		printf '%s\n' "$out"
		echo "FAILED: $t"
	fi
done
echo "$(basename "$(dirname "${1:-x}")"): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
