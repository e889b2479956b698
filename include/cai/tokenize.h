/*
 * tokenize.h: UTF-8 tokenizer that keeps exact offsets, and the per-token
 * features (normalization, casing, character n-grams) the models use.
 *
 * Rules (documented in README "Tokenizer"):
 *  - whitespace separates tokens and is dropped: ASCII spaces, every control
 *    character (Cc), the Unicode space separators (Zs, e.g. U+00A0, U+3000),
 *    U+2028/2029, and U+200B / U+FEFF;
 *  - a word is a run of letters, digits (Nd and No, e.g. U+00B2, U+00BD) and
 *    combining marks; these joiners stay inside a word when a letter or digit
 *    comes right before and right after them:
 *      apostrophe ' and U+2019 ("don't", "O'Neil", "90's"),
 *      hyphen - and U+2010/2011 ("e-mail", "COVID-19", "1990-2000"),
 *      period . ("U.S", "3.14", "v2.0", "example.com"),
 *      comma , between two digits only ("1,000.50"),
 *      middle dot U+00B7 and Hebrew geresh/gershayim U+05F3/05F4 between letters;
 *    so a trailing period is its own token: "U.S." -> "U.S" "." and
 *    "Mr." -> "Mr" "."; "(968" -> "(" "968"; "MW)" -> "MW" ")"; "AT&T" ->
 *    "AT" "&" "T"; "-5" -> "-" "5";
 *  - a word with digits and no letters is CAI_TOK_NUMBER, else CAI_TOK_WORD;
 *  - every other punctuation (P*) code point is its own CAI_TOK_PUNCT token and
 *    every symbol (S*, private use) its own CAI_TOK_SYMBOL token;
 *  - each CJK ideograph (U+3400-4DBF, 4E00-9FFF, F900-FAFF, 20000-3FFFF),
 *    kana (3040-30FF, 31F0-31FF, FF66-FF9F, 1B000-1B2FF), hangul syllable
 *    (AC00-D7AF), bopomofo and Yi syllable is its own CAI_TOK_CJK token, and
 *    so are the CJK letters of U+3000-303F (e.g. U+3005); CJK punctuation and
 *    fullwidth punctuation are CAI_TOK_PUNCT; fullwidth letters and digits
 *    (U+FF10-FF19, FF21-FF3A, FF41-FF5A) are word characters; hangul jamo are
 *    letters (a run of U+314B is one word);
 *  - emoji (U+1F000-1FAFF, 2600-27BF, and any other symbol) are
 *    CAI_TOK_SYMBOL: a base plus following marks (variation selectors
 *    U+FE0E/FE0F, keycap U+20E3, tags), skin-tone modifiers U+1F3FB-1F3FF and
 *    U+200D ZWJ + symbol sequences stay one token; two regional indicators
 *    (a flag) are one token; a keycap "1" U+FE0F U+20E3 is one symbol token;
 *  - combining marks (Mn, Mc, Me), format characters (Cf: U+200C ZWNJ, U+200D,
 *    soft hyphen, bidi marks, ...) stay with the preceding character, whatever
 *    token it is in;
 *  - invalid UTF-8 (bad lead byte, overlong form, surrogate, code point above
 *    U+10FFFF, truncated sequence) becomes one CAI_TOK_INVALID token per bad
 *    byte; a valid sequence is never split.
 * Offsets: text[start..end) is the token; tokens are in order, non-empty,
 * non-overlapping, and only whitespace lies between them; cstart/cend count
 * code points as cai_utf8_decode does (an invalid byte counts as one).
 * Character classes come from Unicode 14.0 data (generated range tables).
 */
#ifndef CAI_TOKENIZE_H
#define CAI_TOKENIZE_H

#include "cai/common.h"

typedef enum cai_token_kind
{
	CAI_TOK_WORD = 0,
	CAI_TOK_NUMBER,
	CAI_TOK_PUNCT,
	CAI_TOK_CJK,
	CAI_TOK_SYMBOL,				/* emoji and other symbols */
	CAI_TOK_INVALID				/* an invalid UTF-8 byte */
} cai_token_kind;

typedef struct cai_token
{
	int64_t		start;			/* byte offset, inclusive */
	int64_t		end;			/* byte offset, exclusive */
	int64_t		cstart;			/* code point offset, 0-based, inclusive */
	int64_t		cend;			/* code point offset, exclusive */
	cai_token_kind kind;
} cai_token;

/*
 * Tokenize text[0..len).  *tokens is allocated with cai_malloc (NULL when
 * *n_tokens is 0).  max_tokens > 0 bounds the count (CAI_ERR_LIMIT beyond it).
 */
cai_status	cai_tokenize(const char *text, size_t len, size_t max_tokens,
						 cai_token **tokens, size_t *n_tokens, cai_error *err);

