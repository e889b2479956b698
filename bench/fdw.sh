#!/usr/bin/env bash
#
# fdw.sh -- scoring time across two postgres_fdw shards against one server, side by side in each round.
#
# Three throwaway servers on this machine: a coordinator and two shards.  Table `big`: the SST-2 train + dev
# sentences repeated to BENCH_ROWS rows, hash-partitioned on id into two foreign partitions (one per shard,
# servers with extensions 'cai_synergy', use_remote_estimate, async_capable), and the same rows in a plain
# table `big_local` on the coordinator: the one-server side.  Table `news`: WikiANN test sentences as text,
# sharded and local the same way.  Models trained on the coordinator (fast sentiment, NER) and copied to the
# shards with their version numbers (cai_import(model, data, version)).  Queries, each in a new session after
# a warm-up statement in that session:
#   filter:  SELECT count(*) FROM T WHERE cai_predict('s', 1, sentence) = label       (WHERE ships)
#   rows:    SELECT count(*), count(DISTINCT l) FROM (SELECT id, cai_predict('s', 1, sentence) l FROM T GROUP BY id, 2) r
#            (every row's label computed where the row is and sent to the coordinator)
#   agg:     the filter's count as SELECT sum(c) FROM (SELECT count(*) c FROM big_p0 WHERE ... UNION ALL ... big_p1 ...) s
#            on the shards (each partition's aggregate ships; one server: the filter query)
#   ner:     SELECT count(*) FROM news WHERE cai_predict('e', 1, body) <> '[]'
# One server: max_parallel_workers_per_gather = 0 (one process) and = 2 (with min_parallel_table_scan_size = 0).  Shards: the two foreign scans run at
# once (Async Foreign Scan), one backend per shard.  Wall time from psql \timing, BENCH_REPEATS rounds, medians.
# Everything shares the same 2 cores: two shards can at best match two parallel workers; the point is what
# postgres_fdw adds, and that the work really runs on the shards.
#
# Usage: bench/fdw.sh   (the installed extension; PGBIN selects the installation)
# Environment: CAI_DATA_DIR [../shared/data], BENCH_ROWS [300000], BENCH_REPEATS [3], BENCH_OUT [bench/results-fdw.md],
#              PGBIN [/usr/lib/postgresql/15/bin], BENCH_PORT_BASE [random ports; else N, N+1, N+2]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/fdw.sh CAI_DATA_DIR BENCH_ROWS BENCH_REPEATS BENCH_OUT PGBIN BENCH_PORT_BASE
bench_cd_repo
SST="$(bench_dataset fdw.sh sentiment/sst2 train.tsv dev.tsv)"
NER="$(bench_dataset fdw.sh ner/wikiann-en train.conll test.conll)"
ROWS=${BENCH_ROWS:-300000}
REPEATS=${BENCH_REPEATS:-3}
OUT=${BENCH_OUT:-bench/results-fdw.md}
export PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH" PGDATABASE=postgres PGOPTIONS='-c client_min_messages=warning'
TMP=$(mktemp -d /tmp/cai_bench_fdw.XXXXXX); chmod 755 "$TMP"
bench_results "$TMP/results.txt"
bench_put_machine
DIRS=()
cleanup() { for d in "${DIRS[@]}"; do scripts/pgcluster.sh stop "$d"; done; rm -rf "$TMP"; }
trap cleanup EXIT
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

node() {	# node VAR N: start a server; VAR = "-h DIR -p PORT", VAR_H, VAR_P
	local exports PGHOST PGPORT CAI_PGDATA
	if [ -n "${BENCH_PORT_BASE:-}" ]; then export CAI_PGPORT=$((BENCH_PORT_BASE + $2)); fi
	exports=$(scripts/pgcluster.sh start); eval "$exports"; DIRS+=("$CAI_PGDATA")
	unset CAI_PGPORT
	export PGUSER
	q -h "$PGHOST" -p "$PGPORT" -c "CREATE EXTENSION cai_synergy"
	printf -v "$1" %s "-h $PGHOST -p $PGPORT"; printf -v "${1}_H" %s "$PGHOST"; printf -v "${1}_P" %s "$PGPORT"
}
log "starting a coordinator and two shards"
node C 0; node S1 1; node S2 2
for s in "$S1" "$S2"; do
	q $s -c "CREATE TABLE big_shard (id bigint PRIMARY KEY, sentence text, label text)" \
		-c "CREATE TABLE news_shard (id bigint PRIMARY KEY, body text)"
