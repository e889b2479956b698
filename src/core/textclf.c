/*
 * textclf.c: text classification, the public entry points (cai/textclf.h):
 * the option table of each architecture and cai_textclf_parse_options, the
 * checks of labels and rows, and the dispatch to the two architectures,
 * fast (textclf_fast.c, textclf_fast_train.c) and accurate
 * (textclf_accurate.c, textclf_accurate_train.c) through their entry points
 * in textclf_internal.h.
 */
#include "cai/textclf.h"
#include "textclf_internal.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "modelutil.h"

/* ---------------------------------------------------------------------- */
/* Options                                                                */
/* ---------------------------------------------------------------------- */

#define TEXTCLF_MAX_LABELS		100000

/*
 * One option table per architecture, each with the defaults that
 * architecture really uses; an option an architecture does not use is not
 * in its table (so passing it is an error naming the valid ones).  The keys
 * the SQL layer reads (architecture, seed, validation_source, deploy,
 * max_seconds, patience, epochs) are in both.
 */
#define TEXTCLF_OPT_ARCHITECTURE(dflt) \
	{"architecture", CAI_OPT_STRING, dflt, 0, 0, "fast|accurate", \
	"model: fast (averaged word, word n-gram and character n-gram embeddings, trains in seconds) or accurate (word and character n-gram embeddings into a bidirectional LSTM with max and mean pooling, ensembled with a fast model; trains in minutes)"}
#define TEXTCLF_OPT_WORD_VECTORS \
	{"word_vectors", CAI_OPT_STRING, NULL, 0, 0, NULL, \
	"pretrained word vectors (a vector set, resolved by the SQL layer) that initialise the embeddings of the words they have (exact word, else lower-cased); the rest start random"}
#define TEXTCLF_OPT_VECTOR_WORDS(dflt) \
	{"vector_words", CAI_OPT_INT, dflt, 0, 100000000.0, NULL, \
	"with word_vectors: also give vocabulary rows to up to this many vector words (in the set's order, most frequent first in the common sets) that the training rows lack, so that texts classified later keep the vectors of words never seen in training (0 = training words only)"}
#define TEXTCLF_OPT_COMMON \
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL, \
	"random seed: the same data, options and seed give the same model"}, \
	{"validation_seed", CAI_OPT_INT, "-1", -1, 2147483647.0, NULL, \
	"seed of the validation split when no validation rows are given (-1 = seed): trainings with other seeds then hold out the same rows, as cai_tune's \"seeds\" trials do"}, \
	{"validation_fraction", CAI_OPT_FLOAT, "0.1", 0.0, 0.5, NULL, \
	"fraction of the rows held out (stratified) for validation when no validation rows are given; 0: every row trains, the last epoch is kept and only it is scored (on the training rows: every k-th of them beyond 100,000, the metrics' n says how many)"}, \
	{"validation_source", CAI_OPT_STRING, "", 0, 0, NULL, \
	"where validation rows come from (used by the SQL layer)"}, \
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL, \
	"stop training after this many seconds, keeping the best epoch so far (0 = no limit)"}, \
	{"deploy", CAI_OPT_STRING, "auto", 0, 0, "auto|always|never", \
	"whether the new model replaces the deployed one (used by the SQL layer)"}, \
	{"min_count", CAI_OPT_INT, "1", 1, 1000000, NULL, \
	"minimum number of occurrences for a word to get its own vocabulary row"}, \
	{"minn", CAI_OPT_INT, "3", 0, 10, NULL, \
	"shortest character n-gram (0 = no character n-grams)"}, \
	{"maxn", CAI_OPT_INT, "5", 0, 10, NULL, \
	"longest character n-gram (0 = no character n-grams)"}, \
	{"buckets", CAI_OPT_INT, "2000000", 1, TEXTCLF_MAX_BUCKETS, NULL, \
	"hash buckets for word and character n-grams (only buckets seen in training are stored)"}, \
	{"max_tokens", CAI_OPT_INT, "512", 1, 100000, NULL, \
	"tokens of a text that are used (from at most 32 bytes per token); the rest is ignored"}, \
	{"patience", CAI_OPT_INT, "3", 0, 1000, NULL, \
	"stop after this many epochs in which neither the validation score got better nor the validation loss fell below its lowest (0 = never stop early)"}

