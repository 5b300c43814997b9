// watch_op: a loop operation that waits for input futures (when_all, when_any, timeout). It holds
// each input future's reference and parks one continuation on each pending input; an input that
// settles calls settled(i) on the loop thread.
//
// Invariants (loop thread only): an input is held until drop(i) (or the op's destructor), and while
// held and pending, its continuation is the op's watch; a dropped input is detached: its work runs
// on and its outcome is destroyed.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>

#include "op.hpp"

namespace uvrt::detail {

// Checks the inputs of a combinator before anything changes: none empty (usage_error), the
// pending ones all of one runtime whose loop thread this is, not awaited already, and not of a
// runtime other than the one running here (usage_error). Returns that runtime, or the one running
// on this thread (maybe null) when every input has settled.
UVRT_EXTERN core* check_inputs(job_core* const* jobs, std::size_t n, const char* what);

class UVRT_EXTERN watch_op : public op {
 protected:
  // Takes the references of `jobs` (checked by check_inputs).
  watch_op(job_core* cell, job_core* const* jobs, std::size_t n);
  ~watch_op() override;

  // Runs settled(i) for the inputs that have settled already, in order, then parks on the rest.
  // Returns true if the op retired meanwhile.
  bool watch() noexcept;
  // Input i has settled. Returns true if the op retired (then nothing of it may be touched).
  virtual bool settled(std::size_t i) noexcept = 0;

  std::size_t size() const noexcept { return n_; }
  // Gives input i (null until now) the reference of `j`, before watch().
  void hold(std::size_t i, job_core* j) noexcept { inputs_[i].job = j; }
  job_core* input(std::size_t i) const noexcept { return inputs_[i].job; }
  // Hands input i's reference to the caller: the op no longer watches or holds it.
  job_core* take(std::size_t i) noexcept;
  // Unparks and releases input i: it is detached.
  void drop(std::size_t i) noexcept;
  // Cancels every held input that is still pending (cancel_quietly).
  void cancel_inputs(cancel_mode mode) noexcept;
  // cancel() of a combinator: `cancelled_` set and every pending input cancelled with `mode`; for
  // abandon the cell settles as cancelled at once (room made first: a refusal changes nothing).
  cancel_result cancel_with_inputs(cancel_mode mode);
  bool failed(std::size_t i) const noexcept;
  // The failure of a settled input i: its exception, or a cancelled_error.
  std::exception_ptr failure_of(std::size_t i) const noexcept;

 private:
  struct watch_point : continuation {
    watch_op* self = nullptr;
    std::size_t index = 0;
    job_core* job = nullptr;
    bool parked = false;  // watch() parked on it: it is counted when it resumes the watch
  };
  static void on_settled(continuation* k) noexcept;

 protected:
  bool cancelled_ = false;  // cancel() was called: the cell settles as cancelled

 private:
  std::unique_ptr<watch_point[]> inputs_;
  std::size_t n_;
};

}  // namespace uvrt::detail
