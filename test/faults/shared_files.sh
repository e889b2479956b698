#!/usr/bin/env bash
# shared_files.sh: damaged shared model files ($PGDATA/pg_dynshmem/cai.*)
# after a restart.  For each architecture (fast and accurate text
# classification, NER), with the server stopped, its shared file is damaged
# the ways a lost write or a stray copy damages it: the second half zeroed,
# one byte flipped in the tensors, truncated to half, replaced by another
# model's file of the same size.  After the start, predictions must equal the
# ones made from the catalog's bytes (cai.shared_cache_size = 0), a LOG line
# must name the damaged file, the file must be rewritten with the catalog's
# bytes, and the server must never restart.  Finally, a file written in the
# current lifetime is mapped without being read again (the fast first call).
NAME=shared_files
source "$(dirname "$0")/lib.sh"

cluster_start
log=$CAI_PGDATA/server.log
dyn=$CAI_PGDATA/data/pg_dynshmem
q -c "CREATE EXTENSION cai_synergy" && make_reviews postgres reviews 600 || bail "set up the database"
q <<'SQL' || bail "create the NER table"
CREATE TABLE ner_sent AS
  SELECT ARRAY[(ARRAY['John','Mary','Ahmed','Li','Olga'])[1 + g % 5], (ARRAY['Smith','Jones','Khan','Wei'])[1 + g % 4],
               'works', 'for', (ARRAY['Acme','Globex','Initech','Hooli'])[1 + g % 4], 'in', (ARRAY['Paris','Tokyo','Lima'])[1 + g % 3], '.'] AS tokens,
         ARRAY['B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 300) g;
SQL

# model name, task, source, input, label, options; the "_other" model of the
# same architecture provides the stray file of the "replace" case
declare -A TRAIN=(
	[fast]="'sentiment', 'reviews', 'text', 'label', '{\"architecture\": \"fast\", \"seed\": 1}'"
	[fast_other]="'sentiment', 'reviews', 'text', 'label', '{\"architecture\": \"fast\", \"seed\": 2}'"
	[accurate]="'sentiment', 'reviews', 'text', 'label', '{\"architecture\": \"accurate\", \"epochs\": 2, \"seed\": 1}'"
	[accurate_other]="'sentiment', 'reviews', 'text', 'label', '{\"architecture\": \"accurate\", \"epochs\": 2, \"seed\": 2}'"
	[ner]="'ner', 'ner_sent', 'tokens', 'tags', '{\"epochs\": 2, \"seed\": 1}'"
	[ner_other]="'ner', 'ner_sent', 'tokens', 'tags', '{\"epochs\": 2, \"seed\": 2}'"
)
for m in fast fast_other accurate accurate_other ner ner_other; do
	q -c "SELECT version FROM cai_train('$m', ${TRAIN[$m]})" >/dev/null || bail "train $m"
done
start_time=$(q -c "SELECT pg_postmaster_start_time()")

# answers of a model from one new session: labels and probabilities (text
# models), entities (NER); extra psql arguments (e.g. -c SET ...) go first
answers() {	# answers MODEL [SET command]
	local m=$1 set=${2:-SET application_name = shared_files}
	if [[ $m == ner* ]]; then
		q -c "$set" -c "SELECT string_agg(cai_predict('$m', s), ' | ' ORDER BY i)
		                  FROM unnest(ARRAY['Olga Khan works for Hooli in Lima .', 'Li Wei met Mary in Paris .', ''])
		                       WITH ORDINALITY u(s, i)" 2>&1
	else
		predictions "$m" -c "$set"
	fi
}

# the exported (catalog) bytes of a model's deployed version, into a file
export_bytes() {	# export_bytes MODEL FILE
	q -c "SELECT encode(cai_export('$1'), 'hex')" | xxd -r -p >"$2"
}

# the shared file (in pg_dynshmem) equal to the given bytes
shared_file_of() {	# shared_file_of BYTES-FILE
	local f
	for f in "$dyn"/cai.*; do
		case "$f" in *.tmp*) continue ;; esac
		cmp -s "$f" "$1" && { echo "$f"; return 0; }
	done
	return 1
}

server_stop() { as_pg pg_ctl -D "$CAI_PGDATA/data" -m fast -w -t 30 stop >/dev/null; }
server_start() { as_pg pg_ctl -D "$CAI_PGDATA/data" -l "$log" -w -t 60 start >/dev/null && wait_ready 30; }

# damage FILE MODE OTHER-BYTES-FILE, as the cluster's owner
damage() {
	local f=$1 mode=$2 other=$3 size
	size=$(stat -c %s "$f")
	case $mode in
	zero_half) as_pg dd if=/dev/zero of="$f" bs=1 seek=$((size / 2)) count=$((size - size / 2)) conv=notrunc status=none ;;
	flip_byte)	# one byte at three quarters of the file: inside the tensor data
		local off=$((size * 3 / 4)) b
		b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
		printf "$(printf '\\%03o' $(((b ^ 0x5a) & 255)))" | as_pg dd of="$f" bs=1 seek="$off" count=1 conv=notrunc status=none ;;
	truncate) as_pg truncate -s $((size / 2)) "$f" ;;
	replace)	# another model of the same architecture, cut or zero-padded to the same size
		as_pg cp "$other" "$f" && as_pg truncate -s "$size" "$f" ;;
	esac
}

