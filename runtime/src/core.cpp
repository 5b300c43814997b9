// The runtime's core: job bookkeeping, settlement, cancellation, cross-thread posts and the
// teardown sequence. See core.hpp for the invariants.
#include "core.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace uvrt::detail {

namespace {

// Read on every job (tls_worker) and every completion (tls_current). The initial-exec model
// makes that a plain load instead of a __tls_get_addr call per access from a shared library.
[[gnu::tls_model("initial-exec")]] thread_local core* tls_current = nullptr;
[[gnu::tls_model("initial-exec")]] thread_local core* tls_worker = nullptr;

void on_wakeup(uv_async_t* handle) {
  auto* c = static_cast<core*>(handle->data);
  loop_scope scope(c);
  c->drain_posted();
  c->drain_deferred();
}

}  // namespace

loop_scope::loop_scope(core* c) noexcept : c_(c), previous_(tls_current) {
  tls_current = c;
  ++c->depth;
}

loop_scope::~loop_scope() {
  --c_->depth;
  tls_current = previous_;
}

core* current_core() noexcept { return tls_current; }
core* worker_core() noexcept { return tls_worker; }
core* exchange_worker_core(core* c) noexcept { return std::exchange(tls_worker, c); }

void fatal(const char* message) noexcept {
  std::fprintf(stderr, "uvrt: fatal usage error: %s\n", message);
  std::abort();
}

core::core(uv_loop_t* app_loop, int pool_size)
    : loop(app_loop ? app_loop : &own_loop_),
      owns_loop(app_loop == nullptr),
      carrier_count(carriers_for(pool_size)),
      // Not value-initialised: a carrier's fields are set when it is first handed out, so the
      // pages of carriers a runtime never uses are never touched.
      carriers(new carrier[static_cast<std::size_t>(carrier_count)]) {
  if (owns_loop) {
    if (int rc = uv_loop_init(&own_loop_); rc != 0)
      throw std::runtime_error(std::string("uvrt::runtime: uv_loop_init failed: ") + uv_strerror(rc));
  }
  try {
    init_handles();
  } catch (...) {
    // Nothing of the runtime may stay linked into a loop that outlives it.
    close_handles([](uv_handle_t* h) { --static_cast<core*>(h->data)->open_handles; });
    while (open_handles > 0) uv_run(loop, UV_RUN_NOWAIT);
    if (owns_loop) uv_loop_close(&own_loop_);
    throw;
  }
}

void core::init_handles() {
  auto check = [](int rc, const char* call) {
    if (rc != 0) throw std::runtime_error(std::string("uvrt::runtime: ") + call + " failed: " + uv_strerror(rc));
  };
  check(uv_async_init(loop, &wakeup, &on_wakeup), "uv_async_init");
  ++open_handles;
  wakeup.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup));
  check(uv_check_init(loop, &slicer), "uv_check_init");
  ++open_handles;
  slicer.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&slicer));
  check(uv_idle_init(loop, &spinner), "uv_idle_init");
  ++open_handles;
  spinner.data = this;
  check(uv_timer_init(loop, &deadline), "uv_timer_init");
  ++open_handles;
  deadline.data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(&deadline));
}

// Starts closing the handles init_handles opened, in the order it opened them; `closed` runs for
// each and must count open_handles down.
void core::close_handles(uv_close_cb closed) noexcept {
  uv_handle_t* handles[] = {reinterpret_cast<uv_handle_t*>(&wakeup), reinterpret_cast<uv_handle_t*>(&slicer),
                            reinterpret_cast<uv_handle_t*>(&spinner), reinterpret_cast<uv_handle_t*>(&deadline)};
  for (int i = 0; i < open_handles; ++i) uv_close(handles[i], closed);
}

namespace {

void carrier_work(uv_work_t* req) {
  job_core* j = reinterpret_cast<carrier*>(req)->job;
  j->vt->run(j);
}

void carrier_after_work(uv_work_t* req, int status) {
  static_cast<core*>(req->data)->on_carrier_done(reinterpret_cast<carrier*>(req), status);
}

}  // namespace

void core::carry(carrier* k, job_core* j) noexcept {
  k->job = j;
  j->held_by = k;
  ++busy;
  // uv_queue_work fails only for a null work callback.
  if (uv_queue_work(loop, &k->req, &carrier_work, &carrier_after_work) != 0) fatal("uv_queue_work failed");
}

