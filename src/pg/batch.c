/*
 * batch.c: batched scoring of a whole query, cai_predict_query and
 * cai_entities_query.
 *
 * The caller's query is read through an SPI cursor with the caller's rights
 * (batch_size rows at a time, so memory is bounded by one batch), each batch
 * of inputs goes through the model interface in one call
 * (cai_model_classify_batch or cai_model_entities_batch: the architecture
 * turns it into matrix products where it can), and the result rows go to the
 * tuplestore.  The SQL layer does not know which architecture it runs.
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

/* One batch of the query's rows: keys (text form) and the non-NULL inputs. */
typedef struct CaiBatch
{
	uint64		n;				/* rows */
	char	  **keys;
	bool	   *missing;		/* input NULL */
	size_t		n_in;			/* non-NULL inputs, in row order */
	const char **texts;
	size_t	   *lens;
} CaiBatch;

/* Writes the result rows of one batch. */
typedef void (*CaiBatchWriter) (CaiLoadedModel *m, const CaiBatch *b, ReturnSetInfo *rsinfo);

/* The query's two columns: any key type (as its text form), a text input. */
static void
CaiCheckBatchColumns(TupleDesc desc, const char *function)
{
	Oid			input_type;

	if (desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query of %s must return two columns (key, input), not %d", function, desc->natts),
				 errhint("For example: SELECT id, body FROM reviews.")));
	input_type = SPI_gettypeid(desc, 2);
	if (input_type != TEXTOID && input_type != VARCHAROID && input_type != BPCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the second column of the query of %s must be text, not %s",
						function, format_type_be(input_type)),
				 errhint("Cast it: SELECT id, body::text FROM ...")));
}

