// quote_name(): how a name read from a file (tensor name, metadata key, dtype string) is
// shown in an error message. Files can hold any bytes, and messages must stay one
// readable line, so control characters, quotes, backslashes and bytes >= 0x7f are
// written as \xNN and names longer than 200 bytes are shortened with "...".
#pragma once

#include <string>
#include <string_view>

namespace hearth {

inline std::string quote_name(std::string_view name) {
  constexpr size_t kMaxShown = 200;
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t k = 0; k < name.size() && k < kMaxShown; ++k) {
    const auto c = static_cast<unsigned char>(name[k]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > kMaxShown) out += "...";
  return out + "'";
}

}  // namespace hearth
