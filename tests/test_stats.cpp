// runtime::stats(): the latency recorder behind it (buckets, percentiles, the clock, snapshots
// taken while a writer records), then a runtime's counters, gauges and latencies as the jobs a
// test submits, cancels, abandons and holds make them.
//
// The runtime's cases hold jobs on the pool with latches the test opens; jobs that stand for work
// sleep, never as synchronisation. Figures are read on the loop thread while jobs are held and
// checked once every held job has been released: a failing assertion longjmps out of the test
// and must not leave workers waiting at a gate.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <latch>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "latency.hpp"
#include "support.hpp"

namespace {

using uvrt::detail::latency_bucket_count;
using uvrt::detail::latency_bucket_low;
using uvrt::detail::latency_bucket_of;
using uvrt::detail::latency_overflow_bucket;
using uvrt::detail::latency_recorder;
using uvrt::detail::latency_sum;
using uvrt::detail::to_latency;

latency_sum sum_of(const latency_recorder& r) {
  latency_sum s;
  r.add_to(s);
  return s;
}

std::int64_t ns(std::chrono::nanoseconds d) { return d.count(); }

// The exact nearest-rank percentile of `values`.
std::uint64_t exact_percentile(std::vector<std::uint64_t> values, unsigned pct) {
  std::sort(values.begin(), values.end());
  const std::size_t rank = (values.size() * pct + 99) / 100;
  return values[rank - 1];
}

// Records `values`, then checks count, max (exact) and p50/p90/p99 (within 7% of the exact
// nearest-rank value), with ticks taken as nanoseconds.
void check_distribution(const char* name, const std::vector<std::uint64_t>& values) {
  latency_recorder r;
  for (std::uint64_t v : values) r.record(v);
  const uvrt::latency l = to_latency(sum_of(r), 1.0);
  assert_int_equal(l.count, values.size());
  assert_int_equal(ns(l.max), *std::max_element(values.begin(), values.end()));
  const std::pair<unsigned, std::chrono::nanoseconds> got[] = {{50, l.p50}, {90, l.p90}, {99, l.p99}};
  for (const auto& [pct, d] : got) {
    const double exact = static_cast<double>(exact_percentile(values, pct));
    const double reported = static_cast<double>(ns(d));
    if (std::fabs(reported - exact) > 0.07 * exact)
      fail_msg("%s: p%u is %.0f, the exact value %.0f", name, pct, reported, exact);
  }
}

void small_values_have_exact_buckets(void**) {
  for (std::uint64_t v = 0; v < 16; ++v) {
    assert_int_equal(latency_bucket_of(v), v);
    assert_int_equal(latency_bucket_low(static_cast<std::size_t>(v)), v);
  }
  // 0..15, value v recorded v + 1 times: every percentile is exact.
  latency_recorder r;
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 0; v < 16; ++v)
    for (std::uint64_t k = 0; k <= v; ++k) {
      r.record(v);
      values.push_back(v);
    }
  const uvrt::latency l = to_latency(sum_of(r), 1.0);
  assert_int_equal(l.count, 136);
  assert_int_equal(ns(l.p50), exact_percentile(values, 50));
  assert_int_equal(ns(l.p90), exact_percentile(values, 90));
  assert_int_equal(ns(l.p99), exact_percentile(values, 99));
  assert_int_equal(ns(l.max), 15);
  // A constant small value: every field is that value.
  latency_recorder c;
  for (int i = 0; i < 100; ++i) c.record(9);
  const uvrt::latency k = to_latency(sum_of(c), 1.0);
  assert_int_equal(ns(k.p50), 9);
  assert_int_equal(ns(k.p90), 9);
  assert_int_equal(ns(k.p99), 9);
  assert_int_equal(ns(k.max), 9);
}

