#!/usr/bin/env bash
#
# shared_model.sh -- one shared copy of each model (pg_dynshmem/cai.* mapped by every process)
# against a private copy per process (cai.shared_cache_size = 0):
#
#   1. first call latency: the first cai_predict of a NEW connection on a ~50 MB model that another
#      backend already loaded (BENCH_CONNS fresh connections per setting), with and without sharing;
#      the first-ever load (no shared file yet, BENCH_FIRST_EVER times); a race check: BENCH_MEM_N
#      connections whose first call runs concurrently while no shared file exists.
#   2. memory: BENCH_MEM_N concurrent connections each holding the model (one call, and again after
#      predicting the 6,735 dev sentences), private memory (RssAnon, USS) and Pss of each backend
#      minus a baseline backend of the same moment that loaded the library but no model.
#   3. parallel inference: SELECT count(cai_predict('small', sentence)) FROM big over BENCH_ROWS rows,
#      max_parallel_workers_per_gather 0 vs 2 (plus 2 workers without leader participation and 2
#      workers with sharing off), median of BENCH_REPEATS, with a default "fast" model.
#
# Prints a markdown report and writes it to BENCH_OUT (bench/results-shared-model.md).  Uses the
# installed extension (run `make && make install` first) on a throwaway cluster (scripts/pgcluster.sh).
#
# Usage: bench/shared_model.sh                full run (about 2-3 minutes on 2 cores)
#        BENCH_QUICK=1 bench/shared_model.sh  smoke run: 100,000 rows, 4 connections, 3 holders, 1 repeat,
#                                             writes /tmp/results-shared-model-quick.md unless BENCH_OUT is set
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR         data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_CONNS          fresh connections per first-call setting [20]
#   BENCH_FIRST_EVER     first-ever loads (the shared file removed before each) [5]
#   BENCH_MEM_N          concurrent connections holding the model [8]
#   BENCH_ROWS           rows of the parallel inference table [1000000]
#   BENCH_REPEATS        timed repetitions of each parallel query [3]
#   BENCH_BIG_OPTIONS    cai_train options of the ~50 MB model
#                        [{"architecture": "fast", "epochs": 2, "dimensions": 70, "buckets": 4000000}]
#   BENCH_SMALL_OPTIONS  cai_train options of the parallel-inference model [{"architecture": "fast"}]
#   BENCH_OUT            report file (overwritten) [bench/results-shared-model.md]
#   BENCH_KEEP_TMP       1: keep the temporary directory (raw results, session outputs) [0]
#
# Timing method.  First calls: server side, by clock_timestamp() read just before and just after the
# cai_predict call inside one statement,
#   SELECT p, clock_timestamp() - t0 FROM (SELECT clock_timestamp() AS t0, cai_predict(m, x) AS p OFFSET 0) s
# (model lookup + load + one prediction; parse, plan, executor start and the library's dlopen are
# outside), and client side by psql \timing of the same statement (everything from send to result).
# "lib loaded" connections run SELECT cai_version() first, so that the library is loaded before the
# timed statement; "cold" connections run the timed statement first.  Parallel queries: wall time from
# clock_timestamp() before and after the statement, in one psql session per setting.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/shared_model.sh CAI_DATA_DIR BENCH_QUICK BENCH_CONNS BENCH_FIRST_EVER BENCH_MEM_N BENCH_ROWS BENCH_REPEATS \
	BENCH_BIG_OPTIONS BENCH_SMALL_OPTIONS BENCH_OUT

bench_cd_repo
SST="$(bench_dataset shared_model.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"

PY=/usr/bin/python3
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	CONNS="${BENCH_CONNS:-4}"
	FIRST_EVER="${BENCH_FIRST_EVER:-2}"
	MEM_N="${BENCH_MEM_N:-3}"
	ROWS="${BENCH_ROWS:-100000}"
	REPEATS="${BENCH_REPEATS:-1}"
	OUT="${BENCH_OUT:-/tmp/results-shared-model-quick.md}"
else
	CONNS="${BENCH_CONNS:-20}"
	FIRST_EVER="${BENCH_FIRST_EVER:-5}"
	MEM_N="${BENCH_MEM_N:-8}"
	ROWS="${BENCH_ROWS:-1000000}"
	REPEATS="${BENCH_REPEATS:-3}"
	OUT="${BENCH_OUT:-bench/results-shared-model.md}"
