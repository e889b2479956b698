-- Pretrained encoders: cai_import_encoder on the committed fixture checkpoint
-- (test/fixtures/encoder: a random 2-layer BERT, hidden 8, vocab_size 16,
-- with a 16-token vocab.txt), its variants (no prefix, F16, DistilBERT), the
-- model store's functions on an encoder (versions, export / import, deploy,
-- drop, ownership, task binding), damaged and inconsistent checkpoints
-- (specific SQLSTATEs, nothing stored), cai_embed against an independent
-- float64 reference (embed_expected.txt, scripts/gen_encoder_embed_reference.py)
-- and beside vector sets, and scripts/import-encoder.sh run by a role without
-- any privilege beyond LOGIN.  The fixture files are read by this psql (the
-- client: pg_prove runs from the repository's root), never by the server.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\set fx test/fixtures/encoder
\set cfg `cat test/fixtures/encoder/config.json`
\set vocab `cat test/fixtures/encoder/vocab.txt`
\set w `base64 -w0 test/fixtures/encoder/model.safetensors`
\set w_noprefix `base64 -w0 test/fixtures/encoder/model_noprefix.safetensors`
\set w_f16 `base64 -w0 test/fixtures/encoder/model_f16.safetensors`
\set dcfg `cat test/fixtures/encoder/distilbert_config.json`
\set w_distil `base64 -w0 test/fixtures/encoder/distilbert.safetensors`
\set ref `cat test/fixtures/encoder/embed_expected.txt`
\set fast `base64 -w0 test/fixtures/0.1.0/fast.cai`

CREATE SCHEMA tap_enc;
CREATE TABLE tap_enc.ckpt AS
  SELECT :'cfg'::jsonb AS config, :'vocab'::text AS vocab, decode(:'w', 'base64') AS weights;
CREATE TABLE tap_enc.ref AS
  SELECT (l[1]::jsonb) #>> '{}' AS input, l[2] AS pooling, string_to_array(l[3], ' ')::float8[] AS v
    FROM regexp_split_to_table(:'ref', E'\n') AS t(line), string_to_array(line, E'\t') AS l
   WHERE line <> '';
CREATE ROLE tap_enc_other LOGIN;
GRANT USAGE ON SCHEMA tap_enc TO tap_enc_other;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_enc TO tap_enc_other;

-- safetensors surgery for the bad inputs: the header (8-byte little-endian
-- length, JSON), and a file without one tensor whose data is cut out and the
-- later offsets moved (a well-formed file that lacks the tensor)
CREATE FUNCTION tap_enc.st_header_len(b bytea) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT sum(get_byte(b, i)::bigint << (8 * i))::bigint FROM generate_series(0, 7) i $$;
CREATE FUNCTION tap_enc.st_header(b bytea) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT convert_from(substring(b FROM 9 FOR tap_enc.st_header_len(b)::int), 'UTF8')::jsonb $$;
CREATE FUNCTION tap_enc.st_build(header jsonb, data bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT (SELECT string_agg(set_byte('\x00'::bytea, 0, ((length(h)::bigint >> (8 * i)) & 255)::int), ''::bytea ORDER BY i)
             FROM generate_series(0, 7) i) || h || data
     FROM convert_to(header::text, 'UTF8') AS h $$;
CREATE FUNCTION tap_enc.st_data(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT substring(b FROM 9 + tap_enc.st_header_len(b)::int) $$;
CREATE FUNCTION tap_enc.st_drop(b bytea, tensor text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT tap_enc.st_build(
            (SELECT jsonb_object_agg(k, CASE WHEN k = '__metadata__' OR (v -> 'data_offsets' ->> 0)::int < e THEN v
                                             ELSE jsonb_set(v, '{data_offsets}',
                                                            jsonb_build_array((v -> 'data_offsets' ->> 0)::int - (e - s),
                                                                              (v -> 'data_offsets' ->> 1)::int - (e - s))) END)
               FROM jsonb_each(h - tensor) AS j(k, v)),
            substring(d FROM 1 FOR s) || substring(d FROM e + 1))
     FROM tap_enc.st_header(b) AS h, tap_enc.st_data(b) AS d,
          LATERAL (SELECT (h -> tensor -> 'data_offsets' ->> 0)::int AS s, (h -> tensor -> 'data_offsets' ->> 1)::int AS e) o $$;
-- the first float of a tensor overwritten with bits (4 bytes, little-endian)
CREATE FUNCTION tap_enc.st_poke(b bytea, tensor text, bits bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT overlay(b PLACING bits FROM 9 + tap_enc.st_header_len(b)::int + (tap_enc.st_header(b) -> tensor -> 'data_offsets' ->> 0)::int) $$;
-- max |a - b| of two vectors
CREATE FUNCTION tap_enc.maxdiff(a real[], b float8[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN cardinality(a) = cardinality(b) THEN (SELECT max(abs(x - y)) FROM unnest(a, b) AS u(x, y)) END $$;

SELECT plan(74);

-- import, and the model store's functions on an encoder
SELECT is((SELECT count(*)::int FROM tap_enc.ref), 12, 'the reference has 6 texts x 2 poolings');
SELECT is(cai_import_encoder('tiny_bert', config, vocab, weights), 1, 'import the fixture checkpoint: version 1')
  FROM tap_enc.ckpt;
SELECT is((SELECT format('%s %s %s %s', version, task, architecture, deployed) FROM cai_models WHERE name = 'tiny_bert'),
          '1 encoder bert t', 'cai_models lists it: task encoder, deployed as the first version');
SELECT is((SELECT owner::text FROM cai_models WHERE name = 'tiny_bert'), current_user::text, 'owned by the importer');
SELECT is(cai_model_info('tiny_bert') -> 'encoder' -> 'config' ->> 'hidden_size', '8', 'cai_model_info shows the config');
SELECT is(cai_model_info('tiny_bert') -> 'encoder' -> 'tokenizer' ->> 'lower_case', 'true', 'lower_case defaults to true');
SELECT is(cai_model_info('tiny_bert') -> 'provenance' ->> 'weights_md5', md5(weights),
          'the provenance keeps the checkpoint''s md5') FROM tap_enc.ckpt;
SELECT is(cai_import_encoder('tiny_bert', config, vocab, weights, '{"lower_case": false}'), 2,
          'a second import: version 2 (a cased tokenizer)') FROM tap_enc.ckpt;
SELECT is(cai_model_info('tiny_bert', 2) -> 'encoder' -> 'tokenizer' ->> 'lower_case', 'false', 'version 2 is cased');
SELECT is((SELECT version FROM cai_models WHERE name = 'tiny_bert' AND deployed), 1, 'a later import is not deployed');
SELECT is(cai_import('tiny_copy', cai_export('tiny_bert', 1)), 1, 'cai_import takes the exported encoder bytes');
SELECT is(md5(cai_export('tiny_copy')), md5(cai_export('tiny_bert', 1)), 'export / import is bit for bit');
SELECT is(cai_deploy('tiny_bert', 2), 2, 'deploy version 2');
SELECT is(cai_rollback('tiny_bert'), 1, 'roll back to version 1');
SELECT is(cai_import_encoder('tiny_noprefix', :'cfg'::jsonb, :'vocab', decode(:'w_noprefix', 'base64')), 1,
          'a checkpoint without the bert. prefix (LayerNorm gamma/beta names)');
SELECT is(cai_import_encoder('tiny_f16', :'cfg'::jsonb, :'vocab', decode(:'w_f16', 'base64')), 1, 'an F16 checkpoint');
SELECT is(cai_import_encoder('tiny_distil', :'dcfg'::jsonb, :'vocab', decode(:'w_distil', 'base64')), 1,
          'a DistilBERT checkpoint');

-- damaged and inconsistent checkpoints: specific errors, nothing stored
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, substring(weights FROM 1 FOR length(weights) - 7)) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'truncated weights');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, substring(weights FROM 1 FOR 100)) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'weights cut inside the header');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, '\x0800000000000000'::bytea || convert_to('garbage!', 'UTF8')) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'garbage weights (a header that is not JSON)');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, '\x0001020304050607080910'::bytea) FROM tap_enc.ckpt$$,
                 '54000', NULL, 'garbage weights (a header length beyond the limit)');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, ''::bytea) FROM tap_enc.ckpt$$,
                 '22P03', 'invalid encoder checkpoint: the weights are empty', 'empty weights');
