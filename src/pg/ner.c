/*
 * ner.c: SQL functions of named-entity recognition models: cai_tag,
 * cai_entities, and the NER forms of cai_predict and cai_evaluate.
 *
 * Positions are 1-based character positions with the end inclusive, so
 * substr(input, start_pos, end_pos - start_pos + 1) = entity.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "cai_pg.h"

/* Most tokens cai_tag accepts in one array; raw text is bounded by cai.max_input_length. */
#define CAI_TAG_MAX_TOKENS	100000

static void
CaiNerCheck(CaiLoadedModel *m, const char *function)
{
	CaiRequireKind(m, CAI_KIND_TAG, function);
}

/* Entities of a raw text (cai_malloc'ed array). */
static cai_entity *
CaiNerFind(CaiLoadedModel *m, text *input, size_t *n)
{
	cai_entity *ents = NULL;
	cai_error	err = {0};
	cai_status	st;
	Size		len = VARSIZE_ANY_EXHDR(input);

	CaiCheckInputLength(len);
	st = cai_model_entities(m->model, VARDATA_ANY(input), len, 0, &ents, n, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "entity recognition failed");
	return ents;
}

/* cai_predict's answer for a tagger: the n entities ents of txt as a JSON array. */
text *
CaiEntitiesJson(CaiLoadedModel *m, const char *txt, const cai_entity *ents, size_t n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (size_t i = 0; i < n; i++)
	{
		char	   *s = pnstrdup(txt + ents[i].start, ents[i].end - ents[i].start);

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, "{\"entity\": ");
		escape_json(&buf, s);
		appendStringInfoString(&buf, ", \"label\": ");
		escape_json(&buf, m->labels[ents[i].type]);
		appendStringInfo(&buf, ", \"start\": " INT64_FORMAT ", \"end\": " INT64_FORMAT ", \"score\": %.4f}",
						 ents[i].cstart + 1, ents[i].cend, ents[i].score);
		pfree(s);
	}
	appendStringInfoChar(&buf, ']');
	return cstring_to_text_with_len(buf.data, buf.len);
}

Datum
CaiNerPredictJson(CaiLoadedModel *m, text *input)
{
	size_t		n = 0;
	cai_entity *ents = CaiNerFind(m, input, &n);
	text	   *result = CaiEntitiesJson(m, VARDATA_ANY(input), ents, n);

	cai_free(ents);
	PG_RETURN_TEXT_P(result);
}

