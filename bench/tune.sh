#!/usr/bin/env bash
# tune.sh: cai_tune against the default options of the same architecture.
#
#   bench/tune.sh                         # writes bench/results-tune.md
#
# On a throwaway cluster (scripts/pgcluster.sh, PGBIN honoured): SST-2 with
# the task's default architecture (accurate), WikiANN-en NER (bilstm_crf).
# For each: cai_train with the defaults (validation on dev), then cai_tune
# with the default search space and a time budget (validation on dev), then
# cai_evaluate of both versions on the test split, scored once; the trials
# table from cai_trials.  Load averages are recorded before and after each
# phase (the machine is shared).
#
# Environment:
#   CAI_DATA_DIR     datasets (default ../shared/data)
#   TUNE_SECONDS     the search's max_seconds [600]
#   SST2_SEARCH      extra search keys for SST-2, a JSON object merged into the search ['{"max_trials": 30}':
#                    30 trials of 1, 3 and 9 epochs fill about 10 minutes of the accurate architecture]
#   SST2_DEV_MIN_WORDS  validate SST-2 (defaults and search alike) on the dev rows of at least this many words
#                    [0: every dev row; the dev rows are mostly short phrases, the test rows whole sentences]
#   SST2_HELDOUT     instead of dev, validate SST-2 on this many whole training sentences (at least 15 words,
#                    contained in no other training row) held out of training, with every training row they
#                    contain removed from training too [0: validate on dev].  SST-2's training rows are phrases
#                    of the same sentences, and 74% of the dev rows of 10 words or more stand verbatim inside
#                    a training row, so dev rewards memorising them; the held-out sentences do not.
#   SEED             the seed of the defaults' training and of the search (a "seed" in SST2_SEARCH/NER_SEARCH wins) [42]
#   NER_SEARCH       the same for WikiANN ['{}': the default 20 trials of 2, 6 and 18 epochs]
#   BENCH_PARTS      "sst2 ner" [both]
#   RESULTS          output file [bench/results-tune.md]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/tune.sh SEED TUNE_SECONDS SST2_SEARCH SST2_DEV_MIN_WORDS SST2_HELDOUT NER_SEARCH BENCH_PARTS CAI_DATA_DIR RESULTS
bench_cd_repo
TUNE_SECONDS=${TUNE_SECONDS:-600}
SEED=${SEED:-42}
SST2_SEARCH=${SST2_SEARCH:-'{"max_trials": 30}'}
SST2_DEV_MIN_WORDS=${SST2_DEV_MIN_WORDS:-0}
SST2_HELDOUT=${SST2_HELDOUT:-0}
if [ "$SST2_HELDOUT" -gt 0 ]; then
	SST_VALID_DESC="$SST2_HELDOUT held-out training sentences for SST-2 (at least 15 words, inside no other training row; every training row inside one of them left out of training too; table sst_valid, for the defaults and the search alike) and the dev split for WikiANN"
else
	SST_VALID_DESC="the dev split (SST-2: the dev rows of at least $SST2_DEV_MIN_WORDS words, table sst_valid, for the defaults and the search alike)"
fi
NER_SEARCH=${NER_SEARCH:-'{}'}
BENCH_PARTS=${BENCH_PARTS:-sst2 ner}
RESULTS=${RESULTS:-bench/results-tune.md}
SST="$(bench_dataset tune.sh sentiment/sst2 train.tsv dev.tsv test.tsv)"
WIKI="$(bench_dataset tune.sh ner/wikiann-en train.conll dev.conll test.conll)"
TMP=$(mktemp -d)
bench_results "$TMP/results.txt"
bench_put_machine

log "starting a throwaway cluster ..."
eval "$(scripts/pgcluster.sh start)"
trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"; rm -rf "$TMP"' EXIT
export PGDATABASE=postgres
PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
put pg_version "$("${PSQL[@]}" -c 'SHOW server_version')"
"${PSQL[@]}" -c 'CREATE EXTENSION cai_synergy'
put cai_version "$("${PSQL[@]}" -c 'SELECT cai_version()')"

