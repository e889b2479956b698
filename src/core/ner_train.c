/*
 * ner_train.c: training the NER model: the options table, the training and
 * validation data, cai_ner_train (setup, epochs, metrics, the model bytes)
 * and its memory estimate, cai_ner_train_memory.  The data-parallel step is
 * in ner_shards.c, on the training pool's threads (pool.c).
 *
 * Training: mini-batches of sentences of similar length (seeded shuffle,
 * length-sorted windows), Adam, gradient clipping by global norm, the
 * CRF negative log-likelihood averaged over the sentences of a batch;
 * validation entity F1 (conlleval counting) after every epoch; the best
 * epoch is kept, training stops after `patience` epochs without a better
 * score or after max_seconds.  One BLAS thread gives bit-identical models
 * for the same data, options and seed.
 *
 * Word vectors (cai_ner_train's vectors): every vector word gets a row
 * holding its vector (looked up as the tokens are: lower-cased, digits
 * folded); the rows of vector words absent from the training sentences are
 * never touched, and the rows of those present learn at NER_VECTOR_LR times
 * the learning rate (ner_step_pretrained), so that they stay close to the
 * vectors the untouched rows keep.  Without vectors training is as before.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ner_internal.h"

/* ---------------------------------------------------------------------- */
/* Options                                                                */
/* ---------------------------------------------------------------------- */

const cai_opt_def cai_ner_option_defs[] = {
	{"architecture", CAI_OPT_STRING, "bilstm_crf", 0, 0, "bilstm_crf",
	"model: bilstm_crf (word, character CNN and casing features, BiLSTM, CRF)"},
	{"epochs", CAI_OPT_INT, "30", 1, 1000, NULL,
	"maximum passes over the training sentences",
	{CAI_TUNE_LINEAR, 2, 18}},
	{"learning_rate", CAI_OPT_FLOAT, "0.002", 1e-6, 1.0, NULL,
	"Adam learning rate",
	{CAI_TUNE_LOG, 0.0005, 0.005}},
	{"batch_size", CAI_OPT_INT, "32", 1, 4096, NULL,
	"sentences per update",
	{CAI_TUNE_LOG, 8, 64}},
	{"seed", CAI_OPT_INT, "42", 0, 2147483647.0, NULL,
	"random seed: the same data, options, seed and threads give the same model"},
	{"dimensions", CAI_OPT_INT, "100", 1, NER_MAX_DIM, NULL,
	"word embedding size"},
	{"char_dimensions", CAI_OPT_INT, "25", 1, NER_MAX_DIM, NULL,
	"character embedding size"},
	{"char_filters", CAI_OPT_INT, "50", 1, NER_MAX_DIM, NULL,
	"filters of the character CNN (width 3)"},
	{"hidden", CAI_OPT_INT, "100", 1, NER_MAX_DIM, NULL,
	"LSTM units per direction",
	{CAI_TUNE_LOG, 50, 200}},
	{"dropout", CAI_OPT_FLOAT, "0.5", 0.0, 0.9, NULL,
	"dropout probability on the LSTM input and output",
	{CAI_TUNE_LINEAR, 0.2, 0.6}},
	{"validation_fraction", CAI_OPT_FLOAT, "0.1", 0.0, 0.5, NULL,
	"fraction of the training sentences held out for validation when no validation sentences are given"},
	{"validation_source", CAI_OPT_STRING, NULL, 0, 0, NULL,
	"where validation sentences come from (used by the SQL layer)"},
	{"max_seconds", CAI_OPT_FLOAT, "0", 0.0, 1e7, NULL,
	"stop training after this many seconds, keeping the best epoch so far (0 = no limit)"},
	{"threads", CAI_OPT_INT, "1", 1, 64, NULL,
	"training threads: each batch is split over them (data parallel); the same seed and threads give the same model"},
	{"deploy", CAI_OPT_STRING, "auto", 0, 0, "auto|always|never",
	"whether the new model replaces the deployed one (used by the SQL layer)"},
	{"patience", CAI_OPT_INT, "5", 0, 1000, NULL,
	"stop after this many epochs without a better validation F1 (0 = never stop early)"},
	{"min_count", CAI_OPT_INT, "1", 1, 1000000, NULL,
	"minimum occurrences of a word (lower-cased, digits folded) to get its own embedding"},
	{"tag_scheme", CAI_OPT_STRING, "auto", 0, 0, "auto|iob1|iob2|bioes",
	"tag scheme of the training tags (auto = detect)"},
	{"max_tokens", CAI_OPT_INT, "256", 8, 100000, NULL,
	"longest sentence in tokens; longer ones are tagged in pieces"},
	{"clip", CAI_OPT_FLOAT, "5", 0.0, 1e6, NULL,
	"clip the gradient to this global L2 norm (0 = no clipping)"},
	{"word_vectors", CAI_OPT_STRING, NULL, 0, 0, NULL,
	"pretrained word vectors to initialise the word embeddings (used by the SQL layer)"},
	{"char_bigrams", CAI_OPT_STRING, "auto", 0, 0, "auto|on|off",
	"features of each token's bigrams with its neighbours, for text tagged a character a token "
	"(auto = on when at least 30% of the training tokens are one CJK character)"},
};

const int	cai_ner_n_option_defs = sizeof(cai_ner_option_defs) / sizeof(cai_ner_option_defs[0]);

/* ---------------------------------------------------------------------- */
/* Training data                                                          */
/* ---------------------------------------------------------------------- */

static void
side_free(NerSide *s)
{
	cai_free(s->off);
	cai_free(s->start);
	cai_free(s->prefix);
	cai_free(s->type);
	ner_enc_free(&s->enc);
	memset(s, 0, sizeof(*s));
}

/* The non-empty sentences sel[0..k) of d as side s (rebased; the tokens stay in d). */
static cai_status
side_build(NerSide *s, const cai_ner_data *d, const int32_t *sel, size_t k, cai_error *err)
{
	size_t		ntok = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < k; i++)
		ntok += (size_t) (d->offsets[sel[i] + 1] - d->offsets[sel[i]]);
	s->src = d;
	s->off = cai_malloc(sizeof(int64_t) * (k + 1));
	s->start = cai_malloc(sizeof(int64_t) * (k + 1));
	s->prefix = cai_malloc(ntok + 1);
	s->type = cai_malloc(sizeof(int32_t) * (ntok + 1));
	if (s->off == NULL || s->start == NULL || s->prefix == NULL || s->type == NULL)
		return NOMEM(err);
	s->off[0] = 0;
	for (size_t i = 0; i < k; i++)
	{
		int64_t		a = d->offsets[sel[i]];
		int64_t		b = d->offsets[sel[i] + 1];

		if (b == a)
			continue;
		s->start[s->n] = a;
		s->off[s->n + 1] = s->off[s->n] + (b - a);
		s->n++;
	}
	return CAI_OK;
}

