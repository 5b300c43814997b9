// runtime::shutdown(timeout): work is refused, queued jobs are cancelled, running jobs are asked
// to stop and waited for up to the timeout, and the ones still running then are abandoned, so
// that neither shutdown nor the destructor after it can hang on a job that ignores its stop token.
//
// A job that ignores its stop token is held by a latch the test opens only after the runtime is
// gone; its result counts its destruction down on another latch, which the test waits on to see
// that the late result was disposed of exactly once. Nothing here sleeps to synchronise.
#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.hpp"

// ThreadSanitizer's runtime defines the global allocation functions itself (clang links them
// statically), so under TSan this executable cannot replace them and the one test that needs a
// failing allocator is left out of that build; the plain and ASan+UBSan builds run it.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UVRT_TEST_NO_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define UVRT_TEST_NO_ALLOCATOR 1
#endif

#ifndef UVRT_TEST_NO_ALLOCATOR
// The global allocation functions of this executable: malloc and free, except that operator new
// throws std::bad_alloc while `refuse_allocations` is set (r12 sets it in a child process only, so
// every other test sees plain malloc and free). Every form without an alignment is replaced, so
// that whatever one of them allocates another frees consistently (also under AddressSanitizer,
// which checks that new pairs with delete); the aligned forms stay the implementation's, paired
// among themselves.
namespace {
std::atomic<bool> refuse_allocations{false};

// Not inlined, so that GCC does not take a `delete` of memory from `new`, inlined in this file,
// for free() of memory that did not come from malloc (-Wmismatched-new-delete).
[[gnu::noinline]] void deallocate(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  if (refuse_allocations.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& nt) noexcept { return ::operator new(n, nt); }
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }
#endif  // UVRT_TEST_NO_ALLOCATOR

namespace {

using namespace std::chrono_literals;
using test::outcome_of;
using test::wait_for_stop;

// A result whose destruction is counted down on a latch: waiting on it proves a late result was
// destroyed; `destroyed` counts every destruction of an object that held a value.
struct counted {
  std::latch* gone;
  std::atomic<int>* destroyed;
  counted(std::latch* g, std::atomic<int>* d) : gone(g), destroyed(d) {}
  counted(counted&& o) noexcept : gone(std::exchange(o.gone, nullptr)), destroyed(o.destroyed) {}
  counted& operator=(counted&&) = delete;
  ~counted() {
    if (!gone) return;
    destroyed->fetch_add(1);
    gone->count_down();
  }
};

// Jobs that stop when asked finish within the timeout with their own values; queued ones are
// cancelled and never run; nothing is abandoned, and to_thread is refused afterwards.
void shutdown_cancels_queued_jobs_and_waits_for_stopping_ones(void**) {
  const int n = uvrt::threadpool_size();
  std::latch started{n};
  std::atomic<int> queued_runs{0};
  uvrt::runtime rt;
  std::vector<uvrt::future<int>> running;
  for (int i = 0; i < n; ++i) {
    running.push_back(rt.to_thread([&started, i](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);
      return i;
    }));
  }
  started.wait();
  std::vector<uvrt::future<int>> queued;
  for (int i = 0; i < 3000; ++i) queued.push_back(rt.to_thread([&queued_runs] { return ++queued_runs; }));

  const uvrt::shutdown_result r = rt.shutdown(60s);
  const std::string after = outcome_of([&] { (void)rt.to_thread([] { return 0; }); });

