//! Peer "tokio_spawn_blocking": uvrt-bench's to_thread mode written with tokio's spawn_blocking,
//! as a tokio user offloads a blocking call.
//!
//! A current-thread runtime plays the event loop, and its blocking pool, capped at T threads with
//! max_blocking_threads, does the work. The task under block_on keeps a window of W JoinHandles,
//! as uvrt-bench keeps W uvrt::futures: it awaits the oldest, adds its result to the sum and
//! spawns the next job in its place. The pool starts its threads on demand, inside the timed
//! part; uvrt's runtime starts libuv's pool before uvrt-bench's clock does, and a few threads take
//! well under a millisecond to start.
//!
//! The flags, their limits and their errors follow uvrt-bench and ../peer_common.h. Job i returns
//! i*2+1, so the sum of N results is N*N, which fits in 64 bits for the largest N accepted.
//!
//! --compose (issue 13) changes how the jobs are awaited:
//! - `timeout`: the same window, each JoinHandle wrapped in `tokio::time::timeout` of 10 s, which
//!   never fires. tokio::time needs the runtime's time driver (`enable_time`), so this run has one
//!   and the plain run does not, as a program without timers would not: the driver is part of what
//!   the timeouts cost. A timeout's deadline is taken when it is created and its timer entered in
//!   the wheel at its first poll, and only if the job has not finished by then; dropping one takes
//!   the driver's lock. A `Timeout` is polled only once it is awaited (the oldest), so the window
//!   is a queue of futures moved out to be awaited rather than a ring of slots awaited in place.
//! - `when_all`: rounds of W jobs, each round's JoinHandles all awaited before the next round is
//!   spawned. `futures::future::join_all` would gather them, but Debian 12 installs no `futures`
//!   crate source with librust-tokio-dev, and this peer builds offline from those sources; so the
//!   handles are awaited in order, which gives join_all's result (every value, in order, once all
//!   have finished) without its bookkeeping.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::{timeout, Timeout};

const NAME: &str = "tokio_spawn_blocking";
const MAX_JOBS: u64 = 1_000_000_000;
const MAX_WORK_US: u64 = 10_000_000; // 10 s: longer is a typo, not a benchmark
const MAX_THREADS: u64 = 1024; // libuv's own limit, kept for every peer
const MAX_INFLIGHT: u64 = 1_000_000;
/// --compose timeout's limit: long enough never to fire, as uvrt-bench's and the other peers'.
const COMPOSE_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: tokio_spawn_blocking [--jobs N] [--work KIND] [--threads T] [--inflight W]
                            [--compose timeout|when_all]

Runs N jobs with tokio's spawn_blocking on a current-thread runtime whose blocking pool is capped
at T threads, W in flight, and checks their results.

  --jobs N       number of jobs, 1 to 1000000000 (default 2000)
  --work KIND    empty | spin:US | sleep:US, US from 1 to 10000000 (default sleep:1000)
  --threads T    worker threads, 1 to 1024 (default 4)
  --inflight W   jobs in flight, 1 to 1000000 (default 64)
  --compose C    how the jobs are awaited (default: a window of W in flight):
                 timeout: W in flight, each in a timeout of 10 s that never fires
                 when_all: rounds of W, each gathered and awaited before the next
  --help         print this and exit
";

#[derive(Clone, Copy)]
enum Work {
    Empty,
    Spin(u64),
    Sleep(u64),
}

#[derive(Clone, Copy, PartialEq)]
enum Compose {
    None,
    Timeout,
    WhenAll,
}

struct Settings {
    jobs: u64,
    work: Work,
    threads: u64,
    inflight: u64,
    compose: Compose,
}

fn describe(work: Work) -> String {
    match work {
        Work::Empty => "empty".to_string(),
        Work::Spin(us) => format!("spin:{us}"),
        Work::Sleep(us) => format!("sleep:{us}"),
    }
}

/// A plain decimal integer in [1, hi]: digits only, no sign, spaces or suffix.
fn whole_number(text: &str, hi: u64) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>().ok().filter(|v| (1..=hi).contains(v))
}

fn parse_count(flag: &str, text: &str, hi: u64) -> Result<u64, String> {
    whole_number(text, hi)
        .ok_or_else(|| format!("{flag}: invalid value \"{text}\": expected a whole number from 1 to {hi}"))
}

fn parse_work(text: &str) -> Result<Work, String> {
    let us = |rest: &str| whole_number(rest, MAX_WORK_US);
    let work = match text.split_once(':') {
        None if text == "empty" => Some(Work::Empty),
        Some(("spin", rest)) => us(rest).map(Work::Spin),
        Some(("sleep", rest)) => us(rest).map(Work::Sleep),
        _ => None,
    };
    work.ok_or_else(|| {
        format!("--work: invalid value \"{text}\": expected empty, spin:US or sleep:US with US from 1 to {MAX_WORK_US}")
    })
}

