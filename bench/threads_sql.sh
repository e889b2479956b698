#!/usr/bin/env bash
# threads_sql.sh: fast text classification through SQL with 1 and 2 threads
# against `fasttext supervised -thread 2`, side by side in one run (issue 11:
# 2 threads at least 1.7x one thread; no more time than fastText's 2 threads).
#
#   bench/threads_sql.sh        ROUNDS=3 SST_REPEAT=17 EPOCHS=5 WARMUP=1
#
# A throwaway cluster with the installed extension; SST-2's training sentences
# repeated SST_REPEAT times with the copy number appended (1,030,438 rows, as
# bench/read_rate.sh).  Each round, one after another: the whole statement
# `cai_train` (fast, EPOCHS epochs, no validation split: reading, features,
# training, storing) with threads 1, then with threads 2 (cai.threads = 2),
# then fastText (`-epoch EPOCHS -wordNgrams 2 -thread 2`, the whole process,
# reading its file included) on the same rows exported once, shuffled (fastText
# trains in file order, as its documentation says to shuffle first; the
# table holds each sentence's copies next to each other, which keeps its rows
# in cache and makes it about 1.6x faster than on shuffled rows).  Medians of
# the wall times; writes bench/results-threads-sql.md (BENCH_OUT to change).
# Also the medians of the epochs' own rates (each epoch's NOTICE): the
# statement adds a serial part (reading, features, scoring, storing) that
# two threads do not shorten, and the epoch rates show which part moved;
# and the statement in parts (medians): reading (the model's metrics
# read_seconds), the epochs (its metrics seconds) and the rest.
# With WARMUP=1 (the default) an untimed one-epoch training runs first: a
# fresh cluster's first training (the table read from disk into the cache,
# the first worker) was every earlier run's slowest, 1 and 2 threads alike.
# Each timed run also records the hypervisor's steal share of the machine's
# CPU time (/proc/stat): on these shared 2-vCPU machines a run that loses a
# vCPU to another guest says nothing about 2 threads; and, just before it,
# a cache line's round trip between the two CPUs (build/bench/line_rtt,
# 20,000 round trips): the host moves the vCPUs, and the threads' shared
# writes cost what that round trip costs (55 ns and 330 ns both seen).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/threads_sql.sh CAI_DATA_DIR ROUNDS SST_REPEAT EPOCHS WARMUP BENCH_OUT
bench_cd_repo
ROUNDS=${ROUNDS:-3}
SST_REPEAT=${SST_REPEAT:-17}
EPOCHS=${EPOCHS:-5}
WARMUP=${WARMUP:-1}
OUT=${BENCH_OUT:-bench/results-threads-sql.md}
SST="$(bench_dataset threads_sql.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
bench_need_fasttext threads_sql.sh
make -s -f core.mk build/bench/line_rtt
bench_start_results threads
bench_cluster_start
bench_load_sst ""
"${PSQL[@]}" <<SQL
SET client_min_messages = warning;
CREATE TABLE big AS SELECT sentence || ' ' || g AS text, label FROM train, generate_series(1, $SST_REPEAT) g;
VACUUM ANALYZE big;
SQL
put rows "$("${PSQL[@]}" -c "SELECT count(*) FROM big")"
"${PSQL[@]}" -c "SELECT setseed(0.5)" -c "COPY (SELECT '__label__' || label || ' ' || text FROM big ORDER BY random()) TO STDOUT" >"$TMP/big.ft"

train_seconds() {	# train_seconds THREADS [EPOCHS]: wall seconds of the whole cai_train statement
	local t0
	t0=$(now)
	# the per-epoch NOTICEs ("epoch 1/5: ..., 300000 rows/s") kept for the epoch rates below
	# and its metrics' read_seconds and seconds (the epochs) kept for the breakdown below
	PGOPTIONS="-c cai.threads=2" "${PSQL[@]}" -At -c "SET client_min_messages = notice" \
		-c "SELECT metrics->>'read_seconds', metrics->>'seconds' FROM cai_train('f$1', 'sentiment', 'big', options => '{\"architecture\": \"fast\", \"epochs\": ${2:-$EPOCHS}, \"validation_fraction\": 0, \"threads\": $1}')" \
		2>>"$TMP/notices_$1" | grep '|' >>"$TMP/parts_$1"
	elapsed "$t0" "$(now)"
	"${PSQL[@]}" -c "SELECT cai_drop_model('f$1')" >/dev/null
}
timed() {	# timed KEY COMMAND...: its wall seconds (the command's output), steal and the line round trip before into R
	local a b
	put "${1}_rtt" "$(build/bench/line_rtt 20000)"
	a=$(ticks)
	put "$1" "$("${@:2}")"
	b=$(ticks)
	put "${1}_steal" "$(steal "$a" "$b")"
}
fasttext_seconds() {
	local t0
	t0=$(now)
	fasttext supervised -input "$TMP/big.ft" -output "$TMP/ft" -epoch "$EPOCHS" -wordNgrams 2 -thread 2 -verbose 0 >/dev/null
	elapsed "$t0" "$(now)"
}
if [ "$WARMUP" = 1 ]; then
	log "warm-up: one untimed epoch"
	train_seconds 1 1 >/dev/null
	rm -f "$TMP/notices_1" "$TMP/parts_1"
