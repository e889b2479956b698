-- Sentiment / text classification: training, prediction, evaluation and bad inputs.
-- Tables are committed (not in a transaction) because training reads them
-- from a background worker; everything is dropped at the end.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_tc;
CREATE TABLE tap_tc.reviews AS
  SELECT CASE WHEN g % 2 = 0
              THEN (ARRAY['a great film', 'truly wonderful acting', 'loved it', 'superb and moving', '非常好看 👍'])[1 + g % 5]
              ELSE (ARRAY['a terrible film', 'truly awful acting', 'hated it', 'dull and boring', '太难看了 👎'])[1 + g % 5] END
           || ' ' || (g % 7) AS text,
         CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, 600) g;
CREATE TABLE tap_tc.typed AS
  SELECT text, (label = 'positive') AS bool_label, CASE WHEN label = 'positive' THEN 1 ELSE 0 END AS int_label
    FROM tap_tc.reviews;
CREATE TABLE tap_tc.with_nulls AS SELECT * FROM tap_tc.reviews;
INSERT INTO tap_tc.with_nulls VALUES (NULL, 'positive'), ('some text', NULL), (NULL, NULL);
CREATE TABLE tap_tc.one_class AS SELECT text, 'x'::text AS label FROM tap_tc.reviews;
CREATE TABLE tap_tc.empty (text text, label text);
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Weird Table" ("Review Text" text, "Gold" text);
INSERT INTO "My Schema"."Weird Table" SELECT text, label FROM tap_tc.reviews;
CREATE TABLE tap_tc.slow AS
  SELECT 'word' || (g % 5000) || ' other' || (g % 333) || ' more' || (g % 77) AS text, (g % 3)::text AS label
    FROM generate_series(1, 30000) g;
CREATE TABLE tap_tc.secret AS SELECT * FROM tap_tc.reviews;
REVOKE ALL ON tap_tc.secret FROM PUBLIC;
CREATE ROLE tap_tc_user;
GRANT USAGE ON SCHEMA tap_tc TO tap_tc_user;
GRANT SELECT ON tap_tc.reviews TO tap_tc_user;
CREATE TABLE tap_tc.rls AS SELECT * FROM tap_tc.reviews;
GRANT SELECT ON tap_tc.rls TO tap_tc_user;
ALTER TABLE tap_tc.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_some ON tap_tc.rls FOR SELECT TO tap_tc_user USING (length(text) % 2 = 0);

SELECT plan(50);
SELECT pg_postmaster_start_time() AS start_time \gset

-- training
SELECT lives_ok($$SELECT * FROM cai_train('tc', 'sentiment', 'tap_tc.reviews')$$, 'train a sentiment model');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tc' AND deployed), 1, 'first version is deployed');
SELECT is((SELECT labels FROM cai_model_details WHERE name = 'tc'), '["negative", "positive"]'::jsonb, 'labels are kept as text');
SELECT ok((SELECT (metrics->>'accuracy')::float8 > 0.9 FROM cai_model_details WHERE name = 'tc'), 'validation accuracy stored');
SELECT ok((SELECT metrics ? 'macro_f1' AND metrics ? 'classes' AND metrics ? 'seconds' AND (metrics->>'train_rows')::int = 540
             FROM cai_model_details WHERE name = 'tc'), 'metrics: macro-F1, per class, seconds, train rows (90% of 600)');

-- prediction
SELECT is(cai_predict('tc', 'loved it, superb'), 'positive', 'predicts positive');
SELECT is(cai_predict('tc', 'awful and dull'), 'negative', 'predicts negative');
SELECT is(cai_predict('tc', NULL), NULL, 'NULL input gives NULL');
SELECT is(cai_predict(NULL, 'x'), NULL, 'NULL model gives NULL');
SELECT ok(cai_predict('tc', '') IN ('positive', 'negative'), 'empty string gives a label');
SELECT ok(cai_predict('tc', repeat('great film ', 100000)) = 'positive', '1 MB text');
SELECT ok(cai_predict('tc', '太难看了') = 'negative', 'Chinese text');
SELECT ok(abs((SELECT sum(value::float8) FROM jsonb_each_text(cai_predict_proba('tc', 'great film'))) - 1) < 1e-5,
          'probabilities sum to 1');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(cai_predict_proba('tc', 'x')) k), ARRAY['negative', 'positive'],
          'probabilities name every label');
SELECT throws_ok($$SELECT cai_predict('no such model', 'x')$$, '42704', 'model "no such model" does not exist', 'unknown model');
SELECT throws_ok($$SELECT cai_predict('', 'x')$$, '42602', 'model name must not be empty', 'empty model name');
SET cai.max_input_length = 1024;
SELECT throws_ok($$SELECT cai_predict('tc', repeat('x', 2000))$$, '54000', 'input text is too long', 'cai.max_input_length');
RESET cai.max_input_length;

-- default model
SET cai.default_model = 'tc';
SELECT is(cai_predict('loved it'), 'positive', 'cai_predict(input) with cai.default_model');
RESET cai.default_model;
SELECT is(cai_predict('loved it'), 'positive', 'cai_predict(input) with the only deployed model');