/* Encode the sentences of s (ner_enc_build over its selection of src). */
static cai_status
side_encode(const cai_ner *m, NerSide *s, cai_error *err)
{
	return ner_enc_build(m, s->n, s->off, s->start, s->src, m->max_tokens, &s->enc, err);
}

/*
 * Parse the tags of s.  Training (tt != NULL): types are interned into tt
 * and the scheme rules of `scheme` (-1 = any) are enforced.  Validation:
 * types are looked up in the model's (types) and unknown ones get ids
 * from n_types upwards via extra.
 */
static cai_status
side_parse(NerSide *s, const char *what, cai_strtab *tt, int scheme,
		   const cai_strtab *types, cai_strtab *extra, cai_error *err)
{
	for (size_t i = 0; i < s->n; i++)
		for (int64_t j = s->off[i]; j < s->off[i + 1]; j++)
		{
			const char *tag = ner_side_tag(s, i, j);
			const char *ty;
			size_t		tl;
			cai_status	st;

			if (!cai_tag_parse(tag, &s->prefix[j], &ty, &tl))
				return cai_error_set(err, CAI_ERR_INVALID,
									 "malformed %s tag \"%.64s\" in sentence %zu (expected O or B-, I-, E-, S- and a type)",
									 what, tag != NULL ? tag : "(null)", i);
			s->type[j] = -1;
			if (s->prefix[j] == 'O')
				continue;
			if (tt != NULL)
			{
				if ((scheme == CAI_SCHEME_IOB1 || scheme == CAI_SCHEME_IOB2) &&
					(s->prefix[j] == 'E' || s->prefix[j] == 'S'))
					return cai_error_set(err, CAI_ERR_INVALID,
										 "%s tag \"%.64s\" in sentence %zu is not valid in the %s scheme",
										 what, tag, i, cai_chunk_scheme_name((cai_chunk_scheme) scheme));
				if ((st = cai_strtab_intern(tt, ty, tl, &s->type[j], NULL, err)) != CAI_OK)
					return st;
			}
			else
			{
				int32_t		id = cai_strtab_find(types, ty, tl);

				if (id < 0)
				{
					if ((st = cai_strtab_intern(extra, ty, tl, &id, NULL, err)) != CAI_OK)
						return st;
					id += types->n;
				}
				s->type[j] = id;
			}
		}
	return CAI_OK;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Internal BIOES gold tags of the encoded pieces of s: chunks of each
 * piece (conlleval's rules, any input scheme) re-tagged as BIOES.
 */
static cai_status
side_gold_tags(NerSide *s, cai_error *err)
{
	NerEnc	   *e = &s->enc;
	size_t		longest = 1;
	cai_chunk  *ch;
	char	   *pf;
	int32_t    *ty;

	/* work arrays for one piece at a time, not for every token */
	for (size_t p = 0; p < e->n; p++)
		if ((size_t) (e->soff[p + 1] - e->soff[p]) > longest)
			longest = (size_t) (e->soff[p + 1] - e->soff[p]);
	ch = cai_malloc(sizeof(cai_chunk) * (longest + 1));
	pf = cai_malloc(longest + 1);
	ty = cai_malloc(sizeof(int32_t) * (longest + 1));
	e->tags = cai_malloc(sizeof(int32_t) * (e->ntok + 1));
	if (ch == NULL || pf == NULL || ty == NULL || e->tags == NULL)
	{
		cai_free(ch);
		cai_free(pf);
		cai_free(ty);
		return NOMEM(err);
	}
	for (size_t p = 0; p < e->n; p++)
	{
		int64_t		a = e->soff[p];
		size_t		n = (size_t) (e->soff[p + 1] - a);
		size_t		k = cai_chunks_extract(s->prefix + a, s->type + a, n, ch);

		cai_chunks_to_tags(ch, k, n, CAI_SCHEME_BIOES, pf, ty);
		for (size_t i = 0; i < n; i++)
			e->tags[a + (int64_t) i] = ner_tag_index(pf[i], ty[i]);
	}
	cai_free(ch);
	cai_free(pf);
	cai_free(ty);
	return CAI_OK;
}

/* Entity F1 of internal tags pred against the parsed gold tags of s. */
static double
side_f1(const NerSide *s, const int32_t *pred, char *pp, int32_t *pt)
{
	const NerEnc *e = &s->enc;
	int64_t		gold = 0,
				npred = 0,
				ok = 0;
	double		p,
				r;

	for (size_t i = 0; i < e->ntok; i++)
	{
		pp[i] = ner_tag_prefix(pred[i]);
		pt[i] = ner_tag_type(pred[i]);
	}
	for (size_t q = 0; q < e->n; q++)
	{
		int64_t		a = e->soff[q];

		cai_chunks_count(s->prefix + a, s->type + a, pp + a, pt + a, (size_t) (e->soff[q + 1] - a),
						 &gold, &npred, &ok);
	}
	p = npred > 0 ? (double) ok / (double) npred : 0.0;
	r = gold > 0 ? (double) ok / (double) gold : 0.0;
	return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

/* ---------------------------------------------------------------------- */
/* Setup                                                                  */
/* ---------------------------------------------------------------------- */

static cai_status
dims_from_options(const cai_options *opts, NerDims *d, cai_error *err)
{
	memset(d, 0, sizeof(*d));
	d->Dw = (int) cai_opt_int(opts, "dimensions");
	d->Dc = (int) cai_opt_int(opts, "char_dimensions");
	d->F = (int) cai_opt_int(opts, "char_filters");
	d->H = (int) cai_opt_int(opts, "hidden");
	d->Dcase = NER_CASE_DIM;
	d->C = ner_dims_input(d);
	if (d->Dw < 1 || d->Dc < 1 || d->F < 1 || d->H < 1)
		return cai_error_set(err, CAI_ERR_INVALID, "options are not ner options");
	return CAI_OK;
}

/* Whether the training sentences tr get bigram features (option char_bigrams). */
static int
ner_bigrams_wanted(const cai_options *opts, const NerSide *tr)
{
	const char *o = cai_opt_string(opts, "char_bigrams");

	if (o != NULL && strcmp(o, "on") == 0)
		return 1;
	if (o != NULL && strcmp(o, "off") == 0)
		return 0;
	return ner_cjk_share(tr) >= NER_BIGRAM_SHARE;
}

/* Free a training run (its pool is stopped here if it still runs). */
void
ner_train_free(NerTrain *t)
{
	ner_release(&t->m);
	side_free(&t->tr);
	side_free(&t->va);
	cai_free(t->singleton);
	cai_free(t->pretrained);
	cai_free(t->vrows);
	cai_free(t->best);
	cai_free(t->pred);
	cai_free(t->best_pred);
	cai_free(t->order);
	cai_free(t->bstart);
	cai_free(t->border);
	cai_free(t->eorder);
	ner_ws_free(&t->ws);
	ner_ws_free(&t->ews);
	cai_pool_stop(&t->pool);
	ner_shards_free(&t->shards);
}

/*
 * The sentences (of n) held out to validate: round(n * fraction), at least
 * one when fraction > 0, at most n - 1, drawn by a shuffle of sel (n
 * entries, scratch) seeded by seed.
 */
static void
ner_split_mask(size_t n, double frac, uint64_t seed, int32_t *sel, bool *isva)
{
	size_t		n_va = (size_t) floor(frac * (double) n + 0.5);
	cai_rng		rng;

	if (frac > 0 && n_va == 0)
		n_va = 1;
	if (n_va >= n)
		n_va = n > 1 ? n - 1 : 0;
	for (size_t i = 0; i < n; i++)
	{
		sel[i] = (int32_t) i;
		isva[i] = false;
	}
	cai_rng_seed(&rng, seed * UINT64_C(0x9e3779b97f4a7c15) + 1);
	cai_rng_shuffle(&rng, sel, n);
	for (size_t i = 0; i < n_va; i++)
		isva[sel[i]] = true;
}

/* See ner.h. */
cai_status
cai_ner_validation_mask(size_t n, const cai_options *opts, bool *is_valid, cai_error *err)
{
	int32_t    *sel = cai_malloc(sizeof(int32_t) * (n + 1));

	if (sel == NULL)
		return NOMEM(err);
	ner_split_mask(n, cai_opt_float(opts, "validation_fraction"), cai_opt_split_seed(opts), sel, is_valid);
	cai_free(sel);
	return CAI_OK;
}

/*
 * Everything before the first epoch: split, tags, vocabularies, the
 * network, encoded data and workspaces.
 */
cai_status
ner_train_setup(NerTrain *t, const cai_options *opts, const cai_ner_data *train,
				const cai_ner_data *valid, const cai_word_vectors *vec, cai_error *err)
{
	cai_ner    *m = &t->m;
	NerDims		d;
	int32_t    *sel = NULL;
	const char **names = NULL;
	int32_t    *remap = NULL;
	NerCounter	wc,
				cc,
				bc;
	cai_strtab	tt,
				extra;
	const char *scheme_opt;
	int			scheme = -1;
	cai_rng		rng;
	cai_status	st;

	memset(&wc, 0, sizeof(wc));
	memset(&cc, 0, sizeof(cc));
	memset(&bc, 0, sizeof(bc));
	memset(&tt, 0, sizeof(tt));
	memset(&extra, 0, sizeof(extra));
	if ((st = dims_from_options(opts, &d, err)) != CAI_OK)
		return st;
	t->epochs = (int) cai_opt_int(opts, "epochs");
	t->batch = (int) cai_opt_int(opts, "batch_size");
	t->patience = (int) cai_opt_int(opts, "patience");
	t->min_count = (int) cai_opt_int(opts, "min_count");
	t->lr = (float) cai_opt_float(opts, "learning_rate");
	t->dropout = (float) cai_opt_float(opts, "dropout");
	t->clip = (float) cai_opt_float(opts, "clip");
	t->seed = (uint64_t) cai_opt_int(opts, "seed");
	m->max_tokens = (int) cai_opt_int(opts, "max_tokens");
	scheme_opt = cai_opt_string(opts, "tag_scheme");
	if (scheme_opt != NULL && strcmp(scheme_opt, "iob1") == 0)
		scheme = CAI_SCHEME_IOB1;
	else if (scheme_opt != NULL && strcmp(scheme_opt, "iob2") == 0)
		scheme = CAI_SCHEME_IOB2;
	else if (scheme_opt != NULL && strcmp(scheme_opt, "bioes") == 0)
		scheme = CAI_SCHEME_BIOES;
	if (vec != NULL && vec->n > 0)
	{
		if (vec->dim != d.Dw)
			return cai_error_set(err, CAI_ERR_INVALID,
								 "word vectors have %d dimensions but option \"dimensions\" is %d",
								 vec->dim, d.Dw);
		if (vec->words == NULL || vec->lens == NULL || vec->vectors == NULL)
			return cai_error_set(err, CAI_ERR_INVALID, "word vectors lack words or values");
		if (!cai_all_finite(vec->vectors, vec->n * (size_t) vec->dim))
			return cai_error_set(err, CAI_ERR_INVALID, "word vectors hold NaN or infinity");
	}

	/* split */
	sel = cai_malloc(sizeof(int32_t) * (train->n + (valid != NULL ? valid->n : 0) + 1));
	if (sel == NULL)
		return NOMEM(err);
	if (valid != NULL)
	{
		for (size_t i = 0; i < train->n; i++)
			sel[i] = (int32_t) i;
		if ((st = side_build(&t->tr, train, sel, train->n, err)) != CAI_OK)
			goto done;
		for (size_t i = 0; i < valid->n; i++)
			sel[i] = (int32_t) i;
		if ((st = side_build(&t->va, valid, sel, valid->n, err)) != CAI_OK)
			goto done;
	}
	else
	{
		bool	   *isva = cai_calloc(train->n + 1, sizeof(bool));
		size_t		a = 0;

		if (isva == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		ner_split_mask(train->n, cai_opt_float(opts, "validation_fraction"), cai_opt_split_seed(opts), sel, isva);
		for (int pass = 0; pass < 2 && st == CAI_OK; pass++)
		{
			a = 0;
			for (size_t i = 0; i < train->n; i++)
				if (isva[i] == pass)
					sel[a++] = (int32_t) i;
			st = side_build(pass == 0 ? &t->tr : &t->va, train, sel, a, err);
		}
		cai_free(isva);
		if (st != CAI_OK)
			goto done;
	}
	if (t->tr.n == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "no training sentences with tokens");
		goto done;
	}

	/* tags and types */
	if ((st = cai_strtab_init(&tt, 16, err)) != CAI_OK ||
		(st = side_parse(&t->tr, "training", &tt, scheme, NULL, NULL, err)) != CAI_OK)
		goto done;
	t->scheme = scheme >= 0 ? (cai_chunk_scheme) scheme :
		cai_chunk_scheme_detect(t->tr.prefix, t->tr.type, t->tr.off, t->tr.n);
	if (tt.n == 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "the training tags contain no entities (every tag is O)");
		goto done;
	}
	if (tt.n > NER_MAX_TYPES)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "too many entity types (%d, at most %d)", tt.n, NER_MAX_TYPES);
		goto done;
	}
	names = cai_malloc(sizeof(char *) * (size_t) tt.n);
	remap = cai_malloc(sizeof(int32_t) * (size_t) tt.n);
	if (names == NULL || remap == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int32_t i = 0; i < tt.n; i++)
		names[i] = cai_strtab_str(&tt, i);
	qsort(names, (size_t) tt.n, sizeof(char *), cmp_str);
	if ((st = cai_strtab_init(&m->types, tt.n, err)) != CAI_OK)
		goto done;
	for (int32_t i = 0; i < tt.n; i++)
	{
		int32_t		id;

		if ((st = cai_strtab_intern(&m->types, names[i], strlen(names[i]), &id, NULL, err)) != CAI_OK)
			goto done;
	}
	for (int32_t i = 0; i < tt.n; i++)
		remap[i] = cai_strtab_find(&m->types, cai_strtab_str(&tt, i), cai_strtab_len(&tt, i));
	for (int64_t j = 0; j < t->tr.off[t->tr.n]; j++)
		if (t->tr.type[j] >= 0)
			t->tr.type[j] = remap[t->tr.type[j]];
	if ((st = ner_build_tags(m, err)) != CAI_OK)
		goto done;
	if (t->va.n > 0)
	{
		if ((st = cai_strtab_init(&extra, 16, err)) != CAI_OK ||
			(st = side_parse(&t->va, "validation", NULL, -1, &m->types, &extra, err)) != CAI_OK)
			goto done;
	}

	/* vocabularies: words, then the bigrams (with char_bigrams), then the vectors' words */
	d.bigrams = ner_bigrams_wanted(opts, &t->tr);
	d.C = ner_dims_input(&d);
	if ((st = ner_count_vocab(&t->tr, &wc, &cc, d.bigrams ? &bc : NULL, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->words, wc.tab.n, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->chars, cc.tab.n, err)) != CAI_OK)
		goto done;
	for (int32_t i = 0; i < wc.tab.n; i++)
	{
		int32_t		id;

		if (wc.cnt[i] >= t->min_count &&
			(st = cai_strtab_intern(&m->words, cai_strtab_str(&wc.tab, i), cai_strtab_len(&wc.tab, i),
									&id, NULL, err)) != CAI_OK)
			goto done;
	}
	for (int32_t i = 0; i < cc.tab.n; i++)
	{
		int32_t		id;

		if ((st = cai_strtab_intern(&m->chars, cai_strtab_str(&cc.tab, i), cai_strtab_len(&cc.tab, i),
									&id, NULL, err)) != CAI_OK)
			goto done;
	}
	for (int32_t i = 0; i < bc.tab.n; i++)
	{
		int32_t		id;

		if (bc.cnt[i] >= (t->min_count > NER_BIGRAM_MIN ? t->min_count : NER_BIGRAM_MIN) &&
			(st = cai_strtab_intern(&m->words, cai_strtab_str(&bc.tab, i), cai_strtab_len(&bc.tab, i),
									&id, NULL, err)) != CAI_OK)
			goto done;
	}
	if (vec != NULL)
		for (size_t i = 0; i < vec->n; i++)
		{
			char		norm[NER_NORM_MAX];
			size_t		n;
			int32_t		id;

			if (vec->words[i] == NULL)
				continue;
			n = ner_norm(vec->words[i], vec->lens[i], norm);
			if (m->words.n >= NER_MAX_VOCAB - 1)
				break;
			if ((st = cai_strtab_intern(&m->words, norm, n, &id, NULL, err)) != CAI_OK)
				goto done;
		}
	if (m->words.n >= NER_MAX_VOCAB - 1 || m->chars.n >= NER_MAX_VOCAB - 1)
	{
		st = cai_error_set(err, CAI_ERR_LIMIT, "vocabulary is too large");
		goto done;
	}

	/* network */
	d.Vw = m->words.n + 1;
	d.Vc = m->chars.n + 1;
	d.n_types = m->types.n;
	d.K = 1 + 4 * d.n_types;
	if ((st = ner_net_declare(&m->net, &d, err)) != CAI_OK ||
		(st = cai_slab_alloc(&m->net.slab, true, 2, 0, err)) != CAI_OK)
		goto done;
	cai_rng_seed(&rng, t->seed);
	ner_net_init_params(&m->net, &rng);
	t->singleton = cai_calloc((size_t) d.Vw, 1);
	if (t->singleton == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	for (int32_t i = 0; i < wc.tab.n; i++)
		if (wc.cnt[i] == 1)
		{
			int32_t		id = cai_strtab_find(&m->words, cai_strtab_str(&wc.tab, i), cai_strtab_len(&wc.tab, i));

			if (id >= 0)
				t->singleton[id + 1] = 1;
		}
	if (vec != NULL)
	{
		uint8_t    *done_row = t->pretrained = cai_calloc((size_t) d.Vw, 1);

		if (done_row == NULL || (t->vrows = cai_malloc(sizeof(int32_t) * (size_t) d.Vw)) == NULL)
		{
			st = NOMEM(err);
			goto done;
		}
		for (size_t i = 0; i < vec->n; i++)
		{
			char		norm[NER_NORM_MAX];
			size_t		n;
			int32_t		row;

			if (vec->words[i] == NULL)
				continue;
			n = ner_norm(vec->words[i], vec->lens[i], norm);
			row = cai_strtab_find(&m->words, norm, n) + 1;
			if (row <= 0 || done_row[row])
				continue;
			done_row[row] = 1;
			t->singleton[row] = 0;
			memcpy(PD(&m->net, P_WORD) + (size_t) row * d.Dw, vec->vectors + i * (size_t) d.Dw,
				   sizeof(float) * d.Dw);
		}
	}

	/* encoded data */
	if ((st = side_encode(m, &t->tr, err)) != CAI_OK ||
		(st = side_gold_tags(&t->tr, err)) != CAI_OK)
		goto done;
	if (t->va.n > 0 && (st = side_encode(m, &t->va, err)) != CAI_OK)
		goto done;
	if (t->va.n > 0)
	{
		/* the training side's parsed tags were only for its gold tags (side_f1 scores the validation side) */
		cai_free(t->tr.prefix);
		cai_free(t->tr.type);
		t->tr.prefix = NULL;
		t->tr.type = NULL;
	}
	{
		int			maxT;
		size_t		maxN,
					maxNc;
		const NerSide *ev = t->va.n > 0 ? &t->va : &t->tr;
		NerLenItem *tmp = cai_malloc(sizeof(NerLenItem) * (ev->enc.n + 1));

		t->eorder = cai_malloc(sizeof(int32_t) * (ev->enc.n + 1));
		t->pred = cai_malloc(sizeof(int32_t) * (ev->enc.ntok + 1));
		t->best_pred = cai_malloc(sizeof(int32_t) * (ev->enc.ntok + 1));
		t->best = cai_malloc(sizeof(float) * m->net.slab.numel);
		t->order = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 1));
		t->bstart = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 2));
		t->border = cai_malloc(sizeof(int32_t) * (t->tr.enc.n + 1));
		if (tmp == NULL || t->eorder == NULL || t->pred == NULL || t->best_pred == NULL ||
			t->best == NULL || t->order == NULL || t->bstart == NULL || t->border == NULL)
		{
			cai_free(tmp);
			st = NOMEM(err);
			goto done;
		}
		ner_enc_length_order(&ev->enc, tmp, t->eorder);
		cai_free(tmp);
		if ((st = ner_ws_for_order(&d, &ev->enc, t->eorder, &t->ews, false, NULL, err)) != CAI_OK)
			goto done;
		if (t->pool.n > 1)
			st = ner_shards_alloc(t, &d, &ev->enc, err);
		else if ((st = ner_enc_bounds(&t->tr.enc, t->batch, &maxT, &maxN, &maxNc, err)) == CAI_OK)
			st = ner_ws_init(&t->ws, &d, t->batch, maxT, maxN, maxNc, true, false, NULL, err);
		if (st != CAI_OK)
			goto done;
	}
	st = CAI_OK;