const cai_opt_def cai_textclf_fast_option_defs[] = {
	TEXTCLF_OPT_ARCHITECTURE("fast"),
	{"epochs", CAI_OPT_INT, "0", 0, 1000, NULL,
	"passes over the training rows; 0 = automatic (5, more for small data sets so that training makes at least 100000 row updates, at most 50 passes)",
	{CAI_TUNE_LINEAR, 3, 27}},
	{"learning_rate", CAI_OPT_FLOAT, "0.1", 1e-6, 10.0, NULL,
	"initial learning rate of SGD, updating after every row and decaying linearly to 0",
	{CAI_TUNE_LOG, 0.05, 1.0}},
	{"dimensions", CAI_OPT_INT, "48", 2, TEXTCLF_MAX_DIM, NULL,
	"embedding size (48: a row of 192 bytes fills three whole cache lines); with word_vectors the vectors' size (when set, it must equal it)",
	{CAI_TUNE_LOG, 16, 128}},
	TEXTCLF_OPT_WORD_VECTORS,
	TEXTCLF_OPT_VECTOR_WORDS("100000"),
	{"dropout", CAI_OPT_FLOAT, "0", 0.0, 0.9, NULL,
	"probability of dropping each input feature while training",
	{CAI_TUNE_LINEAR, 0.0, 0.5}},
	{"weight_decay", CAI_OPT_FLOAT, "5e-5", 0.0, 0.1, NULL,
	"L2 weight decay: every row's step also multiplies all parameters by 1 - learning_rate * weight_decay (their product at most 0.5), so that the weights stop growing when rows are seen many times (long trainings, repeated rows); 0 = none (the models of versions before 0.2.0)",
	{CAI_TUNE_LOG, 1e-6, 3e-4}},
	{"word_ngrams", CAI_OPT_INT, "2", 1, 5, NULL,
	"longest word n-gram used as a feature (1 = words only)",
	{CAI_TUNE_LINEAR, 1, 3}},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"training threads: more than 1 updates the shared parameters lock-free (Hogwild, as fastText): faster, not reproducible bit for bit; 1 (sequential) gives the same model for the same seed"},
	TEXTCLF_OPT_COMMON,
};
const int	cai_textclf_fast_n_option_defs = sizeof(cai_textclf_fast_option_defs) / sizeof(cai_textclf_fast_option_defs[0]);

const cai_opt_def cai_textclf_accurate_option_defs[] = {
	TEXTCLF_OPT_ARCHITECTURE("accurate"),
	{"epochs", CAI_OPT_INT, "0", 0, 1000, NULL,
	"passes over the training rows; 0 = automatic (enough passes for 250000 row updates, 4 to 30)",
	{CAI_TUNE_LINEAR, 1, 9}},
	{"learning_rate", CAI_OPT_FLOAT, "0.003", 1e-6, 10.0, NULL,
	"initial learning rate of Adam, decaying linearly to a tenth",
	{CAI_TUNE_LOG, 0.001, 0.01}},
	{"batch_size", CAI_OPT_INT, "32", 1, 4096, NULL,
	"rows per update (fewer for long texts)",
	{CAI_TUNE_LOG, 16, 64}},
	{"dimensions", CAI_OPT_INT, "64", 2, TEXTCLF_MAX_DIM, NULL,
	"embedding size, also the LSTM units per direction; with word_vectors the vectors' size (when set, it must equal it)",
	{CAI_TUNE_LOG, 32, 128}},
	TEXTCLF_OPT_WORD_VECTORS,
	TEXTCLF_OPT_VECTOR_WORDS("100000"),
	{"freeze_vectors", CAI_OPT_BOOL, "false", 0, 0, NULL,
	"with word_vectors: keep the word rows the vectors initialise fixed (true) or fine-tune them (false); the ensemble's fast model always fine-tunes"},
	{"dropout", CAI_OPT_FLOAT, "0.5", 0.0, 0.9, NULL,
	"dropout of the pooled features; words are replaced by the unknown-word vector with half this probability",
	{CAI_TUNE_LINEAR, 0.2, 0.6}},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"training threads: each batch is split over them (data parallel, BLAS single-threaded in each), gradients summed in a fixed order; the same seed and threads give the same model (the ensemble's fast model trains on 1 thread, the calling one, while a pool thread begins epoch 1)"},
	TEXTCLF_OPT_COMMON,
};
const int	cai_textclf_accurate_n_option_defs = sizeof(cai_textclf_accurate_option_defs) / sizeof(cai_textclf_accurate_option_defs[0]);

