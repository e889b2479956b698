#!/usr/bin/env bash
#
# sentiment.sh -- SST-2 sentiment, side by side on this machine:
#
#   1. fastText CLI            (bench/peers/sst2_fasttext.sh: grid on dev, test accuracy, train time)
#   2. scikit-learn TF-IDF+LR  (bench/peers/sst2_sklearn.py: C on dev, test accuracy, train time)
#   3. cai_synergy "fast"      (cai_train with validation_source = dev, cai_evaluate on test)
#   4. cai_synergy "accurate"  (same; "n/a" with the error if the architecture is not available)
#   5. inference over BENCH_ROWS (1,000,000) sentences (SST-2 train+dev+test sentences repeated):
#      count(cai_predict(...)) single-process and with 2 parallel workers, against the floor
#      count(md5(sentence)) and against `fasttext predict` on the very same sentences.
#
# Every timing is repeated BENCH_REPEATS (3) times; medians are reported.  Prints a markdown
# report and writes it to BENCH_OUT (bench/results-sentiment.md).  Uses the installed
# extension (run `make && make install` first) on a throwaway cluster (scripts/pgcluster.sh).
#
# Usage: bench/sentiment.sh              full run (about 10 minutes on 2 cores)
#        BENCH_QUICK=1 bench/sentiment.sh  smoke run: tiny fastText/sklearn grids, 100,000 rows,
#                                          "accurate" capped at max_seconds 10,
#                                          writes /tmp/results-sentiment-quick.md unless BENCH_OUT is set
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR            data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS           timed repetitions of each measurement [3]
#   BENCH_ROWS              rows of the inference table [1000000]
#   BENCH_CAI_OPTIONS       extra cai_train options (jsonb), merged into the options of both runs,
#                           {"validation_source": "dev", "architecture": "fast" or "accurate"} [{}]
#   BENCH_ACC_ROWS          rows (the first of the inference table) for the "accurate" model's
#                           cai_predict throughput, single process and 2 workers, jit off [50000]
#   BENCH_ACCURATE_TIMEOUT  statement_timeout (s) for one "accurate" training run [600]
#   BENCH_FORCE_WORKERS     1: ALTER TABLE big SET (parallel_workers = 2), for tables too small for the
#                           planner to choose 2 workers by itself [0; 1 with BENCH_QUICK]
#   BENCH_OUT               report file (overwritten) [bench/results-sentiment.md]
#   FT_*                    passed to bench/peers/sst2_fasttext.sh (grid: FT_LRS, FT_EPOCHS, FT_DIMS;
#                           default: its full 18-config grid)
#   SK_CS                   C grid for bench/peers/sst2_sklearn.py [its default, 8 values]
#
# The peers' own results files (bench/peers/results-sst2.*) are not touched: their output goes
# to a temporary directory and is copied into the report's appendix.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/sentiment.sh CAI_DATA_DIR BENCH_QUICK BENCH_REPEATS BENCH_ROWS BENCH_CAI_OPTIONS BENCH_ACCURATE_TIMEOUT \
	BENCH_ACC_ROWS BENCH_FORCE_WORKERS BENCH_OUT SK_CS FT_LRS FT_EPOCHS FT_DIMS FT_WORD_NGRAMS FT_BUCKET FT_THREADS FT_SEED \
	FT_TIME_REPEATS FT_PREDICT_LINES

bench_cd_repo
SST="$(bench_dataset sentiment.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"

PY=/usr/bin/python3
FASTTEXT="${FASTTEXT:-/usr/bin/fasttext}"
REPEATS="${BENCH_REPEATS:-3}"
ROWS="${BENCH_ROWS:-1000000}"
CAI_EXTRA="${BENCH_CAI_OPTIONS:-}"
[ -n "$CAI_EXTRA" ] || CAI_EXTRA='{}'
ACC_TIMEOUT="${BENCH_ACCURATE_TIMEOUT:-600}"
ACC_ROWS="${BENCH_ACC_ROWS:-50000}"
FORCE_WORKERS="${BENCH_FORCE_WORKERS:-0}"
SK_ARGS=()
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	ROWS="${BENCH_ROWS:-100000}"
	OUT="${BENCH_OUT:-/tmp/results-sentiment-quick.md}"
	export FT_LRS="${FT_LRS:-0.5}" FT_EPOCHS="${FT_EPOCHS:-5}" FT_DIMS="${FT_DIMS:-50}"
	export FT_TIME_REPEATS="${FT_TIME_REPEATS:-1}" FT_PREDICT_LINES="${FT_PREDICT_LINES:-100000}"
	SK_ARGS+=(--cs "${SK_CS:-4,16}" --predict-lines 100000)
	FORCE_WORKERS="${BENCH_FORCE_WORKERS:-1}"
	ACC_ROWS="${BENCH_ACC_ROWS:-5000}"
