// uvrt-bench: what uvrt costs per job, how quickly a job comes back, whether the event loop stays
// responsive and how much memory it holds, next to bare libuv and next to the anti-pattern of
// making the blocking call on the loop thread.
//
// The same N jobs (--work: nothing, a busy CPU or a blocking sleep) run in each mode that --mode
// selects, one mode after the other, on the loop of one uvrt::runtime:
//   direct     the anti-pattern: on every loop turn W requests are ready, and each handler makes
//              its blocking call on the loop thread, back to back.
//   to_thread  the fix: runtime::to_thread, with W futures in flight awaited in order by a
//              uvrt::task.
//   c_api      the same through <uvrt.h>: a C runtime embedded in the same loop, fire-and-forget
//              jobs whose done callback submits the next one; the value travels in `void* result`.
//   bare       uv_queue_work with a malloc'd request per job, refilled from the after-work callback:
//              the floor uvrt wraps, as bench/peers/bare_uv.c, but inside this harness.
// A job_ledger checks every mode: each job ran once and delivered its own value, or the run fails
// with exit status 1 instead of printing a row.
//
// Measured per mode: the wall time, to the last result; each job's round trip, from its
// submission to its result being observed on the loop thread (a uv_hrtime stamp per job in a
// vector indexed by job: 8 bytes a job, included in the peak RSS); the loop's lag, from a
// repeating 1 ms timer; and the peak RSS.
// getrusage reports the peak for the whole process and never lowers it, so a per-mode figure needs
// one mode per process, which is how bench/run calls this program.
//
// Filling a window of W jobs must not itself stall the loop: submitting a million jobs from one
// callback takes over 100 ms, which the lag figure would then blame on the runtime. The windowed
// modes therefore submit at most fill_slice jobs per loop turn until the window is first full, and
// from then on one job in place of each result (job_window).
//
// Two probes answer questions the job figures cannot (both off by default):
//   --fs-probe N  starvation of libuv's own pool work: once the mode's jobs are queued (its window
//                 first full), N uv_fs_stat calls on the same loop, one after another (each issued
//                 when the previous one answered), each timed from its call to its callback. libuv
//                 runs file system requests on the same pool as the jobs, so a stat waits behind
//                 the jobs queued before it unless the runtime keeps a thread for it
//                 (--reserved R sets options::reserved_threads of the runtime).
//   --read-stats  the cost of reading runtime::stats(): in to_thread mode a 1 ms timer on the
//                 loop calls it, as a metrics exporter would, while the jobs run.
//
// --compose (issue 13) changes how to_thread mode waits for its jobs, for what composing futures
// costs a job: `timeout` wraps each future of the window in uvrt::timeout(.., 10 s), which never
// fires; `when_all` runs the jobs in rounds of W, each gathered by uvrt::when_all and awaited
// before the next round is submitted; `rounds` is the same rounds with each future awaited in
// order, when_all's baseline. The other modes ignore it.
//
// Runs longer than about 3 s show a progress line on stderr when stderr is a terminal. --json
// prints one JSON object on stdout instead of the table. See README.md.
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>
#include <uvrt.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
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

// In the order they run, whatever order --mode lists them in.
enum class mode_id { direct, to_thread, c_api, bare };
constexpr std::array<mode_id, 4> all_modes = {mode_id::direct, mode_id::to_thread, mode_id::c_api, mode_id::bare};
constexpr std::array<const char*, 4> mode_names = {"direct", "to_thread", "c_api", "bare"};

const char* name_of(mode_id m) { return mode_names[static_cast<std::size_t>(m)]; }

// How to_thread mode waits for its jobs (--compose); none: the window, awaited oldest first.
enum class compose_kind { none, timeout, when_all, rounds };
constexpr std::array<const char*, 4> compose_names = {"none", "timeout", "when_all", "rounds"};

const char* name_of(compose_kind c) { return compose_names[static_cast<std::size_t>(c)]; }

// --compose timeout's limit: long enough never to fire, as the peers' (bench/peers/peer_common.h).
constexpr std::chrono::seconds compose_timeout{10};

struct settings {
  std::uint64_t jobs = 2000;
  work_spec work;
  int threads = 0;  // 0: no preference, as uvrt::options means it
  int reserved = -1;  // options::reserved_threads; -1: no preference, as uvrt::options means it
  std::uint64_t inflight = 64;
  std::array<bool, 4> modes = {true, true, false, false};  // indexed by mode_id
  std::uint64_t fs_probe = 0;  // uv_fs_stat calls once the jobs are queued; 0: none
  bool read_stats = false;     // to_thread: runtime::stats() every 1 ms
  compose_kind compose = compose_kind::none;  // to_thread: how its jobs are awaited
  bool json = false;

  bool runs(mode_id m) const { return modes[static_cast<std::size_t>(m)]; }
};

constexpr std::uint64_t max_jobs = 1'000'000'000;
constexpr std::uint64_t max_work_us = 10'000'000;  // 10 s: longer is a typo, not a benchmark
constexpr std::uint64_t max_inflight = 1'000'000;
constexpr std::uint64_t max_threads = 1024;  // libuv's own limit
constexpr std::uint64_t max_fs_probe = 1'000'000;