// The buckets partition the values into contiguous ranges, 8 per power of two from 16 up, each at
// most an eighth of its lower bound wide: its midpoint is then within 1/16 (6.25%) of any value in
// it. This is where the 7% of stats.hpp comes from.
void buckets_are_contiguous_and_narrow(void**) {
  for (std::size_t i = 1; i < latency_bucket_count; ++i) {
    const std::uint64_t low = latency_bucket_low(i);
    assert_true(low > latency_bucket_low(i - 1));
    assert_int_equal(latency_bucket_of(low), i);
    assert_int_equal(latency_bucket_of(low - 1), i - 1);
  }
  for (std::size_t i = 16; i < latency_overflow_bucket; ++i) {
    const std::uint64_t low = latency_bucket_low(i);
    assert_true(latency_bucket_low(i + 1) - low <= low / 8);
  }
  assert_int_equal(latency_bucket_low(latency_overflow_bucket), std::uint64_t{1} << 48);
  assert_int_equal(latency_bucket_of(UINT64_MAX), latency_overflow_bucket);
  // Each power of two has 8 buckets.
  assert_int_equal(latency_bucket_of(std::uint64_t{1} << 20) + 8, latency_bucket_of(std::uint64_t{1} << 21));
  assert_true(sizeof(latency_recorder) <= 3584);
}

