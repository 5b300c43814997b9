// The runtime's destructor with work in flight: what it cancels, what it waits for, what it runs,
// and what it leaves behind.
//
// Each test ends a `{ uvrt::runtime rt; ... }` scope while jobs are queued or running, and checks
// afterwards what the destructor promised (runtime.hpp): queued jobs cancelled, running jobs
// asked to stop and waited for, continuations and posts run, every future settled. Jobs that must
// be running when teardown begins are held until teardown itself releases them, through their
// std::stop_token or a post the destructor serves; nothing here sleeps. Latches, flags and
// futures the jobs touch are declared before the runtime so that they outlive it, and every
// assertion runs on the test thread.
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/socket.h>

// cmocka defines macros with common names, so support.hpp comes after every other header.
#include "support.hpp"

namespace {

using test::outcome_of;
using test::tracked;
using test::wait_for_stop;
using namespace std::chrono_literals;

}  // namespace

// Teardown cancels the jobs still queued (they settle as cancelled and never run) and waits for
// the running ones (they settle with their own values); the futures outlive the runtime.
static void teardown_cancels_queued_jobs_and_waits_for_running_ones(void**) {
  const int n = uvrt::threadpool_size();
  // Many queued jobs, in libuv's queue and (past the 1024 a runtime hands to libuv) in the
  // runtime's own: if teardown released the running jobs before it had cancelled every queued
  // one, the freed workers would very likely start some of them while it was still cancelling.
  const int m = 20000;
  std::latch started{n};
  std::atomic<int> queued_runs{0};
  std::vector<uvrt::future<int>> running;
  std::vector<uvrt::future<int>> queued;
  {
    uvrt::runtime rt;
    for (int i = 0; i < n; ++i) {
      running.push_back(rt.to_thread([&started, i](std::stop_token token) {
        started.count_down();
        wait_for_stop(token);
        return 100 + i;
      }));
    }
    // Every worker is inside a running job, so the next jobs stay queued.
    started.wait();
    for (int i = 0; i < m; ++i) queued.push_back(rt.to_thread([&queued_runs] { return ++queued_runs; }));
  }

  for (int i = 0; i < n; ++i) {
    auto& f = running[static_cast<std::size_t>(i)];
    assert_true(f.ready());
    assert_int_equal(f.get(), 100 + i);
  }
  for (auto& f : queued) {
    assert_true(f.ready());
    assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  }
  assert_int_equal(queued_runs.load(), 0);
}

// When the destructor returns, no job is running: every job, including those whose futures were
// dropped, has set its "finished" flag, its last act. The jobs were running when teardown began
// and were released by the stop the destructor requested, not by anything earlier.
static void teardown_returns_only_after_every_job_has_finished(void**) {
  const int n = uvrt::threadpool_size();
  std::latch started{n};
  std::atomic<bool> teardown_begun{false};
  std::atomic<int> stopped_by_teardown{0};
  std::vector<std::atomic<bool>> finished(static_cast<std::size_t>(n));
  std::vector<uvrt::future<int>> kept;
  {
    uvrt::runtime rt;
    std::vector<uvrt::future<int>> all;
    for (int i = 0; i < n; ++i) {
      all.push_back(rt.to_thread([&, i](std::stop_token token) {
        // Runs inside request_stop, on the thread that asks, so it sees who asked and when.
        std::stop_callback record_stop(token, [&] {
          if (teardown_begun.load()) ++stopped_by_teardown;
        });
        started.count_down();
        wait_for_stop(token);
        finished[static_cast<std::size_t>(i)] = true;
        return i;
      }));
    }
    started.wait();
    // Every other future is dropped while its job runs: the job is detached, which must not stop
    // it, and teardown must wait for it too.
    for (int i = 0; i < n; i += 2) kept.push_back(std::move(all[static_cast<std::size_t>(i)]));
    all.clear();
    // The last statement before the destructor: a stop requested after this came from it.
    teardown_begun = true;
  }

  for (int i = 0; i < n; ++i) assert_true(finished[static_cast<std::size_t>(i)].load());
  assert_int_equal(stopped_by_teardown.load(), n);
  for (std::size_t k = 0; k < kept.size(); ++k) assert_int_equal(kept[k].get(), static_cast<int>(2 * k));
}