else
	OUT="${BENCH_OUT:-bench/results-sentiment.md}"
	[ -n "${SK_CS:-}" ] && SK_ARGS+=(--cs "$SK_CS")
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cai-bench-sentiment.XXXXXX")"
chmod 755 "$TMP"
CAI_PGDATA=""
cleanup() {
	if [ -n "$CAI_PGDATA" ]; then scripts/pgcluster.sh stop "$CAI_PGDATA" || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_results "$TMP/results.txt"
bench_put_machine

put fasttext_version "$(dpkg-query -W -f='${Version}' fasttext 2>/dev/null || echo unknown)"
put sklearn_version "$($PY -c 'import sklearn; print(sklearn.__version__)')"
put repeats "$REPEATS"
put rows "$ROWS"

# ---------------------------------------------------------------------------
# 1. fastText (peer script; its temporary model is gone afterwards, so the
#    selected configuration is retrained below for the 1M-sentence predict).
# ---------------------------------------------------------------------------
log "fastText grid (bench/peers/sst2_fasttext.sh) ..."
put load_fasttext_before "$(load)"
RESULTS_MD="$TMP/peers.md" RESULTS_JSONL="$TMP/peers.jsonl" bench/peers/sst2_fasttext.sh > "$TMP/fasttext.out"
put load_fasttext_after "$(load)"
tail -n 1 "$TMP/fasttext.out" > "$TMP/fasttext.json"
jq -e '.system == "fasttext"' "$TMP/fasttext.json" > /dev/null

# ---------------------------------------------------------------------------
# 2. scikit-learn (peer script)
# ---------------------------------------------------------------------------
log "scikit-learn TF-IDF + LR (bench/peers/sst2_sklearn.py) ..."
put load_sklearn_before "$(load)"
$PY bench/peers/sst2_sklearn.py ${SK_ARGS[@]+"${SK_ARGS[@]}"} --out-md "$TMP/peers.md" --out-jsonl "$TMP/peers.jsonl" > "$TMP/sklearn.out"
put load_sklearn_after "$(load)"
tail -n 1 "$TMP/sklearn.out" > "$TMP/sklearn.json"
jq -e '.system == "sklearn-tfidf-lr"' "$TMP/sklearn.json" > /dev/null

# ---------------------------------------------------------------------------
# The inference sentences: SST-2 train+dev+test sentences (file order)
# repeated to ROWS lines.  The same file feeds the big table and fastText.
# ---------------------------------------------------------------------------
for f in train dev test; do tail -n +2 "$SST/$f.tsv" | cut -f2-; done > "$TMP/pool.txt"
awk -v n="$ROWS" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
	"$TMP/pool.txt" > "$TMP/big.txt"
put pool_sentences "$(wc -l < "$TMP/pool.txt")"
put big_tokens "$(wc -w < "$TMP/big.txt")"

# ---------------------------------------------------------------------------
# Cluster and tables
# ---------------------------------------------------------------------------
log "starting a throwaway cluster ..."
eval "$(scripts/pgcluster.sh start)"
export PGDATABASE=postgres
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
put pg_version "$("${PSQL[@]}" -c 'SHOW server_version')"

copts="(FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
{
	for f in train dev test; do echo "\\copy $f FROM '${SST//\'/\'\'}/$f.tsv' WITH $copts"; done
	echo "\\copy big FROM '$TMP/big.txt' WITH ${copts/HEADER true/HEADER false}"
} > "$TMP/copies.sql"
"${PSQL[@]}" -v copies="$TMP/copies.sql" -f bench/sql/sentiment_setup.sql | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
put cai_version "$("${PSQL[@]}" -c 'SELECT cai_version()')"
if [ "$FORCE_WORKERS" = 1 ]; then
	"${PSQL[@]}" -c 'ALTER TABLE big SET (parallel_workers = 2)'
fi
put force_workers "$FORCE_WORKERS"
so_date() { ls -l --time-style='+%Y-%m-%d %H:%M:%S' "$(pg_config --pkglibdir)/cai_synergy.so" | awk '{ print $6 " " $7 }'; }
put cai_so "$(so_date)"

# ---------------------------------------------------------------------------
# 3. cai_synergy fast: REPEATS training runs into one model name (the first
#    is deployed; later ones only if better, as usual), wall time of each
#    cai_train call from clock_timestamp() around it.
# ---------------------------------------------------------------------------
FAST_OPTS="$(jq -cn --argjson extra "$CAI_EXTRA" '{"validation_source": "dev", "architecture": "fast"} + $extra')"
put cai_fast_options "$FAST_OPTS"
# train_sql <model> <options-json> <tag>: one timed cai_train call, RESULT lines
train_sql() {
	cat <<EOF
SELECT clock_timestamp() AS t0 \\gset
SELECT version AS v, metrics->>'seconds' AS msecs, metrics->>'accuracy' AS vacc,
       coalesce(metrics->>'best_epoch', '?') AS best, coalesce(metrics->>'epochs_run', '?') AS ran
  FROM cai_train('$1', 'sentiment', 'train', 'sentence', 'label', '$2'::jsonb) \\gset
SELECT 'RESULT $3_wall ' || round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 3);
\\echo RESULT $3_version :v
\\echo RESULT $3_metrics_seconds :msecs
\\echo RESULT $3_val_acc :vacc
\\echo RESULT $3_epochs :best :ran
EOF
}
log "cai_synergy fast: $REPEATS training runs ..."
put load_cai_train_before "$(load)"
for ((i = 1; i <= REPEATS; i++)); do
	train_sql sst2_fast "$FAST_OPTS" "fast_run$i" | "${PSQL[@]}" 2>> "$TMP/cai_train.log" |
		grep '^RESULT ' | cut -d' ' -f2- >> "$R"
