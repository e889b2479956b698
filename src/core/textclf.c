/*
 * textclf.c: text classification.
 *
 * The public entry points dispatch on the architecture: "fast" is below,
 * "accurate" is in textclf_accurate.c (see textclf_internal.h).
 *
 * The fast architecture (fastText's supervised model, Joulin et al. 2016):
 *
 *   features  every token of cai_tokenize(), normalized by
 *             cai_token_normalize(), contributes
 *               - its vocabulary row, when the word occurred at least
 *                 min_count times in the training rows;
 *               - one hashed row per character n-gram (minn..maxn code
 *                 points of "<word>"), so unseen and misspelled words still
 *                 have features;
 *               - one hashed row per word n-gram (2..word_ngrams) ending at
 *                 the token.
 *             Hashed features land in `buckets` buckets.  Only the buckets
 *             that occur in the training rows get a row ("bucket rows"); a
 *             bucket never seen in training contributes nothing.
 *   model     h = mean of the feature rows of E (V + K, D);
 *             p = softmax(W h), W (L, D).  As in fastText there is no
 *             bias: every text ends with an end-of-text pseudo-token
 *             (a word of its own and the last word n-grams), which does
 *             that job and measurably beats a bias when the class balance
 *             of the training rows differs from the texts classified.
 *   training  per-example SGD with a linearly decaying learning rate
 *             (fastText's), optional feature dropout, one thread, seeded:
 *             the same data, options and seed give a bit-identical model.
 *             The epoch with the best validation accuracy is kept.
 *
 * Model tensors (shapes in rows of the embedding):
 *   fast.vocab.bytes    U8  (nbytes)   vocabulary words, each NUL-terminated
 *   fast.vocab.offsets  I32 (V + 1)    word i is bytes[offsets[i] .. offsets[i+1] - 1)
 *   fast.buckets        I32 (K)        bucket of each bucket row, increasing
 *   fast.embedding      F32 (V + K, D) vocabulary rows, then bucket rows
 *   fast.output.weight  F32 (L, D)
 * and, so that a load builds nothing and copies nothing (the loader uses
 * every tensor in place; models written before these existed still load,
 * with the tables and word vectors built privately at load):
 *   fast.vocab.slots    I32 (cap)      format.h cai_strindex slots of the vocabulary
 *   fast.buckets.slots  I32 (cap)      cai_intindex slots of fast.buckets
 *   fast.word_vectors   F32 (V, D)     word row + its character n-gram rows
 *   fast.word_counts    I32 (V)        rows summed into each word vector
 * A tensor whose first dimension would be 0 is omitted (the format has no
 * empty tensors); the counts in the metadata say which to expect.
 */
#include "cai/textclf.h"
#include "textclf_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cai/metrics.h"
#include "cai/tokenize.h"
#include "modelutil.h"

/* ---------------------------------------------------------------------- */
/* Options                                                                */
/* ---------------------------------------------------------------------- */

#define TEXTCLF_MAX_DIM			1024	/* inference keeps h on the stack */
#define TEXTCLF_MAX_LABELS		100000
#define TEXTCLF_MAX_BUCKETS		16777216

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
#define TEXTCLF_OPT_COMMON \
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL, \
	"random seed: the same data, options and seed give the same model"}, \
	{"validation_fraction", CAI_OPT_FLOAT, "0.1", 0.0, 0.5, NULL, \
	"fraction of the rows held out (stratified) for validation when no validation rows are given"}, \
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
	"stop after this many epochs without a better validation score (0 = never stop early)"}

const cai_opt_def cai_textclf_fast_option_defs[] = {
	TEXTCLF_OPT_ARCHITECTURE("fast"),
	{"epochs", CAI_OPT_INT, "0", 0, 1000, NULL,
	"passes over the training rows; 0 = automatic (5, more for small data sets so that training makes at least 100000 row updates, at most 50 passes)"},
	{"learning_rate", CAI_OPT_FLOAT, "0.1", 1e-6, 10.0, NULL,
	"initial learning rate of SGD, updating after every row and decaying linearly to 0"},
	{"dimensions", CAI_OPT_INT, "50", 2, TEXTCLF_MAX_DIM, NULL,
	"embedding size"},
	{"dropout", CAI_OPT_FLOAT, "0", 0.0, 0.9, NULL,
	"probability of dropping each input feature while training"},
	{"word_ngrams", CAI_OPT_INT, "2", 1, 5, NULL,
	"longest word n-gram used as a feature (1 = words only)"},
	TEXTCLF_OPT_COMMON,
};
const int	cai_textclf_fast_n_option_defs = sizeof(cai_textclf_fast_option_defs) / sizeof(cai_textclf_fast_option_defs[0]);

const cai_opt_def cai_textclf_accurate_option_defs[] = {
	TEXTCLF_OPT_ARCHITECTURE("accurate"),
	{"epochs", CAI_OPT_INT, "0", 0, 1000, NULL,
	"passes over the training rows; 0 = automatic (enough passes for 250000 row updates, 4 to 30)"},
	{"learning_rate", CAI_OPT_FLOAT, "0.003", 1e-6, 10.0, NULL,
	"initial learning rate of Adam, decaying linearly to a tenth"},
	{"batch_size", CAI_OPT_INT, "32", 1, 4096, NULL,
	"rows per update (fewer for long texts)"},
	{"dimensions", CAI_OPT_INT, "64", 2, TEXTCLF_MAX_DIM, NULL,
	"embedding size, also the LSTM units per direction"},
	{"dropout", CAI_OPT_FLOAT, "0.5", 0.0, 0.9, NULL,
	"dropout of the pooled features; words are replaced by the unknown-word vector with half this probability"},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"BLAS threads (bit-identical results need 1)"},
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
/* Features shared by training and inference                              */
/* ---------------------------------------------------------------------- */

/*
 * Version of the feature extraction.  Bump it when anything below changes
 * the features of a text; models record it and the fingerprint of a probe
 * text, and loading refuses a model whose features this build would compute
 * differently.
 */
#define FAST_FEATURE_VERSION	1
#define FAST_NORM_MAX			128 /* bytes of a normalized token (incl. NUL) */
#define FAST_CHAR_NGRAMS_MAX	128 /* character n-grams per token */
#define FAST_MAX_NGRAMS			5	/* upper bound of word_ngrams */
#define FAST_BYTES_PER_TOKEN	32	/* text read: at most max_tokens * this */
#define FAST_FOLD_DIGITS		false
#define FAST_AUTO_UPDATES		100000	/* row updates the automatic epoch count aims at */
#define FAST_SEED_WORD			0x63616977ULL	/* "caiw" */
#define FAST_SALT_CHAR			0x9e3779b97f4a7c15ULL
#define FAST_SALT_NGRAM			0xc2b2ae3d27d4eb4fULL

typedef struct FastParams
{
	int			dim;
	int			word_ngrams;
	int			minn;
	int			maxn;
	int			max_tokens;
	uint32_t	buckets;
	int			eos;			/* 1: an end-of-text pseudo-token ends every text */
} FastParams;

static inline uint64_t
fast_word_hash(const char *s, size_t len)
{
	return cai_hash_bytes(s, len, FAST_SEED_WORD);
}

static inline uint32_t
fast_char_bucket(uint64_t h, uint32_t buckets)
{
	return (uint32_t) (cai_textclf_mix(h ^ FAST_SALT_CHAR) % buckets);
}

/* Bucket of the word n-gram hashes[0..n) (n >= 2). */
static inline uint32_t
fast_ngram_bucket(const uint64_t *hashes, int n, uint32_t buckets)
{
	uint64_t	g = hashes[0];

	for (int j = 1; j < n; j++)
		g = g * 116049371ULL + hashes[j];
	return (uint32_t) (cai_textclf_mix(g ^ (FAST_SALT_NGRAM * (uint64_t) n)) % buckets);
}

/* The end-of-text pseudo-token (the tokenizer never produces it: '<' is punctuation). */
#define FAST_EOS "</s>"
#define FAST_EOS_LEN 4

static inline int
fast_char_ngrams(const FastParams *fp, const char *norm, size_t len, uint64_t *out)
{
	if (fp->minn <= 0 || fp->maxn <= 0)
		return 0;
	return (int) cai_char_ngram_hashes(norm, len, fp->minn, fp->maxn, out, FAST_CHAR_NGRAMS_MAX);
}

/* Character n-grams of a normalized token (none for the end-of-text pseudo-token). */
static inline int
fast_type_char_ngrams(const FastParams *fp, const char *s, size_t len, uint64_t *out)
{
	if (len == FAST_EOS_LEN && memcmp(s, FAST_EOS, FAST_EOS_LEN) == 0)
		return 0;
	return fast_char_ngrams(fp, s, len, out);
}

/*
 * Normalized text of token i of toks (n_toks tokens), or of the end-of-text
 * pseudo-token when i == n_toks.
 */
static inline size_t
fast_token_norm(const char *text, const cai_token *toks, size_t i, size_t n_toks, char *norm)
{
	if (i == n_toks)
	{
		memcpy(norm, FAST_EOS, FAST_EOS_LEN + 1);
		return FAST_EOS_LEN;
	}
	return cai_token_normalize(text + toks[i].start, (size_t) (toks[i].end - toks[i].start),
							   FAST_FOLD_DIGITS, norm, FAST_NORM_MAX);
}

/*
 * Fingerprint of the raw features of a probe text (token boundaries, word
 * hashes, character n-gram hashes): a model trained by a build whose
 * tokenizer or hashing differs would silently compute other features.
 */
