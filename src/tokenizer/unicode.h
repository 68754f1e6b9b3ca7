// UTF-8 and Unicode helpers for the tokenizer: a strict UTF-8 scanner (the well-formed
// byte sequences of Unicode Table 3-7), replacement of ill-formed input with U+FFFD,
// NFC normalisation through utf8proc, and the GPT-2 byte <-> code point map that
// byte-level BPE vocabularies are written in.
//
// Replacement follows the Unicode "maximal subpart" practice, which is what Python's
// bytes.decode('utf-8', errors='replace') and Rust's String::from_utf8_lossy do: each
// maximal prefix of a well-formed sequence that cannot be completed becomes one U+FFFD,
// and a byte that can start no sequence becomes one U+FFFD on its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::unicode {

// What one scanner step found at a position.
enum class Utf8Kind : uint8_t {
  Char,       // a complete, well-formed character of `len` bytes
  Invalid,    // an ill-formed maximal subpart of `len` bytes (>= 1): one U+FFFD
  Truncated,  // a well-formed prefix of `len` bytes that runs into the end of the input
};

struct Utf8Step {
  Utf8Kind kind = Utf8Kind::Char;
  uint8_t len = 0;
  char32_t cp = 0;  // the code point, for Char only
};

// Scans one character at text[pos]; pos < text.size().
Utf8Step utf8_step(std::string_view text, size_t pos);

// True when the whole text is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

// Appends `text` to `out`, replacing ill-formed parts (including a truncated tail) with
// U+FFFD as described above.
void append_utf8_replacing(std::string& out, std::string_view text);
std::string replace_invalid_utf8(std::string_view text);

// Appends the UTF-8 encoding of one code point (cp <= 0x10FFFF).
void append_utf8(std::string& out, char32_t cp);

// NFC normalisation of valid UTF-8. ASCII runs are copied as they are (every ASCII
// character is a normalisation boundary), so mostly-ASCII text costs little.
std::string nfc(std::string_view text);

// The GPT-2 byte-level alphabet: bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for the
// code point of the same value; the 68 others, in increasing order, for U+0100, U+0101...
class ByteMap {
 public:
  ByteMap();
  static const ByteMap& get();

  char32_t byte_to_cp(uint8_t b) const { return byte_to_cp_[b]; }
  // The byte a code point stands for, or -1 when it is not in the alphabet.
  int byte_of(char32_t cp) const { return cp < cp_to_byte_.size() ? cp_to_byte_[cp] : -1; }

  // "Hello world" -> "HelloĠworld".
  std::string encode(std::string_view bytes) const;
  // The inverse; false (and `out` unspecified) when some character is outside the
  // alphabet or the text is not valid UTF-8.
  bool decode(std::string_view text, std::string& out) const;

 private:
  std::array<char32_t, 256> byte_to_cp_{};
  std::array<int16_t, 0x144> cp_to_byte_{};  // the alphabet ends at U+0143
};

}  // namespace hearth::unicode
