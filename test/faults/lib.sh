# lib.sh: shared helpers for test/faults/*.sh (sourced, not run).
#
# Each test sets NAME, sources this file, calls cluster_start (one throwaway
# cluster from scripts/pgcluster.sh, removed by the EXIT trap), uses ok/is to
# report "ok N - ..." / "not ok N - ..." lines and ends with finish, which
# prints "NAME: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
FAULTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PATH="$PGBIN:$PATH"
export PGDATABASE=postgres
export PGCONNECT_TIMEOUT=10
unset PGSERVICE
export PGOPTIONS='-c client_min_messages=warning'
_passed=0
_failed=0
_n=0
_cleanup=()

# run a command as the cluster's OS user (the cluster refuses root)
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# EXIT-trap cleanup, run last-registered first
on_exit() { _cleanup=("$*" "${_cleanup[@]}"); }
_run_cleanup() {
	local c
	for c in "${_cleanup[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
}
trap _run_cleanup EXIT
trap 'trap - INT TERM; ok 1 "interrupted by a signal (timeout?)"; finish' INT TERM

ok() {	# ok CONDITION-EXIT-STATUS DESCRIPTION  (use: ok $? "desc" or test; ok $? ...)
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then
		_passed=$((_passed + 1)); echo "ok $_n - $2"
	else
		_failed=$((_failed + 1)); echo "not ok $_n - $2"
	fi
}

is() {	# is GOT EXPECTED DESCRIPTION
	if [ "$1" == "$2" ]; then ok 0 "$3"; else
		ok 1 "$3"; echo "#   got:      '$1'"; echo "#   expected: '$2'"
	fi
}

diag() { echo "# $*"; }

finish() {
	echo "$NAME: $_passed passed, $_failed failed"
	[ "$_failed" -eq 0 ] && [ "$_passed" -gt 0 ]
	exit $?
}

# skip the whole test ("NAME: 0 passed, 0 failed") unless the server has the module MODULE.so
require_module() {	# require_module MODULE HOW-TO-INSTALL
	local pkglib
	pkglib=$("$PGBIN/pg_config" --pkglibdir 2>/dev/null || pg_config --pkglibdir)
	[ -f "$pkglib/$1.so" ] && return 0
	echo "# SKIP: $1 is not installed ($2)"
	echo "$NAME: 0 passed, 0 failed"
	exit 0
}

bail() {	# stop the test: a setup step failed
	ok 1 "$*"
	finish
}

# psql that returns unaligned tuples only, stops on the first error
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# start a throwaway cluster; sets PGHOST PGPORT PGUSER CAI_PGDATA.
# Extra postgresql.conf lines may be given as arguments (a restart applies them).
cluster_start() {
	local exports
	exports=$("$FAULTS_ROOT/scripts/pgcluster.sh" start) || bail "start a throwaway cluster"
	eval "$exports"
	on_exit "'$FAULTS_ROOT/scripts/pgcluster.sh' stop '$CAI_PGDATA'"
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" | as_pg tee -a "$CAI_PGDATA/data/postgresql.conf" >/dev/null
		as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$CAI_PGDATA/server.log" -w -t 60 restart >/dev/null \
			|| bail "restart the cluster with settings: $*"
	fi
	diag "cluster: socket $PGHOST port $PGPORT data $CAI_PGDATA/data"
}

# wait until the server at PGHOST/PGPORT accepts connections (crash recovery done)
wait_ready() {	# wait_ready [SECONDS]
	local t=$(( ${1:-60} * 5 ))
	while [ $t -gt 0 ]; do
		if pg_isready -q && psql -X -qAt -c 'SELECT 1' >/dev/null 2>&1; then return 0; fi
		sleep 0.2; t=$((t - 1))
	done
	return 1
}

