#!/bin/sh
# encoder_torch_check.sh: the core's BERT encoder against a PyTorch reference
# (issue 13, "How it is checked").  For each shape (layers x hidden: 2 x 128,
# 4 x 256, 12 x 768; SHAPES overrides, e.g. SHAPES="2x128 4x256"),
# bench/peers/encoder_torch_ref.py (Debian's python3-torch) writes a random
# checkpoint, a padded batch, its last hidden states and the gradients of a
# weighted sum of them (float64 autograd) into a temporary directory, and
# build/bench/encoder_torch_check loads it and prints the largest differences.
# Writes bench/results-encoder-torch.md.  Run from anywhere.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHAPES=${SHAPES:-"2x128 4x256 12x768"}
OUT=bench/results-encoder-torch.md
PY=${PY:-/usr/bin/python3}
make -s -f core.mk BUILD="$BUILD" WERROR=1 "$BUILD/bench/encoder_torch_check"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

rows=""
details=""
status=0
for s in $SHAPES; do
	L=${s%x*}
	H=${s#*x}
	d="$TMP/$s"
	t0=$(date +%s)
	ref=$("$PY" bench/peers/encoder_torch_ref.py "$d" "$L" "$H" --vocab 1000 --positions 64 --batch 3 --seq 24)
	t32=$(printf '%s\n' "$ref" | awk '$1 == "TORCH32" { v = $3 + 0; if (v > m) { m = v; s = $3 } } END { print s }')
	t1=$(date +%s)
	rc=0
	raw=$("$BUILD/bench/encoder_torch_check" "$d") || rc=$?
	t2=$(date +%s)
	printf '%s\n' "$raw"
	[ "$rc" -eq 0 ] || status=1
	hid=$(printf '%s\n' "$raw" | awk '$1 == "RESULT" { print $2 }')
	rel=$(printf '%s\n' "$raw" | awk '$1 == "RESULT" { print $3 }')
	lgt=$(printf '%s\n' "$raw" | awk '$1 == "RESULT" { print $4 }')
	gabs=$(printf '%s\n' "$raw" | awk '$1 == "grad" { v = $6 + 0; sub(/,$/, "", $6); if (v > m) { m = v; s = $6 } } END { print s }')
	verdict=$([ "$rc" -eq 0 ] && echo "within" || echo "**beyond**")
	rows="$rows| $L x $H | $hid | $lgt | $gabs | $t32 | $rel | $verdict | $((t1 - t0)) s + $((t2 - t1)) s |
"
	details="$details
\`\`\`
$(printf '%s\n' "$raw" | sed "s|$TMP/||")
$(printf '%s\n' "$ref" | awk '$1 == "TORCH32" { printf "  PyTorch float32 %-37s max abs diff %s\n", $2, $3 }')
\`\`\`
"
done

model=$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
torchv=$("$PY" -c 'import torch; print(torch.__version__)')
{
	printf '# The encoder against PyTorch\n\n'
	printf 'Generated %s by:\n\n    sh bench/encoder_torch_check.sh\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	if [ "$SHAPES" != "2x128 4x256 12x768" ]; then
		printf 'with SHAPES="%s".\n\n' "$SHAPES"
	fi
	printf -- '- machine: %s, %s CPUs; PyTorch %s (Debian python3-torch); git %s\n' "$model" "$(nproc)" "$torchv" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	cat <<'TXT'
- reference: `bench/peers/encoder_torch_ref.py`, a BERT encoder written with torch.nn modules (post-LN,
  erf GELU, padding keys masked with -inf, eps 1e-12, eval mode), random weights from seed 13 (normal 0.02;
  biases and LayerNorm gains/biases random too), saved as F32 safetensors under BERT's names with the
  "bert." prefix, then run in float64 from those F32 weights with autograd.  Heads: hidden / 64 (at
  least 2), intermediate 4 x hidden, vocabulary 1000, 64 positions, batch 3 x 24 with 24, 18 and 12
  real tokens (the rest padding), two segments.
- loss: sum over the unpadded positions of the hidden states times fixed normal(0, 1) weights; the core
  gets those weights as `dout` of `cai_encoder_backward` after `cai_encoder_forward` (inference, no dropout).
- the core: `build/bench/encoder_torch_check DIR` (bench/encoder_torch_check.c), float32, its default
  SGEMM kernel.  Compared: the last hidden states at the unpadded positions (max absolute difference),
  and 12 gradients (word, position, token-type embeddings, embedding LayerNorm gain, layer 0 query weight
  and bias, value, attention output and intermediate weights, the last layer's output dense weight and
  output LayerNorm gain and bias): max absolute difference, and that difference over the tensor's
  largest reference value (the gradients reach a few hundred for the embeddings, so an absolute
  1e-4 is the wrong scale for them).  Logits: a random head (5 classes, normal 0.2) on a single-segment
  forward of the same ids, run by the core through `tf_forward_infer` (the transformer models' inference:
  padding, pooling, head; test/unit/encoder_torch.h) per token at every unpadded position (NER), mean-pooled
  and [CLS]-pooled (classification): the largest absolute difference of the three.  Tolerances, as in
  test/unit/test_encoder.c: hidden states and logits 1e-4 absolute; gradients 1e-4 of the tensor's largest
  value.

| layers x hidden | hidden states max abs diff | logits max abs diff | gradients max abs diff | PyTorch's own float32 gradients: max abs diff | gradients max diff / max \|ref\| | tolerance | time (torch + core) |
|---|---|---|---|---|---|---|---|
TXT
	printf '%s' "$rows"
	cat <<'TXT'

The issue asks for the gradients within 1e-4 absolute as well.  The embedding gradients (word, position,
token type) sum over every position of the batch and reach a few hundred, where 1e-4 is only 2 to 7
float32 ulps (one ulp is 1.5e-5 between 128 and 256, 3.1e-5 to 512, 6.1e-5 to 1024), less than the
rounding of a float32 sum of that many terms: at the larger shapes they exceed it (table, third column) while staying within
1e-6 of their scale.  Every other tensor's gradient is within 1e-4 absolute.  The fourth column is PyTorch's
own float32 backward of the same checkpoint and batch against the same float64 reference (max over the same
12 tensors): float32 arithmetic alone lands about as far from float64, so 1e-4 absolute on these
gradients is beyond any float32 implementation at these scales.
TXT
	printf '\nPer tensor:\n%s' "$details"
} > "$OUT"
echo "wrote $OUT"
exit $status
