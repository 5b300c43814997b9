#!/usr/bin/python3
"""Peer "asyncio_to_thread": uvrt-bench's to_thread mode written with CPython's
asyncio.to_thread, as an asyncio user offloads a blocking call.

The loop's default executor is a ThreadPoolExecutor of T threads, which asyncio.to_thread
submits to. W worker coroutines share one iterator of job indices; each awaits one
asyncio.to_thread call at a time and adds the result to the tally on the loop's thread, so W jobs
stay in flight as in uvrt-bench. The executor starts its threads on demand, inside the timed
part; uvrt's runtime starts libuv's pool before uvrt-bench's clock does, and a few threads take
well under a millisecond to start.

Run it with Debian's /usr/bin/python3, not a pyenv shim, so every machine runs the same CPython.
"""

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from peer_common import Tally, make_job, parse_args, report

NAME = "asyncio_to_thread"


async def run(s):
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=s.threads))
    job = make_job(s.work)
    indices = iter(range(s.jobs))
    tally = Tally()

    async def worker():
        for i in indices:
            tally.add(await asyncio.to_thread(job, i))

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(s.inflight, s.jobs))))
    return time.monotonic() - start, tally


def main():
    s = parse_args(NAME, "Runs N jobs with asyncio.to_thread on a default executor of T threads, W in flight,\n"
                         "and checks their results.", sys.argv[1:])
    wall_s, tally = asyncio.run(run(s))
    return report(NAME, s, wall_s, tally)


if __name__ == "__main__":
    sys.exit(main())