done
q $C >/dev/null <<SQL
CREATE EXTENSION postgres_fdw;
CREATE SERVER shard1 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$S1_H', port '$S1_P', dbname 'postgres',
  extensions 'cai_synergy', use_remote_estimate 'true', fetch_size '10000', batch_size '1000', async_capable 'true');
CREATE SERVER shard2 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$S2_H', port '$S2_P', dbname 'postgres',
  extensions 'cai_synergy', use_remote_estimate 'true', fetch_size '10000', batch_size '1000', async_capable 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard1 OPTIONS (user '$PGUSER');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard2 OPTIONS (user '$PGUSER');
ALTER FUNCTION cai_predict(text, integer, text) COST 10000;
CREATE TABLE big (id bigint, sentence text, label text) PARTITION BY HASH (id);
CREATE FOREIGN TABLE big_p0 PARTITION OF big FOR VALUES WITH (MODULUS 2, REMAINDER 0) SERVER shard1 OPTIONS (table_name 'big_shard');
CREATE FOREIGN TABLE big_p1 PARTITION OF big FOR VALUES WITH (MODULUS 2, REMAINDER 1) SERVER shard2 OPTIONS (table_name 'big_shard');
CREATE TABLE news (id bigint, body text) PARTITION BY HASH (id);
CREATE FOREIGN TABLE news_p0 PARTITION OF news FOR VALUES WITH (MODULUS 2, REMAINDER 0) SERVER shard1 OPTIONS (table_name 'news_shard');
CREATE FOREIGN TABLE news_p1 PARTITION OF news FOR VALUES WITH (MODULUS 2, REMAINDER 1) SERVER shard2 OPTIONS (table_name 'news_shard');
CREATE TEMP TABLE t (label text, sentence text);
\\copy t FROM '$SST/train.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x02')
CREATE TABLE sst_train AS SELECT sentence, label FROM t;
\\copy t FROM '$SST/dev.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x02')
CREATE TABLE big_local AS
  SELECT g AS id, s.sentence, s.label FROM generate_series(1, $ROWS) g
    JOIN (SELECT row_number() OVER () - 1 AS n, sentence, label FROM t) s ON s.n = (g - 1) % (SELECT count(*) FROM t);
CREATE TEMP TABLE raw (n bigserial, line text, f text);
\\copy raw (line) FROM '$NER/train.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')
UPDATE raw SET f = 'train';
\\copy raw (line) FROM '$NER/test.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')
UPDATE raw SET f = 'test' WHERE f IS NULL;
\\i $REPO/test/faults/conll_sentences.sql
CREATE TABLE ner_train AS SELECT tokens, tags FROM sent WHERE f = 'train' ORDER BY s LIMIT 5000;
CREATE TABLE news_local AS SELECT row_number() OVER (ORDER BY s) AS id, array_to_string(tokens, ' ') AS body FROM sent WHERE f = 'test';
INSERT INTO big SELECT * FROM big_local;
INSERT INTO news SELECT * FROM news_local;
ANALYZE big; ANALYZE big_local; ANALYZE news; ANALYZE news_local;
SQL
log "training the models on the coordinator"
q $C -c "SELECT 1 FROM cai_train('s', 'sentiment', 'sst_train', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 1}')" >/dev/null
q $C -c "SELECT 1 FROM cai_train('e', 'ner', 'ner_train', 'tokens', 'tags', '{\"epochs\": 3, \"seed\": 1}')" >/dev/null
for s in "$S1" "$S2"; do
	q $C -c "COPY (SELECT name, version, cai_export(name, version) FROM cai_models ORDER BY name, version) TO STDOUT" \
		| q $s -c "CREATE TEMP TABLE incoming (name text, version int, data bytea)" -c "COPY incoming FROM STDIN" \
		       -c "SELECT count(cai_import(name, data, version)) FROM incoming" >/dev/null
