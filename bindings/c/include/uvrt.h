/** @file
 * uvrt.h: the C API of uvrt. Run blocking calls on libuv's thread pool and get their results
 * back on the loop thread, from C (C11) or C++.
 *
 * It is a thin layer over the C++ runtime (<uvrt/uvrt.hpp>): the same runtime, the same pool
 * sizing rules, the same teardown guarantees. In short:
 * @code
 *   uvrt_runtime_t *rt;
 *   uvrt_runtime_create(&rt, NULL);                     a runtime on a loop of its own
 *   uvrt_job_submit(rt, NULL, work, done, arg);         work(job, arg, &result) on the pool,
 *   uvrt_runtime_run(rt);                               then done(job, status, result, arg)
 *   uvrt_runtime_destroy(rt);                           on the loop thread
 * @endcode
 *
 * Conventions, as in libuv:
 *   - Every function that can fail returns 0 or a negative error code (UVRT_E*, see
 *     uvrt_strerror). A function that returns an error has done nothing: it never calls a
 *     callback and never takes ownership of what it was given.
 *   - NULL or invalid arguments are reported with UVRT_EINVAL, never by crashing. A pointer to a
 *     handle that was already destroyed or released cannot be detected: that is the caller's bug.
 *   - No C++ exception ever leaves a uvrt_* function.
 *
 * Threads. A runtime belongs to the thread that created it, which is the thread that must run its
 * loop (its "loop thread"). uvrt_runtime_run, uvrt_runtime_destroy, uvrt_runtime_stats,
 * uvrt_job_submit, uvrt_job_submit_ex, uvrt_job_cancel, uvrt_job_message and uvrt_job_release
 * must be called on that thread; from any other they return UVRT_ETHREAD. Work functions run on
 * pool threads and may call uvrt_job_stop_requested and uvrt_job_fail. uvrt_strerror,
 * uvrt_err_name, uvrt_threadpool_size, uvrt_runtime_loop, the create functions and the
 * uvrt_limiter_* functions may be called on any thread.
 *
 * Ownership. uvrt never reads, writes or frees the `arg` and `result` pointers: they are passed
 * through untouched, and stay the application's. Every other pointer's owner is stated where the
 * function is declared. */
#ifndef UVRT_H
#define UVRT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "uvrt/export.h"
#include "uvrt_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Error codes. Where libuv has a code with the same meaning, uvrt uses libuv's value, so a work
 * function may also return any UV_E* code (or a negated errno) and uvrt_strerror will name it. */
#define UVRT_ERRNO_MAP(XX)                                                                        \
  XX(EINVAL, UV_EINVAL, "invalid argument")                                                       \
  XX(ENOMEM, UV_ENOMEM, "not enough memory")                                                      \
  XX(ECANCELED, UV_ECANCELED, "job cancelled before it ran, or its runtime was destroyed first") \
  XX(EBUSY, UV_EBUSY, "resource busy")                                                            \
  XX(EALREADY, UV_EALREADY, "job has already finished")                                           \
  XX(ETIMEDOUT, UV_ETIMEDOUT, "job did not finish within its timeout")                             \
  XX(ETHREAD, -30001, "called from a thread other than the runtime's loop thread")                \
  XX(ECLOSING, -30002, "runtime is shutting down and takes no new work")                          \
  XX(EPOOLSIZE, -30003,                                                                            \
     "invalid thread pool size (expected 1 to 1024) or reserved thread count (0 to pool size - 1)") \
  XX(EPOOLCONFLICT, -30004,                                                                        \
     "thread pool already running with a different size, or the process reserves another number") \
  XX(EEXCEPTION, -30005, "a C++ exception escaped a callback given to uvrt")                      \
  XX(EINTERNAL, -30006, "internal error in uvrt or libuv")                                        \
  XX(EFORKED, -30007, "runtime inherited through fork(): it belongs to the parent process")       \
  XX(EQUEUEFULL, -30008, "the runtime's queue is full: max_queued jobs are waiting already")

