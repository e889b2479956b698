#!/usr/bin/env bash
# citus.sh: cai_synergy on a Citus cluster.  A coordinator and two workers on
# this machine (each a throwaway cluster run as the unprivileged user, with
# shared_preload_libraries = 'citus'), cai_citus_setup() on the coordinator,
# distributed tables of SST-2 sentences and of WikiANN sentences (generated
# rows when $CAI_DATA_DIR lacks them).  Checks: both tasks train from the
# distributed tables on the coordinator (and are refused on a worker); every
# node holds every model (an imported encoder too); EXPLAIN shows cai_predict / cai_predict_proba /
# cai_tag / cai_entities / cai_embed (vector set and encoder) inside the shard queries; the answers
# equal those of the same query on a local table; a new deployment and a
# rollback are used by every node in the next statement; a third node added
# later serves the models (before and after the shards are rebalanced onto
# it); a worker stopped mid-query gives a clean error, a deployment attempted
# while it is down changes nothing anywhere, and no model is lost; model
# ownership and row-level security hold on distributed tables.
#
# Skipped (with a message, "citus: 0 passed, 0 failed") when Citus is not
# installed: ../shared/tools/citus/build.sh installs it (.ci/run does).
NAME=citus
source "$(dirname "$0")/lib.sh"

require_module citus "run ../shared/tools/citus/build.sh as root"
DATA=${CAI_DATA_DIR:-$FAULTS_ROOT/../shared/data}
SST=$DATA/sentiment/sst2
NER=$DATA/ner/wikiann-en
SST_ROWS=${CITUS_SST_ROWS:-20000}	# training rows of SST-2 (the whole file is 60,614)
NER_ROWS=${CITUS_NER_ROWS:-3000}	# training sentences of WikiANN

CITUS_CONF=("shared_preload_libraries = 'citus'" "max_prepared_transactions = 40" "max_connections = 60")

# citus_node VAR: start a node; sets VAR_H (socket dir), VAR_P (port), VAR_D (data dir)
citus_node() {
	local exports PGHOST PGPORT CAI_PGDATA
	exports=$("$FAULTS_ROOT/scripts/pgcluster.sh" start) || bail "start node $1"
	eval "$exports"
	on_exit "'$FAULTS_ROOT/scripts/pgcluster.sh' stop '$CAI_PGDATA'"
	# Citus connects to its own node (rebalancing, replicating reference tables) by citus.local_hostname
	printf '%s\n' "${CITUS_CONF[@]}" "citus.local_hostname = '$PGHOST'" | as_pg tee -a "$CAI_PGDATA/data/postgresql.conf" >/dev/null
	as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$CAI_PGDATA/server.log" -w -t 60 restart >/dev/null \
		|| bail "restart node $1 with Citus preloaded"
	q -h "$PGHOST" -p "$PGPORT" -c "CREATE EXTENSION citus" || bail "CREATE EXTENSION citus on node $1"
	printf -v "${1}_H" %s "$PGHOST"; printf -v "${1}_P" %s "$PGPORT"; printf -v "${1}_D" %s "$CAI_PGDATA"
	export PGUSER	# the user pgcluster.sh made (postgres when run as root)
}

citus_node C; citus_node W1; citus_node W2
C="-h $C_H -p $C_P"; W1="-h $W1_H -p $W1_P"; W2="-h $W2_H -p $W2_P"
diag "coordinator $C_H:$C_P, workers $W1_H:$W1_P and $W2_H:$W2_P"
q $C >/dev/null <<SQL || bail "form the cluster"
SELECT citus_set_coordinator_host('$C_H', $C_P);
SELECT citus_add_node('$W1_H', $W1_P);
SELECT citus_add_node('$W2_H', $W2_P);
CREATE EXTENSION cai_synergy;
SQL
is "$(q $W1 -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" \
	"$(q $C -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" \
	"CREATE EXTENSION on the coordinator reaches the workers"
is "$(q $C -c "SELECT string_agg(t::text, ', ' ORDER BY t::text) FROM cai_citus_setup() t")" \
	"cai_deployments, cai_model_store, cai_vector_store" "cai_citus_setup() makes the catalog tables reference tables"
is "$(q $C -c "SELECT count(*) FROM cai_citus_setup()")" 0 "cai_citus_setup() again has nothing left to do"
out=$(q $W1 -c "SELECT cai_citus_setup()" 2>&1)
grep -q "runs on the Citus coordinator" <<<"$out"; ok $? "cai_citus_setup() on a worker is refused"
q $C -c "CREATE ROLE analyst LOGIN; CREATE ROLE intruder LOGIN" || bail "create roles"

