#!/bin/sh
# vectors_train.sh: cai_vectors_train (bench/vectors_cli) against Debian's
# `fasttext skipgram` on the same text, the same options, interleaved rounds.
#
#   bench/vectors_train.sh [threads] [rounds]      (defaults 2 and 3)
#
# Corpus: the SST-2 training sentences (second column) and the WikiANN-en
# training sentences (tokens joined by spaces), one text per line, built in
# $WORK (default /tmp/cai-vectors-bench; nothing is written in the tree).
# Speed: fastText's last "words/sec/thread" times threads (in-vocabulary
# tokens and one end-of-line token per line, training only); ours the
# "tokens_per_sec" of the metrics (in-vocabulary tokens, training only).
# The last round also compares quality: shared top-10 neighbours of the
# 1000 most frequent common words, a few neighbour lists, and SST-2 dev
# accuracy of a logistic regression on mean vectors (vectors_cli -s).
set -e
T=${1:-2}
N=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build-sg}
WORK=${WORK:-/tmp/cai-vectors-bench}
DATA=${DATA:-/work/shared/data}
mkdir -p "$WORK"
make -s -C "$ROOT" -f core.mk BUILD="$BUILD" "$BUILD/bench/vectors_cli"
CLI="$ROOT/$BUILD/bench/vectors_cli"
command -v fasttext >/dev/null || { echo "fasttext not found (apt-get install -y fasttext)"; exit 1; }

C="$WORK/corpus.txt"
tail -n +2 "$DATA/sentiment/sst2/train.tsv" | cut -f2 > "$C"
awk 'NF==0{if(s!="")print s; s=""; next} {s = (s=="" ? $1 : s" "$1)} END{if(s!="")print s}' \
	"$DATA/ner/wikiann-en/train.conll" >> "$C"
wc -lw "$C"

OPTS="{\"model\":\"skipgram\",\"dimensions\":100,\"epochs\":5,\"threads\":$T,\"minn\":3,\"maxn\":6,\"window\":5,\"negative\":5,\"min_count\":5,\"learning_rate\":0.05,\"sample\":0.0001,\"buckets\":2000000,\"lowercase\":false}"
for i in $(seq 1 "$N"); do
	fasttext skipgram -input "$C" -output "$WORK/ft" -dim 100 -epoch 5 -thread "$T" -minn 3 -maxn 6 -ws 5 \
		-neg 5 -minCount 5 -lr 0.05 -t 1e-4 -bucket 2000000 -verbose 2 > "$WORK/ft.log" 2>&1
	w=$(tr '\r' '\n' < "$WORK/ft.log" | grep "words/sec/thread" | tail -1 | sed -E 's/.*words\/sec\/thread: *([0-9]+).*/\1/')
	echo "fasttext round $i threads $T words_per_sec $((w * T))"
	"$CLI" -j "$OPTS" "$C" > "$WORK/cai.log"
	echo "cai round $i threads $T tokens_per_sec $(grep tokens_per_sec "$WORK/cai.log" | cut -d' ' -f2)"
done
"$CLI" -j "$OPTS" -c "$WORK/ft.vec" -q good,bad,film,funny,london,january,king \
	-s "$DATA/sentiment/sst2/train.tsv,$DATA/sentiment/sst2/dev.tsv" "$C"