fi
DEFAULT_BIG_OPTS='{"architecture": "fast", "epochs": 2, "dimensions": 70, "buckets": 4000000}'
DEFAULT_SMALL_OPTS='{"architecture": "fast"}'
BIG_OPTS="${BENCH_BIG_OPTIONS:-$DEFAULT_BIG_OPTS}"
SMALL_OPTS="${BENCH_SMALL_OPTIONS:-$DEFAULT_SMALL_OPTS}"
BIG=shared_big
SMALL=shared_small
TEXT="a gorgeous , witty , seductive movie ."

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cai-bench-shared.XXXXXX")"
chmod 755 "$TMP"
CAI_PGDATA=""
BG_PIDS=() # background psql processes started by this script
cleanup() {
	local p
	for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
	if [ -n "$CAI_PGDATA" ]; then scripts/pgcluster.sh stop "$CAI_PGDATA" || true; fi
	if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then echo "shared_model.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_results "$TMP/results.txt"
bench_put_machine

put conns "$CONNS"
put first_ever "$FIRST_EVER"
put mem_n "$MEM_N"
put rows "$ROWS"
put repeats "$REPEATS"
put big_options "$BIG_OPTS"
put small_options "$SMALL_OPTS"
put text "$TEXT"

# ---------------------------------------------------------------------------
# Cluster, tables (SST-2 train/dev/test; big = train+dev+test sentences
# repeated to ROWS rows), models
# ---------------------------------------------------------------------------
log "starting a throwaway cluster ..."
eval "$(scripts/pgcluster.sh start)"
export PGDATABASE=postgres
CACHE_DIR="$CAI_PGDATA/data/pg_dynshmem"
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
put pg_version "$("${PSQL[@]}" -c 'SHOW server_version')"
put shared_buffers "$("${PSQL[@]}" -c 'SHOW shared_buffers')"

for f in train dev test; do tail -n +2 "$SST/$f.tsv" | cut -f2-; done > "$TMP/pool.txt"
awk -v n="$ROWS" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
	"$TMP/pool.txt" > "$TMP/big.txt"
copts="(FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
log "loading SST-2 and $ROWS inference rows ..."
{
	echo "SET client_min_messages = warning;"
	echo "CREATE EXTENSION cai_synergy;"
	for f in train dev test; do
		echo "CREATE TABLE $f (label text, sentence text);"
		echo "\\copy $f FROM '${SST//\'/\'\'}/$f.tsv' WITH $copts"
	done
	echo "CREATE TABLE big (sentence text);"
	echo "\\copy big FROM '$TMP/big.txt' WITH ${copts/HEADER true/HEADER false}"
	# 2 workers whatever the table size (the planner would pick 2 or more for 1M rows anyway)
	echo "ALTER TABLE big SET (parallel_workers = 2);"
	echo "VACUUM (FREEZE, ANALYZE) train, dev, test, big;"
	echo "SELECT 'RESULT rows_dev ' || count(*) FROM dev;"
	echo "SELECT 'RESULT rows_test ' || count(*) FROM test;"
	echo "SELECT 'RESULT rows_big ' || count(*) FROM big;"
	echo "SELECT 'RESULT big_mb ' || round(pg_table_size('big') / 1048576.0, 1);"
} | "${PSQL[@]}" | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
rm -f "$TMP/big.txt"
put cai_version "$("${PSQL[@]}" -c 'SELECT cai_version()')"
put cai_so "$(ls -l --time-style='+%Y-%m-%d %H:%M' "$(pg_config --pkglibdir)/cai_synergy.so" | awk '{ print $6 " " $7 }')"

log "training $BIG ($BIG_OPTS) and $SMALL ($SMALL_OPTS) ..."
"${PSQL[@]}" 2> "$TMP/train.log" <<EOF | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
SELECT clock_timestamp() AS t0 \\gset
SELECT version FROM cai_train('$BIG', 'sentiment', 'train', 'sentence', 'label', '$BIG_OPTS'::jsonb) \\g /dev/null
SELECT 'RESULT big_train_s ' || round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2);
SELECT clock_timestamp() AS t0 \\gset
SELECT version FROM cai_train('$SMALL', 'sentiment', 'train', 'sentence', 'label', '$SMALL_OPTS'::jsonb) \\g /dev/null
SELECT 'RESULT small_train_s ' || round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 2);
SELECT 'RESULT big_size ' || size FROM cai_model_details WHERE name = '$BIG' AND deployed;
SELECT 'RESULT small_size ' || size FROM cai_model_details WHERE name = '$SMALL' AND deployed;
SELECT 'RESULT big_acc ' || round((metrics->>'accuracy')::numeric, 4) FROM cai_model_details WHERE name = '$BIG' AND deployed;
SELECT 'RESULT small_acc ' || round((metrics->>'accuracy')::numeric, 4) FROM cai_model_details WHERE name = '$SMALL' AND deployed;
EOF
# training does not write the shared file: nothing is cached before the first prediction
put cache_files_after_training "$(find "$CACHE_DIR" -maxdepth 1 -name 'cai.*' | wc -l)"

# ---------------------------------------------------------------------------
# 1. First call of cai_predict in a new connection
# ---------------------------------------------------------------------------
# first_call_sql <share 1|0> <lib 1|0>: a session whose timed statement is
# the first cai_predict call, then a second one (the model cached)
CALL_Q="SELECT 'CALL ' || p || ' ' || round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 3) FROM (SELECT clock_timestamp() AS t0, cai_predict('$BIG', '$TEXT') AS p OFFSET 0) s;"
first_call_sql() {
	echo "\\timing on"
	[ "$1" = 0 ] && echo "SET cai.shared_cache_size = 0;"
	[ "$2" = 1 ] && echo "SELECT 'LIB ' || cai_version();"
	echo "$CALL_Q"
	echo "$CALL_Q"
	return 0
}
# first_call <key> <share> <lib>: one fresh connection, RESULT lines
#   <key>_label, <key>_server_ms, <key>_client_ms, <key>_second_server_ms, <key>_second_client_ms, <key>_lib_ms
first_call() {
	first_call_sql "$2" "$3" | "${PSQL[@]}" | awk -v k="$1" '
		/^LIB / { want = "lib"; next }
		/^CALL / { n++; if (n == 1) { print k "_label " $2; print k "_server_ms " $3; want = "client" }
		           else { print k "_second_server_ms " $3; want = "second_client" } next }
		/^Time: / { if (want != "") print k "_" want "_ms " $2; want = ""; next }' >> "$R"
}
cache_files() { find "$CACHE_DIR" -maxdepth 1 -name 'cai.*' ! -name '*.tmp*' | wc -l; }
tmp_files() { find "$CACHE_DIR" -maxdepth 1 -name 'cai.*.tmp*' | wc -l; }