constexpr const char* usage_text =
    "usage: uvrt-bench [--jobs N] [--work KIND] [--threads T] [--inflight W] [--mode LIST]\n"
    "                  [--fs-probe N] [--reserved R] [--read-stats] [--compose C] [--json]\n"
    "\n"
    "Runs N blocking calls in each mode and reports throughput, each job's round trip, how late\n"
    "a 1 ms timer on the loop fired (loop lag) and the process's peak RSS.\n"
    "\n"
    "  --jobs N       number of jobs, 1 to 1000000000 (default 2000)\n"
    "  --work KIND    empty | spin:US | sleep:US, US from 1 to 10000000 (default sleep:1000)\n"
    "  --threads T    libuv pool size, 1 to 1024 (default: UV_THREADPOOL_SIZE, else 4)\n"
    "  --inflight W   concurrent requests: jobs in flight in the pool modes, calls per loop\n"
    "                 turn in direct mode, 1 to 1000000 (default 64)\n"
    "  --mode LIST    comma-separated modes, always run in this order: direct (blocking calls\n"
    "                 on the loop thread), to_thread (uvrt futures in a task), c_api (uvrt's\n"
    "                 C API), bare (uv_queue_work); or all (default direct,to_thread)\n"
    "  --fs-probe N   once the jobs are queued, N uv_fs_stat calls on the same loop, one\n"
    "                 after another, each timed, 1 to 1000000 (default: none)\n"
    "  --reserved R   options::reserved_threads of the runtime: pool threads to_thread jobs\n"
    "                 never occupy, 0 to 1023 (default: no preference)\n"
    "  --read-stats   to_thread mode: call runtime::stats() on the loop every 1 ms\n"
    "  --compose C    to_thread mode: timeout (each future in uvrt::timeout of 10 s, which\n"
    "                 never fires), when_all (rounds of W jobs, each gathered by uvrt::when_all\n"
    "                 before the next) or rounds (the same rounds, each future awaited in order)\n"
    "  --json         print one JSON object instead of the table\n"
    "  --help         print this and exit\n"
    "\n"
    "Peak RSS is the whole process's peak so far: for a figure per mode, run one mode per process.\n";

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

// "all", or a comma-separated list of mode names; naming a mode twice runs it once.
std::array<bool, 4> mode_flag(std::string_view value) {
  if (value == "all") return {true, true, true, true};
  std::array<bool, 4> modes{};
  for (std::string_view rest = value;;) {
    const auto comma = rest.find(',');
    const std::string_view name = rest.substr(0, comma);
    const auto it = std::find(mode_names.begin(), mode_names.end(), name);
    if (it == mode_names.end())
      reject("--mode", value, "all, or a comma-separated list of direct, to_thread, c_api and bare");
    modes[static_cast<std::size_t>(it - mode_names.begin())] = true;
    if (comma == std::string_view::npos) return modes;
    rest.remove_prefix(comma + 1);
  }
}

compose_kind compose_flag(std::string_view value) {
  if (value == "timeout") return compose_kind::timeout;
  if (value == "when_all") return compose_kind::when_all;
  if (value == "rounds") return compose_kind::rounds;
  reject("--compose", value, "timeout, when_all or rounds");
}

// `value` is nullopt when the flag ends the command line without one.
void apply_flag(settings& s, std::string_view flag, std::optional<std::string_view> value) {
  const bool known = flag == "--jobs" || flag == "--work" || flag == "--threads" || flag == "--inflight" ||
                     flag == "--mode" || flag == "--fs-probe" || flag == "--reserved" || flag == "--compose";
  if (flag == "--json" || flag == "--read-stats") throw bad_flag(std::string(flag) + ": takes no value");
  if (!known) throw bad_flag("unknown argument \"" + std::string(flag) + "\"");
  if (!value) throw bad_flag(std::string(flag) + ": missing value");
  if (flag == "--jobs") s.jobs = count_flag(flag, *value, 1, max_jobs);
  else if (flag == "--work") s.work = work_flag(*value);
  else if (flag == "--threads") s.threads = static_cast<int>(count_flag(flag, *value, 1, max_threads));
  else if (flag == "--inflight") s.inflight = count_flag(flag, *value, 1, max_inflight);
  else if (flag == "--fs-probe") s.fs_probe = count_flag(flag, *value, 1, max_fs_probe);
  // The range the runtime accepts depends on the pool's size: it checks (threadpool_size_error).
  else if (flag == "--reserved") s.reserved = static_cast<int>(count_flag(flag, *value, 0, max_threads - 1));
  else if (flag == "--compose") s.compose = compose_flag(*value);
  else s.modes = mode_flag(*value);
}

