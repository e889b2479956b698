/*
 * textclf_internal.h: what the files of text classification share.  Not a
 * public header: the SQL layer and other modules use cai/textclf.h only.
 *
 *   textclf.c                 the public entry points: option tables and
 *                             parsing, checks of labels and rows, dispatch
 *                             to the two architectures below
 *   textclf_features.c        what both architectures use (end of this file)
 *   textclf_tables.c          the vocabulary and bucket tables both store
 *   textclf_fast.c            fast: features, loaded model, load, predict
 *   textclf_fast_train.c      fast: training and serialization
 *   textclf_accurate.c        accurate: features, network inference,
 *                             loaded model, load, predict
 *   textclf_accurate_train.c  accurate: training and serialization, the
 *                             ensemble's fast model
 *   textclf_train_common.c    what both trainers share: the prepared
 *                             data (cai_textclf_prep), the epochs and
 *                             what follows them (end of this file)
 *
 * Calls between the architectures go one way: the accurate model's ensemble
 * member is a fast model, which accurate trains with cai_textclf_fast_train
 * and, that model being a whole model file in a tensor, loads and runs
 * through cai_textclf_load_fast and the public cai_textclf_predict.
 * Each architecture's two files also share a header of their own,
 * textclf_fast_internal.h and textclf_accurate_internal.h.
 */
#ifndef CAI_TEXTCLF_INTERNAL_H
#define CAI_TEXTCLF_INTERNAL_H

#include "cai/ner.h"
#include "cai/textclf.h"
#include "cai/tokenize.h"
#include "gradcheck.h"

struct json_object;
struct cai_trainer;
struct cai_trainer_hooks;

/*
 * Load a text classification model of one architecture (the registry's
 * load functions, model.c; the accurate model's ensemble member): as
 * cai_textclf_load, which finds the architecture in the metadata, but a
 * model of another architecture is CAI_ERR_FORMAT.
 */
cai_status	cai_textclf_load_fast(const cai_model_file *mf, cai_textclf **out, cai_error *err);
cai_status	cai_textclf_load_accurate(const cai_model_file *mf, cai_textclf **out, cai_error *err);

/* Limits of the option tables (textclf.c) that the fast architecture checks too. */
#define TEXTCLF_MAX_DIM			1024	/* inference keeps h on the stack */
#define TEXTCLF_MAX_BUCKETS		16777216

/*
 * Train one architecture.  The caller (cai_textclf_train) has validated the
 * labels and data; vec (may be NULL) as cai_textclf_train takes it; prov is
 * the provenance object, which the function extends and embeds in the model
 * metadata.
 */
typedef cai_status (cai_textclf_train_fn) (const cai_options *opts,
										   const char *const *label_names, int n_labels,
										   const cai_textclf_data *train,
										   const cai_textclf_data *valid,
										   const cai_word_vectors *vec,
										   struct json_object *prov,
										   cai_progress_fn progress, void *progress_ctx,
										   uint8_t **model, size_t *model_len,
										   char **metrics_json, cai_error *err);

/* ---------------------------------------------------------------------- */
/* The fast architecture (textclf_fast.c, textclf_fast_train.c)           */
/* ---------------------------------------------------------------------- */

typedef struct cai_textclf_fast cai_textclf_fast;

/* The fast architecture's; the accurate architecture trains its ensemble's fast model with it too. */
cai_textclf_train_fn cai_textclf_fast_train;

/* Upper estimate of the bytes the fast training allocates (0 for invalid options). */
size_t		cai_textclf_fast_train_memory(const cai_options *opts,
										  const cai_textclf_data *train, int n_labels,
										  const cai_word_vectors *vec);

/*
 * Build the fast model from a model file whose metadata (meta, parsed) the
 * caller has checked for task, labels and architecture.  *mem gets the
 * bytes the model occupies.
 */
cai_status	cai_textclf_fast_load(const cai_model_file *mf, struct json_object *meta,
								  int n_labels, cai_textclf_fast **out,
								  size_t *mem, cai_error *err);
void		cai_textclf_fast_free(cai_textclf_fast *m);

/* Class probabilities (n_labels floats, the model's label count); m is not modified. */
cai_status	cai_textclf_fast_predict(const cai_textclf_fast *m, int n_labels,
									 const char *text, size_t len,
									 float *probs, cai_error *err);

/* Whether the word (one token) is in the fast model's vocabulary, normalized as its features are. */
bool		cai_textclf_fast_known_word(const cai_textclf_fast *m, const char *word, size_t len);

/* ---------------------------------------------------------------------- */
/* The accurate architecture (textclf_accurate.c, _train.c)               */
/* ---------------------------------------------------------------------- */

typedef struct cai_textclf_accurate cai_textclf_accurate;

cai_textclf_train_fn cai_textclf_accurate_train;

