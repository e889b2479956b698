-- The contract of a model name: it keeps the task of its first version
-- (training, importing, deploying or rolling back to a version of another task
-- is refused with SQLSTATE 42809), automatic deployment compares only versions
-- with the same labels (NER: entity types), explicit deployment may change the
-- labels, cai_models / cai_model_info say whose labels differ from the deployed
-- version's, and concurrent trainings and deployments of one name from several
-- sessions keep versions unique, one version deployed and a consistent history.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_mc;
CREATE TABLE tap_mc.pn AS
  SELECT CASE WHEN g % 2 = 0 THEN (ARRAY['a great film', 'loved it', 'superb and moving'])[1 + g % 3]
              ELSE (ARRAY['a terrible film', 'hated it', 'dull and boring'])[1 + g % 3] END || ' ' || (g % 7) AS text,
         CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, 400) g;
-- the same texts with every label wrong: a validation set that scores 0
CREATE TABLE tap_mc.pn_inverted AS
  SELECT text, CASE WHEN label = 'positive' THEN 'negative' ELSE 'positive' END AS label FROM tap_mc.pn;
-- grown: a third class
CREATE TABLE tap_mc.pnn AS
  SELECT * FROM tap_mc.pn
  UNION ALL SELECT 'it was a film ' || g, 'neutral' FROM generate_series(1, 200) g;
-- renamed: the same classes under other names
CREATE TABLE tap_mc.renamed AS
  SELECT text, CASE WHEN label = 'positive' THEN 'good' ELSE 'bad' END AS label FROM tap_mc.pn;
CREATE TABLE tap_mc.ner AS
  SELECT ARRAY[(ARRAY['John','Mary','Ahmed','Li','Olga'])[1 + g % 5], 'lives', 'in', (ARRAY['Paris','Tokyo','Lima'])[1 + g % 3], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 200) g;
