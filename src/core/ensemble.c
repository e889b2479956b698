/*
 * ensemble.c: the "ensemble" architecture of text classification (see
 * ensemble.h): selection of members on validation predictions, the model
 * file, and the loaded ensemble, which runs its members through the registry
 * (cai_model_*), so any classifier, present or future, can be a member.
 */
#include "cai/ensemble.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/metrics.h"
#include "cai/textclf.h"
#include "modelutil.h"

typedef struct cai_ensemble
{
	int			k;
	cai_model  *members[CAI_ENSEMBLE_MAX_MEMBERS];
	float		weight[CAI_ENSEMBLE_MAX_MEMBERS];	/* summing to 1 */
	int			n_labels;
} cai_ensemble;

/* ------------------------------------------------------------------------
 * Selection
 * ------------------------------------------------------------------------ */

/* Accuracy and mean log-probability of the gold class of sum / n (rows, labels). */
static void
score_mean(const double *sum, double n, const int32_t *gold, size_t n_rows, int n_labels, double *acc, double *ll)
{
	size_t		right = 0;
	double		l = 0.0;

	for (size_t r = 0; r < n_rows; r++)
	{
		const double *p = sum + r * (size_t) n_labels;
		int			best = 0;

		for (int c = 1; c < n_labels; c++)
			if (p[c] > p[best])
				best = c;
		right += best == gold[r];
		l += log(fmax(p[gold[r]] / n, 1e-12));
	}
	*acc = n_rows > 0 ? (double) right / (double) n_rows : 0.0;
	*ll = n_rows > 0 ? l / (double) n_rows : 0.0;
}

/* Mean log-probability of the gold class of one model's p (rows, labels). */
static double
mean_log_prob(const float *p, const int32_t *gold, size_t n_rows, int n_labels)
{
	double		l = 0.0;

	for (size_t r = 0; r < n_rows; r++)
		l += log(fmax((double) p[r * (size_t) n_labels + gold[r]], 1e-12));
	return n_rows > 0 ? l / (double) n_rows : 0.0;
}

/* See ensemble.h. */
void
cai_ensemble_select(const float *const *probs, int n_models, const int32_t *gold, size_t n_rows, int n_labels,
					int max_picks, int *counts, double *accuracy, double *log_prob)
{
	size_t		cells = n_rows * (size_t) n_labels;
	double	   *sum = cells > 0 ? cai_calloc(cells, sizeof(double)) : NULL;
	double	   *cand = cells > 0 ? cai_calloc(cells, sizeof(double)) : NULL;
	int			picks[CAI_ENSEMBLE_MAX_MEMBERS];
	int			best_len = 0;
	double		best_acc = -1.0,
				best_ll = -INFINITY;

	memset(counts, 0, sizeof(int) * (size_t) n_models);
	*accuracy = NAN;
	*log_prob = NAN;
	if (n_models <= 0)
		goto done;
	if (max_picks > CAI_ENSEMBLE_MAX_MEMBERS)
		max_picks = CAI_ENSEMBLE_MAX_MEMBERS;
	if (max_picks < 1)
		max_picks = 1;
	if (sum == NULL || cand == NULL)
	{
		/* no rows (or no memory): the first model, the caller's best */
		counts[0] = 1;
		goto done;
	}
	for (int step = 0; step < max_picks; step++)
	{
		int			pick = -1;
		double		pick_acc = -1.0,
					pick_ll = -INFINITY;

		for (int m = 0; m < n_models; m++)
		{
			double		acc,
						ll;

			for (size_t i = 0; i < cells; i++)
				cand[i] = sum[i] + probs[m][i];
			score_mean(cand, step + 1, gold, n_rows, n_labels, &acc, &ll);
			if (ll > pick_ll || (ll == pick_ll && acc > pick_acc))
			{
				pick = m;
				pick_acc = acc;
				pick_ll = ll;
			}
		}
		for (size_t i = 0; i < cells; i++)
			sum[i] += probs[pick][i];
		picks[step] = pick;
		/* a longer prefix replaces the best only when strictly better */
		if (pick_ll > best_ll || (pick_ll == best_ll && pick_acc > best_acc))
		{
			best_len = step + 1;
			best_acc = pick_acc;
			best_ll = pick_ll;
		}
	}
	for (int s = 0; s < best_len; s++)
		counts[picks[s]]++;
	*accuracy = best_acc;
	*log_prob = best_ll;
done:
	cai_free(sum);
	cai_free(cand);
}

