#!/usr/bin/python3
"""Reference PyTorch BiLSTM-CRF tagger (Lample et al. 2016) on WikiANN-en NER.

Model (see bench/peers/README.md for the rationale of each choice):
  - word embedding 100, learned from scratch; vocabulary = training words after
    lower-casing and mapping every digit to 0 (Lample's "lower"/"zeros"
    preprocessing; case is still seen by the character model); index 0 = pad,
    1 = unknown; during training a word seen once in train is replaced by the
    unknown word with probability 0.5 (Lample's singleton dropout).
  - character embedding 25 and a character BiLSTM with 25 units per direction
    over the original (cased) characters; final forward and backward states
    concatenated (50).
  - dropout 0.5 on the concatenated word representation (150).
  - word BiLSTM, 100 units per direction (hidden 200 in total), as in the paper.
  - linear layer to tag scores, linear-chain CRF with start/end transitions,
    batched (vectorized) forward algorithm for the loss and batched Viterbi
    decoding.
  - loss: CRF negative log-likelihood averaged over the sentences of a batch;
    Adam lr 1e-3, gradient norm clipped at 5.0, batch 32, seeded shuffling.

Training runs --epochs epochs over train.conll and evaluates entity F1 on dev
after each epoch (conlleval counting: an entity is correct only if its type and
exact span match; I-X after O or after another type starts a chunk).  The
weights of the best dev epoch are kept and scored on test; tagging throughput
of those weights is measured on the test set batched (--eval-batch sentences
per call, 256 by default) and one sentence at a time.  Metrics go to --out
(JSON) and are printed.

    /usr/bin/python3 bench/peers/ner_torch.py --out bench/peers/results-ner-torch.json
    /usr/bin/python3 bench/peers/ner_torch.py --epochs 1 --max-sentences 2000 --out /tmp/ner.json
"""

import argparse
import copy
import datetime
import json
import os
import platform
import random
import re
import shlex
import sys
import time
from collections import Counter

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))

PAD, UNK = 0, 1
DIGITS = re.compile(r"\d")


# ---------------------------------------------------------------------------
# data

def data_dir(arg):
    d = arg or os.environ.get("CAI_DATA_DIR") or "../shared/data"
    if not os.path.isabs(d):
        d = os.path.join(REPO_ROOT, d)
    return d


def read_conll(path, limit=None):
    """List of (tokens, tags) read from `token<TAB>tag` lines, blank-line separated."""
    sents, toks, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                if toks:
                    sents.append((toks, tags))
                    toks, tags = [], []
                    if limit is not None and len(sents) >= limit:
                        return sents
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                sys.exit("ner_torch: %s:%d: expected token<TAB>tag" % (path, lineno))
            toks.append(parts[0])
            tags.append(parts[1])
    if toks and (limit is None or len(sents) < limit):
        sents.append((toks, tags))
    return sents


def norm_word(w):
    return DIGITS.sub("0", w.lower())


class Vocab:
    def __init__(self, train):
        wc = Counter(norm_word(w) for toks, _ in train for w in toks)
        self.words = ["<pad>", "<unk>"] + sorted(wc)
        self.word_id = {w: i for i, w in enumerate(self.words)}
        self.singleton = torch.zeros(len(self.words), dtype=torch.bool)
        for w, c in wc.items():
            if c == 1:
                self.singleton[self.word_id[w]] = True
        cc = Counter(ch for toks, _ in train for w in toks for ch in w)
        self.chars = ["<pad>", "<unk>"] + sorted(cc)
        self.char_id = {c: i for i, c in enumerate(self.chars)}
        self.tags = sorted({t for _, tags in train for t in tags})
        self.tag_id = {t: i for i, t in enumerate(self.tags)}

    def encode(self, toks):
        words = [self.word_id.get(norm_word(w), UNK) for w in toks]
        chars = [[self.char_id.get(c, UNK) for c in w] or [UNK] for w in toks]
        return words, chars


def make_batch(vocab, sents):
    """Tensors for a list of token lists (any order; no sorting needed)."""
    enc = [vocab.encode(toks) for toks in sents]
    lengths = torch.tensor([len(w) for w, _ in enc], dtype=torch.long)
    B, T = len(enc), int(lengths.max())
    words = torch.zeros(B, T, dtype=torch.long)
    flat_chars = []
    for b, (w, c) in enumerate(enc):
        words[b, :len(w)] = torch.tensor(w, dtype=torch.long)
        flat_chars.extend(c)
    word_lengths = torch.tensor([len(c) for c in flat_chars], dtype=torch.long)
    chars = torch.zeros(len(flat_chars), int(word_lengths.max()), dtype=torch.long)
    for i, c in enumerate(flat_chars):
        chars[i, :len(c)] = torch.tensor(c, dtype=torch.long)
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    return words, chars, word_lengths, lengths, mask


