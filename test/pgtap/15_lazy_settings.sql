-- Settings defined on first use (PostgreSQL 15, see cai_synergy.c): loading
-- the library defines what an inference reads; the training and catalog
-- settings are defined by the first function that reads one, and a SET made
-- before that is kept and applied then.  (That a new connection's
-- cai_predict leaves them undefined is checked by test/faults/load.sh, which
-- opens new connections.)
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_lazy;
CREATE TABLE tap_lazy.r AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine ' || g ELSE 'bad awful poor ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 200) g;
SELECT current_setting('server_version_num')::int >= 160000 AS pg16 \gset

SELECT plan(11);
SELECT is(cai_version() IS NOT NULL, true, 'the library is loaded');
SELECT ok(current_setting('cai.max_input_length', true) IS NOT NULL AND current_setting('cai.default_model', true) IS NOT NULL
          AND current_setting('cai.shared_cache_size', true) IS NOT NULL, 'the settings an inference reads are defined at load');
SELECT is(current_setting('cai.training_memory', true) IS NULL, NOT :'pg16'::bool,
          'a training setting is not defined yet (PostgreSQL 15; at load on 16 and later)');
SELECT lives_ok($$SET cai.training_memory = '1MB'$$, 'SET before the setting is defined is kept');
SELECT throws_like($$SELECT * FROM cai_train('lazy', 'sentiment', 'tap_lazy.r', options => '{"dimensions": 1000}')$$,
                   'training would need % MB of memory, more than cai.training_memory (1 MB)',
                   'the value SET earlier applies when training defines the setting');
SELECT is(current_setting('cai.training_memory'), '1MB', 'the setting now exists with the value SET before');
RESET cai.training_memory;
SELECT isnt(current_setting('cai.threads', true), NULL, 'the other settings were defined with it');
SELECT isnt(current_setting('cai.max_model_size', true), NULL, 'cai.max_model_size too');
SELECT throws_ok($$SET cai.threads = 'many'$$, '22023', NULL, 'a defined setting validates its value');
SELECT throws_ok($$SET cai.no_such_setting = 1$$, '42602', NULL, 'the cai prefix is reserved once all are defined');
SELECT lives_ok($$SELECT * FROM cai_train('lazy', 'sentiment', 'tap_lazy.r', options => '{"architecture": "fast", "epochs": 1}')$$,
                'training works with the defaults restored');

SELECT * FROM finish();
SELECT cai_drop_model('lazy');
DROP SCHEMA tap_lazy CASCADE;
