-- Settings defined when set or needed (PostgreSQL 15, see cai_synergy.c):
-- loading the library defines none of the seven settings; a SET made after
-- (or before) the load is noticed before the next statement runs (an
-- ExecutorStart hook, outside parallel mode) and applied with the privilege
-- check of the role that made it; training defines them on first use.  Each
-- case needs a connection that has not defined them yet: fresh sessions
-- through dblink.  On PostgreSQL 16 and later all are defined at load.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE SCHEMA tap_lazy;
CREATE TABLE tap_lazy.r AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine ' || g ELSE 'bad awful poor ' || g END AS text, g % 2 AS label
    FROM generate_series(1, 200) g;
CREATE TABLE tap_lazy.long AS SELECT repeat('good ', 600) || g AS text FROM generate_series(1, 40) g;
ALTER TABLE tap_lazy.long SET (parallel_workers = 2);
ALTER TABLE tap_lazy.r SET (parallel_workers = 2);
GRANT USAGE ON SCHEMA tap_lazy TO PUBLIC;
GRANT SELECT ON tap_lazy.long TO PUBLIC;
CREATE ROLE tap_lazy_user;
SELECT current_setting('server_version_num')::int >= 160000 AS pg16 \gset
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT 1 FROM cai_train('lazy_m', 'sentiment', 'tap_lazy.r', options => '{"architecture": "fast", "epochs": 2}') \g /dev/null
-- a statement in a session: its single text value
CREATE FUNCTION tap_lazy.q(conn text, sql text) RETURNS text LANGUAGE sql AS
  $$SELECT v FROM dblink(conn, sql) AS t(v text)$$;
CREATE FUNCTION tap_lazy.defined(conn text) RETURNS text LANGUAGE sql AS
  $$SELECT tap_lazy.q(conn, $q$SELECT concat_ws(',', current_setting('cai.default_model', true) IS NOT NULL,
       current_setting('cai.max_input_length', true) IS NOT NULL, current_setting('cai.shared_cache_size', true) IS NOT NULL,
       current_setting('cai.training_memory', true) IS NOT NULL, current_setting('cai.threads', true) IS NOT NULL)$q$)$$;
SELECT CASE WHEN :'pg16' THEN 't,t,t,t,t' ELSE 'f,f,f,f,f' END AS none_yet \gset

SELECT plan(15);

-- a connection that predicts
SELECT dblink_connect('fresh', :'conninfo') \g /dev/null
SELECT is(tap_lazy.q('fresh', $$SELECT cai_predict('lazy_m', 'good great fine film')$$), '0',
          'a new connection predicts');
SELECT is(tap_lazy.defined('fresh'), :'none_yet',
          'loading the library and predicting define no setting (PostgreSQL 15; all at load on 16 and later)');
SELECT is(dblink_exec('fresh', $$SET cai.max_input_length = 2048$$), 'SET', 'SET after the library loaded is kept');
SELECT dblink_exec('fresh', s) FROM unnest(ARRAY['SET parallel_setup_cost = 0', 'SET parallel_tuple_cost = 0',
       'SET min_parallel_table_scan_size = 0', 'SET max_parallel_workers_per_gather = 2']) s \g /dev/null
SELECT throws_ok($$SELECT * FROM dblink('fresh', 'SELECT count(cai_predict(''lazy_m'', text))::text FROM tap_lazy.long') AS t(v text)$$,
                 '54000', NULL, 'the value SET applies to the next query, a parallel one (texts of 3,000 bytes refused)');
SELECT is(tap_lazy.q('fresh', $$SELECT current_setting('cai.max_input_length')$$), '2048',
          'the setting is now defined with the value SET');
SELECT is(tap_lazy.defined('fresh'), 't,t,t,t,t', 'all seven are defined together');
SELECT ok(tap_lazy.q('fresh', $$EXPLAIN (FORMAT JSON) SELECT count(cai_predict('lazy_m', text)) FROM tap_lazy.long$$)
          LIKE '%"Gather"%', 'that query was planned parallel (a Gather)');
SELECT ok((tap_lazy.q('fresh', $$EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(cai_predict('lazy_m', text)) FROM tap_lazy.r$$)::jsonb
           #>> '{0,Plan,Plans,0,Workers Launched}')::int >= 1, 'shorter texts are predicted by parallel workers');
SELECT dblink_disconnect('fresh') \g /dev/null

-- a SET of a superuser setting by another role, before it is defined, is refused when defined
SELECT dblink_connect('role', :'conninfo') \g /dev/null
SELECT tap_lazy.q('role', 'SELECT cai_version()') \g /dev/null
SELECT dblink_exec('role', s) FROM unnest(ARRAY['SET ROLE tap_lazy_user',
       'DO $d$BEGIN SET cai.max_input_length = 2048; EXCEPTION WHEN insufficient_privilege THEN NULL; END$d$',
       'RESET ROLE']) s \g /dev/null
SELECT lives_ok($$SELECT * FROM dblink('role', 'SELECT cai_predict(''lazy_m'', ''bad awful '' || repeat(''x'', 3000))') AS t(v text)$$,
                'a SET of cai.max_input_length by a role that may not set it is not applied when defined (refused at SET on 16)');
SELECT is(tap_lazy.q('role', $$SELECT current_setting('cai.max_input_length')$$), '10485760',
          'the default stays');
SELECT dblink_disconnect('role') \g /dev/null

-- a training setting SET before it is defined
SELECT dblink_connect('train', :'conninfo') \g /dev/null
SELECT tap_lazy.q('train', 'SELECT cai_version()') \g /dev/null
SELECT dblink_exec('train', 'SET cai.training_memory = ''1MB''') \g /dev/null
SELECT throws_like($$SELECT * FROM dblink('train', 'SELECT name FROM cai_train(''lazy'', ''sentiment'', ''tap_lazy.r'', options => ''{"dimensions": 1000}'')') AS t(v text)$$,
                   '%training would need % MB of memory, more than cai.training_memory (1 MB)%',
                   'the value SET earlier applies to training');
SELECT is(tap_lazy.q('train', $$SELECT current_setting('cai.training_memory')$$), '1MB',
          'the setting exists with the value SET before');
SELECT dblink_disconnect('train') \g /dev/null

-- this session has trained: every setting exists, is validated and the prefix is reserved
SELECT throws_ok($$SET cai.threads = 'many'$$, '22023', NULL, 'a defined setting validates its value');
SELECT throws_ok($$SET cai.no_such_setting = 1$$, '42602', NULL, 'the cai prefix is reserved once all are defined');
SELECT lives_ok($$SELECT * FROM cai_train('lazy', 'sentiment', 'tap_lazy.r', options => '{"architecture": "fast", "epochs": 1}')$$,
                'training works with the defaults');

SELECT * FROM finish();
SELECT cai_drop_model('lazy');
SELECT cai_drop_model('lazy_m');
DROP SCHEMA tap_lazy CASCADE;
DROP ROLE tap_lazy_user;
