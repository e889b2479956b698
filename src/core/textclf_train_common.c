/*
 * textclf_train_common.c: what the two text-classification trainers
 * (textclf_fast_train.c, textclf_accurate_train.c) share: the token
 * estimate of their memory estimates, the data both prepare first (also for
 * their gradient probes), pretrained word vectors (the embedding size,
 * matching them to the vocabulary, their coverage), the automatic epoch
 * count, the epochs and the
 * validation metrics after them, the model metadata and the metrics
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

	if (train->tokens != NULL)
	{
		/* the tokens are known; the bytes are the distinct words' */
		*bytes += train->tokens->words->arena_len;
		*tokens += cai_textclf_tokens_count(train->tokens) + train->n * (size_t) eos;
		return;
	}
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
cai_textclf_vector_dim(const cai_options *opts, const cai_word_vectors *vec, int *dim, cai_error *err)
{
	*dim = (int) cai_opt_int(opts, "dimensions");
	if (vec == NULL || vec->n == 0)
		return CAI_OK;
	if (cai_opt_is_set(opts, "dimensions") && vec->dim != *dim)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "word vectors have %d dimensions but option \"dimensions\" is %d "
							 "(leave it unset to take the vectors' size)", vec->dim, *dim);
	*dim = vec->dim;
	return CAI_OK;
}

size_t		cai_textclf_eval_train_max = TEXTCLF_EVAL_TRAIN_MAX;

/* See textclf_internal.h. */
cai_status
cai_textclf_prepare(const cai_options *opts, int n_labels, const cai_textclf_data *train,
					const cai_textclf_data *valid, const cai_textclf_token_rule *rule,
					cai_trainer *tk, cai_textclf_prep *prep, cai_error *err)
{
	cai_status	st;

	prep->L = n_labels;
	prep->eos_type = -1;
	if ((st = cai_textclf_split(train, valid, cai_opt_float(opts, "validation_fraction"), n_labels,
								cai_opt_split_seed(opts), &prep->rows, &prep->eval_from,
								&prep->n_eval, err)) != CAI_OK)
		return st;
	prep->eval_step = 1;
	prep->eval_lab = prep->rows.lab + prep->eval_from;
	if (prep->rows.n_va == 0 && prep->n_eval > cai_textclf_eval_train_max)
	{
		prep->eval_step = (prep->n_eval + cai_textclf_eval_train_max - 1) / cai_textclf_eval_train_max;
		prep->n_eval = (prep->n_eval + prep->eval_step - 1) / prep->eval_step;
		if ((prep->eval_lab_own = cai_malloc(sizeof(int32_t) * prep->n_eval)) == NULL)
			return NOMEM(err);
		for (size_t j = 0; j < prep->n_eval; j++)
			prep->eval_lab_own[j] = prep->rows.lab[cai_textclf_eval_row(prep, j)];
		prep->eval_lab = prep->eval_lab_own;
	}
	if (prep->types_by_word && prep->rows.tok_tr != NULL)
		st = cai_textclf_type_words(&prep->rows, rule, tk, &prep->types, &prep->word_type, &prep->eos_type, err);
	else
		st = cai_textclf_tokenize_rows(&prep->rows, rule, tk, &prep->types, &prep->tok_off,
									   &prep->tok_type, &prep->tok_cap, err);
	if (st != CAI_OK ||
		(st = cai_textclf_choose_vocab(&prep->types, cai_opt_int(opts, "min_count"), &prep->type_vocab,
									   &prep->vitems, &prep->V, err)) != CAI_OK)
		return st;
	prep->pred = cai_malloc(sizeof(int32_t) * prep->n_eval);
	prep->best_pred = cai_malloc(sizeof(int32_t) * prep->n_eval);
	if (prep->pred == NULL || prep->best_pred == NULL)
		return NOMEM(err);
	return CAI_OK;
}

