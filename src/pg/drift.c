/*
 * drift.c: does new input still look like what a model was trained on?
 *
 * When a text classifier is trained, the worker runs the new model over up
 * to CAI_DRIFT_ROWS of its training texts (evenly spaced) and keeps three
 * distributions with the version's metrics ("drift_reference"): input length
 * in tokens (ten bins cut at the training deciles), the predicted labels, and
 * the confidence (the largest probability, fixed bins).  cai_drift(model,
 * source) computes the same distributions on up to CAI_DRIFT_ROWS rows of a
 * table or query with the deployed version and compares each with the
 * population stability index, PSI = sum (a - e) ln(a / e) over the bins
 * (proportions floored at 1e-4), with the usual reading: below 0.1 stable,
 * below 0.25 a moderate shift, else a significant shift.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "cai/tokenize.h"
#include "cai_pg.h"

#define CAI_DRIFT_ROWS 5000
#define CAI_DRIFT_BINS 10
#define CAI_DRIFT_EPS 1e-4

static const double confidence_edges[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99};
#define N_CONF ((int) (sizeof(confidence_edges) / sizeof(confidence_edges[0])) + 1)

/* Tokens of a text (cai_tokenize's), capped. */
static double
CaiDriftLength(const char *text, size_t len)
{
	cai_token  *toks = NULL;
	size_t		n = 0;
	cai_error	err = {0};

	if (cai_tokenize(text, len, 100000, &toks, &n, &err) != CAI_OK)
		return 0.0;
	cai_free(toks);
	return (double) n;
}

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

/*
 * Lengths, predicted labels and confidences of texts[0..n) under m (a
 * classifier), in batches; counts into the bins given (len_edges NULL: the
 * lengths are returned sorted in *lengths for the caller to cut).
 */
