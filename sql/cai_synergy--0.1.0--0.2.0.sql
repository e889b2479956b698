-- cai_synergy 0.1.0 -> 0.2.0
-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION cai_synergy UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- A model name keeps the task of its first version (0.2.0).  0.1.0 accepted
-- versions of another task under an existing name; such models are reported
-- here, not changed: their owners decide which versions to keep.  A WARNING,
-- not a NOTICE: PostgreSQL runs extension scripts with client_min_messages
-- raised to WARNING, so a NOTICE would never reach the user.
-- ---------------------------------------------------------------------------
DO $cai_upgrade$
DECLARE
    m record;
BEGIN
    FOR m IN
        SELECT s.name,
               (SELECT f.task FROM @extschema@.cai_model_store f WHERE f.name = s.name ORDER BY f.version LIMIT 1) AS task,
               string_agg(s.task || ' ' || s.version::text || CASE WHEN s.deployed THEN ' (deployed)' ELSE '' END,
                          ', ' ORDER BY s.version) AS versions
          FROM @extschema@.cai_model_store s
         GROUP BY s.name
        HAVING count(DISTINCT s.task) > 1
         ORDER BY s.name
    LOOP
        RAISE WARNING 'model "%" has versions of more than one task: %', m.name, m.versions
            USING DETAIL = format('From cai_synergy 0.2.0 on, a model name keeps the task of its first version (%s): '
                                  'versions of another task can no longer be added or deployed under it.', m.task),
                  HINT = format('Export the other versions with cai_export, import them under another name, '
                                'then drop them with cai_drop_model(%L, version).', m.name);
    END LOOP;
END
$cai_upgrade$;

-- The training curve of every version trained from 0.2.0 on (per epoch:
-- loss, validation score, rows/s, seconds since training started), kept
-- beside the metrics so that they stay short; NULL for imported versions and
-- versions trained by 0.1.0.  Jobs keep theirs while they run (and when they
-- fail or are cancelled) within the job history bound.
ALTER TABLE @extschema@.cai_model_store ADD COLUMN history jsonb;
-- The model bytes (new versions; rows stored before keep their form) are floats that pglz cannot shrink: stored out of line
-- without trying (STORAGE EXTERNAL), which spared about a second of pglz per
-- 57 MB model in every cai_train, cai_import and cai_add_version.
ALTER TABLE @extschema@.cai_model_store ALTER COLUMN model SET STORAGE EXTERNAL;
ALTER TABLE @extschema@.cai_job_store ADD COLUMN history jsonb;

-- cai_models becomes one short line per version for people and dashboards;
-- everything it showed in 0.1.0 (size in bytes, labels, the whole metrics
-- object) is in cai_model_details.  labels_changed: whether a version's
-- labels (NER: entity types) differ from the deployed version's (NULL when no
-- version is deployed).
DROP VIEW @extschema@.cai_models;
CREATE VIEW @extschema@.cai_model_details AS
SELECT s.name,
       s.version,
       s.task,
       s.metadata ->> 'architecture' AS architecture,
       pg_catalog.octet_length(s.model) AS size,
       s.metadata -> 'labels' AS labels,
       s.metrics,
       s.deployed,
       s.created_at,
       s.owner,
       (SELECT s.task <> d.task
               OR (SELECT coalesce(pg_catalog.jsonb_agg(x ORDER BY x), '[]'::jsonb)
                     FROM pg_catalog.jsonb_array_elements_text(CASE WHEN s.task = 'ner' THEN s.metadata -> 'types'
                                                                    ELSE s.metadata -> 'labels' END) x)
               <> (SELECT coalesce(pg_catalog.jsonb_agg(x ORDER BY x), '[]'::jsonb)
                     FROM pg_catalog.jsonb_array_elements_text(CASE WHEN d.task = 'ner' THEN d.metadata -> 'types'
                                                                    ELSE d.metadata -> 'labels' END) x)
          FROM @extschema@.cai_model_store d
         WHERE d.name = s.name AND d.deployed) AS labels_changed
  FROM @extschema@.cai_model_store s;
