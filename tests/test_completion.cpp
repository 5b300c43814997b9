// Completion: how finished jobs reach the loop. A runtime hands at most 1024 jobs to libuv at
// a time and keeps the rest in its own queue; libuv runs every finished job's after-work callback
// in one go, and uvrt settles them in slices of bounded time and keeps the rest in a backlog, so
// a burst of completions cannot stall the loop's timers and sockets.
//
// Most tests make a burst the same way, without sleeping: jobs count down a latch when they have
// run, and the test thread waits on it before it lets the loop turn, so all the completions are
// waiting in libuv's queue together when the loop first looks. That needs every job of the burst
// in libuv's hands at once, so a burst is at most the 1024 jobs a runtime hands over.
#include <uv.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <vector>

#include "support.hpp"

namespace {

constexpr int burst = 1000;

// Settling a job costs time in real programs (the continuation does the application's work).
// Here each continuation spends 2 us on the clock, so that a burst of 1000 fills a dozen 0.2 ms
// slices on any machine. This is the workload, not a way to wait for anything.
void spend_settling_time() {
  const std::uint64_t end = uv_hrtime() + 2000;
  while (uv_hrtime() < end) {
  }
}

// Submits `n` jobs returning their index and waits until every one has run on the pool.
std::vector<uvrt::future<int>> finished_burst(uvrt::runtime& rt, int n) {
  std::latch ran(n);
  std::vector<uvrt::future<int>> futures;
  futures.reserve(n);
  for (int i = 0; i < n; ++i) {
    futures.push_back(rt.to_thread([&ran, i] {
      ran.count_down();
      return i;
    }));
  }
  ran.wait();
  return futures;
}

// Records, on every turn of the loop, how many jobs had settled by then. A prepare handle runs
// once per turn, in the same turn as the loop's timers (a repeating timer cannot be made to fire
// on every turn: libuv runs timers in whole milliseconds).
struct turn_probe {
  uv_prepare_t prepare;
  const int* settled;
  int total;
  std::vector<int> seen;

