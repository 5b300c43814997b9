"""The command line, the workload and the result check that the Python peers share, so that only
the part written with each tool differs between them. The flags, their limits and their errors
follow uvrt-bench (../uvrt_bench.cpp) and peer_common.h, except that the pool size does not come
from UV_THREADPOOL_SIZE: every peer uses --threads, 4 by default.

Job i returns i*2+1, so the sum of N results is N*N.
"""

import sys
import time
from dataclasses import dataclass

MAX_JOBS = 1_000_000_000
MAX_WORK_US = 10_000_000  # 10 s: longer is a typo, not a benchmark
MAX_THREADS = 1024  # libuv's own limit, kept for every peer
MAX_INFLIGHT = 1_000_000

USAGE = """usage: {name} [--jobs N] [--work KIND] [--threads T] [--inflight W]

{summary}

  --jobs N       number of jobs, 1 to 1000000000 (default 2000)
  --work KIND    empty | spin:US | sleep:US, US from 1 to 10000000 (default sleep:1000)
  --threads T    worker threads, 1 to 1024 (default 4)
  --inflight W   jobs in flight, 1 to 1000000 (default 64)
  --help         print this and exit
"""


@dataclass
class Settings:
    jobs: int = 2000
    work: str = "sleep:1000"
    threads: int = 4
    inflight: int = 64


class BadFlag(Exception):
    pass


def whole_number(text, hi):
    """The value of a plain decimal integer in [1, hi], or None. int() alone would accept signs,
    spaces and underscores, which uvrt-bench refuses, and would raise on more than 4300 digits."""
    if text.isascii() and text.isdigit() and len(text.lstrip("0")) <= len(str(hi)) and 1 <= int(text) <= hi:
        return int(text)
    return None


def parse_count(flag, text, hi):
    value = whole_number(text, hi)
    if value is not None:
        return value
    raise BadFlag(f'{flag}: invalid value "{text}": expected a whole number from 1 to {hi}')


def parse_work(text):
    """Returns the work in its canonical spelling: empty, spin:US or sleep:US."""
    if text == "empty":
        return text
    kind, _, us = text.partition(":")
    if kind in ("spin", "sleep") and whole_number(us, MAX_WORK_US) is not None:
        return f"{kind}:{int(us)}"
    raise BadFlag(f'--work: invalid value "{text}": expected empty, spin:US or sleep:US '
                  f"with US from 1 to {MAX_WORK_US}")


def parse_args(name, summary, argv):
    """Accepts "--flag value" and "--flag=value". Prints the usage and exits 0 for --help, exits 2
    for a bad command line, and otherwise returns the settings."""
    usage = USAGE.format(name=name, summary=summary)
    s = Settings()
    args = iter(argv)
    try:
        for arg in args:
            if arg in ("--help", "-h"):
                sys.stdout.write(usage)
                sys.exit(0)
            flag, eq, value = arg.partition("=")
            if flag not in ("--jobs", "--work", "--threads", "--inflight"):
                raise BadFlag(f'unknown argument "{arg}"')
            if not eq:
                value = next(args, None)
            if value is None:
                raise BadFlag(f"{flag}: missing value")
            if flag == "--jobs":
                s.jobs = parse_count(flag, value, MAX_JOBS)
            elif flag == "--work":
                s.work = parse_work(value)
            elif flag == "--threads":
                s.threads = parse_count(flag, value, MAX_THREADS)
            else:
                s.inflight = parse_count(flag, value, MAX_INFLIGHT)
    except BadFlag as e:
        sys.stderr.write(f"{name}: {e}\n\n{usage}")
        sys.exit(2)
    return s


def make_job(work):
    """Returns the function a worker thread runs for job i: it makes the blocking call, nothing,
    a busy CPU (like a parser) or a blocking sleep (like a query through a synchronous driver),
    then returns the job's value. Choosing the function once keeps the choice out of every job."""
    kind, _, us = work.partition(":")
    if kind == "empty":
        return lambda i: i * 2 + 1
    if kind == "sleep":
        seconds = int(us) / 1e6

        def sleep_job(i):
            time.sleep(seconds)
            return i * 2 + 1
        return sleep_job
    span_ns = int(us) * 1000

    # monotonic_ns is CLOCK_MONOTONIC, the steady clock the C and C++ peers spin on. Unlike
    # theirs, this spin holds the GIL, yielding it only at the interpreter's switch interval, so
    # spinning jobs take turns with each other and with the loop: that is what a CPU-bound call
    # in to_thread costs a Python user, and part of what the peer measures.
    def spin_job(i):
        until = time.monotonic_ns() + span_ns
        while time.monotonic_ns() < until:
            pass
        return i * 2 + 1
    return spin_job


class Tally:
    """The results received on the event loop's thread."""

    def __init__(self):
        self.results = 0
        self.sum = 0

    def add(self, value):
        self.results += 1
        self.sum += value


def report(name, s, wall_s, tally):
    """Prints the one-line result and returns 0, or explains on stderr why the results are wrong
    and returns 1."""
    expected = s.jobs * s.jobs
    if tally.results != s.jobs or tally.sum != expected:
        sys.stderr.write(f"{name}: result check failed: {s.jobs} jobs, {tally.results} results received, "
                         f"sum {tally.sum}, expected {expected}\n")
        return 1
    print(f"peer={name} jobs={s.jobs} work={s.work} threads={s.threads} inflight={s.inflight} "
          f"wall_s={wall_s:.3f} ok")
    return 0
