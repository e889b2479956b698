#!/bin/bash
# bench/pretrain.sh: pretrain an encoder with masked-language modelling on the
# text of SST-2 train (sentences) and WikiANN train (sentences rebuilt from the
# tokens), within a time budget, through the core (build/bench/pretrain_cli),
# and write bench/results-pretrain.md.
#
#   PRETRAIN_SECONDS=1800 THREADS=2 bench/pretrain.sh
#
# PRETRAIN_OPTIONS adds options (JSON members) to the defaults below.
# FINETUNE=1 (default) then fine-tunes ("transformer" architecture, through
# the cai command) the pretrained encoder and a randomly initialised one of
# the same shape (bench/make_encoder: same corpus, same vocabulary trainer
# and size, BERT's normal(0, 0.02)) on the first FT_ROWS rows of SST-2 train
# and the first FT_ROWS sentences of WikiANN train, FT_EPOCHS epochs, and
# scores both on the test sets (SST-2 accuracy, WikiANN entity F1).
# FT_SHAPE: "layers hidden heads intermediate positions" of the random
# encoder; it must match the pretraining options.  KEEP_ENCODER=PATH keeps
# the pretrained encoder there (the work directory is removed at the end),
# for more fine-tuning without another pretraining run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/work/shared/data}
PRETRAIN_SECONDS=${PRETRAIN_SECONDS:-1800}
THREADS=${THREADS:-2}
EXTRA=${PRETRAIN_OPTIONS:-}
BUILD=${BUILD:-build}
OUT=${OUT:-bench/results-pretrain.md}
FINETUNE=${FINETUNE:-1}
FT_ROWS=${FT_ROWS:-4000}
FT_EPOCHS=${FT_EPOCHS:-3}
FT_SHAPE=${FT_SHAPE:-4 256 4 1024 128}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

make -s -f core.mk BUILD="$BUILD" "$BUILD/bench/pretrain_cli"
[ "$FINETUNE" = 1 ] && make -s -f core.mk BUILD="$BUILD" POOL_GUARD= cli "$BUILD/bench/make_encoder" > /dev/null
{
	tail -n +2 "$DATA/sentiment/sst2/train.tsv" | cut -f2
	awk 'NF == 0 { if (s != "") print s; s = ""; next }
	     { s = (s == "" ? $1 : s " " $1) }
	     END { if (s != "") print s }' "$DATA/ner/wikiann-en/train.conll"
} > "$WORK/corpus.txt"
OPTS="{\"max_seconds\": $PRETRAIN_SECONDS, \"epochs\": 1000, \"threads\": $THREADS, \"learning_rate\": 0.001${EXTRA:+, $EXTRA}}"
CMD="$BUILD/bench/pretrain_cli -j '$OPTS' -o $WORK/encoder.bin corpus.txt"
echo "running: $CMD" >&2
start=$(date +%s.%N)
"$BUILD/bench/pretrain_cli" -j "$OPTS" -o "$WORK/encoder.bin" "$WORK/corpus.txt" > "$WORK/out.txt" 2> "$WORK/progress.txt"
end=$(date +%s.%N)
metrics=$(sed -n 's/^metrics //p' "$WORK/out.txt")
[ -z "${KEEP_ENCODER:-}" ] || cp "$WORK/encoder.bin" "$KEEP_ENCODER"

# fine-tuning: pretrained vs random init, same shape and options
FT=""
if [ "$FINETUNE" = 1 ]; then
	CAI="$BUILD/cai"
	"$BUILD/bench/make_encoder" "$WORK/corpus.txt" "$WORK/random.bin" $FT_SHAPE 8000 42 > "$WORK/random.txt"
	head -n $((FT_ROWS + 1)) "$DATA/sentiment/sst2/train.tsv" > "$WORK/sst2.tsv"
	awk -v n="$FT_ROWS" 'NF == 0 { k++; if (k >= n) exit } { print }' "$DATA/ner/wikiann-en/train.conll" > "$WORK/ner.conll"
	FTO="\"architecture\": \"transformer\", \"epochs\": $FT_EPOCHS, \"max_length\": 64, \"learning_rate\": 0.0005, \"threads\": $THREADS"
	score() { python3 -c "import json,sys; print(round(100 * json.load(sys.stdin)[sys.argv[1]], 2))" "$1"; }
	for enc in pretrained random; do
		bin="$WORK/encoder.bin"; [ $enc = random ] && bin="$WORK/random.bin"
		s0=$(date +%s.%N)
		"$CAI" train sentiment "$WORK/sst2.tsv" -o "$WORK/clf-$enc.cai" -q --encoder "$bin" --options "{$FTO}" > /dev/null
		s1=$(date +%s.%N)
		acc=$("$CAI" evaluate "$WORK/clf-$enc.cai" "$DATA/sentiment/sst2/test.tsv" | score accuracy)
		s2=$(date +%s.%N)
		"$CAI" train ner "$WORK/ner.conll" -o "$WORK/ner-$enc.cai" -q --encoder "$bin" --options "{$FTO}" > /dev/null
		s3=$(date +%s.%N)
		f1=$("$CAI" evaluate "$WORK/ner-$enc.cai" "$DATA/ner/wikiann-en/test.conll" | score f1)
		FT="$FT| $enc | $acc | $(python3 -c "print(round($s1 - $s0))") | $f1 | $(python3 -c "print(round($s3 - $s2))") |
