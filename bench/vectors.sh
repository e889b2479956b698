#!/usr/bin/env bash
#
# vectors.sh -- word vectors side by side in one run, on a throwaway cluster
# with the installed extension (run `make && make install` first):
#
#   1. SST-2 test accuracy, accurate and fast, without vectors and with GloVe
#      6B 100d (imported by scripts/get-vectors.sh), validation on dev;
#   2. WikiANN-en test entity F1 without vectors and with GloVe;
#   3. 1,000 labeled SST-2 training rows (a seeded random sample): accurate and
#      fast without vectors and with GloVe; with vectors trained in the
#      database on the text of the other training rows (labels unused) when
#      cai_train_vectors exists; fastText supervised on the same rows
#      (-epoch 25 -wordNgrams 2) when `fasttext` is installed;
#   4. GloVe import time.
# Prints a markdown report and writes it to BENCH_OUT (bench/results-vectors.md).
#
#   CAI_DATA_DIR   data root [../shared/data]
#   BENCH_OUT      report file [bench/results-vectors.md]
#   BENCH_SMALL    labeled rows of part 3 [1000]
#   BENCH_PARTS    which parts to run, e.g. "sst2 small" [sst2 ner small]
#   CAI_VECTORS_DIR  where scripts/get-vectors.sh keeps the npm package
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/vectors.sh CAI_DATA_DIR BENCH_OUT BENCH_SMALL BENCH_PARTS CAI_VECTORS_DIR
bench_cd_repo
SST=$(bench_dataset vectors.sh sentiment/sst2 train.tsv dev.tsv test.tsv)
WIKI=$(bench_dataset vectors.sh ner/wikiann-en train.conll dev.conll test.conll)
OUT=${BENCH_OUT:-bench/results-vectors.md}
SMALL=${BENCH_SMALL:-1000}
PARTS=${BENCH_PARTS:-sst2 ner small}
TMP=$(mktemp -d /tmp/cai_bench_vectors.XXXXXX)
chmod 755 "$TMP"
bench_results "$TMP/results.txt"

bench_cluster_start
bench_load_sst ""
"${PSQL[@]}" <<SQL
SELECT setseed(0.42);
CREATE TABLE small AS SELECT * FROM train ORDER BY random() LIMIT $SMALL;
CREATE TABLE unlabeled AS SELECT sentence FROM train EXCEPT ALL SELECT sentence FROM small;
SQL

t0=$(now)
CAI_VECTORS_DIR=${CAI_VECTORS_DIR:-} scripts/get-vectors.sh glove >"$TMP/glove.log" 2>&1 || { cat "$TMP/glove.log" >&2; exit 1; }
put glove_seconds "$(elapsed "$t0" "$(now)")"
put glove_words "$("${PSQL[@]}" -c "SELECT words FROM cai_vectors WHERE name = 'glove'")"

# train, then evaluate on a table: sst NAME OPTIONS TRAIN -> "test_accuracy seconds"
sst() {
	local t0 t1 acc
	t0=$(now)
	"${PSQL[@]}" -c "SET client_min_messages = warning" \
		-c "SELECT 1 FROM cai_train('$1', 'sentiment', 'SELECT sentence AS text, label FROM $3', options => '$2')" >/dev/null
	t1=$(now)
	acc=$("${PSQL[@]}" -c "SELECT round((cai_evaluate('$1', 'test', 'sentence', 'label')->>'accuracy')::numeric * 100, 2)")
	echo "$acc $(elapsed "$t0" "$t1")"
}

if [[ " $PARTS " == *" sst2 "* ]]; then
	for arch in accurate fast; do
		for vec in none glove; do
			opts="{\"architecture\": \"$arch\", \"validation_source\": \"SELECT sentence AS text, label FROM dev\", \"seed\": 1"
			[ "$vec" = glove ] && opts="$opts, \"word_vectors\": \"glove\""
			log "SST-2 $arch, vectors $vec ..."
			read -r acc secs <<<"$(sst "sst_${arch}_$vec" "$opts}" train)"
			put "sst2_${arch}_${vec}" "$acc $secs"
		done
	done
fi

if [[ " $PARTS " == *" ner "* ]]; then
	bench_load_wikiann
	for vec in none glove; do
		opts="{\"validation_source\": \"ner_dev\", \"seed\": 1"
		[ "$vec" = glove ] && opts="$opts, \"word_vectors\": \"glove\""
		log "WikiANN NER, vectors $vec ..."
		t0=$(now)
		"${PSQL[@]}" -c "SET client_min_messages = warning" \
			-c "SELECT 1 FROM cai_train('ner_$vec', 'ner', 'ner_train', 'tokens', 'tags', '$opts}')" >/dev/null
		t1=$(now)
		f1=$("${PSQL[@]}" -c "SELECT round((cai_evaluate('ner_$vec', 'ner_test', 'tokens', 'tags')->>'f1')::numeric * 100, 2)")
		put "ner_$vec" "$f1 $(elapsed "$t0" "$t1")"
	done
