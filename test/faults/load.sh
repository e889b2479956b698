#!/usr/bin/env bash
# load.sh: cai_predict under concurrent load while the model store changes.
# pgbench (16 clients, 2 threads) predicts on random generated sentences for
# LOAD_SECONDS (default 20) while, in parallel, an asynchronous training job
# runs to completion, another is started and cancelled, and cai_deploy
# switches the deployed version of the model every 2 s.  A long-lived session
# predicts in a loop the whole time.  Checks: zero failed transactions and no
# aborted client, no backend crash (postmaster start time unchanged, no
# "terminated by signal" in the server log), the jobs end as expected, and the
# private memory (RssAnon) of the long-lived session and of every pgbench
# backend grows by at most MAX_GROWTH_MB (default 20) between warm-up and end.
# Throughput and latency percentiles (from the per-transaction log) go to
# stdout and to bench/results-load.md (RESULTS=path to change, RESULTS= to skip).
# Then a model-cache churn: one session predicts while CHURN_VERSIONS new
# versions of a larger model are deployed (and the old ones dropped); its
# memory must stay flat too.
#   LOAD_SECONDS=N  CLIENTS=16  THREADS=2  MAX_GROWTH_MB=20  CHURN_VERSIONS=30  C_SECONDS=5  C_ROUNDS=1
NAME=load
source "$(dirname "$0")/lib.sh"
LOAD_SECONDS=${LOAD_SECONDS:-20}
[ "$LOAD_SECONDS" -ge 10 ] || LOAD_SECONDS=10
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
MAX_GROWTH_MB=${MAX_GROWTH_MB:-20}
CHURN_VERSIONS=${CHURN_VERSIONS:-30}
RESULTS=${RESULTS-$FAULTS_ROOT/bench/results-load.md}

# Memory growth is read from RssAnon.  glibc raises its mmap threshold after
# the first free of a large block, after which freed model-sized blocks (tens
# of MB of bytes read from the catalog) stay in the heap and RssAnon swings by
# one or two model sizes with heap layout alone (the churn check saw +38.6 and
# -38.6 MB in two runs of the same build).  A fixed threshold keeps large blocks
# mmapped, so what is freed leaves RssAnon and growth means memory still held.
export MALLOC_MMAP_THRESHOLD_=131072
cluster_start "max_connections = $((CLIENTS + 30))"
work=$CAI_PGDATA/load
mkdir -p "$work"
q -c "CREATE EXTENSION cai_synergy" && make_reviews postgres reviews 2000 && make_slow postgres slow \
	|| bail "set up the database"
q >/dev/null 2>&1 <<'SQL' || bail "train two versions of the live model"
SELECT 1 FROM cai_train('live', 'sentiment', 'reviews', options => '{"seed": 1}');
SELECT 1 FROM cai_train('live', 'sentiment', 'reviews', options => '{"seed": 2, "deploy": "always"}');
SQL
model_size=$(q -c "SELECT string_agg(size::text, ' / ' ORDER BY version) FROM cai_model_details WHERE name = 'live'")
diag "model live: versions 1 and 2, $model_size bytes"
start_time=$(q -c "SELECT pg_postmaster_start_time()")

