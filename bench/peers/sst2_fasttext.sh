#!/usr/bin/env bash
#
# sst2_fasttext.sh -- fastText peer baseline on SST-2 (binary sentiment).
#
# Trains `fasttext supervised -wordNgrams 2` over a small grid
# (lr x epoch x dim), selects the configuration with the best dev accuracy
# (first in grid order on ties), then reports for it:
#   - test accuracy (GLUE SST-2 evaluation set, 872 sentences),
#   - training wall time in seconds (median of FT_TIME_REPEATS re-runs of the
#     selected configuration; one run = `fasttext supervised` process wall
#     time: reading data, building the dictionary, training, saving),
#   - prediction throughput: `fasttext predict` over FT_PREDICT_LINES
#     sentences (dev+test sentences repeated), sentences/s, both including
#     and excluding the model-load time.
#
# Usage: bench/peers/sst2_fasttext.sh            (full run, from anywhere)
#        FT_LRS="0.5" FT_EPOCHS="5" FT_DIMS="50" FT_PREDICT_LINES=100000 \
#            FT_TIME_REPEATS=1 bench/peers/sst2_fasttext.sh      (quick trial)
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR      data root, relative paths are taken from the repo root [../shared/data]
#   FASTTEXT          fastText binary [/usr/bin/fasttext]
#   FT_LRS            learning rates [0.1 0.5 1.0]
#   FT_EPOCHS         epochs [5 10 25]
#   FT_DIMS           vector sizes [50 100]
#   FT_WORD_NGRAMS    -wordNgrams [2]
#   FT_BUCKET         -bucket [2000000] (fastText default)
#   FT_THREADS        -thread for training [1] (1 is reproducible; >1 is Hogwild, not)
#   FT_SEED           -seed [1]
#   FT_TIME_REPEATS   timed re-runs of the selected config [3]
#   FT_PREDICT_LINES  sentences fed to `fasttext predict` [1000000]
#   RESULTS_MD        markdown results file, appended [bench/peers/results-sst2.md]
#   RESULTS_JSONL     JSON-lines results file, appended [bench/peers/results-sst2.jsonl]
#
# stdout ends with one JSON line (system "fasttext") -- the same line that is
# appended to RESULTS_JSONL.

set -euo pipefail

# The command line as run, with the settings taken from the environment.
COMMAND_LINE=""
for v in CAI_DATA_DIR FASTTEXT FT_LRS FT_EPOCHS FT_DIMS FT_WORD_NGRAMS FT_BUCKET \
	FT_THREADS FT_SEED FT_TIME_REPEATS FT_PREDICT_LINES; do
	if [ -n "${!v+x}" ]; then
		COMMAND_LINE="$COMMAND_LINE$v=$(printf '%q' "${!v}") "
	fi