static cai_status
fast_fingerprint(const FastParams *fp, uint64_t *out, cai_error *err)
{
	static const char probe[] =
	"The U.S. film's 2nd half isn't bad -- it's GREAT!!! caf\xc3\xa9 na\xc3\xafve "
	"\xe5\xa5\xbd\xe7\x9c\x8b\xe7\x9a\x84\xe7\x94\xb5\xe5\xbd\xb1 "
	"\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2 3.14 e-mail";
	cai_token  *toks;
	size_t		n;
	uint64_t	h = 14695981039346656037ULL;
	uint64_t	cg[FAST_CHAR_NGRAMS_MAX];
	char		norm[FAST_NORM_MAX];
	cai_status	st;

	st = cai_textclf_tokenize(probe, sizeof(probe) - 1, 512, FAST_BYTES_PER_TOKEN, &toks, &n, err);
	if (st != CAI_OK)
		return st;
	for (size_t i = 0; i < n; i++)
	{
		size_t		nl = cai_token_normalize(probe + toks[i].start,
											 (size_t) (toks[i].end - toks[i].start),
											 FAST_FOLD_DIGITS, norm, sizeof(norm));
		int			nc = fast_char_ngrams(fp, norm, nl, cg);

		h = cai_textclf_mix(h ^ (uint64_t) toks[i].start) + (uint64_t) toks[i].end;
		h = cai_textclf_mix(h ^ fast_word_hash(norm, nl));
		for (int j = 0; j < nc; j++)
			h = cai_textclf_mix(h ^ cg[j]);
	}
	cai_free(toks);
	*out = cai_textclf_mix(h ^ (uint64_t) FAST_FEATURE_VERSION);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* The loaded model                                                       */
/* ---------------------------------------------------------------------- */

typedef enum TextclfArch
{
	TEXTCLF_FAST = 0,
	TEXTCLF_ACCURATE = 1		/* textclf_accurate.c */
} TextclfArch;

/*
 * A loaded fast model.  The tables and weights are views of the model
 * file's tensors (which may live in a shared read-only mapping): nothing is
 * written after load.  Private memory (allocated by fast_load, counted in
 * cai_textclf_memory) is the struct itself and, only for models written
 * before the serialized tables existed, the slot arrays and word vectors
 * built at load (own_*).
 */
typedef struct FastModel
{
	FastParams	p;
	int32_t		n_vocab;		/* V */
	int32_t		n_bucket_rows;	/* K */
	cai_strindex vocab;			/* words: fast.vocab.{bytes,offsets,slots} */
	cai_intindex bucket;		/* bucket -> row: fast.buckets{,.slots} */
	const float *emb;			/* (V + K, D) word rows, then bucket rows */
	const float *wordvec;		/* (V, D) word row + its character n-gram rows */
	const int32_t *word_cnt;	/* (V) rows summed into each word vector */
	const float *out_w;			/* (L, D) */
	int32_t    *own_vocab_slot; /* private tables of old models, else NULL */
	int32_t    *own_bucket_slot;
	float	   *own_wordvec;
	int32_t    *own_word_cnt;
} FastModel;

struct cai_textclf
{
	TextclfArch arch;
	int			n_labels;
	char	  **labels;			/* (n_labels) */
	size_t		memory;
	FastModel  *fast;
	cai_textclf_accurate *acc;
};

static inline int32_t
fast_vocab_find(const FastModel *fm, const char *s, size_t len)
{
	return cai_strindex_find(&fm->vocab, s, len);
}

static inline int32_t
fast_bucket_find(const FastModel *fm, uint32_t b)
{
	return cai_intindex_find(&fm->bucket, (int32_t) b);
}

/*
 * Small vector kernels.  Eight lanes at a time through GCC/clang vector
 * extensions (plain -O2 does not vectorize loops of unknown length); memcpy
 * keeps the loads and stores free of alignment assumptions.
 */
typedef float v8f __attribute__((vector_size(32)));

/* y += x */
static inline void
vec_add(float *restrict y, const float *restrict x, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, y + i, sizeof(a));
		memcpy(&b, x + i, sizeof(b));
		a += b;
		memcpy(y + i, &a, sizeof(a));
	}
	for (; i < n; i++)
		y[i] += x[i];
}

/* y += alpha x */
static inline void
vec_axpy(float *restrict y, float alpha, const float *restrict x, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, y + i, sizeof(a));
		memcpy(&b, x + i, sizeof(b));
		a += alpha * b;
		memcpy(y + i, &a, sizeof(a));
	}
	for (; i < n; i++)
		y[i] += alpha * x[i];
}

/* x . y, summed in eight lanes then across them */
static inline float
vec_dot(const float *x, const float *y, int n)
{
	v8f			acc = {0};
	float		s = 0.0f;
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		v8f			a,
					b;

		memcpy(&a, x + i, sizeof(a));
		memcpy(&b, y + i, sizeof(b));
		acc += a * b;
	}
	for (int j = 0; j < 8; j++)
		s += acc[j];
	for (; i < n; i++)
		s += x[i] * y[i];
	return s;
}

/* logits -> probabilities in place; returns log-sum-exp */
static double
softmax_inplace(float *z, int n)
{
	float		mx = z[0];
	double		sum = 0.0;

	for (int i = 1; i < n; i++)
		if (z[i] > mx)
			mx = z[i];
	for (int i = 0; i < n; i++)
	{
		z[i] = expf(z[i] - mx);
		sum += z[i];
	}
	for (int i = 0; i < n; i++)
		z[i] = (float) (z[i] / sum);
	return (double) mx + log(sum);
}

/* z (L) = W h (no bias, as fastText: the end-of-text token plays its part) */
static void
fast_output_forward(const float *w, const float *h, int L, int D, float *z)
{
	for (int c = 0; c < L; c++)
		z[c] = vec_dot(w + (size_t) c * D, h, D);
}

static cai_status
fast_predict(const cai_textclf *m, const char *text, size_t len, float *probs, cai_error *err)
{
	const FastModel *fm = m->fast;
	const FastParams *fp = &fm->p;
	const int	D = fp->dim;
	const int32_t V = fm->n_vocab;
	float		h[TEXTCLF_MAX_DIM];
	uint64_t	hist[FAST_MAX_NGRAMS] = {0};	/* word hashes of the last tokens */
	uint64_t	cg[FAST_CHAR_NGRAMS_MAX];
	char		norm[FAST_NORM_MAX];
	cai_token  *toks;
	size_t		n_toks;
	int64_t		nf = 0;
	cai_status	st;

	st = cai_textclf_tokenize(text, len, fp->max_tokens, FAST_BYTES_PER_TOKEN, &toks, &n_toks, err);
	if (st != CAI_OK)
		return st;
	memset(h, 0, sizeof(float) * (size_t) D);
	for (size_t i = 0; i < n_toks + (size_t) fp->eos; i++)
	{
		size_t		nl = fast_token_norm(text, toks, i, n_toks, norm);
		uint64_t	wh = fast_word_hash(norm, nl);
		int32_t		id = fast_vocab_find(fm, norm, nl);

		if (id >= 0)
		{
			/* the word's row and its character n-gram rows, summed before */
			vec_add(h, fm->wordvec + (size_t) id * D, D);
			nf += fm->word_cnt[id];
		}
		else
		{
			int			nc = fast_type_char_ngrams(fp, norm, nl, cg);

			for (int j = 0; j < nc; j++)
			{
				int32_t		r = fast_bucket_find(fm, fast_char_bucket(cg[j], fp->buckets));

				if (r >= 0)
				{
					vec_add(h, fm->emb + ((size_t) V + (size_t) r) * D, D);
					nf++;
				}
			}
		}
		/* shift the history, newest last */
		if (fp->word_ngrams > 1)
		{
			int			have = i + 1 < (size_t) fp->word_ngrams ? (int) i + 1 : fp->word_ngrams;

			memmove(hist, hist + 1, sizeof(uint64_t) * (FAST_MAX_NGRAMS - 1));
			hist[FAST_MAX_NGRAMS - 1] = wh;
			for (int n = 2; n <= have; n++)
			{
				int32_t		r = fast_bucket_find(fm, fast_ngram_bucket(hist + FAST_MAX_NGRAMS - n, n,
																	   fp->buckets));

				if (r >= 0)
				{
					vec_add(h, fm->emb + ((size_t) V + (size_t) r) * D, D);
					nf++;
				}
			}
		}
	}
	cai_free(toks);
	if (nf > 0)
	{
		float		inv = 1.0f / (float) nf;

		for (int d = 0; d < D; d++)
			h[d] *= inv;
	}
	fast_output_forward(fm->out_w, h, m->n_labels, D, probs);
	softmax_inplace(probs, m->n_labels);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Public inference API                                                   */
/* ---------------------------------------------------------------------- */

static void
fast_model_free(FastModel *fm)
{
	if (fm == NULL)
		return;
	cai_free(fm->own_vocab_slot);
	cai_free(fm->own_bucket_slot);
	cai_free(fm->own_wordvec);
	cai_free(fm->own_word_cnt);
	cai_free(fm);
}

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
	fast_model_free(m->fast);
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
			return fast_predict(m, text, len, probs, err);
		case TEXTCLF_ACCURATE:
			return cai_textclf_accurate_predict(m->acc, text, len, probs, err);
	}
	return cai_error_set(err, CAI_ERR_INTERNAL, "unknown architecture %d", (int) m->arch);
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

/*
 * Word vectors: each vocabulary word's row plus its character n-gram rows
 * (in the order training's evaluation adds them), so that a known word
 * costs one row at inference instead of a dozen.  Needs fm->emb and both
 * indexes.
 */
static void
fast_compute_word_vectors(const FastModel *fm, float *wordvec, int32_t *word_cnt)
{
	const int	D = fm->p.dim;
	const int32_t V = fm->n_vocab;

	for (int32_t id = 0; id < V; id++)
	{
		const char *w = fm->vocab.bytes + fm->vocab.off[id];
		size_t		wl = (size_t) (fm->vocab.off[id + 1] - fm->vocab.off[id] - 1);
		uint64_t	cg[FAST_CHAR_NGRAMS_MAX];
		int			nc = fast_type_char_ngrams(&fm->p, w, wl, cg);
		float	   *wv = wordvec + (size_t) id * D;
		int32_t		cnt = 1;

		memcpy(wv, fm->emb + (size_t) id * D, sizeof(float) * (size_t) D);
		for (int j = 0; j < nc; j++)
		{
			int32_t		r = fast_bucket_find(fm, fast_char_bucket(cg[j], fm->p.buckets));

			if (r >= 0)
			{
				vec_add(wv, fm->emb + ((size_t) V + (size_t) r) * D, D);
				cnt++;
			}
		}
		word_cnt[id] = cnt;
	}
}