# the long-lived session: a procedure predicting in a loop, committing every
# 50 iterations so it sees new deployments
q <<'SQL' || bail "create the loop procedure"
CREATE PROCEDURE predict_loop(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  n bigint := 0;
  words text[] := ARRAY['great', 'awful', 'film', 'acting', 'loved', 'hated', 'dull', 'superb', 'story', 'moving',
                        'boring', 'wonderful', 'weak', 'brilliant', 'terrible', 'the', 'a', 'and', 'it', 'truly'];
  s text;
  probe jsonb;
  seen jsonb[] := '{}';
BEGIN
  WHILE clock_timestamp() < t0 + seconds * interval '1 second' LOOP
    s := words[1 + (random() * 19)::int] || ' ' || words[1 + (random() * 19)::int] || ' '
         || words[1 + (random() * 19)::int] || ' ' || md5(random()::text);
    PERFORM cai_predict('live', s);
    PERFORM cai_predict_proba('live', s);
    n := n + 1;
    IF n % 50 = 0 THEN
      probe := cai_predict_proba('live', 'truly wonderful acting 3');
      IF NOT probe = ANY (seen) THEN seen := seen || probe; END IF;
      COMMIT;
    END IF;
  END LOOP;
  RAISE WARNING 'predict_loop: % iterations, % distinct answers on the probe', n, cardinality(seen);
END $$;
SQL

# pgbench: one random 3-8 word sentence a transaction (a word list and a random number)
cat >"$work/predict.sql" <<'PGB'
\set n random(3, 8)
\set seed random(1, 1000000000)
SELECT cai_predict('live', (SELECT string_agg((ARRAY['great', 'awful', 'film', 'acting', 'loved', 'hated', 'dull',
         'superb', 'story', 'moving', 'boring', 'wonderful', 'weak', 'brilliant', 'terrible', 'the', 'a', 'and', 'it',
         'truly'])[1 + (hashint4(:seed + i) & 2147483647) % 20], ' ') FROM generate_series(1, :n) i) || ' ' || :seed);
PGB
pgbench -n -f "$work/predict.sql" -c 1 -t 5 >"$work/smoke.out" 2>&1
ok $? "the pgbench script runs" || sed 's/^/# /' "$work/smoke.out"

rss_kb() {	# rss_kb PID FIELD -> kB (VmRSS or RssAnon from /proc/PID/status)
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null
}
rss_pgbench() {	# "pid:RssAnon" of every pgbench backend
	local p
	for p in $(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND backend_type = 'client backend'"); do
		echo "$p:$(rss_kb "$p" RssAnon)"
	done
}

# --- the run
cmd="pgbench -n -f predict.sql -c $CLIENTS -j $THREADS -T $LOAD_SECONDS -P 5 -l --log-prefix=pgb"
diag "running: $cmd (plus training, cancel, deploy switches, a long-lived session)"
(cd "$work" && exec $cmd) >"$work/pgbench.out" 2>&1 &
pgb=$!
PGAPPNAME=memloop q -c "CALL predict_loop($LOAD_SECONDS + 4)" >"$work/memloop.out" 2>&1 &
memloop=$!
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
wait_for 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'memloop' AND state = 'active'"
memloop_pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'memloop'")

# a training that runs through the load, and one that is cancelled
j_bg=$(q -c "SELECT cai_train_async('bg', 'sentiment', 'slow', options => '{\"epochs\": 4, \"patience\": 0}')")
j_cancel=$(q -c "SELECT cai_train_async('bg cancel', 'sentiment', 'slow', options => '{\"epochs\": 1000, \"patience\": 0}')")
wait_for 20 "SELECT state = 'running' FROM cai_jobs WHERE job_id = $j_cancel"
ok $? "the job to cancel is running under load"
sleep 1
is "$(q -c "SELECT cai_cancel($j_cancel)")" t "cai_cancel under load"
bg_during=$(q -c "SELECT state FROM cai_jobs WHERE job_id = $j_bg")

# deploy switches every 2 s; memory samples after warm-up (both versions used) and near the end
switches=0 deploy_errors=0 warm_done=0 version=2
while kill -0 "$pgb" 2>/dev/null; do
	e=$(elapsed)
	if [ "$e" -ge $((LOAD_SECONDS - 2)) ]; then
		end_mem=$(rss_kb "$memloop_pid" RssAnon); end_mem_rss=$(rss_kb "$memloop_pid" VmRSS); end_pgb=$(rss_pgbench)
		break
	fi
	if [ $((e % 2)) -eq 0 ] && [ "$e" -ne "${last_switch:--1}" ]; then
		last_switch=$e
		version=$((3 - version))
		if [ "$(q -c "SELECT cai_deploy('live', $version)" 2>>"$work/deploy.err")" = "$version" ]; then
			switches=$((switches + 1))
		else
			deploy_errors=$((deploy_errors + 1))
		fi
	fi
	if [ $warm_done -eq 0 ] && [ "$e" -ge 5 ]; then
		warm_done=1
		warm_mem=$(rss_kb "$memloop_pid" RssAnon); warm_mem_rss=$(rss_kb "$memloop_pid" VmRSS); warm_pgb=$(rss_pgbench)
		diag "warm-up at ${e}s: session RssAnon ${warm_mem} kB, VmRSS ${warm_mem_rss} kB"
	fi
	sleep 0.2
done
wait "$pgb"
pgb_status=$?
ok $pgb_status "pgbench exits with status 0"
sed 's/^/# pgbench: /' "$work/pgbench.out" | grep -vE 'pgbench: (transaction type|scaling factor|query mode|maximum number of tries|duration|number of clients|number of threads)'

# --- checks
failed_tx=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/pgbench.out")
is "${failed_tx:-missing}" 0 "zero failed transactions"
! grep -qiE 'aborted|error' "$work/pgbench.out"
ok $? "no aborted client and no error in pgbench's output"
processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench.out")
[ "${processed:-0}" -gt 0 ]; ok $? "transactions were processed (${processed:-0})"
tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.out" | awk '{printf "%.1f", $1}')
is "$deploy_errors" 0 "$switches deploy switches mid-run, none failed"
[ "$switches" -ge 3 ]; ok $? "the deployed version switched at least 3 times"
is "$(q -c "SELECT state FROM cai_wait($j_cancel)")" cancelled "the cancelled job ends cancelled"
is "$(q -c "SELECT count(*) FROM cai_models WHERE name = 'bg cancel'")" 0 "and stored nothing"
diag "background job state during the load: $bg_during"
is "$(q -c "SET statement_timeout = '120s'; SELECT state || ' v' || version FROM cai_wait($j_bg)")" "succeeded v1" \
	"the training that ran during the load succeeded"
bg_secs=$(q -c "SELECT round(extract(epoch FROM finished_at - started_at)::numeric, 1) FROM cai_jobs WHERE job_id = $j_bg")
wait "$memloop"
ok $? "the long-lived session's loop ran without error"
iters=$(grep -o 'predict_loop: [0-9]* iterations' "$work/memloop.out" | awk '{print $2}')
answers=$(grep -o '[0-9]* distinct answers' "$work/memloop.out" | awk '{print $1}')
is "${answers:-?}" 2 "the long-lived session followed the deploy switches (both versions' answers seen)"
diag "long-lived session: ${iters:-?} iterations (cai_predict + cai_predict_proba each)"

# the version deployed last is the one a new statement uses
final=$(q -c "SELECT version FROM cai_models WHERE name = 'live' AND deployed")
want=$(q -c "SELECT cai_predict_proba('live', 'truly wonderful acting 3')")
other=$(q <<SQL
BEGIN;
SELECT cai_deploy('live', $((3 - final))) \\g /dev/null
SELECT cai_predict_proba('live', 'truly wonderful acting 3');
ROLLBACK;
SQL
)
[ -n "$want" ] && [ "$want" != "$other" ]; ok $? "versions answer differently and the deployed one (v$final) is used"

is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "the postmaster never restarted"
! grep -qE 'terminated by signal|PANIC|TRAP' "$CAI_PGDATA/server.log"
ok $? "no backend terminated by a signal (server log)"
grep -E 'terminated by signal|PANIC|TRAP' "$CAI_PGDATA/server.log" | head -n 5 | sed 's/^/# log: /'

# memory: RssAnon (private memory; VmRSS also counts touched shared buffers)
growth_mb() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (b - a) / 1024}'; }
mem_growth=$(growth_mb "${warm_mem:-0}" "${end_mem:-0}")
diag "long-lived session RssAnon: warm-up ${warm_mem:-?} kB, end ${end_mem:-?} kB, growth $mem_growth MB (VmRSS ${warm_mem_rss:-?} -> ${end_mem_rss:-?} kB)"
[ -n "${warm_mem:-}" ] && [ -n "${end_mem:-}" ] && awk -v g="$mem_growth" -v m="$MAX_GROWTH_MB" 'BEGIN {exit !(g <= m)}'
ok $? "the long-lived session's memory is flat (growth $mem_growth MB <= $MAX_GROWTH_MB MB)"
pgb_growth=$(join -t: <(tr ' ' '\n' <<<"$warm_pgb" | sort) <(tr ' ' '\n' <<<"$end_pgb" | sort) \
	| awk -F: '$2 != "" && $3 != "" {g = ($3 - $2) / 1024; if (g > max) max = g; n++; w += $2; e += $3}
	           END {printf "%d %.1f %.0f %.0f", n, max, n ? w / n : 0, n ? e / n : 0}')
read -r pgb_n pgb_max pgb_warm_avg pgb_end_avg <<<"$pgb_growth"
diag "pgbench backends: $pgb_n sampled, RssAnon avg $pgb_warm_avg -> $pgb_end_avg kB, max growth $pgb_max MB"
[ "$pgb_n" -ge 1 ] && awk -v g="$pgb_max" -v m="$MAX_GROWTH_MB" 'BEGIN {exit !(g <= m)}'
ok $? "every pgbench backend's memory is flat (max growth $pgb_max MB <= $MAX_GROWTH_MB MB)"

# --- model cache churn: a session predicts while CHURN_VERSIONS new versions
# of a larger model are imported, deployed and the old ones dropped; the
# session must not keep the versions it no longer uses
q -c "SELECT 1 FROM cai_train('big', 'sentiment', 'slow', options => '{\"epochs\": 1, \"dimensions\": 20}')" >/dev/null 2>&1 \
	|| bail "train the churn model"
big_size=$(q -c "SELECT size FROM cai_model_details WHERE name = 'big'")
CHURN_WARM=5
{
	echo 'SELECT pg_backend_pid() AS pid \gset'
	echo '\setenv PID :pid'
	for i in $(seq 1 "$CHURN_VERSIONS"); do
		echo "\\! psql -X -qAt -c \"SELECT cai_deploy('big', cai_import('big', cai_export('big', 1)))\" -c \"SELECT count(cai_drop_model('big', version)) FROM cai_models WHERE name = 'big' AND version > 1 AND NOT deployed\" >/dev/null"
		echo "SELECT 'answer ' || cai_predict('big', 'word$i other$i more$i');"
		[ "$i" -eq "$CHURN_WARM" ] && echo '\! echo "rss_warm $(awk '"'"'/^RssAnon/ {print $2}'"'"' /proc/$PID/status)"'
	done
	echo '\! echo "rss_end $(awk '"'"'/^RssAnon/ {print $2}'"'"' /proc/$PID/status)"'
} >"$work/churn.sql"
t0=$(date +%s)
q -f "$work/churn.sql" >"$work/churn.out" 2>&1
ok $? "a session predicted through $CHURN_VERSIONS deployments of new versions of a $big_size-byte model ($(($(date +%s) - t0)) s)"
is "$(grep -c '^answer ' "$work/churn.out")" "$CHURN_VERSIONS" "every prediction during the churn answered"
grep -v -e '^answer ' -e '^rss_' "$work/churn.out" | head -n 5 | sed 's/^/# churn: /'
churn_warm=$(awk '$1 == "rss_warm" {print $2}' "$work/churn.out")
churn_end=$(awk '$1 == "rss_end" {print $2}' "$work/churn.out")
churn_growth=$(growth_mb "${churn_warm:-0}" "${churn_end:-0}")
diag "churn session RssAnon: after $CHURN_WARM versions ${churn_warm:-?} kB, after $CHURN_VERSIONS ${churn_end:-?} kB, growth $churn_growth MB"
[ -n "$churn_warm" ] && [ -n "$churn_end" ] && awk -v g="$churn_growth" -v m="$MAX_GROWTH_MB" 'BEGIN {exit !(g <= m)}'
ok $? "the model cache does not keep replaced versions (growth $churn_growth MB <= $MAX_GROWTH_MB MB)"
is "$(q -c "SELECT count(*) FROM cai_models WHERE name = 'big'")" 2 "the churn left version 1 and the deployed one"

# --- PARALLEL SAFE: parallel workers load the model and answer as the leader does
PAR="SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
     SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;"
PQ="SELECT count(*) || ' ' || sum(((cai_predict_proba('live', text || ' ' || md5(text))->>'positive')::float8 * 1e9)::bigint)
            || ' ' || sum((cai_predict('live', md5(text) || ' ' || text) = 'positive')::int) FROM reviews"
serial=$(q -c "SET max_parallel_workers_per_gather = 0; $PQ")
parallel=$(q -c "$PAR $PQ")
launched=$(q -c "$PAR EXPLAIN (ANALYZE, COSTS OFF, FORMAT TEXT) $PQ" | sed -n 's/.*Workers Launched: \([0-9]*\).*/\1/p')
[ "${launched:-0}" -ge 1 ]; ok $? "a parallel plan launched ${launched:-0} workers"
is "$parallel" "$serial" "parallel workers (partial aggregates) predict exactly as a serial scan: $parallel"

# latency percentiles from the per-transaction logs (3rd field, microseconds)
cat "$work"/pgb.* 2>/dev/null | awk '{print $3}' | sort -n >"$work/lat"
nlat=$(wc -l <"$work/lat")
pct() { awk -v p="$1" -v n="$nlat" 'NR == (int(n * p / 100) > 0 ? int(n * p / 100) : 1) {printf "%.2f", $1 / 1000; exit}' "$work/lat"; }
p50=$(pct 50); p95=$(pct 95); p99=$(pct 99)
pmax=$(tail -n 1 "$work/lat" | awk '{printf "%.2f", $1 / 1000}')
avg=$(awk '{s += $1} END {if (NR) printf "%.2f", s / NR / 1000}' "$work/lat")
is "$nlat" "${processed:-0}" "the per-transaction log has one line per transaction"
diag "throughput $tps tps; latency ms: avg $avg p50 $p50 p95 $p95 p99 $p99 max $pmax"

# --- a new connection for every query (dashboards, serverless functions):
# the first statement of a new connection, and pgbench -C with the fast model
# beside the same run with a trivial SQL function
C_SECONDS=${C_SECONDS:-5}
q -c "SELECT 1 FROM cai_train('fastlive', 'sentiment', 'reviews', options => '{\"architecture\": \"fast\", \"seed\": 1}')" >/dev/null 2>&1 \
	&& q -c "CREATE FUNCTION trivial(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT t'" >/dev/null \
	|| bail "train the fast model and create the trivial function"
q -c "SELECT cai_predict('fastlive', 'warm the shared copy')" >/dev/null
first_ms() {	# median ms of the first statement of 21 new connections: first_ms SQL
	local i
	for i in $(seq 21); do psql -X -q -c '\timing on' -c "$1" 2>/dev/null | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; done \
		| sort -n | awk '{a[NR] = $1} END {print (NR == 21 ? a[11] : "?")}'
}
first_select1=$(first_ms "SELECT 1")
first_version=$(first_ms "SELECT cai_version()")
first_predict=$(first_ms "SELECT cai_predict('fastlive', 'a great film')")
diag "first statement of a new connection, median of 21: SELECT 1 $first_select1 ms, cai_version() $first_version ms, cai_predict (fast, shared) $first_predict ms"
[ "$first_predict" != "?" ]; ok $? "21 new connections each answered their first cai_predict"
# PostgreSQL 15 re-sorts its settings for every custom setting defined, so a
# connection that only predicts defines none (cai_synergy.c)
lazy_expected=$(q -c "SELECT current_setting('server_version_num')::int < 160000")
is "$(q -c "SELECT cai_predict('fastlive', 'a great film') IS NOT NULL, current_setting('cai.training_memory', true) IS NULL,
            current_setting('cai.max_input_length', true) IS NULL")" \
	"t|$lazy_expected|$lazy_expected" "a new connection's cai_predict leaves the settings undefined (PostgreSQL 15 only)"
sed 's/cai_predict(.live.,/cai_predict('"'"'fastlive'"'"',/' "$work/predict.sql" >"$work/predict_c.sql"
sed 's/cai_predict(.live.,/trivial(/' "$work/predict.sql" >"$work/trivial_c.sql"
# The server's CPU per transaction, a second view of the same cost: the
# postmaster's cutime + cstime (/proc/PID/stat) grow by the CPU of every backend
# it reaped, so their growth over a run, divided by its transactions, is the
# CPU a new connection and its statement cost the server (it leaves out the
# pgbench client's share of the cores, and grows too when other jobs compete).
pm_pid=$(head -n 1 "$CAI_PGDATA/data/postmaster.pid")
clk_tck=$(getconf CLK_TCK)
reaped_ticks() { awk '{print $16 + $17}' "/proc/$pm_pid/stat"; }
ctps() {	# ctps SCRIPT: tps, failed transactions and server CPU ms per transaction of pgbench -C
	local t0 t1 n
	t0=$(reaped_ticks)
	(cd "$work" && pgbench -n -C -f "$1" -c "$CLIENTS" -j "$THREADS" -T "$C_SECONDS" 2>&1) >"$work/$1.out"
	sleep 0.2	# the last backends exit
	t1=$(reaped_ticks)
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/$1.out")
	echo "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/$1.out" | tail -n 1) $(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/$1.out")" \
		"$(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$clk_tck" 'BEGIN {printf "%.3f", (n > 0 ? d * 1000 / hz / n : 0)}')"
}
# C_ROUNDS alternating rounds of each (the machine's load changes between runs): median tps, failures summed
C_ROUNDS=${C_ROUNDS:-1}
c_trivial_all=(); c_predict_all=(); c_trivial_failed=0; c_predict_failed=0; c_trivial_cpu=(); c_predict_cpu=()
for r in $(seq "$C_ROUNDS"); do
	read -r t f c <<<"$(ctps trivial_c.sql)"; c_trivial_all+=("${t:-0}"); c_trivial_failed=$((c_trivial_failed + ${f:-1})); c_trivial_cpu+=("${c:-0}")
	read -r t f c <<<"$(ctps predict_c.sql)"; c_predict_all+=("${t:-0}"); c_predict_failed=$((c_predict_failed + ${f:-1})); c_predict_cpu+=("${c:-0}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
c_trivial_tps=$(median "${c_trivial_all[@]}")
c_predict_tps=$(median "${c_predict_all[@]}")
c_ratio=$(awk -v a="${c_predict_tps:-0}" -v b="${c_trivial_tps:-0}" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
c_trivial_cpu_ms=$(median "${c_trivial_cpu[@]}")
c_predict_cpu_ms=$(median "${c_predict_cpu[@]}")
c_cpu_ratio=$(awk -v a="${c_predict_cpu_ms:-0}" -v b="${c_trivial_cpu_ms:-0}" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')
diag "pgbench -C, $CLIENTS clients, $C_SECONDS s x $C_ROUNDS rounds (median): trivial SQL function ${c_trivial_tps:-?} tps, cai_predict (fast) ${c_predict_tps:-?} tps, ratio $c_ratio; server CPU per transaction $c_trivial_cpu_ms / $c_predict_cpu_ms ms (ratio $c_cpu_ratio)"
[ "${c_trivial_failed:-1}" = 0 ] && [ "${c_predict_failed:-1}" = 0 ] && [ -n "$c_predict_tps" ]
ok $? "pgbench -C: every transaction of both runs succeeded (a new connection each)"

if [ -n "$RESULTS" ]; then
	{
		echo "# cai_predict under load"
		echo
		echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by:"
		echo
		echo "    LOAD_SECONDS=$LOAD_SECONDS CLIENTS=$CLIENTS THREADS=$THREADS C_SECONDS=$C_SECONDS C_ROUNDS=$C_ROUNDS test/faults/load.sh"
		echo
		echo "which runs \`$cmd\` against a throwaway PostgreSQL 15 cluster (unix socket, fsync off), with"
		echo "test/faults/load.sh's predict.sql: one \`cai_predict('live', <3-8 random words + a number>)\` per transaction."
		echo
		echo "- CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) vCPUs (nproc); load average at the end of the run: $(cut -d' ' -f1-3 /proc/loadavg) (the VM is shared with other jobs)"
		echo "- model: sentiment, default options, $model_size bytes (versions 1 / 2), trained on 2000 generated reviews"
		echo "- during the run: an asynchronous training (30000 rows, 4 epochs; took ${bg_secs:-?} s, state during the load: $bg_during),"
		echo "  another one started and cancelled, $switches \`cai_deploy\` switches between versions 1 and 2 (every 2 s),"
		echo "  and a long-lived session predicting in a loop (${iters:-?} iterations of cai_predict + cai_predict_proba)"
		echo
		echo "| clients | threads | seconds | transactions | failed | tps | avg ms | p50 ms | p95 ms | p99 ms | max ms |"
		echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		echo "| $CLIENTS | $THREADS | $LOAD_SECONDS | ${processed:-?} | ${failed_tx:-?} | ${tps:-?} | $avg | $p50 | $p95 | $p99 | $pmax |"
		echo
		echo "Percentiles are computed from pgbench's per-transaction log (\`-l\`), all transactions of the run."
		echo
		echo "Memory (private memory, RssAnon from /proc/PID/status; VmRSS also counts touched shared buffers):"
		echo
		echo "| backend | after warm-up (5 s) | end | growth |"
		echo "|---|---:|---:|---:|"
		echo "| long-lived session (cai_predict loop) | ${warm_mem:-?} kB | ${end_mem:-?} kB | $mem_growth MB |"
		echo "| pgbench backends ($pgb_n, average; max growth) | $pgb_warm_avg kB | $pgb_end_avg kB | $pgb_max MB |"
		echo "| session predicting through $CHURN_VERSIONS new deployed versions of a $big_size-byte model (after $CHURN_WARM versions; end) | ${churn_warm:-?} kB | ${churn_end:-?} kB | $churn_growth MB |"
		echo
		echo "A new connection for every query (\`pgbench -n -C -c $CLIENTS -j $THREADS -T $C_SECONDS\`, the same script with the fast"
		echo "model \`fastlive\` and with \`trivial(t text) RETURNS text LANGUAGE sql AS 'SELECT t'\`, $C_ROUNDS alternating rounds"
		echo "of each, median tps; rounds: trivial ${c_trivial_all[*]}, cai_predict ${c_predict_all[*]}). Server CPU per transaction:"
		echo "the growth of the postmaster's cutime + cstime (the CPU of the backends it reaped) over a run divided by its"
		echo "transactions, median of the rounds (rounds: trivial ${c_trivial_cpu[*]}, cai_predict ${c_predict_cpu[*]} ms); it leaves out"
		echo "the pgbench client's share of the cores, and grows too when other jobs compete for them:"
		echo
		echo "| statement | tps | failed | tps ratio to trivial | server CPU ms per transaction | CPU ratio (trivial / this) |"
		echo "|---|---:|---:|---:|---:|---:|"
		echo "| \`trivial(...)\` | ${c_trivial_tps:-?} | ${c_trivial_failed:-?} | 1.00 | $c_trivial_cpu_ms | 1.00 |"
		echo "| \`cai_predict('fastlive', ...)\` | ${c_predict_tps:-?} | ${c_predict_failed:-?} | $c_ratio | $c_predict_cpu_ms | $c_cpu_ratio |"
		echo
		echo "First statement of a new connection (psql \`\\timing\`, median of 21 new connections; the library is loaded by the"
		echo "first cai_ call, the fast model is already in the shared copy): \`SELECT 1\` $first_select1 ms,"
		echo "\`SELECT cai_version()\` $first_version ms, \`SELECT cai_predict('fastlive', 'a great film')\` $first_predict ms."
		echo
		echo "Result: $( [ "$_failed" -eq 0 ] && echo "all $_passed checks passed" || echo "$_failed of $((_passed + _failed)) checks FAILED") (zero failed transactions, no crash, memory growth <= $MAX_GROWTH_MB MB)."
	} >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
	diag "results written to ${RESULTS#"$FAULTS_ROOT"/}"
fi
finish
