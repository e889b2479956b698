/*
 * test_ner.c: tag chunks and conlleval counting, spans to tags, the
 * BiLSTM-CRF tagger (training on a toy corpus with several types and
 * Chinese characters, determinism, save/load/tag, schemes, malformed tags,
 * corrupt models, entities in raw text, data-parallel training with threads
 * and their cancellation).  What every architecture must do (gradient
 * check, cancellation, memory estimate, ...) is in test_conformance.c.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <json-c/json.h>

#include "cai/chunks.h"
#include "cai/ner.h"
#include "check.h"

/* ---------------------------------------------------------------------- */
/* A toy corpus                                                           */
/* ---------------------------------------------------------------------- */

typedef struct Corpus
{
	size_t		n;
	size_t		ntok;
	size_t		cap;
	int64_t    *off;
	char	  **tok;
	size_t	   *len;
	char	  **tag;
	size_t		scap;
} Corpus;

static void
corpus_tok(Corpus *c, const char *tok, const char *tag)
{
	if (c->ntok == c->cap)
	{
		c->cap = c->cap ? c->cap * 2 : 256;
		c->tok = realloc(c->tok, sizeof(char *) * c->cap);
		c->len = realloc(c->len, sizeof(size_t) * c->cap);
		c->tag = realloc(c->tag, sizeof(char *) * c->cap);
	}
	c->tok[c->ntok] = strdup(tok);
	c->len[c->ntok] = strlen(tok);
	c->tag[c->ntok] = strdup(tag);
	c->ntok++;
}

static void
corpus_end(Corpus *c)
{
	if (c->n + 2 > c->scap)
	{
		c->scap = c->scap ? c->scap * 2 : 64;
		c->off = realloc(c->off, sizeof(int64_t) * c->scap);
	}
	if (c->n == 0)
		c->off[0] = 0;
	c->off[++c->n] = (int64_t) c->ntok;
}

static void
corpus_free(Corpus *c)
{
	for (size_t i = 0; i < c->ntok; i++)
	{
		free(c->tok[i]);
		free(c->tag[i]);
	}
	free(c->tok);
	free(c->len);
	free(c->tag);
	free(c->off);
	memset(c, 0, sizeof(*c));
}

static cai_ner_data
corpus_data(const Corpus *c)
{
	cai_ner_data d = {0};

	d.n = c->n;
	d.offsets = c->off;
	d.tokens = (const char *const *) c->tok;
	d.token_lens = c->len;
	d.tags = (const char *const *) c->tag;
	return d;
}

static uint64_t toy_state;

static unsigned
toy_rand(unsigned n)
{
	toy_state = toy_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned) ((toy_state >> 33) % n);
}

static const char *const first_names[] = {"John", "Maria", "Ahmed", "Olga", "Pierre", "Kenji", "Sofia", "Carlos"};
static const char *const last_names[] = {"Smith", "Garcia", "Khan", "Petrova", "Dubois", "Tanaka", "Rossi", "Silva"};
static const char *const locs[] = {"Paris", "Berlin", "New York", "Tokyo", "Lima", "Cairo", "Rio de Janeiro", "Oslo"};
static const char *const orgs[] = {"Acme Corp", "United Nations", "Red Cross", "Globex", "World Bank", "Initech"};
static const char *const prods[] = {"iPhone", "Walkman", "PlayStation", "Kindle", "Model 3"};
static const char *const zh_per[] = {"张伟", "王芳", "李娜", "刘洋", "陈静"};
static const char *const zh_loc[] = {"北京", "上海", "广州", "深圳"};
static const char *const zh_org[] = {"华为", "腾讯", "阿里巴巴"};

/* Add words of s (space separated) with type ty (NULL = O), IOB2. */
static void
add_words(Corpus *c, const char *s, const char *ty)
{
	char		buf[256];
	char		tag[64];
	int			i = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *w = strtok(buf, " "); w != NULL; w = strtok(NULL, " "), i++)
	{
		if (ty == NULL)
			snprintf(tag, sizeof(tag), "O");
		else
			snprintf(tag, sizeof(tag), "%c-%s", i == 0 ? 'B' : 'I', ty);
		corpus_tok(c, w, tag);
	}
}

/* Add each character (UTF-8 code point) of s as a token. */
static void
add_chars(Corpus *c, const char *s, const char *ty)
{
	char		tag[64];
	int			i = 0;

	while (*s)
	{
		char		ch[8];
		int			k = (*s & 0x80) == 0 ? 1 : (*s & 0xe0) == 0xc0 ? 2 : (*s & 0xf0) == 0xe0 ? 3 : 4;

		memcpy(ch, s, (size_t) k);
		ch[k] = '\0';
		if (ty == NULL)
			snprintf(tag, sizeof(tag), "O");
		else
			snprintf(tag, sizeof(tag), "%c-%s", i == 0 ? 'B' : 'I', ty);
		corpus_tok(c, ch, tag);
		s += k;
		i++;
	}
}

static void
add_person(Corpus *c)
{
	char		buf[64];

	if (toy_rand(3) == 0)
		add_words(c, last_names[toy_rand(8)], "PER");
	else
	{
		snprintf(buf, sizeof(buf), "%s %s", first_names[toy_rand(8)], last_names[toy_rand(8)]);
		add_words(c, buf, "PER");
	}
}

static void zh_sentence(Corpus *c, unsigned kind);

static void
toy_sentence(Corpus *c)
{
	switch (toy_rand(9))
	{
		case 0:
			add_person(c);
			add_words(c, "works for", NULL);
			add_words(c, orgs[toy_rand(6)], "ORG.NAM");
			add_words(c, "in", NULL);
			add_words(c, locs[toy_rand(8)], "LOC");
			add_words(c, ".", NULL);
			break;
		case 1:
			add_person(c);
			add_words(c, "bought a new", NULL);
			add_words(c, prods[toy_rand(5)], "product");
			add_words(c, "last week .", NULL);
			break;
		case 2:
			add_words(c, "the", NULL);
			add_words(c, prods[toy_rand(5)], "product");
			add_words(c, "was sold by", NULL);
			add_words(c, orgs[toy_rand(6)], "ORG.NAM");
			break;
		case 3:
			add_words(c, "Yesterday", NULL);
			add_person(c);
			add_words(c, "flew from", NULL);
			add_words(c, locs[toy_rand(8)], "LOC");
			add_words(c, "to", NULL);
			add_words(c, locs[toy_rand(8)], "LOC");
			add_words(c, ".", NULL);
			break;
		case 4:
			add_words(c, orgs[toy_rand(6)], "ORG.NAM");
			add_words(c, "opened an office in", NULL);
			add_words(c, locs[toy_rand(8)], "LOC");
			break;
		case 5:
			add_words(c, "we met", NULL);
			add_person(c);
			add_words(c, "and", NULL);
			add_person(c);
			add_words(c, "at the station in 2019", NULL);
			break;
		default:
			zh_sentence(c, toy_rand(3));
			return;
	}
	corpus_end(c);
}

/* Chinese sentence kind 0, 1 or 2 of the toy corpus, a character a token. */
static void
zh_sentence(Corpus *c, unsigned kind)
{
	switch (kind)
	{
		case 0:
			add_chars(c, zh_per[toy_rand(5)], "PER");
			add_chars(c, "在", NULL);
			add_chars(c, zh_loc[toy_rand(4)], "LOC");
			add_chars(c, "工作。", NULL);
			break;
		case 1:
			add_chars(c, zh_per[toy_rand(5)], "PER");
			add_chars(c, "加入了", NULL);
			add_chars(c, zh_org[toy_rand(3)], "ORG.NAM");
			add_chars(c, "。", NULL);
			break;
		default:
			add_chars(c, zh_org[toy_rand(3)], "ORG.NAM");
			add_chars(c, "总部位于", NULL);
			add_chars(c, zh_loc[toy_rand(4)], "LOC");
			break;
	}
	corpus_end(c);
}

/* n sentences of Chinese only. */
static void
zh_corpus(Corpus *c, size_t n, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	toy_state = seed;
	for (size_t i = 0; i < n; i++)
		zh_sentence(c, toy_rand(3));
}

static void
toy_corpus(Corpus *c, size_t n, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	toy_state = seed;
	for (size_t i = 0; i < n; i++)
		toy_sentence(c);
}

