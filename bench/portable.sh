#!/usr/bin/env bash
#
# portable.sh -- the portable build (the default: baseline x86-64, hot kernels
# cloned for AVX2 and AVX-512 and chosen at load time, src/core/vectorize.h)
# against a build for this CPU, on this machine:
#
#   native    OPTFLAGS=-march=native      (the opt-in local build)
#   portable  the default flags           (runs the AVX-512 clones here, if the CPU has AVX-512F)
#   avx2      OPTFLAGS=-DCAI_NO_AVX512    (clones for AVX2 and the baseline only: runs AVX2 here)
#   baseline  OPTFLAGS=-DCAI_NO_DISPATCH  (no clones: what a CPU without AVX2 runs)
#   before    BENCH_OLD_REV's own default build (-march=native, FMA contraction
#             allowed), from `git archive`; only when BENCH_OLD_REV is set
#
# 1. Bit identity: bench/portable_probe.c, built against each variant's
#    libcaicore.a, trains a fast, an accurate and a NER model (small) and
#    writes model bytes and predictions; their md5s are compared.
# 2. Speed, BENCH_REPEATS interleaved rounds (the variants' order rotates),
#    medians: fast training seconds and predictions/s (build/bench/textclf_cli
#    -a fast), accurate predictions/s (textclf_cli -m, one model trained once
#    with {"epochs": 1} by the portable build), NER tagging tokens/s batched
#    and one sentence at a time and training sentences/s (ner_cli
#    '{"epochs": 1}').  avx2 is left out of the timings.
#
# Writes BENCH_OUT (bench/results-portable.md).  The build directories are
# build-portable-<variant> (rebuilt from scratch: make does not track flags).
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR    data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS   speed rounds [5]
#   BENCH_OLD_REV   a revision to build as "before" (e.g. the branch point) [none]
#   BENCH_OUT       report file [bench/results-portable.md]

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/portable.sh CAI_DATA_DIR BENCH_REPEATS BENCH_OLD_REV BENCH_OUT
bench_cd_repo
SST="$(bench_dataset portable.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
WIKI="$(bench_dataset portable.sh ner/wikiann-en train.conll dev.conll test.conll)"
REPEATS="${BENCH_REPEATS:-5}"
OUT="${BENCH_OUT:-bench/results-portable.md}"
OLD_REV="${BENCH_OLD_REV:-}"
PY=/usr/bin/python3
CC="${CC:-cc}"
TMP="$(mktemp -d /tmp/cai_portable.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
bench_results "$TMP/results.txt"

declare -A OPT=([native]=-march=native [portable]= [avx2]=-DCAI_NO_AVX512 [baseline]=-DCAI_NO_DISPATCH)
declare -A BIN
VARIANTS=(native portable avx2 baseline)
TIMED=(native portable baseline)

# --- builds -----------------------------------------------------------------
probe_build() {	# probe_build INCLUDE_DIR BUILD_DIR
	"$CC" -std=gnu11 -O2 -I"$1" -o "$2/bench/portable_probe" bench/portable_probe.c \
		"$2/libcaicore.a" -ljson-c -lm -pthread
}
for v in "${VARIANTS[@]}"; do
	log "build $v (OPTFLAGS=${OPT[$v]})"
	rm -rf "build-portable-$v"
	make -s -j2 -f core.mk BUILD="build-portable-$v" OPTFLAGS="${OPT[$v]}" bench
	probe_build include "build-portable-$v"
	BIN[$v]="$REPO/build-portable-$v/bench"
done
if [ -n "$OLD_REV" ]; then
	log "build before ($OLD_REV, its own default flags)"
	mkdir "$TMP/before"
	git archive "$OLD_REV" | tar -x -C "$TMP/before"
	make -s -j2 -C "$TMP/before" -f core.mk BUILD=build bench
	probe_build "$TMP/before/include" "$TMP/before/build"
	BIN[before]="$TMP/before/build/bench"
	VARIANTS+=(before)
	TIMED+=(before)
	put old_rev "$(git rev-parse --short "$OLD_REV")"
fi

