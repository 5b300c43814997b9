// uvrt stress test: many runtimes on many threads, a random mix of jobs, every settlement counted.
//
// Several OS threads each create runtimes one after another (a runtime belongs to the thread that
// runs its loop); all of them share libuv's one process-wide pool. A runtime lives for a random
// number of jobs and is either drained (run until nothing is pending) or destroyed with work still
// queued and running. Most runtimes are C++ (`uvrt::runtime`, on a loop of its own or embedded in
// an application loop); about one in four uses the C API (<uvrt.h>).
//
// Job kinds (C++): returns a value (checked exactly, derived from the job's id); throws (a
// std::exception subclass with an exact message, or a type not derived from std::exception);
// sleeps a few hundred microseconds; waits for its std::stop_token (polling or blocking) until the
// loop cancels it later; is cancelled right after submission (usually still queued); signals that
// it started through uvrt::from_thread and is cancelled from the loop while it runs; is abandoned
// (cancel_mode::abandon) while queued or while running; is detached (its future dropped).
// C kinds: returns a result pointer, fails through uvrt_job_fail, throws a C++ exception, polls
// uvrt_job_stop_requested until cancelled later, is cancelled right after submission, is
// cancelled while running (it signals the loop through a uv_async_t), has its handle released
// before it settles, or is submitted without a handle.
//
// Loop operations (C++ single rounds: one driver step in five, planned with a generator of their
// own): sleeps (sleep_for, sleep_until, member and free); timeouts around jobs (uvrt::timeout or
// job_options, limits of 0 to 2 ms, with and without a grace period, around jobs that return,
// throw, sleep past the limit ignoring their token, or wait for their stop token: some fire, some
// do not); spawned tasks (member and free spawn) awaiting a job, a sleep, a nested task awaiting
// a job, or another spawned task's future, one spawning a task it does not await, one returning
// at once; some catch cancelled_error and return a value of their own, some of those then sleep
// again; when_all of a tuple (input, sleep, input) and of vectors (empty too), and when_any of
// vectors, whose inputs are jobs, timeouts and spawned tasks, with stop-waiting inputs only where
// a sure failure (when_all), another input (when_any) or the loop's cancel ends them. The loop
// cancels a share of them (wait or abandon, once or twice) right after making them, after a few
// driver steps, or when a job inside signals through from_thread that it runs; their futures are
// consumed as jobs' are, or by a spawned task, and some spawned tasks' futures are dropped.
// Checked: each settles once, with an outcome its inputs and its cancel allow (values derived
// from the job ids, exceptions with their ids and messages, timeout_error, cancelled_error;
// runtime_closed_error only from a task's sleep after catching, during a teardown); cancel()
// returns not_started for a pending sleep, stop_requested or abandoned for the rest, and abandon
// and a sleep's cancel settle at once; a task cancelled with wait caught (or did not catch)
// cancelled_error as planned, and every spawned task's body ran once and to its end; a spawned
// task not awaited by a cancelled task settles with its own outcome; when_all and a task settle
// only once the jobs they await have returned or were dropped unrun; nothing settles before a
// sleep or a timeout's limit has passed; a combinator of settled inputs is settled when made.
//
// The mix has three more parts, each of which --without can leave out (as it can the loop
// operations):
// - Shared loops (6% of rounds): two or three runtimes, C++ and C, embedded in one application
//   loop, with jobs on each (values, exceptions, sleeps, cancelled at once; consumed by then() and
//   done callbacks). Some continuations and done callbacks call into another runtime on the loop.
//   The guard against re-entering a loop is the loop's, not the runtime's: a C runtime's
//   uvrt_runtime_run and uvrt_runtime_destroy must return UVRT_EBUSY, a C++ runtime's block_on (of
//   a pending future), run and shutdown must throw usage_error, and the runtime must stay usable
//   (a job submitted to it then settles too). Or they destroy a C++ runtime: its destructor there
//   begins the teardown and returns, and its futures settle as the loop turns on. Then the
//   application's uv_run, the other runtimes are destroyed, and uv_loop_close must return 0.
// - shutdown(timeout) (6% of rounds): one C++ runtime, own loop or embedded, with up to 24 jobs in
//   flight, some of which ignore their stop token, ended by shutdown() with a timeout of 0, 0.2, 2
//   or 20 ms; in 40% of them a continuation that shutdown runs destroys the runtime. The counts
//   must add up to the jobs in flight at the call and match what the jobs did (cancelled: never
//   ran; finished: ran and settled with its own outcome; abandoned: ran and settled cancelled);
//   every future has settled once when shutdown returns; abandoned jobs' late results are
//   destroyed later (the application's loop, or a thread of uvrt's, gets them back), and an
//   embedded loop then closes with 0.
// - fork (1% of the other rounds): the thread forks while its runtime has work in flight and other
//   threads' runtimes run. In the child, calls on the inherited runtime other than its destructor
//   must be refused (usage_error; C: UVRT_EFORKED), destroying it must return within a second
//   (it must not turn the loop it shares with the parent, whose jobs it does not have), and a new
//   runtime must run jobs and give their values; the child _exit()s with 0, or 1 with its reason
//   on stderr, and a watchdog (alarm, 20 s) ends it if it hangs. The parent fails on any other
//   end. Under ThreadSanitizer the child needs TSAN_OPTIONS=die_after_fork=0 (.ci/sanitize
//   sets it): TSan otherwise ends a child of a multi-threaded process that starts threads.
//   Under AddressSanitizer there are no fork rounds (see asan_build below).
//
// Futures are consumed by coroutines (uvrt::task co_awaiting the future, by reference, owned or
// through a nested task), by future::then, by the driving coroutine itself, by runtime::block_on
// after the driver, or with get() right after an abandon; C jobs by their done callbacks.
//
// Every job (and loop operation) has a record; every observed settlement increments its count. After each round (once
// the runtime is gone, so no job of it can still run) every record is checked: settled exactly
// once; the outcome is the one the job must have given what happened to it (README, "The
// contract"): a cancel that returned not_started means cancelled and never ran; stop_requested
// means the job ran and settled with its own outcome; abandoned means cancelled at once and the
// job ran; a job in flight at teardown either never ran and settled cancelled, or ran and settled
// with its own outcome. Results, callables and continuations count their instances per thread,
// so every one must have been destroyed exactly once; consumer coroutines must all have finished.
// Whether one job was still queued when it was cancelled cannot be known, but over thousands of
// jobs cancelled right after submission, or left in flight at teardown, some must have been: a
// run in which none was fails too. A failure prints the seed, the thread, the round and the job,
// and the program exits 1 (3 if the watchdog fired, 2 for a bad option).
//
// Nothing here sleeps to synchronise: jobs that must be running are observed through
// from_thread (C++) or a uv_async_t (C); the only sleeps are the workload of "sleep" and
// "stubborn" jobs, the loop operations' sleeps and timeouts (their workload, on uvrt's timers),
// the polling interval of jobs that poll their stop flag, and two bounded polls
// in shutdown rounds: for jobs to start before the call (which only shapes what is in flight) and
// for abandoned jobs' late results to be destroyed (which nothing signals). Jobs that wait for a
// stop give up after 30 s and report a failure, and a watchdog ends the program (exit 3) if
// nothing settles for --stall seconds, so a bug cannot hang it.
//
// Under ThreadSanitizer, run it with .ci/tsan.supp (libuv closes descriptors behind TSan's back,
// which it reports as a race when another thread's new loop reuses the number).
//
// Usage: stress [--seed S] [--threads N] [--rounds N] [--seconds N] [--jobs N] [--pool N]
//               [--stall N] [--without PARTS] [--keep-going] [--verbose]
// (PARTS: shared, shutdown, fork, ops)
//   --seed S     seed of the per-thread generators (default: random); printed on every run.
//                A run is replayed with the same --seed, --threads, --rounds and --jobs: each
//                thread then plans the same runtimes and jobs (except that a stop-waiting job
//                becomes a value job when pool size - 1 of them are already waiting, which
//                depends on timing), though they interleave differently.
//   --threads N  threads, each creating its runtimes in sequence (default 4).
//   --rounds N   runtimes per thread (default 600: about 4 s on 2 cores).
//   --seconds N  soak: each thread creates runtimes until N seconds have passed (--rounds, if
//                also given, still caps the count).
//   --jobs N     at most N jobs per runtime (default 400).
//   --pool N     size libuv's pool to N threads (default: UV_THREADPOOL_SIZE, else 4).
//   --stall N    watchdog: fail if no job settles for N seconds (default 120).
//   --without P  leave parts of the mix out: a comma-separated list of shared, shutdown, fork
//                (their rounds become single-runtime rounds; the rest of the plan is the same),
//                ops (the driver steps that would make a loop operation make nothing; the jobs'
//                plan is the same).
//   --keep-going after a violation, run every round anyway (by default the threads finish their
//                current runtime, jobs still waiting for a stop give up, and the run ends).
//   --verbose    one line per runtime.
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <uvrt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <uvrt/uvrt.hpp>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int max_threads = 64;
constexpr long default_rounds = 600;
// How long a job waits for a stop request before it reports that none came.
constexpr auto stop_wait_limit = std::chrono::seconds(30);

// AddressSanitizer as built here (gcc 12's libasan) takes no lock of its allocator around fork():
// a child forked while another thread of the parent holds one of the allocator's size-class locks
// deadlocks at its first allocation of that class (seen: the child's new pool threads, inside
// ASan's own thread start, until the watchdog's alarm; the stress test of main before the loop
// operations hung so too, seed 3003 under load). The fork rounds are left out under ASan, as
// --without fork does; release and TSan builds keep them.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool asan_build = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool asan_build = true;
#else
constexpr bool asan_build = false;
#endif
#else
constexpr bool asan_build = false;
#endif

// ---------------------------------------------------------------------------------------------
// Configuration and reporting

struct config {
  std::uint64_t seed = 0;
  int threads = 4;
  long rounds = -1;  // -1: default_rounds, or unlimited with --seconds
  double seconds = 0;
  int max_jobs = 400;
  int pool = 0;
  int stall = 120;
  bool verbose = false;
  bool keep_going = false;
  // --without: parts of the mix left out (their rounds become single-runtime rounds)
  bool no_shared = false;
  bool no_shutdown = false;
  bool no_fork = false;
  bool no_ops = false;
};

config cfg;
clock_type::time_point started_at;

std::mutex report_mutex;
std::atomic<std::uint64_t> violation_count{0};
// Set by the first violation: jobs waiting for a stop that may never come give up, and no thread
// starts another round (unless --keep-going), so that a failing run ends soon.
std::atomic<bool> failing{false};
constexpr std::uint64_t max_printed_violations = 50;

void violation(const std::string& where, const std::string& what) {
  const std::uint64_t n = ++violation_count;
  failing = true;
  if (n > max_printed_violations) return;
  std::lock_guard lock(report_mutex);
  std::fprintf(stderr, "VIOLATION (seed %llu): %s: %s\n", static_cast<unsigned long long>(cfg.seed), where.c_str(),
               what.c_str());
  if (n == max_printed_violations) std::fprintf(stderr, "(further violations are counted, not printed)\n");
}

// Every observed settlement and every finished round counts as progress, for the watchdog.
std::atomic<std::uint64_t> progress{0};
std::atomic<const char*> thread_phase[max_threads];
std::atomic<long> thread_round[max_threads];

// ---------------------------------------------------------------------------------------------
// A deterministic generator per thread (splitmix64): the plan of a round depends only on the seed.

struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
  bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }
};

// ---------------------------------------------------------------------------------------------
// Instance counting, per owning thread: results, and the witnesses copied into every callable and
// continuation. After a round (its runtime destroyed, its futures consumed) both must balance.

struct counter_pair {
  std::atomic<std::int64_t> made{0};
  std::atomic<std::int64_t> gone{0};
  std::int64_t live() const { return made.load() - gone.load(); }
};
counter_pair result_count[max_threads];
counter_pair witness_count[max_threads];

// A job's result. It owns heap memory, so a double destruction or a leak also shows under
// AddressSanitizer, LeakSanitizer or valgrind.
struct tracked {
  std::unique_ptr<std::uint64_t> payload;
  int owner;
  tracked(std::uint64_t v, int o) : payload(std::make_unique<std::uint64_t>(v)), owner(o) { ++result_count[owner].made; }
  tracked(tracked&& other) noexcept : payload(std::move(other.payload)), owner(other.owner) { ++result_count[owner].made; }
  tracked& operator=(tracked&&) = delete;
  ~tracked() { ++result_count[owner].gone; }
};

struct witness {
  int owner;
  explicit witness(int o) : owner(o) { ++witness_count[owner].made; }
  witness(const witness& w) : owner(w.owner) { ++witness_count[owner].made; }
  witness& operator=(const witness&) = delete;
  ~witness() { ++witness_count[owner].gone; }
};

// What jobs throw: a std::exception with the job's id, and a type that is not a std::exception.
struct stress_error : std::runtime_error {
  std::uint64_t id;
  stress_error(std::uint64_t i, const std::string& what) : std::runtime_error(what), id(i) {}
};
struct plain_failure {
  std::uint64_t id;
};

std::string id_text(std::uint64_t id) { return std::to_string(id >> 40) + "." + std::to_string(id & ((1ull << 40) - 1)); }
std::uint64_t value_of(std::uint64_t id, bool stopped) { return (id << 1) | (stopped ? 1 : 0); }
std::string failed_text(std::uint64_t id) { return "job " + id_text(id) + " failed on purpose"; }
std::string stopped_text(std::uint64_t id) { return "job " + id_text(id) + " stopped on request"; }
int fail_code(std::uint64_t id) { return -1000 - static_cast<int>(id % 1000); }
constexpr int c_stopped = -2001;  // what a C job returns once it noticed the stop request

// ---------------------------------------------------------------------------------------------
// Jobs that wait for a stop request could fill the pool and starve the jobs whose completion lets
// the loop cancel them, so at most pool size - 1 of them are uncancelled at any time, process-wide.

std::atomic<int> stop_budget{0};
bool take_stop_budget() {
  int n = stop_budget.load();
  while (n > 0)
    if (stop_budget.compare_exchange_weak(n, n - 1)) return true;
  return false;
}
void give_stop_budget() { ++stop_budget; }

// ---------------------------------------------------------------------------------------------
// Records

enum class kind : std::uint8_t {
  value,
  throws,
  sleeps,
  stop_poll,
  cancel_queued,
  cancel_running,
  abandon_queued,
  abandon_running,
  detached,
  stubborn,
  c_value,
  c_fail,
  c_throw,
  c_stop_poll,
  c_cancel_queued,
  c_cancel_running,
  c_release_early,
  c_fire_forget,
};

const char* name_of(kind k) {
  switch (k) {
    case kind::value: return "value";
    case kind::throws: return "throws";
    case kind::sleeps: return "sleeps";
    case kind::stop_poll: return "stop_poll";
    case kind::cancel_queued: return "cancel_queued";
    case kind::cancel_running: return "cancel_running";
    case kind::abandon_queued: return "abandon_queued";
    case kind::abandon_running: return "abandon_running";
    case kind::detached: return "detached";
    case kind::stubborn: return "stubborn";
    case kind::c_value: return "c_value";
    case kind::c_fail: return "c_fail";
    case kind::c_throw: return "c_throw";
    case kind::c_stop_poll: return "c_stop_poll";
    case kind::c_cancel_queued: return "c_cancel_queued";
    case kind::c_cancel_running: return "c_cancel_running";
    case kind::c_release_early: return "c_release_early";
    case kind::c_fire_forget: return "c_fire_forget";
  }
  return "?";
}

bool is_c(kind k) { return k >= kind::c_value; }
// Kinds that the loop cancels after submission, once they wait or run.
bool cancelled_later(kind k) { return k == kind::stop_poll || k == kind::cancel_running || k == kind::abandon_running; }

enum class via : std::uint8_t { task_ref, task_owned, task_nested, then, driver, later, now, c_done, none, inner };

const char* name_of(via v) {
  switch (v) {
    case via::task_ref: return "task(co_await by reference)";
    case via::task_owned: return "task(co_await owned future)";
    case via::task_nested: return "task(nested task)";
    case via::then: return "then";
    case via::driver: return "driver co_await";
    case via::later: return "block_on/get after the driver";
    case via::now: return "get() right after abandon";
    case via::c_done: return "done callback";
    case via::none: return "none (future dropped)";
    case via::inner: return "the loop operation it is an input of";
  }
  return "?";
}

// What a continuation or done callback in a shared-loop round does to another runtime on the loop.
enum class cross_call : std::uint8_t { none, block_on, run, shutdown, destroy };

const char* name_of(cross_call x) {
  switch (x) {
    case cross_call::none: return "nothing";
    case cross_call::block_on: return "block_on";
    case cross_call::run: return "run";
    case cross_call::shutdown: return "shutdown";
    case cross_call::destroy: return "destroy";
  }
  return "?";
}

enum class got : std::uint8_t { nothing, value, stress_exc, plain_exc, cancelled, timed_out, closed, other_exc };

const char* name_of(got g) {
  switch (g) {
    case got::nothing: return "nothing";
    case got::value: return "a value";
    case got::stress_exc: return "stress_error";
    case got::plain_exc: return "plain_failure";
    case got::cancelled: return "cancelled_error";
    case got::timed_out: return "timeout_error";
    case got::closed: return "runtime_closed_error";
    case got::other_exc: return "another exception";
  }
  return "?";
}

struct round_ctx;

struct record {
  // The plan, fixed before submission.
  std::uint64_t id = 0;
  kind k = kind::value;
  via how = via::none;
  bool takes_token = false;
  bool throws_on_stop = false;
  bool plain_throw = false;
  bool blocking_wait = false;
  bool cancel_before_consumer = false;
  bool release_in_done = false;
  bool cancel_twice = false;
  int sleep_us = 0;
  int cancel_after = 0;  // stop_poll: driver steps before the loop cancels it
  uvrt::cancel_mode later_mode = uvrt::cancel_mode::wait;
  round_ctx* ctx = nullptr;
  int member = 0;  // shared-loop rounds: which of the round's runtimes it was submitted to
  cross_call cross = cross_call::none;
  int cross_target = -1;
  bool destroys_runtime = false;  // shutdown rounds: its continuation destroys the runtime
  struct op_rec* op = nullptr;    // an input of this loop operation (how == via::inner)

  // Written by the job (worker thread).
  std::atomic<int> ran{0};
  std::atomic<bool> finished{false};
  std::atomic<bool> ran_after_cancel{false};
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> timed_out{false};
  std::atomic<bool> gave_up{false};  // stopped waiting because the run is already failing
  std::atomic<bool> stop_after_signal{false};
  std::string worker_note;  // read only after the round, once the job is over

