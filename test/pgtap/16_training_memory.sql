-- Training memory (issue 11): text classification rows are kept as token ids
-- once read, and the estimate counts them (and, for the fast architecture,
-- the buckets its rows use); a training over cai.training_memory is refused
-- before it allocates, for each task, and nothing is stored.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_mem;
CREATE TABLE tap_mem.r AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine film ' || g ELSE 'bad awful poor film ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 400) g;
CREATE TABLE tap_mem.s AS
  SELECT ARRAY['Ann', 'met', 'Bob', 'in', 'Paris', g::text] AS tokens,
         ARRAY['B-PER', 'O', 'B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 100) g;

SELECT plan(8);
SET cai.training_memory = '1MB';
SELECT throws_like($$SELECT * FROM cai_train('mem_fast', 'sentiment', 'tap_mem.r', options => '{"architecture": "fast"}')$$,
                   'training would need % MB of memory, more than cai.training_memory (1 MB)', 'fast: refused over the limit');
SELECT throws_like($$SELECT * FROM cai_train('mem_acc', 'sentiment', 'tap_mem.r', options => '{"architecture": "accurate"}')$$,
                   'training would need % MB of memory, more than cai.training_memory (1 MB)', 'accurate: refused over the limit');
SELECT throws_like($$SELECT * FROM cai_train('mem_ner', 'ner', 'tap_mem.s', 'tokens', 'tags')$$,
                   'training would need % MB of memory, more than cai.training_memory (1 MB)', 'NER: refused over the limit');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name IN ('mem_fast', 'mem_acc', 'mem_ner')), 0,
          'a refused training stores nothing');
-- within a limit that holds the estimate (the bucket map alone is 8 MB) the same training runs
SET cai.training_memory = '48MB';
SELECT lives_ok($$SELECT * FROM cai_train('mem_fast', 'sentiment', 'tap_mem.r', options => '{"architecture": "fast", "epochs": 2}')$$,
                'fast: trains within 48 MB');
RESET cai.training_memory;
-- the rows as token ids train the same model again (same options and seed)
SELECT lives_ok($$SELECT * FROM cai_train('mem_fast2', 'sentiment', 'tap_mem.r', options => '{"architecture": "fast", "epochs": 2}')$$,
                'fast: trained again');
SELECT is((SELECT md5(cai_export('mem_fast'))), (SELECT md5(cai_export('mem_fast2'))), 'the same model bytes');
SELECT is((SELECT cai_predict('mem_fast', 'a good great film')), '0', 'the model predicts its training rows'' class');

SELECT * FROM finish();
SELECT cai_drop_model('mem_fast');
SELECT cai_drop_model('mem_fast2');
DROP SCHEMA tap_mem CASCADE;
