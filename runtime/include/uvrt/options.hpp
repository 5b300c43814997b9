// Construction options of a uvrt::runtime.
#pragma once

namespace uvrt {

struct options {
  // Size of libuv's thread pool, which is process-wide and sized once, when it starts.
  // 0 means no preference: use the pool as it runs, or start it with UV_THREADPOOL_SIZE from
  // the environment if that is set, else with libuv's default of 4 threads. Any other value
  // must be 1..1024 and must match the pool if it is already running; see threadpool.hpp.
  int threadpool_size = 0;
};

}  // namespace uvrt