// Accepts "--flag value" and "--flag=value". Returns nullopt for --help.
std::optional<settings> parse_args(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return std::nullopt;
    if (arg == "--json") {
      s.json = true;
    } else if (arg == "--read-stats") {
      s.read_stats = true;
    } else if (const auto eq = arg.find('='); eq != std::string_view::npos) {
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

// Runs jobs, checks their results, so a broken runtime cannot produce a good-looking row, and
// times each job's round trip. run() may be called on any thread; the rest only on the loop thread.
class job_ledger {
 public:
  job_ledger(work_spec work, std::uint64_t jobs) : work_(work) {
    try {
      round_trip_ns_.resize(jobs);
    } catch (const std::bad_alloc&) {
      throw std::runtime_error("not enough memory to time each job's round trip (8 bytes a job, " +
                               std::to_string(jobs * 8 / 1'000'000) + " MB): lower --jobs");
    }
  }

  std::uint64_t run(std::uint64_t i) const noexcept {
    perform(work_);
    ran_.fetch_add(1, std::memory_order_relaxed);
    return value_of(i);
  }

  // Job `i` was handed to the runtime (in direct mode: became ready) at `at_ns` (uv_hrtime).
  void submitted(std::uint64_t i, std::uint64_t at_ns) noexcept { round_trip_ns_[i] = at_ns; }

  // Records the result the caller received for job `i`, and the job's round trip.
  void accept(std::uint64_t i, std::uint64_t value) noexcept {
    last_result_at_ = uv_hrtime();
    round_trip_ns_[i] = last_result_at_ - round_trip_ns_[i];
    ++accepted_;
    if (value != value_of(i)) ++wrong_;
  }

  std::uint64_t accepted() const noexcept { return accepted_; }
  // When the last result so far was received (uv_hrtime); 0 before the first.
  std::uint64_t last_result_at() const noexcept { return last_result_at_; }

  // Throws unless each of `jobs` jobs ran once and delivered its own value.
  void verify(const char* mode, std::uint64_t jobs) const {
    const std::uint64_t ran = ran_.load(std::memory_order_relaxed);
    if (ran != jobs || accepted_ != jobs || wrong_ != 0)
      throw std::runtime_error(std::string(mode) + ": result check failed: " + std::to_string(jobs) +
                               " jobs, " + std::to_string(ran) + " ran, " + std::to_string(accepted_) +
                               " results received, " + std::to_string(wrong_) + " wrong");
  }

  // Once verify() passed: every job's round trip in ns, in no particular order.
  std::vector<std::uint64_t>& round_trips_ns() noexcept { return round_trip_ns_; }

 private:
  work_spec work_;
  mutable std::atomic<std::uint64_t> ran_{0};
  std::uint64_t accepted_ = 0;
  std::uint64_t wrong_ = 0;
  std::uint64_t last_result_at_ = 0;
  // Job i's submission time until its result arrives, then its round trip.
  std::vector<std::uint64_t> round_trip_ns_;
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
  std::vector<std::uint64_t>& lags_ns() noexcept { return lags_; }

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

struct distribution {
  std::size_t samples = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

// Nearest-rank percentiles of durations in ns, reported in ms. Reorders `ns` (nth_element rather
// than a sort: a million round trips would take a sort about 0.1 s).
distribution summarize(std::vector<std::uint64_t>& ns) {
  distribution d;
  d.samples = ns.size();
  if (ns.empty()) return d;
  auto at = [&](double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ns.size())));
    const auto nth = ns.begin() + static_cast<std::ptrdiff_t>(std::clamp<std::size_t>(rank, 1, ns.size()) - 1);
    std::nth_element(ns.begin(), nth, ns.end());
    return static_cast<double>(*nth) / 1e6;
  };
  d.p50_ms = at(0.50);
  d.p99_ms = at(0.99);
  d.max_ms = static_cast<double>(*std::max_element(ns.begin(), ns.end())) / 1e6;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Progress.

constexpr std::uint64_t progress_after_ms = 3000;
constexpr std::uint64_t progress_every_ms = 1000;

// A progress line on stderr ("to_thread: 43% (430000/1000000 jobs)"), once a second from 3 s into
// a mode, and only when stderr is a terminal, so that logs and pipes get none. It is erased when
// the mode ends, before its row is printed. The timer is unreferenced, as the lag probe's.
class progress_line {
 public:
  progress_line(uv_loop_t* loop, const char* mode, const job_ledger& ledger, std::uint64_t jobs)
      : mode_(mode), ledger_(ledger), jobs_(jobs) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  }
  progress_line(const progress_line&) = delete;
  progress_line& operator=(const progress_line&) = delete;

  void start() {
    if (isatty(STDERR_FILENO)) uv_timer_start(&timer_, &on_tick, progress_after_ms, progress_every_ms);
  }

  // Erases the line and closes the timer; the close completes when the loop next turns.
  void close() {
    if (width_ > 0) std::fprintf(stderr, "\r%*s\r", width_, "");
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { static_cast<progress_line*>(h->data)->closed_ = true; });
  }

  bool closed() const noexcept { return closed_; }

 private:
  static void on_tick(uv_timer_t* t) {
    auto* p = static_cast<progress_line*>(t->data);
    const std::uint64_t done = p->ledger_.accepted();
    const int width = std::fprintf(stderr, "\r%s: %llu%% (%llu/%llu jobs)", p->mode_,
                                   static_cast<unsigned long long>(done * 100 / p->jobs_),
                                   static_cast<unsigned long long>(done), static_cast<unsigned long long>(p->jobs_));
    p->width_ = std::max(p->width_, width - 1);  // the width on screen: without the '\r'
  }

  uv_timer_t timer_;
  const char* mode_;
  const job_ledger& ledger_;
  std::uint64_t jobs_;
  int width_ = 0;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// The two optional probes: libuv's own pool work behind the jobs, and reading runtime::stats().

// A real file to stat: the program itself, through the link procfs keeps to it.
constexpr const char* stat_path = "/proc/self/exe";

// --fs-probe N: N uv_fs_stat calls on the loop, one after another, each issued from the previous
// one's callback, as a server that keeps answering requests while its jobs run. libuv runs file
// system requests on the same pool as uv_queue_work and uvrt's jobs, first come first served, so
// a stat issued after the jobs waits behind whatever of them libuv already holds. Each call's
// latency runs from a uv_hrtime stamp just before uv_fs_stat to the start of its callback on the
// loop thread. The mode calls start() once its jobs are queued; a failed call, or one that cannot
// be issued, ends the probe, and check() reports it.
class stat_probe {
 public:
  stat_probe(uv_loop_t* loop, std::uint64_t calls) : loop_(loop), calls_(calls) {
    req_.data = this;
    latencies_.reserve(calls);
  }
  stat_probe(const stat_probe&) = delete;
  stat_probe& operator=(const stat_probe&) = delete;

  // Issues the first call; only the first start() counts, and none with --fs-probe absent.
  void start() {
    if (started_ || calls_ == 0) return;
    started_ = true;
    issue();
  }

  // No call is issued after this; the one in flight, if any, still answers as the loop turns.
  void stop() noexcept { stopped_ = true; }

  // A call is in flight: the loop must turn until it answers (it keeps the loop alive).
  bool in_flight() const noexcept { return in_flight_; }

  // Once the calls have ended: throws unless every one of them answered without an error.
  void check(const char* mode) const {
    if (!error_.empty()) throw std::runtime_error(std::string(mode) + ": --fs-probe: " + error_);
    if (latencies_.size() != calls_)
      throw std::logic_error(std::string(mode) + ": --fs-probe: " + std::to_string(latencies_.size()) + " of " +
                             std::to_string(calls_) + " uv_fs_stat calls answered");
  }

  std::vector<std::uint64_t>& latencies_ns() noexcept { return latencies_; }

 private:
  void issue() {
    issued_at_ = uv_hrtime();
    if (const int rc = uv_fs_stat(loop_, &req_, stat_path, &on_stat); rc != 0) {
      error_ = std::string("uv_fs_stat(\"") + stat_path + "\"): " + uv_strerror(rc);
      return;
    }
    in_flight_ = true;
  }

  static void on_stat(uv_fs_t* req) {
    const std::uint64_t now = uv_hrtime();
    auto* p = static_cast<stat_probe*>(req->data);
    const auto result = req->result;
    uv_fs_req_cleanup(req);
    p->in_flight_ = false;
    if (result < 0) {
      p->error_ = std::string("uv_fs_stat(\"") + stat_path + "\"): " + uv_strerror(static_cast<int>(result));
      return;
    }
    p->latencies_.push_back(now - p->issued_at_);
    if (!p->stopped_ && p->latencies_.size() < p->calls_) p->issue();
  }

  uv_loop_t* loop_;
  std::uint64_t calls_;
  uv_fs_t req_;  // one request, reused: a call is issued only once the previous one answered
  std::uint64_t issued_at_ = 0;
  std::vector<std::uint64_t> latencies_;
  std::string error_;
  bool started_ = false;
  bool stopped_ = false;
  bool in_flight_ = false;
};

// --read-stats: runtime::stats() on the loop thread every 1 ms while the to_thread mode runs, as
// a metrics exporter polling the runtime would (far more often than one would), so that the
// jobs' wall time with and without it shows what reading them costs. The timer is unreferenced,
// as the lag probe's.
class stats_reader {
 public:
  explicit stats_reader(uvrt::runtime& rt) : rt_(rt) {
    uv_timer_init(rt.loop(), &timer_);
    timer_.data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(&timer_));
  }
  stats_reader(const stats_reader&) = delete;
  stats_reader& operator=(const stats_reader&) = delete;

  void start() { uv_timer_start(&timer_, &on_tick, 1, 1); }

  // Stops and closes the timer; the close completes when the loop next turns.
  void close() {
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_),
             [](uv_handle_t* h) { static_cast<stats_reader*>(h->data)->closed_ = true; });
  }

  bool closed() const noexcept { return closed_; }
  std::uint64_t reads() const noexcept { return reads_; }

  // The counters only grow and never pass the jobs submitted: a reading that says otherwise is
  // not a reading of this run.
  void check(const char* mode, std::uint64_t jobs) const {
    if (last_submitted_ > jobs || last_settled_ > last_submitted_)
      throw std::runtime_error(std::string(mode) + ": --read-stats: runtime::stats() said " +
                               std::to_string(last_submitted_) + " submitted and " + std::to_string(last_settled_) +
                               " settled, of " + std::to_string(jobs) + " jobs");
  }

 private:
  static void on_tick(uv_timer_t* t) {
    auto* r = static_cast<stats_reader*>(t->data);
    const uvrt::runtime_stats st = r->rt_.stats();
    ++r->reads_;
    r->last_submitted_ = st.submitted;
    r->last_settled_ = st.settled;
  }

  uvrt::runtime& rt_;
  uv_timer_t timer_;
  std::uint64_t reads_ = 0;
  std::uint64_t last_submitted_ = 0;
  std::uint64_t last_settled_ = 0;
  bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// The window of jobs in flight, shared by the modes that use the pool.

