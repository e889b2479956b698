/*
 * cai_pg.h: internal interfaces of the PostgreSQL layer.
 *
 * The layer is thin: it checks SQL arguments and privileges, reads and writes
 * the model catalog, runs training in a background worker and turns core
 * statuses into ereport()s.
 */
#ifndef CAI_PG_H
#define CAI_PG_H

#include "postgres.h"

#include <limits.h>
#include <time.h>

#include "fmgr.h"
#include "utils/jsonb.h"

#include "cai/common.h"
#include "cai/format.h"
#include "cai/model.h"
#include "cai/ner.h"
#include "cai/textclf.h"

/* Limits: DEFAULT / MIN / MAX triplets */
#define CAI_MAX_MODEL_SIZE_DEFAULT	(1024 * 1024)	/* kB: 1 GB */
#define CAI_MAX_MODEL_SIZE_MIN		64
#define CAI_MAX_MODEL_SIZE_MAX		(MaxAllocHugeSize / 1024 > INT_MAX ? INT_MAX : (int) (MaxAllocHugeSize / 1024))
#define CAI_MAX_INPUT_LENGTH_DEFAULT	(10 * 1024 * 1024)	/* bytes */
#define CAI_MAX_INPUT_LENGTH_MIN	1024
#define CAI_MAX_INPUT_LENGTH_MAX	(1024 * 1024 * 1024)
#define CAI_TRAINING_MEMORY_DEFAULT (4 * 1024 * 1024)	/* kB: 4 GB */
#define CAI_TRAINING_MEMORY_MIN		1024
#define CAI_TRAINING_MEMORY_MAX		INT_MAX
#define CAI_THREADS_DEFAULT			1
#define CAI_THREADS_MIN				1
#define CAI_THREADS_MAX				64
#define CAI_MAX_TRAINING_JOBS_DEFAULT	4
#define CAI_MAX_TRAINING_JOBS_MIN	1
#define CAI_MAX_TRAINING_JOBS_MAX	64
#define CAI_SHARED_CACHE_SIZE_DEFAULT	1024	/* MB */
#define CAI_SHARED_CACHE_SIZE_MIN	0
#define CAI_SHARED_CACHE_SIZE_MAX	(1024 * 1024)
#define CAI_JOB_HISTORY				1000	/* finished jobs kept */
#define CAI_MODEL_NAME_MAX			200	/* bytes, also a CHECK in the table */

/*
 * Settings (cai_synergy.c), read through accessors: on PostgreSQL 15 they are
 * defined only once one is set or needed (see cai_synergy.c).
 */
extern void CaiDefineAllSettings(void);
extern const char *CaiSettingDefaultModel(void);
extern int	CaiSettingMaxInputLength(void);
extern int	CaiSettingSharedCacheSizeMb(void);
extern int	CaiSettingMaxModelSizeKb(void);
extern int	CaiSettingTrainingMemoryKb(void);
extern int	CaiSettingThreads(void);
extern int	CaiSettingMaxTrainingJobs(void);

/* cache.c: shared model files */
extern bool CaiSharedCacheEnabled(void);
extern bool CaiSharedCacheOpen(const char *name, int32 version, int64 stamp, void **map, size_t *len);
extern bool CaiSharedCacheStore(const char *name, int32 version, int64 stamp, const void *bytes, size_t len);
extern void CaiSharedCacheDiscard(const char *name, int32 version, int64 stamp);
extern void CaiSharedCacheUnmap(void *map, size_t len);

/* jobs.c: asynchronous training jobs (cai_job_store) */
extern int64 CaiNextJobId(void);
extern int	CaiRunningTrainingWorkers(void);
extern void CaiJobInsert(int64 job_id, const char *model, const char *task, Oid role,
						 const char *source, const char *options_json);
extern void CaiJobWaitForSlot(int64 job_id, int max_jobs);
extern void CaiJobProgress(int64 job_id, int epoch, int epochs, double fraction,
						   double loss, double val_score, double rows_per_sec, const char *history_json);
