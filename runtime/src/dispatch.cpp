// Dispatch: the runtime's queue and carriers. See dispatch.hpp for the design and invariants.
#include "dispatch.hpp"

#include "core.hpp"

namespace uvrt::detail {

dispatch::dispatch(core& owner, int pool_size)
    : core_(owner),
      carrier_count_(carriers_for(pool_size)),
      // Not value-initialised: a carrier's fields are set when it is first handed out, so the
      // pages of carriers a runtime never uses are never touched.
      carriers_(new carrier[static_cast<std::size_t>(carrier_count_)]) {}

void dispatch::work(uv_work_t* req) {
  job_core* j = reinterpret_cast<carrier*>(req)->job;
  j->vt->run(j);
}

void dispatch::after_work(uv_work_t* req, int status) {
  auto* k = reinterpret_cast<carrier*>(req);
  dispatch& d = static_cast<core*>(req->data)->dispatch_;
  job_core* j = k->job;
  assert((status == 0 || (j->flags & flag_never_ran)) && "libuv cancels only what uv_cancel cancelled");
  (void)status;
  --d.busy_;
  // The carrier waits for the check phase to take the next queued job: refilling one carrier at
  // a time wakes a sleeping worker for every job, while refilling them all at once after libuv's
  // pass wakes each worker once for the lot.
  k->job = nullptr;
  k->next_idle = d.idle_;
  d.idle_ = k;
  d.core_.job_back(j);
}

void dispatch::carry(carrier* k, job_core* j, job_place from) noexcept {
  move_job(j, from, job_place::carried);
  k->job = j;
  j->held_by = k;
  ++busy_;
  // uv_queue_work fails only for a null work callback.
  if (uv_queue_work(core_.loop, &k->req, &work, &after_work) != 0) fatal("uv_queue_work failed");
}

void dispatch::submit(job_core* j) noexcept {
  j->owner = &core_;
  core_.count_in();
  if (!queue_head_) {
    if (carrier* k = take_carrier()) {
      carry(k, j, job_place::taken);
      return;
    }
  }
  move_job(j, job_place::taken, job_place::queued);
  j->next = nullptr;
  j->prev = queue_tail_;
  if (queue_tail_) queue_tail_->next = j;
  else queue_head_ = j;
  queue_tail_ = j;
  ++queued_;
}

void submit(core* c, job_core* j) noexcept { c->dispatch_.submit(j); }

void dispatch::dequeue(job_core* j) noexcept {
  if (j->prev) j->prev->next = j->next;
  else queue_head_ = j->next;
  if (j->next) j->next->prev = j->prev;
  else queue_tail_ = j->prev;
  --queued_;
}

carrier* dispatch::take_carrier() noexcept {
  if (carrier* k = idle_) {
    idle_ = k->next_idle;
    return k;
  }
  if (carriers_used_ == carrier_count_) return nullptr;
  carrier* k = &carriers_[static_cast<std::size_t>(carriers_used_++)];
  k->req.data = &core_;
  return k;
}

void dispatch::refill() noexcept {
  while (queue_head_) {
    carrier* k = take_carrier();
    if (!k) return;
    job_core* j = queue_head_;
    dequeue(j);
    carry(k, j, job_place::queued);
  }
}

// uv_cancel at most once per job: after EBUSY the answer cannot change, and after success a
// second call would only requeue the request. A job still in the runtime's queue never reached
// libuv: it leaves the queue and joins the backlog, so it settles on the loop's next turn, as a
// job cancelled in libuv's queue does.
bool dispatch::cancel_if_queued(job_core* j) noexcept {
  if (j->flags & flag_never_ran) return true;
  switch (place_of(j)) {
    case job_place::queued:
      dequeue(j);
      j->flags |= flag_never_ran;
      j->outcome = job_state::cancelled;
      move_job(j, job_place::queued, job_place::arrived);
      core_.settle_.arrive(j, false);
      return true;
    case job_place::carried:
      if (j->flags & flag_uv_busy) return false;
      if (uv_cancel(reinterpret_cast<uv_req_t*>(&j->held_by->req)) == 0) {
        // libuv will never run it: the outcome is the loop thread's to write from now on.
        j->flags |= flag_never_ran;
        j->outcome = job_state::cancelled;
        return true;
      }
      j->flags |= flag_uv_busy;
      return false;
    case job_place::arrived:
    case job_place::taken:
      break;
  }
  return false;
}

std::size_t dispatch::cancel_queue() noexcept {
  std::size_t n = 0;
  for (; queue_head_; ++n) cancel_if_queued(queue_head_);
  return n;
}

}  // namespace uvrt::detail
