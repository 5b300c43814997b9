// Shared by every test file: cmocka from C++, and helpers that keep assertions on the test thread.
//
// cmocka's state is thread-local and a failing assert longjmps: assert only on the test thread
// (in continuations, after block_on/run, or after joining), never inside a job running on the
// pool. Values leave workers through atomics, latches or the future itself.
//
// cmocka.h defines function-like macros with common names (fail, skip...), so every other header
// must be included before it: include this file last.
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <uvrt/uvrt.hpp>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

namespace test {

// Runs `f`, which must throw E; returns the message so the caller can check what it names.
template <class E, class F>
std::string expect_throw(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    fail_msg("expected a different exception type; got one saying: %s", e.what());
  } catch (...) {
    fail_msg("expected a different exception type; got a non-std exception");
  }
  fail_msg("expected an exception; none was thrown");
  return {};
}

inline bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs `f` and describes how it ended, so that the outcome can be recorded where asserting is
// not wanted (inside a continuation, or while workers are held) and checked afterwards.
template <class F>
std::string outcome_of(F&& f) {
  try {
    f();
    return "returned";
  } catch (const uvrt::cancelled_error&) {
    return "cancelled";
  } catch (const uvrt::runtime_closed_error&) {
    return "runtime_closed";
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  } catch (...) {
    return "threw a non-std exception";
  }
}

// Blocks the calling worker until a stop is requested through `token`, without polling.
inline void wait_for_stop(std::stop_token token) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait(lock, token, [] { return false; });
}

// A result type that counts its instances, to prove that a result is destroyed exactly once.
// It owns heap memory so that a double destruction also shows up under AddressSanitizer.
struct tracked {
  static inline std::atomic<int> constructed{0};
  static inline std::atomic<int> destroyed{0};
  static void reset() {
    constructed = 0;
    destroyed = 0;
  }
  static int live() { return constructed.load() - destroyed.load(); }

  std::unique_ptr<int> payload;

  explicit tracked(int v) : payload(std::make_unique<int>(v)) { ++constructed; }
  tracked(tracked&& other) noexcept : payload(std::move(other.payload)) { ++constructed; }
  tracked& operator=(tracked&&) = delete;
  ~tracked() { ++destroyed; }
};

// Occupies every thread of libuv's pool with a job that waits at a gate the test holds, so that
// jobs submitted afterwards stay queued until the gate opens. For runtimes that reserve no pool
// thread (the default); one that reserves some could not run them all. Declare it before the
// runtime: the workers touch its latches until they return, which the runtime's teardown waits for.
class pool_blocker {
 public:
  pool_blocker() : size_(uvrt::threadpool_size()) {}

  // Fills the pool one job at a time, each once the one before runs, so that they never wait in
  // the queue together (and never count against options::max_queued); returns once all run.
  void fill(uvrt::runtime& rt) {
    for (int i = 0; i < size_; ++i) {
      jobs_.push_back(rt.to_thread([this, i] {
        started_.fetch_add(1);
        started_.notify_all();
        gate_.wait();
        return i;
      }));
      for (int seen = started_.load(); seen < i + 1; seen = started_.load()) started_.wait(seen);
    }
  }

  int size() const { return size_; }
  uvrt::future<int>& job(int i) { return jobs_[static_cast<std::size_t>(i)]; }
  void open() { gate_.count_down(); }

  // Opens the gate and waits for every held job; true if each returned its own value.
  bool drain(uvrt::runtime& rt) {
    open();
    bool ok = true;
    for (std::size_t i = 0; i < jobs_.size(); ++i) ok = rt.block_on(std::move(jobs_[i])) == static_cast<int>(i) && ok;
    jobs_.clear();
    return ok;
  }

 private:
  int size_;
  std::atomic<int> started_{0};
  std::latch gate_{1};
  std::vector<uvrt::future<int>> jobs_;
};

// Turns a hang into a failure: unless disarmed within `limit`, prints "HANG: <what>" on stderr
// and ends the process with _exit(1), which the TAP harness reports as a failure. It is not
// synchronisation: a test that works disarms it long before the limit. Disarm it before
// asserting, since a failing assert longjmps past its destructor.
class watchdog {
 public:
  explicit watchdog(std::string what, std::chrono::seconds limit = std::chrono::seconds(10))
      : s_(std::make_shared<state>()) {
    std::thread([s = s_, what = std::move(what), limit] {
      std::unique_lock lock(s->m);
      if (s->cv.wait_for(lock, limit, [&] { return s->disarmed; })) return;
      std::fprintf(stderr, "HANG: %s\n", what.c_str());
      std::fflush(stderr);
      _exit(1);
    }).detach();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;
  ~watchdog() { disarm(); }

  void disarm() {
    {
      std::lock_guard lock(s_->m);
      s_->disarmed = true;
    }
    s_->cv.notify_one();
  }

 private:
  struct state {
    std::mutex m;
    std::condition_variable cv;
    bool disarmed = false;
  };
  std::shared_ptr<state> s_;
};

// Time checks for sleeps and timeouts: `elapsed` must be at least `deadline` (never early) and at
// most `deadline + late_slack`, generous enough for a loaded CI machine.
inline constexpr std::chrono::nanoseconds late_slack = std::chrono::milliseconds(50);

inline std::chrono::nanoseconds since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::steady_clock::now() - t0;
}

