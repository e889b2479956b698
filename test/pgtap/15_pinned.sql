-- Version-pinned inference: cai_predict(model, version, input) and
-- cai_predict_proba(model, version, input) answer as the unpinned functions do
-- with that version deployed, for deployed and other versions, in one
-- statement with the deployed version; a dropped version is an error; they
-- are IMMUTABLE (postgres_fdw ships them; generated columns and index
-- expressions may use them); cai_import(model, data, version) copies a
-- version under its own number.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_pin;
CREATE TABLE tap_pin.reviews AS
  SELECT g AS id,
         CASE WHEN g % 2 = 0 THEN 'a great film ' || repeat('truly ', g % 9) || (g % 7)
              ELSE 'a dull film ' || repeat('sadly ', g % 11) || (g % 5) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 400) g;
INSERT INTO tap_pin.reviews VALUES (401, '', 'pos'), (402, '非常好看 👍', 'pos'), (403, 'great but dull', 'neg');
CREATE TABLE tap_pin.ner AS
  SELECT ARRAY['Ann', 'visited', 'Oslo', '.'] AS tokens, ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 40) g;
CREATE ROLE tap_pin_user;
GRANT USAGE ON SCHEMA tap_pin TO tap_pin_user;
GRANT SELECT ON tap_pin.reviews TO tap_pin_user;

SELECT plan(43);

SELECT lives_ok($$SELECT * FROM cai_train('pin', 'sentiment', 'SELECT text, label FROM tap_pin.reviews',
                                          options => '{"architecture": "fast", "seed": 1, "epochs": 3}')$$, 'train version 1 (deployed)');
SELECT lives_ok($$SELECT * FROM cai_train('pin', 'sentiment', 'SELECT text, label FROM tap_pin.reviews',
                                          options => '{"architecture": "fast", "seed": 2, "epochs": 2, "deploy": "never"}')$$,
                'train version 2 (not deployed)');
SELECT lives_ok($$SELECT * FROM cai_train('pin_ner', 'ner', 'tap_pin.ner', 'tokens', 'tags', '{"epochs": 2}')$$, 'train an NER model');
SELECT is((SELECT string_agg(version || ':' || deployed, ',' ORDER BY version) FROM cai_models WHERE name = 'pin'), '1:true,2:false',
          'version 1 deployed, version 2 stored');

-- the functions' declarations
SELECT is((SELECT string_agg(p.oid::regprocedure::text || ' ' || p.provolatile::text || p.proisstrict::int || p.proparallel::text, ', '
                             ORDER BY p.oid::regprocedure::text)
             FROM pg_proc p WHERE p.proname IN ('cai_predict', 'cai_predict_proba')),
          'cai_predict(text) s1s, cai_predict(text,integer,text) i1s, cai_predict(text,text) s1s, '
          || 'cai_predict_proba(text,integer,text) i1s, cai_predict_proba(text,text) s1s',
          'pinned functions are IMMUTABLE STRICT PARALLEL SAFE; the unpinned ones stay STABLE');
SELECT is(cai_predict('pin', '2', 'a great film'), cai_predict('pin', 2, 'a great film'),
          'an unknown-typed version literal resolves to the pinned function');

-- the deployed version: the same answers as the unpinned functions, row by row
SELECT is((SELECT count(*)::int FROM tap_pin.reviews
            WHERE cai_predict('pin', 1, text) = cai_predict('pin', text)
              AND cai_predict_proba('pin', 1, text) = cai_predict_proba('pin', text)), 403,
          'version 1 pinned = deployed (labels and probabilities, every row)');
-- a version that is not deployed: the same answers as a copy of it deployed under another name
SELECT is(cai_import('pin_v2', cai_export('pin', 2)), 1, 'copy version 2 to a model of its own (deployed)');
SELECT is((SELECT count(*)::int FROM tap_pin.reviews
            WHERE cai_predict('pin', 2, text) = cai_predict('pin_v2', text)
              AND cai_predict_proba('pin', 2, text) = cai_predict_proba('pin_v2', text)), 403,
          'version 2 pinned = version 2 deployed elsewhere (every row)');