SELECT throws_like($$SELECT cai_import_encoder('bad', config, vocab, tap_enc.st_drop(weights, 'bert.encoder.layer.1.output.dense.weight')) FROM tap_enc.ckpt$$,
                   '%encoder.layer.1.output.dense.weight%', 'a missing tensor is named');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, tap_enc.st_drop(weights, 'bert.embeddings.word_embeddings.weight')) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a missing tensor: 22P03');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, tap_enc.st_poke(weights, 'bert.encoder.layer.0.attention.self.query.weight', '\x0000c07f')) FROM tap_enc.ckpt$$,
                 '22003', NULL, 'a NaN weight');
SELECT throws_like($$SELECT cai_import_encoder('bad', jsonb_set(config, '{intermediate_size}', '32'), vocab, weights) FROM tap_enc.ckpt$$,
                   '%intermediate%', 'a config of another shape: the misshapen tensor is named');
SELECT throws_ok($$SELECT cai_import_encoder('bad', jsonb_set(config, '{hidden_size}', '16'), vocab, weights) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a config of another hidden size: 22P03');
SELECT throws_ok($$SELECT cai_import_encoder('bad', jsonb_set(config, '{num_attention_heads}', '3'), vocab, weights) FROM tap_enc.ckpt$$,
                 '22023', NULL, 'heads that do not divide the hidden size');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config - 'vocab_size', vocab, weights) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a config without vocab_size');