/* Re-tag the corpus in another scheme (by chunks). */
static void
corpus_retag(Corpus *c, cai_chunk_scheme scheme)
{
	cai_strtab	types;
	char	   *pf = malloc(c->ntok + 1);
	int32_t    *ty = malloc(sizeof(int32_t) * (c->ntok + 1));
	cai_chunk  *ch = malloc(sizeof(cai_chunk) * (c->ntok + 1));

	cai_strtab_init(&types, 8, NULL);
	for (size_t i = 0; i < c->ntok; i++)
	{
		const char *t;
		size_t		tl;

		cai_tag_parse(c->tag[i], &pf[i], &t, &tl);
		ty[i] = -1;
		if (pf[i] != 'O')
			cai_strtab_intern(&types, t, tl, &ty[i], NULL, NULL);
	}
	for (size_t s = 0; s < c->n; s++)
	{
		int64_t		a = c->off[s];
		size_t		n = (size_t) (c->off[s + 1] - a);
		size_t		k = cai_chunks_extract(pf + a, ty + a, n, ch);

		cai_chunks_to_tags(ch, k, n, scheme, pf + a, ty + a);
	}
	for (size_t i = 0; i < c->ntok; i++)
	{
		char		buf[160];

		if (pf[i] == 'O')
			snprintf(buf, sizeof(buf), "O");
		else
			snprintf(buf, sizeof(buf), "%c-%s", pf[i], cai_strtab_str(&types, ty[i]));
		free(c->tag[i]);
		c->tag[i] = strdup(buf);
	}
	cai_strtab_free(&types);
	free(pf);
	free(ty);
	free(ch);
}

/* ---------------------------------------------------------------------- */
/* conlleval                                                              */
/* ---------------------------------------------------------------------- */

static double
jget(const char *js, const char *k1, const char *k2, const char *k3)
{
	json_object *o = json_tokener_parse(js);
	json_object *v = o;
	double		r = -1;

	if (v != NULL && json_object_object_get_ex(v, k1, &v) &&
		(k2 == NULL || json_object_object_get_ex(v, k2, &v)) &&
		(k3 == NULL || json_object_object_get_ex(v, k3, &v)))
		r = json_object_get_double(v);
	json_object_put(o);
	return r;
}

/* Evaluate one or more sentences given as space-separated tags; '|' separates sentences. */
static char *
eval_str(const char *gold, const char *pred)
{
	char	   *g = strdup(gold);
	char	   *p = strdup(pred);
	const char *gt[64],
			   *pt[64];
	int64_t		off[16];
	size_t		n = 0,
				ng = 0,
				np = 0;
	char	   *js = NULL;
	char	   *sg,
			   *sp;
	cai_error	err;

	off[0] = 0;
	for (char *w = strtok_r(g, " ", &sg); w != NULL; w = strtok_r(NULL, " ", &sg))
	{
		if (strcmp(w, "|") == 0)
			off[++n] = (int64_t) ng;
		else
			gt[ng++] = w;
	}
	off[++n] = (int64_t) ng;
	for (char *w = strtok_r(p, " ", &sp); w != NULL; w = strtok_r(NULL, " ", &sp))
		if (strcmp(w, "|") != 0)
			pt[np++] = w;
	if (np == ng && cai_conll_eval(off, n, gt, pt, &js, &err) != CAI_OK)
		fprintf(stderr, "eval: %s\n", err.msg);
	free(g);
	free(p);
	return js;
}

#define CHECK_EVAL(gold, pred, ng, np, nc) \
	do { \
		char *js_ = eval_str((gold), (pred)); \
		CHECK(js_ != NULL, "eval failed"); \
		if (js_ != NULL) { \
			CHECK(jget(js_, "gold_entities", NULL, NULL) == (ng) && \
				  jget(js_, "predicted_entities", NULL, NULL) == (np) && \
				  jget(js_, "correct_entities", NULL, NULL) == (nc), \
				  "%s vs %s: %s", (gold), (pred), js_); \
			cai_free(js_); \
		} \
	} while (0)

static void
test_conlleval(void)
{
	char	   *js;
	cai_error	err;

	/* type mismatch */
	CHECK_EVAL("B-PER I-PER O B-LOC", "B-PER I-PER O B-ORG", 2, 2, 1);
	/* a stray I- after O starts a chunk (both sides) */
	CHECK_EVAL("O I-PER I-PER O", "O B-PER I-PER O", 1, 1, 1);
	CHECK_EVAL("O B-PER I-PER O", "O O I-PER O", 1, 1, 0);
	/* I- after another type starts a chunk */
	CHECK_EVAL("B-PER I-LOC", "B-PER B-LOC", 2, 2, 2);
	/* adjacent B-PER B-PER are two chunks */
	CHECK_EVAL("B-PER B-PER", "B-PER I-PER", 2, 1, 0);
	CHECK_EVAL("B-PER B-PER", "B-PER B-PER", 2, 2, 2);
	/* entities at the sentence end, and a sentence boundary closes a chunk */
	CHECK_EVAL("O B-LOC I-LOC | I-LOC O", "O B-LOC I-LOC | B-LOC O", 2, 2, 2);
	/* partial span wrong */
	CHECK_EVAL("B-ORG I-ORG I-ORG", "B-ORG I-ORG O", 1, 1, 0);
	CHECK_EVAL("B-ORG I-ORG O", "B-ORG I-ORG I-ORG", 1, 1, 0);
	/* schemes: IOB1 gold, IOB2 and BIOES predictions */
	CHECK_EVAL("I-PER I-PER B-PER O", "B-PER I-PER B-PER O", 2, 2, 2);
	CHECK_EVAL("S-PER B-LOC E-LOC O", "B-PER B-LOC I-LOC O", 2, 2, 2);
	CHECK_EVAL("B-LOC I-LOC E-LOC S-LOC", "B-LOC I-LOC I-LOC B-LOC", 2, 2, 2);
	/* nothing at all */
	CHECK_EVAL("O O", "O O", 0, 0, 0);

	/* full numbers of a mixed case */
	js = eval_str("B-PER I-PER O B-LOC O | B-ORG O B-PER", "B-PER I-PER O B-ORG O | B-ORG O O");
	CHECK(js != NULL, "eval");
	if (js != NULL)
	{
		CHECK(fabs(jget(js, "precision", NULL, NULL) - 2.0 / 3.0) < 1e-12, "%s", js);
		CHECK(fabs(jget(js, "recall", NULL, NULL) - 0.5) < 1e-12, "%s", js);
		CHECK(fabs(jget(js, "f1", NULL, NULL) - 4.0 / 7.0) < 1e-12, "%s", js);
		CHECK(fabs(jget(js, "accuracy", NULL, NULL) - 6.0 / 8.0) < 1e-12, "%s", js);
		CHECK(jget(js, "tokens", NULL, NULL) == 8, "%s", js);
		CHECK(jget(js, "types", "PER", "support") == 2 && jget(js, "types", "PER", "recall") == 0.5 &&
			  jget(js, "types", "PER", "precision") == 1.0, "%s", js);
		CHECK(jget(js, "types", "LOC", "f1") == 0.0 && jget(js, "types", "ORG", "support") == 1 &&
			  fabs(jget(js, "types", "ORG", "precision") - 0.5) < 1e-12, "%s", js);
		cai_free(js);
	}
	/* malformed tags are rejected, naming tag and sentence */
	{
		const char *g[] = {"O", "B-PER", "X-PER"};
		const char *p[] = {"O", "B-PER", "O"};
		int64_t		off[] = {0, 1, 3};

		js = NULL;
		CHECK(cai_conll_eval(off, 2, g, p, &js, &err) == CAI_ERR_INVALID && js == NULL, "X-PER");
		CHECK(strstr(err.msg, "X-PER") != NULL && strstr(err.msg, "sentence 1") != NULL, "%s", err.msg);
		g[2] = "B-";
		CHECK(cai_conll_eval(off, 2, g, p, &js, &err) == CAI_ERR_INVALID, "B-");
	}
}

