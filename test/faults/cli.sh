#!/usr/bin/env bash
# cli.sh: the cai command answers exactly as the SQL functions do, on the bytes
# cai_export writes, for every architecture.  Models of every architecture are
# trained in the server, exported, and run with the cai command (built from
# the same core by `make -f core.mk cli`) on the same texts: labels,
# probabilities (cai_predict_proba's jsonb text), entities (cai_predict on an
# NER model), CoNLL tags (cai_tag) and evaluation reports (cai_evaluate) must
# be equal as text.  Also: a model trained by `cai train` on the rows of a
# table, imported with cai_import, answers as the server-trained one does
# (same rows, options and seed).
NAME=cli
source "$(dirname "$0")/lib.sh"

CAI=${CAI_CLI:-$FAULTS_ROOT/build/cai}
make -s -C "$FAULTS_ROOT" -f core.mk BUILD="$(dirname "$CAI")" cli >/dev/null 2>&1 || bail "build the cai command"
[ -x "$CAI" ] || bail "no cai command at $CAI"

cluster_start
work=$CAI_PGDATA/cli
mkdir -p "$work" && chmod 755 "$work"
q -c "CREATE EXTENSION cai_synergy" && make_reviews postgres reviews 400 || bail "set up the database"
q >/dev/null <<'SQL' || bail "create NER data"
CREATE TABLE annotated AS
  SELECT ARRAY[(ARRAY['Alice', 'Bob', 'Carol', 'Dmitri'])[1 + g % 4], 'works', 'for',
               (ARRAY['Acme', 'Globex', 'Initech'])[1 + g % 3], 'in', (ARRAY['Paris', 'Lagos', 'Osaka'])[1 + g % 3], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-ORG', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 200) g;
SQL
q >/dev/null <<'SQL' || bail "train a model of every architecture"
SELECT 1 FROM cai_train('fast', 'sentiment', 'reviews', options => '{"architecture": "fast", "seed": 1}');
SELECT 1 FROM cai_train('accurate', 'sentiment', 'reviews', options => '{"architecture": "accurate", "epochs": 2, "seed": 1}');
SELECT 1 FROM cai_train('ner', 'ner', 'annotated', 'tokens', 'tags', '{"epochs": 3, "seed": 1}');
SQL
export_model() {	# export_model NAME FILE
	q -c "SELECT encode(cai_export('$1'), 'base64')" | base64 -d >"$2"
}
for m in fast accurate ner; do
	export_model "$m" "$work/$m.cai" || bail "export $m"
done
ok 0 "three models trained in the server and exported"

# the texts: lib.sh's SENTENCES (empty, CJK, emoji, a long one), one a line
printf '%s\n' "${SENTENCES[@]}" "Carol works for Initech in Osaka ." "Zed met Bob in Lagos ." >"$work/texts.txt"
arr=""
while IFS= read -r s; do arr+="${arr:+, }\$t\$$s\$t\$"; done <"$work/texts.txt"
TEXTS="unnest(ARRAY[$arr]::text[]) WITH ORDINALITY AS u(s, i)"

for m in fast accurate; do
	is "$("$CAI" predict --per-row "$work/$m.cai" "$work/texts.txt" 2>&1)" \
		"$(q -c "SELECT cai_predict('$m', s) FROM $TEXTS ORDER BY i")" "$m: cai predict = cai_predict"
	is "$("$CAI" proba --per-row "$work/$m.cai" "$work/texts.txt" 2>&1)" \
		"$(q -c "SELECT cai_predict_proba('$m', s)::text FROM $TEXTS ORDER BY i")" "$m: cai proba = cai_predict_proba"
	is "$("$CAI" predict "$work/$m.cai" "$work/texts.txt" 2>&1)" \
		"$(q -c "SELECT label FROM cai_predict_query('$m', 'SELECT i, s FROM $TEXTS') ORDER BY key::int")" \
		"$m: cai predict in batches = cai_predict_query"
done
is "$("$CAI" entities --per-row "$work/ner.cai" "$work/texts.txt" 2>&1)" \
	"$(q -c "SELECT cai_predict('ner', s) FROM $TEXTS ORDER BY i")" "ner: cai entities = cai_predict on an NER model"

# CoNLL tags against cai_tag
q -c "SELECT array_to_string(tokens, E'\n') || E'\n' FROM annotated LIMIT 20" >"$work/tokens.conll"
is "$("$CAI" tag --per-row "$work/ner.cai" "$work/tokens.conll" 2>&1 | grep -v '^$')" \
	"$(q -c "SELECT t || E'\t' || g FROM (SELECT row_number() OVER () AS r, tokens FROM annotated LIMIT 20) a,
	               LATERAL unnest(a.tokens, cai_tag('ner', a.tokens)) WITH ORDINALITY AS x(t, g, o) ORDER BY r, o")" \
	"ner: cai tag = cai_tag"

# evaluation reports
{ printf 'label\ttext\n'; q -c "SELECT label || E'\t' || text FROM reviews"; } >"$work/reviews.tsv"
for m in fast accurate; do
	is "$("$CAI" evaluate "$work/$m.cai" "$work/reviews.tsv" 2>&1)" \
		"$(q -c "SELECT (cai_evaluate('$m', 'reviews') - 'version')::text")" "$m: cai evaluate = cai_evaluate"
done

# a model trained by the command answers as the one trained by the server
"$CAI" train sentiment "$work/reviews.tsv" --options '{"architecture": "fast", "seed": 1}' -o "$work/cli_fast.cai" >/dev/null 2>&1
ok $? "cai train trains a fast model from the same rows"
# the bytes go through standard input (a command-line argument is limited to 128 kB)
{ printf "SELECT cai_import('cli fast', decode('"; base64 -w0 "$work/cli_fast.cai"; printf "', 'base64'));\n"; } | q >/dev/null
ok $? "cai_import accepts the command's model"
is "$(q -c "SELECT cai_predict_proba('cli fast', s)::text FROM $TEXTS ORDER BY i")" \
	"$(q -c "SELECT cai_predict_proba('fast', s)::text FROM $TEXTS ORDER BY i")" \
	"the command's model answers as the server's (same rows, options and seed)"

# word vectors: the server trains with a vector set (imported from a table; the
# same vectors imported from GloVe-style text), the command with the set's
# exported bytes (or the text file) and the same options, provenance and
# rows: the model bytes must be identical
q >/dev/null <<'SQL' || bail "make the vector sets and train with them"
CREATE TABLE vecs AS
  SELECT w AS word, ARRAY(SELECT round((sin(i * 7 + length(w) * 3 + ascii(w)) / 2)::numeric, 4)::real
                          FROM generate_series(1, 16) i) AS vector
    FROM unnest(ARRAY['alice', 'bob', 'works', 'for', 'acme', 'in', 'paris', 'lagos', 'tokyo', '.']) w;
SELECT cai_import_vectors('tiny', 'vecs');
SELECT 1 FROM cai_train('nerv', 'ner', 'annotated', 'tokens', 'tags', '{"epochs": 2, "seed": 1, "dimensions": 16, "word_vectors": "tiny"}');
SQL
q -c "SELECT encode(cai_export_vectors('tiny'), 'base64')" | base64 -d >"$work/tiny.cai"
q -c "SELECT word || ' ' || array_to_string(vector, ' ') FROM vecs" >"$work/tiny.txt"
{ printf "SELECT cai_import_vectors('tinytext', decode('"; base64 -w0 "$work/tiny.txt"; printf "', 'base64'), 'text');\n"; } | q >/dev/null
q >/dev/null -c "SELECT 1 FROM cai_train('nervt', 'ner', 'annotated', 'tokens', 'tags', '{\"epochs\": 2, \"seed\": 1, \"dimensions\": 16, \"word_vectors\": \"tinytext\"}')"
export_model nerv "$work/nerv.cai" && export_model nervt "$work/nervt.cai" || bail "export the models trained with vectors"
q -c "SELECT array_to_string(a.tokens || ''::text, E'\n') FROM (SELECT ARRAY(SELECT t || E'\t' || g FROM unnest(tokens, tags) u(t, g)) AS tokens FROM annotated) a" \
	>"$work/annotated.conll"
db=$(q -c "SELECT current_database()"); role=$(q -c "SELECT current_user")
"$CAI" train ner "$work/annotated.conll" -q --vectors "$work/tiny.cai" --source annotated --role "$role" --database "$db" \
	--options '{"epochs": 2, "seed": 1, "dimensions": 16, "word_vectors": "tiny"}' -o "$work/cli_nerv.cai" >/dev/null 2>"$work/nerv.err"
ok $? "cai train ner --vectors (the set's exported bytes)" || sed 's/^/# /' "$work/nerv.err"
is "$(md5sum <"$work/cli_nerv.cai" | cut -c1-32)" "$(md5sum <"$work/nerv.cai" | cut -c1-32)" \
	"ner with a vector set: the command's model bytes = the server's"
"$CAI" train ner "$work/annotated.conll" -q --vectors "$work/tiny.txt" --source annotated --role "$role" --database "$db" \
	--options '{"epochs": 2, "seed": 1, "dimensions": 16, "word_vectors": "tinytext"}' -o "$work/cli_nervt.cai" >/dev/null 2>&1
is "$(md5sum <"$work/cli_nervt.cai" | cut -c1-32)" "$(md5sum <"$work/nervt.cai" | cut -c1-32)" \
	"ner with vectors from a text file: the command's model bytes = the server's (cai_import_vectors 'text')"
"$CAI" train ner "$work/annotated.conll" -q --options '{"word_vectors": "tiny"}' -o "$work/x.cai" >/dev/null 2>&1
is "$?" 2 "\"word_vectors\" without --vectors: exit code 2"
printf 'alice 1 2\nbob 3\n' >"$work/bad.txt"
"$CAI" train ner "$work/annotated.conll" -q --vectors "$work/bad.txt" -o "$work/x.cai" >/dev/null 2>"$work/bad.err"
is "$?" 5 "a malformed vectors file: exit code 5"
grep -q "line 2" "$work/bad.err"; ok $? "... naming its line"

# word vectors trained by the command = cai_train_vectors (one thread: the
# bytes are a function of the texts, options and seed)
q >/dev/null -c "SELECT 1 FROM cai_train_vectors('wv', 'reviews', 'text', '{\"dimensions\": 8, \"epochs\": 2, \"min_count\": 2}')" \
	|| bail "train word vectors in the server"
q -c "SELECT encode(cai_export_vectors('wv'), 'base64')" | base64 -d >"$work/wv.cai"
q -c "SELECT text FROM reviews" >"$work/reviews.txt"
"$CAI" train vectors "$work/reviews.txt" -q --source reviews --role "$role" --database "$db" \
	--options '{"dimensions": 8, "epochs": 2, "min_count": 2}' -o "$work/cli_wv.cai" >/dev/null 2>"$work/wv.err"
ok $? "cai train vectors" || sed 's/^/# /' "$work/wv.err"
is "$(md5sum <"$work/cli_wv.cai" | cut -c1-32)" "$(md5sum <"$work/wv.cai" | cut -c1-32)" \
	"vectors: the command's bytes = cai_train_vectors' (cai_export_vectors)"

# errors: a damaged file is refused with exit code 3, a classifier for entities with 4
head -c 1000 "$work/fast.cai" >"$work/bad.cai"
"$CAI" predict "$work/bad.cai" "$work/texts.txt" >/dev/null 2>&1
is "$?" 3 "a truncated model: exit code 3"
"$CAI" entities "$work/fast.cai" "$work/texts.txt" >/dev/null 2>&1
is "$?" 4 "a classifier given to cai entities: exit code 4"
finish
