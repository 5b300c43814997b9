// Sleeps and the helpers of uvrt::timeout: see uvrt/time.hpp.
#include "uvrt/time.hpp"

#include <limits>
#include <string>

#include "core.hpp"

namespace uvrt::detail {

namespace {

// A sleep: a cell and a timer entry. Cancelling it settles it as cancelled at once.
class sleep_op final : public op, timer_entry {
 public:
  explicit sleep_op(job_core* cell) noexcept : op(cell) { fire = &on_fire; }

  cancel_result cancel(cancel_mode) override {
    abandon_cell(cell_);  // may throw, having changed nothing
    disarm(owner(), this);
    retire();
    return cancel_result::not_started;
  }

  void start(std::uint64_t deadline) noexcept { arm(owner(), this, deadline); }

 private:
  static void on_fire(timer_entry* e, bool torn_down) noexcept {
    auto* self = static_cast<sleep_op*>(e);
    if (torn_down) settle_cancelled(self->cell_);
    else settle_void(self->cell_);
    self->retire();
  }
};

std::uint64_t saturating_add(std::uint64_t now, std::int64_t d) noexcept {
  if (d <= 0) return now;
  const auto u = static_cast<std::uint64_t>(d);
  return u > std::numeric_limits<std::uint64_t>::max() - now ? std::numeric_limits<std::uint64_t>::max() : now + u;
}

}  // namespace

job_core* make_sleep(core* c, std::uint64_t deadline, const char* what) {
  check_open(c, what);
  reserve_timer(c);
  auto* op = make_op<void, sleep_op>(c);
  op->start(deadline);
  return op->cell();
}

std::uint64_t deadline_after(std::chrono::nanoseconds d) noexcept { return saturating_add(clock_now(), d.count()); }

std::uint64_t deadline_at(std::chrono::steady_clock::time_point t) noexcept {
  // The clock is steady_clock's (clock_now): a future t is the deadline itself, so sleeps until one
  // time point fire in arming order; a past one is now, so that past and zero sleeps do too.
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const std::uint64_t now = clock_now();
  return ns > 0 && static_cast<std::uint64_t>(ns) > now ? static_cast<std::uint64_t>(ns) : now;
}

void check_timeout(std::chrono::nanoseconds d, std::chrono::nanoseconds grace, const char* what) {
  if (d < std::chrono::nanoseconds::zero()) throw std::invalid_argument(std::string(what) + ": the timeout is negative");
  if (grace < std::chrono::nanoseconds::zero())
    throw std::invalid_argument(std::string(what) + ": the grace period is negative");
}

void throw_timed_out() { throw timeout_error("uvrt::timeout: the operation did not settle in time"); }

}  // namespace uvrt::detail