done:
	cai_free(sel);
	cai_free(names);
	cai_free(remap);
	ner_counter_free(&wc);
	ner_counter_free(&cc);
	ner_counter_free(&bc);
	cai_strtab_free(&tt);
	cai_strtab_free(&extra);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Training                                                               */
/* ---------------------------------------------------------------------- */

/* Decode the evaluation side (t->eorder) into pred, with the pool when there is one. */
static cai_status
train_decode(NerTrain *t, const NerEnc *e, int32_t *pred, cai_trainer *tk, double frac0, double frac1,
			 cai_error *err)
{
	if (t->pool.n > 1)
		return ner_enc_decode_par(t, e, pred, tk, frac0, frac1, err);
	return ner_enc_decode(&t->m, e, t->eorder, &t->ews, pred, NULL, tk, frac0, frac1, err);
}

/*
 * This epoch's batches: shuffle the pieces, sort windows of 32 batches by
 * length, cut batches, shuffle the batch order.  Returns the batch count.
 */
static int
make_batches(NerTrain *t, cai_rng *rng, NerLenItem *tmp)
{
	const NerEnc *e = &t->tr.enc;
	size_t		n = e->n;
	size_t		win = (size_t) t->batch * 32;
	int			nb = 0;

	for (size_t p = 0; p < n; p++)
		t->order[p] = (int32_t) p;
	cai_rng_shuffle(rng, t->order, n);
	for (size_t w0 = 0; w0 < n; w0 += win)
	{
		size_t		k = n - w0 < win ? n - w0 : win;

		for (size_t i = 0; i < k; i++)
		{
			int32_t		p = t->order[w0 + i];

			tmp[i].len = (int32_t) (e->soff[p + 1] - e->soff[p]);
			tmp[i].pos = (int32_t) i;
			tmp[i].id = p;
		}
		qsort(tmp, k, sizeof(NerLenItem), ner_cmp_len_asc);
		for (size_t i = 0; i < k; i++)
			t->order[w0 + i] = tmp[i].id;
	}
	for (size_t b0 = 0; b0 < n; b0 += (size_t) t->batch)
		t->bstart[nb++] = (int32_t) b0;
	t->bstart[nb] = (int32_t) n;
	for (int b = 0; b < nb; b++)
		t->border[b] = b;
	cai_rng_shuffle(rng, t->border, (size_t) nb);
	return nb;
}

