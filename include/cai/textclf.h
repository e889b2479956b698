/*
 * textclf.h: text classification (sentiment and any number of classes).
 *
 * Architectures (option "architecture"):
 *   fast      averaged embeddings of words, hashed word n-grams and character
 *             n-grams into a linear softmax (fastText-style); trains in seconds.
 *   accurate  a bidirectional encoder over word and character features with
 *             pooling (see textclf_accurate.c).
 *
 * Training takes all labelled rows; when no separate validation set is given
 * a stratified, seeded split of validation_fraction is held out.  The best
 * epoch on validation is kept.  The result is a serialized model (format.h)
 * and a metrics JSON object.
 */
#ifndef CAI_TEXTCLF_H
#define CAI_TEXTCLF_H

#include "cai/chunks.h"
#include "cai/common.h"
#include "cai/format.h"
#include "cai/options.h"

typedef struct cai_textclf cai_textclf;

/* Pretrained word vectors (cai/ner.h; a vector set gives them, cai/vectors.h). */
struct cai_word_vectors;

/*
 * Texts kept as token ids, to train on many rows in bounded memory: each
 * text is tokenized once, as it is read, as training reads it (the first
 * max_tokens tokens of at most max_tokens * TEXTCLF_BYTES_PER_TOKEN bytes,
 * see cai_textclf_tokens_add), and kept as the ids of its tokens in a table
 * of the distinct token strings (words; the training and validation rows
 * share one), so a row costs 8 bytes and 4 a token instead of its text.
 * Training from them with the same max_tokens gives the model that
 * training from the texts gives, byte for byte (a training whose
 * max_tokens differs is CAI_ERR_INVALID).
 */
#define TEXTCLF_BYTES_PER_TOKEN 32

#define TEXTCLF_TOKENS_CHUNK_BITS 20	/* ids a chunk holds: 2^20 (4 MB), more than max_tokens */

typedef struct cai_textclf_tokens
{
	cai_strtab *words;			/* the distinct tokens (shared, not owned) */
	int			max_tokens;
	size_t		n;				/* rows */
	size_t		cap;			/* rows off has room for */
	/*
	 * (n + 1) where each row starts: chunk << TEXTCLF_TOKENS_CHUNK_BITS |
	 * index in the chunk; off[n] is where the next row would start.  A row
	 * lies in one chunk; it ends where the next starts, or when that is in
	 * another chunk, at its chunk's fill.  Chunks are never moved, so
	 * reading grows the rows without copying them.
	 */
	int64_t    *off;
	int32_t   **chunks;			/* (n_chunks) word ids */
	uint32_t   *fill;			/* (n_chunks) ids in each chunk */
	size_t		n_chunks;
	size_t		chunks_cap;
	struct cai_token *scratch;	/* (scratch_cap) the tokens of the row being added */
	size_t		scratch_cap;
} cai_textclf_tokens;

/* The word ids of row i, *n of them. */
static inline const int32_t *
cai_textclf_tokens_row(const cai_textclf_tokens *t, size_t i, size_t *n)
{
	int64_t		a = t->off[i];
	int64_t		b = t->off[i + 1];
	size_t		c = (size_t) (a >> TEXTCLF_TOKENS_CHUNK_BITS);

	if ((size_t) (b >> TEXTCLF_TOKENS_CHUNK_BITS) != c)
		b = ((int64_t) c << TEXTCLF_TOKENS_CHUNK_BITS) + t->fill[c];
	*n = (size_t) (b - a);
	return t->chunks[c] + (a & (((int64_t) 1 << TEXTCLF_TOKENS_CHUNK_BITS) - 1));
}

/* Tokens of all the rows. */
static inline size_t
cai_textclf_tokens_count(const cai_textclf_tokens *t)
{
	size_t		k = 0;

	for (size_t c = 0; c < t->n_chunks; c++)
		k += t->fill[c];
	return k;
}

