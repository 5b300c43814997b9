/* A libFuzzer target for the C API (<uvrt.h>): the input is a little program of C API calls,
 * run on this thread, on a helper thread and from the pool's work functions, with the contract of
 * uvrt.h and README.md ("From C") checked after every call. A violation prints what happened and
 * calls abort(), which libFuzzer reports as a crash; AddressSanitizer, UndefinedBehaviorSanitizer
 * and LeakSanitizer report the rest. tests/fuzz/replay.c feeds the committed corpus to the same
 * function in the ordinary test suite, so every build checks it.
 *
 * The bytecode. The input is read one byte at a time; reading past its end gives 0. Each op is
 * one byte b, then its operands: ops 0 to 18 are b % 19, and an op added after those is the byte
 * of its own number only (19: TIMEOUT), so that inputs written before it existed decode as they
 * did (only a byte 19, which no committed input has as an op, changed its meaning). At most MAX_OPS ops run; then everything is torn
 * down and checked (see finish). A "runtime selector" picks one of the live runtimes, in creation
 * order (b % count), or NULL (b == 0xff, or none live); a "handle selector" likewise picks one
 * of the job handles the harness still holds, in submission order, or NULL.
 *
 *   0 CREATE  how opts     how % 4: own loop / application loop A / application loop B / NULL
 *                          loop (create_on_loop refuses it); how & 0x80: NULL runtime out-param.
 *                          opts % 10: NULL, {0}, {running pool size}, {-1}, {1025}, {INT_MIN},
 *                          {INT_MAX}, {another valid size}, {1024}, {1}. Skipped with 6 live.
 *   1 SUBMIT  rt work code flags done [p_job] [p_rt] [p_child]
 *                          work % N_WORK: the work function's behaviour (enum work_kind);
 *                          code: which nonzero status it returns, where it returns one;
 *                          flags: 1 NULL job out-param, 2 NULL done, 4 NULL work;
 *                          done: what the done callback does after checking what it got (enum
 *                          done_action bits); p_job if it cancels or releases another handle,
 *                          p_rt (0: its own runtime, 0xff: NULL, else selector + 1) if it submits, runs or
 *                          destroys, p_child (the submitted job's work and actions) if it submits.
 *   2 CANCEL  handle       uvrt_job_cancel
 *   3 RELEASE handle       uvrt_job_release
 *   4 UVRUN   rt mode      uv_run(uvrt_runtime_loop(rt), mode % 3: NOWAIT / ONCE / DEFAULT), as an
 *                          application on its own loop would; ONCE only with a job in flight.
 *   5 RUN     rt           uvrt_runtime_run
 *   6 DESTROY rt           uvrt_runtime_destroy (with whatever is in flight)
 *   7 GATE    b            b & 1: open / close the gate that HOLD work functions wait at
 *   8 WAIT    job mode     any job record (job % count): wait until its work started (mode
 *                          even) or finished (odd), unless it cannot (queued behind a pool
 *                          full of held jobs, cancelled, waiting for a token, ...): no
 *                          unbounded waits. A job that has not started within START_GRACE_NS
 *                          is left too: a runtime gets a carrier for its queue as its loop
 *                          turns (waiting for a pool slot, or after its carriers' time slice
 *                          ended), and no loop turns during a WAIT.
 *   9 QUERY   handle       uvrt_job_message, uvrt_job_stop_requested, uvrt_job_fail off the pool
 *  10 HELPER               the next op runs on the helper thread, synchronously: runtimes it
 *                          creates belong to it, and this thread's objects give it UVRT_ETHREAD
 *  11 ERRSTR  b0 b1 b2 b3  uvrt_strerror and uvrt_err_name of that int (little-endian)
 *  12 POOL    rt           uvrt_threadpool_size, uvrt_runtime_loop
 *  13 BURST   rt n work    submit 33 + n % 16 jobs with handles, whose done callbacks take 15 us
 *                          each, and wait until their work functions have returned (as WAIT
 *                          does, up to the first that does not start): the next turn
 *                          of the loop settles two slices of them (16 each) and leaves the rest in
 *                          the runtime's backlog (arrived, not settled: cancel gives UVRT_EBUSY).
 *                          Once per input (the others are skipped), to keep inputs fast.
 *  14 TIMER   rt act p     an application's uv_timer_t (timeout 0) on the runtime's loop, whose
 *                          callback, whenever the loop runs it, submits to the runtime (act % 6
 *                          == 1), cancels (2) or releases (3) handle p, or runs (4) or destroys
 *                          (5) runtime p. Left open: destroy closes the ones on a runtime's own
 *                          loop, the end of the input the others.
 *  15 LIMITER act n        act % 4: 0 uvrt_limiter_create with n % 4 tokens (0: UVRT_EINVAL;
 *                          act & 0x80: NULL out-param; skipped once MAX_LIMITERS were made),
 *                          1 uvrt_limiter_destroy, 2 uvrt_limiter_set_tokens(n / 4 % 4), 3 the
 *                          getters, of the limiter picked by n (a "limiter selector", like a
 *                          runtime selector; for 2, by n % 4 only).
 *  16 SUBMITX lim how + SUBMIT's operands
 *                          uvrt_job_submit_ex with options by how % 6: NULL, {size, NULL},
 *                          {size, limiter lim}, a size one byte short (UVRT_EINVAL), a larger
 *                          struct with a zero tail (accepted), with a nonzero tail (UVRT_EINVAL).
 *                          A limiter whose jobs may still be in flight on another loop is not
 *                          passed (NULL instead): its token could come back only when that loop
 *                          turns, which the harness may never do while it turns this one. Jobs a
 *                          done callback submits (D_SUBMIT) inherit their parent's limiter, by
 *                          the same rule.
 *  17 CREATEX how opts ext CREATE with ext % 7 choosing reserved_threads (0, UVRT_RESERVED_NONE,
 *                          1, pool size, -2, INT_MAX, INT_MIN) and ext / 7 % 4 max_queued
 *                          (0, 1, 2, 4).
 *  18 STATS   rt how       uvrt_runtime_stats, how % 4: sizeof, a size too small (UVRT_EINVAL),
 *                          NULL stats (UVRT_EINVAL), a larger struct (its tail zeroed).
 *  19 TIMEOUT lim t + SUBMIT's operands
 *                          uvrt_job_submit_ex with a timeout: timeout_ms by t % 4 (1, 2, 5, 20),
 *                          grace_ms by t / 4 % 4 (0, 1, 5, 50), and after its work kind's
 *                          behaviour the work function spins t / 16 % 4 (0, 1, 5, 20) ms more,
 *                          ignoring stop requests, so that some jobs outlive their timeout and
 *                          grace period; t & 0x40: the options struct of the uvrt.h before
 *                          timeouts (its size ends at `limiter`; the timeout bytes after it are
 *                          set, and must not be read: no timeout); t & 0x80: no limiter, else the
 *                          one lim picks (by SUBMITX's rule).
 *
 * What is checked: each return code against the ones the header documents for that call in that
 * situation (exactly, where the harness can know it; a set where timing decides, e.g. cancel of a
 * job that may just have started: 0 or UVRT_EBUSY); out-params untouched on error; every done
 * callback exactly once per submitted job, on its runtime's thread, only from inside a call that
 * turns the loop (never from submit, cancel or release), with the job, arg, status, result and
 * message the work function's behaviour and the harness's calls imply (cancel returned 0 => the
 * work never ran and the status is UVRT_ECANCELED; the work ran => its own status and result; a
 * job that never ran was cancelled or its runtime destroyed); after uvrt_runtime_run, uv_run
 * DEFAULT or destroy, every job on that loop has settled; running jobs see a stop request from
 * cancel (UVRT_EBUSY) and from destroy, and destroy returns without the gate being opened; handles
 * stay usable after their runtime is gone; an application loop closes (uv_loop_close 0) once its
 * runtimes are destroyed; nothing leaks. Limiters: uvrt_limiter_destroy is UVRT_EBUSY while a job
 * of the limiter surely holds or waits for a token (running, or neither started nor cancelled), 0
 * once all of them settled, either in between; its getters agree with what the harness did.
 * max_queued: a submit may be refused with UVRT_EQUEUEFULL only while at least max_queued of the
 * runtime's jobs have not started (an upper bound of those waiting). uvrt_runtime_stats: the
 * runtime's submissions counted exactly, settled and cancelled jobs within what the done
 * callbacks saw, the gauges within the jobs in flight, latencies ordered. Timeouts: UVRT_ETIMEDOUT
 * only for a job with a timeout, never before it (nor, for a job whose work still runs, before
 * the end of its grace period), with no result and no message; then the work, if it ran, saw a
 * stop request (if it never ran, nobody asked it to stop); a job whose done got UVRT_ETIMEDOUT
 * while its work ran is not settled again when the work returns, still counts against its
 * limiter until then, and the loop's run and destroy still wait for it; any other status follows
 * the rules above (a timeout that did not expire changes nothing).
 *
 * Re-entry is guarded per loop, not per runtime: inside any done callback on a loop (of any
 * runtime on it, whether uvrt_runtime_run, destroy or the application's uv_run turns the loop),
 * and inside uvrt_runtime_run or destroy of a runtime on it (the application's timers, there),
 * run and destroy of every runtime on that loop return UVRT_EBUSY and change nothing. So two or
 * three runtimes on one application loop whose done callbacks run or destroy each other are
 * checked like one runtime's callbacks are; run and destroy of a runtime on another loop turn
 * that loop, nested.
 *
 * Only valid pointers or NULL reach uvrt: a freed handle or runtime is outside the contract, so
 * the harness only picks what it still owns. It also never asks for what the contract leaves
 * undefined: turning a loop from the application's own callbacks (the TIMER op's) while the
 * application turns it, or turning a loop from a thread that does not own it.
 *
 * The pool is process-wide and sized once: LLVMFuzzerInitialize starts it with 2 threads
 * (UV_THREADPOOL_SIZE, if set, instead), so that two HOLD jobs fill it and later ones queue, and
 * reserves none of them (UVRT_RESERVED_NONE, whatever uvrt's default), which every CREATEX's
 * reserved_threads is then checked against.
 * Work functions never sleep; HOLD waits for the gate or a stop request (at most HOLD_SECONDS,
 * then it reports a harness or uvrt bug), the others spin a few thousand times at most.
 *
 * UVRT_FUZZ_TRACE=1 in the environment prints each op to stderr, for reading a reproducer. */
#include <uvrt.h>

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

