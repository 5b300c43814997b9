// Starting libuv's thread pool under uvrt's rules instead of libuv's silent ones.
//
// libuv sizes its pool from atoi(getenv("UV_THREADPOOL_SIZE")) when the pool first starts and
// never again. uvrt therefore validates the size, exports it, and starts the pool itself, all
// under one process-wide lock, so no two runtimes race on the environment or the start.
//
// Validation, before anything is started or changed: the option, if not 0, must be 1..1024; the
// variable, if set, must be a plain integer 1..1024 whatever the option says, so a bad value is
// reported rather than overwritten. A valid variable and a different non-zero option: the option
// wins and is exported as the variable.
//
// Starting or finding the pool: uvrt queues one empty probe job on a private loop. libuv (1.44
// and later) creates every worker inside the uv_queue_work call that first uses the pool, and
// waits until all have started before it returns; a later call creates none. So the threads
// that appear during that one call tell whether it started the pool. Threads the application
// creates in the same instant must not count: the calling thread carries a marker name for the
// call, and a new thread inherits its creator's name, so the workers this call creates carry the
// marker and threads created by any other thread do not. libuv 1.50 and later names its workers
// "libuv-worker" before the call returns, so that name counts too. uvrt started the pool if at
// least as many such threads appeared as the size it asked for. A pool that another thread
// starts during the call carries that thread's name: uvrt rightly finds it running.
// What remains: on libuv 1.50 and later, threads that one of the pool's own jobs creates during
// the call inherit "libuv-worker"; that many in the same microseconds would pass for the pool.
// Where /proc or thread names are unavailable, uvrt assumes it started the pool. While the call
// lasts (up to the creation of every worker), the calling thread's name is the marker.
//
// The probe is cancelled as soon as it is queued, so the start never waits for a free worker:
// called from inside a pool job while every worker is busy, the caller among them, it still
// returns. A worker that already took the probe (uv_cancel says UV_EBUSY) finishes the empty job
// on its own. Which thread ran the probe would be evidence too, but it is rarely known, since
// the cancel usually wins.
//
// Found running (started by the application before uvrt saw it): libuv read the variable when it
// started; uvrt can only report the size libuv derives from the variable as it is now.
//
// fork(): the lock is held across fork() (pthread_atfork), so a child never inherits it locked by
// a thread it does not have. libuv resets its pool in the child, which starts a new one on its
// first submit, reading the variable again; uvrt forgets the pool there as well and starts or
// finds it anew.
#include <pthread.h>
#include <sys/prctl.h>
#include <uv.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "pool_slots.hpp"
#include "threadpool_start.hpp"
#include "uvrt/errors.hpp"
#include "uvrt/threadpool.hpp"

namespace uvrt {

namespace {

constexpr int default_size = 4;  // libuv's
constexpr int max_size = 1024;   // libuv's MAX_THREADPOOL_SIZE

// The calling thread's name while it starts the pool (at most 15 characters, the kernel's
// limit), and the name libuv 1.50 and later gives its workers.
constexpr char marker_name[] = "uvrt-pool-start";
constexpr char libuv_worker_name[] = "libuv-worker";

// Threads kept free of to_thread jobs when no runtime asks for a number (see threadpool.hpp).
constexpr int default_reserved = 0;

std::mutex pool_mutex;
int pool_size = 0;  // 0 until uvrt has started (or found) the pool
int reserved = -1;  // the process's options::reserved_threads; -1 until a runtime sets it

// A plain decimal integer from 1 to max_size: digits only, no sign, spaces or suffix.
std::optional<int> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    value = value * 10 + (ch - '0');
    if (value > max_size) return std::nullopt;
  }
  if (value < 1) return std::nullopt;
  return value;
}

// The size libuv 1.44 derives from the variable's text, silent mappings included.
int libuv_size_for(const std::string& text) {
  auto n = static_cast<unsigned>(std::atoi(text.c_str()));
  if (n == 0) n = 1;
  if (n > max_size) n = max_size;
  return static_cast<int>(n);
}

