/*
 * test_tune.c: the tuner's search space (from every registered
 * architecture's option table and the user's search), its validation
 * messages, determinism for a seed, and the successive-halving schedule.
 */
#include "cai/tune.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static cai_tune *
parse(int line, const char *task, const char *search, cai_status want, const char *msg_part)
{
	cai_tune   *t = NULL;
	cai_error	err = {0};
	cai_status	st = cai_tune_parse(cai_task_find(task), search, &t, &err);

	CHECK(st == want, "line %d: %s: status %d (%s), want %d", line, search ? search : "NULL", st, err.msg, want);
	if (st != CAI_OK)
	{
		CHECK(t == NULL, "line %d: no tuner on error", line);
		if (msg_part != NULL)
			CHECK(strstr(err.msg, msg_part) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, err.msg, msg_part);
	}
	return t;
}

/* A number option of a trial's options. */
static double
opt_num(const char *options_json, const char *key)
{
	json_object *o = json_tokener_parse(options_json);
	json_object *v;
	double		x = NAN;

	if (o != NULL && json_object_object_get_ex(o, key, &v))
		x = json_object_get_double(v);
	json_object_put(o);
	return x;
}

/* Every trial of t, each given score(config, epochs); returns the trial count. */
static int
run_all(cai_tune *t, char **log, double (*score) (int config, int epochs))
{
	cai_tune_trial tr;
	cai_status	st;
	int			n = 0;
	size_t		len = 0;

	*log = calloc(1, 1);
	while (cai_tune_next(t, 0, &tr, &st))
	{
		size_t		add = strlen(tr.options_json) + 64;

		*log = realloc(*log, len + add);
		len += (size_t) snprintf(*log + len, add, "%d/%d/%d/%d %s\n", tr.trial, tr.config, tr.rung, tr.epochs,
								 tr.options_json);
		cai_tune_report(t, tr.trial, score(tr.config, tr.epochs), 0);
		n++;
	}
	CHECK(st == CAI_OK, "schedule ended with status %d", st);
	return n;
}

/* Configuration 7 is the best, then 3; longer training scores higher. */
static double
score_fn(int config, int epochs)
{
	return (config == 7 ? 0.9 : config == 3 ? 0.8 : 0.5 + config * 0.001) + epochs * 0.0001;
}

static double
failing_fn(int config, int epochs)
{
	(void) epochs;
	return config % 2 == 0 ? NAN : 0.5;
}

static void
test_default_spaces(void)
{
	/* every architecture of every task with an "epochs" range gets a space from its table alone */
	for (int i = 0; cai_arch_at(i) != NULL; i++)
	{
		const cai_arch *a = cai_arch_at(i);
		char		search[128];
		cai_tune   *t;
		char	   *js;
		int			searched = 0;
		bool		has_arch_option = false;

		if (a->train == NULL)
		{
			/* an imported encoder, an ensemble built by a search: nothing to tune */
			snprintf(search, sizeof(search), "{\"architecture\": \"%s\"}", a->name);
			t = parse(__LINE__, a->task->name, a->task->kind == CAI_KIND_ENCODER ? NULL : search, CAI_ERR_INVALID,
					  a->task->kind == CAI_KIND_ENCODER ? "imported" : "ensemble");
			continue;
		}
		for (int k = 0; k < *a->n_options; k++)
			searched += a->options[k].tune.scale != CAI_TUNE_NONE;
		snprintf(search, sizeof(search), "{\"architecture\": \"%s\"}", a->name);
		for (int k = 0; k < *a->n_options; k++)
			if (strcmp(a->options[k].name, "architecture") == 0)
				has_arch_option = true;
		t = parse(__LINE__, a->task->name, has_arch_option ? search : NULL, CAI_OK, NULL);
		if (t == NULL)
			continue;
		CHECK(cai_tune_arch(t) == a, "%s: architecture", a->name);
		CHECK(cai_tune_planned(t) >= 1 && cai_tune_planned(t) <= CAI_TUNE_MAX_TRIALS_DEFAULT,
			  "%s: planned %d", a->name, cai_tune_planned(t));
		js = cai_tune_search_json(t);
		CHECK(js != NULL, "%s: search json", a->name);
		for (int k = 0; js != NULL && k < *a->n_options; k++)
			if (a->options[k].tune.scale != CAI_TUNE_NONE && strcmp(a->options[k].name, "epochs") != 0)
			{
				char		key[64];

				snprintf(key, sizeof(key), "\"%s\":", a->options[k].name);
				CHECK(strstr(js, key) != NULL, "%s: %s searched: %s", a->name, a->options[k].name, js);
			}
		if (searched > 0)
		{
			/* the task kinds that train models search something: tuning is possible */
			cai_tune_trial tr;
			cai_status	st;

			CHECK(cai_tune_next(t, 0, &tr, &st), "%s: a first trial", a->name);
			CHECK(tr.config == 0 && tr.rung == 0, "%s: trial 0 is configuration 0", a->name);
		}
		cai_free(js);
		cai_tune_free(t);
	}
}