log "first-ever loads ($FIRST_EVER, the shared file removed before each) ..."
put load_first_before "$(load)"
for ((i = 1; i <= FIRST_EVER; i++)); do
	find "$CACHE_DIR" -maxdepth 1 -name 'cai.*' -delete
	first_call "fe_$i" 1 1
	put "fe_${i}_files" "$(cache_files)"
done
put shared_file_bytes "$(find "$CACHE_DIR" -maxdepth 1 -name 'cai.*' ! -name '*.tmp*' -printf '%s\n' | head -n 1)"

# a session that keeps the model loaded (mapped) during the first-call measurements
"${PSQL[@]}" -c "SELECT cai_predict('$BIG', 'warm up')" -c "SELECT pg_backend_pid()" -c "SELECT pg_sleep(3600)" \
	> "$TMP/holder.out" 2> /dev/null &
BG_PIDS+=($!)
for ((t = 0; t < 600; t++)); do
	[ "$(wc -l < "$TMP/holder.out")" -ge 2 ] && break
	sleep 0.1
done
HOLDER_BACKEND=$(sed -n 2p "$TMP/holder.out")
[ -n "$HOLDER_BACKEND" ] || { echo "shared_model.sh: the warm-up session did not start" >&2; exit 1; }

log "first calls: $CONNS fresh connections x (sharing on/off) x (library loaded first / cold) ..."
for ((i = 1; i <= CONNS; i++)); do
	first_call "on_lib_$i" 1 1
	first_call "off_lib_$i" 0 1
	first_call "on_cold_$i" 1 0
	first_call "off_cold_$i" 0 0
done
put load_first_after "$(load)"
put cache_files_after_first_calls "$(cache_files)"
"${PSQL[@]}" -c "SELECT pg_terminate_backend($HOLDER_BACKEND)" > /dev/null
wait "${BG_PIDS[-1]}" 2> /dev/null || true
unset 'BG_PIDS[-1]'

# the shared (zero-copy) and the private copy give the same probabilities
log "shared vs private copy: probabilities over the test set ..."
PROBA_Q="SELECT md5(string_agg(cai_predict_proba('$BIG', sentence)::text, '|' ORDER BY sentence, label)) FROM test"
put proba_md5_shared "$("${PSQL[@]}" -c "$PROBA_Q")"
put proba_md5_private "$("${PSQL[@]}" -c 'SET cai.shared_cache_size = 0' -c "$PROBA_Q")"

# race: MEM_N connections whose first calls run together while no shared file exists
log "race: $MEM_N concurrent first-ever calls ..."
find "$CACHE_DIR" -maxdepth 1 -name 'cai.*' -delete
race_pids=()
for ((i = 1; i <= MEM_N; i++)); do
	"${PSQL[@]}" -c "SELECT cai_predict('$BIG', '$TEXT')" > "$TMP/race_$i.out" 2> "$TMP/race_$i.err" &
	race_pids+=($!)
done
race_fail=0
for p in "${race_pids[@]}"; do wait "$p" || race_fail=$((race_fail + 1)); done
put race_failed "$race_fail"
put race_labels "$(cat "$TMP"/race_*.out | sort | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $2, $1 }')"
put race_errors "$(cat "$TMP"/race_*.err | head -n 3 | tr '\n' ' ')"
put race_files "$(cache_files)"
put race_tmp_files "$(tmp_files)"