void percentiles_are_within_7_percent(void**) {
  std::vector<std::uint64_t> uniform;
  for (std::uint64_t v = 1; v <= 1000; ++v) uniform.push_back(v);
  check_distribution("1..1000", uniform);

  check_distribution("constant", std::vector<std::uint64_t>(5000, 123'457));

  // 85% near 2 µs, 15% near 3 ms: p50 and p90 fall in different modes.
  std::mt19937_64 rng(12345);
  std::vector<std::uint64_t> bimodal;
  for (int i = 0; i < 20'000; ++i)
    bimodal.push_back(i % 20 < 17 ? 2'000 + rng() % 300 : 3'000'000 + rng() % 500'000);
  check_distribution("bimodal", bimodal);

  // Spread over 40 powers of two.
  std::vector<std::uint64_t> wide;
  for (int i = 0; i < 100'000; ++i) wide.push_back(std::uint64_t{1} << (rng() % 40) | (rng() & 0xffff));
  check_distribution("log-uniform", wide);
}

void ticks_become_nanoseconds_at_the_given_rate(void**) {
  latency_recorder r;
  for (std::uint64_t v = 1; v <= 1000; ++v) r.record(v * 1000);
  const latency_sum s = sum_of(r);
  const uvrt::latency one = to_latency(s, 1.0);
  const uvrt::latency third = to_latency(s, 1.0 / 3.0);
  assert_int_equal(ns(third.max), 333'333);  // 1e6 / 3, rounded
  assert_int_equal(ns(third.p50), std::llround(static_cast<double>(ns(one.p50)) / 3.0));
  assert_int_equal(ns(third.p99), std::llround(static_cast<double>(ns(one.p99)) / 3.0));
  assert_int_equal(third.count, 1000);
}

void an_empty_recorder_reports_zeros(void**) {
  latency_recorder r;
  const latency_sum s = sum_of(r);
  assert_int_equal(s.count, 0);
  assert_int_equal(s.max, 0);
  for (std::uint64_t b : s.buckets) assert_int_equal(b, 0);
  const uvrt::latency l = to_latency(s, 0.4);
  assert_int_equal(l.count, 0);
  assert_int_equal(ns(l.p50), 0);
  assert_int_equal(ns(l.p90), 0);
  assert_int_equal(ns(l.p99), 0);
  assert_int_equal(ns(l.max), 0);
  // count 0 is what says empty, whatever a racing snapshot read in the buckets.
  latency_sum racing;
  racing.buckets[20] = 3;
  racing.max = 40;
  const uvrt::latency z = to_latency(racing, 1.0);
  assert_int_equal(ns(z.p50), 0);
  assert_int_equal(ns(z.max), 0);
}

void huge_values_land_in_the_last_bucket(void**) {
  const std::uint64_t big = (std::uint64_t{1} << 48) + 12'345;
  latency_recorder r;
  r.record(std::uint64_t{1} << 48);
  r.record(big);
  latency_sum s = sum_of(r);
  assert_int_equal(s.buckets[latency_overflow_bucket], 2);
  assert_int_equal(s.buckets[latency_overflow_bucket - 1], 0);
  const uvrt::latency l = to_latency(s, 1.0);
  assert_int_equal(ns(l.max), big);  // exact
  assert_int_equal(ns(l.p50), big);  // the last bucket reports max
  assert_int_equal(ns(l.p99), big);

  r.record(UINT64_MAX);
  r.record((std::uint64_t{1} << 48) - 1);  // the last value of the bucket before
  s = sum_of(r);
  assert_int_equal(s.buckets[latency_overflow_bucket], 3);
  assert_int_equal(s.buckets[latency_overflow_bucket - 1], 1);
  assert_int_equal(s.max, UINT64_MAX);  // exact in the sum
  // In nanoseconds it does not fit: saturated, not wrapped.
  assert_true(to_latency(s, 1.0).max == std::chrono::nanoseconds::max());
}

// Reads the tick counter and steady_clock together: of many tries, the one with the readings
// closest together, so that a preemption between them does not skew the pair.
struct clock_pair {
  std::uint64_t ticks;
  std::chrono::steady_clock::time_point steady;
};
clock_pair read_pair() {
  clock_pair best{};
  auto best_gap = std::chrono::steady_clock::duration::max();
  for (int i = 0; i < 100; ++i) {
    const auto a = std::chrono::steady_clock::now();
    const std::uint64_t t = uvrt::detail::ticks();
    const auto b = std::chrono::steady_clock::now();
    if (b - a < best_gap) {
      best_gap = b - a;
      best = {t, a + (b - a) / 2};
    }
  }
  return best;
}

// Calibration: ticks over a ~20 ms busy interval, converted, agree with steady_clock within 2%.
void ns_per_tick_agrees_with_steady_clock(void**) {
  uvrt::detail::start_clock();
  const clock_pair p0 = read_pair();
  while (std::chrono::steady_clock::now() - p0.steady < std::chrono::milliseconds(20)) {
  }
  const clock_pair p1 = read_pair();
  const double k = uvrt::detail::ns_per_tick();
  assert_true(k > 0);
  assert_true(p1.ticks > p0.ticks);
  const double by_ticks = static_cast<double>(p1.ticks - p0.ticks) * k;
  const double by_steady = static_cast<double>(std::chrono::nanoseconds(p1.steady - p0.steady).count());
  if (std::fabs(by_ticks - by_steady) > 0.02 * by_steady)
    fail_msg("%.0f ns by ticks (%.4f ns a tick), %.0f ns by steady_clock", by_ticks, k, by_steady);
  // A second call calibrates afresh and agrees with the first.
  const double k2 = uvrt::detail::ns_per_tick();
  assert_true(std::fabs(k2 - k) <= 0.02 * k);
}

void add_to_sums_recorders(void**) {
  std::mt19937_64 rng(7);
  latency_recorder a, b, both;
  for (int i = 0; i < 10'000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 64);
    (i % 3 == 0 ? a : b).record(v);
    both.record(v);
  }
  b.record(UINT64_MAX - 1);  // the larger max is b's
  both.record(UINT64_MAX - 1);
  latency_sum s;
  a.add_to(s);
  b.add_to(s);
  const latency_sum expected = sum_of(both);
  assert_int_equal(s.count, expected.count);
  assert_int_equal(s.max, expected.max);
  for (std::size_t i = 0; i < latency_bucket_count; ++i) assert_int_equal(s.buckets[i], expected.buckets[i]);
  const uvrt::latency x = to_latency(s, 0.37);
  const uvrt::latency y = to_latency(expected, 0.37);
  assert_true(x.p50 == y.p50 && x.p90 == y.p90 && x.p99 == y.p99 && x.max == y.max);
  // The max of the sum is the larger one whichever recorder is added first.
  latency_sum reversed;
  b.add_to(reversed);
  a.add_to(reversed);
  assert_int_equal(reversed.max, UINT64_MAX - 1);
}

// One writer records 1e6 values (the i-th is i) while this thread takes snapshots. Each snapshot
// holds at least the values its count counts: count never goes back nor past 1e6, the buckets
// hold at least count values, and max is at least count. Then the last snapshot is exact.
void snapshots_while_a_writer_records(void**) {
  constexpr std::uint64_t n = 1'000'000;
  latency_recorder r;
  std::atomic<bool> done{false};
  std::latch start(2);
  std::thread writer([&] {
    start.arrive_and_wait();
    for (std::uint64_t i = 1; i <= n; ++i) r.record(i);
    done.store(true, std::memory_order_release);
  });
  start.arrive_and_wait();
  std::uint64_t snapshots = 0, previous = 0;
  const char* broken = nullptr;
  std::uint64_t broken_count = 0;
  while (!done.load(std::memory_order_acquire) && !broken) {
    const latency_sum s = sum_of(r);
    std::uint64_t total = 0;
    for (std::uint64_t b : s.buckets) total += b;
    if (s.count < previous) broken = "count went back";
    else if (s.count > n) broken = "count past n";
    else if (total < s.count) broken = "buckets behind count";
    else if (s.max < s.count) broken = "max behind count";
    broken_count = s.count;
    previous = s.count;
    ++snapshots;
  }
  writer.join();  // before any assertion: a failing one must not leave the thread joinable
  if (broken) fail_msg("snapshot %llu (count %llu): %s", static_cast<unsigned long long>(snapshots),
                       static_cast<unsigned long long>(broken_count), broken);
  const latency_sum s = sum_of(r);
  assert_int_equal(s.count, n);
  assert_int_equal(s.max, n);
  std::uint64_t total = 0;
  for (std::uint64_t b : s.buckets) total += b;
  assert_int_equal(total, n);
  const uvrt::latency l = to_latency(s, 1.0);
  assert_true(std::fabs(static_cast<double>(ns(l.p50)) - 500'000.0) <= 0.07 * 500'000.0);
  assert_true(std::fabs(static_cast<double>(ns(l.p99)) - 990'000.0) <= 0.07 * 990'000.0);
}

// --- runtime::stats() -----------------------------------------------------------------------------

using namespace std::chrono_literals;
using test::outcome_of;
using test::pool_blocker;

// The gauges and counters of `s` that a test compares at once, printed on a mismatch.
std::string describe(const uvrt::runtime_stats& s) {
  return "submitted " + std::to_string(s.submitted) + ", settled " + std::to_string(s.settled) + ", cancelled " +
         std::to_string(s.cancelled) + ", abandoned " + std::to_string(s.abandoned) + ", queued " +
         std::to_string(s.queued) + ", running " + std::to_string(s.running) + ", waiting_for_limiter " +
         std::to_string(s.waiting_for_limiter) + ", wait.count " + std::to_string(s.wait.count) + ", run.count " +
         std::to_string(s.run.count);
}

void expect_stats(const uvrt::runtime_stats& s, const char* when, std::uint64_t submitted, std::uint64_t settled,
                  std::uint64_t cancelled, std::uint64_t abandoned, std::size_t queued, std::size_t running,
                  std::size_t waiting_for_limiter) {
  if (s.submitted != submitted || s.settled != settled || s.cancelled != cancelled || s.abandoned != abandoned ||
      s.queued != queued || s.running != running || s.waiting_for_limiter != waiting_for_limiter)
    fail_msg("%s: got %s; expected submitted %llu, settled %llu, cancelled %llu, abandoned %llu, queued %zu, "
             "running %zu, waiting_for_limiter %zu",
             when, describe(s).c_str(), static_cast<unsigned long long>(submitted),
             static_cast<unsigned long long>(settled), static_cast<unsigned long long>(cancelled),
             static_cast<unsigned long long>(abandoned), queued, running, waiting_for_limiter);
}

// A new runtime reports zeros; then every way a job can settle is counted once: with a value or an
// exception (settled), cancelled before it ran, in the queue or waiting for a limiter's token
// (cancelled), abandoned while it ran (abandoned). The jobs that ran, the abandoned one included
// once its work returned, are the ones whose wait and run times were recorded.
void stats_count_jobs_by_how_they_settled(void**) {
  test::watchdog dog("stats_count_jobs_by_how_they_settled");
  pool_blocker busy;
  uvrt::limiter l(1);
  std::atomic<int> cancelled_runs{0};
  uvrt::runtime_stats fresh, mid, end;
  std::vector<std::string> outcomes;
  std::string abandon_result, cancel_q, cancel_y;
  const std::uint64_t p = static_cast<std::uint64_t>(busy.size());
  {
    uvrt::runtime rt;
    fresh = rt.stats();
    busy.fill(rt);
    auto q = rt.to_thread([&] { return ++cancelled_runs; });                            // queued, cancelled
    auto x = rt.to_thread(uvrt::job_options{&l}, [] { return 1; });                      // the token's holder
    auto y = rt.to_thread(uvrt::job_options{&l}, [&] { return ++cancelled_runs; });      // waits, cancelled
    auto thrower = rt.to_thread([]() -> int { throw std::runtime_error("job failed"); });
    std::vector<uvrt::future<int>> plain;
    for (int i = 0; i < 3; ++i) plain.push_back(rt.to_thread([i] { return i; }));
    cancel_q = uvrt::to_string(q.cancel());
    cancel_y = uvrt::to_string(y.cancel());
    abandon_result = uvrt::to_string(busy.job(0).cancel(uvrt::cancel_mode::abandon));
    mid = rt.stats();
    busy.open();
    for (int i = 0; i < busy.size(); ++i) outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(busy.job(i))); }));
    outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(q)); }));
    outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(x)); }));
    outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(y)); }));
    outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(thrower)); }));
    for (auto& f : plain) outcomes.push_back(outcome_of([&] { (void)rt.block_on(std::move(f)); }));
    rt.run();  // until the abandoned job's work has come back too
    end = rt.stats();
  }
  dog.disarm();
  expect_stats(fresh, "a new runtime", 0, 0, 0, 0, 0, 0, 0);
  assert_int_equal(fresh.wait.count, 0);
  assert_int_equal(fresh.run.count, 0);
  assert_true(fresh.run.max == 0ns && fresh.wait.p50 == 0ns);

  assert_string_equal(cancel_q.c_str(), "not_started");
  assert_string_equal(cancel_y.c_str(), "not_started");
  assert_string_equal(abandon_result.c_str(), "abandoned");
  // Held: p on the pool's threads, of which the abandoned one counts as settled; the two cancelled
  // jobs wait on the loop thread to settle, which counts as running; x, the thrower and 3 plain
  // jobs queued.
  assert_int_equal(mid.submitted, p + 7);
  assert_int_equal(mid.abandoned, 1);
  assert_int_equal(mid.queued, 5);
  assert_int_equal(mid.running, p - 1 + 2);
  assert_int_equal(mid.waiting_for_limiter, 0);

  assert_string_equal(outcomes[0].c_str(), "cancelled");  // the abandoned one
  for (std::size_t i = 1; i < p; ++i) assert_string_equal(outcomes[i].c_str(), "returned");
  assert_string_equal(outcomes[p].c_str(), "cancelled");
  assert_string_equal(outcomes[p + 1].c_str(), "returned");
  assert_string_equal(outcomes[p + 2].c_str(), "cancelled");
  assert_string_equal(outcomes[p + 3].c_str(), "threw: job failed");
  assert_int_equal(cancelled_runs.load(), 0);

  expect_stats(end, "after every job", p + 7, p + 7, 2, 1, 0, 0, 0);
  // Ran: the p held jobs (the abandoned one too), x, the thrower and the 3 plain ones.
  assert_int_equal(end.wait.count, p + 5);
  assert_int_equal(end.run.count, p + 5);
}

