/*
 * tune.c: cai_tune and cai_tune_async, automatic tuning of training options.
 *
 * The caller's side is cai_train's (train.c): the search is checked here,
 * and the options every trial shares (the architecture, fixed values such as
 * validation_source or deploy) stand for the training options, so the
 * sources are read exactly as cai_train reads them (the caller's snapshot
 * for cai_tune, the job's own for cai_tune_async).  The worker reads the rows
 * once and runs the trials of the core's schedule (src/core/tune.c) one
 * after the other, each a job row of its own (cai_jobs, cai_trials) in the
 * training slot the worker holds, each checked against cai.training_memory.
 * Only the best trial's model is kept (with the search key "seeds": S, the mean
 * of it and S trainings of its options with other seeds; with "ensemble": N,
 * the N best, and the ensemble greedy selection makes of them, ensemble.h);
 * it becomes the new version, with the whole search in its metrics
 * ("tuning"), under the usual deploy policy.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cai/ensemble.h"
#include "cai/tune.h"
#include "cai_pg.h"
#include "train.h"

/* The search parsed for task, or an ERROR naming the option (22023). */
static cai_tune *
CaiTuneParse(const cai_task *task, const char *search)
{
	cai_tune   *t = NULL;
	cai_error	err = {0};
	cai_status	st;

	if (task->kind == CAI_KIND_EMBED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot tune a %s model", task->name),
				 errdetail("Tuning compares validation scores; word vectors have none."),
				 errhint("Train word vectors with cai_train_vectors.")));
	st = cai_tune_parse(task, search, &t, &err);
	if (st != CAI_OK)
		ereport(ERROR,
				(errcode(CaiStatusSqlstate(st)),
				 errmsg("invalid search: %s", err.msg),
				 errhint("Give each option a range {\"min\": a, \"max\": b, \"scale\": \"log\"}, a list of choices, a value, "
						 "or null; see SELECT * FROM cai_options('%s', architecture).", task->name)));
	return t;
}

