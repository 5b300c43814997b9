// uvrt::limiter and job_options: at most tokens() jobs of a limiter run at once, on one runtime or
// on several runtimes on several threads; the others wait in submission order, can be cancelled,
// and are cancelled by teardown and shutdown; set_tokens grows at once and shrinks as jobs finish;
// a limiter destroyed while jobs use it is a fatal usage error (see uvrt/limiter.hpp).
//
// Jobs are held by latches the test opens; jobs that only stand for work sleep briefly so that
// jobs overlap, never as synchronisation. Concurrency is counted inside the jobs with atomics and
// the highest count is checked afterwards. Every assertion runs on the test thread, after the
// held jobs have been released: a failing assertion longjmps out of the test and must not leave
// workers waiting at a gate.
#include <algorithm>
#include <atomic>
#include <chrono>
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

using namespace std::chrono_literals;
using test::outcome_of;
using test::wait_for_stop;

// How many jobs run at this moment, and the most that ever did.
struct concurrency {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};

  void enter() {
    const int n = ++now;
    int seen = peak.load();
    while (n > seen && !peak.compare_exchange_weak(seen, n)) {
    }
  }
  void leave() { --now; }
};

// The first `n` callers wait for each other; later callers pass. The first `n` jobs to start can
// therefore only all return if `n` of them run at the same time.
class first_n_meet {
 public:
  explicit first_n_meet(int n) : n_(n), met_(n) {}
  // True for the callers that met.
  bool arrive() {
    if (ticket_++ >= n_) return false;
    met_.arrive_and_wait();
    return true;
  }

 private:
  const int n_;
  std::atomic<int> ticket_{0};
  std::latch met_;
};

// Nothing borrowed, nobody waiting: the state in which the limiter may be destroyed.
void expect_unused(const uvrt::limiter& l) {
  assert_int_equal(l.borrowed(), 0);
  assert_int_equal(l.waiting(), 0);
}

}  // namespace

// 0 tokens could never run a job: the constructor and set_tokens refuse it, and a refused
// set_tokens changes nothing.
static void zero_tokens_are_refused(void**) {
  const std::string msg = test::expect_throw<std::invalid_argument>([] { uvrt::limiter l(0); });
  assert_contains(msg, "0 tokens");
  uvrt::limiter l(2);
  assert_int_equal(l.tokens(), 2);
  expect_unused(l);
  assert_contains(test::expect_throw<std::invalid_argument>([&] { l.set_tokens(0); }), "0 tokens");
  assert_int_equal(l.tokens(), 2);
  l.set_tokens(5);
  assert_int_equal(l.tokens(), 5);
}

// tokens(), borrowed() and waiting() while jobs hold tokens and wait for them: a job borrows its
// token when it is submitted (or granted one) and gives it back when it is back on the loop,
// where the next waiting job takes it at once.
static void counts_follow_jobs_that_run_and_wait(void**) {
  test::watchdog dog("counts_follow_jobs_that_run_and_wait");
  uvrt::limiter l(2);
  std::latch gates[5] = {std::latch(1), std::latch(1), std::latch(1), std::latch(1), std::latch(1)};
  std::size_t borrowed[5], waiting[5];
  std::vector<uvrt::future<int>> fs;
  {
    uvrt::runtime rt;
    for (int i = 0; i < 5; ++i)
      fs.push_back(rt.to_thread(uvrt::job_options{&l}, [&gates, i] {
        gates[i].wait();
        return i;
      }));
    borrowed[0] = l.borrowed();
    waiting[0] = l.waiting();
    // Each job returned and back on the loop hands its token to the next one in line.
    for (int i = 0; i < 4; ++i) {
      gates[i].count_down();
      (void)rt.block_on(std::move(fs[static_cast<std::size_t>(i)]));
      borrowed[i + 1] = l.borrowed();
      waiting[i + 1] = l.waiting();
    }
    gates[4].count_down();
    (void)rt.block_on(std::move(fs[4]));
  }
  dog.disarm();
  // Submitted: two hold the tokens, three wait.
  assert_int_equal(borrowed[0], 2);
  assert_int_equal(waiting[0], 3);
  // Job 0 back: job 2 holds its token. Job 1 back: job 3. Job 2 back: job 4, nobody waits.
  assert_int_equal(borrowed[1], 2);
  assert_int_equal(waiting[1], 2);
  assert_int_equal(borrowed[2], 2);
  assert_int_equal(waiting[2], 1);
  assert_int_equal(borrowed[3], 2);
  assert_int_equal(waiting[3], 0);
  // Job 3 back: only job 4 holds one.
  assert_int_equal(borrowed[4], 1);
  assert_int_equal(waiting[4], 0);
  assert_int_equal(l.tokens(), 2);
  expect_unused(l);
}

