/*
 * model.h: one interface for every model architecture.
 *
 * A registry (model.c) lists the tasks and, for each, its architectures,
 * keyed by (task, architecture name) as stored in a model's metadata.  An
 * architecture gives a function table, like PostgreSQL's access methods or
 * CRFsuite's encoders: load from a validated model file (tensors used in
 * place), free, labels, memory and the run functions of its task's kind
 * (a classifier returns class probabilities; a tagger returns tags, their
 * marginals, and entities in raw text).
 *
 * Callers (the SQL layer, tools, tests) hold an opaque cai_model, made by
 * cai_model_load from model bytes, and never compare task or architecture
 * names themselves.  Adding an architecture: its own source files, one
 * cai_arch entry in the registry and one build line.
 *
 * Training goes through the same table (train, train_memory, and the
 * tests' gradcheck) with the data of the task's kind in a cai_train_set.  Still separate behind it: each
 * task's training loop (cai_textclf_train, cai_ner_train) and its features.
 */
#ifndef CAI_MODEL_H
#define CAI_MODEL_H

#include "cai/common.h"
#include "cai/format.h"
#include "cai/ner.h"
#include "cai/options.h"
#include "cai/textclf.h"

/* What a task's models do. */
typedef enum cai_task_kind
{
	CAI_KIND_CLASSIFY = 1,		/* text -> class probabilities */
	CAI_KIND_TAG = 2,			/* tokens -> one tag per token (and entities in raw text) */
	CAI_KIND_EMBED = 3,			/* unlabeled texts -> a word vector set (vectors.h), not a runnable model */
	CAI_KIND_ENCODER = 4		/* a pretrained encoder (encoder_model.h): imported, not trained; embeds texts */
} cai_task_kind;

/* A task: its canonical name, the names users may give it, its kind. */
typedef struct cai_task
{
	const char *name;			/* canonical, stored with every model: "text_classification", "ner" */
	const char *const *aliases; /* NULL-terminated, matched case-insensitively ("sentiment", ...) */
	cai_task_kind kind;
	const char *default_arch;	/* used when the options name none */
} cai_task;

/*
 * Training data of a task: for CAI_KIND_CLASSIFY texts with class indices
 * into label_names, for CAI_KIND_TAG sentences of tokens with tags; for
 * both, optional word vectors that initialise the word embeddings
 * (cai_textclf_train, cai_ner_train), and for architectures that fine-tune
 * one, a pretrained encoder.  valid_* may be NULL: a validation
 * split is then held out of the training data.
 */
typedef struct cai_train_set
{
	const cai_textclf_data *texts;
	const cai_textclf_data *valid_texts;
	const char *const *label_names;
	int			n_labels;
	const cai_ner_data *sentences;
	const cai_ner_data *valid_sentences;
	const cai_word_vectors *vectors;	/* may be NULL */
	const struct cai_encoder_bundle *encoder;	/* pretrained encoder to fine-tune (encoder_model.h); may be NULL */
} cai_train_set;

