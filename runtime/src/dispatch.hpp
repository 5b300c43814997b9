// Dispatch: how a job reaches libuv and comes back.
//
// A runtime never gives libuv more than `carrier_count` jobs at a time (at least 1024). Each of
// its carriers is a uv_work_t of its own that carries one job at a time. A finished carrier waits
// for the check phase of the same turn, where all the carriers freed in that turn take the next
// jobs from the runtime's queue together (refill): refilling them one by one as they finish would
// wake a sleeping worker for each job. So:
//   - a job waiting in the queue costs its block (56 bytes for an int result) and no uv_work_t;
//   - libuv's one process-wide queue holds at most carrier_count jobs of each runtime, so the
//     process's file system and DNS requests wait behind that many jobs, not behind a burst;
//   - libuv's own pass over finished requests (uv__work_done, which runs every finished request's
//     callback in one go) handles at most carrier_count requests, which bounds the loop's stall;
//   - a loop thread that blocks (instead of awaiting) while more than carrier_count of its jobs
//     are queued will wait for the rest to start forever: they reach libuv only as it turns.
//
// Invariants (loop thread only):
//   - A job here is `queued` (linked through prev/next, FIFO) or `carried` (held_by its carrier),
//     never both; move_job asserts every change of place.
//   - uv_cancel is called at most once per carried job, and only before its after-work callback
//     ran (flag_never_ran and flag_uv_busy record the answer; an arrived job is never asked): libuv
//     corrupts its queue if it is called after that callback. A carrier is reused only once its
//     after-work callback ran.
//   - Busy carriers keep the loop alive as libuv requests do; nothing else here does.
#pragma once

#include <uv.h>

#include <cassert>
#include <cstddef>
#include <memory>

#include "uvrt/detail/job.hpp"

namespace uvrt::detail {

class core;

inline job_place place_of(const job_core* j) noexcept { return static_cast<job_place>(j->flags & place_bits); }

// The one way a job changes place.
inline void move_job(job_core* j, [[maybe_unused]] job_place from, job_place to) noexcept {
  assert(place_of(j) == from && "a job moves from the place it is in");
  j->flags = static_cast<std::uint8_t>((j->flags & ~place_bits) | static_cast<std::uint8_t>(to));
}

// A uv_work_t of the runtime's that carries one job at a time to libuv (see above).
struct carrier {
  uv_work_t req;  // first member: libuv hands back &req; req.data is the owning core
  job_core* job;  // the job it carries, or null while idle
  carrier* next_idle;
};

class dispatch {
 public:
  dispatch(core& owner, int pool_size);

  // Takes a job whose fields are set (place `taken`): carried now if the queue is empty and a
  // carrier is free, else queued.
  void submit(job_core* j) noexcept;
  // Cancels a job that has not run yet: from the queue at once (it goes to the settlement), from
  // libuv with uv_cancel. False if it is running or has run. Either way it settles later, never
  // inside this call.
  bool cancel_if_queued(job_core* j) noexcept;
  // In the check phase: carriers freed this turn take the next queued jobs.
  void refill() noexcept;
  // Teardown: cancels every queued job, returns how many.
  std::size_t cancel_queue() noexcept;

  template <class F>
  void for_each_carried(F&& f) const {
    for (int i = 0; i < carriers_used_; ++i)
      if (job_core* j = carriers_[static_cast<std::size_t>(i)].job) f(j);
  }
  int busy() const noexcept { return busy_; }
  std::size_t queued() const noexcept { return queued_; }

 private:
  // Enough that the pool rarely runs dry while the loop settles a turn's completions (workers
  // that run dry sleep, and waking them costs more than an empty job), and several times the
  // pool so that large pools stay busy too. A carrier is 144 bytes; they are handed out lazily.
  static int carriers_for(int pool_size) noexcept { return pool_size * 4 > 1024 ? pool_size * 4 : 1024; }
  static void work(uv_work_t* req);
  static void after_work(uv_work_t* req, int status);

  carrier* take_carrier() noexcept;
  void carry(carrier* k, job_core* j, job_place from) noexcept;
  void dequeue(job_core* j) noexcept;

  core& core_;
  const int carrier_count_;
  std::unique_ptr<carrier[]> carriers_;  // the first `carriers_used_` have been handed out
  int carriers_used_ = 0;
  int busy_ = 0;
  carrier* idle_ = nullptr;
  job_core* queue_head_ = nullptr;
  job_core* queue_tail_ = nullptr;
  std::size_t queued_ = 0;
};

}  // namespace uvrt::detail
