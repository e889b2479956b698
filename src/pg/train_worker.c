/*
 * train_worker.c: the training background worker.  Connected as the caller
 * (same database, roles, security context and search_path), it reads the
 * training rows of the source query in one read-only transaction (texts and
 * labels, or token arrays and tags, or text and entity spans; optional word
 * vectors), runs the architecture's trainer through the model interface with
 * progress NOTICEs and cancellation, and sends the model bytes back to the
 * caller (cai_train) or stores them as a new version itself (an asynchronous
 * job).  The caller's side is train.c.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "cai/ner.h"
#include "cai/options.h"
#include "cai_pg.h"
#include "train.h"

/* ------------------------------------------------------------------------
 * Worker side
 * ------------------------------------------------------------------------ */

/* Training rows read from the source, in the worker's training context. */
typedef struct CaiRows
{
	int64		n;
	int64		cap;
	char	  **texts;
	size_t	   *lens;
	char	  **labels;
	int64		skipped;
} CaiRows;

/*
 * One pass over the rows of a training source (stream.c), shared by the
 * readers below: row() is called for each row whose first column, and second
 * when there is one, are not NULL, in the batch's memory context (what it
 * allocates there is freed with the batch; what it keeps it allocates in its
 * own context).  Rows with a NULL, and with need_label rows of a one-column
 * source, are counted in *skipped.  columns(), when given, sees the columns
 * once, before the first row.  rowno counts every row read, from 1.
 */
typedef struct CaiRowReader
{
	void		(*columns) (void *arg, TupleDesc desc);
	void		(*row) (void *arg, TupleDesc desc, Datum in, Datum lab, int64 rowno);
	void	   *arg;
	bool		need_label;
} CaiRowReader;

static void
CaiReadSource(const char *query, const char *what, const CaiRowReader *rd, int64 *skipped)
{
	CaiSource	src;
	int64		rowno = 0;
	bool		first = true;

	CaiSourceOpen(&src, query, what);
	while (CaiSourceNext(&src))
	{
		TupleDesc	desc = src.desc;
		bool		has_label = desc->natts > 1;
		MemoryContext old;

		if (first && rd->columns != NULL)
			rd->columns(rd->arg, desc);
		first = false;
		old = MemoryContextSwitchTo(src.batch_cxt);
		for (uint64 i = 0; i < src.n; i++)
		{
			bool		in_null;
			bool		lab_null = false;
			Datum		in = heap_getattr(src.tuples[i], 1, desc, &in_null);
			Datum		lab = has_label ? heap_getattr(src.tuples[i], 2, desc, &lab_null) : (Datum) 0;

			rowno++;
			if (in_null || lab_null || (rd->need_label && !has_label))
			{
				if (skipped != NULL)
					(*skipped)++;
				continue;
			}
			rd->row(rd->arg, desc, in, lab, rowno);
		}
		MemoryContextSwitchTo(old);
		CHECK_FOR_INTERRUPTS();
	}
	CaiSourceClose(&src);
}

/* an array grown to cap elements of size bytes, in the current context */
static void *
CaiResize(void *p, int64 cap, Size size)
{
	return p == NULL ? palloc_extended(size * cap, MCXT_ALLOC_HUGE) : repalloc_huge(p, size * cap);
}

typedef struct CaiRowsReading
{
	CaiRows    *rows;
	MemoryContext keep;
} CaiRowsReading;

