/*
 * batch.c: batched scoring of a whole query, cai_predict_query.
 *
 * The caller's query is read through an SPI cursor with the caller's rights
 * (batch_size rows at a time, so memory is bounded by one batch), each batch
 * of inputs is classified with one call through the model interface
 * (cai_model_classify_batch: the architecture turns it into matrix products
 * where it can), and (key, label, score) rows go to the result tuplestore.
 * The SQL layer does not know which architecture it runs.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "cai_pg.h"

#define CAI_BATCH_SIZE_MIN 1
#define CAI_BATCH_SIZE_MAX 100000

/* The query's two columns: any key type (as its text form), a text input. */
static void
CaiCheckBatchColumns(TupleDesc desc)
{
	Oid			input_type;

	if (desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query of cai_predict_query must return two columns (key, input), not %d", desc->natts),
				 errhint("For example: SELECT id, body FROM reviews.")));
	input_type = SPI_gettypeid(desc, 2);
	if (input_type != TEXTOID && input_type != VARCHAROID && input_type != BPCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the second column of the query of cai_predict_query must be text, not %s",
						format_type_be(input_type)),
				 errhint("Cast it: SELECT id, body::text FROM ...")));
}

/* Classify one batch of rows and append (key, label, score) rows. */
static void
CaiScoreBatch(CaiLoadedModel *m, SPITupleTable *tt, uint64 n, Tuplestorestate *ts, TupleDesc out_desc)
{
	const char **texts = palloc(sizeof(char *) * n);
	size_t	   *lens = palloc(sizeof(size_t) * n);
	char	  **keys = palloc(sizeof(char *) * n);
	bool	   *missing = palloc(sizeof(bool) * n);
	size_t		n_in = 0;
	float	   *probs;
	cai_error	err = {0};
	cai_status	st;

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d;

		keys[i] = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		if (keys[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the key column of the query of cai_predict_query must not be NULL")));
		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		missing[i] = isnull;
		if (!isnull)
		{
			text	   *t = DatumGetTextPP(d);

			CaiCheckInputLength(VARSIZE_ANY_EXHDR(t));
			texts[n_in] = VARDATA_ANY(t);
			lens[n_in] = VARSIZE_ANY_EXHDR(t);
			n_in++;
		}
	}
	probs = palloc_extended(sizeof(float) * Max(n_in, 1) * m->n_labels, MCXT_ALLOC_HUGE);
	st = cai_model_classify_batch(m->model, texts, lens, n_in, probs, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "prediction failed");

	for (uint64 i = 0, j = 0; i < n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(keys[i]);
		if (missing[i])
			nulls[1] = nulls[2] = true;	/* like cai_predict: NULL in, NULL out */
		else
		{
			const float *p = probs + j++ * m->n_labels;
			int			best = 0;

			for (int c = 1; c < m->n_labels; c++)
				if (p[c] > p[best])
					best = c;
			values[1] = CStringGetTextDatum(m->labels[best]);
			values[2] = Float4GetDatum(p[best]);
		}
		tuplestore_putvalues(ts, out_desc, values, nulls);
	}
}

/*
 * cai_predict_query(model, query, batch_size): (key, label, score) for every
 * row (key, input) of query, classified batch_size rows at a time.
 */
PG_FUNCTION_INFO_V1(cai_predict_query);
Datum
cai_predict_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaiLoadedModel *m;
	char	   *query;
	int32		batch_size;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext batch_cxt;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the model and the query of cai_predict_query must not be NULL")));
	batch_size = PG_ARGISNULL(2) ? 256 : PG_GETARG_INT32(2);
	if (batch_size < CAI_BATCH_SIZE_MIN || batch_size > CAI_BATCH_SIZE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between %d and %d, not %d",
						CAI_BATCH_SIZE_MIN, CAI_BATCH_SIZE_MAX, batch_size)));
	m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	CaiRequireKind(m, CAI_KIND_CLASSIFY, "cai_predict_query");
	query = text_to_cstring(PG_GETARG_TEXT_PP(1));

	InitMaterializedSRF(fcinfo, 0);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "cai_predict_query batch", ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("could not prepare the query of cai_predict_query: %s", SPI_result_code_string(SPI_result))));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("the query of cai_predict_query must be a single SELECT (or VALUES) returning rows")));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	CaiCheckBatchColumns(portal->tupDesc);
	for (;;)
	{
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, batch_size);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(batch_cxt);
		CaiScoreBatch(m, SPI_tuptable, SPI_processed, rsinfo->setResult, rsinfo->setDesc);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	return (Datum) 0;
}