/*
 * Build the accurate model from a model file whose metadata (meta, parsed)
 * the caller has checked for task, labels and architecture.  *mem gets the
 * bytes the model occupies.
 */
cai_status	cai_textclf_accurate_load(const cai_model_file *mf, struct json_object *meta,
									  int n_labels, cai_textclf_accurate **out,
									  size_t *mem, cai_error *err);
void		cai_textclf_accurate_free(cai_textclf_accurate *m);

/* Class probabilities (n_labels floats); per-call scratch, m is not modified. */
cai_status	cai_textclf_accurate_predict(const cai_textclf_accurate *m,
										 const char *text, size_t len,
										 float *probs, cai_error *err);
/* Whether the word (one token) is in the accurate model's vocabulary, normalized as its features are. */
bool		cai_textclf_accurate_known_word(const cai_textclf_accurate *m, const char *word, size_t len);

/* The same for n texts in batches (probs (n, n_labels)); see cai_textclf_predict_batch. */
cai_status	cai_textclf_accurate_predict_batch(const cai_textclf_accurate *m,
											   const char *const *texts, const size_t *lens,
											   size_t n, float *probs, cai_error *err);

/* Upper estimate of the bytes the accurate training allocates. */
size_t		cai_textclf_accurate_train_memory(const cai_options *opts,
											  const cai_textclf_data *train, int n_labels,
											  const cai_word_vectors *vec);

/* ---------------------------------------------------------------------- */
/* Helpers both architectures use (textclf_features.c)                    */
/* ---------------------------------------------------------------------- */

#define NOMEM(err) cai_error_set((err), CAI_ERR_NOMEM, "out of memory while training")

/*
 * Final mixing of the feature hashes (the splitmix64 finalizer).  Part of
 * both architectures' feature definitions: changing it changes the
 * features of every model (the feature fingerprint catches it).
 */
