#!/usr/bin/env bash
# cron.sh: scheduled retraining with Debian's postgresql-15-cron (pg_cron),
# the README's recipe run at pg_cron's shortest interval (one minute).
#
# A first version is trained from reviews with validation on a fixed holdout
# table; pg_cron then runs
#     SELECT cai_train_async('sentiment', 'sentiment', 'reviews',
#                            options => '{"validation_source": "holdout", ...}')
# every minute.  The job trains a new version on the rows as they are then
# (more rows were added in the meantime), scores it on the same holdout, and
# the default deploy policy deploys it only if that score beats the deployed
# version's.  Checked: pg_cron ran the command (cron.job_run_details), the job
# succeeded (cai_jobs), the new version exists with its holdout score, it is
# deployed exactly when its score is higher, the deployment history agrees,
# and unscheduling removes the job.
NAME=cron
source "$(dirname "$0")/lib.sh"

[ -f "$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/pg_cron.so" ] \
	|| [ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || bail "pg_cron is not installed (apt-get install postgresql-15-cron)"
cluster_start "shared_preload_libraries = 'pg_cron'" "cron.database_name = 'postgres'" \
	"cron.use_background_workers = on" "max_worker_processes = 24"
q -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION cai_synergy" >/dev/null || bail "create pg_cron and cai_synergy"
make_reviews postgres reviews 300 && make_reviews postgres holdout 200 || bail "create the training and holdout tables"
q -c "SELECT 1 FROM cai_train('sentiment', 'sentiment', 'reviews',
        options => '{\"architecture\": \"fast\", \"validation_source\": \"holdout\", \"epochs\": 1, \"dimensions\": 4, \"seed\": 1}')" >/dev/null \
	|| bail "train version 1"
is "$(q -c "SELECT version FROM cai_models WHERE name = 'sentiment' AND deployed")" 1 "version 1 is deployed"
# the table grows between runs, as a warehouse table would
q -c "INSERT INTO reviews SELECT text || ' again', label FROM reviews" >/dev/null

# the recipe (README): one pg_cron job
q >/dev/null <<'SQL' || bail "schedule the retraining"
SELECT cron.schedule('retrain sentiment', '* * * * *',
  $$SELECT cai_train_async('sentiment', 'sentiment', 'reviews',
                           options => '{"architecture": "fast", "validation_source": "holdout", "seed": 2}')$$);
SQL
ok $? "cron.schedule of cai_train_async every minute"
wait_for 150 "SELECT EXISTS (SELECT 1 FROM cai_jobs WHERE model = 'sentiment' AND state IN ('succeeded', 'failed', 'cancelled'))"
ok $? "pg_cron started a retraining job within 150 s"
q -c "SELECT cron.unschedule('retrain sentiment')" >/dev/null
ok $? "cron.unschedule"
wait_for 120 "SELECT NOT EXISTS (SELECT 1 FROM cai_jobs WHERE model = 'sentiment' AND state IN ('queued', 'running'))"
is "$(q -c "SELECT status FROM cron.job_run_details ORDER BY runid LIMIT 1")" succeeded "pg_cron recorded the run as succeeded"
is "$(q -c "SELECT state FROM cai_jobs WHERE model = 'sentiment' ORDER BY job_id LIMIT 1")" succeeded "the job succeeded"
is "$(q -c "SELECT version FROM cai_jobs WHERE model = 'sentiment' ORDER BY job_id LIMIT 1")" 2 "it stored version 2"
is "$(q -c "SELECT (metrics->>'train_rows_read')::int > 300 FROM cai_model_details WHERE name = 'sentiment' AND version = 2")" t \
	"version 2 was trained on the rows added since version 1"
s1=$(q -c "SELECT metrics->>'score' FROM cai_model_details WHERE name = 'sentiment' AND version = 1")
s2=$(q -c "SELECT metrics->>'score' FROM cai_model_details WHERE name = 'sentiment' AND version = 2")
better=$(q -c "SELECT $s2::float8 > $s1::float8")
is "$(q -c "SELECT deployed FROM cai_models WHERE name = 'sentiment' AND version = 2")" "$better" \
	"version 2 is deployed exactly when its holdout score is higher ($s2 against $s1)"
is "$(q -c "SELECT string_agg(version::text, ',' ORDER BY id) FROM cai_deployments WHERE name = 'sentiment'")" \
	"$([ "$better" = t ] && echo 1,2 || echo 1)" "the deployment history agrees"
is "$(q -c "SELECT count(*) FROM cron.job")" 0 "no job is scheduled any more"
finish