  // Loop thread.
  std::atomic<bool> cancel_succeeded{false};
  bool holds_budget = false;
  bool cancel_called = false;
  uvrt::cancel_mode cmode = uvrt::cancel_mode::wait;
  uvrt::cancel_result cres = uvrt::cancel_result::already_settled;
  bool cancelled_twice = false;
  uvrt::cancel_result cres2 = uvrt::cancel_result::already_settled;
  bool ready_after_cancel = false;
  bool settled_inside_cancel = false;
  bool submitted = false;
  bool started_seen = false;  // an input of a loop operation: the loop served its from_thread call
  int ran_at_op_settle = -1;  //   whether it had run, and returned, when its operation was read
  bool finished_at_op_settle = false;
  bool torn = false;  // its runtime was destroyed (or shut down) while it may have been in flight
  int settled = 0;
  got outcome = got::nothing;
  std::uint64_t value = 0;
  int value_owner = -1;
  std::uint64_t err_id = 0;
  std::string msg;
  uvrt::future<tracked> fut;

  // C API.
  uvrt_job_t* handle = nullptr;
  bool handle_held = false;
  int status = 1;
  void* result = nullptr;
  bool has_msg = false;
  int cancel_rc = 1;
  int cancel_rc2 = 1;
  int cancel_in_done_rc = 1;
  bool same_handle_in_done = true;
};

// ---------------------------------------------------------------------------------------------
// Loop operations (issue 13): spawned tasks, sleeps, timeouts, when_all and when_any

// What a loop operation is. `job` is only an input of another operation; the others are made at
// the top of the mix, and (except the combinators) as inputs of combinators too.
enum class op_kind : std::uint8_t {
  job,          // to_thread
  sleep,        // sleep_for / sleep_until: future<void>
  timed,        // uvrt::timeout(job, limit, grace), or to_thread(job_options{.timeout, .grace}, ...)
  task_job,     // spawn: a task awaiting a job
  task_sleep,   // spawn: a task awaiting a sleep
  task_nested,  // spawn: a task awaiting a nested uvrt::task awaiting a job
  task_chain,   // spawn: a task that spawns a task_job and awaits its future
  task_orphan,  // spawn: a task that spawns a task_job it does not await, then awaits a sleep
  task_ready,   // spawn: a task that returns at once (its future has settled when spawn returns)
  all_vec,      // when_all(vector<future<tracked>>)
  all_tuple,    // when_all(input, sleep, input): tuple<tracked, monostate, tracked>
  any_vec,      // when_any(vector<future<tracked>>)
};

const char* name_of(op_kind k) {
  switch (k) {
    case op_kind::job: return "job";
    case op_kind::sleep: return "sleep";
    case op_kind::timed: return "timeout(job)";
    case op_kind::task_job: return "spawned task awaiting a job";
    case op_kind::task_sleep: return "spawned task awaiting a sleep";
    case op_kind::task_nested: return "spawned task awaiting a nested task";
    case op_kind::task_chain: return "spawned task awaiting a spawned task";
    case op_kind::task_orphan: return "spawned task spawning one it does not await";
    case op_kind::task_ready: return "spawned task returning at once";
    case op_kind::all_vec: return "when_all(vector)";
    case op_kind::all_tuple: return "when_all(a, sleep, b)";
    case op_kind::any_vec: return "when_any(vector)";
  }
  return "?";
}

bool is_spawned(op_kind k) {
  return k == op_kind::task_job || k == op_kind::task_sleep || k == op_kind::task_nested || k == op_kind::task_chain ||
         k == op_kind::task_orphan || k == op_kind::task_ready;
}
// Spawned tasks whose own value is slept_value(id): after a sleep (task_ready: at once).
bool gives_slept_value(op_kind k) { return k == op_kind::task_sleep || k == op_kind::task_orphan || k == op_kind::task_ready; }
bool is_combinator(op_kind k) { return k == op_kind::all_vec || k == op_kind::all_tuple || k == op_kind::any_vec; }
// Jobs that run until they are asked to stop.
bool waits_for_stop(kind k) { return k == kind::stop_poll || k == kind::cancel_running; }

// Who consumes an operation's future: `input` for an input of another operation; `spawned` is a
// uvrt::spawn'ed task awaiting it by reference; `dropped` (spawned tasks only) drops the future.
enum class op_via : std::uint8_t { input, task_ref, task_owned, spawned, then, driver, later, now, dropped };

const char* name_of(op_via v) {
  switch (v) {
    case op_via::input: return "input";
    case op_via::task_ref: return "task(co_await by reference)";
    case op_via::task_owned: return "task(co_await owned future)";
    case op_via::spawned: return "spawned task(co_await by reference)";
    case op_via::then: return "then";
    case op_via::driver: return "driver co_await";
    case op_via::later: return "block_on/get after the driver";
    case op_via::now: return "get() right after cancel";
    case op_via::dropped: return "none (future dropped)";
  }
  return "?";
}

// When the loop cancels an operation: right after making it, after a few driver steps, or when a
// job inside it has signalled (from_thread) that it runs.
enum class op_when : std::uint8_t { never, at_once, later, on_start };

struct op_rec;

// An operation's future, whatever its type, and what the round does with it.
struct op_handle {
  virtual ~op_handle() = default;
  virtual bool valid() const noexcept = 0;
  virtual bool ready() const = 0;
  virtual uvrt::cancel_result cancel(uvrt::cancel_mode mode) = 0;
  // Hands the future to its consumer: a task, a spawned task or then().
  virtual void consume(op_rec* o) = 0;
  // The driver's own co_await, by reference.
  virtual uvrt::task<void> await_here(op_rec* o) = 0;
  virtual void block_on(uvrt::runtime& rt, op_rec* o) = 0;
  virtual void get(op_rec* o) = 0;
};

struct op_rec {
  // The plan.
  std::uint64_t id = 0;
  op_kind k = op_kind::job;
  op_via how = op_via::input;
  round_ctx* ctx = nullptr;
  op_rec* parent = nullptr;   // the operation it is an input of
  std::vector<op_rec*> kids;  // its inputs: combinators, and task_chain's spawned task
  record* job = nullptr;      // job, timed, task_job, task_nested
  op_rec* orphan = nullptr;      // task_orphan: the task it spawns (a top-level operation of its own)
  op_rec* spawned_by = nullptr;  //   and, in that task, the task_orphan that spawned it
  std::chrono::microseconds delay{0};  // sleep, task_sleep, task_orphan
  bool until = false;                  // sleep_until rather than sleep_for
  bool free_call = false;              // uvrt::spawn / uvrt::sleep_* rather than the runtime's
  std::chrono::microseconds limit{0};  // timed
  std::chrono::microseconds grace{0};
  bool by_options = false;  // timed through job_options
  bool catches = false;     // spawned tasks: catch cancelled_error and return caught_value(id)
  bool again = false;       //   after one more sleep (the cancellation was one-shot)
  op_when when = op_when::never;
  uvrt::cancel_mode mode = uvrt::cancel_mode::wait;
  int cancel_after = 0;
  bool cancel_before_consumer = false;
  bool cancel_twice = false;
  int budget = 0;  // stop budget held for the stop-waiting jobs inside that only the loop ends

  // The loop thread.
  bool started = false;
  bool ready_when_made = false;
  std::unique_ptr<op_handle> fut;
  clock_type::time_point created{};
  int body_runs = 0;  // spawned tasks: the body began, and ran to its end
  bool body_done = false;
  bool caught = false;
  bool cancel_called = false;
  uvrt::cancel_result cres = uvrt::cancel_result::already_settled;
  bool cancelled_twice = false;
  uvrt::cancel_result cres2 = uvrt::cancel_result::already_settled;
  bool ready_after_cancel = false;
  bool settled_inside_cancel = false;
  int settled = 0;
  got outcome = got::nothing;
  std::vector<std::uint64_t> values;  // the tracked values of the outcome, in order
  std::size_t index = 0;              // when_any
  bool foreign_value = false;         // a value owned by another thread
  std::uint64_t err_id = 0;
  std::string msg;
  clock_type::time_point observed_at{};
};

// ---------------------------------------------------------------------------------------------
// Figures

#define STRESS_FIGURES(X)                                                                            \
  X(submitted) X(submitted_c) X(ran) X(values) X(exceptions) X(cancelled) X(cancelled_queued)               \
  X(stop_requested) X(abandoned_running) X(abandoned_queued) X(teardown_cancelled) X(teardown_stopped)      \
  X(detached) X(detached_ran) X(by_task) X(by_then) X(by_driver) X(by_later) X(by_now) X(by_done)           \
  X(runtimes) X(cpp_own) X(cpp_embedded) X(c_own) X(c_embedded) X(drained) X(torn_down)                    \
  X(torn_down_in_flight) X(unsettled_at_teardown) X(running_at_teardown) X(lost) X(at_once_tried)         \
  X(at_once_queued) X(at_once_tried_c) X(at_once_queued_c) X(unsettled_at_teardown_c) X(teardown_cancelled_c)       \
  X(shared_loops) X(shared_runtimes) X(cross_refused) X(cross_destroyed) X(shutdowns) X(shutdown_destroyed_inside)  \
  X(shutdown_in_flight) X(shutdown_cancelled) X(shutdown_finished) X(shutdown_abandoned) X(forks)                \
  X(ops) X(op_jobs) X(op_sleeps) X(op_timeouts) X(op_timeouts_fired) X(op_tasks) X(op_tasks_caught)               \
  X(op_when_all) X(op_when_any) X(op_values) X(op_failures) X(op_cancelled) X(op_cancel_calls)                    \
  X(op_cancel_effective) X(op_task_cancels) X(op_dropped) X(op_pending_at_teardown) X(op_consumers) X(op_closed)

struct stats {
#define STRESS_FIELD(name) std::uint64_t name = 0;
  STRESS_FIGURES(STRESS_FIELD)
#undef STRESS_FIELD

  void add(const stats& o) {
#define STRESS_ADD(name) name += o.name;
    STRESS_FIGURES(STRESS_ADD)
#undef STRESS_ADD
  }
};

std::mutex totals_mutex;
stats totals;

// ---------------------------------------------------------------------------------------------
// One round: one runtime and its jobs.

// One of the runtimes of a shared-loop round, all embedded in the round's application loop.
struct member {
  bool c_api = false;
  std::optional<uvrt::runtime> rt;  // C++; empty once destroyed
  uvrt_runtime_t* crt = nullptr;    // C; null once destroyed
  bool alive() const { return c_api ? crt != nullptr : rt.has_value(); }
};

// single: one runtime, drained or torn down; shared: two or three runtimes on one application
// loop calling into each other from their callbacks; shutdown: one C++ runtime ended by
// shutdown(timeout), perhaps destroyed by a continuation that shutdown runs.
enum class shape : std::uint8_t { single, shared, shutdown };

struct round_ctx {
  int thread = 0;
  long round = 0;
  rng* gen = nullptr;
  stats* st = nullptr;
  bool c_api = false;
  bool embedded = false;
  bool teardown = false;
  shape mode = shape::single;
  bool fork = false;
  bool destroy_in_shutdown = false;
  std::chrono::microseconds shutdown_timeout{0};
  int n_jobs = 0;
  int teardown_at = 0;
  std::uint64_t* next_seq = nullptr;

  std::deque<record> recs;
  std::vector<record*> cancel_later;
  int spawned_live = 0;
  // Loop operations (C++ single rounds): planned with a generator of their own, so that --without
  // ops leaves the jobs' plan as it is.
  rng* op_gen = nullptr;
  std::deque<op_rec> ops;
  std::vector<op_rec*> op_cancel_later;
  std::vector<uvrt::future<void>> consumers;  // of the spawned tasks that consume operations
  uvrt::runtime* rt = nullptr;
  std::deque<member> members;            // shared rounds
  std::unique_ptr<uvrt::runtime> owned;  // shutdown rounds: what the destroying continuation resets

  uv_loop_t app_loop{};
  uvrt_runtime_t* crt = nullptr;
  uv_async_t started_async{};
  std::mutex started_mutex;
  std::vector<record*> started_list;

  std::string where() const {
    std::string s = "thread " + std::to_string(thread) + " round " + std::to_string(round) + " [";
    switch (mode) {
      case shape::shared:
        s += "runtimes";
        for (const member& m : members) s += m.c_api ? " C" : " C++";
        s += " on one application loop, " + std::to_string(n_jobs) + " jobs]";
        break;
      case shape::shutdown:
        s += std::string("C++, ") + (embedded ? "embedded loop" : "own loop") + ", " + std::to_string(n_jobs) +
             " jobs, shutdown(" + std::to_string(shutdown_timeout.count()) + " us)" +
             (destroy_in_shutdown ? " during which a continuation destroys the runtime]" : "]");
        break;
      case shape::single:
        s += std::string(c_api ? "C API" : "C++") + (embedded ? ", embedded loop" : ", own loop") + ", " +
             std::to_string(n_jobs) + " jobs, ";
        s += teardown ? "torn down after " + std::to_string(teardown_at) + " submitted" : "drained";
        s += fork ? ", forks a child]" : "]";
        break;
    }
    return s;
  }
  std::string where(const record& r) const {
    std::string s = where() + " job " + id_text(r.id) + " (" + name_of(r.k) + ", via " + name_of(r.how);
    if (r.op) s += " " + id_text(r.op->id) + ", " + name_of(r.op->k);
    return s + ")";
  }
  std::string where(const op_rec& o) const {
    std::string s = where() + " operation " + id_text(o.id) + " (" + name_of(o.k);
    if (o.parent) s += ", an input of " + id_text(o.parent->id) + " " + name_of(o.parent->k);
    else s += std::string(", via ") + name_of(o.how);
    if (o.spawned_by) s += ", spawned by " + id_text(o.spawned_by->id) + " which does not await it";
    if (o.when != op_when::never)
      s += std::string(", cancel(") + (o.mode == uvrt::cancel_mode::abandon ? "abandon" : "wait") + ") " +
           (o.when == op_when::at_once ? "at once" : o.when == op_when::later ? "later" : "when its job runs");
    if (o.k == op_kind::timed)
      s += ", limit " + std::to_string(o.limit.count()) + " us, grace " + std::to_string(o.grace.count()) + " us" +
           (o.by_options ? " through job_options" : "");
    if (o.k == op_kind::sleep || o.k == op_kind::task_sleep || o.k == op_kind::task_orphan)
      s += ", " + std::to_string(o.delay.count()) + " us";
    if (is_spawned(o.k) && o.catches) s += o.again ? ", catches and sleeps again" : ", catches";
    if (o.job) s += std::string(", job ") + id_text(o.job->id) + " " + name_of(o.job->k);
    return s + ")";
  }
};

// ---------------------------------------------------------------------------------------------
// The work (on pool threads)

void begin(record* r) {
  if (r->cancel_succeeded.load()) {
    r->ran_after_cancel = true;
    violation(r->ctx->where(*r), "its callable started after cancel had reported that it never would");
  }
  r->ran.fetch_add(1);
}

