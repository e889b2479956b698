#!/usr/bin/env bash
# pgcluster.sh: a throwaway PostgreSQL 15 cluster on a private socket
# directory and port, run as an unprivileged user (initdb refuses root).
#
#   eval "$(scripts/pgcluster.sh start)"   # prints PGHOST/PGPORT/PGUSER exports
#   scripts/pgcluster.sh stop "$CAI_PGDATA"
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
	port=${CAI_PGPORT:-$((20000 + RANDOM % 20000))}
	dir=$(mktemp -d /tmp/cai_pg.XXXXXX)
	chmod 755 "$dir"
	if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir"; user=postgres; else user=$(id -un); fi
	as_owner "$PGBIN/initdb" -D "$dir/data" -U "$user" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
		|| { cat "$dir/initdb.log" >&2; exit 1; }
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
max_worker_processes = 16
max_parallel_workers = 8
fsync = off
log_min_messages = warning
CONF
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
		|| { cat "$dir/server.log" >&2; exit 1; }
	echo "export PGHOST='$dir' PGPORT='$port' PGUSER='$user' CAI_PGDATA='$dir'"
	;;
stop)
	dir=${2:?usage: pgcluster.sh stop DIR}
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start | stop DIR" >&2
	exit 2
	;;
esac
