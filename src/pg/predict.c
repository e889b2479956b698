/*
 * predict.c: the backend model cache and the inference and evaluation
 * functions: cai_predict, cai_predict_proba, cai_evaluate, cai_options.
 *
 * A model is loaded from the catalog once per backend and kept in a cache
 * keyed by name and version.  The deployed version is looked up once per
 * statement (the first call of each function call site in a query), so a
 * newly deployed version is picked up by the next statement, never per row;
 * the pinned functions (cai_predict(model, version, input)) look up their
 * version the same way and share the cache.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "cai/metrics.h"
#include "cai/options.h"
#include "cai_pg.h"

/*
 * The backend's models, keyed by (name, version): the deployed version of a
 * name and any version named by a pinned call (cai_predict(model, version,
 * input)) share this one cache.
 */
typedef struct CaiCacheKey
{
	char		name[CAI_MODEL_NAME_MAX + 1];	/* zero-padded: hashed as bytes */
	int32		version;
} CaiCacheKey;

typedef struct CaiCacheEntry
{
	CaiCacheKey key;			/* hash key */
	CaiLoadedModel *model;
	uint64		used_xact;		/* xact_count when last looked up */
} CaiCacheEntry;

static HTAB *model_cache = NULL;
static List *retired_models = NIL;	/* replaced models, freed at transaction end */
static bool xact_callback_registered = false;
static uint64 xact_count = 0;	/* transactions ended in this process */

/*
 * Per call site (fn_extra): the model in use for the current statement, for
 * the name and the version asked for (0: the deployed one).
 */
typedef struct CaiCallCache
{
	char		name[CAI_MODEL_NAME_MAX + 1];
	int32		version;
	CaiLoadedModel *model;
} CaiCallCache;

static void
CaiFreeLoadedModel(CaiLoadedModel *m)
{
	MemoryContext old = MemoryContextSwitchTo(m->cxt);

	cai_model_free(m->model);
	MemoryContextSwitchTo(old);
	CaiSharedCacheUnmap(m->map, m->map_len);
	MemoryContextDelete(m->cxt);
}

static void
CaiXactCallback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	CaiStatsFlushAll();
	xact_count++;
	foreach(lc, retired_models)
		CaiFreeLoadedModel((CaiLoadedModel *) lfirst(lc));
	list_free(retired_models);
	retired_models = NIL;
}

/* Report the counts of every model this process holds to cai_model_stats (stats.c). */
void
CaiStatsFlushAll(void)
{
	HASH_SEQ_STATUS seq;
	CaiCacheEntry *e;
	ListCell   *lc;

	foreach(lc, retired_models)
		CaiStatsReport((CaiLoadedModel *) lfirst(lc));
	if (model_cache == NULL)
		return;
	hash_seq_init(&seq, model_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
		CaiStatsReport(e->model);
}

/*
 * Build an inference model from model bytes into a new long-lived context.
 * With a shared mapping (map != NULL) the bytes are the mapped file and the
 * tensors are used in place; verify = false skips the checksum of a file that
 * was verified when it was written.  Returns NULL with *err set on failure.
 */
static CaiLoadedModel *
CaiBuildModel(const char *name, int32 version, const uint8 *buf, size_t len,
			  void *map, bool verify, cai_status *st_out, cai_error *err)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext, "cai_synergy model",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	CaiLoadedModel *m = palloc0(sizeof(CaiLoadedModel));
	cai_status	st;

	m->cxt = cxt;
	m->name = pstrdup(name);
	m->version = version;
	/* a shared mapping is used in place; catalog bytes are copied and fully verified */
	st = cai_model_load(buf, len, map != NULL, verify, &m->model, err);
	if (st == CAI_OK)
	{
		m->task = cai_model_task(m->model);
		m->n_labels = cai_model_n_labels(m->model);
		m->labels = palloc(sizeof(char *) * Max(m->n_labels, 1));
		for (int i = 0; i < m->n_labels; i++)
			m->labels[i] = cai_model_label(m->model, i);
	}
	MemoryContextSwitchTo(old);
	*st_out = st;
	if (st != CAI_OK)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	m->map = map;
	m->map_len = map != NULL ? len : 0;
	return m;
}

/*
 * Load a model version: from the shared file when there is one, else from
 * the catalog (fully validated), writing the shared file for the others.
 */
