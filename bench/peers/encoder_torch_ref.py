#!/usr/bin/python3
"""A PyTorch reference for the core's BERT encoder (issue 13, "How it is checked").

Builds a BERT encoder from torch.nn modules written out here (embeddings word /
position / token type + LayerNorm; per layer query/key/value Linear, softmax
attention over the unpadded keys, output dense + LayerNorm, intermediate dense +
erf GELU, output dense + LayerNorm; post-LN, eval mode, no dropout, eps from the
config), initialises it at random from a seed, and writes to outdir:

  config.json        the checkpoint's config (Hugging Face BERT keys)
  model.safetensors  F32, "bert." prefix and BERT's tensor names
  inputs.txt         B T, then ids, segment ids and mask (B*T each), as
                     test/unit/test_encoder.c reads them
  expected.txt       (B, T, H) last hidden states, one value a line
  dout.txt           (B, T, H) the loss weights: loss = sum(hidden * dout),
                     dout zero at padded positions
  grads.txt          per tensor: a line "name numel", then numel values (the
                     gradient of the loss, autograd)
  head.txt           a random classification head on top: "K H", then W (K, H)
                     and the bias (K), F32 values
  logits.txt         the head's logits on a single-segment forward of the same
                     ids (segment ids all 0, as the core's fine-tuned models
                     run): per token at every unpadded position (B, T, K in
                     order, padded rows left out), then mean-pooled over each
                     input's unpadded positions ([CLS] and [SEP] included) (B, K),
                     then of the [CLS] position (B, K)

The weights are F32 (what the file holds); the reference computes in float64
from them, so what the C side is compared with is the exact answer for those
weights, not another float32 rounding.  LayerNorm gains and all biases are
random too (not 1 and 0), so a tensor loaded in the wrong place shows.

Run: /usr/bin/python3 bench/peers/encoder_torch_ref.py OUTDIR LAYERS HIDDEN
         [--vocab V] [--positions P] [--batch B] [--seq T] [--seed S]
"""
import argparse
import copy
import json
import os
import struct

import torch
from torch import nn
import torch.nn.functional as F


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, ids, seg):
        pos = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings(seg)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)

    def forward(self, x, mask):
        B, T, H = x.shape
        d = H // self.heads

        def split(t):  # (B, T, H) -> (B, heads, T, d)
            return t.view(B, T, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / (d ** 0.5)  # (B, heads, T, T)
        # padded keys get probability exactly 0 (every row has a real key)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        p = torch.softmax(scores, dim=-1)
        return (p @ v).transpose(1, 2).reshape(B, T, H)


class DenseLN(nn.Module):
    """BERT's SelfOutput / Output: LayerNorm(residual + dense(x))."""

    def __init__(self, n_in, h, eps):
        super().__init__()
        self.dense = nn.Linear(n_in, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(residual + self.dense(x))


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        setattr(self, "self", SelfAttention(c))
        self.output = DenseLN(c["hidden_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, mask):
        return self.output(getattr(self, "self")(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))  # exact erf form (the default)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseLN(c["intermediate_size"], c["hidden_size"], c["layer_norm_eps"])

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, ids, seg, mask):
        return self.encoder(self.embeddings(ids, seg), mask)


def init_random(model, gen):
    """BERT's normal(0, 0.02) weights; biases and LayerNorm gains/biases random around 0 and 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * r)
            elif "LayerNorm.bias" in name:
                p.copy_(0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.02 * r)
            else:
                p.copy_(0.02 * r)


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 tensor).  8-byte LE header length, JSON header, raw LE data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_values(f, t):
    for x in t.reshape(-1).tolist():
        f.write("%.9g\n" % x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("layers", type=int)
    ap.add_argument("hidden", type=int)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--positions", type=int, default=64)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--seq", type=int, default=24)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()

    cfg = {
        "model_type": "bert",
        "vocab_size": a.vocab,
        "hidden_size": a.hidden,
        "num_hidden_layers": a.layers,
        "num_attention_heads": max(2, a.hidden // 64),
        "intermediate_size": 4 * a.hidden,
        "max_position_embeddings": a.positions,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
    }
    os.makedirs(a.outdir, exist_ok=True)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(a.seed)
    model = Bert(cfg)
    init_random(model, gen)
    model.eval()

    B, T = a.batch, a.seq
    lengths = [max(2, T - (T * i) // (B + 1)) for i in range(B)]  # T, then shorter: padding
    ids = torch.randint(0, a.vocab, (B, T), generator=gen)
    seg = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
        seg[b, n // 2:n] = 1
    ids = ids.masked_fill(~mask, 0)
    dout = torch.randn(B, T, a.hidden, generator=gen, dtype=torch.float32) * mask[:, :, None]

    with open(os.path.join(a.outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(a.outdir, "model.safetensors"),
                      [("bert." + n, p) for n, p in model.named_parameters()])

    # PyTorch's own float32 gradients, to show what float32 arithmetic alone gives against float64
    model32 = copy.deepcopy(model)
    (model32(ids, seg, mask) * dout).sum().backward()
    grads32 = {n: p.grad.detach().double() for n, p in model32.named_parameters()}

    # the reference: float64 from the float32 weights
    model = model.double()
    out = model(ids, seg, mask)
    loss = (out * dout.double()).sum()
    loss.backward()

    with open(os.path.join(a.outdir, "inputs.txt"), "w") as f:
        f.write("%d %d\n" % (B, T))
        for t in (ids, seg, mask.long()):
            f.write(" ".join(str(x) for x in t.reshape(-1).tolist()) + "\n")
    with open(os.path.join(a.outdir, "expected.txt"), "w") as f:
        write_values(f, out.detach())
    with open(os.path.join(a.outdir, "dout.txt"), "w") as f:
        write_values(f, dout)
    last = cfg["num_hidden_layers"] - 1
    wanted = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.query.bias",
        "encoder.layer.0.attention.self.value.weight",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.intermediate.dense.weight",
        "encoder.layer.%d.output.dense.weight" % last,
        "encoder.layer.%d.output.LayerNorm.weight" % last,
        "encoder.layer.%d.output.LayerNorm.bias" % last,
    ]
    params = dict(model.named_parameters())
    with open(os.path.join(a.outdir, "grads.txt"), "w") as f:
        for n in wanted:
            g = params[n].grad
            f.write("%s %d\n" % (n, g.numel()))
            write_values(f, g)
            # stdout: PyTorch float32 against this float64 reference, max abs diff (not in the fixture)
            print("TORCH32 %s %.3g" % (n, (grads32[n] - g).abs().max().item()))

    # logits of a head (drawn after everything above, so the files above do not change)
    K = 5
    head_w = torch.randn(K, a.hidden, generator=gen, dtype=torch.float32) * 0.2
    head_b = torch.randn(K, generator=gen, dtype=torch.float32) * 0.2
    with torch.no_grad():
        h = model(ids, torch.zeros_like(seg), mask)
        w64, b64 = head_w.double(), head_b.double()
        tok = h @ w64.T + b64
        m = mask[:, :, None].double()
        mean = ((h * m).sum(1) / m.sum(1)) @ w64.T + b64
        cls = h[:, 0] @ w64.T + b64
    with open(os.path.join(a.outdir, "head.txt"), "w") as f:
        f.write("%d %d\n" % (K, a.hidden))
        write_values(f, head_w)
        write_values(f, head_b)
    with open(os.path.join(a.outdir, "logits.txt"), "w") as f:
        write_values(f, tok[mask])
        write_values(f, mean)
        write_values(f, cls)


if __name__ == "__main__":
    main()