/* The options every trial shares: the training options of the launch. */
char *
CaiTuneFixedOptions(const cai_task *task, const char *search)
{
	cai_tune   *t = CaiTuneParse(task, search);
	char	   *fixed = cai_tune_fixed_json(t);
	char	   *out;

	cai_tune_free(t);
	if (fixed == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for the search")));
	out = pstrdup(fixed);
	cai_free(fixed);
	return out;
}

/* A trial kept for the end, in the worker's training context. */
typedef struct CaiTuneKept
{
	int			trial;
	int			rung;
	double		score;
	char	   *options_json;
	CaiTrained	trained;
} CaiTuneKept;

/*
 * The best trials so far, best first: one, or with the search key "ensemble"
 * that many, for the ensemble chosen at the end (ensemble.h); and with the
 * search key "seeds" the seed trials that succeeded, averaged with the best.
 */
typedef struct CaiTuneBest
{
	int			n_keep;
	int			n;
	CaiTuneKept kept[CAI_ENSEMBLE_MAX_MEMBERS];
	int			n_reseeded;
	CaiTuneKept reseeded[CAI_ENSEMBLE_MAX_MEMBERS - 1];
} CaiTuneBest;

#define CaiTuneBestScore(b) ((b)->n > 0 ? (b)->kept[0].score : NAN)

/* Copy trial tr's model t (score) into k, in the memory context keep. */
static void
CaiTuneKeptFill(CaiTuneKept *k, const cai_tune_trial *tr, double score, const CaiTrained *t, MemoryContext keep)
{
	MemoryContext old = MemoryContextSwitchTo(keep);

	k->trial = tr->trial;
	k->rung = tr->rung;
	k->score = score;
	k->options_json = pstrdup(tr->options_json);
	k->trained = *t;
	k->trained.model = palloc(t->model_len);
	memcpy(k->trained.model, t->model, t->model_len);
	k->trained.metrics = pstrdup(t->metrics);
	k->trained.history = pstrdup(t->history);
	k->trained.deploy_policy = t->deploy_policy ? pstrdup(t->deploy_policy) : NULL;
	MemoryContextSwitchTo(old);
}

/* Keep trial tr's model t (score) among the best when it ranks high enough; a seed trial's always. */
static void
CaiTuneKeep(CaiTuneBest *best, const cai_tune_trial *tr, double score, const CaiTrained *t, MemoryContext keep)
{
	int			pos = best->n;

	if (tr->reseed)
	{
		if (best->n_reseeded < lengthof(best->reseeded))
			CaiTuneKeptFill(&best->reseeded[best->n_reseeded++], tr, score, t, keep);
		return;
	}
	while (pos > 0 && cai_tune_ranks_before(score, tr->rung, best->kept[pos - 1].score, best->kept[pos - 1].rung))
		pos--;
	if (pos >= best->n_keep)
		return;
	if (best->n == best->n_keep)
	{
		CaiTuneKept *last = &best->kept[best->n - 1];

		pfree(last->trained.model);
		pfree(last->trained.metrics);
		pfree(last->trained.history);
		pfree(last->options_json);
		best->n--;
	}
	memmove(&best->kept[pos + 1], &best->kept[pos], sizeof(CaiTuneKept) * (best->n - pos));
	best->n++;
	CaiTuneKeptFill(&best->kept[pos], tr, score, t, keep);
}

/* Append one trial's line of the search record. */
static void
CaiTuneRecord(StringInfo trials, const cai_tune_trial *tr, const char *state, double score, double seconds,
			  const char *error, int64 job_id)
{
	if (trials->len > 1)
		appendStringInfoString(trials, ", ");
	appendStringInfo(trials, "{\"trial\": %d, \"job_id\": " INT64_FORMAT ", \"config\": %d, \"rung\": %d, \"epochs\": %d, "
					 "\"options\": %s, \"state\": ", tr->trial, job_id, tr->config, tr->rung, tr->epochs, tr->options_json);
	escape_json(trials, state);
	if (isnan(score))
		appendStringInfoString(trials, ", \"validation_score\": null");
	else
		appendStringInfo(trials, ", \"validation_score\": %.9g", score);
	appendStringInfo(trials, ", \"seconds\": %.3f", seconds);
	if (error != NULL)
	{
		appendStringInfoString(trials, ", \"error\": ");
		escape_json(trials, error);
	}
	appendStringInfoChar(trials, '}');
}

/*
 * Train one trial in trial_cxt; its score, and its model in best when it is
 * the best so far.  Errors propagate (the caller records them).
 */
static double
CaiTuneTrain(CaiTrainShared *shared, CaiWorkerProgressState *ps, const cai_train_set *set, const char *provenance,
			 int64 tuning_id, const char *search_json, int64 rows, int64 skipped, const cai_tune_trial *tr,
			 CaiTuneBest *best, MemoryContext keep)
{
	const cai_arch *arch = NULL;
	cai_options *opts = CaiParseOptions(shared->data + shared->task_off, tr->options_json, &arch);
	size_t		plen = strlen(provenance);
	/* the model's own provenance names its search and trial */
	char	   *trial_provenance = plen > 1 && provenance[plen - 1] == '}' ?
		psprintf("%.*s, \"tuning\": {\"tuning_id\": " INT64_FORMAT ", \"trial\": %d, \"config\": %d, \"rung\": %d, \"search\": %s}}",
				 (int) plen - 1, provenance, tuning_id, tr->trial, tr->config, tr->rung, search_json) :
		pstrdup(provenance);
	cai_error	err = {0};
	cai_status	st;
	CaiTrained	t = {0};
	double		score;

	CaiCheckTrainingMemory(shared, cai_arch_train_memory(arch, opts, set));
	cai_blas_set_threads(shared->threads);
	ps->started = GetCurrentTimestamp();
	st = cai_arch_train(arch, opts, set, trial_provenance, CaiWorkerProgress, ps, &t.model, &t.model_len, &t.metrics, &err);
	CaiTrainingDone(st, &err, ps, opts, rows, skipped, &t);
	score = CaiMetricsScore(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(t.metrics))));
	if (!isnan(score))
		CaiTuneKeep(best, tr, score, &t, keep);
	cai_free(t.model);
	cai_options_free(opts);
	return score;
}

/*
 * The ensemble of the trials list[0 .. n) (the best first) into out: chosen
 * on the validation rows with up to max_picks picks, or with max_picks 0 the
 * mean of them all (ensemble.h); with its own validation report and which
 * trials it holds in its metrics.  Returns the members it has (1: out stays
 * the best trial's).
 */