static CaiLoadedModel *
CaiLoadModel(const char *name, int32 version, int64 stamp)
{
	CaiLoadedModel *m = NULL;
	cai_error	err = {0};
	cai_status	st = CAI_OK;
	void	   *map;
	size_t		len;
	CaiModelRow row;
	char		context[CAI_MODEL_NAME_MAX + 64];

	if (CaiSharedCacheEnabled() && CaiSharedCacheOpen(name, version, stamp, &map, &len))
	{
		m = CaiBuildModel(name, version, map, len, map, false, &st, &err);
		if (m != NULL)
			return m;
		/* an unusable file: drop it and rebuild from the catalog */
		CaiSharedCacheUnmap(map, len);
		CaiSharedCacheDiscard(name, version, stamp);
	}

	if (!CaiCatalogFetch(name, version, true, &row) || row.model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" version %d disappeared while loading", name, version)));
	/* full validation of the catalog bytes (checksum and every tensor) */
	m = CaiBuildModel(name, version, (const uint8 *) VARDATA_ANY(row.model),
					  VARSIZE_ANY_EXHDR(row.model), NULL, true, &st, &err);
	if (m == NULL)
	{
		snprintf(context, sizeof(context), "cannot load model \"%s\" version %d", name, version);
		CaiReportCoreError(st, &err, context);
	}
	/* share the validated bytes: this and every later process maps them */
	if (CaiSharedCacheEnabled() &&
		CaiSharedCacheStore(name, version, stamp, VARDATA_ANY(row.model), VARSIZE_ANY_EXHDR(row.model)) &&
		CaiSharedCacheOpen(name, version, stamp, &map, &len))
	{
		CaiLoadedModel *shared = CaiBuildModel(name, version, map, len, map, false, &st, &err);

		if (shared != NULL)
		{
			CaiFreeLoadedModel(m);
			m = shared;
		}
		else
		{
			CaiSharedCacheUnmap(map, len);
			CaiSharedCacheDiscard(name, version, stamp);
		}
	}
	pfree(row.model);
	return m;
}

/* Retire a cached model: the call sites of this transaction may still hold it. */
static void
CaiRetireModel(CaiLoadedModel *m)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	retired_models = lappend(retired_models, m);
	MemoryContextSwitchTo(old);
}

/*
 * The loaded model of a version (whose catalog row has creation stamp
 * stamp), from the backend's cache or loaded into it.  Loading a version of a
 * name retires the name's other versions not used in this transaction, so a
 * redeployment frees the old version while a statement that uses two versions
 * (deployed and pinned) keeps both.
 */
static CaiLoadedModel *
CaiCachedModel(const char *name, int32 version, int64 stamp)
{
	CaiCacheKey key;
	CaiCacheEntry *entry;
	bool		found;

	if (model_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(CaiCacheKey);
		ctl.entrysize = sizeof(CaiCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		model_cache = hash_create("cai_synergy models", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (!xact_callback_registered)
	{
		RegisterXactCallback(CaiXactCallback, NULL);
		xact_callback_registered = true;
	}

	memset(&key, 0, sizeof(key));
	strlcpy(key.name, name, sizeof(key.name));
	key.version = version;
	entry = hash_search(model_cache, &key, HASH_ENTER, &found);
	if (!found)
		entry->model = NULL;
	entry->used_xact = xact_count;
	if (entry->model == NULL || entry->model->stamp != stamp)
	{
		CaiLoadedModel *m;
		HASH_SEQ_STATUS seq;
		CaiCacheEntry *e;

		/* the entry stays valid (model NULL) if loading fails */
		if (entry->model != NULL)
			CaiRetireModel(entry->model);
		entry->model = NULL;
		m = CaiLoadModel(name, version, stamp);
		m->stamp = stamp;
		entry->model = m;

		hash_seq_init(&seq, model_cache);
		while ((e = hash_seq_search(&seq)) != NULL)
			if (e != entry && e->used_xact != xact_count && strcmp(e->key.name, name) == 0)
			{
				if (e->model != NULL)
					CaiRetireModel(e->model);
				(void) hash_search(model_cache, &e->key, HASH_REMOVE, NULL);
			}
	}
	return entry->model;
}

/* Remember a call site's model for the rest of the statement. */
static CaiLoadedModel *
CaiCallSiteSet(FunctionCallInfo fcinfo, const char *name, int32 version, CaiLoadedModel *m)
{
	CaiCallCache *cc = (CaiCallCache *) fcinfo->flinfo->fn_extra;

	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CaiCallCache));
		fcinfo->flinfo->fn_extra = cc;
	}
	strlcpy(cc->name, name, sizeof(cc->name));
	cc->version = version;
	cc->model = m;
	return m;
}