/* The table of the architecture named in json (default accurate); NULL if unknown. */
static const cai_opt_def *
textclf_defs_for(const char *json, int *n, const char **arch_out)
{
	struct json_object *o = cai_json_parse_object(json);
	struct json_object *a;
	const char *arch = "accurate";
	const cai_opt_def *defs = NULL;

	if (o != NULL && json_object_object_get_ex(o, "architecture", &a) && json_object_is_type(a, json_type_string))
		arch = json_object_get_string(a);
	if (strcmp(arch, "fast") == 0)
	{
		defs = cai_textclf_fast_option_defs;
		*n = cai_textclf_fast_n_option_defs;
		arch = "fast";
	}
	else if (strcmp(arch, "accurate") == 0)
	{
		defs = cai_textclf_accurate_option_defs;
		*n = cai_textclf_accurate_n_option_defs;
		arch = "accurate";
	}
	*arch_out = arch;
	json_object_put(o);
	return defs;
}

cai_status
cai_textclf_parse_options(const char *json, cai_options **out, cai_error *err)
{
	int			n = 0;
	const char *arch;
	const cai_opt_def *defs = textclf_defs_for(json, &n, &arch);

	if (defs == NULL)
	{
		/* an invalid architecture value: let the accurate table name the choices */
		return cai_options_parse(cai_textclf_accurate_option_defs, cai_textclf_accurate_n_option_defs,
								 json, out, err);
	}
	return cai_options_parse(defs, n, json, out, err);
}

/* ---------------------------------------------------------------------- */
/* The loaded model                                                       */
/* ---------------------------------------------------------------------- */

typedef enum TextclfArch
{
	TEXTCLF_FAST = 0,			/* textclf_fast.c */
	TEXTCLF_ACCURATE = 1		/* textclf_accurate.c */
} TextclfArch;

/* Names as stored in the metadata, by TextclfArch. */
static const char *const textclf_arch_names[] = {"fast", "accurate"};

#define TEXTCLF_N_ARCHS 2

struct cai_textclf
{
	TextclfArch arch;
	int			n_labels;
	char	  **labels;			/* (n_labels) */
	size_t		memory;
	cai_textclf_fast *fast;
	cai_textclf_accurate *acc;
};

/* ---------------------------------------------------------------------- */
/* Public inference API                                                   */
/* ---------------------------------------------------------------------- */

void
cai_textclf_free(cai_textclf *m)
{
	if (m == NULL)
		return;
	if (m->labels != NULL)
	{
		for (int i = 0; i < m->n_labels; i++)
			cai_free(m->labels[i]);
		cai_free(m->labels);
	}
	cai_textclf_fast_free(m->fast);
	cai_textclf_accurate_free(m->acc);
	cai_free(m);
}

int
cai_textclf_n_labels(const cai_textclf *m)
{
	return m != NULL ? m->n_labels : 0;
}

const char *
cai_textclf_label(const cai_textclf *m, int i)
{
	if (m == NULL || i < 0 || i >= m->n_labels)
		return NULL;
	return m->labels[i];
}

bool
cai_textclf_known_word(const cai_textclf *m, const char *word, size_t len)
{
	if (m == NULL || word == NULL)
		return false;
	switch (m->arch)
	{
		case TEXTCLF_FAST:
			return cai_textclf_fast_known_word(m->fast, word, len);
		case TEXTCLF_ACCURATE:
			return cai_textclf_accurate_known_word(m->acc, word, len);
	}
	return false;
}

size_t
cai_textclf_memory(const cai_textclf *m)
{
	return m != NULL ? m->memory : 0;
}

