/*
 * drift.c: does new input still look like what a model was trained on?
 *
 * Written once for every architecture: it sees a model only through the
 * registry's observation (cai_model_observe_*, src/core/observe.c), which
 * gives per input its length in tokens and how many of them the model's
 * vocabulary lacks, and per prediction (an input's class, or a token's
 * entity type or O) its category and probability.
 *
 * At training, the worker observes the new model on the validation rows
 * (those the trainer held out, as cai_arch_validation_mask finds them
 * again, or the validation source; up to CAI_DRIFT_ROWS, evenly spaced) and
 * keeps four distributions with the version's metrics ("drift_reference"):
 * input length (ten bins cut at the validation deciles), the share of
 * unseen words per input (fixed bins), the predicted categories, and the
 * confidence (fixed bins).  cai_drift(model, source) observes up to
 * CAI_DRIFT_ROWS rows of a table or query with the deployed version and
 * compares each distribution with the population stability index,
 * PSI = sum (a - e) ln(a / e) over the bins (proportions floored at 1e-4),
 * with the usual reading: below 0.1 stable, below 0.25 a moderate shift,
 * else a significant shift.  A statistic the version did not keep (versions
 * trained before it existed, imported versions) is listed as unavailable.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "cai_pg.h"

#define CAI_DRIFT_ROWS 5000
#define CAI_DRIFT_BINS 10
#define CAI_DRIFT_EPS 1e-4

static const double confidence_edges[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99};
#define N_CONF ((int) lengthof(confidence_edges) + 1)

/* share of an input's tokens that the vocabulary lacks: 0, then up to each edge, then above */
static const double unseen_edges[] = {0.0, 0.05, 0.1, 0.2, 0.35, 0.5};
#define N_UNSEEN ((int) lengthof(unseen_edges) + 1)

/* the statistics, in report order */
static const char *const statistic_names[] = {"input_length", "unseen_words", "predicted_labels", "confidence"};
#define N_STATISTICS ((int) lengthof(statistic_names))

/* bin of x among ascending edges: 0..n_edges */
static int
CaiDriftBin(double x, const double *edges, int n_edges)
{
	int			b = 0;

	while (b < n_edges && x > edges[b])
		b++;
	return b;
}

static int
CaiCompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
CaiUnseenShare(const cai_observation *o, size_t i)
{
	return o->tokens[i] > 0 ? (double) o->unseen[i] / (double) o->tokens[i] : 0.0;
}

/* The distributions of an observation, as proportions. */
typedef struct CaiDriftDist
{
	double		length[CAI_DRIFT_BINS];
	double		unseen[N_UNSEEN];
	double		length_mean;	/* tokens per input */
	double		unseen_rate;	/* unseen tokens / tokens */
	double	   *categories;		/* (cai_model_n_categories) */
	double		confidence[N_CONF];
	bool		has_unseen;
} CaiDriftDist;

static void
CaiDriftDistribute(cai_model *m, const cai_observation *o, const double *length_edges, CaiDriftDist *d)
{
	int			n_cat = cai_model_n_categories(m);
	double		tokens = 0.0,
				unseen = 0.0;

	memset(d, 0, sizeof(*d));
	d->categories = palloc0(sizeof(double) * n_cat);
	d->has_unseen = o->unseen != NULL;
	for (size_t i = 0; i < o->n; i++)
	{
		d->length[CaiDriftBin(o->tokens[i], length_edges, CAI_DRIFT_BINS - 1)] += 1.0 / o->n;
		tokens += o->tokens[i];
		if (d->has_unseen)
		{
			d->unseen[CaiDriftBin(CaiUnseenShare(o, i), unseen_edges, N_UNSEEN - 1)] += 1.0 / o->n;
			unseen += o->unseen[i];
		}
	}
	d->length_mean = o->n > 0 ? tokens / o->n : 0.0;
	d->unseen_rate = tokens > 0 ? unseen / tokens : 0.0;
	for (size_t i = 0; i < o->n_out; i++)
	{
		d->categories[o->category[i]] += 1.0 / o->n_out;
		d->confidence[CaiDriftBin(o->confidence[i], confidence_edges, N_CONF - 1)] += 1.0 / o->n_out;
	}
}

static void
CaiPutArray(StringInfo s, const char *key, const double *v, int n)
{
	appendStringInfo(s, ", \"%s\": [", key);
	for (int i = 0; i < n; i++)
		appendStringInfo(s, "%s%.17g", i > 0 ? ", " : "", v[i]);
	appendStringInfoChar(s, ']');
}

