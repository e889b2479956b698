/*
 * tokenize.c: UTF-8 tokenizer with exact byte and code point offsets, and
 * the per-token features (casing, normalization, character n-grams).
 *
 * The rules are in tokenize.h.  Classification is table driven: a 128-entry
 * table for ASCII and a sorted range table for the rest of Unicode (one
 * uint32 per range: start << 8 | class), searched with a one-range cache since
 * running text stays within a script.  The tables between the GENERATED
 * markers come from Unicode 14.0 data (Python 3.11's unicodedata) by a small
 * script, gen_unicode.py, with these rules, first match wins:
 *   U+200B, U+FEFF -> SPACE; U+200D -> ZWJ; 1F3FB-1F3FF -> EMOD;
 *   1F1E6-1F1FF -> RI; Cc, Zs, Zl, Zp -> SPACE; 1F000-1FAFF, 2600-27BF ->
 *   SYMBOL; M* -> MARK; 3040-30FF except P* -> CJK; L*, N* in 3000-303F ->
 *   CJK; the CJK ranges of tokenize.h: P* -> PUNCT, else CJK; Cf -> MARK;
 *   Lu, Ll, Lt -> CLETTER; Lo, Lm, Nl -> ULETTER; Nd, No -> DIGIT;
 *   P* -> PUNCT; S*, Co -> SYMBOL; Cn takes the class of the code point
 *   before it.
 * lower_ranges holds every one-to-one lower-case mapping (plus U+0130 -> i);
 * upper_nomap the Lu/Lt letters without one (math alphanumerics, ...).
 *
 * cai_tokenize runs per row over large tables: it allocates the token array
 * once (grown by doubling), never per token, and scans ASCII letters and
 * digits in a tight loop.
 */
#include "cai/tokenize.h"

#include <string.h>

/* Character classes. */
enum
{
	CC_SPACE = 0,				/* separator, dropped */
	CC_ULETTER,					/* uncased letter (Lo, Lm, Nl) */
	CC_CLETTER,					/* cased letter (Lu, Ll, Lt) */
	CC_DIGIT,					/* Nd, No */
	CC_MARK,					/* Mn, Mc, Me, Cf: attaches to what precedes */
	CC_ZWJ,						/* U+200D: a mark, and joins emoji */
	CC_CJK,						/* ideograph, kana, hangul syllable: one per token */
	CC_PUNCT,					/* P* */
	CC_SYMBOL,					/* S*, Co, emoji */
	CC_EMOD,					/* emoji skin-tone modifier */
	CC_RI,						/* regional indicator (flags) */
	CC_INVALID					/* invalid UTF-8 byte (not in the tables) */
};

struct lower_range
{
	int32_t		lo;
	int32_t		hi;
	int32_t		delta;
	int32_t		stride;			/* 1: every code point, 2: every other one */
};

/* BEGIN GENERATED TABLES (gen_unicode.py, Unicode 14.0.0) */

/* Class of every ASCII code point. */
static const uint8_t ascii_class[128] = {
	CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, /* 0x00 */
	CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, /* 0x08 */
	CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, /* 0x10 */
	CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, CC_SPACE, /* 0x18 */
	CC_SPACE, CC_PUNCT, CC_PUNCT, CC_PUNCT, CC_SYMBOL, CC_PUNCT, CC_PUNCT, CC_PUNCT, /* 0x20 */
	CC_PUNCT, CC_PUNCT, CC_PUNCT, CC_SYMBOL, CC_PUNCT, CC_PUNCT, CC_PUNCT, CC_PUNCT, /* 0x28 */
	CC_DIGIT, CC_DIGIT, CC_DIGIT, CC_DIGIT, CC_DIGIT, CC_DIGIT, CC_DIGIT, CC_DIGIT, /* 0x30 */
	CC_DIGIT, CC_DIGIT, CC_PUNCT, CC_PUNCT, CC_SYMBOL, CC_SYMBOL, CC_SYMBOL, CC_PUNCT, /* 0x38 */
	CC_PUNCT, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x40 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x48 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x50 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_PUNCT, CC_PUNCT, CC_PUNCT, CC_SYMBOL, CC_PUNCT, /* 0x58 */
	CC_SYMBOL, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x60 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x68 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_CLETTER, /* 0x70 */
	CC_CLETTER, CC_CLETTER, CC_CLETTER, CC_PUNCT, CC_SYMBOL, CC_PUNCT, CC_SYMBOL, CC_SPACE, /* 0x78 */
};

