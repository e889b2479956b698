-- Model store: train a tiny model, list, export/import round trip, deploy,
-- rollback, drop, ownership between roles.
SET client_min_messages = warning;
CREATE TABLE cat_train AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good great fine movie ' || (g % 17) ELSE 'bad awful poor movie ' || (g % 13) END AS text,
         CASE WHEN g % 2 = 0 THEN 'pos' ELSE 'neg' END AS label
    FROM generate_series(1, 400) g;
SELECT name, version, (metrics->>'accuracy')::float8 > 0.9 AS accurate
  FROM cai_train('cat', 'sentiment', 'cat_train', options => '{"architecture": "fast", "epochs": 3}');
SELECT name, version, task, size > 0 AS has_bytes, labels, deployed, owner::text
  FROM cai_model_details ORDER BY name, version;

-- export / import round trip is bit for bit
SELECT cai_import('cat', cai_export('cat')) AS imported_version;
SELECT cai_export('cat', 1) = cai_export('cat', 2) AS same_bytes;
SELECT version, deployed FROM cai_models WHERE name = 'cat' ORDER BY version;
SELECT cai_import('cat copy', cai_export('cat', 1)) AS new_model_version;
SELECT cai_predict('cat copy', 'a great movie') = cai_predict('cat', 'a great movie') AS same_prediction;

-- deploy and rollback
SELECT cai_deploy('cat') AS deployed_latest;
SELECT version FROM cai_models WHERE name = 'cat' AND deployed;
SELECT cai_rollback('cat') AS rolled_back_to;
SELECT cai_rollback('cat');
SELECT cai_deploy('cat', 7);
SELECT cai_deploy('no such model');
SELECT cai_deploy('cat', 0);
SELECT cai_deploy(NULL);
SELECT cai_deploy('');

-- deploy policies of training
SELECT version FROM cai_train('cat', 'sentiment', 'cat_train', options => '{"architecture": "fast", "epochs": 1, "deploy": "never"}');
SELECT version, deployed FROM cai_models WHERE name = 'cat' ORDER BY version;
SELECT version FROM cai_train('cat', 'sentiment', 'cat_train', options => '{"architecture": "fast", "epochs": 1, "deploy": "always"}');
SELECT version, deployed FROM cai_models WHERE name = 'cat' ORDER BY version;
SELECT cai_drop_model('cat', 3) + cai_drop_model('cat', 4) AS dropped_policy_versions;
SELECT cai_deploy('cat', 1);

-- model info
SELECT i->>'task' AS task, i->>'architecture' AS architecture, i->'labels' AS labels, (i->>'version')::int AS version
  FROM cai_model_info('cat') AS i;

-- drop
SELECT cai_drop_model('cat', 2) AS dropped;
SELECT cai_drop_model('cat', 2);
SELECT version, deployed FROM cai_models WHERE name = 'cat' ORDER BY version;
SELECT cai_drop_model('cat copy') AS dropped;
SELECT cai_export('cat copy');

-- ownership: another role can use but not manage the model
CREATE ROLE cai_regress_alice;
CREATE ROLE cai_regress_bob;
GRANT SELECT ON cat_train TO cai_regress_alice, cai_regress_bob;
SELECT cai_export('cat', 1) AS model_bytes \gset
SET ROLE cai_regress_alice;
SELECT cai_export('cat', 1) IS NOT NULL AS alice_exports_cat;
SELECT cai_import('alice model', :'model_bytes') AS alice_imports;
SELECT cai_import('alice model', :'model_bytes') AS alice_adds_version;
-- an imported version does not replace the deployed one
SELECT version, deployed FROM cai_models WHERE name = 'alice model' ORDER BY version;
RESET ROLE;
SELECT cai_import('alice model', :'model_bytes') AS superuser_may_add;
SELECT owner::text, count(*) FROM cai_models WHERE name = 'alice model' GROUP BY 1;
SET ROLE cai_regress_bob;
SELECT cai_predict('alice model', 'great') AS bob_can_predict;
SELECT count(*) > 0 AS bob_can_list FROM cai_models WHERE name = 'alice model';
SELECT cai_deploy('alice model', 2);
SELECT cai_deploy('alice model');
SELECT cai_rollback('alice model');
SELECT cai_drop_model('alice model');
SELECT cai_export('alice model');
SELECT cai_import('alice model', :'model_bytes');
SELECT * FROM cai_model_store;
INSERT INTO cai_model_store (name, version, task, model, metadata, owner)
  VALUES ('planted', 1, 'text_classification', '\x00', '{}', 'cai_regress_bob');
UPDATE cai_model_store SET model = '\x00';
RESET ROLE;
SET ROLE cai_regress_alice;
SELECT cai_deploy('alice model', 2) AS alice_deploys;
SELECT length(cai_export('alice model')) > 0 AS alice_exports;
SELECT cai_drop_model('alice model') AS alice_drops;
RESET ROLE;
SELECT name FROM cai_models WHERE name = 'alice model';
REVOKE ALL ON cat_train FROM cai_regress_alice, cai_regress_bob;
DROP ROLE cai_regress_alice;
DROP ROLE cai_regress_bob;
