/*
 * test_tokenize.c: tokenizer rules, offsets and per-token features.
 *
 * Every tokenization is checked against the offset invariants: tokens are in
 * order, non-empty, do not split a UTF-8 sequence, only whitespace lies
 * between them, and code point offsets agree with re-decoding the text.
 */
#include "cai/tokenize.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Check the offset invariants; returns true if they hold (reports the first failure). */
static bool
invariants_ok(const char *text, size_t len, const cai_token *t, size_t n)
{
	size_t		pos = 0;
	int64_t		cpos = 0;

	for (size_t i = 0; i <= n; i++)
	{
		size_t		gap_end = i < n ? (size_t) t[i].start : len;

		if (i < n && (t[i].start < (int64_t) pos || t[i].end <= t[i].start || t[i].end > (int64_t) len))
		{
			fprintf(stderr, "  token %zu: bad range [%lld, %lld) after %zu (len %zu)\n", i,
					(long long) t[i].start, (long long) t[i].end, pos, len);
			return false;
		}
		/* the gap: whitespace only, decoded in step */
		while (pos < gap_end)
		{
			int32_t		cp;
			int			nb = cai_utf8_decode(text + pos, len - pos, &cp);

			if (cp < 0 || !cai_unicode_is_space(cp))
			{
				fprintf(stderr, "  non-space U+%04X at byte %zu between tokens\n", (unsigned) cp, pos);
				return false;
			}
			pos += nb;
			cpos++;
		}
		if (pos != gap_end)
		{
			fprintf(stderr, "  token %zu starts inside a UTF-8 sequence\n", i);
			return false;
		}
		if (i == n)
			break;
		if (t[i].cstart != cpos)
		{
			fprintf(stderr, "  token %zu: cstart %lld, re-decoding gives %lld\n", i,
					(long long) t[i].cstart, (long long) cpos);
			return false;
		}
		while (pos < (size_t) t[i].end)
		{
			int32_t		cp;
			int			nb = cai_utf8_decode(text + pos, len - pos, &cp);

			if (cp < 0 && t[i].kind != CAI_TOK_INVALID)
			{
				fprintf(stderr, "  token %zu holds an invalid byte but is not CAI_TOK_INVALID\n", i);
				return false;
			}
			pos += nb;
			cpos++;
		}
		if (pos != (size_t) t[i].end || t[i].cend != cpos)
		{
			fprintf(stderr, "  token %zu: end %lld/%lld, re-decoding gives %zu/%lld\n", i,
					(long long) t[i].end, (long long) t[i].cend, pos, (long long) cpos);
			return false;
		}
		if (t[i].kind == CAI_TOK_INVALID && t[i].end - t[i].start != 1)
		{
			fprintf(stderr, "  token %zu: invalid token of %lld bytes\n", i,
					(long long) (t[i].end - t[i].start));
			return false;
		}
	}
	if ((size_t) cpos != cai_utf8_length(text, len))
	{
		fprintf(stderr, "  %lld code points, cai_utf8_length says %zu\n", (long long) cpos,
				cai_utf8_length(text, len));
		return false;
	}
	return true;
}

/*
 * Tokenize text and compare with the expected token strings (and kinds, if
 * kinds >= 0 entries are given).  exp is NULL-terminated.
 */
static void
expect_tokens(int line, const char *text, const char *const *exp, const int *kinds)
{
	cai_token  *t = NULL;
	size_t		n = 0;
	size_t		n_exp = 0;
	cai_error	err = {0};
	cai_status	st;
	bool		same = true;

	while (exp[n_exp] != NULL)
		n_exp++;
	st = cai_tokenize(text, strlen(text), 0, &t, &n, &err);
	CHECK(st == CAI_OK, "line %d: status %d %s", line, st, err.msg);
	if (st != CAI_OK)
		return;
	CHECK(invariants_ok(text, strlen(text), t, n), "line %d: invariants for \"%s\"", line, text);
	if (n != n_exp)
		same = false;
	for (size_t i = 0; same && i < n; i++)
	{
		size_t		tl = (size_t) (t[i].end - t[i].start);

		if (tl != strlen(exp[i]) || memcmp(text + t[i].start, exp[i], tl) != 0)
			same = false;
		else if (kinds != NULL && kinds[i] >= 0 && (int) t[i].kind != kinds[i])
		{
			fprintf(stderr, "  token %zu \"%s\": kind %d, want %d\n", i, exp[i], t[i].kind, kinds[i]);
			same = false;
		}
	}
	CHECK(same, "line %d: tokens of \"%s\"", line, text);
	if (!same)
	{
		fprintf(stderr, "  got %zu:", n);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " [%.*s]/%d", (int) (t[i].end - t[i].start), text + t[i].start, t[i].kind);
		fprintf(stderr, "\n  want %zu:", n_exp);
		for (size_t i = 0; i < n_exp; i++)
			fprintf(stderr, " [%s]", exp[i]);
		fputc('\n', stderr);
	}
	cai_free(t);
}

