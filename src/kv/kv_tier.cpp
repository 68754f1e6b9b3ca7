// KvTier: host-memory and on-disk levels of the prefix cache (kv_tier.h).
//
// NOTE(kv): the writer thread takes blocks from pending_ one at a time and writes
// NAME.tmp then renames it, so a crash leaves either a whole file or a .tmp that the next
// start-up removes. pending_ stays searchable until the file exists, and a block queued
// for writing counts against --cache-ram: when the writer falls behind, new evictions are
// dropped rather than growing memory without bound.
#include "kv/kv_tier.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace hearth::kv {

namespace fs = std::filesystem;

namespace {
std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}
constexpr const char* kExt = ".hkv";
}  // namespace

KvTier::KvTier(KvTierConfig config) : config_(std::move(config)) {
  file_bytes_ = kKvFileHeaderBytes + 4ull * config_.identity.block_size + config_.identity.block_bytes;
  if (config_.dir.empty()) return;
  folder_ = (fs::path(config_.dir) / hex16(config_.identity.cache_id)).string();
  std::error_code ec;
  fs::create_directories(folder_, ec);
  HEARTH_CHECK(!ec && fs::is_directory(folder_), "--cache-dir " + config_.dir + ": cannot create " + folder_ +
                                                     (ec ? ": " + ec.message() : std::string()));
  scan_folder();
  writer_ = std::thread([this] { writer_loop(); });
}

KvTier::~KvTier() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

std::string KvTier::path_of(uint64_t hash) const { return folder_ + "/" + hex16(hash) + kExt; }

void KvTier::reject_file(const std::string& path, const std::string& why) {
  log_warn("prefix cache: ignoring and removing " + path + ": " + why);
  std::error_code ec;
  fs::remove(path, ec);
  ++stats_.rejected_files_total;
}

void KvTier::scan_folder() {
  struct Found {
    fs::file_time_type mtime;
    uint64_t hash;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder_, ec)) {
    const std::string path = entry.path().string();
    if (!entry.is_regular_file()) continue;
    if (entry.path().extension() != kExt) {
      if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);  // an interrupted write
      continue;
    }
    std::vector<uint8_t> header(kKvFileHeaderBytes);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(header.data()), static_cast<std::streamsize>(header.size()));
    header.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
    uint64_t hash = 0;
    std::string why = check_kv_header(header, entry.file_size(ec), config_.identity, hash);
    if (why.empty() && entry.path().filename().string() != hex16(hash) + kExt) why = "file name does not match its block hash";
    if (!why.empty()) {
      reject_file(path, why);
      continue;
    }
    found.push_back({entry.last_write_time(ec), hash});
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime < b.mtime; });
  std::lock_guard lk(mu_);
  for (const Found& f : found) {
    disk_[f.hash] = {file_bytes_, ++use_clock_};
    disk_lru_[use_clock_] = f.hash;
    disk_used_ += static_cast<int64_t>(file_bytes_);
  }
  shrink_disk(0);
  if (!found.empty()) log_info("prefix cache: " + std::to_string(disk_.size()) + " blocks on disk in " + folder_);
}

void KvTier::touch_disk(uint64_t hash) {
  auto it = disk_.find(hash);
  if (it == disk_.end()) return;
  disk_lru_.erase(it->second.last_use);
  it->second.last_use = ++use_clock_;
  disk_lru_[use_clock_] = hash;
}

void KvTier::shrink_disk(uint64_t keep) {
  while (disk_used_ > config_.disk_bytes && !disk_lru_.empty()) {
    auto oldest = disk_lru_.begin();
    const uint64_t hash = oldest->second;
    if (hash == keep && disk_lru_.size() == 1) break;
    disk_lru_.erase(oldest);
    disk_used_ -= static_cast<int64_t>(disk_[hash].bytes);
    disk_.erase(hash);
    std::error_code ec;
    fs::remove(path_of(hash), ec);
  }
}

void KvTier::enqueue_write(std::shared_ptr<const HostBlock> block) {
  if (!has_disk() || config_.disk_bytes < static_cast<int64_t>(file_bytes_) || disk_.count(block->hash)) return;
  const auto bytes = static_cast<int64_t>(block->data.size());
  // Queued blocks are memory too: with no RAM budget, still allow a few in flight.
  const int64_t limit = std::max<int64_t>(config_.ram_bytes, 8 * bytes);
  if (pending_bytes_ + bytes > limit) {
    ++stats_.dropped_total;
    return;
  }
  if (pending_.emplace(block->hash, block).second) pending_bytes_ += bytes;
  cv_.notify_all();
}

void KvTier::shrink_ram() {
  while (ram_used_ > config_.ram_bytes && !ram_lru_.empty()) {
    const uint64_t hash = ram_lru_.front();
    ram_lru_.pop_front();
    auto it = ram_.find(hash);
    ram_used_ -= static_cast<int64_t>(it->second.block->data.size());
    if (!it->second.on_disk) {
      if (has_disk()) enqueue_write(it->second.block);
      else ++stats_.dropped_total;
    }
    ram_.erase(it);
  }
}

