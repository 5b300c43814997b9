/* The C API (<uvrt.h>), from C: a job's result and failure message reaching its done callback,
 * cancel before start and cooperative stop, handle release, teardown with work in flight,
 * re-entrant destroy and run, calls from the wrong thread, embedding in an application's loop,
 * limiters, a bounded queue (max_queued), job timeouts with and without a grace period, runtime
 * stats, error names, pool size and reserved thread options, NULL arguments and the version.
 *
 * Every test keeps its state in a heap fixture that cmocka's teardown ends in order, also after a
 * failed assert (which longjmps out of the test): open the gate holding jobs, destroy the runtime
 * (which waits for every job), release the handles still held, free. So no job is ever left
 * running on memory that is gone, and the next test starts with an idle pool. Jobs are held on
 * the pool by the fixture's gate or until uvrt_job_stop_requested says 1 (or by the gate only,
 * or for a fixed spin, for the timeout cases); the test thread waits for them through counters the
 * workers raise, or lets the loop tell (uvrt_runtime_run returns once nothing is pending), or
 * turns it without waiting until a timeout's done callback has run. Nothing sleeps. Asserts run on the test thread only: workers record
 * what they saw in atomics, done callbacks (on the test thread) in plain fields.
 *
 * The pool is process-wide and the first runtime sizes it: every test uses default options except
 * the pool size cases, which ask for the size uvrt_threadpool_size() reports, or another one, the
 * max_queued case, and the reserved thread cases, which either find the process's reservation
 * (whatever the first runtime set) or start this program again in a process of its own
 * (`test_c_api --fresh-process SCENARIO`), where the first runtime sets it. */
#include <uvrt.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these first, and defines macros with common names: keep it last. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

enum {
  EXTRA_CALLS = 3016, /* calls per fixture beyond one per pool thread */
  WAIT_SECONDS = 30, /* how long the test thread waits for workers before it reports a failure */
};

/* What a done callback does after recording what it got, in this order. */
enum {
  DO_CANCEL = 1,   /* uvrt_job_cancel(job) */
  DO_FAIL = 2,     /* uvrt_job_fail(job, ...) */
  DO_RELEASE = 4,  /* uvrt_job_release(the test's handle), then read the message again */
  DO_SUBMIT = 8,   /* submit `next` to the runtime */
  DO_RUN = 16,     /* uvrt_runtime_run(runtime) */
  DO_DESTROY = 32, /* uvrt_runtime_destroy(runtime) */
  DO_SPEND = 64,   /* first, spin for SPEND_NS: a slow done callback */
};

enum { SPEND_NS = 50000 };

/* A value no handle can have: "not written". */
static max_align_t sentinel_storage;
#define SENTINEL ((uvrt_job_t*)(void*)&sentinel_storage)

struct fixture;

/* One job: what its work function does (set before submitting, read by the worker), what the
 * worker saw (atomics), and what its done callback saw (loop thread). */
struct call {
  struct fixture* fx;
  uvrt_runtime_t* rt;  /* the runtime the done callback and the probes act on */
  int work_status;     /* what the work function returns... */
  const char* work_message; /* ...through uvrt_job_fail(job, work_status, message) if set */
  bool clear_message;  /* then uvrt_job_fail(job, work_status, NULL) */
  bool hold;           /* wait until the fixture's gate opens or a stop is requested */
  bool ignore_stop;    /* hold: wait for the gate only */
  long spin_ns;        /* then spin this long, whatever is requested */
  bool probe;          /* try the loop-thread-only calls from the worker */
  uvrt_job_t* other;   /* probe: a job running elsewhere, for uvrt_job_fail */
  int done_actions;
  struct call* next;   /* DO_SUBMIT: what to submit; its handle receives the new job */
  uvrt_job_t* handle;  /* the test's handle; the fixture releases it unless NULL or SENTINEL */
  int payload;         /* its address is the job's result */
  char scratch[64];    /* the message, built here and overwritten once recorded */

  atomic_int runs;
  atomic_int ran_on_test_thread;
  atomic_int saw_stop;
  atomic_int fail_rc;
  atomic_int probe_submit, probe_run, probe_destroy, probe_cancel, probe_release;
  atomic_int probe_fail_code_0, probe_fail_null, probe_fail_other, probe_message_null;

  int done_calls;
  int done_status;
  void* done_result;
  void* done_arg;
  uvrt_job_t* done_job;
  bool done_on_test_thread;
  bool done_message_null;
  char done_message[64];
  int stop_requested_in_done;
  int finished_in_done; /* fx->finished when done ran */
  long done_after_ns;   /* from submitted_at to the done call */
  struct timespec submitted_at; /* set by the test, for done_after_ns */
  int cancel_in_done, fail_in_done, release_in_done, submit_in_done, run_in_done, destroy_in_done;
  bool message_after_release_null;
  char message_after_release[64];
};

/* Jobs that count how many of them run at once (counting_work). */
struct concurrency {
  atomic_int running;
  atomic_int max_running;
  atomic_int runs;
  int done_calls; /* loop thread */
  int done_failed;
};

struct fixture {
  uvrt_runtime_t* rt;    /* destroyed by the teardown unless NULL */
  uvrt_runtime_t* other; /* a second runtime, destroyed after rt unless NULL */
  uvrt_limiter_t* limiter; /* destroyed once both runtimes are, unless NULL */
  int pool;
  pthread_t test_thread;
  atomic_bool gate_open;
  atomic_int started;  /* held jobs that have begun */
  atomic_int finished; /* work functions that have returned */
  int ncalls, used;
  struct call* calls;
  struct concurrency counted;
};

static void copy_message(const char* m, bool* is_null, char* out, size_t size) {
  *is_null = m == NULL;
  snprintf(out, size, "%s", m ? m : "");
}

static void spend(long ns);

static int work(uvrt_job_t* job, void* arg, void** result) {
  struct call* c = arg;
  struct fixture* fx = c->fx;
  atomic_fetch_add(&c->runs, 1);
  atomic_store(&c->ran_on_test_thread, pthread_equal(pthread_self(), fx->test_thread) ? 1 : 0);
  if (c->probe) {
    uvrt_job_t* h = SENTINEL;
    atomic_store(&c->probe_submit, uvrt_job_submit(c->rt, &h, work, NULL, c));
    atomic_store(&c->probe_run, uvrt_runtime_run(c->rt));
    atomic_store(&c->probe_destroy, uvrt_runtime_destroy(c->rt));
    atomic_store(&c->probe_cancel, uvrt_job_cancel(job));
    atomic_store(&c->probe_release, uvrt_job_release(job));
    atomic_store(&c->probe_message_null, uvrt_job_message(job) == NULL);
    atomic_store(&c->probe_fail_code_0, uvrt_job_fail(job, 0, "a failure without a code"));
    atomic_store(&c->probe_fail_null, uvrt_job_fail(NULL, UV_EIO, "no job"));
    if (c->other) atomic_store(&c->probe_fail_other, uvrt_job_fail(c->other, UV_EIO, "not my job"));
  }
  if (c->hold) {
    atomic_fetch_add(&fx->started, 1);
    while (!atomic_load(&fx->gate_open) && (c->ignore_stop || !uvrt_job_stop_requested(job))) sched_yield();
  }
  if (c->spin_ns) spend(c->spin_ns);
  atomic_store(&c->saw_stop, uvrt_job_stop_requested(job));
  *result = &c->payload;
  int rc = c->work_status;
  if (c->work_message) {
    snprintf(c->scratch, sizeof c->scratch, "%s", c->work_message);
    rc = uvrt_job_fail(job, c->work_status, c->scratch);
    snprintf(c->scratch, sizeof c->scratch, "overwritten after uvrt_job_fail"); /* it was copied */
    if (c->clear_message) rc = uvrt_job_fail(job, c->work_status, NULL);
    atomic_store(&c->fail_rc, rc);
  }
  atomic_fetch_add(&fx->finished, 1);
  return rc;
}

static void spend(long ns) {
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < ns);
}

static void done(uvrt_job_t* job, int status, void* result, void* arg) {
  struct call* c = arg;
  if (c->done_actions & DO_SPEND) spend(SPEND_NS);
  c->done_calls++;
  c->done_status = status;
  c->done_result = result;
  c->done_arg = arg;
  c->done_job = job;
  c->done_on_test_thread = pthread_equal(pthread_self(), c->fx->test_thread);
  copy_message(uvrt_job_message(job), &c->done_message_null, c->done_message, sizeof c->done_message);
  c->stop_requested_in_done = uvrt_job_stop_requested(job);
  c->finished_in_done = atomic_load(&c->fx->finished);
  {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    c->done_after_ns = (now.tv_sec - c->submitted_at.tv_sec) * 1000000000L + (now.tv_nsec - c->submitted_at.tv_nsec);
  }
  if (c->done_actions & DO_CANCEL) c->cancel_in_done = uvrt_job_cancel(job);
  if (c->done_actions & DO_FAIL) c->fail_in_done = uvrt_job_fail(job, UV_EIO, "from the done callback");
  if (c->done_actions & DO_RELEASE) {
    c->release_in_done = uvrt_job_release(c->handle);
    if (c->release_in_done == 0) c->handle = NULL;
    copy_message(uvrt_job_message(job), &c->message_after_release_null, c->message_after_release,
                 sizeof c->message_after_release);
  }
  if (c->done_actions & DO_SUBMIT) c->submit_in_done = uvrt_job_submit(c->rt, &c->next->handle, work, done, c->next);
  if (c->done_actions & DO_RUN) c->run_in_done = uvrt_runtime_run(c->rt);
  if (c->done_actions & DO_DESTROY) {
    c->destroy_in_done = uvrt_runtime_destroy(c->rt);
    if (c->destroy_in_done == 0 && c->fx->rt == c->rt) c->fx->rt = NULL;
  }
}

static int setup(void** state) {
  struct fixture* fx = calloc(1, sizeof *fx);
  if (!fx) return -1;
  fx->pool = uvrt_threadpool_size();
  fx->ncalls = (fx->pool > 0 ? fx->pool : 0) + EXTRA_CALLS;
  fx->calls = calloc((size_t)fx->ncalls, sizeof *fx->calls);
  if (fx->pool <= 0 || !fx->calls) {
    free(fx->calls);
    free(fx);
    return -1;
  }
  fx->test_thread = pthread_self();
  atomic_init(&fx->gate_open, false);
  atomic_init(&fx->started, 0);
  atomic_init(&fx->finished, 0);
  *state = fx;
  return 0;
}

static int teardown(void** state) {
  struct fixture* fx = *state;
  atomic_store(&fx->gate_open, true);
  if ((fx->rt && uvrt_runtime_destroy(fx->rt) != 0) || (fx->other && uvrt_runtime_destroy(fx->other) != 0)) {
    /* Jobs may still use the fixture: leak it rather than free it under them. */
    fprintf(stderr, "teardown: uvrt_runtime_destroy failed; the fixture is leaked\n");
    return -1;
  }
  /* Every job has settled, so none holds or waits for a token. */
  if (fx->limiter && uvrt_limiter_destroy(fx->limiter) != 0) {
    fprintf(stderr, "teardown: uvrt_limiter_destroy failed with no job left\n");
    return -1;
  }
  for (int i = 0; i < fx->used; ++i) {
    uvrt_job_t* h = fx->calls[i].handle;
    if (h && h != SENTINEL) uvrt_job_release(h);
  }
  free(fx->calls);
  free(fx);
  return 0;
}

/* A fresh call acting on `rt`. */
static struct call* new_call(struct fixture* fx, uvrt_runtime_t* rt) {
  assert_true(fx->used < fx->ncalls);
  struct call* c = &fx->calls[fx->used++];
  c->fx = fx;
  c->rt = rt;
  return c;
}

static int submit(struct call* c, bool keep_handle) {
  return uvrt_job_submit(c->rt, keep_handle ? &c->handle : NULL, work, done, c);
}

/* submit with a limiter (NULL: none), through uvrt_job_submit_ex; keeps the handle. */
static int submit_limited(struct call* c, uvrt_limiter_t* limiter) {
  uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
  options.limiter = limiter;
  return uvrt_job_submit_ex(c->rt, &c->handle, work, done, c, &options);
}

/* Waits until *counter reaches target; false after WAIT_SECONDS. */
static bool wait_for(atomic_int* counter, int target) {
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (atomic_load(counter) < target) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec > WAIT_SECONDS) return false;
    sched_yield();
  }
  return true;
}

/* Turns a hang into a failure: unless disarmed within 10 s, SIGALRM prints "HANG: <what>" and
 * ends the process with _exit(1). Not synchronisation: a test that works disarms it long before. */
static const char* hang_what = "";

static void on_hang(int sig) {
  (void)sig;
  static const char prefix[] = "HANG: ";
  (void)!write(2, prefix, sizeof prefix - 1);
  (void)!write(2, hang_what, strlen(hang_what));
  (void)!write(2, "\n", 1);
  _exit(1);
}

static void arm_watchdog(const char* what) {
  hang_what = what;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_hang;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  alarm(10);
}

static void disarm_watchdog(void) { alarm(0); }

/* The number of finished uv_work_t requests libuv has posted to `loop`'s done queue that the
 * loop has not taken yet (it takes them when it turns): a work function returning is not enough
 * to know its completion is there, the worker posts it a few instructions later. Reads libuv's
 * private fields (unix, 1.x up to 1.45) under the mutex the workers post with; -1 where the
 * layout is unknown. */
static int posted_completions(uv_loop_t* loop) {
#if UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR <= 45
  int n = 0;
  uv_mutex_lock(&loop->wq_mutex);
  for (void* q = loop->wq[0]; q != (void*)&loop->wq; q = ((void**)q)[0]) ++n;
  uv_mutex_unlock(&loop->wq_mutex);
  return n;
#else
  (void)loop;
  return -1;
#endif
}

/* Waits until `loop`'s done queue holds n completions, without turning the loop; false after
 * WAIT_SECONDS. Where libuv's layout is unknown, waits 50 ms: a margin for the few instructions
 * between a work function's return and its completion being posted. */
static bool wait_for_posted(uv_loop_t* loop, int n) {
  if (posted_completions(loop) < 0) {
    struct timespec ms50 = {0, 50000000L};
    nanosleep(&ms50, NULL);
    return true;
  }
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (posted_completions(loop) < n) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t0.tv_sec > WAIT_SECONDS) return false;
    sched_yield();
  }
  return posted_completions(loop) == n;
}

/* Occupies every pool thread with a held job, so that jobs submitted next stay queued until the
 * gate opens. Returns the first of the pool's calls. */