enum {
  MAX_OPS = 256,
  MAX_RUNTIMES = 8, /* records per input, live or destroyed */
  MAX_LIVE = 6,
  MAX_JOBS = 128,   /* records per input, refused submissions included */
  MAX_TIMERS = 8,
  MAX_LIMITERS = 4, /* records per input, live or destroyed */
  SLOW_DONE_NS = 15000, /* 16 of them exceed the 0.2 ms slice */
  APP_LOOPS = 2,
  MAX_GENERATION = 3, /* jobs submitted from done callbacks, from done callbacks... */
  HOLD_SECONDS = 5,
  WAIT_SECONDS = 2,
  START_GRACE_NS = 10000000, /* how long WAIT waits for a job to start while no loop turns */
};

enum op {
  OP_CREATE, OP_SUBMIT, OP_CANCEL, OP_RELEASE, OP_UVRUN, OP_RUN, OP_DESTROY, OP_GATE, OP_WAIT,
  OP_QUERY, OP_HELPER, OP_ERRSTR, OP_POOL, OP_BURST, OP_TIMER, OP_LIMITER, OP_SUBMITX, OP_CREATEX,
  OP_STATS, N_OPS_BEFORE_TIMEOUT, OP_TIMEOUT = N_OPS_BEFORE_TIMEOUT, N_OPS
};

enum work_kind {
  W_OK,         /* result = &payload, return 0 */
  W_CODE,       /* return a nonzero code, result = &payload */
  W_FAIL,       /* return uvrt_job_fail(job, code, message) */
  W_POLL,       /* poll uvrt_job_stop_requested a bounded number of times: UVRT_ECANCELED or 0 */
  W_HOLD,       /* wait for the gate or a stop request: UVRT_ECANCELED if stopped, else 0 */
  W_SPIN,       /* a short busy loop, return 0 */
  W_OK_NULL,    /* return 0 without storing a result */
  W_FAIL_CLEAR, /* fail with a message, then with NULL: the code, no message */
  W_FAIL_BAD,   /* uvrt_job_fail(job, 0, ...) and uvrt_job_fail(NULL, ...): UVRT_EINVAL; return 0 */
  W_PROBE,      /* the loop-thread calls from a pool thread: UVRT_ETHREAD; return 0 */
  W_FAIL_TWICE, /* two messages: the second one is the job's */
  N_WORK
};

enum done_action {
  D_CANCEL_SELF = 1,    /* UVRT_EALREADY */
  D_FAIL = 2,           /* uvrt_job_fail from the loop thread: UVRT_ETHREAD */
  D_RELEASE_SELF = 4,   /* release the harness's handle; the job stays valid during done */
  D_CANCEL_OTHER = 8,   /* cancel a handle picked by p_job */
  D_SUBMIT = 16,        /* submit a job (p_child) to the runtime picked by p_rt */
  D_RUN = 32,           /* uvrt_runtime_run of the runtime picked by p_rt */
  D_DESTROY = 64,       /* uvrt_runtime_destroy of the runtime picked by p_rt */
  D_RELEASE_OTHER = 128 /* release a handle picked by p_job ^ 0x55 */
};

/* What a child job's done callback does, by p_child >> 4. */
static const uint8_t child_actions[16] = {
    0, 0, D_CANCEL_SELF, D_RELEASE_SELF, D_SUBMIT, D_RUN, D_DESTROY, D_CANCEL_OTHER,
    D_SUBMIT | D_RELEASE_SELF, D_FAIL, D_RUN | D_DESTROY, D_RELEASE_OTHER, D_SUBMIT | D_CANCEL_OTHER,
    D_CANCEL_SELF | D_FAIL | D_RELEASE_SELF, D_SUBMIT | D_RUN, D_DESTROY | D_SUBMIT,
};

/* The nonzero statuses work functions return, by the code operand. */
static const int work_codes[] = {UV_EIO,        UVRT_ECANCELED, UVRT_EBUSY, -1,         1,
                                 INT_MIN,       INT_MAX,        -7001,      UVRT_EEXCEPTION,
                                 UVRT_ETHREAD,  UV_ENOENT,      12345};

enum role { ROLE_WORKER, ROLE_MAIN, ROLE_HELPER }; /* pool threads are left at 0 */
static _Thread_local int role;

struct rt_rec {
  int id;
  uvrt_runtime_t* rt;
  uv_loop_t* loop; /* uvrt_runtime_loop(rt) */
  int app;         /* the application loop's index, or -1 for a loop of its own */
  int owner;       /* ROLE_MAIN or ROLE_HELPER: the thread that created it */
  bool live;
  bool closing;    /* destroy is running */
  int depth;       /* > 0 while run or destroy runs, or one of its done callbacks */
  size_t max_queued;
  uint64_t accepted; /* submissions that returned 0 */
};

struct lim_rec {
  int id;
  uvrt_limiter_t* lim;
  size_t tokens;
  bool live;
  uv_loop_t* loop; /* the loop its jobs were last submitted to */
};

struct job {
  int id;
  int generation;
  /* Set before uvrt_job_submit, read by the work function too. */
  struct rt_rec* rt;
  uvrt_runtime_t* runtime; /* rt->rt, for the work function (the record may change meanwhile) */
  uv_loop_t* loop;
  struct lim_rec* lim;     /* the limiter it was submitted with, or NULL */
  uvrt_limiter_t* limiter; /* lim->lim, for the work function */
  bool token_at_submit;    /* it got its limiter's token inside submit, without waiting */
  int owner;
  int kind;
  int code;
  uint8_t actions, p_job, p_rt, p_child;
  bool has_done;
  bool want_handle;
  bool slow_done;       /* done spins SLOW_DONE_NS, so that a burst overflows the slice */
  uint64_t timeout_ms;  /* the timeout uvrt was given (0: none), and its grace period */
  uint64_t grace_ms;
  long slow_ns;         /* the work function spins this long at its end, ignoring stop requests */
  struct timespec submitted_at; /* just before uvrt_job_submit_ex */
  /* The loop thread's view. */
  bool submitted;
  uvrt_job_t* handle;   /* as submit returned it (kept after release, for comparisons) */
  bool held;            /* the harness still owns the handle */
  int done_calls;
  bool in_done;
  int status;
  void* result;
  bool cancel0;         /* uvrt_job_cancel returned 0 */
  bool cancel_busy;     /* ... UVRT_EBUSY */
  bool settled_known;   /* a run to completion or destroy happened since it was submitted */
  bool unsettled_at_destroy;
  /* Written by the work function; read on the loop thread after the job settled. */
  atomic_int started;
  atomic_int finished;
  atomic_int holding;
  atomic_int work_rc;
  uvrt_job_t* work_job;
  void* work_result;
  bool has_message;
  char message[48];     /* what the job's message must be */
  const char* first_message; /* the first non-NULL uvrt_job_message (loop thread) */
  char scratch[48];     /* given to uvrt_job_fail, then overwritten: it must have been copied */
  int payload;
};

struct timer {
  uv_timer_t handle;
  struct rt_rec* rt;
  uv_loop_t* loop;
  uint8_t act, p;
  bool closed;       /* by uvrt's destroy (a runtime's own loop) or the harness */
};

static struct {
  int nrts, njobs, ops, ntimers, nlims;
  bool burst_done;
  struct timer* timers[MAX_TIMERS];
  struct rt_rec rts[MAX_RUNTIMES];
  struct lim_rec lims[MAX_LIMITERS];
  struct job jobs[MAX_JOBS];
  uv_loop_t* app_loops[APP_LOOPS];
  int api_depth; /* > 0 inside submit, cancel, release: no done callback may run then */
  uv_loop_t* active[16]; /* loops being turned, innermost last */
  int nactive;
} S;

static int pool;
static atomic_int gate_open;
static atomic_int hold_timeouts;
static int trace;
static const uint8_t* in_p;
static size_t in_n;

/* A value no handle or runtime can have: "not written". */
static max_align_t sentinel_storage;
#define SENTINEL_JOB ((uvrt_job_t*)(void*)&sentinel_storage)
#define SENTINEL_RT ((uvrt_runtime_t*)(void*)&sentinel_storage)

#define CHECK(cond, ...)                                          \
  do {                                                            \
    if (!(cond)) violated(__LINE__, #cond, __VA_ARGS__);          \
  } while (0)

static void violated(int line, const char* cond, const char* fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

static void violated(int line, const char* cond, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_c_api.c:%d: contract violated (%s): ", line, cond);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static void tracef(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void tracef(const char* fmt, ...) {
  if (!trace) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%*s%s", 2 * S.nactive, "", role == ROLE_HELPER ? "[helper] " : "");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static uint8_t next_byte(void) {
  if (in_n == 0) return 0;
  --in_n;
  return *in_p++;
}

/* ------------------------------------------------------------------------------------------- */
/* Expected return codes */

struct codes {
  int n;
  int v[6];
};

static void allow(struct codes* c, int code) {
  for (int i = 0; i < c->n; ++i)
    if (c->v[i] == code) return;
  c->v[c->n++] = code;
}

static void expect_rc(const char* call, int rc, const struct codes* ok) {
  for (int i = 0; i < ok->n; ++i)
    if (rc == ok->v[i]) return;
  char list[160] = "";
  for (int i = 0; i < ok->n; ++i) {
    size_t len = strlen(list);
    snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", uvrt_err_name(ok->v[i]));
  }
  violated(__LINE__, "documented return code", "%s returned %d (%s); expected %s", call, rc, uvrt_err_name(rc), list);
}

/* ------------------------------------------------------------------------------------------- */
/* The helper thread: runs one function at a time for the fuzzing thread, which waits meanwhile,
 * so the harness's state is never touched by two threads at once. Both sides spin briefly before
 * sleeping: a futex wake-up per side would cost more than most ops. */

static pthread_mutex_t helper_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_cond = PTHREAD_COND_INITIALIZER;
static void (*helper_fn)(void*);
static void* helper_arg;
static atomic_int helper_state; /* 0 idle, 1 asked, 2 done */

static long elapsed_ns(const struct timespec* t0) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t0->tv_sec) * 1000000000L + (now.tv_nsec - t0->tv_nsec);
}

static void* helper_main(void* unused) {
  (void)unused;
  role = ROLE_HELPER;
  for (;;) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&helper_state) != 1 && elapsed_ns(&t0) < 100000) sched_yield();
    pthread_mutex_lock(&helper_mutex);
    while (atomic_load(&helper_state) != 1) pthread_cond_wait(&helper_cond, &helper_mutex);
    pthread_mutex_unlock(&helper_mutex);
    helper_fn(helper_arg);
    atomic_store(&helper_state, 2);
  }
  return NULL;
}

