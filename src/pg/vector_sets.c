/*
 * vector_sets.c: word vector sets in the catalog (cai_vector_store).
 *
 * A vector set is stored once as versioned bytes in the project's model
 * format (include/cai/vectors.h), like a model version: written only through
 * these functions, owned by the role that created its first version, dumped
 * with the database and replicated with it.  Importing validates the input
 * completely (a file in a common format, the bytes of cai_export_vectors, or
 * the rows of a table or query); reading a set maps one shared copy per server
 * (cache.c) and uses its tables in place, so GloVe's 341k words load in well
 * under a millisecond once another process has loaded them.
 *
 * Training uses a set through the "word_vectors" option (train.c resolves
 * the name, the training worker loads the set with
 * CaiVectorSetForTraining).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "cai/vectors.h"
#include "cai_pg.h"

/* the shared cache (cache.c) keys files by name: keep sets apart from models */
#define CAI_VECTORS_CACHE_PREFIX "vectors\x1f"

/* ------------------------------------------------------------------------
 * Catalog access (inside an elevated catalog session)
 * ------------------------------------------------------------------------ */

/* Latest version of a set (0: none) and its stamp (µs since the Unix epoch); inside a session. */
static int32
CaiVectorsLatestInSession(const char *name, int32 version, int64 *stamp, Oid *owner)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	char		nulls[2] = {' ', version > 0 ? ' ' : 'n'};
	bool		isnull;
	HeapTuple	tup;

	CaiCatalogExecute(psprintf("SELECT version, (extract(epoch FROM created_at) * 1000000)::int8, "
							   "(SELECT f.owner::oid FROM %s f WHERE f.name = $1 ORDER BY f.version LIMIT 1) "
							   "FROM %s WHERE name = $1 AND ($2 IS NULL OR version = $2) "
							   "ORDER BY version DESC LIMIT 1",
							   CaiCatalogReadable("cai_vector_store"), CaiCatalogReadable("cai_vector_store")),
					  2, types, values, nulls, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	tup = SPI_tuptable->vals[0];
	if (stamp != NULL)
		*stamp = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	if (owner != NULL)
		*owner = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	return DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
}

static void
CaiVectorsNotFound(const char *name, int32 version)
{
	if (version > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("vector set \"%s\" has no version %d", name, version)));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("vector set \"%s\" does not exist", name),
			 errhint("List vector sets with SELECT * FROM cai_vectors.")));
}

/* The version (latest when version <= 0) of a set: its number and stamp; 0 when absent. */
int32
CaiVectorSetVersion(const char *name, int32 version, int64 *stamp)
{
	int32		v;

	CaiCatalogConnect();
	v = CaiVectorsLatestInSession(name, version, stamp, NULL);
	CaiCatalogDisconnect();
	return v;
}

/* The stored bytes of a version, detoasted into CurrentMemoryContext. */
static bytea *
CaiVectorSetBytes(const char *name, int32 version)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int32GetDatum(version)};
	bytea	   *result = NULL;

	CaiCatalogConnect();
	CaiCatalogExecute(psprintf("SELECT data FROM %s WHERE name = $1 AND version = $2",
							   CaiCatalogReadable("cai_vector_store")),
					  2, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller);

		result = DatumGetByteaPCopy(d);
		MemoryContextSwitchTo(old);
	}
	CaiCatalogDisconnect();
	if (result == NULL)
		CaiVectorsNotFound(name, version);
	return result;
}

/*
 * Validate set bytes completely and store them as the next version of name;
 * returns the version.  The first version's creator owns the name.  Used by
 * the imports and by cai_train_vectors (in the caller's or the job's
 * transaction).  data: the bytes, any varlena form but not toasted, stored
 * as they are (as CaiCatalogStore takes a model's).
 */