/* The category proportions as {"name": share, ...} after ", key: ". */
static void
CaiPutCategories(StringInfo s, const char *key, cai_model *m, const double *share)
{
	appendStringInfo(s, ", \"%s\": {", key);
	for (int c = 0; c < cai_model_n_categories(m); c++)
	{
		appendStringInfoString(s, c > 0 ? ", " : "");
		escape_json(s, cai_model_category(m, c));
		appendStringInfo(s, ": %.17g", share[c]);
	}
	appendStringInfoChar(s, '}');
}

/* Observe rows rows of set (texts or sentences, whichever it holds) under m; false on a core error. */
static bool
CaiDriftObserveRows(cai_model *m, const cai_textclf_data *texts, const cai_ner_data *sentences,
					const size_t *rows, size_t k, cai_observation *o, cai_error *err)
{
	if (texts != NULL)
	{
		const char **t = palloc(sizeof(char *) * (k + 1));
		size_t	   *l = palloc(sizeof(size_t) * (k + 1));

		for (size_t i = 0; i < k; i++)
		{
			if (texts->tokens != NULL)
			{
				/* rows kept as token ids: their tokens joined by spaces tokenize to the same tokens */
				char	   *buf = NULL;
				size_t		cap = 0;

				l[i] = cai_textclf_tokens_text(texts->tokens, rows[i], &buf, &cap);
				if (l[i] == (size_t) -1)
					return cai_error_set(err, CAI_ERR_NOMEM, "out of memory") == CAI_OK;
				t[i] = buf;
			}
			else
			{
				t[i] = texts->texts[rows[i]];
				l[i] = texts->lens[rows[i]];
			}
		}
		return cai_model_observe_texts(m, t, l, k, o, err) == CAI_OK;
	}
	else
	{
		int64	   *off = palloc(sizeof(int64) * (k + 1));
		int64		ntok = 0;
		const char **tok;
		size_t	   *tl;
		cai_ner_data d = {0};

		for (size_t i = 0; i < k; i++)
			ntok += sentences->offsets[rows[i] + 1] - sentences->offsets[rows[i]];
		tok = palloc_extended(sizeof(char *) * (ntok + 1), MCXT_ALLOC_HUGE);
		tl = palloc_extended(sizeof(size_t) * (ntok + 1), MCXT_ALLOC_HUGE);
		off[0] = 0;
		for (size_t i = 0; i < k; i++)
		{
			int64		a = sentences->offsets[rows[i]];
			int64		b = sentences->offsets[rows[i] + 1];

			/* the sampled sentences' tokens as strings (the training data may keep ids) */
			for (int64 t = a; t < b; t++)
				tok[off[i] + t - a] = cai_ner_data_token(sentences, t, &tl[off[i] + t - a]);
			off[i + 1] = off[i] + (b - a);
		}
		d.n = k;
		d.offsets = off;
		d.tokens = tok;
		d.token_lens = tl;
		return cai_model_observe_sentences(m, &d, o, err) == CAI_OK;
	}
}

/*
 * Up to max of the rows 0..n-1 whose flag (flags NULL: every row) equals
 * want, evenly spaced, into *rows; returns how many.
 */
static size_t
CaiDriftSample(const bool *flags, bool want, size_t n, size_t max, size_t **rows)
{
	size_t	   *pool = palloc(sizeof(size_t) * (n + 1));
	size_t		n_pool = 0;
	size_t		k;

	for (size_t i = 0; i < n; i++)
		if (flags == NULL || flags[i] == want)
			pool[n_pool++] = i;
	k = Min(n_pool, max);
	*rows = palloc(sizeof(size_t) * (k + 1));
	for (size_t i = 0; i < k; i++)
		(*rows)[i] = pool[(size_t) ((double) i * (double) n_pool / (double) k)];
	pfree(pool);
	return k;
}

/*
 * The reference statistics of a freshly trained model (bytes, architecture
 * arch, options opts, data set) as JSON text ("{...}"), or NULL when they
 * cannot be computed (the training itself stands).  What depends on the
 * model (unseen words, predictions, confidence) is observed on the
 * validation rows: the validation source's, else those training held out,
 * else (validation_fraction 0) the training rows.  Input length does not
 * depend on the model: when there are fewer than CAI_DRIFT_ROWS validation
 * rows, training rows fill the length sample up to it, so that a small
 * validation split does not give a noisy length reference.
 */