done
put rows "$(q $C -c "SELECT count(*) FROM big_local")"
put news_rows "$(q $C -c "SELECT count(*) FROM news_local")"
put shard_rows "$(q $S1 -c "SELECT count(*) FROM big_shard") + $(q $S2 -c "SELECT count(*) FROM big_shard")"
put pg "$(q $C -c "SELECT version()" | awk '{print $1, $2}')"

declare -A SQL
SQL[filter]="SELECT count(*) FROM @T@ WHERE cai_predict('s', 1, sentence) = label"
# (partitionwise aggregation only here: under a partial aggregate per partition the foreign scans are not async)
SQL[rows]="SET enable_partitionwise_aggregate = on; SELECT count(*), count(DISTINCT l) FROM (SELECT id, cai_predict('s', 1, sentence) AS l FROM @T@ GROUP BY id, 2) r"
SQL[ner]="SELECT count(*) FROM @N@ WHERE cai_predict('e', 1, body) <> '[]'"
# the filter's count computed on each shard (the aggregate of one foreign partition ships), both at once
SQL[agg]="SELECT sum(c)::bigint FROM (SELECT count(*) AS c FROM big_p0 WHERE cai_predict('s', 1, sentence) = label
                               UNION ALL SELECT count(*) FROM big_p1 WHERE cai_predict('s', 1, sentence) = label) s"
WARM="SELECT count(*) FROM @T@ WHERE id <= 20 AND cai_predict('s', 1, sentence) IS NOT NULL AND cai_predict('e', 1, sentence) IS NOT NULL"
SETTINGS=(local1 local2 shards)
PRE=(-c "SET jit = off")
tables() {	# tables SQL SETTING: the query on the sharded or the local tables
	local sql=$1
	if [ "$2" = shards ]; then sql=${sql//@T@/big}; sql=${sql//@N@/news}; else sql=${sql//@T@/big_local}; sql=${sql//@N@/news_local}; fi
	echo "$sql"
}
run() {	# run QUERY SETTING -> "seconds answer"
	local par="SET max_parallel_workers_per_gather = 0" out
	# two workers even for the small news table (parallel scans start at 8 MB by default)
	[ "$2" = local2 ] && par="SET max_parallel_workers_per_gather = 2; SET min_parallel_table_scan_size = 0; SET parallel_setup_cost = 0"
	local sql=${SQL[$1]}
	[ "$1" = agg ] && [ "$2" != shards ] && sql=${SQL[filter]}	# one server: the same count
	out=$(q $C "${PRE[@]}" -c "$par" -c "$(tables "$WARM" "$2")" \
		-c '\timing on' -c "$(tables "$sql" "$2")")
	echo "$(grep -oE '^Time: [0-9.]+' <<<"$out" | tail -n 1 | awk '{printf "%.4f", $2 / 1000}') $(grep -vE '^Time:|^Timing' <<<"$out" | tail -n 1)"
}
for qn in filter agg rows ner; do
	sql=$(tables "${SQL[$qn]}" shards)
	put "plan_$qn" "$(q $C "${PRE[@]}" -c "${sql%%SELECT*}SELECT 1" -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT${sql#*SELECT}" \
		| grep -c 'Remote SQL:.*cai_predict' || true)"
done
put async_agg "$(q $C "${PRE[@]}" -c "EXPLAIN (VERBOSE, COSTS OFF) ${SQL[agg]}" | grep -c 'Async Foreign Scan' || true)"
for r in $(seq 1 "$REPEATS"); do
	for qn in filter agg rows ner; do
		for st in "${SETTINGS[@]}"; do
			read -r sec ans < <(run "$qn" "$st")
			log "round $r $qn $st: $sec s ($ans)"
			put "t_${qn}_${st}_$r" "$sec"
			put "a_${qn}_${st}" "$ans"
		done
	done
done
put load_end "$(load)"

