/*
 * observe.c: what a model makes of inputs, for drift monitoring.
 *
 * Written once for every architecture: it runs a model through the
 * registry's functions (classify_batch or tag_batch, by the task's kind, and
 * the architecture's vocabulary lookup) and records, per input, its length
 * in tokens and how many of them the vocabulary lacks, and per prediction
 * its category and probability.  The SQL layer (src/pg/drift.c) bins these
 * on the validation rows at training and on new rows later and compares.
 */
#include <string.h>

#include "cai/model.h"
#include "cai/tokenize.h"
#include "ner_internal.h"

#define OBSERVE_MAX_TOKENS	100000	/* tokens read from one text (as cai_tag's limit) */
#define OBSERVE_BATCH		256		/* texts classified per call */

int
cai_model_n_categories(const cai_model *m)
{
	return cai_model_n_labels(m) + (cai_model_kind(m) == CAI_KIND_TAG ? 1 : 0);
}

const char *
cai_model_category(const cai_model *m, int i)
{
	int			n_labels = cai_model_n_labels(m);

	if (i >= 0 && i < n_labels)
		return cai_model_label(m, i);
	if (i == n_labels && cai_model_kind(m) == CAI_KIND_TAG)
		return "O";
	return NULL;
}

void
cai_observation_free(cai_observation *o)
{
	if (o == NULL)
		return;
	cai_free(o->tokens);
	cai_free(o->unseen);
	cai_free(o->category);
	cai_free(o->confidence);
	memset(o, 0, sizeof(*o));
}

/* Room for n inputs and n_out predictions. */
static cai_status
observe_alloc(const cai_model *m, size_t n, size_t n_out, cai_observation *o, cai_error *err)
{
	o->n = n;
	o->n_out = n_out;
	o->tokens = cai_calloc(n + 1, sizeof(int32_t));
	o->unseen = cai_model_has_vocabulary(m) ? cai_calloc(n + 1, sizeof(int32_t)) : NULL;
	o->category = cai_calloc(n_out + 1, sizeof(int32_t));
	o->confidence = cai_calloc(n_out + 1, sizeof(float));
	if (o->tokens == NULL || o->category == NULL || o->confidence == NULL ||
		(cai_model_has_vocabulary(m) && o->unseen == NULL))
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", n);
	return CAI_OK;
}

/* Tokens of words[0..k) the model's vocabulary lacks. */
static int32_t
count_unseen(const cai_model *m, const char *const *words, const size_t *lens, size_t k)
{
	int32_t		unseen = 0;

	for (size_t i = 0; i < k; i++)
		if (!cai_model_known_word(m, words[i], lens[i]))
			unseen++;
	return unseen;
}

/* A classifier: one prediction per text, lengths and unseen words by cai_tokenize. */
static cai_status
observe_classify(const cai_model *m, const char *const *texts, const size_t *lens, size_t n,
				 cai_observation *o, cai_error *err)
{
	int			L = cai_model_n_labels(m);
	float	   *probs = NULL;
	cai_status	st;

	if ((st = observe_alloc(m, n, n, o, err)) != CAI_OK)
		return st;
	probs = cai_malloc(sizeof(float) * OBSERVE_BATCH * (size_t) L);
	if (probs == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", n);
	for (size_t from = 0; from < n && st == CAI_OK; from += OBSERVE_BATCH)
	{
		size_t		k = n - from < OBSERVE_BATCH ? n - from : OBSERVE_BATCH;

		if ((st = cai_model_classify_batch(m, texts + from, lens + from, k, probs, err)) != CAI_OK)
			break;
		for (size_t i = 0; i < k; i++)
		{
			const float *p = probs + i * (size_t) L;
			int			best = 0;

			for (int c = 1; c < L; c++)
				if (p[c] > p[best])
					best = c;
			o->category[from + i] = best;
			o->confidence[from + i] = p[best];
		}
	}
	cai_free(probs);
	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		cai_token  *toks = NULL;
		size_t		nt = 0;

		if ((st = cai_tokenize(texts[i], lens[i], OBSERVE_MAX_TOKENS, &toks, &nt, err)) != CAI_OK)
			break;
		o->tokens[i] = (int32_t) nt;
		if (o->unseen != NULL)
			for (size_t t = 0; t < nt; t++)
				if (!cai_model_known_word(m, texts[i] + toks[t].start, (size_t) (toks[t].end - toks[t].start)))
					o->unseen[i]++;
		cai_free(toks);
	}
	return st;
}

/* The category of an IOB2 tag: its entity type's label index, n_labels for O (or a type the model lacks). */
static int32_t
tag_category(const cai_model *m, int n_labels, const char *tag)
{
	if (tag == NULL || strlen(tag) < 3 || tag[1] != '-')
		return n_labels;
	for (int c = 0; c < n_labels; c++)
		if (strcmp(cai_model_label(m, c), tag + 2) == 0)
			return c;
	return n_labels;
}