char *
CaiDriftReference(const uint8 *bytes, size_t len, const cai_arch *arch, const cai_options *opts,
				  const cai_train_set *set)
{
	cai_model  *m = NULL;
	cai_error	err = {0};
	bool		from_texts = set->texts != NULL;
	bool		has_source = from_texts ? set->valid_texts != NULL : set->valid_sentences != NULL;
	size_t		n_train = from_texts ? set->texts->n : set->sentences->n;
	size_t		n_valid = has_source ? (from_texts ? set->valid_texts->n : set->valid_sentences->n) : n_train;
	const char *split = has_source ? "validation_source" : "validation";
	bool	   *is_valid = NULL;
	size_t	   *rows;
	size_t	   *more_rows = NULL;
	size_t		k,
				k_more = 0;
	cai_observation o = {0};
	cai_observation more = {0};
	bool		ok;
	double	   *lengths;
	double		edges[CAI_DRIFT_BINS - 1];
	CaiDriftDist d;
	StringInfoData out;

	if (n_train == 0 || cai_model_load(bytes, len, false, false, &m, &err) != CAI_OK)
		return NULL;
	if (!has_source)
	{
		is_valid = palloc0(sizeof(bool) * (n_train + 1));
		if (cai_arch_validation_mask(arch, opts, set, is_valid, &err) != CAI_OK)
		{
			elog(LOG, "cai_synergy: no drift reference: %s", err.msg);
			cai_model_free(m);
			return NULL;
		}
	}
	k = CaiDriftSample(is_valid, true, n_valid, CAI_DRIFT_ROWS, &rows);
	if (k == 0)
	{
		/* validation_fraction 0: the last epoch was kept without validation rows */
		is_valid = NULL;
		split = "training";
		k = CaiDriftSample(NULL, true, n_train, CAI_DRIFT_ROWS, &rows);
	}
	else if (k < CAI_DRIFT_ROWS)
		k_more = CaiDriftSample(is_valid, false, n_train, CAI_DRIFT_ROWS - k, &more_rows);
	if (has_source)
		ok = CaiDriftObserveRows(m, set->valid_texts, set->valid_sentences, rows, k, &o, &err);
	else
		ok = CaiDriftObserveRows(m, set->texts, set->sentences, rows, k, &o, &err);
	if (ok && k_more > 0)
		ok = CaiDriftObserveRows(m, set->texts, set->sentences, more_rows, k_more, &more, &err);
	if (!ok)
	{
		elog(LOG, "cai_synergy: no drift reference: %s", err.msg);
		cai_observation_free(&o);
		cai_observation_free(&more);
		cai_model_free(m);
		return NULL;
	}

	/* length bins cut at the deciles of the reference lengths */
	lengths = palloc(sizeof(double) * (k + k_more));
	for (size_t i = 0; i < k; i++)
		lengths[i] = o.tokens[i];
	for (size_t i = 0; i < k_more; i++)
		lengths[k + i] = more.tokens[i];
	qsort(lengths, k + k_more, sizeof(double), CaiCompareDouble);
	for (int b = 0; b < CAI_DRIFT_BINS - 1; b++)
		edges[b] = lengths[Min(k + k_more - 1, (size_t) (b + 1) * (k + k_more) / CAI_DRIFT_BINS)];
	CaiDriftDistribute(m, &o, edges, &d);
	memset(d.length, 0, sizeof(d.length));
	d.length_mean = 0.0;
	for (size_t i = 0; i < k + k_more; i++)
	{
		d.length[CaiDriftBin(lengths[i], edges, CAI_DRIFT_BINS - 1)] += 1.0 / (k + k_more);
		d.length_mean += lengths[i] / (k + k_more);
	}

	initStringInfo(&out);
	appendStringInfo(&out, "{\"rows\": %zu, \"split\": \"%s\", \"predictions\": %zu, \"length_rows\": %zu",
					 k, split, o.n_out, k + k_more);
	CaiPutArray(&out, "length_edges", edges, CAI_DRIFT_BINS - 1);
	CaiPutArray(&out, "length", d.length, CAI_DRIFT_BINS);
	appendStringInfo(&out, ", \"length_mean\": %.17g", d.length_mean);
	if (d.has_unseen)
	{
		CaiPutArray(&out, "unseen", d.unseen, N_UNSEEN);
		appendStringInfo(&out, ", \"unseen_rate\": %.17g", d.unseen_rate);
	}
	CaiPutCategories(&out, "labels", m, d.categories);
	CaiPutArray(&out, "confidence", d.confidence, N_CONF);
	appendStringInfoChar(&out, '}');
	cai_observation_free(&o);
	cai_observation_free(&more);
	cai_model_free(m);
	return out.data;
}

