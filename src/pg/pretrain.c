/*
 * pretrain.c: the SQL side of pretraining an encoder (cai_pretrain,
 * cai_pretrain_async; src/core/pretrain.c does the work).
 *
 * Pretraining is training of task "encoder" through the training machinery
 * of cai_train (train.c, train_worker.c), entered here only (cai_train
 * itself refuses encoders): the same worker, the caller's rows
 * streamed to it (synchronous) or read by the job, progress in cai_jobs,
 * cai_cancel, threads and cai.training_memory.  The registry's "bert"
 * architecture is imported, not trained, so its options come from the
 * pretraining table here instead of the model interface, and the worker
 * calls cai_pretrain_run.  The result is stored as a new version of an
 * encoder model, deployed when the name has no deployed version (as an
 * import).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "cai/pretrain.h"
#include "cai_pg.h"
#include "train.h"

/* Pretraining options (ERROR 22023 naming the valid ones). */
cai_options *
CaiPretrainOptions(const char *json)
{
	cai_options *o = NULL;
	cai_error	err = {0};
	cai_status	st;
	char		keys[1024];

	st = cai_options_parse(cai_pretrain_option_defs, cai_pretrain_n_option_defs, json, &o, &err);
	if (st != CAI_OK)
	{
		cai_options_valid_keys(cai_pretrain_option_defs, cai_pretrain_n_option_defs, keys, sizeof(keys));
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("invalid pretraining options: %s", err.msg),
				 errhint("Valid options: %s.", keys)));
	}
	return o;
}

/*
 * In the worker: pretrain on texts with the options json (the caller's,
 * with the training memory limit and the thread count merged in).
 */
void
CaiWorkerPretrain(const char *json, int threads, const cai_textclf_data *texts, CaiWorkerProgressState *ps,
				  CaiTrained *out)
{
	Jsonb	   *given = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	Jsonb	   *t = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													   CStringGetDatum(psprintf("{\"threads\": %d}", Max(threads, 1)))));
	Jsonb	   *merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(given), JsonbPGetDatum(t)));
	cai_options *opts = CaiPretrainOptions(JsonbToCString(NULL, &merged->root, 0));
	cai_error	err = {0};
	cai_status	st;

	st = cai_pretrain_run(opts, texts->texts, texts->lens, texts->n, CaiWorkerProgress, ps,
							  &out->model, &out->model_len, &out->metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, (int64) texts->n, 0, out);
	out->deploy_policy = "import";
	cai_options_free(opts);
}

/* cai_pretrain(name, source, input_column, options) as cai_train(name, 'encoder', source, input, input, options). */
static Datum
CaiPretrainCall(FunctionCallInfo fcinfo, bool async)
{
	LOCAL_FCINFO(inner, 6);

	InitFunctionCallInfoData(*inner, fcinfo->flinfo, 6, fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	inner->args[0] = fcinfo->args[0];
	inner->args[1].value = CStringGetTextDatum("encoder");
	inner->args[1].isnull = false;
	inner->args[2] = fcinfo->args[1];
	inner->args[3] = fcinfo->args[2];
	inner->args[4] = fcinfo->args[2];
	inner->args[5] = fcinfo->args[3];
	return CaiPretrainEntry(inner, async);
}

PG_FUNCTION_INFO_V1(cai_pretrain);
Datum
cai_pretrain(PG_FUNCTION_ARGS)
{
	return CaiPretrainCall(fcinfo, false);
}

PG_FUNCTION_INFO_V1(cai_pretrain_async);
Datum
cai_pretrain_async(PG_FUNCTION_ARGS)
{
	return CaiPretrainCall(fcinfo, true);
}
