#!/usr/bin/env bash
# run.sh: every fault, load and replication test (each starts and removes its
# own throwaway cluster).  Ends with one line "faults: N passed, N failed".
#   FAULTS="kill_worker dump_restore"   choose tests (default: all)
#   FAULT_TIMEOUT=S                     per-test limit in seconds (default 300 + LOAD_SECONDS)
#   LOAD_SECONDS, KILL_ROUNDS, ...      passed on to the tests
set -uo pipefail
cd "$(dirname "$0")"
FAULTS=${FAULTS:-kill_worker interrupt dump_restore upgrade_history replica shared_files cli cron citus fdw load package}
FAULT_TIMEOUT=${FAULT_TIMEOUT:-$((300 + ${LOAD_SECONDS:-20}))}
passed=0
failed=0
summary=()
for t in $FAULTS; do
	t=${t%.sh}
	echo
	echo "=== $t"
	if [ ! -x "./$t.sh" ]; then
		echo "no such test: $t"
		failed=$((failed + 1)); summary+=("$t: missing"); continue
	fi
	out=$(mktemp /tmp/cai_faults.XXXXXX)
	start=$(date +%s)
	timeout -k 20 "$FAULT_TIMEOUT" "./$t.sh" 2>&1 | tee "$out"
	status=${PIPESTATUS[0]}
	[ "$status" -eq 124 ] && echo "$t: timed out after $FAULT_TIMEOUT s"
	line=$(grep -E "^$t: [0-9]+ passed, [0-9]+ failed\$" "$out" | tail -n 1)
	rm -f "$out"
	if [ -n "$line" ]; then
		p=$(awk '{print $2}' <<<"$line"); f=$(awk '{print $4}' <<<"$line")
		# a non-zero exit without a reported failure still counts as one
		[ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	else
		p=0; f=1
	fi
	passed=$((passed + p)); failed=$((failed + f))
	summary+=("$t: $p passed, $f failed ($(($(date +%s) - start)) s, exit $status)")
done
echo
printf '%s\n' "${summary[@]}"
echo "faults: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
