#!/bin/sh
# Run each unit test program and sum their "N passed, N failed" lines.
passed=0; failed=0; status=0
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$t: crashed or printed no summary (exit $rc)"; failed=$((failed + 1)); status=1; continue
	fi
	p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
	f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
	passed=$((passed + p)); failed=$((failed + f))
	[ "$rc" -ne 0 ] && status=1
done
echo "unit: $passed passed, $failed failed"
exit $status