# poll SQL until it returns 't' (or time out)
wait_for() {	# wait_for SECONDS SQL [psql args]
	local t=$(( $1 * 5 )) sql=$2; shift 2
	while [ $t -gt 0 ]; do
		[ "$(psql -X -qAt "$@" -c "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.2; t=$((t - 1))
	done
	return 1
}

# generated two-class review table: make_reviews DB TABLE ROWS
make_reviews() {
	q -d "$1" <<SQL
CREATE TABLE $2 AS
  SELECT CASE WHEN g % 2 = 0
              THEN (ARRAY['a great film', 'truly wonderful acting', 'loved it', 'superb and moving', 'brilliant story'])[1 + g % 5]
              ELSE (ARRAY['a terrible film', 'truly awful acting', 'hated it', 'dull and boring', 'weak story'])[1 + g % 5] END
           || ' ' || (g % 7) AS text,
         CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, $3) g;
SQL
}

# slow three-class table (30k distinct-ish rows): make_slow DB TABLE [ROWS]
make_slow() {
	q -d "$1" <<SQL
CREATE TABLE $2 AS
  SELECT 'word' || (g % 5000) || ' other' || (g % 333) || ' more' || (g % 77) AS text, (g % 3)::text AS label
    FROM generate_series(1, ${3:-30000}) g;
SQL
}

# sentences to predict on, one a line
SENTENCES=(
	'loved it, superb' 'awful and dull' 'a great film' 'hated it' 'truly wonderful acting 3'
	'weak story 5' '' 'the the the' 'brilliant but boring' '非常好看 👍' 'x'
	"$(printf 'great %.0s' {1..200})"
)

# Every stored model version passes the full validator and loads for
# inference: each is re-imported under a scratch name (cai_import checks the
# structure and checksum) and predicted with, inside a rolled-back transaction.
# Prints "checked/total".
check_all_versions() {	# check_all_versions [psql args]
	q "$@" <<'SQL'
BEGIN;
CREATE TEMP TABLE fault_chk ON COMMIT DROP AS
  SELECT name, version, 'fault chk ' || name || ' ' || version AS chk FROM cai_model_store;
SELECT cai_import(chk, cai_export(name, version)) FROM fault_chk \g /dev/null
SELECT (SELECT count(*) FROM fault_chk c WHERE cai_predict(c.chk, 'loved it') IS NOT NULL
                                      AND cai_predict_proba(c.chk, 'awful and dull') IS NOT NULL)
       || '/' || (SELECT count(*) FROM fault_chk);
ROLLBACK;
SQL
}

# amcheck over the extension's tables and indexes: prints the number of problems
check_catalog() {	# check_catalog [psql args]
	q "$@" <<'SQL'
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT (SELECT count(*) FROM (SELECT bt_index_check(i.indexrelid, true)
                                FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                               WHERE c.relname IN ('cai_model_store', 'cai_deployments', 'cai_job_store')) s
         WHERE false)
     + (SELECT count(*) FROM verify_heapam('cai_model_store'))
     + (SELECT count(*) FROM verify_heapam('cai_deployments'))
     + (SELECT count(*) FROM verify_heapam('cai_job_store'))
     + (SELECT count(*) FROM (SELECT name FROM cai_model_store WHERE deployed GROUP BY name HAVING count(*) > 1) d);
SQL
}

# the deployed model's answers on SENTENCES (label and probabilities), one
# line per sentence, from one new session: predictions MODEL [psql args]
predictions() {
	local m=$1 s arr=""; shift
	for s in "${SENTENCES[@]}"; do arr+="${arr:+, }\$s\$$s\$s\$"; done
	q "$@" -c "SELECT cai_predict(\$m\$$m\$m\$, s) || ' ' || cai_predict_proba(\$m\$$m\$m\$, s)::text
	             FROM unnest(ARRAY[$arr]::text[]) WITH ORDINALITY AS u(s, i) ORDER BY i" 2>&1
}

# predictions gave one real answer per sentence: sane_predictions OUTPUT
sane_predictions() {
	[ "$(grep -c '^[^ ]* {"' <<<"$1")" -eq "${#SENTENCES[@]}" ] && ! grep -q ERROR <<<"$1"
}