PG_FUNCTION_INFO_V1(cai_entities);
Datum
cai_entities(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *input = PG_GETARG_TEXT_PP(1);
	CaiLoadedModel *m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	size_t		n = 0;
	cai_entity *ents;
	const char *txt = VARDATA_ANY(input);

	uint64		start = CaiStatsStart(m);

	CaiNerCheck(m, "cai_entities");
	ents = CaiNerFind(m, input, &n);
	CaiStatsAdd(m, start, 1, CAI_STATS_SAMPLE);
	InitMaterializedSRF(fcinfo, 0);
	for (size_t i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {0};

		values[0] = PointerGetDatum(cstring_to_text_with_len(txt + ents[i].start, ents[i].end - ents[i].start));
		values[1] = CStringGetTextDatum(m->labels[ents[i].type]);
		values[2] = Int32GetDatum((int32) (ents[i].cstart + 1));
		values[3] = Int32GetDatum((int32) ents[i].cend);
		values[4] = Float4GetDatum(ents[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	cai_free(ents);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(cai_tag);
Datum
cai_tag(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
	CaiLoadedModel *m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	const char **toks;
	size_t	   *lens;
	const char **tags;
	Datum	   *out;
	cai_error	err = {0};
	cai_status	st;

	CaiNerCheck(m, "cai_tag");
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("tokens must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));
	if (n > CAI_TAG_MAX_TOKENS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many tokens: %d (limit %d)", n, CAI_TAG_MAX_TOKENS),
				 errhint("Split the text into sentences, or use cai_entities on the raw text.")));
	toks = palloc(sizeof(char *) * n);
	lens = palloc(sizeof(size_t) * n);
	tags = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		text	   *t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("token %d is NULL", i + 1)));
		t = DatumGetTextPP(elems[i]);
		toks[i] = VARDATA_ANY(t);
		lens[i] = VARSIZE_ANY_EXHDR(t);
		CHECK_FOR_INTERRUPTS();
	}
	{
		uint64		start = CaiStatsStart(m);

		st = cai_model_tag(m->model, toks, lens, n, tags, NULL, &err);
		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "tagging failed");
		CaiStatsAdd(m, start, 1, CAI_STATS_SAMPLE);
	}
	out = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		out[i] = CStringGetTextDatum(tags[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * cai_evaluate on an NER model: entity-level precision, recall and F1 (micro
 * and per type) and token accuracy, counted as conlleval counts them.
 */
Datum
CaiNerEvaluate(FunctionCallInfo fcinfo, CaiLoadedModel *m)
{
	CaiNerRows	rows = {0};
	cai_ner_data data;
	const char **toks = NULL;
	size_t	   *lens = NULL;
	int64		cap = 0;
	char	   *query;
	const char **pred;
	char	   *json = NULL;
	cai_error	err = {0};
	cai_status	st;
	Jsonb	   *result;

	query = CaiSourceQuery(text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   text_to_cstring(PG_GETARG_TEXT_PP(2)),
						   text_to_cstring(PG_GETARG_TEXT_PP(3)), NULL, NULL);
	MemoryContext caller_cxt = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	CaiReadNerRows(query, &rows, caller_cxt, "source");
	SPI_finish();
	if (rows.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the evaluation source has no usable rows"),
				 errdetail(INT64_FORMAT " rows were skipped because the input or the label is NULL.", rows.skipped)));
	pred = palloc_extended(sizeof(char *) * rows.ntok, MCXT_ALLOC_HUGE);
	CaiNerRowsData(&rows, &data);
	for (int64 s = 0; s < rows.n; s++)
	{
		int64		a = rows.offsets[s];
		int64		b = rows.offsets[s + 1];

		/* the sentence's tokens as strings (the rows keep ids) */
		if (b - a > cap)
		{
			cap = Max(b - a, 2 * cap);
			toks = toks == NULL ? palloc(sizeof(char *) * cap) : repalloc(toks, sizeof(char *) * cap);
			lens = lens == NULL ? palloc(sizeof(size_t) * cap) : repalloc(lens, sizeof(size_t) * cap);
		}
		for (int64 t = a; t < b; t++)
			toks[t - a] = cai_ner_data_token(&data, t, &lens[t - a]);
		st = cai_model_tag(m->model, toks, lens, b - a, pred + a, NULL, &err);
		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "tagging failed");
		CHECK_FOR_INTERRUPTS();
	}
	st = cai_conll_eval(rows.offsets, rows.n, CaiNerTagStrings(&rows), pred, &json, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "evaluation failed");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	cai_free(json);
	{
		char	   *extra = psprintf("{\"version\": %d, \"sentences\": " INT64_FORMAT ", \"skipped_rows\": " INT64_FORMAT "}",
									 m->version, rows.n, rows.skipped);

		result = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(result),
													DirectFunctionCall1(jsonb_in, CStringGetDatum(extra))));
	}
	PG_RETURN_JSONB_P(result);
}

/*
 * cai_conlleval(gold text[], predicted text[]): an aggregate that scores tag
 * sequences (one row per sentence) exactly as cai_evaluate does, for
 * predictions made by any tagger.
 */
typedef struct CaiConllState
{
	CaiNerRows	gold;			/* offsets of the sentences (tokens and tag ids unused) */
	char	  **gold_tags;		/* (gold.ntok) the gold tags */
	char	  **pred;
	int64		predcap;
} CaiConllState;

