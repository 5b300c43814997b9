// Cancelling to_thread jobs: future<T>::cancel in both modes, on queued, running and settled
// jobs, and when the continuations of cancelled jobs are resumed.
//
// Jobs are held on the pool by latches the test opens; nothing here sleeps. Values leave the
// workers through atomics and the futures themselves, and every assertion runs on the test
// thread. A failed assertion longjmps out of the test and skips destructors, so a test that holds
// workers at a gate first records what it saw, then opens the gate and drains, and only then
// asserts: otherwise one failure would leave the pool blocked and hang every later test.
#include <atomic>
#include <condition_variable>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// cmocka defines macros with common names, so support.hpp comes after every other header.
#include "support.hpp"

namespace {

using test::outcome_of;
using test::pool_blocker;
using test::tracked;
using test::wait_for_stop;

// co_awaits `f` and describes how the await ended, as outcome_of does for plain calls.
template <class T>
uvrt::task<std::string> await_outcome(uvrt::future<T>& f) {
  try {
    (void)co_await f;
    co_return "returned";
  } catch (const uvrt::cancelled_error&) {
    co_return "cancelled";
  } catch (const std::exception& e) {
    co_return std::string("threw: ") + e.what();
  }
}

// What a job throws, to check that its type survives a cancellation.
struct job_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

// libuv's test-threadpool-cancel: with every worker busy, jobs queued behind them are removed by
// cancel(), never run, and settle as cancelled through co_await, block_on and get alike, while a
// busy job that is cancelled keeps the value it returns.
static void cancel_removes_queued_jobs_from_a_saturated_pool(void**) {
  pool_blocker busy;
  std::atomic<int> queued_runs{0};
  // Copied into every queued callable: its use count shows whether they were all destroyed.
  auto witness = std::make_shared<int>(0);
  uvrt::runtime rt;
  busy.fill(rt);

  const int m = busy.size() + 3;  // at least one future for each way of reading the outcome
  std::vector<uvrt::future<int>> queued;
  for (int i = 0; i < m; ++i) queued.push_back(rt.to_thread([&queued_runs, witness] { return ++queued_runs; }));
  std::vector<uvrt::cancel_result> results;
  for (auto& f : queued) results.push_back(f.cancel());
  const uvrt::cancel_result busy_result = busy.job(0).cancel();

  // Both settle while every worker is still held: a cancelled job needs no worker to settle.
  const std::string by_co_await = rt.block_on(await_outcome(queued[0]));
  const std::string by_block_on = outcome_of([&] { (void)rt.block_on(std::move(queued[1])); });

  busy.open();
  rt.run();  // every held job returns and every after-work callback runs

  for (const auto r : results) assert_string_equal(uvrt::to_string(r), "not_started");
  assert_string_equal(by_co_await.c_str(), "cancelled");
  assert_string_equal(by_block_on.c_str(), "cancelled");
  for (int i = 2; i < m; ++i) {
    auto& f = queued[static_cast<std::size_t>(i)];
    assert_true(f.ready());
    assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  }
  assert_int_equal(queued_runs.load(), 0);
  // The cancelled callables were destroyed without being run, none leaked.
  assert_int_equal(witness.use_count(), 1);

  assert_string_equal(uvrt::to_string(busy_result), "stop_requested");
  for (int i = 0; i < busy.size(); ++i) assert_int_equal(busy.job(i).get(), i);
}

// A job that takes a stop_token and returns once asked to stop: cancel() reports stop_requested
// and the future settles with the job's own value, not as cancelled.
static void cancel_asks_a_running_job_to_stop_and_keeps_its_value(void**) {
  std::latch started{1};
  std::atomic<bool> saw_stop{false};
  uvrt::runtime rt;
  auto f = rt.to_thread([&](std::stop_token token) {
    started.count_down();
    wait_for_stop(token);
    saw_stop = token.stop_requested();
    return 42;
  });
  started.wait();

  const uvrt::cancel_result result = f.cancel();
  // While the loop has not turned, the job's outcome cannot have been delivered yet.
  const bool pending_after_cancel = !f.ready();
  const int value = rt.block_on(std::move(f));

  assert_string_equal(uvrt::to_string(result), "stop_requested");
  assert_true(pending_after_cancel);
  assert_int_equal(value, 42);
  assert_true(saw_stop.load());
}

// Abandoning a running job settles its future as cancelled at once; the job keeps running, and
// the result it returns later is destroyed exactly once, by the time the runtime is gone.
static void abandon_settles_a_running_job_at_once_and_disposes_its_late_result(void**) {
  tracked::reset();
  std::latch started{1};
  std::latch gate{1};
  std::atomic<bool> job_finished{false};
  uvrt::cancel_result result{};
  bool ready_at_once = false;
  bool finished_when_abandoned = true;
  std::string outcome;
  {
    uvrt::runtime rt;
    auto f = rt.to_thread([&] {
      started.count_down();
      gate.wait();
      tracked late(7);
      job_finished = true;
      return late;
    });
    started.wait();

    result = f.cancel(uvrt::cancel_mode::abandon);
    ready_at_once = f.ready();
    outcome = outcome_of([&] { (void)f.get(); });
    finished_when_abandoned = job_finished.load();
    gate.count_down();
  }  // teardown waits for the abandoned job, whose late result arrives and is destroyed

  assert_string_equal(uvrt::to_string(result), "abandoned");
  assert_true(ready_at_once);
  assert_string_equal(outcome.c_str(), "cancelled");
  assert_false(finished_when_abandoned);
  assert_true(job_finished.load());
  assert_true(tracked::constructed.load() >= 1);
  assert_int_equal(tracked::destroyed.load(), tracked::constructed.load());
  assert_int_equal(tracked::live(), 0);
}

// A coroutine awaiting a running job that gets abandoned is resumed with cancelled_error by the
// loop, after cancel() has returned, and before the job itself has finished.
static void abandon_resumes_the_awaiting_coroutine_from_the_loop(void**) {
  tracked::reset();
  std::latch started{1};
  std::latch gate{1};
  std::atomic<bool> job_finished{false};
  bool resumed = false;
  bool resumed_inside_cancel = true;
  bool finished_when_resumed = true;
  uvrt::cancel_result result{};
  std::string awaited;
  {
    uvrt::runtime rt;
    auto f = rt.to_thread([&] {
      started.count_down();
      gate.wait();
      tracked late(1);
      job_finished = true;
      return late;
    });
    started.wait();

    auto waiter = [&]() -> uvrt::task<std::string> {
      // The cancel is posted, so it runs from the loop while this coroutine is suspended on f.
      rt.post([&] {
        result = f.cancel(uvrt::cancel_mode::abandon);
        resumed_inside_cancel = resumed;
      });
      std::string seen = co_await await_outcome(f);
      resumed = true;
      finished_when_resumed = job_finished.load();
      co_return seen;
    };
    awaited = rt.block_on(waiter());
    gate.count_down();
  }

  assert_string_equal(uvrt::to_string(result), "abandoned");
  assert_false(resumed_inside_cancel);
  assert_true(resumed);
  assert_string_equal(awaited.c_str(), "cancelled");
  assert_false(finished_when_resumed);
  assert_true(job_finished.load());
  assert_int_equal(tracked::live(), 0);
  assert_int_equal(tracked::destroyed.load(), tracked::constructed.load());
}

// Abandoning a job that is still queued removes it from the queue: not_started, the future is
// settled at once, and the callable never runs.
static void abandon_of_a_queued_job_settles_at_once_and_never_runs_it(void**) {
  pool_blocker busy;
  std::atomic<int> runs{0};
  uvrt::runtime rt;
  busy.fill(rt);

  auto f = rt.to_thread([&runs] { return ++runs; });
  const uvrt::cancel_result result = f.cancel(uvrt::cancel_mode::abandon);
  const bool ready_at_once = f.ready();
  const std::string outcome = outcome_of([&] { (void)f.get(); });

  busy.open();
  rt.run();

  assert_string_equal(uvrt::to_string(result), "not_started");
  assert_true(ready_at_once);
  assert_string_equal(outcome.c_str(), "cancelled");
  assert_int_equal(runs.load(), 0);
}

// Once a future has settled, cancel() in either mode changes nothing and its value is still
// there to read.
static void cancel_after_settling_reports_already_settled(void**) {
  uvrt::runtime rt;
  auto f = rt.to_thread([] { return 5; });
  rt.run();  // the job runs and its after-work callback settles f
  assert_true(f.ready());

  assert_string_equal(uvrt::to_string(f.cancel()), "already_settled");
  assert_string_equal(uvrt::to_string(f.cancel(uvrt::cancel_mode::abandon)), "already_settled");
  assert_int_equal(f.get(), 5);
}

// Cancelling a queued job twice is harmless: both calls report not_started, the callable never
// runs, and the future settles once (its continuation runs once).
static void cancelling_a_queued_job_twice_settles_it_once(void**) {
  pool_blocker busy;
  std::atomic<int> runs{0};
  int continuation_calls = 0;
  std::string outcome;
  uvrt::runtime rt;
  busy.fill(rt);

  auto f = rt.to_thread([&runs] { return ++runs; });
  const uvrt::cancel_result first = f.cancel();
  const uvrt::cancel_result second = f.cancel();
  std::move(f).then([&](uvrt::future<int> settled) {
    ++continuation_calls;
    outcome = outcome_of([&] { (void)settled.get(); });
  });

  busy.open();
  rt.run();

  assert_string_equal(uvrt::to_string(first), "not_started");
  assert_string_equal(uvrt::to_string(second), "not_started");
  assert_int_equal(continuation_calls, 1);
  assert_string_equal(outcome.c_str(), "cancelled");
  assert_int_equal(runs.load(), 0);
}

// Cancelling a running job twice in wait mode asks it to stop twice and still delivers its
// value once.
static void cancelling_a_running_job_twice_keeps_its_value(void**) {
  std::latch started{1};
  std::latch gate{1};
  int continuation_calls = 0;
  int value = 0;
  uvrt::runtime rt;
  auto f = rt.to_thread([&] {
    started.count_down();
    gate.wait();
    return 11;
  });
  started.wait();

  const uvrt::cancel_result first = f.cancel();
  const uvrt::cancel_result second = f.cancel();
  std::move(f).then([&](uvrt::future<int> settled) {
    ++continuation_calls;
    value = settled.get();
  });
  gate.count_down();
  rt.run();

  assert_string_equal(uvrt::to_string(first), "stop_requested");
  assert_string_equal(uvrt::to_string(second), "stop_requested");
  assert_int_equal(continuation_calls, 1);
  assert_int_equal(value, 11);
}

// Abandoning a running job settles it on the first call, so a second cancel() in either mode
// finds it settled and changes nothing.
static void cancelling_an_abandoned_job_again_reports_already_settled(void**) {
  std::latch started{1};
  std::latch gate{1};
  uvrt::runtime rt;
  auto f = rt.to_thread([&] {
    started.count_down();
    gate.wait();
    return 12;
  });
  started.wait();

  const uvrt::cancel_result first = f.cancel(uvrt::cancel_mode::abandon);
  const uvrt::cancel_result again_abandon = f.cancel(uvrt::cancel_mode::abandon);
  const uvrt::cancel_result again_wait = f.cancel(uvrt::cancel_mode::wait);
  const std::string outcome = outcome_of([&] { (void)f.get(); });
  gate.count_down();
  rt.run();  // the abandoned job returns and its late value is dropped

  assert_string_equal(uvrt::to_string(first), "abandoned");
  assert_string_equal(uvrt::to_string(again_abandon), "already_settled");
  assert_string_equal(uvrt::to_string(again_wait), "already_settled");
  assert_string_equal(outcome.c_str(), "cancelled");
}

// A future without state (default-constructed, moved from, or consumed by get) cannot be
// cancelled: usage_error, whose message names the call.
static void cancel_on_an_empty_future_throws_usage_error(void**) {
  uvrt::runtime rt;

  uvrt::future<int> never_assigned;
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)never_assigned.cancel(); }), "cancel");

  auto source = rt.to_thread([] { return 1; });
  auto target = std::move(source);
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)source.cancel(uvrt::cancel_mode::abandon); }),
                  "cancel");

  assert_int_equal(rt.block_on(std::move(target)), 1);
  auto consumed = rt.to_thread([] { return 2; });
  rt.run();
  assert_int_equal(consumed.get(), 2);
  assert_contains(test::expect_throw<uvrt::usage_error>([&] { (void)consumed.cancel(); }), "cancel");
}