# --- 1. bit identity --------------------------------------------------------
for v in "${VARIANTS[@]}"; do
	log "probe $v"
	mkdir -p "$TMP/probe-$v"
	"${BIN[$v]}/portable_probe" "$SST" "$WIKI" "$TMP/probe-$v" > "$TMP/probe-$v.log"
	for f in "$TMP/probe-$v"/*; do
		put "md5.$v.$(basename "$f")" "$(md5sum < "$f" | cut -c1-12)"
	done
done

# --- 2. speed ---------------------------------------------------------------
log "accurate model for the prediction timings"
"${BIN[portable]}/textclf_cli" -a accurate -o "$TMP/accurate.cai" "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" \
	'{"epochs": 1}' > /dev/null 2>&1
n=${#TIMED[@]}
for ((r = 1; r <= REPEATS; r++)); do
	for ((k = 0; k < n; k++)); do
		v=${TIMED[$(((k + r) % n))]}
		log "round $r/$REPEATS: $v (load $(load))"
		line=$("${BIN[$v]}/textclf_cli" -a fast "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" 2>/dev/null | tail -n 1)
		put "fast_train_s.$v.$r" "$(sed -n 's/.* train_s \([0-9.]*\).*/\1/p' <<< "$line")"
		put "fast_pred.$v.$r" "$(sed -n 's/.* pred_per_s \([0-9.]*\).*/\1/p' <<< "$line")"
		line=$("${BIN[$v]}/textclf_cli" -m "$TMP/accurate.cai" "$SST/train.tsv" "$SST/dev.tsv" "$SST/test.tsv" 2>/dev/null | tail -n 1)
		put "acc_pred.$v.$r" "$(sed -n 's/.* pred_per_s \([0-9.]*\).*/\1/p' <<< "$line")"
		out=$("${BIN[$v]}/ner_cli" '{"epochs": 1}' "$WIKI" 2>&1)
		put "ner_train.$v.$r" "$(sed -n 's/^epoch  *1 .* \([0-9]*\) sent\/s.*/\1/p' <<< "$out")"
		put "ner_tag_batch.$v.$r" "$(sed -n 's/^# tagging batched: .* = \([0-9]*\) tokens\/s/\1/p' <<< "$out")"
		put "ner_tag_one.$v.$r" "$(sed -n 's/^# tagging one sentence at a time: \([0-9]*\) tokens\/s/\1/p' <<< "$out")"
	done
done
put load_end "$(load)"

# --- report -----------------------------------------------------------------
cpu=$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512vl' | tr '\n' ' ')
"$PY" - "$R" "$OUT" "$COMMAND_LINE" "$cpu" "$isa" "$($CC --version | head -n 1)" "$REPEATS" \
	"$TMP/probe-portable.log" "$TMP" <<'EOF'
import array, os, statistics, sys, time
rfile, out, cmd, cpu, isa, cc, repeats, plog, tmp = sys.argv[1:]
kv = {}
for line in open(rfile):
    k, _, v = line.rstrip("\n").partition(" ")
    kv[k] = v