# one task: defaults, then the search; $1 tag, $2 task, $3 train, $4 dev, $5 test, $6 input, $7 label, $8 test score key
run_task() {
	local tag=$1 task=$2 train=$3 dev=$4 test=$5 input=$6 label=$7 key=$8 extra=$9 search t0 t1
	log "$tag: cai_train with the defaults ..."
	put "${tag}_load_default_before" "$(load)"
	t0=$(now)
	"${PSQL[@]}" -c "SELECT 1 FROM cai_train('${tag}_default', '$task', '$train', '$input', '$label',
	                 '{\"validation_source\": \"$dev\", \"seed\": $SEED}')" > /dev/null
	t1=$(now)
	put "${tag}_load_default_after" "$(load)"
	put "${tag}_default_seconds" "$(elapsed "$t0" "$t1")"
	put "${tag}_default_dev" "$("${PSQL[@]}" -c "SELECT round(score::numeric * 100, 2) FROM cai_models WHERE name = '${tag}_default'")"
	put "${tag}_default_options" "$("${PSQL[@]}" -c "SELECT cai_model_info('${tag}_default') -> 'options'")"
	put "${tag}_default_test" "$("${PSQL[@]}" -c "SELECT round((cai_evaluate('${tag}_default', '$test', '$input', '$label') ->> '$key')::numeric * 100, 2)")"

	search=$(jq -cn --arg dev "$dev" --argjson s "$TUNE_SECONDS" --argjson seed "$SEED" --argjson extra "$extra" \
		'{"validation_source": $dev, "max_seconds": $s, "seed": $seed} + $extra')
	put "${tag}_search" "$search"
	log "$tag: cai_tune $search ..."
	put "${tag}_load_tune_before" "$(load)"
	t0=$(now)
	"${PSQL[@]}" -c "SELECT 1 FROM cai_tune('${tag}_tuned', '$task', '$train', '$input', '$label', '$search')" > /dev/null
	t1=$(now)
	put "${tag}_load_tune_after" "$(load)"
	put "${tag}_tune_seconds" "$(elapsed "$t0" "$t1")"
	put "${tag}_tuned_dev" "$("${PSQL[@]}" -c "SELECT round(score::numeric * 100, 2) FROM cai_models WHERE name = '${tag}_tuned'")"
	put "${tag}_tuned_test" "$("${PSQL[@]}" -c "SELECT round((cai_evaluate('${tag}_tuned', '$test', '$input', '$label') ->> '$key')::numeric * 100, 2)")"
	put "${tag}_tuning" "$("${PSQL[@]}" -c "SELECT (metrics -> 'tuning') - 'trials' - 'search' FROM cai_model_details WHERE name = '${tag}_tuned'")"
	put "${tag}_rungs" "$("${PSQL[@]}" -c "SELECT metrics -> 'tuning' -> 'search' -> 'rungs' FROM cai_model_details WHERE name = '${tag}_tuned'")"
	put "${tag}_space" "$("${PSQL[@]}" -c "SELECT metrics -> 'tuning' -> 'search' -> 'space' FROM cai_model_details WHERE name = '${tag}_tuned'")"
	put "${tag}_ensemble" "$("${PSQL[@]}" -c "SELECT coalesce((metrics -> 'ensemble') || jsonb_build_object('log_prob', metrics -> 'log_prob', 'first_log_prob', metrics -> 'first_log_prob'), 'null') FROM cai_model_details WHERE name = '${tag}_tuned'")"
	"${PSQL[@]}" -F '|' -c "SELECT t.trial, t.config, t.rung, t.epochs, t.epochs_run,
	        (SELECT string_agg(k || ' ' || v, ', ' ORDER BY k) FROM jsonb_each_text(t.options) e(k, v)
	          WHERE k NOT IN ('architecture', 'epochs', 'seed', 'max_seconds', 'validation_source')),
	        round(t.validation_score::numeric * 100, 2), round(t.seconds::numeric, 1), t.state,
	        CASE WHEN t.trial = (m.metrics -> 'tuning' ->> 'best_trial')::int THEN 'best' ELSE '' END
	        || CASE WHEN m.metrics -> 'ensemble' -> 'trials' @> to_jsonb(t.trial) THEN ' (in the ensemble)' ELSE '' END
	   FROM cai_trials t, cai_model_details m
	  WHERE m.name = '${tag}_tuned' AND t.tuning_id = (m.metrics -> 'tuning' ->> 'tuning_id')::bigint
	  ORDER BY t.trial" > "$TMP/${tag}_trials.txt"
}