/* The call site's model if it is for this name (given as text) and version. */
static inline CaiLoadedModel *
CaiCallSiteGet(FunctionCallInfo fcinfo, text *name, int32 version)
{
	CaiCallCache *cc = (CaiCallCache *) fcinfo->flinfo->fn_extra;
	size_t		len = VARSIZE_ANY_EXHDR(name);

	if (cc != NULL && cc->version == version && len <= CAI_MODEL_NAME_MAX && cc->name[len] == '\0' &&
		memcmp(cc->name, VARDATA_ANY(name), len) == 0)
		return cc->model;
	return NULL;
}

/*
 * CaiGetModel for a model name given as text, the per-row path of every
 * inference function: the call site's cached model is reused without
 * converting the name when it is the same as the previous row's.
 */
CaiLoadedModel *
CaiGetModelText(FunctionCallInfo fcinfo, text *name)
{
	CaiLoadedModel *m = CaiCallSiteGet(fcinfo, name, 0);

	return m != NULL ? m : CaiGetModel(fcinfo, text_to_cstring(name));
}

/*
 * A version of a model (0: the deployed one) looked up in the catalog and
 * loaded (cached per backend), and remembered by the call site for the rest
 * of the statement: a new deployment, or a dropped version, is seen by the
 * next statement, never per row.
 */
static CaiLoadedModel *
CaiFindModel(FunctionCallInfo fcinfo, const char *name, int32 version)
{
	int64		stamp = 0;
	int32		found;

	CaiCheckModelName(name);
	found = CaiCatalogVersion(name, version, NULL, &stamp);
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("List models with SELECT * FROM cai_models.")));
	if (found == 0 && version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed version", name),
				 errhint("Deploy a version with cai_deploy('%s', version).", name)));
	if (found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no version %d", name, version),
				 errdetail("It was dropped, or never stored on this server."),
				 errhint("List its versions with SELECT version FROM cai_models WHERE name = '%s'; "
						 "copy a version with its number by cai_import(model, data, version).", name)));
	return CaiCallSiteSet(fcinfo, name, version, CaiCachedModel(name, found, stamp));
}

/*
 * A version of a model (0: the deployed one), loaded (cached per backend),
 * without a call site: NULL when the model does not exist or has no such
 * version, *found saying which (CaiCatalogVersion's -1 or 0).  For functions
 * that accept other kinds of names too (cai_embed: a vector set); the
 * caller keeps the result for the statement.
 */
CaiLoadedModel *
CaiLookupModel(const char *name, int32 version, int32 *found)
{
	int64		stamp = 0;

	*found = CaiCatalogVersion(name, version, NULL, &stamp);
	return *found > 0 ? CaiCachedModel(name, *found, stamp) : NULL;
}

/* The deployed version of a model. */
CaiLoadedModel *
CaiGetModel(FunctionCallInfo fcinfo, const char *name)
{
	CaiCallCache *cc = (CaiCallCache *) fcinfo->flinfo->fn_extra;

	if (cc != NULL && cc->version == 0 && strcmp(cc->name, name) == 0)
		return cc->model;
	return CaiFindModel(fcinfo, name, 0);
}

/* One stored version of a model, deployed or not (the pinned functions). */
CaiLoadedModel *
CaiGetModelVersion(FunctionCallInfo fcinfo, text *name, int32 version)
{
	CaiLoadedModel *m = CaiCallSiteGet(fcinfo, name, version);

	if (m != NULL)
		return m;
	if (version <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model version must be positive, got %d", version)));
	return CaiFindModel(fcinfo, text_to_cstring(name), version);
}

void
CaiRequireKind(CaiLoadedModel *m, cai_task_kind kind, const char *function)
{
	if (cai_model_kind(m->model) != kind)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" is %s %s model, but %s needs a %s model", m->name,
						strchr("aeiou", m->task[0]) != NULL ? "an" : "a", m->task, function,
						kind == CAI_KIND_CLASSIFY ? "text classification" : "token classification"),
				 cai_model_kind(m->model) == CAI_KIND_ENCODER ?
				 errhint("An encoder embeds texts (cai_embed); fine-tune it with cai_train(..., '{\"architecture\": \"transformer\", \"encoder\": \"%s\"}') to classify or tag.",
						 m->name) : 0));
}