/* Class of every code point >= U+0080: entry i covers [start_i, start_{i+1}). */
#define R(cp, c) (((uint32_t) (cp) << 8) | CC_##c)
static const uint32_t uclass_ranges[1142] = {
	R(0x0080, SPACE), R(0x00A1, PUNCT), R(0x00A2, SYMBOL), R(0x00A7, PUNCT), R(0x00A8, SYMBOL),
	R(0x00AA, ULETTER), R(0x00AB, PUNCT), R(0x00AC, SYMBOL), R(0x00AD, MARK), R(0x00AE, SYMBOL),
	R(0x00B2, DIGIT), R(0x00B4, SYMBOL), R(0x00B5, CLETTER), R(0x00B6, PUNCT), R(0x00B8, SYMBOL),
	R(0x00B9, DIGIT), R(0x00BA, ULETTER), R(0x00BB, PUNCT), R(0x00BC, DIGIT), R(0x00BF, PUNCT),
	R(0x00C0, CLETTER), R(0x00D7, SYMBOL), R(0x00D8, CLETTER), R(0x00F7, SYMBOL),
	R(0x00F8, CLETTER), R(0x01BB, ULETTER), R(0x01BC, CLETTER), R(0x01C0, ULETTER),
	R(0x01C4, CLETTER), R(0x0294, ULETTER), R(0x0295, CLETTER), R(0x02B0, ULETTER),
	R(0x02C2, SYMBOL), R(0x02C6, ULETTER), R(0x02D2, SYMBOL), R(0x02E0, ULETTER),
	R(0x02E5, SYMBOL), R(0x02EC, ULETTER), R(0x02ED, SYMBOL), R(0x02EE, ULETTER),
	R(0x02EF, SYMBOL), R(0x0300, MARK), R(0x0370, CLETTER), R(0x0374, ULETTER), R(0x0375, SYMBOL),
	R(0x0376, CLETTER), R(0x037A, ULETTER), R(0x037B, CLETTER), R(0x037E, PUNCT),
	R(0x037F, CLETTER), R(0x0384, SYMBOL), R(0x0386, CLETTER), R(0x0387, PUNCT),
	R(0x0388, CLETTER), R(0x03F6, SYMBOL), R(0x03F7, CLETTER), R(0x0482, SYMBOL), R(0x0483, MARK),
	R(0x048A, CLETTER), R(0x0559, ULETTER), R(0x055A, PUNCT), R(0x0560, CLETTER), R(0x0589, PUNCT),
	R(0x058D, SYMBOL), R(0x0591, MARK), R(0x05BE, PUNCT), R(0x05BF, MARK), R(0x05C0, PUNCT),
	R(0x05C1, MARK), R(0x05C3, PUNCT), R(0x05C4, MARK), R(0x05C6, PUNCT), R(0x05C7, MARK),
	R(0x05D0, ULETTER), R(0x05F3, PUNCT), R(0x0600, MARK), R(0x0606, SYMBOL), R(0x0609, PUNCT),
	R(0x060B, SYMBOL), R(0x060C, PUNCT), R(0x060E, SYMBOL), R(0x0610, MARK), R(0x061B, PUNCT),
	R(0x061C, MARK), R(0x061D, PUNCT), R(0x0620, ULETTER), R(0x064B, MARK), R(0x0660, DIGIT),
	R(0x066A, PUNCT), R(0x066E, ULETTER), R(0x0670, MARK), R(0x0671, ULETTER), R(0x06D4, PUNCT),
	R(0x06D5, ULETTER), R(0x06D6, MARK), R(0x06DE, SYMBOL), R(0x06DF, MARK), R(0x06E5, ULETTER),
	R(0x06E7, MARK), R(0x06E9, SYMBOL), R(0x06EA, MARK), R(0x06EE, ULETTER), R(0x06F0, DIGIT),
	R(0x06FA, ULETTER), R(0x06FD, SYMBOL), R(0x06FF, ULETTER), R(0x0700, PUNCT), R(0x070F, MARK),
	R(0x0710, ULETTER), R(0x0711, MARK), R(0x0712, ULETTER), R(0x0730, MARK), R(0x074D, ULETTER),
	R(0x07A6, MARK), R(0x07B1, ULETTER), R(0x07C0, DIGIT), R(0x07CA, ULETTER), R(0x07EB, MARK),
	R(0x07F4, ULETTER), R(0x07F6, SYMBOL), R(0x07F7, PUNCT), R(0x07FA, ULETTER), R(0x07FD, MARK),
	R(0x07FE, SYMBOL), R(0x0800, ULETTER), R(0x0816, MARK), R(0x081A, ULETTER), R(0x081B, MARK),
	R(0x0824, ULETTER), R(0x0825, MARK), R(0x0828, ULETTER), R(0x0829, MARK), R(0x0830, PUNCT),
	R(0x0840, ULETTER), R(0x0859, MARK), R(0x085E, PUNCT), R(0x0860, ULETTER), R(0x0888, SYMBOL),
	R(0x0889, ULETTER), R(0x0890, MARK), R(0x08A0, ULETTER), R(0x08CA, MARK), R(0x0904, ULETTER),
	R(0x093A, MARK), R(0x093D, ULETTER), R(0x093E, MARK), R(0x0950, ULETTER), R(0x0951, MARK),
	R(0x0958, ULETTER), R(0x0962, MARK), R(0x0964, PUNCT), R(0x0966, DIGIT), R(0x0970, PUNCT),
	R(0x0971, ULETTER), R(0x0981, MARK), R(0x0985, ULETTER), R(0x09BC, MARK), R(0x09BD, ULETTER),
	R(0x09BE, MARK), R(0x09CE, ULETTER), R(0x09D7, MARK), R(0x09DC, ULETTER), R(0x09E2, MARK),
	R(0x09E6, DIGIT), R(0x09F0, ULETTER), R(0x09F2, SYMBOL), R(0x09F4, DIGIT), R(0x09FA, SYMBOL),
	R(0x09FC, ULETTER), R(0x09FD, PUNCT), R(0x09FE, MARK), R(0x0A05, ULETTER), R(0x0A3C, MARK),
	R(0x0A59, ULETTER), R(0x0A66, DIGIT), R(0x0A70, MARK), R(0x0A72, ULETTER), R(0x0A75, MARK),
	R(0x0A76, PUNCT), R(0x0A81, MARK), R(0x0A85, ULETTER), R(0x0ABC, MARK), R(0x0ABD, ULETTER),
	R(0x0ABE, MARK), R(0x0AD0, ULETTER), R(0x0AE2, MARK), R(0x0AE6, DIGIT), R(0x0AF0, PUNCT),
	R(0x0AF1, SYMBOL), R(0x0AF9, ULETTER), R(0x0AFA, MARK), R(0x0B05, ULETTER), R(0x0B3C, MARK),
	R(0x0B3D, ULETTER), R(0x0B3E, MARK), R(0x0B5C, ULETTER), R(0x0B62, MARK), R(0x0B66, DIGIT),
	R(0x0B70, SYMBOL), R(0x0B71, ULETTER), R(0x0B72, DIGIT), R(0x0B82, MARK), R(0x0B83, ULETTER),
	R(0x0BBE, MARK), R(0x0BD0, ULETTER), R(0x0BD7, MARK), R(0x0BE6, DIGIT), R(0x0BF3, SYMBOL),
	R(0x0C00, MARK), R(0x0C05, ULETTER), R(0x0C3C, MARK), R(0x0C3D, ULETTER), R(0x0C3E, MARK),
	R(0x0C58, ULETTER), R(0x0C62, MARK), R(0x0C66, DIGIT), R(0x0C77, PUNCT), R(0x0C78, DIGIT),
	R(0x0C7F, SYMBOL), R(0x0C80, ULETTER), R(0x0C81, MARK), R(0x0C84, PUNCT), R(0x0C85, ULETTER),
	R(0x0CBC, MARK), R(0x0CBD, ULETTER), R(0x0CBE, MARK), R(0x0CDD, ULETTER), R(0x0CE2, MARK),
	R(0x0CE6, DIGIT), R(0x0CF1, ULETTER), R(0x0D00, MARK), R(0x0D04, ULETTER), R(0x0D3B, MARK),
	R(0x0D3D, ULETTER), R(0x0D3E, MARK), R(0x0D4E, ULETTER), R(0x0D4F, SYMBOL), R(0x0D54, ULETTER),
	R(0x0D57, MARK), R(0x0D58, DIGIT), R(0x0D5F, ULETTER), R(0x0D62, MARK), R(0x0D66, DIGIT),
	R(0x0D79, SYMBOL), R(0x0D7A, ULETTER), R(0x0D81, MARK), R(0x0D85, ULETTER), R(0x0DCA, MARK),
	R(0x0DE6, DIGIT), R(0x0DF2, MARK), R(0x0DF4, PUNCT), R(0x0E01, ULETTER), R(0x0E31, MARK),
	R(0x0E32, ULETTER), R(0x0E34, MARK), R(0x0E3F, SYMBOL), R(0x0E40, ULETTER), R(0x0E47, MARK),
	R(0x0E4F, PUNCT), R(0x0E50, DIGIT), R(0x0E5A, PUNCT), R(0x0E81, ULETTER), R(0x0EB1, MARK),
	R(0x0EB2, ULETTER), R(0x0EB4, MARK), R(0x0EBD, ULETTER), R(0x0EC8, MARK), R(0x0ED0, DIGIT),
	R(0x0EDC, ULETTER), R(0x0F01, SYMBOL), R(0x0F04, PUNCT), R(0x0F13, SYMBOL), R(0x0F14, PUNCT),
	R(0x0F15, SYMBOL), R(0x0F18, MARK), R(0x0F1A, SYMBOL), R(0x0F20, DIGIT), R(0x0F34, SYMBOL),
	R(0x0F35, MARK), R(0x0F36, SYMBOL), R(0x0F37, MARK), R(0x0F38, SYMBOL), R(0x0F39, MARK),
	R(0x0F3A, PUNCT), R(0x0F3E, MARK), R(0x0F40, ULETTER), R(0x0F71, MARK), R(0x0F85, PUNCT),
	R(0x0F86, MARK), R(0x0F88, ULETTER), R(0x0F8D, MARK), R(0x0FBE, SYMBOL), R(0x0FC6, MARK),
	R(0x0FC7, SYMBOL), R(0x0FD0, PUNCT), R(0x0FD5, SYMBOL), R(0x0FD9, PUNCT), R(0x1000, ULETTER),
	R(0x102B, MARK), R(0x103F, ULETTER), R(0x1040, DIGIT), R(0x104A, PUNCT), R(0x1050, ULETTER),
	R(0x1056, MARK), R(0x105A, ULETTER), R(0x105E, MARK), R(0x1061, ULETTER), R(0x1062, MARK),
	R(0x1065, ULETTER), R(0x1067, MARK), R(0x106E, ULETTER), R(0x1071, MARK), R(0x1075, ULETTER),
	R(0x1082, MARK), R(0x108E, ULETTER), R(0x108F, MARK), R(0x1090, DIGIT), R(0x109A, MARK),
	R(0x109E, SYMBOL), R(0x10A0, CLETTER), R(0x10FB, PUNCT), R(0x10FC, ULETTER),
	R(0x10FD, CLETTER), R(0x1100, ULETTER), R(0x135D, MARK), R(0x1360, PUNCT), R(0x1369, DIGIT),
	R(0x1380, ULETTER), R(0x1390, SYMBOL), R(0x13A0, CLETTER), R(0x1400, PUNCT),
	R(0x1401, ULETTER), R(0x166D, SYMBOL), R(0x166E, PUNCT), R(0x166F, ULETTER), R(0x1680, SPACE),
	R(0x1681, ULETTER), R(0x169B, PUNCT), R(0x16A0, ULETTER), R(0x16EB, PUNCT), R(0x16EE, ULETTER),
	R(0x1712, MARK), R(0x171F, ULETTER), R(0x1732, MARK), R(0x1735, PUNCT), R(0x1740, ULETTER),
	R(0x1752, MARK), R(0x1760, ULETTER), R(0x1772, MARK), R(0x1780, ULETTER), R(0x17B4, MARK),
	R(0x17D4, PUNCT), R(0x17D7, ULETTER), R(0x17D8, PUNCT), R(0x17DB, SYMBOL), R(0x17DC, ULETTER),
	R(0x17DD, MARK), R(0x17E0, DIGIT), R(0x1800, PUNCT), R(0x180B, MARK), R(0x1810, DIGIT),
	R(0x1820, ULETTER), R(0x1885, MARK), R(0x1887, ULETTER), R(0x18A9, MARK), R(0x18AA, ULETTER),
	R(0x1920, MARK), R(0x1940, SYMBOL), R(0x1944, PUNCT), R(0x1946, DIGIT), R(0x1950, ULETTER),
	R(0x19D0, DIGIT), R(0x19DE, SYMBOL), R(0x1A00, ULETTER), R(0x1A17, MARK), R(0x1A1E, PUNCT),
	R(0x1A20, ULETTER), R(0x1A55, MARK), R(0x1A80, DIGIT), R(0x1AA0, PUNCT), R(0x1AA7, ULETTER),
	R(0x1AA8, PUNCT), R(0x1AB0, MARK), R(0x1B05, ULETTER), R(0x1B34, MARK), R(0x1B45, ULETTER),
	R(0x1B50, DIGIT), R(0x1B5A, PUNCT), R(0x1B61, SYMBOL), R(0x1B6B, MARK), R(0x1B74, SYMBOL),
	R(0x1B7D, PUNCT), R(0x1B80, MARK), R(0x1B83, ULETTER), R(0x1BA1, MARK), R(0x1BAE, ULETTER),
	R(0x1BB0, DIGIT), R(0x1BBA, ULETTER), R(0x1BE6, MARK), R(0x1BFC, PUNCT), R(0x1C00, ULETTER),
	R(0x1C24, MARK), R(0x1C3B, PUNCT), R(0x1C40, DIGIT), R(0x1C4D, ULETTER), R(0x1C50, DIGIT),
	R(0x1C5A, ULETTER), R(0x1C7E, PUNCT), R(0x1C80, CLETTER), R(0x1CC0, PUNCT), R(0x1CD0, MARK),
	R(0x1CD3, PUNCT), R(0x1CD4, MARK), R(0x1CE9, ULETTER), R(0x1CED, MARK), R(0x1CEE, ULETTER),
	R(0x1CF4, MARK), R(0x1CF5, ULETTER), R(0x1CF7, MARK), R(0x1CFA, ULETTER), R(0x1D00, CLETTER),
	R(0x1D2C, ULETTER), R(0x1D6B, CLETTER), R(0x1D78, ULETTER), R(0x1D79, CLETTER),
	R(0x1D9B, ULETTER), R(0x1DC0, MARK), R(0x1E00, CLETTER), R(0x1FBD, SYMBOL), R(0x1FBE, CLETTER),
	R(0x1FBF, SYMBOL), R(0x1FC2, CLETTER), R(0x1FCD, SYMBOL), R(0x1FD0, CLETTER),
	R(0x1FDD, SYMBOL), R(0x1FE0, CLETTER), R(0x1FED, SYMBOL), R(0x1FF2, CLETTER),
	R(0x1FFD, SYMBOL), R(0x2000, SPACE), R(0x200C, MARK), R(0x200D, ZWJ), R(0x200E, MARK),
	R(0x2010, PUNCT), R(0x2028, SPACE), R(0x202A, MARK), R(0x202F, SPACE), R(0x2030, PUNCT),
	R(0x2044, SYMBOL), R(0x2045, PUNCT), R(0x2052, SYMBOL), R(0x2053, PUNCT), R(0x205F, SPACE),
	R(0x2060, MARK), R(0x2070, DIGIT), R(0x2071, ULETTER), R(0x2074, DIGIT), R(0x207A, SYMBOL),
	R(0x207D, PUNCT), R(0x207F, ULETTER), R(0x2080, DIGIT), R(0x208A, SYMBOL), R(0x208D, PUNCT),
	R(0x2090, ULETTER), R(0x20A0, SYMBOL), R(0x20D0, MARK), R(0x2100, SYMBOL), R(0x2102, CLETTER),
	R(0x2103, SYMBOL), R(0x2107, CLETTER), R(0x2108, SYMBOL), R(0x210A, CLETTER),
	R(0x2114, SYMBOL), R(0x2115, CLETTER), R(0x2116, SYMBOL), R(0x2119, CLETTER),
	R(0x211E, SYMBOL), R(0x2124, CLETTER), R(0x2125, SYMBOL), R(0x2126, CLETTER),
	R(0x2127, SYMBOL), R(0x2128, CLETTER), R(0x2129, SYMBOL), R(0x212A, CLETTER),
	R(0x212E, SYMBOL), R(0x212F, CLETTER), R(0x2135, ULETTER), R(0x2139, CLETTER),
	R(0x213A, SYMBOL), R(0x213C, CLETTER), R(0x2140, SYMBOL), R(0x2145, CLETTER),
	R(0x214A, SYMBOL), R(0x214E, CLETTER), R(0x214F, SYMBOL), R(0x2150, DIGIT), R(0x2160, ULETTER),
	R(0x2183, CLETTER), R(0x2185, ULETTER), R(0x2189, DIGIT), R(0x218A, SYMBOL), R(0x2308, PUNCT),
	R(0x230C, SYMBOL), R(0x2329, PUNCT), R(0x232B, SYMBOL), R(0x2460, DIGIT), R(0x249C, SYMBOL),
	R(0x24EA, DIGIT), R(0x2500, SYMBOL), R(0x27C5, PUNCT), R(0x27C7, SYMBOL), R(0x27E6, PUNCT),
	R(0x27F0, SYMBOL), R(0x2983, PUNCT), R(0x2999, SYMBOL), R(0x29D8, PUNCT), R(0x29DC, SYMBOL),
	R(0x29FC, PUNCT), R(0x29FE, SYMBOL), R(0x2C00, CLETTER), R(0x2C7C, ULETTER),
	R(0x2C7E, CLETTER), R(0x2CE5, SYMBOL), R(0x2CEB, CLETTER), R(0x2CEF, MARK), R(0x2CF2, CLETTER),
	R(0x2CF9, PUNCT), R(0x2CFD, DIGIT), R(0x2CFE, PUNCT), R(0x2D00, CLETTER), R(0x2D30, ULETTER),
	R(0x2D70, PUNCT), R(0x2D7F, MARK), R(0x2D80, ULETTER), R(0x2DE0, MARK), R(0x2E00, PUNCT),
	R(0x2E2F, ULETTER), R(0x2E30, PUNCT), R(0x2E50, SYMBOL), R(0x2E52, PUNCT), R(0x2E80, SYMBOL),
	R(0x3000, SPACE), R(0x3001, PUNCT), R(0x3004, SYMBOL), R(0x3005, CJK), R(0x3008, PUNCT),
	R(0x3012, SYMBOL), R(0x3014, PUNCT), R(0x3020, SYMBOL), R(0x3021, CJK), R(0x302A, MARK),
	R(0x3030, PUNCT), R(0x3031, CJK), R(0x3036, SYMBOL), R(0x3038, CJK), R(0x303D, PUNCT),
	R(0x303E, SYMBOL), R(0x3040, CJK), R(0x3099, MARK), R(0x309B, CJK), R(0x30A0, PUNCT),
	R(0x30A1, CJK), R(0x30FB, PUNCT), R(0x30FC, CJK), R(0x3131, ULETTER), R(0x3190, SYMBOL),
	R(0x3192, DIGIT), R(0x3196, SYMBOL), R(0x31A0, CJK), R(0x31C0, SYMBOL), R(0x31F0, CJK),
	R(0x3200, SYMBOL), R(0x3220, DIGIT), R(0x322A, SYMBOL), R(0x3248, DIGIT), R(0x3250, SYMBOL),
	R(0x3251, DIGIT), R(0x3260, SYMBOL), R(0x3280, DIGIT), R(0x328A, SYMBOL), R(0x32B1, DIGIT),
	R(0x32C0, SYMBOL), R(0x3400, CJK), R(0x4DC0, SYMBOL), R(0x4E00, CJK), R(0xA4D0, ULETTER),
	R(0xA4FE, PUNCT), R(0xA500, ULETTER), R(0xA60D, PUNCT), R(0xA610, ULETTER), R(0xA620, DIGIT),
	R(0xA62A, ULETTER), R(0xA640, CLETTER), R(0xA66E, ULETTER), R(0xA66F, MARK), R(0xA673, PUNCT),
	R(0xA674, MARK), R(0xA67E, PUNCT), R(0xA67F, ULETTER), R(0xA680, CLETTER), R(0xA69C, ULETTER),
	R(0xA69E, MARK), R(0xA6A0, ULETTER), R(0xA6F0, MARK), R(0xA6F2, PUNCT), R(0xA700, SYMBOL),
	R(0xA717, ULETTER), R(0xA720, SYMBOL), R(0xA722, CLETTER), R(0xA770, ULETTER),
	R(0xA771, CLETTER), R(0xA788, ULETTER), R(0xA789, SYMBOL), R(0xA78B, CLETTER),
	R(0xA78F, ULETTER), R(0xA790, CLETTER), R(0xA7F2, ULETTER), R(0xA7F5, CLETTER),
	R(0xA7F7, ULETTER), R(0xA7FA, CLETTER), R(0xA7FB, ULETTER), R(0xA802, MARK),
	R(0xA803, ULETTER), R(0xA806, MARK), R(0xA807, ULETTER), R(0xA80B, MARK), R(0xA80C, ULETTER),
	R(0xA823, MARK), R(0xA828, SYMBOL), R(0xA82C, MARK), R(0xA830, DIGIT), R(0xA836, SYMBOL),
	R(0xA840, ULETTER), R(0xA874, PUNCT), R(0xA880, MARK), R(0xA882, ULETTER), R(0xA8B4, MARK),
	R(0xA8CE, PUNCT), R(0xA8D0, DIGIT), R(0xA8E0, MARK), R(0xA8F2, ULETTER), R(0xA8F8, PUNCT),
	R(0xA8FB, ULETTER), R(0xA8FC, PUNCT), R(0xA8FD, ULETTER), R(0xA8FF, MARK), R(0xA900, DIGIT),
	R(0xA90A, ULETTER), R(0xA926, MARK), R(0xA92E, PUNCT), R(0xA930, ULETTER), R(0xA947, MARK),
	R(0xA95F, PUNCT), R(0xA960, ULETTER), R(0xA980, MARK), R(0xA984, ULETTER), R(0xA9B3, MARK),
	R(0xA9C1, PUNCT), R(0xA9CF, ULETTER), R(0xA9D0, DIGIT), R(0xA9DE, PUNCT), R(0xA9E0, ULETTER),
	R(0xA9E5, MARK), R(0xA9E6, ULETTER), R(0xA9F0, DIGIT), R(0xA9FA, ULETTER), R(0xAA29, MARK),
	R(0xAA40, ULETTER), R(0xAA43, MARK), R(0xAA44, ULETTER), R(0xAA4C, MARK), R(0xAA50, DIGIT),
	R(0xAA5C, PUNCT), R(0xAA60, ULETTER), R(0xAA77, SYMBOL), R(0xAA7A, ULETTER), R(0xAA7B, MARK),
	R(0xAA7E, ULETTER), R(0xAAB0, MARK), R(0xAAB1, ULETTER), R(0xAAB2, MARK), R(0xAAB5, ULETTER),
	R(0xAAB7, MARK), R(0xAAB9, ULETTER), R(0xAABE, MARK), R(0xAAC0, ULETTER), R(0xAAC1, MARK),
	R(0xAAC2, ULETTER), R(0xAADE, PUNCT), R(0xAAE0, ULETTER), R(0xAAEB, MARK), R(0xAAF0, PUNCT),
	R(0xAAF2, ULETTER), R(0xAAF5, MARK), R(0xAB01, ULETTER), R(0xAB30, CLETTER), R(0xAB5B, SYMBOL),
	R(0xAB5C, ULETTER), R(0xAB60, CLETTER), R(0xAB69, ULETTER), R(0xAB6A, SYMBOL),
	R(0xAB70, CLETTER), R(0xABC0, ULETTER), R(0xABE3, MARK), R(0xABEB, PUNCT), R(0xABEC, MARK),
	R(0xABF0, DIGIT), R(0xAC00, CJK), R(0xD7B0, ULETTER), R(0xD800, SYMBOL), R(0xF900, CJK),
	R(0xFB00, CLETTER), R(0xFB1D, ULETTER), R(0xFB1E, MARK), R(0xFB1F, ULETTER), R(0xFB29, SYMBOL),
	R(0xFB2A, ULETTER), R(0xFBB2, SYMBOL), R(0xFBD3, ULETTER), R(0xFD3E, PUNCT), R(0xFD40, SYMBOL),
	R(0xFD50, ULETTER), R(0xFDCF, SYMBOL), R(0xFDF0, ULETTER), R(0xFDFC, SYMBOL), R(0xFE00, MARK),
	R(0xFE10, PUNCT), R(0xFE20, MARK), R(0xFE30, PUNCT), R(0xFE62, SYMBOL), R(0xFE63, PUNCT),
	R(0xFE64, SYMBOL), R(0xFE68, PUNCT), R(0xFE69, SYMBOL), R(0xFE6A, PUNCT), R(0xFE70, ULETTER),
	R(0xFEFF, SPACE), R(0xFF01, PUNCT), R(0xFF04, SYMBOL), R(0xFF05, PUNCT), R(0xFF0B, SYMBOL),
	R(0xFF0C, PUNCT), R(0xFF10, DIGIT), R(0xFF1A, PUNCT), R(0xFF1C, SYMBOL), R(0xFF1F, PUNCT),
	R(0xFF21, CLETTER), R(0xFF3B, PUNCT), R(0xFF3E, SYMBOL), R(0xFF3F, PUNCT), R(0xFF40, SYMBOL),
	R(0xFF41, CLETTER), R(0xFF5B, PUNCT), R(0xFF5C, SYMBOL), R(0xFF5D, PUNCT), R(0xFF5E, SYMBOL),
	R(0xFF5F, PUNCT), R(0xFF66, CJK), R(0xFFA0, ULETTER), R(0xFFE0, SYMBOL), R(0xFFF9, MARK),
	R(0xFFFC, SYMBOL), R(0x10000, ULETTER), R(0x10100, PUNCT), R(0x10107, DIGIT),
	R(0x10137, SYMBOL), R(0x10140, ULETTER), R(0x10175, DIGIT), R(0x10179, SYMBOL),
	R(0x1018A, DIGIT), R(0x1018C, SYMBOL), R(0x101FD, MARK), R(0x10280, ULETTER), R(0x102E0, MARK),
	R(0x102E1, DIGIT), R(0x10300, ULETTER), R(0x10320, DIGIT), R(0x1032D, ULETTER),
	R(0x10376, MARK), R(0x10380, ULETTER), R(0x1039F, PUNCT), R(0x103A0, ULETTER),
	R(0x103D0, PUNCT), R(0x103D1, ULETTER), R(0x10400, CLETTER), R(0x10450, ULETTER),
	R(0x104A0, DIGIT), R(0x104B0, CLETTER), R(0x10500, ULETTER), R(0x1056F, PUNCT),
	R(0x10570, CLETTER), R(0x10600, ULETTER), R(0x10857, PUNCT), R(0x10858, DIGIT),
	R(0x10860, ULETTER), R(0x10877, SYMBOL), R(0x10879, DIGIT), R(0x10880, ULETTER),
	R(0x108A7, DIGIT), R(0x108E0, ULETTER), R(0x108FB, DIGIT), R(0x10900, ULETTER),
	R(0x10916, DIGIT), R(0x1091F, PUNCT), R(0x10920, ULETTER), R(0x1093F, PUNCT),
	R(0x10980, ULETTER), R(0x109BC, DIGIT), R(0x109BE, ULETTER), R(0x109C0, DIGIT),
	R(0x10A00, ULETTER), R(0x10A01, MARK), R(0x10A10, ULETTER), R(0x10A38, MARK),
	R(0x10A40, DIGIT), R(0x10A50, PUNCT), R(0x10A60, ULETTER), R(0x10A7D, DIGIT),
	R(0x10A7F, PUNCT), R(0x10A80, ULETTER), R(0x10A9D, DIGIT), R(0x10AC0, ULETTER),
	R(0x10AC8, SYMBOL), R(0x10AC9, ULETTER), R(0x10AE5, MARK), R(0x10AEB, DIGIT),
	R(0x10AF0, PUNCT), R(0x10B00, ULETTER), R(0x10B39, PUNCT), R(0x10B40, ULETTER),
	R(0x10B58, DIGIT), R(0x10B60, ULETTER), R(0x10B78, DIGIT), R(0x10B80, ULETTER),
	R(0x10B99, PUNCT), R(0x10BA9, DIGIT), R(0x10C00, ULETTER), R(0x10C80, CLETTER),
	R(0x10CFA, DIGIT), R(0x10D00, ULETTER), R(0x10D24, MARK), R(0x10D30, DIGIT),
	R(0x10E80, ULETTER), R(0x10EAB, MARK), R(0x10EAD, PUNCT), R(0x10EB0, ULETTER),
	R(0x10F1D, DIGIT), R(0x10F27, ULETTER), R(0x10F46, MARK), R(0x10F51, DIGIT), R(0x10F55, PUNCT),
	R(0x10F70, ULETTER), R(0x10F82, MARK), R(0x10F86, PUNCT), R(0x10FB0, ULETTER),
	R(0x10FC5, DIGIT), R(0x10FE0, ULETTER), R(0x11000, MARK), R(0x11003, ULETTER),
	R(0x11038, MARK), R(0x11047, PUNCT), R(0x11052, DIGIT), R(0x11070, MARK), R(0x11071, ULETTER),
	R(0x11073, MARK), R(0x11075, ULETTER), R(0x1107F, MARK), R(0x11083, ULETTER), R(0x110B0, MARK),
	R(0x110BB, PUNCT), R(0x110BD, MARK), R(0x110BE, PUNCT), R(0x110C2, MARK), R(0x110D0, ULETTER),
	R(0x110F0, DIGIT), R(0x11100, MARK), R(0x11103, ULETTER), R(0x11127, MARK), R(0x11136, DIGIT),
	R(0x11140, PUNCT), R(0x11144, ULETTER), R(0x11145, MARK), R(0x11147, ULETTER),
	R(0x11173, MARK), R(0x11174, PUNCT), R(0x11176, ULETTER), R(0x11180, MARK),
	R(0x11183, ULETTER), R(0x111B3, MARK), R(0x111C1, ULETTER), R(0x111C5, PUNCT),
	R(0x111C9, MARK), R(0x111CD, PUNCT), R(0x111CE, MARK), R(0x111D0, DIGIT), R(0x111DA, ULETTER),
	R(0x111DB, PUNCT), R(0x111DC, ULETTER), R(0x111DD, PUNCT), R(0x111E1, DIGIT),
	R(0x11200, ULETTER), R(0x1122C, MARK), R(0x11238, PUNCT), R(0x1123E, MARK),
	R(0x11280, ULETTER), R(0x112A9, PUNCT), R(0x112B0, ULETTER), R(0x112DF, MARK),
	R(0x112F0, DIGIT), R(0x11300, MARK), R(0x11305, ULETTER), R(0x1133B, MARK),
	R(0x1133D, ULETTER), R(0x1133E, MARK), R(0x11350, ULETTER), R(0x11357, MARK),
	R(0x1135D, ULETTER), R(0x11362, MARK), R(0x11400, ULETTER), R(0x11435, MARK),
	R(0x11447, ULETTER), R(0x1144B, PUNCT), R(0x11450, DIGIT), R(0x1145A, PUNCT), R(0x1145E, MARK),
	R(0x1145F, ULETTER), R(0x114B0, MARK), R(0x114C4, ULETTER), R(0x114C6, PUNCT),
	R(0x114C7, ULETTER), R(0x114D0, DIGIT), R(0x11580, ULETTER), R(0x115AF, MARK),
	R(0x115C1, PUNCT), R(0x115D8, ULETTER), R(0x115DC, MARK), R(0x11600, ULETTER),
	R(0x11630, MARK), R(0x11641, PUNCT), R(0x11644, ULETTER), R(0x11650, DIGIT), R(0x11660, PUNCT),
	R(0x11680, ULETTER), R(0x116AB, MARK), R(0x116B8, ULETTER), R(0x116B9, PUNCT),
	R(0x116C0, DIGIT), R(0x11700, ULETTER), R(0x1171D, MARK), R(0x11730, DIGIT), R(0x1173C, PUNCT),
	R(0x1173F, SYMBOL), R(0x11740, ULETTER), R(0x1182C, MARK), R(0x1183B, PUNCT),
	R(0x118A0, CLETTER), R(0x118E0, DIGIT), R(0x118FF, ULETTER), R(0x11930, MARK),
	R(0x1193F, ULETTER), R(0x11940, MARK), R(0x11941, ULETTER), R(0x11942, MARK),
	R(0x11944, PUNCT), R(0x11950, DIGIT), R(0x119A0, ULETTER), R(0x119D1, MARK),
	R(0x119E1, ULETTER), R(0x119E2, PUNCT), R(0x119E3, ULETTER), R(0x119E4, MARK),
	R(0x11A00, ULETTER), R(0x11A01, MARK), R(0x11A0B, ULETTER), R(0x11A33, MARK),
	R(0x11A3A, ULETTER), R(0x11A3B, MARK), R(0x11A3F, PUNCT), R(0x11A47, MARK),
	R(0x11A50, ULETTER), R(0x11A51, MARK), R(0x11A5C, ULETTER), R(0x11A8A, MARK),
	R(0x11A9A, PUNCT), R(0x11A9D, ULETTER), R(0x11A9E, PUNCT), R(0x11AB0, ULETTER),
	R(0x11C2F, MARK), R(0x11C40, ULETTER), R(0x11C41, PUNCT), R(0x11C50, DIGIT), R(0x11C70, PUNCT),
	R(0x11C72, ULETTER), R(0x11C92, MARK), R(0x11D00, ULETTER), R(0x11D31, MARK),
	R(0x11D46, ULETTER), R(0x11D47, MARK), R(0x11D50, DIGIT), R(0x11D60, ULETTER),
	R(0x11D8A, MARK), R(0x11D98, ULETTER), R(0x11DA0, DIGIT), R(0x11EE0, ULETTER),
	R(0x11EF3, MARK), R(0x11EF7, PUNCT), R(0x11FB0, ULETTER), R(0x11FC0, DIGIT),
	R(0x11FD5, SYMBOL), R(0x11FFF, PUNCT), R(0x12000, ULETTER), R(0x12470, PUNCT),
	R(0x12480, ULETTER), R(0x12FF1, PUNCT), R(0x13000, ULETTER), R(0x13430, MARK),
	R(0x14400, ULETTER), R(0x16A60, DIGIT), R(0x16A6E, PUNCT), R(0x16A70, ULETTER),
	R(0x16AC0, DIGIT), R(0x16AD0, ULETTER), R(0x16AF0, MARK), R(0x16AF5, PUNCT),
	R(0x16B00, ULETTER), R(0x16B30, MARK), R(0x16B37, PUNCT), R(0x16B3C, SYMBOL),
	R(0x16B40, ULETTER), R(0x16B44, PUNCT), R(0x16B45, SYMBOL), R(0x16B50, DIGIT),
	R(0x16B63, ULETTER), R(0x16E40, CLETTER), R(0x16E80, DIGIT), R(0x16E97, PUNCT),
	R(0x16F00, ULETTER), R(0x16F4F, MARK), R(0x16F50, ULETTER), R(0x16F51, MARK),
	R(0x16F93, ULETTER), R(0x16FE2, PUNCT), R(0x16FE3, ULETTER), R(0x16FE4, MARK), R(0x17000, CJK),
	R(0x18B00, ULETTER), R(0x18D00, CJK), R(0x1AFF0, ULETTER), R(0x1B000, CJK),
	R(0x1BC00, ULETTER), R(0x1BC9C, SYMBOL), R(0x1BC9D, MARK), R(0x1BC9F, PUNCT), R(0x1BCA0, MARK),
	R(0x1CF50, SYMBOL), R(0x1D165, MARK), R(0x1D16A, SYMBOL), R(0x1D16D, MARK), R(0x1D183, SYMBOL),
	R(0x1D185, MARK), R(0x1D18C, SYMBOL), R(0x1D1AA, MARK), R(0x1D1AE, SYMBOL), R(0x1D242, MARK),
	R(0x1D245, SYMBOL), R(0x1D2E0, DIGIT), R(0x1D300, SYMBOL), R(0x1D360, DIGIT),
	R(0x1D400, CLETTER), R(0x1D6C1, SYMBOL), R(0x1D6C2, CLETTER), R(0x1D6DB, SYMBOL),
	R(0x1D6DC, CLETTER), R(0x1D6FB, SYMBOL), R(0x1D6FC, CLETTER), R(0x1D715, SYMBOL),
	R(0x1D716, CLETTER), R(0x1D735, SYMBOL), R(0x1D736, CLETTER), R(0x1D74F, SYMBOL),
	R(0x1D750, CLETTER), R(0x1D76F, SYMBOL), R(0x1D770, CLETTER), R(0x1D789, SYMBOL),
	R(0x1D78A, CLETTER), R(0x1D7A9, SYMBOL), R(0x1D7AA, CLETTER), R(0x1D7C3, SYMBOL),
	R(0x1D7C4, CLETTER), R(0x1D7CE, DIGIT), R(0x1D800, SYMBOL), R(0x1DA00, MARK),
	R(0x1DA37, SYMBOL), R(0x1DA3B, MARK), R(0x1DA6D, SYMBOL), R(0x1DA75, MARK), R(0x1DA76, SYMBOL),
	R(0x1DA84, MARK), R(0x1DA85, SYMBOL), R(0x1DA87, PUNCT), R(0x1DA9B, MARK), R(0x1DF00, CLETTER),
	R(0x1DF0A, ULETTER), R(0x1DF0B, CLETTER), R(0x1E000, MARK), R(0x1E100, ULETTER),
	R(0x1E130, MARK), R(0x1E137, ULETTER), R(0x1E140, DIGIT), R(0x1E14E, ULETTER),
	R(0x1E14F, SYMBOL), R(0x1E290, ULETTER), R(0x1E2AE, MARK), R(0x1E2C0, ULETTER),
	R(0x1E2EC, MARK), R(0x1E2F0, DIGIT), R(0x1E2FF, SYMBOL), R(0x1E7E0, ULETTER),
	R(0x1E8C7, DIGIT), R(0x1E8D0, MARK), R(0x1E900, CLETTER), R(0x1E944, MARK),
	R(0x1E94B, ULETTER), R(0x1E950, DIGIT), R(0x1E95E, PUNCT), R(0x1EC71, DIGIT),
	R(0x1ECAC, SYMBOL), R(0x1ECAD, DIGIT), R(0x1ECB0, SYMBOL), R(0x1ECB1, DIGIT),
	R(0x1ED2E, SYMBOL), R(0x1ED2F, DIGIT), R(0x1EE00, ULETTER), R(0x1EEF0, SYMBOL), R(0x1F1E6, RI),
	R(0x1F200, SYMBOL), R(0x1F3FB, EMOD), R(0x1F400, SYMBOL), R(0x1FBF0, DIGIT), R(0x20000, CJK),
	R(0xE0001, MARK), R(0xF0000, SYMBOL),
};
#undef R