void core::submit(job_core* j) noexcept {
  j->owner = this;
  if (!queue_head) {
    if (carrier* k = take_carrier()) {
      carry(k, j);
      return;
    }
  }
  j->flags |= flag_queued;
  j->next = nullptr;
  j->prev = queue_tail;
  if (queue_tail) queue_tail->next = j;
  else queue_head = j;
  queue_tail = j;
}

void core::dequeue(job_core* j) noexcept {
  if (j->prev) j->prev->next = j->next;
  else queue_head = j->next;
  if (j->next) j->next->prev = j->prev;
  else queue_tail = j->prev;
  j->flags &= static_cast<std::uint8_t>(~flag_queued);
}

void core::on_carrier_done(carrier* k, int status) noexcept {
  job_core* j = k->job;
  --busy;
  // The carrier waits for the check phase to take the next queued job: refilling one carrier at
  // a time wakes a sleeping worker for every job, while refilling them all at once after libuv's
  // pass wakes each worker once for the lot.
  k->job = nullptr;
  k->next_idle = idle;
  idle = k;
  if (status == UV_ECANCELED) {
    j->flags |= flag_never_ran;
    j->outcome = job_state::cancelled;
  }
  if (j->flags & flag_straggler) --stragglers;
  arrive(j, true);
  finish_if_detached();
}

carrier* core::take_carrier() noexcept {
  if (carrier* k = idle) {
    idle = k->next_idle;
    return k;
  }
  if (carriers_used == carrier_count) return nullptr;
  carrier* k = &carriers[static_cast<std::size_t>(carriers_used++)];
  k->req.data = this;
  return k;
}

void core::refill() noexcept {
  while (queue_head) {
    carrier* k = take_carrier();
    if (!k) return;
    job_core* j = queue_head;
    dequeue(j);
    carry(k, j);
  }
}

// A job libuv is done with, or one cancelled from the queue: settle it now if the current slice
// has time left and nothing is waiting before it, else append it to the backlog.
void core::arrive(job_core* j, bool may_settle_now) noexcept {
  j->flags |= flag_arrived;
  if (!slicing) {
    // `slicer` closes the slice after every poll, and runs only while jobs arrive.
    uv_check_start(&slicer, [](uv_check_t* h) { static_cast<core*>(h->data)->settle_slice(); });
    slicing = true;
  }
  if (may_settle_now && !backlog_head && slice_has_room()) {
    j->vt->finish(j);
    return;
  }
  j->next = nullptr;
  if (backlog_tail) {
    backlog_tail->next = j;
  } else {
    backlog_head = j;
    uv_idle_start(&spinner, [](uv_idle_t*) {});
  }
  backlog_tail = j;
}

bool core::slice_has_room() noexcept {
  if (!slice_open) {
    slice_open = true;
    slice_expired = false;
    slice_settled = 0;
    slice_deadline = uv_hrtime() + slice_ns;
  }
  if (slice_expired) return false;
  if (++slice_settled % 16 == 0 && uv_hrtime() >= slice_deadline) {
    slice_expired = true;
    return false;
  }
  return true;
}

void core::settle_slice() noexcept {
  refill();
  if (!slice_open && !backlog_head) {
    // A turn without arrivals: nothing to settle until jobs arrive again.
    uv_check_stop(&slicer);
    slicing = false;
    return;
  }
  slice_open = false;
  while (backlog_head && slice_has_room()) {
    job_core* j = backlog_head;
    backlog_head = j->next;
    if (!backlog_head) backlog_tail = nullptr;
    j->vt->finish(j);
  }
  slice_open = false;
  if (!backlog_head) uv_idle_stop(&spinner);
  finish_if_detached();
}

// uv_cancel at most once per job: after EBUSY the answer cannot change, and after success a
// second call would only requeue the request. A job still in the runtime's queue never reached
// libuv: it leaves the queue and joins the backlog, so it settles on the loop's next turn, as a
// job cancelled in libuv's queue does.
bool core::cancel_if_queued(job_core* j) noexcept {
  if (j->flags & flag_cancel_queued) return true;
  if (j->flags & flag_queued) {
    dequeue(j);
    j->flags |= flag_cancel_queued | flag_never_ran;
    j->outcome = job_state::cancelled;
    arrive(j, false);
    return true;
  }
  if (j->flags & (flag_busy | flag_arrived)) return false;
  const bool queued = uv_cancel(reinterpret_cast<uv_req_t*>(&j->held_by->req)) == 0;
  j->flags |= queued ? flag_cancel_queued : flag_busy;
  return queued;
}

