#!/usr/bin/env bash
#
# cli.sh -- the `cai` command (src/cli/cai.c) against `fasttext predict`, one thread each:
#
#   1. both trained on SST-2 train.tsv: `fasttext supervised` with its defaults, `cai train`
#      with {"architecture": "fast"} (the fast model's defaults); test accuracy of both
#   2. prediction over BENCH_ROWS (1,000,000) sentences: the train.tsv sentences repeated, each
#      repetition r >= 1 with the suffix " r<r>" so that rows differ; `cai predict MODEL FILE`
#      against `fasttext predict MODEL FILE`, output to /dev/null, BENCH_REPEATS (5) interleaved
#      rounds, medians
#   3. model load of the fast model: the in-process time `cai info` reports (open, map, checks,
#      cai_model_load), median of 20 runs for each --verify mode, and the wall time of the
#      whole `cai info --verify none` process
#
# Writes BENCH_OUT (bench/results-cli.md).  Needs the fasttext command (apt-get install fasttext).
#
# Environment: CAI_DATA_DIR [../shared/data], BUILD [build-bench-cli], BENCH_ROWS [1000000],
#              BENCH_REPEATS [5], BENCH_OUT [bench/results-cli.md], TMPDIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
BUILD=${BUILD:-build-bench-cli}
ROWS=${BENCH_ROWS:-1000000}
REPEATS=${BENCH_REPEATS:-5}
OUT=${BENCH_OUT:-bench/results-cli.md}
DATA=${CAI_DATA_DIR:-../shared/data}
case "$DATA" in /*) ;; *) DATA="$REPO/$DATA" ;; esac
SST="$DATA/sentiment/sst2"
for f in train.tsv test.tsv; do [ -f "$SST/$f" ] || { echo "missing $SST/$f" >&2; exit 1; }; done
command -v fasttext > /dev/null || { echo "fasttext not found (apt-get install -y fasttext)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cai-bench-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT

make -s -f core.mk BUILD="$BUILD" cli > /dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
CAI="$REPO/$BUILD/cai"

# data: fastText's format, the sentences, the 1,000,000 rows
to_fasttext() { tail -n +2 "$1" | awk -F'\t' '{ l = $1; sub(/^[^\t]*\t/, ""); print "__label__" l " " $0 }'; }
to_fasttext "$SST/train.tsv" > "$T/ft_train.txt"
to_fasttext "$SST/test.tsv" > "$T/ft_test.txt"
tail -n +2 "$SST/train.tsv" | cut -f2- > "$T/sentences.txt"
awk -v rows="$ROWS" '{ s[NR] = $0 } END { n = 0; for (r = 0; n < rows; r++) for (i = 1; i <= NR && n < rows; i++) { print s[i] (r ? " r" r : ""); n++ } }' \
	"$T/sentences.txt" > "$T/rows.txt"

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

t0=$(now); fasttext supervised -input "$T/ft_train.txt" -output "$T/ft" -thread 1 > /dev/null 2>&1; t1=$(now)
ft_train_s=$(echo "$t1 - $t0" | bc -l)
t0=$(now); "$CAI" train sentiment "$SST/train.tsv" --options '{"architecture": "fast"}' -q -o "$T/fast.cai" > /dev/null; t1=$(now)
cai_train_s=$(echo "$t1 - $t0" | bc -l)
ft_acc=$(fasttext test "$T/ft.bin" "$T/ft_test.txt" | awk '/^P@1/ { print $2 }')
cai_acc=$("$CAI" evaluate "$T/fast.cai" "$SST/test.tsv" | sed -E 's/.*"accuracy": ([0-9.]+).*/\1/')

: > "$T/cai.s"; : > "$T/ft.s"
for r in $(seq "$REPEATS"); do
	t0=$(now); "$CAI" predict "$T/fast.cai" "$T/rows.txt" > /dev/null; t1=$(now)
	echo "$t1 - $t0" | bc -l >> "$T/cai.s"
	t0=$(now); fasttext predict "$T/ft.bin" "$T/rows.txt" > /dev/null; t1=$(now)
	echo "$t1 - $t0" | bc -l >> "$T/ft.s"