static void
test_defaults_first_and_ranges(void)
{
	cai_tune   *t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\"}", CAI_OK, NULL);
	cai_tune_trial tr;
	cai_status	st;
	int			n = 0;

	if (t == NULL)
		return;
	/* fast: epochs 3, 9, 27 with eta 3; 14 configurations -> 14 + 4 + 1 = 19 trials of 20 */
	CHECK(cai_tune_planned(t) == 19, "planned %d", cai_tune_planned(t));
	CHECK(cai_tune_next(t, 0, &tr, &st), "trial 0");
	CHECK(opt_num(tr.options_json, "learning_rate") == 0.1, "config 0 keeps the default rate: %s", tr.options_json);
	CHECK(opt_num(tr.options_json, "dimensions") == 48, "config 0 keeps the default dimensions: %s", tr.options_json);
	CHECK(opt_num(tr.options_json, "epochs") == 3, "rung 0 trains 3 epochs: %s", tr.options_json);
	CHECK(opt_num(tr.options_json, "seed") == 42, "seed: %s", tr.options_json);
	CHECK(strstr(tr.options_json, "\"architecture\":\"fast\"") != NULL, "architecture: %s", tr.options_json);
	cai_tune_report(t, tr.trial, 0.5, 0);
	while (cai_tune_next(t, 12.5, &tr, &st) && tr.rung == 0)
	{
		double		lr = opt_num(tr.options_json, "learning_rate");
		double		dim = opt_num(tr.options_json, "dimensions");
		double		drop = opt_num(tr.options_json, "dropout");
		double		ng = opt_num(tr.options_json, "word_ngrams");

		CHECK(lr >= 0.05 && lr <= 1.0, "learning_rate %g in range", lr);
		CHECK(dim >= 16 && dim <= 128 && dim == floor(dim), "dimensions %g in range", dim);
		CHECK(drop >= 0 && drop <= 0.5, "dropout %g in range", drop);
		CHECK(ng >= 1 && ng <= 3 && ng == floor(ng), "word_ngrams %g in range", ng);
		CHECK(opt_num(tr.options_json, "max_seconds") == 12.5, "seconds left become max_seconds: %s", tr.options_json);
		cai_tune_report(t, tr.trial, 0.5, 0);
		n++;
	}
	CHECK(n == 13, "13 more configurations in rung 0, got %d", n);
	cai_tune_free(t);
}

