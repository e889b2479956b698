#!/usr/bin/env bash
# upgrade_history.sh: release 0.1.0, built from this repository's own
# history, stores models; the current release then serves them.
#
# Release 0.1.0 (commit $CAI_OLD_RELEASE, default e43b0b4) is extracted with
# git archive and built with its own Makefile into a private copy of the
# PostgreSQL 15 installation (bin, lib, share: the server finds its libdir and
# sharedir relative to its binary), so its cai_synergy.so and SQL scripts are
# those of the release while the system's installation keeps the current ones.
# One cluster:
#   1. started from the private copy: CREATE EXTENSION cai_synergy (0.1.0),
#      models of every kind trained by 0.1.0's code (accurate and fast
#      sentiment versions with a rollback, a three-class classifier, an NER
#      tagger, an imported copy, a model owned by an ordinary role); their
#      exported bytes, catalog rows, answers (labels, probabilities, tags,
#      entities, evaluation reports) are recorded;
#   2. restarted from the system's binaries (the current library under the
#      0.1.0 SQL objects, as after a package upgrade): the same answers;
#   3. ALTER EXTENSION cai_synergy UPDATE: the same bytes, rows and answers,
#      every version validates, and training goes on (versions numbered after
#      the stored ones);
#   4. pg_dump -Fc / pg_restore into a new database: the same again.
# The repository must have its history (a shallow clone cannot run this test:
# git fetch --unshallow).
NAME=upgrade_history
source "$(dirname "$0")/lib.sh"

RELEASE=${CAI_OLD_RELEASE:-e43b0b4}
SYSBIN=$PGBIN
PG_CONFIG_SYS=${PG_CONFIG:-$SYSBIN/pg_config}
LIBDIR=$("$PG_CONFIG_SYS" --pkglibdir)
SHAREDIR=$("$PG_CONFIG_SYS" --sharedir)

# ---------------------------------------------------------------- 0.1.0 from history
git -C "$FAULTS_ROOT" cat-file -e "$RELEASE^{commit}" 2>/dev/null \
	|| bail "release commit $RELEASE is in the repository's history (a shallow clone? git fetch --unshallow)"
old=$(mktemp -d /tmp/cai_release.XXXXXX)
on_exit "rm -rf '$old'"
chmod 755 "$old"
mkdir -p "$old/src" "$old/root$LIBDIR" "$old/root$SHAREDIR"
git -C "$FAULTS_ROOT" archive --format=tar "$RELEASE" | tar -x -C "$old/src" || bail "extract $RELEASE"
grep -q "default_version = '0.1.0'" "$old/src/cai_synergy.control" || bail "$RELEASE is release 0.1.0"
# a private copy of the installation: bin and lib (libdir's parent) and share, without the current extension
cp -a "$(dirname "$LIBDIR")/." "$old/root$(dirname "$LIBDIR")/" || bail "copy the PostgreSQL installation"
cp -a "$SHAREDIR/." "$old/root$SHAREDIR/" || bail "copy the PostgreSQL share directory"
rm -rf "$old/root$LIBDIR/cai_synergy.so" "$old/root$LIBDIR/bitcode/cai_synergy" "$old/root$LIBDIR/bitcode/cai_synergy.index.bc" \
	"$old/root$SHAREDIR"/extension/cai_synergy*
OLDBIN=$old/root$SYSBIN
start=$(date +%s)
# compiled as the current build is (portable, no FMA contraction: see the README's Building section), so that
# "the same answers" compares the code and not two compilers' rounding; release 0.1.0 itself defaulted to
# -march=native, which lets the compiler fuse multiplies and adds
OLD_OPTFLAGS=${CAI_OLD_OPTFLAGS:--ffp-contract=off}
if ! make -C "$old/src" -j2 PG_CONFIG="$PG_CONFIG_SYS" OPTFLAGS="$OLD_OPTFLAGS" >"$old/build.log" 2>&1 \
	|| ! make -C "$old/src" install DESTDIR="$old/root" PG_CONFIG="$PG_CONFIG_SYS" OPTFLAGS="$OLD_OPTFLAGS" >>"$old/build.log" 2>&1; then
	tail -n 30 "$old/build.log"
	bail "build and install release $RELEASE into the private installation"
