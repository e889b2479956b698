#!/usr/bin/python3
"""PyTorch peers on SST-2 with GloVe 6B 100d: what the same vectors give
standard neural classifiers, beside cai_synergy's accurate architecture.

Models (--model):
  - bilstm: GloVe rows (fine-tuned, or --freeze), dropout 0.5, a BiLSTM with
    --hidden units per direction, max and mean pooling over time concatenated
    (the pooling of cai_synergy's accurate network), dropout 0.5, linear.
  - cnn: Kim (2014) CNN-non-static: GloVe rows fine-tuned, filters of widths
    3, 4, 5 with 100 maps each, ReLU, max over time, dropout 0.5, linear.
Both: vocabulary = the lower-cased training words plus every GloVe word (rows
of GloVe words absent from training keep their vectors: no gradient reaches
them), unknown words a zero row; Adam lr 1e-3, batch 50 of rows of similar
length (SparseAdam for the embedding rows), gradient norm of the other
weights clipped at 5, --epochs epochs, the weights of the best
dev epoch scored once on test (GLUE's 872 sentences).  Tokens: the data's
own (SST is tokenized), split on spaces, lower-cased as GloVe is.

    /usr/bin/python3 bench/peers/sst2_glove_torch.py --vectors glove.6B.100d.txt \\
        --model bilstm --seeds 1 2 3 --out bench/peers/results-sst2-glove-torch.json

--vectors: GloVe's text format (word, then the numbers, space-separated), as
scripts/glove-to-copy.js's rows with the braces and commas made spaces.
Results (per seed: best epoch, dev and test accuracy, seconds) are printed
and written to --out (JSON, appended one line per run) with the command line.
"""

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import sys
import time

import torch
import torch.nn as nn

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            label, _, text = line.rstrip("\n").partition("\t")
            rows.append((text.lower().split(), int(label)))
    return rows


def read_vectors(path, dim):
    words, vecs = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) != dim + 1:
                continue
            words.append(parts[0])
            vecs.append([float(x) for x in parts[1:]])
    return words, torch.tensor(vecs)


class BiLSTM(nn.Module):
    def __init__(self, emb, hidden):
        super().__init__()
        self.emb = emb
        self.drop = nn.Dropout(0.5)
        self.lstm = nn.LSTM(emb.embedding_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(4 * hidden, 2)

    def forward(self, x, lengths):
        h, _ = self.lstm(nn.utils.rnn.pack_padded_sequence(self.drop(self.emb(x)), lengths.cpu(),
                                                           batch_first=True, enforce_sorted=False))
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True)
        mask = (torch.arange(h.size(1))[None, :] < lengths[:, None]).unsqueeze(2)
        mx = h.masked_fill(~mask, -1e9).max(1).values
        mean = (h * mask).sum(1) / lengths[:, None]
        return self.out(self.drop(torch.cat([mx, mean], 1)))


class CNN(nn.Module):
    def __init__(self, emb):
        super().__init__()
        self.emb = emb
        self.convs = nn.ModuleList([nn.Conv1d(emb.embedding_dim, 100, w, padding=w - 1) for w in (3, 4, 5)])
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(300, 2)

    def forward(self, x, lengths):
        e = self.emb(x).transpose(1, 2)
        return self.out(self.drop(torch.cat([torch.relu(c(e)).max(2).values for c in self.convs], 1)))


def batches(rows, size, shuffle, rng):
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    if shuffle:
        rng.shuffle(groups)
    return groups


def tensorize(rows, idx, index):
    toks = [[index.get(w, 0) for w in rows[i][0]] or [0] for i in idx]
    n = max(len(t) for t in toks)
    x = torch.tensor([t + [0] * (n - len(t)) for t in toks])
    return x, torch.tensor([len(t) for t in toks]), torch.tensor([rows[i][1] for i in idx])


def accuracy(model, rows, index):
    model.eval()
    right = 0
    with torch.no_grad():
        for idx in batches(rows, 256, False, None):
            x, lengths, y = tensorize(rows, idx, index)
            right += (model(x, lengths).argmax(1) == y).sum().item()
    return 100.0 * right / len(rows)


def run(args, seed, train, dev, test, words, vecs):
    random.seed(seed)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vocab = {}
    for w in words:
        vocab.setdefault(w, len(vocab) + 1)
    for toks, _ in train:
        for w in toks:
            vocab.setdefault(w, len(vocab) + 1)
    table = torch.empty(len(vocab) + 1, vecs.size(1)).uniform_(-0.25, 0.25)
    table[0] = 0
    table[1:len(words) + 1] = vecs
    # sparse rows and SparseAdam: a step moves only the rows its batch uses
    # (cai_synergy's lazy Adam does the same), not all 400,000
    emb = nn.Embedding(len(vocab) + 1, vecs.size(1), padding_idx=0, sparse=True)
    emb.weight.data.copy_(table)
    emb.weight.requires_grad = not args.freeze
    model = BiLSTM(emb, args.hidden) if args.model == "bilstm" else CNN(emb)
    dense = [p for n, p in model.named_parameters() if not n.startswith("emb.")]
    opts = [torch.optim.Adam(dense, lr=1e-3)]
    if not args.freeze:
        opts.append(torch.optim.SparseAdam([emb.weight], lr=1e-3))
    best = (-1.0, 0, None)
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        for idx in batches(train, 50, True, rng):
            x, lengths, y = tensorize(train, idx, vocab)
            loss = nn.functional.cross_entropy(model(x, lengths), y)
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(dense, 5.0)
            for opt in opts:
                opt.step()
        d = accuracy(model, dev, vocab)
        print(f"  seed {seed} epoch {epoch}: dev {d:.2f} ({time.time() - start:.0f} s)", flush=True)
        if d > best[0]:
            best = (d, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    return {"seed": seed, "best_epoch": best[1], "dev": round(best[0], 2),
            "test": round(accuracy(model, test, vocab), 2), "seconds": round(time.time() - start, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("CAI_DATA_DIR", os.path.join(REPO_ROOT, "..", "shared", "data")))
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--model", choices=["bilstm", "cnn"], default="bilstm")
    ap.add_argument("--hidden", type=int, default=150)
    ap.add_argument("--freeze", action="store_true")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-train", type=int, default=0, help="only the first N training rows (a smoke test)")
    ap.add_argument("--out", default=os.path.join(SCRIPT_DIR, "results-sst2-glove-torch.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sst = os.path.join(args.data, "sentiment", "sst2")
    train, dev, test = (read_tsv(os.path.join(sst, p + ".tsv")) for p in ("train", "dev", "test"))
    if args.max_train:
        train = train[:args.max_train]
    words, vecs = read_vectors(args.vectors, 100)
    print(f"{len(train)} / {len(dev)} / {len(test)} rows, {len(words)} vectors", flush=True)
    runs = [run(args, s, train, dev, test, words, vecs) for s in args.seeds]
    tests = sorted(r["test"] for r in runs)
    result = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
              "command": "/usr/bin/python3 " + " ".join(shlex.quote(a) for a in sys.argv),
              "machine": f"{os.cpu_count()} CPUs, {platform.platform()}", "torch": torch.__version__,
              "model": args.model, "hidden": args.hidden if args.model == "bilstm" else None,
              "freeze": args.freeze, "epochs": args.epochs, "runs": runs,
              "test_median": tests[len(tests) // 2] if len(tests) % 2 else (tests[len(tests) // 2 - 1] + tests[len(tests) // 2]) / 2}
    print(json.dumps(result))
    with open(args.out, "a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