if [[ " $BENCH_PARTS " == *" sst2 "* ]]; then
	copts="(FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
	{
		echo "CREATE TABLE sst_train (label text, sentence text); CREATE TABLE sst_dev (LIKE sst_train); CREATE TABLE sst_test (LIKE sst_train);"
		if [ "$SST2_HELDOUT" -gt 0 ]; then
			# held-out whole sentences and the training rows without them (and without their phrases)
			/usr/bin/python3 - "$SST/train.tsv" "$SST2_HELDOUT" "$TMP" <<'PY'
import random, sys
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, encoding="utf-8") as f:
    header, rows = f.readline(), [line.rstrip("\n").split("\t", 1) for line in f]
everything = "\n".join(" " + s.strip() + " " for _, s in rows)
random.seed(42)
held = []
for i in random.sample([i for i, (_, s) in enumerate(rows) if len(s.split()) >= 15], 3 * n):
    if everything.count(" " + rows[i][1].strip() + " ") == 1:	# no other row contains it
        held.append(i)
        if len(held) == n:
            break
held_text = "\n".join(" " + rows[i][1].strip() + " " for i in held)
keep = [r for i, r in enumerate(rows) if " " + r[1].strip() + " " not in held_text]
for name, part in (("train", keep), ("valid", [rows[i] for i in held])):
    with open(f"{out}/sst_{name}.tsv", "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(y + "\t" + s + "\n" for y, s in part)
PY
			echo "\\copy sst_train FROM '$TMP/sst_train.tsv' WITH $copts"
			echo "CREATE TABLE sst_valid (LIKE sst_train);"
			echo "\\copy sst_valid FROM '$TMP/sst_valid.tsv' WITH $copts"
			for f in dev test; do echo "\\copy sst_$f FROM '${SST//\'/\'\'}/$f.tsv' WITH $copts"; done
		else
			for f in train dev test; do echo "\\copy sst_$f FROM '${SST//\'/\'\'}/$f.tsv' WITH $copts"; done
			echo "CREATE TABLE sst_valid AS SELECT * FROM sst_dev WHERE array_length(regexp_split_to_array(btrim(sentence), '\\s+'), 1) >= $SST2_DEV_MIN_WORDS;"
		fi
		echo "VACUUM ANALYZE sst_train, sst_dev, sst_valid, sst_test;"
	} > "$TMP/sst.sql"
	"${PSQL[@]}" -f "$TMP/sst.sql"
	put sst2_rows "$("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM sst_train) || ' / ' || (SELECT count(*) FROM sst_valid) || ' / ' || (SELECT count(*) FROM sst_test)")"
	run_task sst2 sentiment sst_train sst_valid sst_test sentence label accuracy "$SST2_SEARCH"
fi
if [[ " $BENCH_PARTS " == *" ner "* ]]; then
	for p in train dev test; do
		echo "ALTER TABLE ner_raw ALTER part SET DEFAULT '$p';"
		printf '%s\n' "\\copy ner_raw (line) FROM '${WIKI//\'/\'\'}/$p.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
	done > "$TMP/copies.sql"
	"${PSQL[@]}" -v copies="$TMP/copies.sql" -f bench/sql/ner_setup.sql > /dev/null
	put ner_rows "$("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM ner_train) || ' / ' || (SELECT count(*) FROM ner_dev) || ' / ' || (SELECT count(*) FROM ner_test)")"
	run_task ner ner ner_train ner_dev ner_test tokens tags f1 "$NER_SEARCH"
