/* Peer "bare_uv": uvrt-bench's to_thread mode written directly on libuv's uv_queue_work in C, the
 * floor that uvrt wraps.
 *
 * Each job is one malloc'd request that carries its index and its result. The work callback runs
 * the job on libuv's pool; the after-work callback runs on the loop thread, adds the result to the
 * sum, frees the request and submits the next job, so W jobs stay in flight as in uvrt-bench.
 * The only difference in scheduling is that uvrt-bench waits for its oldest job, while this
 * refills from whichever job finished; libuv's pool is FIFO, so the two differ little.
 *
 * libuv has no API for its pool size: the peer sets UV_THREADPOOL_SIZE before the first
 * uv_queue_work starts the pool. The wall time runs from the first submission to the last
 * after-work callback. It includes starting the pool, which uvrt's runtime does before
 * uvrt-bench's clock starts; a few threads take well under a millisecond to create. */

/* setenv, clock_gettime and nanosleep are POSIX, not ISO C: ask for them under any -std. */
#define _POSIX_C_SOURCE 200809L

#include <uv.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "peer_common.h"

struct job {
  uv_work_t req; /* first, so the request's address is the job's */
  uint64_t index;
  uint64_t result;
};

static struct peer_settings settings;
static uint64_t submitted;
static uint64_t results;
static uint64_t sum;

static void run_job(uv_work_t* req) {
  struct job* job = (struct job*)req;
  peer_perform(&settings);
  job->result = peer_value_of(job->index);
}

static void job_done(uv_work_t* req, int status);

static void submit(uv_loop_t* loop) {
  struct job* job = malloc(sizeof *job);
  if (job == NULL) {
    fprintf(stderr, "bare_uv: out of memory\n");
    exit(1);
  }
  job->index = submitted++;
  const int rc = uv_queue_work(loop, &job->req, run_job, job_done);
  if (rc != 0) {
    fprintf(stderr, "bare_uv: uv_queue_work: %s\n", uv_strerror(rc));
    exit(1);
  }
}

/* Nothing cancels jobs here, but a request that did not run has no result: leaving it out of the
 * count makes the final check fail instead of summing garbage. */
static void job_done(uv_work_t* req, int status) {
  struct job* job = (struct job*)req;
  uv_loop_t* loop = req->loop;
  if (status == 0) {
    sum += job->result;
    ++results;
  }
  free(job);
  if (submitted < settings.jobs) submit(loop);
}

int main(int argc, char** argv) {
  settings = peer_parse_args("bare_uv", "Runs N jobs with libuv's uv_queue_work, W in flight, and checks their results.",
                             argc, argv);
  char pool[24];
  snprintf(pool, sizeof pool, "%llu", (unsigned long long)settings.threads);
  if (setenv("UV_THREADPOOL_SIZE", pool, 1) != 0) {
    perror("bare_uv: setenv");
    return 1;
  }

  uv_loop_t loop;
  const int rc = uv_loop_init(&loop);
  if (rc != 0) {
    fprintf(stderr, "bare_uv: uv_loop_init: %s\n", uv_strerror(rc));
    return 1;
  }
  const uint64_t window = settings.inflight < settings.jobs ? settings.inflight : settings.jobs;
  const uint64_t start = peer_now_ns();
  for (uint64_t k = 0; k < window; ++k) submit(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  const uint64_t wall_ns = peer_now_ns() - start;
  uv_loop_close(&loop);
  return peer_report("bare_uv", &settings, NULL, wall_ns, results, sum);
}