/** uvrt's error codes: UVRT_<name> = value for each XX(name, value, text) of UVRT_ERRNO_MAP,
 * which lists them; uvrt_strerror gives each one's text. */
typedef enum {
/** Makes one entry of UVRT_ERRNO_MAP an enumerator of uvrt_errno_t; undefined after use. */
#define UVRT_ERRNO_ENUM_ITEM(name, value, text) UVRT_##name = (value),
  UVRT_ERRNO_MAP(UVRT_ERRNO_ENUM_ITEM)
#undef UVRT_ERRNO_ENUM_ITEM
  UVRT_ERRNO_MAX = -30009 /**< one past the last of uvrt's own codes (not a code) */
} uvrt_errno_t;

/** A short English description of `err`. uvrt's and libuv's codes, and (with glibc) negated errno
 * values, get a static string ("success" for 0). Any other code gets "Unknown error N", written
 * to a per-thread buffer that the next such call on the same thread overwrites. */
UVRT_EXTERN const char* uvrt_strerror(int err);

/** The code's name ("UVRT_ECANCELED", libuv's "EIO", "OK" for 0), with the same lifetime rule. */
UVRT_EXTERN const char* uvrt_err_name(int err);

/** A runtime (uvrt::runtime in C++): a loop, its own or the application's, and the jobs it
 * submits to libuv's pool. Made by uvrt_runtime_create or uvrt_runtime_create_on_loop, used on
 * its loop thread, ended by uvrt_runtime_destroy. */
typedef struct uvrt_runtime_s uvrt_runtime_t;
/** A handle of one submitted job (uvrt_job_submit), for cancelling it and reading its message;
 * the caller's until uvrt_job_release. */
typedef struct uvrt_job_s uvrt_job_t;
typedef struct uvrt_limiter_s uvrt_limiter_t; /* described above uvrt_limiter_create */

/** uvrt_options_t.reserved_threads: reserve no thread, and say so (0 there means "no preference"). */
#define UVRT_RESERVED_NONE (-1)

/** Options of a runtime. Zero-initialise it (uvrt_options_t o = {0}, or C's designated
 * initialisers; uvrt_options_t o{} in C++), then set what you need: 0 is every field's default,
 * and fields added in later versions are appended with 0 as their default too, so such code keeps
 * its meaning when it is recompiled. The struct has no size field: a program must be recompiled
 * against the uvrt.h of the library it runs with (uvrt 0.x promises no binary compatibility
 * across versions). */
typedef struct uvrt_options_s {
  /** Size of libuv's process-wide thread pool. 0: no preference (the running pool, else
   * UV_THREADPOOL_SIZE if set, else 4). Otherwise 1 to 1024, and it must match the pool if the
   * pool already runs. UV_THREADPOOL_SIZE is validated too: "abc", "", "0", "-1", "1025", " 8"
   * and "8abc" are refused with UVRT_EPOOLSIZE instead of being silently mapped. */
  int threadpool_size;
  /** Threads of libuv's pool that uvrt's jobs never occupy, so that libuv's own pool work (file
   * system requests, uv_getaddrinfo, uv_random, the application's uv_queue_work) always finds one
   * free. Process-wide like the pool size: all runtimes of the process together keep at most
   * pool size - reserved threads busy, and the first runtime created (from C or C++) sets it.
   *   - 0                   no preference: the process's number, or, if this runtime is the
   *                         first, uvrt's default (what uvrt::options{} gives in C++). As for
   *                         threadpool_size, so that a zero-initialised struct never conflicts
   *                         with what another part of the process chose.
   *   - 1 to pool size - 1  reserve that many.
   *   - UVRT_RESERVED_NONE  reserve none (the C++ API's 0).
   *
   * Anything else (a negative number other than UVRT_RESERVED_NONE, the pool size or more):
   * UVRT_EPOOLSIZE. A number other than the one the process reserves already: UVRT_EPOOLCONFLICT. */
  int reserved_threads;
  /** How many jobs of this runtime may wait to run at once (queued for a pool thread, or waiting
   * for a limiter's token); past it uvrt_job_submit returns UVRT_EQUEUEFULL and queues nothing.
   * 0: no bound. */
  size_t max_queued;
} uvrt_options_t;

