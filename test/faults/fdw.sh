#!/usr/bin/env bash
# fdw.sh: sharded inference on PostgreSQL's own postgres_fdw.  Three
# throwaway clusters on this machine: a coordinator and two shards.  The
# coordinator's tables are hash-partitioned on id into two foreign partitions,
# one on each shard (postgres_fdw servers with extensions 'cai_synergy', so
# the extension's immutable functions are shipped).  Models are trained on the
# coordinator (SST-2 sentences and WikiANN sentences from $CAI_DATA_DIR,
# generated rows without them) and copied to the shards under their own
# version numbers (cai_export | cai_import(model, data, version)).  Checks:
# EXPLAIN VERBOSE shows the version-pinned cai_predict / cai_predict_proba in
# each partition's Remote SQL (and the deployed-version cai_predict, which is
# STABLE, not); the answers over the sharded table equal, row by row, those of
# the same query over a local table on one server (labels, probabilities,
# entities); a filter, the count of each foreign partition and, grouped by the partition key, an aggregate run on
# the shards; a version missing on a shard, or a model missing there, is a
# clear error from the remote server; a copy that would give a number other
# bytes is refused; no server crashes.
#   FDW_PORT_BASE=N   run the three servers on ports N, N+1, N+2 (default: random)
NAME=fdw
source "$(dirname "$0")/lib.sh"

require_module postgres_fdw "Debian's postgresql-15 package has it"
DATA=${CAI_DATA_DIR:-$FAULTS_ROOT/../shared/data}
SST=$DATA/sentiment/sst2
NER=$DATA/ner/wikiann-en
SST_ROWS=${FDW_SST_ROWS:-20000}	# training rows of SST-2
NER_ROWS=${FDW_NER_ROWS:-2000}	# training sentences of WikiANN
SCORE_ROWS=${FDW_SCORE_ROWS:-6000}	# sharded rows scored (SST-2 dev has 6,735)

# fdw_node VAR N: start a server; sets VAR_H (socket dir), VAR_P (port)
fdw_node() {
	local exports PGHOST PGPORT CAI_PGDATA
	if [ -n "${FDW_PORT_BASE:-}" ]; then export CAI_PGPORT=$((FDW_PORT_BASE + $2)); fi
	exports=$("$FAULTS_ROOT/scripts/pgcluster.sh" start) || bail "start server $1"
	unset CAI_PGPORT
	eval "$exports"
	on_exit "'$FAULTS_ROOT/scripts/pgcluster.sh' stop '$CAI_PGDATA'"
	q -h "$PGHOST" -p "$PGPORT" -c "CREATE EXTENSION cai_synergy" || bail "CREATE EXTENSION cai_synergy on $1"
	printf -v "${1}_H" %s "$PGHOST"; printf -v "${1}_P" %s "$PGPORT"
	export PGUSER
}
fdw_node C 0; fdw_node S1 1; fdw_node S2 2
C="-h $C_H -p $C_P"; S1="-h $S1_H -p $S1_P"; S2="-h $S2_H -p $S2_P"
diag "coordinator $C_H:$C_P, shards $S1_H:$S1_P and $S2_H:$S2_P"
starts() { for n in "$C" "$S1" "$S2"; do q $n -c "SELECT pg_postmaster_start_time()"; done; }
START=$(starts)

# ---- the sharded tables: hash partitions on id, one foreign partition per shard
for s in 1 2; do
	eval "args=\$S$s"
	q $args >/dev/null <<'SQL' || bail "create the shard tables on shard $s"
CREATE TABLE reviews_shard (id bigint PRIMARY KEY, sentence text, label text);
CREATE TABLE news_shard (id bigint PRIMARY KEY, body text);
SQL
done
q $C >/dev/null <<SQL || bail "create the servers and the partitioned tables"
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$S1_H', port '$S1_P', dbname 'postgres', extensions 'cai_synergy', use_remote_estimate 'true',
           fetch_size '1000', batch_size '1000', async_capable 'true');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$S2_H', port '$S2_P', dbname 'postgres', extensions 'cai_synergy', use_remote_estimate 'true',
           fetch_size '1000', batch_size '1000', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user '$PGUSER');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user '$PGUSER');
