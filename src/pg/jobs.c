/*
 * jobs.c: state of asynchronous training jobs (cai_train_async).
 *
 * A job is a row of @extschema@.cai_job_store, written by its worker in
 * short transactions of its own (queued, running with progress, then
 * succeeded, failed or cancelled), as the table owner.  Users read jobs
 * through the cai_jobs view, which shows each role its own jobs (all jobs to
 * superusers and members of pg_signal_backend) and reports a job whose
 * worker has vanished (killed, server restarted) as failed.
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "cai_pg.h"

/* The lock that serializes the "is there a free slot?" check ('CAIS', 0). */
#define CAI_JOB_LOCK_SQL "SELECT pg_catalog.pg_advisory_xact_lock(1128351059, 0)"

/* Workers run these outside any query: give SPI a snapshot when none is active. */
static bool
CaiPushSnapshot(void)
{
	if (ActiveSnapshotSet())
		return false;
	PushActiveSnapshot(GetTransactionSnapshot());
	return true;
}

static void
CaiPopSnapshot(bool pushed)
{
	if (pushed)
		PopActiveSnapshot();
}

int64
CaiNextJobId(void)
{
	char	   *sql;
	bool		isnull;
	int64		id;

	CaiCatalogConnect();
	sql = psprintf("SELECT pg_catalog.nextval('%s')", CaiCatalogQualify("cai_job_store_job_id_seq"));
	CaiCatalogExecute(sql, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	CaiCatalogDisconnect();
	return id;
}

/* Training workers alive now (synchronous and asynchronous). */
int
CaiRunningTrainingWorkers(void)
{
	int			n;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT count(*)::int4 FROM pg_catalog.pg_stat_activity "
					"WHERE backend_type = 'cai_synergy training'", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not count training workers");
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return n;
}

/* Inside a transaction: record a new job as queued, and trim old history. */
void
CaiJobInsert(int64 job_id, const char *model, const char *task, Oid role,
			 const char *source, const char *options_json)
{
	Oid			types[7] = {INT8OID, TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[7];
	char	   *store;

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(model);
	values[2] = CStringGetTextDatum(task);
	values[3] = ObjectIdGetDatum(role);
	values[4] = CStringGetTextDatum(source);
	values[5] = CStringGetTextDatum(options_json);
	values[6] = Int32GetDatum(MyProcPid);
	bool		pushed = CaiPushSnapshot();

	CaiCatalogConnect();
	store = CaiCatalogQualify("cai_job_store");
	CaiCatalogExecute(psprintf("INSERT INTO %s (job_id, model, task, role, source, options, pid, state) "
							   "VALUES ($1, $2, $3, $4::regrole, $5, $6::jsonb, $7, 'queued')", store),
					  7, types, values, NULL, SPI_OK_INSERT);
	CaiCatalogExecute(psprintf("DELETE FROM %s WHERE finished_at IS NOT NULL AND job_id <= "
							   "(SELECT job_id FROM %s WHERE finished_at IS NOT NULL "
							   "ORDER BY job_id DESC OFFSET %d LIMIT 1)", store, store, CAI_JOB_HISTORY),
					  0, NULL, NULL, NULL, SPI_OK_DELETE);
	CaiCatalogDisconnect();
	CaiPopSnapshot(pushed);
}

/*
 * Wait (outside a transaction) until fewer than max_jobs jobs are running,
 * then mark this one running.  Interruptible: cai_cancel reaches us here.
 */
void
CaiJobWaitForSlot(int64 job_id, int max_jobs)
{
	for (;;)
	{
		bool		got = false;
		bool		isnull;
		Oid			types[2] = {INT8OID, INT4OID};
		Datum		values[2] = {Int64GetDatum(job_id), Int32GetDatum(max_jobs)};
		char	   *store;

		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		CaiCatalogConnect();
		store = CaiCatalogQualify("cai_job_store");
		CaiCatalogExecute(CAI_JOB_LOCK_SQL, 0, NULL, NULL, NULL, SPI_OK_SELECT);
		/* one worker per slot: a tuning job and its running trial share their worker */
		CaiCatalogExecute(psprintf("SELECT count(DISTINCT j.pid) < $2 FROM %s j WHERE j.state = 'running' "
								   "AND j.pid <> pg_catalog.pg_backend_pid() "
								   "AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a "
								   "WHERE a.pid = j.pid AND a.backend_type = 'cai_synergy training')", store),
						  2, types, values, NULL, SPI_OK_SELECT);
		got = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (got)
			CaiCatalogExecute(psprintf("UPDATE %s SET state = 'running', started_at = pg_catalog.now() "
									   "WHERE job_id = $1", store),
							  1, types, values, NULL, SPI_OK_UPDATE);
		CaiCatalogDisconnect();
		PopActiveSnapshot();
		CommitTransactionCommand();
		if (got)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 500, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Outside a transaction: record progress, and the training curve so far
 * (history_json, a JSON array) when it is not NULL.
 */
void
CaiJobProgress(int64 job_id, int epoch, int epochs, double fraction,
			   double loss, double val_score, double rows_per_sec, const char *history_json)
{
	Oid			types[8] = {INT8OID, INT4OID, INT4OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		with_history;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(epoch);
	values[2] = Int32GetDatum(epochs);
	values[3] = Float8GetDatum(fraction);
	values[4] = Float8GetDatum(loss);
	values[5] = Float8GetDatum(val_score);
	values[6] = Float8GetDatum(rows_per_sec);
	values[7] = history_json ? CStringGetTextDatum(history_json) : (Datum) 0;
	if (epoch == 0)
		nulls[4] = nulls[5] = nulls[6] = 'n';
	if (isnan(val_score))		/* an epoch not scored (no validation rows, not the last) */
		nulls[5] = 'n';
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	CaiCatalogConnect();
	with_history = history_json != NULL && CaiCatalogHasHistory();
	CaiCatalogExecute(psprintf("UPDATE %s SET epoch = $2, epochs = $3, progress = $4, loss = $5, "
							   "validation_score = $6, rows_per_sec = $7%s WHERE job_id = $1",
							   CaiCatalogQualify("cai_job_store"), with_history ? ", history = $8::jsonb" : ""),
					  with_history ? 8 : 7, types, values, nulls, SPI_OK_UPDATE);
	CaiCatalogDisconnect();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Outside a transaction: record a trial of a search (tuning_id) as a running
 * job of this worker, which holds the training slot already; returns its id.
 */
int64
CaiTrialInsert(int64 tuning_id, int trial, int config, int rung, const char *model, const char *task,
			   Oid role, const char *source, const char *options_json)
{
	Oid			types[10] = {INT8OID, INT8OID, INT4OID, INT4OID, INT4OID, TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID};
	Datum		values[10];
	int64		job_id;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	job_id = CaiNextJobId();
	CaiJobInsert(job_id, model, task, role, source, options_json);
	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(tuning_id);
	values[2] = Int32GetDatum(trial);
	values[3] = Int32GetDatum(config);
	values[4] = Int32GetDatum(rung);
	CaiCatalogConnect();
	CaiCatalogExecute(psprintf("UPDATE %s SET tuning_id = $2, trial = $3, config = $4, rung = $5, "
							   "state = 'running', started_at = pg_catalog.clock_timestamp() WHERE job_id = $1",
							   CaiCatalogQualify("cai_job_store")),
					  5, types, values, NULL, SPI_OK_UPDATE);
	CaiCatalogDisconnect();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return job_id;
}

/*
 * Outside a transaction: a trial's end (succeeded with the validation score
 * of its best epoch, failed or cancelled with the error), and the progress
 * of its tuning job (an asynchronous cai_tune_async; 0: none): trials done
 * of those planned, the best score so far.
 */
void
CaiTrialFinish(int64 job_id, const char *state, double score, const char *error,
			   int64 tuning_job, int done, int planned, double best)
{
	Oid			types[4] = {INT8OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	CaiJobFinish(job_id, state, 0, error);
	CaiCatalogConnect();
	if (!isnan(score))
	{
		values[0] = Int64GetDatum(job_id);
		values[1] = Float8GetDatum(score);
		CaiCatalogExecute(psprintf("UPDATE %s SET validation_score = $2 WHERE job_id = $1",
								   CaiCatalogQualify("cai_job_store")),
						  2, types, values, NULL, SPI_OK_UPDATE);
	}
	if (tuning_job > 0)
	{
		values[0] = Int64GetDatum(tuning_job);
		values[1] = Float8GetDatum(best);
		values[2] = Int32GetDatum(done);
		values[3] = Int32GetDatum(planned);
		nulls[1] = isnan(best) ? 'n' : ' ';
		CaiCatalogExecute(psprintf("UPDATE %s SET validation_score = $2, epoch = $3, epochs = $4, "
								   "progress = LEAST($3::float8 / GREATEST($4, 1), 1) WHERE job_id = $1",
								   CaiCatalogQualify("cai_job_store")),
						  4, types, values, nulls, SPI_OK_UPDATE);
	}
	CaiCatalogDisconnect();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Inside a transaction: the job's final state. */
void
CaiJobFinish(int64 job_id, const char *state, int32 version, const char *error)
{
	Oid			types[4] = {INT8OID, TEXTOID, INT4OID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(state);
	values[2] = Int32GetDatum(version);
	values[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	if (version <= 0)
		nulls[2] = 'n';
	if (error == NULL)
		nulls[3] = 'n';
	bool		pushed = CaiPushSnapshot();

	CaiCatalogConnect();
	CaiCatalogExecute(psprintf("UPDATE %s SET state = $2, version = $3, error = $4, "
							   "progress = CASE WHEN $2 = 'succeeded' THEN 1 ELSE progress END, "
							   "finished_at = pg_catalog.clock_timestamp() WHERE job_id = $1",
							   CaiCatalogQualify("cai_job_store")),
					  4, types, values, nulls, SPI_OK_UPDATE);
	CaiCatalogDisconnect();
	CaiPopSnapshot(pushed);
}

/*
 * cai_cancel(job_id): stop a queued or running job.  A role may cancel its
 * own jobs (it is a member of the job's role), superusers and members of
 * pg_signal_backend any job.  The worker gets SIGINT, stops between training
 * steps and records the job as cancelled.
 */
PG_FUNCTION_INFO_V1(cai_cancel);
Datum
cai_cancel(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	Oid			caller = GetUserId();
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};
	bool		found = false;
	bool		allowed = false;
	bool		active = false;
	int32		pid = 0;

	CaiCatalogConnect();
	CaiCatalogExecute(psprintf("SELECT j.role::oid, j.state IN ('queued', 'running'), j.pid, "
							   "EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a "
							   "WHERE a.pid = j.pid AND a.backend_type = 'cai_synergy training') "
							   "FROM %s j WHERE j.job_id = $1", CaiCatalogQualify("cai_job_store")),
					  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			role = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));

		found = true;
		allowed = has_privs_of_role(caller, role) || has_privs_of_role(caller, ROLE_PG_SIGNAL_BACKEND);
		active = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull)) &&
			DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		pid = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	}
	CaiCatalogDisconnect();

	if (!found || !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("training job " INT64_FORMAT " does not exist", job_id),
				 errhint("A role sees only its own jobs, unless it is a superuser or a member of pg_signal_backend.")));
	if (!active || pid <= 0)
		PG_RETURN_BOOL(false);
	if (kill(pid, SIGINT) != 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}
