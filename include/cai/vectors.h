/*
 * vectors.h: word vector sets (GloVe, word2vec, fastText .vec, and later the
 * project's own skip-gram trainer), stored once as model-format bytes and
 * queried in place.
 *
 * A vector set is V unique words (UTF-8, no NUL, 1..CAI_VEC_WORD_MAX bytes)
 * with a float32 matrix (V, D), D in 1..CAI_VEC_MAX_DIM, and optionally
 * subword rows as fastText has them: rows for hashed character n-grams of
 * minn..maxn code points of "<word>" (cai_char_ngram_hashes, bucket =
 * hash % buckets), from which a word outside the set gets the mean of its
 * n-grams' rows.
 *
 * Bytes (include/cai/format.h, written by cai_vectors_write):
 *   metadata  {"task": "vectors", "architecture": "word_vectors", "kind": "vectors",
 *              "labels": [], "cai_version": ..., "vectors": {"words": V, "dims": D,
 *              "source": ..., "index_seed": ..., "lowercase": bool, "unit_length": bool,
 *              "minn": m, "maxn": M, "buckets": B, "subword_rows": K}}
 *             lowercase: every word equals its cai_token_normalize form (GloVe);
 *             unit_length: every row has L2 norm 1 within 1e-3;
 *   tensors   words.bytes   U8  (nbytes)   the words, each NUL-terminated
 *             words.offsets I32 (V + 1)    word i is bytes[off[i] .. off[i + 1] - 1)
 *             words.slots   I32 (cai_index_capacity(V))  cai_strindex slots
 *             vectors       F32 (V, D)
 *             norms         F32 (V)        L2 norm of each row
 *             and, when K > 0:
 *             subwords.ids     I32 (K)     bucket ids, strictly increasing, < B
 *             subwords.slots   I32 (cai_index_capacity(K))  cai_intindex slots
 *             subwords.vectors F32 (K, D)
 * Loading a view of trusted bytes (format.h) is O(1) in V: every table is
 * used in place.  Untrusted bytes get the full scan (words, UTF-8,
 * duplicates through the slot check, finite values, norms).
 */
#ifndef CAI_VECTORS_H
#define CAI_VECTORS_H

#include "cai/common.h"
#include "cai/format.h"
#include "cai/ner.h"

#define CAI_VEC_MAX_DIM 4096
#define CAI_VEC_WORD_MAX 1024	/* bytes of one word */
#define CAI_VEC_MAX_WORDS ((int64_t) INT32_MAX - 1)
#define CAI_VEC_INDEX_SEED UINT64_C(0x766563746f727331)

/* ---------------------------------------------------------------------- */
/* Building: the data a parser or a trainer hands to the writer           */
/* ---------------------------------------------------------------------- */

typedef struct cai_vectors_data
{
	int32_t		n_words;		/* V >= 1 */
	int32_t		dim;			/* D */
	const char *const *words;	/* (V) UTF-8, need not be NUL-terminated */
	const size_t *lens;			/* (V) */
	const float *vectors;		/* (V, D) */

	/* subwords (fastText); minn = maxn = 0 and n_subword_rows = 0 when none */
	int32_t		minn;			/* 1 <= minn <= maxn <= CAI_NGRAM_MAXN */
	int32_t		maxn;
	uint32_t	buckets;		/* n-gram hash space: bucket = hash % buckets */
	int32_t		n_subword_rows; /* K rows stored, 0..buckets */
	const int32_t *subword_ids; /* (K) strictly increasing bucket ids; NULL: 0..K-1 */
	const float *subword_vectors;	/* (K, D) */

	const char *source;			/* free text for the metadata ("glove", a file name); NULL = "" */
} cai_vectors_data;

/*
 * Validate d (the loader's rules, as CAI_ERR_INVALID; a repeated word names
 * both indexes) and serialize it; *out is cai_malloc'ed.
 */
cai_status	cai_vectors_write(const cai_vectors_data *d, uint8_t **out, size_t *out_len, cai_error *err);

/* ---------------------------------------------------------------------- */
/* Parsing the common file formats from memory                           */
/* ---------------------------------------------------------------------- */

typedef enum cai_vec_format
{
	/*
	 * "word v1 ... vD" per line (GloVe, word2vec text, fastText .vec),
	 * with an optional first line "V D" (two integers); fields separated by
	 * spaces or tabs, "\r\n" accepted, blank lines skipped.  A line with
	 * more fields than D + 1 whose extra leading fields are not numbers
	 * has a word with spaces in it (glove.840B has some): the word is all
	 * but the last D fields.
	 */
	CAI_VEC_TEXT = 0,
	/*
	 * word2vec binary: "V D\n", then V entries: optional newlines, the word
	 * up to a space, D little-endian float32; trailing newlines allowed.
	 */
	CAI_VEC_BINARY = 1
} cai_vec_format;

