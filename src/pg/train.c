/*
 * train.c: cai_train.  The caller's backend checks arguments, options and
 * privileges, then starts a dynamic background worker that reads the
 * training data with the caller's identity, runs the core trainer, and
 * streams NOTICEs (one per epoch), errors and finally the model bytes back
 * through a shared-memory queue.  The caller stores the new version in its
 * own transaction, so a cancelled or failed training writes nothing and a
 * rolled-back transaction keeps nothing.
 *
 * Cancellation: statement_timeout, pg_cancel_backend or Ctrl-C interrupt the
 * caller's wait; it then terminates the worker (SIGTERM), whose progress
 * callback stops the core trainer between steps.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "cai/ner.h"
#include "cai/options.h"
#include "cai_pg.h"

#define CAI_TRAIN_MAGIC		0x43414954
#define CAI_TRAIN_KEY_SHARED	1
#define CAI_TRAIN_KEY_MQ		2
#define CAI_TRAIN_MQ_SIZE	(1024 * 1024)
#define CAI_FETCH_BATCH		10000

/* Everything the worker needs, in the DSM segment. */
typedef struct CaiTrainShared
{
	Oid			database_id;
	Oid			authenticated_user_id;
	Oid			session_user_id;
	Oid			outer_user_id;
	Oid			current_user_id;
	int			sec_context;
	bool		session_user_is_superuser;
	bool		role_is_superuser;
	int			threads;
	int64		training_memory;	/* bytes */
	/* NUL-terminated strings at these offsets into data[] */
	Size		name_off;
	Size		task_off;
	Size		query_off;
	Size		valid_query_off;	/* empty string: split from training data */
	Size		options_off;
	Size		search_path_off;
	Size		source_off;
	Size		vectors_query_off;	/* empty string: no word vectors */
	int64		job_id;			/* 0: synchronous cai_train */
	volatile bool job_recorded;	/* set by the worker once its job row is committed */
	int			leader_pgprocno;
	int			leader_pid;
	int			max_training_jobs;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CaiTrainShared;

PGDLLEXPORT void cai_train_worker_main(Datum main_arg);

/* ------------------------------------------------------------------------
 * Source queries
 * ------------------------------------------------------------------------ */

static bool
CaiLooksLikeQuery(const char *s)
{
	static const char *const keywords[] = {"select", "with", "values", "table"};

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '(')
		s++;
	for (int i = 0; i < (int) lengthof(keywords); i++)
	{
		size_t		n = strlen(keywords[i]);

		if (pg_strncasecmp(s, keywords[i], n) == 0 &&
			(s[n] == '\0' || s[n] == ' ' || s[n] == '\t' || s[n] == '\n' || s[n] == '\r' || s[n] == '('))
			return true;
	}
	return false;
}

/*
 * SQL that reads (input, label) from a source: a table or view name
 * (optionally schema-qualified, quoted as in SQL) or a query.  Relation names
 * are resolved here, with the caller's search_path, and checked for SELECT
 * privilege so the error is immediate; the query itself runs with the
 * caller's rights wherever it runs.  input_cast/label_cast are SQL types.
 */
char *
CaiSourceQuery(const char *source, const char *input_column, const char *label_column,
			   const char *input_cast, const char *label_cast)
{
	StringInfoData sql;
	const char *in = quote_identifier(input_column);
	const char *lab = quote_identifier(label_column);

	if (source[strspn(source, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source must not be empty"),
				 errhint("Give a table or view name, or a SELECT query.")));
	if (input_column[0] == '\0' || label_column[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column names must not be empty")));

	initStringInfo(&sql);
	if (input_cast != NULL)
		appendStringInfo(&sql, "SELECT (s.%s)::%s, (s.%s)::%s FROM ", in, input_cast, lab, label_cast);
	else
		appendStringInfo(&sql, "SELECT s.%s, s.%s FROM ", in, lab);
	if (CaiLooksLikeQuery(source))
	{
		char	   *q = pstrdup(source);
		size_t		n = strlen(q);

		/* a trailing semicolon would end the subquery */
		while (n > 0 && (q[n - 1] == ';' || q[n - 1] == ' ' || q[n - 1] == '\n' ||
						 q[n - 1] == '\t' || q[n - 1] == '\r'))
			q[--n] = '\0';
		appendStringInfo(&sql, "(%s\n) AS s", q);
	}
	else
	{
		List	   *names = stringToQualifiedNameList(source);
		RangeVar   *rv = makeRangeVarFromNameList(names);
		Oid			relid = RangeVarGetRelid(rv, AccessShareLock, false);
		AclResult	aclresult;

		aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
		if (aclresult != ACLCHECK_OK)
			aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(relid)), get_rel_name(relid));
		if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot train from temporary table \"%s\"", get_rel_name(relid)),
					 errdetail("Training runs in a background worker, which cannot see this session's temporary tables."),
					 errhint("Use a regular or unlogged table.")));
		appendStringInfo(&sql, "%s AS s",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													get_rel_name(relid)));
	}
	return sql.data;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

/* The task a user names (canonical name or alias, from the registry). */
static const cai_task *
CaiFindTask(const char *name)
{
	const cai_task *task = cai_task_find(name);
	StringInfoData valid;

	if (task != NULL)
		return task;
	initStringInfo(&valid);
	for (int i = 0; cai_task_at(i) != NULL; i++)
	{
		appendStringInfo(&valid, "%s%s", i > 0 ? ", " : "", cai_task_at(i)->name);
		for (const char *const *a = cai_task_at(i)->aliases; *a != NULL; a++)
			appendStringInfo(&valid, ", %s", *a);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown task \"%s\"", name),
			 errhint("Valid tasks: %s.", valid.data)));
	return NULL;
}

static char *
CaiValidKeys(const cai_opt_def *defs, int n)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < n; i++)
		appendStringInfo(&s, "%s%s", i > 0 ? ", " : "", defs[i].name);
	return s.data;
}

/*
 * Parse and validate training options with the table of the architecture
 * they choose (ERROR with the list of valid keys).
 */