// Waits, bounded, until a stop is requested, either blocking on the token or polling it (the
// polling interval is the job's workload, not synchronisation).
template <class StopRequested>
void wait_for_stop_bounded(record* r, StopRequested&& stop_requested, const std::stop_token* token) {
  const auto deadline = clock_type::now() + stop_wait_limit;
  if (token && r->blocking_wait) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    // Woken by the stop request; the timeout only lets it notice a failing run or the deadline.
    while (!stop_requested() && !failing.load() && clock_type::now() < deadline)
      cv.wait_for(lock, *token, std::chrono::milliseconds(100), [] { return false; });
  } else {
    while (!stop_requested() && !failing.load() && clock_type::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  r->saw_stop = stop_requested();
  if (!r->saw_stop) {
    if (clock_type::now() >= deadline) {
      r->timed_out = true;
      violation(r->ctx->where(*r), "it waited 30 s for a stop request that never came");
    } else {
      r->gave_up = true;
    }
  }
}

void on_started(round_ctx* c, record* r);

tracked cpp_work(round_ctx* c, record* r, const std::stop_token* token) {
  begin(r);
  struct finish {
    record* r;
    ~finish() { r->finished = true; }
  } guard{r};
  const int owner = c->thread;
  auto stopped_outcome = [&]() -> tracked {
    if (r->throws_on_stop) throw stress_error(r->id, stopped_text(r->id));
    return tracked(value_of(r->id, true), owner);
  };
  switch (r->k) {
    case kind::throws:
      if (r->plain_throw) throw plain_failure{r->id};
      throw stress_error(r->id, failed_text(r->id));
    case kind::sleeps:
    case kind::stubborn:  // ignores its stop token: what shutdown(timeout) abandons
      std::this_thread::sleep_for(std::chrono::microseconds(r->sleep_us));
      break;
    case kind::stop_poll:
      wait_for_stop_bounded(r, [token] { return token->stop_requested(); }, token);
      return stopped_outcome();
    case kind::cancel_running:
    case kind::abandon_running:
      try {
        uvrt::from_thread([c, r] { on_started(c, r); });
      } catch (const std::exception& e) {
        r->worker_note = std::string("from_thread threw: ") + e.what();
      } catch (...) {
        r->worker_note = "from_thread threw a non-std exception";
      }
      r->stop_after_signal = token->stop_requested();
      wait_for_stop_bounded(r, [token] { return token->stop_requested(); }, token);
      return stopped_outcome();
    default:
      break;
  }
  return tracked(value_of(r->id, false), owner);
}

// ---------------------------------------------------------------------------------------------
// Consumers (on the loop thread)

template <class Get>
void observe(record* r, Get&& get) {
  ++r->settled;
  ++progress;
  try {
    tracked v = get();
    r->outcome = got::value;
    r->value = v.payload ? *v.payload : ~0ull;
    r->value_owner = v.owner;
  } catch (const uvrt::cancelled_error&) {
    r->outcome = got::cancelled;
  } catch (const stress_error& e) {
    r->outcome = got::stress_exc;
    r->err_id = e.id;
    r->msg = e.what();
  } catch (const plain_failure& p) {
    r->outcome = got::plain_exc;
    r->err_id = p.id;
  } catch (const std::exception& e) {
    r->outcome = got::other_exc;
    r->msg = std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    r->outcome = got::other_exc;
    r->msg = "a non-std exception";
  }
}

// A fire-and-forget coroutine that starts at once and frees itself when done: how the round runs
// many consumer uvrt::tasks at the same time without uvrt::spawn (the loop operations also
// consume through spawned tasks). `live` counts those not yet finished.
struct spawned {
  struct promise_type {
    spawned get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { violation("a consumer coroutine", "an exception escaped it"); }
  };
};

spawned spawn(uvrt::task<void> t, int* live) {
  ++*live;
  co_await std::move(t);
  --*live;
}

// Awaits the record's future where it lives, so that the loop can still cancel it meanwhile.
uvrt::task<void> consume_ref(record* r) {
  std::exception_ptr e;
  std::optional<tracked> v;
  try {
    v.emplace(co_await r->fut);
  } catch (...) {
    e = std::current_exception();
  }
  observe(r, [&]() -> tracked {
    if (e) std::rethrow_exception(e);
    return std::move(*v);
  });
}

uvrt::task<void> consume_owned(record* r, uvrt::future<tracked> f) {
  std::exception_ptr e;
  std::optional<tracked> v;
  try {
    v.emplace(co_await std::move(f));
  } catch (...) {
    e = std::current_exception();
  }
  observe(r, [&]() -> tracked {
    if (e) std::rethrow_exception(e);
    return std::move(*v);
  });
}

uvrt::task<tracked> await_value(record* r) { co_return co_await r->fut; }

uvrt::task<void> consume_nested(record* r) {
  std::exception_ptr e;
  std::optional<tracked> v;
  try {
    v.emplace(co_await await_value(r));
  } catch (...) {
    e = std::current_exception();
  }
  observe(r, [&]() -> tracked {
    if (e) std::rethrow_exception(e);
    return std::move(*v);
  });
}

void call_across(record& r);

void attach_then(round_ctx* c, record* r) {
  std::move(r->fut).then([r, w = witness(c->thread)](uvrt::future<tracked> f) {
    observe(r, [&] { return f.get(); });
    if (r->cross != cross_call::none) call_across(*r);
    // Destroying the runtime from its own continuation, while shutdown() turns its loop.
    if (r->destroys_runtime) r->ctx->owned.reset();
  });
}

void attach_task(round_ctx* c, record* r) {
  switch (r->how) {
    case via::task_owned: spawn(consume_owned(r, std::move(r->fut)), &c->spawned_live); break;
    case via::task_nested: spawn(consume_nested(r), &c->spawned_live); break;
    default: spawn(consume_ref(r), &c->spawned_live); break;
  }
}

bool is_task(via v) { return v == via::task_ref || v == via::task_owned || v == via::task_nested; }

void do_cancel(round_ctx* c, record* r, uvrt::cancel_mode mode) {
  if (!r->fut.valid()) {
    // A job that gave up waiting (the run is failing already) may have settled before its cancel.
    if (!r->gave_up.load()) violation(c->where(*r), "the test's own bookkeeping: cancel on an empty future");
    return;
  }
  const int before = r->settled;
  try {
    r->cres = r->fut.cancel(mode);
  } catch (const std::exception& e) {
    violation(c->where(*r), std::string("cancel() threw: ") + e.what());
  }
  r->cancel_called = true;
  r->cmode = mode;
  if (r->cancel_twice && r->fut.valid()) {
    try {
      r->cres2 = r->fut.cancel(mode);
      r->cancelled_twice = true;
    } catch (const std::exception& e) {
      violation(c->where(*r), std::string("a second cancel() threw: ") + e.what());
    }
  }
  r->settled_inside_cancel = r->settled != before;
  r->ready_after_cancel = r->fut.valid() && r->fut.ready();
  if (r->cres == uvrt::cancel_result::not_started) r->cancel_succeeded = true;
  if (r->holds_budget) {
    r->holds_budget = false;
    give_stop_budget();
  }
}

void op_started(round_ctx* c, record* r);

// Runs on the loop thread, called through from_thread by a job that has started.
void on_started(round_ctx* c, record* r) {
  if (r->op) {  // an input of a loop operation: the operation is cancelled
    op_started(c, r);
    return;
  }
  do_cancel(c, r, r->k == kind::abandon_running ? uvrt::cancel_mode::abandon : uvrt::cancel_mode::wait);
  if (r->how == via::then) attach_then(c, r);
  if (r->how == via::now) observe(r, [&] { return r->fut.get(); });
}

// ---------------------------------------------------------------------------------------------
// Planning

std::uint64_t new_id(round_ctx& c) { return (static_cast<std::uint64_t>(c.thread) << 40) | (*c.next_seq)++; }

template <class K, std::size_t N>
K pick_kind(rng& g, const std::pair<K, int> (&weights)[N]) {
  int total = 0;
  for (auto& w : weights) total += w.second;
  int pick = static_cast<int>(g.below(static_cast<std::uint64_t>(total)));
  for (auto& w : weights) {
    if (pick < w.second) return w.first;
    pick -= w.second;
  }
  return weights[0].first;
}

void plan_cpp(round_ctx& c, record& r) {
  rng& g = *c.gen;
  static constexpr std::pair<kind, int> weights[] = {
      {kind::value, 18},        {kind::throws, 10},         {kind::sleeps, 10},
      {kind::stop_poll, 8},     {kind::cancel_queued, 16},  {kind::cancel_running, 9},
      {kind::abandon_queued, 9}, {kind::abandon_running, 8}, {kind::detached, 5},
  };
  // In rounds of several shapes, futures are consumed by then() alone: the loop is the
  // application's (shared) or shutdown's to turn, and nothing cancels later.
  static constexpr std::pair<kind, int> shared_weights[] = {
      {kind::value, 35}, {kind::throws, 20}, {kind::sleeps, 20}, {kind::cancel_queued, 15}, {kind::abandon_queued, 10},
  };
  // stop_poll jobs end when shutdown asks them to stop; stubborn ones only when their sleep does.
  static constexpr std::pair<kind, int> shutdown_weights[] = {
      {kind::value, 25}, {kind::throws, 15}, {kind::sleeps, 20}, {kind::stop_poll, 25}, {kind::stubborn, 15},
  };
  r.k = c.mode == shape::shared ? pick_kind(g, shared_weights)
      : c.mode == shape::shutdown ? pick_kind(g, shutdown_weights) : pick_kind(g, weights);
  const int v = static_cast<int>(g.below(100));
  r.how = v < 15 ? via::task_ref : v < 25 ? via::task_owned : v < 35 ? via::task_nested : v < 65 ? via::then
        : v < 75 ? via::driver : v < 90 ? via::later : via::now;
  r.takes_token = g.chance(50);
  r.throws_on_stop = g.chance(30);
  r.plain_throw = g.chance(30);
  r.blocking_wait = g.chance(50);
  r.cancel_before_consumer = g.chance(50);
  r.cancel_twice = g.chance(30);
  r.sleep_us = 50 + static_cast<int>(g.below(450));
  r.cancel_after = 1 + static_cast<int>(g.below(40));
  r.later_mode = g.chance(25) ? uvrt::cancel_mode::abandon : uvrt::cancel_mode::wait;

  if (cancelled_later(r.k)) r.takes_token = true;
  if (c.mode != shape::single) {
    r.how = via::then;
    // Sleeps past the shorter shutdown timeouts, briefly: the pool is every thread's.
    if (r.k == kind::stubborn) r.sleep_us = 500 + static_cast<int>(g.below(2500));
    return;
  }
  if (r.k == kind::stop_poll && !take_stop_budget()) r.k = kind::value;
  r.holds_budget = r.k == kind::stop_poll;
  // get() right after the cancel only where abandon settles the future at once.
  const bool abandons = r.k == kind::abandon_queued || r.k == kind::abandon_running;
  if (r.how == via::now && !abandons) r.how = via::then;
  if (r.k == kind::detached) r.how = via::none;
  // A future the loop still cancels later stays in the record: not owned by a task, and not
  // awaited by the driver (stop_poll waits for the driver's own later cancel), nor moved into
  // block_on before the job has started.
  if (cancelled_later(r.k) && r.how == via::task_owned) r.how = via::task_ref;
  if (r.k == kind::stop_poll && r.how == via::driver) r.how = via::task_nested;
  if ((r.k == kind::cancel_running || r.k == kind::abandon_running) && r.how == via::later) r.how = via::task_ref;
}

void plan_c(round_ctx& c, record& r) {
  rng& g = *c.gen;
  static constexpr std::pair<kind, int> weights[] = {
      {kind::c_value, 18},         {kind::c_fail, 12},           {kind::c_throw, 8},
      {kind::c_stop_poll, 9},      {kind::c_cancel_queued, 16},  {kind::c_cancel_running, 10},
      {kind::c_release_early, 10}, {kind::c_fire_forget, 8},
  };
  // Shared-loop rounds: nothing the loop cancels later.
  static constexpr std::pair<kind, int> shared_weights[] = {
      {kind::c_value, 30},         {kind::c_fail, 15},          {kind::c_throw, 10},
      {kind::c_cancel_queued, 20}, {kind::c_release_early, 15}, {kind::c_fire_forget, 10},
  };
  r.k = c.mode == shape::shared ? pick_kind(g, shared_weights) : pick_kind(g, weights);
  r.how = via::c_done;
  r.plain_throw = g.chance(30);
  r.cancel_after = 1 + static_cast<int>(g.below(40));
  r.release_in_done = g.chance(40);
  // The started signal goes through a uv_async_t on the application's loop.
  if (r.k == kind::c_cancel_running && !c.embedded) r.k = kind::c_stop_poll;
  if (r.k == kind::c_stop_poll && !take_stop_budget()) r.k = kind::c_value;
  r.holds_budget = r.k == kind::c_stop_poll;
  // A handle the loop may still cancel with is released only after the round.
  if (r.k == kind::c_stop_poll || r.k == kind::c_cancel_running) r.release_in_done = false;
}

// ---------------------------------------------------------------------------------------------
// The C++ round

record* submit_cpp(round_ctx& c, uvrt::runtime& rt, int member = 0) {
  record& r = c.recs.emplace_back();
  r.id = new_id(c);
  r.ctx = &c;
  r.member = member;
  plan_cpp(c, r);
  record* rp = &r;
  round_ctx* cp = &c;
  try {
    if (r.takes_token) {
      r.fut = rt.to_thread([cp, rp, w = witness(c.thread)](std::stop_token token) { return cpp_work(cp, rp, &token); });
    } else {
      r.fut = rt.to_thread([cp, rp, w = witness(c.thread)] { return cpp_work(cp, rp, nullptr); });
    }
  } catch (const std::exception& e) {
    violation(c.where(r), std::string("to_thread threw: ") + e.what());
    if (r.holds_budget) give_stop_budget();
    c.recs.pop_back();
    return nullptr;
  }
  r.submitted = true;
  ++c.st->submitted;

  const bool cancel_now = r.k == kind::cancel_queued || r.k == kind::abandon_queued;
  const auto mode = r.k == kind::abandon_queued ? uvrt::cancel_mode::abandon : uvrt::cancel_mode::wait;
  if (c.mode != shape::single) {
    if (cancel_now) do_cancel(&c, &r, mode);
    attach_then(&c, &r);
    return &r;
  }
  // A task by reference may be waiting already when the cancel comes: it must not be resumed
  // inside cancel().
  if (cancel_now && r.how == via::task_ref && !r.cancel_before_consumer) {
    attach_task(&c, &r);
    do_cancel(&c, &r, mode);
    return &r;
  }
  if (cancel_now) do_cancel(&c, &r, mode);
  switch (r.k) {
    case kind::detached: r.fut = {}; return &r;
    case kind::stop_poll: c.cancel_later.push_back(&r); break;
    default: break;
  }
  if (is_task(r.how)) {
    attach_task(&c, &r);
  } else if (r.how == via::then && !cancelled_later(r.k)) {
    attach_then(&c, &r);
  } else if (r.how == via::now && r.k == kind::abandon_queued) {
    observe(&r, [&] { return r.fut.get(); });
  }
  return &r;
}

// ---------------------------------------------------------------------------------------------
// Loop operations: consumers, tasks, planning and submission (C++ single rounds)
//
// About one driver step in five makes a loop operation instead of a job: a sleep, a timeout around
// a job (uvrt::timeout or job_options, with and without a grace period), a spawned task (awaiting
// a job, a sleep, a nested task, or another spawned task's future; some catch cancelled_error and
// return a value of their own, some then sleep again), or when_all / when_any of jobs, timeouts,
// spawned tasks and sleeps. The loop cancels some of them (wait or abandon) at once, after a few
// driver steps, or when a job inside signals that it runs; their futures are consumed like jobs'
// (tasks, then, the driver, block_on after it, get after an abandon) or by a spawned task; some
// spawned tasks' futures are dropped. Teardown rounds destroy the runtime with all of these
// pending. Every operation's future must settle once with an outcome its inputs and its cancel
// allow; every spawned task's body must run once and to its end.

std::uint64_t caught_value(std::uint64_t id) { return value_of(id, true); }
std::uint64_t slept_value(std::uint64_t id) { return value_of(id, false); }

// Calls f(job) for every job of the operation's tree; `timed` says whether a timeout is above it.
template <class F>
void for_each_job(op_rec& o, F&& f, bool timed = false) {
  if (o.job) f(*o.job, timed || o.k == op_kind::timed);
  for (op_rec* k : o.kids) for_each_job(*k, f, timed || o.k == op_kind::timed);
}

void release_budget(op_rec* o) {
  for (; o->budget > 0; --o->budget) give_stop_budget();
}

void summarize(op_rec* o, const tracked& v) {
  o->values.push_back(v.payload ? *v.payload : ~0ull);
  if (v.owner != o->ctx->thread) o->foreign_value = true;
}
void summarize(op_rec* o, const std::vector<tracked>& v) {
  for (const tracked& t : v) summarize(o, t);
}
void summarize(op_rec* o, const std::tuple<tracked, std::monostate, tracked>& v) {
  summarize(o, std::get<0>(v));
  summarize(o, std::get<2>(v));
}
void summarize(op_rec* o, const uvrt::any_result<tracked>& v) {
  o->index = v.index;
  summarize(o, v.value);
}

// Records the outcome of a top-level operation's future: once, by whichever consumer it has.
template <class T, class Get>
void observe_op(op_rec* o, Get&& get) {
  ++o->settled;
  ++progress;
  try {
    if constexpr (std::is_void_v<T>) {
      get();
    } else {
      T v = get();
      summarize(o, v);
    }
    o->outcome = got::value;
  } catch (const uvrt::cancelled_error&) {
    o->outcome = got::cancelled;
  } catch (const uvrt::timeout_error&) {
    o->outcome = got::timed_out;
  } catch (const uvrt::runtime_closed_error& e) {
    o->outcome = got::closed;
    o->msg = e.what();
  } catch (const stress_error& e) {
    o->outcome = got::stress_exc;
    o->err_id = e.id;
    o->msg = e.what();
  } catch (const plain_failure& p) {
    o->outcome = got::plain_exc;
    o->err_id = p.id;
  } catch (const std::exception& e) {
    o->outcome = got::other_exc;
    o->msg = std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    o->outcome = got::other_exc;
    o->msg = "a non-std exception";
  }
  o->observed_at = clock_type::now();  // after get(), which may be block_on's wait
  // Whether its jobs had run, and returned, by now (below a timeout a job may run on, dropped).
  for_each_job(*o, [](record& j, bool timed) {
    if (timed) return;
    j.ran_at_op_settle = j.ran.load();
    j.finished_at_op_settle = j.finished.load();
  });
  release_budget(o);
}

template <class T>
using held = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// Awaits an operation's future, by reference (where it lives, so that the loop can still cancel
// it) or owned.
template <class T>
uvrt::task<void> op_await(op_rec* o, uvrt::future<T>* ref, uvrt::future<T> owned) {
  std::exception_ptr e;
  std::optional<held<T>> v;
  uvrt::future<T>& f = ref ? *ref : owned;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await f;
      v.emplace();
    } else {
      v.emplace(co_await f);
    }
  } catch (...) {
    e = std::current_exception();
  }
  observe_op<T>(o, [&]() -> T {
    if (e) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return std::move(*v);
  });
}

template <class T>
struct op_handle_of final : op_handle {
  uvrt::future<T> f;
  explicit op_handle_of(uvrt::future<T> x) : f(std::move(x)) {}

  bool valid() const noexcept override { return f.valid(); }
  bool ready() const override { return f.ready(); }
  uvrt::cancel_result cancel(uvrt::cancel_mode mode) override { return f.cancel(mode); }
  void consume(op_rec* o) override {
    round_ctx* c = o->ctx;
    switch (o->how) {
      case op_via::task_ref: spawn(op_await<T>(o, &f, {}), &c->spawned_live); break;
      case op_via::task_owned: spawn(op_await<T>(o, nullptr, std::move(f)), &c->spawned_live); break;
      case op_via::spawned:
        c->consumers.push_back(c->rt->spawn(op_await<T>(o, &f, {})));
        ++c->st->op_consumers;
        break;
      case op_via::then:
        std::move(f).then([o, w = witness(c->thread)](uvrt::future<T> g) { observe_op<T>(o, [&]() -> T { return g.get(); }); });
        break;
      default: break;
    }
  }
  uvrt::task<void> await_here(op_rec* o) override { return op_await<T>(o, &f, {}); }
  void block_on(uvrt::runtime& rt, op_rec* o) override {
    observe_op<T>(o, [&]() -> T { return rt.block_on(std::move(f)); });
  }
  void get(op_rec* o) override {
    observe_op<T>(o, [&]() -> T { return f.get(); });
  }
};

template <class T>
std::unique_ptr<op_handle> handle_of(uvrt::future<T> f) {
  return std::make_unique<op_handle_of<T>>(std::move(f));
}

// An input job, on the runtime running on this thread (the driver's, or a spawned task's).
uvrt::future<tracked> submit_inner(round_ctx* c, record* j, const uvrt::job_options& opts) {
  uvrt::future<tracked> f;
  if (j->takes_token) {
    f = uvrt::to_thread(opts, [c, j, w = witness(c->thread)](std::stop_token token) { return cpp_work(c, j, &token); });
  } else {
    f = uvrt::to_thread(opts, [c, j, w = witness(c->thread)] { return cpp_work(c, j, nullptr); });
  }
  j->submitted = true;
  ++c->st->submitted;
  ++c->st->op_jobs;
  return f;
}

uvrt::task<tracked> nested_await(round_ctx* c, op_rec* o) {
  witness w(c->thread);
  co_return co_await submit_inner(c, o->job, {});
}

uvrt::future<tracked> spawn_task(round_ctx* c, op_rec* o);

// A spawned task's body: it awaits its input; a cancellation reaches what it awaits, and the
// co_await throws cancelled_error. Some catch it and return caught_value(id), after one more
// sleep for some (the cancellation was one-shot: that sleep is not cancelled by it).
uvrt::task<tracked> task_body(round_ctx* c, op_rec* o) {
  witness w(c->thread);  // the frame must be destroyed once, whatever happens
  ++o->body_runs;
  std::optional<tracked> v;
  bool cancelled = false;
  try {
    switch (o->k) {
      case op_kind::task_job: v.emplace(co_await submit_inner(c, o->job, {})); break;
      case op_kind::task_sleep: {
        // Not co_await (x ? f() : g()): g++ 12 builds both operands there and destroys three.
        uvrt::future<void> s = o->free_call ? uvrt::sleep_for(o->delay) : c->rt->sleep_for(o->delay);
        co_await std::move(s);
        v.emplace(slept_value(o->id), c->thread);
        break;
      }
      case op_kind::task_nested: v.emplace(co_await nested_await(c, o)); break;
      case op_kind::task_ready: v.emplace(slept_value(o->id), c->thread); break;
      case op_kind::task_orphan: {
        // Its child is not cancelled with it: only awaiting a spawned task's future passes a
        // cancellation on. The child's future is read by then(), as a top-level operation's.
        o->orphan->fut = handle_of(spawn_task(c, o->orphan));
        o->orphan->fut->consume(o->orphan);
        uvrt::future<void> s = uvrt::sleep_for(o->delay);
        co_await std::move(s);
        v.emplace(slept_value(o->id), c->thread);
        break;
      }
      default: v.emplace(co_await spawn_task(c, o->kids[0])); break;  // task_chain
    }
  } catch (const uvrt::cancelled_error&) {
    if (!o->catches) {
      o->body_done = true;
      throw;
    }
    cancelled = true;
  } catch (...) {
    o->body_done = true;
    throw;
  }
  if (cancelled) {
    o->caught = true;
    if (o->again) {
      try {
        co_await uvrt::sleep_for(std::chrono::microseconds(100));
      } catch (...) {
        o->body_done = true;
        throw;
      }
    }
    v.emplace(caught_value(o->id), c->thread);
  }
  o->body_done = true;
  co_return std::move(*v);
}

