// config: the command line of uvrt-http-service, as pinned by issue 14's contract.
//
// Every flag is `--name VALUE` (or a bare switch); a number is decimal digits only, within the
// flag's range. Anything else is refused as a whole with a message, before anything starts, so
// a typo never runs a server with a default the user did not ask for.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace service {

struct config {
  int port = 8080;
  std::string db = "uvrt-service.db";
  std::int64_t rows = 200000;
  int threads = 4;
  std::size_t connections = 0;  // 0 until parsed: then --connections, or threads
  bool direct = false;
  std::chrono::milliseconds query_timeout{1000};
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds drain_timeout{5000};
  std::size_t max_header_bytes = 8192;
  std::size_t max_body_bytes = 1048576;
  std::chrono::milliseconds query_delay{0};
  std::size_t max_queued = 1024;
  bool create_only = false;
  bool help = false;
};

// A refused command line; what() says why.
class flag_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

config parse_flags(int argc, char** argv);
extern const char* const usage;

}  // namespace service