static cai_options *
CaiParseOptions(const char *task, const char *json, const cai_arch **arch_out)
{
	const cai_arch *arch = NULL;
	cai_options *o = NULL;
	cai_error	err = {0};
	cai_status	st;

	st = cai_task_parse_options(CaiFindTask(task), json, &arch, &o, &err);
	if (st != CAI_OK && arch == NULL)
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("invalid training options: %s", err.msg)));
	if (st != CAI_OK)
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("invalid training options: %s", err.msg),
				 errhint("Valid options of the %s architecture: %s. See SELECT * FROM cai_options('%s', '%s').",
						 arch->name, CaiValidKeys(arch->options, *arch->n_options), task, arch->name)));
	if (arch_out != NULL)
		*arch_out = arch;
	return o;
}

PG_FUNCTION_INFO_V1(cai_list_options);
Datum
cai_list_options(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const cai_task *task;
	const char *arch_name;
	const cai_arch *arch;
	const cai_opt_def *defs;
	int			n;
	static const char *const type_names[] = {"integer", "number", "boolean", "text"};

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;		/* as a STRICT function: no rows */
	task = CaiFindTask(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	arch_name = task->default_arch;
	/* 0.1.0's cai_options(task) has one argument; 0.2.0 adds architecture */
	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		arch_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	arch = cai_arch_find(task->name, arch_name);
	if (arch == NULL)
	{
		StringInfoData valid;

		initStringInfo(&valid);
		for (int i = 0; cai_arch_at(i) != NULL; i++)
			if (cai_arch_at(i)->task == task)
				appendStringInfo(&valid, "%s%s", valid.len > 0 ? ", " : "", cai_arch_at(i)->name);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown %s architecture \"%s\"", task->name, arch_name),
				 errhint("Valid architectures: %s.", valid.data)));
	}
	defs = arch->options;
	n = *arch->n_options;
	for (int i = 0; i < n; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {0};
		bool		numeric = defs[i].type == CAI_OPT_INT || defs[i].type == CAI_OPT_FLOAT;

		values[0] = CStringGetTextDatum(defs[i].name);
		values[1] = CStringGetTextDatum(type_names[defs[i].type]);
		values[2] = CStringGetTextDatum(defs[i].def ? defs[i].def : "");
		values[3] = Float8GetDatum(defs[i].min);
		values[4] = Float8GetDatum(defs[i].max);
		nulls[3] = nulls[4] = !numeric;
		if (defs[i].choices)
			values[5] = CStringGetTextDatum(defs[i].choices);
		else
			nulls[5] = true;
		values[6] = CStringGetTextDatum(defs[i].help ? defs[i].help : "");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Leader side
 * ------------------------------------------------------------------------ */

typedef struct CaiTrainResult
{
	bool		done;
	char	   *model;
	Size		model_len;
	char	   *metrics_json;
	int64		train_rows;
	int64		skipped_rows;
} CaiTrainResult;

static Size
CaiAddString(StringInfo buf, const char *s)
{
	Size		off = buf->len;

	appendBinaryStringInfo(buf, s, strlen(s) + 1);
	return off;
}

/* Handle one message from the worker: re-raise notices/errors, keep the result. */
static void
CaiHandleWorkerMessage(char *data, Size nbytes, CaiTrainResult *res)
{
	StringInfoData msg;
	char		msgtype;

	if (nbytes < 1)
		return;
	msgtype = data[0];
	msg.data = data + 1;
	msg.len = nbytes - 1;
	msg.maxlen = msg.len;
	msg.cursor = 0;

	switch (msgtype)
	{
		case 'E':
		case 'N':
			{
				ErrorData	edata;

				pq_parse_errornotice(&msg, &edata);
				if (msgtype == 'N')
					edata.elevel = Min(edata.elevel, NOTICE);
				else
					edata.elevel = ERROR;
				if (edata.context)
					edata.context = psprintf("%s\ntraining worker", edata.context);
				else
					edata.context = pstrdup("training worker");
				ThrowErrorData(&edata);
				break;
			}
		case 'R':
			{
				res->train_rows = pq_getmsgint64(&msg);
				res->skipped_rows = pq_getmsgint64(&msg);
				res->model_len = pq_getmsgint64(&msg);
				res->model = palloc(res->model_len);
				pq_copymsgbytes(&msg, res->model, res->model_len);
				{
					int64		mlen = pq_getmsgint64(&msg);

					res->metrics_json = palloc(mlen + 1);
					pq_copymsgbytes(&msg, res->metrics_json, mlen);
					res->metrics_json[mlen] = '\0';
				}
				res->done = true;
				break;
			}
		default:
			/* ignore protocol noise such as ReadyForQuery or parameter status */
			break;
	}
}

static void
CaiRunTrainingWorker(dsm_segment *seg, shm_mq_handle *mqh, BackgroundWorkerHandle *handle,
					 CaiTrainResult *res)
{
	for (;;)
	{
		Size		nbytes;
		void	   *data;
		shm_mq_result r;

		CHECK_FOR_INTERRUPTS();
		r = shm_mq_receive(mqh, &nbytes, &data, true);
		if (r == SHM_MQ_SUCCESS)
		{
			CaiHandleWorkerMessage(data, nbytes, res);
			continue;
		}
		if (r == SHM_MQ_DETACHED)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	if (!res->done)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("training worker exited without a result"),
				 errhint("See the server log for details.")));
}

static double
CaiJsonbNumber(Jsonb *jb, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvNumeric)
		return NAN;
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/*
 * Store a trained model (bytes from the core) as a new version: validated
 * exactly as an import would be, metrics completed with the score used for
 * deployment and the row counts.  Used by cai_train in the caller's
 * transaction and by asynchronous jobs in the worker's.
 */
static int32
CaiStoreTrainedModel(const char *name, const char *model, Size model_len, const char *metrics_json,
					 int64 train_rows, int64 skipped_rows, const char *deploy_policy,
					 bool *deployed, Jsonb **metrics_out)
{
	char	   *task_out;
	char	   *meta;
	Jsonb	   *m;
	Jsonb	   *metrics;
	double		score;
	char	   *extra;

	CaiValidateModelBytes((const uint8 *) model, model_len, &task_out, &meta);
	m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics_json)));
	score = CaiJsonbNumber(m, "score");
	if (isnan(score))
		score = CaiJsonbNumber(m, "accuracy");
	extra = psprintf("{\"score\": %.17g, \"skipped_rows\": " INT64_FORMAT ", \"train_rows_read\": " INT64_FORMAT "}",
					 isnan(score) ? 0.0 : score, skipped_rows, train_rows);
	metrics = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m),
												 DirectFunctionCall1(jsonb_in, CStringGetDatum(extra))));
	if (metrics_out)
		*metrics_out = metrics;
	return CaiCatalogStore(name, task_out, (const uint8 *) model, model_len, meta,
						   JsonbToCString(NULL, &metrics->root, 0), deploy_policy, deployed);
}