# ---------------------------------------------------------------------------
# 2. Memory of MEM_N connections holding the model
# ---------------------------------------------------------------------------
# memsnap <pid>: RssAnon RssFile RssShmem Pss Pss_Anon Pss_File Pss_Shmem USS ModelRss ModelPss (kB);
# USS = Private_Clean + Private_Dirty; Model* = the mappings of pg_dynshmem/cai.* (from smaps)
memsnap() {
	awk '
		FILENAME ~ /status$/ && /^(RssAnon|RssFile|RssShmem):/ { v[$1] = $2 }
		FILENAME ~ /rollup$/ && /^(Pss|Pss_Anon|Pss_File|Pss_Shmem|Private_Clean|Private_Dirty):/ { v[$1] = $2 }
		FILENAME ~ /smaps$/ && /^[0-9a-f]+-[0-9a-f]+ / { inmodel = ($0 ~ /pg_dynshmem\/cai\./) }
		FILENAME ~ /smaps$/ && inmodel && /^Rss:/ { mrss += $2 }
		FILENAME ~ /smaps$/ && inmodel && /^Pss:/ { mpss += $2 }
		END { print v["RssAnon:"] + 0, v["RssFile:"] + 0, v["RssShmem:"] + 0, v["Pss:"] + 0, v["Pss_Anon:"] + 0,
		            v["Pss_File:"] + 0, v["Pss_Shmem:"] + 0, v["Private_Clean:"] + v["Private_Dirty:"], mrss + 0, mpss + 0 }' \
		"/proc/$1/status" "/proc/$1/smaps_rollup" "/proc/$1/smaps"
}
# mem_phase <tag> <share 1|0> <use one|dev>: session 0 is the baseline
# (library loaded, no model), sessions 1..MEM_N hold the model
mem_phase() {
	local tag="$1" share="$2" use="$3" i t pids=() backends=()
	rm -f "$TMP"/mem_*
	for ((i = 0; i <= MEM_N; i++)); do
		{
			[ "$share" = 0 ] && echo "SET cai.shared_cache_size = 0;"
			echo "SELECT pg_backend_pid() \\g $TMP/mem_$i.pid"
			if [ "$i" = 0 ]; then
				echo "SELECT cai_version();"
			elif [ "$use" = one ]; then
				echo "SELECT cai_predict('$BIG', '$TEXT');"
			else
				echo "SELECT count(cai_predict('$BIG', sentence)) FROM dev;"
			fi
			echo "SELECT 1 \\g $TMP/mem_$i.ready"
			echo "SELECT pg_sleep(3600);"
		} | "${PSQL[@]}" > /dev/null 2> "$TMP/mem_$i.err" &
		pids+=($!)
		BG_PIDS+=($!)
	done
	for ((t = 0; t < 1200; t++)); do
		local ready=0
		for ((i = 0; i <= MEM_N; i++)); do [ -s "$TMP/mem_$i.ready" ] && ready=$((ready + 1)); done
		[ "$ready" = $((MEM_N + 1)) ] && break
		sleep 0.1
	done
	[ "$ready" = $((MEM_N + 1)) ] || { echo "shared_model.sh: memory sessions not ready:" >&2; cat "$TMP"/mem_*.err >&2; exit 1; }
	sleep 1
	for ((i = 0; i <= MEM_N; i++)); do
		backends+=("$(tr -d ' \n' < "$TMP/mem_$i.pid")")
		put "mem_${tag}_$i" "$(memsnap "${backends[$i]}")"
	done
	put "mem_${tag}_maps" "$(grep -c 'pg_dynshmem/cai\.' /proc/"${backends[1]}"/maps || true)"
	"${PSQL[@]}" -c "SELECT count(pg_terminate_backend(p)) FROM unnest('{$(IFS=,; echo "${backends[*]}")}'::int[]) p" > /dev/null
	for i in "${pids[@]}"; do wait "$i" 2> /dev/null || true; done
	BG_PIDS=()
}
# the kernel's mapping granularity for a page-cached file on this file system
# (large folios map up to 2 MB per fault): Rss of a mapping after one byte is read
put fault_kb "$($PY - "$CAI_PGDATA/fault_probe.bin" <<'PYEOF'
import mmap, os, sys
p = os.path.realpath(sys.argv[1])
with open(p, "wb") as f:
    f.write(os.urandom(8 << 20))
fd = os.open(p, os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
m[4 << 20]
rss, cur = 0, False
for line in open("/proc/self/smaps"):
    f = line.split()
    if "-" in f[0] and len(f) >= 5:
        cur = line.rstrip().endswith(p)
    elif cur and f[0] == "Rss:":
        rss += int(f[1])
print(rss)
os.unlink(p)
PYEOF
)"
put fs_type "$(df -T "$CACHE_DIR" | awk 'NR == 2 { print $2 }')"
log "memory: $MEM_N connections holding the model (+ 1 baseline), 4 settings ..."
put load_mem_before "$(load)"
mem_phase on_one 1 one
mem_phase off_one 0 one
mem_phase on_dev 1 dev
mem_phase off_dev 0 dev
put load_mem_after "$(load)"

# ---------------------------------------------------------------------------
# 3. Parallel inference
# ---------------------------------------------------------------------------
CAI_Q="SELECT count(cai_predict('$SMALL', sentence)) AS n FROM big"
par_session() { # par_session <tag> <workers> <leader on|off> <share 1|0> <round>
	echo "SET jit = off;"
	echo "SET max_parallel_workers_per_gather = $2;"
	echo "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
	echo "SET parallel_leader_participation = $3;"
	[ "$4" = 0 ] && echo "SET cai.shared_cache_size = 0;"
	echo "SELECT cai_predict('$SMALL', 'warm up') \\g /dev/null"
	echo "$CPU_Q \\gset c0_"
	echo "SELECT clock_timestamp() AS t0 \\gset"
	echo "$CAI_Q \\gset"
	echo "SELECT 'RESULT par_$1_r$5 ' || round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 4);"
	echo "SELECT 'RESULT par_$1_r$5_leader_cpu ' || round((cpu - :c0_cpu) / $TICKS.0, 2) FROM ($CPU_Q) c;"
	echo "\\echo RESULT par_$1_r$5_count :n"
}
# CPU seconds (user + system) of the postmaster's reaped children: every
# backend and parallel worker adds its CPU time there when it exits
children_cpu() { awk -v t="$TICKS" '{ printf "%.2f", ($16 + $17) / t }' "/proc/$PM_PID/stat"; }
TICKS=$(getconf CLK_TCK)
CPU_Q="SELECT split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint AS cpu FROM pg_read_file('/proc/self/stat') s"
PM_PID=$(head -n 1 "$CAI_PGDATA/data/postmaster.pid")
SETTINGS=("w0 0 on 1" "w2 2 on 1" "w2nolead 2 off 1" "w2private 2 on 0")
put load_par_before "$(load)"
for ((r = 1; r <= REPEATS; r++)); do
	for s in "${SETTINGS[@]}"; do
		read -r tag w lead share <<< "$s"
		log "parallel round $r/$REPEATS: $tag over $ROWS rows ..."
		c0=$(children_cpu)
		par_session "$tag" "$w" "$lead" "$share" "$r" | "${PSQL[@]}" | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
		sleep 0.5 # the session's backend exits and is reaped
		put "par_${tag}_r${r}_session_cpu" "$(awk -v a="$c0" -v b="$(children_cpu)" 'BEGIN { printf "%.2f", b - a }')"
	done