void core::drain_posted() noexcept {
  posted* p;
  {
    std::lock_guard lock(post_mutex);
    p = std::exchange(post_head, nullptr);
    post_tail = nullptr;
  }
  while (p) {
    posted* next = p->next;
    p->run(p, this);
    p = next;
  }
}

void core::make_room_to_defer() {
  if (deferred.size() == deferred.capacity()) deferred.reserve(deferred.empty() ? 8 : 2 * deferred.size());
}

void core::defer(job_core* j) noexcept {
  j->refs.fetch_add(1, std::memory_order_relaxed);
  deferred.push_back(j);
  if (deferred.size() == 1) uv_ref(reinterpret_cast<uv_handle_t*>(&wakeup));
  uv_async_send(&wakeup);
}

void core::drain_deferred() noexcept {
  while (!deferred.empty()) {
    auto batch = std::exchange(deferred, {});
    for (job_core* j : batch) {
      if (continuation* k = std::exchange(j->cont, nullptr)) k->resume(k);
      j->vt->release(j);
    }
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup));
  finish_if_detached();
}

void check_loop_thread(const core* c, const char* what) {
  if (std::this_thread::get_id() != c->owner)
    throw usage_error(std::string(what) +
                      ": called from a thread that does not run this runtime's loop; "
                      "use runtime::post to hand work to the loop thread");
}

void check_same_runtime(const core* c, const job_core* j, const char* what) {
  if (core_of(j) != c)
    throw usage_error(std::string(what) + ": the future belongs to another runtime, whose loop settles it");
}

void check_submit(const core* c) {
  check_loop_thread(c, "uvrt::to_thread");
  if (c->closing) throw runtime_closed_error("uvrt::to_thread: the runtime is shutting down and takes no new work");
}

void submit(core* c, job_core* j) noexcept { c->submit(j); }

void complete(job_core* j) noexcept {
  core* c = core_of(j);
  if (j->flags & flag_abandoned) return;  // settled by cancel(); its continuation was deferred
  // The continuation is taken before the state is published, so whoever sees the job settled
  // also sees that nothing waits on it any more.
  continuation* k = j->cont;
  if (k) j->cont = nullptr;
  j->state.store(j->outcome, std::memory_order_release);
  if (k) {
    loop_scope scope(c);
    k->resume(k);
  }
}

cancel_result cancel(job_core* j, cancel_mode mode) {
  core* c = core_of(j);
  check_loop_thread(c, "uvrt::future::cancel");
  // Room for a deferred continuation is made first, so running out of memory changes nothing.
  if (mode == cancel_mode::abandon && j->cont) c->make_room_to_defer();
  cancel_result result;
  if (c->cancel_if_queued(j)) {
    result = cancel_result::not_started;
  } else {
    if (j->vt->request_stop && !(j->flags & flag_arrived)) j->vt->request_stop(j);
    result = mode == cancel_mode::abandon ? cancel_result::abandoned : cancel_result::stop_requested;
  }
  if (mode == cancel_mode::abandon) {
    if (j->cont) c->defer(j);
    j->flags |= flag_abandoned;
    j->state.store(job_state::cancelled, std::memory_order_release);
  }
  return result;
}

void check_parkable(const job_core* j, const char* what) {
  if (!j) throw usage_error(std::string(what) + ": the future is empty (moved from or consumed)");
  const core* c = core_of(j);
  check_loop_thread(c, what);
  if (const core* running = current_core(); running && running != c)
    throw usage_error(std::string(what) + ": the future belongs to another runtime, whose loop settles it");
  if (j->cont) throw usage_error(std::string(what) + ": the future is already awaited or has a continuation");
}

void park(job_core* j, continuation* k, const char* what) {
  check_parkable(j, what);
  j->cont = k;
}

void unpark(job_core* j, continuation* k) noexcept {
  if (j && j->cont == k) j->cont = nullptr;
}

namespace {

// An exception nobody will ever rethrow is still not lost silently: it goes to stderr, as
// asyncio logs an exception that was never retrieved.
void report_lost(const std::exception_ptr& e, const char* why) noexcept {
  const char* what = "an exception not derived from std::exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  std::fprintf(stderr, "uvrt: an exception escaped a continuation or posted callable and %s: %s\n", why, what);
}

}  // namespace

