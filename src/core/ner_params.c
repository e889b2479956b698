/*
 * ner_params.c: the NER model's parameters and the model itself: the
 * parameter tensors and their slab, the tag tables, serialization to the
 * model format and cai_ner_load, cai_ner_free and cai_ner_memory.
 *
 * Model tensors:
 *   ner.words.bytes / ner.words.offsets   U8 / I32 (n_words + 1): word i
 *       (embedding row i + 1) is bytes[off[i] .. off[i + 1] - 1), NUL-ended
 *   ner.chars.bytes / ner.chars.offsets   likewise, one code point each
 *   ner.words.slots / ner.chars.slots     I32: format.h cai_strindex slots of
 *       each vocabulary (seed NER_SEED_VOCAB), so that a load builds no table
 *       (models written before them still load, building the slots privately)
 *   ner.<parameter>                       F32, shapes in param_shape()
 * A vocabulary with no entries has no tensors (the metadata says so).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ner_internal.h"

/* ---------------------------------------------------------------------- */
/* Network parameters                                                     */
/* ---------------------------------------------------------------------- */

static const char *const param_names[P_COUNT] = {
	"word_emb", "char_emb", "char_conv.weight", "char_conv.bias", "case_emb",
	"lstm.fw.w_ih", "lstm.fw.w_hh", "lstm.fw.b", "lstm.bw.w_ih", "lstm.bw.w_hh", "lstm.bw.b",
	"out.weight", "out.bias", "crf.trans", "crf.start", "crf.end",
};

static int
param_shape(const NerDims *d, int p, int64_t *shape)
{
	switch (p)
	{
		case P_WORD:
			shape[0] = d->Vw;
			shape[1] = d->Dw;
			return 2;
		case P_CHAR:
			shape[0] = d->Vc;
			shape[1] = d->Dc;
			return 2;
		case P_CONV_W:
			shape[0] = d->F;
			shape[1] = NER_CHAR_WIDTH;
			shape[2] = d->Dc;
			return 3;
		case P_CONV_B:
			shape[0] = d->F;
			return 1;
		case P_CASE:
			shape[0] = CAI_CASE_COUNT;
			shape[1] = d->Dcase;
			return 2;
		case P_FW_WIH:
		case P_BW_WIH:
			shape[0] = 4 * (int64_t) d->H;
			shape[1] = d->C;
			return 2;
		case P_FW_WHH:
		case P_BW_WHH:
			shape[0] = 4 * (int64_t) d->H;
			shape[1] = d->H;
			return 2;
		case P_FW_B:
		case P_BW_B:
			shape[0] = 4 * (int64_t) d->H;
			return 1;
		case P_OUT_W:
			shape[0] = d->K;
			shape[1] = 2 * (int64_t) d->H;
			return 2;
		case P_OUT_B:
		case P_CRF_START:
		case P_CRF_END:
			shape[0] = d->K;
			return 1;
		case P_CRF_TRANS:
			shape[0] = d->K;
			shape[1] = d->K;
			return 2;
	}
	return 0;
}

/* Declare the parameters of d in a fresh slab (not yet allocated). */
cai_status
ner_net_declare(NerNet *net, const NerDims *d, cai_error *err)
{
	cai_status	st;

	cai_slab_init(&net->slab);
	net->d = *d;
	for (int p = 0; p < P_COUNT; p++)
	{
		int64_t		shape[CAI_PARAM_MAX_DIMS];
		int			nd = param_shape(d, p, shape);

		if ((st = cai_slab_declare(&net->slab, param_names[p], nd, shape, &net->idx[p], err)) != CAI_OK)
			return st;
	}
	/* no weight decay anywhere (Adam without decay) */
	for (int p = 0; p < P_COUNT; p++)
		cai_slab_set_decay(&net->slab, net->idx[p], false);
	return cai_slab_set_sparse(&net->slab, net->idx[P_WORD], err);
}

