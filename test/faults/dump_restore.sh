#!/usr/bin/env bash
# dump_restore.sh: models survive pg_dump / pg_restore, also after an
# ALTER EXTENSION UPDATE from release 0.1.0.  Several models
# (two trained versions with a rollback history, an imported copy, one owned
# by an ordinary role) are dumped with pg_dump -Fc and restored into a new
# database (CREATE EXTENSION comes with the dump), and with a plain-format
# dump piped to psql into a third.  The restored databases list the same
# cai_models rows and deployment history, export bit-identical bytes for every
# name and version, predict identically, and keep working (rollback, deploy,
# new versions numbered after the restored ones).
NAME=dump_restore
source "$(dirname "$0")/lib.sh"

cluster_start
# the source starts at release 0.1.0 and is updated before the dump: an upgraded installation dumps
# and restores like a fresh one (test/sql/upgrade.sql checks that both have the same objects)
createdb src && q -d src -c "CREATE EXTENSION cai_synergy VERSION '0.1.0'" || bail "create the source database at 0.1.0"
make_reviews src reviews 600 || bail "create training data"
q -d src >/dev/null 2>&1 <<'SQL' || bail "create role alice"
CREATE ROLE alice LOGIN;
GRANT SELECT ON reviews TO alice;
SQL
q -d src >/dev/null <<'SQL'
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 1}');
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 2, "deploy": "always"}');
SELECT 1 FROM cai_train('sent', 'sentiment', 'reviews', options => '{"seed": 3, "deploy": "always"}');
SELECT cai_rollback('sent');                  -- back to version 2
SELECT 1 FROM cai_train('clf', 'text_classification',
  'SELECT text, CASE WHEN text LIKE ''%film%'' THEN ''film'' WHEN text LIKE ''%acting%'' THEN ''acting'' ELSE ''other'' END AS label FROM reviews',
  options => '{"seed": 4}');
SELECT cai_import('sent copy', cai_export('sent', 3));
SET ROLE alice;
SELECT 1 FROM cai_train('alice model', 'sentiment', 'reviews', options => '{"seed": 5}');
RESET ROLE;
SQL
ok $? "train, roll back, import and train as another role in the source database"
CURRENT=$(grep default_version "$FAULTS_ROOT/cai_synergy.control" | cut -d"'" -f2)
q -d src -c "ALTER EXTENSION cai_synergy UPDATE" >/dev/null
q -d src >/dev/null <<'SQL'
SELECT cai_import_vectors('dump vectors', convert_to(E'great 1 0.1\ngood 0.9 0.2\nawful -1 0.1\n', 'UTF8'), 'glove');
SELECT cai_import_vectors('dump vectors', convert_to(E'great 1 0.2\nawful -1 0.2\n', 'UTF8'), 'glove');
SQL
ok $? "two versions of a vector set in the updated source database"
VEC_SQL="SELECT string_agg(name || ' ' || version || ' ' || md5(cai_export_vectors(name, version)) || ' ' || owner, ', ' ORDER BY name, version) FROM cai_vectors"
src_vectors=$(q -d src -c "$VEC_SQL")
is "$(q -d src -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" "$CURRENT" "the source database is updated from 0.1.0 to $CURRENT"
is "$(q -d src -c "SELECT count(*) FROM cai_models")" 6 "six model versions in the source database"
is "$(q -d src -c "SELECT version FROM cai_models WHERE name = 'sent' AND deployed")" 2 "the rollback deployed version 2"

dump=$CAI_PGDATA/src.dump
as_pg pg_dump -Fc -d src -f "$dump" 2>"$CAI_PGDATA/dump.err" || true
[ -s "$dump" ] && [ ! -s "$CAI_PGDATA/dump.err" ]
ok $? "pg_dump -Fc without errors or warnings"
createdb dst && as_pg pg_restore -d dst --exit-on-error "$dump" 2>"$CAI_PGDATA/restore.err"
ok $? "pg_restore into a new database"
[ -s "$CAI_PGDATA/restore.err" ] && sed 's/^/# restore: /' "$CAI_PGDATA/restore.err"
createdb plain && as_pg pg_dump -d src | q -d plain >/dev/null 2>"$CAI_PGDATA/plain.err"
ok $? "plain pg_dump piped to psql into another database"
[ -s "$CAI_PGDATA/plain.err" ] && sed 's/^/# plain: /' "$CAI_PGDATA/plain.err"

MODELS_SQL="SELECT name, version, task, size, labels, metrics, deployed, created_at, owner FROM cai_model_details ORDER BY name, version"
HISTORY_SQL="SELECT id, name, version, deployed_at, rolled_back FROM cai_deployments ORDER BY id"
EXPORT_SQL="SELECT name || ' ' || version || ' ' || md5(cai_export(name, version)) || ' ' || octet_length(cai_export(name, version)) FROM cai_models ORDER BY name, version"
names=$(q -d src -c "SELECT DISTINCT name FROM cai_models ORDER BY 1")
src_models=$(q -d src -c "$MODELS_SQL")
src_history=$(q -d src -c "$HISTORY_SQL")
src_export=$(q -d src -c "$EXPORT_SQL")
declare -A src_pred
while IFS= read -r m; do
	src_pred[$m]=$(predictions "$m" -d src)
	sane_predictions "${src_pred[$m]}" || bail "source predictions of $m: ${src_pred[$m]}"
done <<<"$names"

for db in dst plain; do
	is "$(q -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy'")" "$CURRENT" "$db: the extension was created by the restore"
	is "$(q -d $db -c "$MODELS_SQL")" "$src_models" "$db: cai_model_details rows identical (name, version, task, size, labels, metrics, deployed, created_at, owner)"
	is "$(q -d $db -c "$HISTORY_SQL")" "$src_history" "$db: deployment history identical"
	is "$(q -d $db -c "$EXPORT_SQL")" "$src_export" "$db: cai_export bytes identical (md5) for every name and version"
	is "$(q -d $db -c "$VEC_SQL")" "$src_vectors" "$db: vector sets restored (versions, bytes, owner)"
	while IFS= read -r m; do
		is "$(predictions "$m" -d $db)" "${src_pred[$m]}" "$db: $m predicts identically on ${#SENTENCES[@]} sentences"
	done <<<"$names"
	is "$(q -d $db -c "SELECT count(*) || '/' || count(*) FROM cai_model_store")" "$(check_all_versions -d $db)" \
		"$db: every restored version validates and predicts"
	is "$(q -d $db -c "SELECT owner FROM cai_models WHERE name = 'alice model'")" alice "$db: alice still owns her model"
	q -d $db -c "SET ROLE alice; SELECT cai_deploy('alice model', 1)" >/dev/null
	ok $? "$db: and may deploy it as alice"
	# the restored database keeps working like the source
	is "$(q -d $db -c "SELECT cai_rollback('sent')")" "$(q -d src -c "BEGIN; SELECT cai_rollback('sent'); ROLLBACK" | head -n 1)" \
		"$db: cai_rollback follows the restored history"
	is "$(q -d $db -c "SELECT cai_deploy('sent', 3)")" 3 "$db: cai_deploy works (the history sequence was restored)"
	is "$(q -d $db -c "SELECT version FROM cai_train('sent', 'sentiment', 'reviews', options => '{\"seed\": 6}')")" 4 \
		"$db: a new training becomes version 4"
	is "$(q -d $db -c "SELECT cai_import('sent copy', cai_export('sent', 1))")" 2 "$db: a new import becomes version 2 of the copy"
done
is "$(q -d src -c "$MODELS_SQL")" "$src_models" "the source database is unchanged"
finish