static void
CaiBatchRead(SPITupleTable *tt, uint64 n, const char *function, CaiBatch *b)
{
	b->n = n;
	b->keys = palloc(sizeof(char *) * n);
	b->missing = palloc(sizeof(bool) * n);
	b->texts = palloc(sizeof(char *) * n);
	b->lens = palloc(sizeof(size_t) * n);
	b->n_in = 0;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		d;

		b->keys[i] = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
		if (b->keys[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the key column of the query of %s must not be NULL", function)));
		d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		b->missing[i] = isnull;
		if (!isnull)
		{
			text	   *t = DatumGetTextPP(d);

			CaiCheckInputLength(VARSIZE_ANY_EXHDR(t));
			b->texts[b->n_in] = VARDATA_ANY(t);
			b->lens[b->n_in] = VARSIZE_ANY_EXHDR(t);
			b->n_in++;
		}
	}
}

/* Text classification: (key, label, score), one classify_batch call. */
static void
CaiWriteClasses(CaiLoadedModel *m, const CaiBatch *b, ReturnSetInfo *rsinfo)
{
	float	   *probs = palloc_extended(sizeof(float) * Max(b->n_in, 1) * m->n_labels, MCXT_ALLOC_HUGE);
	cai_error	err = {0};
	cai_status	st;

	st = cai_model_classify_batch(m->model, b->texts, b->lens, b->n_in, probs, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "prediction failed");
	for (uint64 i = 0, j = 0; i < b->n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(b->keys[i]);
		if (b->missing[i])
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
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* The entities of a batch of texts (one entities_batch call); offsets: n_in + 1 entries. */
static cai_entity *
CaiBatchEntities(CaiLoadedModel *m, const CaiBatch *b, size_t **offsets)
{
	cai_entity *ents = NULL;
	cai_error	err = {0};
	cai_status	st;

	*offsets = palloc(sizeof(size_t) * (b->n_in + 1));
	st = cai_model_entities_batch(m->model, b->texts, b->lens, b->n_in, 0, &ents, *offsets, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "entity recognition failed");
	return ents;
}

/* A tagger in cai_predict_query: (key, the entities as cai_predict gives them (JSON), NULL score). */
static void
CaiWriteEntityArrays(CaiLoadedModel *m, const CaiBatch *b, ReturnSetInfo *rsinfo)
{
	size_t	   *off;
	cai_entity *ents = CaiBatchEntities(m, b, &off);

	for (uint64 i = 0, j = 0; i < b->n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, true};

		values[0] = CStringGetTextDatum(b->keys[i]);
		if (b->missing[i])
			nulls[1] = true;
		else
		{
			values[1] = PointerGetDatum(CaiEntitiesJson(m, b->texts[j], ents + off[j], off[j + 1] - off[j]));
			j++;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	cai_free(ents);
}

/* cai_entities_query: one row per entity (key, entity, label, start_pos, end_pos, score), as cai_entities. */
static void
CaiWriteEntityRows(CaiLoadedModel *m, const CaiBatch *b, ReturnSetInfo *rsinfo)
{
	size_t	   *off;
	cai_entity *ents = CaiBatchEntities(m, b, &off);

	for (uint64 i = 0, j = 0; i < b->n; i++)
	{
		if (b->missing[i])
			continue;
		for (size_t e = off[j]; e < off[j + 1]; e++)
		{
			const cai_entity *x = &ents[e];
			Datum		values[6];
			bool		nulls[6] = {false};

			values[0] = CStringGetTextDatum(b->keys[i]);
			values[1] = PointerGetDatum(cstring_to_text_with_len(b->texts[j] + x->start, x->end - x->start));
			values[2] = CStringGetTextDatum(m->labels[x->type]);
			values[3] = Int32GetDatum((int32) (x->cstart + 1));
			values[4] = Int32GetDatum((int32) x->cend);
			values[5] = Float4GetDatum(x->score);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		j++;
	}
	cai_free(ents);
}

/*
 * Run the query (arguments 1 and 2 of fcinfo: query text, batch_size) through
 * an SPI cursor with the caller's rights and hand each batch to write.
 */
static void
CaiRunBatches(FunctionCallInfo fcinfo, CaiLoadedModel *m, CaiBatchWriter write, const char *function)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		batch_size = PG_ARGISNULL(2) ? 256 : PG_GETARG_INT32(2);
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext batch_cxt;

	if (batch_size < CAI_BATCH_SIZE_MIN || batch_size > CAI_BATCH_SIZE_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between %d and %d, not %d",
						CAI_BATCH_SIZE_MIN, CAI_BATCH_SIZE_MAX, batch_size)));
	InitMaterializedSRF(fcinfo, 0);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "cai batch scoring", ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("could not prepare the query of %s: %s", function, SPI_result_code_string(SPI_result))));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("the query of %s must be a single SELECT (or VALUES) returning rows", function)));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	CaiCheckBatchColumns(portal->tupDesc, function);
	for (;;)
	{
		MemoryContext old;
		CaiBatch	b;
		uint64		start;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, batch_size);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(batch_cxt);
		CaiBatchRead(SPI_tuptable, SPI_processed, function, &b);
		start = CaiStatsClock();
		write(m, &b, rsinfo);
		CaiStatsAdd(m, start, b.n_in, 1);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_cxt);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

static CaiLoadedModel *
CaiBatchModel(FunctionCallInfo fcinfo, const char *function)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the model and the query of %s must not be NULL", function)));
	return CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
}

/*
 * cai_predict_query(model, query, batch_size): (key, label, score) for every
 * row (key, input) of query, batch_size rows at a time.  A tagger's label is
 * the JSON array of entities cai_predict gives, with a NULL score.
 */
PG_FUNCTION_INFO_V1(cai_predict_query);
Datum
cai_predict_query(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *m = CaiBatchModel(fcinfo, "cai_predict_query");

	if (cai_model_kind(m->model) == CAI_KIND_TAG)
		CaiRunBatches(fcinfo, m, CaiWriteEntityArrays, "cai_predict_query");
	else
	{
		CaiRequireKind(m, CAI_KIND_CLASSIFY, "cai_predict_query");
		CaiRunBatches(fcinfo, m, CaiWriteClasses, "cai_predict_query");
	}
	return (Datum) 0;
}

/*
 * cai_entities_query(model, query, batch_size): the entities of every row
 * (key, input) of query, one row each as cai_entities gives them, tagged
 * batch_size texts at a time.
 */
PG_FUNCTION_INFO_V1(cai_entities_query);
Datum
cai_entities_query(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *m = CaiBatchModel(fcinfo, "cai_entities_query");

	CaiRequireKind(m, CAI_KIND_TAG, "cai_entities_query");
	CaiRunBatches(fcinfo, m, CaiWriteEntityRows, "cai_entities_query");
	return (Datum) 0;
}
