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
#include <latch>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"

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

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shutdown_cancels_queued_jobs_and_waits_for_stopping_ones),
      cmocka_unit_test(shutdown_abandons_a_job_still_running_at_the_timeout),
      cmocka_unit_test(an_abandoned_job_comes_back_to_the_application_loop),
      cmocka_unit_test(shutdown_misuse_is_refused),
      cmocka_unit_test(a_second_shutdown_reports_what_is_still_running),
  };
  return cmocka_run_group_tests_name("shutdown", tests, nullptr, nullptr);
}