static void
CaiRowsAdd(void *arg, TupleDesc desc, Datum in, Datum lab, int64 rowno)
{
	CaiRowsReading *rr = arg;
	CaiRows    *rows = rr->rows;
	text	   *t = DatumGetTextPP(in);
	MemoryContext old = MemoryContextSwitchTo(rr->keep);

	if (rows->n == rows->cap)
	{
		rows->cap = rows->cap == 0 ? 1024 : rows->cap * 2;
		rows->texts = CaiResize(rows->texts, rows->cap, sizeof(char *));
		rows->lens = CaiResize(rows->lens, rows->cap, sizeof(size_t));
		rows->labels = CaiResize(rows->labels, rows->cap, sizeof(char *));
	}
	rows->lens[rows->n] = VARSIZE_ANY_EXHDR(t);
	rows->texts[rows->n] = pnstrdup(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	rows->labels[rows->n] = desc->natts > 1 ? TextDatumGetCString(lab) : NULL;
	rows->n++;
	MemoryContextSwitchTo(old);
}

/* rows of text (and a label when the source has a second column), as strings */
static void
CaiReadRows(const char *query, CaiRows *rows, MemoryContext keep, const char *what)
{
	CaiRowsReading rr = {rows, keep};
	CaiRowReader rd = {NULL, CaiRowsAdd, &rr, false};

	CaiReadSource(query, what, &rd, &rows->skipped);
}

/*
 * Text classification rows as read: each text tokenized at once and kept as
 * token ids (cai_textclf_tokens, the words shared with the validation rows),
 * each label as the id of its string in a table of the distinct labels, so
 * that a row costs its token ids and 12 bytes, not its text.
 */
typedef struct CaiTextRows
{
	cai_textclf_tokens tokens;
	int32	   *labels;			/* (n) ids in the label table */
	char	  **texts;			/* (n) the texts too, for an architecture that reads them; else NULL */
	size_t	   *lens;
	int64		cap;
	int64		skipped;
} CaiTextRows;

typedef struct CaiTextRowsReading
{
	CaiTextRows *rows;
	cai_strtab *label_tab;
	bool		keep_texts;
	MemoryContext keep;
} CaiTextRowsReading;

static void
CaiTextRowsAdd(void *arg, TupleDesc desc, Datum in, Datum lab, int64 rowno)
{
	CaiTextRowsReading *rr = arg;
	CaiTextRows *rows = rr->rows;
	text	   *t = DatumGetTextPP(in);	/* detoasted in the batch's context; only ids are kept */
	text	   *label = DatumGetTextPP(lab);
	MemoryContext old = MemoryContextSwitchTo(rr->keep);
	cai_error	err = {0};
	cai_status	st;
	int32		id;
	bool		added;

	if (rows->tokens.n == (size_t) rows->cap)
	{
		rows->cap = rows->cap == 0 ? 1024 : rows->cap * 2;
		rows->labels = CaiResize(rows->labels, rows->cap, sizeof(int32));
		if (rr->keep_texts)
		{
			rows->texts = CaiResize(rows->texts, rows->cap, sizeof(char *));
			rows->lens = CaiResize(rows->lens, rows->cap, sizeof(size_t));
		}
	}
	if (rr->keep_texts)
	{
		rows->texts[rows->tokens.n] = pnstrdup(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		rows->lens[rows->tokens.n] = VARSIZE_ANY_EXHDR(t);
	}
	if ((st = cai_textclf_tokens_add(&rows->tokens, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &err)) != CAI_OK ||
		(st = cai_strtab_intern(rr->label_tab, VARDATA_ANY(label), VARSIZE_ANY_EXHDR(label), &id, &added,
								&err)) != CAI_OK)
		CaiReportCoreError(st, &err, "could not read the training rows");
	if (added && rr->label_tab->n > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct labels (more than 100000)"),
				 errhint("Is the label column right?")));
	rows->labels[rows->tokens.n - 1] = id;
	MemoryContextSwitchTo(old);
}

static void
CaiReadTextRows(const char *query, CaiTextRows *rows, cai_strtab *words, cai_strtab *label_tab, int max_tokens,
				bool keep_texts, MemoryContext keep, const char *what)
{
	CaiTextRowsReading rr = {rows, label_tab, keep_texts, keep};
	CaiRowReader rd = {NULL, CaiTextRowsAdd, &rr, true};
	cai_error	err = {0};
	cai_status	st;
	MemoryContext old = MemoryContextSwitchTo(keep);

	if ((st = cai_textclf_tokens_init(&rows->tokens, words, max_tokens, &err)) != CAI_OK)
		CaiReportCoreError(st, &err, "could not read the training rows");
	MemoryContextSwitchTo(old);
	CaiReadSource(query, what, &rd, &rows->skipped);
}

static int
CaiCompareLabels(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;
	char	   *ex;
	char	   *ey;
	long		lx = strtol(x, &ex, 10);
	long		ly = strtol(y, &ey, 10);

	/* integer labels sort numerically, others by bytes */
	if (*x && *y && *ex == '\0' && *ey == '\0')
		return (lx > ly) - (lx < ly);
	return strcmp(x, y);
}

/*
 * The label table's strings sorted as CaiLabelSet sorts them (*n_labels),
 * and into map (label_tab->n) each one's index among them.
 */
static char **
CaiSortLabels(const cai_strtab *label_tab, int *n_labels, int32 *map)
{
	char	  **labels = palloc(sizeof(char *) * Max(label_tab->n, 1));

	for (int32 i = 0; i < label_tab->n; i++)
		labels[i] = (char *) cai_strtab_str(label_tab, i);
	qsort(labels, label_tab->n, sizeof(char *), CaiCompareLabels);
	for (int32 i = 0; i < label_tab->n; i++)
	{
		const char *s = cai_strtab_str(label_tab, i);
		char	  **hit = bsearch(&s, labels, label_tab->n, sizeof(char *), CaiCompareLabels);

		map[i] = (int32) (hit - labels);
	}
	*n_labels = label_tab->n;
	return labels;
}




/* x as a JSON number, or null when it is not finite */
static void
CaiAppendJsonNumber(StringInfo s, const char *key, double x)
{
	if (isfinite(x))
		appendStringInfo(s, "\"%s\": %.9g", key, x);
	else
		appendStringInfo(s, "\"%s\": null", key);
}

/* Add a finished epoch to the training curve (cai_training_history). */
static void
CaiHistoryAppend(CaiWorkerProgressState *ps, const cai_progress *p, double seconds)
{
	MemoryContext old = MemoryContextSwitchTo(ps->cxt);
	StringInfo	s;

	if (ps->history == NULL)
	{
		ps->history = makeStringInfo();
		appendStringInfoChar(ps->history, '[');
	}
	s = ps->history;
	if (s->len > 1)
		appendStringInfoString(s, ", ");
	appendStringInfo(s, "{\"epoch\": %d, ", p->epoch);
	CaiAppendJsonNumber(s, "loss", p->loss);
	appendStringInfoString(s, ", ");
	CaiAppendJsonNumber(s, "validation_score", p->val_score);
	appendStringInfoString(s, ", ");
	CaiAppendJsonNumber(s, "rows_per_sec", p->rows_per_sec);
	appendStringInfoString(s, ", ");
	CaiAppendJsonNumber(s, "seconds", seconds);
	appendStringInfoChar(s, '}');
	MemoryContextSwitchTo(old);
}

/* The training curve as a JSON array ("[]" before the first epoch), in CurrentMemoryContext. */
static char *
CaiHistoryJson(const CaiWorkerProgressState *ps)
{
	return ps->history == NULL ? pstrdup("[]") : psprintf("%s]", ps->history->data);
}

static bool
CaiWorkerProgressBody(CaiWorkerProgressState *ps, const cai_progress *p)
{
	if (QueryCancelPending || ProcDiePending)
		return false;
	/* a synchronous caller that has gone away will never read the result */
	if (ps->leader_pid > 0 && BackendPidGetProc(ps->leader_pid) == NULL)
	{
		ereport(LOG, (errmsg("cai_synergy training stopped: the calling backend %d has exited", ps->leader_pid)));
		return false;
	}
	if (p->epoch_done)
	{
		char		score[40] = "";

		/* no score: without validation rows only the last epoch is scored */
		if (!isnan(p->val_score))
			snprintf(score, sizeof(score), ", validation %.4f", p->val_score);
		ereport(ps->job_id > 0 ? DEBUG1 : NOTICE,
				(errmsg("epoch %d/%d: loss %.4f%s, %.0f rows/s",
						p->epoch, p->epochs, p->loss, score, p->rows_per_sec)));
		CaiHistoryAppend(ps, p, (double) (GetCurrentTimestamp() - ps->started) / USECS_PER_SEC);
	}
	if (ps->job_id > 0 &&
		(p->epoch_done || TimestampDifferenceExceeds(ps->last_update, GetCurrentTimestamp(), 1000)))
	{
		CaiJobProgress(ps->job_id, p->epoch, p->epochs, p->fraction, p->loss, p->val_score, p->rows_per_sec,
					   p->epoch_done ? CaiHistoryJson(ps) : NULL);
		ps->last_update = GetCurrentTimestamp();
	}
	return true;
}

/*
 * The core's progress callback.  It must never throw through the core (the
 * trainer may have worker threads parked): an error is kept, training is
 * cancelled, and CaiTrainingDone re-raises the error afterwards.
 */
bool
CaiWorkerProgress(void *ctx, const cai_progress *p)
{
	CaiWorkerProgressState *ps = (CaiWorkerProgressState *) ctx;
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool keep_going = false;

	if (ps->error != NULL)
		return false;
	PG_TRY();
	{
		keep_going = CaiWorkerProgressBody(ps, p);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		ps->error = CopyErrorData();
		FlushErrorState();
		if (IsTransactionState())
			AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		keep_going = false;
	}
	PG_END_TRY();
	/* a job's progress commits a transaction, which leaves TopMemoryContext current */
	MemoryContextSwitchTo(cxt);
	return keep_going;
}

/* Take on the caller's exact identity (inside a transaction). */
static void
CaiWorkerBecomeCaller(CaiTrainShared *shared)
{
	SetSessionAuthorization(shared->session_user_id, shared->session_user_is_superuser);
	SetCurrentRoleId(shared->outer_user_id, shared->role_is_superuser);
	SetUserIdAndSecContext(shared->current_user_id, shared->sec_context);
	(void) set_config_option("search_path", shared->data + shared->search_path_off,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
}

/* When the worker started reading its rows, and the seconds it took (CaiWorkerReadEnd): metrics read_seconds. */
static TimestampTz worker_read_start = 0;
static double worker_read_seconds = -1;

/* Start the reading transaction (caller's identity, one snapshot). */
static void
CaiWorkerReadBegin(void)
{
	worker_read_start = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "cai_synergy training: reading data");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * End the reading transaction; returns the provenance JSON (in train_cxt).
 * Training then runs outside any transaction: no snapshot held for minutes.
 */
static char *
CaiWorkerReadEnd(CaiTrainShared *shared, MemoryContext train_cxt, int64 n, int64 skipped, int64 n_valid,
				 const char *vectors, const char *encoder)
{
	MemoryContext old;
	StringInfoData p;

	PopActiveSnapshot();
	SPI_finish();
	worker_read_seconds = (double) (GetCurrentTimestamp() - worker_read_start) / 1e6;
	/* catalog lookups need the transaction; keep the result in train_cxt */
	old = MemoryContextSwitchTo(train_cxt);
	initStringInfo(&p);
	appendStringInfo(&p, "{\"train_rows\": " INT64_FORMAT ", \"skipped_rows\": " INT64_FORMAT
					 ", \"validation_rows\": " INT64_FORMAT ", \"role\": ", n, skipped, n_valid);
	escape_json(&p, GetUserNameFromId(shared->current_user_id, false));
	appendStringInfoString(&p, ", \"database\": ");
	escape_json(&p, get_database_name(MyDatabaseId));
	appendStringInfoString(&p, ", \"source\": ");
	escape_json(&p, shared->data + shared->source_off);
	if (vectors != NULL)
		appendStringInfo(&p, ", \"vectors\": %s", vectors);
	if (encoder != NULL)
		appendStringInfo(&p, ", \"encoder\": %s", encoder);
	appendStringInfoChar(&p, '}');
	MemoryContextSwitchTo(old);
	CommitTransactionCommand();
	MemoryContextSwitchTo(train_cxt);
	return p.data;
}

/* the context the worker reads the rows into (CaiWorkerTrain) */
static MemoryContext worker_train_cxt = NULL;

/*
 * Refuse a training that would need more than cai.training_memory: what the
 * architecture estimates it will allocate (need) plus what the rows read
 * into the worker's training context already hold (text classification:
 * token ids, 4 bytes a token and 12 a row; NER: a pointer per token and tag
 * and each distinct string once).
 */
/* Would need bytes more, beside what the training context holds, fit in cai.training_memory? */
bool
CaiTrainingMemoryFits(CaiTrainShared *shared, size_t need)
{
	size_t		held = worker_train_cxt != NULL ? MemoryContextMemAllocated(worker_train_cxt, true) : 0;

	return (int64) (need + held) <= shared->training_memory;
}

void
CaiCheckTrainingMemory(CaiTrainShared *shared, size_t need)
{
	size_t		held = worker_train_cxt != NULL ? MemoryContextMemAllocated(worker_train_cxt, true) : 0;

	if (!CaiTrainingMemoryFits(shared, need))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training would need %zu MB of memory, more than cai.training_memory (" INT64_FORMAT " MB)",
						(need + held) / (1024 * 1024), shared->training_memory / (1024 * 1024)),
				 errdetail("The rows read hold %zu MB; training would allocate %zu MB more (%s).",
						   held / (1024 * 1024), need / (1024 * 1024),
						   held > need ? "the rows read are the larger part" :
						   "training's own allocations are the larger part: its parameters, mostly"),
				 errhint("Lower \"dimensions\", \"hidden\" or \"buckets\", train on fewer rows, or raise cai.training_memory.")));
}

