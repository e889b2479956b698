#!/usr/bin/env bash
#
# scale.sh -- training memory against the number of rows, through SQL, on a
# throwaway cluster with the installed extension (issue 11's targets):
#
# 1. Text classification, fast and accurate: SST-2 training sentences
#    repeated to each size of BENCH_SIZES, three words appended to every row
#    (two from a list of 12 and the row number modulo 997) so rows differ;
#    `cai_train` (synchronous: the rows stream from the calling backend to
#    the training worker), and the worker's peak resident memory (VmHWM of
#    the worker process, sampled every 0.05 s).  The accurate model trains
#    with max_seconds BENCH_MAX_SECONDS: memory is allocated before the first
#    epoch, so the peak does not depend on how long it runs.
# 2. NER (bilstm_crf): WikiANN-en training sentences repeated likewise (the
#    last token of every 3rd sentence replaced by a row number), same
#    measure.
# 3. The fast model at the largest size trained for BENCH_EPOCHS epochs to
#    the end, against `fasttext supervised -thread 2` with the same epochs on
#    the same rows (its process's peak from /usr/bin/time): seconds and peak
#    memory side by side.
# 4. The memory the extension estimated up front for each training (the
#    refusal message with cai.training_memory set to 1 MB).
#
# Writes BENCH_OUT (bench/results-scale.md).
#
# Environment (defaults in brackets):
#   CAI_DATA_DIR       data root, relative paths are taken from the repo root [../shared/data]
#   BENCH_SIZES        row counts [100000 1000000]
#   BENCH_EPOCHS       epochs of the timed fast training and of fastText [5]
#   BENCH_MAX_SECONDS  max_seconds of the accurate and NER trainings [5]
#   BENCH_OUT          report file [bench/results-scale.md]

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/scale.sh CAI_DATA_DIR BENCH_SIZES BENCH_EPOCHS BENCH_MAX_SECONDS BENCH_OUT
bench_cd_repo
SST="$(bench_dataset scale.sh sentiment/sst2 train.tsv)"
WIKI="$(bench_dataset scale.sh ner/wikiann-en train.conll)"
read -r -a SIZES <<<"${BENCH_SIZES:-100000 1000000}"
EPOCHS="${BENCH_EPOCHS:-5}"
MAXS="${BENCH_MAX_SECONDS:-5}"
OUT="${BENCH_OUT:-bench/results-scale.md}"
TMP="$(mktemp -d /tmp/cai_scale.XXXXXX)"
chmod 755 "$TMP"
bench_results "$TMP/results.txt"
bench_put_machine
put sizes "${SIZES[*]}"
put epochs "$EPOCHS"
put max_seconds "$MAXS"

eval "$(scripts/pgcluster.sh start)"
export PGHOST PGPORT PGUSER
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"; rm -rf "$TMP"' EXIT
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
POSTMASTER=$(head -n 1 "$CAI_PGDATA/data/postmaster.pid")

# peak_kb SQL: run SQL; the largest VmHWM (kB) of this cluster's training workers meanwhile
peak_kb() {
	local p pid h peak=0
	"${PSQL[@]}" -c "$1" >"$TMP/peak.out" 2>&1 &
	p=$!
	while kill -0 "$p" 2>/dev/null; do
		for pid in $(pgrep -P "$POSTMASTER" -f "cai_synergy training" || true); do
			h=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
			if [ -n "$h" ] && [ "$h" -gt "$peak" ]; then peak=$h; fi
		done
		sleep 0.05
	done
	wait "$p" || { sed 's/^/# /' "$TMP/peak.out" >&2; return 1; }
	echo "$peak"
}
# estimate_mb TRAIN_SQL: the up-front estimate from the refusal message
estimate_mb() {
	"${PSQL[@]}" -c "SET cai.training_memory = '1MB'" -c "$1" 2>&1 \
		| sed -n 's/.*training would need \([0-9]*\) MB.*/\1/p' | head -n 1
}

