#!/usr/bin/env bash
# kill_worker.sh: training workers killed with SIGKILL and the server stopped
# with "pg_ctl -m immediate" mid-training.  Afterwards the jobs show failed,
# every committed model version still validates and predicts the same, no
# version of a killed training exists, the catalog passes amcheck, and a
# SIGKILL of a worker restarts only the backends, not the postmaster.
#   KILL_ROUNDS=N  random-time kills of short asynchronous jobs (default 6)
NAME=kill_worker
source "$(dirname "$0")/lib.sh"
KILL_ROUNDS=${KILL_ROUNDS:-6}
SLOW_OPTS='{"epochs": 1000, "patience": 0}'

cluster_start
log=$CAI_PGDATA/server.log
q -c "CREATE EXTENSION cai_synergy" || bail "CREATE EXTENSION cai_synergy"
make_reviews postgres reviews 600 && make_slow postgres slow && make_slow postgres mid 8000 || bail "create training tables"

# committed models: two versions of m_a (the second deployed), m_b, an imported copy m_c
q -c "SELECT 1 FROM cai_train('m_a', 'sentiment', 'reviews', options => '{\"seed\": 1}')" >/dev/null 2>&1 \
	&& q -c "SELECT 1 FROM cai_train('m_a', 'sentiment', 'reviews', options => '{\"seed\": 2, \"deploy\": \"always\"}')" >/dev/null 2>&1 \
	&& q -c "SELECT 1 FROM cai_train('m_b', 'sentiment', 'reviews', options => '{\"seed\": 3}')" >/dev/null 2>&1 \
	&& q -c "SELECT cai_import('m_c', cai_export('m_b'))" >/dev/null \
	|| bail "train and import the committed models"
MODELS=(m_a m_b m_c)
store_before=$(q -c "SELECT string_agg(name || ':' || version || ':' || deployed || ':' || md5(model), ' ' ORDER BY name, version) FROM cai_model_store")
declare -A baseline
for m in "${MODELS[@]}"; do
	baseline[$m]=$(predictions "$m")
	sane_predictions "${baseline[$m]}" || bail "baseline predictions of $m: ${baseline[$m]}"
done
start_time=$(q -c "SELECT pg_postmaster_start_time()")
diag "committed: $store_before"

# after a crash: nothing committed is lost or changed, nothing half-written exists
check_models() {	# check_models WHEN
	local m now
	now=$(q -c "SELECT string_agg(name || ':' || version || ':' || deployed || ':' || md5(model), ' ' ORDER BY name, version) FROM cai_model_store WHERE name IN ('m_a', 'm_b', 'm_c')")
	is "$now" "$store_before" "$1: committed versions, deployment and bytes unchanged"
	for m in "${MODELS[@]}"; do
		is "$(predictions "$m")" "${baseline[$m]}" "$1: $m loads and predicts as before"
	done
	is "$(check_all_versions)" "$(q -c "SELECT count(*) || '/' || count(*) FROM cai_model_store")" \
		"$1: every stored version validates and predicts"
	is "$(check_catalog)" 0 "$1: amcheck finds the catalog tables and indexes intact"
}

# after "kill -9 PID": if it hit a live process, wait until the postmaster
# has reset and recovered; returns 2 when PID had already exited normally
wait_crash_cycle() {	# wait_crash_cycle LOG-LINES-BEFORE PID
	local t=300
	while kill -0 "$2" 2>/dev/null && [ $t -gt 0 ]; do sleep 0.05; t=$((t - 1)); done
	sleep 0.3
	tail -n +"$(($1 + 1))" "$log" | grep -q "(PID $2) was terminated by signal 9" || return 2
	t=300
	while [ $t -gt 0 ]; do
		tail -n +"$(($1 + 1))" "$log" | grep -q 'all server processes terminated; reinitializing' && break
		sleep 0.1; t=$((t - 1))
	done
	wait_ready 60
}

# --- 1. SIGKILL an asynchronous training job (a new version of m_b)
j=$(q -c "SELECT cai_train_async('m_b', 'sentiment', 'slow', options => '$SLOW_OPTS')")
wait_for 30 "SELECT state = 'running' AND epoch >= 1 FROM cai_jobs WHERE job_id = $j"
ok $? "async job $j is running and past its first epoch"
pid=$(q -c "SELECT pid FROM cai_jobs WHERE job_id = $j")
is "$(ps -o cmd= -p "$pid" 2>/dev/null)" "postgres: cai_synergy training " "pid $pid is the training worker"
lines=$(wc -l <"$log")
kill -9 "$pid"
wait_crash_cycle "$lines" "$pid"
ok $? "the server accepts connections again after crash recovery"
tail -n +"$((lines + 1))" "$log" | grep -q "(PID $pid) was terminated by signal 9"
ok $? "the server log records the killed worker"
is "$(q -c "SELECT state || ': ' || coalesce(error, '<none>') FROM cai_jobs WHERE job_id = $j")" \
	"failed: training worker exited unexpectedly" "the killed job shows failed with an error"
is "$(q -c "SELECT count(*) FROM cai_model_store WHERE name = 'm_b'")" 1 "no m_b version from the killed job"
is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "the postmaster did not restart (only its backends)"
check_models "after SIGKILL of an async worker"

