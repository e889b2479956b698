-- Word vector sets: import from a query and from file bytes (text, binary,
-- the bytes of cai_export_vectors), the cai_vectors listing, nearest words,
-- text embeddings, versions and ownership, bad inputs with specific errors,
-- and training that names a set in "word_vectors".
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_vec;
-- two clusters of words: the first component says which
CREATE TABLE tap_vec.words AS
  SELECT w AS word,
         ARRAY[CASE WHEN i <= 6 THEN 1.0 ELSE -1.0 END, (i % 3) * 0.1, (i % 5) * 0.05, 0.01 * i]::real[] AS vector
    FROM unnest(ARRAY['good', 'great', 'fine', 'nice', 'superb', 'lovely',
                      'bad', 'awful', 'poor', 'dull', 'boring', 'terrible']) WITH ORDINALITY AS u(w, i);
CREATE TABLE tap_vec.ner AS
  SELECT ARRAY[(ARRAY['Ann','Bob','Li'])[1 + g % 3], 'visited', (ARRAY['Oslo','Lima'])[1 + g % 2], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 60) g;
CREATE TABLE tap_vec.ner_vectors AS
  SELECT w AS word, ARRAY[0.1 * i, -0.1 * i, 0.2, 0.3]::real[] AS vector
    FROM unnest(ARRAY['ann', 'bob', 'li', 'visited', 'oslo', 'lima']) WITH ORDINALITY AS u(w, i);
CREATE ROLE tap_vec_other LOGIN;
GRANT USAGE ON SCHEMA tap_vec TO tap_vec_other;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_vec TO tap_vec_other;

SELECT plan(30);

-- import and list
SELECT is(cai_import_vectors('v_small', 'tap_vec.words'), 1, 'import from a table: version 1');
SELECT is((SELECT format('%s %s %s %s', version, dimensions, words, subwords) FROM cai_vectors WHERE name = 'v_small'),
          '1 4 12 f', 'cai_vectors lists its dimensions and words');
SELECT is((SELECT owner::text FROM cai_vectors WHERE name = 'v_small'), current_user::text, 'owned by its creator');
SELECT ok((SELECT bool_and(word IN ('great', 'fine', 'nice', 'superb', 'lovely')) FROM cai_similar('v_small', 'good', 5)),
          'cai_similar: the 5 nearest words of "good" are its own cluster');
SELECT is((SELECT count(*)::int FROM cai_similar('v_small', 'good', 100)), 11, 'k beyond the set: every other word');
SELECT is((SELECT count(*)::int FROM cai_similar('v_small', 'zebra', 5)), 0, 'a word without a vector: no rows');
SELECT is((SELECT array_length(cai_embed('v_small', 'GOOD and great!'), 1)), 4, 'cai_embed returns the set''s dimensions');
SELECT ok((SELECT (cai_embed('v_small', 'good great'))[1] = 1 AND (cai_embed('v_small', 'awful'))[1] = -1),
          'cai_embed is the mean of the words'' vectors (lower-cased for a lowercase set)');
SELECT is(cai_embed('v_small', 'zebra quagga'), NULL, 'no word with a vector: NULL');

-- file bytes, export / import round trip, versions
SELECT is(cai_import_vectors('v_text', convert_to(E'alpha 0.5 1.5\nbeta -1 2\n', 'UTF8'), 'glove'), 1, 'import GloVe text');
SELECT is(cai_import_vectors('v_text', convert_to(E'2 2\nalpha 1 0\nbeta 0 1\n', 'UTF8'), 'word2vec'), 2,
          'a word2vec text file with its header: version 2');
SELECT is(cai_import_vectors('v_copy', cai_export_vectors('v_small'), 'cai'), 1, 'import the exported bytes');
SELECT is(md5(cai_export_vectors('v_copy')), md5(cai_export_vectors('v_small')), 'export / import is bit for bit');
SELECT is(cai_drop_vectors('v_text', 1), 1, 'drop one version');
SELECT is((SELECT array_agg(version) FROM cai_vectors WHERE name = 'v_text'), ARRAY[2], 'the other stays');

-- bad inputs
SELECT throws_ok($$SELECT cai_import_vectors('bad', convert_to(E'a 1 2\nb 1\n', 'UTF8'), 'text')$$, '22P03',
                 'invalid vector file: line 2: expected 2 values (as line 1 has), found 1', 'a short line names its line');
SELECT throws_ok($$SELECT cai_import_vectors('bad', convert_to(E'a 1 2\na 3 4\n', 'UTF8'), 'text')$$, '22P03', NULL,
                 'a duplicate word');
SELECT throws_ok($$SELECT cai_import_vectors('bad', convert_to(E'a 1 NaN\n', 'UTF8'), 'text')$$, '22P03', NULL, 'NaN');
SELECT throws_ok($$SELECT cai_import_vectors('bad', ''::bytea, 'text')$$, '22P03', NULL, 'empty input');
SELECT throws_ok($$SELECT cai_import_vectors('bad', convert_to('a 1', 'UTF8'), 'pdf')$$, '22023', NULL, 'an unknown format');
SELECT throws_ok($$SELECT cai_import_vectors('bad', 'SELECT ''a''::text AS word, ARRAY[1, 2]::real[] AS vector
                                                     UNION ALL SELECT ''b'', ARRAY[1, 2, 3]::real[]')$$, '22023', NULL,
                 'rows of different dimensions');
SELECT throws_ok($$SELECT cai_import_vectors('bad', 'SELECT NULL::text AS word, ARRAY[1]::real[] AS vector')$$, '22004', NULL,
                 'a NULL word');
SELECT throws_ok($$SELECT cai_import_vectors('bad', decode('00112233', 'hex'), 'cai')$$, NULL, NULL, 'damaged cai bytes');
SELECT is((SELECT count(*)::int FROM cai_vectors WHERE name = 'bad'), 0, 'nothing stored by the failures');
SELECT throws_ok($$SELECT * FROM cai_similar('nope', 'a')$$, '42704', NULL, 'an unknown vector set');

-- ownership
SET ROLE tap_vec_other;
SELECT throws_ok($$SELECT cai_import_vectors('v_small', 'tap_vec.words')$$, '42501', NULL,
                 'another role cannot add a version');
SELECT throws_ok($$SELECT cai_drop_vectors('v_small')$$, '42501', NULL, 'nor drop it');
SELECT cai_import_vectors('v_other', 'tap_vec.words') \g /dev/null
RESET ROLE;
SELECT is((SELECT owner::text FROM cai_vectors WHERE name = 'v_other'), 'tap_vec_other', 'a set belongs to the role that created it');

-- training names a set
SELECT is(cai_import_vectors('v_ner', 'tap_vec.ner_vectors'), 1, 'import NER vectors');
SELECT is((SELECT cai_model_info('vec_ner') -> 'provenance' -> 'vectors' ->> 'name'
             FROM cai_train('vec_ner', 'ner', 'tap_vec.ner', 'tokens', 'tags', '{"epochs": 2, "dimensions": 4, "word_vectors": "v_ner"}')),
          'v_ner', 'an NER model trained with a vector set records it (name, version, md5) in its provenance');

SELECT * FROM finish();
SELECT cai_drop_model('vec_ner');
SELECT cai_drop_vectors(name) FROM (SELECT DISTINCT name FROM cai_vectors) v;
DROP SCHEMA tap_vec CASCADE;
DROP OWNED BY tap_vec_other;
DROP ROLE tap_vec_other;
