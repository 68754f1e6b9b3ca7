// Helpers shared by the chat-template tests: fixture files and the fixed clock the
// reference renders used (templates.json "fixed_time", 2024-09-05 10:30:00).
#pragma once

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace hearth::test {

inline std::string fixture_path(const std::string& name) {
  return std::string(HEARTH_SOURCE_DIR) + "/fixtures/templates/" + name;
}

inline std::string read_fixture(const std::string& name) {
  std::ifstream f(fixture_path(name), std::ios::binary);
  if (!f) throw std::runtime_error("missing fixture " + fixture_path(name));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<nlohmann::ordered_json> read_jsonl(const std::string& name) {
  std::vector<nlohmann::ordered_json> rows;
  std::istringstream in(read_fixture(name));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  return rows;
}

inline std::tm fixed_time() {
  std::tm t{};
  t.tm_year = 2024 - 1900;
  t.tm_mon = 8;
  t.tm_mday = 5;
  t.tm_hour = 10;
  t.tm_min = 30;
  t.tm_isdst = -1;
  std::mktime(&t);  // fills in the weekday and day of the year
  return t;
}

}  // namespace hearth::test