/* LSTM parameters (g NULL) or their gradients in g. */
void
ner_net_lstm_views(const NerNet *net, const NerGrad *g, cai_lstm_params *fw, cai_lstm_params *bw)
{
	fw->w_ih = PV(net, g, P_FW_WIH);
	fw->w_hh = PV(net, g, P_FW_WHH);
	fw->b = PV(net, g, P_FW_B);
	bw->w_ih = PV(net, g, P_BW_WIH);
	bw->w_hh = PV(net, g, P_BW_WHH);
	bw->b = PV(net, g, P_BW_B);
}

/* CRF parameters (g NULL) or their gradients in g. */
void
ner_net_crf_view(const NerNet *net, const NerGrad *g, cai_crf_params *c)
{
	c->trans = PV(net, g, P_CRF_TRANS);
	c->start = PV(net, g, P_CRF_START);
	c->end = PV(net, g, P_CRF_END);
}

/* Random initialisation of every parameter (index order, one rng). */
void
ner_net_init_params(NerNet *net, cai_rng *rng)
{
	const NerDims *d = &net->d;
	cai_lstm_params fw,
				bw;

	cai_init_uniform(PD(net, P_WORD), (size_t) d->Vw * d->Dw, sqrtf(3.0f / (float) d->Dw), rng);
	cai_init_uniform(PD(net, P_CHAR), (size_t) d->Vc * d->Dc, sqrtf(3.0f / (float) d->Dc), rng);
	cai_init_xavier(PD(net, P_CONV_W), (size_t) d->F * NER_CHAR_WIDTH * d->Dc,
					NER_CHAR_WIDTH * d->Dc, d->F, rng);
	cai_init_const(PD(net, P_CONV_B), (size_t) d->F, 0.0f);
	cai_init_uniform(PD(net, P_CASE), (size_t) CAI_CASE_COUNT * d->Dcase,
					 sqrtf(3.0f / (float) d->Dcase), rng);
	ner_net_lstm_views(net, NULL, &fw, &bw);
	cai_lstm_init(&fw, d->C, d->H, rng);
	cai_lstm_init(&bw, d->C, d->H, rng);
	cai_init_xavier(PD(net, P_OUT_W), (size_t) d->K * 2 * d->H, 2 * d->H, d->K, rng);
	cai_init_const(PD(net, P_OUT_B), (size_t) d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_TRANS), (size_t) d->K * d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_START), (size_t) d->K, 0.0f);
	cai_init_const(PD(net, P_CRF_END), (size_t) d->K, 0.0f);
}

/* ---------------------------------------------------------------------- */
/* The model                                                              */
/* ---------------------------------------------------------------------- */

const char	ner_bioes_prefix[4] = {'B', 'I', 'E', 'S'};

/* Free what m owns, not m itself (a model in training is part of a NerTrain). */
void
ner_release(cai_ner *m)
{
	cai_slab_free(&m->net.slab);
	cai_strtab_free(&m->words);
	cai_strtab_free(&m->chars);
	cai_strtab_free(&m->types);
	cai_strtab_free(&m->labels);
	cai_strtab_free(&m->tags);
	cai_free(m->tag_label);
	cai_free(m->maskbuf);
	cai_free(m->own_word_slot);
	cai_free(m->own_char_slot);
}

void
cai_ner_free(cai_ner *m)
{
	if (m == NULL)
		return;
	ner_release(m);
	cai_free(m);
}

size_t
cai_ner_memory(const cai_ner *m)
{
	return m != NULL ? m->memory : 0;
}

int
cai_ner_n_types(const cai_ner *m)
{
	return m != NULL ? m->types.n : 0;
}

const char *
cai_ner_type(const cai_ner *m, int i)
{
	return m != NULL ? cai_strtab_str(&m->types, i) : NULL;
}

/*
 * With m->types filled (sorted): build the IOB2 labels, the BIOES tags,
 * tag_label and the transition mask.
 */
