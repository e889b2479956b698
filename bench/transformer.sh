#!/usr/bin/env bash
#
# transformer.sh -- what fine-tuning the "transformer" architecture costs on this machine, through
# the cai command:
#
#   1. a random encoder (bench/make_encoder: BENCH_LAYERS [2] layers, hidden BENCH_HIDDEN [128],
#      2 heads, intermediate 4 x hidden, 128 positions, an 8,000-piece WordPiece vocabulary learned
#      from SST-2 train.tsv); no pretrained checkpoint is at hand, so the accuracy below is that of
#      an encoder that knows nothing yet: the figures are costs, not quality
#   2. `cai train sentiment` with --encoder on the first BENCH_ROWS [2000] rows of SST-2 train.tsv,
#      {"architecture": "transformer", "epochs": 3, "max_length": 64, "learning_rate": 5e-4} with
#      threads 2 and threads 1, BENCH_REPEATS [3] interleaved rounds: median wall time and peak RSS,
#      then the dev accuracy of the last model (cai evaluate)
#   3. for scale, the accurate architecture (its defaults, threads 2) on the same rows, once
#
# Writes BENCH_OUT (bench/results-transformer.md).
#
# Environment: CAI_DATA_DIR [../shared/data], BUILD [build-bench-transformer], BENCH_ROWS [2000],
#              BENCH_REPEATS [3], BENCH_LAYERS [2], BENCH_HIDDEN [128], BENCH_OUT, TMPDIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
BUILD=${BUILD:-build-bench-transformer}
ROWS=${BENCH_ROWS:-2000}
REPEATS=${BENCH_REPEATS:-3}
LAYERS=${BENCH_LAYERS:-2}
HIDDEN=${BENCH_HIDDEN:-128}
OUT=${BENCH_OUT:-bench/results-transformer.md}
DATA=${CAI_DATA_DIR:-../shared/data}
case "$DATA" in /*) ;; *) DATA="$REPO/$DATA" ;; esac
SST="$DATA/sentiment/sst2"
for f in train.tsv dev.tsv; do [ -f "$SST/$f" ] || { echo "missing $SST/$f" >&2; exit 1; }; done
T=$(mktemp -d "${TMPDIR:-/tmp}/cai-bench-transformer.XXXXXX")
trap 'rm -rf "$T"' EXIT

make -s -f core.mk BUILD="$BUILD" POOL_GUARD= cli "$BUILD/bench/make_encoder" > /dev/null
CAI="$REPO/$BUILD/cai"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

"$REPO/$BUILD/bench/make_encoder" "$SST/train.tsv" "$T/enc.cai" "$LAYERS" "$HIDDEN" 2 $((4 * HIDDEN)) 128 8000 42 \
	> "$T/enc.txt"
head -n $((ROWS + 1)) "$SST/train.tsv" > "$T/train.tsv"
OPTS='"architecture": "transformer", "epochs": 3, "max_length": 64, "learning_rate": 5e-4'

# one run: wall seconds and peak RSS (MB) on stdout
run() {
	/usr/bin/time -f '%e %M' -o "$T/time" "$CAI" train sentiment "$T/train.tsv" -o "$T/$1.cai" -q "${@:2}" \
		> "$T/$1.metrics"
	awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' "$T/time"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: > "$T/t2"
: > "$T/t1"
for r in $(seq "$REPEATS"); do
	run tf2 --encoder "$T/enc.cai" --options "{$OPTS, \"threads\": 2}" >> "$T/t2"
	run tf1 --encoder "$T/enc.cai" --options "{$OPTS, \"threads\": 1}" >> "$T/t1"
	echo "round $r: threads 2 $(tail -1 "$T/t2"), threads 1 $(tail -1 "$T/t1")" >&2
done
t2=$(cut -d' ' -f1 "$T/t2" | median)
t1=$(cut -d' ' -f1 "$T/t1" | median)
m2=$(cut -d' ' -f2 "$T/t2" | median)
m1=$(cut -d' ' -f2 "$T/t1" | median)
acc() { "$CAI" evaluate "$1" "$SST/dev.tsv" | sed -n 's/.*"accuracy": \([0-9.]*\).*/\1/p'; }
a2=$(acc "$T/tf2.cai")
a1=$(acc "$T/tf1.cai")
acc_run=$(run acc --options '{"architecture": "accurate", "threads": 2}')
aa=$(acc "$T/acc.cai")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ratio=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", a / b }')

{
	echo "# Fine-tuning the transformer architecture (bench/transformer.sh)"
	echo
	echo "Command: \`BENCH_ROWS=$ROWS BENCH_REPEATS=$REPEATS BENCH_LAYERS=$LAYERS BENCH_HIDDEN=$HIDDEN bench/transformer.sh\`"
	echo "at $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared with other"
	echo "sessions (load average before: $load_before; after: $load_after)."
	echo
	echo "$(cat "$T/enc.txt") -- random weights: no pretrained checkpoint is available offline, so"
	echo "these are costs; the accuracy is that of an encoder that has learned nothing before."
	echo
	echo "Training: the first $ROWS rows of SST-2 train.tsv (10% held out for validation), options"
	echo "\`{$OPTS}\`, through \`cai train sentiment ... --encoder enc.cai\`; medians of $REPEATS interleaved rounds."
	echo
	echo "| run | wall time (s, median) | peak RSS (MB, median) | SST-2 dev accuracy |"
	echo "|---|---|---|---|"
	echo "| transformer, threads 2 | $t2 | $m2 | $a2 |"
	echo "| transformer, threads 1 | $t1 | $m1 | $a1 |"
	echo "| accurate (defaults), threads 2, once | $(echo "$acc_run" | cut -d' ' -f1) | $(echo "$acc_run" | cut -d' ' -f2) | $aa |"
	echo
	echo "threads 1 / threads 2 wall time: $ratio.  Rounds (seconds, MB):"
	echo
	echo "- threads 2: $(tr '\n' ';' < "$T/t2")"
	echo "- threads 1: $(tr '\n' ';' < "$T/t1")"
} > "$OUT"
cat "$OUT"
