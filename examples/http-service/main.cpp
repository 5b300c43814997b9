// uvrt-http-service: an HTTP/1.1 service whose /query endpoint makes a blocking SQLite query,
// with uvrt embedded in the application's own libuv loop (issue 14; the contract is in the
// README's section "An HTTP service with a blocking database").
//
// main owns the order of things. Start: flags, the database (created if missing), then the
// loop, the connection pool and the limiter in front of it, the runtime, the server, and the
// signals; "listening on ..." is printed only once connections can be accepted. Stop (SIGINT or
// SIGTERM): the server drains, then closes the signal handles, so the loop runs out of work
// once the last query job has come back; the runtime is shut down and destroyed outside every
// callback, the rest is destroyed in reverse order (the limiter and the pool outlive every job),
// and uv_loop_close must return 0 for the exit status to be 0. "stopped" is the last line.
#include <uv.h>
#include <uvrt/uvrt.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "config.hpp"
#include "db.hpp"
#include "server.hpp"

namespace {

// SIGINT and SIGTERM, as libuv signal handles: the first one drains the server; once it has
// stopped the handles close, and a later signal finds nothing to do.
class stop_signals {
 public:
  stop_signals(uv_loop_t* loop, service::server& srv) : srv_(srv) {
    for (int i = 0; i < 2; ++i) {
      auto* h = new uv_signal_t{};
      if (int rc = uv_signal_init(loop, h); rc < 0) {
        delete h;
        close();
        throw std::runtime_error(std::string("uv_signal_init: ") + uv_strerror(rc));
      }
      h->data = this;
      handles_[i] = h;
      if (int rc = uv_signal_start(h, &on_signal, i == 0 ? SIGINT : SIGTERM); rc < 0) {
        close();
        throw std::runtime_error(std::string("uv_signal_start: ") + uv_strerror(rc));
      }
    }
  }
  ~stop_signals() { close(); }
  stop_signals(const stop_signals&) = delete;
  stop_signals& operator=(const stop_signals&) = delete;

 private:
  static void on_signal(uv_signal_t* h, int) noexcept {
    auto* self = static_cast<stop_signals*>(h->data);
    try {
      self->srv_.drain([self] { self->close(); });
    } catch (...) {
      // drain() allocates only to keep the callback; without it, close the handles now so the
      // loop can still end once the server's connections are gone.
      self->close();
    }
  }

  void close() noexcept {
    for (uv_signal_t*& h : handles_) {
      if (!h) continue;
      uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<uv_signal_t*>(x); });
      h = nullptr;
    }
  }

  service::server& srv_;
  uv_signal_t* handles_[2] = {nullptr, nullptr};
};

int serve(const service::config& cfg) {
  uv_loop_t loop;
  if (int rc = uv_loop_init(&loop); rc < 0) {
    std::fprintf(stderr, "uvrt-http-service: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  int status = 0;
  try {
    service::db_pool db(cfg.db, cfg.connections);
    uvrt::limiter limiter(cfg.connections);
    uvrt::runtime rt(&loop, uvrt::options{.threadpool_size = cfg.threads, .max_queued = cfg.max_queued});
    service::server srv(&loop, rt, db, limiter, cfg);
    stop_signals signals(&loop, srv);
    int port = srv.listen();
    std::printf("listening on 127.0.0.1:%d\n", port);
    std::fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);  // until the drain ended and the last job came back
    rt.shutdown(std::chrono::seconds(1));  // nothing is in flight by now; this only makes it certain
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uvrt-http-service: %s\n", e.what());
    status = 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the close callbacks of handles the destructors closed
  if (int rc = uv_loop_close(&loop); rc != 0) {
    std::fprintf(stderr, "uvrt-http-service: uv_loop_close: %s\n", uv_strerror(rc));
    status = 1;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  service::config cfg;
  try {
    cfg = service::parse_flags(argc, argv);
  } catch (const service::flag_error& e) {
    std::fprintf(stderr, "uvrt-http-service: %s\n%s", e.what(), service::usage);
    return 2;
  }
  if (cfg.help) {
    std::fputs(service::usage, stdout);
    return 0;
  }
  // A client that vanishes must fail a write with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    service::create_database_if_missing(cfg.db, cfg.rows);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "uvrt-http-service: %s\n", e.what());
    return 1;
  }
  if (cfg.create_only) return 0;
  int status = serve(cfg);
  std::fputs("stopped\n", stderr);
  return status;
}