/* See ensemble.h. */
cai_status
cai_ensemble_validation(const uint8_t *model, size_t len, const cai_train_set *set, const bool *is_valid,
						float **probs, int32_t **gold, size_t *n_valid, cai_error *err)
{
	const cai_textclf_data *d = set->valid_texts != NULL ? set->valid_texts : set->texts;
	cai_model  *m = NULL;
	char	   *buf = NULL;
	size_t		cap = 0;
	size_t		n = 0;
	int			n_labels;
	cai_status	st;

	*probs = NULL;
	*gold = NULL;
	*n_valid = 0;
	if (d == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "an ensemble is chosen on the validation rows of texts");
	if ((st = cai_model_load(model, len, false, false, &m, err)) != CAI_OK)
		return st;
	if (cai_model_kind(m) != CAI_KIND_CLASSIFY)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "an ensemble's members are classifiers, not %s models",
						   cai_model_task(m));
		cai_model_free(m);
		return st;
	}
	n_labels = cai_model_n_labels(m);
	for (size_t i = 0; i < d->n; i++)
		n += set->valid_texts != NULL || (is_valid != NULL && is_valid[i]);
	*probs = cai_calloc(n > 0 ? n : 1, sizeof(float) * (size_t) n_labels);
	*gold = cai_calloc(n > 0 ? n : 1, sizeof(int32_t));
	if (*probs == NULL || *gold == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the validation predictions");
		goto fail;
	}
	n = 0;
	for (size_t i = 0; i < d->n; i++)
	{
		const char *text;
		size_t		tlen;

		if (set->valid_texts == NULL && (is_valid == NULL || !is_valid[i]))
			continue;
		if (d->texts != NULL)
		{
			text = d->texts[i];
			tlen = d->lens[i];
		}
		else
		{
			tlen = cai_textclf_tokens_text(d->tokens, i, &buf, &cap);
			if (tlen == (size_t) -1)
			{
				st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the validation texts");
				goto fail;
			}
			text = buf;
		}
		if ((st = cai_model_classify(m, text, tlen, *probs + n * (size_t) n_labels, err)) != CAI_OK)
			goto fail;
		(*gold)[n++] = d->labels[i];
	}
	*n_valid = n;
	cai_free(buf);
	cai_model_free(m);
	return CAI_OK;

fail:
	cai_free(buf);
	cai_model_free(m);
	cai_free(*probs);
	cai_free(*gold);
	*probs = NULL;
	*gold = NULL;
	return st;
}

/* Every model once: counts all 1, and the accuracy and mean log-probability of their mean. */
static void
average_all(const float *const *probs, int n_models, const int32_t *gold, size_t n_rows, int n_labels,
			int *counts, double *accuracy, double *log_prob)
{
	size_t		cells = n_rows * (size_t) n_labels;
	double	   *sum = cells > 0 ? cai_calloc(cells, sizeof(double)) : NULL;

	*accuracy = NAN;
	*log_prob = NAN;
	for (int m = 0; m < n_models; m++)
	{
		counts[m] = 1;
		for (size_t i = 0; sum != NULL && i < cells; i++)
			sum[i] += probs[m][i];
	}
	if (sum != NULL)
		score_mean(sum, n_models, gold, n_rows, n_labels, accuracy, log_prob);
	cai_free(sum);
}