/* Simple lower-case mappings: cp in [lo, hi] (every stride-th) maps to cp + delta. */
static const struct lower_range lower_ranges[180] = {
	{0x0041, 0x005A, 32, 1}, {0x00C0, 0x00D6, 32, 1}, {0x00D8, 0x00DE, 32, 1},
	{0x0100, 0x012E, 1, 2}, {0x0130, 0x0130, -199, 1}, {0x0132, 0x0136, 1, 2},
	{0x0139, 0x0147, 1, 2}, {0x014A, 0x0176, 1, 2}, {0x0178, 0x0178, -121, 1},
	{0x0179, 0x017D, 1, 2}, {0x0181, 0x0181, 210, 1}, {0x0182, 0x0184, 1, 2},
	{0x0186, 0x0186, 206, 1}, {0x0187, 0x0187, 1, 1}, {0x0189, 0x018A, 205, 1},
	{0x018B, 0x018B, 1, 1}, {0x018E, 0x018E, 79, 1}, {0x018F, 0x018F, 202, 1},
	{0x0190, 0x0190, 203, 1}, {0x0191, 0x0191, 1, 1}, {0x0193, 0x0193, 205, 1},
	{0x0194, 0x0194, 207, 1}, {0x0196, 0x0196, 211, 1}, {0x0197, 0x0197, 209, 1},
	{0x0198, 0x0198, 1, 1}, {0x019C, 0x019C, 211, 1}, {0x019D, 0x019D, 213, 1},
	{0x019F, 0x019F, 214, 1}, {0x01A0, 0x01A4, 1, 2}, {0x01A6, 0x01A6, 218, 1},
	{0x01A7, 0x01A7, 1, 1}, {0x01A9, 0x01A9, 218, 1}, {0x01AC, 0x01AC, 1, 1},
	{0x01AE, 0x01AE, 218, 1}, {0x01AF, 0x01AF, 1, 1}, {0x01B1, 0x01B2, 217, 1},
	{0x01B3, 0x01B5, 1, 2}, {0x01B7, 0x01B7, 219, 1}, {0x01B8, 0x01B8, 1, 1},
	{0x01BC, 0x01BC, 1, 1}, {0x01C4, 0x01C4, 2, 1}, {0x01C5, 0x01C5, 1, 1}, {0x01C7, 0x01C7, 2, 1},
	{0x01C8, 0x01C8, 1, 1}, {0x01CA, 0x01CA, 2, 1}, {0x01CB, 0x01DB, 1, 2}, {0x01DE, 0x01EE, 1, 2},
	{0x01F1, 0x01F1, 2, 1}, {0x01F2, 0x01F4, 1, 2}, {0x01F6, 0x01F6, -97, 1},
	{0x01F7, 0x01F7, -56, 1}, {0x01F8, 0x021E, 1, 2}, {0x0220, 0x0220, -130, 1},
	{0x0222, 0x0232, 1, 2}, {0x023A, 0x023A, 10795, 1}, {0x023B, 0x023B, 1, 1},
	{0x023D, 0x023D, -163, 1}, {0x023E, 0x023E, 10792, 1}, {0x0241, 0x0241, 1, 1},
	{0x0243, 0x0243, -195, 1}, {0x0244, 0x0244, 69, 1}, {0x0245, 0x0245, 71, 1},
	{0x0246, 0x024E, 1, 2}, {0x0370, 0x0372, 1, 2}, {0x0376, 0x0376, 1, 1},
	{0x037F, 0x037F, 116, 1}, {0x0386, 0x0386, 38, 1}, {0x0388, 0x038A, 37, 1},
	{0x038C, 0x038C, 64, 1}, {0x038E, 0x038F, 63, 1}, {0x0391, 0x03A1, 32, 1},
	{0x03A3, 0x03AB, 32, 1}, {0x03CF, 0x03CF, 8, 1}, {0x03D8, 0x03EE, 1, 2},
	{0x03F4, 0x03F4, -60, 1}, {0x03F7, 0x03F7, 1, 1}, {0x03F9, 0x03F9, -7, 1},
	{0x03FA, 0x03FA, 1, 1}, {0x03FD, 0x03FF, -130, 1}, {0x0400, 0x040F, 80, 1},
	{0x0410, 0x042F, 32, 1}, {0x0460, 0x0480, 1, 2}, {0x048A, 0x04BE, 1, 2},
	{0x04C0, 0x04C0, 15, 1}, {0x04C1, 0x04CD, 1, 2}, {0x04D0, 0x052E, 1, 2},
	{0x0531, 0x0556, 48, 1}, {0x10A0, 0x10C5, 7264, 1}, {0x10C7, 0x10C7, 7264, 1},
	{0x10CD, 0x10CD, 7264, 1}, {0x13A0, 0x13EF, 38864, 1}, {0x13F0, 0x13F5, 8, 1},
	{0x1C90, 0x1CBA, -3008, 1}, {0x1CBD, 0x1CBF, -3008, 1}, {0x1E00, 0x1E94, 1, 2},
	{0x1E9E, 0x1E9E, -7615, 1}, {0x1EA0, 0x1EFE, 1, 2}, {0x1F08, 0x1F0F, -8, 1},
	{0x1F18, 0x1F1D, -8, 1}, {0x1F28, 0x1F2F, -8, 1}, {0x1F38, 0x1F3F, -8, 1},
	{0x1F48, 0x1F4D, -8, 1}, {0x1F59, 0x1F5F, -8, 2}, {0x1F68, 0x1F6F, -8, 1},
	{0x1F88, 0x1F8F, -8, 1}, {0x1F98, 0x1F9F, -8, 1}, {0x1FA8, 0x1FAF, -8, 1},
	{0x1FB8, 0x1FB9, -8, 1}, {0x1FBA, 0x1FBB, -74, 1}, {0x1FBC, 0x1FBC, -9, 1},
	{0x1FC8, 0x1FCB, -86, 1}, {0x1FCC, 0x1FCC, -9, 1}, {0x1FD8, 0x1FD9, -8, 1},
	{0x1FDA, 0x1FDB, -100, 1}, {0x1FE8, 0x1FE9, -8, 1}, {0x1FEA, 0x1FEB, -112, 1},
	{0x1FEC, 0x1FEC, -7, 1}, {0x1FF8, 0x1FF9, -128, 1}, {0x1FFA, 0x1FFB, -126, 1},
	{0x1FFC, 0x1FFC, -9, 1}, {0x2126, 0x2126, -7517, 1}, {0x212A, 0x212A, -8383, 1},
	{0x212B, 0x212B, -8262, 1}, {0x2132, 0x2132, 28, 1}, {0x2183, 0x2183, 1, 1},
	{0x2C00, 0x2C2F, 48, 1}, {0x2C60, 0x2C60, 1, 1}, {0x2C62, 0x2C62, -10743, 1},
	{0x2C63, 0x2C63, -3814, 1}, {0x2C64, 0x2C64, -10727, 1}, {0x2C67, 0x2C6B, 1, 2},
	{0x2C6D, 0x2C6D, -10780, 1}, {0x2C6E, 0x2C6E, -10749, 1}, {0x2C6F, 0x2C6F, -10783, 1},
	{0x2C70, 0x2C70, -10782, 1}, {0x2C72, 0x2C72, 1, 1}, {0x2C75, 0x2C75, 1, 1},
	{0x2C7E, 0x2C7F, -10815, 1}, {0x2C80, 0x2CE2, 1, 2}, {0x2CEB, 0x2CED, 1, 2},
	{0x2CF2, 0x2CF2, 1, 1}, {0xA640, 0xA66C, 1, 2}, {0xA680, 0xA69A, 1, 2}, {0xA722, 0xA72E, 1, 2},
	{0xA732, 0xA76E, 1, 2}, {0xA779, 0xA77B, 1, 2}, {0xA77D, 0xA77D, -35332, 1},
	{0xA77E, 0xA786, 1, 2}, {0xA78B, 0xA78B, 1, 1}, {0xA78D, 0xA78D, -42280, 1},
	{0xA790, 0xA792, 1, 2}, {0xA796, 0xA7A8, 1, 2}, {0xA7AA, 0xA7AA, -42308, 1},
	{0xA7AB, 0xA7AB, -42319, 1}, {0xA7AC, 0xA7AC, -42315, 1}, {0xA7AD, 0xA7AD, -42305, 1},
	{0xA7AE, 0xA7AE, -42308, 1}, {0xA7B0, 0xA7B0, -42258, 1}, {0xA7B1, 0xA7B1, -42282, 1},
	{0xA7B2, 0xA7B2, -42261, 1}, {0xA7B3, 0xA7B3, 928, 1}, {0xA7B4, 0xA7C2, 1, 2},
	{0xA7C4, 0xA7C4, -48, 1}, {0xA7C5, 0xA7C5, -42307, 1}, {0xA7C6, 0xA7C6, -35384, 1},
	{0xA7C7, 0xA7C9, 1, 2}, {0xA7D0, 0xA7D0, 1, 1}, {0xA7D6, 0xA7D8, 1, 2}, {0xA7F5, 0xA7F5, 1, 1},
	{0xFF21, 0xFF3A, 32, 1}, {0x10400, 0x10427, 40, 1}, {0x104B0, 0x104D3, 40, 1},
	{0x10570, 0x1057A, 39, 1}, {0x1057C, 0x1058A, 39, 1}, {0x1058C, 0x10592, 39, 1},
	{0x10594, 0x10595, 39, 1}, {0x10C80, 0x10CB2, 64, 1}, {0x118A0, 0x118BF, 32, 1},
	{0x16E40, 0x16E5F, 32, 1}, {0x1E900, 0x1E921, 34, 1},
};