fi
diag "release $RELEASE built and installed into $old/root in $(($(date +%s) - start)) s"
[ -f "$old/root$LIBDIR/cai_synergy.so" ] && ! cmp -s "$old/root$LIBDIR/cai_synergy.so" "$LIBDIR/cai_synergy.so"
ok $? "the private installation has its own cai_synergy.so, not the current one"

# restart the cluster's server from the binaries in BIN (its libdir and sharedir come with them)
restart_with() {	# restart_with BIN
	as_pg "$SYSBIN/pg_ctl" -D "$CAI_PGDATA/data" -m fast -w stop >/dev/null \
		&& as_pg "$1/pg_ctl" -D "$CAI_PGDATA/data" -l "$CAI_PGDATA/server.log" -w -t 60 start >/dev/null
}

cluster_start
restart_with "$OLDBIN" || bail "start the cluster from the private installation"
q -c "CREATE EXTENSION cai_synergy" || bail "CREATE EXTENSION from the release's scripts"
is "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")/$(q -c "SELECT cai_version()")" \
	"0.1.0/0.1.0" "the server runs release 0.1.0 (extension version and library)"

# ---------------------------------------------------------------- models stored by 0.1.0
make_reviews postgres reviews 400 || bail "create training data"
q >/dev/null <<'SQL' || bail "create NER training data"
CREATE TABLE annotated AS
  SELECT ARRAY[(ARRAY['Alice', 'Bob', 'Carol', 'Dmitri', 'Emma'])[1 + g % 5], 'works', 'for',
               (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella'])[1 + g % 4], 'Corp', 'in',
               (ARRAY['Paris', 'Berlin', 'Lagos', 'Osaka', 'Lima', 'Quito'])[1 + g % 6], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-ORG', 'I-ORG', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 300) g;
CREATE ROLE alice LOGIN;
GRANT SELECT ON reviews TO alice;
SQL
q >/dev/null <<'SQL'
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 1, "epochs": 3}');
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 2, "architecture": "fast", "deploy": "always"}');
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 3, "architecture": "fast", "deploy": "always"}');
SELECT cai_rollback('sent');
SELECT 1 FROM cai_train('clf', 'text_classification',
  'SELECT text, CASE WHEN text LIKE ''%film%'' THEN ''film'' WHEN text LIKE ''%acting%'' THEN ''acting'' ELSE ''other'' END AS label FROM reviews',
  options => '{"seed": 4, "architecture": "fast"}');
SELECT 1 FROM cai_train('ner', 'ner', 'annotated', 'tokens', 'tags', '{"seed": 5, "epochs": 3}');
SELECT cai_import('sent copy', cai_export('sent', 1));
SET ROLE alice;
SELECT 1 FROM cai_train('alice model', 'sentiment', 'reviews', options => '{"seed": 6, "architecture": "fast"}');
RESET ROLE;
SQL
ok $? "release 0.1.0 trains, rolls back, imports, trains as another role"
is "$(q -c "SELECT string_agg(name || ' ' || version || ' ' || task || ' ' || coalesce(metrics->>'architecture', cai_model_info(name, version)->>'architecture', '?'), ', ' ORDER BY name, version) FROM cai_models")" \
	"alice model 1 text_classification fast, clf 1 text_classification fast, ner 1 ner bilstm_crf, sent 1 text_classification accurate, sent 2 text_classification fast, sent 3 text_classification fast, sent copy 1 text_classification accurate" \
	"0.1.0 stored the three architectures"