static double
CaiPsi(const double *expected, const double *actual, int n)
{
	double		psi = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		e = Max(expected[i], CAI_DRIFT_EPS);
		double		a = Max(actual[i], CAI_DRIFT_EPS);

		psi += (a - e) * log(a / e);
	}
	return psi;
}

static const char *
CaiPsiVerdict(double psi)
{
	return psi < 0.1 ? "stable" : psi < 0.25 ? "moderate shift" : "significant shift";
}

/* A member of a jsonb object container, NULL if absent. */
static JsonbValue *
CaiJsonbMember(JsonbContainer *c, const char *key)
{
	return c != NULL ? getKeyJsonValueFromContainer(c, key, strlen(key), NULL) : NULL;
}

static double
CaiJsonbNumberValue(JsonbValue *v)
{
	return v != NULL && v->type == jbvNumeric ?
		DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric))) : 0.0;
}

/* n numbers of the array member key of c into out; false if it is not such an array */
static bool
CaiJsonbDoubles(JsonbContainer *c, const char *key, double *out, int n)
{
	JsonbValue *a = CaiJsonbMember(c, key);

	if (a == NULL || a->type != jbvBinary || !JsonContainerIsArray(a->val.binary.data) ||
		JsonContainerSize(a->val.binary.data) != (uint32) n)
		return false;
	for (int i = 0; i < n; i++)
		out[i] = CaiJsonbNumberValue(getIthJsonbValueFromContainer(a->val.binary.data, i));
	return true;
}

/* The object member key of c, NULL if absent or not an object. */
static JsonbContainer *
CaiJsonbObject(JsonbContainer *c, const char *key)
{
	JsonbValue *v = CaiJsonbMember(c, key);

	return v != NULL && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data) ?
		v->val.binary.data : NULL;
}

/* The rows read from a drift source: texts, or sentences of tokens. */
typedef struct CaiDriftRows
{
	bool		sentences;
	size_t		n;
	int64		skipped;		/* NULL inputs, or token arrays with a NULL element */
	char	  **texts;			/* (n) */
	size_t	   *lens;
	int64	   *offsets;		/* (n + 1) sentences */
	char	  **tokens;
	size_t	   *token_lens;
	int64		ntok;
	int64		tokcap;
} CaiDriftRows;

static void
CaiDriftAddSentence(CaiDriftRows *r, ArrayType *arr, MemoryContext keep)
{
	Datum	   *elems;
	bool	   *nulls;
	int			k;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("a sentence must be a one-dimensional array of tokens")));
	deconstruct_array(arr, ARR_ELEMTYPE(arr), -1, false, TYPALIGN_INT, &elems, &nulls, &k);
	for (int i = 0; i < k; i++)
		if (nulls[i])
		{
			r->skipped++;
			return;
		}
	if (r->ntok + k > r->tokcap)
	{
		int64		cap = Max(r->tokcap * 2, r->ntok + k + 1024);

		r->tokens = repalloc_huge(r->tokens, sizeof(char *) * cap);
		r->token_lens = repalloc_huge(r->token_lens, sizeof(size_t) * cap);
		r->tokcap = cap;
	}
	for (int i = 0; i < k; i++)
	{
		text	   *t = DatumGetTextPP(elems[i]);
		size_t		len = VARSIZE_ANY_EXHDR(t);

		CaiCheckInputLength(len);
		r->tokens[r->ntok + i] = MemoryContextAlloc(keep, len + 1);
		memcpy(r->tokens[r->ntok + i], VARDATA_ANY(t), len);
		r->tokens[r->ntok + i][len] = '\0';
		r->token_lens[r->ntok + i] = len;
	}
	r->ntok += k;
	r->offsets[++r->n] = r->ntok;
}

/*
 * Up to CAI_DRIFT_ROWS rows of the source's input column, read with the
 * caller's rights: texts (text, varchar, char and domains over them) or
 * token arrays (text[], varchar[]).
 */
