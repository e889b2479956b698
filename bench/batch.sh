#!/usr/bin/env bash
#
# batch.sh -- batched against per-row scoring in the core, one process, one
# BLAS thread (no server needed):
#
# 1. The accurate text classifier: build/bench/textclf_cli -m MODEL -b on
#    SST-2 dev and test (cai_textclf_predict row by row against
#    cai_textclf_predict_batch in calls of 1,000 texts, medians of 5 passes
#    each, the largest probability difference and the rows whose labels
#    differ), for BENCH_REPEATS rounds; MODEL is trained once by this build
#    with BENCH_ACC_OPTIONS.
# 2. NER: build/bench/ner_cli -e (cai_model_entities_batch against text by
#    text and against cai_model_tag_batch), on a model trained with
#    BENCH_NER_OPTIONS.
# 3. With BENCH_OLD_REV (e.g. the branch point): that revision is built from
#    `git archive` too, the rounds of 1. alternate between the two builds on
#    the same model, and both builds train the same models (accurate with
#    BENCH_ACC_OPTIONS, fast with defaults, NER with BENCH_NER_OPTIONS):
#    their md5s must be equal (training does not depend on the change).
#    The old revision's ner_cli needs -o (bench/ner_cli.c since 7b4bffd).
#
# Writes BENCH_OUT (bench/results-batch.md).
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR       data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS      rounds of textclf_cli -b per build [3]
#   BENCH_ACC_OPTIONS  options of the accurate model [{"epochs": 3}]
#   BENCH_NER_OPTIONS  options of the NER model [{"epochs": 2}]
#   BENCH_OLD_REV      a revision to build as "before" [none]
#   BENCH_OUT          report file [bench/results-batch.md]

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/batch.sh CAI_DATA_DIR BENCH_REPEATS BENCH_ACC_OPTIONS BENCH_NER_OPTIONS BENCH_OLD_REV \
	BENCH_OUT
bench_cd_repo
SST="$(bench_dataset batch.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
WIKI="$(bench_dataset batch.sh ner/wikiann-en train.conll dev.conll test.conll)"
REPEATS="${BENCH_REPEATS:-3}"
DEFAULT_ACC_OPTIONS='{"epochs": 3}'
DEFAULT_NER_OPTIONS='{"epochs": 2}'
ACC_OPTIONS="${BENCH_ACC_OPTIONS:-$DEFAULT_ACC_OPTIONS}"
NER_OPTIONS="${BENCH_NER_OPTIONS:-$DEFAULT_NER_OPTIONS}"
OUT="${BENCH_OUT:-bench/results-batch.md}"
OLD_REV="${BENCH_OLD_REV:-}"
PY=/usr/bin/python3
TMP="$(mktemp -d /tmp/cai_batch.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
export OPENBLAS_NUM_THREADS=1
bench_results "$TMP/results.txt"
bench_put_machine
put acc_options "$ACC_OPTIONS"
put ner_options "$NER_OPTIONS"

# --- builds -----------------------------------------------------------------
declare -A BIN
log "build (make -f core.mk bench)"
make -s -j2 -f core.mk bench
BIN[now]="$REPO/build/bench"
BUILDS=(now)
if [ -n "$OLD_REV" ]; then
	log "build before ($OLD_REV)"
	mkdir "$TMP/before"
	git archive "$OLD_REV" | tar -x -C "$TMP/before"
	make -s -j2 -C "$TMP/before" -f core.mk BUILD=build bench
	BIN[before]="$TMP/before/build/bench"
	BUILDS+=(before)
	put old_rev "$(git rev-parse --short "$OLD_REV")"
fi

# --- models (and their md5s) --------------------------------------------------
for b in "${BUILDS[@]}"; do
	log "train accurate, fast and NER models with build $b (load $(load))"
	"${BIN[$b]}/textclf_cli" -a accurate -o "$TMP/accurate.$b" "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" \
		"$ACC_OPTIONS" > "$TMP/train-accurate.$b.log" 2>&1
	put "train_s.accurate.$b" "$(sed -n 's/.* train_s \([0-9.]*\).*/\1/p' "$TMP/train-accurate.$b.log")"
	"${BIN[$b]}/textclf_cli" -a fast -o "$TMP/fast.$b" "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" \
		> /dev/null 2>&1
	ner_flags=(-o "$TMP/ner.$b")
	[ "$b" = now ] && ner_flags=(-e "${ner_flags[@]}")
	"${BIN[$b]}/ner_cli" "${ner_flags[@]}" "$NER_OPTIONS" "$WIKI" > "$TMP/ner.$b.log" 2>&1
	for m in accurate fast ner; do
		put "md5.$m.$b" "$(md5sum < "$TMP/$m.$b" | cut -d' ' -f1)"
	done
done
sed -n 's/^#   /ner_e /p' "$TMP/ner.now.log" | tr -s ' ' >> "$R"

