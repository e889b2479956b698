/*
 * wordpiece_internal.h: the basic tokenization shared by the WordPiece
 * tokenizer (wordpiece.c) and its vocabulary trainer (wordpiece_train.c).
 */
#ifndef CAI_WORDPIECE_INTERNAL_H
#define CAI_WORDPIECE_INTERNAL_H

#include "cai/wordpiece.h"

/* One code point of a normalized word and the original bytes it came from. */
typedef struct wp_char
{
	int32_t		cp;
	int64_t		start;			/* original byte range [start, end) */
	int64_t		end;
} wp_char;

/*
 * A word found by wp_basic_split: chars[0..n) (n <= max_chars), or, when
 * too_long, a word of more than max_chars code points (chars then holds its
 * first max_chars + 1).  special >= 0: a special token written in the text
 * (its id; n is 0).  [start, end) is the word's original byte range.
 */
typedef struct wp_word
{
	const wp_char *chars;
	size_t		n;
	bool		too_long;
	int32_t		special;
	int64_t		start;
	int64_t		end;
} wp_word;

typedef cai_status (*wp_word_fn) (void *ctx, const wp_word *w, cai_error *err);

/*
 * Basic tokenization of text[0..len) (wordpiece.h's rules): calls fn for
 * each word in order.  v may be NULL (no special tokens recognized).  buf
 * holds max_chars + 1 wp_char.  Stops at the first status fn returns that
 * is not CAI_OK and returns it.
 */
cai_status	wp_basic_split(const cai_wordpiece_vocab *v, bool lower_case, bool special_in_text,
						   int32_t max_chars, const char *text, size_t len, wp_char *buf,
						   wp_word_fn fn, void *ctx, cai_error *err);

#endif							/* CAI_WORDPIECE_INTERNAL_H */