static int
CaiTuneEnsemble(CaiTrainShared *shared, const cai_train_set *set, const CaiTuneKept *const *list, int n, int max_picks,
				CaiTrained *out)
{
	const uint8_t *models[CAI_ENSEMBLE_MAX_MEMBERS];
	size_t		lens[CAI_ENSEMBLE_MAX_MEMBERS];
	int			counts[CAI_ENSEMBLE_MAX_MEMBERS];
	bool	   *is_valid = NULL;
	char	   *report = NULL;
	uint8_t    *bytes = NULL;
	size_t		len = 0;
	int			members = 0;
	cai_error	err = {0};
	cai_status	st;
	StringInfoData info;
	Jsonb	   *m;
	size_t		total = 0;

	for (int i = 0; i < n; i++)
	{
		models[i] = list[i]->trained.model;
		lens[i] = list[i]->trained.model_len;
		total += lens[i];
	}
	/* writing it holds the lead and one other member loaded, and the file: at most twice the kept models' bytes more */
	if (!CaiTrainingMemoryFits(shared, 2 * total))
	{
		ereport(NOTICE,
				(errmsg("the ensemble of %d trials would need %zu MB more than cai.training_memory allows: "
						"the best trial alone is stored", n, 2 * total / (1024 * 1024))));
		return 1;
	}
	if (set->valid_texts == NULL && set->texts != NULL)
	{
		/* the rows the trials held out: the same for every trial (validation_fraction is not searched; seed trials keep the split of the search's seed with validation_seed) */
		const cai_arch *arch = NULL;
		cai_options *o = CaiParseOptions(shared->data + shared->task_off, list[0]->options_json, &arch);

		is_valid = palloc0(sizeof(bool) * (set->texts->n + 1));
		st = cai_arch_validation_mask(arch, o, set, is_valid, &err);
		cai_options_free(o);
		if (st != CAI_OK)
			CaiReportCoreError(st, &err, "could not choose the ensemble");
	}
	pgstat_report_activity(STATE_RUNNING, "cai_synergy tuning: choosing the ensemble");
	st = cai_ensemble_choose(models, lens, n, set, is_valid, max_picks, counts, &report, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "could not choose the ensemble");
	for (int i = 0; i < n; i++)
		members += counts[i] > 0;
	if (members <= 1 || report == NULL)
	{
		/* greedy selection kept the best trial alone */
		cai_free(report);
		return 1;
	}

	/* the lead trial's metrics, the ensemble's validation report (its score) over them, and what it holds */
	{
		StringInfoData trials,
					weights,
					scores;

		initStringInfo(&trials);
		initStringInfo(&weights);
		initStringInfo(&scores);
		for (int i = 0; i < n; i++)
			if (counts[i] > 0)
			{
				const char *sep = trials.len > 0 ? ", " : "";

				appendStringInfo(&trials, "%s%d", sep, list[i]->trial);
				appendStringInfo(&weights, "%s%d", sep, counts[i]);
				appendStringInfo(&scores, "%s%.9g", sep, list[i]->score);
			}
		initStringInfo(&info);
		appendStringInfo(&info, "{\"ensemble\": {\"trials\": [%s], \"weights\": [%s], \"trial_scores\": [%s], \"candidates\": %d, "
						 "\"rule\": \"%s\"}}", trials.data, weights.data, scores.data, n,
						 max_picks > 0 ? "greedy selection" : "mean of seeds");
	}
	m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(list[0]->trained.metrics)));
	m = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m),
										   DirectFunctionCall1(jsonb_in, CStringGetDatum(report))));
	cai_free(report);
	m = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m),
										   DirectFunctionCall1(jsonb_in, CStringGetDatum(info.data))));
	out->metrics = JsonbToCString(NULL, &m->root, 0);
	st = cai_ensemble_write(models, lens, counts, n, out->metrics, &bytes, &len, &err);
	if (st != CAI_OK)
		CaiReportCoreError(st, &err, "could not write the ensemble");
	out->model = palloc(len);
	memcpy(out->model, bytes, len);
	out->model_len = len;
	cai_free(bytes);
	return members;
}