done
put load_par_after "$(load)"
log "parallel: label counts (0 vs 2 workers) and EXPLAIN ANALYZE ..."
CHECK_Q="SELECT 'RESULT %s ' || string_agg(l || ':' || c, ',' ORDER BY l) FROM (SELECT cai_predict('$SMALL', sentence) AS l, count(*) AS c FROM big GROUP BY 1) g;"
{
	echo "SET jit = off; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
	echo "SET max_parallel_workers_per_gather = 0;"
	printf "$CHECK_Q\n" labels_w0
	echo "SET max_parallel_workers_per_gather = 2;"
	printf "$CHECK_Q\n" labels_w2
	echo "\\o $TMP/explain_w2.txt"
	echo "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) $CAI_Q;"
	echo "\\o"
} | "${PSQL[@]}" | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
put workers_launched "$(grep -o 'Workers Launched: [0-9]*' "$TMP/explain_w2.txt" | awk '{ print $3 }' | head -n 1)"
T_END=$(now)
put total_seconds "$(elapsed "$T_START" "$T_END")"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
$PY - "$R" "$TMP" "$OUT" <<'PYEOF'
import os, statistics, sys

rfile, tmp, out = sys.argv[1:4]
R = {}
for line in open(rfile, encoding="utf-8"):
    k, _, v = line.rstrip("\n").partition(" ")
    R[k] = v
conns, fe, memn = int(R["conns"]), int(R["first_ever"]), int(R["mem_n"])
rows, reps = int(R["rows"]), int(R["repeats"])
big_size = int(R["big_size"])
problems = []


def pctl(xs, q):
    # nearest-rank percentile
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


def med(xs):
    return statistics.median(xs)


def series(prefix, n, suffix):
    out = []
    for i in range(1, n + 1):
        k = "%s_%d_%s" % (prefix, i, suffix)
        if k not in R:
            problems.append("missing %s" % k)
            continue
        out.append(float(R[k]))
    return out


L = []
w = L.append
w("# One shared copy of each model: first-call latency, memory, parallel inference")
w("")
w("Generated %s by:" % R["date"])
w("")
w("    %s" % R["command"])
w("")
w("- Machine: %s x `%s` (nproc), %s GB RAM, Linux %s; shared with other jobs (load average 1/5/15 min "
  "before/after each part below), so timings are indicative." % (R["nproc"], R["cpu"], R["mem_gb"], R["kernel"]))
w("- PostgreSQL %s (throwaway cluster from `scripts/pgcluster.sh`, `fsync = off`, shared_buffers %s), "
  "cai_synergy %s (installed `cai_synergy.so` dated %s; repository at %s); %s." %
  (R["pg_version"], R["shared_buffers"], R["cai_version"], R["cai_so"], R["git"], R["blas_env"]))
w("- Models, trained on SST-2 train (60,614 rows) in the benchmark's cluster: `shared_big` `%s`: **%.1f MB** "
  "(`cai_model_details.size` %d bytes; validation accuracy %s; trained in %s s); `shared_small` `%s`: %.1f MB "
  "(validation accuracy %s; %s s)." %
  (R["big_options"], big_size / 1048576, big_size, R["big_acc"], R["big_train_s"], R["small_options"],
   int(R["small_size"]) / 1048576, R["small_acc"], R["small_train_s"]))
w("- Total run time %.0f s." % float(R["total_seconds"]))
w("")

# ---- 1. first call ----
w("## 1. First `cai_predict` call of a new connection (%.1f MB model)" % (big_size / 1048576))
w("")
w("Statement: `SELECT cai_predict('shared_big', '%s')`, in %d fresh connections per setting (interleaved: "
  "on/lib, off/lib, on/cold, off/cold, ...) while another session holds the model. **server ms** = "
  "`clock_timestamp()` just before and just after the call inside the statement (model lookup, load, one "
  "prediction); **client ms** = psql `\\timing` of the same statement (adds parse, plan, executor start, "
  "round trip and, for *cold* connections, loading `cai_synergy.so`). *lib loaded*: the connection ran "
  "`SELECT cai_version()` first; *cold*: the timed statement is the connection's first. Sharing off = "
  "`SET cai.shared_cache_size = 0` at the start of the connection (a private copy read from the catalog)."
  % (R["text"], conns))
