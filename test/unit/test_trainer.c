/*
 * test_trainer.c: the trainer's control logic (trainer.c) with fake hooks:
 * which epochs run, the better-score rule, patience, max_seconds, cancel,
 * the restore of the best epoch, and which epochs are scored.
 */
#include <math.h>
#include <string.h>

#include "check.h"

/* CHECK with the condition as the message */
#define CK(cond) CHECK(cond, "%s", "see the condition")
#include "../../src/core/trainer.h"

typedef struct Fake
{
	const double *scores;		/* (epochs) validation score of each epoch */
	const double *losses;		/* (epochs) tie-break loss, may be NULL (NAN) */
	int			trained;		/* train_epoch calls */
	int			snapshot_epoch;	/* epoch of the last snapshot */
	int			current;		/* epoch of the current parameters */
	int			restored;		/* epoch restored (0 = not called) */
	double		sleep_after;	/* train_epoch: pretend this epoch took all the time */
	int			spend_at;		/* train_epoch: this epoch spends the budget after its steps */
	int			steps_done;
	int			evaluated;		/* evaluate calls */
	int			evaluated_epoch;	/* epoch of the last evaluate call */
} Fake;

static cai_status
fake_train(void *ctx, cai_trainer *tr, int epoch, double *loss, double *rows, cai_error *err)
{
	Fake	   *f = ctx;

	f->trained++;
	f->current = epoch;
	if (f->sleep_after > 0 && epoch >= (int) f->sleep_after)
		tr->max_seconds = 1e-9;		/* the budget is spent: the next check stops */
	for (int s = 0; s < 4; s++)
	{
		cai_status	st = cai_trainer_poll(tr, 0.5, err);

		if (st != CAI_OK)
			return st;
		if (cai_trainer_out_of_time(tr))
			break;
		f->steps_done++;
	}
	if (f->spend_at == epoch)
		tr->max_seconds = 1e-9;		/* only a check after the steps sees it */
	*loss = 1.0 / epoch;
	*rows = 10;
	return CAI_OK;
}

static cai_status
fake_eval(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	Fake	   *f = ctx;

	f->evaluated++;
	f->evaluated_epoch = epoch;
	*score = f->scores[epoch - 1];
	*loss = f->losses != NULL ? f->losses[epoch - 1] : NAN;
	return CAI_OK;
}

static void
fake_snapshot(void *ctx)
{
	Fake	   *f = ctx;

	f->snapshot_epoch = f->current;
}

static cai_status
fake_restore(void *ctx, cai_error *err)
{
	Fake	   *f = ctx;

	f->restored = f->snapshot_epoch;
	f->current = f->snapshot_epoch;
	return CAI_OK;
}

static int	calls,
			done_calls,
			cancel_at;
static double reported[16];		/* val_score of each epoch's progress call */

static bool
progress(void *ctx, const cai_progress *p)
{
	calls++;
	if (p->epoch_done)
	{
		done_calls++;
		if (p->epoch >= 1 && p->epoch <= 16)
			reported[p->epoch - 1] = p->val_score;
	}
	return !(cancel_at > 0 && p->epoch_done && done_calls == cancel_at);
}

static cai_status
run_last(Fake *f, int epochs, int patience, bool has_va, bool time_after, bool last_only, cai_trainer *tr,
		 cai_error *err)
{
	cai_trainer_config cfg = {epochs, patience, has_va, time_after, last_only};
	cai_trainer_hooks h = {f, NULL, fake_train, fake_eval, fake_snapshot, fake_restore};

	calls = done_calls = 0;
	cai_trainer_init(tr, progress, NULL, 0);
	return cai_trainer_run(tr, &cfg, &h, err);
}

static cai_status
run(Fake *f, int epochs, int patience, bool has_va, bool time_after, cai_trainer *tr, cai_error *err)
{
	return run_last(f, epochs, patience, has_va, time_after, false, tr, err);
}

