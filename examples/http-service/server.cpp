// server: see server.hpp. A connection answers one request at a time: from the moment a request
// is complete until its response is written, parsing stops (pipelined requests wait in the
// buffer, in order) and the header timer is off; it is armed again when the connection waits
// for the next request, and closes a connection that waits too long for a request to arrive in
// full (an idle keep-alive, a byte-by-byte sender). Reading goes on while a request is answered,
// so that a client who leaves is noticed and its query cancelled, up to a bound on what a
// pipelining client may have buffered.
//
// A response that ends the connection is followed by a lingering close: the write side is shut
// down and input is read and dropped until the client closes or a short timer fires. Closing at
// once with unread input would make the kernel send a reset that can destroy the response the
// client has not read yet (an early 413, a 400 with more garbage behind it).
//
// No exception crosses into libuv: every callback catches at its boundary and closes the
// connection it concerns.
#include "server.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>

#include "http.hpp"

namespace service {

namespace {

constexpr std::size_t max_buffered = 64 * 1024;             // pipelined input kept while answering
constexpr std::chrono::milliseconds max_linger{1000};       // how long a closing connection drains input

void check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

uv_handle_t* as_handle(auto* h) noexcept { return reinterpret_cast<uv_handle_t*>(h); }
uv_stream_t* as_stream(uv_tcp_t* h) noexcept { return reinterpret_cast<uv_stream_t*>(h); }

// Closes a heap handle the owner holds; its close callback frees it.
template <class H>
void close_owned(H*& h) noexcept {
  if (!h) return;
  uv_close(as_handle(std::exchange(h, nullptr)), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

// The test hook --query-delay-ms: a wait the job's stop token cuts short.
void delay_unless_stopped(const std::stop_token& stop, std::chrono::milliseconds delay) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, delay, [] { return false; });
}

// The blocking work of GET /query: on a pool thread, or on the loop thread with --direct.
query_result run_query(const std::stop_token& stop, db_pool& db, std::int64_t id, std::chrono::milliseconds delay) {
  if (delay.count() > 0) delay_unless_stopped(stop, delay);
  if (stop.stop_requested()) throw uvrt::cancelled_error();  // nobody waits for the answer any more
  return db.query(id % 9000);
}

std::string query_json(std::int64_t id, const query_result& r) {
  return "{\"id\":" + std::to_string(id) + ",\"n\":" + std::to_string(r.n) + ",\"sum\":" + std::to_string(r.sum) + "}";
}

}  // namespace

class connection : public std::enable_shared_from_this<connection> {
 public:
  explicit connection(server& srv)
      : srv_(srv), parser_(http_limits{srv.cfg_.max_header_bytes, srv.cfg_.max_body_bytes}) {}

  // Accepts the pending connection of `listener` and waits for its first request.
  void start(uv_stream_t* listener) {
    check(uv_tcp_init(srv_.loop_, &tcp_), "uv_tcp_init");
    tcp_.data = this;
    ++handles_open_;
    check(uv_timer_init(srv_.loop_, &timer_), "uv_timer_init");
    timer_.data = this;
    ++handles_open_;
    check(uv_accept(listener, as_stream(&tcp_)), "uv_accept");
    check(uv_tcp_nodelay(&tcp_, 1), "uv_tcp_nodelay");
    start_reading();
    check(uv_timer_start(&timer_, &on_timer, static_cast<std::uint64_t>(srv_.cfg_.header_timeout.count()), 0),
          "uv_timer_start");
  }

  // The server drains: an idle connection (or one part-way through receiving a request) closes
  // now; one answering a request finishes it first.
  void drain() noexcept {
    if (!busy_ && !lingering_) close();
  }

