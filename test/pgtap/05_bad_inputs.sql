-- Bad-input matrix: every SQL function with NULLs, empty values, huge
-- values, malformed options and hostile names.  Each gives NULL (STRICT
-- functions) or an ERROR with a specific SQLSTATE; the server never restarts.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_bad;
CREATE TABLE tap_bad.tc AS
  SELECT CASE WHEN g % 2 = 0 THEN 'fine good ' || g ELSE 'awful bad ' || g END AS text, (g % 2 = 0) AS label
    FROM generate_series(1, 200) g;
CREATE TABLE tap_bad.ner AS
  SELECT ARRAY['Ann', 'met', 'Bob', 'in', 'Rome'] AS tokens, ARRAY['B-PER', 'O', 'B-PER', 'O', 'B-LOC'] AS tags
    FROM generate_series(1, 100);
CREATE TABLE tap_bad.wrong_types AS SELECT 1 AS text, 2 AS label;
SELECT * FROM cai_train('tc', 'sentiment', 'tap_bad.tc', options => '{"architecture": "fast"}') \g /dev/null
SELECT * FROM cai_train('ner', 'ner', 'tap_bad.ner', 'tokens', 'tags', '{"epochs": 2}') \g /dev/null

SELECT plan(55);
SELECT pg_postmaster_start_time() AS start_time \gset

-- STRICT inference functions: NULL in, NULL out
SELECT is(cai_predict(NULL, 'x'), NULL, 'cai_predict(NULL, text)');
SELECT is(cai_predict('tc', NULL), NULL, 'cai_predict(model, NULL)');
SELECT is(cai_predict(NULL::text), NULL, 'cai_predict(NULL)');
SELECT is(cai_predict_proba('tc', NULL), NULL, 'cai_predict_proba(model, NULL)');
SELECT is(cai_tag('ner', NULL), NULL, 'cai_tag(model, NULL)');
SELECT is(cai_tag(NULL, ARRAY['x']), NULL, 'cai_tag(NULL, tokens)');
SELECT is((SELECT count(*)::int FROM cai_entities(NULL, 'x')), 0, 'cai_entities(NULL, text)');
SELECT is(cai_cancel(NULL), NULL, 'cai_cancel(NULL)');
SELECT is((SELECT count(*)::int FROM cai_options(NULL)), 0, 'cai_options(NULL)');

-- empty values
SELECT ok(cai_predict('tc', '') IS NOT NULL, 'cai_predict on an empty string');
SELECT ok(cai_predict_proba('tc', '') IS NOT NULL, 'cai_predict_proba on an empty string');
SELECT is(cai_tag('ner', '{}'), '{}'::text[], 'cai_tag on an empty array');
SELECT is(cardinality(cai_tag('ner', ARRAY[''])), 1, 'cai_tag on an empty token');
SELECT is((SELECT count(*)::int FROM cai_entities('ner', '   ')), 0, 'cai_entities on blanks');
SELECT is(cai_predict('ner', ''), '[]', 'NER cai_predict on an empty string');
SELECT throws_ok($$SELECT cai_predict('', 'x')$$, '42602', NULL, 'empty model name');
SELECT throws_ok($$SELECT cai_export('')$$, '42602', NULL, 'cai_export with an empty name');
SELECT throws_ok($$SELECT cai_import('x', ''::bytea)$$, '22P03', NULL, 'cai_import of an empty bytea');

-- huge values
SELECT ok(cai_predict('tc', repeat('fine ', 200000)) IS NOT NULL, 'a 1 MB text');
SELECT throws_ok($$SELECT cai_predict('tc', repeat('x', 100 * 1024 * 1024))$$, '54000', 'input text is too long', 'a 100 MB text');
SELECT throws_ok($$SELECT * FROM cai_entities('ner', repeat('x ', 50 * 1024 * 1024))$$, '54000', 'input text is too long', 'a 100 MB text for cai_entities');
SELECT throws_ok($$SELECT cai_tag('ner', array_fill('x'::text, ARRAY[1000000]))$$, '54000', NULL, 'an array of 1,000,000 tokens');
SELECT ok((SELECT cardinality(cai_tag('ner', array_fill('x'::text, ARRAY[50000]))) = 50000), 'an array of 50,000 tokens');
SELECT throws_ok(format('SELECT cai_predict(%L, %L)', repeat('m', 300), 'x'), '42622', NULL, 'a 300-byte model name');

