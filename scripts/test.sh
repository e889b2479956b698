#!/usr/bin/env bash
# test.sh: every test of cai_synergy, from a built and installed tree
# (scripts/setup.sh does both):
#   1. core unit tests (no server), the cai command, the helper scripts,
#      then the unit tests again under ASan + UBSan
#   2. libFuzzer targets, FUZZ_SECONDS each (default 40; 0 skips)
#   3. pg_regress (test/sql, expected/), pgTAP (test/pgtap, pg_prove) and
#      scripts/get-vectors.sh (test/scripts/get_vectors.sh)
#      against a throwaway cluster this script starts and stops.
# Ends with one line "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
# a development target: warnings are errors (WERROR=0 to run the tests anyway)
export WERROR=${WERROR:-1}
FUZZ_SECONDS=${FUZZ_SECONDS:-40}
passed=0
failed=0
log=$(mktemp -d /tmp/cai_test.XXXXXX)

count() {	# count PASSED FAILED
	passed=$((passed + $1)); failed=$((failed + $2))
}

stage() { echo; echo "=== $*"; }

# count_summary NAME FILE: add the last "NAME: N passed, N failed" line of
# FILE; no such line (a crash, a build error) counts as one failure
count_summary() {
	local line
	line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -n 1)
	if [ -n "$line" ]; then count "$(echo "$line" | awk '{print $2}')" "$(echo "$line" | awk '{print $4}')"; else count 0 1; fi
}

# 1. unit tests
stage "core unit tests"
if make -s -f core.mk check 2>&1 | tee "$log/unit.out"; then :; fi
count_summary unit "$log/unit.out"

# the bench tools build against the current core (they are run by bench/*.sh, not here)
if make -s -f core.mk bench >"$log/bench-build.out" 2>&1; then count 1 0; else cat "$log/bench-build.out"; count 0 1; fi

# the cai command and libcai against the core API (test/cli)
stage "cai command and libcai"
if make -s -f core.mk check-cli 2>&1 | tee "$log/cli.out"; then :; fi
count_summary cli "$log/cli.out"

# the scripts' converter of the GloVe package (scripts/get-vectors.sh), on generated inputs
stage "helper scripts"
if test/scripts/glove_to_copy.sh 2>&1 | tee "$log/scripts.out"; then :; fi
count_summary scripts "$log/scripts.out"

stage "core unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if make -s -f core.mk check-asan 2>&1 | tee "$log/asan.out"; then :; fi
count_summary unit "$log/asan.out"

# 2. fuzzers
if [ "$FUZZ_SECONDS" -gt 0 ]; then
	stage "fuzzers ($FUZZ_SECONDS s each)"
	if make -s -f core.mk fuzz FUZZ_SECONDS="$FUZZ_SECONDS" 2>&1 | tee "$log/fuzz.out"; then count 1 0; else count 0 1; fi
fi

# 3. server tests on a throwaway cluster
stage "server tests"
eval "$(scripts/pgcluster.sh start)" || { echo "could not start a test cluster"; echo "tests: $passed passed, $((failed + 1)) failed"; exit 1; }
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"' EXIT
echo "cluster: socket $PGHOST port $PGPORT user $PGUSER"

# crafted corrupt models for test/sql/bad_models.sql, readable by the server
make -s -f core.mk build/make_bad_models
export CAI_BAD_MODELS="$CAI_PGDATA/bad_models"
mkdir -p "$CAI_BAD_MODELS" && build/make_bad_models "$CAI_BAD_MODELS" >/dev/null
chmod -R a+rX "$CAI_BAD_MODELS"
# models written by release 0.1.0 for test/sql/upgrade.sql, readable by the server
export CAI_FIXTURES_DIR="$CAI_PGDATA/fixtures"
cp -r test/fixtures/0.1.0 "$CAI_FIXTURES_DIR" && chmod -R a+rX "$CAI_FIXTURES_DIR"

make -s installcheck PG_CONFIG="$PG_CONFIG" 2>&1 | tee "$log/regress.out"
ok=$(grep -cE '\.\.\. ok' "$log/regress.out")
bad=$(grep -cE '\.\.\. FAILED' "$log/regress.out")
grep -qE 'tests? passed|tests? failed' "$log/regress.out" || bad=$((bad + 1))
count "$ok" "$bad"
[ -f regression.diffs ] && [ "$bad" -gt 0 ] && head -n 200 regression.diffs

psql -q -X -d postgres -c "CREATE DATABASE cai_tap" >/dev/null
psql -q -X -d cai_tap -c "CREATE EXTENSION pgtap; CREATE EXTENSION cai_synergy;" >/dev/null
pg_prove -d cai_tap test/pgtap/*.sql 2>&1 | tee "$log/pgtap.out"
tap_total=$(grep -oE 'Tests=[0-9]+' "$log/pgtap.out" | tail -n 1 | cut -d= -f2)
tap_failed=$(grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$log/pgtap.out" | awk -F'[ /]' '{s += $2} END {print s + 0}')
if grep -q '^Result: PASS' "$log/pgtap.out"; then
	count "${tap_total:-0}" 0
else
	count $(( ${tap_total:-0} - tap_failed )) $(( tap_failed > 0 ? tap_failed : 1 ))
fi

# scripts/get-vectors.sh end to end on generated stand-in packages (nothing downloaded)
PGDATABASE=cai_tap test/scripts/get_vectors.sh 2>&1 | tee "$log/getvec.out"
count_summary get-vectors "$log/getvec.out"

# 4. faults, load and replication (each starts its own clusters; FAULTS=... chooses, FAULTS=none skips)
if [ "${FAULTS:-all}" != "none" ]; then
	stage "fault, load and replication tests"
	[ "${FAULTS:-all}" = "all" ] && unset FAULTS
	RESULTS= LOAD_SECONDS=${LOAD_SECONDS:-20} test/faults/run.sh 2>&1 | tee "$log/faults.out"
	count_summary faults "$log/faults.out"
fi

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