/** The number of threads in libuv's pool, starting the pool first if nobody has (as creating a
 * runtime with default options would). Returns a positive count or UVRT_EPOOLSIZE. */
UVRT_EXTERN int uvrt_threadpool_size(void);

/** Creates a runtime on a loop of its own and stores it in *runtime. `options` may be NULL (all
 * defaults); it is only read during the call. The calling thread becomes the runtime's loop
 * thread. The caller owns the runtime and ends it with uvrt_runtime_destroy.
 * Errors: UVRT_EINVAL (runtime is NULL), UVRT_EPOOLSIZE (threadpool_size or reserved_threads out
 * of range), UVRT_EPOOLCONFLICT (either differs from what the process already uses),
 * UVRT_ENOMEM, UVRT_EINTERNAL (the loop could not be initialised). */
UVRT_EXTERN int uvrt_runtime_create(uvrt_runtime_t** runtime, const uvrt_options_t* options);

/** Creates a runtime embedded in `loop`, which the application owns, runs and closes; uvrt never
 * closes it. The runtime adds six handles to the loop (two uv_async_t, a uv_check_t, a
 * uv_idle_t and two uv_timer_t, all with data pointing into uvrt; uv_walk shows them). They do not
 * keep uv_run going on their own: the async, check and shutdown timer handles are unreferenced,
 * except one async handle while continuations deferred by a cancel wait to run (C++ only) and the
 * other while jobs wait for a limiter's token or for a pool thread no other runtime holds; the
 * other timer is active only while a job's timeout (or a C++ sleep or timeout) is pending, and the
 * idle handle only while finished jobs wait for their time slice or come back often (then poll
 * does not block, for 20 us after the last one). Jobs in flight keep the loop alive as libuv
 * requests do. Destroying the runtime closes all six (with jobs the C++ API's shutdown abandoned still
 * running too), after which uv_loop_close(loop) returns 0 once no job is running. Do not uv_close
 * them yourself before destroying the runtime.
 * Errors: as uvrt_runtime_create, and UVRT_EINVAL for a NULL loop. */
UVRT_EXTERN int uvrt_runtime_create_on_loop(uvrt_runtime_t** runtime, uv_loop_t* loop,
                                            const uvrt_options_t* options);

/** Destroys the runtime, with the C++ runtime's teardown guarantees: new submissions fail with
 * UVRT_ECLOSING, queued jobs never run and their done callbacks get UVRT_ECANCELED, running jobs
 * see uvrt_job_stop_requested() return 1 and are waited for, and their done callbacks get the work
 * function's own status. A job whose work function had already returned but whose done callback
 * had not run yet also reads 1 from uvrt_job_stop_requested() in its done callback. A job's
 * timeout (uvrt_job_options_t.timeout_ms) that has not expired is dropped: the job follows these
 * rules; one whose timeout expired before, and whose work still runs in its grace period, is
 * waited for too and its done callback gets UVRT_ETIMEDOUT. Every done
 * callback has run when this returns 0; the runtime's handles are closed, and a loop it created
 * is closed and freed. Job handles the application still holds stay valid until released.
 * Errors (the runtime is left as it was): UVRT_EINVAL (NULL), UVRT_ETHREAD, UVRT_EBUSY (called from
 * inside a done callback of any runtime on the same loop, or inside uvrt_runtime_run: destroy it
 * after run returns). Destroying it from the application's own libuv callbacks on the same loop
 * while the application turns it with uv_run cannot be detected and must not be done: the
 * teardown turns the loop.
 * In a child process forked after the runtime was created, the runtime is the parent's: destroy
 * returns 0 at once without touching its loop (shared with the parent) or waiting for its jobs
 * (which run only in the parent), and every other call on it returns UVRT_EFORKED. */
UVRT_EXTERN int uvrt_runtime_destroy(uvrt_runtime_t* runtime);

/** The runtime's loop: its own, or the one it was created on. NULL for a NULL runtime. */
UVRT_EXTERN uv_loop_t* uvrt_runtime_loop(const uvrt_runtime_t* runtime);