fi

if [[ " $PARTS " == *" small "* ]]; then
	have_tv=$("${PSQL[@]}" -c "SELECT to_regproc('cai_train_vectors') IS NOT NULL")
	if [ "$have_tv" = t ]; then
		log "vectors trained in the database on the ${SMALL}-row sample's complement ..."
		t0=$(now)
		"${PSQL[@]}" -c "SET client_min_messages = warning" \
			-c "SELECT 1 FROM cai_train_vectors('sst_own', 'unlabeled', 'sentence', '{\"seed\": 1, \"threads\": 2}')" >/dev/null
		put own_vectors_seconds "$(elapsed "$t0" "$(now)")"
	fi
	for arch in accurate fast; do
		for vec in none glove $([ "$have_tv" = t ] && echo sst_own); do
			opts="{\"architecture\": \"$arch\", \"validation_source\": \"SELECT sentence AS text, label FROM dev\", \"seed\": 1"
			[ "$vec" != none ] && opts="$opts, \"word_vectors\": \"$vec\""
			log "$SMALL rows, $arch, vectors $vec ..."
			read -r acc secs <<<"$(sst "small_${arch}_$vec" "$opts}" small)"
			put "small_${arch}_${vec}" "$acc $secs"
		done
	done
	if command -v fasttext >/dev/null; then
		"${PSQL[@]}" -c "COPY (SELECT '__label__' || label || ' ' || sentence FROM small) TO STDOUT" >"$TMP/small.ft"
		"${PSQL[@]}" -c "COPY (SELECT '__label__' || label || ' ' || sentence FROM test) TO STDOUT" >"$TMP/test.ft"
		fasttext supervised -input "$TMP/small.ft" -output "$TMP/ft" -epoch 25 -wordNgrams 2 -verbose 0 -seed 1 -thread 1 >/dev/null
		put small_fasttext "$(fasttext test "$TMP/ft.bin" "$TMP/test.ft" | awk '/^P@1/ {printf "%.2f", $2 * 100}')"
	fi
fi

# report
v() { awk -v k="$1" -v f="${2:-1}" '$1 == k {print $(f + 1)}' "$R"; }
{
	echo "# Word vectors: with and without, side by side"
	echo
	echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by:"
	echo
	echo "    $COMMAND_LINE"
	echo
	echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) vCPUs; load at the end: $(load)"
	echo "- GloVe 6B 100d: $(v glove_words) words, imported by scripts/get-vectors.sh in $(v glove_seconds) s (download cached)"
	echo "- every model: default options of its architecture, seed 1, validation on SST-2 dev / WikiANN dev"
	echo
	echo "| data | model | no vectors | GloVe 6B 100d | vectors trained in the database |"
	echo "|---|---|---:|---:|---:|"
	[ -n "$(v sst2_accurate_none)" ] && echo "| SST-2 test accuracy (60,614 training rows) | accurate | $(v sst2_accurate_none) | $(v sst2_accurate_glove) | |"
	[ -n "$(v sst2_fast_none)" ] && echo "| SST-2 test accuracy | fast | $(v sst2_fast_none) | $(v sst2_fast_glove) | |"
	[ -n "$(v ner_none)" ] && echo "| WikiANN-en test entity F1 (20,000 sentences) | bilstm_crf | $(v ner_none) | $(v ner_glove) | |"
	[ -n "$(v small_accurate_none)" ] && echo "| SST-2 test accuracy, $SMALL labeled rows | accurate | $(v small_accurate_none) | $(v small_accurate_glove) | $(v small_accurate_sst_own) |"
	[ -n "$(v small_fast_none)" ] && echo "| SST-2 test accuracy, $SMALL labeled rows | fast | $(v small_fast_none) | $(v small_fast_glove) | $(v small_fast_sst_own) |"
	[ -n "$(v small_fasttext)" ] && echo "| SST-2 test accuracy, $SMALL labeled rows | fastText supervised -epoch 25 -wordNgrams 2 | $(v small_fasttext) | | |"
	echo
	echo "Training seconds (wall, including reading the rows):"
	echo
	for k in sst2_accurate_none sst2_accurate_glove sst2_fast_none sst2_fast_glove ner_none ner_glove own_vectors_seconds; do
		[ -n "$(v $k)" ] && echo "- $k: $(v $k $([ $k = own_vectors_seconds ] && echo 1 || echo 2)) s"
	done
	echo
	echo "Raw results:"
	echo
	sed 's/^/    /' "$R"
} >"$TMP/report.md"
cp "$TMP/report.md" "$OUT"
cat "$OUT"