static void
test_chunks(void)
{
	char		pfx;
	const char *ty;
	size_t		tl;
	cai_strtab	t;
	int32_t		id;
	bool		added;

	CHECK(cai_tag_parse("O", &pfx, &ty, &tl) && pfx == 'O' && ty == NULL, "O");
	CHECK(cai_tag_parse("I-ORG.NAM", &pfx, &ty, &tl) && pfx == 'I' && tl == 7 && strcmp(ty, "ORG.NAM") == 0, "I-ORG.NAM");
	CHECK(cai_tag_parse("S-product", &pfx, &ty, &tl) && pfx == 'S', "S-product");
	CHECK(!cai_tag_parse("X-PER", &pfx, &ty, &tl), "X-PER");
	CHECK(!cai_tag_parse("B-", &pfx, &ty, &tl), "B-");
	CHECK(!cai_tag_parse("BPER", &pfx, &ty, &tl), "BPER");
	CHECK(!cai_tag_parse("", &pfx, &ty, &tl), "empty");
	CHECK(!cai_tag_parse("OO", &pfx, &ty, &tl), "OO");
	CHECK(!cai_tag_parse(NULL, &pfx, &ty, &tl), "NULL");

	/* scheme detection */
	{
		char		p1[] = {'I', 'I', 'O', 'I', 'B'};
		int32_t		t1[] = {0, 0, -1, 1, 1};
		char		p2[] = {'B', 'I', 'O', 'B', 'B'};
		char		p3[] = {'B', 'E', 'O', 'S', 'O'};
		int64_t		off[] = {0, 5};

		CHECK(cai_chunk_scheme_detect(p1, t1, off, 1) == CAI_SCHEME_IOB1, "iob1");
		CHECK(cai_chunk_scheme_detect(p2, t1, off, 1) == CAI_SCHEME_IOB2, "iob2");
		CHECK(cai_chunk_scheme_detect(p3, t1, off, 1) == CAI_SCHEME_BIOES, "bioes");
	}
	/* conversion */
	{
		cai_chunk	ch[] = {{0, 2, 0}, {2, 3, 0}, {4, 5, 1}};
		char		pf[6];
		int32_t		ty2[6];

		cai_chunks_to_tags(ch, 3, 6, CAI_SCHEME_BIOES, pf, ty2);
		CHECK(memcmp(pf, "BESOSO", 6) == 0, "bioes %.6s", pf);
		cai_chunks_to_tags(ch, 3, 6, CAI_SCHEME_IOB2, pf, ty2);
		CHECK(memcmp(pf, "BIBOBO", 6) == 0, "iob2 %.6s", pf);
		cai_chunks_to_tags(ch, 3, 6, CAI_SCHEME_IOB1, pf, ty2);
		CHECK(memcmp(pf, "IIBOIO", 6) == 0 && ty2[4] == 1 && ty2[3] == -1, "iob1 %.6s", pf);
		{
			cai_chunk	back[6];
			size_t		k = cai_chunks_extract(pf, ty2, 6, back);

			CHECK(k == 3 && back[0].end == 2 && back[1].start == 2 && back[2].type == 1, "extract iob1");
		}
	}
	/* string table */
	CHECK(cai_strtab_init(&t, 2, NULL) == CAI_OK, "strtab init");
	for (int i = 0; i < 1000; i++)
	{
		char		buf[16];
		int			n = snprintf(buf, sizeof(buf), "w%d", i);

		cai_strtab_intern(&t, buf, (size_t) n, &id, &added, NULL);
	}
	CHECK(t.n == 1000 && cai_strtab_find(&t, "w999", 4) == 999 && cai_strtab_find(&t, "w1000", 5) == -1, "strtab");
	cai_strtab_intern(&t, "w5", 2, &id, &added, NULL);
	CHECK(id == 5 && !added && strcmp(cai_strtab_str(&t, 5), "w5") == 0 && cai_strtab_len(&t, 5) == 2, "strtab dup");
	cai_strtab_free(&t);

	/*
	 * Every length from 0 to 40 bytes, and strings differing in one byte at
	 * each position (the hash reads 4, 8 and 16 bytes at a time with
	 * overlapping loads): each gets its own id and is found again.
	 */
	{
		char		s[41];
		int			want = 0;
		bool		ok = true;

		CHECK(cai_strtab_init(&t, 4, NULL) == CAI_OK, "strtab init");
		for (int len = 0; len <= 40; len++)
			for (int pos = -1; pos < len; pos++)
			{
				memset(s, 'a', sizeof(s));
				if (pos >= 0)
					s[pos] = 'b';
				ok &= cai_strtab_intern(&t, s, (size_t) len, &id, &added, NULL) == CAI_OK && added && id == want++;
			}
		CHECK(ok && t.n == want, "distinct strings of lengths 0 to 40: %d of %d", t.n, want);
		want = 0;
		for (int len = 0; len <= 40; len++)
			for (int pos = -1; pos < len; pos++)
			{
				memset(s, 'a', sizeof(s));
				if (pos >= 0)
					s[pos] = 'b';
				ok &= cai_strtab_find(&t, s, (size_t) len) == want++ &&
					cai_strtab_len(&t, want - 1) == (size_t) len &&
					memcmp(cai_strtab_str(&t, want - 1), s, (size_t) len) == 0;
			}
		CHECK(ok, "each string found again with its id");
		memset(s, 'a', sizeof(s));
		s[3] = 'c';
		CHECK(cai_strtab_find(&t, s, 9) == -1 && cai_strtab_find(&t, s, 40) == -1, "an absent string is not found");
		cai_strtab_free(&t);
	}
}