static void
CaiDriftRead(const char *source, const char *input_column, CaiDriftRows *r)
{
	MemoryContext keep = CurrentMemoryContext;
	SPIPlanPtr	plan;
	Portal		portal;
	Oid			type;

	memset(r, 0, sizeof(*r));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(CaiSourceQuery(source, input_column, NULL, NULL, NULL), 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("could not prepare the source query: %s", SPI_result_code_string(SPI_result))));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	type = getBaseType(TupleDescAttr(portal->tupDesc, 0)->atttypid);
	if (type == TEXTARRAYOID || type == VARCHARARRAYOID)
		r->sentences = true;
	else if (type != TEXTOID && type != VARCHAROID && type != BPCHAROID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of the drift source is of type %s", input_column, format_type_be(type)),
				 errdetail("cai_drift reads texts (text, varchar) or sentences of tokens (text[])."),
				 errhint("Cast the column in a query, e.g. 'SELECT body::text AS %s FROM ...'.", input_column)));
	if (r->sentences)
	{
		r->offsets = MemoryContextAllocZero(keep, sizeof(int64) * (CAI_DRIFT_ROWS + 1));
		r->tokens = MemoryContextAlloc(keep, sizeof(char *));
		r->token_lens = MemoryContextAlloc(keep, sizeof(size_t));
	}
	else
	{
		r->texts = MemoryContextAlloc(keep, sizeof(char *) * CAI_DRIFT_ROWS);
		r->lens = MemoryContextAlloc(keep, sizeof(size_t) * CAI_DRIFT_ROWS);
	}
	while (r->n < CAI_DRIFT_ROWS)
	{
		SPI_cursor_fetch(portal, true, Min(1000, CAI_DRIFT_ROWS - r->n));
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && r->n < CAI_DRIFT_ROWS; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			MemoryContext spi = MemoryContextSwitchTo(keep);

			if (isnull)
				r->skipped++;
			else if (r->sentences)
				CaiDriftAddSentence(r, DatumGetArrayTypeP(d), keep);
			else
			{
				text	   *t = DatumGetTextPP(d);
				size_t		len = VARSIZE_ANY_EXHDR(t);

				CaiCheckInputLength(len);
				r->lens[r->n] = len;
				r->texts[r->n] = palloc(len + 1);
				memcpy(r->texts[r->n], VARDATA_ANY(t), len);
				r->texts[r->n][len] = '\0';
				r->n++;
			}
			MemoryContextSwitchTo(spi);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	if (r->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the source has no rows to compare"),
				 errdetail(INT64_FORMAT " rows were skipped because the input is NULL or holds a NULL token.",
						   r->skipped)));
}

static void
CaiPutStatistic(StringInfo s, const char *name, double psi, const char *extra, bool *first)
{
	appendStringInfo(s, "%s\"%s\": {\"psi\": %.6f, \"verdict\": \"%s\"%s}", *first ? "" : ", ", name, psi,
					 CaiPsiVerdict(psi), extra);
	*first = false;
}