static cai_status
fast_load(cai_textclf *m, json_object *meta, const cai_model_file *mf, cai_error *err)
{
	FastModel  *fm;
	json_object *fj;
	int64_t		v;
	int64_t		V,
				K,
				rows;
	int64_t		L = m->n_labels;
	const cai_tensor *t;
	uint64_t	fp_want,
				fp_have;
	json_object *fpj;
	size_t		mem = sizeof(FastModel);
	cai_status	st;

	fm = cai_calloc(1, sizeof(FastModel));
	if (fm == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
	m->fast = fm;

	if (!json_object_object_get_ex(meta, "fast", &fj) || !json_object_is_type(fj, json_type_object))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks object \"fast\"");
	if ((st = cai_json_get_int(fj, "fast", "feature_version", FAST_FEATURE_VERSION, FAST_FEATURE_VERSION, &v, NULL)) != CAI_OK)
		return cai_error_set(err, CAI_ERR_VERSION,
							 "model uses text features of another version (this build computes version %d)",
							 FAST_FEATURE_VERSION);
	if ((st = cai_json_get_int(fj, "fast", "dimensions", 1, TEXTCLF_MAX_DIM, &v, err)) != CAI_OK)
		return st;
	fm->p.dim = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "word_ngrams", 1, FAST_MAX_NGRAMS, &v, err)) != CAI_OK)
		return st;
	fm->p.word_ngrams = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "minn", 0, 100, &v, err)) != CAI_OK)
		return st;
	fm->p.minn = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "maxn", 0, 100, &v, err)) != CAI_OK)
		return st;
	fm->p.maxn = (int) v;
	if ((fm->p.minn == 0) != (fm->p.maxn == 0) || fm->p.minn > fm->p.maxn)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata has inconsistent minn %d and maxn %d",
							 fm->p.minn, fm->p.maxn);
	if ((st = cai_json_get_int(fj, "fast", "max_tokens", 1, INT32_MAX / FAST_BYTES_PER_TOKEN, &v, err)) != CAI_OK)
		return st;
	fm->p.max_tokens = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "buckets", 1, TEXTCLF_MAX_BUCKETS, &v, err)) != CAI_OK)
		return st;
	fm->p.buckets = (uint32_t) v;
	if ((st = cai_json_get_int(fj, "fast", "eos", 0, 1, &v, err)) != CAI_OK)
		return st;
	fm->p.eos = (int) v;
	if ((st = cai_json_get_int(fj, "fast", "vocab_size", 0, INT32_MAX - 1, &V, err)) != CAI_OK)
		return st;
	if ((st = cai_json_get_int(fj, "fast", "bucket_rows", 0, fm->p.buckets, &K, err)) != CAI_OK)
		return st;
	if (V + K > INT32_MAX)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has too many embedding rows");
	fm->n_vocab = (int32_t) V;
	fm->n_bucket_rows = (int32_t) K;
	rows = V + K;

	/* the features this build computes must be those the model was trained on */
	if (!json_object_object_get_ex(fj, "feature_fingerprint", &fpj) ||
		!json_object_is_type(fpj, json_type_string) ||
		sscanf(json_object_get_string(fpj), "%" SCNx64, &fp_want) != 1)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"fast.feature_fingerprint\"");
	if ((st = fast_fingerprint(&fm->p, &fp_have, err)) != CAI_OK)
		return st;
	if (fp_have != fp_want)
		return cai_error_set(err, CAI_ERR_VERSION,
							 "model was trained with a tokenizer or feature hashing that differs from this build's");

	/*
	 * vocabulary.  A trusted model file (bytes that passed this validation
	 * before) skips the scans of tensor contents: the lookups are
	 * bounds-checked whatever the tensors hold.  Models without the
	 * serialized tables get the full checks and private tables.
	 */
	if (V > 0)
	{
		const cai_tensor *tb;
		const int32_t *off;
		int64_t		shape_off[1] = {V + 1};
		bool		serialized;

		if ((st = cai_model_file_expect(mf, "fast.vocab.offsets", CAI_I32, 1, shape_off, &t, err)) != CAI_OK)
			return st;
		if ((st = cai_model_file_expect(mf, "fast.vocab.bytes", CAI_U8, 1, NULL, &tb, err)) != CAI_OK)
			return st;
		if (tb->shape[0] > INT32_MAX)
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"fast.vocab.bytes\" is too large");
		off = t->data;
		if (off[0] != 0 || off[V] != tb->shape[0])
			return cai_error_set(err, CAI_ERR_FORMAT,
								 "tensor \"fast.vocab.offsets\" must start at 0 and end at the %" PRId64 " vocabulary bytes",
								 tb->shape[0]);
		fm->vocab.n = (int32_t) V;
		fm->vocab.bytes = tb->data;
		fm->vocab.nbytes = tb->nbytes;
		fm->vocab.off = off;
		fm->vocab.seed = FAST_SEED_WORD;
		if ((st = cai_textclf_index_slots(mf, "fast.vocab.slots", V, &fm->vocab.slot, &fm->vocab.mask,
								   &fm->own_vocab_slot, &serialized, &mem, err)) != CAI_OK)
			return st;
		if (!mf->trusted || !serialized)
		{
			for (int64_t i = 0; i < V; i++)
			{
				const char *w;

				if ((int64_t) off[i + 1] - (int64_t) off[i] < 2 || off[i + 1] > off[V])
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "tensor \"fast.vocab.offsets\" entry %" PRId64 " is out of range", i + 1);
				w = (const char *) tb->data + off[i];
				if (memchr(w, '\0', (size_t) (off[i + 1] - off[i])) != w + (off[i + 1] - off[i] - 1))
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "vocabulary word %" PRId64 " is not a single NUL-terminated string", i);
				if (off[i + 1] - off[i] > FAST_NORM_MAX)
					return cai_error_set(err, CAI_ERR_FORMAT, "vocabulary word %" PRId64 " is too long", i);
			}
			st = serialized ? cai_strindex_check(&fm->vocab, "vocabulary", err) :
				cai_strindex_build(&fm->vocab, fm->own_vocab_slot, "vocabulary", err);
			if (st != CAI_OK)
				return st;
		}
	}
	else if (cai_model_file_tensor(mf, "fast.vocab.offsets") != NULL ||
			 cai_model_file_tensor(mf, "fast.vocab.bytes") != NULL ||
			 cai_model_file_tensor(mf, "fast.vocab.slots") != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has vocabulary tensors but vocab_size 0");

	/* bucket rows */
	if (K > 0)
	{
		int64_t		shape_b[1] = {K};
		const int32_t *b;
		bool		serialized;

		if ((st = cai_model_file_expect(mf, "fast.buckets", CAI_I32, 1, shape_b, &t, err)) != CAI_OK)
			return st;
		b = t->data;
		fm->bucket.n = (int32_t) K;
		fm->bucket.keys = b;
		if ((st = cai_textclf_index_slots(mf, "fast.buckets.slots", K, &fm->bucket.slot, &fm->bucket.mask,
								   &fm->own_bucket_slot, &serialized, &mem, err)) != CAI_OK)
			return st;
		if (!mf->trusted || !serialized)
		{
			for (int64_t r = 0; r < K; r++)
			{
				if (b[r] < 0 || (uint32_t) b[r] >= fm->p.buckets || (r > 0 && b[r] <= b[r - 1]))
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "tensor \"fast.buckets\" entry %d (%d) is out of range or not increasing",
										 (int) r, (int) b[r]);
			}
			st = serialized ? cai_intindex_check(&fm->bucket, "bucket index", err) :
				cai_intindex_build(&fm->bucket, fm->own_bucket_slot, "bucket index", err);
			if (st != CAI_OK)
				return st;
		}
	}
	else if (cai_model_file_tensor(mf, "fast.buckets") != NULL ||
			 cai_model_file_tensor(mf, "fast.buckets.slots") != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"fast.buckets\" but bucket_rows 0");

	/* parameters */
	if (rows > 0)
	{
		int64_t		shape_e[2] = {rows, fm->p.dim};

		if ((st = cai_model_file_expect(mf, "fast.embedding", CAI_F32, 2, shape_e, &t, err)) != CAI_OK)
			return st;
		if (!mf->trusted && !cai_all_finite(t->data, (size_t) (rows * fm->p.dim)))
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"fast.embedding\" holds a non-finite value");
		fm->emb = t->data;
	}
	else if (cai_model_file_tensor(mf, "fast.embedding") != NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model has tensor \"fast.embedding\" but no rows");
	{
		int64_t		shape_w[2] = {L, fm->p.dim};

		if ((st = cai_model_file_expect(mf, "fast.output.weight", CAI_F32, 2, shape_w, &t, err)) != CAI_OK)
			return st;
		if (!mf->trusted && !cai_all_finite(t->data, (size_t) (L * fm->p.dim)))
			return cai_error_set(err, CAI_ERR_FORMAT, "tensor \"fast.output.weight\" holds a non-finite value");
		fm->out_w = t->data;
	}

	/*
	 * Word vectors: serialized by training (fast.word_vectors and
	 * fast.word_counts); an untrusted model's must equal what this build
	 * computes from the embedding, bit for bit.  Older models get them
	 * computed here, privately.
	 */
	{
		const cai_tensor *tw = cai_model_file_tensor(mf, "fast.word_vectors");
		const cai_tensor *tc = cai_model_file_tensor(mf, "fast.word_counts");
		const size_t D = (size_t) fm->p.dim;

		if (V == 0)
		{
			if (tw != NULL || tc != NULL)
				return cai_error_set(err, CAI_ERR_FORMAT, "model has word vectors but vocab_size 0");
		}
		else if (tw != NULL || tc != NULL)
		{
			int64_t		shape_v[2] = {V, fm->p.dim};

			if ((st = cai_model_file_expect(mf, "fast.word_vectors", CAI_F32, 2, shape_v, &tw, err)) != CAI_OK ||
				(st = cai_model_file_expect(mf, "fast.word_counts", CAI_I32, 1, shape_v, &tc, err)) != CAI_OK)
				return st;
			fm->wordvec = tw->data;
			fm->word_cnt = tc->data;
			if (!mf->trusted)
			{
				float	   *wv = cai_malloc(sizeof(float) * (size_t) V * D);
				int32_t    *wc = cai_malloc(sizeof(int32_t) * (size_t) V);
				bool		same;

				if (wv == NULL || wc == NULL)
				{
					cai_free(wv);
					cai_free(wc);
					return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
				}
				fast_compute_word_vectors(fm, wv, wc);
				same = memcmp(wv, fm->wordvec, sizeof(float) * (size_t) V * D) == 0 &&
					memcmp(wc, fm->word_cnt, sizeof(int32_t) * (size_t) V) == 0;
				cai_free(wv);
				cai_free(wc);
				if (!same)
					return cai_error_set(err, CAI_ERR_FORMAT,
										 "tensor \"fast.word_vectors\" does not match the embedding");
			}
		}
		else
		{
			fm->own_wordvec = cai_malloc(sizeof(float) * (size_t) V * D);
			fm->own_word_cnt = cai_malloc(sizeof(int32_t) * (size_t) V);
			if (fm->own_wordvec == NULL || fm->own_word_cnt == NULL)
				return cai_error_set(err, CAI_ERR_NOMEM, "out of memory loading the model");
			mem += (sizeof(float) * D + sizeof(int32_t)) * (size_t) V;
			fast_compute_word_vectors(fm, fm->own_wordvec, fm->own_word_cnt);
			fm->wordvec = fm->own_wordvec;
			fm->word_cnt = fm->own_word_cnt;
		}
	}
	m->memory += mem;
	return CAI_OK;
}