-- label types, quoting, queries
SELECT lives_ok($$SELECT * FROM cai_train('tc_bool', 'sentiment', 'tap_tc.typed', 'text', 'bool_label')$$, 'boolean labels');
SELECT is((SELECT labels FROM cai_model_details WHERE name = 'tc_bool'), '["false", "true"]'::jsonb, 'boolean labels as text');
SELECT throws_ok($$SELECT cai_predict('loved it')$$, '42704', 'cai_predict(input) needs a model name', 'two deployed models and no default');
SELECT lives_ok($$SELECT * FROM cai_train('tc_int', 'text_classification', 'tap_tc.typed', 'text', 'int_label')$$, 'integer labels');
SELECT is(cai_predict('tc_int', 'loved it'), '1', 'integer labels come back as text');
SELECT lives_ok($$SELECT * FROM cai_train('Weird Model', 'sentiment', '"My Schema"."Weird Table"', 'Review Text', 'Gold')$$,
                'quoted schema, table, column and model names');
SELECT is(cai_predict('Weird Model', 'loved it'), 'positive', 'model with a space in its name');
SELECT lives_ok($$SELECT * FROM cai_train('x''; DROP TABLE tap_tc.reviews; --', 'sentiment',
                  'SELECT text AS t, label AS l FROM tap_tc.reviews WHERE text <> ''q'';', 't', 'l')$$,
                'source query with a trailing semicolon, hostile model name');
SELECT has_table('tap_tc', 'reviews', 'the hostile name did not drop anything');

-- NULL rows are skipped and counted
SELECT is((SELECT (metrics->>'skipped_rows')::int FROM cai_train('tc_nulls', 'sentiment', 'tap_tc.with_nulls')), 3,
          'rows with NULL input or label are skipped and counted');

-- bad sources and options
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.empty')$$, 'P0002', NULL, 'zero rows');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.one_class')$$, '22023', NULL, 'a single class');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.nope')$$, '42P01', NULL, 'missing table');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.reviews', 'nope')$$, '42703', NULL, 'missing column');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'SELECT 1/0 AS text, 1 AS label')$$, '22012', NULL, 'source query that errors');
SELECT throws_like($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.reviews', options => '{"epoch": 3}')$$,
                   '%unknown option "epoch"%valid options are: architecture, epochs%', 'unknown option lists the valid keys');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.reviews', options => '{"epochs": 100000}')$$, '22023', NULL, 'option out of range');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', 'tap_tc.reviews', options => '{"epochs": "ten"}')$$, '22023', NULL, 'option of the wrong type');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentimental', 'tap_tc.reviews')$$, '22023', 'unknown task "sentimental"', 'unknown task');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'sentiment', '')$$, '22023', 'source must not be empty', 'empty source');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'bad'), 0, 'failed trainings stored nothing');

-- privileges: the worker reads with the caller's rights
SET ROLE tap_tc_user;
SELECT throws_ok($$SELECT * FROM cai_train('stolen', 'sentiment', 'tap_tc.secret')$$, '42501', NULL, 'cannot train on a table it cannot read');
SELECT throws_ok($$SELECT * FROM cai_train('stolen', 'sentiment', 'SELECT * FROM tap_tc.secret')$$, '42501', NULL, 'nor through a query');
SELECT is((SELECT (metrics->>'train_rows_read')::int FROM cai_train('tc_rls', 'sentiment', 'tap_tc.rls')),
          (SELECT count(*)::int FROM tap_tc.rls), 'row-level security limits what training sees');
RESET ROLE;
SELECT ok((SELECT count(*) FROM tap_tc.rls) > (SELECT (metrics->>'train_rows_read')::int FROM cai_model_details WHERE name = 'tc_rls'),
          'the policy hid rows from the training');
SELECT ok((SELECT (metrics->>'read_seconds')::float8 >= 0 AND (metrics->>'read_seconds')::float8 < 600
             FROM cai_model_details WHERE name = 'tc_rls'),
          'the metrics say how long reading the rows took');

-- evaluation
SELECT is((cai_evaluate('tc', 'tap_tc.reviews')->>'accuracy')::float8,
          (SELECT avg((cai_predict('tc', text) = label)::int)::float8 FROM tap_tc.reviews), 'evaluate accuracy matches predictions');

-- cancel mid-training: statement_timeout stops the worker, nothing is stored, the server keeps running
CREATE FUNCTION tap_tc.train_slow() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM * FROM cai_train('slow', 'sentiment', 'tap_tc.slow', options => '{"epochs": 1000, "patience": 0}');
  RETURN 'finished';
EXCEPTION WHEN query_canceled THEN
  RETURN 'cancelled: ' || SQLERRM;
END $f$;
SET statement_timeout = '1500ms';
SELECT is(tap_tc.train_slow(), 'cancelled: canceling statement due to statement timeout', 'statement_timeout cancels training');
RESET statement_timeout;
-- the cancel's error cleanup waits for the worker to exit (CaiTerminateLaunchedWorker): no polling
SELECT is((SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'), 0,
          'the training worker has stopped when the cancel returns');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'slow'), 0, 'a cancelled training stores nothing');
SELECT is(pg_postmaster_start_time(), :'start_time'::timestamptz, 'the server was never restarted');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models) m;
DROP SCHEMA tap_tc CASCADE;
DROP SCHEMA "My Schema" CASCADE;
DROP ROLE tap_tc_user;
