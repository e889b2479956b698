/*
 * fuzz_wordpiece.c: libFuzzer target for the WordPiece vocabulary loader,
 * tokenizer, encode helper and vocabulary trainer.
 *
 *   make -f core.mk BUILD=build-wp fuzz FUZZERS=fuzz_wordpiece FUZZ_SECONDS=60
 *
 * Input: a vocabulary, a NUL byte, then the text (no NUL: the whole input is
 * the text, with a built-in vocabulary).  The first byte of the text also
 * picks the options.  A vocabulary that does not load must fail with a
 * message; then the built-in one is used.
 * Oracles (a failure traps):
 *   - pieces are in order, non-empty, inside the text, on code point
 *     boundaries, with ids inside the vocabulary;
 *   - max_pieces = n succeeds, n - 1 (> 0) fails with CAI_ERR_LIMIT;
 *   - encode gives [CLS] ... [SEP] within max_length;
 *   - (short texts) a vocabulary trained on the text loads with every special
 *     token and tokenizes the text without [UNK].
 * Seeds: test/fuzz/corpus/fuzz_wordpiece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cai/tokenize.h"
#include "cai/wordpiece.h"

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

static const char builtin[] =
	"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\nthe\n##s\n##a\n##b\n##c\n.\n,\n!\nhello\nworld\n##ing\n"
	"\xe4\xb8\xad\n\xc3\xa9\n##\xc3\xa9\n\xe1\x84\x92\n##\xe1\x85\xa1\n";

/* Is pos the start of a code point (or an invalid byte) in a sequential decode of text? */
static bool
on_boundary(const char *text, size_t len, size_t pos)
{
	size_t		at = 0;

	while (at < pos)
		at += (size_t) cai_utf8_decode(text + at, len - at, NULL);
	return at == pos;
}

static void
check_pieces(const cai_wordpiece_vocab *v, const char *text, size_t len, const cai_wordpiece_piece *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		REQUIRE(p[i].id >= 0 && p[i].id < cai_wordpiece_vocab_size(v));
		REQUIRE(p[i].start >= 0 && p[i].start < p[i].end && p[i].end <= (int64_t) len);
		REQUIRE(on_boundary(text, len, (size_t) p[i].start) && on_boundary(text, len, (size_t) p[i].end));
		if (i > 0)
			REQUIRE(p[i].start >= p[i - 1].start && p[i].end >= p[i - 1].end);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *) data;
	const char *nul = memchr(in, '\0', size);
	const char *text = nul != NULL ? nul + 1 : in;
	size_t		len = nul != NULL ? size - (size_t) (nul + 1 - in) : size;
	cai_wordpiece_vocab *v = NULL;
	cai_wordpiece_options o;
	cai_wordpiece_piece *p = NULL;
	size_t		n = 0;
	cai_error	err;
	unsigned	sel = len > 0 ? (unsigned char) text[0] : 0;

	if (nul != NULL)
	{
		err.msg[0] = '\0';
		if (cai_wordpiece_vocab_load(in, (size_t) (nul - in), CAI_WP_NEED(CAI_WP_UNK), &v, &err) != CAI_OK)
			REQUIRE(v == NULL && err.msg[0] != '\0');
	}
	if (v == NULL)
		REQUIRE(cai_wordpiece_vocab_load(builtin, sizeof(builtin) - 1, CAI_WP_NEED_ALL, &v, NULL) == CAI_OK);

	cai_wordpiece_options_default(&o);
	o.lower_case = (sel & 1) != 0;
	o.special_in_text = (sel & 2) != 0;
	o.max_chars_per_word = 1 + (int) ((sel >> 2) % 120);
	REQUIRE(cai_wordpiece_tokenize(v, &o, text, len, 0, &p, &n, &err) == CAI_OK);
	REQUIRE((n == 0) == (p == NULL));
	check_pieces(v, text, len, p, n);
	cai_free(p);
	if (n > 0)
	{
		size_t		n2 = 0;

		REQUIRE(cai_wordpiece_tokenize(v, &o, text, len, n, &p, &n2, NULL) == CAI_OK && n2 == n);
		cai_free(p);
		if (n > 1)				/* max_pieces 0 is no limit */
			REQUIRE(cai_wordpiece_tokenize(v, &o, text, len, n - 1, &p, &n2, &err) == CAI_ERR_LIMIT && p == NULL);
	}
	if (cai_wordpiece_special_id(v, CAI_WP_CLS) >= 0 && cai_wordpiece_special_id(v, CAI_WP_SEP) >= 0)
	{
		size_t		maxlen = 5 + sel % 40;
		size_t		half = len / 2;

		REQUIRE(cai_wordpiece_encode(v, &o, text, half, text + half, len - half, maxlen, &p, &n, NULL, &err) == CAI_OK);
		REQUIRE(n >= 3 && n <= maxlen && p[0].id == cai_wordpiece_special_id(v, CAI_WP_CLS) &&
				p[n - 1].id == cai_wordpiece_special_id(v, CAI_WP_SEP));
		cai_free(p);
	}
	cai_wordpiece_vocab_free(v);

	/* train on the text, then the text has no [UNK] */
	if (len <= 4096)
	{
		cai_wordpiece_train_options to;
		const char *texts[1] = {text};
		size_t		lens[1] = {len};
		char	   *voc = NULL;
		size_t		vl = 0;

		cai_wordpiece_train_options_default(&to);
		to.vocab_size = 100000;
		to.min_frequency = 1 + (int) (sel % 3);
		to.lower_case = o.lower_case;
		to.max_chars_per_word = o.max_chars_per_word;
		REQUIRE(cai_wordpiece_train(texts, lens, 1, &to, &voc, &vl, &err) == CAI_OK);
		v = NULL;
		REQUIRE(cai_wordpiece_vocab_load(voc, vl, CAI_WP_NEED_ALL, &v, &err) == CAI_OK);
		o.special_in_text = false;
		REQUIRE(cai_wordpiece_tokenize(v, &o, text, len, 0, &p, &n, &err) == CAI_OK);
		for (size_t i = 0; i < n; i++)
		{
			int			too_long = 0;

			if (p[i].id == cai_wordpiece_special_id(v, CAI_WP_UNK))
			{
				/* only a word longer than max_chars_per_word may be [UNK] */
				too_long = p[i].end - p[i].start > o.max_chars_per_word;
				REQUIRE(too_long);
			}
		}
		cai_free(p);
		cai_wordpiece_vocab_free(v);
		cai_free(voc);
	}
	return 0;
}
