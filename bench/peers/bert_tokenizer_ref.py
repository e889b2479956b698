#!/usr/bin/python3
"""An independent reference for BERT's WordPiece tokenizer (test fixtures only).

Rules: those of Hugging Face's BertTokenizer (transformers' BasicTokenizer and
WordpieceTokenizer, without the NFC step of its 4.30+ slow version, which its
fast tokenizer does not have either), written here from their description in
include/cai/wordpiece.h; only the Python standard library (Debian's
/usr/bin/python3: transformers is not installed on this machine).

Each text is tokenized twice:
  1. on strings, the way transformers does (clean, CJK spacing, str.split(),
     lower-case + NFD + drop Mn per token, punctuation split, greedy
     longest-match-first pieces);
  2. one code point at a time, keeping the original byte range of each, which
     gives the offsets the C tokenizer must report;
and the two must give the same pieces (an assertion), so the offset pass
follows the string rules rather than re-stating them.

  bert_tokenizer_ref.py fixtures DIR      # write DIR/{cased,uncased}_vocab.txt and DIR/{cased,uncased}.tsv
  bert_tokenizer_ref.py tokenize VOCAB [--cased] < text

Fixture lines: name TAB hex(UTF-8 bytes of the text) TAB id:start:end ... TAB
the pieces' text (for reading; the C test ignores it).
"""
import sys
import unicodedata

SPECIALS = ['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]']
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
MAX_CHARS = 100


def is_cjk(ch):
    cp = ord(ch)
    return any(a <= cp <= b for a, b in CJK)


def is_removed(ch):
    if ch in '\t\n\r':
        return False
    return ord(ch) in (0, 0xFFFD) or unicodedata.category(ch).startswith('C')


def is_space(ch):
    return ch in ' \t\n\r' or unicodedata.category(ch) == 'Zs'


def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith('P')


def uncase(s):
    # transformers lower-cases one character at a time (its regex pre-pass in
    # the slow tokenizer, char::to_lowercase in tokenizers), so no final sigma
    s = ''.join(c.lower() for c in s)
    s = unicodedata.normalize('NFD', s)
    return ''.join(c for c in s if unicodedata.category(c) != 'Mn')


def split_specials(text, vocab):
    """Split the raw text on the special tokens the vocabulary holds."""
    present = [s for s in SPECIALS if s in vocab]
    out = []
    i = 0
    last = 0
    while i < len(text):
        hit = next((s for s in present if text.startswith(s, i)), None)
        if hit:
            out.append((text[last:i], None))
            out.append((hit, hit))
            i += len(hit)
            last = i
        else:
            i += 1
    out.append((text[last:], None))
    return out


def wordpiece(word, vocab):
    """Greedy longest-match-first: list of (token, first char, end char) or None for [UNK]."""
    if len(word) > MAX_CHARS:
        return None
    out = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            sub = word[start:end]
            if start > 0:
                sub = '##' + sub
            if sub in vocab:
                break
            end -= 1
        if end == start:
            return None
        out.append((sub, start, end))
        start = end
    return out


# --- 1. strings ------------------------------------------------------------

def tokens_by_strings(text, vocab, lower):
    pieces = []
    for part, special in split_specials(text, vocab):
        if special:
            pieces.append(special)
            continue
        t = ''.join(' ' if is_space(c) else c for c in part if not is_removed(c))
        t = ''.join(' %s ' % c if is_cjk(c) else c for c in t)
        words = []
        for tok in t.split():
            if lower:
                tok = uncase(tok)
            cur = []
            for c in tok:
                if is_punct(c):
                    words.append(''.join(cur))
                    words.append(c)
                    cur = []
                else:
                    cur.append(c)
            words.append(''.join(cur))
        for w in ' '.join(words).split():
            wp = wordpiece(w, vocab)
            pieces.extend(['[UNK]'] if wp is None else [p for p, _, _ in wp])
    return pieces


# --- 2. code points with their original bytes ----------------------------

def decode_with_offsets(data):
    """Strict UTF-8, one sequence at a time: [(char, start, end)]; invalid bytes dropped."""
    out = []
    i = 0
    while i < len(data):
        b = data[i]
        n = 1 if b < 0x80 else 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if n:
            try:
                ch = data[i:i + n].decode('utf-8')
                if len(ch) == 1:
                    out.append((ch, i, i + n))
                    i += n
                    continue
            except UnicodeDecodeError:
                pass
        i += 1
    assert ''.join(c for c, _, _ in out) == data.decode('utf-8', 'ignore')
    return out