w("")
w("| setting | server ms median | server ms p90 | client ms median | client ms p90 | 2nd call server ms median | 2nd call client ms median |")
w("|---|---:|---:|---:|---:|---:|---:|")
first = {}
for key, label in (("on_lib", "**sharing on, lib loaded**"), ("off_lib", "sharing off, lib loaded"),
                   ("on_cold", "sharing on, cold"), ("off_cold", "sharing off, cold")):
    sv = series(key, conns, "server_ms")
    cl = series(key, conns, "client_ms")
    s2 = series(key, conns, "second_server_ms")
    c2 = series(key, conns, "second_client_ms")
    first[key] = (sv, cl)
    if sv:
        w("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |" %
          (label, med(sv), pctl(sv, 90), med(cl), pctl(cl, 90), med(s2), med(c2)))
    labels = set(R.get("%s_%d_label" % (key, i)) for i in range(1, conns + 1))
    if len(labels) != 1:
        problems.append("%s: predicted labels differ between connections: %s" % (key, labels))
libms = series("on_lib", conns, "lib_ms") + series("off_lib", conns, "lib_ms")
fes = series("fe", fe, "server_ms")
fec = series("fe", fe, "client_ms")
w("| first-ever load (shared file removed before each; %d runs) | %.3f | %.3f | %.3f | %.3f | | |" %
  (fe, med(fes), pctl(fes, 90), med(fec), pctl(fec, 90)))
w("")
on, off = first["on_lib"][0], first["off_lib"][0]
w("- Sharing on vs off (lib loaded, server medians): %.3f ms vs %.3f ms, %.0fx faster. Target < 5 ms: %s." %
  (med(on), med(off), med(off) / med(on), "**met**" if med(on) < 5 else "**not met**"))
w("- Loading the library itself (`SELECT cai_version()` as a connection's first statement, client ms): "
  "median %.3f ms, p90 %.3f ms (%d connections): the gap between *cold* and *lib loaded* client times." %
  (med(libms), pctl(libms, 90), len(libms)))
w("- Runs, server ms: sharing on/lib %s; sharing off/lib %s; first-ever %s." %
  (", ".join("%.3f" % x for x in on), ", ".join("%.3f" % x for x in off), ", ".join("%.3f" % x for x in fes)))
w("- First-ever load = fully validating load from the catalog (checksum and every tensor) + writing the "
  "%s-byte file `pg_dynshmem/cai.*` + mapping it and building the model on the mapping. Shared files after "
  "each first-ever load: %s; after training, before any prediction: %s; after all first calls: %s." %
  (R["shared_file_bytes"], ", ".join(R["fe_%d_files" % i] for i in range(1, fe + 1)),
   R["cache_files_after_training"], R["cache_files_after_first_calls"]))
same = R["proba_md5_shared"] == R["proba_md5_private"]
w("- Shared (zero-copy, mapped) vs private copy: md5 of every `cai_predict_proba` over the %s test sentences: "
  "%s / %s: %s." % (R["rows_test"], R["proba_md5_shared"], R["proba_md5_private"],
                    "identical" if same else "**DIFFERENT**"))
if not same:
    problems.append("shared and private copies give different probabilities")
w("- Race: %d connections making their first call at once with no shared file: %s failed; labels %s; "
  "shared files afterwards %s, leftover `.tmp` files %s%s." %
  (memn, R["race_failed"], R["race_labels"], R["race_files"], R["race_tmp_files"],
   ("; errors: " + R["race_errors"]) if R["race_errors"].strip() else ""))
if R["race_failed"] != "0" or R["race_files"] != "1" or R["race_tmp_files"] != "0":
    problems.append("concurrent first-ever loads: %s failed, %s files, %s tmp files" %
                    (R["race_failed"], R["race_files"], R["race_tmp_files"]))
w("- Load average: before %s, after %s." % (R["load_first_before"], R["load_first_after"]))
w("")

