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
 *
 * This file is the caller's side; train_worker.c is the worker's.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
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
#include "utils/syscache.h"
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
#include "train.h"


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
 * caller's rights wherever it runs.  input_cast/label_cast are SQL types
 * (NULL: the column's own type).
 */
char *
CaiSourceQuery(const char *source, const char *input_column, const char *label_column,
			   const char *input_cast, const char *label_cast)
{
	StringInfoData sql;
	const char *in = quote_identifier(input_column);
	const char *lab = label_column ? quote_identifier(label_column) : NULL;

	if (source[strspn(source, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source must not be empty"),
				 errhint("Give a table or view name, or a SELECT query.")));
	if (input_column[0] == '\0' || (label_column != NULL && label_column[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column names must not be empty")));

	initStringInfo(&sql);
	if (label_column == NULL)
	{
		/* unlabeled input (word vectors, drift): cast, or of its own type for the caller to check */
		if (input_cast != NULL)
			appendStringInfo(&sql, "SELECT (s.%s)::%s FROM ", in, input_cast);
		else
			appendStringInfo(&sql, "SELECT s.%s FROM ", in);
	}
	else if (input_cast != NULL)
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
		appendStringInfo(&sql, "%s AS s",
						 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													get_rel_name(relid)));
	}
	return sql.data;
}

/*
 * An asynchronous job reads its sources in its worker, after this
 * transaction, as the caller's role: a temporary table of this session is
 * invisible there.  (Synchronous cai_train reads them here, stream.c.)
 */
static void
CaiCheckJobSource(const char *source)
{
	Oid			relid;

	if (source == NULL || source[0] == '\0' || CaiLooksLikeQuery(source))
		return;
	relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(source)), NoLock, true);
	if (!OidIsValid(relid))
		return;
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("an asynchronous job cannot train from temporary table \"%s\"", get_rel_name(relid)),
				 errdetail("A job reads its rows in a background worker, which cannot see this session's temporary tables."),
				 errhint("Use cai_train, which reads the rows in this session, or a regular table.")));
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		bool		created_here = HeapTupleIsValid(tup) &&
			TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data));

		if (HeapTupleIsValid(tup))
			ReleaseSysCache(tup);
		if (created_here)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("an asynchronous job cannot train from table \"%s\", created in this transaction", get_rel_name(relid)),
					 errdetail("A job reads committed rows in a background worker, after this transaction."),
					 errhint("Use cai_train, which reads the rows in this session, or commit first.")));
	}
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
cai_options *
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
	bytea	   *model;			/* the bytes the worker sent, as the model store's row takes them */
	char	   *metrics_json;
	char	   *history_json;
	int64		train_rows;
	int64		skipped_rows;
} CaiTrainResult;

/* A length-prefixed string of a worker message, NUL-terminated. */
static char *
CaiGetMsgString(StringInfo msg)
{
	int64		len = pq_getmsgint64(msg);
	char	   *s;

	if (len < 0 || len > msg->len - msg->cursor)
		elog(ERROR, "malformed training worker message. Please report a bug.");
	s = palloc(len + 1);
	pq_copymsgbytes(msg, s, len);
	s[len] = '\0';
	return s;
}

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
				int64		len;

				res->train_rows = pq_getmsgint64(&msg);
				res->skipped_rows = pq_getmsgint64(&msg);
				len = pq_getmsgint64(&msg);
				if (len < 0 || len > msg.len - msg.cursor)
					elog(ERROR, "malformed training worker message. Please report a bug.");
				res->model = CaiByteaAlloc(len);
				pq_copymsgbytes(&msg, VARDATA(res->model), len);
				res->metrics_json = CaiGetMsgString(&msg);
				res->history_json = CaiGetMsgString(&msg);
				res->done = true;
				break;
			}
		default:
			/* ignore protocol noise such as ReadyForQuery or parameter status */
			break;
	}
}

static void
CaiOnWorkerMessage(void *data, Size nbytes, void *arg)
{
	CaiHandleWorkerMessage(data, nbytes, (CaiTrainResult *) arg);
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

/* The validation score that deployment compares: "score", else "accuracy"; NaN if neither. */
double
CaiMetricsScore(Jsonb *metrics)
{
	double		score = CaiJsonbNumber(metrics, "score");

	return isnan(score) ? CaiJsonbNumber(metrics, "accuracy") : score;
}

/* a with the keys of b (a JSON object text) set over it (jsonb ||). */
static Jsonb *
CaiJsonbSet(Jsonb *a, const char *b)
{
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(a),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(b))));
}