done
put load_cai_train_after "$(load)"
# Test accuracy of every version (deploy each in turn), then redeploy the
# version that was deployed by the runs: that one is used for inference.
"${PSQL[@]}" > "$TMP/eval.out" <<'EOF'
SELECT version AS deployed FROM cai_models WHERE name = 'sst2_fast' AND deployed \gset
\echo RESULT fast_deployed :deployed
SELECT format('SELECT cai_deploy(%L, %s) AS deployed_v%s', name, version, version),
       format('SELECT %L || (cai_evaluate(%L, ''test'', ''sentence'', ''label'')->>''accuracy'')',
              'RESULT fast_test_acc_v' || version || ' ', name)
  FROM cai_models WHERE name = 'sst2_fast' ORDER BY version \gexec
SELECT cai_deploy('sst2_fast', :deployed) \g /dev/null
SELECT 'RESULT fast_test_acc ' || (cai_evaluate('sst2_fast', 'test', 'sentence', 'label')->>'accuracy');
SELECT 'RESULT fast_size_mb ' || round(length(cai_export('sst2_fast'))::numeric / 1048576, 1);
EOF
grep '^RESULT ' "$TMP/eval.out" | cut -d' ' -f2- >> "$R"

# ---------------------------------------------------------------------------
# 4. cai_synergy accurate: one run (it may be slow), errors reported, not fatal.
# ---------------------------------------------------------------------------
ACC_BASE='{"validation_source": "dev", "architecture": "accurate"}'
# quick runs only check that the architecture trains: 10 seconds at most
[ "${BENCH_QUICK:-0}" = 1 ] && ACC_BASE='{"validation_source": "dev", "architecture": "accurate", "max_seconds": 10}'
ACC_OPTS="$(jq -cn --argjson base "$ACC_BASE" --argjson extra "$CAI_EXTRA" '$base + $extra')"
put cai_accurate_options "$ACC_OPTS"
log "cai_synergy accurate: one training run (statement_timeout ${ACC_TIMEOUT}s) ..."
put load_cai_accurate_before "$(load)"
{
	echo "SET statement_timeout = '${ACC_TIMEOUT}s';"
	train_sql sst2_accurate "$ACC_OPTS" acc_run1
	echo "SELECT 'RESULT acc_test_acc ' || (cai_evaluate('sst2_accurate', 'test', 'sentence', 'label')->>'accuracy');"
} | "${PSQL[@]}" > "$TMP/accurate.out" 2> "$TMP/accurate.err" || true
put load_cai_accurate_after "$(load)"
if grep -q '^RESULT acc_test_acc ' "$TMP/accurate.out"; then
	grep '^RESULT ' "$TMP/accurate.out" | cut -d' ' -f2- >> "$R"
else
	put acc_error "$(grep -m1 'ERROR' "$TMP/accurate.err" | sed 's/^.*ERROR: *//' || echo unknown error)"
fi