/* See textclf_internal.h. */
void
cai_textclf_prep_free(cai_textclf_prep *prep)
{
	cai_textclf_rows_free(&prep->rows);
	cai_free(prep->tok_off);
	cai_free(prep->tok_type);
	cai_free(prep->word_type);
	cai_textclf_types_free(&prep->types);
	cai_free(prep->type_vocab);
	cai_free(prep->vitems);
	cai_free_large(prep->bmap, prep->bmap_mapped);
	cai_free(prep->pred);
	cai_free(prep->best_pred);
	cai_free(prep->eval_lab_own);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_extend_vocab(cai_textclf_prep *prep, const cai_textclf_token_rule *rule,
						 const cai_word_vectors *vec, int64_t max_words, cai_error *err)
{
	cai_textclf_types *tt = &prep->types;
	char		norm[TEXTCLF_NORM_MAX];
	int64_t		added = 0;
	size_t		room,
				before;
	cai_status	st = CAI_OK;

	if (vec == NULL || vec->n == 0 || max_words <= 0)
		return CAI_OK;
	/* each vector word adds at most one type and one vocabulary word */
	room = tt->n + 1 + ((size_t) max_words < vec->n ? (size_t) max_words : vec->n);
	if (room >= INT32_MAX ||
		!cai_grow_array((void **) &prep->type_vocab, sizeof(int32_t), tt->n + 1, room) ||
		!cai_grow_array((void **) &prep->vitems, sizeof(cai_textclf_vocab_item), tt->n + 1, room))
		return NOMEM(err);
	for (size_t i = 0; i < vec->n && added < max_words; i++)
	{
		const char *w = vec->words[i];
		cai_token  *toks = NULL;
		size_t		nt = 0;
		size_t		n;
		int64_t		ty;

		if (w == NULL || vec->lens[i] == 0 || vec->lens[i] >= TEXTCLF_NORM_MAX)
			continue;
		/* a word the tokenizer would split (or drop) is never looked up */
		if ((st = cai_textclf_tokenize(w, vec->lens[i], 2, rule->bytes_per_token, &toks, &nt, err)) != CAI_OK)
			return st;
		n = nt == 1 && toks[0].start == 0 && (size_t) toks[0].end == vec->lens[i] ?
			rule->norm(w, toks, 0, 1, norm) : 0;
		cai_free(toks);
		if (n == 0 || memchr(norm, '\0', n) != NULL)
			continue;
		before = tt->n;
		ty = cai_textclf_types_intern(tt, norm, n, rule->hash(norm, n));
		if (ty < 0 || ty >= INT32_MAX)
			return NOMEM(err);
		if (tt->n > before)
			prep->type_vocab[ty] = -1;	/* a new type, of no training or validation row */
		if (prep->type_vocab[ty] >= 0)
			continue;
		prep->type_vocab[ty] = prep->V;
		prep->vitems[prep->V].count = 0;
		prep->vitems[prep->V].type = (int32_t) ty;
		prep->V++;
		added++;
	}
	/* interning may have moved the arena */
	for (int32_t v = 0; v < prep->V; v++)
		prep->vitems[v].s = tt->arena + tt->off[prep->vitems[v].type];
	prep->V_vectors = (int32_t) added;
	return st;
}

/* Give vector i to the vocabulary word of type ty, if it has none yet; true when it took it. */
static bool
vec_match_take(const cai_textclf_prep *prep, int64_t ty, size_t i, cai_textclf_vec_match *match)
{
	int32_t		v = ty >= 0 ? prep->type_vocab[ty] : -1;

	if (v < 0 || match->row[v] >= 0)
		return false;
	match->row[v] = (int32_t) i;
	return true;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_match_vectors(const cai_textclf_prep *prep, const cai_textclf_token_rule *rule,
						  const cai_word_vectors *vec, const char *eos,
						  cai_textclf_vec_match *match, cai_error *err)
{
	const cai_textclf_types *tt = &prep->types;
	size_t		eos_len = eos != NULL ? strlen(eos) : 0;
	int64_t		eos_type = -1;
	int32_t		found = 0;

	memset(match, 0, sizeof(*match));
	if (vec == NULL || vec->n == 0 || prep->V == 0)
		return CAI_OK;
	match->row = cai_malloc(sizeof(int32_t) * (size_t) prep->V);
	if (match->row == NULL)
		return NOMEM(err);
	for (int32_t v = 0; v < prep->V; v++)
		match->row[v] = -1;

	/* the words as they are (the vocabulary holds normalized tokens) */
	for (size_t i = 0; i < vec->n && found < prep->V; i++)
	{
		const char *w = vec->words[i];

		if (w != NULL && vec->lens[i] > 0 && vec->lens[i] < TEXTCLF_NORM_MAX)
			found += vec_match_take(prep, cai_textclf_types_find(tt, w, vec->lens[i], rule->hash(w, vec->lens[i])),
									i, match);
	}
	/* then normalized (lower-cased), for the words a cased set has only with capitals */
	for (size_t i = 0; i < vec->n && found < prep->V; i++)
	{
		const char *w = vec->words[i];
		char		norm[TEXTCLF_NORM_MAX];
		cai_token	tok;
		size_t		n;

		if (w == NULL || vec->lens[i] == 0)
			continue;
		memset(&tok, 0, sizeof(tok));
		tok.end = (int64_t) vec->lens[i];
		n = rule->norm(w, &tok, 0, 1, norm);
		if (n == vec->lens[i] && memcmp(norm, w, n) == 0)
			continue;			/* tried above */
		found += vec_match_take(prep, cai_textclf_types_find(tt, norm, n, rule->hash(norm, n)), i, match);
	}

	/* coverage */
	if (eos != NULL)
		eos_type = cai_textclf_types_find(tt, eos, eos_len, rule->hash(eos, eos_len));
	for (size_t ty = 0; ty < tt->n; ty++)
		if ((int64_t) ty != eos_type)
			match->tokens += tt->count[ty];
	for (int32_t v = 0; v < prep->V - prep->V_vectors; v++)
	{
		int32_t		ty = prep->vitems[v].type;

		if (ty == eos_type)
			continue;
		match->words++;
		if (match->row[v] >= 0)
		{
			match->words_found++;
			match->tokens_found += tt->count[ty];
		}
	}
	return CAI_OK;
}

/* See textclf_internal.h. */
void
cai_textclf_vec_match_free(cai_textclf_vec_match *match)
{
	cai_free(match->row);
	match->row = NULL;
}

/* See textclf_internal.h. */
void
cai_textclf_copy_vectors(const cai_textclf_vec_match *match, int32_t V, const cai_word_vectors *vec,
						 float *emb)
{
	const size_t D = vec != NULL ? (size_t) vec->dim : 0;

	if (match->row == NULL)
		return;
	for (int32_t v = 0; v < V; v++)
		if (match->row[v] >= 0)
			memcpy(emb + (size_t) v * D, vec->vectors + (size_t) match->row[v] * D, sizeof(float) * D);
}

/* See textclf_internal.h. */
bool
cai_textclf_put_vector_coverage(struct json_object *metrics, const cai_textclf_vec_match *match)
{
	json_object *c;

	if (match->row == NULL)
		return true;
	c = json_object_new_object();
	if (c == NULL ||
		!cai_json_put(c, "words", json_object_new_double(match->words > 0 ?
														 (double) match->words_found / (double) match->words : 0.0)) ||
		!cai_json_put(c, "tokens", json_object_new_double(match->tokens > 0 ?
														  (double) match->tokens_found / (double) match->tokens : 0.0)) ||
		!cai_json_put(c, "words_found", json_object_new_int64(match->words_found)))
	{
		json_object_put(c);
		return false;
	}
	return cai_json_put(metrics, "vector_coverage", c);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_run_epochs(cai_trainer *tk, const cai_trainer_hooks *hooks, int epochs, int patience,
					   const cai_textclf_prep *prep, const float *best, size_t n_best,
					   const char *const *label_names, struct json_object *prov, uint64_t seed,
					   double *seconds, struct json_object **metrics, cai_error *err)
{
	cai_trainer_config tc = {0};
	char	   *report = NULL;
	cai_status	st;

	*metrics = NULL;
	tc.epochs = epochs;
	tc.patience = patience;
	tc.has_validation = prep->rows.n_va > 0;	/* without validation rows the last epoch is kept */
	tc.time_check_after_epoch = true;
	tc.evaluate_last_only = true;
	if ((st = cai_trainer_run(tk, &tc, hooks, err)) != CAI_OK)
		return st;
	if (!cai_all_finite(best, n_best))
		return cai_error_set(err, CAI_ERR_NUMERIC,
							 "training diverged (a weight is not finite); lower learning_rate");
	*seconds = cai_trainer_seconds(tk);

	st = cai_classification_report(prep->eval_lab, prep->best_pred, prep->n_eval,
								   label_names, prep->L, &report, err);
	if (st != CAI_OK)
		return st;
	*metrics = cai_json_parse_object(report);
	cai_free(report);
	if (*metrics == NULL ||
		!cai_trainer_put_metrics(tk, *metrics, "rows", prep->rows.n_tr, prep->rows.n_va) ||
		!cai_json_put(*metrics, "epochs_planned", json_object_new_int(epochs)) ||
		!cai_json_put(*metrics, "vocab_size", json_object_new_int(prep->V)) ||
		!cai_json_put(*metrics, "bucket_rows", json_object_new_int(prep->K)) ||
		!cai_trainer_put_provenance(prov, "rows", prep->rows.n_tr, prep->rows.n_va, seed))
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
bool
cai_textclf_put_token_options(struct json_object *features, int minn, int maxn, int max_tokens,
							  uint32_t buckets)
{
	return cai_json_put(features, "minn", json_object_new_int(minn)) &&
		cai_json_put(features, "maxn", json_object_new_int(maxn)) &&
		cai_json_put(features, "max_tokens", json_object_new_int(max_tokens)) &&
		cai_json_put(features, "buckets", json_object_new_int64(buckets));
}

/* See textclf_internal.h. */
char *
cai_textclf_metadata(const char *architecture, const cai_options *opts, int vector_dim,
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
	/*
	 * The fast table gained "threads" after models were stored: a
	 * one-thread fast model's metadata (and bytes) stay what they were.
	 */
	if (ok && strcmp(architecture, "fast") == 0 && cai_opt_int(opts, "threads") == 1)
		json_object_object_del(oj, "threads");
	if (ok && vector_dim == 0)
	{
		json_object_object_del(oj, "word_vectors");
		json_object_object_del(oj, "freeze_vectors");
		json_object_object_del(oj, "vector_words");
	}
	else if (ok)
		ok = cai_json_put(oj, "dimensions", json_object_new_int(vector_dim));
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