/** uv_run(loop, UV_RUN_DEFAULT): turns the loop until nothing is pending or uv_stop is called.
 * Returns 0, or UVRT_EINVAL, UVRT_ETHREAD, UVRT_EFORKED, UVRT_EBUSY (called from inside a done
 * callback of any runtime on this loop, or inside uvrt_runtime_run),
 * or UVRT_EEXCEPTION if a done callback threw a C++ exception (uvrt caught it and ran on). An
 * application that drives the loop itself with uv_run does not need this function. */
UVRT_EXTERN int uvrt_runtime_run(uvrt_runtime_t* runtime);

/** Runs on a pool thread. Store the result, if any, in *result (NULL on entry) and return 0; or
 * return a nonzero error code, which reaches the done callback unchanged (by convention a UV_E*
 * code, a negated errno or one of your own negative codes). Return UVRT_ECANCELED after noticing
 * uvrt_job_stop_requested(). `job` is valid throughout; do not release it here.
 * A job with a timeout (uvrt_job_options_t.timeout_ms) that expires while it runs is asked to
 * stop, and what its work function returns from then on never reaches done (which gets
 * UVRT_ETIMEDOUT and a NULL result): uvrt does not know what a result is and cannot free it. So
 * a work function that allocates its result should check uvrt_job_stop_requested() before it
 * returns and, if it says 1, free what it made and return without a result (UVRT_ECANCELED, say).
 * A timeout that expires between that check and the return still loses the result: keep a
 * result that must never leak reachable from `arg`, which stays the application's. */
typedef int (*uvrt_work_cb)(uvrt_job_t* job, void* arg, void** result);

/** Runs on the loop thread once the job has settled, exactly once. `status` is 0, UVRT_ECANCELED
 * (the job was cancelled before it ran, or its runtime was destroyed first), UVRT_ETIMEDOUT (its
 * timeout expired first, see uvrt_job_options_t.timeout_ms), the work function's nonzero return
 * value, or UVRT_EEXCEPTION if a work function written in C++ threw (its what() is the job's
 * message). `result` is what the work function stored, or NULL if it never ran or timed out.
 * With UVRT_ETIMEDOUT the work function may still be running (see timeout_ms). `job` is valid
 * during the call, even if the application has already released it. */
typedef void (*uvrt_done_cb)(uvrt_job_t* job, int status, void* result, void* arg);

/** Queues `work(job, arg, &result)` on libuv's pool; `done(job, status, result, arg)` follows on
 * the loop thread. `done` may be NULL. `arg` must stay valid until done has run.
 * If `job` is not NULL, *job receives a handle for cancelling the job and reading its message,
 * which the caller owns and must end with uvrt_job_release, at any time (before or after done).
 * If `job` is NULL, the handle is uvrt's and ends after done returns.
 * Errors (nothing was queued and *job is untouched): UVRT_EINVAL (runtime or work is NULL),
 * UVRT_ETHREAD, UVRT_ECLOSING (the runtime is being destroyed), UVRT_EFORKED, UVRT_EQUEUEFULL
 * (uvrt_options_t.max_queued of the runtime's jobs are waiting to run), UVRT_ENOMEM.
 * The same as uvrt_job_submit_ex(runtime, job, work, done, arg, NULL). */
UVRT_EXTERN int uvrt_job_submit(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work,
                                uvrt_done_cb done, void* arg);

/** Options of one job, for uvrt_job_submit_ex. `size` must be sizeof(uvrt_job_options_t) as this
 * header defines it, so that the struct can grow: initialise it with UVRT_JOB_OPTIONS_INIT, or
 * set size = sizeof(uvrt_job_options_t) and every other field to 0 / NULL. The struct of an
 * older uvrt.h (with `limiter` as its last field) is still accepted, its size saying so: the
 * fields it lacks are read as 0. */
