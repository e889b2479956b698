#!/usr/bin/env bash
#
# encoder_sql.sh -- what a BERT-base encoder costs through SQL, on a throwaway
# cluster with the installed extension, one backend:
#
# 1. A checkpoint of BERT-base's shape (12 layers, hidden 768, 12 heads,
#    intermediate 3072, 512 positions) with random weights (normal, std
#    0.02, F32: no checkpoint can be downloaded here; the cost does not
#    depend on the values) and a vocabulary of 30,522 tokens: the special
#    tokens, then the most frequent lower-cased words of SST-2's training
#    sentences, then "##" + letters, then filler tokens.
# 2. scripts/import-encoder.sh of it, BENCH_REPEATS times (each a new
#    version): seconds per import (client files -> large objects ->
#    cai_import_encoder -> stored version), the file and stored sizes.
# 3. cai_embed over BENCH_ROWS SST-2 dev sentences, mean pooling, in one
#    statement: the first statement of a new connection (the encoder loaded
#    from the catalog, or mapped from the shared copy after the first), then
#    BENCH_REPEATS warm rounds; sentences/s from the median.
# 4. Fine-tuning it for sentiment on BENCH_TRAIN_ROWS SST-2 training
#    sentences (cai_train, architecture transformer, one epoch, max_length
#    64, batch 16, one thread), then the fine-tuned model scoring the
#    BENCH_ROWS dev sentences row by row (cai_predict) and batched
#    (cai_predict_query, 32 per call), BENCH_REPEATS rounds each.
#    (Random weights: the accuracy means nothing, the time does.)
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR    data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_REPEATS   rounds [3]
#   BENCH_ROWS      sentences embedded (and scored) per round [200]
#   BENCH_TRAIN_ROWS  training sentences of the fine-tuning [256]
#   BENCH_OUT       report file [bench/results-encoder-sql.md]
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/encoder_sql.sh CAI_DATA_DIR BENCH_REPEATS BENCH_ROWS BENCH_TRAIN_ROWS BENCH_OUT
bench_cd_repo
SST="$(bench_dataset encoder_sql.sh sentiment/sst2 train.tsv dev.tsv)"
REPEATS="${BENCH_REPEATS:-3}"
ROWS="${BENCH_ROWS:-200}"
TRAIN_ROWS="${BENCH_TRAIN_ROWS:-256}"
OUT="${BENCH_OUT:-bench/results-encoder-sql.md}"
bench_start_results encoder_sql
put rows "$ROWS"
put train_rows "$TRAIN_ROWS"

# --- the checkpoint --------------------------------------------------------------
log "write a BERT-base-shaped checkpoint (load $(load))"
mkdir -p "$TMP/ckpt"
/usr/bin/python3 - "$SST/train.tsv" "$TMP/ckpt" <<'PY'
import collections, json, re, struct, sys
import numpy as np
train, out = sys.argv[1], sys.argv[2]
cfg = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
       "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512,
       "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
       "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
json.dump(cfg, open(out + "/config.json", "w"), indent=2)
words = collections.Counter()
for line in open(train, encoding="utf-8").readlines()[1:]:
    words.update(re.findall(r"\w+|[^\w\s]", line.rstrip("\n").split("\t")[1].lower()))    # label TAB sentence