/* An architecture: the function table of one kind of model of a task. */
typedef struct cai_arch
{
	const cai_task *task;
	const char *name;			/* as stored in the metadata: "fast", "accurate", "bilstm_crf" */
	const cai_opt_def *options; /* its training options, with the defaults it uses */
	const int  *n_options;
	bool		uses_blas;		/* multiplies matrices: OpenBLAS is opened before load and train */

	/* bytes training would allocate (0 if the options or data are unusable) */
	size_t		(*train_memory) (const cai_options *opts, const cai_train_set *set);
	/* train: serialized model bytes and metrics JSON, both cai_malloc'ed */
	cai_status	(*train) (const cai_options *opts, const cai_train_set *set, const char *provenance_json,
						  cai_progress_fn progress, void *progress_ctx, uint8_t **model, size_t *model_len,
						  char **metrics_json, cai_error *err);
	/*
	 * gradient self-check (for the tests): the largest relative error of the
	 * training code's gradient of a batch of set's rows, dropout off, against
	 * central finite differences of its loss at samples entries of every
	 * parameter tensor (cai_textclf_gradcheck, cai_ner_gradcheck)
	 */
	cai_status	(*gradcheck) (const cai_options *opts, const cai_train_set *set, int samples,
							  double *max_rel_err, cai_error *err);

	cai_status	(*load) (const cai_model_file *mf, void **impl, cai_error *err);
	void		(*free) (void *impl);
	size_t		(*memory) (const void *impl);
	int			(*n_labels) (const void *impl);
	const char *(*label) (const void *impl, int i);
	/*
	 * vocabulary lookup (may be NULL: no vocabulary): whether a word, one
	 * token of cai_tokenize, has a row of its own, normalized as the
	 * architecture's features normalize it (for cai_model_observe)
	 */
	bool		(*known_word) (const void *impl, const char *word, size_t len);

	/* CAI_KIND_CLASSIFY: probs gets n_labels floats summing to 1 */
	cai_status	(*classify) (const void *impl, const char *text, size_t len, float *probs, cai_error *err);
	/* the same for n texts, probs (n, n_labels): classify row by row up to float rounding (1e-5) */
	cai_status	(*classify_batch) (const void *impl, const char *const *texts, const size_t *lens, size_t n,
								   float *probs, cai_error *err);

	/* CAI_KIND_TAG (see cai_ner_tag, cai_ner_tag_batch, cai_ner_entities) */
	cai_status	(*tag) (const void *impl, const char *const *tokens, const size_t *lens, size_t n,
						const char **tags_out, float *scores, cai_error *err);
	cai_status	(*tag_batch) (const void *impl, const cai_ner_data *data, const char **tags_out,
							  float *scores, cai_error *err);
	cai_status	(*entities) (const void *impl, const char *text, size_t len, size_t max_tokens,
							 cai_entity **out, size_t *n_out, cai_error *err);
	/* the entities of n texts: one array, text i's at out[offsets[i] .. offsets[i + 1]) (cai_ner_entities_batch) */
	cai_status	(*entities_batch) (const void *impl, const char *const *texts, const size_t *lens, size_t n,
								   size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err);

	/* the encoder the model holds (encoder_model.h), NULL when none (cai_model_encoder_bundle) */
	const struct cai_encoder_bundle *(*encoder) (const void *impl);
	/*
	 * CAI_KIND_CLASSIFY: trains on the raw texts (its own tokenizer), so a
	 * reader must keep them (cai_textclf_data.texts) rather than reduce the
	 * rows to cai_tokenize ids only
	 */
	bool		reads_texts;
} cai_arch;

/* The task named name (canonical or alias, any case); NULL if none. */
const cai_task *cai_task_find(const char *name);

/* Tasks and architectures of this build, for listings: i from 0 until NULL. */
const cai_task *cai_task_at(int i);
const cai_arch *cai_arch_at(int i);

/* The architecture (task, name); NULL if this build has none. */
const cai_arch *cai_arch_find(const char *task, const char *name);

/*
 * The architecture training options choose (their "architecture" key, else
 * the task's default) and the options parsed with its table.  An unknown
 * architecture is CAI_ERR_INVALID naming the valid ones; so is an option the
 * architecture does not have (see cai_options_parse).  *arch is set even when
 * parsing fails, if the architecture was found.
 */
cai_status	cai_task_parse_options(const cai_task *task, const char *json, const cai_arch **arch,
								   cai_options **out, cai_error *err);

/*
 * Train a model of architecture a (opts parsed with a->options, e.g. by
 * cai_task_parse_options); CAI_ERR_INVALID when set lacks the data of the
 * architecture's task kind, or a is not trained (an encoder is imported:
 * cai_task_parse_options refuses its task already).
 */
cai_status	cai_arch_train(const cai_arch *a, const cai_options *opts, const cai_train_set *set,
						   const char *provenance_json, cai_progress_fn progress, void *progress_ctx,
						   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err);
size_t		cai_arch_train_memory(const cai_arch *a, const cai_options *opts, const cai_train_set *set);

/*
 * The architecture's gradient check (see cai_arch.gradcheck); CAI_ERR_INVALID
 * when set lacks the data of its task kind.
 */
cai_status	cai_arch_gradcheck(const cai_arch *a, const cai_options *opts, const cai_train_set *set,
							   int samples, double *max_rel_err, cai_error *err);

/*
 * The training rows (of the task kind's data in set) that training with
 * opts holds out to validate when set has no validation data: is_valid gets
 * one flag per row (texts or sentences), as the architecture's trainer
 * splits them.  CAI_ERR_INVALID when set lacks the data of its task kind.
 */
cai_status	cai_arch_validation_mask(const cai_arch *a, const cai_options *opts, const cai_train_set *set,
									 bool *is_valid, cai_error *err);

typedef struct cai_model cai_model;

/*
 * A runnable model from model bytes.  With view = false the tensors are
 * copied (cai_format_read, checksum always verified); with view = true they
 * are used in place (cai_format_read_view, see format.h: buf must be aligned
 * and outlive the model; verify = false skips the checksum of bytes that were
 * validated before).  Unknown task or architecture: CAI_ERR_FORMAT.
 */