  // Closes now. A query in flight is cancelled and counted as dropped; its task finds the
  // connection closed.
  void close() noexcept {
    if (closing_) return;
    closing_ = true;
    if (query_in_flight_) {
      ++srv_.counters_.dropped;
      try {
        query_.cancel(uvrt::cancel_mode::wait);
      } catch (...) {
        // Not reachable on the loop thread with a valid future; the task finds closing_ anyway.
      }
    }
    if (handles_open_ == 0) {  // start() failed before any handle was open
      srv_.forget(this);
      return;
    }
    for (uv_handle_t* h : {as_handle(&tcp_), as_handle(&timer_)})
      if (h->loop && !uv_is_closing(h)) uv_close(h, &on_closed);
  }

 private:
  // --- libuv callbacks: each finds its connection and catches everything ---

  static void on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
    auto* c = static_cast<connection*>(h->data);
    *buf = uv_buf_init(c->srv_.read_buf_, sizeof c->srv_.read_buf_);
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* c = static_cast<connection*>(s->data);
    try {
      c->read(nread, buf);
    } catch (...) {
      c->close();
    }
  }

  static void on_written(uv_write_t* req, int status) noexcept {
    auto* c = static_cast<connection*>(req->data);
    try {
      c->written(status);
    } catch (...) {
      c->close();
    }
  }

  static void on_shutdown(uv_shutdown_t* req, int status) noexcept {
    if (status < 0) static_cast<connection*>(req->data)->close();
  }

  // The header timeout while waiting for a request, the linger bound while closing.
  static void on_timer(uv_timer_t* t) noexcept { static_cast<connection*>(t->data)->close(); }

  static void on_closed(uv_handle_t* h) noexcept {
    auto* c = static_cast<connection*>(h->data);
    if (--c->handles_open_ == 0) c->srv_.forget(c);  // may free c: nothing after this
  }

  // --- reading and parsing ---

  void start_reading() {
    if (reading_) return;
    check(uv_read_start(as_stream(&tcp_), &on_alloc, &on_read), "uv_read_start");
    reading_ = true;
  }

  void stop_reading() noexcept {
    if (reading_) uv_read_stop(as_stream(&tcp_));
    reading_ = false;
  }

  void read(ssize_t nread, const uv_buf_t* buf) {
    if (closing_ || nread == 0) return;
    if (nread < 0) {
      // The client closed its side or the connection failed. A response being written (no query
      // pending) still goes out to a client that only half-closed; anything else ends here.
      stop_reading();
      if (nread == UV_EOF && writing_ && !lingering_) close_after_write_ = true;
      else close();
      return;
    }
    if (lingering_) return;  // input after the last response is dropped
    inbuf_.append(buf->base, static_cast<std::size_t>(nread));
    pump();
  }

  // Parses buffered input until a request is complete (then answers it), an error, or the end.
  void pump() {
    while (!busy_ && !closing_ && parsed_ < inbuf_.size()) {
      request_parser::result r = parser_.feed(inbuf_.data() + parsed_, inbuf_.size() - parsed_);
      parsed_ += r.consumed;
      switch (r.ev) {
        case request_parser::event::need_more: break;
        case request_parser::event::head: ++srv_.counters_.requests; break;
        case request_parser::event::request: answer(); break;
        case request_parser::event::error: answer_error(parser_.error_status()); break;
      }
    }
    inbuf_.erase(0, parsed_);
    parsed_ = 0;
    if (busy_ && inbuf_.size() > max_buffered) stop_reading();  // resumed when the answer is written
  }

  // --- answering ---

  void answer() {
    busy_ = true;
    uv_timer_stop(&timer_);
    keep_alive_ = parser_.current().keep_alive;
    route r = route_request(parser_.current());
    parser_.next();
    switch (r.what) {
      case route::kind::health: respond(200, R"({"status":"ok"})"); break;
      case route::kind::stats:
        respond(200, stats_json(srv_.rt_.stats(), srv_.limiter_, srv_.counters()));
        break;
      case route::kind::error: respond(r.status, error_json(r.error)); break;
      case route::kind::query:
        if (srv_.cfg_.direct) answer_direct(r.id);
        else start_query(r.id);
        break;
    }
  }