cai_status
cai_textclf_load(const cai_model_file *mf, cai_textclf **out, cai_error *err)
{
	json_object *meta = NULL;
	json_object *v;
	json_object *labels;
	cai_textclf *m = NULL;
	const char *arch;
	size_t		n_labels;
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
	if (strcmp(arch, "fast") == 0)
	{
		m->arch = TEXTCLF_FAST;
		st = fast_load(m, meta, mf, err);
	}
	else if (strcmp(arch, "accurate") == 0)
	{
		size_t		mem = 0;

		m->arch = TEXTCLF_ACCURATE;
		st = cai_textclf_accurate_load(mf, meta, m->n_labels, &m->acc, &mem, err);
		m->memory += mem;
	}
	else
		st = cai_error_set(err, CAI_ERR_FORMAT,
						   "text classification architecture \"%.64s\" is not supported by this build", arch);

done:
	json_object_put(meta);
	if (st == CAI_OK)
		*out = m;
	else
		cai_textclf_free(m);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Training: data preparation                                             */
/* ---------------------------------------------------------------------- */

/* Progress reporting with a time budget check. */
typedef struct Ticker
{
	cai_progress_fn fn;
	void	   *ctx;
	double		start;
	double		last;
	double		max_seconds;
	cai_progress p;
} Ticker;

/* Call the progress callback when 100 ms have passed; false = cancelled. */
static bool
ticker_tick(Ticker *tk, double fraction)
{
	double		t = cai_now_seconds();

	if (tk->fn == NULL || t - tk->last < 0.1)
		return true;
	tk->last = t;
	tk->p.fraction = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
	tk->p.epoch_done = false;
	return tk->fn(tk->ctx, &tk->p);
}

/* Everything the trainer allocates. */
typedef struct FastTrain
{
	FastParams	p;
	int			L;
	cai_textclf_rows rows;		/* train rows first, then validation rows */
	/* tokens as type ids */
	size_t	   *tok_off;		/* (n_all + 1) */
	int32_t    *tok_type;		/* (n_tokens) */
	size_t		tok_cap;
	cai_textclf_types	types;
	/* vocabulary */
	int32_t		V;
	int32_t    *type_vocab;		/* (n_types) vocabulary id or -1 */
	cai_textclf_vocab_item  *vitems;			/* (V) */
	/* character n-gram buckets of every type */
	size_t	   *type_cg_off;	/* (n_types + 1) */
	uint32_t   *type_cg;		/* (n_type_cg) */
	/* features: row ids of E, after remapping (V + bucket row) */
	size_t	   *feat_off;		/* (n_all + 1) */
	uint32_t   *feat;			/* (n_feat) */
	int32_t    *bmap;			/* (buckets) bucket row or -1 */
	int32_t		K;
	/* evaluation rows [eval_from, eval_from + n_eval): validation or training rows */
	size_t		eval_from;
	size_t		n_eval;
	size_t	   *ev_off;			/* (n_eval + 1) */
	uint32_t   *ev;				/* word vector ids (< V) or V + bucket row */
	float	   *wordvec;		/* (V, D) word row plus its character n-gram rows */
	int32_t    *wordcnt;		/* (V) rows summed into each word vector */
	/* parameters: E (R, D) | W (L, D); best copy alike */
	size_t		n_params;
	float	   *params;
	float	   *best;
	/* scratch */
	float	   *hidden;			/* (D) */
	float	   *grad;			/* (D) */
	float	   *probs;			/* (L) */
	uint32_t   *kept;			/* (max features of a row) */
	int32_t    *order;			/* (n_tr) */
	int32_t    *pred;			/* (n_va or n_tr) predictions of the current model */
	int32_t    *best_pred;		/* (same) predictions of the best epoch */
} FastTrain;

static void
fast_train_free(FastTrain *t)
{
	cai_textclf_rows_free(&t->rows);
	cai_free(t->tok_off);
	cai_free(t->tok_type);
	cai_textclf_types_free(&t->types);
	cai_free(t->type_vocab);
	cai_free(t->vitems);
	cai_free(t->type_cg_off);
	cai_free(t->type_cg);
	cai_free(t->feat_off);
	cai_free(t->feat);
	cai_free(t->bmap);
	cai_free(t->ev_off);
	cai_free(t->ev);
	cai_free(t->wordvec);
	cai_free(t->wordcnt);
	cai_free(t->params);
	cai_free(t->best);
	cai_free(t->hidden);
	cai_free(t->grad);
	cai_free(t->probs);
	cai_free(t->kept);
	cai_free(t->order);
	cai_free(t->pred);
	cai_free(t->best_pred);
}

/* Pass 1: tokenize every row into type ids; count types in training rows. */
static cai_status
fast_prepare_tokens(FastTrain *t, Ticker *tk, cai_error *err)
{
	size_t		n_all = t->rows.n_tr + t->rows.n_va;
	char		norm[FAST_NORM_MAX];
	cai_status	st;

	t->tok_off = cai_calloc(n_all + 1, sizeof(size_t));
	if (t->tok_off == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < n_all; r++)
	{
		cai_token  *toks;
		size_t		nt;

		if ((r & 255) == 0 && !ticker_tick(tk, 0.0))
			return cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
		st = cai_textclf_tokenize(t->rows.txt[r], t->rows.len[r], t->p.max_tokens, FAST_BYTES_PER_TOKEN,
								  &toks, &nt, err);
		if (st != CAI_OK)
			return st;
		if (t->tok_off[r] + nt + 1 > t->tok_cap)
		{
			size_t		nc = t->tok_cap == 0 ? 65536 : t->tok_cap;

			while (nc < t->tok_off[r] + nt + 1)
				nc *= 2;
			if (!cai_grow_array((void **) &t->tok_type, sizeof(int32_t), t->tok_cap, nc))
			{
				cai_free(toks);
				return NOMEM(err);
			}
			t->tok_cap = nc;
		}
		for (size_t i = 0; i < nt + (size_t) t->p.eos; i++)
		{
			size_t		nl = fast_token_norm(t->rows.txt[r], toks, i, nt, norm);
			int64_t		ty = cai_textclf_types_intern(&t->types, norm, nl, fast_word_hash(norm, nl));

			if (ty < 0 || ty >= INT32_MAX)
			{
				cai_free(toks);
				return NOMEM(err);
			}
			t->tok_type[t->tok_off[r] + i] = (int32_t) ty;
			if (r < t->rows.n_tr)
				t->types.count[ty]++;
		}
		cai_free(toks);
		t->tok_off[r + 1] = t->tok_off[r] + nt + (size_t) t->p.eos;
	}
	return CAI_OK;
}

/* Vocabulary (types seen min_count times in training) and char n-gram buckets per type. */
static cai_status
fast_prepare_vocab(FastTrain *t, int64_t min_count, cai_error *err)
{
	cai_textclf_types  *tt = &t->types;
	size_t		nv = 0;
	size_t		total = 0;
	uint64_t	cg[FAST_CHAR_NGRAMS_MAX];

	t->type_vocab = cai_malloc(sizeof(int32_t) * (tt->n > 0 ? tt->n : 1));
	t->vitems = cai_malloc(sizeof(cai_textclf_vocab_item) * (tt->n > 0 ? tt->n : 1));
	t->type_cg_off = cai_calloc(tt->n + 1, sizeof(size_t));
	if (t->type_vocab == NULL || t->vitems == NULL || t->type_cg_off == NULL)
		return NOMEM(err);
	for (size_t i = 0; i < tt->n; i++)
	{
		t->type_vocab[i] = -1;
		/* the model stores words NUL-terminated: a token holding a NUL byte gets no row */
		if (tt->count[i] >= min_count && tt->len[i] > 0 &&
			memchr(tt->arena + tt->off[i], '\0', tt->len[i]) == NULL)
		{
			t->vitems[nv].s = tt->arena + tt->off[i];
			t->vitems[nv].count = tt->count[i];
			t->vitems[nv].type = (int32_t) i;
			nv++;
		}
	}
	if (nv > 0)
		qsort(t->vitems, nv, sizeof(cai_textclf_vocab_item), cai_textclf_vocab_item_cmp);
	for (size_t v = 0; v < nv; v++)
		t->type_vocab[t->vitems[v].type] = (int32_t) v;
	t->V = (int32_t) nv;

	for (size_t i = 0; i < tt->n; i++)
	{
		int			nc = fast_type_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);

		total += (size_t) nc;
		t->type_cg_off[i + 1] = total;
	}
	if (total > 0)
	{
		t->type_cg = cai_malloc(sizeof(uint32_t) * total);
		if (t->type_cg == NULL)
			return NOMEM(err);
		for (size_t i = 0; i < tt->n; i++)
		{
			int			nc = fast_type_char_ngrams(&t->p, tt->arena + tt->off[i], tt->len[i], cg);
			uint32_t   *dst = t->type_cg + t->type_cg_off[i];

			for (int j = 0; j < nc; j++)
				dst[j] = fast_char_bucket(cg[j], t->p.buckets);
		}
	}
	return CAI_OK;
}

