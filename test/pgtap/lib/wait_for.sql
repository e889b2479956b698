-- pg_temp.wait_for(cond, seconds): wait until a condition (SQL returning
-- boolean) holds, each check seeing new commits; false after the timeout.
-- Included by the pgTAP files that follow jobs (\ir lib/wait_for.sql); it
-- lives as long as the session.
CREATE FUNCTION pg_temp.wait_for(cond text, seconds int DEFAULT 10) RETURNS boolean LANGUAGE plpgsql AS $f$
DECLARE
  ok boolean;
BEGIN
  FOR i IN 1 .. seconds * 10 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXECUTE cond INTO ok;
    IF ok THEN RETURN true; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN false;
END $f$;
