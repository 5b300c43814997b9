#!/usr/bin/python3
"""Peer "anyio_to_thread": uvrt-bench's to_thread mode written with anyio.to_thread.run_sync,
which is what Starlette's run_in_threadpool calls for every sync endpoint and dependency.

A CapacityLimiter of T tokens bounds the worker threads to T, in place of anyio's default of 40.
W tasks in one task group share an iterator of job indices; each awaits one run_sync call at a
time and adds the result to the tally on the loop's thread, so W jobs stay in flight as in
uvrt-bench. anyio runs on its asyncio backend, as under uvicorn, and starts its worker threads on
demand, inside the timed part; uvrt's runtime starts libuv's pool before uvrt-bench's clock does,
and a few threads take well under a millisecond to start.

Run it with Debian's /usr/bin/python3 and python3-anyio, not a pyenv shim, so every machine runs
the same CPython and anyio.
"""

import sys
import time

import anyio
import anyio.to_thread

from peer_common import Tally, make_job, parse_args, report

NAME = "anyio_to_thread"


async def run(s):
    limiter = anyio.CapacityLimiter(s.threads)
    job = make_job(s.work)
    indices = iter(range(s.jobs))
    tally = Tally()

    async def worker():
        for i in indices:
            tally.add(await anyio.to_thread.run_sync(job, i, limiter=limiter))

    start = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(min(s.inflight, s.jobs)):
            group.start_soon(worker)
    return time.monotonic() - start, tally


def main():
    s = parse_args(NAME, "Runs N jobs with anyio.to_thread.run_sync under a CapacityLimiter of T tokens, W in\n"
                         "flight, and checks their results.", sys.argv[1:])
    wall_s, tally = anyio.run(run, s)
    return report(NAME, s, wall_s, tally)


if __name__ == "__main__":
    sys.exit(main())