extern void CaiJobFinish(int64 job_id, const char *state, int32 version, const char *error);
extern int64 CaiTrialInsert(int64 tuning_id, int trial, int config, int rung, const char *model, const char *task,
							Oid role, const char *source, const char *options_json);
extern void CaiTrialFinish(int64 job_id, const char *state, double score, const char *error,
						   int64 tuning_job, int done, int planned, double best);

/* cai_synergy.c */
extern void CaiUseMemoryContextAllocator(void);
extern void CaiReportCoreError(cai_status st, const cai_error *err, const char *context) pg_attribute_noreturn();
extern int	CaiStatusSqlstate(cai_status st);
extern void CaiCheckModelName(const char *name);
extern void CaiCheckInputLength(Size len);

/* catalog.c: model store */
typedef struct CaiModelRow
{
	char	   *name;
	int32		version;
	char	   *task;
	Oid			owner;
	bytea	   *model;			/* detoasted copy, or NULL when not fetched */
	Jsonb	   *metrics;		/* may be NULL */
} CaiModelRow;

/* citus.c */
extern Oid	CaiLocalCopy(Oid relid);
extern bool CaiCopyIsRemote(Oid relid);
extern void CaiCheckNotCitusWorker(Oid relid, const char *what);
extern void CaiCheckTrainingNode(const char *what);

extern void CaiCatalogConnect(void);
extern char *CaiCatalogQualify(const char *relname);
extern char *CaiCatalogReadable(const char *relname);
extern void CaiCatalogExecute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect);
extern void CaiCatalogDisconnect(void);
extern bool CaiCatalogFetch(const char *name, int32 version, bool want_bytes, CaiModelRow *row);
extern int32 CaiCatalogVersion(const char *name, int32 version, char **task, int64 *stamp);
extern Oid	CaiCatalogModelOwner(const char *name);
extern void CaiCheckOwnership(const char *kind, const char *name, Oid owner, const char *action);
extern void CaiCheckModelOwnership(const char *name, Oid owner, const char *action);
extern void CaiCheckNewVersion(const char *name, const char *task, const char *action);
extern bytea *CaiByteaAlloc(Size len);
extern bytea *CaiBytea(const void *bytes, Size len);
extern int32 CaiCatalogStore(const char *name, int32 version_wanted, const char *task, bytea *data,
							 const char *meta_json, const char *metrics_json, const char *history_json,
							 const char *deploy_policy, bool *deployed);
extern bool CaiCatalogHasHistory(void);
extern char *CaiCatalogOnlyDeployedModel(int *count);
extern void CaiValidateModelBytes(const uint8 *bytes, Size len, char **task, char **meta_json);

/* train.c */
extern void CaiCheckWritable(const char *what);
extern char *CaiSourceQuery(const char *source, const char *input_column, const char *label_column,
							 const char *input_cast, const char *label_cast);

/* predict.c: backend model cache */
typedef struct CaiLoadedModel
{
	char	   *name;
	int32		version;
	int64		stamp;			/* creation time of the version (µs) */
	const char *task;			/* the model's own (cai_model_task) */
	MemoryContext cxt;
	void	   *map;			/* shared file mapping holding the tensors, or NULL */
	size_t		map_len;
	cai_model  *model;			/* any architecture, through the registry (model.h) */
	int			n_labels;		/* classes, or entity types of a tagger */
	const char **labels;
	/* inference since the last report to cai_model_stats (stats.c) */
	uint64		stat_rows;
	uint64		stat_ns;
	uint32		stat_tick;		/* per-row calls, for sampling the clock */
} CaiLoadedModel;

/*
 * stats.c: rows and time of the inference functions per model.  A per-row
 * function reads the clock on one call in CAI_STATS_SAMPLE (a clock read
 * costs about 40 ns here, a fast-model prediction about 1 µs) and counts that
 * call's time CAI_STATS_SAMPLE times: an unbiased estimate of the total.
 */
#define CAI_STATS_SAMPLE 16

extern void CaiStatsReport(CaiLoadedModel *m);
extern void CaiStatsFlushAll(void);	/* predict.c: every loaded model of this process */

static inline uint64
CaiStatsClock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000000 + (uint64) ts.tv_nsec;
}

