// cpp-coroutines: a uvrt::task awaits a blocking call while the loop goes on serving a timer and
// a TCP echo server.
//
// The scenario of examples/c-embed, in C++20: the task `co_await`s uvrt::to_thread for a genuinely
// blocking read() on a pipe; while it waits, the same loop ticks a timer and carries an echo round
// trip between a server and a client. Only the loop writes to the pipe, and only after the job
// said it was about to block, the timer then ticked ticks_needed times and the echo came back.
// So the task can only finish if the loop kept going while the read blocked; otherwise the
// program hangs (the test's timeout catches that). No timing is asserted.
//
// The runtime owns the loop here (c-embed shows a loop the program owns): one object to create,
// block_on drives the loop, and the runtime's destructor closes the loop. The handles the program
// opens on that loop are still the program's to close: loop_side's destructor closes them and
// turns the loop until libuv is done with them, before the runtime goes.
//
// Errors are exceptions, reported by main. libuv invokes its callbacks from C, which an exception
// must not cross, so a callback's exception is kept, the blocked job is woken up, and the task
// rethrows it.
//
// Then a short tour of composing work (`compose` below): several blocking calls at once with
// uvrt::when_all (asyncio's gather), a timeout with a grace period around a job that honours its
// stop token, and background tasks started with uvrt::spawn and cancelled, one catching the
// cancellation and one not. It checks what it prints and fails (exit 1) if anything differs.
#include <uvrt/uvrt.hpp>

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace {

constexpr int tick_ms = 10;
constexpr int ticks_needed = 5;
constexpr std::string_view ping = "ping";  // what the client sends and expects back
constexpr std::string_view go = "go";      // what the loop writes to the pipe to release the job

// libuv returns 0 or a negative code: turn the latter into an exception that names the call.
void check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string(what) + ": " + uv_strerror(rc));
}

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

uv_handle_t* as_handle(auto* h) { return reinterpret_cast<uv_handle_t*>(h); }
uv_stream_t* as_stream(uv_tcp_t* h) { return reinterpret_cast<uv_stream_t*>(h); }

