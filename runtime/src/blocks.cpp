// Job blocks: a small per-thread cache in front of ::operator new.
//
// A windowed workload frees one job block and allocates the next on the loop thread for every
// job. The blocks are one size, and glibc serves that size (176 bytes for a job that returns an
// int) outside its fastest bins, so keeping a few freed blocks per size on the thread that freed
// them and handing them out again saves most of the allocator's cost per job.
//
// The cache holds at most `per_class` blocks of each size class (see block_class; up to 504
// bytes), so a burst of a million jobs does not leave a million blocks cached: past the cap,
// blocks go back to ::operator delete. A thread's cache is freed when the thread exits. Blocks
// may be freed on a thread other than the one that allocated them; they then join that thread's
// cache. Under AddressSanitizer the cache is off, so that a use after free is still reported.
#include <cstddef>
#include <new>

#include "uvrt/detail/job.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define UVRT_BLOCK_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UVRT_BLOCK_CACHE 0
#endif
#endif
#ifndef UVRT_BLOCK_CACHE
#define UVRT_BLOCK_CACHE 1
#endif

namespace uvrt::detail {

namespace {

constexpr std::size_t classes = 32;     // sizes up to 504
constexpr unsigned per_class = 64;

struct free_block_node {
  free_block_node* next;
};

// Plain data, so the thread-local needs no constructor call or guard on each access.
struct block_cache {
  free_block_node* heads[classes + 1];
  unsigned counts[classes + 1];
  bool reaper_armed;
  bool closed;  // the thread is exiting and its cache was freed: cache nothing more
};

[[gnu::tls_model("initial-exec")]] thread_local block_cache cache;

// Frees the calling thread's cached blocks when it exits. Armed by the first block cached, so
// threads that never free a block pay nothing.
struct block_reaper {
  ~block_reaper() {
    for (std::size_t c = 1; c <= classes; ++c) {
      while (free_block_node* n = cache.heads[c]) {
        cache.heads[c] = n->next;
        ::operator delete(n);
      }
      cache.counts[c] = 0;
    }
    cache.closed = true;
  }
};

thread_local block_reaper reaper;

}  // namespace

void* allocate_block(std::size_t size) {
  const std::size_t c = block_class(size);
  if (UVRT_BLOCK_CACHE && c <= classes) {
    if (free_block_node* n = cache.heads[c]) {
      cache.heads[c] = n->next;
      --cache.counts[c];
      return n;
    }
    return ::operator new(block_class_size(c));
  }
  return ::operator new(size);
}

void free_block(void* p, std::size_t size) noexcept {
  const std::size_t c = block_class(size);
  if (UVRT_BLOCK_CACHE && c >= 1 && c <= classes && cache.counts[c] < per_class && !cache.closed) {
    if (!cache.reaper_armed) {
      cache.reaper_armed = true;
      (void)&reaper;  // odr-use: constructs this thread's reaper, which registers its destructor
    }
    auto* n = static_cast<free_block_node*>(p);
    n->next = cache.heads[c];
    cache.heads[c] = n;
    ++cache.counts[c];
    return;
  }
  ::operator delete(p);
}

}  // namespace uvrt::detail
