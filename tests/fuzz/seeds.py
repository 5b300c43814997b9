#!/usr/bin/env python3
"""Writes the hand-written seeds of tests/fuzz/corpus (seed-*): small programs in the bytecode
that fuzz_c_api.c's top comment defines, one per situation of the C API's contract, so that the
fuzzer starts from inputs that already reach them. The rest of the corpus is what `-merge=1` kept
from fuzzing runs (see run.sh).

    tests/fuzz/seeds.py [DIRECTORY]     (default: tests/fuzz/corpus next to this script)

Selectors are indexes: runtimes in creation order among the live ones, handles in submission order
among those still held; NULL is 0xff. The pool has 2 threads (see LLVMFuzzerInitialize), so two
HOLD jobs fill it and the next ones queue. Replaying a seed with UVRT_FUZZ_TRACE=1 shows its calls.
"""
import os
import sys

# Ops, work kinds and done actions: keep in step with the enums in fuzz_c_api.c.
(CREATE, SUBMIT, CANCEL, RELEASE, UVRUN, RUN, DESTROY, GATE, WAIT, QUERY, HELPER, ERRSTR, POOL, BURST, TIMER,
 LIMITER, SUBMITX, CREATEX, STATS) = range(19)
TIMEOUT = 19  # ops after the first 19 are the byte of their own number (fuzz_c_api.c's top comment)
W_OK, W_CODE, W_FAIL, W_POLL, W_HOLD, W_SPIN, W_OK_NULL, W_FAIL_CLEAR, W_FAIL_BAD, W_PROBE, W_FAIL_TWICE = range(11)
D_CANCEL_SELF, D_FAIL, D_RELEASE_SELF, D_CANCEL_OTHER, D_SUBMIT, D_RUN, D_DESTROY, D_RELEASE_OTHER = (1 << i for i in range(8))
NULL = 0xFF
OWN, APP_A, APP_B, NULL_LOOP = range(4)
NO_HANDLE, NO_DONE, NO_WORK = 1, 2, 4
NOWAIT, ONCE, DEFAULT = range(3)
# Pool size options, by index: NULL, {0}, {running}, {-1}, {1025}, {INT_MIN}, {INT_MAX}, {other}, {1024}, {1}
OPT_NULL, OPT_0, OPT_SAME, OPT_M1, OPT_1025, OPT_INT_MIN, OPT_INT_MAX, OPT_OTHER, OPT_1024, OPT_1 = range(10)
# CREATEX: reserved_threads by index (0, UVRT_RESERVED_NONE, 1, pool size, -2, INT_MAX, INT_MIN); max_queued (0, 1, 2, 4)
RES_DEFAULT, RES_NONE, RES_1, RES_POOL, RES_M2, RES_INT_MAX, RES_INT_MIN = range(7)
MQ_0, MQ_1, MQ_2, MQ_4 = range(4)
# LIMITER acts; SUBMITX options: NULL, {size, NULL}, {size, limiter}, size - 1, larger with 0 tail, nonzero tail
L_CREATE, L_DESTROY, L_SET_TOKENS, L_GET = range(4)
OPTS_NULL, OPTS_NO_LIMITER, OPTS_LIMITER, OPTS_SHORT, OPTS_LONGER, OPTS_LONGER_SET = range(6)
# STATS: sizeof, a size too small, NULL, a larger struct
STATS_OK, STATS_SHORT, STATS_NULL, STATS_LONGER = range(4)
# TIMEOUT: the timeouts, grace periods and extra spins (ms) its t operand chooses from
TIMEOUTS, GRACES, SLOWS = (1, 2, 5, 20), (0, 1, 5, 50), (0, 1, 5, 20)