/*
 * After clipping, before the optimizer step: the touched word rows that
 * word vectors initialised leave the slab's row set for t->vrows, so that
 * the step leaves them alone; returns how many.
 */
static int32_t
split_pretrained(NerTrain *t)
{
	cai_rowset *rs = cai_slab_rowset(&t->m.net.slab, t->m.net.idx[P_WORD]);
	int32_t		w = 0,
				nv = 0;

	for (int32_t i = 0; i < rs->count; i++)
	{
		int32_t		r = rs->list[i];

		if (t->pretrained[r])
		{
			t->vrows[nv++] = r;
			rs->flags[r] = 0;
		}
		else
			rs->list[w++] = r;
	}
	rs->count = w;
	return nv;
}

/*
 * The optimizer step of the touched pretrained rows at NER_VECTOR_LR times
 * the learning rate (the lazy update the slab's step gives the other rows,
 * same step count), their gradients then zeroed (the slab's row set no
 * longer lists them).  Call after clipping and before the slab's step;
 * without word vectors it does nothing.
 */
void
ner_step_pretrained(NerTrain *t, const cai_optim_config *cfg, int64_t step)
{
	cai_slab   *slab = &t->m.net.slab;
	const cai_param *p = &slab->params[t->m.net.idx[P_WORD]];
	cai_optim_config c = *cfg;
	size_t		D = (size_t) t->m.net.d.Dw;
	int32_t		nv;

	if (t->pretrained == NULL || (nv = split_pretrained(t)) == 0)
		return;
	if (!p->decay)
		c.weight_decay = 0.0f;	/* as the slab's step */
	cai_optim_step_rows(&c, t->lr * NER_VECTOR_LR, step, slab->data + p->offset, slab->grad + p->offset,
						slab->m != NULL ? slab->m + p->offset : NULL, slab->v != NULL ? slab->v + p->offset : NULL,
						D, t->vrows, (size_t) nv);
	for (int32_t i = 0; i < nv; i++)
		memset(slab->grad + p->offset + (size_t) t->vrows[i] * D, 0, sizeof(float) * D);
}

