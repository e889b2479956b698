#!/usr/bin/python3
"""Write the encoder's reference fixtures (test/fixtures/encoder/).

An independent numpy (float64) implementation of BERT's forward pass from the
published equations (Devlin et al. 2019; Vaswani et al. 2017): embeddings
summed and LayerNorm'd, post-LN blocks of multi-head self-attention with the
additive -10000 padding mask of the original BERT code, erf GELU feed-forward.
It makes a tiny random checkpoint, writes it in the safetensors layout (8-byte
little-endian header length, JSON header, raw little-endian data) under BERT's
key names, and the expected last hidden states of a padded batch.

Files:
  config.json               the checkpoint's config
  model.safetensors         "bert." prefix, F32, with pooler, MLM bias and position_ids
  model_noprefix.safetensors  no prefix, F32, LayerNorm gamma/beta names, no extras
  model_f16.safetensors     "bert." prefix, F16
  model_bf16.safetensors    no prefix, BF16 (rounded to nearest even)
  distilbert_config.json, distilbert.safetensors
                            the same weights (no token types) as DistilBERT names them,
                            "distilbert." prefix, F32, with the MLM head
  inputs.txt                B T, then ids, segment ids and mask (B*T each)
  expected.txt              (B, T, H) last hidden states of the F32 weights
  expected_f16.txt          the same for the F16-rounded weights
  expected_bf16.txt         the same for the BF16-rounded weights
  expected_distilbert.txt   the DistilBERT checkpoint's, segment ids ignored

Run: /usr/bin/python3 scripts/gen_encoder_fixture.py [outdir]
"""
import json
import math
import struct
import sys

import numpy as np

CFG = {
    "model_type": "bert",
    "vocab_size": 16,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "max_position_embeddings": 8,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "position_embedding_type": "absolute",
}


DISTIL_CFG = {
    "model_type": "distilbert",
    "vocab_size": CFG["vocab_size"],
    "dim": CFG["hidden_size"],
    "n_layers": CFG["num_hidden_layers"],
    "n_heads": CFG["num_attention_heads"],
    "hidden_dim": CFG["intermediate_size"],
    "max_position_embeddings": CFG["max_position_embeddings"],
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation": "gelu",
    "sinusoidal_pos_embds": False,
}

# BERT's layer tensor names -> DistilBERT's (Hugging Face's DistilBertModel)
DISTIL_LAYER = {
    "attention.self.query": "attention.q_lin", "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin", "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm", "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2", "output.LayerNorm": "output_layer_norm",
}


def distil_name(n):
    if n.startswith("embeddings."):
        return n
    parts = n.split(".")                    # encoder layer N <module...> weight|bias
    module = ".".join(parts[3:-1])
    return "transformer.layer.%s.%s.%s" % (parts[2], DISTIL_LAYER[module], parts[-1])


def make_weights(rng):
    H, I = CFG["hidden_size"], CFG["intermediate_size"]
    w = {}

    def mat(name, shape, scale=0.5):
        w[name] = (rng.standard_normal(shape) * scale).astype(np.float32)

    mat("embeddings.word_embeddings.weight", (CFG["vocab_size"], H))
    mat("embeddings.position_embeddings.weight", (CFG["max_position_embeddings"], H))
    mat("embeddings.token_type_embeddings.weight", (CFG["type_vocab_size"], H))
    w["embeddings.LayerNorm.weight"] = (1 + 0.2 * rng.standard_normal(H)).astype(np.float32)
    mat("embeddings.LayerNorm.bias", (H,), 0.1)
    for l in range(CFG["num_hidden_layers"]):
        p = "encoder.layer.%d." % l
        for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            mat(p + part + ".weight", (H, H))
            mat(p + part + ".bias", (H,), 0.1)
        mat(p + "intermediate.dense.weight", (I, H))
        mat(p + "intermediate.dense.bias", (I,), 0.1)
        mat(p + "output.dense.weight", (H, I))
        mat(p + "output.dense.bias", (H,), 0.1)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = (1 + 0.2 * rng.standard_normal(H)).astype(np.float32)
            mat(p + ln + ".bias", (H,), 0.1)
    return w


