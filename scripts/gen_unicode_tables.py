#!/usr/bin/env python3
"""Generate the Unicode tables of src/core/tokenize.c from Python's unicodedata.

Run: python3 gen_unicode.py > tables.inc  (then paste between the markers).
"""
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


main()