CREATE TABLE reviews (id bigint, sentence text, label text) PARTITION BY HASH (id);
CREATE FOREIGN TABLE reviews_p0 PARTITION OF reviews FOR VALUES WITH (MODULUS 2, REMAINDER 0)
  SERVER shard1 OPTIONS (table_name 'reviews_shard');
CREATE FOREIGN TABLE reviews_p1 PARTITION OF reviews FOR VALUES WITH (MODULUS 2, REMAINDER 1)
  SERVER shard2 OPTIONS (table_name 'reviews_shard');
CREATE TABLE news (id bigint, body text) PARTITION BY HASH (id);
CREATE FOREIGN TABLE news_p0 PARTITION OF news FOR VALUES WITH (MODULUS 2, REMAINDER 0)
  SERVER shard1 OPTIONS (table_name 'news_shard');
CREATE FOREIGN TABLE news_p1 PARTITION OF news FOR VALUES WITH (MODULUS 2, REMAINDER 1)
  SERVER shard2 OPTIONS (table_name 'news_shard');
-- planner hint: a call costs more here than the shard's estimate of it (see README)
ALTER FUNCTION cai_predict(text, integer, text) COST 10000;
ALTER FUNCTION cai_predict_proba(text, integer, text) COST 10000;
-- the training rows and the single-server copies of the scored rows
CREATE TABLE sst_train (sentence text, label text);
CREATE TABLE ner_train (tokens text[], tags text[]);
CREATE TABLE reviews_local (id bigint, sentence text, label text);
CREATE TABLE news_local (id bigint, body text);
SQL

# ---- data
if [ -f "$SST/train.tsv" ] && [ -f "$SST/dev.tsv" ] && [ -f "$NER/train.conll" ] && [ -f "$NER/test.conll" ]; then
	diag "data: SST-2 and WikiANN from $DATA ($SST_ROWS training rows, $NER_ROWS training sentences)"
	q $C >/dev/null <<SQL || bail "load SST-2 and WikiANN"
CREATE TEMP TABLE t (label text, sentence text);
\\copy t FROM '$SST/train.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x02')
INSERT INTO sst_train SELECT sentence, label FROM t LIMIT $SST_ROWS;
TRUNCATE t;
\\copy t FROM '$SST/dev.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x02')
INSERT INTO reviews_local SELECT row_number() OVER (), sentence, label FROM (SELECT * FROM t LIMIT $SCORE_ROWS) s;
CREATE TEMP TABLE raw (n bigserial, line text, f text);
\\copy raw (line) FROM '$NER/train.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')
UPDATE raw SET f = 'train';
\\copy raw (line) FROM '$NER/test.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')
UPDATE raw SET f = 'test' WHERE f IS NULL;
\\i $FAULTS_ROOT/test/faults/conll_sentences.sql
INSERT INTO ner_train SELECT tokens, tags FROM sent WHERE f = 'train' ORDER BY s LIMIT $NER_ROWS;
INSERT INTO news_local SELECT row_number() OVER (ORDER BY s), array_to_string(tokens, ' ') FROM sent WHERE f = 'test' AND s < 2000;
SQL
else
	diag "data: $DATA has no SST-2 / WikiANN; generated rows"
	q $C >/dev/null <<'SQL' || bail "generate data"
INSERT INTO sst_train SELECT CASE WHEN g % 2 = 0 THEN 'a great and moving film ' ELSE 'a dull and awful film ' END || (g % 13),
                             (g % 2)::text FROM generate_series(1, 4000) g;
INSERT INTO reviews_local SELECT g, CASE WHEN g % 3 = 0 THEN 'great acting' ELSE 'awful plot ' || g END, (g % 3 <> 0)::int::text
  FROM generate_series(1, 3000) g;