static void
CaiNoRows(int64 skipped)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("the training source has no usable rows"),
			 errdetail(INT64_FORMAT " rows were skipped because the input or the label is NULL.", skipped)));
}

/* After the core trainer returned: raise its error (a cancel as the interrupt), or record the result. */
void
CaiTrainingDone(cai_status st, const cai_error *err, CaiWorkerProgressState *ps, const cai_options *opts,
				int64 rows, int64 skipped, CaiTrained *out)
{
	cai_blas_set_threads(1);
	if (ps->error != NULL)
		ReThrowError(ps->error);
	if (st == CAI_ERR_CANCELLED)
		CHECK_FOR_INTERRUPTS();
	if (st != CAI_OK)
		CaiReportCoreError(st, err, "training failed");
	out->rows = rows;
	out->skipped = skipped;
	out->deploy_policy = cai_opt_string(opts, "deploy") ? pstrdup(cai_opt_string(opts, "deploy")) : NULL;
	out->history = CaiHistoryJson(ps);
	/*
	 * The metrics (kept beside the model, not in its bytes) also say how long
	 * reading the rows took: the source query, the transfer from the calling
	 * backend and the conversion to token ids (or strings, for NER).
	 */
	if (out->metrics != NULL && worker_read_seconds >= 0)
	{
		Jsonb	   *m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out->metrics)));
		Jsonb	   *r = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														   CStringGetDatum(psprintf("{\"read_seconds\": %.3f}",
																					worker_read_seconds))));

		m = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m), JsonbPGetDatum(r)));
		out->metrics = JsonbToCString(NULL, &m->root, VARSIZE(m));
	}
}

/* What the validation inputs looked like, for cai_drift: kept with the metrics (drift.c). */
static void
CaiKeepDriftReference(CaiTrained *out, const cai_arch *arch, const cai_options *opts, const cai_train_set *set)
{
	char	   *ref = CaiDriftReference(out->model, out->model_len, arch, opts, set);
	Jsonb	   *m;
	Jsonb	   *r;
	Jsonb	   *both;

	if (ref == NULL)
		return;
	m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out->metrics)));
	r = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(psprintf("{\"drift_reference\": %s}", ref))));
	both = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m), JsonbPGetDatum(r)));
	out->metrics = JsonbToCString(NULL, &both->root, 0);
}