  assert_int_equal(r.cancelled, 3000);
  assert_int_equal(r.finished, n);
  assert_int_equal(r.abandoned, 0);
  for (int i = 0; i < n; ++i) assert_int_equal(running[static_cast<std::size_t>(i)].get(), i);
  for (auto& f : queued) assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  assert_int_equal(queued_runs.load(), 0);
  assert_string_equal(after.c_str(), "runtime_closed");
}

// A job that ignores its stop token is abandoned at the timeout: its future and the coroutine
// then() callback see cancelled before shutdown returns, the destructor does not wait for it, and its
// late result is destroyed exactly once when it finally returns.
void shutdown_abandons_a_job_still_running_at_the_timeout(void**) {
  std::latch started{1};
  std::latch release_job{1};
  std::latch result_gone{1};
  std::atomic<int> destroyed{0};
  std::string awaited;
  uvrt::shutdown_result r{};
  bool ready_at_return = false;
  {
    auto rt = std::make_unique<uvrt::runtime>();
    auto f = rt->to_thread([&] {
      started.count_down();
      release_job.wait();  // ignores every stop request
      return counted(&result_gone, &destroyed);
    });
    started.wait();
    bool resumed = false;
    std::move(f).then([&](uvrt::future<counted> g) {
      resumed = true;
      awaited = outcome_of([&] { (void)g.get(); });
    });
    r = rt->shutdown(20ms);
    ready_at_return = resumed;
    rt.reset();  // returns although the job is still running
  }
  release_job.count_down();
  result_gone.wait();

  assert_int_equal(r.cancelled, 0);
  assert_int_equal(r.finished, 0);
  assert_int_equal(r.abandoned, 1);
  assert_true(ready_at_return);
  assert_string_equal(awaited.c_str(), "cancelled");
  assert_int_equal(destroyed.load(), 1);
}

// Embedded in an application's loop: after shutdown abandoned a job and the runtime is gone, the
// application's loop gets the job back when it finishes, ends the runtime's teardown, and then
// closes with 0.
void an_abandoned_job_comes_back_to_the_application_loop(void**) {
  std::latch started{1};
  std::latch release_job{1};
  std::latch result_gone{1};
  std::atomic<int> destroyed{0};
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uvrt::shutdown_result r{};
  {
    uvrt::runtime rt(&loop);
    auto f = rt.to_thread([&] {
      started.count_down();
      release_job.wait();
      return counted(&result_gone, &destroyed);
    });
    started.wait();
    r = rt.shutdown(0ms);
    assert_true(f.ready());
  }
  const int busy_close = uv_loop_close(&loop);
  release_job.count_down();
  uv_run(&loop, UV_RUN_DEFAULT);  // returns once the job is back and uvrt's handles are closed
  result_gone.wait();

  assert_int_equal(r.abandoned, 1);
  assert_int_equal(busy_close, UV_EBUSY);
  assert_int_equal(destroyed.load(), 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

// Misuse: from inside the loop, and with a negative timeout. Neither changes anything.
void shutdown_misuse_is_refused(void**) {
  uvrt::runtime rt;
  auto inside = [&]() -> uvrt::task<std::string> {
    co_return test::expect_throw<uvrt::usage_error>([&] { (void)rt.shutdown(1s); });
  };
  const std::string message = rt.block_on(inside());
  (void)test::expect_throw<std::invalid_argument>([&] { (void)rt.shutdown(-1ms); });
  const int still_works = rt.block_on(rt.to_thread([] { return 5; }));

  assert_true(test::contains(message, "inside the loop"));
  assert_int_equal(still_works, 5);
}

// A second shutdown reports the job the first one abandoned, still running, and cancels nothing.
void a_second_shutdown_reports_what_is_still_running(void**) {
  std::latch started{1};
  std::latch release_job{1};
  std::latch result_gone{1};
  std::atomic<int> destroyed{0};
  uvrt::shutdown_result first{}, second{};
  {
    uvrt::runtime rt;
    auto f = rt.to_thread([&] {
      started.count_down();
      release_job.wait();
      return counted(&result_gone, &destroyed);
    });
    started.wait();
    first = rt.shutdown(0ms);
    second = rt.shutdown(0ms);
  }
  release_job.count_down();
  result_gone.wait();

  assert_int_equal(first.abandoned, 1);
  assert_int_equal(second.cancelled, 0);
  assert_int_equal(second.finished, 0);
  assert_int_equal(second.abandoned, 1);
}

// Held jobs share this with the test through a shared_ptr, so that a job the runtime abandoned
// may finish after the test's frame is gone.
struct hold {
  explicit hold(int n) : started(n), returned(n) {}
  std::latch started;
  std::latch release{1};
  std::latch returned;
  std::atomic<int> queued_ran{0};
};

// Returns once every job handed to libuv's pool before this call has finished: a fresh runtime
// fills every pool thread with a job that waits for all of them to have started, and libuv's
// queue is first in, first out.
void drain_pool() {
  const int n = uvrt::threadpool_size();
  auto all = std::make_shared<std::latch>(n);
  test::watchdog dog("drain_pool: the pool never had all its threads free");
  uvrt::runtime rt;
  std::vector<uvrt::future<void>> fs;
  for (int i = 0; i < n; ++i) fs.push_back(rt.to_thread([all] { all->arrive_and_wait(); }));
  for (auto& f : fs) rt.block_on(std::move(f));
  dog.disarm();
}

// The file descriptors open in this process.
std::set<int> open_fds() {
  std::set<int> fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) fds.insert(std::stoi(e.path().filename()));
  return fds;
}

// r01: with every pool thread held and 4 jobs waiting behind them in libuv's queue, shutdown(0s)
// counts each job once: the 4 queued ones as cancelled (they never run), the held ones as
// abandoned, and the counts add up to the jobs.
void shutdown_0s_counts_queued_jobs_as_cancelled_only(void**) {
  const int pool = uvrt::threadpool_size();
  constexpr int queued = 4;
  auto h = std::make_shared<hold>(pool);
  auto rt = std::make_unique<uvrt::runtime>();
  std::vector<uvrt::future<int>> held, waiting;
  for (int i = 0; i < pool; ++i) {
    held.push_back(rt->to_thread([h] {
      h->started.count_down();
      h->release.wait();
      h->returned.count_down();
      return 1;
    }));
  }
  h->started.wait();
  // A runtime hands up to 1024 jobs to libuv, so these wait in libuv's queue, not the runtime's.
  for (int i = 0; i < queued; ++i) {
    waiting.push_back(rt->to_thread([h] {
      ++h->queued_ran;
      return 2;
    }));
  }

  const uvrt::shutdown_result r = rt->shutdown(0s);
  std::vector<std::string> held_outcomes, waiting_outcomes;
  for (auto& f : held) held_outcomes.push_back(outcome_of([&] { (void)f.get(); }));
  for (auto& f : waiting) waiting_outcomes.push_back(outcome_of([&] { (void)f.get(); }));
  h->release.count_down();
  rt.reset();
  h->returned.wait();
  drain_pool();  // a queued job that was not really cancelled has run by now

  assert_int_equal(r.cancelled, queued);
  assert_int_equal(r.finished, 0);
  assert_int_equal(r.abandoned, pool);
  assert_int_equal(r.cancelled + r.finished + r.abandoned, pool + queued);
  for (const auto& o : held_outcomes) assert_string_equal(o.c_str(), "cancelled");
  for (const auto& o : waiting_outcomes) assert_string_equal(o.c_str(), "cancelled");
  assert_int_equal(h->queued_ran.load(), 0);
}

// r01b: a job whose work has returned and whose completion libuv has posted, but which the loop
// has not settled yet (it has not turned since), was not running when shutdown(0s) was called:
// it is finished, with its value, not abandoned.
void shutdown_0s_keeps_the_value_of_a_job_whose_work_had_returned(void**) {
  auto returning = std::make_shared<std::latch>(1);
  uvrt::runtime rt;
  auto f = rt.to_thread([returning] {
    returning->count_down();
    return 42;
  });
  returning->wait();
  const bool posted = test::wait_for_posted_completions(rt.loop(), 1);
  const uvrt::shutdown_result r = rt.shutdown(0s);
  int value = 0;
  const std::string outcome = outcome_of([&] { value = f.get(); });

  assert_true(posted);
  assert_int_equal(r.cancelled, 0);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.abandoned, 0);
  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 42);
}