fi
put total_seconds "$(elapsed "$T_START" "$(now)")"
put load_end "$(load)"

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
get() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$R"; }
{
	echo "# Automatic tuning: cai_tune vs the default options"
	echo
	echo "Generated $(get date) by:"
	echo
	echo "    $(get command)"
	echo
	echo "- Machine: $(get nproc) x \`$(get cpu)\`, $(get mem_gb) GB RAM, Linux $(get kernel); **shared with other jobs** (load averages below), so seconds are indicative."
	echo "- PostgreSQL $(get pg_version) (throwaway cluster, \`fsync = off\`), cai_synergy $(get cai_version), repository at $(get git); $(get blas_env)."
	echo "- Each search: \`cai_tune\` with the architecture's default search space (\`cai_options\` ranges, configuration 0 = the defaults), \`max_trials\` as in the search column (default 20; the bracket shrinks to the time budget while its first rung runs), seed 42 unless the search says otherwise, successive halving with eta 3 on \`epochs\`, validation on $SST_VALID_DESC; the stored version is the best trial by validation score (with \`\"seeds\"\`: the mean of it and its seed trials). Both models are scored once on the test split with \`cai_evaluate\`."
	echo "- Total run time $(get total_seconds) s; load average (1/5/15 min) at the end $(get load_end)."
	echo
	echo "| task | configuration | dev | **test** | seconds | load before -> after |"
	echo "|---|---|---:|---:|---:|---|"
	for tag in sst2 ner; do
		[ -n "$(get ${tag}_default_test)" ] || continue
		if [ $tag = sst2 ]; then what="SST-2 accuracy (%), accurate"; else what="WikiANN-en entity F1 (%), bilstm_crf"; fi
		echo "| $what | defaults (\`cai_train\`, \`{\"validation_source\": ...}\`) | $(get ${tag}_default_dev) | **$(get ${tag}_default_test)** | $(get ${tag}_default_seconds) | $(get ${tag}_load_default_before) -> $(get ${tag}_load_default_after) |"
		echo "| $what | \`cai_tune\`, \`$(get ${tag}_search)\` | $(get ${tag}_tuned_dev) | **$(get ${tag}_tuned_test)** | $(get ${tag}_tune_seconds) | $(get ${tag}_load_tune_before) -> $(get ${tag}_load_tune_after) |"
	done
	for tag in sst2 ner; do
		[ -f "$TMP/${tag}_trials.txt" ] || continue
		echo
		if [ $tag = sst2 ]; then echo "## SST-2 trials ($(get sst2_rows) train / validation / test rows)"; else echo "## WikiANN-en trials ($(get ner_rows) train / dev / test sentences)"; fi
		echo
		echo "- Search result: \`$(get ${tag}_tuning)\`"
		echo "- Rungs as run (configurations and epochs): \`$(get ${tag}_rungs)\`; space: \`$(get ${tag}_space)\`"
		[ "$(get ${tag}_ensemble)" != null ] && [ -n "$(get ${tag}_ensemble)" ] && \
			echo "- Stored an ensemble of trials (search key \"ensemble\", or \"seeds\": see its rule): \`$(get ${tag}_ensemble)\`"
		echo "- Defaults: \`$(get ${tag}_default_options)\`"
		echo
		echo "| trial | config | rung | epochs | epochs run | searched options | dev | seconds | state | |"
		echo "|---:|---:|---:|---:|---:|---|---:|---:|---|---|"
		awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$TMP/${tag}_trials.txt"
	done
	echo
	echo "dev = the validation score of the best epoch (accuracy or entity F1, %); seconds = the trial's wall time in the worker (its job's started_at to finished_at); epochs run = the last epoch reached (patience may stop earlier; the trainer keeps the best epoch); a trial cut by the time budget keeps its best epoch so far."
} > "$RESULTS"
log "wrote $RESULTS"