# ---- data: distributed tables (and local copies of the test rows on the coordinator)
q $C >/dev/null <<'SQL' || bail "create the tables"
CREATE TABLE sst (id bigint, sentence text, label text);
CREATE TABLE sst_test (id bigint, sentence text, label text);
CREATE TABLE ner (id bigint, tokens text[], tags text[]);
CREATE TABLE ner_test (id bigint, tokens text[], tags text[]);
CREATE TEMP TABLE raw (n bigserial, line text);
SQL
if [ -f "$SST/train.tsv" ] && [ -f "$NER/train.conll" ]; then
	diag "data: SST-2 and WikiANN from $DATA ($SST_ROWS training rows, $NER_ROWS training sentences)"
	load_tsv() {	# load_tsv FILE TABLE LIMIT
		q $C -c "CREATE TEMP TABLE t (label text, sentence text)" \
			-c "\\copy t FROM '$1' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x02')" \
			-c "INSERT INTO $2 SELECT row_number() OVER (), sentence, label FROM (SELECT * FROM t LIMIT $3) s"
	}
	load_conll() {	# load_conll FILE TABLE LIMIT
		q $C -c "CREATE TEMP TABLE raw (n bigserial, line text)" \
			-c "\\copy raw (line) FROM '$1' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')" \
			-c "INSERT INTO $2 SELECT s, array_agg(split_part(line, E'\\t', 1) ORDER BY n), array_agg(split_part(line, E'\\t', 2) ORDER BY n)
			      FROM (SELECT n, line, count(*) FILTER (WHERE coalesce(line, '') = '') OVER (ORDER BY n) AS s FROM raw) r
			     WHERE coalesce(line, '') <> '' AND s < $3 GROUP BY s"
	}
	load_tsv "$SST/train.tsv" sst "$SST_ROWS" && load_tsv "$SST/test.tsv" sst_test 872 \
		&& load_conll "$NER/train.conll" ner "$NER_ROWS" && load_conll "$NER/test.conll" ner_test 1000 \
		|| bail "load SST-2 and WikiANN"
else
	diag "data: $DATA has no SST-2 / WikiANN; generated rows"
	q $C >/dev/null <<'SQL' || bail "generate data"
INSERT INTO sst SELECT g, CASE WHEN g % 2 = 0 THEN 'a great and moving film ' ELSE 'a dull and awful film ' END || (g % 13),
                       (g % 2)::text FROM generate_series(1, 4000) g;
INSERT INTO sst_test SELECT g, CASE WHEN g % 3 = 0 THEN 'great acting' ELSE 'awful plot ' || g END, (g % 3 = 0)::int::text
  FROM generate_series(1, 500) g;
INSERT INTO ner SELECT g, ARRAY[f, 'works', 'for', o, 'in', c, '.'], ARRAY['B-PER', 'O', 'O', 'B-ORG', 'O', 'B-LOC', 'O']
  FROM (SELECT g, (ARRAY['John','Mary','Ahmed','Li','Olga'])[1 + g % 5] AS f, (ARRAY['Acme','Globex','Initech'])[1 + g % 3] AS o,
               (ARRAY['Paris','Tokyo','Lagos','Lima'])[1 + g % 4] AS c FROM generate_series(1, 1500) g) s;
INSERT INTO ner_test SELECT * FROM ner WHERE id <= 300;
SQL
fi
q $C >/dev/null <<'SQL' || bail "distribute the tables"
CREATE TABLE sst_test_local AS SELECT * FROM sst_test;
CREATE TABLE ner_test_local AS SELECT * FROM ner_test;
SELECT create_distributed_table('sst', 'id');
SELECT create_distributed_table('sst_test', 'id');
SELECT create_distributed_table('ner', 'id');
SELECT create_distributed_table('ner_test', 'id');
SQL
diag "rows: $(q $C -c "SELECT (SELECT count(*) FROM sst) || ' sst, ' || (SELECT count(*) FROM sst_test) || ' sst_test, '
                              || (SELECT count(*) FROM ner) || ' ner, ' || (SELECT count(*) FROM ner_test) || ' ner_test'")"