// r02, embedded: a continuation that runs while shutdown(1s) waits (its job returns when the
// stop is requested) destroys the runtime. shutdown returns its counts, the teardown has ended
// by then, and the application's loop closes with 0 (under ASan: no use after free).
void destroy_in_a_continuation_during_shutdown_on_the_application_loop(void**) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  auto started = std::make_shared<std::latch>(1);
  auto rt = std::make_unique<uvrt::runtime>(&loop);
  int value = 0;
  bool destroyed_in_continuation = false;
  rt->to_thread([started](std::stop_token token) {
      started->count_down();
      wait_for_stop(token);
      return 1;
    })
      .then([&](uvrt::future<int> f) {
        value = f.get();
        rt.reset();
        destroyed_in_continuation = true;
      });
  started->wait();
  uvrt::runtime* raw = rt.get();
  test::watchdog dog("shutdown(1s) of a runtime destroyed in its continuation");
  const uvrt::shutdown_result r = raw->shutdown(1s);
  dog.disarm();
  const int close_rc = uv_loop_close(&loop);

  assert_true(destroyed_in_continuation);
  assert_null(rt.get());
  assert_int_equal(value, 1);
  assert_int_equal(r.cancelled, 0);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.abandoned, 0);
  assert_int_equal(close_rc, 0);
}