int
main(void)
{
	static const double up_down[] = {0.5, 0.7, 0.6, 0.6, 0.65, 0.9};
	static const double ties[] = {0.5, 0.5, 0.5, 0.5};
	static const double tie_loss[] = {2.0, 1.0, 1.0, 3.0};
	cai_trainer tr;
	cai_error	err;
	Fake		f;

	/* patience 0: every epoch runs; the best (epoch 6) is restored */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run(&f, 6, 0, true, true, &tr, &err) == CAI_OK);
	CK(f.trained == 6 && tr.epochs_run == 6 && tr.best_epoch == 6 && f.restored == 6);
	CK(done_calls == 6 && tr.p.epoch == 6 && tr.p.fraction == 1.0);

	/* patience 2: epochs 3 and 4 are not better than 2: stop after 4, keep 2 */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run(&f, 6, 2, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 4 && tr.best_epoch == 2 && f.restored == 2 && tr.best_score == 0.7);

	/* patience 1 stops after epoch 3 */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run(&f, 6, 1, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && tr.best_epoch == 2);

	/* without validation: no patience, the last epoch is kept */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run(&f, 6, 1, false, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 6 && tr.best_epoch == 6 && f.restored == 6);

	/* ... every epoch scored */
	CK(f.evaluated == 6 && reported[0] == 0.5 && reported[5] == 0.9);

	/*
	 * evaluate_last_only: without validation only the last epoch is scored
	 * (and kept); the others report NAN.  With validation it changes nothing.
	 */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run_last(&f, 6, 1, false, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 6 && tr.best_epoch == 6 && f.restored == 6 && f.snapshot_epoch == 6);
	CK(f.evaluated == 1 && f.evaluated_epoch == 6 && done_calls == 6);
	CK(isnan(reported[0]) && isnan(reported[4]) && reported[5] == 0.9 && tr.best_score == 0.9);
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run_last(&f, 6, 2, true, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 4 && tr.best_epoch == 2 && f.evaluated == 4 && reported[2] == 0.6);
	/* ... the epoch whose steps spend max_seconds is the last, and scored */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.sleep_after = 3;
	CK(run_last(&f, 6, 0, false, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && f.evaluated == 1 && f.evaluated_epoch == 3 && f.restored == 3);
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.sleep_after = 3;
	CK(run_last(&f, 6, 0, false, false, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && f.evaluated == 1 && f.evaluated_epoch == 3 && f.restored == 3);
	/*
	 * ... the budget spent after the steps: the check after the epoch (now
	 * before its evaluation) makes epoch 3 the last and scores it; with the
	 * step loop's checks only, epoch 4 stops at its first check and is scored
	 */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.spend_at = 3;
	CK(run_last(&f, 6, 0, false, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && f.evaluated == 1 && f.evaluated_epoch == 3 && f.restored == 3);
	CK(f.steps_done == 12 && done_calls == 3 && reported[2] == 0.6);
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.spend_at = 3;
	CK(run_last(&f, 6, 0, false, false, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 4 && f.evaluated == 1 && f.evaluated_epoch == 4 && f.restored == 4);
	CK(f.steps_done == 12 && isnan(reported[2]) && reported[3] == 0.6);

	/* equal scores: a lower loss wins the tie, an equal loss does not; NAN never does */
	memset(&f, 0, sizeof(f));
	f.scores = ties;
	f.losses = tie_loss;
	CK(run(&f, 4, 0, true, true, &tr, &err) == CAI_OK);
	CK(tr.best_epoch == 2 && f.restored == 2);
	memset(&f, 0, sizeof(f));
	f.scores = ties;
	CK(run(&f, 4, 0, true, true, &tr, &err) == CAI_OK);
	CK(tr.best_epoch == 1 && f.restored == 1);

	/*
	 * patience counts epochs without progress: a better score or a new
	 * lowest validation loss.  A flat score while the loss falls (a small
	 * data set's first epochs) keeps training; once neither moves, patience
	 * stops it; the best score's epoch is kept.
	 */
	{
		static const double flat[] = {0.55, 0.55, 0.55, 0.55, 0.55, 0.70, 0.72, 0.71, 0.71, 0.71, 0.71, 0.71};
		static const double falling[] = {0.693, 0.6929, 0.6927, 0.692, 0.69, 0.6, 0.5, 0.55, 0.56, 0.57, 0.4, 0.3};

		memset(&f, 0, sizeof(f));
		f.scores = flat;
		f.losses = falling;
		CK(run(&f, 12, 3, true, true, &tr, &err) == CAI_OK);
		/* epochs 2-5: loss falls (progress); 6, 7 better scores; 8-10 neither: stop after 10 */
		CK(tr.epochs_run == 10 && tr.best_epoch == 7 && f.restored == 7);
		/* without losses (NAN), the score alone: stop after epoch 4 */
		memset(&f, 0, sizeof(f));
		f.scores = flat;
		CK(run(&f, 12, 3, true, true, &tr, &err) == CAI_OK);
		CK(tr.epochs_run == 4 && tr.best_epoch == 1);
	}

	/* max_seconds: the epoch that spends the budget stops its steps, is scored, and is the last */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.sleep_after = 3;
	CK(run(&f, 6, 0, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && tr.best_epoch == 2 && f.restored == 2 && f.steps_done == 8);
	CK(done_calls == 3);
	/* the same with the checks of the step loop only */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	f.sleep_after = 3;
	CK(run(&f, 6, 0, true, false, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 3 && f.restored == 2);

	/* cancel at the second epoch's progress call: CAI_ERR_CANCELLED, no restore */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	cancel_at = 2;
	CK(run(&f, 6, 0, true, true, &tr, &err) == CAI_ERR_CANCELLED);
	CK(err.status == CAI_ERR_CANCELLED && f.trained == 2 && f.restored == 0);
	cancel_at = 0;

	/* epochs 0: nothing runs, restore still called */
	memset(&f, 0, sizeof(f));
	f.scores = up_down;
	CK(run(&f, 0, 0, true, true, &tr, &err) == CAI_OK);
	CK(tr.epochs_run == 0 && tr.best_epoch == 0 && f.trained == 0);

	/* the ticker: rate-limited, fraction never goes back, at most 1 */
	cai_trainer_init(&tr, progress, NULL, 0);
	calls = 0;
	CK(cai_trainer_tick(&tr, 0.5) && calls == 0);	/* within 100 ms of init */
	tr.last -= 1.0;
	CK(cai_trainer_tick(&tr, 0.5) && calls == 1 && tr.p.fraction == 0.5 && !tr.p.epoch_done);
	tr.last -= 1.0;
	CK(cai_trainer_tick(&tr, 0.25) && calls == 2 && tr.p.fraction == 0.5);
	tr.last -= 1.0;
	CK(cai_trainer_tick(&tr, 7.0) && tr.p.fraction == 1.0);
	CK(!cai_trainer_out_of_time(&tr));

	return check_summary("test_trainer");
}
