/*
 * model.c: the registry of tasks and architectures, and the cai_model
 * wrapper that every caller uses (see model.h).
 */
#include "cai/model.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "blas.h"
#include "cai/encoder_model.h"
#include "cai/ensemble.h"
#include "cai/textclf.h"
#include "cai/vectors.h"
#include "encoder_model_internal.h"
#include "modelutil.h"
#include "textclf_internal.h"
#include "transformer_arch.h"

/* ------------------------------------------------------------------------
 * Tasks
 * ------------------------------------------------------------------------ */

static const char *const textclf_aliases[] = {"sentiment", "classification", NULL};
static const char *const ner_aliases[] = {"token_classification", NULL};
static const char *const vectors_aliases[] = {"word_vectors", NULL};
static const char *const encoder_aliases[] = {NULL};

static const cai_task tasks[] = {
	{"text_classification", textclf_aliases, CAI_KIND_CLASSIFY, "accurate"},
	{"ner", ner_aliases, CAI_KIND_TAG, "bilstm_crf"},
	{"vectors", vectors_aliases, CAI_KIND_EMBED, "skipgram"},
	{"encoder", encoder_aliases, CAI_KIND_ENCODER, "bert"},
};

#define N_TASKS ((int) (sizeof(tasks) / sizeof(tasks[0])))

/* ------------------------------------------------------------------------
 * Adapters from the model modules' typed functions to the function table
 * ------------------------------------------------------------------------ */

static size_t
textclf_train_memory(const cai_options *opts, const cai_train_set *set)
{
	return cai_textclf_train_memory(opts, set->texts, set->n_labels, set->vectors);
}

static cai_status
textclf_train(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
			  cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
			  char **metrics_json, cai_error *err)
{
	return cai_textclf_train(opts, set->label_names, set->n_labels, set->texts, set->valid_texts, set->vectors,
							 provenance_json, progress, progress_ctx, model, model_len, metrics_json, err);
}

/* word vectors: texts only (vectors_train.c); "skipgram" trains CBOW too, by its "model" option */
static size_t
vectors_train_memory(const cai_options *opts, const cai_train_set *set)
{
	return cai_vectors_train_memory(opts, set->texts->texts, set->texts->lens, set->texts->n);
}

static cai_status
vectors_train(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
			  cai_progress_fn progress, void *progress_ctx, uint8_t **bytes, size_t *len,
			  char **metrics_json, cai_error *err)
{
	return cai_vectors_train(opts, set->texts->texts, set->texts->lens, set->texts->n, progress, progress_ctx,
							 bytes, len, metrics_json, err);
}

static cai_status
textclf_gradcheck(const cai_options *opts, const cai_train_set *set, int samples, double *max_rel_err,
				  cai_error *err)
{
	return cai_textclf_gradcheck(opts, set->n_labels, set->texts, samples, max_rel_err, err);
}

static cai_status
textclf_load_fast(const cai_model_file *mf, void **impl, cai_error *err)
{
	return cai_textclf_load_fast(mf, (cai_textclf **) impl, err);
}

static cai_status
textclf_load_accurate(const cai_model_file *mf, void **impl, cai_error *err)
{
	return cai_textclf_load_accurate(mf, (cai_textclf **) impl, err);
}

static void
textclf_free(void *impl)
{
	cai_textclf_free(impl);
}

static size_t
textclf_memory(const void *impl)
{
	return cai_textclf_memory(impl);
}

static int
textclf_n_labels(const void *impl)
{
	return cai_textclf_n_labels(impl);
}

static const char *
textclf_label(const void *impl, int i)
{
	return cai_textclf_label(impl, i);
}

static bool
textclf_known_word(const void *impl, const char *word, size_t len)
{
	return cai_textclf_known_word(impl, word, len);
}

static cai_status
textclf_classify(const void *impl, const char *text, size_t len, float *probs, cai_error *err)
{
	return cai_textclf_predict(impl, text, len, probs, err);
}

static cai_status
textclf_classify_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n, float *probs,
					   cai_error *err)
{
	return cai_textclf_predict_batch(impl, texts, lens, n, probs, err);
}

static size_t
ner_train_memory(const cai_options *opts, const cai_train_set *set)
{
	return cai_ner_train_memory(opts, set->sentences);
}

static cai_status
ner_train(const cai_options *opts, const cai_train_set *set, const char *provenance_json,
		  cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
		  char **metrics_json, cai_error *err)
{
	return cai_ner_train(opts, set->sentences, set->valid_sentences, set->vectors, provenance_json,
						 progress, progress_ctx, model, model_len, metrics_json, err);
}

