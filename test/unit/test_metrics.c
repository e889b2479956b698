/*
 * test_metrics.c: classification report against scikit-learn.
 *
 * Expected numbers were computed once with scikit-learn 1.2 and hard-coded:
 *   /usr/bin/python3 -c "from sklearn.metrics import classification_report as r,
 *       confusion_matrix as cm; print(r(g, p, labels=[...], zero_division=0,
 *       output_dict=True)); print(cm(g, p, labels=[...]))"
 * with the g, p of each case below.
 */
#include "cai/metrics.h"

#include <string.h>

#include <json-c/json.h>

#include "check.h"

static json_object *
get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static double
num(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v != NULL ? json_object_get_double(v) : -1.0;
}

#define CHECK_NUM(obj, key, want) \
	do { \
		double		got_ = num((obj), (key)); \
		CHECK(fabs(got_ - (want)) < 1e-12, "%s: got %.17g want %.17g", (key), got_, (double) (want)); \
	} while (0)

/* Compare one "classes"/avg entry. */
static void
check_entry(json_object *e, double p, double r, double f1, int64_t support)
{
	CHECK(e != NULL, "entry missing");
	CHECK_NUM(e, "precision", p);
	CHECK_NUM(e, "recall", r);
	CHECK_NUM(e, "f1", f1);
	CHECK(get(e, "support") != NULL && json_object_get_int64(get(e, "support")) == support,
		  "support want %lld", (long long) support);
}

static void
check_matrix(json_object *root, const int64_t *want, int n_labels)
{
	json_object *m = get(get(root, "confusion_matrix"), "matrix");

	CHECK(m != NULL && json_object_array_length(m) == (size_t) n_labels, "matrix rows");
	if (m == NULL || json_object_array_length(m) != (size_t) n_labels)
		return;
	for (int g = 0; g < n_labels; g++)
	{
		json_object *row = json_object_array_get_idx(m, g);

		CHECK(json_object_array_length(row) == (size_t) n_labels, "matrix columns");
		for (int p = 0; p < n_labels && p < (int) json_object_array_length(row); p++)
			CHECK(json_object_get_int64(json_object_array_get_idx(row, p)) == want[g * n_labels + p],
				  "cm[%d][%d]", g, p);
	}
}

static json_object *
report(const int32_t *g, const int32_t *p, size_t n, const char *const *names, int k)
{
	char	   *js = NULL;
	cai_error	err = {0};
	cai_status	st = cai_classification_report(g, p, n, names, k, &js, &err);
	json_object *root;

	CHECK(st == CAI_OK, "report: %s", err.msg);
	if (st != CAI_OK)
		return NULL;
	root = json_tokener_parse(js);
	CHECK(root != NULL, "report is not JSON: %s", js);
	cai_free(js);
	return root;
}

/* 3 classes, every class has support. */
static void
test_three_classes(void)
{
	/* g=[0,0,0,1,1,2,2,2,2,0]; p=[0,1,0,1,2,1,0,2,1,0] */
	static const int32_t g[] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 0};
	static const int32_t p[] = {0, 1, 0, 1, 2, 1, 0, 2, 1, 0};
	static const char *const names[] = {"neg", "neu", "pos"};
	static const int64_t cm[] = {3, 1, 0, 0, 1, 1, 1, 2, 1};
	json_object *r = report(g, p, 10, names, 3);
	double		acc,
				mf1;

	if (r == NULL)
		return;
	CHECK_NUM(r, "accuracy", 0.5);
	CHECK_NUM(r, "macro_f1", 0.47222222222222215);
	CHECK_NUM(r, "weighted_f1", 0.5);
	check_entry(get(get(r, "classes"), "neg"), 0.75, 0.75, 0.75, 4);
	check_entry(get(get(r, "classes"), "neu"), 0.25, 0.5, 0.3333333333333333, 2);
	check_entry(get(get(r, "classes"), "pos"), 0.5, 0.25, 0.3333333333333333, 4);
	check_entry(get(r, "macro avg"), 0.5, 0.5, 0.47222222222222215, 10);
	check_entry(get(r, "weighted avg"), 0.55, 0.5, 0.5, 10);
	check_matrix(r, cm, 3);
	CHECK(json_object_get_int64(get(r, "n")) == 10, "n");
	CHECK(json_object_array_length(get(get(r, "confusion_matrix"), "labels")) == 3, "labels");
	CHECK(strcmp(json_object_get_string(json_object_array_get_idx(get(get(r, "confusion_matrix"), "labels"), 2)), "pos") == 0,
		  "label order");
	json_object_put(r);

	cai_classification_scores(g, p, 10, 3, &acc, &mf1);
	CHECK(acc == 0.5, "scores accuracy %g", acc);
	CHECK(fabs(mf1 - 0.47222222222222215) < 1e-12, "scores macro f1 %.17g", mf1);
}