/*
 * A format by name, any case: "text", "glove", "word2vec", "word2vec_text",
 * "fasttext", "vec" are CAI_VEC_TEXT; "binary", "bin", "word2vec_binary"
 * CAI_VEC_BINARY.  CAI_ERR_INVALID naming the accepted names otherwise.
 */
cai_status	cai_vec_format_find(const char *name, cai_vec_format *out, cai_error *err);

/* Limits checked before anything is allocated; 0 = the built-in maximum. */
typedef struct cai_vec_limits
{
	int64_t		max_words;		/* at most CAI_VEC_MAX_WORDS */
	size_t		max_bytes;		/* input bytes */
} cai_vec_limits;

/*
 * Parse buf[0..len) and return model bytes (cai_vectors_write).  Errors are
 * CAI_ERR_FORMAT naming the 1-based line (text) or entry (binary) and the
 * fault: empty input, bad header, wrong number of values, a value that is not
 * a number or is NaN/infinite/out of float32 range, a word too long, not valid
 * UTF-8 or holding a NUL, a duplicate word (with the line of its first
 * occurrence), a dimension or word count disagreeing with the header, a
 * truncated entry; CAI_ERR_LIMIT when len exceeds max_bytes or the words
 * (counted or declared) exceed max_words.  The input is read once, in place;
 * memory is bounded by what the input can hold: the (V, D) matrix with V at
 * most what the header declares or the lines (bytes) can hold.
 * *n_words / *dim (may be NULL) receive the counts on success.
 */
cai_status	cai_vectors_parse(const uint8_t *buf, size_t len, cai_vec_format fmt,
							  const cai_vec_limits *limits, const char *source,
							  uint8_t **out, size_t *out_len, int32_t *n_words, int32_t *dim,
							  cai_error *err);

/* ---------------------------------------------------------------------- */
/* A loaded set                                                           */
/* ---------------------------------------------------------------------- */

typedef struct cai_vectors cai_vectors;

/*
 * A set from a validated model file; its tensors are used in place (keep mf,
 * and the buffer of a view, alive until cai_vectors_free).  With mf->trusted
 * the content scans are skipped (O(1) in V); memory is never read out of
 * bounds whatever the tables hold.  CAI_ERR_FORMAT when mf is not a vector
 * set or any check fails.
 */
cai_status	cai_vectors_load(const cai_model_file *mf, cai_vectors **out, cai_error *err);

/*
 * From bytes: view = false copies (checksum verified), view = true reads
 * in place (buf CAI_FORMAT_ALIGN-aligned, kept alive); verify = false only
 * for bytes that passed a verified load before (trusted, see format.h).
 * The model file is owned by the set.
 */
cai_status	cai_vectors_open(const uint8_t *buf, size_t len, bool view, bool verify,
							 cai_vectors **out, cai_error *err);
void		cai_vectors_free(cai_vectors *v);

int32_t		cai_vectors_count(const cai_vectors *v);	/* V */
int32_t		cai_vectors_dim(const cai_vectors *v);	/* D */
bool		cai_vectors_lowercase(const cai_vectors *v);
bool		cai_vectors_has_subwords(const cai_vectors *v);
const char *cai_vectors_source(const cai_vectors *v);
size_t		cai_vectors_memory(const cai_vectors *v);	/* private bytes, not the tensors */

/* Word i (NUL-terminated, *len may be NULL) and its row; NULL when out of range. */
const char *cai_vectors_word(const cai_vectors *v, int32_t i, size_t *len);
const float *cai_vectors_row(const cai_vectors *v, int32_t i);

/* Row of word[0..len) (exact bytes), -1 if absent. */
int32_t		cai_vectors_find(const cai_vectors *v, const char *word, size_t len);

/* How a word (a token) is matched against the set's words. */
typedef enum cai_vec_case
{
	CAI_VEC_CASE_AUTO = 0,		/* LOWER for a lowercase set, else FALLBACK */
	CAI_VEC_CASE_EXACT,			/* the bytes as given */
	CAI_VEC_CASE_LOWER,			/* cai_token_normalize'd (no digit folding) */
	CAI_VEC_CASE_FALLBACK		/* as given, else lower-cased */
} cai_vec_case;

typedef enum cai_vec_hit
{
	CAI_VEC_MISS = 0,
	CAI_VEC_EXACT = 1,			/* out is the word's row */
	CAI_VEC_SUBWORD = 2			/* out is the mean of its n-grams' rows */
} cai_vec_hit;

/*
 * The vector of word[0..len) into out (D floats): its row, else with
 * subwords the mean of the rows of its n-grams that have rows, else
 * CAI_VEC_MISS (out zeroed).  *row (may be NULL) gets the row or -1.
 */