static cai_status
ner_gradcheck(const cai_options *opts, const cai_train_set *set, int samples, double *max_rel_err,
			  cai_error *err)
{
	return cai_ner_gradcheck(opts, set->sentences, samples, max_rel_err, err);
}

static cai_status
ner_load(const cai_model_file *mf, void **impl, cai_error *err)
{
	return cai_ner_load(mf, (cai_ner **) impl, err);
}

static void
ner_free(void *impl)
{
	cai_ner_free(impl);
}

static size_t
ner_memory(const void *impl)
{
	return cai_ner_memory(impl);
}

static int
ner_n_types(const void *impl)
{
	return cai_ner_n_types(impl);
}

static const char *
ner_type(const void *impl, int i)
{
	return cai_ner_type(impl, i);
}

static bool
ner_known_word(const void *impl, const char *word, size_t len)
{
	return cai_ner_known_word(impl, word, len);
}

static cai_status
ner_tag(const void *impl, const char *const *tokens, const size_t *lens, size_t n,
		const char **tags_out, float *scores, cai_error *err)
{
	return cai_ner_tag(impl, tokens, lens, n, tags_out, scores, err);
}

static cai_status
ner_tag_batch(const void *impl, const cai_ner_data *data, const char **tags_out, float *scores,
			  cai_error *err)
{
	return cai_ner_tag_batch(impl, data, tags_out, scores, err);
}

static cai_status
ner_entities(const void *impl, const char *text, size_t len, size_t max_tokens,
			 cai_entity **out, size_t *n_out, cai_error *err)
{
	return cai_ner_entities(impl, text, len, max_tokens, out, n_out, err);
}

static cai_status
ner_entities_batch(const void *impl, const char *const *texts, const size_t *lens, size_t n, size_t max_tokens,
				   cai_entity **out, size_t *offsets, cai_error *err)
{
	return cai_ner_entities_batch(impl, texts, lens, n, max_tokens, out, offsets, err);
}

/* a stored encoder (encoder_model.c): imported, not trained; no labels, it embeds */
static void
encoder_free(void *impl)
{
	cai_encoder_bundle_free(impl);
}

static size_t
encoder_memory(const void *impl)
{
	return cai_encoder_bundle_memory(impl);
}

static int
encoder_n_labels(const void *impl)
{
	return 0;
}

static const char *
encoder_label(const void *impl, int i)
{
	return NULL;
}

static bool
encoder_known_word(const void *impl, const char *word, size_t len)
{
	return cai_encoder_bundle_known_word(impl, word, len);
}

static const cai_encoder_bundle *
encoder_bundle(const void *impl)
{
	return impl;
}

static const int no_option_defs = 0;

/* ------------------------------------------------------------------------
 * The registry: one line per architecture
 * ------------------------------------------------------------------------ */

#define TEXTCLF_ARCH(name, defs, n_defs, blas, load) \
	{&tasks[0], name, defs, &n_defs, blas, textclf_train_memory, textclf_train, textclf_gradcheck, load, textclf_free, textclf_memory, textclf_n_labels, textclf_label, \
	 textclf_known_word, textclf_classify, textclf_classify_batch, NULL, NULL, NULL, NULL}