/* Class probabilities of one text; probs has m->n_labels entries. */
static void
CaiClassify(CaiLoadedModel *m, text *input, float *probs)
{
	cai_error	err = {0};
	cai_status	st;
	Size		len = VARSIZE_ANY_EXHDR(input);

	CaiCheckInputLength(len);
	st = cai_model_classify(m->model, VARDATA_ANY(input), len, probs, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "prediction failed");
}

static int
CaiArgmax(const float *p, int n)
{
	int			best = 0;

	for (int i = 1; i < n; i++)
		if (p[i] > p[best])
			best = i;
	return best;
}

static Datum
CaiPredictText(FunctionCallInfo fcinfo, CaiLoadedModel *m, text *input)
{
	float		stack_probs[64];
	float	   *probs = m->n_labels <= 64 ? stack_probs : palloc(sizeof(float) * m->n_labels);

	uint64		start = CaiStatsStart(m);
	Datum		result;

	if (cai_model_kind(m->model) == CAI_KIND_TAG)
		result = CaiNerPredictJson(m, input);
	else
	{
		CaiRequireKind(m, CAI_KIND_CLASSIFY, "cai_predict");
		CaiClassify(m, input, probs);
		result = PointerGetDatum(cstring_to_text(m->labels[CaiArgmax(probs, m->n_labels)]));
	}
	CaiStatsAdd(m, start, 1, CAI_STATS_SAMPLE);
	return result;
}

PG_FUNCTION_INFO_V1(cai_predict);
Datum
cai_predict(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));

	return CaiPredictText(fcinfo, m, PG_GETARG_TEXT_PP(1));
}

/* cai_predict(model, version, input): a stored version, deployed or not (IMMUTABLE: see the SQL) */
PG_FUNCTION_INFO_V1(cai_predict_version);
Datum
cai_predict_version(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *m = CaiGetModelVersion(fcinfo, PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1));

	return CaiPredictText(fcinfo, m, PG_GETARG_TEXT_PP(2));
}

/* The model cai_predict(input) uses: cai.default_model, else the only deployed model. */
static char *
CaiDefaultModelName(void)
{
	int			n_deployed;
	char	   *name;
	const char *setting = CaiSettingDefaultModel();

	if (setting != NULL && setting[0] != '\0')
		return pstrdup(setting);
	name = CaiCatalogOnlyDeployedModel(&n_deployed);
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("cai_predict(input) needs a model name"),
				 errdetail(n_deployed == 0 ? "cai.default_model is not set and no model is deployed." :
						   "cai.default_model is not set and more than one model is deployed."),
				 errhint("SET cai.default_model = 'model name', or call cai_predict(model, input).")));
	return name;
}

PG_FUNCTION_INFO_V1(cai_predict_default);
Datum
cai_predict_default(PG_FUNCTION_ARGS)
{
	CaiCallCache *cc = (CaiCallCache *) fcinfo->flinfo->fn_extra;
	CaiLoadedModel *m;

	if (cc != NULL)
		m = cc->model;
	else
		m = CaiGetModel(fcinfo, CaiDefaultModelName());
	return CaiPredictText(fcinfo, m, PG_GETARG_TEXT_PP(0));
}

/* {"label": probability, ...} of one text by a text classification model */
static Datum
CaiProbaJsonb(CaiLoadedModel *m, text *input)
{
	float	   *probs;
	JsonbParseState *state = NULL;
	JsonbValue *res;

	uint64		start = CaiStatsStart(m);

	CaiRequireKind(m, CAI_KIND_CLASSIFY, "cai_predict_proba");
	probs = palloc(sizeof(float) * m->n_labels);
	CaiClassify(m, input, probs);
	CaiStatsAdd(m, start, 1, CAI_STATS_SAMPLE);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < m->n_labels; i++)
	{
		JsonbValue	k;
		JsonbValue	v;

		k.type = jbvString;
		k.val.string.val = (char *) m->labels[i];
		k.val.string.len = strlen(m->labels[i]);
		pushJsonbValue(&state, WJB_KEY, &k);
		v.type = jbvNumeric;
		v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum((double) probs[i])));
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}

