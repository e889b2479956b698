#!/usr/bin/env bash
# replica.sh: models on a streaming hot standby.  A primary and a standby made
# with pg_basebackup -R (second socket directory and port, loopback only):
# models trained, imported and deployed on the primary reach the standby by
# WAL replay; there cai_models lists them, exports are bit-identical,
# cai_predict / cai_predict_proba / cai_evaluate answer as on the primary, a
# long-lived standby session follows deployments and drops made on the
# primary, and every writing function fails with SQLSTATE 25006 (read-only).
# Finally the standby is promoted and trains.
NAME=replica
source "$(dirname "$0")/lib.sh"

cluster_start "wal_level = replica" "max_wal_senders = 4" "hot_standby = on"
P="-h $PGHOST -p $PGPORT"
q -c "CREATE EXTENSION cai_synergy" && make_reviews postgres reviews 600 || bail "set up the primary"
q >/dev/null <<'SQL' || bail "train and import on the primary"
SELECT 1 FROM cai_train('rep', 'sentiment', 'reviews', options => '{"seed": 1}');
SELECT 1 FROM cai_train('rep', 'sentiment', 'reviews', options => '{"seed": 2, "deploy": "always"}');
SELECT cai_import('rep copy', cai_export('rep', 1));
SELECT cai_import_vectors('rep vectors', convert_to(E'great 1 0.1\ngood 0.9 0.2\nawful -1 0.1\ndull -0.8 0.3\n', 'UTF8'), 'glove');
SQL
j=$(q -c "SELECT cai_train_async('rep async', 'text_classification', 'reviews', options => '{\"seed\": 3}')")
is "$(q -c "SELECT state FROM cai_wait($j)")" succeeded "an async job trained on the primary"

# the standby
sdir=$(mktemp -d /tmp/cai_pg_standby.XXXXXX)
chmod 755 "$sdir"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$sdir"
sport=$((PGPORT + 1))
on_exit "as_pg pg_ctl -D '$sdir/data' -m immediate -w stop; rm -rf '$sdir'"
as_pg pg_basebackup $P -U "$PGUSER" -D "$sdir/data" -R -X stream -c fast >"$sdir/basebackup.log" 2>&1
ok $? "pg_basebackup -R from the primary"
cat >>"$sdir/data/postgresql.conf" <<CONF
port = $sport
unix_socket_directories = '$sdir'
CONF
[ "$(id -u)" -eq 0 ] && chown postgres "$sdir/data/postgresql.conf"
as_pg pg_ctl -D "$sdir/data" -l "$sdir/server.log" -w -t 60 start >/dev/null
ok $? "the standby starts"
S="-h $sdir -p $sport"
is "$(q $S -c "SELECT pg_is_in_recovery()")" t "the standby is in recovery"
is "$(q -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" 1 "the primary streams to it"

wait_replay() {	# wait until the standby has replayed everything the primary wrote so far
	local lsn
	lsn=$(q -c "SELECT pg_current_wal_lsn()")
	wait_for 30 "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" $S
}

# a change after the base backup, so replay (not the copy) must bring it
q -c "SELECT 1 FROM cai_train('rep late', 'sentiment', 'reviews', options => '{\"seed\": 4}')" >/dev/null
wait_replay
ok $? "the standby replays up to the primary's WAL position"

MODELS_SQL="SELECT name, version, task, size, labels, metrics, deployed, created_at, owner FROM cai_model_details ORDER BY name, version"
EXPORT_SQL="SELECT name || ' ' || version || ' ' || md5(cai_export(name, version)) FROM cai_models ORDER BY name, version"
is "$(q $S -c "SELECT string_agg(name || ' v' || version, ', ' ORDER BY name, version) FROM cai_models")" \
	"rep v1, rep v2, rep async v1, rep copy v1, rep late v1" "cai_models on the standby lists every version"
is "$(q $S -c "$MODELS_SQL")" "$(q -c "$MODELS_SQL")" "cai_models rows identical on both"
is "$(q $S -c "$EXPORT_SQL")" "$(q -c "$EXPORT_SQL")" "cai_export bytes identical on both"
for m in rep 'rep copy' 'rep async' 'rep late'; do
	pp=$(predictions "$m")
	sane_predictions "$pp" || diag "primary predictions of $m: $pp"
	is "$(predictions "$m" $S)" "$pp" "standby predicts as the primary with $m"
done
is "$(q $S -c "SELECT cai_evaluate('rep', 'reviews')")" "$(q -c "SELECT cai_evaluate('rep', 'reviews')")" \
	"cai_evaluate on the standby equals the primary's"
is "$(q $S -c "SELECT count(*) FROM (SELECT cai_predict('rep', text) FROM reviews) s")" 600 "the standby predicts a whole table"
VEC_SQL="SELECT md5(cai_export_vectors('rep vectors')) || ' ' || (SELECT string_agg(word, ',') FROM cai_similar('rep vectors', 'great', 3)) || ' ' || cai_embed('rep vectors', 'good dull')::text"
is "$(q $S -c "$VEC_SQL")" "$(q -c "$VEC_SQL")" "a vector set replicates: the same bytes, neighbours and embeddings on the standby"

