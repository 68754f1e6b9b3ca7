// Provisional reference ids for working on the tokenizer where Python tokenizers and
// transformers are not installed. Writes the same .jsonl layout as
// scripts/make_tokenizer_fixtures.py, but the committed fixtures come from that script.
//   node tools/npm/provisional_tokenizer_ids.js TOKENIZER_DIR CORPUS.jsonl OUT.jsonl [--rust]
// Default engine: transformers.js (@lenml/tokenizers, installed by scripts/setup.sh); it
// rewrites the split regex for JavaScript, so rare texts may differ from Python.
// --rust: Hugging Face's own Rust tokenizers through its Node binding (npm package
// "tokenizers", same Rust core as the Python package; not a project dependency, so point
// NODE_PATH at a node_modules that has it).
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
  const rust = process.argv.includes("--rust");
  const [dir, corpusPath, outPath] = args;
  if (!outPath) {
    console.error("usage: node provisional_tokenizer_ids.js TOKENIZER_DIR CORPUS.jsonl OUT.jsonl [--rust]");
    process.exit(2);
  }
  const readJson = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), "utf8"));
  let encode, decode;
  if (rust) {
    const { Tokenizer } = require("tokenizers");
    const tok = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
    encode = async (text) => (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    decode = (ids, skip) => tok.decode(ids, skip);
  } else {
    const { TokenizerLoader } = require("@lenml/tokenizers");
    const tok = TokenizerLoader.fromPreTrained({
      tokenizerJSON: readJson("tokenizer.json"),
      tokenizerConfig: readJson("tokenizer_config.json"),
    });
    encode = async (text) => Array.from(tok.encode(text, { add_special_tokens: false }));
    // transformers.js refuses to decode an empty list.
    decode = async (ids, skip) =>
      ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
  }
  const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
  const out = [];
  for (let i = 0; i < lines.length; ++i) {
    const text = JSON.parse(lines[i]).text;
    const ids = await encode(text);
    const row = { i, text, ids, decoded: await decode(ids, false), decoded_skip: await decode(ids, true) };
    out.push(JSON.stringify(row));
  }
  fs.writeFileSync(outPath, out.join("\n") + "\n");
  console.log(`${outPath}: ${out.length} texts (${rust ? "tokenizers, Rust" : "transformers.js"}, provisional)`);
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