typedef struct uvrt_job_options_s {
  /** sizeof(uvrt_job_options_t), set by the caller (UVRT_JOB_OPTIONS_INIT does). */
  size_t size;
  /** At most uvrt_limiter_tokens(limiter) jobs submitted with this limiter run at once, across
   * every runtime and thread that uses it; the others wait in submission order inside uvrt,
   * holding no pool thread. A waiting job can be cancelled (uvrt_job_cancel returns 0) and a
   * runtime's destroy cancels it like any queued job. NULL: none. A job whose done callback got
   * UVRT_ETIMEDOUT while its work function still runs holds its token until that returns. */
  uvrt_limiter_t* limiter;
  /** Milliseconds from submission after which the job, if it has not settled, is given up on, as
   * uvrt::timeout does in C++ (0: no timeout). Then:
   *   - a job still queued, or waiting for its limiter's token, is cancelled and never runs; its
   *     done callback gets UVRT_ETIMEDOUT (on the same turn of the loop);
   *   - a running job is asked to stop (uvrt_job_stop_requested() returns 1 from then on) and
   *     its done callback gets UVRT_ETIMEDOUT, with a NULL result: at once if grace_ms is 0;
   *     else when the work function returns, or grace_ms after the timeout, whichever comes
   *     first. If done ran before the work function returned, the work runs on and its outcome
   *     (status, result, message) is dropped when it returns: done is never called twice.
   * A job whose work function returned before the timeout gets its own outcome, also if its done
   * callback runs a little after the timeout; a job cancelled before it (uvrt_job_cancel
   * returned 0) gets UVRT_ECANCELED. Once done has run, uvrt_job_cancel returns UVRT_EALREADY,
   * even while the work function still runs; the handle stays valid until released, as always.
   * The runtime's destroy waits for such a work function like for any running job (without
   * calling done again). The timeout counts on the monotonic clock and never fires early; it is
   * served by the runtime's one timer (no libuv handle of the job's own), with libuv's
   * millisecond granularity, when the loop turns. Read from the struct only if its size covers
   * it. */
  uint64_t timeout_ms;
  /** With timeout_ms: how long a running job that was asked to stop at its timeout may take to
   * return before its done callback gets UVRT_ETIMEDOUT anyway (see timeout_ms). 0: none, done
   * is called at the timeout. Ignored without timeout_ms. */
  uint64_t grace_ms;
} uvrt_job_options_t;

/** A uvrt_job_options_t with every option at its default. */
#define UVRT_JOB_OPTIONS_INIT {sizeof(uvrt_job_options_t), NULL, 0, 0}

/** uvrt_job_submit with options for this one job. `options` may be NULL (all defaults); it is
 * only read during the call (the limiter it names must outlive the job, see uvrt_limiter_t).
 * Errors: as uvrt_job_submit, and UVRT_EINVAL when options->size is smaller than
 * sizeof(uvrt_job_options_t) (the struct was not initialised) and not the size of an older
 * uvrt.h's struct (which ended with `limiter`), or larger (a program built against a newer
 * uvrt.h) with options this version does not know set to something other than 0, or larger than
 * 4096 (no uvrt.h makes one that large: it was not initialised either). */
UVRT_EXTERN int uvrt_job_submit_ex(uvrt_runtime_t* runtime, uvrt_job_t** job, uvrt_work_cb work,
                                   uvrt_done_cb done, void* arg, const uvrt_job_options_t* options);

/** Asks the job not to run, or to stop. Never calls the done callback itself; it runs later, from
 * the loop. Returns:
 *   - 0               the job was still queued and never runs (again 0 if asked twice);
 *                     done gets UVRT_ECANCELED (UVRT_ETIMEDOUT if its timeout had cancelled it
 *                     already, on the same turn of the loop).
 *   - UVRT_EBUSY      it is running (or has just finished): uvrt_job_stop_requested() now returns
 *                     1, and done gets whatever the work function returns.
 *   - UVRT_EALREADY   its done callback has already run (or is running): nothing changed. Also
 *                     for a job whose done got UVRT_ETIMEDOUT while its work still runs.
 *
 * and UVRT_EINVAL (NULL), UVRT_ETHREAD or UVRT_EFORKED (a pending job of a runtime inherited
 * through fork()). */