def layer_norm(x, g, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert_forward(w, ids, seg, mask):
    """Last hidden states (B, T, H) in float64."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    B, T = ids.shape
    H, nh = CFG["hidden_size"], CFG["num_attention_heads"]
    d = H // nh
    eps = CFG["layer_norm_eps"]
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(T)][None, :, :]
         + w["embeddings.token_type_embeddings.weight"][seg])
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    add_mask = (1.0 - mask.astype(np.float64))[:, None, None, :] * -10000.0   # (B, 1, 1, T)
    for l in range(CFG["num_hidden_layers"]):
        p = "encoder.layer.%d." % l

        def dense(inp, name):
            return inp @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(t):
            return t.reshape(B, T, nh, d).transpose(0, 2, 1, 3)    # (B, nh, T, d)
        q = heads(dense(x, "attention.self.query"))
        k = heads(dense(x, "attention.self.key"))
        v = heads(dense(x, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + add_mask
        scores = scores - scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = layer_norm(x + dense(ctx, "attention.output.dense"),
                       w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        ff = dense(gelu(dense(x, "intermediate.dense")), "output.dense")
        x = layer_norm(x + ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def write_safetensors(path, tensors):
    """tensors: list of (name, numpy array); dtype from the array (float32, float16, int64)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64",
              np.dtype(np.uint16): "BF16"}    # uint16 arrays hold bfloat16 bits (numpy has no bfloat16)
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, arr in tensors:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[arr.dtype], "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, rounded to nearest even (finite inputs)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_floats(path, x):
    with open(path, "w") as f:
        for v in x.reshape(-1):
            f.write("%.9g\n" % v)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/encoder"
    rng = np.random.default_rng(20261202)
    w = make_weights(rng)
    B, T = 3, 6
    lengths = [6, 4, 2]
    ids = rng.integers(0, CFG["vocab_size"], size=(B, T))
    seg = np.zeros((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        seg[b, n // 2:n] = 1
        ids[b, n:] = 0                      # [PAD]

    with open(out + "/config.json", "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    names = sorted(w)
    extras = [("bert.pooler.dense.weight", rng.standard_normal((8, 8)).astype(np.float32)),
              ("bert.pooler.dense.bias", np.zeros(8, dtype=np.float32)),
              ("cls.predictions.bias", np.zeros(CFG["vocab_size"], dtype=np.float32)),
              ("bert.embeddings.position_ids", np.arange(CFG["max_position_embeddings"], dtype=np.int64)[None, :])]
    write_safetensors(out + "/model.safetensors", [("bert." + n, w[n]) for n in names] + extras)

    def legacy(n):
        if "LayerNorm" in n:
            return n.replace(".weight", ".gamma").replace(".bias", ".beta")
        return n
    write_safetensors(out + "/model_noprefix.safetensors", [(legacy(n), w[n]) for n in names])
    w16 = {n: v.astype(np.float16) for n, v in w.items()}
    write_safetensors(out + "/model_f16.safetensors", [("bert." + n, w16[n]) for n in names])

    wb = {n: to_bf16_bits(v) for n, v in w.items()}
    write_safetensors(out + "/model_bf16.safetensors", [(n, wb[n]) for n in names])

    with open(out + "/distilbert_config.json", "w") as f:
        json.dump(DISTIL_CFG, f, indent=2)
        f.write("\n")
    wd = dict(w)
    wd["embeddings.token_type_embeddings.weight"] = np.zeros_like(w["embeddings.token_type_embeddings.weight"])
    H, V = CFG["hidden_size"], CFG["vocab_size"]
    head = [("vocab_transform.weight", rng.standard_normal((H, H)).astype(np.float32)),
            ("vocab_transform.bias", np.zeros(H, dtype=np.float32)),
            ("vocab_layer_norm.weight", np.ones(H, dtype=np.float32)),
            ("vocab_layer_norm.bias", np.zeros(H, dtype=np.float32)),
            ("vocab_projector.bias", np.zeros(V, dtype=np.float32))]
    write_safetensors(out + "/distilbert.safetensors",
                      [("distilbert." + distil_name(n), w[n]) for n in names if "token_type" not in n] + head)

    with open(out + "/inputs.txt", "w") as f:
        f.write("%d %d\n" % (B, T))
        for a in (ids, seg, mask):
            f.write(" ".join(str(int(v)) for v in a.reshape(-1)) + "\n")
    write_floats(out + "/expected.txt", bert_forward(w, ids, seg, mask))
    write_floats(out + "/expected_f16.txt",
                 bert_forward({n: v.astype(np.float32) for n, v in w16.items()}, ids, seg, mask))
    write_floats(out + "/expected_distilbert.txt", bert_forward(wd, ids, seg, mask))
    write_floats(out + "/expected_bf16.txt",
                 bert_forward({n: from_bf16_bits(v) for n, v in wb.items()}, ids, seg, mask))


if __name__ == "__main__":
    main()
