// Dispatch: how a job reaches a pool thread and comes back.
//
// A runtime hands libuv carriers, not jobs. A carrier is a uv_work_t of the runtime's; on a pool
// thread it takes jobs from the runtime's queue and runs them one after the other, returning each
// to the runtime as it finishes, until the queue is empty (after a short spin, for a job that
// follows at once) or its time slice is over. Then it gives the thread back to libuv, whose FIFO
// serves the file system, DNS and other requests queued meanwhile before the carrier comes again.
// So:
//   - a job waiting in the queue costs its block and no uv_work_t, and a burst costs one lock a
//     job on each side instead of libuv's two locks, two queue passes and a wake-up a job;
//   - libuv's queue holds at most a few carriers per runtime, and every runtime of the process
//     together holds at most pool_slots() threads (pool_slots.hpp): reserved threads stay free,
//     and with none reserved a file system request waits behind at most one job a thread plus a
//     slice;
//   - returned jobs go on a list the loop takes in one go, with one wake-up for all the jobs that
//     returned while it was busy (the `wake` async handle).
//
// The carriers the runtime keeps out follow the queue: one more is sent while fewer carriers are
// free (out and not running a job) than jobs are queued, as long as the runtime can take a slot.
// A carrier's after-work callback (loop thread) gives its slot back and sends carriers again.
//
// Invariants:
//   - The queue, its counts and each carrier's current job are guarded by `mutex_`; the returns
//     list is a stack carriers push under the mutex (with a CAS, since the loop takes it whole
//     without the mutex); everything else here is the loop thread's.
//   - A job here is `dispatched`. Queued, it is linked through prev/next; once a carrier takes it,
//     its `prev` is `taken_mark` and the carrier's `job` points at it until the carrier pushes it
//     on the returns stack, under the mutex, so for_each_taken sees each job in one place. A job
//     on the returns stack was run; the loop takes it with take_returns.
//   - A carrier touches a job only between taking it and putting it on the returns list, and the
//     core's loop-thread fields of a job (flags, cont) never.
//   - `wake` is signalled only while `wake_open_` (signal()); teardown clears it and waits for
//     signals under way before closing the handle, so no worker ever signals a closed handle.
//   - `out_` carriers hold a slot each and keep the loop alive as libuv requests do; `wake` is
//     referenced while jobs wait without a carrier out to run them (no slot) or for a limiter.
#pragma once

#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "latency.hpp"
#include "uvrt/detail/job.hpp"

namespace uvrt::detail {

class core;

inline job_place place_of(const job_core* j) noexcept { return static_cast<job_place>(j->flags & place_bits); }

// The one way a job changes place.
inline void move_job(job_core* j, [[maybe_unused]] job_place from, job_place to) noexcept {
  assert(place_of(j) == from && "a job moves from the place it is in");
  j->flags = static_cast<std::uint8_t>((j->flags & ~place_bits) | static_cast<std::uint8_t>(to));
}

// The returns and grants are pushed in front; the loop takes them in the order they came.
job_core* reversed(job_core* list) noexcept;

// A carrier took the job: what its `prev` says instead of a queue link.
inline job_core* const taken_mark = reinterpret_cast<job_core*>(alignof(job_core));

// The queue's lock: glibc's adaptive mutex, which spins a little before it sleeps. Its critical
// sections are a few pointer moves, and the loop and up to a pool's worth of carriers take it for
// every job: a plain mutex sent them to sleep in the kernel on nearly every collision.
class queue_mutex {
 public:
  queue_mutex() noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&m_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~queue_mutex() { pthread_mutex_destroy(&m_); }
  queue_mutex(const queue_mutex&) = delete;
  queue_mutex& operator=(const queue_mutex&) = delete;
  void lock() noexcept { pthread_mutex_lock(&m_); }
  void unlock() noexcept { pthread_mutex_unlock(&m_); }

 private:
  pthread_mutex_t m_;
};

// A uv_work_t of the runtime's that runs queued jobs on a pool thread (see above).
struct carrier {
  uv_work_t req;        // first member: libuv hands back &req; req.data is the owning core
  job_core* job;        // the job it runs now, or null (under the dispatch mutex)
  carrier* next_idle;   // loop thread: the runtime's idle carriers
  latency_recorder wait;  // written by the carrier's thread, one thread at a time
  latency_recorder run;
};

class dispatch {
 public:
  dispatch(core& owner, int slots);
  ~dispatch();

