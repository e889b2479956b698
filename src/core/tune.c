/*
 * tune.c: the search space and schedule of automatic tuning (tune.h).
 *
 * The space comes from the chosen architecture's option table (each
 * option's tune range) overridden by the user's search object; the schedule
 * is one bracket of successive halving on "epochs" over configurations drawn
 * up front from a seeded generator, so that the trials depend only on the
 * search, the seed and the reported scores.  json-c holds the values; every
 * json-c object is released by cai_tune_free.
 */
#include "cai/tune.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/ensemble.h"
#include "modelutil.h"

#define TUNE_MAX_RUNGS 32

/* One searched option. */
typedef struct tune_dim
{
	int			def;			/* index into the architecture's option table */
	json_object *choices;		/* an array, or NULL for a range */
	cai_tune_scale scale;
	double		min;
	double		max;
} tune_dim;

struct cai_tune
{
	const cai_arch *arch;
	const cai_opt_def *defs;
	int			n_defs;
	json_object *fixed;			/* options every trial shares */
	tune_dim   *dims;
	int			n_dims;
	int			max_trials;
	double		max_seconds;
	int			ensemble;		/* members of the stored model at most (1: the best trial alone) */
	int			seeds;			/* trainings of the best configuration with other seeds after the schedule:
								 * the stored model is their mean with it */
	int64_t		seed;
	int			eta;
	bool		halving;		/* "epochs" is the resource */
	int			min_epochs;
	int			max_epochs;

	/* the plan: rung r trains rung_n[r] configurations for rung_epochs[r] epochs */
	int			n_rungs;
	int			rung_n[TUNE_MAX_RUNGS];
	int			rung_epochs[TUNE_MAX_RUNGS];
	int			n_configs;
	json_object **configs;		/* per configuration: its searched values */

	/* progress */
	int			n_trials;
	cai_tune_trial *trials;		/* max_trials + seeds entries */
	double	   *scores;
	double	   *trial_seconds;
	int			n_schedule;		/* trials of the schedule (the rest are seed trials) */
	bool		schedule_done;
	double		seconds;		/* wall time of the trials reported, and their epochs: the cost of an epoch */
	double		epochs;
	int			rung;			/* current rung, -1 before the first */
	int		   *order;			/* configurations of the current rung, best first */
	int			order_n;
	int			order_pos;
};

/* ---------------------------------------------------------------------- */
/* Parsing                                                                */
/* ---------------------------------------------------------------------- */

static int
find_def(const cai_tune *t, const char *name)
{
	for (int i = 0; i < t->n_defs; i++)
		if (strcmp(t->defs[i].name, name) == 0)
			return i;
	return -1;
}

/* Check one value of option d with the option table's own rules. */
static cai_status
check_value(const cai_tune *t, const cai_opt_def *d, json_object *v, cai_error *err)
{
	json_object *o = json_object_new_object();
	cai_options *parsed = NULL;
	cai_status	st;

	if (o == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	if (!cai_json_put(o, d->name, json_object_get(v)))
	{
		json_object_put(o);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	}
	st = cai_options_parse(t->defs, t->n_defs, json_object_to_json_string(o), &parsed, err);
	cai_options_free(parsed);
	json_object_put(o);
	return st;
}

static bool
is_number(json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* {"min": a, "max": b, "scale": "linear" | "log"} for a numeric option. */
static cai_status
parse_range(const cai_tune *t, const cai_opt_def *d, json_object *v, tune_dim *dim, cai_error *err)
{
	json_object *lo = NULL;
	json_object *hi = NULL;
	json_object *sc = NULL;

	if (d->type != CAI_OPT_INT && d->type != CAI_OPT_FLOAT)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "option \"%s\" is not numeric: search it with a list of choices or a fixed value", d->name);
	json_object_object_foreach(v, key, val)
	{
		(void) val;
		if (strcmp(key, "min") != 0 && strcmp(key, "max") != 0 && strcmp(key, "scale") != 0)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "option \"%s\": unknown range key \"%.48s\", valid keys are: min, max, scale",
								 d->name, key);
	}
	if (!json_object_object_get_ex(v, "min", &lo) || !json_object_object_get_ex(v, "max", &hi) ||
		!is_number(lo) || !is_number(hi))
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": a range needs numbers \"min\" and \"max\"",
							 d->name);
	dim->min = json_object_get_double(lo);
	dim->max = json_object_get_double(hi);
	dim->scale = CAI_TUNE_LINEAR;
	if (json_object_object_get_ex(v, "scale", &sc))
	{
		const char *s = json_object_is_type(sc, json_type_string) ? json_object_get_string(sc) : "";

		if (strcmp(s, "log") == 0)
			dim->scale = CAI_TUNE_LOG;
		else if (strcmp(s, "linear") != 0)
			return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": \"scale\" must be \"linear\" or \"log\"",
								 d->name);
	}
	if (!isfinite(dim->min) || !isfinite(dim->max) || dim->min > dim->max)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": the range needs min <= max, got %g and %g",
							 d->name, dim->min, dim->max);
	if (dim->min < d->min || dim->max > d->max)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": the range must lie within %.15g and %.15g, got %g to %g",
							 d->name, d->min, d->max, dim->min, dim->max);
	if (dim->scale == CAI_TUNE_LOG && dim->min <= 0)
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": a log-scale range needs min > 0, got %g",
							 d->name, dim->min);
	if (d->type == CAI_OPT_INT && (dim->min != floor(dim->min) || dim->max != floor(dim->max)))
		return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": an integer option needs integer range bounds",
							 d->name);
	return CAI_OK;
}

