-- cai_drift: new inputs against what the deployed version was trained on
-- (input length, predicted labels, confidence; PSI and verdicts).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_dr;
CREATE TABLE tap_dr.reviews AS
  SELECT CASE WHEN g % 2 = 0 THEN (ARRAY['a great film', 'truly wonderful acting', 'loved it', 'superb and moving'])[1 + g % 4]
              ELSE (ARRAY['a terrible film', 'truly awful acting', 'hated it', 'dull and boring'])[1 + g % 4] END
           || ' ' || (g % 13) AS text,
         CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, 3000) g;
-- the same distribution, other rows
CREATE TABLE tap_dr.same AS SELECT text FROM tap_dr.reviews WHERE text LIKE '%7' OR text LIKE '%3';
-- another kind of text: long, other words, another script
CREATE TABLE tap_dr.other AS
  SELECT repeat('东京 の 天気 は 晴れ です ', 1 + g % 5) || ' quarterly revenue grew in the northern region ' || g AS text
    FROM generate_series(1, 500) g;
CREATE TABLE tap_dr.ner AS
  SELECT ARRAY['Ann', 'visited', 'Oslo', '.'] AS tokens, ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags FROM generate_series(1, 30);

SELECT plan(11);

SELECT lives_ok($$SELECT * FROM cai_train('dr', 'sentiment', 'tap_dr.reviews', options => '{"architecture": "fast", "seed": 1}')$$,
                'train a model');
SELECT ok((SELECT metrics ? 'drift_reference' FROM cai_model_details WHERE name = 'dr'),
          'training keeps statistics of its inputs with the metrics');
SELECT is(cai_drift('dr', 'tap_dr.same') ->> 'verdict', 'stable', 'rows of the training distribution: stable');
SELECT ok((cai_drift('dr', 'tap_dr.same') ->> 'psi')::float8 < 0.1, 'and a small PSI');
SELECT is(cai_drift('dr', 'tap_dr.other') ->> 'verdict', 'significant shift', 'other text: a significant shift');
SELECT is(cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'input_length' ->> 'verdict', 'significant shift',
          'named by the statistic that moved (input length)');
SELECT throws_ok($$SELECT cai_drift('dr', 'SELECT text FROM tap_dr.same WHERE false')$$, 'P0002', NULL, 'no rows');
SELECT is(cai_drift(NULL, 'tap_dr.same'), NULL, 'a NULL model gives NULL');
SELECT is(cai_drift('dr', NULL), NULL, 'a NULL source gives NULL');
SELECT lives_ok($$SELECT cai_import('dr copy', cai_export('dr'))$$, 'import a copy');
SELECT throws_ok($$SELECT cai_drift('dr copy', 'tap_dr.same')$$, '55000', NULL,
                 'an imported version has no statistics: a clear error');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'dr%') m;
DROP SCHEMA tap_dr CASCADE;
