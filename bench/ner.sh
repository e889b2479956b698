#!/usr/bin/env bash
#
# ner.sh -- WikiANN-en named entities, side by side on this machine, in one run:
#
#   1. the PyTorch reference, bench/peers/ner_torch.py (BiLSTM-CRF, its
#      default hyperparameters, 16 epochs; 2 threads, or 1 if a short probe
#      finds 1 faster, see BENCH_TORCH_THREADS): test F1 at the best dev
#      epoch, seconds to that epoch, tagging tokens/s batched and one
#      sentence at a time.  It runs first, while the machine is likeliest
#      to be as quiet as it was when the run started.
#   2. cai_synergy through SQL: cai_train('ner') on the training table with
#      validation_source = the dev table, threads 1 (other options at their
#      defaults), cai_evaluate on the test table; time to the best epoch from
#      the per-epoch NOTICEs (stamped with their arrival time); tagging
#      throughput of cai_tag (one sentence per call) and cai_entities (all
#      test sentences in one text: the batched path), median of BENCH_REPEATS.
#   3. the same cai_train with {"threads": 2} (SET cai.threads = 2 first):
#      wall-time ratio and test F1 of both (BENCH_TRAIN_REPEATS rounds of
#      threads 1 then threads 2).
#
# Prints a markdown report and writes it to BENCH_OUT (bench/results-ner.md).
# Uses the installed extension (`make && make install` first) on a throwaway
# cluster (scripts/pgcluster.sh).  The data are read in place, never copied.
#
# Usage: bench/ner.sh                 full run (PyTorch 15-25 minutes on an idle machine, much
#                                     longer on a busy one; then cai about 10 minutes)
#        BENCH_QUICK=1 bench/ner.sh   smoke run: PyTorch on the first 2,000 sentences for 1 epoch
#                                     without the one-at-a-time tagging, cai capped at max_seconds 20;
#                                     writes /tmp/results-ner-quick.md unless BENCH_OUT is set
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR        data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS       rounds of the tagging measurements (medians are reported) [3]
#   BENCH_TRAIN_REPEATS training rounds; each round trains threads 1 then threads 2 (new model
#                       names), wall times are reported per run and as medians [2; 1 with BENCH_QUICK]
#   BENCH_CAI_OPTIONS   extra cai_train options (jsonb) merged into {"validation_source": "ner_dev",
#                       "threads": 1|2} for both runs [{}; {"max_seconds": 20} with BENCH_QUICK]
#   BENCH_TORCH_EPOCHS  --epochs of the reference [16; 1 with BENCH_QUICK]
#   BENCH_TORCH_THREADS --threads of the reference, or auto: time one epoch on the first 1,000
#                       sentences with 1 and with 2 threads first and use 2 unless 1 is at least
#                       10% faster [auto]
#   BENCH_TORCH_BLAS_THREADS  OPENBLAS_NUM_THREADS for the reference's processes [1].  Debian's
#                       torch calls the pthread OpenBLAS, whose own threads torch.set_num_threads
#                       does not limit: with --threads 2 that is 2 x 2 threads on 2 cores, and one
#                       epoch on 2,000 sentences took 5.3 s instead of 1.8 s on an idle machine
#                       (and up to 60x longer with another job running).  "" leaves it unset.
#   BENCH_TORCH_ARGS    more arguments for ner_torch.py [none; "--max-sentences 2000 --no-single"
#                       with BENCH_QUICK]
#   BENCH_TORCH_JSON    reuse this ner_torch.py --out file instead of running the reference (its
#                       stdout log may be given as BENCH_TORCH_LOG); the report says so
#   BENCH_SKIP_TORCH    1: no reference at all (the report shows n/a)
#   BENCH_OUT           report file (overwritten) [bench/results-ner.md]
#
# bench/peers/results-ner-torch.json is not touched: the reference writes to
# a temporary directory and its per-epoch log goes into the report's appendix.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/ner.sh CAI_DATA_DIR BENCH_QUICK BENCH_REPEATS BENCH_TRAIN_REPEATS BENCH_CAI_OPTIONS BENCH_TORCH_EPOCHS \
	BENCH_TORCH_THREADS BENCH_TORCH_BLAS_THREADS BENCH_TORCH_ARGS \
	BENCH_TORCH_JSON BENCH_TORCH_LOG BENCH_SKIP_TORCH BENCH_OUT

bench_cd_repo
WIKI="$(bench_dataset ner.sh ner/wikiann-en train.conll dev.conll test.conll)"

PY=/usr/bin/python3
QUICK="${BENCH_QUICK:-0}"
REPEATS="${BENCH_REPEATS:-3}"
CAI_EXTRA="${BENCH_CAI_OPTIONS:-}"
SKIP_TORCH="${BENCH_SKIP_TORCH:-0}"
TORCH_THREADS="${BENCH_TORCH_THREADS:-auto}"
TORCH_BLAS_THREADS="${BENCH_TORCH_BLAS_THREADS-1}"
case "$TORCH_THREADS" in
	auto | [1-9] | [1-9][0-9]) ;;
	*) echo "ner.sh: BENCH_TORCH_THREADS must be auto or a number" >&2; exit 1 ;;