// Snapshots of a runtime while jobs are held, in numbers the test knows: p jobs hold the pool's
// threads (running); one job holds a limiter's token and 4 plain jobs wait for a thread (queued);
// 3 jobs wait for the token (waiting_for_limiter). Then the last job waiting for the token and the
// last plain one are cancelled, and snapshotted again at once, before the loop turns; then every
// job is let through.
struct held_scene {
  std::uint64_t p = 0;
  uvrt::runtime_stats held, after_cancel, end;
};

held_scene hold_then_cancel_two() {
  test::watchdog dog("hold_then_cancel_two");
  held_scene scene;
  pool_blocker busy;
  uvrt::limiter l(1);
  scene.p = static_cast<std::uint64_t>(busy.size());
  uvrt::runtime rt;
  busy.fill(rt);
  std::vector<uvrt::future<int>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(rt.to_thread(uvrt::job_options{&l}, [] { return 0; }));
  for (int i = 0; i < 4; ++i) fs.push_back(rt.to_thread([] { return 0; }));
  scene.held = rt.stats();
  (void)fs[3].cancel();  // the last one waiting for the token
  (void)fs[7].cancel();  // the last plain one
  scene.after_cancel = rt.stats();
  (void)busy.drain(rt);
  for (auto& f : fs) (void)outcome_of([&] { (void)rt.block_on(std::move(f)); });
  scene.end = rt.stats();
  return scene;
}