/*
 * Store a trained model (bytes from the core) as a new version: validated
 * exactly as an import would be, metrics completed with the score used for
 * deployment and the row counts.  Used by cai_train in the caller's
 * transaction and by asynchronous jobs in the worker's.
 */
int32
CaiStoreTrainedModel(const char *name, bytea *model, const char *metrics_json,
					 const char *history_json, int64 train_rows, int64 skipped_rows, const char *deploy_policy,
					 bool *deployed, Jsonb **metrics_out)
{
	char	   *task_out;
	char	   *meta;
	Jsonb	   *m;
	Jsonb	   *metrics;
	double		score;
	char	   *extra;

	CaiValidateModelBytes((const uint8 *) VARDATA_ANY(model), VARSIZE_ANY_EXHDR(model), &task_out, &meta);
	m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics_json)));
	score = CaiMetricsScore(m);
	extra = psprintf("{\"score\": %.17g, \"skipped_rows\": " INT64_FORMAT ", \"train_rows_read\": " INT64_FORMAT "}",
					 isnan(score) ? 0.0 : score, skipped_rows, train_rows);
	metrics = CaiJsonbSet(m, extra);
	if (metrics_out)
		*metrics_out = metrics;
	return CaiCatalogStore(name, 0, task_out, model, meta,
						   JsonbToCString(NULL, &metrics->root, 0), history_json, deploy_policy, deployed);
}

/* The JSON object text a with b's keys set over it. */
static char *
CaiJsonConcat(const char *a, const char *b)
{
	Jsonb	   *j = CaiJsonbSet(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(a))), b);

	return JsonbToCString(NULL, &j->root, 0);
}

/* Whether an architecture has a training option of that name. */
static bool
CaiArchHasOption(const cai_arch *arch, const char *name)
{
	for (int i = 0; arch != NULL && i < *arch->n_options; i++)
		if (strcmp(arch->options[i].name, name) == 0)
			return true;
	return false;
}

/* A launched training worker, as seen by the caller. */
typedef struct CaiLaunch
{
	char	   *name;
	bool		vectors;		/* a vector set (task kind CAI_KIND_EMBED), not a model */
	char	   *deploy_policy;
	dsm_segment *seg;
	shm_mq_handle *mqh;
	BackgroundWorkerHandle *handle;
	/* synchronous: the source queries this backend runs for the worker, in the order it reads them */
	shm_mq_handle *rows_mqh;
	int			n_queries;
	const char *queries[3];
	const char *whats[3];
} CaiLaunch;

/*
 * Check the arguments of cai_train / cai_train_async (or cai_tune /
 * cai_tune_async: the last argument is then the search, and the options
 * every trial shares stand for the training options), prepare the shared
 * state and start the worker.  job_id 0 = synchronous.
 */