SELECT throws_ok($$SELECT cai_import_encoder('bad', '[1, 2]'::jsonb, vocab, weights) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a config that is not an object');
SELECT throws_ok($$SELECT cai_import_encoder('bad', jsonb_set(config, '{hidden_act}', '"relu"'), vocab, weights) FROM tap_enc.ckpt$$,
                 '22023', NULL, 'an activation other than gelu');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab || E'\nextra', weights) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a vocabulary larger than vocab_size');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, replace(vocab, '[CLS]', 'cls'), weights) FROM tap_enc.ckpt$$,
                 '22P03', NULL, 'a vocabulary without [CLS]');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, weights, '{"lowercase": true}') FROM tap_enc.ckpt$$,
                 '22023', NULL, 'an unknown option');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, weights, '{"lower_case": 1}') FROM tap_enc.ckpt$$,
                 '22023', NULL, 'an option of the wrong type');
SELECT throws_ok($$SELECT cai_import_encoder(NULL, config, vocab, weights) FROM tap_enc.ckpt$$, '22004', NULL, 'NULL name');
SELECT throws_ok($$SELECT cai_import_encoder('bad', NULL, vocab, weights) FROM tap_enc.ckpt$$, '22004', NULL, 'NULL config');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, NULL, weights) FROM tap_enc.ckpt$$, '22004', NULL, 'NULL vocabulary');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, NULL) FROM tap_enc.ckpt$$, '22004', NULL, 'NULL weights');
SELECT throws_ok($$SELECT cai_import_encoder('bad', config, vocab, weights, NULL) FROM tap_enc.ckpt$$, '22004', NULL, 'NULL options');
SELECT throws_ok($$SELECT cai_import_encoder('', config, vocab, weights) FROM tap_enc.ckpt$$, '42602', NULL, 'an empty name');
SELECT is(cai_import('tap_enc_clf', decode(:'fast', 'base64')), 1, 'a sentiment model (0.1.0 fixture)');
SELECT throws_ok($$SELECT cai_import_encoder('tap_enc_clf', config, vocab, weights) FROM tap_enc.ckpt$$, '42809', NULL,
                 'an encoder is not a version of a model of another task');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'bad' OR (name = 'tap_enc_clf' AND task = 'encoder')), 0,
          'nothing is stored by a refused import');

-- cai_embed: equal to the float64 reference
SELECT is((SELECT count(*)::int FROM tap_enc.ref WHERE tap_enc.maxdiff(cai_embed('tiny_bert', input, pooling), v) < 1e-4),
          12, 'cai_embed (mean and cls) equals the reference within 1e-4 on every text');
SELECT ok((SELECT max(tap_enc.maxdiff(cai_embed('tiny_bert', input, pooling), v)) FROM tap_enc.ref) >= 0,
          'the comparison ran on every text (no NULL)');
SELECT is(cai_embed('tiny_bert', 'The cat sat.'), cai_embed('tiny_bert', 'The cat sat.', 'mean'), 'pooling defaults to mean');
SELECT is(cai_embed('tiny_bert', 'The cat sat.', 'CLS'), cai_embed('tiny_bert', 'The cat sat.', 'cls'), 'pooling names ignore case');
SELECT is(cai_embed('tiny_bert', 'the cat sat on the mat, the dog sat on the mat'), cai_embed('tiny_bert', 'the cat sat on the mat'),
          'a text longer than the positions is truncated to them');
SELECT ok(tap_enc.maxdiff(cai_embed('tiny_noprefix', 'The cat sat.'), cai_embed('tiny_bert', 'The cat sat.')::float8[]) < 1e-6,
          'the checkpoint without prefix embeds as the one with');
SELECT ok(tap_enc.maxdiff(cai_embed('tiny_bert', 'Cats, dogs!'), cai_embed('tiny_bert', 'cats , dogs [UNK]')::float8[]) < 1e-6,
          'tokenized as BERT: lower-cased, punctuation split, ##s continuation, [UNK]');
SELECT is(cai_embed('tiny_bert', 'x', NULL), NULL, 'STRICT: a NULL pooling gives NULL');
SELECT throws_ok($$SELECT cai_embed('tiny_bert', 'x', 'max')$$, '22023', NULL, 'an unknown pooling');
SELECT throws_ok($$SELECT cai_embed('tap_enc_nothing', 'x')$$, '42704', 'no encoder, model or vector set is named "tap_enc_nothing"',
                 'an unknown name');