# 0.1.0's cai_models is 0.2.0's cai_model_details (cai_models became the short listing)
MODELS_SQL="SELECT name, version, task, size, labels, metrics, deployed, created_at, owner FROM cai_models ORDER BY name, version"
DETAILS_SQL=${MODELS_SQL/cai_models/cai_model_details}
HISTORY_SQL="SELECT id, name, version, deployed_at, rolled_back FROM cai_deployments ORDER BY id"
EXPORT_SQL="SELECT name || ' ' || version || ' ' || md5(cai_export(name, version)) FROM cai_models ORDER BY name, version"
CLASSIFIERS=("sent" "clf" "sent copy" "alice model")
NER_SQL=$(cat <<'SQL'
SELECT cai_tag('ner', ARRAY['Emma', 'works', 'for', 'Globex', 'Corp', 'in', 'Lima', '.'])::text;
SELECT cai_tag('ner', ARRAY['Zed', 'met', 'Initech', 'in', 'Osaka'])::text;
SELECT cai_tag_batch('ner', '[["Bob", "works", "in", "Paris"], [], ["Acme"]]')::text;
SELECT coalesce(string_agg(format('%s|%s|%s|%s|%s', entity, label, start_pos, end_pos, score), '; '), 'none')
  FROM cai_entities('ner', 'Carol works for Umbrella Corp in Berlin. Dmitri lives in Lagos, 東京.');
SELECT (SELECT cai_conlleval(tags, cai_tag('ner', tokens)) FROM annotated)::text;
SQL
)
EVAL_SQL="SELECT cai_evaluate('sent', 'reviews')::text; SELECT cai_evaluate('clf', 'SELECT text, CASE WHEN text LIKE ''%film%'' THEN ''film'' ELSE ''other'' END AS label FROM reviews')::text"

# everything the stored models answer, in one text
answers() {
	local m out=""
	for m in "${CLASSIFIERS[@]}"; do out+="$m: $(predictions "$m")"$'\n'; done
	out+="ner: $(q -c "$NER_SQL" 2>&1)"$'\n'
	out+="evaluate: $(q -c "$EVAL_SQL" 2>&1)"
	printf '%s' "$out"
}

old_models=$(q -c "$MODELS_SQL")
old_history=$(q -c "$HISTORY_SQL")
old_export=$(q -c "$EXPORT_SQL")
old_answers=$(answers)
old_ner=$(q -c "$NER_SQL" 2>&1)
declare -A old_pred
for m in "${CLASSIFIERS[@]}"; do
	old_pred[$m]=$(predictions "$m")
	sane_predictions "${old_pred[$m]}" || bail "0.1.0 predictions of $m: ${old_pred[$m]}"
done
grep -q ERROR <<<"$old_answers" && bail "0.1.0 answers: $old_answers"
grep -q 'B-PER' <<<"$old_answers" || bail "0.1.0's NER model tags no person: $old_answers"
diag "0.1.0 answers recorded: $(wc -l <<<"$old_answers") lines"

# ---------------------------------------------------------------- the current library, 0.1.0 catalog
restart_with "$SYSBIN" || bail "restart the cluster from the system's installation"
CURRENT=$(grep default_version "$FAULTS_ROOT/cai_synergy.control" | cut -d"'" -f2)
is "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")/$(q -c "SELECT cai_version()")" \
	"0.1.0/$CURRENT" "after the package upgrade: the 0.1.0 catalog with the $CURRENT library"
is "$(answers)" "$old_answers" "the $CURRENT library answers exactly as 0.1.0 did, before ALTER EXTENSION UPDATE"
is "$(q -c "$EXPORT_SQL")" "$old_export" "stored bytes unchanged (md5 of every version)"
is "$(q -c "SELECT version FROM cai_train('interim', 'sentiment', 'reviews', options => '{\"architecture\": \"fast\", \"epochs\": 2}'); SELECT cai_drop_model('interim')")" "1
1" "the $CURRENT library trains and stores under the 0.1.0 catalog (no training history there)"

# ---------------------------------------------------------------- ALTER EXTENSION UPDATE
update_out=$(q -c "ALTER EXTENSION cai_synergy UPDATE" 2>&1)
ok $? "ALTER EXTENSION cai_synergy UPDATE"
[ -n "$update_out" ] && diag "update said: $update_out"
is "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" "$CURRENT" "the extension is at $CURRENT"
is "$(q -c "$DETAILS_SQL")" "$old_models" "cai_model_details has 0.1.0's cai_models rows unchanged (name, version, task, size, labels, metrics, deployed, created_at, owner)"
is "$(q -c "SELECT string_agg(name || ' ' || version || ' ' || architecture || ' ' || coalesce((score > 0.5)::text, 'none') || ' ' || size, ', ' ORDER BY name, version) FROM cai_models")" \
	"$(q -c "SELECT string_agg(name || ' ' || version || ' ' || (cai_model_info(name, version)->>'architecture') || CASE WHEN metrics IS NULL THEN ' none ' ELSE ' true ' END || pg_size_pretty(size::bigint), ', ' ORDER BY name, version) FROM cai_model_details")" \
	"the short cai_models lists 0.1.0's versions with architecture, score (none for the import) and size"
