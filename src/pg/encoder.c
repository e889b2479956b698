/*
 * encoder.c: pretrained Transformer encoders in the model store.
 *
 *  - cai_import_encoder(name, config, vocab, weights, options): a Hugging
 *    Face checkpoint (config.json, vocab.txt, model.safetensors) validated
 *    by the core (cai_encoder_bundle_from_checkpoint: every tensor against
 *    the config), written as model bytes of task "encoder" and stored as a
 *    new version of a model, like cai_import's (owner, versions, deploy,
 *    export, drop, replication and Citus all as for any model).
 *  - cai_embed(name, input, pooling): a sentence embedding from an encoder
 *    or a model fine-tuned from one, or (as before) the mean word vector of
 *    a vector set (vector_sets.c), one function for both.
 *  - the "encoder" training option: CaiEncoderForTraining loads the named
 *    version in the training worker for cai_train_set.encoder, with a
 *    provenance fragment (name, version, md5) for the trained model.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/md5.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "cai/encoder_model.h"
#include "cai/options.h"
#include "cai_pg.h"

/* ------------------------------------------------------------------------
 * cai_import_encoder
 * ------------------------------------------------------------------------ */

/* The options of cai_import_encoder: the tokenizer's (wordpiece.h). */
static const cai_opt_def import_options[] = {
	{"lower_case", CAI_OPT_BOOL, "true", 0, 0, NULL,
	 "the vocabulary is uncased: lower-case and strip accents before WordPiece (BertTokenizer's do_lower_case)"},
	{"max_chars_per_word", CAI_OPT_INT, "100", 1, 10000, NULL,
	 "longer words become [UNK] (BertTokenizer's max_input_chars_per_word)"},
};
static const int n_import_options = lengthof(import_options);

/* A required argument of cai_import_encoder. */
static void
CaiEncoderArgNotNull(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", what)));
}

/* The tokenizer options of an options object (jsonb). */
static void
CaiEncoderImportOptions(Jsonb *options, cai_wordpiece_options *wp)
{
	char	   *json = JsonbToCString(NULL, &options->root, VARSIZE(options));
	cai_options *o = NULL;
	cai_error	err = {0};
	cai_status	st;
	char		keys[256];

	st = cai_options_parse(import_options, n_import_options, json, &o, &err);
	if (st != CAI_OK)
	{
		cai_options_valid_keys(import_options, n_import_options, keys, sizeof(keys));
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("invalid encoder import options: %s", err.msg),
				 errhint("Valid options: %s.", keys)));
	}
	cai_wordpiece_options_default(wp);
	wp->lower_case = cai_opt_bool(o, "lower_case");
	wp->max_chars_per_word = (int32_t) cai_opt_int(o, "max_chars_per_word");
	cai_options_free(o);
}

/* MD5 of bytes as 32 hex digits. */
static void
CaiMd5Hex(const void *data, size_t len, char *out)
{
	const char *errstr = NULL;

	if (!pg_md5_hash(data, len, out, &errstr))
		elog(ERROR, "could not compute an MD5 hash: %s", errstr ? errstr : "?");
}

/*
 * cai_import_encoder(name text, config jsonb, vocab text, weights bytea,
 * options jsonb DEFAULT '{}'): returns the stored version.
 */
PG_FUNCTION_INFO_V1(cai_import_encoder);
Datum
cai_import_encoder(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *config;
	text	   *vocab;
	bytea	   *weights;
	cai_wordpiece_options wp;
	cai_encoder_bundle *bundle = NULL;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	cai_error	err = {0};
	cai_status	st;
	char		md5[2 * MD5_DIGEST_LENGTH + 1];
	StringInfoData prov;
	char	   *task;
	char	   *meta;
	int32		version;
	MemoryContext work;
	MemoryContext old;

	CaiEncoderArgNotNull(fcinfo, 0, "model name");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CaiCheckModelName(name);
	CaiCheckWritable("import an encoder");
	CaiEncoderArgNotNull(fcinfo, 1, "the encoder config");
	CaiEncoderArgNotNull(fcinfo, 2, "the encoder vocabulary");
	CaiEncoderArgNotNull(fcinfo, 3, "the encoder weights");
	CaiEncoderArgNotNull(fcinfo, 4, "the encoder import options");
	CaiEncoderImportOptions(PG_GETARG_JSONB_P(4), &wp);
	/* an encoder cannot become a version of a model of another task (42809), nor of another's model */
	CaiCheckNewVersion(name, "encoder", "add a version");

	config = JsonbToCString(NULL, &PG_GETARG_JSONB_P(1)->root, VARSIZE(PG_GETARG_JSONB_P(1)));
	vocab = PG_GETARG_TEXT_PP(2);
	weights = PG_GETARG_BYTEA_PP(3);
	if (VARSIZE_ANY_EXHDR(weights) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid encoder checkpoint: the weights are empty"),
				 errhint("Pass the bytes of the checkpoint's model.safetensors.")));

	/* the checkpoint, checked whole, and its model bytes: the core allocates in a context of its own */
	work = AllocSetContextCreate(CurrentMemoryContext, "cai_synergy encoder import", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	st = cai_encoder_bundle_from_checkpoint(config, strlen(config), VARDATA_ANY(vocab), VARSIZE_ANY_EXHDR(vocab),
											VARDATA_ANY(weights), VARSIZE_ANY_EXHDR(weights), &wp, &bundle, &err);
	MemoryContextSwitchTo(old);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "invalid encoder checkpoint");

	CaiMd5Hex(VARDATA_ANY(weights), VARSIZE_ANY_EXHDR(weights), md5);
	initStringInfo(&prov);
	appendStringInfo(&prov, "{\"source\": \"cai_import_encoder\", \"weights_bytes\": %zu, \"weights_md5\": \"%s\"}",
					 (size_t) VARSIZE_ANY_EXHDR(weights), md5);
	old = MemoryContextSwitchTo(work);
	st = cai_encoder_model_write(bundle, prov.data, &bytes, &len, &err);
	cai_encoder_bundle_free(bundle);
	MemoryContextSwitchTo(old);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "cannot write the encoder model");

	/* the bytes are validated as any stored model's (the loader inference uses) */
	CaiValidateModelBytes(bytes, len, &task, &meta);
	version = CaiCatalogStore(name, 0, task, CaiBytea(bytes, len), meta, NULL, NULL, "import", NULL);
	MemoryContextDelete(work);
	PG_RETURN_INT32(version);
}

