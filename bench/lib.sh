# lib.sh: the prologue the bench/*.sh scripts share (sourced, not run).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_command_line bench/x.sh VAR...   # COMMAND_LINE: the set VARs, quoted, then the script
#   bench_cd_repo                          # cd to the repository root, REPO=its path
#   DIR=$(bench_dataset x.sh sentiment/sst2 train.tsv dev.tsv test.tsv)
#   bench_results "$TMP/results.txt"       # R, emptied; put/now/elapsed/load/log; T_START
#   bench_put_machine                      # date, command, machine, git and BLAS settings into R
#   bench_start_results NAME               # TMP (/tmp/cai_NAME.*, server-readable), then the two above
#   bench_need_fasttext WHO                # exit unless fasttext is installed
#
#   peak_kb SQL                            # run SQL (PSQL); the training workers' largest VmHWM (kB) meanwhile
#   a=$(ticks); ...; steal "$a" "$(ticks)" # the hypervisor's steal share (%) of the CPU time in between
#
# Results are "key value" lines in R, read by each script's report generator.

# COMMAND_LINE: the environment variables among VARs that are set, shell-quoted, then SCRIPT
bench_command_line() {	# bench_command_line SCRIPT VAR...
	local script=$1 v
	shift
	COMMAND_LINE=""
	for v in "$@"; do
		if [ -n "${!v+x}" ]; then
			COMMAND_LINE="$COMMAND_LINE$v=$(printf '%q' "${!v}") "
		fi
	done
	COMMAND_LINE="$COMMAND_LINE$script"
}

bench_cd_repo() {
	cd "$(dirname "${BASH_SOURCE[0]}")/.."
	REPO="$(pwd)"
}

# absolute path of $CAI_DATA_DIR/SUBDIR (relative data dirs are taken from the
# repo root; default ../shared/data); exits if it or one of FILEs is missing
bench_dataset() {	# bench_dataset WHO SUBDIR FILE...
	local who=$1 sub=$2 data dir f
	shift 2
	data="${CAI_DATA_DIR:-../shared/data}"
	case "$data" in
		/*) ;;
		*) data="$REPO/$data" ;;
	esac
	dir="$(cd "$data/$sub" 2>/dev/null && pwd)" || {
		echo "$who: no $data/$sub (set CAI_DATA_DIR)" >&2
		exit 1
	}
	for f in "$@"; do
		[ -r "$dir/$f" ] || { echo "$who: cannot read $dir/$f" >&2; exit 1; }
	done
	echo "$dir"
}

bench_results() {	# bench_results FILE
	R=$1
	: > "$R"
	T_START=$(now)
}
put() { printf '%s %s\n' "$1" "$2" >> "$R"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' /; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# TMP: a new directory /tmp/cai_NAME.XXXXXX that the cluster's server can read
# (COPY FROM its files); R (TMP/results.txt) and the machine's lines in it
bench_start_results() {	# bench_start_results NAME
	TMP="$(mktemp -d "/tmp/cai_$1.XXXXXX")"
	chmod 755 "$TMP"
	bench_results "$TMP/results.txt"
	bench_put_machine
}

# exit unless fasttext (the peer of these benchmarks) is installed
bench_need_fasttext() {	# bench_need_fasttext WHO
	command -v fasttext >/dev/null || { echo "$1: fasttext is needed (apt-get install fasttext)" >&2; exit 1; }
}

bench_put_machine() {
	put date "$(date -u '+%Y-%m-%d %H:%M UTC')"
	put command "$COMMAND_LINE"
	put nproc "$(nproc)"
	put cpu "$(awk -F: '/^model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)"
	put mem_gb "$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
	put kernel "$(uname -r)"
	put git "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (working tree modified)')"
	put blas_env "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
}

# A throwaway cluster (scripts/pgcluster.sh, PGBIN honoured) with the extension,
# stopped and TMP removed on exit; PSQL runs a quiet unaligned psql.
bench_cluster_start() {
	log "starting a throwaway cluster"
	eval "$(scripts/pgcluster.sh start)"
	trap 'scripts/pgcluster.sh stop "$CAI_PGDATA"; rm -rf "$TMP"' EXIT
	export PGDATABASE=postgres
	PSQL=(psql -X -q -A -t -v ON_ERROR_STOP=1)
	"${PSQL[@]}" -c "CREATE EXTENSION cai_synergy"
}

# SST-2 (directory SST) into tables PREFIXtrain, PREFIXdev, PREFIXtest (label text, sentence text).
bench_load_sst() {	# bench_load_sst PREFIX
	local p
	for p in train dev test; do
		echo "CREATE TABLE $1$p (label text, sentence text);"
		echo "\\copy $1$p FROM '$SST/$p.tsv' WITH (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
	done >"$TMP/sst_copies.sql"
	"${PSQL[@]}" -f "$TMP/sst_copies.sql"
}

# WikiANN-en (directory WIKI) into the tables of bench/sql/ner_setup.sql.
bench_load_wikiann() {
	local p
	for p in train dev test; do
		echo "ALTER TABLE ner_raw ALTER part SET DEFAULT '$p';"
		printf '%s\n' "\\copy ner_raw (line) FROM '$WIKI/$p.conll' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
	done >"$TMP/ner_copies.sql"
	"${PSQL[@]}" -v copies="$TMP/ner_copies.sql" -f bench/sql/ner_setup.sql >/dev/null
}

# peak_kb SQL: run SQL with PSQL; the largest VmHWM (kB) of the training workers
# of the cluster whose postmaster is POSTMASTER meanwhile (polled every 0.05 s)
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

# CPU ticks from /proc/stat: "total steal"; steal A B: the steal share (%) between two
ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9; exit }' /proc/stat; }
steal() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
	printf "%.1f", (y[2] - x[2]) * 100 / ((y[1] - x[1]) > 0 ? y[1] - x[1] : 1) }'; }