/* One optimizer step on the batch of sentences ids[0..B). */
static cai_status
train_step(NerTrain *t, const cai_optim_config *cfg, const NerTrainCtx *tc, const int32_t *ids, int B,
		   int64_t step, double *loss, cai_error *err)
{
	cai_status	st;
	float		norm;

	NerGrad		g = ner_net_slab_grad(&t->m.net, B);

	cai_slab_zero_grad(&t->m.net.slab);
	if ((st = ner_net_forward(&t->m, &t->tr.enc, ids, B, &t->ws, tc, err)) != CAI_OK ||
		(st = ner_net_backward(&t->m, &t->ws, tc, &g, loss, err)) != CAI_OK)
		return st;
	norm = cai_slab_clip_grad_norm(&t->m.net.slab, t->clip);
	if (!isfinite(norm) || !isfinite(*loss))
		return cai_error_set(err, CAI_ERR_NUMERIC, "training diverged (the loss or gradient is not finite)");
	ner_step_pretrained(t, cfg, step);
	return cai_slab_step(&t->m.net.slab, cfg, t->lr, step, err);
}

/* The epochs' state: the trainer's hooks (trainer.h) work on it. */
typedef struct NerLoop
{
	NerTrain   *t;
	cai_optim_config cfg;
	NerTrainCtx tc;				/* tc.rng = &rng */
	cai_rng		rng;			/* batches, dropout, unknown words */
	NerLenItem *tmp;			/* (batch * 32) make_batches */
	char	   *pp;				/* (ev ntok) side_f1 */
	int32_t    *pt;				/* (ev ntok) side_f1 */
	NerSide    *ev;				/* the validation side, or the training side without one */
	bool		has_va;
	int64_t		step;
	int			nb;				/* batches of this epoch */
} NerLoop;