void KvTier::put(std::shared_ptr<const HostBlock> block) {
  HEARTH_ASSERT(block && block->hash != 0 && block->data.size() == config_.identity.block_bytes &&
                block->tokens.size() == config_.identity.block_size);
  std::lock_guard lk(mu_);
  ++stats_.stored_total;
  const uint64_t hash = block->hash;
  const bool on_disk = disk_.count(hash) != 0;
  if (on_disk) touch_disk(hash);
  if (auto it = ram_.find(hash); it != ram_.end()) {
    ram_lru_.splice(ram_lru_.end(), ram_lru_, it->second.lru);
    return;
  }
  if (config_.ram_bytes >= static_cast<int64_t>(block->data.size())) {
    ram_lru_.push_back(hash);
    ram_[hash] = {block, std::prev(ram_lru_.end()), on_disk};
    ram_used_ += static_cast<int64_t>(block->data.size());
    shrink_ram();
  } else if (!on_disk) {
    if (has_disk()) enqueue_write(std::move(block));
    else ++stats_.dropped_total;
  }
}

std::shared_ptr<const HostBlock> KvTier::fetch(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) {
  auto matches = [&](const HostBlock& b) {
    return b.hash == hash && b.parent == parent && std::equal(b.tokens.begin(), b.tokens.end(), tokens.begin(), tokens.end());
  };
  std::unique_lock lk(mu_);
  if (auto it = ram_.find(hash); it != ram_.end()) {
    if (!matches(*it->second.block)) return nullptr;
    ram_lru_.splice(ram_lru_.end(), ram_lru_, it->second.lru);
    ++stats_.loaded_ram_total;
    return it->second.block;
  }
  if (auto it = pending_.find(hash); it != pending_.end()) {
    if (!matches(*it->second)) return nullptr;
    ++stats_.loaded_ram_total;
    return it->second;
  }
  if (!disk_.count(hash)) return nullptr;
  const std::string path = path_of(hash);
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(file_bytes_ + 1);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  auto block = std::make_shared<HostBlock>();
  std::string why = in.bad() ? "cannot read the file" : decode_kv_file(bytes, config_.identity, *block);
  if (why.empty() && block->hash != hash) why = "holds another block than its name says";
  if (!why.empty()) {
    disk_lru_.erase(disk_[hash].last_use);
    disk_used_ -= static_cast<int64_t>(disk_[hash].bytes);
    disk_.erase(hash);
    reject_file(path, why);
    return nullptr;
  }
  if (!matches(*block)) return nullptr;  // a hash collision: not this prefix
  touch_disk(hash);
  ++stats_.loaded_disk_total;
  return block;
}

bool KvTier::contains(uint64_t hash) const {
  std::lock_guard lk(mu_);
  return ram_.count(hash) || pending_.count(hash) || disk_.count(hash);
}

void KvTier::flush() {
  std::unique_lock lk(mu_);
  if (has_disk())
    for (auto& [hash, e] : ram_)
      if (!e.on_disk && !pending_.count(hash)) {
        if (pending_.emplace(hash, e.block).second) pending_bytes_ += static_cast<int64_t>(e.block->data.size());
        e.on_disk = true;
      }
  cv_.notify_all();
  idle_cv_.wait(lk, [&] { return (pending_.empty() && !writing_) || !writer_.joinable(); });
}

KvTierStats KvTier::stats() const {
  std::lock_guard lk(mu_);
  KvTierStats s = stats_;
  s.ram_blocks = static_cast<int64_t>(ram_.size());
  s.disk_blocks = static_cast<int64_t>(disk_.size());
  s.disk_bytes = disk_used_;
  return s;
}

bool KvTier::write_file(const HostBlock& block) const {
  const std::vector<uint8_t> bytes = encode_kv_file(config_.identity, block);
  const std::string path = path_of(block.hash), tmp = path + ".tmp";
  bool ok = false;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ok = out.good();
  }
  std::error_code ec;
  if (ok) fs::rename(tmp, path, ec);
  if (!ok || ec) {
    fs::remove(tmp, ec);
    log_warn("prefix cache: cannot write " + path + " (disk full or no permission?)");
    return false;
  }
  return true;
}

void KvTier::record_written(uint64_t hash) {
  if (!disk_.count(hash)) {
    disk_[hash] = {file_bytes_, ++use_clock_};
    disk_lru_[use_clock_] = hash;
    disk_used_ += static_cast<int64_t>(file_bytes_);
  } else {
    touch_disk(hash);
  }
  if (auto r = ram_.find(hash); r != ram_.end()) r->second.on_disk = true;
  ++stats_.written_total;
  shrink_disk(hash);
}

void KvTier::persist(std::shared_ptr<const HostBlock> block) {
  {
    std::lock_guard lk(mu_);
    if (!has_disk() || config_.disk_bytes < static_cast<int64_t>(file_bytes_)) return;
    if (disk_.count(block->hash)) {
      touch_disk(block->hash);
      return;
    }
  }
  const bool ok = write_file(*block);
  std::lock_guard lk(mu_);
  if (ok) record_written(block->hash);
}

void KvTier::writer_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stop_ with nothing left to write
    auto it = pending_.begin();
    std::shared_ptr<const HostBlock> block = it->second;
    writing_ = true;
    lk.unlock();
    const bool ok = write_file(*block);
    lk.lock();
    writing_ = false;
    pending_bytes_ -= static_cast<int64_t>(block->data.size());
    pending_.erase(block->hash);
    if (ok) record_written(block->hash);
    else ++stats_.dropped_total;
    if (pending_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace hearth::kv
