// uvrt-bench: what a blocking call on the event loop costs everyone else, and what to_thread
// buys back.
//
// The same workload of blocking calls runs two ways: directly on the loop thread (the
// anti-pattern) and through runtime::to_thread with a window of jobs in flight. Meanwhile a
// repeating timer on the loop records how late it fires: the loop's lag, which is how long any
// other request, timer or socket on that loop would have waited. See README.md.
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <uvrt/uvrt.hpp>

namespace {

// ---------------------------------------------------------------------------------------------
// Settings and their parsing.

enum class work_kind { empty, spin, sleep };

struct work_spec {
  work_kind kind = work_kind::sleep;
  std::uint64_t us = 1000;  // duration of spin and sleep; unused for empty
};

enum class run_mode { direct, to_thread, both };

struct settings {
  std::uint64_t jobs = 2000;
  work_spec work;
  int threads = 0;  // 0: no preference, as uvrt::options means it
  std::uint64_t inflight = 64;
  run_mode mode = run_mode::both;
};

constexpr std::uint64_t max_jobs = 1'000'000'000;
constexpr std::uint64_t max_work_us = 10'000'000;  // 10 s: longer is a typo, not a benchmark
constexpr std::uint64_t max_inflight = 1'000'000;
constexpr std::uint64_t max_threads = 1024;  // libuv's own limit

constexpr const char* usage_text =
    "usage: uvrt-bench [--jobs N] [--work KIND] [--threads T] [--inflight W] [--mode M]\n"
    "\n"
    "Runs N blocking calls on the event loop thread (direct) and through uvrt's to_thread,\n"
    "and reports throughput and how late a 1 ms timer on the loop fired (loop lag).\n"
    "\n"
    "  --jobs N       number of jobs, 1 to 1000000000 (default 2000)\n"
    "  --work KIND    empty | spin:US | sleep:US, US from 1 to 10000000 (default sleep:1000)\n"
    "  --threads T    libuv pool size, 1 to 1024 (default: UV_THREADPOOL_SIZE, else 4)\n"
    "  --inflight W   concurrent requests: jobs in flight in to_thread mode, calls per loop\n"
    "                 turn in direct mode, 1 to 1000000 (default 64)\n"
    "  --mode M       direct | to_thread | both (default both)\n"
    "  --help         print this and exit\n";

// A command line the benchmark cannot run: main prints the message and the usage, exits 2.
class bad_flag : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void reject(std::string_view flag, std::string_view value, std::string_view expected) {
  throw bad_flag(std::string(flag) + ": invalid value \"" + std::string(value) + "\": expected " +
                 std::string(expected));
}

// A plain decimal integer in [lo, hi]: digits only, no sign, spaces or suffix.
std::optional<std::uint64_t> parse_count(std::string_view text, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value < lo || value > hi) return std::nullopt;
  return value;
}

std::uint64_t count_flag(std::string_view flag, std::string_view value, std::uint64_t lo, std::uint64_t hi) {
  if (auto n = parse_count(value, lo, hi)) return *n;
  reject(flag, value, "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
}

work_spec work_flag(std::string_view value) {
  const std::string expected = "empty, spin:US or sleep:US with US from 1 to " + std::to_string(max_work_us);
  if (value == "empty") return {work_kind::empty, 0};
  const auto colon = value.find(':');
  if (colon == std::string_view::npos) reject("--work", value, expected);
  const std::string_view kind = value.substr(0, colon);
  const auto us = parse_count(value.substr(colon + 1), 1, max_work_us);
  if (!us || (kind != "spin" && kind != "sleep")) reject("--work", value, expected);
  return {kind == "spin" ? work_kind::spin : work_kind::sleep, *us};
}

run_mode mode_flag(std::string_view value) {
  if (value == "direct") return run_mode::direct;
  if (value == "to_thread") return run_mode::to_thread;
  if (value == "both") return run_mode::both;
  reject("--mode", value, "direct, to_thread or both");
}

// `value` is nullopt when the flag ends the command line without one.
void apply_flag(settings& s, std::string_view flag, std::optional<std::string_view> value) {
  const bool known = flag == "--jobs" || flag == "--work" || flag == "--threads" || flag == "--inflight" ||
                     flag == "--mode";
  if (!known) throw bad_flag("unknown argument \"" + std::string(flag) + "\"");
  if (!value) throw bad_flag(std::string(flag) + ": missing value");
  if (flag == "--jobs") s.jobs = count_flag(flag, *value, 1, max_jobs);
  else if (flag == "--work") s.work = work_flag(*value);
  else if (flag == "--threads") s.threads = static_cast<int>(count_flag(flag, *value, 1, max_threads));
  else if (flag == "--inflight") s.inflight = count_flag(flag, *value, 1, max_inflight);
  else s.mode = mode_flag(*value);
}

// Accepts "--flag value" and "--flag=value". Returns nullopt for --help.
std::optional<settings> parse_args(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return std::nullopt;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      apply_flag(s, arg.substr(0, eq), arg.substr(eq + 1));
    } else {
      apply_flag(s, arg, i + 1 < argc ? std::optional<std::string_view>(argv[++i]) : std::nullopt);
    }
  }
  return s;
}