static struct call* fill_pool(struct fixture* fx) {
  struct call* first = NULL;
  for (int i = 0; i < fx->pool; ++i) {
    struct call* c = new_call(fx, fx->rt);
    c->hold = true;
    assert_int_equal(submit(c, true), 0);
    if (!first) first = c;
  }
  assert_true(wait_for(&fx->started, fx->pool));
  return first;
}

static struct fixture* fixture_with_runtime(void** state) {
  struct fixture* fx = *state;
  assert_int_equal(uvrt_runtime_create(&fx->rt, NULL), 0);
  assert_non_null(fx->rt);
  return fx;
}

/* ------------------------------------------------------------------------------------------- */
/* Results and failures */

/* The work runs on a pool thread; done runs later, on the loop thread, with status 0, the result
 * the work stored, the job and the arg passed through untouched. */
static void submitted_job_delivers_its_result_and_arg_to_done_on_the_loop_thread(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  assert_int_equal(submit(c, true), 0);
  assert_non_null(c->handle);
  assert_int_equal(c->done_calls, 0);  /* never from inside submit */

  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, 0);
  assert_ptr_equal(c->done_result, &c->payload);
  assert_ptr_equal(c->done_arg, c);
  assert_ptr_equal(c->done_job, c->handle);
  assert_true(c->done_on_test_thread);
  assert_int_equal(atomic_load(&c->runs), 1);
  assert_int_equal(atomic_load(&c->ran_on_test_thread), 0);
  assert_true(c->done_message_null);
  assert_null(uvrt_job_message(c->handle));
  assert_int_equal(uvrt_job_stop_requested(c->handle), 0);
}

/* A NULL job pointer (uvrt owns the handle) and a NULL done callback are both allowed. */
static void jobs_without_handle_or_done_callback_still_run(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* no_handle = new_call(fx, fx->rt);
  struct call* no_done = new_call(fx, fx->rt);
  struct call* neither = new_call(fx, fx->rt);
  assert_int_equal(submit(no_handle, false), 0);
  assert_int_equal(uvrt_job_submit(fx->rt, &no_done->handle, work, NULL, no_done), 0);
  assert_int_equal(uvrt_job_submit(fx->rt, NULL, work, NULL, neither), 0);

  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(no_handle->done_calls, 1);
  assert_int_equal(no_handle->done_status, 0);
  assert_non_null(no_handle->done_job);
  assert_int_equal(atomic_load(&no_done->runs), 1);
  assert_int_equal(atomic_load(&neither->runs), 1);
  assert_int_equal(no_done->done_calls, 0);
  assert_int_equal(uvrt_job_cancel(no_done->handle), UVRT_EALREADY);
}

/* uvrt_job_fail returns its code, which reaches done unchanged, and the message (a copy) is
 * readable once the job has settled, not before, even after the work function has returned. */
static void failed_job_reports_its_code_and_message_once_settled(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->work_status = -7001;
  c->work_message = "disk on fire";
  assert_int_equal(submit(c, true), 0);
  assert_true(wait_for(&fx->finished, 1));
  /* The work has returned, but the loop has not turned: the job has not settled. */
  assert_null(uvrt_job_message(c->handle));

  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(atomic_load(&c->fail_rc), -7001);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, -7001);
  assert_false(c->done_message_null);
  assert_string_equal(c->done_message, "disk on fire");
  const char* m = uvrt_job_message(c->handle);
  assert_non_null(m);
  assert_string_equal(m, "disk on fire");
}

/* uvrt_job_fail(job, code, NULL) clears a message recorded earlier and still returns the code. */
static void job_fail_with_null_message_clears_the_earlier_message(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->work_status = UV_EIO;
  c->work_message = "first reason";
  c->clear_message = true;
  assert_int_equal(submit(c, true), 0);

  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(atomic_load(&c->fail_rc), UV_EIO);
  assert_int_equal(c->done_status, UV_EIO);
  assert_true(c->done_message_null);
  assert_null(uvrt_job_message(c->handle));
}

/* Code 0 or a NULL job: UVRT_EINVAL. Any caller but the job's own running work function (the loop
 * thread before and after settlement, its done callback, another job's work function):
 * UVRT_ETHREAD. A refused call records no message. */
static void job_fail_refuses_code_0_and_callers_other_than_its_work_function(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* held = new_call(fx, fx->rt);
  held->hold = true;
  held->done_actions = DO_FAIL;
  assert_int_equal(submit(held, true), 0);
  assert_true(wait_for(&fx->started, 1));
  const int from_loop_while_running = uvrt_job_fail(held->handle, UV_EIO, "from the loop thread");

  struct call* prober = new_call(fx, fx->rt);
  prober->probe = true;
  prober->other = held->handle;
  assert_int_equal(submit(prober, true), 0);
  if (fx->pool < 2) atomic_store(&fx->gate_open, true);  /* one thread: the prober queues behind */
  const bool prober_finished = wait_for(&fx->finished, fx->pool < 2 ? 2 : 1);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  const int from_loop_after = uvrt_job_fail(held->handle, UV_EIO, "after settlement");

  assert_true(prober_finished);
  assert_int_equal(atomic_load(&prober->probe_fail_code_0), UVRT_EINVAL);
  assert_int_equal(atomic_load(&prober->probe_fail_null), UVRT_EINVAL);
  assert_int_equal(atomic_load(&prober->probe_fail_other), UVRT_ETHREAD);
  assert_int_equal(from_loop_while_running, UVRT_ETHREAD);
  assert_int_equal(held->fail_in_done, UVRT_ETHREAD);
  assert_int_equal(from_loop_after, UVRT_ETHREAD);
  assert_int_equal(uvrt_job_fail(held->handle, 0, "code 0 from the loop"), UVRT_EINVAL);
  /* Nothing was recorded by the refused calls. */
  assert_int_equal(held->done_status, 0);
  assert_true(held->done_message_null);
  assert_null(uvrt_job_message(held->handle));
  assert_int_equal(prober->done_status, 0);
  assert_true(prober->done_message_null);
}

/* ------------------------------------------------------------------------------------------- */
/* Cancellation */

/* With every pool thread busy, a queued job that is cancelled returns 0, never runs, and its done
 * callback runs later from the loop (never from inside cancel) with UVRT_ECANCELED. */
static void cancel_of_a_queued_job_returns_0_and_it_never_runs(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* busy = fill_pool(fx);
  struct call* queued = new_call(fx, fx->rt);
  assert_int_equal(submit(queued, true), 0);

  const int rc = uvrt_job_cancel(queued->handle);
  const int done_calls_after_cancel = queued->done_calls;
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(rc, 0);
  assert_int_equal(done_calls_after_cancel, 0);
  assert_int_equal(queued->done_calls, 1);
  assert_int_equal(queued->done_status, UVRT_ECANCELED);
  assert_null(queued->done_result);
  assert_int_equal(atomic_load(&queued->runs), 0);
  assert_true(queued->done_message_null);
  for (int i = 0; i < fx->pool; ++i) {
    assert_int_equal(busy[i].done_calls, 1);
    assert_int_equal(busy[i].done_status, 0);
  }
}

/* A second cancel of a queued job also returns 0; done still runs once. */
static void cancelling_a_queued_job_twice_returns_0_twice_and_done_runs_once(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  (void)fill_pool(fx);
  struct call* queued = new_call(fx, fx->rt);
  assert_int_equal(submit(queued, true), 0);

  const int first = uvrt_job_cancel(queued->handle);
  const int second = uvrt_job_cancel(queued->handle);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(first, 0);
  assert_int_equal(second, 0);
  assert_int_equal(queued->done_calls, 1);
  assert_int_equal(queued->done_status, UVRT_ECANCELED);
  assert_int_equal(atomic_load(&queued->runs), 0);
}

/* A running job that polls uvrt_job_stop_requested: cancel returns UVRT_EBUSY, stop_requested is
 * 1 right after, the job returns UVRT_ECANCELED and done gets it. Nothing opens the gate here:
 * the job only leaves because it was asked to stop. */
static void cancel_of_a_running_job_returns_ebusy_and_requests_a_stop(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->work_status = UVRT_ECANCELED;
  assert_int_equal(submit(c, true), 0);
  assert_true(wait_for(&fx->started, 1));

  const int before = uvrt_job_stop_requested(c->handle);
  const int rc = uvrt_job_cancel(c->handle);
  const int after = uvrt_job_stop_requested(c->handle);
  const int done_calls_after_cancel = c->done_calls;
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(before, 0);
  assert_int_equal(rc, UVRT_EBUSY);
  assert_int_equal(after, 1);
  assert_int_equal(done_calls_after_cancel, 0);
  assert_int_equal(atomic_load(&c->saw_stop), 1);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ECANCELED);
  assert_ptr_equal(c->done_result, &c->payload);
  assert_int_equal(c->stop_requested_in_done, 1);
}

/* A second cancel of a running job is UVRT_EBUSY again, and done gets whatever the work returns
 * (here 0 and its result: a stop request does not turn the outcome into a cancellation). */
static void cancelling_a_running_job_twice_returns_ebusy_twice_and_keeps_its_result(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  assert_int_equal(submit(c, true), 0);
  assert_true(wait_for(&fx->started, 1));

  const int first = uvrt_job_cancel(c->handle);
  const int second = uvrt_job_cancel(c->handle);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(first, UVRT_EBUSY);
  assert_int_equal(second, UVRT_EBUSY);
  assert_int_equal(atomic_load(&c->saw_stop), 1);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, 0);
  assert_ptr_equal(c->done_result, &c->payload);
}