// cancel() belongs to the loop thread: from another thread, on a pending future, it throws
// usage_error and leaves the job alone, so it still delivers its value.
static void cancel_from_a_foreign_thread_throws_usage_error(void**) {
  std::latch started{1};
  std::latch gate{1};
  uvrt::runtime rt;
  auto f = rt.to_thread([&] {
    started.count_down();
    gate.wait();
    return 3;
  });
  started.wait();

  std::string foreign_outcome;
  std::string foreign_message;
  std::thread foreign([&] {
    // No assertion here: cmocka's state belongs to the test thread. The outcome is carried out.
    try {
      (void)f.cancel();
      foreign_outcome = "returned";
    } catch (const uvrt::usage_error& e) {
      foreign_outcome = "usage_error";
      foreign_message = e.what();
    } catch (...) {
      foreign_outcome = "another exception";
    }
  });
  foreign.join();
  gate.count_down();
  const int value = rt.block_on(std::move(f));

  assert_string_equal(foreign_outcome.c_str(), "usage_error");
  assert_contains(foreign_message, "uvrt::future::cancel");
  assert_int_equal(value, 3);
}

// anyio's "cancelled before the thread starts": a stop_token job that is cancelled while queued
// never runs, so it never sees its token, and its future settles as cancelled.
static void cancel_before_start_means_the_job_never_runs(void**) {
  pool_blocker busy;
  std::atomic<int> runs{0};
  uvrt::runtime rt;
  busy.fill(rt);

  auto f = rt.to_thread([&runs](std::stop_token token) {
    ++runs;
    return token.stop_requested();
  });
  const uvrt::cancel_result result = f.cancel();
  const std::string outcome = outcome_of([&] { (void)rt.block_on(std::move(f)); });
  busy.open();
  rt.run();

  assert_string_equal(uvrt::to_string(result), "not_started");
  assert_string_equal(outcome.c_str(), "cancelled");
  assert_int_equal(runs.load(), 0);
}