// The gauges while jobs are held; cancelling a queued and a waiting job takes them out of their
// gauges at once, into running until they settle on the loop's next turn; afterwards the gauges are
// back to 0 and the counters add up.
void stats_gauges_while_jobs_are_held(void**) {
  const held_scene s = hold_then_cancel_two();
  const std::uint64_t p = s.p;
  expect_stats(s.held, "held", p + 8, 0, 0, 0, 5, p, 3);
  assert_int_equal(s.after_cancel.queued, 4);
  assert_int_equal(s.after_cancel.waiting_for_limiter, 2);
  assert_int_equal(s.after_cancel.running, p + 2);
  expect_stats(s.end, "after every job", p + 8, p + 8, 2, 0, 0, 0, 0);
  assert_int_equal(s.end.wait.count, p + 6);
  assert_int_equal(s.end.run.count, p + 6);
}

// stats.hpp: "Every job submitted is, at any moment, exactly one of: waiting_for_limiter, queued,
// running [...], or settled." Checked while jobs are held, and right after cancel() took a queued
// job and a waiting one out of their places, before the loop turns again.
void stats_place_every_job_at_every_moment(void**) {
  const held_scene s = hold_then_cancel_two();
  for (const auto* snap : {&s.held, &s.after_cancel}) {
    const std::uint64_t placed = snap->settled + snap->queued + snap->running + snap->waiting_for_limiter;
    if (placed != snap->submitted)
      fail_msg("%s: %llu jobs submitted, %llu placed (%s)", snap == &s.held ? "held" : "right after two cancels",
               static_cast<unsigned long long>(snap->submitted), static_cast<unsigned long long>(placed),
               describe(*snap).c_str());
  }
}