/* Runs fn(arg) on the thread with role `who`, which is this one or the helper. */
static void run_as(int who, void (*fn)(void*), void* arg) {
  if (who == role) {
    fn(arg);
    return;
  }
  CHECK(who == ROLE_HELPER && role == ROLE_MAIN, "run_as(%d) from role %d", who, role);
  helper_fn = fn;
  helper_arg = arg;
  pthread_mutex_lock(&helper_mutex);
  atomic_store(&helper_state, 1);
  pthread_cond_signal(&helper_cond);
  pthread_mutex_unlock(&helper_mutex);
  while (atomic_load(&helper_state) != 2) sched_yield();
  atomic_store(&helper_state, 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Picking runtimes and handles */

static struct rt_rec* pick_rt(uint8_t b) {
  int live[MAX_RUNTIMES], n = 0;
  for (int i = 0; i < S.nrts; ++i)
    if (S.rts[i].live) live[n++] = i;
  return b == 0xff || n == 0 ? NULL : &S.rts[live[b % n]];
}

static struct job* pick_handle(uint8_t b) {
  int held[MAX_JOBS], n = 0;
  for (int i = 0; i < S.njobs; ++i)
    if (S.jobs[i].held) held[n++] = i;
  return b == 0xff || n == 0 ? NULL : &S.jobs[held[b % n]];
}

static bool loop_active(const uv_loop_t* loop) {
  for (int i = 0; i < S.nactive; ++i)
    if (S.active[i] == loop) return true;
  return false;
}

static void push_loop(uv_loop_t* loop) {
  CHECK(S.nactive < (int)(sizeof S.active / sizeof S.active[0]), "loops nested too deep");
  S.active[S.nactive++] = loop;
}

static void pop_loop(void) { --S.nactive; }

/* The job's done callback got UVRT_ETIMEDOUT: its work may still run and write its fields. */
static bool timed_out(const struct job* j) { return j->done_calls > 0 && j->status == UVRT_ETIMEDOUT; }

/* What the job's message is once it has settled. */
static const char* expected_message(const struct job* j) {
  if (timed_out(j)) return NULL; /* dropped with the outcome */
  return atomic_load(&j->started) && j->has_message ? j->message : NULL;
}

/* Also reads the first message it saw again: the string lives until the handle ends, i.e. while
 * the harness holds the handle or the job's done callback runs (AddressSanitizer reports it if
 * it was freed sooner). */
static void check_message(struct job* j, const char* got, const char* when) {
  /* A job with a timeout and no done callback may have timed out unseen: no message then. */
  if (got == NULL && j->timeout_ms != 0 && !j->has_done) return;
  const char* want = expected_message(j);
  if (!want) CHECK(got == NULL, "job %d %s: uvrt_job_message gave \"%s\", expected NULL", j->id, when, got);
  else CHECK(got && strcmp(got, want) == 0, "job %d %s: uvrt_job_message gave \"%s\", expected \"%s\"", j->id, when, got ? got : "(null)", want);
  if (!j->first_message) j->first_message = got;
  if (j->first_message && (j->held || j->in_done))
    CHECK(strcmp(j->first_message, want) == 0, "job %d %s: the message read earlier changed", j->id, when);
}

/* Every job on `loop` has settled: a run to completion or a destroy has just returned. */
static void all_settled_on(const uv_loop_t* loop, const struct rt_rec* only, const char* after) {
  for (int i = 0; i < S.njobs; ++i) {
    struct job* j = &S.jobs[i];
    if (!j->submitted || (only ? j->rt != only : j->loop != loop)) continue;
    j->settled_known = true;
    if (j->has_done) CHECK(j->done_calls == 1, "job %d: done ran %d times after %s returned", j->id, j->done_calls, after);
    if (atomic_load(&j->started)) CHECK(atomic_load(&j->finished), "job %d still running after %s returned", j->id, after);
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Work functions (on pool threads) */

static void spin(int n) {
  for (volatile int i = 0; i < n; ++i) {
  }
}

static void on_done(uvrt_job_t* job, int status, void* result, void* arg);

static int work(uvrt_job_t* job, void* arg, void** result) {
  struct job* j = arg;
  CHECK(role == ROLE_WORKER, "a work function ran on the harness's thread %d", role);
  CHECK(atomic_fetch_add(&j->started, 1) == 0, "job %d: its work function ran twice", j->id);
  CHECK(*result == NULL, "job %d: *result is not NULL on entry", j->id);
  j->work_job = job;
  void* res = &j->payload;
  int rc = 0;
  switch (j->kind) {
    case W_OK:
      break;
    case W_CODE:
      rc = j->code;
      break;
    case W_FAIL:
    case W_FAIL_TWICE:
    case W_FAIL_CLEAR: {
      snprintf(j->scratch, sizeof j->scratch, "job %d failed with %d", j->id, j->code);
      snprintf(j->message, sizeof j->message, "%s", j->scratch);
      rc = uvrt_job_fail(job, j->code, j->scratch);
      CHECK(rc == j->code, "job %d: uvrt_job_fail returned %d, not its code %d", j->id, rc, j->code);
      memset(j->scratch, 'x', sizeof j->scratch - 1); /* it must have been copied */
      j->has_message = true;
      if (j->kind == W_FAIL_TWICE) {
        snprintf(j->scratch, sizeof j->scratch, "job %d, second reason", j->id);
        snprintf(j->message, sizeof j->message, "%s", j->scratch);
        rc = uvrt_job_fail(job, j->code, j->scratch);
        memset(j->scratch, 'y', sizeof j->scratch - 1);
      } else if (j->kind == W_FAIL_CLEAR) {
        rc = uvrt_job_fail(job, j->code, NULL);
        j->has_message = false;
      }
      CHECK(rc == j->code, "job %d: uvrt_job_fail returned %d, not its code %d", j->id, rc, j->code);
      break;
    }
    case W_POLL:
      for (int i = 0; i < 300; ++i) {
        if (uvrt_job_stop_requested(job)) {
          rc = UVRT_ECANCELED;
          break;
        }
        spin(8);
      }
      break;
    case W_HOLD: {
      atomic_store(&j->holding, 1);
      struct timespec t0, now;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      for (unsigned i = 1; !atomic_load(&gate_open); ++i) {
        if (uvrt_job_stop_requested(job)) {
          rc = UVRT_ECANCELED;
          break;
        }
        sched_yield();
        if (i % 256 == 0) {
          clock_gettime(CLOCK_MONOTONIC, &now);
          if (now.tv_sec - t0.tv_sec > HOLD_SECONDS) {
            atomic_fetch_add(&hold_timeouts, 1);
            break;
          }
        }
      }
      atomic_store(&j->holding, 0);
      break;
    }
    case W_SPIN:
      spin(1000);
      break;
    case W_OK_NULL:
      res = NULL;
      break;
    case W_FAIL_BAD:
      CHECK(uvrt_job_fail(job, 0, "a failure without a code") == UVRT_EINVAL, "job %d: uvrt_job_fail(job, 0) is not UVRT_EINVAL", j->id);
      CHECK(uvrt_job_fail(NULL, UV_EIO, "no job") == UVRT_EINVAL, "uvrt_job_fail(NULL) is not UVRT_EINVAL");
      CHECK(uvrt_job_fail(NULL, 0, NULL) == UVRT_EINVAL, "uvrt_job_fail(NULL, 0) is not UVRT_EINVAL");
      break;
    case W_PROBE: {
      uvrt_job_t* h = SENTINEL_JOB;
      int r = uvrt_job_submit(j->runtime, &h, work, on_done, j);
      CHECK(r == UVRT_ETHREAD && h == SENTINEL_JOB, "job %d: submit from a work function gave %d", j->id, r);
      r = uvrt_job_submit(j->runtime, NULL, NULL, NULL, NULL);
      CHECK(r == UVRT_ETHREAD || r == UVRT_EINVAL, "job %d: submit(NULL work) from a work function gave %d", j->id, r);
      CHECK((r = uvrt_runtime_run(j->runtime)) == UVRT_ETHREAD, "job %d: run from a work function gave %d", j->id, r);
      CHECK((r = uvrt_runtime_destroy(j->runtime)) == UVRT_ETHREAD, "job %d: destroy from a work function gave %d", j->id, r);
      CHECK((r = uvrt_job_cancel(job)) == UVRT_ETHREAD, "job %d: cancel from its work function gave %d", j->id, r);
      CHECK((r = uvrt_job_release(job)) == UVRT_ETHREAD, "job %d: release from its work function gave %d", j->id, r);
      CHECK(uvrt_job_message(job) == NULL, "job %d: uvrt_job_message from its work function is not NULL", j->id);
      CHECK(uvrt_runtime_loop(j->runtime) == j->loop, "job %d: uvrt_runtime_loop from a work function", j->id);
      CHECK((r = uvrt_threadpool_size()) == pool, "uvrt_threadpool_size from a work function gave %d", r);
      r = uvrt_job_stop_requested(job);
      CHECK(r == 0 || r == 1, "uvrt_job_stop_requested gave %d", r);
      const uvrt_job_options_t o = UVRT_JOB_OPTIONS_INIT;
      r = uvrt_job_submit_ex(j->runtime, &h, work, on_done, j, &o);
      CHECK(r == UVRT_ETHREAD && h == SENTINEL_JOB, "job %d: submit_ex from a work function gave %d", j->id, r);
      uvrt_runtime_stats_t st;
      st.size = sizeof st;
      CHECK((r = uvrt_runtime_stats(j->runtime, &st)) == UVRT_ETHREAD, "job %d: stats from a work function gave %d", j->id, r);
      if (j->limiter) {
        /* Any thread may read a limiter; this job holds one of its tokens. */
        CHECK(uvrt_limiter_tokens(j->limiter) >= 1, "job %d: its limiter has no token", j->id);
        CHECK(uvrt_limiter_borrowed(j->limiter) >= 1, "job %d runs with no token of its limiter borrowed", j->id);
      }
      break;
    }
    default:
      CHECK(0, "work kind %d", j->kind);
  }
  if (j->slow_ns) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (elapsed_ns(&t0) < j->slow_ns) sched_yield();
  }
  j->work_result = res;
  atomic_store(&j->work_rc, rc);
  atomic_store(&j->finished, 1);
  *result = res;
  return rc;
}

/* ------------------------------------------------------------------------------------------- */
/* The calls, each with its expected outcome. They are used by ops and by done callbacks alike. */

/* Jobs of r that may be waiting to run (for a token or a pool thread): an upper bound of what
 * max_queued counts. */
static size_t not_started(const struct rt_rec* r) {
  size_t n = 0;
  for (int i = 0; i < S.njobs; ++i) {
    const struct job* j = &S.jobs[i];
    n += j->rt == r && j->submitted && !atomic_load(&j->started) && j->done_calls == 0 && !j->settled_known;
  }
  return n;
}

/* Jobs of the limiter that may hold or wait for one of its tokens: a job whose done got
 * UVRT_ETIMEDOUT holds its token until its work has returned and its loop took it back. */
static size_t lim_in_use(const struct lim_rec* l) {
  size_t n = 0;
  for (int i = 0; i < S.njobs; ++i) {
    const struct job* j = &S.jobs[i];
    n += j->lim == l && j->submitted && (j->done_calls == 0 || timed_out(j)) && !j->settled_known;
  }
  return n;
}

/* A job of the limiter surely holds or waits for a token: it runs, or it was neither started nor
 * cancelled on a runtime that is not being destroyed. */
static bool lim_surely_busy(const struct lim_rec* l) {
  for (int i = 0; i < S.njobs; ++i) {
    const struct job* j = &S.jobs[i];
    if (j->lim != l || !j->submitted || j->done_calls > 0 || j->settled_known) continue;
    if (!j->rt->live || j->rt->closing) continue;
    const bool started = atomic_load(&j->started), finished = atomic_load(&j->finished);
    if (started && !finished) return true;
    /* A timeout may have cancelled it on a turn whose slice ended before its done callback. */
    if (!started && !j->cancel0 && j->timeout_ms == 0) return true;
  }
  return false;
}

static struct lim_rec* pick_lim(uint8_t b) {
  int live[MAX_LIMITERS], n = 0;
  for (int i = 0; i < S.nlims; ++i)
    if (S.lims[i].live) live[n++] = i;
  return b == 0xff || n == 0 ? NULL : &S.lims[live[b % n]];
}

/* A TIMEOUT op's job: its timeout, grace period and the time its work function spins at its end. */
struct timing {
  uint64_t timeout_ms, grace_ms;
  long slow_ns;
  bool old_struct; /* the options struct of the uvrt.h before timeouts: the timeout is not read */
};

/* `how`: -1 uvrt_job_submit; else uvrt_job_submit_ex with options as SUBMITX's how % 6 says, and
 * the limiter `l` where they name one; 6: with the timeout `tm` (a TIMEOUT op). */
static void submit_job(struct rt_rec* r, int kind, int code, uint8_t flags, uint8_t actions, uint8_t p_job,
                       uint8_t p_rt, uint8_t p_child, int generation, int how, struct lim_rec* l,
                       const struct timing* tm) {
  if (S.njobs >= MAX_JOBS) return;
  struct job* j = &S.jobs[S.njobs++];
  j->id = S.njobs - 1;
  j->generation = generation;
  j->rt = r;
  j->runtime = r ? r->rt : NULL;
  j->loop = r ? r->loop : NULL;
  /* Not a limiter whose tokens only another loop's turns may give back (see SUBMITX). */
  if (l && (!l->live || (r && l->loop && l->loop != r->loop && lim_in_use(l) > 0))) l = NULL;
  struct {
    uvrt_job_options_t options;
    uint64_t tail;
  } big;
  memset(&big, 0, sizeof big);
  big.options.size = sizeof big.options;
  big.options.limiter = l ? l->lim : NULL;
  bool bad_options = false;
  switch (how) {
    case 1: big.options.limiter = NULL; l = NULL; break;
    case 3: big.options.size = sizeof big.options - 1; bad_options = true; break;
    case 4: big.options.size = sizeof big; break;
    case 5: big.options.size = sizeof big; big.tail = 1; bad_options = true; break;
    case 6:
      big.options.timeout_ms = tm->timeout_ms;
      big.options.grace_ms = tm->grace_ms;
      if (tm->old_struct) big.options.size = offsetof(uvrt_job_options_t, limiter) + sizeof(uvrt_limiter_t*);
      else j->timeout_ms = tm->timeout_ms, j->grace_ms = tm->grace_ms;
      j->slow_ns = tm->slow_ns;
      break;
    case 2: break;
    default: l = NULL; break; /* NULL options */
  }
  const uvrt_job_options_t* options = how >= 1 ? &big.options : NULL;
  j->lim = l;
  j->limiter = l ? l->lim : NULL;
  j->owner = r ? r->owner : role;
  j->kind = kind;
  j->code = code;
  j->actions = actions;
  j->p_job = p_job;
  j->p_rt = p_rt;
  j->p_child = p_child;
  const bool null_work = flags & 4;
  j->has_done = !(flags & 2);
  j->want_handle = !(flags & 1);

  struct codes ok = {0};
  if (!r || null_work || bad_options) allow(&ok, UVRT_EINVAL);
  if (r && r->owner != role) allow(&ok, UVRT_ETHREAD);
  if (r && r->closing) allow(&ok, UVRT_ECLOSING);
  if (ok.n == 0) {
    allow(&ok, 0);
    if (r->max_queued != 0 && not_started(r) >= r->max_queued) allow(&ok, UVRT_EQUEUEFULL);
  }

  uvrt_job_t* h = SENTINEL_JOB;
  /* Nothing else changes a limiter's line meanwhile: its tokens come back as loops turn. */
  const size_t waiting_before = l ? uvrt_limiter_waiting(l->lim) : 0;
  clock_gettime(CLOCK_MONOTONIC, &j->submitted_at);
  ++S.api_depth;
  const int rc = how < 0 ? uvrt_job_submit(j->runtime, j->want_handle ? &h : NULL, null_work ? NULL : work,
                                           j->has_done ? on_done : NULL, j)
                         : uvrt_job_submit_ex(j->runtime, j->want_handle ? &h : NULL, null_work ? NULL : work,
                                              j->has_done ? on_done : NULL, j, options);
  --S.api_depth;
  tracef("submit%s job %d to rt %d: work %d code %d flags %d actions 0x%x gen %d, options %d limiter %d%s: %s",
         how < 0 ? "" : "_ex", j->id, r ? r->id : -1, kind, code, flags, actions, generation, how, l ? l->id : -1,
         how != 6 ? "" : tm->old_struct ? " (old struct: no timeout)" : ", with a timeout", uvrt_err_name(rc));
  if (how == 6)
    tracef("  timeout %llu ms, grace %llu ms, work spins %ld ms more", (unsigned long long)tm->timeout_ms,
           (unsigned long long)tm->grace_ms, tm->slow_ns / 1000000);
  expect_rc(how < 0 ? "uvrt_job_submit" : "uvrt_job_submit_ex", rc, &ok);
  if (rc != 0) {
    CHECK(h == SENTINEL_JOB, "a refused submit wrote *job");
    j->lim = NULL;
    return;
  }
  j->submitted = true;
  ++r->accepted;
  if (l) {
    l->loop = r->loop;
    j->token_at_submit = uvrt_limiter_waiting(l->lim) == waiting_before;
  }
  if (j->want_handle) {
    CHECK(h != SENTINEL_JOB && h != NULL, "submit returned 0 without a handle");
    j->handle = h;
    j->held = true;
  }
  CHECK(j->done_calls == 0, "job %d: done ran inside uvrt_job_submit", j->id);
}

static void cancel_job(struct job* j) {
  struct codes ok = {0};
  if (!j) {
    allow(&ok, UVRT_EINVAL);
  } else if (j->owner != role) {
    allow(&ok, UVRT_ETHREAD);
  } else if (j->done_calls > 0 || j->settled_known) {
    allow(&ok, UVRT_EALREADY);
  } else {
    if (j->cancel0) allow(&ok, 0);
    else if (j->cancel_busy || atomic_load(&j->started)) allow(&ok, UVRT_EBUSY);
    else {
      allow(&ok, 0);
      allow(&ok, UVRT_EBUSY);
    }
    if (!j->has_done) allow(&ok, UVRT_EALREADY); /* it may have settled unseen */
  }
  const int calls_before = j ? j->done_calls : 0;
  ++S.api_depth;
  const int rc = uvrt_job_cancel(j ? j->handle : NULL);
  --S.api_depth;
  tracef("cancel job %d: %s", j ? j->id : -1, uvrt_err_name(rc));
  expect_rc("uvrt_job_cancel", rc, &ok);
  if (!j || rc == UVRT_ETHREAD) return;
  if (rc == 0) j->cancel0 = true;
  if (rc == UVRT_EBUSY) {
    j->cancel_busy = true;
    CHECK(uvrt_job_stop_requested(j->handle) == 1, "job %d: cancel gave UVRT_EBUSY but no stop is requested", j->id);
  }
  if (rc == UVRT_EALREADY) j->settled_known = true;
  CHECK(j->done_calls == calls_before, "job %d: done ran inside uvrt_job_cancel", j->id);
}

static void release_job(struct job* j) {
  struct codes ok = {0};
  allow(&ok, !j ? UVRT_EINVAL : j->owner != role ? UVRT_ETHREAD : 0);
  const int calls_before = j ? j->done_calls : 0;
  ++S.api_depth;
  const int rc = uvrt_job_release(j ? j->handle : NULL);
  --S.api_depth;
  tracef("release job %d: %s", j ? j->id : -1, uvrt_err_name(rc));
  expect_rc("uvrt_job_release", rc, &ok);
  if (j && rc == 0) j->held = false;
  if (j) CHECK(j->done_calls == calls_before, "job %d: done ran inside uvrt_job_release", j->id);
}

static void query_job(struct job* j) {
  const uvrt_job_t* h = j ? j->handle : NULL;
  tracef("query job %d", j ? j->id : -1);
  ++S.api_depth;
  const char* m = uvrt_job_message(h);
  if (!j || j->owner != role || (j->has_done && j->done_calls == 0 && !j->in_done)) {
    CHECK(m == NULL, "job %d: uvrt_job_message gave \"%s\" before settling or off its thread", j ? j->id : -1, m);
  } else if (j->done_calls > 0 || j->in_done || j->settled_known) {
    check_message(j, m, "once settled");
  } else if (m != NULL) {
    check_message(j, m, "(settled unseen)");
  }
  const int stop = uvrt_job_stop_requested(h);
  if (!j) CHECK(stop == 0, "uvrt_job_stop_requested(NULL) gave %d", stop);
  else if (j->cancel_busy) CHECK(stop == 1, "job %d: no stop request after cancel gave UVRT_EBUSY", j->id);
  else if (j->timeout_ms != 0) CHECK(stop == 0 || stop == 1, "uvrt_job_stop_requested gave %d", stop); /* its timeout may have */
  else if (!j->unsettled_at_destroy) CHECK(stop == 0, "job %d: a stop request nobody made", j->id);
  else if (j->has_done) /* destroy cancelled it if queued, asked it to stop if running */
    CHECK(stop == atomic_load(&j->started), "job %d: stop requested %d after destroy began, but it %s", j->id, stop,
          atomic_load(&j->started) ? "ran" : "never ran");
  else CHECK(stop == 0 || stop == 1, "uvrt_job_stop_requested gave %d", stop);

  struct codes ok = {0};
  allow(&ok, j ? UVRT_ETHREAD : UVRT_EINVAL);
  expect_rc("uvrt_job_fail off the pool", uvrt_job_fail(j ? j->handle : NULL, UV_EIO, "not from the work function"), &ok);
  if (j) allow(&ok, UVRT_EINVAL);
  expect_rc("uvrt_job_fail(job, 0) off the pool", uvrt_job_fail(j ? j->handle : NULL, 0, NULL), &ok);
  const char* again = uvrt_job_message(h);
  CHECK(again == m, "job %d: the message changed after refused uvrt_job_fail calls", j ? j->id : -1);
  --S.api_depth;
}

static void open_gate(void) { atomic_store(&gate_open, 1); }

/* > 0 while a run or destroy of a runtime on `loop` runs, or a done callback on it: the loop's
 * guard against re-entry, which every runtime on the loop shares. Records of destroyed runtimes
 * have depth 0, so a freed own loop whose address a new one reuses does not count. */
static int loop_depth(const uv_loop_t* loop) {
  int d = 0;
  for (int i = 0; i < S.nrts; ++i)
    if (S.rts[i].loop == loop) d += S.rts[i].depth;
  return d;
}

/* The codes uvrt_runtime_run and uvrt_runtime_destroy may return for r, into *ok. False when the
 * call must not be made: both turn r's loop, and re-entering a loop that only the application is
 * turning, from its own callbacks, is outside the contract (uvrt cannot see it). */
static bool loop_turning_call_codes(const struct rt_rec* r, struct codes* ok) {
  if (!r) allow(ok, UVRT_EINVAL);
  else if (r->owner != role) allow(ok, UVRT_ETHREAD);
  else if (loop_depth(r->loop) > 0) allow(ok, UVRT_EBUSY);
  else if (loop_active(r->loop)) return false;
  else allow(ok, 0);
  return true;
}

static void run_runtime(struct rt_rec* r) {
  struct codes ok = {0};
  if (!loop_turning_call_codes(r, &ok)) return;
  tracef("run rt %d", r ? r->id : -1);
  const bool turns = ok.v[0] == 0;
  if (turns) {
    open_gate(); /* HOLD jobs anywhere could keep this loop's jobs queued */
    push_loop(r->loop);
    ++r->depth;
  }
  const int rc = uvrt_runtime_run(r ? r->rt : NULL);
  if (turns) {
    --r->depth;
    pop_loop();
  }
  tracef("run rt %d returned %s", r ? r->id : -1, uvrt_err_name(rc));
  expect_rc("uvrt_runtime_run", rc, &ok);
  if (turns) all_settled_on(r->loop, NULL, "uvrt_runtime_run");
}

static void destroy_runtime(struct rt_rec* r) {
  struct codes ok = {0};
  if (!loop_turning_call_codes(r, &ok)) return;
  tracef("destroy rt %d", r ? r->id : -1);
  const bool tears_down = ok.v[0] == 0;
  if (tears_down) {
    /* The gate stays as it is: the running jobs must leave because destroy asks them to stop. */
    for (int i = 0; i < S.njobs; ++i) {
      struct job* j = &S.jobs[i];
      if (j->submitted && j->rt == r && j->done_calls == 0 && !j->settled_known) j->unsettled_at_destroy = true;
    }
    r->closing = true;
    push_loop(r->loop);
    ++r->depth;
  }
  const int rc = uvrt_runtime_destroy(r ? r->rt : NULL);
  if (tears_down) {
    --r->depth;
    pop_loop();
  }
  tracef("destroy rt %d returned %s", r ? r->id : -1, uvrt_err_name(rc));
  expect_rc("uvrt_runtime_destroy", rc, &ok);
  if (!tears_down) return;
  all_settled_on(NULL, r, "uvrt_runtime_destroy");
  for (int i = 0; i < S.njobs; ++i) {
    struct job* j = &S.jobs[i];
    if (!j->submitted || j->rt != r || !j->has_done || !j->unsettled_at_destroy || !j->held) continue;
    /* Running jobs were asked to stop; queued ones were cancelled and never ran. */
    const int stop = uvrt_job_stop_requested(j->handle);
    CHECK(stop == (atomic_load(&j->started) ? 1 : 0), "job %d: stop requested %d after destroy, but it %s", j->id, stop,
          atomic_load(&j->started) ? "ran" : "never ran");
  }
  r->live = false;
  r->closing = false;
  r->rt = NULL;
  /* An own loop is gone: uvrt closed the application's handles left on it. */
  for (int i = 0; i < S.ntimers; ++i)
    if (S.timers[i]->rt == r && r->app < 0) S.timers[i]->closed = true;
}

/* ------------------------------------------------------------------------------------------- */
/* The done callback (on the runtime's loop thread) */

static struct rt_rec* done_target(const struct job* j) {
  return j->p_rt == 0 ? j->rt : j->p_rt == 0xff ? NULL : pick_rt((uint8_t)(j->p_rt - 1));
}

static void on_done(uvrt_job_t* job, int status, void* result, void* arg) {
  struct job* j = arg;
  CHECK(j >= S.jobs && j < S.jobs + S.njobs, "done got an arg the harness never passed");
  CHECK(j->submitted && j->has_done, "job %d: done ran for a job submitted without one, or refused", j->id);
  CHECK(j->done_calls == 0, "job %d: done ran twice", j->id);
  CHECK(role == j->owner, "job %d: done ran on thread %d, not its runtime's %d", j->id, role, j->owner);
  CHECK(S.api_depth == 0, "job %d: done ran inside submit, cancel or release", j->id);
  CHECK(loop_active(j->loop), "job %d: done ran while nothing turned its loop", j->id);
  CHECK(!j->want_handle || job == j->handle, "job %d: done got another job pointer than submit returned", j->id);
  const bool ran = atomic_load(&j->started);
  tracef("done job %d: status %d (%s)%s", j->id, status, uvrt_err_name(status), ran ? "" : ", never ran");
  j->done_calls = 1;
  j->in_done = true;
  j->status = status;
  j->result = result;

  if (status == UVRT_ETIMEDOUT && j->timeout_ms != 0) {
    /* Given up on: the work function may still run (or, taken by a carrier, not have started
     * yet), so nothing it writes is read here. */
    const bool finished = atomic_load(&j->finished);
    const long after = elapsed_ns(&j->submitted_at);
    CHECK(after >= (long)j->timeout_ms * 1000000L, "job %d: UVRT_ETIMEDOUT %ld ns after submission, before its %llu ms timeout",
          j->id, after, (unsigned long long)j->timeout_ms);
    if (ran && !finished)
      CHECK(after >= (long)(j->timeout_ms + j->grace_ms) * 1000000L,
            "job %d: UVRT_ETIMEDOUT while its work runs, %ld ns after submission, before the end of its grace period (%llu + %llu ms)",
            j->id, after, (unsigned long long)j->timeout_ms, (unsigned long long)j->grace_ms);
    CHECK(result == NULL, "job %d: UVRT_ETIMEDOUT with a result", j->id);
  } else if (!ran) {
    CHECK(status == UVRT_ECANCELED, "job %d never ran, but done got %d", j->id, status);
    CHECK(result == NULL, "job %d never ran, but done got a result", j->id);
    CHECK(j->cancel0 || j->rt->closing, "job %d never ran, but it was neither cancelled nor its runtime destroyed", j->id);
  } else {
    CHECK(atomic_load(&j->finished), "job %d: done ran before its work function returned", j->id);
    CHECK(!j->cancel0, "job %d ran after cancel returned 0", j->id);
    CHECK(job == j->work_job, "job %d: done and work got different job pointers", j->id);
    CHECK(status == atomic_load(&j->work_rc), "job %d: done got %d, its work function returned %d", j->id, status,
          atomic_load(&j->work_rc));
    CHECK(result == j->work_result, "job %d: done got another result than its work function stored", j->id);
  }
  check_message(j, uvrt_job_message(job), "in done");
  const int stop = uvrt_job_stop_requested(job);
  if (j->cancel_busy || (j->unsettled_at_destroy && ran) || (timed_out(j) && ran))
    CHECK(stop == 1, "job %d: no stop request in done after %s", j->id,
          j->cancel_busy ? "cancel gave UVRT_EBUSY" : timed_out(j) ? "its timeout while it ran" : "destroy while it ran");
  else if (!j->unsettled_at_destroy && !timed_out(j))
    CHECK(stop == 0, "job %d: a stop request nobody made", j->id);

  if (j->slow_done) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (elapsed_ns(&t0) < SLOW_DONE_NS) {
    }
  }

  struct rt_rec* r = j->rt;
  ++r->depth;
  const uint8_t a = j->actions;
  if (a & D_CANCEL_SELF) {
    ++S.api_depth;
    const int rc = uvrt_job_cancel(job);
    --S.api_depth;
    struct codes ok = {1, {UVRT_EALREADY}};
    expect_rc("uvrt_job_cancel inside its done", rc, &ok);
  }
  if (a & D_FAIL) {
    struct codes ok = {1, {UVRT_ETHREAD}};
    expect_rc("uvrt_job_fail inside done", uvrt_job_fail(job, UV_EIO, "from done"), &ok);
    check_message(j, uvrt_job_message(job), "after uvrt_job_fail from done");
  }
  if ((a & D_RELEASE_SELF) && j->held) {
    release_job(j);
    check_message(j, uvrt_job_message(job), "in done after its release");
    CHECK(uvrt_job_cancel(job) == UVRT_EALREADY, "job %d: cancel in done after release", j->id);
  }
  if (a & D_CANCEL_OTHER) cancel_job(pick_handle(j->p_job));
  if (a & D_RELEASE_OTHER) release_job(pick_handle((uint8_t)(j->p_job ^ 0x55)));
  if (a & D_SUBMIT) {
    uint8_t child = child_actions[j->p_child >> 4];
    if (j->generation + 1 >= MAX_GENERATION) child &= (uint8_t)~D_SUBMIT;
    submit_job(done_target(j), (j->p_child & 15) % N_WORK, work_codes[j->p_child % 12], 0, child, j->p_job,
               0, (uint8_t)(j->p_child * 7 + 3), j->generation + 1, j->lim ? 2 : -1, j->lim, NULL);
  }
  if (a & D_RUN) run_runtime(done_target(j));
  if (a & D_DESTROY) destroy_runtime(done_target(j));
  --r->depth;
  j->in_done = false;
}

/* ------------------------------------------------------------------------------------------- */
/* Ops */

static uv_loop_t* app_loop(int i) {
  if (!S.app_loops[i]) {
    S.app_loops[i] = malloc(sizeof(uv_loop_t));
    CHECK(S.app_loops[i] != NULL, "out of memory");
    CHECK(uv_loop_init(S.app_loops[i]) == 0, "uv_loop_init");
  }
  return S.app_loops[i];
}

/* uvrt_options_t.reserved_threads and max_queued, by CREATEX's ext byte. */
static int reserved_variant(uint8_t ext) {
  const int variants[] = {0, UVRT_RESERVED_NONE, 1, pool, -2, INT_MAX, INT_MIN};
  return variants[ext % 7];
}

static size_t max_queued_variant(uint8_t ext) {
  const size_t variants[] = {0, 1, 2, 4};
  return variants[ext / 7 % 4];
}

/* The pool size and reservation codes for threadpool_size `size` and reserved_threads `reserved`
 * (the C values), with the process's pool running with `pool` threads and reserving none. */
static void pool_codes(struct codes* ok, int size, int reserved) {
  if (size < 0 || size > 1024) allow(ok, UVRT_EPOOLSIZE);
  else if (reserved < 0 && reserved != UVRT_RESERVED_NONE) allow(ok, UVRT_EPOOLSIZE);
  else if (reserved >= 1024) allow(ok, UVRT_EPOOLSIZE);
  else if (size != 0 && size != pool) allow(ok, UVRT_EPOOLCONFLICT);
  else if (reserved >= pool) allow(ok, UVRT_EPOOLSIZE);
  else if (reserved > 0) allow(ok, UVRT_EPOOLCONFLICT); /* the process reserves none */
}

static void op_create(bool ext_op) {
  const uint8_t how = next_byte(), opts = next_byte();
  const uint8_t ext = ext_op ? next_byte() : 0;
  int live = 0;
  for (int i = 0; i < S.nrts; ++i) live += S.rts[i].live;
  if (live >= MAX_LIVE || S.nrts >= MAX_RUNTIMES) return;
  int loop_kind = how % 4;
  if (role == ROLE_HELPER && (loop_kind == 1 || loop_kind == 2)) loop_kind = 0; /* app loops are the main thread's */
  const bool null_out = how & 0x80;
  uvrt_options_t o = {0};
  const uvrt_options_t* op = &o;
  switch (opts % 10) {
    case 0: op = NULL; break;
    case 1: o.threadpool_size = 0; break;
    case 2: o.threadpool_size = pool; break;
    case 3: o.threadpool_size = -1; break;
    case 4: o.threadpool_size = 1025; break;
    case 5: o.threadpool_size = INT_MIN; break;
    case 6: o.threadpool_size = INT_MAX; break;
    case 7: o.threadpool_size = pool < 1024 ? pool + 1 : pool - 1; break;
    case 8: o.threadpool_size = 1024; break;
    default: o.threadpool_size = 1; break;
  }
  o.reserved_threads = reserved_variant(ext);
  o.max_queued = max_queued_variant(ext);
  const int size = op ? o.threadpool_size : 0;
  struct codes ok = {0};
  if (null_out || loop_kind == 3) allow(&ok, UVRT_EINVAL);
  pool_codes(&ok, size, op ? o.reserved_threads : 0);
  if (ok.n == 0) allow(&ok, 0);
  uv_loop_t* loop = loop_kind == 1 || loop_kind == 2 ? app_loop(loop_kind - 1) : NULL;
  uvrt_runtime_t* rt = SENTINEL_RT;
  const int rc = loop_kind == 0 ? uvrt_runtime_create(null_out ? NULL : &rt, op)
                                : uvrt_runtime_create_on_loop(null_out ? NULL : &rt, loop, op);
  tracef("create rt %d: loop kind %d, size %d, reserved %d, max_queued %zu%s%s: %s", S.nrts, loop_kind, size,
         op ? o.reserved_threads : 0, op ? o.max_queued : 0, op ? "" : " (NULL options)", null_out ? ", NULL out" : "",
         uvrt_err_name(rc));
  expect_rc(loop_kind == 0 ? "uvrt_runtime_create" : "uvrt_runtime_create_on_loop", rc, &ok);
  if (rc != 0) {
    CHECK(rt == SENTINEL_RT, "a refused create wrote *runtime");
    return;
  }
  CHECK(rt != SENTINEL_RT && rt != NULL, "create returned 0 without a runtime");
  struct rt_rec* r = &S.rts[S.nrts];
  r->id = S.nrts++;
  r->rt = rt;
  r->loop = uvrt_runtime_loop(rt);
  r->app = loop_kind == 0 ? -1 : loop_kind - 1;
  r->owner = role;
  r->live = true;
  r->max_queued = op ? o.max_queued : 0;
  CHECK(r->loop != NULL && (loop_kind == 0 || r->loop == loop), "uvrt_runtime_loop of a new runtime");
}

/* SUBMIT's operands, then the submission (submit_job's `how`, `l` and `tm`). */
static void op_submit(int how, struct lim_rec* l, const struct timing* tm) {
  struct rt_rec* r = pick_rt(next_byte());
  const int kind = next_byte() % N_WORK;
  const int code = work_codes[next_byte() % 12];
  const uint8_t flags = next_byte();
  const uint8_t actions = next_byte();
  const uint8_t p_job = actions & (D_CANCEL_OTHER | D_RELEASE_OTHER) ? next_byte() : 0;
  const uint8_t p_rt = actions & (D_SUBMIT | D_RUN | D_DESTROY) ? next_byte() : 0;
  const uint8_t p_child = actions & D_SUBMIT ? next_byte() : 0;
  submit_job(r, kind, code, flags, actions, p_job, p_rt, p_child, 0, how, l, tm);
}

static void op_submitx(void) {
  struct lim_rec* l = pick_lim(next_byte());
  const int how = next_byte() % 6;
  op_submit(how, l, NULL);
}

static void op_timeout(void) {
  struct lim_rec* l = pick_lim(next_byte());
  const uint8_t t = next_byte();
  static const uint64_t timeouts[] = {1, 2, 5, 20}, graces[] = {0, 1, 5, 50};
  static const long slow[] = {0, 1000000, 5000000, 20000000};
  const struct timing tm = {timeouts[t % 4], graces[t / 4 % 4], slow[t / 16 % 4], (t & 0x40) != 0};
  op_submit(6, t & 0x80 ? NULL : l, &tm);
}

static bool in_flight_on(const uv_loop_t* loop) {
  for (int i = 0; i < S.njobs; ++i) {
    const struct job* j = &S.jobs[i];
    if (j->submitted && j->loop == loop && j->done_calls == 0 && !j->settled_known) return true;
  }
  return false;
}

static void op_uvrun(void) {
  struct rt_rec* r = pick_rt(next_byte());
  const int mode = next_byte() % 3;
  if (!r || r->owner != role) return; /* a loop is turned by its own thread only */
  uv_run_mode m = mode == 0 ? UV_RUN_NOWAIT : mode == 1 ? UV_RUN_ONCE : UV_RUN_DEFAULT;
  if (m == UV_RUN_ONCE && !in_flight_on(r->loop)) m = UV_RUN_NOWAIT; /* ONCE could wait forever */
  if (m != UV_RUN_NOWAIT) open_gate();
  tracef("uv_run rt %d's loop, %s", r->id, m == UV_RUN_NOWAIT ? "UV_RUN_NOWAIT" : m == UV_RUN_ONCE ? "UV_RUN_ONCE" : "UV_RUN_DEFAULT");
  push_loop(r->loop);
  uv_run(r->loop, m);
  pop_loop();
  if (m == UV_RUN_DEFAULT) all_settled_on(r->loop, NULL, "uv_run(UV_RUN_DEFAULT)");
}

static int holding_now(void) {
  int n = 0;
  for (int i = 0; i < S.njobs; ++i) n += atomic_load(&S.jobs[i].holding);
  return n;
}

/* Waits until the job's work started or finished; false if it gave up (see WAIT). */
static bool wait_for_job(struct job* j, bool finished) {
  atomic_int* flag = finished ? &j->finished : &j->started;
  if (!j->submitted || j->cancel0 || j->done_calls > 0 || j->settled_known) return false;
  /* One waiting for a token may get it only as its loop turns, which waiting does not do. */
  if (j->lim && !j->token_at_submit && !atomic_load(&j->started)) return false;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned i = 1; !atomic_load(flag); ++i) {
    /* It cannot start while held jobs fill the pool, nor finish while it holds itself. */
    if (!atomic_load(&j->started) && !atomic_load(&gate_open) && holding_now() >= pool) return false;
    if (atomic_load(&j->holding) && !atomic_load(&gate_open) && !j->cancel_busy) return false;
    sched_yield();
    if (i % 256 == 0) {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - t0.tv_sec > WAIT_SECONDS) return false;
      /* Not started yet: its runtime may be waiting for a pool slot, or its carriers' slice may
       * have ended, and either gets it a carrier only as its loop turns, which nothing does now. */
      if (!atomic_load(&j->started) && !loop_active(j->loop) && elapsed_ns(&t0) > START_GRACE_NS) return false;
    }
  }
  return true;
}