  // Takes a job whose fields are set (place `taken` or `limited`): queues it for the carriers.
  void submit(job_core* j) noexcept;
  // Cancels a job no carrier has taken: it leaves the queue for the backlog and settles on a
  // later turn, never inside this call. False if a carrier has it.
  bool cancel_if_queued(job_core* j) noexcept;
  // Teardown: cancels every queued job, returns how many.
  std::size_t cancel_queue() noexcept;
  // Every job a carrier has taken and the loop has not taken back, seen at one instant: each
  // returned one is passed to `returned` and then to the core's backlog (not settled here); then
  // each running one to `running`. Allocates nothing (teardown and shutdown's deadline call it).
  template <class R, class F>
  void for_each_taken(R&& returned, F&& running) {
    std::size_t n = 0;
    job_core* list;
    {
      std::lock_guard lock(mutex_);
      for (carrier* k : carriers_)
        if (k->job) running_[n++] = k->job;
      list = returns_.exchange(nullptr, std::memory_order_acquire);
    }
    for (job_core* j = reversed(list); j;) {
      job_core* next = j->next;
      returned(j);
      back(j, false);
      j = next;
    }
    for (std::size_t i = 0; i < n; ++i) running(running_[i]);
  }
  // Takes the returned jobs, in the order they returned, to the core (core::job_back). True if
  // there were any.
  bool take_returns() noexcept;
  // Every turn, in the check phase: while jobs return often, the loop looks for them itself
  // (and keeps poll from blocking) instead of being signalled; see dispatch.cpp.
  void poll_returns() noexcept;
  // Sends carriers while the queue needs them and slots allow.
  void send_carriers() noexcept;
  // Teardown: no more signals of `wake`, no more slots; returns are taken by after-work callbacks.
  void close_wake() noexcept;
  // Any thread: a job of this runtime's that was granted its limiter's token (tokens.hpp); the
  // loop takes it with take_granted, in `wake`'s callback.
  void grant(job_core* j) noexcept;
  // Loop thread: the granted jobs, in the order they were granted, as a list through next.
  job_core* take_granted() noexcept;

  std::size_t queued() const noexcept { return queued_.load(std::memory_order_relaxed); }
  // Jobs dispatched and not back on the loop thread: queued, running, or returned.
  std::size_t out_jobs() const noexcept { return unreturned_; }
  int carriers_out() const noexcept { return out_; }
  // Adds every carrier's wait and run latencies. Loop thread.
  void add_latencies(latency_sum& wait, latency_sum& run) const noexcept;
  // Holds or drops the reference of `wake` that keeps the loop alive while jobs wait without a
  // carrier: called with how many jobs wait for a limiter.
  void keep_alive(std::size_t limited) noexcept;

  uv_async_t wake;  // a worker returned jobs, a slot was given back, or a limiter granted a token
  void signal() noexcept;  // any thread: uv_async_send(&wake) while open
  static void on_wake(uv_async_t* h);

  // Pool slots (pool_slots.cpp), under its mutex.
  dispatch* slot_next = nullptr;
  bool slot_waiting = false;

 private:
  static void work(uv_work_t* req);
  static void after_work(uv_work_t* req, int status);
  // Under mutex_: the next queued job for `k`, or null.
  job_core* take_job(carrier* k) noexcept;
  void unlink(job_core* j) noexcept;  // under mutex_
  carrier* idle_carrier() noexcept;
  void back(job_core* j, bool settle_now) noexcept;  // a returned job to the core
  bool push_return(job_core* j) noexcept;            // any thread; true if the list was empty
  void never_ran(job_core* j) noexcept;              // a queued job cancelled: to the backlog
  // The loop turned (one of dispatch's callbacks ran): carriers see it (work()).
  void count_turn() noexcept { turns_.store(turns_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

  core& core_;
  queue_mutex mutex_;
  // Under mutex_ (queued_ is also read without it, as a hint or on the loop thread for stats).
  job_core* head_ = nullptr;
  job_core* tail_ = nullptr;
  std::atomic<std::size_t> queued_{0};
  int free_carriers_ = 0;        // out, not running a job: will take the next queued one
  job_core* granted_ = nullptr;  // LIFO; take_granted reverses it
  bool spinning_ = false;        // a carrier waits for the next job (at most one does)
  // Lock-free, on a line of their own: every return touches them, off the queue's lock.
  alignas(64) std::atomic<job_core*> returns_{nullptr};  // LIFO; take_returns reverses it
  std::atomic<bool> loop_polling_{false};  // the loop looks for returns every turn: no signal needed
  std::atomic<bool> wake_open_{true};
  std::atomic<int> senders_{0};  // threads inside signal()
  std::atomic<std::uint32_t> turns_{0};  // written by the loop only (count_turn)
  // Loop thread.
  bool hot_ = false;                // loop_polling_ as the loop last set it
  std::uint64_t last_return_ = 0;   // uv_hrtime of the last turn that found returns
  const int max_carriers_;          // the pool's slots: more never run at once
  std::vector<carrier*> carriers_;  // every carrier made so far
  std::vector<job_core*> running_;  // for_each_taken's snapshot: one per carrier
  carrier* idle_ = nullptr;
  int out_ = 0;                     // carriers in libuv (each holds a slot until it leaves its thread)
  std::size_t unreturned_ = 0;
  bool wake_referenced_ = false;
  bool in_line_ = false;            // waits to be signalled for a pool slot (pool_slots.hpp)
};

}  // namespace uvrt::detail