// then() continuations attached to futures still in flight run exactly once, during teardown:
// those of running jobs with the value, those of queued jobs with cancelled_error.
static void teardown_runs_each_pending_continuation_exactly_once(void**) {
  const int n = uvrt::threadpool_size();
  const int m = 3;
  std::latch started{n};
  // Continuations run on the loop thread, which is this one, so plain values will do.
  std::vector<int> calls(static_cast<std::size_t>(n + m), 0);
  std::vector<std::string> outcomes(static_cast<std::size_t>(n + m));
  int calls_before_teardown = -1;
  {
    uvrt::runtime rt;
    auto attach = [&](uvrt::future<int> f, int index) {
      std::move(f).then([&calls, &outcomes, index](uvrt::future<int> settled) {
        ++calls[static_cast<std::size_t>(index)];
        outcomes[static_cast<std::size_t>(index)] = outcome_of([&] { (void)settled.get(); });
      });
    };
    for (int i = 0; i < n; ++i) {
      auto f = rt.to_thread([&started](std::stop_token token) {
        started.count_down();
        wait_for_stop(token);
        return 1;
      });
      attach(std::move(f), i);
    }
    started.wait();
    for (int i = 0; i < m; ++i) attach(rt.to_thread([] { return 2; }), n + i);
    calls_before_teardown = 0;
    for (int c : calls) calls_before_teardown += c;
  }

  assert_int_equal(calls_before_teardown, 0);
  for (int i = 0; i < n + m; ++i) {
    assert_int_equal(calls[static_cast<std::size_t>(i)], 1);
    assert_string_equal(outcomes[static_cast<std::size_t>(i)].c_str(), i < n ? "returned" : "cancelled");
  }
}

// A continuation that runs during teardown and submits new work is refused with
// runtime_closed_error, whether its job was running or still queued, and nothing is queued.
static void to_thread_from_a_continuation_during_teardown_throws_runtime_closed(void**) {
  const int n = uvrt::threadpool_size();
  std::latch started{n};
  std::atomic<int> refused_runs{0};
  std::string from_running_job;
  std::string from_queued_job;
  std::string message;
  {
    uvrt::runtime rt;
    std::vector<uvrt::future<int>> running;
    for (int i = 0; i < n; ++i) {
      running.push_back(rt.to_thread([&started](std::stop_token token) {
        started.count_down();
        wait_for_stop(token);
        return 1;
      }));
    }
    started.wait();
    auto submit_more = [&](std::string& outcome) {
      return [&](uvrt::future<int>) {
        outcome = outcome_of([&] { (void)uvrt::to_thread([&refused_runs] { return ++refused_runs; }); });
        try {
          (void)uvrt::to_thread([] { return 0; });
        } catch (const uvrt::runtime_closed_error& e) {
          message = e.what();
        }
      };
    };
    std::move(running[0]).then(submit_more(from_running_job));
    rt.to_thread([] { return 2; }).then(submit_more(from_queued_job));
  }

  assert_string_equal(from_running_job.c_str(), "runtime_closed");
  assert_string_equal(from_queued_job.c_str(), "runtime_closed");
  assert_contains(message, "uvrt::to_thread");
  assert_int_equal(refused_runs.load(), 0);
}

// A job abandoned while running, and still running when teardown begins, is waited for: it has
// finished when the destructor returns, and its late result has been destroyed exactly once.
static void teardown_waits_for_an_abandoned_job_and_disposes_of_its_result(void**) {
  tracked::reset();
  std::latch started{1};
  std::latch gate{1};
  std::atomic<bool> finished{false};
  uvrt::future<tracked> f;
  uvrt::cancel_result result{};
  {
    uvrt::runtime rt;
    f = rt.to_thread([&] {
      started.count_down();
      gate.wait();
      tracked late(9);
      finished = true;
      return late;
    });
    started.wait();
    result = f.cancel(uvrt::cancel_mode::abandon);
    // Nothing turns the loop before the destructor, so this post, which releases the job, is
    // served by teardown: the job can only end once teardown has begun.
    rt.post([&gate] { gate.count_down(); });
  }

  assert_string_equal(uvrt::to_string(result), "abandoned");
  assert_true(finished.load());
  assert_true(f.ready());
  assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  assert_true(tracked::constructed.load() >= 1);
  assert_int_equal(tracked::destroyed.load(), tracked::constructed.load());
  assert_int_equal(tracked::live(), 0);
}