/* An integer search key of the search itself. */
static cai_status
search_int(json_object *v, const char *key, int64_t lo, int64_t hi, int64_t *out, cai_error *err)
{
	double		x = is_number(v) ? json_object_get_double(v) : NAN;

	if (!(x >= (double) lo && x <= (double) hi) || x != floor(x))
		return cai_error_set(err, CAI_ERR_INVALID, "search key \"%s\" must be an integer between %lld and %lld",
							 key, (long long) lo, (long long) hi);
	*out = (int64_t) x;
	return CAI_OK;
}

/* Add (or replace) the searched option def. */
static tune_dim *
dim_for(cai_tune *t, int def)
{
	for (int i = 0; i < t->n_dims; i++)
		if (t->dims[i].def == def)
			return &t->dims[i];
	t->dims[t->n_dims].def = def;
	return &t->dims[t->n_dims++];
}

static void
dim_remove(cai_tune *t, int def)
{
	for (int i = 0; i < t->n_dims; i++)
		if (t->dims[i].def == def)
		{
			json_object_put(t->dims[i].choices);
			memmove(&t->dims[i], &t->dims[i + 1], (size_t) (t->n_dims - i - 1) * sizeof(tune_dim));
			t->n_dims--;
			return;
		}
}

/* One user key that names an option. */
static cai_status
parse_option(cai_tune *t, const char *key, json_object *v, bool *epochs_range, cai_error *err)
{
	int			i = find_def(t, key);
	const cai_opt_def *d;
	cai_status	st;

	if (i < 0)
	{
		char		valid[150];

		cai_options_valid_keys_fit(t->defs, t->n_defs, valid, sizeof(valid));
		return cai_error_set(err, CAI_ERR_INVALID,
							 "unknown option \"%.40s\" in the search (search keys: max_trials, max_seconds, seed, eta, ensemble; options: %s)",
							 key, valid);
	}
	d = &t->defs[i];
	json_object_object_del(t->fixed, key);
	dim_remove(t, i);
	if (strcmp(key, CAI_TUNE_RESOURCE) == 0)
		*epochs_range = false;
	if (v == NULL)				/* null: its default, not searched */
		return CAI_OK;
	if (json_object_is_type(v, json_type_object))
	{
		tune_dim	dim = {i, NULL, CAI_TUNE_NONE, 0, 0};

		st = parse_range(t, d, v, &dim, err);
		if (st != CAI_OK)
			return st;
		if (strcmp(key, CAI_TUNE_RESOURCE) == 0)
		{
			*epochs_range = true;
			t->min_epochs = (int) dim.min;
			t->max_epochs = (int) dim.max;
			return CAI_OK;
		}
		*dim_for(t, i) = dim;
		return CAI_OK;
	}
	if (json_object_is_type(v, json_type_array))
	{
		size_t		n = json_object_array_length(v);
		tune_dim   *dim;

		if (n == 0)
			return cai_error_set(err, CAI_ERR_INVALID, "option \"%s\": the list of choices is empty", d->name);
		for (size_t k = 0; k < n; k++)
		{
			st = check_value(t, d, json_object_array_get_idx(v, k), err);
			if (st != CAI_OK)
				return st;
		}
		dim = dim_for(t, i);
		dim->choices = json_object_get(v);
		dim->scale = CAI_TUNE_NONE;
		return CAI_OK;
	}
	/* a fixed value, checked with the others by cai_task_parse_options */
	if (!cai_json_put(t->fixed, key, json_object_get(v)))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	return CAI_OK;
}