static const cai_arch archs[] = {
	TEXTCLF_ARCH("fast", cai_textclf_fast_option_defs, cai_textclf_fast_n_option_defs, false, textclf_load_fast),
	TEXTCLF_ARCH("accurate", cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs, true,
				 textclf_load_accurate),
	{&tasks[1], "bilstm_crf", cai_ner_option_defs, &cai_ner_n_option_defs, true, ner_train_memory, ner_train, ner_gradcheck, ner_load, ner_free, ner_memory, ner_n_types, ner_type,
	 ner_known_word, NULL, NULL, ner_tag, ner_tag_batch, ner_entities, ner_entities_batch},
	/* a pretrained encoder fine-tuned (transformer*.c): for both tasks, with the encoder in set->encoder */
	{&tasks[0], "transformer", cai_tf_textclf_option_defs, &cai_tf_textclf_n_option_defs, true, cai_tf_train_memory,
	 cai_tf_train, cai_tf_gradcheck, cai_tf_load, cai_tf_free, cai_tf_memory, cai_tf_n_labels, cai_tf_label,
	 cai_tf_known_word, cai_tf_classify, cai_tf_classify_batch, NULL, NULL, NULL, NULL, cai_tf_encoder, true},
	{&tasks[1], "transformer", cai_tf_ner_option_defs, &cai_tf_ner_n_option_defs, true, cai_tf_train_memory,
	 cai_tf_train, cai_tf_gradcheck, cai_tf_load, cai_tf_free, cai_tf_memory, cai_tf_n_labels, cai_tf_label,
	 cai_tf_known_word, NULL, NULL, cai_tf_tag, cai_tf_tag_batch, cai_tf_entities, cai_tf_entities_batch,
	 cai_tf_encoder},
	/* built by cai_tune from its best trials (ensemble.h), not trained: members run through the registry */
	{&tasks[0], "ensemble", NULL, &no_option_defs, true, NULL, NULL, NULL, cai_ensemble_load, cai_ensemble_free,
	 cai_ensemble_memory, cai_ensemble_n_labels, cai_ensemble_label, cai_ensemble_known_word, cai_ensemble_classify,
	 cai_ensemble_classify_batch, NULL, NULL, NULL, NULL, NULL},
	/* a vector set is not a runnable model: no gradient check, load or run functions */
	{&tasks[2], "skipgram", cai_vectors_option_defs, &cai_vectors_n_option_defs, false, vectors_train_memory,
	 vectors_train, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
	/* an imported encoder: no training, no run functions of a classifier or a tagger */
	{&tasks[3], "bert", NULL, &no_option_defs, true, NULL, NULL, NULL, cai_encoder_model_load, encoder_free,
	 encoder_memory, encoder_n_labels, encoder_label, encoder_known_word, NULL, NULL, NULL, NULL, NULL, NULL,
	 encoder_bundle},
};

#define N_ARCHS ((int) (sizeof(archs) / sizeof(archs[0])))

const cai_task *
cai_task_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < N_TASKS; i++)
	{
		if (strcasecmp(name, tasks[i].name) == 0)
			return &tasks[i];
		for (const char *const *a = tasks[i].aliases; *a != NULL; a++)
			if (strcasecmp(name, *a) == 0)
				return &tasks[i];
	}
	return NULL;
}

const cai_task *
cai_task_at(int i)
{
	return i >= 0 && i < N_TASKS ? &tasks[i] : NULL;
}

const cai_arch *
cai_arch_at(int i)
{
	return i >= 0 && i < N_ARCHS ? &archs[i] : NULL;
}

const cai_arch *
cai_arch_find(const char *task, const char *name)
{
	for (int i = 0; i < N_ARCHS; i++)
		if (strcmp(archs[i].task->name, task) == 0 && strcmp(archs[i].name, name) == 0)
			return &archs[i];
	return NULL;
}

cai_status
cai_task_parse_options(const cai_task *task, const char *json, const cai_arch **arch,
					   cai_options **out, cai_error *err)
{
	struct json_object *o = cai_json_parse_object(json);
	struct json_object *a;
	const char *name = task->default_arch;
	cai_status	st;

	*arch = NULL;
	*out = NULL;
	if (o != NULL && json_object_object_get_ex(o, "architecture", &a) && json_object_is_type(a, json_type_string))
		name = json_object_get_string(a);
	*arch = cai_arch_find(task->name, name);
	if (*arch == NULL)
	{
		char		valid[256] = "";
		size_t		used = 0;

		for (int i = 0; i < N_ARCHS; i++)
			if (archs[i].task == task && used < sizeof(valid))
				used += (size_t) snprintf(valid + used, sizeof(valid) - used, "%s%s", used > 0 ? ", " : "",
										  archs[i].name);
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown %s architecture \"%.64s\", valid architectures are: %s",
						   task->name, name, valid);
		json_object_put(o);
		return st;
	}
	json_object_put(o);
	if ((*arch)->train == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "%s %s models are not trained: %s", task->name, (*arch)->name,
							 task->kind == CAI_KIND_ENCODER ? "they are imported (cai_import_encoder)" :
							 "cai_tune builds them from its best trials (search key \"ensemble\")");
	return cai_options_parse((*arch)->options, *(*arch)->n_options, json, out, err);
}

/* Open OpenBLAS if architecture a multiplies matrices (src/core/blas.h). */
static cai_status
blas_ready(const cai_arch *a, cai_error *err)
{
	return a->uses_blas ? cai_blas_load(err) : CAI_OK;
}

/* Does set hold the training data of a's task kind? */
static bool
set_fits(const cai_arch *a, const cai_train_set *set)
{
	if (set == NULL)
		return false;
	return a->task->kind == CAI_KIND_TAG ? set->sentences != NULL : set->texts != NULL;
}