uvrt::future<tracked> spawn_task(round_ctx* c, op_rec* o) {
  o->created = clock_type::now();
  ++c->st->op_tasks;
  uvrt::future<tracked> f = o->free_call ? uvrt::spawn(task_body(c, o)) : c->rt->spawn(task_body(c, o));
  o->started = true;
  return f;
}

uvrt::future<void> start_sleep(round_ctx* c, op_rec* o) {
  o->created = clock_type::now();
  ++c->st->op_sleeps;
  uvrt::future<void> f;
  if (o->until) {
    const auto t = o->created + o->delay;
    f = o->free_call ? uvrt::sleep_until(t) : c->rt->sleep_until(t);
  } else {
    f = o->free_call ? uvrt::sleep_for(o->delay) : c->rt->sleep_for(o->delay);
  }
  o->started = true;
  return f;
}

// An operation whose value is a `tracked`: a job, a timeout, a spawned task.
uvrt::future<tracked> start_input(round_ctx* c, op_rec* o) {
  uvrt::future<tracked> f;
  switch (o->k) {
    case op_kind::job:
      o->created = clock_type::now();
      f = submit_inner(c, o->job, {});
      break;
    case op_kind::timed:
      o->created = clock_type::now();
      ++c->st->op_timeouts;
      if (o->by_options) f = submit_inner(c, o->job, uvrt::job_options{.timeout = o->limit, .grace = o->grace});
      else f = uvrt::timeout(submit_inner(c, o->job, {}), o->limit, o->grace);
      break;
    default: return spawn_task(c, o);
  }
  o->started = true;
  return f;
}

void start_op(round_ctx* c, op_rec* o) {
  switch (o->k) {
    case op_kind::sleep: o->fut = handle_of(start_sleep(c, o)); break;
    case op_kind::all_vec:
    case op_kind::any_vec: {
      std::vector<uvrt::future<tracked>> fs;
      for (op_rec* k : o->kids) fs.push_back(start_input(c, k));
      o->created = clock_type::now();
      if (o->k == op_kind::all_vec) {
        ++c->st->op_when_all;
        o->fut = handle_of(uvrt::when_all(std::move(fs)));
      } else {
        ++c->st->op_when_any;
        o->fut = handle_of(uvrt::when_any(std::move(fs)));
      }
      break;
    }
    case op_kind::all_tuple: {
      uvrt::future<tracked> a = start_input(c, o->kids[0]);
      uvrt::future<void> s = start_sleep(c, o->kids[1]);
      uvrt::future<tracked> b = start_input(c, o->kids[2]);
      o->created = clock_type::now();
      ++c->st->op_when_all;
      o->fut = handle_of(uvrt::when_all(std::move(a), std::move(s), std::move(b)));
      break;
    }
    default: o->fut = handle_of(start_input(c, o)); break;
  }
  o->started = true;
}

// Planning, with the round's operation generator.

op_rec& new_op(round_ctx& c, op_kind k, op_rec* parent) {
  op_rec& o = c.ops.emplace_back();
  o.id = new_id(c);
  o.k = k;
  o.ctx = &c;
  o.parent = parent;
  if (parent) parent->kids.push_back(&o);
  return o;
}

record* plan_job(round_ctx& c, op_rec& o, kind k) {
  rng& g = *c.op_gen;
  record& j = c.recs.emplace_back();
  j.id = new_id(c);
  j.ctx = &c;
  j.how = via::inner;
  j.op = &o;
  j.k = k;
  j.takes_token = waits_for_stop(k) || g.chance(50);
  j.throws_on_stop = g.chance(30);
  j.plain_throw = g.chance(30);
  j.blocking_wait = g.chance(50);
  j.sleep_us = 50 + static_cast<int>(g.below(450));
  return &j;
}

std::chrono::microseconds pick_delay(rng& g) {
  // Mostly under a millisecond or two (libuv's timers count whole milliseconds), sometimes 0.
  static constexpr int delays_us[] = {0, 100, 300, 700, 1000, 2000};
  return std::chrono::microseconds(delays_us[g.below(std::size(delays_us))]);
}

void plan_input(round_ctx& c, op_rec& o) {
  rng& g = *c.op_gen;
  static constexpr std::pair<kind, int> job_weights[] = {
      {kind::value, 35}, {kind::throws, 20}, {kind::sleeps, 25}, {kind::stop_poll, 20}};
  switch (o.k) {
    case op_kind::job:
    case op_kind::task_job:
    case op_kind::task_nested: o.job = plan_job(c, o, pick_kind(g, job_weights)); break;
    case op_kind::timed: {
      o.job = plan_job(c, o, pick_kind(g, job_weights));
      // Sleeping jobs ignore their stop token: some outlast the limit and the grace period.
      // (Briefly: a job that waits holds a thread of the pool every thread's runtimes share.)
      if (o.job->k == kind::sleeps) o.job->sleep_us = 50 + static_cast<int>(g.below(1500));
      static constexpr int limits_us[] = {0, 200, 1000, 2000};
      static constexpr int graces_us[] = {0, 0, 300, 1500};
      o.limit = std::chrono::microseconds(limits_us[g.below(std::size(limits_us))]);
      o.grace = std::chrono::microseconds(graces_us[g.below(std::size(graces_us))]);
      o.by_options = o.limit.count() > 0 && g.chance(40);  // a zero timeout there means none
      break;
    }
    case op_kind::task_sleep: o.delay = pick_delay(g); break;
    case op_kind::task_chain: plan_input(c, new_op(c, op_kind::task_job, &o)); break;
    case op_kind::task_orphan: {
      o.delay = pick_delay(g);
      op_rec& child = new_op(c, op_kind::task_job, nullptr);
      child.spawned_by = &o;
      o.orphan = &child;
      plan_input(c, child);
      if (child.job->k == kind::stop_poll) child.job->k = kind::value;  // nothing will stop it
      child.how = op_via::then;
      break;
    }
    case op_kind::sleep:
      o.delay = pick_delay(g);
      o.until = g.chance(30);
      break;
    default: break;
  }
  if (o.k == op_kind::sleep || is_spawned(o.k)) o.free_call = g.chance(50);
  if (is_spawned(o.k)) {
    o.catches = g.chance(50);
    o.again = o.catches && g.chance(40);
  }
}

// Whether it may have settled when the call that made it returns (a spawned task that returns at
// once), and whether it must have: a combinator whose inputs have all settled has its outcome
// when it returns.
bool may_be_ready_at_once(const op_rec& o) {
  switch (o.k) {
    case op_kind::task_ready: return true;
    case op_kind::all_vec:
      for (const op_rec* k : o.kids)
        if (!may_be_ready_at_once(*k)) return false;
      return true;
    case op_kind::any_vec:
      for (const op_rec* k : o.kids)
        if (may_be_ready_at_once(*k)) return true;
      return false;
    default: return false;
  }
}
bool must_be_ready_at_once(const op_rec& o) {
  if (o.k == op_kind::task_ready) return true;
  if (o.k != op_kind::all_vec && o.k != op_kind::any_vec) return false;
  for (const op_rec* k : o.kids)
    if (k->k != op_kind::task_ready) return false;
  return true;
}

// Settles without anyone cancelling it (a stop-waiting job never does).
bool ends_alone(const op_rec& o) {
  switch (o.k) {
    case op_kind::job:
    case op_kind::task_job:
    case op_kind::task_nested: return !waits_for_stop(o.job->k);
    case op_kind::task_chain: return ends_alone(*o.kids[0]);
    case op_kind::all_vec:
    case op_kind::all_tuple: {
      bool all = true, one_fails = false;
      for (const op_rec* k : o.kids) {
        all = all && ends_alone(*k);
        // A sure failure makes when_all cancel (wait) the others, which stops their jobs.
        one_fails = one_fails || ((k->k == op_kind::job || k->k == op_kind::task_job || k->k == op_kind::task_nested) &&
                                  k->job->k == kind::throws);
      }
      return all || one_fails;
    }
    case op_kind::any_vec:
      for (const op_rec* k : o.kids)
        if (ends_alone(*k)) return true;
      return false;
    default: return true;  // sleeps, timeouts, task_sleep
  }
}

op_rec* plan_op(round_ctx& c) {
  rng& g = *c.op_gen;
  static constexpr std::pair<op_kind, int> weights[] = {
      {op_kind::sleep, 12},      {op_kind::timed, 18},      {op_kind::task_job, 15},   {op_kind::task_sleep, 6},
      {op_kind::task_nested, 7}, {op_kind::task_chain, 6},  {op_kind::task_orphan, 4}, {op_kind::task_ready, 2},
      {op_kind::all_vec, 12},    {op_kind::all_tuple, 6},   {op_kind::any_vec, 15},
  };
  static constexpr std::pair<op_kind, int> input_weights[] = {
      {op_kind::job, 35},       {op_kind::timed, 20},      {op_kind::task_job, 20},  {op_kind::task_sleep, 12},
      {op_kind::task_chain, 8}, {op_kind::task_orphan, 3}, {op_kind::task_ready, 5},
  };
  op_rec& o = new_op(c, pick_kind(g, weights), nullptr);
  switch (o.k) {
    case op_kind::all_vec:
    case op_kind::any_vec: {
      const int n = o.k == op_kind::all_vec && g.chance(4) ? 0 : 1 + static_cast<int>(g.below(4));
      for (int i = 0; i < n; ++i) plan_input(c, new_op(c, pick_kind(g, input_weights), &o));
      break;
    }
    case op_kind::all_tuple:
      plan_input(c, new_op(c, pick_kind(g, input_weights), &o));
      plan_input(c, new_op(c, op_kind::sleep, &o));
      plan_input(c, new_op(c, pick_kind(g, input_weights), &o));
      break;
    default: plan_input(c, o); break;
  }

  const int w = static_cast<int>(g.below(100));
  o.when = w < 40 ? op_when::never : w < 60 ? op_when::at_once : w < 88 ? op_when::later : op_when::on_start;
  o.mode = g.chance(30) ? uvrt::cancel_mode::abandon : uvrt::cancel_mode::wait;
  o.cancel_after = 1 + static_cast<int>(g.below(30));
  o.cancel_before_consumer = g.chance(50);
  o.cancel_twice = g.chance(20);
  if (o.when == op_when::on_start) {
    // A job that signals that it runs (and then waits for its stop): not below a timeout, which
    // could drop it before it runs while the rest waits for the cancel it would have brought.
    record* signaller = nullptr;
    for_each_job(o, [&](record& j, bool timed) {
      if (!signaller && !timed) signaller = &j;
    });
    if (signaller) {
      signaller->k = kind::cancel_running;
      signaller->takes_token = true;
    } else {
      o.when = op_when::later;
    }
  }
  // Stop-waiting jobs that only the loop ends (no timeout above them): none if nothing would ask
  // them to stop, and each holds the stop budget (see take_stop_budget) until the loop cancels the
  // operation or it settles.
  const bool ends = o.when != op_when::never || ends_alone(o);
  for_each_job(o, [&](record& j, bool timed) {
    if (j.k != kind::stop_poll || timed) return;
    if (ends && take_stop_budget()) ++o.budget;
    else j.k = kind::value;
  });

  const int v = static_cast<int>(g.below(100));
  o.how = v < 15 ? op_via::task_ref : v < 25 ? op_via::task_owned : v < 40 ? op_via::spawned : v < 62 ? op_via::then
        : v < 72 ? op_via::driver : v < 87 ? op_via::later : v < 94 ? op_via::now : op_via::dropped;
  // get() right after the cancel only where it settles the future at once.
  if (o.how == op_via::now && (o.when == op_when::never || (o.mode != uvrt::cancel_mode::abandon && o.k != op_kind::sleep)))
    o.how = op_via::then;
  if (o.how == op_via::dropped && (!is_spawned(o.k) || o.when != op_when::never)) o.how = op_via::then;
  // A future the loop cancels later stays where the loop can reach it; the driver does not wait
  // for what only its own later cancel may end.
  if ((o.when == op_when::later || o.when == op_when::on_start) && o.how == op_via::task_owned) o.how = op_via::task_ref;
  if (o.when == op_when::later && o.how == op_via::driver) o.how = op_via::task_ref;
  if (o.when == op_when::on_start && o.how == op_via::later) o.how = op_via::task_ref;
  return &o;
}

void do_cancel_op(round_ctx* c, op_rec* o) {
  if (!o->fut || !o->fut->valid()) {
    // Consumed already (a consumer by reference read it as it was made: when_all of nothing),
    // or consumed by a task before a later cancel: nothing left to cancel.
    if (o->settled == 0) violation(c->where(*o), "the test's own bookkeeping: its future is gone but it never settled");
    return;
  }
  const int before = o->settled;
  try {
    o->cres = o->fut->cancel(o->mode);
  } catch (const std::exception& e) {
    violation(c->where(*o), std::string("cancel() threw: ") + e.what());
  }
  o->cancel_called = true;
  if (o->cancel_twice && o->fut->valid()) {
    try {
      o->cres2 = o->fut->cancel(o->mode);
      o->cancelled_twice = true;
    } catch (const std::exception& e) {
      violation(c->where(*o), std::string("a second cancel() threw: ") + e.what());
    }
  }
  o->settled_inside_cancel = o->settled != before;
  o->ready_after_cancel = o->fut->valid() && o->fut->ready();
  release_budget(o);
}

// A later cancel, or one that a job's start brought: then() and get() come after it.
void cancel_op_now(round_ctx* c, op_rec* o) {
  if (!o->fut || !o->fut->valid()) {
    do_cancel_op(c, o);  // reports it if it never settled
    return;
  }
  do_cancel_op(c, o);
  if (o->how == op_via::then) o->fut->consume(o);
  if (o->how == op_via::now) o->fut->get(o);
}

// On the loop thread, through from_thread: a job inside an operation runs.
void op_started(round_ctx* c, record* r) {
  r->started_seen = true;
  op_rec* root = r->op;
  while (root->parent) root = root->parent;
  if (root->when == op_when::on_start && !root->cancel_called) cancel_op_now(c, root);
}

op_rec* submit_op(round_ctx& c) {
  op_rec* o = plan_op(c);
  ++c.st->ops;
  try {
    start_op(&c, o);
  } catch (const std::exception& e) {
    violation(c.where(*o), std::string("making it threw: ") + e.what());
    release_budget(o);
    o->started = false;
    return nullptr;
  }
  o->ready_when_made = o->fut->ready();
  if (o->when == op_when::at_once) {
    // A consumer by reference may be waiting already when the cancel comes: it must not be
    // resumed inside cancel().
    if ((o->how == op_via::task_ref || o->how == op_via::spawned) && !o->cancel_before_consumer) {
      o->fut->consume(o);
      do_cancel_op(&c, o);
      return o;
    }
    do_cancel_op(&c, o);
  }
  if (o->when == op_when::later) c.op_cancel_later.push_back(o);
  switch (o->how) {
    case op_via::task_ref:
    case op_via::task_owned:
    case op_via::spawned: o->fut->consume(o); break;
    case op_via::then:
      if (o->when == op_when::never || o->when == op_when::at_once) o->fut->consume(o);
      break;
    case op_via::now:
      if (o->when == op_when::at_once) o->fut->get(o);
      break;
    case op_via::dropped:
      o->fut.reset();  // the task runs on to its end
      break;
    default: break;  // the driver, or block_on after it
  }
  return o;
}

// The operations whose turn has come are cancelled (all of them if `all`).
void cancel_due_ops(round_ctx& c, bool all) {
  auto& v = c.op_cancel_later;
  for (std::size_t i = 0; i < v.size();) {
    op_rec* o = v[i];
    if (all || --o->cancel_after <= 0) {
      cancel_op_now(&c, o);
      v[i] = v.back();
      v.pop_back();
    } else {
      ++i;
    }
  }
}

// The stop_poll jobs whose turn has come are cancelled (all of them if `all`).
void cancel_due(round_ctx& c, bool all) {
  auto& v = c.cancel_later;
  for (std::size_t i = 0; i < v.size();) {
    record* r = v[i];
    if (all || --r->cancel_after <= 0) {
      if (r->k == kind::c_stop_poll) {
        const int before = r->settled;
        r->cancel_rc = uvrt_job_cancel(r->handle);
        r->cancel_called = true;
        r->settled_inside_cancel = r->settled != before;
        if (r->cancel_rc == 0) r->cancel_succeeded = true;
        if (r->holds_budget) {
          r->holds_budget = false;
          give_stop_budget();
        }
      } else {
        do_cancel(&c, r, r->later_mode);
        if (r->how == via::then) attach_then(&c, r);
        if (r->how == via::now) observe(r, [&] { return r->fut.get(); });
      }
      v[i] = v.back();
      v.pop_back();
    } else {
      ++i;
    }
  }
}

// Of the driver's steps, the share that makes a loop operation instead of a job (percent).
constexpr int op_share = 20;

uvrt::task<void> drive_cpp(round_ctx* c) {
  for (int i = 0; i < c->n_jobs; ++i) {
    if (c->teardown && i == c->teardown_at) co_return;
    thread_phase[c->thread] = "C++ driver";
    if (c->gen->chance(op_share)) {
      if (!cfg.no_ops) {
        op_rec* o = submit_op(*c);
        if (o && o->how == op_via::driver) co_await o->fut->await_here(o);
      }
    } else {
      record* r = submit_cpp(*c, *c->rt);
      if (r && r->how == via::driver) co_await consume_ref(r);
    }
    cancel_due(*c, false);
    cancel_due_ops(*c, false);
  }
  if (!c->teardown) {
    cancel_due(*c, true);
    cancel_due_ops(*c, true);
  }
}

// A record whose future someone reads (not dropped, not an operation's input).
bool read_directly(const record& r) { return r.how != via::none && r.how != via::inner; }

// Counts, before a teardown, what is still in flight.
void count_in_flight(round_ctx& c) {
  std::uint64_t unsettled = 0, running = 0;
  for (auto& r : c.recs) {
    const bool pending = r.fut.valid() ? !r.fut.ready() : (r.settled == 0 && read_directly(r));
    if (pending) ++unsettled;
    if (r.ran.load() > 0 && !r.finished.load()) ++running;
  }
  for (auto& o : c.ops)
    if (o.started && !o.parent && (o.fut && o.fut->valid() ? !o.fut->ready() : o.settled == 0)) ++c.st->op_pending_at_teardown;
  c.st->unsettled_at_teardown += unsettled;
  if (c.c_api) c.st->unsettled_at_teardown_c += unsettled;
  c.st->running_at_teardown += running;
  if (unsettled + running > 0) ++c.st->torn_down_in_flight;
}