  void answer_error(int status) {
    busy_ = true;
    uv_timer_stop(&timer_);
    close_after_write_ = true;
    const char* message = status == 431 ? "request head too large" : status == 413 ? "body too large" : "malformed request";
    respond(status, error_json(message));
  }

  // --direct: the anti-pattern, the same work on the loop thread, which serves nobody else
  // meanwhile. There is no stop token to honour and no timeout that could interrupt it.
  void answer_direct(std::int64_t id) {
    try {
      finish_query(200, id, run_query(std::stop_token{}, srv_.db_, id, srv_.cfg_.query_delay));
    } catch (...) {
      finish_query(500, id, {});
    }
  }

  void start_query(std::int64_t id) {
    query_in_flight_ = true;
    try {
      query_ = srv_.rt_.spawn(answer_query(shared_from_this(), id));
    } catch (...) {
      query_in_flight_ = false;
      throw;
    }
  }

  // Runs the query on the pool through the limiter, then answers on the loop thread. `self`
  // keeps the connection's memory alive while the query is in flight.
  static uvrt::task<void> answer_query(std::shared_ptr<connection> self, std::int64_t id) {
    server& srv = self->srv_;
    int status = 500;
    query_result result;
    try {
      uvrt::job_options opts{.limiter = &srv.limiter_, .timeout = srv.cfg_.query_timeout};
      result = co_await srv.rt_.to_thread(opts, [&db = srv.db_, id, delay = srv.cfg_.query_delay](std::stop_token stop) {
        return run_query(stop, db, id, delay);
      });
      status = 200;
    } catch (const uvrt::timeout_error&) {
      status = 504;
    } catch (const uvrt::queue_full_error&) {
      status = 503;
    } catch (...) {
      status = 500;  // a database error, or cancelled (the connection closed: nobody is answered)
    }
    self->query_in_flight_ = false;
    if (!self->closing_) self->finish_query(status, id, result);
  }

  void finish_query(int status, std::int64_t id, const query_result& r) noexcept {
    try {
      switch (status) {
        case 200: respond(200, query_json(id, r)); break;
        case 503: respond(503, error_json("too many queries waiting")); break;
        case 504:
          respond(504, error_json("query timed out"));
          ++srv_.counters_.timeouts;
          break;
        default: respond(500, error_json("query failed")); break;
      }
    } catch (...) {
      close();
    }
  }

  void respond(int status, std::string_view body) {
    bool keep = keep_alive_ && !close_after_write_ && !srv_.draining_;
    close_after_write_ = !keep;
    out_ = format_response(status, body, keep);
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    write_req_.data = this;
    check(uv_write(&write_req_, as_stream(&tcp_), &b, 1, &on_written), "uv_write");
    writing_ = true;
  }

  void written(int status) {
    writing_ = false;
    if (status < 0) {  // the client is gone, or the connection closed under the write
      close();
      return;
    }
    ++srv_.counters_.responses;
    // The write can finish after close() (libuv reports it with status 0 when it was done before
    // the close): the response went out, and the connection must not start reading or a timer.
    if (closing_) return;
    busy_ = false;
    if (close_after_write_ || srv_.draining_) {
      linger();
      return;
    }
    check(uv_timer_start(&timer_, &on_timer, static_cast<std::uint64_t>(srv_.cfg_.header_timeout.count()), 0),
          "uv_timer_start");
    start_reading();
    pump();
  }

  // After the last response: FIN to the client, drop its input until it closes (see the top).
  void linger() {
    if (closing_) return;
    lingering_ = true;
    inbuf_.clear();
    shutdown_req_.data = this;
    check(uv_shutdown(&shutdown_req_, as_stream(&tcp_), &on_shutdown), "uv_shutdown");
    auto bound = std::min(max_linger, srv_.cfg_.header_timeout);
    check(uv_timer_start(&timer_, &on_timer, static_cast<std::uint64_t>(bound.count()), 0), "uv_timer_start");
    start_reading();
  }

