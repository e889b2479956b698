-- cai_import of damaged bytes: every case gives an ERROR with a specific
-- SQLSTATE and a message naming the problem, nothing is stored, and the
-- server is never restarted.  The crafted files come from
-- test/fuzz/make_bad_models.c (scripts/test.sh writes them to $CAI_BAD_MODELS).
\getenv bad_dir CAI_BAD_MODELS
SET client_min_messages = warning;
SELECT pg_postmaster_start_time() AS start_time \gset

CREATE FUNCTION try_import(data bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cai_import('bad', data);
  RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

CREATE TABLE cases AS
  SELECT split_part(line, E'\t', 1) AS name
    FROM regexp_split_to_table(pg_read_file(:'bad_dir' || '/cases.tsv'), E'\n') WITH ORDINALITY AS l(line, n)
   WHERE n > 1 AND line <> '';
SELECT name, try_import(pg_read_binary_file(:'bad_dir' || '/' || name || '.bin')) AS result
  FROM cases ORDER BY name;

-- corruptions of a real trained model
CREATE TABLE bm_train AS
  SELECT CASE WHEN g % 2 = 0 THEN 'good fine' ELSE 'bad awful' END AS text, g % 2 AS label
    FROM generate_series(1, 100) g;
SELECT version FROM cai_train('good', 'sentiment', 'bm_train', options => '{"epochs": 1, "buckets": 1000}');
SELECT cai_export('good') AS good \gset
SELECT octet_length(:'good'::bytea) AS good_len \gset
SELECT label, left(r, 6) || regexp_replace(substr(r, 7), '(0x[0-9a-f]+|[0-9]+)', 'N', 'g') AS result
  FROM (SELECT label, try_import(data) AS r FROM (VALUES
    ('empty', ''::bytea),
    ('random', decode(repeat(md5('x'), 64), 'hex')),
    ('truncated to 1 byte', substring(:'good'::bytea FROM 1 FOR 1)),
    ('truncated to the header', substring(:'good'::bytea FROM 1 FOR 80)),
    ('truncated to half', substring(:'good'::bytea FROM 1 FOR :good_len / 2)),
    ('truncated by one byte', substring(:'good'::bytea FROM 1 FOR :good_len - 1)),
    ('flipped byte in the data', set_byte(:'good'::bytea, :good_len - 100, get_byte(:'good'::bytea, :good_len - 100) # 1)),
    ('flipped byte in the checksum', set_byte(:'good'::bytea, :good_len - 1, get_byte(:'good'::bytea, :good_len - 1) # 128)),
    ('wrong magic', overlay(:'good'::bytea PLACING 'XXXX'::bytea FROM 1 FOR 4)),
    ('one extra byte', :'good'::bytea || '\x00'::bytea)
  ) AS c(label, data)) AS t;
SELECT cai_import('bad', NULL);

-- nothing was stored, the good model still works, and the server did not restart
SELECT count(*) AS bad_versions FROM cai_models WHERE name = 'bad';
SELECT cai_predict('good', 'good fine') IN ('0', '1') AS still_works;
SELECT pg_postmaster_start_time() = :'start_time' AS server_not_restarted;
SELECT cai_drop_model('good');