static bool CaiWorkerReadVectors(CaiTrainShared *shared, cai_word_vectors *wv, char **prov, MemoryContext keep);
static const cai_encoder_bundle *CaiWorkerReadEncoder(CaiTrainShared *shared, char **prov, MemoryContext keep);

/*
 * Train on the rows read: once with the options (cai_train), or the trials
 * of a search (cai_tune, tune.c), keeping the best.
 */
static void
CaiWorkerRun(CaiTrainShared *shared, CaiWorkerProgressState *ps, const cai_arch *arch, const cai_options *opts,
			 const cai_train_set *set, const char *provenance, int64 rows, int64 skipped, CaiTrained *out)
{
	cai_error	err = {0};
	cai_status	st;

	if (shared->data[shared->search_off] != '\0')
	{
		CaiWorkerTune(shared, ps, set, provenance, rows, skipped, out);
		return;
	}
	CaiCheckTrainingMemory(shared, cai_arch_train_memory(arch, opts, set));
	pgstat_report_activity(STATE_RUNNING, "cai_synergy training");
	cai_blas_set_threads(shared->threads);
	ps->started = GetCurrentTimestamp();
	st = cai_arch_train(arch, opts, set, provenance, CaiWorkerProgress, ps,
						&out->model, &out->model_len, &out->metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, rows, skipped, out);
}

static void
CaiWorkerTrainTextclf(CaiTrainShared *shared, MemoryContext train_cxt, CaiWorkerProgressState *ps,
					  CaiTrained *out)
{
	CaiTextRows rows = {0};
	CaiTextRows vrows = {0};
	cai_strtab *words = MemoryContextAllocZero(train_cxt, sizeof(cai_strtab));
	cai_strtab *label_tab = MemoryContextAllocZero(train_cxt, sizeof(cai_strtab));
	cai_options *opts;
	char	  **labels;
	int			n_labels;
	int32	   *map;
	cai_textclf_data train = {0};
	cai_textclf_data valid = {0};
	cai_train_set set = {0};
	const cai_arch *arch = NULL;
	char	   *provenance;
	cai_word_vectors wv = {0};
	char	   *vectors_prov = NULL;
	char	   *encoder_prov = NULL;
	bool		has_vectors;
	bool		keep_texts;
	int			max_tokens;
	int32		n_train_labels;
	cai_error	err = {0};
	cai_status	st;

	/*
	 * The rows are read as token ids cut at max_tokens (an architecture
	 * without the option, the transformer, reads 512) and, for an
	 * architecture that trains on the texts themselves, as texts too.
	 */
	opts = CaiParseOptions(shared->data + shared->task_off, shared->data + shared->options_off, &arch);
	max_tokens = cai_opt_int(opts, "max_tokens") > 0 ? (int) cai_opt_int(opts, "max_tokens") : 512;
	keep_texts = arch->reads_texts;
	if ((st = cai_strtab_init(words, 65536, &err)) != CAI_OK ||
		(st = cai_strtab_init(label_tab, 16, &err)) != CAI_OK)
		CaiReportCoreError(st, &err, "could not read the training rows");
	CaiWorkerReadBegin();
	CaiReadTextRows(shared->data + shared->query_off, &rows, words, label_tab, max_tokens, keep_texts, train_cxt,
					"source");
	n_train_labels = label_tab->n;
	if (shared->data[shared->valid_query_off] != '\0')
		CaiReadTextRows(shared->data + shared->valid_query_off, &vrows, words, label_tab, max_tokens, keep_texts,
						train_cxt, "validation source");
	has_vectors = CaiWorkerReadVectors(shared, &wv, &vectors_prov, train_cxt);
	set.encoder = CaiWorkerReadEncoder(shared, &encoder_prov, train_cxt);
	provenance = CaiWorkerReadEnd(shared, train_cxt, rows.tokens.n, rows.skipped, vrows.tokens.n, vectors_prov,
								  encoder_prov);

	if (rows.tokens.n == 0)
		CaiNoRows(rows.skipped);
	if (n_train_labels < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the training data has a single class \"%s\"", cai_strtab_str(label_tab, 0)),
				 errhint("A classifier needs at least two distinct labels.")));
	/* a label the training rows lack, first seen in the validation rows */
	for (size_t i = 0; i < vrows.tokens.n; i++)
		if (vrows.labels[i] >= n_train_labels)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("validation label \"%s\" does not occur in the training data",
							cai_strtab_str(label_tab, vrows.labels[i]))));
	map = palloc(sizeof(int32) * (label_tab->n + 1));
	labels = CaiSortLabels(label_tab, &n_labels, map);
	for (size_t i = 0; i < rows.tokens.n; i++)
		rows.labels[i] = map[rows.labels[i]];
	for (size_t i = 0; i < vrows.tokens.n; i++)
		vrows.labels[i] = map[vrows.labels[i]];
	if (vrows.tokens.n == 0 && shared->data[shared->valid_query_off] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the validation source has no usable rows")));

	train.n = rows.tokens.n;
	train.labels = rows.labels;
	train.tokens = &rows.tokens;
	train.texts = (const char *const *) rows.texts;
	train.lens = rows.lens;
	valid.n = vrows.tokens.n;
	valid.labels = vrows.labels;
	valid.tokens = &vrows.tokens;
	valid.texts = (const char *const *) vrows.texts;
	valid.lens = vrows.lens;
	set.texts = &train;
	set.valid_texts = vrows.tokens.n > 0 ? &valid : NULL;
	set.label_names = (const char *const *) labels;
	set.n_labels = n_labels;
	set.vectors = has_vectors ? &wv : NULL;
	CaiWorkerRun(shared, ps, arch, opts, &set, provenance, rows.tokens.n, rows.skipped, out);

	CaiKeepDriftReference(out, arch, opts, &set);
}



/* The id of s in *tab (created with room for expected strings, in the current context); *added tells. */
static int32
CaiNerIntern(cai_strtab **tab, int32 expected, const char *s, size_t len, bool *added)
{
	cai_error	err = {0};
	cai_status	st;
	int32		id;

	if (*tab == NULL)
	{
		*tab = palloc0(sizeof(cai_strtab));
		if ((st = cai_strtab_init(*tab, expected, &err)) != CAI_OK)
			CaiReportCoreError(st, &err, "could not read the training rows");
	}
	if ((st = cai_strtab_intern(*tab, s, len, &id, added, &err)) != CAI_OK)
		CaiReportCoreError(st, &err, "could not read the training rows");
	return id;
}