static void
CaiTrainLaunch(FunctionCallInfo fcinfo, int64 job_id, bool tune, bool pretrain, CaiLaunch *launch)
{
	char	   *name;
	const cai_task *task_def;
	const char *task;
	char	   *source;
	char	   *input_column;
	char	   *label_column;
	char	   *options_json;
	char	   *search_json = "";
	cai_options *opts;
	const char *validation_source;
	char	   *query;
	shm_mq	   *rows_mq = NULL;
	char	   *valid_query = "";
	char	   *vectors_query = "";
	const char *vector_set = "";
	int32		vector_set_version = 0;
	const cai_arch *arch = NULL;
	const char *encoder;
	int32		encoder_version = 0;
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
					 errmsg("argument %d of %s must not be NULL", i + 1, tune ? "cai_tune" : "cai_train")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CaiCheckModelName(name);
	task_def = CaiFindTask(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	task = task_def->name;
	source = text_to_cstring(PG_GETARG_TEXT_PP(2));
	input_column = text_to_cstring(PG_GETARG_TEXT_PP(3));
	label_column = text_to_cstring(PG_GETARG_TEXT_PP(4));
	options_json = PG_ARGISNULL(5) ? pstrdup("{}") :
		JsonbToCString(NULL, &PG_GETARG_JSONB_P(5)->root, 0);
	if (tune)
	{
		search_json = options_json;
		options_json = CaiTuneFixedOptions(task_def, search_json);
	}

	CaiCheckWritable("train a model");
	CaiCheckTrainingNode("train a model");

	/*
	 * cai_pretrain (pretrain.c) trains an encoder with options of its own;
	 * cai_train refuses encoders (the registry's: imported, not trained)
	 */
	if (pretrain && task_def->kind != CAI_KIND_ENCODER)
		elog(ERROR, "pretraining of task %s: Please report a bug.", task);
	opts = pretrain ? CaiPretrainOptions(options_json) : CaiParseOptions(task, options_json, &arch);
	launch->name = name;
	launch->vectors = task_def->kind == CAI_KIND_EMBED;
	launch->deploy_policy = pstrdup(launch->vectors ? "never" : pretrain ? "import" : cai_opt_string(opts, "deploy"));
	validation_source = cai_opt_string(opts, "validation_source");
	threads = Max(1, (int) cai_opt_int(opts, "threads"));	/* 0: the architecture has no threads */
	if (threads > CaiSettingThreads())
	{
		ereport(NOTICE,
				(errmsg("using %d threads instead of %d", CaiSettingThreads(), threads),
				 errdetail("cai.threads limits training to %d threads.", CaiSettingThreads())));
		threads = CaiSettingThreads();
	}
	if (threads < cai_opt_int(opts, "threads"))
	{
		/*
		 * The trainers take their thread count from the options: the worker
		 * gets the capped one (the search's fixed value too), and the model
		 * records the threads it was trained with.
		 */
		char	   *cap = psprintf("{\"threads\": %d}", threads);

		options_json = CaiJsonConcat(options_json, cap);
		if (tune)
			search_json = CaiJsonConcat(search_json, cap);
	}

	/*
	 * encoder: a model with an encoder to fine-tune (architectures that have
	 * the option), its deployed version or encoder_version, pinned here
	 */
	encoder = cai_opt_string(opts, "encoder");
	if (encoder != NULL && encoder[0] != '\0')
		encoder_version = CaiEncoderVersion(encoder, (int32) cai_opt_int(opts, "encoder_version"));
	else if (CaiArchHasOption(arch, "encoder"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the %s architecture needs the \"encoder\" option", arch->name),
				 errdetail("It fine-tunes a pretrained encoder."),
				 errhint("Name an encoder imported with cai_import_encoder: '{\"architecture\": \"%s\", \"encoder\": \"my_bert\"}'.",
						 arch->name)));
	else
		encoder = "";

	/* fail early when the caller may not add versions to an existing model or vector set */
	if (launch->vectors)
		CaiCheckVectorSetWritable(name);
	else
		CaiCheckNewVersion(name, task, "train a version");

	{
		/* NER sources keep their types: text[] + text[] tokens, or text + jsonb spans */
		bool		ner = task_def->kind == CAI_KIND_TAG;
		const char *cast = ner ? NULL : "pg_catalog.text";

		/* word vectors and pretraining learn from the input column alone */
		if (job_id > 0)
		{
			CaiCheckJobSource(source);
			CaiCheckJobSource(validation_source);
		}
		query = CaiSourceQuery(source, input_column, launch->vectors || pretrain ? NULL : label_column, cast, cast);
		if (validation_source != NULL && validation_source[0] != '\0')
			valid_query = CaiSourceQuery(validation_source, input_column, label_column, cast, cast);
		/*
		 * word_vectors: a vector set by name (its latest version, pinned
		 * here), else a table or query of (word, vector) rows
		 */
		if (cai_opt_is_set(opts, "word_vectors"))
		{
			const char *wv = cai_opt_string(opts, "word_vectors");

			if (strlen(wv) <= CAI_MODEL_NAME_MAX)
				vector_set_version = CaiVectorSetVersion(wv, 0, NULL);
			if (vector_set_version > 0)
				vector_set = wv;
			else
			{
				if (job_id > 0)
					CaiCheckJobSource(wv);
				vectors_query = CaiSourceQuery(wv, "word", "vector", "pg_catalog.text", "pg_catalog.float4[]");
			}
		}
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
		Size		vector_set_off = CaiAddString(&strings, vector_set);
		Size		search_off = CaiAddString(&strings, search_json);
		Size		encoder_off = CaiAddString(&strings, encoder);

		shared_size = add_size(offsetof(CaiTrainShared, data), strings.len);
		shm_toc_initialize_estimator(&e);
		shm_toc_estimate_chunk(&e, shared_size);
		shm_toc_estimate_chunk(&e, CAI_TRAIN_MQ_SIZE);
		if (job_id == 0)
			shm_toc_estimate_chunk(&e, CAI_TRAIN_ROWS_SIZE);
		shm_toc_estimate_keys(&e, 3);
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
		shared->training_memory = (int64) CaiSettingTrainingMemoryKb() * 1024;
		shared->max_training_jobs = CaiSettingMaxTrainingJobs();
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
		shared->vector_set_off = vector_set_off;
		shared->search_off = search_off;
		shared->vector_set_version = vector_set_version;
		shared->encoder_off = encoder_off;
		shared->encoder_version = encoder_version;
		shared->rows_streamed = job_id == 0;
		memcpy(shared->data, strings.data, strings.len);
		shm_toc_insert(toc, CAI_TRAIN_KEY_SHARED, shared);
	}
	mq = shm_mq_create(shm_toc_allocate(toc, CAI_TRAIN_MQ_SIZE), CAI_TRAIN_MQ_SIZE);
	shm_toc_insert(toc, CAI_TRAIN_KEY_MQ, mq);
	shm_mq_set_receiver(mq, MyProc);
	if (job_id == 0)
	{
		/*
		 * A synchronous training reads its rows here, with this statement's
		 * snapshot (stream.c), in the order the worker reads them.
		 */
		rows_mq = shm_mq_create(shm_toc_allocate(toc, CAI_TRAIN_ROWS_SIZE), CAI_TRAIN_ROWS_SIZE);
		shm_toc_insert(toc, CAI_TRAIN_KEY_ROWS, rows_mq);
		shm_mq_set_sender(rows_mq, MyProc);
		launch->queries[launch->n_queries] = query;
		launch->whats[launch->n_queries++] = "source";
		if (!launch->vectors && valid_query[0] != '\0')
		{
			launch->queries[launch->n_queries] = valid_query;
			launch->whats[launch->n_queries++] = "validation source";
		}
		if (!launch->vectors && vector_set[0] == '\0' && vectors_query[0] != '\0')
		{
			launch->queries[launch->n_queries] = vectors_query;
			launch->whats[launch->n_queries++] = "word vectors";
		}
	}

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
	launch->rows_mqh = job_id > 0 ? NULL : shm_mq_attach(rows_mq, seg, handle);
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

/* How long an error waits for the training worker it stopped to exit. */
#define CAI_WORKER_EXIT_WAIT_MS 10000

/*
 * On ERROR or FATAL in a synchronous training: stop the worker and wait,
 * at most CAI_WORKER_EXIT_WAIT_MS, for it to exit, as an aborted parallel
 * query waits for its workers.  So when the error reaches the caller the
 * worker no longer holds its slot (cai.max_training_jobs), its memory or
 * its snapshot, and a retry right after the error is not refused as too
 * many jobs.  The worker checks for the stop between batches and steps;
 * the bound only keeps a worker stuck elsewhere from holding the error
 * back.  The postmaster sets this backend's latch when the worker stops
 * (bgw_notify_pid); no CHECK_FOR_INTERRUPTS here, in error cleanup.
 */
static void
CaiTerminateLaunchedWorker(int code, Datum arg)
{
	CaiLaunch  *launch = (CaiLaunch *) DatumGetPointer(arg);
	TimestampTz start = GetCurrentTimestamp();
	BgwHandleStatus status;
	pid_t		pid;

	if (launch->handle == NULL)
		return;
	TerminateBackgroundWorker(launch->handle);
	while ((status = GetBackgroundWorkerPid(launch->handle, &pid)) != BGWH_STOPPED &&
		   status != BGWH_POSTMASTER_DIED)
	{
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), CAI_WORKER_EXIT_WAIT_MS))
		{
			ereport(LOG,
					(errmsg("training worker did not exit within %d ms of being stopped",
							CAI_WORKER_EXIT_WAIT_MS)));
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
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

/*
 * Synchronous training: run the source queries with this statement's
 * snapshot and rights and send their rows to the worker (stream.c).  Stops
 * early when the worker has exited; CaiRunTrainingWorker then reports why.
 */
static void
CaiSendTrainingRows(CaiLaunch *launch, CaiTrainResult *res)
{
	for (int i = 0; i < launch->n_queries; i++)
		if (!CaiStreamQuery(launch->rows_mqh, launch->mqh, CaiOnWorkerMessage, res,
							launch->queries[i], launch->whats[i]))
			break;
}

/* cai_train, or cai_tune: train in a worker, wait, store the version in this transaction. */
static Datum
CaiTrainAndWait(FunctionCallInfo fcinfo, bool tune, bool pretrain)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaiLaunch	launch = {0};
	CaiTrainResult res = {0};
	int32		version;
	bool		deployed;
	Jsonb	   *metrics;

	if (CaiRunningTrainingWorkers() >= CaiSettingMaxTrainingJobs())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many training jobs are running"),
				 errdetail("cai.max_training_jobs is %d.", CaiSettingMaxTrainingJobs()),
				 errhint("Wait for a job to finish, or use cai_train_async, which queues.")));
	/* on ERROR and on FATAL (terminated or lost client): stop the worker */
	PG_ENSURE_ERROR_CLEANUP(CaiTerminateLaunchedWorker, PointerGetDatum(&launch));
	{
		CaiTrainLaunch(fcinfo, 0, tune, pretrain, &launch);
		CaiSendTrainingRows(&launch, &res);
		CaiRunTrainingWorker(launch.seg, launch.mqh, launch.handle, &res);
	}
	PG_END_ENSURE_ERROR_CLEANUP(CaiTerminateLaunchedWorker, PointerGetDatum(&launch));

	if (launch.vectors)
	{
		version = CaiVectorSetStore(launch.name, res.model);
		metrics = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(res.metrics_json)));
		deployed = false;
	}
	else
		version = CaiStoreTrainedModel(launch.name, res.model, res.metrics_json, res.history_json,
									   res.train_rows, res.skipped_rows, launch.deploy_policy,
									   &deployed, &metrics);
	pfree(res.model);
	dsm_detach(launch.seg);

	if (launch.vectors)
		ereport(NOTICE, (errmsg("vector set \"%s\" version %d is stored", launch.name, version)));
	else if (deployed)
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