std::string describe(const work_spec& w) {
  switch (w.kind) {
    case work_kind::empty: return "empty";
    case work_kind::spin: return "spin:" + std::to_string(w.us);
    case work_kind::sleep: return "sleep:" + std::to_string(w.us);
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// The workload.

// Busy-waits on the CPU, like a parser or a compression call.
void spin_for(std::uint64_t us) noexcept {
  const std::uint64_t until = uv_hrtime() + us * 1000;
  while (uv_hrtime() < until) {
  }
}

void perform(const work_spec& w) noexcept {
  switch (w.kind) {
    case work_kind::empty: break;
    case work_kind::spin: spin_for(w.us); break;
    case work_kind::sleep: std::this_thread::sleep_for(std::chrono::microseconds(w.us)); break;
  }
}

// What job `i` returns: distinct per job, so a result delivered to the wrong future shows.
constexpr std::uint64_t value_of(std::uint64_t i) noexcept {
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
  x ^= x >> 31;
  return x;
}

// Runs jobs and checks their results, so a broken runtime cannot produce a good-looking row.
// run() may be called on any thread; accept() only on the loop thread.
class job_ledger {
 public:
  explicit job_ledger(work_spec work) : work_(work) {}

  std::uint64_t run(std::uint64_t i) const noexcept {
    perform(work_);
    ran_.fetch_add(1, std::memory_order_relaxed);
    return value_of(i);
  }

  // Records the result the caller received for job `i`.
  void accept(std::uint64_t i, std::uint64_t value) noexcept {
    ++accepted_;
    if (value != value_of(i)) ++wrong_;
  }

  // Throws unless each of `jobs` jobs ran once and delivered its own value.
  void verify(const char* mode, std::uint64_t jobs) const {
    const std::uint64_t ran = ran_.load(std::memory_order_relaxed);
    if (ran != jobs || accepted_ != jobs || wrong_ != 0)
      throw std::runtime_error(std::string(mode) + ": result check failed: " + std::to_string(jobs) +
                               " jobs, " + std::to_string(ran) + " ran, " + std::to_string(accepted_) +
                               " results received, " + std::to_string(wrong_) + " wrong");
  }

 private:
  work_spec work_;
  mutable std::atomic<std::uint64_t> ran_{0};
  std::uint64_t accepted_ = 0;
  std::uint64_t wrong_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Loop lag.

constexpr std::uint64_t tick_ns = 1'000'000;

// How late a repeating 1 ms timer on the loop fires.
//
// Definition: a tick should fire one interval after the previous tick actually fired (the first
// one, one interval after start()), and its lag is how much later than that it fired, measured
// with uv_hrtime (libuv's loop clock is cached and in whole milliseconds). libuv re-arms a
// repeating timer from the loop's clock when it fires, rather than keeping a fixed schedule, so
// a stall of 50 ms yields one late tick, not 50 missed ones. Measuring against the previous tick
// therefore counts each stall once, as one sample of its length, and never accumulates drift.
// Because libuv schedules timers in whole milliseconds, lags under about 1 ms are the timer's own
// jitter. When the probe is closed, a tick that is overdue counts as firing then, so a stall at
// the very end of a run is not lost.
//
// The timer is unreferenced: it measures the loop without keeping runtime::run going.
class lag_probe {
 public:
  explicit lag_probe(uv_loop_t* loop) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  }
  lag_probe(const lag_probe&) = delete;
  lag_probe& operator=(const lag_probe&) = delete;

  void start() {
    // libuv arms timers from its cached clock, which is stale when the loop has not turned for
    // a while; refresh it so libuv's first due time and ours agree.
    uv_update_time(timer_.loop);
    due_ = uv_hrtime() + tick_ns;
    uv_timer_start(&timer_, &on_tick, 1, 1);
  }

  // Stops and closes the timer; the close completes when the loop next turns.
  void close() {
    record(uv_hrtime(), false);
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { static_cast<lag_probe*>(h->data)->closed_ = true; });
  }

  bool closed() const noexcept { return closed_; }
  const std::vector<std::uint64_t>& lags_ns() const noexcept { return lags_; }

 private:
  static void on_tick(uv_timer_t* t) {
    static_cast<lag_probe*>(t->data)->record(uv_hrtime(), true);
  }

  // A tick fired at `now` (fired), or the probe is closing and records the pending tick only if
  // it is overdue.
  void record(std::uint64_t now, bool fired) {
    if (fired || now > due_) lags_.push_back(now > due_ ? now - due_ : 0);
    due_ = now + tick_ns;
  }

  uv_timer_t timer_;
  std::uint64_t due_ = 0;
  std::vector<std::uint64_t> lags_;
  bool closed_ = false;
};

struct lag_stats {
  std::size_t samples = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// Nearest-rank percentiles.
lag_stats summarize(std::vector<std::uint64_t> lags) {
  lag_stats s;
  s.samples = lags.size();
  if (lags.empty()) return s;
  std::sort(lags.begin(), lags.end());
  auto at = [&](double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(lags.size())));
    return static_cast<double>(lags[std::clamp<std::size_t>(rank, 1, lags.size()) - 1]) / 1e6;
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = static_cast<double>(lags.back()) / 1e6;
  return s;
}

// ---------------------------------------------------------------------------------------------
// The two modes.

// The anti-pattern: each loop turn, `inflight` requests are ready and each handler makes its
// blocking call on the loop thread, back to back, as a server with that many concurrent clients
// would. A libuv idle handle stands in for the ready requests: it runs once per loop turn.
class direct_driver {
 public:
  direct_driver(uv_loop_t* loop, job_ledger& ledger, const settings& s) : ledger_(ledger), s_(s) {
    uv_idle_init(loop, &idle_);
    idle_.data = this;
    uv_idle_start(&idle_, &on_idle);
  }
  direct_driver(const direct_driver&) = delete;
  direct_driver& operator=(const direct_driver&) = delete;

  bool closed() const noexcept { return closed_; }

 private:
  static void on_idle(uv_idle_t* h) {
    auto* d = static_cast<direct_driver*>(h->data);
    const std::uint64_t end = std::min(d->next_ + d->s_.inflight, d->s_.jobs);
    for (; d->next_ < end; ++d->next_) d->ledger_.accept(d->next_, d->ledger_.run(d->next_));
    if (d->next_ < d->s_.jobs) return;
    uv_idle_stop(h);
    uv_close(reinterpret_cast<uv_handle_t*>(h),
             [](uv_handle_t* c) { static_cast<direct_driver*>(c->data)->closed_ = true; });
  }

  uv_idle_t idle_;
  job_ledger& ledger_;
  const settings& s_;
  std::uint64_t next_ = 0;
  bool closed_ = false;
};

void run_direct(uvrt::runtime& rt, job_ledger& ledger, const settings& s) {
  direct_driver driver(rt.loop(), ledger, s);
  rt.run();
  if (!driver.closed()) throw std::logic_error("direct: runtime::run returned before the workload finished");
}

// The fix: keeps `inflight` jobs on the pool. It awaits the oldest job, checks its result and
// submits the next job in its place; libuv's pool is FIFO, so the oldest is among the next to
// finish. The references stay valid because block_on runs the task to completion.
uvrt::task<> windowed(uvrt::runtime& rt, job_ledger& ledger, const settings& s) {
  std::vector<uvrt::future<std::uint64_t>> window(std::min(s.inflight, s.jobs));
  std::uint64_t submitted = 0;
  for (auto& slot : window) slot = rt.to_thread(&job_ledger::run, &ledger, submitted++);
  for (std::uint64_t done = 0; done < s.jobs; ++done) {
    auto& slot = window[done % window.size()];
    ledger.accept(done, co_await slot);
    if (submitted < s.jobs) slot = rt.to_thread(&job_ledger::run, &ledger, submitted++);
  }
}

void run_to_thread(uvrt::runtime& rt, job_ledger& ledger, const settings& s) {
  rt.block_on(windowed(rt, ledger, s));
}

struct mode_result {
  const char* name;
  std::uint64_t jobs;
  double wall_s;
  lag_stats lag;
};

// Runs one mode with the lag probe covering all of it, then closes the probe and turns the loop
// until its close callback ran, also when the mode failed: the timer must not outlive the probe.
template <class Mode>
mode_result measure(uvrt::runtime& rt, const char* name, const settings& s, Mode mode) {
  job_ledger ledger(s.work);
  lag_probe probe(rt.loop());
  probe.start();
  const std::uint64_t start = uv_hrtime();
  try {
    mode(rt, ledger, s);
  } catch (...) {
    probe.close();
    rt.run();
    throw;
  }
  const std::uint64_t wall_ns = uv_hrtime() - start;
  probe.close();
  rt.run();
  if (!probe.closed()) throw std::logic_error(std::string(name) + ": the lag timer's close callback never ran");
  ledger.verify(name, s.jobs);
  return {name, s.jobs, static_cast<double>(wall_ns) / 1e9, summarize(probe.lags_ns())};
}

// ---------------------------------------------------------------------------------------------
// Report.

void print_header(const settings& s, int pool) {
  std::printf("uvrt-bench: blocking calls on the loop thread vs uvrt::runtime::to_thread\n");
  std::printf("libuv %s, pool %d threads, work %s, jobs %llu, in flight %llu, lag timer every 1 ms\n\n",
              uv_version_string(), pool, describe(s.work).c_str(), static_cast<unsigned long long>(s.jobs),
              static_cast<unsigned long long>(s.inflight));
  std::printf("%-10s %10s %9s %11s %11s %11s %11s %7s\n", "mode", "jobs", "wall s", "jobs/s", "lag p50 ms",
              "lag p99 ms", "lag max ms", "ticks");
}

void print_row(const mode_result& r) {
  std::printf("%-10s %10llu %9.3f %11.0f ", r.name, static_cast<unsigned long long>(r.jobs), r.wall_s,
              static_cast<double>(r.jobs) / r.wall_s);
  // A run shorter than one tick has no lag to report; zeros would claim a perfect loop.
  if (r.lag.samples == 0) std::printf("%11s %11s %11s %7zu\n", "-", "-", "-", r.lag.samples);
  else std::printf("%11.3f %11.3f %11.3f %7zu\n", r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms, r.lag.samples);
  std::fflush(stdout);
}

void print_conclusion(const mode_result& direct, const mode_result& threaded) {
  const double d = direct.lag.p99_ms;
  const double t = threaded.lag.p99_ms;
  if (direct.lag.samples == 0 || threaded.lag.samples == 0) {
    std::printf("\nconclusion: the run was too short for the lag timer to fire; raise --jobs to compare\n");
  } else if (t < d) {
    std::printf("\nconclusion: to_thread kept the loop responsive: p99 lag %.3f ms vs %.3f ms with the calls on "
                "the loop thread",
                t, d);
    if (t > 0) std::printf(" (%.0fx lower)", d / t);
    std::printf("\n");
  } else {
    std::printf("\nconclusion: to_thread did not lower the loop's lag for this workload: p99 %.3f ms vs %.3f ms "
                "with the calls on the loop thread\n",
                t, d);
  }
}

int run(const settings& s) {
  uvrt::runtime rt(uvrt::options{.threadpool_size = s.threads});
  print_header(s, uvrt::threadpool_size());
  std::optional<mode_result> direct, threaded;
  if (s.mode != run_mode::to_thread) {
    direct = measure(rt, "direct", s, run_direct);
    print_row(*direct);
  }
  if (s.mode != run_mode::direct) {
    threaded = measure(rt, "to_thread", s, run_to_thread);
    print_row(*threaded);
  }
  if (direct && threaded) print_conclusion(*direct, *threaded);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<settings> s;
  try {
    s = parse_args(argc, argv);
  } catch (const bad_flag& e) {
    std::fprintf(stderr, "uvrt-bench: %s\n\n%s", e.what(), usage_text);
    return 2;
  }
  if (!s) {
    std::fputs(usage_text, stdout);
    return 0;
  }
  try {
    return run(*s);
  } catch (const uvrt::threadpool_size_error& e) {
    // A bad UV_THREADPOOL_SIZE is a setting the benchmark cannot run with, like a bad flag.
    std::fprintf(stderr, "uvrt-bench: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uvrt-bench: error: %s\n", e.what());
    return 1;
  }
}