/* Upper-case (Lu, Lt) letters without a lower-case mapping. */
static const uint32_t upper_nomap[45][2] = {
	{0x03D2, 0x03D4}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210B, 0x210D}, {0x2110, 0x2112},
	{0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2128, 0x2128}, {0x212C, 0x212D},
	{0x2130, 0x2131}, {0x2133, 0x2133}, {0x213E, 0x213F}, {0x2145, 0x2145}, {0x1D400, 0x1D419},
	{0x1D434, 0x1D44D}, {0x1D468, 0x1D481}, {0x1D49C, 0x1D49C}, {0x1D49E, 0x1D49F},
	{0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B5},
	{0x1D4D0, 0x1D4E9}, {0x1D504, 0x1D505}, {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514},
	{0x1D516, 0x1D51C}, {0x1D538, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544},
	{0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D56C, 0x1D585}, {0x1D5A0, 0x1D5B9},
	{0x1D5D4, 0x1D5ED}, {0x1D608, 0x1D621}, {0x1D63C, 0x1D655}, {0x1D670, 0x1D689},
	{0x1D6A8, 0x1D6C0}, {0x1D6E2, 0x1D6FA}, {0x1D71C, 0x1D734}, {0x1D756, 0x1D76E},
	{0x1D790, 0x1D7A8}, {0x1D7CA, 0x1D7CA},
};
/* END GENERATED TABLES */