PG_FUNCTION_INFO_V1(cai_predict_proba);
Datum
cai_predict_proba(PG_FUNCTION_ARGS)
{
	return CaiProbaJsonb(CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0)), PG_GETARG_TEXT_PP(1));
}

/* cai_predict_proba(model, version, input): a stored version, deployed or not */
PG_FUNCTION_INFO_V1(cai_predict_proba_version);
Datum
cai_predict_proba_version(PG_FUNCTION_ARGS)
{
	return CaiProbaJsonb(CaiGetModelVersion(fcinfo, PG_GETARG_TEXT_PP(0), PG_GETARG_INT32(1)),
						 PG_GETARG_TEXT_PP(2));
}

/*
 * cai_evaluate: score the deployed version on labelled rows read (with the
 * caller's rights) from a table, view or query.  Gold labels the model does
 * not know count as extra classes, as scikit-learn does.
 */
PG_FUNCTION_INFO_V1(cai_evaluate);
Datum
cai_evaluate(PG_FUNCTION_ARGS)
{
	CaiLoadedModel *m;
	char	   *query;
	SPIPlanPtr	plan;
	Portal		portal;
	int64		n = 0;
	int64		cap = 1024;
	int64		skipped = 0;
	int32	   *gold;
	int32	   *pred;
	int			n_labels;
	int			cap_labels;
	const char **labels;
	float	   *probs;
	char	   *json = NULL;
	cai_error	err = {0};
	cai_status	st;
	Jsonb	   *result;
	MemoryContext caller_cxt = CurrentMemoryContext;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of cai_evaluate must not be NULL", i + 1)));
	m = CaiGetModelText(fcinfo, PG_GETARG_TEXT_PP(0));
	if (cai_model_kind(m->model) == CAI_KIND_TAG)
		return CaiNerEvaluate(fcinfo, m);
	CaiRequireKind(m, CAI_KIND_CLASSIFY, "cai_evaluate");
	query = CaiSourceQuery(text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   text_to_cstring(PG_GETARG_TEXT_PP(2)),
						   text_to_cstring(PG_GETARG_TEXT_PP(3)),
						   "pg_catalog.text", "pg_catalog.text");

	n_labels = m->n_labels;
	cap_labels = n_labels + 16;
	labels = palloc(sizeof(char *) * cap_labels);
	memcpy(labels, m->labels, sizeof(char *) * n_labels);
	gold = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
	pred = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
	probs = palloc(sizeof(float) * m->n_labels);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the source query: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		in_null;
			bool		lab_null;
			Datum		in = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &in_null);
			Datum		lab = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &lab_null);
			char	   *g;
			int			gi;

			if (in_null || lab_null)
			{
				skipped++;
				continue;
			}
			if (n == cap)
			{
				MemoryContext old = MemoryContextSwitchTo(caller_cxt);

				cap *= 2;
				gold = repalloc_huge(gold, sizeof(int32) * cap);
				pred = repalloc_huge(pred, sizeof(int32) * cap);
				MemoryContextSwitchTo(old);
			}
			CaiClassify(m, DatumGetTextPP(in), probs);
			pred[n] = CaiArgmax(probs, m->n_labels);
			g = TextDatumGetCString(lab);
			for (gi = 0; gi < n_labels; gi++)
				if (strcmp(labels[gi], g) == 0)
					break;
			if (gi == n_labels)
			{
				MemoryContext old = MemoryContextSwitchTo(caller_cxt);

				if (n_labels == cap_labels)
				{
					cap_labels *= 2;
					labels = repalloc(labels, sizeof(char *) * cap_labels);
				}
				labels[n_labels++] = pstrdup(g);
				MemoryContextSwitchTo(old);
			}
			gold[n] = gi;
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
				 errmsg("the evaluation source has no usable rows"),
				 errdetail(INT64_FORMAT " rows were skipped because the input or the label is NULL.", skipped)));
	st = cai_classification_report(gold, pred, n, labels, n_labels, &json, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "evaluation failed");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	cai_free(json);
	{
		char	   *extra = psprintf("{\"version\": %d, \"skipped_rows\": " INT64_FORMAT "}",
									 m->version, skipped);
		Jsonb	   *e = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(extra)));

		result = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(result), JsonbPGetDatum(e)));
	}
	PG_RETURN_JSONB_P(result);
}