// Submissions per loop turn while a window fills. A slice of 1024 took a median 0.05 ms through
// to_thread or bare libuv and 0.17 ms through the C API on 2 cores: well under the lag timer's
// 1 ms resolution.
constexpr std::uint64_t fill_slice = 1024;

// Keeps up to --inflight jobs in flight for to_thread, c_api and bare, whatever each submits with.
// `submit(job)` hands one job to the runtime (and throws if it cannot); the mode calls deliver()
// with each result on the loop thread, which records it and, once the window has filled, submits
// the next job in its place.
//
// Filling: open() submits the first slice, and a libuv idle handle submits one slice per loop turn
// after that, until the window is first full (or every job is submitted). Results that arrive
// meanwhile do not submit replacements: each turn's batch of results would then add as many
// submissions to the next slice, the batches would grow from turn to turn, and the turns with
// them (a million-job window turned in tens of milliseconds, not a fraction of one). The one
// exception is the last job in flight, replaced at once, so that a mode waiting for its results in
// order (to_thread) always has one coming. The idle handle is closed as soon as the fill ends,
// because while it is active the loop polls without blocking, spinning on a core.
//
// The first time the window is full (or every job is submitted), right after that submission, it
// calls `queued`: the jobs are queued, and the stat probe starts.
//
// A job that cannot be submitted, or that comes back without a result, ends the submissions: the
// jobs in flight finish, the loop runs out of work, and check() reports the first such failure.
class job_window {
 public:
  job_window(uv_loop_t* loop, const settings& s, job_ledger& ledger, std::function<void(std::uint64_t)> submit,
             std::function<void()> queued)
      : loop_(loop),
        jobs_(s.jobs),
        width_(s.inflight),
        ledger_(ledger),
        submit_(std::move(submit)),
        queued_(std::move(queued)) {}
  job_window(const job_window&) = delete;
  job_window& operator=(const job_window&) = delete;

  void open() {
    submit_slice();
    if (!has_room()) return;
    uv_idle_init(loop_, &filler_);
    filler_.data = this;
    uv_idle_start(&filler_, [](uv_idle_t* h) { static_cast<job_window*>(h->data)->submit_slice(); });
    filling_ = true;
    filler_open_ = true;
  }

  // Job `job` delivered `value` on the loop thread.
  void deliver(std::uint64_t job, std::uint64_t value) {
    --in_flight_;
    ledger_.accept(job, value);
    if (has_room() && (!filling_ || in_flight_ == 0)) submit_next();
  }

  // Job `job` came back without a result.
  void lost(std::uint64_t job, const std::string& why) {
    --in_flight_;
    give_up("job " + std::to_string(job) + " returned no result: " + why);
  }

  // Zero only once every job was delivered or the window gave up.
  std::uint64_t in_flight() const noexcept { return in_flight_; }

  // Once the loop ran out of work: throws the first failure, if any.
  void check(const char* mode) const {
    if (!error_.empty()) throw std::runtime_error(std::string(mode) + ": " + error_);
    if (filler_open_) throw std::logic_error(std::string(mode) + ": the loop stopped while the window was filling");
  }

 private:
  bool has_room() const noexcept { return error_.empty() && next_ < jobs_ && in_flight_ < width_; }

  void submit_slice() {
    for (std::uint64_t n = 0; n < fill_slice && has_room(); ++n) submit_next();
  }