// A running job that answers a stop request by throwing delivers that exception, type and
// message intact: cancel in wait mode does not replace the job's outcome with cancelled_error.
static void a_job_that_throws_when_stopped_delivers_its_exception(void**) {
  std::latch started{1};
  uvrt::runtime rt;
  auto f = rt.to_thread([&](std::stop_token token) -> int {
    started.count_down();
    wait_for_stop(token);
    throw job_failure("stopped before finishing");
  });
  started.wait();

  const uvrt::cancel_result result = f.cancel();
  const std::string message = test::expect_throw<job_failure>([&] { (void)rt.block_on(std::move(f)); });

  assert_string_equal(uvrt::to_string(result), "stop_requested");
  assert_string_equal(message.c_str(), "stopped before finishing");
}

// The same kind of job cancelled in the two modes: wait keeps the value it returns once
// stopped, abandon drops it (and destroys it when it arrives).
static void wait_keeps_the_value_and_abandon_drops_it(void**) {
  tracked::reset();
  std::latch wait_started{1};
  std::latch abandon_started{1};
  auto stoppable = [](std::latch& started) {
    return [&started](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);
      return tracked(5);
    };
  };
  uvrt::cancel_result wait_result{}, abandon_result{};
  int kept = 0;
  std::string dropped;
  {
    uvrt::runtime rt;
    auto waited = rt.to_thread(stoppable(wait_started));
    wait_started.wait();
    wait_result = waited.cancel(uvrt::cancel_mode::wait);
    kept = *rt.block_on(std::move(waited)).payload;

    auto abandoned = rt.to_thread(stoppable(abandon_started));
    abandon_started.wait();
    abandon_result = abandoned.cancel(uvrt::cancel_mode::abandon);
    dropped = outcome_of([&] { (void)abandoned.get(); });
  }

  assert_string_equal(uvrt::to_string(wait_result), "stop_requested");
  assert_int_equal(kept, 5);
  assert_string_equal(uvrt::to_string(abandon_result), "abandoned");
  assert_string_equal(dropped.c_str(), "cancelled");
  assert_int_equal(tracked::live(), 0);
  assert_int_equal(tracked::destroyed.load(), tracked::constructed.load());
}