inline double in_ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

inline void check_on_time(const char* what, std::chrono::nanoseconds elapsed, std::chrono::nanoseconds deadline) {
  if (elapsed < deadline) fail_msg("%s settled early: after %.3f ms, deadline %.3f ms", what, in_ms(elapsed), in_ms(deadline));
  if (elapsed > deadline + late_slack)
    fail_msg("%s settled late: after %.3f ms, deadline %.3f ms (+%.0f ms allowed)", what, in_ms(elapsed), in_ms(deadline),
             in_ms(late_slack));
}

inline void check_at_most(const char* what, std::chrono::nanoseconds elapsed, std::chrono::nanoseconds limit) {
  if (elapsed > limit) fail_msg("%s took %.3f ms, expected at most %.3f ms", what, in_ms(elapsed), in_ms(limit));
}

// cmocka setup and teardown that run a test under a 60 s watchdog (they run even when the test
// fails): a wait that never ends fails that test instead of hanging the executable until meson's
// timeout. Register such a test with guarded_test(f).
inline int arm_watchdog(void** state) {
  *state = new watchdog("a test did not end within 60 s (the one after the last reported)", std::chrono::seconds(60));
  return 0;
}

inline int disarm_watchdog(void** state) {
  delete static_cast<watchdog*>(*state);
  return 0;
}

// The number of finished uv_work_t requests libuv has posted to `loop`'s done queue and the loop
// has not taken yet (it takes them when it turns). A job's work function returning is not
// enough to know that its completion is there: the worker posts it a few instructions later.
// This reads libuv's private fields (unix, 1.x up to 1.45: `void* wq[2]` and `wq_mutex`), under
// the mutex the workers post with; -1 where the layout is unknown.
inline int posted_completions(uv_loop_t* loop) {
#if UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR <= 45 && !defined(_WIN32)
  int n = 0;
  uv_mutex_lock(&loop->wq_mutex);
  for (void* q = loop->wq[0]; q != static_cast<void*>(&loop->wq); q = static_cast<void**>(q)[0]) ++n;
  uv_mutex_unlock(&loop->wq_mutex);
  return n;
#else
  (void)loop;
  return -1;
#endif
}

// Waits until `loop`'s done queue holds `n` completions, without turning the loop. Call it once
// the works have returned (a latch they count down as their last statement). Where libuv's
// layout is unknown it waits 50 ms instead: a margin for the few instructions between a work
// function's return and its completion being posted, not a synchronisation.
inline bool wait_for_posted_completions(uv_loop_t* loop, int n) {
  if (posted_completions(loop) < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return true;
  }
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (posted_completions(loop) < n) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return posted_completions(loop) == n;
}

// How a child process run by `in_child` ended ("exited N", "killed by signal N") and what it
// wrote on its stderr.
struct child_end {
  std::string how;
  std::string stderr_text;
};

// Forks; the child runs `body()` with its stderr on a pipe to the parent and ends with _exit of
// the int `body` returns (120 if it threw), never returning into cmocka. alarm(`limit`) is its
// watchdog: a hang kills it with SIGALRM. The parent reads the pipe until the child closed it,
// then reaps the child. For fatal usage errors (a message on stderr, then abort) and for code that
// may call std::terminate: the parent asserts on what comes back.
template <class Body>
child_end in_child(Body body, unsigned limit = 5) {
  int fds[2];
  if (pipe(fds) != 0) return {"pipe failed", {}};
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return {"fork failed", {}};
  if (pid == 0) {
    alarm(limit);
    close(fds[0]);
    if (dup2(fds[1], 2) != 2) _exit(121);
    close(fds[1]);
    int status = 120;
    try {
      status = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "child threw a non-std exception\n");
    }
    std::fflush(stderr);
    _exit(status);
  }
  close(fds[1]);
  child_end end;
  char buf[512];
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 20'000) != 1) {  // the child has its alarm: a second line of defence
      end.stderr_text += "<no end of the child's stderr after 20 s>";
      kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    end.stderr_text.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) end.how = "waitpid failed";
  else if (WIFEXITED(status)) end.how = "exited " + std::to_string(WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) end.how = "killed by signal " + std::to_string(WTERMSIG(status));
  else end.how = "ended oddly";
  return end;
}

}  // namespace test

#define assert_contains(haystack, needle)                                                      \
  do {                                                                                         \
    const std::string uvrt_test_h_ = (haystack);                                               \
    if (!test::contains(uvrt_test_h_, (needle)))                                               \
      fail_msg("expected \"%s\" to contain \"%s\"", uvrt_test_h_.c_str(), (needle));           \
  } while (0)