static void
test_determinism_and_halving(void)
{
	const char *search = "{\"architecture\": \"fast\", \"max_trials\": 20, \"seed\": 7}";
	cai_tune   *a = parse(__LINE__, "sentiment", search, CAI_OK, NULL);
	cai_tune   *b = parse(__LINE__, "sentiment", search, CAI_OK, NULL);
	cai_tune   *c = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seed\": 8}", CAI_OK, NULL);
	char	   *la;
	char	   *lb;
	char	   *lc;
	int			na;
	int			best;

	if (a == NULL || b == NULL || c == NULL)
		return;
	na = run_all(a, &la, score_fn);
	run_all(b, &lb, score_fn);
	run_all(c, &lc, score_fn);
	CHECK(na == 19, "19 trials, got %d", na);
	CHECK(strcmp(la, lb) == 0, "the same search and seed give the same trials");
	CHECK(strcmp(la, lc) != 0, "another seed gives other trials");
	/* rung 1: configurations 7 and 3 first (best first), then the next best (13, 12); rung 2: 7 at 27 epochs */
	CHECK(strstr(la, "14/7/1/9 ") != NULL && strstr(la, "15/3/1/9 ") != NULL && strstr(la, "16/13/1/9 ") != NULL &&
		  strstr(la, "17/12/1/9 ") != NULL, "rung 1 continues the best four:\n%s", la);
	CHECK(strstr(la, "18/7/2/27 ") != NULL, "rung 2 continues the best one with 27 epochs:\n%s", la);
	best = cai_tune_best(a);
	CHECK(best == 18, "best trial %d", best);
	free(la);
	free(lb);
	free(lc);
	cai_tune_free(a);
	cai_tune_free(b);
	cai_tune_free(c);
}

static void
test_user_space(void)
{
	cai_tune   *t;
	cai_tune_trial tr;
	cai_status	st;
	char	   *js;
	char	   *log;
	int			n;

	/* choices, a fixed value, a removed option, a log range, fixed epochs: random search only */
	t = parse(__LINE__, "sentiment",
			  "{\"architecture\": \"fast\", \"dimensions\": [20, 40], \"dropout\": 0.25, \"word_ngrams\": null, "
			  "\"learning_rate\": {\"min\": 0.2, \"max\": 0.4, \"scale\": \"log\"}, \"epochs\": 4, \"max_trials\": 6}",
			  CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_planned(t) == 6, "random search: max_trials configurations, got %d", cai_tune_planned(t));
		js = cai_tune_fixed_json(t);
		CHECK(js != NULL && strstr(js, "\"dropout\":0.25") != NULL && strstr(js, "\"epochs\":4") != NULL,
			  "fixed: %s", js);
		cai_free(js);
		while (cai_tune_next(t, 0, &tr, &st))
		{
			double		d = opt_num(tr.options_json, "dimensions");
			double		lr = opt_num(tr.options_json, "learning_rate");

			CHECK(d == 20 || d == 40, "a choice: %g", d);
			CHECK(lr >= 0.2 && lr <= 0.4, "learning_rate %g", lr);
			CHECK(opt_num(tr.options_json, "epochs") == 4 && tr.rung == 0, "fixed epochs: %s", tr.options_json);
			CHECK(isnan(opt_num(tr.options_json, "word_ngrams")), "word_ngrams not searched: %s", tr.options_json);
			cai_tune_report(t, tr.trial, 0.5, 0);
		}
		cai_tune_free(t);
	}

	/* a one-trial budget trains the defaults once at the most epochs */
	t = parse(__LINE__, "ner", "{\"max_trials\": 1}", CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_next(t, 0, &tr, &st) && tr.epochs == 18 && tr.config == 0, "one trial: %d epochs", tr.epochs);
		cai_tune_report(t, tr.trial, 0.3, 0);
		CHECK(!cai_tune_next(t, 0, &tr, &st), "no second trial");
		CHECK(cai_tune_best(t) == 0, "best");
		cai_tune_free(t);
	}

	/* failed trials are never continued; a rung without successes ends the search */
	t = parse(__LINE__, "ner", "{\"max_trials\": 8, \"epochs\": {\"min\": 2, \"max\": 8}, \"eta\": 2}", CAI_OK, NULL);
	if (t != NULL)
	{
		n = run_all(t, &log, failing_fn);
		CHECK(strstr(log, "/0/1/") == NULL && strstr(log, "/2/1/") == NULL, "even (failed) configurations stop:\n%s", log);
		CHECK(n <= 8, "budget kept: %d", n);
		CHECK(cai_tune_best(t) >= 0 && cai_tune_best(t) % 2 == 1, "best is a success");
		free(log);
		cai_tune_free(t);
	}
	t = parse(__LINE__, "ner", "{\"max_trials\": 4}", CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_next(t, 0, &tr, &st), "first");
		cai_tune_report(t, tr.trial, NAN, 0);
		while (cai_tune_next(t, 0, &tr, &st))
			cai_tune_report(t, tr.trial, NAN, 0);
		CHECK(cai_tune_best(t) == -1, "no best when all failed");
		cai_tune_free(t);
	}
}

