/*
 * test_wordpiece.c: the WordPiece tokenizer against BERT's rules, its
 * vocabulary checks, the encode helper and the vocabulary trainer.
 *
 * The fixtures (test/fixtures/wordpiece/, written by
 * bench/peers/bert_tokenizer_ref.py fixtures) are a cased and an uncased
 * vocabulary and, for each, a table of hard cases with the expected ids and
 * byte offsets; every case must match exactly.  The directory is
 * $CAI_WORDPIECE_FIXTURES, by default test/fixtures/wordpiece (the unit
 * tests run from the repository root).
 */
#include "cai/tokenize.h"
#include "cai/wordpiece.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

static const char *dir;

/* Read dir/name whole (NUL-terminated); NULL and a failed check when missing. */
static char *
slurp(const char *name, size_t *len)
{
	char		path[4096];
	FILE	   *f;
	char	   *buf = NULL;
	size_t		cap = 0;
	size_t		n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	CHECK(f != NULL, "fixture %s is missing", path);
	if (f == NULL)
		return NULL;
	for (;;)
	{
		size_t		got;

		if (n + 4096 + 1 > cap)
		{
			char	   *b;

			cap = (n + 4096 + 1) * 2;
			b = realloc(buf, cap);
			if (b == NULL)
				break;
			buf = b;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	if (buf != NULL)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static cai_wordpiece_vocab *
load_vocab(const char *name)
{
	size_t		len = 0;
	char	   *data = slurp(name, &len);
	cai_wordpiece_vocab *v = NULL;
	cai_error	err;

	if (data == NULL)
		return NULL;
	err.msg[0] = '\0';
	CHECK(cai_wordpiece_vocab_load(data, len, CAI_WP_NEED_ALL, &v, &err) == CAI_OK,
		  "%s: %s", name, err.msg);
	free(data);
	return v;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Is pos the start of a code point (or of an invalid byte) in a sequential decode of text? */
static bool
on_boundary(const char *text, size_t len, size_t pos)
{
	size_t		at = 0;

	while (at < pos)
		at += (size_t) cai_utf8_decode(text + at, len - at, NULL);
	return at == pos;
}

/*
 * The offset properties: pieces are in order, non-empty, inside the text,
 * start and end on code point boundaries, and every printable ASCII byte and
 * every CJK ideograph of the text lies inside a piece.
 */
static bool
offsets_ok(const char *text, size_t len, const cai_wordpiece_piece *p, size_t n, const char *what)
{
	size_t		covered = 0;	/* bytes before this are covered or checked */

	for (size_t i = 0; i < n; i++)
	{
		if (p[i].start < 0 || p[i].end <= p[i].start || p[i].end > (int64_t) len ||
			(i > 0 && (p[i].start < p[i - 1].start || p[i].end < p[i - 1].end)))
		{
			fprintf(stderr, "  %s: piece %zu [%lld, %lld) out of order or bounds\n", what, i,
					(long long) p[i].start, (long long) p[i].end);
			return false;
		}
		if (!on_boundary(text, len, (size_t) p[i].start) || !on_boundary(text, len, (size_t) p[i].end))
		{
			fprintf(stderr, "  %s: piece %zu [%lld, %lld) cuts a UTF-8 sequence\n", what, i,
					(long long) p[i].start, (long long) p[i].end);
			return false;
		}
	}
	for (size_t pos = 0; pos < len;)
	{
		int32_t		cp;
		int			nb = cai_utf8_decode(text + pos, len - pos, &cp);
		bool		must = (cp > 32 && cp < 127) || (cp >= 0x4E00 && cp <= 0x9FFF);

		if (must)
		{
			bool		in = false;

			for (size_t i = 0; i < n && !in; i++)
				in = p[i].start <= (int64_t) pos && (int64_t) (pos + nb) <= p[i].end;
			if (!in)
			{
				fprintf(stderr, "  %s: U+%04X at byte %zu is in no piece\n", what, (unsigned) cp, pos);
				return false;
			}
		}
		pos += (size_t) nb;
		covered = pos;
	}
	return covered == len;
}

/* Check every case of name.tsv; returns the number of cases. */
static int
run_fixture(const char *tsv, const cai_wordpiece_vocab *v, bool lower)
{
	size_t		len = 0;
	char	   *data = slurp(tsv, &len);
	char	   *line;
	char	   *save = NULL;
	int			n_cases = 0;
	int			n_bad = 0;
	cai_wordpiece_options o;

	if (data == NULL || v == NULL)
	{
		free(data);
		return 0;
	}
	cai_wordpiece_options_default(&o);
	o.lower_case = lower;
	for (line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
	{
		char	   *name = line;
		char	   *hex;
		char	   *want;
		char	   *tab;
		char	   *text;
		size_t		tlen = 0;
		cai_wordpiece_piece *p = NULL;
		size_t		np = 0;
		size_t		k = 0;
		bool		same = true;
		cai_error	err;

		if (line[0] == '#')
			continue;
		hex = strchr(name, '\t');
		if (hex == NULL || (want = strchr(hex + 1, '\t')) == NULL)
		{
			CHECK(false, "%s: malformed line \"%.40s\"", tsv, line);
			continue;
		}
		*hex++ = '\0';
		*want++ = '\0';
		if ((tab = strchr(want, '\t')) != NULL)
			*tab = '\0';
		text = malloc(strlen(hex) / 2 + 1);
		for (char *h = hex; h[0] && h[1] && hexval(h[0]) >= 0 && hexval(h[1]) >= 0; h += 2)
			text[tlen++] = (char) (hexval(h[0]) * 16 + hexval(h[1]));
		n_cases++;

		err.msg[0] = '\0';
		if (cai_wordpiece_tokenize(v, &o, text, tlen, 0, &p, &np, &err) != CAI_OK)
		{
			CHECK(false, "%s %s: %s", tsv, name, err.msg);
			free(text);
			continue;
		}
		/* compare with "id:start:end ..." */
		for (char *w = want; *w != '\0';)
		{
			long		id = strtol(w, &w, 10);
			long		s = strtol(w + 1, &w, 10);
			long		e = strtol(w + 1, &w, 10);

			while (*w == ' ')
				w++;
			if (k >= np || p[k].id != id || p[k].start != s || p[k].end != e)
			{
				if (same)
					fprintf(stderr, "  %s %s: piece %zu: want %ld [%ld, %ld), got %d [%lld, %lld)\n", tsv, name,
							k, id, s, e, k < np ? p[k].id : -1, k < np ? (long long) p[k].start : -1LL,
							k < np ? (long long) p[k].end : -1LL);
				same = false;
			}
			k++;
		}
		if (k != np)
		{
			if (same)
				fprintf(stderr, "  %s %s: want %zu pieces, got %zu\n", tsv, name, k, np);
			same = false;
		}
		if (!same)
			n_bad++;
		CHECK(same, "%s %s differs from the reference", tsv, name);
		CHECK(offsets_ok(text, tlen, p, np, name), "%s %s: offset properties", tsv, name);
		cai_free(p);
		free(text);
	}
	free(data);
	CHECK(n_cases >= 40, "%s: %d cases", tsv, n_cases);
	if (n_bad > 0)
		fprintf(stderr, "  %s: %d of %d cases differ\n", tsv, n_bad, n_cases);
	return n_cases;
}

/* ---------------------------------------------------------------------- */
/* Vocabulary checks                                                      */
/* ---------------------------------------------------------------------- */

static const char base_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\n";

static void
expect_vocab_error(const char *data, size_t len, unsigned need, cai_status want, const char *msg_part)
{
	cai_wordpiece_vocab *v = (cai_wordpiece_vocab *) &v;	/* must be reset to NULL */
	cai_error	err;
	cai_status	st;

	err.msg[0] = '\0';
	st = cai_wordpiece_vocab_load(data, len, need, &v, &err);
	CHECK(st == want, "vocab \"%.30s\": status %s, want %s (%s)", data, cai_status_name(st),
		  cai_status_name(want), err.msg);
	CHECK(v == NULL, "vocab \"%.30s\": *out not NULL on error", data);
	CHECK(strstr(err.msg, msg_part) != NULL, "vocab \"%.30s\": message \"%s\" lacks \"%s\"", data,
		  err.msg, msg_part);
}

static void
test_vocab_errors(void)
{
	char		big[CAI_WP_MAX_TOKEN_BYTES + 64];
	cai_wordpiece_vocab *v = NULL;
	size_t		n;
	const char *t;

	expect_vocab_error("", 0, 0, CAI_ERR_FORMAT, "empty");
	expect_vocab_error("[UNK]\n\nhello\n", 13, 0, CAI_ERR_FORMAT, "line 2: empty line");
	expect_vocab_error("[UNK]\nhello\nworld\nhello\n", 24, 0, CAI_ERR_FORMAT,
					   "line 4: duplicate token \"hello\" (first on line 2)");
	expect_vocab_error("[UNK]\nh\xc3\x28llo\n", 13, 0, CAI_ERR_FORMAT, "line 2: invalid UTF-8 at byte 2");
	expect_vocab_error("[UNK]\nab\xed\xa0\x80\n", 12, 0, CAI_ERR_FORMAT, "line 2: invalid UTF-8");
	expect_vocab_error("[UNK]\na\0b\n", 10, 0, CAI_ERR_FORMAT, "line 2: NUL byte");
	expect_vocab_error("hello\nworld\n", 12, CAI_WP_NEED(CAI_WP_UNK), CAI_ERR_FORMAT, "no [UNK] token");
	expect_vocab_error("[UNK]\n[CLS]\n", 12, CAI_WP_NEED_ALL, CAI_ERR_FORMAT, "no [SEP] token");
	expect_vocab_error("[UNK]\n[CLS]\n[SEP]\n[PAD]\n", 24, CAI_WP_NEED_ALL, CAI_ERR_FORMAT, "no [MASK] token");
	expect_vocab_error("[unk]\n", 6, CAI_WP_NEED(CAI_WP_UNK), CAI_ERR_FORMAT, "no [UNK] token");

	memcpy(big, "[UNK]\n", 6);
	memset(big + 6, 'x', CAI_WP_MAX_TOKEN_BYTES + 1);
	big[6 + CAI_WP_MAX_TOKEN_BYTES + 1] = '\n';
	expect_vocab_error(big, CAI_WP_MAX_TOKEN_BYTES + 8, 0, CAI_ERR_LIMIT, "line 2: 513 bytes");
	/* exactly the limit is fine */
	CHECK(cai_wordpiece_vocab_load(big, CAI_WP_MAX_TOKEN_BYTES + 6, 0, &v, NULL) == CAI_OK,
		  "a token of %d bytes loads", CAI_WP_MAX_TOKEN_BYTES);
	cai_wordpiece_vocab_free(v);
	v = NULL;

	CHECK(cai_wordpiece_vocab_load(NULL, 5, 0, &v, NULL) == CAI_ERR_INVALID, "NULL data");
	CHECK(cai_wordpiece_vocab_load(base_vocab, 5, 0, NULL, NULL) == CAI_ERR_INVALID, "NULL out");

	/* CRLF lines and no final newline */
	CHECK(cai_wordpiece_vocab_load("[UNK]\r\nab\r\n##c", 14, CAI_WP_NEED(CAI_WP_UNK), &v, NULL) == CAI_OK,
		  "CRLF vocabulary loads");
	if (v != NULL)
	{
		CHECK(cai_wordpiece_vocab_size(v) == 3, "3 tokens, got %d", cai_wordpiece_vocab_size(v));
		CHECK(cai_wordpiece_token_id(v, "ab", 2) == 1 && cai_wordpiece_token_id(v, "##c", 3) == 2 &&
			  cai_wordpiece_token_id(v, "ab\r", 3) == -1, "CR dropped, last line kept");
		t = cai_wordpiece_token(v, 2, &n);
		CHECK(t != NULL && n == 3 && memcmp(t, "##c", 3) == 0, "token 2 is ##c");
		CHECK(cai_wordpiece_token(v, 3, &n) == NULL && cai_wordpiece_token(v, -1, &n) == NULL, "ids out of range");
		CHECK(cai_wordpiece_special_id(v, CAI_WP_UNK) == 0 && cai_wordpiece_special_id(v, CAI_WP_CLS) == -1,
			  "special ids");
		cai_wordpiece_vocab_free(v);
	}
}

/* ---------------------------------------------------------------------- */
/* Tokenizer behaviour beyond the fixtures                                */
/* ---------------------------------------------------------------------- */

static cai_wordpiece_vocab *
small_vocab(void)
{
	cai_wordpiece_vocab *v = NULL;

	CHECK(cai_wordpiece_vocab_load(base_vocab, sizeof(base_vocab) - 1, CAI_WP_NEED_ALL, &v, NULL) == CAI_OK,
		  "the small vocabulary loads");
	return v;
}

static void
test_tokenize_api(void)
{
	cai_wordpiece_vocab *v = small_vocab();
	cai_wordpiece_options o;
	cai_wordpiece_piece *p = NULL;
	size_t		n = 0;
	cai_error	err;

	if (v == NULL)
		return;
	cai_wordpiece_options_default(&o);
	CHECK(o.lower_case && o.special_in_text && o.max_chars_per_word == 100, "defaults");

	/* "Hellos" -> hello ##s, both mapped to the original bytes */
	CHECK(cai_wordpiece_tokenize(v, &o, "  Hellos!", 9, 0, &p, &n, &err) == CAI_OK, "%s", err.msg);
	CHECK(n == 3 && p[0].id == 5 && p[0].start == 2 && p[0].end == 7 && p[1].id == 6 && p[1].start == 7 &&
		  p[1].end == 8 && p[2].id == 1 && p[2].start == 8 && p[2].end == 9, "hello ##s [UNK]");
	cai_free(p);

	/* the piece limit */
	CHECK(cai_wordpiece_tokenize(v, &o, "hello hello hello", 17, 2, &p, &n, &err) == CAI_ERR_LIMIT &&
		  p == NULL && n == 0, "max_pieces 2 of 3");
	CHECK(cai_wordpiece_tokenize(v, &o, "hello hello hello", 17, 3, &p, &n, &err) == CAI_OK && n == 3,
		  "max_pieces 3 of 3");
	cai_free(p);
	/* "hellosx": hello ##s, then no match: one [UNK] fits max_pieces 1 */
	CHECK(cai_wordpiece_tokenize(v, &o, "hellosx", 7, 1, &p, &n, &err) == CAI_OK && n == 1 && p[0].id == 1 &&
		  p[0].start == 0 && p[0].end == 7, "max_pieces counts the [UNK], not the pieces it replaced");
	cai_free(p);

	/* special tokens written in the text, or not */
	CHECK(cai_wordpiece_tokenize(v, &o, "a[MASK]", 7, 0, &p, &n, &err) == CAI_OK && n == 2 &&
		  p[1].id == 4 && p[1].start == 1 && p[1].end == 7, "[MASK] in the text");
	cai_free(p);
	o.special_in_text = false;
	CHECK(cai_wordpiece_tokenize(v, &o, "a[MASK]", 7, 0, &p, &n, &err) == CAI_OK && n == 4 &&
		  p[1].id == 1 && p[1].start == 1 && p[1].end == 2, "[MASK] split as punctuation");
	cai_free(p);
	o.special_in_text = true;

	/* max_chars_per_word */
	o.max_chars_per_word = 5;
	CHECK(cai_wordpiece_tokenize(v, &o, "hello hellos", 12, 0, &p, &n, &err) == CAI_OK && n == 2 &&
		  p[0].id == 5 && p[1].id == 1 && p[1].start == 6 && p[1].end == 12, "6 characters > 5: [UNK]");
	cai_free(p);
	o.max_chars_per_word = 0;
	CHECK(cai_wordpiece_tokenize(v, &o, "x", 1, 0, &p, &n, &err) == CAI_ERR_INVALID, "max_chars_per_word 0");
	cai_wordpiece_options_default(&o);

	/* empty input, NULL text with length 0, NULL arguments */
	CHECK(cai_wordpiece_tokenize(v, &o, NULL, 0, 0, &p, &n, &err) == CAI_OK && p == NULL && n == 0, "empty");
	CHECK(cai_wordpiece_tokenize(v, &o, NULL, 3, 0, &p, &n, &err) == CAI_ERR_INVALID, "NULL text");
	CHECK(cai_wordpiece_tokenize(NULL, &o, "x", 1, 0, &p, &n, &err) == CAI_ERR_INVALID, "NULL vocab");
	CHECK(cai_wordpiece_tokenize(v, &o, "x", 1, 0, NULL, &n, &err) == CAI_ERR_INVALID, "NULL pieces");
	cai_wordpiece_vocab_free(v);

	/* a vocabulary without [UNK] cannot tokenize */
	v = NULL;
	CHECK(cai_wordpiece_vocab_load("a\nb\n", 4, 0, &v, NULL) == CAI_OK, "vocabulary without specials");
	CHECK(cai_wordpiece_tokenize(v, &o, "x", 1, 0, &p, &n, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "[UNK]") != NULL, "no [UNK]: %s", err.msg);
	cai_wordpiece_vocab_free(v);
}

static void
test_encode(void)
{
	cai_wordpiece_vocab *v = small_vocab();
	cai_wordpiece_options o;
	cai_wordpiece_piece *p = NULL;
	size_t		n = 0;
	size_t		cut = 99;
	cai_error	err;

	if (v == NULL)
		return;
	cai_wordpiece_options_default(&o);

	CHECK(cai_wordpiece_encode(v, &o, "hellos", 6, NULL, 0, 512, &p, &n, &cut, &err) == CAI_OK, "%s", err.msg);
	CHECK(n == 4 && p[0].id == 2 && p[0].start == -1 && p[1].id == 5 && p[2].id == 6 && p[3].id == 3 &&
		  p[3].end == -1 && cut == 0 && p[2].type_id == 0, "[CLS] hello ##s [SEP]");
	cai_free(p);

	/* pair: type ids, offsets into each text */
	CHECK(cai_wordpiece_encode(v, &o, "hello", 5, " hellos", 7, 512, &p, &n, &cut, &err) == CAI_OK, "%s", err.msg);
	CHECK(n == 6 && p[1].type_id == 0 && p[2].id == 3 && p[2].type_id == 0 && p[3].id == 5 && p[3].type_id == 1 &&
		  p[3].start == 1 && p[3].end == 6 && p[4].id == 6 && p[5].id == 3 && p[5].type_id == 1,
		  "[CLS] hello [SEP] hello ##s [SEP]");
	cai_free(p);

	/* longest_first: a 4 pieces, b 2 pieces, room 3 -> a 2, b 1 (ties cut b) */
	CHECK(cai_wordpiece_encode(v, &o, "hello hello hello hello", 23, "hello hello", 11, 6, &p, &n, &cut, &err) == CAI_OK,
		  "%s", err.msg);
	CHECK(n == 6 && cut == 3 && p[3].id == 3 && p[4].type_id == 1 && p[5].id == 3, "truncated pair, %zu cut", cut);
	cai_free(p);
	CHECK(cai_wordpiece_encode(v, &o, "hello hello hello", 17, NULL, 0, 3, &p, &n, &cut, &err) == CAI_OK &&
		  n == 3 && cut == 2 && p[1].start == 0 && p[1].end == 5, "truncated single");
	cai_free(p);

	/* empty text: [CLS] [SEP] */
	CHECK(cai_wordpiece_encode(v, &o, "", 0, "", 0, 8, &p, &n, NULL, &err) == CAI_OK && n == 3 &&
		  p[2].type_id == 1, "empty pair");
	cai_free(p);

	CHECK(cai_wordpiece_encode(v, &o, "x", 1, NULL, 0, 2, &p, &n, NULL, &err) == CAI_ERR_INVALID, "max_length 2");
	CHECK(cai_wordpiece_encode(v, &o, "x", 1, "y", 1, 4, &p, &n, NULL, &err) == CAI_ERR_INVALID, "pair max_length 4");
	cai_wordpiece_vocab_free(v);

	v = NULL;
	CHECK(cai_wordpiece_vocab_load("[UNK]\nx\n", 8, 0, &v, NULL) == CAI_OK, "vocabulary without [CLS]");
	CHECK(cai_wordpiece_encode(v, &o, "x", 1, NULL, 0, 8, &p, &n, NULL, &err) == CAI_ERR_INVALID, "no [CLS]");
	cai_wordpiece_vocab_free(v);
}

/* Random texts of hard code points: the offset properties hold, nothing crashes. */
static void
test_random_offsets(const cai_wordpiece_vocab *cased, const cai_wordpiece_vocab *uncased)
{
	static const char *const atoms[] = {
		"a", "b", "the", "Hello", " ", "  ", "\t", "\n", ".", ",", "'", "-", "[MASK]", "[UNK", "\xc3\xa9",
		"e\xcc\x81", "\xc4\xb0", "\xce\xa3", "\xe6\x88\x91", "\xe4\xb8\xad", "\xed\x95\x9c", "\xea\xb5\xad",
		"\xf0\x9f\x8d\x95", "\xe2\x80\x8b", "\xe2\x80\x8d", "\x01", "\x7f", "\xff", "\xe4\xb8", "\xef\xbf\xbd",
		"\xe2\x80\xa8", "\xe3\x80\x80", "\xe2\x89\xa0", "\xef\xac\x81", "\xd9\x85", "1", "2,3", "\xe2\x80\x94",
	};
	const size_t n_atoms = sizeof(atoms) / sizeof(atoms[0]);
	cai_rng		rng;
	char		text[600];
	int			bad = 0;

	cai_rng_seed(&rng, 13);
	for (int iter = 0; iter < 2000 && bad == 0; iter++)
	{
		size_t		len = 0;
		int			k = (int) cai_rng_below(&rng, 40);

		for (int i = 0; i < k; i++)
		{
			const char *a = atoms[cai_rng_below(&rng, (uint32_t) n_atoms)];
			size_t		al = strlen(a);

			memcpy(text + len, a, al);
			len += al;
		}
		for (int c = 0; c < 2; c++)
		{
			cai_wordpiece_options o;
			cai_wordpiece_piece *p = NULL;
			size_t		n = 0;

			cai_wordpiece_options_default(&o);
			o.lower_case = c == 1;
			o.max_chars_per_word = 1 + (int) cai_rng_below(&rng, 12);
			if (cai_wordpiece_tokenize(c == 1 ? uncased : cased, &o, text, len, 0, &p, &n, NULL) != CAI_OK ||
				!offsets_ok(text, len, p, n, "random"))
				bad++;
			cai_free(p);
		}
	}
	CHECK(bad == 0, "random texts: offset properties");
}

/* ---------------------------------------------------------------------- */
/* Trainer                                                                */
/* ---------------------------------------------------------------------- */

static const char *const corpus[] = {
	"The quick brown fox jumps over the lazy dog.",
	"Unaffable people are unable to understand unbelievable things.",
	"Tokenization, tokenizers and tokens: token-level models tokenize text.",
	"Les élèves étudient à l'école; Zürich und Straße.",
	"我爱北京天安门，北京是中国的首都。",
	"한국어 텍스트와 日本語のテキスト",
	"Emoji 🍕🍕 pizza pizzas pizzeria",
	"running runner runs ran run running runners",
	"The the THE tHe quick quicker quickest quickly",
};

static bool
covers_without_unk(const char *vocab_text, size_t vocab_len, bool lower)
{
	cai_wordpiece_vocab *v = NULL;
	cai_wordpiece_options o;
	bool		ok = true;
	cai_error	err;

	if (cai_wordpiece_vocab_load(vocab_text, vocab_len, CAI_WP_NEED_ALL, &v, &err) != CAI_OK)
	{
		fprintf(stderr, "  trained vocabulary does not load: %s\n", err.msg);
		return false;
	}
	cai_wordpiece_options_default(&o);
	o.lower_case = lower;
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]) && ok; i++)
	{
		cai_wordpiece_piece *p = NULL;
		size_t		n = 0;

		ok = cai_wordpiece_tokenize(v, &o, corpus[i], strlen(corpus[i]), 0, &p, &n, NULL) == CAI_OK && n > 0;
		for (size_t k = 0; k < n && ok; k++)
			if (p[k].id == cai_wordpiece_special_id(v, CAI_WP_UNK))
			{
				fprintf(stderr, "  text %zu: [UNK] at [%lld, %lld)\n", i, (long long) p[k].start, (long long) p[k].end);
				ok = false;
			}
		cai_free(p);
	}
	cai_wordpiece_vocab_free(v);
	return ok;
}

static bool
cancel_at_once(void *ctx, const cai_progress *p)
{
	(void) ctx;
	(void) p;
	return false;
}

static void
test_train(void)
{
	const size_t n = sizeof(corpus) / sizeof(corpus[0]);
	size_t		lens[sizeof(corpus) / sizeof(corpus[0])];
	cai_wordpiece_train_options o;
	char	   *out1 = NULL;
	char	   *out2 = NULL;
	size_t		len1 = 0;
	size_t		len2 = 0;
	cai_error	err;
	int			lines = 0;

	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(corpus[i]);
	cai_wordpiece_train_options_default(&o);
	CHECK(o.vocab_size == 30522 && o.min_frequency == 2 && o.lower_case, "train defaults");

	for (int lower = 0; lower < 2; lower++)
	{
		o.lower_case = lower == 1;
		o.vocab_size = 250;
		o.min_frequency = 1;
		CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out1, &len1, &err) == CAI_OK, "train: %s", err.msg);
		if (out1 == NULL)
			return;
		lines = 0;
		for (size_t i = 0; i < len1; i++)
			lines += out1[i] == '\n';
		CHECK(lines == 250, "vocab_size 250 reached: %d lines", lines);
		CHECK(strncmp(out1, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", 30) == 0, "special tokens first");
		CHECK(covers_without_unk(out1, len1, o.lower_case), "every training word without [UNK] (lower %d)", lower);
		CHECK(strstr(out1, "\nquick\n") != NULL && strstr(out1, "\n##ing\n") != NULL,
			  "frequent words and suffixes are merged");
		CHECK(lower == 0 || strstr(out1, "\nThe\n") == NULL, "no upper case when lower-casing");

		/* deterministic */
		CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out2, &len2, &err) == CAI_OK && len1 == len2 &&
			  memcmp(out1, out2, len1) == 0, "same input, same vocabulary");
		cai_free(out2);
		out2 = NULL;
		cai_free(out1);
		out1 = NULL;
	}

	/* a high min_frequency stops early, below vocab_size */
	o.lower_case = true;
	o.min_frequency = 1000;
	CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out1, &len1, &err) == CAI_OK, "%s", err.msg);
	lines = 0;
	for (size_t i = 0; i < len1; i++)
		lines += out1[i] == '\n';
	CHECK(lines < 250 && covers_without_unk(out1, len1, true), "alphabet only: %d tokens", lines);
	cai_free(out1);
	out1 = NULL;

	/* a vocabulary too small for the alphabet, bad options */
	o.min_frequency = 1;
	o.vocab_size = 20;
	CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out1, &len1, &err) == CAI_ERR_INVALID &&
		  strstr(err.msg, "alphabet") != NULL, "vocab_size below the alphabet: %s", err.msg);
	o.vocab_size = 250;
	o.min_frequency = 0;
	CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out1, &len1, &err) == CAI_ERR_INVALID, "min_frequency 0");
	o.min_frequency = 1;
	CHECK(cai_wordpiece_train(corpus, NULL, n, &o, &out1, &len1, &err) == CAI_ERR_INVALID, "NULL lens");
	CHECK(cai_wordpiece_train(corpus, lens, 0, &o, &out1, &len1, &err) == CAI_OK && out1 != NULL &&
		  len1 == 31, "no texts: the special tokens");
	cai_free(out1);
	out1 = NULL;

	/* the progress callback cancels */
	o.vocab_size = 1000;
	o.progress = cancel_at_once;
	CHECK(cai_wordpiece_train(corpus, lens, n, &o, &out1, &len1, &err) == CAI_ERR_CANCELLED && out1 == NULL,
		  "cancelled");
}

int
main(void)
{
	cai_wordpiece_vocab *cased;
	cai_wordpiece_vocab *uncased;

	dir = getenv("CAI_WORDPIECE_FIXTURES");
	if (dir == NULL || dir[0] == '\0')
		dir = "test/fixtures/wordpiece";

	cased = load_vocab("cased_vocab.txt");
	uncased = load_vocab("uncased_vocab.txt");
	run_fixture("cased.tsv", cased, false);
	run_fixture("uncased.tsv", uncased, true);
	if (cased != NULL && uncased != NULL)
		test_random_offsets(cased, uncased);
	cai_wordpiece_vocab_free(cased);
	cai_wordpiece_vocab_free(uncased);

	test_vocab_errors();
	test_tokenize_api();
	test_encode();
	test_train();
	return check_summary("test_wordpiece");
}
