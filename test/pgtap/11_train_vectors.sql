-- Word vectors trained in the database: cai_train_vectors (a background
-- worker, like cai_train) and cai_train_vectors_async (a job), the planted
-- structure found by cai_similar, subword vectors for unseen words, options
-- and bad inputs, ownership.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_tv;
-- two topics whose words only co-occur within their topic
CREATE TABLE tap_tv.corpus AS
  SELECT CASE WHEN g % 2 = 0
              THEN (ARRAY['cat', 'dog', 'horse', 'cow', 'sheep'])[1 + g % 5] || ' ' ||
                   (ARRAY['dog', 'horse', 'cow', 'sheep', 'cat'])[1 + (g / 5) % 5] || ' eats grass and hay in the barn'
              ELSE (ARRAY['car', 'bus', 'truck', 'train', 'tram'])[1 + g % 5] || ' ' ||
                   (ARRAY['bus', 'truck', 'train', 'tram', 'car'])[1 + (g / 5) % 5] || ' drives on roads and rails downtown' END AS text
    FROM generate_series(1, 4000) g;
CREATE ROLE tap_tv_other LOGIN;
GRANT USAGE ON SCHEMA tap_tv TO tap_tv_other;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_tv TO tap_tv_other;

SELECT plan(12);

SELECT is((SELECT version FROM cai_train_vectors('tv', 'tap_tv.corpus', 'text',
                                                  '{"dimensions": 16, "epochs": 10, "min_count": 1, "sample": 0, "seed": 1, "threads": 1}')),
          1, 'cai_train_vectors stores version 1');
SELECT is((SELECT format('%s %s %s', dimensions, words, subwords) FROM cai_vectors WHERE name = 'tv'),
          (SELECT format('16 %s t', count(DISTINCT w)) FROM tap_tv.corpus, regexp_split_to_table(text, ' ') w),
          'a set of 16 dimensions, one row for every word of the corpus, with subwords');
SELECT ok((SELECT count(*) FILTER (WHERE word IN ('dog', 'horse', 'cow', 'sheep')) >= 3 FROM cai_similar('tv', 'cat', 4)),
          'the nearest words of "cat" are animals');
SELECT ok((SELECT count(*) FILTER (WHERE word IN ('bus', 'truck', 'train', 'tram')) >= 3 FROM cai_similar('tv', 'car', 4)),
          'the nearest words of "car" are vehicles');
SELECT is((SELECT count(*)::int FROM cai_similar('tv', 'cats', 3)), 3, 'an unseen word gets a subword vector');
SELECT is((SELECT version FROM cai_train_vectors('tv', 'tap_tv.corpus', 'text',
                                                  '{"dimensions": 16, "epochs": 10, "min_count": 1, "sample": 0, "seed": 1, "threads": 1}')),
          2, 'training again stores version 2');
SELECT is(md5(cai_export_vectors('tv', 1)), md5(cai_export_vectors('tv', 2)), 'one thread and one seed: identical bytes');
SELECT cai_train_vectors_async('tv_job', 'SELECT text FROM tap_tv.corpus', 'text', '{"dimensions": 8, "epochs": 2, "min_count": 1}') AS j \gset
SELECT is((SELECT state || ' ' || task FROM cai_wait(:j)), 'succeeded vectors', 'the async form is a job of task vectors');
SELECT is((SELECT count(*)::int FROM cai_vectors WHERE name = 'tv_job'), 1, 'the job stored its set');
SELECT throws_ok($$SELECT * FROM cai_train_vectors('bad', 'tap_tv.corpus', 'text', '{"hidden": 8}')$$, '22023', NULL,
                 'an option of another task is refused');
SELECT throws_ok($$SELECT * FROM cai_train_vectors('bad', 'SELECT text FROM tap_tv.corpus WHERE false')$$, 'P0002', NULL,
                 'no rows');
SET ROLE tap_tv_other;
SELECT throws_ok($$SELECT * FROM cai_train_vectors('tv', 'tap_tv.corpus', 'text', '{"dimensions": 8, "min_count": 1}')$$, '42501', NULL,
                 'another role cannot add a version to the set');
RESET ROLE;

SELECT * FROM finish();
SELECT cai_drop_vectors(name) FROM (SELECT DISTINCT name FROM cai_vectors) v;
DROP SCHEMA tap_tv CASCADE;
DROP OWNED BY tap_tv_other;
DROP ROLE tap_tv_other;
