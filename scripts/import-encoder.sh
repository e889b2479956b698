#!/usr/bin/env bash
# import-encoder.sh: store a Hugging Face encoder checkpoint (BERT, DistilBERT)
# from a directory on this machine as a new version of an encoder model.
#
#   scripts/import-encoder.sh NAME DIR [psql options...]
#
# DIR holds config.json, vocab.txt and model.safetensors (and optionally
# tokenizer_config.json, whose do_lower_case chooses the tokenizer's
# lower_case option).  The files are sent from the client with psql's
# \lo_import (large objects in the importing transaction, removed before it
# commits, and gone with it if anything fails), so this works for any role
# that may call cai_import_encoder, with no file access on the server and no
# limit on the file sizes below bytea's 1 GB (see the README's limits).
# Prints the stored version.  Environment:
#   CAI_ENCODER_OPTIONS   the options object for cai_import_encoder (JSON),
#                         instead of the one derived from tokenizer_config.json
#   PSQL                  the psql to run (default: psql on PATH)
set -euo pipefail

usage() {
	echo "usage: $0 NAME DIR [psql options...]" >&2
	exit 2
}
[ $# -ge 2 ] || usage
name=$1
dir=$2
shift 2
for f in config.json vocab.txt model.safetensors; do
	if [ ! -r "$dir/$f" ]; then
		echo "$0: $dir/$f: no such readable file (a checkpoint directory holds config.json, vocab.txt and model.safetensors)" >&2
		exit 1
	fi
done
# absolute paths: psql runs from this directory too, but messages read better
dir=$(cd "$dir" && pwd)
tok="$dir/tokenizer_config.json"
[ -r "$tok" ] || tok=

# The file names reach psql as variables: a meta-command takes an unquoted
# variable's value as one argument, whatever characters it holds.  The
# options: CAI_ENCODER_OPTIONS, else do_lower_case of tokenizer_config.json
# when present (sent as a large object too), else '{}'.
"${PSQL:-psql}" -X -q -At -v ON_ERROR_STOP=1 \
	-v "name=$name" -v "config=$dir/config.json" -v "vocab=$dir/vocab.txt" \
	-v "weights=$dir/model.safetensors" -v "tokconfig=$tok" -v "options=${CAI_ENCODER_OPTIONS:-}" \
	"$@" <<'EOF'
\set QUIET on
BEGIN;
\lo_import :config
\set config_oid :LASTOID
\lo_import :vocab
\set vocab_oid :LASTOID
\lo_import :weights
\set weights_oid :LASTOID
SELECT :'tokconfig' <> '' AS has_tokconfig \gset
\if :has_tokconfig
\lo_import :tokconfig
\set tok_oid :LASTOID
\else
\set tok_oid 0
\endif
SELECT cai_import_encoder(
         :'name',
         convert_from(lo_get(:config_oid), 'UTF8')::jsonb,
         convert_from(lo_get(:vocab_oid), 'UTF8'),
         lo_get(:weights_oid),
         coalesce(nullif(:'options', '')::jsonb,
                  CASE WHEN :tok_oid <> 0 THEN
                       jsonb_strip_nulls(jsonb_build_object('lower_case',
                           (convert_from(lo_get(:tok_oid), 'UTF8')::jsonb -> 'do_lower_case')::boolean)) END,
                  '{}')) AS version;
SELECT lo_unlink(oid) FROM unnest(ARRAY[:config_oid, :vocab_oid, :weights_oid, :tok_oid]::oid[]) AS u(oid)
 WHERE oid <> 0 \g /dev/null
COMMIT;
EOF
