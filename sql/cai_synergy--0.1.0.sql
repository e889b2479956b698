-- cai_synergy 0.1.0: NLP model training and inference in SQL.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION cai_synergy" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Model catalog
--
-- Every model version is one row.  The table is written only by the
-- extension's C functions, which check model ownership and then act with the
-- table owner's rights; ordinary roles cannot write it directly (no INSERT or
-- UPDATE grant), so nobody can plant an unvalidated bytea.  Reads go through
-- the cai_models view and the functions below.
-- ---------------------------------------------------------------------------
CREATE TABLE @extschema@.cai_model_store (
    name        text        NOT NULL CHECK (name <> '' AND octet_length(name) <= 200),
    version     integer     NOT NULL CHECK (version > 0),
    task        text        NOT NULL,
    model       bytea       NOT NULL,
    metadata    jsonb       NOT NULL,
    metrics     jsonb,
    owner       regrole     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    deployed    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX cai_model_store_deployed ON @extschema@.cai_model_store (name) WHERE deployed;
COMMENT ON TABLE @extschema@.cai_model_store IS
    'cai_synergy model versions (written only through cai_* functions)';

-- Deployment history, for cai_rollback: a stack per model.
CREATE TABLE @extschema@.cai_deployments (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    version     integer     NOT NULL,
    deployed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    rolled_back boolean     NOT NULL DEFAULT false
);
CREATE INDEX cai_deployments_name ON @extschema@.cai_deployments (name, id);

-- pg_dump / pg_restore keep models and history.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cai_model_store', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cai_deployments', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.cai_deployments_id_seq', '');

REVOKE ALL ON @extschema@.cai_model_store FROM PUBLIC;
REVOKE ALL ON @extschema@.cai_deployments FROM PUBLIC;

CREATE VIEW @extschema@.cai_models AS
SELECT s.name,
       s.version,
       s.task,
       pg_catalog.octet_length(s.model) AS size,
       s.metadata -> 'labels' AS labels,
       s.metrics,
       s.deployed,
       s.created_at,
       s.owner
  FROM @extschema@.cai_model_store s;
COMMENT ON VIEW @extschema@.cai_models IS
    'one row per model version: name, version, task, size in bytes, labels, validation metrics, deployed flag, creation time, owner';
GRANT SELECT ON @extschema@.cai_models TO PUBLIC;

-- ---------------------------------------------------------------------------
-- Model store functions
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.cai_version() RETURNS text
    AS 'MODULE_PATHNAME', 'cai_version' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cai_version() IS 'version of the loaded cai_synergy library';

CREATE FUNCTION @extschema@.cai_import(model text, data bytea) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_import' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_import(text, bytea) IS
    'validate model bytes (as made by cai_export) and store them as a new version of model; returns the version. The first version of a new model is deployed.';

CREATE FUNCTION @extschema@.cai_export(model text, version integer DEFAULT NULL) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cai_export' LANGUAGE C STABLE;
COMMENT ON FUNCTION @extschema@.cai_export(text, integer) IS
    'the stored bytes of a model version (NULL version = the deployed one); owner or member of the owner role only';

CREATE FUNCTION @extschema@.cai_deploy(model text, version integer DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_deploy' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_deploy(text, integer) IS
    'make a version the one cai_predict uses (NULL = latest); returns the deployed version';

CREATE FUNCTION @extschema@.cai_rollback(model text) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_rollback' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_rollback(text) IS
    'redeploy the version that was deployed before the current one; returns it';

CREATE FUNCTION @extschema@.cai_drop_model(model text, version integer DEFAULT NULL) RETURNS integer
    AS 'MODULE_PATHNAME', 'cai_drop_model' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_drop_model(text, integer) IS
    'drop one version (or all versions when version is NULL); returns the number of versions dropped';

CREATE FUNCTION @extschema@.cai_model_info(model text, version integer DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_model_info' LANGUAGE C STABLE;
COMMENT ON FUNCTION @extschema@.cai_model_info(text, integer) IS
    'metadata of a model version (NULL = deployed): task, architecture, labels, options, provenance';

-- ---------------------------------------------------------------------------
-- Training
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.cai_train(
    model text,
    task text,
    source text,
    input_column text DEFAULT 'text',
    label_column text DEFAULT 'label',
    options jsonb DEFAULT '{}')
RETURNS TABLE (name text, version integer, metrics jsonb)
    AS 'MODULE_PATHNAME', 'cai_train' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_train(text, text, text, text, text, jsonb) IS
    'train a model version (task sentiment, text_classification or ner) from a table, view or SELECT query, read with the caller''s rights, in a background worker; returns the new version and its validation metrics';

CREATE FUNCTION @extschema@.cai_options(task text DEFAULT 'sentiment')
RETURNS TABLE (name text, type text, default_value text, min double precision, max double precision,
               choices text, description text)
    AS 'MODULE_PATHNAME', 'cai_list_options' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.cai_options(text) IS 'the training options of a task: name, type, default, bounds, meaning';

-- ---------------------------------------------------------------------------
-- Inference and evaluation (models are cached per backend; the deployed
-- version is checked once per statement)
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.cai_predict(model text, input text) RETURNS text
    AS 'MODULE_PATHNAME', 'cai_predict' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_predict(text, text) IS
    'predicted label of input by the deployed version of model (NER models: entities as a JSON array)';

CREATE FUNCTION @extschema@.cai_predict(input text) RETURNS text
    AS 'MODULE_PATHNAME', 'cai_predict_default' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_predict(text) IS
    'cai_predict with the model named by cai.default_model, or the only deployed model';

CREATE FUNCTION @extschema@.cai_predict_proba(model text, input text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_predict_proba' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_predict_proba(text, text) IS
    'class probabilities {"label": p, ...} (summing to 1) of a text classification model';

CREATE FUNCTION @extschema@.cai_evaluate(
    model text,
    source text,
    input_column text DEFAULT 'text',
    label_column text DEFAULT 'label')
RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_evaluate' LANGUAGE C STABLE;
COMMENT ON FUNCTION @extschema@.cai_evaluate(text, text, text, text) IS
    'evaluate the deployed version on a labelled table or query: accuracy, per-class precision/recall/F1/support, macro and weighted averages, confusion matrix';

-- ---------------------------------------------------------------------------
-- Named-entity recognition
-- ---------------------------------------------------------------------------
CREATE FUNCTION @extschema@.cai_tag(model text, tokens text[]) RETURNS text[]
    AS 'MODULE_PATHNAME', 'cai_tag' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000;
COMMENT ON FUNCTION @extschema@.cai_tag(text, text[]) IS
    'one IOB2 tag per input token, from the deployed version of an NER model';

CREATE FUNCTION @extschema@.cai_tag_batch(model text, sentences jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_tag_batch' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION @extschema@.cai_tag_batch(text, jsonb) IS
    'IOB2 tags for many sentences in one call (a JSON array of arrays of tokens), tagged in batches of matrix products; aggregate rows with jsonb_agg(to_jsonb(tokens))';

CREATE FUNCTION @extschema@.cai_entities(model text, input text)
RETURNS TABLE (entity text, label text, start_pos integer, end_pos integer, score real)
    AS 'MODULE_PATHNAME', 'cai_entities' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000 ROWS 3;
COMMENT ON FUNCTION @extschema@.cai_entities(text, text) IS
    'entities in raw text, one row each: text, type, 1-based start and inclusive end character positions (substr(input, start_pos, end_pos - start_pos + 1) = entity), confidence';

CREATE FUNCTION @extschema@.cai_conlleval_transfn(internal, text[], text[]) RETURNS internal
    AS 'MODULE_PATHNAME', 'cai_conlleval_transfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION @extschema@.cai_conlleval_finalfn(internal) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cai_conlleval_finalfn' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE AGGREGATE @extschema@.cai_conlleval(gold text[], predicted text[]) (
    SFUNC = @extschema@.cai_conlleval_transfn,
    STYPE = internal,
    FINALFUNC = @extschema@.cai_conlleval_finalfn
);
COMMENT ON AGGREGATE @extschema@.cai_conlleval(text[], text[]) IS
    'entity-level precision, recall, F1 (micro and per type) and token accuracy of predicted tag sequences against gold ones (one row per sentence, any of IOB1/IOB2/BIOES), counted as conlleval';

-- ---------------------------------------------------------------------------
-- Asynchronous training jobs
--
-- Each job's worker writes its own row (queued, running with progress, then
-- succeeded, failed or cancelled).  Users read the cai_jobs view: a role sees
-- its own jobs; superusers and members of pg_signal_backend see all.  A job
-- whose worker vanished (killed, server restarted) shows as failed.
-- ---------------------------------------------------------------------------
CREATE TABLE @extschema@.cai_job_store (
    job_id           bigserial   PRIMARY KEY,
    model            text        NOT NULL,
    task             text        NOT NULL,
    role             regrole     NOT NULL,
    state            text        NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress         float8      NOT NULL DEFAULT 0,
    epoch            integer,
    epochs           integer,
    loss             float8,
    validation_score float8,
    rows_per_sec     float8,
    pid              integer,
    source           text,
    options          jsonb,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    version          integer,
    error            text
);
REVOKE ALL ON @extschema@.cai_job_store FROM PUBLIC;

CREATE VIEW @extschema@.cai_jobs AS
SELECT j.job_id,
       j.model,
       j.task,
       j.role,
       CASE WHEN alive THEN j.state
            WHEN j.state IN ('queued', 'running') THEN 'failed'
            ELSE j.state END AS state,
       j.progress,
       j.epoch,
       j.epochs,
       j.loss,
       j.validation_score,
       j.rows_per_sec,
       CASE WHEN alive AND j.state = 'running' AND j.progress > 0 AND j.progress < 1
            THEN (pg_catalog.now() - j.started_at) * ((1 - j.progress) / j.progress) END AS estimated_time_left,
       j.created_at,
       j.started_at,
       j.finished_at,
       j.version,
       j.pid,
       CASE WHEN NOT alive AND j.state IN ('queued', 'running')
            THEN 'training worker exited unexpectedly' ELSE j.error END AS error
  FROM @extschema@.cai_job_store j,
       LATERAL (SELECT j.state NOT IN ('queued', 'running') OR EXISTS (
                  SELECT 1 FROM pg_catalog.pg_stat_activity a
                   WHERE a.pid = j.pid AND a.backend_type = 'cai_synergy training')) AS l(alive)
 WHERE pg_catalog.pg_has_role(j.role::oid, 'MEMBER')
    OR pg_catalog.pg_has_role('pg_signal_backend', 'MEMBER');
COMMENT ON VIEW @extschema@.cai_jobs IS
    'training jobs started by cai_train_async: state, progress, epoch, loss, validation score, rows/s, estimated time left, version produced, error';
GRANT SELECT ON @extschema@.cai_jobs TO PUBLIC;

CREATE FUNCTION @extschema@.cai_train_async(
    model text,
    task text,
    source text,
    input_column text DEFAULT 'text',
    label_column text DEFAULT 'label',
    options jsonb DEFAULT '{}')
RETURNS bigint
    AS 'MODULE_PATHNAME', 'cai_train_async' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION @extschema@.cai_train_async(text, text, text, text, text, jsonb) IS
    'start training in a background job and return its id at once; follow it in cai_jobs, wait with cai_wait, stop with cai_cancel';

CREATE FUNCTION @extschema@.cai_cancel(job_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cai_cancel' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION @extschema@.cai_cancel(bigint) IS
    'cancel a queued or running training job (own jobs; all for members of pg_signal_backend); false if it had already finished';

CREATE FUNCTION @extschema@.cai_wait(job_id bigint) RETURNS @extschema@.cai_jobs
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    j @extschema@.cai_jobs;
    waited int := 0;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'cai_wait needs READ COMMITTED isolation'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'A snapshot taken once would never see the job finish.';
    END IF;
    LOOP
        -- pg_stat_activity (the liveness of the worker) is cached per transaction otherwise
        PERFORM pg_stat_clear_snapshot();
        SELECT * INTO j FROM @extschema@.cai_jobs WHERE cai_jobs.job_id = cai_wait.job_id;
        IF NOT FOUND THEN
            -- the worker records its job right after it starts
            waited := waited + 1;
            IF waited > 50 THEN
                RAISE EXCEPTION 'training job % does not exist', job_id
                    USING ERRCODE = 'undefined_object',
                          HINT = 'A role sees only its own jobs, unless it is a superuser or a member of pg_signal_backend.';
            END IF;
        ELSIF j.state IN ('succeeded', 'failed', 'cancelled') THEN
            RETURN j;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.cai_wait(bigint) IS
    'wait (interruptibly) until a training job ends; returns its final cai_jobs row';
