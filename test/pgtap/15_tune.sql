-- Automatic tuning: cai_tune and cai_tune_async, the cai_trials view, trials
-- as jobs, budgets, determinism, deployment, cancel, bad searches.  Small
-- generated data; the tables are committed because job workers read them.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_tune;
CREATE TABLE tap_tune.small AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine ' || (g % 37) ELSE 'bad awful poor ' || (g % 29) END
         || CASE WHEN g % 7 = 0 THEN ' good' WHEN g % 11 = 0 THEN ' bad' ELSE '' END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 600) g;
CREATE TABLE tap_tune.slow AS
  SELECT 'word' || (g % 5000) || ' other' || (g % 333) AS text, (g % 3) AS label
    FROM generate_series(1, 30000) g;
-- two sentiment words and a filler per row; 15% of the labels flipped, so no model is right on every row
CREATE TABLE tap_tune.noisy AS
  SELECT w[1 + (g * 7) % 8] || ' ' || w[1 + (g * 13) % 8] || ' w' || (g % 50) AS text,
         CASE WHEN (((g * 7) % 8 < 4)::int + ((g * 13) % 8 < 4)::int * 2 >= 2) <> ((g * 37) % 100 < 15)
              THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 900) g, (SELECT ARRAY['good','great','fine','nice','bad','awful','poor','dull'] AS w) a;
CREATE TABLE tap_tune.noisy_valid AS SELECT * FROM tap_tune.noisy WHERE text LIKE '%w1%' OR text LIKE '%w2';
DELETE FROM tap_tune.noisy WHERE text LIKE '%w1%' OR text LIKE '%w2';
CREATE TABLE tap_tune.ner AS
  SELECT ARRAY[(ARRAY['John','Mary','Olga'])[1 + g % 3], 'lives', 'in', (ARRAY['Paris','Lima'])[1 + g % 2], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 60) g;
\ir lib/wait_for.sql

SELECT plan(59);
SELECT pg_postmaster_start_time() AS start_time \gset

-- a synchronous search over the fast architecture's default space
CREATE TEMP TABLE r1 AS
  SELECT * FROM cai_tune('tune_fast', 'sentiment', 'tap_tune.small', search => '{"architecture": "fast", "max_trials": 10}');
SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint AS t1 FROM r1 \gset
SELECT is((SELECT version FROM r1), 1, 'cai_tune stores the best trial as version 1');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tune_fast'), 1, 'only the best trial becomes a version');
SELECT is((SELECT deployed FROM cai_models WHERE name = 'tune_fast'), true, 'the first version is deployed');
SELECT ok((SELECT (metrics -> 'tuning' ->> 'trials_run')::int BETWEEN 2 AND 10 FROM r1), 'max_trials bounds the trials');
SELECT is((SELECT count(*)::int FROM cai_trials WHERE tuning_id = :t1), (SELECT (metrics -> 'tuning' ->> 'trials_run')::int FROM r1),
          'every trial is a row of cai_trials');
SELECT is((SELECT count(*)::int FROM cai_trials WHERE tuning_id = :t1 AND state = 'succeeded' AND validation_score IS NOT NULL
             AND seconds >= 0 AND epochs > 0 AND epochs_run > 0), (SELECT count(*)::int FROM cai_trials WHERE tuning_id = :t1),
          'each trial records its options, epochs, validation score, seconds and state');
SELECT is((SELECT count(*)::int FROM cai_jobs j JOIN cai_trials t USING (job_id) WHERE t.tuning_id = :t1 AND j.model = 'tune_fast'),
          (SELECT count(*)::int FROM cai_trials WHERE tuning_id = :t1), 'each trial is a training job in cai_jobs');
SELECT is((SELECT options ->> 'learning_rate' FROM cai_trials WHERE tuning_id = :t1 AND trial = 0), '0.1',
          'trial 0 trains the architecture''s defaults');
