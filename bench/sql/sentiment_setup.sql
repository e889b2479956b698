-- sentiment_setup.sql: tables for bench/sentiment.sh, which runs it with the
-- psql variable "copies" naming a file of four \copy commands (train, dev,
-- test, big) that it writes itself: psql does not expand variables in \copy.
--
-- train/dev/test(label, sentence): the SST-2 splits as shipped (header
-- "label<TAB>sentence"; QUOTE E'\x01' so that quote characters in the text are
-- data).  big(sentence): the inference table, loaded from the very file that
-- `fasttext predict` reads, so both systems see the same sentences in the same
-- order.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS cai_synergy;
DROP TABLE IF EXISTS train, dev, test, big;
CREATE TABLE train (label text, sentence text);
CREATE TABLE dev (label text, sentence text);
CREATE TABLE test (label text, sentence text);
CREATE TABLE big (sentence text);
\i :copies
VACUUM (FREEZE, ANALYZE) train, dev, test, big;
SELECT 'RESULT rows_train ' || count(*) FROM train;
SELECT 'RESULT rows_dev ' || count(*) FROM dev;
SELECT 'RESULT rows_test ' || count(*) FROM test;
SELECT 'RESULT rows_big ' || count(*) || E'\nRESULT rows_big_nonnull ' || count(sentence) FROM big;
SELECT 'RESULT big_mb ' || round(pg_table_size('big') / 1048576.0, 1);
