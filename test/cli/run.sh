#!/bin/sh
# The cai command and libcai (make -f core.mk check-cli): test_cli (every
# command against the core API, on tiny models of every architecture), then
# the shared library's exports.  Prints "cli: N passed, N failed".
BUILD=${1:-build}
work=$(mktemp -d "${TMPDIR:-/tmp}/cai-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
passed=0; failed=0

out=$("$BUILD/test/test_cli" "$BUILD" "$work" 2>&1); rc=$?
printf '%s\n' "$out" | grep -v '^  line' | tail -n 40
line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
if [ -z "$line" ]; then
	echo "test_cli: crashed or printed no summary (exit $rc)"; failed=$((failed + 1))
else
	passed=$((passed + $(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
fi

# libcai.so exports exactly names of the public headers (include/cai/*.h)
cat include/cai/*.h | grep -oE '[A-Za-z_][A-Za-z0-9_]*' | sort -u > "$work/ids"
nm -D --defined-only "$BUILD/libcai.so" | awk 'NF == 3 && $3 != "CAI_0" { sub(/@.*/, "", $3); print $3 }' | sort -u > "$work/exports"
extra=$(comm -23 "$work/exports" "$work/ids")
if [ -n "$extra" ]; then echo "FAIL libcai.so exports names not in include/cai: $extra"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
for sym in cai_model_load cai_model_classify_batch cai_model_entities_batch cai_task_parse_options cai_arch_train \
	cai_classification_report cai_conll_eval cai_format_read; do
	if grep -qx "$sym" "$work/exports"; then passed=$((passed + 1)); else echo "FAIL libcai.so does not export $sym"; failed=$((failed + 1)); fi
done
for sym in cai_json_put cai_trainer_put_provenance; do	# internal helpers (modelutil.h, trainer.h)
	if grep -qx "$sym" "$work/exports"; then echo "FAIL libcai.so exports internal $sym"; failed=$((failed + 1)); else passed=$((passed + 1)); fi
done

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