// The genuinely blocking call: waits until something is written to the pipe (or it is closed).
std::string read_pipe(int fd) {
  char buf[16];
  ssize_t n;
  do n = ::read(fd, buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("read() from the pipe");
  return std::string(buf, static_cast<std::size_t>(n));
}

// Everything the loop serves while the job is blocked: a timer, an echo server and its client,
// and the write end of the pipe the job reads.
class loop_side {
 public:
  explicit loop_side(uv_loop_t* loop) : loop_(loop) {
    try {
      start();
    } catch (...) {
      close();
      throw;
    }
  }
  ~loop_side() { close(); }
  loop_side(const loop_side&) = delete;
  loop_side& operator=(const loop_side&) = delete;

  int read_fd() const noexcept { return pipe_[0]; }
  int ticks() const noexcept { return ticks_; }
  double max_gap_ms() const noexcept { return static_cast<double>(max_gap_ns_) / 1e6; }
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }

  // On the loop thread, when the job is about to block: from now on ticks count, and the client
  // connects to the echo server.
  void job_blocked() {
    std::printf("cpp-coroutines: the job is blocked in read() on a pool thread; the loop carries on\n");
    job_blocked_ = true;
    check(uv_tcp_init(loop_, &client_), "uv_tcp_init (client)");
    client_.data = this;
    check(uv_tcp_connect(&connect_, &client_, reinterpret_cast<const sockaddr*>(&server_addr_),
                         callback<&loop_side::on_connected>),
          "uv_tcp_connect");
  }

 private:
  struct echo_write {
    uv_write_t req;
    std::string bytes;
  };

  void start() {
    if (::pipe(pipe_) != 0) throw_errno("pipe()");
    check(uv_timer_init(loop_, &timer_), "uv_timer_init");
    timer_.data = this;
    check(uv_timer_start(&timer_, callback<&loop_side::on_tick>, tick_ms, tick_ms), "uv_timer_start");

    // The echo server, on a port the kernel picks; read it back for the client.
    sockaddr_in any_port{};
    check(uv_ip4_addr("127.0.0.1", 0, &any_port), "uv_ip4_addr");
    check(uv_tcp_init(loop_, &server_), "uv_tcp_init (server)");
    server_.data = this;
    check(uv_tcp_bind(&server_, reinterpret_cast<const sockaddr*>(&any_port), 0), "uv_tcp_bind");
    check(uv_listen(as_stream(&server_), 8, callback<&loop_side::on_connection>), "uv_listen");
    int len = sizeof server_addr_;
    check(uv_tcp_getsockname(&server_, reinterpret_cast<sockaddr*>(&server_addr_), &len),
          "uv_tcp_getsockname");
    std::printf("cpp-coroutines: echo server listening on 127.0.0.1:%d\n", ntohs(server_addr_.sin_port));
  }

  // Closes what is open and turns the loop until libuv has finished with it (the handles' memory
  // is ours, so libuv must be done with it first). A job still blocked is woken by the closed pipe.
  void close() noexcept {
    close_write_end();
    for (uv_handle_t* h : {as_handle(&timer_), as_handle(&server_), as_handle(&conn_), as_handle(&client_)}) {
      if (h->loop && !uv_is_closing(h)) uv_close(h, nullptr);  // h->loop: set once initialised
    }
    uv_run(loop_, UV_RUN_DEFAULT);  // returns once the handles are closed and no job is pending
    if (pipe_[0] >= 0) ::close(pipe_[0]);
    pipe_[0] = -1;
  }

  void close_write_end() noexcept {
    if (pipe_[1] >= 0) ::close(pipe_[1]);
    pipe_[1] = -1;
  }

  // libuv calls back from C, which an exception must not cross: every callback comes through
  // here, finds its loop_side, and keeps an exception for the task to rethrow.
  template <auto member, class H, class... A>
  static void callback(H* h, A... args) noexcept {
    loop_side* self;
    if constexpr (requires { h->handle; })
      self = static_cast<loop_side*>(h->handle->data);  // a request: through its stream
    else
      self = static_cast<loop_side*>(h->data);
    try {
      (self->*member)(h, args...);
    } catch (...) {
      self->fail(std::current_exception());
    }
  }

  // Keeps the first error, and wakes the job (read() sees the pipe closed) so that the task
  // resumes and rethrows it instead of waiting forever.
  void fail(std::exception_ptr e) noexcept {
    if (!error_) error_ = e;
    close_write_end();
  }

  // The one place that unblocks the job, once both things happened while it was blocked.
  void release_job_if_ready() {
    if (released_ || ticks_ < ticks_needed || !echo_done_) return;
    released_ = true;
    std::printf("cpp-coroutines: %d ticks and the echo done: the loop writes \"%s\" to the pipe\n", ticks_,
                go.data());
    // Two bytes into an empty pipe: write() returns at once, so the loop does not block here.
    ssize_t n;
    do n = ::write(pipe_[1], go.data(), go.size());
    while (n < 0 && errno == EINTR);
    if (n < 0) throw_errno("write() to the pipe");
    if (n != static_cast<ssize_t>(go.size())) throw std::runtime_error("write() to the pipe: short write");
  }

  void on_tick(uv_timer_t*) {
    if (!job_blocked_ || released_) return;  // count only the ticks during the block
    std::uint64_t now = uv_hrtime();
    if (ticks_ > 0 && now - last_tick_ns_ > max_gap_ns_) max_gap_ns_ = now - last_tick_ns_;
    last_tick_ns_ = now;
    ++ticks_;
    release_job_if_ready();
  }

  // Every read is consumed inside its callback, so one buffer serves both streams.
  static void alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
    auto* self = static_cast<loop_side*>(h->data);
    *buf = uv_buf_init(self->read_buf_, sizeof self->read_buf_);
  }

  // The echo server.
  void on_connection(uv_stream_t* server, int status) {
    check(status, "accepting a connection");
    if (conn_in_use_) return;  // one connection is all this example serves; others wait
    conn_in_use_ = true;
    check(uv_tcp_init(loop_, &conn_), "uv_tcp_init (connection)");
    conn_.data = this;
    check(uv_accept(server, as_stream(&conn_)), "uv_accept");
    check(uv_read_start(as_stream(&conn_), alloc, callback<&loop_side::on_server_read>),
          "uv_read_start (server)");
  }

  void on_server_read(uv_stream_t* conn, ssize_t nread, const uv_buf_t* buf) {
    if (nread == UV_EOF) {  // the client is done: close our end
      uv_close(as_handle(conn), nullptr);
      return;
    }
    check(static_cast<int>(nread), "echo server: read");
    if (nread == 0) return;  // nothing to read this time
    // Copy the bytes into the write request: read_buf_ is reused by the next read.
    auto w = std::make_unique<echo_write>();
    w->bytes.assign(buf->base, static_cast<std::size_t>(nread));
    w->req.data = w.get();
    uv_buf_t out = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
    check(uv_write(&w->req, conn, &out, 1, callback<&loop_side::on_echo_written>), "echo server: uv_write");
    w.release();  // on_echo_written deletes it
  }

  void on_echo_written(uv_write_t* req, int status) {
    std::unique_ptr<echo_write> done(static_cast<echo_write*>(req->data));
    check(status, "echo server: write");
  }

  // The client: connects once the job is blocked, sends ping, expects it back.
  void on_connected(uv_connect_t* req, int status) {
    check(status, "echo client: connecting to the server");
    uv_buf_t out = uv_buf_init(const_cast<char*>(ping.data()), ping.size());  // libuv only reads it
    check(uv_write(&ping_write_, req->handle, &out, 1, callback<&loop_side::on_ping_written>),
          "echo client: uv_write");
    check(uv_read_start(req->handle, alloc, callback<&loop_side::on_client_read>), "uv_read_start (client)");
  }

  void on_ping_written(uv_write_t*, int status) { check(status, "echo client: write"); }

  void on_client_read(uv_stream_t* client, ssize_t nread, const uv_buf_t* buf) {
    if (nread == UV_EOF)
      throw std::runtime_error("echo client: the server closed the connection before echoing");
    check(static_cast<int>(nread), "echo client: read");
    echoed_.append(buf->base, static_cast<std::size_t>(nread));
    if (echoed_.size() < ping.size()) return;  // TCP may deliver the echo in pieces
    if (echoed_ != ping) throw std::runtime_error("echo client: sent \"ping\", got \"" + echoed_ + "\" back");
    std::printf("cpp-coroutines: echo round trip on the same loop: sent \"%s\", got \"%s\" back\n",
                ping.data(), echoed_.c_str());
    echo_done_ = true;
    uv_close(as_handle(client), nullptr);  // the server sees EOF and closes its end
    release_job_if_ready();
  }

  uv_loop_t* loop_;
  int pipe_[2] = {-1, -1};  // [0]: read by the job; [1]: written by the loop, and only by it
  uv_timer_t timer_{};      // value-initialised: a null `loop` marks a handle not yet opened
  uv_tcp_t server_{};
  uv_tcp_t conn_{};  // the server's end of its one connection
  uv_tcp_t client_{};
  uv_connect_t connect_{};
  uv_write_t ping_write_{};
  sockaddr_in server_addr_{};
  char read_buf_[256];
  bool conn_in_use_ = false, job_blocked_ = false, echo_done_ = false, released_ = false;
  int ticks_ = 0;
  std::uint64_t last_tick_ns_ = 0, max_gap_ns_ = 0;
  std::string echoed_;
  std::exception_ptr error_;
};