/*
 * Features of row r as inference computes them (see fast_predict): per
 * token its word vector (vocabulary word: the word's row plus its character
 * n-gram rows, summed at load time) or, for other tokens, the character
 * n-gram rows; then the word n-grams ending at the token.  Buckets without a
 * row are skipped.  Writes to out when not NULL; returns the count.
 */
static size_t
fast_eval_features(const FastTrain *t, size_t r, uint32_t *out)
{
	const int	wn = t->p.word_ngrams;
	const uint32_t V = (uint32_t) t->V;
	size_t		nt = t->tok_off[r + 1] - t->tok_off[r];
	const int32_t *ty = t->tok_type + t->tok_off[r];
	uint64_t	hist[FAST_MAX_NGRAMS] = {0};
	size_t		n = 0;

	for (size_t i = 0; i < nt; i++)
	{
		int32_t		v = t->type_vocab[ty[i]];

		if (v >= 0)
		{
			if (out != NULL)
				out[n] = (uint32_t) v;
			n++;
		}
		else
		{
			for (size_t j = t->type_cg_off[ty[i]]; j < t->type_cg_off[ty[i] + 1]; j++)
			{
				int32_t		row = t->bmap[t->type_cg[j]];

				if (row >= 0)
				{
					if (out != NULL)
						out[n] = V + (uint32_t) row;
					n++;
				}
			}
		}
		if (wn > 1)
		{
			int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

			memmove(hist, hist + 1, sizeof(uint64_t) * (FAST_MAX_NGRAMS - 1));
			hist[FAST_MAX_NGRAMS - 1] = t->types.hash[ty[i]];
			for (int g = 2; g <= have; g++)
			{
				int32_t		row = t->bmap[fast_ngram_bucket(hist + FAST_MAX_NGRAMS - g, g, t->p.buckets)];

				if (row >= 0)
				{
					if (out != NULL)
						out[n] = V + (uint32_t) row;
					n++;
				}
			}
		}
	}
	return n;
}

/*
 * Features of every row, in the order inference produces them: per token
 * its vocabulary row, its character n-gram buckets, then the word n-grams
 * ending at it.  Buckets are first written as V + bucket, then remapped to
 * V + bucket row; buckets seen in no training row are dropped from the
 * validation rows (inference ignores them too).
 */