// 1000 jobs through a limiter of 3 tokens (the target), counted: how many run at once, and
// how often each ran and what its future got. The first 3 to start wait for each other, so 3 do
// run at once; the others stand for a little work, so that they would overlap if allowed to.
struct limited_batch {
  static constexpr int n = 1000;
  const int together = std::min(3, uvrt::threadpool_size());
  uvrt::limiter l{3};
  concurrency c;
  first_n_meet meet{together};
  std::vector<std::atomic<int>> runs = std::vector<std::atomic<int>>(n);
  std::vector<int> got = std::vector<int>(n, -1);

  // Submits jobs first..last-1 on `rt` and waits for them there.
  void run_on(uvrt::runtime& rt, int first, int last) {
    std::vector<uvrt::future<int>> fs;
    for (int i = first; i < last; ++i)
      fs.push_back(rt.to_thread(uvrt::job_options{&l}, [this, i] {
        c.enter();
        ++runs[static_cast<std::size_t>(i)];
        if (!meet.arrive()) std::this_thread::sleep_for(50us);
        c.leave();
        return i;
      }));
    for (int i = first; i < last; ++i) got[static_cast<std::size_t>(i)] = rt.block_on(std::move(fs[static_cast<std::size_t>(i - first)]));
  }

  // Never more than 3 at once, 3 at some point; each job ran once and returned its own value.
  void check() {
    assert_true(c.peak.load() <= 3);
    assert_true(c.peak.load() >= together);
    for (int i = 0; i < n; ++i) {
      assert_int_equal(runs[static_cast<std::size_t>(i)].load(), 1);
      assert_int_equal(got[static_cast<std::size_t>(i)], i);
    }
    expect_unused(l);
  }
};

static void a_limiter_of_3_bounds_1000_jobs_on_one_runtime(void**) {
  test::watchdog dog("a_limiter_of_3_bounds_1000_jobs_on_one_runtime", 60s);
  limited_batch batch;
  {
    uvrt::runtime rt;
    batch.run_on(rt, 0, limited_batch::n);
  }
  dog.disarm();
  batch.check();
}

// The same with one limiter shared by two runtimes, each on a thread of its own that submits 500
// of the jobs and turns its own loop: the 3 tokens bound both together.
static void a_limiter_of_3_bounds_1000_jobs_of_two_runtimes_on_two_threads(void**) {
  test::watchdog dog("a_limiter_of_3_bounds_1000_jobs_of_two_runtimes_on_two_threads", 60s);
  limited_batch batch;
  constexpr int half = limited_batch::n / 2;
  std::string errors[2];
  std::latch both_ready(2);
  auto side = [&](int t) {
    try {
      uvrt::runtime rt;
      both_ready.arrive_and_wait();  // both submit at the same time
      batch.run_on(rt, t * half, (t + 1) * half);
    } catch (const std::exception& e) {
      errors[t] = e.what();
    }
  };
  std::thread a(side, 0);
  std::thread b(side, 1);
  a.join();
  b.join();
  dog.disarm();
  assert_string_equal(errors[0].c_str(), "");
  assert_string_equal(errors[1].c_str(), "");
  batch.check();
}

