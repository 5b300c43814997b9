// http: see http.hpp. The parser is driven by pausing, never by failing callbacks: a callback
// records why it stopped and pauses, and feed() decides, so every decision about limits and
// errors is made in one place with the exact byte count in hand.
#include "http.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdio>
#include <system_error>

namespace service {

namespace {

std::string_view reason(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
  }
  return "Unknown";
}

route error_route(int status, std::string message) {
  route r;
  r.status = status;
  r.error = std::move(message);
  return r;
}

// The id of /query: decimal digits only, 0 .. 2^63-1, exactly once among the parameters.
route query_route(std::string_view query) {
  std::string_view value;
  bool seen = false;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    std::size_t eq = param.find('=');
    if (param.substr(0, eq) != "id") continue;
    if (seen) return error_route(400, "id given more than once");
    seen = true;
    value = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
  }
  if (!seen) return error_route(400, "missing id");
  if (value.empty()) return error_route(400, "empty id");
  for (char c : value)
    if (c < '0' || c > '9') return error_route(400, "id must be decimal digits");
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
  if (ec != std::errc{} || end != value.data() + value.size()) return error_route(400, "id out of range");
  route r;
  r.what = route::kind::query;
  r.id = id;
  return r;
}

}  // namespace

request_parser::request_parser(http_limits limits) noexcept : limits_(limits) {
  // http_parser has its own, process-wide bound on a head (HTTP_MAX_HEADER_SIZE, 80 KiB), past
  // which it fails with HPE_HEADER_OVERFLOW: without raising it, --max-header-bytes above 80 KiB
  // answered 431 to heads under the limit. Raised (never lowered) to our limit, so the exact
  // count in feed() decides; it still bounds trailers and chunk extensions, which feed() does
  // not count. Its count sees the byte it paused on again when resumed, hence a small margin
  // (any margin is right: feed() decides a head's fate by its exact count first). Every parser
  // is made on the loop thread, so the global is not raced.
  if (limits.max_header_bytes > HTTP_MAX_HEADER_SIZE)
    http_parser_set_max_header_size(static_cast<std::uint32_t>(limits.max_header_bytes + 16));
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
}

void request_parser::pause(stop why) noexcept {
  stop_ = why;
  http_parser_pause(&parser_, 1);
}

request_parser::result request_parser::fail(int status, std::size_t consumed) noexcept {
  error_status_ = status;
  return {event::error, consumed};
}

void request_parser::next() noexcept {
  req_ = request{};
  in_head_ = true;
  head_bytes_ = 0;
  body_bytes_ = 0;
}

request_parser::result request_parser::feed(const char* data, std::size_t len) {
  static const http_parser_settings settings = [] {
    http_parser_settings s{};
    s.on_message_begin = &on_message_begin;
    s.on_url = &on_url;
    s.on_headers_complete = &on_headers_complete;
    s.on_body = &on_body;
    s.on_message_complete = &on_message_complete;
    return s;
  }();
  if (error_status_ != 0) return {event::error, 0};
  // Pauses happen at the end of a head and of a message only, so one call of http_parser_execute
  // never crosses from a head into a body: what it consumed belongs wholly to one or the other.
  bool head_at_start = in_head_;
  // http_parser never sees more of a head than the limit allows, so that what happens to a head
  // over it (431) does not depend on how the bytes were cut into reads: given the whole head at
  // once it would otherwise report what it found past the limit first, a malformed header (400)
  // say (found by fuzz_http_request). A head within the limit pauses before its last byte, so
  // one whose first max_header_bytes bytes do not complete it is over the limit.
  std::size_t give = len;
  if (in_head_) {
    if (head_bytes_ >= limits_.max_header_bytes) return fail(431, 0);
    give = std::min(len, limits_.max_header_bytes - head_bytes_);
  }
  std::size_t n = http_parser_execute(&parser_, &settings, data, give);
  if (head_at_start) head_bytes_ += n;
  http_errno err = HTTP_PARSER_ERRNO(&parser_);
  if (err == HPE_PAUSED) {
    http_parser_pause(&parser_, 0);
    stop why = stop_;
    stop_ = stop::none;
    switch (why) {
      case stop::head_done:
        in_head_ = false;
        // http_parser pauses in on_headers_complete before it consumes the head's final LF (it
        // reads that byte again when resumed, in the body phase), so the head is one byte longer
        // than what this call consumed. Without this byte a head of max_header_bytes + 1 passed.
        ++head_bytes_;
        if (head_bytes_ > limits_.max_header_bytes) return fail(431, n);
        // http_parser reports no Content-Length as ULLONG_MAX; a chunked body is counted in on_body.
        if (parser_.content_length != ULLONG_MAX && parser_.content_length > limits_.max_body_bytes)
          return fail(413, n);
        return {event::head, n};
      case stop::message_done:
        return {event::request, n};
      case stop::body_too_large:
        return fail(413, n);
      case stop::none:
        break;
    }
    return fail(400, n);
  }
  if (err == HPE_HEADER_OVERFLOW) return fail(431, n);
  if (err != HPE_OK) return fail(400, n);
  if (in_head_ && head_bytes_ >= limits_.max_header_bytes && give < len) return fail(431, n);
  // Stopping early with no error or pause happens only after a protocol upgrade, which the
  // service does not speak: what follows is not HTTP.
  if (n != give) return fail(400, n);
  return {event::need_more, n};
}