/* A launched training worker, as seen by the caller. */
typedef struct CaiLaunch
{
	char	   *name;
	char	   *deploy_policy;
	dsm_segment *seg;
	shm_mq_handle *mqh;
	BackgroundWorkerHandle *handle;
} CaiLaunch;

/*
 * Check the arguments of cai_train / cai_train_async, prepare the shared
 * state and start the worker.  job_id 0 = synchronous.
 */
static void
CaiTrainLaunch(FunctionCallInfo fcinfo, int64 job_id, CaiLaunch *launch)
{
	char	   *name;
	const cai_task *task_def;
	const char *task;
	char	   *source;
	char	   *input_column;
	char	   *label_column;
	char	   *options_json;
	cai_options *opts;
	const char *validation_source;
	char	   *query;
	char	   *valid_query = "";
	char	   *vectors_query = "";
	int			threads;
	StringInfoData strings;
	CaiTrainShared *shared;
	Size		shared_size;
	shm_toc_estimator e;
	dsm_segment *seg;
	shm_toc    *toc;
	shm_mq	   *mq;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of cai_train must not be NULL", i + 1)));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CaiCheckModelName(name);
	task_def = CaiFindTask(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	task = task_def->name;
	source = text_to_cstring(PG_GETARG_TEXT_PP(2));
	input_column = text_to_cstring(PG_GETARG_TEXT_PP(3));
	label_column = text_to_cstring(PG_GETARG_TEXT_PP(4));
	options_json = PG_ARGISNULL(5) ? pstrdup("{}") :
		JsonbToCString(NULL, &PG_GETARG_JSONB_P(5)->root, 0);

	CaiCheckWritable("train a model");

	opts = CaiParseOptions(task, options_json, NULL);
	launch->name = name;
	launch->deploy_policy = pstrdup(cai_opt_string(opts, "deploy"));
	validation_source = cai_opt_string(opts, "validation_source");
	threads = Max(1, (int) cai_opt_int(opts, "threads"));	/* 0: the architecture has no threads */
	if (threads > cai_threads)
	{
		ereport(NOTICE,
				(errmsg("using %d threads instead of %d", cai_threads, threads),
				 errdetail("cai.threads limits training to %d threads.", cai_threads)));
		threads = cai_threads;
	}

	/* fail early when the caller may not add versions to an existing model */
	CaiCheckModelOwnership(name, CaiCatalogModelOwner(name), "add a version to it");
	CaiCheckModelTask(name, task, "train a version");

	{
		/* NER sources keep their types: text[] + text[] tokens, or text + jsonb spans */
		bool		ner = task_def->kind == CAI_KIND_TAG;
		const char *cast = ner ? NULL : "pg_catalog.text";

		query = CaiSourceQuery(source, input_column, label_column, cast, cast);
		if (validation_source != NULL && validation_source[0] != '\0')
			valid_query = CaiSourceQuery(validation_source, input_column, label_column, cast, cast);
		if (ner && cai_opt_is_set(opts, "word_vectors"))
			vectors_query = CaiSourceQuery(cai_opt_string(opts, "word_vectors"), "word", "vector",
										   "pg_catalog.text", "pg_catalog.float4[]");
	}

	/* shared state */
	initStringInfo(&strings);
	{
		Size		name_off = CaiAddString(&strings, name);
		Size		task_off = CaiAddString(&strings, task);
		Size		query_off = CaiAddString(&strings, query);
		Size		valid_off = CaiAddString(&strings, valid_query);
		Size		options_off = CaiAddString(&strings, options_json);
		Size		sp_off = CaiAddString(&strings, GetConfigOption("search_path", false, false));
		Size		source_off = CaiAddString(&strings, source);
		Size		vectors_off = CaiAddString(&strings, vectors_query);

		shared_size = add_size(offsetof(CaiTrainShared, data), strings.len);
		shm_toc_initialize_estimator(&e);
		shm_toc_estimate_chunk(&e, shared_size);
		shm_toc_estimate_chunk(&e, CAI_TRAIN_MQ_SIZE);
		shm_toc_estimate_keys(&e, 2);
		seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (seg == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not create a dynamic shared memory segment for training"),
					 errhint("Too many dynamic shared memory segments are in use; retry later or raise max_connections.")));
		toc = shm_toc_create(CAI_TRAIN_MAGIC, dsm_segment_address(seg), shm_toc_estimate(&e));
		shared = shm_toc_allocate(toc, shared_size);
		memset(shared, 0, offsetof(CaiTrainShared, data));
		shared->database_id = MyDatabaseId;
		shared->authenticated_user_id = GetAuthenticatedUserId();
		shared->session_user_id = GetSessionUserId();
		shared->outer_user_id = GetCurrentRoleId();
		GetUserIdAndSecContext(&shared->current_user_id, &shared->sec_context);
		shared->session_user_is_superuser = superuser_arg(shared->session_user_id);
		shared->role_is_superuser = OidIsValid(shared->outer_user_id) && superuser_arg(shared->outer_user_id);
		shared->threads = threads;
		shared->training_memory = (int64) cai_training_memory_kb * 1024;
		shared->max_training_jobs = cai_max_training_jobs;
		shared->job_id = job_id;
		shared->job_recorded = false;
		shared->leader_pgprocno = MyProc->pgprocno;
		shared->leader_pid = MyProcPid;
		shared->name_off = name_off;
		shared->task_off = task_off;
		shared->query_off = query_off;
		shared->valid_query_off = valid_off;
		shared->options_off = options_off;
		shared->search_path_off = sp_off;
		shared->source_off = source_off;
		shared->vectors_query_off = vectors_off;
		memcpy(shared->data, strings.data, strings.len);
		shm_toc_insert(toc, CAI_TRAIN_KEY_SHARED, shared);
	}
	mq = shm_mq_create(shm_toc_allocate(toc, CAI_TRAIN_MQ_SIZE), CAI_TRAIN_MQ_SIZE);
	shm_toc_insert(toc, CAI_TRAIN_KEY_MQ, mq);
	shm_mq_set_receiver(mq, MyProc);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "cai_synergy");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "cai_train_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "cai_synergy training");
	snprintf(worker.bgw_type, BGW_MAXLEN, "cai_synergy training");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;

	/* an asynchronous job outlives this call: keep the segment until the worker maps it */
	if (job_id > 0)
		dsm_pin_segment(seg);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		if (job_id > 0)
			dsm_unpin_segment(dsm_segment_handle(seg));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a training worker: no free background worker slot"),
				 errhint("Wait for running jobs to finish, or raise max_worker_processes (needs a restart).")));
	}
	launch->seg = seg;
	launch->handle = handle;
	launch->mqh = job_id > 0 ? NULL : shm_mq_attach(mq, seg, handle);
	if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start a training worker"),
				 errhint("See the server log; check max_worker_processes.")));

	/* an asynchronous job is visible in cai_jobs before this call returns */
	while (job_id > 0 && !shared->job_recorded)
	{
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("training worker exited before recording job " INT64_FORMAT, job_id),
					 errhint("See the server log for details.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
CaiTerminateLaunchedWorker(int code, Datum arg)
{
	CaiLaunch  *launch = (CaiLaunch *) DatumGetPointer(arg);

	if (launch->handle != NULL)
		TerminateBackgroundWorker(launch->handle);
}

/* Training writes the catalog: refuse early and clearly where it cannot. */
void
CaiCheckWritable(const char *what)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s during recovery", what),
				 errdetail("This server is a standby; models are read-only here."),
				 errhint("Do it on the primary; models reach standbys by replication.")));
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s in a read-only transaction", what)));
}

