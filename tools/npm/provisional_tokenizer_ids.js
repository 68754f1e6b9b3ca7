// Provisional reference ids from transformers.js (@lenml/tokenizers), for working on the
// tokenizer where Python tokenizers/transformers are not installed. Writes the same
// .jsonl layout as scripts/make_tokenizer_fixtures.py, but is NOT the reference: the
// committed fixtures come from that script. transformers.js rewrites the split regex for
// JavaScript, whose \s also matches U+FEFF, so a few texts may differ from Python.
//   node tools/npm/provisional_tokenizer_ids.js TOKENIZER_DIR CORPUS.jsonl OUT.jsonl
"use strict";
const fs = require("fs");
const path = require("path");
const { TokenizerLoader } = require("@lenml/tokenizers");

function main() {
  const [dir, corpusPath, outPath] = process.argv.slice(2);
  if (!outPath) {
    console.error("usage: node provisional_tokenizer_ids.js TOKENIZER_DIR CORPUS.jsonl OUT.jsonl");
    process.exit(2);
  }
  const readJson = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), "utf8"));
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson("tokenizer.json"),
    tokenizerConfig: readJson("tokenizer_config.json"),
  });
  const lines = fs.readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
  const out = [];
  lines.forEach((line, i) => {
    const text = JSON.parse(line).text;
    const ids = Array.from(tok.encode(text, { add_special_tokens: false }));
    // transformers.js refuses to decode an empty list.
    const decode = (skip) =>
      ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
    const decoded = decode(false);
    const decodedSkip = decode(true);
    out.push(JSON.stringify({ i, text, ids, decoded, decoded_skip: decodedSkip }));
  });
  fs.writeFileSync(outPath, out.join("\n") + "\n");
  console.log(`${outPath}: ${out.length} texts (transformers.js, provisional)`);
}

main();