#define TOKS(text, ...) \
	expect_tokens(__LINE__, (text), (const char *const[]) {__VA_ARGS__, NULL}, NULL)
#define TOKS_K(text, kinds, ...) \
	expect_tokens(__LINE__, (text), (const char *const[]) {__VA_ARGS__, NULL}, (kinds))
#define NO_TOKS(text) \
	expect_tokens(__LINE__, (text), (const char *const[]) {NULL}, NULL)

enum
{
	W = CAI_TOK_WORD,
	N = CAI_TOK_NUMBER,
	P = CAI_TOK_PUNCT,
	C = CAI_TOK_CJK,
	S = CAI_TOK_SYMBOL,
	I = CAI_TOK_INVALID
};

static void
test_english(void)
{
	TOKS_K("EU rejects German call to boycott British lamb.",
		   ((const int[]) {W, W, W, W, W, W, W, W, P}),
		   "EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", ".");
	TOKS("Peter Blackburn", "Peter", "Blackburn");
	TOKS("BRUSSELS 1996-08-22", "BRUSSELS", "1996-08-22");
	TOKS("U.S.", "U.S", ".");
	TOKS("The U.S. economy", "The", "U.S", ".", "economy");
	TOKS("Mr. Smith, e.g. this.", "Mr", ".", "Smith", ",", "e.g", ".", "this", ".");
	TOKS("don't can't O'Neil 90's", "don't", "can't", "O'Neil", "90's");
	TOKS("don\xe2\x80\x99t", "don\xe2\x80\x99t");
	TOKS("dogs' 'tis", "dogs", "'", "'", "tis");
	TOKS_K("1,000.50 3.14 1,000, a,b", ((const int[]) {N, N, N, P, W, P, W}),
		   "1,000.50", "3.14", "1,000", ",", "a", ",", "b");
	TOKS("(968 MW) AT&T", "(", "968", "MW", ")", "AT", "&", "T");
	TOKS_K("state-of-the-art COVID-19 e-mail -5 well- a--b",
		   ((const int[]) {W, W, W, P, N, W, P, W, P, P, W}),
		   "state-of-the-art", "COVID-19", "e-mail", "-", "5", "well", "-", "a", "-", "-", "b");
	TOKS("example.com v2.0 end.", "example.com", "v2.0", "end", ".");
	TOKS("\"Hello,\" she said!?", "\"", "Hello", ",", "\"", "she", "said", "!", "?");
	TOKS("$5 +3 x=y 50%", "$", "5", "+", "3", "x", "=", "y", "50", "%");
	TOKS("snake_case #tag @user", "snake", "_", "case", "#", "tag", "@", "user");
	TOKS("a.", "a", ".");
	TOKS("...", ".", ".", ".");
	TOKS("'", "'");
	TOKS("col\xc2\xb7lecci\xc3\xb3", "col\xc2\xb7lecci\xc3\xb3");	/* Catalan middle dot */
	TOKS("1\xc2\xb7" "2", "1", "\xc2\xb7", "2");	/* middle dot joins letters only */
	TOKS("\t line one\r\nline\ttwo \n", "line", "one", "line", "two");
}