PG_FUNCTION_INFO_V1(cai_train);
Datum
cai_train(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaiLaunch	launch = {0};
	CaiTrainResult res = {0};
	int32		version;
	bool		deployed;
	Jsonb	   *metrics;

	if (CaiRunningTrainingWorkers() >= cai_max_training_jobs)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many training jobs are running"),
				 errdetail("cai.max_training_jobs is %d.", cai_max_training_jobs),
				 errhint("Wait for a job to finish, or use cai_train_async, which queues.")));
	/* on ERROR and on FATAL (terminated or lost client): stop the worker */
	PG_ENSURE_ERROR_CLEANUP(CaiTerminateLaunchedWorker, PointerGetDatum(&launch));
	{
		CaiTrainLaunch(fcinfo, 0, &launch);
		CaiRunTrainingWorker(launch.seg, launch.mqh, launch.handle, &res);
	}
	PG_END_ENSURE_ERROR_CLEANUP(CaiTerminateLaunchedWorker, PointerGetDatum(&launch));

	version = CaiStoreTrainedModel(launch.name, res.model, res.model_len, res.metrics_json,
								   res.train_rows, res.skipped_rows, launch.deploy_policy,
								   &deployed, &metrics);
	pfree(res.model);
	dsm_detach(launch.seg);

	if (deployed)
		ereport(NOTICE, (errmsg("model \"%s\" version %d is deployed", launch.name, version)));
	else
		ereport(NOTICE,
				(errmsg("model \"%s\" version %d is stored but not deployed", launch.name, version),
				 errhint("Deploy it with cai_deploy('%s', %d).", launch.name, version)));

	InitMaterializedSRF(fcinfo, 0);
	{
		Datum		values[3];
		bool		nulls[3] = {0};

		values[0] = CStringGetTextDatum(launch.name);
		values[1] = Int32GetDatum(version);
		values[2] = JsonbPGetDatum(metrics);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(cai_train_async);
Datum
cai_train_async(PG_FUNCTION_ARGS)
{
	CaiLaunch	launch = {0};
	int64		job_id;

	CaiCheckWritable("train a model");
	job_id = CaiNextJobId();

	CaiTrainLaunch(fcinfo, job_id, &launch);
	dsm_detach(launch.seg);
	PG_RETURN_INT64(job_id);
}

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */

/* Training rows read from the source, in the worker's training context. */
typedef struct CaiRows
{
	int64		n;
	int64		cap;
	char	  **texts;
	size_t	   *lens;
	char	  **labels;
	int64		skipped;
} CaiRows;

static void
CaiReadRows(const char *query, CaiRows *rows, MemoryContext keep)
{
	SPIPlanPtr	plan;
	Portal		portal;

	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the source query: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, CAI_FETCH_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		in_null;
			bool		lab_null;
			Datum		in = SPI_getbinval(tup, desc, 1, &in_null);
			Datum		lab = SPI_getbinval(tup, desc, 2, &lab_null);
			MemoryContext old;

			if (in_null || lab_null)
			{
				rows->skipped++;
				continue;
			}
			old = MemoryContextSwitchTo(keep);
			if (rows->n == rows->cap)
			{
				int64		cap = rows->cap == 0 ? 1024 : rows->cap * 2;

				if (rows->cap == 0)
				{
					rows->texts = palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
					rows->lens = palloc_extended(sizeof(size_t) * cap, MCXT_ALLOC_HUGE);
					rows->labels = palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
				}
				else
				{
					rows->texts = repalloc_huge(rows->texts, sizeof(char *) * cap);
					rows->lens = repalloc_huge(rows->lens, sizeof(size_t) * cap);
					rows->labels = repalloc_huge(rows->labels, sizeof(char *) * cap);
				}
				rows->cap = cap;
			}
			{
				text	   *t = DatumGetTextPP(in);

				rows->lens[rows->n] = VARSIZE_ANY_EXHDR(t);
				rows->texts[rows->n] = pnstrdup(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				rows->labels[rows->n] = TextDatumGetCString(lab);
			}
			rows->n++;
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

static int
CaiCompareLabels(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;
	char	   *ex;
	char	   *ey;
	long		lx = strtol(x, &ex, 10);
	long		ly = strtol(y, &ey, 10);

	/* integer labels sort numerically, others by bytes */
	if (*x && *y && *ex == '\0' && *ey == '\0')
		return (lx > ly) - (lx < ly);
	return strcmp(x, y);
}

/* Distinct sorted labels of rows; label ids into ids (n). */
static char **
CaiLabelSet(CaiRows *rows, int *n_labels)
{
	char	  **sorted = palloc_extended(sizeof(char *) * Max(rows->n, 1), MCXT_ALLOC_HUGE);
	char	  **labels;
	int			n = 0;

	memcpy(sorted, rows->labels, sizeof(char *) * rows->n);
	qsort(sorted, rows->n, sizeof(char *), CaiCompareLabels);
	labels = palloc(sizeof(char *) * Max(rows->n, 1));
	for (int64 i = 0; i < rows->n; i++)
	{
		if (n == 0 || strcmp(labels[n - 1], sorted[i]) != 0)
		{
			if (n >= 100000)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many distinct labels (more than 100000)"),
						 errhint("Is the label column right?")));
			labels[n++] = sorted[i];
		}
	}
	pfree(sorted);
	*n_labels = n;
	return labels;
}

static int32 *
CaiLabelIds(CaiRows *rows, char **labels, int n_labels, bool validation)
{
	int32	   *ids = palloc_extended(sizeof(int32) * Max(rows->n, 1), MCXT_ALLOC_HUGE);

	for (int64 i = 0; i < rows->n; i++)
	{
		char	  **hit = bsearch(&rows->labels[i], labels, n_labels, sizeof(char *), CaiCompareLabels);

		if (hit == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s label \"%s\" does not occur in the training data",
							validation ? "validation" : "training", rows->labels[i])));
		ids[i] = (int32) (hit - labels);
	}
	return ids;
}