done
cai_s=$(median < "$T/cai.s"); ft_s=$(median < "$T/ft.s")
agree=$(paste -d' ' <("$CAI" predict "$T/fast.cai" "$T/rows.txt") <(fasttext predict "$T/ft.bin" "$T/rows.txt" | sed 's/__label__//') |
	awk '$1 == $2 { a++ } END { printf "%.4f", a / NR }')

for v in full checksum none; do
	for i in $(seq 20); do "$CAI" info --verify $v "$T/fast.cai" | awk -F': ' '/"load_ms"/ { sub(/,$/, "", $2); print $2 }'; done |
		median > "$T/load_$v"
done
for i in $(seq 20); do t0=$(now); "$CAI" info --verify none "$T/fast.cai" > /dev/null; t1=$(now); echo "($t1 - $t0) * 1000" | bc -l; done | median > "$T/proc_ms"
size_mb=$(stat -c %s "$T/fast.cai" | awk '{ printf "%.1f", $1 / 1048576 }')
ft_mb=$(stat -c %s "$T/ft.bin" | awk '{ printf "%.1f", $1 / 1048576 }')

{
	echo "# \`cai predict\` against \`fasttext predict\`"
	echo
	echo "Command: \`bench/cli.sh\` (BENCH_ROWS=$ROWS, BENCH_REPEATS=$REPEATS)  "
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include core.mk || echo ' (modified)')  "
	echo "Load average before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores shared with other work: timings are noisy, rounds are interleaved)  "
	echo "fastText: $(dpkg-query -W -f '${Version}' fasttext 2>/dev/null || echo unknown) (Debian package), \`fasttext supervised\` defaults, \`-thread 1\`; cai: \`cai train sentiment train.tsv --options '{\"architecture\": \"fast\"}'\`"
	echo
	echo "| | fastText | cai fast |"
	echo "|---|---:|---:|"
	printf '| training on SST-2 train.tsv (%s rows, one thread), s | %.1f | %.1f |\n' "$(wc -l < "$T/sentences.txt")" "$ft_train_s" "$cai_train_s"
	printf '| SST-2 test accuracy | %s | %.4f |\n' "$ft_acc" "$cai_acc"
	printf '| model file, MB | %s | %s |\n' "$ft_mb" "$size_mb"
	printf '| predict %s rows, s (median of %s) | %.2f | %.2f |\n' "$ROWS" "$REPEATS" "$ft_s" "$cai_s"
	printf '| rows/s | %.0f | %.0f |\n' "$(echo "$ROWS / $ft_s" | bc -l)" "$(echo "$ROWS / $cai_s" | bc -l)"
	echo
	printf 'cai predict / fasttext predict throughput: **%.2fx** (one thread each; rounds interleaved).  ' "$(echo "$ft_s / $cai_s" | bc -l)"
	echo "The two models agree on $agree of the rows."
	echo
	echo "All timings: cai $(paste -sd' ' "$T/cai.s" | awk '{ for (i = 1; i <= NF; i++) printf "%.2f ", $i }')s; fastText $(paste -sd' ' "$T/ft.s" | awk '{ for (i = 1; i <= NF; i++) printf "%.2f ", $i }')s."
	echo
	echo "## Model load (the fast model above, $size_mb MB)"
	echo
	echo "In-process time from open to a runnable model, as \`cai info\` reports it (\`load_ms\`), median of 20 runs:"
	echo
	echo "| --verify | what is checked | load, ms |"
	echo "|---|---|---:|"
	printf '| full (default) | checksum and every tensor, as cai_import | %.2f |\n' "$(cat "$T/load_full")"
	printf '| checksum | CRC-32C of the file, then a trusted load (shapes and bounds checked) | %.2f |\n' "$(cat "$T/load_checksum")"
	printf '| none | shapes and bounds only | %.2f |\n' "$(cat "$T/load_none")"
	echo
	printf 'The whole `cai info --verify none` process (exec, load, JSON output): %.1f ms (median of 20).\n' "$(cat "$T/proc_ms")"
} > "$OUT"
cat "$OUT"