/// Accepts "--flag value" and "--flag=value". Returns None for --help.
fn parse_args(args: &[String]) -> Result<Option<Settings>, String> {
    let mut s = Settings { jobs: 2000, work: Work::Sleep(1000), threads: 4, inflight: 64, compose: Compose::None };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg.as_str(), None),
        };
        if !matches!(flag, "--jobs" | "--work" | "--threads" | "--inflight" | "--compose") {
            return Err(format!("unknown argument \"{arg}\""));
        }
        let value = inline
            .or_else(|| rest.next().map(String::as_str))
            .ok_or_else(|| format!("{flag}: missing value"))?;
        match flag {
            "--jobs" => s.jobs = parse_count(flag, value, MAX_JOBS)?,
            "--work" => s.work = parse_work(value)?,
            "--threads" => s.threads = parse_count(flag, value, MAX_THREADS)?,
            "--compose" => {
                s.compose = match value {
                    "timeout" => Compose::Timeout,
                    "when_all" => Compose::WhenAll,
                    _ => return Err(format!("--compose: invalid value \"{value}\": expected timeout or when_all")),
                }
            }
            _ => s.inflight = parse_count(flag, value, MAX_INFLIGHT)?,
        }
    }
    Ok(Some(s))
}

/// The blocking call a job makes: nothing, a busy CPU (like a parser) or a blocking sleep (like a
/// small query through a synchronous driver). Instant is CLOCK_MONOTONIC, the steady clock the C
/// and C++ peers spin on.
fn perform(work: Work) {
    match work {
        Work::Empty => {}
        Work::Spin(us) => {
            let until = Instant::now() + Duration::from_micros(us);
            while Instant::now() < until {}
        }
        Work::Sleep(us) => std::thread::sleep(Duration::from_micros(us)),
    }
}

fn spawn_job(work: Work, i: u64) -> JoinHandle<u64> {
    tokio::task::spawn_blocking(move || {
        perform(work);
        i * 2 + 1
    })
}

struct Outcome {
    wall: Duration,
    results: u64,
    sum: u64,
}

/// Runs on the runtime's own thread, so the sum is taken there and never on a worker.
async fn windowed(s: &Settings) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut window: Vec<JoinHandle<u64>> = (0..s.inflight.min(s.jobs)).map(|i| spawn_job(s.work, i)).collect();
    let width = window.len() as u64;
    let mut submitted = width;
    let mut results = 0;
    let mut sum = 0u64;
    for done in 0..s.jobs {
        let slot = &mut window[(done % width) as usize];
        // Await through a reborrow: the slot is reused for the next job below.
        sum += (&mut *slot).await.map_err(|e| format!("job {done}: {e}"))?;
        results += 1;
        if submitted < s.jobs {
            *slot = spawn_job(s.work, submitted);
            submitted += 1;
        }
    }
    Ok(Outcome { wall: start.elapsed(), results, sum })
}

/// --compose timeout: the window, each job's JoinHandle in a timeout that never fires.
async fn windowed_timeout(s: &Settings) -> Result<Outcome, String> {
    let start = Instant::now();
    let spawn = |i| timeout(COMPOSE_TIMEOUT, spawn_job(s.work, i));
    let mut window: VecDeque<Timeout<JoinHandle<u64>>> = (0..s.inflight.min(s.jobs)).map(spawn).collect();
    let mut submitted = window.len() as u64;
    let mut results = 0;
    let mut sum = 0u64;
    for done in 0..s.jobs {
        let oldest = window.pop_front().ok_or_else(|| format!("job {done}: not in the window"))?;
        sum += oldest
            .await
            .map_err(|_| format!("job {done}: the {} s timeout fired", COMPOSE_TIMEOUT.as_secs()))?
            .map_err(|e| format!("job {done}: {e}"))?;
        results += 1;
        if submitted < s.jobs {
            window.push_back(spawn(submitted));
            submitted += 1;
        }
    }
    Ok(Outcome { wall: start.elapsed(), results, sum })
}

/// --compose when_all: rounds of W jobs, every handle of a round awaited (in order: join_all's
/// result, see the top of this file) before the next round is spawned.
async fn rounds(s: &Settings) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut submitted = 0;
    let mut results = 0;
    let mut sum = 0u64;
    while submitted < s.jobs {
        let end = (submitted + s.inflight).min(s.jobs);
        let round: Vec<JoinHandle<u64>> = (submitted..end).map(|i| spawn_job(s.work, i)).collect();
        for (job, handle) in (submitted..end).zip(round) {
            sum += handle.await.map_err(|e| format!("job {job}: {e}"))?;
            results += 1;
        }
        submitted = end;
    }
    Ok(Outcome { wall: start.elapsed(), results, sum })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s = match parse_args(&args) {
        Ok(Some(s)) => s,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("{NAME}: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.max_blocking_threads(s.threads as usize);
    if s.compose == Compose::Timeout {
        builder.enable_time();
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{NAME}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let run = match s.compose {
        Compose::None => runtime.block_on(windowed(&s)),
        Compose::Timeout => runtime.block_on(windowed_timeout(&s)),
        Compose::WhenAll => runtime.block_on(rounds(&s)),
    };
    let outcome = match run {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("{NAME}: {message}");
            return ExitCode::from(1);
        }
    };
    let expected = s.jobs * s.jobs;
    if outcome.results != s.jobs || outcome.sum != expected {
        eprintln!(
            "{NAME}: result check failed: {} jobs, {} results received, sum {}, expected {expected}",
            s.jobs, outcome.results, outcome.sum
        );
        return ExitCode::from(1);
    }
    let compose = match s.compose {
        Compose::None => "",
        Compose::Timeout => " compose=timeout",
        Compose::WhenAll => " compose=when_all",
    };
    println!(
        "peer={NAME} jobs={} work={} threads={} inflight={}{compose} wall_s={:.3} ok",
        s.jobs,
        describe(s.work),
        s.threads,
        s.inflight,
        outcome.wall.as_secs_f64()
    );
    ExitCode::SUCCESS
}