/* ------------------------------------------------------------------------
 * cai_embed
 * ------------------------------------------------------------------------ */

/* What a call site's name stands for, for the rest of the statement. */
typedef struct CaiEmbedSite
{
	char		name[CAI_MODEL_NAME_MAX + 1];
	CaiLoadedModel *model;		/* an encoder, or a model fine-tuned from one */
	const cai_encoder_bundle *bundle;	/* model's encoder */
	struct cai_vectors *vectors;	/* else a vector set */
	char		pooling[8];		/* the last pooling checked, "" none */
	cai_pooling pool;
} CaiEmbedSite;

/* The embedding of an encoder (or a fine-tuned encoder's) as real[]. */
static Datum
CaiEncoderEmbedArray(CaiEmbedSite *site, text *input)
{
	const cai_encoder_bundle *b = site->bundle;
	int			dim = b->cfg.hidden_size;
	float	   *out = palloc(sizeof(float) * dim);
	Datum	   *elems = palloc(sizeof(Datum) * dim);
	cai_error	err = {0};
	cai_status	st;
	uint64		start = CaiStatsStart(site->model);

	st = cai_encoder_embed(b, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), site->pool, 0, out, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "cai_embed failed");
	CaiStatsAdd(site->model, start, 1, CAI_STATS_SAMPLE);
	for (int i = 0; i < dim; i++)
		elems[i] = Float4GetDatum(out[i]);
	return PointerGetDatum(construct_array(elems, dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}

/*
 * Resolve a name for cai_embed: the deployed version of a model that has an
 * encoder (an imported encoder, or a transformer fine-tuned from one), else
 * a vector set of that name; an error naming both kinds when neither.
 */
static void
CaiEmbedResolve(CaiEmbedSite *site, const char *name)
{
	CaiLoadedModel *m;
	int32		found;

	CaiCheckModelName(name);
	site->model = NULL;
	site->bundle = NULL;
	site->vectors = NULL;
	site->pooling[0] = '\0';
	m = CaiLookupModel(name, 0, &found);
	if (m != NULL && cai_model_encoder_bundle(m->model) != NULL)
	{
		site->model = m;
		site->bundle = cai_model_encoder_bundle(m->model);
	}
	else if ((site->vectors = CaiVectorSetLookup(name)) == NULL)
	{
		if (m != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("model \"%s\" has no encoder: it is a %s model of architecture %s", name, m->task,
							cai_model_architecture(m->model)),
					 errhint("cai_embed takes an encoder (cai_import_encoder), a model fine-tuned from one "
							 "(architecture transformer), or a vector set.")));
		if (found == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no deployed version", name),
					 errhint("Deploy a version with cai_deploy('%s', version).", name)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no encoder, model or vector set is named \"%s\"", name),
				 errhint("List them with SELECT * FROM cai_models and SELECT * FROM cai_vectors.")));
	}
	strlcpy(site->name, name, sizeof(site->name));
}

/* Check the pooling for the site's kind (once per statement and value). */
static void
CaiEmbedPooling(CaiEmbedSite *site, text *pooling)
{
	size_t		len = VARSIZE_ANY_EXHDR(pooling);
	char	   *p;
	cai_error	err = {0};
	cai_status	st;

	if (len < sizeof(site->pooling) && site->pooling[len] == '\0' && len > 0 &&
		memcmp(site->pooling, VARDATA_ANY(pooling), len) == 0)
		return;
	p = text_to_cstring(pooling);
	if (site->vectors != NULL)
	{
		if (pg_strcasecmp(p, "mean") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pooling \"%s\" does not apply to vector set \"%s\"", p, site->name),
					 errdetail("A vector set embeds a text as the mean of its words' vectors."),
					 errhint("Call cai_embed('%s', input) or pass pooling 'mean'.", site->name)));
	}
	else
	{
		st = cai_pooling_parse(p, &site->pool, &err);
		if (st != CAI_OK)
			ereport(ERROR,
					(errcode(CaiStatusSqlstate(st)),
					 errmsg("invalid pooling: %s", err.msg)));
	}
	if (len < sizeof(site->pooling))
		memcpy(site->pooling, p, len + 1);
	else
		site->pooling[0] = '\0';
}