# --- data ------------------------------------------------------------------------
log "load SST-2 and WikiANN (load $(load))"
cp "$SST/train.tsv" "$TMP/sst.tsv" && cp "$WIKI/train.conll" "$TMP/wiki.conll" && chmod a+r "$TMP"/*
"${PSQL[@]}" <<SQL
CREATE EXTENSION cai_synergy;
CREATE TABLE sst (n serial, label int, sentence text);
COPY sst (label, sentence) FROM '$TMP/sst.tsv' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');
CREATE TABLE raw (n bigserial, line text);
COPY raw (line) FROM '$TMP/wiki.conll' WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
CREATE TABLE wiki AS
  SELECT row_number() OVER () AS n, array_agg(split_part(line, E'\t', 1) ORDER BY r.n) AS tokens,
         array_agg(split_part(line, E'\t', 2) ORDER BY r.n) AS tags
    FROM (SELECT n, line, count(*) FILTER (WHERE coalesce(line, '') = '') OVER (ORDER BY n) AS s FROM raw) r
   WHERE coalesce(line, '') <> '' GROUP BY s;
DROP TABLE raw;
SQL
WORDS="ARRAY['alpha','beta','gamma','delta','epsilon','zeta','eta','theta','iota','kappa','lambda','mu']"
for n in "${SIZES[@]}"; do
	log "make $n rows (load $(load))"
	"${PSQL[@]}" <<SQL
CREATE TABLE sst_$n AS
  SELECT s.label, s.sentence || ' ' || ($WORDS)[1 + (g * 7) % 12] || ' ' || ($WORDS)[1 + (g * 5) % 11] || ' ' || (g % 997) AS sentence
    FROM generate_series(0, $n - 1) g JOIN sst s ON s.n = 1 + g % (SELECT count(*) FROM sst);
CREATE TABLE wiki_$n AS
  SELECT CASE WHEN g % 3 = 0 THEN w.tokens[1:cardinality(w.tokens) - 1] || (g % 9973)::text ELSE w.tokens END AS tokens, w.tags
    FROM generate_series(0, $n - 1) g JOIN wiki w ON w.n = 1 + g % (SELECT count(*) FROM wiki);
SQL
done

# --- memory per size -------------------------------------------------------------
for n in "${SIZES[@]}"; do
	fast="SELECT version FROM cai_train('fast_$n', 'sentiment', 'sst_$n', 'sentence', 'label', '{\"architecture\": \"fast\", \"epochs\": 1}')"
	acc="SELECT version FROM cai_train('acc_$n', 'sentiment', 'sst_$n', 'sentence', 'label', '{\"architecture\": \"accurate\", \"max_seconds\": $MAXS}')"
	ner="SELECT version FROM cai_train('ner_$n', 'ner', 'wiki_$n', 'tokens', 'tags', '{\"max_seconds\": $MAXS}')"
	for a in fast acc ner; do
		log "$a, $n rows (load $(load))"
		put "est.$a.$n" "$(estimate_mb "${!a}")"
		put "peak.$a.$n" "$(peak_kb "${!a}")"
	done
done

# --- the largest size to the end, against fastText -----------------------------
big=${SIZES[$((${#SIZES[@]} - 1))]}
log "fast, $big rows, $EPOCHS epochs, against fasttext -thread 2 (load $(load))"
t0=$(now)
put peak.fast_full "$(peak_kb "SELECT version FROM cai_train('fast_full', 'sentiment', 'sst_$big', 'sentence', 'label', '{\"architecture\": \"fast\", \"epochs\": $EPOCHS, \"validation_fraction\": 0}')")"
put s.fast_full "$(elapsed "$t0" "$(now)")"
"${PSQL[@]}" -At -c "COPY (SELECT '__label__' || label || ' ' || sentence FROM sst_$big) TO STDOUT" >"$TMP/ft.txt"
command -v fasttext >/dev/null || { echo "scale.sh: fasttext is not installed (apt-get install fasttext)" >&2; exit 1; }
/usr/bin/time -f "%e %M" -o "$TMP/ft.time" fasttext supervised -input "$TMP/ft.txt" -output "$TMP/ft" -epoch "$EPOCHS" \
	-wordNgrams 2 -thread 2 -verbose 0 >/dev/null 2>&1
read -r ft_s ft_kb <"$TMP/ft.time"
put s.fasttext "$ft_s"
put peak.fasttext "$ft_kb"
put load_end "$(load)"

# --- report ----------------------------------------------------------------------
/usr/bin/python3 - "$R" "$OUT" <<'PY'
import sys
kv = {}
for line in open(sys.argv[1]):
    k, _, v = line.rstrip("\n").partition(" ")
    kv[k] = v
sizes = kv["sizes"].split()
mb = lambda kb: float(kb) / 1024
out = []
w = out.append
w("# Training memory against rows")
w("")
w("Generated %s by:" % kv["date"])
w("")
w("    " + kv["command"])
w("")
w("- CPU: %s, %s vCPUs, %s GB; load average at the end: %s (2 shared cores)" % (kv["cpu"], kv["nproc"], kv["mem_gb"], kv["load_end"]))
w("- commit measured: %s" % kv["git"])
w("- rows: SST-2 training sentences (text classification) and WikiANN-en training sentences (NER) repeated, "
  "with words appended or replaced so rows differ; synchronous `cai_train`, rows streamed from the calling backend")
w("- peak: the training worker's VmHWM (resident high-water mark); estimate: what the extension computed up front "
  "(the figure it refuses by against `cai.training_memory`)")
w("")
w("| architecture | rows | worker peak, MB | estimate, MB | bytes per row |")
w("|---|---:|---:|---:|---:|")
for a, name in (("fast", "fast (1 epoch)"), ("acc", "accurate (max_seconds %s)" % kv["max_seconds"]),
                ("ner", "NER bilstm_crf (max_seconds %s)" % kv["max_seconds"])):
    for n in sizes:
        w("| %s | %s | %.0f | %s | %.0f |" % (name, format(int(n), ","), mb(kv["peak.%s.%s" % (a, n)]),
                                           kv.get("est.%s.%s" % (a, n)) or "?", float(kv["peak.%s.%s" % (a, n)]) * 1024 / int(n)))
if len(sizes) > 1:
    w("")
    lo, hi = sizes[0], sizes[-1]
    for a, name in (("fast", "fast"), ("acc", "accurate"), ("ner", "NER")):
        a_hi, a_lo = float(kv["peak.%s.%s" % (a, hi)]), float(kv["peak.%s.%s" % (a, lo)])
        w("- %s: peak at %s rows / at %s rows = %s (target for accurate and NER at 1,000,000 vs 100,000: at most 2)"
          % (name, format(int(hi), ","), format(int(lo), ","), "%.2f" % (a_hi / a_lo) if a_lo > 0 else "? (no sample)"))
w("")
w("Fast model, %s rows, %s epochs, to the end (no validation split) against `fasttext supervised -epoch %s -wordNgrams 2 -thread 2` on the same rows:"
  % (format(int(sizes[-1]), ","), kv["epochs"], kv["epochs"]))
w("")
w("| | seconds | peak memory, MB |")
w("|---|---:|---:|")
w("| cai_train (whole statement: streaming, training, storing) | %.1f | %.0f (worker) |" % (float(kv["s.fast_full"]), mb(kv["peak.fast_full"])))
w("| fastText (whole process) | %.1f | %.0f |" % (float(kv["s.fasttext"]), mb(kv["peak.fasttext"])))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