# --- 2. SIGKILL the worker of a synchronous cai_train
out=$CAI_PGDATA/sync.out
q -c "SELECT * FROM cai_train('killed_sync', 'sentiment', 'slow', options => '$SLOW_OPTS')" >"$out" 2>&1 &
client=$!
wait_for 30 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'"
ok $? "synchronous training worker started"
sleep 1
pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'")
lines=$(wc -l <"$log")
kill -9 "$pid"
wait_crash_cycle "$lines" "$pid"
ok $? "the server recovers after SIGKILL of a synchronous worker"
wait "$client"
ok $((! $?)) "the cai_train caller gets an error, not a result"
diag "caller saw: $(tr '\n' ' ' <"$out" | cut -c1-200)"
is "$(q -c "SELECT count(*) FROM cai_model_store WHERE name = 'killed_sync'")" 0 "no version of the killed synchronous training"
is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "the postmaster still did not restart"
check_models "after SIGKILL of a sync worker"

# --- 3. random-time SIGKILLs of short async jobs: a job shows succeeded
#        exactly when its version exists
RND_OPTS='{"epochs": 5, "patience": 0}'
j=$(q -c "SELECT cai_train_async('rnd', 'sentiment', 'mid', options => '$RND_OPTS')")
ms=$(q -c "SELECT (extract(epoch FROM finished_at - created_at) * 1000)::int FROM cai_wait($j)")
diag "a short job takes $ms ms; killing at random times in [0, $((ms * 13 / 10))] ms"
killed=0 not_ready=0
for r in $(seq 1 "$KILL_ROUNDS"); do
	j=$(q -c "SELECT cai_train_async('rnd', 'sentiment', 'mid', options => '$RND_OPTS')")
	delay=$((RANDOM % (ms * 13 / 10 + 1)))
	sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
	pid=$(q -c "SELECT pid FROM cai_job_store WHERE job_id = $j")
	lines=$(wc -l <"$log")
	if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then
		wait_crash_cycle "$lines" "$pid"
		case $? in
		0) killed=$((killed + 1)); what="killed" ;;
		2) what="exited before the kill" ;;
		*) what="killed, server NOT ready"; not_ready=$((not_ready + 1)) ;;
		esac
	else
		what="finished before the kill"
		q -c "SELECT state FROM cai_wait($j)" >/dev/null
	fi
	diag "round $r: SIGKILL at $delay ms, $what: job $j $(q -c "SELECT state || coalesce(' v' || version, '') || coalesce(' progress ' || round(progress::numeric, 2), '') FROM cai_jobs WHERE job_id = $j")"
done
is "$not_ready" 0 "$KILL_ROUNDS random-time rounds, $killed killed mid-job, the server recovered every time"
is "$(q -c "SELECT count(*) FROM cai_jobs j WHERE j.model = 'rnd' AND ((j.state = 'succeeded') IS DISTINCT FROM
             EXISTS (SELECT 1 FROM cai_model_store s WHERE s.name = 'rnd' AND s.version = j.version))")" 0 \
	"every job succeeded exactly when its version was stored"
is "$(q -c "SELECT count(*) FROM cai_model_store s WHERE name = 'rnd' AND NOT EXISTS
             (SELECT 1 FROM cai_jobs j WHERE j.model = 'rnd' AND j.version = s.version AND j.state = 'succeeded')")" 0 \
	"no stored version without a succeeded job"
is "$(q -c "SELECT count(*) FROM cai_jobs WHERE state IN ('queued', 'running')")" 0 "no job is left looking alive"
check_models "after random-time kills"

# --- 4. pg_ctl -m immediate stop during a synchronous cai_train (plus a running async job)
j=$(q -c "SELECT cai_train_async('m_a', 'sentiment', 'slow', options => '$SLOW_OPTS')")
q -c "SELECT * FROM cai_train('stopped_sync', 'sentiment', 'slow', options => '$SLOW_OPTS')" >"$out" 2>&1 &
client=$!
wait_for 30 "SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'"
ok $? "a synchronous and an asynchronous training are running"
sleep 1
as_pg pg_ctl -D "$CAI_PGDATA/data" -m immediate -w stop >/dev/null
ok $? "pg_ctl -m immediate stop"
wait "$client"
ok $((! $?)) "the cai_train caller gets an error"
as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$log" -w -t 60 start >/dev/null && wait_ready 60
ok $? "the server restarts and recovers"
grep -q 'database system was not properly shut down; automatic recovery in progress' "$log"
ok $? "the restart ran crash recovery"
is "$(q -c "SELECT count(*) FROM cai_model_store WHERE name = 'stopped_sync'")" 0 "no version of the interrupted synchronous training"
is "$(q -c "SELECT count(*) FROM cai_model_store WHERE name = 'm_a'")" 2 "no m_a version from the interrupted async job"
is "$(q -c "SELECT state || ': ' || coalesce(error, '<none>') FROM cai_jobs WHERE job_id = $j")" \
	"failed: training worker exited unexpectedly" "the interrupted async job shows failed"
check_models "after an immediate stop"

# the recovered server still trains
q -c "SELECT 1 FROM cai_train('after', 'sentiment', 'reviews')" >/dev/null 2>&1
is "$(q -c "SELECT cai_predict('after', 'loved it')")" positive "training and prediction work after all this"
grep -E 'PANIC|TRAP|terminated by signal (6|11)|segmentation' "$log" | head -n 5 | sed 's/^/# log: /'
grep -qE 'PANIC|TRAP|terminated by signal (6|11)' "$log"
ok $((! $?)) "no PANIC, assertion or crash other than the intended kills in the server log"
finish