cai_status
ner_build_tags(cai_ner *m, cai_error *err)
{
	int			T = m->types.n;
	int			K = 1 + 4 * T;
	char		buf[CAI_TAG_TYPE_MAX + 3];
	const char **names = NULL;
	cai_status	st;
	int32_t		id;

	if ((st = cai_strtab_init(&m->labels, 1 + 2 * T, err)) != CAI_OK ||
		(st = cai_strtab_init(&m->tags, K, err)) != CAI_OK)
		return st;
	m->tag_label = cai_malloc(sizeof(int32_t) * (size_t) K);
	m->maskbuf = cai_malloc((size_t) K * K + 2 * (size_t) K);
	names = cai_malloc(sizeof(char *) * (size_t) K);
	if (m->tag_label == NULL || m->maskbuf == NULL || names == NULL)
	{
		cai_free(names);
		return NOMEM(err);
	}
	if ((st = cai_strtab_intern(&m->labels, "O", 1, &id, NULL, err)) != CAI_OK ||
		(st = cai_strtab_intern(&m->tags, "O", 1, &id, NULL, err)) != CAI_OK)
		goto done;
	m->tag_label[0] = 0;
	for (int t = 0; t < T; t++)
	{
		const char *ty = cai_strtab_str(&m->types, t);

		for (int j = 0; j < 2; j++)
		{
			int			n = snprintf(buf, sizeof(buf), "%c-%s", j == 0 ? 'B' : 'I', ty);

			if ((st = cai_strtab_intern(&m->labels, buf, (size_t) n, &id, NULL, err)) != CAI_OK)
				goto done;
		}
		for (int j = 0; j < 4; j++)
		{
			int			n = snprintf(buf, sizeof(buf), "%c-%s", ner_bioes_prefix[j], ty);

			if ((st = cai_strtab_intern(&m->tags, buf, (size_t) n, &id, NULL, err)) != CAI_OK)
				goto done;
			/* B and S begin an entity; I and E continue it */
			m->tag_label[id] = (j == 0 || j == 3) ? 1 + 2 * t : 2 + 2 * t;
		}
	}
	if (m->labels.n != 1 + 2 * T || m->tags.n != K)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "entity types are not distinct");
		goto done;
	}
	for (int k = 0; k < K; k++)
		names[k] = cai_strtab_str(&m->tags, k);
	cai_crf_mask_view(&m->mask, m->maskbuf, K);
	st = cai_crf_mask_build(CAI_TAGS_BIOES, names, K, &m->mask, err);
done:
	cai_free(names);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Serialization                                                          */
/* ---------------------------------------------------------------------- */

char *
ner_json_dup(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);

	return s != NULL ? cai_strndup(s, strlen(s)) : NULL;
}