int32
CaiVectorSetStore(const char *name, bytea *data)
{
	const uint8 *bytes = (const uint8 *) VARDATA_ANY(data);
	size_t		len = VARSIZE_ANY_EXHDR(data);
	cai_vectors *v = NULL;
	cai_error	err = {0};
	cai_status	st;
	StringInfoData meta;
	Oid			caller = GetUserId();	/* before the catalog session acts as the store's owner */
	Oid			owner = InvalidOid;
	int32		version;

	CaiCheckModelName(name);
	if (len > (Size) CaiSettingMaxModelSizeKb() * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector set is too large: %zu bytes", len),
				 errdetail("cai.max_model_size is %d kB.", CaiSettingMaxModelSizeKb())));
	st = cai_vectors_open(bytes, len, false, true, &v, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "invalid vector set");
	initStringInfo(&meta);
	appendStringInfo(&meta, "{\"words\": %d, \"dims\": %d, \"subwords\": %s, \"lowercase\": %s, \"source\": ",
					 cai_vectors_count(v), cai_vectors_dim(v), cai_vectors_has_subwords(v) ? "true" : "false",
					 cai_vectors_lowercase(v) ? "true" : "false");
	escape_json(&meta, cai_vectors_source(v));
	appendStringInfoChar(&meta, '}');
	cai_vectors_free(v);

	CaiCatalogConnect();
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(name)};

		/* writers of one name are serialized (another lock class than models') */
		CaiCatalogExecute("SELECT pg_catalog.pg_advisory_xact_lock(1128351060, pg_catalog.hashtext($1))",
						  1, types, values, NULL, SPI_OK_SELECT);
	}
	version = CaiVectorsLatestInSession(name, 0, NULL, &owner);
	CaiCheckOwnership("vector set", name, owner, "add a version");
	{
		Oid			types[5] = {TEXTOID, INT4OID, BYTEAOID, TEXTOID, OIDOID};
		Datum		values[5];

		values[0] = CStringGetTextDatum(name);
		values[1] = Int32GetDatum(version + 1);
		values[2] = PointerGetDatum(data);
		values[3] = CStringGetTextDatum(meta.data);
		values[4] = ObjectIdGetDatum(OidIsValid(owner) ? owner : caller);
		CaiCatalogExecute(psprintf("INSERT INTO %s (name, version, data, metadata, owner) "
								   "VALUES ($1, $2, $3, $4::jsonb, $5::regrole)",
								   CaiCatalogQualify("cai_vector_store")),
						  5, types, values, NULL, SPI_OK_INSERT);
	}
	CaiCatalogDisconnect();
	return version + 1;
}

/* Error unless the caller may add versions to the set name (any role may start a new one). */
void
CaiCheckVectorSetWritable(const char *name)
{
	Oid			owner = InvalidOid;

	CaiCheckModelName(name);
	CaiCatalogConnect();
	(void) CaiVectorsLatestInSession(name, 0, NULL, &owner);
	CaiCheckOwnership("vector set", name, owner, "add a version");
	CaiCatalogDisconnect();
}

/* ------------------------------------------------------------------------
 * Loaded sets: one per name per backend, over the shared copy
 * ------------------------------------------------------------------------ */

typedef struct CaiLoadedVectors
{
	int32		version;
	int64		stamp;
	MemoryContext cxt;
	void	   *map;			/* shared file mapping, or NULL (private copy) */
	size_t		map_len;
	cai_vectors *v;
} CaiLoadedVectors;

typedef struct CaiVectorsEntry
{
	char		name[CAI_MODEL_NAME_MAX + 1];
	CaiLoadedVectors *loaded;
} CaiVectorsEntry;

static HTAB *vectors_cache = NULL;
static List *retired_vectors = NIL;	/* replaced in this transaction: freed at its end */
static bool vectors_callback = false;

static void
CaiFreeLoadedVectors(CaiLoadedVectors *lv)
{
	if (lv->v != NULL)
		cai_vectors_free(lv->v);
	if (lv->map != NULL)
		CaiSharedCacheUnmap(lv->map, lv->map_len);
	MemoryContextDelete(lv->cxt);
}

static void
CaiVectorsXactCallback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	while (retired_vectors != NIL)
	{
		CaiLoadedVectors *lv = linitial(retired_vectors);

		retired_vectors = list_delete_first(retired_vectors);
		CaiFreeLoadedVectors(lv);
	}
}