CREATE TABLE tap_mc.ner_org AS
  SELECT ARRAY[(ARRAY['John','Mary','Ahmed','Li','Olga'])[1 + g % 5], 'works', 'for', (ARRAY['Acme','Hooli','Globex'])[1 + g % 3], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-ORG', 'O'] AS tags
    FROM generate_series(1, 200) g
  UNION ALL SELECT tokens, tags FROM tap_mc.ner;
-- a statement's outcome as text: 'ok' or its SQLSTATE (used from other sessions too)
CREATE FUNCTION tap_mc.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
-- 20 rounds of deploying the latest version and version 1, and of rolling
-- back, each in its own transaction; 'ok' unless one failed (a rollback may
-- find nothing to roll back to: 55000)
CREATE PROCEDURE tap_mc.deploy_loop(INOUT result text) LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  result := 'ok';
  FOR i IN 1..20 LOOP
    r := tap_mc.outcome('SELECT cai_deploy(''mc_conc'')');
    IF r <> 'ok' THEN result := r; END IF;
    COMMIT;
    r := tap_mc.outcome('SELECT cai_deploy(''mc_conc'', 1)');
    IF r <> 'ok' THEN result := r; END IF;
    COMMIT;
  END LOOP;
END $$;
CREATE PROCEDURE tap_mc.rollback_loop(INOUT result text) LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  result := 'ok';
  FOR i IN 1..20 LOOP
    r := tap_mc.outcome('SELECT cai_rollback(''mc_conc'')');
    IF r NOT IN ('ok', '55000') THEN result := r; END IF;
    COMMIT;
  END LOOP;
END $$;
CREATE FUNCTION tap_mc.deployed(m text) RETURNS integer LANGUAGE sql AS
  $$SELECT version FROM cai_models WHERE name = m AND deployed$$;
CREATE FUNCTION tap_mc.changed(m text, v integer) RETURNS boolean LANGUAGE sql AS
  $$SELECT labels_changed FROM cai_models WHERE name = m AND version = v$$;
CREATE FUNCTION tap_mc.versions(m text) RETURNS bigint LANGUAGE sql AS
  $$SELECT count(*) FROM cai_models WHERE name = m$$;

SELECT plan(56);

-- ---- a name keeps its task
SELECT lives_ok($$SELECT * FROM cai_train('mc', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$, 'a text model');
SELECT lives_ok($$SELECT * FROM cai_train('mc_ner', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 2}')$$, 'an NER model');
SELECT throws_ok($$SELECT * FROM cai_train('mc', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 1}')$$,
                 '42809', 'model "mc" is a text_classification model, not ner',
                 'training an NER version of a text model is refused before training');
SELECT throws_ok($$SELECT cai_train_async('mc', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 1}')$$,
                 '42809', NULL, 'so is an asynchronous one');
SELECT throws_ok($$SELECT * FROM cai_train('mc_ner', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$,
                 '42809', 'model "mc_ner" is a ner model, not text_classification', 'and a text version of an NER model');
SELECT throws_ok($$SELECT cai_import('mc', cai_export('mc_ner'))$$,
                 '42809', 'model "mc" is a text_classification model, not ner', 'importing an NER model as a version of a text model is refused');
SELECT throws_ok($$SELECT cai_import('mc_ner', cai_export('mc'))$$, '42809', NULL, 'and the other way round');
SELECT is(tap_mc.versions('mc') + tap_mc.versions('mc_ner'), 2::bigint, 'nothing was stored by the refusals');
SELECT is(cai_predict('mc', 'loved it'), 'positive', 'the text model still answers with a label');
SELECT lives_ok($$SELECT cai_import('mc', cai_export('mc'))$$, 'a version of the same task is accepted');
SELECT is(tap_mc.deployed('mc'), 1, 'an imported version does not replace a deployed one');
SELECT lives_ok($$SELECT cai_drop_model('mc_ner')$$, 'drop the NER model');
SELECT lives_ok($$SELECT cai_import('mc_ner', cai_export('mc'))$$, 'a dropped name may take another task');
SELECT is((SELECT task FROM cai_models WHERE name = 'mc_ner'), 'text_classification', 'it did');

-- ---- models stored by 0.1.0 with versions of two tasks (planted directly)
SELECT lives_ok($$SELECT * FROM cai_train('mc_ner2', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 2}')$$, 'another NER model');
INSERT INTO cai_model_store (name, version, task, model, metadata, owner)
  SELECT 'mc', 3, task, model, metadata, owner FROM cai_model_store WHERE name = 'mc_ner2';
SELECT throws_ok($$SELECT cai_deploy('mc', 3)$$, '42809', 'model "mc" is a text_classification model, not ner',
                 'deploying a version of another task is refused');
SELECT throws_ok($$SELECT cai_deploy('mc')$$, '42809', NULL, 'also as "the latest version"');
SELECT is(tap_mc.deployed('mc'), 1, 'version 1 stays deployed');
SELECT ok(tap_mc.changed('mc', 3), 'cai_models: the NER version differs from the deployed one');
-- two statements: the unique index on deployed versions is checked row by row
UPDATE cai_model_store SET deployed = false WHERE name = 'mc';
UPDATE cai_model_store SET deployed = true WHERE name = 'mc' AND version = 3;
INSERT INTO cai_deployments (name, version) VALUES ('mc', 1), ('mc', 3);
SELECT is(cai_rollback('mc'), 1, 'rolling back from a planted NER deployment to the text version works');
UPDATE cai_model_store SET deployed = (version = 1) WHERE name = 'mc';
INSERT INTO cai_deployments (name, version) VALUES ('mc', 3), ('mc', 1);
SELECT throws_ok($$SELECT cai_rollback('mc')$$, '42809', NULL, 'rolling back to a version of another task is refused');
SELECT is(tap_mc.deployed('mc'), 1, 'version 1 stays deployed');
SELECT lives_ok($$SELECT cai_drop_model('mc', 3)$$, 'the owner drops the version of the other task');
SELECT is(tap_mc.deployed('mc'), 1, 'and the model is whole again');

-- ---- automatic deployment compares only versions with the same labels
SELECT lives_ok($$SELECT * FROM cai_train('mc_grow', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$, 'grow: two classes');
SELECT lives_ok($$SELECT * FROM cai_train('mc_grow', 'sentiment', 'tap_mc.pnn', options => '{"architecture": "fast", "epochs": 5}')$$, 'grow: three classes');
SELECT is(tap_mc.deployed('mc_grow'), 1, 'grown labels: not deployed automatically');
SELECT ok(tap_mc.changed('mc_grow', 2) AND NOT tap_mc.changed('mc_grow', 1), 'cai_models.labels_changed says which version differs');
SELECT is((cai_model_info('mc_grow', 2) ->> 'labels_changed')::boolean, true, 'so does cai_model_info');
SELECT is(cai_deploy('mc_grow', 2), 2, 'an explicit cai_deploy changes the labels');
SELECT is(cai_predict('mc_grow', 'it was a film 7'), 'neutral', 'the new label is predicted');
SELECT ok(tap_mc.changed('mc_grow', 1) AND NOT tap_mc.changed('mc_grow', 2), 'labels_changed follows the deployed version');

SELECT lives_ok($$SELECT * FROM cai_train('mc_shrink', 'sentiment', 'tap_mc.pnn', options => '{"architecture": "fast", "epochs": 5}')$$, 'shrink: three classes');
SELECT lives_ok($$SELECT * FROM cai_train('mc_shrink', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$, 'shrink: two classes');
SELECT is(tap_mc.deployed('mc_shrink'), 1, 'shrunk labels: not deployed automatically');

SELECT lives_ok($$SELECT * FROM cai_train('mc_rename', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$, 'rename: positive/negative');
SELECT lives_ok($$SELECT * FROM cai_train('mc_rename', 'sentiment', 'tap_mc.renamed', options => '{"architecture": "fast", "epochs": 5}')$$, 'rename: good/bad');
SELECT is(tap_mc.deployed('mc_rename'), 1, 'renamed labels: not deployed automatically');
SELECT lives_ok($$SELECT * FROM cai_train('mc_rename', 'sentiment', 'tap_mc.renamed',
                                          options => '{"architecture": "fast", "epochs": 5, "deploy": "always"}')$$,
                'rename with deploy "always"');
SELECT is(tap_mc.deployed('mc_rename'), 3, 'deploy "always" deploys other labels');

-- same labels: the validation score decides (0 on the inverted validation set, 1 on the training split)
SELECT lives_ok($$SELECT * FROM cai_train('mc_score', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5, "validation_source": "tap_mc.pn_inverted"}')$$, 'score: a version scoring 0');
SELECT lives_ok($$SELECT * FROM cai_train('mc_score', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}')$$, 'score: a better version');
SELECT is(tap_mc.deployed('mc_score'), 2, 'same labels and a higher score: deployed');
SELECT lives_ok($$SELECT * FROM cai_train('mc_score', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5, "validation_source": "tap_mc.pn_inverted"}')$$, 'score: a worse version');
SELECT is(tap_mc.deployed('mc_score'), 2, 'same labels and a lower score: not deployed');

-- NER: entity types are the labels
SELECT lives_ok($$SELECT * FROM cai_train('mc_types', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 2}')$$, 'NER: PER, LOC');
SELECT lives_ok($$SELECT * FROM cai_train('mc_types', 'ner', 'tap_mc.ner_org', 'tokens', 'tags', '{"epochs": 2}')$$, 'NER: PER, LOC, ORG');
SELECT ok(tap_mc.deployed('mc_types') = 1 AND tap_mc.changed('mc_types', 2), 'another set of entity types: not deployed automatically');
SELECT lives_ok($$SELECT * FROM cai_train('mc_types', 'ner', 'tap_mc.ner', 'tokens', 'tags', '{"epochs": 3, "seed": 7}')$$, 'NER: PER, LOC again');
SELECT is(tap_mc.deployed('mc_types'),
          (SELECT CASE WHEN (v3.metrics ->> 'score')::float8 > (v1.metrics ->> 'score')::float8 THEN 3 ELSE 1 END
             FROM cai_model_details v1, cai_model_details v3
            WHERE v1.name = 'mc_types' AND v1.version = 1 AND v3.name = 'mc_types' AND v3.version = 3),
          'the same entity types: deployed exactly when the entity F1 is higher');

-- ---- concurrent trainings and deployments of one name from four sessions
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s', current_setting('unix_socket_directories'),
              current_setting('port'), current_database(), current_user) AS conninfo \gset
SELECT * FROM cai_train('mc_conc', 'sentiment', 'tap_mc.pn', options => '{"architecture": "fast", "epochs": 5}') \g /dev/null
SELECT dblink_connect('mc' || i, :'conninfo') FROM generate_series(1, 4) i \g /dev/null
SELECT dblink_send_query('mc1', $$SELECT tap_mc.outcome('SELECT * FROM cai_train(''mc_conc'', ''sentiment'', ''tap_mc.pn'', options => ''{"architecture": "fast", "epochs": 5, "seed": 1}'')')$$),
       dblink_send_query('mc2', $$SELECT tap_mc.outcome('SELECT * FROM cai_train(''mc_conc'', ''sentiment'', ''tap_mc.pnn'', options => ''{"architecture": "fast", "epochs": 5, "seed": 2}'')')$$),
       dblink_send_query('mc3', $$CALL tap_mc.deploy_loop(NULL)$$),
       dblink_send_query('mc4', $$CALL tap_mc.rollback_loop(NULL)$$) \g /dev/null
SELECT is(ARRAY(SELECT r FROM generate_series(1, 4) i, dblink_get_result('mc' || i) AS t(r text) ORDER BY i),
          ARRAY['ok', 'ok', 'ok', 'ok'], 'two trainings, 40 deployments and 20 rollbacks ran at the same time');
SELECT dblink_disconnect('mc' || i) FROM generate_series(1, 4) i \g /dev/null
SELECT is((SELECT array_agg(version ORDER BY version) FROM cai_models WHERE name = 'mc_conc'), ARRAY[1, 2, 3],
          'versions are unique and consecutive');
SELECT is((SELECT count(*) FROM cai_models WHERE name = 'mc_conc' AND deployed), 1::bigint, 'exactly one version is deployed');
SELECT is((SELECT version FROM cai_deployments WHERE name = 'mc_conc' ORDER BY id DESC LIMIT 1), tap_mc.deployed('mc_conc'),
          'the deployment history ends with the deployed version');

-- two sessions create one new name with different tasks: one wins, the other is refused
SELECT dblink_connect('mc' || i, :'conninfo') FROM generate_series(1, 2) i \g /dev/null
SELECT dblink_send_query('mc1', $$SELECT tap_mc.outcome('SELECT * FROM cai_train(''mc_race'', ''sentiment'', ''tap_mc.pn'', options => ''{"architecture": "fast", "epochs": 5}'')')$$),
       dblink_send_query('mc2', $$SELECT tap_mc.outcome('SELECT * FROM cai_train(''mc_race'', ''ner'', ''tap_mc.ner'', ''tokens'', ''tags'', ''{"epochs": 2}'')')$$) \g /dev/null
SELECT is(ARRAY(SELECT r FROM generate_series(1, 2) i, dblink_get_result('mc' || i) AS t(r text) ORDER BY r),
          ARRAY['42809', 'ok'], 'a new name trained with two tasks at once: one training is stored, the other refused');
SELECT dblink_disconnect('mc' || i) FROM generate_series(1, 2) i \g /dev/null
SELECT is((SELECT count(DISTINCT task) FROM cai_models WHERE name = 'mc_race'), 1::bigint, 'the name has one task');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'mc%') m \g /dev/null
DROP SCHEMA tap_mc CASCADE;