/*
 * cai_tokenize into a buffer kept between calls: *tokens (cai_malloc'ed, or
 * NULL at first) holds *cap tokens and is grown as needed; the caller frees
 * it with cai_free.  The same tokens as cai_tokenize, without an allocation
 * per text.
 */
cai_status	cai_tokenize_reuse(const char *text, size_t len, size_t max_tokens,
							   cai_token **tokens, size_t *cap, size_t *n_tokens, cai_error *err);

/* Casing / shape classes used as features. */
typedef enum cai_casing
{
	CAI_CASE_LOWER = 0,			/* all lower-case letters */
	CAI_CASE_UPPER,				/* all upper-case letters (len > 1) */
	CAI_CASE_TITLE,				/* first upper, rest lower or non-letters */
	CAI_CASE_MIXED,				/* other letter mixes */
	CAI_CASE_NUMERIC,			/* digits and no letters ("1,000.50") */
	CAI_CASE_HAS_DIGIT,			/* letters and digits */
	CAI_CASE_PUNCT,				/* punctuation or symbols only */
	CAI_CASE_OTHER,				/* scripts without case (CJK, ...) */
	CAI_CASE_COUNT
} cai_casing;

/*
 * Marks are ignored; letters are upper (Lu, Lt), lower (Ll) or uncased (Lo,
 * Lm, CJK, ...).  No letters and no digits gives CAI_CASE_PUNCT (an empty
 * string CAI_CASE_OTHER); a single upper-case letter is CAI_CASE_TITLE; only
 * uncased letters give CAI_CASE_OTHER; uncased letters next to cased ones are
 * ignored ("A1" is CAI_CASE_HAS_DIGIT).
 */
cai_casing	cai_token_casing(const char *s, size_t len);

/*
 * Normalize a token for vocabulary lookup into out (cap bytes, NUL-terminated):
 * lower-case with Unicode's simple one-to-one lower-case mappings (all cased
 * scripts: Latin incl. Vietnamese, Greek, Cyrillic, Armenian, Georgian,
 * fullwidth Latin, ...; U+0130 becomes "i"), and when fold_digits every ASCII
 * digit becomes '0'.  Invalid bytes are copied unchanged.  Returns the length
 * written, truncated to cap - 1 at a code point boundary (0 when cap is 0).
 */
size_t		cai_token_normalize(const char *s, size_t len, bool fold_digits,
								char *out, size_t cap);

/*
 * Hashes of the character n-grams (minn..maxn code points) of "<token>",
 * where < and > mark the word boundaries, as fastText does: for each start
 * code point in order, n from minn to maxn; the lone "<" and ">" are skipped.
 * Each hash is cai_hash_bytes(UTF-8 bytes of the n-gram, CAI_NGRAM_SEED).
 * minn < 1 counts as 1; maxn is capped at CAI_NGRAM_MAXN.  Writes at most
 * cap hashes to out, returns how many were written.  "abc" with minn 2 and
 * maxn 3 gives 7: "<a" "<ab" "ab" "abc" "bc" "bc>" "c>".
 */
#define CAI_NGRAM_SEED UINT64_C(0x6e6772616d736565)
#define CAI_NGRAM_MAXN 32
size_t		cai_char_ngram_hashes(const char *s, size_t len, int minn, int maxn,
								  uint64_t *out, size_t cap);

/*
 * Decode one code point at s[0..len) (strict UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF).  Returns the bytes consumed: the
 * sequence length, or 1 with *cp = -1 for an invalid byte (0 with *cp = -1
 * when len is 0).
 */
int			cai_utf8_decode(const char *s, size_t len, int32_t *cp);

/* Encode a code point (0..U+10FFFF, not a surrogate) as UTF-8 into out; returns 1-4. */
int			cai_utf8_encode(int32_t cp, char out[4]);

/* Number of code points in s[0..len) (invalid bytes count one each). */
size_t		cai_utf8_length(const char *s, size_t len);

/* True for the code points the tokenizer treats as whitespace. */
bool		cai_unicode_is_space(int32_t cp);

/* True for the code points the tokenizer makes one token each (CAI_TOK_CJK: ideographs, kana, hangul syllables). */
bool		cai_unicode_is_cjk(int32_t cp);

/* Whether s (len bytes) is exactly one such character. */
bool		cai_token_is_one_cjk(const char *s, size_t len);

/*
 * The key of the bigram of two tokens a and b (their normalized forms), as
 * NER's character bigrams and cai_vectors_train's option char_bigrams name
 * it: joined as the word they spell when both are one CJK character
 * ("北京"), else with a space between.  Writes it to out and returns its
 * length, or 0 when it exceeds cap bytes.
 */
size_t		cai_bigram_key(const char *a, size_t alen, const char *b, size_t blen, char *out, size_t cap);

/* Unicode simple lower-case mapping (cp itself when there is none). */
int32_t		cai_unicode_tolower(int32_t cp);

#endif							/* CAI_TOKENIZE_H */