class Program:
    def __init__(self):
        self.b = bytearray()

    def create(self, loop=OWN, opts=OPT_NULL, null_out=False):
        self.b += bytes([CREATE, loop | (0x80 if null_out else 0), opts])
        return self

    def createx(self, loop=OWN, opts=OPT_NULL, reserved=RES_DEFAULT, max_queued=MQ_0, null_out=False):
        self.b += bytes([CREATEX, loop | (0x80 if null_out else 0), opts, reserved + 7 * max_queued])
        return self

    def submitx(self, lim=0, how=OPTS_LIMITER, rt=0, work=W_OK, code=0, flags=0, done=0, p_job=0, p_rt=0, p_child=0):
        self.b += bytes([SUBMITX, lim, how])
        return self.submit(rt, work, code, flags, done, p_job, p_rt, p_child, op=None)

    def timeout(self, timeout=1, grace=0, slow=0, old_struct=False, lim=None, rt=0, work=W_OK, code=0, flags=0,
                done=0, p_job=0, p_rt=0, p_child=0):
        """A job with a timeout (ms, from TIMEOUTS), a grace period (GRACES), and a work function that
        spins `slow` ms (SLOWS) more at its end, ignoring stop requests. old_struct: passed in the
        options struct of the uvrt.h before timeouts, which has no timeout. lim: a limiter selector,
        or None for none."""
        t = TIMEOUTS.index(timeout) | GRACES.index(grace) << 2 | SLOWS.index(slow) << 4
        t |= (0x40 if old_struct else 0) | (0x80 if lim is None else 0)
        self.b += bytes([TIMEOUT, 0 if lim is None else lim, t])
        return self.submit(rt, work, code, flags, done, p_job, p_rt, p_child, op=None)

    def slow_job(self, ms=20, rt=0):
        """A job that spins `ms` ms without a timeout (the old options struct's unread timeout of 1
        ms must not fire): a WAIT for it to finish lets that much time pass without turning a loop
        or opening the gate."""
        return self.timeout(1, 0, ms, old_struct=True, rt=rt, work=W_OK)

    def submit(self, rt=0, work=W_OK, code=0, flags=0, done=0, p_job=0, p_rt=0, p_child=0, op=SUBMIT):
        if op is not None:
            self.b.append(op)
        self.b += bytes([rt, work, code, flags, done])
        if done & (D_CANCEL_OTHER | D_RELEASE_OTHER):
            self.b.append(p_job)
        if done & (D_SUBMIT | D_RUN | D_DESTROY):
            self.b.append(p_rt)
        if done & D_SUBMIT:
            self.b.append(p_child)
        return self

    def op(self, code, *args):
        self.b += bytes([code, *args])
        return self

    def cancel(self, h): return self.op(CANCEL, h)
    def release(self, h): return self.op(RELEASE, h)
    def uvrun(self, rt, mode): return self.op(UVRUN, rt, mode)
    def run(self, rt=0): return self.op(RUN, rt)
    def destroy(self, rt=0): return self.op(DESTROY, rt)
    def gate(self, is_open): return self.op(GATE, 1 if is_open else 0)
    def wait(self, job, finished=False): return self.op(WAIT, job, 1 if finished else 0)
    def query(self, h): return self.op(QUERY, h)
    def helper(self): return self.op(HELPER)
    def errstr(self, v): return self.op(ERRSTR, *(v & 0xFFFFFFFF).to_bytes(4, "little"))
    def pool(self, rt=0): return self.op(POOL, rt)
    def burst(self, rt=0, n=33, work=W_OK): return self.op(BURST, rt, n - 33, work)
    def timer(self, rt=0, act=0, p=0): return self.op(TIMER, rt, act, p)
    def limiter(self, tokens, null_out=False): return self.op(LIMITER, L_CREATE | (0x80 if null_out else 0), tokens)
    def limiter_destroy(self, lim=0): return self.op(LIMITER, L_DESTROY, lim)
    def limiter_set(self, lim, tokens): return self.op(LIMITER, L_SET_TOKENS, lim | (tokens << 6))
    def limiter_get(self, lim=0): return self.op(LIMITER, L_GET, lim)
    def stats(self, rt=0, how=STATS_OK): return self.op(STATS, rt, how)

    def fill_pool(self, rt=0):
        """Closes the gate and occupies both pool threads with HOLD jobs (job records 0 and 1 if
        they are the first), waiting until they run."""
        n = len(self.b)
        self.gate(False)
        self.submit(rt, W_HOLD).submit(rt, W_HOLD)
        return self


