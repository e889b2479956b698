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
-- Chinese, tagged per character: names, then a city
CREATE TABLE tap_tv.zh AS
  SELECT p || '在' || c || '工作。' AS text,
         string_to_array(p || '在' || c || '工作。', NULL) AS tokens,
         ARRAY['B-PER'] || array_fill('I-PER'::text, ARRAY[char_length(p) - 1]) || ARRAY['O']
           || ARRAY['B-LOC'] || array_fill('I-LOC'::text, ARRAY[char_length(c) - 1]) || ARRAY['O', 'O', 'O'] AS tags
    FROM (SELECT (ARRAY['张伟','王芳','李娜','刘洋'])[1 + g % 4] AS p, (ARRAY['北京','上海','广州','深圳'])[1 + (g / 4) % 4] AS c
            FROM generate_series(1, 400) g) s;
CREATE ROLE tap_tv_other LOGIN;
GRANT USAGE ON SCHEMA tap_tv TO tap_tv_other;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_tv TO tap_tv_other;

SELECT plan(16);

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
-- character bigrams: one set with the characters' and the bigrams' vectors initialises an NER model tagged per character
SELECT is((SELECT version FROM cai_train_vectors('tv_zh', 'tap_tv.zh', 'text', '{"dimensions": 16, "epochs": 3, "min_count": 1, "char_bigrams": true}')),
          1, 'vectors with char_bigrams');
SELECT is((SELECT words FROM cai_vectors WHERE name = 'tv_zh'), 42, '20 characters and 22 bigrams of neighbours');
SELECT is((SELECT array_agg(word ORDER BY word) FROM cai_similar('tv_zh', '在', 100) WHERE word IN ('北京', '作 。', '北 京')),
          ARRAY['作 。', '北京'], 'keyed as NER names its bigrams (two CJK characters joined, else with a space)');
SELECT * FROM cai_train('ner_zh_vec', 'ner', 'tap_tv.zh', 'tokens', 'tags', '{"word_vectors": "tv_zh", "dimensions": 16, "epochs": 5}') \g /dev/null
SELECT ok((SELECT (metadata->'ner'->>'char_bigrams')::boolean AND (metrics->>'f1')::float8 > 0.9 FROM cai_model_store WHERE name = 'ner_zh_vec'),
          'an NER model with bigram features trains from them');
SET ROLE tap_tv_other;
SELECT throws_ok($$SELECT * FROM cai_train_vectors('tv', 'tap_tv.corpus', 'text', '{"dimensions": 8, "min_count": 1}')$$, '42501', NULL,
                 'another role cannot add a version to the set');
RESET ROLE;

SELECT * FROM finish();
SELECT cai_drop_model('ner_zh_vec');
SELECT cai_drop_vectors(name) FROM (SELECT DISTINCT name FROM cai_vectors) v;
DROP SCHEMA tap_tv CASCADE;
DROP OWNED BY tap_tv_other;
DROP ROLE tap_tv_other;
