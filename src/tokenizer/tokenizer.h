// Byte-level BPE tokenizer (the GPT-2 scheme of Qwen2/2.5/3 and Llama 3), loaded from
// GGUF metadata (tokenizer.ggml.*) or a Hugging Face tokenizer.json. encode() follows
// tokenizers' pipeline: added tokens are cut out of the raw text first (longest match at
// the leftmost position), each stretch between them is NFC-normalised when the tokenizer
// asks for it, split by the pre-tokenizer regex, and each piece is merged by BPE rank.
// encode(text) equals transformers' encode(text, add_special_tokens=False): it never adds
// BOS; callers prepend bos_id() when add_bos() is true.
//
// Input that is not valid UTF-8 is first repaired: each ill-formed sequence becomes U+FFFD
// (Python's errors="replace"), so every byte string has a defined encoding. Python and
// Rust callers of tokenizers cannot pass such input at all. decode() maps tokens back to
// bytes and repairs the result the same way. A Tokenizer is immutable once loaded: copies
// are cheap (shared data) and all const methods may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hearth {

class GgufFile;
class GgufWriter;
struct TokenizerData;

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };

inline constexpr int32_t kNoToken = -1;  // "no such token" (e.g. Qwen has no BOS)

class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model, pre, tokens, token_type, merges, bos/eos/eot/eom/padding
  // _token_id, add_bos_token}. Only model "gpt2" is supported; pre selects the split regex
  // (qwen2 -> Qwen2 regex with NFC; llama3 / llama-bpe -> Llama 3 regex; gpt-2 / default or
  // missing -> GPT-2 regex). CONTROL tokens are special, USER_DEFINED ones are added
  // non-special tokens, UNUSED ones ([PAD...]) are never produced.
  static Tokenizer from_gguf(const GgufFile& gguf);

  // Reads a tokenizer.json (model BPE, pre-tokenizer Split regex + ByteLevel or ByteLevel
  // alone, normalizer NFC or none). bos/eos/pad and add_bos_token come from
  // tokenizer_config.json: `config_path`, or the file of that name next to the JSON when
  // empty, if it exists; otherwise a leading special token of a TemplateProcessing
  // post-processor is taken as BOS with add_bos = true.
  static Tokenizer from_hf_json(const std::string& tokenizer_json_path, const std::string& config_path = "");

  // Whatever a -m MODEL argument names: a .gguf file (or the first shard of one), a
  // tokenizer.json, or a folder that holds tokenizer.json (a Hugging Face model folder).
  static Tokenizer from_path(const std::string& path);

  // parse_special = false treats special (CONTROL) token strings as plain text; added
  // non-special tokens such as <think> are still matched, as in tokenizers.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // Throws Error for an id outside [0, n_vocab). skip_special drops CONTROL tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t n_vocab() const;
  const std::string& token_text(int32_t id) const;      // as in the vocabulary: "Ġworld"
  const std::string& token_to_piece(int32_t id) const;  // raw bytes: " world"
  TokenType token_type(int32_t id) const;
  bool is_special(int32_t id) const;  // CONTROL: special added tokens such as <|im_end|>
  // End of generation: eos, eot, eom and, when present, <|im_end|>, <|endoftext|>,
  // <|eot_id|>, <|eom_id|>, <|end_of_text|>.
  bool is_eog(int32_t id) const;
  std::optional<int32_t> find_token(std::string_view text) const;  // by vocabulary text

  int32_t bos_id() const;  // kNoToken when the model has none
  int32_t eos_id() const;
  int32_t pad_id() const;
  bool add_bos() const;
  // GGUF pre-tokenizer name ("qwen2", "llama-bpe", "gpt-2"), or "" for a regex hearth
  // knows no name for.
  const std::string& pre() const;
  const std::string& pre_regex() const;

  // Writes this tokenizer as GGUF metadata: model "gpt2", pre, tokens, token_type, merges
  // ("a b"), special ids, add_bos_token, and tokenizer.chat_template when non-empty. With
  // n_vocab_padded > n_vocab, UNUSED "[PADi]" entries fill the vocabulary up to that size
  // (the embedding rows of Qwen3 run past its last token). Throws Error when pre() is "".
  void write_to_gguf(GgufWriter& writer, const std::string& chat_template = "", int32_t n_vocab_padded = 0) const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerData> data) : d_(std::move(data)) {}
  const TokenizerData& data() const { return *d_; }
  std::shared_ptr<const TokenizerData> d_;
};

// Streaming detokenisation: fed one token at a time, returns the text that became
// complete. Bytes of a multi-byte character split across tokens are held back until the
// character is complete; ill-formed bytes come out as U+FFFD. The concatenation of all
// feed() results and flush() equals decode() of the same ids.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  // Throws Error for an id outside [0, n_vocab), as decode() does.
  std::string feed(int32_t id);
  // Returns what is held back (an incomplete character becomes U+FFFD) and starts over.
  std::string flush();
  bool has_pending() const { return !pending_.empty(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence (at most 3)
};

}  // namespace hearth
