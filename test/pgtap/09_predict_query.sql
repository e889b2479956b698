-- Batched scoring: cai_predict_query(model, query, batch_size) answers as the
-- per-row functions do, for every text classification architecture, in any
-- batch size; bad inputs get specific errors and leave nothing behind.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_pq;
CREATE TABLE tap_pq.reviews AS
  SELECT g AS id,
         CASE WHEN g % 2 = 0 THEN 'a great film ' || repeat('truly ', g % 9) || (g % 7)
              ELSE 'a dull film ' || repeat('sadly ', g % 11) || (g % 5) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 600) g;
INSERT INTO tap_pq.reviews VALUES (601, '', 'pos'), (602, '非常好看 👍', 'pos'), (603, repeat('great dull ', 3000), 'neg'),
                                  (604, NULL, 'pos');
CREATE TABLE tap_pq.ner AS
  SELECT ARRAY['Ann', 'visited', 'Oslo', '.'] AS tokens, ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 50) g;
CREATE TABLE tap_pq.ner_text AS
  SELECT g AS id, (ARRAY['Ann visited Oslo .', 'Bob met Ann in Paris and Oslo .', 'nothing here', '',
                         'Ann , Bob and Carl visited Oslo , Paris , Rome .'])[1 + g % 5] || repeat(' Ann', g % 3) AS text
    FROM generate_series(1, 40) g;
INSERT INTO tap_pq.ner_text VALUES (41, NULL), (42, repeat('Ann visited Oslo . ', 200));
CREATE TABLE tap_pq.scores (key text, label text, score real);
CREATE ROLE tap_pq_nobody LOGIN;
CREATE FUNCTION tap_pq.slow(t text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$BEGIN PERFORM pg_sleep(0.01); RETURN t; END$$;

SELECT plan(29);

SELECT lives_ok($$SELECT * FROM cai_train('pq_fast', 'sentiment', 'SELECT text, label FROM tap_pq.reviews WHERE text IS NOT NULL',
                                          options => '{"architecture": "fast", "seed": 1}')$$, 'train a fast model');
SELECT lives_ok($$SELECT * FROM cai_train('pq_acc', 'sentiment', 'SELECT text, label FROM tap_pq.reviews WHERE text IS NOT NULL',
                                          options => '{"architecture": "accurate", "epochs": 2, "seed": 1}')$$, 'train an accurate model');
SELECT lives_ok($$SELECT * FROM cai_train('pq_ner', 'ner', 'tap_pq.ner', 'tokens', 'tags', '{"epochs": 1}')$$, 'train an NER model');

-- same answers as the per-row functions (label exactly, probability within 1e-5), every batch size
CREATE FUNCTION tap_pq.mismatches(m text, bs int) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM tap_pq.reviews r
    FULL JOIN cai_predict_query(m, 'SELECT id, text FROM tap_pq.reviews', bs) q ON q.key = r.id::text
   WHERE q.key IS NULL OR r.id IS NULL
      OR q.label IS DISTINCT FROM cai_predict(m, r.text)
      OR abs(coalesce(q.score, 0) - coalesce((cai_predict_proba(m, r.text) ->> q.label)::float8, 0)) > 1e-5
$$;
SELECT is(tap_pq.mismatches('pq_fast', 256), 0::bigint, 'fast: every row as cai_predict / cai_predict_proba (batches of 256)');
SELECT is(tap_pq.mismatches('pq_acc', 256), 0::bigint, 'accurate: every row as cai_predict / cai_predict_proba (batches of 256)');
SELECT is(tap_pq.mismatches('pq_acc', 1), 0::bigint, 'accurate: batches of 1');
SELECT is(tap_pq.mismatches('pq_acc', 7), 0::bigint, 'accurate: batches of 7 (a partial last batch)');
SELECT is((SELECT label IS NULL AND score IS NULL FROM cai_predict_query('pq_acc', 'SELECT id, text FROM tap_pq.reviews WHERE id = 604')),
          true, 'a NULL input gives a NULL label and score');
SELECT is((SELECT count(*) FROM cai_predict_query('pq_fast', 'SELECT id, text FROM tap_pq.reviews WHERE false')), 0::bigint,
          'an empty query gives no rows');

-- in INSERT ... SELECT, with any key type
SELECT lives_ok($$INSERT INTO tap_pq.scores SELECT * FROM cai_predict_query('pq_acc', 'SELECT (id, label), text FROM tap_pq.reviews')$$,
                'INSERT ... SELECT from cai_predict_query (a composite key)');
SELECT is((SELECT count(*) FROM tap_pq.scores WHERE key LIKE '(%,%)'), 604::bigint, 'every row inserted, keys in their text form');

-- bad inputs
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELECT id FROM tap_pq.reviews')$$, '42804', NULL,
                 'one column: datatype mismatch');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELECT id, id FROM tap_pq.reviews')$$, '42804', NULL,
                 'a non-text input column: datatype mismatch');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELECT NULL::int, text FROM tap_pq.reviews')$$, '22004', NULL,
                 'a NULL key is refused');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELEC id, text FROM tap_pq.reviews')$$, '42601', NULL,
                 'a syntax error in the query');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'DELETE FROM tap_pq.reviews')$$, '42809', NULL,
                 'a statement that returns no rows is refused (nothing deleted)');