# writes on the standby: SQLSTATE 25006 with a clear message
sqlerr() {	# sqlerr SQL  -> "SQLSTATE: message" of the error (or "no error")
	local out
	out=$(psql -X -qAt $S -v VERBOSITY=verbose -c "\\set VERBOSITY verbose" -c "$1" 2>&1 >/dev/null | grep -m1 '^ERROR:')
	[ -n "$out" ] && echo "${out#ERROR:  }" || echo "no error"
}
err=$(sqlerr "SELECT * FROM cai_train('rep', 'sentiment', 'reviews')")
is "$err" "25006: cannot train a model during recovery" "cai_train on the standby fails read-only"
detail=$(psql -X -qAt $S -c "SELECT * FROM cai_train('x', 'sentiment', 'reviews')" 2>&1 | grep -E 'DETAIL|HINT' | tr '\n' ' ')
diag "cai_train on the standby: $detail"
grep -q 'standby' <<<"$detail"
ok $? "the message says it is a standby and where to train"
err=$(sqlerr "SELECT cai_train_async('rep', 'sentiment', 'reviews')")
like25006() { [[ "$1" == 25006:* ]]; }
like25006 "$err"; ok $? "cai_train_async on the standby fails read-only ($err)"
for call in "cai_import('rep', cai_export('rep', 1))" "cai_import('new', cai_export('rep', 1))" \
            "cai_deploy('rep', 1)" "cai_rollback('rep')" "cai_drop_model('rep', 1)" "cai_drop_model('rep')" \
            "cai_import_vectors('v', 'SELECT ''a''::text AS word, ARRAY[1]::real[] AS vector')" "cai_drop_vectors('rep vectors')"; do
	err=$(sqlerr "SELECT $call")
	like25006 "$err"; ok $? "$call on the standby fails read-only ($err)"
done
is "$(q $S -c "$MODELS_SQL")" "$(q -c "$MODELS_SQL")" "the refused writes changed nothing"

# a long-lived standby session follows deployments and drops replayed from the primary
v1=$(q <<'SQL'
BEGIN;
SELECT cai_deploy('rep', 1) \g /dev/null
SELECT cai_predict_proba('rep', 'truly wonderful acting 3');
ROLLBACK;
SQL
)
v2=$(q -c "SELECT cai_predict_proba('rep', 'truly wonderful acting 3')")
[ "$v1" != "$v2" ]; ok $? "versions 1 and 2 of rep answer differently ($v1 / $v2)"
session=$(q $S 2>&1 <<SQL
SELECT cai_predict_proba('rep', 'truly wonderful acting 3');
\\! psql -X -qAt $P -c "SELECT cai_deploy('rep', 1)" >/dev/null
\\! lsn=\$(psql -X -qAt $P -c "SELECT pg_current_wal_lsn()"); for i in \$(seq 100); do [ "\$(psql -X -qAt $S -c "SELECT pg_last_wal_replay_lsn() >= '\$lsn'")" = t ] && break; sleep 0.1; done
SELECT cai_predict_proba('rep', 'truly wonderful acting 3');
\\! psql -X -qAt $P -c "SELECT cai_drop_model('rep late')" >/dev/null
\\! lsn=\$(psql -X -qAt $P -c "SELECT pg_current_wal_lsn()"); for i in \$(seq 100); do [ "\$(psql -X -qAt $S -c "SELECT pg_last_wal_replay_lsn() >= '\$lsn'")" = t ] && break; sleep 0.1; done
SELECT cai_predict('rep late', 'loved it');
SQL
)
is "$(sed -n 1p <<<"$session")" "$v2" "a standby session first answers with version 2"
is "$(sed -n 2p <<<"$session")" "$v1" "the same session answers with version 1 after the primary deployed it"
is "$(sed -n 3p <<<"$session")" 'ERROR:  model "rep late" does not exist' "and knows a model dropped on the primary is gone"

# promotion: the former standby becomes writable and trains
as_pg pg_ctl -D "$sdir/data" -w promote >/dev/null
ok $? "promote the standby"
wait_for 30 "SELECT NOT pg_is_in_recovery()" $S
is "$(q $S -c "SELECT version FROM cai_train('rep', 'sentiment', 'reviews', options => '{\"seed\": 5}')")" 3 \
	"the promoted server trains version 3"
is "$(q $S -c "SELECT count(*) || '/' || count(*) FROM cai_model_store")" "$(check_all_versions $S)" \
	"every version on the promoted server validates and predicts"
start_p=$(grep -cE 'PANIC|TRAP|terminated by signal' "$CAI_PGDATA/server.log" "$sdir/server.log" | awk -F: '{s += $2} END {print s}')
is "$start_p" 0 "no crash in either server log"
finish