tmp=$(mktemp -d /tmp/cai_shared.XXXXXX) && chmod 755 "$tmp"
on_exit "rm -rf '$tmp'"
for arch in fast accurate ner; do
	diag "--- $arch"
	export_bytes "$arch" "$tmp/$arch.bin"
	export_bytes "${arch}_other" "$tmp/${arch}_other.bin"
	size=$(stat -c %s "$tmp/$arch.bin")
	diag "model $arch: $size bytes; ${arch}_other: $(stat -c %s "$tmp/${arch}_other.bin") bytes"
	ref=$(answers "$arch" "SET cai.shared_cache_size = 0")
	! grep -q ERROR <<<"$ref"; ok $? "$arch: answers from the catalog's bytes"
	shared=$(answers "$arch")
	is "$shared" "$ref" "$arch: the shared copy answers like the catalog's bytes"
	for mode in zero_half flip_byte truncate replace; do
		file=$(shared_file_of "$tmp/$arch.bin") || { ok 1 "$arch/$mode: a shared file holds the model"; continue; }
		server_stop || bail "stop the server"
		damage "$file" "$mode" "$tmp/${arch}_other.bin"
		cmp -s "$file" "$tmp/$arch.bin"; [ $? -ne 0 ]; ok $? "$arch/$mode: the shared file is damaged while the server is stopped"
		lines=$(wc -l <"$log")
		server_start || bail "start the server"
		start_time=$(q -c "SELECT pg_postmaster_start_time()")
		got=$(answers "$arch")
		is "$got" "$ref" "$arch/$mode: after the restart, answers equal the catalog's bytes'"
		tail -n +"$((lines + 1))" "$log" | grep -F "removed damaged shared model file \"$file\"" | grep -q "model \"$arch\" version 1"
		ok $? "$arch/$mode: a LOG line names the damaged file, the model and its version"
		n=$(tail -n +"$((lines + 1))" "$log" | grep -cF "removed damaged shared model file")
		is "$n" 1 "$arch/$mode: the damage is logged once"
		shared_file_of "$tmp/$arch.bin" >/dev/null
		ok $? "$arch/$mode: the shared file is rewritten with the catalog's bytes"
		is "$(answers "$arch")" "$ref" "$arch/$mode: a second session maps the rewritten file and answers the same"
		is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "$arch/$mode: no crash-restart"
	done
done

# An intact file of an earlier lifetime is adopted (renamed, not rewritten),
# and a file of the current lifetime is mapped without being read again: the
# bytes a new backend reads with read() (rchar of /proc/self/io) during its
# first call stay far below the model's size.  The reading after a restart,
# when the file is compared with the catalog once, shows the measure works.
arch=ner
file=$(shared_file_of "$tmp/$arch.bin")
size=$(stat -c %s "$tmp/$arch.bin")
inode=$(stat -c %i "$file")
server_stop && server_start || bail "restart the server"
start_time=$(q -c "SELECT pg_postmaster_start_time()")
rchar_sql="SELECT (regexp_match(pg_read_file('/proc/self/io'), 'rchar: (\d+)'))[1]::int8"
first_call() {	# bytes read by the first cai_predict of a new session, and its time in ms
	q -c "SELECT cai_version()" -c "$rchar_sql" -c "SELECT extract(epoch FROM clock_timestamp())" \
	  -c "SELECT cai_predict('$arch', 'Olga Khan works in Lima .') IS NOT NULL" \
	  -c "SELECT extract(epoch FROM clock_timestamp())" -c "$rchar_sql" |
		awk 'NR==2 {r0=$1} NR==3 {t0=$1} NR==5 {t1=$1} NR==6 {printf "%d %.2f\n", $1 - r0, (t1 - t0) * 1000}'
}
read -r after_restart t_restart <<<"$(first_call)"
new=$(shared_file_of "$tmp/$arch.bin")
is "$(stat -c %i "$new")" "$inode" "an intact file of an earlier lifetime is adopted by renaming, not rewritten"
[ "$new" != "$file" ]; ok $? "the adopted file carries the current lifetime in its name"
[ "$after_restart" -ge "$size" ]; ok $? "the first call after a restart compares the file with the catalog ($after_restart bytes read, model $size)"
times=()
for i in 1 2 3 4 5; do
	read -r rchar t <<<"$(first_call)"
	[ "$rchar" -lt $((size / 4)) ]; ok $? "first call of new session $i maps the current lifetime's file without reading it ($rchar bytes read, model $size)"
	times+=("$t")
done
diag "first cai_predict of a new session: $(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p) ms median of 5 (mapped); ${t_restart} ms right after a restart (compared with the catalog)"
is "$(q -c "SELECT pg_postmaster_start_time()")" "$start_time" "no crash-restart since the last start"
grep -q "terminated by signal" "$log"; [ $? -ne 0 ]; ok $? "no backend was terminated by a signal"
finish