  turn_probe(uv_loop_t* loop, const int* s, int n) : settled(s), total(n) {
    uv_prepare_init(loop, &prepare);
    prepare.data = this;
    uv_prepare_start(&prepare, [](uv_prepare_t* p) {
      auto* self = static_cast<turn_probe*>(p->data);
      self->seen.push_back(*self->settled);
    });
    // Unreferenced: it watches the loop without keeping runtime::run going.
    uv_unref(reinterpret_cast<uv_handle_t*>(&prepare));
  }
  // Closes the handle and turns the loop until the close completed.
  void close(uv_loop_t* loop) {
    bool closed = false;
    prepare.data = &closed;
    uv_close(reinterpret_cast<uv_handle_t*>(&prepare), [](uv_handle_t* h) { *static_cast<bool*>(h->data) = true; });
    while (!closed) uv_run(loop, UV_RUN_NOWAIT);
  }
  int partial_turns() const {
    int n = 0;
    for (int s : seen) n += s > 0 && s < total;
    return n;
  }
};

void a_burst_settles_once_each_over_several_turns(void**) {
  uvrt::runtime rt;
  auto futures = finished_burst(rt, burst);
  int settled = 0;
  std::vector<int> order;
  for (auto& f : futures) {
    std::move(f).then([&](uvrt::future<int> done) {
      spend_settling_time();
      order.push_back(done.get());
      ++settled;
    });
  }
  turn_probe probe(rt.loop(), &settled, burst);
  rt.run();
  probe.close(rt.loop());

  // Each job settled once (in the order the workers finished them, which libuv keeps).
  assert_int_equal(settled, burst);
  std::sort(order.begin(), order.end());
  for (int i = 0; i < burst; ++i) assert_int_equal(order[static_cast<std::size_t>(i)], i);
  // The loop turned between slices: it saw the burst partly settled on several turns, where
  // settling all of it in libuv's one go would show none, then all.
  assert_true(probe.partial_turns() >= 2);
}

// Far more jobs than a runtime hands to libuv at once: the rest wait in its queue, and each is
// still settled once, with its own value.
void an_awaited_burst_resumes_each_waiter_once(void**) {
  constexpr int many = 20000;
  uvrt::runtime rt;
  std::vector<uvrt::future<int>> futures;
  for (int i = 0; i < many; ++i) futures.push_back(rt.to_thread([i] { return i; }));
  auto sum_all = [](std::vector<uvrt::future<int>>& fs) -> uvrt::task<long> {
    long sum = 0;
    for (auto& f : fs) sum += co_await f;
    co_return sum;
  };
  assert_int_equal(rt.block_on(sum_all(futures)), static_cast<long>(many) * (many - 1) / 2);
}

void cancelling_a_job_waiting_in_the_backlog_keeps_its_value(void**) {
  uvrt::runtime rt;
  auto futures = finished_burst(rt, burst);
  auto& last = futures.back();
  uvrt::cancel_result answer = uvrt::cancel_result::already_settled;
  int settled = 0;
  bool cancelled_in_backlog = false;
  for (int i = 0; i + 1 < burst; ++i) {
    std::move(futures[static_cast<std::size_t>(i)]).then([&](uvrt::future<int> done) {
      spend_settling_time();
      done.get();
      // Half the jobs have settled, over several slices, and the last has not: it has run and
      // waits in the backlog.
      if (++settled == burst / 2) {
        cancelled_in_backlog = !last.ready();
        answer = last.cancel();
      }
    });
  }
  rt.run();
  assert_true(cancelled_in_backlog);
  // It had already finished: nothing is left to cancel, and its value is kept.
  assert_string_equal(uvrt::to_string(answer), "stop_requested");
  assert_int_equal(last.get(), burst - 1);
}

void abandoning_a_job_waiting_in_the_backlog_drops_its_value_once(void**) {
  test::tracked::reset();
  {
    uvrt::runtime rt;
    std::latch ran(burst);
    std::vector<uvrt::future<test::tracked>> futures;
    for (int i = 0; i < burst; ++i) {
      futures.push_back(rt.to_thread([&ran, i] {
        ran.count_down();
        return test::tracked(i);
      }));
    }
    ran.wait();
    auto& last = futures.back();
    bool was_pending = false, ready_after = false;
    uvrt::cancel_result answer = uvrt::cancel_result::already_settled;
    std::string outcome;
    int settled = 0;
    for (int i = 0; i + 1 < burst; ++i) {
      std::move(futures[static_cast<std::size_t>(i)]).then([&](uvrt::future<test::tracked> done) {
        spend_settling_time();
        done.get();
        if (++settled != burst / 2) return;
        was_pending = !last.ready();
        answer = last.cancel(uvrt::cancel_mode::abandon);
        ready_after = last.ready();
        outcome = test::outcome_of([&] { last.get(); });
      });
    }
    rt.run();
    assert_true(was_pending);
    assert_string_equal(uvrt::to_string(answer), "abandoned");
    assert_true(ready_after);
    assert_string_equal(outcome.c_str(), "cancelled");
  }
  assert_int_equal(test::tracked::live(), 0);
}

void teardown_settles_the_backlog(void**) {
  std::vector<uvrt::future<int>> futures;
  {
    uvrt::runtime rt;
    futures = finished_burst(rt, burst);
  }
  for (int i = 0; i < burst; ++i) {
    auto& f = futures[static_cast<std::size_t>(i)];
    assert_true(f.ready());
    assert_int_equal(f.get(), i);
  }
}

}  // namespace

int main() {
  const CMUnitTest tests[] = {
      cmocka_unit_test(a_burst_settles_once_each_over_several_turns),
      cmocka_unit_test(an_awaited_burst_resumes_each_waiter_once),
      cmocka_unit_test(cancelling_a_job_waiting_in_the_backlog_keeps_its_value),
      cmocka_unit_test(abandoning_a_job_waiting_in_the_backlog_drops_its_value_once),
      cmocka_unit_test(teardown_settles_the_backlog),
  };
  return cmocka_run_group_tests_name("completion", tests, nullptr, nullptr);
}