# ---------------------------------------------------------------------------
# 5. Inference.  REPEATS rounds; each round runs, one after the other, one
#    psql session per (jit, parallelism) setting -- a warm-up cai_predict call
#    (loads the model into the session's cache; timed as first/second call),
#    then the md5 floor, then cai_predict -- and then fastText predict, so
#    that every system sees the same machine load in every round.  Parallel
#    workers are new processes for every query, so each parallel timing
#    includes loading the model in each worker.  Single-process queries also
#    record the backend's CPU seconds (/proc/self/stat via pg_read_file) to
#    tell CPU starvation (wall >> CPU) from a slow computation.
# ---------------------------------------------------------------------------
log "fastText predict model: retraining the selected configuration ..."
tail -n +2 "$SST/train.tsv" | awk -F'\t' 'NF >= 2 { print "__label__" $1 " " $2 }' > "$TMP/train.ft"
jq -r '.config | "\(.lr) \(.epoch) \(.dim) \(.wordNgrams) \(.bucket) \(.thread) \(.seed) \(.loss)"' \
	"$TMP/fasttext.json" | {
	read -r lr ep dim ng bucket thr seed loss
	"$FASTTEXT" supervised -input "$TMP/train.ft" -output "$TMP/ft" -lr "$lr" -epoch "$ep" -dim "$dim" \
		-wordNgrams "$ng" -loss "$loss" -bucket "$bucket" -thread "$thr" -seed "$seed" -verbose 0 > /dev/null
}
rm -f "$TMP/train.ft" "$TMP/ft.vec"
head -n 1 "$TMP/big.txt" > "$TMP/one.txt"
"$FASTTEXT" predict "$TMP/ft.bin" "$TMP/one.txt" > /dev/null # page cache
put ft_model_mb "$(awk -v b="$(stat -c %s "$TMP/ft.bin")" 'BEGIN { printf "%.0f", b / 1048576 }')"
# the retrained model must be the peer's selected one: same test accuracy
tail -n +2 "$SST/test.tsv" | cut -f2- > "$TMP/test.sent"
put ft_retrained_test_acc "$("$FASTTEXT" predict "$TMP/ft.bin" "$TMP/test.sent" |
	paste -d' ' - <(tail -n +2 "$SST/test.tsv" | cut -f1 | sed 's/^/__label__/') |
	awk '{ n++; c += ($1 == $2) } END { printf "%.6f", c / n }')"

TICKS=$(getconf CLK_TCK)
MD5_Q="SELECT count(md5(sentence)) AS n FROM big"
CAI_Q="SELECT count(cai_predict('sst2_fast', sentence)) AS n FROM big"
CPU_Q="SELECT split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint AS cpu FROM pg_read_file('/proc/self/stat') s"
since() { # SQL: seconds since the psql variable t0
	echo "round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 4)"
}
time_sql() { # time_sql <key> <query> <cpu 0|1>
	[ "$3" = 1 ] && echo "$CPU_Q \\gset c0_"
	echo "SELECT clock_timestamp() AS t0 \\gset"
	echo "$2 \\gset"
	echo "SELECT 'RESULT $1 ' || $(since);"
	echo "\\echo RESULT $1_count :n"
	[ "$3" = 1 ] && echo "SELECT 'RESULT $1_cpu ' || round((cpu - :c0_cpu) / $TICKS.0, 2) FROM ($CPU_Q) c;"
	return 0
}
inference_session() { # inference_session <jit on|off> <workers 0|2> <round>
	local tag="jit$1_w$2" r="$3" cpu=0
	[ "$2" = 0 ] && cpu=1
	echo "SET jit = $1;"
	echo "SET max_parallel_workers_per_gather = $2;"
	if [ "$2" -gt 0 ]; then
		echo "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
	fi
	for call in first second; do
		echo "SELECT clock_timestamp() AS t0 \\gset"
		echo "SELECT cai_predict('sst2_fast', 'warm up') \\g /dev/null"
		echo "SELECT 'RESULT ${tag}_${call}_call_r$r ' || $(since);"
	done
	if [ "$r" = 1 ]; then
		echo "\\o $TMP/explain_${tag}.txt"
		echo "EXPLAIN $CAI_Q;"
		echo "EXPLAIN $MD5_Q;"
		echo "\\o"
	fi
	time_sql "${tag}_md5_r$r" "$MD5_Q" "$cpu"
	time_sql "${tag}_cai_r$r" "$CAI_Q" "$cpu"
	if [ "$r" = "$REPEATS" ] && [ "$2" -gt 0 ]; then
		echo "\\o $TMP/explain_analyze_${tag}.txt"
		echo "EXPLAIN (ANALYZE, COSTS OFF) $CAI_Q;"
		echo "\\o"
	fi
}
put load_inference_before "$(load)"
for ((r = 1; r <= REPEATS; r++)); do
	log "inference round $r/$REPEATS: md5 and cai_predict over $ROWS rows (jit off/on x 0/2 workers), fastText predict ..."
	for jit in off on; do
		for w in 0 2; do
			inference_session "$jit" "$w" "$r" | "${PSQL[@]}" | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
		done
	done
	t0=$(now)
	"$FASTTEXT" predict "$TMP/ft.bin" "$TMP/one.txt" > /dev/null
	t1=$(now)
	put "ft_load_r$r" "$(elapsed "$t0" "$t1")"
	t0=$(now)
	/usr/bin/time -f '%U %S' -o "$TMP/ft.time" "$FASTTEXT" predict "$TMP/ft.bin" "$TMP/big.txt" > "$TMP/ft.pred"
	t1=$(now)
	put "ft_predict_r$r" "$(elapsed "$t0" "$t1")"
	put "ft_predict_r${r}_cpu" "$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/ft.time")"
	put "ft_predict_r${r}_count" "$(wc -l < "$TMP/ft.pred")"