// A running job that calls back into the loop with from_thread during teardown is served, on the
// loop thread, rather than deadlocking against the destructor that waits for it.
static void from_thread_during_teardown_is_served(void**) {
  std::latch started{1};
  std::atomic<bool> served_on_loop_thread{false};
  const std::thread::id test_thread = std::this_thread::get_id();
  uvrt::future<int> f;
  {
    uvrt::runtime rt;
    f = rt.to_thread([&](std::stop_token token) {
      started.count_down();
      // Only the destructor requests a stop, so the call below happens during teardown.
      wait_for_stop(token);
      return 7 * uvrt::from_thread([&] {
        served_on_loop_thread = std::this_thread::get_id() == test_thread;
        return 6;
      });
    });
    started.wait();
  }

  int value = 0;
  const std::string outcome = outcome_of([&] { value = f.get(); });

  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 42);
  assert_true(served_on_loop_thread.load());
}

// A runtime with nothing in flight tears down at once: it does not wait for the pool, which is
// shared, even while another runtime's job holds a worker. An embedded loop is left with no
// handle of uvrt's, idle or after use, so the application can close it.
static void idle_teardown_returns_at_once_and_leaves_the_loop_closable(void**) {
  std::latch started{1};
  std::latch gate{1};
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  bool idle_teardown_returned = false;
  int other_value = 0;
  {
    uvrt::runtime other;
    auto held = other.to_thread([&] {
      started.count_down();
      gate.wait();
      return 8;
    });
    started.wait();
    {
      uvrt::runtime idle(&loop);
    }
    // Reached only if the idle runtime's destructor did not wait for the job `other` holds.
    idle_teardown_returned = true;
    gate.count_down();
    other_value = other.block_on(std::move(held));
  }
  int used_value = 0;
  {
    uvrt::runtime used(&loop);
    used_value = used.block_on(used.to_thread([] { return 1; }));
  }
  const int alive_after = uv_loop_alive(&loop);
  const int close_rc = uv_loop_close(&loop);

  assert_true(idle_teardown_returned);
  assert_int_equal(other_value, 8);
  assert_int_equal(used_value, 1);
  assert_int_equal(alive_after, 0);
  assert_int_equal(close_rc, 0);
}

// Two runtimes created and destroyed one after the other on the same thread both work, the free
// to_thread finds each in turn, and none is left current on the thread afterwards.
static void two_runtimes_in_sequence_on_one_thread_both_work(void**) {
  auto add_one_on_pool = [](int x) -> uvrt::task<int> {
    co_return co_await uvrt::to_thread([x] { return x + 1; });
  };
  uvrt::future<int> kept[2];
  int values[2] = {0, 0};
  for (int round = 0; round < 2; ++round) {
    uvrt::runtime rt;
    values[round] = rt.block_on(add_one_on_pool(10 * (round + 1)));
    kept[round] = rt.to_thread([round] { return round; });
    rt.run();  // settles kept[round], which is read only once both runtimes are gone
  }

  assert_int_equal(values[0], 11);
  assert_int_equal(values[1], 21);
  assert_int_equal(kept[0].get(), 0);
  assert_int_equal(kept[1].get(), 1);
  (void)test::expect_throw<uvrt::no_runtime_error>([] { (void)uvrt::to_thread([] { return 0; }); });
}

// Destroyed from inside its own loop (here a then() callback, while run() turns the loop): the
// destructor only begins the teardown; run() goes on until it has ended, so when run() returns
// the running job was asked to stop and kept its value, the queued ones were cancelled without
// running, and the callback itself ran once.
static void destroy_from_a_continuation_ends_when_run_returns(void**) {
  const int n = uvrt::threadpool_size();
  std::latch started{n};
  std::atomic<int> queued_runs{0};
  int destroying_calls = 0;
  std::vector<uvrt::future<int>> running;
  std::vector<uvrt::future<int>> queued;
  auto rt = std::make_unique<uvrt::runtime>();
  for (int i = 0; i < n; ++i) {
    running.push_back(rt->to_thread([&started, i](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);
      return i;
    }));
  }
  started.wait();
  for (int i = 0; i < 2000; ++i) queued.push_back(rt->to_thread([&queued_runs] { return ++queued_runs; }));
  rt->post([&] {
    ++destroying_calls;
    rt.reset();
  });
  uvrt::runtime* raw = rt.get();
  raw->run();

  assert_null(rt.get());
  assert_int_equal(destroying_calls, 1);
  for (int i = 0; i < n; ++i) assert_int_equal(running[static_cast<std::size_t>(i)].get(), i);
  for (auto& f : queued) assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  assert_int_equal(queued_runs.load(), 0);
}