static cai_status
fast_prepare_features(FastTrain *t, cai_error *err)
{
	size_t		n_all = t->rows.n_tr + t->rows.n_va;
	const int	wn = t->p.word_ngrams;
	const uint32_t V = (uint32_t) t->V;
	size_t		total = 0;
	size_t		w;
	int32_t		k = 0;

	t->feat_off = cai_calloc(n_all + 1, sizeof(size_t));
	if (t->feat_off == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < n_all; r++)
	{
		size_t		nt = t->tok_off[r + 1] - t->tok_off[r];

		for (size_t i = 0; i < nt; i++)
		{
			int32_t		ty = t->tok_type[t->tok_off[r] + i];

			total += (t->type_vocab[ty] >= 0) + (t->type_cg_off[ty + 1] - t->type_cg_off[ty]);
			total += (size_t) (i + 1 < (size_t) wn ? (int) i : wn - 1);
		}
		t->feat_off[r + 1] = total;
	}
	if (total >= UINT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many features (%zu) in the training rows", total);
	t->feat = cai_malloc(sizeof(uint32_t) * (total > 0 ? total : 1));
	t->bmap = cai_malloc(sizeof(int32_t) * (size_t) t->p.buckets);
	if (t->feat == NULL || t->bmap == NULL)
		return NOMEM(err);

	for (size_t r = 0; r < n_all; r++)
	{
		size_t		nt = t->tok_off[r + 1] - t->tok_off[r];
		const int32_t *ty = t->tok_type + t->tok_off[r];
		uint32_t   *f = t->feat + t->feat_off[r];
		uint64_t	hist[FAST_MAX_NGRAMS] = {0};

		for (size_t i = 0; i < nt; i++)
		{
			int32_t		v = t->type_vocab[ty[i]];

			if (v >= 0)
				*f++ = (uint32_t) v;
			for (size_t j = t->type_cg_off[ty[i]]; j < t->type_cg_off[ty[i] + 1]; j++)
				*f++ = V + t->type_cg[j];
			if (wn > 1)
			{
				int			have = i + 1 < (size_t) wn ? (int) i + 1 : wn;

				memmove(hist, hist + 1, sizeof(uint64_t) * (FAST_MAX_NGRAMS - 1));
				hist[FAST_MAX_NGRAMS - 1] = t->types.hash[ty[i]];
				for (int n = 2; n <= have; n++)
					*f++ = V + fast_ngram_bucket(hist + FAST_MAX_NGRAMS - n, n, t->p.buckets);
			}
		}
		if (f != t->feat + t->feat_off[r + 1])
			return cai_error_set(err, CAI_ERR_INTERNAL, "feature count mismatch in row %zu", r);
	}

	/* bucket rows: buckets used by training rows, in increasing order */
	memset(t->bmap, 0xff, sizeof(int32_t) * (size_t) t->p.buckets);
	for (size_t i = 0; i < t->feat_off[t->rows.n_tr]; i++)
		if (t->feat[i] >= V)
			t->bmap[t->feat[i] - V] = 0;
	for (uint32_t b = 0; b < t->p.buckets; b++)
		if (t->bmap[b] == 0)
			t->bmap[b] = k++;
	t->K = k;
	if ((int64_t) t->V + k >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many embedding rows");

	/* remap in place, compacting the rows (validation rows may lose features) */
	w = 0;
	for (size_t r = 0; r < n_all; r++)
	{
		size_t		s = t->feat_off[r];
		size_t		e = t->feat_off[r + 1];

		t->feat_off[r] = w;
		for (size_t i = s; i < e; i++)
		{
			uint32_t	x = t->feat[i];

			if (x < V)
				t->feat[w++] = x;
			else if (t->bmap[x - V] >= 0)
				t->feat[w++] = V + (uint32_t) t->bmap[x - V];
		}
	}
	t->feat_off[n_all] = w;

	/* the evaluation rows as inference sees them */
	t->ev_off = cai_calloc(t->n_eval + 1, sizeof(size_t));
	if (t->ev_off == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < t->n_eval; r++)
		t->ev_off[r + 1] = t->ev_off[r] + fast_eval_features(t, t->eval_from + r, NULL);
	t->ev = cai_malloc(sizeof(uint32_t) * (t->ev_off[t->n_eval] > 0 ? t->ev_off[t->n_eval] : 1));
	if (t->ev == NULL)
		return NOMEM(err);
	for (size_t r = 0; r < t->n_eval; r++)
		fast_eval_features(t, t->eval_from + r, t->ev + t->ev_off[r]);
	return CAI_OK;
}

/* ---------------------------------------------------------------------- */
/* Training: the model                                                    */
/* ---------------------------------------------------------------------- */

/* h (D) = mean of E rows f[0..k) */
static void
fast_hidden_forward(const float *E, const uint32_t *f, size_t k, int D, float *h)
{
	memset(h, 0, sizeof(float) * (size_t) D);
	for (size_t j = 0; j < k; j++)
		vec_add(h, E + (size_t) f[j] * D, D);
	if (k > 0)
	{
		float		inv = 1.0f / (float) k;

		for (int d = 0; d < D; d++)
			h[d] *= inv;
	}
}

/*
 * One SGD step on a row with features f[0..k) and label y; returns the loss.
 * dz = p - onehot(y); dh = W^T dz; W -= lr dz h^T;
 * E[f_j] -= lr dh / k.
 */
static double
fast_sgd_step(FastTrain *t, const uint32_t *f, size_t k, int y, float lr)
{
	const int	D = t->p.dim;
	const int	L = t->L;
	float	   *E = t->params;
	float	   *W = E + (size_t) (t->V + t->K) * D;
	float	   *h = t->hidden;
	float	   *dh = t->grad;
	float	   *p = t->probs;
	double		lse;
	double		loss;

	fast_hidden_forward(E, f, k, D, h);
	fast_output_forward(W, h, L, D, p);
	loss = p[y];
	lse = softmax_inplace(p, L);
	loss = lse - loss;
	memset(dh, 0, sizeof(float) * (size_t) D);
	for (int c = 0; c < L; c++)
	{
		float		g = p[c] - (c == y ? 1.0f : 0.0f);
		float	   *wc = W + (size_t) c * D;
		float		a = -lr * g;

		if (g == 0.0f)
			continue;
		vec_axpy(dh, g, wc, D);
		vec_axpy(wc, a, h, D);
	}
	if (k > 0)
	{
		float		a = -lr / (float) k;

		for (size_t j = 0; j < k; j++)
			vec_axpy(E + (size_t) f[j] * D, a, dh, D);
	}
	return loss;
}

/* Word vectors: each vocabulary word's row plus its character n-gram rows. */
static void
fast_word_vectors(FastTrain *t)
{
	const int	D = t->p.dim;
	const float *E = t->params;

	for (int32_t v = 0; v < t->V; v++)
	{
		int32_t		ty = t->vitems[v].type;
		float	   *wv = t->wordvec + (size_t) v * D;
		int32_t		cnt = 1;

		memcpy(wv, E + (size_t) v * D, sizeof(float) * (size_t) D);
		for (size_t j = t->type_cg_off[ty]; j < t->type_cg_off[ty + 1]; j++)
		{
			int32_t		row = t->bmap[t->type_cg[j]];

			if (row >= 0)
			{
				vec_add(wv, E + ((size_t) t->V + (size_t) row) * D, D);
				cnt++;
			}
		}
		t->wordcnt[v] = cnt;
	}
}

/*
 * Predict the evaluation rows with the current parameters, computing what
 * fast_predict() computes, in the same order (the same bits); *loss gets
 * the mean loss.  false when the progress callback cancels.
 */
static bool
fast_eval(FastTrain *t, Ticker *tk, int32_t *pred, double *mean_loss)
{
	const int	D = t->p.dim;
	const int	L = t->L;
	const float *E = t->params;
	const float *W = E + (size_t) (t->V + t->K) * D;
	const uint32_t V = (uint32_t) t->V;
	double		loss = 0.0;

	fast_word_vectors(t);
	for (size_t r = 0; r < t->n_eval; r++)
	{
		int32_t		y = t->rows.lab[t->eval_from + r];
		int64_t		nf = 0;
		int			best = 0;
		double		lse;
		float		zy;
		float	   *h = t->hidden;

		if ((r & 1023) == 1023 && !ticker_tick(tk, tk->p.fraction))
			return false;
		/* exactly as fast_predict() sums them */
		memset(h, 0, sizeof(float) * (size_t) D);
		for (size_t j = t->ev_off[r]; j < t->ev_off[r + 1]; j++)
		{
			uint32_t	x = t->ev[j];

			if (x < V)
			{
				vec_add(h, t->wordvec + (size_t) x * D, D);
				nf += t->wordcnt[x];
			}
			else
			{
				vec_add(h, E + (size_t) x * D, D);
				nf++;
			}
		}
		if (nf > 0)
		{
			float		inv = 1.0f / (float) nf;

			for (int d = 0; d < D; d++)
				h[d] *= inv;
		}
		fast_output_forward(W, h, L, D, t->probs);
		zy = t->probs[y];
		for (int c = 1; c < L; c++)
			if (t->probs[c] > t->probs[best])
				best = c;
		lse = softmax_inplace(t->probs, L);
		loss += lse - zy;
		pred[r] = best;
	}
	*mean_loss = t->n_eval > 0 ? loss / (double) t->n_eval : 0.0;
	return true;
}

/* ---------------------------------------------------------------------- */
/* Training: entry points                                                 */
/* ---------------------------------------------------------------------- */

static cai_status
fast_params_from_options(const cai_options *o, FastParams *fp, cai_error *err)
{
	fp->dim = (int) cai_opt_int(o, "dimensions");
	fp->word_ngrams = (int) cai_opt_int(o, "word_ngrams");
	fp->minn = (int) cai_opt_int(o, "minn");
	fp->maxn = (int) cai_opt_int(o, "maxn");
	fp->max_tokens = (int) cai_opt_int(o, "max_tokens");
	fp->buckets = (uint32_t) cai_opt_int(o, "buckets");
	fp->eos = 1;
	if (fp->dim < 1 || fp->dim > TEXTCLF_MAX_DIM)
		return cai_error_set(err, CAI_ERR_INVALID, "dimensions must be 1 to %d", TEXTCLF_MAX_DIM);
	if (fp->word_ngrams < 1 || fp->word_ngrams > FAST_MAX_NGRAMS)
		return cai_error_set(err, CAI_ERR_INVALID, "word_ngrams must be 1 to %d", FAST_MAX_NGRAMS);
	if (fp->minn < 0 || fp->maxn < 0 || (fp->minn == 0) != (fp->maxn == 0) || fp->minn > fp->maxn)
		return cai_error_set(err, CAI_ERR_INVALID,
							 "minn (%d) and maxn (%d) must both be 0 or satisfy 1 <= minn <= maxn",
							 fp->minn, fp->maxn);
	if (fp->max_tokens < 1 || fp->max_tokens > INT32_MAX / FAST_BYTES_PER_TOKEN)
		return cai_error_set(err, CAI_ERR_INVALID, "max_tokens is out of range");
	if (fp->buckets < 1 || fp->buckets > TEXTCLF_MAX_BUCKETS)
		return cai_error_set(err, CAI_ERR_INVALID, "buckets must be 1 to %d", TEXTCLF_MAX_BUCKETS);
	return CAI_OK;
}

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
	if (d->n > 0 && (d->texts == NULL || d->lens == NULL || d->labels == NULL))
		return cai_error_set(err, CAI_ERR_INVALID, "%s rows lack texts, lengths or labels", what);
	if (d->n >= INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "too many %s rows (%zu)", what, d->n);
	for (size_t i = 0; i < d->n; i++)
	{
		if (d->labels[i] < 0 || d->labels[i] >= n_labels)
			return cai_error_set(err, CAI_ERR_INVALID, "%s row %zu has label %d, out of range [0, %d)",
								 what, i, (int) d->labels[i], n_labels);
		if (d->texts[i] == NULL && d->lens[i] > 0)
			return cai_error_set(err, CAI_ERR_INVALID, "%s row %zu has no text", what, i);
	}
	return CAI_OK;
}

/*
 * An estimate, deliberately on the high side (1.2 to 3 times the peak
 * measured on SST-2 and on small sets), from the text bytes alone: the exact
 * numbers of distinct words and n-grams are only known after tokenizing.
 * Assumptions: about 4 bytes per token; distinct words ~ 40 sqrt(tokens)
 * and distinct word n-grams ~ 8 tokens^0.75 (Heaps' law); each distinct word
 * brings 2 new character n-grams per n-gram length.
 */
size_t
cai_textclf_train_memory(const cai_options *opts, const cai_textclf_data *train, int n_labels)
{
	FastParams	fp;
	size_t		bytes = 0;
	size_t		tokens = 0;
	size_t		feats;
	size_t		rows;
	size_t		types;
	size_t		ngram_rows;
	size_t		char_rows;
	size_t		n_params;
	size_t		total;
	size_t		nchar;
	size_t		cap;

	if (opts != NULL && cai_opt_string(opts, "architecture") != NULL &&
		strcmp(cai_opt_string(opts, "architecture"), "accurate") == 0)
		return cai_textclf_accurate_train_memory(opts, train, n_labels);
	if (opts == NULL || train == NULL || n_labels < 1 ||
		fast_params_from_options(opts, &fp, NULL) != CAI_OK)
		return 0;
	cap = (size_t) fp.max_tokens * FAST_BYTES_PER_TOKEN;
	for (size_t i = 0; i < train->n; i++)
	{
		size_t		l = train->lens != NULL ? train->lens[i] : 0;

		if (l > cap)
			l = cap;
		bytes += l;
		/* tokens of the row, the end-of-text token included */
		tokens += (l / 4 + 1 < (size_t) fp.max_tokens ? l / 4 + 1 : (size_t) fp.max_tokens) + 1;
	}
	/* feature occurrences per token: the word, (word_ngrams - 1) n-grams, ~5 characters' worth of n-grams */
	nchar = fp.minn > 0 ? (size_t) (fp.maxn - fp.minn + 1) * 5 : 0;
	feats = tokens * (1 + (size_t) (fp.word_ngrams - 1) + nchar);
	types = (size_t) (40.0 * sqrt((double) tokens)) + 1;
	if (types > tokens)
		types = tokens;
	ngram_rows = (size_t) (fp.word_ngrams - 1) * (size_t) (8.0 * pow((double) tokens, 0.75));
	if (ngram_rows > (size_t) (fp.word_ngrams - 1) * tokens)
		ngram_rows = (size_t) (fp.word_ngrams - 1) * tokens;
	char_rows = fp.minn > 0 ? (size_t) (fp.maxn - fp.minn + 1) * 2 * types : 0;
	rows = ngram_rows + char_rows < fp.buckets ? ngram_rows + char_rows : fp.buckets;
	rows += types;
	n_params = (rows + (size_t) n_labels) * (size_t) fp.dim;

	total = 2 * n_params * sizeof(float);	/* parameters and the best epoch's copy */
	total += types * (size_t) fp.dim * sizeof(float);	/* word vectors for scoring */
	total += feats * sizeof(uint32_t) * 5 / 4 + (train->n + 1) * 3 * sizeof(size_t);	/* features */
	total += tokens * sizeof(int32_t) + bytes;	/* token type ids, type strings */
	total += types * (sizeof(uint64_t) + 2 * sizeof(size_t) + 4 + 8 + 4 + 4 + sizeof(cai_textclf_vocab_item));
	total += types * nchar * sizeof(uint32_t);
	total += (size_t) fp.buckets * sizeof(int32_t);
	total += train->n * (4 * sizeof(int32_t) + sizeof(char *) + sizeof(size_t));
	/* the serialized model */
	total += n_params * sizeof(float) + bytes / 2;
	return total;
}

/* Metadata JSON text (cai_malloc'ed) or NULL on out of memory. */
static char *
fast_metadata(const FastTrain *t, const cai_options *opts, const char *const *label_names,
			  json_object *metrics, json_object *prov, uint64_t fingerprint)
{
	json_object *root = json_object_new_object();
	json_object *labels = json_object_new_array();
	json_object *fj = json_object_new_object();
	json_object *oj = NULL;
	char	   *ojs = cai_options_to_json(opts);
	char		fpbuf[32];
	char	   *out = NULL;
	bool		ok;

	if (ojs != NULL)
		oj = cai_json_parse_object(ojs);
	cai_free(ojs);
	snprintf(fpbuf, sizeof(fpbuf), "%016" PRIx64, fingerprint);
	ok = root != NULL && labels != NULL && fj != NULL && oj != NULL;
	for (int c = 0; ok && c < t->L; c++)
		ok = json_object_array_add(labels, json_object_new_string(label_names[c])) == 0;
	ok = ok &&
		cai_json_put(fj, "feature_version", json_object_new_int(FAST_FEATURE_VERSION)) &&
		cai_json_put(fj, "feature_fingerprint", json_object_new_string(fpbuf)) &&
		cai_json_put(fj, "dimensions", json_object_new_int(t->p.dim)) &&
		cai_json_put(fj, "word_ngrams", json_object_new_int(t->p.word_ngrams)) &&
		cai_json_put(fj, "minn", json_object_new_int(t->p.minn)) &&
		cai_json_put(fj, "maxn", json_object_new_int(t->p.maxn)) &&
		cai_json_put(fj, "max_tokens", json_object_new_int(t->p.max_tokens)) &&
		cai_json_put(fj, "buckets", json_object_new_int64(t->p.buckets)) &&
		cai_json_put(fj, "eos", json_object_new_int(t->p.eos)) &&
		cai_json_put(fj, "vocab_size", json_object_new_int(t->V)) &&
		cai_json_put(fj, "bucket_rows", json_object_new_int(t->K));
	if (ok)
	{
		ok = cai_json_put(root, "task", json_object_new_string("text_classification")) &&
			cai_json_put(root, "architecture", json_object_new_string("fast")) &&
			cai_json_put(root, "labels", labels);
		labels = NULL;
		ok = ok && cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING)) &&
			cai_json_put(root, "options", oj);
		oj = NULL;
		ok = ok && cai_json_put(root, "fast", fj);
		fj = NULL;
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
	json_object_put(fj);
	json_object_put(oj);
	return out;
}