/* A set from bytes: in place from a mapping (trusted), or a verified private copy. */
static CaiLoadedVectors *
CaiBuildVectors(const uint8 *buf, size_t len, void *map, cai_status *st, cai_error *err)
{
	MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext, "cai_synergy vectors", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	CaiLoadedVectors *lv = palloc0(sizeof(CaiLoadedVectors));

	lv->cxt = cxt;
	*st = cai_vectors_open(buf, len, map != NULL, map == NULL, &lv->v, err);
	MemoryContextSwitchTo(old);
	if (*st != CAI_OK)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	lv->map = map;
	lv->map_len = map != NULL ? len : 0;
	return lv;
}

static CaiLoadedVectors *
CaiLoadVectors(const char *name, int32 version, int64 stamp)
{
	char	   *key = psprintf(CAI_VECTORS_CACHE_PREFIX "%s", name);
	CaiLoadedVectors *lv;
	cai_status	st;
	cai_error	err = {0};
	void	   *map;
	size_t		len;
	bytea	   *data;

	if (CaiSharedCacheEnabled() && CaiSharedCacheOpen(key, version, stamp, &map, &len))
	{
		lv = CaiBuildVectors(map, len, map, &st, &err);
		if (lv != NULL)
			return lv;
		CaiSharedCacheUnmap(map, len);
		CaiSharedCacheDiscard(key, version, stamp);
	}
	data = CaiVectorSetBytes(name, version);
	if (CaiSharedCacheEnabled() &&
		CaiSharedCacheStore(key, version, stamp, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)) &&
		CaiSharedCacheOpen(key, version, stamp, &map, &len))
	{
		/* the file holds the catalog's bytes: verify them once here, then use them in place */
		cai_vectors *check = NULL;

		st = cai_vectors_open(map, len, true, true, &check, &err);
		if (st == CAI_OK)
		{
			cai_vectors_free(check);
			lv = CaiBuildVectors(map, len, map, &st, &err);
			if (lv != NULL)
			{
				pfree(data);
				return lv;
			}
		}
		CaiSharedCacheUnmap(map, len);
		CaiSharedCacheDiscard(key, version, stamp);
	}
	lv = CaiBuildVectors((const uint8 *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), NULL, &st, &err);
	pfree(data);
	if (lv == NULL)
		CaiReportCoreError(st, &err, psprintf("cannot load vector set \"%s\" version %d", name, version));
	return lv;
}

/*
 * The latest version of a set, loaded (cached per backend); NULL when no set
 * has that name.  The caller keeps it for the statement.
 */
static CaiLoadedVectors *
CaiLoadedVectorSet(const char *name)
{
	CaiVectorsEntry *entry;
	bool		found;
	int64		stamp = 0;
	int32		version;

	version = CaiVectorSetVersion(name, 0, &stamp);
	if (version == 0)
		return NULL;
	if (vectors_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = CAI_MODEL_NAME_MAX + 1;
		ctl.entrysize = sizeof(CaiVectorsEntry);
		ctl.hcxt = CacheMemoryContext;
		vectors_cache = hash_create("cai_synergy vector sets", 8, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (!vectors_callback)
	{
		RegisterXactCallback(CaiVectorsXactCallback, NULL);
		vectors_callback = true;
	}
	entry = hash_search(vectors_cache, name, HASH_ENTER, &found);
	if (!found)
		entry->loaded = NULL;
	if (entry->loaded == NULL || entry->loaded->version != version || entry->loaded->stamp != stamp)
	{
		CaiLoadedVectors *lv = CaiLoadVectors(name, version, stamp);

		lv->version = version;
		lv->stamp = stamp;
		if (entry->loaded != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			retired_vectors = lappend(retired_vectors, entry->loaded);
			MemoryContextSwitchTo(old);
		}
		entry->loaded = lv;
	}
	return entry->loaded;
}

/* The latest version of a set, or NULL (for cai_embed, which also takes encoders: encoder.c). */
cai_vectors *
CaiVectorSetLookup(const char *name)
{
	CaiLoadedVectors *lv = CaiLoadedVectorSet(name);

	return lv != NULL ? lv->v : NULL;
}

/* The latest version of a set, loaded (checked once per statement per call site). */
static cai_vectors *
CaiGetVectors(FunctionCallInfo fcinfo, const char *name)
{
	CaiVectorsEntry *cc = (CaiVectorsEntry *) fcinfo->flinfo->fn_extra;
	CaiLoadedVectors *lv;

	if (cc != NULL && strcmp(cc->name, name) == 0)
		return cc->loaded->v;
	CaiCheckModelName(name);
	lv = CaiLoadedVectorSet(name);
	if (lv == NULL)
		CaiVectorsNotFound(name, 0);
	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CaiVectorsEntry));
		fcinfo->flinfo->fn_extra = cc;
	}
	strlcpy(cc->name, name, sizeof(cc->name));
	cc->loaded = lv;
	return lv->v;
}