esac
if [ "$QUICK" = 1 ]; then
	[ -n "$CAI_EXTRA" ] || CAI_EXTRA='{"max_seconds": 20}'
	TORCH_EPOCHS="${BENCH_TORCH_EPOCHS:-1}"
	TORCH_ARGS="${BENCH_TORCH_ARGS---max-sentences 2000 --no-single}"
	OUT="${BENCH_OUT:-/tmp/results-ner-quick.md}"
	TRAIN_REPEATS="${BENCH_TRAIN_REPEATS:-1}"
else
	[ -n "$CAI_EXTRA" ] || CAI_EXTRA='{}'
	TORCH_EPOCHS="${BENCH_TORCH_EPOCHS:-16}"
	TORCH_ARGS="${BENCH_TORCH_ARGS:-}"
	OUT="${BENCH_OUT:-bench/results-ner.md}"
	TRAIN_REPEATS="${BENCH_TRAIN_REPEATS:-2}"
fi
jq -e 'type == "object"' <<< "$CAI_EXTRA" > /dev/null || { echo "ner.sh: BENCH_CAI_OPTIONS is not a JSON object" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/cai-bench-ner.XXXXXX")"
chmod 755 "$TMP"
CAI_PGDATA=""
TORCH_PID=""
SAMPLER_PID=""
cleanup() {
	if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2> /dev/null || true; fi
	if [ -n "$TORCH_PID" ]; then
		pkill -P "$TORCH_PID" 2> /dev/null || true # the python under /usr/bin/time
		kill "$TORCH_PID" 2> /dev/null || true
	fi
	if [ -n "$CAI_PGDATA" ]; then scripts/pgcluster.sh stop "$CAI_PGDATA" || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_results "$TMP/results.txt"
bench_put_machine
TICKS=$(getconf CLK_TCK)

put quick "$QUICK"
put repeats "$REPEATS"
put train_repeats "$TRAIN_REPEATS"
put data_dir "$WIKI"
put load_start "$(load)"
# 1-minute load average every 10 s, for the mean load of each phase
(while :; do echo "$(date +%s) $(cut -d' ' -f1 /proc/loadavg)"; sleep 10; done > "$TMP/load.samples") &
SAMPLER_PID=$!
phase() { put "phase_$1_$2" "$(now)"; } # phase <name> start|end

# ---------------------------------------------------------------------------
# PyTorch reference first: it suffers most from a busy machine (see
# bench/peers/README.md), so it gets the start of the run.
# ---------------------------------------------------------------------------
if [ -n "${BENCH_TORCH_JSON:-}" ]; then
	log "PyTorch reference: reusing $BENCH_TORCH_JSON"
	cp "$BENCH_TORCH_JSON" "$TMP/torch.json"
	if [ -n "${BENCH_TORCH_LOG:-}" ]; then cp "$BENCH_TORCH_LOG" "$TMP/torch.out"; fi
	put torch_reused "$BENCH_TORCH_JSON"
elif [ "$SKIP_TORCH" != 1 ]; then
	if [ -n "$TORCH_BLAS_THREADS" ]; then export OPENBLAS_NUM_THREADS="$TORCH_BLAS_THREADS"; fi
	put torch_blas_threads "${TORCH_BLAS_THREADS:-unset}"
	if [ "$TORCH_THREADS" = auto ]; then
		# Probe: one epoch on the first 1,000 sentences with 1 and with 2
		# threads; the full run uses 2 unless 1 is clearly faster.  PyTorch's
		# 2 threads synchronize after every small operation, and when another
		# job holds one of the 2 cores that costs up to 10x
		# (bench/peers/README.md).
		put load_torch_probe_before "$(load)"
		for t in 1 2; do
			log "PyTorch probe: 1 epoch on 1,000 sentences with $t thread(s) ..."
			"$PY" bench/peers/ner_torch.py --epochs 1 --max-sentences 1000 --no-single --threads "$t" \
				--out "$TMP/probe$t.json" > /dev/null 2>&1
			put "torch_probe_t$t" "$(jq -r '.train_seconds_total' "$TMP/probe$t.json")"
			put "torch_probe_t${t}_tag" "$(jq -r '.tag_tokens_per_s_batched' "$TMP/probe$t.json")"
		done
		put load_torch_probe_after "$(load)"
		TORCH_THREADS=$(awk -v a="$(jq -r '.train_seconds_total' "$TMP/probe1.json")" \
			-v b="$(jq -r '.train_seconds_total' "$TMP/probe2.json")" 'BEGIN { print (a < 0.9 * b) ? 1 : 2 }')
		put torch_threads_auto "$TORCH_THREADS"
	fi
	# shellcheck disable=SC2206
	targs=(--epochs "$TORCH_EPOCHS" --threads "$TORCH_THREADS" $TORCH_ARGS --out "$TMP/torch.json")
	put torch_args "--epochs $TORCH_EPOCHS --threads $TORCH_THREADS $TORCH_ARGS"
	log "PyTorch reference: $PY bench/peers/ner_torch.py ${targs[*]} ..."
	put load_torch_before "$(load)"
	phase torch start
	/usr/bin/time -f '%e %U %S' -o "$TMP/torch.time" "$PY" bench/peers/ner_torch.py "${targs[@]}" \
		> "$TMP/torch.out" 2>&1 &
	TORCH_PID=$!
	wait "$TORCH_PID" || { cat "$TMP/torch.out" >&2; echo "ner.sh: ner_torch.py failed" >&2; exit 1; }
	TORCH_PID=""
	phase torch end
	put load_torch_after "$(load)"
	read -r tw tu ts < "$TMP/torch.time"
	put torch_process_wall "$tw"
	put torch_process_cpu "$(awk -v u="$tu" -v s="$ts" 'BEGIN { printf "%.1f", u + s }')"
	# a copy outside the temporary directory, for BENCH_TORCH_JSON if a later step fails
	cp "$TMP/torch.json" "${TMPDIR:-/tmp}/ner-torch-last.json"
	cp "$TMP/torch.out" "${TMPDIR:-/tmp}/ner-torch-last.log"
	log "PyTorch reference done (copy in ${TMPDIR:-/tmp}/ner-torch-last.json)"
	unset OPENBLAS_NUM_THREADS
fi
# ---------------------------------------------------------------------------
# Cluster and tables
# ---------------------------------------------------------------------------
log "starting a throwaway cluster and loading WikiANN-en ..."
eval "$(scripts/pgcluster.sh start)"
export PGDATABASE=postgres
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
put pg_version "$("${PSQL[@]}" -c 'SHOW server_version')"
for p in train dev test; do
	echo "ALTER TABLE ner_raw ALTER part SET DEFAULT '$p';"
	printf '%s\n' "\\copy ner_raw (line) FROM '${WIKI//\'/\'\'}/$p.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
done > "$TMP/copies.sql"
"${PSQL[@]}" -v copies="$TMP/copies.sql" -f bench/sql/ner_setup.sql | grep '^RESULT ' | cut -d' ' -f2- >> "$R"
put cai_version "$("${PSQL[@]}" -c 'SELECT cai_version()')"
put cai_so "$(date -r "$(pg_config --pkglibdir)/cai_synergy.so" '+%Y-%m-%d %H:%M')"
"${PSQL[@]}" -c "SELECT name || '=' || coalesce(default_value, '') FROM cai_options('ner') ORDER BY name" |
	paste -sd' ' > "$TMP/cai_defaults.txt"
PM_PID="$(head -n 1 "$CAI_PGDATA/data/postmaster.pid")"

# ---------------------------------------------------------------------------
# cai_synergy training: threads 1, then threads 2, TRAIN_REPEATS rounds.
# NOTICE lines (psql's stderr, unbuffered) are stamped with the time they
# arrive.
# ---------------------------------------------------------------------------
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }
cai_train_run() { # cai_train_run <tag> <threads>
	local opts
	opts="$(jq -cn --argjson t "$2" --argjson extra "$CAI_EXTRA" '{"validation_source": "ner_dev", "threads": $t} + $extra')"
	put "$1_options" "$opts"
	log "cai_train ner ($1), threads $2: $opts ..."
	put "load_$1_before" "$(load)"
	phase "$1" start
	# stdout (RESULT lines) through fd 3, stderr (NOTICEs, errors) through the stamp
	{ "${PSQL[@]}" -v model="ner_$1" -v opts="$opts" -v tag="$1" -v threads="$2" \
		-v pmstat="/proc/$PM_PID/stat" -v ticks="$TICKS" -f bench/sql/ner_train.sql 2>&1 1>&3 3>&- |
		stamp > "$TMP/$1.notices"; } 3>&1 | grep '^RESULT ' | cut -d' ' -f2- >> "$R" ||
		{ cat "$TMP/$1.notices" >&2; echo "ner.sh: cai_train run $1 failed" >&2; exit 1; }
	phase "$1" end
	put "load_$1_after" "$(load)"
}
for ((r = 1; r <= TRAIN_REPEATS; r++)); do
	cai_train_run "t1_r$r" 1
	cai_train_run "t2_r$r" 2
done

# ---------------------------------------------------------------------------
# Tagging throughput of the first threads-1 model: REPEATS rounds, one new
# session each (see bench/sql/ner_tagging.sql).
# ---------------------------------------------------------------------------
put load_tagging_before "$(load)"
phase tagging start
for ((r = 1; r <= REPEATS; r++)); do
	log "tagging round $r/$REPEATS: cai_tag per sentence, cai_entities over one text and per sentence ..."
	"${PSQL[@]}" -v model=ner_t1_r1 -v round="$r" -v ticks="$TICKS" -f bench/sql/ner_tagging.sql |
		grep '^RESULT ' | cut -d' ' -f2- >> "$R"
done
phase tagging end
put load_tagging_after "$(load)"
scripts/pgcluster.sh stop "$CAI_PGDATA"
CAI_PGDATA=""

put total_seconds "$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }')"
put load_end "$(load)"
kill "$SAMPLER_PID" 2> /dev/null || true
SAMPLER_PID=""

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
$PY - "$R" "$TMP" "$OUT" <<'PYEOF'
import json, os, re, statistics, sys

rfile, tmp, out = sys.argv[1:4]
R = {}
for line in open(rfile, encoding="utf-8"):
    k, _, v = line.rstrip("\n").partition(" ")
    R[k] = v
n = int(R["repeats"])
ntr = int(R["train_repeats"])
quick = R["quick"] == "1"
problems = []
L = []
w = L.append
med = statistics.median


def read(name):
    p = os.path.join(tmp, name)
    return open(p, encoding="utf-8").read().rstrip() if os.path.exists(p) else None


def runs(prefix):
    return [float(R["%s_r%d" % (prefix, i)]) for i in range(1, n + 1)]


def fruns(xs, nd=3):
    return ", ".join("%.*f" % (nd, x) for x in xs)


def f1s(x):
    return "%.2f" % (100 * x) if x is not None else "n/a"


def num(x, nd=0):
    return "n/a" if x is None else format(round(x, nd), ",.%df" % nd)


def sec(x, nd=1):
    return "n/a" if x is None else "%.*f" % (nd, x)


def ratio(a, b, nd=2):
    return "n/a" if a is None or b is None or b == 0 else "%.*f" % (nd, a / b)


# mean 1-minute load average of a phase, from the 10-second samples
samples = []
for line in (read("load.samples") or "").splitlines():
    parts = line.split()
    if len(parts) == 2:
        samples.append((float(parts[0]), float(parts[1])))


def phase_load(name):
    a, b = R.get("phase_%s_start" % name), R.get("phase_%s_end" % name)
    if a is None or b is None:
        return None
    xs = [l for t, l in samples if float(a) - 5 <= t <= float(b) + 5]
    return (statistics.mean(xs), max(xs), len(xs)) if xs else None


def fload(name):
    x = phase_load(name)
    return "n/a" if x is None else "%.2f (max %.2f, %d samples)" % x


tok = {p: int(R["tokens_" + p]) for p in ("train", "dev", "test")}
sents = {p: int(R["rows_" + p]) for p in ("train", "dev", "test")}
if int(R["bad_rows"]) != 0:
    problems.append("%s sentences with token/tag count mismatch or empty fields" % R["bad_rows"])
defaults = read("cai_defaults.txt") or ""
pat = re.search(r"\bpatience=(\d+)", defaults)

# ---- cai runs ----
NOTICE = re.compile(r"NOTICE:\s+epoch (\d+)/(\d+): loss (\S+), validation ([0-9.]+), (\d+) rows/s")
cai = {}
for th in (1, 2):
    for r in range(1, ntr + 1):
        tag = "t%d_r%d" % (th, r)
        m = json.loads(R[tag + "_metrics"])
        c = {"tag": tag, "threads": th, "round": r, "options": R[tag + "_options"], "metrics": m,
             "test": json.loads(R[tag + "_test"]), "wall": float(R[tag + "_wall"]),
             "worker_cpu": float(R[tag + "_worker_cpu"]), "eval_wall": float(R[tag + "_evaluate_wall"]),
             "t0": float(R[tag + "_t0"]), "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run")}
        epochs = []
        for line in (read(tag + ".notices") or "").splitlines():
            ts, _, msg = line.partition(" ")
            mm = NOTICE.search(msg)
            if mm:
                epochs.append({"epoch": int(mm.group(1)), "val_f1": float(mm.group(4)),
                               "rows_s": int(mm.group(5)), "arrival": float(ts) - c["t0"]})
        c["epochs"] = epochs
        be, er = c["best_epoch"], c["epochs_run"]
        c["to_best_arrival"] = c["to_best_rows"] = None
        if len(epochs) != er or [e["epoch"] for e in epochs] != list(range(1, er + 1)):
            problems.append("%s: %d epoch NOTICEs for epochs_run %s" % (tag, len(epochs), er))
        else:
            c["to_best_arrival"] = epochs[be - 1]["arrival"]
            # rows/s = training sentences / (that epoch's training + validation seconds)
            c["to_best_rows"] = sum(sents["train"] / e["rows_s"] for e in epochs[:be])
            if abs(epochs[be - 1]["val_f1"] - m["f1"]) > 5e-5:
                problems.append("%s: the best epoch's NOTICE validation F1 differs from metrics.f1" % tag)
        c["to_best_prop"] = m["seconds"] * be / er if er else None
        c["per_epoch"] = m["seconds"] / er if er else None
        cai[tag] = c