/* Empty rows of words (an initialized cai_strtab) for max_tokens (1 to 100000). */
cai_status	cai_textclf_tokens_init(cai_textclf_tokens *t, cai_strtab *words, int max_tokens, cai_error *err);
/* Append a text (len bytes, NULL only when len is 0) as a row of token ids. */
cai_status	cai_textclf_tokens_add(cai_textclf_tokens *t, const char *text, size_t len, cai_error *err);
void		cai_textclf_tokens_free(cai_textclf_tokens *t);	/* not the words; safe on a zeroed struct */
/* Bytes the rows hold (their arrays, not the words). */
size_t		cai_textclf_tokens_memory(const cai_textclf_tokens *t);

/*
 * Row i's tokens joined by single spaces, into *buf (cai_realloc'ed to
 * *cap bytes as needed): a text that tokenizes to the same tokens, for
 * what reads texts (scoring, drift references).  Its length, or (size_t)
 * -1 on out of memory.
 */
size_t		cai_textclf_tokens_text(const cai_textclf_tokens *t, size_t i, char **buf, size_t *cap);

/*
 * Labelled texts; labels are class indices in [0, n_labels).  The texts are
 * either texts / lens or, when tokens is not NULL, token ids (texts and lens
 * are then unused and may be NULL; the training and validation data of one
 * training must both be one or the other, with the same words).
 */
typedef struct cai_textclf_data
{
	size_t		n;
	const char *const *texts;	/* (n) UTF-8, not necessarily NUL-terminated */
	const size_t *lens;			/* (n) byte lengths */
	const int32_t *labels;		/* (n) */
	const cai_textclf_tokens *tokens;	/* (n rows) or NULL: the texts */
} cai_textclf_data;

/*
 * The option tables of the two architectures (documented in README), each
 * with the defaults that architecture uses.
 */
extern const cai_opt_def cai_textclf_fast_option_defs[];
extern const int cai_textclf_fast_n_option_defs;
extern const cai_opt_def cai_textclf_accurate_option_defs[];
extern const int cai_textclf_accurate_n_option_defs;

/*
 * Parse training options with the table of the architecture they name
 * ("architecture", default accurate): an option of the other architecture is
 * an error naming the valid ones.  NULL or "" json: accurate's defaults.
 */
cai_status	cai_textclf_parse_options(const char *json, cai_options **out, cai_error *err);

/*
 * Bytes the training would allocate (parameters, optimizer state, buffers);
 * vectors (may be NULL) as for cai_textclf_train.
 */
size_t		cai_textclf_train_memory(const cai_options *opts,
									 const cai_textclf_data *train, int n_labels,
									 const struct cai_word_vectors *vectors);

/*
 * Train.  valid may be NULL (then split from train).  provenance_json, when
 * not NULL, is a JSON object merged into the model metadata under
 * "provenance" (the SQL layer passes source, rows skipped, role, ...; and
 * "vectors": {name, version, checksum} of the vectors used).
 * On success *model (cai_malloc'ed) holds the serialized model and
 * *metrics_json (cai_malloc'ed) the validation metrics.
 *
 * vectors (may be NULL or empty: none) initialise the word embedding rows
 * of both architectures (accurate's ensemble member too): each vocabulary
 * word (a normalized, lower-cased token) takes the row of the first vector
 * word equal to it, else of the first whose normalized form equals it.
 * Their dimension is the embedding size: the option "dimensions" when set
 * must equal it (CAI_ERR_INVALID naming both), unset it follows the
 * vectors.  The metrics (and the model's) then hold "vector_coverage".
 */
cai_status	cai_textclf_train(const cai_options *opts,
							  const char *const *label_names, int n_labels,
							  const cai_textclf_data *train,
							  const cai_textclf_data *valid,
							  const struct cai_word_vectors *vectors,
							  const char *provenance_json,
							  cai_progress_fn progress, void *progress_ctx,
							  uint8_t **model, size_t *model_len,
							  char **metrics_json, cai_error *err);

