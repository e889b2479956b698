-- ner_train.sql: one timed cai_train of an entity model for bench/ner.sh,
-- then cai_evaluate of the result on the test table.  psql variables:
--   model    model name (a new name per run, so the first version is deployed)
--   opts     cai_train options, a JSON object
--   tag      prefix of the RESULT keys
--   threads  value for SET cai.threads (the cap of the "threads" option)
--   pmstat   /proc/<postmaster pid>/stat: the training runs in a background
--            worker; when it exits the postmaster reaps it and its CPU time
--            (all its threads) is added to the postmaster's cutime/cstime
--            (fields 16 and 17), so their difference is the worker's CPU time
--   ticks    clock ticks per second (getconf CLK_TCK)
-- Prints "RESULT <tag>_<key> <value>" lines; the per-epoch NOTICEs go to
-- stderr, where bench/ner.sh stamps each with its arrival time.
\set ON_ERROR_STOP 1
SET cai.threads = :threads;
SELECT split_part(s, ' ', 16)::bigint + split_part(s, ' ', 17)::bigint AS pm_cpu0
  FROM pg_read_file(:'pmstat') s \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT version AS v, metrics AS m
  FROM cai_train(:'model', 'ner', 'ner_train', 'tokens', 'tags', :'opts'::jsonb) \gset
SELECT 'RESULT ' || :'tag' || '_wall ' || round(extract(epoch FROM clock_timestamp()) - :t0, 3);
-- the worker has been reaped once cai_train returns; wait up to 2 s to be sure
SELECT split_part(s, ' ', 16)::bigint + split_part(s, ' ', 17)::bigint AS pm_cpu1
  FROM pg_read_file(:'pmstat') s \gset
SELECT pg_sleep(0.5) WHERE :pm_cpu1 = :pm_cpu0;
SELECT 'RESULT ' || :'tag' || '_worker_cpu ' ||
       round((split_part(s, ' ', 16)::bigint + split_part(s, ' ', 17)::bigint - :pm_cpu0) / :ticks.0, 2)
  FROM pg_read_file(:'pmstat') s;
\echo RESULT :tag'_t0' :t0
\echo RESULT :tag'_version' :v
\echo RESULT :tag'_metrics' :m
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT cai_evaluate(:'model', 'ner_test', 'tokens', 'tags') AS e \gset
SELECT 'RESULT ' || :'tag' || '_evaluate_wall ' || round(extract(epoch FROM clock_timestamp()) - :t0, 3);
\echo RESULT :tag'_test' :e