def pieces_with_offsets(data, vocab, lower):
    chars = decode_with_offsets(data)
    text = ''.join(c for c, _, _ in chars)
    # byte position of each char, to find the special tokens again
    out = []
    word = []                   # [(char, start, end)]

    def flush():
        if not word:
            return
        w = ''.join(c for c, _, _ in word)
        wp = wordpiece(w, vocab)
        if wp is None:
            out.append(('[UNK]', word[0][1], word[-1][2]))
        else:
            out.extend((p, word[a][1], word[b - 1][2]) for p, a, b in wp)
        word.clear()

    i = 0
    present = [s for s in SPECIALS if s in vocab]
    while i < len(chars):
        hit = next((s for s in present if text.startswith(s, i)), None)
        if hit:
            flush()
            out.append((hit, chars[i][1], chars[i + len(hit) - 1][2]))
            i += len(hit)
            continue
        c, s, e = chars[i]
        i += 1
        if is_removed(c):
            continue
        if is_space(c) or c.isspace():
            flush()
            continue
        if is_cjk(c):
            flush()
            u = uncase(c) if lower else c
            out.append(((u if u in vocab else '[UNK]'), s, e))
            continue
        for u in (uncase(c) if lower else c):
            if is_punct(u):
                flush()
                out.append(((u if u in vocab else '[UNK]'), s, e))
            else:
                word.append((u, s, e))
    flush()
    return out


def tokenize(data, vocab, lower):
    by_offsets = pieces_with_offsets(data, vocab, lower)
    by_strings = tokens_by_strings(data.decode('utf-8', 'ignore'), vocab, lower)
    assert [p for p, _, _ in by_offsets] == by_strings, (data, by_offsets, by_strings)
    return [(vocab[p], s, e, p) for p, s, e in by_offsets]


# --- fixtures ---------------------------------------------------------------

WORDS = '''the quick brown fox jump over lazy dog hello world un ##aff ##able caf cafe el ##an na
res ##ume zur ##ich state of art mail don ##t is in capital the a an and or not ##s ##ed ##ing ##ly
##er ##est ##tion ##ness new york city paris london berlin tokyo moscow i love pizza you we they
super ##cal ##if ##rag ##il ##istic ##ex ##pi ##ali ##doc ##ious book ##s rock roll o neil
email e mail data base token ##izer ##ize bert model text test case straße stra ##ße istanbul
resume zurich naive elan angstrom ang ##str ##om ##strom alpha beta gamma one two three four
five six seven eight nine ten hundred thousand year day time tab here line break vertical form
next zero width join me bom soft hyphen rtl mark private control'''

CASED_EXTRA = '''The Hello World Paris London Berlin Tokyo Moscow New York I Caf Café Élan É ##é
##ï naï ##ve résumé Zürich Zür Ångström Å ##ö Straße İstanbul İ O Neil BERT ΟΔΥΣΣΕΥΣ Ο ##Δ ##Υ
##Σ ##Ε Α Β Γ α β γ δ ε σ ς Москва М ##о ##с ##к ##в ##а Е е ﬁ ＡＢＣ Ａ ##Ｂ ##Ｃ Ⅻ Ⓐ 한 ##국 ##어
텍 ##스 ##트 한국어 ﬁle'''

UNCASED_EXTRA = '''naive elan cafe ##e resume zurich angstrom odysseus ο ##δ ##υ ##σ ##ε α β γ δ ε σ ς
москва м ##о ##с ##к ##в ##а е ａ ##ｂ ##ｃ ａｂｃ ⅻ ⓐ ᄒ ##ᅡ ##ᆫ ##ᄀ ##ᅮ ##ᆨ ##ᄋ ##ᅥ ᄐ ##ᅦ
##ᆨ ##ᄉ ##ᅳ ##ᄐ ##ᅳ ᄀ ᄋ ᅡ ᆫ ##ᅡᆫ istanbul'''

# characters both vocabularies hold, and their ## forms for letters
COMMON_CHARS = ('我爱北京天安门中文混合東京日本語のテキスト¿¡«»“”—’…·、。，！？「」🍕👍🏽👨👩👧🇫🇷①٣٤٥'
                'مرحباहिन्दी')