/* See ensemble.h. */
cai_status
cai_ensemble_choose(const uint8_t *const *models, const size_t *lens, int n_models, const cai_train_set *set,
					const bool *is_valid, int max_picks, int *counts, char **report_json, cai_error *err)
{
	float	   *probs[CAI_ENSEMBLE_MAX_MEMBERS] = {0};
	int32_t    *gold = NULL;
	int32_t    *pred = NULL;
	size_t		n = 0;
	int			n_labels = set->n_labels;
	double		acc,
				ll;
	cai_status	st = CAI_OK;

	*report_json = NULL;
	if (n_models < 1 || n_models > CAI_ENSEMBLE_MAX_MEMBERS)
		return cai_error_set(err, CAI_ERR_INVALID, "an ensemble is chosen among 1 to %d models",
							 CAI_ENSEMBLE_MAX_MEMBERS);
	for (int m = 0; m < n_models && st == CAI_OK; m++)
	{
		int32_t    *g = NULL;

		st = cai_ensemble_validation(models[m], lens[m], set, is_valid, &probs[m], &g, &n, err);
		if (gold == NULL)
			gold = g;
		else
			cai_free(g);
	}
	if (st != CAI_OK)
		goto done;
	if (max_picks > 0)
		cai_ensemble_select((const float *const *) probs, n_models, gold, n, n_labels, max_picks, counts, &acc, &ll);
	else
		average_all((const float *const *) probs, n_models, gold, n, n_labels, counts, &acc, &ll);
	if (n == 0)
		goto done;
	pred = cai_calloc(n, sizeof(int32_t));
	if (pred == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's predictions");
		goto done;
	}
	for (size_t r = 0; r < n; r++)
	{
		double		best = -1.0;

		for (int c = 0; c < n_labels; c++)
		{
			double		p = 0.0;

			for (int m = 0; m < n_models; m++)
				p += counts[m] * (double) probs[m][r * (size_t) n_labels + c];
			if (p > best)
			{
				best = p;
				pred[r] = c;
			}
		}
	}
	st = cai_classification_report(gold, pred, n, set->label_names, n_labels, report_json, err);
	if (st == CAI_OK)
	{
		/* what the selection compared: the ensemble's mean log-probability, and the first model's alone */
		json_object *r = cai_json_parse_object(*report_json);
		const char *js = NULL;

		json_object *a;

		/* "score", as every trainer's metrics have it: the accuracy */
		if (r != NULL && json_object_object_get_ex(r, "accuracy", &a) &&
			cai_json_put(r, "score", json_object_new_double(json_object_get_double(a))) &&
			cai_json_put(r, "log_prob", json_object_new_double(ll)) &&
			cai_json_put(r, "first_log_prob", json_object_new_double(mean_log_prob(probs[0], gold, n, n_labels))))
			js = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
		cai_free(*report_json);
		*report_json = js != NULL ? cai_malloc(strlen(js) + 1) : NULL;
		if (*report_json != NULL)
			memcpy(*report_json, js, strlen(js) + 1);
		json_object_put(r);
		if (*report_json == NULL)
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's report");
	}

done:
	for (int m = 0; m < n_models; m++)
		cai_free(probs[m]);
	cai_free(gold);
	cai_free(pred);
	return st;
}

/* ------------------------------------------------------------------------
 * The model file
 * ------------------------------------------------------------------------ */

/* Do a and b have the same labels in the same order? */
static bool
same_labels(const cai_model *a, const cai_model *b)
{
	if (cai_model_n_labels(a) != cai_model_n_labels(b))
		return false;
	for (int i = 0; i < cai_model_n_labels(a); i++)
		if (strcmp(cai_model_label(a, i), cai_model_label(b, i)) != 0)
			return false;
	return true;
}