cai_status	cai_model_load(const uint8_t *buf, size_t len, bool view, bool verify,
						   cai_model **out, cai_error *err);
void		cai_model_free(cai_model *m);

const cai_arch *cai_model_arch(const cai_model *m);
const char *cai_model_task(const cai_model *m);
const char *cai_model_architecture(const cai_model *m);
cai_task_kind cai_model_kind(const cai_model *m);
const char *cai_model_meta_json(const cai_model *m);
size_t		cai_model_memory(const cai_model *m);

/* The model's labels: classes of a classifier, entity types of a tagger. */
int			cai_model_n_labels(const cai_model *m);
const char *cai_model_label(const cai_model *m, int i);

/* Run functions; CAI_ERR_INVALID naming the task when the model is of another kind. */
cai_status	cai_model_classify(const cai_model *m, const char *text, size_t len, float *probs,
							   cai_error *err);

/*
 * Class probabilities of n texts into probs (n, n_labels), equal to
 * cai_model_classify row by row up to float rounding (1e-5): for scoring
 * whole tables.  Architectures that multiply matrices run batches of texts
 * of similar length through one forward pass (scratch bounded by the batch,
 * not by n).  An error names the text ("text 12: ..."); probs is then
 * undefined.
 */
cai_status	cai_model_classify_batch(const cai_model *m, const char *const *texts, const size_t *lens,
									 size_t n, float *probs, cai_error *err);
cai_status	cai_model_tag(const cai_model *m, const char *const *tokens, const size_t *lens, size_t n,
						  const char **tags_out, float *scores, cai_error *err);
cai_status	cai_model_tag_batch(const cai_model *m, const cai_ner_data *data, const char **tags_out,
								float *scores, cai_error *err);
cai_status	cai_model_entities(const cai_model *m, const char *text, size_t len, size_t max_tokens,
							   cai_entity **out, size_t *n_out, cai_error *err);

/*
 * Entities of n texts in one call, equal to cai_model_entities text by text
 * (scores up to float rounding, 1e-6): for scoring whole tables.  The
 * sentences of all the texts are tagged together in batches of similar
 * length.  *out is one cai_malloc'ed array (NULL when empty, the caller
 * cai_free's it); offsets, n + 1 entries owned by the caller, gets the
 * entities of text i at (*out)[offsets[i] .. offsets[i + 1]).  An error of a
 * text names it ("text 12: ..."); *out is then NULL.  See
 * cai_ner_entities_batch.
 */
cai_status	cai_model_entities_batch(const cai_model *m, const char *const *texts, const size_t *lens,
									 size_t n, size_t max_tokens, cai_entity **out, size_t *offsets,
									 cai_error *err);

/*
 * What a model makes of inputs, whatever its architecture (observe.c): for
 * drift monitoring, the same observation on the validation rows at training
 * and on new rows later.  Inputs are raw texts (tokenized by cai_tokenize)
 * or sentences of tokens (a classifier reads them joined by spaces).
 * Predictions are one per input for a classifier (its class), one per token
 * for a tagger (the entity type of its tag, or "outside" for O), each with
 * its probability (the class probability, the tag's marginal).
 */
typedef struct cai_observation
{
	size_t		n;				/* inputs */
	int32_t    *tokens;			/* (n) tokens of each input */
	int32_t    *unseen;			/* (n) of them the vocabulary lacks; NULL: the architecture has no vocabulary lookup */
	size_t		n_out;			/* predictions */
	int32_t    *category;		/* (n_out) 0 .. cai_model_n_categories - 1 */
	float	   *confidence;		/* (n_out) */
} cai_observation;

/* Categories of predictions: the labels, then for a tagger "O" (outside any entity). */
int			cai_model_n_categories(const cai_model *m);
const char *cai_model_category(const cai_model *m, int i);

/* Whether the model has a vocabulary (cai_arch.known_word), and whether it holds a word (false without one). */
bool		cai_model_has_vocabulary(const cai_model *m);
bool		cai_model_known_word(const cai_model *m, const char *word, size_t len);

/* Observe n raw texts, or sentences; *out (zeroed first) is freed with cai_observation_free, also on error. */
cai_status	cai_model_observe_texts(const cai_model *m, const char *const *texts, const size_t *lens, size_t n,
									cai_observation *out, cai_error *err);
cai_status	cai_model_observe_sentences(const cai_model *m, const cai_ner_data *data, cai_observation *out,
										cai_error *err);
void		cai_observation_free(cai_observation *o);

#endif							/* CAI_MODEL_H */
