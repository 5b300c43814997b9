// query-baseline: the limit of bench/run's service workload (issue 14) without HTTP. N threads,
// each with its own read-only SQLite connection and prepared statement, run the service's query
// back to back for S seconds; the total is what uvrt-http-service's pool of N threads could answer
// at best. Prints one JSON line: {"threads":N,"queries":Q,"seconds":S,"per_s":R}, where seconds is
// the measured time from the start signal to the last thread's stop.
//
//     query-baseline --db PATH [--threads N] [--seconds S]
//
// The database is uvrt-http-service's (`--db PATH --create-only`); it is only read.
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// The same query as examples/http-service and bench/peers/fastapi_service.py, ?1 = id % 9000.
constexpr const char* query_sql = "select count(*), sum(v) from items where k between ?1 and ?1 + 200";

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

[[noreturn]] void fail(const char* what, sqlite3* db) {
  std::fprintf(stderr, "query-baseline: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
  std::exit(1);
}

// One thread: its own connection and statement, queries until told to stop. Thread t starts at id
// t * 1000 so that the threads do not walk the same ranges in step (ids then go up by one).
void worker(const std::string& uri, int t, std::atomic<int>& ready, const std::atomic<bool>& go,
            const std::atomic<bool>& stop, long long& queries) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) != SQLITE_OK)
    fail("cannot open the database", db);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, query_sql, -1, &stmt, nullptr) != SQLITE_OK) fail("cannot prepare the query", db);

  ready.fetch_add(1, std::memory_order_release);
  while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
  long long n = 0;
  for (long long id = t * 1000LL; !stop.load(std::memory_order_relaxed); ++id, ++n) {
    sqlite3_bind_int64(stmt, 1, id % 9000);
    if (sqlite3_step(stmt) != SQLITE_ROW) fail("query failed", db);
    sqlite3_reset(stmt);
  }
  queries = n;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
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
  // Read-only through a URI, as the service's peers open it. A path with '?' or '#' would need
  // escaping; bench/run's temporary paths have neither.
  const std::string uri = std::string("file:") + path + "?mode=ro";

  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<long long> queries(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(worker, std::cref(uri), t, std::ref(ready), std::cref(go), std::cref(stop),
                      std::ref(queries[t]));

  // Every connection is open and its statement prepared before the clock starts.
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
