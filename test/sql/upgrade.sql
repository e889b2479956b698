-- Upgrade from 0.1.0: models stored by 0.1.0 keep loading and predicting the
-- same; a model whose versions mix tasks (0.1.0 accepted that) is named by a
-- WARNING of the update script and left as it is; the upgraded schema equals
-- a fresh install's.  Also the NOTICEs of explicit deployments that change
-- the labels (the model name contract of 0.2.0).
SET client_min_messages = warning;
DROP EXTENSION cai_synergy;
CREATE EXTENSION cai_synergy VERSION '0.1.0';
CREATE TABLE up_train AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine movie ' || (g % 17) ELSE 'bad awful poor movie ' || (g % 13) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 400) g;
CREATE TABLE up_train3 AS
  SELECT * FROM up_train UNION ALL SELECT 'a movie ' || g, 'neutral' FROM generate_series(1, 200) g;
CREATE TABLE up_ner AS
  SELECT ARRAY[(ARRAY['John','Mary','Olga'])[1 + g % 3], 'lives', 'in', (ARRAY['Paris','Lima'])[1 + g % 2], '.'] AS tokens,
         ARRAY['B-PER', 'O', 'O', 'B-LOC', 'O'] AS tags
    FROM generate_series(1, 100) g;
SELECT version FROM cai_train('up_text', 'sentiment', 'up_train', options => '{"architecture": "fast", "epochs": 3}');
SELECT version FROM cai_train('up_ner', 'ner', 'up_ner', 'tokens', 'tags', '{"epochs": 1}');
-- what 0.1.0 allowed: a version of another task under a name (planted here,
-- since this build's functions refuse it)
INSERT INTO cai_model_store (name, version, task, model, metadata, owner)
  SELECT 'up_text', 2, task, model, metadata, owner FROM cai_model_store WHERE name = 'up_ner';
-- models written by release 0.1.0 itself (test/fixtures/0.1.0, copied for the server by scripts/test.sh)
\getenv fixtures CAI_FIXTURES_DIR
SELECT cai_import('f010_' || m, pg_read_binary_file(:'fixtures' || '/' || m || '.cai')) FROM unnest(ARRAY['fast', 'accurate', 'ner']) m;
CREATE TABLE up_expected AS
  SELECT f[1] AS model, f[2]::int AS probe, f[4] AS output,
         -- unescape \\ \t \n \r (a backslash is chr(92))
         replace(replace(replace(replace(replace(f[3], chr(92) || chr(92), chr(1)), chr(92) || 't', E'\t'),
                                 chr(92) || 'n', E'\n'), chr(92) || 'r', E'\r'), chr(1), chr(92)) AS input
    FROM regexp_split_to_table(pg_read_file(:'fixtures' || '/expected.tsv'), E'\n') AS l(line),
         LATERAL string_to_array(line, E'\t') AS f
   WHERE line <> '' AND line NOT LIKE '#%';
CREATE TABLE up_before AS
  SELECT cai_predict('up_text', 'a good movie') AS text_answer, cai_predict('up_ner', 'Mary lives in Lima .') AS ner_answer,
         (SELECT array_agg(md5(model) ORDER BY name, version) FROM cai_model_store) AS bytes;

ALTER EXTENSION cai_synergy UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'cai_synergy';
SELECT name, version, task, deployed, labels_changed FROM cai_models ORDER BY name, version;
SELECT cai_predict('up_text', 'a good movie') = text_answer AS same_text_answer,
       cai_predict('up_ner', 'Mary lives in Lima .') = ner_answer AS same_ner_answer,
       (SELECT array_agg(md5(model) ORDER BY name, version) FROM cai_model_store) = bytes AS same_bytes
  FROM up_before;

-- the 0.1.0 models answer as 0.1.0 did: the same label, probabilities within 1e-5, the same tags
SELECT e.model, count(*) AS probes,
       count(*) FILTER (WHERE CASE WHEN e.model = 'ner'
                                   THEN cai_tag('f010_ner', string_to_array(e.input, ' ')) = string_to_array(e.output, ' ')
                                   ELSE (SELECT bool_and(abs((cai_predict_proba('f010_' || e.model, e.input) ->> (m.labels ->> (p.i - 1)::int))::float8
                                                             - p.v::float8) < 1e-5)
                                           FROM unnest(string_to_array(e.output, ' ')) WITH ORDINALITY p(v, i),
                                                cai_model_details m WHERE m.name = 'f010_' || e.model)
                              END) AS same_answers
  FROM up_expected e GROUP BY e.model ORDER BY e.model;

-- the contract from now on
SELECT cai_deploy('up_text', 2);
SELECT cai_drop_model('up_text', 2);
SELECT version FROM cai_train('up_text', 'sentiment', 'up_train3', options => '{"architecture": "fast", "epochs": 3}');
SELECT version, deployed, labels_changed FROM cai_models WHERE name = 'up_text' ORDER BY version;
SET client_min_messages = notice;
SELECT cai_deploy('up_text', 2);
SELECT cai_rollback('up_text');
SET client_min_messages = warning;

-- an upgraded installation has exactly the objects, definitions and comments of a fresh one
CREATE FUNCTION up_describe() RETURNS SETOF text LANGUAGE sql AS $$
  SELECT pg_describe_object(d.classid, d.objid, 0)
         || coalesce(' ' || obj_description(d.objid, c.relname), '')
         || CASE WHEN d.classid = 'pg_proc'::regclass AND p.prokind <> 'a' THEN ' ' || pg_get_functiondef(d.objid)
                 WHEN d.classid = 'pg_class'::regclass
                 THEN ' ' || coalesce(pg_get_viewdef(d.objid), '')
                      || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                            || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                            || ' storage ' || a.attstorage::text, ', ' ORDER BY a.attnum)
                            FROM pg_attribute a WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped)
                 ELSE '' END
    FROM pg_depend d
    JOIN pg_class c ON c.oid = d.classid
    LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cai_synergy')
$$;
CREATE TABLE up_upgraded AS SELECT up_describe() AS d;
DROP EXTENSION cai_synergy;
CREATE EXTENSION cai_synergy;
SELECT count(*) AS objects FROM up_upgraded;
-- the model and vector bytes out of line, uncompressed (both scripts)
SELECT attrelid::regclass AS store, attname, attstorage FROM pg_attribute
 WHERE attrelid IN ('cai_model_store'::regclass, 'cai_vector_store'::regclass) AND attname IN ('model', 'data')
 ORDER BY 1;
SELECT 'only after upgrade' AS side, d FROM (SELECT d FROM up_upgraded EXCEPT SELECT up_describe() AS d) x
UNION ALL
SELECT 'only in a fresh install', d FROM (SELECT up_describe() AS d EXCEPT SELECT d FROM up_upgraded) y;
DROP TABLE up_train, up_train3, up_ner, up_before, up_expected, up_upgraded;
DROP FUNCTION up_describe();