-- names that need quoting are just names
SELECT is(cai_import('Weird Model', cai_export('tc')), 1, 'import as "Weird Model"');
SELECT is(cai_import('x''; DROP TABLE tap_bad.tc; --', cai_export('tc')), 1, 'import under a hostile name');
SELECT has_table('tap_bad', 'tc', 'nothing was dropped');
SELECT is(cai_predict('x''; DROP TABLE tap_bad.tc; --', 'fine'), cai_predict('tc', 'fine'), 'the hostile name predicts');
SELECT is(cai_drop_model('x''; DROP TABLE tap_bad.tc; --'), 1, 'and drops');
SELECT lives_ok($$SELECT cai_predict('tc', E'a\x01b\x7f')$$, 'control characters are text too');

-- malformed options
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '[1, 2]')$$, '22023', NULL, 'options not an object');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"epochs": 1.5}')$$, '22023', NULL, 'a fractional integer');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"dropout": 2}')$$, '22023', NULL, 'a value out of range');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"architecture": "fast", "weight_decay": -1e-5}')$$,
                 '22023', NULL, 'a negative weight decay');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"architecture": "fast", "learning_rate": 10, "weight_decay": 0.06}')$$,
                 '22023', NULL, 'a weight decay whose step would shrink the weights by more than half');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"architecture": "huge"}')$$, '22023', NULL, 'an unknown choice');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"seed": null}')$$, '22023', NULL, 'a null value');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'ner', 'tap_bad.ner', 'tokens', 'tags', '{"tag_scheme": "iob9"}')$$, '22023', NULL, 'an unknown tag scheme');
-- the rows keep each token's tag as a 2-byte id: more distinct tags than that are refused while reading
SELECT throws_ok($$SELECT * FROM cai_train('b', 'ner', 'SELECT ARRAY[''x''] AS tokens, ARRAY[''B-T'' || g] AS tags FROM generate_series(1, 65536) g', 'tokens', 'tags', '{"epochs": 1}')$$,
                 '54000', 'row 65536: too many distinct tags (more than 65535)', 'more distinct tags than a 2-byte id holds');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'tap_bad.tc', options => '{"validation_source": "tap_bad.nope"}')$$, '42P01', NULL, 'a missing validation source');
SELECT throws_ok($$SELECT cai_train_async('b', 'sentiment', 'tap_bad.tc', options => '{"bogus": 1}')$$, '22023', NULL, 'cai_train_async validates options too');

-- NULL arguments of the functions that manage models
SELECT throws_ok($$SELECT * FROM cai_train(NULL, 'sentiment', 'tap_bad.tc')$$, '22004', NULL, 'cai_train with a NULL name');
SELECT throws_ok($$SELECT * FROM cai_train('b', NULL, 'tap_bad.tc')$$, '22004', NULL, 'cai_train with a NULL task');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', NULL)$$, '22004', NULL, 'cai_train with a NULL source');
SELECT throws_ok($$SELECT cai_import(NULL, '\x00')$$, '22004', NULL, 'cai_import with a NULL name');
SELECT throws_ok($$SELECT cai_evaluate('tc', NULL)$$, '22004', NULL, 'cai_evaluate with a NULL source');
SELECT throws_ok($$SELECT cai_rollback(NULL)$$, '22004', NULL, 'cai_rollback with a NULL name');

-- sources that fail, are empty or have the wrong types
SELECT throws_ok($$SELECT * FROM cai_train('b', 'sentiment', 'SELECT text, label FROM tap_bad.tc WHERE false')$$, 'P0002', NULL, 'no rows');
SELECT throws_ok($$SELECT * FROM cai_train('b', 'ner', 'tap_bad.wrong_types')$$, '42804', NULL, 'NER with the wrong column types');
SELECT throws_ok($$SELECT cai_evaluate('ner', 'tap_bad.tc', 'text', 'label')$$, '42804', NULL, 'NER evaluation with the wrong column types');
SELECT throws_ok($$SELECT cai_evaluate('tc', 'SELECT pg_catalog.now() AS text, 1/0 AS label')$$, '22012', NULL, 'an evaluation source that errors');
SELECT throws_ok($$SELECT cai_evaluate('tc', 'SELECT ''a''::text AS text, true AS label WHERE false')$$, 'P0002', NULL, 'an empty evaluation source');

-- unknown jobs and tasks
SELECT throws_ok($$SELECT cai_cancel(-1)$$, '42704', NULL, 'cai_cancel of an unknown job');
SELECT throws_ok($$SELECT * FROM cai_options('translation')$$, '22023', NULL, 'cai_options of an unknown task');

SELECT is(pg_postmaster_start_time(), :'start_time'::timestamptz, 'the server was never restarted');
SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models) m;
DROP SCHEMA tap_bad CASCADE;