/*
 * The id of the one copy (in r->keep) of the string s of len bytes among
 * the rows' tokens and tags: a sentence's tokens cost an id each, not a
 * string each (a token occurs many times in many sentences; a handful of
 * tags in all of them).
 */
static int32
CaiNerStringId(CaiNerRows *r, const char *s, size_t len)
{
	MemoryContext old = MemoryContextSwitchTo(r->keep);
	bool		added;
	int32		id = CaiNerIntern(&r->strings, 4096, s, len, &added);

	if (added)
	{
		if (id >= r->string_cap)
		{
			int32		cap = Max(r->string_cap * 2, 4096);

			r->string_ptr = r->string_ptr == NULL ? palloc_extended(sizeof(char *) * cap, MCXT_ALLOC_HUGE) :
				repalloc_huge(r->string_ptr, sizeof(char *) * cap);
			r->string_len = r->string_len == NULL ? palloc_extended(sizeof(size_t) * cap, MCXT_ALLOC_HUGE) :
				repalloc_huge(r->string_len, sizeof(size_t) * cap);
			r->string_cap = cap;
		}
		r->string_ptr[id] = pnstrdup(s, len);
		r->string_len[id] = len;
	}
	MemoryContextSwitchTo(old);
	return id;
}

static char *
CaiNerString(CaiNerRows *r, const char *s, size_t len)
{
	return r->string_ptr[CaiNerStringId(r, s, len)];
}

/* The rows as core data in the compact form (ids into the distinct strings). */
void
CaiNerRowsData(const CaiNerRows *r, cai_ner_data *d)
{
	memset(d, 0, sizeof(*d));
	d->n = r->n;
	d->offsets = r->offsets;
	d->token_ids = r->token_ids;
	d->strings = (const char *const *) r->string_ptr;
	d->string_lens = r->string_len;
	d->n_strings = r->strings != NULL ? (size_t) r->strings->n : 0;
	d->tag_ids = r->tag_ids;
	d->tag_names = (const char *const *) r->tag_names;
	d->n_tag_names = (size_t) r->n_tag_names;
}

/* The id of tag s (len bytes) among the rows' distinct tags (at most 65535 of them). */
static uint16
CaiNerTag(CaiNerRows *r, const char *s, size_t len)
{
	MemoryContext old = MemoryContextSwitchTo(r->keep);
	bool		added;
	int32		id = CaiNerIntern(&r->tag_tab, 16, s, len, &added);

	if (added)
	{
		if (id >= PG_UINT16_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("row " INT64_FORMAT ": too many distinct tags (more than %d)", r->rowno, PG_UINT16_MAX),
					 errhint("Is the tag column right?")));
		r->tag_names = r->tag_names == NULL ? palloc(sizeof(char *) * 16) :
			(id % 16 == 0 ? repalloc(r->tag_names, sizeof(char *) * (id + 16)) : r->tag_names);
		r->tag_names[id] = CaiNerString(r, s, len);
		r->n_tag_names = id + 1;
	}
	MemoryContextSwitchTo(old);
	return (uint16) id;
}

/* Every token's tag string (ntok pointers, in the current context), for cai_conll_eval. */
const char **
CaiNerTagStrings(const CaiNerRows *r)
{
	const char **tags = palloc_extended(sizeof(char *) * (r->ntok + 1), MCXT_ALLOC_HUGE);

	for (int64 i = 0; i < r->ntok; i++)
		tags[i] = r->tag_names[r->tag_ids[i]];
	return tags;
}

static void
CaiNerGrow(CaiNerRows *r, int64 more_tokens)
{
	MemoryContext old = MemoryContextSwitchTo(r->keep);

	if (r->cap == 0)
	{
		r->cap = 1024;
		r->offsets = palloc_extended(sizeof(int64) * (r->cap + 1), MCXT_ALLOC_HUGE);
		r->offsets[0] = 0;
	}
	else if (r->n + 1 >= r->cap)
	{
		r->cap *= 2;
		r->offsets = repalloc_huge(r->offsets, sizeof(int64) * (r->cap + 1));
	}
	if (r->ntok + more_tokens > r->tokcap)
	{
		int64		cap = Max(r->tokcap * 2, r->ntok + more_tokens + 4096);

		if (r->tokcap == 0)
		{
			r->token_ids = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
			r->tag_ids = palloc_extended(sizeof(uint16) * cap, MCXT_ALLOC_HUGE);
		}
		else
		{
			r->token_ids = repalloc_huge(r->token_ids, sizeof(int32) * cap);
			r->tag_ids = repalloc_huge(r->tag_ids, sizeof(uint16) * cap);
		}
		r->tokcap = cap;
	}
	MemoryContextSwitchTo(old);
}

static bool
CaiIsTextArrayType(Oid t)
{
	return t == TEXTARRAYOID || t == VARCHARARRAYOID || t == BPCHARARRAYOID || t == NAMEARRAYOID;
}

static bool
CaiIsTextType(Oid t)
{
	return t == TEXTOID || t == VARCHAROID || t == BPCHAROID;
}

static void
CaiNerArray(Datum d, const char *what, int64 rowno, Datum **elems, int *n)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	bool	   *nulls;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("row " INT64_FORMAT ": the %s array has %d dimensions, expected one", rowno, what, ARR_NDIM(a))));
	get_typlenbyvalalign(ARR_ELEMTYPE(a), &typlen, &typbyval, &typalign);
	deconstruct_array(a, ARR_ELEMTYPE(a), typlen, typbyval, typalign, elems, &nulls, n);
	for (int i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("row " INT64_FORMAT ": %s %d is NULL", rowno, what, i + 1)));
}