int request_parser::on_message_begin(http_parser* p) {
  request_parser& self = of(p);
  self.req_ = request{};
  self.body_bytes_ = 0;
  return 0;
}

int request_parser::on_url(http_parser* p, const char* at, std::size_t len) {
  of(p).req_.url.append(at, len);  // bounded: feed() stops a head past max_header_bytes
  return 0;
}

int request_parser::on_headers_complete(http_parser* p) {
  request_parser& self = of(p);
  self.req_.is_get = p->method == HTTP_GET;
  self.req_.keep_alive = p->http_major == 1 && p->http_minor >= 1 && http_should_keep_alive(p) != 0 && !p->upgrade;
  self.pause(stop::head_done);
  return 0;
}

int request_parser::on_body(http_parser* p, const char*, std::size_t len) {
  request_parser& self = of(p);
  self.body_bytes_ += len;
  if (self.body_bytes_ > self.limits_.max_body_bytes) self.pause(stop::body_too_large);
  return 0;
}

int request_parser::on_message_complete(http_parser* p) {
  request_parser& self = of(p);
  if (p->upgrade) self.req_.keep_alive = false;
  self.pause(stop::message_done);
  return 0;
}

// The request target without an absolute form's scheme and authority: HTTP/1.1 servers must
// accept `GET http://host/health` as they accept `GET /health` (RFC 9112, section 3.2.2).
static std::string_view origin_form(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.size() >= scheme.size() &&
        std::equal(scheme.begin(), scheme.end(), url.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
      std::size_t slash = url.find_first_of("/?#", scheme.size());
      if (slash == std::string_view::npos) return "/";
      return url[slash] == '/' ? url.substr(slash) : std::string_view{};  // "http://h?x": no path
    }
  }
  return url;
}

route route_request(const request& req) {
  std::string_view url = origin_form(req.url);
  std::string_view path = url.substr(0, url.find_first_of("?#"));
  std::string_view query;
  if (std::size_t q = url.find('?'); q != std::string_view::npos && q < url.find('#')) {
    query = url.substr(q + 1);
    query = query.substr(0, query.find('#'));
  }
  route r;
  if (path == "/health") r.what = route::kind::health;
  else if (path == "/stats") r.what = route::kind::stats;
  else if (path == "/query") r.what = route::kind::query;
  else return error_route(404, "not found");
  if (!req.is_get) return error_route(405, "method not allowed");
  if (r.what == route::kind::query) return query_route(query);
  return r;
}

std::string format_response(int status, std::string_view json_body, bool keep_alive) {
  std::string out;
  out.reserve(160 + json_body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason(status);
  out += "\r\nContent-Type: application/json\r\nContent-Length: ";
  out += std::to_string(json_body.size());
  out += "\r\n";
  if (status == 405) out += "Allow: GET\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  out += json_body;
  return out;
}

std::string error_json(std::string_view message) {
  std::string out = "{\"error\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  out += "\"}";
  return out;
}

}  // namespace service