static cai_status
ner_begin_epoch(void *ctx, int epoch, cai_error *err)
{
	NerLoop    *l = ctx;

	l->nb = make_batches(l->t, &l->rng, l->tmp);
	return CAI_OK;
}

/* Adam steps over this epoch's batches (with the pool when there is one). */
static cai_status
ner_train_epoch(void *ctx, cai_trainer *tr, int epoch, double *loss_out, double *rows, cai_error *err)
{
	NerLoop    *l = ctx;
	NerTrain   *t = l->t;
	double		span = 1.0 / (double) tr->epochs;
	double		loss_sum = 0.0;
	cai_status	st;

	for (int bi = 0; bi < l->nb; bi++)
	{
		int32_t		b0 = t->bstart[t->border[bi]];
		int			B = t->bstart[t->border[bi] + 1] - b0;
		double		loss;

		if (t->pool.n > 1)
			st = ner_train_step_par(t, &l->cfg, &l->rng, t->order + b0, B, ++l->step, &loss, err);
		else
			st = train_step(t, &l->cfg, &l->tc, t->order + b0, B, ++l->step, &loss, err);
		if (st != CAI_OK)
			return st;
		loss_sum += loss;
		if ((st = cai_trainer_poll(tr, span * ((double) (epoch - 1) + 0.95 * (double) (bi + 1) / (double) l->nb),
								   err)) != CAI_OK)
			return st;
		if (cai_trainer_out_of_time(tr))
			break;
	}
	*loss_out = loss_sum / (double) t->tr.enc.n;
	*rows = (double) t->tr.enc.n;
	return CAI_OK;
}

/*
 * Entity F1 on the validation side; without one, 0 (the training side is
 * decoded once, after the last epoch).  Equal F1 is not better (no loss).
 */
static cai_status
ner_evaluate(void *ctx, cai_trainer *tr, int epoch, double *score, double *loss, cai_error *err)
{
	NerLoop    *l = ctx;
	double		span = 1.0 / (double) tr->epochs;
	cai_status	st;

	*score = 0.0;
	*loss = NAN;
	if (!l->has_va)
		return CAI_OK;
	if ((st = train_decode(l->t, &l->ev->enc, l->t->pred, tr,
						   span * ((double) epoch - 0.05), span * (double) epoch, err)) != CAI_OK)
		return st;
	*score = side_f1(l->ev, l->t->pred, l->pp, l->pt);
	return CAI_OK;
}

static void
ner_snapshot(void *ctx)
{
	NerLoop    *l = ctx;
	NerTrain   *t = l->t;

	memcpy(t->best, t->m.net.slab.data, sizeof(float) * t->m.net.slab.numel);
	if (l->has_va)
		memcpy(t->best_pred, t->pred, sizeof(int32_t) * l->ev->enc.ntok);
}

/* The best parameters back into the model; without validation, its tags of the training side. */
static cai_status
ner_restore(void *ctx, cai_error *err)
{
	NerLoop    *l = ctx;
	NerTrain   *t = l->t;

	memcpy(t->m.net.slab.data, t->best, sizeof(float) * t->m.net.slab.numel);
	if (!l->has_va)
		return train_decode(t, &l->ev->enc, t->best_pred, NULL, 0, 0, err);
	return CAI_OK;
}

