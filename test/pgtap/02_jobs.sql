-- Asynchronous training jobs: lifecycle, queueing, cancel, wait, visibility
-- between roles, limits.  Tables are committed because workers read them.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_jobs;
CREATE TABLE tap_jobs.small AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great ' || g ELSE 'bad awful ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 400) g;
CREATE TABLE tap_jobs.slow AS
  SELECT 'word' || (g % 5000) || ' other' || (g % 333) AS text, (g % 3) AS label
    FROM generate_series(1, 30000) g;
CREATE ROLE tap_jobs_a LOGIN;
CREATE ROLE tap_jobs_b LOGIN;
GRANT USAGE ON SCHEMA tap_jobs TO tap_jobs_a, tap_jobs_b;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_jobs TO tap_jobs_a, tap_jobs_b;
\ir lib/wait_for.sql

SELECT plan(23);
SELECT pg_postmaster_start_time() AS start_time \gset

-- a job that succeeds
SELECT cai_train_async('job_ok', 'sentiment', 'tap_jobs.small') AS j1 \gset
SELECT ok(:j1 > 0, 'cai_train_async returns a job id at once');
SELECT is((SELECT state FROM cai_wait(:j1)), 'succeeded', 'the job succeeds');
SELECT is((SELECT version FROM cai_jobs WHERE job_id = :j1), 1, 'it reports the version it produced');
SELECT is((SELECT progress FROM cai_jobs WHERE job_id = :j1), 1::float8, 'progress reaches 1');
SELECT ok((SELECT epoch BETWEEN 1 AND epochs AND loss IS NOT NULL AND validation_score IS NOT NULL AND rows_per_sec > 0
             AND started_at IS NOT NULL AND finished_at >= started_at FROM cai_jobs WHERE job_id = :j1),
          'epoch, loss, validation score, rows/s and times are recorded');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'job_ok' AND deployed), 1, 'the model is stored and deployed');
SELECT is((SELECT state FROM cai_wait(:j1)), 'succeeded', 'cai_wait on a finished job returns at once');
SELECT is(cai_cancel(:j1), false, 'cancelling a finished job returns false');

-- a job that fails
SELECT cai_train_async('job_bad', 'sentiment', 'SELECT 1/0 AS text, 1 AS label') AS j2 \gset
SELECT is((SELECT state || ': ' || error FROM cai_wait(:j2)), 'failed: division by zero', 'a failing job records its error');

-- queueing and cancel: with one job at a time, the second waits as queued
SET cai.max_training_jobs = 1;
SELECT cai_train_async('job_slow', 'sentiment', 'tap_jobs.slow', options => '{"architecture": "fast", "epochs": 1000, "patience": 0}') AS j3 \gset
SELECT pg_temp.wait_for(format('SELECT state = %L AND progress > 0 FROM cai_jobs WHERE job_id = %s', 'running', :j3)) \g /dev/null
SELECT cai_train_async('job_queued', 'sentiment', 'tap_jobs.small') AS j4 \gset
SELECT pg_temp.wait_for(format('SELECT state = %L FROM cai_jobs WHERE job_id = %s', 'queued', :j4)) \g /dev/null
RESET cai.max_training_jobs;
SELECT is((SELECT state FROM cai_jobs WHERE job_id = :j3), 'running', 'the first job runs');
SELECT is((SELECT state FROM cai_jobs WHERE job_id = :j4), 'queued', 'the second job is queued');
SELECT ok((SELECT estimated_time_left IS NOT NULL FROM cai_jobs WHERE job_id = :j3), 'a running job estimates its time left');
SELECT is(cai_cancel(:j4), true, 'cancel a queued job');
SELECT is((SELECT state FROM cai_wait(:j4)), 'cancelled', 'the queued job ends cancelled');
SELECT is(cai_cancel(:j3), true, 'cancel a running job');
SELECT is((SELECT state FROM cai_wait(:j3)), 'cancelled', 'cai_wait on a cancelled job');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name IN ('job_slow', 'job_queued')), 0, 'cancelled jobs store nothing');

-- roles see and cancel only their own jobs
SET ROLE tap_jobs_a;
SELECT cai_train_async('job_a', 'sentiment', 'tap_jobs.slow', options => '{"epochs": 1000, "patience": 0}') AS j5 \gset
SET ROLE tap_jobs_b;
SELECT is((SELECT count(*)::int FROM cai_jobs WHERE job_id = :j5), 0, 'another role cannot see the job');
SELECT throws_ok(format('SELECT cai_cancel(%s)', :j5), '42704', NULL, 'nor cancel it');
SET ROLE tap_jobs_a;
SELECT is((SELECT count(*)::int FROM cai_jobs WHERE job_id = :j5), 1, 'its owner sees it');
SELECT is(cai_cancel(:j5), true, 'and cancels it');
RESET ROLE;
SELECT is((SELECT state FROM cai_wait(:j5)), 'cancelled', 'a superuser sees every job');

-- memory limit: refused before allocating, with the amount in the message
SET cai.training_memory = '1MB';
SELECT throws_like($$SELECT * FROM cai_train('job_mem', 'sentiment', 'tap_jobs.small', options => '{"dimensions": 1000}')$$,
                   'training would need % MB of memory, more than cai.training_memory (1 MB)', 'cai.training_memory refuses a job');
RESET cai.training_memory;

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'job%') m;
DROP SCHEMA tap_jobs CASCADE;
DROP OWNED BY tap_jobs_a, tap_jobs_b;
DROP ROLE tap_jobs_a;
DROP ROLE tap_jobs_b;