SELECT throws_ok($$INSERT INTO tap_pq.scores SELECT * FROM cai_predict_query('pq_fast', 'SELECT id, text || (1 / (id - 500))::text FROM tap_pq.reviews ORDER BY id')$$,
                 '22012', NULL, 'a query that fails midway raises its error');
SELECT is((SELECT count(*) FROM tap_pq.scores), 604::bigint, '... and the failed INSERT stored none of its rows');
-- taggers: cai_predict_query answers as cai_predict (the JSON entities), cai_entities_query as cai_entities;
-- the same entities, scores within 1e-5 (a batch sums in another order than one sentence; the JSON rounds to 1e-4)
CREATE FUNCTION tap_pq.same_entities(a text, b text) RETURNS boolean LANGUAGE sql AS $$
  SELECT (a IS NULL) = (b IS NULL) AND (a IS NULL OR (
         jsonb_array_length(a::jsonb) = jsonb_array_length(b::jsonb)
     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(a::jsonb) WITH ORDINALITY x(e, i)
                       JOIN jsonb_array_elements(b::jsonb) WITH ORDINALITY y(e, i) USING (i)
                      WHERE x.e - 'score' <> y.e - 'score'
                         OR abs((x.e ->> 'score')::float8 - (y.e ->> 'score')::float8) > 1.1e-4)))
$$;
CREATE FUNCTION tap_pq.ner_mismatches(bs int) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM tap_pq.ner_text r
    FULL JOIN cai_predict_query('pq_ner', 'SELECT id, text FROM tap_pq.ner_text', bs) q ON q.key = r.id::text
   WHERE q.key IS NULL OR r.id IS NULL OR NOT tap_pq.same_entities(q.label, cai_predict('pq_ner', r.text)) OR q.score IS NOT NULL
$$;
SELECT is(tap_pq.ner_mismatches(256), 0::bigint, 'NER: cai_predict_query gives every row''s cai_predict answer (batches of 256)');
SELECT is(tap_pq.ner_mismatches(3), 0::bigint, 'NER: batches of 3');
SELECT ok((SELECT count(*) FROM tap_pq.ner_text WHERE cai_predict('pq_ner', text) <> '[]') > 10, '... and those answers hold entities');
CREATE FUNCTION tap_pq.entity_rows(bs int) RETURNS TABLE (d text) LANGUAGE sql AS $$
  SELECT coalesce(q.key, r.id::text) FROM cai_entities_query('pq_ner', 'SELECT id, text FROM tap_pq.ner_text', bs) q
    FULL JOIN (SELECT r.id, e.* FROM tap_pq.ner_text r, cai_entities('pq_ner', r.text) e) r
      ON q.key = r.id::text AND q.entity = r.entity AND q.label = r.label AND q.start_pos = r.start_pos AND q.end_pos = r.end_pos
   WHERE q.key IS NULL OR r.id IS NULL OR abs(q.score - r.score) > 1e-5
$$;
SELECT is((SELECT count(*) FROM tap_pq.entity_rows(256)), 0::bigint, 'cai_entities_query gives exactly cai_entities'' rows (batches of 256)');
SELECT is((SELECT count(*) FROM tap_pq.entity_rows(5)), 0::bigint, 'cai_entities_query: batches of 5');
SELECT throws_ok($$SELECT * FROM cai_entities_query('pq_fast', 'SELECT id, text FROM tap_pq.reviews')$$, '42809', NULL,
                 'cai_entities_query with a text classification model is refused (wrong task)');
SELECT throws_ok($$SELECT * FROM cai_entities_query('pq_ner', 'SELECT NULL::int, text FROM tap_pq.ner_text')$$, '22004', NULL,
                 'cai_entities_query: a NULL key is refused');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_nope', 'SELECT id, text FROM tap_pq.reviews')$$, '42704', NULL,
                 'an unknown model');
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELECT id, text FROM tap_pq.reviews', 0)$$, '22023', NULL,
                 'batch_size 0 is refused');
-- throws_ok cannot catch a cancel (WHEN OTHERS excludes query_canceled)
CREATE FUNCTION tap_pq.cancelled() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM count(*) FROM cai_predict_query('pq_acc', 'SELECT id, tap_pq.slow(text) FROM tap_pq.reviews', 8);
  RETURN 'finished';
EXCEPTION WHEN query_canceled THEN
  RETURN SQLSTATE;
END $$;
SET statement_timeout = '300ms';
SELECT is(tap_pq.cancelled(), '57014', 'a statement timeout cancels a long scoring query');
RESET statement_timeout;
SET ROLE tap_pq_nobody;
SELECT throws_ok($$SELECT * FROM cai_predict_query('pq_fast', 'SELECT id, text FROM tap_pq.reviews')$$, '42501', NULL,
                 'the query runs with the caller''s rights');
RESET ROLE;

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'pq%') m;
DROP SCHEMA tap_pq CASCADE;
DROP ROLE tap_pq_nobody;
