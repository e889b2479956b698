-- Pretraining an encoder in the database: cai_pretrain (the caller's rows
-- streamed to the training worker) and cai_pretrain_async (a job in
-- cai_jobs), the stored version an encoder model usable by cai_embed, the
-- figures in its metrics, bad options with 22023, memory refused, cancel
-- leaving nothing stored, ownership.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\ir lib/wait_for.sql
CREATE SCHEMA tap_pt;
-- sentences of a tiny grammar: the verb follows from the subject
CREATE TABLE tap_pt.corpus AS
  SELECT (ARRAY['the cat', 'the dog', 'a bird', 'the farmer'])[1 + g % 4] || ' ' ||
         (ARRAY['meows at', 'barks at', 'sings to', 'ploughs'])[1 + g % 4] || ' ' ||
         (ARRAY['the moon', 'an apple', 'the lighthouse', 'an orange', 'the tractor'])[1 + (g / 4) % 5] || ' ' ||
         (ARRAY['quietly', 'loudly', 'happily'])[1 + (g / 20) % 3] || '.' AS text
    FROM generate_series(1, 400) g;
CREATE ROLE tap_pt_other LOGIN;
GRANT USAGE ON SCHEMA tap_pt TO tap_pt_other;
GRANT SELECT ON ALL TABLES IN SCHEMA tap_pt TO tap_pt_other;

SELECT plan(17);

SELECT is((SELECT version FROM cai_pretrain('tap_pt_enc', 'tap_pt.corpus', 'text',
           '{"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "max_length": 32, "vocab_size": 100,
             "batch_size": 16, "learning_rate": 0.003, "dropout": 0, "epochs": 20, "max_seconds": 20, "seed": 1, "validation_fraction": 0.1}')),
          1, 'cai_pretrain stores version 1');
SELECT is((SELECT format('%s %s %s', task, architecture, deployed) FROM cai_models WHERE name = 'tap_pt_enc'),
          'encoder bert t', 'an encoder model (task encoder, architecture bert), deployed as the first version');
SELECT is((SELECT owner::text FROM cai_models WHERE name = 'tap_pt_enc'), current_user::text, 'owned by the caller');
SELECT ok((SELECT (metrics->>'mlm_accuracy')::float8 > (metrics->>'unigram_accuracy')::float8
             AND (metrics->>'vocab_size')::int BETWEEN 30 AND 100
             AND jsonb_array_length(metrics->'loss_curve') >= 2
             AND (metrics->'loss_curve'->>0)::float8 > (metrics->>'loss')::float8
             FROM cai_model_details WHERE name = 'tap_pt_enc'),
          'metrics: the loss fell and held-out masked-token accuracy beats the unigram baseline');
SELECT is((SELECT array_length(cai_embed('tap_pt_enc', 'the cat meows at the moon'), 1)), 32,
          'cai_embed gives a vector of the hidden size');
SELECT ok((SELECT cai_embed('tap_pt_enc', 'the cat meows', 'cls') <> cai_embed('tap_pt_enc', 'the farmer ploughs', 'cls')),
          'different texts, different embeddings');
SELECT cai_pretrain_async('tap_pt_job', 'SELECT text FROM tap_pt.corpus', 'text',
       '{"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32, "max_length": 16, "vocab_size": 80, "epochs": 2, "threads": 2}') AS j \gset
SELECT is((SELECT state || ' ' || task FROM cai_wait(:j)), 'succeeded encoder', 'the async form is a job of task encoder');
SELECT is((SELECT count(*)::int FROM cai_jobs WHERE job_id = :j AND progress = 1), 1, 'cai_jobs shows it finished');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name = 'tap_pt_job' AND task = 'encoder'), 1, 'the job stored its encoder');
SELECT throws_ok($$SELECT * FROM cai_pretrain('bad', 'tap_pt.corpus', 'text', '{"hidden": 30, "heads": 4}')$$, '22023', NULL,
                 'heads that do not divide hidden are refused');
SELECT throws_ok($$SELECT * FROM cai_pretrain('bad', 'tap_pt.corpus', 'text', '{"dimensions": 8}')$$, '22023', NULL,
                 'an option of another task is refused');
SELECT throws_ok($$SELECT * FROM cai_pretrain('bad', 'tap_pt.corpus', 'text', '{"layers": 0}')$$, '22023', NULL,
                 'an option out of range is refused');
SET cai.training_memory = '16MB';
SELECT throws_ok($$SELECT * FROM cai_pretrain('bad', 'tap_pt.corpus', 'text', '{}')$$, '54000', NULL,
                 'the default shape does not fit cai.training_memory');
RESET cai.training_memory;
-- cancel a running job (progress > 0: training runs): nothing stored
SELECT cai_pretrain_async('tap_pt_cancel', 'tap_pt.corpus', 'text',
       '{"layers": 1, "hidden": 16, "heads": 2, "intermediate": 32, "max_length": 16, "vocab_size": 80, "epochs": 100000}') AS c \gset
SELECT pg_temp.wait_for(format('SELECT state = %L AND progress > 0 FROM cai_jobs WHERE job_id = %s', 'running', :c), 60) \g /dev/null
SELECT is(cai_cancel(:c), true, 'cancel a running pretraining job');
SELECT is((SELECT state FROM cai_wait(:c)), 'cancelled', 'it ends cancelled');
SELECT is((SELECT count(*)::int FROM cai_models WHERE name IN ('tap_pt_cancel', 'bad')), 0, 'cancelled and refused pretrainings store nothing');
SET ROLE tap_pt_other;
SELECT throws_ok($$SELECT * FROM cai_pretrain('tap_pt_enc', 'tap_pt.corpus', 'text', '{"layers": 1, "hidden": 16, "heads": 2, "epochs": 1}')$$,
                 '42501', NULL, 'another role cannot add a version to the encoder');
RESET ROLE;

SELECT * FROM finish();
SELECT cai_drop_model(name) FROM (SELECT DISTINCT name FROM cai_models WHERE name IN ('tap_pt_enc', 'tap_pt_job')) m;
DROP SCHEMA tap_pt CASCADE;
DROP OWNED BY tap_pt_other;
DROP ROLE tap_pt_other;
