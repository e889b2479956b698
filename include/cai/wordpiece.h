/*
 * wordpiece.h: BERT's WordPiece tokenizer (a vocab.txt vocabulary, basic
 * tokenization, greedy longest-match-first word pieces with byte offsets
 * into the original text) and a WordPiece vocabulary trainer.
 *
 * Rules: those of Hugging Face's BertTokenizer / BertTokenizerFast
 * (transformers' BasicTokenizer + WordpieceTokenizer, tokenizers'
 * BertNormalizer + BertPreTokenizer + WordPiece), which follow Google's
 * tokenization.py:
 *  - invalid UTF-8 bytes, U+0000, U+FFFD and every code point of category C*
 *    (Cc, Cf such as U+200B/U+200D/U+FEFF/soft hyphen, Co, Cn) but tab, LF
 *    and CR are removed; they do not separate words ("a\u200Bb" is "ab");
 *  - words are separated by space, tab, LF, CR, Zs and the other White_Space
 *    code points that survive the removal (U+2028, U+2029);
 *  - each CJK ideograph of BERT's _is_chinese_char ranges (U+4E00-9FFF,
 *    3400-4DBF, 20000-2A6DF, 2A700-2B73F, 2B740-2B81F, 2B820-2CEAF,
 *    F900-FAFF, 2F800-2FA1F) is a word of its own; kana and hangul are not;
 *  - lower_case (an uncased vocabulary): each code point is decomposed (NFD),
 *    its non-spacing marks (Mn) are dropped and the rest lower-cased (full
 *    mapping, per code point: U+03A3 is always U+03C3), so "Élan" is "elan",
 *    a hangul syllable becomes its 2 or 3 jamo and U+2260 becomes "=";
 *    without lower_case the text keeps its case and accents;
 *  - every punctuation code point (ASCII 33-47, 58-64, 91-96, 123-126 and
 *    Unicode P*), judged after lower-casing, is a word of its own;
 *  - special_in_text: the vocabulary's own "[UNK]", "[CLS]", "[SEP]",
 *    "[PAD]" and "[MASK]" written literally in the text are those tokens (as
 *    the transformers tokenizers treat them), and end the word before them;
 *  - a word of more than max_chars_per_word code points (after lower-casing)
 *    is [UNK]; otherwise it is split greedily, longest match first, into
 *    pieces of the vocabulary, every piece but the first prefixed "##"; a
 *    word with a part that matches nothing is one [UNK].
 * Offsets: each piece's [start, end) is a byte range of the ORIGINAL text:
 * from the first byte of the first original code point it came from to the
 * last byte of the last one (removed code points inside a word are covered,
 * those at a piece's edge are not); [UNK] covers its whole word.  Pieces are
 * in text order and never empty; two pieces overlap only when one original
 * code point became several (the jamo of one hangul syllable split across
 * two pieces both cover the syllable).
 * Unicode 14.0 data (scripts/gen_unicode_tables.py wordpiece).
 *
 * Known differences, by design: transformers' slow BertTokenizer (4.30 and
 * later) also applies NFC before splitting words, so decomposed input ("e"
 * U+0301) in a cased vocabulary differs from it; Google's original
 * tokenization.py removes only Cc and Cf (not Co, Cn), lower-cases a final
 * sigma to U+03C2 and defaults to 200 characters per word.
 */
#ifndef CAI_WORDPIECE_H
#define CAI_WORDPIECE_H

#include "cai/common.h"

/* Limits of a vocabulary file. */
#define CAI_WP_MAX_TOKEN_BYTES 512
#define CAI_WP_MAX_VOCAB 4000000
#define CAI_WP_DEFAULT_MAX_CHARS 100

/* The special tokens (their text is "[UNK]", "[CLS]", ...). */
typedef enum cai_wp_special
{
	CAI_WP_UNK = 0,
	CAI_WP_CLS,
	CAI_WP_SEP,
	CAI_WP_PAD,
	CAI_WP_MASK,
	CAI_WP_N_SPECIAL
} cai_wp_special;

/* Bit (1 << cai_wp_special) flags: which special tokens a vocabulary must hold. */
#define CAI_WP_NEED(s) (1u << (s))
#define CAI_WP_NEED_ALL ((1u << CAI_WP_N_SPECIAL) - 1)

typedef struct cai_wordpiece_vocab cai_wordpiece_vocab;

/*
 * Load a vocab.txt: one token a line, its id the 0-based line number; lines
 * end with LF (a CR before it is dropped); a final line without LF counts.
 * Errors (*out NULL, the message names the 1-based line):
 *   CAI_ERR_FORMAT  empty file, empty line, a duplicate token (names the
 *                   first line too), invalid UTF-8, a NUL byte, a special
 *                   token in need missing;
 *   CAI_ERR_LIMIT   a line longer than CAI_WP_MAX_TOKEN_BYTES bytes, more
 *                   than CAI_WP_MAX_VOCAB lines;
 *   CAI_ERR_NOMEM, CAI_ERR_INVALID (NULL arguments).
 * need: CAI_WP_NEED(...) flags (0 checks none; [UNK] is needed by
 * tokenization, [CLS] and [SEP] by cai_wordpiece_encode).
 */
cai_status	cai_wordpiece_vocab_load(const char *data, size_t len, unsigned need,
									 cai_wordpiece_vocab **out, cai_error *err);
void		cai_wordpiece_vocab_free(cai_wordpiece_vocab *v);	/* NULL allowed */
int32_t		cai_wordpiece_vocab_size(const cai_wordpiece_vocab *v);