/* The trials of a bracket that starts with n configurations. */
static int
plan(cai_tune *t, int n, bool keep)
{
	int			rungs = 0;
	int			total = 0;
	int			e = t->halving && n > 1 ? t->min_epochs : t->max_epochs;

	for (;;)
	{
		if (keep)
		{
			t->rung_n[rungs] = n;
			t->rung_epochs[rungs] = t->halving ? e : 0;
		}
		rungs++;
		total += n;
		if (!t->halving || n <= 1 || e >= t->max_epochs || rungs == TUNE_MAX_RUNGS)
			break;
		n = n / t->eta > 1 ? n / t->eta : 1;
		e = n == 1 || (double) e * t->eta >= t->max_epochs ? t->max_epochs : e * t->eta;
	}
	if (keep)
		t->n_rungs = rungs;
	return total;
}

/* A uniform double in [0, 1). */
static double
uniform01(cai_rng *r)
{
	return (double) (cai_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* v rounded for the option's type (3 significant digits for a number) and clamped. */
static json_object *
range_value(const cai_opt_def *d, const tune_dim *dim, double v)
{
	if (v < dim->min)
		v = dim->min;
	if (v > dim->max)
		v = dim->max;
	if (d->type == CAI_OPT_INT)
		return json_object_new_int64((int64_t) llround(v));
	{
		char		buf[32];
		double		r;

		snprintf(buf, sizeof(buf), "%.3g", v);
		r = strtod(buf, NULL);
		if (r < dim->min || r > dim->max)
			snprintf(buf, sizeof(buf), "%.17g", v);
		return json_object_new_double_s(strtod(buf, NULL), buf);
	}
}

/* The option's default as a JSON value (NULL for a STRING without one). */
static json_object *
default_value(const cai_opt_def *d)
{
	if (d->def == NULL)
		return NULL;
	switch (d->type)
	{
		case CAI_OPT_INT:
			return json_object_new_int64(strtoll(d->def, NULL, 10));
		case CAI_OPT_FLOAT:
			return json_object_new_double_s(strtod(d->def, NULL), d->def);
		case CAI_OPT_BOOL:
			return json_object_new_boolean(strcmp(d->def, "true") == 0);
		default:
			return json_object_new_string(d->def);
	}
}

/* The value of dim in configuration 0 (the defaults) or drawn from r. */
static json_object *
draw(const cai_tune *t, const tune_dim *dim, cai_rng *r, bool defaults)
{
	const cai_opt_def *d = &t->defs[dim->def];

	if (dim->choices != NULL)
	{
		size_t		n = json_object_array_length(dim->choices);
		size_t		k = 0;

		if (defaults)
		{
			json_object *def = default_value(d);

			for (size_t i = 0; i < n && def != NULL; i++)
				if (json_object_equal(def, json_object_array_get_idx(dim->choices, i)))
				{
					k = i;
					break;
				}
			json_object_put(def);
		}
		else
			k = cai_rng_below(r, (uint32_t) n);
		return json_object_get(json_object_array_get_idx(dim->choices, k));
	}
	if (defaults)
		return range_value(d, dim, strtod(d->def, NULL));
	if (dim->scale == CAI_TUNE_LOG)
		return range_value(d, dim, exp(log(dim->min) + uniform01(r) * (log(dim->max) - log(dim->min))));
	if (d->type == CAI_OPT_INT)
		return range_value(d, dim, floor(dim->min + uniform01(r) * (dim->max - dim->min + 1)));
	return range_value(d, dim, dim->min + uniform01(r) * (dim->max - dim->min));
}

static cai_status
make_configs(cai_tune *t, cai_error *err)
{
	cai_rng		r;

	cai_rng_seed(&r, (uint64_t) t->seed);
	t->configs = cai_calloc((size_t) t->n_configs, sizeof(json_object *));
	if (t->configs == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	for (int c = 0; c < t->n_configs; c++)
	{
		t->configs[c] = json_object_new_object();
		if (t->configs[c] == NULL)
			return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
		for (int i = 0; i < t->n_dims; i++)
			if (!cai_json_put(t->configs[c], t->defs[t->dims[i].def].name, draw(t, &t->dims[i], &r, c == 0)))
				return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	}
	return CAI_OK;
}

cai_status
cai_tune_parse(const cai_task *task, const char *search, cai_tune **out, cai_error *err)
{
	json_object *s = NULL;
	json_object *a = NULL;
	bool		epochs_range = false;	/* "epochs" is searched as a range */
	bool		ensemble_set = false;	/* "ensemble" given */
	cai_options *fixed_opts = NULL;
	const cai_arch *arch = NULL;
	const char *arch_name = task->default_arch;
	cai_tune   *t;
	cai_status	st = CAI_OK;
	int			n;

	*out = NULL;
	if (search != NULL && search[strspn(search, " \t\r\n")] != '\0')
	{
		s = cai_json_parse_object(search);
		if (s == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "the search must be a JSON object");
	}
	if (s != NULL && json_object_object_get_ex(s, "architecture", &a))
	{
		if (!json_object_is_type(a, json_type_string))
		{
			json_object_put(s);
			return cai_error_set(err, CAI_ERR_INVALID, "option \"architecture\" must be one architecture name");
		}
		arch_name = json_object_get_string(a);
	}
	arch = cai_arch_find(task->name, arch_name);
	if (arch == NULL)
	{
		cai_options *o = NULL;

		/* the registry's message lists the valid architectures */
		st = cai_task_parse_options(task, a != NULL ? json_object_to_json_string(s) : NULL, &arch, &o, err);
		cai_options_free(o);
		json_object_put(s);
		return st != CAI_OK ? st : cai_error_set(err, CAI_ERR_INVALID, "unknown architecture");
	}
	if (arch->train == NULL)
	{
		json_object_put(s);
		return cai_error_set(err, CAI_ERR_INVALID, "cannot tune %s %s models: %s", task->name, arch->name,
							 task->kind == CAI_KIND_ENCODER ? "they are imported, not trained" :
							 "they are built by the search itself (search key \"ensemble\")");
	}

	t = cai_calloc(1, sizeof(cai_tune));
	if (t == NULL)
	{
		json_object_put(s);
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
	}
	t->arch = arch;
	t->defs = arch->options;
	t->n_defs = *arch->n_options;
	t->fixed = json_object_new_object();
	t->dims = cai_calloc((size_t) t->n_defs, sizeof(tune_dim));
	t->max_trials = CAI_TUNE_MAX_TRIALS_DEFAULT;
	t->ensemble = 1;
	t->seed = 42;
	t->eta = CAI_TUNE_ETA_DEFAULT;
	t->rung = -1;
	/* an architecture chosen by an option names itself in every trial's options */
	if (t->fixed == NULL || t->dims == NULL ||
		(find_def(t, "architecture") >= 0 && !cai_json_put(t->fixed, "architecture", json_object_new_string(arch->name))))
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
		goto done;
	}

	/* the architecture's default space */
	for (int i = 0; i < t->n_defs; i++)
	{
		const cai_opt_def *d = &t->defs[i];

		if (d->tune.scale == CAI_TUNE_NONE)
			continue;
		if (strcmp(d->name, CAI_TUNE_RESOURCE) == 0)
		{
			t->min_epochs = (int) d->tune.min;
			t->max_epochs = (int) d->tune.max;
			epochs_range = true;
			continue;
		}
		*dim_for(t, i) = (tune_dim)
		{
			i, NULL, d->tune.scale, d->tune.min, d->tune.max
		};
	}

	/* the user's changes */
	if (s != NULL)
	{
		json_object_object_foreach(s, key, v)
		{
			int64_t		x;

			if (strcmp(key, "architecture") == 0)
				continue;
			if (strcmp(key, "max_trials") == 0)
			{
				st = search_int(v, key, 1, CAI_TUNE_MAX_TRIALS_MAX, &x, err);
				t->max_trials = (int) x;
			}
			else if (strcmp(key, "seed") == 0)
			{
				st = search_int(v, key, 0, 2147483647, &x, err);
				t->seed = x;
			}
			else if (strcmp(key, "eta") == 0)
			{
				st = search_int(v, key, 2, 10, &x, err);
				t->eta = (int) x;
			}
			else if (strcmp(key, "ensemble") == 0)
			{
				st = search_int(v, key, 1, CAI_ENSEMBLE_MAX_MEMBERS, &x, err);
				t->ensemble = (int) x;
				ensemble_set = true;
				if (st == CAI_OK && x > 1 && arch->task->kind != CAI_KIND_CLASSIFY)
					st = cai_error_set(err, CAI_ERR_INVALID,
									   "search key \"ensemble\" applies to classifiers: a %s model is the best trial alone",
									   arch->task->name);
			}
			else if (strcmp(key, "seeds") == 0)
			{
				st = search_int(v, key, 0, CAI_ENSEMBLE_MAX_MEMBERS - 1, &x, err);
				t->seeds = (int) x;
				if (st == CAI_OK && x > 0 && arch->task->kind != CAI_KIND_CLASSIFY)
					st = cai_error_set(err, CAI_ERR_INVALID,
									   "search key \"seeds\" applies to classifiers (the stored model is the mean of its trainings)");
				else if (st == CAI_OK && x > 0 && (find_def(t, "seed") < 0 || find_def(t, "validation_seed") < 0))
					st = cai_error_set(err, CAI_ERR_INVALID,
									   "search key \"seeds\": %s %s models have no options \"seed\" and \"validation_seed\"",
									   arch->task->name, arch->name);
			}
			else if (strcmp(key, "max_seconds") == 0)
			{
				t->max_seconds = is_number(v) ? json_object_get_double(v) : NAN;
				if (!(t->max_seconds >= 0 && t->max_seconds <= 1e7))
					st = cai_error_set(err, CAI_ERR_INVALID, "search key \"max_seconds\" must be a number between 0 and 10000000");
			}
			else
				st = parse_option(t, key, v, &epochs_range, err);
			if (st != CAI_OK)
				goto done;
		}
	}

	/* two ways to store an ensemble: the mean of the best configuration's seeds, or a selection among the best trials */
	if (t->seeds > 0 && ensemble_set && t->ensemble > 1)
	{
		st = cai_error_set(err, CAI_ERR_INVALID,
						   "search keys \"ensemble\" and \"seeds\" are alternatives: \"seeds\" stores the mean of the best "
						   "configuration's trainings, \"ensemble\" a selection among the best trials");
		goto done;
	}

	/* fixed values: the option table's checks and messages */
	st = cai_task_parse_options(task, json_object_to_json_string(t->fixed), &arch, &fixed_opts, err);
	cai_options_free(fixed_opts);
	if (st != CAI_OK)
		goto done;

	t->halving = epochs_range && t->min_epochs < t->max_epochs;
	if (epochs_range && !t->halving)
	{
		/* a one-value range: every trial trains that many epochs */
		if (!cai_json_put(t->fixed, CAI_TUNE_RESOURCE, json_object_new_int(t->max_epochs)))
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
			goto done;
		}
	}
	/* the most configurations whose bracket fits max_trials */
	n = 1;
	while (n < t->max_trials && plan(t, n + 1, false) <= t->max_trials)
		n++;
	t->n_configs = n;
	plan(t, n, true);
	t->trials = cai_calloc((size_t) (t->max_trials + t->seeds), sizeof(cai_tune_trial));
	t->scores = cai_calloc((size_t) (t->max_trials + t->seeds), sizeof(double));
	t->trial_seconds = cai_calloc((size_t) (t->max_trials + t->seeds), sizeof(double));
	t->order = cai_calloc((size_t) n, sizeof(int));
	if (t->trials == NULL || t->scores == NULL || t->trial_seconds == NULL || t->order == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the search");
		goto done;
	}
	st = make_configs(t, err);

done:
	json_object_put(s);
	if (st != CAI_OK)
	{
		cai_tune_free(t);
		return st;
	}
	*out = t;
	return CAI_OK;
}

void
cai_tune_free(cai_tune *t)
{
	if (t == NULL)
		return;
	json_object_put(t->fixed);
	for (int i = 0; t->dims != NULL && i < t->n_dims; i++)
		json_object_put(t->dims[i].choices);
	cai_free(t->dims);
	for (int c = 0; t->configs != NULL && c < t->n_configs; c++)
		json_object_put(t->configs[c]);
	cai_free(t->configs);
	for (int i = 0; t->trials != NULL && i < t->n_trials; i++)
		cai_free(t->trials[i].options_json);
	cai_free(t->trials);
	cai_free(t->scores);
	cai_free(t->trial_seconds);
	cai_free(t->order);
	cai_free(t);
}

const cai_arch *
cai_tune_arch(const cai_tune *t)
{
	return t->arch;
}

int
cai_tune_max_trials(const cai_tune *t)
{
	return t->max_trials;
}

double
cai_tune_max_seconds(const cai_tune *t)
{
	return t->max_seconds;
}

int
cai_tune_ensemble(const cai_tune *t)
{
	return t->ensemble;
}

int
cai_tune_seeds(const cai_tune *t)
{
	return t->seeds;
}

int
cai_tune_planned(const cai_tune *t)
{
	int			total = t->seeds;

	for (int r = 0; r < t->n_rungs; r++)
		total += t->rung_n[r];
	return total;
}

static char *
json_copy(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	return s != NULL ? cai_strndup(s, strlen(s)) : NULL;
}

char *
cai_tune_fixed_json(const cai_tune *t)
{
	return json_copy(t->fixed);
}

/* x as JSON with the digits it was written with (0.6, not 0.59999999999999998) */
static json_object *
json_short_number(double x)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%.15g", x);
	return json_object_new_double_s(x, buf);
}

