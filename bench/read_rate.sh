#!/usr/bin/env bash
# read_rate.sh: how fast a training reads its rows, against COPY of the
# same rows (issue 11: within 2x of `COPY (query) TO '/dev/null'`).
#
#   bench/read_rate.sh          ROUNDS=5 SST_REPEAT=17 NER_REPEAT=25
#
# A throwaway cluster; SST-2's training sentences repeated SST_REPEAT times
# with the copy number appended (about 1,030,000 rows), WikiANN-en's training
# sentences repeated NER_REPEAT times (500,000 sentences).  Each round, one
# after another: COPY (SELECT text, label ...) TO '/dev/null', a fast and an
# accurate training (1 epoch, cut by max_seconds), the NER COPY and an NER
# training; the training's read time is the metrics' read_seconds (the
# worker's reading transaction: the source query in the calling backend,
# the rows streamed to the worker, converted to token ids or interned
# strings).  Prints the medians and writes bench/results-read.md
# (BENCH_OUT to change).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/read_rate.sh CAI_DATA_DIR ROUNDS SST_REPEAT NER_REPEAT BENCH_OUT
bench_cd_repo
ROUNDS=${ROUNDS:-5}
SST_REPEAT=${SST_REPEAT:-17}
NER_REPEAT=${NER_REPEAT:-25}
OUT=${BENCH_OUT:-bench/results-read.md}
SST="$(bench_dataset read_rate.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
WIKI="$(bench_dataset read_rate.sh ner/wikiann-en train.conll dev.conll test.conll)"
bench_start_results read
bench_cluster_start
bench_load_sst ""
bench_load_wikiann
"${PSQL[@]}" <<SQL
SET client_min_messages = warning;
CREATE TABLE big AS SELECT sentence || ' ' || g AS text, label FROM train, generate_series(1, $SST_REPEAT) g;
CREATE TABLE big_ner AS SELECT tokens || g::text AS tokens, tags || 'O'::text AS tags
  FROM ner_train, generate_series(1, $NER_REPEAT) g;
VACUUM ANALYZE big;
VACUUM ANALYZE big_ner;
SQL
put rows "$("${PSQL[@]}" -c "SELECT count(*) FROM big")"
put ner_rows "$("${PSQL[@]}" -c "SELECT count(*) FROM big_ner")"
put ner_tokens "$("${PSQL[@]}" -c "SELECT sum(cardinality(tokens)) FROM big_ner")"

copy_seconds() {	# copy_seconds QUERY: seconds of COPY (QUERY) TO '/dev/null', from psql's \timing
	psql -X -q -v ON_ERROR_STOP=1 -c '\timing on' -c "COPY ($1) TO '/dev/null'" |
		awk '/^Time:/ { printf "%.4f", $2 / 1000 }'
}
read_seconds() {	# read_seconds MODEL TASK SOURCE INPUT LABEL OPTIONS: metrics read_seconds of a new version
	"${PSQL[@]}" -c "SET client_min_messages = warning" \
		-c "SELECT 1 FROM cai_train('$1', '$2', '$3', '$4', '$5', options => '$6')" >/dev/null
	"${PSQL[@]}" -c "SELECT metrics->>'read_seconds' FROM cai_model_details WHERE name = '$1' ORDER BY version DESC LIMIT 1"
}
for r in $(seq "$ROUNDS"); do
	log "round $r of $ROUNDS"
	put copy "$(copy_seconds 'SELECT text, label FROM big')"
	put fast "$(read_seconds f sentiment big text label '{"architecture": "fast", "epochs": 1, "validation_fraction": 0.01}')"
	put accurate "$(read_seconds a sentiment big text label '{"architecture": "accurate", "epochs": 1, "max_seconds": 1, "validation_fraction": 0.01}')"
	put copy_ner "$(copy_seconds 'SELECT tokens, tags FROM big_ner')"
	put ner "$(read_seconds n ner big_ner tokens tags '{"epochs": 1, "max_seconds": 1, "validation_fraction": 0.01}')"
	"${PSQL[@]}" -c "SELECT cai_drop_model(m) FROM unnest(ARRAY['f', 'a', 'n']) m" >/dev/null
done
put load_end "$(load)"

median() { awk -v k="$1" '$1 == k { print $2 }' "$R" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
all() { awk -v k="$1" '$1 == k { printf "%s%s", sep, $2; sep = " " }' "$R"; }
v() { awk -v k="$1" '$1 == k { sub(/^[^ ]* /, ""); print; exit }' "$R"; }
rows=$(v rows); ner_rows=$(v ner_rows)
c=$(median copy); f=$(median fast); a=$(median accurate); cn=$(median copy_ner); n=$(median ner)
rate() { awk -v r="$1" -v s="$2" 'BEGIN { printf "%.0f", r / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "# Reading the training rows against COPY"
	echo
	echo "Generated $(v date) by:"
	echo
	echo "    $(v command)"
	echo
	echo "- CPU: $(v cpu), $(v nproc) vCPUs; commit $(v git); load average at the end $(v load_end)"
	echo "- rows: SST-2's training sentences x $SST_REPEAT with the copy number appended ($rows rows, columns text, label);"
	echo "  WikiANN-en's training sentences x $NER_REPEAT with a token and an O tag appended ($ner_rows sentences, $(v ner_tokens) tokens, text[] columns)"
	echo "- COPY: \`COPY (SELECT ...) TO '/dev/null'\` in psql (\`\\timing\`); training: the metrics' \`read_seconds\` of a synchronous"
	echo "  \`cai_train\` (the rows run by the calling backend and streamed to the worker, which keeps them as token ids"
	echo "  (text classification) or interned strings (NER)); $ROUNDS rounds, each measurement once a round, medians"
	echo
	echo "| rows | reader | seconds (median) | rows/s | time / COPY's |"
	echo "|---|---|---:|---:|---:|"
	echo "| $rows SST-2 rows | COPY | $c | $(rate "$rows" "$c") | 1.00 |"
	echo "| | cai_train, fast | $f | $(rate "$rows" "$f") | **$(ratio "$f" "$c")** |"
	echo "| | cai_train, accurate | $a | $(rate "$rows" "$a") | **$(ratio "$a" "$c")** |"
	echo "| $ner_rows WikiANN sentences | COPY | $cn | $(rate "$ner_rows" "$cn") | 1.00 |"
	echo "| | cai_train, ner (bilstm_crf) | $n | $(rate "$ner_rows" "$n") | **$(ratio "$n" "$cn")** |"
	echo
	echo "Every round (seconds): COPY $(all copy); fast $(all fast); accurate $(all accurate); COPY (NER) $(all copy_ner); ner $(all ner)."
} >"$OUT"
cat "$OUT"