static cai_status
fast_serialize(FastTrain *t, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[9];
	int			nt = 0;
	int32_t    *off = NULL;
	char	   *bytes = NULL;
	int32_t    *bids = NULL;
	int32_t    *vslot = NULL;
	int32_t    *bslot = NULL;
	float	   *wordvec = NULL;
	int32_t    *wordcnt = NULL;
	FastModel	fm;				/* the loader's view, to compute what it would */
	size_t		nbytes = 0;
	const int	D = t->p.dim;
	size_t		R = (size_t) t->V + (size_t) t->K;
	cai_status	st;

	memset(ts, 0, sizeof(ts));
	memset(&fm, 0, sizeof(fm));
	fm.p = t->p;
	fm.n_vocab = t->V;
	fm.n_bucket_rows = t->K;
	fm.emb = t->best;
	if (t->V > 0)
	{
		st = cai_textclf_pack_vocab(&t->types, t->vitems, t->V, "fast", &ts[nt],
									(char **) &bytes, &off, &nbytes, err);
		if (st != CAI_OK)
			goto done;
		nt += 2;

		/* the lookup table, serialized so that loading builds nothing */
		fm.vocab.n = t->V;
		fm.vocab.bytes = bytes;
		fm.vocab.nbytes = nbytes;
		fm.vocab.off = off;
		fm.vocab.seed = FAST_SEED_WORD;
		fm.vocab.mask = cai_index_capacity(t->V) - 1;
		vslot = cai_malloc(sizeof(int32_t) * ((size_t) fm.vocab.mask + 1));
		if (vslot == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		if ((st = cai_strindex_build(&fm.vocab, vslot, "vocabulary", err)) != CAI_OK)
			goto done;
		fm.vocab.slot = vslot;
		strcpy(ts[nt].name, "fast.vocab.slots");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) fm.vocab.mask + 1;
		ts[nt].data = vslot;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) fm.vocab.mask + 1);
		nt++;
	}
	if (t->K > 0)
	{
		int32_t		k = 0;

		bids = cai_malloc(sizeof(int32_t) * (size_t) t->K);
		if (bids == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (uint32_t b = 0; b < t->p.buckets; b++)
			if (t->bmap[b] >= 0)
				bids[k++] = (int32_t) b;
		strcpy(ts[nt].name, "fast.buckets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = t->K;
		ts[nt].data = bids;
		ts[nt].nbytes = sizeof(int32_t) * (size_t) t->K;
		nt++;

		fm.bucket.n = t->K;
		fm.bucket.keys = bids;
		fm.bucket.mask = cai_index_capacity(t->K) - 1;
		bslot = cai_malloc(sizeof(int32_t) * ((size_t) fm.bucket.mask + 1));
		if (bslot == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		if ((st = cai_intindex_build(&fm.bucket, bslot, "bucket index", err)) != CAI_OK)
			goto done;
		fm.bucket.slot = bslot;
		strcpy(ts[nt].name, "fast.buckets.slots");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) fm.bucket.mask + 1;
		ts[nt].data = bslot;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) fm.bucket.mask + 1);
		nt++;
	}
	if (R > 0)
	{
		strcpy(ts[nt].name, "fast.embedding");
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = 2;
		ts[nt].shape[0] = (int64_t) R;
		ts[nt].shape[1] = D;
		ts[nt].data = t->best;
		ts[nt].nbytes = sizeof(float) * R * (size_t) D;
		nt++;
	}
	if (t->V > 0)
	{
		/* word vectors exactly as the loader of an older model computes them */
		wordvec = cai_malloc(sizeof(float) * (size_t) t->V * (size_t) D);
		wordcnt = cai_malloc(sizeof(int32_t) * (size_t) t->V);
		if (wordvec == NULL || wordcnt == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		fast_compute_word_vectors(&fm, wordvec, wordcnt);
		strcpy(ts[nt].name, "fast.word_vectors");
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = 2;
		ts[nt].shape[0] = t->V;
		ts[nt].shape[1] = D;
		ts[nt].data = wordvec;
		ts[nt].nbytes = sizeof(float) * (size_t) t->V * (size_t) D;
		nt++;
		strcpy(ts[nt].name, "fast.word_counts");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = t->V;
		ts[nt].data = wordcnt;
		ts[nt].nbytes = sizeof(int32_t) * (size_t) t->V;
		nt++;
	}
	strcpy(ts[nt].name, "fast.output.weight");
	ts[nt].dtype = CAI_F32;
	ts[nt].ndim = 2;
	ts[nt].shape[0] = t->L;
	ts[nt].shape[1] = D;
	ts[nt].data = t->best + R * (size_t) D;
	ts[nt].nbytes = sizeof(float) * (size_t) t->L * (size_t) D;
	nt++;
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_free(off);
	cai_free(bytes);
	cai_free(bids);
	cai_free(vslot);
	cai_free(bslot);
	cai_free(wordvec);
	cai_free(wordcnt);
	return st;
}