char *
cai_tune_search_json(const cai_tune *t)
{
	json_object *o = json_object_new_object();
	json_object *space = json_object_new_object();
	json_object *rungs = json_object_new_array();
	char	   *s = NULL;
	bool		ok = o != NULL && space != NULL && rungs != NULL;

	for (int i = 0; ok && i < t->n_dims; i++)
	{
		const tune_dim *dim = &t->dims[i];
		json_object *v;

		if (dim->choices != NULL)
			v = json_object_get(dim->choices);
		else
		{
			v = json_object_new_object();
			ok = v != NULL && cai_json_put(v, "min", json_short_number(dim->min)) &&
				cai_json_put(v, "max", json_short_number(dim->max)) &&
				cai_json_put(v, "scale", json_object_new_string(dim->scale == CAI_TUNE_LOG ? "log" : "linear"));
		}
		ok = ok && cai_json_put(space, t->defs[dim->def].name, v);
	}
	for (int r = 0; ok && r < t->n_rungs; r++)
	{
		json_object *g = json_object_new_object();

		ok = g != NULL && cai_json_put(g, "configurations", json_object_new_int(t->rung_n[r])) &&
			cai_json_put(g, "epochs", json_object_new_int(t->rung_epochs[r])) &&
			json_object_array_add(rungs, g) == 0;
	}
	ok = ok && cai_json_put(o, "architecture", json_object_new_string(t->arch->name)) &&
		cai_json_put(o, "seed", json_object_new_int64(t->seed)) &&
		cai_json_put(o, "max_trials", json_object_new_int(t->max_trials)) &&
		cai_json_put(o, "max_seconds", json_short_number(t->max_seconds)) &&
		cai_json_put(o, "eta", json_object_new_int(t->eta)) &&
		cai_json_put(o, "ensemble", json_object_new_int(t->ensemble)) &&
		cai_json_put(o, "seeds", json_object_new_int(t->seeds)) &&
		cai_json_put(o, "configurations", json_object_new_int(t->n_configs)) &&
		cai_json_put(o, "planned_trials", json_object_new_int(cai_tune_planned(t))) &&
		cai_json_put(o, "rungs", json_object_get(rungs)) &&
		cai_json_put(o, "space", json_object_get(space)) &&
		cai_json_put(o, "fixed", json_object_get(t->fixed));
	if (ok)
		s = json_copy(o);
	json_object_put(rungs);
	json_object_put(space);
	json_object_put(o);
	return s;
}

