-- cai_drift: new inputs against what the deployed version saw on its validation
-- rows (input length, unseen words, predicted labels, confidence; PSI and
-- verdicts), for a text classifier and an NER tagger through the same code;
-- versions without (all) the statistics; bad inputs.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_dr;
-- reviews: two classes, short phrases and a number
CREATE FUNCTION tap_dr.review(g int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN g % 2 = 0 THEN (ARRAY['a great film', 'truly wonderful acting', 'loved it', 'superb and moving'])[1 + g % 4]
              ELSE (ARRAY['a terrible film', 'truly awful acting', 'hated it', 'dull and boring'])[1 + g % 4] END
         || ' ' || (g % 13) $$;
CREATE TABLE tap_dr.reviews AS
  SELECT tap_dr.review(g) AS text, CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END AS label
    FROM generate_series(1, 3000) g;
-- held out: new rows of the same distribution
CREATE TABLE tap_dr.held_out AS SELECT tap_dr.review(g) AS text FROM generate_series(3001, 4000) g;
-- another kind of text: long, other words, another script
CREATE TABLE tap_dr.other AS
  SELECT repeat('东京 の 天気 は 晴れ です ', 1 + g % 5) || ' quarterly revenue grew in the northern region ' || g AS text
    FROM generate_series(1, 500) g;
-- the same lengths, in another language: only the words change
CREATE TABLE tap_dr.german AS
  SELECT (ARRAY['ein toller Film', 'wirklich schlechtes Spiel', 'sehr gerne', 'langweilig und lahm'])[1 + g % 4] || ' ' || (g % 13) AS text
    FROM generate_series(1, 1000) g;
-- sentences for NER: names, places, a few verbs, two shapes
CREATE FUNCTION tap_dr.sentence(g int, OUT tokens text[], OUT tags text[]) LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN g % 3 = 0
              THEN ARRAY[n1, 'and', n2, v, 'in', c, '.']
              ELSE ARRAY[n1, v, c, 'today', '.'] END,
         CASE WHEN g % 3 = 0
              THEN ARRAY['B-PER', 'O', 'B-PER', 'O', 'O', 'B-LOC', 'O']
              ELSE ARRAY['B-PER', 'O', 'B-LOC', 'O', 'O'] END
    FROM (SELECT (ARRAY['Ann', 'Bob', 'Chen', 'Dana', 'Emil', 'Fatima', 'Goran'])[1 + g % 7] AS n1,
                 (ARRAY['Ivo', 'Jana', 'Kofi', 'Lena'])[1 + g % 4] AS n2,
                 (ARRAY['met', 'visited', 'left', 'saw'])[1 + (g / 7) % 4] AS v,
                 (ARRAY['Oslo', 'Lima', 'Paris', 'Cairo', 'Quito'])[1 + (g / 3) % 5] AS c) w $$;
CREATE TABLE tap_dr.ner AS SELECT (tap_dr.sentence(g)).* FROM generate_series(1, 400) g;
CREATE TABLE tap_dr.ner_held_out AS SELECT (tap_dr.sentence(g)).tokens FROM generate_series(401, 700) g;

SELECT plan(50);

-- a text classifier
SELECT lives_ok($$SELECT * FROM cai_train('dr', 'sentiment', 'tap_dr.reviews', options => '{"architecture": "fast", "seed": 1}')$$,
                'train a text classifier');
SELECT ok((SELECT metrics ? 'drift_reference' FROM cai_model_details WHERE name = 'dr'),
          'training keeps statistics of its inputs with the metrics');
SELECT is((SELECT metrics -> 'drift_reference' ->> 'split' FROM cai_model_details WHERE name = 'dr'), 'validation',
          'computed on the validation split');
SELECT is((SELECT (metrics -> 'drift_reference' ->> 'rows')::int FROM cai_model_details WHERE name = 'dr'),
          (SELECT (metrics ->> 'validation_rows')::int FROM cai_model_details WHERE name = 'dr'),
          'on exactly the rows training validated on');
SELECT is(cai_drift('dr', 'tap_dr.held_out') ->> 'verdict', 'stable', 'held-out rows of the training distribution: stable');
SELECT ok((cai_drift('dr', 'tap_dr.held_out') ->> 'psi')::float8 < 0.1, 'and a small PSI');
SELECT is((SELECT count(*) FROM jsonb_each(cai_drift('dr', 'tap_dr.held_out') -> 'statistics') WHERE value ->> 'verdict' = 'stable'),
          4::bigint, 'every statistic of the four is stable');
SELECT is(cai_drift('dr', 'tap_dr.held_out') -> 'unavailable', '[]'::jsonb, 'none is unavailable');
SELECT is(cai_drift('dr', 'tap_dr.other') ->> 'verdict', 'significant shift', 'other text: a significant shift');
SELECT is(cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'input_length' ->> 'verdict', 'significant shift',
          'named by the statistics that moved: input length');
SELECT is(cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'unseen_words' ->> 'verdict', 'significant shift',
          'and unseen words');
SELECT ok((cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'input_length' ->> 'mean')::float8 >
          3 * (cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'input_length' ->> 'reference_mean')::float8,
          'the mean length is reported beside the reference''s');
SELECT ok((cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'unseen_words' ->> 'rate')::float8 > 0.5 AND
          (cai_drift('dr', 'tap_dr.other') -> 'statistics' -> 'unseen_words' ->> 'reference_rate')::float8 < 0.05,
          'the unseen-word rate is reported beside the reference''s');
SELECT is(cai_drift('dr', 'tap_dr.german') -> 'statistics' -> 'unseen_words' ->> 'verdict', 'significant shift',
          'reviews in another language: unseen words shift');
SELECT is(cai_drift('dr', 'tap_dr.german') -> 'statistics' -> 'input_length' ->> 'verdict', 'stable',
          'while their length does not');
SELECT is(cai_drift('dr', 'tap_dr.german') ->> 'verdict', 'significant shift', 'so the report flags them');
SELECT is(cai_drift('dr', 'SELECT string_to_array(text, '' '') AS toks FROM tap_dr.held_out', 'toks') ->> 'verdict', 'stable',
          'a classifier reads token arrays joined by spaces');
SELECT is(cai_drift('dr', 'SELECT text::varchar AS t FROM tap_dr.held_out LIMIT 7', 't') ->> 'rows', '7', 'varchar; rows counted');
-- the accurate architecture, through the same code
SELECT lives_ok($$SELECT * FROM cai_train('dr_acc', 'sentiment', 'tap_dr.reviews', options => '{"architecture": "accurate", "seed": 1, "epochs": 2}')$$,
                'train an accurate classifier');
SELECT is(cai_drift('dr_acc', 'tap_dr.held_out') ->> 'verdict', 'stable', 'accurate: held-out rows stable');
SELECT is(cai_drift('dr_acc', 'tap_dr.german') ->> 'verdict', 'significant shift', 'accurate: another language flagged');

-- an NER tagger, through the same function
SELECT lives_ok($$SELECT * FROM cai_train('dr_ner', 'ner', 'tap_dr.ner', 'tokens', 'tags', '{"epochs": 3, "seed": 2}')$$,
                'train an NER model');
SELECT is((SELECT metrics -> 'drift_reference' ->> 'split' FROM cai_model_details WHERE name = 'dr_ner'), 'validation',
          'NER: statistics of the validation split');
SELECT is((SELECT (metrics -> 'drift_reference' ->> 'rows')::int FROM cai_model_details WHERE name = 'dr_ner'),
          (SELECT (metrics ->> 'validation_sentences')::int FROM cai_model_details WHERE name = 'dr_ner'),
          'NER: on exactly the sentences training validated on');
SELECT ok((SELECT metrics -> 'drift_reference' -> 'labels' ?& ARRAY['LOC', 'PER', 'O'] FROM cai_model_details WHERE name = 'dr_ner'),
          'NER: predicted entity types per token, and O');
SELECT is(cai_drift('dr_ner', 'tap_dr.ner_held_out', 'tokens') ->> 'verdict', 'stable',
          'NER: held-out sentences of the training distribution: stable');
SELECT is((SELECT count(*) FROM jsonb_each(cai_drift('dr_ner', 'tap_dr.ner_held_out', 'tokens') -> 'statistics')),
          4::bigint, 'NER: all four statistics compared');
SELECT is(cai_drift('dr_ner', 'SELECT array_to_string(tokens, '' '') AS body FROM tap_dr.ner_held_out', 'body') ->> 'verdict',
          'stable', 'NER: the same sentences as raw text: stable');
SELECT is(cai_drift('dr_ner', 'tap_dr.other') ->> 'verdict', 'significant shift', 'NER: other text: a significant shift');
SELECT is(cai_drift('dr_ner', 'tap_dr.reviews') -> 'statistics' -> 'predicted_labels' ->> 'verdict', 'significant shift',
          'NER: reviews without names: the predicted entity types shift');
SELECT is(cai_drift('dr_ner', 'tap_dr.reviews') -> 'statistics' -> 'unseen_words' ->> 'verdict', 'significant shift',
          'NER: and unseen words');
SELECT ok((cai_drift('dr_ner', 'tap_dr.ner_held_out', 'tokens') ->> 'rows')::int = 300, 'NER: rows counted');

-- versions without (all) the statistics: a report of what they have
SELECT lives_ok($$SELECT cai_import('dr copy', cai_export('dr'))$$, 'import a copy');
SELECT is(cai_drift('dr copy', 'tap_dr.held_out') ->> 'verdict', 'unknown', 'an imported version: verdict unknown, no error');
SELECT is(cai_drift('dr copy', 'tap_dr.held_out') -> 'unavailable',
          '["input_length", "unseen_words", "predicted_labels", "confidence"]'::jsonb, 'every statistic unavailable');
SELECT ok(cai_drift('dr copy', 'tap_dr.held_out') ? 'reason', 'and the reason');
-- a reference written before unseen words and the split were kept (0.2.0 development versions)
UPDATE cai_model_store SET metrics = jsonb_set(metrics, '{drift_reference}',
                                               (metrics -> 'drift_reference') - 'unseen' - 'unseen_rate' - 'split' - 'predictions')
 WHERE name = 'dr';
SELECT is(cai_drift('dr', 'tap_dr.held_out') -> 'unavailable', '["unseen_words"]'::jsonb,
          'an older reference: unseen words unavailable');
SELECT is(cai_drift('dr', 'tap_dr.held_out') ->> 'verdict', 'stable', 'the rest still compared');
SELECT is(cai_drift('dr', 'tap_dr.other') ->> 'verdict', 'significant shift', 'and still flags a shift');
SELECT is(cai_drift('dr', 'tap_dr.held_out') -> 'reference' ->> 'split', 'training', 'its rows were training rows');

-- bad inputs
SELECT is(cai_drift(NULL, 'tap_dr.held_out'), NULL, 'a NULL model gives NULL');
SELECT is(cai_drift('dr', NULL), NULL, 'a NULL source gives NULL');
SELECT is(cai_drift('dr', 'tap_dr.held_out', NULL), NULL, 'a NULL column gives NULL');
SELECT throws_ok($$SELECT cai_drift('no such model', 'tap_dr.held_out')$$, '42704', NULL, 'unknown model');
SELECT throws_ok($$SELECT cai_drift('dr', 'tap_dr.no_such_table')$$, '42P01', NULL, 'unknown table');
SELECT throws_ok($$SELECT cai_drift('dr', 'SELECT 1 AS x')$$, '42703', NULL, 'a query without the column');
SELECT throws_ok($$SELECT cai_drift('dr', 'SELECT 1 AS text')$$, '42804', NULL, 'a column of the wrong type');
SELECT throws_ok($$SELECT cai_drift('dr', '  ')$$, '22023', NULL, 'an empty source');
SELECT throws_ok($$SELECT cai_drift('dr', 'SELECT text FROM tap_dr.held_out WHERE false')$$, 'P0002', NULL, 'no rows');
SELECT throws_ok($$SELECT cai_drift('dr_ner', 'SELECT ARRAY[ARRAY[''a'']] AS t', 't')$$, '2202E', NULL,
                 'a two-dimensional token array');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'dr%') m;
DROP SCHEMA tap_dr CASCADE;