  void submit_next() {
    const std::uint64_t job = next_++;
    ledger_.submitted(job, uv_hrtime());
    try {
      submit_(job);
      ++in_flight_;
    } catch (const std::exception& e) {
      give_up("cannot submit job " + std::to_string(job) + ": " + e.what());
    }
    if (has_room()) return;
    end_fill();
    if (error_.empty() && queued_) std::exchange(queued_, nullptr)();
  }

  void give_up(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    end_fill();
  }

  void end_fill() {
    if (!filling_) return;
    filling_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&filler_),
             [](uv_handle_t* h) { static_cast<job_window*>(h->data)->filler_open_ = false; });
  }

  uv_loop_t* loop_;
  std::uint64_t jobs_;
  std::uint64_t width_;
  job_ledger& ledger_;
  std::function<void(std::uint64_t)> submit_;
  std::function<void()> queued_;  // until the window is first full
  std::uint64_t next_ = 0;  // the next job to submit
  std::uint64_t in_flight_ = 0;
  std::string error_;
  uv_idle_t filler_;
  bool filling_ = false;      // the filler is active: not yet closing
  bool filler_open_ = false;  // the filler exists: its close callback has not run yet
};

// ---------------------------------------------------------------------------------------------
// The four modes. Each is built before the clock starts (to_thread's ring of futures, c_api's C
// runtime) and timed from run() on. All run on the runtime's loop. Each calls `queued` once, when
// its first jobs are queued: the pool modes when their window is first full, direct mode at the
// start of its first turn's calls.

// The anti-pattern: each loop turn, `inflight` requests are ready and each handler makes its
// blocking call on the loop thread, back to back, as a server with that many concurrent clients
// would. A libuv idle handle stands in for the ready requests: it runs once per loop turn. A
// request's round trip runs from the start of its turn, when it was ready, to its call's return.
class direct_mode {
 public:
  direct_mode(uvrt::runtime& rt, job_ledger& ledger, const settings& s, std::function<void()> queued)
      : rt_(rt), ledger_(ledger), s_(s), queued_(std::move(queued)) {}
  direct_mode(const direct_mode&) = delete;
  direct_mode& operator=(const direct_mode&) = delete;

  void run() {
    uv_idle_init(rt_.loop(), &idle_);
    idle_.data = this;
    uv_idle_start(&idle_, &on_idle);
    rt_.run();
    if (!closed_) throw std::logic_error("direct: runtime::run returned before the workload finished");
  }

 private:
  static void on_idle(uv_idle_t* h) {
    auto* d = static_cast<direct_mode*>(h->data);
    const std::uint64_t ready_at = uv_hrtime();
    if (d->queued_) std::exchange(d->queued_, nullptr)();
    const std::uint64_t end = std::min(d->next_ + d->s_.inflight, d->s_.jobs);
    for (; d->next_ < end; ++d->next_) {
      d->ledger_.submitted(d->next_, ready_at);
      d->ledger_.accept(d->next_, d->ledger_.run(d->next_));
    }
    if (d->next_ < d->s_.jobs) return;
    uv_idle_stop(h);
    uv_close(reinterpret_cast<uv_handle_t*>(h),
             [](uv_handle_t* c) { static_cast<direct_mode*>(c->data)->closed_ = true; });
  }

  uvrt::runtime& rt_;
  job_ledger& ledger_;
  const settings& s_;
  std::function<void()> queued_;  // until the first turn
  uv_idle_t idle_;
  std::uint64_t next_ = 0;
  bool closed_ = false;
};

// The fix: runtime::to_thread, its futures in a ring in submission order, awaited oldest first by
// a task under runtime::block_on. libuv's pool is FIFO, so the oldest is among the next to finish.
// Job j lives in ring[j % size]; the window submits job j + size only after job j was delivered.
// With --compose timeout each future goes into the ring wrapped in uvrt::timeout(.., 10 s).
class to_thread_mode {
 public:
  to_thread_mode(uvrt::runtime& rt, job_ledger& ledger, const settings& s, std::function<void()> queued)
      : rt_(rt),
        ledger_(ledger),
        timeout_(s.compose == compose_kind::timeout),
        ring_(std::min(s.inflight, s.jobs)),
        window_(
            rt.loop(), s, ledger,
            [this](std::uint64_t job) {
              auto f = rt_.to_thread(&job_ledger::run, &ledger_, job);
              ring_[job % ring_.size()] = timeout_ ? uvrt::timeout(std::move(f), compose_timeout) : std::move(f);
            },
            std::move(queued)) {}
  to_thread_mode(const to_thread_mode&) = delete;
  to_thread_mode& operator=(const to_thread_mode&) = delete;

  void run() {
    window_.open();
    rt_.block_on(await_in_order());
    window_.check("to_thread");
  }

 private:
  // `this` stays valid: block_on runs the task to completion.
  uvrt::task<> await_in_order() {
    for (std::uint64_t job = 0; window_.in_flight() > 0; ++job) {
      const std::uint64_t value = co_await ring_[job % ring_.size()];
      window_.deliver(job, value);
    }
  }

  uvrt::runtime& rt_;
  job_ledger& ledger_;
  bool timeout_;  // --compose timeout
  std::vector<uvrt::future<std::uint64_t>> ring_;
  job_window window_;
};

// --compose when_all and rounds, in to_thread mode: the jobs in rounds of --inflight, each round
// submitted at once through runtime::to_thread and awaited, by a task under runtime::block_on,
// before the next is submitted. when_all gathers a round's futures with uvrt::when_all and awaits
// that; rounds awaits each of them in order, its baseline. Both build a fresh vector a round, since
// when_all takes it by value. A round is submitted in one go, without job_window's slices, so a
// very wide round stalls the loop while it is submitted (the lag figure shows it).
//
// A job that cannot be submitted ends the submissions: the round's jobs submitted before it are
// awaited, and run() throws.
class rounds_mode {
 public:
  rounds_mode(uvrt::runtime& rt, job_ledger& ledger, const settings& s, std::function<void()> queued)
      : rt_(rt),
        ledger_(ledger),
        jobs_(s.jobs),
        width_(s.inflight),
        gather_(s.compose == compose_kind::when_all),
        queued_(std::move(queued)) {}
  rounds_mode(const rounds_mode&) = delete;
  rounds_mode& operator=(const rounds_mode&) = delete;

