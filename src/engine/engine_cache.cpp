// Engine: the prefix cache's glue (engine.h): the tier behind the device pool, the block
// copies each step asks for, saving at shutdown, and probe() for the server.
//
// NOTE(engine): spills must be read before loads are written and before the forward pass,
// because both may reuse the very block a spill is leaving (scheduler.h). Block copies run
// on the compute thread between steps; the tier writes files on its own thread.
#include <cinttypes>
#include <cstdio>

#include "core/log.h"
#include "engine/engine.h"

namespace hearth {

namespace {
// FNV-1a step over a 64-bit value.
uint64_t mix(uint64_t h, uint64_t v) {
  for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  return h;
}
}  // namespace

uint64_t ModelRunner::cache_identity() const {
  if (identity_ == 0) {
    const KvCacheConfig& kv = model_.backend().kv_cache_config();
    uint64_t h = mix(1469598103934665603ull, model_.identity());
    for (uint64_t v : {static_cast<uint64_t>(kv.dtype), static_cast<uint64_t>(kv.n_layers),
                       static_cast<uint64_t>(kv.n_kv_heads), static_cast<uint64_t>(kv.head_dim),
                       static_cast<uint64_t>(kv.block_size)})
      h = mix(h, v);
    identity_ = h == 0 ? 1 : h;
  }
  return identity_;
}

void Engine::init_tier() {
  stats_.prefix_cache = config_.prefix_cache;
  const bool want = config_.cache_ram_bytes > 0 || !config_.cache_dir.empty();
  if (!config_.prefix_cache || !want) return;
  HEARTH_CHECK(config_.cache_dir.empty() || config_.cache_disk_bytes > 0,
               "--cache-disk-size: must be positive with --cache-dir");
  const uint64_t identity = runner_->cache_identity();
  const int64_t block_bytes = runner_->kv_block_bytes();
  HEARTH_CHECK(identity != 0 && block_bytes > 0,
               "--cache-dir/--cache-ram: this backend cannot copy KV blocks to host memory");
  kv::KvTierConfig tc{.dir = config_.cache_dir,
                      .disk_bytes = config_.cache_disk_bytes,
                      .ram_bytes = config_.cache_ram_bytes,
                      .identity = {.cache_id = identity,
                                   .block_size = static_cast<uint32_t>(config_.block_size),
                                   .block_bytes = static_cast<uint64_t>(block_bytes),
                                   .kv_dtype = runner_->kv_dtype()}};
  tier_ = std::make_unique<kv::KvTier>(std::move(tc));
  scheduler_.set_tier(tier_.get());
  stats_.tier_ram = config_.cache_ram_bytes > 0;
  stats_.tier_disk = !config_.cache_dir.empty();
  stats_.tier = tier_->stats();
  if (tier_->has_disk()) log_info("prefix cache: disk tier in " + tier_->folder());
}

std::shared_ptr<kv::HostBlock> Engine::copy_to_host(const kv::Spill& s) {
  auto block = std::make_shared<kv::HostBlock>();
  block->hash = s.hash;
  block->parent = s.parent;
  block->tokens = s.tokens;
  block->data.resize(static_cast<size_t>(runner_->kv_block_bytes()));
  runner_->read_kv_block(s.block, block->data.data());
  return block;
}

void Engine::apply_transfers(const StepPlan& plan) {
  if (!tier_) return;
  const auto bytes = static_cast<size_t>(runner_->kv_block_bytes());
  for (const kv::Spill& s : plan.spills) tier_->put(copy_to_host(s));
  for (const kv::Load& l : plan.loads) {
    HEARTH_ASSERT(l.data && l.data->data.size() == bytes);
    runner_->write_kv_block(l.block, l.data->data.data());
  }
}

void Engine::save_cache() {
  if (!tier_ || !tier_->has_disk()) return;
  try {
    tier_->flush();  // blocks held in host memory first, so the pool's (newer) ones are kept last
    const auto blocks = scheduler_.cached_blocks();
    for (const kv::Spill& s : blocks) tier_->persist(copy_to_host(s));
    log_info("prefix cache: " + std::to_string(blocks.size()) + " cached blocks of the pool kept in " + tier_->folder());
  } catch (const std::exception& e) {
    log_error(std::string("prefix cache: saving at shutdown failed: ") + e.what());
  }
}

CacheProbe Engine::probe(std::span<const int32_t> prompt) const {
  CacheProbe p;
  p.nearest = history_.best(prompt);
  std::lock_guard lk(sched_mu_);
  p.n_cached = scheduler_.probe_prefix(prompt);
  return p;
}

}  // namespace hearth
