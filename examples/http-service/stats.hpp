// stats: the JSON of GET /stats, from uvrt's figures and the service's own counters.
//
// The service's counters live on the loop thread only (every event that changes them is a loop
// callback), so they are plain integers, and a snapshot is consistent with the runtime's, which
// is also read on the loop thread.
#pragma once

#include <uvrt/uvrt.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace service {

struct service_counters {
  std::size_t connections = 0;  // open now
  std::uint64_t requests = 0;   // request heads parsed
  std::uint64_t responses = 0;  // responses fully written
  std::uint64_t timeouts = 0;   // 504s sent
  std::uint64_t dropped = 0;    // queries whose client went away before the answer
};

std::string stats_json(const uvrt::runtime_stats& rt, const uvrt::limiter& limiter, const service_counters& svc);

}  // namespace service
