#!/usr/bin/python3
"""Write the expected sentence embeddings of the encoder fixture (test/fixtures/encoder/embed_expected.txt).

cai_embed(encoder, text, pooling) runs "[CLS] text [SEP]" (one segment, no
padding) through the encoder and pools the last layer: "mean" averages every
position ([CLS] and [SEP] included, as sentence-transformers does), "cls"
takes the [CLS] vector.  This script computes the same from the fixture's
weights with the independent float64 numpy forward pass of
scripts/gen_encoder_fixture.py, for a few texts whose WordPiece ids under
test/fixtures/encoder/vocab.txt are written out by hand below (uncased
vocabulary: lower-cased, accents stripped, punctuation split, "##s"
continuations, [UNK] for the rest).

Each output line: text (JSON string), TAB, pooling, TAB, the H values
separated by spaces.  test/pgtap/16_encoder.sql compares cai_embed with them.

Run: /usr/bin/python3 scripts/gen_encoder_embed_reference.py
"""
import importlib.util
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "test", "fixtures", "encoder")

# vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] the cat dog sat on mat good bad ##s . ,
CASES = [
    ("The cat sat.", [2, 5, 6, 8, 14, 3]),
    ("Cats, dogs!", [2, 6, 13, 15, 7, 13, 1, 3]),    # "!" is not in the vocabulary: [UNK]
    ("Héllo", [2, 1, 3]),                             # "hello" after accent stripping: [UNK]
    ("", [2, 3]),
    ("good", [2, 11, 3]),
    ("the cat sat on the mat", [2, 5, 6, 8, 9, 5, 10, 3]),
]


def load_fixture_module():
    spec = importlib.util.spec_from_file_location("gen_encoder_fixture", os.path.join(HERE, "gen_encoder_fixture.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_safetensors(path):
    """{name without "bert.": float32 array} of the F32 tensors of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(t["shape"])
        out[name[5:] if name.startswith("bert.") else name] = arr
    return out


def main():
    fx = load_fixture_module()
    with open(os.path.join(FIXTURE, "config.json")) as f:
        assert json.load(f) == fx.CFG, "config.json differs from gen_encoder_fixture.CFG"
    w = read_safetensors(os.path.join(FIXTURE, "model.safetensors"))
    with open(os.path.join(FIXTURE, "embed_expected.txt"), "w") as out:
        for text, ids in CASES:
            ids = np.array([ids], dtype=np.int64)
            zeros = np.zeros_like(ids)
            h = fx.bert_forward(w, ids, zeros, np.ones_like(ids))[0]    # (T, H)
            for pooling, v in (("mean", h.mean(axis=0)), ("cls", h[0])):
                out.write("%s\t%s\t%s\n" % (json.dumps(text, ensure_ascii=False), pooling,
                                           " ".join("%.9g" % x for x in v)))


if __name__ == "__main__":
    main()