static void
test_cjk(void)
{
	const int	c7[] = {C, C, C, C, C, C, C};
	cai_token  *t = NULL;
	size_t		n = 0;
	const char *zh = "我爱北京天安门";

	TOKS_K(zh, c7, "我", "爱", "北", "京", "天", "安", "门");
	CHECK(cai_tokenize(zh, strlen(zh), 0, &t, &n, NULL) == CAI_OK && n == 7, "7 tokens");
	for (size_t i = 0; i < n; i++)
		CHECK(t[i].start == 3 * (int64_t) i && t[i].end == 3 * (int64_t) i + 3 &&
			  t[i].cstart == (int64_t) i && t[i].cend == (int64_t) i + 1, "offsets of token %zu", i);
	cai_free(t);

	TOKS("我爱北京。你好，世界！", "我", "爱", "北", "京", "。", "你", "好", "，", "世", "界", "！");
	TOKS("iPhone手机2部", "iPhone", "手", "机", "2", "部");
	/* Japanese: kanji, hiragana, katakana, prolonged sound mark, punctuation */
	TOKS_K("東京タワーへ行きました。", ((const int[]) {C, C, C, C, C, C, C, C, C, C, C, P}),
		   "東", "京", "タ", "ワ", "ー", "へ", "行", "き", "ま", "し", "た", "。");
	TOKS("カ\xe3\x82\x99", "カ\xe3\x82\x99");	/* combining dakuten stays */
	TOKS("人々", "人", "々");
	TOKS("ｶﾀｶﾅ", "ｶ", "ﾀ", "ｶ", "ﾅ");		/* halfwidth katakana */
	TOKS("𠀀𪚥", "𠀀", "𪚥");					/* supplementary ideographs */
	/* Korean */
	TOKS_K("안녕하세요 세계!", ((const int[]) {C, C, C, C, C, C, C, P}),
		   "안", "녕", "하", "세", "요", "세", "계", "!");
	TOKS_K("ㅋㅋㅋ", ((const int[]) {W}), "ㅋㅋㅋ");
	/* fullwidth letters and digits are word characters, fullwidth punctuation is not */
	TOKS_K("ＡＢＣ１２３（ｘ）", ((const int[]) {W, P, W, P}), "ＡＢＣ１２３", "（", "ｘ", "）");
	TOKS_K("１２３", ((const int[]) {N}), "１２３");
	/* ideographic space separates */
	TOKS("東京\xe3\x80\x80大阪", "東", "京", "大", "阪");
}

static void
test_scripts(void)
{
	TOKS("café naïve Zürich", "café", "naïve", "Zürich");
	TOKS("e\xcc\x81 cafe\xcc\x81s", "e\xcc\x81", "cafe\xcc\x81s");	/* combining acute */
	TOKS("\xcc\x81" "a", "\xcc\x81" "a");		/* a leading mark starts a word */
	TOKS("!\xcc\x81", "!\xcc\x81");				/* a mark stays with punctuation */
	TOKS("Москва — столица России.", "Москва", "—", "столица", "России", ".");
	TOKS("Ελληνικά κείμενα", "Ελληνικά", "κείμενα");
	TOKS("שלום עולם", "שלום", "עולם");
	TOKS("צה\xd7\xb4ל", "צה\xd7\xb4ל");		/* gershayim inside */
	TOKS("مرحبا بالعالم", "مرحبا", "بالعالم");
	TOKS("می\xe2\x80\x8cخواهم", "می\xe2\x80\x8cخواهم");	/* ZWNJ inside a Persian word */
	TOKS("नमस्ते दुनिया", "नमस्ते", "दुनिया");	/* Devanagari with vowel signs, virama */
	TOKS("१२३ ٣٤٥", "१२३", "٣٤٥");
	TOKS_K("१२३", ((const int[]) {N}), "१२३");
	TOKS("สวัสดีครับ", "สวัสดีครับ");			/* Thai: no spaces, one word */
	TOKS("Việt Nam", "Việt", "Nam");
	TOKS("H\xe2\x82\x82O km\xc2\xb2 3\xc2\xbd", "H\xe2\x82\x82O", "km\xc2\xb2", "3\xc2\xbd");
	TOKS("ex\xc2\xad" "ample", "ex\xc2\xad" "ample");	/* soft hyphen is a format char */
	TOKS("a\xc2\xa0" "b\xe2\x80\x83" "c\xe2\x80\xa8" "d\xe2\x80\x8b" "e\xef\xbb\xbf" "f",
		 "a", "b", "c", "d", "e", "f");
	TOKS("\xef\xbb\xbfhello", "hello");		/* BOM */
	TOKS("«quoted» „so“", "«", "quoted", "»", "„", "so", "“");
}