static void
test_spans(void)
{
	const char *text = "Angela Merkel visited Paris. 张伟在北京";
	cai_span	sp[] = {{22, 27, "LOC"}, {0, 13, "PER"}, {29, 31, "PER"}, {32, 34, "LOC"}};
	cai_token  *toks;
	char	  **tags;
	size_t		n;
	cai_error	err;
	const char *want[] = {"B-PER", "I-PER", "O", "B-LOC", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"};

	CHECK(cai_ner_spans_to_tags(text, strlen(text), sp, 4, &toks, &tags, &n, &err) == CAI_OK, "%s", err.msg);
	CHECK(n == 10, "n %zu", n);
	for (size_t i = 0; i < n && i < 10; i++)
		CHECK(strcmp(tags[i], want[i]) == 0, "token %zu: %s", i, tags[i]);
	CHECK(n == 10 && tags[10] == NULL, "NULL end");
	cai_free(toks);
	cai_free(tags);

	sp[1].cend = 5;				/* "Angel" */
	CHECK(cai_ner_spans_to_tags(text, strlen(text), sp, 4, &toks, &tags, &n, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "span 1") != NULL && toks == NULL && tags == NULL, "%s", err.msg);
	sp[1].cend = 13;
	sp[0].cstart = 7;			/* overlaps */
	CHECK(cai_ner_spans_to_tags(text, strlen(text), sp, 4, &toks, &tags, &n, &err) == CAI_ERR_INVALID, "overlap");
	sp[0].cstart = 22;
	sp[0].label = "";
	CHECK(cai_ner_spans_to_tags(text, strlen(text), sp, 4, &toks, &tags, &n, &err) == CAI_ERR_INVALID, "label");
	CHECK(cai_ner_spans_to_tags("", 0, NULL, 0, &toks, &tags, &n, &err) == CAI_OK && n == 0, "empty");
	cai_free(toks);
	cai_free(tags);
}

/* ---------------------------------------------------------------------- */
/* The model                                                              */
/* ---------------------------------------------------------------------- */

static cai_options *
opts(const char *json)
{
	cai_options *o = NULL;
	cai_error	err;

	if (cai_options_parse(cai_ner_option_defs, cai_ner_n_option_defs, json, &o, &err) != CAI_OK)
		fprintf(stderr, "options: %s\n", err.msg);
	return o;
}

typedef struct ProgressLog
{
	int			calls;
	int			epochs_done;
	int			cancel_after;	/* cancel at this call (0 = never) */
	double		last_fraction;
	bool		monotone;
} ProgressLog;

static bool
progress_cb(void *ctx, const cai_progress *p)
{
	ProgressLog *l = ctx;

	l->calls++;
	if (p->epoch_done)
		l->epochs_done++;
	if (p->fraction + 1e-12 < l->last_fraction || p->fraction > 1.0)
		l->monotone = false;
	l->last_fraction = p->fraction;
	return l->cancel_after == 0 || l->calls < l->cancel_after;
}

#define NER_BIGRAM_EDGE_TEST "\x02 "	/* a sentence's edge in a bigram key (ner_internal.h) */
#define TINY "\"dimensions\": 16, \"char_dimensions\": 8, \"char_filters\": 16, \"hidden\": 16"

static double
f1_of(const cai_ner *m, const Corpus *test, cai_error *err)
{
	cai_ner_data d = corpus_data(test);
	const char **pred = calloc(test->ntok, sizeof(char *));
	char	   *js = NULL;
	double		f1 = -1;

	if (cai_ner_tag_batch(m, &d, pred, NULL, err) == CAI_OK &&
		cai_conll_eval(test->off, test->n, (const char *const *) test->tag, pred, &js, err) == CAI_OK)
		f1 = jget(js, "f1", NULL, NULL);
	cai_free(js);
	free(pred);
	return f1;
}

/*
 * Zero-copy loading: a model viewed in a read-only mapping (trusted or
 * verified), and one without the serialized slot tables (an older model),
 * tag bit for bit like the copying path; the view keeps little private
 * memory; damaged slot tables are rejected unless trusted, and harmless when
 * trusted.
 */
static void
tag_all(const cai_ner *m, const Corpus *c, const char **tags, float *scores)
{
	cai_ner_data d = corpus_data(c);

	if (cai_ner_tag_batch(m, &d, tags, scores, NULL) != CAI_OK)
		tags[0] = NULL;
}

static void
check_ner_zero_copy(const uint8_t *model, size_t len, const Corpus *c)
{
	size_t		ntok = (size_t) corpus_data(c).offsets[corpus_data(c).n];
	const char **want_t = calloc(ntok + 1, sizeof(char *));
	const char **got_t = calloc(ntok + 1, sizeof(char *));
	float	   *want_s = calloc(ntok + 1, sizeof(float));
	float	   *got_s = calloc(ntok + 1, sizeof(float));
	uint8_t    *ro = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cai_model_file *mf = NULL;
	cai_ner    *m = NULL;
	cai_error	err;

	CHECK(ro != MAP_FAILED, "mapping");
	if (ro == MAP_FAILED)
		return;
	memcpy(ro, model, len);
	mprotect(ro, len, PROT_READ);
	CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK && cai_ner_load(mf, &m, &err) == CAI_OK, "%s", err.msg);
	if (m != NULL)
	{
		tag_all(m, c, want_t, want_s);
		for (size_t i = 0; i < ntok; i++)	/* the strings belong to the model */
			want_t[i] = want_t[i] != NULL ? strdup(want_t[i]) : NULL;
	}
	cai_ner_free(m);
	cai_model_file_free(mf);
	m = NULL;
	mf = NULL;
	for (int variant = 0; variant < 4; variant++)
	{
		bool		same = true;

		if (variant < 2)
			CHECK(cai_format_read_view(ro, len, variant == 1, &mf, &err) == CAI_OK, "view: %s", err.msg);
		else if (cai_format_read(model, len, &mf, &err) == CAI_OK)
		{
			/* without the slot tables, trusted or not */
			((cai_tensor *) cai_model_file_tensor(mf, "ner.words.slots"))->name[0] = 'x';
			((cai_tensor *) cai_model_file_tensor(mf, "ner.chars.slots"))->name[0] = 'x';
			mf->trusted = variant == 3;
		}
		if (mf == NULL)
			continue;
		CHECK(cai_ner_load(mf, &m, &err) == CAI_OK, "variant %d load: %s", variant, err.msg);
		if (m != NULL)
		{
			if (variant < 2)
				CHECK(cai_ner_memory(m) < 16384, "view keeps %zu private bytes of %zu", cai_ner_memory(m), len);
			tag_all(m, c, got_t, got_s);
			for (size_t i = 0; i < ntok; i++)
				same &= got_t[i] != NULL && want_t[i] != NULL && strcmp(got_t[i], want_t[i]) == 0;
			{
				size_t		nd = 0;

				for (size_t i = 0; i < ntok; i++)
					nd += memcmp(&got_s[i], &want_s[i], sizeof(float)) != 0;
				CHECK(same && nd == 0, "variant %d tags and scores bit for bit (%zu scores differ, tags same %d)",
					  variant, nd, same);
			}
		}
		cai_ner_free(m);
		cai_model_file_free(mf);
		m = NULL;
		mf = NULL;
	}
	/* damaged slot tables */
	for (int k = 0; k < 2; k++)
	{
		if (cai_format_read(model, len, &mf, &err) != CAI_OK)
			break;
		{
			const cai_tensor *t = cai_model_file_tensor(mf, k == 0 ? "ner.words.slots" : "ner.chars.slots");
			int32_t    *s = t->data;

			for (int64_t i = 0; i < t->shape[0]; i++)
				s[i] = k == 0 ? 1 : (int32_t) (i * 7919);	/* one id everywhere / out of range */
		}
		CHECK(cai_ner_load(mf, &m, &err) == CAI_ERR_FORMAT && strstr(err.msg, "vocabulary") != NULL,
			  "damaged slots %d rejected: %s", k, err.msg);
		cai_ner_free(m);
		m = NULL;
		mf->trusted = true;
		CHECK(cai_ner_load(mf, &m, &err) == CAI_OK, "trusted damaged load: %s", err.msg);
		if (m != NULL)
			tag_all(m, c, got_t, got_s);
		cai_ner_free(m);
		m = NULL;
		cai_model_file_free(mf);
		mf = NULL;
	}
	munmap(ro, len);
	for (size_t i = 0; i < ntok; i++)
		free((char *) want_t[i]);
	free(want_t);
	free(got_t);
	free(want_s);
	free(got_s);
}