static json_object *
strtab_to_json(const cai_strtab *t)
{
	json_object *a = json_object_new_array();

	for (int32_t i = 0; a != NULL && i < t->n; i++)
	{
		if (json_object_array_add(a, json_object_new_string_len(cai_strtab_str(t, i),
																(int) cai_strtab_len(t, i))) != 0)
		{
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

/* Metadata JSON text (cai_malloc'ed) or NULL when out of memory. */
char *
ner_metadata(const cai_ner *m, const cai_options *opts, json_object *metrics, json_object *prov)
{
	const NerDims *d = &m->net.d;
	json_object *root = json_object_new_object();
	json_object *nj = json_object_new_object();
	json_object *oj = NULL;
	char	   *ojs = opts != NULL ? cai_options_to_json(opts) : NULL;
	char	   *out = NULL;
	bool		ok;

	if (ojs != NULL)
		oj = cai_json_parse_object(ojs);
	cai_free(ojs);
	ok = root != NULL && nj != NULL && (opts == NULL || oj != NULL);
	ok = ok &&
		cai_json_put(nj, "feature_version", json_object_new_int(NER_FEATURE_VERSION)) &&
		cai_json_put(nj, "dimensions", json_object_new_int(d->Dw)) &&
		cai_json_put(nj, "char_dimensions", json_object_new_int(d->Dc)) &&
		cai_json_put(nj, "char_filters", json_object_new_int(d->F)) &&
		cai_json_put(nj, "char_width", json_object_new_int(NER_CHAR_WIDTH)) &&
		cai_json_put(nj, "word_chars", json_object_new_int(NER_WORD_CHARS)) &&
		cai_json_put(nj, "case_dimensions", json_object_new_int(d->Dcase)) &&
		cai_json_put(nj, "char_bigrams", json_object_new_boolean(d->bigrams != 0)) &&
		cai_json_put(nj, "hidden", json_object_new_int(d->H)) &&
		cai_json_put(nj, "words", json_object_new_int(m->words.n)) &&
		cai_json_put(nj, "chars", json_object_new_int(m->chars.n)) &&
		cai_json_put(nj, "tags", json_object_new_int(d->K)) &&
		cai_json_put(nj, "scheme", json_object_new_string("bioes")) &&
		cai_json_put(nj, "max_tokens", json_object_new_int(m->max_tokens));
	ok = ok &&
		cai_json_put(root, "task", json_object_new_string("ner")) &&
		cai_json_put(root, "architecture", json_object_new_string("bilstm_crf")) &&
		cai_json_put(root, "labels", strtab_to_json(&m->labels)) &&
		cai_json_put(root, "types", strtab_to_json(&m->types)) &&
		cai_json_put(root, "cai_version", json_object_new_string(CAI_VERSION_STRING));
	if (ok && oj != NULL)
	{
		ok = cai_json_put(root, "options", oj);
		oj = NULL;
	}
	if (ok)
	{
		ok = cai_json_put(root, "ner", nj);
		nj = NULL;
	}
	if (ok && metrics != NULL)
		ok = cai_json_put(root, "metrics", json_object_get(metrics));
	if (ok && prov != NULL)
		ok = cai_json_put(root, "provenance", json_object_get(prov));
	if (ok)
		out = ner_json_dup(root);
	json_object_put(root);
	json_object_put(nj);
	json_object_put(oj);
	return out;
}

/* Vocabulary t as a bytes blob (NUL-terminated words) and offsets (n + 1). */
static cai_status
vocab_blob(const cai_strtab *t, uint8_t **bytes, size_t *nbytes, int32_t **off, cai_error *err)
{
	*bytes = NULL;
	*off = NULL;
	*nbytes = (size_t) t->off[t->n];
	if (*nbytes > INT32_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "vocabulary is too large to store");
	*bytes = cai_malloc(*nbytes);
	*off = cai_malloc(sizeof(int32_t) * ((size_t) t->n + 1));
	if (*bytes == NULL || *off == NULL)
	{
		cai_free(*bytes);
		cai_free(*off);
		*bytes = NULL;
		*off = NULL;
		return NOMEM(err);
	}
	memcpy(*bytes, t->arena, *nbytes);
	for (int32_t i = 0; i <= t->n; i++)
		(*off)[i] = (int32_t) t->off[i];
	return CAI_OK;
}

/* The serialized lookup table (format.h cai_strindex) of a vocabulary blob, as tensor *t. */
static cai_status
vocab_slots(int32_t n, const uint8_t *bytes, size_t nbytes, const int32_t *off, const char *name,
			int32_t **slot, cai_tensor *t, cai_error *err)
{
	cai_strindex ix = {n, (const char *) bytes, nbytes, off, NULL, cai_index_capacity(n) - 1, NER_SEED_VOCAB};
	cai_status	st;

	*slot = cai_malloc(sizeof(int32_t) * ((size_t) ix.mask + 1));
	if (*slot == NULL)
		return NOMEM(err);
	if ((st = cai_strindex_build(&ix, *slot, name, err)) != CAI_OK)
		return st;
	snprintf(t->name, CAI_NAME_MAX, "%s", name);
	t->dtype = CAI_I32;
	t->ndim = 1;
	t->shape[0] = (int64_t) ix.mask + 1;
	t->data = *slot;
	t->nbytes = sizeof(int32_t) * ((size_t) ix.mask + 1);
	return CAI_OK;
}

cai_status
ner_serialize(const cai_ner *m, const char *meta, uint8_t **model, size_t *model_len, cai_error *err)
{
	cai_tensor	ts[6 + P_COUNT];
	uint8_t    *wb = NULL,
			   *cb = NULL;
	int32_t    *wo = NULL,
			   *co = NULL;
	int32_t    *ws = NULL,
			   *cs = NULL;
	size_t		wn = 0,
				cn = 0;
	int			nt = 0;
	cai_status	st;

	memset(ts, 0, sizeof(ts));
	if ((st = vocab_blob(&m->words, &wb, &wn, &wo, err)) != CAI_OK ||
		(st = vocab_blob(&m->chars, &cb, &cn, &co, err)) != CAI_OK)
		goto done;
	if (m->words.n > 0)
	{
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.words.bytes");
		ts[nt].dtype = CAI_U8;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) wn;
		ts[nt].data = wb;
		ts[nt].nbytes = wn;
		nt++;
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.words.offsets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = m->words.n + 1;
		ts[nt].data = wo;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) m->words.n + 1);
		nt++;
		if ((st = vocab_slots(m->words.n, wb, wn, wo, "ner.words.slots", &ws, &ts[nt], err)) != CAI_OK)
			goto done;
		nt++;
	}
	if (m->chars.n > 0)
	{
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.chars.bytes");
		ts[nt].dtype = CAI_U8;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = (int64_t) cn;
		ts[nt].data = cb;
		ts[nt].nbytes = cn;
		nt++;
		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.chars.offsets");
		ts[nt].dtype = CAI_I32;
		ts[nt].ndim = 1;
		ts[nt].shape[0] = m->chars.n + 1;
		ts[nt].data = co;
		ts[nt].nbytes = sizeof(int32_t) * ((size_t) m->chars.n + 1);
		nt++;
		if ((st = vocab_slots(m->chars.n, cb, cn, co, "ner.chars.slots", &cs, &ts[nt], err)) != CAI_OK)
			goto done;
		nt++;
	}
	for (int p = 0; p < P_COUNT; p++)
	{
		const cai_param *pp = &m->net.slab.params[m->net.idx[p]];

		snprintf(ts[nt].name, CAI_NAME_MAX, "ner.%s", param_names[p]);
		ts[nt].dtype = CAI_F32;
		ts[nt].ndim = pp->ndim;
		memcpy(ts[nt].shape, pp->shape, sizeof(int64_t) * (size_t) pp->ndim);
		ts[nt].data = PD(&m->net, p);
		ts[nt].nbytes = sizeof(float) * pp->numel;
		nt++;
	}
	st = cai_format_write(meta, ts, nt, model, model_len, err);
done:
	cai_free(wb);
	cai_free(cb);
	cai_free(wo);
	cai_free(co);
	cai_free(ws);
	cai_free(cs);
	return st;
}

