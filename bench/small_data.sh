#!/usr/bin/env bash
#
# small_data.sh -- few labeled rows, several samples, side by side in one run:
# SST-2 test accuracy of the fast and accurate architectures (default options,
# validation on SST-2 dev, as bench/vectors.sh's "small" part) against
# `fasttext supervised -epoch 25 -wordNgrams 2` on the same rows (the issue's
# peer), for SAMPLES random samples of ROWS training rows, so that the
# comparison is not one sample's luck (872 test sentences: one sentence is
# 0.11 points).  Uses the core trainer (build/bench/textclf_cli, the same
# training as cai_train: the SQL route gives the same model bytes).
#
#   CAI_DATA_DIR  data root [../shared/data]
#   BENCH_OUT     report [bench/results-small-data.md]
#   ROWS          labeled rows per sample [1000]
#   SAMPLES       samples (shuf seeds 1..SAMPLES) [5]
#   ARCHS         architectures [fast accurate]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/small_data.sh CAI_DATA_DIR BENCH_OUT ROWS SAMPLES ARCHS
bench_cd_repo
SST=$(bench_dataset small_data.sh sentiment/sst2 train.tsv dev.tsv test.tsv)
OUT=${BENCH_OUT:-bench/results-small-data.md}
ROWS=${ROWS:-1000}
SAMPLES=${SAMPLES:-5}
ARCHS=${ARCHS:-fast accurate}
TMP=$(mktemp -d /tmp/cai_bench_small.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
bench_results "$TMP/results.txt"
bench_put_machine
bench_need_fasttext small_data.sh
make -s -f core.mk WERROR=1 build/bench/textclf_cli >/dev/null
CLI=build/bench/textclf_cli

tail -n +2 "$SST/test.tsv" | awk -F'\t' '{print "__label__" $1 " " $2}' >"$TMP/test.ft"
for s in $(seq 1 "$SAMPLES"); do
	# a seeded sample: shuf with a repeatable random source
	{ head -1 "$SST/train.tsv"; tail -n +2 "$SST/train.tsv" |
		shuf -n "$ROWS" --random-source=<(openssl enc -aes-256-ctr -pass pass:"$s" -nosalt </dev/zero 2>/dev/null); } \
		>"$TMP/small$s.tsv"
	tail -n +2 "$TMP/small$s.tsv" | awk -F'\t' '{print "__label__" $1 " " $2}' >"$TMP/small$s.ft"
	for arch in $ARCHS; do
		log "sample $s, $arch ..."
		acc=$("$CLI" -a "$arch" "$TMP/small$s.tsv" "$SST/dev.tsv" "$SST/test.tsv" '{"seed": 1}' 2>&1 |
			awk '/^dev_acc/ {for (i = 1; i < NF; i++) if ($i == "test_acc") printf "%.2f", $(i + 1) * 100}')
		put "s${s}_$arch" "$acc"
	done
	log "sample $s, fastText ..."
	fasttext supervised -input "$TMP/small$s.ft" -output "$TMP/ft$s" -epoch 25 -wordNgrams 2 -verbose 0 -seed 1 -thread 1 >/dev/null
	put "s${s}_fasttext" "$(fasttext test "$TMP/ft$s.bin" "$TMP/test.ft" | awk '/^P@1/ {printf "%.2f", $2 * 100}')"
done
put load "$(load)"

# report
v() { awk -v k="$1" '$1 == k {sub(/^[^ ]+ /, ""); print}' "$R"; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
{
	echo "# Few labeled rows: $ROWS SST-2 training rows, $SAMPLES samples"
	echo
	echo "Generated $(v date) by:"
	echo
	echo "    $(v command)"
	echo
	echo "- CPU: $(v cpu), $(v nproc) vCPUs; commit $(v git); load at the end $(v load)"
	echo "- each sample: \`shuf -n $ROWS\` of SST-2's training rows with a seeded random source (seed = sample number);"
	echo "  ours: default options, seed 1, validation on SST-2 dev (6,735 rows; best epoch), the core trainer"
	echo "  (\`build/bench/textclf_cli\`, the training \`cai_train\` runs); fastText: \`supervised -epoch 25 -wordNgrams 2 -seed 1 -thread 1\`,"
	echo "  all $ROWS rows, no validation; test: SST-2 test (872 sentences)"
	echo
	printf '| model |'
	for s in $(seq 1 "$SAMPLES"); do printf ' sample %s |' "$s"; done
	echo ' median |'
	printf '|---|'
	for s in $(seq 1 "$SAMPLES"); do printf -- '---:|'; done
	printf -- '---:|\n'
	for m in $ARCHS fasttext; do
		row=""
		printf '| %s |' "$m"
		for s in $(seq 1 "$SAMPLES"); do
			printf ' %s |' "$(v "s${s}_$m")"
			row="$row $(v "s${s}_$m")"
		done
		echo " **$(echo "$row" | median)** |"
	done
} | tee "$OUT"
