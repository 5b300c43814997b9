// Dispatch: the runtime's queue and its carriers. See dispatch.hpp for the design and invariants.
#include "dispatch.hpp"

#include <new>
#include <utility>

#include "core.hpp"
#include "pool_slots.hpp"
#include "tokens.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace uvrt::detail {

namespace {

// How long a carrier keeps its thread while jobs keep coming: libuv's own requests queued meanwhile
// wait at most this long plus one job. Short against a file system request's milliseconds, long
// against the microsecond it costs to send a carrier again.
constexpr std::uint64_t slice_ns = 500'000;
// How long a carrier whose queue ran dry waits for another job before giving its thread back:
// about what a wake-up of a sleeping thread costs, so a job submitted one at a time (a round trip)
// finds it still there instead of waking a thread.
constexpr std::uint64_t spin_ns = 20'000;
// The loop's side of the same: after a turn that found returned jobs, the loop keeps looking for
// them every turn, with poll not blocking, for this long; only then does it sleep until signalled.
// A signal costs the worker a write and the loop a wake-up and a read of the eventfd.
constexpr std::uint64_t hot_ns = 20'000;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace

job_core* reversed(job_core* list) noexcept {
  job_core* fifo = nullptr;
  while (list) {
    job_core* next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  return fifo;
}

dispatch::dispatch(core& owner, int slots) : core_(owner), max_carriers_(slots) {}

dispatch::~dispatch() {
  for (carrier* k : carriers_) delete k;
}

void dispatch::submit(job_core* j) noexcept {
  const job_place from = place_of(j);
  move_job(j, from, job_place::dispatched);
  if (from == job_place::taken) j->stamp = ticks();
  bool more;
  bool slot = false;
  {
    std::lock_guard lock(mutex_);
    j->next = nullptr;
    j->prev = tail_;
    if (tail_) tail_->next = j;
    else head_ = j;
    tail_ = j;
    const std::size_t n = queued_.load(std::memory_order_relaxed) + 1;
    queued_.store(n, std::memory_order_relaxed);
    more = static_cast<std::size_t>(free_carriers_) < n;
    // A carrier gives its slot back under this lock as it leaves, so a slot freed by a carrier of
    // this runtime is seen here: the queue never waits for a signal only a turning loop would take.
    if (more && in_line_) slot = slot_free();
  }
  ++unreturned_;
  // A runtime waiting for a slot is signalled when one is given back, or sees it free here; until
  // then `wake` keeps its loop alive for the signal.
  if (!more) return;
  if (!in_line_ || slot) send_carriers();
  else keep_alive(core_.tokens_.count());
}

void submit(core* c, job_core* j) noexcept {
  j->owner = c;
  c->count_in();
  ++c->counters.submitted;
  if (j->flags & flag_limited) {
    j->stamp = ticks();
    if (!wait_for_token(c, j)) return;
  }
  c->dispatch_.submit(j);
}

carrier* dispatch::idle_carrier() noexcept {
  if (carrier* k = idle_) {
    idle_ = k->next_idle;
    return k;
  }
  // A carrier gives its slot back as it leaves its thread, before its after-work callback makes it
  // idle here: so a runtime may have a few more carriers than slots, and makes them as it needs.
  try {
    auto k = std::make_unique<carrier>();
    running_.reserve(carriers_.size() + 1);
    carriers_.reserve(carriers_.size() + 1);
    k->req.data = &core_;
    k->job = nullptr;
    running_.push_back(nullptr);
    carriers_.push_back(k.get());
    return k.release();
  } catch (...) {
    return nullptr;
  }
}

void dispatch::send_carriers() noexcept {
  int want = 0;
  {
    std::lock_guard lock(mutex_);
    const std::size_t queued = queued_.load(std::memory_order_relaxed);
    const auto free = static_cast<std::size_t>(free_carriers_);
    if (wake_open_.load(std::memory_order_relaxed) && queued > free) want = static_cast<int>(std::min<std::size_t>(queued - free, static_cast<std::size_t>(max_carriers_)));
  }
  if (want > 0) {
    const int got = take_slots(this, want);
    in_line_ = got < want;
    for (int i = 0; i < got; ++i) {
      carrier* k = idle_carrier();
      if (!k) {
        give_slot();
        if (out_ == 0) fatal("out of memory for a carrier: the runtime's queued jobs could never run");
        continue;
      }
      {
        std::lock_guard lock(mutex_);
        ++free_carriers_;
      }
      ++out_;
      // uv_queue_work fails only for a null work callback.
      if (uv_queue_work(core_.loop, &k->req, &work, &after_work) != 0) fatal("uv_queue_work failed");
    }
  }
  keep_alive(core_.tokens_.count());
}

job_core* dispatch::take_job(carrier* k) noexcept {
  job_core* j = head_;
  k->job = j;
  if (!j) return nullptr;
  head_ = j->next;
  if (head_) head_->prev = nullptr;
  else tail_ = nullptr;
  j->prev = taken_mark;
  queued_.store(queued_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  --free_carriers_;
  return j;
}

// On a pool thread. The only fields of a job touched here are the ones dispatch.hpp gives the
// carrier: it runs the job (vt->run writes the outcome and the slot) and links it to the returns.
void dispatch::work(uv_work_t* req) {
  auto* k = reinterpret_cast<carrier*>(req);
  dispatch& d = static_cast<core*>(req->data)->dispatch_;
  std::uint64_t now = ticks();
  const std::uint64_t slice_end = now + ticks_for_ns(slice_ns);
  const std::uint32_t turns_at_start = d.turns_.load(std::memory_order_relaxed);
  const std::uint64_t spin = ticks_for_ns(spin_ns);
  bool signal = false;  // the last job returned to an empty stack while the loop was not polling
  std::unique_lock lock(d.mutex_);
  for (;;) {
    job_core* j = d.take_job(k);
    if (!j) {
      // The queue ran dry: one carrier at a time waits a moment for the next job before giving
      // its thread back. More would only take the processor from the loop that submits it.
      if (d.spinning_) break;
      d.spinning_ = true;
      lock.unlock();
      if (std::exchange(signal, false)) d.signal();
      const std::uint64_t spin_end = ticks() + spin;
      while (d.queued_.load(std::memory_order_relaxed) == 0 && ticks() < spin_end) cpu_relax();
      lock.lock();
      d.spinning_ = false;
      j = d.take_job(k);
      if (!j) break;
      now = ticks();
    }
    lock.unlock();
    if (std::exchange(signal, false)) d.signal();
    k->wait.record(now > j->stamp ? now - j->stamp : 0);
    j->vt->run(j);
    const std::uint64_t done = ticks();
    k->run.record(done - now);
    now = done;
    // Under the lock, with `job` cleared: for_each_taken sees the job in exactly one of the two
    // places, and never as `job` once the loop may have taken it back and freed it. One signal for
    // all the jobs that return before the loop takes them, none while it polls.
    lock.lock();
    k->job = nullptr;
    ++d.free_carriers_;
    signal = d.push_return(j) && !d.loop_polling_.load(std::memory_order_seq_cst);
    // The slice is over: give the thread back, so that libuv's FIFO serves what was queued
    // meanwhile, and let the loop send a carrier again. Only if the loop has turned since this
    // carrier set out: one that does not turn (its thread blocks until its jobs have run) would
    // never send another, and the queue would stall.
    if (now >= slice_end && d.turns_.load(std::memory_order_relaxed) != turns_at_start) break;
  }
  --d.free_carriers_;
  // The thread is libuv's again from here: its slot goes to whoever waits for one now, not when
  // the loop gets to the after-work callback (an idle loop would hold it for ever), and under the
  // lock, so that a job submitted as this carrier leaves finds the slot free (submit).
  give_slot();
  lock.unlock();
  if (signal) d.signal();
}

void dispatch::after_work(uv_work_t* req, int status) {
  auto* k = reinterpret_cast<carrier*>(req);
  core& c = *static_cast<core*>(req->data);
  // A forked child turning an inherited loop (the application's uv_run) sees the parent's carriers
  // come back: they are the parent's.
  if (c.inherited()) return;
  assert(status == 0 && "carriers are never cancelled");
  (void)status;
  dispatch& d = c.dispatch_;
  d.count_turn();
  --d.out_;
  k->next_idle = d.idle_;
  d.idle_ = k;
  // What the carrier returned after the last signal, and, once `wake` is closed, all of it.
  d.take_returns();
  // A done callback or continuation may fork: the child touches nothing more of the parent's.
  if (c.inherited()) return;
  c.carrier_back();
}

void dispatch::on_wake(uv_async_t* h) {
  core& c = *static_cast<core*>(h->data);
  if (c.inherited()) return;  // the application turns an inherited loop in a forked child
  dispatch& d = c.dispatch_;
  d.count_turn();
  d.in_line_ = false;  // a slot may have been given back: ask again below
  const bool returned = d.take_returns();
  if (c.inherited()) return;  // a callback forked: the child touches nothing more of the parent's
  if (returned && !d.hot_ && d.unreturned_ > 0 && d.wake_open_.load(std::memory_order_relaxed)) {
    // Jobs are coming back: look for them every turn for a while instead of being signalled.
    d.hot_ = true;
    d.loop_polling_.store(true, std::memory_order_seq_cst);
    d.last_return_ = uv_hrtime();
    c.settle_.hold_turns(true);
  }
  take_granted_tokens(c);
  d.send_carriers();
  c.progress();
}

bool dispatch::push_return(job_core* j) noexcept {
  job_core* head = returns_.load(std::memory_order_relaxed);
  do {
    j->next = head;
  } while (!returns_.compare_exchange_weak(head, j, std::memory_order_seq_cst, std::memory_order_relaxed));
  return head == nullptr;
}

// The count of signallers and the open flag are both sequentially consistent: either close_wake
// sees this thread counted and waits for it, or this thread sees the handle closing and leaves it.
void dispatch::signal() noexcept {
  senders_.fetch_add(1, std::memory_order_seq_cst);
  if (wake_open_.load(std::memory_order_seq_cst)) uv_async_send(&wake);
  senders_.fetch_sub(1, std::memory_order_release);
}

// Going cold: the flag is cleared before the last look (both sequentially consistent), so a job
// pushed after that look finds the flag clear and signals.
void dispatch::poll_returns() noexcept {
  count_turn();
  if (!hot_) return;
  const std::uint64_t now = uv_hrtime();
  if (take_returns()) {
    last_return_ = now;
    return;
  }
  if (core_.inherited()) return;
  if (now - last_return_ < hot_ns && unreturned_ > 0) return;
  hot_ = false;
  loop_polling_.store(false, std::memory_order_seq_cst);
  core_.settle_.hold_turns(false);
  take_returns();
}

bool dispatch::take_returns() noexcept {
  job_core* list = returns_.exchange(nullptr, std::memory_order_seq_cst);
  if (!list) return false;
  job_core* fifo = reversed(list);
  // A continuation may fork: the child takes nothing more of the parent's (lifecycle.hpp).
  while (fifo && !core_.inherited()) {
    job_core* next = fifo->next;
    back(fifo, true);
    fifo = next;
  }
  return true;
}

void dispatch::back(job_core* j, bool settle_now) noexcept {
  --unreturned_;
  core_.job_back(j, settle_now);
}

void dispatch::grant(job_core* j) noexcept {
  bool first;
  {
    std::lock_guard lock(mutex_);
    j->next = granted_;
    granted_ = j;
    first = !j->next;
  }
  // Open: a runtime with jobs on their way to it is not settled, so it cannot be closing.
  assert(wake_open_.load(std::memory_order_relaxed));
  if (first) signal();
}

job_core* dispatch::take_granted() noexcept {
  job_core* list;
  {
    std::lock_guard lock(mutex_);
    list = granted_;
    granted_ = nullptr;
  }
  return reversed(list);
}

void dispatch::unlink(job_core* j) noexcept {
  if (j->prev) j->prev->next = j->next;
  else head_ = j->next;
  if (j->next) j->next->prev = j->prev;
  else tail_ = j->prev;
  queued_.store(queued_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// A job still in the queue never reached a pool thread: it leaves the queue and joins the
// backlog, so it settles on a later turn.
bool dispatch::cancel_if_queued(job_core* j) noexcept {
  if (j->flags & flag_never_ran) return true;
  switch (place_of(j)) {
    case job_place::dispatched: {
      std::lock_guard lock(mutex_);
      if (j->prev == taken_mark) return false;
      unlink(j);
      break;
    }
    case job_place::limited:
      return cancel_waiting_for_token(core_, j);
    case job_place::arrived:
    case job_place::taken:
      return false;
  }
  never_ran(j);
  return true;
}

void dispatch::never_ran(job_core* j) noexcept {
  --unreturned_;
  give_token_back(core_, j);
  core_.never_ran(j, job_place::dispatched);
}

// The whole queue at once, under one lock: job by job, a carrier could take the next one between
// two looks, and it would be counted as cancelled and as running.
std::size_t dispatch::cancel_queue() noexcept {
  job_core* list;
  {
    std::lock_guard lock(mutex_);
    list = head_;
    head_ = tail_ = nullptr;
    queued_.store(0, std::memory_order_relaxed);
  }
  std::size_t n = 0;
  for (job_core* j = list; j; ++n) {
    job_core* next = j->next;
    never_ran(j);
    j = next;
  }
  return n;
}

void dispatch::close_wake() noexcept {
  wake_open_.store(false, std::memory_order_seq_cst);
  if (hot_) {
    hot_ = false;
    loop_polling_.store(false, std::memory_order_seq_cst);
    core_.settle_.hold_turns(false);
  }
  // Only carriers of jobs shutdown() abandoned can still be returning: wait out a signal under way.
  while (senders_.load(std::memory_order_seq_cst) != 0) cpu_relax();
  forget_slots(this);
}

void dispatch::keep_alive(std::size_t limited) noexcept {
  const bool want = limited > 0 || (out_ == 0 && queued() > 0);
  if (want == wake_referenced_) return;
  wake_referenced_ = want;
  if (want) uv_ref(reinterpret_cast<uv_handle_t*>(&wake));
  else uv_unref(reinterpret_cast<uv_handle_t*>(&wake));
}

void dispatch::add_latencies(latency_sum& wait, latency_sum& run) const noexcept {
  for (const carrier* k : carriers_) {
    k->wait.add_to(wait);
    k->run.add_to(run);
  }
}

}  // namespace uvrt::detail