void verify(round_ctx& c);
int child_of_c(uvrt_runtime_t* inherited);
int child_of_cpp(std::optional<uvrt::runtime>& inherited);
template <class Child>
void fork_child(round_ctx& c, Child&& child);

void run_cpp_round(round_ctx& c) {
  if (c.embedded && uv_loop_init(&c.app_loop) != 0) {
    violation(c.where(), "uv_loop_init failed");
    return;
  }
  ++(c.embedded ? c.st->cpp_embedded : c.st->cpp_own);
  {
    std::optional<uvrt::runtime> rt;
    const uvrt::options opts{.threadpool_size = cfg.pool};
    if (c.embedded) rt.emplace(&c.app_loop, opts);
    else rt.emplace(opts);
    c.rt = &*rt;
    try {
      rt->block_on(drive_cpp(&c));
    } catch (const std::exception& e) {
      violation(c.where(), std::string("block_on(driver) threw: ") + e.what());
    }
    if (c.fork) fork_child(c, [&] { return child_of_cpp(rt); });
    if (!c.teardown) {
      thread_phase[c.thread] = "C++ drain";
      for (auto& r : c.recs) {
        if (r.how == via::later && r.fut.valid()) observe(&r, [&] { return rt->block_on(std::move(r.fut)); });
      }
      for (auto& o : c.ops) {
        if (!o.started || o.parent || !o.fut || !o.fut->valid()) continue;
        // (An operation to be cancelled when a job inside runs, which may never run, keeps its
        // future for then() or get() after that cancel; if none comes, it is read at the end.)
        if (o.how == op_via::later) o.fut->block_on(*rt, &o);
      }
      try {
        rt->run();
      } catch (const std::exception& e) {
        violation(c.where(), std::string("run() threw: ") + e.what());
      }
      for (auto& r : c.recs) {
        const bool pending = r.fut.valid() ? !r.fut.ready() : (r.settled == 0 && read_directly(r));
        if (pending) violation(c.where(r), "still pending after run() returned");
      }
      for (auto& o : c.ops) {
        if (!o.started || o.parent || o.how == op_via::dropped) continue;
        const bool pending = o.fut && o.fut->valid() ? !o.fut->ready() : o.settled == 0;
        if (pending) violation(c.where(o), "still pending after run() returned");
      }
      ++c.st->drained;
    } else {
      thread_phase[c.thread] = "C++ teardown";
      count_in_flight(c);
      ++c.st->torn_down;
    }
    c.rt = nullptr;
  }  // the runtime's destructor: with work in flight in a teardown round
  thread_phase[c.thread] = "C++ after teardown";
  // Every consumer that waited has run; what is left in a record is a settled future that
  // nobody awaited: one read after the runtime, or one whose then() was to be attached at a
  // cancel that teardown came before.
  for (auto& r : c.recs) {
    if (!r.fut.valid()) continue;
    if (r.how == via::task_ref || r.how == via::task_nested || r.how == via::driver) {
      violation(c.where(r), "the coroutine awaiting its future was never resumed (the future is still unread after teardown)");
      continue;
    }
    if (!r.fut.ready()) {
      violation(c.where(r), "its future is still pending after its runtime was destroyed");
      continue;
    }
    observe(&r, [&] { return r.fut.get(); });
  }
  for (auto& o : c.ops) {
    if (!o.started || o.parent || !o.fut || !o.fut->valid()) continue;
    if (o.how == op_via::task_ref || o.how == op_via::spawned || o.how == op_via::driver) {
      violation(c.where(o), "the coroutine awaiting its future was never resumed (the future is still unread after teardown)");
      continue;
    }
    if (!o.fut->ready()) {
      violation(c.where(o), "its future is still pending after its runtime was destroyed");
      continue;
    }
    o.fut->get(&o);
  }
  if (c.embedded) {
    if (uv_loop_alive(&c.app_loop) != 0) violation(c.where(), "the application's loop is still alive after the runtime was destroyed");
    const int rc = uv_loop_close(&c.app_loop);
    if (rc != 0) violation(c.where(), std::string("uv_loop_close on the application's loop: ") + uv_err_name(rc));
  }
}

// ---------------------------------------------------------------------------------------------
// The C round

int c_work(uvrt_job_t* job, void* arg, void** result) {
  auto* r = static_cast<record*>(arg);
  begin(r);
  struct finish {
    record* r;
    ~finish() { r->finished = true; }
  } guard{r};
  switch (r->k) {
    case kind::c_fail:
      return uvrt_job_fail(job, fail_code(r->id), failed_text(r->id).c_str());
    case kind::c_throw:
      if (r->plain_throw) throw plain_failure{r->id};
      throw stress_error(r->id, failed_text(r->id));
    case kind::c_cancel_running: {
      round_ctx* c = r->ctx;
      {
        std::lock_guard lock(c->started_mutex);
        c->started_list.push_back(r);
      }
      uv_async_send(&c->started_async);
      wait_for_stop_bounded(r, [job] { return uvrt_job_stop_requested(job) == 1; }, nullptr);
      return c_stopped;
    }
    case kind::c_stop_poll:
      wait_for_stop_bounded(r, [job] { return uvrt_job_stop_requested(job) == 1; }, nullptr);
      return c_stopped;
    default:
      *result = r;
      return 0;
  }
}

void c_done(uvrt_job_t* job, int status, void* result, void* arg) {
  auto* r = static_cast<record*>(arg);
  ++r->settled;
  ++progress;
  r->status = status;
  r->result = result;
  const char* m = uvrt_job_message(job);
  r->has_msg = m != nullptr;
  r->msg = m ? m : "";
  if (r->k != kind::c_fire_forget && job != r->handle) r->same_handle_in_done = false;
  if (r->handle_held && r->release_in_done) {
    r->cancel_in_done_rc = uvrt_job_cancel(job);
    const int rc = uvrt_job_release(job);
    if (rc != 0) violation(r->ctx->where(*r), std::string("uvrt_job_release in done: ") + uvrt_err_name(rc));
    r->handle_held = false;
  }
  if (r->cross != cross_call::none) call_across(*r);
}

// Jobs that signalled, through the application's loop, that they are running get cancelled.
void on_c_started(uv_async_t* handle) {
  auto* c = static_cast<round_ctx*>(handle->data);
  std::vector<record*> batch;
  {
    std::lock_guard lock(c->started_mutex);
    batch.swap(c->started_list);
  }
  for (record* r : batch) {
    const int before = r->settled;
    r->cancel_rc = uvrt_job_cancel(r->handle);
    r->cancel_called = true;
    r->settled_inside_cancel = r->settled != before;
    if (r->cancel_rc == 0) r->cancel_succeeded = true;
  }
}

record* submit_c(round_ctx& c, uvrt_runtime_t* rt, int member = 0) {
  record& r = c.recs.emplace_back();
  r.id = new_id(c);
  r.ctx = &c;
  r.member = member;
  plan_c(c, r);
  uvrt_job_t** out = r.k == kind::c_fire_forget ? nullptr : &r.handle;
  const int rc = uvrt_job_submit(rt, out, &c_work, &c_done, &r);
  if (rc != 0) {
    violation(c.where(r), std::string("uvrt_job_submit: ") + uvrt_err_name(rc));
    if (r.holds_budget) give_stop_budget();
    c.recs.pop_back();
    return nullptr;
  }
  r.submitted = true;
  r.handle_held = out != nullptr;
  ++c.st->submitted;
  ++c.st->submitted_c;
  switch (r.k) {
    case kind::c_cancel_queued: {
      const int before = r.settled;
      r.cancel_rc = uvrt_job_cancel(r.handle);
      r.cancel_rc2 = uvrt_job_cancel(r.handle);
      r.cancel_called = true;
      r.settled_inside_cancel = r.settled != before;
      if (r.cancel_rc == 0) r.cancel_succeeded = true;
      break;
    }
    case kind::c_release_early: {
      const int rrc = uvrt_job_release(r.handle);
      if (rrc != 0) violation(c.where(r), std::string("uvrt_job_release before done: ") + uvrt_err_name(rrc));
      r.handle_held = false;
      break;
    }
    case kind::c_stop_poll: c.cancel_later.push_back(&r); break;
    default: break;
  }
  return &r;
}

// Handles held past the runtime: still valid, with the message the done callback saw.
void release_held_handles(round_ctx& c) {
  for (auto& r : c.recs) {
    if (!r.handle_held) continue;
    const char* m = uvrt_job_message(r.handle);
    if ((m != nullptr) != r.has_msg || (m && r.msg != m))
      violation(c.where(r), "uvrt_job_message after the runtime is gone differs from the one the done callback saw");
    const int rrc = uvrt_job_release(r.handle);
    if (rrc != 0) violation(c.where(r), std::string("uvrt_job_release after the runtime is gone: ") + uvrt_err_name(rrc));
    r.handle_held = false;
  }
}

void run_c_round(round_ctx& c) {
  uvrt_options_t opts{};
  opts.threadpool_size = cfg.pool;
  int rc;
  if (c.embedded) {
    if (uv_loop_init(&c.app_loop) != 0) {
      violation(c.where(), "uv_loop_init failed");
      return;
    }
    rc = uvrt_runtime_create_on_loop(&c.crt, &c.app_loop, &opts);
    if (rc == 0) {
      uv_async_init(&c.app_loop, &c.started_async, &on_c_started);
      c.started_async.data = &c;
      uv_unref(reinterpret_cast<uv_handle_t*>(&c.started_async));
    }
  } else {
    rc = uvrt_runtime_create(&c.crt, &opts);
  }
  if (rc != 0) {
    violation(c.where(), std::string("creating the runtime: ") + uvrt_err_name(rc));
    if (c.embedded) uv_loop_close(&c.app_loop);
    return;
  }
  ++(c.embedded ? c.st->c_embedded : c.st->c_own);
  uv_loop_t* loop = uvrt_runtime_loop(c.crt);
  thread_phase[c.thread] = "C driver";
  for (int i = 0; i < c.n_jobs; ++i) {
    if (c.teardown && i == c.teardown_at) break;
    submit_c(c, c.crt);
    cancel_due(c, false);
    if (c.gen->chance(15)) uv_run(loop, UV_RUN_NOWAIT);
  }
  if (c.fork) fork_child(c, [&] { return child_of_c(c.crt); });
  if (!c.teardown) {
    thread_phase[c.thread] = "C drain";
    cancel_due(c, true);
    if (c.embedded) {
      uv_run(loop, UV_RUN_DEFAULT);
    } else if ((rc = uvrt_runtime_run(c.crt)) != 0) {
      violation(c.where(), std::string("uvrt_runtime_run: ") + uvrt_err_name(rc));
    }
    for (auto& r : c.recs)
      if (r.settled == 0) violation(c.where(r), "its done callback has not run when the loop ran out of work");
    ++c.st->drained;
  } else {
    thread_phase[c.thread] = "C teardown";
    count_in_flight(c);
    ++c.st->torn_down;
  }
  rc = uvrt_runtime_destroy(c.crt);
  thread_phase[c.thread] = "C after teardown";
  if (rc != 0) violation(c.where(), std::string("uvrt_runtime_destroy: ") + uvrt_err_name(rc));
  for (auto& r : c.recs)
    if (r.settled == 0) violation(c.where(r), "its done callback has not run when uvrt_runtime_destroy returned");
  release_held_handles(c);
  if (c.embedded) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c.started_async), nullptr);
    uv_run(&c.app_loop, UV_RUN_DEFAULT);
    const int crc = uv_loop_close(&c.app_loop);
    if (crc != 0) violation(c.where(), std::string("uv_loop_close on the application's loop: ") + uv_err_name(crc));
  }
}

void release_held_handles(round_ctx& c);

// ---------------------------------------------------------------------------------------------
// Shared-loop rounds: two or three runtimes, C++ and C, embedded in one application loop

// A job submitted from inside another runtime's callback. Its future stays in the record, to be
// read once the loop has run (how == later) or handed to block_on (detached): then() or cancel()
// on it there would be refused, since it belongs to another runtime than the one whose callback
// runs.
record* submit_from_callback(round_ctx& c, uvrt::runtime& rt, int member, kind k, via how) {
  record& r = c.recs.emplace_back();
  r.id = new_id(c);
  r.ctx = &c;
  r.member = member;
  r.k = k;
  r.how = how;
  r.plain_throw = c.gen->chance(30);
  try {
    r.fut = rt.to_thread([cp = &c, rp = &r, w = witness(c.thread)] { return cpp_work(cp, rp, nullptr); });
  } catch (const std::exception& e) {
    violation(c.where(r), std::string("to_thread from another runtime's callback threw: ") + e.what());
    return nullptr;
  }
  r.submitted = true;
  ++c.st->submitted;
  return &r;
}

// From a continuation or done callback of one runtime, a call into another runtime on the same
// loop. The guard against re-entering a loop is the loop's, not the runtime's: uvrt_runtime_run
// and uvrt_runtime_destroy return UVRT_EBUSY; block_on of a pending future, run and shutdown
// throw usage_error; and the runtime stays usable, so a job submitted to it next settles too. A
// C++ runtime may be destroyed there: its destructor begins the teardown and returns, and its
// futures settle as the application's uv_run turns the loop on.
void call_across(record& r) {
  round_ctx& c = *r.ctx;
  member& m = c.members[static_cast<std::size_t>(r.cross_target)];
  const std::string what = std::string(name_of(r.cross)) + " of runtime " + std::to_string(r.cross_target) +
                           " from a callback of runtime " + std::to_string(r.member);
  auto bad = [&](const std::string& how) { violation(c.where(r), what + " " + how); };
  if (!m.alive()) return;  // destroyed from an earlier callback
  if (m.c_api) {
    const int rc = r.cross == cross_call::destroy ? uvrt_runtime_destroy(m.crt) : uvrt_runtime_run(m.crt);
    if (rc != UVRT_EBUSY) bad(std::string("returned ") + uvrt_err_name(rc) + ", expected UVRT_EBUSY");
    else ++c.st->cross_refused;
    if (rc == 0 && r.cross == cross_call::destroy) m.crt = nullptr;  // gone, against the contract
    else submit_c(c, m.crt, r.cross_target);
    return;
  }
  if (r.cross == cross_call::destroy) {
    for (record& o : c.recs)
      if (o.member == r.cross_target) o.torn = true;
    m.rt.reset();
    ++c.st->cross_destroyed;
    return;
  }
  try {
    if (r.cross == cross_call::block_on) {
      // A pending future of that runtime: a fresh job's, which the refused block_on drops (the
      // job still runs; its result is destroyed).
      if (record* d = submit_from_callback(c, *m.rt, r.cross_target, kind::detached, via::none)) {
        (void)m.rt->block_on(std::move(d->fut));
        bad("returned, instead of throwing usage_error");
      }
    } else if (r.cross == cross_call::run) {
      m.rt->run();
      bad("returned, instead of throwing usage_error");
    } else {
      const uvrt::shutdown_result res = m.rt->shutdown(std::chrono::milliseconds(1));
      bad("returned {" + std::to_string(res.cancelled) + ", " + std::to_string(res.finished) + ", " +
          std::to_string(res.abandoned) + "}, instead of throwing usage_error");
    }
  } catch (const uvrt::usage_error&) {
    ++c.st->cross_refused;
  } catch (const std::exception& e) {
    bad(std::string("threw ") + typeid(e).name() + " (" + e.what() + "), expected usage_error");
  } catch (...) {
    bad("threw something that is not a std::exception, expected usage_error");
  }
  if (m.rt) submit_from_callback(c, *m.rt, r.cross_target, c.gen->chance(70) ? kind::value : kind::throws, via::later);
}

void run_shared_round(round_ctx& c) {
  rng& g = *c.gen;
  if (uv_loop_init(&c.app_loop) != 0) {
    violation(c.where(), "uv_loop_init failed");
    return;
  }
  const int n = 2 + static_cast<int>(g.below(2));
  for (int i = 0; i < n; ++i) c.members.emplace_back().c_api = g.chance(40);
  ++c.st->shared_loops;
  c.st->runtimes += static_cast<std::uint64_t>(n - 1);  // thread_main counted one
  uvrt_options_t copts{};
  copts.threadpool_size = cfg.pool;
  for (member& m : c.members) {
    ++c.st->shared_runtimes;
    if (m.c_api) {
      const int rc = uvrt_runtime_create_on_loop(&m.crt, &c.app_loop, &copts);
      if (rc != 0) throw std::runtime_error(std::string("creating a C runtime on the shared loop: ") + uvrt_err_name(rc));
      ++c.st->c_embedded;
    } else {
      m.rt.emplace(&c.app_loop, uvrt::options{.threadpool_size = cfg.pool});
      ++c.st->cpp_embedded;
    }
  }
  thread_phase[c.thread] = "shared loop: submitting";
  for (int i = 0; i < c.n_jobs; ++i) {
    // A runtime not yet destroyed by a callback.
    int k = static_cast<int>(g.below(static_cast<std::uint64_t>(n)));
    for (int tries = 0; tries < n && !c.members[static_cast<std::size_t>(k)].alive(); ++tries) k = (k + 1) % n;
    member& m = c.members[static_cast<std::size_t>(k)];
    if (!m.alive()) break;
    record* r = m.c_api ? submit_c(c, m.crt, k) : submit_cpp(c, *m.rt, k);
    // Not from a then() that ran at once on an abandoned future: that is no callback of uvrt's.
    if (r && r->k != kind::abandon_queued && g.chance(12)) {
      r->cross_target = (k + 1 + static_cast<int>(g.below(static_cast<std::uint64_t>(n - 1)))) % n;
      const int x = static_cast<int>(g.below(100));
      if (c.members[static_cast<std::size_t>(r->cross_target)].c_api) r->cross = x < 50 ? cross_call::run : cross_call::destroy;
      else r->cross = x < 30 ? cross_call::block_on : x < 55 ? cross_call::run : x < 80 ? cross_call::shutdown : cross_call::destroy;
    }
    if (g.chance(10)) uv_run(&c.app_loop, UV_RUN_NOWAIT);
  }
  thread_phase[c.thread] = "shared loop: the application's uv_run";
  uv_run(&c.app_loop, UV_RUN_DEFAULT);
  for (auto& r : c.recs) {
    if (r.how == via::later && r.fut.valid()) {
      if (r.fut.ready()) observe(&r, [&] { return r.fut.get(); });
      else violation(c.where(r), "its future is still pending when the application's uv_run returned");
    }
    if (r.submitted && r.settled == 0 && r.k != kind::detached)
      violation(c.where(r), "not settled when the application's uv_run returned");
  }
  thread_phase[c.thread] = "shared loop: destroying the rest";
  for (member& m : c.members) {
    if (!m.c_api) {
      m.rt.reset();
    } else if (const int rc = m.crt ? uvrt_runtime_destroy(m.crt) : 0; rc != 0) {
      violation(c.where(), std::string("uvrt_runtime_destroy after the application's uv_run: ") + uvrt_err_name(rc));
    }
  }
  release_held_handles(c);
  const int rc = uv_loop_close(&c.app_loop);
  if (rc != 0) violation(c.where(), std::string("uv_loop_close on the shared loop: ") + uv_err_name(rc));
}