/*
 * Self-test for the unit tests: set up training on train as the
 * architecture opts name would (its features, vocabulary and parameter
 * initialization; fast draws its output weights like its embeddings, as
 * training's zero start gives the embeddings no gradient) and compare the
 * gradient of the mean loss of a batch of training rows, dropout off, from
 * the training code's backward pass (for fast: the change of its SGD step
 * of rate 1) with central finite differences of the training code's loss
 * at `samples` entries of every parameter tensor (of embedding tables: of
 * the rows the batch uses).  *max_err gets the largest |analytic - numeric|
 * / max(|analytic| + |numeric|, 1e-3); see src/core/gradcheck.h for the
 * step, entries near a kink (max pooling) and tensors without a gradient.
 */
cai_status	cai_textclf_gradcheck(const cai_options *opts, int n_labels, const cai_textclf_data *train,
								  int samples, double *max_err, cai_error *err);

/*
 * Build an inference model from a validated model file (task text
 * classification).  The model uses mf's tensors in place (no copy): the
 * caller keeps mf, and the buffer of a cai_format_read_view, alive and
 * unchanged until cai_textclf_free.  Private memory (cai_textclf_memory) is
 * the labels and small structs; models written before the serialized
 * lookup tables and word vectors existed also get those built privately.
 * With mf->trusted the content scans are skipped (see format.h), so a load
 * is O(1) per tensor.  The model is never written after load: concurrent
 * predictions, in one process or many sharing a mapping, are safe.
 */
cai_status	cai_textclf_load(const cai_model_file *mf, cai_textclf **out, cai_error *err);
void		cai_textclf_free(cai_textclf *m);

int			cai_textclf_n_labels(const cai_textclf *m);
const char *cai_textclf_label(const cai_textclf *m, int i);

/*
 * The rows of train that training without a validation source holds out to
 * validate (is_valid, train->n entries): the stratified split of every
 * architecture for these options (validation_fraction, seed) and n_labels.
 */
cai_status	cai_textclf_validation_mask(const cai_textclf_data *train, double fraction, int n_labels,
										uint64_t seed, bool *is_valid, cai_error *err);

/*
 * Whether a word (one token of cai_tokenize) has a row of its own in the
 * model's vocabulary, normalized as the model's features normalize it (a
 * word outside it is seen only through its character n-grams).
 */
bool		cai_textclf_known_word(const cai_textclf *m, const char *word, size_t len);

/* Class probabilities for one text into probs (n_labels floats, summing to 1). */
cai_status	cai_textclf_predict(const cai_textclf *m, const char *text, size_t len,
								float *probs, cai_error *err);

/*
 * Class probabilities of n texts (texts[i], lens[i] bytes) into probs
 * (n, n_labels): the same as cai_textclf_predict row by row, up to float
 * rounding (1e-5).  The accurate architecture runs its network on batches
 * of texts of similar length (matrix products over the batch; scratch
 * bounded by the batch, not by n); the fast one predicts text by text.  An
 * error names the text ("text 12: ..."); probs is then undefined.
 */
cai_status	cai_textclf_predict_batch(const cai_textclf *m, const char *const *texts,
									  const size_t *lens, size_t n, float *probs, cai_error *err);

/* Bytes of memory the loaded model occupies (for cache accounting). */
size_t		cai_textclf_memory(const cai_textclf *m);

/*
 * Tests: with threads, the accurate model's training runs epoch 1's first
 * batches on a pool thread while the caller trains its fast model; n >= 0
 * makes it run exactly min(n, the epoch's batches) of them whatever the
 * timing (the caller waits), n < 0 (the default) as many as the fast
 * model's training lasts.  The model bytes do not depend on it.  Not
 * thread-safe.
 */
void		cai_textclf_accurate_early_batches(long n);

#endif							/* CAI_TEXTCLF_H */