/* Once done has run, or while it runs, cancel returns UVRT_EALREADY and changes nothing. */
static void cancel_after_completion_returns_ealready_also_inside_done(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->done_actions = DO_CANCEL;
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(c->cancel_in_done, UVRT_EALREADY);
  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  assert_int_equal(uvrt_job_stop_requested(c->handle), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Handles */

/* Releasing the handle while the job runs does not cancel it: done still runs, once, with a job
 * that is still valid (its message and cancel work). */
static void release_before_completion_still_runs_done_with_a_valid_job(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->work_status = -7002;
  c->work_message = "released early";
  c->done_actions = DO_CANCEL;
  assert_int_equal(submit(c, true), 0);
  assert_true(wait_for(&fx->started, 1));

  uvrt_job_t* const released = c->handle;
  const int rc = uvrt_job_release(released);
  if (rc == 0) c->handle = NULL;
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(rc, 0);
  assert_int_equal(atomic_load(&c->saw_stop), 0);
  assert_int_equal(c->done_calls, 1);
  assert_ptr_equal(c->done_job, released);
  assert_int_equal(c->done_status, -7002);
  assert_string_equal(c->done_message, "released early");
  assert_int_equal(c->cancel_in_done, UVRT_EALREADY);
}

/* A done callback may release the job's handle; the job stays valid until done returns. */
static void release_inside_done_is_allowed_and_the_job_stays_valid_until_done_returns(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->work_status = UV_EIO;
  c->work_message = "released in done";
  c->done_actions = DO_RELEASE;
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->release_in_done, 0);
  assert_null(c->handle);
  assert_false(c->message_after_release_null);
  assert_string_equal(c->message_after_release, "released in done");
}

/* Handles still held stay valid after their runtime is destroyed, and can be released then. */
static void handles_stay_valid_after_their_runtime_is_destroyed(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->work_status = UV_EIO;
  c->work_message = "kept";
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(uvrt_runtime_destroy(fx->rt), 0);
  fx->rt = NULL;

  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  assert_int_equal(uvrt_job_stop_requested(c->handle), 0);
  const char* m = uvrt_job_message(c->handle);
  assert_non_null(m);
  assert_string_equal(m, "kept");
  assert_int_equal(uvrt_job_release(c->handle), 0);
  c->handle = NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Teardown and re-entrancy */

/* Destroy with every pool thread busy and jobs queued behind them, more than the 1024 a runtime
 * hands to libuv, so that some wait in libuv's queue and the rest in the runtime's: queued jobs never run and get
 * UVRT_ECANCELED; running ones see a stop request, are waited for and get their own status and
 * result; every done has run exactly once when destroy returns 0. A done callback that runs
 * during the teardown cannot submit (UVRT_ECLOSING, nothing written), destroy or run (UVRT_EBUSY).
 * The handles stay usable afterwards. */
static void destroy_with_work_in_flight_settles_every_job_exactly_once(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* running = fill_pool(fx);
  enum { QUEUED = 3000 };
  struct call* queued[QUEUED];
  for (int i = 0; i < QUEUED; ++i) {
    queued[i] = new_call(fx, fx->rt);
    assert_int_equal(submit(queued[i], true), 0);
  }
  struct call* late = new_call(fx, fx->rt);
  late->handle = SENTINEL;
  queued[0]->next = late;
  queued[0]->done_actions = DO_SUBMIT | DO_RUN | DO_DESTROY;

  const int rc = uvrt_runtime_destroy(fx->rt);
  if (rc == 0) fx->rt = NULL;

  assert_int_equal(rc, 0);
  for (int i = 0; i < fx->pool; ++i) {
    struct call* c = &running[i];
    assert_int_equal(c->done_calls, 1);
    assert_int_equal(atomic_load(&c->runs), 1);
    assert_int_equal(atomic_load(&c->saw_stop), 1);
    assert_int_equal(c->done_status, 0);
    assert_ptr_equal(c->done_result, &c->payload);
    assert_int_equal(uvrt_job_stop_requested(c->handle), 1);
    assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  }
  for (int i = 0; i < QUEUED; ++i) {
    struct call* c = queued[i];
    assert_int_equal(c->done_calls, 1);
    assert_int_equal(atomic_load(&c->runs), 0);
    assert_int_equal(c->done_status, UVRT_ECANCELED);
    assert_null(c->done_result);
    assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  }
  assert_int_equal(queued[0]->submit_in_done, UVRT_ECLOSING);
  assert_ptr_equal(late->handle, SENTINEL);
  assert_int_equal(atomic_load(&late->runs), 0);
  assert_int_equal(late->done_calls, 0);
  assert_int_equal(queued[0]->run_in_done, UVRT_EBUSY);
  assert_int_equal(queued[0]->destroy_in_done, UVRT_EBUSY);
  for (int i = 0; i < fx->used; ++i) {
    struct call* c = &fx->calls[i];
    if (c->handle && c->handle != SENTINEL) {
      assert_int_equal(uvrt_job_release(c->handle), 0);
      c->handle = NULL;
    }
  }
}

/* A job whose work has returned but whose done callback has not run when destroy begins sees the
 * same stop request as a running one. The runtime settles finished jobs in time slices of a
 * fraction of a millisecond, so with slow done callbacks one turn of the loop (UV_RUN_NOWAIT,
 * after every work function has returned) settles only the first few; the rest settle inside
 * destroy, and each of those reads 1 from uvrt_job_stop_requested in its done callback. */
static void destroy_after_the_work_returned_still_requests_a_stop_before_done(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  enum { JOBS = 200 };
  struct call* calls[JOBS];
  for (int i = 0; i < JOBS; ++i) {
    calls[i] = new_call(fx, fx->rt);
    calls[i]->done_actions = DO_SPEND;
    assert_int_equal(submit(calls[i], false), 0);
  }
  assert_true(wait_for(&fx->finished, JOBS));
  uv_run(uvrt_runtime_loop(fx->rt), UV_RUN_NOWAIT);
  bool settled_before[JOBS];
  int before = 0;
  for (int i = 0; i < JOBS; ++i) {
    settled_before[i] = calls[i]->done_calls == 1;
    if (settled_before[i]) ++before;
  }
  /* Some settled in that turn, and some were left for the teardown: else this tests nothing. */
  assert_in_range(before, 1, JOBS - 1);

  const int rc = uvrt_runtime_destroy(fx->rt);
  if (rc == 0) fx->rt = NULL;

  assert_int_equal(rc, 0);
  for (int i = 0; i < JOBS; ++i) {
    struct call* c = calls[i];
    assert_int_equal(c->done_calls, 1);
    assert_int_equal(c->done_status, 0);
    assert_ptr_equal(c->done_result, &c->payload);
    assert_int_equal(atomic_load(&c->saw_stop), 0);
    assert_int_equal(c->stop_requested_in_done, settled_before[i] ? 0 : 1);
  }
}

/* Destroy from a done callback is refused with UVRT_EBUSY; the runtime carries on (the same done
 * callback may submit more) and can be destroyed once run has returned. */
static void destroy_inside_done_returns_ebusy_and_the_runtime_stays_usable(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  struct call* follow_up = new_call(fx, fx->rt);
  c->done_actions = DO_DESTROY | DO_SUBMIT;
  c->next = follow_up;
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(c->destroy_in_done, UVRT_EBUSY);
  assert_int_equal(c->submit_in_done, 0);
  assert_int_equal(follow_up->done_calls, 1);
  assert_int_equal(follow_up->done_status, 0);

  struct call* after = new_call(fx, fx->rt);
  assert_int_equal(submit(after, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(after->done_calls, 1);
  assert_int_equal(after->done_status, 0);
  assert_int_equal(uvrt_runtime_destroy(fx->rt), 0);
  fx->rt = NULL;
}

/* uvrt_runtime_run from a done callback is refused with UVRT_EBUSY; the outer run goes on. */
static void run_inside_done_returns_ebusy(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  struct call* follow_up = new_call(fx, fx->rt);
  c->done_actions = DO_RUN | DO_SUBMIT;
  c->next = follow_up;
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->run_in_done, UVRT_EBUSY);
  assert_int_equal(c->submit_in_done, 0);
  assert_int_equal(follow_up->done_calls, 1);
}

/* ------------------------------------------------------------------------------------------- */
/* Threads */

struct foreign_calls {
  uvrt_runtime_t* rt;
  uvrt_job_t* running;  /* held at the gate */
  uvrt_job_t* settled;  /* settled with a message */
  struct call* spare;   /* the arg of the refused submit */
  uvrt_job_t* submitted;
  uv_loop_t* loop;
  int run_rc, destroy_rc, submit_rc, cancel_rc, release_rc, release_settled_rc, fail_rc, stop_requested;
  int submit_ex_rc, stats_rc;
  bool stats_untouched;
  bool message_null;
  int strerror_ok;
};

static void* call_from_a_foreign_thread(void* arg) {
  struct foreign_calls* f = arg;
  f->run_rc = uvrt_runtime_run(f->rt);
  f->destroy_rc = uvrt_runtime_destroy(f->rt);
  f->submit_rc = uvrt_job_submit(f->rt, &f->submitted, work, done, f->spare);
  const uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
  f->submit_ex_rc = uvrt_job_submit_ex(f->rt, &f->submitted, work, done, f->spare, &options);
  uvrt_runtime_stats_t stats;
  memset(&stats, 0xab, sizeof stats);
  stats.size = sizeof stats;
  f->stats_rc = uvrt_runtime_stats(f->rt, &stats);
  f->stats_untouched = stats.submitted == 0xababababababababULL;
  f->cancel_rc = uvrt_job_cancel(f->running);
  f->release_rc = uvrt_job_release(f->running);
  f->release_settled_rc = uvrt_job_release(f->settled);
  f->fail_rc = uvrt_job_fail(f->running, UV_EIO, "from a foreign thread");
  f->message_null = uvrt_job_message(f->settled) == NULL;
  /* Allowed on any thread. */
  f->stop_requested = uvrt_job_stop_requested(f->running);
  f->loop = uvrt_runtime_loop(f->rt);
  f->strerror_ok = strcmp(uvrt_strerror(UVRT_ETHREAD), "called from a thread other than the runtime's loop thread") == 0 &&
                   strcmp(uvrt_err_name(UVRT_ETHREAD), "UVRT_ETHREAD") == 0;
  return NULL;
}

/* From a thread that is not the loop thread, run, destroy, submit (also with options), stats,
 * cancel, release and fail are refused with UVRT_ETHREAD and change nothing; uvrt_job_message
 * gives NULL. */
static void calls_from_another_thread_return_ethread_and_change_nothing(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* settled = new_call(fx, fx->rt);
  settled->work_status = UV_EIO;
  settled->work_message = "settled";
  assert_int_equal(submit(settled, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  struct call* running = new_call(fx, fx->rt);
  running->hold = true;
  assert_int_equal(submit(running, true), 0);
  assert_true(wait_for(&fx->started, 1));

  struct foreign_calls f = {.rt = fx->rt, .running = running->handle, .settled = settled->handle,
                            .spare = new_call(fx, fx->rt), .submitted = SENTINEL};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, call_from_a_foreign_thread, &f), 0);
  assert_int_equal(pthread_join(thread, NULL), 0);
  const int stop_requested_after = uvrt_job_stop_requested(running->handle);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(f.run_rc, UVRT_ETHREAD);
  assert_int_equal(f.destroy_rc, UVRT_ETHREAD);
  assert_int_equal(f.submit_rc, UVRT_ETHREAD);
  assert_int_equal(f.submit_ex_rc, UVRT_ETHREAD);
  assert_ptr_equal(f.submitted, SENTINEL);
  assert_int_equal(f.stats_rc, UVRT_ETHREAD);
  assert_true(f.stats_untouched);
  assert_int_equal(f.cancel_rc, UVRT_ETHREAD);
  assert_int_equal(f.release_rc, UVRT_ETHREAD);
  assert_int_equal(f.release_settled_rc, UVRT_ETHREAD);
  assert_int_equal(f.fail_rc, UVRT_ETHREAD);
  assert_true(f.message_null);
  assert_int_equal(f.stop_requested, 0);
  assert_ptr_equal(f.loop, uvrt_runtime_loop(fx->rt));
  assert_non_null(f.loop);
  assert_true(f.strerror_ok);
  /* Nothing changed: no stop, no extra job, the held job ran to its end, handles still held. */
  assert_int_equal(stop_requested_after, 0);
  assert_int_equal(atomic_load(&f.spare->runs), 0);
  assert_int_equal(f.spare->done_calls, 0);
  assert_int_equal(running->done_calls, 1);
  assert_int_equal(running->done_status, 0);
  assert_true(running->done_message_null);
  const char* m = uvrt_job_message(settled->handle);
  assert_non_null(m);
  assert_string_equal(m, "settled");
  assert_int_equal(uvrt_job_release(running->handle), 0);
  running->handle = NULL;
  assert_int_equal(uvrt_job_release(settled->handle), 0);
  settled->handle = NULL;
}

/* From inside a work function (a pool thread), the loop-thread calls are refused with
 * UVRT_ETHREAD too, and the job is unaffected. */
static void calls_from_a_work_function_return_ethread(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->probe = true;
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(atomic_load(&c->probe_submit), UVRT_ETHREAD);
  assert_int_equal(atomic_load(&c->probe_run), UVRT_ETHREAD);
  assert_int_equal(atomic_load(&c->probe_destroy), UVRT_ETHREAD);
  assert_int_equal(atomic_load(&c->probe_cancel), UVRT_ETHREAD);
  assert_int_equal(atomic_load(&c->probe_release), UVRT_ETHREAD);
  assert_int_equal(atomic_load(&c->probe_message_null), 1);
  assert_int_equal(atomic_load(&c->runs), 1);  /* the refused submit queued nothing */
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, 0);
  assert_int_equal(uvrt_job_stop_requested(c->handle), 0);
}

struct owner_thread {
  struct call* c;
  atomic_int phase;  /* 1: created and used; 2: the test thread is done with it */
  uvrt_runtime_t* rt;
  int create_rc, submit_rc, run_rc, destroy_rc;
};

static void* own_a_runtime(void* arg) {
  struct owner_thread* o = arg;
  o->create_rc = uvrt_runtime_create(&o->rt, NULL);
  if (o->create_rc == 0) {
    o->c->rt = o->rt;
    o->submit_rc = submit(o->c, false);
    o->run_rc = uvrt_runtime_run(o->rt);
  }
  atomic_store(&o->phase, 1);
  while (atomic_load(&o->phase) != 2) sched_yield();
  if (o->create_rc == 0) o->destroy_rc = uvrt_runtime_destroy(o->rt);
  return NULL;
}

/* A runtime created on another thread belongs to that thread: it runs and destroys it, and the
 * test thread's calls are refused with UVRT_ETHREAD. */
static void a_runtime_belongs_to_the_thread_that_created_it(void** state) {
  struct fixture* fx = *state;
  struct owner_thread o = {.c = new_call(fx, NULL), .rt = NULL};
  atomic_init(&o.phase, 0);
  struct call* spare = new_call(fx, NULL);
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, own_a_runtime, &o), 0);
  const bool created = wait_for(&o.phase, 1);
  int run_rc = 0, destroy_rc = 0, submit_rc = 0;
  uvrt_job_t* submitted = SENTINEL;
  uv_loop_t* loop = NULL;
  if (created) {
    run_rc = uvrt_runtime_run(o.rt);
    destroy_rc = uvrt_runtime_destroy(o.rt);
    submit_rc = uvrt_job_submit(o.rt, &submitted, work, done, spare);
    loop = uvrt_runtime_loop(o.rt);
  }
  atomic_store(&o.phase, 2);
  assert_int_equal(pthread_join(thread, NULL), 0);

  assert_true(created);
  assert_int_equal(o.create_rc, 0);
  assert_int_equal(o.submit_rc, 0);
  assert_int_equal(o.run_rc, 0);
  assert_int_equal(o.c->done_calls, 1);
  assert_false(o.c->done_on_test_thread);
  assert_int_equal(run_rc, UVRT_ETHREAD);
  assert_int_equal(destroy_rc, UVRT_ETHREAD);
  assert_int_equal(submit_rc, UVRT_ETHREAD);
  assert_ptr_equal(submitted, SENTINEL);
  assert_non_null(loop);
  assert_int_equal(atomic_load(&spare->runs), 0);
  assert_int_equal(o.destroy_rc, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Embedding */

/* A runtime on a loop the application owns (on its stack): the runtime's handle alone does not
 * keep the loop alive, a job does; uv_run returns once done ran (inside which uvrt_runtime_run
 * and destroy are refused); after destroy, uv_loop_close returns 0. Values are recorded and the
 * loop closed before asserting, so a failure leaves nothing linked to this stack frame. */
static void embedded_runtime_runs_jobs_on_the_application_loop_and_leaves_it_closable(void** state) {
  struct fixture* fx = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uvrt_runtime_t* rt = NULL;
  const int create_rc = uvrt_runtime_create_on_loop(&rt, &loop, NULL);
  if (create_rc != 0) {
    uv_loop_close(&loop);
    fail_msg("uvrt_runtime_create_on_loop: %s", uvrt_strerror(create_rc));
  }
  uv_loop_t* const reported = uvrt_runtime_loop(rt);
  const int alive_idle = uv_loop_alive(&loop);
  const int nowait_idle = uv_run(&loop, UV_RUN_NOWAIT);

  struct call* c = new_call(fx, rt);
  c->done_actions = DO_RUN | DO_DESTROY;
  const int submit_rc = submit(c, true);
  const int alive_with_job = uv_loop_alive(&loop);
  int run_rc = -1;
  /* Only if the runtime alone does not keep the loop alive: otherwise this would never return. */
  if (alive_idle == 0 && nowait_idle == 0) run_rc = uv_run(&loop, UV_RUN_DEFAULT);
  const int done_calls_after_run = c->done_calls;
  const int alive_after = uv_loop_alive(&loop);

  /* Had the destroy inside done wrongly succeeded, the runtime would already be gone. */
  const int destroy_rc = c->done_calls == 1 && c->destroy_in_done == 0 ? 0 : uvrt_runtime_destroy(rt);
  const int close_rc = uv_loop_close(&loop);

  assert_int_equal(destroy_rc, 0);
  assert_int_equal(close_rc, 0);
  assert_ptr_equal(reported, &loop);
  assert_int_equal(alive_idle, 0);
  assert_int_equal(nowait_idle, 0);
  assert_int_equal(submit_rc, 0);
  assert_int_not_equal(alive_with_job, 0);
  assert_int_equal(run_rc, 0);
  assert_int_equal(done_calls_after_run, 1);
  assert_int_equal(c->done_status, 0);
  assert_ptr_equal(c->done_result, &c->payload);
  assert_true(c->done_on_test_thread);
  assert_int_equal(c->run_in_done, UVRT_EBUSY);
  assert_int_equal(c->destroy_in_done, UVRT_EBUSY);
  assert_int_equal(alive_after, 0);
  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
}

/* r05: runtimes A and B on one application loop, both jobs' completions posted before the loop
 * turns (A's first), so that one pass over libuv's done queue takes both. A's done callback
 * calls uvrt_runtime_run(B) and uvrt_runtime_destroy(B): both return UVRT_EBUSY (the loop is
 * turning below them), instead of re-entering uv_run for B (today: B's completion has left
 * libuv's queue and the nested uv_run waits for ever). B stays usable: its done callback runs
 * with status 0 and it takes another job. */
static void run_or_destroy_of_another_runtime_on_the_loop_from_a_done_callback_returns_ebusy(void** state) {
  struct fixture* fx = *state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uvrt_runtime_t* a = NULL;
  uvrt_runtime_t* b = NULL;
  assert_int_equal(uvrt_runtime_create_on_loop(&a, &loop, NULL), 0);
  assert_int_equal(uvrt_runtime_create_on_loop(&b, &loop, NULL), 0);
  struct call* on_b = new_call(fx, b); /* B's job, held until the gate opens */
  on_b->hold = true;
  struct call* on_a = new_call(fx, b); /* A's job; its done callback acts on B */
  on_a->done_actions = DO_RUN | DO_DESTROY;
  assert_int_equal(uvrt_job_submit(b, &on_b->handle, work, done, on_b), 0);
  assert_true(wait_for(&fx->started, 1));
  assert_int_equal(uvrt_job_submit(a, &on_a->handle, work, done, on_a), 0);
  assert_true(wait_for(&fx->finished, 1));
  const bool a_posted = wait_for_posted(&loop, 1);
  atomic_store(&fx->gate_open, true);
  assert_true(wait_for(&fx->finished, 2));
  const bool both_posted = a_posted && wait_for_posted(&loop, 2);

  arm_watchdog("uvrt_runtime_run or uvrt_runtime_destroy of runtime B from runtime A's done callback");
  const int loop_rc = uv_run(&loop, UV_RUN_DEFAULT);
  disarm_watchdog();
  /* Had the destroy inside done wrongly succeeded, B would already be gone. */
  if (on_a->destroy_in_done == 0) b = NULL;
  struct call* later = new_call(fx, b);
  const int later_submit = b ? uvrt_job_submit(b, &later->handle, work, done, later) : UVRT_EINVAL;
  const int later_run = b ? uvrt_runtime_run(b) : UVRT_EINVAL;
  const int destroy_b = b ? uvrt_runtime_destroy(b) : UVRT_EINVAL;
  const int destroy_a = uvrt_runtime_destroy(a);
  const int close_rc = uv_loop_close(&loop);

  assert_true(both_posted);
  assert_int_equal(loop_rc, 0);
  assert_int_equal(on_a->done_calls, 1);
  assert_int_equal(on_a->done_status, 0);
  assert_int_equal(on_a->run_in_done, UVRT_EBUSY);
  assert_int_equal(on_a->destroy_in_done, UVRT_EBUSY);
  assert_int_equal(on_b->done_calls, 1);
  assert_int_equal(on_b->done_status, 0);
  assert_int_equal(later_submit, 0);
  assert_int_equal(later_run, 0);
  assert_int_equal(later->done_calls, 1);
  assert_int_equal(later->done_status, 0);
  assert_int_equal(destroy_b, 0);
  assert_int_equal(destroy_a, 0);
  assert_int_equal(close_rc, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Limiters, bounded queues, stats */

/* Counts the jobs that run at once: raises fx->counted.running for the time it spends, and records
 * the most it saw. */
static int counting_work(uvrt_job_t* job, void* arg, void** result) {
  (void)job;
  (void)result;
  struct concurrency* k = arg;
  const int now = atomic_fetch_add(&k->running, 1) + 1;
  int seen = atomic_load(&k->max_running);
  while (now > seen && !atomic_compare_exchange_weak(&k->max_running, &seen, now)) {
  }
  spend(20000);
  atomic_fetch_sub(&k->running, 1);
  atomic_fetch_add(&k->runs, 1);
  return 0;
}

static void counting_done(uvrt_job_t* job, int status, void* result, void* arg) {
  (void)job;
  (void)result;
  struct concurrency* k = arg;
  k->done_calls++;
  if (status != 0) k->done_failed++;
}

/* A call on fx->rt submitted with fx->limiter; held at the gate if `hold`. */
static struct call* limited_call(struct fixture* fx, bool hold) {
  struct call* c = new_call(fx, fx->rt);
  c->hold = hold;
  assert_int_equal(submit_limited(c, fx->limiter), 0);
  return c;
}

/* Creates fx->limiter with one token and gives it to a held job, which has started on return. */
static struct call* hold_the_only_token(struct fixture* fx) {
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 1), 0);
  struct call* holder = limited_call(fx, true);
  assert_true(wait_for(&fx->started, 1));
  return holder;
}

/* uvrt_limiter_create refuses a NULL out-parameter and 0 tokens (writing nothing),
 * uvrt_limiter_set_tokens refuses NULL and 0 (the number stays), the getters give 0 for NULL and
 * destroy refuses NULL; a new limiter has its tokens, none borrowed, none waiting. */
static void limiter_calls_refuse_null_and_zero_tokens(void** state) {
  struct fixture* fx = *state;
  uvrt_limiter_t* lim = (uvrt_limiter_t*)(void*)&sentinel_storage;
  assert_int_equal(uvrt_limiter_create(NULL, 3), UVRT_EINVAL);
  assert_int_equal(uvrt_limiter_create(&lim, 0), UVRT_EINVAL);
  assert_ptr_equal(lim, (uvrt_limiter_t*)(void*)&sentinel_storage);
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 3), 0);
  assert_non_null(fx->limiter);
  assert_int_equal(uvrt_limiter_tokens(fx->limiter), 3);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
  assert_int_equal(uvrt_limiter_waiting(fx->limiter), 0);

  assert_int_equal(uvrt_limiter_set_tokens(fx->limiter, 0), UVRT_EINVAL);
  assert_int_equal(uvrt_limiter_tokens(fx->limiter), 3);
  assert_int_equal(uvrt_limiter_set_tokens(NULL, 2), UVRT_EINVAL);
  assert_int_equal(uvrt_limiter_set_tokens(fx->limiter, 5), 0);
  assert_int_equal(uvrt_limiter_tokens(fx->limiter), 5);
  assert_int_equal(uvrt_limiter_set_tokens(fx->limiter, 1), 0);
  assert_int_equal(uvrt_limiter_tokens(fx->limiter), 1);

  assert_int_equal(uvrt_limiter_tokens(NULL), 0);
  assert_int_equal(uvrt_limiter_borrowed(NULL), 0);
  assert_int_equal(uvrt_limiter_waiting(NULL), 0);
  assert_int_equal(uvrt_limiter_destroy(NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_limiter_destroy(fx->limiter), 0);
  fx->limiter = NULL;
}

/* uvrt_job_options_t must say its size: 0 or less than sizeof is UVRT_EINVAL, as is a larger
 * struct (a newer uvrt.h's) whose unknown part is not zero; a larger one with a zero tail, the
 * initialiser and NULL options are accepted. A refused submit writes no handle and never calls
 * done; the accepted ones run with the limiter they named. */
static void job_options_of_the_wrong_size_are_refused_with_einval(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 1), 0);
  struct call* refused = new_call(fx, fx->rt);
  refused->handle = SENTINEL;
  struct {
    uvrt_job_options_t options;
    uint64_t newer_field;
  } bigger;
  memset(&bigger, 0, sizeof bigger);
  bigger.options.size = sizeof bigger;
  bigger.options.limiter = fx->limiter;
  bigger.newer_field = 1;
  uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
  options.limiter = fx->limiter;
  const size_t wrong[] = {0, 1, sizeof options - 1, (size_t)-1};
  for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; ++i) {
    options.size = wrong[i];
    assert_int_equal(uvrt_job_submit_ex(fx->rt, &refused->handle, work, done, refused, &options), UVRT_EINVAL);
  }
  assert_int_equal(uvrt_job_submit_ex(fx->rt, &refused->handle, work, done, refused, &bigger.options), UVRT_EINVAL);
  assert_ptr_equal(refused->handle, SENTINEL);
  assert_int_equal(uvrt_limiter_waiting(fx->limiter), 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);

  struct call* with_init = new_call(fx, fx->rt);
  struct call* with_null = new_call(fx, fx->rt);
  struct call* with_bigger = new_call(fx, fx->rt);
  options.size = sizeof options;
  assert_int_equal(uvrt_job_submit_ex(fx->rt, &with_init->handle, work, done, with_init, &options), 0);
  assert_int_equal(uvrt_job_submit_ex(fx->rt, &with_null->handle, work, done, with_null, NULL), 0);
  bigger.newer_field = 0;
  assert_int_equal(uvrt_job_submit_ex(fx->rt, &with_bigger->handle, work, done, with_bigger, &bigger.options), 0);
  /* Two limited jobs and one token: the second waits. */
  const size_t waiting = uvrt_limiter_waiting(fx->limiter);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(waiting, 1);
  assert_int_equal(refused->done_calls, 0);
  assert_int_equal(atomic_load(&refused->runs), 0);
  assert_int_equal(with_init->done_status, 0);
  assert_int_equal(with_null->done_status, 0);
  assert_int_equal(with_bigger->done_status, 0);
  assert_int_equal(with_bigger->done_calls, 1);
  assert_int_equal(uvrt_limiter_waiting(fx->limiter), 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* 100 jobs through a limiter of 3 tokens: right after submitting, 3 hold a token and 97 wait
 * (the runtime's stats say so too); no more than 3 ever run at once; every one runs, and its done
 * callback gets status 0; then no token is borrowed. */
static void a_limiter_of_3_tokens_never_runs_more_than_3_of_100_jobs_at_once(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  enum { JOBS = 100 };
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 3), 0);
  uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
  options.limiter = fx->limiter;
  for (int i = 0; i < JOBS; ++i)
    assert_int_equal(uvrt_job_submit_ex(fx->rt, NULL, counting_work, counting_done, &fx->counted, &options), 0);
  const size_t borrowed = uvrt_limiter_borrowed(fx->limiter);
  const size_t waiting = uvrt_limiter_waiting(fx->limiter);
  uvrt_runtime_stats_t stats;
  stats.size = sizeof stats;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &stats), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(borrowed, 3);
  assert_int_equal(waiting, JOBS - 3);
  assert_int_equal(stats.waiting_for_limiter, JOBS - 3);
  assert_int_equal(stats.submitted, JOBS);
  assert_in_range(atomic_load(&fx->counted.max_running), 1, 3);
  assert_int_equal(atomic_load(&fx->counted.runs), JOBS);
  assert_int_equal(fx->counted.done_calls, JOBS);
  assert_int_equal(fx->counted.done_failed, 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
  assert_int_equal(uvrt_limiter_waiting(fx->limiter), 0);
}