COMMENT ON VIEW @extschema@.cai_model_details IS
    'one row per model version with everything the catalog keeps about it: name, version, task, architecture, size in bytes, labels, validation metrics (jsonb), deployed flag, creation time, owner, and whether its labels (NER: entity types) differ from the deployed version''s';
GRANT SELECT ON @extschema@.cai_model_details TO PUBLIC;

CREATE VIEW @extschema@.cai_models AS
SELECT d.name,
       d.version,
       d.task,
       d.architecture,
       pg_catalog.round(coalesce(d.metrics ->> 'score', d.metrics ->> 'f1', d.metrics ->> 'accuracy')::numeric, 4) AS score,
       pg_catalog.pg_size_pretty(d.size::bigint) AS size,
       d.deployed,
       d.created_at,
       d.owner,
       d.labels_changed
  FROM @extschema@.cai_model_details d;
COMMENT ON VIEW @extschema@.cai_models IS
    'one short row per model version: name, version, task, architecture, validation score (accuracy or entity F1, 4 decimals), size, deployed flag, creation time, owner, labels_changed; cai_model_details has the size in bytes, labels and all metrics';
GRANT SELECT ON @extschema@.cai_models TO PUBLIC;

-- Learning curves for BI tools: one row per epoch of every stored version
-- trained from 0.2.0 on (job_id when an asynchronous job still in the job
-- history made it), and of every job that has not stored a version (running,
-- failed, cancelled; visible like cai_jobs: to members of the job's role).
CREATE VIEW @extschema@.cai_training_history AS
SELECT j.job_id, s.name AS model, s.version, h.epoch, h.loss, h.validation_score, h.rows_per_sec, h.seconds
  FROM @extschema@.cai_model_store s
       CROSS JOIN LATERAL pg_catalog.jsonb_to_recordset(s.history)
           AS h(epoch integer, loss float8, validation_score float8, rows_per_sec float8, seconds float8)
       LEFT JOIN @extschema@.cai_job_store j
           ON j.model = s.name AND j.version = s.version AND j.state = 'succeeded'
UNION ALL
SELECT j.job_id, j.model, NULL::integer, h.epoch, h.loss, h.validation_score, h.rows_per_sec, h.seconds
  FROM @extschema@.cai_job_store j
       CROSS JOIN LATERAL pg_catalog.jsonb_to_recordset(j.history)
           AS h(epoch integer, loss float8, validation_score float8, rows_per_sec float8, seconds float8)
 WHERE j.state <> 'succeeded'
   AND (pg_catalog.pg_has_role(j.role::oid, 'MEMBER') OR pg_catalog.pg_has_role('pg_signal_backend', 'MEMBER'));
COMMENT ON VIEW @extschema@.cai_training_history IS
    'per-epoch training curve (training loss, validation score, rows/s, seconds since the start) of stored versions and of jobs that stored none, for plotting learning curves';
GRANT SELECT ON @extschema@.cai_training_history TO PUBLIC;

COMMENT ON FUNCTION @extschema@.cai_import(text, bytea) IS
    'validate model bytes (as made by cai_export) and store them as a new version of model; returns the version. The first version of a new model is deployed; a version of another task than the model''s is refused (SQLSTATE 42809).';
COMMENT ON FUNCTION @extschema@.cai_deploy(text, integer) IS
    'make a version the one cai_predict uses (NULL = latest); returns the deployed version. A NOTICE says how the labels change; a version of another task is refused.';
COMMENT ON FUNCTION @extschema@.cai_model_info(text, integer) IS
    'metadata of a model version (NULL = deployed): task, architecture, labels, options, provenance, labels_changed (against the deployed version); tuning (the search and its trials) for a version made by cai_tune';
COMMENT ON FUNCTION @extschema@.cai_train(text, text, text, text, text, jsonb) IS
    'train a model version (task sentiment, text_classification or ner) from a table, view or SELECT query, read with the caller''s rights, in a background worker; returns the new version and its validation metrics. A model name keeps the task of its first version; the default deploy policy deploys a new version only if its labels equal the deployed version''s and its validation score is higher.';

-- Options per architecture: each architecture lists the defaults it uses.
DROP FUNCTION @extschema@.cai_options(text);
CREATE FUNCTION @extschema@.cai_options(task text DEFAULT 'sentiment', architecture text DEFAULT NULL)
RETURNS TABLE (name text, type text, default_value text, min double precision, max double precision,
               choices text, description text)
    AS 'MODULE_PATHNAME', 'cai_list_options' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cai_options(text, text) IS
    'the training options of an architecture of a task (NULL architecture = the task''s default: accurate for text classification): name, type, the default that architecture uses, bounds, meaning';

-- Batched scoring of a whole query: rows (key, input) in, (key, label, score)
-- out, batch_size inputs per call into the model (matrix products where the
-- architecture has them).  VOLATILE and PARALLEL RESTRICTED: it runs the
-- caller's query.
CREATE FUNCTION @extschema@.cai_predict_query(model text, query text, batch_size integer DEFAULT 256)
RETURNS TABLE (key text, label text, score real)
    AS 'MODULE_PATHNAME', 'cai_predict_query' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.cai_predict_query(text, text, integer) IS
    'score every row (key, input) of a query with the deployed version of a model, batch_size rows at a time (batched matrix products); returns key (as text), the predicted label and its probability (a token classification model: the JSON array of entities cai_predict gives, and a NULL score); a NULL input gives a NULL label';

-- Word vector sets: stored once as versioned bytes (the model format), owned
-- by the role that created the first version, written only through the
-- cai_*_vectors functions, dumped and replicated with the database.
CREATE TABLE @extschema@.cai_vector_store (
    name        text        NOT NULL CHECK (name <> '' AND octet_length(name) <= 200),
    version     integer     NOT NULL CHECK (version > 0),
    data        bytea       NOT NULL,
    metadata    jsonb       NOT NULL,
    owner       regrole     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE @extschema@.cai_vector_store IS
    'cai_synergy word vector sets (written only through cai_*_vectors functions)';
-- Vectors are floats too: out of line, uncompressed (as the models).
ALTER TABLE @extschema@.cai_vector_store ALTER COLUMN data SET STORAGE EXTERNAL;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cai_vector_store', '');
REVOKE ALL ON @extschema@.cai_vector_store FROM PUBLIC;

CREATE VIEW @extschema@.cai_vectors AS
SELECT s.name,
       s.version,
       (s.metadata ->> 'dims')::integer AS dimensions,
       (s.metadata ->> 'words')::integer AS words,
       (s.metadata ->> 'subwords')::boolean AS subwords,
       s.metadata ->> 'source' AS source,
       pg_catalog.pg_size_pretty(pg_catalog.octet_length(s.data)::bigint) AS size,
       s.created_at,
       s.owner
  FROM @extschema@.cai_vector_store s;
COMMENT ON VIEW @extschema@.cai_vectors IS
    'word vector sets, one row per version: name, version, dimensions, words, whether unseen words get subword vectors, source, size, creation time, owner';
GRANT SELECT ON @extschema@.cai_vectors TO PUBLIC;

CREATE FUNCTION @extschema@.cai_import_vectors(name text, data bytea, format text DEFAULT 'text') RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_import_vectors_file' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_import_vectors(text, bytea, text) IS
    'import word vectors from a file''s bytes as a new version of a vector set; format text (GloVe, word2vec text, fastText .vec), binary (word2vec) or cai (bytes of cai_export_vectors); every line is validated (errors name the line); returns the version';
CREATE FUNCTION @extschema@.cai_import_vectors(name text, source text) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_import_vectors_query' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_import_vectors(text, text) IS
    'import word vectors from a table, view or SELECT query with columns word text and vector real[] (read with the caller''s rights) as a new version of a vector set; returns the version';
CREATE FUNCTION @extschema@.cai_export_vectors(name text, version integer DEFAULT NULL) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cai_export_vectors' LANGUAGE C STABLE;
COMMENT ON FUNCTION @extschema@.cai_export_vectors(text, integer) IS
    'the stored bytes of a vector set version (NULL = latest), for cai_import_vectors(name, data, ''cai'')';
CREATE FUNCTION @extschema@.cai_drop_vectors(name text, version integer DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_drop_vectors' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_drop_vectors(text, integer) IS
    'drop one version of a vector set or all (NULL); owner only; returns the number of versions dropped';
CREATE FUNCTION @extschema@.cai_similar(vectors text, word text, k integer DEFAULT 10)
RETURNS TABLE (word text, similarity real)
    AS 'MODULE_PATHNAME', 'cai_similar' LANGUAGE C STABLE PARALLEL SAFE ROWS 10;
COMMENT ON FUNCTION @extschema@.cai_similar(text, text, integer) IS
    'the k words of a vector set nearest a word by cosine similarity (the word''s subword vector when it is not in a set that has subwords; no rows when it has no vector)';

-- Word vectors trained in the database: skip-gram or CBOW with negative
-- sampling and character n-gram subwords (the "vectors" task), on the text of
-- a table or query, in a background worker like cai_train (progress, cancel,
-- threads; the async form returns a job of cai_jobs).
CREATE FUNCTION @extschema@.cai_train_vectors(model text, source text, input_column text DEFAULT 'text',
                                              options jsonb DEFAULT '{}')
RETURNS TABLE (name text, version integer, metrics jsonb)
    LANGUAGE sql VOLATILE
    AS $$ SELECT * FROM @extschema@.cai_train($1, 'vectors', $2, $3, $3, $4) $$;
COMMENT ON FUNCTION @extschema@.cai_train_vectors(text, text, text, jsonb) IS
    'train word vectors (skip-gram or CBOW with negative sampling and subwords, options as cai_options(''vectors'')) on the texts of a table, view or SELECT query, read with the caller''s rights, in a background worker; stores them as a new version of a vector set';
CREATE FUNCTION @extschema@.cai_train_vectors_async(model text, source text, input_column text DEFAULT 'text',
                                                    options jsonb DEFAULT '{}')
RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ SELECT @extschema@.cai_train_async($1, 'vectors', $2, $3, $3, $4) $$;
COMMENT ON FUNCTION @extschema@.cai_train_vectors_async(text, text, text, jsonb) IS
    'cai_train_vectors as a job: returns its id at once (cai_jobs, cai_wait, cai_cancel)';

-- Drift: new inputs against what the deployed version was trained on.
CREATE FUNCTION @extschema@.cai_drift(model text, source text, input_column text DEFAULT 'text') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_drift' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.cai_drift(text, text, text) IS
    'compare up to 5,000 rows of a table or query (texts, or text[] token arrays; read with the caller''s rights) with what the deployed version of a model of any architecture saw on its validation rows at training: population stability index and a verdict (stable, moderate shift, significant shift) for input length, unseen-word rate, predicted labels (a tagger: entity type or O per token) and confidence, and overall; statistics the version did not keep are listed as unavailable (verdict unknown when it kept none)';

-- Citus: the catalog tables every node must share become reference tables.
-- Each node then holds a copy of every model, deployment and vector set;
-- Citus writes all copies in the writing transaction (two-phase commit), and
-- the functions read the local copy, so cai_predict and friends pushed down to
-- a worker's shards find the model there.  Run once on the coordinator, as the
-- extension's owner, after CREATE EXTENSION (idempotent; returns the tables it
-- distributed).  Training runs on the coordinator.
CREATE FUNCTION @extschema@.cai_citus_setup() RETURNS SETOF regclass
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'the citus extension is not installed in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Run CREATE EXTENSION citus first.';
    END IF;
    IF NOT pg_catalog.citus_is_coordinator() THEN
        RAISE EXCEPTION 'cai_citus_setup() runs on the Citus coordinator'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    FOREACH t IN ARRAY ARRAY['@extschema@.cai_model_store', '@extschema@.cai_deployments',
                             '@extschema@.cai_vector_store']::regclass[] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = t);
        PERFORM pg_catalog.create_reference_table(t);
        -- the rows now live in the copies; the table's own heap keeps a stale one
        PERFORM pg_catalog.truncate_local_data_after_distributing_table(t);
        RETURN NEXT t;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.cai_citus_setup() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.cai_citus_setup() IS
    'on a Citus coordinator: make the model store, deployment history and vector store reference tables, so every node holds every model (run once, as the extension owner; returns the tables it distributed)';

-- Batched entity extraction of a whole query (cai_predict_query also accepts
-- taggers, answering with cai_predict's JSON array of entities).
CREATE FUNCTION @extschema@.cai_entities_query(model text, query text, batch_size integer DEFAULT 256)
RETURNS TABLE (key text, entity text, label text, start_pos integer, end_pos integer, score real)
    AS 'MODULE_PATHNAME', 'cai_entities_query' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.cai_entities_query(text, text, integer) IS
    'the entities of every row (key, input) of a query with the deployed version of a token classification model, tagged batch_size texts at a time (batched matrix products): one row per entity, as cai_entities gives them, with the row''s key (as text)';

-- Prediction counts and time per model version since the server started (or
-- cai_model_stats_reset()), kept in a table every process maps (no
-- shared_preload_libraries needed); each process adds its counts at the end
-- of each transaction.
CREATE FUNCTION @extschema@.cai_model_stats_rows()
RETURNS TABLE (name text, version integer, predictions bigint, total_ms double precision,
               last_used timestamptz, stats_reset timestamptz)
    AS 'MODULE_PATHNAME', 'cai_model_stats_rows' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE VIEW @extschema@.cai_model_stats AS
SELECT name, version,
       pg_catalog.sum(predictions)::bigint AS predictions,
       pg_catalog.round(pg_catalog.sum(total_ms)::numeric, 3) AS total_ms,
       pg_catalog.round((pg_catalog.sum(total_ms) * 1000 / NULLIF(pg_catalog.sum(predictions), 0))::numeric, 2) AS mean_us,
       pg_catalog.max(last_used) AS last_used,
       pg_catalog.max(stats_reset) AS stats_reset
  FROM @extschema@.cai_model_stats_rows()
 GROUP BY name, version;
COMMENT ON VIEW @extschema@.cai_model_stats IS
    'per model version of this database: rows scored by the inference functions (cai_predict, cai_predict_proba, cai_tag, cai_tag_batch, cai_entities, cai_predict_query, cai_entities_query), time spent in them (total and per row), last use, and when counting started (server start or cai_model_stats_reset())';
GRANT SELECT ON @extschema@.cai_model_stats TO PUBLIC;
CREATE FUNCTION @extschema@.cai_model_stats_reset() RETURNS void
    AS 'MODULE_PATHNAME', 'cai_model_stats_reset' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.cai_model_stats_reset() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.cai_model_stats_reset() IS
    'zero cai_model_stats for this database (superusers, or roles granted EXECUTE)';

-- Version-pinned inference: the same answers as cai_predict / cai_predict_proba
-- from one stored version, deployed or not.  IMMUTABLE (cai_predict(model,
-- input) is STABLE: it follows deployments), so that postgres_fdw ships the
-- call to the server holding the rows (it ships only immutable functions of a
-- listed extension), and so that index expressions and generated columns may
-- use it.  Honest because a stored version's bytes never change: no function
-- updates them, cai_import(model, data, version) refuses other bytes under an
-- existing number, and the answer is a pure function of the bytes and the
-- input (across CPUs the OpenBLAS models may differ in the last bits).  A
-- dropped version is an error (42704), never another answer.  What the user
-- must know: dropping a version and then storing new bytes under the same
-- number (drop the highest version, then train or import) changes what the
-- number means; rebuild indexes and generated columns that use it.
CREATE FUNCTION @extschema@.cai_predict(model text, version integer, input text) RETURNS text
    AS 'MODULE_PATHNAME', 'cai_predict_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_predict(text, integer, text) IS
    'predicted label of input by one stored version of model, deployed or not (NER models: entities as a JSON array). IMMUTABLE, because a version''s bytes never change: postgres_fdw ships it to the remote server (the extension in the server''s extensions option), and index expressions and generated columns may use it. A dropped version is an error (42704); a version number dropped and then reused for other bytes changes the answers: rebuild what uses it.';
CREATE FUNCTION @extschema@.cai_predict_proba(model text, version integer, input text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_predict_proba_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_predict_proba(text, integer, text) IS
    'class probabilities {"label": p, ...} of input by one stored version of a text classification model, deployed or not; IMMUTABLE for the reasons given on cai_predict(text, integer, text)';
-- A copy of a version that keeps its number (servers that answer pinned calls
-- must agree on what a number means).
CREATE FUNCTION @extschema@.cai_import(model text, data bytea, version integer) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_import' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_import(text, bytea, integer) IS
    'validate model bytes (as made by cai_export) and store them as that version number of model (owner only), e.g. to copy cai_export(model, version) to the servers of a postgres_fdw cluster; returns the version. The same bytes already stored under the number are left as they are; other bytes under it are refused (SQLSTATE 42710). Deployed only if the model had no deployed version.';

-- ---------------------------------------------------------------------------
-- Automatic tuning (cai_tune, cai_tune_async): random search with successive
-- halving over an architecture's options.  Each trial is a job of the
-- tuning's worker (a row of cai_job_store, so cai_jobs shows it, with its
-- role's visibility); tuning_id groups the trials of one search (the job id
-- of cai_tune_async, an id from the same sequence for cai_tune), trial
-- numbers them in schedule order, config is the configuration trained
-- (0 = the defaults), rung the halving step (0 = the fewest epochs).
-- ---------------------------------------------------------------------------
ALTER TABLE @extschema@.cai_job_store ADD COLUMN tuning_id bigint;
ALTER TABLE @extschema@.cai_job_store ADD COLUMN trial integer;
ALTER TABLE @extschema@.cai_job_store ADD COLUMN config integer;
ALTER TABLE @extschema@.cai_job_store ADD COLUMN rung integer;

CREATE FUNCTION @extschema@.cai_tune(
    model text,
    task text,
    source text,
    input_column text DEFAULT 'text',
    label_column text DEFAULT 'label',
    search jsonb DEFAULT '{}')
RETURNS TABLE (name text, version integer, metrics jsonb)
    AS 'MODULE_PATHNAME', 'cai_tune' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_tune(text, text, text, text, text, jsonb) IS
    'tune the training options of a model (sentiment, text_classification or ner) on a table, view or SELECT query read as cai_train reads it: random search with successive halving on epochs over the architecture''s default space (cai_options) or the ranges, choices and values of search (max_trials, max_seconds, seed, eta, ensemble, seeds); trials in cai_trials and cai_jobs; the best trial (or with ensemble N, the ensemble greedy selection makes of the N best, and with seeds S of the best configuration trained again with S other seeds) becomes a new version, with the whole search in its metrics, deployed under the deploy policy';

CREATE FUNCTION @extschema@.cai_tune_async(
    model text,
    task text,
    source text,
    input_column text DEFAULT 'text',
    label_column text DEFAULT 'label',
    search jsonb DEFAULT '{}')
RETURNS bigint
    AS 'MODULE_PATHNAME', 'cai_tune_async' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_tune_async(text, text, text, text, text, jsonb) IS
    'cai_tune as a job: returns its id at once (cai_jobs: progress = trials done / planned, validation_score = the best so far; cai_trials; cai_wait; cai_cancel stops the running trial and the search)';

CREATE VIEW @extschema@.cai_trials AS
SELECT t.tuning_id,
       t.trial,
       t.job_id,
       t.model,
       t.config,
       t.rung,
       t.options,
       (t.options ->> 'epochs')::integer AS epochs,
       j.epoch AS epochs_run,
       j.validation_score,
       EXTRACT(epoch FROM (coalesce(j.finished_at, pg_catalog.clock_timestamp()) - j.started_at))::float8 AS seconds,
       j.state,
       j.error,
       j.role
  FROM @extschema@.cai_job_store t
  JOIN @extschema@.cai_jobs j ON j.job_id = t.job_id
 WHERE t.tuning_id IS NOT NULL;
COMMENT ON VIEW @extschema@.cai_trials IS
    'the trials of cai_tune and cai_tune_async (visible like cai_jobs): search id, trial, its job, configuration, halving rung, options, epochs planned and run, validation score of its best epoch, seconds, state, error';
GRANT SELECT ON @extschema@.cai_trials TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Pretrained Transformer encoders (BERT, DistilBERT): a checkpoint's
-- config.json, vocab.txt and model.safetensors, validated tensor by tensor
-- against the config, stored as a version of a model of task "encoder" in
-- the model store (owner, versions, deploy, export, drop, replication and
-- Citus as for any model).  scripts/import-encoder.sh sends the three files
-- from a client.
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.cai_import_encoder(name text, config jsonb, vocab text, weights bytea,
                                               options jsonb DEFAULT '{}')
RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_import_encoder' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_import_encoder(text, jsonb, text, bytea, jsonb) IS
    'validate a BERT or DistilBERT checkpoint (config.json as jsonb, vocab.txt as text, model.safetensors as bytea; options lower_case (default true, false for a cased vocabulary) and max_chars_per_word) and store it as a new version of an encoder model; returns the version. Every tensor is checked against the config: a damaged file, a missing or misshapen tensor, or a vocabulary larger than vocab_size is refused with a specific SQLSTATE and nothing is stored. The first version is deployed.';

-- Sentence embeddings: from an encoder (or a model fine-tuned from one) with
-- a pooling, or from a vector set (the mean word vector): one function, so
-- that cai_embed(name, input) keeps meaning what it meant for vector sets.
CREATE FUNCTION @extschema@.cai_embed(name text, input text, pooling text DEFAULT 'mean') RETURNS real[]
    AS 'MODULE_PATHNAME', 'cai_embed' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cai_embed(text, text, text) IS
    'embedding of a text as real[] (usable with pgvector: ::vector): for an encoder, or the deployed version of a model fine-tuned from one, the last layer of "[CLS] input [SEP]" pooled by mean (every position, [CLS] and [SEP] included) or cls (the [CLS] vector, no pooler), truncated to the encoder''s positions; for a vector set, the mean of the word vectors of the text''s tokens (pooling mean only; NULL when no token has a vector). A name that is both an encoder model and a vector set means the model.';

-- Pretraining an encoder on the text of a table: a WordPiece vocabulary, then
-- a small BERT encoder trained with whole-word masked-language modelling, in
-- the training worker (progress in cai_jobs, cai_cancel, threads,
-- cai.training_memory), stored as a new version of an encoder model.
CREATE FUNCTION @extschema@.cai_pretrain(model text, source text, input_column text DEFAULT 'text',
                                         options jsonb DEFAULT '{}')
RETURNS TABLE (name text, version integer, metrics jsonb)
    AS 'MODULE_PATHNAME', 'cai_pretrain' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_pretrain(text, text, text, jsonb) IS
    'pretrain a BERT encoder from scratch on the texts of a table, view or SELECT query, read with the caller''s rights, in a background worker: learns a WordPiece vocabulary (vocab_size, lower_case), then trains the encoder (layers, hidden, heads, intermediate, max_length; default 4 x 256) with whole-word masked-language modelling (AdamW, warm-up and linear decay, dropout, epochs and/or max_seconds, seed, threads); stores it as a new version of an encoder model (usable by cai_embed and fine-tuning like an imported one; deployed when none is) with the loss curve and the held-out masked-token accuracy in its metrics';
CREATE FUNCTION @extschema@.cai_pretrain_async(model text, source text, input_column text DEFAULT 'text',
                                               options jsonb DEFAULT '{}')
RETURNS bigint
    AS 'MODULE_PATHNAME', 'cai_pretrain_async' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_pretrain_async(text, text, text, jsonb) IS
    'cai_pretrain as a job: returns its id at once (cai_jobs, cai_wait, cai_cancel)';