def tag_tensor(vocab, tag_lists, T):
    tags = torch.zeros(len(tag_lists), T, dtype=torch.long)
    for b, ts in enumerate(tag_lists):
        tags[b, :len(ts)] = torch.tensor([vocab.tag_id[t] for t in ts], dtype=torch.long)
    return tags


# ---------------------------------------------------------------------------
# model

class CRF(nn.Module):
    """Linear-chain CRF over (B, T, K) emission scores with a (B, T) mask whose
    true entries are a prefix of each row."""

    def __init__(self, num_tags):
        super().__init__()
        self.trans = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # (from, to)
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))

    def log_partition(self, emit, mask):
        alpha = self.start.unsqueeze(0) + emit[:, 0]                       # (B, K)
        for t in range(1, emit.size(1)):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.trans.unsqueeze(0), dim=1) + emit[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
        return torch.logsumexp(alpha + self.end.unsqueeze(0), dim=1)      # (B,)

    def gold_score(self, emit, tags, mask, lengths):
        m = mask.float()
        e = emit.gather(2, tags.unsqueeze(2)).squeeze(2)                  # (B, T)
        score = (e * m).sum(1) + self.start[tags[:, 0]]
        tr = self.trans[tags[:, :-1], tags[:, 1:]]                        # (B, T-1)
        score = score + (tr * m[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        return score + self.end[last]

    def nll(self, emit, tags, mask, lengths):
        """Mean negative log-likelihood per sentence of the batch."""
        return (self.log_partition(emit, mask) - self.gold_score(emit, tags, mask, lengths)).mean()

    def viterbi(self, emit, mask, lengths):
        B, T, K = emit.shape
        score = self.start.unsqueeze(0) + emit[:, 0]                       # (B, K)
        back = []
        for t in range(1, T):
            s, idx = (score.unsqueeze(2) + self.trans.unsqueeze(0)).max(dim=1)  # (B, K)
            m = mask[:, t].unsqueeze(1)
            score = torch.where(m, s + emit[:, t], score)
            back.append(idx)
        score = score + self.end.unsqueeze(0)
        best = score.argmax(1)                                            # (B,)
        # Walk back from each sequence's end; positions past a row's length
        # keep the tag unchanged, so the same loop serves every row.
        path = torch.empty(B, T, dtype=torch.long)
        cur = best
        for t in range(T - 1, 0, -1):
            path[:, t] = cur
            prev = back[t - 1].gather(1, cur.unsqueeze(1)).squeeze(1)
            cur = torch.where(mask[:, t], prev, cur)
        path[:, 0] = cur
        return [p[:n] for p, n in zip(path.tolist(), lengths.tolist())]


class BiLSTMCRF(nn.Module):
    def __init__(self, n_words, n_chars, n_tags, word_dim, char_dim, char_hidden,
                 word_hidden, dropout):
        super().__init__()
        self.word_emb = nn.Embedding(n_words, word_dim, padding_idx=PAD)
        self.char_emb = nn.Embedding(n_chars, char_dim, padding_idx=PAD)
        self.char_lstm = nn.LSTM(char_dim, char_hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.word_lstm = nn.LSTM(word_dim + 2 * char_hidden, word_hidden, batch_first=True,
                                 bidirectional=True)
        self.out = nn.Linear(2 * word_hidden, n_tags)
        self.crf = CRF(n_tags)

    def emissions(self, words, chars, word_lengths, lengths, mask):
        # characters: all words of the batch flattened, (N, L) -> (N, 2 * char_hidden)
        ce = self.char_emb(chars)
        packed = pack_padded_sequence(ce, word_lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.char_lstm(packed)                                 # h: (2, N, H)
        cvec = torch.cat([h[0], h[1]], dim=1)
        B, T = words.shape
        cfeat = torch.zeros(B, T, cvec.size(1))
        cfeat[mask] = cvec                                                 # row-major order matches
        x = torch.cat([self.word_emb(words), cfeat], dim=2)                # (B, T, 150)
        x = self.drop(x)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.word_lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)    # (B, T, 2 * word_hidden)
        return self.out(y)                                                 # (B, T, K)

    def loss(self, batch, tags):
        words, chars, word_lengths, lengths, mask = batch
        emit = self.emissions(words, chars, word_lengths, lengths, mask)
        return self.crf.nll(emit, tags, mask, lengths)

    def decode(self, batch):
        words, chars, word_lengths, lengths, mask = batch
        emit = self.emissions(words, chars, word_lengths, lengths, mask)
        return self.crf.viterbi(emit, mask, lengths)


# ---------------------------------------------------------------------------
# evaluation (conlleval counting)

def chunks(tags):
    """Set of (start, end_exclusive, type) for an IOB tag sequence.  Like
    conlleval: B-X starts a chunk, I-X continues only a chunk of type X (after
    O or another type it starts a new one), O ends the current chunk."""
    out, start, typ = set(), None, None
    for i, t in enumerate(list(tags) + ["O"]):
        if t == "O" or t.startswith("B-") or (t.startswith("I-") and t[2:] != typ):
            if typ is not None:
                out.add((start, i, typ))
            start, typ = (i, t[2:]) if t != "O" else (None, None)
    return out


def entity_prf(gold_seqs, pred_seqs):
    n_gold = n_pred = n_ok = 0
    for g, p in zip(gold_seqs, pred_seqs):
        gc, pc = chunks(g), chunks(p)
        n_gold += len(gc)
        n_pred += len(pc)
        n_ok += len(gc & pc)
    prec = n_ok / n_pred if n_pred else 0.0
    rec = n_ok / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "gold": n_gold, "pred": n_pred, "correct": n_ok}


def tag_sentences(model, vocab, sents, batch_size):
    """Tag lists of tokens in the given order, batch_size sentences per call."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(sents), batch_size):
            for ids in model.decode(make_batch(vocab, sents[i:i + batch_size])):
                out.append([vocab.tags[j] for j in ids])
    return out


def evaluate(model, vocab, data, batch_size):
    pred = tag_sentences(model, vocab, [toks for toks, _ in data], batch_size)
    return entity_prf([tags for _, tags in data], pred)


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="data root (default $CAI_DATA_DIR or ../shared/data, "
                    "relative to the repo root)")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--max-sentences", type=int, default=None,
                    help="use only the first N sentences of each of train/dev/test (quick trials)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--clip", type=float, default=5.0, help="gradient norm clip (0 = off)")
    ap.add_argument("--word-dim", type=int, default=100)
    ap.add_argument("--char-dim", type=int, default=25)
    ap.add_argument("--char-hidden", type=int, default=25, help="per direction")
    ap.add_argument("--word-hidden", type=int, default=100, help="per direction")
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--singleton-unk", type=float, default=0.5,
                    help="probability of replacing a train singleton by <unk> while training")
    ap.add_argument("--eval-batch", type=int, default=256,
                    help="sentences per call for dev/test evaluation and batched throughput")
    ap.add_argument("--no-single", action="store_true",
                    help="skip the one-sentence-at-a-time throughput measurement")
    ap.add_argument("--out", default=os.path.join(SCRIPT_DIR, "results-ner-torch.json"),
                    help="JSON metrics file, overwritten (default %(default)s)")
    args = ap.parse_args()

    command = " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    if "CAI_DATA_DIR" in os.environ and not args.data_dir:
        command = "CAI_DATA_DIR=%s %s" % (shlex.quote(os.environ["CAI_DATA_DIR"]), command)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    wiki = os.path.join(data_dir(args.data_dir), "ner", "wikiann-en")
    train = read_conll(os.path.join(wiki, "train.conll"), args.max_sentences)
    dev = read_conll(os.path.join(wiki, "dev.conll"), args.max_sentences)
    test = read_conll(os.path.join(wiki, "test.conll"), args.max_sentences)
    vocab = Vocab(train)
    for name, split in (("dev", dev), ("test", test)):
        unknown = {t for _, tags in split for t in tags} - set(vocab.tags)
        if unknown:
            sys.exit("ner_torch: %s has tags not in train: %s" % (name, sorted(unknown)))
    n_tok = {k: sum(len(t) for t, _ in v) for k, v in (("train", train), ("dev", dev), ("test", test))}
    print("# BiLSTM-CRF WikiANN-en: train=%d dev=%d test=%d sentences, %d words, %d chars, tags %s, "
          "threads=%d" % (len(train), len(dev), len(test), len(vocab.words), len(vocab.chars),
                          vocab.tags, args.threads))

    model = BiLSTMCRF(len(vocab.words), len(vocab.chars), len(vocab.tags), args.word_dim,
                      args.char_dim, args.char_hidden, args.word_hidden, args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    # Tensors for training batches are built each epoch (singleton dropout is
    # random); building them is part of the timed training.
    history = []
    best = None
    t_start = time.perf_counter()
    train_s = 0.0
    order = list(range(len(train)))
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        rng.shuffle(order)
        total_loss = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            batch = make_batch(vocab, [train[j][0] for j in idx])
            words = batch[0]
            if args.singleton_unk > 0:
                drop = vocab.singleton[words] & (torch.rand(words.shape) < args.singleton_unk)
                words = words.masked_fill(drop, UNK)
                batch = (words,) + batch[1:]
            tags = tag_tensor(vocab, [train[j][1] for j in idx], words.size(1))
            loss = model.loss(batch, tags)
            opt.zero_grad()
            loss.backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total_loss += loss.item() * len(idx)
        epoch_train_s = time.perf_counter() - t0
        train_s += epoch_train_s
        t1 = time.perf_counter()
        d = evaluate(model, vocab, dev, args.eval_batch)
        dev_s = time.perf_counter() - t1
        elapsed = time.perf_counter() - t_start
        rec = {"epoch": epoch, "loss_per_token": total_loss / n_tok["train"],
               "dev_precision": d["precision"], "dev_recall": d["recall"], "dev_f1": d["f1"],
               "epoch_train_seconds": round(epoch_train_s, 3), "dev_eval_seconds": round(dev_s, 3),
               "train_seconds_cumulative": round(train_s, 3), "elapsed_seconds": round(elapsed, 3)}
        history.append(rec)
        improved = best is None or d["f1"] > best["dev_f1"]
        if improved:
            best = {"epoch": epoch, "dev_f1": d["f1"], "state": copy.deepcopy(model.state_dict()),
                    "elapsed": elapsed, "train_s": train_s}
        print("epoch %2d  loss/tok %.4f  dev P %.4f R %.4f F1 %.4f%s  train %.1fs  dev %.1fs  elapsed %.1fs"
              % (epoch, rec["loss_per_token"], d["precision"], d["recall"], d["f1"],
                 " *" if improved else "  ", epoch_train_s, dev_s, elapsed), flush=True)
    total_s = time.perf_counter() - t_start

    model.load_state_dict(best["state"])
    t = evaluate(model, vocab, test, args.eval_batch)
    print("# best dev epoch %d (dev F1 %.4f): test P %.4f R %.4f F1 %.4f (%d gold, %d pred, %d correct)"
          % (best["epoch"], best["dev_f1"], t["precision"], t["recall"], t["f1"], t["gold"], t["pred"],
             t["correct"]))

    # Throughput on the test set with the best weights: end to end from token
    # lists to tag strings (encoding, network, Viterbi), in file order.
    test_sents = [toks for toks, _ in test]
    t0 = time.perf_counter()
    tag_sentences(model, vocab, test_sents, args.eval_batch)
    batched_s = time.perf_counter() - t0
    batched_tps = n_tok["test"] / batched_s
    print("# tagging, batches of %d: %d tokens in %.2fs = %.0f tokens/s"
          % (args.eval_batch, n_tok["test"], batched_s, batched_tps))
    single_s = single_tps = None
    if not args.no_single:
        t0 = time.perf_counter()
        tag_sentences(model, vocab, test_sents, 1)
        single_s = time.perf_counter() - t0
        single_tps = n_tok["test"] / single_s
        print("# tagging, one sentence at a time: %d tokens in %.2fs = %.0f tokens/s"
              % (n_tok["test"], single_s, single_tps))

    result = {
        "system": "torch-bilstm-crf", "task": "ner-wikiann-en",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command, "python": platform.python_version(), "torch_version": torch.__version__,
        "host_cpus": os.cpu_count(), "threads": args.threads,
        "config": {"word_dim": args.word_dim, "word_vocab": "train words, lower-cased, digits->0",
                   "char_dim": args.char_dim, "char_hidden_per_direction": args.char_hidden,
                   "word_hidden_per_direction": args.word_hidden, "dropout": args.dropout,
                   "singleton_unk": args.singleton_unk, "optimizer": "adam", "lr": args.lr,
                   "clip_grad_norm": args.clip, "batch": args.batch, "epochs": args.epochs,
                   "seed": args.seed, "max_sentences": args.max_sentences},
        "n_sentences": {"train": len(train), "dev": len(dev), "test": len(test)},
        "n_tokens": n_tok, "n_words": len(vocab.words), "n_chars": len(vocab.chars),
        "tags": vocab.tags, "n_params": n_params,
        "best_epoch": best["epoch"], "dev_f1": best["dev_f1"],
        "test_precision": t["precision"], "test_recall": t["recall"], "test_f1": t["f1"],
        "test_counts": {"gold": t["gold"], "pred": t["pred"], "correct": t["correct"]},
        "seconds_to_best_epoch": round(best["elapsed"], 3),
        "train_seconds_to_best_epoch": round(best["train_s"], 3),
        "total_seconds": round(total_s, 3), "train_seconds_total": round(train_s, 3),
        "throughput_batch_size": args.eval_batch,
        "tag_tokens_per_s_batched": round(batched_tps), "tag_seconds_batched": round(batched_s, 3),
        "tag_tokens_per_s_single": round(single_tps) if single_tps else None,
        "tag_seconds_single": round(single_s, 3) if single_s else None,
        "epochs": history,
    }
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in result.items() if k != "epochs"}))


if __name__ == "__main__":
    main()