vocab = ["[PAD]"] + ["[unused%d]" % i for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
seen = set(vocab)
for w, _ in words.most_common():
    if len(vocab) == cfg["vocab_size"]:
        break
    if w not in seen:
        vocab.append(w)
        seen.add(w)
vocab += ["[filler%d]" % i for i in range(cfg["vocab_size"] - len(vocab))]
open(out + "/vocab.txt", "w", encoding="utf-8").write("\n".join(vocab) + "\n")
rng = np.random.default_rng(1)
H, I, V, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
shapes = {"embeddings.word_embeddings.weight": (V, H), "embeddings.position_embeddings.weight": (P, H),
          "embeddings.token_type_embeddings.weight": (2, H), "embeddings.LayerNorm.weight": (H,),
          "embeddings.LayerNorm.bias": (H,)}
for l in range(cfg["num_hidden_layers"]):
    p = "encoder.layer.%d." % l
    for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (H, H), (H,)
    shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (I, H), (I,)
    shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (H, I), (H,)
    for m in ("attention.output.LayerNorm", "output.LayerNorm"):
        shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (H,), (H,)
header, off = {}, 0
for n, s in shapes.items():
    size = 4 * int(np.prod(s))
    header["bert." + n] = {"dtype": "F32", "shape": list(s), "data_offsets": [off, off + size]}
    off += size
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(out + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for n, s in shapes.items():
        if n.endswith("LayerNorm.weight"):
            a = np.ones(s, dtype="<f4")
        elif n.endswith(".bias"):
            a = np.zeros(s, dtype="<f4")
        else:
            a = (rng.standard_normal(s) * 0.02).astype("<f4")
        f.write(a.tobytes())
PY
put file_bytes "$(stat -c %s "$TMP/ckpt/model.safetensors")"

eval "$(scripts/pgcluster.sh start)"
export PGHOST PGPORT PGUSER
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"; rm -rf "$TMP"' EXIT
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
cp "$SST/dev.tsv" "$SST/train.tsv" "$TMP/" && chmod a+r "$TMP/dev.tsv" "$TMP/train.tsv"
"${PSQL[@]}" <<SQL
CREATE EXTENSION cai_synergy;
CREATE TABLE sst_raw (label int, sentence text);
COPY sst_raw FROM '$TMP/dev.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
CREATE TABLE sst AS SELECT row_number() OVER (ORDER BY sentence) AS id, sentence FROM sst_raw ORDER BY sentence LIMIT $ROWS;
CREATE TABLE sst_train_raw (label int, sentence text);
COPY sst_train_raw FROM '$TMP/train.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
CREATE TABLE sst_train AS SELECT sentence, label FROM sst_train_raw ORDER BY md5(sentence) LIMIT $TRAIN_ROWS;
SQL

# --- import --------------------------------------------------------------------
for ((r = 1; r <= REPEATS; r++)); do
	log "import $r/$REPEATS (load $(load))"
	t0=$(now)
	v=$(scripts/import-encoder.sh bert "$TMP/ckpt")
	put "s.import.$r" "$(elapsed "$t0" "$(now)")"
	[ "$v" = "$r" ] || { echo "encoder_sql.sh: import printed '$v', expected $r" >&2; exit 1; }
done
put stored_bytes "$("${PSQL[@]}" -At -c "SELECT size FROM cai_model_details WHERE name = 'bert' AND version = 1")"

# --- cai_embed -----------------------------------------------------------------
ms() {	# ms SQL: milliseconds of the last statement (psql \timing), in a new connection
	"${PSQL[@]}" -c 'SET max_parallel_workers_per_gather = 0' -c '\timing on' "$@" 2>&1 \
		| sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}
EMBED="SELECT sum(cardinality(cai_embed('bert', sentence))) FROM sst"
put ms.first_call_catalog "$(ms -c "SELECT cardinality(cai_embed('bert', 'a first sentence'))")"
put ms.first_call_shared "$(ms -c "SELECT cardinality(cai_embed('bert', 'a first sentence'))")"
put ms.one_short "$(ms -c "SELECT cardinality(cai_embed('bert', 'warm'))" -c "SELECT cardinality(cai_embed('bert', 'a first sentence'))")"
for ((r = 1; r <= REPEATS; r++)); do
	log "embed round $r/$REPEATS (load $(load))"
	put "ms.embed.$r" "$(ms -c "SELECT cardinality(cai_embed('bert', 'warm'))" -c "$EMBED")"
done
put mean_chars "$("${PSQL[@]}" -At -c "SELECT round(avg(length(sentence)), 1) FROM sst")"

# --- fine-tuning and scoring -----------------------------------------------------
TF_OPTIONS='{"architecture": "transformer", "encoder": "bert", "epochs": 1, "max_length": 64, "batch_size": 16, "threads": 1, "seed": 1}'
put tf_options "$TF_OPTIONS"
log "fine-tune on $TRAIN_ROWS sentences (load $(load))"
t0=$(now)
"${PSQL[@]}" -c "SELECT 1 FROM cai_train('bert_sst', 'sentiment', 'sst_train', 'sentence', 'label', '$TF_OPTIONS')" >/dev/null 2>&1
put s.train.1 "$(elapsed "$t0" "$(now)")"
ms -c "SELECT cai_predict('bert_sst', 'warm')" >/dev/null
for ((r = 1; r <= REPEATS; r++)); do
	log "score round $r/$REPEATS (load $(load))"
	put "ms.predict_row.$r" "$(ms -c "SELECT cai_predict('bert_sst', 'warm')" -c "SELECT count(cai_predict('bert_sst', sentence)) FROM sst")"
	put "ms.predict_query.$r" "$(ms -c "SELECT cai_predict('bert_sst', 'warm')" -c "SELECT count(label) FROM cai_predict_query('bert_sst', 'SELECT id, sentence FROM sst', 32)")"
done
put load_end "$(load)"

# --- report --------------------------------------------------------------------
/usr/bin/python3 - "$R" "$OUT" <<'PY'
import statistics, sys
kv, runs = {}, {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition(" ")
    parts = k.split(".")
    if len(parts) == 3 and parts[2].isdigit():
        runs.setdefault(parts[1], []).append(float(v))
    else:
        kv[k] = v
med = {k: statistics.median(v) for k, v in runs.items()}
rows = int(kv["rows"])
out = []
w = out.append
w("# A BERT-base encoder through SQL")
w("")
w("Generated %s by:" % kv["date"])
w("")
w("    " + kv["command"])
w("")
w("- CPU: %s, %s vCPUs, %s GB; one backend; load average at the end: %s (2 cores shared with other work)"
  % (kv["cpu"], kv["nproc"], kv["mem_gb"], kv["load_end"]))
w("- commit measured: %s; checkpoint: BERT-base shape (12 x 768, vocab 30,522), random F32 weights" % kv["git"])
w("")
w("| measure | median of %d | runs |" % len(runs["import"]))
w("| --- | --- | --- |")
w("| `scripts/import-encoder.sh` of a %.0f MB model.safetensors (stored model %.0f MB) | %.1f s | %s |"
  % (int(kv["file_bytes"]) / 1e6, int(kv["stored_bytes"]) / 1e6, med["import"],
     ", ".join("%.1f" % x for x in runs["import"])))
w("| `cai_embed` (mean) of %d SST-2 dev sentences (%s characters on average), one statement | %.0f ms: %.1f sentences/s, %.1f ms each | %s |"
  % (rows, kv["mean_chars"], med["embed"], rows / (med["embed"] / 1000), med["embed"] / rows,
     ", ".join("%.0f" % x for x in runs["embed"])))
w("| `cai_train` fine-tuning for sentiment on %s SST-2 training sentences, one epoch (`%s`) | %.0f s: %.1f sentences/s | |"
  % (kv["train_rows"], kv["tf_options"], med["train"], int(kv["train_rows"]) / med["train"]))
w("| the fine-tuned model scoring %d dev sentences: `cai_predict` row by row | %.0f ms: %.1f ms each | %s |"
  % (rows, med["predict_row"], med["predict_row"] / rows, ", ".join("%.0f" % x for x in runs["predict_row"])))
w("| the same rows through `cai_predict_query(model, query, 32)` (32 texts per forward pass) | %.0f ms: %.1f ms each, %.2fx row by row | %s |"
  % (med["predict_query"], med["predict_query"] / rows, med["predict_row"] / med["predict_query"],
     ", ".join("%.0f" % x for x in runs["predict_query"])))
w("")
w("First statement of a new connection, one short sentence: %.0f ms the first time (encoder read from the catalog, "
  "validated, shared copy written), %.0f ms in the next connection (shared copy mapped); %.0f ms once loaded."
  % (float(kv["ms.first_call_catalog"]), float(kv["ms.first_call_shared"]), float(kv["ms.one_short"])))
w("")
open(sys.argv[2], "w").write("\n".join(out))
print("\n".join(out))
PY