/* ---------------------------------------------------------------------- */
/* Schedule                                                               */
/* ---------------------------------------------------------------------- */

static void fit_time(cai_tune *t, double seconds_left);

/* Begin rung r: its configurations, the best of the rung before first. */
static bool
start_rung(cai_tune *t, int r)
{
	t->order_n = 0;
	t->order_pos = 0;
	if (r == 0)
	{
		for (int c = 0; c < t->rung_n[0]; c++)
			t->order[t->order_n++] = c;
	}
	else
	{
		/* the rung before's successful trials, by score, ties to the earlier trial */
		bool	   *taken = cai_calloc((size_t) t->n_trials + 1, sizeof(bool));

		if (taken == NULL)
			return false;
		while (t->order_n < t->rung_n[r])
		{
			int			best = -1;

			for (int i = 0; i < t->n_trials; i++)
				if (t->trials[i].rung == r - 1 && !taken[i] && !isnan(t->scores[i]) &&
					(best < 0 || t->scores[i] > t->scores[best]))
					best = i;
			if (best < 0)
				break;
			taken[best] = true;
			t->order[t->order_n++] = t->trials[best].config;
		}
		cai_free(taken);
	}
	t->rung = r;
	return t->order_n > 0;
}

/* Add trial (options o, consumed) to the record; false when out of memory. */
static bool
add_trial(cai_tune *t, json_object *o, int config, int rung, int epochs, cai_tune_trial *trial)
{
	cai_tune_trial *tr = &t->trials[t->n_trials];

	tr->options_json = json_copy(o);
	json_object_put(o);
	if (tr->options_json == NULL)
		return false;
	tr->trial = t->n_trials;
	tr->config = config;
	tr->rung = rung;
	tr->epochs = epochs;
	tr->reseed = rung >= t->n_rungs;
	t->scores[t->n_trials] = NAN;
	t->trial_seconds[t->n_trials] = NAN;
	t->n_trials++;
	*trial = *tr;
	return true;
}

