#!/bin/sh
# transformer.sh: the core's encoder (bench/encoder_bench.c: matrix products on
# OpenBLAS and on the core's own SGEMM) against PyTorch
# (bench/peers/transformer_torch.py, Debian's python3-torch) on the same random
# BERT shapes, side by side in one run, and write bench/results-transformer.md.
#
#   sh bench/transformer.sh                 # 3 rounds, 2 threads, the three shapes
#   ROUNDS=1 REPS=1 SHAPES=tiny sh bench/transformer.sh   # a smoke run
#
# Each round runs, for every shape, encoder_bench (REPS repetitions, each
# OpenBLAS then the core's kernel), then torch with 1 torch thread and
# OPENBLAS_NUM_THREADS=THREADS (issue 13: its best setting here), then torch
# with THREADS torch threads and OPENBLAS_NUM_THREADS=1; the rounds interleave
# the programs, so they see the same load.  Figures are medians over rounds of
# each program's median; ratios compare the core with torch's better setting.
# Leaves OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE as the environment sets them.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-2}
THREADS=${THREADS:-2}
SHAPES=${SHAPES:-"bert small tiny"}
PY=${PY:-/usr/bin/python3}
OUT=${OUT:-bench/results-transformer.md}

# name: layers hidden heads intermediate batch sequence
shape_args() {
	case $1 in
		bert) echo "12 768 12 3072 8 128" ;;
		small) echo "4 256 4 1024 8 128" ;;
		tiny) echo "2 128 2 512 8 128" ;;
		*) echo "unknown shape $1" >&2; exit 1 ;;
	esac
}

"$PY" -c 'import torch' 2>/dev/null || { echo "transformer.sh: $PY has no torch (apt-get install python3-torch)" >&2; exit 1; }
make -s -f core.mk BUILD="$BUILD" "$BUILD/bench/encoder_bench"
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
	for s in $SHAPES; do
		set -- $(shape_args "$s")
		L=$1 H=$2 NH=$3 I=$4 B=$5 T=$6
		echo "round $round: $s: encoder_bench" >&2
		"$BUILD/bench/encoder_bench" "$H" "$L" "$NH" "$I" "$B" "$T" "$THREADS" "$REPS" |
			awk -v s="$s" '$1 == "RESULT" { print s, $2, $3, $4 }' >> "$raw"
		echo "round $round: $s: torch, 1 torch thread, OPENBLAS_NUM_THREADS=$THREADS" >&2
		OPENBLAS_NUM_THREADS=$THREADS "$PY" bench/peers/transformer_torch.py --layers "$L" --hidden "$H" \
			--heads "$NH" --inter "$I" --batch "$B" --seq "$T" --threads 1 --reps "$REPS" |
			awk -v s="$s" '$1 == "RESULT" { print s, "torch_1t", $3, $4 }' >> "$raw"
		echo "round $round: $s: torch, $THREADS torch threads, OPENBLAS_NUM_THREADS=1" >&2
		OPENBLAS_NUM_THREADS=1 "$PY" bench/peers/transformer_torch.py --layers "$L" --hidden "$H" \
			--heads "$NH" --inter "$I" --batch "$B" --seq "$T" --threads "$THREADS" --reps "$REPS" |
			awk -v s="$s" '$1 == "RESULT" { print s, "torch_nt", $3, $4 }' >> "$raw"
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# median over rounds of one program's seconds: med shape kernel column(3 forward, 4 training)
med() {
	awk -v s="$1" -v k="$2" -v c="$3" '$1 == s && $2 == k { print $c }' "$raw" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
sps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.2f", b / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }	# speed of the first against the second
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }

