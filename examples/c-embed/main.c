/* c-embed: uvrt inside a C program that owns its libuv loop.
 *
 * The program initialises its own uv_loop_t, runs a repeating timer and a TCP echo server on it,
 * embeds a uvrt runtime in that loop (uvrt_runtime_create_on_loop) and hands one genuinely
 * blocking call, a read() on a pipe, to libuv's thread pool with uvrt_job_submit.
 *
 * The proof that the loop kept serving everyone while that call blocked is logical, not a
 * stopwatch: only the loop writes to the pipe, and only after the job said it was about to
 * block, the timer then ticked TICKS_NEEDED times, and a client on this same loop connected to
 * the echo server and got its message back. Had the read run on the loop thread, none of that
 * could happen and the program would hang (the test's timeout catches that).
 *
 * Shutdown shows an order that suits any embedding: destroy the runtime first, outside every
 * callback of the loop (it settles unfinished jobs, whose done callbacks may still use the
 * program's handles), then close the program's handles, run the loop until they are closed,
 * and require uv_loop_close to return 0. */
#include <uvrt.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TICK_MS = 10, TICKS_NEEDED = 5 };
static const char PING[] = "ping"; /* what the client sends and expects back */
static const char GO[] = "go";     /* what the loop writes to the pipe to release the job */

struct app {
  uv_loop_t loop;
  uvrt_runtime_t *rt;
  int pipe_fds[2]; /* [0]: read by the job; [1]: written by the loop, and only by it */

  uv_async_t job_blocked; /* sent by the job just before it blocks */
  uv_timer_t timer;
  uv_tcp_t server;
  uv_tcp_t conn; /* the server's end of its one connection */
  int conn_in_use;
  uv_tcp_t client; /* the client, on the same loop */
  uv_connect_t connect_req;
  uv_write_t ping_req;
  struct sockaddr_in server_addr;
  char read_buf[256]; /* every read is consumed inside its callback, so one buffer serves all */

  /* What the loop did while the job was blocked (loop thread only). */
  int job_is_blocked, ticks, echo_done, job_released, job_finished;
  uint64_t last_tick_ns, max_gap_ns;
  char echoed[sizeof PING];
  size_t echoed_len;

  char reply[16]; /* written by the job alone; read once its done callback runs */
};

/* On failure: say what failed and quit at once. _Exit, not exit: exit() runs libuv's destructor,
 * which joins the pool's threads, and the job may be blocked in read() for good. */
static void die(const char *what, const char *why) {
  fflush(stdout);
  fprintf(stderr, "c-embed: %s: %s\n", what, why);
  _Exit(EXIT_FAILURE);
}

/* libuv and uvrt return 0 or a negative code; uvrt_strerror names both kinds. */
static void check(int rc, const char *call) {
  if (rc < 0) die(call, uvrt_strerror(rc));
}
#define CHECK(call) check((call), #call)

/* Every callback finds the program's state through the loop: the loop is ours, so is its data. */
#define APP(handle) ((struct app *)((uv_handle_t *)(handle))->loop->data)

/* ---- The blocking call, on a pool thread -------------------------------------------------- */

static int blocking_read(uvrt_job_t *job, void *arg, void **result) {
  struct app *app = arg;
  /* Tell the loop we are about to block; uv_async_send is the libuv call any thread may make. */
  int rc = uv_async_send(&app->job_blocked);
  if (rc < 0) return uvrt_job_fail(job, rc, "uv_async_send failed");
  ssize_t n;
  do n = read(app->pipe_fds[0], app->reply, sizeof app->reply - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) return uvrt_job_fail(job, -errno, "read() from the pipe failed");
  app->reply[n] = '\0';
  *result = app->reply;
  return 0;
}

/* ---- The loop side ------------------------------------------------------------------------ */