/* (text, jsonb spans) -> tokens and IOB2 tags via the core tokenizer. */
/* (text, jsonb spans) -> tokens and IOB2 tags via the core tokenizer. */
static void
CaiNerSpanRow(CaiNerRows *r, text *t, Jsonb *jb)
{
	const char *txt = VARDATA_ANY(t);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	cai_span   *spans;
	int			n_spans = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	cai_token  *tokens = NULL;
	char	  **tags = NULL;
	size_t		ntok = 0;
	cai_error	err = {0};
	cai_status	st;

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row " INT64_FORMAT ": the spans must be a JSON array of {\"start\", \"end\", \"label\"} objects", r->rowno)));
	spans = palloc(sizeof(cai_span) * Max(JB_ROOT_COUNT(jb), 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue	k;
		JsonbValue *start;
		JsonbValue *end;
		JsonbValue *label;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d is not a JSON object", r->rowno, n_spans + 1)));
		k.type = jbvString;
		k.val.string.val = "start";
		k.val.string.len = 5;
		start = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		k.val.string.val = "end";
		k.val.string.len = 3;
		end = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		k.val.string.val = "label";
		k.val.string.len = 5;
		label = findJsonbValueFromContainer(v.val.binary.data, JB_FOBJECT, &k);
		if (start == NULL || end == NULL || label == NULL || start->type != jbvNumeric ||
			end->type != jbvNumeric || label->type != jbvString || label->val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d needs a numeric \"start\" and \"end\" and a non-empty string \"label\"",
							r->rowno, n_spans + 1)));
		spans[n_spans].cstart = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(start->val.numeric))) - 1;
		spans[n_spans].cend = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(end->val.numeric)));
		spans[n_spans].label = pnstrdup(label->val.string.val, label->val.string.len);
		if (spans[n_spans].cstart < 0 || spans[n_spans].cend <= spans[n_spans].cstart)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("row " INT64_FORMAT ": span %d has start " INT64_FORMAT " and end " INT64_FORMAT,
							r->rowno, n_spans + 1, spans[n_spans].cstart + 1, spans[n_spans].cend),
					 errdetail("Positions are 1-based character positions with the end inclusive.")));
		n_spans++;
	}
	st = cai_ner_spans_to_tags(txt, len, spans, n_spans, &tokens, &tags, &ntok, &err);
	if (st != CAI_OK)
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("row " INT64_FORMAT ": %s", r->rowno, err.msg)));
	if (ntok == 0)
	{
		r->skipped++;
		return;
	}
	CaiNerGrow(r, ntok);
	for (size_t i = 0; i < ntok; i++)
	{
		r->token_ids[r->ntok] = CaiNerStringId(r, txt + tokens[i].start, tokens[i].end - tokens[i].start);
		r->tag_ids[r->ntok] = CaiNerTag(r, tags[i], strlen(tags[i]));
		r->ntok++;
	}
	cai_free(tags);				/* one block: pointers and strings */
	cai_free(tokens);
	r->offsets[++r->n] = r->ntok;
}


/* the columns: text[] tokens and text[] tags, or text and jsonb spans */
static void
CaiNerColumns(void *arg, TupleDesc desc)
{
	CaiNerRows *r = arg;
	Oid			in_type = TupleDescAttr(desc, 0)->atttypid;
	Oid			lab_type = desc->natts > 1 ? TupleDescAttr(desc, 1)->atttypid : InvalidOid;

	if (CaiIsTextArrayType(in_type) && CaiIsTextArrayType(lab_type))
		r->spans_form = false;
	else if (CaiIsTextType(in_type) && lab_type == JSONBOID)
		r->spans_form = true;
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("NER training needs text[] tokens with text[] tags, or text with jsonb spans"),
				 errdetail("The input column is %s and the label column is %s.",
						   format_type_be(in_type), format_type_be(lab_type)),
				 errhint("Cast the columns in a query, e.g. SELECT tokens::text[], tags::text[] FROM ... or labels::jsonb.")));
}

/* one sentence; values are decoded in the batch's context, only the rows' strings and arrays are kept */
static void
CaiNerAdd(void *arg, TupleDesc desc, Datum in, Datum lab, int64 rowno)
{
	CaiNerRows *r = arg;
	Datum	   *toks;
	Datum	   *tags;
	int			nt;
	int			ng;

	r->rowno = rowno;
	if (r->spans_form)
	{
		CaiNerSpanRow(r, DatumGetTextPP(in), DatumGetJsonbP(lab));
		return;
	}
	CaiNerArray(in, "token", rowno, &toks, &nt);
	CaiNerArray(lab, "tag", rowno, &tags, &ng);
	if (nt != ng)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("row " INT64_FORMAT " has %d tokens but %d tags", rowno, nt, ng),
				 errhint("Every token needs exactly one tag.")));
	if (nt == 0)
	{
		r->skipped++;
		return;
	}
	CaiNerGrow(r, nt);
	for (int k = 0; k < nt; k++)
	{
		text	   *tt = DatumGetTextPP(toks[k]);
		text	   *tg = DatumGetTextPP(tags[k]);

		r->token_ids[r->ntok] = CaiNerStringId(r, VARDATA_ANY(tt), VARSIZE_ANY_EXHDR(tt));
		r->tag_ids[r->ntok] = CaiNerTag(r, VARDATA_ANY(tg), VARSIZE_ANY_EXHDR(tg));
		r->ntok++;
	}
	r->offsets[++r->n] = r->ntok;
}

void
CaiReadNerRows(const char *query, CaiNerRows *r, MemoryContext keep, const char *what)
{
	CaiRowReader rd = {CaiNerColumns, CaiNerAdd, r, true};

	r->keep = keep;
	CaiReadSource(query, what, &rd, &r->skipped);
}

typedef struct CaiVectorsReading
{
	cai_word_vectors *wv;
	char	  **words;
	size_t	   *lens;
	float	   *vecs;
	int64		cap;
	MemoryContext keep;
} CaiVectorsReading;

static void
CaiVectorsAdd(void *arg, TupleDesc desc, Datum w, Datum v, int64 rowno)
{
	CaiVectorsReading *vr = arg;
	cai_word_vectors *wv = vr->wv;
	ArrayType  *a = DatumGetArrayTypeP(v);
	int			dim;
	MemoryContext old;

	if (ARR_NDIM(a) != 1 || ARR_HASNULL(a))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("word vector %zu must be a one-dimensional real[] without NULLs", wv->n + 1)));
	dim = ARR_DIMS(a)[0];
	if (wv->dim == 0)
		wv->dim = dim;
	else if (dim != wv->dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("word vectors have different lengths (%d and %d)", wv->dim, dim)));
	old = MemoryContextSwitchTo(vr->keep);
	if ((int64) wv->n == vr->cap)
	{
		vr->cap = vr->cap == 0 ? 1024 : vr->cap * 2;
		vr->words = CaiResize(vr->words, vr->cap, sizeof(char *));
		vr->lens = CaiResize(vr->lens, vr->cap, sizeof(size_t));
		vr->vecs = CaiResize(vr->vecs, vr->cap, sizeof(float) * dim);
	}
	vr->words[wv->n] = TextDatumGetCString(w);
	vr->lens[wv->n] = strlen(vr->words[wv->n]);
	memcpy(vr->vecs + wv->n * dim, ARR_DATA_PTR(a), sizeof(float) * dim);
	wv->n++;
	MemoryContextSwitchTo(old);
}