INSERT INTO ner_train SELECT ARRAY[f, 'works', 'for', o, 'in', c, '.'], ARRAY['B-PER', 'O', 'O', 'B-ORG', 'O', 'B-LOC', 'O']
  FROM (SELECT g, (ARRAY['John','Mary','Ahmed','Li','Olga'])[1 + g % 5] AS f, (ARRAY['Acme','Globex','Initech'])[1 + g % 3] AS o,
               (ARRAY['Paris','Tokyo','Lagos','Lima'])[1 + g % 4] AS c FROM generate_series(1, 1000) g) s;
INSERT INTO news_local SELECT g, (ARRAY['John','Mary','Olga'])[1 + g % 3] || ' met ' || (ARRAY['Li','Ahmed'])[1 + g % 2]
                                 || ' in ' || (ARRAY['Paris','Tokyo','Lima'])[1 + g % 3] || ' .' FROM generate_series(1, 500) g;
SQL
fi
q $C -c "INSERT INTO reviews SELECT * FROM reviews_local" -c "INSERT INTO news SELECT * FROM news_local" \
	-c "ANALYZE reviews" -c "ANALYZE news" -c "ANALYZE reviews_local" -c "ANALYZE news_local" >/dev/null \
	|| bail "insert the rows through the partitioned tables"
is "$(q $S1 -c "SELECT count(*) FROM reviews_shard") + $(q $S2 -c "SELECT count(*) FROM reviews_shard")" \
	"$(q $C -c "SELECT (SELECT count(*) FROM reviews_p0) || ' + ' || (SELECT count(*) FROM reviews_p1)")" \
	"the rows inserted through the coordinator are on the shards, split by hash"
diag "rows: $(q $C -c "SELECT (SELECT count(*) FROM sst_train) || ' sst_train, ' || (SELECT count(*) FROM reviews) || ' reviews, '
                              || (SELECT count(*) FROM ner_train) || ' ner_train, ' || (SELECT count(*) FROM news) || ' news'")"

# ---- models trained on the coordinator: two sentiment versions (the second deployed), one NER version
q $C -c "SELECT 1 FROM cai_train('s', 'sentiment', 'sst_train', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 1}')" >/dev/null
ok $? "a sentiment model trains on the coordinator"
q $C -c "SELECT 1 FROM cai_train('s', 'sentiment', 'sst_train', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 2, \"epochs\": 3, \"deploy\": \"always\"}')" >/dev/null
ok $? "a second version trains and is deployed"
q $C -c "SELECT 1 FROM cai_train('e', 'ner', 'ner_train', 'tokens', 'tags', '{\"epochs\": 2, \"seed\": 1}')" >/dev/null
ok $? "an entity model trains on the coordinator"

# copy_models TARGET: every version of every model of the coordinator, under its own number
copy_models() {
	q $C -c "COPY (SELECT name, version, cai_export(name, version) FROM cai_models ORDER BY name, version) TO STDOUT" \
		| q "$@" -c "CREATE TEMP TABLE incoming (name text, version int, data bytea)" -c "COPY incoming FROM STDIN" \
		        -c "SELECT count(cai_import(name, data, version)) FROM incoming"
}
for s in 1 2; do
	eval "args=\$S$s"
	is "$(copy_models $args 2>&1)" 3 "shard $s: the three model versions are copied with their numbers"
done
CAT="SELECT string_agg(name || ' v' || version || ' ' || md5(cai_export(name, version)), ', ' ORDER BY name, version) FROM cai_models"
is "$(q $S1 -c "$CAT")" "$(q $C -c "$CAT")" "shard 1 holds the same versions, byte for byte"
is "$(q $S2 -c "$CAT")" "$(q $C -c "$CAT")" "shard 2 holds the same versions, byte for byte"
is "$(copy_models $S1 2>&1)" 3 "copying again changes nothing (the same bytes under a number are left as they are)"
is "$(q $S1 -c "SELECT count(*) FROM cai_models")" 3 "no version was added by the second copy"