// With one token the jobs run one at a time, so the order in which they start is the order in
// which the waiting jobs got the token: the order they were submitted in.
static void waiting_jobs_start_in_submission_order(void**) {
  test::watchdog dog("waiting_jobs_start_in_submission_order");
  constexpr int n = 50;
  uvrt::limiter l(1);
  std::latch gate(1);
  std::mutex m;
  std::vector<int> order;
  {
    uvrt::runtime rt;
    std::vector<uvrt::future<void>> fs;
    fs.push_back(rt.to_thread(uvrt::job_options{&l}, [&] {
      gate.wait();  // holds the token until every other job waits
      std::lock_guard lock(m);
      order.push_back(0);
    }));
    for (int i = 1; i < n; ++i)
      fs.push_back(rt.to_thread(uvrt::job_options{&l}, [&, i] {
        std::lock_guard lock(m);
        order.push_back(i);
      }));
    gate.count_down();
    for (auto& f : fs) rt.block_on(std::move(f));
  }
  dog.disarm();
  assert_int_equal(order.size(), n);
  for (int i = 0; i < n; ++i) assert_int_equal(order[static_cast<std::size_t>(i)], i);
}

// One line for every runtime: jobs of two runtimes (on the test thread, each with its own loop)
// submitted alternately start alternately. Each job's runtime is turned in the order expected,
// so a token handed to the wrong runtime's job would leave the next block_on waiting (HANG).
static void waiting_jobs_of_two_runtimes_share_one_line(void**) {
  test::watchdog dog("waiting_jobs_of_two_runtimes_share_one_line");
  constexpr int n = 8;
  uvrt::limiter l(1);
  std::latch gate(1);
  std::mutex m;
  std::vector<int> order;
  {
    uvrt::runtime a;
    uvrt::runtime b;
    std::vector<uvrt::future<int>> fs;
    fs.push_back(a.to_thread(uvrt::job_options{&l}, [&] {
      gate.wait();
      std::lock_guard lock(m);
      order.push_back(0);
      return 0;
    }));
    for (int i = 1; i < n; ++i) {
      uvrt::runtime& rt = i % 2 ? b : a;
      fs.push_back(rt.to_thread(uvrt::job_options{&l}, [&, i] {
        std::lock_guard lock(m);
        order.push_back(i);
        return i;
      }));
    }
    gate.count_down();
    for (int i = 0; i < n; ++i) {
      uvrt::runtime& rt = i % 2 ? b : a;
      (void)rt.block_on(std::move(fs[static_cast<std::size_t>(i)]));
    }
  }
  dog.disarm();
  assert_int_equal(order.size(), n);
  for (int i = 0; i < n; ++i) assert_int_equal(order[static_cast<std::size_t>(i)], i);
  assert_int_equal(l.borrowed(), 0);
}