variants = [v for v in ("native", "portable", "avx2", "baseline", "before") if f"md5.{v}.fast.model" in kv]
timed = [v for v in ("native", "portable", "baseline", "before") if f"fast_pred.{v}.1" in kv]
old = kv.get("old_rev")
desc = {
    "native": "`OPTFLAGS=-march=native`",
    "portable": "default flags (dispatched)",
    "avx2": "`OPTFLAGS=-DCAI_NO_AVX512` (AVX2 clones)",
    "baseline": "`OPTFLAGS=-DCAI_NO_DISPATCH` (baseline x86-64)",
    "before": f"before, {old} (`-march=native`, FMA contraction)",
}
L = []
w = L.append
w("# Portable build: bit identity and speed against -march=native")
w("")
w(f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by:")
w("")
w(f"    {cmd}")
w("")
w(f"- CPU: {cpu}, {os.cpu_count()} vCPUs; ISA flags: {isa}(the portable build runs the "
  + ("AVX-512" if "avx512f" in isa.split() else "AVX2" if "avx2" in isa.split() else "baseline") + " clones here)")
w(f"- compiler: {cc}; load average at the end: {kv.get('load_end', '?')} (2 shared cores: other jobs ran too)")
w("- builds: " + "; ".join(f"{v}: {desc[v]}" for v in variants))
w("")
w("## Bit identity")
w("")
w("bench/portable_probe.c: fast (SST-2, defaults, seed 7), accurate (8,000 SST-2 rows, 1 epoch, threads 1), NER "
  "(4,000 WikiANN sentences, 2 epochs, threads 1); model bytes and predictions (raw float32) on dev and test. "
  "md5 (first 12 hex digits):")
w("")
files = sorted(k.split(".", 2)[2] for k in kv if k.startswith("md5.portable."))
w("| file | " + " | ".join(variants) + " |")
w("|---|" + "---|" * len(variants))
for f in files:
    ref = kv[f"md5.portable.{f}"]
    cells = []
    for v in variants:
        h = kv.get(f"md5.{v}.{f}", "?")
        cells.append(f"`{h}`" + ("" if v == "portable" else (" same" if h == ref else " **differs**")))
    w(f"| {f} | " + " | ".join(cells) + " |")
w("")
if "before" in variants:
    def rd(p):
        a = array.array("f")
        a.frombytes(open(p, "rb").read())
        return a
    w("The revision before this change against the portable build (different models where the md5s differ):")
    w("")
    for f in ("fast.pred", "accurate.pred", "ner.scores"):
        a, b = rd(f"{tmp}/probe-before/{f}"), rd(f"{tmp}/probe-portable/{f}")
        d = max(abs(x - y) for x, y in zip(a, b))
        nd = sum(x != y for x, y in zip(a, b))
        extra = ""
        if f.endswith(".pred"):
            n = len(a) // 2
            k = sum((a[2 * i] > a[2 * i + 1]) != (b[2 * i] > b[2 * i + 1]) for i in range(n))
            extra = f"; predicted class differs on {k} of {n} rows"
        w(f"- {f}: {nd} of {len(a)} values differ, largest difference {d:.3g}{extra}")
    w("")
w("## Speed")
w("")
w(f"Median of {repeats} interleaved rounds; ratios against native (above 1: faster than native) of the medians and "
  "of the best rounds (the best round is the least disturbed by other jobs on the shared cores).")
w("")
measures = [
    ("fast_pred", "fast predict, rows/s (test, best of 5 passes)", False),
    ("acc_pred", "accurate predict, rows/s (test, best of 5 passes)", False),
    ("ner_tag_batch", "NER tag batched, tokens/s", False),
    ("ner_tag_one", "NER tag one sentence at a time, tokens/s", False),
    ("fast_train_s", "fast train (SST-2, 5 epochs), s", True),
    ("ner_train", "NER train (epoch 1), sentences/s", False),
]
w("| measure | " + " | ".join(f"{v} | ratio median / best" for v in timed) + " |")
w("|---|" + "---:|---:|" * len(timed))
for key, label, lower_better in measures:
    med, best = {}, {}
    for v in timed:
        xs = [float(kv[f"{key}.{v}.{r}"]) for r in range(1, int(repeats) + 1) if kv.get(f"{key}.{v}.{r}")]
        med[v] = statistics.median(xs) if xs else float("nan")
        best[v] = (min(xs) if lower_better else max(xs)) if xs else float("nan")
    cells = []
    for v in timed:
        if lower_better:
            cells.append(f"{med[v]:,.2f} | {med['native'] / med[v]:.2f} / {best['native'] / best[v]:.2f}")
        else:
            cells.append(f"{med[v]:,.0f} | {med[v] / med['native']:.2f} / {best[v] / best['native']:.2f}")
    w(f"| {label} | " + " | ".join(cells) + " |")
w("")
w("All rounds:")
w("")
w("```")
for k in sorted(kv):
    if not k.startswith("md5."):
        w(f"{k} {kv[k]}")
w("```")
text = "\n".join(L) + "\n"
open(out, "w").write(text)
sys.stdout.write(text)
EOF
log "wrote $OUT"