# ---- training on the coordinator from distributed tables
q $C -c "SELECT 1 FROM cai_train('s', 'sentiment', 'sst', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 1}')" >/dev/null
ok $? "a sentiment model trains on the coordinator from a distributed table"
q $C -c "SELECT 1 FROM cai_train('s', 'sentiment', 'sst', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 2, \"epochs\": 2, \"deploy\": \"always\"}')" >/dev/null
ok $? "a second version trains and is deployed"
j=$(q $C -c "SELECT cai_train_async('e', 'ner', 'SELECT tokens, tags FROM ner', 'tokens', 'tags', '{\"epochs\": 3, \"seed\": 1}')")
is "$(q $C -c "SELECT state FROM cai_wait($j)")" succeeded "an entity model trains as a job from a distributed query"
is "$(q $C -c "SELECT model || ' ' || state FROM cai_jobs WHERE job_id = $j")" "e succeeded" "the job is in the coordinator's cai_jobs"
q $C -c "SELECT cai_import_vectors('v', convert_to(E'great 1 0.1\ngood 0.9 0.2\nawful -1 0.1\ndull -0.8 0.3\n', 'UTF8'), 'glove')" >/dev/null
ok $? "a vector set is imported on the coordinator"
q $C -v cfg="$(cat "$FAULTS_ROOT/test/fixtures/encoder/config.json")" -v vocab="$(cat "$FAULTS_ROOT/test/fixtures/encoder/vocab.txt")" \
	-v w="$(base64 -w0 "$FAULTS_ROOT/test/fixtures/encoder/model.safetensors")" >/dev/null <<'SQL'
SELECT cai_import_encoder('enc', :'cfg'::jsonb, :'vocab', decode(:'w', 'base64'));
SQL
ok $? "an encoder is imported on the coordinator (test/fixtures/encoder)"
out=$(q $W1 -c "SELECT 1 FROM cai_train('w', 'sentiment', 'sst', 'sentence', 'label')" 2>&1)
grep -q "cannot train a model on a Citus worker node" <<<"$out"; ok $? "training on a worker is refused with a clear message"
diag "$(head -n 1 <<<"$out")"

# ---- every node holds every model
CAT_SQL="SELECT string_agg(name || ' v' || version || CASE WHEN deployed THEN '*' ELSE '' END || ' ' || md5(model), ', ' ORDER BY name, version)
           FROM cai_model_store"
LOCAL_CAT_SQL=$(sed 's/FROM cai_model_store/FROM cai_model_store_COPY/' <<<"$CAT_SQL")
copy_of() { q "$@" -c "SET citus.override_table_visibility = off" \
	-c "SELECT shard_name('cai_model_store'::regclass, shardid) FROM pg_dist_shard WHERE logicalrelid = 'cai_model_store'::regclass"; }