// Abandoning a job that stops as soon as it is asked: the job may return, and store its result
// in the job's block, while cancel() is still settling the future on the loop thread. Repeated to
// make that overlap likely (ThreadSanitizer then checks the two threads do not race); every round
// must still report abandoned, settle as cancelled, and destroy the late result exactly once.
static void abandoning_jobs_that_stop_at_once_disposes_of_every_late_result(void**) {
  tracked::reset();
  constexpr int rounds = 100;
  std::atomic<int> started{0};
  std::vector<uvrt::cancel_result> results;
  std::vector<std::string> outcomes;
  {
    uvrt::runtime rt;
    for (int round = 0; round < rounds; ++round) {
      auto f = rt.to_thread([&started, round](std::stop_token token) {
        started.fetch_add(1);
        started.notify_all();
        wait_for_stop(token);
        return tracked(round);
      });
      // Wait until this round's job is running, so that the cancel finds it on a worker.
      for (int seen = started.load(); seen <= round; seen = started.load()) started.wait(seen);
      results.push_back(f.cancel(uvrt::cancel_mode::abandon));
      outcomes.push_back(outcome_of([&] { (void)f.get(); }));
    }
  }  // teardown waits for the late results still on their way

  for (const auto r : results) assert_string_equal(uvrt::to_string(r), "abandoned");
  for (const auto& o : outcomes) assert_string_equal(o.c_str(), "cancelled");
  assert_true(tracked::constructed.load() >= rounds);
  assert_int_equal(tracked::destroyed.load(), tracked::constructed.load());
  assert_int_equal(tracked::live(), 0);
}

