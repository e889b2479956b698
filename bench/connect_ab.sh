#!/usr/bin/env bash
# connect_ab.sh: what a new connection costs with two builds of the library,
# side by side in one run (the machine's load moves between runs).
#
#   bench/connect_ab.sh A.so B.so        ROUNDS=9 RUN_SECONDS=10 CLIENTS=16
#
# Starts a throwaway cluster, trains a small fast model, then runs ROUNDS
# rounds of pgbench -C (a new connection for every transaction), each round:
# the trivial SQL function, cai_predict with library A, cai_predict with
# library B (each copied over the installed cai_synergy.so; the installed one
# is put back at the end).  Prints the median tps and the server's CPU per
# transaction (growth of the postmaster's cutime + cstime: the backends it
# reaped) of each, and appends them with the command to
# bench/results-connect-ab.md (RESULTS=path to change, RESULTS= to skip).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# -eq 2 ] && [ -f "$1" ] && [ -f "$2" ] || { echo "usage: bench/connect_ab.sh A.so B.so" >&2; exit 2; }
bench_command_line "bench/connect_ab.sh $1 $2" ROUNDS RUN_SECONDS CLIENTS
A=$(realpath "$1"); B=$(realpath "$2")
bench_cd_repo
ROUNDS=${ROUNDS:-9}; RUN_SECONDS=${RUN_SECONDS:-10}; CLIENTS=${CLIENTS:-16}
RESULTS=${RESULTS-$REPO/bench/results-connect-ab.md}
LIB=$(pg_config --pkglibdir)/cai_synergy.so
work=$(mktemp -d)
cp "$LIB" "$work/installed.so"
eval "$(scripts/pgcluster.sh start)"
cleanup() { install -m 755 "$work/installed.so" "$LIB"; scripts/pgcluster.sh stop "$CAI_PGDATA" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
ALTER SYSTEM SET max_connections = 60;
SQL
runuser -u postgres -- "${PGBIN:-/usr/lib/postgresql/15/bin}/pg_ctl" -D "$CAI_PGDATA/data" -l "$CAI_PGDATA/server.log" restart -w >/dev/null
psql -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL'
CREATE EXTENSION cai_synergy;
CREATE TABLE reviews AS
  SELECT (CASE WHEN g % 2 = 0 THEN 'a great film, loved it' ELSE 'a dull film, hated it' END) || ' ' || (g % 7) AS text,
         CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, 2000) g;
SELECT 1 FROM cai_train('fastlive', 'sentiment', 'reviews', options => '{"architecture": "fast", "seed": 1}');
CREATE FUNCTION trivial(t text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT t';
SELECT cai_predict('fastlive', 'warm the shared copy');
SQL
words="(SELECT string_agg((ARRAY['great', 'awful', 'film', 'acting', 'loved', 'hated', 'dull', 'superb', 'story', 'the'])[1 + (hashint4(:seed + i) & 2147483647) % 10], ' ') FROM generate_series(1, :n) i) || ' ' || :seed"
printf '\\set seed random(1, 1000000000)\n\\set n random(3, 8)\nSELECT trivial(%s);\n' "$words" >"$work/t.sql"
printf '\\set seed random(1, 1000000000)\n\\set n random(3, 8)\nSELECT cai_predict('"'"'fastlive'"'"', %s);\n' "$words" >"$work/p.sql"
pm=$(head -n 1 "$CAI_PGDATA/data/postmaster.pid"); hz=$(getconf CLK_TCK)
one() {	# one SCRIPT: "tps cpu_ms" of one pgbench -C run
	local t0 t1 out n
	t0=$(awk '{print $16 + $17}' "/proc/$pm/stat")
	out=$(pgbench -n -C -f "$1" -c "$CLIENTS" -j 2 -T "$RUN_SECONDS" 2>&1)
	sleep 0.2
	t1=$(awk '{print $16 + $17}' "/proc/$pm/stat")
	n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	echo "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out") $(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$hz" 'BEGIN {printf "%.3f", (n > 0 ? d * 1000 / hz / n : 0)}')"
}
declare -a tt tc at ac bt bc
for r in $(seq "$ROUNDS"); do
	read -r x y <<<"$(one "$work/t.sql")"; tt+=("$x"); tc+=("$y")
	install -m 755 "$A" "$LIB"; read -r x y <<<"$(one "$work/p.sql")"; at+=("$x"); ac+=("$y")
	install -m 755 "$B" "$LIB"; read -r x y <<<"$(one "$work/p.sql")"; bt+=("$x"); bc+=("$y")
	echo "round $r: tps trivial ${tt[-1]} A ${at[-1]} B ${bt[-1]}; server CPU ms ${tc[-1]} ${ac[-1]} ${bc[-1]}"
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mt=$(med "${tt[@]}"); ma=$(med "${at[@]}"); mb=$(med "${bt[@]}")
ct=$(med "${tc[@]}"); ca=$(med "${ac[@]}"); cb=$(med "${bc[@]}")
report=$(cat <<EOF
## $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)

    $COMMAND_LINE

A: $(md5sum "$A" | cut -c1-12) ($1), B: $(md5sum "$B" | cut -c1-12) ($2); pgbench -n -C -c $CLIENTS -j 2 -T $RUN_SECONDS, $ROUNDS rounds, medians:

| statement | tps | ratio to trivial | server CPU ms per transaction | CPU ratio (trivial / this) |
|---|---:|---:|---:|---:|
| trivial SQL function | $mt | 1.00 | $ct | 1.00 |
| cai_predict, A | $ma | $(ratio "$ma" "$mt") | $ca | $(ratio "$ct" "$ca") |
| cai_predict, B | $mb | $(ratio "$mb" "$mt") | $cb | $(ratio "$ct" "$cb") |

Rounds, tps: trivial ${tt[*]}; A ${at[*]}; B ${bt[*]}.
EOF
)
echo "$report"
if [ -n "$RESULTS" ]; then
	[ -f "$RESULTS" ] || printf '# A new connection with two builds of the library (bench/connect_ab.sh)\n' >"$RESULTS"
	printf '\n%s\n' "$report" >>"$RESULTS"
fi