/* The epochs: train, validate, keep the best parameters (cai_trainer_run with NER's hooks). */
static cai_status
train_loop(NerTrain *t, cai_trainer *tk, cai_error *err)
{
	NerLoop		l;
	cai_trainer_config tc = {0};
	const cai_trainer_hooks hooks = {
		.ctx = &l, .begin_epoch = ner_begin_epoch, .train_epoch = ner_train_epoch,
		.evaluate = ner_evaluate, .snapshot = ner_snapshot, .restore = ner_restore,
	};
	cai_status	st;

	memset(&l, 0, sizeof(l));
	l.t = t;
	l.cfg = cai_optim_defaults(CAI_OPTIM_ADAM);
	l.ev = t->va.n > 0 ? &t->va : &t->tr;
	l.has_va = t->va.n > 0;
	l.tmp = cai_malloc(sizeof(NerLenItem) * ((size_t) t->batch * 32 + 1));
	l.pp = cai_malloc(l.ev->enc.ntok + 1);
	l.pt = cai_malloc(sizeof(int32_t) * (l.ev->enc.ntok + 1));
	if (l.tmp == NULL || l.pp == NULL || l.pt == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	cai_rng_seed(&l.rng, t->seed * UINT64_C(0x9e3779b97f4a7c15) + 2);
	l.tc.dropout = t->dropout;
	l.tc.rng = &l.rng;
	l.tc.singleton = t->singleton;
	l.tc.unk_p = NER_UNK_SINGLETON;
	tc.epochs = t->epochs;
	tc.patience = t->patience;
	tc.has_validation = l.has_va;	/* without validation sentences the last epoch is kept */
	tc.time_check_after_epoch = false;	/* as before the trainer: only the step loop's checks */
	tc.evaluate_last_only = true;
	st = cai_trainer_run(tk, &tc, &hooks, err);
done:
	cai_free(l.tmp);
	cai_free(l.pp);
	cai_free(l.pt);
	return st;
}

/* Metrics of the kept model on the evaluated side (without "seconds"). */
static cai_status
train_metrics(NerTrain *t, const cai_trainer *tk, json_object **out, cai_error *err)
{
	NerSide    *ev = t->va.n > 0 ? &t->va : &t->tr;
	const char **pred = cai_malloc(sizeof(char *) * (ev->enc.ntok + 1));
	const char **gold = cai_malloc(sizeof(char *) * (ev->enc.ntok + 1));
	char	   *report = NULL;
	json_object *mj = NULL;
	json_object *v;
	cai_status	st;

	*out = NULL;
	if (pred == NULL || gold == NULL)
	{
		cai_free(pred);
		cai_free(gold);
		return NOMEM(err);
	}
	for (size_t i = 0; i < ev->enc.ntok; i++)
		pred[i] = cai_strtab_str(&t->m.labels, t->m.tag_label[t->best_pred[i]]);
	for (size_t i = 0; i < ev->n; i++)
		for (int64_t j = ev->off[i]; j < ev->off[i + 1]; j++)
			gold[j] = ner_side_tag(ev, i, j);
	st = cai_conll_eval(ev->enc.soff, ev->enc.n, gold, pred, &report, err);
	cai_free(pred);
	cai_free(gold);
	if (st != CAI_OK)
		return st;
	mj = cai_json_parse_object(report);
	cai_free(report);
	if (mj == NULL || !json_object_object_get_ex(mj, "f1", &v) ||
		!cai_json_put(mj, "score", json_object_new_double(json_object_get_double(v))) ||
		!cai_trainer_put_metrics(tk, mj, "sentences", t->tr.n, t->va.n) ||
		!cai_json_put(mj, "tag_scheme", json_object_new_string(cai_chunk_scheme_name(t->scheme))) ||
		!cai_json_put(mj, "words", json_object_new_int(t->m.words.n)) ||
		!cai_json_put(mj, "chars", json_object_new_int(t->m.chars.n)))
	{
		json_object_put(mj);
		return NOMEM(err);
	}
	*out = mj;
	return CAI_OK;
}

cai_status
cai_ner_train(const cai_options *opts, const cai_ner_data *train,
			  const cai_ner_data *valid, const cai_word_vectors *vectors,
			  const char *provenance_json,
			  cai_progress_fn progress, void *progress_ctx,
			  uint8_t **model, size_t *model_len,
			  char **metrics_json, cai_error *err)
{
	cai_options *own = NULL;
	json_object *prov = NULL;
	json_object *metrics = NULL;
	char	   *meta = NULL;
	const char *arch;
	NerTrain	t;
	cai_trainer tk;
	int			threads;
	cai_status	st;

	memset(&t, 0, sizeof(t));
	t.pool.n = 1;
	if (model == NULL || model_len == NULL || metrics_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointers are required");
	*model = NULL;
	*model_len = 0;
	*metrics_json = NULL;
	if (train == NULL || train->n == 0)
		return cai_error_set(err, CAI_ERR_INVALID, "no training sentences");
	if ((st = ner_check_data(train, "training", true, err)) != CAI_OK)
		return st;
	if (valid != NULL && valid->n == 0)
		valid = NULL;
	if (valid != NULL && (st = ner_check_data(valid, "validation", true, err)) != CAI_OK)
		return st;
	if (opts == NULL)
	{
		if ((st = cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, NULL, &own, err)) != CAI_OK)
			return st;
		opts = own;
	}
	arch = cai_opt_string(opts, "architecture");
	if (arch != NULL && strcmp(arch, "bilstm_crf") != 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "unknown ner architecture \"%s\"", arch);
		goto done;
	}
	if (provenance_json != NULL && provenance_json[0] != '\0')
	{
		if ((prov = cai_json_parse_object(provenance_json)) == NULL)
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
	cai_trainer_init(&tk, progress, progress_ctx, cai_opt_float(opts, "max_seconds"));
	tk.p.epochs = (int) cai_opt_int(opts, "epochs");
	threads = (int) cai_opt_int(opts, "threads");
	/* the pool sets the BLAS threads (1 on each pool thread) and restores them */
	cai_pool_start(&t.pool, threads);

	if ((st = ner_train_setup(&t, opts, train, valid, vectors, err)) != CAI_OK ||
		(st = train_loop(&t, &tk, err)) != CAI_OK ||
		(st = train_metrics(&t, &tk, &metrics, err)) != CAI_OK)
		goto done;
	if (!cai_trainer_put_provenance(prov, "sentences", t.tr.n, t.va.n, t.seed) ||
		(meta = ner_metadata(&t.m, opts, metrics, prov)) == NULL)
	{
		st = NOMEM(err);
		goto done;
	}
	if ((st = ner_serialize(&t.m, meta, model, model_len, err)) != CAI_OK)
		goto done;
	/* wall-clock time only in the returned metrics, never in the model bytes */
	if (!cai_json_put(metrics, "seconds", json_object_new_double(cai_trainer_seconds(&tk))) ||
		(*metrics_json = ner_json_dup(metrics)) == NULL)
	{
		cai_free(*model);
		*model = NULL;
		*model_len = 0;
		st = NOMEM(err);
		goto done;
	}
	st = CAI_OK;
done:
	cai_pool_stop(&t.pool);
	ner_train_free(&t);
	json_object_put(metrics);
	json_object_put(prov);
	cai_free(meta);
	cai_options_free(own);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Memory estimate                                                        */
/* ---------------------------------------------------------------------- */

size_t
cai_ner_train_memory(const cai_options *opts, const cai_ner_data *train)
{
	cai_options *own = NULL;
	NerDims		d;
	NerNet		net;
	NerWs		ws;
	NerCounter	wc,
				cc,
				bc;
	cai_strtab	tt;
	NerSide		side;
	int32_t    *sel = NULL;
	size_t		total = 0;
	size_t		slab = 0,
				wsb = 0,
				ewsb = 0;
	size_t		ntok,
				nchars = 0;
	int			B,
				maxtok,
				threads;
	NerLenItem *it = NULL;

	memset(&wc, 0, sizeof(wc));
	memset(&cc, 0, sizeof(cc));
	memset(&bc, 0, sizeof(bc));
	memset(&tt, 0, sizeof(tt));
	memset(&side, 0, sizeof(side));
	memset(&net, 0, sizeof(net));
	if (train == NULL || train->n == 0 || ner_check_data(train, "training", true, NULL) != CAI_OK)
		return 0;
	if (opts == NULL)
	{
		if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, NULL, &own, NULL) != CAI_OK)
			return 0;
		opts = own;
	}
	if (dims_from_options(opts, &d, NULL) != CAI_OK)
		goto done;
	B = (int) cai_opt_int(opts, "batch_size");
	maxtok = (int) cai_opt_int(opts, "max_tokens");
	threads = (int) cai_opt_int(opts, "threads");
	if (threads > 1)
		B = (B + threads - 1) / threads;	/* each thread's workspace holds its shard */
	sel = cai_malloc(sizeof(int32_t) * (train->n + 1));
	if (sel == NULL)
		goto done;
	for (size_t i = 0; i < train->n; i++)
		sel[i] = (int32_t) i;
	if (side_build(&side, train, sel, train->n, NULL) != CAI_OK)
		goto done;
	d.bigrams = ner_bigrams_wanted(opts, &side);
	d.C = ner_dims_input(&d);
	if (ner_count_vocab(&side, &wc, &cc, d.bigrams ? &bc : NULL, NULL) != CAI_OK ||
		cai_strtab_init(&tt, 16, NULL) != CAI_OK)
		goto done;
	ntok = (size_t) side.off[side.n];
	for (size_t i = 0; i < side.n; i++)
		for (int64_t j = side.off[i]; j < side.off[i + 1]; j++)
		{
			char		pfx;
			const char *ty;
			size_t		tl;
			int32_t		id;

			(void) ner_side_token(&side, i, j, &tl);
			nchars += tl;
			if (cai_tag_parse(ner_side_tag(&side, i, j), &pfx, &ty, &tl) && pfx != 'O' && tt.n < NER_MAX_TYPES)
				(void) cai_strtab_intern(&tt, ty, tl, &id, NULL, NULL);
		}
	d.Vw = wc.tab.n + bc.tab.n + 1;	/* every bigram (at most) */
	d.Vc = cc.tab.n + 1;
	d.n_types = tt.n > 0 ? tt.n : 1;
	d.K = 1 + 4 * d.n_types;
	if (ner_net_declare(&net, &d, NULL) != CAI_OK || cai_slab_bytes(&net.slab, true, 2, &slab, NULL) != CAI_OK)
		goto done;
	/* workspace: the B longest sentences */
	it = cai_malloc(sizeof(NerLenItem) * (side.n + 1));
	if (it == NULL)
		goto done;
	{
		size_t		maxN = 0,
					maxNc = 0,
					evalN = 0,
					evalNc = 0;
		int			maxT = 1;
		int			EB = side.n < NER_EVAL_BATCH ? (int) side.n : NER_EVAL_BATCH;

		for (int pass = 0; pass < 2; pass++)
		{
			size_t		sum = 0,
						esum = 0;

			for (size_t s = 0; s < side.n; s++)
			{
				int64_t		len = side.off[s + 1] - side.off[s];

				if (len > maxtok)
					len = maxtok;
				it[s].len = (int32_t) (pass == 0 ? len : len * NER_WORD_CHARS);
				if (pass == 1)
				{
					int64_t		c = 0;

					for (int64_t j = side.off[s]; j < side.off[s] + len; j++)
					{
						size_t		l;

						(void) ner_side_token(&side, s, j, &l);
						c += (int64_t) (l < NER_WORD_CHARS ? (l > 0 ? l : 1) : NER_WORD_CHARS);
					}
					it[s].len = (int32_t) c;
				}
				it[s].pos = (int32_t) s;
			}
			qsort(it, side.n, sizeof(NerLenItem), ner_cmp_len_desc);
			for (size_t s = 0; s < side.n && s < (size_t) B; s++)
				sum += (size_t) it[s].len;
			for (size_t s = 0; s < side.n && s < (size_t) EB; s++)
				esum += (size_t) it[s].len;
			if (pass == 0)
			{
				maxT = side.n > 0 ? it[0].len : 1;
				maxN = sum;
				evalN = esum;
			}
			else
			{
				maxNc = sum;
				evalNc = esum;
			}
		}
		if (ner_ws_init(&ws, &d, B, maxT, maxN, maxNc, true, true, &wsb, NULL) != CAI_OK)
			goto done;
		/* the validation workspace: batches of NER_EVAL_BATCH sentences, bounded by the longest */
		if (ner_ws_init(&ws, &d, EB > 0 ? EB : 1, maxT, evalN > 0 ? evalN : 1, evalNc > 0 ? evalNc : 1,
						false, true, &ewsb, NULL) != CAI_OK)
			goto done;
	}
	/* threads: a workspace each, and gradients and a word row set for all but the first */
	if (threads > 1)
	{
		size_t		rsb = 0,
					extra;

		if (!cai_rowset_bytes(d.Vw, &rsb) ||
			!cai_size_mul(wsb, (size_t) threads, &wsb) ||
			!cai_size_mul(net.slab.numel, sizeof(float), &extra) ||
			!cai_size_add(extra, rsb, &extra) ||
			!cai_size_mul(extra, (size_t) threads - 1, &extra) ||
			!cai_size_add(wsb, extra, &wsb))
			goto done;
	}
	/*
	 * parameters, gradients, Adam, the best copy, the training and validation
	 * workspaces (one each per thread), encoded data,
	 * and at the end the serialized model (a copy of the parameters and the
	 * vocabularies) while all of that is still allocated
	 */
	if (!cai_size_mul(ewsb, (size_t) (threads > 1 ? threads : 1), &ewsb) || !cai_size_add(wsb, ewsb, &wsb))
		goto done;
	/*
	 * the encoded tokens: a type and a tag each, and each type's features at
	 * most once a token; the sides' parsed tags (the tokens themselves stay
	 * in the caller's data); while they are built, a table of the distinct
	 * token strings (at worst every token: its bytes, hash, offset and two
	 * 8-byte slots)
	 */
	total = slab + 2 * sizeof(float) * net.slab.numel + wsb +
		ntok * (sizeof(int32_t) * (4 + 2 * (size_t) d.bigrams) + sizeof(int64_t) * 2 + 2) +
		nchars * sizeof(int32_t) + cai_strtab_memory(&wc.tab) * 3 + cai_strtab_memory(&cc.tab) * 3 +
		cai_strtab_memory(&bc.tab) * 3 + ntok * (sizeof(uint64_t) * 4 + 1) + nchars;
done:
	cai_free(it);
	cai_free(sel);
	side_free(&side);
	ner_counter_free(&wc);
	ner_counter_free(&cc);
	ner_counter_free(&bc);
	cai_strtab_free(&tt);
	cai_slab_free(&net.slab);
	cai_options_free(own);
	return total;
}