// set_tokens growing the limiter starts waiting jobs at once: one token, held by a job that
// blocks until the test lets it go; five jobs wait; set_tokens(6) from another thread grants
// them the new tokens, and they run and settle while the first job still blocks.
static void growing_the_tokens_starts_waiting_jobs_at_once(void**) {
  test::watchdog dog("growing_the_tokens_starts_waiting_jobs_at_once");
  uvrt::limiter l(1);
  std::latch holder_started(1);
  std::latch gate(1);
  std::atomic<bool> holder_returned{false};
  std::atomic<int> rest_runs{0};
  std::size_t waiting_before = 0, borrowed_after = 0, waiting_after = 0, tokens_after = 0;
  bool holder_returned_when_rest_settled = true;
  bool holder_ready_when_rest_settled = true;
  std::vector<int> rest_values;
  int holder_value = -1;
  {
    uvrt::runtime rt;
    auto holder = rt.to_thread(uvrt::job_options{&l}, [&] {
      holder_started.count_down();
      gate.wait();
      holder_returned = true;
      return 100;
    });
    std::vector<uvrt::future<int>> rest;
    for (int i = 0; i < 5; ++i)
      rest.push_back(rt.to_thread(uvrt::job_options{&l}, [&, i] {
        ++rest_runs;
        return i;
      }));
    holder_started.wait();
    waiting_before = l.waiting();
    std::thread([&] { l.set_tokens(6); }).join();
    tokens_after = l.tokens();
    borrowed_after = l.borrowed();
    waiting_after = l.waiting();
    for (auto& f : rest) rest_values.push_back(rt.block_on(std::move(f)));
    holder_returned_when_rest_settled = holder_returned.load();
    holder_ready_when_rest_settled = holder.ready();
    gate.count_down();
    holder_value = rt.block_on(std::move(holder));
  }
  dog.disarm();
  assert_int_equal(waiting_before, 5);
  assert_int_equal(tokens_after, 6);
  assert_int_equal(borrowed_after, 6);  // granted at once, under the limiter's lock
  assert_int_equal(waiting_after, 0);
  assert_false(holder_returned_when_rest_settled);
  assert_false(holder_ready_when_rest_settled);
  assert_int_equal(rest_runs.load(), 5);
  for (int i = 0; i < 5; ++i) assert_int_equal(rest_values[static_cast<std::size_t>(i)], i);
  assert_int_equal(holder_value, 100);
  assert_int_equal(l.borrowed(), 0);
}

// set_tokens shrinking the limiter interrupts nothing and takes effect as jobs give their tokens
// back: of three holders, the first two to return hand their tokens to nobody; the third hands its
// token to the first waiting job, and from then on the waiting jobs run one at a time.
static void shrinking_the_tokens_takes_effect_as_jobs_finish(void**) {
  test::watchdog dog("shrinking_the_tokens_takes_effect_as_jobs_finish");
  uvrt::limiter l(3);
  std::latch gates[3] = {std::latch(1), std::latch(1), std::latch(1)};
  std::latch later_gate(1);  // holds the later jobs until the counts are read
  concurrency c;
  std::atomic<int> later_runs{0};
  std::size_t borrowed[4], waiting[4];
  int later_runs_while_holders_ran = -1;
  {
    uvrt::runtime rt;
    std::vector<uvrt::future<int>> holders;
    for (int i = 0; i < 3; ++i)
      holders.push_back(rt.to_thread(uvrt::job_options{&l}, [&, i] {
        gates[i].wait();
        return i;
      }));
    std::vector<uvrt::future<int>> later;
    for (int i = 0; i < 6; ++i)
      later.push_back(rt.to_thread(uvrt::job_options{&l}, [&, i] {
        c.enter();
        ++later_runs;
        later_gate.wait();
        std::this_thread::sleep_for(1ms);  // work, so that jobs would overlap if allowed
        c.leave();
        return i;
      }));
    l.set_tokens(1);
    borrowed[0] = l.borrowed();
    waiting[0] = l.waiting();
    for (int i = 0; i < 3; ++i) {
      gates[i].count_down();
      (void)rt.block_on(std::move(holders[static_cast<std::size_t>(i)]));
      borrowed[i + 1] = l.borrowed();
      waiting[i + 1] = l.waiting();
      if (i == 1) later_runs_while_holders_ran = later_runs.load();
    }
    later_gate.count_down();
    for (auto& f : later) (void)rt.block_on(std::move(f));
  }
  dog.disarm();
  assert_int_equal(l.tokens(), 1);
  // Shrunk under three holders: they keep running, nothing starts.
  assert_int_equal(borrowed[0], 3);
  assert_int_equal(waiting[0], 6);
  assert_int_equal(borrowed[1], 2);
  assert_int_equal(waiting[1], 6);
  assert_int_equal(borrowed[2], 1);
  assert_int_equal(waiting[2], 6);
  assert_int_equal(later_runs_while_holders_ran, 0);
  // The last holder back: one waiting job takes its token.
  assert_int_equal(borrowed[3], 1);
  assert_int_equal(waiting[3], 5);
  assert_int_equal(later_runs.load(), 6);
  assert_int_equal(c.peak.load(), 1);
  expect_unused(l);
}