/* See textclf_internal.h. */
cai_status
cai_textclf_fast_train(const cai_options *opts, const char *const *label_names, int n_labels,
					   const cai_textclf_data *train, const cai_textclf_data *valid,
					   json_object *prov, cai_progress_fn progress, void *progress_ctx,
					   uint8_t **model, size_t *model_len, char **metrics_json, cai_error *err)
{
	FastTrain	t;
	Ticker		tk;
	cai_rng		rng;
	int			epochs = (int) cai_opt_int(opts, "epochs");
	const double lr0 = cai_opt_float(opts, "learning_rate");
	const double dropout = cai_opt_float(opts, "dropout");
	const double frac = cai_opt_float(opts, "validation_fraction");
	const int64_t min_count = cai_opt_int(opts, "min_count");
	const int	patience = (int) cai_opt_int(opts, "patience");
	const uint64_t seed = (uint64_t) cai_opt_int(opts, "seed");
	size_t		R;
	size_t		max_feat = 0;
	size_t		steps_total;
	size_t		step = 0;
	size_t		n_eval;
	size_t		eval_from;
	int			best_epoch = 0;
	int			epochs_run = 0;
	double		best_acc = -1.0;
	double		best_loss = INFINITY;
	double		seconds;
	uint64_t	fingerprint;
	json_object *metrics = NULL;
	json_object *acc;
	char	   *report = NULL;
	char	   *meta = NULL;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	memset(&tk, 0, sizeof(tk));
	tk.fn = progress;
	tk.ctx = progress_ctx;
	tk.start = tk.last = cai_now_seconds();
	tk.max_seconds = cai_opt_float(opts, "max_seconds");
	t.L = n_labels;

	if ((st = fast_params_from_options(opts, &t.p, err)) != CAI_OK)
		return st;
	if (epochs < 0 || !(lr0 > 0) || !(dropout >= 0 && dropout < 1) || !(frac >= 0 && frac < 1) || min_count < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "epochs, learning_rate, dropout, validation_fraction or min_count out of range");
	if ((st = fast_fingerprint(&t.p, &fingerprint, err)) != CAI_OK)
		return st;

	if ((st = cai_textclf_split(train, valid, frac, n_labels, seed, &t.rows, err)) != CAI_OK)
		goto done;
	if (t.rows.n_tr == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "no training rows");
		goto done;
	}
	/* scores come from the validation rows, or the training rows when there are none */
	t.n_eval = n_eval = t.rows.n_va > 0 ? t.rows.n_va : t.rows.n_tr;
	t.eval_from = eval_from = t.rows.n_va > 0 ? t.rows.n_tr : 0;
	if ((st = fast_prepare_tokens(&t, &tk, err)) != CAI_OK ||
		(st = fast_prepare_vocab(&t, min_count, err)) != CAI_OK ||
		(st = fast_prepare_features(&t, err)) != CAI_OK)
		goto done;

	/* the token table is no longer needed */
	cai_free(t.tok_type);
	t.tok_type = NULL;

	/* parameters: E uniform(-1/D, 1/D), W zero (as fastText) */
	R = (size_t) t.V + (size_t) t.K;
	t.n_params = (R + (size_t) n_labels) * (size_t) t.p.dim;
	t.params = cai_calloc(t.n_params, sizeof(float));
	t.best = cai_malloc(sizeof(float) * t.n_params);
	t.hidden = cai_malloc(sizeof(float) * (size_t) t.p.dim);
	t.grad = cai_malloc(sizeof(float) * (size_t) t.p.dim);
	t.probs = cai_malloc(sizeof(float) * (size_t) n_labels);
	t.order = cai_malloc(sizeof(int32_t) * t.rows.n_tr);
	t.wordvec = cai_malloc(sizeof(float) * ((size_t) t.V * (size_t) t.p.dim + 1));
	t.wordcnt = cai_malloc(sizeof(int32_t) * ((size_t) t.V + 1));
	t.pred = cai_malloc(sizeof(int32_t) * n_eval);
	t.best_pred = cai_malloc(sizeof(int32_t) * n_eval);
	for (size_t r = 0; r < t.rows.n_tr; r++)
		if (t.feat_off[r + 1] - t.feat_off[r] > max_feat)
			max_feat = t.feat_off[r + 1] - t.feat_off[r];
	t.kept = cai_malloc(sizeof(uint32_t) * (max_feat > 0 ? max_feat : 1));
	if (t.params == NULL || t.best == NULL || t.hidden == NULL || t.grad == NULL ||
		t.probs == NULL || t.order == NULL || t.pred == NULL || t.best_pred == NULL || t.kept == NULL ||
		t.wordvec == NULL || t.wordcnt == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	cai_rng_seed(&rng, seed);
	{
		float		a = 1.0f / (float) t.p.dim;

		for (size_t i = 0; i < R * (size_t) t.p.dim; i++)
			t.params[i] = (2.0f * cai_rng_uniform(&rng) - 1.0f) * a;
	}
	memcpy(t.best, t.params, sizeof(float) * t.n_params);
	for (size_t r = 0; r < t.rows.n_tr; r++)
		t.order[r] = (int32_t) r;

	/* automatic: 5 passes, more for small data (at least FAST_AUTO_UPDATES row updates, at most 50 passes) */
	if (epochs == 0)
	{
		size_t		want = (FAST_AUTO_UPDATES + t.rows.n_tr - 1) / t.rows.n_tr;

		epochs = want < 5 ? 5 : want > 50 ? 50 : (int) want;
	}
	tk.p.epochs = epochs;
	steps_total = (size_t) epochs * t.rows.n_tr;
	for (int ep = 1; ep <= epochs; ep++)
	{
		double		ep_start = cai_now_seconds();
		double		loss_sum = 0.0;
		size_t		rows_done = 0;
		double		acc,
					mf1,
					vloss;
		bool		out_of_time;

		cai_rng_shuffle(&rng, t.order, t.rows.n_tr);
		for (size_t i = 0; i < t.rows.n_tr; i++)
		{
			size_t		r = (size_t) t.order[i];
			const uint32_t *f = t.feat + t.feat_off[r];
			size_t		k = t.feat_off[r + 1] - t.feat_off[r];
			float		lr = (float) (lr0 * (1.0 - (double) step / (double) steps_total));

			if ((i & 255) == 0 && i > 0)
			{
				if (!ticker_tick(&tk, (double) step / (double) steps_total))
				{
					st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
					goto done;
				}
				/* out of time: score what we have (a partial epoch) and stop */
				if (tk.max_seconds > 0 && cai_now_seconds() - tk.start >= tk.max_seconds)
					break;
			}
			if (dropout > 0 && k > 0)
			{
				size_t		m = 0;

				for (size_t j = 0; j < k; j++)
					if (cai_rng_uniform(&rng) >= (float) dropout)
						t.kept[m++] = f[j];
				if (m == 0)
					t.kept[m++] = f[cai_rng_below(&rng, (uint32_t) k)];
				f = t.kept;
				k = m;
			}
			loss_sum += fast_sgd_step(&t, f, k, t.rows.lab[r], lr);
			step++;
			rows_done++;
		}
		epochs_run = ep;
		if (!isfinite(loss_sum))
		{
			st = cai_error_set(err, CAI_ERR_NUMERIC,
							   "training diverged in epoch %d (the loss is not finite); lower learning_rate", ep);
			goto done;
		}

		if (!fast_eval(&t, &tk, t.pred, &vloss))
		{
			st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
			goto done;
		}
		cai_classification_scores(t.rows.lab + eval_from, t.pred, n_eval, n_labels, &acc, &mf1);
		if (acc > best_acc || (acc == best_acc && vloss < best_loss))
		{
			best_acc = acc;
			best_loss = vloss;
			best_epoch = ep;
			memcpy(t.best, t.params, sizeof(float) * t.n_params);
			memcpy(t.best_pred, t.pred, sizeof(int32_t) * n_eval);
		}

		tk.p.epoch = ep;
		tk.p.loss = loss_sum / (double) (rows_done > 0 ? rows_done : 1);
		tk.p.val_score = acc;
		tk.p.rows_per_sec = (double) rows_done / fmax(cai_now_seconds() - ep_start, 1e-9);
		tk.p.fraction = (double) ep / (double) epochs;
		tk.p.epoch_done = true;
		if (progress != NULL && !progress(progress_ctx, &tk.p))
		{
			st = cai_error_set(err, CAI_ERR_CANCELLED, "training was cancelled");
			goto done;
		}
		tk.last = cai_now_seconds();
		out_of_time = tk.max_seconds > 0 && cai_now_seconds() - tk.start >= tk.max_seconds;
		if (out_of_time || (patience > 0 && t.rows.n_va > 0 && ep - best_epoch >= patience))
			break;
	}
	/* without validation rows the last epoch is kept */
	if (t.rows.n_va == 0)
	{
		memcpy(t.best, t.params, sizeof(float) * t.n_params);
		memcpy(t.best_pred, t.pred, sizeof(int32_t) * n_eval);
		best_epoch = epochs_run;
	}
	if (!cai_all_finite(t.best, t.n_params))
	{
		st = cai_error_set(err, CAI_ERR_NUMERIC,
						   "training diverged (a weight is not finite); lower learning_rate");
		goto done;
	}
	seconds = cai_now_seconds() - tk.start;

	/* metrics */
	st = cai_classification_report(t.rows.lab + eval_from, t.best_pred, n_eval, label_names, n_labels,
								   &report, err);
	if (st != CAI_OK)
		goto done;
	metrics = cai_json_parse_object(report);
	if (metrics == NULL ||
		!cai_json_put(metrics, "evaluated_on", json_object_new_string(t.rows.n_va > 0 ? "validation" : "train")) ||
		!cai_json_put(metrics, "train_rows", json_object_new_int64((int64_t) t.rows.n_tr)) ||
		!cai_json_put(metrics, "validation_rows", json_object_new_int64((int64_t) t.rows.n_va)) ||
		!cai_json_put(metrics, "best_epoch", json_object_new_int(best_epoch)) ||
		!cai_json_put(metrics, "epochs_run", json_object_new_int(epochs_run)) ||
		!cai_json_put(metrics, "epochs_planned", json_object_new_int(epochs)) ||
		!cai_json_put(metrics, "vocab_size", json_object_new_int(t.V)) ||
		!cai_json_put(metrics, "bucket_rows", json_object_new_int(t.K)))
	{
		st = NOMEM(err);
		goto done;
	}
	if (!cai_json_put(prov, "train_rows", json_object_new_int64((int64_t) t.rows.n_tr)) ||
		!cai_json_put(prov, "validation_rows", json_object_new_int64((int64_t) t.rows.n_va)) ||
		!cai_json_put(prov, "seed", json_object_new_int64((int64_t) seed)) ||
		!cai_json_put(prov, "library", json_object_new_string("cai_synergy " CAI_VERSION_STRING)))
	{
		st = NOMEM(err);
		goto done;
	}
	meta = fast_metadata(&t, opts, label_names, metrics, prov, fingerprint);
	if (meta == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = fast_serialize(&t, meta, model, model_len, err)) != CAI_OK)
		goto done;
	/*
	 * "score": the validation score every architecture reports (here accuracy),
	 * which deploy-if-better compares; wall-clock time goes to the returned
	 * metrics only, never into the model bytes.
	 */
	if (!json_object_object_get_ex(metrics, "accuracy", &acc) ||
		!cai_json_put(metrics, "score", json_object_new_double(json_object_get_double(acc))) ||
		!cai_json_put(metrics, "seconds", json_object_new_double(seconds)))
	{
		st = NOMEM(err);
		goto done;
	}
	{
		const char *s = json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN);

		*metrics_json = s != NULL ? cai_strndup(s, strlen(s)) : NULL;
		if (*metrics_json == NULL)
		{
			cai_free(*model);
			*model = NULL;
			*model_len = 0;
			st = NOMEM(err);
			goto done;
		}
	}
	st = CAI_OK;

done:
	json_object_put(metrics);
	cai_free(report);
	cai_free(meta);
	fast_train_free(&t);
	return st;
}

cai_status
cai_textclf_train(const cai_options *opts,
				  const char *const *label_names, int n_labels,
				  const cai_textclf_data *train,
				  const cai_textclf_data *valid,
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
		st = cai_textclf_fast_train(opts, label_names, n_labels, train, valid, prov, progress, progress_ctx,
									model, model_len, metrics_json, err);
	else if (strcmp(arch, "accurate") == 0)
		st = cai_textclf_accurate_train(opts, label_names, n_labels, train, valid, prov,
										progress, progress_ctx, model, model_len, metrics_json, err);
	else
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown architecture \"%s\"", arch);

done:
	json_object_put(prov);
	cai_options_free(own);
	return st;
}
