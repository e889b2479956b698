/*
 * ner.h: token classification (named-entity recognition).
 *
 * Model: word embeddings learned from the data (optionally initialised from
 * user vectors), character features for unseen words, casing features,
 * dropout, a bidirectional LSTM, a linear layer to tag scores and a
 * linear-chain CRF decoded by Viterbi restricted to valid transitions.
 *
 * Tags: training accepts IOB1, IOB2 (BIO) and BIOES with any entity type
 * names (detected, or set by the "tag_scheme" option); inference always
 * returns IOB2.
 */
#ifndef CAI_NER_H
#define CAI_NER_H

#include "cai/common.h"
#include "cai/format.h"
#include "cai/options.h"
#include "cai/tokenize.h"

typedef struct cai_ner cai_ner;

/*
 * Sentences of tokens with one tag per token.  Tokens and tags are given
 * either as strings (tokens and token_lens, tags) or, more compactly for
 * millions of tokens, as ids into lists of the distinct strings (token_ids
 * into strings and string_lens; tag_ids into tag_names), 4 and 2 bytes a
 * token instead of 24.  The ids are read only where the strings are NULL
 * (tokens, tags), so data that sets the first five fields, with positional
 * initializers or one by one, keeps working whatever the others hold.
 * Every function taking cai_ner_data reads either form.
 */
typedef struct cai_ner_data
{
	size_t		n;				/* sentences */
	const int64_t *offsets;		/* (n + 1) index of each sentence's first token */
	const char *const *tokens;	/* (offsets[n]) UTF-8 tokens */
	const size_t *token_lens;	/* (offsets[n]) byte lengths */
	const char *const *tags;	/* (offsets[n]) tag strings (NULL in inference-only data) */
	const uint16_t *tag_ids;	/* (offsets[n]) or NULL: index in tag_names of each token's tag */
	const char *const *tag_names;	/* (n_tag_names) the distinct tags, for tag_ids */
	size_t		n_tag_names;
	const int32_t *token_ids;	/* (offsets[n]) or NULL: index in strings of each token (tokens NULL) */
	const char *const *strings;	/* (n_strings) the distinct tokens, for token_ids */
	const size_t *string_lens;	/* (n_strings) */
	size_t		n_strings;
} cai_ner_data;

/* Whether d gives its tokens as ids (tokens NULL, token_ids set). */
static inline bool
cai_ner_data_token_ids(const cai_ner_data *d)
{
	return d->tokens == NULL && d->token_ids != NULL;
}

/* Whether d gives its tags as ids (tags NULL, tag_ids and tag_names set). */
static inline bool
cai_ner_data_tag_ids(const cai_ner_data *d)
{
	return d->tags == NULL && d->tag_ids != NULL && d->tag_names != NULL;
}

/* Token k of d and its byte length ("" for a NULL token; d checked first: ids in range). */
static inline const char *
cai_ner_data_token(const cai_ner_data *d, int64_t k, size_t *len)
{
	const char *s;

	if (cai_ner_data_token_ids(d))
	{
		*len = d->string_lens[d->token_ids[k]];
		s = d->strings[d->token_ids[k]];
	}
	else
	{
		*len = d->token_lens[k];
		s = d->tokens[k];
	}
	return s != NULL ? s : "";
}

/* Whether d has tags (as strings or as ids). */
static inline bool
cai_ner_data_has_tags(const cai_ner_data *d)
{
	return d->tags != NULL || cai_ner_data_tag_ids(d);
}

/* The tag string of token k of d (NULL when d has no tags; ids are checked by the trainers first). */
static inline const char *
cai_ner_data_tag(const cai_ner_data *d, int64_t k)
{
	if (d->tags != NULL)
		return d->tags[k];
	return cai_ner_data_tag_ids(d) && d->tag_ids[k] < d->n_tag_names ? d->tag_names[d->tag_ids[k]] : NULL;
}