// A job waiting for a token can be cancelled: not_started, it leaves the line at once, its future
// settles as cancelled while the token's holder still runs, it never runs, its callable is
// destroyed, and the job behind it still gets the token in turn.
static void a_waiting_job_can_be_cancelled(void**) {
  test::watchdog dog("a_waiting_job_can_be_cancelled");
  uvrt::limiter l(1);
  std::latch holder_started(1);
  std::latch gate(1);
  std::atomic<bool> cancelled_ran{false};
  auto witness = std::make_shared<int>(0);
  uvrt::cancel_result result{};
  std::size_t waiting_before = 0, waiting_after = 0, borrowed_after = 0;
  std::string outcome;
  bool holder_pending_when_settled = false;
  int holder_value = -1, next_value = -1;
  {
    uvrt::runtime rt;
    auto holder = rt.to_thread(uvrt::job_options{&l}, [&] {
      holder_started.count_down();
      gate.wait();
      return 1;
    });
    auto waiter = rt.to_thread(uvrt::job_options{&l}, [&cancelled_ran, witness] {
      cancelled_ran = true;
      return *witness;
    });
    auto next = rt.to_thread(uvrt::job_options{&l}, [] { return 3; });
    holder_started.wait();
    waiting_before = l.waiting();
    result = waiter.cancel();
    waiting_after = l.waiting();
    borrowed_after = l.borrowed();
    outcome = outcome_of([&] { (void)rt.block_on(std::move(waiter)); });
    holder_pending_when_settled = !holder.ready();
    gate.count_down();
    holder_value = rt.block_on(std::move(holder));
    next_value = rt.block_on(std::move(next));
  }
  dog.disarm();
  assert_string_equal(uvrt::to_string(result), "not_started");
  assert_int_equal(waiting_before, 2);
  assert_int_equal(waiting_after, 1);
  assert_int_equal(borrowed_after, 1);
  assert_string_equal(outcome.c_str(), "cancelled");
  assert_true(holder_pending_when_settled);
  assert_false(cancelled_ran.load());
  assert_int_equal(witness.use_count(), 1);  // the cancelled callable was destroyed
  assert_int_equal(holder_value, 1);
  assert_int_equal(next_value, 3);
  expect_unused(l);
}

// A job abandoned while it runs (cancel_mode::abandon) settles at once but keeps its token until
// its work returns: the job waiting behind it starts only then.
static void an_abandoned_job_keeps_its_token_until_it_returns(void**) {
  test::watchdog dog("an_abandoned_job_keeps_its_token_until_it_returns");
  uvrt::limiter l(1);
  std::latch started(1);
  std::latch gate(1);
  std::atomic<bool> holder_returned{false};
  std::atomic<bool> next_saw_holder_returned{false};
  uvrt::cancel_result result{};
  std::string holder_outcome;
  std::size_t borrowed_after = 0, waiting_after = 0;
  int next_value = -1;
  {
    uvrt::runtime rt;
    auto holder = rt.to_thread(uvrt::job_options{&l}, [&] {
      started.count_down();
      gate.wait();
      holder_returned = true;
      return 1;
    });
    auto next = rt.to_thread(uvrt::job_options{&l}, [&] {
      next_saw_holder_returned = holder_returned.load();
      return 2;
    });
    started.wait();
    result = holder.cancel(uvrt::cancel_mode::abandon);
    holder_outcome = outcome_of([&] { (void)holder.get(); });
    borrowed_after = l.borrowed();
    waiting_after = l.waiting();
    gate.count_down();
    next_value = rt.block_on(std::move(next));
  }
  dog.disarm();
  assert_string_equal(uvrt::to_string(result), "abandoned");
  assert_string_equal(holder_outcome.c_str(), "cancelled");
  assert_int_equal(borrowed_after, 1);
  assert_int_equal(waiting_after, 1);
  assert_true(next_saw_holder_returned.load());
  assert_int_equal(next_value, 2);
  expect_unused(l);
}