typedef struct CaiWorkerProgressState
{
	int64		job_id;
	int			leader_pid;		/* synchronous caller, 0 for jobs */
	ErrorData  *error;			/* an error raised inside the callback */
	TimestampTz last_update;
} CaiWorkerProgressState;

static bool
CaiWorkerProgressBody(CaiWorkerProgressState *ps, const cai_progress *p)
{
	if (QueryCancelPending || ProcDiePending)
		return false;
	/* a synchronous caller that has gone away will never read the result */
	if (ps->leader_pid > 0 && BackendPidGetProc(ps->leader_pid) == NULL)
	{
		ereport(LOG, (errmsg("cai_synergy training stopped: the calling backend %d has exited", ps->leader_pid)));
		return false;
	}
	if (p->epoch_done)
		ereport(ps->job_id > 0 ? DEBUG1 : NOTICE,
				(errmsg("epoch %d/%d: loss %.4f, validation %.4f, %.0f rows/s",
						p->epoch, p->epochs, p->loss, p->val_score, p->rows_per_sec)));
	if (ps->job_id > 0 &&
		(p->epoch_done || TimestampDifferenceExceeds(ps->last_update, GetCurrentTimestamp(), 1000)))
	{
		CaiJobProgress(ps->job_id, p->epoch, p->epochs, p->fraction, p->loss, p->val_score, p->rows_per_sec);
		ps->last_update = GetCurrentTimestamp();
	}
	return true;
}

/*
 * The core's progress callback.  It must never throw through the core (the
 * trainer may have worker threads parked): an error is kept, training is
 * cancelled, and CaiTrainingDone re-raises the error afterwards.
 */
static bool
CaiWorkerProgress(void *ctx, const cai_progress *p)
{
	CaiWorkerProgressState *ps = (CaiWorkerProgressState *) ctx;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool keep_going = false;

	if (ps->error != NULL)
		return false;
	PG_TRY();
	{
		keep_going = CaiWorkerProgressBody(ps, p);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		ps->error = CopyErrorData();
		FlushErrorState();
		if (IsTransactionState())
			AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		keep_going = false;
	}
	PG_END_TRY();
	return keep_going;
}

/* Take on the caller's exact identity (inside a transaction). */
static void
CaiWorkerBecomeCaller(CaiTrainShared *shared)
{
	SetSessionAuthorization(shared->session_user_id, shared->session_user_is_superuser);
	SetCurrentRoleId(shared->outer_user_id, shared->role_is_superuser);
	SetUserIdAndSecContext(shared->current_user_id, shared->sec_context);
	(void) set_config_option("search_path", shared->data + shared->search_path_off,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
}

/* What a task's trainer hands back for delivery. */
typedef struct CaiTrained
{
	uint8_t    *model;
	size_t		model_len;
	char	   *metrics;
	int64		rows;
	int64		skipped;
	const char *deploy_policy;
} CaiTrained;

/* Start the reading transaction (caller's identity, one snapshot). */
static void
CaiWorkerReadBegin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "cai_synergy training: reading data");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * End the reading transaction; returns the provenance JSON (in train_cxt).
 * Training then runs outside any transaction: no snapshot held for minutes.
 */
static char *
CaiWorkerReadEnd(CaiTrainShared *shared, MemoryContext train_cxt, int64 n, int64 skipped, int64 n_valid)
{
	MemoryContext old;
	StringInfoData p;

	PopActiveSnapshot();
	SPI_finish();
	/* catalog lookups need the transaction; keep the result in train_cxt */
	old = MemoryContextSwitchTo(train_cxt);
	initStringInfo(&p);
	appendStringInfo(&p, "{\"train_rows\": " INT64_FORMAT ", \"skipped_rows\": " INT64_FORMAT
					 ", \"validation_rows\": " INT64_FORMAT ", \"role\": ", n, skipped, n_valid);
	escape_json(&p, GetUserNameFromId(shared->current_user_id, false));
	appendStringInfoString(&p, ", \"database\": ");
	escape_json(&p, get_database_name(MyDatabaseId));
	appendStringInfoString(&p, ", \"source\": ");
	escape_json(&p, shared->data + shared->source_off);
	appendStringInfoChar(&p, '}');
	MemoryContextSwitchTo(old);
	CommitTransactionCommand();
	MemoryContextSwitchTo(train_cxt);
	return p.data;
}

static void
CaiCheckTrainingMemory(CaiTrainShared *shared, size_t need)
{
	if ((int64) need > shared->training_memory)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training would need %zu MB of memory, more than cai.training_memory (" INT64_FORMAT " MB)",
						need / (1024 * 1024), shared->training_memory / (1024 * 1024)),
				 errhint("Lower \"dimensions\", \"hidden\" or \"buckets\", train on fewer rows, or raise cai.training_memory.")));
}

static void
CaiNoRows(int64 skipped)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("the training source has no usable rows"),
			 errdetail(INT64_FORMAT " rows were skipped because the input or the label is NULL.", skipped)));
}