fi
for r in $(seq "$ROUNDS"); do
	log "round $r of $ROUNDS"
	timed t1 train_seconds 1
	timed t2 train_seconds 2
	timed ft fasttext_seconds
done
put load_end "$(load)"

# mid [FORMAT]: the median of the numbers on stdin (nothing when there are none), printf FORMAT (default %s)
mid() { sort -n | awk -v f="${1:-%s}" '{ v[NR] = $1 } END { if (NR) printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
median() { awk -v k="$1" '$1 == k { print $2 }' "$R" | mid; }
all() { awk -v k="$1" '$1 == k { printf "%s%.1f", sep, $2; sep = " / " }' "$R"; }
all0() { awk -v k="$1" '$1 == k { printf "%s%.0f", sep, $2; sep = " / " }' "$R"; }
v() { awk -v k="$1" '$1 == k { sub(/^[^ ]* /, ""); print; exit }' "$R"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
t1=$(median t1); t2=$(median t2); ft=$(median ft)
# each training epoch's rate from its NOTICE: the epochs alone, without reading, features, scoring and storing
epoch_rates() { grep -o '[0-9]* rows/s' "$TMP/notices_$1" | awk '{ print $1 }' | sort -n; }
epoch_median() { epoch_rates "$1" | mid %.0f; }
epoch_range() { epoch_rates "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%d-%d (%d epochs)", lo, hi, NR }'; }
e1=$(epoch_median 1); e2=$(epoch_median 2)
# the statement's parts (medians): reading (metrics read_seconds), the epochs (metrics seconds), the rest
# (launching the worker, preparing the features, scoring, serializing, sending and storing the model)
part_median() { awk -F'|' -v c="$2" '{ print $c }' "$TMP/parts_$1" | mid %.2f; }
rest_median() { awk -v k="t$1" '$1 == k { print $2 }' "$R" | paste -d'|' "$TMP/parts_$1" - | awk -F'|' '{ print $3 - $1 - $2 }' | mid %.2f; }
{
	echo "# Fast training with threads through SQL, against fastText"
	echo
	echo "Generated $(v date) by:"
	echo
	echo "    $(v command)"
	echo
	echo "- CPU: $(v cpu), $(v nproc) vCPUs; commit $(v git); load average at the end $(v load_end)"
	echo "- rows: $(v rows) (SST-2 training sentences x $SST_REPEAT, the copy number appended); $EPOCHS epochs, no validation split"
	echo "- cai_train: the whole synchronous statement (rows read by the calling backend and streamed to the worker,"
	echo "  features, training, the model stored); fastText: the whole process (its file read), default features"
	echo "  (no character n-grams, 100 dimensions) against cai_train's (character 3- to 5-grams, 48 dimensions; 50 before session 18), on the"
	echo "  rows exported in a seeded random order (cai_train shuffles them itself every epoch)"
	echo
	echo "| | seconds (each round) | median | steal % (each round) | line round trip before, ns (each round) |"
	echo "|---|---|---:|---|---|"
	echo "| cai_train, threads 1 | $(all t1) | $t1 | $(all t1_steal) | $(all0 t1_rtt) |"
	echo "| cai_train, threads 2 | $(all t2) | $t2 | $(all t2_steal) | $(all0 t2_rtt) |"
	echo "| fasttext supervised -thread 2 | $(all ft) | $ft | $(all ft_steal) | $(all0 ft_rtt) |"
	echo
	echo "- warm-up: $([ "$WARMUP" = 1 ] && echo "one untimed 1-epoch training before the rounds" || echo none)"
	echo "- threads 2 against threads 1: **$(ratio "$t1" "$t2")x** (target 1.7)"
	echo "- the training epochs alone (rows/s of each epoch's NOTICE; median, range): threads 1 $e1, $(epoch_range 1);"
	echo "  threads 2 $e2, $(epoch_range 2): $(ratio "$e2" "$e1")x"
	echo "- the statement's parts, medians in seconds (reading: metrics read_seconds; epochs: metrics seconds; the rest:"
	echo "  each round's statement less both, i.e. launching, features, scoring, serializing, sending, storing):"
	echo "  threads 1 reading $(part_median 1 1), epochs $(part_median 1 2), rest $(rest_median 1);"
	echo "  threads 2 reading $(part_median 2 1), epochs $(part_median 2 2), rest $(rest_median 2)"
	echo "- cai_train threads 2 / fastText -thread 2 time: **$(ratio "$t2" "$ft")** (target at most 1)"
} | tee "$OUT"