// Wait and run times of the jobs that ran: 20 jobs that sleep 2 ms report a run p50 of about
// 2 ms (bounds wide enough for any machine: this checks the units and the clock, not speed), the
// percentiles in order; then 10 such jobs through a limiter of one token: the last one waited for
// the nine ahead of it, so the wait max is at least 9 x 2 ms.
void stats_latencies_describe_the_jobs_that_ran(void**) {
  test::watchdog dog("stats_latencies_describe_the_jobs_that_ran", 30s);
  uvrt::limiter l(1);
  uvrt::runtime_stats plain, limited;
  {
    uvrt::runtime rt;
    std::vector<uvrt::future<void>> fs;
    for (int i = 0; i < 20; ++i) fs.push_back(rt.to_thread([] { std::this_thread::sleep_for(2ms); }));
    for (auto& f : fs) rt.block_on(std::move(f));
    plain = rt.stats();
    fs.clear();
    for (int i = 0; i < 10; ++i) fs.push_back(rt.to_thread(uvrt::job_options{&l}, [] { std::this_thread::sleep_for(2ms); }));
    for (auto& f : fs) rt.block_on(std::move(f));
    limited = rt.stats();
  }
  dog.disarm();
  assert_int_equal(plain.run.count, 20);
  assert_int_equal(plain.wait.count, 20);
  if (plain.run.p50 < 1800us || plain.run.p50 > 50ms)
    fail_msg("run p50 of jobs sleeping 2 ms: %lld ns", static_cast<long long>(plain.run.p50.count()));
  for (const uvrt::latency* d : {&plain.run, &plain.wait, &limited.run, &limited.wait})
    assert_true(d->p50 <= d->p90 && d->p90 <= d->p99 && d->p99 <= d->max);
  assert_true(plain.run.max >= 2ms);
  assert_int_equal(limited.run.count, 30);
  assert_int_equal(limited.wait.count, 30);
  if (limited.wait.max < 17ms)
    fail_msg("the last of 10 jobs of 2 ms through one token waited %lld ns", static_cast<long long>(limited.wait.max.count()));
}

