#!/usr/bin/env python3
"""Goldens for the byte-level BPE tokenizer (engine/tokenizer*.c), made by HF `tokenizers`.

    python3 tests/reference/make_tokenizer_goldens.py                 # goldens (needs ../shared)
    python3 tests/reference/make_tokenizer_goldens.py --unicode-table # also engine/text/unicode-tables.c

Writes under tests/fixtures/tokenizer/:
  mini/tokenizer.json, mini/tokenizer_config.json
      a small tokenizer cut from the DeepSeek-V3 one: its pre-tokenizer, decoder and special
      tokens, the 256 byte symbols and the first MINI_MERGES merges (pair-list merge format,
      so the loader sees both formats), plus the twelve DeepSeek-OCR added tokens.
  ocr-added-tokens.json
      the DeepSeek-OCR added tokens (content and flags as in DeepSeek-OCR's
      tokenizer_config.json); appended to the shared V3 tokenizer.json they get ids
      128815..128826, which is how the tests rebuild the OCR tokenizer without an 8 MB copy.
  goldens-v3.json      ids of the corpus on V3 and on V3 + OCR tokens, decodes (needs shared/)
  goldens-mini.json    ids of the corpus on the mini tokenizer and on variants of it (other
                       pre-tokenizers, normalizer, added-token flags, post-processors)
  pretok-goldens.json  pre-tokenizer pieces for every pre-tokenizer branch, on the corpus
  unicode-classes.json Oniguruma's (the reference's) \\s \\d \\p{L} \\p{N} \\p{P} \\p{S} \\p{M} as
                       code point ranges, probed through tokenizers' Split

The corpus is fixed strings (English, CJK, mixed scripts, digits, whitespace runs, markdown,
LaTeX, code, emoji, embedded added tokens) plus seeded random Unicode strings drawn from every
class the regexes distinguish, including code points Unicode 15-16 assigned.

--unicode-table regenerates engine/text/unicode-tables.c: for every general category, the code
points the reference puts in it beyond Unicode 14.0 (PCRE2 10.42's tables, which are also
Python 3.11's unicodedata: the script checks that). Run it only when the reference changes.
"""
import argparse
import copy
import json
import os
import random
import sys
import unicodedata