RUNS = {th: [cai["t%d_r%d" % (th, r)] for r in range(1, ntr + 1)] for th in (1, 2)}


def cmed(th, key):
    xs = [c[key] for c in RUNS[th] if c[key] is not None]
    return med(xs) if xs else None


c1 = RUNS[1][0]
capped = any(json.loads(c["options"]).get("max_seconds", 0) for c in RUNS[1])
if ntr > 1 and not capped and len({c["test"]["f1"] for c in RUNS[1]}) != 1:
    problems.append("threads-1 runs gave different test F1 (they should be bit-identical): %s" %
                    [c["test"]["f1"] for c in RUNS[1]])

# ---- tagging ----
T = {}
for key in ("tag_single", "ent_doc_nl", "ent_doc_sp", "ent_single"):
    xs = runs(key)
    cpu = runs(key + "_cpu")
    T[key] = {"runs": xs, "med": med(xs), "cpu": cpu, "tps": tok["test"] / med(xs),
              "tps_cpu": tok["test"] / med(cpu) if med(cpu) > 0 else None,
              "count": [int(R["%s_count_r%d" % (key, i)]) for i in range(1, n + 1)]}
    if len(set(T[key]["count"])) != 1:
        problems.append("%s: the count differs between rounds: %s" % (key, T[key]["count"]))