SELECT ok((SELECT bool_and((options ->> 'learning_rate')::float8 BETWEEN 0.05 AND 1 AND (options ->> 'dimensions')::int BETWEEN 16 AND 128)
             FROM cai_trials WHERE tuning_id = :t1), 'sampled options stay in the default space');
SELECT ok((SELECT max(rung) > 0 AND max(epochs) FILTER (WHERE rung > 0) > min(epochs) FROM cai_trials WHERE tuning_id = :t1),
          'successive halving continues survivors with more epochs');
SELECT ok((SELECT bool_and(config IN (SELECT config FROM cai_trials WHERE tuning_id = :t1 AND rung = 0))
             FROM cai_trials WHERE tuning_id = :t1 AND rung > 0), 'survivors come from the first rung');
SELECT is((SELECT (cai_model_info('tune_fast') -> 'options' ->> 'learning_rate')::float8),
          (SELECT (t.options ->> 'learning_rate')::float8 FROM cai_trials t, r1
            WHERE t.tuning_id = :t1 AND t.trial = (r1.metrics -> 'tuning' ->> 'best_trial')::int),
          'the stored model is the best trial''s');
SELECT is((SELECT (metrics -> 'tuning' ->> 'best_trial')::int FROM r1),
          (SELECT trial FROM cai_trials WHERE tuning_id = :t1 AND state = 'succeeded'
            ORDER BY validation_score DESC, rung DESC, trial LIMIT 1),
          'the best trial: the highest validation score, then the highest rung');
SELECT is((SELECT (metrics -> 'tuning' -> 'search' ->> 'seed')::int FROM cai_model_details WHERE name = 'tune_fast'), 42,
          'the whole search is kept in the version''s metrics');
SELECT ok((SELECT jsonb_array_length(metrics -> 'tuning' -> 'trials') > 1 AND metrics -> 'tuning' -> 'search' -> 'space' ? 'dropout'
             FROM cai_model_details WHERE name = 'tune_fast'), 'with every trial and the searched space');
SELECT is((SELECT cai_model_info('tune_fast') -> 'tuning' -> 'best_trial'), (SELECT metrics -> 'tuning' -> 'best_trial' FROM r1),
          'cai_model_info shows the search');
SELECT is((SELECT (cai_model_info('tune_fast') -> 'provenance' -> 'tuning' ->> 'trial')::int),
          (SELECT (metrics -> 'tuning' ->> 'best_trial')::int FROM r1), 'the model''s own provenance names its search and trial');

-- deterministic for a seed; another search under the same model adds one version, not deployed by policy "never"
CREATE TEMP TABLE r2 AS
  SELECT * FROM cai_tune('tune_fast', 'sentiment', 'tap_tune.small',
                         search => '{"architecture": "fast", "max_trials": 10, "deploy": "never"}');
SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint AS t2 FROM r2 \gset
SELECT is((SELECT array_agg(options || jsonb_build_object('v', validation_score) ORDER BY trial) FROM cai_trials WHERE tuning_id = :t2),
          (SELECT array_agg(options || jsonb_build_object('deploy', 'never', 'v', validation_score) ORDER BY trial)
             FROM cai_trials WHERE tuning_id = :t1),
          'the same search and seed give the same trials, options and scores');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tune_fast'), 2, 'a second search adds one version');
SELECT is((SELECT deployed FROM cai_models WHERE name = 'tune_fast' AND version = 2), false, 'deploy "never" in the search is kept');
SELECT isnt((SELECT array_agg(options ->> 'learning_rate' ORDER BY trial) FROM cai_trials WHERE tuning_id = :t1),
            (SELECT array_agg(t.options ->> 'learning_rate' ORDER BY t.trial)
               FROM cai_trials t WHERE t.tuning_id = (SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint
                                                       FROM cai_tune('tune_seed', 'sentiment', 'tap_tune.small',
                                                                     search => '{"architecture": "fast", "max_trials": 4, "seed": 7}'))),
            'another seed draws other options');