static void
test_emoji(void)
{
	TOKS_K("👍🏽", ((const int[]) {S}), "👍🏽");
	TOKS_K("👨\xe2\x80\x8d👩\xe2\x80\x8d👧\xe2\x80\x8d👦", ((const int[]) {S}),
		   "👨\xe2\x80\x8d👩\xe2\x80\x8d👧\xe2\x80\x8d👦");
	TOKS_K("🇺🇸🇫🇷", ((const int[]) {S, S}), "🇺🇸", "🇫🇷");
	TOKS("🇺🇸🇫", "🇺🇸", "🇫");
	TOKS("❤\xef\xb8\x8f❤", "❤\xef\xb8\x8f", "❤");
	TOKS("hi👋there!!", "hi", "👋", "there", "!", "!");
	TOKS("👩🏽\xe2\x80\x8d💻 ok", "👩🏽\xe2\x80\x8d💻", "ok");
	TOKS("😀😀", "😀", "😀");
	TOKS_K("1\xef\xb8\x8f\xe2\x83\xa3 #\xef\xb8\x8f\xe2\x83\xa3 5\xe2\x83\xa3",
		   ((const int[]) {S, S, S}),
		   "1\xef\xb8\x8f\xe2\x83\xa3", "#\xef\xb8\x8f\xe2\x83\xa3", "5\xe2\x83\xa3");
	/* black flag + tags (Scotland) */
	TOKS("🏴\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xb3\xf3\xa0\x81\xa3\xf3\xa0\x81\xb4\xf3\xa0\x81\xbf!",
		 "🏴\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xb3\xf3\xa0\x81\xa3\xf3\xa0\x81\xb4\xf3\xa0\x81\xbf", "!");
	TOKS("🏽", "🏽");							/* a lone modifier */
	TOKS("good\xe2\x80\x8d👍", "good\xe2\x80\x8d", "👍");
	TOKS("€100 ©2024", "€", "100", "©", "2024");
}

