-- cai_model_stats: rows scored per model version by every inference function,
-- from this backend and from parallel workers, time spent, reset.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_ms;
CREATE TABLE tap_ms.r AS
  SELECT g AS id, CASE WHEN g % 2 = 0 THEN 'good great fine ' || g ELSE 'bad awful poor ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 400) g;
INSERT INTO tap_ms.r VALUES (401, NULL, 0);
CREATE TABLE tap_ms.ner AS
  SELECT ARRAY['Ann', 'visited', 'Oslo', '.'] AS tokens, ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags FROM generate_series(1, 40) g;
CREATE ROLE tap_ms_user LOGIN;
CREATE FUNCTION tap_ms.n(m text) RETURNS bigint LANGUAGE sql AS
  $$SELECT coalesce(sum(predictions), 0)::bigint FROM cai_model_stats WHERE name = m$$;

SELECT plan(14);
SELECT lives_ok($$SELECT * FROM cai_train('ms_clf', 'sentiment', 'SELECT text, label FROM tap_ms.r WHERE text IS NOT NULL',
                                          options => '{"architecture": "fast", "epochs": 2}')$$, 'train a classifier');
SELECT lives_ok($$SELECT * FROM cai_train('ms_ner', 'ner', 'tap_ms.ner', 'tokens', 'tags', '{"epochs": 1}')$$, 'train a tagger');
SELECT is(tap_ms.n('ms_clf'), 0::bigint, 'a new model has no predictions');

SELECT count(cai_predict('ms_clf', text)) FROM tap_ms.r \g /dev/null
SELECT is(tap_ms.n('ms_clf'), 400::bigint, 'cai_predict over 401 rows (one NULL, not called: STRICT) counts 400');
SELECT count(cai_predict_proba('ms_clf', text)) FROM tap_ms.r WHERE id <= 100 \g /dev/null
SELECT count(*) FROM cai_predict_query('ms_clf', 'SELECT id, text FROM tap_ms.r', 64) \g /dev/null
SELECT is(tap_ms.n('ms_clf'), 900::bigint, 'cai_predict_proba (100 rows) and cai_predict_query (400 non-NULL inputs) add theirs');
SELECT ok((SELECT total_ms > 0 AND mean_us > 0 AND last_used IS NOT NULL FROM cai_model_stats WHERE name = 'ms_clf'),
          'time spent, time per row and the last use are recorded');

SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
ALTER TABLE tap_ms.r SET (parallel_workers = 2);
CREATE FUNCTION tap_ms.workers_launched(q text) RETURNS int LANGUAGE plpgsql AS $f$
DECLARE plan jsonb;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO plan;
  RETURN (jsonb_path_query_first(plan, 'strict $.**."Workers Launched"'))::int;
END $f$;
SELECT ok(tap_ms.workers_launched($$SELECT count(cai_predict('ms_clf', text)) FROM tap_ms.r$$) >= 1,
          'a parallel scan with cai_predict (workers launched)');
RESET max_parallel_workers_per_gather;
SELECT is(tap_ms.n('ms_clf'), 1300::bigint, 'a parallel scan counts every row, whichever process scored it');

SELECT cai_tag('ms_ner', tokens) FROM tap_ms.ner LIMIT 5 \g /dev/null
SELECT count(*) FROM tap_ms.ner, cai_entities('ms_ner', array_to_string(tokens, ' ')) \g /dev/null
SELECT cai_tag_batch('ms_ner', (SELECT jsonb_agg(to_jsonb(tokens)) FROM tap_ms.ner)) \g /dev/null
SELECT count(*) FROM cai_entities_query('ms_ner', 'SELECT 1, array_to_string(tokens, '' '') FROM tap_ms.ner') \g /dev/null
SELECT is(tap_ms.n('ms_ner'), 125::bigint, 'cai_tag (5 calls), cai_entities (40), cai_tag_batch (40 sentences) and cai_entities_query (40 texts)');

-- a new version counts apart
SELECT lives_ok($$SELECT * FROM cai_train('ms_clf', 'sentiment', 'SELECT text, label FROM tap_ms.r WHERE text IS NOT NULL',
                                          options => '{"architecture": "fast", "epochs": 1, "deploy": "always"}')$$, 'a second version');
SELECT cai_predict('ms_clf', 'good') \g /dev/null
SELECT is((SELECT array_agg(predictions ORDER BY version) FROM cai_model_stats WHERE name = 'ms_clf'), ARRAY[1300, 1]::bigint[],
          'each version has its own row');

-- reset: not for everyone
SET ROLE tap_ms_user;
SELECT throws_ok('SELECT cai_model_stats_reset()', '42501', NULL, 'an ordinary role cannot reset the counts');
SELECT ok((SELECT count(*) FROM cai_model_stats WHERE name = 'ms_clf') = 2, 'an ordinary role reads the view');
RESET ROLE;
SELECT cai_model_stats_reset() \g /dev/null
SELECT ok((SELECT bool_and(predictions = 0 AND stats_reset > now() - interval '1 minute') FROM cai_model_stats), 'after a reset every count is zero, with the reset time');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'ms\_%') m \g /dev/null
DROP SCHEMA tap_ms CASCADE;
DROP ROLE tap_ms_user;