/* A time budget shrinks the bracket to what the measured epoch cost allows. */
static void
test_time_budget(void)
{
	cai_tune   *t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"max_seconds\": 100}", CAI_OK, NULL);
	cai_tune_trial tr;
	cai_status	st;
	int			n = 0;
	int			last_rung = 0;

	if (t == NULL)
		return;
	CHECK(cai_tune_planned(t) == 19, "planned before any timing: %d", cai_tune_planned(t));
	CHECK(cai_tune_next(t, 100, &tr, &st), "first trial");
	cai_tune_report(t, tr.trial, 0.5, 3.0);	/* 3 epochs in 3 s: 1 s per epoch */
	/* 60 s left: 6 configurations (5 more of 3 epochs, 2 of 9, 1 of 27 = 60 epochs) */
	CHECK(cai_tune_next(t, 60, &tr, &st), "second trial");
	CHECK(cai_tune_planned(t) == 9, "the bracket fits the time left: planned %d", cai_tune_planned(t));
	cai_tune_report(t, tr.trial, 0.6, 3.0);
	n = 2;
	while (cai_tune_next(t, 1e6, &tr, &st))
	{
		cai_tune_report(t, tr.trial, 0.5 + tr.config * 0.01, tr.epochs);
		last_rung = tr.rung;
		n++;
	}
	CHECK(n == 9 && last_rung == 2, "it never grows again, and still reaches the last rung: %d trials, rung %d", n, last_rung);
	cai_tune_free(t);

	/* without timings or without a budget nothing changes */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\"}", CAI_OK, NULL);
	if (t == NULL)
		return;
	CHECK(cai_tune_next(t, 0, &tr, &st), "first");
	cai_tune_report(t, tr.trial, 0.5, 1000.0);
	CHECK(cai_tune_next(t, 0, &tr, &st) && cai_tune_planned(t) == 19, "no budget: the bracket stays");
	cai_tune_free(t);
}