done
put load_inference_after "$(load)"
rm -f "$TMP/ft.bin" "$TMP/ft.pred"

# The "accurate" model's throughput on the first ACC_ROWS rows (it is far
# slower per row): single process and 2 workers (forced with the table's
# parallel_workers, the table being small), jit off, REPEATS rounds.
if [ -z "$(awk '$1 == "acc_error"' "$R")" ]; then
	log "accurate model: cai_predict over $ACC_ROWS rows, $REPEATS rounds (single process, 2 workers) ..."
	"${PSQL[@]}" -c "CREATE TABLE big_acc WITH (parallel_workers = 2) AS SELECT sentence FROM big LIMIT $ACC_ROWS" \
		-c 'VACUUM ANALYZE big_acc'
	ACC_Q="SELECT count(cai_predict('sst2_accurate', sentence)) AS n FROM big_acc"
	for ((r = 1; r <= REPEATS; r++)); do
		for w in 0 2; do
			{
				echo "SET jit = off; SET max_parallel_workers_per_gather = $w;"
				echo "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;"
				echo "SELECT cai_predict('sst2_accurate', 'warm up') \\g /dev/null"
				if [ "$r" = 1 ]; then
					echo "\\o $TMP/explain_acc_w$w.txt"
					echo "EXPLAIN (COSTS OFF) $ACC_Q;"
					echo "\\o"
				fi
				time_sql "acc_w${w}_cai_r$r" "$ACC_Q" "$([ "$w" = 0 ] && echo 1 || echo 0)"
			} | "${PSQL[@]}" | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
		done
	done
fi
put cai_so_end "$(so_date)"
T_END=$(now)
put total_seconds "$(elapsed "$T_START" "$T_END")"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
$PY - "$R" "$TMP" "$OUT" <<'PYEOF'
import json, os, statistics, sys

rfile, tmp, out = sys.argv[1:4]
R = {}
for line in open(rfile, encoding="utf-8"):
    k, _, v = line.rstrip("\n").partition(" ")
    R[k] = v
ft = json.load(open(os.path.join(tmp, "fasttext.json")))
sk = json.load(open(os.path.join(tmp, "sklearn.json")))
n = int(R["repeats"])
rows = int(R["rows"])
problems = []


def runs(prefix):
    return [float(R["%s_r%d" % (prefix, i)]) for i in range(1, n + 1)]


def med(xs):
    return statistics.median(xs)


def fmt_runs(xs, nd=3):
    return ", ".join("%.*f" % (nd, x) for x in xs)


def pct(x):
    return "%.2f%%" % (100 * float(x)) if x not in (None, "", "n/a") else "n/a"


def read(name):
    p = os.path.join(tmp, name)
    return open(p, encoding="utf-8").read().rstrip() if os.path.exists(p) else "(missing)"


# every inference query must have counted every row
for k, v in R.items():
    if k.endswith("_count") and (k.startswith("jit") or k.startswith("ft_predict")):
        if int(v) != rows:
            problems.append("%s = %s, expected %d" % (k, v, rows))

L = []
w = L.append
w("# SST-2 sentiment: cai_synergy vs fastText vs scikit-learn")
w("")
w("Generated %s by:" % R["date"])
w("")
w("    %s" % R["command"])
w("")
w("- Machine: %s x `%s` (nproc), %s GB RAM; shared with other jobs, so timings are indicative." %
  (R["nproc"], R["cpu"], R["mem_gb"]))
w("- PostgreSQL %s (throwaway cluster from `scripts/pgcluster.sh`, `fsync = off`), cai_synergy %s "
  "(installed `cai_synergy.so` dated %s; repository at %s), fastText %s (Debian CLI), scikit-learn %s; %s." %
  (R["pg_version"], R["cai_version"], R["cai_so"], R["git"], R["fasttext_version"], R["sklearn_version"],
   R["blas_env"]))
w("- Data: SST-2 train %s / dev %s / test %s rows (test = GLUE's 872-sentence evaluation set, the accuracy "
  "to compare; dev is a random split of the phrase-level training data, hence optimistic)." %
  (R["rows_train"], R["rows_dev"], R["rows_test"]))
w("- Every timing is wall clock; \"median of %d\" lists the runs. Total run time %.0f s." %
  (n, float(R["total_seconds"])))
w("")