core=$(awk '$2 != "openblas" && $2 !~ /^torch/ { print $2; exit }' "$raw")
torchv=$("$PY" -c 'import torch; print(torch.__version__)')
model=$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
{
	echo "# Transformer encoder: the core against PyTorch"
	echo
	echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') at $(git rev-parse --short HEAD) by:"
	echo
	echo "    ROUNDS=$ROUNDS REPS=$REPS THREADS=$THREADS SHAPES=\"$SHAPES\" sh bench/transformer.sh"
	echo
	echo "- CPU: $model, $(nproc) vCPUs; load average (1/5/15 min) before: $load_before, after: $load_after"
	echo "  (the 2 vCPUs are shared with other jobs: the figures move from run to run, the ratios less)"
	echo "- random weights (std 0.02), batch of B sequences of T tokens with a few padded positions each;"
	echo "  forward = inference (no dropout, no gradients); training step = forward with dropout 0.1,"
	echo "  backward of sum(out * dout) for a random dout, AdamW (lr 1e-5, weight decay 0.01) over every"
	echo "  parameter (the core: cai_optim_step over the parameter slab; torch: torch.optim.AdamW)"
	echo "- the core: build/bench/encoder_bench with $THREADS threads (cai_blas_set_threads), its matrix products"
	echo "  on OpenBLAS (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}) and on the core's SGEMM ($core, src/core/gemm.h),"
	echo "  interleaved repetition by repetition; PyTorch $torchv (Debian python3-torch) with"
	echo "  torch.set_num_threads(1) and OPENBLAS_NUM_THREADS=$THREADS, and with $THREADS torch threads and"
	echo "  OPENBLAS_NUM_THREADS=1; each program's median of $REPS repetitions, then the median of $ROUNDS rounds"
	echo
	echo "## Targets (issue 13): forward at least 1.5x PyTorch's best setting, training step at least 1.2x"
	echo
	echo "| shape | forward: core / best torch | training step: core / best torch | forward: core / OpenBLAS | training: core / OpenBLAS |"
	echo "|---|---:|---:|---:|---:|"
	for s in $SHAPES; do
		cf=$(med "$s" "$core" 3); ct=$(med "$s" "$core" 4)
		of=$(med "$s" openblas 3); ot=$(med "$s" openblas 4)
		tf=$(best "$(med "$s" torch_1t 3)" "$(med "$s" torch_nt 3)")
		tt=$(best "$(med "$s" torch_1t 4)" "$(med "$s" torch_nt 4)")
		echo "| $s | **$(ratio "$cf" "$tf")** | **$(ratio "$ct" "$tt")** | $(ratio "$cf" "$of") | $(ratio "$ct" "$ot") |"
	done
	echo
	echo "## Sequences per second"
	echo
	echo "| shape (layers x hidden, heads, intermediate, B x T) | program | forward seq/s | training step seq/s |"
	echo "|---|---|---:|---:|"
	for s in $SHAPES; do
		set -- $(shape_args "$s")
		desc="$s ($1 x $2, $3 heads, $4, $5 x $6)"
		for k in "$core" openblas torch_1t torch_nt; do
			case $k in
				openblas) name="the core, OpenBLAS products" ;;
				torch_1t) name="PyTorch, 1 torch thread, OPENBLAS_NUM_THREADS=$THREADS" ;;
				torch_nt) name="PyTorch, $THREADS torch threads, OPENBLAS_NUM_THREADS=1" ;;
				*) name="**the core, its own SGEMM ($k)**" ;;
			esac
			echo "| $desc | $name | $(sps "$5" "$(med "$s" "$k" 3)") | $(sps "$5" "$(med "$s" "$k" 4)") |"
		done
	done
	echo
	echo "## The other checks of issue 13"
	echo
	echo "- SGEMM for the encoder's shapes, the core's kernel against OpenBLAS on 1 and 2 threads (target 1.6x on every"
	echo "  shape): [results-gemm.md](results-gemm.md) (\`sh bench/gemm.sh\`)."
	echo "- Hidden states, logits and gradients against a PyTorch reference (within 1e-4):"
	echo "  [results-encoder-torch.md](results-encoder-torch.md) (\`sh bench/encoder_torch_check.sh\`)."
	echo "- Pretraining then fine-tuning against fine-tuning from random weights (target +3 points):"
	echo "  [results-pretrain.md](results-pretrain.md) (\`bench/pretrain.sh\`)."
	echo
	echo "## All measurements (shape, program, forward s, training step s; one line per round)"
	echo
	echo '```'
	cat "$raw"
	echo '```'
} > "$OUT"
echo "wrote $OUT"