static void
test_train(void)
{
	Corpus		tr,
				te;
	cai_options *o = opts("{" TINY ", \"epochs\": 12, \"learning_rate\": 0.01, \"patience\": 4}");
	cai_ner_data d = {0};
	uint8_t    *model = NULL,
			   *model2 = NULL;
	size_t		len = 0,
				len2 = 0;
	char	   *metrics = NULL,
			   *metrics2 = NULL;
	cai_model_file *mf = NULL;
	cai_ner    *m = NULL;
	ProgressLog log = {0, 0, 0, 0.0, true};
	cai_error	err;
	double		f1;

	toy_corpus(&tr, 600, 1);
	toy_corpus(&te, 200, 2);
	d = corpus_data(&tr);
	CHECK(cai_ner_train(o, &d, NULL, NULL, "{\"source\": \"toy\"}", progress_cb, &log, &model, &len,
						&metrics, &err) == CAI_OK, "%s", err.msg);
	if (model == NULL)
		return;
	printf("toy metrics: %s\n", metrics);
	CHECK(jget(metrics, "score", NULL, NULL) > 0.9, "validation score %s", metrics);
	CHECK(jget(metrics, "validation_sentences", NULL, NULL) == 60 &&
		  jget(metrics, "train_sentences", NULL, NULL) == 540, "split %s", metrics);
	CHECK(jget(metrics, "seconds", NULL, NULL) >= 0 && jget(metrics, "best_epoch", NULL, NULL) >= 1 &&
		  jget(metrics, "types", "ORG.NAM", "f1") >= 0, "%s", metrics);
	CHECK(log.epochs_done == (int) jget(metrics, "epochs_run", NULL, NULL) && log.monotone &&
		  log.last_fraction <= 1.0, "progress: %d epochs done, monotone %d", log.epochs_done, log.monotone);

	/* determinism */
	CHECK(cai_ner_train(o, &d, NULL, NULL, "{\"source\": \"toy\"}", NULL, NULL, &model2, &len2,
						&metrics2, &err) == CAI_OK, "%s", err.msg);
	CHECK(len == len2 && model2 != NULL && memcmp(model, model2, len) == 0, "same seed, same bytes");
	cai_free(model2);
	cai_free(metrics2);
	model2 = NULL;
	metrics2 = NULL;

	/* the tags as ids into their distinct names (how the SQL layer passes millions of tokens): same bytes */
	{
		cai_ner_data di = d;
		int32_t    *tid32 = malloc(sizeof(int32_t) * (tr.ntok + 1));
		uint16_t   *ids = malloc(sizeof(uint16_t) * (tr.ntok + 1));
		const char **names = malloc(sizeof(char *) * (tr.ntok + 1));
		size_t		nn = check_distinct((const char *const *) tr.tag, tr.ntok, tid32, names);

		for (size_t i = 0; i < tr.ntok; i++)
			ids[i] = (uint16_t) tid32[i];
		di.tags = NULL;
		di.tag_ids = ids;
		di.tag_names = names;
		di.n_tag_names = nn;
		CHECK(cai_ner_train(o, &di, NULL, NULL, "{\"source\": \"toy\"}", NULL, NULL, &model2, &len2,
							&metrics2, &err) == CAI_OK, "%s", err.msg);
		CHECK(len == len2 && model2 != NULL && memcmp(model, model2, len) == 0, "tag ids: the same bytes as tag strings");
		cai_free(model2);
		cai_free(metrics2);
		model2 = NULL;
		metrics2 = NULL;
		/* and the tokens as ids into their distinct strings too */
		{
			int32_t    *tid = malloc(sizeof(int32_t) * (tr.ntok + 1));
			const char **str = malloc(sizeof(char *) * (tr.ntok + 1));
			size_t	   *sl = malloc(sizeof(size_t) * (tr.ntok + 1));
			size_t		ns = check_distinct((const char *const *) tr.tok, tr.ntok, tid, str);
			cai_ner_data dt = di;

			for (size_t k = 0; k < ns; k++)
				sl[k] = strlen(str[k]);
			dt.tokens = NULL;
			dt.token_lens = NULL;
			dt.token_ids = tid;
			dt.strings = str;
			dt.string_lens = sl;
			dt.n_strings = ns;
			CHECK(ns < tr.ntok, "repeated tokens share a string (%zu of %zu)", ns, tr.ntok);
			CHECK(cai_ner_train(o, &dt, NULL, NULL, "{\"source\": \"toy\"}", NULL, NULL, &model2, &len2,
								&metrics2, &err) == CAI_OK, "%s", err.msg);
			CHECK(len == len2 && model2 != NULL && memcmp(model, model2, len) == 0,
				  "token and tag ids: the same bytes as strings");
			CHECK(cai_ner_train_memory(o, &dt) == cai_ner_train_memory(o, &d), "the same estimate");
			cai_free(model2);
			cai_free(metrics2);
			model2 = NULL;
			metrics2 = NULL;
			tid[7] = (int32_t) ns;
			CHECK(cai_ner_train(o, &dt, NULL, NULL, NULL, NULL, NULL, &model2, &len2, &metrics2, &err) ==
				  CAI_ERR_INVALID && model2 == NULL && strstr(err.msg, "token id") != NULL, "bad token id: %s", err.msg);
			free(tid);
			free(str);
			free(sl);
		}
		/* an id past the names is refused, not read */
		ids[5] = (uint16_t) nn;
		CHECK(cai_ner_train(o, &di, NULL, NULL, NULL, NULL, NULL, &model2, &len2, &metrics2, &err) == CAI_ERR_INVALID &&
			  model2 == NULL && strstr(err.msg, "tag id") != NULL, "bad tag id: %s", err.msg);
		di.tag_names = NULL;
		CHECK(cai_ner_train(o, &di, NULL, NULL, NULL, NULL, NULL, &model2, &len2, &metrics2, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "no tags") != NULL, "ids without names: %s", err.msg);
		free(ids);
		free(tid32);
		free(names);
	}

	check_ner_zero_copy(model, len, &te);

	/* load, tag */
	CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK, "%s", err.msg);
	CHECK(cai_ner_load(mf, &m, &err) == CAI_OK, "%s", err.msg);
	if (m != NULL)
	{
		const char *sent[] = {"Yesterday", "Maria", "Khan", "flew", "from", "Rio", "de", "Janeiro", "to", "Oslo", "."};
		size_t		lens[11];
		const char *tags[11];
		float		sc[11];
		const char *want[] = {"O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-LOC", "O"};
		bool		ok = true;

		CHECK(cai_ner_n_types(m) == 4 && strcmp(cai_ner_type(m, 0), "LOC") == 0 &&
			  strcmp(cai_ner_type(m, 1), "ORG.NAM") == 0 && strcmp(cai_ner_type(m, 3), "product") == 0,
			  "types");
		CHECK(cai_ner_memory(m) > 0, "memory");
		for (int i = 0; i < 11; i++)
			lens[i] = strlen(sent[i]);
		CHECK(cai_ner_tag(m, sent, lens, 11, tags, sc, &err) == CAI_OK, "%s", err.msg);
		for (int i = 0; i < 11; i++)
		{
			ok = ok && strcmp(tags[i], want[i]) == 0 && sc[i] > 0 && sc[i] <= 1.0f;
			if (strcmp(tags[i], want[i]) != 0)
				fprintf(stderr, "  token %s: %s want %s\n", sent[i], tags[i], want[i]);
		}
		CHECK(ok, "tagged sentence");
		CHECK(cai_ner_tag(m, sent, lens, 0, tags, sc, &err) == CAI_OK, "empty sentence");
		/*
		 * long words in short sentences: their characters outgrew the
		 * encoder's character buffer by more than one doubling (a heap
		 * overflow that ASan reported on WikiANN's test set)
		 */
		{
			const char *lw[] = {"Pneumonoultramicroscopicsilicovolcanoconiosis",
			"Supercalifragilisticexpialidocious", "Honorificabilitudinitatibus", "x"};
			size_t		ll[4];

			for (int i = 0; i < 4; i++)
				ll[i] = strlen(lw[i]);
			for (int n = 1; n <= 4; n++)
				CHECK(cai_ner_tag(m, lw, ll, n, tags, sc, &err) == CAI_OK && tags[0] != NULL,
					  "a sentence of %d long words: %s", n, err.msg);
		}

		f1 = f1_of(m, &te, &err);
		printf("toy held-out F1 %.4f\n", f1);
		CHECK(f1 > 0.9, "held-out F1 %.4f", f1);

		/* batched == one at a time */
		{
			cai_ner_data td = corpus_data(&te);
			const char **bt = calloc(te.ntok, sizeof(char *));
			float	   *bs = calloc(te.ntok, sizeof(float));
			int			diff = 0;

			CHECK(cai_ner_tag_batch(m, &td, bt, bs, &err) == CAI_OK, "%s", err.msg);
			for (size_t s = 0; s < te.n; s++)
			{
				const char *one[64];
				float		os[64];
				size_t		n = (size_t) (te.off[s + 1] - te.off[s]);

				cai_ner_tag(m, (const char *const *) te.tok + te.off[s], te.len + te.off[s], n, one, os, &err);
				for (size_t i = 0; i < n; i++)
					if (strcmp(one[i], bt[te.off[s] + i]) != 0 || fabsf(os[i] - bs[te.off[s] + i]) > 1e-4f)
						diff++;
			}
			CHECK(diff == 0, "batched and single tagging differ at %d tokens", diff);
			free(bt);
			free(bs);
		}

		/* entities in raw text, offsets exact */
		{
			const char *text = "Yesterday John Smith flew from Paris to Tokyo.\n王芳在上海工作。";
			cai_entity *ents = NULL;
			size_t		ne = 0;
			const char *want_s[] = {"John Smith", "Paris", "Tokyo", "王芳", "上海"};
			const char *want_t[] = {"PER", "LOC", "LOC", "PER", "LOC"};
			int64_t		want_c[] = {10, 31, 40, 47, 50};

			CHECK(cai_ner_entities(m, text, strlen(text), 0, &ents, &ne, &err) == CAI_OK, "%s", err.msg);
			CHECK(ne == 5, "%zu entities", ne);
			for (size_t i = 0; i < ne && i < 5; i++)
			{
				CHECK((size_t) (ents[i].end - ents[i].start) == strlen(want_s[i]) &&
					  memcmp(text + ents[i].start, want_s[i], strlen(want_s[i])) == 0 &&
					  strcmp(cai_ner_type(m, ents[i].type), want_t[i]) == 0 &&
					  ents[i].cstart == want_c[i] &&
					  ents[i].cend - ents[i].cstart == (int64_t) cai_utf8_length(want_s[i], strlen(want_s[i])) &&
					  ents[i].score > 0 && ents[i].score <= 1,
					  "entity %zu: %.*s [%lld, %lld) type %d", i, (int) (ents[i].end - ents[i].start),
					  text + ents[i].start, (long long) ents[i].cstart, (long long) ents[i].cend, ents[i].type);
			}
			cai_free(ents);
			CHECK(cai_ner_entities(m, "", 0, 0, &ents, &ne, &err) == CAI_OK && ne == 0 && ents == NULL, "empty");
			CHECK(cai_ner_entities(m, "  \n ", 4, 0, &ents, &ne, &err) == CAI_OK && ne == 0, "blank");

			/* a long text (~50,000 tokens) in bounded chunks */
			{
				const char *piece = "we met Olga Rossi and Kenji Tanaka at the station in 2019 ";
				size_t		pl = strlen(piece);
				size_t		reps = 4500;
				char	   *big = malloc(pl * reps + 1);

				for (size_t r = 0; r < reps; r++)
					memcpy(big + r * pl, piece, pl);
				big[pl * reps] = '\0';
				CHECK(cai_ner_entities(m, big, pl * reps, 0, &ents, &ne, &err) == CAI_OK, "%s", err.msg);
				CHECK(ne >= reps * 2 * 9 / 10, "long text: %zu entities", ne);
				cai_free(ents);
				CHECK(cai_ner_entities(m, big, pl * reps, 1000, &ents, &ne, &err) == CAI_ERR_LIMIT, "max_tokens");
				cai_free(ents);
				free(big);
			}
		}
	}

	/* corrupt models are refused */
	if (mf != NULL)
	{
		for (int i = 0; i < mf->n_tensors; i++)
		{
			cai_tensor *t = &mf->tensors[i];
			cai_ner    *bad = NULL;
			cai_status	st;

			if (strcmp(t->name, "ner.words.offsets") == 0)
			{
				int32_t    *o2 = t->data;
				int32_t		keep = o2[3];

				o2[3] = o2[2];
				st = cai_ner_load(mf, &bad, &err);
				CHECK(st == CAI_ERR_FORMAT && bad == NULL, "bad offsets: %s", err.msg);
				o2[3] = o2[1] - 1 + o2[2] - o2[2];	/* decreasing */
				st = cai_ner_load(mf, &bad, &err);
				CHECK(st == CAI_ERR_FORMAT, "decreasing offsets: %s", err.msg);
				o2[3] = keep;
			}
			else if (strcmp(t->name, "ner.out.weight") == 0)
			{
				float	   *w = t->data;
				float		keep = w[0];

				w[0] = NAN;
				st = cai_ner_load(mf, &bad, &err);
				CHECK(st == CAI_ERR_FORMAT, "NaN: %s", err.msg);
				w[0] = keep;
				t->shape[1]++;
				st = cai_ner_load(mf, &bad, &err);
				CHECK(st == CAI_ERR_FORMAT && strstr(err.msg, "out.weight") != NULL, "shape: %s", err.msg);
				t->shape[1]--;
			}
			else if (strcmp(t->name, "ner.chars.bytes") == 0)
			{
				uint8_t    *b = t->data;
				uint8_t		keep = b[0];

				b[0] = 0xff;
				st = cai_ner_load(mf, &bad, &err);
				CHECK(st == CAI_ERR_FORMAT, "bad char: %s", err.msg);
				b[0] = keep;
			}
		}
		{
			cai_ner    *again = NULL;

			CHECK(cai_ner_load(mf, &again, &err) == CAI_OK, "restored model loads: %s", err.msg);
			cai_ner_free(again);
		}
		/* metadata lies */
		{
			char	   *keep = mf->meta_json;
			char	   *bad_meta = strdup(keep);
			char	   *p = strstr(bad_meta, "\"hidden\":16,\"words\"");
			cai_ner    *bad = NULL;

			if (p != NULL)
			{
				memcpy(p, "\"hidden\":17", 11);
				mf->meta_json = bad_meta;
				CHECK(cai_ner_load(mf, &bad, &err) == CAI_ERR_FORMAT, "hidden mismatch: %s", err.msg);
				mf->meta_json = keep;
			}
			else
				CHECK(false, "no hidden in metadata");
			free(bad_meta);
		}
	}
	cai_ner_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(model2);
	cai_free(metrics);
	cai_free(metrics2);
	cai_options_free(o);
	corpus_free(&tr);
	corpus_free(&te);
}

