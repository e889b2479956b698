#!/usr/bin/env bash
# interrupt.sh: trainings interrupted by everything short of a crash.
# Cancel and terminate the caller of a synchronous cai_train, kill its psql
# client, cancel and terminate an asynchronous job's worker, fast-shutdown the
# server mid-training, run out of background worker slots, DROP EXTENSION and
# DROP DATABASE under a running job.  Each time: a clear error or job state,
# no training worker left behind, nothing stored, no crash-restart.
NAME=interrupt
source "$(dirname "$0")/lib.sh"
SLOW_OPTS='{"epochs": 1000, "patience": 0}'

cluster_start "max_worker_processes = 5"
log=$CAI_PGDATA/server.log
q -c "CREATE EXTENSION cai_synergy" && make_slow postgres slow && make_reviews postgres reviews 600 \
	|| bail "set up the database"
start_time=$(q -c "SELECT pg_postmaster_start_time()")
WORKERS="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'"
no_workers() { wait_for "${1:-5}" "SELECT ($WORKERS) = 0"; }
sync_train() {	# sync_train APPNAME MODEL [psql options]: a slow cai_train in the background
	local app=$1 m=$2; shift 2
	PGAPPNAME=$app psql -X -qAt "$@" -c "SELECT version FROM cai_train('$m', 'sentiment', 'slow', options => '$SLOW_OPTS')" \
		>"$CAI_PGDATA/$app.out" 2>&1 &
	wait_for 20 "SELECT ($WORKERS) = 1"
}
reap_orphans() {	# a safety net for the next test: terminate training workers whose caller is gone
	local n
	n=$(q -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'")
	[ "$n" -gt 0 ] && diag "terminated $n orphaned training worker(s)"
	no_workers 10
}
stored() { q -c "SELECT count(*) FROM cai_model_store WHERE name = '$1'"; }

# --- synchronous cai_train: the caller is cancelled, terminated, or loses its client
sync_train cancel_me sync_cancel; ok $? "a synchronous training runs"
sleep 0.5
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancel_me'" >/dev/null
wait $!
grep -q 'canceling statement due to user request' "$CAI_PGDATA/cancel_me.out"
ok $? "pg_cancel_backend of the caller: the call fails with 'canceling statement due to user request'"
no_workers 5; ok $? "the training worker stops within 5 s"
is "$(stored sync_cancel)" 0 "nothing is stored"

sync_train terminate_me sync_term; ok $? "a synchronous training runs"
sleep 0.5
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'terminate_me'" >/dev/null
wait $!
grep -q 'terminating connection due to administrator command' "$CAI_PGDATA/terminate_me.out"
ok $? "pg_terminate_backend of the caller: its connection ends"
no_workers 5; ok $? "the training worker stops within 5 s of its caller's termination"
reap_orphans; ok $? "no training worker is left"
is "$(stored sync_term)" 0 "nothing is stored"

# the client process dies; NOTICEs per epoch make the backend notice at its next write
sync_train lost_client sync_lost -c "SET client_min_messages = notice"; ok $? "a synchronous training runs"
client=$!
sleep 0.5
kill -9 "$client"; wait "$client" 2>/dev/null
wait_for 5 "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'lost_client'"
ok $? "SIGKILL of the psql client: its backend exits within 5 s (connection to client lost)"
no_workers 5; ok $? "the training worker stops within 5 s of its caller's exit"
reap_orphans; ok $? "no training worker is left"
is "$(stored sync_lost)" 0 "nothing is stored"

# --- the caller is cancelled, terminated or killed while it streams the source rows to the worker
# (a synchronous cai_train reads its source itself, src/pg/stream.c: 600 rows at 10 ms each)
q -c "CREATE FUNCTION slow_text(t text) RETURNS text LANGUAGE plpgsql AS \$\$BEGIN PERFORM pg_sleep(0.01); RETURN t; END\$\$" \
	|| bail "create slow_text"
stream_train() {	# stream_train APPNAME MODEL: a cai_train whose source takes about 6 s to read
	# (client_connection_check_interval: the backend notices a dead client while it reads)
	PGAPPNAME=$1 psql -X -qAt -c "SET client_connection_check_interval = '100ms'" \
		-c "SELECT version FROM cai_train('$2', 'sentiment', 'SELECT slow_text(text) AS text, label FROM reviews')" \
		>"$CAI_PGDATA/$1.out" 2>&1 &
	wait_for 20 "SELECT ($WORKERS) = 1"
}
stream_train stream_cancel sync_stream_cancel; ok $? "a synchronous training streams its source"
sleep 1
is "$(q -c "SELECT wait_event_type || ':' || state FROM pg_stat_activity WHERE application_name = 'stream_cancel'")" \
	"Timeout:active" "... the caller is reading the source (sleeping in slow_text)"
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'stream_cancel'" >/dev/null
wait $!
grep -q 'canceling statement due to user request' "$CAI_PGDATA/stream_cancel.out"
ok $? "cancel while streaming: the call fails with 'canceling statement due to user request'"
no_workers 5; ok $? "the training worker stops within 5 s"
is "$(stored sync_stream_cancel)" 0 "nothing is stored"
for how in terminate kill; do
	stream_train "stream_$how" "sync_stream_$how"; ok $? "a synchronous training streams its source ($how)"
	sleep 1
	pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'stream_$how'")
	if [ "$how" = terminate ]; then q -c "SELECT pg_terminate_backend($pid)" >/dev/null; else kill -9 "$!"; fi
	wait $! 2>/dev/null
	# the worker's queue of rows loses its sender, and the caller's exit stops the worker and waits for it
	no_workers 5; ok $? "the caller's end while streaming ($how of the $([ "$how" = kill ] && echo client || echo backend)) stops the worker within 5 s"
	is "$(stored "sync_stream_$how")" 0 "nothing is stored"
done
wait_for 10 "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE 'stream_%'"
ok $? "no caller is left"

# --- asynchronous jobs: the worker is cancelled or terminated
j=$(q -c "SELECT cai_train_async('async_cancel', 'sentiment', 'slow', options => '$SLOW_OPTS')")
wait_for 20 "SELECT state = 'running' FROM cai_jobs WHERE job_id = $j"
q -c "SELECT pg_cancel_backend(pid) FROM cai_jobs WHERE job_id = $j" >/dev/null
is "$(q -c "SELECT state || ': ' || error FROM cai_wait($j)")" "cancelled: canceling statement due to user request" \
	"pg_cancel_backend of an async worker: the job ends cancelled"
j=$(q -c "SELECT cai_train_async('async_term', 'sentiment', 'slow', options => '$SLOW_OPTS')")
wait_for 20 "SELECT state = 'running' FROM cai_jobs WHERE job_id = $j"
q -c "SELECT pg_terminate_backend(pid) FROM cai_jobs WHERE job_id = $j" >/dev/null
is "$(q -c "SET statement_timeout = '20s'; SELECT state || ': ' || error FROM cai_wait($j)")" \
	"failed: training worker exited unexpectedly" "pg_terminate_backend of an async worker: the job ends failed"
no_workers 5; ok $? "no training worker is left"
is "$(stored async_cancel)$(stored async_term)" 00 "nothing is stored"
is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "no crash-restart so far"
! grep -q 'reinitializing' "$log"; ok $? "the server log shows no crash cycle"

# --- background worker slots run out (max_worker_processes = 5, one used by the logical replication launcher)
jobs=()
for i in 1 2 3 4; do jobs+=("$(q -c "SELECT cai_train_async('slot$i', 'sentiment', 'slow', options => '$SLOW_OPTS')")"); done
is "${#jobs[@]}" 4 "four async jobs take every free worker slot"
err=$(psql -X -qAt -v VERBOSITY=verbose -c "\\set VERBOSITY verbose" -c "SELECT cai_train_async('slot5', 'sentiment', 'slow')" 2>&1 | grep -m1 ERROR)
is "$err" "ERROR:  53000: could not start a training worker: no free background worker slot" "a fifth job fails at once with a clear error"
err=$(psql -X -qAt -v VERBOSITY=verbose -c "\\set VERBOSITY verbose" -c "SELECT * FROM cai_train('slot6', 'sentiment', 'reviews')" 2>&1 | grep -m1 ERROR)
[[ "$err" == "ERROR:  53000: could not start a training worker: no free background worker slot" ||
   "$err" == "ERROR:  53400: too many training jobs are running" ]]
ok $? "so does a synchronous training ($err)"
is "$(q -c "SELECT count(*) FROM cai_jobs WHERE state IN ('queued', 'running')")" 4 "no phantom job was left by the refused calls"
for j in "${jobs[@]}"; do q -c "SELECT cai_cancel($j)" >/dev/null; done
no_workers 10; ok $? "cancelling them frees the slots"
is "$(q -c "SELECT version FROM cai_train('slot6', 'sentiment', 'reviews')")" 1 "training works again"

# --- DROP EXTENSION and DROP DATABASE under a running job
j=$(q -c "SELECT cai_train_async('dropped', 'sentiment', 'slow', options => '$SLOW_OPTS')")
wait_for 20 "SELECT state = 'running' FROM cai_jobs WHERE job_id = $j"
q -c "DROP EXTENSION cai_synergy" >/dev/null
ok $? "DROP EXTENSION while a job runs"
no_workers 10; ok $? "the job's worker stops (its job table is gone)"
grep -q "training job $j failed: extension \"cai_synergy\" is not installed" "$log"
ok $? "it logs why: extension not installed"
q -c "CREATE EXTENSION cai_synergy" >/dev/null && is "$(q -c "SELECT version FROM cai_train('again', 'sentiment', 'reviews')")" 1 \
	"CREATE EXTENSION again and train"

createdb other && q -d other -c "CREATE EXTENSION cai_synergy" && make_slow other slow || bail "create database other"
j=$(q -d other -c "SELECT cai_train_async('m', 'sentiment', 'slow', options => '$SLOW_OPTS')")
wait_for 20 "SELECT state = 'running' FROM cai_jobs WHERE job_id = $j" -d other
err=$(psql -X -qAt -c "DROP DATABASE other" 2>&1 | head -n 1)
is "$err" 'ERROR:  database "other" is being accessed by other users' "DROP DATABASE refuses while a job is connected"
q -c "DROP DATABASE other WITH (FORCE)" >/dev/null
ok $? "DROP DATABASE ... WITH (FORCE) terminates the job and drops it"
no_workers 5; ok $? "no training worker is left"

# --- fast shutdown with a synchronous and an asynchronous training running
j=$(q -c "SELECT cai_train_async('shut_async', 'sentiment', 'slow', options => '$SLOW_OPTS')")
sync_train shut_sync shut_sync
wait_for 20 "SELECT ($WORKERS) = 2"; ok $? "two trainings run"
t0=$(date +%s%N)
as_pg pg_ctl -D "$CAI_PGDATA/data" -m fast -w -t 30 stop >/dev/null
ok $? "pg_ctl -m fast stop succeeds"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 5000 ]; ok $? "within 5 s (took $ms ms): training workers obey SIGTERM"
wait
lines=$(wc -l <"$log")
as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$log" -w -t 60 start >/dev/null && wait_ready 30
ok $? "the server starts again"
! tail -n +"$((lines + 1))" "$log" | grep -q 'not properly shut down'
ok $? "the shutdown was clean (no crash recovery at startup)"
is "$(q -c "SELECT state || ': ' || error FROM cai_jobs WHERE job_id = $j")" "failed: training worker exited unexpectedly" \
	"the interrupted job shows failed"
is "$(stored shut_async)$(stored shut_sync)" 00 "nothing is stored"
is "$(q -c "SELECT count(*) || '/' || count(*) FROM cai_model_store")" "$(check_all_versions)" "every stored version validates and predicts"
! grep -qE 'PANIC|TRAP|terminated by signal' "$log"
ok $? "no PANIC, assertion failure or signal death in the server log"
finish