#define N_UCLASS_RANGES (sizeof(uclass_ranges) / sizeof(uclass_ranges[0]))
#define N_LOWER_RANGES (sizeof(lower_ranges) / sizeof(lower_ranges[0]))
#define N_UPPER_NOMAP (sizeof(upper_nomap) / sizeof(upper_nomap[0]))

/* ---------------------------------------------------------------------
 * UTF-8
 * --------------------------------------------------------------------- */

/* Strict decoder; see cai_utf8_decode. */
static inline int
utf8_decode(const unsigned char *p, size_t len, int32_t *cp)
{
	unsigned int c = p[0];
	unsigned int lo = 0x80;
	unsigned int hi = 0xBF;

	if (c < 0x80)
	{
		*cp = (int32_t) c;
		return 1;
	}
	if (c < 0xC2)				/* continuation byte, or overlong C0/C1 */
		goto bad;
	if (c < 0xE0)
	{
		if (len < 2 || (p[1] & 0xC0) != 0x80)
			goto bad;
		*cp = (int32_t) (((c & 0x1F) << 6) | (p[1] & 0x3F));
		return 2;
	}
	if (c < 0xF0)
	{
		if (c == 0xE0)
			lo = 0xA0;			/* overlong */
		else if (c == 0xED)
			hi = 0x9F;			/* surrogates */
		if (len < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
			goto bad;
		*cp = (int32_t) (((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F));
		return 3;
	}
	if (c < 0xF5)
	{
		if (c == 0xF0)
			lo = 0x90;			/* overlong */
		else if (c == 0xF4)
			hi = 0x8F;			/* above U+10FFFF */
		if (len < 4 || p[1] < lo || p[1] > hi ||
			(p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
			goto bad;
		*cp = (int32_t) (((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) |
						 ((p[2] & 0x3F) << 6) | (p[3] & 0x3F));
		return 4;
	}
bad:
	*cp = -1;
	return 1;
}

/* Encode a valid code point into out (4 bytes); returns the length. */
static inline int
utf8_encode(int32_t cp, unsigned char *out)
{
	if (cp < 0x80)
	{
		out[0] = (unsigned char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (unsigned char) (0xC0 | (cp >> 6));
		out[1] = (unsigned char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (unsigned char) (0xE0 | (cp >> 12));
		out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (unsigned char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (unsigned char) (0xF0 | (cp >> 18));
	out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (unsigned char) (0x80 | (cp & 0x3F));
	return 4;
}

int
cai_utf8_decode(const char *s, size_t len, int32_t *cp)
{
	int32_t		dummy;

	if (cp == NULL)
		cp = &dummy;
	if (s == NULL || len == 0)
	{
		*cp = -1;
		return 0;
	}
	return utf8_decode((const unsigned char *) s, len, cp);
}

int
cai_utf8_encode(int32_t cp, char out[4])
{
	return utf8_encode(cp, (unsigned char *) out);
}

size_t
cai_utf8_length(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		pos = 0;
	size_t		n = 0;

	if (s == NULL)
		return 0;
	while (pos < len)
	{
		int32_t		cp;

		/* eight ASCII bytes at a time */
		if (len - pos >= 8)
		{
			uint64_t	w;

			memcpy(&w, p + pos, 8);
			if ((w & UINT64_C(0x8080808080808080)) == 0)
			{
				pos += 8;
				n += 8;
				continue;
			}
		}
		if (p[pos] < 0x80)
			pos++;
		else
			pos += utf8_decode(p + pos, len - pos, &cp);
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------------
 * Classification and case
 * --------------------------------------------------------------------- */

/* Index of the range holding cp (cp >= 0x80). */
static size_t
uclass_index(int32_t cp)
{
	size_t		lo = 0;
	size_t		hi = N_UCLASS_RANGES;
	uint32_t	key = (uint32_t) cp;

	while (hi - lo > 1)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if ((uclass_ranges[mid] >> 8) <= key)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static inline int
uclass(int32_t cp)
{
	if (cp < 0x80)
		return cp < 0 ? CC_INVALID : ascii_class[cp];
	if (cp > 0x10FFFF)
		return CC_INVALID;
	return (int) (uclass_ranges[uclass_index(cp)] & 0xFF);
}

bool
cai_unicode_is_space(int32_t cp)
{
	if (cp >= 0xD800 && cp <= 0xDFFF)
		return false;
	return uclass(cp) == CC_SPACE;
}

bool
cai_unicode_is_cjk(int32_t cp)
{
	if (cp >= 0xD800 && cp <= 0xDFFF)
		return false;
	return uclass(cp) == CC_CJK;
}

bool
cai_token_is_one_cjk(const char *s, size_t len)
{
	int32_t		cp;
	int			k = len > 0 ? cai_utf8_decode(s, len, &cp) : 0;

	return k > 0 && (size_t) k == len && cai_unicode_is_cjk(cp);
}

size_t
cai_bigram_key(const char *a, size_t alen, const char *b, size_t blen, char *out, size_t cap)
{
	size_t		sep = cai_token_is_one_cjk(a, alen) && cai_token_is_one_cjk(b, blen) ? 0 : 1;

	if (alen + sep + blen > cap)
		return 0;
	memcpy(out, a, alen);
	if (sep)
		out[alen] = ' ';
	memcpy(out + alen + sep, b, blen);
	return alen + sep + blen;
}

int32_t
cai_unicode_tolower(int32_t cp)
{
	size_t		lo = 0;
	size_t		hi = N_LOWER_RANGES;
	const struct lower_range *r;

	if (cp < 0x80)
		return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
	while (hi - lo > 1)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (lower_ranges[mid].lo <= cp)
			lo = mid;
		else
			hi = mid;
	}
	r = &lower_ranges[lo];
	if (cp >= r->lo && cp <= r->hi && (cp - r->lo) % r->stride == 0)
		return cp + r->delta;
	return cp;
}

/* cp is a cased letter (CC_CLETTER): is it upper or title case? */
static bool
cased_is_upper(int32_t cp)
{
	size_t		lo = 0;
	size_t		hi = N_UPPER_NOMAP;

	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z';
	if (cai_unicode_tolower(cp) != cp)
		return true;
	while (hi - lo > 1)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if ((int32_t) upper_nomap[mid][0] <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return cp >= (int32_t) upper_nomap[lo][0] && cp <= (int32_t) upper_nomap[lo][1];
}

/*
 * A scanner over one text: decodes the code point at a position and
 * classifies it, caching the last range found.
 */
typedef struct scanner
{
	const unsigned char *s;
	size_t		len;
	uint32_t	cache_lo;		/* the last range found: [cache_lo, cache_hi) */
	uint32_t	cache_hi;
	int			cache_cls;
} scanner;

static inline void
scanner_init(scanner *sc, const char *s, size_t len)
{
	sc->s = (const unsigned char *) s;
	sc->len = len;
	sc->cache_lo = 0;
	sc->cache_hi = 0;
	sc->cache_cls = CC_INVALID;
}

/* Class of the code point at pos < len; sets *cp and its byte length *nb. */
static inline int
scan_class(scanner *sc, size_t pos, int32_t *cp, int *nb)
{
	unsigned char b = sc->s[pos];
	size_t		i;

	if (b < 0x80)
	{
		*cp = b;
		*nb = 1;
		return ascii_class[b];
	}
	*nb = utf8_decode(sc->s + pos, sc->len - pos, cp);
	if (*cp < 0)
		return CC_INVALID;
	if ((uint32_t) *cp - sc->cache_lo < sc->cache_hi - sc->cache_lo)
		return sc->cache_cls;
	i = uclass_index(*cp);
	sc->cache_lo = uclass_ranges[i] >> 8;
	sc->cache_hi = i + 1 < N_UCLASS_RANGES ? uclass_ranges[i + 1] >> 8 : 0x110000;
	sc->cache_cls = (int) (uclass_ranges[i] & 0xFF);
	return sc->cache_cls;
}

/* ---------------------------------------------------------------------
 * Tokenizer
 * --------------------------------------------------------------------- */

/* Flags for letters and digits seen in a word. */
#define W_LETTER 1
#define W_DIGIT 2

/* W_* flag of each byte: ASCII letters and digits; 0 for anything else. */
static const uint8_t byte_word_flag[256] = {
	['0' ... '9'] = W_DIGIT,
	['A' ... 'Z'] = W_LETTER,
	['a' ... 'z'] = W_LETTER,
};

/* Which neighbours let a punctuation code point join a word (0: never). */
static inline int
joiner_needs(int32_t cp)
{
	switch (cp)
	{
		case '\'':
		case '-':
		case '.':
		case 0x2019:			/* right single quotation mark */
		case 0x2010:			/* hyphen */
		case 0x2011:			/* non-breaking hyphen */
			return W_LETTER | W_DIGIT;
		case ',':
			return W_DIGIT;
		case 0x00B7:			/* middle dot (Catalan l.l) */
		case 0x05F3:			/* Hebrew geresh */
		case 0x05F4:			/* Hebrew gershayim */
			return W_LETTER;
		default:
			return 0;
	}
}

static inline int
word_flag_of_class(int k)
{
	if (k == CC_ULETTER || k == CC_CLETTER)
		return W_LETTER;
	if (k == CC_DIGIT)
		return W_DIGIT;
	return 0;
}

/*
 * Scan a word starting at *pos (a letter, digit or mark); advance *pos and
 * *cpos past it and return its kind.
 */
static cai_token_kind
scan_word(scanner *sc, size_t *pos, int64_t *cpos)
{
	const unsigned char *s = sc->s;
	size_t		len = sc->len;
	size_t		p = *pos;
	int64_t		c = *cpos;
	int			seen = 0;		/* W_* flags of the whole word */
	int			last = 0;		/* W_* flag of the last letter or digit */

	while (p < len)
	{
		int32_t		cp;
		int			nb;
		int			k;
		int			f;
		int			need;

		/* tight loop over ASCII letters and digits */
		if ((f = byte_word_flag[s[p]]) != 0)
		{
			size_t		run = p;

			do
			{
				seen |= f;
				last = f;
				p++;
			} while (p < len && (f = byte_word_flag[s[p]]) != 0);
			c += (int64_t) (p - run);
			if (p >= len || s[p] == ' ')
				break;			/* the end, or a space: what the class test below finds, sooner */
		}

		k = scan_class(sc, p, &cp, &nb);
		f = word_flag_of_class(k);
		if (f != 0)
		{
			seen |= f;
			last = f;
		}
		else if (k == CC_MARK || k == CC_ZWJ)
		{
			/* marks and format characters stay inside */
		}
		else if (k == CC_PUNCT && last != 0 && (need = joiner_needs(cp)) != 0 &&
				 (need & last) != 0 && p + nb < len)
		{
			int32_t		cp2;
			int			nb2;
			int			f2 = word_flag_of_class(scan_class(sc, p + nb, &cp2, &nb2));

			if ((need & f2) == 0)
				break;
			/* the joiner and the letter or digit after it */
			seen |= f2;
			last = f2;
			p += nb + nb2;
			c += 2;
			continue;
		}
		else
			break;
		p += nb;
		c++;
	}
	*pos = p;
	*cpos = c;
	return (seen & W_DIGIT) != 0 && (seen & W_LETTER) == 0 ? CAI_TOK_NUMBER : CAI_TOK_WORD;
}

/* Bytes of a keycap sequence [0-9#*] U+FE0F? U+20E3 at s[p], or 0. */
static inline size_t
keycap_length(const unsigned char *s, size_t len, size_t p)
{
	size_t		q = p + 1;

	if (q + 3 <= len && s[q] == 0xEF && s[q + 1] == 0xB8 && s[q + 2] == 0x8F)
		q += 3;
	if (q + 3 <= len && s[q] == 0xE2 && s[q + 1] == 0x83 && s[q + 2] == 0xA3)
		return q + 3 - p;
	return 0;
}

/* Attach following marks (and ZWJ) to the token ending at *pos. */
static inline void
attach_marks(scanner *sc, size_t *pos, int64_t *cpos, cai_token_kind *kind)
{
	size_t		p = *pos;

	while (p < sc->len && sc->s[p] >= 0x80)
	{
		int32_t		cp;
		int			nb;
		int			k = scan_class(sc, p, &cp, &nb);

		if (k != CC_MARK && k != CC_ZWJ)
			break;
		if (cp == 0x20E3)
			*kind = CAI_TOK_SYMBOL; /* keycap */
		p += nb;
		(*cpos)++;
	}
	*pos = p;
}

/* Scan an emoji or symbol whose base (nb bytes) is at *pos. */
static inline void
scan_symbol(scanner *sc, size_t *pos, int64_t *cpos, int nb)
{
	size_t		p = *pos + nb;
	int64_t		c = *cpos + 1;

	while (p < sc->len && sc->s[p] >= 0x80)
	{
		int32_t		cp;
		int			n;
		int			k = scan_class(sc, p, &cp, &n);

		if (k == CC_MARK || k == CC_EMOD)
		{
			p += n;
			c++;
		}
		else if (k == CC_ZWJ)
		{
			p += n;
			c++;
			if (p < sc->len)
			{
				k = scan_class(sc, p, &cp, &n);
				if ((k == CC_SYMBOL && cp >= 0x80) || k == CC_EMOD)
				{
					p += n;
					c++;
				}
			}
		}
		else
			break;
	}
	*pos = p;
	*cpos = c;
}

typedef struct token_buf
{
	cai_token  *t;
	size_t		n;
	size_t		cap;
	size_t		max;			/* 0: no limit */
} token_buf;

static cai_status
token_buf_grow(token_buf *b, cai_error *err)
{
	size_t		newcap;
	size_t		old_bytes;
	size_t		new_bytes;
	cai_token  *t;

	if (b->max > 0 && b->n >= b->max)
		return cai_error_set(err, CAI_ERR_LIMIT, "text has more than %zu tokens", b->max);
	if (!cai_size_mul(b->cap, 2, &newcap))
		return cai_error_set(err, CAI_ERR_NOMEM, "too many tokens");
	if (newcap < 16)
		newcap = 16;
	if (b->max > 0 && newcap > b->max)
		newcap = b->max;
	if (!cai_size_mul(b->cap, sizeof(cai_token), &old_bytes) ||
		!cai_size_mul(newcap, sizeof(cai_token), &new_bytes))
		return cai_error_set(err, CAI_ERR_NOMEM, "too many tokens");
	t = cai_realloc(b->t, old_bytes, new_bytes);
	if (t == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %zu tokens", newcap);
	b->t = t;
	b->cap = newcap;
	return CAI_OK;
}

/* Tokens of text[0..len) appended to buf (grown as needed; the caller frees it). */
static cai_status
tokenize_run(const char *text, size_t len, token_buf *buf, cai_error *err)
{
	scanner		sc;
	const unsigned char *s = (const unsigned char *) text;
	size_t		pos = 0;
	int64_t		cpos = 0;
	cai_status	st;

	scanner_init(&sc, text, len);

	while (pos < len)
	{
		size_t		start = pos;
		int64_t		cstart = cpos;
		cai_token_kind kind;
		int32_t		cp;
		int			nb;
		int			k;
		cai_token  *t;

		/* ASCII whitespace */
		if (s[pos] <= 0x20 || s[pos] == 0x7F)
		{
			pos++;
			cpos++;
			continue;
		}

		/* an ASCII letter starts a word (what the class switch below does for it, without the switch) */
		if (byte_word_flag[s[pos]] == W_LETTER)
		{
			kind = scan_word(&sc, &pos, &cpos);
			goto emit;
		}
		k = scan_class(&sc, pos, &cp, &nb);
		switch (k)
		{
			case CC_SPACE:
				pos += nb;
				cpos++;
				continue;
			case CC_INVALID:
				pos++;
				cpos++;
				kind = CAI_TOK_INVALID;
				break;
			case CC_DIGIT:
				if (cp < 0x80)
				{
					size_t		kl = keycap_length(s, len, pos);

					if (kl > 0)
					{
						pos += kl;
						cpos += kl == 4 ? 2 : 3;
						kind = CAI_TOK_SYMBOL;
						attach_marks(&sc, &pos, &cpos, &kind);
						break;
					}
				}
				/* FALLTHROUGH */
			case CC_ULETTER:
			case CC_CLETTER:
			case CC_MARK:
			case CC_ZWJ:
				kind = scan_word(&sc, &pos, &cpos);
				break;
			case CC_CJK:
				pos += nb;
				cpos++;
				kind = CAI_TOK_CJK;
				attach_marks(&sc, &pos, &cpos, &kind);
				kind = CAI_TOK_CJK;
				break;
			case CC_PUNCT:
				pos += nb;
				cpos++;
				kind = CAI_TOK_PUNCT;
				attach_marks(&sc, &pos, &cpos, &kind);
				break;
			case CC_RI:
				pos += nb;
				cpos++;
				if (pos < len && scan_class(&sc, pos, &cp, &nb) == CC_RI)
				{
					pos += nb;
					cpos++;
				}
				kind = CAI_TOK_SYMBOL;
				attach_marks(&sc, &pos, &cpos, &kind);
				break;
			default:			/* CC_SYMBOL, CC_EMOD */
				scan_symbol(&sc, &pos, &cpos, nb);
				kind = CAI_TOK_SYMBOL;
				break;
		}

emit:
		if ((buf->n == buf->cap || (buf->max > 0 && buf->n >= buf->max)) &&
			(st = token_buf_grow(buf, err)) != CAI_OK)
			return st;
		t = &buf->t[buf->n++];
		t->start = (int64_t) start;
		t->end = (int64_t) pos;
		t->cstart = cstart;
		t->cend = cpos;
		t->kind = kind;
	}

	return CAI_OK;
}

/* checks shared by cai_tokenize and cai_tokenize_reuse: false when text has no tokens */
static cai_status
tokenize_check(const char *text, size_t len, bool *empty, cai_error *err)
{
	*empty = len == 0;
	if (len == 0)
		return CAI_OK;
	if (text == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "text is NULL");
	if (len > (size_t) INT64_MAX)
		return cai_error_set(err, CAI_ERR_LIMIT, "text is too long");
	return CAI_OK;
}

cai_status
cai_tokenize(const char *text, size_t len, size_t max_tokens,
			 cai_token **tokens, size_t *n_tokens, cai_error *err)
{
	token_buf	buf;
	bool		empty;
	cai_status	st;

	if (tokens == NULL || n_tokens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tokens and n_tokens must not be NULL");
	*tokens = NULL;
	*n_tokens = 0;
	if ((st = tokenize_check(text, len, &empty, err)) != CAI_OK || empty)
		return st;
	buf.n = 0;
	buf.max = max_tokens;
	/* about one token per 5 bytes in running text; grown by doubling */
	buf.cap = len / 4 + 8 < 65536 ? len / 4 + 8 : 65536;
	if (max_tokens > 0 && buf.cap > max_tokens)
		buf.cap = max_tokens;
	buf.t = cai_malloc(buf.cap * sizeof(cai_token));	/* cap <= 65536 */
	if (buf.t == NULL)
		return cai_error_set(err, CAI_ERR_NOMEM, "out of memory for %zu tokens", buf.cap);
	if ((st = tokenize_run(text, len, &buf, err)) != CAI_OK || buf.n == 0)
	{
		cai_free(buf.t);
		return st;
	}
	*tokens = buf.t;
	*n_tokens = buf.n;
	return CAI_OK;
}

cai_status
cai_tokenize_reuse(const char *text, size_t len, size_t max_tokens,
				   cai_token **tokens, size_t *cap, size_t *n_tokens, cai_error *err)
{
	token_buf	buf;
	bool		empty;
	cai_status	st;

	if (tokens == NULL || cap == NULL || n_tokens == NULL)
		return cai_error_set(err, CAI_ERR_INVALID, "tokens, cap and n_tokens must not be NULL");
	*n_tokens = 0;
	if ((st = tokenize_check(text, len, &empty, err)) != CAI_OK || empty)
		return st;
	buf.t = *tokens;
	buf.cap = *tokens != NULL ? *cap : 0;
	buf.n = 0;
	buf.max = max_tokens;
	st = tokenize_run(text, len, &buf, err);
	*tokens = buf.t;
	*cap = buf.cap;
	*n_tokens = st == CAI_OK ? buf.n : 0;
	return st;
}

/* ---------------------------------------------------------------------
 * Token features
 * --------------------------------------------------------------------- */

cai_casing
cai_token_casing(const char *s, size_t len)
{
	scanner		sc;
	size_t		pos = 0;
	size_t		upper = 0;
	size_t		lower = 0;
	size_t		uncased = 0;
	size_t		digits = 0;
	bool		first_upper = false;

	if (s == NULL || len == 0)
		return CAI_CASE_OTHER;
	scanner_init(&sc, s, len);
	while (pos < len)
	{
		int32_t		cp;
		int			nb;
		int			k = scan_class(&sc, pos, &cp, &nb);

		switch (k)
		{
			case CC_CLETTER:
				if (cased_is_upper(cp))
				{
					if (upper + lower == 0)
						first_upper = true;
					upper++;
				}
				else
					lower++;
				break;
			case CC_ULETTER:
			case CC_CJK:
				uncased++;
				break;
			case CC_DIGIT:
				digits++;
				break;
			default:
				break;
		}
		pos += nb;
	}

	if (upper + lower + uncased == 0)
		return digits > 0 ? CAI_CASE_NUMERIC : CAI_CASE_PUNCT;
	if (digits > 0)
		return CAI_CASE_HAS_DIGIT;
	if (upper + lower == 0)
		return CAI_CASE_OTHER;
	if (upper == 0)
		return CAI_CASE_LOWER;
	if (lower == 0 && upper > 1)
		return CAI_CASE_UPPER;
	if (first_upper && upper == 1)
		return CAI_CASE_TITLE;
	return CAI_CASE_MIXED;
}

size_t
cai_token_normalize(const char *s, size_t len, bool fold_digits,
					char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		pos = 0;
	size_t		o = 0;
	size_t		lim;

	if (out == NULL || cap == 0)
		return 0;
	lim = cap - 1;
	if (s == NULL)
		len = 0;
	while (pos < len)
	{
		unsigned char b = p[pos];
		unsigned char enc[4];
		int32_t		cp;
		int			nb;
		int			ne;

		if (b < 0x80)
		{
			if (o >= lim)
				break;
			if (b >= 'A' && b <= 'Z')
				b += 'a' - 'A';
			else if (fold_digits && b >= '0' && b <= '9')
				b = '0';
			out[o++] = (char) b;
			pos++;
			continue;
		}
		nb = utf8_decode(p + pos, len - pos, &cp);
		if (cp < 0)
		{
			if (o >= lim)
				break;
			out[o++] = (char) b;	/* invalid byte, copied */
			pos++;
			continue;
		}
		ne = utf8_encode(cai_unicode_tolower(cp), enc);
		if (o + (size_t) ne > lim)
			break;
		memcpy(out + o, enc, ne);
		o += ne;
		pos += nb;
	}
	out[o] = '\0';
	return o;
}

/*
 * The n-grams run over V = "<" s ">".  A position in V is a byte index:
 * 0 is "<", 1..len are s[0..len), len + 1 is ">", len + 2 the end.
 */
static inline size_t
vnext(const unsigned char *s, size_t len, size_t v)
{
	int32_t		cp;

	if (v == 0 || v > len)
		return v + 1;
	if (s[v - 1] < 0x80)
		return v + 1;
	return v + utf8_decode(s + v - 1, len - (v - 1), &cp);
}

size_t
cai_char_ngram_hashes(const char *s, size_t len, int minn, int maxn,
					  uint64_t *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		vend;
	size_t		n_out = 0;
	size_t		v;

	if (s == NULL)
		len = 0;
	if (minn < 1)
		minn = 1;
	if (maxn > CAI_NGRAM_MAXN)
		maxn = CAI_NGRAM_MAXN;
	if (out == NULL || cap == 0 || maxn < minn || len > SIZE_MAX - 3)
		return 0;
	vend = len + 2;

	for (v = 0; v < vend && n_out < cap; v = vnext(p, len, v))
	{
		size_t		e = v;

		for (int n = 1; n <= maxn && e < vend; n++)
		{
			e = vnext(p, len, e);
			if (n < minn || (n == 1 && (v == 0 || e == vend)))
				continue;
			if (v >= 1 && e <= len + 1)
				out[n_out++] = cai_hash_bytes(p + v - 1, e - v, CAI_NGRAM_SEED);
			else
			{
				/* touches a boundary: at most maxn code points, 4 bytes each */
				unsigned char gram[4 * CAI_NGRAM_MAXN];
				size_t		g = 0;
				size_t		from = v == 0 ? 0 : v - 1;	/* into s */
				size_t		to = e > len + 1 ? len : e - 1;

				if (v == 0)
					gram[g++] = '<';
				if (to > from)
				{
					memcpy(gram + g, p + from, to - from);
					g += to - from;
				}
				if (e == vend)
					gram[g++] = '>';
				out[n_out++] = cai_hash_bytes(gram, g, CAI_NGRAM_SEED);
			}
			if (n_out == cap)
				break;
		}
	}
	return n_out;
}