SELECT ok((SELECT count(*) FROM tap_pin.reviews WHERE cai_predict_proba('pin', 1, text) <> cai_predict_proba('pin', 2, text)) > 0,
          'the two versions differ (the checks above compare different models)');
CREATE TABLE tap_pin.v1 AS SELECT id, cai_predict('pin', 1, text) AS label, cai_predict_proba('pin', 1, text) AS proba FROM tap_pin.reviews;
SELECT is((SELECT count(*)::int FROM tap_pin.reviews r
            WHERE cai_predict('pin', r.text) = cai_predict('pin', 1, r.text)
              AND cai_predict_proba('pin', 2, r.text) = cai_predict_proba('pin_v2', r.text)
              AND cai_predict('pin', 2, r.text) = cai_predict('pin_v2', r.text)), 403,
          'deployed, version 1 and version 2 in one statement');

-- a deployment changes the unpinned answers, never the pinned ones
SELECT is(cai_deploy('pin', 2), 2, 'deploy version 2');
SELECT is((SELECT count(*)::int FROM tap_pin.reviews r JOIN tap_pin.v1 USING (id)
            WHERE cai_predict('pin', 1, r.text) = v1.label AND cai_predict_proba('pin', 1, r.text) = v1.proba), 403,
          'version 1 answers as before the deployment');
SELECT is((SELECT count(*)::int FROM tap_pin.reviews WHERE cai_predict_proba('pin', text) = cai_predict_proba('pin', 2, text)), 403,
          'the unpinned functions follow the deployment');

-- NER: cai_predict pinned gives the entities JSON; cai_predict_proba needs a text classifier
SELECT is(cai_predict('pin_ner', 1, 'Ann visited Oslo .'), cai_predict('pin_ner', 'Ann visited Oslo .'),
          'an NER version pinned gives the same entities');
SELECT throws_ok($$SELECT cai_predict_proba('pin_ner', 1, 'Ann visited Oslo .')$$, '42809', NULL,
                 'cai_predict_proba pinned to an NER model is refused (wrong task)');

-- bad inputs
SELECT is(cai_predict(NULL, 1, 'x'), NULL, 'NULL model gives NULL');
SELECT is(cai_predict('pin', NULL, 'x'), NULL, 'NULL version gives NULL');
SELECT is(cai_predict_proba('pin', 1, NULL), NULL, 'NULL input gives NULL');
SELECT throws_ok($$SELECT cai_predict('no such model', 1, 'x')$$, '42704', 'model "no such model" does not exist', 'unknown model');
SELECT throws_ok($$SELECT cai_predict('pin', 7, 'x')$$, '42704', 'model "pin" has no version 7', 'unknown version');
SELECT throws_ok($$SELECT cai_predict_proba('pin', 0, 'x')$$, '22023', 'model version must be positive, got 0', 'version 0');
SELECT throws_ok($$SELECT cai_predict('pin', -3, 'x')$$, '22023', 'model version must be positive, got -3', 'negative version');
SELECT throws_ok($$SELECT cai_predict('', 1, 'x')$$, '42602', 'model name must not be empty', 'empty model name');
SET cai.max_input_length = 1024;
SELECT throws_ok($$SELECT cai_predict('pin', 1, repeat('x', 2000))$$, '54000', 'input text is too long', 'cai.max_input_length');
RESET cai.max_input_length;

CREATE TABLE tap_pin.bytes AS SELECT cai_export('pin', 1) AS v1;
GRANT SELECT ON tap_pin.bytes TO tap_pin_user;
-- a dropped version is an error from the next statement on, in a session that had it loaded
SELECT is(cai_drop_model('pin', 1), 1, 'drop version 1');
SELECT throws_ok($$SELECT cai_predict('pin', 1, text) FROM tap_pin.reviews$$, '42704', 'model "pin" has no version 1',
                 'a dropped version is refused (not answered from the cache)');