# --- accurate: batch against per row -----------------------------------------
n=${#BUILDS[@]}
for ((r = 1; r <= REPEATS; r++)); do
	for ((k = 0; k < n; k++)); do
		b=${BUILDS[$(((k + r) % n))]}
		log "round $r/$REPEATS: $b (load $(load))"
		"${BIN[$b]}/textclf_cli" -m "$TMP/accurate.now" -b "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" \
			2>/dev/null | sed -n "s/^batch_\([a-z]*\) /batch.$b.\1.$r /p" >> "$R"
	done
done
put load_end "$(load)"

# --- report -----------------------------------------------------------------
"$PY" - "$R" "$OUT" "$REPEATS" <<'EOF'
import re, statistics, sys
rfile, out, repeats = sys.argv[1:]
kv, batch, ner = {}, {}, []
for line in open(rfile):
    k, _, v = line.rstrip("\n").partition(" ")
    if k.startswith("batch."):
        _, b, split, r = k.split(".")
        f = lambda key: re.search(key + r" ([0-9.e+-]+)", v).group(1)
        batch.setdefault((b, split), []).append(dict(
            per_row=float(f("per_row_per_s")), batch=float(f("batch_per_s")), ratio=float(f("ratio")),
            pass_ratio=float(f("median of the passes' ratios")), diff=float(f("max_abs_diff")),
            labels=int(f("label_diffs"))))
    elif k == "ner_e":
        ner.append(v)
    else:
        kv[k] = v
builds = [b for b in ("now", "before") if f"md5.accurate.{b}" in kv]
name = {"now": f"this build ({kv['git']})", "before": f"before ({kv.get('old_rev')})"}
L = []
w = L.append
w("# Batched against per-row scoring in the core")
w("")
w(f"Generated {kv['date']} by:")
w("")
w(f"    {kv['command']}")
w("")
w(f"- CPU: {kv['cpu']}, {kv['nproc']} vCPUs, {kv['mem_gb']} GB; one process, OPENBLAS_NUM_THREADS=1; "
  f"{kv['blas_env']}; load average at the end: {kv['load_end']} (2 shared cores: other jobs ran too)")
w(f"- commit measured: {kv['git']}")
w("")
w("## Accurate text classifier (BiLSTM + the ensemble's fast model), SST-2")
w("")
w(f"`build/bench/textclf_cli -m MODEL -b` (MODEL: accurate, options `{kv['acc_options']}`, trained by this build): "
  "cai_textclf_predict row by row against cai_textclf_predict_batch in calls of 1,000 texts, medians of 5 passes "
  f"per run; the table gives the median over {repeats} runs (interleaved"
  + (" with the other build" if len(builds) > 1 else "") + "), the ratio of the median rates, the median of "
  "the runs' median ratio of the passes, and over all runs the largest probability difference and the rows whose "
  "predicted label differs.")
w("")
w("| build | split | per row, rows/s | batch, rows/s | ratio | median of passes' ratios | max prob. diff | label diffs |")
w("|---|---|---:|---:|---:|---:|---:|---:|")
for b in builds:
    for split in ("dev", "test"):
        xs = batch.get((b, split), [])
        if not xs:
            continue
        pr = statistics.median(x["per_row"] for x in xs)
        br = statistics.median(x["batch"] for x in xs)
        w(f"| {name[b]} | {split} | {pr:,.0f} | {br:,.0f} | {br / pr:.2f} | "
          f"{statistics.median(x['pass_ratio'] for x in xs):.2f} | {max(x['diff'] for x in xs):.3g} | "
          f"{max(x['labels'] for x in xs)} |")
w("")
w("## Model bytes")
w("")
w("The same training commands (accurate: `" + kv["acc_options"] + "`; fast: defaults; NER: `bench/ner_cli -o` with `"
  + kv["ner_options"] + "`), md5 of the model bytes:")
w("")
w("| model | " + " | ".join(name[b] for b in builds) + " |")
w("|---|" + "---|" * len(builds))
for m in ("accurate", "fast", "ner"):
    ref = kv[f"md5.{m}.now"]
    w(f"| {m} | " + " | ".join(f"`{kv[f'md5.{m}.{b}']}`" + ("" if b == "now" else
                                  (" same" if kv[f"md5.{m}.{b}"] == ref else " **differs**")) for b in builds) + " |")
if len(builds) > 1:
    w("")
    w("Accurate training seconds (the same command, one thread): " + ", ".join(
        f"{name[b]} {kv.get(f'train_s.accurate.{b}', '?')}" for b in builds) + ".")
w("")
w("## NER entities in raw text (this build)")
w("")
w("`build/bench/ner_cli -e` on the NER model above (WikiANN-en test, 10,000 sentences as texts; medians of 5 rounds):")
w("")
w("```")
for v in ner:
    w(v)
w("```")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
sys.stdout.write(text)
EOF
log "wrote $OUT"
