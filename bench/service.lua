-- wrk script of bench/run's service workload (issue 14).
--
--   wrk -t2 -c64 -d15s --latency -s bench/service.lua http://127.0.0.1:PORT/query
--   wrk -t1 -c1 -d15s --latency -s bench/service.lua http://127.0.0.1:PORT/health
--
-- /health is a probe, not a load: each connection sends one request every 10 ms (wrk's delay()),
-- as a health checker polls. Asked back to back, it would be a second load of its own: with the
-- answer on the loop in 30 µs, one connection made about 30,000 requests a second and took that
-- CPU from the queries (measured 2026-12-05 on this 2-core machine).
--
-- On /query every request asks for the next id, each wrk thread counting from its own start (thread
-- i from i * 1000003), so that the queries spread over the table's ranges (id % 9000) instead of
-- repeating one. Any other path is requested as given. At the end it prints one JSON line after
-- wrk's own report: requests, duration (µs), wrk's error counts (status: answers with a status
-- of 400 or more, what wrk reports as "Non-2xx or 3xx responses"; connect, read, write, timeout:
-- socket errors) and the latency percentiles in µs.

local threads = 0

function setup(thread)
  thread:set("first", threads * 1000003)
  threads = threads + 1
end

function init(args)
  counter = first or 0
end

function request()
  if wrk.path ~= "/query" then
    return wrk.format()
  end
  counter = counter + 1
  return wrk.format("GET", "/query?id=" .. counter)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"latency_mean_us":%.1f,"latency_p50_us":%d,"latency_p90_us":%d,' ..
    '"latency_p99_us":%d,"latency_max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

if wrk.path == "/health" then
  function delay()
    return 10
  end
end
