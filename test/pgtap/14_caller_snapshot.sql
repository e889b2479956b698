-- Synchronous cai_train reads its sources in the calling statement (stream.c):
-- a table created in the same transaction, rows inserted or deleted in it,
-- temporary tables (source, validation source, word vectors; every task),
-- the caller's row-level security; an asynchronous job cannot see a
-- temporary table and says so; a source failing midway leaves nothing.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE ROLE tap_cs_user LOGIN;
SELECT plan(16);
BEGIN;
CREATE TABLE public.tap_cs_t AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine ' || g ELSE 'bad awful poor ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 300) g;
INSERT INTO public.tap_cs_t SELECT 'fine and dandy ' || g, 0 FROM generate_series(1, 50) g;
DELETE FROM public.tap_cs_t WHERE text LIKE '%7';
SELECT is((SELECT (metrics->>'train_rows')::int + (metrics->>'n')::int
             FROM cai_train('cs_m', 'sentiment', 'public.tap_cs_t', options => '{"architecture": "fast", "epochs": 1}')),
          (SELECT count(*)::int FROM public.tap_cs_t),
          'a table created in this transaction, with the rows inserted and deleted in it');
CREATE TEMP TABLE tap_cs_tt AS SELECT * FROM public.tap_cs_t;
CREATE TEMP TABLE tap_cs_valid AS SELECT * FROM public.tap_cs_t LIMIT 60;
CREATE TEMP TABLE tap_cs_vec (word text, vector real[]);
INSERT INTO tap_cs_vec VALUES ('good', '{1,0}'), ('bad', '{-1,0}'), ('fine', '{0.5,0.5}');
SELECT is((SELECT (metrics->>'n')::int FROM cai_train('cs_m', 'sentiment', 'tap_cs_tt',
                                                      options => '{"epochs": 1, "validation_source": "tap_cs_valid"}')),
          60, 'a temporary table as source and as validation source');
SELECT is((SELECT (metrics->'vector_coverage'->>'words_found')::int
             FROM cai_train('cs_m', 'sentiment', 'SELECT * FROM tap_cs_tt', options => '{"architecture": "fast", "epochs": 1, "word_vectors": "tap_cs_vec"}')),
          3, 'word vectors from a temporary table');
CREATE TEMP TABLE tap_cs_ner AS
  SELECT ARRAY['Ann', 'visited', 'Oslo', '.'] AS tokens, ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags FROM generate_series(1, 30) g;
SELECT lives_ok($$SELECT * FROM cai_train('cs_e', 'ner', 'tap_cs_ner', 'tokens', 'tags', '{"epochs": 1}')$$, 'NER from a temporary table');
SELECT is(array_length(cai_tag('cs_e', ARRAY['Ann', 'visited', 'Oslo', '.']), 1), 4, '... and the model it stored tags');
SELECT lives_ok($$SELECT * FROM cai_train_vectors('cs_v', 'tap_cs_tt', 'text', '{"dimensions": 8, "epochs": 1, "min_count": 1}')$$,
                'word vectors trained from a temporary table');
SELECT throws_ok($$SELECT cai_train_async('cs_j', 'sentiment', 'tap_cs_tt')$$, '0A000',
                 'an asynchronous job cannot train from temporary table "tap_cs_tt"', 'an asynchronous job refuses a temporary table');
SELECT throws_ok($$SELECT cai_train_async('cs_j', 'sentiment', 'public.tap_cs_t', options => '{"validation_source": "tap_cs_valid"}')$$, '0A000',
                 NULL, '... also as its validation source');
SELECT throws_ok($$SELECT cai_train_async('cs_j', 'sentiment', 'public.tap_cs_t')$$, '0A000',
                 'an asynchronous job cannot train from table "tap_cs_t", created in this transaction',
                 'an asynchronous job refuses a table created in this transaction');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name LIKE 'cs\_%'), 4, 'four model versions stored in this transaction');

-- a source that fails midway: the caller's error, no version, no worker left
SELECT throws_ok($$SELECT * FROM cai_train('cs_fail', 'sentiment',
                    'SELECT text, CASE WHEN g > 200 THEN (1 / (g - g))::text ELSE label::text END AS label FROM (SELECT *, row_number() OVER () AS g FROM tap_cs_tt) s')$$,
                 '22012', NULL, 'a source that fails midway raises its error');
COMMIT;
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'cs_fail'), 0, '... and stores nothing');
-- the caller's error stops the worker and waits for it to exit (CaiTerminateLaunchedWorker) before it returns
SELECT is((SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'cai_synergy training'), 0, '... and no training worker is left');

-- a job whose query names a relation only this session sees fails, and its error says why
SELECT cai_train_async('cs_j2', 'sentiment', 'SELECT text, label FROM pg_temp.tap_cs_tt') AS j \gset
SELECT is((SELECT state FROM cai_wait(:j)), 'failed', 'a job reading a temporary table through a query fails');
SELECT ok((SELECT error FROM cai_jobs WHERE job_id = :j) LIKE '%an asynchronous job reads committed data in its worker%',
          '... and its error states the rule for jobs');

-- row-level security: the caller's policy applies to what is read
CREATE TABLE public.tap_cs_rls AS SELECT * FROM public.tap_cs_t;
ALTER TABLE public.tap_cs_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tap_cs_half ON public.tap_cs_rls FOR SELECT TO tap_cs_user USING (label = 0 OR text LIKE '%1');
GRANT SELECT ON public.tap_cs_rls TO tap_cs_user;
SET ROLE tap_cs_user;
SELECT is((SELECT (metrics->>'train_rows')::int + (metrics->>'n')::int
             FROM cai_train('cs_rls', 'sentiment', 'public.tap_cs_rls', options => '{"architecture": "fast", "epochs": 1}')),
          (SELECT count(*)::int FROM public.tap_cs_rls), 'the caller''s row-level security decides which rows are read');
RESET ROLE;

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'cs\_%') m \g /dev/null
SELECT cai_drop_vectors('cs_v') \g /dev/null
DROP TABLE public.tap_cs_t, public.tap_cs_rls;
DROP ROLE tap_cs_user;