/*
 * cai_embed(name text, input text, pooling text DEFAULT 'mean') RETURNS
 * real[]: an encoder's (or fine-tuned encoder's) sentence embedding, or a
 * vector set's mean word vector (NULL when no word has a vector).
 */
PG_FUNCTION_INFO_V1(cai_embed);
Datum
cai_embed(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);
	text	   *input = PG_GETARG_TEXT_PP(1);
	CaiEmbedSite *site = (CaiEmbedSite *) fcinfo->flinfo->fn_extra;
	size_t		name_len = VARSIZE_ANY_EXHDR(name);
	bool		isnull = false;
	Datum		result;

	CaiCheckInputLength(VARSIZE_ANY_EXHDR(input));
	/* per row: the call site's resolution while the name is the previous row's */
	if (site == NULL)
	{
		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CaiEmbedSite));
		fcinfo->flinfo->fn_extra = site;
	}
	if (!(name_len <= CAI_MODEL_NAME_MAX && site->name[0] != '\0' && site->name[name_len] == '\0' &&
		  memcmp(site->name, VARDATA_ANY(name), name_len) == 0))
	{
		site->name[0] = '\0';
		CaiEmbedResolve(site, text_to_cstring(name));
	}
	/* the 0.2.0 two-argument form (until ALTER EXTENSION UPDATE): mean */
	if (PG_NARGS() > 2)
		CaiEmbedPooling(site, PG_GETARG_TEXT_PP(2));
	else if (site->vectors == NULL)
		site->pool = CAI_POOL_MEAN;

	if (site->vectors != NULL)
		result = CaiVectorSetEmbed(site->vectors, input, &isnull);
	else
		result = CaiEncoderEmbedArray(site, input);
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * The "encoder" training option (in the training worker)
 * ------------------------------------------------------------------------ */

/*
 * The version of the encoder a training names (in the caller's backend):
 * version > 0 that stored version, 0 the deployed one.  Whether it has an
 * encoder is checked when the worker loads it (an imported encoder, or a
 * transformer model fine-tuned before).
 */
int32
CaiEncoderVersion(const char *name, int32 version)
{
	int32		found;

	if (strlen(name) > CAI_MODEL_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("encoder name is too long")));
	found = CaiCatalogVersion(name, version, NULL, NULL);
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("encoder \"%s\" does not exist", name),
				 errhint("Import a checkpoint with cai_import_encoder or scripts/import-encoder.sh.")));
	if (found == 0 && version == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("encoder \"%s\" has no deployed version", name),
				 errhint("Deploy a version with cai_deploy('%s', version), or name one with \"encoder_version\".", name)));
	if (found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("encoder \"%s\" has no version %d", name, version)));
	return found;
}

/*
 * Load a version of a model that has an encoder, for training (a verified
 * private copy in CurrentMemoryContext, which must outlive the training),
 * its encoder as *bundle, and a provenance fragment {"name", "version",
 * "md5", "task", "architecture"} for the trained model's metadata.  Any role
 * may fine-tune from any encoder, as any role may run any model.
 */
cai_model *
CaiEncoderForTraining(const char *name, int32 version, const cai_encoder_bundle **bundle, char **provenance)
{
	CaiModelRow row;
	cai_model  *m = NULL;
	cai_error	err = {0};
	cai_status	st;
	char		md5[2 * MD5_DIGEST_LENGTH + 1];
	StringInfoData p;

	if (!CaiCatalogFetch(name, version, true, &row) || row.model == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("encoder \"%s\" has no version %d", name, version),
				 errdetail("It was dropped after the training started.")));
	st = cai_model_load((const uint8 *) VARDATA_ANY(row.model), VARSIZE_ANY_EXHDR(row.model), false, true, &m, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, psprintf("cannot load encoder \"%s\" version %d", name, version));
	*bundle = cai_model_encoder_bundle(m);
	if (*bundle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" version %d has no encoder to fine-tune: it is a %s model of architecture %s",
						name, version, cai_model_task(m), cai_model_architecture(m)),
				 errhint("Name an encoder imported with cai_import_encoder, or a transformer model.")));
	CaiMd5Hex(VARDATA_ANY(row.model), VARSIZE_ANY_EXHDR(row.model), md5);
	initStringInfo(&p);
	appendStringInfoString(&p, "{\"name\": ");
	escape_json(&p, name);
	appendStringInfo(&p, ", \"version\": %d, \"md5\": \"%s\", \"task\": ", version, md5);
	escape_json(&p, cai_model_task(m));
	appendStringInfoString(&p, ", \"architecture\": ");
	escape_json(&p, cai_model_architecture(m));
	appendStringInfoChar(&p, '}');
	*provenance = p.data;
	pfree(row.model);
	return m;
}