UVRT_EXTERN int uvrt_job_cancel(uvrt_job_t* job);

/** 1 once uvrt_job_cancel, the job's timeout or the runtime's teardown asked the job to stop,
 * else 0 (also for NULL). Meant to be polled by the work function; safe on any thread while the job is held. */
UVRT_EXTERN int uvrt_job_stop_requested(const uvrt_job_t* job);

/** For the work function: records `message` (copied; NULL clears it) as the reason the job failed
 * and returns `code`, so that the work function can `return uvrt_job_fail(job, code, "why");`.
 * Returns UVRT_EINVAL if job is NULL or code is 0 (a failure needs a code), UVRT_ETHREAD if not
 * called by the job's own work function while it runs. If the message cannot be copied (out of
 * memory), it is recorded as "(out of memory: message lost)" and `code` is still returned. */
UVRT_EXTERN int uvrt_job_fail(uvrt_job_t* job, int code, const char* message);

/** The message recorded by uvrt_job_fail, or, when status is UVRT_EEXCEPTION, the exception's
 * what(). NULL if there is none, if the job has not settled yet, if it timed out (done got
 * UVRT_ETIMEDOUT: what the work function recorded is dropped with its outcome), for a NULL job,
 * or off the loop thread. The string belongs to the job and lives until the handle ends. */
UVRT_EXTERN const char* uvrt_job_message(const uvrt_job_t* job);

/** Ends the caller's ownership of a job handle from uvrt_job_submit(_ex). It does not cancel: a
 * pending job still runs and its done callback still runs (with a valid `job`); the handle is
 * freed after that. Allowed inside the job's own done callback, and after the runtime is gone.
 * Returns 0, UVRT_EINVAL (NULL) or UVRT_ETHREAD. Releasing a handle twice, or one uvrt owns
 * (submitted with a NULL `job`), is a use after free that uvrt cannot detect. */
UVRT_EXTERN int uvrt_job_release(uvrt_job_t* job);

/** @typedef uvrt_limiter_t
 * A capacity limiter (anyio's CapacityLimiter, uvrt::limiter in C++): a number of tokens that
 * bounds how many of the jobs submitted with it (uvrt_job_options_t.limiter) run at once, one
 * limiter per purpose (database calls, file responses, background work) on one shared pool. A job
 * borrows a token when it is handed to the pool and gives it back once its work function has
 * returned, as its runtime's loop takes it back, before its done callback (or when it is
 * cancelled before it ran); until it gets one it waits in submission order, holding no pool
 * thread. One limiter may serve runtimes on several threads, and then bounds them
 * all together. Every uvrt_limiter_* function may be called on any thread, concurrently.
 *
 * The limiter must outlive the jobs submitted with it: uvrt_limiter_destroy refuses while any of
 * them holds or waits for a token. */

/** Creates a limiter of `tokens` tokens and stores it in *limiter; the caller owns it and ends it
 * with uvrt_limiter_destroy. Errors (*limiter untouched): UVRT_EINVAL (limiter is NULL, or 0
 * tokens: no job could ever run), UVRT_ENOMEM. */
UVRT_EXTERN int uvrt_limiter_create(uvrt_limiter_t** limiter, size_t tokens);

/** Destroys the limiter. Returns 0, UVRT_EINVAL (NULL), or UVRT_EBUSY while jobs hold or wait for
 * its tokens: then nothing changes, and it can be destroyed once they are done (a job gives its
 * token back before its done callback runs). A job submitted with the limiter on another thread
 * while this call runs is outside the contract (the check and the destruction cannot be one step
 * with it): stop every submission that uses a limiter before destroying it, as you would stop
 * using any object before freeing it. */
UVRT_EXTERN int uvrt_limiter_destroy(uvrt_limiter_t* limiter);

/** Changes the number of tokens. Growing starts waiting jobs at once (on their runtimes' loop
 * threads); shrinking takes effect as jobs give their tokens back, no running job is interrupted.
 * Returns 0, or UVRT_EINVAL (NULL, or 0 tokens; the number is left as it was). */
