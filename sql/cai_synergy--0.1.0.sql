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
    'train a model version from a table, view or SELECT query (read with the caller''s rights) in a background worker; returns the new version and its validation metrics';

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
