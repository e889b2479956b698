/*
 * textclf_train_common.c: what the two text-classification trainers
 * (textclf_fast_train.c, textclf_accurate_train.c) share: the token
 * estimate of their memory estimates, the automatic epoch count, and after
 * their epochs the validation metrics, the model metadata and the metrics
 * returned to the caller (see textclf_internal.h).
 */
#include "textclf_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cai/metrics.h"
#include "modelutil.h"
#include "trainer.h"

/* See textclf_internal.h. */
void
cai_textclf_estimate_tokens(const cai_textclf_data *train, int max_tokens, size_t bytes_per_token, int eos,
							size_t *bytes, size_t *tokens)
{
	size_t		cap = (size_t) max_tokens * bytes_per_token;

	for (size_t i = 0; i < train->n; i++)
	{
		size_t		l = train->lens != NULL ? train->lens[i] : 0;

		if (l > cap)
			l = cap;
		*bytes += l;
		*tokens += (l / 4 + 1 < (size_t) max_tokens ? l / 4 + 1 : (size_t) max_tokens) + (size_t) eos;
	}
}

/* See textclf_internal.h. */
int
cai_textclf_auto_epochs(size_t n_tr, size_t updates, int min_epochs, int max_epochs)
{
	size_t		want = (updates + n_tr - 1) / n_tr;

	return want < (size_t) min_epochs ? min_epochs : want > (size_t) max_epochs ? max_epochs : (int) want;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_train_metrics(const cai_trainer *tk, const cai_textclf_rows *rows, size_t eval_from,
						  size_t n_eval, const int32_t *pred, const char *const *label_names,
						  int n_labels, int epochs, int32_t V, int32_t K,
						  struct json_object *prov, uint64_t seed,
						  struct json_object **metrics, cai_error *err)
{
	char	   *report = NULL;
	cai_status	st;

	*metrics = NULL;
	st = cai_classification_report(rows->lab + eval_from, pred, n_eval, label_names, n_labels,
								   &report, err);
	if (st != CAI_OK)
		return st;
	*metrics = cai_json_parse_object(report);
	cai_free(report);
	if (*metrics == NULL ||
		!cai_trainer_put_metrics(tk, *metrics, "rows", rows->n_tr, rows->n_va) ||
		!cai_json_put(*metrics, "epochs_planned", json_object_new_int(epochs)) ||
		!cai_json_put(*metrics, "vocab_size", json_object_new_int(V)) ||
		!cai_json_put(*metrics, "bucket_rows", json_object_new_int(K)) ||
		!cai_trainer_put_provenance(prov, "rows", rows->n_tr, rows->n_va, seed))
		return NOMEM(err);
	return CAI_OK;
}

/* See textclf_internal.h. */
struct json_object *
cai_textclf_feature_json(int feature_version, uint64_t fingerprint, int dimensions)
{
	json_object *fj = json_object_new_object();
	char		fpbuf[32];

	snprintf(fpbuf, sizeof(fpbuf), "%016" PRIx64, fingerprint);
	if (fj == NULL ||
		!cai_json_put(fj, "feature_version", json_object_new_int(feature_version)) ||
		!cai_json_put(fj, "feature_fingerprint", json_object_new_string(fpbuf)) ||
		!cai_json_put(fj, "dimensions", json_object_new_int(dimensions)))
	{
		json_object_put(fj);
		return NULL;
	}
	return fj;
}

/* See textclf_internal.h. */
char *
cai_textclf_metadata(const char *architecture, const cai_options *opts,
					 const char *const *label_names, int n_labels,
					 struct json_object *features, struct json_object *metrics,
					 struct json_object *prov)
{
	json_object *root = json_object_new_object();
	json_object *labels = json_object_new_array();
	json_object *oj = NULL;
	char	   *ojs = cai_options_to_json(opts);
	char	   *out = NULL;
	bool		ok;

	if (ojs != NULL)
		oj = cai_json_parse_object(ojs);
	cai_free(ojs);
	ok = root != NULL && labels != NULL && features != NULL && oj != NULL;
	for (int c = 0; ok && c < n_labels; c++)
		ok = json_object_array_add(labels, json_object_new_string(label_names[c])) == 0;
	if (ok)
	{
		ok = cai_json_put(root, "task", json_object_new_string("text_classification")) &&
			cai_json_put(root, "architecture", json_object_new_string(architecture)) &&
			cai_json_put(root, "labels", labels);
		labels = NULL;
		ok = ok && cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
			cai_json_put(root, "options", oj);
		oj = NULL;
		ok = ok && cai_json_put(root, architecture, features);
		features = NULL;
		ok = ok && cai_json_put(root, "metrics", json_object_get(metrics)) &&
			cai_json_put(root, "provenance", json_object_get(prov));
	}
	if (ok)
	{
		const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);

		if (s != NULL)
			out = cai_strndup(s, strlen(s));
	}
	json_object_put(root);
	json_object_put(labels);
	json_object_put(features);
	json_object_put(oj);
	return out;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_return_metrics(struct json_object *metrics, double seconds,
						   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	json_object *acc;
	const char *s;

	/*
	 * "score": the validation score every architecture reports (here accuracy),
	 * which deploy-if-better compares; wall-clock time goes to the returned
	 * metrics only, never into the model bytes.
	 */
	if (!json_object_object_get_ex(metrics, "accuracy", &acc) ||
		!cai_json_put(metrics, "score", json_object_new_double(json_object_get_double(acc))) ||
		!cai_json_put(metrics, "seconds", json_object_new_double(seconds)))
		s = NULL;
	else
		s = json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN);
	*metrics_json = s != NULL ? cai_strndup(s, strlen(s)) : NULL;
	if (*metrics_json == NULL)
	{
		/* the caller gets no model without its metrics */
		cai_free(*model);
		*model = NULL;
		*model_len = 0;
		return NOMEM(err);
	}
	return CAI_OK;
}