static inline uint64_t
cai_textclf_mix(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

#define TEXTCLF_CHAR_NGRAMS_MAX	128 /* character n-grams per token */
#define TEXTCLF_SALT_CHAR		0x9e3779b97f4a7c15ULL

/* Hashes of the character n-grams of a normalized token (none when minn or maxn is 0). */
static inline int
cai_textclf_char_ngrams(int minn, int maxn, const char *norm, size_t len, uint64_t *out)
{
	if (minn <= 0 || maxn <= 0)
		return 0;
	return (int) cai_char_ngram_hashes(norm, len, minn, maxn, out, TEXTCLF_CHAR_NGRAMS_MAX);
}

/* Bucket of a character n-gram hash. */
static inline uint32_t
cai_textclf_char_bucket(uint64_t h, uint32_t buckets)
{
	return (uint32_t) (cai_textclf_mix(h ^ TEXTCLF_SALT_CHAR) % buckets);
}

/*
 * Check the token and character n-gram options an architecture parsed:
 * minn and maxn both 0 or 1 <= minn <= maxn, max_tokens from 1 with
 * max_tokens * bytes_per_token within INT32_MAX, buckets 1 to max_buckets.
 * CAI_ERR_INVALID naming the option otherwise.
 */
cai_status	cai_textclf_check_token_options(int minn, int maxn, int max_tokens, size_t bytes_per_token,
											uint32_t buckets, uint32_t max_buckets, cai_error *err);

/*
 * Tokenize at most the first max_tokens tokens of text.  Only a prefix of
 * max_tokens * bytes_per_token bytes is read, cut at a character (and when
 * possible a space) boundary, so a huge text costs no more than a long one.
 * *toks is cai_malloc'ed (NULL when empty).
 */
cai_status	cai_textclf_tokenize(const char *text, size_t len, int max_tokens, size_t bytes_per_token,
								 cai_token **toks, size_t *n_toks, cai_error *err);

/*
 * The rows a training sees: the training rows first (n_tr), then the
 * validation rows (n_va).  The arrays are cai_malloc'ed; the texts are the
 * caller's.  Data of token ids (cai_textclf_data.tokens) gives tok_tr and
 * tok_va instead of txt and len (which stay NULL): row r is row
 * cai_textclf_row_src(rows, r) of tok_tr, or when that is tok_tr->n or
 * more, that minus tok_tr->n of tok_va.  src maps the rows when a split
 * reorders them; otherwise it is NULL, the rows in the data's order (8
 * bytes a row spared: 80 MB on 10,000,000 rows).
 */
typedef struct cai_textclf_rows
{
	size_t		n_tr;
	size_t		n_va;
	const char **txt;			/* (n_tr + n_va) */
	size_t	   *len;			/* (n_tr + n_va) */
	int32_t    *lab;			/* (n_tr + n_va) */
	const cai_textclf_tokens *tok_tr;	/* NULL: texts */
	const cai_textclf_tokens *tok_va;
	size_t	   *src;			/* (n_tr + n_va) with token ids, or NULL: row r is r */
} cai_textclf_rows;

/* Where row r of rows of token ids is in tok_tr, then tok_va. */
static inline size_t
cai_textclf_row_src(const cai_textclf_rows *rows, size_t r)
{
	return rows->src != NULL ? rows->src[r] : r;
}

/* The token rows (tok_tr or tok_va) that hold row r of rows of token ids, and its index there in *i. */
static inline const cai_textclf_tokens *
cai_textclf_row_where(const cai_textclf_rows *rows, size_t r, size_t *i)
{
	size_t		s = cai_textclf_row_src(rows, r);

	if (s < rows->tok_tr->n)
	{
		*i = s;
		return rows->tok_tr;
	}
	*i = s - rows->tok_tr->n;
	return rows->tok_va;
}

/* The token ids of row r of rows that hold token ids (tok_tr not NULL), *nt of them. */
static inline const int32_t *
cai_textclf_row_ids(const cai_textclf_rows *rows, size_t r, size_t *nt)
{
	size_t		i;
	const cai_textclf_tokens *t = cai_textclf_row_where(rows, r, &i);

	return cai_textclf_tokens_row(t, i, nt);
}

/*
 * The text of row r: the caller's, or with token ids the tokens joined by
 * spaces in *buf (grown to *cap as needed).  false on out of memory.
 */
bool		cai_textclf_row_text(const cai_textclf_rows *rows, size_t r, char **buf, size_t *cap,
								 const char **text, size_t *len);

/*
 * Fill rows from train and valid; without valid, a stratified split of train
 * seeded by seed: per class, round(count * fraction) rows are held out for
 * validation, keeping at least one for training.  No training rows is an
 * error.  The rows that scores come from are [*eval_from, *eval_from +
 * *n_eval): the validation rows, or the training rows when there are none.
 * On failure rows may hold partial allocations: release it with
 * cai_textclf_rows_free.
 */
cai_status	cai_textclf_split(const cai_textclf_data *train, const cai_textclf_data *valid,
							  double fraction, int n_labels, uint64_t seed,
							  cai_textclf_rows *rows, size_t *eval_from, size_t *n_eval,
							  cai_error *err);
void		cai_textclf_rows_free(cai_textclf_rows *rows);

/*
 * Distinct normalized tokens ("types") of the training and validation rows,
 * with their count in the training rows: an open-addressing hash table over
 * an arena of NUL-terminated strings; ids follow insertion order.
 */
typedef struct cai_textclf_types
{
	char	   *arena;			/* (arena_len) NUL-terminated strings */
	size_t		arena_len;
	size_t		arena_cap;
	size_t		n;
	size_t		cap;
	uint64_t   *hash;			/* (cap) */
	size_t	   *off;			/* (cap) offset in arena */
	uint32_t   *len;			/* (cap) */
	int64_t    *count;			/* (cap) occurrences in training rows */
	uint32_t   *slot;			/* (mask + 1) type id + 1, 0 = empty */
	size_t		mask;
} cai_textclf_types;

/* Find or add the type s (len bytes, hash h); its id, or -1 on out of memory. */
int64_t		cai_textclf_types_intern(cai_textclf_types *tt, const char *s, size_t len, uint64_t h);
/* The id of the type s (len bytes, hash h), or -1 when there is none. */
int64_t		cai_textclf_types_find(const cai_textclf_types *tt, const char *s, size_t len, uint64_t h);
void		cai_textclf_types_free(cai_textclf_types *tt);

/* Bytes of a normalized token (incl. NUL) that an architecture may write. */
#define TEXTCLF_NORM_MAX		128

/* How an architecture turns the tokens of a text into types. */
typedef struct cai_textclf_token_rule
{
	int			max_tokens;
	size_t		bytes_per_token;	/* see cai_textclf_tokenize */
	int			eos;			/* 0 or 1: an end-of-text pseudo-token ends every text */
	/* normalized text of token i (i < n_toks + eos) into norm (TEXTCLF_NORM_MAX bytes); its length */
	size_t		(*norm) (const char *text, const cai_token *toks, size_t i, size_t n_toks, char *norm);
	uint64_t	(*hash) (const char *s, size_t len);	/* of a normalized token */
} cai_textclf_token_rule;

/*
 * Fingerprint of the raw features of a probe text (token boundaries, word
 * hashes under rule, character n-gram hashes minn..maxn, feature_version):
 * a model trained by a build whose tokenizer or hashing differs would
 * silently compute other features.  Models record it and loading compares.
 */
cai_status	cai_textclf_fingerprint(const cai_textclf_token_rule *rule, int minn, int maxn,
									int feature_version, uint64_t *out, cai_error *err);

/*
 * The training and validation rows as type ids: the types of row r are
 * (*tok_type)[(*tok_off)[r] .. (*tok_off)[r + 1]), interned in types, whose
 * counts are those of the training rows.  *tok_off (n_tr + n_va + 1) and
 * *tok_type (*tok_cap, grown as needed) are cai_malloc'ed; the caller frees
 * them, also on error.  Ticks tk (cancellation: CAI_ERR_CANCELLED).
 */
cai_status	cai_textclf_tokenize_rows(const cai_textclf_rows *rows, const cai_textclf_token_rule *rule,
									  struct cai_trainer *tk, cai_textclf_types *types,
									  size_t **tok_off, int32_t **tok_type, size_t *tok_cap,
									  cai_error *err);

/*
 * For rows of token ids (rows->tok_tr not NULL): the types of their words as
 * cai_textclf_tokenize_rows would intern and count them, without the rows'
 * type ids: *word_type (cai_malloc'ed, the caller frees it, also on error)
 * gets the type of every word of the rows' word table (-1: in no row), and
 * *eos_type the end-of-text token's (-1 when the rule has none).
 */
cai_status	cai_textclf_type_words(const cai_textclf_rows *rows, const cai_textclf_token_rule *rule,
								   struct cai_trainer *tk, cai_textclf_types *types, int32_t **word_type,
								   int32_t *eos_type, cai_error *err);

/* A vocabulary entry while the vocabulary is chosen. */
typedef struct cai_textclf_vocab_item
{
	const char *s;
	int64_t		count;
	int32_t		type;
} cai_textclf_vocab_item;

/*
 * The vocabulary: the types seen min_count times in training rows (none
 * empty or holding a NUL byte), in cai_textclf_vocab_item_cmp order, *V of
 * them in *items; *type_vocab maps a type id to its vocabulary id or -1.
 * Both arrays (types->n + 1 entries) are cai_malloc'ed; the caller frees
 * them, also on error.
 */
cai_status	cai_textclf_choose_vocab(const cai_textclf_types *types, int64_t min_count,
									 int32_t **type_vocab, cai_textclf_vocab_item **items,
									 int32_t *V, cai_error *err);

/* qsort order of the vocabulary: more frequent first, then bytewise. */
int			cai_textclf_vocab_item_cmp(const void *a, const void *b);

/* ---------------------------------------------------------------------- */
/* The tables a model stores (textclf_tables.c)                           */
/* ---------------------------------------------------------------------- */

/* Fill t: name, dtype, shape (d0) or (d0, d1) by ndim, data and its nbytes. */
void		cai_textclf_tensor(cai_tensor *t, const char *name, cai_dtype dtype, int ndim,
							   int64_t d0, int64_t d1, const void *data);

/* The vocabulary and bucket tables of a trained model and their lookup indexes. */
typedef struct cai_textclf_tables
{
	cai_strindex vocab;			/* over bytes and off, slots vslot */
	cai_intindex bucket;		/* over bids, slots bslot */
	char	   *bytes;			/* (nbytes) the words, each NUL-terminated */
	int32_t    *off;			/* (V + 1) */
	int32_t    *vslot;			/* (vocab.mask + 1) */
	int32_t    *bids;			/* (K) bucket of each bucket row, increasing */
	int32_t    *bslot;			/* (bucket.mask + 1) */
	int32_t    *brank;			/* (ceil(buckets / 64), 3) see cai_bucket_rank_find */
} cai_textclf_tables;

/*
 * The tables as tensors at ts + *nt (*nt advances): when V > 0,
 * "<prefix>.vocab.bytes", ".vocab.offsets" and ".vocab.slots" (the V items,
 * each the token of type items[v].type, in a cai_strindex seeded by seed);
 * when K > 0, "<prefix>.buckets" (the buckets with a row in bmap, of
 * buckets entries) and ".buckets.slots".  tab holds the arrays the tensors
 * point to and the built indexes; release it with cai_textclf_tables_free,
 * also on error.
 */
cai_status	cai_textclf_pack_tables(const cai_textclf_types *types, const cai_textclf_vocab_item *items,
									int32_t V, uint64_t seed, const int32_t *bmap, uint32_t buckets,
									int32_t K, const char *prefix, cai_tensor *ts, int *nt,
									cai_textclf_tables *tab, cai_error *err);
void		cai_textclf_tables_free(cai_textclf_tables *tab);

/*
 * The vocabulary of a loaded model (V words from the metadata; none: no
 * vocabulary tensor may exist) into ix, a view of the "<prefix>.vocab.*"
 * tensors.  Models written before the slot tensor existed get private slots
 * in *own_slot (their bytes added to *mem).  Checks the tensors' contents
 * unless mf is trusted and has the slots.
 */
cai_status	cai_textclf_load_vocab(const cai_model_file *mf, const char *prefix, int64_t V, uint64_t seed,
								   cai_strindex *ix, int32_t **own_slot, size_t *mem, cai_error *err);

/* The same for the K bucket rows ("<prefix>.buckets{,.slots}", buckets below buckets). */
cai_status	cai_textclf_load_buckets(const cai_model_file *mf, const char *prefix, int64_t K,
									 uint32_t buckets, cai_intindex *ix, int32_t **own_slot,
									 size_t *mem, cai_error *err);

/*
 * The bucket -> row map by rank, "<prefix>.buckets.rank", I32
 * (ceil(buckets / 64), 3): block j covers buckets 64j .. 64j + 63; [j][0]
 * is the number of bucket rows below bucket 64j, [j][1] and [j][2] the low
 * and high 32 bits of the mask of the block's buckets that have a row.  The
 * bucket rows follow the increasing buckets ("<prefix>.buckets"), so a
 * bucket's row is its rank: one read of 12 bytes, from a table of
 * buckets * 3 / 16 bytes (375 KB for 2,000,000 buckets, small enough to stay
 * in cache), where the slot index probes a slot array of 4 to 8 bytes per
 * row and then reads the keys.  Optional: models written before it existed
 * use the slot index.
 */
#define TEXTCLF_RANK_BLOCK		64

/*
 * Bits set in x.  The portable x86-64 build has no popcnt instruction, and
 * __builtin_popcountll there is a call into libgcc: a bit count per bucket
 * feature, in training's inner loop, is cheaper inline.
 */
static inline uint32_t
cai_popcount64(uint64_t x)
{
#if defined(__POPCNT__) || defined(__aarch64__)
	return (uint32_t) __builtin_popcountll(x);
#else
	x -= (x >> 1) & UINT64_C(0x5555555555555555);
	x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
	x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
	return (uint32_t) ((x * UINT64_C(0x0101010101010101)) >> 56);
#endif
}

static inline uint32_t
cai_bucket_rank_blocks(uint32_t buckets)
{
	return (uint32_t) (((uint64_t) buckets + TEXTCLF_RANK_BLOCK - 1) / TEXTCLF_RANK_BLOCK);
}

/*
 * Row of bucket b (below the buckets the map was made for) among K bucket
 * rows, -1 if it has none; never a row outside 0 .. K - 1, whatever rank
 * holds.
 */
static inline int32_t
cai_bucket_rank_find(const int32_t *rank, int32_t K, uint32_t b)
{
	const int32_t *blk = rank + (size_t) (b / TEXTCLF_RANK_BLOCK) * 3;
	uint64_t	bits = (uint64_t) (uint32_t) blk[1] | (uint64_t) (uint32_t) blk[2] << 32;
	uint64_t	bit = 1ULL << (b % TEXTCLF_RANK_BLOCK);
	uint32_t	r;

	if ((bits & bit) == 0)
		return -1;
	r = (uint32_t) blk[0] + cai_popcount64(bits & (bit - 1));
	return r < (uint32_t) K ? (int32_t) r : -1;
}

/*
 * Add "<prefix>.buckets.rank" for the bucket rows of tab (packed by
 * cai_textclf_pack_tables, K > 0) to ts + *nt; tab->brank holds it.
 */
cai_status	cai_textclf_pack_bucket_rank(cai_textclf_tables *tab, uint32_t buckets, const char *prefix,
										 cai_tensor *ts, int *nt, cai_error *err);

/*
 * The rank map of a loaded model into *rank, a view of
 * "<prefix>.buckets.rank", NULL when the model has none (then K == 0 or a
 * model written before it).  keys are the K increasing buckets (loaded by
 * cai_textclf_load_buckets); unless mf is trusted the map must describe
 * exactly them.
 */
cai_status	cai_textclf_load_bucket_rank(const cai_model_file *mf, const char *prefix, int64_t K,
										 uint32_t buckets, const int32_t *keys, const int32_t **rank,
										 cai_error *err);

/* ---------------------------------------------------------------------- */
/* What both trainers share (textclf_train_common.c)                      */
/* ---------------------------------------------------------------------- */

/*
 * For the training memory estimates, from the text bytes alone: the bytes
 * the training rows are read to (at most max_tokens * bytes_per_token each)
 * into *bytes and their tokens (about 4 bytes each, at most max_tokens, plus
 * eos per row) into *tokens, both added to.  Rows of token ids give their
 * tokens exactly and, as bytes, those of their distinct words.
 */
void		cai_textclf_estimate_tokens(const cai_textclf_data *train, int max_tokens, size_t bytes_per_token,
										int eos, size_t *bytes, size_t *tokens);

/* Epochs of the option epochs = 0: enough for updates row updates of n_tr rows, within the bounds. */
int			cai_textclf_auto_epochs(size_t n_tr, size_t updates, int min_epochs, int max_epochs);

/*
 * The embedding size of a training with vectors vec (NULL or empty: none):
 * the option "dimensions", or with vectors their dimension, which the
 * option, when the user set it, must equal (else CAI_ERR_INVALID naming
 * both sizes).  Reads vec->n and vec->dim only: cai_textclf_train checks
 * the rest once.
 */
cai_status	cai_textclf_vector_dim(const cai_options *opts, const cai_word_vectors *vec, int *dim,
								   cai_error *err);

/*
 * What both trainers, and the gradient probes, prepare first from the
 * training data: the rows, their tokens as type ids, the vocabulary; then,
 * filled by the architecture, its bucket rows.  Zero it before
 * cai_textclf_prepare; release it with cai_textclf_prep_free (also on
 * error).
 */
typedef struct cai_textclf_prep
{
	int			L;				/* classes */
	cai_textclf_rows rows;		/* training rows first, then validation rows */
	/*
	 * the rows scores come from: the validation rows, or the training rows
	 * when there are none, every eval_step-th of them when there are more
	 * than TEXTCLF_EVAL_TRAIN_MAX: row eval_from + j * eval_step for j <
	 * n_eval (cai_textclf_eval_row), their labels in eval_lab (n_eval)
	 */
	size_t		eval_from;
	size_t		n_eval;
	size_t		eval_step;
	const int32_t *eval_lab;
	int32_t    *eval_lab_own;	/* eval_lab when it is not a view of rows.lab */
	/* tokens as type ids (see cai_textclf_tokenize_rows) */
	size_t	   *tok_off;		/* (n_tr + n_va + 1) */
	int32_t    *tok_type;		/* (n_tokens) */
	size_t		tok_cap;
	/*
	 * Set by the architecture before cai_textclf_prepare: with rows of token
	 * ids, map each word to its type (word_type) instead of copying the
	 * rows' type ids (tok_off and tok_type stay NULL); read rows with
	 * cai_textclf_row_types either way.
	 */
	bool		types_by_word;
	int32_t    *word_type;		/* (words) type of each word of the rows' word table */
	int32_t		eos_type;		/* the end-of-text token's type, -1 when the rule has none */
	cai_textclf_types types;
	/* the vocabulary (see cai_textclf_choose_vocab) */
	int32_t		V;
	int32_t    *type_vocab;		/* (types.n + 1) vocabulary id or -1 */
	cai_textclf_vocab_item *vitems;	/* (V) */
	int32_t		V_vectors;		/* of the V, words of the vectors only (cai_textclf_extend_vocab) */
	/* the architecture's: buckets with an embedding row */
	int32_t    *bmap;			/* (buckets) bucket row or -1 */
	size_t		bmap_mapped;	/* cai_calloc_large's size of bmap, 0 from cai_malloc */
	int32_t		K;
	/* predictions of the evaluation rows */
	int32_t    *pred;			/* (n_eval) of the current parameters */
	int32_t    *best_pred;		/* (n_eval) of the best epoch */
} cai_textclf_prep;

/*
 * Fill prep for n_labels classes: the rows (cai_textclf_split with the
 * options validation_fraction and seed; valid may be NULL), their tokens
 * under rule (ticking tk), the vocabulary of the option min_count, and the
 * prediction arrays.
 */
cai_status	cai_textclf_prepare(const cai_options *opts, int n_labels, const cai_textclf_data *train,
								const cai_textclf_data *valid, const cai_textclf_token_rule *rule,
								struct cai_trainer *tk, cai_textclf_prep *prep, cai_error *err);
void		cai_textclf_prep_free(cai_textclf_prep *prep);

/*
 * Training rows scored, at most, when there are no validation rows: every
 * k-th training row beyond that (scoring all 10,000,000 rows took 20 s),
 * spread over the rows in the data's order so that a table sorted by label
 * or by time is sampled across.
 */
#define TEXTCLF_EVAL_TRAIN_MAX 100000

/* TEXTCLF_EVAL_TRAIN_MAX; only the unit tests change it (to sample small data). */
extern size_t cai_textclf_eval_train_max;

/*
 * The fast trainer's embedding scale (weight decay) is folded into the rows
 * when it falls below this (1e-6; tests set it above 1 to fold at every
 * application of the decay).
 */
extern double cai_textclf_fast_scale_fold;

/*
 * The rows each shard of the fast trainer trains in a round with threads
 * (4096; tests lower it so that a small training has the rounds that make
 * it keep hot rows: FAST_HOT_MIN_ROUNDS).
 */
extern size_t cai_textclf_fast_shard_rows;

/*
 * Test seam: the buckets the fast architecture's memory estimate counts in
 * rows of token ids (its pass over the rows split over threads), with the
 * options' character and word n-grams; SIZE_MAX on invalid options or out
 * of memory.
 */
extern size_t cai_textclf_fast_count_buckets(const cai_options *opts, const cai_textclf_tokens *tk, int threads);

/* The row of evaluation row j (j < n_eval) of prep. */
static inline size_t
cai_textclf_eval_row(const cai_textclf_prep *prep, size_t j)
{
	return prep->eval_from + j * prep->eval_step;
}

/*
 * The type ids of row r of prep, *nt of them: a view of tok_type, or with
 * types by word the row's words mapped into buf (max_tokens + 1 entries).
 */
static inline const int32_t *
cai_textclf_row_types(const cai_textclf_prep *prep, size_t r, int32_t *buf, size_t *nt)
{
	const int32_t *ids;
	size_t		n;

	if (prep->tok_type != NULL || prep->word_type == NULL)
	{
		*nt = prep->tok_off[r + 1] - prep->tok_off[r];
		return prep->tok_type + prep->tok_off[r];
	}
	ids = cai_textclf_row_ids(&prep->rows, r, &n);
	for (size_t i = 0; i < n; i++)
		buf[i] = prep->word_type[ids[i]];
	if (prep->eos_type >= 0)
		buf[n++] = prep->eos_type;
	*nt = n;
	return buf;
}

/*
 * Rows an epoch's loop asks for ahead of the one it trains on (see
 * cai_textclf_prep_prefetch), per stage.
 */
#define TEXTCLF_PREFETCH_AHEAD 8

/*
 * Ask for the rows at positions i + TEXTCLF_PREFETCH_AHEAD .. of an epoch's
 * order (n positions) before they are read: a row in a shuffled order is in
 * no cache, and reading it is a chain of misses (its entry of src, where it
 * starts, its ids), each waiting for the last.  Called at every position,
 * it takes the chain a link a call, a stage of rows apart: the position
 * 3 stages ahead gets its src entry asked for, 2 ahead its start (its src
 * entry read), 1 ahead its ids (its start read) and its label.  Always
 * inlined: GCC 12 finds a call to it free of side effects (prefetches do
 * not count) and deletes it.
 */
static inline __attribute__((always_inline)) void
cai_textclf_prep_prefetch(const cai_textclf_prep *prep, const int32_t *order, size_t i, size_t n)
{
	const cai_textclf_rows *rows = &prep->rows;
	const size_t a = TEXTCLF_PREFETCH_AHEAD;
	const cai_textclf_tokens *t;
	size_t		s;

	if (i + a < n)
		__builtin_prefetch(rows->lab + order[i + a]);
	if (prep->tok_type != NULL || prep->word_type == NULL)
	{
		/* the rows' type ids: where row r starts, then its ids */
		if (i + 2 * a < n)
			__builtin_prefetch(prep->tok_off + order[i + 2 * a]);
		if (i + a < n)
			__builtin_prefetch(prep->tok_type + prep->tok_off[order[i + a]]);
		return;
	}
	if (rows->src != NULL && i + 3 * a < n)
		__builtin_prefetch(rows->src + order[i + 3 * a]);
	if (i + 2 * a < n)
	{
		t = cai_textclf_row_where(rows, (size_t) order[i + 2 * a], &s);
		__builtin_prefetch(t->off + s);
	}
	if (i + a < n)
	{
		int64_t		o;

		t = cai_textclf_row_where(rows, (size_t) order[i + a], &s);
		o = t->off[s];
		__builtin_prefetch(t->chunks[o >> TEXTCLF_TOKENS_CHUNK_BITS] +
						   (o & (((int64_t) 1 << TEXTCLF_TOKENS_CHUNK_BITS) - 1)));
	}
}

/*
 * Vocabulary rows for words the vectors vec have and the training rows lack
 * (NULL or empty vec, or max_words 0: nothing to do): the first max_words
 * vector words, in the set's order (the common sets list the most frequent
 * first), that are one token under rule and whose normalized form is not in
 * the vocabulary yet are appended to it after the training words, as types
 * of count 0 (prep->V_vectors of them).  cai_textclf_match_vectors then
 * gives them their vectors, which no training row moves: a text classified
 * later keeps the pretrained vector of a word the training rows never had,
 * where it would otherwise get the unknown word's row.  Call it after
 * cai_textclf_prepare, before the architecture's bags.
 */
cai_status	cai_textclf_extend_vocab(cai_textclf_prep *prep, const cai_textclf_token_rule *rule,
									 const cai_word_vectors *vec, int64_t max_words, cai_error *err);

/*
 * Pretrained vectors matched to the vocabulary of a prep: row[v] is the
 * vector that initialises vocabulary word v, or -1.  Coverage counts leave
 * out the architecture's end-of-text pseudo-token.
 */
typedef struct cai_textclf_vec_match
{
	int32_t    *row;			/* (V) row of the vectors, or -1; NULL: no vectors */
	int64_t		words;			/* vocabulary words */
	int64_t		words_found;	/* of them with a vector */
	int64_t		tokens;			/* token occurrences in the training rows */
	int64_t		tokens_found;	/* of them of words with a vector */
} cai_textclf_vec_match;

/*
 * Match vec (NULL or empty: nothing to do, match->row stays NULL) to
 * prep's vocabulary: word v takes the first vector word equal to it (the
 * vector word hashed as rule hashes a normalized token), else the first
 * whose normalized form (rule->norm) equals it, so a lower-cased set
 * (GloVe) and a cased one (word2vec) both match.  eos (may be NULL) is the
 * pseudo-token the counts leave out.  Zero match before; release it with
 * cai_textclf_vec_match_free.
 */
cai_status	cai_textclf_match_vectors(const cai_textclf_prep *prep, const cai_textclf_token_rule *rule,
									  const cai_word_vectors *vec, const char *eos,
									  cai_textclf_vec_match *match, cai_error *err);
void		cai_textclf_vec_match_free(cai_textclf_vec_match *match);

/* Copy the matched vectors into rows [0, V) of emb (rows of vec->dim floats). */
void		cai_textclf_copy_vectors(const cai_textclf_vec_match *match, int32_t V,
									 const cai_word_vectors *vec, float *emb);

/*
 * "vector_coverage": {"words", "tokens" (fractions found), "words_found"}
 * into metrics when vectors were matched; false on out of memory.
 */
bool		cai_textclf_put_vector_coverage(struct json_object *metrics, const cai_textclf_vec_match *match);

/*
 * The epochs and what follows them: cai_trainer_run for epochs with
 * patience (without validation rows the last epoch is kept), a check that
 * the best parameters (best, n_best floats) are finite, the seconds trained
 * into *seconds, and the metrics of the best epoch: the classification
 * report of prep->best_pred, the trainer's keys (cai_trainer_put_metrics),
 * epochs_planned, vocab_size and bucket_rows; also the trainer's
 * provenance keys into prov.  *metrics (NULL on failure, else the caller
 * releases it) stays open for the architecture's own keys.
 */
cai_status	cai_textclf_run_epochs(struct cai_trainer *tk, const struct cai_trainer_hooks *hooks,
								   int epochs, int patience, const cai_textclf_prep *prep,
								   const float *best, size_t n_best, const char *const *label_names,
								   struct json_object *prov, uint64_t seed, double *seconds,
								   struct json_object **metrics, cai_error *err);

/*
 * The architecture's metadata object with its first keys: feature_version,
 * feature_fingerprint (16 hex digits) and dimensions.  NULL on out of memory.
 */
struct json_object *cai_textclf_feature_json(int feature_version, uint64_t fingerprint, int dimensions);

/*
 * The token options (see cai_textclf_check_token_options) into the
 * architecture's metadata object: minn, maxn, max_tokens, buckets.  false
 * on out of memory.
 */
bool		cai_textclf_put_token_options(struct json_object *features, int minn, int maxn, int max_tokens,
										  uint32_t buckets);

/*
 * Metadata JSON text of a model (cai_malloc'ed; NULL on out of memory):
 * task, architecture, labels, cai_version, options, then features (the
 * object cai_textclf_feature_json began) under the architecture's name, then
 * metrics and provenance.  Takes ownership of features (may be NULL: then
 * NULL is returned); metrics and prov stay the caller's.  vector_dim is the
 * dimension of the vectors trained with, 0 for none: then the options
 * leave out the vector options (word_vectors, freeze_vectors), so a model
 * trained without vectors has the bytes it had before they existed; with
 * vectors "dimensions" is the size used.
 */
char	   *cai_textclf_metadata(const char *architecture, const cai_options *opts, int vector_dim,
								 const char *const *label_names, int n_labels,
								 struct json_object *features, struct json_object *metrics,
								 struct json_object *prov);

/*
 * After serialization: add "score" (the accuracy) and "seconds" to metrics
 * and copy them to *metrics_json (cai_malloc'ed).  When that copy fails,
 * the model is released (*model NULL, *model_len 0).
 */
cai_status	cai_textclf_return_metrics(struct json_object *metrics, double seconds,
									   uint8_t **model, size_t *model_len,
									   char **metrics_json, cai_error *err);

/* ---------------------------------------------------------------------- */
/* The gradient check (gradcheck.h)                                       */
/* ---------------------------------------------------------------------- */

/*
 * The probe of each architecture (textclf_fast_train.c,
 * textclf_accurate_train.c) on training rows the caller has checked; on
 * failure nothing is left to free.
 */
cai_status	cai_textclf_fast_grad_probe(const cai_options *opts, int n_labels, const cai_textclf_data *train,
										cai_grad_probe *probe, cai_error *err);
cai_status	cai_textclf_accurate_grad_probe(const cai_options *opts, int n_labels,
											const cai_textclf_data *train,
											cai_grad_probe *probe, cai_error *err);

#endif							/* CAI_TEXTCLF_INTERNAL_H */