// r02, own loop: the same, and the runtime's loop is closed and freed by the time shutdown
// returns: no file descriptor of it is left open (under ASan: nothing leaks).
void destroy_in_a_continuation_during_shutdown_on_the_runtime_loop(void**) {
  (void)uvrt::threadpool_size();  // the pool's threads and descriptors exist before counting
  const std::set<int> before = open_fds();
  auto started = std::make_shared<std::latch>(1);
  auto rt = std::make_unique<uvrt::runtime>();
  int value = 0;
  rt->to_thread([started](std::stop_token token) {
      started->count_down();
      wait_for_stop(token);
      return 1;
    })
      .then([&](uvrt::future<int> f) {
        value = f.get();
        rt.reset();
      });
  started->wait();
  uvrt::runtime* raw = rt.get();
  test::watchdog dog("shutdown(1s) of a runtime destroyed in its continuation");
  const uvrt::shutdown_result r = raw->shutdown(1s);
  dog.disarm();
  std::string leaked;
  for (int fd : open_fds())
    if (!before.count(fd)) leaked += " " + std::to_string(fd);

  assert_null(rt.get());
  assert_int_equal(value, 1);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.abandoned, 0);
  assert_string_equal(leaked.c_str(), "");
}

// r06, embedded: a job that shutdown abandoned is still blocked when the runtime is destroyed.
// uvrt has closed every handle of its own by then (uv_walk finds none), but libuv's request for
// the job keeps the loop alive until the job returns: then uv_run returns and the loop closes.
void after_an_abandoned_job_the_loop_holds_no_uvrt_handle_only_the_request(void**) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  auto h = std::make_shared<hold>(1);
  uvrt::shutdown_result r{};
  {
    uvrt::runtime rt(&loop);
    auto f = rt.to_thread([h] {
      h->started.count_down();
      h->release.wait();
      return 1;
    });
    h->started.wait();
    r = rt.shutdown(10ms);
  }
  int handles = 0;
  uv_walk(&loop, [](uv_handle_t*, void* n) { ++*static_cast<int*>(n); }, &handles);
  const int alive = uv_loop_alive(&loop);
  h->release.count_down();
  test::watchdog dog("uv_run(UV_RUN_DEFAULT) after the abandoned job returned");
  uv_run(&loop, UV_RUN_DEFAULT);
  dog.disarm();
  const int close_rc = uv_loop_close(&loop);

  assert_int_equal(r.abandoned, 1);
  assert_int_equal(handles, 0);
  assert_int_not_equal(alive, 0);
  assert_int_equal(close_rc, 0);
}

enum class exit_mode { underscore_exit, quick_exit, exit };

// A child process (forked before anything of its own exists) with a runtime on its own loop, a
// job that never returns, shutdown(10ms) and the runtime destroyed; it writes one byte to
// `ready_fd` and ends as `mode` says. Returns the child's pid.
pid_t spawn_child_with_a_never_returning_job(exit_mode mode, int ready_fd) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid != 0) return pid;
  alarm(20);  // the child never outlives a parent that failed to reap it by long
  try {
    std::atomic<bool> started{false};
    auto rt = std::make_unique<uvrt::runtime>();
    auto f = rt->to_thread([&started] {
      started = true;
      for (;;) std::this_thread::sleep_for(1s);
    });
    while (!started) std::this_thread::yield();
    (void)rt->shutdown(10ms);
    rt.reset();
  } catch (...) {
    _exit(3);
  }
  const char byte = 1;
  if (write(ready_fd, &byte, 1) != 1) _exit(4);
  switch (mode) {
    case exit_mode::underscore_exit:
      _exit(0);
    case exit_mode::quick_exit:
      std::quick_exit(0);
    case exit_mode::exit:
      std::exit(0);
  }
  _exit(5);
}

// How a child ended, or "running" if it has not within `limit`.
std::string wait_child(pid_t pid, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t rc = waitpid(pid, &status, WNOHANG);
    if (rc == pid) {
      if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
      if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
      return "stopped";
    }
    if (rc < 0) return "waitpid failed";
    if (std::chrono::steady_clock::now() > give_up) return "running";
    std::this_thread::sleep_for(1ms);  // polls waitpid; the outcome does not depend on it
  }
}

