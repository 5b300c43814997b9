// Tokens: uvrt::limiter's state, and the jobs that wait for its tokens.
//
// A job submitted with a limiter borrows one token before it is dispatched and gives it back when
// it returns from its pool thread (or is cancelled before it ran), on its runtime's loop thread.
// A job that finds no token, or finds others waiting, waits in the limiter's FIFO (place
// `limited`), which may hold jobs of several runtimes. A token given back, or added by set_tokens,
// goes to the first waiting job: on the giving loop thread a job of the same runtime is
// dispatched at once; any other job is handed to its runtime's dispatch (dispatch::grant, under
// its mutex) and its loop is signalled through `wake`.
//
// Invariants:
//   - Under the limiter's mutex: borrowed counts jobs dispatched with a token and not yet given
//     back, granted ones on their way to their runtime included; a waiting job is linked in the
//     FIFO, a granted one has `prev == granted_mark` until its runtime takes it.
//   - A runtime counts its jobs that wait or are on their way (`limited`), per limiter: teardown
//     finds them there, and the runtime is not settled while any is left, so a grant on its way
//     always finds the runtime alive and its `wake` open.
//   - The limiter outlives its jobs: its destructor is fatal while borrowed or waiting is not 0.
#pragma once

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "uvrt/detail/job.hpp"

namespace uvrt::detail {

class core;

struct limiter_state {
  std::mutex mutex;
  std::size_t tokens;
  std::size_t borrowed = 0;
  std::size_t waiting = 0;
  job_core* head = nullptr;  // waiting jobs, FIFO, linked through prev/next
  job_core* tail = nullptr;
};

// A runtime's jobs that wait for a token or are on their way with one (loop thread).
class token_waits {
 public:
  std::size_t count() const noexcept { return count_; }
  void add(limiter_state* l);
  void remove(limiter_state* l) noexcept;
  template <class F>
  void for_each_limiter(F&& f) const {
    for (const auto& w : per_limiter_) f(w.first);
  }
  // Room for one more limiter, made before anything changes (to_thread may throw bad_alloc).
  void reserve_one();

 private:
  std::vector<std::pair<limiter_state*, std::size_t>> per_limiter_;
  std::size_t count_ = 0;
};

// Submission (loop thread): true if `j` got a token and may be dispatched now; else it waits.
bool wait_for_token(core* c, job_core* j) noexcept;
// cancel() of a `limited` job: it leaves the FIFO and settles on a later turn (true). A job on its
// way with a token is marked never-ran and settles when its runtime takes it (true as well).
bool cancel_waiting_for_token(core& c, job_core* j) noexcept;
// A job with a token returned or was cancelled before it ran: the token goes to the next job.
void give_token_back(core& c, job_core* j) noexcept;
// The runtime takes the jobs granted to it from other threads (dispatch's `wake`).
void take_granted_tokens(core& c) noexcept;
// Teardown: cancels every job of `c` waiting for a token; returns how many, with those on their
// way counted too (they settle cancelled when they arrive).
std::size_t cancel_token_waits(core& c) noexcept;

}  // namespace uvrt::detail