# ---- pushdown: EXPLAIN VERBOSE shows the call in each partition's Remote SQL.  postgres_fdw ships
# WHERE clauses, joins, grouping and aggregates, not the select list of a plain scan: row-by-row
# answers computed on the shards are a query grouped by the partition key and the answers
# (enable_partitionwise_aggregate; each id is its own group), which ships whole.
PW="SET enable_partitionwise_aggregate = on"
SQ="SELECT id, cai_predict('s', 1, sentence) AS label, cai_predict_proba('s', 1, sentence) AS proba FROM TABLE GROUP BY id, 2, 3"
NQ="SELECT id, cai_predict('e', 1, body) AS entities FROM TABLE GROUP BY id, 2"
remote() { q $C -c "$PW" -c "EXPLAIN (VERBOSE, COSTS OFF) $1" | grep "Remote SQL:"; }
is "$(remote "${SQ//TABLE/reviews}" | grep -c "SELECT id, public.cai_predict('s'::text, 1, sentence), public.cai_predict_proba('s'::text, 1, sentence) FROM public.reviews_shard GROUP BY 1, 2, 3")" 2 \
	"EXPLAIN VERBOSE: cai_predict and cai_predict_proba pinned to a version are in both partitions' Remote SQL"
is "$(remote "${NQ//TABLE/news}" | grep -c "SELECT id, public.cai_predict('e'::text, 1, body) FROM public.news_shard GROUP BY 1, 2")" 2 \
	"EXPLAIN VERBOSE: cai_predict of the entity model is in both Remote SQLs"
diag "$(remote "${SQ//TABLE/reviews}" | head -n 1)"
is "$(q $C -c "$PW" -c "EXPLAIN (VERBOSE, COSTS OFF) ${SQ//TABLE/reviews}" | grep -c "Async Foreign Scan")" 2 \
	"the two shards run at the same time (async_capable: Async Foreign Scan)"
is "$(remote "SELECT id, cai_predict('s', 1, sentence) FROM reviews" | grep -c cai_predict)" 0 \
	"in the select list of a plain scan postgres_fdw ships the columns, not the call (it runs on the coordinator)"
is "$(remote "SELECT id, cai_predict('s', sentence) FROM reviews GROUP BY id, 2" | grep -c cai_predict)" 0 \
	"the unpinned cai_predict (STABLE: it follows deployments) is never shipped"
FQ="SELECT count(*) FROM reviews WHERE cai_predict('s', 1, sentence) = label"
is "$(remote "$FQ" | grep -c "WHERE ((public.cai_predict('s'::text, 1, sentence) = label))")" 2 \
	"a filter on the pinned prediction runs on the shards"
GQ="SELECT id, count(*) FILTER (WHERE cai_predict('s', 1, sentence) = label) AS correct FROM reviews GROUP BY id"
UQ="SELECT sum(c)::bigint FROM (SELECT count(*) AS c FROM reviews_p0 WHERE cai_predict('s', 1, sentence) = label
                     UNION ALL SELECT count(*) FROM reviews_p1 WHERE cai_predict('s', 1, sentence) = label) s"
is "$(q $C -c "EXPLAIN (VERBOSE, COSTS OFF) $UQ" | grep -c "Remote SQL: SELECT count(\*) FROM public.reviews_shard WHERE ((public.cai_predict('s'::text, 1, sentence) = label))")" 2 \
	"the count of each foreign partition runs whole on its shard"
is "$(remote "$GQ" | grep -c "count(\*) FILTER (WHERE (public.cai_predict('s'::text, 1, sentence) = label)).*GROUP BY")" 2 \
	"an aggregate of the predictions grouped by the partition key runs on the shards"

# ---- the answers: the sharded table equals one server, row by row
digest() { q $C -c "$PW" -c "SELECT count(*) || ' ' || md5(string_agg(r::text, E'\\n' ORDER BY r.id)) FROM ($1) r" | tail -n 1; }
sharded=$(digest "${SQ//TABLE/reviews}")
is "$sharded" "$(digest "${SQ//TABLE/reviews_local}")" "sentiment over the shards = the same query on one server (labels and probabilities, every row)"
diag "reviews: $sharded"
q $C -c "SELECT cai_deploy('s', 1)" >/dev/null
is "$(digest "${SQ//TABLE/reviews}")" \
	"$(digest "SELECT id, cai_predict('s', sentence) AS label, cai_predict_proba('s', sentence) AS proba FROM reviews_local")" \
	"= the unpinned functions on one server with that version deployed"
q $C -c "SELECT cai_deploy('s', 2)" >/dev/null
ner_sharded=$(digest "${NQ//TABLE/news}")
is "$ner_sharded" "$(digest "${NQ//TABLE/news_local}")" "entities over the shards = the same query on one server (every row)"
is "$(q $C -c "SELECT count(*) FROM news WHERE cai_predict('e', 1, body) <> '[]'")" \
	"$(q $C -c "SELECT count(*) FROM news_local WHERE cai_predict('e', 1, body) <> '[]'")" "the entity model finds entities on the shards"
diag "news: $ner_sharded, $(q $C -c "SELECT count(*) FROM news WHERE cai_predict('e', 1, body) <> '[]'") with entities"
is "$(q $C -c "$FQ")" "$(q $C -c "${FQ//reviews/reviews_local}")" "the filtered count over the shards = one server's"
is "$(q $C -c "$UQ")" "$(q $C -c "${FQ//reviews/reviews_local}")" "the counts computed on the shards add up to one server's count"
is "$(q $C -c "$PW" -c "SELECT sum(correct) FROM ($GQ) g" | tail -n 1)" \
	"$(q $C -c "${FQ//reviews/reviews_local}")" "the aggregate computed on the shards = one server's count"
diag "accuracy of version 1 on the sharded rows: $(q $C -c "SELECT round(avg((cai_predict('s', 1, sentence) = label)::int), 4) FROM reviews")"
is "$(q $C -c "SELECT count(*) FROM reviews WHERE cai_predict('s', 2, sentence) IS DISTINCT FROM cai_predict('s', sentence)")" 0 \
	"version 2 pinned on the shards = the deployed version 2 on the coordinator"

# ---- errors
q $S2 -c "SELECT cai_drop_model('s', 1)" >/dev/null
out=$(q $C -c "SELECT count(*) FROM reviews WHERE cai_predict('s', 1, sentence) = label" 2>&1)
grep -q 'ERROR:  model "s" has no version 1' <<<"$out" && grep -q "remote SQL command" <<<"$out"
ok $? "a version missing on one shard: the shard's error reaches the coordinator, naming the version and the remote query"
diag "$(head -n 1 <<<"$out")"
is "$(q $C -c "SELECT count(*) FROM reviews_p0 WHERE cai_predict('s', 1, sentence) IS NOT NULL") > 0" \
	"$(q $C -c "SELECT count(*) FROM reviews_p0") > 0" "the other shard still answers"
q $S2 -c "SELECT cai_import('s', cai_export('s', 2), 1)" >/dev/null
out=$(copy_models $S2 2>&1)
grep -q 'model "s" already has a version 1 with other bytes' <<<"$out"
ok $? "a copy that would give version 1 other bytes on a shard is refused (42710), not served"
q $S2 -c "SELECT cai_drop_model('s', 1)" >/dev/null
is "$(copy_models $S2 2>&1)" 3 "after dropping the wrong bytes the copy restores version 1"
is "$(q $S2 -c "$CAT")" "$(q $C -c "$CAT")" "shard 2 holds the coordinator's bytes again"
is "$(digest "${SQ//TABLE/reviews}")" "$sharded" "and answers as before"
out=$(q $C -c "SELECT count(*) FROM reviews WHERE cai_predict('nowhere', 1, sentence) = label" 2>&1)
grep -q 'ERROR:  model "nowhere" does not exist' <<<"$out" && grep -q "remote SQL command" <<<"$out"
ok $? "a model missing on the shards: a clear remote error"
is "$(starts)" "$START" "no server restarted (no crash on any node)"

finish