// Waits up to 10 s for one byte on `fd`.
bool read_ready(int fd) {
  pollfd p{fd, POLLIN, 0};
  char byte = 0;
  return poll(&p, 1, 10'000) == 1 && read(fd, &byte, 1) == 1;
}

// r06, process exit: after shutdown abandoned a job that never returns and the runtime is gone,
// _exit and quick_exit end the process at once; exit() does not (libuv's library destructor
// joins its pool threads, one of which never comes back), so such a program must not call it.
void after_an_abandoned_job_never_returns_only__exit_and_quick_exit_end_the_process(void**) {
  std::string outcomes[3];
  bool ready[3] = {};
  const exit_mode modes[3] = {exit_mode::underscore_exit, exit_mode::quick_exit, exit_mode::exit};
  for (int i = 0; i < 3; ++i) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    const pid_t pid = spawn_child_with_a_never_returning_job(modes[i], fds[1]);
    assert_true(pid > 0);
    close(fds[1]);
    ready[i] = read_ready(fds[0]);
    close(fds[0]);
    if (modes[i] == exit_mode::exit) {
      // Still inside exit() a second after it began: killed and reaped.
      outcomes[i] = wait_child(pid, 1000ms);
      if (outcomes[i] == "running") kill(pid, SIGKILL);
      (void)wait_child(pid, 10'000ms);
    } else {
      outcomes[i] = wait_child(pid, 10'000ms);
      if (outcomes[i] == "running") {
        kill(pid, SIGKILL);
        (void)wait_child(pid, 10'000ms);
      }
    }
  }

  for (bool b : ready) assert_true(b);
  assert_string_equal(outcomes[0].c_str(), "exited 0");
  assert_string_equal(outcomes[1].c_str(), "exited 0");
  assert_string_equal(outcomes[2].c_str(), "running");
}

// The hunt's r10: the application's repeating timer on the runtime's own loop (runtime::loop())
// runs on the loop thread, and never after the destructor returned, on any thread: when shutdown
// abandoned a job, the destructor hands the loop to a thread of uvrt's that turns it until the
// job is back, so it first closes the application's handles on it, on the loop thread. (Before
// the fix that thread ran the timer's callbacks.) The destructor's return finds the timer closed,
// which libuv never calls again; the job is then released and its late result awaited, and no
// callback may have run meanwhile.
void an_application_timer_on_the_runtime_loop_never_runs_after_the_destructor(void**) {
  struct state {
    uv_timer_t timer;  // uvrt closes it while the runtime is destroyed: static storage outlives that
    std::thread::id loop_thread = std::this_thread::get_id();
    std::atomic<int> calls{0};
    std::atomic<int> foreign{0};
    std::atomic<bool> ticked{false};
    std::latch first_tick{1};
  };
  static state st;
  std::latch started{1};
  std::latch release{1};
  std::latch result_gone{1};
  std::atomic<int> destroyed{0};
  auto rt = std::make_unique<uvrt::runtime>();
  assert_int_equal(uv_timer_init(rt->loop(), &st.timer), 0);
  assert_int_equal(uv_timer_start(
                       &st.timer,
                       [](uv_timer_t*) {
                         ++st.calls;
                         if (std::this_thread::get_id() != st.loop_thread) ++st.foreign;
                         if (!st.ticked.exchange(true)) st.first_tick.count_down();
                       },
                       1, 1),
                   0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&st.timer));
  // The timer works: block_on turns the loop until it has ticked.
  rt->block_on(rt->to_thread([] { st.first_tick.wait(); }));
  auto f = rt->to_thread([&] {
    started.count_down();
    release.wait();  // ignores the stop request
    return counted(&result_gone, &destroyed);
  });
  started.wait();
  const uvrt::shutdown_result r = rt->shutdown(0s);
  rt.reset();
  // Read here, on the thread that closed it, before the thread of uvrt's could turn the loop on.
  const bool closed_by_destructor = uv_is_closing(reinterpret_cast<uv_handle_t*>(&st.timer)) != 0;
  const int calls_at_return = st.calls.load();
  release.count_down();
  test::watchdog dog("the abandoned job's late result being destroyed");
  result_gone.wait();
  dog.disarm();
  const int calls_after = st.calls.load() - calls_at_return;

  assert_true(closed_by_destructor);
  assert_int_equal(r.abandoned, 1);
  assert_true(calls_at_return >= 1);
  assert_int_equal(calls_after, 0);
  assert_int_equal(st.foreign.load(), 0);
  assert_int_equal(destroyed.load(), 1);
}

#ifndef UVRT_TEST_NO_ALLOCATOR
// An eager coroutine (it runs at once, and its frame goes at its end), so that a continuation of
// the test's own can be parked on a future without a task or then().
struct eager {
  struct promise_type {
    eager get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// Awaits `f`; once resumed, every allocation fails (operator new throws) and `resumed` is set.
eager refuse_allocations_once_resumed(uvrt::future<int>& f, bool& resumed) {
  try {
    (void)co_await f;
  } catch (...) {
  }
  resumed = true;
  refuse_allocations = true;
}

// r12: shutdown makes room, before its first turn, to defer the continuation of every running
// job, so that abandoning them at the deadline (noexcept) allocates nothing. A continuation
// deferred earlier (abandoned by cancel) is resumed in that first turn, and from then on every
// allocation fails; the running job with a then() is abandoned at the deadline and its
// continuation deferred into the room made. (Before the fix, resuming deferred continuations threw
// the room away, the abandon allocated and std::terminate aborted the process.) In a child
// process, which reports through its exit status: 0, or 3 if the continuation did not run during
// shutdown, 4 if the jobs were not both counted as abandoned.
void shutdown_s_room_to_defer_survives_deferred_continuations_being_resumed(void**) {
  const test::child_end end = test::in_child([] {
    auto h = std::make_shared<hold>(2);
    auto rt = std::make_unique<uvrt::runtime>();
    auto g = rt->to_thread([h] {
      h->started.count_down();
      h->release.wait();  // ignores every stop request
      return 1;
    });
    auto b = rt->to_thread([h] {
      h->started.count_down();
      h->release.wait();
      return 2;
    });
    h->started.wait();
    std::move(b).then([](uvrt::future<int>) {});
    bool resumed = false;
    refuse_allocations_once_resumed(g, resumed);  // parks on g
    (void)g.cancel(uvrt::cancel_mode::abandon);    // g's continuation is deferred to the next turn
    const bool resumed_before = resumed;
    const uvrt::shutdown_result r = rt->shutdown(10ms);
    refuse_allocations = false;
    h->release.count_down();
    std::fprintf(stderr, "shutdown: cancelled %zu, finished %zu, abandoned %zu\n", r.cancelled, r.finished,
                 r.abandoned);
    if (resumed_before || !resumed) return 3;
    if (r.abandoned != 2) return 4;  // both jobs were still running at the deadline
    rt.reset();
    return 0;
  });

  if (end.how != "exited 0") fail_msg("the child %s; its stderr: %s", end.how.c_str(), end.stderr_text.c_str());
}
#endif

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      // First: counting descriptors is exact only while no runtime of an earlier test is still
      // closing its loop on a thread of uvrt's.
      cmocka_unit_test(destroy_in_a_continuation_during_shutdown_on_the_runtime_loop),
      cmocka_unit_test(shutdown_cancels_queued_jobs_and_waits_for_stopping_ones),
      cmocka_unit_test(shutdown_abandons_a_job_still_running_at_the_timeout),
      cmocka_unit_test(an_abandoned_job_comes_back_to_the_application_loop),
      cmocka_unit_test(shutdown_misuse_is_refused),
      cmocka_unit_test(a_second_shutdown_reports_what_is_still_running),
      cmocka_unit_test(shutdown_0s_counts_queued_jobs_as_cancelled_only),
      cmocka_unit_test(shutdown_0s_keeps_the_value_of_a_job_whose_work_had_returned),
      cmocka_unit_test(destroy_in_a_continuation_during_shutdown_on_the_application_loop),
      cmocka_unit_test(after_an_abandoned_job_the_loop_holds_no_uvrt_handle_only_the_request),
      cmocka_unit_test(after_an_abandoned_job_never_returns_only__exit_and_quick_exit_end_the_process),
      cmocka_unit_test(an_application_timer_on_the_runtime_loop_never_runs_after_the_destructor),
#ifndef UVRT_TEST_NO_ALLOCATOR
      cmocka_unit_test(shutdown_s_room_to_defer_survives_deferred_continuations_being_resumed),
#endif
  };
  return cmocka_run_group_tests_name("shutdown", tests, nullptr, nullptr);
}