// The ids of the process's threads, or nothing where /proc cannot tell.
std::optional<std::set<long>> thread_ids() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/task", ec);
  if (ec) return std::nullopt;
  std::set<long> ids;
  for (const auto& entry : it) ids.insert(std::strtol(entry.path().filename().c_str(), nullptr, 10));
  return ids;
}

// A thread's name from /proc, empty if it has exited meanwhile.
std::string thread_name(long id) {
  std::ifstream comm("/proc/self/task/" + std::to_string(id) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

// How many threads in `after` were not in `before` and bear a pool worker's name. Counting new
// ids rather than comparing totals keeps threads that exit meanwhile from hiding the pool.
std::size_t workers_added(const std::set<long>& before, const std::set<long>& after) {
  std::size_t added = 0;
  for (long id : after) {
    if (before.count(id) != 0) continue;
    const std::string name = thread_name(id);
    added += name == marker_name || name == libuv_worker_name;
  }
  return added;
}

std::string threads_text(int n) { return std::to_string(n) + (n == 1 ? " thread" : " threads"); }

// Gives the calling thread the marker name until destroyed, then its own name back.
class marked_thread {
 public:
  marked_thread() : marked_(prctl(PR_GET_NAME, own_.data()) == 0 && prctl(PR_SET_NAME, marker_name) == 0) {}
  ~marked_thread() {
    if (marked_) prctl(PR_SET_NAME, own_.data());
  }
  // False if the name could not be read or set: the threads this thread creates are not marked.
  bool marked() const { return marked_; }
  marked_thread(const marked_thread&) = delete;
  marked_thread& operator=(const marked_thread&) = delete;

 private:
  std::array<char, 16> own_{};  // PR_GET_NAME writes up to 16 bytes
  bool marked_;
};

// Queues an empty job on a private loop, so that libuv starts its pool if nobody has, and
// returns how many pool workers that created, or nothing where /proc or the names cannot tell.
std::optional<std::size_t> start_pool_now() {
  uv_loop_t loop;
  uv_work_t req;
  if (uv_loop_init(&loop) != 0) throw std::runtime_error("uvrt: uv_loop_init failed while starting the thread pool");
  std::optional<std::set<long>> before;
  std::optional<std::set<long>> after;
  bool marked = false;
  {
    const marked_thread caller;
    marked = caller.marked();
    before = thread_ids();
    uv_queue_work(&loop, &req, [](uv_work_t*) {}, [](uv_work_t*, int) {});
    after = thread_ids();
  }
  // Still queued: the after-work callback comes with UV_ECANCELED, from no worker. UV_EBUSY: a
  // worker is already running the empty job.
  uv_cancel(reinterpret_cast<uv_req_t*>(&req));
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (!before || !after || !marked) return std::nullopt;
  return workers_added(*before, *after);
}

// Validates options::reserved_threads against a pool of `size` threads and the process's value.
void check_reserved(std::optional<int> asked, int size) {
  if (!asked || *asked == -1) return;
  const int requested = *asked;
  if (requested < 0 || requested >= size)
    throw threadpool_size_error("uvrt: options::reserved_threads = " + std::to_string(requested) +
                                " is out of range: expected 0 to " + std::to_string(size - 1) +
                                " (the pool has " + threads_text(size) + "), or -1 for no preference");
  if (reserved != -1 && requested != reserved)
    throw detail::threadpool_conflict_error("uvrt: cannot reserve " + threads_text(requested) +
                                            ": the process reserves " + threads_text(reserved) +
                                            " of libuv's pool already, and the reservation is process-wide");
}

// The pool runs with `size` threads: the first runtime's reservation sets the pool's slots. A
// query of the size alone (no `requested_reserved`) reserves nothing yet.
int settle_pool(int size, std::optional<int> requested_reserved) {
  pool_size = size;
  if (reserved == -1 && requested_reserved)
    reserved = *requested_reserved == -1 ? (default_reserved < size ? default_reserved : 0) : *requested_reserved;
  detail::set_pool_slots(pool_size - (reserved == -1 ? 0 : reserved));
  return pool_size;
}

[[noreturn]] void throw_conflict(int requested, int running) {
  throw detail::threadpool_conflict_error("uvrt: cannot use a thread pool of " + threads_text(requested) +
                                      ": libuv's pool is process-wide and already running with " + threads_text(running) +
                                      "; it cannot be resized");
}

// Holds the lock across fork(): a thread of the parent's in the middle of a pool start would
// otherwise leave it locked, forever, in the child.
void register_fork_handlers() {
  static const bool registered = [] {
    // The slots' lock after the pool's, as set_pool_slots takes them.
    return pthread_atfork(
               [] {
                 pool_mutex.lock();
                 detail::lock_slots_for_fork();
               },
               [] {
                 detail::unlock_slots_after_fork(false);
                 pool_mutex.unlock();
               },
               [] {
                 detail::unlock_slots_after_fork(true);
                 // libuv starts a new pool in the child: find or start it anew.
                 pool_size = 0;
                 pool_mutex.unlock();
               }) == 0;
  }();
  if (!registered) throw std::runtime_error("uvrt: pthread_atfork failed while starting the thread pool");
}

}  // namespace

namespace detail {

int start_threadpool(int requested, std::optional<int> requested_reserved) {
  if (requested < 0 || requested > max_size)
    throw threadpool_size_error("uvrt: options::threadpool_size = " + std::to_string(requested) +
                                " is out of range: expected 1 to 1024, or 0 for no preference");
  if (requested_reserved && (*requested_reserved < -1 || *requested_reserved >= max_size))
    throw threadpool_size_error("uvrt: options::reserved_threads = " + std::to_string(*requested_reserved) +
                                " is out of range: expected 0 to the pool size - 1, or -1 for no preference");
  register_fork_handlers();
  std::lock_guard lock(pool_mutex);
  if (pool_size != 0) {
    if (requested != 0 && requested != pool_size) throw_conflict(requested, pool_size);
    check_reserved(requested_reserved, pool_size);
    return settle_pool(pool_size, requested_reserved);
  }

  std::optional<std::string> env;
  int env_size = default_size;
  if (const char* raw = std::getenv("UV_THREADPOOL_SIZE")) {
    env = raw;
    auto parsed = parse_size(*env);
    if (!parsed)
      throw threadpool_size_error("uvrt: UV_THREADPOOL_SIZE=\"" + *env +
                                  "\" is not a valid thread pool size: expected a whole number from 1 to 1024 "
                                  "(libuv would silently use " + threads_text(libuv_size_for(*env)) + ")");
    env_size = *parsed;
  }
  const int want = requested != 0 ? requested : env_size;
  check_reserved(requested_reserved, want);

  if (requested != 0) setenv("UV_THREADPOOL_SIZE", std::to_string(requested).c_str(), 1);
  const auto created = start_pool_now();

  if (created && *created < static_cast<std::size_t>(want)) {
    // No new workers: the pool was already running. libuv sized it from the variable when it
    // started; the value it has now (before uvrt touched it) is the best evidence left of that.
    // Put the variable back so it keeps describing the pool.
    if (requested != 0) {
      if (env) setenv("UV_THREADPOOL_SIZE", env->c_str(), 1);
      else unsetenv("UV_THREADPOOL_SIZE");
    }
    if (requested != 0 && requested != env_size) throw_conflict(requested, env_size);
    check_reserved(requested_reserved, env_size);
    return settle_pool(env_size, requested_reserved);
  }
  return settle_pool(want, requested_reserved);
}

}  // namespace detail

int threadpool_size() { return detail::start_threadpool(0, std::nullopt); }

}  // namespace uvrt