// Teardown with jobs waiting for a token: their futures settle as cancelled, they never run, the
// token's holder is asked to stop and settles with its own value, and the limiter is left with
// nothing borrowed and nobody waiting (so destroying it at the end of the test is allowed).
static void teardown_cancels_jobs_waiting_for_a_token(void**) {
  test::watchdog dog("teardown_cancels_jobs_waiting_for_a_token");
  uvrt::limiter l(1);
  std::latch started(1);
  std::atomic<int> waiter_runs{0};
  std::vector<uvrt::future<int>> waiters;
  uvrt::future<int> holder;
  std::size_t waiting_before = 0;
  {
    uvrt::runtime rt;
    holder = rt.to_thread(uvrt::job_options{&l}, [&](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);  // released by the teardown's stop request
      return 7;
    });
    for (int i = 0; i < 3; ++i) waiters.push_back(rt.to_thread(uvrt::job_options{&l}, [&] { return ++waiter_runs; }));
    started.wait();
    waiting_before = l.waiting();
  }
  dog.disarm();
  assert_int_equal(waiting_before, 3);
  for (auto& f : waiters) {
    assert_true(f.ready());
    assert_string_equal(outcome_of([&] { (void)f.get(); }).c_str(), "cancelled");
  }
  assert_int_equal(waiter_runs.load(), 0);
  assert_true(holder.ready());
  assert_int_equal(holder.get(), 7);
  expect_unused(l);
}

// Teardown of one runtime cancels only its own waiting jobs: a job of another runtime waiting in
// the same line keeps its place and gets the token the torn-down runtime's holder gives back.
static void teardown_of_one_runtime_leaves_another_s_waiting_job_in_line(void**) {
  test::watchdog dog("teardown_of_one_runtime_leaves_another_s_waiting_job_in_line");
  uvrt::limiter l(1);
  std::latch started(1);
  std::atomic<int> own_runs{0};
  std::atomic<int> other_runs{0};
  std::vector<uvrt::future<int>> own;
  std::size_t waiting_before = 0, waiting_after = 0, borrowed_after = 0;
  int other_value = -1;
  {
    uvrt::runtime other;
    uvrt::future<int> theirs;
    {
      uvrt::runtime rt;
      own.push_back(rt.to_thread(uvrt::job_options{&l}, [&](std::stop_token token) {
        started.count_down();
        wait_for_stop(token);
        return 0;
      }));
      own.push_back(rt.to_thread(uvrt::job_options{&l}, [&] { return ++own_runs; }));
      theirs = other.to_thread(uvrt::job_options{&l}, [&] { return 10 + ++other_runs; });
      own.push_back(rt.to_thread(uvrt::job_options{&l}, [&] { return ++own_runs; }));
      started.wait();
      waiting_before = l.waiting();
    }
    // The holder's token went to the other runtime's job, on its way to that runtime's loop.
    waiting_after = l.waiting();
    borrowed_after = l.borrowed();
    other_value = other.block_on(std::move(theirs));
  }
  dog.disarm();
  assert_int_equal(waiting_before, 3);
  assert_int_equal(waiting_after, 0);
  assert_int_equal(borrowed_after, 1);
  assert_int_equal(own[0].get(), 0);
  assert_string_equal(outcome_of([&] { (void)own[1].get(); }).c_str(), "cancelled");
  assert_string_equal(outcome_of([&] { (void)own[2].get(); }).c_str(), "cancelled");
  assert_int_equal(own_runs.load(), 0);
  assert_int_equal(other_value, 11);
  expect_unused(l);
}