static void
test_errors(void)
{
	parse(__LINE__, "sentiment", "[1]", CAI_ERR_INVALID, "JSON object");
	parse(__LINE__, "sentiment", "{\"learnin_rate\": 0.1}", CAI_ERR_INVALID, "unknown option \"learnin_rate\"");
	parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"batch_size\": 8}", CAI_ERR_INVALID,
		  "unknown option \"batch_size\"");
	parse(__LINE__, "sentiment", "{\"architecture\": \"huge\"}", CAI_ERR_INVALID, "huge");
	parse(__LINE__, "sentiment", "{\"architecture\": [\"fast\", \"accurate\"]}", CAI_ERR_INVALID, "one architecture");
	parse(__LINE__, "sentiment", "{\"learning_rate\": {\"min\": 0.1, \"max\": 20}}", CAI_ERR_INVALID,
		  "option \"learning_rate\": the range must lie within");
	parse(__LINE__, "sentiment", "{\"learning_rate\": {\"min\": 0.1, \"max\": 0.01}}", CAI_ERR_INVALID, "min <= max");
	parse(__LINE__, "sentiment", "{\"dropout\": {\"min\": 0, \"max\": 0.5, \"scale\": \"log\"}}", CAI_ERR_INVALID,
		  "option \"dropout\": a log-scale range needs min > 0");
	parse(__LINE__, "sentiment", "{\"dropout\": {\"min\": 0, \"max\": 0.5, \"scale\": \"cubic\"}}", CAI_ERR_INVALID,
		  "\"scale\"");
	parse(__LINE__, "sentiment", "{\"dropout\": {\"min\": 0, \"step\": 0.5}}", CAI_ERR_INVALID, "unknown range key \"step\"");
	parse(__LINE__, "sentiment", "{\"dropout\": {\"min\": 0}}", CAI_ERR_INVALID, "needs numbers");
	parse(__LINE__, "sentiment", "{\"batch_size\": {\"min\": 8.5, \"max\": 64}}", CAI_ERR_INVALID, "integer range");
	parse(__LINE__, "sentiment", "{\"deploy\": {\"min\": 1, \"max\": 2}}", CAI_ERR_INVALID, "option \"deploy\" is not numeric");
	parse(__LINE__, "sentiment", "{\"dimensions\": []}", CAI_ERR_INVALID, "option \"dimensions\": the list of choices is empty");
	parse(__LINE__, "sentiment", "{\"dimensions\": [64, 1]}", CAI_ERR_INVALID, "option \"dimensions\" must be between");
	parse(__LINE__, "sentiment", "{\"dropout\": 2}", CAI_ERR_INVALID, "option \"dropout\" must be between");
	parse(__LINE__, "sentiment", "{\"deploy\": \"sometimes\"}", CAI_ERR_INVALID, "deploy");
	parse(__LINE__, "sentiment", "{\"max_trials\": 0}", CAI_ERR_INVALID, "max_trials");
	parse(__LINE__, "sentiment", "{\"max_trials\": 2.5}", CAI_ERR_INVALID, "max_trials");
	parse(__LINE__, "sentiment", "{\"max_seconds\": -1}", CAI_ERR_INVALID, "max_seconds");
	parse(__LINE__, "sentiment", "{\"seed\": \"x\"}", CAI_ERR_INVALID, "seed");
	parse(__LINE__, "sentiment", "{\"eta\": 1}", CAI_ERR_INVALID, "eta");
	parse(__LINE__, "sentiment", "{\"ensemble\": 0}", CAI_ERR_INVALID, "ensemble");
	parse(__LINE__, "sentiment", "{\"ensemble\": 9}", CAI_ERR_INVALID, "ensemble");
	parse(__LINE__, "ner", "{\"ensemble\": 3}", CAI_ERR_INVALID, "applies to classifiers");
	{
		/* the search key is recorded with the search, and read back */
		cai_tune   *t = parse(__LINE__, "sentiment", "{\"ensemble\": 3, \"architecture\": \"fast\"}", CAI_OK, NULL);
		char	   *js = t != NULL ? cai_tune_search_json(t) : NULL;

		CHECK(t != NULL && cai_tune_ensemble(t) == 3 && js != NULL && strstr(js, "\"ensemble\":3") != NULL,
			  "ensemble 3 recorded: %s", js ? js : "(none)");
		cai_free(js);
		cai_tune_free(t);
		t = parse(__LINE__, "ner", "{\"ensemble\": 1}", CAI_OK, NULL);
		CHECK(t != NULL && cai_tune_ensemble(t) == 1, "ner: ensemble 1, the best trial alone");
		cai_tune_free(t);
	}
	parse(__LINE__, "ner", "{\"tag_scheme\": [\"iob2\", \"xyz\"]}", CAI_ERR_INVALID, "tag_scheme");
	/* accepted: a choice list of strings, a one-value epochs range */
	cai_tune_free(parse(__LINE__, "ner", "{\"tag_scheme\": [\"iob2\", \"bioes\"], \"epochs\": {\"min\": 5, \"max\": 5}}",
						CAI_OK, NULL));
	cai_tune_free(parse(__LINE__, "sentiment", "", CAI_OK, NULL));
	cai_tune_free(parse(__LINE__, "sentiment", NULL, CAI_OK, NULL));
}

/*
 * "seeds": after the schedule, the best trial's options again with seed + k
 * and the split of the search's seed (the caller averages them with the
 * best); each starts only while the time left pays for a training as long as
 * the best's.
 */