# ---- accuracy and training ----
fast_walls = [float(R["fast_run%d_wall" % i]) for i in range(1, n + 1)]
fast_msecs = [float(R["fast_run%d_metrics_seconds" % i]) for i in range(1, n + 1)]
fast_vaccs = sorted(set(R["fast_run%d_val_acc" % i] for i in range(1, n + 1)))
test_accs = {k[len("fast_test_acc_v"):]: v for k, v in R.items() if k.startswith("fast_test_acc_v")}
w("## Accuracy and training time")
w("")
w("| system | configuration | dev acc | **test acc** | train s | train s, runs |")
w("|---|---|---:|---:|---:|---|")
c = ft["config"]
w("| fastText CLI, 1 thread | best of %d-config grid on dev: lr %s, epoch %s, dim %s, wordNgrams %s, bucket %s | %s | **%s** | %.2f | %s (median of %d) |" %
  (len(ft["grid"]["lr"]) * len(ft["grid"]["epoch"]) * len(ft["grid"]["dim"]), c["lr"], c["epoch"], c["dim"],
   c["wordNgrams"], c["bucket"], pct(ft["dev_acc"]), pct(ft["test_acc"]), ft["train_seconds"],
   fmt_runs(ft["train_seconds_runs"]), len(ft["train_seconds_runs"])))
w("| scikit-learn TF-IDF (1-2 grams) + LR (liblinear) | best C of %d on dev: C = %g, %d features | %s | **%s** | %.2f | vectorizer %.3f + LR %.3f (one run) |" %
  (len(sk["grid"]), sk["config"]["C"], sk["n_features"], pct(sk["dev_acc"]), pct(sk["test_acc"]),
   sk["train_seconds"], sk["vectorizer_fit_seconds"], sk["classifier_fit_seconds"]))
w("| cai_synergy fast | `%s` (other options at their defaults) | %s | **%s** | %.2f | cai_train wall: %s (median of %d); metrics.seconds: %s (median %.2f) |" %
  (R["cai_fast_options"], " / ".join(pct(a) for a in fast_vaccs), pct(R["fast_test_acc"]), med(fast_walls),
   fmt_runs(fast_walls), n, fmt_runs(fast_msecs), med(fast_msecs)))
if "acc_error" in R:
    w("| cai_synergy accurate | `%s` | n/a | **n/a** | n/a | error: %s |" % (R["cai_accurate_options"], R["acc_error"]))
else:
    w("| cai_synergy accurate | `%s` | %s | **%s** | %.2f | cai_train wall, one run; metrics.seconds %s |" %
      (R["cai_accurate_options"], pct(R["acc_run1_val_acc"]), pct(R["acc_test_acc"]), float(R["acc_run1_wall"]),
       R["acc_run1_metrics_seconds"]))
w("")
w("- cai_synergy fast: dev acc is the model's validation accuracy on the dev table (`validation_source`), the "
  "epoch with the best one is kept (best/run epochs per run: %s); test acc from `cai_evaluate` on the test "
  "table for the deployed version %s (every version's test acc: %s). Model %s MB (`cai_export`)." %
  ("; ".join(R["fast_run%d_epochs" % i].replace(" ", "/") for i in range(1, n + 1)), R["fast_deployed"],
   ", ".join("v%s %s" % (k, pct(v)) for k, v in sorted(test_accs.items(), key=lambda kv: int(kv[0]))),
   R["fast_size_mb"]))
w("- cai_train wall time = `clock_timestamp()` before and after the `cai_train` statement: it includes starting "
  "the background worker, reading the tables, training, validating every epoch, serializing and storing the "
  "model. metrics.seconds is the figure the training reports itself.")
w("- fastText train s = wall time of the `fasttext supervised` process (reading the file, training, writing a "
  "%s MB `.bin`); scikit-learn train s = vectorizer `fit_transform` + `LogisticRegression.fit` from raw text." %
  R["ft_model_mb"])
if len(fast_vaccs) > 1 or len(set(test_accs.values())) > 1:
    problems.append("cai fast training runs with the same options gave different accuracies: %s / %s" %
                    (fast_vaccs, test_accs))
w("")

# ---- inference ----
def irow(label, secs, cpu=None):
    m = med(secs)
    c = "%s (median %.2f)" % (fmt_runs(cpu, 2), med(cpu)) if cpu else "-"
    return m, "| %s | %s | %.3f | %.0f | %s |" % (label, fmt_runs(secs), m, rows / m, c)


def cpus(prefix):
    k = "%s_r1_cpu" % prefix
    return [float(R["%s_r%d_cpu" % (prefix, i)]) for i in range(1, n + 1)] if k in R else None