extern const cai_opt_def cai_ner_option_defs[];
extern const int cai_ner_n_option_defs;

/* Bytes training would allocate (parameters, optimizer state, activations). */
size_t		cai_ner_train_memory(const cai_options *opts, const cai_ner_data *train);

/*
 * Pretrained word vectors supplied by the user (may be NULL): n words of dim
 * floats each; dim must equal the "dimensions" option (word embedding size).
 * Every vector word gets an embedding row holding its vector (words looked
 * up lower-cased, digits folded, the first of equal forms kept).  Rows of
 * vector words absent from the training sentences keep their vectors; those
 * present learn at a tenth of the learning rate, so that they stay near the
 * vectors the others keep.
 */
typedef struct cai_word_vectors
{
	size_t		n;
	int			dim;
	const char *const *words;
	const size_t *lens;
	const float *vectors;		/* (n, dim) */
} cai_word_vectors;

cai_status	cai_ner_train(const cai_options *opts, const cai_ner_data *train,
						  const cai_ner_data *valid,	/* NULL: split */
						  const cai_word_vectors *vectors,	/* may be NULL */
						  const char *provenance_json,
						  cai_progress_fn progress, void *progress_ctx,
						  uint8_t **model, size_t *model_len,
						  char **metrics_json, cai_error *err);

/*
 * Build a tagger from a validated model file.  The model uses mf's tensors
 * in place (no copy): the caller keeps mf, and the buffer of a
 * cai_format_read_view, alive and unchanged until cai_ner_free.  Private
 * memory (cai_ner_memory): the tag tables and small structs (and, for models
 * written before the serialized vocabulary slots existed, those slots).
 * With mf->trusted the content scans are skipped (see format.h).  The model
 * is never written after load.
 */
cai_status	cai_ner_load(const cai_model_file *mf, cai_ner **out, cai_error *err);
void		cai_ner_free(cai_ner *m);
size_t		cai_ner_memory(const cai_ner *m);

/* Entity types (e.g. "PER") and IOB2 tags (e.g. "B-PER") the model knows. */
int			cai_ner_n_types(const cai_ner *m);
const char *cai_ner_type(const cai_ner *m, int i);

/*
 * Which of n training sentences training with options opts (parsed with
 * cai_ner_option_defs) and no validation source holds out to validate
 * (is_valid, n entries).
 */
cai_status	cai_ner_validation_mask(size_t n, const cai_options *opts, bool *is_valid, cai_error *err);

/* Whether a token has a word row of its own (normalized as the features are), not the unknown word's. */
bool		cai_ner_known_word(const cai_ner *m, const char *word, size_t len);

/*
 * Tag one sentence.  tags_out[i] points to an IOB2 tag string owned by the
 * model; scores (may be NULL) gets each token's marginal probability of its tag.
 */
cai_status	cai_ner_tag(const cai_ner *m, const char *const *tokens, const size_t *lens,
						size_t n, const char **tags_out, float *scores, cai_error *err);

/*
 * Tag many sentences in one call (batches of sentences of similar length;
 * much faster than one cai_ner_tag per sentence).  data->tags is ignored.
 * tags_out and scores (may be NULL) are indexed like data->tokens: token i
 * of the data, offsets[0] <= i < offsets[n], gets tags_out[i] (owned by the
 * model) and scores[i].  Sentences longer than the model's max_tokens are
 * tagged in pieces.  The model is only read: concurrent calls are safe.
 */
cai_status	cai_ner_tag_batch(const cai_ner *m, const cai_ner_data *data,
							  const char **tags_out, float *scores, cai_error *err);

/* One entity found in raw text. */
typedef struct cai_entity
{
	int64_t		start;			/* byte offset, inclusive */
	int64_t		end;			/* byte offset, exclusive */
	int64_t		cstart;			/* code point offset, 0-based, inclusive */
	int64_t		cend;			/* code point offset, exclusive */
	int			type;			/* index for cai_ner_type */
	float		score;			/* confidence in (0, 1] */
} cai_entity;