/* See ensemble.h. */
cai_status
cai_ensemble_write(const uint8_t *const *models, const size_t *lens, const int *counts, int n_models,
				   const char *metrics_json, uint8_t **out, size_t *out_len, cai_error *err)
{
	int			order[CAI_ENSEMBLE_MAX_MEMBERS];
	cai_model  *lead_model = NULL;	/* loaded while the file is made; the others one at a time */
	const char *arch_of[CAI_ENSEMBLE_MAX_MEMBERS];	/* registry names: outlive the loaded models */
	cai_tensor	ts[CAI_ENSEMBLE_MAX_MEMBERS + 1];
	float		weights[CAI_ENSEMBLE_MAX_MEMBERS];
	int			k = 0;
	int			lead = -1;
	json_object *meta = NULL;
	json_object *info = NULL;
	json_object *archs = NULL;
	json_object *ws = NULL;
	cai_status	st = CAI_OK;

	*out = NULL;
	*out_len = 0;
	for (int i = 0; i < n_models; i++)
		if (counts[i] > 0 && (lead < 0 || counts[i] > counts[lead]))
			lead = i;
	if (lead < 0)
		return cai_error_set(err, CAI_ERR_INVALID, "an ensemble needs at least one member");
	order[k++] = lead;
	for (int i = 0; i < n_models; i++)
		if (counts[i] > 0 && i != lead)
		{
			if (k == CAI_ENSEMBLE_MAX_MEMBERS)
				return cai_error_set(err, CAI_ERR_INVALID, "an ensemble has at most %d members",
									 CAI_ENSEMBLE_MAX_MEMBERS);
			order[k++] = i;
		}

	memset(ts, 0, sizeof(ts));
	for (int j = 0; j < k; j++)
	{
		int			i = order[j];
		cai_model  *m = NULL;

		if ((st = cai_model_load(models[i], lens[i], false, false, &m, err)) != CAI_OK)
			goto done;
		if (j == 0)
			lead_model = m;
		arch_of[j] = cai_model_architecture(m);
		if (cai_model_kind(m) != CAI_KIND_CLASSIFY || strcmp(arch_of[j], "ensemble") == 0)
			st = cai_error_set(err, CAI_ERR_INVALID, "an ensemble's members are classifiers (not ensembles): "
							   "member %d is a %s %s model", j, cai_model_task(m), arch_of[j]);
		else if (!same_labels(lead_model, m))
			st = cai_error_set(err, CAI_ERR_INVALID, "an ensemble's members have the same labels: member %d's differ", j);
		if (j > 0)
			cai_model_free(m);
		if (st != CAI_OK)
			goto done;
		snprintf(ts[j].name, CAI_NAME_MAX, "ensemble.member.%d", j);
		ts[j].dtype = CAI_U8;
		ts[j].ndim = 1;
		ts[j].shape[0] = (int64_t) lens[i];
		ts[j].data = (void *) models[i];
		ts[j].nbytes = lens[i];
		weights[j] = (float) counts[i];
	}
	snprintf(ts[k].name, CAI_NAME_MAX, "ensemble.weights");
	ts[k].dtype = CAI_F32;
	ts[k].ndim = 1;
	ts[k].shape[0] = k;
	ts[k].data = weights;
	ts[k].nbytes = sizeof(float) * (size_t) k;

	/* the lead's metadata, as an ensemble's */
	meta = cai_json_parse_object(cai_model_meta_json(lead_model));
	info = json_object_new_object();
	archs = json_object_new_array();
	ws = json_object_new_array();
	if (meta == NULL || info == NULL || archs == NULL || ws == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's metadata");
		goto done;
	}
	json_object_object_del(meta, arch_of[0]);	/* the lead's own parameters */
	for (int j = 0; j < k; j++)
		if (json_object_array_add(archs, json_object_new_string(arch_of[j])) != 0 ||
			json_object_array_add(ws, json_object_new_int(counts[order[j]])) != 0)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's metadata");
			goto done;
		}
	if (!cai_json_put(info, "members", json_object_new_int(k)) ||
		!cai_json_put(info, "architectures", json_object_get(archs)) ||
		!cai_json_put(info, "weights", json_object_get(ws)) ||
		!cai_json_put(meta, "architecture", json_object_new_string("ensemble")) ||
		!cai_json_put(meta, "ensemble", json_object_get(info)))
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's metadata");
		goto done;
	}
	if (metrics_json != NULL)
	{
		json_object *m = cai_json_parse_object(metrics_json);

		if (m == NULL)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "the ensemble's metrics are not a JSON object");
			goto done;
		}
		if (!cai_json_put(meta, "metrics", m))
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's metadata");
			goto done;
		}
	}
	st = cai_format_write(json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN), ts, k + 1, out, out_len,
						  err);