-- permissions: as the unpinned functions, anyone may predict; copying a version needs the owner's rights
SET ROLE tap_pin_user;
SELECT is((SELECT count(*)::int FROM tap_pin.reviews WHERE cai_predict('pin', 2, text) = cai_predict('pin', text)), 403,
          'a role that does not own the model predicts with a pinned version');
SELECT throws_ok($$SELECT cai_import('pin', (SELECT v1 FROM tap_pin.bytes), 5)$$, '42501', NULL,
                 'a non-owner cannot add a version with its number');
RESET ROLE;

-- cai_import(model, data, version): a copy that keeps its number
SELECT is(cai_import('pin_copy', cai_export('pin', 2), 2), 2, 'import version 2 as version 2');
SELECT is(cai_import('pin_copy', cai_export('pin', 2), 2), 2, 'the same bytes again: nothing new is stored');
SELECT is((SELECT string_agg(version || ':' || deployed, ',') FROM cai_models WHERE name = 'pin_copy'), '2:true',
          'one version, number 2, deployed (the model had none)');
SELECT throws_ok($$SELECT cai_import('pin_copy', (SELECT v1 FROM tap_pin.bytes), 2)$$, '42710',
                 'model "pin_copy" already has a version 2 with other bytes', 'other bytes under an existing number are refused');
SELECT throws_ok($$SELECT cai_import('pin_copy', cai_export('pin_ner'), 2)$$, '42809', NULL, 'a version of another task is refused');
SELECT throws_ok($$SELECT cai_import('pin_copy', (SELECT model FROM cai_model_store WHERE false) , 2)$$, '22004', NULL,
                 'NULL data is refused');
SELECT throws_ok($$SELECT cai_import('pin_copy', cai_export('pin', 2), NULL)$$, '22004', 'model version must not be NULL', 'NULL version');
SELECT throws_ok($$SELECT cai_import('pin_copy', cai_export('pin', 2), 0)$$, '22023', 'model version must be positive, got 0', 'version 0');
SELECT is(cai_import('pin_copy', cai_export('pin', 2)), 3, 'a plain import takes the next number after it');

-- IMMUTABLE: a generated column and an index expression
CREATE TABLE tap_pin.scored (id int, text text, label text GENERATED ALWAYS AS (cai_predict('pin', 2, text)) STORED);
INSERT INTO tap_pin.scored (id, text) SELECT id, text FROM tap_pin.reviews;
SELECT is((SELECT count(*)::int FROM tap_pin.scored WHERE label = cai_predict('pin_copy', 2, text)), 403,
          'a generated column computes the pinned label');
CREATE INDEX ON tap_pin.reviews ((cai_predict('pin', 2, text)));
SET enable_seqscan = off;
SELECT is((SELECT count(*)::int FROM tap_pin.reviews WHERE cai_predict('pin', 2, text) = 'pos'),
          (SELECT count(*)::int FROM tap_pin.scored WHERE label = 'pos'), 'an index on the pinned label answers the same');
RESET enable_seqscan;

-- a number dropped and reused for other bytes: the session that had it loaded answers with the new bytes
SELECT is(cai_drop_model('pin_copy', 2), 1, 'drop version 2 of the copy');
SELECT is(cai_import('pin_copy', (SELECT v1 FROM tap_pin.bytes), 2), 2, 'import other bytes (old version 1) as version 2');
SELECT is((SELECT count(*)::int FROM tap_pin.reviews r JOIN tap_pin.v1 USING (id) WHERE cai_predict_proba('pin_copy', 2, r.text) = v1.proba),
          403, 'the reused number answers with its new bytes (no stale cached model)');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'pin%') m;
DROP SCHEMA tap_pin CASCADE;
DROP ROLE tap_pin_user;