cai_status
cai_textclf_predict(const cai_textclf *m, const char *text, size_t len,
					float *probs, cai_error *err)
{
	if (m == NULL || probs == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model and output are required");
	switch (m->arch)
	{
		case TEXTCLF_FAST:
			return cai_textclf_fast_predict(m->fast, m->n_labels, text, len, probs, err);
		case TEXTCLF_ACCURATE:
			return cai_textclf_accurate_predict(m->acc, text, len, probs, err);
	}
	return cai_error_set(err, CAI_ERR_INTERNAL, "unknown architecture %d", (int) m->arch);
}

cai_status
cai_textclf_predict_batch(const cai_textclf *m, const char *const *texts, const size_t *lens,
						  size_t n, float *probs, cai_error *err)
{
	if (m == NULL || (n > 0 && (texts == NULL || lens == NULL || probs == NULL)))
		return cai_error_set(err, CAI_ERR_INVALID, "model, texts, lengths and output are required");
	switch (m->arch)
	{
		case TEXTCLF_FAST:
			for (size_t i = 0; i < n; i++)
			{
				cai_error	e2 = {0};

				if (cai_textclf_fast_predict(m->fast, m->n_labels, texts[i], lens[i],
											 probs + i * (size_t) m->n_labels, &e2) != CAI_OK)
					return cai_error_set(err, e2.status, "text %zu: %s", i, e2.msg);
			}
			return CAI_OK;
		case TEXTCLF_ACCURATE:
			return cai_textclf_accurate_predict_batch(m->acc, texts, lens, n, probs, err);
	}
	return cai_error_set(err, CAI_ERR_INTERNAL, "unknown architecture %d", (int) m->arch);
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

/*
 * Load a model of architecture want (its metadata must say so), or of the
 * architecture its metadata names when want is -1.
 */
static cai_status
textclf_load(const cai_model_file *mf, int want, cai_textclf **out, cai_error *err)
{
	json_object *meta = NULL;
	json_object *v;
	json_object *labels;
	cai_textclf *m = NULL;
	const char *arch;
	size_t		n_labels;
	size_t		mem = 0;
	cai_status	st;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is NULL");
	*out = NULL;
	if (mf == NULL || mf->meta_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model file is NULL");
	meta = json_tokener_parse(mf->meta_json);
	if (meta == NULL || !json_object_is_type(meta, json_type_object))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata is not a JSON object");
		goto done;
	}
	if (!json_object_object_get_ex(meta, "task", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "text_classification") != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model is not a text classification model");
		goto done;
	}
	if (!json_object_object_get_ex(meta, "labels", &labels) ||
		!json_object_is_type(labels, json_type_array))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"labels\"");
		goto done;
	}
	n_labels = json_object_array_length(labels);
	if (n_labels < 2 || n_labels > TEXTCLF_MAX_LABELS)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model has %zu labels (must be 2 to %d)",
						   n_labels, TEXTCLF_MAX_LABELS);
		goto done;
	}

	m = cai_calloc(1, sizeof(cai_textclf));
	if (m == NULL || (m->labels = cai_calloc(n_labels, sizeof(char *))) == NULL)
	{
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
		goto done;
	}
	m->n_labels = (int) n_labels;
	m->memory = sizeof(cai_textclf) + n_labels * sizeof(char *);
	for (size_t i = 0; i < n_labels; i++)
	{
		json_object *l = json_object_array_get_idx(labels, i);

		if (!json_object_is_type(l, json_type_string))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model label %zu is not a string", i);
			goto done;
		}
		m->labels[i] = cai_strndup(json_object_get_string(l), (size_t) json_object_get_string_len(l));
		if (m->labels[i] == NULL)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
			goto done;
		}
		m->memory += (size_t) json_object_get_string_len(l) + 1;
	}

	if (!json_object_object_get_ex(meta, "architecture", &v) || !json_object_is_type(v, json_type_string))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"architecture\"");
		goto done;
	}
	arch = json_object_get_string(v);
	for (int a = 0; a < TEXTCLF_N_ARCHS && want < 0; a++)
		if (strcmp(arch, textclf_arch_names[a]) == 0)
			want = a;
	if (want < 0 || strcmp(arch, textclf_arch_names[want]) != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT,
						   want < 0 ? "text classification architecture \"%.64s\" is not supported by this build" :
						   "model is a \"%.64s\" text classification model, not \"%s\"",
						   arch, want < 0 ? "" : textclf_arch_names[want]);
		goto done;
	}
	m->arch = (TextclfArch) want;
	if (m->arch == TEXTCLF_FAST)
		st = cai_textclf_fast_load(mf, meta, m->n_labels, &m->fast, &mem, err);
	else
		st = cai_textclf_accurate_load(mf, meta, m->n_labels, &m->acc, &mem, err);
	m->memory += mem;