done:
	json_object_put(meta);
	json_object_put(info);
	json_object_put(archs);
	json_object_put(ws);
	cai_model_free(lead_model);
	return st;
}

/* ------------------------------------------------------------------------
 * The loaded ensemble
 * ------------------------------------------------------------------------ */

/* See ensemble.h. */
void
cai_ensemble_free(void *impl)
{
	cai_ensemble *e = impl;

	if (e == NULL)
		return;
	for (int i = 0; i < e->k; i++)
		cai_model_free(e->members[i]);
	cai_free(e);
}

/*
 * Does the model file in bytes (32-byte aligned) name the ensemble
 * architecture?  Its header and metadata only, bounds-checked, no checksum
 * (the load after it checks that); unreadable bytes are left to that load.
 */
static bool
member_is_ensemble(const uint8_t *bytes, size_t len)
{
	cai_model_file *pm = NULL;
	json_object *meta;
	json_object *a;
	bool		is = false;

	if (cai_format_read_view(bytes, len, false, &pm, NULL) != CAI_OK)
		return false;
	meta = cai_json_parse_object(pm->meta_json);
	is = meta != NULL && json_object_object_get_ex(meta, "architecture", &a) &&
		json_object_is_type(a, json_type_string) && strcmp(json_object_get_string(a), "ensemble") == 0;
	json_object_put(meta);
	cai_model_file_free(pm);
	return is;
}

/* See ensemble.h. */
cai_status
cai_ensemble_load(const cai_model_file *mf, void **impl, cai_error *err)
{
	json_object *meta = cai_json_parse_object(mf->meta_json);
	json_object *info;
	cai_ensemble *e = NULL;
	const cai_tensor *t;
	int64_t		k;
	int64_t		shape[1];
	double		total = 0.0;
	cai_status	st;

	*impl = NULL;
	if (meta == NULL || !json_object_object_get_ex(meta, "ensemble", &info) ||
		!json_object_is_type(info, json_type_object))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "ensemble model metadata lacks the \"ensemble\" object");
		goto fail;
	}
	if ((st = cai_json_get_int(info, "ensemble", "members", 1, CAI_ENSEMBLE_MAX_MEMBERS, &k, err)) != CAI_OK)
		goto fail;
	e = cai_calloc(1, sizeof(cai_ensemble));
	if (e == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the ensemble");
		goto fail;
	}
	shape[0] = k;
	if ((st = cai_model_file_expect(mf, "ensemble.weights", CAI_F32, 1, shape, &t, err)) != CAI_OK)
		goto fail;
	for (int i = 0; i < k; i++)
	{
		float		w = ((const float *) t->data)[i];

		if (!(isfinite(w) && w > 0.0f))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"ensemble.weights\" holds a weight that is not positive");
			goto fail;
		}
		e->weight[i] = w;
		total += w;
	}
	for (int i = 0; i < k; i++)
		e->weight[i] = (float) (e->weight[i] / total);

	for (int i = 0; i < k; i++)
	{
		char		name[CAI_NAME_MAX];
		cai_error	e2 = {0};
		cai_model  *m = NULL;

		snprintf(name, sizeof(name), "ensemble.member.%d", i);
		if ((st = cai_model_file_expect(mf, name, CAI_U8, 1, NULL, &t, err)) != CAI_OK)
			goto fail;
		/*
		 * An ensemble inside is refused before it loads: loading it would
		 * load its members in turn, and a crafted file nested deep enough
		 * would exhaust the stack.
		 */
		if (member_is_ensemble(t->data, t->nbytes))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" is an ensemble, not a classifier", name);
			goto fail;
		}
		/* in place: the tensor is 32-byte aligned and lives as long as mf */
		if (cai_model_load(t->data, t->nbytes, true, !mf->trusted, &m, &e2) != CAI_OK)
		{
			st = cai_error_set(err, e2.status == CAI_ERR_NOMEM ? CAI_ERR_NOMEM : CAI_ERR_FORMAT,
							   "tensor \"%s\": %s", name, e2.msg);
			goto fail;
		}
		e->members[e->k++] = m;
		if (cai_model_kind(m) != CAI_KIND_CLASSIFY)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" is a %s %s model, not a classifier", name,
							   cai_model_task(m), cai_model_architecture(m));
			goto fail;
		}
		if (!same_labels(e->members[0], m))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "tensor \"%s\" has other labels than the first member", name);
			goto fail;
		}
	}
	/* no member beyond k */
	{
		char		name[CAI_NAME_MAX];

		snprintf(name, sizeof(name), "ensemble.member.%d", (int) k);
		if (cai_model_file_tensor(mf, name) != NULL)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"%s\" but ensemble.members %d", name, (int) k);
			goto fail;
		}
	}
	e->n_labels = cai_model_n_labels(e->members[0]);
	json_object_put(meta);
	*impl = e;
	return CAI_OK;

