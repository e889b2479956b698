#!/usr/bin/python3
"""TF-IDF + logistic regression peer baseline on SST-2 (binary sentiment).

Features: TfidfVectorizer over word 1-2 grams; tokens are the whitespace-
separated tokens of the (already tokenized, lower-cased) SST-2 text, so
punctuation and one-character tokens such as "!" or "a" are kept
(token_pattern \\S+); sublinear tf, l2 norm, min_df 1, vectorizer fitted on
train only.  Classifier: LogisticRegression (liblinear, l2), C selected on dev
accuracy over a small grid (smallest C on ties); the final model is refitted
on train with the selected C and timed.

Reports dev and test accuracy, the vectorizer fit time, the classifier fit
time of the final fit, and prediction throughput (transform + predict over
dev+test sentences repeated to --predict-lines), appends a section to
bench/peers/results-sst2.md and one JSON line to bench/peers/results-sst2.jsonl.

Run with Debian's python (/usr/bin/python3: sklearn 1.2):
    /usr/bin/python3 bench/peers/sst2_sklearn.py
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(SCRIPT_DIR))


def data_dir(arg):
    d = arg or os.environ.get("CAI_DATA_DIR") or "../shared/data"
    if not os.path.isabs(d):
        d = os.path.join(REPO_ROOT, d)
    return d


def read_tsv(path):
    labels, sents = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:2] != ["label", "sentence"]:
            sys.exit("sst2_sklearn: unexpected header in %s: %r" % (path, header))
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            label, sent = line.split("\t", 1)
            labels.append(int(label))
            sents.append(sent)
    return np.array(labels), sents


def make_vectorizer(args):
    return TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\S+",
                           lowercase=True, sublinear_tf=True, min_df=args.min_df,
                           dtype=np.float32)


def make_classifier(args, c):
    return LogisticRegression(C=c, solver="liblinear", penalty="l2",
                              max_iter=1000, random_state=args.seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="data root (default $CAI_DATA_DIR or ../shared/data, "
                    "relative to the repo root)")
    ap.add_argument("--cs", default="0.25,0.5,1,2,4,8,16,32",
                    help="comma-separated grid of C values (default %(default)s)")
    ap.add_argument("--min-df", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--predict-lines", type=int, default=1000000,
                    help="sentences for the throughput measurement (default %(default)s)")
    ap.add_argument("--out-md", default=os.path.join(SCRIPT_DIR, "results-sst2.md"))
    ap.add_argument("--out-jsonl", default=os.path.join(SCRIPT_DIR, "results-sst2.jsonl"))
    args = ap.parse_args()

    command = " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    if "CAI_DATA_DIR" in os.environ and not args.data_dir:
        command = "CAI_DATA_DIR=%s %s" % (shlex.quote(os.environ["CAI_DATA_DIR"]), command)
    sst = os.path.join(data_dir(args.data_dir), "sentiment", "sst2")
    y_train, x_train = read_tsv(os.path.join(sst, "train.tsv"))
    y_dev, x_dev = read_tsv(os.path.join(sst, "dev.tsv"))
    y_test, x_test = read_tsv(os.path.join(sst, "test.tsv"))
    cs = [float(c) for c in args.cs.split(",")]
    print("# sklearn TF-IDF+LR SST-2: train=%d dev=%d test=%d, C grid %s"
          % (len(x_train), len(x_dev), len(x_test), cs))

    # Model selection: one vectorizer fit on train, C tuned on dev.
    vec = make_vectorizer(args)
    f_train = vec.fit_transform(x_train)
    f_dev = vec.transform(x_dev)
    grid = []
    best_c, best_acc = None, -1.0
    print("%-8s %-9s %-8s" % ("C", "dev_acc", "fit_s"))
    for c in cs:
        t0 = time.perf_counter()
        clf = make_classifier(args, c).fit(f_train, y_train)
        fit_s = time.perf_counter() - t0
        acc = float((clf.predict(f_dev) == y_dev).mean())
        grid.append({"C": c, "dev_acc": acc, "fit_seconds": fit_s})
        print("%-8g %-9.6f %-8.3f" % (c, acc, fit_s))
        if acc > best_acc:
            best_c, best_acc = c, acc

    # Final fit with the selected C, timed from raw text.
    t0 = time.perf_counter()
    vec = make_vectorizer(args)
    f_train = vec.fit_transform(x_train)
    t1 = time.perf_counter()
    clf = make_classifier(args, best_c).fit(f_train, y_train)
    t2 = time.perf_counter()
    vec_s, clf_s = t1 - t0, t2 - t1
    dev_acc = float((clf.predict(vec.transform(x_dev)) == y_dev).mean())
    test_acc = float((clf.predict(vec.transform(x_test)) == y_test).mean())
    print("# selected C=%g dev_acc=%.6f test_acc=%.6f; vectorizer fit %.3fs, LR fit %.3fs"
          % (best_c, dev_acc, test_acc, vec_s, clf_s))

    # Throughput: dev+test sentences repeated to --predict-lines, transformed
    # and classified in one call (single process).
    pool = x_dev + x_test
    lines = [pool[i % len(pool)] for i in range(args.predict_lines)]
    n_tokens = sum(len(s.split()) for s in lines)
    t0 = time.perf_counter()
    pred = clf.predict(vec.transform(lines))
    pred_s = time.perf_counter() - t0
    assert len(pred) == len(lines)
    sent_per_s = len(lines) / pred_s
    print("# predict: %d sentences (%d tokens) in %.3fs: %.0f sent/s"
          % (len(lines), n_tokens, pred_s, sent_per_s))

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {
        "system": "sklearn-tfidf-lr", "task": "sst2", "date": date, "command": command,
        "python": platform.python_version(), "sklearn_version": sklearn.__version__,
        "host_cpus": os.cpu_count(),
        "config": {"ngram_range": [1, 2], "token_pattern": r"\S+", "sublinear_tf": True,
                   "min_df": args.min_df, "solver": "liblinear", "penalty": "l2", "C": best_c},
        "grid": grid,
        "n_train": len(x_train), "n_dev": len(x_dev), "n_test": len(x_test),
        "n_features": len(vec.vocabulary_),
        "dev_acc": dev_acc, "test_acc": test_acc,
        "vectorizer_fit_seconds": round(vec_s, 3), "classifier_fit_seconds": round(clf_s, 3),
        "train_seconds": round(vec_s + clf_s, 3),
        "predict_sentences": len(lines), "predict_tokens": n_tokens,
        "predict_seconds": round(pred_s, 3), "predict_sentences_per_s": round(sent_per_s),
    }
    line = json.dumps(result)
    with open(args.out_md, "a", encoding="utf-8") as f:
        f.write("\n## sklearn TF-IDF + LogisticRegression SST-2 -- %s\n\n" % date)
        f.write("Command: `%s`\n\n" % command)
        f.write("sklearn %s, python %s, %d CPUs. train=%d dev=%d test=%d, %d features.\n\n"
                % (sklearn.__version__, platform.python_version(), os.cpu_count(),
                   len(x_train), len(x_dev), len(x_test), len(vec.vocabulary_)))
        f.write("| C | dev acc | LR fit s |\n|---|---|---|\n")
        for g in grid:
            f.write("| %g | %.6f | %.3f |\n" % (g["C"], g["dev_acc"], g["fit_seconds"]))
        f.write("\nSelected (best dev): C=%g. **Test accuracy %.6f**, dev %.6f; "
                "vectorizer fit %.3fs + LR fit %.3fs = **%.3fs**; predict %d sentences in %.3fs = "
                "**%.0f sent/s**.\n\n```json\n%s\n```\n"
                % (best_c, test_acc, dev_acc, vec_s, clf_s, vec_s + clf_s, len(lines),
                   pred_s, sent_per_s, line))
    with open(args.out_jsonl, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
