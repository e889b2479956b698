-- Entity-level scoring counted exactly as the CoNLL conlleval script, on
-- hand-made cases (cai_conlleval uses the same counting as cai_evaluate).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(12);

-- a perfect prediction
SELECT is(((SELECT cai_conlleval(g, p) FROM (VALUES
            (ARRAY['B-PER','I-PER','O','B-LOC'], ARRAY['B-PER','I-PER','O','B-LOC'])) t(g, p)) ->> 'f1')::float8,
          1::float8, 'identical tags give F1 1');
-- a stray I- after O starts a chunk: I-PER alone is a PER entity, so it matches B-PER
SELECT is(((SELECT cai_conlleval(g, p) FROM (VALUES
            (ARRAY['O','B-PER','O'], ARRAY['O','I-PER','O'])) t(g, p)) ->> 'correct_entities')::int,
          1, 'a stray I-X after O starts an entity');
-- I- of another type inside an entity starts a new chunk
SELECT is((SELECT (r->>'predicted_entities')::int FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['B-ORG','I-ORG','I-ORG'], ARRAY['B-ORG','I-LOC','I-ORG'])) t(g, p)) s),
          3, 'a type change inside I- tags starts new entities');
-- adjacent entities of one type: B-PER B-PER is two entities; I-PER I-PER would be one
SELECT is((SELECT (r->>'gold_entities')::int FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['B-PER','B-PER'], ARRAY['B-PER','I-PER'])) t(g, p)) s), 2, 'adjacent B-PER B-PER are two entities');
SELECT is((SELECT (r->>'correct_entities')::int FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['B-PER','B-PER'], ARRAY['B-PER','I-PER'])) t(g, p)) s), 0, 'merging them is wrong twice');
-- entities at the sentence end, and the boundary between sentences closes an entity
SELECT is((SELECT (r->>'correct_entities')::int FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['O','B-LOC','I-LOC'], ARRAY['O','B-LOC','I-LOC']),
            (ARRAY['I-LOC','O'], ARRAY['I-LOC','O'])) t(g, p)) s), 2, 'entities at the sentence end and start');
-- partial spans and wrong types are wrong
SELECT is((SELECT (r->>'correct_entities')::int FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['B-ORG','I-ORG','O','B-PER'], ARRAY['B-ORG','O','O','B-LOC'])) t(g, p)) s), 0, 'partial span and wrong type');
-- numbers: gold 3 entities, predicted 2, both correct: P = 1, R = 2/3, F1 = 0.8; token accuracy 5/6
SELECT results_eq($$SELECT round((r->>'precision')::numeric, 4), round((r->>'recall')::numeric, 4),
                           round((r->>'f1')::numeric, 4), round((r->>'accuracy')::numeric, 4)
                      FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
                        (ARRAY['B-PER','I-PER','O'], ARRAY['B-PER','I-PER','O']),
                        (ARRAY['B-LOC','O','B-ORG'], ARRAY['B-LOC','O','O'])) t(g, p)) s$$,
                  $$VALUES (1.0000, 0.6667, 0.8000, 0.8333)$$, 'precision, recall, F1, token accuracy');
SELECT is((SELECT (r->'types'->'PER'->>'f1')::float8 FROM (SELECT cai_conlleval(g, p) r FROM (VALUES
            (ARRAY['B-PER','O','B-LOC'], ARRAY['B-PER','O','O'])) t(g, p)) s), 1::float8, 'per-type scores');
-- BIOES input is read as chunks too
SELECT is(((SELECT cai_conlleval(g, p) FROM (VALUES
            (ARRAY['S-PER','O','B-ORG','E-ORG'], ARRAY['B-PER','O','B-ORG','I-ORG'])) t(g, p)) ->> 'f1')::float8,
          1::float8, 'BIOES gold against IOB2 predictions');
SELECT throws_ok($$SELECT cai_conlleval(ARRAY['O','O'], ARRAY['O'])$$, '22023', NULL, 'different lengths');
SELECT is((SELECT cai_conlleval(g, p) FROM (SELECT NULL::text[] g, NULL::text[] p) t), NULL, 'no rows give NULL');
SELECT * FROM finish();
