-- The readable catalog: cai_models (one short row per version),
-- cai_model_details (everything), cai_training_history (one row per epoch of
-- stored versions, and of jobs that stored nothing, visible to their role).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_cv;
CREATE TABLE tap_cv.reviews AS
  SELECT CASE WHEN g % 2 = 0 THEN 'a great film ' || (g % 7) ELSE 'a dull film ' || (g % 5) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 300) g;
CREATE TABLE tap_cv.slow AS
  SELECT 'word' || (g % 5000) || ' other' || (g % 333) AS text, (g % 3) AS label
    FROM generate_series(1, 30000) g;
CREATE TABLE tap_cv.ner AS
  SELECT ARRAY[(ARRAY['Ann','Bob','Li'])[1 + g % 3], 'visited', (ARRAY['Oslo','Lima'])[1 + g % 2], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 100) g;
CREATE ROLE tap_cv_a LOGIN;
CREATE ROLE tap_cv_b LOGIN;
GRANT USAGE ON SCHEMA tap_cv TO tap_cv_a, tap_cv_b;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_cv TO tap_cv_a, tap_cv_b;

SELECT plan(23);

SELECT lives_ok($$SELECT * FROM cai_train('cv_fast', 'sentiment', 'tap_cv.reviews', options => '{"architecture": "fast", "epochs": 6, "seed": 1}')$$,
                'train a fast model');
SELECT lives_ok($$SELECT * FROM cai_train('cv_ner', 'ner', 'tap_cv.ner', 'tokens', 'tags', '{"epochs": 3}')$$,
                'train an NER model');
SELECT lives_ok($$SELECT cai_import('cv_copy', cai_export('cv_fast'))$$, 'import a copy');

-- cai_models: short columns
SELECT is((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'cai_models'::regclass AND attnum > 0 AND NOT attisdropped),
          ARRAY['name', 'version', 'task', 'architecture', 'score', 'size', 'deployed', 'created_at', 'owner', 'labels_changed'],
          'cai_models has short columns');
SELECT is((SELECT string_agg(name || ' ' || architecture || ' ' || coalesce(score::text, 'no score') || ' ' || size, ', ' ORDER BY name)
             FROM cai_models WHERE name LIKE 'cv%'),
          (SELECT string_agg(name || ' ' || architecture || ' ' || coalesce(round((metrics->>'score')::numeric, 4)::text, 'no score')
                             || ' ' || pg_size_pretty(size::bigint), ', ' ORDER BY name)
             FROM cai_model_details WHERE name LIKE 'cv%'),
          'cai_models: architecture, the score rounded to 4 decimals, size in readable units');
SELECT ok((SELECT max(length(t::text)) FROM cai_models t WHERE name LIKE 'cv%') < 200, 'a cai_models row is short');
SELECT ok((SELECT metrics ? 'classes' AND size > 0 AND labels = '["neg", "pos"]' FROM cai_model_details WHERE name = 'cv_fast'),
          'cai_model_details keeps the metrics, labels and size in bytes');
SELECT is((SELECT score FROM cai_models WHERE name = 'cv_ner'),
          (SELECT round((metrics->>'f1')::numeric, 4) FROM cai_model_details WHERE name = 'cv_ner'), 'the NER score is the entity F1');

-- cai_training_history
SELECT is((SELECT count(*)::int FROM cai_training_history WHERE model = 'cv_fast' AND version = 1),
          (SELECT (metrics->>'epochs_run')::int FROM cai_model_details WHERE name = 'cv_fast'),
          'one history row per epoch run (synchronous training)');
SELECT is((SELECT array_agg(epoch ORDER BY epoch) FROM cai_training_history WHERE model = 'cv_ner'), ARRAY[1, 2, 3],
          'NER epochs 1..3');
SELECT ok((SELECT bool_and(loss >= 0 AND validation_score BETWEEN 0 AND 1 AND rows_per_sec > 0 AND seconds > 0 AND job_id IS NULL)
             FROM cai_training_history WHERE model IN ('cv_fast', 'cv_ner')),
          'loss, validation score, rows/s and seconds are filled');