  void run() {
    rt_.block_on(rounds());
    if (!error_.empty()) throw std::runtime_error("to_thread: " + error_);
  }

 private:
  // `this` stays valid: block_on runs the task to completion.
  uvrt::task<> rounds() {
    for (std::uint64_t first = 0; first < jobs_ && error_.empty();) {
      const std::uint64_t end = std::min(first + width_, jobs_);
      std::vector<uvrt::future<std::uint64_t>> round;
      round.reserve(end - first);
      for (std::uint64_t job = first; job < end; ++job) {
        ledger_.submitted(job, uv_hrtime());
        try {
          round.push_back(rt_.to_thread(&job_ledger::run, &ledger_, job));
        } catch (const std::exception& e) {
          error_ = "cannot submit job " + std::to_string(job) + ": " + e.what();
          break;
        }
      }
      const std::uint64_t submitted = round.size();
      if (submitted == 0) break;  // the first job of the round could not be submitted
      if (error_.empty() && queued_) std::exchange(queued_, nullptr)();
      if (gather_) {
        const std::vector<std::uint64_t> values = co_await uvrt::when_all(std::move(round));
        for (std::uint64_t k = 0; k < submitted; ++k) ledger_.accept(first + k, values[k]);
      } else {
        for (std::uint64_t k = 0; k < submitted; ++k) ledger_.accept(first + k, co_await round[k]);
      }
      first += submitted;
    }
  }

  uvrt::runtime& rt_;
  job_ledger& ledger_;
  std::uint64_t jobs_;
  std::uint64_t width_;
  bool gather_;  // when_all; otherwise rounds
  std::function<void()> queued_;  // until the first round is submitted
  std::string error_;
};

// The same through the C API, on a C runtime embedded in the same loop, so that the lag probe,
// the pool and the harness are the ones the C++ modes get (a runtime on a loop of its own would
// need the probe moved to that loop, and nothing would differ but the bookkeeping). Jobs are fire
// and forget (no handle); each done callback submits the next job. The 64-bit value travels in
// the `void*` result; `arg` points at a context (the mode and the job's index), as a C application
// keeps its per-request state. Contexts are reused through a free list and made only when none is
// free, so that they grow with the jobs actually in flight (24 bytes each with their free-list
// entry), not with --inflight.
class c_api_mode {
  static_assert(sizeof(void*) >= sizeof(std::uint64_t), "the result is packed into a pointer");

 public:
  c_api_mode(uvrt::runtime& rt, job_ledger& ledger, const settings& s, std::function<void()> queued)
      : ledger_(ledger),
        window_(rt.loop(), s, ledger, [this](std::uint64_t job) { submit(job); }, std::move(queued)) {
    // Default options: the pool the C++ runtime started, whatever its size.
    if (const int rc = uvrt_runtime_create_on_loop(&rt_, rt.loop(), nullptr); rc != 0)
      throw std::runtime_error(std::string("c_api: uvrt_runtime_create_on_loop: ") + uvrt_strerror(rc));
  }
  ~c_api_mode() { uvrt_runtime_destroy(rt_); }
  c_api_mode(const c_api_mode&) = delete;
  c_api_mode& operator=(const c_api_mode&) = delete;

  void run() {
    window_.open();
    if (const int rc = uvrt_runtime_run(rt_); rc != 0)
      throw std::runtime_error(std::string("c_api: uvrt_runtime_run: ") + uvrt_strerror(rc));
    window_.check("c_api");
  }

 private:
  struct context {
    c_api_mode* mode;
    std::uint64_t job;
  };

  void submit(std::uint64_t job) {
    if (free_.empty()) free_.push_back(&contexts_.emplace_back());
    context* c = free_.back();
    *c = {this, job};
    if (const int rc = uvrt_job_submit(rt_, nullptr, &work, &done, c); rc != 0)
      throw std::runtime_error(std::string("uvrt_job_submit: ") + uvrt_strerror(rc));
    free_.pop_back();
  }

  static int work(uvrt_job_t*, void* arg, void** result) {
    const auto* c = static_cast<const context*>(arg);
    *result = reinterpret_cast<void*>(static_cast<std::uintptr_t>(c->mode->ledger_.run(c->job)));
    return 0;
  }

  static void done(uvrt_job_t*, int status, void* result, void* arg) {
    auto* c = static_cast<context*>(arg);
    c_api_mode* m = c->mode;
    const std::uint64_t job = c->job;
    m->free_.push_back(c);  // first, so that the replacement can take it
    if (status != 0) m->window_.lost(job, uvrt_strerror(status));
    else m->window_.deliver(job, reinterpret_cast<std::uintptr_t>(result));
  }

  job_ledger& ledger_;
  std::deque<context> contexts_;  // a deque: growing it leaves the contexts in flight where they are
  std::vector<context*> free_;
  uvrt_runtime_t* rt_ = nullptr;
  job_window window_;
};

// The floor: uv_queue_work on the same loop, one malloc'd request per job carrying its index and
// result (bench/peers/bare_uv.c's layout, with the mode in the request's own `data` field), and
// the next job submitted from the after-work callback.
class bare_mode {
 public:
  bare_mode(uvrt::runtime& rt, job_ledger& ledger, const settings& s, std::function<void()> queued)
      : loop_(rt.loop()),
        ledger_(ledger),
        window_(loop_, s, ledger, [this](std::uint64_t job) { submit(job); }, std::move(queued)) {}
  bare_mode(const bare_mode&) = delete;
  bare_mode& operator=(const bare_mode&) = delete;

  void run() {
    window_.open();
    uv_run(loop_, UV_RUN_DEFAULT);
    window_.check("bare");
  }

 private:
  struct request {
    uv_work_t req;  // first, so that the request's address is the uv_work_t's
    std::uint64_t job;
    std::uint64_t value;
  };
  static_assert(std::is_standard_layout_v<request>);

