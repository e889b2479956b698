#!/usr/bin/env python3
"""Generate the Unicode tables of the core from Python's unicodedata.

  python3 scripts/gen_unicode_tables.py > tables.inc            # src/core/tokenize.c
  python3 scripts/gen_unicode_tables.py wordpiece > tables.inc  # src/core/wordpiece.c

then paste the output between the GENERATED markers of that file.  The
tables are Unicode 14.0 (Python 3.11); a different Python gives other data.
"""
import sys
import unicodedata as u

NAMES = ['SPACE', 'ULETTER', 'CLETTER', 'DIGIT', 'MARK', 'ZWJ', 'CJK', 'PUNCT', 'SYMBOL', 'EMOD', 'RI']
SPACE, ULET, CLET, DIGIT, MARK, ZWJ, CJK, PUNCT, SYM, EMOD, RI = range(11)

CJK_RANGES = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF),
              (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0xAC00, 0xD7AF), (0x3100, 0x312F),
              (0x31A0, 0x31BF), (0xA000, 0xA4CF), (0x1B000, 0x1B2FF), (0x17000, 0x18AFF),
              (0x18D00, 0x18D8F)]


def cat(cp):
    return u.category(chr(cp))


def cls(cp):
    c = cat(cp)
    if cp in (0x200B, 0xFEFF):
        return SPACE
    if cp == 0x200D:
        return ZWJ
    if 0x1F3FB <= cp <= 0x1F3FF:
        return EMOD
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return RI
    if c in ('Cc', 'Zs', 'Zl', 'Zp'):
        return SPACE
    if 0x1F000 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF:
        return SYM
    if c[0] == 'M':
        return MARK
    if 0x3040 <= cp <= 0x30FF and c[0] != 'P':
        return CJK
    if 0x3000 <= cp <= 0x303F and c[0] in 'LN':
        return CJK
    if any(a <= cp <= b for a, b in CJK_RANGES):
        if c[0] == 'P':
            return PUNCT
        return CJK
    if c == 'Cf':
        return MARK
    if c in ('Lu', 'Lt', 'Ll'):
        return CLET
    if c in ('Lo', 'Lm', 'Nl'):
        return ULET
    if c in ('Nd', 'No'):
        return DIGIT
    if c[0] == 'P':
        return PUNCT
    if c[0] == 'S':
        return SYM
    if c == 'Cn':
        return None             # unassigned: same class as the code point before
    return SYM                  # Co (private use), Cs


def class_table():
    ranges = []
    prev = None
    for cp in range(0x80, 0x110000):
        k = cls(cp)
        if k is None:
            k = prev
        if k != prev:
            ranges.append((cp, k))
            prev = k
    return ranges


def lower_map():
    m = {}
    for cp in range(0x110000):
        c = chr(cp)
        if cat(cp) in ('Lu', 'Lt'):
            l = c.lower()
            if cp == 0x130:
                l = 'i'         # simple mapping (the full one is "i" + U+0307)
            if len(l) == 1 and l != c:
                m[cp] = ord(l) - cp
    keys = sorted(m)
    out = []
    i = 0
    while i < len(keys):
        s = keys[i]
        d = m[s]
        j = i
        while j + 1 < len(keys) and keys[j + 1] == keys[j] + 1 and m[keys[j + 1]] == d:
            j += 1
        j2 = i
        while j2 + 1 < len(keys) and keys[j2 + 1] == keys[j2] + 2 and m[keys[j2 + 1]] == d:
            j2 += 1
        if j2 > j:
            out.append((s, keys[j2], d, 2))
            i = j2 + 1
        else:
            out.append((s, keys[j], d, 1))
            i = j + 1
    return m, out


def upper_nomap(m):
    out = []
    for cp in range(0x110000):
        if cat(cp) in ('Lu', 'Lt') and cp not in m:
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
    return out


def main():
    print('/* BEGIN GENERATED TABLES (gen_unicode.py, Unicode %s) */' % u.unidata_version)
    print()
    print('/* Class of every ASCII code point. */')
    print('static const uint8_t ascii_class[128] = {')
    for row in range(0, 128, 8):
        print('\t' + ' '.join('CC_%s,' % NAMES[cls(cp)] for cp in range(row, row + 8)) +
              ' /* 0x%02X */' % row)
    print('};')
    t = class_table()
    print()
    print('/* Class of every code point >= U+0080: entry i covers [start_i, start_{i+1}). */')
    print('#define R(cp, c) (((uint32_t) (cp) << 8) | CC_##c)')
    print('static const uint32_t uclass_ranges[%d] = {' % len(t))
    line = '\t'
    for n, (cp, k) in enumerate(t):
        item = 'R(0x%04X, %s),' % (cp, NAMES[k])
        if len(line.expandtabs(4)) + len(item) + 1 > 100:
            print(line.rstrip())
            line = '\t'
        line += item + ' '
    print(line.rstrip())
    print('};')
    print('#undef R')
    m, lm = lower_map()
    print()
    print('/* Simple lower-case mappings: cp in [lo, hi] (every stride-th) maps to cp + delta. */')
    print('static const struct lower_range lower_ranges[%d] = {' % len(lm))
    line = '\t'
    for (a, b, d, s) in lm:
        item = '{0x%04X, 0x%04X, %d, %d},' % (a, b, d, s)
        if len(line.expandtabs(4)) + len(item) + 1 > 100:
            print(line.rstrip())
            line = '\t'
        line += item + ' '
    print(line.rstrip())
    print('};')
    un = upper_nomap(m)
    print()
    print('/* Upper-case (Lu, Lt) letters without a lower-case mapping. */')
    print('static const uint32_t upper_nomap[%d][2] = {' % len(un))
    line = '\t'
    for (a, b) in un:
        item = '{0x%04X, 0x%04X},' % (a, b)
        if len(line.expandtabs(4)) + len(item) + 1 > 100:
            print(line.rstrip())
            line = '\t'
        line += item + ' '
    print(line.rstrip())
    print('};')
    print('/* END GENERATED TABLES */')