// Destroyed by the task block_on is running: the task carries on (new work is refused) and its
// value still reaches block_on.
static void destroy_from_the_task_block_on_runs(void**) {
  auto rt = std::make_unique<uvrt::runtime>();
  auto body = [&]() -> uvrt::task<std::string> {
    const int before = co_await uvrt::to_thread([] { return 4; });
    rt.reset();
    const std::string after = outcome_of([] { (void)uvrt::to_thread([] { return 0; }); });
    co_return std::to_string(before) + " " + after;
  };
  uvrt::runtime* raw = rt.get();
  const std::string seen = raw->block_on(body());

  assert_null(rt.get());
  assert_string_equal(seen.c_str(), "4 runtime_closed");
}

// Embedded in an application's loop that the application turns itself: a runtime destroyed from
// one of its own callbacks ends its teardown during the application's later turns, and the loop
// then closes with 0 (under AddressSanitizer, nothing of the runtime leaks).
static void destroy_from_a_callback_on_the_application_loop(void**) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  std::string outcome;
  auto rt = std::make_unique<uvrt::runtime>(&loop);
  rt->to_thread([] { return 3; }).then([&](uvrt::future<int> f) {
    outcome = std::to_string(f.get());
    rt.reset();
  });
  auto cancelled = rt->to_thread([](std::stop_token token) {
    wait_for_stop(token);
    return 1;
  });
  uv_run(&loop, UV_RUN_DEFAULT);

  assert_null(rt.get());
  assert_string_equal(outcome.c_str(), "3");
  assert_true(cancelled.ready());
  assert_int_equal(uv_loop_close(&loop), 0);
}

// r08: a job that shutdown abandoned is still blocked when the task block_on runs destroys the
// runtime. The destructor does not wait for abandoned jobs, and neither may block_on: it returns
// while the job is still blocked (the test releases it only afterwards).
namespace {

struct held_job {
  std::latch started{1};
  std::latch release{1};
};

// Returns the task's value and whether block_on returned; `loop` is null for a runtime on its
// own loop. The job is released once block_on returned.
int destroy_in_block_on_task_after_shutdown_abandoned_a_job(uv_loop_t* loop, uvrt::shutdown_result& r) {
  auto h = std::make_shared<held_job>();
  auto rt = loop ? std::make_unique<uvrt::runtime>(loop) : std::make_unique<uvrt::runtime>();
  auto f = rt->to_thread([h] {
    h->started.count_down();
    h->release.wait();
    return 1;
  });
  h->started.wait();
  r = rt->shutdown(10ms);
  auto destroyer = [&]() -> uvrt::task<int> {
    rt.reset();
    co_return 7;
  };
  uvrt::runtime* raw = rt.get();
  test::watchdog dog("block_on of a task that destroyed the runtime waits for the job shutdown abandoned");
  const int value = raw->block_on(destroyer());
  dog.disarm();
  h->release.count_down();
  return value;
}

}  // namespace

static void destroy_in_a_task_after_shutdown_does_not_wait_for_the_abandoned_job(void**) {
  uvrt::shutdown_result r{};
  const int value = destroy_in_block_on_task_after_shutdown_abandoned_a_job(nullptr, r);

  assert_int_equal(r.abandoned, 1);
  assert_int_equal(value, 7);
}

static void destroy_in_a_task_after_shutdown_does_not_wait_for_the_abandoned_job_embedded(void**) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uvrt::shutdown_result r{};
  const int value = destroy_in_block_on_task_after_shutdown_abandoned_a_job(&loop, r);
  // The job was released: the application's loop gets it back and then has nothing left.
  test::watchdog dog("the application's uv_run after the abandoned job was released");
  uv_run(&loop, UV_RUN_DEFAULT);
  dog.disarm();
  const int close_rc = uv_loop_close(&loop);

  assert_int_equal(r.abandoned, 1);
  assert_int_equal(value, 7);
  assert_int_equal(close_rc, 0);
}