w("## Inference over %s sentences" % format(rows, ","))
w("")
w("Table `big(sentence text)`, %s MB: the %s SST-2 train+dev+test sentences (file order) repeated to %s rows, "
  "%s tokens; `fasttext predict` reads the very file the table was loaded from. Queries: "
  "`SELECT count(md5(sentence)) FROM big` (the floor: scan + a cheap function per row) and "
  "`SELECT count(cai_predict('sst2_fast', sentence)) FROM big`, each timed with `clock_timestamp()` around "
  "the statement. %d rounds; in each, one new psql session per setting (a warm-up `cai_predict` call first "
  "loads the model into the session's cache, then md5, then cai_predict), then `fasttext predict` (output to a "
  "file), so all systems share each round's machine load. CPU s = user + system CPU seconds of the "
  "backend (`/proc/self/stat`) or of the fastText process: wall much above CPU means the process waited for a "
  "core. Parallel settings: `max_parallel_workers_per_gather = 2`, `parallel_setup_cost = 0`, "
  "`parallel_tuple_cost = 0`%s (leader participation on, so 3 processes share the 2 cores)." %
  (R["big_mb"], R["pool_sentences"], format(rows, ","), R["big_tokens"], n,
   ", and `ALTER TABLE big SET (parallel_workers = 2)`" if R["force_workers"] == "1" else
   "; the planner chooses the number of workers itself"))
w("")
w("| measurement | runs, s | median s | rows/s | CPU s, runs |")
w("|---|---|---:|---:|---|")
M = {}
for jit in ("off", "on"):
    for wk in ("0", "2"):
        tag = "jit%s_w%s" % (jit, wk)
        what = "single process" if wk == "0" else "2 parallel workers"
        M[tag + "_md5"], s = irow("md5 floor, %s, jit %s" % (what, jit), runs(tag + "_md5"), cpus(tag + "_md5"))
        w(s)
        M[tag + "_cai"], s = irow("**cai_predict fast, %s, jit %s**" % (what, jit), runs(tag + "_cai"), cpus(tag + "_cai"))
        w(s)
ft_pred = runs("ft_predict")
ft_load = runs("ft_load")
M["ft"], s = irow("**fastText predict** (1 thread, incl. model load)", ft_pred, cpus("ft_predict"))
w(s)
ft_excl = [p - l for p, l in zip(ft_pred, ft_load)]
M["ft_excl"], s = irow("fastText predict, excl. model load (run minus a 1-line predict run)", ft_excl)
w(s)
w("")
first = [float(v) for k, v in R.items() if "_first_call_r" in k]
second = [float(v) for k, v in R.items() if "_second_call_r" in k]
w("fastText model load (1-line predict): %s s; retrained selected model %s MB, test acc %s (peer: %s). "
  "cai_predict of one short text in a new session (loads the %s MB model from the catalog): median %.3f s "
  "(%d sessions, %.3f to %.3f), %.4f s for the next call." %
  (fmt_runs(ft_load), R["ft_model_mb"], pct(R["ft_retrained_test_acc"]), pct(ft["test_acc"]), R["fast_size_mb"],
   med(first), len(first), min(first), max(first), med(second)))
if abs(float(R["ft_retrained_test_acc"]) - float(ft["test_acc"])) > 1e-9:
    problems.append("the retrained fastText model's test accuracy differs from the peer script's")
w("")
if "acc_w0_cai_r1" in R:
    acc_rows = int(R["acc_w0_cai_r1_count"])
    w("The **accurate** model (`sst2_accurate`), on the first %s rows of `big` (table `big_acc`, "
      "`parallel_workers = 2`), jit off:" % format(acc_rows, ","))
    w("")
    w("| measurement | runs, s | median s | rows/s | CPU s, runs |")
    w("|---|---|---:|---:|---|")
    for wk, what in (("0", "single process"), ("2", "2 parallel workers")):
        secs = runs("acc_w%s_cai" % wk)
        c = cpus("acc_w%s_cai" % wk)
        M["acc_w" + wk] = med(secs)
        w("| cai_predict accurate, %s | %s | %.3f | %.0f | %s |" %
          (what, fmt_runs(secs), med(secs), acc_rows / med(secs),
           "%s (median %.2f)" % (fmt_runs(c, 2), med(c)) if c else "-"))
    w("")
    w("Accurate single process: %.0f rows/s, %.1f us per row, %.1fx the per-row time of fast (jit off, "
      "single process); 2 workers / single process: %.2f." %
      (acc_rows / M["acc_w0"], 1e6 * M["acc_w0"] / acc_rows,
       (M["acc_w0"] / acc_rows) / (M["jitoff_w0_cai"] / rows), M["acc_w0"] / M["acc_w2"]))
    w("")
    for k, v in R.items():
        if k.startswith("acc_w") and k.endswith("_count") and int(v) != acc_rows:
            problems.append("%s = %s, expected %d" % (k, v, acc_rows))


def rate(key):
    return rows / M[key]


