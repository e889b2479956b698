/*
 * trainer.h: the training loop, written once (internal to src/core).
 *
 * An architecture supplies hooks (begin_epoch, train_epoch, evaluate,
 * snapshot, restore) that keep its own numerics and random draws; the
 * trainer owns the epoch loop around them: which epochs run, when the
 * validation score is better, patience, max_seconds, cancellation through
 * the progress callback and the one progress ticker.  Wall-clock time goes
 * to the progress callback and the returned metrics only, never into model
 * bytes: the trainer draws no random numbers and changes no parameter.
 *
 * A run:
 *     cai_trainer_init(&tr, progress, ctx, max_seconds);   (first: the clock starts)
 *     ... data preparation, calling cai_trainer_tick(&tr, 0.0) now and then ...
 *     st = cai_trainer_run(&tr, &cfg, &hooks, err);
 *     ... tr.best_epoch, tr.epochs_run, cai_trainer_put_metrics(), cai_trainer_seconds() ...
 */
#ifndef CAI_TRAINER_H
#define CAI_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cai/common.h"

struct json_object;

typedef struct cai_trainer
{
	cai_progress_fn fn;			/* may be NULL */
	void	   *ctx;
	double		start;			/* cai_now_seconds() at cai_trainer_init */
	double		last;			/* last call of fn */
	double		max_seconds;	/* 0 = no limit */
	bool		out_of_time;	/* cai_trainer_out_of_time() said so in this epoch */
	cai_progress p;				/* what fn gets */
	/* results of cai_trainer_run */
	int			epochs;			/* planned */
	int			epochs_run;
	int			best_epoch;		/* 0 before the first epoch */
	double		best_score;
} cai_trainer;

typedef struct cai_trainer_config
{
	int			epochs;			/* planned epochs (>= 0) */
	/*
	 * stop after this many epochs in which neither the validation score got
	 * better nor the validation loss (when the architecture reports one) fell
	 * below its lowest by TRAINER_LOSS_MIN_DELTA; 0 = never
	 */
	int			patience;
	/*
	 * false: the score comes from the training rows; every epoch counts as
	 * better (the last epoch is kept) and patience never stops training.
	 */
	bool		has_validation;
	/*
	 * Check max_seconds again after each epoch's evaluation and progress
	 * call (the text classifiers).  false: only the checks of the step loop
	 * (cai_trainer_out_of_time) stop training, as NER always did: when the
	 * time runs out during an evaluation, the next epoch runs one step.
	 */
	bool		time_check_after_epoch;
	/*
	 * With has_validation false: evaluate and snapshot only the epoch that
	 * ends the run (the last planned, or the one in which max_seconds ran
	 * out: with time_check_after_epoch the time is checked before that
	 * evaluation rather than after it), not every epoch.  The other epochs
	 * report a NAN score.  Scoring all training rows after every epoch
	 * costs the fast classifier a fifth of its training time and tells
	 * nothing the loss does not; the kept model and its metrics are the
	 * same.
	 */
	bool		evaluate_last_only;
} cai_trainer_config;

typedef struct cai_trainer_hooks
{
	void	   *ctx;
	/* optional: this epoch's order of rows and batches (the epoch's first random draws) */
	cai_status	(*begin_epoch) (void *ctx, int epoch, cai_error *err);

	/*
	 * The epoch's steps.  Between steps the hook calls cai_trainer_poll()
	 * (progress, cancel) and stops the epoch early when
	 * cai_trainer_out_of_time() is true.  *loss: the mean training loss;
	 * *rows: rows (sentences) trained, for rows_per_sec.
	 */
	cai_status	(*train_epoch) (void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows,
								cai_error *err);

	/*
	 * Score the current parameters (higher is better).  *loss breaks ties of
	 * the score (lower is better); NAN = no tie-break (an equal score is not
	 * better).  May call cai_trainer_tick() and return CAI_ERR_CANCELLED.
	 */
	cai_status	(*evaluate) (void *ctx, cai_trainer *tr, int epoch, double *score, double *loss,
							 cai_error *err);
	/* keep the current parameters as the best */
	void		(*snapshot) (void *ctx);
	/* optional: after the last epoch, make the best parameters current */
	cai_status	(*restore) (void *ctx, cai_error *err);
} cai_trainer_hooks;

void		cai_trainer_init(cai_trainer *tr, cai_progress_fn fn, void *ctx, double max_seconds);

/*
 * The ticker: call the progress callback when 100 ms have passed since the
 * last call, with fraction (never below the last fraction reported, at most
 * 1).  false when the callback cancels.
 */
bool		cai_trainer_tick(cai_trainer *tr, double fraction);

/* cai_trainer_tick() as a status: CAI_ERR_CANCELLED (err set) when cancelled. */
cai_status	cai_trainer_poll(cai_trainer *tr, double fraction, cai_error *err);

/* max_seconds have passed since cai_trainer_init (sets tr->out_of_time). */
bool		cai_trainer_out_of_time(cai_trainer *tr);

/*
 * The epochs: for epoch = 1..cfg->epochs: begin_epoch, train_epoch,
 * evaluate (every epoch, or see evaluate_last_only), snapshot when the
 * score is better (higher, or equal with a lower loss), one progress call with epoch_done (false from it
 * = CAI_ERR_CANCELLED), then stop when out of time or after patience epochs
 * without progress (a better score, or a validation loss lower than any
 * before: early epochs of a small data set often leave the score at the
 * majority class's while the loss falls).  restore at the end.
 */
cai_status	cai_trainer_run(cai_trainer *tr, const cai_trainer_config *cfg, const cai_trainer_hooks *h,
							cai_error *err);

/* Seconds since cai_trainer_init. */
double		cai_trainer_seconds(const cai_trainer *tr);

/*
 * The metrics keys every architecture writes, in this order: evaluated_on,
 * train_<unit>, validation_<unit>, best_epoch, epochs_run (unit: "rows" or
 * "sentences").  false on out of memory.
 */
bool		cai_trainer_put_metrics(const cai_trainer *tr, struct json_object *metrics, const char *unit,
									size_t n_train, size_t n_valid);

/* The provenance keys: train_<unit>, validation_<unit>, seed, library.  false on out of memory. */
bool		cai_trainer_put_provenance(struct json_object *prov, const char *unit, size_t n_train,
									   size_t n_valid, uint64_t seed);

#endif							/* CAI_TRAINER_H */