  server& srv_;
  uv_tcp_t tcp_{};  // value-initialised: a null `loop` marks a handle not yet opened
  uv_timer_t timer_{};
  uv_write_t write_req_{};
  uv_shutdown_t shutdown_req_{};
  int handles_open_ = 0;
  request_parser parser_;
  std::string inbuf_;        // received, not yet parsed
  std::size_t parsed_ = 0;   // of inbuf_, during pump()
  std::string out_;          // the response being written
  uvrt::future<void> query_;  // the task answering the query, while query_in_flight_
  bool reading_ = false;
  bool busy_ = false;               // a complete request is being answered
  bool keep_alive_ = false;         // of that request
  bool query_in_flight_ = false;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool lingering_ = false;
  bool closing_ = false;
};

server::server(uv_loop_t* loop, uvrt::runtime& rt, db_pool& db, uvrt::limiter& limiter, const config& cfg)
    : loop_(loop), rt_(rt), db_(db), limiter_(limiter), cfg_(cfg) {}

server::~server() {
  close_owned(listener_);
  close_owned(drain_timer_);
}

int server::listen() {
  auto* l = new uv_tcp_t{};
  if (int rc = uv_tcp_init(loop_, l); rc < 0) {
    delete l;
    check(rc, "uv_tcp_init (listener)");
  }
  listener_ = l;
  listener_->data = this;
  sockaddr_in addr{};
  check(uv_ip4_addr("127.0.0.1", cfg_.port, &addr), "uv_ip4_addr");
  check(uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0), "binding 127.0.0.1");
  check(uv_listen(as_stream(listener_), 1024, &on_connection), "uv_listen");
  int len = sizeof addr;
  check(uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), "uv_tcp_getsockname");
  return ntohs(addr.sin_port);
}

void server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<server*>(listener->data);
  if (status < 0) return;  // e.g. out of descriptors: the client waits in the backlog
  connection* raw = nullptr;
  try {
    auto c = std::make_shared<connection>(*self);
    raw = c.get();
    self->open_.emplace(raw, std::move(c));
    raw->start(listener);
  } catch (...) {
    if (raw) raw->close();
  }
}

void server::drain(std::function<void()> on_stopped) {
  if (draining_) return;
  draining_ = true;
  on_stopped_ = std::move(on_stopped);
  close_owned(listener_);
  auto* t = new uv_timer_t{};
  if (int rc = uv_timer_init(loop_, t); rc < 0) {
    delete t;
    close_all();  // no bound on the drain without a timer: stop now
    return;
  }
  drain_timer_ = t;
  drain_timer_->data = this;
  if (uv_timer_start(drain_timer_, &on_drain_timeout, static_cast<std::uint64_t>(cfg_.drain_timeout.count()), 0) < 0) {
    close_all();
    return;
  }
  for_each_connection(&connection::drain);
  if (open_.empty()) stopped();
}

void server::on_drain_timeout(uv_timer_t* timer) noexcept { static_cast<server*>(timer->data)->close_all(); }

void server::close_all() noexcept {
  for_each_connection(&connection::close);
  if (open_.empty()) stopped();
}

void server::for_each_connection(void (connection::*action)() noexcept) noexcept {
  // The iterator moves on before the action, which may take its own connection out of open_
  // (never another one); the copied pointer keeps that connection alive meanwhile.
  for (auto it = open_.begin(); it != open_.end();) {
    std::shared_ptr<connection> c = (it++)->second;
    (c.get()->*action)();
  }
}

void server::forget(connection* c) noexcept {
  open_.erase(c);
  if (draining_ && open_.empty()) stopped();
}

void server::stopped() noexcept {
  close_owned(drain_timer_);
  if (auto f = std::exchange(on_stopped_, nullptr)) {
    try {
      f();
    } catch (...) {
      // main's callback only closes handles; nothing to undo.
    }
  }
}

service_counters server::counters() const noexcept {
  service_counters c = counters_;
  c.connections = open_.size();
  return c;
}

}  // namespace service