// The coroutine. At the co_await it suspends, the loop serves the timer and the echo, and it
// resumes on the loop thread with the job's result (or its exception).
uvrt::task<std::string> wait_for_go(loop_side& side) {
  std::string reply = co_await uvrt::to_thread([&side, fd = side.read_fd()] {
    // On a pool thread. from_thread runs the call on the loop thread and waits for it, so the
    // loop learns that the job is about to block without anyone sharing state across threads.
    uvrt::from_thread([&side] { side.job_blocked(); });
    return read_pipe(fd);
  });
  side.rethrow_if_failed();  // an error the loop side hit while we were suspended
  co_return reply;
}

// --- Composing work: gather, a timeout with a grace period, cancelling a spawned task ---

using namespace std::chrono_literals;
using std::chrono::steady_clock;

long ms_since(steady_clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t).count());
}

// A blocking call standing in for a query: takes `work`, then returns n * n.
int slow_square(int n, std::chrono::milliseconds work) {
  std::this_thread::sleep_for(work);
  return n * n;
}

// What a job tells its caller. Shared: a job the caller gave up on may outlive it.
struct job_trace {
  std::atomic<bool> started{false};
  std::atomic<bool> stopped{false};
};

// A long blocking call that honours its stop token: it checks the token between steps and stops
// early when asked.
int long_report(std::stop_token stop, std::shared_ptr<job_trace> trace) {
  trace->started = true;
  for (int step = 0; step < 500; ++step) {  // 500 steps of 1 ms, unless stopped
    if (stop.stop_requested()) {
      trace->stopped = true;
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return 42;
}

// A background task: a heartbeat every 10 ms until it is cancelled. A cancel of its future reaches
// the sleep it is waiting on, and that co_await throws uvrt::cancelled_error; this task catches it
// and returns how many beats it made, so its future settles with that value.
uvrt::task<int> heartbeat() {
  int beats = 0;
  try {
    for (;;) {
      co_await uvrt::sleep_for(10ms);
      ++beats;
    }
  } catch (const uvrt::cancelled_error&) {
    // Cancelled: clean up and finish normally (the cancellation is one-shot).
  }
  co_return beats;
}

// A background task that does not catch the cancellation: its future settles as cancelled. The
// job it waits on is cancelled with it: a job still queued never runs, a running one is asked to
// stop (this one ignores its token, so the task resumes when it returns).
uvrt::task<int> fetch_then_sleep() {
  int v = co_await uvrt::to_thread(slow_square, 5, std::chrono::milliseconds(5));
  co_await uvrt::sleep_for(10s);  // cancelled long before
  co_return v;
}

uvrt::task<void> compose() {
  // 1. Gather: three calls at once. when_all settles when all have, with their values in order;
  // had one failed, it would cancel the others, wait for them, and rethrow that failure.
  auto t0 = steady_clock::now();
  auto [a, b, c] = co_await uvrt::when_all(uvrt::to_thread(slow_square, 2, 30ms), uvrt::to_thread(slow_square, 3, 30ms),
                                           uvrt::to_thread(slow_square, 4, 30ms));
  std::printf("cpp-coroutines: when_all of three 30 ms calls gave %d, %d, %d in %ld ms\n", a, b, c, ms_since(t0));
  if (a != 4 || b != 9 || c != 16) throw std::runtime_error("when_all: wrong values");
  // The same over a vector of futures, here with a sleep among them (void results become
  // std::monostate in tuples and vectors).
  std::vector<uvrt::future<int>> batch;
  for (int i = 1; i <= 4; ++i) batch.push_back(uvrt::to_thread(slow_square, i, 5ms));
  auto [squares, slept] = co_await uvrt::when_all(uvrt::when_all(std::move(batch)), uvrt::sleep_for(20ms));
  (void)slept;
  std::printf("cpp-coroutines: when_all of a vector gave %zu values, the last %d\n", squares.size(), squares.back());
  if (squares.size() != 4 || squares.back() != 16) throw std::runtime_error("when_all(vector): wrong values");

  // 2. A timeout with a grace period: the report would take 500 ms. At 50 ms the timeout cancels
  // it (a queued job never runs; this one runs, so its stop token is requested), then waits up to
  // 100 ms more for it to return; it fails with uvrt::timeout_error either way, and no result
  // arrives after that. job_options{.timeout = 50ms, .grace = 100ms} on to_thread does the same.
  auto trace = std::make_shared<job_trace>();
  t0 = steady_clock::now();
  try {
    int v = co_await uvrt::timeout(uvrt::to_thread(long_report, trace), 50ms, 100ms);
    throw std::runtime_error("timeout: the 500 ms report returned " + std::to_string(v) + " within 50 ms");
  } catch (const uvrt::timeout_error&) {
    // With a grace period, the timeout fails once the job has returned (here: it saw its stop
    // token), or at 50 + 100 ms if it has not.
    if (trace->stopped)
      std::printf("cpp-coroutines: timeout_error after %ld ms; the job saw its stop token and returned within the grace period\n",
                  ms_since(t0));
    else if (!trace->started)
      std::printf("cpp-coroutines: timeout_error after %ld ms; the job was still queued, and never ran\n", ms_since(t0));
    else
      throw std::runtime_error("timeout: the job ran but did not return within the grace period");
  }

  // 3. Tasks in the background (asyncio's create_task): spawn starts them now; nothing awaits
  // them until we choose to.
  uvrt::future<int> beating = uvrt::spawn(heartbeat());
  uvrt::future<int> fetching = uvrt::spawn(fetch_then_sleep());
  co_await uvrt::sleep_for(35ms);
  // cancel() delivers the cancellation to what each task awaits (a sleep, here).
  std::printf("cpp-coroutines: cancelling the background tasks: %s, %s\n", uvrt::to_string(beating.cancel()),
              uvrt::to_string(fetching.cancel()));
  int beats = co_await std::move(beating);  // it caught cancelled_error and returned a value
  std::printf("cpp-coroutines: the heartbeat task caught the cancellation and returned %d beats\n", beats);
  if (beats < 1) throw std::runtime_error("heartbeat: no beat in 35 ms");
  try {
    (void)co_await std::move(fetching);
    throw std::runtime_error("the cancelled task that does not catch returned a value");
  } catch (const uvrt::cancelled_error&) {
    std::printf("cpp-coroutines: the other task did not catch it: its future is cancelled\n");
  }
}

}  // namespace

int main() {
  try {
    uvrt::runtime rt;           // owns its loop; block_on turns it
    loop_side side(rt.loop());  // declared after rt, so destroyed first: ours close before the loop
    std::string reply = rt.block_on(wait_for_go(side));
    std::printf(
        "cpp-coroutines: the task got \"%s\"; while the job was blocked the timer ticked %d times, "
        "largest gap between ticks %.1f ms\n",
        reply.c_str(), side.ticks(), side.max_gap_ms());
    rt.block_on(compose());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cpp-coroutines: %s\n", e.what());
    return 1;
  }
  std::printf("cpp-coroutines: clean shutdown\n");
  return 0;
}