/* ---------------------------------------------------------------------- */
/* Loading                                                                */
/* ---------------------------------------------------------------------- */

static cai_status
json_int(json_object *obj, const char *key, int64_t min, int64_t max, int *out, cai_error *err)
{
	json_object *v;
	int64_t		x;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_int))
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks integer \"ner.%s\"", key);
	x = json_object_get_int64(v);
	if (x < min || x > max)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata \"ner.%s\" is out of range", key);
	*out = (int) x;
	return CAI_OK;
}

/*
 * Point ix at a vocabulary blob of the model file (no copy).  Unless the
 * model file is trusted and has the serialized slots, every offset is
 * checked: starting at 0, strictly increasing, the last equal to the blob
 * size, each entry NUL-terminated with no NUL inside, no duplicates (the
 * slots' check or build); chars entries must be exactly one valid code
 * point.  Models without ner.<what>.slots get a private slot array (*own).
 */
static cai_status
load_vocab(const cai_model_file *mf, const char *what, int n, bool one_cp,
		   cai_strindex *ix, int32_t **own, size_t *mem, cai_error *err)
{
	char		name[CAI_NAME_MAX];
	char		sname[CAI_NAME_MAX];
	const cai_tensor *tb;
	const cai_tensor *to;
	const cai_tensor *ts;
	const uint8_t *bytes;
	const int32_t *off;
	uint32_t	cap;
	cai_status	st;

	memset(ix, 0, sizeof(*ix));
	ix->seed = NER_SEED_VOCAB;
	snprintf(sname, sizeof(sname), "ner.%s.slots", what);
	if (n == 0)
	{
		snprintf(name, sizeof(name), "ner.%s.bytes", what);
		if (cai_model_file_tensor(mf, name) != NULL || cai_model_file_tensor(mf, sname) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model has an unexpected tensor \"%s\"", name);
		return CAI_OK;
	}
	/* shapes first, so a lying count allocates nothing */
	snprintf(name, sizeof(name), "ner.%s.bytes", what);
	if ((st = cai_model_file_expect(mf, name, CAI_U8, 1, (int64_t[]) {-1}, &tb, err)) != CAI_OK)
		return st;
	snprintf(name, sizeof(name), "ner.%s.offsets", what);
	if ((st = cai_model_file_expect(mf, name, CAI_I32, 1, (int64_t[]) {(int64_t) n + 1}, &to, err)) != CAI_OK)
		return st;
	bytes = tb->data;
	off = to->data;
	if (off[0] != 0 || (int64_t) off[n] != tb->shape[0])
		return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary offsets do not cover its bytes", what);
	ix->n = n;
	ix->bytes = (const char *) bytes;
	ix->nbytes = tb->nbytes;
	ix->off = off;
	cap = cai_index_capacity(n);
	ix->mask = cap - 1;
	ts = cai_model_file_tensor(mf, sname);
	if (ts != NULL)
	{
		if ((st = cai_model_file_expect(mf, sname, CAI_I32, 1, (int64_t[]) {cap}, &ts, err)) != CAI_OK)
			return st;
		ix->slot = ts->data;
		if (mf->trusted)
			return CAI_OK;
	}
	for (int i = 0; i < n; i++)
	{
		int32_t		a = off[i];
		int32_t		b = off[i + 1];

		if (b <= a || b > off[n] || bytes[b - 1] != '\0' ||
			memchr(bytes + a, '\0', (size_t) (b - a - 1)) != NULL)
			return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary entry %d is malformed", what, i);
		if (one_cp)
		{
			int32_t		cp;

			if (b - a - 1 < 1 || cai_utf8_decode((const char *) bytes + a, (size_t) (b - a - 1), &cp) != b - a - 1 ||
				cp < 0)
				return cai_error_set(err, CAI_ERR_FORMAT, "model %s vocabulary entry %d is not one character", what, i);
		}
	}
	snprintf(name, sizeof(name), "model %s vocabulary", what);
	if (ts != NULL)
		return cai_strindex_check(ix, name, err);
	*own = cai_malloc(sizeof(int32_t) * (size_t) cap);
	if (*own == NULL)
		return NOMEM(err);
	*mem += sizeof(int32_t) * (size_t) cap;
	ix->slot = *own;
	return cai_strindex_build(ix, *own, name, err);
}

