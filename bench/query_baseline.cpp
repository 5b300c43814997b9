// query-baseline: the limit of bench/run's service workload (issue 14) without HTTP. N threads
// run the service's query back to back for S seconds, through the service's own db_pool
// (examples/http-service/db.hpp: N read-only connections, one prepared statement each), so the
// work per query is the service's by construction; the total is what uvrt-http-service's pool of N threads could answer
// at best. Prints one JSON line: {"threads":N,"queries":Q,"seconds":S,"per_s":R}, where seconds is
// the measured time from the start signal to the last thread's stop.
//
//     query-baseline --db PATH [--threads N] [--seconds S]
//
// The database is uvrt-http-service's (`--db PATH --create-only`); it is only read.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <exception>
#include <vector>

#include "db.hpp"

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "query-baseline: %s\nusage: query-baseline --db PATH [--threads N] [--seconds S]\n", why);
  std::exit(2);
}

long positive(const char* flag, const char* text, long max) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < 1 || value > max)
    usage((std::string("bad value for ") + flag + ": " + text).c_str());
  return value;
}

// One thread: queries until told to stop, each through a connection of the pool, which has one a
// thread. Thread t starts at id t * 1000 so that the threads do not walk the same ranges in step
// (ids then go up by one).
void worker(service::db_pool& db, int t, std::atomic<int>& ready, const std::atomic<bool>& go,
            const std::atomic<bool>& stop, long long& queries) {
  ready.fetch_add(1, std::memory_order_release);
  while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
  long long n = 0;
  try {
    for (long long id = t * 1000LL; !stop.load(std::memory_order_relaxed); ++id, ++n) db.query(id % 9000);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "query-baseline: %s\n", e.what());
    std::exit(1);
  }
  queries = n;
}

}  // namespace

int main(int argc, char** argv) {
  const char* path = nullptr;
  long threads = 4, seconds = 10;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) usage((std::string("missing value for ") + argv[i]).c_str());
    if (!std::strcmp(argv[i], "--db")) path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) threads = positive("--threads", argv[i + 1], 1024);
    else if (!std::strcmp(argv[i], "--seconds")) seconds = positive("--seconds", argv[i + 1], 86400);
    else usage((std::string("unknown flag ") + argv[i]).c_str());
  }
  if (!path) usage("--db is required");
  std::unique_ptr<service::db_pool> db;
  try {
    db = std::make_unique<service::db_pool>(path, static_cast<std::size_t>(threads));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "query-baseline: %s\n", e.what());
    return 1;
  }

  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<long long> queries(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(worker, std::ref(*db), t, std::ref(ready), std::cref(go), std::cref(stop),
                      std::ref(queries[t]));

  // Every connection is open and its statement prepared (by db_pool) before the clock starts.
  while (ready.load(std::memory_order_acquire) < threads) std::this_thread::yield();
  auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  long long total = 0;
  for (long long q : queries) total += q;
  std::printf("{\"threads\":%ld,\"queries\":%lld,\"seconds\":%.3f,\"per_s\":%.1f}\n", threads, total, elapsed,
              total / elapsed);
  return 0;
}