/* Id of a token (exact bytes), or -1. */
int32_t		cai_wordpiece_token_id(const cai_wordpiece_vocab *v, const char *tok, size_t len);

/* Text of token id (not NUL-terminated; *len set), or NULL for an id out of range. */
const char *cai_wordpiece_token(const cai_wordpiece_vocab *v, int32_t id, size_t *len);

/* Id of a special token, or -1 when the vocabulary lacks it. */
int32_t		cai_wordpiece_special_id(const cai_wordpiece_vocab *v, cai_wp_special s);

typedef struct cai_wordpiece_options
{
	bool		lower_case;		/* uncased vocabulary: lower-case and strip accents */
	bool		special_in_text;	/* literal "[MASK]" etc. in the text are those tokens */
	int32_t		max_chars_per_word; /* longer words are [UNK]; >= 1 */
} cai_wordpiece_options;

/* lower_case true, special_in_text true, max_chars_per_word 100 (as BertTokenizer). */
void		cai_wordpiece_options_default(cai_wordpiece_options *o);

typedef struct cai_wordpiece_piece
{
	int32_t		id;				/* token id */
	int32_t		type_id;		/* segment: 0, or 1 for the second text of a pair */
	int64_t		start;			/* byte offset in the original text, inclusive; -1 for added [CLS]/[SEP] */
	int64_t		end;			/* exclusive; -1 for added [CLS]/[SEP] */
} cai_wordpiece_piece;

/*
 * Tokenize text[0..len) into *pieces (cai_malloc'd, NULL when *n_pieces is
 * 0; type_id 0).  max_pieces > 0 bounds the count (CAI_ERR_LIMIT beyond it).
 * The vocabulary must hold [UNK] (CAI_ERR_INVALID otherwise).
 */
cai_status	cai_wordpiece_tokenize(const cai_wordpiece_vocab *v, const cai_wordpiece_options *o,
								   const char *text, size_t len, size_t max_pieces,
								   cai_wordpiece_piece **pieces, size_t *n_pieces, cai_error *err);

/*
 * A model input: "[CLS] a [SEP]" or, with text_b, "[CLS] a [SEP] b [SEP]"
 * (type_id 0 up to the first [SEP], 1 after it), at most max_length pieces.
 * Longer inputs are truncated at the end as transformers' "longest_first"
 * does: one piece at a time from the longer text (the second on a tie);
 * *n_truncated (may be NULL) gets the number of pieces dropped.  Offsets of
 * b's pieces are into text_b.  max_length must leave room for one piece of
 * each text (>= 3 single, >= 5 pair: CAI_ERR_INVALID otherwise); the
 * vocabulary must hold [UNK], [CLS] and [SEP].
 */
cai_status	cai_wordpiece_encode(const cai_wordpiece_vocab *v, const cai_wordpiece_options *o,
								 const char *text_a, size_t len_a,
								 const char *text_b, size_t len_b,	/* text_b NULL: one text */
								 size_t max_length,
								 cai_wordpiece_piece **pieces, size_t *n_pieces,
								 size_t *n_truncated, cai_error *err);

/*
 * WordPiece vocabulary trainer (for pretraining from scratch).
 *
 * Words come from the texts by the basic tokenization above (lower_case as
 * given; words longer than max_chars_per_word are skipped: they are [UNK]
 * whatever the vocabulary).  The vocabulary starts as the special tokens
 * [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4), then every character seen at
 * the start of a word, then "##" + every character seen inside a word (each
 * group in code point order), so every training word tokenizes without
 * [UNK].  Then it merges, one pair of adjacent symbols at a time, the pair
 * with the highest likelihood score count(ab) / (count(a) * count(b)) (the
 * WordPiece criterion as Hugging Face's course describes it; counts are
 * occurrences weighted by word frequency, over the current segmentation;
 * ties: the higher count(ab), then the lower symbol ids), among pairs seen
 * at least min_frequency times; the merged symbol ("un" + "##able" ->
 * "unable", "##a" + "##b" -> "##ab") is appended unless it already exists.
 * It stops at vocab_size tokens or when no pair qualifies.  Note: Hugging
 * Face tokenizers' WordPieceTrainer picks pairs by count alone (BPE); this
 * one does not.
 * Deterministic: the same texts in the same order give the same bytes.
 * Output: vocab.txt bytes (one token a line, LF after each) in *vocab_out
 * (cai_malloc'd, NUL-terminated; *vocab_len without the NUL).
 * Errors: CAI_ERR_INVALID (vocab_size below the special tokens plus the
 * alphabet, bad options), CAI_ERR_NOMEM, CAI_ERR_CANCELLED (progress
 * returned false; called every 64 merges, fraction = tokens / vocab_size).
 */
typedef struct cai_wordpiece_train_options
{
	int32_t		vocab_size;		/* the most tokens, specials included */
	int32_t		min_frequency;	/* the least count of a merged pair, >= 1 */
	bool		lower_case;
	int32_t		max_chars_per_word; /* 1..127 (a token stays within CAI_WP_MAX_TOKEN_BYTES) */
	cai_progress_fn progress;	/* may be NULL */
	void	   *progress_ctx;
} cai_wordpiece_train_options;

/* vocab_size 30522, min_frequency 2, lower_case true, max_chars_per_word 100. */
void		cai_wordpiece_train_options_default(cai_wordpiece_train_options *o);

cai_status	cai_wordpiece_train(const char *const *texts, const size_t *lens, size_t n,
								const cai_wordpiece_train_options *o,
								char **vocab_out, size_t *vocab_len, cai_error *err);

#endif							/* CAI_WORDPIECE_H */