static cai_status
wrong_data(const cai_arch *a, cai_error *err)
{
	return cai_error_set(err, CAI_ERR_INVALID, "a %s model is trained from %s", a->task->name,
						 a->task->kind == CAI_KIND_CLASSIFY ? "texts with labels" :
						 a->task->kind == CAI_KIND_TAG ? "sentences of tagged tokens" : "texts");
}

cai_status
cai_arch_train(const cai_arch *a, const cai_options *opts, const cai_train_set *set,
			   const char *provenance_json, cai_progress_fn progress, void *progress_ctx,
			   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	cai_status	st;

	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	if (a->train == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "%s models are not trained: they are imported", a->task->name);
	if (!set_fits(a, set))
		return wrong_data(a, err);
	if ((st = blas_ready(a, err)) != CAI_OK)
		return st;
	return a->train(opts, set, provenance_json, progress, progress_ctx, model, model_len, metrics_json, err);
}

size_t
cai_arch_train_memory(const cai_arch *a, const cai_options *opts, const cai_train_set *set)
{
	return a->train_memory != NULL && set_fits(a, set) ? a->train_memory(opts, set) : 0;
}

cai_status
cai_arch_gradcheck(const cai_arch *a, const cai_options *opts, const cai_train_set *set, int samples,
				   double *max_rel_err, cai_error *err)
{
	cai_status	st;

	*max_rel_err = 0.0;
	if (!set_fits(a, set))
		return wrong_data(a, err);
	if ((st = blas_ready(a, err)) != CAI_OK)
		return st;
	if (a->gradcheck == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "%s %s has no gradient check", a->task->name, a->name);
	return a->gradcheck(opts, set, samples, max_rel_err, err);
}

cai_status
cai_arch_validation_mask(const cai_arch *a, const cai_options *opts, const cai_train_set *set, bool *is_valid,
						 cai_error *err)
{
	if (!set_fits(a, set))
		return wrong_data(a, err);
	if (a->task->kind == CAI_KIND_TAG)
		return cai_ner_validation_mask(set->sentences->n, opts, is_valid, err);
	if (a->task->kind == CAI_KIND_CLASSIFY)
		return cai_textclf_validation_mask(set->texts, cai_opt_float(opts, "validation_fraction"), set->n_labels,
										   cai_opt_split_seed(opts), is_valid, err);
	return cai_error_set(err, CAI_ERR_INVALID, "a %s model holds out no validation rows", a->task->name);
}

/* ------------------------------------------------------------------------
 * Loaded models
 * ------------------------------------------------------------------------ */

struct cai_model
{
	const cai_arch *arch;
	cai_model_file *mf;			/* tensors (views into the caller's buffer, or copies) */
	void	   *impl;			/* the architecture's loaded form */
};

/* The architecture named by validated metadata (format.c checked the keys are strings). */
static cai_status
find_arch(const char *meta_json, const cai_arch **out, cai_error *err)
{
	struct json_object *meta = cai_json_parse_object(meta_json);
	struct json_object *t;
	struct json_object *a;
	const char *task;
	const char *name;
	cai_status	st = CAI_OK;

	if (meta == NULL || !json_object_object_get_ex(meta, "task", &t) ||
		!json_object_object_get_ex(meta, "architecture", &a) ||
		!json_object_is_type(t, json_type_string) || !json_object_is_type(a, json_type_string))
	{
		json_object_put(meta);
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks a task or an architecture");
	}
	task = json_object_get_string(t);
	name = json_object_get_string(a);
	*out = cai_arch_find(task, name);
	if (*out == NULL)
	{
		const cai_task *known = NULL;

		for (int i = 0; i < N_TASKS && known == NULL; i++)
			if (strcmp(tasks[i].name, task) == 0)
				known = &tasks[i];
		if (known == NULL)
			st = cai_error_set(err, CAI_ERR_FORMAT, "unknown task \"%.64s\"", task);
		else
			st = cai_error_set(err, CAI_ERR_FORMAT,
							   "%s architecture \"%.64s\" is not supported by this build", task, name);
	}
	json_object_put(meta);
	return st;
}