// stats() belongs to the loop thread: inside a task it sees the job in flight; from another thread
// or from a job on the pool it throws usage_error naming the call.
void stats_off_the_loop_thread_is_a_usage_error(void**) {
  test::watchdog dog("stats_off_the_loop_thread_is_a_usage_error");
  std::string from_thread, from_job;
  uvrt::runtime_stats inside;
  {
    uvrt::runtime rt;
    auto read = [&rt] {
      try {
        (void)rt.stats();
        return std::string("returned");
      } catch (const uvrt::usage_error& e) {
        return std::string("usage_error: ") + e.what();
      }
    };
    std::thread([&] { from_thread = read(); }).join();
    from_job = rt.block_on(rt.to_thread(read));
    rt.block_on([](uvrt::runtime& rt, uvrt::runtime_stats& out) -> uvrt::task<void> {
      std::latch gate(1);
      auto f = uvrt::to_thread([&gate] { gate.wait(); });
      out = rt.stats();
      gate.count_down();
      co_await f;
    }(rt, inside));
  }
  dog.disarm();
  assert_contains(from_thread, "usage_error: ");
  assert_contains(from_thread, "uvrt::runtime::stats");
  assert_contains(from_job, "usage_error: ");
  assert_int_equal(inside.submitted, 2);  // the job that read stats(), and the one in flight
  assert_int_equal(inside.settled, 1);
  assert_int_equal(inside.queued + inside.running, 1);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(small_values_have_exact_buckets),
      cmocka_unit_test(buckets_are_contiguous_and_narrow),
      cmocka_unit_test(percentiles_are_within_7_percent),
      cmocka_unit_test(ticks_become_nanoseconds_at_the_given_rate),
      cmocka_unit_test(an_empty_recorder_reports_zeros),
      cmocka_unit_test(huge_values_land_in_the_last_bucket),
      cmocka_unit_test(ns_per_tick_agrees_with_steady_clock),
      cmocka_unit_test(add_to_sums_recorders),
      cmocka_unit_test(snapshots_while_a_writer_records),
      cmocka_unit_test(stats_count_jobs_by_how_they_settled),
      cmocka_unit_test(stats_gauges_while_jobs_are_held),
      cmocka_unit_test(stats_place_every_job_at_every_moment),
      cmocka_unit_test(stats_latencies_describe_the_jobs_that_ran),
      cmocka_unit_test(stats_off_the_loop_thread_is_a_usage_error),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