/* A job waiting for a token (the only one is held by a running job) is cancelled: cancel returns
 * 0, it leaves the limiter's line at once, never runs, and its done callback gets UVRT_ECANCELED
 * from the loop; the job holding the token is unaffected. */
static void a_job_waiting_for_a_token_cancelled_gets_ecanceled_and_never_runs(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* holder = hold_the_only_token(fx);
  struct call* waiter = limited_call(fx, false);
  const size_t waiting_before = uvrt_limiter_waiting(fx->limiter);

  const int rc = uvrt_job_cancel(waiter->handle);
  const int again = uvrt_job_cancel(waiter->handle);
  const size_t waiting_after = uvrt_limiter_waiting(fx->limiter);
  const int done_calls_after_cancel = waiter->done_calls;
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(waiting_before, 1);
  assert_int_equal(rc, 0);
  assert_int_equal(again, 0);
  assert_int_equal(waiting_after, 0);
  assert_int_equal(done_calls_after_cancel, 0);
  assert_int_equal(waiter->done_calls, 1);
  assert_int_equal(waiter->done_status, UVRT_ECANCELED);
  assert_null(waiter->done_result);
  assert_int_equal(atomic_load(&waiter->runs), 0);
  assert_int_equal(holder->done_calls, 1);
  assert_int_equal(holder->done_status, 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* Destroying a runtime cancels its jobs that wait for a token like its queued jobs: their done
 * callbacks get UVRT_ECANCELED, they never run, and the limiter has nobody waiting afterwards. */
static void destroying_a_runtime_cancels_its_jobs_waiting_for_a_token(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* holder = hold_the_only_token(fx);
  enum { WAITERS = 5 };
  struct call* waiters[WAITERS];
  for (int i = 0; i < WAITERS; ++i) waiters[i] = limited_call(fx, false);
  const size_t waiting_before = uvrt_limiter_waiting(fx->limiter);

  const int rc = uvrt_runtime_destroy(fx->rt);
  if (rc == 0) fx->rt = NULL;

  assert_int_equal(rc, 0);
  assert_int_equal(waiting_before, WAITERS);
  assert_int_equal(holder->done_calls, 1);
  assert_int_equal(holder->done_status, 0);
  assert_int_equal(atomic_load(&holder->saw_stop), 1);
  for (int i = 0; i < WAITERS; ++i) {
    assert_int_equal(waiters[i]->done_calls, 1);
    assert_int_equal(waiters[i]->done_status, UVRT_ECANCELED);
    assert_int_equal(atomic_load(&waiters[i]->runs), 0);
  }
  assert_int_equal(uvrt_limiter_waiting(fx->limiter), 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* uvrt_limiter_destroy while a job holds its token and another waits: UVRT_EBUSY, and nothing
 * changed (same numbers). With the waiting job cancelled, the held token alone still makes it
 * UVRT_EBUSY, and the limiter still serves a job submitted after that. Once every job is done,
 * destroy returns 0. */
static void destroying_a_limiter_in_use_returns_ebusy_until_its_jobs_are_done(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* holder = hold_the_only_token(fx);
  struct call* waiter = limited_call(fx, false);

  const int busy_holding_and_waiting = uvrt_limiter_destroy(fx->limiter);
  const size_t tokens = uvrt_limiter_tokens(fx->limiter);
  const size_t borrowed = uvrt_limiter_borrowed(fx->limiter);
  const size_t waiting = uvrt_limiter_waiting(fx->limiter);
  /* Only a token held: still busy. */
  const int cancel_rc = uvrt_job_cancel(waiter->handle);
  const int busy_holding = uvrt_limiter_destroy(fx->limiter);
  struct call* later = limited_call(fx, false);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  const int rc = uvrt_limiter_destroy(fx->limiter);
  if (rc == 0) fx->limiter = NULL;

  assert_int_equal(busy_holding_and_waiting, UVRT_EBUSY);
  assert_int_equal(tokens, 1);
  assert_int_equal(borrowed, 1);
  assert_int_equal(waiting, 1);
  assert_int_equal(cancel_rc, 0);
  assert_int_equal(busy_holding, UVRT_EBUSY);
  assert_int_equal(holder->done_status, 0);
  assert_int_equal(waiter->done_status, UVRT_ECANCELED);
  assert_int_equal(later->done_calls, 1);
  assert_int_equal(later->done_status, 0);
  assert_int_equal(rc, 0);
}

struct token_grower {
  uvrt_limiter_t* limiter;
  int rc;
};

static void* grow_tokens(void* arg) {
  struct token_grower* g = arg;
  g->rc = uvrt_limiter_set_tokens(g->limiter, 2);
  return NULL;
}

/* The limiter functions may be called on any thread: a second token added from another thread
 * starts the job waiting for it (on its runtime's loop, which takes the grant as it turns) while
 * the first still holds its token. */
static void set_tokens_from_another_thread_starts_a_waiting_job(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* first = hold_the_only_token(fx);
  struct call* second = limited_call(fx, true);
  const size_t waiting_before = uvrt_limiter_waiting(fx->limiter);

  struct token_grower g = {.limiter = fx->limiter, .rc = 1};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, grow_tokens, &g), 0);
  assert_int_equal(pthread_join(thread, NULL), 0);
  const size_t waiting_after = uvrt_limiter_waiting(fx->limiter);
  arm_watchdog("a job granted a token from another thread did not start");
  while (atomic_load(&fx->started) < 2) uv_run(uvrt_runtime_loop(fx->rt), UV_RUN_NOWAIT);
  disarm_watchdog();
  const size_t borrowed_both = uvrt_limiter_borrowed(fx->limiter);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(waiting_before, 1);
  assert_int_equal(g.rc, 0);
  assert_int_equal(waiting_after, 0);
  assert_int_equal(borrowed_both, 2);
  assert_int_equal(uvrt_limiter_tokens(fx->limiter), 2);
  assert_int_equal(first->done_status, 0);
  assert_int_equal(second->done_status, 0);
}

/* A runtime with max_queued = 2, while every pool thread is busy with another runtime's held
 * jobs: two jobs wait (one queued with its limiter's token, one waiting for the token), and the
 * next submit, with or without a limiter, is refused with UVRT_EQUEUEFULL: no handle written, no
 * token taken, and its done callback never runs. Cancelling a waiting job makes room for one more. */
static void submit_beyond_max_queued_returns_equeuefull_and_never_calls_done(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  uvrt_options_t options = {.max_queued = 2};
  assert_int_equal(uvrt_runtime_create(&fx->other, &options), 0);
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 1), 0);
  (void)fill_pool(fx);
  struct call* queued = new_call(fx, fx->other);
  struct call* waiting = new_call(fx, fx->other);
  assert_int_equal(submit_limited(queued, fx->limiter), 0);
  assert_int_equal(submit_limited(waiting, fx->limiter), 0);
  struct call* refused_plain = new_call(fx, fx->other);
  struct call* refused_limited = new_call(fx, fx->other);
  refused_plain->handle = refused_limited->handle = SENTINEL;
  const int plain_rc = submit(refused_plain, true);
  const int limited_rc = submit_limited(refused_limited, fx->limiter);
  const size_t waiting_for_token = uvrt_limiter_waiting(fx->limiter);
  uvrt_runtime_stats_t full;
  full.size = sizeof full;
  const int stats_rc = uvrt_runtime_stats(fx->other, &full);

  const int cancel_rc = uvrt_job_cancel(waiting->handle);
  struct call* room = new_call(fx, fx->other);
  const int room_rc = submit(room, true);
  struct call* refused_again = new_call(fx, fx->other);
  refused_again->handle = SENTINEL;
  const int again_rc = submit(refused_again, true);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(uvrt_runtime_run(fx->other), 0);

  assert_int_equal(plain_rc, UVRT_EQUEUEFULL);
  assert_int_equal(limited_rc, UVRT_EQUEUEFULL);
  assert_int_equal(again_rc, UVRT_EQUEUEFULL);
  assert_int_equal(waiting_for_token, 1);
  assert_int_equal(stats_rc, 0);
  assert_int_equal(full.submitted, 2);
  assert_int_equal(full.queued, 1);
  assert_int_equal(full.waiting_for_limiter, 1);
  assert_int_equal(cancel_rc, 0);
  assert_int_equal(room_rc, 0);
  struct call* refused[] = {refused_plain, refused_limited, refused_again};
  for (int i = 0; i < 3; ++i) {
    assert_ptr_equal(refused[i]->handle, SENTINEL);
    assert_int_equal(refused[i]->done_calls, 0);
    assert_int_equal(atomic_load(&refused[i]->runs), 0);
  }
  assert_int_equal(queued->done_status, 0);
  assert_int_equal(waiting->done_status, UVRT_ECANCELED);
  assert_int_equal(room->done_status, 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* uvrt_runtime_stats: all zero for a new runtime; with every pool thread held and three more jobs
 * submitted, one of them cancelled, the gauges say pool running and 2 queued; once the loop ran
 * everything, the counters say what happened and the latencies count the jobs that ran. A size
 * smaller than the struct, or absurdly large, is refused (nothing written); a larger one (a newer
 * uvrt.h) gets its unknown tail zeroed and the size this version filled. */
static void runtime_stats_count_what_the_runtime_did(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  uvrt_runtime_stats_t s;
  memset(&s, 0xab, sizeof s);
  s.size = sizeof s - 1;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &s), UVRT_EINVAL);
  assert_int_equal(s.size, sizeof s - 1);
  assert_int_equal(s.submitted, 0xababababababababULL);
  s.size = 0;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &s), UVRT_EINVAL);
  s.size = 4097; /* no uvrt.h makes one this large: never set */
  assert_int_equal(uvrt_runtime_stats(fx->rt, &s), UVRT_EINVAL);
  assert_int_equal(s.submitted, 0xababababababababULL);
  struct {
    uvrt_runtime_stats_t stats;
    uint64_t newer_field;
  } bigger;
  memset(&bigger, 0xab, sizeof bigger);
  bigger.stats.size = sizeof bigger;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &bigger.stats), 0);
  assert_int_equal(bigger.stats.size, sizeof(uvrt_runtime_stats_t));
  assert_int_equal(bigger.newer_field, 0);
  const uvrt_runtime_stats_t fresh = bigger.stats;
  assert_int_equal(fresh.submitted + fresh.settled + fresh.cancelled + fresh.abandoned, 0);
  assert_int_equal(fresh.queued + fresh.running + fresh.waiting_for_limiter, 0);
  assert_int_equal(fresh.wait.count + fresh.wait.p50_ns + fresh.wait.p90_ns + fresh.wait.p99_ns + fresh.wait.max_ns, 0);
  assert_int_equal(fresh.run.count + fresh.run.max_ns, 0);

  (void)fill_pool(fx);
  struct call* queued[3];
  for (int i = 0; i < 3; ++i) {
    queued[i] = new_call(fx, fx->rt);
    assert_int_equal(submit(queued[i], true), 0);
  }
  assert_int_equal(uvrt_job_cancel(queued[0]->handle), 0);
  uvrt_runtime_stats_t busy;
  busy.size = sizeof busy;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &busy), 0);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  uvrt_runtime_stats_t after;
  after.size = sizeof after;
  assert_int_equal(uvrt_runtime_stats(fx->rt, &after), 0);

  const uint64_t jobs = (uint64_t)fx->pool + 3;
  assert_int_equal(busy.submitted, jobs);
  assert_int_equal(busy.settled, 0);
  assert_int_equal(busy.queued, 2);
  assert_int_equal(busy.running, fx->pool + 1); /* the cancelled job counts until it settles */
  assert_int_equal(busy.waiting_for_limiter, 0);
  assert_int_equal(after.size, sizeof after);
  assert_int_equal(after.submitted, jobs);
  assert_int_equal(after.settled, jobs);
  assert_int_equal(after.cancelled, 1);
  assert_int_equal(after.abandoned, 0);
  assert_int_equal(after.queued + after.running + after.waiting_for_limiter, 0);
  const uvrt_latency_t* latencies[] = {&after.wait, &after.run};
  for (int i = 0; i < 2; ++i) {
    const uvrt_latency_t* l = latencies[i];
    assert_int_equal(l->count, jobs - 1);
    assert_true(l->p50_ns <= l->p90_ns);
    assert_true(l->p90_ns <= l->p99_ns);
    assert_true(l->p99_ns <= l->max_ns);
  }
  /* The held jobs ran until the gate opened. */
  assert_true(after.run.max_ns > 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Timeouts (uvrt_job_options_t.timeout_ms and grace_ms) */

enum { MS = 1000000 };

/* uvrt_job_submit_ex with a timeout (and a limiter, if not NULL); keeps the handle and notes the
 * time for done_after_ns. */
static int submit_timed(struct call* c, uint64_t timeout_ms, uint64_t grace_ms, uvrt_limiter_t* limiter) {
  uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
  options.limiter = limiter;
  options.timeout_ms = timeout_ms;
  options.grace_ms = grace_ms;
  clock_gettime(CLOCK_MONOTONIC, &c->submitted_at);
  return uvrt_job_submit_ex(c->rt, &c->handle, work, done, c, &options);
}

/* Turns the runtime's loop, without waiting, until c's done callback has run. Not UV_RUN_ONCE:
 * a turn that finds the timer due at its start calls done there, then waits in its poll for the
 * next event, which a job held at the closed gate never sends. */
static void turn_until_done(struct fixture* fx, struct call* c, const char* what) {
  arm_watchdog(what);
  while (c->done_calls == 0) uv_run(uvrt_runtime_loop(fx->rt), UV_RUN_NOWAIT);
  disarm_watchdog();
}

static long ns_since(const struct timespec* t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec);
}

