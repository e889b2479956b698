#!/usr/bin/env bash
#
# citus.sh -- inference throughput on a Citus cluster (a coordinator and two workers on this machine)
# against one plain PostgreSQL server, side by side in each round.
#
# The table: the SST-2 train + dev + test sentences repeated to BENCH_ROWS rows, loaded into a plain
# table on the single server and into a table distributed by id (32 shards, the Citus default) on the
# cluster.  One model per architecture is trained on the single server, exported, and imported on the
# coordinator (after cai_citus_setup() it reaches every node), so both sides run the same bytes.
# Queries, each in a new session after a warm-up call (the model loaded in that session):
#   floor:   SELECT count(md5(sentence)) FROM big
#   fast:    SELECT count(cai_predict('fast', sentence)) FROM big
#   accurate SELECT count(cai_predict('accurate', sentence)) FROM big WHERE id <= BENCH_ACC_ROWS
# On the single server with max_parallel_workers_per_gather = 0 (one process) and = 2; on Citus the
# pushed-down shard queries (the workers' backends, citus.max_adaptive_executor_pool_size default).
# Wall time from the client (psql \timing), BENCH_REPEATS rounds, medians and ratios reported.
# Everything shares 2 cores: expect parity at best (the workers compete with each other and with the
# coordinator for the same cores); the point is the overhead Citus adds, not a speed-up.
#
# Usage: bench/citus.sh   (needs Citus: ../shared/tools/citus/build.sh; the installed extension)
# Environment: CAI_DATA_DIR [../shared/data], BENCH_ROWS [300000], BENCH_ACC_ROWS [20000],
#              BENCH_REPEATS [3], BENCH_OUT [bench/results-citus.md]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/citus.sh CAI_DATA_DIR BENCH_ROWS BENCH_ACC_ROWS BENCH_REPEATS BENCH_OUT
bench_cd_repo
SST="$(bench_dataset citus.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
ROWS=${BENCH_ROWS:-300000}
ACC_ROWS=${BENCH_ACC_ROWS:-20000}
REPEATS=${BENCH_REPEATS:-3}
OUT=${BENCH_OUT:-bench/results-citus.md}
PGBIN=/usr/lib/postgresql/15/bin
export PATH="$PGBIN:$PATH" PGDATABASE=postgres PGOPTIONS='-c client_min_messages=warning'
[ -f "$("$PGBIN/pg_config" --pkglibdir)/citus.so" ] || { echo "citus.sh: Citus is not installed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/cai_bench_citus.XXXXXX); chmod 755 "$TMP"
bench_results "$TMP/results.txt"
bench_put_machine
DIRS=()
cleanup() { for d in "${DIRS[@]}"; do scripts/pgcluster.sh stop "$d"; done; rm -rf "$TMP"; }
trap cleanup EXIT
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

node() {	# node VAR [citus]: start a cluster; VAR = "-h DIR -p PORT"
	local exports PGHOST PGPORT CAI_PGDATA
	exports=$(scripts/pgcluster.sh start); eval "$exports"; DIRS+=("$CAI_PGDATA")
	export PGUSER
	if [ "${2:-}" = citus ]; then
		printf '%s\n' "shared_preload_libraries = 'citus'" "max_prepared_transactions = 40" \
			"citus.local_hostname = '$PGHOST'" | as_pg tee -a "$CAI_PGDATA/data/postgresql.conf" >/dev/null
		as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$CAI_PGDATA/server.log" -w restart >/dev/null
		q -h "$PGHOST" -p "$PGPORT" -c "CREATE EXTENSION citus"
	fi
	printf -v "$1" %s "-h $PGHOST -p $PGPORT"
	printf -v "${1}_HOSTPORT" %s "'$PGHOST', $PGPORT"
}
log "starting a single server, a coordinator and two workers"
node S; node C citus; node W1 citus; node W2 citus
q $C -c "SELECT citus_set_coordinator_host($C_HOSTPORT)" -c "SELECT citus_add_node($W1_HOSTPORT)" \
	-c "SELECT citus_add_node($W2_HOSTPORT)" -c "CREATE EXTENSION cai_synergy" -c "SELECT cai_citus_setup()" >/dev/null
q $S -c "CREATE EXTENSION cai_synergy"

log "loading $ROWS rows"
cat "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" | awk -F'\t' 'FNR > 1 && $1 ~ /^[01]$/ { print $2 "\t" $1 }' \
	> "$TMP/sentences.tsv"
chmod a+r "$TMP/sentences.tsv"
LOAD_SQL="CREATE TEMP TABLE s (sentence text, label text);
\\copy s FROM '$TMP/sentences.tsv' WITH (FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x02')
CREATE TABLE big (id bigint, sentence text, label text);
DISTRIBUTE
WITH n AS (SELECT row_number() OVER () AS n, sentence, label FROM s), c AS (SELECT count(*) AS c FROM s)
INSERT INTO big SELECT r * c.c + n.n, n.sentence, n.label FROM n, c, generate_series(0, ($ROWS - 1) / c.c) r
 WHERE r * c.c + n.n <= $ROWS;
ANALYZE big;"
q $S <<<"${LOAD_SQL//DISTRIBUTE/}"
DIST="SELECT create_distributed_table('big', 'id');"
q $C <<<"${LOAD_SQL//DISTRIBUTE/$DIST}"
put rows "$(q $C -c "SELECT count(*) FROM big")"

log "training on the single server, importing on the coordinator"
q $S -c "CREATE TABLE train AS SELECT sentence, label FROM big WHERE id <= 60614" \
	-c "SELECT 1 FROM cai_train('fast', 'sentiment', 'train', 'sentence', 'label', '{\"architecture\": \"fast\", \"seed\": 1}')" \
	-c "SELECT 1 FROM cai_train('accurate', 'sentiment', 'train', 'sentence', 'label', '{\"seed\": 1, \"epochs\": 2}')" >/dev/null
for m in fast accurate; do
	q $S -c "COPY (SELECT encode(cai_export('$m'), 'base64')) TO STDOUT" > "$TMP/$m.b64"
	q $C -c "CREATE TEMP TABLE b (x text)" -c "\\copy b FROM '$TMP/$m.b64'" \
		-c "SELECT cai_import('$m', decode(string_agg(x, ''), 'base64')) FROM b" >/dev/null
done
[ "$(q $S -c "SELECT md5(cai_export('fast')) || md5(cai_export('accurate'))")" = \
  "$(q $C -c "SELECT md5(cai_export('fast')) || md5(cai_export('accurate'))")" ] || { echo "model bytes differ" >&2; exit 1; }

timed() {	# timed SERVER-ARGS SETUP SQL: wall seconds of SQL in a new session (after SETUP and a warm-up)
	local t
	t=$(q "$@" 2>&1 | grep -oE 'Time: [0-9.]+' | tail -n 1 | cut -d' ' -f2)
	awk -v t="$t" 'BEGIN { printf "%.4f", t / 1000 }'
}
run() {	# run KEY ARGS SETUP SQL
	local key=$1 args=$2 setup=$3 sql=$4
	put "$key" "$(timed $args -c "SET jit = off" -c "$setup" -c "SELECT cai_predict('fast', 'warm up'), cai_predict('accurate', 'warm up')" \
		-c '\timing on' -c "$sql")"
}
FLOOR="SELECT count(md5(sentence)) FROM big"
FAST="SELECT count(cai_predict('fast', sentence)) FROM big"
ACC="SELECT count(cai_predict('accurate', sentence)) FROM big WHERE id <= $ACC_ROWS"
PAR="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0"
POOL1="SET citus.max_adaptive_executor_pool_size = 1"
# the first query on the cluster: every worker backend loads the models (the first one writes the node's shared copy)
put first.citus "$(timed $C -c '\timing on' -c "$FAST")"
for r in $(seq 1 "$REPEATS"); do
	log "round $r of $REPEATS (load $(load))"
	for w in floor:FLOOR fast:FAST acc:ACC; do
		k=${w%%:*}; v=${w##*:}; sql=${!v}
		run "$k.single.$r" "$S" "SET max_parallel_workers_per_gather = 0" "$sql"
		run "$k.parallel.$r" "$S" "$PAR" "$sql"
		run "$k.citus.$r" "$C" "SELECT 1" "$sql"
		run "$k.citus1.$r" "$C" "$POOL1" "$sql"
	done
done
put same_answers "$( [ "$(q $S -c "SELECT count(*) FILTER (WHERE cai_predict('fast', sentence) = label) FROM big")" = \
                      "$(q $C -c "SELECT count(*) FILTER (WHERE cai_predict('fast', sentence) = label) FROM big")" ] && echo yes || echo NO)"

# ---- report
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
val() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$R"; }
series() { local s="" r; for r in $(seq 1 "$REPEATS"); do s="$s $(val "$1.$r")"; done; echo "$s"; }
{
	echo "# Inference on a Citus cluster against one server"
	echo
	echo "Command: \`$(val command)\`  "
	echo "Date: $(val date); $(val nproc) cores ($(val cpu)), $(val mem_gb) GiB; git $(val git); $(val blas_env)"
	echo
	echo "One machine: a single PostgreSQL 15 server beside a Citus 13.2 cluster (coordinator + 2 workers, 32 shards),"
	echo "all on the same $(val nproc) cores. Table \`big\`: $(val rows) rows (SST-2 sentences repeated). The same model"
	echo "bytes on both (trained on the single server, imported on the coordinator; \`cai_citus_setup()\` copies them to every"
	echo "node). Wall seconds from psql \`\\timing\`, one new session per query after a warm-up call; $REPEATS rounds,"
	echo "median; rows/s = rows / median. accurate: the first $ACC_ROWS rows. Same answers on both: $(val same_answers)."
	echo
	echo "| query | setting | seconds (rounds) | median s | rows/s | vs single process |"
	echo "|---|---|---|---|---|---|"
	for k in floor fast acc; do
		n=$(val rows); [ "$k" = acc ] && n=$ACC_ROWS
		base=$(series "$k.single" | median)
		for st in single parallel citus citus1; do
			m=$(series "$k.$st" | median)
			label=$st; [ "$st" = single ] && label="one server, 1 process"; [ "$st" = parallel ] && label="one server, 2 parallel workers"
			[ "$st" = citus ] && label="Citus, 32 shard tasks on 2 workers (default pool)"
			[ "$st" = citus1 ] && label="Citus, one connection per worker"
			printf '| %s | %s | %s | %.3f | %.0f | %.2fx |\n' "$k" "$label" "$(series "$k.$st" | sed 's/^ //; s/ /, /g')" "$m" \
				"$(awk -v n="$n" -v m="$m" 'BEGIN { print n / m }')" "$(awk -v b="$base" -v m="$m" 'BEGIN { print b / m }')"
		done
	done
	echo
	echo "The first query on the cluster (fast model, before any worker backend had loaded a model): $(val first.citus) s:"
	echo "each node loads the model for the first time (reads it from its catalog copy, validates it, writes its shared"
	echo "copy) while up to 16 new backends per worker start; later queries map the shared copy."
	echo
	echo "Where the time goes: every shard query is a separate task (32 of them, each parsed, planned and executed on a"
	echo "worker's backend); by default Citus runs them over up to 16 connections per worker, and every connection beyond"
	echo "the one it caches is a new backend that loads the library and maps the model from the node's shared copy; the"
	echo "coordinator merges 32 partial counts. With one connection per worker"
	echo '(`citus.max_adaptive_executor_pool_size = 1`) the tasks run one after another on a cached backend that already'
	echo "holds the model. With all processes on 2 cores, pushing down adds no cores, only this per-task overhead; on"
	echo "separate machines the per-row work divides by the number of workers."
} > "$OUT"
cat "$OUT"