/*
 * The search, in the training worker, on the rows read (set): each trial of
 * the schedule a job row and a training; the best trial's model into out.
 */
void
CaiWorkerTune(CaiTrainShared *shared, CaiWorkerProgressState *ps, const cai_train_set *set,
			  const char *provenance, int64 rows, int64 skipped, CaiTrained *out)
{
	const char *task = shared->data + shared->task_off;
	const char *name = shared->data + shared->name_off;
	cai_tune   *t = CaiTuneParse(cai_task_find(task), shared->data + shared->search_off);
	MemoryContext keep = CurrentMemoryContext;
	MemoryContext trial_cxt = AllocSetContextCreate(keep, "cai_synergy trial", ALLOCSET_DEFAULT_SIZES);
	TimestampTz start = GetCurrentTimestamp();
	double		max_seconds = cai_tune_max_seconds(t);
	int			planned = cai_tune_planned(t);
	int64		tuning_id;
	CaiTuneBest best = {.n_keep = cai_tune_ensemble(t)};
	StringInfoData trials;
	const char *stopped = "schedule done";
	char	   *search_json;
	ErrorData  *last_error = NULL;
	int			done = 0;

	/* a synchronous search gets an id of its own from the job sequence */
	if (shared->job_id > 0)
		tuning_id = shared->job_id;
	else
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		tuning_id = CaiNextJobId();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(keep);
	}
	{
		char	   *sj = cai_tune_search_json(t);

		if (sj == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for the search")));
		search_json = pstrdup(sj);
		cai_free(sj);
	}
	initStringInfo(&trials);
	appendStringInfoChar(&trials, '[');
	ereport(NOTICE,
			(errmsg("tuning %s: %d trials planned (search " INT64_FORMAT ", cai_trials)",
					cai_tune_arch(t)->name, planned, tuning_id)));

	for (;;)
	{
		double		elapsed = (double) (GetCurrentTimestamp() - start) / USECS_PER_SEC;
		double		left = max_seconds > 0 ? max_seconds - elapsed : 0;
		cai_tune_trial tr;
		cai_status	st;
		int64		job_id;
		volatile double score = NAN;
		double		seconds;
		TimestampTz trial_start;
		const char *volatile state = "succeeded";
		ErrorData  *volatile edata = NULL;

		CHECK_FOR_INTERRUPTS();
		if (max_seconds > 0 && left < 0.5)
		{
			stopped = "max_seconds";
			break;
		}
		if (!cai_tune_next(t, left, &tr, &st))
		{
			if (st != CAI_OK)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for the search")));
			if (cai_tune_best(t) < 0 && done > 0)
				stopped = "no trial succeeded";
			break;
		}
		job_id = CaiTrialInsert(tuning_id, tr.trial, tr.config, tr.rung, name, task,
								shared->current_user_id, shared->data + shared->source_off, tr.options_json);
		MemoryContextSwitchTo(trial_cxt);
		ps->job_id = job_id;
		ps->cxt = trial_cxt;
		ps->history = NULL;
		ps->last_update = 0;
		pgstat_report_activity(STATE_RUNNING, "cai_synergy tuning");
		trial_start = GetCurrentTimestamp();
		PG_TRY();
		{
			score = CaiTuneTrain(shared, ps, set, provenance, tuning_id, search_json, rows, skipped, &tr, &best, keep);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(keep);
			edata = CopyErrorData();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			cai_blas_set_threads(1);
			ps->error = NULL;
			state = edata->sqlerrcode == ERRCODE_QUERY_CANCELED || ProcDiePending ? "cancelled" : "failed";
		}
		PG_END_TRY();
		MemoryContextSwitchTo(keep);
		seconds = (double) (GetCurrentTimestamp() - trial_start) / USECS_PER_SEC;
		cai_tune_report(t, tr.trial, score, seconds);
		planned = cai_tune_planned(t);
		done++;
		CaiTrialFinish(job_id, state, score, edata ? edata->message : NULL, shared->job_id, done, planned,
					   CaiTuneBestScore(&best));
		MemoryContextSwitchTo(keep);
		CaiTuneRecord(&trials, &tr, state, score, seconds, edata ? edata->message : NULL, job_id);
		MemoryContextReset(trial_cxt);
		if (edata != NULL && strcmp(state, "cancelled") == 0)
			ReThrowError(edata);	/* the whole search stops; nothing is stored */
		if (edata != NULL)
		{
			last_error = edata;
			ereport(NOTICE,
					(errmsg("trial %d of %d (configuration %d, %d epochs) failed: %s",
							tr.trial + 1, planned, tr.config, tr.epochs, edata->message)));
		}
		else
			ereport(NOTICE,
					(errmsg("trial %d of %d (configuration %d, %d epochs): validation %.4f in %.1f s%s",
							tr.trial + 1, planned, tr.config, tr.epochs, score, seconds,
							best.n > 0 && best.kept[0].trial == tr.trial ? ", best so far" : "")));
	}
	ps->job_id = shared->job_id;
	ps->cxt = keep;
	ps->history = NULL;			/* it lived in trial_cxt */
	MemoryContextDelete(trial_cxt);

	if (best.n == 0)
		ereport(ERROR,
				(errcode(last_error != NULL ? last_error->sqlerrcode : ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("no trial of the search finished"),
				 last_error != NULL ? errdetail("The last trial failed: %s", last_error->message) :
				 errdetail("The time budget (max_seconds %g) ran out before the first trial ended.", max_seconds),
				 errhint("See SELECT * FROM cai_trials WHERE tuning_id = " INT64_FORMAT ".", tuning_id)));

	/* the best trial's model (or the ensemble of the best), with the whole search beside its metrics */
	appendStringInfoChar(&trials, ']');
	{
		StringInfoData tuning;
		Jsonb	   *m;
		Jsonb	   *both;
		int			members = 1;

		const CaiTuneKept *list[CAI_ENSEMBLE_MAX_MEMBERS];

		*out = best.kept[0].trained;
		if (best.n_reseeded > 0)
		{
			/* the best trial and its seed trials, averaged */
			list[0] = &best.kept[0];
			for (int i = 0; i < best.n_reseeded; i++)
				list[i + 1] = &best.reseeded[i];
			members = CaiTuneEnsemble(shared, set, list, best.n_reseeded + 1, 0, out);
		}
		else if (best.n > 1)
		{
			for (int i = 0; i < best.n; i++)
				list[i] = &best.kept[i];
			members = CaiTuneEnsemble(shared, set, list, best.n, best.n_keep, out);
		}
		initStringInfo(&tuning);
		appendStringInfo(&tuning, "{\"tuning\": {\"tuning_id\": " INT64_FORMAT ", \"best_trial\": %d, \"trials_run\": %d, "
						 "\"seconds\": %.3f, \"stopped\": ", tuning_id, best.kept[0].trial, done,
						 (double) (GetCurrentTimestamp() - start) / USECS_PER_SEC);
		escape_json(&tuning, stopped);
		/* the search as run: the rungs after any shrinking to the time budget */
		char	   *sj = cai_tune_search_json(t);

		if (sj == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory for the search")));
		appendStringInfo(&tuning, ", \"search\": %s, \"trials\": %s}}", sj, trials.data);
		cai_free(sj);
		m = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out->metrics)));
		both = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(m),
												  DirectFunctionCall1(jsonb_in, CStringGetDatum(tuning.data))));
		out->metrics = JsonbToCString(NULL, &both->root, 0);
		if (members > 1 && best.n_reseeded > 0)
			ereport(NOTICE,
					(errmsg("tuning done (%s): the mean of trial %d and %d trainings of its options with other seeds, "
							"validation %.4f (trial %d alone: %.4f)",
							stopped, best.kept[0].trial + 1, members - 1,
							CaiMetricsScore(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out->metrics)))),
							best.kept[0].trial + 1, best.kept[0].score)));
		else if (members > 1)
			ereport(NOTICE,
					(errmsg("tuning done (%s): an ensemble of %d of the %d best trials, validation %.4f (trial %d alone: %.4f)",
							stopped, members, best.n, CaiMetricsScore(DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																											   CStringGetDatum(out->metrics)))),
							best.kept[0].trial + 1, best.kept[0].score)));
		else
			ereport(NOTICE,
					(errmsg("tuning done (%s): trial %d of %d is the best, validation %.4f",
							stopped, best.kept[0].trial + 1, done, best.kept[0].score)));
	}
	cai_tune_free(t);
}
