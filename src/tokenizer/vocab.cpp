// build_tokenizer(): turns a loader's VocabSpec into TokenizerData (see vocab.h). Every
// check that a hostile or broken file could trip is an Error naming the file; the
// structures built here are the only ones encode()/decode() read, and all ids in them
// are in range by construction.
#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace hearth {

namespace {

// Raw bytes of a token, by the rule of the tokenizers ByteLevel decoder: map each
// character back through the GPT-2 alphabet, or keep the text as it is when some
// character is outside it (added tokens such as <|im_end|> map to themselves either way).
std::string token_piece(const std::string& text) {
  std::string bytes;
  if (unicode::ByteMap::get().decode(text, bytes)) return bytes;
  return text;
}

void check_special_id(const VocabSpec& spec, int32_t id, const char* what) {
  if (id == kNoToken) return;
  if (id < 0 || static_cast<size_t>(id) >= spec.tokens.size())
    fail(spec.source + ": " + what + " token id " + std::to_string(id) + " is out of range (vocabulary of " +
         std::to_string(spec.tokens.size()) + ")");
}

}  // namespace

std::string pre_name_for_regex(std::string_view regex) {
  if (regex == kRegexQwen2) return "qwen2";
  if (regex == kRegexLlama3) return "llama-bpe";
  if (regex == kRegexGpt2) return "gpt-2";
  return "";
}

std::shared_ptr<const TokenizerData> build_tokenizer(VocabSpec spec) {
  const size_t n = spec.tokens.size();
  HEARTH_CHECK(n > 0, spec.source + ": the tokenizer has an empty vocabulary");
  HEARTH_CHECK(n < (size_t{1} << 31), spec.source + ": the vocabulary has too many tokens");
  HEARTH_ASSERT(spec.types.size() == n);
  check_special_id(spec, spec.bos, "BOS");
  check_special_id(spec, spec.eos, "EOS");
  check_special_id(spec, spec.eot, "EOT");
  check_special_id(spec, spec.eom, "EOM");
  check_special_id(spec, spec.pad, "padding");

  auto d = std::make_shared<TokenizerData>();
  d->text = std::move(spec.tokens);
  d->types = std::move(spec.types);
  d->piece.resize(n);
  d->eog.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    if (d->text[i].empty()) {
      // An id no token claims (a gap in tokenizer.json ids): a padding entry.
      d->text[i] = "[PAD" + std::to_string(i) + "]";
      d->types[i] = TokenType::UNUSED;
    }
    if (d->types[i] != TokenType::UNUSED) d->piece[i] = token_piece(d->text[i]);
  }

  // Vocabulary text -> id. NORMAL tokens win over added ones of the same text, since
  // merges and byte symbols refer to the BPE vocabulary; otherwise the first id wins.
  d->text_to_id.reserve(n);
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < n; ++i) {
      const TokenType t = d->types[i];
      if (t == TokenType::UNUSED || (t == TokenType::NORMAL) != (pass == 0)) continue;
      d->text_to_id.emplace(d->text[i], static_cast<int32_t>(i));
    }
  }
  auto id_of = [&](const std::string& text) -> int32_t {
    auto it = d->text_to_id.find(text);
    return it == d->text_to_id.end() ? kNoToken : it->second;
  };

  std::array<int32_t, 256> byte_tokens{};
  const unicode::ByteMap& bm = unicode::ByteMap::get();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    unicode::append_utf8(ch, bm.byte_to_cp(static_cast<uint8_t>(b)));
    byte_tokens[b] = id_of(ch);
  }
  d->bpe.set_byte_tokens(byte_tokens);

  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    const int32_t ia = id_of(a), ib = id_of(b), iab = id_of(a + b);
    const std::string missing = ia < 0 ? a : ib < 0 ? b : iab < 0 ? a + b : "";
    if (!missing.empty())
      fail(spec.source + ": merge " + std::to_string(r) + " (\"" + a + " " + b + "\"): \"" + missing +
           "\" is not in the vocabulary");
    d->bpe.add({ia, ib, iab});
  }
  d->bpe.finalize();

  d->ignore_merges = spec.ignore_merges;
  if (d->ignore_merges) {
    for (size_t i = 0; i < n; ++i)
      if (d->types[i] == TokenType::NORMAL) d->piece_to_id.emplace(d->piece[i], static_cast<int32_t>(i));
  }

  for (size_t i = 0; i < n; ++i) {
    const TokenType t = d->types[i];
    if ((t == TokenType::CONTROL || t == TokenType::USER_DEFINED) && !d->text[i].empty())
      d->added.push_back({d->text[i], static_cast<int32_t>(i), t == TokenType::CONTROL});
  }
  std::sort(d->added.begin(), d->added.end(), [](const AddedToken& x, const AddedToken& y) {
    const auto fx = static_cast<uint8_t>(x.text[0]), fy = static_cast<uint8_t>(y.text[0]);
    if (fx != fy) return fx < fy;
    if (x.text.size() != y.text.size()) return x.text.size() > y.text.size();
    return x.id < y.id;
  });
  for (int b = 0, k = 0; b <= 256; ++b) {
    while (k < static_cast<int>(d->added.size()) && static_cast<uint8_t>(d->added[k].text[0]) < b) ++k;
    d->added_first[b] = static_cast<uint32_t>(k);
  }

  d->pre = std::make_unique<PreTokenizer>(spec.pre_regex);
  d->pre_name = spec.pre_name;
  d->nfc = spec.nfc;
  d->add_bos = spec.add_bos;
  d->bos = spec.bos, d->eos = spec.eos, d->eot = spec.eot, d->eom = spec.eom, d->pad = spec.pad;

  for (int32_t id : {d->eos, d->eot, d->eom})
    if (id != kNoToken) d->eog[id] = 1;
  for (const char* name : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}) {
    const int32_t id = id_of(name);
    if (id != kNoToken) d->eog[id] = 1;
  }
  return d;
}

}  // namespace hearth