-- user ranges, choices and fixed values; the caller's snapshot (a temporary table) as cai_train
CREATE TEMP TABLE tmp_rows AS SELECT * FROM tap_tune.small;
CREATE TEMP TABLE r3 AS
  SELECT * FROM cai_tune('tune_user', 'sentiment', 'tmp_rows',
                         search => '{"architecture": "fast", "max_trials": 4, "dimensions": [8, 24], "dropout": 0.1,
                                     "learning_rate": {"min": 0.2, "max": 0.3, "scale": "log"}, "epochs": {"min": 2, "max": 4}, "eta": 2}');
SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint AS t3 FROM r3 \gset
SELECT ok((SELECT bool_and((options ->> 'dimensions')::int IN (8, 24) AND (options ->> 'dropout')::float8 = 0.1
                           AND (options ->> 'learning_rate')::float8 BETWEEN 0.2 AND 0.3 AND epochs IN (2, 4))
             FROM cai_trials WHERE tuning_id = :t3), 'ranges, choices and fixed values of the search are used');
SELECT is((SELECT version FROM r3), 1, 'cai_tune reads a temporary table in the caller''s snapshot');

-- NER through the same interface
CREATE TEMP TABLE r4 AS
  SELECT * FROM cai_tune('tune_ner', 'ner', 'tap_tune.ner', 'tokens', 'tags',
                         '{"max_trials": 3, "epochs": {"min": 1, "max": 2}, "hidden": [8, 16], "dimensions": 16}');
SELECT is((SELECT m.task || ' ' || m.architecture || ' ' || (r4.metrics -> 'tuning' ->> 'trials_run') FROM cai_models m, r4
            WHERE m.name = r4.name AND m.version = r4.version), 'ner bilstm_crf 3', 'an NER model is tuned the same way');

-- an ensemble of the best trials (search key "ensemble"), chosen greedily on the validation source
CREATE TEMP TABLE r5 AS
  SELECT * FROM cai_tune('tune_ens', 'sentiment', 'tap_tune.noisy',
                         search => '{"architecture": "fast", "max_trials": 8, "ensemble": 3, "validation_source": "tap_tune.noisy_valid"}');
SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint AS t5 FROM r5 \gset
SELECT is((SELECT architecture FROM cai_models WHERE name = 'tune_ens'), 'ensemble', 'the stored version is an ensemble');
SELECT ok((SELECT jsonb_array_length(metrics -> 'ensemble' -> 'trials') BETWEEN 2 AND 3
                  AND (SELECT sum(w::int) FROM jsonb_array_elements_text(metrics -> 'ensemble' -> 'weights') w) <= 3 FROM r5),
          'of two or three trials, three picks at most');
SELECT is((SELECT count(*)::int FROM r5, jsonb_array_elements_text(metrics -> 'ensemble' -> 'trials') tr
             JOIN cai_trials t ON t.trial = tr::int AND t.tuning_id = :t5 AND t.state = 'succeeded'),
          (SELECT jsonb_array_length(metrics -> 'ensemble' -> 'trials') FROM r5), 'its members are succeeded trials of the search');
SELECT ok((SELECT (metrics ->> 'score')::float8 = (metrics ->> 'accuracy')::float8
                  AND (metrics ->> 'log_prob')::float8 >= (metrics ->> 'first_log_prob')::float8 FROM r5),
          'its validation score is its own accuracy; its log-probability is at least the best trial''s');
SELECT is((cai_evaluate('tune_ens', 'tap_tune.noisy_valid') ->> 'accuracy')::float8, (SELECT (metrics ->> 'accuracy')::float8 FROM r5),
          'the stored ensemble scores on the validation rows what the search chose it for');
SELECT is((SELECT round(sum(value::float8)::numeric, 4) FROM jsonb_each_text(cai_predict_proba('tune_ens', 'good great w3'))), 1.0000,
          'its probabilities sum to 1');