/* After the core trainer returned: raise its error (a cancel as the interrupt), or record the result. */
static void
CaiTrainingDone(cai_status st, const cai_error *err, CaiWorkerProgressState *ps, const cai_options *opts,
				int64 rows, int64 skipped, CaiTrained *out)
{
	cai_blas_set_threads(1);
	if (ps->error != NULL)
		ReThrowError(ps->error);
	if (st == CAI_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (st != CAI_OK)
		CaiReportCoreError(st, err, "training failed");
	out->rows = rows;
	out->skipped = skipped;
	out->deploy_policy = pstrdup(cai_opt_string(opts, "deploy"));
}

static void
CaiWorkerTrainTextclf(CaiTrainShared *shared, MemoryContext train_cxt, CaiWorkerProgressState *ps,
					  CaiTrained *out)
{
	CaiRows		rows = {0};
	CaiRows		vrows = {0};
	cai_options *opts;
	cai_error	err = {0};
	cai_status	st;
	char	  **labels;
	int			n_labels;
	int32	   *ids;
	int32	   *vids = NULL;
	cai_textclf_data train;
	cai_textclf_data valid;
	cai_train_set set = {0};
	const cai_arch *arch = NULL;
	char	   *provenance;

	CaiWorkerReadBegin();
	CaiReadRows(shared->data + shared->query_off, &rows, train_cxt);
	if (shared->data[shared->valid_query_off] != '\0')
		CaiReadRows(shared->data + shared->valid_query_off, &vrows, train_cxt);
	provenance = CaiWorkerReadEnd(shared, train_cxt, rows.n, rows.skipped, vrows.n);

	if (rows.n == 0)
		CaiNoRows(rows.skipped);
	labels = CaiLabelSet(&rows, &n_labels);
	if (n_labels < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the training data has a single class \"%s\"", labels[0]),
				 errhint("A classifier needs at least two distinct labels.")));
	ids = CaiLabelIds(&rows, labels, n_labels, false);
	if (vrows.n > 0)
		vids = CaiLabelIds(&vrows, labels, n_labels, true);
	else if (shared->data[shared->valid_query_off] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the validation source has no usable rows")));

	opts = CaiParseOptions(shared->data + shared->task_off, shared->data + shared->options_off, &arch);
	train.n = rows.n;
	train.texts = (const char *const *) rows.texts;
	train.lens = rows.lens;
	train.labels = ids;
	valid.n = vrows.n;
	valid.texts = (const char *const *) vrows.texts;
	valid.lens = vrows.lens;
	valid.labels = vids;
	set.texts = &train;
	set.valid_texts = vrows.n > 0 ? &valid : NULL;
	set.label_names = (const char *const *) labels;
	set.n_labels = n_labels;
	CaiCheckTrainingMemory(shared, cai_arch_train_memory(arch, opts, &set));

	pgstat_report_activity(STATE_RUNNING, "cai_synergy training");
	cai_blas_set_threads(shared->threads);
	st = cai_arch_train(arch, opts, &set, provenance, CaiWorkerProgress, ps,
						&out->model, &out->model_len, &out->metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, rows.n, rows.skipped, out);
}



static void
CaiNerGrow(CaiNerRows *r, int64 more_tokens)
{
	if (r->cap == 0)
	{
		r->cap = 1024;
		r->offsets = palloc_extended(sizeof(int64) * (r->cap + 1), MCXT_ALLOC_HUGE);
		r->offsets[0] = 0;
	}
	else if (r->n + 1 >= r->cap)
	{
		r->cap *= 2;
		r->offsets = repalloc_huge(r->offsets, sizeof(int64) * (r->cap + 1));
	}
	if (r->ntok + more_tokens > r->tokcap)
	{
		int64		cap = Max(r->tokcap * 2, r->ntok + more_tokens + 4096);

		if (r->tokcap == 0)
		{
			r->tokens = palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
			r->lens = palloc_extended(sizeof(size_t) * cap, MCXT_ALLOC_HUGE);
			r->tags = palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
		}
		else
		{
			r->tokens = repalloc_huge(r->tokens, sizeof(char *) * cap);
			r->lens = repalloc_huge(r->lens, sizeof(size_t) * cap);
			r->tags = repalloc_huge(r->tags, sizeof(char *) * cap);
		}
		r->tokcap = cap;
	}
}

static bool
CaiIsTextArrayType(Oid t)
{
	return t == TEXTARRAYOID || t == VARCHARARRAYOID || t == BPCHARARRAYOID || t == NAMEARRAYOID;
}

static bool
CaiIsTextType(Oid t)
{
	return t == TEXTOID || t == VARCHAROID || t == BPCHAROID;
}

static void
CaiNerArray(Datum d, const char *what, int64 rowno, Datum **elems, int *n)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	bool	   *nulls;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("row " INT64_FORMAT ": the %s array has %d dimensions, expected one", rowno, what, ARR_NDIM(a))));
	get_typlenbyvalalign(ARR_ELEMTYPE(a), &typlen, &typbyval, &typalign);
	deconstruct_array(a, ARR_ELEMTYPE(a), typlen, typbyval, typalign, elems, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("row " INT64_FORMAT ": %s %d is NULL", rowno, what, i + 1)));
}

/* (text, jsonb spans) -> tokens and IOB2 tags via the core tokenizer. */
static void
CaiNerSpanRow(CaiNerRows *r, text *t, Jsonb *jb)
{
	const char *txt = VARDATA_ANY(t);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	cai_span   *spans;
	int			n_spans = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	cai_token  *tokens = NULL;
	char	  **tags = NULL;
	size_t		ntok = 0;
	cai_error	err = {0};
	cai_status	st;

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row " INT64_FORMAT ": the spans must be a JSON array of {\"start\", \"end\", \"label\"} objects", r->rowno)));
	spans = palloc(sizeof(cai_span) * Max(JB_ROOT_COUNT(jb), 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue	k;
		JsonbValue *start;
		JsonbValue *end;
		JsonbValue *label;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d is not a JSON object", r->rowno, n_spans + 1)));
		k.type = jbvString;
		k.val.string.val = "start";
		k.val.string.len = 5;
		start = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		k.val.string.val = "end";
		k.val.string.len = 3;
		end = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		k.val.string.val = "label";
		k.val.string.len = 5;
		label = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		if (start == NULL || end == NULL || label == NULL || start->type != jbvNumeric ||
			end->type != jbvNumeric || label->type != jbvString || label->val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d needs a numeric \"start\" and \"end\" and a non-empty string \"label\"",
							r->rowno, n_spans + 1)));
		spans[n_spans].cstart = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(start->val.numeric))) - 1;
		spans[n_spans].cend = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(end->val.numeric)));
		spans[n_spans].label = pnstrdup(label->val.string.val, label->val.string.len);
		if (spans[n_spans].cstart < 0 || spans[n_spans].cend <= spans[n_spans].cstart)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d has start " INT64_FORMAT " and end " INT64_FORMAT,
							r->rowno, n_spans + 1, spans[n_spans].cstart + 1, spans[n_spans].cend),
					 errdetail("Positions are 1-based character positions with the end inclusive.")));
		n_spans++;
	}
	st = cai_ner_spans_to_tags(txt, len, spans, n_spans, &tokens, &tags, &ntok, &err);
	if (st != CAI_OK)
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("row " INT64_FORMAT ": %s", r->rowno, err.msg)));
	if (ntok == 0)
	{
		r->skipped++;
		return;
	}
	CaiNerGrow(r, ntok);
	for (size_t i = 0; i < ntok; i++)
	{
		r->tokens[r->ntok] = pnstrdup(txt + tokens[i].start, tokens[i].end - tokens[i].start);
		r->lens[r->ntok] = tokens[i].end - tokens[i].start;
		r->tags[r->ntok] = pstrdup(tags[i]);
		r->ntok++;
	}
	cai_free(tags);				/* one block: pointers and strings */
	cai_free(tokens);
	r->offsets[++r->n] = r->ntok;
}