done:
	json_object_put(meta);
	if (st == CAI_OK)
		*out = m;
	else
		cai_textclf_free(m);
	return st;
}

cai_status
cai_textclf_load(const cai_model_file *mf, cai_textclf **out, cai_error *err)
{
	return textclf_load(mf, -1, out, err);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_load_fast(const cai_model_file *mf, cai_textclf **out, cai_error *err)
{
	return textclf_load(mf, TEXTCLF_FAST, out, err);
}

/* See textclf_internal.h. */
cai_status
cai_textclf_load_accurate(const cai_model_file *mf, cai_textclf **out, cai_error *err)
{
	return textclf_load(mf, TEXTCLF_ACCURATE, out, err);
}

/* ---------------------------------------------------------------------- */
/* Training                                                               */
/* ---------------------------------------------------------------------- */

static int
cmp_strptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Label names present and distinct (sorted copy: n log n). */
static cai_status
check_label_names(const char *const *names, int n, cai_error *err)
{
	const char **sorted;
	cai_status	st = CAI_OK;

	for (int c = 0; c < n; c++)
		if (names[c] == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "label name %d is missing", c);
	sorted = cai_malloc(sizeof(char *) * (size_t) n);
	if (sorted == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory checking label names");
	memcpy(sorted, names, sizeof(char *) * (size_t) n);
	qsort(sorted, (size_t) n, sizeof(char *), cmp_strptr);
	for (int c = 1; c < n && st == CAI_OK; c++)
		if (strcmp(sorted[c - 1], sorted[c]) == 0)
			st = cai_error_set(err, CAI_ERR_INVALID, "duplicate label name \"%s\"", sorted[c]);
	cai_free(sorted);
	return st;
}

/* Validate a data set's shape and labels. */
static cai_status
check_data(const cai_textclf_data *d, int n_labels, const char *what, cai_error *err)
{
	if (d->tokens != NULL ? d->tokens->n != d->n || d->tokens->words == NULL :
		d->n > 0 && (d->texts == NULL || d->lens == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "%s rows lack texts, lengths or token ids", what);
	if (d->n > 0 && d->labels == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "%s rows lack labels", what);
	if (d->n >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many %s rows (%zu)", what, d->n);
	for (size_t i = 0; i < d->n; i++)
	{
		if (d->labels[i] < 0 || d->labels[i] >= n_labels)
			return cai_error_set(err, CAI_ERR_INVALID, "%s row %zu has label %d, out of range [0, %d)",
								 what, i, (int) d->labels[i], n_labels);
		if (d->tokens == NULL && d->texts[i] == NULL && d->lens[i] > 0)
			return cai_error_set(err, CAI_ERR_INVALID, "%s row %zu has no text", what, i);
	}
	return CAI_OK;
}

/* Pretrained vectors usable (when there are any): words, lengths and finite values. */
static cai_status
check_vectors(const cai_word_vectors *vec, cai_error *err)
{
	if (vec == NULL || vec->n == 0)
		return CAI_OK;
	if (vec->dim < 1 || vec->dim > TEXTCLF_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "word vectors have %d dimensions (must be 1 to %d)",
							 vec->dim, TEXTCLF_MAX_DIM);
	if (vec->words == NULL || vec->lens == NULL || vec->vectors == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "word vectors lack words or values");
	if (!cai_all_finite(vec->vectors, vec->n * (size_t) vec->dim))
		return cai_error_set(err, CAI_ERR_INVALID, "word vectors hold NaN or infinity");
	return CAI_OK;
}

size_t
cai_textclf_train_memory(const cai_options *opts, const cai_textclf_data *train, int n_labels,
						 const cai_word_vectors *vectors)
{
	if (opts != NULL && cai_opt_string(opts, "architecture") != NULL &&
		strcmp(cai_opt_string(opts, "architecture"), "accurate") == 0)
		return cai_textclf_accurate_train_memory(opts, train, n_labels, vectors);
	return cai_textclf_fast_train_memory(opts, train, n_labels, vectors);
}

cai_status
cai_textclf_train(const cai_options *opts,
				  const char *const *label_names, int n_labels,
				  const cai_textclf_data *train,
				  const cai_textclf_data *valid,
				  const cai_word_vectors *vectors,
				  const char *provenance_json,
				  cai_progress_fn progress, void *progress_ctx,
				  uint8_t **model, size_t *model_len,
				  char **metrics_json, cai_error *err)
{
	cai_options *own = NULL;
	json_object *prov = NULL;
	const char *arch;
	cai_status	st;

	if (model == NULL || model_len == NULL || metrics_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	if (train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "no training rows");
	if (n_labels < 2)
		return cai_error_set(err, CAI_ERR_INVALID, "need at least two classes");
	if (n_labels > TEXTCLF_MAX_LABELS)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many classes (%d, at most %d)",
							 n_labels, TEXTCLF_MAX_LABELS);
	if (label_names == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "label names are required");
	if ((st = check_label_names(label_names, n_labels, err)) != CAI_OK)
		return st;
	if ((st = check_data(train, n_labels, "training", err)) != CAI_OK)
		return st;
	if (valid != NULL && (st = check_data(valid, n_labels, "validation", err)) != CAI_OK)
		return st;
	if (valid != NULL && (valid->tokens == NULL) != (train->tokens == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "training and validation rows must both be texts or both token ids");
	if ((st = check_vectors(vectors, err)) != CAI_OK)
		return st;
	if (opts == NULL)
	{
		st = cai_textclf_parse_options(NULL, &own, err);
		if (st != CAI_OK)
			return st;
		opts = own;
	}
	if (provenance_json != NULL && provenance_json[0] != '\0')
	{
		prov = cai_json_parse_object(provenance_json);
		if (prov == NULL)
		{
			st = cai_error_set(err, CAI_ERR_INVALID, "provenance must be a JSON object");
			goto done;
		}
	}
	else if ((prov = json_object_new_object()) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}

	arch = cai_opt_string(opts, "architecture");
	if (arch == NULL || strcmp(arch, "fast") == 0)
		st = cai_textclf_fast_train(opts, label_names, n_labels, train, valid, vectors, prov, progress,
									progress_ctx, model, model_len, metrics_json, err);
	else if (strcmp(arch, "accurate") == 0)
		st = cai_textclf_accurate_train(opts, label_names, n_labels, train, valid, vectors, prov,
										progress, progress_ctx, model, model_len, metrics_json, err);
	else
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown architecture \"%s\"", arch);

done:
	json_object_put(prov);
	cai_options_free(own);
	return st;
}

cai_status
cai_textclf_gradcheck(const cai_options *opts, int n_labels, const cai_textclf_data *train,
					  int samples, double *max_err, cai_error *err)
{
	cai_grad_probe probe;
	const char *arch;
	cai_status	st;

	*max_err = 0.0;
	if (opts == NULL || train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "options and training rows are required");
	if (n_labels < 2 || n_labels > TEXTCLF_MAX_LABELS)
		return cai_error_set(err, CAI_ERR_INVALID, "need 2 to %d classes", TEXTCLF_MAX_LABELS);
	if ((st = check_data(train, n_labels, "training", err)) != CAI_OK)
		return st;
	arch = cai_opt_string(opts, "architecture");
	if (arch == NULL || strcmp(arch, "fast") == 0)
		st = cai_textclf_fast_grad_probe(opts, n_labels, train, &probe, err);
	else if (strcmp(arch, "accurate") == 0)
		st = cai_textclf_accurate_grad_probe(opts, n_labels, train, &probe, err);
	else
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown architecture \"%s\"", arch);
	if (st != CAI_OK)
		return st;
	st = cai_gradcheck_compare(&probe, samples, max_err, err);
	probe.free(probe.ctx);
	return st;
}
