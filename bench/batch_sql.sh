#!/usr/bin/env bash
#
# batch_sql.sh -- batched against per-row scoring through SQL, one backend
# (no parallel query), on a throwaway cluster with the installed extension:
#
# 1. The accurate text classifier (trained here on SST-2 train with
#    BENCH_ACC_OPTIONS): `cai_predict` row by row over SST-2 dev + test
#    (7,607 sentences) against `cai_predict_query(model, query, 256)` over
#    the same rows; both with the labels compared.
# 2. NER (trained here on WikiANN-en train with BENCH_NER_OPTIONS), the
#    10,000 test sentences: `cai_tag_batch(model, jsonb)` on the sentences'
#    token arrays (jsonb, stored in the table: the best case for it) in
#    calls of 256, against the query path on the same sentences as texts
#    (tokens joined by spaces): `cai_predict_query` (entities as JSON, score
#    NULL) and `cai_entities_query` (one row per entity), batch 256; and
#    `cai_entities` text by text as the per-row reference.
#
# Every statement's time is psql's \timing; BENCH_REPEATS rounds run the
# statements interleaved, and the report gives the median of each and the
# ratios of the medians.  Writes BENCH_OUT (bench/results-batch-sql.md).
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR       data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS      rounds [5]
#   BENCH_ACC_OPTIONS  options of the accurate model [{"epochs": 3, "seed": 1}]
#   BENCH_NER_OPTIONS  options of the NER model [{"epochs": 2, "seed": 1}]
#   BENCH_OUT          report file [bench/results-batch-sql.md]

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/batch_sql.sh CAI_DATA_DIR BENCH_REPEATS BENCH_ACC_OPTIONS BENCH_NER_OPTIONS BENCH_OUT
bench_cd_repo
SST="$(bench_dataset batch_sql.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
WIKI="$(bench_dataset batch_sql.sh ner/wikiann-en train.conll test.conll)"
REPEATS="${BENCH_REPEATS:-5}"
ACC_OPTIONS="${BENCH_ACC_OPTIONS:-{\"epochs\": 3, \"seed\": 1\}}"
NER_OPTIONS="${BENCH_NER_OPTIONS:-{\"epochs\": 2, \"seed\": 1\}}"
OUT="${BENCH_OUT:-bench/results-batch-sql.md}"
bench_start_results batch_sql
put acc_options "$ACC_OPTIONS"
put ner_options "$NER_OPTIONS"

eval "$(scripts/pgcluster.sh start)"
export PGHOST PGPORT PGUSER
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"; rm -rf "$TMP"' EXIT
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