static uvrt_runtime_stats_t stats_of(uvrt_runtime_t* rt) {
  uvrt_runtime_stats_t s;
  s.size = sizeof s;
  assert_int_equal(uvrt_runtime_stats(rt, &s), 0);
  return s;
}

/* The default options have no timeout, and UVRT_ETIMEDOUT is libuv's UV_ETIMEDOUT, named by
 * uvrt and described as a job's timeout. */
static void etimedout_is_libuvs_code_with_uvrts_name_and_description(void** state) {
  (void)state;
  const uvrt_job_options_t defaults = UVRT_JOB_OPTIONS_INIT;
  assert_int_equal(defaults.size, sizeof defaults);
  assert_null(defaults.limiter);
  assert_int_equal(defaults.timeout_ms, 0);
  assert_int_equal(defaults.grace_ms, 0);
  assert_int_equal(UVRT_ETIMEDOUT, UV_ETIMEDOUT);
  assert_string_equal(uvrt_err_name(UVRT_ETIMEDOUT), "UVRT_ETIMEDOUT");
  assert_non_null(strstr(uvrt_strerror(UVRT_ETIMEDOUT), "timeout"));
}

/* A program built against the uvrt.h before timeout_ms passes the struct that ended with
 * `limiter`, its size saying so: accepted, its limiter used, and nothing past it read (the first
 * struct is on the heap, exactly that large: AddressSanitizer reports a read past it; the second
 * sits in a larger buffer whose next bytes say "timeout 1 ms", which must not be obeyed by a job
 * that runs 20 ms). A size between the old and the new struct is neither: UVRT_EINVAL. */