/* ---------------------------------------------------------------------- */
/* Character bigrams (option char_bigrams)                                */
/* ---------------------------------------------------------------------- */

/* Train on c with options json; the model bytes (cai_free) or NULL. */
static uint8_t *
train_corpus(const Corpus *c, const char *json, size_t *len)
{
	cai_options *o = opts(json);
	cai_ner_data d = corpus_data(c);
	uint8_t    *model = NULL;
	char	   *metrics = NULL;
	cai_error	err;

	*len = 0;
	CHECK(o != NULL && cai_ner_train(o, &d, NULL, NULL, NULL, NULL, NULL, &model, len, &metrics, &err) == CAI_OK,
		  "training %s: %s", json, err.msg);
	cai_free(metrics);
	cai_options_free(o);
	return model;
}

/* Whether the model's metadata says "char_bigrams": want (and the word vocabulary holds word when not NULL). */
static bool
model_bigrams(const uint8_t *model, size_t len, bool want, const char *word)
{
	cai_model_file *mf = NULL;
	bool		ok = false;
	cai_error	err;

	if (model != NULL && cai_format_read(model, len, &mf, &err) == CAI_OK)
	{
		const cai_tensor *t = cai_model_file_tensor(mf, "ner.words.bytes");

		ok = strstr(mf->meta_json, want ? "\"char_bigrams\":true" : "\"char_bigrams\":false") != NULL;
		if (word != NULL)
			ok = ok && t != NULL && memmem(t->data, t->nbytes, word, strlen(word) + 1) != NULL;
	}
	cai_model_file_free(mf);
	return ok;
}

/*
 * Character bigrams: on by themselves for text tagged a CJK character a
 * token and off for English, forced either way by the option; their rows in
 * the word vocabulary (two CJK characters joined, "北京"); the gradient
 * check with their rows; the same bytes again with threads; the loaded
 * model's tags bit for bit in every load variant; metadata that disagrees
 * with the tensors refused.
 */
static void
test_bigrams(void)
{
	Corpus		zh,
				zte,
				en;
	const char *base = "{" TINY ", \"epochs\": 10, \"learning_rate\": 0.01}";
	char		json[256];
	uint8_t    *model,
			   *m_off,
			   *m2;
	size_t		len,
				len_off,
				len2;
	cai_error	err;

	zh_corpus(&zh, 300, 3);
	zh_corpus(&zte, 100, 4);
	toy_corpus(&en, 200, 5);
	for (size_t i = 0; i < en.ntok; i++)	/* English only: the toy corpus without its Chinese sentences */
		if ((unsigned char) en.tok[i][0] >= 0x80)
		{
			free(en.tok[i]);
			en.tok[i] = strdup("x");
			en.len[i] = 1;
		}

	model = train_corpus(&zh, base, &len);
	CHECK(model_bigrams(model, len, true, "北京"), "auto: bigrams for Chinese, \"北京\" a row of the vocabulary");
	CHECK(model_bigrams(model, len, true, NER_BIGRAM_EDGE_TEST "张"), "the bigram of the sentence's start and 张");
	snprintf(json, sizeof(json), "{" TINY ", \"epochs\": 10, \"learning_rate\": 0.01, \"char_bigrams\": \"off\"}");
	m_off = train_corpus(&zh, json, &len_off);
	CHECK(model_bigrams(m_off, len_off, false, NULL) && !model_bigrams(m_off, len_off, false, "北京") &&
		  len_off < len, "off: no bigrams (%zu bytes vs %zu)", len_off, len);
	if (model != NULL)
	{
		cai_model_file *mf = NULL;
		cai_ner    *m = NULL;
		double		f1 = -1;

		CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK && cai_ner_load(mf, &m, &err) == CAI_OK, "%s", err.msg);
		if (m != NULL)
		{
			const char *sent[] = {"鑫", "淼", "在", "北", "京", "工", "作"};
			size_t		lens[7];
			const char *tags[7];
			float		sc[7];

			f1 = f1_of(m, &zte, &err);
			printf("bigrams: held-out F1 %.4f\n", f1);
			for (int i = 0; i < 7; i++)
				lens[i] = strlen(sent[i]);
			CHECK(cai_ner_tag(m, sent, lens, 7, tags, sc, &err) == CAI_OK &&
				  strcmp(tags[3], "B-LOC") == 0 && strcmp(tags[4], "I-LOC") == 0,
				  "unseen characters and bigrams tag: %s", err.msg);
		}
		CHECK(f1 > 0.9, "bigrams: held-out F1 %.4f", f1);
		cai_ner_free(m);
		/* metadata that disagrees with the tensors, or is not a boolean */
		for (int k = 0; k < 2 && mf != NULL; k++)
		{
			const char *from = "\"char_bigrams\":true";
			char	   *keep = mf->meta_json;
			char	   *p = strstr(keep, from);
			char	   *bad_meta = malloc(strlen(keep) + 8);
			cai_ner    *bad = NULL;

			if (p != NULL)
			{
				sprintf(bad_meta, "%.*s\"char_bigrams\":%s%s", (int) (p - keep), keep, k == 0 ? "false" : "1",
						p + strlen(from));
				mf->meta_json = bad_meta;
				CHECK(cai_ner_load(mf, &bad, &err) == CAI_ERR_FORMAT &&
					  strstr(err.msg, k == 0 ? "w_ih" : "char_bigrams") != NULL, "metadata %d: %s", k, err.msg);
				mf->meta_json = keep;
			}
			else
				CHECK(false, "no char_bigrams in the metadata");
			free(bad_meta);
		}
		cai_model_file_free(mf);
		check_ner_zero_copy(model, len, &zte);
	}

	/* threads: the same bytes twice (the shards' bigram rows merged in order) */
	snprintf(json, sizeof(json), "{" TINY ", \"epochs\": 3, \"threads\": 2}");
	cai_free(model);
	model = train_corpus(&zh, json, &len);
	m2 = train_corpus(&zh, json, &len2);
	CHECK(model != NULL && len == len2 && m2 != NULL && memcmp(model, m2, len) == 0 &&
		  model_bigrams(model, len, true, "北京"), "threads 2 with bigrams: the same bytes twice");
	cai_free(m2);

	/* English: off by itself, on when asked */
	cai_free(model);
	model = train_corpus(&en, base, &len);
	CHECK(model_bigrams(model, len, false, NULL), "auto: no bigrams for English");
	snprintf(json, sizeof(json), "{" TINY ", \"epochs\": 2, \"char_bigrams\": \"on\"}");
	cai_free(model);
	model = train_corpus(&en, json, &len);
	CHECK(model_bigrams(model, len, true, "new york"), "on: English word bigrams (\"new york\")");

	/* gradients of the bigram rows, and the memory estimate counts them */
	{
		cai_options *on = opts("{" TINY ", \"char_bigrams\": \"on\", \"dropout\": 0}");
		cai_options *off = opts("{" TINY ", \"char_bigrams\": \"off\", \"dropout\": 0}");
		cai_ner_data d = corpus_data(&zh);
		double		e = 1;

		CHECK(cai_ner_gradcheck(on, &d, 12, &e, &err) == CAI_OK && e < 2e-2, "gradient check with bigrams %g: %s",
			  e, err.msg);
		printf("bigrams: gradient check max relative error %g\n", e);
		CHECK(cai_ner_train_memory(on, &d) > cai_ner_train_memory(off, &d), "memory estimate: %zu with, %zu without",
			  cai_ner_train_memory(on, &d), cai_ner_train_memory(off, &d));
		cai_options_free(on);
		cai_options_free(off);
	}
	cai_free(model);
	cai_free(m_off);
	corpus_free(&zh);
	corpus_free(&zte);
	corpus_free(&en);
}