/* before one per-row call: the clock on a sampled call, else 0 */
static inline uint64
CaiStatsStart(CaiLoadedModel *m)
{
	return (++m->stat_tick % CAI_STATS_SAMPLE) == 0 ? CaiStatsClock() : 0;
}

/* after scoring rows inputs with m since start (CaiStatsStart, or CaiStatsClock with scale 1) */
static inline void
CaiStatsAdd(CaiLoadedModel *m, uint64 start, uint64 rows, uint64 scale)
{
	if (start != 0)
		m->stat_ns += (CaiStatsClock() - start) * scale;
	m->stat_rows += rows;
}

extern CaiLoadedModel *CaiGetModel(FunctionCallInfo fcinfo, const char *name);
extern CaiLoadedModel *CaiGetModelText(FunctionCallInfo fcinfo, text *name);
extern CaiLoadedModel *CaiGetModelVersion(FunctionCallInfo fcinfo, text *name, int32 version);
extern CaiLoadedModel *CaiLookupModel(const char *name, int32 version, int32 *found);
/* train.c: NER rows */
/* Sentences of tokens and tags read for NER, in a given context. */
typedef struct CaiNerRows
{
	int64		n;				/* sentences */
	int64		cap;
	int64	   *offsets;		/* (n + 1) */
	int64		ntok;
	int64		tokcap;
	int32	   *token_ids;		/* (ntok) index in string_ptr / string_len (4 bytes a token, not a pointer and a length) */
	uint16	   *tag_ids;		/* (ntok) index in tag_names (2 bytes a token, not a pointer) */
	char	  **tag_names;		/* (n_tag_names) the distinct tags */
	int32		n_tag_names;
	struct cai_strtab *tag_tab;	/* the distinct tags' ids */
	int64		skipped;
	int64		rowno;			/* rows read, for messages */
	bool		spans_form;		/* text and jsonb spans, not token and tag arrays (from the columns) */
	/* one copy of each distinct token and tag string (read-only) */
	MemoryContext keep;			/* where the rows are kept */
	struct cai_strtab *strings;	/* the distinct strings' ids */
	char	  **string_ptr;		/* (string_cap) each id's copy */
	size_t	   *string_len;		/* (string_cap) its byte length */
	int32		string_cap;
} CaiNerRows;

extern void CaiReadNerRows(const char *query, CaiNerRows *r, MemoryContext keep, const char *what);
extern const char **CaiNerTagStrings(const CaiNerRows *r);
extern void CaiNerRowsData(const CaiNerRows *r, struct cai_ner_data *d);

/* ner.c */
extern Datum CaiNerPredictJson(CaiLoadedModel *m, text *input);
extern text *CaiEntitiesJson(CaiLoadedModel *m, const char *txt, const cai_entity *ents, size_t n);
extern Datum CaiNerEvaluate(FunctionCallInfo fcinfo, CaiLoadedModel *m);

extern void CaiRequireKind(CaiLoadedModel *m, cai_task_kind kind, const char *function);

/* drift.c */
extern char *CaiDriftReference(const uint8 *bytes, size_t len, const cai_arch *arch, const cai_options *opts,
							   const cai_train_set *set);

/* vector_sets.c */
struct cai_vectors;
extern int32 CaiVectorSetVersion(const char *name, int32 version, int64 *stamp);
extern void CaiCheckVectorSetWritable(const char *name);
extern int32 CaiVectorSetStore(const char *name, bytea *data);
extern struct cai_vectors *CaiVectorSetForTraining(const char *name, int32 version, cai_word_vectors *wv,
												   char **provenance);
extern struct cai_vectors *CaiVectorSetLookup(const char *name);
extern Datum CaiVectorSetEmbed(struct cai_vectors *v, text *input, bool *isnull);

/* encoder.c */
struct cai_encoder_bundle;
extern int32 CaiEncoderVersion(const char *name, int32 version);
extern cai_model *CaiEncoderForTraining(const char *name, int32 version, const struct cai_encoder_bundle **bundle,
										char **provenance);

#endif							/* CAI_PG_H */