cai_vec_hit cai_vectors_lookup(const cai_vectors *v, const char *word, size_t len, cai_vec_case cs,
							   float *out, int32_t *row);

/*
 * Mean of the vectors of text's tokens (cai_tokenize, every kind of token),
 * looked up as cai_vectors_lookup does; out (D floats) is zero when no token
 * has one.  *n_tokens, *n_found (may be NULL): tokens, and those with a
 * vector.  max_tokens as cai_tokenize.
 */
cai_status	cai_vectors_embed(const cai_vectors *v, const char *text, size_t len, cai_vec_case cs,
							  size_t max_tokens, float *out, size_t *n_tokens, size_t *n_found,
							  cai_error *err);

/*
 * The k rows nearest query (D floats) by cosine, best first; equal scores in
 * row order; row exclude (-1 for none) is skipped.  A zero row or query
 * scores 0.  *n_out = min(k, rows available); ids and scores hold that many
 * entries (the caller may cap k at cai_vectors_count).
 */
cai_status	cai_vectors_similar(const cai_vectors *v, const float *query, int32_t exclude, int k,
								int32_t *ids, float *scores, int *n_out, cai_error *err);

/*
 * The same for a word: its vector as cai_vectors_lookup finds it, the word's
 * own row excluded.  *hit says how it was found; CAI_VEC_MISS gives *n_out 0.
 */
cai_status	cai_vectors_similar_word(const cai_vectors *v, const char *word, size_t len, cai_vec_case cs,
									 int k, int32_t *ids, float *scores, int *n_out, cai_vec_hit *hit,
									 cai_error *err);

/*
 * The set as NER training's cai_word_vectors: the matrix and the words in
 * place (no copy); the pointer and length arrays (16 bytes a word) are
 * built once and owned by v.  Valid while v lives.
 */
cai_status	cai_vectors_word_vectors(cai_vectors *v, cai_word_vectors *out, cai_error *err);

/* ---------------------------------------------------------------------- */
/* Training: skip-gram and CBOW with negative sampling and subwords       */
/* (src/core/vectors_train.c)                                             */
/* ---------------------------------------------------------------------- */

/*
 * Options (cai_options_parse against this table): model skipgram | cbow,
 * dimensions 100, window 5, epochs 5, negative 5, min_count 5, minn 3,
 * maxn 6 (maxn 0: no subwords), buckets 2000000, learning_rate 0.05,
 * sample 1e-4, seed 42, threads 1, max_seconds 0, lowercase true,
 * max_tokens 1024, memory_limit_mb 0: fastText's defaults where fastText
 * has the option (lowercase and memory_limit_mb are ours; help texts in
 * the table).
 */
extern const cai_opt_def cai_vectors_option_defs[];
extern const int cai_vectors_n_option_defs;

/*
 * Bytes training on texts[0..n) may allocate at most (an upper bound from
 * the text bytes alone: the number of distinct words is only known after
 * counting, so it assumes the worst; training with memory_limit_mb set
 * refuses, as CAI_ERR_LIMIT, before going beyond that limit instead).
 * 0 when opts is NULL or invalid.
 */
size_t		cai_vectors_train_memory(const cai_options *opts, const char *const *texts,
									 const size_t *lens, size_t n);

/*
 * Train word vectors on texts[0..n) (UTF-8; lens[i] bytes each) and return
 * them as a vector set (*bytes, cai_malloc'ed, cai_vectors_open reads it)
 * with the subword rows of every bucket a vocabulary word uses, so a word
 * outside the vocabulary gets the mean of its n-grams' rows
 * (cai_vectors_lookup).  Tokens are cai_tokenize's (CJK one per
 * character), invalid bytes dropped, optionally lower-cased; a text of
 * more than max_tokens kept tokens is trained in pieces.
 * threads 1: the bytes are a function of texts, options and seed.
 * threads > 1: Hogwild (lock-free updates, as fastText): not reproducible.
 * progress is called from the calling thread only (rows_per_sec carries
 * tokens per second); returning false gives CAI_ERR_CANCELLED with nothing
 * returned.  CAI_ERR_INVALID when no word reaches min_count or the corpus
 * has fewer than 2 tokens in a text; CAI_ERR_LIMIT past memory_limit_mb;
 * CAI_ERR_NUMERIC when training diverges.  *metrics_json (cai_malloc'ed,
 * may be NULL to skip): words, subword_rows, tokens, epochs_run, loss,
 * tokens_per_sec, seconds.
 */
cai_status	cai_vectors_train(const cai_options *opts, const char *const *texts, const size_t *lens,
							  size_t n, cai_progress_fn progress, void *progress_ctx,
							  uint8_t **bytes, size_t *len, char **metrics_json, cai_error *err);

#endif							/* CAI_VECTORS_H */
