-- conll_sentences.sql (psql \i, used by test/faults/fdw.sh and bench/fdw.sh):
-- the sentences of CoNLL files already copied line by line into
--   TEMP TABLE raw (n bigserial, line text, f text)
-- (token in the first tab-separated column, tag in the second, a blank line
-- between sentences; f names the file the line came from), as
--   TEMP TABLE sent (f text, s bigint, tokens text[], tags text[])
-- with s the sentence's number within its file, from 0.
CREATE TEMP TABLE sent AS
  SELECT f, s, array_agg(split_part(line, E'\t', 1) ORDER BY n) AS tokens, array_agg(split_part(line, E'\t', 2) ORDER BY n) AS tags
    FROM (SELECT n, f, line, count(*) FILTER (WHERE coalesce(line, '') = '') OVER (PARTITION BY f ORDER BY n) AS s FROM raw) r
   WHERE coalesce(line, '') <> '' GROUP BY f, s;