UVRT_EXTERN int uvrt_limiter_set_tokens(uvrt_limiter_t* limiter, size_t tokens);

/** The number of tokens. 0 for NULL. */
UVRT_EXTERN size_t uvrt_limiter_tokens(const uvrt_limiter_t* limiter);

/** Tokens held now, by jobs handed to the pool and not yet back on their runtime's loop thread.
 * May exceed uvrt_limiter_tokens for a while after uvrt_limiter_set_tokens shrank it. 0 for
 * NULL. */
UVRT_EXTERN size_t uvrt_limiter_borrowed(const uvrt_limiter_t* limiter);

/** Jobs waiting for a token. 0 for NULL. */
UVRT_EXTERN size_t uvrt_limiter_waiting(const uvrt_limiter_t* limiter);

/** The distribution of one duration over the jobs recorded so far, in nanoseconds. Percentiles
 * come from a histogram with 8 buckets per power of two, so each is within 7% of the exact value;
 * max is exact. All 0 while count is 0. */
typedef struct uvrt_latency_s {
  uint64_t count;  /**< jobs recorded */
  uint64_t p50_ns; /**< median */
  uint64_t p90_ns; /**< 90th percentile */
  uint64_t p99_ns; /**< 99th percentile */
  uint64_t max_ns; /**< longest, exact */
} uvrt_latency_t;

/** What a runtime is doing (uvrt::runtime_stats in C++). Counters count since the runtime was
 * created; gauges are the state at the call. Every job submitted is exactly one of
 * waiting_for_limiter, queued, running (on a pool thread, or back on the loop thread about to
 * settle, cancelled ones included) or settled, so they add up to submitted (a job abandoned by
 * the C++ API, or whose done callback got UVRT_ETIMEDOUT while it ran, counts as settled at once,
 * though its work may still run). */
typedef struct uvrt_runtime_stats_s {
  /** sizeof(uvrt_runtime_stats_t), set by the caller before the call (see uvrt_runtime_stats). */
  size_t size;
  /* Counters. */
  uint64_t submitted; /**< jobs uvrt_job_submit(_ex) accepted */
  uint64_t settled;   /**< jobs whose done callback has run or is running (or would, for a NULL done) */
  uint64_t cancelled; /**< of those settled: cancelled before they ran (status UVRT_ECANCELED, or
                       * UVRT_ETIMEDOUT for one its timeout cancelled while it waited) */
  uint64_t abandoned; /**< of those settled: abandoned while running (C++'s cancel_mode::abandon and
                       * shutdown; from C, jobs whose done got UVRT_ETIMEDOUT while they ran) */
  /* Gauges. */
  size_t queued;              /**< waiting for a pool thread */
  size_t running;             /**< taken by a pool thread, or back on the loop thread to settle */
  size_t waiting_for_limiter; /**< waiting for a token of their limiter */
  /** Of the jobs that ran: from submission to starting on a pool thread (time spent waiting for a
   * limiter included), and from starting to returning. */
  uvrt_latency_t wait;
  uvrt_latency_t run; /**< of the jobs that ran: from starting on a pool thread to returning */
} uvrt_runtime_stats_t;

/** Fills *stats with what the runtime is doing. Set stats->size = sizeof(uvrt_runtime_stats_t)
 * first; a larger size (a program built against a newer uvrt.h) is accepted: the fields this
 * version knows are filled, the rest of the struct is zeroed, and stats->size is set to the size
 * this version filled. Reading the figures costs a pass over a few histograms, nothing on the
 * jobs' path. Returns 0, or UVRT_EINVAL (runtime or stats is NULL, or stats->size is smaller than
 * sizeof(uvrt_runtime_stats_t) or larger than 4096; *stats is left alone), UVRT_ETHREAD,
 * UVRT_EFORKED. */
UVRT_EXTERN int uvrt_runtime_stats(uvrt_runtime_t* runtime, uvrt_runtime_stats_t* stats);

#ifdef __cplusplus
}
#endif

#endif /* UVRT_H */