PG_FUNCTION_INFO_V1(cai_conlleval_transfn);
Datum
cai_conlleval_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	MemoryContext old;
	CaiConllState *st;
	Datum	   *g;
	Datum	   *p;
	bool	   *gn;
	bool	   *pn;
	int			ng;
	int			np;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "cai_conlleval_transfn called in non-aggregate context");
	st = PG_ARGISNULL(0) ? NULL : (CaiConllState *) PG_GETARG_POINTER(0);
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_POINTER(st);
	old = MemoryContextSwitchTo(aggcxt);
	if (st == NULL)
		st = palloc0(sizeof(CaiConllState));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &g, &gn, &ng);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &p, &pn, &np);
	if (ng != np)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sentence " INT64_FORMAT " has %d gold tags but %d predicted tags", st->gold.n + 1, ng, np)));
	if (st->gold.cap == 0)
	{
		st->gold.cap = 256;
		st->gold.offsets = palloc(sizeof(int64) * (st->gold.cap + 1));
		st->gold.offsets[0] = 0;
	}
	else if (st->gold.n + 1 >= st->gold.cap)
	{
		st->gold.cap *= 2;
		st->gold.offsets = repalloc_huge(st->gold.offsets, sizeof(int64) * (st->gold.cap + 1));
	}
	if (st->gold.ntok + ng > st->predcap)
	{
		int64		cap = Max(st->predcap * 2, st->gold.ntok + ng + 1024);

		st->gold_tags = st->predcap ? repalloc_huge(st->gold_tags, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
		st->pred = st->predcap ? repalloc_huge(st->pred, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
		st->predcap = cap;
	}
	for (int i = 0; i < ng; i++)
	{
		if (gn[i] || pn[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("sentence " INT64_FORMAT ": tag %d is NULL", st->gold.n + 1, i + 1)));
		st->gold_tags[st->gold.ntok] = TextDatumGetCString(g[i]);
		st->pred[st->gold.ntok] = TextDatumGetCString(p[i]);
		st->gold.ntok++;
	}
	st->gold.offsets[++st->gold.n] = st->gold.ntok;
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(st);
}

PG_FUNCTION_INFO_V1(cai_conlleval_finalfn);
Datum
cai_conlleval_finalfn(PG_FUNCTION_ARGS)
{
	CaiConllState *st = PG_ARGISNULL(0) ? NULL : (CaiConllState *) PG_GETARG_POINTER(0);
	char	   *json = NULL;
	cai_error	err = {0};
	cai_status	s;
	Jsonb	   *result;

	if (st == NULL || st->gold.n == 0)
		PG_RETURN_NULL();
	s = cai_conll_eval(st->gold.offsets, st->gold.n, (const char *const *) st->gold_tags,
					   (const char *const *) st->pred, &json, &err);
	if (s != CAI_OK)
		CaiReportCoreError(s, &err, "evaluation failed");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	cai_free(json);
	PG_RETURN_JSONB_P(result);
}

/*
 * cai_tag_batch(model, sentences jsonb): tag many sentences in one call, so
 * that they go through the BiLSTM in batches of matrix products:
 * [["Ann", "met", "Bob"], ["In", "Rome"]] -> [["B-PER", "O", "B-PER"], ["O", "B-LOC"]].
 * Aggregate rows into one call with jsonb_agg(to_jsonb(tokens)).
 */
PG_FUNCTION_INFO_V1(cai_tag_batch);
Datum
cai_tag_batch(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(1);
	CaiLoadedModel *m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	int64		n_sent;
	int64		ntok = 0;
	int64	   *offsets;
	const char **toks;
	size_t	   *lens;
	const char **tags;
	cai_ner_data data = {0};
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			depth = 0;
	int64		s = 0;
	cai_error	err = {0};
	cai_status	st;
	StringInfoData out;

	CaiNerCheck(m, "cai_tag_batch");
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sentences must be a JSON array of arrays of token strings")));
	n_sent = JB_ROOT_COUNT(jb);
	offsets = palloc(sizeof(int64) * (n_sent + 1));
	/* first pass: count tokens and check the shape */
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_ARRAY)
			depth--;
		else if (tok == WJB_ELEM && depth == 2 && v.type == jbvString)
			ntok++;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sentences must be a JSON array of arrays of token strings"),
					 errdetail("Found a JSON value other than a string token at depth %d.", depth)));
		if (depth > 2)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("sentences must be a JSON array of arrays of token strings")));
	}
	if (ntok > CAI_TAG_MAX_TOKENS * 10)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many tokens in one batch: " INT64_FORMAT " (limit %d)", ntok, CAI_TAG_MAX_TOKENS * 10),
				 errhint("Tag smaller batches.")));
	toks = palloc(sizeof(char *) * Max(ntok, 1));
	lens = palloc(sizeof(size_t) * Max(ntok, 1));
	tags = palloc(sizeof(char *) * Max(ntok, 1));
	/* second pass: collect */
	ntok = 0;
	offsets[0] = 0;
	it = JsonbIteratorInit(&jb->root);
	depth = 0;
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_ARRAY)
		{
			if (depth == 2)
				offsets[++s] = ntok;
			depth--;
		}
		else if (tok == WJB_ELEM)
		{
			toks[ntok] = v.val.string.val;
			lens[ntok] = v.val.string.len;
			ntok++;
		}
	}
	data.n = s;
	data.offsets = offsets;
	data.tokens = toks;
	data.token_lens = lens;
	if (ntok > 0)
	{
		uint64		start = CaiStatsClock();

		st = cai_model_tag_batch(m->model, &data, tags, NULL, &err);
		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "tagging failed");
		CaiStatsAdd(m, start, (uint64) data.n, 1);
	}
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	for (int64 i = 0; i < s; i++)
	{
		appendStringInfoString(&out, i > 0 ? ", [" : "[");
		for (int64 k = offsets[i]; k < offsets[i + 1]; k++)
		{
			if (k > offsets[i])
				appendStringInfoString(&out, ", ");
			escape_json(&out, tags[k]);
		}
		appendStringInfoChar(&out, ']');
	}
	appendStringInfoChar(&out, ']');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
