// stats: see stats.hpp. Latencies are reported in whole microseconds, the unit a reader of an
// HTTP service's figures thinks in; the field names say so.
#include "stats.hpp"

#include <chrono>

namespace service {

namespace {

void field(std::string& out, const char* name, std::uint64_t v, bool last = false) {
  out += '"';
  out += name;
  out += "\":";
  out += std::to_string(v);
  if (!last) out += ',';
}

void latency(std::string& out, const char* name, const uvrt::latency& l) {
  auto us = [](std::chrono::nanoseconds d) {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  };
  out += '"';
  out += name;
  out += "\":{";
  field(out, "count", l.count);
  field(out, "p50", us(l.p50));
  field(out, "p90", us(l.p90));
  field(out, "p99", us(l.p99));
  field(out, "max", us(l.max), true);
  out += '}';
}

}  // namespace

std::string stats_json(const uvrt::runtime_stats& rt, const uvrt::limiter& limiter, const service_counters& svc) {
  std::string out;
  out.reserve(512);
  out += "{\"runtime\":{";
  field(out, "submitted", rt.submitted);
  field(out, "settled", rt.settled);
  field(out, "cancelled", rt.cancelled);
  field(out, "abandoned", rt.abandoned);
  field(out, "queued", rt.queued);
  field(out, "running", rt.running);
  field(out, "waiting_for_limiter", rt.waiting_for_limiter);
  latency(out, "wait_us", rt.wait);
  out += ',';
  latency(out, "run_us", rt.run);
  out += "},\"limiter\":{";
  field(out, "tokens", limiter.tokens());
  field(out, "borrowed", limiter.borrowed());
  field(out, "waiting", limiter.waiting(), true);
  out += "},\"service\":{";
  field(out, "connections", svc.connections);
  field(out, "requests", svc.requests);
  field(out, "responses", svc.responses);
  field(out, "timeouts", svc.timeouts);
  field(out, "dropped", svc.dropped, true);
  out += "}}";
  return out;
}

}  // namespace service