fail:
	json_object_put(meta);
	cai_ensemble_free(e);
	return st;
}

/* See ensemble.h. */
size_t
cai_ensemble_memory(const void *impl)
{
	const cai_ensemble *e = impl;
	size_t		mem = sizeof(cai_ensemble);

	for (int i = 0; i < e->k; i++)
		mem += cai_model_memory(e->members[i]);
	return mem;
}

/* See ensemble.h. */
int
cai_ensemble_n_labels(const void *impl)
{
	return ((const cai_ensemble *) impl)->n_labels;
}

/* See ensemble.h. */
const char *
cai_ensemble_label(const void *impl, int i)
{
	return cai_model_label(((const cai_ensemble *) impl)->members[0], i);
}

/* See ensemble.h: a word any member knows. */
bool
cai_ensemble_known_word(const void *impl, const char *word, size_t len)
{
	const cai_ensemble *e = impl;

	for (int i = 0; i < e->k; i++)
		if (cai_model_known_word(e->members[i], word, len))
			return true;
	return false;
}

/* probs = the weighted mean of the members' probabilities of n texts (one call per member). */
static cai_status
ensemble_mean(const cai_ensemble *e, const char *const *texts, const size_t *lens, size_t n, bool batch,
			  float *probs, cai_error *err)
{
	size_t		cells = n * (size_t) e->n_labels;
	float		small[64];
	float	   *tmp = cells <= 64 ? small : cai_malloc(sizeof(float) * cells);
	cai_status	st = CAI_OK;

	/* a row of a few labels (cai_predict, row by row) allocates nothing */
	if (tmp == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for the ensemble's probabilities");
	memset(probs, 0, sizeof(float) * cells);
	for (int i = 0; i < e->k && st == CAI_OK; i++)
	{
		st = batch ? cai_model_classify_batch(e->members[i], texts, lens, n, tmp, err) :
			cai_model_classify(e->members[i], texts[0], lens[0], tmp, err);
		for (size_t c = 0; st == CAI_OK && c < cells; c++)
			probs[c] += e->weight[i] * tmp[c];
	}
	if (tmp != small)
		cai_free(tmp);
	return st;
}

/* See ensemble.h. */
cai_status
cai_ensemble_classify(const void *impl, const char *text, size_t len, float *probs, cai_error *err)
{
	return ensemble_mean(impl, &text, &len, 1, false, probs, err);
}

/* See ensemble.h. */
cai_status
cai_ensemble_classify_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n, float *probs,
							cai_error *err)
{
	return ensemble_mean(impl, texts, lens, n, true, probs, err);
}
