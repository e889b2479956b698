-- The extension is trusted: a database owner without superuser installs and
-- uses it, and still cannot write the model table directly.
SET client_min_messages = warning;
SELECT current_user AS superuser_name \gset
CREATE ROLE cai_regress_dbo LOGIN;
CREATE DATABASE cai_regress_trusted OWNER cai_regress_dbo;
\c cai_regress_trusted cai_regress_dbo
SET client_min_messages = warning;
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;
CREATE EXTENSION cai_synergy;
CREATE TABLE t AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine' ELSE 'bad awful poor' END AS text, g % 2 AS label
    FROM generate_series(1, 200) g;
SELECT name, version FROM cai_train('m', 'sentiment', 't', options => '{"epochs": 3}');
SELECT cai_predict('m', 'good great') AS predicted;
SELECT owner::text FROM cai_models;
SELECT relowner::regrole::text <> current_user AS store_not_owned_by_installer
  FROM pg_class WHERE relname = 'cai_model_store';
INSERT INTO cai_model_store (name, version, task, model, metadata, owner)
  VALUES ('planted', 1, 'text_classification', '\x00', '{}', current_user::regrole);
UPDATE cai_model_store SET model = '\x00';
SELECT cai_import('m', '\x00');
SELECT cai_drop_model('m');
DROP EXTENSION cai_synergy;
\c contrib_regression :superuser_name
DROP DATABASE cai_regress_trusted;
DROP ROLE cai_regress_dbo;