from tokenizers import Regex, Tokenizer, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SHARED = os.environ.get("DSOCR_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
V3_DIR = os.path.join(SHARED, "tokenizers", "deepseek-v3")
MINI_MERGES = 3000
N_RANDOM = 240

# DeepSeek-OCR's additions to the DeepSeek-V3 tokenizer (its tokenizer_config.json
# added_tokens_decoder, ids 128815..128826): all special, not normalized.
OCR_TOKENS = ["<image>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>",
              "<td>", "</td>", "<tr>", "</tr>", "<|User|>", "<|Assistant|>"]


def added_token(content, tid, special=True, normalized=False, lstrip=False, rstrip=False,
                single_word=False):
    return {"id": tid, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


# ---------------------------------------------------------------- Unicode classes

ALL_CPS = [c for c in range(1, 0x110000) if not (0xD800 <= c <= 0xDFFF)]
ALL_TEXT = "".join(chr(c) for c in ALL_CPS)


def probe(pattern):
    """Code points a pattern matches in the reference, via Split(Removed) over every char."""
    res = pre_tokenizers.Split(Regex(pattern), "removed").pre_tokenize_str(ALL_TEXT)
    keep = bytearray(len(ALL_CPS))
    for _, (a, b) in res:
        keep[a:b] = b"\x01" * (b - a)
    return {ALL_CPS[i] for i in range(len(ALL_CPS)) if not keep[i]}


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


GCS = ["Cc", "Cf", "Co", "Ll", "Lm", "Lo", "Lt", "Lu", "Mc", "Me", "Mn", "Nd", "Nl", "No",
       "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "Sc", "Sk", "Sm", "So", "Zl", "Zp", "Zs"]


def write_unicode_table():
    if unicodedata.unidata_version != "14.0.0":
        sys.exit("--unicode-table needs Python's unicodedata at Unicode 14.0.0 (Python 3.11), "
                 "the version of PCRE2 10.42's tables; this Python has "
                 + unicodedata.unidata_version)
    delta = {}
    for gc in GCS:
        hf = probe(r"\p{%s}" % gc)
        py = {c for c in ALL_CPS if unicodedata.category(chr(c)) == gc}
        delta[gc] = hf - py
        print(f"  {gc}: {len(hf)} code points, {len(delta[gc])} newer than Unicode 14.0")
    for major in "CLMNPSZ":
        delta[major] = set().union(*[delta[g] for g in GCS if g[0] == major])
    names = ["C", "Cc", "Cf", "Cn", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc",
             "Me", "Mn", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps",
             "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs"]
    lines = []
    for name in names:
        items = ["\\\\x{%X}" % a if a == b else "\\\\x{%X}-\\\\x{%X}" % (a, b)
                 for a, b in ranges(delta.get(name, set()))]
        chunks = [""]
        for it in items:  # split C string literals between items only
            if len(chunks[-1]) + len(it) > 80:
                chunks.append("")
            chunks[-1] += it
        body = "\n".join('    "%s"' % c for c in chunks)
        lines.append('  { "%s",\n%s },' % (name, body))
    import tokenizers
    src = f"""/* unicode-tables.c: generated by tests/reference/make_tokenizer_goldens.py
 * --unicode-table from tokenizers {tokenizers.__version__}; do not edit.
 *
 * For each general category, the code points the reference's regex engine (Oniguruma inside
 * `tokenizers`) puts in it that Unicode 14.0 (PCRE2 10.42, Debian 12) leaves unassigned or
 * classes elsewhere, as PCRE2 class items. A newer PCRE2 already holds some of them; listing
 * them again changes nothing.
 */
#include "tokenizer-private.h"

#include <string.h>

static const struct {{
  const char *gc;
  const char *items;
}} deltas[] = {{
{chr(10).join(lines)}
}};

const char *
dsocr_tok_unicode_delta (const char *gc)
{{
  for (guint i = 0; i < G_N_ELEMENTS (deltas); i++)
    if (strcmp (deltas[i].gc, gc) == 0)
      return deltas[i].items;
  return NULL;
}}
"""
    with open(os.path.join(ROOT, "engine", "text", "unicode-tables.c"), "w") as f:
        f.write(src)
    print("wrote engine/text/unicode-tables.c")


def class_goldens():
    classes = {
        "s": r"\s", "S": r"\S", "d": r"\d", "L": r"\p{L}", "N": r"\p{N}", "P": r"\p{P}",
        "S_sym": r"\p{S}", "M": r"\p{M}", "Lu": r"\p{Lu}", "notL": r"\P{L}",
        "v3_class": r"[^\r\n\p{L}\p{P}\p{S}]", "gpt2_class": r"[^\s\p{L}\p{N}]",
        "w": r"\w", "W": r"\W", "h": r"\h+",
    }
    sets, out = {}, {}
    for name, pat in classes.items():
        sets[name] = probe(pat)
        out[name] = {"pattern": pat, "ranges": ranges(sets[name])}
        print(f"  class {name}: {len(sets[name])} code points")
    return sets, out


# ---------------------------------------------------------------- corpus

FIXED = [
    "Hello world", "Hello, world! How are you doing today?", " leading space", "trailing space ",
    "  two leading", "I'm sure it's fine, isn't it? We'll see; they'd've known.",
    "The quick brown fox jumps over the lazy dog.",
    "你好，世界！今天天气很好。", "深度求索是一家人工智能公司，专注于大语言模型的研究与开发",
    "日本語のテキストです。カタカナとひらがな、漢字。", "한국어 텍스트도 있습니다.",
    "Mixed 中文 and English 混合 text", "Привет, мир! Ελληνικά κείμενα. مرحبا بالعالم",
    "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Ünïcödé àccénts café naïve",
    "1234567890", "3.14159265358979", "year 2024, 12,345.67 USD", "٣٤٥ ١٢٣ ۴۵۶", "１２３４５",
    "phone: +1 (555) 123-4567", "x1y22z333w4444",
    "a  b   c    d", "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4",
    "\n\n\nthree newlines", "spaces   \n   mixed \t\n", "\u3000全角空格\u3000", "nb\u00a0sp\u00a0here",
    "line\u2028sep\u2029para", "mongolian\u180evowel", "en\u2002quad\u2003em\u205fmath",
    "| Name | Age |\n|------|-----|\n| Alice | 30 |\n| Bob | 25 |",
    "# Title\n\n## Subtitle\n\n- item 1\n- item 2\n\n**bold** and *italic* `code`",
    r"$\frac{a}{b} + \sqrt{x^2 + y^2} = \int_0^\infty e^{-x} dx$",
    r"\begin{equation} E = mc^2 \end{equation}", r"\mathbf{X}_{i,j} \leq \alpha",
    "def foo(x):\n    return x ** 2  # square\n", "int main(void) { printf(\"%d\\n\", 42); }",
    "for (let i = 0; i < n; i++) { arr[i] = i * 2; }", "https://example.com/path?q=1&r=2#frag",
    "<div class=\"a\"><span>text</span></div>", "{\"key\": [1, 2, {\"n\": null}]}",
    "😀 emoji 🎉🎉 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇩🇪", "❤️‍🔥 ☃ ★☆ ♠♣", "e\u0301 combining a\u0308\u0323",
    "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>", "<｜User｜>question<｜Assistant｜>answer",
    "text<|EOT|>more", "<｜place▁holder▁no▁5｜><｜place▁holder▁no▁799｜>",
    "<｜fim▁begin｜>code<｜fim▁hole｜>more<｜fim▁end｜>",
    "<image>\nFree OCR.", "<image>\n<|grounding|>Convert the document to markdown.",
    "<image>\nLocate <|ref|>the red car<|/ref|> in the image.",
    "<|det|>[[10, 20, 30, 40]]<|/det|>", "<tr><td>cell</td><td>2</td></tr>",
    "<|User|>hi<|Assistant|>hello", "<im age> <|ref| > <｜User", "<<image>>", "<image><image>",
    "!!!???...,,,", "a.b.c", "'s 't 're 've 'm 'll 'd", "'S 'T 'RE", "don't won't can't",
    "__init__ self.x_y", "@user #hashtag $var %mod ^caret &amp *star", "---===+++",
    "\U00010D40\U00010D41 garay digits", "\U0001CC00 legacy symbols \U00011B00",
    "\U0002EBF0\U0002EBF1 cjk ext I", "\u1C89\u1C8A cyrillic", "x\u0897y", "",
    " ", "  ", "\n", "a", "ab", "\t", " \n ", "!", "1", "12", "123", "1234",
]

# Characters the random strings draw from, by the role they play in the regexes.
WS = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x180E, 0x2000, 0x2005, 0x200A,
      0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF]
ASCII_PUNCT = [ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]


def random_strings(rng, sets, newer):
    pools = {
        "ascii": [ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"],
        "digit": [ord(c) for c in "0123456789"], "punct": ASCII_PUNCT, "ws": WS,
        "L": sorted(sets["L"]), "N": sorted(sets["N"]), "P": sorted(sets["P"]),
        "S": sorted(sets["S_sym"]), "M": sorted(sets["M"]), "newer": sorted(newer),
        "cjk": list(range(0x4E00, 0x9FA6)) + list(range(0x3040, 0x3100)),
        "emoji": list(range(0x1F300, 0x1F650)) + [0x200D, 0xFE0F],
    }
    weights = {"ascii": 6, "digit": 3, "punct": 3, "ws": 3, "L": 3, "N": 2, "P": 2, "S": 2,
               "M": 2, "newer": 2, "cjk": 3, "emoji": 1, "any": 2}
    names = list(weights)
    out = []
    for _ in range(N_RANDOM):
        n = rng.randint(1, 40)
        chars = []
        for _ in range(n):
            pool = rng.choices(names, [weights[k] for k in names])[0]
            if pool == "any":
                c = rng.randint(1, 0x10FFFF)
                while 0xD800 <= c <= 0xDFFF:
                    c = rng.randint(1, 0x10FFFF)
            else:
                c = rng.choice(pools[pool])
            run = rng.choice([1, 1, 1, 2, 3, 5]) if pool in ("ws", "digit", "cjk", "ascii") else 1
            chars.append(chr(c) * run)
        out.append("".join(chars))
    return out


def long_strings():
    return [
        " " * 3000 + "x", "\n" * 500 + "end", "9" * 301,
        "人工智能" * 80, "ab" * 400, ("The model reads the page. " * 40).strip(),
        "\u3000" * 100 + "全角", "-" * 200 + "|" + "=" * 200,
    ]


# ---------------------------------------------------------------- tokenizers

def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def mini_tokenizer(v3):
    """A small DeepSeek-V3-shaped tokenizer: dense ids, the first MINI_MERGES merges."""
    vocab_v3 = v3["model"]["vocab"]
    merges = [m.split(" ") for m in v3["model"]["merges"][:MINI_MERGES]]
    tokens = [t["content"] for t in v3["added_tokens"][:3]]  # bos, eos, pad at 0, 1, 2
    byte_syms = sorted({t for t in vocab_v3 if len(t) == 1}, key=lambda t: vocab_v3[t])
    tokens += [t for t in byte_syms if t not in tokens]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [dict(t) for t in v3["added_tokens"][:3]]
    added.append(added_token("<|EOT|>", 0, special=True, normalized=True))
    added.append(added_token("<｜User｜>", 0, special=False, normalized=True))
    added.append(added_token("<｜Assistant｜>", 0, special=False, normalized=True))
    added += [added_token(t, 0) for t in OCR_TOKENS]
    nxt = len(vocab)
    for t in added:
        if t["content"] in vocab:
            t["id"] = vocab[t["content"]]
        else:
            t["id"] = nxt
            nxt += 1
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": v3["normalizer"], "pre_tokenizer": v3["pre_tokenizer"],
        "post_processor": v3["post_processor"], "decoder": v3["decoder"],
        "model": dict(v3["model"], vocab=vocab, merges=merges),
    }


def with_ocr_tokens(v3, ocr):
    j = copy.deepcopy(v3)
    j["added_tokens"] = j["added_tokens"] + ocr
    return j


def byte_level_step(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True,
            "use_regex": regex}


def split(pattern, behavior="Isolated", invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
          r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def pretok_configs(v3_pre):
    bl = byte_level_step()
    return {
        "deepseek-v3": v3_pre,
        "gpt2": byte_level_step(prefix=True, regex=True),
        "bytelevel-regex-noprefix": byte_level_step(regex=True),
        "bytelevel-prefix-noregex": byte_level_step(prefix=True),
        "llama3": seq(split(LLAMA3), bl),
        "space-removed": seq(split(" ", "Removed", literal=True), bl),
        "space-prev": seq(split(" ", "MergedWithPrevious", literal=True), bl),
        "space-next": seq(split(" ", "MergedWithNext", literal=True), bl),
        "space-contiguous": seq(split(" ", "Contiguous", literal=True), bl),
        "punct-literal": seq(split("a.b", "Isolated", literal=True), bl),
        "words-invert": seq(split(r"\p{L}+", "Removed", invert=True), bl),
        "words-invert-prev": seq(split(r"\w+", "MergedWithPrevious", invert=True), bl),
        "digits-individual": seq({"type": "Digits", "individual_digits": True}, bl),
        "digits-contiguous": seq({"type": "Digits", "individual_digits": False}, bl),
        "empty-star": seq(split("a*"), bl),
        "empty-alt": seq(split("x*|b", "Contiguous"), bl),
        "empty-boundary": seq(split(r"\b"), bl),
        "anchors": seq(split(r"^.|.$"), bl),
        "dotall": seq(split(r"(?m:a.b)"), bl),
        "hex": seq(split(r"\h+"), bl),
        "word-boundary": seq(split(r"\w+\b|\B."), bl),
        "props": seq(split(r"\p{Lu}+|\p{^L}+"), bl),
        "not-number": seq(split(r"\P{N}+", "MergedWithNext"), bl),
        "lazy-ruby": seq(split(r"a{,2}|\d{2,}?"), bl),
        "nested-seq": seq(seq(split(r"\p{N}{1,3}")), split(r"\s+(?!\S)|\s+"), bl),
    }


def pieces_of(pre, text):
    """Reference pieces as raw text: HF returns them in the byte-level alphabet."""
    from tokenizers.pre_tokenizers import ByteLevel
    inv = {c: b for b, c in enumerate_byte_chars()}
    out = []
    for piece, _ in pre.pre_tokenize_str(text):
        out.append(bytes(inv[c] for c in piece).decode("utf-8"))
    return out


_BYTE_CHARS = None


def enumerate_byte_chars():
    global _BYTE_CHARS
    if _BYTE_CHARS is None:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_CHARS = [(b, chr(c)) for b, c in zip(bs, cs)]
    return _BYTE_CHARS


def mini_variants():
    lstrip_tokens = [
        added_token("<mask>", 0, special=True, lstrip=True),
        added_token("[R]", 0, special=False, rstrip=True),
        added_token("both", 0, special=False, lstrip=True, rstrip=True, normalized=False),
        added_token("word", 0, special=False, single_word=True, normalized=False),
        added_token("café", 0, special=False, normalized=True),
        added_token("<image>", 0),  # duplicate content: the later flags win
        added_token("", 0),         # ignored
        added_token("Hello", 0, special=False, normalized=False),  # already in vocab? maybe
    ]
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<｜begin▁of▁sentence｜>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "<｜end▁of▁sentence｜>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {
                    "<｜begin▁of▁sentence｜>": {"id": "<｜begin▁of▁sentence｜>", "ids": [0],
                                               "tokens": ["<｜begin▁of▁sentence｜>"]},
                    "<｜end▁of▁sentence｜>": {"id": "<｜end▁of▁sentence｜>", "ids": [1],
                                             "tokens": ["<｜end▁of▁sentence｜>"]}}}
    return {
        "base": {},
        "gpt2-flags": {"pre_tokenizer": byte_level_step(prefix=True, regex=True),
                       "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
                       "extra_added": lstrip_tokens,
                       "post_processor": {"type": "RobertaProcessing",
                                          "sep": ["<｜end▁of▁sentence｜>", 1],
                                          "cls": ["<｜begin▁of▁sentence｜>", 0],
                                          "trim_offsets": True, "add_prefix_space": True}},
        "llama3": {"pre_tokenizer": seq(split(LLAMA3), byte_level_step()),
                   "ignore_merges": True,
                   "post_processor": {"type": "Sequence",
                                      "processors": [byte_level_step(), template]}},
        "nfd-bert": {"normalizer": {"type": "NFD"},
                      "post_processor": {"type": "BertProcessing",
                                         "sep": ["<｜end▁of▁sentence｜>", 1],
                                         "cls": ["<｜begin▁of▁sentence｜>", 0]},
                      "decoder": None},
    }


def apply_variant(base, v):
    j = copy.deepcopy(base)
    for k in ("pre_tokenizer", "normalizer", "post_processor", "decoder"):
        if k in v:
            j[k] = v[k]
    if v.get("ignore_merges"):
        j["model"]["ignore_merges"] = True
    if "extra_added" in v:
        j["added_tokens"] = j["added_tokens"] + copy.deepcopy(v["extra_added"])
    return j


def tk(j):
    return Tokenizer.from_str(json.dumps(j, ensure_ascii=False))


def encode_cases(tok, texts, special=False):
    cases = []
    for t in texts:
        c = {"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}
        if special:
            c["ids_special"] = tok.encode(t, add_special_tokens=True).ids
        cases.append(c)
    return cases


def decode_cases(tok, rng, n_vocab, id_lists):
    out = []
    for ids in id_lists:
        out.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                    "text_skip": tok.decode(ids, skip_special_tokens=True)})
    for _ in range(40):
        ids = [rng.randrange(n_vocab) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.3:
            ids.append(n_vocab + 1000)  # unknown ids are dropped
        out.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                    "text_skip": tok.decode(ids, skip_special_tokens=True)})
    return out