void report_unhandled(core* c, std::exception_ptr e) noexcept {
  if (!c->unhandled) c->unhandled = std::move(e);
  else report_lost(e, "was dropped, because an earlier one is still waiting to be rethrown");
  if (c->driving) uv_stop(c->loop);
}

bool post(core* c, posted* p) {
  std::lock_guard lock(c->post_mutex);
  if (!c->accepting_posts) return false;
  p->next = nullptr;
  if (c->post_tail) c->post_tail->next = p;
  else c->post_head = p;
  c->post_tail = p;
  uv_async_send(&c->wakeup);
  return true;
}

void drive(core* c, const char* what, std::coroutine_handle<> start, bool (*done)(void*), void* ctx) {
  check_loop_thread(c, what);
  if (c->depth > 0)
    throw usage_error(std::string(what) +
                      ": called from inside the loop (a task, a continuation or a posted callable), which "
                      "cannot be re-entered; co_await the future or task instead");
  std::exception_ptr error;
  {
    loop_scope scope(c);
    c->driving = true;
    try {
      if (start) start.resume();
      if (!done) {
        // run(): exactly uv_run's default mode, so uv_stop ends it as it would end uv_run.
        uv_run(c->loop, UV_RUN_DEFAULT);
      } else {
        while (!done(ctx) && !c->unhandled) {
          if (uv_run(c->loop, UV_RUN_ONCE) != 0 || c->unhandled || done(ctx)) continue;
          throw usage_error(std::string(what) +
                            ": nothing pending on the loop can complete what it waits for "
                            "(is it waiting on another runtime's future?)");
        }
      }
    } catch (...) {
      error = std::current_exception();
    }
    c->driving = false;
  }
  if (!error) error = c->take_unhandled();
  // The runtime was destroyed from inside this loop: its teardown ends here, now that no uvrt
  // callback is on the stack.
  if (c->detached) c->end_here();
  if (error) std::rethrow_exception(error);
}

core::cancel_counts core::cancel_all() noexcept {
  // The queue first: a running job told to stop frees its carrier, which would otherwise carry
  // the next queued job to libuv before teardown got to cancel it. Then every carried job that
  // libuv has not started, then the running ones are asked to stop.
  cancel_counts n;
  for (; queue_head; ++n.cancelled) cancel_if_queued(queue_head);
  for (int i = 0; i < carriers_used; ++i) {
    job_core* j = carriers[static_cast<std::size_t>(i)].job;
    if (j && !(j->flags & flag_cancel_queued) && cancel_if_queued(j)) ++n.cancelled;
  }
  for (int i = 0; i < carriers_used; ++i) {
    job_core* j = carriers[static_cast<std::size_t>(i)].job;
    if (!j || (j->flags & (flag_cancel_queued | flag_straggler))) continue;
    ++n.running;
    if (j->vt->request_stop) j->vt->request_stop(j);
  }
  // A job whose work has returned but that waits in the backlog for its slice is told to stop as
  // well. Whether it returned just before teardown began or just after is a race its owner
  // cannot see, so the promise is made for both: every job that ran and settles during teardown
  // finds its stop requested (the C API's done callback reads it).
  for (job_core* j = backlog_head; j; j = j->next)
    if (!(j->flags & flag_never_ran) && j->vt->request_stop) j->vt->request_stop(j);
  return n;
}