/* Word vectors (word text, vector real[]) for the "word_vectors" option; rows with a NULL are left out. */
static void
CaiReadWordVectors(const char *query, cai_word_vectors *wv, MemoryContext keep)
{
	CaiVectorsReading vr = {wv, NULL, NULL, NULL, 0, keep};
	CaiRowReader rd = {NULL, CaiVectorsAdd, &vr, true};

	wv->n = 0;
	wv->dim = 0;
	CaiReadSource(query, "word vectors", &rd, NULL);
	wv->words = (const char *const *) vr.words;
	wv->lens = vr.lens;
	wv->vectors = vr.vecs;
}

/*
 * The word vectors of the "word_vectors" option, inside the reading
 * transaction: a vector set (the version train.c pinned; *prov gets its
 * name, version and md5 for the model's provenance) or the rows of a table
 * or query.  false when the option is not given.
 */
static bool
CaiWorkerReadVectors(CaiTrainShared *shared, cai_word_vectors *wv, char **prov, MemoryContext keep)
{
	if (shared->data[shared->vector_set_off] != '\0')
	{
		MemoryContext old = MemoryContextSwitchTo(keep);

		/* freed with keep (its allocations come from this context) */
		(void) CaiVectorSetForTraining(shared->data + shared->vector_set_off, shared->vector_set_version, wv, prov);
		MemoryContextSwitchTo(old);
		return true;
	}
	if (shared->data[shared->vectors_query_off] != '\0')
	{
		CaiReadWordVectors(shared->data + shared->vectors_query_off, wv, keep);
		return true;
	}
	return false;
}

/*
 * The encoder of the "encoder" option (the version train.c pinned), inside
 * the reading transaction, kept in keep (with the model holding it) for the
 * training; *prov gets its name, version and md5 for the trained model's
 * provenance.  NULL when the option is not given.
 */
static const cai_encoder_bundle *
CaiWorkerReadEncoder(CaiTrainShared *shared, char **prov, MemoryContext keep)
{
	const cai_encoder_bundle *bundle = NULL;
	MemoryContext old;

	if (shared->data[shared->encoder_off] == '\0')
		return NULL;
	old = MemoryContextSwitchTo(keep);
	/* freed with keep (its allocations come from this context) */
	(void) CaiEncoderForTraining(shared->data + shared->encoder_off, shared->encoder_version, &bundle, prov);
	MemoryContextSwitchTo(old);
	return bundle;
}

static void
CaiWorkerTrainNer(CaiTrainShared *shared, MemoryContext train_cxt, CaiWorkerProgressState *ps,
				  CaiTrained *out)
{
	CaiNerRows	rows = {0};
	CaiNerRows	vrows = {0};
	cai_word_vectors wv = {0};
	cai_options *opts;
	cai_ner_data train = {0};
	cai_ner_data valid = {0};
	cai_train_set set = {0};
	const cai_arch *arch = NULL;
	char	   *provenance;
	char	   *vectors_prov = NULL;
	char	   *encoder_prov = NULL;
	bool		has_vectors;

	CaiWorkerReadBegin();
	CaiReadNerRows(shared->data + shared->query_off, &rows, train_cxt, "source");
	if (shared->data[shared->valid_query_off] != '\0')
		CaiReadNerRows(shared->data + shared->valid_query_off, &vrows, train_cxt, "validation source");
	has_vectors = CaiWorkerReadVectors(shared, &wv, &vectors_prov, train_cxt);
	set.encoder = CaiWorkerReadEncoder(shared, &encoder_prov, train_cxt);
	provenance = CaiWorkerReadEnd(shared, train_cxt, rows.n, rows.skipped, vrows.n, vectors_prov, encoder_prov);

	if (rows.n == 0)
		CaiNoRows(rows.skipped);
	if (shared->data[shared->valid_query_off] != '\0' && vrows.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("the validation source has no usable rows")));

	opts = CaiParseOptions(shared->data + shared->task_off, shared->data + shared->options_off, &arch);
	CaiNerRowsData(&rows, &train);
	CaiNerRowsData(&vrows, &valid);
	set.sentences = &train;
	set.valid_sentences = vrows.n > 0 ? &valid : NULL;
	set.vectors = has_vectors ? &wv : NULL;
	CaiWorkerRun(shared, ps, arch, opts, &set, provenance, rows.n, rows.skipped, out);

	CaiKeepDriftReference(out, arch, opts, &set);
}

/* Word vectors (cai_train_vectors) or an encoder (cai_pretrain): the texts of the input column, no labels. */
static void
CaiWorkerTrainVectors(CaiTrainShared *shared, MemoryContext train_cxt, CaiWorkerProgressState *ps,
					  CaiTrained *out)
{
	CaiRows		rows = {0};
	cai_options *opts;
	cai_error	err = {0};
	cai_status	st;
	cai_textclf_data texts = {0};
	cai_train_set set = {0};
	const cai_arch *arch = NULL;
	char	   *provenance;

	CaiWorkerReadBegin();
	CaiReadRows(shared->data + shared->query_off, &rows, train_cxt, "source");
	provenance = CaiWorkerReadEnd(shared, train_cxt, rows.n, rows.skipped, 0, NULL, NULL);
	if (rows.n == 0)
		CaiNoRows(rows.skipped);

	/*
	 * The vocabulary is only known after counting, so the up-front estimate
	 * assumes the worst; the trainer refuses (CAI_ERR_LIMIT) once it has
	 * counted, before allocating, against cai.training_memory unless the
	 * caller set its own memory_limit_mb.
	 */
	{
		char	   *json = shared->data + shared->options_off;
		Jsonb	   *given = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		Jsonb	   *limit = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															   CStringGetDatum(psprintf("{\"memory_limit_mb\": " INT64_FORMAT "}",
																						Max(shared->training_memory / (1024 * 1024), 1)))));
		Jsonb	   *merged = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(limit),
																JsonbPGetDatum(given)));

		texts.n = rows.n;
		texts.texts = (const char *const *) rows.texts;
		texts.lens = rows.lens;
		if (cai_task_find(shared->data + shared->task_off)->kind == CAI_KIND_ENCODER)
		{
			pgstat_report_activity(STATE_RUNNING, "cai_synergy pretraining");
			ps->started = GetCurrentTimestamp();
			CaiWorkerPretrain(JsonbToCString(NULL, &merged->root, 0), shared->threads, &texts, ps, out);
			return;
		}
		opts = CaiParseOptions(shared->data + shared->task_off, JsonbToCString(NULL, &merged->root, 0), &arch);
	}
	set.texts = &texts;

	pgstat_report_activity(STATE_RUNNING, "cai_synergy training");
	ps->started = GetCurrentTimestamp();
	st = cai_arch_train(arch, opts, &set, provenance, CaiWorkerProgress, ps,
						&out->model, &out->model_len, &out->metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, rows.n, rows.skipped, out);
}

