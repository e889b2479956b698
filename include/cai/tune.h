/*
 * tune.h: automatic tuning of training options, for any architecture of the
 * registry (model.h).
 *
 * A search is parsed from a JSON object against the option table of the
 * architecture it names (else the task's default): each option's default
 * search range comes from that table (cai_opt_def.tune), and the user may
 * replace it per option with a range {"min": a, "max": b, "scale":
 * "linear"|"log"}, a list of choices [a, b, ...], a fixed value, or null (not
 * searched: its default).  Four keys belong to the search itself:
 * "max_trials" (training runs, default 20), "max_seconds" (time budget,
 * default 0 = none), "seed" (default 42: the same search, data and threads
 * give the same trials) and "eta" (the halving factor, default 3).
 *
 * The schedule is random search with successive halving (one Hyperband
 * bracket) on the option "epochs": every configuration first trains for the
 * fewest epochs of its range, the best 1/eta of each rung train again with
 * eta times more epochs, up to the most.  Configuration 0 is the
 * architecture's defaults (clamped into the ranges), the others are drawn
 * from the seeded generator.  Without an "epochs" range (an architecture
 * without the option, or a fixed value) it is plain random search.
 *
 * The search key "seeds": S (classifiers, 0 to 7, default 0) adds S trials
 * after the schedule: the best trial's options again with the seeds seed + 1
 * .. seed + S and the validation split of seed ("validation_seed"), each
 * started only while the time left pays for a training as long as the best
 * trial's.  The stored model is the mean of the best trial and those that
 * succeed (an ensemble, ensemble.h, without selection): models that differ
 * only in their seed make errors of their own, and their mean is more
 * accurate than one of them, also where the options searched barely matter.
 * "seeds" and "ensemble" (a selection among the best trials) are
 * alternatives.
 *
 * Pure and deterministic: the caller trains each trial (cai_arch_train with
 * the trial's options) and reports its validation score.
 */
#ifndef CAI_TUNE_H
#define CAI_TUNE_H

#include "cai/common.h"
#include "cai/model.h"

#define CAI_TUNE_RESOURCE		"epochs"	/* the option successive halving grows */
#define CAI_TUNE_MAX_TRIALS_DEFAULT	20
#define CAI_TUNE_MAX_TRIALS_MAX	1000
#define CAI_TUNE_ETA_DEFAULT	3

typedef struct cai_tune cai_tune;

/* One training run of the schedule. */
typedef struct cai_tune_trial
{
	int			trial;			/* 0-based, in schedule order */
	int			config;			/* the configuration it trains (0 = defaults) */
	int			rung;			/* 0 = the cheapest */
	int			epochs;			/* its "epochs" option, 0 when not scheduled */
	bool		reseed;			/* a seed trial (search key "seeds"): the best configuration with another seed */
	char	   *options_json;	/* the whole training options (cai_malloc'ed, owned by the tuner) */
} cai_tune_trial;

/*
 * Parse search (NULL or "" = defaults) for task.  Errors are CAI_ERR_INVALID
 * naming the option: unknown option "x", option "x": range must lie within
 * ..., option "x" cannot be searched (free text), and the option table's own
 * messages for fixed values and choices.
 */
cai_status	cai_tune_parse(const cai_task *task, const char *search, cai_tune **out, cai_error *err);
void		cai_tune_free(cai_tune *t);

const cai_arch *cai_tune_arch(const cai_tune *t);
int			cai_tune_max_trials(const cai_tune *t);
double		cai_tune_max_seconds(const cai_tune *t);
/* the search key "ensemble": the stored model is an ensemble of at most that many picks of the trials (ensemble.h) */
int			cai_tune_ensemble(const cai_tune *t);
/* the search key "seeds": trials of the best configuration with other seeds after the schedule, averaged with it */
int			cai_tune_seeds(const cai_tune *t);
/* trials planned: the schedule's (at most max_trials) and the seed trials */
int			cai_tune_planned(const cai_tune *t);

/*
 * The options every trial shares (the architecture and the fixed values),
 * as a JSON object, and the whole search (budgets, seed, eta, epochs range,
 * each searched option with its range or choices, the fixed values), for
 * metadata; both cai_malloc'ed, NULL when out of memory.
 */
char	   *cai_tune_fixed_json(const cai_tune *t);
char	   *cai_tune_search_json(const cai_tune *t);

/*
 * The next trial, or false when the schedule is done (or a rung has no
 * successful trial to continue).  seconds_left > 0 becomes the trial's
 * "max_seconds" (the trainer then keeps its best epoch so far).  Every trial
 * must be reported before the next call.  CAI_ERR_NOMEM in *st on failure.
 */
bool		cai_tune_next(cai_tune *t, double seconds_left, cai_tune_trial *trial, cai_status *st);

/*
 * The validation score of a trial (NaN: it failed; never continued) and its
 * wall time in seconds.  With a time budget, the seconds per epoch measured
 * so far size the bracket while its first rung runs: the next call plans the
 * most configurations whose remaining trials fit seconds_left (only ever
 * fewer; so under a budget the trials also depend on the machine's speed).
 */
void		cai_tune_report(cai_tune *t, int trial, double score, double seconds);

/*
 * Does a trial of score and rung rank before one of other_score and
 * other_rung?  The higher validation score; on a tie, the higher rung
 * (successive halving's answer is the configuration that survived to the
 * last rung, trained with the most epochs: a cheaper trial ranks before it
 * only with a strictly better score).
 */
bool		cai_tune_ranks_before(double score, int rung, double other_score, int other_rung);

/*
 * The best trial so far (cai_tune_ranks_before; of equals the earlier
 * trial); -1 when none succeeded.
 */
int			cai_tune_best(const cai_tune *t);

#endif							/* CAI_TUNE_H */
