// KvTier: where prefix-cache blocks go when the device pool evicts them, so a later
// request loads them back instead of recomputing them. Two levels, both optional:
//   - host memory (--cache-ram): the most recently evicted blocks, least recently used
//     dropped (or written to disk) first;
//   - a cache folder (--cache-dir, capped by --cache-disk-size): one file per block
//     (kv_file.h) under DIR/<cache id>/, least recently used files removed first. It
//     survives restarts: at start-up the folder is scanned and every file whose header
//     matches this model and KV layout is indexed; anything else is removed with a warning.
// A block is found by its chained hash and accepted only if its parent hash and its
// tokens equal the request's, and (from disk) only after its checksum verified.
//
// Threads: the engine's compute thread calls put/fetch/flush; a writer thread writes
// files in the background; contains() and stats() may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>

#include "kv/kv_file.h"

namespace hearth::kv {

struct KvTierConfig {
  std::string dir;          // "" = no disk tier
  int64_t disk_bytes = 0;   // most bytes of block files kept in the folder
  int64_t ram_bytes = 0;    // most bytes of blocks kept in host memory (and queued for disk)
  KvFileIdentity identity;  // what every block of this cache must agree on
};

struct KvTierStats {
  int64_t ram_blocks = 0, disk_blocks = 0, disk_bytes = 0;
  int64_t stored_total = 0;          // blocks handed to the tier (put)
  int64_t loaded_ram_total = 0;      // blocks given back from host memory
  int64_t loaded_disk_total = 0;     // blocks given back from files
  int64_t written_total = 0;         // files written
  int64_t rejected_files_total = 0;  // corrupt, truncated or foreign files removed
  int64_t dropped_total = 0;         // blocks forgotten for lack of room
};

class KvTier {
 public:
  // Creates the folder when needed and indexes it. Throws Error when `dir` can't be used.
  explicit KvTier(KvTierConfig config);
  ~KvTier();  // finishes queued writes
  KvTier(const KvTier&) = delete;
  KvTier& operator=(const KvTier&) = delete;

  bool has_disk() const { return !config_.dir.empty(); }
  // The folder holding this cache's files ("" without a disk tier).
  const std::string& folder() const { return folder_; }

  // Keeps a block evicted from the device pool (or saved at shutdown).
  void put(std::shared_ptr<const HostBlock> block);
  // The block named `hash` if it is held and its parent and tokens match; reads and
  // verifies its file when it is on disk only. Null otherwise (a bad file is removed).
  std::shared_ptr<const HostBlock> fetch(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens);
  // Whether a block named `hash` is held (unverified; for estimates).
  bool contains(uint64_t hash) const;
  // Writes every block held only in memory to disk and waits for the writer.
  void flush();
  // Writes `block` to disk now, on the calling thread, unless it is there (shutdown).
  void persist(std::shared_ptr<const HostBlock> block);
  KvTierStats stats() const;

 private:
  struct RamEntry {
    std::shared_ptr<const HostBlock> block;
    std::list<uint64_t>::iterator lru;
    bool on_disk = false;
  };
  struct DiskEntry {
    uint64_t bytes = 0;
    uint64_t last_use = 0;  // key in disk_lru_
  };

  std::string path_of(uint64_t hash) const;
  void scan_folder();
  void reject_file(const std::string& path, const std::string& why);  // mu_ held or not shared yet
  void shrink_ram();                                                   // mu_ held
  void enqueue_write(std::shared_ptr<const HostBlock> block);          // mu_ held
  void touch_disk(uint64_t hash);                                      // mu_ held
  void shrink_disk(uint64_t keep);                                     // mu_ held
  void writer_loop();
  bool write_file(const HostBlock& block) const;  // no lock needed
  void record_written(uint64_t hash);             // mu_ held

  KvTierConfig config_;
  std::string folder_;
  uint64_t file_bytes_ = 0;  // size of one block file

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::unordered_map<uint64_t, RamEntry> ram_;
  std::list<uint64_t> ram_lru_;  // least recently used first
  int64_t ram_used_ = 0;
  std::map<uint64_t, std::shared_ptr<const HostBlock>> pending_;  // queued for the writer
  int64_t pending_bytes_ = 0;
  bool writing_ = false;
  std::unordered_map<uint64_t, DiskEntry> disk_;
  std::map<uint64_t, uint64_t> disk_lru_;  // last_use -> hash, oldest first
  uint64_t use_clock_ = 0;
  int64_t disk_used_ = 0;
  KvTierStats stats_;
  bool stop_ = false;
  std::thread writer_;
};

}  // namespace hearth::kv