# ---------------------------------------------------------------------------
# WordPiece (BERT's basic tokenizer, as Hugging Face's BertTokenizer and
# tokenizers' BertNormalizer define it).

WP_CTRL, WP_SPACE, WP_PUNCT, WP_CJK, WP_MN = 1, 2, 4, 8, 16
WP_NAMES = [(WP_CTRL, 'CTRL'), (WP_SPACE, 'SPACE'), (WP_PUNCT, 'PUNCT'), (WP_CJK, 'CJK'), (WP_MN, 'MN')]

# BERT's _is_chinese_char
BERT_CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def wp_flags(cp):
    c = chr(cp)
    k = cat(cp)
    f = 0
    # _clean_text drops NUL, U+FFFD and _is_control (C* but tab, LF, CR)
    if cp == 0 or cp == 0xFFFD or (k[0] == 'C' and c not in '\t\n\r'):
        f |= WP_CTRL
    # _is_whitespace (space, tab, LF, CR, Zs); str.split() also splits on
    # the rest of White_Space (U+2028, U+2029; the others are controls)
    if c in ' \t\n\r' or k == 'Zs' or c.isspace():
        f |= WP_SPACE
    # _is_punctuation: ASCII 33-47, 58-64, 91-96, 123-126 and P*
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or k[0] == 'P':
        f |= WP_PUNCT
    if any(a <= cp <= b for a, b in BERT_CJK):
        f |= WP_CJK
    if k == 'Mn':
        f |= WP_MN
    return f


def wp_fold(cp):
    """Uncased form of one code point: NFD, non-spacing marks dropped, lower case."""
    s = u.normalize('NFD', chr(cp))
    s = ''.join(x for x in s if u.category(x) != 'Mn')
    return s.lower()


def print_items(items):
    line = '\t'
    for item in items:
        if len(line.expandtabs(4)) + len(item) + 1 > 100:
            print(line.rstrip())
            line = '\t'
        line += item + ' '
    print(line.rstrip())


def main_wordpiece():
    print('/* BEGIN GENERATED TABLES (gen_unicode_tables.py wordpiece, Unicode %s) */' % u.unidata_version)
    ranges = []
    prev = None
    for cp in range(0x110000):
        f = wp_flags(cp) if not 0xD800 <= cp <= 0xDFFF else WP_CTRL
        if f != prev:
            ranges.append((cp, f))
            prev = f
    print()
    print('/* Flags of every code point: entry i covers [start_i, start_{i+1}). */')
    print('#define R(cp, f) (((uint32_t) (cp) << 8) | (f))')
    print('static const uint32_t wp_class_ranges[%d] = {' % len(ranges))
    print_items(['R(0x%04X, %s),' % (cp, '|'.join('WP_' + n for b, n in WP_NAMES if f & b) or '0')
                 for cp, f in ranges])
    print('};')
    print('#undef R')

    single = {}
    multi = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
            continue            # surrogates; Hangul syllables decompose algorithmically
        if wp_flags(cp) & (WP_CTRL | WP_MN | WP_SPACE):
            continue            # removed or a separator in either case
        s = wp_fold(cp)
        if s == chr(cp):
            continue
        # folding never makes a control, a space or a new CJK character
        assert all(not wp_flags(ord(x)) & (WP_CTRL | WP_SPACE | WP_MN) for x in s), hex(cp)
        if len(s) == 1:
            single[cp] = ord(s)
        else:
            assert 2 <= len(s) <= 3, hex(cp)
            multi[cp] = [ord(x) for x in s]
    keys = sorted(single)
    runs = []
    i = 0
    while i < len(keys):
        lo = keys[i]
        j = i
        while (j + 1 < len(keys) and keys[j + 1] == keys[j] + 1 and single[keys[j + 1]] == single[lo]
               and j + 1 - i < 255):
            j += 1
        jd = i
        while (jd + 1 < len(keys) and keys[jd + 1] == keys[jd] + 1 and
               single[keys[jd + 1]] - keys[jd + 1] == single[lo] - lo and jd + 1 - i < 255):
            jd += 1
        if jd > j:
            runs.append((lo, keys[jd], single[lo], 1))
            i = jd + 1
        else:
            runs.append((lo, keys[j], single[lo], 0))
            i = j + 1
    print()
    print('/*')
    print(' * Uncased form of a code point (NFD, Mn dropped, lower case) where it is one')
    print(' * other code point: FOLD(lo, n, to, d) maps lo + k (k <= n) to "to" (d = 0) or')
    print(' * to + k (d = 1).')
    print(' */')
    print('#define FOLD(lo, n, to, d) {((uint32_t) (lo) << 8) | (n), ((uint32_t) (to) << 1) | (d)}')
    print('static const uint32_t wp_fold1[%d][2] = {' % len(runs))
    print_items(['FOLD(0x%04X, %d, 0x%04X, %d),' % (lo, hi - lo, to, d) for lo, hi, to, d in runs])
    print('};')
    print('#undef FOLD')
    print()
    print('/* Code points whose uncased form is two or three code points (0 ends). */')
    print('static const uint32_t wp_fold_multi[%d][4] = {' % len(multi))
    print_items(['{0x%04X, %s},' % (cp, ', '.join('0x%04X' % x for x in (v + [0])[:3]))
                 for cp, v in sorted(multi.items())])
    print('};')
    print('/* END GENERATED TABLES */')


if len(sys.argv) > 1 and sys.argv[1] == 'wordpiece':
    main_wordpiece()
else:
    main()
