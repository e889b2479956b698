-- ner_tagging.sql: one round of tagging throughput for bench/ner.sh, in a new
-- session each round.  psql variables: model, round (RESULT key suffix),
-- ticks (getconf CLK_TCK).  Every measurement is wall time between
-- clock_timestamp() calls around the statement, plus the backend's CPU
-- seconds (user + system, /proc/self/stat) over the same statement.
--   first_call  the first cai_tag call of the session (loads the model)
--   tag_single  cai_tag, one sentence (token array) per call, every test sentence
--   ent_doc_nl  cai_entities over one text: all test sentences, tokens joined
--               with spaces, sentences with newlines (a newline ends a
--               sentence, so cai_entities batches exactly the test sentences)
--   ent_doc_sp  the same text with the newlines replaced by spaces: sentences
--               only end at . ! ? or after 200 tokens, so some run together
--   ent_single  cai_entities, one sentence text per call
\set ON_ERROR_STOP 1
\set cpu 'SELECT split_part(s, \' \', 14)::bigint + split_part(s, \' \', 15)::bigint AS c0 FROM pg_read_file(\'/proc/self/stat\') s'
\set since 'round(extract(epoch FROM clock_timestamp()) - :t0, 4)'
\set used 'round((split_part(s, \' \', 14)::bigint + split_part(s, \' \', 15)::bigint - :c0) / :ticks.0, 2) FROM pg_read_file(\'/proc/self/stat\') s'

SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT cai_tag(:'model', ARRAY['Warm', 'up', 'in', 'Paris']) \g /dev/null
SELECT 'RESULT first_call_r' || :'round' || ' ' || :since;

:cpu \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(cai_tag(:'model', tokens)) AS n FROM ner_test \gset
SELECT 'RESULT tag_single_r' || :'round' || ' ' || :since;
SELECT 'RESULT tag_single_cpu_r' || :'round' || ' ' || :used;
\echo RESULT tag_single_count_r:round :n

:cpu \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS n FROM ner_test_doc, cai_entities(:'model', body) \gset
SELECT 'RESULT ent_doc_nl_r' || :'round' || ' ' || :since;
SELECT 'RESULT ent_doc_nl_cpu_r' || :'round' || ' ' || :used;
\echo RESULT ent_doc_nl_count_r:round :n

:cpu \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(*) AS n FROM ner_test_doc_sp, cai_entities(:'model', body) \gset
SELECT 'RESULT ent_doc_sp_r' || :'round' || ' ' || :since;
SELECT 'RESULT ent_doc_sp_cpu_r' || :'round' || ' ' || :used;
\echo RESULT ent_doc_sp_count_r:round :n

:cpu \gset
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT count(e.*) AS n FROM ner_test_text t, cai_entities(:'model', t.body) e \gset
SELECT 'RESULT ent_single_r' || :'round' || ' ' || :since;
SELECT 'RESULT ent_single_cpu_r' || :'round' || ' ' || :used;
\echo RESULT ent_single_count_r:round :n