// More jobs than any runtime hands to libuv at once (1024, or four per pool thread): submitted
// after this many, a job waits in the runtime's own queue instead of libuv's.
constexpr int beyond_libuv = 5000;

// Cancelling a queued job never resumes its waiting coroutine inside cancel(): in either mode the
// coroutine is resumed later, by the loop, with cancelled_error. `ahead` jobs are queued before
// it, so that it waits in libuv's queue (0) or in the runtime's (beyond_libuv).
static void check_queued_cancel_resumes_later(uvrt::cancel_mode mode, int ahead = 0) {
  pool_blocker busy;
  std::atomic<int> runs{0};
  bool resumed = false;
  bool resumed_inside_cancel = true;
  uvrt::cancel_result result{};
  uvrt::runtime rt;
  busy.fill(rt);

  std::vector<uvrt::future<int>> others;
  for (int i = 0; i < ahead; ++i) others.push_back(rt.to_thread([i] { return i; }));
  auto f = rt.to_thread([&runs] { return ++runs; });
  auto waiter = [&]() -> uvrt::task<std::string> {
    // Posted, so the cancel runs from the loop while this coroutine is suspended on f.
    rt.post([&] {
      result = f.cancel(mode);
      resumed_inside_cancel = resumed;
    });
    std::string seen = co_await await_outcome(f);
    resumed = true;
    co_return seen;
  };
  const std::string awaited = rt.block_on(waiter());
  busy.open();
  rt.run();

  assert_string_equal(uvrt::to_string(result), "not_started");
  assert_false(resumed_inside_cancel);
  assert_true(resumed);
  assert_string_equal(awaited.c_str(), "cancelled");
  assert_int_equal(runs.load(), 0);
  for (int i = 0; i < ahead; ++i) assert_int_equal(others[static_cast<std::size_t>(i)].get(), i);
}

