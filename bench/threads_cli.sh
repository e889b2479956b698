#!/usr/bin/env bash
# threads_cli.sh: the accurate text classifier with 1 and 2 threads on SST-2,
# one run after the other, through the core's bench CLI (issue 11: 2 threads
# at least 1.6x one thread).
#
#   bench/threads_cli.sh        ROUNDS=5 OPTIONS='{}' ARCH=accurate
#
# Each round trains with threads 1 then threads 2 (the default options
# otherwise: automatic epochs, the ensemble's fast member included) on
# SST-2's train.tsv with dev.tsv as validation, and records the CLI's own
# training time (train_s: tokenizing, features, epochs, validation; not the
# file reading or the test predictions), the test accuracy, and the share
# of the machine's CPU time the hypervisor took during the run (steal, from
# /proc/stat): these 2-vCPU machines are shared, and a 2-thread run that
# loses a vCPU to another guest is not a measure of 2 threads.  Reports the
# medians, their ratio, the ratio of the fastest runs, and the ratio of the
# medians over the rounds whose runs both had steal under STEAL_MAX percent.
# Writes bench/results-threads-cli.md (BENCH_OUT to change).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/threads_cli.sh CAI_DATA_DIR ROUNDS OPTIONS ARCH STEAL_MAX BENCH_OUT
bench_cd_repo
ROUNDS=${ROUNDS:-5}
OPTIONS=${OPTIONS:-'{}'}
ARCH=${ARCH:-accurate}
STEAL_MAX=${STEAL_MAX:-5}
OUT=${BENCH_OUT:-bench/results-threads-cli.md}
SST="$(bench_dataset threads_cli.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
TMP="$(mktemp -d /tmp/cai_threads_cli.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
make -s -f core.mk bench >/dev/null
CLI=build/bench/textclf_cli
bench_results "$TMP/results.txt"
bench_put_machine

# cpu ticks: "total steal" of the machine since boot
ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat; }

run() {	# run THREADS ROUND: one training, its figures into R
	local th=$1 r=$2 opts a b out
	opts=$(python3 -c 'import json, sys; o = json.loads(sys.argv[1]); o["threads"] = int(sys.argv[2]); print(json.dumps(o))' \
		"$OPTIONS" "$th")
	a=$(ticks)
	out=$("$CLI" -a "$ARCH" "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" "$opts" 2>&1 | tail -1)
	b=$(ticks)
	put "r${r}_t${th}_train_s" "$(echo "$out" | sed -n 's/.*train_s \([0-9.]*\).*/\1/p')"
	put "r${r}_t${th}_test_acc" "$(echo "$out" | sed -n 's/.*test_acc \([0-9.]*\).*/\1/p')"
	put "r${r}_t${th}_steal" "$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
		printf "%.1f", (y[2] - x[2]) * 100 / ((y[1] - x[1]) > 0 ? y[1] - x[1] : 1) }')"
	put "r${r}_t${th}_load" "$(load)"
}

for r in $(seq "$ROUNDS"); do
	log "round $r of $ROUNDS"
	run 1 "$r"
	run 2 "$r"
done
put seconds "$(elapsed "$T_START" "$(now)")"

python3 - "$R" "$OUT" "$ROUNDS" "$ARCH" "$STEAL_MAX" <<'PY'
import statistics, sys
res, out, rounds, arch, steal_max = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
kv = dict(l.rstrip("\n").split(" ", 1) for l in open(res) if " " in l)
def g(r, t, k):
    return kv[f"r{r}_t{t}_{k}"]
rows = []
for r in range(1, rounds + 1):
    rows.append((r, float(g(r, 1, "train_s")), float(g(r, 2, "train_s")), g(r, 1, "test_acc"), g(r, 2, "test_acc"),
                 float(g(r, 1, "steal")), float(g(r, 2, "steal")), g(r, 1, "load"), g(r, 2, "load")))
m1 = statistics.median(x[1] for x in rows)
m2 = statistics.median(x[2] for x in rows)
quiet = [x for x in rows if x[5] < steal_max and x[6] < steal_max]
lines = [f"# {arch} text classification, 1 vs 2 threads (bench/threads_cli.sh)", "",
         f"Date: {kv['date']}. Command: `{kv['command']}`. Commit {kv['git']}.",
         f"Machine: {kv['nproc']} CPUs ({kv['cpu']}), {kv['mem_gb']} GB, kernel {kv['kernel']}; {kv['blas_env']}.",
         "SST-2 train.tsv (60,614 rows), dev.tsv as validation, the default options but `threads`;",
         "train_s is the CLI's training time (tokenizing, features, the ensemble's fast member, epochs, validation).",
         "steal: the share of the machine's CPU time the hypervisor gave other guests during the run.", "",
         "| round | 1 thread s | 2 threads s | ratio | test acc 1 / 2 | steal % 1 / 2 | load 1 / 2 |",
         "|---:|---:|---:|---:|---|---|---|"]
for x in rows:
    lines.append(f"| {x[0]} | {x[1]:.2f} | {x[2]:.2f} | {x[1] / x[2]:.2f} | {x[3]} / {x[4]} | {x[5]} / {x[6]} | {x[7]} / {x[8]} |")
lines += ["", f"Medians: 1 thread **{m1:.2f} s**, 2 threads **{m2:.2f} s**: ratio of medians **{m1 / m2:.2f}**; "
          f"fastest runs {min(x[1] for x in rows):.2f} / {min(x[2] for x in rows):.2f} s: "
          f"{min(x[1] for x in rows) / min(x[2] for x in rows):.2f}."]
if quiet:
    q1 = statistics.median(x[1] for x in quiet)
    q2 = statistics.median(x[2] for x in quiet)
    lines.append(f"Rounds with steal under {steal_max:g}% in both runs: {len(quiet)} of {rounds}, "
                 f"medians {q1:.2f} / {q2:.2f} s: ratio **{q1 / q2:.2f}**.")
else:
    lines.append(f"No round had steal under {steal_max:g}% in both runs.")
lines.append(f"Whole benchmark: {float(kv['seconds']):.0f} s.")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