if T["tag_single"]["count"][0] != sents["test"]:
    problems.append("cai_tag tagged %d sentences, expected %d" % (T["tag_single"]["count"][0], sents["test"]))
if T["ent_doc_nl"]["count"][0] != T["ent_single"]["count"][0]:
    problems.append("cai_entities found %d entities in the one text and %d sentence by sentence" %
                    (T["ent_doc_nl"]["count"][0], T["ent_single"]["count"][0]))
first = runs("first_call")

# ---- torch ----
tj = read("torch.json")
tr = json.loads(tj) if tj else None
cfg = tr["config"] if tr else {}
if tr is not None:
    if not quick and (cfg["epochs"] != 16 or cfg.get("max_sentences")):
        problems.append("the reference did not run its default 16 epochs on all sentences "
                        "(epochs %s, max_sentences %s)" % (cfg["epochs"], cfg.get("max_sentences")))
    if tr["n_tokens"]["test"] != tok["test"] and not cfg.get("max_sentences"):
        problems.append("the reference counts %d test tokens, the tables %d" % (tr["n_tokens"]["test"], tok["test"]))
t_best = tr["seconds_to_best_epoch"] if tr else None
t_total = tr["total_seconds"] if tr else None
t_single = tr["tag_tokens_per_s_single"] if tr else None
t_batch = tr["tag_tokens_per_s_batched"] if tr else None

