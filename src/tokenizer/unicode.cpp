// UTF-8 scanning, U+FFFD replacement, NFC and the GPT-2 byte map (see unicode.h).
// The scanner encodes Table 3-7 of the Unicode standard directly: the lead byte fixes
// the sequence length and the allowed range of the second byte (which excludes
// overlongs, surrogates and code points past U+10FFFF); later bytes are 80..BF.
#include "tokenizer/unicode.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "core/error.h"

namespace hearth::unicode {

Utf8Step utf8_step(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data()) + pos;
  const size_t avail = text.size() - pos;
  const uint8_t b0 = s[0];
  if (b0 < 0x80) return {Utf8Kind::Char, 1, b0};

  int need = 0;               // continuation bytes after the lead
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Kind::Invalid, 1, 0};  // 80..C1, F5..FF start no sequence
  }
  for (int k = 1; k <= need; ++k) {
    if (static_cast<size_t>(k) >= avail) return {Utf8Kind::Truncated, static_cast<uint8_t>(k), 0};
    const uint8_t b = s[k];
    const uint8_t min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return {Utf8Kind::Invalid, static_cast<uint8_t>(k), 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8Kind::Char, static_cast<uint8_t>(need + 1), cp};
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step st = utf8_step(text, i);
    if (st.kind != Utf8Kind::Char) return false;
    i += st.len;
  }
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_utf8_replacing(std::string& out, std::string_view text) {
  size_t i = 0, good = 0;  // [good, i) is well-formed and not yet copied
  while (i < text.size()) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Step st = utf8_step(text, i);
    if (st.kind == Utf8Kind::Char) {
      i += st.len;
      continue;
    }
    out.append(text.substr(good, i - good));
    out.append("\xEF\xBF\xBD");
    i += st.len;
    good = i;
  }
  out.append(text.substr(good));
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_utf8_replacing(out, text);
  return out;
}

namespace {

// Appends NFC(text) for a run that contains non-ASCII characters.
void append_nfc_run(std::string& out, std::string_view run) {
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                   static_cast<utf8proc_ssize_t>(run.size()), &dst,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(dst, &std::free);
  if (n < 0) fail(std::string("NFC normalisation failed: ") + utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
}

}  // namespace

std::string nfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    // Copy the ASCII run, except its last character when non-ASCII follows: a combining
    // mark can compose with it (e + U+0301 -> é), so it belongs to the next run.
    size_t j = i;
    while (j < text.size() && static_cast<uint8_t>(text[j]) < 0x80) ++j;
    if (j == text.size()) {
      out.append(text.substr(i));
      break;
    }
    const size_t start = j > i ? j - 1 : j;
    out.append(text.substr(i, start - i));
    // The non-ASCII run ends where an ASCII character starts (a boundary before it).
    size_t k = j;
    while (k < text.size() && static_cast<uint8_t>(text[k]) >= 0x80) ++k;
    append_nfc_run(out, text.substr(start, k - start));
    i = k;
  }
  return out;
}

ByteMap::ByteMap() {
  cp_to_byte_.fill(-1);
  int shifted = 0;
  for (int b = 0; b < 256; ++b) {
    const bool identity = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t cp = identity ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + shifted++);
    byte_to_cp_[b] = cp;
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteMap& ByteMap::get() {
  static const ByteMap map;
  return map;
}

std::string ByteMap::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_cp_[static_cast<uint8_t>(c)]);
  return out;
}

bool ByteMap::decode(std::string_view text, std::string& out) const {
  out.clear();
  size_t i = 0;
  while (i < text.size()) {
    const Utf8Step st = utf8_step(text, i);
    if (st.kind != Utf8Kind::Char) return false;
    const int b = byte_of(st.cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += st.len;
  }
  return true;
}

}  // namespace hearth::unicode