static void op_wait(void) {
  const uint8_t which = next_byte(), mode = next_byte();
  if (S.njobs > 0) wait_for_job(&S.jobs[which % S.njobs], mode & 1);
}

static void op_burst(void) {
  struct rt_rec* r = pick_rt(next_byte());
  const int n = 33 + next_byte() % 16;
  const int kind = next_byte() % N_WORK;
  const int first = S.njobs;
  if (S.burst_done) return;
  S.burst_done = true;
  tracef("burst of %d jobs to rt %d", n, r ? r->id : -1);
  for (int i = 0; i < n && S.njobs < MAX_JOBS; ++i) {
    submit_job(r, kind, work_codes[i % 12], 0, 0, 0, 0, 0, 0, -1, NULL, NULL);
    S.jobs[S.njobs - 1].slow_done = true;
  }
  /* Once one cannot finish, neither can those queued behind it. */
  for (int i = first; i < S.njobs; ++i)
    if (!wait_for_job(&S.jobs[i], true) && !atomic_load(&S.jobs[i].finished)) break;
}

/* An application's timer on a runtime's loop: its callback is the application's own libuv
 * callback, from which the C API may be called. Run and destroy on its own loop are UVRT_EBUSY
 * while uvrt turns the loop and undefined while only the application does (skipped); on
 * another loop they turn that loop. */
