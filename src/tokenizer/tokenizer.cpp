// Tokenizer::encode / decode, the accessors, and IncrementalDecoder (see tokenizer.h).
// encode() of a long text keeps a per-call cache from piece to ids: natural text repeats
// its words, so most pieces are merged once (about a quarter less work on large inputs).
// Short texts skip it, since filling it costs more than it saves there. The cache is
// local to the call, which keeps the Tokenizer immutable and free of locks.
#include "tokenizer/tokenizer.h"

#include <cstring>

#include "core/error.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace hearth {

namespace {

// Pieces longer than this are rare and not worth caching (they would only fill the cache).
constexpr size_t kMaxCachedPiece = 48;
constexpr size_t kMaxCacheEntries = size_t{1} << 16;
constexpr size_t kMinCachedText = 16 * 1024;

struct IdRange {
  uint32_t start = 0;  // index into the output ids of the first occurrence
  uint32_t count = 0;
};

class Encoder {
 public:
  Encoder(const TokenizerData& d, std::vector<int32_t>& out, bool use_cache)
      : d_(d), out_(out), use_cache_(use_cache) {}

  // One stretch of text between added tokens: normalise, split, merge.
  void segment(std::string_view text) {
    if (text.empty()) return;
    std::string normalized;
    if (d_.nfc) {
      normalized = unicode::nfc(text);
      text = normalized;
    }
    d_.pre->split(text, [this](std::string_view p) { piece(p); });
  }

 private:
  void piece(std::string_view p) {
    if (p.size() == 1) {
      const int32_t id = d_.bpe.byte_token(static_cast<uint8_t>(p[0]));
      if (id >= 0) out_.push_back(id);
      return;
    }
    const bool cacheable = use_cache_ && p.size() <= kMaxCachedPiece && out_.size() < UINT32_MAX;
    if (cacheable) {
      auto it = cache_.find(p);
      if (it != cache_.end()) {
        const IdRange r = it->second;
        for (uint32_t k = 0; k < r.count; ++k) {
          const int32_t id = out_[r.start + k];  // copied first: push_back may reallocate
          out_.push_back(id);
        }
        return;
      }
    }
    const size_t start = out_.size();
    bool whole = false;
    if (d_.ignore_merges) {
      auto it = d_.piece_to_id.find(p);
      if (it != d_.piece_to_id.end()) {
        out_.push_back(it->second);
        whole = true;
      }
    }
    if (!whole) d_.bpe.encode_piece(p, out_, scratch_);
    if (cacheable && cache_.size() < kMaxCacheEntries)
      cache_.emplace(std::string(p), IdRange{static_cast<uint32_t>(start), static_cast<uint32_t>(out_.size() - start)});
  }

  using Cache = std::unordered_map<std::string, IdRange, StringHash, std::equal_to<>>;

  const TokenizerData& d_;
  std::vector<int32_t>& out_;
  bool use_cache_;
  BpeScratch scratch_;
  Cache cache_;
};

// The longest added token starting at text[pos], or nullptr.
const AddedToken* match_added(const TokenizerData& d, std::string_view text, size_t pos, bool parse_special) {
  const auto b = static_cast<uint8_t>(text[pos]);
  const size_t rest = text.size() - pos;
  for (uint32_t k = d.added_first[b]; k < d.added_first[b + 1]; ++k) {
    const AddedToken& t = d.added[k];
    if (t.special && !parse_special) continue;
    if (t.text.size() <= rest && std::memcmp(text.data() + pos, t.text.data(), t.text.size()) == 0) return &t;
  }
  return nullptr;
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  const TokenizerData& d = data();
  std::string repaired;
  if (!unicode::is_valid_utf8(text)) {
    repaired = unicode::replace_invalid_utf8(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  Encoder enc(d, out, text.size() >= kMinCachedText);

  // Bytes that can start an added token; most text has few of them.
  std::array<bool, 256> starts{};
  for (int b = 0; b < 256; ++b) starts[b] = d.added_first[b] != d.added_first[b + 1];

  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    if (!starts[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* t = match_added(d, text, i, parse_special);
    if (!t) {
      ++i;
      continue;
    }
    enc.segment(text.substr(seg, i - seg));
    out.push_back(t->id);
    i += t->text.size();
    seg = i;
  }
  enc.segment(text.substr(seg));
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const TokenizerData& d = data();
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_vocab())
      fail("decode: token id " + std::to_string(id) + " is out of range (vocabulary of " + std::to_string(n_vocab()) + ")");
    if (skip_special && d.types[id] == TokenType::CONTROL) continue;
    bytes += d.piece[id];
  }
  if (unicode::is_valid_utf8(bytes)) return bytes;
  return unicode::replace_invalid_utf8(bytes);
}

int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(data().text.size()); }

namespace {
void check_id(const Tokenizer& t, int32_t id) {
  if (id < 0 || id >= t.n_vocab())
    fail("token id " + std::to_string(id) + " is out of range (vocabulary of " + std::to_string(t.n_vocab()) + ")");
}
}  // namespace

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(*this, id);
  return data().text[id];
}

const std::string& Tokenizer::token_to_piece(int32_t id) const {
  check_id(*this, id);
  return data().piece[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(*this, id);
  return data().types[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < n_vocab() && data().types[id] == TokenType::CONTROL;
}

bool Tokenizer::is_eog(int32_t id) const { return id >= 0 && id < n_vocab() && data().eog[id] != 0; }

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  auto it = data().text_to_id.find(text);
  if (it == data().text_to_id.end()) return std::nullopt;
  return it->second;
}

int32_t Tokenizer::bos_id() const { return data().bos; }
int32_t Tokenizer::eos_id() const { return data().eos; }
int32_t Tokenizer::pad_id() const { return data().pad; }
bool Tokenizer::add_bos() const { return data().add_bos; }
const std::string& Tokenizer::pre() const { return data().pre_name; }
const std::string& Tokenizer::pre_regex() const { return data().pre->pattern(); }

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string IncrementalDecoder::feed(int32_t id) {
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  pending_ += tokenizer_->token_to_piece(id);
  // Emit up to the start of a well-formed but unfinished sequence at the very end; every
  // decision before it is final whatever bytes come next.
  size_t done = 0;
  while (done < pending_.size()) {
    const unicode::Utf8Step st = unicode::utf8_step(pending_, done);
    if (st.kind == unicode::Utf8Kind::Truncated) break;
    done += st.len;
  }
  std::string out;
  unicode::append_utf8_replacing(out, std::string_view(pending_).substr(0, done));
  pending_.erase(0, done);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = unicode::replace_invalid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace hearth