static void job_options_of_the_uvrt_h_before_timeouts_are_accepted_and_read_no_further(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  assert_int_equal(uvrt_limiter_create(&fx->limiter, 1), 0);
  struct options_before_timeouts {
    size_t size;
    uvrt_limiter_t* limiter;
  };
  const size_t old_size = offsetof(uvrt_job_options_t, limiter) + sizeof(uvrt_limiter_t*);
  assert_int_equal(sizeof(struct options_before_timeouts), old_size);
  assert_true(old_size < sizeof(uvrt_job_options_t));
  struct options_before_timeouts* old = malloc(sizeof *old);
  assert_non_null(old);
  old->size = sizeof *old;
  old->limiter = fx->limiter;
  uvrt_job_options_t padded;
  memset(&padded, 0, sizeof padded);
  padded.size = old_size;
  padded.timeout_ms = 1;

  struct call* with_old = new_call(fx, fx->rt);
  struct call* with_padded = new_call(fx, fx->rt);
  with_padded->spin_ns = 20 * MS;
  clock_gettime(CLOCK_MONOTONIC, &with_padded->submitted_at);
  const int old_rc =
      uvrt_job_submit_ex(fx->rt, &with_old->handle, work, done, with_old, (const uvrt_job_options_t*)(void*)old);
  const size_t holding_token = uvrt_limiter_borrowed(fx->limiter) + uvrt_limiter_waiting(fx->limiter);
  const int padded_rc = uvrt_job_submit_ex(fx->rt, &with_padded->handle, work, done, with_padded, &padded);
  struct call* refused = new_call(fx, fx->rt);
  refused->handle = SENTINEL;
  uvrt_job_options_t between = UVRT_JOB_OPTIONS_INIT;
  between.size = old_size + sizeof(uint64_t);
  const int between_rc = uvrt_job_submit_ex(fx->rt, &refused->handle, work, done, refused, &between);
  free(old);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(old_rc, 0);
  assert_int_equal(holding_token, 1);
  assert_int_equal(padded_rc, 0);
  assert_int_equal(between_rc, UVRT_EINVAL);
  assert_ptr_equal(refused->handle, SENTINEL);
  assert_int_equal(refused->done_calls, 0);
  assert_int_equal(with_old->done_calls, 1);
  assert_int_equal(with_old->done_status, 0);
  assert_ptr_equal(with_old->done_result, &with_old->payload);
  assert_int_equal(with_padded->done_calls, 1);
  assert_int_equal(with_padded->done_status, 0);
  assert_ptr_equal(with_padded->done_result, &with_padded->payload);
  assert_true(with_padded->done_after_ns >= 20 * MS);
  assert_int_equal(with_padded->stop_requested_in_done, 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* With every pool thread busy, a queued job whose timeout expires is cancelled: it never runs,
 * and its done callback gets UVRT_ETIMEDOUT and no result, not before the timeout and not at the
 * end of its grace period (a job that never ran has nothing to wait for), while the jobs ahead of
 * it still run; no stop was requested; cancel returns UVRT_EALREADY from then on, also inside
 * done. The stats count it as cancelled. */
static void a_queued_job_whose_timeout_expires_never_runs_and_done_gets_etimedout(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* busy = fill_pool(fx);
  struct call* c = new_call(fx, fx->rt);
  c->done_actions = DO_CANCEL;
  assert_int_equal(submit_timed(c, 5, 5000, NULL), 0);
  turn_until_done(fx, c, "a queued job's timeout did not call done");
  int busy_done = 0;
  for (int i = 0; i < fx->pool; ++i) busy_done += busy[i].done_calls;
  const int cancel_rc = uvrt_job_cancel(c->handle);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  const uvrt_runtime_stats_t s = stats_of(fx->rt);

  assert_int_equal(busy_done, 0);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_int_equal(atomic_load(&c->runs), 0);
  assert_true(c->done_after_ns >= 5 * MS);
  assert_true(c->done_after_ns < 5000L * MS);
  assert_true(c->done_message_null);
  assert_int_equal(c->stop_requested_in_done, 0);
  assert_int_equal(c->cancel_in_done, UVRT_EALREADY);
  assert_int_equal(cancel_rc, UVRT_EALREADY);
  assert_null(uvrt_job_message(c->handle));
  for (int i = 0; i < fx->pool; ++i) {
    assert_int_equal(busy[i].done_calls, 1);
    assert_int_equal(busy[i].done_status, 0);
  }
  assert_int_equal(s.settled, (uint64_t)fx->pool + 1);
  assert_int_equal(s.cancelled, 1);
  assert_int_equal(s.abandoned, 0);
}

/* A job waiting for its limiter's token when its timeout expires leaves the limiter's line, never
 * runs, and its done callback gets UVRT_ETIMEDOUT; the job holding the token is unaffected. */
static void a_job_waiting_for_a_token_whose_timeout_expires_never_runs_and_done_gets_etimedout(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* holder = hold_the_only_token(fx);
  struct call* waiter = new_call(fx, fx->rt);
  assert_int_equal(submit_timed(waiter, 5, 0, fx->limiter), 0);
  const size_t waiting_before = uvrt_limiter_waiting(fx->limiter);
  turn_until_done(fx, waiter, "a timeout of a job waiting for a token did not call done");
  const size_t waiting_after = uvrt_limiter_waiting(fx->limiter);
  const int holder_done = holder->done_calls;
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(waiting_before, 1);
  assert_int_equal(waiting_after, 0);
  assert_int_equal(holder_done, 0);
  assert_int_equal(waiter->done_calls, 1);
  assert_int_equal(waiter->done_status, UVRT_ETIMEDOUT);
  assert_null(waiter->done_result);
  assert_int_equal(atomic_load(&waiter->runs), 0);
  assert_true(waiter->done_after_ns >= 5 * MS);
  assert_int_equal(holder->done_calls, 1);
  assert_int_equal(holder->done_status, 0);
  assert_int_equal(atomic_load(&holder->saw_stop), 0);
  assert_int_equal(uvrt_limiter_borrowed(fx->limiter), 0);
}

/* A running job whose timeout expires (grace 0) is asked to stop: its work function sees
 * uvrt_job_stop_requested() return 1 and leaves; done gets UVRT_ETIMEDOUT and no result,
 * never before the timeout, and the message the work function recorded is dropped with its
 * outcome. */
static void a_running_job_whose_timeout_expires_is_asked_to_stop_and_done_gets_etimedout(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->work_status = UVRT_ECANCELED;
  c->work_message = "stopped";
  assert_int_equal(submit_timed(c, 5, 0, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  const int stop_before = uvrt_job_stop_requested(c->handle);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(stop_before, 0);
  assert_int_equal(atomic_load(&c->runs), 1);
  assert_int_equal(atomic_load(&c->saw_stop), 1);
  assert_int_equal(atomic_load(&c->fail_rc), UVRT_ECANCELED);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_true(c->done_after_ns >= 5 * MS);
  assert_int_equal(c->stop_requested_in_done, 1);
  assert_true(c->done_message_null);
  assert_null(uvrt_job_message(c->handle));
  assert_int_equal(uvrt_job_stop_requested(c->handle), 1);
  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
}

/* Grace 0 and a work function that ignores the stop request: done gets UVRT_ETIMEDOUT at the
 * timeout while the work still runs (from the loop, where destroy is UVRT_EBUSY and cancel
 * UVRT_EALREADY); the handle stays valid, cancel stays UVRT_EALREADY and the message NULL. The
 * stats count the job as settled (abandoned) at once. When the work returns later, with a code,
 * a message and a result, its outcome is dropped: done is not called again, and run returns only
 * once the work has returned. */
static void with_grace_0_done_gets_etimedout_at_once_and_the_late_outcome_is_dropped(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->ignore_stop = true;
  c->work_status = -7003;
  c->work_message = "too late";
  c->done_actions = DO_CANCEL | DO_DESTROY;
  assert_int_equal(submit_timed(c, 5, 0, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  turn_until_done(fx, c, "grace 0: the timeout did not call done");
  const int cancel_rc = uvrt_job_cancel(c->handle);
  const bool message_null = uvrt_job_message(c->handle) == NULL;
  const int stop = uvrt_job_stop_requested(c->handle);
  const uvrt_runtime_stats_t early = stats_of(fx->rt);
  const int finished_before_gate = atomic_load(&fx->finished);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  const int finished_after_run = atomic_load(&fx->finished);
  const uvrt_runtime_stats_t late = stats_of(fx->rt);

  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_true(c->done_after_ns >= 5 * MS);
  assert_int_equal(c->finished_in_done, 0);
  assert_int_equal(finished_before_gate, 0);
  assert_int_equal(c->stop_requested_in_done, 1);
  assert_true(c->done_message_null);
  assert_int_equal(c->cancel_in_done, UVRT_EALREADY);
  assert_int_equal(c->destroy_in_done, UVRT_EBUSY);
  assert_int_equal(cancel_rc, UVRT_EALREADY);
  assert_true(message_null);
  assert_int_equal(stop, 1);
  assert_int_equal(early.submitted, 1);
  assert_int_equal(early.settled, 1);
  assert_int_equal(early.abandoned, 1);
  assert_int_equal(early.cancelled, 0);
  assert_int_equal(early.running + early.queued, 0);
  assert_int_equal(finished_after_run, 1);
  assert_int_equal(atomic_load(&c->fail_rc), -7003);
  assert_null(uvrt_job_message(c->handle));
  assert_int_equal(uvrt_job_cancel(c->handle), UVRT_EALREADY);
  assert_int_equal(late.settled, 1);
  assert_int_equal(late.abandoned, 1);
  assert_int_equal(late.running + late.queued, 0);
}

/* With a grace period, a running job asked to stop at its timeout that returns within the grace
 * period: done gets UVRT_ETIMEDOUT (its result dropped) when it returns, not at the end of the
 * grace period. */
static void with_grace_done_gets_etimedout_when_the_stopped_work_returns(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  assert_int_equal(submit_timed(c, 5, 5000, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  const uvrt_runtime_stats_t s = stats_of(fx->rt);

  assert_int_equal(atomic_load(&c->saw_stop), 1);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_int_equal(c->finished_in_done, 1);
  assert_true(c->done_after_ns >= 5 * MS);
  assert_true(c->done_after_ns < 5000L * MS);
  assert_int_equal(c->stop_requested_in_done, 1);
  assert_int_equal(s.settled, 1);
  assert_int_equal(s.abandoned, 0);
}

/* Regression (second review of issue 13): a grace period of UINT64_MAX ms ("as long as the stopped
 * work needs") made the runtime's clock round its deadline up past 2^64 to 0 ms and restart itself
 * with 0 from inside its own callback, which libuv 1.44 runs again in the same pass, for ever: the
 * loop never polled again and done never ran. */
static void a_grace_period_of_uint64_max_waits_for_the_stopped_work(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  assert_int_equal(submit_timed(c, 5, UINT64_MAX, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(atomic_load(&c->saw_stop), 1);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
}

/* With a grace period and a work function that ignores the stop request: done gets
 * UVRT_ETIMEDOUT at timeout + grace while the work still runs; done may release the handle then,
 * and the job lives on until its work returns (whose outcome is dropped, done not called again). */
static void with_grace_done_gets_etimedout_at_its_end_if_the_work_still_runs(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->ignore_stop = true;
  c->done_actions = DO_RELEASE;
  assert_int_equal(submit_timed(c, 5, 20, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  turn_until_done(fx, c, "the end of a grace period did not call done");
  const int finished_before_gate = atomic_load(&fx->finished);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_true(c->done_after_ns >= 25 * MS);
  assert_int_equal(c->finished_in_done, 0);
  assert_int_equal(finished_before_gate, 0);
  assert_int_equal(c->stop_requested_in_done, 1);
  assert_int_equal(c->release_in_done, 0);
  assert_null(c->handle);
  assert_true(c->message_after_release_null);
  assert_int_equal(atomic_load(&fx->finished), 1);
}

/* A job whose work returns before its timeout gets its own outcome (code, message, result), and
 * the timer goes with it: run returns at once instead of waiting for the 60 s deadline, and no
 * stop is requested. */
static void a_job_that_returns_before_its_timeout_gets_its_own_outcome(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* failing = new_call(fx, fx->rt);
  failing->work_status = -7004;
  failing->work_message = "in time";
  struct call* ok = new_call(fx, fx->rt);
  assert_int_equal(submit_timed(failing, 60000, 0, NULL), 0);
  assert_int_equal(submit_timed(ok, 60000, 60000, NULL), 0);
  arm_watchdog("a settled job's timeout kept the loop");
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  disarm_watchdog();

  assert_int_equal(failing->done_calls, 1);
  assert_int_equal(failing->done_status, -7004);
  assert_ptr_equal(failing->done_result, &failing->payload);
  assert_string_equal(failing->done_message, "in time");
  assert_int_equal(failing->stop_requested_in_done, 0);
  assert_int_equal(ok->done_calls, 1);
  assert_int_equal(ok->done_status, 0);
  assert_ptr_equal(ok->done_result, &ok->payload);
  assert_int_equal(ok->stop_requested_in_done, 0);
  assert_true(ok->done_after_ns < 5000L * MS);
}

/* A queued job cancelled before its timeout gets UVRT_ECANCELED, and its timeout, had it stayed,
 * changes nothing: done runs once, and the loop turned past the deadline. */
static void a_job_cancelled_before_its_timeout_gets_ecanceled(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  (void)fill_pool(fx);
  struct call* c = new_call(fx, fx->rt);
  assert_int_equal(submit_timed(c, 5, 0, NULL), 0);
  const int rc = uvrt_job_cancel(c->handle);
  turn_until_done(fx, c, "a cancelled timed job did not settle");
  arm_watchdog("turning the loop past a dropped deadline");
  while (ns_since(&c->submitted_at) < 10 * MS) uv_run(uvrt_runtime_loop(fx->rt), UV_RUN_NOWAIT);
  disarm_watchdog();
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_int_equal(rc, 0);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ECANCELED);
  assert_int_equal(atomic_load(&c->runs), 0);
}

/* Destroy with timeouts pending (10 s away) on running and queued jobs: the timers are dropped
 * and the jobs follow the teardown's rules: running ones see a stop request and get their own
 * status and result, queued ones UVRT_ECANCELED; every done runs once, and destroy does not wait
 * for the deadlines. */
static void destroy_drops_pending_timeouts_and_follows_the_teardown_rules(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* running[64];
  const int n = fx->pool < 64 ? fx->pool : 64;
  for (int i = 0; i < n; ++i) {
    running[i] = new_call(fx, fx->rt);
    running[i]->hold = true;
    assert_int_equal(submit_timed(running[i], 10000, 1000, NULL), 0);
  }
  assert_true(wait_for(&fx->started, n));
  enum { QUEUED = 3 };
  struct call* queued[QUEUED];
  for (int i = 0; i < QUEUED; ++i) {
    queued[i] = new_call(fx, fx->rt);
    assert_int_equal(submit_timed(queued[i], 10000, i, NULL), 0);
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const int rc = uvrt_runtime_destroy(fx->rt);
  const long took = ns_since(&t0);
  if (rc == 0) fx->rt = NULL;

  assert_int_equal(rc, 0);
  assert_true(took < 5000L * MS);
  for (int i = 0; i < n; ++i) {
    struct call* c = running[i];
    assert_int_equal(c->done_calls, 1);
    assert_int_equal(atomic_load(&c->saw_stop), 1);
    assert_int_equal(c->done_status, 0);
    assert_ptr_equal(c->done_result, &c->payload);
    assert_int_equal(c->stop_requested_in_done, 1);
  }
  for (int i = 0; i < QUEUED; ++i) {
    assert_int_equal(queued[i]->done_calls, 1);
    assert_int_equal(queued[i]->done_status, UVRT_ECANCELED);
    assert_int_equal(atomic_load(&queued[i]->runs), 0);
  }
}

/* Destroy during a grace period (the timeout expired, the work was asked to stop and still takes
 * 100 ms to return): destroy waits for the work like for any running job, and done gets
 * UVRT_ETIMEDOUT once, after the work has returned. The loop is turned without waiting until the
 * stop is requested: a turn that waited could wait for the work's return too. */
static void destroy_during_a_grace_period_waits_for_the_work_and_done_gets_etimedout(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* c = new_call(fx, fx->rt);
  c->hold = true;
  c->spin_ns = 100 * MS;
  assert_int_equal(submit_timed(c, 2, 10000, NULL), 0);
  assert_true(wait_for(&fx->started, 1));
  arm_watchdog("the timeout of a running job did not request a stop");
  while (!uvrt_job_stop_requested(c->handle)) uv_run(uvrt_runtime_loop(fx->rt), UV_RUN_NOWAIT);
  disarm_watchdog();
  const int done_before = c->done_calls;
  const int rc = uvrt_runtime_destroy(fx->rt);
  if (rc == 0) fx->rt = NULL;

  assert_int_equal(rc, 0);
  assert_int_equal(done_before, 0);
  assert_int_equal(c->done_calls, 1);
  assert_int_equal(c->done_status, UVRT_ETIMEDOUT);
  assert_null(c->done_result);
  assert_int_equal(c->finished_in_done, 1);
  assert_int_equal(atomic_load(&c->saw_stop), 1);
}

/* options.reserved_threads against the process's reservation, which the first runtime of this
 * process set: whatever the number, exactly one of UVRT_RESERVED_NONE, 1 .. pool - 1 is accepted
 * and the others are UVRT_EPOOLCONFLICT; 0 (no preference) is always accepted; the pool size or
 * more, and negative numbers other than UVRT_RESERVED_NONE, are UVRT_EPOOLSIZE. */
static void reserved_threads_out_of_range_or_conflicting_is_refused(void** state) {
  (void)state;
  const int pool = uvrt_threadpool_size();
  assert_true(pool > 0);
  const int out_of_range[] = {pool, pool + 1, 1024, 1025, INT_MAX, -2, -1000, INT_MIN};
  for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; ++i) {
    uvrt_options_t options = {.reserved_threads = out_of_range[i]};
    uvrt_runtime_t* rt = (uvrt_runtime_t*)(void*)&sentinel_storage;
    assert_int_equal(uvrt_runtime_create(&rt, &options), UVRT_EPOOLSIZE);
    assert_ptr_equal(rt, (uvrt_runtime_t*)(void*)&sentinel_storage);
  }
  int accepted = 0;
  for (int n = 0; n < pool; ++n) {
    uvrt_options_t options = {.reserved_threads = n == 0 ? UVRT_RESERVED_NONE : n};
    uvrt_runtime_t* rt = NULL;
    const int rc = uvrt_runtime_create(&rt, &options);
    if (rc == 0) {
      ++accepted;
      assert_int_equal(uvrt_runtime_destroy(rt), 0);
    } else {
      assert_int_equal(rc, UVRT_EPOOLCONFLICT);
      assert_null(rt);
    }
  }
  assert_int_equal(accepted, 1);
  uvrt_options_t no_preference = {.reserved_threads = 0};
  uvrt_runtime_t* rt = NULL;
  assert_int_equal(uvrt_runtime_create(&rt, &no_preference), 0);
  assert_int_equal(uvrt_runtime_destroy(rt), 0);
}

static int quick_work_counting(uvrt_job_t* job, void* arg, void** result) {
  (void)job;
  (void)result;
  ++*(int*)arg;
  return 0;
}

/* The cases of reserved_threads that need a process of their own, where the first runtime sets the
 * reservation: run by fresh_process() in this program started again (see main). Each returns the
 * number of the first check that failed, or 0. */
static int create_with(int threadpool_size, int reserved_threads) {
  uvrt_options_t options = {.threadpool_size = threadpool_size, .reserved_threads = reserved_threads};
  uvrt_runtime_t* rt = NULL;
  int rc = uvrt_runtime_create(&rt, &options);
  if (rc == 0) {
    /* A job still runs on the pool's unreserved threads. */
    int ran = 0;
    rc = uvrt_job_submit(rt, NULL, quick_work_counting, NULL, &ran);
    if (rc == 0) rc = uvrt_runtime_run(rt);
    if (rc == 0 && ran != 1) rc = -1;
    const int destroyed = uvrt_runtime_destroy(rt);
    if (rc == 0) rc = destroyed;
  }
  return rc;
}

static int fresh_process(const char* scenario) {
  if (strcmp(scenario, "reserve-1-first") == 0) {
    /* A first runtime reserving 1 of 2 threads sets the process's reservation: 1 and "no
     * preference" are accepted from then on, UVRT_RESERVED_NONE conflicts, 2 is out of range. */
    if (create_with(2, 1) != 0) return 1;
    if (create_with(0, 0) != 0) return 2;
    if (create_with(0, 1) != 0) return 3;
    if (create_with(0, UVRT_RESERVED_NONE) != UVRT_EPOOLCONFLICT) return 4;
    if (create_with(2, 2) != UVRT_EPOOLSIZE) return 5;
    return 0;
  }
  if (strcmp(scenario, "reserve-none-first") == 0) {
    /* UVRT_RESERVED_NONE is the C++ API's 0: it sets "none", and 1 conflicts with it. */
    if (create_with(2, UVRT_RESERVED_NONE) != 0) return 1;
    if (create_with(0, 1) != UVRT_EPOOLCONFLICT) return 2;
    if (create_with(0, 0) != 0) return 3;
    if (create_with(0, UVRT_RESERVED_NONE) != 0) return 4;
    return 0;
  }
  if (strcmp(scenario, "out-of-range-first") == 0) {
    /* Refused before anything is set: a later runtime still sets the reservation. */
    if (create_with(2, 2) != UVRT_EPOOLSIZE) return 1;
    if (create_with(2, -2) != UVRT_EPOOLSIZE) return 2;
    if (create_with(2, 1) != 0) return 3;
    if (create_with(0, UVRT_RESERVED_NONE) != UVRT_EPOOLCONFLICT) return 4;
    return 0;
  }
  return 99;
}

/* Runs fresh_process(scenario) in this program started anew (a fork, then an exec of
 * /proc/self/exe), since the reservation is process-wide and set once: a forked child would
 * inherit this process's. Returns the child's wait status. */
static int run_fresh_process(const char* scenario) {
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(20); /* the default action ends the child: a hang shows as SIGALRM */
    execl("/proc/self/exe", "test_c_api", "--fresh-process", scenario, (char*)NULL);
    _exit(127);
  }
  int status = -1;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

/* reserved_threads in a process of its own: the first runtime's number (1, or UVRT_RESERVED_NONE
 * for none) becomes the process's, "no preference" (0) then takes it, and another number
 * conflicts; a refused first runtime sets nothing. */
static void reserved_threads_set_by_the_first_runtime_in_a_fresh_process(void** state) {
  (void)state;
  const char* scenarios[] = {"reserve-1-first", "reserve-none-first", "out-of-range-first"};
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; ++i) {
    const int status = run_fresh_process(scenarios[i]);
    if (status == -1) fail_msg("%s: fork or waitpid failed", scenarios[i]);
    if (WIFSIGNALED(status)) fail_msg("%s: killed by signal %d (14: it hung)", scenarios[i], WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("%s: check %d failed (127: the exec failed)", scenarios[i], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Error codes */

#define UVRT_TEST_CODE(name, value, text) {UVRT_##name, "UVRT_" #name},
static const struct {
  int code;
  const char* name;
} uvrt_codes[] = {UVRT_ERRNO_MAP(UVRT_TEST_CODE)};
#undef UVRT_TEST_CODE
enum { NCODES = sizeof uvrt_codes / sizeof uvrt_codes[0] };

/* Every UVRT_ code has its own non-empty description and its own name "UVRT_<code>"; 0 is
 * "success" / "OK". */
static void every_uvrt_code_has_a_distinct_description_and_name(void** state) {
  (void)state;
  assert_int_equal(NCODES, 14); /* with UVRT_EQUEUEFULL and UVRT_ETIMEDOUT */
  for (int i = 0; i < NCODES; ++i) {
    const char* text = uvrt_strerror(uvrt_codes[i].code);
    const char* name = uvrt_err_name(uvrt_codes[i].code);
    assert_non_null(text);
    assert_non_null(name);
    assert_true(strlen(text) > 0);
    assert_string_equal(name, uvrt_codes[i].name);
    assert_true(uvrt_codes[i].code < 0);
    assert_true(uvrt_codes[i].code > UVRT_ERRNO_MAX);
    for (int j = 0; j < i; ++j) {
      assert_int_not_equal(uvrt_codes[i].code, uvrt_codes[j].code);
      assert_string_not_equal(text, uvrt_strerror(uvrt_codes[j].code));
      assert_string_not_equal(name, uvrt_err_name(uvrt_codes[j].code));
    }
    assert_string_not_equal(text, uvrt_strerror(0));
  }
  assert_string_equal(uvrt_strerror(0), "success");
  assert_string_equal(uvrt_err_name(0), "OK");
  /* The newest code, UVRT_ERRNO_MAX's neighbour, says what it means. */
  assert_int_equal(UVRT_EQUEUEFULL, UVRT_ERRNO_MAX + 1);
  assert_string_equal(uvrt_err_name(UVRT_EQUEUEFULL), "UVRT_EQUEUEFULL");
  assert_non_null(strstr(uvrt_strerror(UVRT_EQUEUEFULL), "queue is full"));
  /* uvrt's own codes where libuv has one with the same meaning. */
  assert_int_equal(UVRT_EINVAL, UV_EINVAL);
  assert_int_equal(UVRT_ECANCELED, UV_ECANCELED);
  assert_int_equal(UVRT_EBUSY, UV_EBUSY);
  assert_int_equal(UVRT_EALREADY, UV_EALREADY);
  assert_int_equal(UVRT_ENOMEM, UV_ENOMEM);
  assert_int_equal(UVRT_ETIMEDOUT, UV_ETIMEDOUT);
}

/* libuv's codes get libuv's descriptions and names. */
static void libuv_codes_get_libuv_descriptions_and_names(void** state) {
  (void)state;
  assert_string_equal(uvrt_strerror(UV_EIO), uv_strerror(UV_EIO));
  assert_string_equal(uvrt_err_name(UV_EIO), "EIO");
  assert_string_equal(uvrt_err_name(UV_ENOENT), "ENOENT");
  assert_string_equal(uvrt_err_name(UV_EOF), "EOF");
}

/* An unknown code gets "Unknown error N" (naming the code) from both functions, unlike any
 * known code's text, and the same answer on every call. */
static void unknown_codes_get_a_description_naming_the_code(void** state) {
  (void)state;
  const int unknown[] = {12345, UVRT_ERRNO_MAX, -29999, -1000000};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
    char expected[48];
    snprintf(expected, sizeof expected, "Unknown error %d", unknown[i]);
    const char* text = uvrt_strerror(unknown[i]);
    assert_non_null(text);
    assert_string_equal(text, expected);
    const char* name = uvrt_err_name(unknown[i]);
    assert_non_null(name);
    assert_non_null(strstr(name, expected + strlen("Unknown error ")));
    for (int j = 0; j < NCODES; ++j) {
      assert_string_not_equal(uvrt_strerror(unknown[i]), uvrt_strerror(uvrt_codes[j].code));
      assert_string_not_equal(uvrt_err_name(unknown[i]), uvrt_err_name(uvrt_codes[j].code));
    }
  }
}

/* The header promises a static description for negated errno values (a work function may return
 * one and "uvrt_strerror will name it"), also for those libuv has no UV_E* code for (EDOM,
 * ECHILD): not "Unknown error N" in the per-thread buffer that the next unknown code overwrites. */
static void negated_errno_values_libuv_does_not_know_get_static_descriptions(void** state) {
  (void)state;
  const int codes[] = {-EDOM, -ECHILD};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; ++i) {
    const char* text = uvrt_strerror(codes[i]);
    const char* name = uvrt_err_name(codes[i]);
    char text_copy[128], name_copy[128];
    snprintf(text_copy, sizeof text_copy, "%s", text);
    snprintf(name_copy, sizeof name_copy, "%s", name);
    (void)uvrt_strerror(-1000000);  /* would overwrite a per-thread buffer */
    (void)uvrt_err_name(-1000000);
    assert_string_equal(text, text_copy);
    assert_string_equal(name, name_copy);
    assert_null(strstr(text_copy, "Unknown"));
    assert_null(strstr(name_copy, "Unknown"));
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Pool size */

/* A size outside 1..1024 is refused with UVRT_EPOOLSIZE and *runtime is left alone. */
static void out_of_range_pool_size_is_refused_with_epoolsize(void** state) {
  (void)state;
  const int running = uvrt_threadpool_size();
  assert_true(running > 0);
  const int sizes[] = {-1, 1025, -1000000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
    uvrt_options_t options = {.threadpool_size = sizes[i]};
    uvrt_runtime_t* rt = (uvrt_runtime_t*)(void*)&sentinel_storage;
    assert_int_equal(uvrt_runtime_create(&rt, &options), UVRT_EPOOLSIZE);
    assert_ptr_equal(rt, (uvrt_runtime_t*)(void*)&sentinel_storage);
  }
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  uvrt_options_t options = {.threadpool_size = 1025};
  uvrt_runtime_t* rt = NULL;
  const int on_loop_rc = uvrt_runtime_create_on_loop(&rt, &loop, &options);
  const int close_rc = uv_loop_close(&loop);
  assert_int_equal(on_loop_rc, UVRT_EPOOLSIZE);
  assert_null(rt);
  assert_int_equal(close_rc, 0);
  assert_int_equal(uvrt_threadpool_size(), running);
}

/* The pool is process-wide and already running: another size is refused with
 * UVRT_EPOOLCONFLICT, the running size is accepted. */
static void pool_size_must_match_the_running_pool(void** state) {
  struct fixture* fx = *state;
  const int running = uvrt_threadpool_size();
  assert_true(running > 0);
  uvrt_options_t other = {.threadpool_size = running < 1024 ? running + 1 : running - 1};
  uvrt_runtime_t* rt = NULL;
  assert_int_equal(uvrt_runtime_create(&rt, &other), UVRT_EPOOLCONFLICT);
  assert_null(rt);

  uvrt_options_t same = {.threadpool_size = running};
  assert_int_equal(uvrt_runtime_create(&fx->rt, &same), 0);
  assert_non_null(fx->rt);
  struct call* c = new_call(fx, fx->rt);
  assert_int_equal(submit(c, true), 0);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(c->done_status, 0);
  assert_int_equal(uvrt_threadpool_size(), running);
}

/* ------------------------------------------------------------------------------------------- */
/* NULL arguments */

/* Every function given NULL where it needs a pointer returns UVRT_EINVAL (or NULL / 0 for the
 * ones that return those), writes nothing and queues nothing. */
static void null_arguments_are_refused_with_einval_without_crashing(void** state) {
  struct fixture* fx = *state;
  uvrt_options_t options = {.threadpool_size = 0};
  assert_int_equal(uvrt_runtime_create(NULL, NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_runtime_create(NULL, &options), UVRT_EINVAL);

  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  const int on_loop_null_runtime = uvrt_runtime_create_on_loop(NULL, &loop, NULL);
  const int close_rc = uv_loop_close(&loop);
  assert_int_equal(on_loop_null_runtime, UVRT_EINVAL);
  assert_int_equal(close_rc, 0);
  uvrt_runtime_t* rt = NULL;
  assert_int_equal(uvrt_runtime_create_on_loop(&rt, NULL, NULL), UVRT_EINVAL);
  assert_null(rt);
  assert_int_equal(uvrt_runtime_create_on_loop(NULL, NULL, &options), UVRT_EINVAL);

  assert_int_equal(uvrt_runtime_destroy(NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_runtime_run(NULL), UVRT_EINVAL);
  assert_null(uvrt_runtime_loop(NULL));

  struct call* c = new_call(fx, NULL);
  uvrt_job_t* job = SENTINEL;
  const uvrt_job_options_t job_options = UVRT_JOB_OPTIONS_INIT;
  assert_int_equal(uvrt_job_submit(NULL, &job, work, done, c), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit(NULL, NULL, NULL, NULL, NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit_ex(NULL, &job, work, done, c, &job_options), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit_ex(NULL, NULL, NULL, NULL, NULL, NULL), UVRT_EINVAL);
  assert_ptr_equal(job, SENTINEL);
  uvrt_runtime_stats_t stats;
  stats.size = sizeof stats;
  assert_int_equal(uvrt_runtime_stats(NULL, &stats), UVRT_EINVAL);
  assert_int_equal(uvrt_runtime_stats(NULL, NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_job_cancel(NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_job_stop_requested(NULL), 0);
  assert_int_equal(uvrt_job_fail(NULL, UV_EIO, "why"), UVRT_EINVAL);
  assert_int_equal(uvrt_job_fail(NULL, 0, NULL), UVRT_EINVAL);
  assert_null(uvrt_job_message(NULL));
  assert_int_equal(uvrt_job_release(NULL), UVRT_EINVAL);

  /* A NULL work function on a real runtime: refused, nothing queued, *job untouched. */
  assert_int_equal(uvrt_runtime_create(&fx->rt, NULL), 0);
  c->rt = fx->rt;
  assert_int_equal(uvrt_job_submit(fx->rt, &job, NULL, done, c), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit(fx->rt, NULL, NULL, NULL, NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit_ex(fx->rt, &job, NULL, done, c, &job_options), UVRT_EINVAL);
  assert_int_equal(uvrt_job_submit_ex(fx->rt, NULL, NULL, NULL, NULL, NULL), UVRT_EINVAL);
  assert_ptr_equal(job, SENTINEL);
  assert_int_equal(uvrt_runtime_stats(fx->rt, NULL), UVRT_EINVAL);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);
  assert_int_equal(c->done_calls, 0);
  assert_int_equal(atomic_load(&c->runs), 0);
}

/* ------------------------------------------------------------------------------------------- */
/* fork */

/* Reads up to `size` bytes the child wrote to `fd` (then closes it), and reaps the child;
 * returns how many bytes came. */
static size_t read_child(int fd, pid_t pid, void* out, size_t size, int* status) {
  size_t got = 0;
  while (pid > 0 && got < size) {
    const ssize_t n = read(fd, (char*)out + got, size - got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  *status = -1;
  if (pid > 0 && waitpid(pid, status, 0) != pid) *status = -1;
  return got;
}

/* r07 through the C API: in a forked child, with a job of the parent's in flight, the inherited
 * runtime refuses uvrt_job_submit, uvrt_job_submit_ex, uvrt_runtime_stats and uvrt_runtime_run
 * with UVRT_EFORKED (and writes nothing to *job), and uvrt_runtime_destroy returns 0 at once (the
 * child's alarm(5) kills it otherwise). The child reports the codes through a pipe. The parent is unaffected: once the child has
 * ended, its job, released, runs its done callback with status 0. */
static void a_forked_child_gets_eforked_from_the_inherited_runtime(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* held = new_call(fx, fx->rt);
  held->hold = true;
  assert_int_equal(submit(held, true), 0);
  assert_true(wait_for(&fx->started, 1));
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(5); /* the default action ends the child: a hang shows as SIGALRM */
    close(fds[0]);
    uvrt_job_t* job = SENTINEL;
    const uvrt_job_options_t options = UVRT_JOB_OPTIONS_INIT;
    uvrt_runtime_stats_t stats;
    stats.size = sizeof stats;
    int codes[6];
    codes[0] = uvrt_job_submit(fx->rt, &job, work, done, held);
    codes[4] = uvrt_job_submit_ex(fx->rt, &job, work, done, held, &options);
    codes[1] = job == SENTINEL ? 0 : 1;
    codes[5] = uvrt_runtime_stats(fx->rt, &stats);
    codes[2] = uvrt_runtime_run(fx->rt);
    codes[3] = uvrt_runtime_destroy(fx->rt);
    _exit(write(fds[1], codes, sizeof codes) == (ssize_t)sizeof codes ? 0 : 2);
  }
  close(fds[1]);
  int codes[6] = {1, 1, 1, 1, 1, 1};
  int status;
  const size_t got = read_child(fds[0], pid, codes, sizeof codes, &status);
  const bool reaped = status != -1;
  atomic_store(&fx->gate_open, true);
  arm_watchdog("the parent's uvrt_runtime_run after its child destroyed the inherited runtime");
  const int run_rc = uvrt_runtime_run(fx->rt);
  disarm_watchdog();

  assert_true(pid > 0);
  assert_true(reaped);
  if (WIFSIGNALED(status)) fail_msg("the child was killed by signal %d (14: it hung)", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(got, sizeof codes);
  assert_int_equal(codes[0], UVRT_EFORKED);
  assert_int_equal(codes[1], 0);
  assert_int_equal(codes[2], UVRT_EFORKED);
  assert_int_equal(codes[3], 0);
  assert_int_equal(codes[4], UVRT_EFORKED);
  assert_int_equal(codes[5], UVRT_EFORKED);
  assert_int_equal(run_rc, 0);
  assert_int_equal(held->done_calls, 1);
  assert_int_equal(held->done_status, 0);
}

static int quick_work(uvrt_job_t* job, void* arg, void** result) {
  (void)job;
  (void)arg;
  (void)result;
  return 0;
}

static pid_t forked_in_done = -1;

static void forking_done(uvrt_job_t* job, int status, void* result, void* arg) {
  (void)job;
  (void)status;
  (void)result;
  (void)arg;
  fflush(stdout);
  fflush(stderr);
  forked_in_done = fork();
  if (forked_in_done == 0) alarm(5); /* the child: a hang shows as SIGALRM */
}

/* A done callback forks while uvrt_runtime_run turns the loop. In the child, run returns into
 * it: the loop was stopped (it is the parent's) and run says UVRT_EFORKED, not UVRT_EEXCEPTION,
 * which would say a done callback threw; destroy then returns 0. The parent's run returns 0. */
static void a_child_forked_in_a_done_callback_gets_eforked_from_run(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  forked_in_done = -1;
  assert_int_equal(uvrt_job_submit(fx->rt, NULL, quick_work, forking_done, NULL), 0);
  const int run_rc = uvrt_runtime_run(fx->rt);
  if (forked_in_done == 0) {
    close(fds[0]);
    int codes[2] = {run_rc, uvrt_runtime_destroy(fx->rt)};
    _exit(write(fds[1], codes, sizeof codes) == (ssize_t)sizeof codes ? 0 : 2);
  }
  close(fds[1]);
  int codes[2] = {1, 1};
  int status;
  const size_t got = read_child(fds[0], forked_in_done, codes, sizeof codes, &status);

  assert_true(forked_in_done > 0);
  assert_int_equal(run_rc, 0);
  if (WIFSIGNALED(status)) fail_msg("the child was killed by signal %d (14: it hung)", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(got, sizeof codes);
  assert_string_equal(uvrt_err_name(codes[0]), "UVRT_EFORKED");
  assert_int_equal(codes[1], 0);
}

struct fork_from_thread {
  uvrt_job_t* job;
  int code;
  size_t got;
  pid_t pid;
  int status;
};

static void* fork_and_cancel(void* arg) {
  struct fork_from_thread* f = arg;
  int fds[2];
  if (pipe(fds) != 0) return NULL;
  f->pid = fork();
  if (f->pid == 0) {
    alarm(5);
    close(fds[0]);
    const int code = uvrt_job_cancel(f->job);
    _exit(write(fds[1], &code, sizeof code) == (ssize_t)sizeof code ? 0 : 2);
  }
  close(fds[1]);
  f->got = read_child(fds[0], f->pid, &f->code, sizeof f->code, &f->status);
  return NULL;
}

/* fork() on a thread other than the loop thread, with a job of the parent's in flight: the child
 * has no loop thread at all, and cancelling that job there gives UVRT_EFORKED (not UVRT_ETHREAD).
 * The parent's job still settles with its own status. */
static void a_child_forked_on_another_thread_gets_eforked_from_cancel(void** state) {
  struct fixture* fx = fixture_with_runtime(state);
  struct call* held = new_call(fx, fx->rt);
  held->hold = true;
  assert_int_equal(submit(held, true), 0);
  assert_true(wait_for(&fx->started, 1));
  struct fork_from_thread f = {.job = held->handle, .code = 1, .pid = -1, .status = -1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, fork_and_cancel, &f), 0);
  pthread_join(t, NULL);
  atomic_store(&fx->gate_open, true);
  assert_int_equal(uvrt_runtime_run(fx->rt), 0);

  assert_true(f.pid > 0);
  if (WIFSIGNALED(f.status)) fail_msg("the child was killed by signal %d (14: it hung)", WTERMSIG(f.status));
  assert_true(WIFEXITED(f.status));
  assert_int_equal(WEXITSTATUS(f.status), 0);
  assert_int_equal(f.got, sizeof f.code);
  assert_string_equal(uvrt_err_name(f.code), "UVRT_EFORKED");
  assert_int_equal(held->done_calls, 1);
  assert_int_equal(held->done_status, 0);
}

/* The library's version at run time is the one its header gives (both come from meson.build's
 * project()), and the hex value and the string say the same as the components. */
static void version_of_the_library_is_the_header_s_in_both_forms(void** state) {
  char expected[32];
  (void)state;
  assert_in_range(UVRT_VERSION_MINOR, 0, 255);
  assert_in_range(UVRT_VERSION_PATCH, 0, 255);
  assert_int_equal(UVRT_VERSION_HEX,
                   ((unsigned)UVRT_VERSION_MAJOR << 16) | ((unsigned)UVRT_VERSION_MINOR << 8) |
                       (unsigned)UVRT_VERSION_PATCH);
  assert_int_equal(uvrt_version(), UVRT_VERSION_HEX);
  snprintf(expected, sizeof expected, "%d.%d.%d", UVRT_VERSION_MAJOR, UVRT_VERSION_MINOR,
           UVRT_VERSION_PATCH);
  assert_string_equal(UVRT_VERSION_STRING, expected);
  assert_non_null(uvrt_version_string());
  assert_string_equal(uvrt_version_string(), UVRT_VERSION_STRING);
  assert_ptr_equal(uvrt_version_string(), uvrt_version_string()); /* static, not rebuilt per call */
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* `test_c_api --fresh-process SCENARIO` runs one of fresh_process's cases instead of the tests. */
int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--fresh-process") == 0) return fresh_process(argv[2]);
  const struct CMUnitTest tests[] = {
      TEST(submitted_job_delivers_its_result_and_arg_to_done_on_the_loop_thread),
      TEST(jobs_without_handle_or_done_callback_still_run),
      TEST(failed_job_reports_its_code_and_message_once_settled),
      TEST(job_fail_with_null_message_clears_the_earlier_message),
      TEST(job_fail_refuses_code_0_and_callers_other_than_its_work_function),
      TEST(cancel_of_a_queued_job_returns_0_and_it_never_runs),
      TEST(cancelling_a_queued_job_twice_returns_0_twice_and_done_runs_once),
      TEST(cancel_of_a_running_job_returns_ebusy_and_requests_a_stop),
      TEST(cancelling_a_running_job_twice_returns_ebusy_twice_and_keeps_its_result),
      TEST(cancel_after_completion_returns_ealready_also_inside_done),
      TEST(release_before_completion_still_runs_done_with_a_valid_job),
      TEST(release_inside_done_is_allowed_and_the_job_stays_valid_until_done_returns),
      TEST(handles_stay_valid_after_their_runtime_is_destroyed),
      TEST(destroy_with_work_in_flight_settles_every_job_exactly_once),
      TEST(destroy_after_the_work_returned_still_requests_a_stop_before_done),
      TEST(destroy_inside_done_returns_ebusy_and_the_runtime_stays_usable),
      TEST(run_inside_done_returns_ebusy),
      TEST(calls_from_another_thread_return_ethread_and_change_nothing),
      TEST(calls_from_a_work_function_return_ethread),
      TEST(a_runtime_belongs_to_the_thread_that_created_it),
      TEST(embedded_runtime_runs_jobs_on_the_application_loop_and_leaves_it_closable),
      TEST(run_or_destroy_of_another_runtime_on_the_loop_from_a_done_callback_returns_ebusy),
      TEST(every_uvrt_code_has_a_distinct_description_and_name),
      TEST(libuv_codes_get_libuv_descriptions_and_names),
      TEST(unknown_codes_get_a_description_naming_the_code),
      TEST(negated_errno_values_libuv_does_not_know_get_static_descriptions),
      TEST(out_of_range_pool_size_is_refused_with_epoolsize),
      TEST(pool_size_must_match_the_running_pool),
      TEST(null_arguments_are_refused_with_einval_without_crashing),
      TEST(a_forked_child_gets_eforked_from_the_inherited_runtime),
      TEST(a_child_forked_in_a_done_callback_gets_eforked_from_run),
      TEST(a_child_forked_on_another_thread_gets_eforked_from_cancel),
      TEST(limiter_calls_refuse_null_and_zero_tokens),
      TEST(job_options_of_the_wrong_size_are_refused_with_einval),
      TEST(a_limiter_of_3_tokens_never_runs_more_than_3_of_100_jobs_at_once),
      TEST(a_job_waiting_for_a_token_cancelled_gets_ecanceled_and_never_runs),
      TEST(destroying_a_runtime_cancels_its_jobs_waiting_for_a_token),
      TEST(destroying_a_limiter_in_use_returns_ebusy_until_its_jobs_are_done),
      TEST(set_tokens_from_another_thread_starts_a_waiting_job),
      TEST(submit_beyond_max_queued_returns_equeuefull_and_never_calls_done),
      TEST(runtime_stats_count_what_the_runtime_did),
      TEST(etimedout_is_libuvs_code_with_uvrts_name_and_description),
      TEST(job_options_of_the_uvrt_h_before_timeouts_are_accepted_and_read_no_further),
      TEST(a_queued_job_whose_timeout_expires_never_runs_and_done_gets_etimedout),
      TEST(a_job_waiting_for_a_token_whose_timeout_expires_never_runs_and_done_gets_etimedout),
      TEST(a_running_job_whose_timeout_expires_is_asked_to_stop_and_done_gets_etimedout),
      TEST(with_grace_0_done_gets_etimedout_at_once_and_the_late_outcome_is_dropped),
      TEST(with_grace_done_gets_etimedout_when_the_stopped_work_returns),
      TEST(a_grace_period_of_uint64_max_waits_for_the_stopped_work),
      TEST(with_grace_done_gets_etimedout_at_its_end_if_the_work_still_runs),
      TEST(a_job_that_returns_before_its_timeout_gets_its_own_outcome),
      TEST(a_job_cancelled_before_its_timeout_gets_ecanceled),
      TEST(destroy_drops_pending_timeouts_and_follows_the_teardown_rules),
      TEST(destroy_during_a_grace_period_waits_for_the_work_and_done_gets_etimedout),
      TEST(reserved_threads_out_of_range_or_conflicting_is_refused),
      TEST(reserved_threads_set_by_the_first_runtime_in_a_fresh_process),
      cmocka_unit_test(version_of_the_library_is_the_header_s_in_both_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