cat_c=$(q $C -c "$CAT_SQL")
for n in C W1 W2; do
	eval "args=\$$n"
	shard=$(copy_of $args | tail -n 1)
	is "$(q $args -c "SET citus.override_table_visibility = off" -c "${LOCAL_CAT_SQL//cai_model_store_COPY/$shard}" | tail -n 1)" \
		"$cat_c" "node $n holds its own copy of every model version (bytes identical)"
done
is "$(q $W2 -c "SELECT string_agg(name || ' ' || words, ',') FROM cai_vectors")" "v 4" "the vector set is listed on a worker"
is "$(q $W2 -c "SELECT string_agg(word, ',' ORDER BY similarity DESC) FROM cai_similar('v', 'great', 2)")" \
	"$(q $C -c "SELECT string_agg(word, ',' ORDER BY similarity DESC) FROM cai_similar('v', 'great', 2)")" \
	"cai_similar on a worker reads its own copy of the vector set"

# ---- pushed down, identical answers
pushed() {	# pushed SQL FUNCTION: EXPLAIN VERBOSE shows FUNCTION inside the task query
	q $C -c "EXPLAIN (VERBOSE, COSTS OFF) $1" | grep "Query:" | grep -q "$2("
}
SST_Q="SELECT id, cai_predict('s', sentence) AS label, cai_predict_proba('s', sentence)::text AS proba FROM TABLE ORDER BY id"
NER_Q="SELECT id, cai_tag('e', tokens)::text AS tags FROM TABLE ORDER BY id"
# a set-returning function pushed down in the target list (Citus refuses non-immutable ones in FROM)
ENT_Q="SELECT id, cai_entities('e', array_to_string(tokens, ' '))::text AS ent FROM TABLE ORDER BY id, ent"
EMB_Q="SELECT id, cai_embed('v', sentence)::text AS emb FROM TABLE ORDER BY id"
ENC_Q="SELECT id, cai_embed('enc', sentence, 'cls')::text AS emb FROM TABLE ORDER BY id"
pushed "${SST_Q//TABLE/sst_test}" cai_predict; ok $? "EXPLAIN: cai_predict runs in the shard queries"
pushed "${SST_Q//TABLE/sst_test}" cai_predict_proba; ok $? "EXPLAIN: cai_predict_proba runs in the shard queries"
pushed "${NER_Q//TABLE/ner_test}" cai_tag; ok $? "EXPLAIN: cai_tag runs in the shard queries"
pushed "${ENT_Q//TABLE/ner_test}" cai_entities; ok $? "EXPLAIN: cai_entities runs in the shard queries"
pushed "${EMB_Q//TABLE/sst_test}" cai_embed; ok $? "EXPLAIN: cai_embed runs in the shard queries"
same() {	# same QUERY-WITH-TABLE DIST LOCAL DESCRIPTION: answers on the distributed table = on the local one
	local d l
	d=$(q $C -c "${1//TABLE/$2}" 2>&1); l=$(q $C -c "${1//TABLE/$3}" 2>&1)
	[ -n "$d" ] && [ "$d" == "$l" ] && ! grep -q ERROR <<<"$d"; ok $? "$4"
	[ "$d" == "$l" ] || { diag "distributed: $(head -c 300 <<<"$d")"; diag "local: $(head -c 300 <<<"$l")"; }
}
same "$SST_Q" sst_test sst_test_local "cai_predict / cai_predict_proba on the shards equal the single-node answers"
same "$NER_Q" ner_test ner_test_local "cai_tag on the shards equals the single-node answers"
same "$ENT_Q" ner_test ner_test_local "cai_entities on the shards equals the single-node answers"
same "$EMB_Q" sst_test sst_test_local "cai_embed on the shards equals the single-node answers"
pushed "${ENC_Q//TABLE/sst_test}" cai_embed; ok $? "EXPLAIN: cai_embed with an encoder runs in the shard queries"
same "$ENC_Q" sst_test sst_test_local "cai_embed with an encoder on the shards equals the single-node answers"
ACC_SQL="SELECT round(avg((cai_predict('s', sentence) = label)::int), 4) FROM TABLE"
is "$(q $C -c "${ACC_SQL//TABLE/sst_test}")" "$(q $C -c "${ACC_SQL//TABLE/sst_test_local}")" \
	"test accuracy from the distributed table equals the local one ($(q $C -c "${ACC_SQL//TABLE/sst_test}"))"
BATCH_SQL="SELECT md5(string_agg(key || label || score, ',' ORDER BY key::bigint)) FROM cai_predict_query('s', 'SELECT id, sentence FROM TABLE')"
is "$(q $C -c "${BATCH_SQL//TABLE/sst_test}")" "$(q $C -c "${BATCH_SQL//TABLE/sst_test_local}")" \
	"cai_predict_query over a distributed table (scored on the coordinator) equals the local answers"
is "$(q $C -c "${BATCH_SQL//TABLE/sst_test}")" \
	"$(q $C -c "SELECT md5(string_agg(id || cai_predict('s', sentence) || (cai_predict_proba('s', sentence) ->> cai_predict('s', sentence))::real, ',' ORDER BY id)) FROM sst_test")" \
	"cai_predict_query answers equal the pushed-down per-row answers"

# the rows come in another order than from the local table, so the batches hold other sentences: the same
# entities, scores equal up to the order of float sums
is "$(q $C -c "SELECT count(*) FROM cai_entities_query('e', 'SELECT id, array_to_string(tokens, '' '') FROM ner_test') d
                 FULL JOIN cai_entities_query('e', 'SELECT id, array_to_string(tokens, '' '') FROM ner_test_local') l
                   USING (key, entity, label, start_pos, end_pos)
                WHERE d.score IS NULL OR l.score IS NULL OR abs(d.score - l.score) > 1e-5")" 0 \
	"cai_entities_query over a distributed table equals the local answers"
# batch scoring on the shards themselves: each worker runs cai_predict_query over its own shards into a
# co-located table (one command per shard pair, each committed on its own)
q $C -c "CREATE TABLE sst_scores (id bigint, label text, score real)" \
	-c "SELECT create_distributed_table('sst_scores', 'id', colocate_with => 'sst_test')" >/dev/null
is "$(q $C -c "SELECT count(*) FILTER (WHERE success) || '/' || count(*) FROM run_command_on_colocated_placements('sst_test', 'sst_scores',
	\$\$INSERT INTO %2\$s SELECT key::bigint, label, score FROM cai_predict_query('s', 'SELECT id, sentence FROM %1\$s')\$\$)")" \
	"32/32" "cai_predict_query runs on every shard pair of the workers (run_command_on_colocated_placements)"
is "$(q $C -c "SELECT md5(string_agg(id || label || score, ',' ORDER BY id)) FROM sst_scores")" \
	"$(q $C -c "${BATCH_SQL//TABLE/sst_test_local}")" "... and the rows it stored equal the single-node batch answers"

# ---- a new deployment (and a rollback) is used by every node in the next statement
PROBA_SQL="SELECT md5(string_agg(cai_predict_proba('s', sentence)::text, ',' ORDER BY id)) FROM TABLE"
before=$(q $C -c "${PROBA_SQL//TABLE/sst_test}")
q $C -c "SELECT cai_deploy('s', 1)" >/dev/null; ok $? "deploy version 1 on the coordinator"
after=$(q $C -c "${PROBA_SQL//TABLE/sst_test}")
[ "$before" != "$after" ]; ok $? "the next pushed-down statement answers differently (the versions differ)"
is "$after" "$(q $C -c "${PROBA_SQL//TABLE/sst_test_local}")" "every shard used version 1 in the next statement"
is "$(q $W2 -c "SELECT version FROM cai_models WHERE name = 's' AND deployed")" 1 "a worker sees version 1 deployed"
is "$(q $C -c "SELECT cai_rollback('s')")" 2 "cai_rollback on the coordinator"
is "$(q $C -c "${PROBA_SQL//TABLE/sst_test}")" "$before" "every shard is back on version 2 in the next statement"
# a deployment inside a transaction: its own later pushed-down queries use it when Citus keeps one
# connection per node for the transaction (sequential mode); nobody uses it after ROLLBACK
in_tx=$(q $C -c "BEGIN" -c "SET LOCAL citus.multi_shard_modify_mode = 'sequential'" -c "SELECT cai_deploy('s', 1)" \
	-c "${PROBA_SQL//TABLE/sst_test}" -c "ROLLBACK" | tail -n 1)
is "$in_tx" "$after" "in sequential mode, a transaction's pushed-down query uses the version it deployed"
is "$(q $C -c "${PROBA_SQL//TABLE/sst_test}")" "$before" "after ROLLBACK every node still uses version 2"

# ---- ownership and row-level security on distributed tables
q $C >/dev/null <<'SQL' || bail "set up roles and a policy"
GRANT SELECT ON sst TO analyst, intruder;
ALTER TABLE sst ENABLE ROW LEVEL SECURITY;
CREATE POLICY analyst_half ON sst FOR SELECT TO analyst USING (id % 2 = 0);
CREATE POLICY intruder_none ON sst FOR SELECT TO intruder USING (false);
SQL
visible=$(q $C -c "SELECT count(*) FROM sst WHERE id % 2 = 0")
is "$(q $C -U analyst -c "SELECT (metrics->>'train_rows')::int + (metrics->>'n')::int FROM cai_train('owned', 'sentiment', 'sst', 'sentence', 'label', '{\"architecture\": \"fast\", \"epochs\": 1}')")" \
	"$visible" "training as a role reads only the rows its policy shows ($visible) from the distributed table"
out=$(q $C -U intruder -c "SELECT 1 FROM cai_train('stolen', 'sentiment', 'sst', 'sentence', 'label')" 2>&1)
grep -q "no rows\|no training rows\|0 rows\|empty" <<<"$out"; ok $? "a role whose policy shows no rows trains nothing"
diag "$(head -n 1 <<<"$out")"
out=$(q $C -U intruder -c "SELECT cai_drop_model('owned')" 2>&1)
grep -q "must be the owner\|permission denied\|owner" <<<"$out"; ok $? "another role cannot drop the model (coordinator)"
out=$(q $W1 -U intruder -c "SELECT cai_drop_model('owned')" 2>&1)
grep -q "must be the owner\|permission denied\|owner" <<<"$out"; ok $? "another role cannot drop the model (worker)"
is "$(q $W2 -c "SELECT owner FROM cai_models WHERE name = 'owned'")" analyst "the model's owner is the same on every node"
out=$(q $W1 -U intruder -c "INSERT INTO cai_model_store SELECT 'x', 1, task, model, metadata, metrics, owner FROM cai_model_store LIMIT 1" 2>&1)
grep -q "permission denied" <<<"$out"; ok $? "the store stays unwritable by ordinary roles on a worker"

# ---- a third node added later
citus_node W3; W3="-h $W3_H -p $W3_P"
q $C -c "SELECT citus_add_node('$W3_H', $W3_P)" >/dev/null; ok $? "citus_add_node adds a third node"
is "$(q $W3 -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" \
	"$(q $C -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" "the extension reaches the new node"
is "$(q $W3 -c "SELECT cai_predict('s', 'a gripping , beautifully acted film') || cai_predict_proba('s', 'dull')::text")" \
	"$(q $C -c "SELECT cai_predict('s', 'a gripping , beautifully acted film') || cai_predict_proba('s', 'dull')::text")" \
	"the new node serves the model before it holds a copy (read through the cluster)"
out=$(q $C -c "SELECT rebalance_table_shards(shard_transfer_mode := 'block_writes')" 2>&1)
ok $? "rebalance the shards onto the new node"
grep -q ERROR <<<"$out" && diag "$out"
is "$(q $C -c "SELECT count(*) > 0 FROM citus_shards WHERE nodeport = $W3_P AND table_name::text = 'sst_test'")" t \
	"shards of sst_test now live on the new node"
shard=$(copy_of $W3 | tail -n 1)
is "$(q $W3 -c "SET citus.override_table_visibility = off" -c "${LOCAL_CAT_SQL//cai_model_store_COPY/$shard}" | tail -n 1)" \
	"$(q $C -c "$CAT_SQL")" "the new node holds its own copy of every model"
same "$SST_Q" sst_test sst_test_local "after the rebalance, pushed-down answers (three workers) equal the single-node answers"
same "$ENT_Q" ner_test ner_test_local "after the rebalance, pushed-down entities equal the single-node answers"

# ---- a worker stopped mid-query, and while it is down
cat_before=$(q $C -c "$CAT_SQL")
# about 100 s of sleeping rows spread over the shards: still running when the worker stops after 2 s
( q $C -c "SELECT count(cai_predict('s', sentence)) FROM sst_test WHERE id <= 200 AND pg_sleep(0.5) IS NOT NULL" \
	>"$C_D/midquery.out" 2>&1; echo $? >"$C_D/midquery.rc" ) &
bg=$!
sleep 2
as_pg pg_ctl -D "$W2_D/data" -m immediate -w stop >/dev/null
wait $bg
rc=$(cat "$C_D/midquery.rc")
[ "$rc" -ne 0 ] && grep -qi "connection\|terminat\|could not\|server closed" "$C_D/midquery.out"
ok $? "a worker stopped mid-query: the query fails with a clean error"
diag "$(grep -m1 ERROR "$C_D/midquery.out")"
is "$(q $C -c "SELECT 1")" 1 "the coordinator keeps running"
out=$(q $C -c "SELECT cai_deploy('s', 1)" 2>&1)
grep -q ERROR <<<"$out"; ok $? "a deployment while a worker is down fails (every copy or none)"
diag "$(grep -m1 ERROR <<<"$out")"
as_pg pg_ctl -D "$W2_D/data" -l "$W2_D/server.log" -w -t 60 start >/dev/null; ok $? "the stopped worker restarts"
(PGHOST=$W2_H PGPORT=$W2_P wait_ready 60); ok $? "it accepts connections"
for n in C W1 W2 W3; do
	eval "args=\$$n"
	shard=$(copy_of $args | tail -n 1)
	is "$(q $args -c "SET citus.override_table_visibility = off" -c "${LOCAL_CAT_SQL//cai_model_store_COPY/$shard}" | tail -n 1)" \
		"$cat_before" "no model lost or changed on node $n"
done
same "$SST_Q" sst_test sst_test_local "after the restart, pushed-down answers equal the single-node answers"
q $C -c "SELECT cai_drop_model('s', 1)" >/dev/null; ok $? "drop a version on the coordinator"
is "$(q $W3 -c "SELECT string_agg(version::text, ',') FROM cai_models WHERE name = 's'")" 2 "the drop reaches every node"

finish