static void on_timer(uv_timer_t* handle) {
  struct timer* t = handle->data;
  CHECK(loop_active(t->loop), "a timer fired while nothing turned its loop");
  tracef("timer on rt %d's loop: act %d", t->rt->id, t->act % 6);
  switch (t->act % 6) {
    case 1:
      if (t->rt->live) submit_job(t->rt, t->p % N_WORK, work_codes[t->p % 12], 0, 0, 0, 0, 0, 0, -1, NULL, NULL);
      break;
    case 2: cancel_job(pick_handle(t->p)); break;
    case 3: release_job(pick_handle(t->p)); break;
    case 4: run_runtime(pick_rt(t->p)); break;
    case 5: destroy_runtime(pick_rt(t->p)); break;
    default: break;
  }
}

static void op_timer(void) {
  struct rt_rec* r = pick_rt(next_byte());
  const uint8_t act = next_byte(), p = next_byte();
  if (!r || r->owner != role || S.ntimers >= MAX_TIMERS) return; /* a loop's handles are its thread's */
  struct timer* t = calloc(1, sizeof *t);
  CHECK(t != NULL, "out of memory");
  t->rt = r;
  t->loop = r->loop;
  t->act = act;
  t->p = p;
  t->handle.data = t;
  CHECK(uv_timer_init(r->loop, &t->handle) == 0, "uv_timer_init");
  CHECK(uv_timer_start(&t->handle, on_timer, 0, 0) == 0, "uv_timer_start");
  S.timers[S.ntimers++] = t;
  tracef("timer %d on rt %d's loop", S.ntimers - 1, r->id);
}