SELECT throws_ok($$SELECT cai_embed('tap_enc_clf', 'x')$$, '42809', NULL, 'a model without an encoder');
SELECT throws_ok($$SELECT cai_predict('tiny_bert', 'x')$$, '42809',
                 'model "tiny_bert" is an encoder model, but cai_predict needs a text classification model',
                 'an encoder does not classify');
SELECT is(cai_import_vectors('tap_enc_vec', 'SELECT w AS word, ARRAY[i, 1]::real[] AS vector FROM unnest(ARRAY[''good'', ''bad'']) WITH ORDINALITY u(w, i)'),
          1, 'a vector set');
SELECT is(cai_embed('tap_enc_vec', 'good bad'), '{1.5,1}'::real[], 'cai_embed(vector set, input) still averages word vectors');
SELECT throws_ok($$SELECT cai_embed('tap_enc_vec', 'good', 'cls')$$, '22023', NULL, 'cls pooling does not apply to a vector set');
SELECT is((SELECT string_agg(p.proparallel::text || p.provolatile::text || p.proisstrict::text, ',') FROM pg_proc p WHERE p.proname = 'cai_embed'),
          'sstrue', 'one cai_embed: parallel safe, stable, strict');

-- ownership: others embed, but do not add versions, deploy or drop
SET ROLE tap_enc_other;
SELECT ok(cardinality(cai_embed('tiny_bert', 'good')) = 8, 'another role embeds with the encoder');
SELECT throws_ok($$SELECT cai_import_encoder('tiny_bert', config, vocab, weights) FROM tap_enc.ckpt$$, '42501', NULL,
                 'another role cannot add a version');
SELECT throws_ok($$SELECT cai_drop_model('tiny_bert')$$, '42501', NULL, 'nor drop it');
RESET ROLE;
SELECT is(cai_drop_model('tiny_bert', 2), 1, 'the owner drops a version');

-- scripts/import-encoder.sh: the files sent by psql (large objects) by a role with no other privilege
SELECT count(*) AS los_before FROM pg_largeobject_metadata \gset
\set out `scripts/import-encoder.sh tap_enc_script test/fixtures/encoder -U tap_enc_other -d :'DBNAME' 2>&1`
SELECT is(:'out'::text, '1', 'import-encoder.sh as a role without privileges prints version 1');
SELECT is((SELECT owner::text FROM cai_models WHERE name = 'tap_enc_script'), 'tap_enc_other', 'owned by that role');
SELECT is(cai_model_info('tap_enc_script') -> 'provenance' ->> 'weights_md5', md5(weights),
          'the server got the weights bit for bit') FROM tap_enc.ckpt;
SELECT ok(tap_enc.maxdiff(cai_embed('tap_enc_script', 'The cat sat.'), cai_embed('tiny_bert', 'The cat sat.')::float8[]) = 0,
          'and embeds as the checkpoint imported by SQL');
\set out `d=$(mktemp -d) && cp test/fixtures/encoder/config.json test/fixtures/encoder/vocab.txt test/fixtures/encoder/model.safetensors "$d" && echo '{"do_lower_case": false}' > "$d/tokenizer_config.json" && scripts/import-encoder.sh tap_enc_script "$d" -U tap_enc_other -d :'DBNAME' 2>&1; rm -rf "$d"`
SELECT is(:'out'::text, '2', 'a second run: version 2');
SELECT is(cai_model_info('tap_enc_script', 2) -> 'encoder' -> 'tokenizer' ->> 'lower_case', 'false',
          'tokenizer_config.json''s do_lower_case false gives a cased tokenizer');
\set out `d=$(mktemp -d) && cp test/fixtures/encoder/config.json test/fixtures/encoder/vocab.txt "$d" && head -c 5000 test/fixtures/encoder/model.safetensors > "$d/model.safetensors" && scripts/import-encoder.sh tap_enc_script "$d" -U tap_enc_other -d :'DBNAME' >/dev/null 2>&1; echo $?; rm -rf "$d"`
SELECT is(:'out'::text, '3', 'a truncated model.safetensors: psql stops with an error (exit 3)');
\set out `scripts/import-encoder.sh tap_enc_script /nonexistent -d :'DBNAME' >/dev/null 2>&1; echo $?`
SELECT is(:'out'::text, '1', 'a directory without the files: exit 1 before connecting');
SELECT is((SELECT max(version) FROM cai_models WHERE name = 'tap_enc_script'), 2, 'the failed runs stored nothing');
SELECT is((SELECT count(*) FROM pg_largeobject_metadata), :los_before::bigint, 'and left no large object behind');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name IN ('tiny_bert', 'tiny_copy', 'tiny_noprefix', 'tiny_f16', 'tiny_distil', 'tap_enc_clf', 'tap_enc_script')) m;
SELECT cai_drop_vectors('tap_enc_vec');
DROP SCHEMA tap_enc CASCADE;
DROP OWNED BY tap_enc_other;
DROP ROLE tap_enc_other;