/*
 * Tokenize raw text (cai_tokenize), tag it in sentence-sized chunks, and
 * return the entities.  *out is cai_malloc'ed (NULL when none).
 */
cai_status	cai_ner_entities(const cai_ner *m, const char *text, size_t len, size_t max_tokens,
							 cai_entity **out, size_t *n_out, cai_error *err);

/*
 * cai_ner_entities for n texts at once (scoring whole tables): the sentences
 * of all the texts are tagged together, in batches of similar length, so
 * texts of one sentence get the speed of cai_ner_tag_batch.  The entities
 * equal cai_ner_entities text by text (spans, types; scores up to float
 * rounding).  Output: *out is one cai_malloc'ed array of every entity (NULL
 * when there are none; the caller frees it with cai_free), texts in input
 * order and each text's entities in text order; offsets (n + 1 entries,
 * caller-owned) gets the ranges: the entities of text i are
 * (*out)[offsets[i] .. offsets[i + 1]), offsets[n] is the total.  A text of
 * length 0 may be NULL.  max_tokens applies to each text; a text beyond it
 * (CAI_ERR_LIMIT) or a NULL text fails the call with an error naming it
 * ("text 12: ...").  On error *out is NULL and offsets are all 0.  Scratch
 * is bounded by the sentences tagged together (at most 1024 sentences or
 * 32768 tokens), not by n.  The model is only read: concurrent calls are safe.
 */
cai_status	cai_ner_entities_batch(const cai_ner *m, const char *const *texts, const size_t *lens, size_t n,
								   size_t max_tokens, cai_entity **out, size_t *offsets, cai_error *err);

/*
 * Character spans to token tags for training from (text, spans): tokenizes
 * text and tags each token IOB2 by the span covering it (code point offsets,
 * 0-based, end exclusive).  A span that does not align to token boundaries is
 * CAI_ERR_INVALID naming it, and so are overlapping spans and empty
 * labels.  Outputs are cai_malloc'ed: *tokens as cai_tokenize returns them
 * and *tags one block (free it with one cai_free) holding n_tokens + 1
 * pointers (the last NULL) followed by the tag strings ("O", "B-X", "I-X").
 */
typedef struct cai_span
{
	int64_t		cstart;
	int64_t		cend;
	const char *label;
} cai_span;

cai_status	cai_ner_spans_to_tags(const char *text, size_t len,
								  const cai_span *spans, size_t n_spans,
								  cai_token **tokens, char ***tags, size_t *n_tokens,
								  cai_error *err);

/*
 * Entity-level evaluation counted exactly as conlleval: gold and predicted
 * tag sequences for n sentences (same offsets), any scheme (converted to
 * chunks: an I-X after O or after another type starts a chunk).  JSON
 * (cai_malloc'ed): {"precision","recall","f1","accuracy" (token),
 * "tokens","gold_entities","predicted_entities","correct_entities",
 * "types": {"PER": {"precision","recall","f1","support"}, ...}}.
 * Percentages are fractions in [0, 1].
 */
cai_status	cai_conll_eval(const int64_t *offsets, size_t n,
						   const char *const *gold, const char *const *pred,
						   char **json_out, cai_error *err);

/*
 * Self-test for the unit tests: set up training on train (as cai_ner_train
 * would, validating on the same sentences) and compare the gradient of the
 * mean CRF loss of the first batch_size sentences, dropout and unknown-word
 * replacement off, with central finite differences at `samples` entries of
 * every parameter tensor (of the embedding tables: of the rows the batch
 * uses), as cai_textclf_gradcheck does (src/core/gradcheck.h: *max_err is
 * the largest |analytic - numeric| / max(|analytic| + |numeric|, 1e-3)).
 */
cai_status	cai_ner_gradcheck(const cai_options *opts, const cai_ner_data *train, int samples,
							  double *max_err, cai_error *err);

#endif							/* CAI_NER_H */