void
CaiReadNerRows(const char *query, CaiNerRows *r, MemoryContext keep)
{
	SPIPlanPtr	plan;
	Portal		portal;
	bool		spans_form = false;
	bool		checked = false;

	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the source query: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, CAI_FETCH_BATCH);
		if (SPI_processed == 0)
			break;
		if (!checked)
		{
			Oid			in_type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
			Oid			lab_type = SPI_gettypeid(SPI_tuptable->tupdesc, 2);

			if (CaiIsTextArrayType(in_type) && CaiIsTextArrayType(lab_type))
				spans_form = false;
			else if (CaiIsTextType(in_type) && lab_type == JSONBOID)
				spans_form = true;
			else
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("NER training needs text[] tokens with text[] tags, or text with jsonb spans"),
						 errdetail("The input column is %s and the label column is %s.",
								   format_type_be(in_type), format_type_be(lab_type)),
						 errhint("Cast the columns in a query, e.g. SELECT tokens::text[], tags::text[] FROM ... or labels::jsonb.")));
			checked = true;
		}
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		in_null;
			bool		lab_null;
			Datum		in = SPI_getbinval(tup, desc, 1, &in_null);
			Datum		lab = SPI_getbinval(tup, desc, 2, &lab_null);
			MemoryContext old;

			r->rowno++;
			if (in_null || lab_null)
			{
				r->skipped++;
				continue;
			}
			old = MemoryContextSwitchTo(keep);
			if (spans_form)
				CaiNerSpanRow(r, DatumGetTextPP(in), DatumGetJsonbP(lab));
			else
			{
				Datum	   *toks;
				Datum	   *tags;
				int			nt;
				int			ng;

				CaiNerArray(in, "token", r->rowno, &toks, &nt);
				CaiNerArray(lab, "tag", r->rowno, &tags, &ng);
				if (nt != ng)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("row " INT64_FORMAT " has %d tokens but %d tags", r->rowno, nt, ng),
							 errhint("Every token needs exactly one tag.")));
				if (nt == 0)
					r->skipped++;
				else
				{
					CaiNerGrow(r, nt);
					for (int k = 0; k < nt; k++)
					{
						text	   *tt = DatumGetTextPP(toks[k]);

						r->lens[r->ntok] = VARSIZE_ANY_EXHDR(tt);
						r->tokens[r->ntok] = pnstrdup(VARDATA_ANY(tt), VARSIZE_ANY_EXHDR(tt));
						r->tags[r->ntok] = TextDatumGetCString(tags[k]);
						r->ntok++;
					}
					r->offsets[++r->n] = r->ntok;
				}
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

/* Word vectors (word text, vector real[]) for the "word_vectors" option. */
static void
CaiReadWordVectors(const char *query, cai_word_vectors *wv, MemoryContext keep)
{
	int64		cap = 0;
	SPIPlanPtr	plan = SPI_prepare(query, 0, NULL);
	Portal		portal;
	char	  **words = NULL;
	size_t	   *lens = NULL;
	float	   *vecs = NULL;

	if (plan == NULL)
		elog(ERROR, "could not prepare the word vectors query: %s", SPI_result_code_string(SPI_result));
	wv->n = 0;
	wv->dim = 0;
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, CAI_FETCH_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		wnull;
			bool		vnull;
			Datum		w = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &wnull);
			Datum		v = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &vnull);
			ArrayType  *a;
			int			dim;
			MemoryContext old;

			if (wnull || vnull)
				continue;
			a = DatumGetArrayTypeP(v);
			if (ARR_NDIM(a) != 1 || ARR_HASNULL(a))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("word vector %zu must be a one-dimensional real[] without NULLs", wv->n + 1)));
			dim = ARR_DIMS(a)[0];
			if (wv->dim == 0)
				wv->dim = dim;
			else if (dim != wv->dim)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("word vectors have different lengths (%d and %d)", wv->dim, dim)));
			old = MemoryContextSwitchTo(keep);
			if ((int64) wv->n == cap)
			{
				cap = cap == 0 ? 1024 : cap * 2;
				words = words ? repalloc_huge(words, sizeof(char *) * cap) : palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
				lens = lens ? repalloc_huge(lens, sizeof(size_t) * cap) : palloc_extended(sizeof(size_t) * cap, MCXT_ALLOC_HUGE);
				vecs = vecs ? repalloc_huge(vecs, sizeof(float) * cap * dim) : palloc_extended(sizeof(float) * cap * dim, MCXT_ALLOC_HUGE);
			}
			words[wv->n] = TextDatumGetCString(w);
			lens[wv->n] = strlen(words[wv->n]);
			memcpy(vecs + wv->n * dim, ARR_DATA_PTR(a), sizeof(float) * dim);
			wv->n++;
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	wv->words = (const char *const *) words;
	wv->lens = lens;
	wv->vectors = vecs;
}