/* cai_drift(model, source, input_column): the deployed version's validation inputs against new ones */
PG_FUNCTION_INFO_V1(cai_drift);
Datum
cai_drift(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *lm = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	char	   *source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *input_column = text_to_cstring(PG_GETARG_TEXT_PP(2));	/* STRICT */
	int			n_cat = cai_model_n_categories(lm->model);
	CaiModelRow row;
	JsonbContainer *ref = NULL;
	CaiDriftRows rows;
	cai_observation o = {0};
	cai_error	err = {0};
	cai_status	st;
	double		edges[CAI_DRIFT_BINS - 1];
	double		ref_len[CAI_DRIFT_BINS];
	double		ref_unseen[N_UNSEEN];
	double		ref_conf[N_CONF];
	double	   *ref_cat = palloc0(sizeof(double) * n_cat);
	bool		have[N_STATISTICS] = {0};
	double		psi[N_STATISTICS] = {0};
	CaiDriftDist d;
	StringInfoData out;
	bool		first = true;
	int			n_have = 0;
	double		worst = 0.0;

	if (!CaiCatalogFetch(lm->name, lm->version, false, &row))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("model \"%s\" does not exist", lm->name)));
	if (row.metrics != NULL)
		ref = CaiJsonbObject(&row.metrics->root, "drift_reference");

	/* what the version kept: each statistic is compared when its reference is complete */
	have[0] = CaiJsonbDoubles(ref, "length_edges", edges, CAI_DRIFT_BINS - 1) &&
		CaiJsonbDoubles(ref, "length", ref_len, CAI_DRIFT_BINS);
	have[1] = cai_model_has_vocabulary(lm->model) && CaiJsonbDoubles(ref, "unseen", ref_unseen, N_UNSEEN);
	if (CaiJsonbObject(ref, "labels") != NULL)
	{
		JsonbContainer *l = CaiJsonbObject(ref, "labels");

		have[2] = true;
		for (int c = 0; c < n_cat; c++)
			ref_cat[c] = CaiJsonbNumberValue(CaiJsonbMember(l, cai_model_category(lm->model, c)));
	}
	have[3] = CaiJsonbDoubles(ref, "confidence", ref_conf, N_CONF);
	if (!have[0])
		for (int b = 0; b < CAI_DRIFT_BINS - 1; b++)
			edges[b] = 0.0;

	CaiDriftRead(source, input_column, &rows);
	if (rows.sentences)
	{
		cai_ner_data sd = {.n = rows.n, .offsets = rows.offsets, .tokens = (const char *const *) rows.tokens,
		.token_lens = rows.token_lens};

		st = cai_model_observe_sentences(lm->model, &sd, &o, &err);
	}
	else
		st = cai_model_observe_texts(lm->model, (const char *const *) rows.texts, rows.lens, rows.n, &o, &err);
	if (st != CAI_OK)
	{
		cai_observation_free(&o);
		CaiReportCoreError(st, &err, "drift statistics failed");
	}
	CaiDriftDistribute(lm->model, &o, edges, &d);
	cai_observation_free(&o);
	if (have[0])
		psi[0] = CaiPsi(ref_len, d.length, CAI_DRIFT_BINS);
	if (have[1])
		psi[1] = CaiPsi(ref_unseen, d.unseen, N_UNSEEN);
	if (have[2])
		psi[2] = CaiPsi(ref_cat, d.categories, n_cat);
	if (have[3])
		psi[3] = CaiPsi(ref_conf, d.confidence, N_CONF);

	initStringInfo(&out);
	appendStringInfo(&out, "{\"model\": ");
	escape_json(&out, lm->name);
	appendStringInfo(&out, ", \"version\": %d, \"rows\": %zu, \"skipped_rows\": " INT64_FORMAT,
					 lm->version, rows.n, rows.skipped);
	if (ref != NULL)
	{
		JsonbValue *split = CaiJsonbMember(ref, "split");

		appendStringInfo(&out, ", \"reference\": {\"rows\": %.0f, \"split\": ",
						 CaiJsonbNumberValue(CaiJsonbMember(ref, "rows")));
		if (split != NULL && split->type == jbvString)
			escape_json(&out, pnstrdup(split->val.string.val, split->val.string.len));
		else
			appendStringInfoString(&out, "\"training\"");	/* references written before the split was kept */
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoString(&out, ", \"statistics\": {");
	for (int s = 0; s < N_STATISTICS; s++)
	{
		char	   *extra = "";

		if (!have[s])
			continue;
		if (s == 0)
			extra = psprintf(", \"mean\": %.3f, \"reference_mean\": %.3f", d.length_mean,
							 CaiJsonbNumberValue(CaiJsonbMember(ref, "length_mean")));
		if (s == 1)
			extra = psprintf(", \"rate\": %.6f, \"reference_rate\": %.6f", d.unseen_rate,
							 CaiJsonbNumberValue(CaiJsonbMember(ref, "unseen_rate")));
		CaiPutStatistic(&out, statistic_names[s], psi[s], extra, &first);
		worst = n_have++ == 0 ? psi[s] : Max(worst, psi[s]);
	}
	appendStringInfoString(&out, "}, \"unavailable\": [");
	first = true;
	for (int s = 0; s < N_STATISTICS; s++)
		if (!have[s])
		{
			appendStringInfo(&out, "%s\"%s\"", first ? "" : ", ", statistic_names[s]);
			first = false;
		}
	appendStringInfoChar(&out, ']');
	if (n_have > 0)
		appendStringInfo(&out, ", \"psi\": %.6f, \"verdict\": \"%s\"}", worst, CaiPsiVerdict(worst));
	else
		appendStringInfo(&out, ", \"psi\": null, \"verdict\": \"unknown\", \"reason\": %s}",
						 "\"this version kept no statistics of its validation inputs (imported, or trained by 0.1.0): train a new version to monitor it\"");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
