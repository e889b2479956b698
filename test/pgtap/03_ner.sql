-- Named-entity recognition: training (token arrays, character spans, tag
-- schemes), cai_tag, cai_entities, cai_predict, cai_evaluate, bad inputs.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA tap_ner;
-- generated sentences: "<first> <last> works for <org> Corp in <city> ."
CREATE TABLE tap_ner.sent AS
WITH w AS (
  SELECT ARRAY['John','Mary','Ahmed','Li','Olga','Pierre','Sofia','Kenji','Amara','Diego'] AS first,
         ARRAY['Smith','Jones','Khan','Wei','Petrova','Dubois','Rossi','Tanaka','Okafor','Lopez'] AS last,
         ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne'] AS org,
         ARRAY['Paris','Tokyo','Lagos','Lima','Oslo','Cairo','Delhi','Quito','Berlin'] AS city
)
SELECT g,
       ARRAY[first[1 + g % 10], last[1 + (g / 10) % 10], 'works', 'for', org[1 + g % 8], 'Corp', 'in', city[1 + g % 9], '.'] AS tokens,
       ARRAY['B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'I-ORG', 'O', 'B-LOC', 'O'] AS tags
  FROM w, generate_series(1, 600) g;
INSERT INTO tap_ner.sent
SELECT g + 1000, ARRAY['In', city[1 + g % 9], ',', first[1 + g % 10], 'met', org[1 + g % 8], 'staff', '.'],
       ARRAY['O', 'B-LOC', 'O', 'B-PER', 'O', 'B-ORG', 'O', 'O']
  FROM (SELECT ARRAY['John','Mary','Ahmed','Li','Olga','Pierre','Sofia','Kenji','Amara','Diego'] AS first,
               ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne'] AS org,
               ARRAY['Paris','Tokyo','Lagos','Lima','Oslo','Cairo','Delhi','Quito','Berlin'] AS city) w,
       generate_series(1, 300) g;
-- Chinese, tagged per character
INSERT INTO tap_ner.sent
SELECT g + 2000, string_to_array(p || '在' || c || '工作。', NULL),
       ARRAY['B-PER'] || array_fill('I-PER'::text, ARRAY[char_length(p) - 1]) || ARRAY['O']
         || ARRAY['B-LOC'] || array_fill('I-LOC'::text, ARRAY[char_length(c) - 1]) || ARRAY['O', 'O', 'O']
  FROM (SELECT g, (ARRAY['张伟','王芳','李娜','刘洋'])[1 + g % 4] AS p, (ARRAY['北京','上海','广州','深圳'])[1 + (g / 4) % 4] AS c
          FROM generate_series(1, 300) g) s;
CREATE TABLE tap_ner.bioes AS
  SELECT tokens, ARRAY(SELECT CASE WHEN t LIKE 'B-%' AND coalesce(tags[i + 1], 'O') NOT LIKE 'I-%' THEN 'S-' || substr(t, 3)
                                   WHEN t LIKE 'I-%' AND coalesce(tags[i + 1], 'O') NOT LIKE 'I-%' THEN 'E-' || substr(t, 3)
                                   ELSE t END
                         FROM unnest(tags) WITH ORDINALITY u(t, i)) AS tags
    FROM tap_ner.sent WHERE g < 1000;
CREATE TABLE tap_ner.spans AS
  SELECT 'Mary Khan visited Oslo with Acme Corp .' AS text,
         '[{"start": 1, "end": 9, "label": "PER"}, {"start": 19, "end": 22, "label": "LOC"}, {"start": 29, "end": 37, "label": "ORG"}]'::jsonb AS entities
    FROM generate_series(1, 200);
CREATE TABLE tap_ner.mismatch AS SELECT ARRAY['a', 'b'] AS tokens, ARRAY['O'] AS tags;
CREATE TABLE tap_ner.badtags AS SELECT ARRAY['a', 'b'] AS tokens, ARRAY['X-PER', 'O'] AS tags FROM generate_series(1, 10);
CREATE TABLE tap_ner.texts (t text);
INSERT INTO tap_ner.texts VALUES
  ('Sofia Rossi works for Hooli Corp in Lima .'),
  ('Emoji 👩‍👩‍👧 and Diego Lopez in Berlin 🇩🇪 today.'),
  ('Café naïve: Pierre Dubois e' || E'\u0301' || 'tait à Paris.'),
  ('李娜在上海工作。'),
  ('');

SELECT plan(40);
SELECT pg_postmaster_start_time() AS start_time \gset

SELECT lives_ok($$SELECT * FROM cai_train('ner', 'ner', 'tap_ner.sent', 'tokens', 'tags', '{"epochs": 8}')$$, 'train an NER model');
SELECT ok((SELECT (metrics->>'f1')::float8 > 0.8 AND metrics ? 'precision' AND metrics ? 'recall' AND metrics->'types' ? 'PER'
             FROM cai_model_details WHERE name = 'ner'), 'entity-level validation metrics are stored, overall and per type');
SELECT is(cai_tag('ner', ARRAY['Olga', 'Tanaka', 'works', 'for', 'Stark', 'Corp', 'in', 'Cairo', '.']),
          ARRAY['B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'I-ORG', 'O', 'B-LOC', 'O'], 'cai_tag tags a sentence');
SELECT is(cardinality(cai_tag('ner', ARRAY['Paris'])), 1, 'a single token');
SELECT is(cai_tag('ner', ARRAY[]::text[]), ARRAY[]::text[], 'an empty sentence');
SELECT is(cai_tag('ner', NULL), NULL, 'NULL tokens give NULL');
SELECT throws_ok($$SELECT cai_tag('ner', ARRAY['a', NULL])$$, '22004', 'token 2 is NULL', 'a NULL token');
SELECT ok((SELECT bool_and(t ~ '^(O|[BI]-.+)$') FROM unnest(cai_tag('ner', ARRAY['Li', 'Wei', 'x', 'y'])) t), 'tags are IOB2');

-- entities from raw text keep exact character positions
SELECT ok((SELECT count(*) = 3 FROM cai_entities('ner', 'Sofia Rossi works for Hooli Corp in Lima .')), 'three entities found');
SELECT is((SELECT array_agg(label || ':' || entity ORDER BY start_pos) FROM cai_entities('ner', 'Sofia Rossi works for Hooli Corp in Lima .')),
          ARRAY['PER:Sofia Rossi', 'ORG:Hooli Corp', 'LOC:Lima'], 'entities and labels');
SELECT is((SELECT count(*)::int FROM tap_ner.texts, cai_entities('ner', t) e
            WHERE substr(t, e.start_pos, e.end_pos - e.start_pos + 1) <> e.entity), 0,
          'substr(input, start_pos, end_pos - start_pos + 1) = entity, with emoji, combining marks, Chinese');
SELECT ok((SELECT bool_and(score > 0 AND score <= 1) FROM tap_ner.texts, cai_entities('ner', t)), 'scores are confidences');
SELECT is((SELECT count(*)::int FROM cai_entities('ner', '')), 0, 'empty text has no entities');
SELECT is((SELECT count(*)::int FROM cai_entities('ner', NULL)), 0, 'NULL text gives no rows');
SELECT ok((SELECT count(*) >= 0 FROM cai_entities('ner', repeat('Kenji Tanaka met Wayne staff in Delhi . ', 12500))),
          'a 100,000-token text');
SELECT ok((SELECT count(*) >= 1 FROM cai_entities('ner', '李娜在上海工作。') WHERE label IN ('PER', 'LOC')), 'Chinese text tagged per character');

-- many sentences in one call (batched matrix products) give the same tags as one per call
SELECT is((SELECT cai_tag_batch('ner', jsonb_agg(to_jsonb(tokens) ORDER BY g)) FROM tap_ner.sent WHERE g % 7 = 0),
          (SELECT jsonb_agg(to_jsonb(cai_tag('ner', tokens)) ORDER BY g) FROM tap_ner.sent WHERE g % 7 = 0),
          'cai_tag_batch equals cai_tag row by row');
SELECT is(cai_tag_batch('ner', '[[], ["Paris"], []]') -> 0, '[]'::jsonb, 'empty sentences in a batch');
SELECT throws_ok($$SELECT cai_tag_batch('ner', '[1, 2]')$$, '22023', NULL, 'a batch that is not arrays of tokens');

-- cai_predict on an NER model returns the entities as a JSON array
SELECT is(jsonb_array_length(cai_predict('ner', 'Sofia Rossi works for Hooli Corp in Lima .')::jsonb), 3, 'cai_predict returns JSON entities');
SELECT ok((cai_predict('ner', 'Sofia Rossi works in Lima .')::jsonb -> 0) ?& ARRAY['entity', 'label', 'start', 'end', 'score'],
          'each has entity, label, start, end, score');

-- evaluation (conlleval counting)
SELECT ok((SELECT (r->>'f1')::float8 > 0.8 AND r ? 'accuracy' AND r->'types' ? 'ORG'
             FROM cai_evaluate('ner', 'tap_ner.sent', 'tokens', 'tags') r), 'cai_evaluate reports entity F1, per type, token accuracy');

-- data-parallel training: two threads (allowed by cai.threads), same answers format
SET cai.threads = 2;
SELECT lives_ok($$SELECT * FROM cai_train('ner_t2', 'ner', 'tap_ner.sent', 'tokens', 'tags', '{"epochs": 4, "threads": 2}')$$,
                'train with two threads');
RESET cai.threads;
SELECT is(cai_tag('ner_t2', ARRAY['Olga', 'Tanaka', 'works', 'for', 'Stark', 'Corp', 'in', 'Cairo', '.']),
          ARRAY['B-PER', 'I-PER', 'O', 'O', 'B-ORG', 'I-ORG', 'O', 'B-LOC', 'O'], 'the two-thread model tags the sentence');

-- other tag schemes and span labels
SELECT lives_ok($$SELECT * FROM cai_train('ner_bioes', 'ner', 'tap_ner.bioes', 'tokens', 'tags', '{"epochs": 5}')$$, 'train on BIOES tags');
SELECT ok((SELECT bool_and(t ~ '^(O|[BI]-.+)$') FROM unnest(cai_tag('ner_bioes', ARRAY['Olga', 'Tanaka', 'works', 'in', 'Oslo'])) t),
          'a BIOES-trained model still answers in IOB2');
SELECT lives_ok($$SELECT * FROM cai_train('ner_spans', 'ner', 'tap_ner.spans', 'text', 'entities', '{"epochs": 5}')$$,
                'train from text and jsonb character spans');
SELECT is((SELECT types FROM (SELECT metadata->'types' AS types FROM cai_model_store WHERE name = 'ner_spans') s),
          '["LOC", "ORG", "PER"]'::jsonb, 'span labels become entity types');

-- bad inputs
SELECT throws_like($$SELECT * FROM cai_train('bad', 'ner', 'tap_ner.mismatch', 'tokens', 'tags')$$,
                   'row 1 has 2 tokens but 1 tags', 'arrays of different lengths are rejected, naming the row');
SELECT throws_like($$SELECT * FROM cai_train('bad', 'ner', 'tap_ner.badtags', 'tokens', 'tags')$$, '%X-PER%', 'a malformed tag');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'ner', 'tap_ner.texts', 't', 't')$$, '42804', NULL, 'wrong column types');
SELECT throws_ok($$SELECT cai_predict_proba('ner', 'x')$$, '42809', NULL, 'an NER model in a text-classification function');
SELECT * FROM cai_train('tc', 'sentiment', 'SELECT t AS text, (length(t) % 2)::text AS label FROM tap_ner.texts, generate_series(1, 20)') \g /dev/null
SELECT throws_ok($$SELECT cai_tag('tc', ARRAY['a'])$$, '42809', NULL, 'a text-classification model in cai_tag');
SELECT throws_ok($$SELECT * FROM cai_entities('tc', 'a')$$, '42809', NULL, 'and in cai_entities');
-- character bigrams: on by themselves for text tagged a CJK character a token
SELECT lives_ok($$SELECT * FROM cai_train('ner_zh', 'ner', 'SELECT tokens, tags FROM tap_ner.sent WHERE g >= 2000', 'tokens', 'tags', '{"epochs": 5}')$$,
                'train on Chinese tagged per character');
SELECT is((SELECT array_agg((metadata->'ner'->>'char_bigrams')::boolean ORDER BY name) FROM cai_model_store WHERE name IN ('ner', 'ner_zh')),
          ARRAY[false, true], 'bigram features for the Chinese model (auto), not for the mostly English one');
SELECT is((SELECT array_agg(label || ':' || entity ORDER BY start_pos) FROM cai_entities('ner_zh', '王芳在深圳工作。')),
          ARRAY['PER:王芳', 'LOC:深圳'], 'the bigram model finds the entities of a Chinese sentence');
SELECT * FROM cai_train('ner_zh_off', 'ner', 'SELECT tokens, tags FROM tap_ner.sent WHERE g >= 2000', 'tokens', 'tags', '{"epochs": 1, "char_bigrams": "off"}') \g /dev/null
SELECT is((SELECT (metadata->'ner'->>'char_bigrams')::boolean FROM cai_model_store WHERE name = 'ner_zh_off'), false, 'char_bigrams off: none');
SELECT throws_ok($$SELECT * FROM cai_train('bad', 'ner', 'tap_ner.sent', 'tokens', 'tags', '{"char_bigrams": "maybe"}')$$, '22023', NULL,
                 'char_bigrams is auto, on or off');
SELECT is(pg_postmaster_start_time(), :'start_time'::timestamptz, 'the server was never restarted');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models) m;
DROP SCHEMA tap_ner CASCADE;