shutdown_result core::shutdown(std::chrono::nanoseconds timeout) {
  check_loop_thread(this, "uvrt::runtime::shutdown");
  if (depth > 0)
    throw usage_error("uvrt::runtime::shutdown: called from inside the loop (a task, a continuation or a posted "
                      "callable); it turns the loop itself, so call it after run or block_on has returned");
  if (timeout < std::chrono::nanoseconds::zero())
    throw std::invalid_argument("uvrt::runtime::shutdown: the timeout is negative");
  // Room to defer every running job's continuation is made first, so that running out of memory
  // changes nothing.
  deferred.reserve(deferred.size() + static_cast<std::size_t>(busy));
  closing = true;
  loop_scope scope(this);
  const cancel_counts n = cancel_all();
  const std::uint64_t end = uv_hrtime() + static_cast<std::uint64_t>(timeout.count());
  // The timer only wakes the poll by the deadline; uv_hrtime decides, since libuv's timers count
  // whole milliseconds from the loop's cached clock. So it is re-armed from a fresh clock for
  // whatever is left on every turn.
  for (std::uint64_t now = uv_hrtime(); !quiet() && now < end; now = uv_hrtime()) {
    uv_update_time(loop);
    uv_timer_start(&deadline, [](uv_timer_t*) {}, (end - now + 999'999) / 1'000'000, 0);
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_timer_stop(&deadline);
  shutdown_result r{n.cancelled, 0, 0};
  for (int i = 0; i < carriers_used; ++i) {
    job_core* j = carriers[static_cast<std::size_t>(i)].job;
    if (!j || (j->flags & flag_straggler)) continue;
    // Still running at the deadline: its future settles as cancelled now (as cancel_mode::
    // abandon does) and its late outcome is dropped when it arrives.
    j->flags |= flag_straggler;
    ++stragglers;
    if (!(j->flags & flag_abandoned)) {
      if (j->cont) defer(j);
      j->flags |= flag_abandoned;
      j->state.store(job_state::cancelled, std::memory_order_release);
    }
  }
  r.abandoned = stragglers;
  r.finished = n.running > stragglers ? n.running - stragglers : 0;
  // Settle what was cancelled or abandoned, and resume their continuations.
  while (!quiet()) uv_run(loop, UV_RUN_ONCE);
  return r;
}

void core::close_own_loop() noexcept {
  // Handles the application opened on the runtime's own loop and left open are closed here:
  // the loop's memory goes away with the runtime, so nothing may stay linked into it.
  while (uv_loop_close(loop) == UV_EBUSY) {
    uv_walk(loop, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
    uv_run(loop, UV_RUN_ONCE);
  }
}

void core::close(core* c) noexcept {
  if (std::this_thread::get_id() != c->owner)
    fatal("uvrt::runtime destroyed on a thread other than the one that runs its loop");
  c->closing = true;
  if (c->depth > 0) {
    // Destroyed from inside its own loop (a task, a continuation, a posted callable): the loop
    // is turning below this call and cannot be turned here. The teardown goes on as it turns,
    // and whoever turns it (run, block_on, or the application's uv_run) sees it end.
    c->cancel_all();
    c->detached = true;
    c->finish_if_detached();
    return;
  }
  {
    loop_scope scope(c);
    c->cancel_all();
    // Cancelled jobs settle from the backlog or in their carriers' after-work callbacks, running
    // ones when they return; all of that needs the loop to turn. Posts from running jobs
    // (from_thread) are served meanwhile. Jobs that shutdown() abandoned are not waited for.
    while (!c->quiet()) uv_run(c->loop, UV_RUN_ONCE);
  }
  c->detached = true;
  if (c->stragglers == 0) {
    c->end_here();
  } else if (c->owns_loop) {
    // Jobs shutdown() abandoned are still running, and libuv will hand them back to this loop:
    // a thread of uvrt's keeps turning it until they are back, then ends the teardown.
    try {
      std::thread([c] { c->end_here(); }).detach();
    } catch (...) {
      std::fprintf(stderr, "uvrt: no thread to wait for %zu abandoned jobs; the runtime's memory is left allocated\n",
                   c->stragglers);
    }
  }
  // Else the application's loop gets the abandoned jobs back, and the teardown ends there.
}

bool core::quiet() const noexcept { return busy == static_cast<int>(stragglers) && !backlog_head && deferred.empty(); }

void core::finish_if_detached() noexcept {
  if (!detached || finishing || stragglers > 0 || !quiet()) return;
  finishing = true;
  {
    std::lock_guard lock(post_mutex);
    accepting_posts = false;
  }
  drain_posted();
  if (unhandled && !driving) {
    report_lost(unhandled, "was never rethrown, because the runtime was destroyed first");
    unhandled = nullptr;
  }
  auto closed = [](uv_handle_t* h) {
    auto* c = static_cast<core*>(h->data);
    if (--c->open_handles > 0 || c->driving || c->ending) return;
    // Nobody turns this loop on uvrt's behalf: the application does, so the core goes now.
    if (c->owns_loop) {
      std::fprintf(stderr, "uvrt: a runtime destroyed inside its own loop, which the application turns with uv_run, "
                           "cannot free that loop; its memory is left allocated\n");
      return;
    }
    delete c;
  };
  close_handles(closed);
}

void core::end_here() noexcept {
  ending = true;  // the close callbacks leave the core to this function
  {
    loop_scope scope(this);
    finish_if_detached();
    while (open_handles > 0) uv_run(loop, UV_RUN_ONCE);
  }
  if (owns_loop) close_own_loop();
  delete this;
}

core::~core() = default;

}  // namespace uvrt::detail
