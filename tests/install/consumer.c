/* A C11 program built against an installed uvrt with nothing but `pkg-config uvrt`. It embeds
 * uvrt in a loop of its own: one job returns a value, one fails with a message, and the loop
 * closes cleanly once the runtime is destroyed. */
#include <uvrt.h>

#include <stdio.h>
#include <string.h>

struct request {
  int input;
  int output;
};

struct outcome {
  int status;
  int done_calls;
  int value;
};

static struct outcome square_outcome = {-1, 0, 0};
static struct outcome failing_outcome = {-1, 0, 0};
static char failing_message[64];

static int square(uvrt_job_t* job, void* arg, void** result) { /* on a pool thread */
  struct request* req = arg;
  (void)job;
  req->output = req->input * req->input;
  *result = &req->output;
  return 0;
}

static int failing(uvrt_job_t* job, void* arg, void** result) {
  (void)arg;
  (void)result;
  return uvrt_job_fail(job, UV_EIO, "disk on fire");
}

static void square_done(uvrt_job_t* job, int status, void* result, void* arg) { /* loop thread */
  (void)job;
  (void)arg;
  square_outcome.status = status;
  square_outcome.done_calls++;
  if (status == 0 && result != NULL) square_outcome.value = *(const int*)result;
}

static void failing_done(uvrt_job_t* job, int status, void* result, void* arg) {
  const char* message = uvrt_job_message(job);
  (void)result;
  (void)arg;
  failing_outcome.status = status;
  failing_outcome.done_calls++;
  if (message != NULL) {
    strncpy(failing_message, message, sizeof failing_message - 1);
  }
}

#define CHECK(call)                                                                      \
  do {                                                                                   \
    int rc_ = (call);                                                                    \
    if (rc_ != 0) {                                                                      \
      fprintf(stderr, "%s: %s (%s)\n", #call, uvrt_strerror(rc_), uvrt_err_name(rc_)); \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)

int main(void) {
  uv_loop_t loop;
  uvrt_runtime_t* rt = NULL;
  uvrt_job_t* job = NULL;
  struct request req = {7, 0};
  int rc;

  CHECK(uv_loop_init(&loop));
  CHECK(uvrt_runtime_create_on_loop(&rt, &loop, NULL));
  if (uvrt_runtime_loop(rt) != &loop) {
    fprintf(stderr, "uvrt_runtime_loop is not the application's loop\n");
    return 1;
  }
  CHECK(uvrt_job_submit(rt, &job, square, square_done, &req));
  CHECK(uvrt_job_submit(rt, NULL, failing, failing_done, NULL));
  CHECK(uv_run(&loop, UV_RUN_DEFAULT));

  rc = uvrt_job_cancel(job);
  if (rc != UVRT_EALREADY) {
    fprintf(stderr, "uvrt_job_cancel after done: %s, expected UVRT_EALREADY\n", uvrt_err_name(rc));
    return 1;
  }
  CHECK(uvrt_job_release(job));
  CHECK(uvrt_runtime_destroy(rt));
  CHECK(uv_loop_close(&loop));

  if (square_outcome.done_calls != 1 || square_outcome.status != 0 || failing_outcome.done_calls != 1) {
    fprintf(stderr, "done callbacks: %d (status %d) and %d\n", square_outcome.done_calls,
            square_outcome.status, failing_outcome.done_calls);
    return 1;
  }
  printf("consumer_c: %d, %s '%s'\n", square_outcome.value, uvrt_err_name(failing_outcome.status),
         failing_message);
  return 0;
}