def dump(name, obj):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unicode-table", action="store_true")
    args = ap.parse_args()
    import tokenizers
    if args.unicode_table:
        write_unicode_table()

    v3 = load_json(os.path.join(V3_DIR, "tokenizer.json"))
    sets, class_out = class_goldens()
    newer = set()
    for name in ("L", "N", "P", "S_sym", "M"):
        newer |= {c for c in sets[name] if unicodedata.category(chr(c)) == "Cn"}
    dump("unicode-classes.json", {"tokenizers": tokenizers.__version__, "classes": class_out})

    rng = random.Random(20240611)
    texts = FIXED + random_strings(rng, sets, newer) + long_strings()

    # OCR added tokens, and the V3-derived mini tokenizer
    ocr = [added_token(t, 128815 + i) for i, t in enumerate(OCR_TOKENS)]
    dump("ocr-added-tokens.json", ocr)
    mini = mini_tokenizer(v3)
    dump("mini/tokenizer.json", mini)
    v3_config = load_json(os.path.join(V3_DIR, "tokenizer_config.json"))
    mini_config = {k: v3_config[k] for k in ("add_bos_token", "add_eos_token", "bos_token",
                                              "eos_token", "legacy", "tokenizer_class")}
    mini_config["pad_token"] = "<｜▁pad▁｜>"
    dump("mini/tokenizer_config.json", mini_config)

    # V3 and V3 + OCR
    v3_tok = Tokenizer.from_file(os.path.join(V3_DIR, "tokenizer.json"))
    ocr_tok = tk(with_ocr_tokens(v3, ocr))
    assert [ocr_tok.token_to_id(t) for t in OCR_TOKENS] == list(range(128815, 128827))
    v3_cases = encode_cases(v3_tok, texts)
    ocr_texts = [t for t in texts if "<" in t] + [
        "<image>" * 3 + "\nParse the figure.", "<tr><td>1</td></tr>\n<|User|>", "<|ref|>x<|/ref|><|det|>"]
    gold_v3 = {
        "tokenizers": tokenizers.__version__,
        "vocab_size": v3_tok.get_vocab_size(), "vocab_size_ocr": ocr_tok.get_vocab_size(),
        "cases": v3_cases,
        "ocr_cases": encode_cases(ocr_tok, ocr_texts),
        "decode": decode_cases(v3_tok, rng, v3_tok.get_vocab_size(),
                               [c["ids"] for c in v3_cases[:60]]),
        "ocr_decode": decode_cases(ocr_tok, rng, ocr_tok.get_vocab_size(),
                                   [[0, 128815, 128815, 201, 128820, 1]]),
    }
    dump("goldens-v3.json", gold_v3)

    # mini and its variants
    gold_mini = {"tokenizers": tokenizers.__version__, "variants": {}}
    for name, v in mini_variants().items():
        j = apply_variant(mini, v)
        t = tk(j)
        entry = {"override": v, "vocab_size": t.get_vocab_size(),
                 "cases": encode_cases(t, texts if name == "base" else texts[:len(FIXED) + 60],
                                       special=True)}
        entry["decode"] = decode_cases(t, rng, t.get_vocab_size(),
                                       [c["ids_special"] for c in entry["cases"][:30]])
        gold_mini["variants"][name] = entry
    # extra texts for the flags variant
    flags_texts = ["a <mask> b", "a   <mask>   b", "x[R]   y", "  both  ", "abothc", "a both c",
                   "word", "a word b", "sword", "words", "word!", "<mask><mask>", " [R] [R] ",
                   "cafe\u0301", "café", "Hello there", "HelloHello", "<image>x"]
    t = tk(apply_variant(mini, mini_variants()["gpt2-flags"]))
    gold_mini["variants"]["gpt2-flags"]["cases"] += encode_cases(t, flags_texts, special=True)
    dump("goldens-mini.json", gold_mini)

    # pre-tokenizer pieces
    gold_pre = {"tokenizers": tokenizers.__version__, "configs": {}}
    for name, cfg in pretok_configs(v3["pre_tokenizer"]).items():
        base = copy.deepcopy(mini)
        base["pre_tokenizer"] = cfg
        pre = tk(base).pre_tokenizer
        sel = texts if name in ("deepseek-v3", "gpt2", "llama3") else texts[:len(FIXED) + 30]
        gold_pre["configs"][name] = {
            "pre_tokenizer": cfg,
            "cases": [{"text": t, "pieces": pieces_of(pre, t)} for t in sel]}
    dump("pretok-goldens.json", gold_pre)


if __name__ == "__main__":
    main()