/* ------------------------------------------------------------------------
 * Training: a set for the "word_vectors" option
 * ------------------------------------------------------------------------ */

/*
 * Load a version of a set for training (verified private copy in
 * CurrentMemoryContext's lifetime: the caller frees it with
 * cai_vectors_free), its words and matrix as cai_word_vectors, and a
 * provenance fragment {"name", "version", "md5"} for the model's metadata.
 */
cai_vectors *
CaiVectorSetForTraining(const char *name, int32 version, cai_word_vectors *wv, char **provenance)
{
	bytea	   *data = CaiVectorSetBytes(name, version);
	cai_vectors *v = NULL;
	cai_error	err = {0};
	cai_status	st;
	char		md5[2 * MD5_DIGEST_LENGTH + 1];
	const char *errstr = NULL;
	StringInfoData p;

	st = cai_vectors_open((const uint8 *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), false, true, &v, &err);
	if (st == CAI_OK)
		st = cai_vectors_word_vectors(v, wv, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, psprintf("cannot load vector set \"%s\" version %d", name, version));
	if (!pg_md5_hash(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), md5, &errstr))
		elog(ERROR, "could not compute an MD5 hash: %s", errstr ? errstr : "?");
	initStringInfo(&p);
	appendStringInfoString(&p, "{\"name\": ");
	escape_json(&p, name);
	appendStringInfo(&p, ", \"version\": %d, \"md5\": \"%s\", \"words\": %d, \"dims\": %d}",
					 version, md5, cai_vectors_count(v), cai_vectors_dim(v));
	*provenance = p.data;
	pfree(data);
	return v;
}

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------ */

static char *
CaiVectorsNameArg(FunctionCallInfo fcinfo, int arg)
{
	if (PG_ARGISNULL(arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the vector set name must not be NULL")));
	return text_to_cstring(PG_GETARG_TEXT_PP(arg));
}

/* cai_import_vectors(name, data bytea, format text): a file's bytes; returns the version */
PG_FUNCTION_INFO_V1(cai_import_vectors_file);
Datum
cai_import_vectors_file(PG_FUNCTION_ARGS)
{
	char	   *name = CaiVectorsNameArg(fcinfo, 0);
	bytea	   *data;
	char	   *format = PG_ARGISNULL(2) ? "text" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	cai_error	err = {0};
	cai_status	st;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	int32		version;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("vector data must not be NULL")));
	CaiCheckWritable("import a vector set");
	data = PG_GETARG_BYTEA_PP(1);
	if (pg_strcasecmp(format, "cai") == 0)
		/* the bytes of cai_export_vectors: validated by the store */
		version = CaiVectorSetStore(name, data);
	else
	{
		cai_vec_format fmt;
		cai_vec_limits limits = {0, VARSIZE_ANY_EXHDR(data)};

		st = cai_vec_format_find(format, &fmt, &err);
		if (st == CAI_OK)
			st = cai_vectors_parse((const uint8 *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data), fmt, &limits,
								   format, &bytes, &len, NULL, NULL, &err);
		if (st == CAI_ERR_INVALID && bytes == NULL && strstr(err.msg, "format") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s", err.msg),
					 errhint("Formats: text (GloVe, word2vec text, fastText .vec), binary (word2vec), cai (cai_export_vectors).")));
		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "invalid vector file");
		data = CaiBytea(bytes, len);
		cai_free(bytes);
		version = CaiVectorSetStore(name, data);
	}
	PG_RETURN_INT32(version);
}