SELECT is(cai_predict('tune_ens', 'good great w3'), 'pos', 'it predicts');
SELECT ok((SELECT metrics ? 'drift_reference' FROM cai_model_details WHERE name = 'tune_ens'), 'with a drift reference like any model');
SELECT is((SELECT cai_import('tune_ens_copy', cai_export('tune_ens')) IS NOT NULL), true, 'exported and imported');
SELECT throws_like($$SELECT * FROM cai_train('tune_bad', 'sentiment', 'tap_tune.small', options => '{"architecture": "ensemble"}')$$,
                   '%ensemble models are not trained%', 'an ensemble is not trained by cai_train');
SELECT throws_like($$SELECT * FROM cai_tune('tune_bad', 'ner', 'tap_tune.ner', 'tokens', 'tags', '{"ensemble": 2}')$$,
                   '%"ensemble" applies to classifiers%', 'an NER search keeps the best trial alone');

-- seed trials (search key "seeds"): the best configuration again with other seeds and the same validation split,
-- stored as the mean of the three
CREATE TEMP TABLE r6 AS
  SELECT * FROM cai_tune('tune_seeds', 'sentiment', 'tap_tune.noisy', search => '{"architecture": "fast", "max_trials": 4, "seeds": 2}');
SELECT (metrics -> 'tuning' ->> 'tuning_id')::bigint AS t6, (metrics -> 'tuning' -> 'search' ->> 'seeds')::int AS s6,
       (metrics -> 'tuning' -> 'search' ->> 'ensemble')::int AS e6 FROM r6 \gset
SELECT is(:s6 || ' ' || :e6, '2 1', 'seeds 2 recorded (and no ensemble selection)');
SELECT is((SELECT string_agg(options ->> 'seed' || '/' || (options ->> 'validation_seed') || '/' || state, ' ' ORDER BY trial)
             FROM cai_trials WHERE tuning_id = :t6 AND trial >= 4), '43/42/succeeded 44/42/succeeded',
          'after the schedule two trials with seeds 43 and 44 and the split of seed 42');
SELECT is((SELECT count(DISTINCT (config, epochs, options - 'seed' - 'validation_seed' - 'max_seconds'))::int
             FROM cai_trials WHERE tuning_id = :t6 AND (trial >= 4 OR trial = (SELECT trial FROM cai_trials WHERE tuning_id = :t6 AND trial < 4
                                                                                 ORDER BY validation_score DESC, rung DESC, trial LIMIT 1))),
          1, 'they train the best schedule trial''s configuration and epochs');
SELECT ok((SELECT bool_and(validation_score IS NOT NULL) FROM cai_trials WHERE tuning_id = :t6), 'every trial has a validation score');
SELECT is((SELECT m.architecture || ' ' || (r6.metrics -> 'ensemble' ->> 'rule') || ' ' || (r6.metrics -> 'ensemble' ->> 'weights')
             || ' ' || (r6.metrics -> 'ensemble' -> 'trials' -> 0 = r6.metrics -> 'tuning' -> 'best_trial')::text
             || ' ' || (r6.metrics -> 'ensemble' -> 'trials' -> 1) || ' ' || (r6.metrics -> 'ensemble' -> 'trials' -> 2)
             FROM cai_models m, r6 WHERE m.name = r6.name AND m.version = r6.version),
          'ensemble mean of seeds [1, 1, 1] true 4 5', 'the stored version is the mean of the best trial and its two seed trials');
SELECT throws_like($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"seeds": 2, "ensemble": 2}')$$,
                   '%"ensemble" and "seeds" are alternatives%', 'seeds and an ensemble selection are alternatives');

-- budgets: a time budget too short for any trial; every trial refused by cai.training_memory
SELECT throws_ok($$SELECT * FROM cai_tune('tune_none', 'sentiment', 'tap_tune.small', search => '{"architecture": "fast", "max_seconds": 0.1}')$$,
                 '54000', 'no trial of the search finished', 'max_seconds stops the search');