"
		echo "fine-tuned $enc: SST-2 $acc, WikiANN $f1" >&2
	done
fi
fig() { python3 -c "import json,sys; m=json.loads(sys.argv[1]); v=m[sys.argv[2]]; print(v if not isinstance(v, float) else round(v, 4))" "$metrics" "$1"; }
{
	echo "# Pretraining (MLM) on SST-2 + WikiANN train text"
	echo
	echo "Made by \`PRETRAIN_SECONDS=$PRETRAIN_SECONDS THREADS=$THREADS FINETUNE=$FINETUNE FT_ROWS=$FT_ROWS FT_EPOCHS=$FT_EPOCHS FT_SHAPE='$FT_SHAPE' PRETRAIN_OPTIONS='$EXTRA' bench/pretrain.sh\` on $(date -u +%Y-%m-%d) at $(git rev-parse --short HEAD),"
	echo "$(nproc) cores shared with other work ($(uptime | sed 's/.*load average: //') load average at the end)."
	echo "Tool command: \`$CMD\` (corpus: $(wc -l < "$WORK/corpus.txt") texts, $(wc -c < "$WORK/corpus.txt") bytes)."
	echo
	echo "Options: defaults (4 layers, hidden 256, 4 heads, intermediate 1024, max_length 128, batch 32, vocab 8000, warm-up 0.06, dropout 0.1) with \`$OPTS\`."
	echo "One run (the budget is wall-clock on a shared machine, so steps vary run to run)."
	echo
	echo "| figure | value |"
	echo "|---|---|"
	for k in vocab_size train_texts validation_texts train_sequences train_pieces steps epochs_run loss mlm_loss mlm_accuracy unigram_accuracy seconds train_seconds sequences_per_sec; do
		echo "| $k | $(fig $k) |"
	done
	echo "| memory estimate (MB) | $(sed -n 's/^memory_estimate_mb //p' "$WORK/out.txt") |"
	echo "| model bytes | $(sed -n 's/^model_bytes //p' "$WORK/out.txt") |"
	echo "| wall seconds (tool) | $(python3 -c "print(round($end - $start, 1))") |"
	echo
	echo "Training loss curve (mean over each twentieth of the budget): $(fig loss_curve)"
	echo
	echo "mlm_accuracy: masked pieces of the held-out 2% of texts (masks drawn once) predicted exactly;"
	echo "unigram_accuracy: the same pieces predicted as the most frequent training piece."
	echo
	if [ -n "$FT" ]; then
		echo "## Fine-tuning: pretrained vs random initialisation"
		echo
		echo "\`cai train sentiment|ner ... --encoder ENC --options '{$FTO}'\` on the first $FT_ROWS rows of SST-2 train.tsv"
		echo "and the first $FT_ROWS sentences of WikiANN train.conll (10% held out for validation by the trainer), then"
		echo "\`cai evaluate\` on SST-2 test.tsv (accuracy, %) and WikiANN test.conll (entity F1, %). The random encoder:"
		echo "$(cat "$WORK/random.txt")."
		echo
		echo "| encoder | SST-2 test accuracy | fine-tune s | WikiANN test F1 | fine-tune s |"
		echo "|---|---|---|---|---|"
		printf "%s" "$FT"
		echo
	fi
	echo "Progress lines:"
	echo '```'
	tail -n 12 "$WORK/progress.txt"
	echo '```'
} > "$OUT"
cat "$OUT"