static void
CaiDriftScan(cai_model *m, int n_labels, const char *const *texts, const size_t *lens, size_t n,
			 double *lengths, double *label_count, double *conf_count)
{
	const size_t batch = 256;
	float	   *probs = palloc(sizeof(float) * batch * n_labels);

	for (size_t from = 0; from < n; from += batch)
	{
		size_t		k = Min(batch, n - from);
		cai_error	err = {0};
		cai_status	st = cai_model_classify_batch(m, texts + from, lens + from, k, probs, &err);

		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "drift statistics failed");
		for (size_t i = 0; i < k; i++)
		{
			const float *p = probs + i * n_labels;
			int			best = 0;

			for (int c = 1; c < n_labels; c++)
				if (p[c] > p[best])
					best = c;
			label_count[best] += 1.0;
			conf_count[CaiDriftBin(p[best], confidence_edges, N_CONF - 1)] += 1.0;
			lengths[from + i] = CaiDriftLength(texts[from + i], lens[from + i]);
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(probs);
}

static void
CaiPutArray(StringInfo s, const char *key, const double *v, int n)
{
	appendStringInfo(s, ", \"%s\": [", key);
	for (int i = 0; i < n; i++)
		appendStringInfo(s, "%s%.17g", i > 0 ? ", " : "", v[i]);
	appendStringInfoChar(s, ']');
}

/*
 * The reference statistics of a freshly trained classifier (bytes) on up to
 * CAI_DRIFT_ROWS of its training texts, as JSON text ("{...}"), or NULL when
 * the model is not a classifier.
 */
char *
CaiDriftReference(const uint8 *bytes, size_t len, const char *const *texts, const size_t *lens, size_t n)
{
	cai_model  *m = NULL;
	cai_error	err = {0};
	size_t		k = Min(n, (size_t) CAI_DRIFT_ROWS);
	const char **sample;
	size_t	   *slens;
	double	   *lengths;
	double	   *label_count;
	double		conf_count[N_CONF] = {0};
	double		edges[CAI_DRIFT_BINS - 1];
	double		len_count[CAI_DRIFT_BINS] = {0};
	int			n_labels;
	StringInfoData o;

	if (n == 0 || cai_model_load(bytes, len, false, false, &m, &err) != CAI_OK)
		return NULL;
	if (cai_model_kind(m) != CAI_KIND_CLASSIFY)
	{
		cai_model_free(m);
		return NULL;
	}
	n_labels = cai_model_n_labels(m);
	sample = palloc(sizeof(char *) * k);
	slens = palloc(sizeof(size_t) * k);
	for (size_t i = 0; i < k; i++)
	{
		size_t		r = (size_t) ((double) i * (double) n / (double) k);	/* evenly spaced */

		sample[i] = texts[r];
		slens[i] = lens[r];
	}
	lengths = palloc(sizeof(double) * k);
	label_count = palloc0(sizeof(double) * n_labels);
	CaiDriftScan(m, n_labels, sample, slens, k, lengths, label_count, conf_count);

	/* length bins cut at the deciles of the training lengths */
	qsort(lengths, k, sizeof(double), CaiCompareDouble);
	for (int b = 0; b < CAI_DRIFT_BINS - 1; b++)
		edges[b] = lengths[Min(k - 1, (size_t) (b + 1) * k / CAI_DRIFT_BINS)];
	for (size_t i = 0; i < k; i++)
		len_count[CaiDriftBin(lengths[i], edges, CAI_DRIFT_BINS - 1)] += 1.0;

	initStringInfo(&o);
	appendStringInfo(&o, "{\"rows\": %zu", k);
	CaiPutArray(&o, "length_edges", edges, CAI_DRIFT_BINS - 1);
	for (int b = 0; b < CAI_DRIFT_BINS; b++)
		len_count[b] /= (double) k;
	CaiPutArray(&o, "length", len_count, CAI_DRIFT_BINS);
	appendStringInfoString(&o, ", \"labels\": {");
	for (int c = 0; c < n_labels; c++)
	{
		appendStringInfoString(&o, c > 0 ? ", " : "");
		escape_json(&o, cai_model_label(m, c));
		appendStringInfo(&o, ": %.17g", label_count[c] / (double) k);
	}
	appendStringInfoChar(&o, '}');
	for (int b = 0; b < N_CONF; b++)
		conf_count[b] /= (double) k;
	CaiPutArray(&o, "confidence", conf_count, N_CONF);
	appendStringInfoChar(&o, '}');
	cai_model_free(m);
	return o.data;
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
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
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

static void
CaiPutStatistic(StringInfo s, const char *name, double psi, bool *first)
{
	appendStringInfo(s, "%s\"%s\": {\"psi\": %.6f, \"verdict\": \"%s\"}", *first ? "" : ", ", name, psi,
					 CaiPsiVerdict(psi));
	*first = false;
}

/* cai_drift(model, source, input_column): the deployed version's training inputs against new ones */
PG_FUNCTION_INFO_V1(cai_drift);
Datum
cai_drift(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *lm = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	char	   *source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *input_column = text_to_cstring(PG_GETARG_TEXT_PP(2));	/* STRICT */
	CaiModelRow row;
	JsonbValue *refv = NULL;
	JsonbContainer *ref = NULL;
	double		edges[CAI_DRIFT_BINS - 1];
	double		ref_len[CAI_DRIFT_BINS];
	double		ref_conf[N_CONF];
	double	   *ref_labels;
	double	   *label_count;
	double		conf_count[N_CONF] = {0};
	double		len_count[CAI_DRIFT_BINS] = {0};
	double	   *lengths;
	char	  **texts = NULL;
	size_t	   *lens = NULL;
	size_t		n = 0;
	SPIPlanPtr	plan;
	Portal		portal;
	MemoryContext keep = CurrentMemoryContext;
	StringInfoData out;
	double		psi_len,
				psi_labels,
				psi_conf,
				worst;
	bool		first = true;

	CaiRequireKind(lm, CAI_KIND_CLASSIFY, "cai_drift");
	if (!CaiCatalogFetch(lm->name, lm->version, false, &row))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("model \"%s\" does not exist", lm->name)));
	if (row.metrics != NULL)
		refv = CaiJsonbMember(&row.metrics->root, "drift_reference");
	if (refv != NULL && refv->type == jbvBinary)
		ref = refv->val.binary.data;
	if (ref == NULL ||
		!CaiJsonbDoubles(ref, "length_edges", edges, CAI_DRIFT_BINS - 1) ||
		!CaiJsonbDoubles(ref, "length", ref_len, CAI_DRIFT_BINS) ||
		!CaiJsonbDoubles(ref, "confidence", ref_conf, N_CONF))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" version %d has no statistics of its training inputs", lm->name, lm->version),
				 errdetail("Versions trained from 0.2.0 on keep them; imported versions and versions trained by 0.1.0 do not."),
				 errhint("Train a new version.")));
	ref_labels = palloc0(sizeof(double) * lm->n_labels);
	{
		JsonbValue *l = CaiJsonbMember(ref, "labels");

		if (l != NULL && l->type == jbvBinary)
			for (int c = 0; c < lm->n_labels; c++)
				ref_labels[c] = CaiJsonbNumberValue(CaiJsonbMember(l->val.binary.data, lm->labels[c]));
	}

	/* up to CAI_DRIFT_ROWS rows of the source, with the caller's rights */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(CaiSourceQuery(source, input_column, NULL, "pg_catalog.text", NULL), 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("could not prepare the source query: %s", SPI_result_code_string(SPI_result))));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	texts = MemoryContextAlloc(keep, sizeof(char *) * CAI_DRIFT_ROWS);
	lens = MemoryContextAlloc(keep, sizeof(size_t) * CAI_DRIFT_ROWS);
	while (n < CAI_DRIFT_ROWS)
	{
		SPI_cursor_fetch(portal, true, Min(1000, CAI_DRIFT_ROWS - n));
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			text	   *t;

			if (isnull)
				continue;
			t = DatumGetTextPP(d);
			CaiCheckInputLength(VARSIZE_ANY_EXHDR(t));
			lens[n] = VARSIZE_ANY_EXHDR(t);
			texts[n] = MemoryContextAlloc(keep, lens[n] + 1);
			memcpy(texts[n], VARDATA_ANY(t), lens[n]);
			texts[n][lens[n]] = '\0';
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the source has no rows to compare")));

	lengths = palloc(sizeof(double) * n);
	label_count = palloc0(sizeof(double) * lm->n_labels);
	CaiDriftScan(lm->model, lm->n_labels, (const char *const *) texts, lens, n, lengths, label_count, conf_count);
	for (size_t i = 0; i < n; i++)
		len_count[CaiDriftBin(lengths[i], edges, CAI_DRIFT_BINS - 1)] += 1.0;
	for (int b = 0; b < CAI_DRIFT_BINS; b++)
		len_count[b] /= (double) n;
	for (int b = 0; b < N_CONF; b++)
		conf_count[b] /= (double) n;
	for (int c = 0; c < lm->n_labels; c++)
		label_count[c] /= (double) n;
	psi_len = CaiPsi(ref_len, len_count, CAI_DRIFT_BINS);
	psi_labels = CaiPsi(ref_labels, label_count, lm->n_labels);
	psi_conf = CaiPsi(ref_conf, conf_count, N_CONF);
	worst = Max(psi_len, Max(psi_labels, psi_conf));

	initStringInfo(&out);
	appendStringInfo(&out, "{\"model\": ");
	escape_json(&out, lm->name);
	appendStringInfo(&out, ", \"version\": %d, \"rows\": %zu, \"statistics\": {", lm->version, n);
	CaiPutStatistic(&out, "input_length", psi_len, &first);
	CaiPutStatistic(&out, "predicted_labels", psi_labels, &first);
	CaiPutStatistic(&out, "confidence", psi_conf, &first);
	appendStringInfo(&out, "}, \"psi\": %.6f, \"verdict\": \"%s\"}", worst, CaiPsiVerdict(worst));
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
