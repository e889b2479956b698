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

-- labels_changed: whether a version's labels (NER: entity types) differ from
-- the deployed version's (NULL when no version is deployed).
CREATE OR REPLACE VIEW @extschema@.cai_models AS
SELECT s.name,
       s.version,
       s.task,
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
COMMENT ON VIEW @extschema@.cai_models IS
    'one row per model version: name, version, task, size in bytes, labels, validation metrics, deployed flag, creation time, owner, and whether its labels (NER: entity types) differ from the deployed version''s';

COMMENT ON FUNCTION @extschema@.cai_import(text, bytea) IS
    'validate model bytes (as made by cai_export) and store them as a new version of model; returns the version. The first version of a new model is deployed; a version of another task than the model''s is refused (SQLSTATE 42809).';
COMMENT ON FUNCTION @extschema@.cai_deploy(text, integer) IS
    'make a version the one cai_predict uses (NULL = latest); returns the deployed version. A NOTICE says how the labels change; a version of another task is refused.';
COMMENT ON FUNCTION @extschema@.cai_model_info(text, integer) IS
    'metadata of a model version (NULL = deployed): task, architecture, labels, options, provenance, labels_changed (against the deployed version)';
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