  void submit(std::uint64_t job) {
    auto* r = static_cast<request*>(std::malloc(sizeof(request)));
    if (!r) throw std::bad_alloc();
    r->req.data = this;
    r->job = job;
    if (const int rc = uv_queue_work(loop_, &r->req, &work, &after_work); rc != 0) {
      std::free(r);
      throw std::runtime_error(std::string("uv_queue_work: ") + uv_strerror(rc));
    }
  }

  static void work(uv_work_t* req) {
    auto* r = reinterpret_cast<request*>(req);
    r->value = static_cast<bare_mode*>(req->data)->ledger_.run(r->job);
  }

  static void after_work(uv_work_t* req, int status) {
    auto* r = reinterpret_cast<request*>(req);
    auto* m = static_cast<bare_mode*>(req->data);
    const std::uint64_t job = r->job;
    const std::uint64_t value = r->value;
    std::free(r);  // first, so that the replacement can reuse the memory
    if (status != 0) m->window_.lost(job, uv_strerror(status));
    else m->window_.deliver(job, value);
  }

  uv_loop_t* loop_;
  job_ledger& ledger_;
  job_window window_;
};

// ---------------------------------------------------------------------------------------------
// Measuring one mode.

struct mode_result {
  mode_id mode;
  std::uint64_t jobs;
  double wall_s;
  distribution round_trip;
  distribution lag;
  distribution fs_stat;  // --fs-probe's calls; no samples without it
  std::optional<std::uint64_t> stats_reads;  // --read-stats in to_thread mode: how often stats() was read
  long peak_rss_kb;
};