# ---- 2. memory ----
FIELDS = ["RssAnon", "RssFile", "RssShmem", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem", "USS", "ModelRss", "ModelPss"]
model_kb = big_size / 1024.0
w("## 2. Memory of %d connections holding the model" % memn)
w("")
w("%d concurrent sessions each load `shared_big` (%.0f kB) and sleep; a baseline session of the same moment "
  "loads the library only (`SELECT cai_version()`). Per backend, from `/proc/<pid>/status` (RssAnon), "
  "`/proc/<pid>/smaps_rollup` (Pss; USS = Private_Clean + Private_Dirty) and `/proc/<pid>/smaps` (the Rss and "
  "Pss of the `pg_dynshmem/cai.*` mapping), **minus the baseline's**; %% = of the model size. *one call*: each "
  "session made one `cai_predict` call; *dev set*: each predicted the %s dev sentences (touching far more of "
  "the embedding table). RssAnon and USS are the memory private to the backend. Pss charges each resident "
  "page 1/k to each of its k mappers: the one shared copy is split between the %d holders, so its share is "
  "(resident pages of the file)/%d per backend, at most %.1f%% of the model, whatever the private memory; "
  "\"Pss w/o shared file\" subtracts that share. The last column sums the added Pss of the %d holders: the "
  "total the %d connections cost."
  % (memn, model_kb, R["rows_dev"], memn, memn, 100.0 / memn, memn, memn))
w("")
w("| setting | RssAnon added kB, median (max) | %% of model | USS added kB, median (max) | %% of model | Pss added kB, median (max) | %% of model | Pss w/o shared file, %% of model | sum of Pss added over %d, %% of model |" % memn)
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
mem = {}
pc = lambda x: 100.0 * x / model_kb
for tag, label in (("on_one", "**sharing on, one call**"), ("off_one", "sharing off, one call"),
                   ("on_dev", "**sharing on, dev set**"), ("off_dev", "sharing off, dev set")):
    snaps = {}
    for i in range(0, memn + 1):
        k = "mem_%s_%d" % (tag, i)
        if k not in R:
            problems.append("missing " + k)
            continue
        snaps[i] = dict(zip(FIELDS, map(int, R[k].split())))
    if 0 not in snaps:
        continue
    base = snaps[0]
    d = {f: [snaps[i][f] - base[f] for i in range(1, memn + 1) if i in snaps] for f in FIELDS}
    d["PssNoModel"] = [p - m for p, m in zip(d["Pss"], d["ModelPss"])]
    mem[tag] = (base, d)
    row = "| %s " % label
    for f in ("RssAnon", "USS", "Pss"):
        row += "| %.0f (%.0f) | %.2f%% (%.2f%%) " % (med(d[f]), max(d[f]), pc(med(d[f])), pc(max(d[f])))
    row += "| %.2f%% (%.2f%%) | %.1f%% |" % (pc(med(d["PssNoModel"])), pc(max(d["PssNoModel"])), pc(sum(d["Pss"])))
    w(row)
w("")
for tag in ("on_one", "on_dev"):
    if tag in mem:
        d = mem[tag][1]
        ok = max(d["RssAnon"]) < 0.1 * model_kb and max(d["USS"]) < 0.1 * model_kb
        w("- Target < 10%% of the model per connection with sharing (%s): private memory RssAnon max %.2f%%, "
          "USS max %.2f%%: %s; Pss max %.2f%%, of which the share of the one shared copy %.2f%% (its resident "
          "%.0f kB / %d) and the rest %.2f%%." %
          (tag, pc(max(d["RssAnon"])), pc(max(d["USS"])), "**met**" if ok else "**not met**", pc(max(d["Pss"])),
           pc(med(d["ModelPss"])), med(d["ModelRss"]), memn, pc(max(d["PssNoModel"]))))
for tag in ("off_one", "off_dev"):
    if tag in mem:
        d = mem[tag][1]
        w("- Sharing off (%s): every backend holds a private copy (RssAnon +%.2f%%); RssShmem +%.0f kB is the "
          "model's TOAST pages read through shared_buffers while loading from the catalog (shared buffers, "
          "bounded by shared_buffers, counted in Pss_Shmem)." % (tag, pc(med(d["RssAnon"])), med(d["RssShmem"])))
w("- Resident pages of a mapping are counted at the kernel's fault granularity: on this machine (%s, Linux %s) "
  "reading one byte of a page-cached file through mmap makes %s kB of the mapping resident (large folios), "
  "so a few dozen random embedding rows read by one call make a large part of the shared file resident in "
  "every holder (ModelRss below), all of it shared: it raises Pss, not private memory." %
  (R["fs_type"], R["kernel"], R["fault_kb"]))
w("- Mappings of `pg_dynshmem/cai.*` in a holding backend: sharing on %s / %s, sharing off %s / %s "
  "(one call / dev set)." % (R["mem_on_one_maps"], R["mem_on_dev_maps"], R["mem_off_one_maps"], R["mem_off_dev_maps"]))
w("")
w("Raw figures (kB): baseline, then the added amount of each holding session (min / median / max):")
w("")
w("| setting | field | baseline | added min | added median | added max |")
w("|---|---|---:|---:|---:|---:|")
for tag in ("on_one", "off_one", "on_dev", "off_dev"):
    if tag not in mem:
        continue
    base, d = mem[tag]
    for f in FIELDS:
        w("| %s | %s | %d | %d | %.0f | %d |" % (tag, f, base[f], min(d[f]), med(d[f]), max(d[f])))
w("")
w("- Load average: before %s, after %s." % (R["load_mem_before"], R["load_mem_after"]))
w("")

# ---- 3. parallel ----
w("## 3. Parallel inference (%s rows, `shared_small`)" % format(rows, ","))
w("")
w("`SELECT count(cai_predict('shared_small', sentence)) FROM big` (big: %s rows, %s MB, the SST-2 train+dev+test "
  "sentences repeated; `ALTER TABLE big SET (parallel_workers = 2)`), `jit = off`, `parallel_setup_cost = "
  "parallel_tuple_cost = 0`, one psql session per run: a warm-up `cai_predict` loads the model into the "
  "leader first; every parallel worker is a new process that loads the model again (from the shared file, or "
  "privately with sharing off). Wall time from `clock_timestamp()` before and after the statement; rounds "
  "interleave the settings. With leader participation (the default) 3 processes share the %s cores."
  % (format(int(R["rows_big"]), ","), R["big_mb"], R["nproc"]))
w("")
w("| setting | seconds, runs | median s | best s | rows/s (median) | speed-up vs 0 workers, median (best) | leader CPU s, runs | all-process CPU s, runs | cores used (CPU / wall), median |")
w("|---|---|---:|---:|---:|---:|---|---|---:|")
par = {}
best = {}
for tag, label in (("w0", "max_parallel_workers_per_gather = 0"),
                   ("w2", "**max_parallel_workers_per_gather = 2**"),
                   ("w2nolead", "2 workers, parallel_leader_participation = off"),
                   ("w2private", "2 workers, sharing off (each worker loads a private copy)")):
    xs = [float(R["par_%s_r%d" % (tag, r)]) for r in range(1, reps + 1) if "par_%s_r%d" % (tag, r) in R]
    for r in range(1, reps + 1):
        c = R.get("par_%s_r%d_count" % (tag, r))
        if c is None or int(c) != rows:
            problems.append("par_%s_r%d counted %s rows, expected %d" % (tag, r, c, rows))
    if not xs:
        continue
    par[tag] = med(xs)
    best[tag] = min(xs)
    lc = [float(R.get("par_%s_r%d_leader_cpu" % (tag, r), "nan")) for r in range(1, reps + 1)]
    sc = [float(R.get("par_%s_r%d_session_cpu" % (tag, r), "nan")) for r in range(1, reps + 1)]
    used = med([c / x for c, x in zip(sc, xs)])
    w("| %s | %s | %.3f | %.3f | %.0f | %s | %s | %s | %.2f |" %
      (label, ", ".join("%.3f" % x for x in xs), med(xs), min(xs), rows / med(xs),
       "%.2fx (%.2fx)" % (par["w0"] / med(xs), best["w0"] / min(xs)) if "w0" in par else "-",
       ", ".join("%.2f" % c for c in lc), ", ".join("%.2f" % c for c in sc), used))
w("")
if "w0" in par and "w2" in par:
    ratio = par["w0"] / par["w2"]
    w("- Speed-up with 2 workers: **%.2fx** from the medians, %.2fx from the best runs (target >= 1.7x on 2 cores: "
      "%s). Workers launched (EXPLAIN ANALYZE of the 2-worker query): %s." %
      (ratio, best["w0"] / best["w2"], "**met**" if ratio >= 1.7 else "**not met**", R.get("workers_launched", "?")))
    w("- CPU: *leader CPU* = user + system seconds of the session's backend during the statement "
      "(`/proc/self/stat` via `pg_read_file`); *all-process CPU* = the growth of the postmaster's reaped-children "
      "CPU time (`/proc/<postmaster>/stat` cutime + cstime) over the whole psql session: the backend (connection, "
      "warm-up, statement) plus its parallel workers. *Cores used* = all-process CPU / wall: up to %s on this "
      "machine. Other jobs share the cores, so a run's wall time depends on how much CPU it got: a single "
      "process using well under 1.0 core was starved, and a 3-process query gets a larger share of contended "
      "cores than a 1-process query, which can push the ratio of wall times above the core count." % R["nproc"])
same = R.get("labels_w0") == R.get("labels_w2")
w("- Predicted label counts, 0 vs 2 workers: %s / %s: %s." %
  (R.get("labels_w0"), R.get("labels_w2"), "identical" if same else "**DIFFERENT**"))
if not same:
    problems.append("parallel and serial predictions differ")
w("- Load average: before %s, after %s." % (R["load_par_before"], R["load_par_after"]))
w("")
w("<details><summary>EXPLAIN ANALYZE, 2 workers</summary>")
w("")
w("```")
p = os.path.join(tmp, "explain_w2.txt")
w(open(p, encoding="utf-8").read().rstrip() if os.path.exists(p) else "(missing)")
w("```")
w("")
w("</details>")
w("")

# ---- summary ----
w("## Summary")
w("")
w("| measure | with sharing | without sharing | target |")
w("|---|---:|---:|---|")
w("| first call, new connection, server ms median / p90 | %.3f / %.3f | %.3f / %.3f | < 5 ms |" %
  (med(on), pctl(on, 90), med(off), pctl(off, 90)))
w("| first-ever load ms (median) | %.3f | - | - |" % med(fes))
for tag in ("one", "dev"):
    if "on_" + tag in mem and "off_" + tag in mem:
        a, b = mem["on_" + tag][1], mem["off_" + tag][1]
        w("| added memory per connection (%s), RssAnon / USS / Pss median, %% of model | %.2f%% / %.2f%% / %.2f%% | %.2f%% / %.2f%% / %.2f%% | < 10%% (private) |" %
          ("one call" if tag == "one" else "dev set", pc(med(a["RssAnon"])), pc(med(a["USS"])), pc(med(a["Pss"])),
           pc(med(b["RssAnon"])), pc(med(b["USS"])), pc(med(b["Pss"]))))
        w("| total added Pss of the %d connections (%s), %% of model | %.1f%% | %.1f%% | - |" %
          (memn, "one call" if tag == "one" else "dev set", pc(sum(a["Pss"])), pc(sum(b["Pss"]))))
if "w0" in par and "w2" in par:
    w("| parallel speed-up, 2 workers vs 0, median (best) (without sharing: each worker loads a private copy) | %.2fx (%.2fx) | %s | >= 1.7x |" %
      (par["w0"] / par["w2"], best["w0"] / best["w2"],
       "%.2fx (%.2fx)" % (par["w0"] / par["w2private"], best["w0"] / best["w2private"]) if "w2private" in par else "-"))
w("")
if problems:
    w("**Problems:**")
    w("")
    for p in problems:
        w("- " + p)
    w("")

text = "\n".join(L) + "\n"
open(out, "w", encoding="utf-8").write(text)
sys.stdout.write(text)
PYEOF
log "report written to $OUT"