/* cai_import_vectors(name, source): rows (word text, vector real[]) of a table or query */
PG_FUNCTION_INFO_V1(cai_import_vectors_query);
Datum
cai_import_vectors_query(PG_FUNCTION_ARGS)
{
	char	   *name = CaiVectorsNameArg(fcinfo, 0);
	char	   *source;
	char	   *query;
	SPIPlanPtr	plan;
	Portal		portal;
	int64		n = 0,
				cap = 0;
	int			dim = 0;
	char	  **words = NULL;
	size_t	   *lens = NULL;
	float	   *vecs = NULL;
	MemoryContext keep = CurrentMemoryContext;
	cai_vectors_data d = {0};
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	cai_error	err = {0};
	cai_status	st;
	int32		version;
	bytea	   *data;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the source of the vectors must not be NULL")));
	CaiCheckWritable("import a vector set");
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	query = CaiSourceQuery(source, "word", "vector", "pg_catalog.text", "pg_catalog.float4[]");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("could not prepare the vectors query: %s", SPI_result_code_string(SPI_result))));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		wnull,
						vnull;
			Datum		w = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &wnull);
			Datum		vd = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &vnull);
			ArrayType  *a;
			MemoryContext old;

			if (wnull || vnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("row " INT64_FORMAT " of the vectors has a NULL %s", n + 1, wnull ? "word" : "vector")));
			a = DatumGetArrayTypeP(vd);
			if (ARR_NDIM(a) != 1 || ARR_HASNULL(a))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("row " INT64_FORMAT " of the vectors: the vector must be a one-dimensional real[] without NULLs", n + 1)));
			if (dim == 0)
			{
				dim = ARR_DIMS(a)[0];
				if (dim < 1 || dim > CAI_VEC_MAX_DIM)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("row 1 of the vectors has %d dimensions; 1 to %d are allowed", dim, CAI_VEC_MAX_DIM)));
			}
			else if (ARR_DIMS(a)[0] != dim)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("row " INT64_FORMAT " of the vectors has %d dimensions, row 1 has %d", n + 1,
								ARR_DIMS(a)[0], dim)));
			old = MemoryContextSwitchTo(keep);
			if (n == cap)
			{
				if (n >= CAI_VEC_MAX_WORDS)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("too many vectors")));
				cap = cap == 0 ? 4096 : cap * 2;
				words = words ? repalloc_huge(words, sizeof(char *) * cap) : palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE);
				lens = lens ? repalloc_huge(lens, sizeof(size_t) * cap) : palloc_extended(sizeof(size_t) * cap, MCXT_ALLOC_HUGE);
				vecs = vecs ? repalloc_huge(vecs, sizeof(float) * cap * dim) : palloc_extended(sizeof(float) * cap * dim, MCXT_ALLOC_HUGE);
				if ((Size) cap * dim * sizeof(float) > (Size) CaiSettingMaxModelSizeKb() * 1024)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("the vectors are larger than cai.max_model_size (%d kB)", CaiSettingMaxModelSizeKb())));
			}
			words[n] = TextDatumGetCString(w);
			lens[n] = strlen(words[n]);
			memcpy(vecs + n * dim, ARR_DATA_PTR(a), sizeof(float) * dim);
			n++;
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the source of the vectors has no rows")));
	d.n_words = (int32) n;
	d.dim = dim;
	d.words = (const char *const *) words;
	d.lens = lens;
	d.vectors = vecs;
	d.source = source;
	st = cai_vectors_write(&d, &bytes, &len, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "invalid vectors");
	data = CaiBytea(bytes, len);
	cai_free(bytes);
	version = CaiVectorSetStore(name, data);
	PG_RETURN_INT32(version);
}

