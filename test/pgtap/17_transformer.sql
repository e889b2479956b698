-- Fine-tuning an imported encoder through cai_train (the "encoder" option of
-- the transformer architecture), end to end on the fixture encoder
-- (test/fixtures/encoder: hidden 8, 8 positions, a 16-token vocabulary):
-- text classification and NER on small tables of the vocabulary's words,
-- inference through the existing functions (cai_predict, cai_predict_proba,
-- cai_entities, cai_evaluate), cai_embed from the fine-tuned encoder, the
-- encoder's name, version and md5 in the trained model's provenance, and the
-- errors of a missing or unusable encoder.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\set cfg `cat test/fixtures/encoder/config.json`
\set vocab `cat test/fixtures/encoder/vocab.txt`
\set w `base64 -w0 test/fixtures/encoder/model.safetensors`
\set fast `base64 -w0 test/fixtures/0.1.0/fast.cai`

CREATE SCHEMA tap_tf;
-- sentiment: "good" or "bad" decides, around other words of the vocabulary
CREATE TABLE tap_tf.reviews AS
  SELECT format('%s %s %s', (ARRAY['the cat', 'the dog', 'cats', 'dogs'])[1 + g % 4],
                CASE WHEN g % 2 = 0 THEN 'good' ELSE 'bad' END,
                (ARRAY['.', 'on the mat', ',', 'sat'])[1 + (g / 4) % 4]) AS body,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(0, 63) g;
-- NER: animals and the mat
CREATE TABLE tap_tf.sentences AS
  SELECT ARRAY['the', a, 'sat', 'on', 'the', 'mat'] AS tokens,
         ARRAY['O', 'B-ANIMAL', 'O', 'O', 'O', 'B-THING'] AS tags
    FROM unnest(ARRAY['cat', 'dog', 'cats', 'dogs']) a, generate_series(1, 12);
\set opts '{"architecture": "transformer", "encoder": "tf_bert", "epochs": 30, "learning_rate": 0.003, "warmup": 0, "batch_size": 8, "max_length": 8, "seed": 7, "validation_fraction": 0.2}'

SELECT plan(26);

SELECT is(cai_import_encoder('tf_bert', :'cfg'::jsonb, :'vocab', decode(:'w', 'base64')), 1, 'import the fixture encoder');

-- text classification
SELECT is((SELECT version FROM cai_train('tf_sent', 'sentiment', 'tap_tf.reviews', 'body', 'label', :'opts')), 1,
          'cai_train fine-tunes the encoder for sentiment');
SELECT is((SELECT format('%s %s', task, architecture) FROM cai_models WHERE name = 'tf_sent'),
          'text_classification transformer', 'a text classification model of architecture transformer');
SELECT is(cai_model_info('tf_sent') -> 'provenance' -> 'encoder' ->> 'name', 'tf_bert', 'its provenance names the encoder');
SELECT is((cai_model_info('tf_sent') -> 'provenance' -> 'encoder' ->> 'version')::int, 1, 'and its version');
SELECT is(cai_model_info('tf_sent') -> 'provenance' -> 'encoder' ->> 'md5', md5(cai_export('tf_bert')),
          'and the md5 of its stored bytes');
SELECT ok(cai_predict('tf_sent', 'the dog good .') IN ('pos', 'neg'), 'cai_predict answers with a label');
SELECT ok(abs((SELECT sum(value::float8) FROM jsonb_each_text(cai_predict_proba('tf_sent', 'cats bad'))) - 1) < 1e-5,
          'cai_predict_proba sums to 1');
SELECT ok((cai_evaluate('tf_sent', 'tap_tf.reviews', 'body', 'label') ->> 'accuracy')::float8 >= 0.9,
          'cai_evaluate: the fine-tuned model separates good from bad (accuracy >= 0.9 on its training rows)');
SELECT is(cardinality(cai_embed('tf_sent', 'the cat sat')), 8, 'cai_embed takes the fine-tuned model');
SELECT isnt(cai_embed('tf_sent', 'the cat sat'), cai_embed('tf_bert', 'the cat sat'),
            'whose encoder fine-tuning changed');

-- NER
SELECT is((SELECT version FROM cai_train('tf_ner', 'ner', 'tap_tf.sentences', 'tokens', 'tags', :'opts')), 1,
          'cai_train fine-tunes the encoder for NER');
SELECT is((SELECT format('%s %s', task, architecture) FROM cai_models WHERE name = 'tf_ner'), 'ner transformer',
          'an NER model of architecture transformer');
SELECT is((SELECT string_agg(format('%s %s %s-%s', entity, label, start_pos, end_pos), '; ' ORDER BY start_pos)
             FROM cai_entities('tf_ner', 'The dogs sat on the mat')),
          'dogs ANIMAL 5-8; mat THING 21-23', 'cai_entities: a token of two word pieces (dog ##s) is one entity at its characters');
SELECT ok((cai_evaluate('tf_ner', 'tap_tf.sentences', 'tokens', 'tags') ->> 'f1')::float8 >= 0.9,
          'cai_evaluate: entity F1 >= 0.9 on its training sentences');

-- errors
SELECT throws_ok($$SELECT * FROM cai_train('tf_x', 'sentiment', 'tap_tf.reviews', 'body', 'label', '{"architecture": "transformer"}')$$,
                 '22023', NULL, 'the transformer architecture without an encoder');
SELECT throws_ok($$SELECT * FROM cai_train('tf_x', 'sentiment', 'tap_tf.reviews', 'body', 'label', '{"architecture": "transformer", "encoder": "tf_none"}')$$,
                 '42704', 'encoder "tf_none" does not exist', 'an encoder that does not exist');
SELECT is(cai_import('tf_clf', decode(:'fast', 'base64')), 1, 'a model without an encoder');
SELECT throws_ok($$SELECT * FROM cai_train('tf_x', 'sentiment', 'tap_tf.reviews', 'body', 'label', '{"architecture": "transformer", "encoder": "tf_clf"}')$$,
                 '42809', NULL, 'naming a model without an encoder');
SELECT throws_ok($$SELECT * FROM cai_train('tf_x', 'encoder', 'tap_tf.reviews', 'body', 'label')$$,
                 '22023', NULL, 'encoders are imported, not trained');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tf_x'), 0, 'nothing stored by the refused trainings');

-- a job fine-tunes in its worker alone; a trained model keeps working once its encoder is dropped
SELECT is((SELECT state FROM cai_wait(cai_train_async('tf_sent', 'sentiment', 'tap_tf.reviews', 'body', 'label',
                                                      jsonb_set(:'opts'::jsonb, '{epochs}', '2')))),
          'succeeded', 'cai_train_async with an encoder succeeds');
SELECT is(cai_model_info('tf_sent', 2) -> 'provenance' -> 'encoder' ->> 'name', 'tf_bert', 'the job''s version records the encoder too');
SELECT lives_ok($$SELECT cai_drop_model('tf_bert')$$, 'drop the encoder');
SELECT is(cai_predict('tf_sent', 1, 'the dog good .'), 'pos', 'the fine-tuned model still predicts (its bytes hold the encoder)');
SELECT throws_ok($$SELECT * FROM cai_train('tf_x', 'sentiment', 'tap_tf.reviews', 'body', 'label', '{"architecture": "transformer", "encoder": "tf_bert"}')$$,
                 '42704', NULL, 'a dropped encoder cannot be fine-tuned');

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name IN ('tf_bert', 'tf_sent', 'tf_ner', 'tf_clf')) m;
DROP SCHEMA tap_tf CASCADE;