static void
test_invalid(void)
{
	TOKS_K("a\xff" "b", ((const int[]) {W, I, W}), "a", "\xff", "b");
	TOKS_K("\xe2\x82", ((const int[]) {I, I}), "\xe2", "\x82");	/* truncated */
	TOKS_K("\xe2\x82 x", ((const int[]) {I, I, W}), "\xe2", "\x82", "x");
	TOKS("\xc0\xaf", "\xc0", "\xaf");			/* overlong '/' */
	TOKS("\xe0\x80\xaf", "\xe0", "\x80", "\xaf");	/* overlong */
	TOKS("\xed\xa0\x80", "\xed", "\xa0", "\x80");	/* surrogate */
	TOKS("\xf4\x90\x80\x80", "\xf4", "\x90", "\x80", "\x80");	/* > U+10FFFF */
	TOKS("\xf5\xfe", "\xf5", "\xfe");
	TOKS("\x80" "abc", "\x80", "abc");
	TOKS("ab\xe2\x82\xac" "d", "ab", "\xe2\x82\xac", "d");	/* the euro sign is valid */
	TOKS("caf\xc3", "caf", "\xc3");
	TOKS("\xf0\x9f\x98", "\xf0", "\x9f", "\x98");
	TOKS("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");

	{
		int32_t		cp;

		CHECK(cai_utf8_decode("\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20AC, "euro");
		CHECK(cai_utf8_decode("\xf0\x9f\x98\x80", 4, &cp) == 4 && cp == 0x1F600, "emoji");
		CHECK(cai_utf8_decode("\xf4\x8f\xbf\xbf", 4, &cp) == 4 && cp == 0x10FFFF, "max");
		CHECK(cai_utf8_decode("\xee\x80\x80", 3, &cp) == 3 && cp == 0xE000, "private use");
		CHECK(cai_utf8_decode("\xed\x9f\xbf", 3, &cp) == 3 && cp == 0xD7FF, "before surrogates");
		CHECK(cai_utf8_decode("\xed\xa0\x80", 3, &cp) == 1 && cp == -1, "surrogate");
		CHECK(cai_utf8_decode("\xe2\x82\xac", 2, &cp) == 1 && cp == -1, "truncated by len");
		CHECK(cai_utf8_decode("a", 0, &cp) == 0 && cp == -1, "empty");
		CHECK(cai_utf8_length("h\xc3\xa9llo\xff", 7) == 6, "length");
		CHECK(cai_utf8_length("0123456789abcdef\xe2\x82\xac", 19) == 17, "length 8-byte path");
	}
}

static void
test_empty_and_limits(void)
{
	cai_token  *t = (cai_token *) 1;
	size_t		n = 99;
	cai_error	err = {0};
	const char *ws = " \t\n\r\v\f\xc2\xa0\xe3\x80\x80\xe2\x80\x8b\xef\xbb\xbf\xe2\x80\xa9\xc2\x85";

	CHECK(cai_tokenize("", 0, 0, &t, &n, &err) == CAI_OK && t == NULL && n == 0, "empty");
	t = (cai_token *) 1;
	CHECK(cai_tokenize(NULL, 0, 0, &t, &n, &err) == CAI_OK && t == NULL && n == 0, "NULL, 0");
	CHECK(cai_tokenize(NULL, 3, 0, &t, &n, &err) == CAI_ERR_INVALID, "NULL text");
	CHECK(cai_tokenize("a", 1, 0, NULL, &n, &err) == CAI_ERR_INVALID, "NULL tokens");
	CHECK(cai_tokenize(ws, strlen(ws), 0, &t, &n, &err) == CAI_OK && t == NULL && n == 0,
		  "whitespace only");
	NO_TOKS(ws);

	CHECK(cai_tokenize("a b c", 5, 3, &t, &n, &err) == CAI_OK && n == 3, "max_tokens reached");
	cai_free(t);
	t = (cai_token *) 1;
	CHECK(cai_tokenize("a b c", 5, 2, &t, &n, &err) == CAI_ERR_LIMIT && t == NULL && n == 0,
		  "max_tokens exceeded");
	CHECK(err.status == CAI_ERR_LIMIT && strstr(err.msg, "more than 2 tokens") != NULL, "msg: %s", err.msg);
	/* the limit holds past the initial capacity */
	{
		size_t		len = 3000;
		char	   *s = malloc(len);

		for (size_t i = 0; i < len; i++)
			s[i] = (i % 2) ? ' ' : 'x';
		CHECK(cai_tokenize(s, len, 1500, &t, &n, &err) == CAI_OK && n == 1500, "1500 tokens");
		cai_free(t);
		CHECK(cai_tokenize(s, len, 1499, &t, &n, &err) == CAI_ERR_LIMIT, "1499 limit");
		free(s);
	}
}

/* An allocator that fails after a budget of allocations. */
static int	alloc_budget;

static void *
failing_alloc(void *ctx, size_t size)
{
	(void) ctx;
	if (alloc_budget-- <= 0)
		return NULL;
	return malloc(size);
}

static void
plain_free(void *ctx, void *p)
{
	(void) ctx;
	free(p);
}

static void
test_nomem(void)
{
	cai_allocator a = {failing_alloc, plain_free, NULL};
	char		s[2000];
	cai_token  *t = NULL;
	size_t		n = 0;
	cai_status	st = CAI_OK;
	int			budget;

	for (size_t i = 0; i < sizeof(s); i++)
		s[i] = (i % 2) ? ' ' : 'x';
	cai_set_allocator(&a);
	for (budget = 0; budget < 20; budget++)
	{
		alloc_budget = budget;
		st = cai_tokenize(s, sizeof(s), 0, &t, &n, NULL);
		if (st == CAI_OK)
			break;
		CHECK(st == CAI_ERR_NOMEM && t == NULL, "budget %d: status %d", budget, st);
	}
	cai_set_allocator(NULL);
	CHECK(st == CAI_OK && n == 1000 && budget > 0, "succeeds with enough memory (budget %d)", budget);
	free(t);					/* allocated by failing_alloc (malloc) */
}

static void
test_big(void)
{
	static const char *parts[] = {
		"The quick brown fox, don't jump over 1,000.50 U.S. dogs! ",
		"我爱北京天安门。", "Москва — столица. ", "👍🏽 👨\xe2\x80\x8d👩\xe2\x80\x8d👧 🇺🇸 ",
		"caf\xc3\xa9 e\xcc\x81 ", "\xff\xe2\x82 ", "안녕하세요 ", "\t\n"
	};
	size_t		len = 1 << 20;
	char	   *s = malloc(len);
	size_t		pos = 0;
	size_t		k = 0;
	cai_token  *t = NULL;
	size_t		n = 0;
	clock_t		c0;
	double		secs;
	cai_status	st;

	while (pos < len)
	{
		const char *p = parts[k++ % (sizeof(parts) / sizeof(parts[0]))];
		size_t		pl = strlen(p);

		if (pl > len - pos)
			pl = len - pos;
		memcpy(s + pos, p, pl);
		pos += pl;
	}
	c0 = clock();
	st = cai_tokenize(s, len, 0, &t, &n, NULL);
	secs = (double) (clock() - c0) / CLOCKS_PER_SEC;
	CHECK(st == CAI_OK && n > 200000, "1 MB: %zu tokens", n);
	CHECK(invariants_ok(s, len, t, n), "1 MB invariants");
	CHECK(secs < 1.0, "1 MB in %.3f s", secs);
	printf("tokenize: 1 MB mixed text, %zu tokens in %.1f ms (%.0f MB/s)\n", n, secs * 1e3,
		   secs > 0 ? 1.0 / secs : 0.0);
	cai_free(t);

	/* plain ASCII */
	for (size_t i = 0; i < len; i++)
		s[i] = "The quick brown fox jumps over the lazy dog. "[i % 45];
	c0 = clock();
	st = cai_tokenize(s, len, 0, &t, &n, NULL);
	secs = (double) (clock() - c0) / CLOCKS_PER_SEC;
	CHECK(st == CAI_OK && invariants_ok(s, len, t, n), "ASCII 1 MB");
	printf("tokenize: 1 MB ASCII, %zu tokens in %.1f ms (%.0f MB/s)\n", n, secs * 1e3,
		   secs > 0 ? 1.0 / secs : 0.0);
	cai_free(t);

	/* one huge word, and random bytes */
	memset(s, 'a', len);
	CHECK(cai_tokenize(s, len, 0, &t, &n, NULL) == CAI_OK && n == 1 && t[0].end == (int64_t) len,
		  "one 1 MB word");
	cai_free(t);
	{
		uint64_t	x = 12345;

		for (size_t i = 0; i < len; i++)
		{
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			s[i] = (char) (x >> 56);
		}
		st = cai_tokenize(s, len, 0, &t, &n, NULL);
		CHECK(st == CAI_OK && invariants_ok(s, len, t, n), "random bytes");
		cai_free(t);
	}
	free(s);
}

static void
test_casing(void)
{
	static const struct
	{
		const char *s;
		cai_casing	want;
	}			cases[] = {
		{"hello", CAI_CASE_LOWER}, {"HELLO", CAI_CASE_UPPER}, {"Hello", CAI_CASE_TITLE},
		{"A", CAI_CASE_TITLE}, {"a", CAI_CASE_LOWER}, {"iPhone", CAI_CASE_MIXED},
		{"McDonald", CAI_CASE_MIXED}, {"hELLO", CAI_CASE_MIXED}, {"U.S", CAI_CASE_UPPER},
		{"don't", CAI_CASE_LOWER}, {"O'Neil", CAI_CASE_MIXED}, {"1,000.50", CAI_CASE_NUMERIC},
		{"42", CAI_CASE_NUMERIC}, {"abc123", CAI_CASE_HAS_DIGIT}, {"COVID-19", CAI_CASE_HAS_DIGIT},
		{",", CAI_CASE_PUNCT}, {"...", CAI_CASE_PUNCT}, {"👍🏽", CAI_CASE_PUNCT}, {"$", CAI_CASE_PUNCT},
		{"北京", CAI_CASE_OTHER}, {"שלום", CAI_CASE_OTHER}, {"", CAI_CASE_OTHER},
		{"Émile", CAI_CASE_TITLE}, {"ÉCOLE", CAI_CASE_UPPER}, {"straße", CAI_CASE_LOWER},
		{"Москва", CAI_CASE_TITLE}, {"МОСКВА", CAI_CASE_UPPER}, {"Αθήνα", CAI_CASE_TITLE},
		{"Việt", CAI_CASE_TITLE}, {"VIỆT", CAI_CASE_UPPER}, {"E\xcc\x81mile", CAI_CASE_TITLE},
		{"ＡＢＣ", CAI_CASE_UPPER}, {"１２３", CAI_CASE_NUMERIC}, {"१२३", CAI_CASE_NUMERIC},
		{"\xf0\x9d\x90\x87\xf0\x9d\x90\x9e", CAI_CASE_TITLE},	/* math bold H e */
		{"\xc7\x85" "a", CAI_CASE_TITLE},	/* titlecase digraph Dz */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		cai_casing	got = cai_token_casing(cases[i].s, strlen(cases[i].s));

		CHECK(got == cases[i].want, "casing of \"%s\": %d, want %d", cases[i].s, got, cases[i].want);
	}
	CHECK(cai_token_casing(NULL, 3) == CAI_CASE_OTHER, "NULL");
}

static void
test_normalize(void)
{
	static const struct
	{
		const char *s;
		bool		fold;
		const char *want;
	}			cases[] = {
		{"Hello", false, "hello"}, {"ÉCOLE", false, "école"}, {"МОСКВА", false, "москва"},
		{"ΑΘΗΝΑ", false, "αθηνα"}, {"VIỆT NAM", false, "việt nam"}, {"ƠƯ", false, "ơư"},
		{"İstanbul", false, "istanbul"}, {"ŸĀŁŽ", false, "ÿāłž"}, {"ԱՐՄ", false, "արմ"},
		{"ＡＢＣ", false, "ａｂｃ"}, {"A1b22", true, "a0b00"}, {"A1b22", false, "a1b22"},
		{"北京", false, "北京"}, {"a\xff" "B", false, "a\xff" "b"}, {"ǅ", false, "ǆ"},
		{"Ⱥ", false, "ⱥ"}, {"ẞ", false, "ß"}, {"", false, ""},
	};
	char		out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t		n = cai_token_normalize(cases[i].s, strlen(cases[i].s), cases[i].fold, out, sizeof(out));

		CHECK(n == strlen(cases[i].want) && strcmp(out, cases[i].want) == 0,
			  "normalize \"%s\": \"%s\" (%zu), want \"%s\"", cases[i].s, out, n, cases[i].want);
	}
	/* truncation at a code point boundary */
	CHECK(cai_token_normalize("ééé", 6, false, out, 4) == 2 && strcmp(out, "é") == 0, "truncated: %s", out);
	CHECK(cai_token_normalize("ABC", 3, false, out, 3) == 2 && strcmp(out, "ab") == 0, "truncated ASCII");
	CHECK(cai_token_normalize("ABC", 3, false, out, 1) == 0 && out[0] == '\0', "cap 1");
	out[0] = 'x';
	CHECK(cai_token_normalize("ABC", 3, false, out, 0) == 0 && out[0] == 'x', "cap 0 writes nothing");

	CHECK(cai_unicode_tolower('Q') == 'q' && cai_unicode_tolower(0x0416) == 0x0436 &&
		  cai_unicode_tolower(0x1EA0) == 0x1EA1 && cai_unicode_tolower(0x10400) == 0x10428 &&
		  cai_unicode_tolower(0x4E00) == 0x4E00 && cai_unicode_tolower(0x00DF) == 0x00DF &&
		  cai_unicode_tolower(-1) == -1, "tolower");
	CHECK(cai_unicode_is_space(' ') && cai_unicode_is_space(0x3000) && cai_unicode_is_space(0x200B) &&
		  cai_unicode_is_space(0xFEFF) && cai_unicode_is_space(0x00A0) && cai_unicode_is_space(0x2029) &&
		  !cai_unicode_is_space('a') && !cai_unicode_is_space(0x200D) && !cai_unicode_is_space(-1) &&
		  !cai_unicode_is_space(0x110000), "is_space");
}

static void
test_ngrams(void)
{
	uint64_t	h[256];
	uint64_t	h2[256];
	static const char *grams3[] = {"<a", "<ab", "ab", "abc", "bc", "bc>", "c>"};
	size_t		n;
	bool		same = true;

	n = cai_char_ngram_hashes("abc", 3, 2, 3, h, 256);
	CHECK(n == 7, "abc 2..3: %zu", n);
	for (size_t i = 0; i < 7 && i < n; i++)
		if (h[i] != cai_hash_bytes(grams3[i], strlen(grams3[i]), CAI_NGRAM_SEED))
			same = false;
	CHECK(same, "abc n-gram hashes are those of <a <ab ab abc bc bc> c>");
	CHECK(cai_char_ngram_hashes("abc", 3, 2, 3, h2, 256) == 7 && memcmp(h, h2, 7 * sizeof(uint64_t)) == 0,
		  "deterministic");
	CHECK(cai_char_ngram_hashes("abc", 3, 1, 3, h, 256) == 10, "abc 1..3 skips lone < and >");
	CHECK(cai_char_ngram_hashes("abc", 3, 0, 3, h2, 256) == 10 && memcmp(h, h2, 10 * sizeof(uint64_t)) == 0,
		  "minn 0 counts as 1");
	CHECK(cai_char_ngram_hashes("abc", 3, 5, 5, h, 256) == 1 &&
		  h[0] == cai_hash_bytes("<abc>", 5, CAI_NGRAM_SEED), "whole <abc>");
	CHECK(cai_char_ngram_hashes("abc", 3, 6, 6, h, 256) == 0, "n longer than the word");
	CHECK(cai_char_ngram_hashes("abc", 3, 3, 2, h, 256) == 0, "maxn < minn");
	CHECK(cai_char_ngram_hashes("abc", 3, 2, 3, h, 4) == 4, "cap");
	CHECK(cai_char_ngram_hashes("abc", 3, 2, 3, NULL, 4) == 0, "NULL out");
	CHECK(cai_char_ngram_hashes("", 0, 2, 3, h, 256) == 1 && h[0] == cai_hash_bytes("<>", 2, CAI_NGRAM_SEED),
		  "empty word gives <>");

	/* code points, not bytes */
	n = cai_char_ngram_hashes("été", strlen("été"), 2, 2, h, 256);
	CHECK(n == 4 && h[0] == cai_hash_bytes("<é", 3, CAI_NGRAM_SEED) &&
		  h[1] == cai_hash_bytes("ét", 3, CAI_NGRAM_SEED) && h[3] == cai_hash_bytes("é>", 3, CAI_NGRAM_SEED),
		  "été 2-grams");
	n = cai_char_ngram_hashes("北京", 6, 1, 4, h, 256);
	CHECK(n == 2 + 3 + 2 + 1, "北京 1..4: %zu", n);

	/* a long token: counts for minn 3..maxn 6 are sum over n of (L + 2 - n + 1) */
	{
		size_t		L = 1000;
		char	   *s = malloc(L);
		uint64_t   *hh = malloc(8 * L * sizeof(uint64_t));
		size_t		want = 0;

		for (size_t i = 0; i < L; i++)
			s[i] = (char) ('a' + i % 26);
		for (size_t k = 3; k <= 6; k++)
			want += L + 2 - k + 1;
		n = cai_char_ngram_hashes(s, L, 3, 6, hh, 8 * L);
		CHECK(n == want, "long token: %zu, want %zu", n, want);
		CHECK(cai_char_ngram_hashes(s, L, CAI_NGRAM_MAXN, CAI_NGRAM_MAXN + 10, hh, 8 * L) ==
			  L + 2 - CAI_NGRAM_MAXN + 1, "maxn capped at CAI_NGRAM_MAXN");
		free(hh);
		free(s);
	}
}

/* cai_tokenize_reuse: the same tokens as cai_tokenize, one buffer for many texts */
static void
test_reuse(void)
{
	const char *texts[] = {"", "Hello, world!", "张伟在北京 visited Paris.", "a", "   ",
	"one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"};
	cai_token  *buf = NULL;
	size_t		cap = 0;
	size_t		n;
	cai_error	err;

	for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++)
	{
		cai_token  *want;
		size_t		nw;

		CHECK(cai_tokenize(texts[k], strlen(texts[k]), 0, &want, &nw, &err) == CAI_OK, "%s", err.msg);
		CHECK(cai_tokenize_reuse(texts[k], strlen(texts[k]), 0, &buf, &cap, &n, &err) == CAI_OK, "%s", err.msg);
		CHECK(n == nw && (n == 0 || memcmp(buf, want, n * sizeof(cai_token)) == 0), "text %zu: %zu vs %zu tokens", k, n, nw);
		CHECK(n <= cap, "cap %zu", cap);
		cai_free(want);
	}
	CHECK(cap >= 17, "the buffer grew to the longest text (%zu)", cap);
	/* max_tokens holds even when the buffer has room for more */
	CHECK(cai_tokenize_reuse(texts[5], strlen(texts[5]), 3, &buf, &cap, &n, &err) == CAI_ERR_LIMIT && n == 0,
		  "max_tokens with a large buffer");
	CHECK(cai_tokenize_reuse(texts[1], strlen(texts[1]), 4, &buf, &cap, &n, &err) == CAI_OK && n == 4, "4 tokens");
	CHECK(cai_tokenize_reuse(NULL, 3, 0, &buf, &cap, &n, &err) == CAI_ERR_INVALID, "NULL text");
	CHECK(cai_tokenize_reuse("x", 1, 0, NULL, &cap, &n, &err) == CAI_ERR_INVALID, "NULL buffer pointer");
	cai_free(buf);
}

int
main(void)
{
	test_reuse();
	test_english();
	test_cjk();
	test_scripts();
	test_emoji();
	test_invalid();
	test_empty_and_limits();
	test_nomem();
	test_big();
	test_casing();
	test_normalize();
	test_ngrams();
	return check_summary("test_tokenize");
}
