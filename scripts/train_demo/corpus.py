"""Deterministic training corpus for hearth's demo model, built from the Python standard
library found next to the running interpreter (PSF licence).

Files are listed in sorted order and split by a hash of their relative path: about 3% are
held out (never trained on, never seen by the tokenizer trainer). Each training file gives
  - one plain document: the file's source text;
  - one ChatML pair per suitable function (see `function_pairs`): the request is built from
    the docstring or the signature, the answer is the function's source, dedented:
      <|im_start|>user\n{request}<|im_end|>\n<|im_start|>assistant\n{code}<|im_end|>\n
Documents are shuffled with a fixed seed and joined with <|endoftext|>. Nothing here depends
on the machine other than the standard library's contents (its version is recorded).
"""
import ast
import hashlib
import os
import random
import re
import sys
import sysconfig
import textwrap

EOT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [EOT, IM_START, IM_END]

# Skipped folders: tests (some distributions ship them, some don't), generated tables
# (encodings, pydoc_data) and installed third-party packages.
SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "encodings", "pydoc_data"}
MAX_FILE_BYTES = 300_000
HELDOUT_PERCENT = 3

# Imperative first words of docstrings ("Return the ...") turned into "returns the ...".
VERBS = {
    "return", "get", "set", "compute", "calculate", "convert", "create", "make", "build", "check", "test", "find",
    "read", "write", "parse", "format", "add", "remove", "delete", "update", "load", "save", "open", "close",
    "generate", "split", "join", "encode", "decode", "copy", "move", "print", "send", "receive", "handle", "process",
    "apply", "call", "run", "start", "stop", "reset", "register", "validate", "normalize", "escape", "quote",
    "unquote", "strip", "replace", "search", "match", "sort", "count", "append", "insert", "extend", "yield",
    "wrap", "construct", "initialize", "determine", "extract", "fetch", "emit", "raise", "resolve", "translate",
    "compare", "merge", "flush", "clear", "list", "iterate", "install", "compile", "execute", "evaluate", "push",
    "pop", "release", "acquire", "wait", "lock", "truncate", "round", "pack", "unpack", "serialize",
}


def stdlib_dir():
    return sysconfig.get_paths()["stdlib"]


def is_heldout(relpath):
    return int(hashlib.md5(relpath.encode()).hexdigest(), 16) % 100 < HELDOUT_PERCENT


def source_files(root):
    """(relpath, text) of every usable .py file under root, sorted by relpath."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_PARTS)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            if os.path.getsize(path) > MAX_FILE_BYTES:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            if text.strip():
                out.append((os.path.relpath(path, root).replace(os.sep, "/"), text))
    out.sort()
    return out


def third_person(word):
    if word.endswith(("s", "sh", "ch", "x", "z")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def signature(node):
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [p.arg for p in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return ", ".join(n for n in names if n not in ("self", "cls"))


def request_for(node, key):
    """A user request for function `node`; `key` (a hash) picks among the phrasings."""
    doc = ast.get_docstring(node)
    sig = f"{node.name}({signature(node)})"
    if doc:
        first = re.sub(r"\s+", " ", doc.strip().split("\n\n")[0]).strip()
        if 8 <= len(first) <= 300:
            words = first.split(" ", 1)
            if words[0].lower() in VERBS and len(words) == 2 and key % 4 != 3:
                phrase = third_person(words[0].lower()) + " " + words[1].rstrip(".")
                return f"Write a function that {phrase}" if key % 2 == 0 else f"Write a Python function {sig} that {phrase}."
            return first if key % 2 == 0 else f"Write a Python function `{node.name}`: {first}"
    return f"Write a Python function named {node.name} with parameters ({signature(node)})." if key % 2 == 0 \
        else f"Implement {sig} in Python."


def function_pairs(relpath, text):
    """ChatML request/answer documents for the file's functions and methods."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines(keepends=True)
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if node.name.startswith("__") and node.name.endswith("__"):
            continue
        n_lines = node.end_lineno - node.lineno + 1
        if n_lines < 3 or n_lines > 40:
            continue
        code = textwrap.dedent("".join(lines[node.lineno - 1:node.end_lineno])).rstrip() + "\n"
        if len(code) > 2000 or not code.lstrip().startswith(("def ", "async def ")):
            continue
        key = int(hashlib.md5(f"{relpath}:{node.lineno}".encode()).hexdigest(), 16)
        pairs.append(f"{IM_START}user\n{request_for(node, key)}{IM_END}\n{IM_START}assistant\n{code}{IM_END}\n")
    return pairs


def build(root=None, seed=1234, quick=False):
    """Returns {"train_docs", "tokenizer_texts", "heldout_files", "meta"}.

    train_docs: shuffled documents (plain files and ChatML pairs) to join with <|endoftext|>;
    tokenizer_texts: the training files' plain text (the BPE trainer sees no special tokens);
    heldout_files: [(relpath, text)] of held-out files, sorted.
    """
    root = root or stdlib_dir()
    files = source_files(root)
    train, heldout = [], []
    for relpath, text in files:
        (heldout if is_heldout(relpath) else train).append((relpath, text))
    if quick:
        train = train[::8]
    docs = []
    n_pairs = 0
    for relpath, text in train:
        docs.append(text)
        pairs = function_pairs(relpath, text)
        n_pairs += len(pairs)
        docs.extend(pairs)
    random.Random(seed).shuffle(docs)
    meta = {
        "stdlib": root,
        "python": sys.version.split()[0],
        "train_files": len(train),
        "heldout_files": len(heldout),
        "chat_pairs": n_pairs,
        "train_bytes": sum(len(d.encode()) for d in docs),
        "corpus_sha256": hashlib.sha256("\x00".join(docs).encode()).hexdigest(),
    }
    return {"train_docs": docs, "tokenizer_texts": [t for _, t in train], "heldout_files": heldout, "meta": meta}


if __name__ == "__main__":
    c = build(quick="--quick" in sys.argv)
    print(c["meta"])
    for d in c["train_docs"]:
        if d.startswith(IM_START):
            print(d)
            break
