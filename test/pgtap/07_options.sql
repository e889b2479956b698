-- Options per architecture: cai_options(task, architecture) lists the
-- defaults each architecture really uses (read back from the options stored in
-- a model trained with them), an option of another architecture is refused,
-- and an unknown architecture names the valid ones.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_opt;
CREATE TABLE tap_opt.reviews AS
  SELECT CASE WHEN g % 2 = 0 THEN 'a great film ' || (g % 7) ELSE 'a dull film ' || (g % 5) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 300) g;
CREATE TABLE tap_opt.ner AS
  SELECT ARRAY[(ARRAY['Ann','Bob','Li'])[1 + g % 3], 'visited', (ARRAY['Oslo','Lima'])[1 + g % 2], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 100) g;
-- options listed by cai_options whose stored value differs from the listed default
CREATE FUNCTION tap_opt.mismatches(model text, task text, arch text, set_by_test text[]) RETURNS text[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg(o.name || ': listed ' || o.default_value || ', stored ' || coalesce(s.value, 'nothing')
                            ORDER BY o.name), '{}')
    FROM cai_options(task, arch) o
    LEFT JOIN LATERAL (SELECT cai_model_info(model) -> 'options' ->> o.name AS value) s ON true
   WHERE o.name <> ALL (set_by_test)
     AND NOT coalesce(CASE WHEN o.type IN ('integer', 'number') THEN s.value::float8 = o.default_value::float8
                           ELSE coalesce(s.value, '') = o.default_value END, false)
$$;

SELECT plan(17);

SELECT is((SELECT default_value FROM cai_options('sentiment', 'accurate') WHERE name = 'learning_rate'), '0.003',
          'accurate lists the learning rate it uses');
SELECT is((SELECT array_agg(default_value ORDER BY name) FROM cai_options('sentiment', 'accurate')
            WHERE name IN ('batch_size', 'dimensions', 'dropout')), ARRAY['32', '64', '0.5'],
          'and its batch size, dimensions and dropout');
SELECT is((SELECT array_agg(default_value ORDER BY name) FROM cai_options('sentiment', 'fast')
            WHERE name IN ('dimensions', 'dropout', 'learning_rate', 'weight_decay', 'word_ngrams')),
          ARRAY['48', '0', '0.1', '5e-5', '2'],
          'fast lists its own');
SELECT is((SELECT array_agg(o::text ORDER BY o::text) FROM cai_options('sentiment') o),
          (SELECT array_agg(o::text ORDER BY o::text) FROM cai_options('sentiment', 'accurate') o),
          'no architecture: the default one (accurate)');
SELECT ok(NOT EXISTS (SELECT FROM cai_options('sentiment', 'fast') WHERE name = 'batch_size')
          AND NOT EXISTS (SELECT FROM cai_options('sentiment', 'accurate') WHERE name = 'word_ngrams'),
          'each architecture lists only the options it uses');
SELECT throws_ok($$SELECT * FROM cai_options('sentiment', 'xl')$$, '22023', 'unknown text_classification architecture "xl"',
                 'an unknown architecture is refused');
SELECT is((SELECT count(*) FROM cai_options('ner', NULL)), (SELECT count(*) FROM cai_options('ner')), 'a NULL architecture: the default one');

SELECT lives_ok($$SELECT * FROM cai_train('opt_fast', 'sentiment', 'tap_opt.reviews', options => '{"architecture": "fast", "epochs": 2}')$$,
                'train fast with its defaults');
-- fast stores threads only when it is above 1 (a one-thread model keeps the bytes of before the option existed),
-- and vector_words only with word_vectors
SELECT is(tap_opt.mismatches('opt_fast', 'sentiment', 'fast', ARRAY['epochs', 'threads', 'vector_words']), '{}'::text[],
          'every default fast lists is the one its training applied');
SELECT lives_ok($$SELECT * FROM cai_train('opt_acc', 'sentiment', 'tap_opt.reviews', options => '{"architecture": "accurate", "epochs": 1}')$$,
                'train accurate with its defaults');
-- freeze_vectors and vector_words mean something only with word_vectors: a
-- model trained without vectors does not store the vector options (its bytes
-- stay those of before they existed)
SELECT is(tap_opt.mismatches('opt_acc', 'sentiment', 'accurate', ARRAY['epochs', 'freeze_vectors', 'vector_words']), '{}'::text[],
          'every default accurate lists is the one its training applied');
SELECT ok(cardinality(tap_opt.mismatches('opt_acc', 'sentiment', 'fast', ARRAY['epochs', 'architecture'])) >= 4,
          'the check sees differences: the accurate model against fast''s list');
SELECT lives_ok($$SELECT * FROM cai_train('opt_ner', 'ner', 'tap_opt.ner', 'tokens', 'tags', '{"epochs": 1}')$$,
                'train NER with its defaults');
SELECT is(tap_opt.mismatches('opt_ner', 'ner', NULL, ARRAY['epochs']), '{}'::text[],
          'every default bilstm_crf lists is the one its training applied');
SELECT throws_ok($$SELECT * FROM cai_train('opt_bad', 'sentiment', 'tap_opt.reviews', options => '{"architecture": "fast", "batch_size": 8}')$$,
                 '22023', NULL, 'an option of the other architecture is refused');

-- cai.threads caps the threads a training uses, not only BLAS's: the worker gets the capped option (and the
-- model records it; a one-thread fast model leaves "threads" out of its options)
SET cai.threads = 1;
SELECT * FROM cai_train('opt_thr1', 'sentiment', 'tap_opt.reviews', options => '{"architecture": "fast", "epochs": 1, "threads": 2}') \g /dev/null
SELECT is((SELECT coalesce(metadata->'options'->>'threads', '1') FROM cai_model_store WHERE name = 'opt_thr1'), '1',
          'threads 2 under cai.threads 1: trained with 1 thread');
SET cai.threads = 2;
SELECT * FROM cai_train('opt_thr2', 'sentiment', 'tap_opt.reviews', options => '{"architecture": "fast", "epochs": 1, "threads": 2}') \g /dev/null
SELECT is((SELECT metadata->'options'->>'threads' FROM cai_model_store WHERE name = 'opt_thr2'), '2',
          'under cai.threads 2: with 2');
RESET cai.threads;

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name LIKE 'opt\_%') m \g /dev/null
DROP SCHEMA tap_opt CASCADE;