/*
 * After the schedule: the best trial's options again with the seed
 * search seed + k (k = 1..seeds) and the validation split of the search's
 * seed, while the time left pays for another training as long as the best
 * trial took.
 */
static bool
next_seed_trial(cai_tune *t, double seconds_left, cai_tune_trial *trial, cai_status *st)
{
	int			b = cai_tune_best(t);	/* a seed trial of it gives the same options */
	int			k = t->n_trials - t->n_schedule + 1;
	json_object *o;
	json_object *vs = NULL;

	if (b < 0 || k > t->seeds)
		return false;
	if (seconds_left > 0 && !(t->trial_seconds[b] <= seconds_left))
		return false;
	o = cai_json_parse_object(t->trials[b].options_json);
	if (o == NULL)
	{
		*st = CAI_ERR_NOMEM;
		return false;
	}
	/* a validation_seed the user fixed stays; else the split of the search's seed */
	if (!json_object_object_get_ex(t->fixed, "validation_seed", &vs) &&
		!cai_json_put(o, "validation_seed", json_object_new_int64(t->seed)))
		*st = CAI_ERR_NOMEM;
	if (!cai_json_put(o, "seed", json_object_new_int64((t->seed + k) % ((int64_t) 2147483647 + 1))))
		*st = CAI_ERR_NOMEM;
	json_object_object_del(o, "max_seconds");
	if (seconds_left > 0 && !cai_json_put(o, "max_seconds", json_object_new_double(seconds_left)))
		*st = CAI_ERR_NOMEM;
	if (*st != CAI_OK)
	{
		json_object_put(o);
		return false;
	}
	if (!add_trial(t, o, t->trials[b].config, t->n_rungs, t->trials[b].epochs, trial))
	{
		*st = CAI_ERR_NOMEM;
		return false;
	}
	return true;
}