# --- data and models -----------------------------------------------------------
log "load SST-2 and WikiANN, train the models (load $(load))"
cp "$SST"/{train,dev,test}.tsv "$WIKI"/{train,test}.conll "$TMP/" && chmod a+r "$TMP"/*
"${PSQL[@]}" <<SQL
CREATE EXTENSION cai_synergy;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE sst_train (label int, sentence text);
CREATE TABLE sst_eval (label int, sentence text);
COPY sst_train FROM '$TMP/train.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
COPY sst_eval FROM '$TMP/dev.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
COPY sst_eval FROM '$TMP/test.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
ALTER TABLE sst_eval ADD COLUMN id serial;
CREATE TABLE raw (part text, n bigserial, line text);
CREATE TABLE ner_train (tokens text[], tags text[]);
CREATE TABLE ner_test (id serial, tokens text[], jtokens jsonb, body text);
SQL
for part in train test; do
	"${PSQL[@]}" -c "COPY raw (line) FROM '$TMP/$part.conll' WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02')" \
		-c "UPDATE raw SET part = '$part' WHERE part IS NULL"
done
"${PSQL[@]}" <<'SQL'
CREATE TEMP VIEW sentences AS
  SELECT part, array_agg(split_part(line, E'\t', 1) ORDER BY n) AS tokens, array_agg(split_part(line, E'\t', 2) ORDER BY n) AS tags
    FROM (SELECT part, n, line, count(*) FILTER (WHERE coalesce(line, '') = '') OVER (PARTITION BY part ORDER BY n) AS s FROM raw) r
   WHERE coalesce(line, '') <> '' GROUP BY part, s;
INSERT INTO ner_train SELECT tokens, tags FROM sentences WHERE part = 'train';
INSERT INTO ner_test (tokens, jtokens, body) SELECT tokens, to_jsonb(tokens), array_to_string(tokens, ' ') FROM sentences WHERE part = 'test';
DROP TABLE raw CASCADE;
VACUUM ANALYZE;
SQL
t0=$(now)
"${PSQL[@]}" -c "SELECT 1 FROM cai_train('acc', 'sentiment', 'sst_train', 'sentence', 'label', '$ACC_OPTIONS')" >/dev/null 2>&1
put acc_train_s "$(elapsed "$t0" "$(now)")"
t0=$(now)
"${PSQL[@]}" -c "SELECT 1 FROM cai_train('ner', 'ner', 'ner_train', 'tokens', 'tags', '$NER_OPTIONS')" >/dev/null 2>&1
put ner_train_s "$(elapsed "$t0" "$(now)")"
put acc_rows "$("${PSQL[@]}" -At -c "SELECT count(*) FROM sst_eval")"
put ner_rows "$("${PSQL[@]}" -At -c "SELECT count(*) FROM ner_test")"

# --- answers equal ---------------------------------------------------------------
put acc_label_diffs "$("${PSQL[@]}" -At -c "SELECT count(*) FROM sst_eval e JOIN cai_predict_query('acc', 'SELECT id, sentence FROM sst_eval') q ON q.key = e.id::text WHERE q.label IS DISTINCT FROM cai_predict('acc', e.sentence)")"
put ner_entity_diffs "$("${PSQL[@]}" -At -c "SELECT count(*) FROM (SELECT key, entity, label, start_pos, end_pos FROM cai_entities_query('ner', 'SELECT id, body FROM ner_test') EXCEPT ALL SELECT t.id::text, e.entity, e.label, e.start_pos, e.end_pos FROM ner_test t, cai_entities('ner', t.body) e) d")"

# --- timings -------------------------------------------------------------------
declare -A SQLS=(
	[acc_row]="SELECT sum(length(cai_predict('acc', sentence))) FROM sst_eval"
	[acc_query]="SELECT count(label) FROM cai_predict_query('acc', 'SELECT id, sentence FROM sst_eval', 256)"
	[ner_tag_batch]="SELECT sum(jsonb_array_length(b)) FROM (SELECT cai_tag_batch('ner', jsonb_agg(jtokens ORDER BY id)) b FROM ner_test GROUP BY (id - 1) / 256) s"
	[ner_predict_query]="SELECT count(label) FROM cai_predict_query('ner', 'SELECT id, body FROM ner_test', 256)"
	[ner_entities_query]="SELECT count(*) FROM cai_entities_query('ner', 'SELECT id, body FROM ner_test', 256)"
	[ner_entities_row]="SELECT count(*) FROM ner_test, cai_entities('ner', body)"
)
ORDER=(acc_row acc_query ner_tag_batch ner_predict_query ner_entities_query ner_entities_row)
ms() {	# ms SQL: milliseconds of one run (psql \timing)
	"${PSQL[@]}" -c 'SET max_parallel_workers_per_gather = 0' -c '\timing on' -c "$1" 2>&1 \
		| sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}
for k in "${ORDER[@]}"; do ms "${SQLS[$k]}" >/dev/null; done	# warm: shared copies, caches
for ((r = 1; r <= REPEATS; r++)); do
	log "round $r/$REPEATS (load $(load))"
	for k in "${ORDER[@]}"; do put "ms.$k.$r" "$(ms "${SQLS[$k]}")"; done
done
put load_end "$(load)"
for k in "${ORDER[@]}"; do put "sql.$k" "${SQLS[$k]}"; done

# --- report --------------------------------------------------------------------
/usr/bin/python3 - "$R" "$OUT" <<'PY'
import statistics, sys
kv, ms = {}, {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition(" ")
    if k.startswith("ms."):
        _, name, _r = k.split(".")
        ms.setdefault(name, []).append(float(v))
    else:
        kv[k] = v
med = {k: statistics.median(v) for k, v in ms.items()}
rate = lambda k, rows: int(kv[rows]) / (med[k] / 1000)
out = []
w = out.append
w("# Batched against per-row scoring through SQL")
w("")
w("Generated %s by:" % kv["date"])
w("")
w("    " + kv["command"])
w("")
w("- CPU: %s, %s vCPUs, %s GB; one backend, no parallel query; load average at the end: %s (2 shared cores)"
  % (kv["cpu"], kv["nproc"], kv["mem_gb"], kv["load_end"]))
w("- commit measured: %s; models trained by this run: accurate `%s` (%.0f s), NER `%s` (%.0f s)"
  % (kv["git"], kv["acc_options"], float(kv["acc_train_s"]), kv["ner_options"], float(kv["ner_train_s"])))
w("- every statement timed with psql `\\timing`; %d interleaved rounds, medians" % len(ms["acc_row"]))
w("")
w("| statement | rows | median ms | rows/s | ratio |")
w("|---|---:|---:|---:|---:|")
rows = [("acc_row", "acc_rows", "acc_row"), ("acc_query", "acc_rows", "acc_row"),
        ("ner_tag_batch", "ner_rows", "ner_tag_batch"), ("ner_predict_query", "ner_rows", "ner_tag_batch"),
        ("ner_entities_query", "ner_rows", "ner_tag_batch"), ("ner_entities_row", "ner_rows", "ner_tag_batch")]
for k, n, ref in rows:
    w("| `%s` | %s | %.1f | %s | %.2f |" % (kv["sql." + k].replace("|", "\\|"), kv[n], med[k],
                                          format(int(rate(k, n)), ","), med[ref] / med[k]))
w("")
w("Ratios: accurate rows are against `cai_predict` row by row; NER rows against `cai_tag_batch` (the sentences' "
  "tokens in jsonb, calls of 256). The query path reads texts, which `cai_tokenize` splits into about 10% more "
  "tokens than the file's tokenization (bench/results-batch.md).")
w("")
w("Answers: %s of %s accurate labels differ between `cai_predict_query` and `cai_predict`; %s entities differ between "
  "`cai_entities_query` and `cai_entities` text by text (span, type and positions)."
  % (kv["acc_label_diffs"], kv["acc_rows"], kv["ner_entity_diffs"]))
w("")
w("All rounds (ms): " + "; ".join("%s %s" % (k, " ".join("%.0f" % x for x in ms[k])) for k, _, _ in rows))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