done
COMMAND_LINE="$COMMAND_LINE$(printf '%q' "$0")"
if [ $# -gt 0 ]; then
	COMMAND_LINE="$COMMAND_LINE $(printf '%q ' "$@")"
	COMMAND_LINE="${COMMAND_LINE% }"
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

DATA_DIR="${CAI_DATA_DIR:-../shared/data}"
case "$DATA_DIR" in
	/*) ;;
	*) DATA_DIR="$REPO_ROOT/$DATA_DIR" ;;
esac
SST="$DATA_DIR/sentiment/sst2"

FASTTEXT="${FASTTEXT:-/usr/bin/fasttext}"
FT_LRS="${FT_LRS:-0.1 0.5 1.0}"
FT_EPOCHS="${FT_EPOCHS:-5 10 25}"
FT_DIMS="${FT_DIMS:-50 100}"
FT_WORD_NGRAMS="${FT_WORD_NGRAMS:-2}"
FT_BUCKET="${FT_BUCKET:-2000000}"
FT_THREADS="${FT_THREADS:-1}"
FT_SEED="${FT_SEED:-1}"
FT_TIME_REPEATS="${FT_TIME_REPEATS:-3}"
FT_PREDICT_LINES="${FT_PREDICT_LINES:-1000000}"
RESULTS_MD="${RESULTS_MD:-$SCRIPT_DIR/results-sst2.md}"
RESULTS_JSONL="${RESULTS_JSONL:-$SCRIPT_DIR/results-sst2.jsonl}"

for f in train dev test; do
	if [ ! -r "$SST/$f.tsv" ]; then
		echo "sst2_fasttext: cannot read $SST/$f.tsv (set CAI_DATA_DIR)" >&2
		exit 1
	fi
done
if [ ! -x "$FASTTEXT" ]; then
	echo "sst2_fasttext: fastText binary not found: $FASTTEXT" >&2
	exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cai-peers-fasttext.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# TSV (header "label<TAB>sentence") -> "__label__<label> <sentence>"
to_fasttext() {
	tail -n +2 "$1" | awk -F'\t' 'NF >= 2 { print "__label__" $1 " " $2 }'
}
for f in train dev test; do
	to_fasttext "$SST/$f.tsv" > "$TMP/$f.txt"
	cut -d' ' -f1 "$TMP/$f.txt" > "$TMP/$f.gold"
	cut -d' ' -f2- "$TMP/$f.txt" > "$TMP/$f.sent"
done
N_TRAIN=$(wc -l < "$TMP/train.txt")
N_DEV=$(wc -l < "$TMP/dev.txt")
N_TEST=$(wc -l < "$TMP/test.txt")

# accuracy <model.bin> <split>: top-1 prediction of the unlabelled sentences
# against the gold labels, printed with 6 decimals (`fasttext test` only
# prints 3, too coarse to break ties in the grid).
accuracy() {
	"$FASTTEXT" predict "$1" "$TMP/$2.sent" |
		paste -d' ' - "$TMP/$2.gold" |
		awk '{ n++; c += ($1 == $2) } END { printf "%.6f", c / n }'
}

train() { # train <output-prefix> <lr> <epoch> <dim>
	"$FASTTEXT" supervised -input "$TMP/train.txt" -output "$1" \
		-lr "$2" -epoch "$3" -dim "$4" -wordNgrams "$FT_WORD_NGRAMS" \
		-loss softmax -bucket "$FT_BUCKET" -thread "$FT_THREADS" -seed "$FT_SEED" \
		-verbose 0 > /dev/null
}

echo "# fastText SST-2: train=$N_TRAIN dev=$N_DEV test=$N_TEST threads=$FT_THREADS"
echo "# grid: lr={$FT_LRS} epoch={$FT_EPOCHS} dim={$FT_DIMS} wordNgrams=$FT_WORD_NGRAMS bucket=$FT_BUCKET"
printf '%-6s %-6s %-5s %-9s %-8s\n' lr epoch dim dev_acc train_s

GRID_MD=""
BEST_ACC=-1
BEST_LR="" BEST_EPOCH="" BEST_DIM=""
for lr in $FT_LRS; do
	for ep in $FT_EPOCHS; do
		for dim in $FT_DIMS; do
			t0=$(now)
			train "$TMP/model" "$lr" "$ep" "$dim"
			t1=$(now)
			acc=$(accuracy "$TMP/model.bin" dev)
			secs=$(elapsed "$t0" "$t1")
			printf '%-6s %-6s %-5s %-9s %-8s\n' "$lr" "$ep" "$dim" "$acc" "$secs"
			GRID_MD="$GRID_MD| $lr | $ep | $dim | $acc | $secs |"$'\n'
			if awk -v a="$acc" -v b="$BEST_ACC" 'BEGIN { exit !(a > b) }'; then
				BEST_ACC=$acc BEST_LR=$lr BEST_EPOCH=$ep BEST_DIM=$dim
				mv "$TMP/model.bin" "$TMP/best.bin"
			fi
			rm -f "$TMP/model.bin" "$TMP/model.vec"
		done
	done
done

TEST_ACC=$(accuracy "$TMP/best.bin" test)
MODEL_BYTES=$(stat -c %s "$TMP/best.bin")
echo "# selected lr=$BEST_LR epoch=$BEST_EPOCH dim=$BEST_DIM dev_acc=$BEST_ACC test_acc=$TEST_ACC"

# Training time of the selected configuration: median of repeated runs.
TIMES=()
for ((i = 0; i < FT_TIME_REPEATS; i++)); do
	t0=$(now)
	train "$TMP/timed" "$BEST_LR" "$BEST_EPOCH" "$BEST_DIM"
	t1=$(now)
	TIMES+=("$(elapsed "$t0" "$t1")")
	rm -f "$TMP/timed.bin" "$TMP/timed.vec"
done
TRAIN_S=$(printf '%s\n' "${TIMES[@]}" | sort -g |
	awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
		else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "# train seconds (selected config, runs: ${TIMES[*]}): median $TRAIN_S"

# Prediction throughput: dev+test sentences (labels stripped) repeated to
# FT_PREDICT_LINES lines; `fasttext predict` is single-threaded.
cat "$TMP/dev.sent" "$TMP/test.sent" > "$TMP/pool.txt"
awk -v n="$FT_PREDICT_LINES" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
	"$TMP/pool.txt" > "$TMP/predict.txt"
PREDICT_TOKENS=$(wc -w < "$TMP/predict.txt")
head -n 1 "$TMP/pool.txt" > "$TMP/one.txt"
"$FASTTEXT" predict "$TMP/best.bin" "$TMP/one.txt" > /dev/null # warm the page cache
t0=$(now)
"$FASTTEXT" predict "$TMP/best.bin" "$TMP/one.txt" > /dev/null
t1=$(now)
LOAD_S=$(elapsed "$t0" "$t1")
t0=$(now)
"$FASTTEXT" predict "$TMP/best.bin" "$TMP/predict.txt" > "$TMP/predict.out"
t1=$(now)
PREDICT_S=$(elapsed "$t0" "$t1")
PRED_LINES_OUT=$(wc -l < "$TMP/predict.out")
if [ "$PRED_LINES_OUT" -ne "$FT_PREDICT_LINES" ]; then
	echo "sst2_fasttext: predict returned $PRED_LINES_OUT lines for $FT_PREDICT_LINES inputs" >&2
	exit 1
fi
read -r SENT_PER_S SENT_PER_S_NOLOAD < <(awk -v n="$FT_PREDICT_LINES" -v t="$PREDICT_S" -v l="$LOAD_S" \
	'BEGIN { x = t - l; if (x <= 0) x = t; printf "%.0f %.0f\n", n / t, n / x }')
echo "# predict: $FT_PREDICT_LINES sentences ($PREDICT_TOKENS tokens) in ${PREDICT_S}s" \
	"(model load ${LOAD_S}s): $SENT_PER_S sent/s, $SENT_PER_S_NOLOAD sent/s excluding load"

DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
FT_VERSION="$(dpkg-query -W -f='${Version}' fasttext 2>/dev/null || echo unknown)"
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

JSON="{\"system\": \"fasttext\", \"task\": \"sst2\", \"date\": \"$DATE\", \"command\": $(json_str "$COMMAND_LINE"),"
JSON="$JSON \"fasttext_version\": \"$FT_VERSION\", \"host_cpus\": $(nproc),"
JSON="$JSON \"config\": {\"lr\": $BEST_LR, \"epoch\": $BEST_EPOCH, \"dim\": $BEST_DIM,"
JSON="$JSON \"wordNgrams\": $FT_WORD_NGRAMS, \"bucket\": $FT_BUCKET, \"thread\": $FT_THREADS, \"seed\": $FT_SEED, \"loss\": \"softmax\"},"
JSON="$JSON \"grid\": {\"lr\": [${FT_LRS// /, }], \"epoch\": [${FT_EPOCHS// /, }], \"dim\": [${FT_DIMS// /, }]},"
JSON="$JSON \"n_train\": $N_TRAIN, \"n_dev\": $N_DEV, \"n_test\": $N_TEST,"
JSON="$JSON \"dev_acc\": $BEST_ACC, \"test_acc\": $TEST_ACC,"
TIMES_LIST="${TIMES[*]}"
JSON="$JSON \"train_seconds\": $TRAIN_S, \"train_seconds_runs\": [${TIMES_LIST// /, }],"
JSON="$JSON \"model_bytes\": $MODEL_BYTES,"
JSON="$JSON \"predict_sentences\": $FT_PREDICT_LINES, \"predict_tokens\": $PREDICT_TOKENS,"
JSON="$JSON \"predict_seconds\": $PREDICT_S, \"model_load_seconds\": $LOAD_S,"
JSON="$JSON \"predict_sentences_per_s\": $SENT_PER_S, \"predict_sentences_per_s_excl_load\": $SENT_PER_S_NOLOAD}"

{
	echo
	echo "## fastText SST-2 -- $DATE"
	echo
	echo "Command: \`$COMMAND_LINE\`"
	echo
	echo "fastText $FT_VERSION, $(nproc) CPUs, -thread $FT_THREADS, -wordNgrams $FT_WORD_NGRAMS, -bucket $FT_BUCKET, -seed $FT_SEED." \
		"train=$N_TRAIN dev=$N_DEV test=$N_TEST."
	echo
	echo "| lr | epoch | dim | dev acc | train s |"
	echo "|---|---|---|---|---|"
	printf '%s' "$GRID_MD"
	echo
	echo "Selected (best dev): lr=$BEST_LR epoch=$BEST_EPOCH dim=$BEST_DIM." \
		"**Test accuracy $TEST_ACC**, dev $BEST_ACC;" \
		"train ${TRAIN_S}s (median of ${TIMES[*]});" \
		"predict $FT_PREDICT_LINES sentences in ${PREDICT_S}s = **$SENT_PER_S sent/s**" \
		"($SENT_PER_S_NOLOAD sent/s excluding ${LOAD_S}s model load); model $MODEL_BYTES bytes."
	echo
	echo '```json'
	echo "$JSON"
	echo '```'
} >> "$RESULTS_MD"
echo "$JSON" >> "$RESULTS_JSONL"

echo "$JSON"