is "$(q -c "SELECT count(*) FROM cai_training_history")" 0 "no training history for versions trained by 0.1.0"
is "$(q -c "$HISTORY_SQL")" "$old_history" "deployment history unchanged"
is "$(q -c "$EXPORT_SQL")" "$old_export" "stored bytes unchanged after the update"
is "$(answers)" "$old_answers" "every model answers exactly as under 0.1.0 (labels, probabilities, tags, entities, evaluation)"
is "$(q -c "BEGIN; SELECT count(cai_import('chk ' || name || ' ' || version, cai_export(name, version))) || '/' || count(*) FROM cai_model_store; ROLLBACK")" \
	"$(q -c "SELECT count(*) || '/' || count(*) FROM cai_model_store")" "every stored version passes the import validator (structure, checksum)"
is "$(q -c "SELECT count(*) FROM cai_models WHERE labels_changed")" 0 "no stored version is marked as having changed labels"
q -c "SET ROLE alice; SELECT cai_deploy('alice model', 1)" >/dev/null
ok $? "alice still owns her model and may deploy it"
is "$(q -c "SELECT version FROM cai_train('sent', 'sentiment', 'reviews', options => '{\"seed\": 7, \"architecture\": \"fast\"}')")" 4 \
	"training after the update stores version 4 of a model with three 0.1.0 versions"
is "$(q -c "SELECT version FROM cai_train('ner', 'ner', 'annotated', 'tokens', 'tags', '{\"seed\": 8, \"epochs\": 2, \"deploy\": \"always\"}')")" 2 \
	"and NER version 2 after the 0.1.0 version 1"
is "$(q -c "SELECT string_agg(model || ' ' || version || ' ' || n, ', ' ORDER BY model) FROM (SELECT model, version, count(*) AS n FROM cai_training_history GROUP BY 1, 2) h")" \
	"$(q -c "SELECT string_agg(name || ' ' || version || ' ' || (metrics->>'epochs_run'), ', ' ORDER BY name) FROM cai_model_details WHERE (name, version) IN (('ner', 2), ('sent', 4))")" \
	"the versions trained after the update have their training curves (one row per epoch run)"
q -c "SELECT cai_rollback('ner')" >/dev/null
is "$(q -c "$NER_SQL" 2>&1)" "$old_ner" "rolled back to the 0.1.0 NER version, it answers as before"

# ---------------------------------------------------------------- dump and restore
dump=$CAI_PGDATA/upgraded.dump
as_pg pg_dump -Fc -d postgres -f "$dump" 2>"$CAI_PGDATA/dump.err"
ok $? "pg_dump -Fc of the updated database"
[ -s "$CAI_PGDATA/dump.err" ] && sed 's/^/# dump: /' "$CAI_PGDATA/dump.err"
createdb restored && as_pg pg_restore -d restored --exit-on-error "$dump" 2>"$CAI_PGDATA/restore.err"
ok $? "pg_restore into a new database"
[ -s "$CAI_PGDATA/restore.err" ] && sed 's/^/# restore: /' "$CAI_PGDATA/restore.err"
is "$(q -d restored -c "$EXPORT_SQL")" "$(q -c "$EXPORT_SQL")" "restored: identical bytes for every name and version"
q -d restored -c "SELECT cai_deploy('sent', 2)" >/dev/null	# 0.1.0's deployed version (4 may have won)
for m in "${CLASSIFIERS[@]}"; do
	is "$(predictions "$m" -d restored)" "${old_pred[$m]}" "restored: $m predicts as under 0.1.0"
done
is "$(q -d restored -c "$NER_SQL" 2>&1)" "$old_ner" "restored: the 0.1.0 NER version answers as before"

grep -E "terminated by signal|PANIC|was terminated" "$CAI_PGDATA/server.log" >/dev/null
[ $? -ne 0 ]
ok $? "no backend crashed (server log)"
finish
