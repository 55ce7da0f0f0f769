// libtorch's CPU allocator, with freed large blocks kept for reuse. glibc hands blocks of this
// size to the kernel and back (mmap / munmap, or a trimmed heap), so each training step and
// each unprepared forward touched its activations' pages anew: zeroed by the kernel, charged,
// mapped, a fault per 4 KiB. A step allocates the same sizes as the step before it, so a block
// kept under its exact size is found again.
//
// Blocks are kept only when freed inside a compute call (a forward, a backward, an optimizer
// step) or with a result's handle (CpuCacheScope), where the next call asks for them again,
// and only once their size has been asked for twice: what building, loading, converting or
// preparing a module frees (CpuCacheBypass while a plan is made) goes back to the system at
// once, as without the cache, instead of sitting in it for nothing.
// Bounded: the cache holds at most limit() bytes (SEKIT_CPU_CACHE_BYTES, or a quarter of the
// machine's memory up to 4 GiB); a block that would pass it empties the cache first. An
// allocation that fails empties it and tries once more. Blocks under 128 KiB go straight to
// libtorch's allocator (glibc reuses those without the kernel).
#include "internal.hpp"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace sekit {
namespace {

thread_local int scope_depth = 0;

constexpr size_t kSmallest = 128 << 10;
constexpr size_t kPage = 4096;
constexpr size_t kMaxSizes = 1 << 14;  // sizes counted before the counts start over

int64_t default_limit() {
  if (const char* env = std::getenv("SEKIT_CPU_CACHE_BYTES")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && v >= 0) return static_cast<int64_t>(v);
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const int64_t quarter = pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 4 : 0;
  return std::min<int64_t>(quarter, int64_t{4} << 30);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  // Each block is reported to libtorch's memory profiler, as its default allocator does.
  // Small blocks are freed without the cache's lock.
#if SEKIT_TORCH_AT_LEAST(2, 3)
  // libtorch 2.3 made allocate non-const and added copy_data.
  c10::DataPtr allocate(size_t n) override {
#else
  c10::DataPtr allocate(size_t n) const override {
#endif
    void* p = self().take(n);
    c10::profiledCPUMemoryReporter().New(p, n);
    return {p, p, large(n) ? &release : &release_small, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if SEKIT_TORCH_AT_LEAST(2, 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

  static CachingCpuAllocator& self() {
    static auto* a = new CachingCpuAllocator();  // never destroyed: tensors outlive statics
    return *a;
  }

  int64_t cached() {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<int64_t>(cached_);
  }
  int64_t limit() {
    std::lock_guard<std::mutex> g(mu_);
    return limit_;
  }
  void set_limit(int64_t bytes) {
    std::lock_guard<std::mutex> g(mu_);
    limit_ = bytes;
    if (static_cast<int64_t>(cached_) > limit_) empty_locked();
  }
  int64_t empty() {
    std::lock_guard<std::mutex> g(mu_);
    const size_t had = cached_;
    empty_locked();
    return static_cast<int64_t>(had);
  }

 private:
  CachingCpuAllocator() : limit_(default_limit()) {}

  // Kept by the cache when freed (past PTRDIFF_MAX, alloc_cpu refuses the size itself;
  // rounding it up would wrap).
  static bool large(size_t n) { return n >= kSmallest && n <= static_cast<size_t>(PTRDIFF_MAX); }

  // c10::alloc_cpu, telling the profiler of a failure as libtorch's allocator does.
  static void* alloc(size_t n) {
    try {
      return c10::alloc_cpu(n);
    } catch (const c10::Error&) {
      c10::profiledCPUMemoryReporter().OutOfMemory(n);
      throw;
    }
  }

  void* take(size_t n) {
    if (!large(n)) return alloc(n);
    const size_t size = (n + kPage - 1) / kPage * kPage;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (requests_.size() >= kMaxSizes) requests_.clear();
      ++requests_[size];
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        track_or_free(p, size);
        return p;
      }
    }
    void* p;
    try {
      p = c10::alloc_cpu(size);
    } catch (const c10::Error&) {
      empty();
      p = alloc(size);
    }
    std::lock_guard<std::mutex> g(mu_);
    track_or_free(p, size);
    return p;
  }

  // Records p as a large block in use (mu_ held); if even that fails, frees it and rethrows.
  void track_or_free(void* p, size_t size) {
    try {
      live_[p] = size;
    } catch (...) {
      c10::free_cpu(p);
      throw;
    }
  }

  static void release_small(void* p) {
    c10::profiledCPUMemoryReporter().Delete(p);
    c10::free_cpu(p);
  }

  static void release(void* p) {
    if (p == nullptr) return;
    c10::profiledCPUMemoryReporter().Delete(p);
    CachingCpuAllocator& a = self();
    {
      std::lock_guard<std::mutex> g(a.mu_);
      auto it = a.live_.find(p);
      if (it != a.live_.end()) {
        const size_t size = it->second;
        a.live_.erase(it);
        auto seen = a.requests_.find(size);
        // Kept only inside a compute call, when it fits the limit and its size recurs: a
        // one-off temporary goes back to the system.
        if (scope_depth > 0 && static_cast<int64_t>(size) <= a.limit_ && seen != a.requests_.end() &&
            seen->second >= 2) {
          if (static_cast<int64_t>(a.cached_ + size) > a.limit_) a.empty_locked();
          try {  // a deleter must not throw: without room to record it, the block is freed
            a.free_[size].push_back(p);
            a.cached_ += size;
            return;
          } catch (...) {
          }
        }
      }
    }
    c10::free_cpu(p);
  }

  void empty_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) c10::free_cpu(p);
    free_.clear();
    cached_ = 0;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // by size
  std::unordered_map<void*, size_t> live_;              // large blocks in use
  std::unordered_map<size_t, uint32_t> requests_;       // large allocations by size
  size_t cached_ = 0;
  int64_t limit_;
};

// Installed when the library loads, before it allocates a tensor.
[[maybe_unused]] const bool installed = [] {
  c10::SetCPUAllocator(&CachingCpuAllocator::self(), /*priority=*/1);
  return true;
}();

}  // namespace

CpuCacheScope::CpuCacheScope() { ++scope_depth; }
CpuCacheScope::~CpuCacheScope() { --scope_depth; }
CpuCacheBypass::CpuCacheBypass() : saved_(scope_depth) { scope_depth = 0; }
CpuCacheBypass::~CpuCacheBypass() { scope_depth = saved_; }

int64_t cpu_cache_bytes() { return CachingCpuAllocator::self().cached(); }
int64_t cpu_cache_limit() { return CachingCpuAllocator::self().limit(); }
void set_cpu_cache_limit(int64_t bytes) { CachingCpuAllocator::self().set_limit(bytes); }
int64_t empty_cpu_cache() { return CachingCpuAllocator::self().empty(); }

}  // namespace sekit