static void
CaiWorkerTrainNer(CaiTrainShared *shared, MemoryContext train_cxt, CaiWorkerProgressState *ps,
				  CaiTrained *out)
{
	CaiNerRows	rows = {0};
	CaiNerRows	vrows = {0};
	cai_word_vectors wv = {0};
	cai_options *opts;
	cai_error	err = {0};
	cai_status	st;
	cai_ner_data train;
	cai_ner_data valid;
	cai_train_set set = {0};
	const cai_arch *arch = NULL;
	char	   *provenance;
	bool		has_vectors = shared->data[shared->vectors_query_off] != '\0';

	CaiWorkerReadBegin();
	CaiReadNerRows(shared->data + shared->query_off, &rows, train_cxt);
	if (shared->data[shared->valid_query_off] != '\0')
		CaiReadNerRows(shared->data + shared->valid_query_off, &vrows, train_cxt);
	if (has_vectors)
		CaiReadWordVectors(shared->data + shared->vectors_query_off, &wv, train_cxt);
	provenance = CaiWorkerReadEnd(shared, train_cxt, rows.n, rows.skipped, vrows.n);

	if (rows.n == 0)
		CaiNoRows(rows.skipped);
	if (shared->data[shared->valid_query_off] != '\0' && vrows.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the validation source has no usable rows")));

	opts = CaiParseOptions(shared->data + shared->task_off, shared->data + shared->options_off, &arch);
	train.n = rows.n;
	train.offsets = rows.offsets;
	train.tokens = (const char *const *) rows.tokens;
	train.token_lens = rows.lens;
	train.tags = (const char *const *) rows.tags;
	valid.n = vrows.n;
	valid.offsets = vrows.offsets;
	valid.tokens = (const char *const *) vrows.tokens;
	valid.token_lens = vrows.lens;
	valid.tags = (const char *const *) vrows.tags;
	set.sentences = &train;
	set.valid_sentences = vrows.n > 0 ? &valid : NULL;
	set.vectors = has_vectors ? &wv : NULL;
	CaiCheckTrainingMemory(shared, cai_arch_train_memory(arch, opts, &set));

	pgstat_report_activity(STATE_RUNNING, "cai_synergy training");
	cai_blas_set_threads(shared->threads);
	st = cai_arch_train(arch, opts, &set, provenance, CaiWorkerProgress, ps,
						&out->model, &out->model_len, &out->metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, rows.n, rows.skipped, out);
}

/*
 * Read, train, and deliver the model: to the waiting caller (synchronous)
 * or into the catalog (asynchronous job).
 */
static void
CaiWorkerTrain(CaiTrainShared *shared, shm_mq_handle *mqh, MemoryContext train_cxt)
{
	CaiWorkerProgressState ps = {shared->job_id, shared->job_id > 0 ? 0 : shared->leader_pid, NULL, 0};
	CaiTrained	t = {0};

	MemoryContextSwitchTo(train_cxt);
	if (cai_task_find(shared->data + shared->task_off)->kind == CAI_KIND_TAG)
		CaiWorkerTrainNer(shared, train_cxt, &ps, &t);
	else
		CaiWorkerTrainTextclf(shared, train_cxt, &ps, &t);

	if (shared->job_id > 0)
	{
		/* asynchronous: store the version and finish the job in one transaction */
		bool		deployed;
		int32		version;

		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		version = CaiStoreTrainedModel(shared->data + shared->name_off, (char *) t.model, t.model_len,
									   t.metrics, t.rows, t.skipped, t.deploy_policy, &deployed, NULL);
		CaiJobFinish(shared->job_id, "succeeded", version, NULL);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	else
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, 'R');
		pq_sendint64(&buf, t.rows);
		pq_sendint64(&buf, t.skipped);
		pq_sendint64(&buf, t.model_len);
		appendBinaryStringInfo(&buf, (char *) t.model, t.model_len);
		pq_sendint64(&buf, strlen(t.metrics));
		appendBinaryStringInfo(&buf, t.metrics, strlen(t.metrics));
		if (shm_mq_send(mqh, buf.len, buf.data, false, true) != SHM_MQ_SUCCESS)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the caller stopped waiting for the training result")));
	}
}

void
cai_train_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	CaiTrainShared *shared;
	shm_mq_handle *mqh = NULL;
	MemoryContext train_cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the training job's shared memory segment")));
	toc = shm_toc_attach(CAI_TRAIN_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invalid magic number in the training job's shared memory segment")));
	shared = shm_toc_lookup(toc, CAI_TRAIN_KEY_SHARED, false);
	if (shared->job_id > 0)
	{
		/* the caller has gone on; the segment now lives as long as we map it */
		dsm_unpin_segment(dsm_segment_handle(seg));
	}
	else
	{
		shm_mq	   *mq = shm_toc_lookup(toc, CAI_TRAIN_KEY_MQ, false);

		shm_mq_set_sender(mq, MyProc);
		mqh = shm_mq_attach(mq, seg, NULL);
		pq_redirect_to_shm_mq(seg, mqh);
	}

	/* connect as the caller's authenticated user, then take on its exact identity */
	BackgroundWorkerInitializeConnectionByOid(shared->database_id, shared->authenticated_user_id, 0);
	SetClientEncoding(GetDatabaseEncoding());
	CaiUseMemoryContextAllocator();
	train_cxt = AllocSetContextCreate(TopMemoryContext, "cai_synergy training", ALLOCSET_DEFAULT_SIZES);

	StartTransactionCommand();
	CaiWorkerBecomeCaller(shared);
	if (shared->job_id > 0)
		CaiJobInsert(shared->job_id, shared->data + shared->name_off, shared->data + shared->task_off,
					 shared->current_user_id, shared->data + shared->source_off,
					 shared->data + shared->options_off);
	CommitTransactionCommand();
	if (shared->job_id > 0)
	{
		pg_memory_barrier();
		shared->job_recorded = true;
		SetLatch(&ProcGlobal->allProcs[shared->leader_pgprocno].procLatch);
	}

	if (shared->job_id == 0)
	{
		CaiWorkerTrain(shared, mqh, train_cxt);
		return;
	}

	/* asynchronous job: every outcome is recorded in its row */
	PG_TRY();
	{
		CaiJobWaitForSlot(shared->job_id, shared->max_training_jobs);
		CaiWorkerTrain(shared, NULL, train_cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(train_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		cai_blas_set_threads(1);
		ereport(LOG,
				(errmsg("cai_synergy training job " INT64_FORMAT " %s: %s", shared->job_id,
						edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "failed",
						edata->message)));
		StartTransactionCommand();
		CaiJobFinish(shared->job_id, edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "failed",
					 0, edata->message);
		CommitTransactionCommand();
	}
	PG_END_TRY();
}
