/*
 * train.h: what the two halves of training share: the caller's backend
 * (train.c: arguments, options, launch, storing the version) and the
 * background worker (train_worker.c: reading rows, running the core trainer).
 */
#ifndef CAI_TRAIN_H
#define CAI_TRAIN_H

#include "postgres.h"

#include "fmgr.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
#include "utils/elog.h"
#include "utils/jsonb.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

#include "cai/encoder_model.h"
#include "cai/model.h"
#include "cai/textclf.h"

#define CAI_TRAIN_MAGIC		0x43414954
#define CAI_TRAIN_KEY_SHARED	1
#define CAI_TRAIN_KEY_MQ		2
#define CAI_TRAIN_MQ_SIZE	(1024 * 1024)
#define CAI_TRAIN_KEY_ROWS	3	/* synchronous cai_train: the caller's rows (stream.c) */
#define CAI_TRAIN_ROWS_SIZE	(4 * 1024 * 1024)
#define CAI_FETCH_BATCH		10000

/* Everything the worker needs, in the DSM segment. */
typedef struct CaiTrainShared
{
	Oid			database_id;
	Oid			authenticated_user_id;
	Oid			session_user_id;
	Oid			outer_user_id;
	Oid			current_user_id;
	int			sec_context;
	bool		session_user_is_superuser;
	bool		role_is_superuser;
	int			threads;
	int64		training_memory;	/* bytes */
	/* NUL-terminated strings at these offsets into data[] */
	Size		name_off;
	Size		task_off;
	Size		query_off;
	Size		valid_query_off;	/* empty string: split from training data */
	Size		options_off;
	Size		search_path_off;
	Size		source_off;
	Size		vectors_query_off;	/* empty string: no word vectors from a query */
	Size		vector_set_off;		/* empty string: no vector set */
	Size		search_off;		/* empty string: cai_train; else cai_tune's search (tune.c) */
	Size		encoder_off;	/* empty string: no "encoder" option; else the model to fine-tune */
	int32		vector_set_version;
	int32		encoder_version;	/* the encoder's version, pinned by the caller */
	int64		job_id;			/* 0: synchronous cai_train */
	bool		rows_streamed;	/* the caller runs the source queries and sends the rows (stream.c) */
	volatile bool job_recorded;	/* set by the worker once its job row is committed */
	int			leader_pgprocno;
	int			leader_pid;
	int			max_training_jobs;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} CaiTrainShared;

PGDLLEXPORT void cai_train_worker_main(Datum main_arg);

/* The worker's progress callback state (train_worker.c). */
typedef struct CaiWorkerProgressState
{
	int64		job_id;			/* the job row progress goes to (a trial's while tuning), 0: none */
	int			leader_pid;		/* synchronous caller, 0 for jobs */
	ErrorData  *error;			/* an error raised inside the callback */
	TimestampTz last_update;
	TimestampTz started;		/* training began (for the history's seconds) */
	MemoryContext cxt;			/* where history lives */
	StringInfo	history;		/* JSON array of finished epochs, without the closing ']' */
} CaiWorkerProgressState;

/* What a task's trainer hands back for delivery. */
typedef struct CaiTrained
{
	uint8_t    *model;
	size_t		model_len;
	char	   *metrics;
	char	   *history;		/* JSON array of the epochs (cai_training_history) */
	int64		rows;
	int64		skipped;
	const char *deploy_policy;
} CaiTrained;

/* train_worker.c */
extern bool CaiWorkerProgress(void *ctx, const cai_progress *p);
extern void CaiCheckTrainingMemory(CaiTrainShared *shared, size_t need);
extern bool CaiTrainingMemoryFits(CaiTrainShared *shared, size_t need);
extern void CaiTrainingDone(cai_status st, const cai_error *err, CaiWorkerProgressState *ps, const cai_options *opts,
							int64 rows, int64 skipped, CaiTrained *out);

/* pretrain.c: training of task "encoder" (pretraining) */
extern cai_options *CaiPretrainOptions(const char *json);
extern Datum CaiPretrainEntry(FunctionCallInfo fcinfo, bool async);	/* train.c */
extern void CaiWorkerPretrain(const char *json, int threads, const cai_textclf_data *texts,
							  CaiWorkerProgressState *ps, CaiTrained *out);

/* tune.c */
extern char *CaiTuneFixedOptions(const cai_task *task, const char *search);
extern void CaiWorkerTune(CaiTrainShared *shared, CaiWorkerProgressState *ps, const cai_train_set *set,
						  const char *provenance, int64 rows, int64 skipped, CaiTrained *out);

/* train.c */
extern cai_options *CaiParseOptions(const char *task, const char *json, const cai_arch **arch_out);
extern double CaiMetricsScore(Jsonb *metrics);
extern int32 CaiStoreTrainedModel(const char *name, bytea *model, const char *metrics_json,
								  const char *history_json, int64 train_rows, int64 skipped_rows, const char *deploy_policy,
								  bool *deployed, Jsonb **metrics_out);

/*
 * stream.c: the rows of a source query, read where they can be seen.  An
 * asynchronous job's worker runs its queries itself (SPI); a synchronous
 * cai_train's caller runs them, with its own snapshot, identity and temporary
 * tables, and sends the rows to the worker through a queue.  The readers in
 * train_worker.c see batches of tuples either way.
 */
typedef struct CaiSource
{
	const char *what;			/* for messages: "source", "validation source", ... */
	Portal		portal;			/* SPI form */
	struct shm_mq_handle *mqh;	/* queue form */
	TupleDesc	desc;
	HeapTuple  *tuples;			/* the current batch */
	uint64		n;
	bool		done;
	MemoryContext batch_cxt;
} CaiSource;

extern void CaiSourceUseQueue(struct shm_mq_handle *mqh);
extern void CaiSourceOpen(CaiSource *s, const char *query, const char *what);
extern bool CaiSourceNext(CaiSource *s);
extern void CaiSourceClose(CaiSource *s);
extern bool CaiStreamQuery(struct shm_mq_handle *rows, struct shm_mq_handle *worker,
						   void (*on_message) (void *data, Size nbytes, void *arg), void *arg,
						   const char *query, const char *what);

#endif							/* CAI_TRAIN_H */