/* 4 classes: class 1 never predicted, class 3 has no support and is never predicted. */
static void
test_zero_support(void)
{
	/* g=[0,0,2,2,2,0,1]; p=[0,2,2,2,0,0,0]; labels=[0,1,2,3] */
	static const int32_t g[] = {0, 0, 2, 2, 2, 0, 1};
	static const int32_t p[] = {0, 2, 2, 2, 0, 0, 0};
	static const char *const names[] = {"a", "b", "c", "d"};
	static const int64_t cm[] = {2, 0, 1, 0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0};
	json_object *r = report(g, p, 7, names, 4);

	if (r == NULL)
		return;
	/* sklearn prints this as "micro avg" (a label is absent): same number */
	CHECK_NUM(r, "accuracy", 0.5714285714285714);
	CHECK_NUM(r, "macro_f1", 0.30952380952380953);
	CHECK_NUM(r, "weighted_f1", 0.5306122448979592);
	check_entry(get(get(r, "classes"), "a"), 0.5, 0.6666666666666666, 0.5714285714285715, 3);
	check_entry(get(get(r, "classes"), "b"), 0.0, 0.0, 0.0, 1);
	check_entry(get(get(r, "classes"), "c"), 0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 3);
	check_entry(get(get(r, "classes"), "d"), 0.0, 0.0, 0.0, 0);
	check_entry(get(r, "macro avg"), 0.29166666666666663, 0.3333333333333333, 0.30952380952380953, 7);
	check_entry(get(r, "weighted avg"), 0.5, 0.5714285714285714, 0.5306122448979592, 7);
	check_matrix(r, cm, 4);
	json_object_put(r);
}

/* A class that is predicted but has no support. */
static void
test_predicted_without_support(void)
{
	/* g=[0,0,1,1]; p=[0,2,1,1]; labels=[0,1,2] */
	static const int32_t g[] = {0, 0, 1, 1};
	static const int32_t p[] = {0, 2, 1, 1};
	static const char *const names[] = {"x", "y", "z"};
	json_object *r = report(g, p, 4, names, 3);

	if (r == NULL)
		return;
	CHECK_NUM(r, "accuracy", 0.75);
	check_entry(get(get(r, "classes"), "x"), 1.0, 0.5, 0.6666666666666666, 2);
	check_entry(get(get(r, "classes"), "y"), 1.0, 1.0, 1.0, 2);
	check_entry(get(get(r, "classes"), "z"), 0.0, 0.0, 0.0, 0);
	check_entry(get(r, "macro avg"), 0.6666666666666666, 0.5, 0.5555555555555555, 4);
	check_entry(get(r, "weighted avg"), 1.0, 0.75, 0.8333333333333333, 4);
	json_object_put(r);
}

static void
test_edge_cases(void)
{
	static const int32_t g[] = {0, 1};
	static const int32_t bad[] = {0, 2};
	static const char *const names[] = {"a", "b"};
	static const char *const dup[] = {"a", "a"};
	char	   *js = (char *) 1;
	cai_error	err = {0};
	json_object *r;
	double		acc = -1,
				mf1 = -1;

	CHECK(cai_classification_report(g, bad, 2, names, 2, &js, &err) == CAI_ERR_INVALID,
		  "predicted label out of range");
	CHECK(js == NULL, "no output on error");
	CHECK(strstr(err.msg, "out of range") != NULL, "message: %s", err.msg);
	CHECK(cai_classification_report(bad, g, 2, names, 2, &js, &err) == CAI_ERR_INVALID,
		  "gold label out of range");
	CHECK(cai_classification_report(g, g, 2, dup, 2, &js, &err) == CAI_ERR_INVALID,
		  "duplicate names");
	CHECK(cai_classification_report(g, g, 2, names, 0, &js, &err) == CAI_ERR_INVALID,
		  "no classes");

	/* no rows: all zeros, still a report */
	r = report(NULL, NULL, 0, names, 2);
	if (r != NULL)
	{
		CHECK_NUM(r, "accuracy", 0.0);
		CHECK_NUM(r, "macro_f1", 0.0);
		check_entry(get(r, "weighted avg"), 0.0, 0.0, 0.0, 0);
		json_object_put(r);
	}

	/* perfect */
	r = report(g, g, 2, names, 2);
	if (r != NULL)
	{
		CHECK_NUM(r, "accuracy", 1.0);
		CHECK_NUM(r, "macro_f1", 1.0);
		json_object_put(r);
	}

	/* scores: out-of-range predictions count as wrong */
	cai_classification_scores(g, bad, 2, 2, &acc, &mf1);
	CHECK(acc == 0.5, "scores with a bad prediction: %g", acc);
	/* class a: tp 1 -> P 1 R 1 F 1; class b: tp 0 -> F 0 */
	CHECK(mf1 == 0.5, "scores macro f1 with a bad prediction: %g", mf1);
	cai_classification_scores(NULL, NULL, 0, 2, &acc, &mf1);
	CHECK(acc == 0.0 && mf1 == 0.0, "scores of nothing");
}

/* Many classes: the heap path of cai_classification_scores. */
static void
test_many_classes(void)
{
	enum
	{
		K = 40, N = 400
	};
	int32_t		g[N],
				p[N];
	double		acc,
				mf1;
	const char *names[K];
	char		buf[K][8];
	json_object *r;

	for (int i = 0; i < N; i++)
	{
		g[i] = i % K;
		p[i] = (i % 3 == 0) ? (i + 1) % K : i % K;
	}
	for (int c = 0; c < K; c++)
	{
		snprintf(buf[c], sizeof(buf[c]), "c%d", c);
		names[c] = buf[c];
	}
	cai_classification_scores(g, p, N, K, &acc, &mf1);
	r = report(g, p, N, names, K);
	if (r != NULL)
	{
		CHECK_NUM(r, "accuracy", acc);
		CHECK_NUM(r, "macro_f1", mf1);
		json_object_put(r);
	}
	CHECK(fabs(acc - 266.0 / 400.0) < 1e-12, "accuracy %g", acc);
}

int
main(void)
{
	test_three_classes();
	test_zero_support();
	test_predicted_without_support();
	test_edge_cases();
	test_many_classes();
	return check_summary("test_metrics");
}