# ---- report
val() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); v = $0 } END { print v }' "$R"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
{
	echo "# Scoring across two postgres_fdw shards against one server"
	echo
	echo "Command: \`$(val command)\`  "
	echo "Date: $(val date); $(val nproc) cores ($(val cpu)), $(val mem_gb) GiB; git $(val git); $(val pg)"
	echo
	echo "One machine, three PostgreSQL servers on the same $(val nproc) cores: a coordinator and two shards. \`big\`: $(val rows)"
	echo "SST-2 train + dev sentences (repeated), hash-partitioned on id into two postgres_fdw foreign partitions"
	echo "($(val shard_rows) rows on the shards), and the same rows in a plain table on the coordinator (the one-server"
	echo "side). \`news\`: the $(val news_rows) WikiANN test sentences, sharded and local the same way. Models: fast sentiment"
	echo "(SST-2 train) and NER (5,000 WikiANN sentences, 3 epochs), trained on the coordinator and copied to the shards"
	echo "with their version numbers; the version-pinned \`cai_predict(model, 1, input)\` in every query. Shard servers:"
	echo "\`extensions 'cai_synergy', use_remote_estimate 'true', async_capable 'true'\`, \`fetch_size 10000\`;"
	echo "\`jit = off\`, \`enable_partitionwise_aggregate = on\` for the rows query only; the coordinator's pinned \`cai_predict\` at \`COST 10000\`."
	echo "Wall seconds from psql \`\\timing\`, one new session per query after a warm-up statement in it; $REPEATS rounds, median."
	echo
	echo "| query | what runs where | setting | seconds (rounds) | median s | vs one process | answer |"
	echo "|---|---|---|---|---|---|---|"
	for qn in filter agg rows ner; do
		case $qn in
			filter) what="count of rows whose prediction equals the label: the WHERE clause runs on the shards, counts of matching rows come back" ;;
			agg) what="the same count computed on each shard: \`count(*)\` of each foreign partition (shipped whole) under UNION ALL, one row back per shard" ;;
			rows) what="every row's label computed where the row is (grouped by id and label), $(val rows) labels sent to the coordinator" ;;
			ner) what="sentences with at least one entity (NER model per sentence), the WHERE clause on the shards" ;;
		esac
		base=""
		for st in "${SETTINGS[@]}"; do
			ts=""; for r in $(seq 1 "$REPEATS"); do ts="$ts $(val "t_${qn}_${st}_$r")"; done
			m=$(echo "$ts" | median)
			[ -z "$base" ] && base=$m
			case $st in
				local1) label="one server, 1 process" ;;
				local2) label="one server, 2 parallel workers" ;;
				shards) label="2 shards (Async Foreign Scan)" ;;
			esac
			printf '| %s | %s | %s | %s | %.3f | %.2fx | %s |\n' "$qn" "$what" "$label" "$(echo $ts | sed 's/ /, /g')" "$m" \
				"$(awk -v b="$base" -v m="$m" 'BEGIN { print b / m }')" "$(val "a_${qn}_${st}")"
			what=""
		done
	done
	echo
	echo "Reading: every process here shares the same $(val nproc) cores, so two shards add no cores; at best they match two"
	echo "parallel workers of one server. With a model that costs little per row (fast: about 1 µs) the shards lose to one"
	echo "server: each shard's backend scans and predicts its half, and every row that qualifies (filter, rows) crosses a"
	echo "socket to the coordinator; shipping only the counts (agg) removes most of that transfer. With a model that"
	echo "costs more per row (NER) the shards' work dominates and the two shards run at once. On separate machines the"
	echo "per-row work divides by the number of shards; these figures only bound what postgres_fdw adds. Timings on this"
	echo "shared machine vary with other jobs' load (load average below)."
	echo
	echo "Remote SQL lines with the call in the shard plans (EXPLAIN VERBOSE): filter $(val plan_filter), agg $(val plan_agg), rows $(val plan_rows), ner $(val plan_ner) (2 = both shards); Async Foreign Scans in the agg plan: $(val async_agg)."
	echo "Same answers on both sides: see the answer column (it must be equal within each query)."
	echo "Load average at the end: $(val load_end)."
} > "$OUT"
log "wrote $OUT"
cat "$OUT"