bool
cai_tune_next(cai_tune *t, double seconds_left, cai_tune_trial *trial, cai_status *st)
{
	json_object *o;
	int			config;

	*st = CAI_OK;
	if (t->n_trials >= t->max_trials)
		t->schedule_done = true;
	if (!t->schedule_done)
	{
		fit_time(t, seconds_left);
		while (t->rung < 0 || t->order_pos >= t->order_n)
		{
			if (t->rung + 1 >= t->n_rungs || !start_rung(t, t->rung + 1))
			{
				t->schedule_done = true;
				break;
			}
		}
	}
	if (t->schedule_done)
		return next_seed_trial(t, seconds_left, trial, st);
	config = t->order[t->order_pos++];
	o = json_object_new_object();
	if (o == NULL)
	{
		*st = CAI_ERR_NOMEM;
		return false;
	}
	json_object_object_foreach(t->fixed, fk, fv)
	{
		if (!cai_json_put(o, fk, json_object_get(fv)))
			*st = CAI_ERR_NOMEM;
	}
	json_object_object_foreach(t->configs[config], ck, cv)
	{
		if (!cai_json_put(o, ck, json_object_get(cv)))
			*st = CAI_ERR_NOMEM;
	}
	if (t->halving && !cai_json_put(o, CAI_TUNE_RESOURCE, json_object_new_int(t->rung_epochs[t->rung])))
		*st = CAI_ERR_NOMEM;
	if (find_def(t, "seed") >= 0 && !cai_json_put(o, "seed", json_object_new_int64(t->seed)))
		*st = CAI_ERR_NOMEM;
	if (seconds_left > 0 && find_def(t, "max_seconds") >= 0 &&
		!cai_json_put(o, "max_seconds", json_object_new_double(seconds_left)))
		*st = CAI_ERR_NOMEM;
	if (*st != CAI_OK)
	{
		json_object_put(o);
		return false;
	}
	if (!add_trial(t, o, config, t->rung, t->halving ? t->rung_epochs[t->rung] : 0, trial))
	{
		*st = CAI_ERR_NOMEM;
		return false;
	}
	t->n_schedule = t->n_trials;
	return true;
}