static void cancel_of_a_queued_job_resumes_the_awaiter_later_from_the_loop(void**) {
  check_queued_cancel_resumes_later(uvrt::cancel_mode::wait);
}

static void abandon_of_a_queued_job_resumes_the_awaiter_later_from_the_loop(void**) {
  check_queued_cancel_resumes_later(uvrt::cancel_mode::abandon);
}

static void cancel_of_a_job_in_the_runtimes_queue_resumes_the_awaiter_later(void**) {
  check_queued_cancel_resumes_later(uvrt::cancel_mode::wait, beyond_libuv);
}

static void abandon_of_a_job_in_the_runtimes_queue_resumes_the_awaiter_later(void**) {
  check_queued_cancel_resumes_later(uvrt::cancel_mode::abandon, beyond_libuv);
}

// Jobs cancelled in either queue, libuv's or the runtime's, never run and settle once as
// cancelled; the jobs between them run, each once, and keep their values.
static void cancel_reaches_jobs_in_both_queues(void**) {
  pool_blocker busy;
  uvrt::runtime rt;
  busy.fill(rt);
  std::vector<std::atomic<int>> runs(beyond_libuv);
  std::vector<uvrt::future<int>> futures;
  for (int i = 0; i < beyond_libuv; ++i) {
    futures.push_back(rt.to_thread([&runs, i] {
      runs[static_cast<std::size_t>(i)].fetch_add(1);
      return i;
    }));
  }
  std::vector<int> refused;
  for (int i = 0; i < beyond_libuv; i += 3) {
    if (futures[static_cast<std::size_t>(i)].cancel() != uvrt::cancel_result::not_started) refused.push_back(i);
  }
  busy.open();
  rt.run();

  assert_int_equal(refused.size(), 0);
  for (int i = 0; i < beyond_libuv; ++i) {
    auto& f = futures[static_cast<std::size_t>(i)];
    const int ran = runs[static_cast<std::size_t>(i)].load();
    if (i % 3 == 0) {
      assert_int_equal(ran, 0);
      assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
    } else {
      assert_int_equal(ran, 1);
      assert_int_equal(f.get(), i);
    }
  }
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancel_removes_queued_jobs_from_a_saturated_pool),
      cmocka_unit_test(cancel_asks_a_running_job_to_stop_and_keeps_its_value),
      cmocka_unit_test(abandon_settles_a_running_job_at_once_and_disposes_its_late_result),
      cmocka_unit_test(abandon_resumes_the_awaiting_coroutine_from_the_loop),
      cmocka_unit_test(abandon_of_a_queued_job_settles_at_once_and_never_runs_it),
      cmocka_unit_test(cancel_after_settling_reports_already_settled),
      cmocka_unit_test(cancelling_a_queued_job_twice_settles_it_once),
      cmocka_unit_test(cancelling_a_running_job_twice_keeps_its_value),
      cmocka_unit_test(cancelling_an_abandoned_job_again_reports_already_settled),
      cmocka_unit_test(cancel_on_an_empty_future_throws_usage_error),
      cmocka_unit_test(cancel_from_a_foreign_thread_throws_usage_error),
      cmocka_unit_test(cancel_before_start_means_the_job_never_runs),
      cmocka_unit_test(a_job_that_throws_when_stopped_delivers_its_exception),
      cmocka_unit_test(wait_keeps_the_value_and_abandon_drops_it),
      cmocka_unit_test(abandoning_jobs_that_stop_at_once_disposes_of_every_late_result),
      cmocka_unit_test(cancel_of_a_queued_job_resumes_the_awaiter_later_from_the_loop),
      cmocka_unit_test(abandon_of_a_queued_job_resumes_the_awaiter_later_from_the_loop),
      cmocka_unit_test(cancel_of_a_job_in_the_runtimes_queue_resumes_the_awaiter_later),
      cmocka_unit_test(abandon_of_a_job_in_the_runtimes_queue_resumes_the_awaiter_later),
      cmocka_unit_test(cancel_reaches_jobs_in_both_queues),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
