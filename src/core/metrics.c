/*
 * metrics.c: classification reports with scikit-learn's semantics.
 *
 * cai_classification_report() gives the numbers of
 *   sklearn.metrics.classification_report(gold, pred,
 *       labels=range(n_labels), zero_division=0, output_dict=True)
 * per class precision, recall, F1 and support; accuracy; the macro average
 * (unweighted mean over all n_labels classes, including classes with no
 * support) and the average weighted by support; plus the confusion matrix.
 */
#include "cai/metrics.h"
#include "modelutil.h"

#include <string.h>

#include <json-c/json.h>

/* Per-class counts and scores. */
typedef struct ClassScore
{
	int64_t		tp;
	int64_t		fp;				/* predicted as this class, gold is another */
	int64_t		fn;				/* gold is this class, predicted another */
	double		precision;
	double		recall;
	double		f1;
} ClassScore;

/* Summary of a report. */
typedef struct ReportTotals
{
	double		accuracy;
	double		macro_p;
	double		macro_r;
	double		macro_f1;
	double		weighted_p;
	double		weighted_r;
	double		weighted_f1;
	int64_t		correct;
	int64_t		support;		/* rows whose gold label is in range */
} ReportTotals;

/* zero_division = 0 */
static inline double
safe_div(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

/*
 * Count and score.  cs has n_labels entries; cm, when not NULL, is the
 * (n_labels, n_labels) confusion matrix, rows = gold.  Out-of-range entries
 * count as wrong predictions: a gold label out of range counts only in n,
 * a predicted label out of range is a false negative of its gold class.
 */
static void
metrics_count(const int32_t *gold, const int32_t *pred, size_t n, int n_labels,
			  ClassScore *cs, int64_t *cm, ReportTotals *t)
{
	memset(t, 0, sizeof(*t));
	memset(cs, 0, sizeof(ClassScore) * (size_t) n_labels);
	for (size_t i = 0; i < n; i++)
	{
		int32_t		g = gold[i];
		int32_t		p = pred[i];
		bool		g_ok = g >= 0 && g < n_labels;
		bool		p_ok = p >= 0 && p < n_labels;

		if (g_ok && p_ok && g == p)
		{
			cs[g].tp++;
			t->correct++;
		}
		else
		{
			if (g_ok)
				cs[g].fn++;
			if (p_ok)
				cs[p].fp++;
		}
		if (g_ok)
			t->support++;
		if (cm != NULL && g_ok && p_ok)
			cm[(size_t) g * (size_t) n_labels + (size_t) p]++;
	}

	for (int c = 0; c < n_labels; c++)
	{
		ClassScore *s = &cs[c];
		double		sup = (double) (s->tp + s->fn);

		s->precision = safe_div((double) s->tp, (double) (s->tp + s->fp));
		s->recall = safe_div((double) s->tp, sup);
		/* as sklearn 1.2 computes it: 2 P R / (P + R), 0 when P + R is 0 */
		s->f1 = safe_div(2.0 * s->precision * s->recall, s->precision + s->recall);
		t->macro_p += s->precision;
		t->macro_r += s->recall;
		t->macro_f1 += s->f1;
		t->weighted_p += s->precision * sup;
		t->weighted_r += s->recall * sup;
		t->weighted_f1 += s->f1 * sup;
	}
	if (n_labels > 0)
	{
		t->macro_p /= n_labels;
		t->macro_r /= n_labels;
		t->macro_f1 /= n_labels;
	}
	t->weighted_p = safe_div(t->weighted_p, (double) t->support);
	t->weighted_r = safe_div(t->weighted_r, (double) t->support);
	t->weighted_f1 = safe_div(t->weighted_f1, (double) t->support);
	t->accuracy = safe_div((double) t->correct, (double) n);
}

void
cai_classification_scores(const int32_t *gold, const int32_t *pred, size_t n,
						  int n_labels, double *accuracy, double *macro_f1)
{
	ClassScore	small[16];
	ClassScore *cs = small;
	ReportTotals t;
	double		acc = 0.0;
	double		f1 = 0.0;

	if (n_labels <= 0)
		goto done;
	if ((size_t) n_labels > sizeof(small) / sizeof(small[0]))
	{
		cs = cai_calloc((size_t) n_labels, sizeof(ClassScore));
		if (cs == NULL)
		{
			/* accuracy alone needs no memory */
			for (size_t i = 0; i < n; i++)
				acc += (gold[i] == pred[i] && gold[i] >= 0 && gold[i] < n_labels);
			acc = safe_div(acc, (double) n);
			f1 = 0.0;
			goto done;
		}
	}
	metrics_count(gold, pred, n, n_labels, cs, NULL, &t);
	acc = t.accuracy;
	f1 = t.macro_f1;
	if (cs != small)
		cai_free(cs);
done:
	if (accuracy != NULL)
		*accuracy = acc;
	if (macro_f1 != NULL)
		*macro_f1 = f1;
}

/* {"precision":..,"recall":..,"f1":..,"support":..} */
static json_object *
score_object(double p, double r, double f1, int64_t support)
{
	json_object *o = json_object_new_object();

	if (o == NULL)
		return NULL;
	if (json_object_object_add(o, "precision", json_object_new_double(p)) != 0 ||
		json_object_object_add(o, "recall", json_object_new_double(r)) != 0 ||
		json_object_object_add(o, "f1", json_object_new_double(f1)) != 0 ||
		json_object_object_add(o, "support", json_object_new_int64(support)) != 0)
	{
		json_object_put(o);
		return NULL;
	}
	return o;
}

static bool
add_array_item(json_object *arr, json_object *val)
{
	if (val == NULL)
		return false;
	if (json_object_array_add(arr, val) != 0)
	{
		json_object_put(val);
		return false;
	}
	return true;
}

cai_status
cai_classification_report(const int32_t *gold, const int32_t *pred, size_t n,
						  const char *const *label_names, int n_labels,
						  char **json_out, cai_error *err)
{
	ClassScore *cs = NULL;
	int64_t    *cm = NULL;
	size_t		cm_cells;
	ReportTotals t;
	json_object *root = NULL;
	json_object *classes;
	json_object *conf;
	json_object *labels;
	json_object *matrix;
	const char *text;
	cai_status	st = CAI_ERR_NOMEM;

	*json_out = NULL;
	if (n_labels < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "need at least one class");
	if (n > 0 && (gold == NULL || pred == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "gold and predicted labels are required");
	for (size_t i = 0; i < n; i++)
	{
		if (gold[i] < 0 || gold[i] >= n_labels)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "gold label %d of row %zu is out of range [0, %d)",
								 (int) gold[i], i, n_labels);
		if (pred[i] < 0 || pred[i] >= n_labels)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "predicted label %d of row %zu is out of range [0, %d)",
								 (int) pred[i], i, n_labels);
	}
	for (int c = 0; c < n_labels; c++)
		if (label_names == NULL || label_names[c] == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "label name %d is missing", c);

	if (!cai_size_mul((size_t) n_labels, (size_t) n_labels, &cm_cells))
		return cai_error_set(err, CAI_ERR_LIMIT, "too many classes");
	cs = cai_calloc((size_t) n_labels, sizeof(ClassScore));
	cm = cai_calloc(cm_cells, sizeof(int64_t));
	if (cs == NULL || cm == NULL)
		goto fail;
	metrics_count(gold, pred, n, n_labels, cs, cm, &t);

	root = json_object_new_object();
	if (root == NULL)
		goto fail;
	if (!cai_json_put(root, "accuracy", json_object_new_double(t.accuracy)) ||
		!cai_json_put(root, "macro_f1", json_object_new_double(t.macro_f1)) ||
		!cai_json_put(root, "weighted_f1", json_object_new_double(t.weighted_f1)))
		goto fail;

	classes = json_object_new_object();
	if (!cai_json_put(root, "classes", classes))
		goto fail;
	for (int c = 0; c < n_labels; c++)
	{
		if (json_object_object_get_ex(classes, label_names[c], NULL))
		{
			st = CAI_ERR_INVALID;
			cai_error_set(err, st, "duplicate label name \"%s\"", label_names[c]);
			goto fail;
		}
		if (!cai_json_put(classes, label_names[c],
						score_object(cs[c].precision, cs[c].recall, cs[c].f1,
									 cs[c].tp + cs[c].fn)))
			goto fail;
	}
	if (!cai_json_put(root, "macro avg",
					score_object(t.macro_p, t.macro_r, t.macro_f1, t.support)) ||
		!cai_json_put(root, "weighted avg",
					score_object(t.weighted_p, t.weighted_r, t.weighted_f1, t.support)))
		goto fail;

	conf = json_object_new_object();
	if (!cai_json_put(root, "confusion_matrix", conf))
		goto fail;
	labels = json_object_new_array();
	if (!cai_json_put(conf, "labels", labels))
		goto fail;
	for (int c = 0; c < n_labels; c++)
		if (!add_array_item(labels, json_object_new_string(label_names[c])))
			goto fail;
	matrix = json_object_new_array();
	if (!cai_json_put(conf, "matrix", matrix))
		goto fail;
	for (int g = 0; g < n_labels; g++)
	{
		json_object *row = json_object_new_array();

		if (!add_array_item(matrix, row))
			goto fail;
		for (int p = 0; p < n_labels; p++)
			if (!add_array_item(row, json_object_new_int64(cm[(size_t) g * (size_t) n_labels + (size_t) p])))
				goto fail;
	}
	if (!cai_json_put(root, "n", json_object_new_int64((int64_t) n)))
		goto fail;

	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	if (text == NULL)
		goto fail;
	*json_out = cai_strndup(text, strlen(text));
	if (*json_out == NULL)
		goto fail;
	st = CAI_OK;

fail:
	if (st == CAI_ERR_NOMEM)
		cai_error_set(err, st, "out of memory building the classification report");
	json_object_put(root);
	cai_free(cs);
	cai_free(cm);
	return st;
}
