// server: the TCP side of the service on the application's libuv loop: the listener, the
// connections, their timers and writes, the drain on shutdown, and the endpoints' answers.
//
// Everything here runs on the loop thread, so no state is shared with the pool except what a
// query job is given by value (the db_pool is thread-safe). Handles are heap objects freed by
// their close callbacks, so a server or connection can always be let go without waiting for
// libuv, and libuv never touches freed memory.
//
// A connection is owned by the server while its handles are open, and by the task answering
// its query while that query is in flight; whichever lets go last frees it. A query therefore
// may outlive its connection: the connection, when it closes, cancels the query (a job still
// waiting never runs, a running one is asked to stop) and counts it as dropped, and the task,
// when it resumes, sees the connection closed and answers nobody.
//
// The server is destroyed only after the loop ran to completion (uv_run returned): by then every
// connection has closed, which drain() guarantees.
#pragma once

#include <uv.h>
#include <uvrt/uvrt.hpp>

#include <functional>
#include <memory>
#include <unordered_map>

#include "config.hpp"
#include "db.hpp"
#include "stats.hpp"

namespace service {

class connection;

class server {
 public:
  server(uv_loop_t* loop, uvrt::runtime& rt, db_pool& db, uvrt::limiter& limiter, const config& cfg);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Listens on 127.0.0.1:cfg.port and returns the port. Throws std::runtime_error.
  int listen();

  // Stops accepting and closes idle connections; the ones answering a request finish it (the
  // response says Connection: close) within cfg.drain_timeout, then the rest are closed.
  // `on_stopped` runs once no connection is left. A second call does nothing.
  void drain(std::function<void()> on_stopped);

 private:
  friend class connection;

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  static void on_drain_timeout(uv_timer_t* timer) noexcept;
  void forget(connection* c) noexcept;
  void for_each_connection(void (connection::*action)() noexcept) noexcept;
  void close_all() noexcept;
  void stopped() noexcept;
  service_counters counters() const noexcept;

  uv_loop_t* loop_;
  uvrt::runtime& rt_;
  db_pool& db_;
  uvrt::limiter& limiter_;
  const config& cfg_;
  uv_tcp_t* listener_ = nullptr;
  uv_timer_t* drain_timer_ = nullptr;
  std::unordered_map<connection*, std::shared_ptr<connection>> open_;
  service_counters counters_;
  bool draining_ = false;
  std::function<void()> on_stopped_;
  char read_buf_[64 * 1024];  // every read is copied out inside its callback, so one buffer serves all
};

}  // namespace service