cai_status
cai_ner_load(const cai_model_file *mf, cai_ner **out, cai_error *err)
{
	json_object *root = NULL;
	json_object *nj,
			   *v,
			   *types,
			   *labels;
	cai_ner    *m = NULL;
	NerDims		d;
	int			n_words,
				n_chars,
				K,
				fv,
				cw,
				wc;
	cai_status	st;

	if (out == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "output pointer is required");
	*out = NULL;
	if (mf == NULL || mf->meta_json == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "model file is required");
	root = cai_json_parse_object(mf->meta_json);
	if (root == NULL)
		return cai_error_set(err, CAI_ERR_FORMAT, "model metadata is not a JSON object");
	if (!json_object_object_get_ex(root, "task", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "ner") != 0)
	{
		st = cai_error_set(err, CAI_ERR_INVALID, "model is not a named-entity recognition model");
		goto fail;
	}
	if (!json_object_object_get_ex(root, "architecture", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "bilstm_crf") != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "unknown ner architecture");
		goto fail;
	}
	if (!json_object_object_get_ex(root, "ner", &nj) || !json_object_is_type(nj, json_type_object) ||
		!json_object_object_get_ex(root, "types", &types) || !json_object_is_type(types, json_type_array) ||
		!json_object_object_get_ex(root, "labels", &labels) || !json_object_is_type(labels, json_type_array))
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata lacks \"ner\", \"types\" or \"labels\"");
		goto fail;
	}
	memset(&d, 0, sizeof(d));
	if ((st = json_int(nj, "feature_version", NER_FEATURE_VERSION, NER_FEATURE_VERSION, &fv, err)) != CAI_OK ||
		(st = json_int(nj, "char_width", NER_CHAR_WIDTH, NER_CHAR_WIDTH, &cw, err)) != CAI_OK ||
		(st = json_int(nj, "word_chars", NER_WORD_CHARS, NER_WORD_CHARS, &wc, err)) != CAI_OK ||
		(st = json_int(nj, "dimensions", 1, NER_MAX_DIM, &d.Dw, err)) != CAI_OK ||
		(st = json_int(nj, "char_dimensions", 1, NER_MAX_DIM, &d.Dc, err)) != CAI_OK ||
		(st = json_int(nj, "char_filters", 1, NER_MAX_DIM, &d.F, err)) != CAI_OK ||
		(st = json_int(nj, "case_dimensions", 1, NER_MAX_DIM, &d.Dcase, err)) != CAI_OK ||
		(st = json_int(nj, "hidden", 1, NER_MAX_DIM, &d.H, err)) != CAI_OK ||
		(st = json_int(nj, "words", 0, NER_MAX_VOCAB, &n_words, err)) != CAI_OK ||
		(st = json_int(nj, "chars", 0, NER_MAX_VOCAB, &n_chars, err)) != CAI_OK ||
		(st = json_int(nj, "tags", 5, 1 + 4 * NER_MAX_TYPES, &K, err)) != CAI_OK)
		goto fail;
	if (!json_object_object_get_ex(nj, "scheme", &v) || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "bioes") != 0)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata \"ner.scheme\" is not \"bioes\"");
		goto fail;
	}
	/* models before the character bigrams have no "char_bigrams" (none) */
	if (json_object_object_get_ex(nj, "char_bigrams", &v))
	{
		if (!json_object_is_type(v, json_type_boolean))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model metadata \"ner.char_bigrams\" is not a boolean");
			goto fail;
		}
		d.bigrams = json_object_get_boolean(v) ? 1 : 0;
	}
	m = cai_calloc(1, sizeof(cai_ner));
	if (m == NULL)
	{
		st = NOMEM(err);
		goto fail;
	}
	m->memory = sizeof(cai_ner);
	if ((st = json_int(nj, "max_tokens", 1, 100000, &m->max_tokens, err)) != CAI_OK)
		goto fail;
	/* types: distinct valid type names, sorted, consistent with K */
	{
		size_t		nt = json_object_array_length(types);

		if (nt < 1 || nt > NER_MAX_TYPES || (int) (1 + 4 * nt) != K)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model types do not match its tag count");
			goto fail;
		}
		if ((st = cai_strtab_init(&m->types, (int32_t) nt, err)) != CAI_OK)
			goto fail;
		for (size_t i = 0; i < nt; i++)
		{
			json_object *e = json_object_array_get_idx(types, i);
			const char *s;
			size_t		len;
			int32_t		id;
			bool		added;

			if (e == NULL || !json_object_is_type(e, json_type_string))
			{
				st = cai_error_set(err, CAI_ERR_FORMAT, "model type %zu is not a string", i);
				goto fail;
			}
			s = json_object_get_string(e);
			len = (size_t) json_object_get_string_len(e);
			if (len == 0 || len > CAI_TAG_TYPE_MAX || strlen(s) != len ||
				(i > 0 && strcmp(cai_strtab_str(&m->types, (int32_t) i - 1), s) >= 0))
			{
				st = cai_error_set(err, CAI_ERR_FORMAT, "model type %zu is invalid or out of order", i);
				goto fail;
			}
			if ((st = cai_strtab_intern(&m->types, s, len, &id, &added, err)) != CAI_OK)
				goto fail;
		}
	}
	if ((st = ner_build_tags(m, err)) != CAI_OK)
	{
		if (st == CAI_ERR_INVALID)
			st = cai_error_set(err, CAI_ERR_FORMAT, "model types are invalid");
		goto fail;
	}
	if (json_object_array_length(labels) != (size_t) m->labels.n)
	{
		st = cai_error_set(err, CAI_ERR_FORMAT, "model labels do not match its types");
		goto fail;
	}
	for (int32_t i = 0; i < m->labels.n; i++)
	{
		json_object *e = json_object_array_get_idx(labels, (size_t) i);

		if (e == NULL || !json_object_is_type(e, json_type_string) ||
			strcmp(json_object_get_string(e), cai_strtab_str(&m->labels, i)) != 0)
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model label %d does not match its types", i);
			goto fail;
		}
	}
	m->memory += cai_strtab_memory(&m->types) + cai_strtab_memory(&m->labels) +
		cai_strtab_memory(&m->tags) + sizeof(int32_t) * (size_t) K + (size_t) K * K + 2 * (size_t) K;
	m->loaded = true;
	if ((st = load_vocab(mf, "words", n_words, false, &m->wordix, &m->own_word_slot, &m->memory, err)) != CAI_OK ||
		(st = load_vocab(mf, "chars", n_chars, true, &m->charix, &m->own_char_slot, &m->memory, err)) != CAI_OK)
		goto fail;

	d.Vw = n_words + 1;
	d.Vc = n_chars + 1;
	d.n_types = m->types.n;
	d.K = K;
	d.C = ner_dims_input(&d);
	/* the parameters are the model file's tensors, used in place (net.view) */
	if ((st = ner_net_declare(&m->net, &d, err)) != CAI_OK)
		goto fail;
	m->memory += sizeof(cai_param) * (size_t) m->net.slab.n_params;
	for (int p = 0; p < P_COUNT; p++)
	{
		char		name[CAI_NAME_MAX];
		int64_t		shape[CAI_PARAM_MAX_DIMS];
		int			nd = param_shape(&d, p, shape);
		const cai_tensor *t;
		const cai_param *pp = &m->net.slab.params[m->net.idx[p]];

		snprintf(name, sizeof(name), "ner.%s", param_names[p]);
		if ((st = cai_model_file_expect(mf, name, CAI_F32, nd, shape, &t, err)) != CAI_OK)
			goto fail;
		if (!mf->trusted && !cai_all_finite(t->data, pp->numel))
		{
			st = cai_error_set(err, CAI_ERR_FORMAT, "model tensor \"%s\" holds NaN or infinity", name);
			goto fail;
		}
		m->net.view[p] = t->data;
	}
	json_object_put(root);
	*out = m;
	return CAI_OK;
fail:
	json_object_put(root);
	cai_ner_free(m);
	return st;
}
