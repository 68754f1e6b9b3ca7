// Internal to the tokenizer module: the plain description a loader produces (VocabSpec)
// and the immutable, indexed form the Tokenizer runs on (TokenizerData). Loaders only
// parse their file format into a VocabSpec; build_tokenizer() validates it (ids in
// range, merges made of vocabulary tokens) and builds every lookup structure, so the
// GGUF and tokenizer.json paths cannot drift apart.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace hearth {

struct VocabSpec {
  std::string source;               // file name, for error messages
  std::vector<std::string> tokens;  // (n_vocab) vocabulary text; "" for an id with no token
  std::vector<TokenType> types;     // (n_vocab)
  std::vector<std::pair<std::string, std::string>> merges;  // (n_merges) in rank order
  std::string pre_name;             // GGUF pre name, or "" for a custom regex
  std::string pre_regex;            // Oniguruma dialect
  bool nfc = false;                 // NFC-normalise text between added tokens
  bool ignore_merges = false;       // a piece that is itself a token is emitted whole
  bool add_bos = false;
  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, pad = kNoToken;
};

// Heterogeneous lookup of std::string keys by std::string_view. The keys are short
// (tokens, pieces), so a simple 8-bytes-at-a-time multiply-xor beats the library hash.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    uint64_t tail = 0;
    std::memcpy(&tail, s.data() + i, s.size() - i);
    h = (h ^ tail) * 0x94D049BB133111EBull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A token cut out of the raw text before splitting (CONTROL or USER_DEFINED).
struct AddedToken {
  std::string text;
  int32_t id = 0;
  bool special = false;  // CONTROL: only matched when parse_special is on
};

struct TokenizerData {
  std::vector<std::string> text;    // (n_vocab) vocabulary text
  std::vector<std::string> piece;   // (n_vocab) raw bytes each token decodes to
  std::vector<TokenType> types;     // (n_vocab)
  std::vector<uint8_t> eog;         // (n_vocab) 1 for end-of-generation tokens
  StringIdMap text_to_id;           // every token but UNUSED ones
  StringIdMap piece_to_id;          // raw bytes -> NORMAL token, for ignore_merges

  // Added tokens sorted by first byte, then longest first; added_first[b] ..
  // added_first[b + 1] is the range of those starting with byte b.
  std::vector<AddedToken> added;
  std::array<uint32_t, 257> added_first{};

  BpeMerges bpe;
  std::unique_ptr<PreTokenizer> pre;
  std::string pre_name;
  bool nfc = false;
  bool ignore_merges = false;
  bool add_bos = false;
  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, pad = kNoToken;
};

// Validates `spec` and builds the lookup structures. Throws Error naming spec.source.
std::shared_ptr<const TokenizerData> build_tokenizer(VocabSpec spec);

// The GGUF pre name of a known split regex, or "" (used when exporting tokenizer.json).
std::string pre_name_for_regex(std::string_view regex);

}  // namespace hearth