// shutdown(timeout) counts the jobs waiting for a token as cancelled (they never ran), the holder
// that returns when asked to stop as finished; afterwards the runtime takes no more jobs, with or
// without a limiter, and the refused one does not join the line.
static void shutdown_counts_waiting_jobs_as_cancelled(void**) {
  test::watchdog dog("shutdown_counts_waiting_jobs_as_cancelled");
  uvrt::limiter l(1);
  std::latch started(1);
  std::atomic<int> waiter_runs{0};
  uvrt::shutdown_result r;
  std::vector<std::string> outcomes;
  std::string refused;
  int holder_value = -1;
  std::size_t waiting_after = 0, borrowed_after = 0;
  {
    uvrt::runtime rt;
    auto holder = rt.to_thread(uvrt::job_options{&l}, [&](std::stop_token token) {
      started.count_down();
      wait_for_stop(token);
      return 5;
    });
    std::vector<uvrt::future<int>> waiters;
    for (int i = 0; i < 4; ++i) waiters.push_back(rt.to_thread(uvrt::job_options{&l}, [&] { return ++waiter_runs; }));
    started.wait();
    r = rt.shutdown(5s);
    refused = outcome_of([&] { (void)rt.to_thread(uvrt::job_options{&l}, [] { return 0; }); });
    waiting_after = l.waiting();
    borrowed_after = l.borrowed();
    for (auto& f : waiters) outcomes.push_back(outcome_of([&] { (void)f.get(); }));
    holder_value = holder.get();
  }
  dog.disarm();
  assert_int_equal(r.cancelled, 4);
  assert_int_equal(r.finished, 1);
  assert_int_equal(r.abandoned, 0);
  for (const auto& o : outcomes) assert_string_equal(o.c_str(), "cancelled");
  assert_int_equal(waiter_runs.load(), 0);
  assert_int_equal(holder_value, 5);
  assert_string_equal(refused.c_str(), "runtime_closed");
  assert_int_equal(waiting_after, 0);
  assert_int_equal(borrowed_after, 0);
}

// Destroying a limiter while a job holds its token and another waits for one is a fatal usage
// error: a message naming the limiter on stderr, then abort. In a child process.
static void destroying_a_limiter_in_use_is_a_fatal_usage_error(void**) {
  const test::child_end end = test::in_child([] {
    auto* l = new uvrt::limiter(1);
    uvrt::runtime rt;
    auto release = std::make_shared<std::latch>(1);
    auto holder = rt.to_thread(uvrt::job_options{l}, [release] {
      release->wait();  // never released: the process ends first
      return 1;
    });
    auto waiter = rt.to_thread(uvrt::job_options{l}, [] { return 2; });
    std::fprintf(stderr, "borrowed %zu, waiting %zu\n", l->borrowed(), l->waiting());
    delete l;  // must abort
    std::fprintf(stderr, "the limiter was destroyed\n");
    release->count_down();
    return 0;
  });
  assert_string_equal(end.how.c_str(), ("killed by signal " + std::to_string(SIGABRT)).c_str());
  assert_contains(end.stderr_text, "borrowed 1, waiting 1");
  assert_contains(end.stderr_text, "uvrt: fatal usage error: uvrt::limiter destroyed while jobs hold or wait for its tokens");
  assert_false(test::contains(end.stderr_text, "the limiter was destroyed"));
}

