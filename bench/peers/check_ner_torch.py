#!/usr/bin/python3
"""Self-check of ner_torch.py: the batched CRF (log partition, gold score,
Viterbi) against brute-force enumeration, and the conlleval chunk rules.
Run: /usr/bin/python3 bench/peers/check_ner_torch.py  (about a second)."""

import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ner_torch as M  # noqa: E402

torch.manual_seed(0)
K, B, T = 3, 4, 4
crf = M.CRF(K)
emit = torch.randn(B, T, K)
lengths = torch.tensor([4, 1, 3, 2])
mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
def score(e, y):
    s = crf.start[y[0]] + e[0, y[0]]
    for t in range(1, len(y)):
        s = s + crf.trans[y[t-1], y[t]] + e[t, y[t]]
    return s + crf.end[y[-1]]
logZ = crf.log_partition(emit, mask)
vit = crf.viterbi(emit, mask, lengths)
tags = torch.randint(0, K, (B, T))
gs = crf.gold_score(emit, tags, mask, lengths)
for b in range(B):
    n = int(lengths[b])
    allp = list(itertools.product(range(K), repeat=n))
    sc = torch.stack([score(emit[b], y) for y in allp])
    assert torch.allclose(logZ[b], torch.logsumexp(sc, 0), atol=1e-5), b
    assert list(allp[int(sc.argmax())]) == vit[b], (b, vit[b])
    assert torch.allclose(gs[b], score(emit[b], tags[b, :n].tolist()), atol=1e-5)
print("crf ok")
c = M.chunks
assert c(["B-PER","I-PER","O","I-LOC","I-LOC","B-LOC","I-ORG"]) == {(0,2,"PER"),(3,5,"LOC"),(5,6,"LOC"),(6,7,"ORG")}
assert c(["I-PER","B-PER","I-PER"]) == {(0,1,"PER"),(1,3,"PER")}
assert c(["O","O"]) == set()
r = M.entity_prf([["B-PER","I-PER","O","B-LOC"]], [["B-PER","O","O","B-LOC"]])
assert (r["gold"], r["pred"], r["correct"]) == (2, 2, 1), r
print("chunks ok")