/* cai_export_vectors(name, version DEFAULT NULL): the stored bytes (latest version when NULL) */
PG_FUNCTION_INFO_V1(cai_export_vectors);
Datum
cai_export_vectors(PG_FUNCTION_ARGS)
{
	char	   *name = CaiVectorsNameArg(fcinfo, 0);
	int32		version = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);

	version = CaiVectorSetVersion(name, version, NULL);
	if (version == 0)
		CaiVectorsNotFound(name, PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	PG_RETURN_BYTEA_P(CaiVectorSetBytes(name, version));
}

/* cai_drop_vectors(name, version DEFAULT NULL): versions dropped (owner only) */
PG_FUNCTION_INFO_V1(cai_drop_vectors);
Datum
cai_drop_vectors(PG_FUNCTION_ARGS)
{
	char	   *name = CaiVectorsNameArg(fcinfo, 0);
	Oid			owner = InvalidOid;
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', PG_ARGISNULL(1) ? 'n' : ' '};
	int64		dropped;

	CaiCheckWritable("drop a vector set");
	values[0] = CStringGetTextDatum(name);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	CaiCatalogConnect();
	if (CaiVectorsLatestInSession(name, PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1), NULL, &owner) == 0)
		CaiVectorsNotFound(name, PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1));
	CaiCheckOwnership("vector set", name, owner, "drop it");
	CaiCatalogExecute(psprintf("DELETE FROM %s WHERE name = $1 AND ($2 IS NULL OR version = $2)",
							   CaiCatalogQualify("cai_vector_store")),
					  2, types, values, nulls, SPI_OK_DELETE);
	dropped = (int64) SPI_processed;
	CaiCatalogDisconnect();
	PG_RETURN_INT32((int32) dropped);
}

/* cai_similar(vectors, word, k): the k nearest words by cosine */
PG_FUNCTION_INFO_V1(cai_similar);
Datum
cai_similar(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = CaiVectorsNameArg(fcinfo, 0);
	text	   *word;
	int32		k = PG_ARGISNULL(2) ? 10 : PG_GETARG_INT32(2);
	cai_vectors *v;
	int32_t    *ids;
	float	   *scores;
	int			n_out = 0;
	cai_vec_hit hit;
	cai_error	err = {0};
	cai_status	st;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the word must not be NULL")));
	if (k < 1 || k > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 1 and 10000, not %d", k)));
	word = PG_GETARG_TEXT_PP(1);
	CaiCheckInputLength(VARSIZE_ANY_EXHDR(word));
	v = CaiGetVectors(fcinfo, name);
	InitMaterializedSRF(fcinfo, 0);
	k = Min(k, cai_vectors_count(v));
	ids = palloc(sizeof(int32_t) * k);
	scores = palloc(sizeof(float) * k);
	st = cai_vectors_similar_word(v, VARDATA_ANY(word), VARSIZE_ANY_EXHDR(word), CAI_VEC_CASE_AUTO, k,
								  ids, scores, &n_out, &hit, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "cai_similar failed");
	for (int i = 0; i < n_out; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(cai_vectors_word(v, ids[i], NULL));
		values[1] = Float4GetDatum(scores[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * A set's embedding of a text: the mean of its tokens' word vectors, as
 * real[] (*isnull when no token has one).  cai_embed (encoder.c) calls it
 * for a vector set's name.
 */
Datum
CaiVectorSetEmbed(cai_vectors *v, text *input, bool *isnull)
{
	float	   *out;
	Datum	   *elems;
	size_t		n_tokens = 0,
				n_found = 0;
	int			dim = cai_vectors_dim(v);
	cai_error	err = {0};
	cai_status	st;

	out = palloc(sizeof(float) * dim);
	st = cai_vectors_embed(v, VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), CAI_VEC_CASE_AUTO, 0, out,
						   &n_tokens, &n_found, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "cai_embed failed");
	*isnull = n_found == 0;
	if (n_found == 0)
		return (Datum) 0;
	elems = palloc(sizeof(Datum) * dim);
	for (int i = 0; i < dim; i++)
		elems[i] = Float4GetDatum(out[i]);
	return PointerGetDatum(construct_array(elems, dim, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT));
}