// The free uvrt::to_thread takes job_options too, inside a task: the job holds a token of the
// limiter while it runs and the next one waits. Outside a runtime it throws no_runtime_error and
// queues nothing.
static void the_free_to_thread_takes_job_options(void**) {
  test::watchdog dog("the_free_to_thread_takes_job_options");
  uvrt::limiter l(1);
  struct seen {
    std::size_t waiting_after_submit = 0;
    std::size_t first = 0;
    std::size_t second = 0;
  };
  seen s;
  {
    uvrt::runtime rt;
    rt.block_on([](uvrt::limiter& l, seen& s) -> uvrt::task<void> {
      auto first = uvrt::to_thread(uvrt::job_options{&l}, [&l](std::size_t k) { return 10 * l.borrowed() + k; }, std::size_t{1});
      auto second = uvrt::to_thread(uvrt::job_options{&l}, [&l] { return 10 * l.borrowed() + 2; });
      s.waiting_after_submit = l.waiting();
      s.first = co_await first;
      s.second = co_await second;
    }(l, s));
  }
  const std::string msg =
      test::expect_throw<uvrt::no_runtime_error>([&] { (void)uvrt::to_thread(uvrt::job_options{&l}, [] { return 0; }); });
  dog.disarm();
  assert_contains(msg, "no runtime");
  assert_int_equal(s.waiting_after_submit, 1);
  assert_int_equal(s.first, 11);   // one token borrowed: its own
  assert_int_equal(s.second, 12);
  expect_unused(l);
}

// A job holding a token that throws still gives the token back: its exception reaches the caller
// with its type, and the job waiting behind it gets the token (and holds it at a gate until the
// count is read).
static void a_job_that_throws_gives_its_token_back(void**) {
  test::watchdog dog("a_job_that_throws_gives_its_token_back");
  uvrt::limiter l(1);
  std::latch gate(1);
  std::string msg;
  int next_value = -1;
  std::size_t borrowed_between = 9, waiting_between = 9;
  {
    uvrt::runtime rt;
    auto thrower = rt.to_thread(uvrt::job_options{&l}, []() -> int { throw std::out_of_range("boom"); });
    auto next = rt.to_thread(uvrt::job_options{&l}, [&gate] {
      gate.wait();
      return 2;
    });
    try {
      (void)rt.block_on(std::move(thrower));
      msg = "returned";
    } catch (const std::out_of_range& e) {
      msg = std::string("out_of_range: ") + e.what();
    } catch (...) {
      msg = "another exception";
    }
    borrowed_between = l.borrowed();  // the next job's: the token went on, it was not lost
    waiting_between = l.waiting();
    gate.count_down();
    next_value = rt.block_on(std::move(next));
  }
  dog.disarm();
  assert_string_equal(msg.c_str(), "out_of_range: boom");
  assert_int_equal(borrowed_between, 1);
  assert_int_equal(waiting_between, 0);
  assert_int_equal(next_value, 2);
  expect_unused(l);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(zero_tokens_are_refused),
      cmocka_unit_test(counts_follow_jobs_that_run_and_wait),
      cmocka_unit_test(a_limiter_of_3_bounds_1000_jobs_on_one_runtime),
      cmocka_unit_test(a_limiter_of_3_bounds_1000_jobs_of_two_runtimes_on_two_threads),
      cmocka_unit_test(waiting_jobs_start_in_submission_order),
      cmocka_unit_test(waiting_jobs_of_two_runtimes_share_one_line),
      cmocka_unit_test(growing_the_tokens_starts_waiting_jobs_at_once),
      cmocka_unit_test(shrinking_the_tokens_takes_effect_as_jobs_finish),
      cmocka_unit_test(a_waiting_job_can_be_cancelled),
      cmocka_unit_test(an_abandoned_job_keeps_its_token_until_it_returns),
      cmocka_unit_test(teardown_cancels_jobs_waiting_for_a_token),
      cmocka_unit_test(teardown_of_one_runtime_leaves_another_s_waiting_job_in_line),
      cmocka_unit_test(shutdown_counts_waiting_jobs_as_cancelled),
      cmocka_unit_test(destroying_a_limiter_in_use_is_a_fatal_usage_error),
      cmocka_unit_test(the_free_to_thread_takes_job_options),
      cmocka_unit_test(a_job_that_throws_gives_its_token_back),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