SELECT coalesce(max(job_id), 0) AS jmax FROM cai_jobs \gset
SET cai.training_memory = '1MB';
SELECT throws_like($$SELECT * FROM cai_tune('tune_mem', 'sentiment', 'tap_tune.small', search => '{"architecture": "fast", "max_trials": 3, "dimensions": [1000]}')$$,
                   'no trial of the search finished', 'cai.training_memory refuses each trial');
RESET cai.training_memory;
SELECT is((SELECT count(*)::int FROM cai_trials WHERE model = 'tune_mem' AND job_id > :jmax AND state = 'failed' AND error LIKE 'training would need%'),
          2, 'the refused trials are recorded as failed with the reason');

-- bad searches: 22023 naming the option
SELECT throws_like($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"learnin_rate": 0.1}')$$,
                   '%unknown option "learnin_rate" in the search%', 'an unknown option is refused');
SELECT throws_ok($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"dropout": {"min": 0.5, "max": 0.1}}')$$,
                 '22023', NULL, 'a reversed range is 22023');
SELECT throws_like($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"learning_rate": {"min": 0.1, "max": 50}}')$$,
                   '%option "learning_rate": the range must lie within%', 'a range beyond the option''s bounds is refused');
SELECT throws_ok($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"max_trials": 0}')$$,
                 '22023', NULL, 'a bad trial budget is 22023');
SELECT throws_ok($$SELECT * FROM cai_tune('tune_bad', 'vectors', 'tap_tune.small')$$, '0A000', NULL, 'word vectors are not tunable');
SELECT throws_ok($$SELECT * FROM cai_tune('tune_bad', 'sentiment', NULL)$$, '22004', 'argument 3 of cai_tune must not be NULL',
                 'a NULL source is refused');
SELECT throws_like($$SELECT * FROM cai_tune('tune_bad', 'sentiment', 'tap_tune.small', search => '{"architecture": ["fast"]}')$$,
                   '%option "architecture" must be one architecture name%', 'the architecture is one name');
SELECT throws_ok($$SELECT cai_tune_async('tune_bad', 'sentiment', 'tmp_rows')$$, '0A000', NULL,
                 'cai_tune_async refuses a temporary table as cai_train_async does');

-- asynchronous: a job with progress, its trials, cai_wait; cancel stops the running trial and the search
SELECT cai_tune_async('tune_async', 'sentiment', 'tap_tune.small', search => '{"architecture": "fast", "max_trials": 4}') AS j1 \gset
SELECT is((SELECT state || ' ' || version || ' ' || progress FROM cai_wait(:j1)), 'succeeded 1 1', 'cai_tune_async succeeds and stores a version');
SELECT is((SELECT count(*)::int FROM cai_trials WHERE tuning_id = :j1),
          (SELECT (metrics -> 'tuning' ->> 'trials_run')::int FROM cai_model_details WHERE name = 'tune_async'),
          'its trials carry the job id as tuning_id');
SELECT cai_tune_async('tune_cancel', 'sentiment', 'tap_tune.slow',
                      search => '{"architecture": "fast", "epochs": 1000, "patience": 0, "max_trials": 3}') AS j2 \gset
SELECT pg_temp.wait_for(format('SELECT count(*) > 0 FROM cai_trials WHERE tuning_id = %s AND state = %L', :j2, 'running'), 20) \g /dev/null
SELECT is(cai_cancel(:j2), true, 'cancel a tuning job');
SELECT is((SELECT state FROM cai_wait(:j2)), 'cancelled', 'the tuning job ends cancelled');
SELECT is((SELECT string_agg(state, ',') FROM cai_trials WHERE tuning_id = :j2), 'cancelled', 'its running trial is cancelled');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tune_cancel'), 0, 'a cancelled search stores nothing');
SELECT is(pg_postmaster_start_time(), :'start_time'::timestamptz, 'the server never restarted');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'tune%') m;
DROP SCHEMA tap_tune CASCADE;
