// The HTTP service's request parser (examples/http-service/http.{hpp,cpp}) as a fuzz target: the
// bytes a client sends, which no one but the client controls.
//
// Input: byte 0 seeds how the stream is cut into reads, bytes 1 and 2 set the limits (a head of
// 16 to 271 bytes, a body of 0 to 255), the rest is the stream. It is parsed twice, the way the
// server's pump() does: once arriving in one read, once in reads of 1 to 16 bytes. Checked:
//   - every feed() makes progress or asks for more, within the bytes given (no loop, no overrun);
//   - both parses see the same requests (method, target, keep-alive, route, status) and the same
//     error, because what a client sends cannot depend on how TCP cuts it: that is what makes the
//     head limit exact and pipelining ordered;
//   - every error is one the server answers (400, 413, 431), and every response it would write
//     carries a Content-Length equal to its body's size.
// A failed check aborts, which libFuzzer (and the replay test) report as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "http.hpp"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_http_request: %s\n", what);
    std::abort();
  }
}

// What a parse saw, one line per request or error, compared between the two parses.
std::string describe(const service::request& req, const service::route& r) {
  return std::string(req.is_get ? "GET " : "other ") + req.url + (req.keep_alive ? " keep-alive" : " close") +
         " -> " + std::to_string(static_cast<int>(r.what)) + " " + std::to_string(r.id) + " " +
         std::to_string(r.status) + "\n";
}

// The body a response to `r` would carry, and a check of the response's framing.
void check_response(const service::route& r, bool keep_alive) {
  std::string body = r.what == service::route::kind::error ? service::error_json(r.error) : R"({"status":"ok"})";
  std::string response = service::format_response(r.what == service::route::kind::error ? r.status : 200, body,
                                                  keep_alive);
  std::size_t end = response.find("\r\n\r\n");
  require(response.rfind("HTTP/1.1 ", 0) == 0 && end != std::string::npos, "a response without a status line or head");
  require(response.size() - end - 4 == body.size(), "a response whose body is not the one given");
  require(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n") < end,
          "a response without the right Content-Length");
}

// Parses `stream` arriving in reads of the given sizes (the last read takes the rest), as the
// server's pump() does: buffer, feed from where the last feed stopped, stop at an error.
std::string parse(const std::string& stream, const std::vector<std::size_t>& reads, service::http_limits limits) {
  service::request_parser parser(limits);
  std::string trace, buffered;
  std::size_t parsed = 0, given = 0;
  for (std::size_t k = 0; given < stream.size(); ++k) {
    std::size_t n = k < reads.size() ? reads[k] : stream.size() - given;
    if (n > stream.size() - given) n = stream.size() - given;
    buffered.append(stream, given, n);
    given += n;
    int guard = 0;
    while (parsed < buffered.size()) {
      require(++guard < 100000, "feed() makes no progress");
      service::request_parser::result r = parser.feed(buffered.data() + parsed, buffered.size() - parsed);
      require(r.consumed <= buffered.size() - parsed, "feed() consumed more than it was given");
      parsed += r.consumed;
      switch (r.ev) {
        case service::request_parser::event::need_more:
          require(parsed == buffered.size(), "need_more with bytes left");
          break;
        case service::request_parser::event::head:
          break;
        case service::request_parser::event::request: {
          service::route route = service::route_request(parser.current());
          trace += describe(parser.current(), route);
          check_response(route, parser.current().keep_alive);
          parser.next();
          break;
        }
        case service::request_parser::event::error:
          require(parser.error_status() == 400 || parser.error_status() == 413 || parser.error_status() == 431,
                  "an error status other than 400, 413 or 431");
          return trace + "error " + std::to_string(parser.error_status()) + "\n";
      }
    }
  }
  return trace;
}

}  // namespace

// replay.c calls it, as libFuzzer does; nothing to set up here.
extern "C" int LLVMFuzzerInitialize(int*, char***) { return 0; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  service::http_limits limits{16 + std::size_t{data[1]}, std::size_t{data[2]}};
  std::string stream(reinterpret_cast<const char*>(data) + 3, size - 3);

  std::vector<std::size_t> pieces;
  std::uint32_t state = data[0] * 2654435761u + 1;
  for (std::size_t total = 0; total < stream.size();) {
    state = state * 1103515245u + 12345u;
    std::size_t n = 1 + (state >> 16) % 16;
    pieces.push_back(n);
    total += n;
  }
  require(parse(stream, {}, limits) == parse(stream, pieces, limits), "the parse depends on how the stream is cut");
  return 0;
}