static void
test_seeds(void)
{
	cai_tune   *t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 3, \"seed\": 11}", CAI_OK, NULL);
	cai_tune_trial tr;
	cai_status	st;
	int			n = 0;
	int			best_config = -1,
				best_epochs = -1;
	double		best = -1;
	char	   *best_opts = NULL;
	char	   *js;

	if (t == NULL)
		return;
	CHECK(cai_tune_seeds(t) == 3 && cai_tune_ensemble(t) == 1, "seeds 3, no ensemble selection: %d", cai_tune_ensemble(t));
	CHECK(cai_tune_planned(t) == 19 + 3, "planned: the schedule's 19 and 3 seed trials: %d", cai_tune_planned(t));
	js = cai_tune_search_json(t);
	CHECK(js != NULL && strstr(js, "\"seeds\":3") != NULL, "seeds recorded: %s", js ? js : "(none)");
	free(js);
	while (cai_tune_next(t, 0, &tr, &st))
	{
		double		sc = score_fn(tr.config, tr.epochs);

		if (n < 19)
		{
			CHECK(!tr.reseed && tr.rung < 3 && opt_num(tr.options_json, "seed") == 11 &&
				  isnan(opt_num(tr.options_json, "validation_seed")),
				  "schedule trial %d: rung %d, the search's seed, no validation_seed: %s", n, tr.rung, tr.options_json);
			if (sc > best)
			{
				best = sc;
				best_config = tr.config;
				best_epochs = tr.epochs;
				free(best_opts);
				best_opts = strdup(tr.options_json);
			}
		}
		else
		{
			json_object *a = json_tokener_parse(best_opts);
			json_object *b = json_tokener_parse(tr.options_json);

			CHECK(tr.reseed && tr.config == best_config && tr.rung == 3 && tr.epochs == best_epochs,
				  "seed trial %d: config %d rung %d epochs %d (best: config %d, %d epochs)",
				  n, tr.config, tr.rung, tr.epochs, best_config, best_epochs);
			CHECK(opt_num(tr.options_json, "seed") == 11 + (n - 18) &&
				  opt_num(tr.options_json, "validation_seed") == 11,
				  "seed trial %d: seed %g (want %d), validation_seed %g (want 11)", n,
				  opt_num(tr.options_json, "seed"), 11 + (n - 18), opt_num(tr.options_json, "validation_seed"));
			/* the rest is the best trial's options */
			json_object_object_del(b, "seed");
			json_object_object_del(b, "validation_seed");
			json_object_object_del(a, "seed");
			CHECK(a != NULL && b != NULL && json_object_equal(a, b), "seed trial %d: the best trial's options otherwise: %s vs %s",
				  n, tr.options_json, best_opts);
			json_object_put(a);
			json_object_put(b);
			sc = 0.95;			/* a seed trial may become the best: its seeds are still the first best's */
		}
		cai_tune_report(t, tr.trial, sc, 1.0);
		n++;
	}
	CHECK(st == CAI_OK && n == 22, "19 schedule trials and 3 seed trials: %d (status %d)", n, st);
	CHECK(best_config == 7, "configuration 7 is the best: %d", best_config);
	free(best_opts);
	cai_tune_free(t);

	/* max_trials bounds the schedule, not the seed trials */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 2, \"max_trials\": 5}", CAI_OK, NULL);
	if (t != NULL)
	{
		char	   *log = NULL;

		CHECK(run_all(t, &log, score_fn) == cai_tune_planned(t) && cai_tune_planned(t) == 5 + 2,
			  "max_trials 5, seeds 2: %d planned\n%s", cai_tune_planned(t), log);
		free(log);
		cai_tune_free(t);
	}

	/* on a tie the seed trials train the higher rung's configuration (the one the caller stores) */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 1, \"max_trials\": 5}", CAI_OK, NULL);
	if (t != NULL)
	{
		cai_tune_trial last = {0};

		while (cai_tune_next(t, 0, &tr, &st))
		{
			if (opt_num(tr.options_json, "seed") != 42)
				break;
			last = tr;
			cai_tune_report(t, tr.trial, 0.5, 1.0);
		}
		CHECK(last.rung > 0 && opt_num(tr.options_json, "seed") == 43 && tr.config == last.config && tr.epochs == last.epochs,
			  "all scores equal: the seed trial trains the last rung's configuration %d (%d epochs), got %d (%d)",
			  last.config, last.epochs, tr.config, tr.epochs);
		cai_tune_free(t);
	}

	/* a seed trial starts only while the time left pays for one as long as the best trial */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 2, \"max_trials\": 1, "
			  "\"epochs\": {\"min\": 3, \"max\": 3}}", CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_next(t, 100, &tr, &st), "the one schedule trial");
		cai_tune_report(t, tr.trial, 0.7, 30.0);
		CHECK(cai_tune_next(t, 70, &tr, &st) && tr.rung == 1 && opt_num(tr.options_json, "max_seconds") == 70,
			  "70 s left, 30 s a training: a seed trial, max_seconds 70: %s", tr.options_json);
		cai_tune_report(t, tr.trial, 0.69, 30.0);
		CHECK(!cai_tune_next(t, 29, &tr, &st) && st == CAI_OK, "29 s left: no second seed trial");
		cai_tune_free(t);
	}

	/* a validation_seed the user fixed stays */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 1, \"max_trials\": 1, \"validation_seed\": 5}",
			  CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_next(t, 0, &tr, &st), "schedule trial");
		cai_tune_report(t, tr.trial, 0.7, 1.0);
		CHECK(cai_tune_next(t, 0, &tr, &st) && opt_num(tr.options_json, "validation_seed") == 5 &&
			  opt_num(tr.options_json, "seed") == 43, "fixed validation_seed 5 kept, seed 43: %s", tr.options_json);
		cai_tune_free(t);
	}

	/* no seed trial when no trial succeeded */
	t = parse(__LINE__, "sentiment", "{\"architecture\": \"fast\", \"seeds\": 2, \"max_trials\": 1}", CAI_OK, NULL);
	if (t != NULL)
	{
		CHECK(cai_tune_next(t, 0, &tr, &st), "schedule trial");
		cai_tune_report(t, tr.trial, NAN, 1.0);
		CHECK(!cai_tune_next(t, 0, &tr, &st) && st == CAI_OK, "a failed search has no seed trials");
		cai_tune_free(t);
	}

	/* the mean of seeds or a selection among the best trials: one or the other */
	t = parse(__LINE__, "sentiment", "{\"seeds\": 2, \"ensemble\": 1}", CAI_OK, NULL);
	CHECK(t != NULL && cai_tune_ensemble(t) == 1 && cai_tune_seeds(t) == 2, "ensemble 1 with seeds 2");
	cai_tune_free(t);
	parse(__LINE__, "sentiment", "{\"seeds\": 2, \"ensemble\": 3}", CAI_ERR_INVALID, "are alternatives");
	parse(__LINE__, "sentiment", "{\"seeds\": 8}", CAI_ERR_INVALID, "seeds");
	parse(__LINE__, "sentiment", "{\"seeds\": -1}", CAI_ERR_INVALID, "seeds");
	parse(__LINE__, "sentiment", "{\"seeds\": \"2\"}", CAI_ERR_INVALID, "seeds");
	parse(__LINE__, "ner", "{\"seeds\": 2}", CAI_ERR_INVALID, "applies to classifiers");
	t = parse(__LINE__, "sentiment", "{\"seeds\": 0}", CAI_OK, NULL);
	CHECK(t != NULL && cai_tune_ensemble(t) == 1 && cai_tune_planned(t) == 19, "seeds 0: as without");
	cai_tune_free(t);
}

int
main(void)
{
	test_default_spaces();
	test_defaults_first_and_ranges();
	test_determinism_and_halving();
	test_user_space();
	test_time_budget();
	test_errors();
	test_seeds();
	return check_summary("test_tune");
}