/* ---------------------------------------------------------------------- */
/* Data-parallel training (threads > 1)                                   */
/* ---------------------------------------------------------------------- */

/* An allocator that counts calls made off the main thread. */
static pthread_t main_thread;
static int	off_main_allocs;
static int	off_main_progress;

static void *
thread_check_alloc(void *ctx, size_t size)
{
	if (!pthread_equal(pthread_self(), main_thread))
		__atomic_add_fetch(&off_main_allocs, 1, __ATOMIC_RELAXED);
	return malloc(size);
}

static void
thread_check_free(void *ctx, void *ptr)
{
	if (!pthread_equal(pthread_self(), main_thread))
		__atomic_add_fetch(&off_main_allocs, 1, __ATOMIC_RELAXED);
	free(ptr);
}

static bool
progress_main_cb(void *ctx, const cai_progress *p)
{
	if (!pthread_equal(pthread_self(), main_thread))
		off_main_progress++;
	return progress_cb(ctx, p);
}

/*
 * threads 2: trains the toy corpus to the same bar as one thread, gives the
 * same bytes twice, differs from one thread (the batch is really split),
 * never allocates or reports progress off the main thread, restores the
 * BLAS threads; more threads than sentences in a batch; cancellation.
 */
static void
test_threads(void)
{
	Corpus		tr,
				te;
	cai_options *o = opts("{" TINY ", \"epochs\": 12, \"learning_rate\": 0.01, \"patience\": 4, \"threads\": 2}");
	cai_options *o1 = opts("{" TINY ", \"epochs\": 12, \"learning_rate\": 0.01, \"patience\": 4}");
	cai_allocator alloc = {thread_check_alloc, thread_check_free, NULL};
	cai_ner_data d = {0};
	uint8_t    *model = NULL,
			   *model2 = NULL,
			   *model1 = NULL;
	size_t		len = 0,
				len2 = 0,
				len1 = 0;
	char	   *metrics = NULL,
			   *metrics2 = NULL,
			   *metrics1 = NULL;
	cai_model_file *mf = NULL;
	cai_ner    *m = NULL;
	ProgressLog log = {0, 0, 0, 0.0, true};
	cai_error	err;

	main_thread = pthread_self();
	toy_corpus(&tr, 600, 1);
	toy_corpus(&te, 200, 2);
	d = corpus_data(&tr);
	CHECK(cai_ner_train_memory(o, &d) > cai_ner_train_memory(o1, &d), "memory grows with threads");
	cai_set_allocator(&alloc);
	CHECK(cai_ner_train(o, &d, NULL, NULL, NULL, progress_main_cb, &log, &model, &len, &metrics, &err) == CAI_OK,
		  "threads 2: %s", err.msg);
	cai_set_allocator(NULL);
	CHECK(off_main_allocs == 0 && off_main_progress == 0, "threads 2: %d allocations, %d progress calls off the main thread",
		  off_main_allocs, off_main_progress);
	CHECK(cai_blas_get_threads() == 1, "BLAS threads restored (%d)", cai_blas_get_threads());
	if (model == NULL)
		goto out;
	printf("toy metrics, threads 2: score %.4f best epoch %g\n", jget(metrics, "score", NULL, NULL),
		   jget(metrics, "best_epoch", NULL, NULL));
	CHECK(jget(metrics, "score", NULL, NULL) > 0.9, "threads 2 validation score %s", metrics);
	CHECK(log.epochs_done == (int) jget(metrics, "epochs_run", NULL, NULL) && log.monotone,
		  "threads 2 progress: %d epochs done, monotone %d", log.epochs_done, log.monotone);
	CHECK(cai_ner_train(o, &d, NULL, NULL, NULL, NULL, NULL, &model2, &len2, &metrics2, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(len == len2 && model2 != NULL && memcmp(model, model2, len) == 0, "threads 2: same seed, same bytes");
	CHECK(cai_ner_train(o1, &d, NULL, NULL, NULL, NULL, NULL, &model1, &len1, &metrics1, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(model1 != NULL && (len1 != len || memcmp(model, model1, len) != 0), "threads 2 differs from threads 1");
	CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK && cai_ner_load(mf, &m, &err) == CAI_OK, "%s", err.msg);
	if (m != NULL)
	{
		double		f1 = f1_of(m, &te, &err);

		printf("toy held-out F1, threads 2: %.4f\n", f1);
		CHECK(f1 > 0.9, "threads 2 held-out F1 %.4f", f1);
	}

	/* more shards than sentences in a batch (empty shards), no validation split */
	{
		cai_options *o3 = opts("{" TINY ", \"epochs\": 2, \"threads\": 3, \"batch_size\": 2, "
							   "\"validation_fraction\": 0}");
		uint8_t    *a = NULL,
				   *b = NULL;
		size_t		la = 0,
					lb = 0;
		char	   *ma = NULL,
				   *mb = NULL;
		Corpus		small;
		cai_ner_data ds = {0};

		toy_corpus(&small, 41, 5);
		ds = corpus_data(&small);
		CHECK(cai_ner_train(o3, &ds, NULL, NULL, NULL, NULL, NULL, &a, &la, &ma, &err) == CAI_OK &&
			  cai_ner_train(o3, &ds, NULL, NULL, NULL, NULL, NULL, &b, &lb, &mb, &err) == CAI_OK,
			  "threads 3, batch 2: %s", err.msg);
		CHECK(a != NULL && b != NULL && la == lb && memcmp(a, b, la) == 0, "threads 3: same bytes");
		cai_free(a);
		cai_free(b);
		cai_free(ma);
		cai_free(mb);
		corpus_free(&small);
		cai_options_free(o3);
	}

	/* cancel: the threads are joined, nothing leaks (ASan) */
	{
		cai_options *o4 = opts("{" TINY ", \"epochs\": 50, \"patience\": 0, \"threads\": 2}");
		ProgressLog cl = {0, 0, 2, 0.0, true};
		uint8_t    *a = NULL;
		size_t		la = 0;
		char	   *ma = NULL;

		CHECK(cai_ner_train(o4, &d, NULL, NULL, NULL, progress_cb, &cl, &a, &la, &ma, &err) ==
			  CAI_ERR_CANCELLED && a == NULL && ma == NULL, "threads 2 cancel: %s", err.msg);
		cai_options_free(o4);
	}
out:
	cai_ner_free(m);
	cai_model_file_free(mf);
	cai_free(model);
	cai_free(model1);
	cai_free(model2);
	cai_free(metrics);
	cai_free(metrics1);
	cai_free(metrics2);
	cai_options_free(o);
	cai_options_free(o1);
	corpus_free(&tr);
	corpus_free(&te);
}

static void
test_schemes_and_errors(void)
{
	Corpus		c;
	cai_options *o1 = opts("{" TINY ", \"epochs\": 1}");
	cai_options *o2 = opts("{" TINY ", \"epochs\": 1, \"tag_scheme\": \"iob2\"}");
	cai_ner_data d = {0};
	uint8_t    *model = NULL;
	size_t		len;
	char	   *metrics = NULL;
	cai_error	err;
	cai_chunk_scheme sch[] = {CAI_SCHEME_IOB1, CAI_SCHEME_BIOES, CAI_SCHEME_IOB2};

	for (int k = 0; k < 3; k++)
	{
		toy_corpus(&c, 80, 5);
		corpus_retag(&c, sch[k]);
		d = corpus_data(&c);
		CHECK(cai_ner_train(o1, &d, NULL, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_OK,
			  "%s", err.msg);
		if (metrics != NULL)
		{
			CHECK(strstr(metrics, cai_chunk_scheme_name(sch[k])) != NULL, "scheme %s: %s",
				  cai_chunk_scheme_name(sch[k]), metrics);
		}
		if (model != NULL)
		{
			cai_model_file *mf = NULL;

			CHECK(cai_format_read(model, len, &mf, &err) == CAI_OK &&
				  strstr(mf->meta_json, "\"labels\":[\"O\",\"B-LOC\",\"I-LOC\",\"B-ORG.NAM\"") != NULL,
				  "IOB2 labels");
			cai_model_file_free(mf);
		}
		cai_free(model);
		cai_free(metrics);
		model = NULL;
		metrics = NULL;
		/* BIOES tags under tag_scheme iob2 are refused */
		if (k == 1)
		{
			CHECK(cai_ner_train(o2, &d, NULL, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) ==
				  CAI_ERR_INVALID && model == NULL, "bioes as iob2");
		}
		cai_free(model);
		cai_free(metrics);
		model = NULL;
		metrics = NULL;
		corpus_free(&c);
	}

	/* malformed tags */
	toy_corpus(&c, 20, 5);
	free(c.tag[c.off[3] + 1]);
	c.tag[c.off[3] + 1] = strdup("X-PER");
	d = corpus_data(&c);
	CHECK(cai_ner_train(o1, &d, NULL, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "X-PER") != NULL && strstr(err.msg, "sentence 3") != NULL, "%s", err.msg);
	free(c.tag[c.off[3] + 1]);
	c.tag[c.off[3] + 1] = strdup("B-");
	CHECK(cai_ner_train(o1, &d, NULL, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "\"B-\"") != NULL, "%s", err.msg);
	free(c.tag[c.off[3] + 1]);
	c.tag[c.off[3] + 1] = strdup("O");
	/* malformed validation tag */
	{
		Corpus		v;
		cai_ner_data vd = {0};

		toy_corpus(&v, 5, 9);
		free(v.tag[0]);
		v.tag[0] = strdup("L-LOC");
		vd = corpus_data(&v);
		CHECK(cai_ner_train(o1, &d, &vd, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_ERR_INVALID &&
			  strstr(err.msg, "validation") != NULL, "%s", err.msg);
		corpus_free(&v);
	}
	/* all O */
	for (size_t i = 0; i < c.ntok; i++)
	{
		free(c.tag[i]);
		c.tag[i] = strdup("O");
	}
	CHECK(cai_ner_train(o1, &d, NULL, NULL, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_ERR_INVALID,
		  "all O");
	corpus_free(&c);

	/* pretrained vectors of the wrong size */
	{
		const char *w[] = {"paris"};
		size_t		wl[] = {5};
		float		v[4] = {0};
		cai_word_vectors wv = {1, 4, w, wl, v};

		toy_corpus(&c, 20, 5);
		d = corpus_data(&c);
		CHECK(cai_ner_train(o1, &d, NULL, &wv, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_ERR_INVALID,
			  "vector size");
		corpus_free(&c);
	}
	/*
	 * pretrained vectors of the right size extend the vocabulary; their rows
	 * learn at NER_VECTOR_LR (0.1) times the learning rate: after one Adam
	 * step (18 training sentences, one batch) the row of a training word
	 * ("the") has moved, by at most 0.1 lr in each entry (Adam's first step
	 * is lr * sign(gradient)), and a vector word absent from the training
	 * sentences ("zanzibar") keeps its vector bit for bit
	 */
	{
		cai_options *o4 = opts("{\"dimensions\": 4, \"char_dimensions\": 4, \"char_filters\": 4, \"hidden\": 4, "
							   "\"epochs\": 1, \"learning_rate\": 0.01}");
		const char *w[] = {"Paris", "zanzibar", "PARIS", "the"};
		size_t		wl[] = {5, 8, 5, 3};
		float		v[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 0.5f, -0.25f, 0.75f, -1.0f};
		cai_word_vectors wv = {4, 4, w, wl, v};
		cai_model_file *mf = NULL;

		toy_corpus(&c, 20, 5);
		d = corpus_data(&c);
		CHECK(cai_ner_train(o4, &d, NULL, &wv, NULL, NULL, NULL, &model, &len, &metrics, &err) == CAI_OK, "%s",
			  err.msg);
		if (model != NULL && cai_format_read(model, len, &mf, &err) == CAI_OK)
		{
			const cai_tensor *t = cai_model_file_tensor(mf, "ner.words.bytes");
			const cai_tensor *we = cai_model_file_tensor(mf, "ner.word_emb");
			const char *b = t != NULL ? t->data : NULL;
			int64_t		zanzibar = -1,
						the = -1;
			double		moved = 0.0;

			CHECK(t != NULL && memmem(t->data, t->nbytes, "zanzibar", 9) != NULL, "vector word added");
			/* word i of the NUL-separated vocabulary is row i + 1 */
			for (size_t at = 0, i = 1; b != NULL && at < t->nbytes; at += strlen(b + at) + 1, i++)
			{
				if (strcmp(b + at, "zanzibar") == 0)
					zanzibar = (int64_t) i;
				if (strcmp(b + at, "the") == 0)
					the = (int64_t) i;
			}
			CHECK(we != NULL && zanzibar > 0 && the > 0 && zanzibar < we->shape[0] && the < we->shape[0],
				  "rows of the vector words");
			if (we != NULL && zanzibar > 0 && the > 0 && zanzibar < we->shape[0] && the < we->shape[0])
			{
				const float *e = we->data;

				for (int j = 0; j < 4; j++)
					moved = fmax(moved, fabs((double) e[the * 4 + j] - (double) v[12 + j]));
				CHECK(moved > 0.0005 && moved < 0.0011, "a pretrained training row moved by %g (0.1 lr = 0.001)",
					  moved);
				CHECK(memcmp(e + zanzibar * 4, v + 4, sizeof(float) * 4) == 0,
					  "a vector word absent from training keeps its vector");
			}
		}
		cai_model_file_free(mf);
		cai_free(model);
		cai_free(metrics);
		model = NULL;
		metrics = NULL;
		corpus_free(&c);
		cai_options_free(o4);
	}
	cai_options_free(o1);
	cai_options_free(o2);
}

int
main(void)
{
	cai_blas_set_threads(1);
	test_conlleval();
	test_chunks();
	test_spans();
	test_train();
	test_bigrams();
	test_threads();
	test_schemes_and_errors();
	return check_summary("test_ner");
}