def make_vocab(lower):
    toks = ['[PAD]', '[unused0]', '[unused1]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    for cp in range(33, 127):
        c = chr(cp)
        if not (lower and c.isupper()):
            toks.append(c)
    for cp in range(33, 127):
        c = chr(cp)
        if c.isalnum() and not (lower and c.isupper()):
            toks.append('##' + c)
    for c in COMMON_CHARS:
        toks.append(c)
        if c.isalpha() and not is_cjk(c):
            toks.append('##' + c)
    toks += WORDS.split()
    toks += (UNCASED_EXTRA if lower else CASED_EXTRA).split()
    toks += ['a' * 100, '##' + 'b' * 98]
    out = []
    seen = set()
    for t in toks:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


CASES = [
    ('empty', b''),
    ('spaces_only', b'   \t\n\r  '),
    ('unicode_spaces_only', '\u00a0\u3000\u2028\u2003'.encode()),
    ('hello', b'Hello, world!'),
    ('unaffable', b'unaffable'),
    ('pangram', b'The quick brown fox jumps over the lazy dog.'),
    ('accents', 'Café Élan naïve résumé Zürich Ångström'.encode()),
    ('decomposed_accent', 'Cafe\u0301 e\u0301lan'.encode()),
    ('dotted_i', 'İstanbul'.encode()),
    ('greek_caps_sigma', 'ΟΔΥΣΣΕΥΣ ΟΔΥΣΣΕΥΣ.'.encode()),
    ('sharp_s', 'Straße STRASSE'.encode()),
    ('chinese_sentence', '我爱北京天安门。'.encode()),
    ('chinese_mixed', '中文and English混合,东京'.encode()),
    ('japanese', '日本語のテキスト「東京」'.encode()),
    ('korean', '한국어 텍스트'.encode()),
    ('cjk_compat_ext', '\uf900\U00020000\U0002f800x'.encode()),
    ('punct_ascii', b'(hello) [world] {x} <y> a`b ~tilde~ x^2 $100 50% C++ a_b a|b a\\b @me #tag'),
    ('punct_unicode', '«quotes» “smart” a—b ¿Qué? ¡Hola! wait… a·b 、。，！？'.encode()),
    ('apostrophes', 'don\'t O\'Neil’s l\'été rock\'n\'roll'.encode()),
    ('hyphens', 'e-mail state-of-the-art 2023-10-05 co\u2010op non\u2011breaking'.encode()),
    ('numbers', '1,234.56 3.14159 ٣٤٥ ① ⅻ Ⅻ 10^6'.encode()),
    ('emoji', 'I love 🍕! 👍🏽 family 👨\u200d👩\u200d👧 🇫🇷'.encode()),
    ('emoji_in_word', 'pizza🍕pizza'.encode()),
    ('controls', b'a\x00b a\x01b\x7fc tab\there line\r\nbreak \x0bvertical\x0cform'),
    ('c1_controls', '\u0085next \u009fx a\ufffdb'.encode()),
    ('zero_width', 'zero\u200bwidth join\u200dme \ufeffbom soft\u00adhyphen rtl\u200fmark'.encode()),
    ('unicode_spaces', 'a\u00a0b\u3000c\u2028d\u2029e\u2003f\u1680g\u202fh'.encode()),
    ('private_unassigned', 'x\ue000private a\U000e0001b \U0010ffff c\u0378d'.encode()),
    ('long_word_100', b'a' * 100),
    ('long_word_101', b'a' * 101),
    ('long_word_pieces', b'a' + b'b' * 98),
    ('long_word_unk_in_sentence', b'hello ' + b'x' * 150 + b' world'),
    ('supercali', b'supercalifragilisticexpialidocious'),
    ('mixed_scripts', 'Москва is the capital; naïve café in 東京; مرحبا world; हिन्दी'.encode()),
    ('fullwidth', 'ＡＢＣ ａｂｃ'.encode()),
    ('ligature', 'ﬁle ﬁ'.encode()),
    ('circled_roman', 'Ⓐ ⓐ Ⅻ'.encode()),
    ('not_equal', 'a≠b a≮b'.encode()),
    ('specials_in_text', b'[CLS] hello [SEP] a[MASK]b [mask] [UNK][PAD] [MASK'),
    ('unknown_chars', 'x ☃ ⌘ ∑'.encode()),
    ('combining_alone', '\u0301 a \u0301\u0302'.encode()),
    ('invalid_utf8', b'ab\xffcd \xe4\xb8 x\xc3\x28y \xed\xa0\x80z \xf4\x90\x80\x80w \xc0\xafq'),
    ('truncated_utf8_end', b'hello \xe4\xb8'),
    ('many_words', b'one two three four five six seven eight nine ten ' * 3),
]


def write_fixtures(outdir):
    for name, lower in (('cased', False), ('uncased', True)):
        toks = make_vocab(lower)
        vocab = {t: i for i, t in enumerate(toks)}
        with open('%s/%s_vocab.txt' % (outdir, name), 'w', encoding='utf-8', newline='\n') as f:
            for t in toks:
                f.write(t + '\n')
        with open('%s/%s.tsv' % (outdir, name), 'w', encoding='utf-8', newline='\n') as f:
            f.write('# generated by bench/peers/bert_tokenizer_ref.py fixtures (Python %s, Unicode %s)\n'
                    % (sys.version.split()[0], unicodedata.unidata_version))
            f.write('# %s vocabulary %s_vocab.txt (%d tokens), do_lower_case=%s, max_chars_per_word=%d\n'
                    % (name, name, len(toks), lower, MAX_CHARS))
            f.write('# name\thex(text)\tid:start:end ...\tpieces\n')
            for cname, data in CASES:
                pieces = tokenize(data, vocab, lower)
                f.write('%s\t%s\t%s\t%s\n' % (cname, data.hex(), ' '.join('%d:%d:%d' % (i, s, e) for i, s, e, _ in pieces),
                                             ' '.join(p for _, _, _, p in pieces)))
        print('%s: %d tokens, %d cases' % (name, len(toks), len(CASES)))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == 'fixtures':
        write_fixtures(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'tokenize':
        with open(sys.argv[2], encoding='utf-8') as f:
            vocab = {line.rstrip('\n'): i for i, line in enumerate(f)}
        data = sys.stdin.buffer.read()
        for i, s, e, p in tokenize(data, vocab, '--cased' not in sys.argv):
            print('%d\t%d\t%d\t%s' % (i, s, e, p))
    else:
        sys.exit(__doc__)


main()