# ===================================================================== report
w("# WikiANN-en NER: cai_synergy vs a PyTorch BiLSTM-CRF reference")
w("")
if quick:
    w("**QUICK SMOKE RUN (BENCH_QUICK=1): small settings, the figures are not comparable.**")
    w("")
w("Generated %s by:" % R["date"])
w("")
w("    " + R["command"])
w("")
w("- Machine: %s x `%s` (nproc), %s GB RAM, Linux %s; **shared with other jobs**, so timings are indicative "
  "(load averages and CPU seconds below)." % (R["nproc"], R["cpu"], R["mem_gb"], R["kernel"]))
w("- PostgreSQL %s (throwaway cluster from `scripts/pgcluster.sh`, `fsync = off`), cai_synergy %s "
  "(installed `cai_synergy.so` dated %s; repository at %s); %s." %
  (R["pg_version"], R["cai_version"], R["cai_so"], R["git"], R["blas_env"]))
if tr:
    w("- Reference: `bench/peers/ner_torch.py`, Python %s, torch %s, %d thread(s)%s%s." %
      (tr["python"], tr["torch_version"], tr["threads"],
       ", OPENBLAS_NUM_THREADS=%s" % R["torch_blas_threads"] if "torch_blas_threads" in R else "",
       "; **reused from `%s`** (run %s), not run by this invocation" % (R["torch_reused"], tr["date"])
       if "torch_reused" in R else ""))
else:
    w("- Reference: not run (BENCH_SKIP_TORCH=1).")
w("- Data: `%s`: train %d sentences / %d tokens, dev %d / %d, test %d / %d (IOB2, PER/ORG/LOC). "
  "Model selection on dev only; test scored once; entity F1 counted as conlleval does." %
  (R["data_dir"], sents["train"], tok["train"], sents["dev"], tok["dev"], sents["test"], tok["test"]))
w("- Total run time of this script: %s s. Load average (1/5/15 min) at start %s, at end %s." %
  (R["total_seconds"], R["load_start"], R["load_end"]))
w("")