def seeds():
    s = {}
    s["basic"] = Program().create().submit().run().query(0).destroy().b

    p = Program().create()
    for kind in range(11):
        if kind != W_HOLD:
            p.submit(0, kind, code=kind)
    p.run()
    for h in range(10):
        p.query(h)
    s["every-work-kind"] = p.b

    # Queued jobs behind a full pool: cancel gives 0 (twice), a running one gives UVRT_EBUSY.
    p = Program().create().fill_pool().wait(0).wait(1)
    p.submit(0, W_OK).submit(0, W_FAIL, code=3)
    p.cancel(2).cancel(2).cancel(0).query(0).query(2).run().query(2).cancel(2).destroy()
    s["cancel-queued-and-running"] = p.b

    # Destroy with held jobs running and jobs queued, the gate still closed: stop requests only.
    p = Program().create().fill_pool().wait(0).wait(1)
    p.submit(0, W_OK).submit(0, W_POLL).submit(0, W_CODE, code=7, flags=NO_HANDLE)
    p.destroy().query(0).query(1).query(2).query(3).cancel(0)
    s["destroy-in-flight"] = p.b

    # Done callbacks: cancel, fail and release themselves; submit, run and destroy from done.
    p = Program().create()
    p.submit(0, W_FAIL, code=0, done=D_CANCEL_SELF | D_FAIL | D_RELEASE_SELF)
    p.submit(0, W_OK, done=D_SUBMIT | D_RUN | D_DESTROY, p_rt=0, p_child=(8 << 4) | W_FAIL)
    p.run().destroy()
    s["done-reentrancy"] = p.b

    # Done callbacks during teardown: submit gives UVRT_ECLOSING, run and destroy UVRT_EBUSY.
    p = Program().create().fill_pool().wait(0).wait(1)
    p.submit(0, W_OK, done=D_SUBMIT | D_RUN | D_DESTROY | D_CANCEL_OTHER, p_job=0, p_rt=0, p_child=0x40)
    p.submit(0, W_OK, done=D_RELEASE_OTHER | D_CANCEL_SELF, p_job=0x55)
    p.destroy()
    s["done-during-teardown"] = p.b

    # Two runtimes on one application loop, driven by uv_run as an application would.
    p = Program().create(APP_A).create(APP_A, OPT_SAME).create(APP_B)
    p.submit(0, W_SPIN).submit(1, W_FAIL, code=2).submit(2, W_OK)
    p.uvrun(0, NOWAIT).uvrun(0, ONCE).uvrun(1, DEFAULT).uvrun(2, DEFAULT)
    p.submit(0, W_OK, done=D_RUN | D_DESTROY, p_rt=2)
    p.destroy(1).run(0).destroy(0).destroy(0)
    s["application-loops"] = p.b

    p = Program()
    for opt in range(10):
        p.create(OWN, opt)
    for opt in (OPT_SAME, OPT_M1, OPT_OTHER):
        p.create(APP_A, opt, null_out=True).create(NULL_LOOP, opt)
    p.pool(0).pool(NULL)
    s["pool-sizes"] = p.b

    # The helper thread: its runtime refuses this thread's calls, and this thread's its calls.
    p = Program().create()
    p.helper().create()
    p.helper().submit(1, W_FAIL, code=1)
    p.submit(1, W_OK).run(1).destroy(1).cancel(0).query(0).release(0)
    p.submit(0, W_OK)
    p.helper().cancel(1).helper().release(1).helper().run(0).helper().destroy(0).helper().submit(0)
    p.helper().query(1).helper().run(1).helper().query(0).helper().pool(0)
    p.run(0).helper().destroy(1).release(0)
    s["helper-thread"] = p.b

    p = Program()
    for v in (0, -22, -125, -16, -114, -30001, -30002, -30003, -30004, -30005, -30006, -30007,
              -5, -33, -10, 12345, -1000000, -2147483648, 2147483647, -4095, -4096):
        p.errstr(v)
    s["error-names"] = p.b

    # Jobs that run or destroy another runtime (own loops) from their done callbacks.
    p = Program().create().create().create(APP_B)
    p.submit(0, W_OK, done=D_RUN, p_rt=2).submit(1, W_SPIN).submit(1, W_OK, done=D_DESTROY, p_rt=1)
    p.submit(2, W_OK, done=D_SUBMIT | D_RUN, p_rt=2, p_child=(5 << 4) | W_CODE)
    p.run(0).run(2).run(1)
    s["cross-runtime"] = p.b

    # Two runtimes on one application loop, both jobs finished before the loop turns, A's first (so
    # one pass of libuv's takes both completions, B's after A's): A's done callback runs or
    # destroys B, which must be
    # UVRT_EBUSY (the loop, not the runtime, is busy), whether the application's uv_run or
    # uvrt_runtime_run(A) turns the loop; B stays usable afterwards.
    for name, action, turn in (("run", D_RUN, "uvrun"), ("destroy", D_DESTROY, "uvrun"),
                               ("run-destroy-submit", D_RUN | D_DESTROY | D_SUBMIT, "run")):
        p = Program().create(APP_A).create(APP_A)
        p.submit(0, W_OK, done=action, p_rt=2, p_child=(10 << 4) | W_OK).wait(0, True)
        p.submit(1, W_OK).wait(1, True)
        p.uvrun(0, DEFAULT) if turn == "uvrun" else p.run(0)
        p.submit(1, W_FAIL, code=2).run(1).query(0).destroy(1).destroy(0)
        s["shared-loop-" + name + "-other"] = p.b

    # Three runtimes, two loops: A's done (loop A) runs C (loop B), nested; C's done then runs and
    # destroys B, on loop A, which A's done callback still holds: UVRT_EBUSY.
    p = Program().create(APP_A).create(APP_A).create(APP_B)
    p.submit(2, W_OK, done=D_RUN | D_DESTROY, p_rt=2).submit(0, W_OK, done=D_RUN, p_rt=3).submit(1, W_SPIN)
    p.wait(0, True).wait(1, True).wait(2, True).uvrun(0, DEFAULT).destroy(1).destroy(1).destroy(0)
    s["shared-loop-nested-other-loop"] = p.b

    # A's teardown turns the shared loop: B's done callbacks run meanwhile and may neither run nor
    # destroy A or B; A's own done callbacks (jobs cancelled by the teardown) may not destroy B.
    p = Program().create(APP_A).create(APP_A).submit(1, W_OK, done=D_DESTROY | D_RUN, p_rt=1).wait(0, True)
    p.fill_pool(0).wait(1).wait(2)
    p.submit(0, W_OK, done=D_DESTROY, p_rt=2).submit(1, W_OK, done=D_DESTROY, p_rt=2)
    p.destroy(0).gate(True).uvrun(0, DEFAULT).destroy(0)
    s["shared-loop-teardown-other"] = p.b

    # NULL everywhere the API takes a pointer.
    p = Program().create()
    p.submit(NULL).submit(0, flags=NO_WORK).submit(0, flags=NO_DONE).submit(0, flags=NO_HANDLE)
    p.submit(0, flags=NO_DONE | NO_HANDLE).submit(NULL, flags=7)
    p.cancel(NULL).release(NULL).run(NULL).destroy(NULL).query(NULL).pool(NULL).run(0).cancel(0)
    s["null-arguments"] = p.b

    p = Program().create().submit(0, W_PROBE).submit(0, W_PROBE, flags=NO_HANDLE).run()
    s["work-probes"] = p.b

    # Released before completion, and a job finished but not yet settled (cancel: UVRT_EBUSY).
    p = Program().create().gate(False).submit(0, W_HOLD, done=D_CANCEL_SELF).wait(0).release(0)
    p.gate(True).submit(0, W_OK).wait(1, finished=True).cancel(0).query(0).uvrun(0, NOWAIT).uvrun(0, ONCE).run()
    s["release-early-and-just-finished"] = p.b

    # Cancel a running job that polls for it: it returns UVRT_ECANCELED itself.
    p = Program().create().gate(False).submit(0, W_HOLD).submit(0, W_POLL).wait(0).cancel(0).wait(0, True)
    p.query(0).run().query(0)
    s["cooperative-stop"] = p.b

    # The end of the input with everything still in flight on every kind of runtime.
    p = Program().create().create(APP_A).helper().create().fill_pool(1).submit(0, W_OK).submit(2, W_OK)
    p.submit(1, W_FAIL_TWICE, code=4, done=D_SUBMIT, p_rt=1, p_child=(4 << 4) | W_OK)
    s["teardown-at-end"] = p.b

    # A burst: one turn settles two slices, the rest waits in the backlog, where cancel gives
    # UVRT_EBUSY and the message is not readable yet; then destroy with the backlog not empty.
    p = Program().create().burst(0, 48, W_FAIL).uvrun(0, NOWAIT).cancel(47).query(47).cancel(46)
    p.uvrun(0, NOWAIT).query(40).uvrun(0, NOWAIT).destroy()
    s["burst-backlog"] = p.b
    p = Program().create(APP_A).create(APP_A).burst(1, 33, W_CODE).uvrun(0, NOWAIT).run(1)
    s["burst-shared-loop"] = p.b

    # Application timers whose callbacks submit, cancel and release; on a runtime's own loop
    # (closed by destroy), on an application loop, and firing during teardown.
    p = Program().create().create(APP_A).gate(False).submit(0, W_HOLD).submit(0, W_OK)
    p.timer(0, 2, 1).timer(0, 3, 0).timer(1, 1, W_FAIL).timer(0, 1, W_OK).uvrun(1, NOWAIT).uvrun(0, NOWAIT)
    p.timer(0, 1, W_SPIN).destroy(0).timer(0, 1, W_OK).run(0)
    s["application-timers"] = p.b

    # Application timers that run or destroy runtimes: on their own loop while uvrt turns it
    # (uvrt_runtime_run, destroy: UVRT_EBUSY), on another loop (turned, nested), and on their own
    # loop while only the application's uv_run turns it (undefined: the harness skips it).
    p = Program().create().create(APP_A).create(APP_A)
    p.timer(0, 4, 0).timer(0, 5, 1).submit(0, W_OK).run(0)
    p.timer(1, 5, 1).timer(1, 4, 0).uvrun(1, NOWAIT)
    p.timer(0, 5, 0).timer(0, 4, 1).destroy(0).destroy(0)
    s["application-timers-run-destroy"] = p.b

    # Limiters: bad input, getters, set_tokens; a job holding the only token and two waiting:
    # destroy is UVRT_EBUSY, a waiting job cancelled gives 0, stats count them; once run, destroy.
    p = Program().limiter(0).limiter(3, null_out=True).limiter(1).limiter_get(0).limiter_get(NULL)
    p.limiter_set(0, 0).limiter_set(0x3F, 2).limiter_set(0, 2).limiter_set(0, 1).limiter_destroy(NULL)
    p.create().gate(False).submitx(0, OPTS_LIMITER, 0, W_HOLD).submitx(0, OPTS_LIMITER, 0, W_OK)
    p.submitx(0, OPTS_LONGER, 0, W_FAIL, code=1).wait(0).limiter_get(0).limiter_destroy(0).stats(0)
    p.cancel(1).limiter_get(0).stats(0).query(1).run().stats(0).limiter_destroy(0).limiter_get(0)
    s["limiter-held-token"] = p.b

    # Every options variant of uvrt_job_submit_ex, and work probes holding a token.
    p = Program().create().limiter(2)
    for how in range(6):
        p.submitx(0, how, 0, W_PROBE if how == OPTS_LIMITER else W_OK)
    p.run().limiter_get(0)
    s["job-options-sizes"] = p.b

    # A limiter shared by two runtimes on one application loop; done callbacks submit children
    # that inherit it; destroy one runtime while its jobs wait for a token, then set_tokens.
    p = Program().create(APP_A).create(APP_A).limiter(1).gate(False)
    p.submitx(0, OPTS_LIMITER, 0, W_HOLD).submitx(0, OPTS_LIMITER, 1, W_OK, done=D_SUBMIT, p_rt=0, p_child=0x40)
    p.submitx(0, OPTS_LIMITER, 1, W_SPIN).submitx(0, OPTS_LIMITER, 0, W_POLL)
    p.wait(0).limiter_get(0).destroy(1).limiter_get(0).limiter_set(0, 3).gate(True).uvrun(0, DEFAULT).limiter_destroy(0)
    s["limiter-shared-loop"] = p.b

    # Destroy with jobs waiting for a token: they are cancelled, the limiter is free again.
    p = Program().create().limiter(1).gate(False).submitx(0, OPTS_LIMITER, 0, W_HOLD)
    p.submitx(0, OPTS_LIMITER, 0, W_OK).submitx(0, OPTS_LIMITER, 0, W_CODE, code=2, flags=NO_HANDLE)
    p.wait(0).destroy(0).limiter_get(0).limiter_destroy(0)
    s["limiter-teardown"] = p.b

    # max_queued: a runtime bounded to 1 and one to 2 while another's held jobs fill the pool;
    # submits past the bound are UVRT_EQUEUEFULL; a cancel makes room; stats in between.
    p = Program().create().createx(OWN, OPT_0, RES_DEFAULT, MQ_1).createx(OWN, OPT_0, RES_NONE, MQ_2).limiter(1)
    p.fill_pool(0).wait(0).wait(1)
    p.submit(1, W_OK).submit(1, W_OK).submitx(0, OPTS_LIMITER, 2, W_OK).submitx(0, OPTS_LIMITER, 2, W_OK)
    p.submit(2, W_OK).stats(1).stats(2).cancel(3).submit(2, W_OK).stats(2).run(1).run(2).stats(1, STATS_LONGER)
    s["max-queued"] = p.b

    # reserved_threads: every variant, with and without a pool size, on both kinds of loop.
    p = Program()
    for reserved in range(7):
        p.createx(OWN, OPT_0, reserved).createx(APP_A, OPT_SAME, reserved).createx(OWN, OPT_OTHER, reserved)
    p.pool(0)
    s["reserved-threads"] = p.b

    # Stats: every size variant, from the wrong thread, and of a runtime of the helper's.
    p = Program().create().submit(0, W_OK).submit(0, W_FAIL, code=1).stats(0).run().stats(0)
    for how in range(4):
        p.stats(0, how)
    p.helper().stats(0).stats(NULL).helper().create().helper().submit(1, W_SPIN).helper().run(1).helper().stats(1)
    s["stats"] = p.b

    # Timeouts. The pool has 2 threads: a HOLD job with a timeout of 1 ms, grace 0, that spins
    # 20 ms after its stop request (job 0), and a 20 ms job without a timeout (job 1); behind them
    # a HOLD job without a timeout (job 2), which the second thread takes next, so that the timed
    # jobs behind it stay queued: one without a done callback, one whose done callback cancels,
    # releases and submits. Waiting for job 1 lets 20 ms pass with the gate closed; then one turn:
    # job 0 is asked to stop and settles at once with UVRT_ETIMEDOUT (its work runs on), the queued
    # ones are cancelled by their timeouts. Then queries, cancels, stats, and run, which waits for
    # job 0's work.
    p = Program().create().gate(False)
    p.timeout(1, 0, 20, work=W_HOLD, done=D_CANCEL_SELF | D_FAIL).slow_job(20).submit(0, W_HOLD)
    p.timeout(1, 0, 0, work=W_FAIL, code=3).timeout(2, 5, 0, work=W_OK, flags=NO_DONE)
    p.timeout(5, 50, 1, work=W_CODE, code=2, done=D_CANCEL_SELF | D_RELEASE_SELF | D_SUBMIT, p_rt=0, p_child=0x40)
    p.wait(1, True).uvrun(0, NOWAIT).query(0).cancel(0).query(3).cancel(3).stats(0).uvrun(0, NOWAIT)
    p.query(4).stats(0).run().stats(0).query(0).destroy()
    s["timeout-abandon-and-queued"] = p.b

    # Grace periods. Job 0 (HOLD, timeout 1, grace 50) is asked to stop once 20 ms have passed
    # (job 1) and the loop turns; it returns within its grace period: UVRT_ETIMEDOUT when it comes
    # back. Then job 2 (HOLD, timeout 2, grace 1) is asked to stop after 5 ms (job 3) and spins
    # 20 ms more; 5 ms later (job 4) the loop turns again: UVRT_ETIMEDOUT at the end of the grace
    # period while its work runs on. Jobs 1, 3 and 4 only let time pass (the old options struct:
    # their timeouts are never read).
    p = Program().create().gate(False)
    p.timeout(1, 50, 0, work=W_HOLD, code=1).slow_job(20)
    p.wait(1, True).uvrun(0, NOWAIT).wait(0, True).query(0).run().query(0)
    p.gate(False).timeout(2, 1, 20, work=W_HOLD, done=D_RELEASE_SELF).slow_job(5).slow_job(5)
    p.wait(3, True).uvrun(0, NOWAIT).wait(4, True).uvrun(0, NOWAIT).query(1).stats(0).run().stats(0)
    s["timeout-grace"] = p.b

    # A job waiting for its limiter's token times out and leaves the line; the holder (HOLD, with a
    # timeout of 20 ms and grace 50) is asked to stop later; limiter_destroy meanwhile.
    p = Program().create().limiter(1).gate(False)
    p.timeout(20, 50, 0, lim=0, work=W_HOLD).timeout(1, 0, 0, lim=0, work=W_OK).slow_job(5)
    p.wait(2, True).limiter_get(0).uvrun(0, NOWAIT).limiter_get(0).limiter_destroy(0).query(1)
    p.stats(0).run().limiter_get(0).limiter_destroy(0)
    s["timeout-limiter"] = p.b

    # Teardown with timeouts pending (20 ms, not expired: dropped) on held and queued jobs, and a
    # job in its grace period (timeout 1, grace 50, spinning 20 ms after the stop request):
    # destroy waits for it and its done gets UVRT_ETIMEDOUT; the others follow the teardown rules.
    p = Program().create().create().gate(False)
    p.timeout(1, 50, 20, work=W_HOLD).slow_job(5, rt=1).timeout(20, 50, 0, work=W_HOLD).timeout(20, 0, 0, work=W_OK)
    p.wait(1, True).uvrun(0, NOWAIT).query(0).destroy(0).query(0).query(2).destroy(0)
    s["timeout-teardown"] = p.b
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds())} seeds to {out}")


if __name__ == "__main__":
    main()