void
cai_tune_report(cai_tune *t, int trial, double score, double seconds)
{
	if (trial < 0 || trial >= t->n_trials)
		return;
	t->scores[trial] = isfinite(score) ? score : NAN;
	t->trial_seconds[trial] = isfinite(seconds) ? seconds : NAN;
	if (isfinite(seconds) && seconds > 0 && t->trials[trial].epochs > 0)
	{
		t->seconds += seconds;
		t->epochs += t->trials[trial].epochs;
	}
}

/*
 * With a time budget, while the first rung runs: the largest bracket that
 * the time left can still pay for at the epoch cost measured so far (only
 * ever smaller; the configurations already started stay in it).
 */
static void
fit_time(cai_tune *t, double seconds_left)
{
	double		per_epoch;

	if (!t->halving || seconds_left <= 0 || t->epochs <= 0 || t->rung != 0)
		return;
	per_epoch = t->seconds / t->epochs;
	/* n > 1 keeps the first rung's epochs (a one-configuration bracket trains the most at once) */
	for (int n = t->rung_n[0]; n > t->order_pos && n > 1; n--)
	{
		double		cost;

		plan(t, n, true);
		cost = (double) (n - t->order_pos) * t->rung_epochs[0];
		for (int r = 1; r < t->n_rungs; r++)
			cost += (double) t->rung_n[r] * t->rung_epochs[r];
		cost += (double) t->seeds * t->rung_epochs[t->n_rungs - 1];	/* the seed trials */
		if (cost * per_epoch <= seconds_left)
			break;
	}
	t->order_n = t->rung_n[0];
}

bool
cai_tune_ranks_before(double score, int rung, double other_score, int other_rung)
{
	return score > other_score || (score == other_score && rung > other_rung);
}

int
cai_tune_best(const cai_tune *t)
{
	int			best = -1;

	for (int i = 0; i < t->n_trials; i++)
		if (!isnan(t->scores[i]) &&
			(best < 0 || cai_tune_ranks_before(t->scores[i], t->trials[i].rung, t->scores[best], t->trials[best].rung)))
			best = i;
	return best;
}