/*
 * Read, train, and deliver the model: to the waiting caller (synchronous)
 * or into the catalog (asynchronous job).
 */
static void
CaiWorkerTrain(CaiTrainShared *shared, shm_mq_handle *mqh, MemoryContext train_cxt)
{
	CaiWorkerProgressState ps = {shared->job_id, shared->job_id > 0 ? 0 : shared->leader_pid, NULL, 0, 0, train_cxt, NULL};
	CaiTrained	t = {0};
	cai_task_kind kind;

	worker_train_cxt = train_cxt;
	MemoryContextSwitchTo(train_cxt);
	kind = cai_task_find(shared->data + shared->task_off)->kind;
	if (kind == CAI_KIND_TAG)
		CaiWorkerTrainNer(shared, train_cxt, &ps, &t);
	else if (kind == CAI_KIND_EMBED || kind == CAI_KIND_ENCODER)	/* texts only: vectors, pretraining */
		CaiWorkerTrainVectors(shared, train_cxt, &ps, &t);
	else
		CaiWorkerTrainTextclf(shared, train_cxt, &ps, &t);

	if (shared->job_id > 0)
	{
		/* asynchronous: store the version and finish the job in one transaction */
		bool		deployed;
		int32		version;

		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (kind == CAI_KIND_EMBED)
			version = CaiVectorSetStore(shared->data + shared->name_off, CaiBytea(t.model, t.model_len));
		else
			version = CaiStoreTrainedModel(shared->data + shared->name_off, CaiBytea(t.model, t.model_len),
										   t.metrics, t.history, t.rows, t.skipped, t.deploy_policy, &deployed, NULL);
		CaiJobFinish(shared->job_id, "succeeded", version, NULL);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	else
	{
		/* one message, the model bytes sent from where the trainer left them (no copy of tens of MB) */
		StringInfoData head;
		StringInfoData tail;
		shm_mq_iovec iov[3];

		initStringInfo(&head);
		appendStringInfoChar(&head, 'R');
		pq_sendint64(&head, t.rows);
		pq_sendint64(&head, t.skipped);
		pq_sendint64(&head, t.model_len);
		initStringInfo(&tail);
		pq_sendint64(&tail, strlen(t.metrics));
		appendBinaryStringInfo(&tail, t.metrics, strlen(t.metrics));
		pq_sendint64(&tail, strlen(t.history));
		appendBinaryStringInfo(&tail, t.history, strlen(t.history));
		iov[0].data = head.data;
		iov[0].len = head.len;
		iov[1].data = (const char *) t.model;
		iov[1].len = t.model_len;
		iov[2].data = tail.data;
		iov[2].len = tail.len;
		if (shm_mq_sendv(mqh, iov, 3, false, true) != SHM_MQ_SUCCESS)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("the caller stopped waiting for the training result")));
	}
}

void
cai_train_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	CaiTrainShared *shared;
	shm_mq_handle *mqh = NULL;
	MemoryContext train_cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the training job's shared memory segment")));
	toc = shm_toc_attach(CAI_TRAIN_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invalid magic number in the training job's shared memory segment")));
	shared = shm_toc_lookup(toc, CAI_TRAIN_KEY_SHARED, false);
	if (shared->job_id > 0)
	{
		/* the caller has gone on; the segment now lives as long as we map it */
		dsm_unpin_segment(dsm_segment_handle(seg));
	}
	else
	{
		shm_mq	   *mq = shm_toc_lookup(toc, CAI_TRAIN_KEY_MQ, false);

		shm_mq_set_sender(mq, MyProc);
		mqh = shm_mq_attach(mq, seg, NULL);
		pq_redirect_to_shm_mq(seg, mqh);
		if (shared->rows_streamed)
		{
			shm_mq	   *rows = shm_toc_lookup(toc, CAI_TRAIN_KEY_ROWS, false);

			shm_mq_set_receiver(rows, MyProc);
			CaiSourceUseQueue(shm_mq_attach(rows, seg, NULL));
		}
	}

	/* connect as the caller's authenticated user, then take on its exact identity */
	BackgroundWorkerInitializeConnectionByOid(shared->database_id, shared->authenticated_user_id, 0);
	SetClientEncoding(GetDatabaseEncoding());
	CaiUseMemoryContextAllocator();
	train_cxt = AllocSetContextCreate(TopMemoryContext, "cai_synergy training", ALLOCSET_DEFAULT_SIZES);

	StartTransactionCommand();
	CaiWorkerBecomeCaller(shared);
	if (shared->job_id > 0)
		CaiJobInsert(shared->job_id, shared->data + shared->name_off, shared->data + shared->task_off,
					 shared->current_user_id, shared->data + shared->source_off,
					 shared->data + (shared->data[shared->search_off] != '\0' ? shared->search_off : shared->options_off));
	CommitTransactionCommand();
	if (shared->job_id > 0)
	{
		pg_memory_barrier();
		shared->job_recorded = true;
		SetLatch(&ProcGlobal->allProcs[shared->leader_pgprocno].procLatch);
	}

	if (shared->job_id == 0)
	{
		CaiWorkerTrain(shared, mqh, train_cxt);
		return;
	}

	/* asynchronous job: every outcome is recorded in its row */
	PG_TRY();
	{
		CaiJobWaitForSlot(shared->job_id, shared->max_training_jobs);
		CaiWorkerTrain(shared, NULL, train_cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(train_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		cai_blas_set_threads(1);
		ereport(LOG,
				(errmsg("cai_synergy training job " INT64_FORMAT " %s: %s", shared->job_id,
						edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "failed",
						edata->message)));
		/* a relation the caller saw but this worker does not: the rule for jobs */
		if (edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE)
			edata->message = psprintf("%s (an asynchronous job reads committed data in its worker: a table created "
									  "in the calling transaction or a temporary table is not visible; cai_train "
									  "reads its source in the calling session)", edata->message);
		StartTransactionCommand();
		CaiJobFinish(shared->job_id, edata->sqlerrcode == ERRCODE_QUERY_CANCELED ? "cancelled" : "failed",
					 0, edata->message);
		CommitTransactionCommand();
	}
	PG_END_TRY();
}
