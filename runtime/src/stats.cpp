// runtime::stats(): the core's counters, dispatch's gauges and the carriers' latencies.
//
// Everything here is read on the loop thread. The counters and the limiter gauge are the loop
// thread's own; the queue count is written under dispatch's mutex and read as a relaxed atomic;
// the latencies are the carriers' recorders, read while workers may add to them (a snapshot may
// miss the last few jobs, never counts one twice). Nothing here is on a job's path: the jobs pay
// for two clock reads and two histogram increments, on the worker.
#include "core.hpp"
#include "latency.hpp"

namespace uvrt::detail {

runtime_stats core::stats() const {
  runtime_stats s;
  s.submitted = counters.submitted;
  s.settled = counters.settled;
  s.cancelled = counters.cancelled;
  s.abandoned = counters.abandoned;
  s.waiting_for_limiter = tokens_.count();
  s.queued = dispatch_.queued();
  // Everything else not yet settled: taken by a carrier, returned, or back on the loop thread
  // waiting for its slice (cancelled ones included); abandoned jobs have settled already.
  const std::size_t unsettled = dispatch_.out_jobs() + settle_.waiting() - s.queued;
  s.running = unsettled > settled_early_ ? unsettled - settled_early_ : 0;
  latency_sum wait;
  latency_sum run;
  dispatch_.add_latencies(wait, run);
  const double scale = ns_per_tick();
  s.wait = to_latency(wait, scale);
  s.run = to_latency(run, scale);
  return s;
}

}  // namespace uvrt::detail