// ---------------------------------------------------------------------------------------------
// Shutdown rounds: shutdown(timeout) with every job in flight

// Until every callable and result of this thread's jobs is destroyed: an abandoned job's late
// result is destroyed when it arrives (on a thread of uvrt's, for a loop of its own), after the
// round. Polling, bounded, since nothing signals it.
bool wait_until_all_destroyed(const round_ctx& c) {
  const auto deadline = clock_type::now() + stop_wait_limit;
  while (result_count[c.thread].live() != 0 || witness_count[c.thread].live() != 0) {
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

void run_shutdown_round(round_ctx& c) {
  if (c.embedded && uv_loop_init(&c.app_loop) != 0) {
    violation(c.where(), "uv_loop_init failed");
    return;
  }
  ++(c.embedded ? c.st->cpp_embedded : c.st->cpp_own);
  const uvrt::options opts{.threadpool_size = cfg.pool};
  c.owned = c.embedded ? std::make_unique<uvrt::runtime>(&c.app_loop, opts) : std::make_unique<uvrt::runtime>(opts);
  // shutdown() is called through this pointer and may outlive the object: a continuation it
  // runs may destroy the runtime (the destructor then begins the teardown and returns).
  uvrt::runtime* rt = c.owned.get();
  thread_phase[c.thread] = "shutdown: submitting";
  for (int i = 0; i < c.n_jobs; ++i) submit_cpp(c, *rt);
  if (c.destroy_in_shutdown && !c.recs.empty()) c.recs[static_cast<std::size_t>(c.gen->below(c.recs.size()))].destroys_runtime = true;
  // Usually some jobs are running at the call, not only queued: it waits (5 ms at most) for two
  // to start. That shapes the mix only; whatever is in flight, the counts must add up.
  if (c.gen->chance(70)) {
    const auto until = clock_type::now() + std::chrono::milliseconds(5);
    auto started = [&c] {
      int n = 0;
      for (auto& r : c.recs) n += r.ran.load() > 0;
      return n;
    };
    while (started() < std::min<int>(2, static_cast<int>(c.recs.size())) && clock_type::now() < until)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  std::uint64_t in_flight = 0;
  for (auto& r : c.recs) {
    r.torn = true;
    if (r.submitted && r.settled == 0) ++in_flight;
  }
  thread_phase[c.thread] = "shutdown";
  uvrt::shutdown_result res;
  try {
    res = rt->shutdown(c.shutdown_timeout);
  } catch (const std::exception& e) {
    violation(c.where(), std::string("shutdown() threw: ") + e.what());
  }
  ++c.st->shutdowns;
  if (c.destroy_in_shutdown) ++c.st->shutdown_destroyed_inside;
  c.st->shutdown_in_flight += in_flight;
  c.st->shutdown_cancelled += res.cancelled;
  c.st->shutdown_finished += res.finished;
  c.st->shutdown_abandoned += res.abandoned;
  const std::string counts = "shutdown() returned {cancelled " + std::to_string(res.cancelled) + ", finished " +
                             std::to_string(res.finished) + ", abandoned " + std::to_string(res.abandoned) + "}";
  if (res.cancelled + res.finished + res.abandoned != in_flight)
    violation(c.where(), counts + ", which does not add up to the " + std::to_string(in_flight) + " jobs in flight at the call");
  for (auto& r : c.recs)
    if (r.settled == 0) violation(c.where(r), "not settled when shutdown() returned: every continuation has run by then");
  thread_phase[c.thread] = "shutdown: destroying";
  c.owned.reset();  // unless a continuation did; it does not wait for abandoned jobs
  if (c.embedded) {
    uv_run(&c.app_loop, UV_RUN_DEFAULT);  // the application's loop gets abandoned jobs back
    const int rc = uv_loop_close(&c.app_loop);
    if (rc != 0) violation(c.where(), std::string("uv_loop_close on the application's loop: ") + uv_err_name(rc));
  }
  thread_phase[c.thread] = "shutdown: waiting for abandoned jobs";
  if (!wait_until_all_destroyed(c)) {
    violation(c.where(), "abandoned jobs' callables or results were still not destroyed after 30 s");
    return;
  }
  // Every job is over now: each settled as shutdown counted it.
  std::uint64_t never_ran = 0, own = 0, abandoned = 0;
  for (auto& r : c.recs) {
    if (r.ran.load() == 0) ++never_ran;
    else if (r.outcome == got::cancelled) ++abandoned;
    else ++own;
  }
  if (never_ran != res.cancelled || own != res.finished || abandoned != res.abandoned)
    violation(c.where(), counts + ", but " + std::to_string(never_ran) + " jobs never ran, " + std::to_string(own) +
                             " settled with their own outcome and " + std::to_string(abandoned) + " ran and settled cancelled");
}

// ---------------------------------------------------------------------------------------------
// Forked children

constexpr unsigned child_alarm_seconds = 20;

// In a forked child: reports on stderr with write(2) alone (another thread of the parent may have
// held a stdio lock or the report's mutex at the fork) and gives the exit status.
int child_fails(const std::string& what) {
  const std::string line = "stress: forked child " + std::to_string(getpid()) + ": " + what + "\n";
  (void)!write(2, line.data(), line.size());
  return 1;
}

template <class F>
bool throws_usage_error(F&& f) {
  try {
    f();
  } catch (const uvrt::usage_error&) {
    return true;
  } catch (...) {
  }
  return false;
}

// The child's own runtime: a pool of its own starts, and jobs run and give their values.
int child_runs_a_new_runtime() {
  uvrt::runtime fresh(uvrt::options{.threadpool_size = cfg.pool});
  std::vector<uvrt::future<int>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(fresh.to_thread([i] { return 7 * i + 1; }));
  for (int i = 0; i < 4; ++i) {
    const int v = fresh.block_on(std::move(fs[static_cast<std::size_t>(i)]));
    if (v != 7 * i + 1) return child_fails("job " + std::to_string(i) + " of a new runtime gave " + std::to_string(v));
  }
  // Its loop operations: a spawned task awaiting when_all of jobs and a sleep, under a timeout.
  auto sum = [](uvrt::runtime& rt) -> uvrt::task<int> {
    auto [a, nothing, b] = co_await uvrt::when_all(rt.to_thread([] { return 20; }), rt.sleep_for(std::chrono::milliseconds(1)),
                                                   rt.to_thread([] { return 22; }));
    (void)nothing;
    co_return a + b;
  };
  const int v = fresh.block_on(uvrt::timeout(fresh.spawn(sum(fresh)), std::chrono::seconds(10)));
  if (v != 42) return child_fails("a spawned task of a new runtime gave " + std::to_string(v) + ", expected 42");
  return 0;
}

// The inherited runtime's loop shares its epoll instance and eventfds with the parent's, and its
// jobs exist only in the parent: only its destructor may be called, and it returns at once
// without turning that loop.
int child_of_cpp(std::optional<uvrt::runtime>& inherited) {
  if (!throws_usage_error([&] { (void)inherited->to_thread([] { return 0; }); }))
    return child_fails("to_thread on the runtime inherited through fork() did not throw usage_error");
  if (!throws_usage_error([&] { inherited->run(); }))
    return child_fails("run() on the runtime inherited through fork() did not throw usage_error");
  if (!throws_usage_error([&] { (void)inherited->shutdown(std::chrono::seconds(0)); }))
    return child_fails("shutdown() on the runtime inherited through fork() did not throw usage_error");
  if (!throws_usage_error([&] { (void)inherited->sleep_for(std::chrono::milliseconds(1)); }))
    return child_fails("sleep_for on the runtime inherited through fork() did not throw usage_error");
  if (!throws_usage_error([&] { (void)inherited->spawn([]() -> uvrt::task<int> { co_return 1; }()); }))
    return child_fails("spawn on the runtime inherited through fork() did not throw usage_error");
  const auto t0 = clock_type::now();
  inherited.reset();
  if (const auto took = clock_type::now() - t0; took > std::chrono::seconds(1))
    return child_fails("destroying the inherited runtime took " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms");
  return child_runs_a_new_runtime();
}

struct child_slot {
  int calls = 0;
  int status = 1;
  void* result = nullptr;
};
int child_work(uvrt_job_t*, void* arg, void** result) {
  *result = arg;
  return 0;
}
void child_done(uvrt_job_t*, int status, void* result, void* arg) {
  auto* s = static_cast<child_slot*>(arg);
  ++s->calls;
  s->status = status;
  s->result = result;
}

int child_of_c(uvrt_runtime_t* inherited) {
  int rc = uvrt_job_submit(inherited, nullptr, &child_work, nullptr, nullptr);
  if (rc != UVRT_EFORKED) return child_fails(std::string("uvrt_job_submit on the inherited runtime returned ") + uvrt_err_name(rc) + ", expected UVRT_EFORKED");
  rc = uvrt_runtime_run(inherited);
  if (rc != UVRT_EFORKED) return child_fails(std::string("uvrt_runtime_run on the inherited runtime returned ") + uvrt_err_name(rc) + ", expected UVRT_EFORKED");
  const auto t0 = clock_type::now();
  rc = uvrt_runtime_destroy(inherited);
  if (rc != 0) return child_fails(std::string("uvrt_runtime_destroy of the inherited runtime returned ") + uvrt_err_name(rc));
  if (const auto took = clock_type::now() - t0; took > std::chrono::seconds(1))
    return child_fails("destroying the inherited runtime took " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms");
  uvrt_runtime_t* fresh = nullptr;
  uvrt_options_t opts{};
  opts.threadpool_size = cfg.pool;
  if ((rc = uvrt_runtime_create(&fresh, &opts)) != 0) return child_fails(std::string("uvrt_runtime_create: ") + uvrt_err_name(rc));
  child_slot slots[4];
  for (auto& s : slots)
    if ((rc = uvrt_job_submit(fresh, nullptr, &child_work, &child_done, &s)) != 0)
      return child_fails(std::string("uvrt_job_submit to a new runtime: ") + uvrt_err_name(rc));
  if ((rc = uvrt_runtime_run(fresh)) != 0) return child_fails(std::string("uvrt_runtime_run of a new runtime: ") + uvrt_err_name(rc));
  for (auto& s : slots)
    if (s.calls != 1 || s.status != 0 || s.result != &s)
      return child_fails("a job of a new runtime: done ran " + std::to_string(s.calls) + " times, status " + uvrt_err_name(s.status));
  if ((rc = uvrt_runtime_destroy(fresh)) != 0) return child_fails(std::string("uvrt_runtime_destroy of a new runtime: ") + uvrt_err_name(rc));
  return 0;
}

// Forks while this thread's runtime has work in flight and other threads' runtimes run; the
// child runs `child` under a watchdog (alarm) and _exit()s with its status, which must be 0.
template <class Child>
void fork_child(round_ctx& c, Child&& child) {
  thread_phase[c.thread] = "forking";
  const pid_t pid = fork();
  if (pid < 0) {
    violation(c.where(), std::string("fork: ") + std::strerror(errno));
    return;
  }
  if (pid == 0) {
    alarm(child_alarm_seconds);  // SIGALRM's default action ends a child that hangs
    int status;
    try {
      status = child();
    } catch (const std::exception& e) {
      status = child_fails(std::string("threw ") + typeid(e).name() + ": " + e.what());
    } catch (...) {
      status = child_fails("threw something that is not a std::exception");
    }
    _exit(status);
  }
  ++c.st->forks;
  thread_phase[c.thread] = "waiting for the forked child";
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (w < 0) violation(c.where(), std::string("waitpid: ") + std::strerror(errno));
  else if (WIFSIGNALED(status))
    violation(c.where(), "the forked child was killed by signal " + std::to_string(WTERMSIG(status)) +
                             (WTERMSIG(status) == SIGALRM ? " (its watchdog: it hung)" : ""));
  else if (WEXITSTATUS(status) != 0)
    violation(c.where(), "the forked child exited with status " + std::to_string(WEXITSTATUS(status)) + " (its reason is above)");
}

// ---------------------------------------------------------------------------------------------
// Checks, once the round's runtime is gone

void verify_cpp(round_ctx& c, record& r) {
  stats& st = *c.st;
  const int ran = r.ran.load();
  const bool torn = c.teardown || r.torn;
  auto bad = [&](const std::string& what) { violation(c.where(r), what); };

  if (r.k == kind::detached) {
    ++st.detached;
    st.detached_ran += static_cast<std::uint64_t>(ran);
    if (ran == 0 && !torn) bad("never ran, though its runtime was drained (a dropped future must not cancel)");
    return;
  }
  if (r.settled != 1) {
    ++st.lost;
    bad("settled " + std::to_string(r.settled) + " times, expected exactly once");
    if (r.settled == 0) return;
  }
  // It stopped waiting for its stop because the run was failing already: its outcome is moot.
  if (r.gave_up.load()) return;
  switch (r.outcome) {
    case got::value: ++st.values; break;
    case got::stress_exc:
    case got::plain_exc: ++st.exceptions; break;
    case got::cancelled: ++st.cancelled; break;
    default: break;
  }
  switch (r.how) {
    case via::task_ref:
    case via::task_owned:
    case via::task_nested: ++st.by_task; break;
    case via::then: ++st.by_then; break;
    case via::driver: ++st.by_driver; break;
    case via::later: ++st.by_later; break;
    case via::now: ++st.by_now; break;
    default: break;
  }

  // The job's own outcome, as it must reach the future when it is not cancelled.
  got own = got::value;
  std::uint64_t own_value = value_of(r.id, false);
  std::string own_msg;
  if (r.k == kind::throws) {
    own = r.plain_throw ? got::plain_exc : got::stress_exc;
    own_msg = r.plain_throw ? "" : failed_text(r.id);
  } else if (r.k == kind::stop_poll || r.k == kind::cancel_running || r.k == kind::abandon_running) {
    own = r.throws_on_stop ? got::stress_exc : got::value;
    own_value = value_of(r.id, true);
    own_msg = r.throws_on_stop ? stopped_text(r.id) : "";
  }
  auto expect_own = [&] {
    if (r.outcome != own) {
      bad(std::string("settled with ") + name_of(r.outcome) + (r.msg.empty() ? "" : " (" + r.msg + ")") +
          ", expected its own outcome, " + name_of(own));
      return;
    }
    if (own == got::value && (r.value != own_value || r.value_owner != c.thread))
      bad("settled with value " + std::to_string(r.value) + " (owner " + std::to_string(r.value_owner) +
          "), expected " + std::to_string(own_value));
    if ((own == got::stress_exc || own == got::plain_exc) && r.err_id != r.id)
      bad("its exception carries the id of job " + id_text(r.err_id));
    if (own == got::stress_exc && r.msg != own_msg) bad("its exception says \"" + r.msg + "\", expected \"" + own_msg + "\"");
  };
  auto expect_cancelled = [&](const char* why) {
    if (r.outcome != got::cancelled)
      bad(std::string("settled with ") + name_of(r.outcome) + (r.msg.empty() ? "" : " (" + r.msg + ")") +
          ", expected cancelled_error: " + why);
  };

  if (ran > 1) bad("its callable ran " + std::to_string(ran) + " times");
  if (!r.worker_note.empty()) bad(r.worker_note);
  if (r.settled_inside_cancel) bad("its consumer ran inside cancel(), not later from the loop");

  const bool stop_kind = r.k == kind::stop_poll || r.k == kind::cancel_running || r.k == kind::abandon_running;
  if (stop_kind && ran == 1 && !r.saw_stop.load() && !r.timed_out.load()) bad("it ran but never saw its stop token requested");
  if ((r.k == kind::cancel_running || r.k == kind::abandon_running) && ran == 1) {
    if (!r.cancel_called) bad("it signalled that it started, but the loop never served its from_thread call");
    else if (!r.stop_after_signal.load()) bad("its token was not stop-requested when from_thread returned after cancel()");
  }

  if (r.k == kind::cancel_queued || r.k == kind::abandon_queued) {
    ++st.at_once_tried;
    if (r.cres == uvrt::cancel_result::not_started) ++st.at_once_queued;
  }
  if (r.cancel_called) {
    using uvrt::cancel_result;
    const bool abandon = r.cmode == uvrt::cancel_mode::abandon;
    if (r.k == kind::cancel_running && r.cres != cancel_result::stop_requested)
      bad(std::string("cancel() on a running job returned ") + uvrt::to_string(r.cres) + ", expected stop_requested");
    if (r.k == kind::abandon_running && r.cres != cancel_result::abandoned)
      bad(std::string("cancel(abandon) on a running job returned ") + uvrt::to_string(r.cres) + ", expected abandoned");
    // Asked again at once: the first answer again, or already_settled once abandon settled it.
    const cancel_result again = abandon ? cancel_result::already_settled : r.cres;
    if (r.cancelled_twice && r.cres2 != again)
      bad(std::string("a second cancel() returned ") + uvrt::to_string(r.cres2) + " after " + uvrt::to_string(r.cres) +
          ", expected " + uvrt::to_string(again));
    switch (r.cres) {
      case cancel_result::not_started:
        ++(abandon ? st.abandoned_queued : st.cancelled_queued);
        expect_cancelled("cancel() returned not_started");
        if (ran != 0) bad("cancel() returned not_started, yet its callable ran");
        if (abandon && !r.ready_after_cancel) bad("cancel(abandon) returned not_started but the future was not settled at once");
        if (!abandon && r.ready_after_cancel) bad("cancel() returned not_started and the future settled inside cancel(), not from the loop");
        break;
      case cancel_result::stop_requested:
        ++st.stop_requested;
        if (abandon) bad("cancel(abandon) returned stop_requested");
        if (ran != 1) bad("cancel() returned stop_requested, yet its callable ran " + std::to_string(ran) + " times");
        expect_own();
        break;
      case cancel_result::abandoned:
        ++st.abandoned_running;
        if (!abandon) bad("cancel(wait) returned abandoned");
        if (!r.ready_after_cancel) bad("cancel(abandon) returned abandoned but the future was not settled at once");
        if (ran != 1) bad("cancel(abandon) returned abandoned, yet its callable ran " + std::to_string(ran) + " times");
        expect_cancelled("cancel(abandon) returned abandoned");
        break;
      case cancel_result::already_settled:
        bad("cancel() returned already_settled for a job that could not have settled yet");
        break;
    }
  } else if (ran == 0) {
    if (!torn) bad("never ran and was never cancelled, though its runtime was drained");
    else ++st.teardown_cancelled;
    expect_cancelled("it was still queued when its runtime was destroyed");
  } else {
    if (stop_kind) {
      if (!torn) bad("it waited for a stop that only teardown could give, but its runtime was drained");
      else ++st.teardown_stopped;
    }
    // shutdown(timeout) abandoned it: it ran, its future settled as cancelled at the timeout.
    if (c.mode == shape::shutdown && r.outcome == got::cancelled) return;
    expect_own();
  }
}

void verify_c(round_ctx& c, record& r) {
  stats& st = *c.st;
  const int ran = r.ran.load();
  const bool torn = c.teardown || r.torn;
  auto bad = [&](const std::string& what) { violation(c.where(r), what); };
  if (r.settled != 1) {
    ++st.lost;
    bad("its done callback ran " + std::to_string(r.settled) + " times, expected exactly once");
    if (r.settled == 0) return;
  }
  if (r.gave_up.load()) return;
  ++st.by_done;
  if (ran > 1) bad("its work function ran " + std::to_string(ran) + " times");
  if (r.settled_inside_cancel) bad("its done callback ran inside uvrt_job_cancel");
  if (!r.same_handle_in_done) bad("the done callback got another handle than uvrt_job_submit gave");
  if (r.cancel_in_done_rc != 1 && r.cancel_in_done_rc != UVRT_EALREADY)
    bad(std::string("uvrt_job_cancel inside its done callback returned ") + uvrt_err_name(r.cancel_in_done_rc) +
        ", expected UVRT_EALREADY");
  const bool stop_kind = r.k == kind::c_stop_poll || r.k == kind::c_cancel_running;
  if (stop_kind && ran == 1 && !r.saw_stop.load() && !r.timed_out.load()) bad("it ran but never saw uvrt_job_stop_requested return 1");

  if (r.status == 0) ++st.values;
  else if (r.status == UVRT_ECANCELED) ++st.cancelled;
  else ++st.exceptions;

  auto status_text = [](int s) { return std::string(uvrt_err_name(s)) + " (" + std::to_string(s) + ")"; };
  auto expect_own = [&] {
    switch (r.k) {
      case kind::c_fail:
        if (r.status != fail_code(r.id)) bad("status " + status_text(r.status) + ", expected " + std::to_string(fail_code(r.id)));
        else if (!r.has_msg || r.msg != failed_text(r.id)) bad("message \"" + r.msg + "\", expected \"" + failed_text(r.id) + "\"");
        if (r.result) bad("a result pointer though the work function stored none");
        break;
      case kind::c_throw:
        if (r.status != UVRT_EEXCEPTION) bad("status " + status_text(r.status) + ", expected UVRT_EEXCEPTION");
        else if (!r.has_msg) bad("no message for a C++ exception");
        else if (!r.plain_throw && r.msg != failed_text(r.id)) bad("message \"" + r.msg + "\", expected the exception's what()");
        break;
      case kind::c_stop_poll:
      case kind::c_cancel_running:
        if (r.status != c_stopped) bad("status " + status_text(r.status) + ", expected " + std::to_string(c_stopped));
        break;
      default:
        if (r.status != 0) bad("status " + status_text(r.status) + ", expected 0");
        else if (r.result != &r) bad("the result pointer is not the one the work function stored");
        if (r.has_msg) bad("a message (\"" + r.msg + "\") for a job that did not fail");
        break;
    }
  };
  auto expect_cancelled = [&](const char* why) {
    if (r.status != UVRT_ECANCELED) bad("status " + status_text(r.status) + ", expected UVRT_ECANCELED: " + why);
    if (r.result) bad("a result pointer for a job that never ran");
  };

  if (r.k == kind::c_cancel_queued) {
    ++st.at_once_tried_c;
    if (r.cancel_rc == 0) ++st.at_once_queued_c;
  }
  if (r.cancel_called) {
    if (r.k == kind::c_cancel_queued && r.cancel_rc2 != r.cancel_rc)
      bad("a second uvrt_job_cancel returned " + status_text(r.cancel_rc2) + ", the first " + status_text(r.cancel_rc));
    if (r.cancel_rc == 0) {
      ++st.cancelled_queued;
      if (r.k == kind::c_cancel_running) bad("uvrt_job_cancel returned 0 for a job that had signalled it runs");
      if (ran != 0) bad("uvrt_job_cancel returned 0, yet its work function ran");
      expect_cancelled("uvrt_job_cancel returned 0");
    } else if (r.cancel_rc == UVRT_EBUSY) {
      ++st.stop_requested;
      if (ran != 1) bad("uvrt_job_cancel returned UVRT_EBUSY, yet its work function ran " + std::to_string(ran) + " times");
      expect_own();
    } else if (r.cancel_rc == UVRT_EALREADY && r.k == kind::c_cancel_running && torn) {
      // Teardown stopped it, and its done callback ran before the loop saw its started signal.
      ++st.teardown_stopped;
      expect_own();
    } else {
      bad("uvrt_job_cancel returned " + status_text(r.cancel_rc));
    }
  } else if (ran == 0) {
    if (!torn) bad("never ran and was never cancelled, though its runtime was drained");
    else {
      ++st.teardown_cancelled;
      ++st.teardown_cancelled_c;
    }
    expect_cancelled("it was still queued when its runtime was destroyed");
  } else {
    if (stop_kind) {
      if (!torn) bad("it waited for a stop that only teardown could give, but its runtime was drained");
      else ++st.teardown_stopped;
    }
    // In a teardown round the done callback and the started signal may reach the loop in either
    // order, and the signal may come last, when the application's loop no longer serves it.
    if (r.k == kind::c_cancel_running && !torn) bad("it signalled that it started, but the loop never cancelled it");
    expect_own();
  }
}

// What a loop operation (other than a combinator) may settle with. `hit`: a cancellation may have
// reached it (its runtime was torn down, or an operation above it was cancelled).
struct expected_outcomes {
  struct value_from {
    std::uint64_t v;
    const record* job;  // the job whose own value it is, or null
  };
  struct failure {
    got g;
    std::uint64_t id;
    std::string msg;  // stress_error's; plain_failure has none
  };
  std::vector<value_from> values;
  std::vector<failure> failures;
  bool monostate = false;  // a sleep's value
  bool timed_out = false;
  bool cancelled = false;
  bool closed = false;

  void add_failures_of(const expected_outcomes& o) {
    failures.insert(failures.end(), o.failures.begin(), o.failures.end());
    timed_out = timed_out || o.timed_out;
    cancelled = cancelled || o.cancelled;
    closed = closed || o.closed;
  }
  // The job's own outcome, or the one it gives once asked to stop.
  void add_job(const record& j, bool stopped) {
    if (!stopped) {
      if (j.k == kind::throws) failures.push_back({j.plain_throw ? got::plain_exc : got::stress_exc, j.id, j.plain_throw ? "" : failed_text(j.id)});
      else values.push_back({value_of(j.id, false), &j});
    } else if (j.throws_on_stop) {
      failures.push_back({got::stress_exc, j.id, stopped_text(j.id)});
    } else {
      values.push_back({value_of(j.id, true), &j});
    }
  }
  const value_from* find_value(std::uint64_t v) const {
    for (const value_from& x : values)
      if (x.v == v) return &x;
    return nullptr;
  }
  bool allows_failure(got g, std::uint64_t id, const std::string& msg) const {
    switch (g) {
      case got::timed_out: return timed_out;
      case got::cancelled: return cancelled;
      case got::closed: return closed;
      case got::stress_exc:
      case got::plain_exc:
        for (const failure& f : failures)
          if (f.g == g && f.id == id && (g == got::plain_exc || f.msg == msg)) return true;
        return false;
      default: return false;
    }
  }
  std::string describe() const {
    std::string s;
    auto add = [&](const std::string& x) { s += (s.empty() ? "" : ", ") + x; };
    for (const value_from& x : values) add("value " + std::to_string(x.v));
    if (monostate) add("void");
    for (const failure& f : failures) add(std::string(name_of(f.g)) + " of job " + id_text(f.id));
    if (timed_out) add("timeout_error");
    if (cancelled) add("cancelled_error");
    if (closed) add("runtime_closed_error");
    return s.empty() ? "nothing" : s;
  }
};

expected_outcomes expect_of(const op_rec& o, bool hit, bool torn) {
  expected_outcomes e;
  switch (o.k) {
    case op_kind::job:
      if (!waits_for_stop(o.job->k)) e.add_job(*o.job, false);
      else if (hit) e.add_job(*o.job, true);
      e.cancelled = hit;
      return e;
    case op_kind::timed:
      // Its job's outcome within the limit; after it, timeout_error, even when the job then
      // settles within the grace period. A teardown stops the job and settles the timeout.
      if (!waits_for_stop(o.job->k)) e.add_job(*o.job, false);
      else if (torn) e.add_job(*o.job, true);
      e.timed_out = true;
      e.cancelled = hit;
      return e;
    case op_kind::sleep:
      e.monostate = true;
      e.cancelled = hit;
      return e;
    case op_kind::task_job:
    case op_kind::task_nested:
      // A stop-waiting job ends only when the task's cancellation stops it: the task then sees
      // cancelled_error, not the job's outcome.
      if (!waits_for_stop(o.job->k)) e.add_job(*o.job, false);
      break;
    case op_kind::task_ready:  // settled when spawn returned: nothing reaches it
      e.values.push_back({slept_value(o.id), nullptr});
      return e;
    case op_kind::task_sleep:
    case op_kind::task_orphan: e.values.push_back({slept_value(o.id), nullptr}); break;
    case op_kind::task_chain: e = expect_of(*o.kids[0], hit, torn); break;
    default: return e;  // combinators: verify_op
  }
  if (hit) {  // the task's co_await threw cancelled_error
    e.cancelled = true;
    if (o.catches) e.values.push_back({caught_value(o.id), nullptr});
    if (o.again && torn) e.closed = true;  // its second sleep, during the teardown
  }
  return e;
}

void verify_inner(round_ctx& c, record& r) {
  const int ran = r.ran.load();
  auto bad = [&](const std::string& what) { violation(c.where(r), what); };
  if (ran > 1) bad("its callable ran " + std::to_string(ran) + " times");
  if (!r.worker_note.empty()) bad(r.worker_note);
  if (r.gave_up.load()) return;
  if (waits_for_stop(r.k) && ran == 1 && !r.saw_stop.load() && !r.timed_out.load()) bad("it ran but never saw its stop token requested");
  if (r.k == kind::cancel_running && ran == 1) {
    if (!r.started_seen) bad("it signalled that it started, but the loop never served its from_thread call");
    // The cancel of the operation reaches the job at once, or an earlier one did (a failure in
    // when_all, a winner in when_any, an expired timeout).
    else if (!c.teardown && !r.stop_after_signal.load()) bad("its token was not stop-requested when from_thread returned after its operation's cancel()");
  }
}

void check_op_value(round_ctx& c, const op_rec& o, const expected_outcomes& e, std::size_t i, const std::string& what) {
  auto bad = [&](const std::string& x) { violation(c.where(o), x); };
  if (i >= o.values.size()) {
    bad(what + ": no value");
    return;
  }
  const expected_outcomes::value_from* x = e.find_value(o.values[i]);
  if (!x) bad(what + " is " + std::to_string(o.values[i]) + ", expected one of: " + e.describe());
  else if (x->job && x->job->ran.load() != 1) bad(what + " is job " + id_text(x->job->id) + "'s value, yet it ran " + std::to_string(x->job->ran.load()) + " times");
}

// A top-level operation, once the round's runtime is gone.
void verify_op(round_ctx& c, op_rec& o) {
  stats& st = *c.st;
  auto bad = [&](const std::string& what) { violation(c.where(o), what); };
  const bool torn = c.teardown;
  using uvrt::cancel_result;
  if (o.how == op_via::dropped) {
    ++st.op_dropped;
    if (o.settled != 0) bad("its future was dropped, yet it was observed");
    return;
  }
  if (o.settled != 1) {
    ++st.lost;
    bad("settled " + std::to_string(o.settled) + " times, expected exactly once");
    if (o.settled == 0) return;
  }
  // A job inside stopped waiting for its stop because the run was failing already: moot.
  bool gave_up = false;
  for_each_job(o, [&](record& j, bool) { gave_up = gave_up || j.gave_up.load(); });
  if (gave_up) return;
  switch (o.outcome) {
    case got::value: ++st.op_values; break;
    case got::cancelled: ++st.op_cancelled; break;
    case got::timed_out: ++st.op_timeouts_fired; ++st.op_failures; break;
    case got::closed: ++st.op_closed; ++st.op_failures; break;
    default: ++st.op_failures; break;
  }
  // A spawned task resumes, and when_all settles, only once what it awaits has settled (a
  // cancellation with wait included): its jobs have returned, or were cancelled while queued and
  // never run. (Not below a timeout, nor in when_any, which drop what they no longer wait for.)
  const bool awaits_its_jobs = !torn && !(o.cancel_called && o.cres == cancel_result::abandoned) &&
                               (o.k == op_kind::task_job || o.k == op_kind::task_nested || o.k == op_kind::task_chain ||
                                o.k == op_kind::all_vec || o.k == op_kind::all_tuple);
  if (awaits_its_jobs)
    for_each_job(o, [&](record& j, bool timed) {
      if (timed || !j.submitted || j.ran_at_op_settle < 0) return;
      if (j.ran_at_op_settle > 0 && !j.finished_at_op_settle)
        bad("its job " + id_text(j.id) + " (" + name_of(j.k) + ") was still running when its future was read");
      else if (j.ran_at_op_settle == 0 && j.ran.load() > 0)
        bad("its job " + id_text(j.id) + " (" + name_of(j.k) + ") started after its future was read");
    });
  const std::string got_text = std::string(name_of(o.outcome)) + (o.msg.empty() ? "" : " (" + o.msg + ")");
  if (o.ready_when_made && !may_be_ready_at_once(o)) bad("it had settled when the call that made it returned");
  if (!o.ready_when_made && must_be_ready_at_once(o)) bad("its inputs had all settled, yet it had not when the call that made it returned");
  if (o.foreign_value) bad("its value belongs to another thread");
  if (o.settled_inside_cancel) bad("its consumer ran inside cancel(), not later from the loop");
  const auto elapsed = o.observed_at - o.created;

  if (o.cancel_called) {
    ++st.op_cancel_calls;
    const bool abandon = o.mode == uvrt::cancel_mode::abandon;
    const bool sleep = o.k == op_kind::sleep;
    const cancel_result pending = sleep ? cancel_result::not_started : abandon ? cancel_result::abandoned : cancel_result::stop_requested;
    if (o.cres != pending && o.cres != cancel_result::already_settled)
      bad(std::string("cancel() returned ") + uvrt::to_string(o.cres) + ", expected " + uvrt::to_string(pending) + " or already_settled");
    if (o.when == op_when::at_once && o.cres == cancel_result::already_settled && !may_be_ready_at_once(o))
      bad("cancel() right after it was made returned already_settled");
    if (o.cancelled_twice) {
      const bool settled_by_first = sleep || abandon || o.cres == cancel_result::already_settled;
      if (o.cres2 != cancel_result::already_settled && (settled_by_first || o.cres2 != o.cres))
        bad(std::string("a second cancel() returned ") + uvrt::to_string(o.cres2) + " after " + uvrt::to_string(o.cres));
    }
    if (o.cres != cancel_result::already_settled) {
      ++st.op_cancel_effective;
      if ((abandon || sleep) && !o.ready_after_cancel) bad(std::string("cancel() returned ") + uvrt::to_string(o.cres) + " but the future was not settled at once");
      if (is_spawned(o.k) && !abandon) {
        // The cancellation reached what the task awaited: its co_await threw cancelled_error.
        ++st.op_task_cancels;
        if (!torn && o.caught != o.catches)
          bad(o.catches ? "cancel() returned stop_requested, but the task never caught cancelled_error"
                        : "the task caught a cancelled_error it was not planned to catch");
        const bool ok = o.catches ? (o.outcome == got::value && o.values.size() == 1 && o.values[0] == caught_value(o.id))
                                  : o.outcome == got::cancelled;
        if (!ok && !(torn && (o.outcome == got::cancelled || (o.again && o.outcome == got::closed))))
          bad("cancel() returned stop_requested; it settled with " + got_text +
              (o.outcome == got::value && !o.values.empty() ? " " + std::to_string(o.values[0]) : "") +
              (o.catches ? ", expected the task's own value " + std::to_string(caught_value(o.id)) : ", expected cancelled_error"));
      } else if (o.outcome != got::cancelled) {
        bad(std::string("cancel() returned ") + uvrt::to_string(o.cres) + "; it settled with " + got_text + ", expected cancelled_error");
      }
      return;
    }
  }

  // Not cancelled by the loop (or cancelled once settled already): the outcome its inputs allow.
  if (!is_combinator(o.k)) {
    const expected_outcomes e = expect_of(o, torn, torn);
    if (o.outcome == got::value) {
      if (e.monostate) {
        if (!o.values.empty()) bad("a sleep settled with a value");
      } else {
        check_op_value(c, o, e, 0, "its value");
      }
    } else if (!e.allows_failure(o.outcome, o.err_id, o.msg)) {
      bad("settled with " + got_text + (o.err_id ? " of job " + id_text(o.err_id) : "") + ", expected one of: " + e.describe());
    }
    // Never early.
    const bool slept = (o.k == op_kind::sleep && o.outcome == got::value) ||
                       (gives_slept_value(o.k) && o.outcome == got::value && !o.values.empty() && o.values[0] == slept_value(o.id));
    if (slept && elapsed < o.delay)
      bad("its sleep of " + std::to_string(o.delay.count()) + " us ended after " +
          std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()) + " us");
    if (o.k == op_kind::timed && o.outcome == got::timed_out && elapsed < o.limit)
      bad("timeout_error after " + std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()) +
          " us, before its limit");
    return;
  }

  std::vector<expected_outcomes> kids;
  expected_outcomes failures;
  for (const op_rec* k : o.kids) {
    kids.push_back(expect_of(*k, torn, torn));
    failures.add_failures_of(kids.back());
  }
  if (o.outcome != got::value) {
    if (!failures.allows_failure(o.outcome, o.err_id, o.msg))
      bad("settled with " + got_text + (o.err_id ? " of job " + id_text(o.err_id) : "") +
          ", expected a value or one of its inputs' failures: " + failures.describe());
    return;
  }
  // A sleep among the inputs that gave its value: it ended, and the combinator after it.
  const op_rec* slowest = nullptr;
  auto slept = [&](const op_rec& k) {
    if (!slowest || k.created + k.delay > slowest->created + slowest->delay) slowest = &k;
  };
  if (o.k == op_kind::any_vec) {
    if (o.index >= o.kids.size()) {
      bad("when_any's index " + std::to_string(o.index) + " is out of range");
      return;
    }
    check_op_value(c, o, kids[o.index], 0, "the value of input " + std::to_string(o.index));
    const op_rec& w = *o.kids[o.index];
    if (gives_slept_value(w.k) && !o.values.empty() && o.values[0] == slept_value(w.id)) slept(w);
  } else {
    const std::size_t n = o.k == op_kind::all_tuple ? 2 : o.kids.size();
    if (o.values.size() != n) bad("when_all gave " + std::to_string(o.values.size()) + " values, expected " + std::to_string(n));
    for (std::size_t i = 0, v = 0; i < o.kids.size(); ++i) {
      const op_rec& k = *o.kids[i];
      if (k.k == op_kind::sleep) {
        slept(k);
        continue;
      }
      if (gives_slept_value(k.k) && v < o.values.size() && o.values[v] == slept_value(k.id)) slept(k);
      check_op_value(c, o, kids[i], v, "value " + std::to_string(v));
      ++v;
    }
  }
  if (slowest && o.observed_at - slowest->created < slowest->delay)
    bad("settled " + std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(o.observed_at - slowest->created).count()) +
        " us after its input " + id_text(slowest->id) + " began a sleep of " + std::to_string(slowest->delay.count()) + " us");
}

// Every operation of the round: the top-level ones' outcomes, and every spawned task's body.
void verify_ops(round_ctx& c) {
  for (op_rec& o : c.ops) {
    if (!o.started) continue;
    if (is_spawned(o.k)) {
      if (o.caught) ++c.st->op_tasks_caught;
      if (o.body_runs != 1) violation(c.where(o), "its body began " + std::to_string(o.body_runs) + " times");
      else if (!o.body_done) violation(c.where(o), "its body never ran to its end");
    }
    if (!o.parent) verify_op(c, o);
  }
  for (auto& f : c.consumers) {
    if (!f.valid() || !f.ready()) {
      violation(c.where(), "a spawned task consuming an operation's future never finished");
      continue;
    }
    try {
      f.get();
    } catch (const std::exception& e) {
      violation(c.where(), std::string("a spawned task consuming an operation's future failed: ") + e.what());
    }
  }
  c.consumers.clear();
}

void verify(round_ctx& c) {
  for (auto& r : c.recs) {
    if (!r.submitted) continue;
    c.st->ran += static_cast<std::uint64_t>(r.ran.load());
    if (r.how == via::inner) verify_inner(c, r);
    else if (is_c(r.k)) verify_c(c, r);
    else verify_cpp(c, r);
  }
  verify_ops(c);
  if (c.spawned_live != 0)
    violation(c.where(), std::to_string(c.spawned_live) + " consumer coroutines never finished");
  if (const auto live = result_count[c.thread].live(); live != 0)
    violation(c.where(), std::to_string(live) + " job results were never destroyed (or destroyed twice if negative)");
  if (const auto live = witness_count[c.thread].live(); live != 0)
    violation(c.where(), std::to_string(live) + " callables or continuations were never destroyed (or twice if negative)");
}

// ---------------------------------------------------------------------------------------------
// Threads

bool time_left() {
  if (cfg.seconds <= 0) return true;
  return std::chrono::duration<double>(clock_type::now() - started_at).count() < cfg.seconds;
}

void thread_main(int t) {
  rng gen{cfg.seed ^ (0xd1b54a32d192ed03ull * static_cast<std::uint64_t>(t + 1))};
  rng op_gen{~cfg.seed ^ (0x8cb92ba72f3d8dd7ull * static_cast<std::uint64_t>(t + 1))};
  stats st;
  std::uint64_t seq = 0;
  const long rounds = cfg.rounds >= 0 ? cfg.rounds : (cfg.seconds > 0 ? -1 : default_rounds);
  for (long round = 0; (rounds < 0 || round < rounds) && time_left() && (cfg.keep_going || !failing.load()); ++round) {
    thread_round[t] = round;
    round_ctx c;
    c.thread = t;
    c.round = round;
    c.gen = &gen;
    c.op_gen = &op_gen;
    c.st = &st;
    c.next_seq = &seq;
    c.c_api = gen.chance(25);
    c.embedded = gen.chance(50);
    c.teardown = gen.chance(40);
    // Many small runtimes and some large ones.
    c.n_jobs = 1 + static_cast<int>(gen.below(1 + gen.below(static_cast<std::uint64_t>(cfg.max_jobs))));
    c.teardown_at = static_cast<int>(gen.below(static_cast<std::uint64_t>(c.n_jobs) + 1));
    const int pick = static_cast<int>(gen.below(100));
    c.mode = pick < 6 ? shape::shared : pick < 12 ? shape::shutdown : shape::single;
    if ((c.mode == shape::shared && cfg.no_shared) || (c.mode == shape::shutdown && cfg.no_shutdown)) c.mode = shape::single;
    c.fork = c.mode == shape::single && gen.chance(1) && !cfg.no_fork;
    if (c.mode != shape::single) c.teardown = false;
    if (c.mode == shape::shutdown) {
      c.c_api = false;
      // Few jobs: stubborn ones hold pool threads that every thread shares until they return.
      c.n_jobs = std::min(c.n_jobs, 24);
      c.destroy_in_shutdown = gen.chance(40);
      static constexpr int timeouts_us[] = {0, 200, 2000, 20000};
      c.shutdown_timeout = std::chrono::microseconds(timeouts_us[gen.below(4)]);
    }
    ++st.runtimes;
    try {
      switch (c.mode) {
        case shape::shared: run_shared_round(c); break;
        case shape::shutdown: run_shutdown_round(c); break;
        case shape::single:
          if (c.c_api) run_c_round(c);
          else run_cpp_round(c);
          break;
      }
    } catch (const std::exception& e) {
      violation(c.where(), std::string("the round threw: ") + e.what());
    }
    for (auto& r : c.recs)
      if (r.holds_budget) {
        r.holds_budget = false;
        give_stop_budget();
      }
    for (auto& o : c.ops) release_budget(&o);
    verify(c);
    ++progress;
    if (cfg.verbose) {
      std::lock_guard lock(report_mutex);
      std::printf("%s: %zu submitted\n", c.where().c_str(), c.recs.size());
    }
  }
  thread_phase[t] = "done";
  std::lock_guard lock(totals_mutex);
  totals.add(st);
}

// Ends the program if nothing settles for cfg.stall seconds; in a soak, prints a line every 10 s.
void watchdog(std::stop_token token) {
  std::mutex m;
  std::condition_variable_any cv;
  std::uint64_t last = progress.load();
  auto last_change = clock_type::now();
  auto last_print = clock_type::now();
  std::unique_lock lock(m);
  while (!token.stop_requested()) {
    cv.wait_for(lock, token, std::chrono::milliseconds(500), [] { return false; });
    const auto now = clock_type::now();
    const std::uint64_t p = progress.load();
    if (p != last) {
      last = p;
      last_change = now;
    }
    if (cfg.seconds >= 20 && now - last_print >= std::chrono::seconds(10)) {
      last_print = now;
      std::lock_guard rl(report_mutex);
      std::printf("  %.0f s: %llu settlements, %llu violations\n", std::chrono::duration<double>(now - started_at).count(),
                  static_cast<unsigned long long>(p), static_cast<unsigned long long>(violation_count.load()));
      std::fflush(stdout);
    }
    if (now - last_change >= std::chrono::seconds(cfg.stall)) {
      std::lock_guard rl(report_mutex);
      std::fprintf(stderr, "STALL (seed %llu): nothing settled for %d s; threads:\n", static_cast<unsigned long long>(cfg.seed),
                   cfg.stall);
      for (int t = 0; t < cfg.threads; ++t) {
        const char* ph = thread_phase[t].load();
        std::fprintf(stderr, "  thread %d: round %ld, %s\n", t, thread_round[t].load(), ph ? ph : "starting");
      }
      std::fflush(stderr);
      std::_Exit(3);
    }
  }
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "stress: %s\nusage: stress [--seed S] [--threads N] [--rounds N] [--seconds N] [--jobs N] [--pool N] "
               "[--stall N] [--without PARTS] [--keep-going] [--verbose]\n",
               why);
  std::exit(2);
}

long parse_number(const char* opt, const char* text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
    usage((std::string(opt) + ": expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi)).c_str());
  return v;
}

void parse(int argc, char** argv) {
  bool seeded = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--seed") {
      const char* v = value();
      char* end = nullptr;
      errno = 0;
      cfg.seed = std::strtoull(v, &end, 0);
      if (errno != 0 || end == v || *end != '\0') usage("--seed: expected a number");
      seeded = true;
    } else if (a == "--threads") {
      cfg.threads = static_cast<int>(parse_number("--threads", value(), 1, max_threads));
    } else if (a == "--rounds") {
      cfg.rounds = parse_number("--rounds", value(), 0, 1'000'000'000);
    } else if (a == "--seconds") {
      cfg.seconds = static_cast<double>(parse_number("--seconds", value(), 1, 10'000'000));
    } else if (a == "--jobs") {
      cfg.max_jobs = static_cast<int>(parse_number("--jobs", value(), 1, 1'000'000));
    } else if (a == "--pool") {
      cfg.pool = static_cast<int>(parse_number("--pool", value(), 1, 1024));
    } else if (a == "--stall") {
      cfg.stall = static_cast<int>(parse_number("--stall", value(), 1, 1'000'000));
    } else if (a == "--without") {
      std::string list = value();
      for (std::size_t start = 0; start <= list.size();) {
        const std::size_t end = std::min(list.find(',', start), list.size());
        const std::string part = list.substr(start, end - start);
        if (part == "shared") cfg.no_shared = true;
        else if (part == "shutdown") cfg.no_shutdown = true;
        else if (part == "fork") cfg.no_fork = true;
        else if (part == "ops") cfg.no_ops = true;
        else usage("--without: expected a comma-separated list of shared, shutdown, fork, ops");
        start = end + 1;
      }
    } else if (a == "--keep-going") {
      cfg.keep_going = true;
    } else if (a == "--verbose" || a == "-v") {
      cfg.verbose = true;
    } else if (a == "--help" || a == "-h") {
      std::printf("see the top comment of tests/stress/stress.cpp, or README.md, \"The stress test\"\n");
      std::exit(0);
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (!seeded) cfg.seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (asan_build && !cfg.no_fork) {
    cfg.no_fork = true;
    std::printf("stress: built with AddressSanitizer, whose allocator a forked child can find locked: no fork rounds\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  parse(argc, argv);
  started_at = clock_type::now();

  // Start the pool (with the size asked for) before the threads, to size the stop budget.
  int pool;
  if (cfg.pool > 0) {
    uvrt::runtime first(uvrt::options{.threadpool_size = cfg.pool});
    pool = uvrt::threadpool_size();
  } else {
    pool = uvrt::threadpool_size();
  }
  stop_budget = pool - 1;

  std::string replay = "--seed " + std::to_string(cfg.seed) + " --threads " + std::to_string(cfg.threads) + " --jobs " +
                       std::to_string(cfg.max_jobs);
  if (cfg.seconds > 0) replay += " --seconds " + std::to_string(static_cast<long>(cfg.seconds));
  if (cfg.rounds >= 0 || cfg.seconds <= 0) replay += " --rounds " + std::to_string(cfg.rounds >= 0 ? cfg.rounds : default_rounds);
  if (cfg.pool > 0) replay += " --pool " + std::to_string(cfg.pool);
  std::string without;
  if (cfg.no_shared) without += ",shared";
  if (cfg.no_shutdown) without += ",shutdown";
  if (cfg.no_fork) without += ",fork";
  if (cfg.no_ops) without += ",ops";
  if (!without.empty()) replay += " --without " + without.substr(1);
  std::printf("uvrt stress: %s (pool of %d threads)\n", replay.c_str(), pool);
  std::fflush(stdout);

  std::jthread dog(watchdog);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < cfg.threads; ++t) threads.emplace_back(thread_main, t);
  }
  dog.request_stop();
  dog.join();

  const double secs = std::chrono::duration<double>(clock_type::now() - started_at).count();
  std::int64_t results_made = 0, results_gone = 0, witnesses_live = 0;
  for (int t = 0; t < max_threads; ++t) {
    results_made += result_count[t].made.load();
    results_gone += result_count[t].gone.load();
    witnesses_live += witness_count[t].live();
  }
  if (results_made != results_gone)
    violation("end", std::to_string(results_made) + " results constructed, " + std::to_string(results_gone) + " destroyed");
  if (witnesses_live != 0) violation("end", std::to_string(witnesses_live) + " callables or continuations not destroyed");
  if (stop_budget.load() != pool - 1) violation("end", "the test's stop budget did not balance");
  // Whether a given job was still queued when it was cancelled cannot be known, so a cancel that
  // never finds one queued is not wrong job by job. Over thousands of jobs cancelled right after
  // submission, or left in flight at teardown, while other threads keep the pool busy, it means
  // uv_cancel is not reached.
  const stats& t = totals;
  if (t.at_once_tried >= 1000 && t.at_once_queued == 0)
    violation("end", "cancel() never found a job still queued, in " + std::to_string(t.at_once_tried) +
                         " jobs cancelled right after submission");
  if (t.at_once_tried_c >= 1000 && t.at_once_queued_c == 0)
    violation("end", "uvrt_job_cancel never found a job still queued, in " + std::to_string(t.at_once_tried_c) +
                         " jobs cancelled right after submission");
  const std::uint64_t unsettled_cpp = t.unsettled_at_teardown - t.unsettled_at_teardown_c;
  if (unsettled_cpp >= 1000 && t.teardown_cancelled == t.teardown_cancelled_c)
    violation("end", "the C++ runtime's teardown never cancelled a queued job, with " + std::to_string(unsettled_cpp) +
                         " futures unsettled when their runtimes were destroyed");
  // Loop operations: over hundreds of them, timeouts must fire, and cancelled tasks must catch.
  if (t.op_timeouts >= 500 && t.op_timeouts_fired == 0)
    violation("end", "no timeout fired, in " + std::to_string(t.op_timeouts) + " timeouts around jobs");
  if (t.op_task_cancels >= 200 && t.op_tasks_caught == 0)
    violation("end", "no spawned task caught cancelled_error, in " + std::to_string(t.op_task_cancels) + " cancelled ones");
  if (t.unsettled_at_teardown_c >= 1000 && t.teardown_cancelled_c == 0)
    violation("end", "uvrt_runtime_destroy never cancelled a queued job, with " + std::to_string(t.unsettled_at_teardown_c) +
                         " jobs unsettled when their runtimes were destroyed");

  const stats& s = totals;
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("jobs submitted:                 %llu (C++ %llu, C %llu)\n", u(s.submitted), u(s.submitted - s.submitted_c),
              u(s.submitted_c));
  std::printf("  ran:                          %llu\n", u(s.ran));
  std::printf("  settled with a value:         %llu\n", u(s.values));
  std::printf("  settled with an exception/failure: %llu\n", u(s.exceptions));
  std::printf("  settled cancelled:            %llu\n", u(s.cancelled));
  std::printf("  cancelled while queued:       %llu (cancel() -> not_started / uvrt_job_cancel -> 0); of %llu "
              "cancelled right after submission, %llu were still queued\n",
              u(s.cancelled_queued), u(s.at_once_tried + s.at_once_tried_c), u(s.at_once_queued + s.at_once_queued_c));
  std::printf("  stop requested while running: %llu (cancel() -> stop_requested / UVRT_EBUSY)\n", u(s.stop_requested));
  std::printf("  abandoned:                    %llu while running, %llu while queued\n", u(s.abandoned_running),
              u(s.abandoned_queued));
  std::printf("  cancelled by teardown:        %llu (never ran)\n", u(s.teardown_cancelled));
  std::printf("  stopped by teardown:          %llu (ran, settled with their own outcome)\n", u(s.teardown_stopped));
  std::printf("  detached (future dropped):    %llu (%llu ran)\n", u(s.detached), u(s.detached_ran));
  std::printf("  consumed by:                  task %llu, then %llu, driver %llu, block_on/get after %llu, get at "
              "once %llu, C done %llu\n",
              u(s.by_task), u(s.by_then), u(s.by_driver), u(s.by_later), u(s.by_now), u(s.by_done));
  std::printf("runtimes created:               %llu (C++ own loop %llu, C++ embedded %llu, C own loop %llu, C embedded "
              "%llu)\n",
              u(s.runtimes), u(s.cpp_own), u(s.cpp_embedded), u(s.c_own), u(s.c_embedded));
  std::printf("  sharing a loop:               %llu runtimes on %llu loops; %llu calls into another runtime from a "
              "callback refused (UVRT_EBUSY, usage_error), %llu runtimes destroyed from another's callback\n",
              u(s.shared_runtimes), u(s.shared_loops), u(s.cross_refused), u(s.cross_destroyed));
  std::printf("  shutdown(timeout):            %llu calls (%llu destroyed by a continuation meanwhile), %llu jobs in "
              "flight: %llu cancelled, %llu finished, %llu abandoned\n",
              u(s.shutdowns), u(s.shutdown_destroyed_inside), u(s.shutdown_in_flight), u(s.shutdown_cancelled),
              u(s.shutdown_finished), u(s.shutdown_abandoned));
  std::printf("  forked children:              %llu (each destroyed the runtime it inherited and ran a new one)\n",
              u(s.forks));
  std::printf("loop operations:                %llu made by drivers (%llu jobs inside them, counted above): sleeps %llu, "
              "timeouts %llu, spawned tasks %llu, when_all %llu, when_any %llu\n",
              u(s.ops), u(s.op_jobs), u(s.op_sleeps), u(s.op_timeouts), u(s.op_tasks), u(s.op_when_all), u(s.op_when_any));
  std::printf("  settled:                      %llu with a value, %llu with a failure (%llu timeout_error, %llu "
              "runtime_closed_error), %llu cancelled; %llu spawned tasks' futures dropped\n",
              u(s.op_values), u(s.op_failures), u(s.op_timeouts_fired), u(s.op_closed), u(s.op_cancelled), u(s.op_dropped));
  std::printf("  cancel() called on:           %llu (%llu still pending; %llu spawned tasks cancelled while they awaited, "
              "%llu tasks caught cancelled_error)\n",
              u(s.op_cancel_calls), u(s.op_cancel_effective), u(s.op_task_cancels), u(s.op_tasks_caught));
  std::printf("  consumed by spawned tasks:    %llu; pending when their runtime was torn down: %llu\n",
              u(s.op_consumers), u(s.op_pending_at_teardown));
  std::printf("  drained:                      %llu\n", u(s.drained));
  std::printf("  torn down:                    %llu, %llu with work in flight (%llu futures unsettled, %llu jobs "
              "running at teardown)\n",
              u(s.torn_down), u(s.torn_down_in_flight), u(s.unsettled_at_teardown), u(s.running_at_teardown));
  std::printf("results constructed/destroyed:  %lld/%lld\n", static_cast<long long>(results_made),
              static_cast<long long>(results_gone));
  std::printf("lost: %llu\n", u(s.lost));
  std::printf("violations: %llu\n", u(violation_count.load()));
  std::printf("time: %.2f s\n", secs);
  if (violation_count.load() != 0 || s.lost != 0) {
    std::printf("FAILED; replay with: stress %s\n", replay.c_str());
    return 1;
  }
  return 0;
}
