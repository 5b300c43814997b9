// http: the HTTP/1.1 side of the service, without sockets: http_parser glue with the service's
// limits, routing of a request to an endpoint, and response formatting.
//
// request_parser feeds bytes to http_parser and stops at two points of every message: when its
// head is complete (the limits on the head and on a declared body are checked there, so an
// oversized request is refused before its body is read) and when the message is complete
// (http_parser is paused there, so the caller answers pipelined requests one at a time, in
// order, and resumes with next()). The head limit counts exactly the bytes of the request line
// and headers, however they are split across reads. Any error is final: the caller answers with
// error_status() and closes, because the rest of the stream cannot be framed any more.
#pragma once

#include <http_parser.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace service {

struct http_limits {
  std::size_t max_header_bytes;
  std::size_t max_body_bytes;
};

// A complete request, as far as the service needs it (headers other than Connection and the
// framing ones are not kept; the body is read and dropped).
struct request {
  bool is_get = false;
  std::string url;
  bool keep_alive = false;  // HTTP/1.1 without "Connection: close", and no protocol upgrade
};

class request_parser {
 public:
  enum class event {
    need_more,  // every byte given was consumed; feed more
    head,       // a request head was parsed; feed the rest
    request,    // a request is complete (current()); call next() before feeding more
    error,      // the stream is unusable: answer error_status() and close
  };
  struct result {
    event ev;
    std::size_t consumed;
  };

  explicit request_parser(http_limits limits) noexcept;
  request_parser(const request_parser&) = delete;
  request_parser& operator=(const request_parser&) = delete;

  result feed(const char* data, std::size_t len);
  const request& current() const noexcept { return req_; }
  // Ready for the next request on the same connection.
  void next() noexcept;
  int error_status() const noexcept { return error_status_; }

 private:
  enum class stop { none, head_done, message_done, body_too_large };

  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, std::size_t len);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t len);
  static int on_message_complete(http_parser* p);
  static request_parser& of(http_parser* p) noexcept { return *static_cast<request_parser*>(p->data); }
  void pause(stop why) noexcept;
  result fail(int status, std::size_t consumed) noexcept;

  http_parser parser_;
  http_limits limits_;
  request req_;
  stop stop_ = stop::none;
  bool in_head_ = true;           // the bytes fed now belong to a request head
  std::size_t head_bytes_ = 0;    // bytes of the current head so far
  std::uint64_t body_bytes_ = 0;  // bytes of the current body so far
  int error_status_ = 0;
};

// What a request asks for.
struct route {
  enum class kind { health, query, stats, error } what = kind::error;
  std::int64_t id = 0;  // kind::query
  int status = 0;       // kind::error
  std::string error;    // kind::error: the message of the JSON error body
};

route route_request(const request& req);

// A complete response. Every one carries Content-Type and Content-Length; a 405 also carries
// "Allow: GET", and one that ends the connection "Connection: close".
std::string format_response(int status, std::string_view json_body, bool keep_alive);

// {"error":"message"}; the message is escaped for JSON.
std::string error_json(std::string_view message);

}  // namespace service