/* The one place that unblocks the job, once both things happened while it was blocked. */
static void release_job_if_ready(struct app *app) {
  if (app->job_released || app->ticks < TICKS_NEEDED || !app->echo_done) return;
  app->job_released = 1;
  printf("c-embed: %d ticks and the echo done: the loop writes \"%s\" to the pipe\n", app->ticks, GO);
  /* Two bytes into an empty pipe: write() returns at once, so the loop does not block here. */
  ssize_t n;
  do n = write(app->pipe_fds[1], GO, sizeof GO - 1);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t)(sizeof GO - 1)) die("write() to the pipe", n < 0 ? strerror(errno) : "short write");
}

static void on_tick(uv_timer_t *timer) {
  struct app *app = APP(timer);
  if (!app->job_is_blocked || app->job_released) return; /* count only ticks during the block */
  uint64_t now = uv_hrtime();
  if (app->ticks > 0 && now - app->last_tick_ns > app->max_gap_ns) app->max_gap_ns = now - app->last_tick_ns;
  app->last_tick_ns = now;
  app->ticks++;
  release_job_if_ready(app);
}

static void on_alloc(uv_handle_t *handle, size_t suggested_size, uv_buf_t *buf) {
  (void)suggested_size;
  *buf = uv_buf_init(APP(handle)->read_buf, sizeof APP(handle)->read_buf);
}

/* The echo server. */

struct echo_write {
  uv_write_t req; /* first, so the request's address is the block's */
  char data[];
};

static void on_echo_written(uv_write_t *req, int status) {
  check(status, "echo server: write");
  free((struct echo_write *)req);
}

static void on_server_read(uv_stream_t *conn, ssize_t nread, const uv_buf_t *buf) {
  if (nread == UV_EOF) { /* the client is done: close our end */
    uv_close((uv_handle_t *)conn, NULL);
    return;
  }
  check((int)nread, "echo server: read");
  if (nread == 0) return; /* nothing to read this time */
  /* Copy the bytes into the write request: read_buf is reused by the next read. */
  struct echo_write *w = malloc(sizeof *w + (size_t)nread);
  if (!w) die("echo server", "out of memory");
  memcpy(w->data, buf->base, (size_t)nread);
  uv_buf_t out = uv_buf_init(w->data, (unsigned)nread);
  CHECK(uv_write(&w->req, conn, &out, 1, on_echo_written));
}

static void on_connection(uv_stream_t *server, int status) {
  struct app *app = APP(server);
  check(status, "echo server: accepting a connection");
  if (app->conn_in_use) return; /* one connection is all this example serves; others wait */
  app->conn_in_use = 1;
  CHECK(uv_tcp_init(&app->loop, &app->conn));
  CHECK(uv_accept(server, (uv_stream_t *)&app->conn));
  CHECK(uv_read_start((uv_stream_t *)&app->conn, on_alloc, on_server_read));
}

/* The client: connects once the job is blocked, sends PING, expects it back. */

static void on_client_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf) {
  struct app *app = APP(client);
  if (nread == UV_EOF) die("echo client", "the server closed the connection before echoing");
  check((int)nread, "echo client: read");
  if ((size_t)nread > sizeof PING - 1 - app->echoed_len) die("echo client", "got more than it sent");
  memcpy(app->echoed + app->echoed_len, buf->base, (size_t)nread);
  app->echoed_len += (size_t)nread;
  if (app->echoed_len < sizeof PING - 1) return; /* TCP may deliver the echo in pieces */
  if (memcmp(app->echoed, PING, sizeof PING - 1) != 0)
    die("echo client", "the echo differs from what was sent");
  printf("c-embed: echo round trip on the same loop: sent \"%s\", got \"%s\" back\n", PING, app->echoed);
  app->echo_done = 1;
  uv_close((uv_handle_t *)client, NULL); /* the server sees EOF and closes its end */
  release_job_if_ready(app);
}

static void on_ping_written(uv_write_t *req, int status) {
  (void)req;
  check(status, "echo client: write");
}

static void on_client_connected(uv_connect_t *req, int status) {
  struct app *app = APP(req->handle);
  check(status, "echo client: connecting to the server");
  uv_buf_t buf = uv_buf_init((char *)PING, sizeof PING - 1); /* libuv only reads from it */
  CHECK(uv_write(&app->ping_req, req->handle, &buf, 1, on_ping_written));
  CHECK(uv_read_start(req->handle, on_alloc, on_client_read));
}