// r1: runtime B embedded in runtime A's own loop (A.loop()) is destroyed inside the task A's
// block_on runs, while B's job is still running (it ignores the stop request): B's teardown only
// begins, and ends as A's loop turns on, which is in A's destructor. Closing its own loop, A
// closes the handles the application left there, but must leave B's to B's teardown. (Before the
// fix A closed them too, and B, settling its job later, closed them again: libuv aborted.)
//
// The job is released by A's closing of the application's handles, so that it comes back after
// that, not before: the application's pipe handle on A's loop holds one end of a socket pair,
// closing the handle closes that end, and the job waits for the end of file on the other.
static void a_runtime_embedded_in_another_s_own_loop_destroyed_in_its_task_ends_before_it(void**) {
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto* pipe = new uv_pipe_t;  // the application's; freed after A closed it with the loop
  auto started = std::make_shared<std::latch>(1);
  auto a = std::make_unique<uvrt::runtime>();
  assert_int_equal(uv_pipe_init(a->loop(), pipe, 0), 0);
  assert_int_equal(uv_pipe_open(pipe, fds[0]), 0);
  auto b = std::make_unique<uvrt::runtime>(a->loop());
  const int peer = fds[1];
  auto fb = b->to_thread([started, peer] {
    started->count_down();
    char byte;
    ssize_t n;
    // Ignores the stop request B's destructor makes; returns once A closed the pipe handle.
    do n = read(peer, &byte, 1);
    while (n > 0 || (n < 0 && errno == EINTR));
    return n == 0 ? 7 : -1;
  });
  started->wait();
  bool b_destroyed_in_task = false;
  test::watchdog dog("A's block_on and destructor, with B embedded in A's loop destroyed in A's task");
  a->block_on([](std::unique_ptr<uvrt::runtime>& b, bool& done) -> uvrt::task<void> {
    b.reset();  // inside A's loop: B's teardown only begins
    done = true;
    co_return;
  }(b, b_destroyed_in_task));
  const bool fb_ready_before = fb.ready();
  a.reset();
  dog.disarm();
  delete pipe;
  close(peer);
  int value = 0;
  const std::string outcome = outcome_of([&] { value = fb.get(); });

  assert_true(b_destroyed_in_task);
  assert_null(b.get());
  assert_false(fb_ready_before);
  assert_string_equal(outcome.c_str(), "returned");
  assert_int_equal(value, 7);
}

// r1, the misuse: B embedded in A's own loop and never destroyed when A is: A's loop is about to
// go away under B, which is a fatal usage error (a message, then abort). Before the fix, A closed
// B's handles and freed the loop B still used, silently.
static void a_runtime_left_alive_in_another_s_own_loop_is_fatal_when_that_one_is_destroyed(void**) {
  const test::child_end end = test::in_child([] {
    auto* a = new uvrt::runtime();
    auto* b = new uvrt::runtime(a->loop());
    (void)b->block_on(b->to_thread([] { return 1; }));
    delete a;  // must abort: b is still alive on a's loop
    return 0;
  });

  assert_string_equal(end.how.c_str(), ("killed by signal " + std::to_string(SIGABRT)).c_str());
  assert_contains(end.stderr_text, "must be destroyed before that runtime");
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(teardown_cancels_queued_jobs_and_waits_for_running_ones),
      cmocka_unit_test(teardown_returns_only_after_every_job_has_finished),
      cmocka_unit_test(teardown_runs_each_pending_continuation_exactly_once),
      cmocka_unit_test(to_thread_from_a_continuation_during_teardown_throws_runtime_closed),
      cmocka_unit_test(teardown_waits_for_an_abandoned_job_and_disposes_of_its_result),
      cmocka_unit_test(from_thread_during_teardown_is_served),
      cmocka_unit_test(idle_teardown_returns_at_once_and_leaves_the_loop_closable),
      cmocka_unit_test(two_runtimes_in_sequence_on_one_thread_both_work),
      cmocka_unit_test(destroy_from_a_continuation_ends_when_run_returns),
      cmocka_unit_test(destroy_from_the_task_block_on_runs),
      cmocka_unit_test(destroy_from_a_callback_on_the_application_loop),
      cmocka_unit_test(destroy_in_a_task_after_shutdown_does_not_wait_for_the_abandoned_job),
      cmocka_unit_test(destroy_in_a_task_after_shutdown_does_not_wait_for_the_abandoned_job_embedded),
      cmocka_unit_test(a_runtime_embedded_in_another_s_own_loop_destroyed_in_its_task_ends_before_it),
      cmocka_unit_test(a_runtime_left_alive_in_another_s_own_loop_is_fatal_when_that_one_is_destroyed),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