// The process's peak resident set so far, in KB (Linux reports ru_maxrss in KB).
long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Builds the mode, then runs it with the lag probe, the progress line and the stats reader (if
// any) covering all of it. They are closed after the mode, also when it failed, and the loop turns
// until their close callbacks ran: the timers must not outlive them. That last turning also lets
// the stat probe's remaining calls answer (to_thread's block_on returns with its last job, not
// with the loop's last request); after a failure the probe issues no more calls first.
//
// The wall time runs from just before the mode's first submission to its last result (the
// ledger's stamp), so stat calls that answer after the jobs do not lengthen it.
template <class Mode>
mode_result measure(uvrt::runtime& rt, mode_id id, const settings& s) {
  const char* name = name_of(id);
  job_ledger ledger(s.work, s.jobs);
  stat_probe stat(rt.loop(), s.fs_probe);
  Mode mode(rt, ledger, s, [&stat] { stat.start(); });
  lag_probe probe(rt.loop());
  progress_line progress(rt.loop(), name, ledger, s.jobs);
  std::optional<stats_reader> reader;
  if (id == mode_id::to_thread && s.read_stats) reader.emplace(rt);
  auto stop_watching = [&] {
    probe.close();
    progress.close();
    if (reader) reader->close();
    rt.run();
  };
  probe.start();
  progress.start();
  if (reader) reader->start();
  const std::uint64_t start = uv_hrtime();
  try {
    mode.run();
  } catch (...) {
    stat.stop();
    stop_watching();
    throw;
  }
  stop_watching();
  if (!probe.closed() || !progress.closed() || (reader && !reader->closed()))
    throw std::logic_error(std::string(name) + ": a timer's close callback never ran");
  if (stat.in_flight())
    throw std::logic_error(std::string(name) + ": the loop stopped while a uv_fs_stat was in flight");
  ledger.verify(name, s.jobs);
  stat.check(name);
  if (reader) reader->check(name, s.jobs);
  return {id,
          s.jobs,
          static_cast<double>(ledger.last_result_at() - start) / 1e9,
          summarize(ledger.round_trips_ns()),
          summarize(probe.lags_ns()),
          summarize(stat.latencies_ns()),
          reader ? std::optional<std::uint64_t>(reader->reads()) : std::nullopt,
          peak_rss_kb()};
}

mode_result measure(uvrt::runtime& rt, mode_id m, const settings& s) {
  switch (m) {
    case mode_id::direct: return measure<direct_mode>(rt, m, s);
    case mode_id::to_thread:
      if (s.compose == compose_kind::when_all || s.compose == compose_kind::rounds)
        return measure<rounds_mode>(rt, m, s);
      return measure<to_thread_mode>(rt, m, s);
    case mode_id::c_api: return measure<c_api_mode>(rt, m, s);
    case mode_id::bare: return measure<bare_mode>(rt, m, s);
  }
  throw std::logic_error("unknown mode");
}

// ---------------------------------------------------------------------------------------------
// Report.

struct machine {
  int pool_threads;
  unsigned cores;  // std::thread::hardware_concurrency; 0 if unknown
};

void print_header(const settings& s, const machine& m) {
  std::printf("uvrt-bench: blocking calls on the loop thread, through uvrt and through bare libuv\n");
  std::printf("libuv %s, pool %d threads, %u cores, work %s, jobs %llu, in flight %llu, lag timer every 1 ms\n",
              uv_version_string(), m.pool_threads, m.cores, describe(s.work).c_str(),
              static_cast<unsigned long long>(s.jobs), static_cast<unsigned long long>(s.inflight));
  if (s.reserved >= 0) std::printf("reserved threads %d (options::reserved_threads)\n", s.reserved);
  if (s.fs_probe > 0)
    std::printf("then %llu uv_fs_stat calls (%s), one after another, from the moment the jobs are queued\n",
                static_cast<unsigned long long>(s.fs_probe), stat_path);
  if (s.read_stats) std::printf("to_thread reads runtime::stats() every 1 ms\n");
  switch (s.compose) {
    case compose_kind::none: break;
    case compose_kind::timeout:
      std::printf("to_thread wraps each job's future in uvrt::timeout(.., %lld s)\n",
                  static_cast<long long>(compose_timeout.count()));
      break;
    case compose_kind::when_all:
      std::printf("to_thread runs rounds of %llu jobs, each gathered by uvrt::when_all\n",
                  static_cast<unsigned long long>(s.inflight));
      break;
    case compose_kind::rounds:
      std::printf("to_thread runs rounds of %llu jobs, each future awaited in order\n",
                  static_cast<unsigned long long>(s.inflight));
      break;
  }
  std::printf("\n%-10s %10s %9s %11s %11s %11s %11s %11s %11s %7s %12s", "mode", "jobs", "wall s", "jobs/s",
              "rtt p50 ms", "rtt p99 ms", "lag p50 ms", "lag p99 ms", "lag max ms", "ticks", "peak RSS KB");
  if (s.fs_probe > 0) std::printf(" %12s %12s %12s", "stat p50 ms", "stat p99 ms", "stat max ms");
  std::printf("\n");
}

void print_row(const settings& s, const mode_result& r) {
  std::printf("%-10s %10llu %9.3f %11.0f %11.3f %11.3f ", name_of(r.mode), static_cast<unsigned long long>(r.jobs), r.wall_s,
              static_cast<double>(r.jobs) / r.wall_s, r.round_trip.p50_ms, r.round_trip.p99_ms);
  // A run shorter than one tick has no lag to report; zeros would claim a perfect loop.
  if (r.lag.samples == 0) std::printf("%11s %11s %11s %7zu", "-", "-", "-", r.lag.samples);
  else std::printf("%11.3f %11.3f %11.3f %7zu", r.lag.p50_ms, r.lag.p99_ms, r.lag.max_ms, r.lag.samples);
  std::printf(" %12ld", r.peak_rss_kb);
  if (s.fs_probe > 0) std::printf(" %12.3f %12.3f %12.3f", r.fs_stat.p50_ms, r.fs_stat.p99_ms, r.fs_stat.max_ms);
  std::printf("\n");
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

void print_footer(const std::vector<mode_result>& results) {
  if (results.size() > 1)
    std::printf("\npeak RSS is the process's peak so far, so each row includes the rows above; run one mode per "
                "process to compare memory\n");
  const mode_result* direct = nullptr;
  const mode_result* threaded = nullptr;
  for (const mode_result& r : results) {
    if (r.mode == mode_id::direct) direct = &r;
    if (r.mode == mode_id::to_thread) threaded = &r;
  }
  if (threaded && threaded->stats_reads)
    std::printf("\nto_thread read runtime::stats() %llu times\n",
                static_cast<unsigned long long>(*threaded->stats_reads));
  if (direct && threaded) print_conclusion(*direct, *threaded);
}

// A lag percentile, or null when the timer never fired (a zero would claim a perfect loop).
void print_json_lag(const char* key, const distribution& lag, double value) {
  if (lag.samples == 0) std::printf(", \"%s\": null", key);
  else std::printf(", \"%s\": %.4f", key, value);
}

// One object, keys as README.md lists them. The strings printed are mode names, a work spec and
// libuv's version, none of which needs escaping.
void print_json(const settings& s, const machine& m, const std::vector<mode_result>& results) {
  std::printf("{\n  \"settings\": {\"jobs\": %llu, \"work\": \"%s\", \"threads\": ",
              static_cast<unsigned long long>(s.jobs), describe(s.work).c_str());
  if (s.threads == 0) std::printf("null");
  else std::printf("%d", s.threads);
  std::printf(", \"reserved\": ");
  if (s.reserved < 0) std::printf("null");
  else std::printf("%d", s.reserved);
  std::printf(", \"inflight\": %llu, \"fs_probe\": %llu, \"read_stats\": %s, \"compose\": ",
              static_cast<unsigned long long>(s.inflight), static_cast<unsigned long long>(s.fs_probe),
              s.read_stats ? "true" : "false");
  if (s.compose == compose_kind::none) std::printf("null");
  else std::printf("\"%s\"", name_of(s.compose));
  std::printf(", \"modes\": [");
  const char* separator = "";
  for (mode_id id : all_modes) {
    if (!s.runs(id)) continue;
    std::printf("%s\"%s\"", separator, name_of(id));
    separator = ", ";
  }
  std::printf("]},\n  \"machine\": {\"libuv\": \"%s\", \"pool_threads\": %d, \"cores\": ", uv_version_string(),
              m.pool_threads);
  if (m.cores == 0) std::printf("null");
  else std::printf("%u", m.cores);
  std::printf("},\n  \"modes\": {");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const mode_result& r = results[i];
    std::printf("%s\n    \"%s\": {\"jobs\": %llu, \"wall_s\": %.6f, \"jobs_per_s\": %.1f, \"latency_p50_ms\": %.4f, "
                "\"latency_p99_ms\": %.4f",
                i ? "," : "", name_of(r.mode), static_cast<unsigned long long>(r.jobs), r.wall_s,
                static_cast<double>(r.jobs) / r.wall_s, r.round_trip.p50_ms, r.round_trip.p99_ms);
    print_json_lag("lag_p50_ms", r.lag, r.lag.p50_ms);
    print_json_lag("lag_p99_ms", r.lag, r.lag.p99_ms);
    print_json_lag("lag_max_ms", r.lag, r.lag.max_ms);
    std::printf(", \"lag_samples\": %zu, \"peak_rss_kb\": %ld", r.lag.samples, r.peak_rss_kb);
    if (s.fs_probe > 0)
      std::printf(", \"fs_stat_calls\": %zu, \"fs_stat_p50_ms\": %.4f, \"fs_stat_p99_ms\": %.4f, "
                  "\"fs_stat_max_ms\": %.4f",
                  r.fs_stat.samples, r.fs_stat.p50_ms, r.fs_stat.p99_ms, r.fs_stat.max_ms);
    if (r.stats_reads) std::printf(", \"stats_reads\": %llu", static_cast<unsigned long long>(*r.stats_reads));
    std::printf("}");
  }
  std::printf("\n  }\n}\n");
}

int run(const settings& s) {
  uvrt::runtime rt(uvrt::options{.threadpool_size = s.threads, .reserved_threads = s.reserved});
  const machine m{uvrt::threadpool_size(), std::thread::hardware_concurrency()};
  if (!s.json) print_header(s, m);
  std::vector<mode_result> results;
  for (mode_id id : all_modes) {
    if (!s.runs(id)) continue;
    results.push_back(measure(rt, id, s));
    if (!s.json) print_row(s, results.back());
  }
  if (s.json) print_json(s, m, results);
  else print_footer(results);
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