cai_status
cai_model_load(const uint8_t *buf, size_t len, bool view, bool verify, cai_model **out, cai_error *err)
{
	cai_model  *m;
	cai_status	st;

	*out = NULL;
	m = cai_calloc(1, sizeof(cai_model));
	if (m == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
	if (view)
		st = cai_format_read_view(buf, len, verify, &m->mf, err);
	else
		st = cai_format_read(buf, len, &m->mf, err);
	if (st == CAI_OK)
		st = find_arch(m->mf->meta_json, &m->arch, err);
	if (st == CAI_OK && m->arch->load == NULL)
		st = cai_error_set(err, CAI_ERR_FORMAT, "a %s %s is not a model that runs", m->arch->task->name,
						   m->arch->name);
	if (st == CAI_OK)
		st = blas_ready(m->arch, err);
	if (st == CAI_OK)
		st = m->arch->load(m->mf, &m->impl, err);
	if (st != CAI_OK)
	{
		cai_model_free(m);
		return st;
	}
	*out = m;
	return CAI_OK;
}

void
cai_model_free(cai_model *m)
{
	if (m == NULL)
		return;
	if (m->impl != NULL)
		m->arch->free(m->impl);
	if (m->mf != NULL)
		cai_model_file_free(m->mf);
	cai_free(m);
}

const cai_arch *
cai_model_arch(const cai_model *m)
{
	return m->arch;
}

const char *
cai_model_task(const cai_model *m)
{
	return m->arch->task->name;
}

const char *
cai_model_architecture(const cai_model *m)
{
	return m->arch->name;
}

cai_task_kind
cai_model_kind(const cai_model *m)
{
	return m->arch->task->kind;
}

const char *
cai_model_meta_json(const cai_model *m)
{
	return m->mf->meta_json;
}

size_t
cai_model_memory(const cai_model *m)
{
	return m->arch->memory(m->impl);
}

int
cai_model_n_labels(const cai_model *m)
{
	return m->arch->n_labels(m->impl);
}

const char *
cai_model_label(const cai_model *m, int i)
{
	return m->arch->label(m->impl, i);
}

bool
cai_model_has_vocabulary(const cai_model *m)
{
	return m->arch->known_word != NULL;
}

bool
cai_model_known_word(const cai_model *m, const char *word, size_t len)
{
	return m->arch->known_word != NULL && m->arch->known_word(m->impl, word, len);
}

const cai_encoder_bundle *
cai_model_encoder_bundle(const cai_model *m)
{
	return m->arch->encoder != NULL ? m->arch->encoder(m->impl) : NULL;
}

static cai_status
wrong_kind(const cai_model *m, const char *what, cai_error *err)
{
	return cai_error_set(err, CAI_ERR_INVALID, "a %s model cannot %s", m->arch->task->name, what);
}

cai_status
cai_model_classify(const cai_model *m, const char *text, size_t len, float *probs, cai_error *err)
{
	if (m->arch->classify == NULL)
		return wrong_kind(m, "classify texts", err);
	return m->arch->classify(m->impl, text, len, probs, err);
}

cai_status
cai_model_classify_batch(const cai_model *m, const char *const *texts, const size_t *lens, size_t n,
						 float *probs, cai_error *err)
{
	if (m->arch->classify_batch == NULL)
		return wrong_kind(m, "classify texts", err);
	return m->arch->classify_batch(m->impl, texts, lens, n, probs, err);
}

cai_status
cai_model_tag(const cai_model *m, const char *const *tokens, const size_t *lens, size_t n,
			  const char **tags_out, float *scores, cai_error *err)
{
	if (m->arch->tag == NULL)
		return wrong_kind(m, "tag tokens", err);
	return m->arch->tag(m->impl, tokens, lens, n, tags_out, scores, err);
}

cai_status
cai_model_tag_batch(const cai_model *m, const cai_ner_data *data, const char **tags_out,
					float *scores, cai_error *err)
{
	if (m->arch->tag_batch == NULL)
		return wrong_kind(m, "tag tokens", err);
	return m->arch->tag_batch(m->impl, data, tags_out, scores, err);
}

cai_status
cai_model_entities(const cai_model *m, const char *text, size_t len, size_t max_tokens,
				   cai_entity **out, size_t *n_out, cai_error *err)
{
	if (m->arch->entities == NULL)
		return wrong_kind(m, "find entities", err);
	return m->arch->entities(m->impl, text, len, max_tokens, out, n_out, err);
}

cai_status
cai_model_entities_batch(const cai_model *m, const char *const *texts, const size_t *lens, size_t n,
						 size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err)
{
	if (m->arch->entities_batch == NULL)
		return wrong_kind(m, "find entities", err);
	return m->arch->entities_batch(m->impl, texts, lens, n, max_tokens, out, offsets, err);
}