SELECT ok((SELECT bool_and(s > prev) FROM (SELECT seconds AS s, lag(seconds) OVER (ORDER BY epoch) AS prev
                                              FROM cai_training_history WHERE model = 'cv_fast') x WHERE prev IS NOT NULL),
          'seconds since the start grow with the epochs');
SELECT is((SELECT count(*)::int FROM cai_training_history WHERE model = 'cv_copy'), 0, 'an imported version has no history');

-- without validation rows only the last epoch is scored (on the training rows): the others have no score
SELECT lives_ok($$SELECT * FROM cai_train('cv_noval', 'sentiment', 'tap_cv.reviews',
                                         options => '{"architecture": "fast", "epochs": 4, "validation_fraction": 0}')$$,
                'train without validation rows');
SELECT is((SELECT array_agg(validation_score IS NULL ORDER BY epoch) || array_agg(loss >= 0 AND rows_per_sec > 0 ORDER BY epoch)
             FROM cai_training_history WHERE model = 'cv_noval'),
          ARRAY[true, true, true, false, true, true, true, true],
          'validation_fraction 0: epochs 1-3 have a loss but no score, epoch 4 is scored');
SELECT is((SELECT validation_score FROM cai_training_history WHERE model = 'cv_noval' AND epoch = 4),
          (SELECT (metrics->>'accuracy')::float8 FROM cai_model_details WHERE name = 'cv_noval'),
          'the last epoch''s score is the kept model''s accuracy on the training rows');

-- an asynchronous job: its version's rows carry the job id
SELECT cai_train_async('cv_job', 'sentiment', 'tap_cv.reviews', options => '{"architecture": "fast", "epochs": 4}') AS j1 \gset
SELECT is((SELECT state FROM cai_wait(:j1)), 'succeeded', 'a job succeeds');
-- (the job history outlives a rerun of this file in the same database: this job's rows)
SELECT is((SELECT array_agg(DISTINCT version) FROM cai_training_history WHERE model = 'cv_job' AND job_id = :j1),
          ARRAY[(SELECT version FROM cai_jobs WHERE job_id = :j1)],
          'its history rows name the job and the version');

-- a cancelled job keeps its curve so far, visible to its role only
SET ROLE tap_cv_a;
SELECT cai_train_async('cv_slow', 'sentiment', 'tap_cv.slow', options => '{"architecture": "accurate", "epochs": 50, "patience": 0}') AS j2 \gset
RESET ROLE;
CREATE FUNCTION tap_cv.wait_epoch(job bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  FOR i IN 1 .. 600 LOOP
    IF EXISTS (SELECT 1 FROM cai_training_history WHERE job_id = job) THEN RETURN true; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN false;
END $f$;
SELECT ok(tap_cv.wait_epoch(:j2) AND cai_cancel(:j2) AND (SELECT state FROM cai_wait(:j2)) = 'cancelled',
          'a job finishes an epoch and is cancelled');
SELECT ok((SELECT count(*) FROM cai_training_history WHERE job_id = :j2 AND version IS NULL AND epoch >= 1) >= 1,
          'the cancelled job keeps the epochs it finished (no version)');
SET ROLE tap_cv_b;
SELECT is((SELECT count(*)::int FROM cai_training_history WHERE job_id = :j2), 0, 'another role does not see that job''s history');
RESET ROLE;

-- Citus setup (test/faults/citus.sh runs it on a real cluster): refused clearly without Citus,
-- and not executable by ordinary roles
SELECT throws_ok('SELECT cai_citus_setup()', '55000', 'the citus extension is not installed in this database',
                 'cai_citus_setup() without Citus: SQLSTATE 55000');
SELECT ok(NOT has_function_privilege('tap_cv_b', 'cai_citus_setup()', 'EXECUTE'),
          'cai_citus_setup() is not executable by ordinary roles');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'cv%') m;
DROP SCHEMA tap_cv CASCADE;
DROP OWNED BY tap_cv_a, tap_cv_b;
DROP ROLE tap_cv_a;
DROP ROLE tap_cv_b;