static void timer_closed(uv_handle_t* handle) { ((struct timer*)handle->data)->closed = true; }

static void op_errstr(void) {
  uint32_t u = next_byte();
  u |= (uint32_t)next_byte() << 8;
  u |= (uint32_t)next_byte() << 16;
  u |= (uint32_t)next_byte() << 24;
  int v;
  memcpy(&v, &u, sizeof v);
  const char* text = uvrt_strerror(v);
  const char* name = uvrt_err_name(v);
  CHECK(text && *text && name && *name, "uvrt_strerror/uvrt_err_name(%d) empty", v);
#define UVRT_FUZZ_CODE(n, value, t)                                                                  \
  if (v == UVRT_##n) {                                                                              \
    CHECK(strcmp(text, t) == 0 && strcmp(name, "UVRT_" #n) == 0, "code %d is %s: \"%s\"", v, name, text); \
  }
  UVRT_ERRNO_MAP(UVRT_FUZZ_CODE)
#undef UVRT_FUZZ_CODE
  if (v == 0) CHECK(strcmp(text, "success") == 0 && strcmp(name, "OK") == 0, "code 0: %s \"%s\"", name, text);
  if (strncmp(text, "Unknown error", 13) == 0) {
    char want[48];
    snprintf(want, sizeof want, "Unknown error %d", v);
    CHECK(strcmp(text, want) == 0, "uvrt_strerror(%d) = \"%s\"", v, text);
  }
}

static void op_pool(void) {
  struct rt_rec* r = pick_rt(next_byte());
  const int n = uvrt_threadpool_size();
  CHECK(n == pool, "uvrt_threadpool_size() = %d, the pool has %d", n, pool);
  CHECK(uvrt_runtime_loop(r ? r->rt : NULL) == (r ? r->loop : NULL), "uvrt_runtime_loop changed");
}

static void op_limiter(void) {
  const uint8_t act = next_byte(), n = next_byte();
  switch (act % 4) {
    case 0: {
      if (S.nlims >= MAX_LIMITERS) return;
      const size_t tokens = n % 4;
      const bool null_out = act & 0x80;
      uvrt_limiter_t* lim = (uvrt_limiter_t*)(void*)&sentinel_storage;
      const int rc = uvrt_limiter_create(null_out ? NULL : &lim, tokens);
      tracef("create limiter %d of %zu tokens%s: %s", S.nlims, tokens, null_out ? ", NULL out" : "", uvrt_err_name(rc));
      struct codes ok = {0};
      allow(&ok, null_out || tokens == 0 ? UVRT_EINVAL : 0);
      expect_rc("uvrt_limiter_create", rc, &ok);
      if (rc != 0) {
        CHECK(lim == (uvrt_limiter_t*)(void*)&sentinel_storage, "a refused uvrt_limiter_create wrote *limiter");
        return;
      }
      CHECK(lim != NULL && lim != (uvrt_limiter_t*)(void*)&sentinel_storage, "uvrt_limiter_create gave no limiter");
      struct lim_rec* l = &S.lims[S.nlims];
      l->id = S.nlims++;
      l->lim = lim;
      l->tokens = tokens;
      l->live = true;
      break;
    }
    case 1: {
      struct lim_rec* l = pick_lim(n);
      struct codes ok = {0};
      if (!l) allow(&ok, UVRT_EINVAL);
      else if (lim_surely_busy(l)) allow(&ok, UVRT_EBUSY);
      else {
        allow(&ok, 0);
        if (lim_in_use(l) > 0) allow(&ok, UVRT_EBUSY);
      }
      const int rc = uvrt_limiter_destroy(l ? l->lim : NULL);
      tracef("destroy limiter %d: %s", l ? l->id : -1, uvrt_err_name(rc));
      expect_rc("uvrt_limiter_destroy", rc, &ok);
      if (l && rc == 0) {
        l->live = false;
        l->lim = NULL;
      }
      break;
    }
    case 2: {
      struct lim_rec* l = pick_lim((n & 0x3f) == 0x3f ? 0xff : n & 0x3f);
      const size_t tokens = n >> 6;
      const int rc = uvrt_limiter_set_tokens(l ? l->lim : NULL, tokens);
      tracef("limiter %d: set %zu tokens: %s", l ? l->id : -1, tokens, uvrt_err_name(rc));
      struct codes ok = {0};
      allow(&ok, !l || tokens == 0 ? UVRT_EINVAL : 0);
      expect_rc("uvrt_limiter_set_tokens", rc, &ok);
      if (l && rc == 0) l->tokens = tokens;
      break;
    }
    default: {
      struct lim_rec* l = pick_lim(n);
      const uvrt_limiter_t* lim = l ? l->lim : NULL;
      const size_t tokens = uvrt_limiter_tokens(lim), borrowed = uvrt_limiter_borrowed(lim), waiting = uvrt_limiter_waiting(lim);
      const size_t in_use = l ? lim_in_use(l) : 0;
      tracef("limiter %d: %zu tokens, %zu borrowed, %zu waiting", l ? l->id : -1, tokens, borrowed, waiting);
      CHECK(tokens == (l ? l->tokens : 0), "limiter %d: %zu tokens, expected %zu", l ? l->id : -1, tokens, l ? l->tokens : 0);
      CHECK(borrowed + waiting <= in_use, "limiter %d: %zu borrowed and %zu waiting, but only %zu of its jobs may be in flight",
            l ? l->id : -1, borrowed, waiting, in_use);
      break;
    }
  }
}

static void check_latency(const uvrt_latency_t* l, uint64_t at_least, uint64_t at_most, const char* what) {
  CHECK(l->count >= at_least && l->count <= at_most, "%s: count %llu, expected %llu to %llu", what,
        (unsigned long long)l->count, (unsigned long long)at_least, (unsigned long long)at_most);
  if (l->count == 0) CHECK(l->p50_ns == 0 && l->p90_ns == 0 && l->p99_ns == 0 && l->max_ns == 0, "%s: figures without a count", what);
  CHECK(l->p50_ns <= l->p90_ns && l->p90_ns <= l->p99_ns && l->p99_ns <= l->max_ns, "%s: percentiles out of order", what);
}

static void op_stats(void) {
  struct rt_rec* r = pick_rt(next_byte());
  const int how = next_byte() % 4;
  struct {
    uvrt_runtime_stats_t stats;
    uint64_t tail[2];
  } big;
  memset(&big, 0xab, sizeof big);
  big.stats.size = how == 1 ? sizeof big.stats - 1 : how == 3 ? sizeof big : sizeof big.stats;
  struct codes ok = {0};
  if (!r || how == 1 || how == 2) allow(&ok, UVRT_EINVAL);
  if (r && r->owner != role) allow(&ok, UVRT_ETHREAD);
  if (ok.n == 0) allow(&ok, 0);
  /* Upper bounds, before the call: jobs start meanwhile, and none is submitted. */
  const size_t waiting_at_most = r ? not_started(r) : 0;
  uint64_t unstarted = 0;
  for (int i = 0; i < S.njobs; ++i) unstarted += S.jobs[i].rt == r && S.jobs[i].submitted && !atomic_load(&S.jobs[i].started);
  const int rc = uvrt_runtime_stats(r ? r->rt : NULL, how == 2 ? NULL : &big.stats);
  tracef("stats of rt %d (how %d): %s", r ? r->id : -1, how, uvrt_err_name(rc));
  expect_rc("uvrt_runtime_stats", rc, &ok);
  if (rc != 0) {
    CHECK(big.stats.submitted == 0xababababababababULL, "a refused uvrt_runtime_stats wrote the struct");
    return;
  }
  const uvrt_runtime_stats_t* s = &big.stats;
  CHECK(s->size == sizeof *s, "uvrt_runtime_stats set size %zu", s->size);
  if (how == 3) CHECK(big.tail[0] == 0 && big.tail[1] == 0, "uvrt_runtime_stats left the unknown tail");
  uint64_t settled = 0, settled_unrun = 0, ran_settled = 0, timed = 0;
  for (int i = 0; i < S.njobs; ++i) {
    const struct job* j = &S.jobs[i];
    if (j->rt != r || !j->submitted) continue;
    const bool started = atomic_load(&j->started);
    const bool is_settled = j->done_calls > 0 || j->settled_known;
    settled += is_settled;
    timed += j->timeout_ms != 0;
    /* A timed job that settled may have been cancelled by its timeout, or abandoned with its
     * work still to run or to record its latencies: no lower bound from those. */
    if (j->timeout_ms != 0) continue;
    settled_unrun += is_settled && !started;
    ran_settled += is_settled && started;
  }
  tracef("  submitted %llu settled %llu cancelled %llu queued %zu running %zu waiting %zu, wait %llu run %llu",
         (unsigned long long)s->submitted, (unsigned long long)s->settled, (unsigned long long)s->cancelled, s->queued,
         s->running, s->waiting_for_limiter, (unsigned long long)s->wait.count, (unsigned long long)s->run.count);
  CHECK(s->submitted == r->accepted, "rt %d: %llu submitted, the harness had %llu accepted", r->id,
        (unsigned long long)s->submitted, (unsigned long long)r->accepted);
  CHECK(s->settled >= settled && s->settled <= s->submitted, "rt %d: %llu settled, %llu known", r->id,
        (unsigned long long)s->settled, (unsigned long long)settled);
  CHECK(s->cancelled >= settled_unrun && s->cancelled <= unstarted && s->cancelled <= s->settled,
        "rt %d: %llu cancelled, %llu settled without running, %llu never started", r->id,
        (unsigned long long)s->cancelled, (unsigned long long)settled_unrun, (unsigned long long)unstarted);
  CHECK(s->abandoned <= timed, "rt %d: %llu abandoned from C, with %llu jobs with a timeout", r->id,
        (unsigned long long)s->abandoned, (unsigned long long)timed);
  CHECK(s->queued + s->waiting_for_limiter <= waiting_at_most, "rt %d: %zu queued and %zu waiting, but %zu jobs not started",
        r->id, s->queued, s->waiting_for_limiter, waiting_at_most);
  CHECK(s->queued + s->running + s->waiting_for_limiter <= s->submitted - s->settled, "rt %d: gauges beyond the jobs in flight", r->id);
  check_latency(&s->wait, ran_settled, s->submitted, "wait");
  check_latency(&s->run, ran_settled, s->submitted, "run");
}

static void exec_op(void);
static void exec_op_cb(void* unused) {
  (void)unused;
  exec_op();
}

static void exec_op(void) {
  if (in_n == 0 || S.ops >= MAX_OPS) return;
  ++S.ops;
  const uint8_t b = next_byte();
  const int op = b == OP_TIMEOUT ? OP_TIMEOUT : b % N_OPS_BEFORE_TIMEOUT;
  switch (op) {
    case OP_CREATE: op_create(false); break;
    case OP_SUBMIT: op_submit(-1, NULL, NULL); break;
    case OP_CANCEL: cancel_job(pick_handle(next_byte())); break;
    case OP_RELEASE: release_job(pick_handle(next_byte())); break;
    case OP_UVRUN: op_uvrun(); break;
    case OP_RUN: run_runtime(pick_rt(next_byte())); break;
    case OP_DESTROY: destroy_runtime(pick_rt(next_byte())); break;
    case OP_GATE:
      atomic_store(&gate_open, next_byte() & 1);
      tracef("gate %s", atomic_load(&gate_open) ? "open" : "closed");
      break;
    case OP_WAIT: op_wait(); break;
    case OP_QUERY: query_job(pick_handle(next_byte())); break;
    case OP_HELPER:
      tracef("next op on the helper thread");
      run_as(ROLE_HELPER, exec_op_cb, NULL);
      break;
    case OP_ERRSTR: op_errstr(); break;
    case OP_POOL: op_pool(); break;
    case OP_BURST: op_burst(); break;
    case OP_TIMER: op_timer(); break;
    case OP_LIMITER: op_limiter(); break;
    case OP_SUBMITX: op_submitx(); break;
    case OP_CREATEX: op_create(true); break;
    case OP_TIMEOUT: op_timeout(); break;
    default: op_stats(); break;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* The end of an input: destroy everything, release everything, check what is left. */

static void destroy_cb(void* arg) { destroy_runtime(arg); }

static void final_handle_checks(void* arg) {
  struct job* j = arg;
  ++S.api_depth;
  const int rc = uvrt_job_cancel(j->handle);
  --S.api_depth;
  struct codes ok = {1, {UVRT_EALREADY}};
  expect_rc("uvrt_job_cancel after its runtime is gone", rc, &ok);
  check_message(j, uvrt_job_message(j->handle), "after its runtime is gone");
  const int stop = uvrt_job_stop_requested(j->handle);
  const bool ran = atomic_load(&j->started);
  if (j->cancel_busy) CHECK(stop == 1, "job %d: stop request lost", j->id);
  else if (timed_out(j)) /* asked to stop if it ran; cancelled before it ran, if it never did */
    CHECK(stop == (ran ? 1 : 0), "job %d: timed out, stop requested %d, but it %s", j->id, stop, ran ? "ran" : "never ran");
  else if (j->timeout_ms != 0 && !j->has_done) CHECK(stop == 0 || stop == 1, "uvrt_job_stop_requested gave %d", stop);
  else if (!j->unsettled_at_destroy) CHECK(stop == 0, "job %d: a stop request nobody made", j->id);
  else if (j->has_done) CHECK(stop == (ran ? 1 : 0), "job %d: stop requested %d, but destroy found it %s", j->id, stop, ran ? "running" : "queued");
  release_job(j);
  CHECK(!j->held, "job %d: the final release failed", j->id);
}

static void finish(void) {
  tracef("finish");
  for (;;) {
    struct rt_rec* r = NULL;
    for (int i = S.nrts - 1; i >= 0 && !r; --i)
      if (S.rts[i].live) r = &S.rts[i];
    if (!r) break;
    run_as(r->owner, destroy_cb, r);
    CHECK(!r->live, "rt %d: destroy at the end failed", r->id);
  }
  open_gate();
  for (int i = 0; i < S.ntimers; ++i) {
    struct timer* t = S.timers[i];
    if (t->closed) continue;
    CHECK(t->rt->app >= 0, "timer %d: still open on a loop that is gone", i);
    uv_close((uv_handle_t*)&t->handle, timer_closed);
    push_loop(t->loop);
    while (!t->closed) uv_run(t->loop, UV_RUN_NOWAIT);
    pop_loop();
  }
  for (int i = 0; i < S.ntimers; ++i) free(S.timers[i]);
  /* Every job has settled: every limiter is free again and can be destroyed. */
  for (int i = 0; i < S.nlims; ++i) {
    struct lim_rec* l = &S.lims[i];
    if (!l->live) continue;
    CHECK(uvrt_limiter_borrowed(l->lim) == 0 && uvrt_limiter_waiting(l->lim) == 0, "limiter %d still in use at the end", i);
    const int rc = uvrt_limiter_destroy(l->lim);
    CHECK(rc == 0, "limiter %d: uvrt_limiter_destroy gave %s with every job settled", i, uvrt_err_name(rc));
  }
  for (int i = 0; i < APP_LOOPS; ++i) {
    if (!S.app_loops[i]) continue;
    const int rc = uv_loop_close(S.app_loops[i]);
    CHECK(rc == 0, "application loop %d: uv_loop_close gave %s once its runtimes were destroyed", i, uv_err_name(rc));
    free(S.app_loops[i]);
  }
  for (int i = 0; i < S.njobs; ++i) {
    struct job* j = &S.jobs[i];
    const bool ran = atomic_load(&j->started);
    if (!j->submitted) {
      CHECK(!ran && j->done_calls == 0, "job %d: refused, yet it ran or got a done call", j->id);
      continue;
    }
    if (j->has_done) CHECK(j->done_calls == 1, "job %d: done ran %d times", j->id, j->done_calls);
    if (j->cancel0) CHECK(!ran, "job %d ran after cancel returned 0", j->id);
    if (j->cancel_busy) CHECK(ran, "job %d: cancel gave UVRT_EBUSY, but it never ran", j->id);
    if (ran) CHECK(atomic_load(&j->finished), "job %d still running", j->id);
    if (j->held) run_as(j->owner, final_handle_checks, j);
  }
  CHECK(atomic_load(&hold_timeouts) == 0, "a HOLD job waited %d s: neither the gate nor a stop request came", HOLD_SECONDS);
  memset(&S, 0, sizeof S);
}

int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  role = ROLE_MAIN;
  trace = getenv("UVRT_FUZZ_TRACE") != NULL && strcmp(getenv("UVRT_FUZZ_TRACE"), "0") != 0;
  /* Size the pool to 2, the smallest that still runs jobs side by side (unless UV_THREADPOOL_SIZE
   * says otherwise), and reserve none of it, so that HOLD jobs fill the whole pool. */
  uvrt_options_t first = {.threadpool_size = getenv("UV_THREADPOOL_SIZE") == NULL ? 2 : 0,
                          .reserved_threads = UVRT_RESERVED_NONE};
  uvrt_runtime_t* rt;
  int rc = uvrt_runtime_create(&rt, &first);
  if (rc == UVRT_EPOOLCONFLICT) { /* the pool ran already, with another size */
    first.threadpool_size = 0;
    rc = uvrt_runtime_create(&rt, &first);
  }
  if (rc == 0) rc = uvrt_runtime_destroy(rt);
  if (rc != 0) {
    fprintf(stderr, "fuzz_c_api: cannot start the pool reserving no thread: %s\n", uvrt_strerror(rc));
    exit(1);
  }
  pool = uvrt_threadpool_size();
  if (pool <= 0) {
    fprintf(stderr, "fuzz_c_api: uvrt_threadpool_size: %s\n", uvrt_strerror(pool));
    exit(1);
  }
  pthread_t helper;
  if (pthread_create(&helper, NULL, helper_main, NULL) != 0) {
    fprintf(stderr, "fuzz_c_api: cannot start the helper thread\n");
    exit(1);
  }
  pthread_detach(helper);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  role = ROLE_MAIN;
  in_p = data;
  in_n = size;
  atomic_store(&gate_open, 1);
  atomic_store(&hold_timeouts, 0);
  while (in_n > 0 && S.ops < MAX_OPS) exec_op();
  finish();
  return 0;
}