w("### Ratios (from the medians; throughput ratios, > 1 means cai_synergy is faster)")
w("")
w("| ratio | jit off | jit on |")
w("|---|---:|---:|")
for label, f in [
    ("cai single-process / fastText predict (incl. load)", lambda j: rate("jit%s_w0_cai" % j) / rate("ft")),
    ("cai single-process / fastText predict (excl. load)", lambda j: rate("jit%s_w0_cai" % j) / rate("ft_excl")),
    ("cai 2 workers / fastText predict (incl. load)", lambda j: rate("jit%s_w2_cai" % j) / rate("ft")),
    ("cai 2 workers / cai single-process (parallel speed-up)", lambda j: rate("jit%s_w2_cai" % j) / rate("jit%s_w0_cai" % j)),
    ("md5 2 workers / md5 single-process (parallel speed-up of the floor)", lambda j: rate("jit%s_w2_md5" % j) / rate("jit%s_w0_md5" % j)),
    ("cai single-process / md5 floor single-process", lambda j: rate("jit%s_w0_cai" % j) / rate("jit%s_w0_md5" % j)),
]:
    w("| %s | %.2f | %.2f |" % (label, f("off"), f("on")))
ft_cpu = med(cpus("ft_predict"))
w("| by CPU seconds (robust to a busy machine): fastText predict CPU s (incl. load) / cai single-process CPU s | %.2f | %.2f |" %
  (ft_cpu / med(cpus("jitoff_w0_cai")), ft_cpu / med(cpus("jiton_w0_cai"))))
w("")
cai_us = lambda j: 1e6 * (M["jit%s_w0_cai" % j] - M["jit%s_w0_md5" % j]) / rows
w("Per-row cost of `cai_predict` above the md5 floor, single process: %.2f us (jit off), %.2f us (jit on); "
  "fastText predict: %.2f us per sentence excluding load." %
  (cai_us("off"), cai_us("on"), 1e6 * M["ft_excl"] / rows))
w("")
w("For reference, the peers' own throughput figures (their own pool: dev+test sentences repeated, "
  "%s lines): fastText %s sent/s (%s excluding load), scikit-learn `transform` + `predict` %s sent/s." %
  (format(ft["predict_sentences"], ","), format(ft["predict_sentences_per_s"], ","),
   format(ft["predict_sentences_per_s_excl_load"], ","), format(sk["predict_sentences_per_s"], ",")))
w("")

# ---- plans ----
w("### Plans")
w("")
for tag in ("jitoff_w2", "jiton_w2"):
    e = read("explain_%s.txt" % tag)
    if "Workers Planned: 2" not in e:
        problems.append("%s: EXPLAIN does not show Workers Planned: 2" % tag)
    ea = read("explain_analyze_%s.txt" % tag)
    if "Workers Launched: 2" not in ea:
        problems.append("%s: EXPLAIN ANALYZE does not show Workers Launched: 2" % tag)
for tag in ("jitoff_w0", "jitoff_w2", "jiton_w2"):
    w("`%s` (`EXPLAIN` of the cai_predict query, then of the md5 query):" % tag)
    w("")
    w("```")
    w(read("explain_%s.txt" % tag))
    w("```")
    w("")
if "acc_w0_cai_r1" in R:
    w("Accurate model on `big_acc`, 2 workers: `EXPLAIN (COSTS OFF)`:")
    w("")
    w("```")
    w(read("explain_acc_w2.txt"))
    w("```")
    w("")
for tag in ("jitoff_w2", "jiton_w2"):
    w("`%s`, `EXPLAIN (ANALYZE, COSTS OFF)` of the cai_predict query (one extra run, not in the timings):" % tag)
    w("")
    w("```")
    w(read("explain_analyze_%s.txt" % tag))
    w("```")
    w("")

# ---- load ----
w("### Machine load (1/5/15-minute load average before -> after each phase)")
w("")
for ph in ("fasttext", "sklearn", "cai_train", "cai_accurate", "inference"):
    w("- %s: %s -> %s" % (ph, R["load_%s_before" % ph], R["load_%s_after" % ph]))
w("")
if R["cai_so"] != R["cai_so_end"]:
    problems.append("the installed cai_synergy.so changed during the run (%s at the start, %s at the end): "
                    "sessions started after the change used the new build" % (R["cai_so"], R["cai_so_end"]))
if problems:
    w("### Problems detected by the script")
    w("")
    for p in problems:
        w("- " + p)
    w("")

w("## Appendix: peer scripts' output")
w("")
w("Their results sections (normally appended to `bench/peers/results-sst2.md`; redirected here):")
w("")
w(read("peers.md").replace("\n## ", "\n### "))
w("")
w("## Appendix: raw figures")
w("")
w("Every `key value` the run recorded (seconds unless named otherwise; `_cpu` = CPU seconds, `_count` = rows counted):")
w("")
w("```")
for k, v in R.items():
    w("%s %s" % (k, v))
w("```")
text = "\n".join(L) + "\n"
with open(out, "w", encoding="utf-8") as f:
    f.write(text)
print(text)
if problems:
    print("sentiment.sh: problems:\n  " + "\n  ".join(problems), file=sys.stderr)
PYEOF
log "report written to $OUT"