/* A tagger: one prediction per token (tagged in batches), lengths and unseen words by the sentences' tokens. */
static cai_status
observe_tag(const cai_model *m, const cai_ner_data *data, cai_observation *o, cai_error *err)
{
	size_t		ntok = (size_t) data->offsets[data->n];
	int			L = cai_model_n_labels(m);
	const char **tags;
	cai_status	st;

	if ((st = observe_alloc(m, data->n, ntok, o, err)) != CAI_OK)
		return st;
	tags = cai_calloc(ntok + 1, sizeof(char *));
	if (tags == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu tokens", ntok);
	if (ntok > 0)
		st = cai_model_tag_batch(m, data, tags, o->confidence, err);
	for (size_t i = 0; i < ntok && st == CAI_OK; i++)
		o->category[i] = tag_category(m, L, tags[i]);
	for (size_t s = 0; s < data->n && st == CAI_OK; s++)
	{
		int64_t		a = data->offsets[s];
		size_t		k = (size_t) (data->offsets[s + 1] - a);

		o->tokens[s] = (int32_t) k;
		if (o->unseen != NULL)
			o->unseen[s] = count_unseen(m, data->tokens + a, data->token_lens + a, k);
	}
	cai_free(tags);
	return st;
}

cai_status
cai_model_observe_texts(const cai_model *m, const char *const *texts, const size_t *lens, size_t n,
						cai_observation *out, cai_error *err)
{
	int64_t    *offsets = NULL;
	const char **words = NULL;
	size_t	   *wlens = NULL;
	size_t		ntok = 0,
				cap = 0;
	cai_ner_data data = {0};
	cai_status	st = CAI_OK;

	memset(out, 0, sizeof(*out));
	if (cai_model_kind(m) == CAI_KIND_CLASSIFY)
		return observe_classify(m, texts, lens, n, out, err);
	if (cai_model_kind(m) != CAI_KIND_TAG)
		return cai_error_set(err, CAI_ERR_INVALID, "a %s model makes no predictions to observe", cai_model_task(m));

	/* a tagger reads each text as one sentence of its cai_tokenize tokens */
	offsets = cai_malloc(sizeof(int64_t) * (n + 1));
	if (offsets == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", n);
	offsets[0] = 0;
	for (size_t i = 0; i < n && st == CAI_OK; i++)
	{
		cai_token  *toks = NULL;
		size_t		nt = 0;

		if ((st = cai_tokenize(texts[i], lens[i], OBSERVE_MAX_TOKENS, &toks, &nt, err)) != CAI_OK)
			break;
		if (ntok + nt > cap)
		{
			size_t		ncap = (ntok + nt) * 2 + 64;
			const char **nw = cai_realloc(words, sizeof(char *) * cap, sizeof(char *) * ncap);
			size_t	   *nl = nw != NULL ? cai_realloc(wlens, sizeof(size_t) * cap, sizeof(size_t) * ncap) : NULL;

			if (nw != NULL)
				words = nw;
			if (nl == NULL)
			{
				cai_free(toks);
				st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", n);
				break;
			}
			wlens = nl;
			cap = ncap;
		}
		for (size_t t = 0; t < nt; t++)
		{
			words[ntok + t] = texts[i] + toks[t].start;
			wlens[ntok + t] = (size_t) (toks[t].end - toks[t].start);
		}
		ntok += nt;
		offsets[i + 1] = (int64_t) ntok;
		cai_free(toks);
	}
	if (st == CAI_OK)
	{
		data.n = n;
		data.offsets = offsets;
		data.tokens = words;
		data.token_lens = wlens;
		st = observe_tag(m, &data, out, err);
	}
	cai_free(offsets);
	cai_free(words);
	cai_free(wlens);
	return st;
}

cai_status
cai_model_observe_sentences(const cai_model *m, const cai_ner_data *data, cai_observation *out, cai_error *err)
{
	char	  **texts;
	size_t	   *lens;
	cai_status	st = CAI_OK;

	memset(out, 0, sizeof(*out));
	if (cai_ner_data_token_ids(data))
	{
		/* the compact form, as strings */
		cai_ner_data sd;
		void	   *own = NULL;

		if ((st = ner_data_strings(data, &sd, &own, err)) == CAI_OK)
			st = cai_model_observe_sentences(m, &sd, out, err);
		cai_free(own);
		return st;
	}
	if (cai_model_kind(m) == CAI_KIND_TAG)
		return observe_tag(m, data, out, err);
	if (cai_model_kind(m) != CAI_KIND_CLASSIFY)
		return cai_error_set(err, CAI_ERR_INVALID, "a %s model makes no predictions to observe", cai_model_task(m));

	/* a classifier reads each sentence as its tokens joined by spaces */
	texts = cai_calloc(data->n + 1, sizeof(char *));
	lens = cai_calloc(data->n + 1, sizeof(size_t));
	if (texts == NULL || lens == NULL)
		st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", data->n);
	for (size_t s = 0; s < data->n && st == CAI_OK; s++)
	{
		size_t		len = 0;

		for (int64_t t = data->offsets[s]; t < data->offsets[s + 1]; t++)
			len += data->token_lens[t] + 1;
		if ((texts[s] = cai_malloc(len + 1)) == NULL)
		{
			st = cai_error_set(err, CAI_ERR_NOMEM, "out of memory while observing %zu inputs", data->n);
			break;
		}
		for (int64_t t = data->offsets[s]; t < data->offsets[s + 1]; t++)
		{
			if (lens[s] > 0)
				texts[s][lens[s]++] = ' ';
			memcpy(texts[s] + lens[s], data->tokens[t], data->token_lens[t]);
			lens[s] += data->token_lens[t];
		}
		texts[s][lens[s]] = '\0';
	}
	if (st == CAI_OK)
		st = observe_classify(m, (const char *const *) texts, lens, data->n, out, err);
	for (size_t s = 0; texts != NULL && s < data->n; s++)
		cai_free(texts[s]);
	cai_free(texts);
	cai_free(lens);
	return st;
}
