/*
 * trainer.c: the training loop of every architecture (see trainer.h): the
 * epochs, the better-score rule, patience, max_seconds, cancellation, the
 * progress ticker and the metrics and provenance keys they share.
 */
#include "trainer.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

#include <json-c/json.h>

#include "modelutil.h"

/* Seconds between two progress calls inside an epoch. */
#define TRAINER_TICK_SECONDS 0.1

/* Relative fall of the validation loss below its lowest that counts as progress for patience. */
#define TRAINER_LOSS_MIN_DELTA 0.0

void
cai_trainer_init(cai_trainer *tr, cai_progress_fn fn, void *ctx, double max_seconds)
{
	memset(tr, 0, sizeof(*tr));
	tr->fn = fn;
	tr->ctx = ctx;
	tr->start = tr->last = cai_now_seconds();
	tr->max_seconds = max_seconds;
}

/* See trainer.h. */
bool
cai_trainer_tick(cai_trainer *tr, double fraction)
{
	double		t;

	if (tr->fn == NULL)
		return true;
	t = cai_now_seconds();
	if (t - tr->last < TRAINER_TICK_SECONDS)
		return true;
	tr->last = t;
	tr->p.fraction = fraction < tr->p.fraction ? tr->p.fraction : fraction > 1 ? 1 : fraction;
	tr->p.epoch_done = false;
	return tr->fn(tr->ctx, &tr->p);
}

cai_status
cai_trainer_poll(cai_trainer *tr, double fraction, cai_error *err)
{
	if (!cai_trainer_tick(tr, fraction))
		return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
	return CAI_OK;
}

bool
cai_trainer_out_of_time(cai_trainer *tr)
{
	if (tr->max_seconds > 0 && cai_now_seconds() - tr->start >= tr->max_seconds)
		tr->out_of_time = true;
	return tr->out_of_time;
}

double
cai_trainer_seconds(const cai_trainer *tr)
{
	return cai_now_seconds() - tr->start;
}

/* See trainer.h. */
cai_status
cai_trainer_run(cai_trainer *tr, const cai_trainer_config *cfg, const cai_trainer_hooks *h,
				cai_error *err)
{
	double		best_loss = INFINITY;	/* the kept epoch's validation loss */
	double		low_loss = INFINITY;	/* the lowest validation loss so far */
	int			progress_epoch = 0; /* the last epoch with a better score or a new lowest loss */
	cai_status	st;

	tr->epochs = tr->p.epochs = cfg->epochs;
	tr->epochs_run = 0;
	tr->best_epoch = 0;
	tr->best_score = -1.0;
	for (int ep = 1; ep <= cfg->epochs; ep++)
	{
		double		ep_start = cai_now_seconds();
		double		loss = 0.0,
					rows = 0.0,
					score = 0.0,
					vloss = NAN;
		bool		evaluate = true;

		tr->out_of_time = false;
		if (h->begin_epoch != NULL && (st = h->begin_epoch(h->ctx, ep, err)) != CAI_OK)
			return st;
		if ((st = h->train_epoch(h->ctx, tr, ep, &loss, &rows, err)) != CAI_OK)
			return st;
		tr->epochs_run = ep;
		if (!cfg->has_validation && cfg->evaluate_last_only)
		{
			/* only the epoch that ends the run (patience needs validation) */
			if (cfg->time_check_after_epoch)
				cai_trainer_out_of_time(tr);
			evaluate = ep == cfg->epochs || tr->out_of_time;
		}
		if (!evaluate)
			score = NAN;
		else if ((st = h->evaluate(h->ctx, tr, ep, &score, &vloss, err)) != CAI_OK)
			return st;
		if (evaluate && (!cfg->has_validation || score > tr->best_score ||
						 (score == tr->best_score && vloss < best_loss)))
		{
			tr->best_score = score;
			best_loss = vloss;
			tr->best_epoch = ep;
			progress_epoch = ep;
			h->snapshot(h->ctx);
		}
		if (isfinite(vloss) && vloss < low_loss * (1.0 - TRAINER_LOSS_MIN_DELTA))
			progress_epoch = ep;
		if (isfinite(vloss) && vloss < low_loss)
			low_loss = vloss;
		tr->p.epoch = ep;
		tr->p.loss = loss;
		tr->p.val_score = score;
		tr->p.rows_per_sec = rows / fmax(cai_now_seconds() - ep_start, 1e-9);
		tr->p.fraction = (double) ep / (double) cfg->epochs;
		tr->p.epoch_done = true;
		if (tr->fn != NULL && !tr->fn(tr->ctx, &tr->p))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		tr->last = cai_now_seconds();
		if (cfg->time_check_after_epoch && evaluate)
			cai_trainer_out_of_time(tr);
		if (tr->out_of_time ||
			(cfg->has_validation && cfg->patience > 0 && ep - progress_epoch >= cfg->patience))
			break;
	}
	if (h->restore != NULL)
		return h->restore(h->ctx, err);
	return CAI_OK;
}

/* "<prefix>_<unit>" into buf. */
static const char *
unit_key(char *buf, size_t size, const char *prefix, const char *unit)
{
	snprintf(buf, size, "%s_%s", prefix, unit);
	return buf;
}

bool
cai_trainer_put_metrics(const cai_trainer *tr, struct json_object *metrics, const char *unit,
						size_t n_train, size_t n_valid)
{
	char		k1[64],
				k2[64];

	return cai_json_put(metrics, "evaluated_on", json_object_new_string(n_valid > 0 ? "validation" : "train")) &&
		cai_json_put(metrics, unit_key(k1, sizeof(k1), "train", unit), json_object_new_int64((int64_t) n_train)) &&
		cai_json_put(metrics, unit_key(k2, sizeof(k2), "validation", unit),
					 json_object_new_int64((int64_t) n_valid)) &&
		cai_json_put(metrics, "best_epoch", json_object_new_int(tr->best_epoch)) &&
		cai_json_put(metrics, "epochs_run", json_object_new_int(tr->epochs_run));
}

bool
cai_trainer_put_provenance(struct json_object *prov, const char *unit, size_t n_train, size_t n_valid,
						   uint64_t seed)
{
	char		k1[64],
				k2[64];

	return cai_json_put(prov, unit_key(k1, sizeof(k1), "train", unit), json_object_new_int64((int64_t) n_train)) &&
		cai_json_put(prov, unit_key(k2, sizeof(k2), "validation", unit), json_object_new_int64((int64_t) n_valid)) &&
		cai_json_put(prov, "seed", json_object_new_int64((int64_t) seed)) &&
		cai_json_put(prov, "library", json_object_new_string("cai_synergy " CAI_VERSION_STRING));
}