static void on_job_blocked(uv_async_t *async) {
  struct app *app = APP(async);
  printf("c-embed: the job is blocked in read() on a pool thread; the loop carries on\n");
  app->job_is_blocked = 1;
  uv_close((uv_handle_t *)async, NULL); /* a one-shot signal: its work is done */
  CHECK(uv_tcp_init(&app->loop, &app->client));
  CHECK(uv_tcp_connect(&app->connect_req, &app->client, (const struct sockaddr *)&app->server_addr,
                       on_client_connected));
}

/* Runs on the loop thread once the job has returned. */
static void on_job_done(uvrt_job_t *job, int status, void *result, void *arg) {
  struct app *app = arg;
  if (status != 0) {
    const char *message = uvrt_job_message(job);
    die("the blocking job failed", message ? message : uvrt_strerror(status));
  }
  app->job_finished = 1;
  printf("c-embed: the job returned \"%s\"; while it was blocked the timer ticked %d times, "
         "largest gap between ticks %.1f ms\n",
         (const char *)result, app->ticks, (double)app->max_gap_ns / 1e6);
  uv_stop(&app->loop); /* the demonstration is over; main tears down */
}

/* ---- Setup and teardown ------------------------------------------------------------------- */

static void close_if_open(void *handle) {
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

int main(void) {
  struct app app;
  memset(&app, 0, sizeof app);
  CHECK(uv_loop_init(&app.loop));
  app.loop.data = &app;

  /* uvrt joins our loop with one unreferenced handle: it never keeps uv_run going by itself. */
  CHECK(uvrt_runtime_create_on_loop(&app.rt, &app.loop, NULL));

  if (pipe(app.pipe_fds) != 0) die("pipe()", strerror(errno));
  CHECK(uv_async_init(&app.loop, &app.job_blocked, on_job_blocked));
  CHECK(uv_timer_init(&app.loop, &app.timer));
  CHECK(uv_timer_start(&app.timer, on_tick, TICK_MS, TICK_MS));

  /* The echo server, on a port the kernel picks; read it back for the client. */
  struct sockaddr_in any_port;
  CHECK(uv_ip4_addr("127.0.0.1", 0, &any_port));
  CHECK(uv_tcp_init(&app.loop, &app.server));
  CHECK(uv_tcp_bind(&app.server, (const struct sockaddr *)&any_port, 0));
  CHECK(uv_listen((uv_stream_t *)&app.server, 8, on_connection));
  int len = sizeof app.server_addr;
  CHECK(uv_tcp_getsockname(&app.server, (struct sockaddr *)&app.server_addr, &len));
  printf("c-embed: echo server listening on 127.0.0.1:%d\n", ntohs(app.server_addr.sin_port));

  /* The blocking call goes to libuv's pool; on_job_done follows here, on the loop thread. */
  CHECK(uvrt_job_submit(app.rt, NULL, blocking_read, on_job_done, &app));

  uv_run(&app.loop, UV_RUN_DEFAULT); /* until on_job_done stops it */
  if (!app.job_finished) die("uv_run", "returned before the job finished");

  /* Destroy the runtime first, outside every callback (it turns the loop itself): it settles any
   * unfinished job, whose done callback may still use our handles. Then close ours; the
   * connection and the client exist, since the job cannot finish without the echo. */
  CHECK(uvrt_runtime_destroy(app.rt));
  close_if_open(&app.timer);
  close_if_open(&app.server);
  close_if_open(&app.conn);
  close_if_open(&app.client);
  uv_run(&app.loop, UV_RUN_DEFAULT); /* until every close callback has run */
  if (close(app.pipe_fds[0]) != 0 || close(app.pipe_fds[1]) != 0) die("close() of the pipe", strerror(errno));
  CHECK(uv_loop_close(&app.loop)); /* UV_EBUSY here would mean a handle was left open */
  printf("c-embed: clean shutdown, uv_loop_close returned 0\n");
  return EXIT_SUCCESS;
}
