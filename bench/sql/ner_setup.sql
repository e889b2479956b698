-- ner_setup.sql: tables for bench/ner.sh, which runs it with the psql
-- variable "copies" naming a file of three \copy commands that it writes
-- itself (psql does not expand variables in \copy), for each part:
--   ALTER TABLE ner_raw ALTER part SET DEFAULT 'train';
--   \copy ner_raw (line) FROM '.../train.conll' WITH (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02')
-- Each raw line is one "token<TAB>tag" line of the CoNLL file or an empty
-- line between sentences; the lines keep their file order through the
-- bigserial column n.
--
-- ner_train / ner_dev / ner_test(id, tokens text[], tags text[]): one row per
-- sentence, id = position in the file (1-based).  ner_test_text(id, body):
-- each test sentence as its tokens joined with single spaces (the raw-text
-- input of cai_entities).  ner_test_doc(body): one row, all of those
-- sentences in file order separated by newlines; ner_test_doc_sp(body): the
-- same separated by spaces.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cai_synergy;
DROP TABLE IF EXISTS ner_raw, ner_train, ner_dev, ner_test, ner_test_text, ner_test_doc, ner_test_doc_sp;
CREATE TABLE ner_raw (n bigserial, part text, line text);
CREATE TABLE ner_train (id int PRIMARY KEY, tokens text[] NOT NULL, tags text[] NOT NULL);
CREATE TABLE ner_dev (LIKE ner_train INCLUDING ALL);
CREATE TABLE ner_test (LIKE ner_train INCLUDING ALL);
\i :copies

CREATE TEMP TABLE ner_sent AS
SELECT part, s, array_agg(split_part(line, E'\t', 1) ORDER BY n) AS tokens,
       array_agg(split_part(line, E'\t', 2) ORDER BY n) AS tags
  FROM (SELECT n, part, line,
               count(*) FILTER (WHERE coalesce(line, '') = '') OVER (PARTITION BY part ORDER BY n) AS s
          FROM ner_raw) r
 WHERE coalesce(line, '') <> ''
 GROUP BY part, s;
INSERT INTO ner_train SELECT row_number() OVER (ORDER BY s), tokens, tags FROM ner_sent WHERE part = 'train';
INSERT INTO ner_dev SELECT row_number() OVER (ORDER BY s), tokens, tags FROM ner_sent WHERE part = 'dev';
INSERT INTO ner_test SELECT row_number() OVER (ORDER BY s), tokens, tags FROM ner_sent WHERE part = 'test';
CREATE TABLE ner_test_text AS SELECT id, array_to_string(tokens, ' ') AS body FROM ner_test;
CREATE TABLE ner_test_doc AS SELECT string_agg(body, E'\n' ORDER BY id) AS body FROM ner_test_text;
CREATE TABLE ner_test_doc_sp AS SELECT string_agg(body, ' ' ORDER BY id) AS body FROM ner_test_text;
DROP TABLE ner_raw;
VACUUM (FREEZE, ANALYZE) ner_train, ner_dev, ner_test, ner_test_text, ner_test_doc, ner_test_doc_sp;

SELECT 'RESULT rows_' || t || ' ' || n || E'\nRESULT tokens_' || t || ' ' || ntok
  FROM (SELECT 'train' AS t, count(*) AS n, sum(cardinality(tokens)) AS ntok FROM ner_train
        UNION ALL SELECT 'dev', count(*), sum(cardinality(tokens)) FROM ner_dev
        UNION ALL SELECT 'test', count(*), sum(cardinality(tokens)) FROM ner_test) c;
SELECT 'RESULT bad_rows ' || count(*)
  FROM (SELECT tokens, tags FROM ner_train UNION ALL SELECT tokens, tags FROM ner_dev
        UNION ALL SELECT tokens, tags FROM ner_test) a
 WHERE cardinality(tokens) <> cardinality(tags) OR '' = ANY (tags) OR '' = ANY (tokens);
SELECT 'RESULT test_doc_bytes ' || octet_length(body) FROM ner_test_doc;