PG_FUNCTION_INFO_V1(cai_train);
Datum
cai_train(PG_FUNCTION_ARGS)
{
	return CaiTrainAndWait(fcinfo, false, false);
}

/* cai_tune(model, task, source, input_column, label_column, search): see tune.c */
PG_FUNCTION_INFO_V1(cai_tune);
Datum
cai_tune(PG_FUNCTION_ARGS)
{
	return CaiTrainAndWait(fcinfo, true, false);
}

/* cai_train_async, or cai_tune_async: the job's id, at once. */
static int64
CaiStartJob(FunctionCallInfo fcinfo, bool tune, bool pretrain)
{
	CaiLaunch	launch = {0};
	int64		job_id;

	CaiCheckWritable("train a model");
	job_id = CaiNextJobId();

	CaiTrainLaunch(fcinfo, job_id, tune, pretrain, &launch);
	dsm_detach(launch.seg);
	return job_id;
}

/*
 * cai_pretrain and cai_pretrain_async (pretrain.c): fcinfo holds cai_train's
 * six arguments, task "encoder".
 */
Datum
CaiPretrainEntry(FunctionCallInfo fcinfo, bool async)
{
	if (async)
		PG_RETURN_INT64(CaiStartJob(fcinfo, false, true));
	return CaiTrainAndWait(fcinfo, false, true);
}

PG_FUNCTION_INFO_V1(cai_train_async);
Datum
cai_train_async(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(CaiStartJob(fcinfo, false, false));
}

PG_FUNCTION_INFO_V1(cai_tune_async);
Datum
cai_tune_async(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(CaiStartJob(fcinfo, true, false));
}
