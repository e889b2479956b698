#!/usr/bin/python3
"""PyTorch reference for bench/transformer.sh: a BERT encoder (post-LN, erf GELU,
padding mask, dropout 0.1, as src/core/encoder.c) with random weights, timed
for inference (forward, no grad, eval mode) and one training step (forward with
dropout, backward of sum(out * dout), AdamW over every parameter).

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/peers/transformer_torch.py \
        --layers 12 --hidden 768 --heads 12 --inter 3072 --batch 8 --seq 128 --threads 1 --reps 3

Prints the median times and a line "RESULT torch forward_s train_s".
Debian's python3-torch (apt-get install python3-torch); not needed by the tests.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F


class Encoder(torch.nn.Module):
    def __init__(self, vocab, hidden, layers, heads, inter, max_pos=512, types=2, p=0.1):
        super().__init__()
        self.heads, self.p = heads, p
        self.word = torch.nn.Embedding(vocab, hidden)
        self.pos = torch.nn.Embedding(max_pos, hidden)
        self.seg = torch.nn.Embedding(types, hidden)
        self.emb_ln = torch.nn.LayerNorm(hidden, eps=1e-12)
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            m = torch.nn.Module()
            m.q, m.k, m.v, m.o = (torch.nn.Linear(hidden, hidden) for _ in range(4))
            m.ln1 = torch.nn.LayerNorm(hidden, eps=1e-12)
            m.ff1 = torch.nn.Linear(hidden, inter)
            m.ff2 = torch.nn.Linear(inter, hidden)
            m.ln2 = torch.nn.LayerNorm(hidden, eps=1e-12)
            self.layers.append(m)
        for prm in self.parameters():
            torch.nn.init.normal_(prm, std=0.02)

    def forward(self, ids, mask):
        B, T = ids.shape
        H = self.word.embedding_dim
        d = H // self.heads
        pos = torch.arange(T).unsqueeze(0)
        x = self.word(ids) + self.pos(pos) + self.seg(torch.zeros_like(ids))
        x = F.dropout(self.emb_ln(x), self.p, self.training)
        bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for m in self.layers:
            def split(t):
                return t.view(B, T, self.heads, d).transpose(1, 2)
            q, k, v = split(m.q(x)), split(m.k(x)), split(m.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
            att = F.dropout(att, self.p, self.training)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, H)
            x = m.ln1(x + F.dropout(m.o(ctx), self.p, self.training))
            h = m.ff2(F.gelu(m.ff1(x)))
            x = m.ln2(x + F.dropout(h, self.p, self.training))
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--inter", type=int, default=3072)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Encoder(a.vocab, a.hidden, a.layers, a.heads, a.inter)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    # a few padded positions per sequence, as bench/encoder_bench.c
    mask = torch.tensor([[1 if t < a.seq - b % 8 else 0 for t in range(a.seq)] for b in range(a.batch)])
    dout = torch.randn(a.batch, a.seq, a.hidden) * 1e-3
    tf, tb = [], []
    for _ in range(a.reps + 1):  # the first round warms up (allocations, thread pools)
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            model(ids, mask)
        tf.append(time.perf_counter() - t0)
        model.train()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(ids, mask).backward(dout)
        opt.step()
        tb.append(time.perf_counter() - t0)
    f, b = statistics.median(tf[1:]), statistics.median(tb[1:])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s): "
          f"forward {f:.3f} s ({a.batch / f:.2f} sequences/s), "
          f"training step {b:.3f} s ({a.batch / b:.2f} sequences/s), median of {a.reps}")
    print(f"RESULT torch {f:.4f} {b:.4f}")


if __name__ == "__main__":
    main()