w("## Results")
w("")
w("| system | test F1 | test P / R | dev F1 | best / run epochs | **s to best epoch** | total train s | "
  "tag tok/s, one sentence per call | tag tok/s, batched |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
if tr:
    w("| PyTorch BiLSTM-CRF, %d thread(s) (word 100 + char BiLSTM 25, hidden 2x100, dropout 0.5, CRF, Adam, "
      "batch %d, %d epochs) | **%s** | %s / %s | %s | %d / %d | **%.1f** | %.1f | %s | %s |" %
      (tr["threads"], cfg["batch"], cfg["epochs"], f1s(tr["test_f1"]), f1s(tr["test_precision"]),
       f1s(tr["test_recall"]), f1s(tr["dev_f1"]), tr["best_epoch"], cfg["epochs"], t_best, t_total,
       num(t_single), num(t_batch)))
else:
    w("| PyTorch BiLSTM-CRF | n/a | | | | | | | |")
for th in (1, 2):
    c = RUNS[th][0]
    m, t = c["metrics"], c["test"]
    more = "" if ntr == 1 else " (run 1 of %d; times: median of %d)" % (ntr, ntr)
    tagging = ("%s | %s" % (num(T["tag_single"]["tps"]), num(T["ent_doc_nl"]["tps"])) if th == 1 else
               "same inference code | ")
    w("| cai_synergy `cai_train`, threads %d%s | **%s** | %s / %s | %s | %d / %d | **%s** | %s | %s |" %
      (th, more, f1s(t["f1"]), f1s(t["precision"]), f1s(t["recall"]), f1s(m["f1"]), c["best_epoch"],
       c["epochs_run"], sec(cmed(th, "to_best_arrival")), sec(cmed(th, "wall")), tagging))
w("")
w("- cai_synergy options: `%s` and `%s`, everything else at its default (`cai_options('ner')` below)." %
  (RUNS[1][0]["options"], RUNS[2][0]["options"]))
w("- **Test F1**: entity F1 on the %d test sentences (exact span and type) of the weights of the best dev "
  "epoch; cai_synergy's from `cai_evaluate(model, 'ner_test', 'tokens', 'tags')`, the reference's from its "
  "own conlleval-style scorer." % sents["test"])
w("- **s to best epoch**: PyTorch: `seconds_to_best_epoch`, wall time from the start of training to the end "
  "of the best epoch, per-epoch dev evaluations included (data loading and model construction excluded). "
  "cai_synergy: arrival time at psql of the best epoch's NOTICE, counted from `clock_timestamp()` just before "
  "`cai_train` -- it also includes starting the background worker, reading the tables and building the "
  "vocabulary, and the per-epoch dev evaluations.")
w("- **total train s**: PyTorch: `total_seconds` (all %s epochs with their dev evaluations). cai_synergy: "
  "wall time of the `cai_train` statement (worker start, reading, the epochs until early stopping -- "
  "patience %s -- and storing the model)." % (cfg.get("epochs", "?"), pat.group(1) if pat else "?"))
w("- **Tagging**, on the test set with the threads-1 model, end to end from tokens to tag strings, wall "
  "clock. One sentence per call: reference `tag_tokens_per_s_single`; cai: `SELECT count(cai_tag('ner_t1_r1', "
  "tokens)) FROM ner_test` in one backend. Batched: reference `tag_tokens_per_s_batched` (%s sentences per "
  "call); cai: `cai_entities` over one text holding all test sentences (tokens joined by spaces, one sentence "
  "per line), which tokenizes the text itself, tags 64 sentences per batch and returns the entities. "
  "Tokens/s = the test file's %d tokens / seconds for both. cai figures are medians of %d rounds." %
  (tr["throughput_batch_size"] if tr else "?", tok["test"], n))
w("")

w("## Ratios")
w("")
w("| ratio | value |")
w("|---|---:|")
if tr:
    w("| test F1, cai threads 1 minus PyTorch (points) | %+.2f |" % (100 * (c1["test"]["f1"] - tr["test_f1"])))
    w("| test F1, cai threads 2 minus PyTorch (points) | %+.2f |" % (100 * (RUNS[2][0]["test"]["f1"] - tr["test_f1"])))
    w("| time to best epoch, PyTorch (%d thread(s)) / cai threads 1 (> 1: cai faster) | %s |" %
      (tr["threads"], ratio(t_best, cmed(1, "to_best_arrival"))))
    w("| time to best epoch, PyTorch (%d thread(s)) / cai threads 2 | %s |" % (tr["threads"], ratio(t_best, cmed(2, "to_best_arrival"))))
    w("| total training, PyTorch all epochs / cai threads 1 `cai_train` wall | %s |" % ratio(t_total, cmed(1, "wall")))
    w("| tagging one sentence per call, cai_tag / PyTorch (> 1: cai faster) | %s |" % ratio(T["tag_single"]["tps"], t_single))
    w("| tagging batched, cai_entities one text / PyTorch batched | %s |" % ratio(T["ent_doc_nl"]["tps"], t_batch))
w("| **multi-core: `cai_train` wall, threads 1 / threads 2** | **%s** |" % ratio(cmed(1, "wall"), cmed(2, "wall")))
w("| multi-core: seconds per epoch (metrics.seconds / epochs_run), threads 1 / threads 2 | %s |" %
  ratio(cmed(1, "per_epoch"), cmed(2, "per_epoch")))
fast2 = min(RUNS[2], key=lambda c: c["per_epoch"])
w("| multi-core: seconds per epoch, threads 1 (median) / fastest threads-2 run (%s, worker CPU / wall %.2f) | %s |" %
  (fast2["tag"], fast2["worker_cpu"] / fast2["wall"], ratio(cmed(1, "per_epoch"), fast2["per_epoch"])))
w("| multi-core: time to best epoch, threads 1 / threads 2 | %s |" %
  ratio(cmed(1, "to_best_arrival"), cmed(2, "to_best_arrival")))
w("| multi-core: test F1, threads 2 minus threads 1 (points, run 1) | %+.2f |" %
  (100 * (RUNS[2][0]["test"]["f1"] - c1["test"]["f1"])))
w("")
w("Multi-core target: `cai_train` with threads 2 at least 1.6x faster than threads 1, same accuracy within "
  "noise. With threads > 1 the BLAS reductions are split differently, so the runs are not bit-identical "
  "and early stopping may stop after another number of epochs; seconds per epoch isolates the speed-up "
  "from that. On a busy 2-core machine a second thread only helps when a second core is free: compare "
  "the worker CPU seconds with the wall time below.")
w("")

w("## cai_synergy training runs")
w("")
w("| run | threads | cai_train wall s | metrics.seconds | worker CPU s | CPU / wall | best / run epochs | "
  "to best: NOTICE arrival s | to best: sum of epoch s (rows/s) | to best: best/run x seconds | s per epoch | "
  "dev F1 | test F1 | cai_evaluate s | mean load |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for th in (1, 2):
    for c in RUNS[th]:
        m = c["metrics"]
        w("| %s | %d | %.2f | %.2f | %.1f | %.2f | %d / %d | %s | %s | %s | %.2f | %s | %s | %.2f | %s |" %
          (c["tag"], th, c["wall"], m["seconds"], c["worker_cpu"], c["worker_cpu"] / c["wall"],
           c["best_epoch"], c["epochs_run"], sec(c["to_best_arrival"], 2), sec(c["to_best_rows"], 2),
           sec(c["to_best_prop"], 2), c["per_epoch"], f1s(m["f1"]), f1s(c["test"]["f1"]), c["eval_wall"],
           fload(c["tag"])))
w("")
w("- worker CPU s: user + system CPU seconds of the background worker that trained (all its threads), from "
  "the postmaster's counters of reaped children. CPU / wall near 1 with threads 1 and near 2 with threads 2 "
  "means the worker had the cores it asked for; lower means it waited for a core taken by other jobs.")
w("- Three estimates of the time to the best epoch: the NOTICE arrival (measured, used above); the sum of the "
  "epoch times up to the best epoch, each = training sentences / the epoch's rows/s (training + dev "
  "evaluation of that epoch, setup excluded: the closest analogue of the reference's figure); and "
  "best_epoch / epochs_run x metrics.seconds (assumes equal epochs).")
w("- cai_evaluate s: wall time of `cai_evaluate` on the test table (reads the table, tags, scores).")
w("- `cai_options('ner')` defaults: `%s`." % (defaults or "?"))
w("")
w("Per epoch (NOTICE arrival since the start of `cai_train`, s; epoch s from rows/s; dev F1; * = best, kept):")
w("")
hdr = []
for th in (1, 2):
    for c in RUNS[th]:
        hdr += ["%s arrival" % c["tag"], "%s epoch s" % c["tag"], "%s dev F1" % c["tag"]]
w("| epoch | " + " | ".join(hdr) + " |")
w("|---:|" + "---:|" * len(hdr))
allruns = RUNS[1] + RUNS[2]
for i in range(max(len(c["epochs"]) for c in allruns)):
    cells = []
    for c in allruns:
        if i < len(c["epochs"]):
            e = c["epochs"][i]
            cells += ["%.1f" % e["arrival"], "%.2f" % (sents["train"] / e["rows_s"]),
                      f1s(e["val_f1"]) + (" *" if e["epoch"] == c["best_epoch"] else "")]
        else:
            cells += ["", "", ""]
    w("| %d | %s |" % (i + 1, " | ".join(cells)))
w("")

w("## cai_synergy tagging (threads-1 model, %d rounds, one new session per round; mean load %s)" %
  (n, fload("tagging")))
w("")
w("| measurement | runs, s | median s | tokens/s | backend CPU s, runs | tokens per CPU s | result rows |")
w("|---|---|---:|---:|---|---:|---:|")
names = {"tag_single": "**`count(cai_tag('ner_t1_r1', tokens))`** over ner_test, one sentence per call",
         "ent_doc_nl": "**`cai_entities` over one text**: all test sentences, one per line (batched)",
         "ent_doc_sp": "`cai_entities` over one text, sentences joined by spaces (a sentence ends only at . ! ? or "
                       "after 200 tokens, so sentences run together)",
         "ent_single": "`cai_entities` per sentence text, one call per sentence"}
for key in ("tag_single", "ent_doc_nl", "ent_doc_sp", "ent_single"):
    x = T[key]
    w("| %s | %s | %.3f | %s | %s | %s | %d |" % (names[key], fruns(x["runs"]), x["med"], num(x["tps"]),
                                                  fruns(x["cpu"], 2), num(x["tps_cpu"]), x["count"][0]))
w("")
w("First `cai_tag` call of each session (loads the model): %s s. Result rows: sentences for cai_tag, entities "
  "for cai_entities. Backend CPU s: user + system CPU of the backend over the statement (`/proc/self/stat`); "
  "tokens per CPU s = tokens / median CPU s, what one free core would give." % fruns(first))
w("")

if tr:
    w("## PyTorch reference details")
    w("")
    w("- Command: `%s`%s." % (tr["command"], "" if "torch_reused" in R else
                              " (`--out` in a temporary directory)"))
    w("- %d parameters, %d words, %d characters; best dev epoch %d of %d (dev F1 %s); test P %s R %s F1 %s "
      "(%d gold, %d predicted, %d correct)." %
      (tr["n_params"], tr["n_words"], tr["n_chars"], tr["best_epoch"], cfg["epochs"], f1s(tr["dev_f1"]),
       f1s(tr["test_precision"]), f1s(tr["test_recall"]), f1s(tr["test_f1"]), tr["test_counts"]["gold"],
       tr["test_counts"]["pred"], tr["test_counts"]["correct"]))
    w("- Seconds to the best epoch %.1f (training only, dev evaluations excluded: %.1f); all epochs %.1f "
      "(training only %.1f). Tagging: batched %s tok/s (%.2f s), one sentence at a time %s tok/s (%s s)." %
      (t_best, tr["train_seconds_to_best_epoch"], t_total, tr["train_seconds_total"], num(t_batch),
       tr["tag_seconds_batched"], num(t_single), sec(tr["tag_seconds_single"], 2)))
    if "torch_probe_t1" in R:
        w("- Threads chosen by a probe (`BENCH_TORCH_THREADS=auto`): one epoch on the first 1,000 sentences "
          "(`--epochs 1 --max-sentences 1000 --no-single`) trained in **%.1f s with 1 thread and %.1f s with 2 "
          "threads** (batched tagging %s vs %s tok/s; load %s -> %s), so the full run used **%s thread(s)** "
          "(2 unless 1 is at least 10%% faster). PyTorch's intra-op threads synchronize after every small LSTM "
          "operation; when another job holds one of the two cores, the second thread mostly waits "
          "(bench/peers/README.md reports 5 s vs 79 s for one 2,000-sentence epoch idle vs busy)." %
          (float(R["torch_probe_t1"]), float(R["torch_probe_t2"]), num(float(R["torch_probe_t1_tag"])),
           num(float(R["torch_probe_t2_tag"])), R["load_torch_probe_before"], R["load_torch_probe_after"],
           R["torch_threads_auto"]))
    if "torch_blas_threads" in R:
        w("- `OPENBLAS_NUM_THREADS=%s` for the reference's processes (`BENCH_TORCH_BLAS_THREADS`): Debian's torch "
          "calls the pthread OpenBLAS, whose threads `torch.set_num_threads` does not limit; left at its default, "
          "`--threads 2` runs 2 x 2 threads on the 2 cores (one 2,000-sentence epoch: 5.3 s instead of 1.8 s on an "
          "idle machine in a trial)." % R["torch_blas_threads"])
    if "torch_process_wall" in R:
        w("- Whole process (loading, training, test, throughput): %s s wall, %s s CPU (user + system, all "
          "threads; CPU / wall %.2f). Mean load during the run: %s." %
          (R["torch_process_wall"], R["torch_process_cpu"],
           float(R["torch_process_cpu"]) / float(R["torch_process_wall"]), fload("torch")))
    w("")
    w("| epoch | loss/token | dev P | dev R | dev F1 | train s | dev eval s | elapsed s |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in tr["epochs"]:
        w("| %d%s | %.4f | %s | %s | %s | %.1f | %.1f | %.1f |" %
          (e["epoch"], " *" if e["epoch"] == tr["best_epoch"] else "", e["loss_per_token"],
           f1s(e["dev_precision"]), f1s(e["dev_recall"]), f1s(e["dev_f1"]), e["epoch_train_seconds"],
           e["dev_eval_seconds"], e["elapsed_seconds"]))
    w("")

w("## Machine load")
w("")
w("1/5/15-minute load average before -> after each phase, and the mean (max) of the 1-minute load sampled "
  "every 10 s during it. The load includes the measured processes themselves (1 runnable thread for "
  "cai threads 1 and tagging, 2 for cai threads 2 and PyTorch); the machine has %s cores, so a load above "
  "that means the measured processes shared the cores with other work." % R["nproc"])
w("")
w("- start of the script: %s" % R["load_start"])
for th in (1, 2):
    for c in RUNS[th]:
        w("- cai_train %s (threads %d): %s -> %s; mean %s" %
          (c["tag"], th, R["load_%s_before" % c["tag"]], R["load_%s_after" % c["tag"]], fload(c["tag"])))
w("- cai tagging: %s -> %s; mean %s" % (R["load_tagging_before"], R["load_tagging_after"], fload("tagging")))
if "load_torch_before" in R:
    w("- PyTorch reference: %s -> %s; mean %s" % (R["load_torch_before"], R["load_torch_after"], fload("torch")))
w("- end: %s" % R["load_end"])
w("")
if problems:
    w("## Problems detected by the script")
    w("")
    for p in problems:
        w("- " + p)
    w("")
text = "\n".join(L) + "\n"
with open(out, "w", encoding="utf-8") as f:
    f.write(text)
print(text)
if problems:
    print("ner.sh: problems:\n  " + "\n  ".join(problems), file=sys.stderr)
PYEOF
log "report written to $OUT"
